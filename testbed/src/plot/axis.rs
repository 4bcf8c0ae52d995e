//! What every half-width plot in the workspace shares (the testbed's
//! scenario plot here, `tsbench uncertainty --plot` in tsod-bench): the
//! mesh (seconds across, the half-width in µs up, tick labels in the unit
//! that reads best), where a fraction of a log axis lies, and texts cut to
//! fit. Pure functions apart from [`draw_mesh`], which only draws.

use plotters::chart::ChartContext;
use plotters::coord::cartesian::Cartesian2d;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::{DrawingBackend, IntoFont};

/// Draws the chart's mesh: `x_desc` under seconds, `y_desc` beside
/// half-widths given in µs, and their tick labels ([`axis_label`]).
pub fn draw_mesh<DB, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    x_desc: &str,
    y_desc: &str,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 16).into_font())
        .axis_desc_style(("sans-serif", 17).into_font())
        .x_label_formatter(&|seconds| format!("{}", (seconds * 100.0).round() / 100.0))
        .y_label_formatter(&|us| axis_label(*us))
        .draw()
}

/// A y-axis tick, given in µs, in the unit that reads best: `10 µs`, `1 ms`, `2 s`.
pub fn axis_label(us: f64) -> String {
    let (value, unit) = if us >= 1e6 {
        (us / 1e6, "s")
    } else if us >= 1e3 {
        (us / 1e3, "ms")
    } else {
        (us, "µs")
    };
    // Ticks are round numbers: rounding to 3 decimals hides float noise.
    format!("{} {unit}", (value * 1000.0).round() / 1000.0)
}

/// The value a `fraction` of the way from `low` to `high` on a log axis.
pub fn log_lerp(low: f64, high: f64, fraction: f64) -> f64 {
    10_f64.powf(low.log10() + (high.log10() - low.log10()) * fraction)
}

/// `text` cut to at most `chars` characters, the last `…` when cut.
pub fn shorten(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_fractions() {
        assert_eq!(axis_label(10.0), "10 µs");
        assert_eq!(axis_label(1_000.0), "1 ms");
        assert_eq!(axis_label(300_000.000_000_1), "300 ms");
        assert_eq!(axis_label(2e6), "2 s");
        assert!((log_lerp(10.0, 1000.0, 0.5) - 100.0).abs() < 1e-9);
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("ü", 1), "ü");
    }
}
