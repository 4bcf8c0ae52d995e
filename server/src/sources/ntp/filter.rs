//! The best of one server's recent samples: RFC 5905's clock filter, chosen
//! by bound rather than by delay.
//!
//! Every kept sample is a valid bound at its own reader instant. Carried to
//! `now` along the reader clock with the daemon's [`DriftModel`] it is still
//! valid, only wider, so the narrowest projection is the best bound this
//! server backs at `now`: usually the sample with the shortest round trip,
//! unless it is old enough for drift to have widened it past a fresher one.
//! Ties go to the newest sample.
//!
//! A kept sample that, carried to `now`, shares no instant with the newest
//! one carried there is not used: one of the two is wrong, and the older
//! one is what a VM pause or migration leaves behind (every clock of the
//! guest froze, so the reader clock carries pre-pause samples along as if
//! nothing happened, and they look narrowest). The newest sample wins; if
//! it is the liar, the next one overrules it.
//!
//! Memory is bounded: at most `capacity` samples are kept (the oldest go
//! first), and samples older than `max_age` are neither used nor kept.
//!
//! Leap seconds: a sample is on the server's timescale, UTC as NTP numbers
//! it, which repeats (or skips) a second at the end of a leap day. Carrying
//! a sample across that second along the reader clock would be off by a
//! whole second, so a sample that announced a leap is never projected into,
//! or out of, the last second of its UTC day; it simply drops out of the
//! choice and fresher samples, taken after the leap, take over.

use std::collections::VecDeque;
use std::time::Duration;

use tsod_proto::{DriftModel, MonoInstant, TimeInterval};

use super::{NtpConfigError, NtpSample};
use crate::sample::Sample;

const NANOS_PER_SEC: u64 = 1_000_000_000;
const NANOS_PER_DAY: u64 = 86_400 * NANOS_PER_SEC;

/// How many samples to keep and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterConfig {
    /// Samples kept per server (default 8, as RFC 5905's clock filter).
    pub capacity: usize,
    /// Samples older than this (on the reader clock) are forgotten. Default 64 s.
    pub max_age: Duration,
}

impl Default for FilterConfig {
    fn default() -> Self {
        Self { capacity: 8, max_age: Duration::from_secs(64) }
    }
}

impl FilterConfig {
    /// The largest capacity accepted.
    pub const MAX_CAPACITY: usize = 64;

    /// Checks the capacity (1..=[`FilterConfig::MAX_CAPACITY`]) and a non-zero max age.
    pub fn validate(&self) -> Result<(), NtpConfigError> {
        if !(1..=Self::MAX_CAPACITY).contains(&self.capacity) {
            return Err(NtpConfigError::FilterCapacity(self.capacity));
        }
        if self.max_age.is_zero() {
            return Err(NtpConfigError::FilterMaxAge);
        }
        Ok(())
    }
}

/// One server's recent samples.
#[derive(Clone, Debug)]
pub struct SampleFilter {
    config: FilterConfig,
    samples: VecDeque<NtpSample>,
}

impl SampleFilter {
    /// An empty filter. A capacity outside 1..=[`FilterConfig::MAX_CAPACITY`]
    /// is clamped into it ([`FilterConfig::validate`] rejects it instead).
    pub fn new(config: FilterConfig) -> Self {
        let capacity = config.capacity.clamp(1, FilterConfig::MAX_CAPACITY);
        Self { config: FilterConfig { capacity, ..config }, samples: VecDeque::with_capacity(capacity) }
    }

    /// Keeps `sample`, dropping the oldest beyond the capacity and any older
    /// than `max_age` before it.
    pub fn push(&mut self, sample: NtpSample) {
        self.forget_older_than(sample.sample.at);
        while self.samples.len() >= self.config.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// Drops the samples older than `max_age` at reader instant `now`.
    pub fn forget_older_than(&mut self, now: MonoInstant) {
        let max_age = self.config.max_age;
        self.samples.retain(|s| !expired(s.sample.at, now, max_age));
    }

    /// Forgets everything (after a disruption of the reader clock).
    pub fn clear(&mut self) {
        self.samples.clear();
    }

    /// How many samples are kept.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no sample is kept.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The kept samples, oldest first, as taken.
    pub fn iter(&self) -> impl Iterator<Item = &NtpSample> {
        self.samples.iter()
    }

    /// The kept samples that may be used at reader instant `now`, each with
    /// its projection there under `drift`: young enough, projectable, not
    /// carried across an announced leap second, and not disjoint from the
    /// newest sample's projection (module doc).
    pub fn usable<'a>(
        &'a self,
        now: MonoInstant,
        drift: &'a DriftModel,
    ) -> impl Iterator<Item = (&'a NtpSample, TimeInterval)> + 'a {
        let max_age = self.config.max_age;
        let newest = self
            .samples
            .back()
            .filter(|s| !expired(s.sample.at, now, max_age))
            .and_then(|s| drift.extrapolate(s.sample.interval, s.sample.at, now));
        self.samples.iter().filter_map(move |kept| {
            if expired(kept.sample.at, now, max_age) {
                return None;
            }
            let interval = drift.extrapolate(kept.sample.interval, kept.sample.at, now)?;
            if reaches_leap_second(kept, &interval) {
                return None;
            }
            if newest.is_some_and(|n| n.latest() < interval.earliest() || interval.latest() < n.earliest()) {
                return None;
            }
            Some((kept, interval))
        })
    }

    /// The narrowest of the kept samples carried to reader instant `now` with
    /// `drift` (ties: the newest), with its metadata; `None` if no sample is
    /// young enough or can be carried. The returned `sample.at` is `now`.
    pub fn best(&self, now: MonoInstant, drift: &DriftModel) -> Option<NtpSample> {
        let mut best: Option<(MonoInstant, NtpSample)> = None;
        for (kept, interval) in self.usable(now, drift) {
            let better = best.as_ref().is_none_or(|(taken, current)| {
                let (width, best_width) = (interval.width(), current.sample.interval.width());
                width < best_width || (width == best_width && kept.sample.at >= *taken)
            });
            if better {
                best = Some((kept.sample.at, NtpSample { sample: Sample { at: now, interval }, ..*kept }));
            }
        }
        best.map(|(_, sample)| sample)
    }
}

/// Whether a sample taken at `at` is older than `max_age` at `now` (a sample
/// from after `now` is not).
fn expired(at: MonoInstant, now: MonoInstant, max_age: Duration) -> bool {
    u128::from(now.as_nanos().saturating_sub(at.as_nanos())) > max_age.as_nanos()
}

/// Whether `kept` announced a leap second and it or its projection reaches
/// the last second of the UTC day the sample began in, where the numbering
/// repeats or skips a second.
fn reaches_leap_second(kept: &NtpSample, projected: &TimeInterval) -> bool {
    if kept.leap.is_none() {
        return false;
    }
    let first = kept.sample.interval.earliest().min(projected.earliest()).as_nanos();
    let last = kept.sample.interval.latest().max(projected.latest()).as_nanos();
    let day_end = (first / NANOS_PER_DAY).saturating_add(1).saturating_mul(NANOS_PER_DAY);
    last >= day_end.saturating_sub(NANOS_PER_SEC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::ntp::packet::{LeapSecond, ReferenceId};
    use tsod_proto::{Ppb, Timestamp};

    const SEC: u64 = NANOS_PER_SEC;
    /// 2026-01-01T00:00:00Z.
    const DAY_START: u64 = 1_767_225_600 * SEC;

    /// A sample taken at reader second `at_s`, centred on the true time of a
    /// perfect clock (reader 0 ↔ `DAY_START` + 1 h), with half-width `hw` ns.
    fn sample(at_s: u64, hw: u64) -> NtpSample {
        let at = at_s * SEC;
        let truth = DAY_START + 3_600 * SEC + at;
        NtpSample {
            sample: Sample {
                at: MonoInstant::from_nanos(at),
                interval: TimeInterval::around(Timestamp::from_nanos(truth), Duration::from_nanos(hw)),
            },
            delay: Duration::from_nanos(hw),
            stratum: 2,
            leap: None,
            root_distance: Duration::from_nanos(hw),
            reference_id: ReferenceId(*b"GPS\0"),
        }
    }

    fn mono_s(s: u64) -> MonoInstant {
        MonoInstant::from_nanos(s * SEC)
    }

    fn drift_ppm(ppm: i32) -> DriftModel {
        DriftModel::symmetric(Ppb::from_ppm(ppm)).unwrap()
    }

    /// Issue 15, path 2: a VM paused for 30 s. Every guest clock froze, so
    /// the narrow pre-pause samples, carried along the reader clock, are
    /// 30 s early; the first sample after the resume is disjoint from them
    /// and wins, though wider.
    #[test]
    fn samples_from_before_a_vm_pause_are_overruled_by_the_newest() {
        let mut f = SampleFilter::new(FilterConfig::default());
        for at in 1..=5 {
            f.push(sample(at, 20_000));
        }
        let mut resumed = sample(6, 500_000);
        resumed.sample.interval = TimeInterval::around(
            Timestamp::from_nanos(DAY_START + 3_600 * SEC + 36 * SEC),
            Duration::from_nanos(500_000),
        );
        f.push(resumed);
        let best = f.best(mono_s(7), &drift_ppm(15)).unwrap();
        let truth = Timestamp::from_nanos(DAY_START + 3_600 * SEC + 37 * SEC);
        assert!(best.sample.interval.contains(truth), "{} misses {truth}", best.sample.interval);
    }

    #[test]
    fn picks_the_narrowest_projection() {
        let mut f = SampleFilter::new(FilterConfig::default());
        f.push(sample(10, 100_000)); // old and narrow
        f.push(sample(20, 400_000)); // fresh and wide
        // At 100 ppm, 10 s widen each side by 1 ms: the fresh one wins at t=20.
        let best = f.best(mono_s(20), &drift_ppm(100)).unwrap();
        assert_eq!(best.sample.interval.half_width(), Duration::from_nanos(400_000));
        assert_eq!(best.sample.at, mono_s(20));
        // At 1 ppm, 10 s add 10 µs: the old narrow one wins.
        let best = f.best(mono_s(20), &drift_ppm(1)).unwrap();
        assert!(best.sample.interval.half_width() < Duration::from_nanos(111_000), "{best:?}");
        assert_eq!(best.delay, Duration::from_nanos(100_000), "metadata travels with the sample");
        // Either way the projection still contains the (perfect-clock) truth.
        for ppm in [0, 1, 100] {
            let at_30 = f.best(mono_s(30), &drift_ppm(ppm)).unwrap();
            assert!(at_30.sample.interval.contains(Timestamp::from_nanos(DAY_START + 3_630 * SEC)));
        }
    }

    #[test]
    fn ties_go_to_the_newest() {
        // Equal widths once projected (perfect clock); `delay` tells them apart.
        let older = NtpSample { delay: Duration::from_nanos(1), ..sample(10, 5_000) };
        let newer = NtpSample { delay: Duration::from_nanos(2), ..sample(11, 5_000) };
        for order in [[older, newer], [newer, older]] {
            let mut f = SampleFilter::new(FilterConfig::default());
            for s in order {
                f.push(s);
            }
            f.push(sample(12, 9_000));
            let best = f.best(mono_s(12), &DriftModel::ZERO).unwrap();
            assert_eq!(best.sample.interval.half_width(), Duration::from_nanos(5_000));
            assert_eq!(best.delay, Duration::from_nanos(2), "the sample taken later wins the tie");
        }
    }

    #[test]
    fn forgets_old_samples_and_stays_bounded() {
        let mut f = SampleFilter::new(FilterConfig { capacity: 8, max_age: Duration::from_secs(64) });
        for s in 0..20 {
            f.push(sample(s, 1_000 + s));
        }
        assert_eq!(f.len(), 8, "capacity bounds memory");
        assert_eq!(f.iter().next().map(|s| s.sample.at), Some(mono_s(12)));
        // At t = 80 the samples from 12..=15 are more than 64 s old.
        assert!(f.best(mono_s(80), &DriftModel::ZERO).is_some_and(|b| b.delay == Duration::from_nanos(1_016)));
        assert_eq!(f.best(mono_s(84), &DriftModel::ZERO), None, "all older than 64 s");
        f.forget_older_than(mono_s(80));
        assert_eq!(f.len(), 4);
        f.push(sample(200, 50));
        assert_eq!(f.len(), 1, "pushing prunes by age too");
        f.clear();
        assert!(f.is_empty() && f.best(mono_s(200), &DriftModel::ZERO).is_none());
    }

    #[test]
    fn a_sample_announcing_a_leap_is_not_carried_across_the_end_of_its_day() {
        let mut f = SampleFilter::new(FilterConfig::default());
        // Taken 10 s before midnight at reader 100 s.
        let mut s = sample(100, 1_000);
        let shift = (DAY_START + NANOS_PER_DAY - 10 * SEC) - s.sample.interval.midpoint().as_nanos();
        s.sample.interval = TimeInterval::around(
            Timestamp::from_nanos(s.sample.interval.midpoint().as_nanos() + shift),
            Duration::from_nanos(1_000),
        );
        let leap = NtpSample { leap: Some(LeapSecond::Insert), ..s };
        f.push(leap);
        assert!(f.best(mono_s(105), &DriftModel::ZERO).is_some(), "5 s before midnight: fine");
        assert_eq!(f.best(mono_s(109), &DriftModel::ZERO), None, "reaches 23:59:59");
        assert_eq!(f.best(mono_s(120), &DriftModel::ZERO), None, "after the leap");
        f.clear();
        f.push(s);
        assert!(f.best(mono_s(120), &DriftModel::ZERO).is_some(), "no leap announced: carried on");
    }

    #[test]
    fn capacity_is_clamped_and_validated() {
        assert!(FilterConfig { capacity: 0, ..FilterConfig::default() }.validate().is_err());
        assert!(FilterConfig { capacity: 65, ..FilterConfig::default() }.validate().is_err());
        assert!(FilterConfig { max_age: Duration::ZERO, ..FilterConfig::default() }.validate().is_err());
        assert!(FilterConfig::default().validate().is_ok());
        let mut f = SampleFilter::new(FilterConfig { capacity: 0, ..FilterConfig::default() });
        f.push(sample(1, 1));
        f.push(sample(2, 1));
        assert_eq!(f.len(), 1);
    }
}
