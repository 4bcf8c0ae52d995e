//! The delay queue: datagrams waiting for their release time, both
//! directions in one binary heap ordered by release time (ties in arrival
//! order), with at most [`QUEUE_CAPACITY`] datagrams in flight per direction.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use super::QUEUE_CAPACITY;

/// Which way a datagram travels through the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Way {
    /// Client → target.
    Forward,
    /// Target → client.
    Reverse,
}

impl Way {
    fn index(self) -> usize {
        match self {
            Self::Forward => 0,
            Self::Reverse => 1,
        }
    }
}

/// Where a released datagram goes.
#[derive(Debug)]
pub(super) enum Route {
    /// To the target, from the client's upstream socket (connected to the target).
    ToTarget(Arc<UdpSocket>),
    /// To a client, from the relay's listening socket.
    ToClient(SocketAddr),
}

/// One datagram in flight.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) release: Instant,
    /// Arrival order, to break ties between equal release times.
    seq: u64,
    pub(super) way: Way,
    pub(super) route: Route,
    pub(super) payload: Vec<u8>,
}

// The heap is a max-heap: the earliest release (then the lowest seq) is the greatest.
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        other.release.cmp(&self.release).then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pending {}

/// The direction's queue already holds [`QUEUE_CAPACITY`] datagrams.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Full;

/// Datagrams in flight, earliest release first.
#[derive(Debug, Default)]
pub(super) struct DelayQueue {
    heap: BinaryHeap<Pending>,
    next_seq: u64,
    in_flight: [usize; 2],
}

impl DelayQueue {
    /// Queues a datagram for `release`; `Ok(true)` if it is now the first to
    /// go (the delivery thread must wake up earlier than it planned).
    pub(super) fn push(&mut self, release: Instant, way: Way, route: Route, payload: Vec<u8>) -> Result<bool, Full> {
        let count = self.in_flight.get_mut(way.index()).ok_or(Full)?;
        if *count >= QUEUE_CAPACITY {
            return Err(Full);
        }
        *count += 1;
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let is_first = self.heap.peek().is_none_or(|first| release < first.release);
        self.heap.push(Pending { release, seq, way, route, payload });
        Ok(is_first)
    }

    /// When the first datagram is due, if any is queued.
    pub(super) fn next_release(&self) -> Option<Instant> {
        self.heap.peek().map(|first| first.release)
    }

    /// Moves every datagram due at `now` to `due`, earliest first.
    pub(super) fn pop_due(&mut self, now: Instant, due: &mut Vec<Pending>) {
        while self.heap.peek().is_some_and(|first| first.release <= now) {
            let Some(pending) = self.heap.pop() else { break };
            if let Some(count) = self.in_flight.get_mut(pending.way.index()) {
                *count = count.saturating_sub(1);
            }
            due.push(pending);
        }
    }

    /// Datagrams queued in direction `way`.
    pub(super) fn in_flight(&self, way: Way) -> usize {
        self.in_flight.get(way.index()).copied().unwrap_or(0)
    }

    /// Forgets every queued datagram (and the sockets they hold).
    pub(super) fn clear(&mut self) {
        self.heap.clear();
        self.in_flight = [0; 2];
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn to_client() -> Route {
        Route::ToClient(SocketAddr::from(([127, 0, 0, 1], 9)))
    }

    #[test]
    fn releases_in_time_order_then_arrival_order() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut queue = DelayQueue::default();
        assert_eq!(queue.push(ms(30), Way::Forward, to_client(), vec![1]), Ok(true));
        assert_eq!(queue.push(ms(10), Way::Reverse, to_client(), vec![2]), Ok(true));
        assert_eq!(queue.push(ms(10), Way::Forward, to_client(), vec![3]), Ok(false));
        assert_eq!(queue.push(ms(20), Way::Forward, to_client(), vec![4]), Ok(false));
        assert_eq!(queue.next_release(), Some(ms(10)));
        assert_eq!((queue.in_flight(Way::Forward), queue.in_flight(Way::Reverse)), (3, 1));

        let mut due = Vec::new();
        queue.pop_due(ms(5), &mut due);
        assert!(due.is_empty());
        queue.pop_due(ms(20), &mut due);
        let order: Vec<u8> = due.iter().flat_map(|p| p.payload.clone()).collect();
        assert_eq!(order, [2, 3, 4]);
        assert_eq!((queue.in_flight(Way::Forward), queue.in_flight(Way::Reverse)), (1, 0));
        assert_eq!(queue.next_release(), Some(ms(30)));
        queue.clear();
        assert_eq!(queue.next_release(), None);
    }

    #[test]
    fn each_direction_is_bounded_separately() {
        let t0 = Instant::now();
        let mut queue = DelayQueue::default();
        for _ in 0..QUEUE_CAPACITY {
            assert!(queue.push(t0, Way::Forward, to_client(), Vec::new()).is_ok());
        }
        assert_eq!(queue.push(t0, Way::Forward, to_client(), Vec::new()), Err(Full));
        assert!(queue.push(t0, Way::Reverse, to_client(), Vec::new()).is_ok());
        let mut due = Vec::new();
        queue.pop_due(t0, &mut due);
        assert_eq!(due.len(), QUEUE_CAPACITY + 1);
        assert!(queue.push(t0, Way::Forward, to_client(), Vec::new()).is_ok());
    }
}
