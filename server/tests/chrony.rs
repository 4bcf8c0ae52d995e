//! tsod against real chronyd servers on loopback (unprivileged ports, `-x`
//! so they never touch the host clock). On one machine the host clock is
//! the truth: every interval tsod publishes must contain it.
//!
//! Needs `chronyd` (package chrony). Without it the tests print why they
//! skip — except under CI (`CI=true`), where `.ci/run` installs it and a
//! missing one is a failure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Scratch;
use tsod::status_file;
use tsod_client::LocalClock;
use tsod_proto::{ClockStatus, Timestamp};

/// Whether `program` is installed; prints the reason and returns false when
/// it is not (outside CI), panics under CI.
fn available(program: &str, package: &str) -> bool {
    let found =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file())).unwrap_or(false)
            || Path::new("/usr/sbin").join(program).is_file();
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{program} is missing under CI: .ci/run must install {package}");
        }
        eprintln!("SKIPPED: {program} not installed (apt-get install {package}); this test did not run");
    }
    found
}

fn is_root() -> bool {
    // chronyd must start as root to drop privileges; the test runs it as root.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts chronyd on `port`. `source` is its time: `None` serves its own
/// clock at stratum 1; `Some((upstream, offset))` follows another chronyd
/// with a deliberate offset (chrony's `server … offset`), so it serves a
/// consistently wrong time while claiming stratum 2 and a tiny root
/// distance: a confident liar, not a broken server.
fn chronyd(dir: &Path, port: u16, source: Option<(u16, &str)>) -> Running {
    let conf = dir.join(format!("chrony-{port}.conf"));
    let time = match source {
        None => "local stratum 1\n".to_owned(),
        Some((upstream, offset)) => {
            format!("server 127.0.0.1 port {upstream} iburst minpoll -4 maxpoll -4 offset {offset}\n")
        }
    };
    std::fs::write(
        &conf,
        format!(
            "port {port}\n{time}allow 127.0.0.1\ncmdport 0\npidfile {}\n",
            dir.join(format!("chrony-{port}.pid")).display()
        ),
    )
    .unwrap();
    let child = Command::new("chronyd")
        .args(["-d", "-x", "-u", "root", "-f"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chronyd");
    Running(child)
}

fn tsod(dir: &Path, sources: &[(&str, u16)]) -> (Running, PathBuf) {
    let segment = dir.join("segment");
    let mut conf = format!("[publish]\npath = \"{}\"\n", segment.display());
    for (name, port) in sources {
        conf.push_str(&format!(
            "\n[[source]]\nkind = \"ntp\"\nname = \"{name}\"\naddress = \"127.0.0.1:{port}\"\ntimescale = \"utc\"\npoll-interval-ms = 250\n"
        ));
    }
    let path = dir.join("tsod.toml");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tsod"))
        .args(["run", "--config"])
        .arg(&path)
        .env("TSOD_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start tsod");
    (Running(child), segment)
}

fn realtime() -> Timestamp {
    Timestamp::from_nanos(u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()).unwrap())
}

/// Opens the segment once it exists and waits for a bound.
fn synchronized(segment: &Path) -> LocalClock {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(clock) = LocalClock::open_path(segment) {
            if clock.wait_until_synchronized(Duration::from_secs(20)).is_ok() {
                return clock;
            }
        }
        assert!(Instant::now() < deadline, "tsod did not synchronize within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads the clock for `span`, checking every interval against the host
/// clock read just before and just after; returns the half-widths seen (ns).
/// With `must_be_bounded` false, errors (no bound, e.g. while sources that
/// disagree arrive one by one) are allowed: only a wrong bound fails.
fn check_truth(clock: &LocalClock, span: Duration, must_be_bounded: bool) -> Vec<u64> {
    let mut widths = Vec::new();
    let end = Instant::now() + span;
    while Instant::now() < end {
        let before = realtime();
        let interval = match clock.now() {
            Ok(interval) => interval,
            Err(e) if !must_be_bounded => {
                eprintln!("no bound for now: {e}");
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => panic!("expected a bound: {e}"),
        };
        let after = realtime();
        assert!(
            interval.earliest() <= after && before <= interval.latest(),
            "{interval} excludes the host clock [{before}, {after}]"
        );
        widths.push(u64::try_from(interval.half_width().as_nanos()).unwrap());
        std::thread::sleep(Duration::from_millis(2));
    }
    widths.sort_unstable();
    widths
}

#[test]
fn one_chronyd_server_gives_a_true_tight_bound() {
    if !available("chronyd", "chrony") {
        return;
    }
    if !is_root() {
        eprintln!("SKIPPED: chronyd must be started as root; this test did not run");
        return;
    }
    let dir = Scratch::new("chrony", "one");
    let port = free_udp_port();
    let _server = chronyd(&dir.0, port, None);
    let (_tsod, segment) = tsod(&dir.0, &[("chrony", port)]);
    let clock = synchronized(&segment);
    let widths = check_truth(&clock, Duration::from_secs(4), true);
    let median = widths[widths.len() / 2];
    eprintln!("median half-width {median} ns over {} reads", widths.len());
    // A loopback exchange: round trip and precision terms, well under a millisecond.
    assert!(median < 1_000_000, "median half-width {median} ns");

    // The model's prediction: with one source the bound is that source's
    // projected interval, which the status file reports as its error.
    std::thread::sleep(Duration::from_millis(1100)); // the status file is written once a second
    let status = status_file::read(&status_file::status_path(&segment)).unwrap();
    assert_eq!(status.status, ClockStatus::Synchronized);
    let source = &status.sources[0];
    assert!(source.usable && !source.falseticker);
    assert_eq!(status.half_width_ns, source.error_ns, "one source: the bound is the source's interval");
}

#[test]
fn a_chronyd_with_a_wrong_clock_is_outvoted_as_a_falseticker() {
    if !available("chronyd", "chrony") {
        return;
    }
    if !is_root() {
        eprintln!("SKIPPED: chronyd must be started as root; this test did not run");
        return;
    }
    let dir = Scratch::new("chrony", "three");
    let ports = [free_udp_port(), free_udp_port(), free_udp_port()];
    let _a = chronyd(&dir.0, ports[0], None);
    let _b = chronyd(&dir.0, ports[1], None);
    let _liar = chronyd(&dir.0, ports[2], Some((ports[0], "0.05"))); // 50 ms off
    let (_tsod, segment) = tsod(&dir.0, &[("a", ports[0]), ("b", ports[1]), ("liar", ports[2])]);
    let clock = synchronized(&segment);
    // The liar first follows its upstream (a second or two); judge once all
    // three deliver, checking the truth all along.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        check_truth(&clock, Duration::from_millis(500), false);
        let status = status_file::read(&status_file::status_path(&segment));
        if let Ok(status) = &status {
            if status.sources.iter().all(|s| s.usable) {
                break status.clone();
            }
        }
        assert!(Instant::now() < deadline, "not every source became usable: {status:?}");
    };
    check_truth(&clock, Duration::from_secs(2), true);
    let liar = status.sources.iter().find(|s| s.name == "liar").unwrap();
    assert!(liar.usable && liar.falseticker, "{status:?}");
    assert!(liar.offset_ns.unwrap().unsigned_abs() > 40_000_000, "{status:?}");
    for honest in status.sources.iter().filter(|s| s.name != "liar") {
        assert!(honest.usable && !honest.falseticker, "{status:?}");
    }
    assert_eq!(status.status, ClockStatus::Degraded, "two of three configured sources agree");
}
