//! `--plot FILE.svg|FILE.png`: a picture of one site's half-width over time.
//!
//! The line is drawn in the colour of the status each sample read
//! (synchronized green, degraded orange, free-running blue); a sample with
//! no bound (unsynchronized, disrupted, or a failed read) breaks the line and
//! shades its stretch of time in its status' colour. Each change of status
//! is a vertical line labelled with the new status. The y axis is
//! logarithmic when the half-widths span a decade or more, linear from zero
//! otherwise. The legend strip on the right holds the colours and the
//! caller's summary lines.
//!
//! Where everything goes is worked out in `layout.rs`; this module draws
//! it. SVG goes through plotters' SVG backend (text left to the viewer's
//! fonts); PNG through its bitmap backend, with the text drawn by
//! `text_bitmap.rs`, and is encoded with `png`.
//!
//! # Invariants
//!
//! * Any input draws: non-finite times and half-widths are skipped (a
//!   non-finite half-width counts as no bound), half-widths at or below the
//!   bottom of a log axis are drawn on it.
//! * Nothing is written unless the whole picture was drawn.

mod layout;
mod text_bitmap;

use std::ffi::OsStr;
use std::fmt::Display;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::{
    BLACK, ChartBuilder, Circle, Color, DrawingArea, DrawingBackend, IntoDrawingArea, IntoFont, IntoLogRange,
    LineSeries, PathElement, RGBColor, Rectangle, SVGBackend, Text, WHITE,
};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use tsod_proto::ClockStatus;
use tsod_testbed::plot::axis::{draw_mesh, shorten};

use layout::{YAxis, coloured_runs, elide_middle, statuses_seen, time_range, unbounded_stretches, y_axis};
use text_bitmap::TextBitmap;

/// Size of the picture, pixels.
const SIZE: (u32, u32) = (1280, 680);

/// Width of the legend strip right of the plot, pixels.
const LEGEND_WIDTH: u32 = 240;

/// Height of the heading (title and subtitle) above the plot, pixels.
const HEADING_HEIGHT: u32 = 72;

/// Longest title drawn, in characters (a longer one ends in `…`).
const TITLE_CHARS: usize = 80;

/// Longest subtitle drawn, in characters (a longer one loses its middle to `…`).
const SUBTITLE_CHARS: usize = 140;

/// Status changes that get a label (all get their line); more would be a smudge.
const LABELLED_CHANGES: usize = 24;

/// Change labels are staggered over this many rows so that close ones stay legible.
const LABEL_ROWS: usize = 4;

/// Colour of lines and markers for samples without a readable status.
const UNKNOWN_COLOUR: RGBColor = RGBColor(0x7f, 0x7f, 0x7f);

/// The picture formats, by file extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Svg,
    Png,
}

impl Format {
    fn of(path: &Path) -> Option<Self> {
        let extension = path.extension().and_then(OsStr::to_str)?;
        if extension.eq_ignore_ascii_case("svg") {
            Some(Self::Svg)
        } else if extension.eq_ignore_ascii_case("png") {
            Some(Self::Png)
        } else {
            None
        }
    }
}

/// clap's value parser for `--plot`: a path ending in `.svg` or `.png`.
pub(crate) fn parse_plot_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    match Format::of(&path) {
        Some(_) => Ok(path),
        None => Err(format!("{text:?}: name the plot FILE.svg or FILE.png")),
    }
}

/// Fails early, before a long run, if `path`'s directory does not exist.
pub(crate) fn check_destination(path: &Path) -> anyhow::Result<()> {
    let directory = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    anyhow::ensure!(
        directory.is_dir(),
        "cannot write the plot {}: the directory {} does not exist",
        path.display(),
        directory.display()
    );
    Ok(())
}

/// One sample, as the plot sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Point {
    /// Seconds since the first sample.
    pub(crate) at_s: f64,
    /// The half-width in µs, or `None` when the sample had no bound.
    pub(crate) half_width_us: Option<f64>,
    /// The status read, or `None` when that read failed.
    pub(crate) status: Option<ClockStatus>,
}

/// A change of status, marked by a vertical line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Change {
    /// Seconds since the first sample.
    pub(crate) at_s: f64,
    /// The status from then on.
    pub(crate) to: ClockStatus,
}

/// Everything drawn.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Picture {
    /// The caption: whose bound it is.
    pub(crate) title: String,
    /// Under the caption: where it was read (segment path, address).
    pub(crate) subtitle: String,
    /// The samples, in time order.
    pub(crate) points: Vec<Point>,
    /// The status changes.
    pub(crate) changes: Vec<Change>,
    /// The sampling interval, seconds: how far the last sample's shading reaches.
    pub(crate) interval_s: f64,
    /// Summary lines for the legend strip.
    pub(crate) notes: Vec<String>,
}

/// Draws `picture` and writes it to `path`, as SVG or PNG by its extension.
pub(crate) fn write(path: &Path, picture: &Picture) -> anyhow::Result<()> {
    let bytes = match Format::of(path) {
        Some(Format::Svg) => render_svg(picture)?.into_bytes(),
        Some(Format::Png) => render_png(picture)?,
        None => anyhow::bail!("{}: name the plot FILE.svg or FILE.png", path.display()),
    };
    std::fs::write(path, bytes).with_context(|| format!("cannot write the plot to {}", path.display()))
}

/// The SVG document of `picture`.
pub(crate) fn render_svg(picture: &Picture) -> anyhow::Result<String> {
    let mut svg = String::new();
    draw(SVGBackend::with_string(&mut svg, SIZE).into_drawing_area(), picture)?;
    Ok(svg)
}

/// The PNG file of `picture`.
pub(crate) fn render_png(picture: &Picture) -> anyhow::Result<Vec<u8>> {
    let (width, height) = SIZE;
    let mut pixels = vec![0_u8; usize::try_from(width.saturating_mul(height).saturating_mul(3))?];
    draw(TextBitmap::new(&mut pixels, SIZE)?.into_drawing_area(), picture)?;
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("cannot encode the plot as PNG")?;
    writer.write_image_data(&pixels).context("cannot encode the plot as PNG")?;
    writer.finish().context("cannot encode the plot as PNG")?;
    Ok(png)
}

/// The plotting library's error as ours.
fn draw_error(error: impl Display) -> anyhow::Error {
    anyhow!("drawing the plot failed: {error}")
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, picture: &Picture) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(draw_error)?;
    let (heading, body) = root.split_vertically(HEADING_HEIGHT);
    draw_heading(&heading, picture)?;
    let (plot_area, legend_area) = body.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    match y_axis(&picture.points) {
        YAxis::Log(range) => draw_chart(&plot_area, picture, range.clone().log_scale(), &YAxis::Log(range))?,
        YAxis::Linear(range) => draw_chart(&plot_area, picture, range.clone(), &YAxis::Linear(range))?,
    }
    draw_legend(&legend_area, picture)?;
    root.present().map_err(draw_error)
}

/// The chart: axes, no-bound shading, the status-coloured line, change markers.
fn draw_chart<DB, Y>(area: &DrawingArea<DB, Shift>, picture: &Picture, y_spec: Y, axis: &YAxis) -> anyhow::Result<()>
where
    DB: DrawingBackend,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let x = time_range(picture);
    let (y, y_desc) = match axis {
        YAxis::Log(y) => (y.clone(), "half-width (log scale)"),
        YAxis::Linear(y) => (y.clone(), "half-width"),
    };
    let mut chart = ChartBuilder::on(area)
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(x.clone(), y_spec)
        .map_err(draw_error)?;
    draw_mesh(&mut chart, "seconds since the first sample", y_desc).map_err(draw_error)?;

    for (from, to, status) in unbounded_stretches(&picture.points, picture.interval_s, x.end) {
        let shade = Rectangle::new([(from, y.start), (to, y.end)], status_colour(status).mix(0.15).filled());
        chart.draw_series(std::iter::once(shade)).map_err(draw_error)?;
    }
    for (status, run) in coloured_runs(&picture.points, y.start) {
        let colour = status_colour(status);
        if let [single] = run.as_slice() {
            // A lone bounded sample between gaps has no line to show it.
            chart.draw_series(std::iter::once(Circle::new(*single, 3, colour.filled()))).map_err(draw_error)?;
        }
        chart.draw_series(LineSeries::new(run, colour.stroke_width(2))).map_err(draw_error)?;
    }
    // Changes in the last third of the run get their label left of the line, so it stays on the plot.
    let label_left_from = x.start + (x.end - x.start) * 2.0 / 3.0;
    for (index, change) in picture.changes.iter().enumerate().filter(|(_, c)| c.at_s.is_finite()) {
        let colour = status_colour(Some(change.to));
        let line =
            PathElement::new(vec![(change.at_s, y.start), (change.at_s, y.end)], colour.mix(0.8).stroke_width(1));
        chart.draw_series(std::iter::once(line)).map_err(draw_error)?;
        if index >= LABELLED_CHANGES {
            continue;
        }
        let row = (index % LABEL_ROWS) as f64;
        let at_y = axis.at_fraction(0.985 - 0.06 * row);
        let (anchor, text) = if change.at_s >= label_left_from {
            (HPos::Right, format!("{} ", change.to))
        } else {
            (HPos::Left, format!(" {}", change.to))
        };
        let font = ("sans-serif", 15).into_font().color(&colour).pos(Pos::new(anchor, VPos::Top));
        chart.draw_series(std::iter::once(Text::new(text, (change.at_s, at_y), font))).map_err(draw_error)?;
    }
    Ok(())
}

/// The title, centred, and the subtitle under it in grey.
fn draw_heading<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, picture: &Picture) -> anyhow::Result<()> {
    let centre = i32::try_from(SIZE.0 / 2).unwrap_or(0);
    let title = ("sans-serif", 24).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
    area.draw(&Text::new(shorten(&picture.title, TITLE_CHARS), (centre, 12), title)).map_err(draw_error)?;
    let grey = RGBColor(0x44, 0x44, 0x44);
    let subtitle = ("sans-serif", 16).into_font().color(&grey).pos(Pos::new(HPos::Center, VPos::Top));
    area.draw(&Text::new(elide_middle(&picture.subtitle, SUBTITLE_CHARS), (centre, 46), subtitle))
        .map_err(draw_error)?;
    Ok(())
}

/// The key, in its own strip right of the plot so that it never hides a
/// line: a swatch per status seen, the change marker, then the notes.
fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, picture: &Picture) -> anyhow::Result<()> {
    const LINE: i32 = 24;
    let font = ("sans-serif", 16).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    let mut y = 30;
    for status in statuses_seen(&picture.points) {
        let colour = status_colour(status);
        let bounded = status.is_none_or(ClockStatus::is_bounded);
        if bounded {
            area.draw(&PathElement::new(vec![(8, y), (36, y)], colour.stroke_width(3))).map_err(draw_error)?;
        }
        if !bounded || status.is_none() {
            area.draw(&Rectangle::new([(8, y - 8), (36, y + 8)], colour.mix(0.15).filled())).map_err(draw_error)?;
        }
        let name = match status {
            Some(status) if status.is_bounded() => status.name().to_owned(),
            Some(status) => format!("{status}: no bound"),
            None => "status unknown".to_owned(),
        };
        area.draw(&Text::new(name, (44, y), font.clone())).map_err(draw_error)?;
        y += LINE;
    }
    if !picture.changes.is_empty() {
        area.draw(&PathElement::new(vec![(22, y - 9), (22, y + 9)], BLACK.mix(0.8).stroke_width(1)))
            .map_err(draw_error)?;
        area.draw(&Text::new("status change", (44, y), font.clone())).map_err(draw_error)?;
        y += LINE;
    }
    y += LINE / 2;
    for note in &picture.notes {
        area.draw(&Text::new(shorten(note, 26), (8, y), font.clone())).map_err(draw_error)?;
        y += LINE;
    }
    Ok(())
}

/// The colour of a status: bounded ones by how good the bound is, the
/// others by what went wrong.
fn status_colour(status: Option<ClockStatus>) -> RGBColor {
    match status {
        Some(ClockStatus::Synchronized) => RGBColor(0x2c, 0xa0, 0x2c),
        Some(ClockStatus::Degraded) => RGBColor(0xff, 0x7f, 0x0e),
        Some(ClockStatus::FreeRunning) => RGBColor(0x1f, 0x77, 0xb4),
        Some(ClockStatus::Unsynchronized) => RGBColor(0xd6, 0x27, 0x28),
        Some(ClockStatus::Disrupted) => RGBColor(0x94, 0x67, 0xbd),
        None => UNKNOWN_COLOUR,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    fn point(at_s: f64, half_width_us: Option<f64>, status: ClockStatus) -> Point {
        Point { at_s, half_width_us, status: Some(status) }
    }

    /// Synchronized at 20 µs, then degraded and growing, then no bound.
    fn picture() -> Picture {
        let mut points: Vec<Point> =
            (0..10).map(|s| point(f64::from(s), Some(20.0), ClockStatus::Synchronized)).collect();
        points.extend((10..20).map(|s| point(f64::from(s), Some(f64::from(s) * 30.0), ClockStatus::Degraded)));
        points.extend((20..25).map(|s| point(f64::from(s), None, ClockStatus::Unsynchronized)));
        let changes = vec![
            Change { at_s: 10.0, to: ClockStatus::Degraded },
            Change { at_s: 20.0, to: ClockStatus::Unsynchronized },
        ];
        Picture {
            title: "Half-width of the bound: tsod on a&b".to_owned(),
            subtitle: "segment /tmp/seg".to_owned(),
            points,
            changes,
            interval_s: 1.0,
            notes: vec!["p50 300.0 µs".to_owned()],
        }
    }

    #[test]
    fn svg_names_the_site_statuses_and_axes() {
        let svg = render_svg(&picture()).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{}", &svg[..svg.len().min(200)]);
        for needle in [
            "tsod on a&amp;b",
            "segment /tmp/seg",
            " degraded",
            "unsynchronized ",
            "unsynchronized: no bound",
            "status change",
            "p50 300.0 µs",
            "half-width (log scale)",
            "seconds since the first sample",
            "10 µs",
            "1 ms",
            "<polyline",
        ] {
            assert!(svg.contains(needle), "{needle:?} missing");
        }
    }

    #[test]
    fn png_is_a_png_of_the_set_size() {
        let png = render_png(&picture()).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let info = decoder.read_info().unwrap();
        assert_eq!((info.info().width, info.info().height), SIZE);
    }

    #[test]
    fn paths_choose_the_format() {
        assert!(parse_plot_path("run.svg").is_ok());
        assert!(parse_plot_path("dir/run.PNG").is_ok());
        for bad in ["run", "run.jpg", "run.svg.txt"] {
            assert!(parse_plot_path(bad).unwrap_err().contains("FILE.svg or FILE.png"), "{bad}");
        }
        assert!(check_destination(Path::new("run.svg")).is_ok());
        let missing = std::env::temp_dir().join(format!("tsbench-no-such-dir-{}", std::process::id())).join("a.svg");
        assert!(check_destination(&missing).unwrap_err().to_string().contains("does not exist"));
    }

    #[test]
    fn odd_input_still_draws() {
        let odd = Picture {
            title: String::new(),
            subtitle: "\u{1f570} <&>".to_owned(),
            points: vec![
                Point { at_s: f64::NAN, half_width_us: Some(5.0), status: None },
                Point { at_s: 0.0, half_width_us: Some(0.0), status: None },
                Point { at_s: 1.0, half_width_us: Some(f64::INFINITY), status: None },
                Point { at_s: 2.0, half_width_us: Some(-3.0), status: Some(ClockStatus::Synchronized) },
                Point { at_s: f64::INFINITY, half_width_us: None, status: None },
            ],
            changes: vec![Change { at_s: f64::NAN, to: ClockStatus::Disrupted }],
            interval_s: f64::NAN,
            notes: Vec::new(),
        };
        assert!(render_svg(&odd).is_ok());
        assert!(render_png(&odd).is_ok());
        assert!(render_svg(&Picture::default()).is_ok());
    }
}
