//! `--plot FILE.svg`: a picture of a scenario run. One line per site shows
//! its published half-width over time on a logarithmic axis (half-widths
//! span tens of microseconds with GPS to tens of milliseconds from a far
//! peer), broken wherever the site had no bound; a marker in the site's
//! colour shows each change of its status, and a grey vertical line with a
//! short label each scenario event (a kill, a partition, a lying source).
//!
//! This module only draws: the caller samples the sites and keeps the
//! scenario's event log, and hands both over as [`Series`] and
//! `(seconds, label)` pairs.
//!
//! # Why SVG only
//!
//! The plot is drawn with `plotters` built with its SVG backend alone. The
//! SVG backend writes text as `<text>` elements and leaves fonts to the
//! viewer, so nothing here needs a font library (fontconfig, freetype) or a
//! bitmap encoder; asking for any other format (`.png`) is refused with
//! [`PlotError::NotSvg`] before anything is drawn.
//!
//! # Invariants
//!
//! * Any input draws: non-finite times or half-widths are skipped (a
//!   non-finite half-width breaks the line like a missing bound), and
//!   half-widths at or below zero are drawn at the bottom of the axis.
//! * Nothing is written unless the whole picture was drawn.

pub mod axis;

use std::ffi::OsStr;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::{
    BLACK, ChartBuilder, Circle, Color, DrawingArea, DrawingBackend, IntoDrawingArea, IntoFont, IntoLogRange,
    LineSeries, PathElement, RGBColor, SVGBackend, ShapeStyle, Text, TriangleMarker, WHITE,
};
use plotters::style::text_anchor::{HPos, Pos, VPos};

use axis::{draw_mesh, log_lerp, shorten};

/// Size of the picture, pixels.
const SIZE: (u32, u32) = (1280, 680);

/// Width of the legend strip right of the plot, pixels.
const LEGEND_WIDTH: u32 = 200;

/// Longest site name in the legend, in characters (longer ones end in `…`).
const LEGEND_NAME_CHARS: usize = 16;

/// Site colours, in order (Tableau 10, distinguishable for most readers).
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// Colour of event markers and their labels.
const EVENT_COLOUR: RGBColor = RGBColor(0x55, 0x55, 0x55);

/// Longest event label drawn, in characters (longer ones end in `…`).
const EVENT_LABEL_CHARS: usize = 28;

/// Event labels are staggered over this many rows so that close events stay legible.
const EVENT_LABEL_ROWS: usize = 4;

/// The y axis when no site ever had a bound: 10 µs to 100 ms.
const DEFAULT_Y_US: Range<f64> = 10.0..100_000.0;

/// One site's half-width through a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// The site's name (the legend entry).
    pub site: String,
    /// `(seconds since the timeline's start, half-width in µs)` in time
    /// order; `None` where the site published no bound (the line breaks).
    pub points: Vec<(f64, Option<f64>)>,
    /// `(seconds since the timeline's start, new status)` at each change of
    /// the site's published status.
    pub status_changes: Vec<(f64, String)>,
}

/// Why a plot was not written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The file name does not end in `.svg`.
    #[error("{}: only SVG plots are supported (the testbed has no bitmap backend); name the file *.svg", .path.display())]
    NotSvg {
        /// The refused path.
        path: PathBuf,
    },
    /// The plotting library failed to draw (a bug in this module rather than in the input).
    #[error("drawing the plot failed: {0}")]
    Draw(String),
    /// The SVG could not be written.
    #[error("cannot write the plot to {}: {source}; check that the directory exists and is writable", .path.display())]
    Write {
        /// Where it was to be written.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
}

/// Draws `series` and `events` (`(seconds since the timeline's start,
/// label)`) under `title` and writes the picture to `path` as SVG.
///
/// Refuses (with [`PlotError::NotSvg`], writing nothing) a path whose
/// extension is not `svg` (in any case).
pub fn write_svg(path: &Path, title: &str, series: &[Series], events: &[(f64, String)]) -> Result<(), PlotError> {
    let is_svg = path.extension().and_then(OsStr::to_str).is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if !is_svg {
        return Err(PlotError::NotSvg { path: path.to_owned() });
    }
    let svg = render_svg(title, series, events)?;
    std::fs::write(path, svg).map_err(|source| PlotError::Write { path: path.to_owned(), source })
}

/// The SVG document [`write_svg`] writes.
pub fn render_svg(title: &str, series: &[Series], events: &[(f64, String)]) -> Result<String, PlotError> {
    let x_range = time_range(series, events);
    let y_range = half_width_range(series);
    let (y_low, y_high) = (y_range.start, y_range.end);
    // Events in the last third of the run get their label left of the line, so it stays on the plot.
    let label_left_from = x_range.start + (x_range.end - x_range.start) * 2.0 / 3.0;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let (plot_area, legend_area) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&plot_area)
            .caption(title, ("sans-serif", 26).into_font())
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(85)
            .build_cartesian_2d(x_range, y_range.log_scale())
            .map_err(draw_error)?;
        draw_mesh(&mut chart, "seconds since start", "half-width (log scale)").map_err(draw_error)?;

        let event_style = EVENT_COLOUR.mix(0.7).stroke_width(1);
        for (index, (at, label)) in events.iter().enumerate().filter(|(_, (at, _))| at.is_finite()) {
            let line = PathElement::new(vec![(*at, y_low), (*at, y_high)], event_style);
            chart.draw_series(std::iter::once(line)).map_err(draw_error)?;
            // Staggered rows from the top of the plot down.
            let row = (index % EVENT_LABEL_ROWS) as f64;
            let y = log_lerp(y_low, y_high, 0.985 - 0.06 * row);
            let (anchor, text) = if *at >= label_left_from {
                (HPos::Right, format!("{} ", shorten(label, EVENT_LABEL_CHARS)))
            } else {
                (HPos::Left, format!(" {}", shorten(label, EVENT_LABEL_CHARS)))
            };
            let font = ("sans-serif", 15).into_font().color(&EVENT_COLOUR).pos(Pos::new(anchor, VPos::Top));
            chart.draw_series(std::iter::once(Text::new(text, (*at, y), font))).map_err(draw_error)?;
        }

        for (site, colour) in series.iter().zip(PALETTE.iter().cycle()) {
            let line_style = colour.stroke_width(2);
            for run in bounded_runs(&site.points, y_low) {
                if let [single] = run.as_slice() {
                    // A lone bounded sample between gaps has no line to show it.
                    chart.draw_series(std::iter::once(Circle::new(*single, 3, colour.filled()))).map_err(draw_error)?;
                }
                chart.draw_series(LineSeries::new(run, line_style)).map_err(draw_error)?;
            }
            let status_font = ("sans-serif", 14).into_font().color(colour).pos(Pos::new(HPos::Left, VPos::Bottom));
            for (at, status) in site.status_changes.iter().filter(|(at, _)| at.is_finite()) {
                let y = half_width_at(&site.points, *at).map_or(y_low, |us| us.max(y_low));
                let marker = TriangleMarker::new((*at, y), 6, colour.filled());
                let text = Text::new(format!(" {}", short_status(status)), (*at, y), status_font.clone());
                chart.draw_series(std::iter::once(marker)).map_err(draw_error)?;
                chart.draw_series(std::iter::once(text)).map_err(draw_error)?;
            }
        }

        draw_legend(&legend_area, series, event_style)?;
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

/// The key, in its own strip right of the plot so that it never hides a
/// line: each site's colour and name, then what the markers mean.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
    event_style: ShapeStyle,
) -> Result<(), PlotError> {
    const LINE: i32 = 24;
    let font = ("sans-serif", 16).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    let mut y = 70;
    for (site, colour) in series.iter().zip(PALETTE.iter().cycle()) {
        area.draw(&PathElement::new(vec![(8, y), (36, y)], colour.stroke_width(3))).map_err(draw_error)?;
        area.draw(&Text::new(shorten(&site.site, LEGEND_NAME_CHARS), (44, y), font.clone())).map_err(draw_error)?;
        y += LINE;
    }
    y += LINE / 2;
    area.draw(&TriangleMarker::new((22, y), 6, BLACK.filled())).map_err(draw_error)?;
    area.draw(&Text::new("status change", (44, y), font.clone())).map_err(draw_error)?;
    y += LINE;
    area.draw(&PathElement::new(vec![(22, y - 9), (22, y + 9)], event_style)).map_err(draw_error)?;
    area.draw(&Text::new("scenario event", (44, y), font)).map_err(draw_error)?;
    Ok(())
}

/// The plotting library's error as ours.
fn draw_error(error: impl std::fmt::Display) -> PlotError {
    PlotError::Draw(error.to_string())
}

/// The x axis: from 0 (or the earliest time, if earlier) to the latest
/// sample or event, at least one second wide.
fn time_range(series: &[Series], events: &[(f64, String)]) -> Range<f64> {
    let times = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(t, _)| *t).chain(s.status_changes.iter().map(|(t, _)| *t)))
        .chain(events.iter().map(|(t, _)| *t))
        .filter(|t| t.is_finite());
    let (start, end) = times.fold((0.0_f64, 0.0_f64), |(lo, hi), t| (lo.min(t), hi.max(t)));
    start..end.max(start + 1.0)
}

/// The y axis, µs: whole decades around every bounded half-width above zero,
/// at least one decade; [`DEFAULT_Y_US`] when there is none.
fn half_width_range(series: &[Series]) -> Range<f64> {
    let values =
        series.iter().flat_map(|s| s.points.iter().filter_map(|(_, us)| *us)).filter(|us| us.is_finite() && *us > 0.0);
    let Some((low, high)) = values
        .fold(None, |acc: Option<(f64, f64)>, us| Some(acc.map_or((us, us), |(lo, hi)| (lo.min(us), hi.max(us)))))
    else {
        return DEFAULT_Y_US;
    };
    let low = 10_f64.powf(low.log10().floor());
    let high = 10_f64.powf(high.log10().ceil()).max(low * 10.0);
    low..high
}

/// The runs of consecutive bounded samples, as drawable points: a `None` or
/// non-finite half-width ends a run; half-widths below `floor` are raised to it.
fn bounded_runs(points: &[(f64, Option<f64>)], floor: f64) -> Vec<Vec<(f64, f64)>> {
    let mut runs = vec![Vec::new()];
    for (t, us) in points.iter().filter(|(t, _)| t.is_finite()) {
        match us.filter(|us| us.is_finite()) {
            Some(us) => runs.last_mut().into_iter().for_each(|run| run.push((*t, us.max(floor)))),
            None => runs.push(Vec::new()),
        }
    }
    runs.retain(|run| !run.is_empty());
    runs
}

/// The half-width of the last sample at or before `at`, if that sample was bounded.
fn half_width_at(points: &[(f64, Option<f64>)], at: f64) -> Option<f64> {
    points.iter().rev().find(|(t, _)| *t <= at).and_then(|(_, us)| *us).filter(|us| us.is_finite())
}

/// A status change's label: short enough not to cover the next one.
fn short_status(status: &str) -> String {
    match status {
        "synchronized" => "sync".to_owned(),
        "unsynchronized" => "unsync".to_owned(),
        "free-running" => "free-run".to_owned(),
        other => shorten(other, 10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path in the system temporary directory unique to this process and test.
    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("tsod-testbed-plot-{}-{name}", std::process::id()))
    }

    fn scenario() -> (Vec<Series>, Vec<(f64, String)>) {
        let xa = Series {
            site: "site-xa".to_owned(),
            points: (0..60).map(|s| (f64::from(s), Some(15.0 + f64::from(s)))).collect(),
            status_changes: vec![(0.0, "synchronized".to_owned())],
        };
        let xb = Series {
            site: "site-xb".to_owned(),
            points: (0..60)
                .map(|s| {
                    (f64::from(s), if (20..30).contains(&s) { None } else { Some(2_000.0 + 1_000.0 * f64::from(s)) })
                })
                .collect(),
            status_changes: vec![(0.0, "synchronized".to_owned()), (20.0, "unsynchronized".to_owned())],
        };
        let xc = Series { site: "site-xc".to_owned(), points: vec![(0.0, None), (1.0, None)], status_changes: vec![] };
        let events = vec![(20.0, "kill site-xb".to_owned()), (30.0, "start site-xb".to_owned())];
        (vec![xa, xb, xc], events)
    }

    #[test]
    fn writes_an_svg_naming_every_site_and_event() {
        let (series, events) = scenario();
        let path = temp_path("run.svg");
        write_svg(&path, "three sites & a kill", &series, &events).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{}", &svg[..svg.len().min(200)]);
        for needle in
            ["site-xa", "site-xb", "site-xc", "kill site-xb", "start site-xb", "unsync", "three sites &amp; a kill"]
        {
            assert!(svg.contains(needle), "{needle:?} missing");
        }
        // The axis spans whole decades around 15 µs … 61 ms.
        assert!(svg.contains("10 µs") && svg.contains("100 ms"));
    }

    #[test]
    fn bitmaps_are_refused_before_drawing() {
        let (series, events) = scenario();
        for name in ["run.png", "run.PNG", "run", "run.svg.png"] {
            let path = temp_path(name);
            let error = write_svg(&path, "t", &series, &events).unwrap_err();
            assert!(matches!(&error, PlotError::NotSvg { path: p } if *p == path), "{error:?}");
            assert!(error.to_string().contains("only SVG"), "{error}");
            assert!(!path.exists());
        }
        assert!(write_svg(&temp_path("upper.SVG"), "t", &[], &[]).is_ok());
        std::fs::remove_file(temp_path("upper.SVG")).unwrap();
    }

    #[test]
    fn unwritable_path_is_a_write_error() {
        let path = temp_path("no-such-directory").join("run.svg");
        let error = write_svg(&path, "t", &[], &[]).unwrap_err();
        assert!(matches!(error, PlotError::Write { .. }), "{error:?}");
    }

    #[test]
    fn odd_input_still_draws() {
        let odd = Series {
            site: "odd <&> \u{1f570}".to_owned(),
            points: vec![
                (f64::NAN, Some(5.0)),
                (0.0, Some(0.0)),
                (1.0, Some(f64::INFINITY)),
                (2.0, Some(-3.0)),
                (3.0, Some(1e12)),
                (f64::INFINITY, None),
            ],
            status_changes: vec![(f64::NAN, "x".to_owned()), (2.5, "a-very-long-status-name".to_owned())],
        };
        let svg =
            render_svg("", &[odd], &[(f64::NEG_INFINITY, "never".to_owned()), (-5.0, "before".to_owned())]).unwrap();
        assert!(svg.contains("odd &lt;&amp;&gt;") && svg.contains("before") && !svg.contains("never"));
        assert!(render_svg("empty", &[], &[]).unwrap().contains("empty"));
    }

    #[test]
    fn axes() {
        assert_eq!(half_width_range(&[]), DEFAULT_Y_US);
        let one = Series { points: vec![(0.0, Some(20.0)), (1.0, Some(20.0))], ..Series::default() };
        assert_eq!(half_width_range(&[one]), 10.0..100.0);
        assert_eq!(time_range(&[], &[(-2.0, String::new()), (f64::NAN, String::new())]), -2.0..0.0);
        assert_eq!(time_range(&[], &[]), 0.0..1.0);
        let runs =
            bounded_runs(&[(0.0, Some(1.0)), (1.0, None), (2.0, Some(0.5)), (3.0, Some(f64::NAN)), (4.0, None)], 1.0);
        assert_eq!(runs, vec![vec![(0.0, 1.0)], vec![(2.0, 1.0)]]);
    }
}
