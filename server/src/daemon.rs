//! The daemon: a small, boring async shell around the pure
//! [`Engine`]. Source tasks read their inputs and send [`SourceEvent`]s;
//! the main loop feeds them to the engines, publishes every tick to the
//! segment, sends the [`SiteView`] to the QUIC shell and the TSO, and writes
//! the status file once a second. `tsod run` is [`run`] on a loaded
//! [`Config`]; a test or another program can run the same daemon in-process.
//!
//! Two engines run side by side (the no-echo rule, SPEC.md §4.5): the
//! *local basis* over this site's own sources only, which answers peers'
//! probes, and the *site* engine over every source, peers included, whose
//! bound is published. Local samples go to both; peer samples only to the
//! site engine.
//!
//! * [`event`]: what source tasks send (below both tasks and loop).
//! * [`sources`]: starts one task per `[[source]]`; [`ntp_task`] and
//!   [`gpsd_task`] are the NTP and gpsd tasks' I/O.
//! * [`status_file`]: the status file beside the segment.
//! * [`reload`]: SIGHUP re-reads the `[[source]]` list; anything else that
//!   changed refuses the reload and the running configuration stays.

pub mod control;
pub mod event;
mod gpsd_task;
mod ntp_pool;
mod ntp_socket;
mod ntp_task;
mod reload;
mod sources;
pub mod status_file;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};
use tsod_proto::wire::SourceKind;
use tsod_proto::{DriftModel, Offset, Ppb, Timescale};

pub use self::event::SourceEvent;
use crate::clock::{Clock, SimulatedClock, SystemClock, VmClockWatched};
use crate::clockbound::ClockBoundPublisher;
use crate::config::Config;
use crate::engine::{Engine, EngineConfig, SourceId, Tick};
use crate::net::endpoint::{EndpointError, NetSetup};
use crate::net::{PeerEvent, PeerTable};
use crate::ntp_server::identity::Upstream;
use crate::ntp_server::{self, NtpServer, NtpServerError, Upstreams};
use crate::publish::{PublishError, Publisher};
use crate::site::SiteView;
use crate::timescale::LeapSchedule;
use crate::tso::network::PeerConns;
use crate::tso::node::{StartError, TsoNode};

/// Longest the TSO waits at start for round trips to a majority of peers.
const TSO_START_WAIT: Duration = Duration::from_secs(5);

/// Why the daemon could not start, or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The async runtime could not start.
    #[error("starting the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The shared-memory segment could not be set up.
    #[error("setting up the shared-memory segment: {0}")]
    Segment(#[from] PublishError),
    /// The ClockBound-compatible segment (`[clockbound]`) could not be set up.
    #[error("setting up the ClockBound segment: {0}")]
    ClockBound(#[from] crate::clockbound::ClockBoundError),
    /// The OS gave no randomness for the writer instance.
    #[error("no randomness from the OS")]
    Randomness,
    /// The clocks could not be read at start.
    #[error("reading the clocks: {0}")]
    Clock(#[source] std::io::Error),
    /// `[clock] max-drift` makes no drift model.
    #[error("the configured max-drift: {0}")]
    MaxDrift(#[from] tsod_proto::bound::DriftModelError),
    /// A source's thread could not start.
    #[error("starting an NTP source thread: {0}")]
    SourceThread(#[source] std::io::Error),
    /// The QUIC endpoint could not start.
    #[error("starting the QUIC endpoint: {0}")]
    Endpoint(#[from] EndpointError),
    /// The TSO could not start.
    #[error("starting the TSO: {0}")]
    Tso(#[from] StartError),
    /// The NTP server (`[ntp-server]`) could not start.
    #[error("starting the NTP server: {0}")]
    NtpServer(#[from] NtpServerError),
    /// SIGTERM or SIGHUP could not be caught.
    #[error("installing the SIGTERM and SIGHUP handlers: {0}")]
    Signal(#[source] std::io::Error),
    /// Every local source task stopped (a bug: they retry for ever).
    #[error("every source task stopped")]
    SourcesStopped,
}

/// Runs the daemon on a runtime of its own until SIGTERM or Ctrl-C. With
/// no file to read again, SIGHUP reloads nothing (see [`run_reloadable`]).
pub fn run(config: Config) -> Result<(), DaemonError> {
    run_on_own_runtime(serve(config))
}

/// [`run`] on `config`, loaded from `path`, which SIGHUP reads again to
/// reload the sources ([`reload`]).
pub fn run_reloadable(config: Config, path: PathBuf) -> Result<(), DaemonError> {
    run_on_own_runtime(serve_reloadable(config, path))
}

fn run_on_own_runtime(daemon: impl Future<Output = Result<(), DaemonError>>) -> Result<(), DaemonError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    runtime.block_on(daemon)
}

/// Runs the daemon on the current runtime until SIGTERM or Ctrl-C.
pub async fn serve(config: Config) -> Result<(), DaemonError> {
    serve_from(config, None).await
}

/// [`serve`], reloading the sources from `path` on SIGHUP.
pub async fn serve_reloadable(config: Config, path: PathBuf) -> Result<(), DaemonError> {
    serve_from(config, Some(path)).await
}

/// The site engine's and the local basis's settings for `config`.
fn engine_configs(config: &Config) -> (EngineConfig, EngineConfig) {
    let site = EngineConfig {
        max_faulty: config.clock.max_faulty,
        min_agreeing: config.clock.min_agreeing.unwrap_or(config.source_count()),
        horizon: config.clock.horizon(),
        max_sample_age: config.clock.max_sample_age(),
        holdover: config.clock.holdover(),
        frequency: config.frequency(),
    };
    // The local basis never adopts the previous daemon's bound: that bound
    // may have come from peers, and the local basis must not (no echo).
    let local = EngineConfig { max_faulty: None, min_agreeing: config.sources.len().max(1), ..site };
    (site, local)
}

async fn serve_from(config: Config, path: Option<PathBuf>) -> Result<(), DaemonError> {
    let clock: Arc<dyn Clock> = match &config.testing.simulated_clock {
        Some(sim) => {
            warn!("running on a SIMULATED clock ([testing.simulated-clock]); never do this in production");
            Arc::new(SimulatedClock::new(Offset::from_nanos(sim.offset_ns), Ppb::new(sim.frequency_ppb), sim.steps()))
        }
        None => Arc::new(SystemClock),
    };
    let clock = watch_hypervisor(clock, config.clock.vmclock.as_deref());
    let (publisher, previous) = Publisher::open(&config.publish.path, Timescale::UtcSmear24h)?;
    let mut clockbound = config.clockbound.as_ref().map(ClockBoundPublisher::open).transpose()?;
    let status_path = status_file::status_path(&config.publish.path);
    let mut instance = [0u8; 8];
    SystemRandom::new().fill(&mut instance).map_err(|_| DaemonError::Randomness)?;

    let local_sources: Vec<(String, SourceKind)> =
        config.sources.iter().map(|s| (s.name().to_owned(), sources::kind_of(s))).collect();
    let mut site_sources = local_sources.clone();
    site_sources.extend(config.peers.iter().map(|p| (p.name.clone(), SourceKind::Peer)));
    let n_local = local_sources.len();
    let (engine_config, local_config) = engine_configs(&config);
    let first = clock.read().map_err(DaemonError::Clock)?;
    let writer = u64::from_ne_bytes(instance);
    let leaps = Arc::new(leap_schedule(config.clock.leap_seconds_list.as_deref(), first.realtime));
    let mut engine =
        Engine::new(engine_config, site_sources, writer, previous, first).with_leap_schedule(Arc::clone(&leaps));
    let mut local =
        Engine::new(local_config, local_sources, writer, None, first).with_leap_schedule(Arc::clone(&leaps));
    if previous.is_some() {
        info!(path = %config.publish.path.display(), "reusing the segment of a previous daemon");
    }

    let (tx, mut rx) = mpsc::channel::<SourceEvent>(256);
    let (peer_tx, mut peer_rx) = mpsc::channel::<PeerEvent>(256);
    let datasheet = DriftModel::symmetric(config.frequency().max_drift)?;
    let site_name = config.site.as_ref().map_or_else(String::new, |s| s.name.clone());
    let view = |local: &Tick, site: &Tick, engine: &Engine| {
        SiteView::new(&site_name, local, n_local > 0, site, datasheet, engine.sources())
    };
    let first_local = local.tick(first);
    let first_site = engine.tick(first);
    let (view_tx, view_rx) = watch::channel(view(&first_local, &first_site, &engine));
    let upstreams = upstreams_at_start(&config);
    let spawn_context = sources::SpawnContext {
        max_drift: config.frequency().max_drift,
        view: view_rx.clone(),
        clock: Arc::clone(&clock),
        leaps: Arc::clone(&leaps),
        upstreams: Arc::clone(&upstreams),
        tx: tx.downgrade(),
    };
    // Local ids are 0 … n_local − 1 and peers' n_local + peer; a source
    // added by a reload takes an id above all of them.
    let mut local_sources = reload::LocalSources::start(&config.sources, config.source_count(), &spawn_context)
        .map_err(DaemonError::SourceThread)?;
    drop(tx);
    let ntp_server = match &config.ntp_server {
        Some(settings) => {
            let inputs = ntp_server::Inputs {
                clock: Arc::clone(&clock),
                view: view_rx.clone(),
                upstreams: Arc::clone(&upstreams),
                max_drift: config.frequency().max_drift,
            };
            Some(ntp_server::start(settings, &inputs)?)
        }
        None => None,
    };
    let mut tso_failed: Option<oneshot::Receiver<StartError>> = None;
    let net = match &config.site {
        Some(site) => {
            let setup = NetSetup {
                site: site.clone(),
                peers: config.peers.clone(),
                clients: config.clients.clone(),
                max_sample_age: config.clock.max_sample_age(),
            };
            let (endpoint, peers) = crate::net::endpoint::start(setup, Arc::clone(&clock), view_rx.clone(), peer_tx)?;
            if config.tso.enabled {
                tso_failed = Some(start_tso(&config, &site.name, &peers, &clock, view_rx));
                let path = control::control_path(&config.publish.path);
                match control::bind(&path) {
                    Ok(listener) => {
                        tokio::spawn(control::serve(listener, Arc::clone(&peers)));
                    }
                    Err(e) => warn!(
                        error = %e,
                        path = %path.display(),
                        "no control socket: operator commands (tsod tso reset-fence) cannot reach this daemon"
                    ),
                }
            }
            Some((endpoint, peers))
        }
        None => {
            drop(peer_tx);
            None
        }
    };

    let mut interval = tokio::time::interval(config.clock.update_interval());
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut status_every = tokio::time::interval(Duration::from_secs(1));
    // The metrics endpoint renders the latest status snapshot at each
    // scrape: the loop only swaps an Arc into this watch, never waits.
    let metrics_tx = match &config.metrics {
        Some(m) => match crate::metrics::bind(m.listen) {
            Ok(listener) => {
                let (tx, rx) = watch::channel(None);
                info!(listen = %m.listen, "metrics endpoint: http://{}/metrics", m.listen);
                tokio::spawn(crate::metrics::serve(listener, rx));
                Some(tx)
            }
            Err(e) => {
                warn!(error = %e, "no metrics endpoint");
                None
            }
        },
        None => None,
    };
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut hangup =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map_err(DaemonError::Signal)?;
    let mut running = config.clone();
    info!(sources = config.sources.len(), peers = config.peers.len(), path = %config.publish.path.display(), "tsod running");
    for warning in config.voting_warnings().into_iter().chain(config.pps_warnings(crate::config::kernel_pps_present()))
    {
        warn!("{warning}");
    }
    let mut last: Option<Tick> = None;
    let mut peers_open = net.is_some();
    let mut systemd = Systemd::new();
    loop {
        tokio::select! {
            event = rx.recv(), if n_local > 0 => {
                match event {
                    Some(SourceEvent::Sample(id, sample)) => {
                        local.on_sample(id, sample);
                        engine.on_sample(id, sample);
                    }
                    Some(SourceEvent::Reject(id, reason)) => {
                        local.on_reject(id, reason.clone());
                        engine.on_reject(id, reason);
                    }
                    None => return Err(DaemonError::SourcesStopped),
                }
            }
            event = peer_rx.recv(), if peers_open => {
                match event {
                    Some(PeerEvent::Sample { peer, sample }) => engine.on_sample(SourceId(n_local + peer), sample),
                    Some(PeerEvent::Reject { peer, reason }) => engine.on_reject(SourceId(n_local + peer), reason),
                    None => peers_open = false,
                }
            }
            _ = interval.tick() => {}
            () = systemd.watchdog_due() => {
                // From the main loop: a loop that hangs stops feeding it,
                // and systemd restarts the daemon.
                systemd.feed_watchdog();
                continue;
            }
            _ = status_every.tick() => {
                if let Some(tick) = &last {
                    let mut snapshot = status_file::snapshot(tick, engine.sources());
                    snapshot.ntp_server = ntp_server.as_ref().map(NtpServer::status);
                    if let Some((_, peers)) = &net {
                        let local_status = view_tx.borrow().report.local_status;
                        status_file::add_cluster(&mut snapshot, &site_name, local_status, peers);
                    }
                    if let Err(e) = status_file::write(&status_path, &snapshot) {
                        warn!(error = %e, path = %status_path.display(), "cannot write the status file");
                    }
                    if let Some(tx) = &metrics_tx {
                        tx.send_replace(Some(Arc::new(snapshot)));
                    }
                }
                continue;
            }
            failed = async {
                match tso_failed.as_mut() {
                    Some(rx) => rx.await,
                    None => std::future::pending().await,
                }
            }, if tso_failed.is_some() => {
                match failed {
                    Ok(e) => return Err(DaemonError::Tso(e)),
                    Err(_) => tso_failed = None,
                }
            }
            _ = hangup.recv() => {
                let Some(path) = &path else {
                    warn!("SIGHUP: this daemon was started without a configuration file to read again; nothing reloaded");
                    continue;
                };
                systemd.reloading();
                let engines = (&mut local, &mut engine);
                match reload::reload(path, &mut running, &mut local_sources, &spawn_context, engines, n_local) {
                    Ok(plan) => info!(path = %path.display(), "reload: {plan}"),
                    Err(e) => warn!(
                        path = %path.display(),
                        "reload refused, the running configuration stays: {e}"
                    ),
                }
                systemd.reloaded();
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
        let reading = match clock.read() {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "cannot read the clocks; not publishing");
                continue;
            }
        };
        let local_tick = local.tick(reading);
        let tick = engine.tick(reading);
        if let Some(d) = tick.disruption {
            warn!(?d, "clock disruption: dropping samples until the sources agree again");
        }
        if last.as_ref().map(|l| l.state.anchor.status) != Some(tick.state.anchor.status) {
            let anchor = &tick.state.anchor;
            let half_width = anchor.status.is_bounded().then(|| anchor.interval.half_width());
            info!(status = %anchor.status, ?half_width, "status");
        }
        publisher.publish(&tick.state);
        if let Some(clockbound) = clockbound.as_mut() {
            clockbound.publish(&tick.state);
        }
        view_tx.send_replace(view(&local_tick, &tick, &engine));
        systemd.published(&tick.state.anchor);
        last = Some(tick);
    }
    systemd.stopping();
    if let Some((endpoint, peers)) = net {
        if let Some(tso) = peers.tso.get() {
            tso.shutdown().await;
        }
        endpoint.close(0u8.into(), b"tsod stopping");
    }
    info!("tsod stopping; the segment stays valid until its horizon");
    Ok(())
}

/// systemd's service protocol (sd_notify(3)), when tsod runs as a
/// `Type=notify` unit (nothing happens without `$NOTIFY_SOCKET`): READY once
/// the first bounded interval is published, a STATUS line when the status
/// changes, WATCHDOG pings from the main loop at half of `WatchdogSec`, and
/// STOPPING on the way out.
struct Systemd {
    ready: bool,
    status: Option<tsod_proto::ClockStatus>,
    watchdog: Option<tokio::time::Interval>,
}

impl Systemd {
    fn new() -> Self {
        let watchdog = sd_notify::watchdog_enabled().map(|period| {
            let mut every = tokio::time::interval((period / 2).max(Duration::from_millis(100)));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            info!(?period, "systemd watchdog enabled: fed from the main loop");
            every
        });
        Self { ready: false, status: None, watchdog }
    }

    fn notify(states: &[sd_notify::NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(states) {
            warn!(error = %e, "cannot notify systemd");
        }
    }

    /// Resolves when the watchdog is to be fed (never without one).
    async fn watchdog_due(&mut self) {
        match self.watchdog.as_mut() {
            Some(every) => {
                every.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    fn feed_watchdog(&self) {
        Self::notify(&[sd_notify::NotifyState::Watchdog]);
    }

    /// A tick published `anchor`.
    fn published(&mut self, anchor: &tsod_proto::shm::Anchor) {
        if self.status == Some(anchor.status) {
            return;
        }
        self.status = Some(anchor.status);
        let status = if anchor.status.is_bounded() {
            format!("{}, ±{:?}", anchor.status, anchor.interval.half_width())
        } else {
            anchor.status.to_string()
        };
        if !self.ready && anchor.status.is_bounded() {
            self.ready = true;
            Self::notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(&status)]);
        } else {
            Self::notify(&[sd_notify::NotifyState::Status(&status)]);
        }
    }

    /// A reload starts (RELOADING=1 with the monotonic time, as
    /// `Type=notify-reload` requires); nothing before the daemon is ready.
    fn reloading(&self) {
        if !self.ready {
            return;
        }
        match sd_notify::NotifyState::monotonic_usec_now() {
            Ok(now) => Self::notify(&[sd_notify::NotifyState::Reloading, now]),
            Err(e) => warn!(error = %e, "cannot read the monotonic clock for systemd's reload notification"),
        }
    }

    /// A reload ended, applied or refused: ready again.
    fn reloaded(&self) {
        if self.ready {
            Self::notify(&[sd_notify::NotifyState::Ready]);
        }
    }

    fn stopping(&self) {
        Self::notify(&[sd_notify::NotifyState::Stopping]);
    }
}

/// The table of what each source rests on, for the NTP server's stratum
/// (`sources` entries: local sources, then peers). NTP and gpsd tasks fill
/// in theirs as they sample; the kernel source rests on this host's own
/// discipline and a peer on another site, whose strata tsod cannot see.
fn upstreams_at_start(config: &Config) -> Arc<Upstreams> {
    let upstreams = Arc::new(Upstreams::new());
    let localhost = std::net::IpAddr::from([127, 0, 0, 1]);
    for source in &config.sources {
        if let crate::config::SourceConfig::Kernel { name, .. } = source {
            upstreams.set(name, Upstream::unknown(localhost));
        }
    }
    for peer in &config.peers {
        upstreams.set(&peer.name, Upstream::unknown(peer.address.ip()));
    }
    upstreams
}

/// The leap schedule from the list at `path` (`None`: not configured). A
/// list that cannot be used, or none, leaves every month end unknown: `utc`
/// sources then widen by up to half a second around each (SPEC.md §2.5).
fn leap_schedule(path: Option<&std::path::Path>, now: tsod_proto::Timestamp) -> LeapSchedule {
    let Some(path) = path else {
        warn!("no leap-second list configured: utc sources widen by up to 0.5 s around every month end");
        return LeapSchedule::default();
    };
    match crate::leap_list::LeapList::load(path) {
        Ok(list) if list.is_expired(now) => {
            warn!(
                path = %path.display(),
                expired = %list.expires(),
                "the leap-second list has expired (update tzdata): utc sources widen by up to 0.5 s around \
                 every month end after its expiry"
            );
            LeapSchedule::new(Some(list))
        }
        Ok(list) => {
            info!(path = %path.display(), expires = %list.expires(), "leap-second schedule loaded");
            LeapSchedule::new(Some(list))
        }
        Err(e) => {
            warn!(
                error = %e,
                "no usable leap-second list: utc sources widen by up to 0.5 s around every month end"
            );
            LeapSchedule::default()
        }
    }
}

/// `clock`, with the hypervisor's VMClock disruption signal in its readings
/// when the device at `path` can be read (`None`: not configured).
fn watch_hypervisor(clock: Arc<dyn Clock>, path: Option<&std::path::Path>) -> Arc<dyn Clock> {
    let Some(path) = path else { return clock };
    match tsod_shm::VmClock::open(path) {
        Ok(vmclock) => {
            info!(path = %path.display(), "watching the hypervisor's VMClock for migrations and snapshot restores");
            Arc::new(VmClockWatched::new(clock, vmclock))
        }
        Err(tsod_shm::VmClockError::Absent(_)) => {
            info!(
                path = %path.display(),
                "no VMClock device: VM pauses and migrations are caught only when the sources contradict the bound"
            );
            clock
        }
        Err(e) => {
            warn!(
                error = %e,
                path = %path.display(),
                "cannot use the VMClock device: VM pauses and migrations are caught only when the sources \
                 contradict the bound"
            );
            clock
        }
    }
}

/// Starts the TSO in the background once round trips to a majority are
/// measured (its timing comes from them, `tso::timing`), or after
/// [`TSO_START_WAIT`]; the node lands in `peers.tso`. The receiver yields
/// the error if it could not start.
fn start_tso(
    config: &Config,
    name: &str,
    peers: &Arc<PeerTable>,
    clock: &Arc<dyn Clock>,
    view: watch::Receiver<SiteView>,
) -> oneshot::Receiver<StartError> {
    let mut sites = vec![name.to_owned()];
    sites.extend(config.peers.iter().map(|p| p.name.clone()));
    let (failed_tx, failed_rx) = oneshot::channel();
    let (settings, peers, clock, name) =
        (config.tso.node_settings(), Arc::clone(peers), Arc::clone(clock), name.to_owned());
    tokio::spawn(async move {
        wait_for_round_trips(&peers.conns, TSO_START_WAIT).await;
        let conns = Arc::clone(&peers.conns);
        match TsoNode::start(&settings, &name, &sites, conns, clock, view).await {
            Ok(node) => {
                let _ = peers.tso.set(node);
            }
            Err(e) => {
                let _ = failed_tx.send(e);
            }
        }
    });
    failed_rx
}

/// Returns once round trips to a majority of the group's peers are
/// measured, or after `limit`.
async fn wait_for_round_trips(conns: &PeerConns, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let rtts = conns.round_trips();
        let need = rtts.len().saturating_add(1) / 2;
        if rtts.iter().filter(|(_, r)| r.is_some()).count() >= need || tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
