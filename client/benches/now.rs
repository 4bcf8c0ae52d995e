//! `LocalClock::now()` beside the bare clock reads it is measured against.
//!
//! `cargo bench -p tsod-client --bench now`. The segment is written by the
//! bench itself (a synchronized state valid for an hour), so no daemon is
//! needed: the read path does not depend on who wrote the segment.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark set-up")]
#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]

use std::fs::OpenOptions;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tsod_client::mapping::WriteMapping;
use tsod_client::{LocalClock, sys};
use tsod_proto::shm::{Anchor, PublishedState, SHM_FILE_SIZE, ShmHeader};
use tsod_proto::{ClockStatus, DriftModel, Ppb, TimeInterval, Timescale, Timestamp};

#[expect(unsafe_code, reason = "the bare clock_gettime baselines")]
fn clock_gettime(clock: libc::clockid_t) -> libc::timespec {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts
}

fn segment() -> (std::path::PathBuf, WriteMapping) {
    let path = std::env::temp_dir().join(format!("tsod-bench-now-{}", std::process::id()));
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    file.set_len(u64::from(SHM_FILE_SIZE)).unwrap();
    let mapping = WriteMapping::new(&file).unwrap();
    ShmHeader { timescale: Timescale::UtcSmear24h, boot_id: sys::this_boot_id().unwrap() }.write(mapping.segment());
    let reference = sys::reader_clock_now().unwrap();
    mapping.segment().publish(&PublishedState {
        anchor: Anchor {
            reference,
            interval: TimeInterval::around(Timestamp::from_nanos(1_795_462_647_000_000_000), Duration::from_micros(20)),
            rates: DriftModel::new(Ppb::new(23_456), Ppb::from_ppm(2)).unwrap().rates(),
            status: ClockStatus::Synchronized,
            valid_until: reference.checked_add(Duration::from_secs(3600)).unwrap(),
        },
        disruption_count: 0,
        reference_boottime: sys::boottime_now().unwrap(),
        writer_instance: 1,
    });
    (path, mapping)
}

fn bench(c: &mut Criterion) {
    let (path, _writer) = segment();
    let clock = LocalClock::open_path(&path).unwrap();
    let mut group = c.benchmark_group("now");
    group
        .bench_function("clock_gettime(CLOCK_REALTIME)", |b| b.iter(|| black_box(clock_gettime(libc::CLOCK_REALTIME))));
    group.bench_function("clock_gettime(CLOCK_MONOTONIC_RAW)", |b| {
        b.iter(|| black_box(clock_gettime(libc::CLOCK_MONOTONIC_RAW)))
    });
    group.bench_function("LocalClock::now", |b| b.iter(|| black_box(clock.now().unwrap())));

    group.finish();
    let _ = std::fs::remove_file(path);
}

criterion_group!(benches, bench);
criterion_main!(benches);
