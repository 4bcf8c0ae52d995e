//! Local mode of `tsbench now`: `LocalClock::now()` from the shared-memory
//! segment, in batches interleaved with the baselines (see the `now` module
//! doc), on one or more threads that share one clock.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use tsod_client::LocalClock;
use tsod_proto::shm::SHM_PATH_ENV;
use tsod_shm::ClockId;

use super::report::{NowReport, NowSeries};
use super::{BATCH, BATCH_MAX_NS_PER_CALL, Baseline, BaselineSamples};
use crate::clock::timer_nanos;
use crate::plan::{Plan, batches_per_thread};
use crate::progress::Progress;
use crate::report::{self, ErrorTally, Mode, RunHeader, Series};
use crate::site::{self, clock_error_kind};

/// Untimed rounds each thread runs first, to fault in the mapping and warm
/// the caches and branch predictors.
const WARM_UP_ROUNDS: u32 = 16;
/// Rounds between two updates of the shared progress counter (so threads
/// rarely touch the same cache line).
const PROGRESS_EVERY: u64 = 256;
/// How often the main thread redraws the progress bar.
const PROGRESS_POLL: Duration = Duration::from_millis(100);

/// Measures `LocalClock::now()` on the segment at `segment` (default:
/// `$TSOD_SHM`, else `/run/tsod/segment`) with `threads` threads until `plan` ends.
pub(super) fn run(
    segment: Option<PathBuf>,
    threads: u32,
    plan: Plan,
    show_progress: bool,
) -> anyhow::Result<NowReport> {
    let path = segment.unwrap_or_else(site::default_segment);
    let clock = site::open_local(&path)?;
    if let Err(error) = clock.now() {
        anyhow::bail!(
            "LocalClock::now() fails on segment {}: {error}\n`tsod status` shows whether tsod is running and \
             synchronized; --segment PATH or {SHM_PATH_ENV} chooses the segment",
            path.display()
        );
    }

    let quotas: Vec<Option<u64>> = match plan.count() {
        Some(count) => batches_per_thread(count, BATCH, threads).into_iter().map(Some).collect(),
        None => (0..threads).map(|_| None).collect(),
    };
    let done = AtomicU64::new(0);
    let results: Vec<anyhow::Result<ThreadSamples>> = std::thread::scope(|scope| {
        let (clock, done) = (&clock, &done);
        let handles: Vec<_> =
            quotas.iter().map(|&quota| scope.spawn(move || measure(clock, quota, plan.duration(), done))).collect();
        let mut progress = Progress::new(plan, show_progress);
        if progress.enabled() {
            while !handles.iter().all(|h| h.is_finished()) {
                progress.update(done.load(Ordering::Relaxed));
                std::thread::sleep(PROGRESS_POLL);
            }
        }
        progress.finish();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a measuring thread panicked")).and_then(|r| r))
            .collect()
    });

    let mut total = ThreadSamples::new()?;
    for samples in results {
        total.merge(samples?)?;
    }
    let series = NowSeries {
        now: total.now.summary(),
        clock_gettime_realtime: total.baselines.realtime.summary(),
        clock_gettime_monotonic: total.baselines.monotonic.summary(),
    };
    Ok(NowReport {
        run: RunHeader { command: "now", mode: Some(Mode::Local), target: path.display().to_string(), address: None },
        threads,
        batch: BATCH,
        rate: None,
        elapsed_s: total.elapsed().map_or(0.0, |d| report::round_to(d.as_secs_f64(), 3)),
        count: total.calls,
        errors: total.errors,
        ratio_now_to_realtime: report::median_ratio(&total.now, &total.baselines.realtime),
        series,
        half_width: None,
        round_trip: None,
    })
}

/// What one thread measured.
#[derive(Debug)]
struct ThreadSamples {
    now: Series,
    baselines: BaselineSamples,
    /// `now()` calls made (timed batches only, not the warm-up).
    calls: u64,
    errors: ErrorTally,
    /// Timer readings at the start of the first timed batch and the end of
    /// the last, if any.
    span: Option<(u64, u64)>,
}

impl ThreadSamples {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            now: Series::new(BATCH_MAX_NS_PER_CALL, BATCH)?,
            baselines: BaselineSamples::new()?,
            calls: 0,
            errors: ErrorTally::default(),
            span: None,
        })
    }

    fn merge(&mut self, other: Self) -> anyhow::Result<()> {
        self.now.merge(&other.now).context("now()")?;
        self.baselines.merge(&other.baselines)?;
        self.calls = self.calls.saturating_add(other.calls);
        self.errors.merge(other.errors);
        self.span = match (self.span, other.span) {
            (Some((a0, a1)), Some((b0, b1))) => Some((a0.min(b0), a1.max(b1))),
            (mine, theirs) => mine.or(theirs),
        };
        Ok(())
    }

    /// Wall time from the first timed batch of any thread to the end of the
    /// last (thread start-up and warm-up left out).
    fn elapsed(&self) -> Option<Duration> {
        self.span.map(|(first, last)| Duration::from_nanos(last.saturating_sub(first)))
    }

    /// Times one batch of `now()`; records it unless a call failed.
    /// Returns the timer reading at its end.
    fn time_now_batch(&mut self, clock: &LocalClock) -> anyhow::Result<u64> {
        let errors_before = self.errors.total;
        let (elapsed, end) = time_now_batch(clock, &mut self.errors)?;
        self.calls = self.calls.saturating_add(BATCH);
        if self.errors.total == errors_before {
            self.now.record(elapsed);
        }
        Ok(end)
    }
}

/// One thread's measurement: rounds of one batch per series, in rotating
/// order, until `quota` rounds are done or `duration` has passed since the
/// warm-up.
fn measure(
    clock: &LocalClock,
    quota: Option<u64>,
    duration: Option<Duration>,
    done: &AtomicU64,
) -> anyhow::Result<ThreadSamples> {
    let mut samples = ThreadSamples::new()?;
    warm_up(clock);
    let first = timer_nanos().context("cannot read the timer (CLOCK_MONOTONIC_RAW)")?;
    let deadline = duration.map(|d| first.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)));
    let mut rounds: u64 = 0;
    let mut unreported: u64 = 0;
    while quota.is_none_or(|q| rounds < q) {
        let mut end = first;
        for step in 0..3 {
            end = match rounds.wrapping_add(step) % 3 {
                0 => samples.time_now_batch(clock)?,
                1 => samples.baselines.time_batch(Baseline::Realtime)?,
                _ => samples.baselines.time_batch(Baseline::Monotonic)?,
            };
        }
        rounds = rounds.saturating_add(1);
        unreported = unreported.saturating_add(1);
        if unreported == PROGRESS_EVERY {
            done.fetch_add(unreported.saturating_mul(BATCH), Ordering::Relaxed);
            unreported = 0;
        }
        samples.span = Some((first, end));
        if deadline.is_some_and(|d| end >= d) {
            break;
        }
    }
    done.fetch_add(unreported.saturating_mul(BATCH), Ordering::Relaxed);
    Ok(samples)
}

/// Untimed calls of everything measured, results ignored.
fn warm_up(clock: &LocalClock) {
    for _ in 0..WARM_UP_ROUNDS {
        let mut ignored = ErrorTally::default();
        let _ = time_now_batch(clock, &mut ignored);
        let _ = super::time_baseline_batch(ClockId::Realtime);
        let _ = super::time_baseline_batch(ClockId::Monotonic);
    }
}

/// [`BATCH`] calls of `clock.now()` between two timer reads: the elapsed
/// nanoseconds and the timer at the end. Failures go to `errors`.
#[inline(never)]
fn time_now_batch(clock: &LocalClock, errors: &mut ErrorTally) -> anyhow::Result<(u64, u64)> {
    let start = timer_nanos().context("cannot read the timer (CLOCK_MONOTONIC_RAW)")?;
    for _ in 0..BATCH {
        if let Err(error) = black_box(clock.now()) {
            errors.add(clock_error_kind(&error));
        }
    }
    let end = timer_nanos().context("cannot read the timer (CLOCK_MONOTONIC_RAW)")?;
    Ok((end.saturating_sub(start), end))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    #[test]
    fn threads_merge_into_one_span() {
        let mut a = ThreadSamples::new().unwrap();
        let mut b = ThreadSamples::new().unwrap();
        let idle = ThreadSamples::new().unwrap();
        (a.span, a.calls) = (Some((1_000, 5_000)), 64);
        (b.span, b.calls) = (Some((2_000, 9_000)), 128);
        a.merge(b).unwrap();
        a.merge(idle).unwrap();
        assert_eq!(a.span, Some((1_000, 9_000)));
        assert_eq!(a.elapsed(), Some(Duration::from_nanos(8_000)));
        assert_eq!(a.calls, 192);
        assert_eq!(ThreadSamples::new().unwrap().elapsed(), None);
    }

    #[test]
    fn a_missing_segment_is_explained() {
        let path = std::env::temp_dir().join(format!("tsbench-no-such-segment-{}", std::process::id()));
        let error = run(Some(path.clone()), 1, Plan::new(Some(64), None, 64), false).err();
        let text = error.map_or_else(String::new, |e| format!("{e:#}"));
        assert!(text.contains("is tsod running?") && text.contains(&path.display().to_string()), "{text}");
    }
}
