//! The relay's dice: a small xorshift64* generator for loss and jitter. Not
//! cryptographic and not reproducible across runs (it is seeded from the
//! host clock); good enough to make independent per-datagram decisions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// A xorshift64* generator (Vigna, "An experimental exploration of
/// Marsaglia's xorshift generators, scrambled", 2016). The state is never zero.
#[derive(Debug)]
pub(super) struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded from the host clock and a process-wide counter, so
    /// that generators made in the same nanosecond still differ.
    pub(super) fn from_time() -> Self {
        static STREAM: AtomicU64 = AtomicU64::new(0);
        let clock = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs().rotate_left(32) ^ u64::from(d.subsec_nanos()));
        let stream = STREAM.fetch_add(1, Ordering::Relaxed);
        Self::seeded(clock ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// A generator whose sequence depends only on `seed` (any value, zero included).
    pub(super) fn seeded(seed: u64) -> Self {
        // One splitmix64 step spreads nearby seeds over the whole state space.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self { state: z.max(1) }
    }

    /// The next 64 random bits.
    pub(super) fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`, with 53 bits of resolution.
    pub(super) fn next_unit(&mut self) -> f64 {
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        (self.next_u64() >> 11) as f64 * SCALE
    }

    /// True with probability `p` (never for `p ≤ 0` or NaN, always for `p ≥ 1`).
    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.next_unit() < p
    }

    /// Uniform in `[0, max]`, to the nanosecond (the modulo bias is below
    /// 2⁻³⁰ for any `max` under a second).
    pub(super) fn up_to(&mut self, max: Duration) -> Duration {
        let max_nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        if max_nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next_u64() % max_nanos.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_interval_and_chance_bounds() {
        let mut rng = Rng::seeded(0);
        let mut below_half = 0;
        for _ in 0..10_000 {
            let u = rng.next_unit();
            assert!((0.0..1.0).contains(&u));
            below_half += usize::from(u < 0.5);
        }
        // A fair coin: 5000 ± 5 standard deviations (50).
        assert!((4_750..=5_250).contains(&below_half), "{below_half}");
        assert!((0..1000).all(|_| rng.chance(1.0)));
        assert!((0..1000).all(|_| !rng.chance(0.0)));
        assert!((0..1000).all(|_| !rng.chance(f64::NAN)));
    }

    #[test]
    fn up_to_stays_in_range_and_spreads() {
        let mut rng = Rng::seeded(42);
        let max = Duration::from_millis(20);
        let draws: Vec<Duration> = (0..1000).map(|_| rng.up_to(max)).collect();
        assert!(draws.iter().all(|d| *d <= max));
        assert!(draws.iter().any(|d| *d < Duration::from_millis(2)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(18)));
        assert_eq!(rng.up_to(Duration::ZERO), Duration::ZERO);
        assert!(rng.up_to(Duration::MAX) <= Duration::MAX);
    }

    #[test]
    fn generators_made_together_differ() {
        let (mut a, mut b) = (Rng::from_time(), Rng::from_time());
        assert_ne!(a.next_u64(), b.next_u64());
    }
}
