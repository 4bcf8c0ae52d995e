//! What every tsbench report shares: percentile summaries of
//! hdrhistograms, the tally of errors, the run header that opens every
//! JSON object, the table of series, and printing a report as JSON or as
//! text ([`print`]). Each subcommand's report, with its JSON fields
//! documented, sits beside the subcommand: `now/report.rs`,
//! `uncertainty/report.rs`, `tso/report.rs`, `commit_wait/report.rs`.
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
//! # The run header and the errors (every report)
//!
//! | field | meaning |
//! |---|---|
//! | `command` | the subcommand: `"now"`, `"uncertainty"`, `"tso"`, `"commit-wait"` |
//! | `mode` | `"local"` (shared memory) or `"remote"` (QUIC); absent from `tso`, which is remote only |
//! | `target` | the segment path (local) or the address as given, `IP:PORT` or `HOST:PORT` (remote) |
//! | `address` | remote `uncertainty`, `commit-wait` and `tso` only: the `IP:PORT` connected to |
//! | `errors` | calls (or reads) that failed |
//! | `error-kinds` | failures by kind, e.g. `{"stale":3}`; each report says which kinds it counts |

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::Serialize;
use tsod_bench::text::format_ns;

use crate::output;

/// Failed calls (or reads), by kind; in a report's JSON, `errors` and
/// `error-kinds`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct ErrorTally {
    /// All failures.
    #[serde(rename = "errors")]
    pub(crate) total: u64,
    /// Failures per kebab-case kind.
    #[serde(rename = "error-kinds")]
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

    /// `kind: n, kind: n`, or `none`.
    pub(crate) fn kinds_text(&self) -> String {
        if self.by_kind.is_empty() {
            return "none".to_owned();
        }
        self.by_kind.iter().map(|(kind, n)| format!("{kind}: {n}")).collect::<Vec<_>>().join(", ")
    }

    /// Whether more than 1 % of `attempts` failed (a run then fails).
    pub(crate) fn over_one_percent_of(&self, attempts: u64) -> bool {
        self.total.saturating_mul(100) > attempts
    }
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

    /// Records one sample of a whole batch as [`Series::record`] does, in
    /// whole nanoseconds (saturating: the histogram clamps anyway).
    pub(crate) fn record_duration(&mut self, total: Duration) {
        self.record(u64::try_from(total.as_nanos()).unwrap_or(u64::MAX));
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

/// What every report opens with: which subcommand measured what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct RunHeader {
    /// The subcommand.
    pub(crate) command: &'static str,
    /// Local or remote; `None` for `tso`, which is remote only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) mode: Option<Mode>,
    /// Segment path, or the address as given.
    pub(crate) target: String,
    /// The address connected to, where the report gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) address: Option<String>,
}

impl RunHeader {
    /// Whether it measured a remote site (`tso` always does).
    pub(crate) fn is_remote(&self) -> bool {
        self.mode != Some(Mode::Local)
    }
}

/// A subcommand's report: its JSON object, and its text for people.
pub(crate) trait Report: Serialize {
    /// The report for people: a header line, the tables, the errors.
    fn to_human(&self) -> String;

    /// The JSON object, on one line.
    fn to_json(&self) -> anyhow::Result<String> {
        serde_json::to_string(self).context("cannot encode the report as JSON")
    }
}

/// Prints `report` on standard output: its JSON object on one line if
/// `json`, else its text.
pub(crate) fn print(report: &impl Report, json: bool) -> anyhow::Result<()> {
    if json {
        output::write_stdout(&format!("{}\n", report.to_json()?))
    } else {
        output::write_stdout(&report.to_human())
    }
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
        assert_eq!(a.kinds_text(), "busy: 1, stale: 3");
        assert_eq!(ErrorTally::default().kinds_text(), "none");
        assert!(!a.over_one_percent_of(400) && a.over_one_percent_of(399));
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
    fn durations_are_recorded_in_nanoseconds_saturating() {
        let mut series = Series::new(1_000_000, 1).unwrap();
        series.record_duration(Duration::from_micros(3));
        assert!(series.summary().p50_ns.abs_diff(3_000) <= 3, "{:?}", series.summary());
        series.record_duration(Duration::MAX);
        assert!(series.summary().max_ns >= 1_000_000, "clamped to the top: {:?}", series.summary());
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
}
