//! [`Widening`]: how far one site's bound widened around an event, and for
//! how long.
//!
//! * Its **level** before: the widest half-width from [`BEFORE_S`] to
//!   [`LEAD_S`] before the event (from the previous event on, if that is
//!   nearer; if nothing is left, from the previous event to this one). The
//!   last [`LEAD_S`] are left out because an effect may begin just before
//!   its event: an inserted leap second makes POSIX UTC ambiguous for the
//!   whole second before the day ends.
//! * Its **widest** half-width from [`LEAD_S`] before the event (not before
//!   the previous event) to the next event.
//! * When it stood **above** [`ELEVATED_FACTOR`] × its level (or had no
//!   bound) in that span: from the first such reading to the last, in
//!   seconds from the event, and whether it still did at the span's end.

use serde::Serialize;

use crate::checker::{Reading, SiteRecord};

/// How long before an event its site's level is measured from (s).
pub const BEFORE_S: f64 = 10.0;

/// How long before an event its effect is looked for (s).
pub const LEAD_S: f64 = 2.0;

/// A half-width above this many times its level counts as widened.
pub const ELEVATED_FACTOR: f64 = 2.0;

/// How one site's bound widened around an event (half-widths in µs, times
/// in seconds from the event).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Widening {
    /// The site.
    pub site: String,
    /// Its widest half-width before the event (`None`: no bound then).
    pub before_us: Option<f64>,
    /// Its widest half-width from [`LEAD_S`] before the event to the next event.
    pub max_us: Option<f64>,
    /// Its first reading in that span above [`ELEVATED_FACTOR`] ×
    /// `before_us` or without a bound (`None`: none, or no level before).
    pub elevated_from_s: Option<f64>,
    /// Its last such reading.
    pub elevated_to_s: Option<f64>,
    /// Its last reading of the span was such a reading.
    pub elevated_at_end: bool,
}

/// `site`'s [`Widening`] around an event at `at` (s), the previous event
/// being at `previous` and the next at `next`.
pub fn widening(site: &SiteRecord, previous: f64, at: f64, next: f64) -> Widening {
    let us = |d: std::time::Duration| d.as_secs_f64() * 1e6;
    let (level_from, level_to) = (previous.max(at - BEFORE_S), at - LEAD_S);
    let level = if level_from < level_to {
        site.half_width_percentiles(level_from, level_to)
    } else {
        site.half_width_percentiles(previous, at)
    };
    let before_us = level.map(|p| us(p.2));
    let from = previous.max(at - LEAD_S);
    let max_us = site.half_width_percentiles(from, next).map(|p| us(p.2));
    let span: Vec<(f64, Option<f64>)> = site
        .readings
        .iter()
        .filter(|(t, _)| *t >= from && *t < next)
        .map(|(t, r)| match r {
            Reading::True(w) | Reading::False(w) => (*t, Some(us(*w))),
            Reading::NoBound => (*t, None),
        })
        .collect();
    let Some(level) = before_us else {
        return Widening {
            site: site.name.clone(),
            before_us,
            max_us,
            elevated_from_s: None,
            elevated_to_s: None,
            elevated_at_end: false,
        };
    };
    let above = |w: &Option<f64>| w.is_none_or(|w| w > level * ELEVATED_FACTOR);
    let first = span.iter().find(|(_, w)| above(w)).map(|(t, _)| t - at);
    let last = span.iter().rev().find(|(_, w)| above(w)).map(|(t, _)| t - at);
    Widening {
        site: site.name.clone(),
        before_us,
        max_us,
        elevated_from_s: first,
        elevated_to_s: last,
        elevated_at_end: span.last().is_some_and(|(_, w)| above(w)),
    }
}

impl Widening {
    /// `xa 900.0 → 7500.0 (above 2× from -0.95 s to +1.10 s)`, for the text report.
    pub fn describe(&self) -> String {
        let number = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
        let elevated = match (self.elevated_from_s, self.elevated_to_s, self.elevated_at_end) {
            (Some(from), Some(to), true) => format!("above {ELEVATED_FACTOR}× from {from:+.2} s, still at {to:+.2} s"),
            (Some(from), Some(to), false) => format!("above {ELEVATED_FACTOR}× from {from:+.2} s to {to:+.2} s"),
            _ if self.before_us.is_some() => format!("never above {ELEVATED_FACTOR}×"),
            _ => "no level before".to_owned(),
        };
        format!("{} {} → {} ({elevated})", self.site, number(self.before_us), number(self.max_us))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::checker::Checker;

    #[test]
    fn widening_measures_the_level_before_the_peak_and_when_it_stood_above() {
        let mut checker = Checker::new(["a", "b"].map(|n| (n.to_owned(), std::path::PathBuf::from("/nonexistent"))));
        let site = &mut checker.sites[0];
        // 100 µs, but 150 µs at 12 s (the level: 150); 2 ms from 19 s to
        // 23 s, no bound at 23.5 s, 250 µs (below 2 × 150) from 24 s, 400 µs
        // at 27 s, then 100 µs.
        for tenth in 0..400_u32 {
            let t = f64::from(tenth) / 10.0;
            let us = match t {
                t if (12.0..12.1).contains(&t) => 150,
                t if t < 19.0 => 100,
                t if t < 23.0 => 2_000,
                t if (23.5..23.6).contains(&t) => 0,
                t if (27.0..27.1).contains(&t) => 400,
                t if t < 30.0 => 250,
                _ => 100,
            };
            let reading = if us == 0 { Reading::NoBound } else { Reading::True(Duration::from_micros(us)) };
            site.readings.push((t, reading));
        }
        let site = &checker.sites[0];
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
        // The effect begins a second before the event at 20 s.
        let w = widening(site, f64::NEG_INFINITY, 20.0, 40.0);
        assert_eq!((w.before_us, w.max_us), (Some(150.0), Some(2_000.0)));
        assert!(close(w.elevated_from_s, -1.0) && close(w.elevated_to_s, 7.0), "{w:?}");
        assert!(!w.elevated_at_end);
        // Cut at 23 s: still above at the end.
        let w = widening(site, 10.0, 20.0, 23.0);
        assert!(w.elevated_at_end && close(w.elevated_to_s, 2.9), "{w:?}");
        // A previous event 1 s before: the level is the span since it.
        let w = widening(site, 21.0, 22.0, 23.0);
        assert_eq!((w.before_us, w.elevated_from_s), (Some(2_000.0), None));
        // No bound before: no level to compare with.
        let w = widening(&checker.sites[1], f64::NEG_INFINITY, 5.0, 10.0);
        assert_eq!((w.before_us, w.max_us, w.elevated_from_s), (None, None, None));
        assert_eq!(w.describe(), "b - → - (no level before)");
        let w = widening(site, f64::NEG_INFINITY, 20.0, 40.0);
        assert_eq!(w.describe(), "a 150.0 → 2000.0 (above 2× from -1.00 s to +7.00 s)");
        let w = widening(site, 10.0, 20.0, 23.0);
        assert_eq!(w.describe(), "a 150.0 → 2000.0 (above 2× from -1.00 s, still at +2.90 s)");
        let w = widening(site, f64::NEG_INFINITY, 35.0, 40.0);
        assert_eq!(w.describe(), "a 400.0 → 100.0 (never above 2×)");
    }
}
