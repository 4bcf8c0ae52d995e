//! The simulated gpsd against a client that speaks to it as `tsod` does:
//! its reports, faults, leap seconds, slews and clients.

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

#[test]
fn around_a_leap_labels_are_posix_utc_and_clock_stays_the_hosts() {
    use crate::truth::{Leap, LeapKind};
    // The day ends two seconds from now: labels repeat the second before.
    let now = host_realtime().as_nanos() / NANOS_PER_SEC;
    let day_ends = Timestamp::from_nanos((now + 2) * NANOS_PER_SEC);
    const L: u64 = 1_814_400_000;
    let leap = Leap { boundary_s: L, kind: LeapKind::Insert, announced: true };
    let time = TrueTime::for_leap(leap, day_ends);
    let sim = GpsdSim::start_with(loopback(), time).unwrap();
    let mut reader = watch(&sim);
    let mut labels = Vec::new();
    while labels.len() < 4 {
        let (pps, _) = next_of(&mut reader, "PPS");
        let clock = nanos(&pps, "clock_sec", "clock_nsec");
        let real = nanos(&pps, "real_sec", "real_nsec");
        assert_eq!(clock % 1_000_000_000, 0, "clock is the host's own second boundary");
        let (tpv, _) = next_of(&mut reader, "TPV");
        let time = DateTime::parse_from_rfc3339(tpv["time"].as_str().unwrap()).unwrap();
        assert_eq!(i128::from(time.timestamp_nanos_opt().unwrap()), real, "TPV and PPS agree");
        labels.push((clock / 1_000_000_000, real / 1_000_000_000));
    }
    let day_ends = i128::from(now + 2);
    let l = i128::from(L);
    for (clock, real) in labels {
        // Host second h is T = h + Δ with Δ = L - day_ends; POSIX repeats L - 1.
        let expected = if clock < day_ends { clock + l - day_ends } else { clock + l - day_ends - 1 };
        assert_eq!(real, expected, "edge at host {clock}");
    }
}

#[test]
fn a_slewing_realtime_shrinks_or_stretches_the_gap() {
    let edge = Timestamp::from_nanos(1_796_000_000 * NANOS_PER_SEC);
    let sent = Timestamp::from_nanos(edge.as_nanos() + 6_000_000);
    // 83 333 ppm slow: 6 ms of true time are 5.5 ms of realtime.
    let clock = slewed_clock(edge, sent, Ppb::from_ppm(-83_333));
    assert_eq!(sent.as_nanos() - clock.as_nanos(), 6_000_000 - 499_998);
    let clock = slewed_clock(edge, sent, Ppb::from_ppm(83_333));
    assert_eq!(sent.as_nanos() - clock.as_nanos(), 6_000_000 + 499_998);
    assert_eq!(slewed_clock(edge, sent, Ppb::ZERO), edge);
}

#[test]
fn while_a_slew_is_set_pps_lines_are_late_and_their_clock_slewed() {
    let sim = GpsdSim::start(loopback()).unwrap();
    let mut reader = watch(&sim);
    let until = Timestamp::from_nanos(host_realtime().as_nanos() + 10 * NANOS_PER_SEC);
    let latency = Duration::from_millis(20);
    sim.set_realtime_slew(Some(RealtimeSlew { rate: Ppb::from_ppm(-83_333), until, latency }));
    // The first PPS may have been sent before the slew was set.
    let _ = next_of(&mut reader, "PPS");
    let (pps, read_at) = next_of(&mut reader, "PPS");
    let clock = nanos(&pps, "clock_sec", "clock_nsec");
    let real = nanos(&pps, "real_sec", "real_nsec");
    assert_eq!(real % 1_000_000_000, 0);
    let elapsed = i128::from(read_at.as_nanos()) - real;
    let gap = i128::from(read_at.as_nanos()) - clock;
    assert!(elapsed >= 20_000_000, "sent {elapsed} ns after its edge");
    // The gap is 1 - 83 333 ppm of the time to the send, and the read is
    // not slewed: gap < elapsed, yet within the daemon's 102 000 ppm.
    assert!(gap < elapsed - 1_500_000, "gap {gap}, elapsed {elapsed}");
    assert!(gap * 1_000_000 >= elapsed * (1_000_000 - 102_000), "gap {gap}, elapsed {elapsed}");
    sim.set_realtime_slew(None);
    let _ = next_of(&mut reader, "PPS");
    let (pps, _) = next_of(&mut reader, "PPS");
    assert_eq!(nanos(&pps, "clock_sec", "clock_nsec"), nanos(&pps, "real_sec", "real_nsec"));
}
