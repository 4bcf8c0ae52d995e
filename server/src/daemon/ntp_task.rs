//! The NTP source's I/O: one connected UDP socket per server, driven by the
//! sans-IO [`NtpSource`]. t1 is read right before `send`, t4 right after
//! `recv` returns, both on the reader clock. With them, the kernel's own
//! timestamps of the request's departure and the reply's arrival
//! ([`super::ntp_socket`]), on `CLOCK_REALTIME`, bracketed by realtime
//! readings of our own and mapped onto the reader clock with realtime's
//! rate bound ([`crate::sources::ntp::wire`]): the send path and the
//! wake-up, tens of microseconds, then no longer widen the sample.
//!
//! Each server gets its own OS thread with a blocking socket rather than an
//! async task: what the kernel timestamps cannot take out (the realtime
//! rate bound times the wake-up) still grows with the time between the
//! reply's arrival and the t4 read, and a thread blocked in `recv` wakes
//! tens of microseconds sooner than a task behind a scheduler (measured
//! with chronyd on loopback: median half-width 37.5 µs as a tokio task,
//! before kernel timestamps).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::clock::{Clock, ClockReading, realtime_rate_bound};
use crate::engine::{SourceId, detect_disruption};
use crate::sample::Sample;
use crate::sources::ntp::wire::{KernelStamps, StampModel, wire_times};
use crate::sources::ntp::{LeapSecond, NtpParams, NtpSource, NtpSourceConfig, WireTimes};
use crate::timescale::{LeapAnnouncement, ToService};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};
use tsod_client::sys;
use tsod_proto::{DriftModel, MonoInstant, Ppb, Timestamp};

use super::event::SourceEvent as Event;
use super::ntp_pool::{self, Avoided, PoolSlot, Replacement};
use super::ntp_socket::NtpSocket;
use crate::site::SiteView;

/// Settings of one NTP source task.
pub(super) struct NtpTask {
    pub(super) id: SourceId,
    pub(super) name: String,
    pub(super) address: String,
    pub(super) poll: Duration,
    /// Ask the server for interleaved replies.
    pub(super) interleaved: bool,
    /// Brings samples onto the service timescale.
    pub(super) to_service: ToService,
    /// Bound on the reader clock's rate error (the daemon's `max-drift`).
    pub(super) max_drift: Ppb,
    /// The site's view, whose measured drift model chooses among the kept
    /// samples (the datasheet bound until one is measured), and whose
    /// report says whether selection calls this source a falseticker.
    pub(super) view: watch::Receiver<SiteView>,
    /// A member of a pool source: `address` names the pool, and the member
    /// polls one of its addresses at a time ([`super::ntp_pool`]).
    pub(super) pool: Option<PoolSlot>,
    /// Where the server's stratum and address are recorded after each
    /// accepted reply (the NTP server's stratum and reference ID).
    pub(super) upstreams: Arc<crate::ntp_server::Upstreams>,
    /// Set when a reload removes or changes the source: the thread ends
    /// at its next wake-up (within a poll interval, or a retry's backoff).
    pub(super) stop: Arc<AtomicBool>,
}

impl NtpTask {
    /// The thread is to end: the source was stopped, or the daemon is
    /// stopping (the event channel closed).
    fn stopped(&self, tx: &mpsc::Sender<Event>) -> bool {
        self.stop.load(Ordering::Relaxed) || tx.is_closed()
    }
}

impl From<String> for Ended {
    fn from(why: String) -> Self {
        Self::Failed(why)
    }
}

impl From<&str> for Ended {
    fn from(why: &str) -> Self {
        Self::Failed(why.to_owned())
    }
}

/// Why [`poll_server`] stopped.
enum Ended {
    /// The daemon is stopping.
    Stopping,
    /// An I/O or protocol failure: retried with backoff.
    Failed(String),
    /// A pool member gives its server up (unreachable or a falseticker)
    /// and takes another address of the pool.
    Replace {
        /// The server given up.
        server: SocketAddr,
        /// Why.
        why: String,
    },
}

/// Starts the source's thread; it runs until the source is stopped or the
/// daemon stops (its event channel closes) and reports samples and refusals on `tx`.
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
    /// The outstanding request's sending.
    sent: Option<Sent>,
}

/// What was read as the outstanding request was sent.
struct Sent {
    /// The clocks at t1.
    reading: ClockReading,
    /// The host's realtime, read after t1 and before sending.
    realtime: Timestamp,
    /// The kernel's id of the datagram, for its departure timestamp.
    id: u32,
    /// The kernel's discipline state as it was sent.
    kernel: Option<tsod_shm::KernelClockState>,
}

/// How the readings and kernel timestamps are judged, fixed per thread.
struct Readings {
    /// The resolution of the host's realtime and reader clocks.
    resolution: Duration,
    /// The reader clock's rate bound (the daemon's `max-drift`).
    drift: Ppb,
}

fn ntp_thread(task: NtpTask, clock: &dyn Clock, tx: &mpsc::Sender<Event>) {
    let resolution = clock_resolution();
    let params = NtpParams { local_drift: task.max_drift, local_precision: resolution, ..NtpParams::default() };
    let config = NtpSourceConfig {
        params,
        poll_interval: task.poll,
        interleaved: task.interleaved,
        ..NtpSourceConfig::default()
    };
    let source = match NtpSource::new(config) {
        Ok(source) => source,
        Err(e) => {
            let _ = tx.blocking_send(Event::Reject(task.id, format!("configuration: {e}")));
            return;
        }
    };
    let mut state = State { source, to_service: task.to_service.clone(), last: None, sent: None };
    let readings = Readings { resolution, drift: task.max_drift };
    let mut backoff = Duration::from_secs(1);
    let mut avoided = Avoided::default();
    loop {
        if task.stopped(tx) {
            return;
        }
        match poll_server(&task, clock, tx, &mut state, &readings, &mut backoff, &mut avoided) {
            Ended::Stopping => return,
            Ended::Replace { server, why } => {
                let reason = format!("{server} replaced: {why}");
                if tx.blocking_send(Event::Reject(task.id, reason.clone())).is_err() {
                    return;
                }
                warn!(source = %task.name, %reason, "NTP pool member takes another address of the pool");
                avoided.add(server, std::time::Instant::now());
                // The filter's samples are the old server's.
                match NtpSource::new(config) {
                    Ok(source) => state.source = source,
                    Err(_) => return,
                }
                state.sent = None;
                std::thread::sleep(Duration::from_secs(1));
            }
            Ended::Failed(reason) => {
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

/// Polls one server until the daemon stops, an I/O error, or (a pool
/// member) the server is to be replaced.
fn poll_server(
    task: &NtpTask,
    clock: &dyn Clock,
    tx: &mpsc::Sender<Event>,
    state: &mut State,
    readings: &Readings,
    backoff: &mut Duration,
    avoided: &mut Avoided,
) -> Ended {
    // A pool member holds its address for as long as it polls it.
    let (server, _claim) = match &task.pool {
        None => match resolve(&task.address) {
            Ok(server) => (server, None),
            Err(e) => return Ended::Failed(e),
        },
        Some(slot) => {
            let resolved = match ntp_pool::resolve_all(&slot.pool) {
                Ok(resolved) => resolved,
                Err(e) => return Ended::Failed(e),
            };
            match ntp_pool::claim(slot, &resolved, &avoided.at(std::time::Instant::now())) {
                Some(claim) => (claim.addr, Some(claim)),
                None => {
                    return Ended::Failed(format!(
                        "pool {}: no spare address ({} resolved, every one polled by another member or given up)",
                        slot.pool,
                        resolved.len()
                    ));
                }
            }
        }
    };
    let mut replacement = task.pool.as_ref().map(|_| Replacement::new(task.poll, std::time::Instant::now()));
    match poll_loop(task, clock, tx, state, readings, backoff, server, replacement.as_mut()) {
        Ok(()) => Ended::Stopping,
        Err(Ended::Failed(e)) => Ended::Failed(e),
        Err(other) => other,
    }
}

/// Polls `server` (see [`poll_server`]); `Ok` when the daemon stops.
#[allow(clippy::too_many_arguments, reason = "the thread's state, passed once")]
fn poll_loop(
    task: &NtpTask,
    clock: &dyn Clock,
    tx: &mpsc::Sender<Event>,
    state: &mut State,
    readings: &Readings,
    backoff: &mut Duration,
    server: SocketAddr,
    mut replacement: Option<&mut Replacement>,
) -> Result<(), Ended> {
    let mut socket = NtpSocket::connect(server).map_err(|e| Ended::Failed(format!("connect {server}: {e}")))?;
    if !socket.stamping() {
        warn!(
            source = %task.name,
            "the kernel gives this socket no packet timestamps: samples carry the send path and the wake-up"
        );
    }
    let datasheet = DriftModel::symmetric(task.max_drift).map_err(|e| e.to_string())?;
    let random = SystemRandom::new();
    let mut buf = [0u8; 1024];
    loop {
        let now = look(clock, state)?;
        if let Some(r) = replacement.as_deref_mut() {
            let falseticker = task.view.borrow().report.sources.iter().any(|s| s.name == task.name && s.falseticker);
            if let Some(why) = r.check(std::time::Instant::now(), falseticker) {
                return Err(Ended::Replace { server, why });
            }
        }
        let Some(due) = state.source.next_poll(now.raw) else {
            let why = "it refused service (kiss-o'-death DENY/RSTR)";
            if replacement.is_some() {
                return Err(Ended::Replace { server, why: why.to_owned() });
            }
            return Err(why.into());
        };
        if due <= now.raw {
            let mut cookie = [0u8; 8];
            random.fill(&mut cookie).map_err(|_| "no randomness from the OS".to_owned())?;
            let kernel = tsod_shm::kernel_clock_state().ok();
            let t1 = clock.read().map_err(|e| format!("clock: {e}"))?;
            let realtime = sys::realtime_now().map_err(|e| format!("clock: {e}"))?;
            let request = state.source.start_request(t1.raw, u64::from_ne_bytes(cookie));
            let id = socket.send(&request).map_err(|e| format!("send to {server}: {e}"))?;
            state.sent = Some(Sent { reading: t1, realtime, id, kernel });
            continue;
        }
        // Wait for a reply until the next poll is due (at least 1 ms: a zero
        // timeout would mean "block forever").
        let wait =
            Duration::from_nanos(due.as_nanos().saturating_sub(now.raw.as_nanos())).max(Duration::from_millis(1));
        let received = socket.recv(&mut buf, wait);
        // p, r, then t4 (clock.read() reads the reader clock first).
        let received_raw = sys::reader_clock_now().map_err(|e| format!("clock: {e}"))?;
        let received_realtime = sys::realtime_now().map_err(|e| format!("clock: {e}"))?;
        let t4 = clock.read().map_err(|e| format!("clock: {e}"))?;
        let received = match received {
            Ok(received) => received,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if task.stopped(tx) {
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
            Err(e) => return Err(format!("receive from {server}: {e}").into()),
        };
        *backoff = Duration::from_secs(1);
        let arrival = Arrival { arrived: received.arrived, raw: received_raw, realtime: received_realtime, t4 };
        let reply = buf.get(..received.len).unwrap_or_default();
        // Choose with the drift model the engine will carry the sample
        // with: the datasheet's 100 ppm would always favour the newest.
        let choose = task.view.borrow().drift.unwrap_or(datasheet);
        let event = reply_event(task, state, &mut socket, readings, reply, &arrival, &choose);
        if let (Some(r), Event::Sample(..)) = (replacement.as_deref_mut(), &event) {
            r.on_sample(std::time::Instant::now());
        }
        if task.stopped(tx) || tx.blocking_send(event).is_err() {
            return Ok(());
        }
    }
}

/// What was read as a datagram was received.
struct Arrival {
    /// The kernel's arrival timestamp.
    arrived: Option<Timestamp>,
    /// p: the reader clock, read as `recv` returned.
    raw: MonoInstant,
    /// r: the host's realtime, read after p.
    realtime: Timestamp,
    /// t4: the clocks, read after r.
    t4: ClockReading,
}

/// The exchange's [`WireTimes`] from the kernel's timestamps, or none if
/// there are none or they are refused (`sources::ntp::wire`).
fn wire_of(task: &NtpTask, sent: &Sent, socket: &mut NtpSocket, readings: &Readings, arrival: &Arrival) -> WireTimes {
    let stamps = KernelStamps {
        t1: sent.reading.raw,
        sent_realtime: sent.realtime,
        departed: socket.departure(sent.id),
        arrived: arrival.arrived,
        received_raw: arrival.raw,
        received_realtime: arrival.realtime,
        t4: arrival.t4.raw,
    };
    tracing::trace!(source = %task.name, ?stamps, "kernel timestamps of the exchange");
    let now = tsod_shm::kernel_clock_state().ok();
    let realtime_rate = realtime_rate_bound(sent.kernel.as_ref()).max(realtime_rate_bound(now.as_ref()));
    let model = StampModel { realtime_rate, reader_drift: readings.drift, resolution: readings.resolution };
    wire_times(&stamps, &model).unwrap_or_else(|refusal| {
        debug!(source = %task.name, %refusal, "kernel timestamps not used for this exchange");
        WireTimes::NONE
    })
}

/// The coarser of the host's realtime and reader clock resolutions
/// (`clock_getres`), at least 1 ns; 1 µs if the kernel does not say.
fn clock_resolution() -> Duration {
    use nix::time::{ClockId, clock_getres};
    let of = |id| clock_getres(id).ok().map(Duration::from);
    match (of(ClockId::CLOCK_REALTIME), of(ClockId::CLOCK_MONOTONIC_RAW)) {
        (Some(a), Some(b)) => a.max(b).max(Duration::from_nanos(1)),
        _ => Duration::from_micros(1),
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

/// Turns a reply received at `arrival` into the event for the engine.
fn reply_event(
    task: &NtpTask,
    state: &mut State,
    socket: &mut NtpSocket,
    readings: &Readings,
    reply: &[u8],
    arrival: &Arrival,
    choose: &DriftModel,
) -> Event {
    let t4 = arrival.t4;
    // A disruption between sending and receiving makes t4 − t1 meaningless.
    let mut wire = WireTimes::NONE;
    if let Some(sent) = &state.sent {
        if detect_disruption(&sent.reading, &t4).is_some() {
            state.source.reset();
            state.sent = None;
            return Event::Reject(task.id, "clock disrupted during the exchange".into());
        }
        wire = wire_of(task, sent, socket, readings, arrival);
    }
    let to_service = &mut state.to_service;
    let converted = state.source.handle_reply_with(reply, t4.raw, t4.realtime, &wire, |mut sample| {
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
    if let Some(server) = socket.server() {
        task.upstreams.set(&task.name, crate::ntp_server::identity::Upstream::ntp(reply.stratum, server.ip()));
    }
    let chosen = narrowest(state, t4, choose).unwrap_or(reply.sample);
    debug!(
        source = %task.name, delay = ?reply.delay, kernel = ?wire, width = ?reply.sample.interval.width(),
        chosen_width = ?chosen.interval.width(), chosen_age = ?t4.raw.as_nanos().saturating_sub(chosen.at.as_nanos()),
        interleaved = state.source.counters().interleaved(), "NTP sample"
    );
    Event::Sample(task.id, chosen)
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
