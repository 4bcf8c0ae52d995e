//! The leader's allocator: leases by the bounded clock (SPEC.md §4.13).
//!
//! Pure: no I/O, no clock of its own. The caller reads the site's bounded
//! clock *after* a request arrived and passes the interval in; the
//! allocator says yes (a range) or why not.
//!
//! **Invariant** (with the Raft log): every timestamp handed out by any
//! leader, in any term, is larger than every timestamp handed out before it
//! in real time. Proof sketch, for a leader `L'` following `L`:
//! * `L` issues a timestamp `h` only when its interval at issue has
//!   `latest < E_L` (its committed lease end) and `physical(h)·1000 ≤
//!   latest`; so `physical(h)·1000 < E_L`.
//! * `L'` learns the fence `F ≥ E_L` from its first committed lease (Raft's
//!   leader completeness: every lease `L` ever saw committed is in `L'`'s
//!   log before `L'`'s own entry) and issues only when `earliest > F`; its
//!   timestamps have `physical·1000 ≥ earliest > F ≥ E_L`: larger than `h`.
//! * At that moment true time is past `E_L`, and `L`'s clock would show
//!   `latest ≥` true time `> E_L`: `L` can issue nothing more, however long
//!   it was paused or partitioned. Hence real-time order, not only
//!   uniqueness. Within one leader, `last` makes the sequence increase.
//! * Ranges start at the interval's top microsecond (`⌊latest/1000⌋`, and
//!   never below `⌈earliest/1000⌉`), so a TSO timestamp asked for after a
//!   commit-wait on `t` returned is above `t` (module [`tsod_client::hlc`]).

use std::time::Duration;

use tsod_proto::{HybridTimestamp, TimeInterval};

/// Whether a leader whose clock is in `status` and reads `now` may propose
/// a lease: its sources agree (`synchronized`, or `degraded`: a majority
/// of them) and its half-width is at most `max_half_width`. A lease end is
/// `latest` plus the lease, so a clock that is free-running, or wider than
/// the cluster allows, would commit a fence that far beyond true time.
pub fn fit_to_propose(status: tsod_proto::ClockStatus, now: &TimeInterval, max_half_width: Duration) -> bool {
    matches!(status, tsod_proto::ClockStatus::Synchronized | tsod_proto::ClockStatus::Degraded)
        && now.half_width() <= max_half_width
}

/// Why the leader cannot issue now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No lease of this term has committed yet.
    #[error("no lease committed yet in this term")]
    NoLease,
    /// The previous leaders' leases may not have ended yet.
    #[error("waiting for the previous leader's lease to end ({wait:?} more)")]
    FenceNotPassed {
        /// How long until it surely has (at the clock's slowest).
        wait: Duration,
    },
    /// Our own lease is not surely held any more.
    #[error("lease not surely held")]
    LeaseExpired,
    /// The range would run ahead of the clock's `latest`.
    #[error("more timestamps than microseconds: {wait:?} until they fit")]
    AheadOfClock {
        /// How long until they fit.
        wait: Duration,
    },
    /// The range would pass `HybridTimestamp::MAX`.
    #[error("timestamp space exhausted")]
    Exhausted,
}

/// One leader's state in one term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocator {
    term: u64,
    /// The fence left by earlier terms, once our first lease committed.
    fence_ns: Option<u64>,
    /// The end of our latest committed lease.
    lease_end_ns: u64,
    /// The last timestamp handed out.
    last: Option<HybridTimestamp>,
}

impl Allocator {
    /// A leader that has just won `term`: it issues nothing yet.
    pub fn new(term: u64) -> Self {
        Self { term, fence_ns: None, lease_end_ns: 0, last: None }
    }

    /// The term it leads in.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// The fence learned from our first commit, if any.
    pub fn fence_ns(&self) -> Option<u64> {
        self.fence_ns
    }

    /// Our committed lease end (0 before the first commit).
    pub fn lease_end_ns(&self) -> u64 {
        self.lease_end_ns
    }

    /// The last timestamp handed out in this term.
    pub fn last(&self) -> Option<HybridTimestamp> {
        self.last
    }

    /// A lease of ours ending at `end_ns` committed; the state machine said
    /// the fence before it was `previous_end_ns`. Only the first commit of
    /// the term sets the fence (proposals are made one at a time, so the
    /// first answer covers every entry of earlier terms); a fence taken
    /// from a later answer could only be larger, which is safe and slower.
    pub fn on_committed(&mut self, previous_end_ns: u64, end_ns: u64) {
        if self.fence_ns.is_none() {
            self.fence_ns = Some(previous_end_ns);
        }
        self.lease_end_ns = self.lease_end_ns.max(end_ns);
    }

    /// Whether to propose a renewal: no lease yet, or less than `renew_left`
    /// of it is left (judged by `latest`, the late side).
    pub fn wants_renewal(&self, now: TimeInterval, renew_left: Duration) -> bool {
        self.fence_ns.is_none() || self.lease_left(now) < renew_left
    }

    /// How much of the lease is surely left at `now` (judged by `latest`).
    pub fn lease_left(&self, now: TimeInterval) -> Duration {
        Duration::from_nanos(self.lease_end_ns.saturating_sub(now.latest().as_nanos()))
    }

    /// The interval's top microsecond, logical 0 (never below its bottom
    /// one): where a range asked for at `now` may start at the earliest.
    pub fn top_of(now: TimeInterval) -> Result<HybridTimestamp, Refusal> {
        // A commit-wait timestamp `t` whose wait ended before this request
        // arrived has `time_range(t).latest < true time ≤ latest`, so
        // `⌊latest/1000⌋ > physical(t)`: TSO and commit-wait timestamps mix.
        let floor_latest = HybridTimestamp::from_timestamp_floor(now.latest()).map_err(|_| Refusal::Exhausted)?;
        let ceil_earliest = HybridTimestamp::from_timestamp_ceil(now.earliest()).map_err(|_| Refusal::Exhausted)?;
        Ok(floor_latest.max(ceil_earliest))
    }

    /// `count` consecutive timestamps (`count ≥ 1`) at `now`, the site's
    /// interval read after the request arrived, starting at its top
    /// microsecond. Returns the first.
    pub fn issue(&mut self, count: u32, now: TimeInterval) -> Result<HybridTimestamp, Refusal> {
        let not_below = Self::top_of(now)?;
        self.issue_from(count, now, not_below)
    }

    /// [`Allocator::issue`] for a request whose first clock read gave the
    /// top microsecond `not_below` ([`Allocator::top_of`]): a range longer
    /// than the 4 096 ticks of one microsecond is retried with the same
    /// `not_below` until `latest` has moved far enough to cover its end, so
    /// it starts where it would have at arrival and ends within the bound.
    pub fn issue_from(
        &mut self,
        count: u32,
        now: TimeInterval,
        not_below: HybridTimestamp,
    ) -> Result<HybridTimestamp, Refusal> {
        let fence = self.fence_ns.ok_or(Refusal::NoLease)?;
        let earliest = now.earliest().as_nanos();
        let latest = now.latest().as_nanos();
        if earliest <= fence {
            return Err(Refusal::FenceNotPassed { wait: Duration::from_nanos(fence - earliest + 1) });
        }
        if latest >= self.lease_end_ns {
            return Err(Refusal::LeaseExpired);
        }
        let ceil_earliest = HybridTimestamp::from_timestamp_ceil(now.earliest()).map_err(|_| Refusal::Exhausted)?;
        let start = not_below.max(ceil_earliest);
        let first = match self.last {
            Some(last) => last.checked_add_ticks(1).ok_or(Refusal::Exhausted)?.max(start),
            None => start,
        };
        let end = first.checked_add_ticks(u64::from(count.max(1)) - 1).ok_or(Refusal::Exhausted)?;
        let end_ns = end.physical_micros().saturating_mul(1_000);
        if end_ns > latest {
            return Err(Refusal::AheadOfClock { wait: Duration::from_nanos(end_ns - latest) });
        }
        self.last = Some(end);
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use tsod_proto::Timestamp;

    use super::*;

    const T: u64 = 1_795_462_647_000_000_000;
    const LEASE: Duration = Duration::from_millis(600);

    fn at(earliest: u64, latest: u64) -> TimeInterval {
        TimeInterval::new(Timestamp::from_nanos(earliest), Timestamp::from_nanos(latest)).expect("ordered")
    }

    #[test]
    fn only_an_agreeing_clock_narrower_than_the_limit_proposes_leases() {
        use tsod_proto::ClockStatus::{Degraded, Disrupted, FreeRunning, Synchronized, Unsynchronized};
        let max = Duration::from_millis(500);
        let narrow = at(T, T + 2_000_000); // half-width 1 ms
        let wide = at(T, T + 1_200_000_000); // 600 ms
        assert!(fit_to_propose(Synchronized, &narrow, max));
        assert!(fit_to_propose(Degraded, &narrow, max));
        assert!(!fit_to_propose(Synchronized, &wide, max));
        for status in [FreeRunning, Unsynchronized, Disrupted] {
            assert!(!fit_to_propose(status, &narrow, max), "{status:?}");
        }
        assert!(fit_to_propose(Synchronized, &at(T, T + 1_000_000_000), max), "exactly the limit");
    }

    fn leading(fence: u64, end: u64) -> Allocator {
        let mut a = Allocator::new(2);
        a.on_committed(fence, end);
        a
    }

    #[test]
    fn nothing_before_the_first_commit() {
        let mut a = Allocator::new(1);
        assert_eq!(a.issue(1, at(T, T + 30_000)), Err(Refusal::NoLease));
        assert!(a.wants_renewal(at(T, T + 30_000), LEASE));
    }

    #[test]
    fn waits_until_the_fence_has_surely_passed() {
        let mut a = leading(T + 100_000, T + 700_000_000);
        assert_eq!(
            a.issue(1, at(T + 99_000, T + 200_000)),
            Err(Refusal::FenceNotPassed { wait: Duration::from_nanos(1_001) })
        );
        assert_eq!(
            a.issue(1, at(T + 100_000, T + 200_000)),
            Err(Refusal::FenceNotPassed { wait: Duration::from_nanos(1) })
        );
        let first = a.issue(1, at(T + 100_001, T + 200_000)).expect("past the fence");
        assert!(first.physical_micros() * 1_000 > T + 100_000);
    }

    #[test]
    fn stops_when_the_lease_is_not_surely_held() {
        let mut a = leading(0, T + 1_000_000);
        assert!(a.issue(1, at(T, T + 999_999)).is_ok());
        assert_eq!(a.issue(1, at(T, T + 1_000_000)), Err(Refusal::LeaseExpired));
    }

    #[test]
    fn timestamps_lie_within_the_interval_and_increase() {
        let mut a = leading(0, T + 1_000_000_000);
        let mut previous = None;
        for i in 0..2_000u64 {
            let now = at(T + i * 10, T + i * 10 + 60_000);
            let first = a.issue(3, now).expect("issues");
            let last = first.checked_add_ticks(2).expect("in range");
            assert!(first.physical_micros() * 1_000 >= now.earliest().as_nanos());
            assert!(last.physical_micros() * 1_000 <= now.latest().as_nanos());
            if let Some(p) = previous {
                assert!(first > p, "{first:?} after {p:?}");
            }
            previous = Some(last);
        }
    }

    #[test]
    fn never_runs_ahead_of_latest() {
        // Ranges start in the top microsecond, which holds 4096 ticks.
        let mut a = leading(0, T + 1_000_000_000);
        let now = at(T, T + 2_000);
        let first = a.issue(4_096, now).expect("fits the top microsecond");
        assert_eq!(first.physical_micros() * 1_000, T + 2_000);
        assert!(matches!(a.issue(1, now), Err(Refusal::AheadOfClock { .. })));
        // Once time moves on, it fits again.
        assert!(a.issue(1, at(T + 1_000, T + 3_000)).is_ok());
    }

    #[test]
    fn a_timestamp_after_a_commit_wait_is_above_the_waited_one() {
        // t1 waited out: its microsecond ended before true time `truth`;
        // the leader's interval [truth - w1, truth + w2] contains truth.
        for (w1, w2, truth_offset) in [(50_000, 50_000, 1), (900_000, 1_000, 500), (10, 10, 999), (3_000, 70_000, 1)] {
            let t1 = HybridTimestamp::from_parts((T + 7_000_000) / 1_000, 4_095).expect("in range");
            let truth = t1.time_range().latest().as_nanos() + truth_offset;
            let mut a = leading(0, u64::MAX - 1);
            let first = a.issue(1, at(truth - w1, truth + w2)).expect("issues");
            assert!(first > t1, "{first:?} not above {t1:?} with interval -{w1}/+{w2}");
        }
    }

    #[test]
    fn a_successor_issues_above_everything_its_predecessor_could() {
        // L holds a lease to E; it issues up to the last instant it may.
        let e = T + 600_000_000;
        let mut l = leading(0, e);
        let last_old = l.issue(1, at(e - 60_000, e - 1)).expect("inside the lease");
        // L' learns fence E and issues once its earliest passes it.
        let mut l2 = Allocator::new(3);
        l2.on_committed(e, e + 600_000_000);
        assert!(l2.issue(1, at(e - 1, e + 59_999)).is_err());
        let first_new = l2.issue(1, at(e + 1, e + 60_001)).expect("fence passed");
        assert!(first_new > last_old);
        // And L, at any later reading, refuses: its latest is past E.
        assert_eq!(l.issue(1, at(e + 1 - 60_000, e + 1)), Err(Refusal::LeaseExpired));
    }

    #[test]
    fn renews_once_little_of_the_lease_is_left() {
        let end = T + 600_000_000;
        let a = leading(0, end);
        let renew_left = Duration::from_millis(400);
        assert!(!a.wants_renewal(at(T - 60_000, T), renew_left));
        assert!(!a.wants_renewal(at(T + 199_000_000, T + 199_999_999), renew_left));
        assert!(a.wants_renewal(at(T + 200_000_000, T + 200_000_001), renew_left));
        assert_eq!(a.lease_left(at(T, T + 100_000_000)), Duration::from_millis(500));
        assert_eq!(a.lease_left(at(T, T + 700_000_000)), Duration::ZERO);
        // Before the first commit it always wants one.
        assert!(Allocator::new(1).wants_renewal(at(T, T), renew_left));
    }

    #[test]
    fn a_long_range_waits_for_latest_to_cover_it_from_where_it_was_asked() {
        let mut a = leading(0, T + 1_000_000_000);
        let asked = at(T, T + 60_000);
        let not_below = Allocator::top_of(asked).expect("in range");
        // 65 536 ticks span 16 µs above the top microsecond: not yet.
        assert!(matches!(a.issue_from(65_536, asked, not_below), Err(Refusal::AheadOfClock { .. })));
        // 15 µs later the same start fits, inside the new interval.
        let later = at(T + 15_000, T + 75_000);
        let first = a.issue_from(65_536, later, not_below).expect("fits now");
        assert_eq!(first, not_below);
        let last = first.checked_add_ticks(65_535).expect("in range");
        assert!(last.physical_micros() * 1_000 <= later.latest().as_nanos());
        assert!(first.physical_micros() * 1_000 >= later.earliest().as_nanos());
    }

    #[test]
    fn exhaustion_is_an_error_not_a_wrap() {
        let mut a = leading(0, u64::MAX);
        a.last = Some(HybridTimestamp::MAX);
        assert_eq!(a.issue(1, at(T, T + 1_000)), Err(Refusal::Exhausted));
    }
}
