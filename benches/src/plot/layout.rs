//! Where things go on the plot, without drawing anything: the axes' ranges,
//! the line cut into status-coloured pieces, the stretches without a bound,
//! and texts that lose their middle. Pure functions of the samples, so they
//! are tested on their own; `plot.rs` draws what they return. Tick labels
//! and the mesh are the testbed's plot's too (`tsod_testbed::plot::axis`).

use std::ops::Range;

use tsod_proto::ClockStatus;
use tsod_testbed::plot::axis::log_lerp;

use super::{Picture, Point};

/// The y axis when no sample had a bound: 10 µs to 1 ms.
pub(super) const DEFAULT_Y_US: Range<f64> = 10.0..1000.0;

/// The y axis: logarithmic over whole decades, or linear from zero.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum YAxis {
    /// Whole decades, in µs.
    Log(Range<f64>),
    /// From zero, in µs.
    Linear(Range<f64>),
}

/// The statuses of `points` in the order first seen (`None`: unknown).
pub(super) fn statuses_seen(points: &[Point]) -> Vec<Option<ClockStatus>> {
    let mut seen = Vec::new();
    for point in points {
        if !seen.contains(&point.status) {
            seen.push(point.status);
        }
    }
    seen
}

/// The x axis: from 0 (or the earliest time, if earlier) to the end of the
/// last sample's interval; one second when that is empty.
pub(super) fn time_range(picture: &Picture) -> Range<f64> {
    let times =
        picture.points.iter().map(|p| p.at_s).chain(picture.changes.iter().map(|c| c.at_s)).filter(|t| t.is_finite());
    let (start, end) = times.fold((0.0_f64, 0.0_f64), |(lo, hi), t| (lo.min(t), hi.max(t)));
    let end = if picture.interval_s.is_finite() && picture.interval_s > 0.0 { end + picture.interval_s } else { end };
    if end > start { start..end } else { start..start + 1.0 }
}

/// The half-widths worth drawing: finite and positive.
fn drawable_half_widths(points: &[Point]) -> impl Iterator<Item = f64> + '_ {
    points.iter().filter_map(|p| p.half_width_us).filter(|us| us.is_finite() && *us > 0.0)
}

/// Logarithmic over whole decades when the half-widths span a factor of
/// ten or more, else linear from zero to a little above the largest;
/// [`DEFAULT_Y_US`], logarithmic, when there is none.
pub(super) fn y_axis(points: &[Point]) -> YAxis {
    let Some((low, high)) = drawable_half_widths(points)
        .fold(None, |acc: Option<(f64, f64)>, us| Some(acc.map_or((us, us), |(lo, hi)| (lo.min(us), hi.max(us)))))
    else {
        return YAxis::Log(DEFAULT_Y_US);
    };
    if high / low >= 10.0 {
        let low = 10_f64.powf(low.log10().floor());
        // At least two decades: on one, plotters labels the top tick twice.
        let high = 10_f64.powf(high.log10().ceil()).max(low * 100.0);
        YAxis::Log(low..high)
    } else {
        YAxis::Linear(0.0..high * 1.15)
    }
}

/// A piece of the line: its status and its `(seconds, µs)` points.
pub(super) type Run = (Option<ClockStatus>, Vec<(f64, f64)>);

/// The line in pieces: consecutive bounded samples of one status, each
/// piece starting where the previous one ended when no gap separates them.
/// Half-widths below `floor` (the bottom of a log axis) are raised to it.
pub(super) fn coloured_runs(points: &[Point], floor: f64) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut joined = false;
    for point in points.iter().filter(|p| p.at_s.is_finite()) {
        let Some(us) = point.half_width_us.filter(|us| us.is_finite()) else {
            joined = false;
            continue;
        };
        let xy = (point.at_s, us.max(floor));
        match runs.last_mut() {
            Some((status, run)) if joined && *status == point.status => run.push(xy),
            Some((_, run)) if joined => {
                let start = run.last().copied();
                runs.push((point.status, start.into_iter().chain([xy]).collect()));
            }
            _ => runs.push((point.status, vec![xy])),
        }
        joined = true;
    }
    runs
}

/// The stretches of time without a bound, `(from, to, status)`: from a
/// sample without a half-width to the next sample (or one interval on,
/// within `x_end`), merged while the status stays the same.
pub(super) fn unbounded_stretches(
    points: &[Point],
    interval_s: f64,
    x_end: f64,
) -> Vec<(f64, f64, Option<ClockStatus>)> {
    let points: Vec<&Point> = points.iter().filter(|p| p.at_s.is_finite()).collect();
    let step = if interval_s.is_finite() && interval_s > 0.0 { interval_s } else { 0.0 };
    let mut stretches: Vec<(f64, f64, Option<ClockStatus>)> = Vec::new();
    for (index, point) in points.iter().enumerate() {
        if point.half_width_us.is_some_and(f64::is_finite) {
            continue;
        }
        let to = points.get(index + 1).map_or((point.at_s + step).min(x_end), |next| next.at_s);
        match stretches.last_mut() {
            Some((_, end, status)) if *end == point.at_s && *status == point.status => *end = to,
            _ => stretches.push((point.at_s, to, point.status)),
        }
    }
    stretches
}

impl YAxis {
    /// The value a `fraction` of the way up the axis.
    pub(super) fn at_fraction(&self, fraction: f64) -> f64 {
        match self {
            Self::Log(y) => log_lerp(y.start, y.end, fraction),
            Self::Linear(y) => y.start + (y.end - y.start) * fraction,
        }
    }
}

/// `text` cut to at most `chars` characters by replacing its middle with
/// `…`, so that both the start and the end of a long path stay readable.
pub(super) fn elide_middle(text: &str, chars: usize) -> String {
    let count = text.chars().count();
    if count <= chars {
        return text.to_owned();
    }
    let keep = chars.saturating_sub(1);
    let head: String = text.chars().take(keep / 2).collect();
    let tail: String = text.chars().skip(count - (keep - keep / 2)).collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at_s: f64, half_width_us: Option<f64>, status: ClockStatus) -> Point {
        Point { at_s, half_width_us, status: Some(status) }
    }

    /// 20 µs to 600 µs over 20 s, one sample a second.
    fn spread() -> Picture {
        let points = (0..=20).map(|s| point(f64::from(s), Some(20.0 + f64::from(s) * 29.0), ClockStatus::Synchronized));
        Picture { points: points.collect(), interval_s: 1.0, ..Picture::default() }
    }

    #[test]
    fn axes_choose_log_for_a_decade_or_more() {
        assert_eq!(y_axis(&[]), YAxis::Log(DEFAULT_Y_US));
        let flat =
            [point(0.0, Some(20.0), ClockStatus::Synchronized), point(1.0, Some(40.0), ClockStatus::Synchronized)];
        assert_eq!(y_axis(&flat), YAxis::Linear(0.0..46.0));
        assert_eq!(y_axis(&spread().points), YAxis::Log(10.0..1000.0));
        let decade =
            [point(0.0, Some(10.0), ClockStatus::Synchronized), point(1.0, Some(100.0), ClockStatus::Degraded)];
        assert_eq!(y_axis(&decade), YAxis::Log(10.0..1000.0));
        assert_eq!(time_range(&Picture::default()), 0.0..1.0);
        assert_eq!(time_range(&spread()), 0.0..21.0);
        assert!((YAxis::Log(10.0..1000.0).at_fraction(0.5) - 100.0).abs() < 1e-9);
        assert!((YAxis::Linear(0.0..46.0).at_fraction(0.5) - 23.0).abs() < 1e-9);
    }

    #[test]
    fn runs_follow_status_and_gaps() {
        use ClockStatus::{Degraded, Synchronized, Unsynchronized};
        let points = [
            point(0.0, Some(1.0), Synchronized),
            point(1.0, Some(2.0), Synchronized),
            point(2.0, Some(3.0), Degraded),
            point(3.0, None, Unsynchronized),
            point(4.0, None, Unsynchronized),
            point(5.0, Some(0.5), Synchronized),
            point(f64::NAN, Some(5.0), Synchronized),
        ];
        assert_eq!(
            coloured_runs(&points, 1.0),
            vec![
                (Some(Synchronized), vec![(0.0, 1.0), (1.0, 2.0)]),
                (Some(Degraded), vec![(1.0, 2.0), (2.0, 3.0)]),
                (Some(Synchronized), vec![(5.0, 1.0)]),
            ]
        );
        assert_eq!(unbounded_stretches(&points, 1.0, 10.0), vec![(3.0, 5.0, Some(Unsynchronized))]);
        let last = [point(0.0, None, Unsynchronized)];
        assert_eq!(unbounded_stretches(&last, 1.0, 0.5), vec![(0.0, 0.5, Some(Unsynchronized))]);
        assert_eq!(statuses_seen(&points), vec![Some(Synchronized), Some(Degraded), Some(Unsynchronized)]);
        assert_eq!(elide_middle("/tmp/abcdef/seg", 9), "/tmp…/seg");
        assert_eq!(elide_middle("short", 9), "short");
    }
}
