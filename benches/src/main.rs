//! # tsbench
//!
//! Measures tsod deployments, with hdrhistogram summaries and `--json`
//! output whose fields are documented in `report.rs`. Today: `tsbench now`,
//! the latency of `now()` beside `clock_gettime`, locally (shared memory) or
//! against a remote site (QUIC). To come (see the tsbench issue): TSO
//! throughput and latency, commit-wait durations, uncertainty over time.
//!
//! Modules: `now` runs the measurement, `report` summarizes and prints it,
//! `plan` decides when a run stops, `progress` draws the bar, `clock` holds
//! the bare clock reads (the only `unsafe`).

mod clock;
mod now;
mod plan;
mod progress;
mod report;

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Now(args) => now::run(&args),
    }
}
