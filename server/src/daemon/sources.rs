//! Starting the local source tasks: one per `[[source]]`, each sending
//! [`SourceEvent`]s to the main loop, and stopping one (a reload removed or
//! changed it). The NTP and gpsd tasks have their own modules; the
//! kernel's is small enough to live here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tsod_proto::Ppb;
use tsod_proto::wire::SourceKind;

use super::event::SourceEvent;
use super::gpsd_task::{self, GpsdTask};
use super::ntp_pool::PoolSlot;
use super::ntp_task::{self, NtpTask};
use crate::clock::Clock;
use crate::config::SourceConfig;
use crate::engine::SourceId;
use crate::ntp_server::Upstreams;
use crate::sample::Sample;
use crate::site::SiteView;
use crate::sources::gpsd::GpsdParams;
use crate::sources::kernel;
use crate::timescale::{LeapSchedule, ToService};

/// The kind of a configured source.
pub(super) fn kind_of(source: &SourceConfig) -> SourceKind {
    match source {
        SourceConfig::Ntp { .. } => SourceKind::Ntp,
        SourceConfig::Gpsd { .. } => SourceKind::Gpsd,
        SourceConfig::Kernel { .. } => SourceKind::Kernel,
    }
}

/// What every source task is started with.
pub(super) struct SpawnContext {
    /// The reader clock's rate bound (`max-drift`).
    pub(super) max_drift: Ppb,
    /// The site's view.
    pub(super) view: watch::Receiver<SiteView>,
    /// The clocks.
    pub(super) clock: Arc<dyn Clock>,
    /// The leap schedule.
    pub(super) leaps: Arc<LeapSchedule>,
    /// What each source rests on (the NTP server's stratum), by id.
    pub(super) upstreams: Arc<Upstreams>,
    /// The main loop's event channel, held weakly: once every task has
    /// stopped on its own the loop sees it close (a bug: they retry for ever).
    pub(super) tx: mpsc::WeakSender<SourceEvent>,
}

/// A started source task, until [`SourceTask::stop`].
#[derive(Debug)]
pub(super) struct SourceTask {
    /// Set to stop an NTP thread, which sees it within a poll interval.
    stop: Arc<AtomicBool>,
    /// A tokio task (gpsd, kernel), aborted at once.
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SourceTask {
    /// Stops the task. What it sends after this carries an id the engines
    /// no longer have, and is ignored.
    pub(super) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.task {
            task.abort();
        }
    }
}

/// Starts the task of source `id`; it runs until stopped or `tx` closes.
/// Fails when the OS refuses a thread, or when every task has already
/// stopped (the channel is closed). NTP and gpsd tasks record in
/// `upstreams` what their samples rest on (the NTP server's stratum and
/// reference ID).
pub(super) fn spawn(id: SourceId, source: SourceConfig, context: &SpawnContext) -> std::io::Result<SourceTask> {
    let Some(tx) = context.tx.upgrade() else {
        return Err(std::io::Error::other("every source task stopped"));
    };
    let (max_drift, leaps, upstreams) = (context.max_drift, &context.leaps, &context.upstreams);
    let stop = Arc::new(AtomicBool::new(false));
    let task = match source {
        SourceConfig::Kernel { timescale, poll_interval_ms, .. } => {
            let to_service = ToService::new(timescale, Arc::clone(leaps));
            Some(tokio::spawn(kernel_task(id, crate::config::poll_interval(poll_interval_ms), to_service, tx)))
        }
        SourceConfig::Ntp { name, address, timescale, poll_interval_ms, interleaved, pool_member, .. } => {
            let pool = pool_member.map(|m| PoolSlot { pool: address.clone(), slot: m.slot, slots: m.slots });
            let task = NtpTask {
                id,
                name,
                address,
                poll: crate::config::poll_interval(poll_interval_ms),
                interleaved,
                to_service: ToService::new(timescale, Arc::clone(leaps)),
                max_drift,
                view: context.view.clone(),
                pool,
                upstreams: Arc::clone(upstreams),
                stop: Arc::clone(&stop),
            };
            ntp_task::spawn_ntp(task, Arc::clone(&context.clock), tx)?;
            None
        }
        SourceConfig::Gpsd { name, address, timescale, pps_error_us, nmea_error_us } => {
            let params = GpsdParams {
                pps_error: Duration::from_micros(pps_error_us),
                nmea_error: Duration::from_micros(nmea_error_us),
                ..GpsdParams::default()
            };
            let to_service = ToService::new(timescale, Arc::clone(leaps));
            let upstreams = Arc::clone(upstreams);
            let view = context.view.clone();
            let task = GpsdTask { id, name, address, params, to_service, max_drift, view, upstreams };
            Some(tokio::spawn(gpsd_task::gpsd_task(task, tx)))
        }
    };
    Ok(SourceTask { stop, task })
}

/// Reads the kernel's error bound every poll interval. This is always the
/// host kernel's view: a simulated clock (testbed) does not reach it, so
/// simulated sites configure simulated GPS and NTP sources instead.
async fn kernel_task(id: SourceId, poll: Duration, mut to_service: ToService, tx: mpsc::Sender<SourceEvent>) {
    let mut interval = tokio::time::interval(poll);
    loop {
        interval.tick().await;
        let event = match kernel::read_kernel() {
            Err(e) => SourceEvent::Reject(id, format!("adjtimex: {e}")),
            Ok(reading) => match kernel::kernel_sample(&reading) {
                Err(reject) => SourceEvent::Reject(id, reject.to_string()),
                Ok((sample, leap)) => {
                    let interval = to_service.convert(sample.interval, Some(leap));
                    SourceEvent::Sample(id, Sample { interval, ..sample })
                }
            },
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
}
