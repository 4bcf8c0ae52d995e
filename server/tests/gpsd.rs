//! tsod reading a real gpsd fed by `gpsfake` (package gpsd-clients) with
//! NMEA sentences (RMC, GGA, ZDA) this test writes itself. gpsfake replays
//! at its own pace, so a log stamped with the current time is an honest GPS
//! (within gpsfake's start-up delay: the configured NMEA error covers it),
//! and a log stamped an hour ago is a GPS that is an hour wrong.
//!
//! Without gpsd/gpsfake (or chronyd for the second test), or without root,
//! the tests are ignored with the reason (`server/build.rs`); under CI
//! (`CI=true`) a missing program is a failure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Utc};
use common::{
    Running, RunningGroup, Scratch, check_truth, chronyd, free_udp_port, ntp_source, realtime, require, synchronized,
    tsod_with,
};
use tsod::daemon::status_file::{self, StatusSnapshot};
use tsod_proto::ClockStatus;

/// Writes `seconds` of one-per-second RMC/GGA/ZDA sentences starting at
/// `start` (Unix seconds).
fn nmea_log(path: &Path, start: i64, seconds: i64) {
    let sentence = |body: String| {
        let checksum = body.bytes().fold(0u8, |c, b| c ^ b);
        format!("${body}*{checksum:02X}\r\n")
    };
    let mut log = String::new();
    for k in 0..seconds {
        let t: DateTime<Utc> = DateTime::from_timestamp(start + k, 0).unwrap();
        let hms = t.format("%H%M%S.00");
        let dmy = t.format("%d%m%y");
        log += &sentence(format!("GPRMC,{hms},A,4807.038,N,01131.000,E,000.0,000.0,{dmy},,,A"));
        log += &sentence(format!("GPGGA,{hms},4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"));
        log += &sentence(format!("GPZDA,{hms},{:02},{:02},{},00,00", t.day(), t.month(), t.year()));
    }
    std::fs::write(path, log).unwrap();
}

/// gpsfake serving `log` once, three sentences a second, on `port`.
/// It runs in its own process group with the gpsd it starts, so the test's
/// end stops both.
fn gpsfake(log: &Path, port: u16) -> RunningGroup {
    let child = Command::new("gpsfake")
        .args(["-q", "-1", "-c", "0.333", "-P", &port.to_string()])
        .arg(log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start gpsfake");
    RunningGroup(child)
}

fn gpsd_source(port: u16) -> String {
    // NMEA-only time: a 3 s error class covers gpsfake's start-up delay.
    format!(
        "\n[[source]]\nkind = \"gpsd\"\nname = \"gps\"\naddress = \"127.0.0.1:{port}\"\ntimescale = \"utc\"\nnmea-error-us = 3000000\n"
    )
}

fn status(segment: &Path) -> Option<StatusSnapshot> {
    status_file::read(&status_file::status_path(segment)).ok()
}

fn wait_for(segment: &Path, what: &str, ok: impl Fn(&StatusSnapshot) -> bool) -> StatusSnapshot {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = status(segment).filter(|s| ok(s)) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: last status {:?}", status(segment));
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[cfg_attr(
    any(tsod_no_gpsd, tsod_not_root),
    ignore = "needs gpsd and gpsfake, run as root: apt-get install gpsd gpsd-clients, or the README's test command"
)]
fn an_honest_gps_gives_a_true_bound_and_its_loss_never_breaks_it() {
    require(&[("gpsd", "gpsd"), ("gpsfake", "gpsd-clients")]);
    let dir = Scratch::new("gpsd", "honest");
    let port = free_udp_port();
    let log = dir.join("honest.nmea");
    let now = i64::try_from(realtime().as_nanos() / 1_000_000_000).unwrap();
    nmea_log(&log, now, 15);
    let _gps = gpsfake(&log, port);
    std::thread::sleep(Duration::from_millis(500)); // gpsd's port opens
    let (_tsod, segment) = tsod_with(&dir.0, "[clock]\nmax-sample-age-ms = 3000\n", &gpsd_source(port));
    let clock = synchronized(&segment);
    check_truth(&clock, Duration::from_secs(3), true);
    let s = wait_for(&segment, "gps usable", |s| s.sources[0].usable && s.sources[0].samples > 0);
    assert_eq!(s.status, ClockStatus::Synchronized);
    // The log ends, gpsd has nothing more: the source goes unusable and the
    // site carries its last bound forward; it never publishes a wrong one.
    let s = wait_for(&segment, "gps unusable after the log ends", |s| !s.sources[0].usable);
    assert!(matches!(s.status, ClockStatus::FreeRunning | ClockStatus::Unsynchronized), "{s:?}");
    check_truth(&clock, Duration::from_secs(1), false);
}

#[test]
#[cfg_attr(
    any(tsod_no_gpsd, tsod_no_chronyd, tsod_not_root),
    ignore = "needs gpsd, gpsfake and chronyd, run as root: apt-get install gpsd gpsd-clients chrony, or the README's test command"
)]
fn a_gps_an_hour_wrong_is_outvoted_by_two_chronyd_servers() {
    require(&[("gpsd", "gpsd"), ("gpsfake", "gpsd-clients"), ("chronyd", "chrony")]);
    let dir = Scratch::new("gpsd", "stale");
    let gps_port = free_udp_port();
    let log = dir.join("old.nmea");
    let an_hour_ago = i64::try_from(realtime().as_nanos() / 1_000_000_000).unwrap() - 3600;
    nmea_log(&log, an_hour_ago, 40);
    let _gps = gpsfake(&log, gps_port);
    let ports = [free_udp_port(), free_udp_port()];
    let _a = chronyd(&dir.0, ports[0], None);
    let _b = chronyd(&dir.0, ports[1], None);
    std::thread::sleep(Duration::from_millis(500));
    let sources = format!("{}{}{}", ntp_source("a", ports[0]), ntp_source("b", ports[1]), gpsd_source(gps_port));
    let (_tsod, segment) = tsod_with(&dir.0, "", &sources);
    let clock = synchronized(&segment);
    let s = wait_for(&segment, "all three usable", |s| s.sources.iter().all(|x| x.usable));
    check_truth(&clock, Duration::from_secs(2), true);
    let gps = s.sources.iter().find(|x| x.name == "gps").unwrap();
    assert!(gps.falseticker, "{s:?}");
    assert!(gps.offset_ns.unwrap() < -3_000_000_000_000, "an hour behind: {s:?}");
    assert_eq!(s.status, ClockStatus::Degraded);
}

/// A local user who binds gpsd's port while gpsd is down is not believed:
/// tsod looks up who owns the listening socket and refuses anyone but
/// root, `gpsd` or itself. Here the impostor is a real gpsd running as
/// `nobody` (uid 65534).
#[test]
#[cfg_attr(
    any(tsod_no_gpsd, tsod_not_root),
    ignore = "needs gpsd, run as root: apt-get install gpsd gpsd-clients, or the README's test command"
)]
fn a_gpsd_run_by_another_user_is_refused_as_an_impostor() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    require(&[("gpsd", "gpsd")]);
    let dir = Scratch::new("gpsd", "impostor");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let port = free_udp_port();
    let impostor = Command::new("gpsd")
        .args(["-N", "-F"])
        .arg(dir.join("control.sock"))
        .args(["-S", &port.to_string()])
        .uid(65_534)
        .gid(65_534)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start gpsd as nobody");
    let _impostor = Running(impostor);
    std::thread::sleep(Duration::from_millis(500));
    let (_tsod, segment) = tsod_with(&dir.0, "", &gpsd_source(port));
    let s = wait_for(&segment, "the impostor refused", |s| {
        s.sources[0].last_error.as_deref().is_some_and(|e| e.contains("uid 65534") && e.contains("impostor"))
    });
    assert_eq!(s.sources[0].samples, 0, "{s:?}");
    assert!(!s.sources[0].usable);
}

/// A gpsd that accepts and then says nothing (hung) does not hold the
/// source forever: the connection is dropped after 10 s and made again.
#[test]
fn a_silent_gpsd_is_dropped_and_reconnected() {
    let dir = Scratch::new("gpsd", "silent");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = std::sync::Arc::clone(&accepted);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(stream); // never written to, never closed
        }
    });
    let (_tsod, segment) = tsod_with(&dir.0, "", &gpsd_source(port));
    let deadline = Instant::now() + Duration::from_secs(40);
    while accepted.load(std::sync::atomic::Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "no reconnect: {:?}", status(&segment));
        std::thread::sleep(Duration::from_millis(200));
    }
    let s = wait_for(&segment, "the silence reported", |s| {
        s.sources[0].last_error.as_deref().is_some_and(|e| e.contains("no complete line"))
    });
    assert!(!s.sources[0].usable && s.sources[0].samples == 0, "{s:?}");
}
