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

use crate::clock::{Clock, ClockReading};
use crate::engine::{SourceId, detect_disruption};
use crate::sample::Sample;
use crate::sources::ntp::{LeapSecond, NtpParams, NtpSource, NtpSourceConfig};
use crate::timescale::{LeapAnnouncement, ToService};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::mpsc;
use tracing::{debug, warn};
use tsod_proto::{DriftModel, Ppb};

use super::event::SourceEvent as Event;

/// Settings of one NTP source task.
pub(super) struct NtpTask {
    pub(super) id: SourceId,
    pub(super) name: String,
    pub(super) address: String,
    pub(super) poll: Duration,
    /// Brings samples onto the service timescale.
    pub(super) to_service: ToService,
    /// Bound on the reader clock's rate error (the daemon's `max-drift`).
    pub(super) max_drift: Ppb,
}

/// Starts the source's thread; it runs until the daemon stops (its event
/// channel closes) and reports samples and refusals on `tx`.
pub(super) fn spawn_ntp(task: NtpTask, clock: Arc<dyn Clock>, tx: mpsc::Sender<Event>) -> std::io::Result<()> {
    let name = format!("ntp-{}", task.name);
    std::thread::Builder::new().name(name).spawn(move || ntp_thread(task, clock.as_ref(), &tx)).map(|_| ())
}

/// What survives a reconnect: the poll state (kiss-o'-death, filter) and
/// the conversion's memory of announcements.
struct State {
    source: NtpSource,
    to_service: ToService,
    /// The clocks at the last look, to notice a suspend or step between polls.
    last: Option<ClockReading>,
    /// The clocks when the outstanding request was sent (t1).
    sent: Option<ClockReading>,
}

fn ntp_thread(task: NtpTask, clock: &dyn Clock, tx: &mpsc::Sender<Event>) {
    let params = NtpParams { local_drift: task.max_drift, ..NtpParams::default() };
    let config = NtpSourceConfig { params, poll_interval: task.poll, ..NtpSourceConfig::default() };
    let source = match NtpSource::new(config) {
        Ok(source) => source,
        Err(e) => {
            let _ = tx.blocking_send(Event::Reject(task.id, format!("configuration: {e}")));
            return;
        }
    };
    let mut state = State { source, to_service: task.to_service.clone(), last: None, sent: None };
    let mut backoff = Duration::from_secs(1);
    loop {
        match poll_server(&task, clock, tx, &mut state, &mut backoff) {
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
fn poll_server(
    task: &NtpTask,
    clock: &dyn Clock,
    tx: &mpsc::Sender<Event>,
    state: &mut State,
    backoff: &mut Duration,
) -> Result<(), String> {
    let server = resolve(&task.address)?;
    let bind: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(bind).map_err(|e| format!("bind: {e}"))?;
    socket.connect(server).map_err(|e| format!("connect {server}: {e}"))?;
    let choose = DriftModel::symmetric(task.max_drift).map_err(|e| e.to_string())?;
    let random = SystemRandom::new();
    let mut buf = [0u8; 1024];
    loop {
        let now = look(clock, state)?;
        let Some(due) = state.source.next_poll(now.raw) else {
            return Err("server refused service (kiss-o'-death DENY/RSTR)".into());
        };
        if due <= now.raw {
            let mut cookie = [0u8; 8];
            random.fill(&mut cookie).map_err(|_| "no randomness from the OS".to_owned())?;
            let t1 = clock.read().map_err(|e| format!("clock: {e}"))?;
            let request = state.source.start_request(t1.raw, u64::from_ne_bytes(cookie));
            state.sent = Some(t1);
            socket.send(&request).map_err(|e| format!("send to {server}: {e}"))?;
            continue;
        }
        // Wait for a reply until the next poll is due (at least 1 ms: a zero
        // timeout would mean "block forever").
        let wait =
            Duration::from_nanos(due.as_nanos().saturating_sub(now.raw.as_nanos())).max(Duration::from_millis(1));
        socket.set_read_timeout(Some(wait)).map_err(|e| format!("socket timeout: {e}"))?;
        let received = socket.recv(&mut buf);
        let t4 = clock.read().map_err(|e| format!("clock: {e}"))?;
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
        *backoff = Duration::from_secs(1);
        let event = reply_event(task, state, buf.get(..n).unwrap_or_default(), t4, &choose);
        if tx.blocking_send(event).is_err() {
            return Ok(());
        }
    }
}

/// Reads the clocks; if they were disturbed since the last look (a suspend
/// stops the reader clock, so samples and requests from before it cannot
/// be carried across), forgets every sample and the outstanding request.
fn look(clock: &dyn Clock, state: &mut State) -> Result<ClockReading, String> {
    let now = clock.read().map_err(|e| format!("clock: {e}"))?;
    if state.last.is_some_and(|last| detect_disruption(&last, &now).is_some()) {
        state.source.reset();
        state.sent = None;
    }
    state.last = Some(now);
    Ok(now)
}

/// Turns a reply received at `t4` into the event for the engine.
fn reply_event(task: &NtpTask, state: &mut State, reply: &[u8], t4: ClockReading, choose: &DriftModel) -> Event {
    // A disruption between sending and receiving makes t4 − t1 meaningless.
    if let Some(t1) = state.sent {
        if detect_disruption(&t1, &t4).is_some() {
            state.source.reset();
            state.sent = None;
            return Event::Reject(task.id, "clock disrupted during the exchange".into());
        }
    }
    let to_service = &mut state.to_service;
    let converted = state.source.handle_reply_with(reply, t4.raw, t4.realtime, |mut sample| {
        let leap = match sample.leap {
            Some(LeapSecond::Insert) => LeapAnnouncement::Insert,
            Some(LeapSecond::Delete) => LeapAnnouncement::Delete,
            None => LeapAnnouncement::None,
        };
        sample.sample.interval = to_service.convert(sample.sample.interval, Some(leap));
        sample
    });
    let reply = match converted {
        Err(reject) => return Event::Reject(task.id, format!("reply refused: {}", reject.name())),
        Ok(reply) => reply,
    };
    debug!(source = %task.name, delay = ?reply.delay, "NTP sample");
    Event::Sample(task.id, narrowest(state, t4, choose).unwrap_or(reply.sample))
}

/// Of the recent usable samples ([`crate::sources::ntp::SampleFilter::usable`]:
/// none disjoint from the newest, so a VM pause's leftovers are not
/// chosen), the one whose projection to now is narrowest,
/// sent as measured (its own instant): the engine projects it with its own
/// drift model, so the choice here only has to be good, not exact.
fn narrowest(state: &State, now: ClockReading, choose: &DriftModel) -> Option<Sample> {
    state
        .source
        .filter()
        .usable(now.raw, choose)
        .map(|(kept, projected)| (projected.width(), std::cmp::Reverse(kept.sample.at), kept.sample))
        .min_by_key(|(width, newest, _)| (*width, *newest))
        .map(|(_, _, sample)| sample)
}

fn resolve(address: &str) -> Result<SocketAddr, String> {
    address
        .to_socket_addrs()
        .map_err(|e| format!("resolving {address}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolving {address}: no address"))
}
