//! The metrics endpoint's connection slots: at most a fixed number of
//! connections at once, and a connection that has not asked anything yet
//! gives its slot up to a newer one.
//!
//! A scraper sends its request as soon as it connects; a slow or stuck
//! client (slowloris) holds a connection open without finishing one. So
//! when every slot is taken, a new connection evicts the *oldest one that
//! has not yet sent a complete request head*: stuck clients cannot keep a
//! real scrape out, and those that finish a request keep their slot until
//! it is answered. Only when every slot is busy answering is the new
//! connection refused. The HTTP server bounds each connection in time
//! (header timeout, lifetime), so a slot always comes free.
//!
//! No I/O: the table hands out [`Admission`]s; the caller closes a
//! connection when its `evict` is notified and releases its slot when it ends.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A connection's slot.
#[derive(Debug)]
pub(super) struct Admission {
    /// Names the slot for [`Slots::release`].
    pub(super) id: u64,
    /// Set by the connection once it has received a complete request head:
    /// from then on it is never evicted.
    pub(super) asked: Arc<AtomicBool>,
    /// Notified when the connection must close to make room.
    pub(super) evict: Arc<Notify>,
}

#[derive(Debug)]
struct Slot {
    id: u64,
    asked: Arc<AtomicBool>,
    evict: Arc<Notify>,
}

/// The open connections, oldest first.
#[derive(Debug)]
pub(super) struct Slots {
    limit: usize,
    next_id: u64,
    open: VecDeque<Slot>,
}

impl Slots {
    /// Room for `limit` connections (at least one).
    pub(super) fn new(limit: usize) -> Self {
        Self { limit: limit.max(1), next_id: 0, open: VecDeque::new() }
    }

    /// A slot for a new connection, evicting the oldest connection that
    /// has not asked anything when all are taken; `None` when every
    /// connection is busy with a request (close the new one).
    pub(super) fn admit(&mut self) -> Option<Admission> {
        if self.open.len() >= self.limit {
            let idle = self.open.iter().position(|s| !s.asked.load(Ordering::Acquire))?;
            if let Some(victim) = self.open.remove(idle) {
                victim.evict.notify_one();
            }
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let slot = Slot { id, asked: Arc::new(AtomicBool::new(false)), evict: Arc::new(Notify::new()) };
        let admission = Admission { id, asked: Arc::clone(&slot.asked), evict: Arc::clone(&slot.evict) };
        self.open.push_back(slot);
        Some(admission)
    }

    /// The connection with slot `id` ended (or was evicted: then a no-op).
    pub(super) fn release(&mut self, id: u64) {
        self.open.retain(|s| s.id != id);
    }

    /// Connections holding a slot.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn notified(a: &Admission) -> bool {
        let notified = std::pin::pin!(a.evict.notified());
        matches!(notified.poll(&mut Context::from_waker(Waker::noop())), Poll::Ready(()))
    }

    #[test]
    fn below_the_limit_everyone_gets_a_slot() {
        let mut slots = Slots::new(3);
        let a: Vec<_> = (0..3).map(|_| slots.admit().unwrap()).collect();
        assert_eq!(slots.len(), 3);
        assert!(a.iter().all(|a| !notified(a)));
        assert_eq!(a.iter().map(|a| a.id).collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn when_full_the_oldest_silent_connection_is_evicted() {
        let mut slots = Slots::new(3);
        let a: Vec<_> = (0..3).map(|_| slots.admit().unwrap()).collect();
        a[0].asked.store(true, Ordering::Release);
        let newcomer = slots.admit().unwrap();
        assert_eq!(slots.len(), 3);
        assert!(!notified(&a[0]), "a connection with a request keeps its slot");
        assert!(notified(&a[1]), "the oldest silent one makes room");
        assert!(!notified(&a[2]) && !notified(&newcomer));
        // Its release after the eviction frees nothing more.
        slots.release(a[1].id);
        assert_eq!(slots.len(), 3);
        slots.release(a[2].id);
        assert_eq!(slots.len(), 2);
    }

    #[test]
    fn when_every_connection_is_busy_a_new_one_is_refused() {
        let mut slots = Slots::new(2);
        let a: Vec<_> = (0..2).map(|_| slots.admit().unwrap()).collect();
        a.iter().for_each(|a| a.asked.store(true, Ordering::Release));
        assert!(slots.admit().is_none());
        assert_eq!(slots.len(), 2);
        slots.release(a[0].id);
        assert!(slots.admit().is_some());
    }

    #[test]
    fn a_stream_of_silent_connections_never_holds_more_than_the_limit() {
        let mut slots = Slots::new(4);
        let all: Vec<_> = (0..50).map(|_| slots.admit().unwrap()).collect();
        assert_eq!(slots.len(), 4);
        assert_eq!(all.iter().filter(|a| !notified(a)).count(), 4, "only the newest four are still open");
        assert!(all[46..].iter().all(|a| !notified(a)));
    }
}
