//! Remote mode of `tsbench now`: sequential `RemoteClock::now_at()` calls
//! to one tsod site over QUIC, each timed on its own, with the half-width
//! of each answer and the round trip the client measured, and a batch of
//! each baseline after every call (see the `now` module doc).

use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::report::{NowReport, NowSeries};
use super::{Baseline, BaselineSamples, REMOTE_MAX_NS, deadline};
use crate::clock::timer_nanos;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::report::{self, ErrorTally, Mode, RunHeader, Series};
use crate::site::{RemoteTarget, remote_error_kind};

/// Measures `RemoteClock::now_at()` against `target` until `plan` ends, at
/// most `rate` calls per second if given, on a current-thread tokio runtime
/// of its own.
pub(super) fn run(
    target: &RemoteTarget,
    plan: Plan,
    rate: Option<u32>,
    show_progress: bool,
) -> anyhow::Result<NowReport> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start a tokio runtime")?;
    runtime.block_on(measure(target, plan, rate, show_progress))
}

/// What the remote run measured.
#[derive(Debug)]
struct RemoteSamples {
    now: Series,
    half_width: Series,
    round_trip: Series,
    baselines: BaselineSamples,
    calls: u64,
    errors: ErrorTally,
}

async fn measure(
    target: &RemoteTarget,
    plan: Plan,
    rate: Option<u32>,
    show_progress: bool,
) -> anyhow::Result<NowReport> {
    let clock = target.connect().await?;

    let mut samples = RemoteSamples {
        now: Series::new(REMOTE_MAX_NS, 1)?,
        half_width: Series::new(REMOTE_MAX_NS, 1)?,
        round_trip: Series::new(REMOTE_MAX_NS, 1)?,
        baselines: BaselineSamples::new()?,
        calls: 0,
        errors: ErrorTally::default(),
    };
    let deadline = deadline(plan.duration())?;
    let mut progress = Progress::new(plan, show_progress);
    let started = Instant::now();
    let pace = rate.and_then(|per_second| Duration::from_secs(1).checked_div(per_second));
    let mut next_call = tokio::time::Instant::now();
    while plan.count().is_none_or(|count| samples.calls < count) {
        if let Some(interval) = pace {
            // Untimed: wait for the call's slot, then give the next one a
            // full interval from now, so a slow call never causes a burst.
            wait_until(next_call).await;
            next_call = tokio::time::Instant::now().checked_add(interval).unwrap_or(next_call);
        }
        let timer = || timer_nanos().context("cannot read the timer (CLOCK_MONOTONIC_RAW)");
        let start = timer()?;
        let answer = clock.now_at().await;
        let end = timer()?;
        samples.calls = samples.calls.saturating_add(1);
        match answer {
            Ok(now) => {
                samples.now.record(end.saturating_sub(start));
                samples.half_width.record_duration(now.interval.half_width());
                samples.round_trip.record_duration(now.round_trip);
            }
            Err(error) => samples.errors.add(&remote_error_kind(&error)),
        }
        samples.baselines.time_batch(Baseline::Realtime)?;
        let end = samples.baselines.time_batch(Baseline::Monotonic)?;
        progress.update(samples.calls);
        if deadline.is_some_and(|d| end >= d) {
            break;
        }
    }
    progress.finish();
    let elapsed = started.elapsed();

    let series = NowSeries {
        now: samples.now.summary(),
        clock_gettime_realtime: samples.baselines.realtime.summary(),
        clock_gettime_monotonic: samples.baselines.monotonic.summary(),
    };
    Ok(NowReport {
        run: RunHeader { command: "now", mode: Some(Mode::Remote), target: target.address.to_string(), address: None },
        threads: 1,
        batch: 1,
        rate,
        elapsed_s: report::round_to(elapsed.as_secs_f64(), 3),
        count: samples.calls,
        errors: samples.errors,
        ratio_now_to_realtime: report::median_ratio(&samples.now, &samples.baselines.realtime),
        series,
        half_width: Some(samples.half_width.summary()),
        round_trip: Some(samples.round_trip.summary()),
    })
}

/// Waits until `at`: on tokio's timer (whole milliseconds) for all but the
/// last millisecond, then yielding to the runtime (which keeps driving the
/// connection) until the instant has passed, so a pace finer than a
/// millisecond holds.
async fn wait_until(at: tokio::time::Instant) {
    if let Some(coarse) = at.checked_sub(Duration::from_millis(1)) {
        if coarse > tokio::time::Instant::now() {
            tokio::time::sleep_until(coarse).await;
        }
    }
    while tokio::time::Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;
    use crate::site::SiteAddress;
    use std::path::PathBuf;

    #[test]
    fn waits_keep_a_sub_millisecond_pace() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let started = Instant::now();
        runtime.block_on(async {
            for _ in 0..20 {
                wait_until(tokio::time::Instant::now() + Duration::from_micros(250)).await;
            }
        });
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(5), "{elapsed:?}");
        // Loose: the machine is shared; a tick per wait would take 20 ms or more.
        assert!(elapsed < Duration::from_millis(19), "a millisecond timer tick per wait would take 20 ms: {elapsed:?}");
    }

    #[test]
    fn an_unreachable_server_is_explained() {
        let address = SiteAddress::parse("127.0.0.1:9").unwrap();
        let ca = PathBuf::from("/nonexistent/ca.crt");
        let target = RemoteTarget::new("--remote", address, ca, Some("site-a".to_owned()), None).unwrap();
        let error = run(&target, Plan::new(Some(1), None, 1), None, false).err();
        let text = error.map_or_else(String::new, |e| format!("{e:#}"));
        assert!(text.contains("cannot connect to tsod at 127.0.0.1:9"), "{text}");
    }
}
