//! Starting the local source tasks: one per `[[source]]`, each sending
//! [`SourceEvent`]s to the main loop. The NTP and gpsd tasks have their own
//! modules; the kernel's is small enough to live here.

use std::sync::Arc;
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

/// Starts the task of source `id`; it runs until `tx` closes. Fails only
/// when the OS refuses a thread. NTP and gpsd tasks record in `upstreams`
/// what their samples rest on (the NTP server's stratum and reference ID).
#[allow(clippy::too_many_arguments, reason = "a source task's context, passed once")]
pub(super) fn spawn(
    id: SourceId,
    source: SourceConfig,
    max_drift: Ppb,
    view: watch::Receiver<SiteView>,
    clock: Arc<dyn Clock>,
    leaps: &Arc<LeapSchedule>,
    upstreams: &Arc<Upstreams>,
    tx: mpsc::Sender<SourceEvent>,
) -> std::io::Result<()> {
    match source {
        SourceConfig::Kernel { timescale, poll_interval_ms, .. } => {
            let to_service = ToService::new(timescale, Arc::clone(leaps));
            tokio::spawn(kernel_task(id, crate::config::poll_interval(poll_interval_ms), to_service, tx));
            Ok(())
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
                view,
                pool,
                upstreams: Arc::clone(upstreams),
            };
            ntp_task::spawn_ntp(task, clock, tx)
        }
        SourceConfig::Gpsd { name, address, timescale, pps_error_us, nmea_error_us } => {
            let params = GpsdParams {
                pps_error: Duration::from_micros(pps_error_us),
                nmea_error: Duration::from_micros(nmea_error_us),
                ..GpsdParams::default()
            };
            let to_service = ToService::new(timescale, Arc::clone(leaps));
            let upstreams = Arc::clone(upstreams);
            let task = GpsdTask { id, name, address, params, to_service, max_drift, view, upstreams };
            tokio::spawn(gpsd_task::gpsd_task(task, tx));
            Ok(())
        }
    }
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
