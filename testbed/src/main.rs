//! # tsod-testbed
//!
//! Will run a multi-region tsod cluster on one machine: one real `tsod`
//! process per site, each on its own simulated clock, with simulated GPS
//! (gpsd protocol) and NTP servers, emulated WAN links, scripted faults and
//! a truth checker that compares every site's interval with the host clock.
//! Until those land (see the testbed issue) it only describes itself.

use clap::Parser;

/// Multi-region tsod cluster on one machine, with faults and a truth checker.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    Cli::parse();
    anyhow::bail!("the testbed has no commands yet; see the testbed issue and README.md")
}
