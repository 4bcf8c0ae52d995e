//! Measuring the reader clock's frequency error, with a proven bound.
//!
//! Between samples a bound is carried along the reader clock, and its width
//! grows by `ρ` per second; with a 100 ppm crystal assumed unmeasured that is
//! 100 µs per second, which would dwarf a microsecond-class source. So the
//! daemon measures the frequency, the way it measures time: with intervals.
//!
//! If true time was in `[e₁, l₁]` at reader instant `a` and in `[e₂, l₂]` at
//! `b`, then over the `m = b − a` reader nanoseconds true time advanced by
//! between `e₂ − l₁` and `l₂ − e₁`, so the *average* rate error over the
//! span lies in
//!
//! ```text
//! [ (e₂ − l₁ − m) / m ,  (l₂ − e₁ − m) / m ]
//! ```
//!
//! — no statistics, no assumption beyond the two bounds being true. With
//! 20 µs bounds 60 s apart this pins the frequency to ±0.7 ppm.
//!
//! The instantaneous rate may differ from the average over the baseline;
//! `wander` (configured, default 5 ppm) bounds that difference, which is the
//! one modelling assumption (oscillator frequency changes with temperature,
//! by well under 1 ppm/°C for an ordinary crystal near room temperature, and
//! the baseline is at most minutes long). Before a baseline exists the
//! datasheet tolerance `max_drift` (default 100 ppm) applies; once measured,
//! the measurement plus `wander` replaces it entirely — never cut by the
//! datasheet, since a clock measured beyond its tolerance is where the
//! measurement says. For holdover (minutes to an hour without sources) the
//! wander allowance is too short-term, so [`FrequencyEstimator::holdover_model`]
//! uses the hull of the datasheet tolerance and the measured range.

use std::collections::VecDeque;
use std::time::Duration;

use tsod_proto::{DriftModel, MonoInstant, Ppb};

use crate::sample::Sample;

/// Parameters of the frequency measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrequencyConfig {
    /// Bound on the reader clock's rate error before any measurement.
    pub max_drift: Ppb,
    /// Bound on how far the instantaneous rate may stray from the average
    /// measured over the baseline.
    pub wander: Ppb,
    /// Shortest baseline worth measuring over.
    pub min_baseline: Duration,
    /// Longest baseline kept (older bounds are forgotten).
    pub max_baseline: Duration,
}

impl Default for FrequencyConfig {
    fn default() -> Self {
        Self {
            max_drift: Ppb::from_ppm(100),
            wander: Ppb::from_ppm(5),
            min_baseline: Duration::from_secs(16),
            max_baseline: Duration::from_secs(300),
        }
    }
}

/// Keeps recent selected bounds and derives the drift model from them.
#[derive(Clone, Debug)]
pub struct FrequencyEstimator {
    config: FrequencyConfig,
    history: VecDeque<Sample>,
}

/// Spacing of the kept bounds: one per second is plenty for baselines of minutes.
const HISTORY_SPACING: Duration = Duration::from_secs(1);

impl FrequencyEstimator {
    /// An estimator with no history.
    pub fn new(config: FrequencyConfig) -> Self {
        Self { config, history: VecDeque::new() }
    }

    /// Records a bound the daemon selected (true time was in `bound.interval`
    /// at `bound.at`). Bounds closer than a second to the last kept one are
    /// skipped; ones older than the longest baseline are dropped.
    pub fn observe(&mut self, bound: Sample) {
        if let Some(last) = self.history.back() {
            if bound.at < last.at {
                // Time went backwards on a monotonic clock: start over.
                self.history.clear();
            } else if span(last.at, bound.at) < HISTORY_SPACING {
                return;
            }
        }
        self.history.push_back(bound);
        while self.history.front().is_some_and(|first| span(first.at, bound.at) > self.config.max_baseline) {
            self.history.pop_front();
        }
    }

    /// Forgets everything (after a disruption: old bounds no longer relate
    /// to the reader clock in a known way).
    pub fn reset(&mut self) {
        self.history.clear();
    }

    /// The measured average rate error `[low, high]` in ppb over the longest
    /// baseline available, if one is at least `min_baseline` long.
    pub fn measured(&self) -> Option<(i64, i64)> {
        let latest = self.history.back()?;
        let base = self.history.iter().find(|b| span(b.at, latest.at) >= self.config.min_baseline)?;
        let m = i128::from(latest.at.as_nanos().checked_sub(base.at.as_nanos())?);
        let (e1, l1) = (i128::from(base.interval.earliest().as_nanos()), i128::from(base.interval.latest().as_nanos()));
        let (e2, l2) =
            (i128::from(latest.interval.earliest().as_nanos()), i128::from(latest.interval.latest().as_nanos()));
        let billion = 1_000_000_000i128;
        let low = (e2 - l1 - m).checked_mul(billion)?.div_euclid(m);
        let high_num = (l2 - e1 - m).checked_mul(billion)?;
        let high = high_num.div_euclid(m) + i128::from(high_num.rem_euclid(m) != 0);
        Some((i64::try_from(low).ok()?, i64::try_from(high).ok()?))
    }

    /// The drift model to extrapolate with now, or `None` when the evidence
    /// says the reader clock is outside what a [`DriftModel`] can describe
    /// (beyond ±1000 ppm): then the daemon must not publish a bound.
    pub fn model(&self) -> Option<DriftModel> {
        let max = self.config.max_drift.get();
        let wander = self.config.wander.get();
        let measured = self.measured().map(|(low, high)| (low.saturating_sub(wander), high.saturating_add(wander)));
        let (low, high) = match measured {
            // A measurement narrower than the datasheet replaces it — never
            // cut by it, since a clock measured beyond its tolerance is where
            // the measurement says, and cutting there drops the true rate.
            Some((low, high)) if high.saturating_sub(low) < max.saturating_mul(2) => (low, high),
            // One that contradicts the datasheet outright wins too (and is
            // likely too wide to model: then no bound).
            Some((low, high)) if high < -max || low > max => (low, high),
            // A wider one (wide sources, short baseline) adds nothing.
            _ => (-max, max),
        };
        covering(low, high)
    }

    /// The model for holdover (no source for minutes to an hour): the
    /// datasheet tolerance, widened to include the measured range if the
    /// clock was measured beyond it. The short-term wander allowance is not
    /// enough over such spans, so the measurement never narrows this one.
    pub fn holdover_model(&self) -> Option<DriftModel> {
        let max = self.config.max_drift.get();
        let wander = self.config.wander.get();
        let (low, high) = self.measured().map_or((-max, max), |(low, high)| {
            (low.saturating_sub(wander).min(-max), high.saturating_add(wander).max(max))
        });
        covering(low, high)
    }
}

/// The [`DriftModel`] `f ± ρ` covering the rate range `[low, high]` ppb.
fn covering(low: i64, high: i64) -> Option<DriftModel> {
    let frequency = low.saturating_add(high).div_euclid(2);
    let bound = high.saturating_sub(frequency).max(frequency.saturating_sub(low));
    DriftModel::new(Ppb::new(frequency), Ppb::new(bound)).ok()
}

fn span(from: MonoInstant, to: MonoInstant) -> Duration {
    Duration::from_nanos(to.as_nanos().saturating_sub(from.as_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsod_proto::{TimeInterval, Timestamp};

    /// A bound of half-width `hw` around the true time of a clock that runs
    /// `ppb` fast, observed at reader instant `at_s` seconds.
    fn bound(at_s: u64, ppb: i64, hw: u64) -> Sample {
        let at = at_s * 1_000_000_000;
        // reader = true · (1 + ppb) ⇒ true = reader / (1 + ppb)
        let truth = u64::try_from(i128::from(at) * 1_000_000_000 / (1_000_000_000 + i128::from(ppb))).unwrap()
            + 1_000_000_000_000;
        Sample {
            at: MonoInstant::from_nanos(at),
            interval: TimeInterval::new(Timestamp::from_nanos(truth - hw), Timestamp::from_nanos(truth + hw)).unwrap(),
        }
    }

    #[test]
    fn without_a_baseline_the_datasheet_bound_applies() {
        let mut f = FrequencyEstimator::new(FrequencyConfig::default());
        assert_eq!(f.model(), DriftModel::symmetric(Ppb::from_ppm(100)).ok());
        f.observe(bound(0, 0, 20_000));
        f.observe(bound(10, 0, 20_000));
        assert_eq!(f.measured(), None, "10 s is below the minimum baseline");
    }

    #[test]
    fn a_measured_frequency_narrows_the_model_and_contains_the_truth() {
        let mut f = FrequencyEstimator::new(FrequencyConfig::default());
        // The reader clock runs 37 ppm fast, so true time runs 37 ppm slow against it.
        for s in 0..=60 {
            f.observe(bound(s, 37_000, 20_000));
        }
        let (low, high) = f.measured().unwrap();
        assert!(low <= -36_990 && -36_990 <= high, "{low}..{high}");
        assert!(high - low < 1_400, "20 µs bounds 60 s apart: ±0.67 ppm, got {low}..{high}");
        let m = f.model().unwrap();
        let lo = m.frequency().get() - m.bound().get();
        let hi = m.frequency().get() + m.bound().get();
        assert!(lo <= low - 5_000 && hi >= high + 5_000, "wander is added on both sides");
        assert!(m.bound().get() < 6_000, "ρ ≈ 0.7 + 5 ppm, got {}", m.bound());
    }

    #[test]
    fn history_is_bounded_and_resets_on_disruption() {
        let mut f = FrequencyEstimator::new(FrequencyConfig::default());
        for s in 0..2_000 {
            f.observe(bound(s, 0, 1_000));
        }
        assert!(f.history.len() <= 302);
        f.reset();
        assert_eq!(f.measured(), None);
        assert_eq!(f.model(), DriftModel::symmetric(Ppb::from_ppm(100)).ok());
    }

    /// A clock 3 ppm beyond the datasheet: the model must contain its rate.
    #[test]
    fn model_contains_a_true_rate_just_beyond_the_datasheet() {
        let mut f = FrequencyEstimator::new(FrequencyConfig::default());
        for s in 0..=300u64 {
            f.observe(bound(s, 103_000, 20_000));
        }
        let m = f.model().unwrap();
        let (lo, hi) = (m.frequency().get() - m.bound().get(), m.frequency().get() + m.bound().get());
        assert!(lo <= -102_989 && -102_989 <= hi, "{:?} {lo}..{hi}", f.measured());
        let h = f.holdover_model().unwrap();
        let (lo, hi) = (h.frequency().get() - h.bound().get(), h.frequency().get() + h.bound().get());
        assert!(lo <= -102_989 && hi >= 100_000, "holdover hull {lo}..{hi}");
    }

    /// NMEA-class sources (seconds wide) measure nothing useful over minutes:
    /// the datasheet model applies, rather than no model at all.
    #[test]
    fn a_measurement_wider_than_the_datasheet_falls_back_to_it() {
        let mut f = FrequencyEstimator::new(FrequencyConfig::default());
        for s in 0..=30 {
            f.observe(bound(s, 0, 3_000_000_000));
        }
        assert!(f.measured().is_some());
        assert_eq!(f.model(), DriftModel::symmetric(Ppb::from_ppm(100)).ok());
    }

    #[test]
    fn evidence_beyond_the_datasheet_wins_and_beyond_1000_ppm_refuses() {
        let mut f = FrequencyEstimator::new(FrequencyConfig::default());
        for s in 0..=30 {
            f.observe(bound(s, 400_000, 1_000));
        }
        let m = f.model().unwrap();
        assert!(m.frequency().get() < -390_000, "measured −400 ppm kept: {m:?}");
        let mut g = FrequencyEstimator::new(FrequencyConfig::default());
        for s in 0..=30 {
            g.observe(bound(s, 5_000_000, 1_000));
        }
        assert_eq!(g.model(), None, "a clock 5000 ppm off cannot be modelled");
    }
}
