//! [`TsoRange`]: consecutive TSO timestamps granted to one caller, and its
//! iterator. A range is never empty, never longer than
//! [`MAX_TSO_COUNT`](tsod_proto::wire::MAX_TSO_COUNT), and never passes
//! [`HybridTimestamp::MAX`] (the constructor checks all three).

use std::iter::FusedIterator;

use serde::Serialize;
use tsod_proto::HybridTimestamp;
use tsod_proto::wire::MAX_TSO_COUNT;

/// The timestamps `first, first + 1, …, last` (raw values, SPEC.md §4.8):
/// what [`Tso::reserve`](super::Tso::reserve) returns. Every one of them is
/// unique and above every timestamp this client had received when the
/// request was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TsoRange {
    first: HybridTimestamp,
    last: HybridTimestamp,
    count: u32,
}

impl TsoRange {
    /// The `count` timestamps from `first`, or `None` if `count` is 0 or
    /// above 65 536, or the range would pass [`HybridTimestamp::MAX`].
    pub fn new(first: HybridTimestamp, count: u32) -> Option<Self> {
        if !(1..=MAX_TSO_COUNT).contains(&count) {
            return None;
        }
        let last = first.checked_add_ticks(u64::from(count) - 1)?;
        Some(Self { first, last, count })
    }

    /// The range from `first` split into consecutive sub-ranges of
    /// `counts`, in order: how one granted range is shared among the calls
    /// batched into its request (by this client, and by a follower site
    /// forwarding its clients' calls). `None` if one would be empty, too
    /// long or pass [`HybridTimestamp::MAX`].
    pub fn split(first: HybridTimestamp, counts: &[u32]) -> Option<Vec<Self>> {
        let mut next = Some(first);
        counts
            .iter()
            .map(|&count| {
                let range = Self::new(next?, count)?;
                next = range.last().checked_next();
                Some(range)
            })
            .collect()
    }

    /// The first (smallest) timestamp.
    pub fn first(&self) -> HybridTimestamp {
        self.first
    }

    /// The last (largest) timestamp.
    pub fn last(&self) -> HybridTimestamp {
        self.last
    }

    /// How many timestamps, 1 … 65 536.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether `h` is one of the range's timestamps.
    pub fn contains(&self, h: HybridTimestamp) -> bool {
        self.first <= h && h <= self.last
    }

    /// The timestamps in increasing order.
    pub fn iter(&self) -> TsoRangeIter {
        TsoRangeIter { next: self.first.raw(), last: self.last.raw(), done: false }
    }
}

impl IntoIterator for TsoRange {
    type Item = HybridTimestamp;
    type IntoIter = TsoRangeIter;

    fn into_iter(self) -> TsoRangeIter {
        self.iter()
    }
}

impl IntoIterator for &TsoRange {
    type Item = HybridTimestamp;
    type IntoIter = TsoRangeIter;

    fn into_iter(self) -> TsoRangeIter {
        self.iter()
    }
}

/// Iterator over a [`TsoRange`], smallest first (also from the back).
#[derive(Clone, Debug)]
pub struct TsoRangeIter {
    next: u64,
    last: u64,
    done: bool,
}

impl TsoRangeIter {
    fn remaining(&self) -> usize {
        if self.done {
            return 0;
        }
        // At most 65 536 by construction of the range.
        usize::try_from(self.last - self.next).map_or(usize::MAX, |n| n.saturating_add(1))
    }
}

impl Iterator for TsoRangeIter {
    type Item = HybridTimestamp;

    fn next(&mut self) -> Option<HybridTimestamp> {
        if self.done {
            return None;
        }
        let h = HybridTimestamp::from_raw(self.next);
        if self.next == self.last {
            self.done = true;
        } else {
            self.next += 1;
        }
        Some(h)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining();
        (n, Some(n))
    }
}

impl DoubleEndedIterator for TsoRangeIter {
    fn next_back(&mut self) -> Option<HybridTimestamp> {
        if self.done {
            return None;
        }
        let h = HybridTimestamp::from_raw(self.last);
        if self.next == self.last {
            self.done = true;
        } else {
            self.last -= 1;
        }
        Some(h)
    }
}

impl ExactSizeIterator for TsoRangeIter {}

impl FusedIterator for TsoRangeIter {}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(raw: u64) -> HybridTimestamp {
        HybridTimestamp::from_raw(raw)
    }

    #[test]
    fn a_range_is_never_empty_too_long_or_past_the_end() {
        assert_eq!(TsoRange::new(h(5), 0), None);
        assert_eq!(TsoRange::new(h(5), MAX_TSO_COUNT + 1), None);
        assert_eq!(TsoRange::new(h(u64::MAX - 1), 3), None);
        let end = TsoRange::new(h(u64::MAX - 2), 3).unwrap();
        assert_eq!(end.last(), HybridTimestamp::MAX);
        assert_eq!(end.iter().count(), 3);
        let full = TsoRange::new(h(0), MAX_TSO_COUNT).unwrap();
        assert_eq!(full.last(), h(65_535));
        assert_eq!(full.iter().len(), 65_536);
    }

    #[test]
    fn iterates_every_timestamp_in_order_from_either_end() {
        let range = TsoRange::new(h(4094), 4).unwrap();
        assert_eq!((range.first(), range.last(), range.count()), (h(4094), h(4097), 4));
        let forward: Vec<u64> = range.iter().map(HybridTimestamp::raw).collect();
        assert_eq!(forward, [4094, 4095, 4096, 4097]);
        let backward: Vec<u64> = range.iter().rev().map(HybridTimestamp::raw).collect();
        assert_eq!(backward, [4097, 4096, 4095, 4094]);
        let mut it = range.into_iter();
        assert_eq!(it.len(), 4);
        assert_eq!((it.next(), it.next_back()), (Some(h(4094)), Some(h(4097))));
        assert_eq!(it.len(), 2);
        assert_eq!((it.next(), it.next()), (Some(h(4095)), Some(h(4096))));
        assert_eq!((it.next(), it.next_back(), it.len()), (None, None, 0));
        assert!(range.contains(h(4096)) && !range.contains(h(4098)) && !range.contains(h(4093)));
        let one = TsoRange::new(h(7), 1).unwrap();
        assert_eq!((&one).into_iter().collect::<Vec<_>>(), [h(7)]);
    }
}
