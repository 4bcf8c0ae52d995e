//! `tsod run --config FILE`: the daemon. A small, boring async shell around
//! the pure [`Engine`]: source tasks read their inputs and send samples; the
//! main loop feeds them to the engines, publishes every tick to the segment,
//! and writes the status file once a second.
//!
//! Two engines run side by side (the no-echo rule, SPEC.md §4.5): the
//! *local basis* over this site's own sources only, which answers peers'
//! probes, and the *site* engine over every source, peers included, whose
//! bound is published. Local samples go to both; peer samples only to the
//! site engine.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::mpsc;
use tokio::sync::watch;
use tracing::{info, warn};
use tsod::clock::{Clock, SimulatedClock, SystemClock};
use tsod::config::{Config, SourceConfig};
use tsod::engine::{Engine, EngineConfig, SourceId, SourceState, Tick};
use tsod::net::endpoint::NetSetup;
use tsod::net::{Cluster, OwnReport, OwnSource, PeerEvent, SiteView};
use tsod::publish::Publisher;
use tsod::sample::Sample;
use tsod::sources::kernel;
use tsod::status_file::{self, StatusSnapshot};
use tsod::timescale::LeapGuard;
use tsod::tso::node::TsoNode;
use tsod_proto::shm::PublishedState;
use tsod_proto::wire::SourceKind;
use tsod_proto::{ClockStatus, DriftModel, Offset, Ppb, Timescale};

/// What source tasks tell the main loop.
#[derive(Debug)]
pub(crate) enum Event {
    /// A new sample.
    Sample(SourceId, Sample),
    /// An input was refused (the reason is counted and shown in status).
    Reject(SourceId, String),
}

pub(crate) fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = match &config.testing.simulated_clock {
        Some(sim) => {
            warn!("running on a SIMULATED clock ([testing.simulated-clock]); never do this in production");
            Arc::new(SimulatedClock::new(Offset::from_nanos(sim.offset_ns), Ppb::new(sim.frequency_ppb), sim.steps()))
        }
        None => Arc::new(SystemClock),
    };
    let (publisher, previous) = Publisher::open(&config.publish.path, Timescale::UtcSmear24h)
        .context("setting up the shared-memory segment")?;
    let status_path = status_file::status_path(&config.publish.path);
    let mut instance = [0u8; 8];
    SystemRandom::new().fill(&mut instance).map_err(|_| anyhow::anyhow!("no randomness from the OS"))?;

    let local_sources: Vec<(String, SourceKind)> =
        config.sources.iter().map(|s| (s.name().to_owned(), kind_of(s))).collect();
    let mut site_sources = local_sources.clone();
    site_sources.extend(config.peers.iter().map(|p| (p.name.clone(), SourceKind::Peer)));
    let n_local = local_sources.len();
    let engine_config = EngineConfig {
        max_faulty: config.clock.max_faulty,
        min_agreeing: config.clock.min_agreeing.unwrap_or(config.source_count()),
        horizon: config.clock.horizon(),
        max_sample_age: config.clock.max_sample_age(),
        holdover: config.clock.holdover(),
        frequency: config.frequency(),
    };
    // The local basis never adopts the previous daemon's bound: that bound
    // may have come from peers, and the local basis must not (no echo).
    let local_config = EngineConfig { max_faulty: None, min_agreeing: n_local.max(1), ..engine_config };
    let first = clock.read().context("reading the clocks")?;
    let writer = u64::from_ne_bytes(instance);
    let mut engine = Engine::new(engine_config, site_sources, writer, previous, first);
    let mut local = Engine::new(local_config, local_sources, writer, None, first);
    if previous.is_some() {
        info!(path = %config.publish.path.display(), "reusing the segment of a previous daemon");
    }

    let (tx, mut rx) = mpsc::channel::<Event>(256);
    for (index, source) in config.sources.iter().enumerate() {
        spawn_source(SourceId(index), source.clone(), config.frequency().max_drift, Arc::clone(&clock), tx.clone())?;
    }
    drop(tx);
    let (peer_tx, mut peer_rx) = mpsc::channel::<PeerEvent>(256);
    let datasheet = DriftModel::symmetric(config.frequency().max_drift).context("the configured max-drift")?;
    let first_local = local.tick(first);
    let first_site = engine.tick(first);
    let (view_tx, view_rx) =
        watch::channel(site_view(&config, &first_local, &first_site, datasheet, engine.sources(), n_local));
    let mut tso_failed: Option<tokio::sync::oneshot::Receiver<tsod::tso::node::StartError>> = None;
    let net = match &config.site {
        Some(site) => {
            let setup = NetSetup {
                site: site.clone(),
                peers: config.peers.clone(),
                clients: config.clients.clone(),
                max_sample_age: config.clock.max_sample_age(),
            };
            let (endpoint, cluster) = tsod::net::endpoint::start(setup, Arc::clone(&clock), view_rx.clone(), peer_tx)
                .context("starting the QUIC endpoint")?;
            if config.tso.enabled {
                let mut sites = vec![site.name.clone()];
                sites.extend(config.peers.iter().map(|p| p.name.clone()));
                let (failed_tx, failed_rx) = tokio::sync::oneshot::channel();
                tso_failed = Some(failed_rx);
                let (tso, cluster, clock, name) =
                    (config.tso.clone(), Arc::clone(&cluster), Arc::clone(&clock), site.name.clone());
                tokio::spawn(async move {
                    // The TSO's timing comes from the measured round trips
                    // (tso::timing): wait for a majority's, briefly.
                    wait_for_round_trips(&cluster.conns, TSO_START_WAIT).await;
                    let conns = Arc::clone(&cluster.conns);
                    match TsoNode::start(&tso, &name, &sites, conns, clock, view_rx).await {
                        Ok(node) => {
                            let _ = cluster.tso.set(node);
                        }
                        Err(e) => {
                            let _ = failed_tx.send(e);
                        }
                    }
                });
            }
            Some((endpoint, cluster))
        }
        None => {
            drop(peer_tx);
            None
        }
    };

    let mut interval = tokio::time::interval(config.clock.update_interval());
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut status_every = tokio::time::interval(Duration::from_secs(1));
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("installing SIGTERM")?;
    info!(sources = config.sources.len(), peers = config.peers.len(), path = %config.publish.path.display(), "tsod running");
    let mut last: Option<Tick> = None;
    let mut peers_open = net.is_some();
    loop {
        tokio::select! {
            event = rx.recv(), if n_local > 0 => {
                match event {
                    Some(Event::Sample(id, sample)) => {
                        local.on_sample(id, sample);
                        engine.on_sample(id, sample);
                    }
                    Some(Event::Reject(id, reason)) => {
                        local.on_reject(id, reason.clone());
                        engine.on_reject(id, reason);
                    }
                    None => anyhow::bail!("every source task stopped"),
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
            _ = status_every.tick() => {
                if let Some(tick) = &last {
                    let mut snapshot = StatusSnapshot::new(tick, engine.sources());
                    if let Some((_, cluster)) = &net {
                        add_cluster(&mut snapshot, &config, cluster, view_tx.borrow().report.local_status);
                    }
                    if let Err(e) = status_file::write(&status_path, &snapshot) {
                        warn!(error = %e, path = %status_path.display(), "cannot write the status file");
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
                    Ok(e) => return Err(anyhow::Error::new(e).context("starting the TSO")),
                    Err(_) => tso_failed = None,
                }
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
        view_tx.send_replace(site_view(&config, &local_tick, &tick, datasheet, engine.sources(), n_local));
        last = Some(tick);
    }
    if let Some((endpoint, cluster)) = net {
        if let Some(tso) = cluster.tso.get() {
            tso.shutdown().await;
        }
        endpoint.close(0u8.into(), b"tsod stopping");
    }
    info!("tsod stopping; the segment stays valid until its horizon");
    Ok(())
}

/// Longest the TSO waits at start for round trips to a majority of peers.
const TSO_START_WAIT: Duration = Duration::from_secs(5);

/// Returns once round trips to a majority of the group's peers are
/// measured, or after `limit`.
async fn wait_for_round_trips(conns: &tsod::tso::network::PeerConns, limit: Duration) {
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

/// What the QUIC shell needs from this tick.
fn site_view<'a>(
    config: &Config,
    local: &Tick,
    site: &Tick,
    datasheet: DriftModel,
    sources: impl Iterator<Item = &'a SourceState>,
    n_local: usize,
) -> SiteView {
    let published: PublishedState = site.state;
    let anchor = published.anchor;
    let report = OwnReport {
        site: config.site.as_ref().map_or_else(String::new, |s| s.name.clone()),
        status: anchor.status,
        local_status: if n_local == 0 { ClockStatus::Unsynchronized } else { local.state.anchor.status },
        half_width: anchor.status.is_bounded().then(|| anchor.interval.half_width()),
        drift_bound: site.model.map_or(datasheet.bound(), |m| m.bound()),
        sources: sources
            .map(|s| OwnSource {
                kind: s.kind,
                name: s.name.clone(),
                usable: s.usable,
                falseticker: s.falseticker,
                offset: s.offset.unwrap_or(Offset::from_nanos(0)),
                error: s.error.unwrap_or(Duration::ZERO),
            })
            .collect(),
    };
    SiteView { local: local.state, published, drift: site.model, report }
}

/// Adds this site's name, its peers and the endpoint's counters to the status.
fn add_cluster(snapshot: &mut StatusSnapshot, config: &Config, cluster: &Cluster, local_status: ClockStatus) {
    snapshot.site = config.site.as_ref().map(|s| s.name.clone());
    snapshot.local_status = Some(local_status.to_string());
    snapshot.peers = cluster.snapshot();
    snapshot.endpoint = cluster.counters.snapshot();
    snapshot.tso = cluster.tso.get().map(|t| t.status());
}

fn kind_of(source: &SourceConfig) -> SourceKind {
    match source {
        SourceConfig::Ntp { .. } => SourceKind::Ntp,
        SourceConfig::Gpsd { .. } => SourceKind::Gpsd,
        SourceConfig::Kernel { .. } => SourceKind::Kernel,
    }
}

fn spawn_source(
    id: SourceId,
    source: SourceConfig,
    max_drift: Ppb,
    clock: Arc<dyn Clock>,
    tx: mpsc::Sender<Event>,
) -> anyhow::Result<()> {
    match source {
        SourceConfig::Kernel { timescale, poll_interval_ms, .. } => {
            tokio::spawn(kernel_task(id, Duration::from_millis(poll_interval_ms), LeapGuard::new(timescale), tx));
            Ok(())
        }
        SourceConfig::Ntp { name, address, timescale, poll_interval_ms } => {
            let task = super::run_ntp::NtpTask {
                id,
                name,
                address,
                poll: Duration::from_millis(poll_interval_ms),
                guard: LeapGuard::new(timescale),
                max_drift,
            };
            super::run_ntp::spawn_ntp(task, clock, tx).context("starting an NTP source thread")
        }
        SourceConfig::Gpsd { name, address, timescale, pps_error_us, nmea_error_us } => {
            let params = tsod::sources::gpsd::GpsdParams {
                pps_error: Duration::from_micros(pps_error_us),
                nmea_error: Duration::from_micros(nmea_error_us),
                ..tsod::sources::gpsd::GpsdParams::default()
            };
            let task =
                super::run_gpsd::GpsdTask { id, name, address, params, guard: LeapGuard::new(timescale), max_drift };
            tokio::spawn(super::run_gpsd::gpsd_task(task, tx));
            Ok(())
        }
    }
}

/// Reads the kernel's error bound every poll interval. This is always the
/// host kernel's view: a simulated clock (testbed) does not reach it, so
/// simulated sites configure simulated GPS and NTP sources instead.
async fn kernel_task(id: SourceId, poll: Duration, mut guard: LeapGuard, tx: mpsc::Sender<Event>) {
    let mut interval = tokio::time::interval(poll);
    loop {
        interval.tick().await;
        let event = match kernel::read_kernel() {
            Err(e) => Event::Reject(id, format!("adjtimex: {e}")),
            Ok(reading) => match kernel::kernel_sample(&reading) {
                Err(reject) => Event::Reject(id, reject.to_string()),
                Ok((sample, leap)) => {
                    if guard.admit(sample.interval.midpoint(), leap) {
                        Event::Sample(id, sample)
                    } else {
                        Event::Reject(id, "utc source paused around an announced leap second".into())
                    }
                }
            },
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
}
