//! The follower's batching core, without I/O: which of this site's waiting
//! clients go into which `tso-request` to the leader, and how the granted
//! range is shared among them. [`TsoNode`](super::node::TsoNode)'s forwarder
//! task is the shell: it pushes arriving requests, sends each batch this
//! returns, and hands [`Forwarder::complete`]'s answers back to the waiting
//! clients.
//!
//! # Invariants
//!
//! * Calls are batched in arrival order; a batch takes whole calls, at
//!   least one, and asks for at most [`MAX_TSO_COUNT`] timestamps.
//! * At most `max_in_flight` batches are sent and unanswered; calls that
//!   arrive meanwhile wait and leave together in the next batch.
//! * A granted range is split in call order into consecutive sub-ranges of
//!   exactly each call's count ([`TsoRange::split`], the same splitting the
//!   client library does); a range that cannot be split (it would pass
//!   [`HybridTimestamp::MAX`], or the leader answered for a different
//!   count) fails every call of the batch. A caller gets one answer, never
//!   two.

use std::collections::VecDeque;
use std::time::Duration;

use tsod_client::tso::TsoRange;
use tsod_proto::HybridTimestamp;
use tsod_proto::wire::MAX_TSO_COUNT;

use super::unavailable::Unavailable;

/// The calls that went to the leader in one `tso-request`.
#[derive(Debug)]
pub struct Batch<W> {
    calls: Vec<(W, u32)>,
    total: u32,
}

impl<W> Batch<W> {
    /// How many timestamps the request asks for: the sum of its calls'.
    pub fn total(&self) -> u32 {
        self.total
    }
}

/// A follower's waiting calls and the batches in flight. `W` is the reply
/// handle (a oneshot sender in the daemon, plain numbers in tests).
#[derive(Debug)]
pub struct Forwarder<W> {
    waiting: VecDeque<(W, u32)>,
    in_flight: usize,
    max_in_flight: usize,
}

impl<W> Forwarder<W> {
    /// An empty forwarder that keeps at most `max_in_flight` (at least one)
    /// batches unanswered.
    pub fn new(max_in_flight: usize) -> Self {
        Self { waiting: VecDeque::new(), in_flight: 0, max_in_flight: max_in_flight.max(1) }
    }

    /// A client's call for `count` timestamps (1 … [`MAX_TSO_COUNT`]; the
    /// codec refuses others before they get here).
    pub fn push(&mut self, reply: W, count: u32) {
        self.waiting.push_back((reply, count.clamp(1, MAX_TSO_COUNT)));
    }

    /// Calls waiting for a batch.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Batches sent and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The next batch to send, if calls are waiting and fewer than
    /// `max_in_flight` batches are unanswered.
    pub fn next_batch(&mut self) -> Option<Batch<W>> {
        if self.in_flight >= self.max_in_flight {
            return None;
        }
        let (reply, first) = self.waiting.pop_front()?;
        let mut batch = Batch { calls: vec![(reply, first)], total: first };
        while let Some(&(_, count)) = self.waiting.front() {
            match batch.total.checked_add(count).filter(|t| *t <= MAX_TSO_COUNT) {
                Some(total) => {
                    batch.total = total;
                    batch.calls.extend(self.waiting.pop_front());
                }
                None => break,
            }
        }
        self.in_flight += 1;
        Some(batch)
    }

    /// The leader's answer to `batch`: each call's first timestamp, or the
    /// error, in call order.
    pub fn complete(
        &mut self,
        batch: Batch<W>,
        result: Result<HybridTimestamp, Unavailable>,
    ) -> Vec<(W, Result<HybridTimestamp, Unavailable>)> {
        self.in_flight = self.in_flight.saturating_sub(1);
        let counts: Vec<u32> = batch.calls.iter().map(|(_, c)| *c).collect();
        let ranges = match result {
            Ok(first) => TsoRange::split(first, &counts)
                .ok_or_else(|| Unavailable::new("timestamp space exhausted", Duration::from_secs(1))),
            Err(e) => Err(e),
        };
        match ranges {
            Ok(ranges) => batch.calls.into_iter().zip(ranges).map(|((w, _), r)| (w, Ok(r.first()))).collect(),
            Err(e) => batch.calls.into_iter().map(|(w, _)| (w, Err(e.clone()))).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use tsod_proto::wire::ErrorCode;

    use super::*;

    fn h(raw: u64) -> HybridTimestamp {
        HybridTimestamp::from_raw(raw)
    }

    fn firsts(answers: Vec<(u32, Result<HybridTimestamp, Unavailable>)>) -> Vec<(u32, u64)> {
        answers.into_iter().map(|(w, r)| (w, r.map_or(0, |t| t.raw()))).collect()
    }

    #[test]
    fn waiting_calls_leave_as_one_batch_and_the_range_is_split_in_order() {
        let mut f = Forwarder::new(4);
        for (w, count) in [(1, 1), (2, 5), (3, 2)] {
            f.push(w, count);
        }
        let batch = f.next_batch().unwrap();
        assert_eq!((batch.total(), f.waiting(), f.in_flight()), (8, 0, 1));
        assert!(f.next_batch().is_none(), "nothing left to send");
        assert_eq!(firsts(f.complete(batch, Ok(h(100)))), [(1, 100), (2, 101), (3, 106)]);
        assert_eq!(f.in_flight(), 0);
    }

    #[test]
    fn a_batch_takes_whole_calls_up_to_the_largest_request() {
        let mut f = Forwarder::new(4);
        f.push(1, MAX_TSO_COUNT - 1);
        f.push(2, 2);
        f.push(3, 1);
        let first = f.next_batch().unwrap();
        assert_eq!(first.total(), MAX_TSO_COUNT - 1, "the call of 2 does not fit: it is not cut");
        let second = f.next_batch().unwrap();
        assert_eq!(second.total(), 3);
        assert_eq!(firsts(f.complete(second, Ok(h(10)))), [(2, 10), (3, 12)]);
    }

    #[test]
    fn the_in_flight_limit_holds_calls_back_until_a_batch_completes() {
        let mut f = Forwarder::new(1);
        f.push(1, 1);
        let batch = f.next_batch().unwrap();
        f.push(2, 1);
        f.push(3, 4);
        assert!(f.next_batch().is_none(), "the only slot is taken");
        let _ = f.complete(batch, Ok(h(0)));
        let next = f.next_batch().unwrap();
        assert_eq!(next.total(), 5, "the calls that waited leave together");
    }

    #[test]
    fn an_error_or_an_unsplittable_range_fails_every_call_of_the_batch_once() {
        let mut f = Forwarder::new(2);
        f.push(1, 1);
        f.push(2, 3);
        let batch = f.next_batch().unwrap();
        let answers = f.complete(batch, Err(Unavailable::new("no leader", Duration::from_millis(5))));
        assert_eq!(answers.len(), 2);
        assert!(answers.iter().all(|(_, r)| r.as_ref().is_err_and(|e| e.code == ErrorCode::TsoUnavailable)));

        f.push(3, 2);
        f.push(4, 2);
        let batch = f.next_batch().unwrap();
        let answers = f.complete(batch, Ok(h(u64::MAX - 2)));
        assert_eq!(answers.len(), 2);
        assert!(answers.iter().all(|(_, r)| r.is_err()), "would pass HybridTimestamp::MAX");
    }
}
