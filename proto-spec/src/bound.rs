//! Carrying a bound forward (or backward) in time along the reader clock.
//!
//! A bound is published as "true time was in `[e, l]` when the reader clock
//! read `r`", with a [`DriftModel`]: over a reader-clock span `Δ = now − r`
//! (signed), the true time that elapsed lies within
//! `Δ·(1 + f) ± |Δ|·ρ`, where `f` is the measured frequency error of the
//! reader clock and `ρ` bounds what is left of it (SPEC.md §5.4). Hence at
//! `now` true time lies in
//!
//! ```text
//! [ e + ⌊(Δ·(10⁹ + f) − |Δ|·ρ) / 10⁹⌋ ,  l + ⌈(Δ·(10⁹ + f) + |Δ|·ρ) / 10⁹⌉ ]
//! ```
//!
//! with `f`, `ρ` in parts per billion. The lower end rounds down and the
//! upper end up, so rounding only ever widens. The same function serves the
//! daemon's bound model and every client's `now()`, so they cannot disagree.

use serde::Serialize;

use crate::status::{MonoInstant, Ppb};
use crate::time::{TimeInterval, Timestamp};

/// Parts per billion in one.
const BILLION: i128 = 1_000_000_000;

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

    /// The interval at reader-clock instant `to`, given that true time was in
    /// `at_ref` when the reader clock read `reference`. `None` only if the
    /// result leaves the [`Timestamp`] range (after 2554 or before 1970).
    pub fn extrapolate(&self, at_ref: TimeInterval, reference: MonoInstant, to: MonoInstant) -> Option<TimeInterval> {
        let delta = to.signed_nanos_since(reference);
        // |Δ| < 2^64, (10⁹ + f) < 2^31, ρ < 2^30: every product is < 2^96.
        let scaled = delta.checked_mul(BILLION.checked_add(i128::from(self.frequency.get()))?)?;
        let spread = delta.checked_abs()?.checked_mul(i128::from(self.bound.get()))?;
        let low = scaled.checked_sub(spread)?.div_euclid(BILLION);
        let high = div_ceil(scaled.checked_add(spread)?, BILLION);
        let earliest = i128::from(at_ref.earliest().as_nanos()).checked_add(low)?;
        let latest = i128::from(at_ref.latest().as_nanos()).checked_add(high)?;
        let earliest = Timestamp::from_nanos(u64::try_from(earliest).ok()?);
        let latest = Timestamp::from_nanos(u64::try_from(latest).ok()?);
        TimeInterval::new(earliest, latest).ok()
    }
}

/// ⌈a / b⌉ for b > 0.
fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a.div_euclid(b);
    if a.rem_euclid(b) == 0 { q } else { q.saturating_add(1) }
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
        assert_eq!(i, interval(1_000 + 1_000_000_000 - 50_000, 2_000 + 1_000_000_000 + 50_000));
    }

    #[test]
    fn frequency_shifts_both_ends_and_rounding_widens() {
        // f = +1 ppb, ρ = 0, Δ = 1.5 s: the shift is 1.5 ns, floor/ceil to 1 and 2.
        let m = DriftModel::new(Ppb::new(1), Ppb::ZERO).unwrap();
        let i = m.extrapolate(interval(0, 0), mono(0), mono(1_500_000_000)).unwrap();
        assert_eq!(i, interval(1_500_000_001, 1_500_000_002));
    }

    #[test]
    fn backwards_extrapolation_also_widens() {
        let m = DriftModel::symmetric(Ppb::from_ppm(100)).unwrap();
        let i = m.extrapolate(interval(10_000_000, 10_000_000), mono(2_000_000), mono(1_000_000)).unwrap();
        assert_eq!(i, interval(10_000_000 - 1_000_000 - 100, 10_000_000 - 1_000_000 + 100));
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
            delta in -100_000_000_000i64..100_000_000_000,
            f in -1_000_000i64..=1_000_000, rho in 0i64..=1_000_000,
            share in 0i64..=1_000,
        ) {
            let m = DriftModel::new(Ppb::new(f), Ppb::new(rho)).unwrap();
            let at_ref = interval(truth0 - below, truth0 + above);
            let to = mono(u64::try_from((i128::from(r) + i128::from(delta)).max(0)).unwrap());
            let d = to.signed_nanos_since(mono(r));
            // A true rate anywhere in [f − ρ, f + ρ] ppb, chosen by `share`.
            let rate = i128::from(f - rho + 2 * rho * share / 1_000);
            let truth_scaled = i128::from(truth0) * BILLION + d * (BILLION + rate);
            let i = m.extrapolate(at_ref, mono(r), to).unwrap();
            prop_assert!(i128::from(i.earliest().as_nanos()) * BILLION <= truth_scaled);
            prop_assert!(i128::from(i.latest().as_nanos()) * BILLION >= truth_scaled);
        }
    }
}
