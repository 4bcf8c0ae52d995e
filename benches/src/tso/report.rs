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
//! | `concurrency` | tasks calling at once, sharing one `Tso` client (on 2 runtime worker threads) |
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
//! | `tso-stats` | the client's own counters (`Tso::stats()`, `TsoStats`): `calls`, `requests-sent`, `timestamps-received`, `retries`, and `errors` by kind (`unavailable`, `rate-limited`, `overloaded`, `connection`, `timeout`, `mismatch`, `refused`, `went-backwards`, `deadline-exceeded`), counting failed requests rather than calls |

use std::fmt::Write as _;

use serde::Serialize;
use tsod_bench::text::plural;
use tsod_client::tso::TsoStats;

use super::uniqueness::Violations;
use crate::report::{ErrorTally, Report, RunHeader, Summary, render_table};

/// The result of `tsbench tso`; the module doc describes each JSON field.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct TsoReport {
    /// `"tso"`, no mode (remote only), the address as given and the one connected to.
    #[serde(flatten)]
    pub(crate) run: RunHeader,
    /// Tasks calling at once.
    pub(crate) concurrency: u32,
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
                "ranges-forgotten",
                "target",
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
    }

    #[test]
    fn human_output_names_the_call_and_the_violations() {
        let text = sample().to_human();
        for needle in ["Tso::next()", "call latency", "violations: 0", "errors: 0 of 1000 calls"] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        let reserve = TsoReport { count_per_call: 16, ..sample() };
        assert!(reserve.to_human().contains("Tso::reserve(16)"));
    }
}
