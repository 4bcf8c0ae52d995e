//! The NTP source's I/O: one connected UDP socket per server, driven by the
//! sans-IO [`NtpSource`]. t1 is read right before `send`, t4 right after
//! `recv` returns, both on the reader clock; kernel receive timestamps are
//! on `CLOCK_REALTIME` and would not do.
//!
//! Each server gets its own OS thread with a blocking socket rather than an
//! async task: the time between the reply's arrival and the t4 read goes
//! straight into the sample's width, and a thread blocked in `recv` wakes
//! tens of microseconds sooner than a task behind a scheduler (measured
//! with chronyd on loopback: median half-width 37.5 µs as a tokio task).

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
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

/// Starts the source's thread; it runs until the daemon stops (its event
/// channel closes) and reports samples and refusals on `tx`.
pub(crate) fn spawn_ntp(task: NtpTask, clock: Arc<dyn Clock>, tx: mpsc::Sender<Event>) -> std::io::Result<()> {
    let name = format!("ntp-{}", task.name);
    std::thread::Builder::new().name(name).spawn(move || ntp_thread(&task, clock.as_ref(), &tx)).map(|_| ())
}

fn ntp_thread(task: &NtpTask, clock: &dyn Clock, tx: &mpsc::Sender<Event>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match poll_server(task, clock, tx) {
            Ok(()) => return, // the daemon is stopping
            Err(reason) => {
                if tx.blocking_send(Event::Reject(task.id, reason.clone())).is_err() {
                    return;
                }
                warn!(source = %task.name, %reason, "NTP source failed; retrying in {backoff:?}");
                std::thread::sleep(backoff);
                backoff = backoff.saturating_mul(2).min(Duration::from_secs(64));
            }
        }
    }
}

/// Polls one server until an I/O error (returned) or the daemon stops (Ok).
fn poll_server(task: &NtpTask, clock: &dyn Clock, tx: &mpsc::Sender<Event>) -> Result<(), String> {
    let server = resolve(&task.address)?;
    let bind: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(bind).map_err(|e| format!("bind: {e}"))?;
    socket.connect(server).map_err(|e| format!("connect {server}: {e}"))?;
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
            socket.send(&request).map_err(|e| format!("send to {server}: {e}"))?;
            continue;
        }
        // Wait for a reply until the next poll is due (at least 1 ms: a zero
        // timeout would mean "block forever").
        let wait = Duration::from_nanos(due.as_nanos().saturating_sub(now.as_nanos())).max(Duration::from_millis(1));
        socket.set_read_timeout(Some(wait)).map_err(|e| format!("socket timeout: {e}"))?;
        let received = socket.recv(&mut buf);
        let reading = clock.read().map_err(|e| format!("clock: {e}"))?;
        let n = match received {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if tx.is_closed() {
                    return Ok(());
                }
                continue;
            }
            // An ICMP port-unreachable from a dead server shows up here; count
            // it and keep polling rather than tearing the socket down.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                if tx.blocking_send(Event::Reject(task.id, format!("{server}: connection refused"))).is_err() {
                    return Ok(());
                }
                continue;
            }
            Err(e) => return Err(format!("receive from {server}: {e}")),
        };
        let event = match source.handle_reply(buf.get(..n).unwrap_or_default(), reading.raw, reading.realtime) {
            Err(reject) => Event::Reject(task.id, format!("reply refused: {}", reject.name())),
            Ok(reply) => {
                let leap = match reply.leap {
                    Some(LeapSecond::Insert) => LeapAnnouncement::Insert,
                    Some(LeapSecond::Delete) => LeapAnnouncement::Delete,
                    None => LeapAnnouncement::None,
                };
                if guard.admit(reply.sample.interval.midpoint(), leap) {
                    debug!(source = %task.name, delay = ?reply.delay, "NTP sample");
                    // The narrowest recent sample, not just the newest.
                    let best = source.best(reading.raw, &choose).map_or(reply.sample, |b| b.sample);
                    Event::Sample(task.id, best)
                } else {
                    Event::Reject(task.id, "utc source paused around an announced leap second".into())
                }
            }
        };
        if tx.blocking_send(event).is_err() {
            return Ok(());
        }
    }
}

fn resolve(address: &str) -> Result<SocketAddr, String> {
    address
        .to_socket_addrs()
        .map_err(|e| format!("resolving {address}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolving {address}: no address"))
}
