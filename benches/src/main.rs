//! # tsbench
//!
//! Measures tsod deployments, with hdrhistogram summaries and `--json`
//! output whose fields are documented beside each subcommand
//! (`now/report.rs`, `uncertainty/report.rs`, `tso/report.rs`,
//! `commit_wait/report.rs`; what they share in `report.rs`). Today: `tsbench now`, the
//! latency of `now()` beside `clock_gettime`, locally (shared memory) or
//! against a remote site (QUIC); `tsbench uncertainty`, a site's
//! half-width and status over time, with an optional plot; `tsbench tso`,
//! the throughput and latency of a site's timestamp oracle, checking every
//! timestamp is unique and increasing; `tsbench commit-wait`, how long
//! commit-waits last and how late they notice; `tsbench compare`, which
//! starts a local testbed cluster, runs the others on it and prints tsod's
//! figures beside the published figures of reference systems; and `tsbench
//! clients`, thousands of clients each with its own connection to one
//! site, and what they cost it.
//!
//! Modules: `now`, `uncertainty`, `tso`, `commit_wait` and `clients` run the
//! measurements, each with its report; `site` reaches the local segment or
//! a remote site (`IP:PORT` or `HOST:PORT`), `report` holds what every
//! report shares (summaries, errors, the run header, JSON or text),
//! `output` prints (a closed pipe is a clean exit),
//! `plot` draws, `plan` decides when a run stops, `progress` draws the bar,
//! `clock` wraps the bare clock reads (tsod-shm holds their `unsafe`), `compare` runs
//! the testbed comparison, whose pure core (figures, table, JSON, finding
//! the testbed's sites) is the `tsod_bench` library (`lib.rs`).

mod cli;
mod clients;
mod clock;
mod commit_wait;
mod compare;
mod now;
mod output;
mod plan;
mod plot;
mod progress;
mod report;
mod side_by_side;
mod site;
mod tso;
mod uncertainty;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Latency, throughput and uncertainty benchmarks for tsod.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The measurements tsbench makes.
#[derive(Debug, Subcommand)]
enum Command {
    /// Latency of now(): LocalClock::now() (default) or RemoteClock::now_at()
    /// (--remote), interleaved with bare clock_gettime(CLOCK_REALTIME) and
    /// clock_gettime(CLOCK_MONOTONIC) reads as baselines.
    Now(now::NowArgs),
    /// Half-width and status of a site's bound over time, sampled every
    /// --interval: the local tsod (--local) or a remote site (--site); a
    /// summary, status changes, and optionally a plot (--plot).
    Uncertainty(uncertainty::UncertaintyArgs),
    /// Throughput and latency of a site's timestamp oracle (Tso::next() or
    /// Tso::reserve(K)) from --concurrency tasks sharing one client, checking
    /// that every timestamp is unique and increasing per task.
    Tso(tso::TsoArgs),
    /// Durations of commit-waits (HybridClock::commit_timestamp() then
    /// commit_wait) on the local tsod (--local) or a remote site (--site),
    /// and how far each overshot.
    CommitWait(commit_wait::CommitWaitArgs),
    /// Starts a local tsod-testbed cluster (`dr`), measures ε at every
    /// site, commit-waits, LocalClock::now() and the TSO from the leader's
    /// and the far site, stops the testbed, and prints the figures beside
    /// published figures of Spanner TrueTime, AWS ClockBound and TiDB PD
    /// (a Markdown table, or --json).
    Compare(compare::CompareArgs),
    /// Reads tsod segments (LocalClock) and AWS ClockBound segments
    /// (clock-bound-client) side by side from one process against the
    /// host's clock: half-widths, misses, and each read's cost against
    /// clock_gettime (benches/clockbound-compare.sh sets up the daemons).
    SideBySide(side_by_side::SideBySideArgs),
    /// A fleet of clients against one site, each with its own connection
    /// (RemoteClock::now() or Tso::next() every --call-interval), ramped up
    /// at --ramp-rate and held for --hold: handshake rate, call latency,
    /// and, with --daemon-pid and --segment, the daemon's memory per
    /// connection, its CPU and its published half-width before and under
    /// the load (benches/clients.sh runs it against a site).
    Clients(clients::ClientsArgs),
}

fn main() -> ExitCode {
    // Diagnostics of the client library and quinn (e.g.
    // `TSBENCH_LOG=quinn_proto=debug`), to stderr; off unless asked for.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("TSBENCH_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    let result = match Cli::parse().command {
        Command::Now(args) => now::run(&args),
        Command::Uncertainty(args) => uncertainty::run(&args),
        Command::Tso(args) => tso::run(&args),
        Command::CommitWait(args) => commit_wait::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::SideBySide(args) => side_by_side::run(&args),
        Command::Clients(args) => clients::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of the report went away (`| head`): not a failure.
        Err(error) if output::is_stdout_closed(&error) => ExitCode::SUCCESS,
        Err(error) => {
            // As `fn main() -> anyhow::Result<()>` reports it; a closed
            // stderr leaves nothing more to do.
            let _ = writeln!(std::io::stderr(), "Error: {error:?}");
            ExitCode::FAILURE
        }
    }
}
