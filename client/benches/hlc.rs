//! `HybridClock::now()` and `update()` beside `LocalClock::now()` and
//! `LocalClock::now_unchecked()`, the baselines, in the same run.
//!
//! `cargo bench -p tsod-client --bench hlc`. As in the `now` bench, the
//! segment is written by the bench itself (`common::BenchSegment`), so no
//! daemon is needed. The HLC reads its bound through `LocalClock::now()`
//! (with the SPEC.md §5.6 suspend check), so the cost of the HLC proper
//! (one compare-and-swap) shows as the difference.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark set-up")]
#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tsod_client::hlc::HybridClock;
use tsod_client::{HybridTimestamp, LocalClock};

fn bench(c: &mut Criterion) {
    let segment = common::BenchSegment::publish("hlc");
    let clock = LocalClock::open_path(segment.path()).unwrap();
    let hlc = HybridClock::new(LocalClock::open_path(segment.path()).unwrap());
    // What another node typically sends: a timestamp a little in the past.
    let received = HybridTimestamp::from_timestamp_floor(
        clock.now().unwrap().earliest().checked_sub(Duration::from_micros(500)).unwrap(),
    )
    .unwrap();

    let mut group = c.benchmark_group("hlc");
    group.bench_function("LocalClock::now_unchecked", |b| b.iter(|| black_box(clock.now_unchecked().unwrap())));
    group.bench_function("LocalClock::now", |b| b.iter(|| black_box(clock.now().unwrap())));
    group.bench_function("HybridClock::now", |b| b.iter(|| black_box(hlc.now().unwrap())));
    group.bench_function("HybridClock::update", |b| b.iter(|| black_box(hlc.update(black_box(received)).unwrap())));
    group.bench_function("HybridClock::commit_timestamp", |b| b.iter(|| black_box(hlc.commit_timestamp().unwrap())));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
