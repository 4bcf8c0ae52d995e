//! The report of `tsbench tso`: throughput, latency and the uniqueness
//! checks of a run against a TSO, as JSON and as text.
//!
//! # `tsbench tso --json`
//!
//! One object on one line; kebab-case fields that may be added to, never
//! renamed or removed (the run header, without `mode`, the errors and the
//! summary as in `report.rs`).
//!
//! ```text
//! {"command":"tso","target":"127.0.0.1:4460","address":"127.0.0.1:4460","concurrency":8,
//!  "count-per-call":1,"in-flight":2,"batch-wait-s":0.0,"elapsed-s":2.003,"calls":100000,
//!  "timestamps":100000,"calls-per-s":49925.1,"timestamps-per-s":49925.1,"latency":{…},
//!  "errors":0,"error-kinds":{},"violations":{"total":0,"not-increasing":0,"duplicate-ranges":0,
//!  "duplicate-timestamps":0},"ranges-forgotten":0,"tso-stats":{"calls":100000,…}}
//! ```
//!
//! | field | meaning |
//! |---|---|
//! | `command` | `"tso"` |
//! | `target` | the address as given, `IP:PORT` or `HOST:PORT` |
//! | `address` | the `IP:PORT` connected to |
//! | `concurrency` | tasks calling at once, sharing one `Tso` client |
//! | `threads` | the tokio runtime's worker threads the tasks run on (`--threads`) |
//! | `count-per-call` | timestamps asked for per call: 1 calls `Tso::next()`, more `Tso::reserve(K)` |
//! | `in-flight` | `TsoOptions::max_in_flight`: requests unanswered at once, at most |
//! | `batch-wait-s` | `TsoOptions::batch_wait`, in seconds |
//! | `elapsed-s` | from the first call to the end of the last, in seconds |
//! | `calls` | calls made, failed ones included |
//! | `timestamps` | timestamps received (`count-per-call` per successful call) |
//! | `calls-per-s`, `timestamps-per-s` | `calls` and `timestamps` over `elapsed-s` |
//! | `latency` | summary (`p50-ns` … `max-ns`, `count`, `samples`; see `report.rs`) of the time each successful call took, in nanoseconds |
//! | `errors` | calls that failed |
//! | `error-kinds` | failed calls by kind: `unavailable`, `rate-limited`, `overloaded`, `went-backwards`, `deadline-exceeded`, `refused-<code>`, `count-mismatch`, `request-id-mismatch`, the transport's kinds as `tsbench now` names them (`timeout`, `connection-lost`, …), `stopped` |
//! | `violations.not-increasing` | ranges a task received that did not start above the last timestamp that task had received |
//! | `violations.duplicate-ranges` | ranges sharing a timestamp with a range received before, by any task |
//! | `violations.duplicate-timestamps` | timestamps received more than once (each extra receipt counts) |
//! | `violations.total` | `not-increasing` + `duplicate-ranges`; the run fails unless it is 0 |
//! | `ranges-forgotten` | intervals the duplicate check dropped to bound its memory (see `tso/uniqueness.rs`); 0 unless the received timestamps leave over a million gaps |
//! | `load-generator.process-cpu-s` | CPU time (user + system) the whole tsbench process used from the first call to the last check: client library, runtime and checking; `null` where `/proc/self/stat` is unreadable |
//! | `load-generator.checker-cpu-s` | of it, the checking thread's (duplicate check and latency histogram, off the callers' path) |
//! | `load-generator.bookkeeping-ns-per-call` | the callers' own per-call work (two clock reads, the order check, the hand-over to the checker), timed on synthetic calls before the run |
//! | `load-generator.cores` | cores tsbench may run on (its CPU affinity, e.g. under `taskset`) |
//! | `load-generator.cpu-share` | `process-cpu-s` over `elapsed-s` × `cores`: the share of its cores the load generator and client took |
//! | `load-generator.bookkeeping-share` | (`checker-cpu-s` + `calls` × `bookkeeping-ns-per-call`) over `elapsed-s` × `cores`: the share of its cores tsbench's own measuring took |
//! | `tso-stats` | the client's own counters (`Tso::stats()`, `TsoStats`): `calls`, `requests-sent`, `timestamps-received`, `retries`, and `errors` by kind (`unavailable`, `rate-limited`, `overloaded`, `connection`, `timeout`, `mismatch`, `refused`, `went-backwards`, `deadline-exceeded`), counting failed requests rather than calls |

use std::fmt::Write as _;

use serde::Serialize;
use tsod_bench::text::plural;
use tsod_client::tso::TsoStats;

use super::uniqueness::Violations;
use crate::report::{ErrorTally, Report, RunHeader, Summary, render_table, round_to};

/// The result of `tsbench tso`; the module doc describes each JSON field.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct TsoReport {
    /// `"tso"`, no mode (remote only), the address as given and the one connected to.
    #[serde(flatten)]
    pub(crate) run: RunHeader,
    /// Tasks calling at once.
    pub(crate) concurrency: u32,
    /// The runtime's worker threads.
    pub(crate) threads: usize,
    /// Timestamps per call.
    pub(crate) count_per_call: u32,
    /// Requests in flight at most.
    pub(crate) in_flight: usize,
    /// How long a lone call waits for company, in seconds.
    pub(crate) batch_wait_s: f64,
    /// Wall time of the run, in seconds.
    pub(crate) elapsed_s: f64,
    /// Calls made.
    pub(crate) calls: u64,
    /// Timestamps received.
    pub(crate) timestamps: u64,
    /// Calls per second.
    pub(crate) calls_per_s: f64,
    /// Timestamps per second.
    pub(crate) timestamps_per_s: f64,
    /// Latency of successful calls.
    pub(crate) latency: Summary,
    /// Calls that failed, by kind.
    #[serde(flatten)]
    pub(crate) errors: ErrorTally,
    /// Broken promises.
    pub(crate) violations: Violations,
    /// Intervals the duplicate check forgot.
    pub(crate) ranges_forgotten: u64,
    /// The client's counters.
    pub(crate) tso_stats: TsoStats,
    /// What tsbench itself cost.
    pub(crate) load_generator: LoadGenerator,
}

/// What the load generator cost (see the module doc's table).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct LoadGenerator {
    pub(crate) process_cpu_s: Option<f64>,
    pub(crate) checker_cpu_s: Option<f64>,
    pub(crate) bookkeeping_ns_per_call: f64,
    pub(crate) cores: usize,
    pub(crate) cpu_share: Option<f64>,
    pub(crate) bookkeeping_share: Option<f64>,
}

impl LoadGenerator {
    /// From the process's and the checker's CPU time over a run of
    /// `elapsed_s` seconds on `cores` cores, `calls` calls and the
    /// calibrated per-call bookkeeping.
    pub(crate) fn new(
        process: Option<std::time::Duration>,
        checker: Option<std::time::Duration>,
        bookkeeping_ns_per_call: f64,
        calls: u64,
        elapsed_s: f64,
        cores: usize,
    ) -> Self {
        let capacity = elapsed_s * cores.max(1) as f64;
        let share = |seconds: f64| (capacity > 0.0).then(|| round_to(seconds / capacity, 4));
        let hot_path_s = calls as f64 * bookkeeping_ns_per_call / 1e9;
        Self {
            process_cpu_s: process.map(|d| round_to(d.as_secs_f64(), 3)),
            checker_cpu_s: checker.map(|d| round_to(d.as_secs_f64(), 3)),
            bookkeeping_ns_per_call: round_to(bookkeeping_ns_per_call, 1),
            cores,
            cpu_share: process.and_then(|d| share(d.as_secs_f64())),
            bookkeeping_share: checker.and_then(|d| share(d.as_secs_f64() + hot_path_s)),
        }
    }
}

impl Report for TsoReport {
    fn to_human(&self) -> String {
        let call =
            if self.count_per_call == 1 { "next()".to_owned() } else { format!("reserve({})", self.count_per_call) };
        let mut out = format!(
            "tsbench tso: {} ({}), Tso::{call}, {} task{}, {} in flight, batch wait {:?}, {:.2} s\n\n",
            self.run.target,
            self.run.address.as_deref().unwrap_or("?"),
            self.concurrency,
            plural(self.concurrency.into()),
            self.in_flight,
            std::time::Duration::try_from_secs_f64(self.batch_wait_s).unwrap_or_default(),
            self.elapsed_s
        );
        out.push_str(&render_table(&[("call latency", &self.latency)]));
        out.push('\n');
        let _ = writeln!(
            out,
            "throughput: {:.0} calls/s, {:.0} timestamps/s ({} calls, {} timestamps)",
            self.calls_per_s, self.timestamps_per_s, self.calls, self.timestamps
        );
        let stats = &self.tso_stats;
        let _ = writeln!(
            out,
            "client: {} requests sent ({:.1} calls per request), {} retries",
            stats.requests_sent,
            stats.calls as f64 / stats.requests_sent.max(1) as f64,
            stats.retries
        );
        let v = &self.violations;
        let _ = writeln!(
            out,
            "violations: {} ({} not increasing, {} duplicate ranges, {} duplicate timestamps)",
            v.total, v.not_increasing, v.duplicate_ranges, v.duplicate_timestamps
        );
        if self.ranges_forgotten > 0 {
            let _ = writeln!(out, "duplicate check: {} intervals forgotten (memory bound)", self.ranges_forgotten);
        }
        let _ = writeln!(out, "errors: {} of {} calls ({})", self.errors.total, self.calls, self.errors.kinds_text());
        let load = &self.load_generator;
        let percent = |share: Option<f64>| share.map_or_else(|| "?".to_owned(), |s| format!("{:.1} %", s * 100.0));
        let _ = writeln!(
            out,
            "load generator: {} of {} core{} (client, runtime and checks), of which its own measuring {} \
             ({:.0} ns per call in the callers, the rest on the checking thread)",
            percent(load.cpu_share),
            load.cores,
            plural(u64::try_from(load.cores).unwrap_or(u64::MAX)),
            percent(load.bookkeeping_share),
            load.bookkeeping_ns_per_call
        );
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    fn sample() -> TsoReport {
        TsoReport {
            run: RunHeader {
                command: "tso",
                mode: None,
                target: "127.0.0.1:4460".to_owned(),
                address: Some("127.0.0.1:4460".to_owned()),
            },
            concurrency: 8,
            threads: 2,
            count_per_call: 1,
            in_flight: 2,
            batch_wait_s: 0.0,
            elapsed_s: 1.0,
            calls: 1_000,
            timestamps: 1_000,
            calls_per_s: 1_000.0,
            timestamps_per_s: 1_000.0,
            latency: Summary::default(),
            errors: ErrorTally::default(),
            violations: Violations::default(),
            ranges_forgotten: 0,
            tso_stats: TsoStats::default(),
            load_generator: LoadGenerator::new(
                Some(std::time::Duration::from_millis(1_500)),
                Some(std::time::Duration::from_millis(200)),
                40.0,
                1_000,
                1.0,
                2,
            ),
        }
    }

    #[test]
    fn json_shape_is_stable() {
        let json: serde_json::Value = serde_json::from_str(&sample().to_json().unwrap()).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "address",
                "batch-wait-s",
                "calls",
                "calls-per-s",
                "command",
                "concurrency",
                "count-per-call",
                "elapsed-s",
                "error-kinds",
                "errors",
                "in-flight",
                "latency",
                "load-generator",
                "ranges-forgotten",
                "target",
                "threads",
                "timestamps",
                "timestamps-per-s",
                "tso-stats",
                "violations"
            ]
        );
        let violations: Vec<&str> = json["violations"].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(violations, ["duplicate-ranges", "duplicate-timestamps", "not-increasing", "total"]);
        assert_eq!(json["tso-stats"]["errors"]["went-backwards"], 0);
        assert_eq!(json["tso-stats"]["requests-sent"], 0);
        // 1.5 s of CPU over 1 s on 2 cores; the checker's 0.2 s and 1000
        // calls × 40 ns in the callers.
        assert_eq!(json["load-generator"]["cpu-share"], 0.75);
        assert_eq!(json["load-generator"]["bookkeeping-share"], 0.1);
    }

    #[test]
    fn human_output_names_the_call_and_the_violations() {
        let text = sample().to_human();
        for needle in [
            "Tso::next()",
            "call latency",
            "violations: 0",
            "errors: 0 of 1000 calls",
            "load generator: 75.0 % of 2 cores",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        let reserve = TsoReport { count_per_call: 16, ..sample() };
        assert!(reserve.to_human().contains("Tso::reserve(16)"));
    }
}
