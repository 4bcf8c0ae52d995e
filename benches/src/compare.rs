//! `tsbench compare`: one command that starts a local testbed cluster,
//! measures tsod on it with the other subcommands, and prints the figures
//! beside the **published** figures of reference systems (Spanner
//! TrueTime, AWS ClockBound, TiDB PD), as a Markdown table or as JSON
//! (documented in `comparison.rs`).
//!
//! # Method
//!
//! 1. `tsod-testbed up --topology T --for S --work DIR` as a child process
//!    (`compare/testbed.rs`; by default the `tsod-testbed` and `tsod`
//!    binaries beside tsbench's own).
//! 2. Wait (at most [`READY_LIMIT`]) until every site's status file says
//!    `synchronized` and one site's TSO is leader with a lease; the sites
//!    are found from the testbed's `cluster.json` or, without it, its
//!    `tsod.toml` files (`testbed_sites.rs`). The far site is the one with
//!    the longest probe round trip to the leader (`xa` in `dr`).
//! 3. In order, each for `--duration`, by calling the other subcommands
//!    in-process with the options shown: `uncertainty --local --segment
//!    SEG --interval 100ms` at every site; `commit-wait --local` and `now`
//!    (1 s) at the first site; `tso --concurrency 64` with `next()` and
//!    with `--count-per-call 16`, at the leader's site and at the far site
//!    (`--in-flight` the client's default, 64, as `benches/tso.sh`).
//! 4. Stop the testbed (SIGINT, wait), then print.
//!
//! The testbed is stopped on every way out: success, error, Ctrl-C or
//! SIGTERM (checked between steps; a step in progress ends first, within
//! `--duration`). Progress goes to stderr, one line per step. The run
//! fails, after printing, if the TSO broke a promise or a measurement
//! measured nothing. All sites and clients share one machine and its
//! clock; the testbed also puts a light checking load on the TSO (at most
//! 200 calls a second per site).

mod testbed;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tsod_bench::comparison::{
    CommitWaitFigures, Comparison, HalfWidthFigures, LocalNowFigures, PUBLISHED, Percentiles, SiteEntry, TsoCall,
    TsoFigures, TsoFrom,
};
use tsod_bench::testbed_sites::{self, Readiness};
use tsod_proto::observe::StatusSnapshot;
use tsod_testbed::description::{ClusterDescription, SiteDescription};

use crate::output;
use crate::plan;
use crate::report::Summary;
use testbed::{Testbed, note};

/// Longest wait for the cluster to synchronize and elect a TSO leader.
const READY_LIMIT: Duration = Duration::from_secs(120);
/// How often the status files are read while waiting.
const READY_POLL: Duration = Duration::from_millis(250);
/// How often the reason for waiting is shown.
const WAITING_NOTE_EVERY: Duration = Duration::from_secs(5);
/// Time between two half-width samples.
const HALF_WIDTH_INTERVAL: &str = "100ms";
/// How long `LocalClock::now()` is measured (it needs no more).
const NOW_DURATION: &str = "1s";
/// Callers of the TSO at once.
const TSO_CONCURRENCY: u32 = 64;
/// Timestamps per `reserve` call.
const TSO_RESERVE: u32 = 16;

/// Options of `tsbench compare`.
#[derive(Debug, clap::Args)]
pub(crate) struct CompareArgs {
    /// The tsod-testbed binary. Default: the one beside tsbench.
    #[arg(long, value_name = "PATH")]
    testbed: Option<PathBuf>,
    /// The tsod binary the testbed runs. Default: the one beside tsbench.
    #[arg(long, value_name = "PATH")]
    tsod: Option<PathBuf>,
    /// The testbed topology (a built-in name or a topology file).
    #[arg(long, value_name = "NAME", default_value = "dr")]
    topology: String,
    /// How long each measurement runs (e.g. 5s, 30s).
    #[arg(long, value_name = "D", default_value = "5s", value_parser = plan::parse_duration)]
    duration: Duration,
    /// Print one JSON object (fields documented in tsbench's comparison.rs)
    /// instead of the Markdown table; no progress bars (the step lines
    /// still go to stderr).
    #[arg(long)]
    json: bool,
}

/// Runs `tsbench compare` and prints its table or JSON; fails after
/// printing if the TSO broke a promise or a measurement measured nothing.
pub(crate) fn run(args: &CompareArgs) -> anyhow::Result<()> {
    let stop = testbed::stop_flag()?;
    let testbed_binary = binary(args.testbed.as_deref(), "tsod-testbed", "--testbed", "-p tsod-testbed")?;
    let tsod_binary = binary(args.tsod.as_deref(), "tsod", "--tsod", "-p tsod")?;
    // Long enough for the wait and every step; only a backstop, should
    // tsbench die without stopping it.
    let run_for = READY_LIMIT + args.duration.saturating_mul(16) + Duration::from_secs(120);
    note(&format!("starting {} up --topology {}", testbed_binary.display(), args.topology));
    let mut bed = Testbed::start(&testbed_binary, &tsod_binary, &args.topology, run_for)?;
    let result = measure_all(args, &mut bed, &stop);
    bed.stop();
    let comparison = result?;
    if args.json {
        output::write_stdout(&format!("{}\n", comparison.to_json().context("cannot encode the report as JSON")?))?;
    } else {
        output::write_stdout(&comparison.to_markdown())?;
    }
    let violations: u64 = comparison.tso.iter().map(|row| row.violations).sum();
    anyhow::ensure!(violations == 0, "the TSO broke its promises {violations} times (see the table)");
    let empty = comparison.half_width.iter().any(|row| row.half_width.samples == 0)
        || comparison.commit_wait.waited.samples == 0
        || comparison.tso.iter().any(|row| row.latency.samples == 0);
    anyhow::ensure!(!empty, "a measurement measured nothing (see the problems under the table)");
    Ok(())
}

/// `given`, or the binary `name` beside tsbench's own executable.
fn binary(given: Option<&Path>, name: &str, option: &str, package: &str) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe().context("cannot find tsbench's own path")?.with_file_name(name),
    };
    anyhow::ensure!(
        path.is_file(),
        "no {name} binary at {}: build it (cargo build --release {package}) or pass {option} PATH",
        path.display()
    );
    Ok(path)
}

/// An error if Ctrl-C or SIGTERM came.
fn check_stop(stop: &AtomicBool) -> anyhow::Result<()> {
    anyhow::ensure!(!stop.load(Ordering::SeqCst), "interrupted");
    Ok(())
}

/// The cluster once ready: its sites, the leader, the far site and its
/// round trip to the leader.
#[derive(Debug)]
struct Ready {
    cluster: ClusterDescription,
    leader: String,
    far: String,
    far_round_trip_ns: Option<u64>,
}

/// Waits until the cluster is ready (see the module doc).
fn wait_until_ready(bed: &mut Testbed, stop: &AtomicBool) -> anyhow::Result<Ready> {
    let started = Instant::now();
    let scratch = testbed_sites::scratch_dir(bed.work(), bed.pid());
    let mut last_note = started;
    let mut why = "the testbed is starting".to_owned();
    note("waiting for every site to synchronize and a TSO leader to hold a lease");
    loop {
        check_stop(stop)?;
        bed.check_running()?;
        if let Ok(cluster) = testbed_sites::discover(&scratch) {
            let statuses: Vec<(String, Option<StatusSnapshot>)> = cluster
                .sites
                .iter()
                .map(|site| (site.name.clone(), testbed_sites::read_status(&site.status).ok()))
                .collect();
            match testbed_sites::readiness(&statuses) {
                Readiness::Ready { leader } => {
                    let (far, far_round_trip_ns) = testbed_sites::far_site(&leader, &statuses)
                        .context("the cluster has one site: there is no far site to measure the TSO from")?;
                    note(&format!(
                        "ready after {:.1} s: {} sites, TSO leader {leader}, far site {far}",
                        started.elapsed().as_secs_f64(),
                        cluster.sites.len()
                    ));
                    return Ok(Ready { cluster, leader, far, far_round_trip_ns });
                }
                Readiness::Waiting(reason) => why = reason,
            }
        }
        if started.elapsed() >= READY_LIMIT {
            anyhow::bail!(
                "the cluster was not ready after {} s ({why}); the testbed's last output:\n{}",
                READY_LIMIT.as_secs(),
                bed.log_tail()
            );
        }
        if last_note.elapsed() >= WAITING_NOTE_EVERY {
            last_note = Instant::now();
            note(&format!("  still waiting ({:.0} s): {why}", started.elapsed().as_secs_f64()));
        }
        std::thread::sleep(READY_POLL);
    }
}

/// The options of one subcommand, parsed from its command-line words by
/// its own definition (so a step is exactly `tsbench NAME WORDS…`).
fn invocation<T: clap::Args>(words: Vec<OsString>) -> anyhow::Result<T> {
    let text = words.iter().map(|w| w.to_string_lossy()).collect::<Vec<_>>().join(" ");
    crate::cli::parse(words).with_context(|| format!("invalid options {text}"))
}

/// Words for a command line: strings and paths alike.
macro_rules! words {
    ($($word:expr),* $(,)?) => { vec![$(OsString::from($word)),*] };
}

/// A duration as a command-line word.
fn duration_word(duration: Duration) -> String {
    format!("{}ns", duration.as_nanos())
}

/// Starts the steps one by one, telling stderr which.
struct Steps<'a> {
    done: usize,
    total: usize,
    stop: &'a AtomicBool,
    bed: &'a mut Testbed,
}

impl Steps<'_> {
    fn begin(&mut self, what: &str) -> anyhow::Result<()> {
        check_stop(self.stop)?;
        self.bed.check_running()?;
        self.done = self.done.saturating_add(1);
        note(&format!("[{}/{}] {what}", self.done, self.total));
        Ok(())
    }
}

/// Waits for the cluster, then measures everything, in order.
fn measure_all(args: &CompareArgs, bed: &mut Testbed, stop: &AtomicBool) -> anyhow::Result<Comparison> {
    let ready = wait_until_ready(bed, stop)?;
    let cluster = &ready.cluster;
    let first = cluster.sites.first().context("the testbed has no sites")?;
    let (leader_site, far_site) = (site(cluster, &ready.leader)?, site(cluster, &ready.far)?);
    let duration = duration_word(args.duration);
    let quiet: &[&str] = if args.json { &["--json"] } else { &[] };
    let mut steps = Steps { done: 0, total: cluster.sites.len() + 2 + 4, stop, bed };

    let mut half_width = Vec::new();
    for each in &cluster.sites {
        steps.begin(&format!("ε at {} for {:?} (tsbench uncertainty --local)", each.name, args.duration))?;
        let mut words = words!["--local", "--segment", &each.segment, "--interval", HALF_WIDTH_INTERVAL];
        words.extend(words!["--duration", &duration]);
        words.extend(quiet.iter().map(OsString::from));
        let report = crate::uncertainty::measure(&invocation(words)?)?;
        check_stop(stop)?;
        half_width.push(HalfWidthFigures {
            site: each.name.clone(),
            half_width: percentiles(&report.half_width),
            errors: report.errors.total,
        });
    }

    steps.begin(&format!("commit-wait at {} for {:?} (tsbench commit-wait --local)", first.name, args.duration))?;
    let mut words = words!["--local", "--segment", &first.segment, "--duration", &duration];
    words.extend(quiet.iter().map(OsString::from));
    let report = crate::commit_wait::measure(&invocation(words)?)?;
    let commit_wait = CommitWaitFigures {
        site: first.name.clone(),
        waited: percentiles(&report.waited),
        errors: report.errors.total,
    };

    steps.begin(&format!("LocalClock::now() at {} for {NOW_DURATION} (tsbench now)", first.name))?;
    let mut words = words!["--segment", &first.segment, "--duration", NOW_DURATION];
    words.extend(quiet.iter().map(OsString::from));
    let report = crate::now::measure(&invocation(words)?)?;
    let local_now = LocalNowFigures {
        site: first.name.clone(),
        now: percentiles(&report.series.now),
        clock_gettime_realtime: percentiles(&report.series.clock_gettime_realtime),
        errors: report.errors.total,
    };

    let mut tso = Vec::new();
    for (from, at, in_flight) in [
        (TsoFrom::Leader, leader_site, tsod_client::tso::TsoOptions::DEFAULT_MAX_IN_FLIGHT),
        (TsoFrom::Far, far_site, tsod_client::tso::TsoOptions::DEFAULT_MAX_IN_FLIGHT),
    ] {
        for (call, count_per_call) in [(TsoCall::Next, 1u32), (TsoCall::Reserve, TSO_RESERVE)] {
            let what = match call {
                TsoCall::Next => "next()".to_owned(),
                TsoCall::Reserve => format!("reserve({count_per_call})"),
            };
            let role = if from == TsoFrom::Leader { "leader" } else { "far site" };
            steps.begin(&format!(
                "TSO {what} × {TSO_CONCURRENCY} callers at {} ({role}) for {:?} (tsbench tso)",
                at.name, args.duration
            ))?;
            let mut words = words!["--site", at.address.to_string(), "--server-name", &at.name, "--ca", &cluster.ca];
            words.extend(words!["--concurrency", TSO_CONCURRENCY.to_string(), "--count-per-call"]);
            words.extend(words![count_per_call.to_string(), "--in-flight", in_flight.to_string()]);
            words.extend(words!["--duration", &duration]);
            words.extend(quiet.iter().map(OsString::from));
            let report = crate::tso::measure(&invocation(words)?)?;
            tso.push(TsoFigures {
                from,
                site: at.name.clone(),
                call,
                concurrency: report.concurrency,
                count_per_call: report.count_per_call,
                in_flight: report.in_flight,
                calls_per_s: report.calls_per_s,
                timestamps_per_s: report.timestamps_per_s,
                latency: percentiles(&report.latency),
                errors: report.errors.total,
                violations: report.violations.total,
            });
        }
    }

    Ok(Comparison {
        command: "compare",
        topology: args.topology.clone(),
        duration_s: args.duration.as_secs_f64(),
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        sites: cluster
            .sites
            .iter()
            .map(|s| SiteEntry { name: s.name.clone(), address: s.address.to_string() })
            .collect(),
        leader: ready.leader.clone(),
        far_site: ready.far.clone(),
        far_round_trip_ns: ready.far_round_trip_ns,
        half_width,
        commit_wait,
        local_now: Some(local_now),
        tso,
        published: PUBLISHED.to_vec(),
    })
}

/// The site named `name`.
fn site<'a>(cluster: &'a ClusterDescription, name: &str) -> anyhow::Result<&'a SiteDescription> {
    cluster.sites.iter().find(|s| s.name == name).with_context(|| format!("no site {name} in the testbed"))
}

/// The percentiles the comparison keeps of a summary.
fn percentiles(summary: &Summary) -> Percentiles {
    Percentiles { p50_ns: summary.p50_ns, p99_ns: summary.p99_ns, max_ns: summary.max_ns, samples: summary.samples }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;
    use crate::cli::FromWords as _;

    #[test]
    fn command_line_defaults() {
        let args = CompareArgs::from_words(&[]).unwrap();
        assert_eq!((args.topology.as_str(), args.duration, args.json), ("dr", Duration::from_secs(5), false));
        assert!(CompareArgs::from_words(&["--duration", "5"]).is_err(), "a unit is required");
    }

    #[test]
    fn steps_are_the_subcommands_own_options() {
        let duration = duration_word(Duration::from_millis(1500));
        let words = words!["--site", "127.0.0.1:4460", "--ca", Path::new("/x/ca.crt"), "--concurrency", "64"];
        let mut words = words;
        words.extend(words!["--count-per-call", "16", "--duration", &duration, "--json"]);
        let _: crate::tso::TsoArgs = invocation(words).unwrap();
        let bad: anyhow::Result<crate::tso::TsoArgs> = invocation(words!["--concurrency", "0"]);
        assert!(bad.is_err());
        let _: crate::uncertainty::UncertaintyArgs =
            invocation(words!["--local", "--segment", "/x/segment", "--interval", HALF_WIDTH_INTERVAL]).unwrap();
    }
}
