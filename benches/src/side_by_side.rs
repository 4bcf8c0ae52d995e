//! `tsbench side-by-side`: tsod and AWS ClockBound read from one process,
//! on one host, against the host's own clock (`benches/clockbound-compare.sh`
//! sets up the two chronyd servers and the daemons).
//!
//! # Method
//!
//! * Every `--interval` (default 100 ms) for `--duration` (default 60 s),
//!   each reader is read once, in an order that rotates every round: tsod's
//!   segments with `LocalClock::now()` (`--tsod NAME=PATH`), ClockBound's
//!   with the published `clock-bound-client` crate (`--clockbound NAME=PATH`).
//!   Each read is bracketed by two `clock_gettime(CLOCK_REALTIME)`; the
//!   interval *misses host time* if it ends before the first or starts
//!   after the second. That is the right truth only when the host's
//!   realtime is what the sources serve (a `local stratum 1` chronyd on
//!   this host, as the script sets up).
//! * Then the cost of a read: for each reader, rounds of one batch of 64
//!   reads and one batch of 64 `clock_gettime(CLOCK_REALTIME)`, for
//!   `--cost-rounds` rounds; the ratio is of the medians of the per-call
//!   averages, so both figures come from the same run.
//!
//! The Markdown table has one row per reader: reads, failed reads,
//! p50/p90/max half-width, reads that missed host time, and the cost ratio.
//! `--json` prints the same as one object.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clock_bound_client::ClockBoundClient;
use serde::Serialize;
use tsod_client::LocalClock;
use tsod_shm::ClockId;

use crate::clock::{clock_gettime, timer_nanos};
use crate::plan;

/// Reads per timed batch in the cost phase.
const BATCH: u32 = 64;

/// Options of `tsbench side-by-side`.
#[derive(Debug, clap::Args)]
pub(crate) struct SideBySideArgs {
    /// A tsod segment to read, as NAME=PATH (repeatable).
    #[arg(long = "tsod", value_name = "NAME=PATH", value_parser = named_path)]
    tsod: Vec<(String, PathBuf)>,
    /// A ClockBound segment to read, as NAME=PATH (repeatable).
    #[arg(long = "clockbound", value_name = "NAME=PATH", value_parser = named_path)]
    clockbound: Vec<(String, PathBuf)>,
    /// How long to sample the half-widths.
    #[arg(long, value_name = "D", default_value = "60s", value_parser = plan::parse_duration)]
    duration: Duration,
    /// Time between two rounds of reads.
    #[arg(long, value_name = "D", default_value = "100ms", value_parser = plan::parse_duration)]
    interval: Duration,
    /// Rounds of the cost measurement (each 64 reads and 64 clock_gettime per reader).
    #[arg(long, value_name = "N", default_value_t = 2_000)]
    cost_rounds: u32,
    /// Print JSON instead of a Markdown table.
    #[arg(long)]
    json: bool,
}

fn named_path(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => Ok((name.to_owned(), PathBuf::from(path))),
        _ => Err(format!("expected NAME=PATH, got {text:?}")),
    }
}

/// One bounded clock as the harness reads it.
enum Reader {
    Tsod(LocalClock),
    ClockBound(ClockBoundClient),
}

impl Reader {
    /// `(earliest, latest)` in Unix nanoseconds.
    fn read(&mut self) -> Result<(i128, i128), String> {
        match self {
            Self::Tsod(clock) => clock
                .now()
                .map(|i| (i128::from(i.earliest().as_nanos()), i128::from(i.latest().as_nanos())))
                .map_err(|e| e.to_string()),
            Self::ClockBound(client) => client
                .now()
                .map(|r| {
                    (
                        timespec_nanos(r.earliest.tv_sec(), r.earliest.tv_nsec()),
                        timespec_nanos(r.latest.tv_sec(), r.latest.tv_nsec()),
                    )
                })
                .map_err(|e| format!("{e:?}")),
        }
    }
}

fn timespec_nanos(sec: i64, nsec: i64) -> i128 {
    i128::from(sec) * 1_000_000_000 + i128::from(nsec)
}

fn realtime_nanos() -> anyhow::Result<i128> {
    let t = clock_gettime(ClockId::Realtime)?;
    let d = t.since_epoch().context("the host's realtime is before 1970")?;
    Ok(i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// One reader's figures.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
struct Row {
    name: String,
    kind: &'static str,
    reads: usize,
    failed: usize,
    p50_half_width_ns: Option<i128>,
    p90_half_width_ns: Option<i128>,
    max_half_width_ns: Option<i128>,
    missed_host_time: usize,
    largest_miss_ns: i128,
    now_ns_per_call: f64,
    clock_gettime_ns_per_call: f64,
    now_over_clock_gettime: f64,
}

/// What one reader's reads came to.
#[derive(Debug, Default)]
struct Tally {
    /// Half-widths of the successful reads (ns).
    widths: Vec<i128>,
    failed: usize,
    /// Reads whose interval missed host time.
    missed: usize,
    /// The largest miss (ns).
    largest_miss: i128,
}

impl Tally {
    /// One read, bracketed by host realtime `before` and `after` (ns).
    fn record(&mut self, before: i128, read: Result<(i128, i128), String>, after: i128) {
        match read {
            Ok((earliest, latest)) => {
                self.widths.push((latest - earliest) / 2);
                let miss = (before - latest).max(earliest - after);
                if miss > 0 {
                    self.missed += 1;
                    self.largest_miss = self.largest_miss.max(miss);
                }
            }
            Err(_) => self.failed += 1,
        }
    }
}

/// Runs `tsbench side-by-side`.
pub(crate) fn run(args: &SideBySideArgs) -> anyhow::Result<()> {
    let mut readers: Vec<(String, &'static str, Reader, Tally)> = Vec::new();
    for (name, path) in &args.tsod {
        let clock = LocalClock::open_path(path).with_context(|| format!("opening tsod segment {}", path.display()))?;
        readers.push((name.clone(), "tsod", Reader::Tsod(clock), Tally::default()));
    }
    for (name, path) in &args.clockbound {
        let text = path.to_str().context("a ClockBound path must be UTF-8")?;
        let client = ClockBoundClient::new_with_path(text)
            .map_err(|e| anyhow::anyhow!("opening ClockBound segment {text}: {e:?}"))?;
        readers.push((name.clone(), "clockbound", Reader::ClockBound(client), Tally::default()));
    }
    if readers.is_empty() {
        bail!("nothing to read: give --tsod NAME=PATH and/or --clockbound NAME=PATH");
    }
    if args.interval.is_zero() {
        bail!("--interval must be above zero");
    }
    let n = readers.len();
    let start = Instant::now();
    let mut round = 0usize;
    while start.elapsed() < args.duration {
        for k in 0..n {
            let Some((_, _, reader, tally)) = readers.get_mut((k + round) % n) else { continue };
            let before = realtime_nanos()?;
            let read = reader.read();
            let after = realtime_nanos()?;
            tally.record(before, read, after);
        }
        round += 1;
        let due = args.interval.saturating_mul(u32::try_from(round).unwrap_or(u32::MAX));
        std::thread::sleep(due.saturating_sub(start.elapsed()));
    }
    let mut rows = Vec::new();
    for (name, kind, reader, tally) in &mut readers {
        let (now_ns, cg_ns) = cost(reader, args.cost_rounds)?;
        rows.push(row(name, kind, std::mem::take(tally), now_ns, cg_ns));
    }
    if args.json {
        println!("{}", serde_json::to_string(&serde_json::json!({"command": "side-by-side", "rows": rows}))?);
    } else {
        print!("{}", markdown(&rows));
    }
    if rows.iter().any(|r| r.missed_host_time > 0) {
        bail!("a reader published an interval that missed host time");
    }
    Ok(())
}

fn row(name: &str, kind: &'static str, mut tally: Tally, now_ns: f64, cg_ns: f64) -> Row {
    let widths = &mut tally.widths;
    widths.sort_unstable();
    let pct = |p: usize| (!widths.is_empty()).then(|| widths.get((widths.len() - 1) * p / 100).copied()).flatten();
    Row {
        name: name.to_owned(),
        kind,
        reads: widths.len(),
        failed: tally.failed,
        p50_half_width_ns: pct(50),
        p90_half_width_ns: pct(90),
        max_half_width_ns: widths.last().copied(),
        missed_host_time: tally.missed,
        largest_miss_ns: tally.largest_miss,
        now_ns_per_call: now_ns,
        clock_gettime_ns_per_call: cg_ns,
        now_over_clock_gettime: if cg_ns > 0.0 { now_ns / cg_ns } else { f64::NAN },
    }
}

/// Median per-call nanoseconds of `reader` and of `clock_gettime(REALTIME)`,
/// in alternating batches.
fn cost(reader: &mut Reader, rounds: u32) -> anyhow::Result<(f64, f64)> {
    let mut reads = Vec::new();
    let mut bare = Vec::new();
    for round in 0..rounds.max(1) {
        let mut time_reader = || -> anyhow::Result<u64> {
            let t0 = timer_nanos()?;
            for _ in 0..BATCH {
                let _ = black_box(reader.read());
            }
            Ok(timer_nanos()?.saturating_sub(t0))
        };
        let time_bare = || -> anyhow::Result<u64> {
            let t0 = timer_nanos()?;
            for _ in 0..BATCH {
                let _ = black_box(clock_gettime(ClockId::Realtime));
            }
            Ok(timer_nanos()?.saturating_sub(t0))
        };
        if round % 2 == 0 {
            reads.push(time_reader()?);
            bare.push(time_bare()?);
        } else {
            bare.push(time_bare()?);
            reads.push(time_reader()?);
        }
    }
    Ok((median(&mut reads) / f64::from(BATCH), median(&mut bare) / f64::from(BATCH)))
}

#[expect(clippy::cast_precision_loss, reason = "nanoseconds per batch, far below 2^52")]
fn median(values: &mut [u64]) -> f64 {
    values.sort_unstable();
    values.get(values.len() / 2).map_or(f64::NAN, |v| *v as f64)
}

#[expect(clippy::cast_precision_loss, reason = "nanoseconds shown in µs with one decimal")]
fn micros(ns: Option<i128>) -> String {
    ns.map_or_else(|| "—".to_owned(), |v| format!("{:.1} µs", v as f64 / 1_000.0))
}

fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| reader | reads (failed) | p50 half-width | p90 | max | missed host time | now() / clock_gettime |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} ({}) | {} ({}) | {} | {} | {} | {} | {:.2}× ({:.1} / {:.1} ns) |\n",
            r.name,
            r.kind,
            r.reads,
            r.failed,
            micros(r.p50_half_width_ns),
            micros(r.p90_half_width_ns),
            micros(r.max_half_width_ns),
            r.missed_host_time,
            r.now_over_clock_gettime,
            r.now_ns_per_call,
            r.clock_gettime_ns_per_call,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;
    use crate::cli::FromWords as _;

    #[test]
    fn readers_are_named_paths() {
        let a =
            SideBySideArgs::from_words(&["--tsod", "tsod=/run/tsod/segment", "--clockbound", "cb=/x/shm0"]).unwrap();
        assert_eq!(a.tsod, vec![("tsod".to_owned(), PathBuf::from("/run/tsod/segment"))]);
        assert_eq!(a.clockbound.len(), 1);
        assert_eq!((a.duration, a.interval), (Duration::from_secs(60), Duration::from_millis(100)));
        assert!(SideBySideArgs::from_words(&["--tsod", "no-name"]).is_err());
        assert!(SideBySideArgs::from_words(&["--tsod", "=/path"]).is_err());
    }

    #[test]
    fn percentiles_and_the_table() {
        let tally = Tally { widths: (1..=100).rev().map(|v| v * 1_000).collect(), failed: 2, ..Tally::default() };
        let r = row("t", "tsod", tally, 50.0, 40.0);
        assert_eq!(
            (r.p50_half_width_ns, r.p90_half_width_ns, r.max_half_width_ns),
            (Some(50_000), Some(90_000), Some(100_000))
        );
        assert!((r.now_over_clock_gettime - 1.25).abs() < 1e-9);
        let table = markdown(&[r]);
        assert!(
            table.contains("| t (tsod) | 100 (2) | 50.0 µs | 90.0 µs | 100.0 µs | 0 | 1.25× (50.0 / 40.0 ns) |"),
            "{table}"
        );
        let empty = row("e", "clockbound", Tally::default(), 0.0, 0.0);
        assert_eq!(empty.p50_half_width_ns, None);
        assert!(markdown(&[empty]).contains("| — | — | — |"));
    }

    #[test]
    fn an_interval_that_misses_the_bracket_of_host_time_is_counted() {
        let mut t = Tally::default();
        // Host time was somewhere in [1000, 1100] during the read.
        t.record(1_000, Ok((900, 1_000)), 1_100); // touches the first reading: contains it
        t.record(1_000, Ok((1_100, 1_200)), 1_100); // touches the second
        t.record(1_000, Ok((900, 999)), 1_100); // ends 1 ns before
        t.record(1_000, Ok((1_150, 1_300)), 1_100); // starts 50 ns after
        t.record(1_000, Err("segment gone".into()), 1_100);
        assert_eq!((t.widths.len(), t.failed, t.missed, t.largest_miss), (4, 1, 2, 50));
    }
}
