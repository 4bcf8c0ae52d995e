//! What tsbench reports: percentile summaries of hdrhistograms, the JSON
//! objects `--json` prints, and their human-readable tables. Shared by every
//! subcommand; each subcommand's JSON object is documented here.
//!
//! Every JSON object is printed on one line, with kebab-case field names
//! that are stable: fields may be added, never renamed or removed.
//!
//! # Summary (any series)
//!
//! | field | meaning |
//! |---|---|
//! | `p50-ns`, `p90-ns`, `p99-ns`, `p999-ns` | 50th, 90th, 99th, 99.9th percentile, in nanoseconds |
//! | `max-ns` | the largest sample, in nanoseconds |
//! | `count` | calls the samples cover |
//! | `samples` | values recorded in the histogram; each covers `count / samples` calls (a batch) |
//!
//! Values come from a histogram of samples with 3 significant figures (each
//! the upper end of its bucket, within 0.1 % of the sample); a sample that
//! times a batch of calls is divided by the batch size, then rounded to
//! whole nanoseconds. An empty series has every field 0.
//!
//! # `tsbench now --json`
//!
//! ```text
//! {"command":"now","mode":"local","target":"/dev/shm/tsod","threads":1,"batch":64,
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
//! # `tsbench uncertainty --json`, `tsbench tso --json`, `tsbench commit-wait --json`
//!
//! Each documented in its own module, with its report: `report/uncertainty.rs`,
//! `report/tso.rs`, `report/commit_wait.rs`.

pub(crate) mod commit_wait;
pub(crate) mod tso;
pub(crate) mod uncertainty;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::Serialize;

/// Failed calls (or reads), by kind.
#[derive(Debug, Default)]
pub(crate) struct ErrorTally {
    /// All failures.
    pub(crate) total: u64,
    /// Failures per kebab-case kind.
    pub(crate) by_kind: BTreeMap<String, u64>,
}

impl ErrorTally {
    /// Counts one failure of `kind`.
    pub(crate) fn add(&mut self, kind: &str) {
        self.total = self.total.saturating_add(1);
        let n = self.by_kind.entry(kind.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
    }

    /// Adds another thread's tally to this one.
    pub(crate) fn merge(&mut self, other: Self) {
        self.total = self.total.saturating_add(other.total);
        for (kind, n) in other.by_kind {
            let mine = self.by_kind.entry(kind).or_insert(0);
            *mine = mine.saturating_add(n);
        }
    }
}

/// `kind: n, kind: n` for error kinds, or `none`.
pub(crate) fn error_kinds_text(kinds: &BTreeMap<String, u64>) -> String {
    if kinds.is_empty() {
        return "none".to_owned();
    }
    kinds.iter().map(|(kind, n)| format!("{kind}: {n}")).collect::<Vec<_>>().join(", ")
}

/// Significant figures every histogram keeps (values within 0.1 %).
pub(crate) const SIGNIFICANT_FIGURES: u8 = 3;

/// One measured series: a histogram of samples, each the total time of
/// `calls_per_sample` calls (a batch). Percentiles are divided by the batch
/// size only when summarized, so a 64-call batch keeps sub-nanosecond
/// resolution per call until then.
#[derive(Clone, Debug)]
pub(crate) struct Series {
    histogram: Histogram<u64>,
    calls_per_sample: u64,
}

impl Series {
    /// An empty series of samples of `calls_per_sample` calls each, for
    /// per-call times up to `max_ns_per_call`; longer samples are recorded
    /// as the maximum (see [`Series::record`]).
    pub(crate) fn new(max_ns_per_call: u64, calls_per_sample: u64) -> anyhow::Result<Self> {
        let calls_per_sample = calls_per_sample.max(1);
        let max = max_ns_per_call.saturating_mul(calls_per_sample).max(2);
        let histogram = Histogram::new_with_bounds(1, max, SIGNIFICANT_FIGURES)
            .with_context(|| format!("cannot create a histogram up to {max} ns"))?;
        Ok(Self { histogram, calls_per_sample })
    }

    /// Records one sample: `total_ns` for the whole batch, clamped to the
    /// series' range so that an outlier shows as the maximum rather than
    /// being lost.
    pub(crate) fn record(&mut self, total_ns: u64) {
        self.histogram.saturating_record(total_ns);
    }

    /// Samples recorded so far.
    pub(crate) fn samples(&self) -> u64 {
        self.histogram.len()
    }

    /// Adds another series' samples (same batch size and range).
    pub(crate) fn merge(&mut self, other: &Self) -> anyhow::Result<()> {
        anyhow::ensure!(self.calls_per_sample == other.calls_per_sample, "cannot merge series of different batches");
        self.histogram.add(&other.histogram).context("cannot merge histograms")
    }

    /// The percentiles per call, rounded to whole nanoseconds.
    pub(crate) fn summary(&self) -> Summary {
        let samples = self.samples();
        if samples == 0 {
            return Summary::default();
        }
        let per_call = |total: u64| total.saturating_add(self.calls_per_sample / 2) / self.calls_per_sample;
        Summary {
            p50_ns: per_call(self.histogram.value_at_quantile(0.5)),
            p90_ns: per_call(self.histogram.value_at_quantile(0.9)),
            p99_ns: per_call(self.histogram.value_at_quantile(0.99)),
            p999_ns: per_call(self.histogram.value_at_quantile(0.999)),
            max_ns: per_call(self.histogram.max()),
            count: samples.saturating_mul(self.calls_per_sample),
            samples,
        }
    }

    /// The median per call, unrounded, or `None` if nothing was recorded.
    pub(crate) fn median_per_call(&self) -> Option<f64> {
        (self.samples() > 0).then(|| self.histogram.value_at_quantile(0.5) as f64 / self.calls_per_sample as f64)
    }
}

/// Percentiles of one series, per call, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Summary {
    /// Median.
    pub(crate) p50_ns: u64,
    /// 90th percentile.
    pub(crate) p90_ns: u64,
    /// 99th percentile.
    pub(crate) p99_ns: u64,
    /// 99.9th percentile.
    pub(crate) p999_ns: u64,
    /// Largest sample.
    pub(crate) max_ns: u64,
    /// Calls the samples cover.
    pub(crate) count: u64,
    /// Values recorded.
    pub(crate) samples: u64,
}

/// `numerator / denominator` of two medians per call, to 4 decimals, or
/// `None` if either is missing or 0.
pub(crate) fn median_ratio(numerator: &Series, denominator: &Series) -> Option<f64> {
    let (n, d) = (numerator.median_per_call()?, denominator.median_per_call()?);
    (n > 0.0 && d > 0.0).then(|| round_to(n / d, 4))
}

/// `value` rounded to `decimals` decimal places.
pub(crate) fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// Nanoseconds for people: `45 ns`, `12.3 µs`, `4.56 ms`, `1.20 s`.
pub(crate) fn format_ns(ns: u64) -> String {
    let value = ns as f64;
    match ns {
        0..10_000 => format!("{ns} ns"),
        10_000..1_000_000 => format!("{:.1} µs", value / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", value / 1e6),
        _ => format!("{:.2} s", value / 1e9),
    }
}

/// A table of series, one row each: name, the percentiles and the calls.
pub(crate) fn render_table(rows: &[(&str, &Summary)]) -> String {
    let name_width = rows.iter().map(|(name, _)| name.chars().count()).max().unwrap_or(0).max("series".len());
    let mut out = format!(
        "{:<name_width$}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}  {:>10}\n",
        "series", "p50", "p90", "p99", "p99.9", "max", "count"
    );
    for (name, s) in rows {
        let _ = writeln!(
            out,
            "{:<name_width$}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}  {:>10}",
            name,
            format_ns(s.p50_ns),
            format_ns(s.p90_ns),
            format_ns(s.p99_ns),
            format_ns(s.p999_ns),
            format_ns(s.max_ns),
            s.count
        );
    }
    out
}

/// Which clock a subcommand measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// `LocalClock`, from the shared-memory segment.
    Local,
    /// `RemoteClock`, over QUIC.
    Remote,
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

/// The result of `tsbench now`; the module doc describes each JSON field.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct NowReport {
    /// Always `"now"`.
    pub(crate) command: &'static str,
    /// Local or remote.
    pub(crate) mode: Mode,
    /// Segment path or server address.
    pub(crate) target: String,
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
    /// `now()` calls that failed.
    pub(crate) errors: u64,
    /// Failures by kind.
    pub(crate) error_kinds: BTreeMap<String, u64>,
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

impl NowReport {
    /// The JSON object, on one line.
    pub(crate) fn to_json(&self) -> anyhow::Result<String> {
        serde_json::to_string(self).context("cannot encode the report as JSON")
    }

    /// Whether more than 1 % of the calls failed (the run then fails).
    pub(crate) fn too_many_errors(&self) -> bool {
        self.errors.saturating_mul(100) > self.count
    }

    /// `kind: n, kind: n` for the error kinds, or `none`.
    pub(crate) fn error_kinds_text(&self) -> String {
        error_kinds_text(&self.error_kinds)
    }

    /// The report for people: a header line, the table, the ratio, the errors.
    pub(crate) fn to_human(&self) -> String {
        let (now_name, threads) = match self.mode {
            Mode::Local => ("LocalClock::now()", format!(", {} thread{}", self.threads, plural(self.threads))),
            Mode::Remote => ("RemoteClock::now_at()", String::new()),
        };
        let (what, timing) = match self.mode {
            Mode::Local => ("segment", format!("timed in batches of {}", self.batch)),
            Mode::Remote => ("remote", "each timed alone".to_owned()),
        };
        let mut out = format!(
            "tsbench now: {what} {}{threads}, {} calls, {timing}, {:.2} s\n\n",
            self.target, self.count, self.elapsed_s
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
        let _ = writeln!(out, "errors: {} of {} calls ({})", self.errors, self.count, self.error_kinds_text());
        out
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    fn series_of(values: impl IntoIterator<Item = u64>, calls_per_sample: u64) -> Series {
        let mut series = Series::new(1_000_000_000, calls_per_sample).unwrap();
        for v in values {
            series.record(v);
        }
        series
    }

    #[test]
    fn tallies_merge() {
        let mut a = ErrorTally::default();
        a.add("stale");
        a.add("stale");
        let mut b = ErrorTally::default();
        b.add("busy");
        b.add("stale");
        a.merge(b);
        assert_eq!(a.total, 4);
        assert_eq!(a.by_kind, BTreeMap::from([("busy".to_owned(), 1), ("stale".to_owned(), 3)]));
        assert_eq!(error_kinds_text(&a.by_kind), "busy: 1, stale: 3");
        assert_eq!(error_kinds_text(&BTreeMap::new()), "none");
    }

    #[test]
    fn summary_percentiles_of_1_to_1000() {
        let s = series_of(1..=1000, 1).summary();
        assert_eq!(s.p50_ns, 500);
        assert_eq!(s.p90_ns, 900);
        assert_eq!(s.p99_ns, 990);
        assert_eq!(s.p999_ns, 999);
        assert_eq!(s.max_ns, 1000);
        assert_eq!(s.samples, 1000);
        assert_eq!(s.count, 1000);
    }

    #[test]
    fn batch_totals_are_divided_per_call() {
        // Batches of 64 calls taking 64 × 1 … 64 × 1000 ns (+ 31 ns, rounded away).
        let s = series_of((1..=1000).map(|v| v * 64 + 31), 64).summary();
        assert_eq!((s.p50_ns, s.p90_ns, s.max_ns), (500, 900, 1000), "{s:?}");
        assert_eq!(s.samples, 1000);
        assert_eq!(s.count, 64_000);
        let fine = series_of([64 * 27 + 26; 5], 64);
        assert_eq!(fine.summary().p50_ns, 27);
        assert!((fine.median_per_call().unwrap() - (64.0 * 27.0 + 26.0) / 64.0).abs() < 1e-9);
    }

    #[test]
    fn summary_keeps_three_significant_figures() {
        let s = series_of([123_456, 123_456, 123_456], 1).summary();
        assert!(s.p50_ns.abs_diff(123_456) <= 123, "{s:?}");
        assert!(s.p50_ns <= s.p99_ns && s.p99_ns <= s.max_ns);
    }

    #[test]
    fn empty_and_out_of_range_series() {
        assert_eq!(series_of([], 64).summary(), Summary::default());
        assert_eq!(series_of([], 64).median_per_call(), None);
        let mut series = Series::new(1_000, 1).unwrap();
        series.record(5_000_000);
        series.record(0);
        let s = series.summary();
        assert_eq!(s.samples, 2);
        assert!(s.max_ns >= 1_000 && s.max_ns < 1_010, "clamped to the top: {s:?}");
    }

    #[test]
    fn series_merge() {
        let mut a = series_of([64 * 10; 3], 64);
        a.merge(&series_of([64 * 20; 1], 64)).unwrap();
        assert_eq!(a.summary().samples, 4);
        assert_eq!(a.summary().max_ns, 20);
        assert!(a.merge(&series_of([1], 1)).is_err(), "different batch sizes");
    }

    #[test]
    fn ratio_of_medians() {
        let now = series_of([64 * 45], 64);
        let realtime = series_of([64 * 37], 64);
        let close = |ratio: Option<f64>| ratio.is_some_and(|r| (r - 45.0 / 37.0).abs() < 1e-3);
        // Within the histogram's 3 significant figures (2880 and 2368 ns sit in 2-ns buckets).
        assert!(close(median_ratio(&now, &realtime)), "{:?}", median_ratio(&now, &realtime));
        assert!(close(median_ratio(&series_of([45], 1), &realtime)), "per call against batches");
        assert_eq!(median_ratio(&series_of([45], 1), &series_of([37], 1)), Some(1.2162), "rounded to 4 decimals");
        assert_eq!(median_ratio(&now, &series_of([], 64)), None);
        assert_eq!(median_ratio(&series_of([], 64), &realtime), None);
        assert_eq!(median_ratio(&now, &series_of([0], 64)), None);
    }

    #[test]
    fn nanoseconds_read_well() {
        assert_eq!(format_ns(45), "45 ns");
        assert_eq!(format_ns(9_999), "9999 ns");
        assert_eq!(format_ns(12_345), "12.3 µs");
        assert_eq!(format_ns(999_949), "999.9 µs");
        assert_eq!(format_ns(4_560_000), "4.56 ms");
        assert_eq!(format_ns(45_600_000), "45.60 ms");
        assert_eq!(format_ns(12_000_000_000), "12.00 s");
    }

    fn sample_report(mode: Mode) -> NowReport {
        let s = Summary { p50_ns: 45, p90_ns: 47, p99_ns: 60, p999_ns: 120, max_ns: 9_000, count: 640, samples: 10 };
        let remote = mode == Mode::Remote;
        NowReport {
            command: "now",
            mode,
            target: "/dev/shm/tsod".to_owned(),
            threads: 1,
            batch: 64,
            rate: remote.then_some(900),
            elapsed_s: 0.5,
            count: 640,
            errors: 0,
            error_kinds: BTreeMap::new(),
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
        report.errors = 10;
        assert!(!report.too_many_errors());
        report.errors = 11;
        assert!(report.too_many_errors());
        report.error_kinds = BTreeMap::from([("timeout".to_owned(), 10), ("disrupted".to_owned(), 1)]);
        assert_eq!(report.error_kinds_text(), "disrupted: 1, timeout: 10");
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
