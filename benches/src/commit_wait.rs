//! `tsbench commit-wait`: how long a Spanner-style commit-wait lasts on a
//! tsod clock, and how late it notices that it may return.
//!
//! # Method
//!
//! One `HybridClock` on the local segment (`--local`) or on a remote site
//! (`--site`, through `hlc::RemoteSource`). Each transaction, one after the
//! other, takes `ts = commit_timestamp()` (at or after the current
//! `latest`) and waits until `earliest` has passed it:
//!
//! * **local**: `commit_wait_blocking(ts)` on this thread (sleeps, then
//!   polls within 100 µs of the end);
//! * **remote**: `refresh()` first, as a transaction would before stamping,
//!   then the async `commit_wait(ts)` on a current-thread tokio runtime
//!   (sleeps, then polls with `yield_now` within 2 ms of the end).
//!
//! Each finished wait records `waited`, `overshoot()` and the half-width of
//! the interval that ended it; a wait lasts about twice the half-width. A
//! failed transaction is counted by kind and the run goes on; the run fails
//! after printing its report if more than 1 % failed. The JSON fields are
//! documented in `commit_wait/report.rs`.

mod report;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use tsod_client::LocalClock;
use tsod_client::hlc::{CommitWait, HybridClock, RemoteSource};

use crate::plan::{self, Plan};
use crate::progress::Progress;
use crate::report::{ErrorTally, Mode, RunHeader, Series, round_to};
use crate::site::{self, ClockArgs, ClockTarget, RemoteTarget};
pub(crate) use report::CommitWaitReport;

/// Transactions when neither `--count` nor `--duration` is given.
const DEFAULT_COUNT: u64 = 1_000;
/// Largest duration the histograms record: 1 hour (longer ones count as that).
const MAX_NS: u64 = 3_600_000_000_000;

/// Options of `tsbench commit-wait`.
#[derive(Debug, clap::Args)]
pub(crate) struct CommitWaitArgs {
    /// Which clock: `--local` or `--site` and how to trust it.
    #[command(flatten)]
    pub(crate) clock: ClockArgs,
    /// Transactions to run. Default: 1000; unlimited when only --duration
    /// is given.
    #[arg(long, value_name = "N", value_parser = plan::parse_count)]
    count: Option<u64>,
    /// Stop starting transactions after this long (e.g. 10s), or after
    /// --count, whichever comes first.
    #[arg(long, value_name = "D", value_parser = plan::parse_duration)]
    duration: Option<Duration>,
    /// Print one JSON object (fields documented in tsbench's
    /// commit_wait/report.rs) instead of a table; no progress bar.
    #[arg(long)]
    json: bool,
}

/// Runs `tsbench commit-wait` and prints its report; fails if the clock
/// cannot be opened, or after printing if more than 1 % of the
/// transactions failed.
pub(crate) fn run(args: &CommitWaitArgs) -> anyhow::Result<()> {
    let report = measure(args)?;
    crate::report::print(&report, args.json)?;
    if report.errors.over_one_percent_of(report.count) {
        anyhow::bail!(
            "{} of {} transactions failed, more than 1% ({}); the figures above are not trustworthy",
            report.errors.total,
            report.count,
            report.errors.kinds_text()
        );
    }
    Ok(())
}

/// Runs the transactions as `run` does and returns the report without
/// printing it (for `tsbench compare`); fails only if the clock cannot be
/// opened.
pub(crate) fn measure(args: &CommitWaitArgs) -> anyhow::Result<CommitWaitReport> {
    let plan = Plan::new(args.count, args.duration, DEFAULT_COUNT);
    let mut progress = Progress::new(plan, !args.json).counting("waits");
    let report = match args.clock.target()? {
        ClockTarget::Remote(target) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start a tokio runtime")?;
            runtime.block_on(remote(&target, plan, &mut progress))?
        }
        ClockTarget::Local(path) => local(site::open_local(&path)?, path.display().to_string(), plan, &mut progress)?,
    };
    progress.finish();
    Ok(report)
}

/// What a run measured, transaction by transaction.
#[derive(Debug)]
struct Waits {
    started: Instant,
    count: u64,
    reads: u64,
    waited: Series,
    overshoot: Series,
    half_width: Series,
    errors: ErrorTally,
}

impl Waits {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            started: Instant::now(),
            count: 0,
            reads: 0,
            waited: Series::new(MAX_NS, 1)?,
            overshoot: Series::new(MAX_NS, 1)?,
            half_width: Series::new(MAX_NS, 1)?,
            errors: ErrorTally::default(),
        })
    }

    /// Whether another transaction may start under `plan`.
    fn more(&self, plan: Plan) -> bool {
        plan.count().is_none_or(|count| self.count < count)
            && plan.duration().is_none_or(|duration| self.started.elapsed() < duration)
    }

    /// Records one transaction's outcome: a finished wait, or the kind of failure.
    fn record(&mut self, outcome: Result<CommitWait, String>, progress: &mut Progress) {
        self.count = self.count.saturating_add(1);
        match outcome {
            Ok(wait) => {
                self.reads = self.reads.saturating_add(u64::from(wait.reads));
                self.waited.record_duration(wait.waited);
                self.overshoot.record_duration(wait.overshoot());
                self.half_width.record_duration(wait.interval.half_width());
            }
            Err(kind) => self.errors.add(&kind),
        }
        progress.update(self.count);
    }

    fn report(self, mode: Mode, target: String, address: Option<String>) -> CommitWaitReport {
        CommitWaitReport {
            run: RunHeader { command: "commit-wait", mode: Some(mode), target, address },
            elapsed_s: round_to(self.started.elapsed().as_secs_f64(), 3),
            count: self.count,
            waits: self.waited.samples(),
            errors: self.errors,
            reads: self.reads,
            waited: self.waited.summary(),
            overshoot: self.overshoot.summary(),
            half_width: self.half_width.summary(),
        }
    }
}

/// Local mode: blocking commit-waits on the segment.
fn local(clock: LocalClock, target: String, plan: Plan, progress: &mut Progress) -> anyhow::Result<CommitWaitReport> {
    let hlc = HybridClock::new(clock);
    let kind = |e: &_| site::clock_error_kind(e).to_owned();
    let mut waits = Waits::new()?;
    while waits.more(plan) {
        let outcome = hlc
            .commit_timestamp()
            .and_then(|ts| hlc.commit_wait_blocking(ts))
            .map_err(|error| site::hlc_error_kind(&error, kind));
        waits.record(outcome, progress);
    }
    Ok(waits.report(Mode::Local, target, None))
}

/// Remote mode: refresh, then an async commit-wait, per transaction.
async fn remote(target: &RemoteTarget, plan: Plan, progress: &mut Progress) -> anyhow::Result<CommitWaitReport> {
    let clock = target.connect().await?;
    let address = clock.addr().to_string();
    let hlc = HybridClock::new(RemoteSource::new(clock));
    let mut waits = Waits::new()?;
    while waits.more(plan) {
        let outcome = match hlc.source().refresh().await {
            Err(error) => Err(site::remote_error_kind(&error)),
            Ok(_) => match hlc.commit_timestamp() {
                Ok(ts) => hlc.commit_wait(ts).await,
                Err(error) => Err(error),
            }
            .map_err(|error| site::hlc_error_kind(&error, site::remote_source_error_kind)),
        };
        waits.record(outcome, progress);
    }
    Ok(waits.report(Mode::Remote, target.address.to_string(), Some(address)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;
    use crate::cli::FromWords as _;

    #[test]
    fn options_want_one_clock_and_a_positive_count() {
        let local = CommitWaitArgs::from_words(&["--local", "--segment", "/tmp/x", "--count", "50", "--json"]).unwrap();
        assert!(local.clock.local && local.json);
        assert_eq!(local.count, Some(50));
        let remote =
            CommitWaitArgs::from_words(&["--site", "127.0.0.1:4460", "--ca", "ca.crt", "--duration", "2s"]).unwrap();
        assert_eq!(remote.duration, Some(Duration::from_secs(2)));
        assert!(CommitWaitArgs::from_words(&[]).is_err(), "--local or --site is required");
        assert!(CommitWaitArgs::from_words(&["--local", "--site", "127.0.0.1:4460", "--ca", "c"]).is_err(), "not both");
        assert!(CommitWaitArgs::from_words(&["--site", "127.0.0.1:4460"]).is_err(), "--site needs --ca");
        assert!(CommitWaitArgs::from_words(&["--segment", "/tmp/x"]).is_err(), "--segment needs --local");
        assert!(CommitWaitArgs::from_words(&["--local", "--count", "0"]).is_err());
    }

    #[test]
    fn waits_stop_at_the_count_or_the_duration() {
        let mut waits = Waits::new().unwrap();
        let mut progress = Progress::new(Plan::new(Some(2), None, 0), false);
        assert!(waits.more(Plan::new(Some(2), None, 0)));
        waits.record(Err("stale".to_owned()), &mut progress);
        waits.record(Err("stale".to_owned()), &mut progress);
        assert!(!waits.more(Plan::new(Some(2), None, 0)));
        assert!(!waits.more(Plan::new(None, Some(Duration::from_nanos(1)), 0)));
        let report = waits.report(Mode::Local, "x".to_owned(), None);
        assert_eq!((report.count, report.waits, report.errors.total), (2, 0, 2));
    }
}
