//! # tsbench
//!
//! Will measure tsod deployments: `now()` latency beside `clock_gettime`,
//! TSO throughput and latency, commit-wait durations, and uncertainty over
//! time, with hdrhistogram summaries and `--json` output. Until the features
//! it measures land (see the tsbench issue) it only describes itself.

use clap::Parser;

/// Latency, throughput and uncertainty benchmarks for tsod.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    Cli::parse();
    anyhow::bail!("tsbench has no commands yet; see the tsbench issue and README.md")
}
