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
        /// Check the file only, not the site's TLS files it names.
        #[arg(long)]
        syntax_only: bool,
    },
    /// Print the local daemon's current interval (read like an application reads it).
    Now {
        /// The segment (default: $TSOD_SHM, else /run/tsod/segment).
        #[arg(long)]
        segment: Option<PathBuf>,
        /// Print JSON: {"earliest_ns", "latest_ns", "status"}.
        #[arg(long)]
        json: bool,
    },
    /// Wait until the local bound is synchronized, as `chronyc waitsync`
    /// does: exit 0 once it is, 1 if --timeout passes first, 2 if it cannot
    /// be judged (bad arguments, an untrusted segment). For units that must
    /// start only with good time: `After=` a oneshot running it.
    WaitSync {
        /// The segment (default: $TSOD_SHM, else /run/tsod/segment).
        #[arg(long)]
        segment: Option<PathBuf>,
        /// Also wait until the half-width is at most this (e.g. 1ms, 250us).
        #[arg(long, value_parser = humantime::parse_duration)]
        max_half_width: Option<std::time::Duration>,
        /// Give up after this long (e.g. 30s, 5m); default: wait for ever.
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// Accept `degraded` (a majority of the sources agree) as well as
        /// `synchronized`.
        #[arg(long)]
        degraded_ok: bool,
    },
    /// Show the local daemon's status: sources, falsetickers, drift model.
    Status {
        /// The segment (default: $TSOD_SHM, else /run/tsod/segment).
        #[arg(long)]
        segment: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print timestamps from the cluster's TSO, asked through this site's daemon.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Tso {
        #[command(subcommand)]
        command: Option<TsoCommand>,
        /// The daemon's configuration file (for its address and certificates).
        #[arg(long, short, required = true)]
        config: Option<PathBuf>,
        /// How many consecutive timestamps (1 … 65536).
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// One JSON object per line: {"raw", "physical-us", "logical"}.
        #[arg(long)]
        json: bool,
    },
    /// Write a commented configuration that uses the NTP servers this
    /// host's time daemon (chrony, ntpd, timesyncd) already uses.
    InitConfig {
        /// Write it here (never replacing a file, without --force); default:
        /// print it.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace --out if it exists.
        #[arg(long, requires = "out")]
        force: bool,
        /// Read the host's configuration under this directory instead of /.
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
    /// Make or extend the cluster's identity (CA and site certificates for mutual TLS).
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Decode one protocol message given as hex (SPEC.md §4) and print it as JSON.
    Decode {
        /// The message bytes in hex; `-` reads them from standard input.
        hex: String,
    },
}

#[derive(Subcommand)]
enum TsoCommand {
    /// Vote, as this site's operator, to lower the TSO fence to what true
    /// time allows (docs/OPERATIONS.md, "Resetting the TSO fence"). Only for
    /// a TSO stuck behind a fence that wrong clocks set far in the future:
    /// timestamps those clocks issued may be repeated. Takes effect once the
    /// operators of a majority of the sites voted within 15 minutes; the
    /// TSO then issues again about a minute later. Recorded in the Raft log
    /// and shown by `tsod status`.
    ResetFence {
        /// The site's configuration file (for its control socket).
        #[arg(long, short)]
        config: PathBuf,
        /// Why: recorded with the vote (at most 256 bytes).
        #[arg(long)]
        reason: String,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Create a cluster CA and a certificate for each site, in a new directory.
    Init {
        /// Where to write ca.crt, ca.key and <site>.crt/.key.
        #[arg(long)]
        out: PathBuf,
        /// A site: NAME or NAME=IP[,IP…] (repeat for each site).
        #[arg(long = "site", required = true)]
        sites: Vec<String>,
        /// Site certificate validity in days (the CA gets four times as long).
        #[arg(long)]
        validity_days: Option<i64>,
        /// The sites' client port, for the cluster file (cluster.json) that
        /// applications are given.
        #[arg(long, default_value_t = 4460)]
        client_port: u16,
    },
    /// Add a site certificate to an existing cluster directory.
    AddSite {
        /// The cluster directory (with ca.crt).
        #[arg(long)]
        dir: PathBuf,
        /// Where the CA key is (default: DIR-ca).
        #[arg(long)]
        ca_dir: Option<PathBuf>,
        /// The site: NAME or NAME=IP[,IP…].
        #[arg(long)]
        site: String,
        /// Validity in days.
        #[arg(long)]
        validity_days: Option<i64>,
        /// Its client port, for the directory's cluster.json (if there is one).
        #[arg(long, default_value_t = 4460)]
        client_port: u16,
    },
    /// Add an application's client certificate (client authentication only,
    /// named NAME.client: it can never pass for a site).
    AddClient {
        /// The cluster directory (with ca.crt).
        #[arg(long)]
        dir: PathBuf,
        /// Where the CA key is (default: DIR-ca).
        #[arg(long)]
        ca_dir: Option<PathBuf>,
        /// The application's name: a lowercase DNS label.
        #[arg(long)]
        name: String,
        /// Validity in days.
        #[arg(long)]
        validity_days: Option<i64>,
    },
    /// Mark this site's empty TSO store as part of a new cluster: run once
    /// at every site of a new cluster, before its first start. Without it,
    /// an empty store (a new site, or one that lost its disk) votes only
    /// once the leader has caught it up.
    Bootstrap {
        /// The site's configuration file (for its `[tso] state-dir`).
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TSOD_LOG")
                // openraft logs every failed RPC to an unreachable peer at
                // error level; tsod reports lost peers itself.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Run { config } => cmd::run::run(&config),
        Command::CheckConfig { config, syntax_only } => cmd::check_config::run(&config, syntax_only),
        Command::Now { segment, json } => cmd::now::run(segment, json),
        Command::Status { segment, json } => cmd::status::run(segment, json),
        Command::WaitSync { segment, max_half_width, timeout, degraded_ok } => {
            let args = cmd::wait_sync::WaitSync { segment, max_half_width, timeout, degraded_ok };
            std::process::exit(i32::from(cmd::wait_sync::run(&args)));
        }
        Command::Cluster { command: ClusterCommand::Init { out, sites, validity_days, client_port } } => {
            cmd::cluster::init(&out, &sites, validity_days, client_port)
        }
        Command::Cluster { command: ClusterCommand::AddSite { dir, ca_dir, site, validity_days, client_port } } => {
            cmd::cluster::add_site(&dir, ca_dir.as_deref(), &site, validity_days, client_port)
        }
        Command::Cluster { command: ClusterCommand::AddClient { dir, ca_dir, name, validity_days } } => {
            cmd::cluster::add_client(&dir, ca_dir.as_deref(), &name, validity_days)
        }
        Command::Cluster { command: ClusterCommand::Bootstrap { config } } => cmd::cluster::bootstrap(&config),
        Command::Decode { hex } => cmd::decode::run(&hex),
        Command::InitConfig { out, force, root } => cmd::init_config::run(out.as_deref(), force, &root),
        Command::Tso { command: Some(TsoCommand::ResetFence { config, reason, json }), .. } => {
            cmd::tso::reset_fence(&config, &reason, json)
        }
        Command::Tso { command: None, config, count, json } => {
            let config = config.ok_or_else(|| anyhow::anyhow!("--config is required"))?;
            cmd::tso::run(&config, count, json)
        }
    }
}
