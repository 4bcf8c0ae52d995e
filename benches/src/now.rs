//! `tsbench now`: what a bounded timestamp costs an application, against
//! what a bare clock read costs, measured in the same run.
//!
//! # Method
//!
//! * **Local** (`local.rs`): one `CLOCK_MONOTONIC_RAW` read before and one
//!   after a batch of [`BATCH`] calls give one sample, since a single call
//!   (≈ 30–100 ns) is shorter than the timer's resolution and cost; the
//!   summary divides by [`BATCH`] (`crate::report::Series`), so percentiles are
//!   of per-call averages over a batch. One batch of `LocalClock::now()` (the
//!   default read, with the SPEC.md §5.6 suspend check), one of
//!   `clock_gettime(CLOCK_REALTIME)` and one of `clock_gettime(CLOCK_MONOTONIC)`
//!   make one round, in an order that rotates every round, so a change of
//!   machine speed (another process, frequency scaling) hits all three
//!   alike. A sample includes 1/[`BATCH`] of a timer read (under 1 ns). A
//!   batch in which `now()` failed is left out of the `now` series (its
//!   error path would distort it); the failures are counted by kind.
//! * **Remote** (`remote.rs`): each `RemoteClock::now_at()` is timed on its
//!   own, sequentially on a current-thread tokio runtime; after each call,
//!   one batch of each baseline is timed as above, so the ratio still
//!   compares figures of the same run.
//!
//! A run stops after `--count` calls or `--duration`, whichever comes first,
//! and fails (after printing its report) if more than 1 % of the calls failed.
//! The report and its JSON fields: `now/report.rs`.

mod local;
mod remote;
mod report;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use tsod_shm::ClockId;

use crate::clock::{clock_gettime, timer_nanos};
use crate::plan::{self, Plan};
use crate::report::Series;
use crate::site::{RemoteTarget, SiteAddress};
pub(crate) use report::NowReport;

/// Calls per timed sample in local mode (and per baseline sample in both).
pub(crate) const BATCH: u64 = 64;
/// Calls of `LocalClock::now()` when neither `--count` nor `--duration` is given.
const DEFAULT_LOCAL_COUNT: u64 = 1_000_000;
/// Calls of `RemoteClock::now_at()` when neither `--count` nor `--duration` is given.
const DEFAULT_REMOTE_COUNT: u64 = 10_000;
/// Largest per-call average a batch can record: 1 s (anything near it
/// means the machine stalled).
const BATCH_MAX_NS_PER_CALL: u64 = 1_000_000_000;
/// Largest remote latency, half-width or round trip recorded: 1 hour.
const REMOTE_MAX_NS: u64 = 3_600_000_000_000;

/// Options of `tsbench now`.
#[derive(Debug, clap::Args)]
pub(crate) struct NowArgs {
    /// Calls of now() to make in all (shared among the threads). Default:
    /// 1000000 local, 10000 remote; unlimited when only --duration is given.
    /// Local runs round it up to whole batches of 64.
    #[arg(long, value_name = "N", value_parser = plan::parse_count)]
    count: Option<u64>,
    /// Stop after this long (e.g. 10s, 500ms, 2m), or after --count calls,
    /// whichever comes first.
    #[arg(long, value_name = "D", value_parser = plan::parse_duration)]
    duration: Option<Duration>,
    /// Local mode: measuring threads, sharing one LocalClock; each keeps its
    /// own histograms, merged at the end.
    #[arg(long, value_name = "N", default_value_t = 1, conflicts_with = "remote",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: u32,
    /// Local mode: the segment file. Default: $TSOD_SHM, else /run/tsod/segment
    /// (as LocalClock::open).
    #[arg(long, value_name = "PATH", conflicts_with = "remote")]
    segment: Option<PathBuf>,
    /// Remote mode: the tsod site's tsod-client/1 address, IP:PORT or
    /// HOST:PORT (every address the name resolves to is tried in turn).
    #[arg(long, value_name = "ADDR", requires = "ca", value_parser = SiteAddress::parse)]
    remote: Option<SiteAddress>,
    /// Remote mode: PEM file of the cluster CA (ca.crt from `tsod cluster init`).
    #[arg(long, value_name = "FILE", requires = "remote")]
    ca: Option<PathBuf>,
    /// Remote mode: the site's name as its certificate carries it (e.g.
    /// bj-a). Default: the host of a --remote HOST:PORT; required with an
    /// IP:PORT. An IP address given here is matched against the
    /// certificate's IP addresses instead.
    #[arg(long, value_name = "SITE", requires = "remote")]
    server_name: Option<String>,
    /// Remote mode: at most this many calls per second (the server refuses
    /// more than its `[clients] max-requests-per-second`, default 1000, per
    /// connection). Default: one call right after the other.
    #[arg(long, value_name = "PER_SECOND", requires = "remote",
          value_parser = clap::value_parser!(u32).range(1..))]
    rate: Option<u32>,
    /// Remote mode: client certificate chain (PEM), for servers that require
    /// mutual TLS; needs --key.
    #[arg(long, value_name = "FILE", requires_all = ["remote", "key"])]
    cert: Option<PathBuf>,
    /// Remote mode: the client certificate's private key (PEM); needs --cert.
    #[arg(long, value_name = "FILE", requires_all = ["remote", "cert"])]
    key: Option<PathBuf>,
    /// Print one JSON object (fields documented in tsbench's now/report.rs)
    /// instead of a table; no progress bar.
    #[arg(long)]
    json: bool,
}

/// Measures as `run` does and returns the report without printing or
/// judging it (for `tsbench compare`); fails if the clock cannot be used.
pub(crate) fn measure(args: &NowArgs) -> anyhow::Result<NowReport> {
    let show_progress = !args.json;
    Ok(match (&args.remote, &args.ca) {
        (Some(address), Some(ca)) => {
            let plan = Plan::new(args.count, args.duration, DEFAULT_REMOTE_COUNT);
            let target = RemoteTarget::new(
                "--remote",
                address.clone(),
                ca.clone(),
                args.server_name.clone(),
                args.cert.clone().zip(args.key.clone()),
            )?;
            remote::run(&target, plan, args.rate, show_progress)?
        }
        (Some(_), None) => anyhow::bail!("--remote needs --ca FILE"),
        (None, _) => {
            let plan = Plan::new(args.count, args.duration, DEFAULT_LOCAL_COUNT);
            local::run(args.segment.clone(), args.threads, plan, show_progress)?
        }
    })
}

/// Runs `tsbench now` and prints its report; fails if the clock cannot be
/// used at all, or after printing if more than 1 % of the calls failed.
pub(crate) fn run(args: &NowArgs) -> anyhow::Result<()> {
    let report = measure(args)?;
    crate::report::print(&report, args.json)?;
    if report.too_many_errors() {
        let hint = if report.errors.by_kind.contains_key("rate-limited") {
            "; the server limits requests per connection ([clients] max-requests-per-second, default 1000): \
             pass --rate below its limit"
        } else {
            ""
        };
        anyhow::bail!(
            "{} of {} now() calls failed, more than 1% ({}); the figures above are not trustworthy{hint}",
            report.errors.total,
            report.count,
            report.errors.kinds_text()
        );
    }
    Ok(())
}

/// The two bare clock reads `now()` is compared against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Baseline {
    Realtime,
    Monotonic,
}

impl Baseline {
    fn clock_id(self) -> ClockId {
        match self {
            Self::Realtime => ClockId::Realtime,
            Self::Monotonic => ClockId::Monotonic,
        }
    }
}

/// The two baseline series, in batches of [`BATCH`].
#[derive(Debug)]
struct BaselineSamples {
    realtime: Series,
    monotonic: Series,
}

impl BaselineSamples {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            realtime: Series::new(BATCH_MAX_NS_PER_CALL, BATCH)?,
            monotonic: Series::new(BATCH_MAX_NS_PER_CALL, BATCH)?,
        })
    }

    /// Times one batch of `baseline` and records it; returns the timer
    /// reading at its end.
    fn time_batch(&mut self, baseline: Baseline) -> anyhow::Result<u64> {
        let (elapsed, end) = time_baseline_batch(baseline.clock_id())?;
        match baseline {
            Baseline::Realtime => self.realtime.record(elapsed),
            Baseline::Monotonic => self.monotonic.record(elapsed),
        }
        Ok(end)
    }

    /// Adds another thread's samples.
    fn merge(&mut self, other: &Self) -> anyhow::Result<()> {
        self.realtime.merge(&other.realtime).context("CLOCK_REALTIME")?;
        self.monotonic.merge(&other.monotonic).context("CLOCK_MONOTONIC")
    }
}

/// [`BATCH`] bare `clock_gettime(clock)` calls between two timer reads:
/// the elapsed nanoseconds and the timer at the end.
#[inline(never)]
fn time_baseline_batch(clock: ClockId) -> anyhow::Result<(u64, u64)> {
    let start = timer_nanos().context("cannot read the timer (CLOCK_MONOTONIC_RAW)")?;
    for _ in 0..BATCH {
        let _ = black_box(clock_gettime(black_box(clock)));
    }
    let end = timer_nanos().context("cannot read the timer (CLOCK_MONOTONIC_RAW)")?;
    Ok((end.saturating_sub(start), end))
}

/// The timer reading `duration` after now, if a duration is set.
fn deadline(duration: Option<Duration>) -> anyhow::Result<Option<u64>> {
    let Some(duration) = duration else { return Ok(None) };
    let now = timer_nanos().context("cannot read the timer (CLOCK_MONOTONIC_RAW)")?;
    Ok(Some(now.saturating_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX))))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;
    use crate::cli::FromWords as _;

    #[test]
    fn options_keep_local_and_remote_apart() {
        let local =
            NowArgs::from_words(&["--segment", "/tmp/x", "--count", "20_000", "--threads", "2", "--json"]).unwrap();
        assert_eq!(local.count, Some(20_000));
        assert_eq!(local.threads, 2);
        assert!(local.json);
        let remote =
            NowArgs::from_words(&["--remote", "127.0.0.1:4460", "--ca", "ca.crt", "--duration", "10s"]).unwrap();
        assert_eq!(remote.duration, Some(Duration::from_secs(10)));
        assert_eq!(remote.rate, None);
        let paced = NowArgs::from_words(&["--remote", "127.0.0.1:4460", "--ca", "ca.crt", "--rate", "900"]).unwrap();
        assert_eq!(paced.rate, Some(900));
        assert!(NowArgs::from_words(&["--rate", "900"]).is_err(), "--rate needs --remote");
        assert!(NowArgs::from_words(&["--remote", "127.0.0.1:1", "--ca", "c", "--rate", "0"]).is_err());
        assert!(NowArgs::from_words(&["--remote", "127.0.0.1:4460"]).is_err(), "--remote needs --ca");
        assert!(NowArgs::from_words(&["--ca", "ca.crt"]).is_err(), "--ca needs --remote");
        assert!(NowArgs::from_words(&["--remote", "127.0.0.1:1", "--ca", "c", "--threads", "2"]).is_err());
        assert!(NowArgs::from_words(&["--remote", "127.0.0.1:1", "--ca", "c", "--segment", "s"]).is_err());
        assert!(
            NowArgs::from_words(&["--remote", "127.0.0.1:1", "--ca", "c", "--cert", "c.pem"]).is_err(),
            "--cert needs --key"
        );
        assert!(NowArgs::from_words(&["--threads", "0"]).is_err());
        assert!(NowArgs::from_words(&["--count", "0"]).is_err());
        assert!(NowArgs::from_words(&["--duration", "10"]).is_err());
        let named = NowArgs::from_words(&["--remote", "site-a.example:4460", "--ca", "ca.crt"]).unwrap();
        assert_eq!(named.remote.map(|a| a.to_string()), Some("site-a.example:4460".to_owned()));
        assert!(NowArgs::from_words(&["--remote", "site-a.example", "--ca", "ca.crt"]).is_err(), "no port");
    }

    #[test]
    fn baseline_batches_record_one_sample_each() {
        let mut samples = BaselineSamples::new().unwrap();
        samples.time_batch(Baseline::Realtime).unwrap();
        samples.time_batch(Baseline::Monotonic).unwrap();
        samples.time_batch(Baseline::Monotonic).unwrap();
        assert_eq!(samples.realtime.samples(), 1);
        assert_eq!(samples.monotonic.samples(), 2);
    }
}
