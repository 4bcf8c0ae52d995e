//! `tsbench clients`: a fleet of clients against one tsod site, each with
//! its own connection, calling at a low rate, and what they cost the site.
//!
//! # Method
//!
//! `--connections` clients, each a `RemoteClock` (`--call now`, calling
//! `now()`) or a `Tso` (`--call next`, calling `next()`) of its own: its
//! own QUIC connection and TLS session. `--per-socket` clients in a row
//! share one UDP socket (a `ClientSocket`), bound with `--sources` to a
//! source address of their own, `--per-prefix` clients in each /24 of the
//! range (`sources.rs`), since the site counts connections per /24. One
//! socket per client (the default) is what a fleet of separate hosts
//! looks like to the site, but costs this process a receive loop per
//! client: past a few thousand clients on one core it is the load
//! generator, not the site, that saturates, and sharing a socket among a
//! few dozen clients measures the site instead.
//!
//! 1. **Before**: with `--daemon-pid` or `--segment`, the site is watched
//!    for `--before` with no client (`daemon.rs`).
//! 2. **Ramp**: clients are started at `--ramp-rate` a second, at most
//!    `--in-flight` handshakes at once; each calls every `--call-interval`
//!    from the moment it is connected, its first call at its own offset
//!    into the interval (spread evenly over it), so the site sees a steady
//!    `connections / call-interval` calls a second. The ramp ends when
//!    every client has connected or failed to (each within the client's
//!    request timeout, 2 s, or the TSO client's deadline, 3 s).
//! 3. **Held**: every connected client goes on calling for `--hold`; then
//!    each stops (a call in flight finishes within its timeout), lets go
//!    of its connection, and the run waits up to [`DRAIN`] for them.
//!
//! Calls are timed one by one (hdrhistogram), separately while ramping and
//! while held. A client whose connection fails is counted by kind and not
//! retried; a call that fails is counted by kind, and the client calls
//! again at its next slot. The daemon's memory, CPU time and descriptors
//! and its published half-width are sampled in every phase. The run fails
//! after printing its report when no client connected or more than 1 % of
//! the clients or calls failed. JSON fields: `clients/report.rs`.
//!
//! Every socket holds a descriptor: the process's open-file limit
//! (`ulimit -n`) must exceed the number of sockets, and is checked first.

mod daemon;
mod report;
mod sources;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tsod_client::tso::{Tso, TsoOptions};
use tsod_client::{ClientSocket, RemoteClock, RemoteOptions};

use crate::plan;
use crate::report::{ErrorTally, RunHeader, Series, round_to};
use crate::site::{RemoteTarget, SiteAddress, remote_error_kind, tso_error_kind};
use daemon::{Daemon, Phase, PhaseSamples, Snapshot, Watcher, cpu_share};
use report::{ClientsReport, DaemonField, HalfWidthField, SourcesField};
use sources::SourceRange;

/// Largest latency recorded: 1 minute (longer ones count as that).
const MAX_LATENCY_NS: u64 = 60_000_000_000;
/// How long the clients get to stop and let go of their connections.
const DRAIN: Duration = Duration::from_secs(10);
/// After the clients let go, how long their endpoints get to tell the site
/// (so that the next run starts on a site without them).
const LINGER: Duration = Duration::from_millis(500);
/// Descriptors the process needs besides one per client (runtime, files,
/// quinn's probe sockets).
const SPARE_FDS: u64 = 128;
/// At most this many failed clients' dialling times are reported.
const MAX_FAILED_AT: usize = 1_000;
/// A call that took longer than this is counted as slow, by second.
const SLOW_CALL: Duration = Duration::from_millis(100);
/// Slow calls are counted by second for at most this many seconds of the run.
const MAX_SECONDS: usize = 86_400;

/// What each client calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Call {
    /// `RemoteClock::now()`: a remote clock read.
    Now,
    /// `Tso::next()`: one TSO timestamp.
    Next,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Self::Now => "now",
            Self::Next => "next",
        }
    }
}

/// Options of `tsbench clients`.
#[derive(Debug, clap::Args)]
pub(crate) struct ClientsArgs {
    /// The tsod site's tsod-client/1 address, IP:PORT or HOST:PORT (the
    /// first address a name resolves to).
    #[arg(long, value_name = "ADDR", value_parser = SiteAddress::parse)]
    site: SiteAddress,
    /// PEM file of the cluster CA (ca.crt from `tsod cluster init`).
    #[arg(long, value_name = "FILE")]
    ca: PathBuf,
    /// The site's name as its certificate carries it (e.g. bj-a). Default:
    /// the host of a --site HOST:PORT; required with an IP:PORT.
    #[arg(long, value_name = "SITE")]
    server_name: Option<String>,
    /// Client certificate chain (PEM), for mutual TLS; needs --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM); needs --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Clients, each with its own connection.
    #[arg(long, value_name = "N", default_value_t = 1_000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connections: u32,
    /// Clients that share one UDP socket (and, with --sources, one source
    /// address); with --sources it must divide --per-prefix. Default 1:
    /// a socket of its own for every client.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=253))]
    per_socket: u32,
    /// Clients started per second, at most.
    #[arg(long, value_name = "PER_SECOND", default_value_t = 1_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    ramp_rate: u32,
    /// Handshakes in progress at once, at most (the site's own limit,
    /// `[clients] max-handshakes`, is 256 by default).
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    in_flight: u32,
    /// How long every client is held, calling, after the ramp (e.g. 30s).
    #[arg(long, value_name = "D", default_value = "30s", value_parser = plan::parse_duration)]
    hold: Duration,
    /// Time between two calls of one client (e.g. 1s, 250ms).
    #[arg(long, value_name = "D", default_value = "1s", value_parser = plan::parse_duration)]
    call_interval: Duration,
    /// Each client's `RemoteOptions::dead_after` (e.g. 3s): a silent site
    /// is noticed within it, and the client sends a QUIC keep-alive every
    /// third of it while idle. Default: the client library's (250 ms, so
    /// about 12 keep-alives a second per idle client).
    #[arg(long, value_name = "D", value_parser = plan::parse_duration)]
    dead_after: Option<Duration>,
    /// What each client calls: now (a remote clock read) or next (a TSO timestamp).
    #[arg(long, value_enum, default_value_t = Call::Now)]
    call: Call,
    /// Spread the clients' source addresses over this IPv4 range of whole
    /// /24s (e.g. 127.0.0.0/8 on loopback). Default: the system's choice,
    /// one address for all (and the site's per-/24 limit for all).
    #[arg(long, value_name = "CIDR", value_parser = SourceRange::parse)]
    sources: Option<SourceRange>,
    /// With --sources: clients in each /24 (1 … 253; the site allows
    /// `[clients] max-connections-per-prefix`, 64 by default).
    #[arg(long, value_name = "N", default_value_t = 50, requires = "sources",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(sources::MAX_PER_PREFIX)))]
    per_prefix: u32,
    /// Worker threads of the clients' tokio runtime.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    threads: usize,
    /// The daemon's process id: its memory, CPU time and open descriptors
    /// are sampled in every phase (from /proc).
    #[arg(long, value_name = "PID")]
    daemon_pid: Option<u32>,
    /// The site's segment: the half-width it publishes is sampled every
    /// 100 ms in every phase.
    #[arg(long, value_name = "PATH")]
    segment: Option<PathBuf>,
    /// With --daemon-pid or --segment: how long the site is watched before
    /// the first client.
    #[arg(long, value_name = "D", default_value = "5s", value_parser = plan::parse_duration)]
    before: Duration,
    /// Print one JSON object (fields documented in tsbench's
    /// clients/report.rs) instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `tsbench clients` and prints its report; fails after printing when
/// no client connected or more than 1 % of clients or calls failed.
pub(crate) fn run(args: &ClientsArgs) -> anyhow::Result<()> {
    let report = measure(args)?;
    crate::report::print(&report, args.json)?;
    if report.failed() {
        anyhow::bail!(
            "{} of {} clients could not connect ({}) and {} of {} calls failed ({}): more than 1 %",
            report.connect_errors,
            report.connections,
            ErrorTally { total: report.connect_errors, by_kind: report.connect_error_kinds.clone() }.kinds_text(),
            report.errors.total,
            report.calls.saturating_add(report.errors.total),
            report.errors.kinds_text()
        );
    }
    Ok(())
}

/// Checks what the run needs of this host, then runs it.
fn measure(args: &ClientsArgs) -> anyhow::Result<ClientsReport> {
    check_sources(args.sources, args.per_prefix, args.connections, args.per_socket)?;
    check_open_files(sockets(args.connections, args.per_socket))?;
    let target = RemoteTarget::new(
        "--site",
        args.site.clone(),
        args.ca.clone(),
        args.server_name.clone(),
        args.cert.clone().zip(args.key.clone()),
    )?;
    let daemon = args.daemon_pid.map(Daemon::new).transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("cannot start a tokio runtime")?;
    runtime.block_on(run_fleet(args, &target, daemon))
}

/// The UDP sockets `connections` clients need at `per_socket` a socket.
fn sockets(connections: u32, per_socket: u32) -> u32 {
    connections.div_ceil(per_socket.max(1))
}

/// Whether `range` holds `connections` clients at `per_prefix` a /24, in
/// whole groups of `per_socket`.
fn check_sources(range: Option<SourceRange>, per_prefix: u32, connections: u32, per_socket: u32) -> anyhow::Result<()> {
    if let Some(range) = range {
        anyhow::ensure!(
            per_prefix % per_socket == 0,
            "--per-socket {per_socket} does not divide --per-prefix {per_prefix}: the clients of one socket share \
             its source address, so they must fit in one /24"
        );
        let capacity = range.capacity(per_prefix);
        anyhow::ensure!(
            u64::from(connections) <= capacity,
            "--sources {range} holds {capacity} clients at --per-prefix {per_prefix}: widen the range or raise \
             --per-prefix for {connections} connections"
        );
    }
    Ok(())
}

/// Whether this process may open `sockets` UDP sockets.
fn check_open_files(sockets: u32) -> anyhow::Result<()> {
    let limits = std::fs::read_to_string("/proc/self/limits").context("reading /proc/self/limits")?;
    let (soft, hard) = daemon::parse_open_files_limit(&limits).context("no open-files limit in /proc/self/limits")?;
    let needed = u64::from(sockets).saturating_add(SPARE_FDS);
    anyhow::ensure!(
        soft >= needed,
        "{sockets} UDP sockets need {needed} open files, and this process may open {soft}: raise it with \
         `ulimit -n {needed}` (the hard limit is {})",
        hard.map_or_else(|| "unlimited".to_owned(), |h| h.to_string())
    );
    Ok(())
}

/// Where client `index` of `connections` makes its first call: this far
/// into its call interval, by the golden-ratio sequence, so that however
/// many clients there are their calls spread evenly over the interval.
fn first_call_offset(index: u32, interval: Duration) -> Duration {
    const GOLDEN: f64 = 0.618_033_988_749_894_9;
    let fraction = (f64::from(index) * GOLDEN).fract();
    interval.mul_f64(fraction)
}

/// One client: its own connection.
enum Client {
    Clock(RemoteClock),
    Tso(Tso),
}

impl Client {
    /// Connects to `addr` (a handshake), or the failure's kind.
    async fn connect(call: Call, addr: SocketAddr, options: RemoteOptions) -> Result<Self, String> {
        match call {
            Call::Now => {
                RemoteClock::connect_with(addr, options).await.map(Self::Clock).map_err(|e| remote_error_kind(&e))
            }
            Call::Next => {
                Tso::connect(addr, TsoOptions::from(options)).await.map(Self::Tso).map_err(|e| tso_error_kind(&e))
            }
        }
    }

    /// One call, or the failure's kind.
    async fn call(&self) -> Result<(), String> {
        match self {
            Self::Clock(clock) => clock.now().await.map(drop).map_err(|e| remote_error_kind(&e)),
            Self::Tso(tso) => tso.next().await.map(drop).map_err(|e| tso_error_kind(&e)),
        }
    }
}

/// What the clients share: the phase, and what they measured.
struct Fleet {
    call: Call,
    addr: SocketAddr,
    interval: Duration,
    /// Set once every client has connected or failed to.
    held: AtomicBool,
    ramp_latency: Mutex<Series>,
    held_latency: Mutex<Series>,
    errors: Mutex<ErrorTally>,
    calls: AtomicU64,
    /// When the ramp started.
    since: Instant,
    /// Per second since `since` (by when each call started): calls that
    /// failed or took over [`SLOW_CALL`], so that a stall shows when.
    slow: Mutex<Vec<u64>>,
}

impl Fleet {
    fn record(&self, started: Instant, held: bool, result: Result<(), String>) {
        let took = started.elapsed();
        if result.is_err() || took > SLOW_CALL {
            let second = usize::try_from(started.saturating_duration_since(self.since).as_secs()).unwrap_or(usize::MAX);
            let mut slow = self.slow.lock().unwrap_or_else(PoisonError::into_inner);
            if second < MAX_SECONDS {
                if slow.len() <= second {
                    slow.resize(second + 1, 0);
                }
                if let Some(n) = slow.get_mut(second) {
                    *n += 1;
                }
            }
        }
        match result {
            Ok(()) => {
                self.calls.fetch_add(1, Ordering::Relaxed);
                let series = if held { &self.held_latency } else { &self.ramp_latency };
                series.lock().unwrap_or_else(PoisonError::into_inner).record_duration(took);
            }
            Err(kind) => self.errors.lock().unwrap_or_else(PoisonError::into_inner).add(&kind),
        }
    }
}

/// How one client's connection went: its handshake time, or the failure's
/// kind and when the client started dialling.
type Connected = Result<Duration, (String, Instant)>;

/// One client's life: connect (holding one of the in-flight permits), say
/// how it went, call every interval until told to stop, let go.
async fn client(
    index: u32,
    options: RemoteOptions,
    fleet: Arc<Fleet>,
    permit: tokio::sync::OwnedSemaphorePermit,
    connected: mpsc::UnboundedSender<Connected>,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let client = Client::connect(fleet.call, fleet.addr, options).await;
    drop(permit);
    let client = match client {
        Ok(client) => {
            let _ = connected.send(Ok(started.elapsed()));
            client
        }
        Err(kind) => {
            let _ = connected.send(Err((kind, started)));
            return;
        }
    };
    drop(connected);
    let mut ticks = tokio::time::interval_at(Instant::now() + first_call_offset(index, fleet.interval), fleet.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let held = fleet.held.load(Ordering::Acquire);
        let call_started = Instant::now();
        let result = client.call().await;
        fleet.record(call_started, held, result);
    }
    drop(client);
}

/// The daemon's snapshot, if it is watched (a failed read is no snapshot).
fn snapshot(daemon: Option<Daemon>) -> Option<Snapshot> {
    daemon.and_then(|d| d.snapshot().ok())
}

/// Tells people what is happening, unless the report is JSON.
fn note(args: &ClientsArgs, text: &str) {
    if !args.json {
        eprintln!("tsbench clients: {text}");
    }
}

async fn run_fleet(args: &ClientsArgs, target: &RemoteTarget, daemon: Option<Daemon>) -> anyhow::Result<ClientsReport> {
    let addr = *target.address.resolve().await?.first().context("the site's address resolves to nothing")?;
    let mut base = target.remote_options();
    if let Some(dead_after) = args.dead_after {
        base.dead_after = dead_after;
    }
    let base_dead_after = base.dead_after;
    let myself = Daemon::new(std::process::id())?;
    let watcher = Watcher::start(daemon, args.segment.as_deref())?;
    let before_start = snapshot(daemon);
    if daemon.is_some() || args.segment.is_some() {
        note(args, &format!("watching the site for {:?} before any client", args.before));
        tokio::time::sleep(args.before).await;
    }
    let ramp_start = snapshot(daemon);
    watcher.enter(Phase::Ramp);

    let fleet = Arc::new(Fleet {
        call: args.call,
        addr,
        interval: args.call_interval,
        held: AtomicBool::new(false),
        ramp_latency: Mutex::new(Series::new(MAX_LATENCY_NS, 1)?),
        held_latency: Mutex::new(Series::new(MAX_LATENCY_NS, 1)?),
        errors: Mutex::new(ErrorTally::default()),
        calls: AtomicU64::new(0),
        since: Instant::now(),
        slow: Mutex::new(Vec::new()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (connected_tx, mut connected_rx) = mpsc::unbounded_channel();
    let in_flight = Arc::new(Semaphore::new(usize::try_from(args.in_flight).unwrap_or(usize::MAX)));
    let mut clients = JoinSet::new();
    note(args, &format!("connecting {} clients at most {}/s", args.connections, args.ramp_rate));
    let started = Instant::now();
    let spacing = Duration::from_secs(1) / args.ramp_rate;
    let mut socket: Option<ClientSocket> = None;
    for index in 0..args.connections {
        tokio::time::sleep_until(started + spacing * index).await;
        let permit = Arc::clone(&in_flight).acquire_owned().await.context("the handshake permits were closed")?;
        // The first client of each group of --per-socket opens its socket,
        // at its own source address; the others of the group share it.
        let first = index - index % args.per_socket;
        let local_address = args.sources.and_then(|r| r.address(u64::from(first), args.per_prefix)).map(IpAddr::V4);
        let options = if args.per_socket == 1 {
            RemoteOptions { local_address, ..base.clone() }
        } else {
            if index == first || socket.is_none() {
                let bind = match (local_address, addr) {
                    (Some(ip), _) => SocketAddr::new(ip, 0),
                    (None, SocketAddr::V4(_)) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
                    (None, SocketAddr::V6(_)) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
                };
                socket = Some(ClientSocket::bind(bind).with_context(|| format!("opening a UDP socket at {bind}"))?);
            }
            RemoteOptions { socket: socket.clone(), ..base.clone() }
        };
        clients.spawn(client(index, options, Arc::clone(&fleet), permit, connected_tx.clone(), stop_rx.clone()));
    }
    drop(connected_tx);
    let mut handshake = Series::new(MAX_LATENCY_NS, 1)?;
    let mut connect_errors = ErrorTally::default();
    let mut failed_at = Vec::new();
    // Every client says once how its connection went, within its timeout.
    while let Some(outcome) = connected_rx.recv().await {
        match outcome {
            Ok(took) => handshake.record_duration(took),
            Err((kind, dialled)) => {
                connect_errors.add(&kind);
                if failed_at.len() < MAX_FAILED_AT {
                    failed_at.push(round_to(dialled.saturating_duration_since(started).as_secs_f64(), 3));
                }
            }
        }
    }
    failed_at.sort_by(f64::total_cmp);
    let ramp = started.elapsed();
    let established = handshake.samples();
    note(args, &format!("{established} connected in {ramp:.2?}; holding them for {:?}", args.hold));

    let held_start = snapshot(daemon);
    let me_held_start = myself.snapshot().ok();
    fleet.held.store(true, Ordering::Release);
    watcher.enter(Phase::Held);
    tokio::time::sleep(args.hold).await;
    let held_end = snapshot(daemon);
    let me_held_end = myself.snapshot().ok();
    let phases = watcher.finish()?;
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(DRAIN, async { while clients.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        note(args, &format!("{} clients did not stop within {DRAIN:?}: aborted", clients.len()));
        clients.abort_all();
    }
    tokio::time::sleep(LINGER).await;

    let errors = fleet.errors.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let latency_ramp = fleet.ramp_latency.lock().unwrap_or_else(PoisonError::into_inner).summary();
    let latency = fleet.held_latency.lock().unwrap_or_else(PoisonError::into_inner).summary();
    let ramp_s = ramp.as_secs_f64();
    Ok(ClientsReport {
        header: RunHeader {
            command: "clients",
            mode: None,
            target: args.site.to_string(),
            address: Some(addr.to_string()),
        },
        call: args.call.name(),
        connections: u64::from(args.connections),
        per_socket: args.per_socket,
        sources: args.sources.map(|r| SourcesField { range: r.to_string(), per_prefix: args.per_prefix }),
        ramp_rate: args.ramp_rate,
        call_interval_s: round_to(args.call_interval.as_secs_f64(), 6),
        dead_after_s: round_to(base_dead_after.as_secs_f64(), 6),
        established,
        connect_errors: connect_errors.total,
        connect_error_kinds: connect_errors.by_kind,
        connect_errors_dialled_at_s: failed_at,
        slow_calls_by_second: fleet.slow.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        ramp_s: round_to(ramp_s, 3),
        handshakes_per_s: if ramp_s > 0.0 { round_to(established as f64 / ramp_s, 1) } else { 0.0 },
        handshake: handshake.summary(),
        held_s: round_to(args.hold.as_secs_f64(), 3),
        calls: fleet.calls.load(Ordering::Relaxed),
        errors,
        latency_ramp,
        latency,
        daemon: args
            .daemon_pid
            .map(|pid| daemon_field(pid, established, &phases, [before_start, ramp_start, held_start, held_end])),
        half_width: args.segment.as_ref().map(|_| half_width_field(&phases)),
        tsbench_cpu_held: me_held_start.zip(me_held_end).and_then(|(a, b)| cpu_share(&a, &b)).map(|s| round_to(s, 4)),
    })
}

/// The daemon's figures from the phases' samples and the snapshots at the
/// boundaries: before, ramp start, held start, held end.
fn daemon_field(pid: u32, established: u64, phases: &[PhaseSamples], at: [Option<Snapshot>; 4]) -> DaemonField {
    // The sampled memory, else (a phase shorter than a sample period) the
    // snapshot at the phase's end.
    let snapshot_rss = |i: usize| at.get(i).copied().flatten().map(|s| s.rss_kib);
    let rss_before =
        phases.get(Phase::Before as usize).and_then(|p| p.rss_kib.last().copied()).or_else(|| snapshot_rss(1));
    let rss_held = phases
        .get(Phase::Held as usize)
        .and_then(|p| p.rss_kib.iter().copied().max())
        .into_iter()
        .chain(snapshot_rss(3))
        .max();
    let share = |from: usize, to: usize| match (at.get(from).copied().flatten(), at.get(to).copied().flatten()) {
        (Some(a), Some(b)) => cpu_share(&a, &b).map(|s| round_to(s, 4)),
        _ => None,
    };
    DaemonField {
        pid,
        rss_before_kib: rss_before,
        rss_held_kib: rss_held,
        rss_per_connection_kib: rss_before
            .zip(rss_held)
            .filter(|_| established > 0)
            .map(|(before, held)| round_to((held as f64 - before as f64) / established as f64, 2)),
        cpu_before: share(0, 1),
        cpu_ramp: share(1, 2),
        cpu_held: share(2, 3),
        fds_before: at.first().copied().flatten().and_then(|s| s.fds),
        fds_held: at.get(3).copied().flatten().and_then(|s| s.fds),
    }
}

/// The published half-width before and while held.
fn half_width_field(phases: &[PhaseSamples]) -> HalfWidthField {
    HalfWidthField {
        before: phases.get(Phase::Before as usize).and_then(PhaseSamples::half_width_summary),
        held: phases.get(Phase::Held as usize).and_then(PhaseSamples::half_width_summary),
        failures: phases.get(Phase::Held as usize).map_or(0, |p| p.half_width_failures),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;
    use crate::cli::FromWords as _;

    const SITE: [&str; 6] = ["--site", "127.0.0.1:4460", "--ca", "ca.crt", "--server-name", "site-a"];

    fn args(extra: &[&str]) -> Result<ClientsArgs, clap::Error> {
        ClientsArgs::from_words(&[&SITE[..], extra].concat())
    }

    #[test]
    fn options_parse_with_their_defaults_and_bounds() {
        let a = args(&[]).unwrap();
        assert_eq!((a.connections, a.ramp_rate, a.in_flight, a.per_prefix, a.threads), (1_000, 1_000, 64, 50, 2));
        assert_eq!((a.hold, a.call_interval, a.call), (Duration::from_secs(30), Duration::from_secs(1), Call::Now));
        assert_eq!((a.sources, a.daemon_pid, a.segment, a.json), (None, None, None, false));
        assert_eq!(a.dead_after, None, "the client library's own by default");
        let a = args(&[
            "--connections",
            "10000",
            "--call",
            "next",
            "--sources",
            "127.0.0.0/8",
            "--per-prefix",
            "40",
            "--hold",
            "1m",
            "--call-interval",
            "250ms",
            "--daemon-pid",
            "42",
            "--segment",
            "/run/seg",
            "--cert",
            "app.crt",
            "--key",
            "app.key",
            "--dead-after",
            "3s",
            "--json",
        ])
        .unwrap();
        assert_eq!((a.connections, a.call, a.per_prefix), (10_000, Call::Next, 40));
        assert_eq!(a.dead_after, Some(Duration::from_secs(3)));
        assert_eq!(a.sources.map(|r| r.to_string()), Some("127.0.0.0/8".to_owned()));
        assert_eq!((a.hold, a.call_interval), (Duration::from_secs(60), Duration::from_millis(250)));
        assert_eq!((a.daemon_pid, a.segment), (Some(42), Some(PathBuf::from("/run/seg"))));
        assert!(a.cert.is_some() && a.key.is_some() && a.json);
        for bad in [
            &["--connections", "0"][..],
            &["--connections", "100001"],
            &["--ramp-rate", "0"],
            &["--in-flight", "0"],
            &["--per-prefix", "10"],
            &["--sources", "127.0.0.0/8", "--per-prefix", "254"],
            &["--sources", "127.0.0.1/8"],
            &["--call", "reserve"],
            &["--hold", "10"],
            &["--call-interval", "0s"],
            &["--cert", "app.crt"],
            &["--threads", "0"],
        ] {
            assert!(args(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(ClientsArgs::from_words(&["--site", "127.0.0.1:4460"]).is_err(), "--ca is required");
        assert!(ClientsArgs::from_words(&["--ca", "ca.crt"]).is_err(), "--site is required");
    }

    #[test]
    fn the_source_range_must_hold_every_client() {
        let range = SourceRange::parse("127.0.0.0/8").ok();
        assert!(check_sources(range, 50, 10_000, 1).is_ok());
        assert!(check_sources(None, 50, 100_000, 7).is_ok(), "no range: nothing to check");
        let small = SourceRange::parse("127.9.0.0/22").ok();
        assert!(check_sources(small, 50, 200, 25).is_ok());
        let error = check_sources(small, 50, 201, 1).unwrap_err().to_string();
        assert!(error.contains("holds 200 clients"), "{error}");
        let error = check_sources(range, 50, 100, 3).unwrap_err().to_string();
        assert!(error.contains("does not divide"), "{error}");
    }

    #[test]
    fn clients_share_sockets_in_whole_groups() {
        assert_eq!(sockets(10_000, 1), 10_000);
        assert_eq!(sockets(10_000, 50), 200);
        assert_eq!(sockets(101, 50), 3, "a last, partial group has its own socket");
    }

    #[test]
    fn first_calls_spread_evenly_over_the_interval() {
        let interval = Duration::from_secs(1);
        let mut buckets = [0u32; 10];
        for i in 0..1_000 {
            let offset = first_call_offset(i, interval);
            assert!(offset < interval, "{i}: {offset:?}");
            buckets[usize::try_from(offset.as_millis() / 100).unwrap()] += 1;
        }
        assert!(buckets.iter().all(|&n| (90..=110).contains(&n)), "{buckets:?}");
        assert_eq!(first_call_offset(0, interval), Duration::ZERO);
    }

    #[test]
    fn daemon_figures_come_from_the_phases() {
        let mut phases: Vec<PhaseSamples> = Vec::new();
        for rss in [vec![16_000, 16_100], vec![20_000], vec![45_000, 46_100, 46_000]] {
            phases.push(PhaseSamples {
                half_width: Series::new(1_000_000, 1).unwrap(),
                half_width_failures: 0,
                rss_kib: rss,
            });
        }
        let field = daemon_field(7, 1_000, &phases, [None; 4]);
        assert_eq!((field.rss_before_kib, field.rss_held_kib), (Some(16_100), Some(46_100)));
        assert_eq!(field.rss_per_connection_kib, Some(30.0));
        assert_eq!((field.cpu_before, field.cpu_held, field.fds_before), (None, None, None));
        assert_eq!(daemon_field(7, 0, &phases, [None; 4]).rss_per_connection_kib, None, "no connection");
        phases[2].half_width.record(40_000);
        let half = half_width_field(&phases);
        assert!(half.before.is_none());
        assert!(half.held.is_some_and(|s| s.p50_ns.abs_diff(40_000) <= 40), "3 significant figures: {half:?}");
    }

    #[test]
    fn the_open_files_check_names_the_ulimit() {
        assert!(check_open_files(1).is_ok(), "a handful of sockets is always allowed");
        let error = check_open_files(100_000_000).unwrap_err().to_string();
        assert!(error.contains("ulimit -n"), "{error}");
    }
}
