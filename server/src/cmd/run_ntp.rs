//! The NTP source's I/O: one connected UDP socket per server, driven by the
//! sans-IO [`NtpSource`]. t1 is read right before `send`, t4 right after
//! `recv` returns, both on the reader clock; kernel receive timestamps are
//! on `CLOCK_REALTIME` and would not do.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, warn};
use tsod::clock::Clock;
use tsod::engine::SourceId;
use tsod::sources::ntp::{LeapSecond, NtpParams, NtpSource, NtpSourceConfig};
use tsod::timescale::{LeapAnnouncement, LeapGuard};
use tsod_proto::{DriftModel, Ppb};

use super::run::Event;

/// Settings of one NTP source task.
pub(crate) struct NtpTask {
    pub(crate) id: SourceId,
    pub(crate) name: String,
    pub(crate) address: String,
    pub(crate) poll: Duration,
    pub(crate) guard: LeapGuard,
    /// Bound on the reader clock's rate error (the daemon's `max-drift`).
    pub(crate) max_drift: Ppb,
}

/// Runs until the daemon stops; reports samples and refusals on `tx`.
pub(crate) async fn ntp_task(task: NtpTask, clock: Arc<dyn Clock>, tx: mpsc::Sender<Event>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match poll_server(&task, clock.as_ref(), &tx).await {
            Ok(()) => return, // the daemon is stopping
            Err(reason) => {
                if tx.send(Event::Reject(task.id, reason.clone())).await.is_err() {
                    return;
                }
                warn!(source = %task.name, %reason, "NTP source failed; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(64));
            }
        }
    }
}

/// Polls one server until an I/O error (returned) or the daemon stops (Ok).
async fn poll_server(task: &NtpTask, clock: &dyn Clock, tx: &mpsc::Sender<Event>) -> Result<(), String> {
    let server = resolve(&task.address).await?;
    let bind: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(bind).await.map_err(|e| format!("bind: {e}"))?;
    socket.connect(server).await.map_err(|e| format!("connect {server}: {e}"))?;
    let params = NtpParams { local_drift: task.max_drift, ..NtpParams::default() };
    let config = NtpSourceConfig { params, poll_interval: task.poll, ..NtpSourceConfig::default() };
    let mut source = NtpSource::new(config).map_err(|e| format!("configuration: {e}"))?;
    let choose = DriftModel::symmetric(task.max_drift).map_err(|e| e.to_string())?;
    let random = SystemRandom::new();
    let mut guard = task.guard.clone();
    let mut buf = [0u8; 1024];
    loop {
        let now = clock.read().map_err(|e| format!("clock: {e}"))?.raw;
        let Some(due) = source.next_poll(now) else {
            return Err("server refused service (kiss-o'-death DENY/RSTR)".into());
        };
        if due <= now {
            let mut cookie = [0u8; 8];
            random.fill(&mut cookie).map_err(|_| "no randomness from the OS".to_owned())?;
            let t1 = clock.read().map_err(|e| format!("clock: {e}"))?.raw;
            let request = source.start_request(t1, u64::from_ne_bytes(cookie));
            socket.send(&request).await.map_err(|e| format!("send to {server}: {e}"))?;
            continue;
        }
        let wait = Duration::from_nanos(due.as_nanos().saturating_sub(now.as_nanos()));
        tokio::select! {
            received = socket.recv(&mut buf) => {
                let reading = clock.read().map_err(|e| format!("clock: {e}"))?;
                let n = received.map_err(|e| format!("receive from {server}: {e}"))?;
                let event = match source.handle_reply(buf.get(..n).unwrap_or_default(), reading.raw, reading.realtime) {
                    Err(reject) => Event::Reject(task.id, format!("reply refused: {}", reject.name())),
                    Ok(reply) => {
                        let leap = match reply.leap {
                            Some(LeapSecond::Insert) => LeapAnnouncement::Insert,
                            Some(LeapSecond::Delete) => LeapAnnouncement::Delete,
                            None => LeapAnnouncement::None,
                        };
                        if !guard.admit(reply.sample.interval.midpoint(), leap) {
                            Event::Reject(task.id, "utc source paused around an announced leap second".into())
                        } else {
                            debug!(source = %task.name, delay = ?reply.delay, "NTP sample");
                            // The narrowest recent sample, not just the newest.
                            let best = source.best(reading.raw, &choose).map_or(reply.sample, |b| b.sample);
                            Event::Sample(task.id, best)
                        }
                    }
                };
                if tx.send(event).await.is_err() {
                    return Ok(());
                }
            }
            () = tokio::time::sleep(wait) => {}
        }
        if tx.is_closed() {
            return Ok(());
        }
    }
}

async fn resolve(address: &str) -> Result<SocketAddr, String> {
    tokio::net::lookup_host(address)
        .await
        .map_err(|e| format!("resolving {address}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolving {address}: no address"))
}
