//! The daemon's publisher and the client's `LocalClock` against each other,
//! through a real file and real mappings.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::Scratch;
use tsod::publish::{PublishError, Publisher, unsynchronized_state};
use tsod_client::{BoundError, ClockError, LocalClock, ShmError, sys};
use tsod_proto::shm::{Anchor, PublishedState};
use tsod_proto::{ClockStatus, DriftModel, Ppb, TimeInterval, Timescale, Timestamp};

fn realtime_now() -> Timestamp {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    Timestamp::from_nanos(u64::try_from(d.as_nanos()).unwrap())
}

/// A state that claims true time = the host's CLOCK_REALTIME ± `slack`,
/// valid for one second. On one machine the host clock is the truth.
fn synchronized_state(slack: Duration) -> PublishedState {
    let reference = sys::reader_clock_now().unwrap();
    let now = realtime_now();
    PublishedState {
        anchor: Anchor {
            reference,
            interval: TimeInterval::around(now, slack),
            rates: DriftModel::symmetric(Ppb::from_ppm(500)).unwrap().rates(),
            status: ClockStatus::Synchronized,
            valid_until: reference.checked_add(Duration::from_secs(1)).unwrap(),
        },
        disruption_count: 0,
        reference_boottime: sys::boottime_now().unwrap(),
        writer_instance: 7,
    }
}

#[test]
fn a_new_segment_is_readable_by_everyone_and_starts_unsynchronized() {
    let dir = Scratch::new("publish", "new");
    let path = dir.join("segment");
    let (_publisher, previous) = Publisher::open(&path, Timescale::UtcSmear24h).unwrap();
    assert_eq!(previous, None);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
    let clock = LocalClock::open_path(&path).unwrap();
    assert_eq!(clock.status().unwrap(), ClockStatus::Unsynchronized);
    assert!(matches!(clock.now(), Err(ClockError::Bound(BoundError::Unsynchronized))));
}

#[test]
fn client_intervals_contain_the_host_clock() {
    let dir = Scratch::new("publish", "truth");
    let path = dir.join("segment");
    let (publisher, _) = Publisher::open(&path, Timescale::UtcSmear24h).unwrap();
    publisher.publish(&synchronized_state(Duration::from_millis(2)));
    let clock = LocalClock::open_path(&path).unwrap();
    for _ in 0..1000 {
        let before = realtime_now();
        let interval = clock.now().unwrap();
        let after = realtime_now();
        // True time at the read lies between `before` and `after`; the
        // interval must overlap that window (it contains the true instant).
        assert!(interval.earliest() <= after && before <= interval.latest(), "{interval} vs [{before}, {after}]");
        assert!(interval.half_width() < Duration::from_millis(3));
    }
}

#[test]
fn a_stale_segment_is_an_error_not_a_bound() {
    let dir = Scratch::new("publish", "stale");
    let path = dir.join("segment");
    let (publisher, _) = Publisher::open(&path, Timescale::UtcSmear24h).unwrap();
    let mut state = synchronized_state(Duration::from_millis(1));
    state.anchor.valid_until = state.anchor.reference;
    publisher.publish(&state);
    let clock = LocalClock::open_path(&path).unwrap();
    assert!(matches!(clock.now(), Err(ClockError::Bound(BoundError::Stale))));
}

#[test]
fn one_writer_at_a_time_and_restarts_reuse_the_segment() {
    let dir = Scratch::new("publish", "reuse");
    let path = dir.join("segment");
    let (first, _) = Publisher::open(&path, Timescale::UtcSmear24h).unwrap();
    let state = synchronized_state(Duration::from_millis(1));
    first.publish(&state);
    assert!(matches!(Publisher::open(&path, Timescale::UtcSmear24h), Err(PublishError::AlreadyRunning(_))));

    let clock = LocalClock::open_path(&path).unwrap();
    drop(first); // the daemon stops; the client keeps its mapping
    let (second, previous) = Publisher::open(&path, Timescale::UtcSmear24h).unwrap();
    assert_eq!(previous, Some(state), "the previous state is handed over");
    second.publish(&unsynchronized_state(8, 1));
    assert_eq!(clock.status().unwrap(), ClockStatus::Unsynchronized, "same file: the old mapping sees the new writer");
}

#[test]
fn garbage_at_the_path_is_replaced_and_never_read_as_a_bound() {
    let dir = Scratch::new("publish", "garbage");
    let path = dir.join("segment");
    std::fs::write(&path, vec![0xAB; 4096]).unwrap();
    assert!(matches!(LocalClock::open_path(&path), Err(ClockError::Segment(ShmError::BadMagic))));
    std::fs::write(&path, b"short").unwrap();
    assert!(matches!(LocalClock::open_path(&path), Err(ClockError::Map { .. })));
    let (_publisher, previous) = Publisher::open(&path, Timescale::UtcSmear24h).unwrap();
    assert_eq!(previous, None);
    assert_eq!(LocalClock::open_path(&path).unwrap().status().unwrap(), ClockStatus::Unsynchronized);
}

#[test]
fn a_missing_segment_is_a_clear_error() {
    let dir = Scratch::new("publish", "missing");
    let path = dir.join("segment");
    let err = LocalClock::open_path(&path).unwrap_err();
    assert!(matches!(err, ClockError::Open { .. }));
    assert!(err.to_string().contains("segment"), "{err}");
}

#[test]
fn a_segment_writable_by_others_is_neither_read_nor_reused() {
    let dir = Scratch::new("publish", "insecure");
    let path = dir.join("segment");
    let (publisher, _) = Publisher::open(&path, Timescale::UtcSmear24h).unwrap();
    publisher.publish(&synchronized_state(Duration::from_millis(1)));
    drop(publisher);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(matches!(LocalClock::open_path(&path), Err(ClockError::Insecure { mode: 0o666, .. })));
    // The daemon does not adopt a state anyone could have written; it replaces the file.
    let (_publisher, previous) = Publisher::open(&path, Timescale::UtcSmear24h).unwrap();
    assert_eq!(previous, None);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    assert!(LocalClock::open_path(&path).is_ok());
}

#[test]
fn clients_follow_a_replaced_segment() {
    let dir = Scratch::new("publish", "replaced");
    let path = dir.join("segment");
    let (old, _) = Publisher::open(&path, Timescale::UtcSmear24h).unwrap();
    let mut stale = synchronized_state(Duration::from_millis(1));
    stale.anchor.valid_until = stale.anchor.reference;
    old.publish(&stale);
    let clock = LocalClock::open_path(&path).unwrap();
    assert!(matches!(clock.now(), Err(ClockError::Bound(BoundError::Stale))), "same file, nothing to follow");
    drop(old);
    // A daemon that could not reuse the file puts a new one in its place.
    std::fs::remove_file(&path).unwrap();
    let (new, _) = Publisher::open(&path, Timescale::UtcSmear24h).unwrap();
    new.publish(&synchronized_state(Duration::from_millis(1)));
    std::thread::sleep(tsod_client::REOPEN_INTERVAL);
    let interval = clock.now().expect("the client re-opened the new file");
    assert!(interval.half_width() < Duration::from_millis(2));
}
