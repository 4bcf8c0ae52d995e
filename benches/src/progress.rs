//! A progress bar on stderr for long runs. It appears only once a run has
//! lasted [`SHOW_AFTER`], only on a terminal, and never with `--json`, so
//! short runs and scripts see nothing of it.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::plan::Plan;

/// How long a run goes before the bar appears.
pub(crate) const SHOW_AFTER: Duration = Duration::from_secs(2);

/// Steps of the bar (it shows the fraction of the plan done).
const STEPS: u64 = 1000;

/// The progress of one run against its [`Plan`].
#[derive(Debug)]
pub(crate) struct Progress {
    plan: Plan,
    enabled: bool,
    started: Instant,
    bar: Option<ProgressBar>,
    /// What `done` counts, for the message (`calls`, `samples`).
    unit: &'static str,
}

impl Progress {
    /// Progress of a run starting now; shown only if `wanted` (not `--json`)
    /// and stderr is a terminal.
    pub(crate) fn new(plan: Plan, wanted: bool) -> Self {
        let enabled = wanted && std::io::stderr().is_terminal();
        Self { plan, enabled, started: Instant::now(), bar: None, unit: "calls" }
    }

    /// The same progress, counting `unit` (`samples`) rather than calls.
    pub(crate) fn counting(mut self, unit: &'static str) -> Self {
        self.unit = unit;
        self
    }

    /// Whether a bar may be shown at all (worth polling for).
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Reports `done` calls so far; cheap when nothing is shown.
    pub(crate) fn update(&mut self, done: u64) {
        if !self.enabled {
            return;
        }
        let elapsed = self.started.elapsed();
        if self.bar.is_none() && elapsed >= SHOW_AFTER {
            self.bar = Some(new_bar());
        }
        if let Some(bar) = &self.bar {
            let fraction = self.plan.fraction_done(done, elapsed);
            bar.set_position(position(fraction));
            bar.set_message(format!("{} s, {done} {}", elapsed.as_secs(), self.unit));
        }
    }

    /// Removes the bar, if shown, before the report is printed.
    pub(crate) fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

fn new_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(STEPS), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("[{wide_bar}] {percent:>3}% {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// The bar position for a fraction in 0..=1.
fn position(fraction: f64) -> u64 {
    let steps = (fraction.clamp(0.0, 1.0) * STEPS as f64).round();
    // In 0..=STEPS after the clamp, so the conversion is exact.
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "clamped to 0..=STEPS above")]
    let steps = steps as u64;
    steps.min(STEPS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_stay_on_the_bar() {
        assert_eq!(position(0.0), 0);
        assert_eq!(position(0.5), 500);
        assert_eq!(position(1.0), STEPS);
        assert_eq!(position(7.0), STEPS);
        assert_eq!(position(-1.0), 0);
        assert_eq!(position(f64::NAN), 0);
    }

    #[test]
    fn nothing_shows_when_not_wanted() {
        let mut progress = Progress::new(Plan::new(Some(10), None, 10), false);
        assert!(!progress.enabled());
        progress.update(5);
        assert!(progress.bar.is_none());
    }
}
