//! The promises `tsbench tso` checks on every range it receives, without a
//! runtime: each task's timestamps strictly increase ([`TaskOrder`]), and no
//! timestamp is handed out twice, whichever tasks received it
//! ([`GrantedSet`]).
//!
//! # Memory
//!
//! [`GrantedSet`] keeps the union of every range received as disjoint,
//! non-adjacent intervals, coalescing a range with its neighbours as it is
//! inserted. The TSO grants from one counter, so the ranges of all tasks
//! together nearly tile it and the set stays a handful of intervals; each
//! gap (timestamps granted to other clients, or a range lost to an error)
//! costs one interval. At most [`MAX_INTERVALS`] are kept: beyond that the
//! lowest are forgotten and counted, and a duplicate of a forgotten range
//! goes unnoticed.

use std::collections::BTreeMap;

use serde::Serialize;
use tsod_client::tso::TsoRange;

/// Disjoint intervals a [`GrantedSet`] keeps at most (about 50 MB).
pub(crate) const MAX_INTERVALS: usize = 1 << 20;

/// The broken promises found, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Violations {
    /// `not-increasing` + `duplicate-ranges`: 0 when the TSO kept its word.
    pub(crate) total: u64,
    /// Ranges whose first timestamp was not above the last one the same
    /// task had received.
    pub(crate) not_increasing: u64,
    /// Ranges sharing at least one timestamp with a range received before
    /// (by any task).
    pub(crate) duplicate_ranges: u64,
    /// Timestamps received more than once (each extra receipt counts).
    pub(crate) duplicate_timestamps: u64,
}

impl Violations {
    /// Adds another tally to this one.
    pub(crate) fn merge(&mut self, other: &Self) {
        self.not_increasing = self.not_increasing.saturating_add(other.not_increasing);
        self.duplicate_ranges = self.duplicate_ranges.saturating_add(other.duplicate_ranges);
        self.duplicate_timestamps = self.duplicate_timestamps.saturating_add(other.duplicate_timestamps);
        self.total = self.not_increasing.saturating_add(self.duplicate_ranges);
    }
}

/// One task's order check: every range must start above the last
/// timestamp the task received before it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TaskOrder {
    last: Option<u64>,
    not_increasing: u64,
}

impl TaskOrder {
    /// Checks the range `first..=last` (raw values) and remembers it; false
    /// if it does not start above what came before.
    pub(crate) fn observe(&mut self, first: u64, last: u64) -> bool {
        let increasing = self.last.is_none_or(|previous| first > previous);
        if !increasing {
            self.not_increasing = self.not_increasing.saturating_add(1);
        }
        self.last = Some(self.last.map_or(last, |previous| previous.max(last)));
        increasing
    }

    /// Ranges that did not increase so far.
    pub(crate) fn not_increasing(&self) -> u64 {
        self.not_increasing
    }
}

/// The raw bounds of a range, as the checks take them.
pub(crate) fn bounds(range: &TsoRange) -> (u64, u64) {
    (range.first().raw(), range.last().raw())
}

/// Every timestamp received so far, as disjoint intervals (see the module
/// doc), and the duplicates found on the way.
#[derive(Debug, Default)]
pub(crate) struct GrantedSet {
    /// First → last, both inclusive; never overlapping or adjacent.
    intervals: BTreeMap<u64, u64>,
    duplicate_ranges: u64,
    duplicate_timestamps: u64,
    forgotten: u64,
}

impl GrantedSet {
    /// Adds the ranges `first..=last` (raw values, `first <= last`), in any
    /// order; each that shares timestamps with one already present (or
    /// given before it here) counts as a duplicate. They are sorted and
    /// runs of adjacent ranges (several callers' consecutive timestamps)
    /// go into the set as one interval, so the cost is mostly the sort;
    /// a run that meets what is already there goes in range by range, to
    /// count each duplicate as `insert` does.
    pub(crate) fn insert_all(&mut self, ranges: &mut [(u64, u64)]) {
        ranges.sort_unstable();
        let mut run: Option<(usize, u64, u64)> = None;
        for i in 0..ranges.len() {
            let Some(&(first, last)) = ranges.get(i) else { break };
            run = match run {
                Some((from, low, high)) if first <= high || high.checked_add(1) == Some(first) => {
                    if first <= high {
                        // Within the batch: handed out twice.
                        let seen = last.min(high) - first + 1;
                        self.duplicate_ranges = self.duplicate_ranges.saturating_add(1);
                        self.duplicate_timestamps = self.duplicate_timestamps.saturating_add(seen);
                    }
                    Some((from, low, high.max(last)))
                }
                Some(done) => {
                    self.insert_run(ranges, done, i);
                    Some((i, first, last))
                }
                None => Some((i, first, last)),
            };
        }
        if let Some(done) = run {
            self.insert_run(ranges, done, ranges.len());
        }
    }

    /// Adds the coalesced run `low..=high` of `ranges[from..to]`: as one
    /// interval when it meets nothing present, else range by range.
    fn insert_run(&mut self, ranges: &[(u64, u64)], (from, low, high): (usize, u64, u64), to: usize) {
        if !self.overlaps(low, high) {
            self.insert(low, high);
            return;
        }
        // Duplicates within the run were counted already: insert each range
        // minus what the run's earlier ranges covered.
        let mut covered: Option<u64> = None;
        for &(first, last) in ranges.get(from..to).unwrap_or_default() {
            let start = covered.map_or(first, |c| first.max(c.saturating_add(1)));
            if covered.is_none_or(|c| c < last) && start <= last {
                self.insert(start, last);
            }
            covered = Some(covered.map_or(last, |c| c.max(last)));
        }
    }

    /// Whether any timestamp of `first..=last` is present.
    fn overlaps(&self, first: u64, last: u64) -> bool {
        let before = self.intervals.range(..=first).next_back().is_some_and(|(_, &end)| end >= first);
        before || self.intervals.range(first..=last).next().is_some()
    }

    /// Adds the range `first..=last`; returns how many of its timestamps
    /// were already present.
    pub(crate) fn insert(&mut self, first: u64, last: u64) -> u64 {
        let (first, last) = (first.min(last), first.max(last));
        let mut touching: Vec<(u64, u64)> = Vec::new();
        if let Some((&start, &end)) = self.intervals.range(..first).next_back() {
            if end.saturating_add(1) >= first {
                touching.push((start, end));
            }
        }
        touching.extend(self.intervals.range(first..=last.saturating_add(1)).map(|(&s, &e)| (s, e)));
        let (mut low, mut high, mut seen) = (first, last, 0u64);
        for (start, end) in touching {
            let (from, to) = (start.max(first), end.min(last));
            if from <= to {
                seen = seen.saturating_add(to - from).saturating_add(1);
            }
            low = low.min(start);
            high = high.max(end);
            self.intervals.remove(&start);
        }
        self.intervals.insert(low, high);
        if seen > 0 {
            self.duplicate_ranges = self.duplicate_ranges.saturating_add(1);
            self.duplicate_timestamps = self.duplicate_timestamps.saturating_add(seen);
        }
        while self.intervals.len() > MAX_INTERVALS {
            self.intervals.pop_first();
            self.forgotten = self.forgotten.saturating_add(1);
        }
        seen
    }

    /// The duplicates found, with `not_increasing` from the tasks' order checks.
    pub(crate) fn violations(&self, not_increasing: u64) -> Violations {
        let mut violations = Violations {
            total: 0,
            not_increasing,
            duplicate_ranges: self.duplicate_ranges,
            duplicate_timestamps: self.duplicate_timestamps,
        };
        violations.merge(&Violations::default());
        violations
    }

    /// Intervals held now.
    #[cfg(test)]
    pub(crate) fn intervals(&self) -> usize {
        self.intervals.len()
    }

    /// Intervals forgotten to stay within [`MAX_INTERVALS`].
    pub(crate) fn forgotten(&self) -> u64 {
        self.forgotten
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_must_receive_increasing_ranges() {
        let mut order = TaskOrder::default();
        assert!(order.observe(10, 19));
        assert!(order.observe(20, 20));
        assert!(order.observe(100, 199));
        assert!(!order.observe(150, 300), "starts inside the previous range");
        assert!(!order.observe(300, 300), "equal to the last received");
        assert!(!order.observe(5, 5), "goes back");
        assert!(order.observe(301, 301));
        assert_eq!(order.not_increasing(), 3);
    }

    #[test]
    fn interleaved_ranges_coalesce_and_a_duplicate_is_counted() {
        let mut set = GrantedSet::default();
        // Two tasks sharing one counter: 0..=9 to one, 10..=19 to the other, …
        let mut task_a: Vec<(u64, u64)> = (0..50).map(|i| (i * 20, i * 20 + 9)).collect();
        let mut task_b: Vec<(u64, u64)> = (0..50).map(|i| (i * 20 + 10, i * 20 + 19)).collect();
        set.insert_all(&mut task_b);
        set.insert_all(&mut task_a);
        assert_eq!(set.intervals(), 1, "the whole counter 0..=999, one interval");
        assert_eq!(set.violations(0), Violations::default());

        // The server hands 500..=504 out again, inside a range of 10.
        assert_eq!(set.insert(495, 504), 10);
        assert_eq!(set.insert(2_000, 2_000), 0, "a gap is no duplicate");
        assert_eq!(set.insert(999, 1_001), 1, "overlaps the end by one");
        let violations = set.violations(2);
        assert_eq!(violations.duplicate_ranges, 2);
        assert_eq!(violations.duplicate_timestamps, 11);
        assert_eq!(violations.not_increasing, 2);
        assert_eq!(violations.total, 4);
        assert_eq!(set.intervals(), 2);
    }

    #[test]
    fn an_insert_spanning_several_intervals_counts_each_overlap() {
        let mut set = GrantedSet::default();
        for (first, last) in [(10, 19), (30, 39), (50, 59)] {
            assert_eq!(set.insert(first, last), 0);
        }
        assert_eq!(set.insert(15, 55), 5 + 10 + 6);
        assert_eq!(set.intervals(), 1);
        assert_eq!(set.insert(u64::MAX - 1, u64::MAX), 0, "no overflow at the top");
        assert_eq!(set.insert(u64::MAX, u64::MAX), 1);
        assert_eq!(set.insert(0, 0), 0);
        assert_eq!(set.insert(0, 9), 1, "adjacent to 10..: coalesced, 0 seen before");
        assert_eq!(set.intervals(), 2);
    }

    #[test]
    fn violations_merge() {
        let mut a = Violations { total: 1, not_increasing: 1, ..Violations::default() };
        a.merge(&Violations { total: 2, not_increasing: 0, duplicate_ranges: 2, duplicate_timestamps: 7 });
        assert_eq!(a, Violations { total: 3, not_increasing: 1, duplicate_ranges: 2, duplicate_timestamps: 7 });
    }

    #[test]
    fn a_batch_coalesces_into_runs_and_counts_duplicates_within_it_and_against_the_set() {
        let mut set = GrantedSet::default();
        let mut batch: Vec<(u64, u64)> = (0..1000).rev().map(|i| (i * 2, i * 2 + 1)).collect();
        set.insert_all(&mut batch);
        assert_eq!(set.intervals(), 1, "0..=1999 in one run");
        assert_eq!(set.violations(0).total, 0);
        // Within a batch: 3000..=3009 twice, and 3005 inside a third range.
        let mut batch = vec![(3000, 3009), (2500, 2599), (3000, 3009), (3005, 3005), (3010, 3020)];
        set.insert_all(&mut batch);
        let v = set.violations(0);
        assert_eq!((v.duplicate_ranges, v.duplicate_timestamps), (2, 11));
        assert_eq!(set.intervals(), 3, "0..=1999, 2500..=2599, 3000..=3020");
        // Against the set: a run 1990..=2010 meets 0..=1999 in one of its
        // ranges only; 4000.. is new.
        let mut batch = vec![(1990, 1999), (2000, 2010), (4000, 4000)];
        set.insert_all(&mut batch);
        let v = set.violations(0);
        assert_eq!((v.duplicate_ranges, v.duplicate_timestamps), (3, 21));
        assert_eq!(set.intervals(), 4);
        // The top of the range does not wrap.
        let mut batch = vec![(u64::MAX, u64::MAX), (0, 0)];
        set.insert_all(&mut batch);
        assert_eq!(set.violations(0).duplicate_ranges, 4, "0 was there already");
    }
}
