//! `HybridClock::now()` and `update()` beside `LocalClock::now()`, the
//! baseline, in the same run.
//!
//! `cargo bench -p tsod-client --bench hlc`. As in the `now` bench, the
//! segment is written by the bench itself (a synchronized state valid for an
//! hour), so no daemon is needed. The HLC reads its bound through
//! `LocalClock::now_checked()` (SPEC.md §5.6: a second clock read), which is
//! measured too, so the cost of the HLC proper (one compare-and-swap) shows
//! as the difference.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark set-up")]
#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]

use std::fs::OpenOptions;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tsod_client::hlc::HybridClock;
use tsod_client::mapping::WriteMapping;
use tsod_client::{HybridTimestamp, LocalClock, sys};
use tsod_proto::shm::{Anchor, PublishedState, SHM_FILE_SIZE, ShmHeader};
use tsod_proto::{ClockStatus, DriftModel, Ppb, TimeInterval, Timescale};

fn segment() -> (std::path::PathBuf, WriteMapping) {
    let path = std::env::temp_dir().join(format!("tsod-bench-hlc-{}", std::process::id()));
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    file.set_len(u64::from(SHM_FILE_SIZE)).unwrap();
    let mapping = WriteMapping::new(&file).unwrap();
    ShmHeader { timescale: Timescale::UtcSmear24h, boot_id: sys::this_boot_id().unwrap() }.write(mapping.segment());
    let reference = sys::reader_clock_now().unwrap();
    mapping.segment().publish(&PublishedState {
        anchor: Anchor {
            reference,
            interval: TimeInterval::around(sys::realtime_now().unwrap(), Duration::from_micros(20)),
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
    let hlc = HybridClock::new(LocalClock::open_path(&path).unwrap());
    // What another node typically sends: a timestamp a little in the past.
    let received = HybridTimestamp::from_timestamp_floor(
        clock.now().unwrap().earliest().checked_sub(Duration::from_micros(500)).unwrap(),
    )
    .unwrap();

    let mut group = c.benchmark_group("hlc");
    group.bench_function("LocalClock::now", |b| b.iter(|| black_box(clock.now().unwrap())));
    group.bench_function("LocalClock::now_checked", |b| b.iter(|| black_box(clock.now_checked().unwrap())));
    group.bench_function("HybridClock::now", |b| b.iter(|| black_box(hlc.now().unwrap())));
    group.bench_function("HybridClock::update", |b| b.iter(|| black_box(hlc.update(black_box(received)).unwrap())));
    group.bench_function("HybridClock::commit_timestamp", |b| b.iter(|| black_box(hlc.commit_timestamp().unwrap())));
    group.finish();
    let _ = std::fs::remove_file(path);
}

criterion_group!(benches, bench);
criterion_main!(benches);
