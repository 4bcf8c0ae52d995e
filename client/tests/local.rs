//! `LocalClock` on segments the test writes as the daemon would: the
//! default `now()` refuses a read across a suspend the daemon has not seen
//! yet (SPEC.md §5.6) where `now_unchecked()` does not, and both follow a
//! segment file the daemon replaced.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tsod_client::{
    BoundError, ClockError, ClockStatus, DriftModel, LocalClock, MonoInstant, Ppb, TimeInterval, Timescale, sys,
};
use tsod_proto::shm::{Anchor, PublishedState, SHM_FILE_SIZE, ShmHeader};
use tsod_shm::WriteMapping;

/// How far `CLOCK_BOOTTIME − CLOCK_MONOTONIC_RAW` grew since publication in
/// the "unseen suspend" segments: a 5 s suspend the daemon has not ticked
/// after yet.
const UNSEEN_SUSPEND: Duration = Duration::from_secs(5);

/// A segment file at `path`, written as the daemon would; the writer's
/// mapping lives as long as this value.
struct Published {
    _mapping: WriteMapping,
}

/// `tsod-client-local-<pid>-<name>` in the temporary directory.
fn segment_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tsod-client-local-{}-{name}", std::process::id()))
}

/// Writes a segment of this boot at `path`, by creating it beside and
/// renaming it over `path` (as the daemon replaces a file), with a
/// synchronized ±20 µs anchor taken now, valid for `valid_for`, whose
/// `reference_boottime` is `CLOCK_BOOTTIME` now minus `slept` (a suspend of
/// that length since publication, as BOOTTIME − RAW grew by it).
fn publish(path: &Path, valid_for: Duration, slept: Duration) -> Published {
    let beside = path.with_extension("new");
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&beside).unwrap();
    file.set_len(u64::from(SHM_FILE_SIZE)).unwrap();
    let mapping = WriteMapping::new(&file).unwrap();
    ShmHeader { timescale: Timescale::UtcSmear24h, boot_id: sys::this_boot_id().unwrap() }.write(mapping.segment());
    let reference = sys::reader_clock_now().unwrap();
    let boot = sys::boottime_now().unwrap();
    mapping.segment().publish(&PublishedState {
        anchor: Anchor {
            reference,
            interval: TimeInterval::around(sys::realtime_now().unwrap(), Duration::from_micros(20)),
            rates: DriftModel::new(Ppb::ZERO, Ppb::from_ppm(2)).unwrap().rates(),
            status: ClockStatus::Synchronized,
            valid_until: reference.checked_add(valid_for).unwrap(),
        },
        disruption_count: 0,
        reference_boottime: MonoInstant::from_nanos(boot.as_nanos().checked_sub(nanos(slept)).unwrap()),
        writer_instance: 1,
    });
    std::fs::rename(&beside, path).unwrap();
    Published { _mapping: mapping }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap()
}

/// Removes the segment file when the test ends, passed or not.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_file(self.0.with_extension("new"));
    }
}

#[test]
fn now_refuses_a_read_after_an_unseen_suspend() {
    let path = segment_path("unseen-suspend");
    let _remove = RemoveOnDrop(path.clone());
    let _segment = publish(&path, Duration::from_secs(3600), UNSEEN_SUSPEND);
    let clock = LocalClock::open_path(&path).unwrap();

    let checked = clock.now();
    assert!(
        matches!(checked, Err(ClockError::Bound(BoundError::Disrupted))),
        "the default read must refuse a read after a suspend: {checked:?}"
    );
    // The named opt-out still extrapolates the pre-suspend anchor: the
    // interval SPEC.md §5.2 warns may exclude true time.
    assert!(clock.now_unchecked().is_ok());
}

#[test]
fn now_reads_a_segment_without_a_suspend() {
    let path = segment_path("no-suspend");
    let _remove = RemoveOnDrop(path.clone());
    let _segment = publish(&path, Duration::from_secs(3600), Duration::ZERO);
    let clock = LocalClock::open_path(&path).unwrap();

    let checked = clock.now().unwrap();
    let unchecked = clock.now_unchecked().unwrap();
    assert!(checked.half_width() >= Duration::from_micros(20));
    assert!(unchecked.half_width() >= Duration::from_micros(20));
}

#[test]
fn now_follows_a_replaced_segment_once_the_old_one_is_stale() {
    let path = segment_path("replaced-stale");
    let _remove = RemoveOnDrop(path.clone());
    let _old = publish(&path, Duration::from_millis(200), Duration::ZERO);
    let clock = LocalClock::open_path(&path).unwrap();
    clock.now().unwrap();

    let _new = publish(&path, Duration::from_secs(3600), Duration::ZERO);
    std::thread::sleep(Duration::from_millis(250));
    // The old file's anchor is stale now; the read follows the new file.
    clock.now().expect("now() followed the replaced file");
    clock.now_unchecked().expect("now_unchecked() reads the file now() followed");
}

#[test]
fn now_follows_a_replaced_segment_past_an_unseen_suspend() {
    let path = segment_path("replaced-suspend");
    let _remove = RemoveOnDrop(path.clone());
    // The old file's last anchor predates a suspend; the daemon restarted
    // into a new file, so the old one never publishes again.
    let _old = publish(&path, Duration::from_secs(3600), UNSEEN_SUSPEND);
    let clock = LocalClock::open_path(&path).unwrap();
    assert!(matches!(clock.now(), Err(ClockError::Bound(BoundError::Disrupted))));

    let _new = publish(&path, Duration::from_secs(3600), Duration::ZERO);
    std::thread::sleep(tsod_client::REOPEN_INTERVAL);
    clock.now().expect("now() followed the replaced file");
}
