//! tsod's NTP server (`[ntp-server]`, SPEC.md §2.7) against real clients on
//! loopback: hand-made requests (replies that bound the host clock, which
//! is the truth here; malformed requests unanswered; a flood limited and
//! kissed while the bound stays), and a real chronyd following tsod and
//! letting go once tsod has no bound.
//!
//! tsod is fed by the testbed's simulated gpsd (`tsod_testbed::sim::gpsd`).
//! The chronyd test needs chronyd and root and is ignored with the reason
//! otherwise (`server/build.rs`); `ntp_server_reply_rate` is a measurement,
//! run by hand: `cargo test -p tsod --test ntp_server -- --ignored --nocapture`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Running, Scratch, check_truth, free_udp_port, realtime, synchronized, tsod_with};
use tsod::daemon::status_file::{self, StatusSnapshot};
use tsod::sources::ntp::packet::{LeapIndicator, NtpPacket, NtpTimestamp};
use tsod::sources::ntp::{KissCode, Mode, ReferenceId};
use tsod_proto::observe::NtpServerStatus;
use tsod_proto::{ClockStatus, Timestamp};
use tsod_testbed::sim::gpsd::{GpsFault, GpsdSim};

/// One `[[source]]` table for the simulated gpsd.
fn gps_source(gps: &GpsdSim) -> String {
    format!("\n[[source]]\nkind = \"gpsd\"\nname = \"gps\"\naddress = \"{}\"\ntimescale = \"utc\"\n", gps.local_addr())
}

/// `[ntp-server]` on loopback `port`, with `rate_limit` (TOML keys of
/// `[ntp-server.rate-limit]`, may be empty).
fn ntp_server(port: u16, rate_limit: &str) -> String {
    format!("[ntp-server]\nlisten = [\"127.0.0.1:{port}\"]\n[ntp-server.rate-limit]\n{rate_limit}\n")
}

/// A client request: `version`, mode 3, `cookie` as its transmit timestamp.
fn request(version: u8, cookie: u64) -> [u8; 48] {
    let mut bytes = NtpPacket::client_request(cookie, 0).encode();
    bytes[0] = (version << 3) | 3;
    bytes
}

/// A client socket on `from` talking to the server on `port`.
fn client(from: &str, port: u16) -> UdpSocket {
    let socket = UdpSocket::bind((from, 0)).unwrap();
    socket.connect(("127.0.0.1", port)).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    socket
}

/// Sends `bytes` and waits for one answer: its bytes, and the host's
/// realtime (the truth here) just before sending and just after receiving.
fn exchange(socket: &UdpSocket, bytes: &[u8]) -> Option<(Vec<u8>, Timestamp, Timestamp)> {
    let mut buf = [0u8; 512];
    let t1 = realtime();
    socket.send(bytes).unwrap();
    let n = socket.recv(&mut buf).ok()?;
    let t4 = realtime();
    Some((buf[..n].to_vec(), t1, t4))
}

/// The status file once it shows the NTP server and `ok` holds.
fn ntp_status(segment: &Path, ok: impl Fn(&StatusSnapshot, &NtpServerStatus) -> bool) -> StatusSnapshot {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(status) = status_file::read(&status_file::status_path(segment)) {
            if status.ntp_server.as_ref().is_some_and(|n| ok(&status, n)) {
                return status;
            }
            assert!(Instant::now() < deadline, "status never matched: {status:?}");
        }
        assert!(Instant::now() < deadline, "no status file");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Checks that a time reply is a bound on the host clock: the server's
/// time at sending less its root distance is not after the truth when the
/// reply arrived, and its time at receipt plus the root distance not
/// before the truth when the request left (SPEC.md §2.7).
fn assert_bounds_truth(reply: &NtpPacket, t1: Timestamp, t4: Timestamp) -> Duration {
    let pivot = realtime();
    let t2 = reply.receive.to_timestamp_floor(pivot).unwrap();
    let t3 = reply.transmit.to_timestamp_floor(pivot).unwrap();
    let r = reply.root_dispersion.to_duration_ceil() + reply.root_delay.to_duration_ceil() / 2;
    assert!(t2 <= t3, "receive {t2} after transmit {t3}");
    assert!(t3.saturating_sub(r) <= t4, "T3 − R = {} after the truth {t4}", t3.saturating_sub(r));
    assert!(t2.saturating_add(r) >= t1, "T2 + R = {} before the truth {t1}", t2.saturating_add(r));
    r
}

/// Replies bound the truth and carry the honest header; malformed
/// requests, control and private queries get nothing; a request with
/// extension fields gets a 48-byte reply.
#[test]
fn replies_bound_the_host_clock_and_malformed_requests_get_no_answer() {
    let dir = Scratch::new("ntp-server", "replies");
    let gps = GpsdSim::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = free_udp_port();
    let (_tsod, segment) = tsod_with(&dir.0, &ntp_server(port, ""), &gps_source(&gps));
    let _clock = synchronized(&segment);
    // The first tick with the GPS among the truechimers.
    ntp_status(&segment, |_, n| n.stratum == Some(1));

    let socket = client("127.0.0.1", port);
    let mut dispersions = Vec::new();
    for (i, version) in [4u8, 3, 4, 4, 3, 4, 4, 4, 4, 4].into_iter().enumerate() {
        let cookie = 0x5EED_0000_0000_0000 + u64::try_from(i).unwrap();
        let (bytes, t1, t4) = exchange(&socket, &request(version, cookie)).expect("an answer");
        assert_eq!(bytes.len(), 48);
        let reply = NtpPacket::decode(&bytes).unwrap();
        assert_eq!((reply.leap, reply.version, reply.mode), (LeapIndicator::NoWarning, version, Mode::Server));
        assert_eq!((reply.stratum, reply.reference_id), (1, ReferenceId(*b"PPS\0")));
        assert_eq!(reply.origin, NtpTimestamp::from_bits(cookie));
        assert_eq!(reply.root_delay.to_bits(), 0);
        assert!(!reply.reference_time.is_zero());
        dispersions.push(assert_bounds_truth(&reply, t1, t4));
        std::thread::sleep(Duration::from_millis(100)); // within the default limit
    }
    dispersions.sort();
    eprintln!("root dispersions served: {dispersions:?}");
    // The simulated GPS bound: its PPS gap plus 100 ppm of carry between pulses.
    assert!(dispersions[dispersions.len() / 2] < Duration::from_millis(1), "{dispersions:?}");

    // Extension fields (or a MAC) are not answered: the reply is the header.
    let mut long = request(4, 99).to_vec();
    long.extend_from_slice(&[0u8; 52]);
    let (bytes, _, _) = exchange(&socket, &long).expect("an answer");
    assert_eq!(bytes.len(), 48, "a reply is never longer than its request");

    // Counters as they stand once the file shows all 11 replies (it is written once a second).
    let before = ntp_status(&segment, |_, n| n.replies == 11).ntp_server.unwrap();
    let mut control = request(2, 1);
    control[0] = (2 << 3) | 6; // ntpq's mode 6
    let mut private = request(2, 1);
    private[0] = (2 << 3) | 7; // ntpdc's mode 7 (monlist)
    let mut server_mode = request(4, 1);
    server_mode[0] = (4 << 3) | 4;
    let malformed: [&[u8]; 6] =
        [&request(4, 1)[..47], &control, &private, &request(0, 1), &request(5, 1), &server_mode];
    for bytes in malformed {
        assert_eq!(exchange(&socket, bytes), None, "{bytes:?} was answered");
    }
    let after = ntp_status(&segment, |_, n| n.dropped_malformed >= before.dropped_malformed + 6).ntp_server.unwrap();
    assert_eq!(after.dropped_malformed, before.dropped_malformed + 6, "{after:?}");
    assert_eq!(after.replies, before.replies, "{after:?}");
    assert_eq!(after.requests, before.requests + 6, "{after:?}");
    assert_eq!(after.reference_id.as_deref(), Some("PPS"));
}

/// 5 000 requests from one address: the burst and one per interval are
/// answered, about a quarter of the rest kissed, the rest dropped; another
/// client is still served, and the daemon's own bound stays true and
/// synchronized throughout.
#[test]
fn a_flood_from_one_address_is_limited_and_kissed_and_the_bound_stays() {
    let dir = Scratch::new("ntp-server", "flood");
    let gps = GpsdSim::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = free_udp_port();
    let (_tsod, segment) = tsod_with(&dir.0, &ntp_server(port, ""), &gps_source(&gps));
    let clock = synchronized(&segment);
    ntp_status(&segment, |_, n| n.stratum == Some(1));
    let before = ntp_status(&segment, |_, _| true).ntp_server.unwrap();

    let flooder = client("127.0.0.1", port);
    flooder.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let reader = flooder.try_clone().unwrap();
    let collect = std::thread::spawn(move || {
        let (mut time, mut kisses) = (0u64, 0u64);
        let mut buf = [0u8; 512];
        while let Ok(n) = reader.recv(&mut buf) {
            let reply = NtpPacket::decode(&buf[..n]).unwrap();
            if reply.stratum == 0 {
                assert_eq!(reply.reference_id.kiss_code(), KissCode::RATE);
                assert_eq!(reply.poll, -4, "the kiss raises the poll to the limit, 1/16 s");
                kisses += 1;
            } else {
                assert_eq!(reply.leap, LeapIndicator::NoWarning);
                time += 1;
            }
        }
        (time, kisses)
    });
    let bystander = client("127.0.0.2", port);
    let started = Instant::now();
    let mut bystander_served = 0;
    for burst in 0..100u64 {
        for i in 0..50u64 {
            let mut bytes = request(4, burst * 50 + i + 1);
            bytes[2] = 0xFA; // poll 2⁻⁶ s: faster than the limit
            flooder.send(&bytes).unwrap();
        }
        // Paced so the socket's receive queue never overflows: every
        // request reaches the server and is counted.
        std::thread::sleep(Duration::from_millis(1));
        if burst % 25 == 0 && exchange(&bystander, &request(4, 7)).is_some() {
            bystander_served += 1;
        }
    }
    let flood = started.elapsed();
    let (time, kisses) = collect.join().unwrap();
    // The bound the daemon publishes stayed true through it all.
    check_truth(&clock, Duration::from_millis(500), true);

    let status = ntp_status(&segment, |_, n| n.requests >= before.requests + 5_004);
    let after = status.ntp_server.clone().unwrap();
    let limited = after.rate_limited - before.rate_limited;
    let kod = after.kod_sent - before.kod_sent;
    eprintln!(
        "flood of 5000 over {flood:?}: {time} time replies, {kisses} kisses received; counted {} requests, \
         {limited} rate-limited, {kod} kiss-o'-death",
        after.requests - before.requests
    );
    assert_eq!(after.requests - before.requests, 5_004, "{after:?}");
    // The burst of 8, then one per 62.5 ms.
    let allowed = 8 + u64::try_from(flood.as_millis()).unwrap() / 62 + 1;
    assert!(time >= 8 && time <= allowed, "{time} time replies in {flood:?} (at most {allowed})");
    assert_eq!(limited, 5_000 - time, "{after:?}");
    assert!(kod > limited / 6 && kod < limited / 3, "about one in 4 of {limited} kissed: {kod}");
    assert_eq!(kisses, kod, "every kiss counted arrived");
    assert_eq!(bystander_served, 4, "another client is not limited by the flood");
    assert_eq!(status.status, ClockStatus::Synchronized, "{status:?}");
    assert_eq!(after.send_errors, 0);
}

/// A chronyd of its own on `dir`, following tsod at `port` every 1/16 s,
/// never touching the host clock (`-x`), serving nothing, with its command
/// socket in `dir` (in a directory only root can enter, as chronyd
/// demands); returns it and the socket's path.
fn chronyd_client(dir: &Path, port: u16) -> (Running, PathBuf) {
    use std::os::unix::fs::DirBuilderExt;
    let conf = dir.join("chrony-client.conf");
    let private = dir.join("chronyc");
    std::fs::DirBuilder::new().mode(0o700).create(&private).unwrap();
    let socket = private.join("chronyd.sock");
    std::fs::write(
        &conf,
        format!(
            "server 127.0.0.1 port {port} iburst minpoll -4 maxpoll -4\nport 0\ncmdport 0\nbindcmdaddress {}\n\
             pidfile {}\ndriftfile {}\n",
            socket.display(),
            dir.join("chrony-client.pid").display(),
            dir.join("chrony-client.drift").display()
        ),
    )
    .unwrap();
    (common::spawn_chronyd(&conf), socket)
}

/// chronyd's view of its one source (`chronyc -c sources`): the state
/// character (`*` selected, `?` unusable …) and the stratum.
fn chrony_source(socket: &Path) -> Option<(char, u8)> {
    let out = Command::new("chronyc").arg("-h").arg(socket).args(["-n", "-c", "sources"]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.lines().next()?.split(',').collect();
    Some((fields.get(1)?.chars().next()?, fields.get(3)?.parse().ok()?))
}

/// What `chronyc -c tracking` says.
#[derive(Debug)]
struct Tracking {
    /// "System time": chronyd's clock (following tsod) against the host's,
    /// which `-x` leaves alone: here, tsod's time against the truth (s).
    system_time: f64,
    /// "Leap status": `Normal`, `Not synchronised` …
    leap: String,
}

/// What chronyd last read from its source's header (`chronyc ntpdata`):
/// its leap status and stratum.
fn chrony_ntpdata(socket: &Path) -> (String, String) {
    let out = Command::new("chronyc").arg("-h").arg(socket).args(["-n", "ntpdata"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map_or_else(String::new, |(_, v)| v.trim().to_owned())
    };
    (field("Leap status"), field("Stratum"))
}

fn chrony_tracking(socket: &Path) -> Option<Tracking> {
    let out = Command::new("chronyc").arg("-h").arg(socket).args(["-c", "tracking"]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.trim().split(',').collect();
    Some(Tracking { system_time: fields.get(4)?.parse().ok()?, leap: fields.last()?.to_string() })
}

/// A real chronyd selects tsod (stratum 1) and its offset from tsod
/// converges to the host clock's; once the GPS goes dark and tsod's
/// holdover ends, tsod answers leap 3 and chronyd stops trusting it.
#[test]
#[cfg_attr(
    any(tsod_no_chronyd, tsod_not_root),
    ignore = "needs chronyd, run as root: apt-get install chrony, or the README's test command"
)]
fn chronyd_follows_tsod_and_lets_go_when_tsod_has_no_bound() {
    common::require(&[("chronyd", "chrony"), ("chronyc", "chrony")]);
    let dir = Scratch::new("ntp-server", "chronyd");
    let gps = GpsdSim::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = free_udp_port();
    // Short sample age and holdover, so the outage ends the bound within seconds.
    let clock_section = "[clock]\nmax-sample-age-ms = 2000\nholdover-ms = 3000\n";
    let extra = format!("{clock_section}{}", ntp_server(port, ""));
    let (_tsod, segment) = tsod_with(&dir.0, &extra, &gps_source(&gps));
    let _clock = synchronized(&segment);
    ntp_status(&segment, |_, n| n.stratum == Some(1));

    let started = Instant::now();
    let (_chronyd, socket) = chronyd_client(&dir.0, port);
    // Selected, and settled. On one machine chronyd's clock (which `-x`
    // keeps off the host clock) against the host clock is tsod's midpoint
    // against the truth, plus chronyd's own loopback error (µs): at most
    // tsod's half-width, its root dispersion, 250–350 µs with this
    // simulated GPS (the PPS line's read latency; the truth sits near the
    // interval's later end, so the midpoint lags it by about half of it).
    let mut settled = 0;
    let mut seen = Vec::new();
    let converged = loop {
        if let (Some((state, stratum)), Some(tracking)) = (chrony_source(&socket), chrony_tracking(&socket)) {
            if state == '*' {
                assert_eq!(stratum, 1);
                settled = if tracking.system_time.abs() < 500e-6 { settled + 1 } else { 0 };
                seen.push(tracking);
                if settled >= 3 {
                    break started.elapsed();
                }
            }
        }
        assert!(started.elapsed() < Duration::from_secs(20), "chronyd did not settle on tsod: {seen:?}");
        std::thread::sleep(Duration::from_millis(250));
    };
    // Keep following for 3 s, each look beside a reply of our own: chronyd
    // stays within tsod's root dispersion of the truth (the median of the
    // looks: chronyd follows a jump of tsod's midpoint a poll or two late).
    // From another address than chronyd's: its polls use up its own limit.
    let probe = client("127.0.0.2", port);
    let (mut offsets, mut dispersions) = (Vec::new(), Vec::new());
    for i in 0..12u64 {
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(chrony_source(&socket).map(|s| s.0), Some('*'));
        let tracking = chrony_tracking(&socket).unwrap();
        assert_eq!(tracking.leap, "Normal", "chronyd synchronized to tsod");
        offsets.push(tracking.system_time.abs() * 1e6);
        let (bytes, t1, t4) = exchange(&probe, &request(4, 1_000 + i)).unwrap();
        let r = assert_bounds_truth(&NtpPacket::decode(&bytes).unwrap(), t1, t4);
        dispersions.push(r.as_secs_f64() * 1e6);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (offset, dispersion) = (median(&mut offsets), median(&mut dispersions));
    eprintln!(
        "chronyd selected tsod and settled after {converged:?}; over the next 3 s |chronyd − truth| (µs) {:?}, \
         median {offset:.1}; tsod's root dispersion median {dispersion:.1} µs",
        offsets.iter().map(|o| o.round()).collect::<Vec<_>>()
    );
    assert!(offset <= dispersion + 50.0, "chronyd {offset} µs off the truth, tsod claims ±{dispersion} µs");

    // The GPS goes dark: tsod holds over, then has no bound.
    let dark = Instant::now();
    gps.set_fault(GpsFault { outage: true, ..GpsFault::default() });
    ntp_status(&segment, |s, _| s.status == ClockStatus::Unsynchronized);
    let unbounded_after = dark.elapsed();
    // The status says what the server serves (as of its thread's last look).
    ntp_status(&segment, |_, n| n.stratum.is_none() && n.reference_id.is_none());
    // tsod now answers leap 3 with no time.
    let (bytes, _, _) = exchange(&probe, &request(4, 5)).unwrap();
    let reply = NtpPacket::decode(&bytes).unwrap();
    assert_eq!((reply.leap, reply.stratum), (LeapIndicator::Unsynchronized, 16));
    // chronyd reads the header (leap indicator 3, stratum 16) and stops
    // trusting it: the source is no longer selectable.
    let let_go = loop {
        let source = chrony_source(&socket);
        let header = chrony_ntpdata(&socket);
        if source.is_some_and(|(state, _)| state == '?') && header == ("Not synchronised".into(), "16".into()) {
            break dark.elapsed();
        }
        let waited = dark.elapsed();
        assert!(waited < unbounded_after + Duration::from_secs(15), "chronyd still trusts tsod: {source:?} {header:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!(
        "GPS dark: tsod unsynchronized after {unbounded_after:?}, chronyd let go after {let_go:?} ({:?}, {:?})",
        chrony_source(&socket),
        chrony_tracking(&socket)
    );
}

/// The reply rate of one listen socket with the daemon on one core
/// (`taskset -c 0`), the rate limiter off and on (a limit no client
/// reaches, so every request pays for the table): replies per second and
/// the daemon's CPU time per reply, the median of 3 runs of 3 s each.
#[test]
#[ignore = "a measurement: run by hand with --ignored --nocapture"]
fn ntp_server_reply_rate() {
    for (name, limit) in [("rate limit off", "enabled = false"), ("rate limit on", "interval-ms = 0.001\nburst = 255")]
    {
        let dir = Scratch::new("ntp-server", "rate");
        let gps = GpsdSim::start("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = free_udp_port();
        let segment = dir.join("segment");
        let conf =
            format!("{}[publish]\npath = \"{}\"\n{}", ntp_server(port, limit), segment.display(), gps_source(&gps));
        std::fs::write(dir.join("tsod.toml"), conf).unwrap();
        let daemon = Running(
            Command::new("taskset")
                .args(["-c", "0", env!("CARGO_BIN_EXE_tsod"), "run", "--config"])
                .arg(dir.join("tsod.toml"))
                .env("TSOD_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .expect("taskset"),
        );
        let _clock = synchronized(&segment);
        let pid = daemon.0.id();
        let mut runs = Vec::new();
        for _ in 0..3 {
            let cpu_before = cpu_time(pid);
            let (replies, elapsed) = drive(port, Duration::from_secs(3));
            let cpu = cpu_time(pid) - cpu_before;
            let rate = replies as f64 / elapsed.as_secs_f64();
            runs.push((rate, cpu.as_secs_f64() * 1e6 / replies as f64));
        }
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (rate, cpu_per_reply) = runs[1];
        let all: Vec<String> = runs.iter().map(|(r, c)| format!("{r:.0}/s at {c:.2} µs")).collect();
        eprintln!("{name}: median {rate:.0} replies/s, {cpu_per_reply:.2} µs of daemon CPU per reply (runs: {all:?})");
    }
}

/// Keeps 64 requests in flight from one client on the other core for
/// `span`; returns the replies received and the time taken.
fn drive(port: u16, span: Duration) -> (u64, Duration) {
    let tid = std::fs::read_link("/proc/thread-self").unwrap();
    let tid = tid.file_name().unwrap().to_str().unwrap().to_owned();
    let pinned = Command::new("taskset").args(["-p", "-c", "1", &tid]).stdout(Stdio::null()).status().unwrap();
    assert!(pinned.success());
    let socket = client("127.0.0.1", port);
    socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 128];
    let (mut replies, mut cookie) = (0u64, 1u64);
    let started = Instant::now();
    let mut in_flight = 0;
    while started.elapsed() < span {
        while in_flight < 64 {
            cookie += 1;
            socket.send(&request(4, cookie)).unwrap();
            in_flight += 1;
        }
        match socket.recv(&mut buf) {
            Ok(_) => {
                replies += 1;
                in_flight -= 1;
            }
            Err(_) => in_flight = 0, // lost (a queue overflowed): refill
        }
    }
    (replies, started.elapsed())
}

/// User plus system CPU time of process `pid`, all its threads.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_second = 100; // USER_HZ on Linux
    Duration::from_millis(ticks * 1_000 / per_second)
}
