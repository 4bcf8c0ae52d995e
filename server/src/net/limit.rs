//! A token bucket per client connection: at most `rate` requests a second,
//! with bursts of up to `rate`. Pure: time is a parameter.

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
        if let Some(last) = self.last {
            let elapsed = now.as_nanos().saturating_sub(last.as_nanos());
            self.credit_ns = self.credit_ns.saturating_add(elapsed).min(SECOND_NS);
        }
        self.last = Some(now);
        let cost = SECOND_NS / u64::from(self.rate);
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
        let cost = SECOND_NS / u64::from(self.rate);
        let ns = cost.saturating_sub(self.credit_ns);
        Duration::from_millis(ns.div_ceil(1_000_000).max(1))
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
}
