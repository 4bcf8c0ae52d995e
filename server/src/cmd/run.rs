//! `tsod run --config FILE`: the daemon. A small, boring async shell around
//! the pure [`Engine`]: source tasks read their inputs and send samples; the
//! main loop feeds them to the engine, publishes every tick to the segment,
//! and writes the status file once a second.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::mpsc;
use tracing::{info, warn};
use tsod::clock::{Clock, SimulatedClock, SystemClock};
use tsod::config::{Config, SourceConfig};
use tsod::engine::{Engine, EngineConfig, SourceId, Tick};
use tsod::publish::Publisher;
use tsod::sample::Sample;
use tsod::sources::kernel;
use tsod::status_file::{self, StatusSnapshot};
use tsod::timescale::LeapGuard;
use tsod_proto::wire::SourceKind;
use tsod_proto::{Offset, Ppb, Timescale};

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

    let sources = config.sources.iter().map(|s| (s.name().to_owned(), kind_of(s))).collect();
    let engine_config = EngineConfig {
        max_faulty: config.clock.max_faulty,
        min_agreeing: config.clock.min_agreeing.unwrap_or(config.sources.len()),
        horizon: config.clock.horizon(),
        max_sample_age: config.clock.max_sample_age(),
        holdover: config.clock.holdover(),
        frequency: config.frequency(),
    };
    let first = clock.read().context("reading the clocks")?;
    let mut engine = Engine::new(engine_config, sources, u64::from_ne_bytes(instance), previous, first);
    if previous.is_some() {
        info!(path = %config.publish.path.display(), "reusing the segment of a previous daemon");
    }

    let (tx, mut rx) = mpsc::channel::<Event>(256);
    for (index, source) in config.sources.iter().enumerate() {
        spawn_source(SourceId(index), source.clone(), config.frequency().max_drift, Arc::clone(&clock), tx.clone())?;
    }
    drop(tx);

    let mut interval = tokio::time::interval(config.clock.update_interval());
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut status_every = tokio::time::interval(Duration::from_secs(1));
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("installing SIGTERM")?;
    info!(sources = config.sources.len(), path = %config.publish.path.display(), "tsod running");
    let mut last: Option<Tick> = None;
    loop {
        tokio::select! {
            event = rx.recv() => {
                match event {
                    Some(Event::Sample(id, sample)) => engine.on_sample(id, sample),
                    Some(Event::Reject(id, reason)) => engine.on_reject(id, reason),
                    None => anyhow::bail!("every source task stopped"),
                }
            }
            _ = interval.tick() => {}
            _ = status_every.tick() => {
                if let Some(tick) = &last {
                    let snapshot = StatusSnapshot::new(tick, engine.sources());
                    if let Err(e) = status_file::write(&status_path, &snapshot) {
                        warn!(error = %e, path = %status_path.display(), "cannot write the status file");
                    }
                }
                continue;
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
        last = Some(tick);
    }
    info!("tsod stopping; the segment stays valid until its horizon");
    Ok(())
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
