//! A simulated NTP server: a UDP NTPv4 server (RFC 5905, server mode) whose
//! clock is the host's plus a configurable lie ([`NtpFault`]). `tsod`'s NTP
//! source polls it as it would any stratum-1 server.
//!
//! # Replies
//!
//! A mode-3 (client) request of version 1 to 4, at least 48 bytes long, is
//! answered with a 48-byte mode-4 reply of the same version:
//!
//! * leap indicator 0, or 1 (insert) / 2 (delete) while its
//!   [`NtpSimConfig::time`] announces a leap (the day before it, until the
//!   day ends: [`TrueTime::announcement`]); stratum 1, reference ID `GPS`,
//!   the request's poll, precision [`NtpSimConfig::precision`];
//! * root delay and root dispersion from [`NtpSimConfig`] (rounded up to the
//!   16.16 format), or the dispersion the fault claims
//!   ([`NtpFault::claimed_root_dispersion`]);
//! * origin = the request's transmit timestamp, echoed bit for bit;
//! * receive T2 and transmit T3 = the host's `CLOCK_REALTIME` read on
//!   receipt and just before sending, as POSIX UTC ([`TrueTime::posix`]:
//!   shifted, an inserted second repeated, a deleted one skipped), plus
//!   `lie(t)` (module [`super`]), rounded down to 2⁻³² s;
//! * reference = T2 rounded down to its second (a reference clock that
//!   updates every second: never zero, never after T3).
//!
//! # Honesty
//!
//! The host clock is true time, so with no fault the server's error is its
//! reading precision, well within the default root dispersion: the
//! interval `tsod` derives contains the truth. An `offset` or `drift` fault
//! makes the server a liar unless `claimed_root_dispersion` is raised to
//! cover it; a `claimed_root_dispersion` below the lie is the classic
//! falseticker, an accurate-looking server that is wrong.
//!
//! Anything else that arrives (shorter than 48 bytes, a mode other than 3,
//! version 0 or above 4) is dropped and counted ([`NtpSim::malformed`]).

use std::io::{self, ErrorKind};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tracing::{debug, warn};
use tsod_proto::{Offset, Ppb, Timestamp};

use super::{FaultHandle, NANOS_PER_SEC, POLL, Worker, host_realtime, lie_nanos, require_loopback};
use crate::truth::{LeapKind, TrueTime};

/// Length of the NTP header: the whole reply, and the least a request may be.
pub const PACKET_LEN: usize = 48;

/// The reference ID of a stratum-1 server disciplined by GPS.
pub const REFERENCE_ID: [u8; 4] = *b"GPS\0";

/// Seconds from 1900-01-01 (the NTP epoch) to 1970-01-01 (the Unix epoch).
const UNIX_EPOCH_NTP_SECONDS: i128 = 2_208_988_800;

/// What the server says about its own quality when it is telling the truth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NtpSimConfig {
    /// Advertised root delay (default 2 µs: a GPS receiver next door).
    pub root_delay: Duration,
    /// Advertised root dispersion (default 5 µs: covers the reading error).
    pub root_dispersion: Duration,
    /// Advertised precision, log2 seconds (default −20, about 1 µs).
    pub precision: i8,
    /// How it tells the host's time (default: as it is, no leap).
    pub time: TrueTime,
}

impl Default for NtpSimConfig {
    fn default() -> Self {
        Self {
            root_delay: Duration::from_micros(2),
            root_dispersion: Duration::from_micros(5),
            precision: -20,
            time: TrueTime::default(),
        }
    }
}

/// What the simulated server gets wrong. The default is a healthy server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NtpFault {
    /// A constant lie added to T2 and T3 (positive: the server runs ahead).
    pub offset: Offset,
    /// A lie growing at this rate from when the fault was set.
    pub drift: Ppb,
    /// The server is down: requests get no answer.
    pub outage: bool,
    /// Advertise this root dispersion instead of the configured one (e.g. a
    /// tiny one while `offset` is large: lying about its own error).
    pub claimed_root_dispersion: Option<Duration>,
}

/// What the simulator has done, for tests.
#[derive(Debug, Default)]
struct Counters {
    answered: AtomicU64,
    malformed: AtomicU64,
    unanswered_in_outage: AtomicU64,
}

/// A running simulated NTP server. Dropping it (or [`NtpSim::shutdown`])
/// stops its thread and closes the socket.
#[derive(Debug)]
pub struct NtpSim {
    local_addr: SocketAddr,
    fault: FaultHandle<NtpFault>,
    counters: Arc<Counters>,
    _worker: Worker,
}

impl NtpSim {
    /// Serves on `addr` (loopback only; port 0 picks a free port) with the
    /// default [`NtpSimConfig`] and no fault.
    pub fn start(addr: SocketAddr) -> io::Result<Self> {
        Self::start_with(addr, NtpSimConfig::default())
    }

    /// Serves on `addr` (loopback only) advertising `config`, with no fault.
    pub fn start_with(addr: SocketAddr, config: NtpSimConfig) -> io::Result<Self> {
        require_loopback(addr)?;
        let socket = UdpSocket::bind(addr)?;
        socket.set_read_timeout(Some(POLL))?;
        let local_addr = socket.local_addr()?;
        let fault = FaultHandle::new(NtpFault::default());
        let counters = Arc::new(Counters::default());
        let (thread_fault, thread_counters) = (fault.clone(), Arc::clone(&counters));
        let worker =
            Worker::spawn("ntp-sim", move |stop| serve(&socket, config, &thread_fault, &thread_counters, &stop))?;
        Ok(Self { local_addr, fault, counters, _worker: worker })
    }

    /// The address clients send to (with the port actually bound).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Replaces the fault; it applies from the next request.
    pub fn set_fault(&self, fault: NtpFault) {
        self.fault.set(fault);
    }

    /// The current fault.
    pub fn fault(&self) -> NtpFault {
        self.fault.get()
    }

    /// A handle that changes this simulator's fault from elsewhere.
    pub fn fault_handle(&self) -> FaultHandle<NtpFault> {
        self.fault.clone()
    }

    /// Requests answered so far.
    pub fn answered(&self) -> u64 {
        self.counters.answered.load(Ordering::Relaxed)
    }

    /// Datagrams dropped because they were not NTP client requests.
    pub fn malformed(&self) -> u64 {
        self.counters.malformed.load(Ordering::Relaxed)
    }

    /// Well-formed requests left unanswered because of an outage fault.
    pub fn unanswered_in_outage(&self) -> u64 {
        self.counters.unanswered_in_outage.load(Ordering::Relaxed)
    }

    /// Stops the server and waits for its thread (at most about [`POLL`]).
    pub fn shutdown(self) {}
}

/// The server thread: one datagram at a time until `stop`.
fn serve(
    socket: &UdpSocket,
    config: NtpSimConfig,
    fault: &FaultHandle<NtpFault>,
    counters: &Counters,
    stop: &AtomicBool,
) {
    // Room for extension fields; only the header is read.
    let mut buf = [0u8; 1024];
    while !stop.load(Ordering::Relaxed) {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                continue;
            }
            Err(e) => {
                warn!("ntp-sim: receive failed: {e}");
                std::thread::sleep(POLL);
                continue;
            }
        };
        let received_at = host_realtime();
        let (fault, set_at) = fault.snapshot();
        let Some(mut reply) = reply_to(buf.get(..len).unwrap_or_default(), &config, &fault, set_at, received_at) else {
            counters.malformed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if fault.outage {
            counters.unanswered_in_outage.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        stamp_transmit(&mut reply, &config.time, &fault, set_at, host_realtime());
        match socket.send_to(&reply, peer) {
            Ok(_) => {
                counters.answered.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => debug!(%peer, "ntp-sim: send failed: {e}"),
        }
    }
}

/// The reply to `request` received at true time `received_at`, with the
/// transmit timestamp still zero; `None` if `request` is not a client request.
fn reply_to(
    request: &[u8],
    config: &NtpSimConfig,
    fault: &NtpFault,
    set_at: Timestamp,
    received_at: Timestamp,
) -> Option<[u8; PACKET_LEN]> {
    let request = request.first_chunk::<PACKET_LEN>()?;
    let [lvm, _stratum, poll, ..] = *request;
    let version = (lvm >> 3) & 0b111;
    if lvm & 0b111 != 3 || !(1..=4).contains(&version) {
        return None;
    }
    let origin = request.last_chunk::<8>()?;
    let receive = server_time(&config.time, fault, set_at, received_at);
    let reference = receive.div_euclid(i128::from(NANOS_PER_SEC)) * i128::from(NANOS_PER_SEC);
    let dispersion = fault.claimed_root_dispersion.unwrap_or(config.root_dispersion);
    // LI 0 (no warning) or the leap announced, the request's version, mode 4 (server).
    let leap_indicator: u8 = match config.time.announcement(received_at) {
        None => 0,
        Some(LeapKind::Insert) => 1,
        Some(LeapKind::Delete) => 2,
    };
    let head = [leap_indicator << 6 | version << 3 | 4, 1, poll, u8::from_be_bytes(config.precision.to_be_bytes())];
    let bytes = head
        .into_iter()
        .chain(ntp_short_ceil(config.root_delay).to_be_bytes())
        .chain(ntp_short_ceil(dispersion).to_be_bytes())
        .chain(REFERENCE_ID)
        .chain(ntp_timestamp(reference).max(1).to_be_bytes())
        .chain(*origin)
        .chain(ntp_timestamp(receive).to_be_bytes());
    let mut reply = [0u8; PACKET_LEN];
    for (slot, byte) in reply.iter_mut().zip(bytes) {
        *slot = byte;
    }
    Some(reply)
}

/// Puts the server's time at host realtime `now` into the transmit timestamp.
fn stamp_transmit(reply: &mut [u8; PACKET_LEN], time: &TrueTime, fault: &NtpFault, set_at: Timestamp, now: Timestamp) {
    if let Some(transmit) = reply.last_chunk_mut::<8>() {
        *transmit = ntp_timestamp(server_time(time, fault, set_at, now)).to_be_bytes();
    }
}

/// The server's clock at host realtime `t`, in nanoseconds since the Unix
/// epoch: POSIX UTC plus the lie.
fn server_time(time: &TrueTime, fault: &NtpFault, set_at: Timestamp, t: Timestamp) -> i128 {
    time.posix(t) + lie_nanos(fault.offset, fault.drift, set_at, t)
}

/// Nanoseconds since the Unix epoch as an NTP timestamp (32.32 fixed-point
/// seconds since 1900, era dropped), rounded down.
fn ntp_timestamp(unix_nanos: i128) -> u64 {
    let since_1900 = unix_nanos.saturating_add(UNIX_EPOCH_NTP_SECONDS * i128::from(NANOS_PER_SEC));
    let fixed = since_1900.saturating_mul(1 << 32).div_euclid(i128::from(NANOS_PER_SEC));
    u64::try_from(fixed.rem_euclid(1 << 64)).unwrap_or(0)
}

/// A duration in the NTP short format (16.16 fixed-point seconds), rounded
/// up so that a claim never understates; saturates at 65536 s.
fn ntp_short_ceil(d: Duration) -> u32 {
    let fixed = d.as_nanos().saturating_mul(1 << 16).div_ceil(u128::from(NANOS_PER_SEC));
    u32::try_from(fixed).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    const COOKIE: u64 = 0x0123_4567_89AB_CDEF;

    fn loopback() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    /// A client socket "connected" to the simulator, with a bounded wait.
    fn client(sim: &NtpSim, timeout: Duration) -> UdpSocket {
        let socket = UdpSocket::bind(loopback()).unwrap();
        socket.connect(sim.local_addr()).unwrap();
        socket.set_read_timeout(Some(timeout)).unwrap();
        socket
    }

    /// What `tsod` sends: LI 0, VN 4, mode 3, poll 6, transmit = cookie.
    fn request(cookie: u64) -> [u8; PACKET_LEN] {
        let mut r = [0u8; PACKET_LEN];
        r[0] = 0x23;
        r[2] = 6;
        r[40..].copy_from_slice(&cookie.to_be_bytes());
        r
    }

    fn field(reply: &[u8], at: usize) -> u64 {
        u64::from_be_bytes(reply[at..at + 8].try_into().unwrap())
    }

    /// An era-0 NTP timestamp as Unix nanoseconds, rounded down.
    fn unix_nanos(ntp: u64) -> i128 {
        let secs = i128::from(ntp >> 32) - UNIX_EPOCH_NTP_SECONDS;
        secs * 1_000_000_000 + ((i128::from(ntp & 0xFFFF_FFFF) * 1_000_000_000) >> 32)
    }

    /// Sends one request and returns (reply, host realtime before, after).
    fn exchange(socket: &UdpSocket, cookie: u64) -> ([u8; 1024], usize, i128, i128) {
        let before = i128::from(host_realtime().as_nanos());
        socket.send(&request(cookie)).unwrap();
        let mut buf = [0u8; 1024];
        let len = socket.recv(&mut buf).unwrap();
        let after = i128::from(host_realtime().as_nanos());
        (buf, len, before, after)
    }

    /// Checks the reply's shape and that T2 and T3 lie within [before, after]
    /// shifted by `lie` (and 1 ns of fixed-point rounding).
    fn check_reply(reply: &[u8], len: usize, before: i128, after: i128, lie: i128) {
        assert_eq!(len, PACKET_LEN);
        assert_eq!(reply[0], 0x24, "LI 0, VN 4, mode 4");
        assert_eq!((reply[1], reply[2], reply[3]), (1, 6, (-20i8).to_be_bytes()[0]));
        assert_eq!(&reply[12..16], b"GPS\0");
        assert_eq!(field(reply, 24), COOKIE, "origin echoes the request's transmit");
        let (reference, t2, t3) =
            (unix_nanos(field(reply, 16)), unix_nanos(field(reply, 32)), unix_nanos(field(reply, 40)));
        assert!(before + lie - 1 <= t2 && t2 <= t3 && t3 <= after + lie, "{before} {t2} {t3} {after} lie {lie}");
        assert!(after - before < 50_000_000, "exchange took {} ns", after - before);
        assert!(reference <= t2 && t2 - reference < 1_000_000_000);
    }

    #[test]
    fn reply_echoes_origin_and_tracks_host_realtime_plus_fault() {
        let sim = NtpSim::start(loopback()).unwrap();
        let socket = client(&sim, Duration::from_secs(2));
        let (reply, len, before, after) = exchange(&socket, COOKIE);
        check_reply(&reply, len, before, after, 0);
        // Root delay 2 µs and dispersion 5 µs, rounded up to 2⁻¹⁶ s units.
        assert_eq!(u32::from_be_bytes(reply[4..8].try_into().unwrap()), 1);
        assert_eq!(u32::from_be_bytes(reply[8..12].try_into().unwrap()), 1);

        let offset = -2_345_678_901;
        let lying = NtpFault {
            offset: Offset::from_nanos(offset),
            claimed_root_dispersion: Some(Duration::ZERO),
            ..NtpFault::default()
        };
        sim.set_fault(lying);
        let (reply, len, before, after) = exchange(&socket, COOKIE);
        check_reply(&reply, len, before, after, i128::from(offset));
        assert_eq!(u32::from_be_bytes(reply[8..12].try_into().unwrap()), 0, "claims no dispersion");
        crate::sim::eventually("two answers counted", || sim.answered() == 2);
        assert_eq!(sim.malformed(), 0);
    }

    #[test]
    fn garbage_is_ignored_and_counted() {
        let sim = NtpSim::start(loopback()).unwrap();
        let socket = client(&sim, Duration::from_millis(300));
        let mut server_mode = request(COOKIE);
        server_mode[0] = 0x24;
        let mut version_0 = request(COOKIE);
        version_0[0] = 0x03;
        for garbage in [&b"hello"[..], &request(COOKIE)[..47], &server_mode[..], &version_0[..], &[0xFF; 48][..]] {
            socket.send(garbage).unwrap();
        }
        let mut buf = [0u8; 1024];
        assert!(socket.recv(&mut buf).is_err(), "no reply to garbage");
        let deadline = Instant::now() + Duration::from_secs(1);
        while sim.malformed() < 5 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(sim.malformed(), 5);
        assert_eq!(sim.answered(), 0);
        // A real request with trailing bytes (an extension) is still answered.
        let mut long = request(COOKIE).to_vec();
        long.extend_from_slice(&[0xDE, 0xAD, 0xBE, 0xEF]);
        socket.send(&long).unwrap();
        let len = socket.recv(&mut buf).unwrap();
        assert_eq!((len, field(&buf, 24)), (PACKET_LEN, COOKIE));
    }

    #[test]
    fn outage_answers_nothing_and_shutdown_stops() {
        let sim = NtpSim::start(loopback()).unwrap();
        let socket = client(&sim, Duration::from_millis(200));
        sim.set_fault(NtpFault { outage: true, ..NtpFault::default() });
        socket.send(&request(COOKIE)).unwrap();
        let mut buf = [0u8; 1024];
        assert!(socket.recv(&mut buf).is_err());
        crate::sim::eventually("the unanswered request counted", || sim.unanswered_in_outage() == 1);
        assert_eq!(sim.answered(), 0);
        sim.fault_handle().set(NtpFault::default());
        socket.send(&request(7)).unwrap();
        let len = socket.recv(&mut buf).unwrap();
        assert_eq!((len, field(&buf, 24)), (PACKET_LEN, 7));
        let started = Instant::now();
        sim.shutdown();
        assert!(started.elapsed() < Duration::from_secs(1));
        // The port is closed: nothing answers (Linux reports the ICMP error).
        let _ = socket.send(&request(COOKIE));
        assert!(socket.recv(&mut buf).is_err());
        assert!(NtpSim::start(SocketAddr::from(([0, 0, 0, 0], 0))).is_err(), "loopback only");
    }

    #[test]
    fn drift_grows_from_when_the_fault_was_set() {
        let config = NtpSimConfig::default();
        let set_at = Timestamp::from_nanos(1_795_462_647_000_000_000);
        let fault = NtpFault { drift: Ppb::from_ppm(100), ..NtpFault::default() };
        let later = Timestamp::from_nanos(set_at.as_nanos() + 10 * NANOS_PER_SEC);
        let mut reply = reply_to(&request(COOKIE), &config, &fault, set_at, later).unwrap();
        stamp_transmit(&mut reply, &config.time, &fault, set_at, later);
        // 100 ppm over 10 s: 1 ms ahead (to the nanosecond, after two roundings down).
        let expect = i128::from(later.as_nanos()) + 1_000_000;
        for at in [32, 40] {
            assert!((expect - 1..=expect).contains(&unix_nanos(field(&reply, at))));
        }
        assert_eq!(ntp_short_ceil(Duration::from_secs(1)), 1 << 16);
        assert_eq!(ntp_short_ceil(Duration::from_secs(1 << 20)), u32::MAX);
        // Version 3 requests get version-3 replies.
        let mut v3 = request(COOKIE);
        v3[0] = 0x1B;
        assert_eq!(reply_to(&v3, &config, &fault, set_at, later).unwrap()[0], 0x1C);
    }

    #[test]
    fn around_a_leap_it_serves_posix_utc_and_announces_only_if_told() {
        use crate::truth::Leap;
        const S: u64 = NANOS_PER_SEC;
        const L: u64 = 1_814_400_000; // 2027-07-01T00:00:00Z
        let day_ends = 1_796_000_000; // host seconds
        let host = |s: u64, ns: u64| Timestamp::from_nanos(s * S + ns);
        let time = |kind, announced| TrueTime::for_leap(Leap { boundary_s: L, kind, announced }, host(day_ends, 0));
        let fault = NtpFault::default();
        let set_at = host(day_ends - 100, 0);
        // (LI, T2 as Unix ns) of a reply to a request received at `at`.
        let answer = |config: &NtpSimConfig, at: Timestamp| {
            let mut reply = reply_to(&request(COOKIE), config, &fault, set_at, at).unwrap();
            stamp_transmit(&mut reply, &config.time, &fault, set_at, at);
            assert_eq!(field(&reply, 32), field(&reply, 40));
            (reply[0] >> 6, unix_nanos(field(&reply, 32)))
        };
        let n = |s: u64| i128::from(s) * i128::from(S);
        let insert = NtpSimConfig { time: time(LeapKind::Insert, true), ..NtpSimConfig::default() };
        assert_eq!(answer(&insert, host(day_ends - 10, 0)), (1, n(L - 10)));
        assert_eq!(answer(&insert, host(day_ends - 1, 250_000_000)), (1, n(L - 1) + 250_000_000));
        // 23:59:59 again, and the announcement is over.
        assert_eq!(answer(&insert, host(day_ends, 250_000_000)), (0, n(L - 1) + 250_000_000));
        assert_eq!(answer(&insert, host(day_ends + 1, 0)), (0, n(L)));
        let delete = NtpSimConfig { time: time(LeapKind::Delete, true), ..NtpSimConfig::default() };
        assert_eq!(answer(&delete, host(day_ends - 1, 0)), (2, n(L - 2)));
        // 23:59:59 never happens: 23:59:58.999… then 00:00:00.
        assert_eq!(answer(&delete, host(day_ends, 0)), (0, n(L)));
        let quiet = NtpSimConfig { time: time(LeapKind::Insert, false), ..NtpSimConfig::default() };
        assert_eq!(answer(&quiet, host(day_ends - 10, 0)), (0, n(L - 10)));
        assert_eq!(answer(&quiet, host(day_ends, 0)), (0, n(L - 1)));
    }
}
