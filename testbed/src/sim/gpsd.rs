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
//! The PPS edge is the true second boundary `S`. The host clock is true, so
//! `CLOCK_REALTIME` at the edge reads `S`: `clock = S` exactly, as a kernel
//! PPS timestamp with no latency would be (the line goes out a little after
//! `S`, so `tsod` always sees a non-negative gap). The receiver labels the
//! edge `real = S + lie(S)` (module [`super`]): zero without a fault. The
//! `TPV` that goes with it is a 3D fix whose `time` is the same label, in
//! ISO 8601 UTC with milliseconds (truncated). In an outage
//! ([`GpsFault::outage`]) there is no PPS and the `TPV` has `mode` 1 (no fix)
//! and no `time`.
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
    counters: Arc<Counters>,
    _worker: Worker,
}

impl GpsdSim {
    /// Listens on `addr` (loopback only; port 0 picks a free port) and starts
    /// serving, without a fault.
    pub fn start(addr: SocketAddr) -> io::Result<Self> {
        require_loopback(addr)?;
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let fault = FaultHandle::new(GpsFault::default());
        let counters = Arc::new(Counters::default());
        let server = Server {
            listener,
            clients: Vec::new(),
            fault: fault.clone(),
            counters: Arc::clone(&counters),
            started: host_realtime(),
        };
        let worker = Worker::spawn("gpsd-sim", move |stop| server.run(&stop))?;
        Ok(Self { local_addr, fault, counters, _worker: worker })
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
                self.tick(Timestamp::from_nanos(second.saturating_mul(NANOS_PER_SEC)));
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

    /// The reports for the second that began at true time `edge`.
    fn tick(&mut self, edge: Timestamp) {
        let (fault, set_at) = self.fault.snapshot();
        let label = if fault.outage {
            None
        } else {
            let real = i128::from(edge.as_nanos()) + lie_nanos(fault.offset, fault.drift, set_at, edge);
            u64::try_from(real).ok().map(Timestamp::from_nanos)
        };
        let pps = label.map(|real| pps_line(real, edge));
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

fn split(t: Timestamp) -> (u64, u64) {
    (t.as_nanos() / NANOS_PER_SEC, t.as_nanos() % NANOS_PER_SEC)
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::time::Instant;

    use super::*;

    /// What `tsod` sends (server/src/sources/gpsd.rs `WATCH`).
    const WATCH: &str = "?WATCH={\"enable\":true,\"json\":true,\"pps\":true};\n";

    fn loopback() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    fn connect(sim: &GpsdSim) -> BufReader<TcpStream> {
        let stream = TcpStream::connect(sim.local_addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        BufReader::new(stream)
    }

    fn read_json(reader: &mut BufReader<TcpStream>) -> Value {
        let mut text = String::new();
        assert!(reader.read_line(&mut text).unwrap() > 0, "gpsd-sim closed the connection");
        assert!(text.ends_with("\r\n"), "{text:?}");
        serde_json::from_str(&text).unwrap()
    }

    /// Reads lines until one of class `class`, returning it and the host
    /// realtime just after it was read.
    fn next_of(reader: &mut BufReader<TcpStream>, class: &str) -> (Value, Timestamp) {
        loop {
            let v = read_json(reader);
            if v["class"] == class {
                return (v, host_realtime());
            }
        }
    }

    fn watch(sim: &GpsdSim) -> BufReader<TcpStream> {
        let mut reader = connect(sim);
        assert_eq!(read_json(&mut reader)["class"], "VERSION");
        reader.get_mut().write_all(WATCH.as_bytes()).unwrap();
        let devices = read_json(&mut reader);
        assert_eq!(devices["class"], "DEVICES");
        assert_eq!(devices["devices"][1]["path"], PPS_DEVICE);
        let echo = read_json(&mut reader);
        assert_eq!((&echo["class"], &echo["enable"], &echo["pps"]), (&json!("WATCH"), &json!(true), &json!(true)));
        reader
    }

    fn nanos(v: &Value, sec: &str, nsec: &str) -> i128 {
        let nsec = v[nsec].as_u64().unwrap();
        assert!(nsec < NANOS_PER_SEC);
        i128::from(v[sec].as_u64().unwrap()) * 1_000_000_000 + i128::from(nsec)
    }

    #[test]
    fn pps_follows_host_realtime_then_the_fault() {
        let sim = GpsdSim::start(loopback()).unwrap();
        let mut reader = watch(&sim);
        let (pps, read_at) = next_of(&mut reader, "PPS");
        let clock = nanos(&pps, "clock_sec", "clock_nsec");
        let gap = i128::from(read_at.as_nanos()) - clock;
        assert!((0..50_000_000).contains(&gap), "PPS read {gap} ns after its edge");
        assert_eq!(clock % 1_000_000_000, 0, "the edge is a true second boundary");
        assert_eq!(nanos(&pps, "real_sec", "real_nsec"), clock, "no fault: real = clock");
        assert_eq!(pps["precision"], PPS_PRECISION);
        let (tpv, _) = next_of(&mut reader, "TPV");
        assert_eq!(tpv["mode"], 3);
        let time = DateTime::parse_from_rfc3339(tpv["time"].as_str().unwrap()).unwrap();
        assert_eq!(i128::from(time.timestamp_nanos_opt().unwrap()), clock);

        sim.set_fault(GpsFault { offset: Offset::from_nanos(-1_250_000_000), ..GpsFault::default() });
        let (pps, read_at) = next_of(&mut reader, "PPS");
        let clock = nanos(&pps, "clock_sec", "clock_nsec");
        assert!((0..50_000_000).contains(&(i128::from(read_at.as_nanos()) - clock)));
        assert_eq!(nanos(&pps, "real_sec", "real_nsec") - clock, -1_250_000_000);
        let (tpv, _) = next_of(&mut reader, "TPV");
        let time = DateTime::parse_from_rfc3339(tpv["time"].as_str().unwrap()).unwrap();
        assert_eq!(i128::from(time.timestamp_nanos_opt().unwrap()), clock - 1_250_000_000);
        crate::sim::eventually("two PPS and TPV counted", || sim.pps_sent() >= 2 && sim.tpv_sent() >= 2);
    }

    #[test]
    fn outage_stops_pps_and_fix() {
        let sim = GpsdSim::start(loopback()).unwrap();
        sim.set_fault(GpsFault { outage: true, ..GpsFault::default() });
        let mut reader = watch(&sim);
        // The first report after the WATCH is the no-fix TPV: no PPS before it.
        let tpv = read_json(&mut reader);
        assert_eq!(tpv, json!({"class": "TPV", "device": GPS_DEVICE, "mode": 1}));
        let tpv = read_json(&mut reader);
        assert_eq!(tpv["mode"], 1);
        assert_eq!(sim.pps_sent(), 0);
        // Back from the outage, PPS resumes.
        sim.set_fault(GpsFault::default());
        let (pps, _) = next_of(&mut reader, "PPS");
        assert_eq!(nanos(&pps, "real_sec", "real_nsec"), nanos(&pps, "clock_sec", "clock_nsec"));
    }

    #[test]
    fn several_clients_and_disconnects_are_forgotten() {
        let sim = GpsdSim::start(loopback()).unwrap();
        let mut a = watch(&sim);
        let b = watch(&sim);
        // A client that never watches gets only the VERSION line.
        let mut idle = connect(&sim);
        assert_eq!(read_json(&mut idle)["class"], "VERSION");
        crate::sim::eventually("three clients", || sim.clients() == 3);
        drop(b);
        let deadline = Instant::now() + Duration::from_secs(1);
        while sim.clients() != 2 {
            assert!(Instant::now() < deadline, "disconnected client not forgotten");
            std::thread::sleep(Duration::from_millis(5));
        }
        let (pps, _) = next_of(&mut a, "PPS");
        assert_eq!(pps["device"], PPS_DEVICE);
        // Unknown commands get gpsd's ERROR; a bad WATCH too.
        idle.get_mut().write_all(b"?FOO;?WATCH={oops};?WATCH;").unwrap();
        assert_eq!(read_json(&mut idle)["message"], "Unrecognized request 'FOO'");
        assert_eq!(read_json(&mut idle)["class"], "ERROR");
        let echo = read_json(&mut idle);
        assert_eq!((&echo["class"], &echo["enable"]), (&json!("WATCH"), &json!(false)));
    }

    #[test]
    fn shutdown_closes_connections_and_listener() {
        let sim = GpsdSim::start(loopback()).unwrap();
        let addr = sim.local_addr();
        let mut reader = connect(&sim);
        assert_eq!(read_json(&mut reader)["class"], "VERSION");
        let started = Instant::now();
        sim.shutdown();
        assert!(started.elapsed() < Duration::from_secs(1));
        let mut rest = String::new();
        assert_eq!(reader.read_line(&mut rest).unwrap(), 0, "connection closed");
        assert!(TcpStream::connect(addr).is_err(), "listener closed");
        assert!(GpsdSim::start(SocketAddr::from(([0, 0, 0, 0], 0))).is_err(), "loopback only");
    }

    #[test]
    fn commands_split_on_semicolons() {
        let mut input = b" ?WATCH={\"enable\":true};\n?VERSION;?POL".to_vec();
        assert_eq!(next_command(&mut input).as_deref(), Some("?WATCH={\"enable\":true}"));
        assert_eq!(next_command(&mut input).as_deref(), Some("?VERSION"));
        assert_eq!(next_command(&mut input), None);
        assert_eq!(input, b"?POL");
        let mut policy = Policy::default();
        let started = Timestamp::from_nanos(1_795_462_647_000_000_000);
        let lines = answer("?WATCH={\"enable\":true,\"json\":true}", &mut policy, started);
        assert_eq!(lines.len(), 2);
        assert_eq!(policy, Policy { enable: true, json: true, pps: false });
        answer("?WATCH={\"pps\":true}", &mut policy, started);
        assert_eq!(policy, Policy { enable: true, json: true, pps: true });
        assert!(devices_line(started).contains("\"activated\":\"2026-11-23T19:37:27.000Z\""));
    }
}
