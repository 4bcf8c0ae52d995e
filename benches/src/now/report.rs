//! The report of `tsbench now`: the latency of `now()` beside bare
//! `clock_gettime` reads, as JSON and as text.
//!
//! # `tsbench now --json`
//!
//! One object on one line (the run header, the errors and each summary as
//! in `report.rs`).
//!
//! ```text
//! {"command":"now","mode":"local","target":"/run/tsod/segment","threads":1,"batch":64,
//!  "elapsed-s":0.412,"count":1000000,"errors":0,"error-kinds":{},
//!  "series":{"now":{…},"clock-gettime-realtime":{…},"clock-gettime-monotonic":{…}},
//!  "ratio-now-to-realtime":1.21}
//! ```
//!
//! | field | meaning |
//! |---|---|
//! | `command` | `"now"` |
//! | `mode` | `"local"` (`LocalClock::now()`, shared memory) or `"remote"` (`RemoteClock::now_at()`, QUIC) |
//! | `target` | the segment path (local) or the server's address as given, `IP:PORT` or `HOST:PORT` (remote) |
//! | `threads` | measuring threads (always 1 remote) |
//! | `batch` | calls of `now()` timed together as one sample, whose per-call average the `now` series holds: 64 local, 1 remote (the baselines are always timed in batches of 64; see each series' `count / samples`) |
//! | `rate` | remote only, with `--rate`: the most calls per second made |
//! | `elapsed-s` | wall time of the measurement, in seconds (local: first timed batch to last, warm-up left out) |
//! | `count` | `now()` calls made (local: rounded up to whole batches) |
//! | `errors` | `now()` calls that returned an error |
//! | `error-kinds` | errors by kind, e.g. `{"stale":3}`. Local: the names of `BoundError` and `ShmError` (`unsynchronized`, `disrupted`, `stale`, `out-of-range`, `busy`, `corrupt`, …) or `clock`. Remote: `timeout`, `connection-lost`, `stream-aborted`, `handshake`, `unsynchronized`, `disrupted`, `rate-limited`, `refused-<code>`, `round-trip-too-long`, `decode`, … (one per `RemoteError` variant). `other` for anything else |
//! | `series.now` | latency of `now()` that succeeded (local: batches with an error are left out) |
//! | `series.clock-gettime-realtime` | latency of a bare `clock_gettime(CLOCK_REALTIME)`, measured interleaved with `now()` |
//! | `series.clock-gettime-monotonic` | latency of a bare `clock_gettime(CLOCK_MONOTONIC)`, likewise |
//! | `ratio-now-to-realtime` | median of `now()` over median of `clock_gettime(CLOCK_REALTIME)`, per call, computed before the medians are rounded to whole nanoseconds (so it may differ slightly from the ratio of the two `p50-ns`); `null` if either series is empty |
//! | `half-width` | remote only: half the width of each returned interval, in nanoseconds |
//! | `round-trip` | remote only: the round trip the client measured and widened by (`RemoteNow::round_trip`) |
//!

use std::fmt::Write as _;

use serde::Serialize;
use tsod_bench::text::plural;

use crate::report::{ErrorTally, Mode, Report, RunHeader, Summary, render_table};

/// The result of `tsbench now`; the module doc describes each JSON field.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct NowReport {
    /// `"now"`, local or remote, segment path or server address (no `address`).
    #[serde(flatten)]
    pub(crate) run: RunHeader,
    /// Measuring threads.
    pub(crate) threads: u32,
    /// Calls per sample.
    pub(crate) batch: u64,
    /// Remote only: the pacing asked for, in calls per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rate: Option<u32>,
    /// Wall time of the measurement, in seconds.
    pub(crate) elapsed_s: f64,
    /// `now()` calls made.
    pub(crate) count: u64,
    /// `now()` calls that failed, by kind.
    #[serde(flatten)]
    pub(crate) errors: ErrorTally,
    /// The latency series.
    pub(crate) series: NowSeries,
    /// Median of `now()` over median of `clock_gettime(CLOCK_REALTIME)`.
    pub(crate) ratio_now_to_realtime: Option<f64>,
    /// Remote only: half-widths of the returned intervals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) half_width: Option<Summary>,
    /// Remote only: measured round trips.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) round_trip: Option<Summary>,
}

/// The three latency series of `tsbench now`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct NowSeries {
    /// `now()` (successful calls only).
    pub(crate) now: Summary,
    /// Bare `clock_gettime(CLOCK_REALTIME)`.
    pub(crate) clock_gettime_realtime: Summary,
    /// Bare `clock_gettime(CLOCK_MONOTONIC)`.
    pub(crate) clock_gettime_monotonic: Summary,
}

impl NowReport {
    /// Whether more than 1 % of the calls failed (the run then fails).
    pub(crate) fn too_many_errors(&self) -> bool {
        self.errors.over_one_percent_of(self.count)
    }
}

impl Report for NowReport {
    /// The report for people: a header line, the table, the ratio, the errors.
    fn to_human(&self) -> String {
        let remote = self.run.mode == Some(Mode::Remote);
        let (now_name, threads) = if remote {
            ("RemoteClock::now_at()", String::new())
        } else {
            ("LocalClock::now()", format!(", {} thread{}", self.threads, plural(self.threads.into())))
        };
        let (what, timing) = if remote {
            ("remote", "each timed alone".to_owned())
        } else {
            ("segment", format!("timed in batches of {}", self.batch))
        };
        let mut out = format!(
            "tsbench now: {what} {}{threads}, {} calls, {timing}, {:.2} s\n\n",
            self.run.target, self.count, self.elapsed_s
        );
        let mut rows = vec![
            (now_name, &self.series.now),
            ("clock_gettime(CLOCK_REALTIME)", &self.series.clock_gettime_realtime),
            ("clock_gettime(CLOCK_MONOTONIC)", &self.series.clock_gettime_monotonic),
        ];
        if let Some(half_width) = &self.half_width {
            rows.push(("half-width of the interval", half_width));
        }
        if let Some(round_trip) = &self.round_trip {
            rows.push(("round trip", round_trip));
        }
        out.push_str(&render_table(&rows));
        out.push('\n');
        match self.ratio_now_to_realtime {
            Some(ratio) => {
                let _ = writeln!(out, "now / clock_gettime(CLOCK_REALTIME), medians: {ratio:.2}×");
            }
            None => out.push_str("now / clock_gettime(CLOCK_REALTIME), medians: n/a (no successful calls)\n"),
        }
        let _ = writeln!(out, "errors: {} of {} calls ({})", self.errors.total, self.count, self.errors.kinds_text());
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use std::collections::BTreeMap;

    use super::*;

    fn sample_report(mode: Mode) -> NowReport {
        let s = Summary { p50_ns: 45, p90_ns: 47, p99_ns: 60, p999_ns: 120, max_ns: 9_000, count: 640, samples: 10 };
        let remote = mode == Mode::Remote;
        NowReport {
            run: RunHeader { command: "now", mode: Some(mode), target: "/run/tsod/segment".to_owned(), address: None },
            threads: 1,
            batch: 64,
            rate: remote.then_some(900),
            elapsed_s: 0.5,
            count: 640,
            errors: ErrorTally::default(),
            series: NowSeries { now: s, clock_gettime_realtime: s, clock_gettime_monotonic: s },
            ratio_now_to_realtime: Some(1.0),
            half_width: remote.then_some(s),
            round_trip: remote.then_some(s),
        }
    }

    #[test]
    fn json_shape_is_stable() {
        let local: serde_json::Value = serde_json::from_str(&sample_report(Mode::Local).to_json().unwrap()).unwrap();
        let keys: Vec<&str> = local.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "batch",
                "command",
                "count",
                "elapsed-s",
                "error-kinds",
                "errors",
                "mode",
                "ratio-now-to-realtime",
                "series",
                "target",
                "threads"
            ]
        );
        assert_eq!(local["command"], "now");
        assert_eq!(local["mode"], "local");
        let series: Vec<&str> = local["series"].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(series, ["clock-gettime-monotonic", "clock-gettime-realtime", "now"]);
        let now: Vec<&str> = local["series"]["now"].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(now, ["count", "max-ns", "p50-ns", "p90-ns", "p99-ns", "p999-ns", "samples"]);
        assert_eq!(local["series"]["now"]["p999-ns"], 120);

        let remote: serde_json::Value = serde_json::from_str(&sample_report(Mode::Remote).to_json().unwrap()).unwrap();
        assert_eq!(remote["mode"], "remote");
        assert_eq!(remote["half-width"]["p50-ns"], 45);
        assert_eq!(remote["round-trip"]["max-ns"], 9_000);
        assert_eq!(remote["rate"], 900);

        let mut unmeasured = sample_report(Mode::Local);
        unmeasured.ratio_now_to_realtime = None;
        let json: serde_json::Value = serde_json::from_str(&unmeasured.to_json().unwrap()).unwrap();
        assert!(json["ratio-now-to-realtime"].is_null());
    }

    #[test]
    fn more_than_one_percent_of_errors_fails_the_run() {
        let mut report = sample_report(Mode::Remote);
        report.count = 1_000;
        report.errors.total = 10;
        assert!(!report.too_many_errors());
        report.errors.total = 11;
        assert!(report.too_many_errors());
        report.errors.by_kind = BTreeMap::from([("timeout".to_owned(), 10), ("disrupted".to_owned(), 1)]);
        assert_eq!(report.errors.kinds_text(), "disrupted: 1, timeout: 10");
    }

    #[test]
    fn human_output_names_every_series() {
        let text = sample_report(Mode::Remote).to_human();
        for needle in ["RemoteClock::now_at()", "CLOCK_REALTIME", "CLOCK_MONOTONIC", "half-width", "round trip"] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        assert!(sample_report(Mode::Local).to_human().contains("LocalClock::now()"));
    }
}
