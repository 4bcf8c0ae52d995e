//! The samples of one `tsbench uncertainty` run and what they add up to:
//! the half-width histogram, samples per status, status changes and failed
//! reads, kept up to date as samples arrive. No clock and no I/O here: the
//! caller says when each sample was taken.

use std::time::Duration;

use tsod_proto::ClockStatus;

use super::MAX_HALF_WIDTH_NS;
use super::report::{StatusChange, StatusCounts};
use crate::plot::Point;
use crate::report::{ErrorTally, Series, Summary, round_to};

/// One sample: a `now` read and a status read, back to back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sample {
    /// When the reads began, since the run started.
    pub(crate) at: Duration,
    /// When they ended, since the run started.
    pub(crate) end: Duration,
    /// The half-width of the interval `now` returned, or the kind of its failure.
    pub(crate) half_width: Result<Duration, String>,
    /// The status, or the kind of the status read's failure.
    pub(crate) status: Result<ClockStatus, String>,
}

/// Every sample of a run, and their tallies.
#[derive(Debug)]
pub(crate) struct Timeline {
    samples: Vec<Sample>,
    half_width: Series,
    statuses: StatusCounts,
    changes: Vec<StatusChange>,
    last_status: Option<ClockStatus>,
    errors: ErrorTally,
}

impl Timeline {
    /// An empty timeline.
    pub(crate) fn new() -> anyhow::Result<Self> {
        Ok(Self {
            samples: Vec::new(),
            half_width: Series::new(MAX_HALF_WIDTH_NS, 1)?,
            statuses: StatusCounts::default(),
            changes: Vec::new(),
            last_status: None,
            errors: ErrorTally::default(),
        })
    }

    /// Adds the next sample (samples come in time order).
    pub(crate) fn push(&mut self, sample: Sample) {
        match &sample.half_width {
            Ok(half_width) => self.half_width.record(u64::try_from(half_width.as_nanos()).unwrap_or(u64::MAX)),
            Err(kind) => self.errors.add(kind),
        }
        match &sample.status {
            Ok(status) => {
                self.statuses.add(Some(*status));
                if let Some(from) = self.last_status.filter(|last| last != status) {
                    let at_s = round_to(sample.at.as_secs_f64(), 3);
                    self.changes.push(StatusChange { at_s, from, to: *status });
                }
                self.last_status = Some(*status);
            }
            Err(kind) => {
                self.statuses.add(None);
                self.errors.add(kind);
            }
        }
        self.samples.push(sample);
    }

    /// Samples taken.
    pub(crate) fn len(&self) -> u64 {
        u64::try_from(self.samples.len()).unwrap_or(u64::MAX)
    }

    /// Samples with a half-width.
    pub(crate) fn bounded(&self) -> u64 {
        self.half_width.samples()
    }

    /// The half-width percentiles.
    pub(crate) fn half_width(&self) -> Summary {
        self.half_width.summary()
    }

    /// Samples by status.
    pub(crate) fn statuses(&self) -> StatusCounts {
        self.statuses
    }

    /// Each change of status, in order.
    pub(crate) fn changes(&self) -> &[StatusChange] {
        &self.changes
    }

    /// Failed reads by kind.
    pub(crate) fn errors(&self) -> &ErrorTally {
        &self.errors
    }

    /// Reads made: two per sample.
    pub(crate) fn reads(&self) -> u64 {
        self.len().saturating_mul(2)
    }

    /// From the start of the first sample to the end of the last.
    pub(crate) fn elapsed(&self) -> Duration {
        match (self.samples.first(), self.samples.last()) {
            (Some(first), Some(last)) => last.end.saturating_sub(first.at),
            _ => Duration::ZERO,
        }
    }

    /// The samples as the plot draws them, times from the first sample.
    pub(crate) fn points(&self) -> Vec<Point> {
        let first = self.samples.first().map_or(Duration::ZERO, |s| s.at);
        self.samples
            .iter()
            .map(|s| Point {
                at_s: s.at.saturating_sub(first).as_secs_f64(),
                half_width_us: s.half_width.as_ref().ok().map(|d| d.as_secs_f64() * 1e6),
                status: s.status.as_ref().ok().copied(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use std::collections::BTreeMap;

    use super::*;

    fn sample(at_ms: u64, half_width_us: Option<u64>, status: Result<ClockStatus, &str>) -> Sample {
        Sample {
            at: Duration::from_millis(at_ms),
            end: Duration::from_millis(at_ms + 1),
            half_width: half_width_us.map(Duration::from_micros).ok_or_else(|| "unsynchronized".to_owned()),
            status: status.map_err(str::to_owned),
        }
    }

    #[test]
    fn tallies_follow_the_samples() {
        let mut timeline = Timeline::new().unwrap();
        assert_eq!((timeline.len(), timeline.elapsed()), (0, Duration::ZERO));
        timeline.push(sample(0, Some(20), Ok(ClockStatus::Synchronized)));
        timeline.push(sample(100, Some(20), Ok(ClockStatus::Synchronized)));
        timeline.push(sample(200, None, Ok(ClockStatus::Unsynchronized)));
        timeline.push(sample(300, None, Err("timeout")));
        timeline.push(sample(400, Some(40), Ok(ClockStatus::Degraded)));
        assert_eq!(timeline.len(), 5);
        assert_eq!(timeline.bounded(), 3);
        assert_eq!(timeline.reads(), 10);
        assert_eq!(timeline.elapsed(), Duration::from_millis(401));
        let half_width = timeline.half_width();
        assert!(half_width.p50_ns.abs_diff(20_000) <= 20 && half_width.max_ns.abs_diff(40_000) <= 40, "{half_width:?}");
        let statuses = timeline.statuses();
        assert_eq!((statuses.synchronized, statuses.unsynchronized, statuses.degraded, statuses.unknown), (2, 1, 1, 1));
        // The unknown status in between is skipped, not a change.
        assert_eq!(
            timeline.changes(),
            [
                StatusChange { at_s: 0.2, from: ClockStatus::Synchronized, to: ClockStatus::Unsynchronized },
                StatusChange { at_s: 0.4, from: ClockStatus::Unsynchronized, to: ClockStatus::Degraded },
            ]
        );
        assert_eq!(timeline.errors().total, 3);
        assert_eq!(
            timeline.errors().by_kind,
            BTreeMap::from([("timeout".to_owned(), 1), ("unsynchronized".to_owned(), 2)])
        );
        let points = timeline.points();
        assert_eq!(points.len(), 5);
        assert_eq!(points[2], Point { at_s: 0.2, half_width_us: None, status: Some(ClockStatus::Unsynchronized) });
        assert!(points[4].half_width_us.is_some_and(|us| (us - 40.0).abs() < 1e-9));
        assert_eq!(points[3].status, None);
    }
}
