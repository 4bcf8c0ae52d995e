//! `LocalClock::now()` (with the SPEC.md §5.6 suspend check) and
//! `LocalClock::now_unchecked()` beside the bare clock reads they are
//! measured against.
//!
//! `cargo bench -p tsod-client --bench now`. The segment is written by the
//! bench itself (`common::BenchSegment`), so no daemon is needed.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark set-up")]
#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]

mod common;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tsod_client::LocalClock;
use tsod_shm::{ClockId, clock_gettime};

fn bench(c: &mut Criterion) {
    let segment = common::BenchSegment::publish("now");
    let clock = LocalClock::open_path(segment.path()).unwrap();
    let mut group = c.benchmark_group("now");
    group.bench_function("clock_gettime(CLOCK_REALTIME)", |b| b.iter(|| black_box(clock_gettime(ClockId::Realtime))));
    group.bench_function("clock_gettime(CLOCK_MONOTONIC_RAW)", |b| {
        b.iter(|| black_box(clock_gettime(ClockId::MonotonicRaw)))
    });
    group.bench_function("LocalClock::now", |b| b.iter(|| black_box(clock.now().unwrap())));
    group.bench_function("LocalClock::now_unchecked", |b| b.iter(|| black_box(clock.now_unchecked().unwrap())));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
