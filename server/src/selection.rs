//! Selection: which instants do enough sources agree on? (Marzullo's
//! algorithm, as in NTP's intersection step.)
//!
//! # What it is for
//!
//! Each source claims "true time lies in this interval". Up to `f` of the `n`
//! sources may be wrong (a spoofed GPS, a broken peer, a server with a bad
//! clock), so no single claim is trusted. [`select`] keeps the instants that
//! at least `m = n − f` claims cover, bounds them, and tells which sources
//! agree with that set.
//!
//! # The algorithm
//!
//! Every interval contributes two *edges*: it opens at `earliest` and closes
//! at `latest`. The edges are sorted by instant, openings before closings at
//! the same instant (intervals are closed, so `[0, 5]` and `[5, 9]` share the
//! instant 5), and swept once while counting how many intervals are open (the
//! *depth*). Each stretch where the depth is at least `m` is an *agreement
//! segment*; the segments come out sorted, disjoint and not touching.
//! Sorting dominates: O(n log n) time, O(n) memory. Only comparisons are made
//! on timestamps, so any values, `0` and `u64::MAX` included, are fine.
//!
//! The **agreement set** `A` (instants covered by at least `m` intervals) is
//! the union of the segments, and it need not be one interval: with `[0, 1]`,
//! `[0, 3]`, `[2, 3]` and `m = 2` it is `[0, 1] ∪ [2, 3]`. A bound must be one
//! interval, so the result is the **hull** of `A`, from its first instant to
//! its last (`[0, 3]` above). The hull is still a true bound:
//!
//! > If at most `f` sources are wrong, at least `n − f = m` intervals contain
//! > true time, so true time is in `A`, and so in its hull.
//!
//! The hull only adds instants, so it cannot lose true time; what it costs is
//! width, and only when the sources split into camps that each reach `m`.
//! A larger `f` lowers `m`, which only grows `A`: the bound gets wider, never
//! wrong.
//!
//! # Verdicts
//!
//! A source is a **truechimer** if its interval meets `A` itself, and a
//! **falseticker** if it does not. Meeting the hull is not enough: with
//! `[0, 1]`, `[0, 1]`, `[2, 3]`, `[5, 6]`, `[5, 6]` and `m = 2`, `[2, 3]` lies
//! inside the hull `[0, 6]` yet no other source agrees with any instant of it.
//! A correct source contains true time, which is in `A`, so a correct source
//! is never called a falseticker while at most `f` sources are wrong. (Unlike
//! RFC 5905's clock-select, midpoints play no part: an interval is a claim,
//! and the whole claim is tested.)
//!
//! # Why `m` is not raised when more sources agree
//!
//! RFC 5905's clock-select tries `f = 0, 1, …` and stops at the first `f`
//! that gives an intersection, which is narrower when all sources happen to
//! overlap. That is not a true bound: with correct `[0, 10]`, `[0, 10]`, true
//! time 1 and a liar `[9, 20]`, all three meet on `[9, 10]`, which misses 1.
//! Only `m = n − f` for the `f` the caller is prepared to tolerate carries the
//! argument above, so that is the only `m` used, however well sources agree.
//!
//! # No majority
//!
//! If no instant is covered by `m` intervals (always so with no sources), the
//! premise "at most `f` sources are wrong" is itself refuted: were it true,
//! true time would be such an instant. Nothing can be bounded and no source
//! can be judged, so [`Selection::NoMajority`] carries no bound and no
//! verdicts, only the counts for diagnostics; the caller reports
//! unsynchronised rather than blame sources it cannot tell apart.
//!
//! # `f` out of range
//!
//! `f` is clamped to `n − 1`, so `m ≥ 1`: with `f ≥ n` the caller asserts
//! that at least one source is right, and `A` is then the union of all the
//! intervals. (If every source may be wrong, nothing can be said at all.)

use tsod_proto::{TimeInterval, Timestamp};

/// The outcome of [`select`].
#[must_use = "a selection either bounds true time or says that nothing can"]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// At least one instant is covered by the required number of sources.
    Agreed {
        /// The smallest interval containing every instant covered by at least
        /// `n − f` sources. Contains true time if at most `f` sources are wrong.
        bound: TimeInterval,
        /// One verdict per source, in input order.
        verdicts: Vec<Verdict>,
    },
    /// No instant is covered by the required number of sources: more than
    /// `f` sources are wrong, and which ones cannot be told.
    NoMajority {
        /// Sources that had to agree on one instant: `n − f`, with `f`
        /// clamped to `n − 1` (and 1 when there are no sources).
        required: usize,
        /// The most sources that do share an instant (0 with no sources).
        deepest: usize,
    },
}

impl Selection {
    /// The agreed bound, or `None` when no majority agrees.
    #[must_use]
    pub const fn bound(&self) -> Option<TimeInterval> {
        match self {
            Self::Agreed { bound, .. } => Some(*bound),
            Self::NoMajority { .. } => None,
        }
    }
}

/// How one source's interval relates to the agreement set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Its interval shares at least one instant with the agreement set.
    Truechimer,
    /// Its interval misses the agreement set: this source is wrong, or more
    /// than `f` others are.
    Falseticker,
}

/// The default number of sources that may lie at once: ⌊(n − 1)/2⌋, but at
/// least 1 once there are two sources.
///
/// ⌊(n − 1)/2⌋ is the most for which the `n − f` agreeing sources are still
/// a strict majority. Two sources cannot form a majority against a liar, and
/// with `f = 0` their *intersection* would let either one narrow the bound
/// below what the other backs: a liar that only partly overlaps the truthful
/// source moves the bound off true time. So two sources get `f = 1`, whose
/// bound is the hull of both (a liar widens it, never misleads it), and one
/// of two heard alone carries no bound (the caller holds over). A single
/// configured source is trusted alone: there is nothing to vote with.
#[must_use]
pub const fn default_max_faulty(n: usize) -> usize {
    match n {
        0 | 1 => 0,
        2 => 1,
        _ => (n - 1) / 2,
    }
}

/// Bounds the instants that at least `n − max_faulty` of `intervals` cover.
///
/// `n = intervals.len()`; `max_faulty` is clamped to `n − 1`. Each source is
/// judged against those instants. The intervals must all describe the same
/// instant (the caller projects them). See the module documentation for the
/// algorithm and why the bound is true.
pub fn select(intervals: &[TimeInterval], max_faulty: usize) -> Selection {
    let required = required_agreement(intervals.len(), max_faulty);
    let sweep = sweep(intervals, required);
    let bound = match (sweep.segments.first(), sweep.segments.last()) {
        (Some(first), Some(last)) => TimeInterval::new(first.earliest, last.latest).ok(),
        _ => None,
    };
    // `None` with segments would be a bug in the sweep (segments come out in
    // order); refusing a bound is then the failure that cannot mislead.
    let Some(bound) = bound else {
        return Selection::NoMajority { required, deepest: sweep.deepest };
    };
    let verdicts = intervals.iter().map(|interval| verdict(&sweep.segments, interval)).collect();
    Selection::Agreed { bound, verdicts }
}

/// `m = n − f` with `f` clamped to `n − 1`; 1 for `n = 0`.
fn required_agreement(n: usize, max_faulty: usize) -> usize {
    n.saturating_sub(max_faulty).max(1)
}

/// A stretch `[earliest, latest]` over which at least `m` intervals are open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    earliest: Timestamp,
    latest: Timestamp,
}

/// What one sweep over the edges finds.
struct Sweep {
    /// The agreement set: sorted, disjoint, not touching.
    segments: Vec<Segment>,
    /// The greatest depth reached.
    deepest: usize,
}

/// An interval's edge. `Opens < Closes`, so that after sorting, every
/// interval opening at an instant is counted before any closing there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Edge {
    Opens,
    Closes,
}

/// The sweep: agreement segments for depth ≥ `required` (which must be ≥ 1).
///
/// Invariant, after each edge: `depth` is the number of intervals whose
/// opening has been swept and whose closing has not, and `open_since` is
/// `Some` exactly when `depth ≥ required`. Depth moves by one per edge, so a
/// segment opens on the opening that brings it up to `required` and closes
/// on the closing that takes it below. Since every opening at an instant is
/// swept before any closing there, the depth reached at an instant is the
/// number of intervals containing it.
fn sweep(intervals: &[TimeInterval], required: usize) -> Sweep {
    let mut edges: Vec<(Timestamp, Edge)> =
        intervals.iter().flat_map(|i| [(i.earliest(), Edge::Opens), (i.latest(), Edge::Closes)]).collect();
    edges.sort_unstable();

    let mut segments = Vec::new();
    let mut depth = 0_usize;
    let mut deepest = 0_usize;
    let mut open_since: Option<Timestamp> = None;
    for (at, edge) in edges {
        match edge {
            Edge::Opens => {
                depth = depth.saturating_add(1);
                deepest = deepest.max(depth);
                if depth == required {
                    open_since = Some(at);
                }
            }
            Edge::Closes => {
                if depth == required {
                    if let Some(earliest) = open_since.take() {
                        segments.push(Segment { earliest, latest: at });
                    }
                }
                // Never below zero: an interval opens before it closes.
                depth = depth.saturating_sub(1);
            }
        }
    }
    Sweep { segments, deepest }
}

/// Whether `interval` meets one of `segments` (sorted, disjoint): the first
/// segment not wholly before it is the only candidate. O(log segments).
fn verdict(segments: &[Segment], interval: &TimeInterval) -> Verdict {
    let candidate = segments.partition_point(|s| s.latest < interval.earliest());
    match segments.get(candidate) {
        Some(s) if s.earliest <= interval.latest() => Verdict::Truechimer,
        _ => Verdict::Falseticker,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::{Falseticker as F, Truechimer as T};
    use proptest::prelude::*;

    const MAX: u64 = u64::MAX;

    fn iv(earliest: u64, latest: u64) -> TimeInterval {
        TimeInterval::new(Timestamp::from_nanos(earliest), Timestamp::from_nanos(latest)).unwrap()
    }

    fn agreed(bound: TimeInterval, verdicts: &[Verdict]) -> Selection {
        Selection::Agreed { bound, verdicts: verdicts.to_vec() }
    }

    /// `select` with the default `f`.
    fn select_default(intervals: &[TimeInterval]) -> Selection {
        select(intervals, default_max_faulty(intervals.len()))
    }

    #[test]
    fn default_max_faulty_keeps_a_strict_majority_and_never_intersects_two() {
        let expected = [(0, 0), (1, 0), (2, 1), (3, 1), (4, 1), (5, 2), (6, 2), (7, 3), (64, 31)];
        for (n, f) in expected {
            assert_eq!(default_max_faulty(n), f, "n = {n}");
            if n > 2 {
                assert!(2 * (n - f) > n, "n − f must be a strict majority of n = {n}");
            }
            if n >= 2 {
                assert!(f >= 1, "n = {n}: no source may be trusted to narrow the others");
            }
        }
        assert_eq!(default_max_faulty(usize::MAX), (usize::MAX - 1) / 2);
    }

    #[test]
    fn no_sources_no_bound() {
        assert_eq!(select(&[], 0), Selection::NoMajority { required: 1, deepest: 0 });
        assert_eq!(select(&[], 5), Selection::NoMajority { required: 1, deepest: 0 });
        assert_eq!(select(&[], 0).bound(), None);
    }

    #[test]
    fn one_source_is_its_own_bound() {
        assert_eq!(select_default(&[iv(10, 20)]), agreed(iv(10, 20), &[T]));
        assert_eq!(select(&[iv(10, 20)], 3), agreed(iv(10, 20), &[T]));
        assert_eq!(select(&[iv(7, 7)], 0).bound(), Some(iv(7, 7)));
    }

    #[test]
    fn two_sources_give_their_hull_so_neither_narrows_the_other() {
        // Default f for n = 2 is 1: the truthful source [10, 30] with true
        // time 12 and a liar [20, 40] would intersect in [20, 30], off truth.
        assert_eq!(select_default(&[iv(10, 30), iv(20, 40)]), agreed(iv(10, 40), &[T, T]));
        assert_eq!(select_default(&[iv(20, 40), iv(10, 30)]), agreed(iv(10, 40), &[T, T]));
        // Told both are right (f = 0), the intersection.
        assert_eq!(select(&[iv(10, 30), iv(20, 40)], 0), agreed(iv(20, 30), &[T, T]));
    }

    #[test]
    fn two_disagreeing_sources_span_both_claims() {
        assert_eq!(select_default(&[iv(10, 20), iv(30, 40)]), agreed(iv(10, 40), &[T, T]));
        // Told both are right, no instant satisfies them.
        assert_eq!(select(&[iv(10, 20), iv(30, 40)], 0), Selection::NoMajority { required: 2, deepest: 1 });
        // Told one may lie, the bound spans both claims.
        assert_eq!(select(&[iv(10, 20), iv(30, 40)], 1), agreed(iv(10, 40), &[T, T]));
    }

    #[test]
    fn a_far_liar_is_outvoted_and_flagged() {
        let sources = [iv(1_000, 1_100), iv(5_000_000, 5_000_010), iv(1_050, 1_200)];
        assert_eq!(select_default(&sources), agreed(iv(1_050, 1_100), &[T, F, T]));
        // The same liar at the far end of the timescale.
        let sources = [iv(MAX - 5, MAX), iv(1_000, 1_100), iv(1_050, 1_200)];
        assert_eq!(select_default(&sources), agreed(iv(1_050, 1_100), &[F, T, T]));
    }

    #[test]
    fn a_liar_overlapping_one_truechimer_still_counts_as_agreeing() {
        // [0,10] and [5,20] agree on [5,10]; the liar [9,30] agrees with the
        // others on [9,10] and [9,20], so with m = 2 the set is [5,20].
        let sources = [iv(0, 10), iv(5, 20), iv(9, 30)];
        assert_eq!(select(&sources, 1), agreed(iv(5, 20), &[T, T, T]));
        // With m = 3 only [9,10] is left.
        assert_eq!(select(&sources, 0), agreed(iv(9, 10), &[T, T, T]));
    }

    #[test]
    fn full_agreement_does_not_narrow_the_bound() {
        // All three meet on [9,10], but if [9,20] is the one liar f = 1
        // allows, true time may be 1: the bound must stay [0,10].
        let sources = [iv(0, 10), iv(0, 10), iv(9, 20)];
        assert_eq!(select_default(&sources), agreed(iv(0, 10), &[T, T, T]));
        assert!(select_default(&sources).bound().is_some_and(|b| b.contains(Timestamp::from_nanos(1))));
    }

    #[test]
    fn touching_endpoints_share_an_instant() {
        assert_eq!(select(&[iv(0, 5), iv(5, 10)], 0), agreed(iv(5, 5), &[T, T]));
        assert_eq!(select(&[iv(5, 10), iv(0, 5)], 0), agreed(iv(5, 5), &[T, T]));
        // One nanosecond apart: no shared instant.
        assert_eq!(select(&[iv(0, 5), iv(6, 10)], 0), Selection::NoMajority { required: 2, deepest: 1 });
        // Three meeting at one instant, one of them a point.
        assert_eq!(select(&[iv(0, 5), iv(5, 5), iv(5, 9)], 0), agreed(iv(5, 5), &[T, T, T]));
        // A source that touches the agreement set only at its edge is a truechimer.
        assert_eq!(select(&[iv(0, 10), iv(4, 12), iv(10, 20)], 1), agreed(iv(4, 12), &[T, T, T]));
        assert_eq!(select(&[iv(0, 10), iv(0, 10), iv(10, 20)], 1), agreed(iv(0, 10), &[T, T, T]));
        assert_eq!(select(&[iv(0, 10), iv(0, 10), iv(11, 20)], 1), agreed(iv(0, 10), &[T, T, F]));
    }

    #[test]
    fn identical_intervals() {
        let sources = [iv(100, 200); 5];
        for f in 0..=6 {
            assert_eq!(select(&sources, f), agreed(iv(100, 200), &[T; 5]), "f = {f}");
        }
        let points = [iv(42, 42); 3];
        assert_eq!(select(&points, 0), agreed(iv(42, 42), &[T; 3]));
    }

    #[test]
    fn nested_intervals() {
        let sources = [iv(0, 100), iv(10, 90), iv(40, 60)];
        assert_eq!(select(&sources, 0), agreed(iv(40, 60), &[T, T, T]));
        assert_eq!(select(&sources, 1), agreed(iv(10, 90), &[T, T, T]));
        assert_eq!(select(&sources, 2), agreed(iv(0, 100), &[T, T, T]));
    }

    #[test]
    fn a_non_convex_agreement_set_is_bounded_by_its_hull() {
        // m = 2: the set is [0,1] ∪ [2,3]; the bound is its hull.
        let sources = [iv(0, 1), iv(0, 3), iv(2, 3)];
        assert_eq!(select(&sources, 1), agreed(iv(0, 3), &[T, T, T]));
    }

    #[test]
    fn meeting_the_hull_is_not_enough() {
        // m = 2: the set is [0,1] ∪ [5,6]; [2,3] lies in the hull but misses the set.
        let sources = [iv(0, 1), iv(0, 1), iv(2, 3), iv(5, 6), iv(5, 6)];
        assert_eq!(select(&sources, 3), agreed(iv(0, 6), &[T, T, F, T, T]));
        // A source spanning the gap meets both segments.
        let sources = [iv(0, 1), iv(0, 1), iv(1, 5), iv(5, 6), iv(5, 6)];
        assert_eq!(select(&sources, 3), agreed(iv(0, 6), &[T, T, T, T, T]));
    }

    #[test]
    fn all_disjoint_gives_no_bound() {
        let sources = [iv(0, 1), iv(2, 3), iv(4, 5), iv(6, 7)];
        assert_eq!(select_default(&sources), Selection::NoMajority { required: 3, deepest: 1 });
        assert_eq!(select(&sources, 2), Selection::NoMajority { required: 2, deepest: 1 });
        // Only with m = 1 is there a bound: the hull of all of them.
        assert_eq!(select(&sources, 3), agreed(iv(0, 7), &[T; 4]));
    }

    #[test]
    fn max_faulty_beyond_n_is_clamped_to_one_right_source() {
        let sources = [iv(0, 1), iv(10, 11), iv(20, 21)];
        for f in [2, 3, 10, usize::MAX] {
            assert_eq!(select(&sources, f), agreed(iv(0, 21), &[T, T, T]), "f = {f}");
        }
    }

    #[test]
    fn extreme_timestamps() {
        let everything = iv(0, MAX);
        assert_eq!(select(&[everything], 0), agreed(everything, &[T]));
        assert_eq!(select(&[everything, iv(MAX, MAX)], 0), agreed(iv(MAX, MAX), &[T, T]));
        assert_eq!(select(&[iv(0, 0), everything], 0), agreed(iv(0, 0), &[T, T]));
        // Two camps at opposite ends of the timescale, both backed by m = 2.
        let camps = [iv(0, 0), everything, iv(MAX, MAX)];
        assert_eq!(select(&camps, 1), agreed(everything, &[T, T, T]));
        assert_eq!(select(&camps, 0), Selection::NoMajority { required: 3, deepest: 2 });
        assert_eq!(select(&[iv(0, 0), iv(MAX, MAX)], 0), Selection::NoMajority { required: 2, deepest: 1 });
        assert_eq!(select(&[iv(MAX - 1, MAX), iv(MAX, MAX), iv(0, 1)], 1), agreed(iv(MAX, MAX), &[T, T, F]));
    }

    #[test]
    fn many_sources_take_no_time() {
        // 20 000 nested intervals and as many far liars: quadratic would show.
        let correct = (0..20_000_u64).map(|k| iv(1_000_000 - k, 1_000_000 + k));
        let liars = (0..19_999_u64).map(|k| iv(10 * k, 10 * k + 5));
        let sources: Vec<_> = correct.chain(liars).collect();
        let Selection::Agreed { bound, verdicts } = select_default(&sources) else { panic!("no majority") };
        assert!(bound.contains(Timestamp::from_nanos(1_000_000)));
        assert!(verdicts.iter().take(20_000).all(|v| *v == T));
    }

    // ---- properties -------------------------------------------------------

    /// A distance from the truth: mostly small, sometimes anything.
    fn reach() -> impl Strategy<Value = u64> {
        prop_oneof![4 => 0..1_000_u64, 1 => any::<u64>()]
    }

    /// Any interval, near `t` or anywhere.
    fn liar_around(t: u64) -> impl Strategy<Value = TimeInterval> {
        prop_oneof![
            (reach(), reach(), any::<bool>())
                .prop_map(move |(a, b, later)| if later { (t.saturating_add(a), b) } else { (t.saturating_sub(a), b) })
                .prop_map(|(start, len)| iv(start, start.saturating_add(len))),
            (any::<u64>(), any::<u64>()).prop_map(|(a, b)| iv(a.min(b), a.max(b))),
        ]
    }

    /// True time, sources with a flag "correct", and `f` = the number of liars.
    fn scenario() -> impl Strategy<Value = (u64, Vec<(bool, TimeInterval)>, usize)> {
        (any::<u64>(), 1..=12_usize, 0..=12_usize).prop_flat_map(|(t, n_correct, n_liars)| {
            let correct = prop::collection::vec(
                (reach(), reach()).prop_map(move |(a, b)| (true, iv(t.saturating_sub(a), t.saturating_add(b)))),
                n_correct,
            );
            let liars = prop::collection::vec(liar_around(t).prop_map(|i| (false, i)), n_liars);
            (correct, liars).prop_flat_map(move |(c, l)| {
                let all: Vec<_> = c.into_iter().chain(l).collect();
                (Just(t), Just(all).prop_shuffle(), Just(n_liars))
            })
        })
    }

    /// The oracle: coverage at every endpoint and every midpoint between
    /// integer endpoints, by brute force on a doubled grid.
    fn oracle(intervals: &[(u64, u64)], max_faulty: usize) -> Selection {
        let required = intervals.len().saturating_sub(max_faulty).max(1);
        let top = intervals.iter().map(|&(_, b)| 2 * b).max().unwrap_or(0);
        let coverage = |p: u64| intervals.iter().filter(|&&(a, b)| 2 * a <= p && p <= 2 * b).count();
        let in_set: Vec<u64> = (0..=top).filter(|&p| coverage(p) >= required).collect();
        let deepest = (0..=top).map(coverage).max().unwrap_or(0);
        let (Some(&first), Some(&last)) = (in_set.first(), in_set.last()) else {
            return Selection::NoMajority { required, deepest };
        };
        assert!(first % 2 == 0 && last % 2 == 0, "the set's ends are endpoints");
        let verdicts =
            intervals.iter().map(|&(a, b)| if in_set.iter().any(|&p| 2 * a <= p && p <= 2 * b) { T } else { F });
        Selection::Agreed { bound: iv(first / 2, last / 2), verdicts: verdicts.collect() }
    }

    fn small_intervals() -> impl Strategy<Value = Vec<(u64, u64)>> {
        prop::collection::vec((0..16_u64, 0..6_u64).prop_map(|(a, len)| (a, a + len)), 0..=9)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// The safety property: at most `f` liars never push true time out.
        #[test]
        fn true_time_survives_up_to_f_liars((t, sources, f) in scenario()) {
            let intervals: Vec<_> = sources.iter().map(|&(_, i)| i).collect();
            let Selection::Agreed { bound, verdicts } = select(&intervals, f) else {
                return Err(TestCaseError::fail("no majority although at most f sources lie"));
            };
            prop_assert!(bound.contains(Timestamp::from_nanos(t)), "{bound} misses {t}");
            prop_assert_eq!(verdicts.len(), sources.len());
            for ((correct, interval), verdict) in sources.iter().zip(&verdicts) {
                prop_assert!(!correct || *verdict == T, "correct source {interval} called a falseticker");
            }
            // The default f also holds whenever the liars are within it.
            if f <= default_max_faulty(intervals.len()) {
                let bound = select_default(&intervals).bound();
                prop_assert!(bound.is_some_and(|b| b.contains(Timestamp::from_nanos(t))));
            }
        }

        #[test]
        fn matches_the_brute_force_oracle(intervals in small_intervals(), f in 0..=10_usize) {
            let typed: Vec<_> = intervals.iter().map(|&(a, b)| iv(a, b)).collect();
            prop_assert_eq!(select(&typed, f), oracle(&intervals, f));
        }

        #[test]
        fn order_of_sources_does_not_matter(
            (intervals, order) in small_intervals()
                .prop_flat_map(|v| { let n = v.len(); (Just(v), Just((0..n).collect::<Vec<_>>()).prop_shuffle()) }),
            f in 0..=10_usize,
        ) {
            let typed: Vec<_> = intervals.iter().map(|&(a, b)| iv(a, b)).collect();
            let shuffled: Vec<_> = order.iter().map(|&k| typed[k]).collect();
            match (select(&typed, f), select(&shuffled, f)) {
                (Selection::Agreed { bound, verdicts }, Selection::Agreed { bound: b2, verdicts: v2 }) => {
                    prop_assert_eq!(bound, b2);
                    for (position, &k) in order.iter().enumerate() {
                        prop_assert_eq!(verdicts[k], v2[position]);
                    }
                }
                (a, b) => prop_assert_eq!(a, b),
            }
        }

        /// Allowing more liars only widens the bound (and never loses it).
        #[test]
        fn more_tolerance_only_widens(intervals in small_intervals(), f in 0..=9_usize) {
            let typed: Vec<_> = intervals.iter().map(|&(a, b)| iv(a, b)).collect();
            if let Some(strict) = select(&typed, f).bound() {
                let loose = select(&typed, f + 1).bound();
                prop_assert!(loose.is_some_and(|l| l.contains(strict.earliest()) && l.contains(strict.latest())));
            }
        }
    }
}
