//! # tsbench
//!
//! Measures tsod deployments, with hdrhistogram summaries and `--json`
//! output whose fields are documented in `report.rs` (and, for
//! `uncertainty`, `report/uncertainty.rs`). Today: `tsbench now`, the
//! latency of `now()` beside `clock_gettime`, locally (shared memory) or
//! against a remote site (QUIC); and `tsbench uncertainty`, a site's
//! half-width and status over time, with an optional plot. To come (see the
//! tsbench issue): TSO throughput and latency, commit-wait durations.
//!
//! Modules: `now` and `uncertainty` run the measurements, `site` reaches the
//! local segment or a remote site (`IP:PORT` or `HOST:PORT`), `report`
//! summarizes and formats, `output` prints (a closed pipe is a clean exit),
//! `plot` draws, `plan` decides when a run stops, `progress` draws the bar,
//! `clock` holds the bare clock reads (the only `unsafe`).

mod clock;
mod now;
mod output;
mod plan;
mod plot;
mod progress;
mod report;
mod site;
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
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Now(args) => now::run(&args),
        Command::Uncertainty(args) => uncertainty::run(&args),
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
