//! A simulated gpsd: a TCP server speaking gpsd's JSON protocol, with a GPS
//! receiver and a PPS device behind it whose time is the host's plus a
//! configurable lie ([`GpsFault`]). `tsod`'s gpsd source connects to it as it
//! would to a real gpsd.
//!
//! # Protocol (the subset `tsod` uses, in gpsd's own shapes)
//!
//! * On connect: a `VERSION` line.
//! * `?WATCH={...};` merges `enable`, `json` and `pps` into the client's
//!   policy and answers with `DEVICES` (when the policy is enabled) and a
//!   `WATCH` echo; `?WATCH;` only echoes. `?VERSION;` and `?DEVICES;` are
//!   answered; anything else gets an `ERROR` line.
//! * A client whose policy has `enable` and `json` receives, once per
//!   second, just after each true second boundary `S`: a `PPS` line (if it
//!   asked for `pps`) and a `TPV` line. Lines end in `\r\n`, as gpsd's do.
//!
//! # How truth enters the reports
//!
//! The PPS edge is the true second boundary `S` of the host's realtime.
//! The host clock is true, so `CLOCK_REALTIME` at the edge reads `S`:
//! `clock = S` exactly, as a kernel PPS timestamp with no latency would be
//! (the line goes out a little after `S`, so `tsod` always sees a
//! non-negative gap). The receiver labels the edge with POSIX UTC, the way
//! the simulator's [`TrueTime`] tells `S` (shifted by whole seconds, so
//! still a second boundary; at an inserted second the label of the second
//! before repeats, at a deleted one a label is skipped: gpsd announces no
//! leap and never writes `:60`), plus the lie: `real = posix(S) + lie(S)`
//! (module [`super`]). `clock` stays the host's own realtime, unshifted:
//! that is the clock `tsod`'s gpsd task reads. The `TPV` that goes with it
//! is a 3D fix whose `time` is the same label, in ISO 8601 UTC with
//! milliseconds (truncated). In an outage ([`GpsFault::outage`]) there is
//! no PPS and the `TPV` has `mode` 1 (no fix) and no `time`.
//!
//! # A slewing host realtime ([`RealtimeSlew`])
//!
//! `tsod` bounds the true time between a PPS edge and reading its line by
//! `gap / (1 − s)`, `gap` measured on the host's realtime, which a
//! discipline may slew (chronyd: up to 83 333 ppm). The testbed's host
//! realtime does not slew, so while a [`RealtimeSlew`] is set the
//! simulator emulates one over the part of the gap it controls: it sends
//! the edge's lines `latency` after the edge, and reports
//! `clock = S − rate · (sent − S)`, so that `realtime at reading − clock`
//! is `(1 + rate)` times the true time from the edge to the send, plus the
//! (unslewed) time the line then takes to be read.
//!
//! # Clients
//!
//! Any number of clients may connect. Everything runs on one thread with
//! non-blocking sockets; a client that disconnects, sends more than
//! [`MAX_PENDING_INPUT`] bytes without a `;`, or does not read fast enough
//! for a line to fit in its socket buffer is dropped and forgotten.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tracing::{debug, warn};
use tsod_proto::{Offset, Ppb, Timestamp};

use super::{FaultHandle, NANOS_PER_SEC, POLL, Worker, host_realtime, lie_nanos, require_loopback};
use crate::truth::TrueTime;

/// Most bytes of an unfinished command kept per client before it is dropped.
pub const MAX_PENDING_INPUT: usize = 8 * 1024;

/// The `precision` (log2 s) reported with each PPS edge: about 1 µs.
pub const PPS_PRECISION: i8 = -20;

/// The serial GPS device the simulated gpsd reports.
pub const GPS_DEVICE: &str = "/dev/ttySIM0";
/// The PPS device the simulated gpsd reports.
pub const PPS_DEVICE: &str = "/dev/pps0";

/// What the simulated receiver gets wrong. The default is a healthy receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpsFault {
    /// A constant lie added to every label (positive: the GPS runs ahead).
    pub offset: Offset,
    /// A lie growing at this rate from when the fault was set (slow spoofing).
    pub drift: Ppb,
    /// No signal: no PPS, and TPV reports without a fix.
    pub outage: bool,
}

/// A slew of the host's realtime to emulate in PPS reports (see the module
/// doc), until host realtime `until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealtimeSlew {
    /// Realtime runs at `1 + rate` (chronyd: at most ±83 333 ppm).
    pub rate: Ppb,
    /// When it ends, on the host's realtime.
    pub until: Timestamp,
    /// How long after each edge its lines are sent meanwhile.
    pub latency: Duration,
}

/// What the simulator has done, for tests.
#[derive(Debug, Default)]
struct Counters {
    clients: AtomicUsize,
    pps_sent: AtomicU64,
    tpv_sent: AtomicU64,
}

/// A running simulated gpsd. Dropping it (or [`GpsdSim::shutdown`]) stops
/// its thread and closes the listener and every client connection.
#[derive(Debug)]
pub struct GpsdSim {
    local_addr: SocketAddr,
    fault: FaultHandle<GpsFault>,
    slew: FaultHandle<Option<RealtimeSlew>>,
    counters: Arc<Counters>,
    _worker: Worker,
}

impl GpsdSim {
    /// Listens on `addr` (loopback only; port 0 picks a free port) and starts
    /// serving the host's time, without a fault.
    pub fn start(addr: SocketAddr) -> io::Result<Self> {
        Self::start_with(addr, TrueTime::default())
    }

    /// Like [`GpsdSim::start`], labelling edges as `time` tells them.
    pub fn start_with(addr: SocketAddr, time: TrueTime) -> io::Result<Self> {
        require_loopback(addr)?;
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let fault = FaultHandle::new(GpsFault::default());
        let slew = FaultHandle::new(None);
        let counters = Arc::new(Counters::default());
        let server = Server {
            listener,
            clients: Vec::new(),
            fault: fault.clone(),
            slew: slew.clone(),
            time,
            counters: Arc::clone(&counters),
            started: host_realtime(),
        };
        let worker = Worker::spawn("gpsd-sim", move |stop| server.run(&stop))?;
        Ok(Self { local_addr, fault, slew, counters, _worker: worker })
    }

    /// Emulates a slewing host realtime in PPS reports from the next edge
    /// (`None`: stop now).
    pub fn set_realtime_slew(&self, slew: Option<RealtimeSlew>) {
        self.slew.set(slew);
    }

    /// The address clients connect to (with the port actually bound).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Replaces the fault; it applies from the next second's reports.
    pub fn set_fault(&self, fault: GpsFault) {
        self.fault.set(fault);
    }

    /// The current fault.
    pub fn fault(&self) -> GpsFault {
        self.fault.get()
    }

    /// A handle that changes this simulator's fault from elsewhere.
    pub fn fault_handle(&self) -> FaultHandle<GpsFault> {
        self.fault.clone()
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.counters.clients.load(Ordering::Relaxed)
    }

    /// `PPS` lines written so far, over all clients.
    pub fn pps_sent(&self) -> u64 {
        self.counters.pps_sent.load(Ordering::Relaxed)
    }

    /// `TPV` lines written so far, over all clients (fixes and no-fixes).
    pub fn tpv_sent(&self) -> u64 {
        self.counters.tpv_sent.load(Ordering::Relaxed)
    }

    /// Stops the server and waits for its thread (at most about [`POLL`]).
    pub fn shutdown(self) {}
}

/// A client's watch policy (gpsd merges each `?WATCH` into it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Policy {
    enable: bool,
    json: bool,
    pps: bool,
}

impl Policy {
    fn streaming(self) -> bool {
        self.enable && self.json
    }
}

struct Client {
    stream: TcpStream,
    peer: SocketAddr,
    input: Vec<u8>,
    policy: Policy,
}

/// The server thread's state.
struct Server {
    listener: TcpListener,
    clients: Vec<Client>,
    fault: FaultHandle<GpsFault>,
    slew: FaultHandle<Option<RealtimeSlew>>,
    time: TrueTime,
    counters: Arc<Counters>,
    /// When the server started: the devices' `activated` time.
    started: Timestamp,
}

impl Server {
    fn run(mut self, stop: &AtomicBool) {
        let mut last_second = host_realtime().as_nanos() / NANOS_PER_SEC;
        while !stop.load(Ordering::Relaxed) {
            self.accept_new();
            let started = self.started;
            self.clients.retain_mut(|client| serve_commands(client, started));
            let now = host_realtime().as_nanos();
            let second = now / NANOS_PER_SEC;
            if second > last_second {
                last_second = second;
                let edge = Timestamp::from_nanos(second.saturating_mul(NANOS_PER_SEC));
                let slew = self.slew.get().filter(|s| edge < s.until);
                if let Some(slew) = slew {
                    let send_at = edge.as_nanos().saturating_add(u64::try_from(slew.latency.as_nanos()).unwrap_or(0));
                    std::thread::sleep(Duration::from_nanos(send_at.saturating_sub(host_realtime().as_nanos())));
                }
                self.tick(edge, slew);
            }
            self.counters.clients.store(self.clients.len(), Ordering::Relaxed);
            let to_boundary = Duration::from_nanos(NANOS_PER_SEC - host_realtime().as_nanos() % NANOS_PER_SEC);
            std::thread::sleep(to_boundary.min(POLL));
        }
    }

    fn accept_new(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    let mut client = Client { stream, peer, input: Vec::new(), policy: Policy::default() };
                    let ready = client.stream.set_nonblocking(true).and_then(|()| client.stream.set_nodelay(true));
                    if ready.is_ok() && send(&mut client, &version_line()) {
                        debug!(%peer, "gpsd-sim: client connected");
                        self.clients.push(client);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!("gpsd-sim: accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// The reports for the second that began at host realtime `edge`, sent
    /// now, with realtime slewing as `slew` says.
    fn tick(&mut self, edge: Timestamp, slew: Option<RealtimeSlew>) {
        let (fault, set_at) = self.fault.snapshot();
        let label = if fault.outage {
            None
        } else {
            let real = self.time.posix(edge) + lie_nanos(fault.offset, fault.drift, set_at, edge);
            u64::try_from(real).ok().map(Timestamp::from_nanos)
        };
        let clock = slew.map_or(edge, |slew| slewed_clock(edge, host_realtime(), slew.rate));
        let pps = label.map(|real| pps_line(real, clock));
        let tpv = tpv_line(label);
        let counters = &self.counters;
        self.clients.retain_mut(|client| {
            if !client.policy.streaming() {
                return true;
            }
            if let (Some(line), true) = (&pps, client.policy.pps) {
                if !send(client, line) {
                    return false;
                }
                counters.pps_sent.fetch_add(1, Ordering::Relaxed);
            }
            let sent = send(client, &tpv);
            if sent {
                counters.tpv_sent.fetch_add(1, Ordering::Relaxed);
            }
            sent
        });
    }
}

/// Reads what `client` sent and answers each complete command; false when
/// the client is gone or misbehaved.
fn serve_commands(client: &mut Client, started: Timestamp) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match client.stream.read(&mut buf) {
            Ok(0) => {
                debug!(peer = %client.peer, "gpsd-sim: client disconnected");
                return false;
            }
            Ok(n) => client.input.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                debug!(peer = %client.peer, "gpsd-sim: read failed: {e}");
                return false;
            }
        }
    }
    while let Some(command) = next_command(&mut client.input) {
        for line in answer(&command, &mut client.policy, started) {
            if !send(client, &line) {
                return false;
            }
        }
    }
    client.input.len() <= MAX_PENDING_INPUT
}

/// Writes one whole line; false if it could not (the client is then dropped:
/// a partial line would corrupt the stream).
fn send(client: &mut Client, line: &str) -> bool {
    match client.stream.write_all(line.as_bytes()) {
        Ok(()) => true,
        Err(e) => {
            debug!(peer = %client.peer, "gpsd-sim: dropping client: {e}");
            false
        }
    }
}

/// Removes and returns the first complete command (the text before a `;`,
/// trimmed) from `input`.
fn next_command(input: &mut Vec<u8>) -> Option<String> {
    let end = input.iter().position(|b| *b == b';')?;
    let command: Vec<u8> = input.drain(..=end).take(end).collect();
    Some(String::from_utf8_lossy(&command).trim().to_owned())
}

/// The lines gpsd answers `command` (without its `;`) with, updating `policy`.
fn answer(command: &str, policy: &mut Policy, started: Timestamp) -> Vec<String> {
    let (name, argument) = match command.split_once('=') {
        Some((name, argument)) => (name, Some(argument)),
        None => (command, None),
    };
    match name {
        "?WATCH" => {
            if let Some(argument) = argument {
                match serde_json::from_str::<Value>(argument) {
                    Ok(Value::Object(fields)) => {
                        let flag = |key: &str, old: bool| fields.get(key).and_then(Value::as_bool).unwrap_or(old);
                        *policy = Policy {
                            enable: flag("enable", policy.enable),
                            json: flag("json", policy.json),
                            pps: flag("pps", policy.pps),
                        };
                    }
                    _ => return vec![error_line(&format!("Invalid WATCH: {argument}"))],
                }
            }
            let mut lines = Vec::new();
            if policy.enable {
                lines.push(devices_line(started));
            }
            lines.push(watch_line(*policy));
            lines
        }
        "?VERSION" => vec![version_line()],
        "?DEVICES" => vec![devices_line(started)],
        other => vec![error_line(&format!("Unrecognized request '{}'", other.trim_start_matches('?')))],
    }
}

fn line(value: &Value) -> String {
    format!("{value}\r\n")
}

fn iso8601(t: Timestamp) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn version_line() -> String {
    line(&json!({"class": "VERSION", "release": "3.25", "rev": "3.25", "proto_major": 3, "proto_minor": 15}))
}

fn devices_line(activated: Timestamp) -> String {
    let activated = iso8601(activated);
    line(&json!({"class": "DEVICES", "devices": [
        {"class": "DEVICE", "path": GPS_DEVICE, "driver": "u-blox", "activated": activated, "flags": 1,
         "native": 1, "bps": 9600, "parity": "N", "stopbits": 1, "cycle": 1.00},
        {"class": "DEVICE", "path": PPS_DEVICE, "driver": "PPS", "activated": activated},
    ]}))
}

fn watch_line(policy: Policy) -> String {
    line(&json!({"class": "WATCH", "enable": policy.enable, "json": policy.json, "nmea": false, "raw": 0,
                 "scaled": false, "timing": false, "split24": false, "pps": policy.pps}))
}

fn error_line(message: &str) -> String {
    line(&json!({"class": "ERROR", "message": message}))
}

/// A PPS edge labelled `real` by the receiver, seen at `clock` by the host.
fn pps_line(real: Timestamp, clock: Timestamp) -> String {
    let (real_sec, real_nsec) = split(real);
    let (clock_sec, clock_nsec) = split(clock);
    line(&json!({"class": "PPS", "device": PPS_DEVICE, "real_sec": real_sec, "real_nsec": real_nsec,
                 "clock_sec": clock_sec, "clock_nsec": clock_nsec, "precision": PPS_PRECISION, "shm": "NTP2"}))
}

/// A 3D fix at `time`, or a no-fix report.
fn tpv_line(time: Option<Timestamp>) -> String {
    match time {
        Some(time) => line(&json!({"class": "TPV", "device": GPS_DEVICE, "status": 2, "mode": 3,
                                   "time": iso8601(time), "leapseconds": 18, "ept": 0.005, "lat": 46.498,
                                   "lon": 7.567, "alt": 1343.1, "epx": 3.1, "epy": 4.2, "speed": 0.0})),
        None => line(&json!({"class": "TPV", "device": GPS_DEVICE, "mode": 1})),
    }
}

/// The `clock` to report for an edge at host realtime `edge` whose line is
/// sent at `sent`, for a realtime running at `1 + rate`: `sent − clock` is
/// `(1 + rate) · (sent − edge)`.
fn slewed_clock(edge: Timestamp, sent: Timestamp, rate: Ppb) -> Timestamp {
    let elapsed = i128::from(sent.as_nanos().saturating_sub(edge.as_nanos()));
    let clock = i128::from(edge.as_nanos()) - i128::from(rate.get()) * elapsed / i128::from(NANOS_PER_SEC);
    u64::try_from(clock).map_or(edge, Timestamp::from_nanos)
}

fn split(t: Timestamp) -> (u64, u64) {
    (t.as_nanos() / NANOS_PER_SEC, t.as_nanos() % NANOS_PER_SEC)
}

#[cfg(test)]
mod tests;
