//! The truth checker: reads every site's bound through `tsod-client`'s
//! [`LocalClock`], the way an application on that site would, and compares
//! it with the host clock, which is true time on this machine by definition
//! (docs/ARCHITECTURE.md, "The testbed's truth"), told on the service
//! timescale as the cluster's [`TrueTime`] says (shifted, and smeared
//! around a scenario's leap second; the host's own time otherwise).
//!
//! A **violation** is an interval `now()` returned (so the site's status was
//! bounded and the anchor fresh) that excludes every instant of true time
//! between the host clock read just before and just after the call. Each is recorded
//! with its site, time and how far outside truth lay. Half-widths and
//! errors are recorded per sample for the report and the plot.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tsod_client::LocalClock;
use tsod_proto::Timestamp;

use crate::truth::TrueTime;

/// One interval that excluded true time.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    /// The site.
    pub site: String,
    /// Seconds since the timeline started.
    pub at_s: f64,
    /// How far true time lay outside the interval.
    pub by: Duration,
    /// The interval, as text.
    pub interval: String,
}

/// What one sample of one site found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// A bound that contained true time, with its half-width.
    True(Duration),
    /// A bound that excluded true time (a violation).
    False(Duration),
    /// No bound (unsynchronized, disrupted, stale, daemon down).
    NoBound,
}

/// One site's record.
#[derive(Debug)]
pub struct SiteRecord {
    /// The site.
    pub name: String,
    segment: PathBuf,
    clock: Option<LocalClock>,
    /// (seconds since start, reading), in order.
    pub readings: Vec<(f64, Reading)>,
    /// Violations seen.
    pub violations: Vec<Violation>,
}

/// The checker over every site.
#[derive(Debug)]
pub struct Checker {
    /// Per site, in the cluster's order.
    pub sites: Vec<SiteRecord>,
    time: TrueTime,
}

/// The host's `CLOCK_REALTIME`: true time here.
pub fn host_now() -> Timestamp {
    let ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    Timestamp::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

impl Checker {
    /// A checker for sites (name, segment path).
    pub fn new(sites: impl IntoIterator<Item = (String, PathBuf)>) -> Self {
        Self {
            sites: sites
                .into_iter()
                .map(|(name, segment)| SiteRecord {
                    name,
                    segment,
                    clock: None,
                    readings: Vec::new(),
                    violations: Vec::new(),
                })
                .collect(),
            time: TrueTime::default(),
        }
    }

    /// The same, judging against `time` (a cluster's [`Cluster::time`](crate::cluster::Cluster::time)).
    #[must_use]
    pub fn with_time(mut self, time: TrueTime) -> Self {
        self.time = time;
        self
    }

    /// Reads every site once, `at_s` seconds into the timeline.
    pub fn sample(&mut self, at_s: f64) {
        for site in &mut self.sites {
            let reading = site.read(at_s, &self.time);
            site.readings.push((at_s, reading));
        }
    }

    /// Violations across all sites.
    pub fn violations(&self) -> impl Iterator<Item = &Violation> {
        self.sites.iter().flat_map(|s| s.violations.iter())
    }

    /// The widest interval (its full width, twice the half-width) any site
    /// gave in `[from_s, to_s]`; zero without a bound there.
    pub fn widest(&self, from_s: f64, to_s: f64) -> Duration {
        self.sites
            .iter()
            .flat_map(|site| {
                let first = site.readings.partition_point(|(t, _)| *t < from_s);
                site.readings.get(first..).unwrap_or_default().iter().take_while(move |(t, _)| *t <= to_s)
            })
            .filter_map(|(_, r)| match r {
                Reading::True(w) | Reading::False(w) => Some(w.saturating_mul(2)),
                Reading::NoBound => None,
            })
            .max()
            .unwrap_or_default()
    }
}

impl SiteRecord {
    fn read(&mut self, at_s: f64, time: &TrueTime) -> Reading {
        if self.clock.is_none() {
            // The segment appears once the daemon runs; a replaced one is
            // followed by LocalClock itself.
            self.clock = LocalClock::open_path(&self.segment).ok();
        }
        let Some(clock) = &self.clock else { return Reading::NoBound };
        let before = host_now();
        let result = clock.now();
        let after = host_now();
        let (before, after) = (time.truth(before), time.truth_ceil(after));
        let Ok(interval) = result else { return Reading::NoBound };
        let half_width = interval.half_width();
        let below = before.as_nanos().saturating_sub(interval.latest().as_nanos());
        let above = interval.earliest().as_nanos().saturating_sub(after.as_nanos());
        if interval.latest() < before || interval.earliest() > after {
            self.violations.push(Violation {
                site: self.name.clone(),
                at_s,
                by: Duration::from_nanos(below.max(above)),
                interval: interval.to_string(),
            });
            return Reading::False(half_width);
        }
        Reading::True(half_width)
    }

    /// Its latest reading.
    pub fn last(&self) -> Option<Reading> {
        self.readings.last().map(|r| r.1)
    }

    /// Half-width percentiles (p50, p99, max) over readings in `[from_s, to_s)`
    /// that had a bound, or `None` without any.
    pub fn half_width_percentiles(&self, from_s: f64, to_s: f64) -> Option<(Duration, Duration, Duration)> {
        let mut widths: Vec<Duration> = self
            .readings
            .iter()
            .filter(|(t, _)| *t >= from_s && *t < to_s)
            .filter_map(|(_, r)| match r {
                Reading::True(w) | Reading::False(w) => Some(*w),
                Reading::NoBound => None,
            })
            .collect();
        widths.sort_unstable();
        let last = widths.len().checked_sub(1)?;
        let at = |q: usize| widths.get(last.saturating_mul(q) / 100).copied().unwrap_or_default();
        Some((at(50), at(99), widths.get(last).copied().unwrap_or_default()))
    }

    /// Fraction of readings in `[from_s, to_s)` with no bound.
    pub fn unbounded_fraction(&self, from_s: f64, to_s: f64) -> f64 {
        let span: Vec<&Reading> =
            self.readings.iter().filter(|(t, _)| *t >= from_s && *t < to_s).map(|(_, r)| r).collect();
        if span.is_empty() {
            return 0.0;
        }
        let none = span.iter().filter(|r| matches!(r, Reading::NoBound)).count();
        none as f64 / span.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_unbounded_fraction() {
        let mut c = Checker::new([("a".to_owned(), PathBuf::from("/nonexistent/segment"))]);
        // No segment: every reading is NoBound, never a violation.
        c.sample(0.0);
        assert_eq!(c.sites[0].last(), Some(Reading::NoBound));
        let site = &mut c.sites[0];
        for i in 1..=100u64 {
            site.readings.push((i as f64, Reading::True(Duration::from_micros(i))));
        }
        let (p50, p99, max) = site.half_width_percentiles(0.0, 1000.0).unwrap();
        assert_eq!((p50, p99, max), (Duration::from_micros(50), Duration::from_micros(99), Duration::from_micros(100)));
        assert!((site.unbounded_fraction(0.0, 1000.0) - 1.0 / 101.0).abs() < 1e-9);
        assert_eq!(site.half_width_percentiles(500.0, 600.0), None);
        assert_eq!(c.violations().count(), 0);
        assert_eq!(c.widest(10.0, 20.0), Duration::from_micros(40));
        assert_eq!(c.widest(0.0, 0.5), Duration::ZERO, "no bound then");
        assert_eq!(c.widest(99.5, 1_000.0), Duration::from_micros(200));
    }
}
