//! `selection::select` over 3, 5 and 9 sources beside sorting the same
//! 2n edges, the baseline, in the same run.
//!
//! `cargo bench -p tsod --bench selection`. The inputs are what a site sees:
//! intervals of different widths (a GPS receiver's tens of microseconds,
//! NTP servers' hundreds) that overlap around true time, plus one
//! falseticker 5 ms off, judged with the default `f = ⌊(n − 1)/2⌋`. The
//! algorithm collects the 2n edges, sorts them and sweeps once, so the
//! baseline (`sort-edges`) collects the same `(Timestamp, bool)` edges into
//! a `Vec` and `sort_unstable`s them: the ratio is what the sweep, the bound
//! and the verdicts cost on top of the sort they cannot avoid.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark set-up")]
#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tsod::selection::{Selection, Verdict, default_max_faulty, select};
use tsod_proto::{TimeInterval, Timestamp};

/// True time at the instant the intervals are projected to.
const TRUE_TIME_NS: u64 = 1_795_462_647_123_456_789;

/// Truechimers as (offset of the midpoint from true time in ns, half-width
/// in µs); every one contains true time. Sources are taken from the front.
const TRUECHIMERS: [(i64, u64); 8] = [
    (1_500, 15),
    (-120_000, 410),
    (65_000, 320),
    (-9_000, 95),
    (310_000, 650),
    (-240_000, 520),
    (4_000, 60),
    (180_000, 900),
];

/// `n` intervals: `n − 1` truechimers with the falseticker in the middle of
/// the input order.
fn intervals(n: usize) -> Vec<TimeInterval> {
    let mut intervals: Vec<TimeInterval> = TRUECHIMERS[..n - 1]
        .iter()
        .map(|&(offset_ns, half_width_us)| {
            let midpoint = TRUE_TIME_NS.checked_add_signed(offset_ns).unwrap();
            TimeInterval::around(Timestamp::from_nanos(midpoint), Duration::from_micros(half_width_us))
        })
        .collect();
    let falseticker = TimeInterval::around(Timestamp::from_nanos(TRUE_TIME_NS + 5_000_000), Duration::from_micros(200));
    intervals.insert(n / 2, falseticker);
    intervals
}

/// The baseline: the edges `select` sorts, sorted the same way.
fn sort_edges(intervals: &[TimeInterval]) -> Vec<(Timestamp, bool)> {
    let mut edges: Vec<(Timestamp, bool)> =
        intervals.iter().flat_map(|i| [(i.earliest(), false), (i.latest(), true)]).collect();
    edges.sort_unstable();
    edges
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("selection");
    for n in [3, 5, 9] {
        let intervals = intervals(n);
        let max_faulty = default_max_faulty(n);
        let Selection::Agreed { bound, verdicts } = select(&intervals, max_faulty) else {
            unreachable!("the truechimers agree");
        };
        assert!(bound.contains(Timestamp::from_nanos(TRUE_TIME_NS)), "n = {n}: the bound must contain true time");
        let falsetickers: Vec<usize> =
            verdicts.iter().enumerate().filter(|(_, v)| **v == Verdict::Falseticker).map(|(i, _)| i).collect();
        assert_eq!(falsetickers, [n / 2], "n = {n}: exactly the planted falseticker");

        group.bench_with_input(BenchmarkId::new("select", n), &intervals, |b, intervals| {
            b.iter(|| black_box(select(black_box(intervals), black_box(max_faulty))))
        });
        group.bench_with_input(BenchmarkId::new("sort-edges", n), &intervals, |b, intervals| {
            b.iter(|| black_box(sort_edges(black_box(intervals))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
