//! # tsod-testbed
//!
//! Runs a multi-region tsod cluster on one machine: one real `tsod` process
//! per site, each on its own simulated clock, with simulated GPS (gpsd
//! protocol) and NTP servers, emulated WAN links between the sites, and a
//! truth checker that reads every site's interval like an application and
//! compares it with the host clock (true time here).
//!
//! * `tsod-testbed up [--topology NAME|FILE]`: start it and watch the live
//!   view until Ctrl-C (or `--for SECONDS`).
//! * `tsod-testbed run SCENARIO [--json] [--plot FILE.svg]`: run a scripted
//!   scenario and report; exits non-zero on any violation or failed check
//!   (`expect-leader`, `max-gap-ms`: see [`tsod_testbed::spec::scenario`]).
//! * `tsod-testbed scenarios`, `tsod-testbed topologies`: the built-ins.
//!
//! Both `up` and `run` also put the cluster's TSO under load: a few clients
//! per site call `next()` (at most 200 calls a second per site), and every
//! timestamp is checked for duplicates, real-time order across sites and
//! honesty against the host clock ([`tsod_testbed::tso::check`]); any of
//! those is a violation, like an interval that excludes true time. The live
//! view has a TSO line (leader, its priority, term and why it leads,
//! timestamps and errors a second), the
//! report per-phase TSO figures (timestamps, errors, latency, the longest
//! span without a timestamp per site).
//!
//! `up` writes `cluster.json` in its scratch directory, so that other tools
//! can find the sites: see [`tsod_testbed::description`]. Both `up` and
//! `run` rewrite `links.json` there once a second: what each WAN relay
//! carried so far ([`tsod_testbed::links_file`]). The scratch directory is
//! `<--work>/tsod-testbed-<pid of this program>`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use tsod_testbed::checker::Checker;
use tsod_testbed::cluster::{Cluster, ClusterPlan};
use tsod_testbed::spec::{Scenario, Topology};
use tsod_testbed::timeline::{self, TsoReport};
use tsod_testbed::tso::load::TsoLoad;
use tsod_testbed::view;
use tsod_testbed::{description, links_file, status_file, tso};

/// Multi-region tsod cluster on one machine, with faults and a truth checker.
#[derive(Parser)]
#[command(version, about, long_about = None)]
enum Command {
    /// Start a cluster and show it live until Ctrl-C.
    Up {
        /// A built-in topology (`dr`, `global`, `global-priority`, `two-regions-five`, `three-regions-seven`, `pair`) or a topology file (TOML).
        #[arg(long, default_value = "dr")]
        topology: String,
        /// Stop by itself after this many seconds.
        #[arg(long = "for")]
        run_for: Option<u64>,
        /// Common options.
        #[command(flatten)]
        common: Common,
    },
    /// Run a scripted scenario and report; exits non-zero on any violation.
    Run {
        /// A built-in scenario name or a scenario file (TOML).
        scenario: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Write half-width over time per site to this SVG file.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Common options.
        #[command(flatten)]
        common: Common,
    },
    /// List the built-in topologies.
    Topologies,
    /// List the built-in scenarios.
    Scenarios,
}

#[derive(clap::Args)]
struct Common {
    /// The `tsod` binary (default: the one beside this program).
    #[arg(long)]
    tsod: Option<PathBuf>,
    /// Where the cluster's scratch directory goes (removed at the end).
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    work: PathBuf,
}

fn main() -> anyhow::Result<()> {
    match Command::parse() {
        Command::Up { topology, run_for, common } => up(&topology, run_for.map(Duration::from_secs), &common),
        Command::Run { scenario, json, plot, common } => run(&scenario, json, plot.as_deref(), &common),
        Command::Scenarios => {
            for name in Scenario::builtin_names() {
                let s = Scenario::builtin(name)?;
                println!("{name:<30} {}", s.description());
            }
            Ok(())
        }
        Command::Topologies => {
            for name in Topology::builtin_names() {
                let t = Topology::builtin(name)?;
                println!("{name:<16} {}", t.description());
            }
            Ok(())
        }
    }
}

/// The `tsod` binary: given, or beside this program (`cargo build --release
/// -p tsod -p tsod-testbed` puts both in `target/release`).
fn tsod_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    let me = std::env::current_exe().context("finding this program's path")?;
    let beside = me.with_file_name("tsod");
    anyhow::ensure!(
        beside.is_file(),
        "no tsod binary at {}: build it (cargo build --release -p tsod) or pass --tsod PATH",
        beside.display()
    );
    Ok(beside)
}

/// Set by Ctrl-C or SIGTERM; everything is torn down when the loop sees it.
fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("signal runtime")?;
    std::thread::spawn(move || {
        runtime.block_on(async {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return,
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            flag.store(true, Ordering::SeqCst);
        });
    });
    Ok(stop)
}

fn up(topology: &str, run_for: Option<Duration>, common: &Common) -> anyhow::Result<()> {
    let topology = Topology::load(topology)?;
    let tsod = tsod_binary(common.tsod.as_deref())?;
    let stop = stop_flag()?;
    let plan = ClusterPlan::from_topology(&topology);
    let mut cluster = Cluster::start(&plan, &tsod, &common.work).context("starting the cluster")?;
    let description = cluster.dir().join(description::FILE_NAME);
    std::fs::write(&description, cluster.description().to_json()?)
        .with_context(|| format!("writing {}", description.display()))?;
    println!("cluster description (sites, addresses, CA): {}", description.display());
    for site in cluster.sites() {
        println!("  {:<10} metrics http://{}/metrics", site.plan.name, site.metrics);
    }
    let mut links = LinksWriter::default();
    links.write(&cluster);
    println!("relay counters, rewritten every second: {}", cluster.dir().join(links_file::FILE_NAME).display());
    let notes = [format!("cluster.json: {}", description.display())];
    let mut checker = Checker::new(cluster.sites().iter().map(|s| (s.plan.name.clone(), s.segment.clone())))
        .with_time(cluster.time());
    let started = Instant::now();
    let load = timeline::tso_load(&cluster, started, None).context("starting the TSO load")?;
    let mut rates = TsoRates::default();
    let terminal = std::io::stdout().is_terminal();
    let title = format!("tsod-testbed: {} ({} sites)", topology.name(), plan.sites.len());
    let mut next_view = started;
    while !stop.load(Ordering::SeqCst) && run_for.is_none_or(|d| started.elapsed() < d) {
        checker.sample(started.elapsed().as_secs_f64());
        if Instant::now() >= next_view {
            next_view += Duration::from_secs(1);
            links.write(&cluster);
            let tso = rates.line(&mut cluster, &load);
            let text = live_view(&title, started.elapsed(), &mut cluster, &checker, Some(&tso), &notes);
            let mut out = std::io::stdout().lock();
            if terminal {
                let _ = write!(out, "{}", view::clear_screen());
            }
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The load stops before the cluster does: no error from the teardown.
    let tso = TsoReport::from_record(&load.finish(), &checker);
    let violations: Vec<_> = checker.violations().collect();
    println!("stopping: {} violation(s) of true time", violations.len());
    for v in &violations {
        println!("  {} at {:.1} s: {} by {:?}", v.site, v.at_s, v.interval, v.by);
    }
    println!("{}", tso.summary());
    for example in &tso.examples {
        println!("  TSO VIOLATION {example}");
    }
    let failed = !violations.is_empty();
    drop(cluster);
    anyhow::ensure!(!failed, "true time was outside a synchronized interval");
    anyhow::ensure!(tso.clean(), "the TSO handed out duplicate, out-of-order or dishonest timestamps");
    Ok(())
}

/// Rewrites the cluster's `links.json`; if that fails, says so once and
/// goes on without it (the run does not depend on it).
#[derive(Debug, Default)]
struct LinksWriter {
    failed: bool,
}

impl LinksWriter {
    fn write(&mut self, cluster: &Cluster) {
        if let Err(e) = cluster.write_links_file() {
            if !self.failed {
                eprintln!("tsod-testbed: {e} (going on without it)");
            }
            self.failed = true;
        }
    }
}

/// The live view's TSO line: rates from the load's totals between two views,
/// the leader from the status files.
#[derive(Debug, Default)]
struct TsoRates {
    /// When the last line was made, and the totals then (timestamps, errors).
    last: Option<(Instant, u64, u64)>,
}

impl TsoRates {
    fn line(&mut self, cluster: &mut Cluster, load: &TsoLoad) -> view::TsoLine {
        let (timestamps, errors) = load
            .totals()
            .iter()
            .fold((0_u64, 0_u64), |(t, e), (dt, de)| (t.saturating_add(*dt), e.saturating_add(*de)));
        let now = Instant::now();
        let (per_second, errors_per_second) = match self.last {
            Some((then, t0, e0)) => {
                let span = now.duration_since(then).as_secs_f64().max(1e-3);
                (timestamps.saturating_sub(t0) as f64 / span, errors.saturating_sub(e0) as f64 / span)
            }
            None => (0.0, 0.0),
        };
        self.last = Some((now, timestamps, errors));
        let leader = timeline::current_leader(cluster).and_then(|i| cluster.sites().get(i));
        let role = leader.and_then(|s| tso::status::read(&s.status));
        view::TsoLine {
            leader: leader.map(|s| s.plan.name.clone()),
            term: role.as_ref().map(|r| r.term),
            priority: role.as_ref().and_then(|r| r.priority),
            why: role.as_ref().and_then(|r| r.why_leading.clone()),
            handover_to: role.and_then(|r| r.handover_to),
            per_second,
            errors_per_second,
            errors,
        }
    }
}

fn live_view(
    title: &str,
    elapsed: Duration,
    cluster: &mut Cluster,
    checker: &Checker,
    tso: Option<&view::TsoLine>,
    notes: &[String],
) -> String {
    let rows: Vec<view::SiteRow> = cluster
        .sites_mut()
        .iter_mut()
        .zip(&checker.sites)
        .map(|(site, record)| {
            let up = site.is_up();
            let status = status_file::read(&site.status);
            let violations = u64::try_from(record.violations.len()).unwrap_or(u64::MAX);
            let mut row = view::SiteRow::from_status(&site.plan.name, up, status.as_ref(), violations);
            row.clock_offset = Some(site.plan.clock_offset);
            row.paused = site.is_paused();
            row
        })
        .collect();
    view::render(title, elapsed, &rows, tso, notes)
}

fn run(name: &str, json: bool, plot: Option<&Path>, common: &Common) -> anyhow::Result<()> {
    let scenario = Scenario::load(name)?;
    let tsod = tsod_binary(common.tsod.as_deref())?;
    let stop = stop_flag()?;
    let terminal = std::io::stdout().is_terminal() && !json;
    let title = format!("tsod-testbed run {} on {}", scenario.name(), scenario.topology().name());
    let mut shown = 0;
    let mut rates = TsoRates::default();
    let mut links = LinksWriter::default();
    let (report, series) =
        timeline::run(&scenario, &tsod, &common.work, &|| stop.load(Ordering::SeqCst), |cluster, progress| {
            links.write(cluster);
            if terminal {
                let elapsed = Duration::from_secs_f64(progress.at.max(0.0));
                let tso = rates.line(cluster, progress.tso);
                let text = live_view(&title, elapsed, cluster, progress.checker, Some(&tso), progress.applied);
                print!("{}{text}", view::clear_screen());
                let _ = std::io::stdout().flush();
            } else if !json {
                // Not a terminal: log each event once, as it happens.
                for event in progress.applied.iter().skip(shown) {
                    println!("{event}");
                }
                shown = progress.applied.len();
            }
        })
        .context("running the scenario")?;
    if let Some(path) = plot {
        let events: Vec<(f64, String)> = report.events.iter().map(|e| (e.at_s, e.described())).collect();
        tsod_testbed::plot::write_svg(path, &title, &series, &events)?;
    }
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    anyhow::ensure!(report.passed, "scenario {} failed: {}", scenario.name(), report.failures());
    Ok(())
}
