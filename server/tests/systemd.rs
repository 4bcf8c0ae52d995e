//! tsod as a systemd service: the sd_notify(3) protocol of a `Type=notify`
//! unit with `WatchdogSec`, spoken to a socket the test binds in place of
//! systemd's.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Running, Scratch};
use tsod_client::LocalClock;
use tsod_testbed::sim::gpsd::GpsdSim;

/// The configuration of one daemon fed by `gps`, publishing in `dir`.
fn config(dir: &std::path::Path, gps: &GpsdSim) -> std::path::PathBuf {
    let config = dir.join("tsod.toml");
    std::fs::write(
        &config,
        format!(
            "[publish]\npath = \"{}\"\n[[source]]\nkind = \"gpsd\"\nname = \"gps\"\naddress = \"{}\"\ntimescale = \"utc\"\n",
            dir.join("segment").display(),
            gps.local_addr()
        ),
    )
    .unwrap();
    config
}

/// `tsod wait-sync` with `args`: its exit code, standard output and error,
/// and how long it took.
fn wait_sync(args: &[&str]) -> (i32, String, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_tsod")).arg("wait-sync").args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text, started.elapsed())
}

/// `tsod wait-sync` exits 1 when its timeout passes without a good bound
/// (no daemon yet, or a bound wider than asked), 0 as soon as the daemon
/// publishes one, and 2 at once for bad arguments.
#[test]
fn wait_sync_exits_0_once_synchronized_1_on_timeout_and_2_on_bad_arguments() {
    let scratch = Scratch::new("systemd", "wait-sync");
    let segment = scratch.join("segment");
    let seg = segment.to_str().unwrap();
    let (code, out, took) = wait_sync(&["--segment", seg, "--timeout", "1s"]);
    assert_eq!(code, 1, "{out}");
    assert!(took >= Duration::from_secs(1) && out.contains("not synchronized"), "{took:?} {out}");
    let (code, out, _) = wait_sync(&["--segment", seg, "--timeout", "soon"]);
    assert_eq!(code, 2, "{out}");

    // Started while nothing runs: returns once the daemon has synchronized.
    let waiting = Command::new(env!("CARGO_BIN_EXE_tsod"))
        .args(["wait-sync", "--segment", seg, "--timeout", "60s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let gps = GpsdSim::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let config = config(&scratch.0, &gps);
    let _daemon = Running(
        Command::new(env!("CARGO_BIN_EXE_tsod"))
            .args(["run", "--config"])
            .arg(&config)
            .env("TSOD_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = waiting.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("synchronized"), "{text}");
    // A reader right after it exits gets a bound.
    assert!(LocalClock::open_path(&segment).unwrap().now().is_ok());

    // Narrower than the bound can be: times out.
    let (code, out, _) = wait_sync(&["--segment", seg, "--max-half-width", "1ns", "--timeout", "500ms"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("wider than"), "{out}");
    let (code, out, _) = wait_sync(&["--segment", seg, "--max-half-width", "10s", "--timeout", "5s"]);
    assert_eq!(code, 0, "{out}");
}

/// A segment another user planted is refused at once (exit 2): waiting
/// would not make it trustworthy.
#[test]
#[cfg_attr(tsod_not_root, ignore = "chowns a file to another user: run as root, or the README's test command")]
fn wait_sync_refuses_a_planted_segment_at_once() {
    let scratch = Scratch::new("systemd", "wait-sync-planted");
    let segment = scratch.join("segment");
    std::fs::write(&segment, vec![0u8; 4096]).unwrap();
    let chowned = Command::new("chown").arg("65534").arg(&segment).status().unwrap();
    assert!(chowned.success());
    let (code, out, took) = wait_sync(&["--segment", segment.to_str().unwrap(), "--timeout", "10s"]);
    assert_eq!(code, 2, "{out}");
    assert!(took < Duration::from_secs(5) && out.contains("owned by uid 65534"), "{took:?} {out}");
}

/// READY=1 comes only once a bounded interval is published (a reader then
/// gets one), STATUS lines say the status, WATCHDOG=1 comes at half of
/// `WATCHDOG_USEC`, and SIGTERM sends STOPPING=1.
#[test]
fn systemd_hears_ready_only_once_a_bound_is_published_and_the_watchdog_is_fed() {
    let scratch = Scratch::new("systemd", "notify");
    let socket_path = scratch.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let gps = GpsdSim::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let segment = scratch.join("segment");
    let config = config(&scratch.0, &gps);
    let daemon = Running(
        Command::new(env!("CARGO_BIN_EXE_tsod"))
            .args(["run", "--config"])
            .arg(&config)
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "400000")
            .env("TSOD_LOG", std::env::var("TSOD_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let mut messages: Vec<(Instant, String)> = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ready_at = None;
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if ready_at.is_none() && text.lines().any(|l| l == "READY=1") {
                // At READY the segment already holds a bound.
                let clock = LocalClock::open_path(&segment).unwrap();
                let now = clock.now();
                assert!(now.is_ok(), "READY=1 sent while the segment holds no bound: {now:?}");
                ready_at = Some(Instant::now());
            }
            messages.push((Instant::now(), text));
        }
        if ready_at.is_some_and(|r| r.elapsed() > Duration::from_millis(1_500)) {
            break;
        }
    }
    let ready_at = ready_at.unwrap_or_else(|| panic!("no READY=1 within 30 s; got {messages:?}"));
    let before_ready: Vec<&String> = messages.iter().filter(|(at, _)| *at < ready_at).map(|(_, m)| m).collect();
    assert!(
        before_ready.iter().any(|m| m.contains("STATUS=unsynchronized")),
        "no unsynchronized STATUS before READY: {before_ready:?}"
    );
    let ready = messages.iter().find(|(_, m)| m.contains("READY=1")).map(|(_, m)| m.clone()).unwrap();
    assert!(ready.contains("STATUS=synchronized") || ready.contains("STATUS=degraded"), "{ready}");
    let pings = messages.iter().filter(|(at, m)| *at >= ready_at && m.trim() == "WATCHDOG=1").count();
    assert!(pings >= 4, "{pings} watchdog pings in 1.5 s at WATCHDOG_USEC = 400 ms (expected one every 200 ms)");

    let status = Command::new("kill").arg("-TERM").arg(daemon.0.id().to_string()).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut stopping = false;
    while !stopping && Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            stopping = String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == "STOPPING=1");
        }
    }
    assert!(stopping, "no STOPPING=1 after SIGTERM");
}

/// The shipped units pass `systemd-analyze verify` (with the binary this
/// build made in place of /usr/bin/tsod, which verify requires to exist),
/// and keep the hardening the package promises.
#[test]
#[cfg_attr(tsod_no_systemd_analyze, ignore = "needs systemd-analyze (Debian's systemd)")]
fn the_shipped_units_pass_systemd_analyze_verify() {
    let scratch = Scratch::new("systemd", "verify");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/debian");
    let mut units = Vec::new();
    for name in ["tsod.service", "tsod-wait-sync.service"] {
        let text = std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
        let path = scratch.join(name);
        std::fs::write(&path, text.replace("/usr/bin/tsod", env!("CARGO_BIN_EXE_tsod"))).unwrap();
        units.push((text, path));
    }
    let out = Command::new("systemd-analyze").arg("verify").args(units.iter().map(|(_, p)| p)).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.trim().is_empty(), "systemd-analyze verify: {text}");
    let daemon = &units[0].0;
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "RuntimeDirectory=tsod",
        "StateDirectory=tsod",
        "User=tsod",
    ] {
        assert!(daemon.lines().any(|l| l.starts_with(line)), "tsod.service lacks {line}");
    }
    let settings = daemon.lines().filter(|l| !l.starts_with('#'));
    assert!(!settings.into_iter().any(|l| l.contains("CAP_SYS_TIME")), "tsod never sets the clock: no CAP_SYS_TIME");
}
