//! The per-client rate limit (sans-IO; time is an argument), as chrony's
//! `ratelimit`: a token bucket per client address, and for the requests
//! over it a random fraction answered with a `RATE` kiss-o'-death, the rest
//! dropped.
//!
//! **The bucket** is kept as a virtual schedule (the "generic cell rate
//! algorithm"): each client has a theoretical time `tat` at which its
//! bucket would be full again. A request at `now` is within the limit when
//! `max(tat, now) + interval − now ≤ burst · interval`, and then moves
//! `tat` on by one interval; so a quiet client may send `burst` requests at
//! once and then one per `interval`. A request over the limit does not
//! move `tat`: a client that floods still gets its one reply per interval.
//!
//! **Who is a client**: an IPv4 address, or an IPv6 /64 (one host may hold
//! a whole /64, and would otherwise get a fresh bucket from every address
//! in it); an IPv4-mapped IPv6 address is its IPv4 address.
//!
//! **Memory is fixed**: the table is allocated once, `clients` slots
//! (rounded up to a power of two) in buckets of [`WAYS`] slots. A client's
//! bucket is chosen by a keyed hash (the key random per table, so nobody
//! can aim many addresses at one bucket); a new client takes a free slot
//! of its bucket, or the one heard from least recently. A flood always
//! stays the most recent in its bucket, so it is never evicted by quieter
//! clients; an attacker spoofing more addresses than the table holds does
//! get a fresh bucket per address, but every reply is no larger than the
//! request that drew it, so that buys no amplification.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::time::Duration;

use tsod_proto::MonoInstant;

/// Slots per hash bucket.
pub const WAYS: usize = 8;

/// What to do with a request, by its client's rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Within the limit (or no limit): answer.
    Serve,
    /// Over the limit, and chosen for a `RATE` kiss-o'-death.
    Kiss,
    /// Over the limit: drop.
    Drop,
}

/// The limit's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Average spacing of one client's replies.
    pub interval: Duration,
    /// Replies a quiet client may take back to back (at least 1).
    pub burst: u32,
    /// One in this many requests over the limit gets a kiss-o'-death (0: none).
    pub kiss_one_in: u32,
    /// Clients remembered (rounded up to a power of two, at least [`WAYS`]).
    pub clients: usize,
}

/// One client: 32 bytes.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// The client (see [`client_key`], never 0); 0 when free.
    key: u128,
    /// When its bucket is full again (reader clock, ns).
    tat: u64,
    /// When it was last heard from (reader clock, ns).
    last: u64,
}

/// The rate limiter of one listen socket.
#[derive(Debug)]
pub struct RateLimiter {
    limits: Limits,
    interval: u64,
    allowance: u64,
    buckets: Vec<[Slot; WAYS]>,
    hash_key: (u64, u64),
    random: u64,
}

impl RateLimiter {
    /// A limiter with an empty table; `seed` keys its hash and its choice
    /// of whom to kiss (from a CSPRNG in the daemon, fixed in tests).
    pub fn new(limits: Limits, seed: [u64; 3]) -> Self {
        let interval = u64::try_from(limits.interval.as_nanos()).unwrap_or(u64::MAX).max(1);
        let allowance = interval.saturating_mul(u64::from(limits.burst.max(1)));
        let buckets = limits.clients.max(WAYS).div_ceil(WAYS).next_power_of_two();
        Self {
            limits,
            interval,
            allowance,
            buckets: vec![[Slot::default(); WAYS]; buckets],
            hash_key: (seed[0], seed[1]),
            random: seed[2] | 1,
        }
    }

    /// How many clients the table holds.
    pub fn capacity(&self) -> usize {
        self.buckets.len().saturating_mul(WAYS)
    }

    /// The smallest poll exponent a client may use without being limited
    /// (log2 of the interval in seconds, rounded up): what a kiss-o'-death
    /// advertises.
    pub fn min_poll(&self) -> i8 {
        let mut exponent: i8 = -30;
        while exponent < 17 && seconds_of_exponent_ns(exponent) < u128::from(self.interval) {
            exponent = exponent.saturating_add(1);
        }
        exponent
    }

    /// Judges a request from `client` arriving at `now`.
    pub fn admit(&mut self, client: IpAddr, now: MonoInstant) -> Admission {
        let now = now.as_nanos();
        let key = client_key(client);
        let index = self.bucket_of(key);
        let Some(bucket) = self.buckets.get_mut(index) else { return Admission::Serve };
        let slot = match bucket.iter().position(|s| s.key == key) {
            Some(i) => i,
            None => {
                let victim = bucket.iter().enumerate().min_by_key(|(_, s)| (s.key != 0, s.last)).map_or(0, |(i, _)| i);
                if let Some(s) = bucket.get_mut(victim) {
                    *s = Slot { key, tat: now, last: now };
                }
                victim
            }
        };
        let Some(slot) = bucket.get_mut(slot) else { return Admission::Serve };
        slot.last = slot.last.max(now);
        let tat = slot.tat.max(now);
        let next = tat.saturating_add(self.interval);
        if next.saturating_sub(now) <= self.allowance {
            slot.tat = next;
            return Admission::Serve;
        }
        if self.limits.kiss_one_in > 0 && self.next_random() % u64::from(self.limits.kiss_one_in) == 0 {
            Admission::Kiss
        } else {
            Admission::Drop
        }
    }

    fn bucket_of(&self, key: u128) -> usize {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.hash_key.hash(&mut hasher);
        key.hash(&mut hasher);
        let mask = u64::try_from(self.buckets.len()).unwrap_or(u64::MAX).saturating_sub(1);
        usize::try_from(hasher.finish() & mask).unwrap_or(0)
    }

    /// xorshift64*: a fair coin for whom to kiss, not a secret.
    fn next_random(&mut self) -> u64 {
        let mut x = self.random;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.random = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32
    }
}

/// 2^exponent seconds in ns (exact for exponent ≥ −30 as a lower bound).
fn seconds_of_exponent_ns(exponent: i8) -> u128 {
    let shift = u32::from(exponent.unsigned_abs());
    if exponent >= 0 { 1_000_000_000u128 << shift } else { 1_000_000_000u128 >> shift }
}

/// The client a request counts against: an IPv4 address (also when it
/// arrives IPv4-mapped), or an IPv6 /64; tagged so the two never collide
/// and no key is 0.
pub fn client_key(client: IpAddr) -> u128 {
    let v4 = |octets: [u8; 4]| (1u128 << 64) | u128::from(u32::from_be_bytes(octets));
    match client {
        IpAddr::V4(v4addr) => v4(v4addr.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(mapped) => v4(mapped.octets()),
            None => (2u128 << 64) | (u128::from_be_bytes(v6.octets()) >> 64),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    const MS: u64 = 1_000_000;

    fn limiter(kiss_one_in: u32) -> RateLimiter {
        let limits = Limits { interval: Duration::from_micros(62_500), burst: 8, kiss_one_in, clients: 64 };
        RateLimiter::new(limits, [1, 2, 3])
    }

    fn at(ms: u64) -> MonoInstant {
        MonoInstant::from_nanos(1_000_000 * MS + ms * MS)
    }

    #[test]
    fn a_quiet_client_gets_its_burst_then_one_per_interval() {
        let mut l = limiter(0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let served = (0..20).filter(|_| l.admit(a, at(0)) == Admission::Serve).count();
        assert_eq!(served, 8, "the burst");
        assert_eq!(l.admit(a, at(62)), Admission::Drop, "not quite an interval later");
        assert_eq!(l.admit(a, at(63)), Admission::Serve);
        // A client polling exactly at the limit is never limited.
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for i in 0..1_000u64 {
            assert_eq!(l.admit(b, MonoInstant::from_nanos(at(0).as_nanos() + i * 62_500_000)), Admission::Serve);
        }
        // A flood over 1 s gets the burst plus one per interval, however fast it sends.
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        let served = (0..100_000u64)
            .filter(|i| l.admit(c, MonoInstant::from_nanos(at(0).as_nanos() + i * 10_000)) == Admission::Serve)
            .count();
        assert_eq!(served, 8 + 15, "the burst, then one at each of 62.5 ms … 937.5 ms");
        // Other clients were not affected by it.
        assert_eq!(l.admit("192.0.2.4".parse().unwrap(), at(2_000)), Admission::Serve);
    }

    #[test]
    fn a_fraction_of_the_requests_over_the_limit_is_kissed() {
        let mut l = limiter(4);
        let a: IpAddr = "198.51.100.7".parse().unwrap();
        let verdicts: Vec<Admission> = (0..10_008).map(|_| l.admit(a, at(0))).collect();
        let kissed = verdicts.iter().filter(|v| **v == Admission::Kiss).count();
        let dropped = verdicts.iter().filter(|v| **v == Admission::Drop).count();
        assert_eq!(verdicts.iter().filter(|v| **v == Admission::Serve).count(), 8);
        assert!((2_200..2_800).contains(&kissed), "about one in 4 of 10 000: {kissed}");
        assert_eq!(kissed + dropped, 10_000);
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        let mut l = limiter(0);
        for i in 0..8u16 {
            let addr: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            assert_eq!(l.admit(addr, at(0)), Admission::Serve);
        }
        assert_eq!(l.admit("2001:db8:1:2:ffff::1".parse().unwrap(), at(0)), Admission::Drop, "same /64");
        assert_eq!(l.admit("2001:db8:1:3::1".parse().unwrap(), at(0)), Admission::Serve, "another /64");
        assert_eq!(client_key("::ffff:192.0.2.1".parse().unwrap()), client_key("192.0.2.1".parse().unwrap()));
        assert_ne!(client_key("::c000:201".parse().unwrap()), client_key("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn the_table_is_fixed_and_forgets_the_least_recent_first() {
        let mut l = limiter(0);
        assert_eq!(l.capacity(), 64);
        let flooder: IpAddr = "203.0.113.1".parse().unwrap();
        for _ in 0..8 {
            assert_eq!(l.admit(flooder, at(0)), Admission::Serve);
        }
        // Thousands of other clients pass through the 64 slots; the flooder,
        // always the most recent in its bucket, keeps its empty bucket.
        for i in 0..5_000u32 {
            let other = IpAddr::from(std::net::Ipv4Addr::from(0x0A00_0000 + i));
            let t = at(1).as_nanos() + 2 * u64::from(i);
            assert_eq!(l.admit(other, MonoInstant::from_nanos(t)), Admission::Serve);
            assert_eq!(l.admit(flooder, MonoInstant::from_nanos(t + 1)), Admission::Drop, "after {i} others");
        }
        assert_eq!(l.capacity(), 64, "no growth");
    }

    #[test]
    fn a_slot_is_32_bytes() {
        assert_eq!(size_of::<Slot>(), 32);
    }

    #[test]
    fn the_kiss_advertises_the_limit_as_a_poll_exponent() {
        assert_eq!(limiter(4).min_poll(), -4, "62.5 ms is 2⁻⁴ s");
        let slow = Limits { interval: Duration::from_secs(8), burst: 8, kiss_one_in: 4, clients: 64 };
        assert_eq!(RateLimiter::new(slow, [0; 3]).min_poll(), 3);
        let odd = Limits { interval: Duration::from_millis(100), ..slow };
        assert_eq!(RateLimiter::new(odd, [0; 3]).min_poll(), -3, "rounded up to 125 ms");
    }
}
