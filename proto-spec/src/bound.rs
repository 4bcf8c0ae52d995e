//! Carrying a bound forward (or backward) in time along the reader clock.
//!
//! A bound is published as "true time was in `[e, l]` when the reader clock
//! read `r`", with a [`DriftModel`]: over a reader-clock span of `m`
//! nanoseconds the true time that elapsed lies within `m·(1 + f) ± m·ρ`,
//! where `f` is the measured frequency error of the reader clock and `ρ`
//! bounds what is left of it, both in parts per billion (SPEC.md §5.4).
//!
//! For extrapolation the model is turned into [`RateBounds`]: the slowest
//! and fastest rate of true time per reader-clock nanosecond as Q32.32 fixed
//! point, rounded outwards once, when the bound is published:
//!
//! ```text
//! low  = ⌊(10⁹ + f − ρ) · 2³² / 10⁹⌋        high = ⌈(10⁹ + f + ρ) · 2³² / 10⁹⌉
//! ```
//!
//! At reader-clock instant `now`, with `m = |now − r|`:
//!
//! ```text
//! now ≥ r:  [ e + ⌊m·low / 2³²⌋ ,  l + ⌈m·high / 2³²⌉ ]
//! now < r:  [ e − ⌈m·high / 2³²⌉ , l − ⌊m·low / 2³²⌋ ]
//! ```
//!
//! Every rounding widens, so the result contains true time whenever `[e, l]`
//! did and the clock kept within `f ± ρ`. The products are one 64×64→128-bit
//! multiplication each and the divisions are shifts: this is the whole cost
//! of a client's `now()` beyond its clock read. The daemon's bound model uses
//! the same function, so daemon and clients cannot disagree.

use serde::Serialize;

use crate::status::{MonoInstant, Ppb};
use crate::time::{TimeInterval, Timestamp};

/// Parts per billion in one.
const BILLION: u128 = 1_000_000_000;
/// Q32.32 fixed point: one is 2³².
const Q32_ONE: u128 = 1 << 32;

/// How the reader clock relates to true time between two samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct DriftModel {
    frequency: Ppb,
    bound: Ppb,
}

/// A [`DriftModel`] whose numbers no real clock could have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DriftModelError {
    /// `|frequency|` above [`DriftModel::MAX_RATE`].
    #[error("frequency error {0} is beyond ±1000 ppm; the reader clock is unusable")]
    FrequencyOutOfRange(Ppb),
    /// Negative bound or above [`DriftModel::MAX_RATE`].
    #[error("drift bound {0} must be within 0..=1000 ppm")]
    BoundOutOfRange(Ppb),
    /// Rate bounds out of order or outside 1 ± 2000 ppm.
    #[error("rate bounds {low:#x}..{high:#x} (Q32.32) are out of order or beyond 1 ± 2000 ppm")]
    RatesOutOfRange {
        /// The lower rate.
        low: u64,
        /// The upper rate.
        high: u64,
    },
}

impl DriftModel {
    /// The largest frequency error and drift bound accepted: 1000 ppm.
    /// Crystal oscillators are within ±100 ppm; a reading beyond this means
    /// a broken clock or a broken publisher, not a usable bound.
    pub const MAX_RATE: Ppb = Ppb::new(1_000_000);

    /// A perfect clock: no frequency error, no drift. Only for states that
    /// carry no bound (and for tests).
    pub const ZERO: Self = Self { frequency: Ppb::ZERO, bound: Ppb::ZERO };

    /// A model with measured frequency error `frequency` and residual bound `bound`.
    pub fn new(frequency: Ppb, bound: Ppb) -> Result<Self, DriftModelError> {
        if frequency.get().unsigned_abs() > Self::MAX_RATE.get().unsigned_abs() {
            return Err(DriftModelError::FrequencyOutOfRange(frequency));
        }
        if bound.get() < 0 || bound > Self::MAX_RATE {
            return Err(DriftModelError::BoundOutOfRange(bound));
        }
        Ok(Self { frequency, bound })
    }

    /// No frequency correction, drift bounded by `bound` on both sides.
    pub fn symmetric(bound: Ppb) -> Result<Self, DriftModelError> {
        Self::new(Ppb::ZERO, bound)
    }

    /// The measured frequency error `f` of the reader clock.
    pub const fn frequency(&self) -> Ppb {
        self.frequency
    }

    /// The bound `ρ` on the residual error after correcting by `f`.
    pub const fn bound(&self) -> Ppb {
        self.bound
    }

    /// The rate bounds this model implies, rounded outwards.
    pub fn rates(&self) -> RateBounds {
        // |f|, ρ ≤ 10⁶, so 10⁹ + f ∓ ρ is within [998·10⁶, 1002·10⁶]: positive,
        // and the Q32.32 results are within RateBounds' range by construction.
        let f = i128::from(self.frequency.get());
        let rho = i128::from(self.bound.get());
        let slow = u128::try_from(1_000_000_000 + f - rho).unwrap_or(0);
        let fast = u128::try_from(1_000_000_000 + f + rho).unwrap_or(u128::MAX / Q32_ONE);
        let low = slow.saturating_mul(Q32_ONE) / BILLION;
        let high = fast.saturating_mul(Q32_ONE).div_ceil(BILLION);
        RateBounds { low: u64::try_from(low).unwrap_or(0), high: u64::try_from(high).unwrap_or(u64::MAX) }
    }

    /// The interval at reader-clock instant `to`, given that true time was in
    /// `at_ref` when the reader clock read `reference`; see [`RateBounds::extrapolate`].
    pub fn extrapolate(&self, at_ref: TimeInterval, reference: MonoInstant, to: MonoInstant) -> Option<TimeInterval> {
        self.rates().extrapolate(at_ref, reference, to)
    }
}

/// Bounds on how much true time passes per reader-clock nanosecond, as
/// Q32.32 fixed point (2³² is exactly one): what the shared-memory segment
/// carries (SPEC.md §5.3) and what every `now()` multiplies by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct RateBounds {
    low: u64,
    high: u64,
}

impl RateBounds {
    /// The slowest rate accepted: 1 − 2000 ppm (the extreme of a [`DriftModel`]).
    pub const MIN_Q32: u64 = 4_286_377_361; // ⌊0.998 · 2³²⌋
    /// The fastest rate accepted: 1 + 2000 ppm.
    pub const MAX_Q32: u64 = 4_303_557_231; // ⌈1.002 · 2³²⌉
    /// Exactly one: a perfect clock.
    pub const EXACT: Self = Self { low: 1 << 32, high: 1 << 32 };

    /// Rates from their Q32.32 encodings; `low <= high`, both within
    /// [`RateBounds::MIN_Q32`]..=[`RateBounds::MAX_Q32`].
    pub fn new(low: u64, high: u64) -> Result<Self, DriftModelError> {
        if low <= high && Self::MIN_Q32 <= low && high <= Self::MAX_Q32 {
            Ok(Self { low, high })
        } else {
            Err(DriftModelError::RatesOutOfRange { low, high })
        }
    }

    /// The slowest rate, Q32.32.
    pub const fn low_q32(&self) -> u64 {
        self.low
    }

    /// The fastest rate, Q32.32.
    pub const fn high_q32(&self) -> u64 {
        self.high
    }

    /// The interval at reader-clock instant `to`, given that true time was in
    /// `at_ref` when the reader clock read `reference`. `None` only if the
    /// result leaves the [`Timestamp`] range (after 2554 or before 1970).
    #[inline]
    pub fn extrapolate(&self, at_ref: TimeInterval, reference: MonoInstant, to: MonoInstant) -> Option<TimeInterval> {
        let (e, l) = (at_ref.earliest().as_nanos(), at_ref.latest().as_nanos());
        let (earliest, latest) = if to >= reference {
            let m = to.as_nanos().wrapping_sub(reference.as_nanos());
            (e.checked_add(scale_floor(m, self.low)?)?, l.checked_add(scale_ceil(m, self.high)?)?)
        } else {
            let m = reference.as_nanos().wrapping_sub(to.as_nanos());
            (e.checked_sub(scale_ceil(m, self.high)?)?, l.checked_sub(scale_floor(m, self.low)?)?)
        };
        TimeInterval::new(Timestamp::from_nanos(earliest), Timestamp::from_nanos(latest)).ok()
    }
}

/// ⌊m · rate / 2³²⌋, or `None` beyond 64 bits.
#[inline]
fn scale_floor(m: u64, rate: u64) -> Option<u64> {
    u64::try_from((u128::from(m) * u128::from(rate)) >> 32).ok()
}

/// ⌈m · rate / 2³²⌉, or `None` beyond 64 bits. m, rate < 2⁶⁴, so the
/// product plus 2³² − 1 stays below 2¹²⁸.
#[inline]
fn scale_ceil(m: u64, rate: u64) -> Option<u64> {
    u64::try_from((u128::from(m) * u128::from(rate) + (Q32_ONE - 1)) >> 32).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn interval(e: u64, l: u64) -> TimeInterval {
        TimeInterval::new(Timestamp::from_nanos(e), Timestamp::from_nanos(l)).unwrap()
    }

    fn mono(n: u64) -> MonoInstant {
        MonoInstant::from_nanos(n)
    }

    #[test]
    fn one_second_at_fifty_ppm_widens_by_fifty_microseconds() {
        let m = DriftModel::symmetric(Ppb::from_ppm(50)).unwrap();
        let i = m.extrapolate(interval(1_000, 2_000), mono(5), mono(1_000_000_005)).unwrap();
        // Exact: [1_000 + 999_950_000, 2_000 + 1_000_050_000]; Q32 rounding
        // may widen each end by at most 1 ns per 4.3 s, plus 1 for the floor/ceil.
        assert!((1_000 + 999_950_000 - 2..=1_000 + 999_950_000).contains(&i.earliest().as_nanos()), "{i:?}");
        assert!((2_000 + 1_000_050_000..=2_000 + 1_000_050_000 + 2).contains(&i.latest().as_nanos()), "{i:?}");
    }

    #[test]
    fn rates_round_outwards() {
        let r = DriftModel::new(Ppb::new(1), Ppb::ZERO).unwrap().rates();
        // (1 + 10⁻⁹)·2³² = 4294967300.29…
        assert_eq!((r.low_q32(), r.high_q32()), (4_294_967_300, 4_294_967_301));
        assert_eq!(DriftModel::ZERO.rates(), RateBounds::EXACT);
        let extreme = DriftModel::new(Ppb::new(-1_000_000), Ppb::new(1_000_000)).unwrap().rates();
        assert_eq!(extreme.low_q32(), RateBounds::MIN_Q32);
        let extreme = DriftModel::new(Ppb::new(1_000_000), Ppb::new(1_000_000)).unwrap().rates();
        assert_eq!(extreme.high_q32(), RateBounds::MAX_Q32);
    }

    #[test]
    fn exact_rates_move_both_ends_by_the_elapsed_time() {
        let r = RateBounds::EXACT;
        assert_eq!(r.extrapolate(interval(10, 20), mono(100), mono(1_100)), Some(interval(1_010, 1_020)));
        assert_eq!(r.extrapolate(interval(1_010, 1_020), mono(1_100), mono(100)), Some(interval(10, 20)));
    }

    #[test]
    fn backwards_extrapolation_also_widens() {
        let m = DriftModel::symmetric(Ppb::from_ppm(100)).unwrap();
        let i = m.extrapolate(interval(10_000_000, 10_000_000), mono(2_000_000), mono(1_000_000)).unwrap();
        // Exact: 9_000_000 ∓ 100; each end may round 1 ns further out.
        assert_eq!(i, interval(10_000_000 - 1_000_000 - 101, 10_000_000 - 1_000_000 + 101));
    }

    #[test]
    fn rate_bounds_reject_impossible_encodings() {
        assert!(RateBounds::new(RateBounds::MIN_Q32, RateBounds::MAX_Q32).is_ok());
        assert!(RateBounds::new(RateBounds::MIN_Q32 - 1, RateBounds::MAX_Q32).is_err());
        assert!(RateBounds::new(RateBounds::MIN_Q32, RateBounds::MAX_Q32 + 1).is_err());
        assert!(RateBounds::new(1 << 32, (1 << 32) - 1).is_err(), "low above high");
        assert!(RateBounds::new(0, 0).is_err(), "zeroed memory is not a rate");
    }

    #[test]
    fn out_of_range_results_are_none_not_wrapped() {
        let m = DriftModel::symmetric(Ppb::ZERO).unwrap();
        assert_eq!(m.extrapolate(interval(5, 5), mono(10), mono(0)), None);
        assert_eq!(m.extrapolate(interval(u64::MAX, u64::MAX), mono(0), mono(1)), None);
    }

    #[test]
    fn model_rejects_impossible_rates() {
        assert!(DriftModel::new(Ppb::new(1_000_001), Ppb::ZERO).is_err());
        assert!(DriftModel::new(Ppb::new(-1_000_001), Ppb::ZERO).is_err());
        assert!(DriftModel::new(Ppb::ZERO, Ppb::new(-1)).is_err());
        assert!(DriftModel::new(Ppb::ZERO, Ppb::new(1_000_001)).is_err());
        assert!(DriftModel::new(Ppb::new(-1_000_000), Ppb::new(1_000_000)).is_ok());
    }

    proptest! {
        /// If the true clock runs at any rate within f ± ρ of the reader clock,
        /// the extrapolated interval contains the true time — checked exactly,
        /// in integers scaled by 10⁹, so a rounding in the wrong direction fails.
        #[test]
        fn extrapolation_contains_every_admissible_truth(
            truth0 in 1_000_000_000_000u64..4_000_000_000_000_000_000,
            below in 0u64..1_000_000, above in 0u64..1_000_000,
            r in 0u64..1_000_000_000_000_000,
            delta in prop_oneof![-100_000_000_000i64..100_000_000_000, -(1i64 << 43)..(1i64 << 43)],
            f in -1_000_000i64..=1_000_000, rho in 0i64..=1_000_000,
            share in 0i64..=1_000,
        ) {
            let m = DriftModel::new(Ppb::new(f), Ppb::new(rho)).unwrap();
            let at_ref = interval(truth0 - below, truth0 + above);
            let to = mono(u64::try_from((i128::from(r) + i128::from(delta)).max(0)).unwrap());
            let d = to.signed_nanos_since(mono(r));
            // A true rate anywhere in [f − ρ, f + ρ] ppb, chosen by `share`.
            let rate = i128::from(f - rho + 2 * rho * share / 1_000);
            let billion = 1_000_000_000i128;
            let truth_scaled = i128::from(truth0) * billion + d * (billion + rate);
            let i = m.extrapolate(at_ref, mono(r), to).unwrap();
            prop_assert!(i128::from(i.earliest().as_nanos()) * billion <= truth_scaled);
            prop_assert!(i128::from(i.latest().as_nanos()) * billion >= truth_scaled);
            // And no wider than the exact bound plus the rounding allowance.
            let slack = d.abs() / (1 << 30) + 2;
            let exact_low = (i128::from(truth0 - below) * billion + d * billion + d * i128::from(f) - d.abs() * i128::from(rho)).div_euclid(billion);
            prop_assert!(i128::from(i.earliest().as_nanos()) >= exact_low - slack);
        }
    }
}
