//! The `tsod` command line.

mod cmd;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// tsod: a time service with bounded error for replicated databases.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Parse and validate a configuration file without running.
    CheckConfig {
        /// The configuration file (TOML).
        config: PathBuf,
    },
    /// Print the local daemon's current interval (read like an application reads it).
    Now {
        /// The segment (default: $TSOD_SHM, else /dev/shm/tsod).
        #[arg(long)]
        segment: Option<PathBuf>,
        /// Print JSON: {"earliest_ns", "latest_ns", "status"}.
        #[arg(long)]
        json: bool,
    },
    /// Show the local daemon's status: sources, falsetickers, drift model.
    Status {
        /// The segment (default: $TSOD_SHM, else /dev/shm/tsod).
        #[arg(long)]
        segment: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decode one protocol message given as hex (SPEC.md §4) and print it as JSON.
    Decode {
        /// The message bytes in hex; `-` reads them from standard input.
        hex: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TSOD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Run { config } => cmd::run::run(&config),
        Command::CheckConfig { config } => cmd::check_config::run(&config),
        Command::Now { segment, json } => cmd::now::run(segment, json),
        Command::Status { segment, json } => cmd::status::run(segment, json),
        Command::Decode { hex } => cmd::decode::run(&hex),
    }
}
