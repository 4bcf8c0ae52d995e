//! `tsbench tso`: throughput and latency of a tsod site's timestamp oracle
//! as a client sees it, and a check that it kept its promises.
//!
//! # Method
//!
//! One `Tso` client (one QUIC connection, one batching task) is shared by
//! `--concurrency` tasks on a tokio runtime of `--threads` worker threads
//! (default 2). Each task calls `Tso::next()` (or `Tso::reserve(K)` with
//! `--count-per-call K`) in a loop, timing every call on its own, until
//! `--count` calls have been claimed among all tasks or `--duration` has
//! passed (no call starts after it; a call in flight then ends within the
//! client's 3 s deadline).
//!
//! Every range received is checked: it must start above the last timestamp
//! its task received (the client's real-time order, checked in the task),
//! and share no timestamp with any range received before by any task
//! (`uniqueness.rs`, on a thread of its own: `checker.rs`, which also
//! records every latency). A failed call is counted by kind and the task
//! goes on. The run fails, after printing its report, if any promise was
//! broken or no call succeeded. The JSON fields are documented in
//! `tso/report.rs`.
//!
//! # What the load generator costs
//!
//! The report says what the whole tsbench process used (client library,
//! runtime, checking) as CPU time and as a share of the cores it may run
//! on, how much of it the checking thread took, and what the callers' own
//! per-call bookkeeping (clock reads, order check, hand-over) costs,
//! timed before the run. The rest of the process's time is the client
//! library and the runtime.

mod checker;
mod report;
pub(crate) mod uniqueness;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tsod_client::ClusterFile;
use tsod_client::tso::{Tso, TsoError, TsoOptions, TsoRange};
use tsod_proto::wire::MAX_TSO_COUNT;

use crate::plan::{self, Plan};
use crate::progress::Progress;
use crate::report::{ErrorTally, RunHeader, round_to};
use crate::site::{RemoteTarget, SiteAddress, tso_error_kind};
use checker::{CHUNK, Checker, Record};
use report::LoadGenerator;
pub(crate) use report::TsoReport;
use uniqueness::TaskOrder;

/// Calls made when neither `--count` nor `--duration` is given.
const DEFAULT_COUNT: u64 = 100_000;
/// Largest call latency recorded: 1 minute (longer ones count as that).
const MAX_LATENCY_NS: u64 = 60_000_000_000;
/// How often the progress bar is redrawn.
const PROGRESS_REDRAW: Duration = Duration::from_millis(200);
/// Calls a task claims at once under `--count` (one shared addition
/// each), at most: a small count is claimed in smaller blocks
/// ([`claim_block_for`]), so that every task gets its share.
const CLAIM_BLOCK: u64 = 64;
/// Calls a task makes between two additions to the progress count.
const PROGRESS_EVERY: u64 = 64;
/// Synthetic calls timed to calibrate the callers' bookkeeping.
const CALIBRATION_CALLS: u64 = 200_000;

/// Options of `tsbench tso`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["site", "cluster"])))]
pub(crate) struct TsoArgs {
    /// The tsod site's tsod-client/1 address, IP:PORT or HOST:PORT (every
    /// address the name resolves to is tried in turn).
    #[arg(long, value_name = "ADDR", value_parser = SiteAddress::parse, requires = "ca")]
    site: Option<SiteAddress>,
    /// Every site of the cluster, from its cluster file (cluster.json from
    /// `tsod cluster init` or `tsod-testbed up`): the client uses the
    /// nearest and moves to another when it is lost (Tso::connect_cluster).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["site", "ca", "server_name"])]
    cluster: Option<std::path::PathBuf>,
    /// PEM file of the cluster CA (ca.crt from `tsod cluster init`); with --site.
    #[arg(long, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    /// The site's name as its certificate carries it (e.g. bj-a). Default:
    /// the host of a --site HOST:PORT; required with an IP:PORT. An IP
    /// address given here is matched against the certificate's IP
    /// addresses instead.
    #[arg(long, value_name = "SITE")]
    server_name: Option<String>,
    /// Client certificate chain (PEM), for servers that require mutual
    /// TLS; needs --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM); needs --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<std::path::PathBuf>,
    /// Tasks calling at once, sharing one Tso client.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    concurrency: u32,
    /// Worker threads of the tokio runtime the tasks run on (to see how
    /// throughput grows with cores; with `taskset` to pin them).
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    threads: usize,
    /// How long a lone call waits for others to join its request (e.g.
    /// 100us, 1ms; 0 sends at once). TsoOptions::batch_wait.
    #[arg(long, value_name = "D", default_value = "0", value_parser = parse_batch_wait)]
    batch_wait: Duration,
    /// Requests unanswered at once, at most (TsoOptions::max_in_flight).
    #[arg(long, value_name = "N", default_value_t = TsoOptions::DEFAULT_MAX_IN_FLIGHT,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    in_flight: usize,
    /// Timestamps per call: 1 calls Tso::next(), more Tso::reserve(K)
    /// (at most 65536).
    #[arg(long, value_name = "K", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_TSO_COUNT)))]
    count_per_call: u32,
    /// Calls to make in all, shared among the tasks. Default: 100000;
    /// unlimited when only --duration is given.
    #[arg(long, value_name = "N", value_parser = plan::parse_count)]
    count: Option<u64>,
    /// Stop starting calls after this long (e.g. 10s), or after --count
    /// calls, whichever comes first.
    #[arg(long, value_name = "D", value_parser = plan::parse_duration)]
    duration: Option<Duration>,
    /// Print one JSON object (fields documented in tsbench's tso/report.rs)
    /// instead of a table; no progress bar.
    #[arg(long)]
    json: bool,
}

/// A `--batch-wait`: `0`, or a positive duration.
fn parse_batch_wait(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" { Ok(Duration::ZERO) } else { plan::parse_duration(text) }
}

/// Runs `tsbench tso` and prints its report; fails after printing if a
/// promise was broken or no call succeeded.
pub(crate) fn run(args: &TsoArgs) -> anyhow::Result<()> {
    let report = measure(args)?;
    crate::report::print(&report, args.json)?;
    if report.violations.total > 0 {
        anyhow::bail!(
            "the TSO broke its promises: {} ranges not increasing within a task, {} ranges handed out more than once",
            report.violations.not_increasing,
            report.violations.duplicate_ranges
        );
    }
    if report.calls > 0 && report.errors.total == report.calls {
        anyhow::bail!(
            "every one of the {} calls failed ({}): nothing was measured",
            report.calls,
            report.errors.kinds_text()
        );
    }
    Ok(())
}

/// Measures as `run` does and returns the report without printing or
/// judging it (for `tsbench compare`); fails only if no client connects.
pub(crate) fn measure(args: &TsoArgs) -> anyhow::Result<TsoReport> {
    let plan = Plan::new(args.count, args.duration, DEFAULT_COUNT);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("cannot start a tokio runtime")?;
    runtime.block_on(call_until_done(args, plan))
}

/// What the tasks share: when to stop, and the calls claimed and done.
#[derive(Debug)]
struct Shared {
    plan: Plan,
    /// No call starts at or after this.
    stop_at: Option<Instant>,
    /// Calls claimed at once ([`claim_block_for`]).
    block: u64,
    claimed: AtomicU64,
    done: AtomicU64,
}

/// How many calls a task claims at once: [`CLAIM_BLOCK`], or less when the
/// count is small, so that the tasks share it (at least a quarter of an
/// even share each, never less than one call).
fn claim_block_for(plan: Plan, tasks: u32) -> u64 {
    plan.count().map_or(CLAIM_BLOCK, |count| (count / (4 * u64::from(tasks.max(1)))).clamp(1, CLAIM_BLOCK))
}

impl Shared {
    /// Claims up to `block` calls for one task; 0 once the plan's count is
    /// used up (unlimited without a count).
    fn claim_block(&self) -> u64 {
        match self.plan.count() {
            None => u64::MAX,
            Some(count) => {
                let from = self.claimed.fetch_add(self.block, Ordering::Relaxed);
                count.saturating_sub(from).min(self.block)
            }
        }
    }

    /// Whether a call may start at `now`.
    fn open_at(&self, now: Instant) -> bool {
        self.stop_at.is_none_or(|at| now < at)
    }
}

/// What one task measured (its latencies went to the checker).
#[derive(Debug)]
struct TaskResult {
    calls: u64,
    timestamps: u64,
    errors: ErrorTally,
    not_increasing: u64,
}

/// The client `args` ask for, and the target as the report names it.
async fn connect(args: &TsoArgs) -> anyhow::Result<(Tso, String)> {
    let tune =
        |options: TsoOptions| TsoOptions { max_in_flight: args.in_flight, batch_wait: args.batch_wait, ..options };
    match (&args.cluster, &args.site, &args.ca) {
        (Some(path), _, _) => {
            let cluster = ClusterFile::load(path)?;
            let mut options = tune(cluster.tso_options());
            options.remote.client_identity = args.cert.clone().zip(args.key.clone());
            let tso = Tso::connect_cluster(&cluster, options)
                .await
                .with_context(|| format!("cannot connect to any site of {}", path.display()))?;
            Ok((tso, path.display().to_string()))
        }
        (None, Some(site), Some(ca)) => {
            let target = RemoteTarget::new(
                "--site",
                site.clone(),
                ca.clone(),
                args.server_name.clone(),
                args.cert.clone().zip(args.key.clone()),
            )?;
            let tso = target.connect_tso(tune(TsoOptions::from(target.remote_options()))).await?;
            Ok((tso, site.to_string()))
        }
        _ => anyhow::bail!("give --site ADDR --ca FILE, or --cluster FILE"),
    }
}

async fn call_until_done(args: &TsoArgs, plan: Plan) -> anyhow::Result<TsoReport> {
    let bookkeeping_ns = checker::calibrate(CALIBRATION_CALLS);
    let (tso, target) = connect(args).await?;
    let (checker, records) = Checker::start(MAX_LATENCY_NS, usize::try_from(args.concurrency).unwrap_or(usize::MAX))?;

    let cpu_before = checker::process_cpu_time();
    let started = Instant::now();
    let shared = Arc::new(Shared {
        plan,
        stop_at: plan.duration().and_then(|d| started.checked_add(d)),
        block: claim_block_for(plan, args.concurrency),
        claimed: AtomicU64::new(0),
        done: AtomicU64::new(0),
    });
    let mut tasks = JoinSet::new();
    for _ in 0..args.concurrency {
        tasks.spawn(call_in_a_loop(tso.clone(), args.count_per_call, Arc::clone(&shared), records.clone()));
    }
    drop(records);

    let mut progress = Progress::new(plan, !args.json);
    let mut results = Vec::new();
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(result) => results.push(result.context("a measuring task failed")?),
                None => break,
            },
            () = tokio::time::sleep(PROGRESS_REDRAW), if progress.enabled() => {
                progress.update(shared.done.load(Ordering::Relaxed));
            }
        }
    }
    progress.finish();
    let elapsed = started.elapsed();
    let checked = checker.finish().await?;
    let cpu = cpu_before.zip(checker::process_cpu_time()).map(|(before, after)| after.saturating_sub(before));

    let (mut calls, mut timestamps, mut not_increasing) = (0u64, 0u64, 0u64);
    let mut errors = ErrorTally::default();
    for result in results {
        calls = calls.saturating_add(result.calls);
        timestamps = timestamps.saturating_add(result.timestamps);
        not_increasing = not_increasing.saturating_add(result.not_increasing);
        errors.merge(result.errors);
    }
    let seconds = elapsed.as_secs_f64();
    let per_second = |n: u64| if seconds > 0.0 { round_to(n as f64 / seconds, 1) } else { 0.0 };
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    Ok(TsoReport {
        run: RunHeader { command: "tso", mode: None, target, address: Some(tso.addr().to_string()) },
        concurrency: args.concurrency,
        threads: args.threads,
        count_per_call: args.count_per_call,
        in_flight: args.in_flight,
        batch_wait_s: args.batch_wait.as_secs_f64(),
        elapsed_s: round_to(seconds, 3),
        calls,
        timestamps,
        calls_per_s: per_second(calls),
        timestamps_per_s: per_second(timestamps),
        latency: checked.latency.summary(),
        errors,
        violations: checked.granted.violations(not_increasing),
        ranges_forgotten: checked.granted.forgotten(),
        tso_stats: tso.stats(),
        load_generator: LoadGenerator::new(cpu, checked.cpu, bookkeeping_ns, calls, seconds, cores),
    })
}

/// One task: claims calls and makes them until the plan is used up,
/// checking each range's order here and handing it to the checker.
async fn call_in_a_loop(
    tso: Tso,
    count_per_call: u32,
    shared: Arc<Shared>,
    records: tokio::sync::mpsc::Sender<Vec<Record>>,
) -> TaskResult {
    let mut order = TaskOrder::default();
    let mut chunk: Vec<Record> = Vec::with_capacity(CHUNK);
    let (mut calls, mut timestamps, mut claimed, mut unreported) = (0u64, 0u64, 0u64, 0u64);
    let mut errors = ErrorTally::default();
    loop {
        let start = Instant::now();
        if !shared.open_at(start) {
            break;
        }
        if claimed == 0 {
            claimed = shared.claim_block();
            if claimed == 0 {
                break;
            }
        }
        claimed -= 1;
        let answer = if count_per_call == 1 {
            tso.next().await.map(|first| TsoRange::new(first, 1))
        } else {
            tso.reserve(count_per_call).await.map(Some)
        };
        let took = start.elapsed();
        calls = calls.saturating_add(1);
        unreported += 1;
        if unreported == PROGRESS_EVERY {
            shared.done.fetch_add(unreported, Ordering::Relaxed);
            unreported = 0;
        }
        match answer {
            Ok(Some(range)) => {
                timestamps = timestamps.saturating_add(u64::from(range.count()));
                let (first, last) = uniqueness::bounds(&range);
                order.observe(first, last);
                let latency_ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
                chunk.push(Record { first, last, latency_ns });
                if chunk.len() == CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    if records.send(full).await.is_err() {
                        errors.add("checker-stopped");
                        break;
                    }
                }
            }
            // `next()` at HybridTimestamp::MAX: no range of one to check.
            Ok(None) => errors.add("out-of-range"),
            Err(error) => {
                errors.add(&tso_error_kind(&error));
                if matches!(error, TsoError::Stopped) {
                    break;
                }
            }
        }
    }
    shared.done.fetch_add(unreported, Ordering::Relaxed);
    if !chunk.is_empty() && records.send(chunk).await.is_err() {
        errors.add("checker-stopped");
    }
    TaskResult { calls, timestamps, errors, not_increasing: order.not_increasing() }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;
    use crate::cli::FromWords as _;

    #[test]
    fn options_default_sensibly_and_refuse_out_of_range_values() {
        let defaults = TsoArgs::from_words(&["--site", "127.0.0.1:4460", "--ca", "ca.crt"]).unwrap();
        assert_eq!((defaults.concurrency, defaults.in_flight, defaults.count_per_call), (8, 64, 1));
        assert_eq!(defaults.threads, 2);
        assert_eq!(defaults.batch_wait, Duration::ZERO);
        assert_eq!((defaults.count, defaults.duration), (None, None));
        let tuned = TsoArgs::from_words(&[
            "--site",
            "site-a.example:4460",
            "--ca",
            "ca.crt",
            "--concurrency",
            "64",
            "--batch-wait",
            "200us",
            "--in-flight",
            "4",
            "--count-per-call",
            "65536",
            "--duration",
            "10s",
            "--json",
        ])
        .unwrap();
        assert_eq!((tuned.concurrency, tuned.in_flight, tuned.count_per_call), (64, 4, 65_536));
        assert_eq!(tuned.batch_wait, Duration::from_micros(200));
        assert!(tuned.json);
        assert!(TsoArgs::from_words(&["--ca", "ca.crt"]).is_err(), "--site is required");
        assert!(TsoArgs::from_words(&["--site", "127.0.0.1:4460"]).is_err(), "--ca is required");
        let cluster = TsoArgs::from_words(&["--cluster", "cluster.json"]).unwrap();
        assert_eq!(cluster.cluster.as_deref(), Some(std::path::Path::new("cluster.json")));
        assert!(TsoArgs::from_words(&["--cluster", "c.json", "--site", "127.0.0.1:4460", "--ca", "ca.crt"]).is_err());
        let base = ["--site", "127.0.0.1:4460", "--ca", "ca.crt"];
        for bad in [
            &["--count-per-call", "0"][..],
            &["--count-per-call", "65537"],
            &["--in-flight", "0"],
            &["--concurrency", "0"],
            &["--threads", "0"],
            &["--cert", "c.pem"],
            &["--batch-wait", "5"],
        ] {
            let args: Vec<&str> = base.iter().chain(bad).copied().collect();
            assert!(TsoArgs::from_words(&args).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn claims_stop_at_the_count() {
        let shared = Shared {
            plan: Plan::new(Some(CLAIM_BLOCK * 2 + 3), None, 0),
            stop_at: None,
            block: CLAIM_BLOCK,
            claimed: AtomicU64::new(0),
            done: AtomicU64::new(0),
        };
        let blocks: Vec<u64> = (0..5).map(|_| shared.claim_block()).collect();
        assert_eq!(blocks, [CLAIM_BLOCK, CLAIM_BLOCK, 3, 0, 0], "exactly the count, in blocks");
        // A small count is shared out among the tasks, not taken by the first.
        assert_eq!(claim_block_for(Plan::new(Some(20), None, 0), 2), 2);
        assert_eq!(claim_block_for(Plan::new(Some(3), None, 0), 8), 1);
        assert_eq!(claim_block_for(Plan::new(Some(1_000_000), None, 0), 8), CLAIM_BLOCK);
        assert_eq!(claim_block_for(Plan::new(None, Some(Duration::from_secs(1)), 0), 8), CLAIM_BLOCK);
        assert!(shared.open_at(Instant::now()));
        let unlimited = Shared { plan: Plan::new(None, Some(Duration::from_secs(1)), 0), ..shared };
        assert_eq!(unlimited.claim_block(), u64::MAX);
        let now = Instant::now();
        let expired = Shared { stop_at: Some(now), ..unlimited };
        assert!(!expired.open_at(now), "no call starts after the duration");
    }
}
