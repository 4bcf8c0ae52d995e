//! NTP pools: a `pool-size = N` source is N sources (N votes in
//! selection), each polling one address of the pool's name, never two the
//! same. A member whose server stays unreachable, or stays a falseticker,
//! gives its address up and takes another the name resolves to, as
//! chrony's `pool` does; the addresses it gave up are avoided for an hour.
//!
//! Which member polls which address is kept in a process-wide table (the
//! members run on their own threads); a [`Claim`] releases its address when
//! dropped.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// How long a member keeps an address it gave up out of its choices.
pub(crate) const AVOID_FOR: Duration = Duration::from_secs(3_600);
/// Polls without a usable reply before a member replaces its server.
pub(crate) const UNREACHABLE_POLLS: u32 = 8;
/// Polls as a falseticker, without a break, before it does.
pub(crate) const FALSETICKER_POLLS: u32 = 16;
/// Never sooner than this, whatever the poll interval.
pub(crate) const REPLACE_FLOOR: Duration = Duration::from_secs(4);

/// One member of a pool source: which pool (its `host:port`) and which of
/// its `slots` members this is (0-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PoolSlot {
    /// The pool's `host:port`, as configured.
    pub(crate) pool: String,
    /// This member.
    pub(crate) slot: usize,
    /// How many members the pool source has.
    pub(crate) slots: usize,
}

/// Addresses in use, per pool: which member holds each.
static CLAIMED: LazyLock<Mutex<HashMap<String, HashMap<SocketAddr, usize>>>> = LazyLock::new(Mutex::default);

/// An address a member holds; released when dropped.
#[derive(Debug)]
pub(crate) struct Claim {
    pool: String,
    /// The server.
    pub(crate) addr: SocketAddr,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Ok(mut claimed) = CLAIMED.lock() {
            if let Some(pool) = claimed.get_mut(&self.pool) {
                pool.remove(&self.addr);
            }
        }
    }
}

/// Every address `pool` resolves to, in the resolver's order.
pub(crate) fn resolve_all(pool: &str) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = pool.to_socket_addrs().map_err(|e| format!("resolving pool {pool}: {e}"))?.collect();
    if addrs.is_empty() {
        return Err(format!("resolving pool {pool}: no address"));
    }
    Ok(addrs)
}

/// Claims for `slot` the first of `resolved` (starting at the slot's own
/// position, so members spread over the answer) that no other member holds
/// and that is not in `avoid`; `None` when there is none.
pub(crate) fn claim(slot: &PoolSlot, resolved: &[SocketAddr], avoid: &[SocketAddr]) -> Option<Claim> {
    let mut claimed = CLAIMED.lock().ok()?;
    let pool = claimed.entry(slot.pool.clone()).or_default();
    let n = resolved.len();
    let pick = (0..n)
        .filter_map(|i| resolved.get((slot.slot + i) % n))
        .find(|a| !pool.contains_key(a) && !avoid.contains(a))
        .copied()?;
    pool.insert(pick, slot.slot);
    Some(Claim { pool: slot.pool.clone(), addr: pick })
}

/// Addresses a member gave up, forgotten after [`AVOID_FOR`].
#[derive(Debug, Default)]
pub(crate) struct Avoided(Vec<(SocketAddr, Instant)>);

impl Avoided {
    /// Adds `addr`, given up at `now`.
    pub(crate) fn add(&mut self, addr: SocketAddr, now: Instant) {
        self.0.retain(|(a, _)| *a != addr);
        self.0.push((addr, now));
    }

    /// The addresses still avoided at `now`.
    pub(crate) fn at(&mut self, now: Instant) -> Vec<SocketAddr> {
        self.0.retain(|(_, since)| now.saturating_duration_since(*since) < AVOID_FOR);
        self.0.iter().map(|(a, _)| *a).collect()
    }
}

/// When a member gives its server up: no usable reply for
/// [`UNREACHABLE_POLLS`] polls, or a falseticker for [`FALSETICKER_POLLS`]
/// polls in a row (each at least [`REPLACE_FLOOR`]).
#[derive(Debug)]
pub(crate) struct Replacement {
    unreachable_after: Duration,
    falseticker_after: Duration,
    last_sample: Instant,
    falseticker_since: Option<Instant>,
}

impl Replacement {
    /// For a server polled every `poll`, taken at `now`.
    pub(crate) fn new(poll: Duration, now: Instant) -> Self {
        Self {
            unreachable_after: poll.saturating_mul(UNREACHABLE_POLLS).max(REPLACE_FLOOR),
            falseticker_after: poll.saturating_mul(FALSETICKER_POLLS).max(REPLACE_FLOOR),
            last_sample: now,
            falseticker_since: None,
        }
    }

    /// A usable reply came at `now`.
    pub(crate) fn on_sample(&mut self, now: Instant) {
        self.last_sample = now;
    }

    /// Why the server should be replaced at `now`, if it should; selection
    /// currently calls it a falseticker or not.
    pub(crate) fn check(&mut self, now: Instant, falseticker: bool) -> Option<String> {
        let silent = now.saturating_duration_since(self.last_sample);
        if silent >= self.unreachable_after {
            return Some(format!("no usable reply for {silent:?}"));
        }
        if !falseticker {
            self.falseticker_since = None;
            return None;
        }
        let since = *self.falseticker_since.get_or_insert(now);
        let lying = now.saturating_duration_since(since);
        (lying >= self.falseticker_after).then(|| format!("a falseticker for {lying:?}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, last], 123))
    }

    fn slot(pool: &str, slot: usize) -> PoolSlot {
        PoolSlot { pool: pool.to_owned(), slot, slots: 3 }
    }

    #[test]
    fn members_never_share_an_address_and_release_it_when_dropped() {
        let resolved = [addr(1), addr(2), addr(3)];
        let a = claim(&slot("p1", 0), &resolved, &[]).unwrap();
        let b = claim(&slot("p1", 1), &resolved, &[]).unwrap();
        let c = claim(&slot("p1", 2), &resolved, &[]).unwrap();
        assert_eq!((a.addr, b.addr, c.addr), (addr(1), addr(2), addr(3)));
        // A fourth member (or one replacing) finds none free.
        assert!(claim(&slot("p1", 0), &resolved, &[]).is_none());
        drop(b);
        assert_eq!(claim(&slot("p1", 0), &resolved, &[]).unwrap().addr, addr(2));
        // Another pool's table is its own.
        assert_eq!(claim(&slot("p2", 0), &resolved, &[]).unwrap().addr, addr(1));
    }

    #[test]
    fn a_replacing_member_skips_what_it_gave_up() {
        let resolved = [addr(1), addr(2), addr(3)];
        let first = claim(&slot("p3", 0), &resolved, &[]).unwrap();
        let gave_up = first.addr;
        drop(first);
        let mut avoided = Avoided::default();
        let t0 = Instant::now();
        avoided.add(gave_up, t0);
        let next = claim(&slot("p3", 0), &resolved, &avoided.at(t0)).unwrap();
        assert_ne!(next.addr, gave_up);
        // After an hour it may come back.
        assert!(avoided.at(t0 + AVOID_FOR).is_empty());
    }

    #[test]
    fn unreachable_and_lasting_falsetickers_are_replaced_flapping_ones_are_not() {
        let t0 = Instant::now();
        let poll = Duration::from_secs(1);
        let mut r = Replacement::new(poll, t0);
        assert_eq!(r.check(t0 + Duration::from_secs(7), false), None);
        assert!(r.check(t0 + Duration::from_secs(8), false).unwrap().contains("no usable reply"));

        let mut r = Replacement::new(poll, t0);
        for s in 0..30u64 {
            let now = t0 + Duration::from_secs(s);
            r.on_sample(now);
            // A falseticker every other poll: never replaced.
            assert_eq!(r.check(now, s % 2 == 0), None, "at {s} s");
        }
        let t1 = t0 + Duration::from_secs(30);
        let mut verdict = None;
        for s in 0..=16u64 {
            let now = t1 + Duration::from_secs(s);
            r.on_sample(now);
            verdict = r.check(now, true);
        }
        assert!(verdict.unwrap().contains("falseticker"));
        // Short polls are held to the floor.
        let mut fast = Replacement::new(Duration::from_millis(100), t0);
        assert_eq!(fast.check(t0 + Duration::from_secs(3), false), None);
        assert!(fast.check(t0 + REPLACE_FLOOR, false).is_some());
    }
}
