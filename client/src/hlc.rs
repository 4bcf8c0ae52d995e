//! The hybrid logical clock ([`HybridClock`]) and Spanner-style commit-wait,
//! both driven by a bounded clock ([`IntervalSource`]): the local daemon's
//! [`LocalClock`] or a remote site through [`RemoteSource`].
//!
//! # What the clock promises
//!
//! Every [`HybridTimestamp`] a [`HybridClock`] issues ([`HybridClock::now`],
//! [`HybridClock::update`], [`HybridClock::commit_timestamp`]):
//!
//! * is strictly greater than every timestamp the same clock issued before
//!   it, whichever thread asked (one clock, one total order);
//! * has a physical part of at least `⌊earliest / 1000⌋` µs of an interval
//!   read during the call (SPEC.md §3.3), so it never lags the bounded clock;
//! * exists only if the bounded clock gave an interval: `unsynchronized`,
//!   `disrupted`, `stale`… are returned as [`HlcError::Clock`], never
//!   replaced by a guess (SPEC.md §6, last paragraph).
//!
//! Logical overflow carries into the physical part (the successor of `h` is
//! `raw + 1`, SPEC.md §3.3); there is nothing after [`HybridTimestamp::MAX`],
//! so an operation that would pass it fails with [`HlcError::Exhausted`].
//!
//! # Why one atomic is enough (linearizable max)
//!
//! The whole state is the raw value of the last issued timestamp, one
//! `AtomicU64` `last`. Every operation first reads the bounded clock (no
//! shared state touched), computes a lower bound `b` for its result (the
//! physical floor, and for `update` the received timestamp + 1), then runs
//! a compare-and-swap loop: read `v`, compute `next = max(v + 1, b)`, and
//! install `next` only if `last` still holds `v`; otherwise retry with the
//! value found. The successful CAS is the linearization point: at that
//! instant `last` held `v` and now holds `next > v`. All successful CASes
//! on one location are totally ordered (its modification order), each
//! reads the value the previous one wrote, so the values installed form a
//! strictly increasing sequence, and the value an operation returns is the
//! one it installed: results are distinct and ordered as the operations
//! linearize. Values only grow, so there is no ABA. A failing bound check
//! (`v + 1` overflowing, a received timestamp too far ahead) returns before
//! any CAS, leaving the state as it was. No lock is taken, and a CAS fails
//! only because another operation succeeded (lock-free).
//!
//! # The maximum offset
//!
//! [`HybridClock::update`] refuses a received timestamp whose microsecond
//! starts more than `max_offset` after the `latest` end of this clock's
//! current interval: accepting it would move this clock (and, through it,
//! every node it talks to) ahead of true time for good, and every
//! commit-wait on the timestamps that follow would last that much longer.
//! A correct node stamps with physical time at most its own `latest`
//! (rounded up to the µs), which exceeds true time by at most its interval
//! width, while true time is at most our `latest`; so a correct timestamp is
//! "ahead" by at most the sender's width. tsod widths are micro- to
//! milliseconds while synchronized and grow at the drift bound while
//! free-running (15 ppm: 54 ms after an hour). The default,
//! [`DEFAULT_MAX_OFFSET`] = 250 ms, leaves that room many times over while
//! still stopping a node whose clock is seconds or years off (CockroachDB's
//! comparable `max-offset` is 500 ms, without bounded intervals). The same
//! limit applies to the timestamp given to commit-wait, so a wait lasts at
//! most about `max_offset` plus the interval's width, never for ever.
//!
//! # Commit-wait
//!
//! [`HybridClock::commit_wait`] (async, tokio) and
//! [`HybridClock::commit_wait_blocking`] return once an interval read shows
//! `earliest > time_range(ts).latest` (SPEC.md §3.3): from then on every
//! event stamped `ts` is surely in the past. They sleep while the remaining
//! time exceeds a spin window and then poll the clock, yielding the CPU
//! between reads. Sleeps last at most [`MAX_SLEEP`] each, so a clock that
//! turns unsynchronized during the wait is reported within that time. The
//! windows differ because the timers do: a thread sleep overshoots by the
//! kernel's timer slack (50 µs by default), so [`BLOCKING_SPIN_WINDOW`] is
//! 100 µs; tokio's timer counts whole milliseconds, so
//! [`ASYNC_SPIN_WINDOW`] is 2 ms of `yield_now` polling (other tasks keep
//! running meanwhile). The [`CommitWait`] returned says how long the call
//! took and how far `earliest` had moved past the target by the read that
//! ended it ([`CommitWait::overshoot`]).
//!
//! [`HybridClock::commit_timestamp`] is the Spanner recipe: a timestamp at
//! or after the current `latest` (physical `⌈latest / 1000⌉`, so the whole
//! microsecond counts) and above everything issued so far; commit-wait on it
//! and a transaction that starts afterwards anywhere gets a larger one.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tsod_proto::shm::BoundError;
use tsod_proto::{HybridTimestamp, MonoInstant, TimeInterval, Timestamp};

use crate::{ClockError, LocalClock, RemoteClock, RemoteError, RemoteNow, slept_between, sys};

/// Default [`HybridClock::max_offset`]: 250 ms (see the module doc).
pub const DEFAULT_MAX_OFFSET: Duration = Duration::from_millis(250);
/// Remaining time below which [`HybridClock::commit_wait_blocking`] stops
/// sleeping and polls (above the kernel's default 50 µs timer slack).
pub const BLOCKING_SPIN_WINDOW: Duration = Duration::from_micros(100);
/// Remaining time below which [`HybridClock::commit_wait`] stops sleeping
/// and polls with `yield_now` (tokio's timer has 1 ms resolution).
pub const ASYNC_SPIN_WINDOW: Duration = Duration::from_millis(2);
/// Longest single sleep of a commit-wait: how late at most it notices that
/// the clock lost its bound.
pub const MAX_SLEEP: Duration = Duration::from_millis(10);
/// Default [`RemoteSource::max_age`]: 1 s, the validity horizon the daemon
/// gives its own shared-memory bound.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(1);

/// A source of the current bounded interval: true time lies in the
/// interval returned, or there is an error and no interval.
pub trait IntervalSource {
    /// Why there is no interval.
    type Error: std::error::Error + Send + Sync + 'static;

    /// An interval containing true time at some instant during the call.
    fn interval(&self) -> Result<TimeInterval, Self::Error>;
}

/// The local daemon's bound, with the SPEC.md §5.6 suspend check
/// ([`LocalClock::now`]).
///
/// A `disrupted` answer is read once more before it is returned. `now()`
/// already retakes a failed suspend check with a bracketed clock pair, but
/// a thread descheduled for over 1 ms inside every bracket still looks
/// suspended. A real suspend (or a published `disrupted`) fails the second
/// read too; only that false alarm is turned into an interval, by a read
/// whose own pair passed the check.
impl IntervalSource for LocalClock {
    type Error = ClockError;

    #[inline]
    fn interval(&self) -> Result<TimeInterval, ClockError> {
        match self.now() {
            Err(ClockError::Bound(BoundError::Disrupted)) => self.now(),
            result => result,
        }
    }
}

impl<S: IntervalSource + ?Sized> IntervalSource for &S {
    type Error = S::Error;

    #[inline]
    fn interval(&self) -> Result<TimeInterval, S::Error> {
        (**self).interval()
    }
}

impl<S: IntervalSource + ?Sized> IntervalSource for Arc<S> {
    type Error = S::Error;

    #[inline]
    fn interval(&self) -> Result<TimeInterval, S::Error> {
        (**self).interval()
    }
}

/// Why a [`HybridClock`] issued no timestamp or a commit-wait did not finish.
#[derive(Debug, thiserror::Error)]
pub enum HlcError<E> {
    /// The bounded clock gave no interval (unsynchronized, disrupted, stale…).
    #[error("no bounded time to stamp or wait with: {0}")]
    Clock(#[source] E),
    /// A timestamp (received by [`HybridClock::update`] or given to a
    /// commit-wait) starts further after the latest possible time now than
    /// the maximum offset allows. Nothing was changed.
    #[error(
        "timestamp {timestamp} is {ahead:?} ahead of the latest possible time now ({latest}), more than the \
         maximum offset {max_offset:?}: the clock of the node that issued it is wrong; refused"
    )]
    TooFarAhead {
        /// The timestamp refused.
        timestamp: HybridTimestamp,
        /// The `latest` end of the interval it was compared with.
        latest: Timestamp,
        /// How far its microsecond starts after `latest`.
        ahead: Duration,
        /// The configured limit.
        max_offset: Duration,
    },
    /// Nothing comes after this timestamp: the range ends at
    /// [`HybridTimestamp::MAX`], and wrapping would reverse the order.
    #[error("no hybrid timestamp after {0}: the range ends at HybridTimestamp::MAX (refused rather than wrapped)")]
    Exhausted(HybridTimestamp),
    /// The bounded clock reads past the hybrid timestamp range (2112-09-17).
    #[error("the time {0} is past the hybrid timestamp range (2112-09-17); the clock cannot be right")]
    OutOfRange(Timestamp),
}

/// A hybrid logical clock on a bounded clock `S`: strictly increasing
/// timestamps, never behind `⌊earliest / 1000⌋` µs, merged with the
/// timestamps other nodes send (see the module doc for the invariants).
///
/// Share it between threads (`&self` everywhere; lock-free).
#[derive(Debug)]
pub struct HybridClock<S> {
    source: S,
    /// Raw value of the last timestamp issued (0 before the first).
    last: AtomicU64,
    max_offset: Duration,
}

/// How a commit-wait ended, for callers and benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitWait {
    /// The timestamp waited on.
    pub timestamp: HybridTimestamp,
    /// The interval that ended the wait: `interval.earliest()` is after
    /// `timestamp.time_range().latest()`.
    pub interval: TimeInterval,
    /// Time from the call to its return (`CLOCK_MONOTONIC`).
    pub waited: Duration,
    /// Intervals read; 1 means the timestamp was already in the past.
    pub reads: u32,
}

impl CommitWait {
    /// The instant `earliest` had to pass: `timestamp.time_range().latest()`.
    pub fn target(&self) -> Timestamp {
        self.timestamp.time_range().latest()
    }

    /// How far `earliest` had moved past the first value that satisfies the
    /// wait (`target + 1 ns`) at the read that ended it: on the bound's own
    /// timeline, how long after the condition became true the wait noticed.
    /// It includes any forward jump of `earliest` at a republication, and
    /// for a wait that did not wait (`reads == 1`) it is how long ago the
    /// timestamp had already passed.
    pub fn overshoot(&self) -> Duration {
        let past = self.interval.earliest().as_nanos().saturating_sub(self.target().as_nanos());
        Duration::from_nanos(past.saturating_sub(1))
    }
}

/// What a commit-wait does after reading an interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// `earliest` is past the target.
    Done,
    /// Sleep this long, then read again.
    Sleep(Duration),
    /// Yield once, then read again.
    Poll,
}

/// [`Step`] with the result once done.
enum WaitStep {
    Done(CommitWait),
    Sleep(Duration),
    Poll,
}

/// The next step of a wait for `earliest > target`, given `interval`.
fn next_step(target: Timestamp, interval: TimeInterval, spin_window: Duration) -> Step {
    let earliest = interval.earliest().as_nanos();
    let target = target.as_nanos();
    if earliest > target {
        return Step::Done;
    }
    // True time that `earliest` still has to cover (it advances at about
    // one ns per ns; the loop reads again after every sleep anyway).
    let remaining = Duration::from_nanos(target.saturating_sub(earliest).saturating_add(1));
    match remaining.checked_sub(spin_window) {
        Some(sleep) if !sleep.is_zero() => Step::Sleep(sleep.min(MAX_SLEEP)),
        _ => Step::Poll,
    }
}

/// How far `ts`'s microsecond starts after `latest`, if it does.
fn ahead_of(ts: HybridTimestamp, latest: Timestamp) -> Option<Duration> {
    ts.time_range().earliest().checked_duration_since(latest).filter(|d| !d.is_zero())
}

impl<S: IntervalSource> HybridClock<S> {
    /// A clock on `source` with the default maximum offset ([`DEFAULT_MAX_OFFSET`]).
    pub fn new(source: S) -> Self {
        Self::with_max_offset(source, DEFAULT_MAX_OFFSET)
    }

    /// A clock on `source` refusing timestamps more than `max_offset` ahead
    /// of the current interval's `latest` (see the module doc).
    pub fn with_max_offset(source: S, max_offset: Duration) -> Self {
        Self { source, last: AtomicU64::new(0), max_offset }
    }

    /// The bounded clock underneath.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The configured maximum offset.
    pub fn max_offset(&self) -> Duration {
        self.max_offset
    }

    /// The last timestamp issued ([`HybridTimestamp::MIN`] before the first).
    /// Another thread may issue a larger one at any time.
    pub fn last_issued(&self) -> HybridTimestamp {
        HybridTimestamp::from_raw(self.last.load(Ordering::Acquire))
    }

    /// A timestamp greater than every one this clock issued before, with a
    /// physical part of at least `⌊earliest / 1000⌋` µs of the current
    /// interval; or why there is none.
    pub fn now(&self) -> Result<HybridTimestamp, HlcError<S::Error>> {
        let interval = self.read()?;
        let floor = floor_of(interval)?;
        self.issue_above(floor.raw())
    }

    /// Merges `received`, a timestamp from another node: returns a
    /// timestamp greater than `received` and than every one this clock
    /// issued before, at least [`HybridClock::now`]'s floor. A `received`
    /// whose microsecond starts more than [`HybridClock::max_offset`] after
    /// the current interval's `latest` is refused
    /// ([`HlcError::TooFarAhead`]) and the clock is left unchanged.
    pub fn update(&self, received: HybridTimestamp) -> Result<HybridTimestamp, HlcError<S::Error>> {
        let interval = self.read()?;
        self.check_offset(received, interval)?;
        let above_received = received.checked_next().ok_or(HlcError::Exhausted(received))?;
        let floor = floor_of(interval)?;
        self.issue_above(floor.raw().max(above_received.raw()))
    }

    /// A commit timestamp (the Spanner recipe): at least `⌈latest / 1000⌉`
    /// µs of the current interval, so its whole microsecond is at or after
    /// `latest`, and greater than every timestamp this clock issued before.
    /// Commit-wait on it before making the commit visible.
    pub fn commit_timestamp(&self) -> Result<HybridTimestamp, HlcError<S::Error>> {
        let interval = self.read()?;
        let latest = interval.latest();
        let ceil = HybridTimestamp::from_timestamp_ceil(latest).map_err(|_| HlcError::OutOfRange(latest))?;
        self.issue_above(ceil.raw())
    }

    /// Waits (asynchronously, on tokio's timer) until an interval read
    /// shows `earliest > ts.time_range().latest()`, so that `ts` is surely
    /// in the past. Fails if the clock loses its bound while waiting (noticed
    /// within [`MAX_SLEEP`]) or if `ts` is more than the maximum offset
    /// ahead (rather than waiting that long).
    pub async fn commit_wait(&self, ts: HybridTimestamp) -> Result<CommitWait, HlcError<S::Error>> {
        let started = Instant::now();
        let mut reads = 0u32;
        loop {
            match self.wait_step(ts, &mut reads, started, ASYNC_SPIN_WINDOW)? {
                WaitStep::Done(done) => return Ok(done),
                WaitStep::Sleep(d) => tokio::time::sleep(d).await,
                WaitStep::Poll => tokio::task::yield_now().await,
            }
        }
    }

    /// [`HybridClock::commit_wait`] for threads outside an async runtime:
    /// `std::thread::sleep`, then `yield_now` polling in the last
    /// [`BLOCKING_SPIN_WINDOW`].
    pub fn commit_wait_blocking(&self, ts: HybridTimestamp) -> Result<CommitWait, HlcError<S::Error>> {
        let started = Instant::now();
        let mut reads = 0u32;
        loop {
            match self.wait_step(ts, &mut reads, started, BLOCKING_SPIN_WINDOW)? {
                WaitStep::Done(done) => return Ok(done),
                WaitStep::Sleep(d) => std::thread::sleep(d),
                WaitStep::Poll => std::thread::yield_now(),
            }
        }
    }

    /// One read of a commit-wait: what to do next, and the result when done.
    fn wait_step(
        &self,
        ts: HybridTimestamp,
        reads: &mut u32,
        started: Instant,
        spin_window: Duration,
    ) -> Result<WaitStep, HlcError<S::Error>> {
        let interval = self.read()?;
        *reads = reads.saturating_add(1);
        if *reads == 1 {
            self.check_offset(ts, interval)?;
        }
        Ok(match next_step(ts.time_range().latest(), interval, spin_window) {
            Step::Done => {
                WaitStep::Done(CommitWait { timestamp: ts, interval, waited: started.elapsed(), reads: *reads })
            }
            Step::Sleep(d) => WaitStep::Sleep(d),
            Step::Poll => WaitStep::Poll,
        })
    }

    fn read(&self) -> Result<TimeInterval, HlcError<S::Error>> {
        self.source.interval().map_err(HlcError::Clock)
    }

    fn check_offset(&self, ts: HybridTimestamp, interval: TimeInterval) -> Result<(), HlcError<S::Error>> {
        match ahead_of(ts, interval.latest()) {
            Some(ahead) if ahead > self.max_offset => Err(HlcError::TooFarAhead {
                timestamp: ts,
                latest: interval.latest(),
                ahead,
                max_offset: self.max_offset,
            }),
            _ => Ok(()),
        }
    }

    /// Installs and returns `max(last + 1, at_least)` (the CAS loop of the
    /// module doc), or fails, changing nothing, if `last` is the maximum.
    #[inline]
    fn issue_above(&self, at_least: u64) -> Result<HybridTimestamp, HlcError<S::Error>> {
        let mut last = self.last.load(Ordering::Acquire);
        loop {
            let next =
                successor_at_least(last, at_least).ok_or(HlcError::Exhausted(HybridTimestamp::from_raw(last)))?;
            match self.last.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(HybridTimestamp::from_raw(next)),
                Err(found) => last = found,
            }
        }
    }
}

/// `max(last + 1, at_least)`, or `None` if `last` has no successor.
#[inline]
fn successor_at_least(last: u64, at_least: u64) -> Option<u64> {
    last.checked_add(1).map(|next| next.max(at_least))
}

/// `⌊earliest / 1000⌋` µs, logical 0: the least an HLC may issue now.
#[inline]
fn floor_of<E>(interval: TimeInterval) -> Result<HybridTimestamp, HlcError<E>> {
    let earliest = interval.earliest();
    HybridTimestamp::from_timestamp_floor(earliest).map_err(|_| HlcError::OutOfRange(earliest))
}

/// A [`RemoteClock`] as an [`IntervalSource`]: holds the last answer and
/// projects it to the reader clock's present ([`RemoteNow::interval_at`]),
/// so reading it is synchronous and costs no round trip.
///
/// **The bound widens between refreshes**: the projection grows by the
/// client's drift bound ρ_c on each side (100 ppm by default: 200 µs of
/// width per second), so the caller runs [`RemoteSource::refresh`] as often
/// as its width budget requires, and at least every
/// [`RemoteSource::max_age`], after which reads fail with
/// [`RemoteSourceError::Stale`]. A read also fails if this host was
/// suspended since the request was sent (SPEC.md §5.6 check against the
/// clocks read before it), because the reader clock stops during a suspend.
/// After a refresh answered `unsynchronized` or `disrupted`, reads fail the
/// same way until a refresh succeeds; other refresh failures (timeouts,
/// lost connections) keep the previous answer, which stays valid until
/// `max_age`.
#[derive(Debug)]
pub struct RemoteSource {
    clock: RemoteClock,
    held: RwLock<Held>,
    max_age: Duration,
}

/// What a [`RemoteSource`] currently knows.
#[derive(Clone, Copy, Debug)]
enum Held {
    Nothing,
    /// An answer, and `(CLOCK_MONOTONIC_RAW, CLOCK_BOOTTIME)` read before its request.
    Answer(RemoteNow, (MonoInstant, MonoInstant)),
    /// The server's last word was that it has no bound.
    Unbounded(BoundError),
}

/// Why a [`RemoteSource`] gives no interval.
#[derive(Debug, thiserror::Error)]
pub enum RemoteSourceError {
    /// No answer yet.
    #[error("no answer from the remote site yet: call RemoteSource::refresh() first")]
    NotRefreshed,
    /// The last answer is older than [`RemoteSource::max_age`].
    #[error("the last remote answer is {age:?} old, more than max_age {max_age:?}: call refresh() more often")]
    Stale {
        /// Reader-clock time since the answer arrived.
        age: Duration,
        /// The configured limit.
        max_age: Duration,
    },
    /// This host was suspended since the last request was sent, so the
    /// reader clock (stopped meanwhile) cannot carry the answer forward.
    #[error("this host was suspended since the last remote answer (SPEC.md §5.6): call refresh()")]
    Suspended,
    /// The server reported no bound (`unsynchronized`, `disrupted`) at the
    /// last refresh, or the projection left the timestamp range.
    #[error(transparent)]
    Bound(BoundError),
    /// The reader clock could not be read.
    #[error("cannot read the reader clock: {0}")]
    Clock(io::Error),
}

impl RemoteSource {
    /// Holds answers of `clock`, usable for [`DEFAULT_MAX_AGE`] each.
    pub fn new(clock: RemoteClock) -> Self {
        Self::with_max_age(clock, DEFAULT_MAX_AGE)
    }

    /// Holds answers of `clock`, usable for `max_age` each.
    pub fn with_max_age(clock: RemoteClock, max_age: Duration) -> Self {
        Self { clock, held: RwLock::new(Held::Nothing), max_age }
    }

    /// The remote clock asked by [`RemoteSource::refresh`].
    pub fn clock(&self) -> &RemoteClock {
        &self.clock
    }

    /// How long after its arrival an answer may be projected.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// The answer held now, if any.
    pub fn last(&self) -> Option<RemoteNow> {
        match *self.held.read().unwrap_or_else(PoisonError::into_inner) {
            Held::Answer(answer, _) => Some(answer),
            Held::Nothing | Held::Unbounded(_) => None,
        }
    }

    /// Asks the remote site and holds its answer (unless a newer one
    /// arrived meanwhile). See the type's doc for what failures do.
    pub async fn refresh(&self) -> Result<RemoteNow, RemoteError> {
        let before =
            (sys::reader_clock_now().map_err(RemoteError::Clock)?, sys::boottime_now().map_err(RemoteError::Clock)?);
        let result = self.clock.now_at().await;
        let mut held = self.held.write().unwrap_or_else(PoisonError::into_inner);
        match &result {
            Ok(answer) => {
                let newer_held = matches!(*held, Held::Answer(old, _) if old.at > answer.at);
                if !newer_held {
                    *held = Held::Answer(*answer, before);
                }
            }
            Err(RemoteError::Unsynchronized { .. }) => *held = Held::Unbounded(BoundError::Unsynchronized),
            Err(RemoteError::Disrupted { .. }) => *held = Held::Unbounded(BoundError::Disrupted),
            Err(_) => {}
        }
        result
    }
}

impl IntervalSource for RemoteSource {
    type Error = RemoteSourceError;

    fn interval(&self) -> Result<TimeInterval, RemoteSourceError> {
        let held = *self.held.read().unwrap_or_else(PoisonError::into_inner);
        let (answer, before) = match held {
            Held::Answer(answer, before) => (answer, before),
            Held::Nothing => return Err(RemoteSourceError::NotRefreshed),
            Held::Unbounded(e) => return Err(RemoteSourceError::Bound(e)),
        };
        let mut now = clock_pair()?;
        // A thread descheduled between the two clock reads looks suspended;
        // a real suspend shows again on a second pair (as for LocalClock).
        if let Err(RemoteSourceError::Suspended) = check_projection(before, answer.at, now, self.max_age) {
            now = clock_pair()?;
        }
        check_projection(before, answer.at, now, self.max_age)?;
        answer.interval_at(now.0).ok_or(RemoteSourceError::Bound(BoundError::OutOfRange))
    }
}

/// `(CLOCK_MONOTONIC_RAW, CLOCK_BOOTTIME)`, read in that order.
fn clock_pair() -> Result<(MonoInstant, MonoInstant), RemoteSourceError> {
    Ok((
        sys::reader_clock_now().map_err(RemoteSourceError::Clock)?,
        sys::boottime_now().map_err(RemoteSourceError::Clock)?,
    ))
}

/// Whether an answer that arrived at `at`, requested after the clock pair
/// `before`, may be projected to the clock pair `now`.
fn check_projection(
    before: (MonoInstant, MonoInstant),
    at: MonoInstant,
    now: (MonoInstant, MonoInstant),
    max_age: Duration,
) -> Result<(), RemoteSourceError> {
    if slept_between(before, now) {
        return Err(RemoteSourceError::Suspended);
    }
    let age = Duration::from_nanos(now.0.as_nanos().saturating_sub(at.as_nanos()));
    if age > max_age { Err(RemoteSourceError::Stale { age, max_age }) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(n: u64) -> Timestamp {
        Timestamp::from_nanos(n)
    }

    fn interval(earliest: u64, latest: u64) -> TimeInterval {
        TimeInterval::new(ts(earliest), ts(latest)).unwrap()
    }

    fn hts(physical: u64, logical: u16) -> HybridTimestamp {
        HybridTimestamp::from_parts(physical, logical).unwrap()
    }

    #[test]
    fn successor_takes_the_larger_and_never_wraps() {
        assert_eq!(successor_at_least(5, 3), Some(6));
        assert_eq!(successor_at_least(5, 6), Some(6));
        assert_eq!(successor_at_least(5, 100), Some(100));
        // Logical 4095 + 1 carries into the physical part.
        let carried = successor_at_least(hts(7, 4095).raw(), 0).map(HybridTimestamp::from_raw);
        assert_eq!(carried, Some(hts(8, 0)));
        assert_eq!(successor_at_least(u64::MAX, 0), None);
        assert_eq!(successor_at_least(u64::MAX - 1, 0), Some(u64::MAX));
    }

    #[test]
    fn floor_is_the_microsecond_of_earliest() {
        let floor = floor_of::<()>(interval(1_999, 5_000)).unwrap();
        assert_eq!(floor, hts(1, 0));
        let past_2112 = floor_of::<()>(interval(u64::MAX - 1, u64::MAX));
        assert!(matches!(past_2112, Err(HlcError::OutOfRange(_))));
    }

    #[test]
    fn next_step_waits_until_earliest_passes_the_range_end() {
        let target = ts(10_000_999);
        let window = Duration::from_micros(100);
        assert_eq!(next_step(target, interval(10_001_000, 10_002_000), window), Step::Done);
        assert_eq!(next_step(target, interval(10_000_999, 10_002_000), window), Step::Poll, "equal is not past");
        assert_eq!(next_step(target, interval(10_000_950, 10_002_000), window), Step::Poll);
        // 1 ms to go: sleep all but the window.
        let step = next_step(target, interval(9_001_000, 9_002_000), window);
        assert_eq!(step, Step::Sleep(Duration::from_micros(900)));
        // Far away: one capped sleep at a time.
        assert_eq!(next_step(ts(1_000_000_000), interval(0, 1), window), Step::Sleep(MAX_SLEEP));
    }

    #[test]
    fn ahead_counts_from_the_start_of_the_microsecond() {
        let latest = ts(5_000_500);
        assert_eq!(ahead_of(hts(5_000, 3), latest), None, "its µs started before latest");
        assert_eq!(ahead_of(hts(5_001, 0), latest), Some(Duration::from_nanos(500)));
        assert_eq!(ahead_of(hts(5_000, 0), ts(5_000_000)), None);
    }

    #[test]
    fn overshoot_is_measured_from_the_first_satisfying_instant() {
        let wait =
            CommitWait { timestamp: hts(10, 0), interval: interval(11_000, 12_000), waited: Duration::ZERO, reads: 2 };
        assert_eq!(wait.target(), ts(10_999));
        assert_eq!(wait.overshoot(), Duration::ZERO);
        let later = CommitWait { interval: interval(11_250, 12_000), ..wait };
        assert_eq!(later.overshoot(), Duration::from_nanos(250));
    }

    #[test]
    fn projection_refuses_old_answers_and_suspends() {
        let m = MonoInstant::from_nanos;
        let before = (m(1_000_000_000), m(5_000_000_000));
        let at = m(1_002_000_000);
        let max_age = Duration::from_secs(1);
        assert!(check_projection(before, at, (m(1_500_000_000), m(5_500_000_000)), max_age).is_ok());
        assert!(matches!(
            check_projection(before, at, (m(2_002_000_001), m(6_002_000_001)), max_age),
            Err(RemoteSourceError::Stale { .. })
        ));
        assert!(matches!(
            check_projection(before, at, (m(1_500_000_000), m(15_500_000_000)), max_age),
            Err(RemoteSourceError::Suspended)
        ));
        // A read racing a refresh may see the answer arrive after its clock read.
        assert!(check_projection(before, at, (m(1_001_000_000), m(5_001_000_000)), max_age).is_ok());
    }
}
