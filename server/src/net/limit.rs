//! Token buckets: at most `rate` units a second, with bursts of up to
//! `rate`, per client connection (requests) and, in [`ClientLimits`], per
//! client identity and for the whole site (weighted by timestamps). Pure:
//! time is a parameter.

use std::time::Duration;

use tsod_proto::MonoInstant;

/// Tokens for one connection.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: u32,
    /// Tokens available, in units of 1/rate of a second's worth × 10⁹ (ns of credit).
    credit_ns: u64,
    last: Option<MonoInstant>,
}

const SECOND_NS: u64 = 1_000_000_000;

impl TokenBucket {
    /// A full bucket allowing `rate` (≥ 1) requests a second.
    pub fn new(rate: u32) -> Self {
        Self { rate: rate.max(1), credit_ns: SECOND_NS, last: None }
    }

    /// Takes one token at `now`; `false` when the connection is over its rate.
    pub fn take(&mut self, now: MonoInstant) -> bool {
        self.take_n(now, 1)
    }

    /// Takes `n` tokens at once at `now`; `false` (taking none) when fewer
    /// are left. More than `rate` at once never fit.
    pub fn take_n(&mut self, now: MonoInstant, n: u64) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.as_nanos().saturating_sub(last.as_nanos());
            self.credit_ns = self.credit_ns.saturating_add(elapsed).min(SECOND_NS);
        }
        self.last = Some(now);
        let cost = u64::try_from(u128::from(SECOND_NS) * u128::from(n) / u128::from(self.rate)).unwrap_or(u64::MAX);
        match self.credit_ns.checked_sub(cost) {
            Some(left) => {
                self.credit_ns = left;
                true
            }
            None => false,
        }
    }

    /// How long until the next token, in whole milliseconds, at least one
    /// (what `retry-after` can carry, SPEC.md §4.9).
    pub fn wait(&self) -> Duration {
        self.wait_n(1)
    }

    /// How long until `n` tokens are there (at most a second: more than
    /// `rate` never fit, and a second is when the bucket is full again).
    pub fn wait_n(&self, n: u64) -> Duration {
        let cost = u64::try_from(u128::from(SECOND_NS) * u128::from(n) / u128::from(self.rate)).unwrap_or(u64::MAX);
        let ns = cost.min(SECOND_NS).saturating_sub(self.credit_ns);
        Duration::from_millis(ns.div_ceil(1_000_000).max(1))
    }

    /// Whether the bucket is full at `now` (idle for a second or more).
    fn full(&self, now: MonoInstant) -> bool {
        self.last.is_none_or(|last| now.as_nanos().saturating_sub(last.as_nanos()) >= SECOND_NS)
    }
}

/// Who a client is, for its limit: its certificate, or for an anonymous
/// client its network prefix (/24, /64), since it can open connections
/// from as many ports as it likes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientIdentity {
    /// The SHA-256 of the leaf certificate the client presented.
    Certificate([u8; 32]),
    /// An anonymous client's /24 or /64.
    Anonymous(std::net::IpAddr),
}

/// Identities tracked at most; beyond it, idle ones are forgotten first
/// and then the map is cleared (a flood of fresh identities then meets
/// only the site-wide limit).
const MAX_IDENTITIES: usize = 16_384;

/// The limits shared by all of a site's client connections, in
/// timestamps a second: a now or status request counts as one, a TSO
/// request as the timestamps it asks for.
#[derive(Debug)]
pub struct ClientLimits {
    per_identity: u32,
    state: std::sync::Mutex<(TokenBucket, std::collections::HashMap<ClientIdentity, TokenBucket>)>,
}

/// Which limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limited {
    /// The client's identity is over its share.
    Identity(Duration),
    /// The site as a whole is over its rate.
    Site(Duration),
}

impl ClientLimits {
    /// `per_identity` and `site` timestamps a second (each at least 1).
    pub fn new(per_identity: u32, site: u32) -> Self {
        Self {
            per_identity: per_identity.max(1),
            state: std::sync::Mutex::new((TokenBucket::new(site), std::collections::HashMap::new())),
        }
    }

    /// Takes `weight` for `who` at `now` from its bucket and the site's,
    /// or says which refused and how long to wait.
    pub fn take(&self, who: &ClientIdentity, weight: u64, now: MonoInstant) -> Result<(), Limited> {
        let Ok(mut guard) = self.state.lock() else { return Err(Limited::Site(Duration::from_secs(1))) };
        let (site, identities) = &mut *guard;
        if identities.len() >= MAX_IDENTITIES && !identities.contains_key(who) {
            identities.retain(|_, b| !b.full(now));
            if identities.len() >= MAX_IDENTITIES {
                identities.clear();
            }
        }
        let per_identity = self.per_identity;
        let bucket = identities.entry(who.clone()).or_insert_with(|| TokenBucket::new(per_identity));
        if !bucket.take_n(now, weight) {
            return Err(Limited::Identity(bucket.wait_n(weight)));
        }
        if !site.take_n(now, weight) {
            // Give the identity its tokens back: the site refused, not it.
            bucket.credit_ns = bucket
                .credit_ns
                .saturating_add(
                    u64::try_from(u128::from(SECOND_NS) * u128::from(weight) / u128::from(per_identity)).unwrap_or(0),
                )
                .min(SECOND_NS);
            return Err(Limited::Site(site.wait_n(weight)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_up_to_the_rate_then_refills_with_time() {
        let mut b = TokenBucket::new(10);
        let t0 = MonoInstant::from_nanos(5 * SECOND_NS);
        assert_eq!((0..20).filter(|_| b.take(t0)).count(), 10);
        assert_eq!(b.wait(), Duration::from_millis(100));
        // 100 ms later: one more token.
        let t1 = MonoInstant::from_nanos(5 * SECOND_NS + SECOND_NS / 10);
        assert!(b.take(t1));
        assert!(!b.take(t1));
        // Credit never exceeds one second's worth.
        let t2 = MonoInstant::from_nanos(100 * SECOND_NS);
        assert_eq!((0..50).filter(|_| b.take(t2)).count(), 10);
    }

    #[test]
    fn weighted_takes_count_every_timestamp() {
        let mut b = TokenBucket::new(100);
        let t0 = MonoInstant::from_nanos(SECOND_NS);
        assert!(b.take_n(t0, 60));
        assert!(!b.take_n(t0, 60), "only 40 left");
        assert!(b.take_n(t0, 40));
        assert!(!TokenBucket::new(100).take_n(t0, 101), "more than a second's worth never fits");
        assert_eq!(b.wait_n(50), Duration::from_millis(500));
    }

    #[test]
    fn many_connections_of_one_identity_share_its_limit_and_all_share_the_sites() {
        let limits = ClientLimits::new(100, 250);
        let t0 = MonoInstant::from_nanos(SECOND_NS);
        let a = ClientIdentity::Certificate([1; 32]);
        let b = ClientIdentity::Anonymous("192.0.2.0".parse().unwrap());
        let c = ClientIdentity::Anonymous("198.51.100.0".parse().unwrap());
        // Whatever connection it comes on, `a` has 100 a second.
        assert_eq!((0..30).filter(|_| limits.take(&a, 5, t0).is_ok()).count(), 20);
        assert!(matches!(limits.take(&a, 1, t0), Err(Limited::Identity(_))));
        assert!(limits.take(&b, 100, t0).is_ok());
        // 50 left for the site: c's 60 is refused by the site, not by c's own share.
        assert!(matches!(limits.take(&c, 60, t0), Err(Limited::Site(_))));
        assert!(limits.take(&c, 50, t0).is_ok());
        // A second later everyone has their share again.
        let t1 = MonoInstant::from_nanos(2 * SECOND_NS);
        assert!(limits.take(&a, 100, t1).is_ok());
    }
}
