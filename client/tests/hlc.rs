//! `HybridClock` and commit-wait on a shared-memory segment the test writes
//! (synchronized, widened, moved, then unsynchronized mid-wait), on a fixed
//! in-test interval source for the edges (logical overflow, the end of the
//! range), and on `RemoteSource` against a small in-test `tsod-client/1`
//! server. Every wait is bounded: blocking ones run on a thread joined with
//! a timeout, async ones under `tokio::time::timeout`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pki::{Pki, SERVER_NAME};
use common::server::{Stop, TestServer};
use tsod_client::hlc::{
    CommitWait, DEFAULT_MAX_OFFSET, HlcError, HybridClock, IntervalSource, RemoteSource, RemoteSourceError,
};
use tsod_client::{
    BoundError, ClockError, ClockStatus, DriftModel, HybridTimestamp, LocalClock, Ppb, RemoteClock, RemoteError,
    TimeInterval, Timescale, Timestamp, sys,
};
use tsod_proto::shm::{Anchor, PublishedState, SHM_FILE_SIZE, ShmHeader};
use tsod_proto::wire::{self, MAX_MESSAGE_LEN, Message, NowResponse};
use tsod_shm::WriteMapping;

// ---------------------------------------------------------------------------
// A segment the test publishes into, standing in for the daemon.

struct Segment {
    path: PathBuf,
    mapping: WriteMapping,
}

impl Segment {
    /// A synchronized segment whose interval is `[now − half_width, now + half_width]`.
    fn new(name: &str, half_width: Duration) -> Arc<Self> {
        let path = std::env::temp_dir().join(format!("tsod-client-hlc-{}-{name}", std::process::id()));
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        file.set_len(u64::from(SHM_FILE_SIZE)).unwrap();
        let mapping = WriteMapping::new(&file).unwrap();
        ShmHeader { timescale: Timescale::UtcSmear24h, boot_id: sys::this_boot_id().unwrap() }.write(mapping.segment());
        let segment = Self { path, mapping };
        segment.publish(half_width, Duration::ZERO, ClockStatus::Synchronized);
        Arc::new(segment)
    }

    /// Publishes `[t − half_width, t + half_width]` at this instant, with
    /// `t` the system clock plus `ahead`, valid for an hour.
    fn publish(&self, half_width: Duration, ahead: Duration, status: ClockStatus) {
        let reference = sys::reader_clock_now().unwrap();
        let reference_boottime = sys::boottime_now().unwrap();
        let t = sys::realtime_now().unwrap().checked_add(ahead).unwrap();
        self.mapping.segment().publish(&PublishedState {
            anchor: Anchor {
                reference,
                interval: TimeInterval::around(t, half_width),
                rates: DriftModel::new(Ppb::ZERO, Ppb::from_ppm(2)).unwrap().rates(),
                status,
                valid_until: reference.checked_add(Duration::from_secs(3600)).unwrap(),
            },
            disruption_count: 0,
            reference_boottime,
            writer_instance: 1,
        });
    }

    fn clock(&self) -> LocalClock {
        LocalClock::open_path(&self.path).unwrap()
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Runs `f` on its own thread and fails the test if it takes longer than `limit`.
fn bounded<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).unwrap_or_else(|_| panic!("did not finish within {limit:?}"))
}

/// A source that answers whatever the test set.
struct FixedSource(Mutex<Result<TimeInterval, BoundError>>);

impl FixedSource {
    fn new(earliest: u64, latest: u64) -> Self {
        Self(Mutex::new(Ok(TimeInterval::new(Timestamp::from_nanos(earliest), Timestamp::from_nanos(latest)).unwrap())))
    }

    fn set(&self, answer: Result<TimeInterval, BoundError>) {
        *self.0.lock().unwrap() = answer;
    }
}

impl IntervalSource for FixedSource {
    type Error = BoundError;

    fn interval(&self) -> Result<TimeInterval, BoundError> {
        *self.0.lock().unwrap()
    }
}

fn hts(physical: u64, logical: u16) -> HybridTimestamp {
    HybridTimestamp::from_parts(physical, logical).unwrap()
}

/// `⌈t / 1000⌉` µs, logical 0.
fn ceil_of(t: Timestamp) -> HybridTimestamp {
    HybridTimestamp::from_timestamp_ceil(t).unwrap()
}

// ---------------------------------------------------------------------------
// now() and update()

#[test]
fn now_is_strictly_increasing_across_threads() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 20_000;
    let segment = Segment::new("increasing", Duration::from_micros(20));
    let hlc = Arc::new(HybridClock::new(segment.clock()));
    let all = bounded(Duration::from_secs(60), move || {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                let hlc = Arc::clone(&hlc);
                std::thread::spawn(move || (0..PER_THREAD).map(|_| hlc.now().unwrap()).collect::<Vec<_>>())
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect::<Vec<_>>()
    });
    let mut distinct = HashSet::new();
    for seen in &all {
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "a thread saw its timestamps go backwards or repeat");
        distinct.extend(seen.iter().copied());
    }
    assert_eq!(distinct.len(), THREADS * PER_THREAD, "two threads were given the same timestamp");
}

#[test]
fn now_never_lags_the_bounded_clock() {
    let segment = Segment::new("floor", Duration::from_micros(50));
    let local = segment.clock();
    let hlc = HybridClock::new(segment.clock());
    let check = |rounds: usize| {
        for _ in 0..rounds {
            let before = local.interval().unwrap();
            let h = hlc.now().unwrap();
            assert!(h.physical_micros() >= before.earliest().as_nanos() / 1000, "{h} lags {before}");
        }
    };
    check(10_000);
    // The daemon's next bound is 3 s later (say it was wrong before): the
    // HLC follows at once, though it has issued timestamps all along.
    let last = hlc.last_issued();
    segment.publish(Duration::from_micros(50), Duration::from_secs(3), ClockStatus::Synchronized);
    check(1_000);
    assert!(hlc.last_issued().physical_micros() >= last.physical_micros() + 2_900_000);
}

#[test]
fn update_refuses_a_far_ahead_timestamp_and_changes_nothing() {
    let segment = Segment::new("far-ahead", Duration::from_micros(50));
    let local = segment.clock();
    let hlc = HybridClock::new(segment.clock());
    hlc.now().unwrap();
    let before = hlc.last_issued();
    let far = ceil_of(local.now().unwrap().latest().checked_add(Duration::from_secs(1)).unwrap());
    match hlc.update(far) {
        Err(HlcError::TooFarAhead { timestamp, ahead, max_offset, .. }) => {
            assert_eq!(timestamp, far);
            assert!(ahead > DEFAULT_MAX_OFFSET && ahead <= Duration::from_micros(1_000_001), "{ahead:?}");
            assert_eq!(max_offset, DEFAULT_MAX_OFFSET);
        }
        other => panic!("expected TooFarAhead, got {other:?}"),
    }
    assert_eq!(hlc.last_issued(), before, "a refused update must not move the clock");
    assert!(hlc.now().unwrap() < far, "the clock jumped anyway");
    // Just past the limit is refused too; a clock configured for it accepts.
    let just_past = ceil_of(local.now().unwrap().latest().checked_add(Duration::from_millis(260)).unwrap());
    assert!(matches!(hlc.update(just_past), Err(HlcError::TooFarAhead { .. })));
    let tolerant = HybridClock::with_max_offset(segment.clock(), Duration::from_secs(2));
    assert!(tolerant.update(far).unwrap() > far);
}

#[test]
fn update_moves_the_clock_past_a_nearby_ahead_timestamp() {
    let segment = Segment::new("nearby", Duration::from_micros(50));
    let local = segment.clock();
    let hlc = HybridClock::new(segment.clock());
    let issued = hlc.now().unwrap();
    let ahead = ceil_of(local.now().unwrap().latest().checked_add(Duration::from_millis(100)).unwrap());
    let received = HybridTimestamp::from_raw(ahead.raw() | 17);
    let merged = hlc.update(received).unwrap();
    assert!(merged > received && merged > issued);
    assert_eq!(merged, hts(received.physical_micros(), 18), "the next tick after the received timestamp");
    let next = hlc.now().unwrap();
    assert!(next > merged, "now() after update went back to the bounded clock: {next} ≤ {merged}");
    // An old timestamp still yields one above everything issued.
    assert!(hlc.update(issued).unwrap() > next);
}

#[test]
fn logical_overflow_carries_into_the_physical_part() {
    let p = 1_795_462_647_000_000u64;
    let source = FixedSource::new(p * 1000, p * 1000 + 5_000);
    let hlc = HybridClock::new(&source);
    for logical in 0..=HybridTimestamp::MAX_LOGICAL {
        assert_eq!(hlc.now().unwrap(), hts(p, logical));
    }
    assert_eq!(hlc.now().unwrap(), hts(p + 1, 0), "4096 ticks in one µs carry into the next µs");
    assert_eq!(hlc.update(hts(p + 3, 4095)).unwrap(), hts(p + 4, 0));
    assert_eq!(hlc.commit_timestamp().unwrap(), hts(p + 5, 0), "⌈latest / 1000⌉ = p + 5");
}

#[test]
fn the_end_of_the_range_is_an_error_never_a_wrap() {
    let p = HybridTimestamp::MAX_PHYSICAL_MICROS;
    let source = FixedSource::new(p * 1000, p * 1000);
    let hlc = HybridClock::new(&source);
    assert_eq!(hlc.update(HybridTimestamp::from_raw(u64::MAX - 1)).unwrap(), HybridTimestamp::MAX);
    assert!(matches!(hlc.now(), Err(HlcError::Exhausted(h)) if h == HybridTimestamp::MAX));
    assert!(matches!(hlc.update(HybridTimestamp::MAX), Err(HlcError::Exhausted(_))));
    assert!(matches!(hlc.commit_timestamp(), Err(HlcError::Exhausted(_))));
    assert_eq!(hlc.last_issued(), HybridTimestamp::MAX);

    // A fresh clock: update(MAX) fails without touching the state.
    let fresh = HybridClock::new(&source);
    assert!(matches!(fresh.update(HybridTimestamp::MAX), Err(HlcError::Exhausted(_))));
    assert_eq!(fresh.last_issued(), HybridTimestamp::MIN);
    assert_eq!(fresh.now().unwrap(), hts(p, 0));

    // A bounded clock reading past 2112 has no hybrid form.
    source.set(Ok(TimeInterval::new(Timestamp::from_nanos((p + 1) * 1000), Timestamp::MAX).unwrap()));
    assert!(matches!(fresh.now(), Err(HlcError::OutOfRange(_))));
    assert!(matches!(fresh.commit_timestamp(), Err(HlcError::OutOfRange(_))));
}

#[test]
fn clock_errors_are_returned_never_a_timestamp() {
    let source = FixedSource::new(1_000_000, 1_001_000);
    let hlc = HybridClock::new(&source);
    let issued = hlc.now().unwrap();
    for e in [BoundError::Unsynchronized, BoundError::Disrupted, BoundError::Stale] {
        source.set(Err(e));
        assert!(matches!(hlc.now(), Err(HlcError::Clock(got)) if got == e));
        assert!(matches!(hlc.update(issued), Err(HlcError::Clock(got)) if got == e));
        assert!(matches!(hlc.commit_timestamp(), Err(HlcError::Clock(got)) if got == e));
        assert!(matches!(hlc.commit_wait_blocking(issued), Err(HlcError::Clock(got)) if got == e));
        assert_eq!(hlc.last_issued(), issued);
    }

    // The same through a real segment.
    let segment = Segment::new("unsynchronized", Duration::from_micros(50));
    let hlc = HybridClock::new(segment.clock());
    hlc.now().unwrap();
    segment.publish(Duration::from_micros(50), Duration::ZERO, ClockStatus::Unsynchronized);
    let e = hlc.now().unwrap_err();
    assert!(matches!(e, HlcError::Clock(ClockError::Bound(BoundError::Unsynchronized))), "{e:?}");
    assert!(e.to_string().contains("unsynchronized"), "{e}");
}

// ---------------------------------------------------------------------------
// Commit-wait

/// The checks every successful wait on `ts` (taken at `started`) must
/// pass, with a fresh read.
fn check_waited(local: &LocalClock, ts: HybridTimestamp, wait: &CommitWait, started: Instant, at_least: Duration) {
    let fresh = local.now().unwrap();
    let end = ts.time_range().latest();
    assert!(fresh.earliest() > end, "a read after the wait has earliest {} ≤ {end}", fresh.earliest());
    assert!(wait.interval.earliest() > end && wait.target() == end, "{wait:?}");
    let elapsed = started.elapsed();
    assert!(elapsed >= at_least, "returned {elapsed:?} after the timestamp was taken, expected at least {at_least:?}");
    // Under load the first read may already be past the target: one read is enough.
    assert!(wait.waited <= elapsed && wait.reads >= 1, "{wait:?}");
}

#[test]
fn commit_wait_blocking_returns_once_earliest_is_past() {
    let half = Duration::from_millis(2);
    let segment = Segment::new("wait-blocking", half);
    let local = segment.clock();
    let hlc = Arc::new(HybridClock::new(segment.clock()));
    for _ in 0..5 {
        let started = Instant::now();
        let ts = hlc.commit_timestamp().unwrap();
        let waiter = Arc::clone(&hlc);
        let wait = bounded(Duration::from_secs(5), move || waiter.commit_wait_blocking(ts)).unwrap();
        // The interval is 4 ms wide: earliest needs ≈ 4 ms to pass latest.
        check_waited(&local, ts, &wait, started, Duration::from_micros(3_900));
        println!("blocking: waited {:?}, overshoot {:?}, {} reads", wait.waited, wait.overshoot(), wait.reads);
    }
    // A timestamp already in the past returns at once, after one read.
    let old = hlc.now().unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(hlc.commit_wait_blocking(old).unwrap().reads, 1);
}

#[tokio::test]
async fn commit_wait_returns_once_earliest_is_past() {
    let half = Duration::from_millis(2);
    let segment = Segment::new("wait-async", half);
    let local = segment.clock();
    let hlc = HybridClock::new(segment.clock());
    for _ in 0..5 {
        let started = Instant::now();
        let ts = hlc.commit_timestamp().unwrap();
        let wait = tokio::time::timeout(Duration::from_secs(5), hlc.commit_wait(ts)).await.unwrap().unwrap();
        check_waited(&local, ts, &wait, started, Duration::from_micros(3_900));
        println!("async: waited {:?}, overshoot {:?}, {} reads", wait.waited, wait.overshoot(), wait.reads);
    }
}

#[test]
fn commit_wait_blocking_fails_when_the_clock_goes_unsynchronized() {
    // 2 s wide: the wait would take 2 s; the bound is lost after 100 ms.
    let segment = Segment::new("lost-blocking", Duration::from_secs(1));
    let hlc = Arc::new(HybridClock::new(segment.clock()));
    let ts = hlc.commit_timestamp().unwrap();
    let started = Instant::now();
    let waiter = Arc::clone(&hlc);
    let handle = std::thread::spawn(move || waiter.commit_wait_blocking(ts));
    std::thread::sleep(Duration::from_millis(100));
    segment.publish(Duration::from_secs(1), Duration::ZERO, ClockStatus::Unsynchronized);
    let result = bounded(Duration::from_secs(1), move || handle.join().unwrap());
    assert!(matches!(result, Err(HlcError::Clock(ClockError::Bound(BoundError::Unsynchronized)))), "{result:?}");
    assert!(started.elapsed() < Duration::from_millis(600), "noticed only after {:?}", started.elapsed());
}

#[tokio::test]
async fn commit_wait_fails_when_the_clock_goes_unsynchronized() {
    let segment = Segment::new("lost-async", Duration::from_secs(1));
    let hlc = HybridClock::new(segment.clock());
    let ts = hlc.commit_timestamp().unwrap();
    let started = Instant::now();
    let publisher = Arc::clone(&segment);
    let lose = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        publisher.publish(Duration::from_secs(1), Duration::ZERO, ClockStatus::Disrupted);
    });
    let result = tokio::time::timeout(Duration::from_secs(1), hlc.commit_wait(ts)).await.unwrap();
    lose.await.unwrap();
    assert!(matches!(result, Err(HlcError::Clock(ClockError::Bound(BoundError::Disrupted)))), "{result:?}");
    assert!(started.elapsed() < Duration::from_millis(600), "noticed only after {:?}", started.elapsed());
}

#[tokio::test]
async fn commit_wait_refuses_a_far_ahead_timestamp_instead_of_waiting() {
    let segment = Segment::new("wait-far", Duration::from_micros(50));
    let local = segment.clock();
    let hlc = HybridClock::new(segment.clock());
    let far = ceil_of(local.now().unwrap().latest().checked_add(Duration::from_secs(10)).unwrap());
    let started = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(1), hlc.commit_wait(far)).await.unwrap().unwrap_err();
    assert!(matches!(e, HlcError::TooFarAhead { .. }), "{e:?}");
    assert!(matches!(hlc.commit_wait_blocking(far), Err(HlcError::TooFarAhead { .. })));
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(hlc.last_issued(), HybridTimestamp::MIN, "commit-wait issues nothing");
}

/// Two clocks on one bound stand in for two sites: a transaction that
/// starts at B after A's commit-wait returned gets a larger timestamp.
#[test]
fn commit_wait_gives_external_consistency_between_two_clocks() {
    let segment = Segment::new("external", Duration::from_micros(100));
    let a = Arc::new(HybridClock::new(segment.clock()));
    let b = Arc::new(HybridClock::new(segment.clock()));
    bounded(Duration::from_secs(30), move || {
        for round in 0..200 {
            let (first, second) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
            let t1 = first.commit_timestamp().unwrap();
            first.commit_wait_blocking(t1).unwrap();
            let t2 = second.commit_timestamp().unwrap();
            assert!(t2 > t1, "round {round}: T2 = {t2} is not after T1 = {t1}");
            assert!(t2.physical_micros() > t1.physical_micros(), "round {round}: {t2} in the µs of {t1}");
        }
    });
}

#[tokio::test]
async fn async_commit_wait_gives_external_consistency_between_two_clocks() {
    let segment = Segment::new("external-async", Duration::from_micros(100));
    let a = HybridClock::new(segment.clock());
    let b = HybridClock::new(segment.clock());
    for round in 0..50 {
        let t1 = a.commit_timestamp().unwrap();
        tokio::time::timeout(Duration::from_secs(1), a.commit_wait(t1)).await.unwrap().unwrap();
        let t2 = b.commit_timestamp().unwrap();
        assert!(t2.physical_micros() > t1.physical_micros(), "round {round}: T2 = {t2}, T1 = {t1}");
    }
}

// ---------------------------------------------------------------------------
// RemoteSource against an in-test tsod-client/1 server.

/// Answers a now-request with `[now − 50 µs, now + 50 µs]` (the system
/// clock) and the status in `status` when the request came.
fn answer_now(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    status: Arc<Mutex<ClockStatus>>,
) -> impl Future<Output = ()> {
    let status = *status.lock().unwrap();
    async move {
        let Ok(request) = recv.read_to_end(MAX_MESSAGE_LEN).await else { return };
        let Ok(Message::NowRequest(r)) = wire::decode(&request) else { return };
        let now = sys::realtime_now().unwrap();
        let response = Message::NowResponse(NowResponse {
            request_id: r.request_id,
            interval: TimeInterval::around(now, Duration::from_micros(50)),
            status,
            timescale: Timescale::UtcSmear24h,
            drift_bound: Ppb::from_ppm(15),
        });
        if send.write_all(&response.to_vec().unwrap()).await.is_ok() && send.finish().is_ok() {
            let _ = send.stopped().await;
        }
    }
}

#[tokio::test]
async fn remote_source_projects_the_last_answer_and_drives_the_hlc() {
    let pki = Pki::new("hlc-remote");
    let status = Arc::new(Mutex::new(ClockStatus::Synchronized));
    let server =
        TestServer::spawn((Ipv4Addr::LOCALHOST, 0).into(), pki.server_config(false), Arc::clone(&status), answer_now);
    let clock = RemoteClock::connect(server.addr, SERVER_NAME, &pki.ca_path).await.unwrap();
    let max_age = Duration::from_millis(300);
    let source = RemoteSource::with_max_age(clock, max_age);
    let hlc = HybridClock::new(&source);

    assert!(matches!(source.interval(), Err(RemoteSourceError::NotRefreshed)));
    assert!(matches!(hlc.now(), Err(HlcError::Clock(RemoteSourceError::NotRefreshed))));
    let answer = source.refresh().await.unwrap();
    assert_eq!(source.last(), Some(answer));

    // The bound carried forward widens at ρ_c (100 ppm) on each side.
    let first = source.interval().unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let later = source.interval().unwrap();
    assert!(later.earliest() > first.earliest(), "{first} then {later}");
    let growth = later.width().saturating_sub(first.width());
    assert!(growth >= Duration::from_micros(9), "widened by only {growth:?} in 50 ms");

    // The HLC and commit-wait run on it like on the local clock.
    let h = hlc.now().unwrap();
    assert!(h.physical_micros() >= later.earliest().as_nanos() / 1000);
    let ts = hlc.commit_timestamp().unwrap();
    let wait = tokio::time::timeout(Duration::from_secs(1), hlc.commit_wait(ts)).await.unwrap().unwrap();
    assert!(source.interval().unwrap().earliest() > ts.time_range().latest(), "{wait:?}");

    // Too old an answer is refused until the next refresh.
    tokio::time::sleep(max_age).await;
    let e = source.interval().unwrap_err();
    assert!(matches!(e, RemoteSourceError::Stale { .. }), "{e:?}");
    source.refresh().await.unwrap();
    source.interval().unwrap();

    // The server losing its bound is an error until it answers again.
    *status.lock().unwrap() = ClockStatus::Unsynchronized;
    let e = source.refresh().await.unwrap_err();
    assert!(matches!(e, RemoteError::Unsynchronized { .. }), "{e:?}");
    let e = hlc.now().unwrap_err();
    assert!(matches!(e, HlcError::Clock(RemoteSourceError::Bound(BoundError::Unsynchronized))), "{e:?}");
    assert_eq!(source.last(), None);
    *status.lock().unwrap() = ClockStatus::Degraded;
    source.refresh().await.unwrap();
    assert!(hlc.now().unwrap() > ts);

    server.stop(Stop::Graceful);
}
