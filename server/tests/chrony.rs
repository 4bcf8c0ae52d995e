//! tsod against real chronyd servers on loopback (unprivileged ports, `-x`
//! so they never touch the host clock). On one machine the host clock is
//! the truth: every interval tsod publishes must contain it.
//!
//! Needs `chronyd` (package chrony) and root. Without them the tests are
//! ignored with the reason (`server/build.rs`) — except under CI
//! (`CI=true`), where `.ci/test` installs it and a missing one is a failure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::time::{Duration, Instant};

use common::{Scratch, check_truth, chronyd, free_udp_port, ntp_source, require, synchronized, tsod};
use tsod::daemon::status_file;
use tsod_proto::ClockStatus;

#[test]
#[cfg_attr(
    any(tsod_no_chronyd, tsod_not_root),
    ignore = "needs chronyd, run as root: apt-get install chrony, or the README's test command"
)]
fn one_chronyd_server_gives_a_true_tight_bound() {
    require(&[("chronyd", "chrony")]);
    let dir = Scratch::new("chrony", "one");
    let port = free_udp_port();
    let _server = chronyd(&dir.0, port, None);
    let (_tsod, segment) = tsod(&dir.0, &ntp_source("chrony", port));
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
#[cfg_attr(
    any(tsod_no_chronyd, tsod_not_root),
    ignore = "needs chronyd, run as root: apt-get install chrony, or the README's test command"
)]
fn a_chronyd_with_a_wrong_clock_is_outvoted_as_a_falseticker() {
    require(&[("chronyd", "chrony")]);
    let dir = Scratch::new("chrony", "three");
    let ports = [free_udp_port(), free_udp_port(), free_udp_port()];
    let _a = chronyd(&dir.0, ports[0], None);
    let _b = chronyd(&dir.0, ports[1], None);
    let _liar = chronyd(&dir.0, ports[2], Some((ports[0], "0.05"))); // 50 ms off
    let sources = [("a", ports[0]), ("b", ports[1]), ("liar", ports[2])].map(|(n, p)| ntp_source(n, p)).concat();
    let (_tsod, segment) = tsod(&dir.0, &sources);
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

#[test]
#[cfg_attr(
    any(tsod_no_chronyd, tsod_not_root),
    ignore = "needs chronyd, run as root: apt-get install chrony, or the README's test command"
)]
fn chronyd_answers_interleaved_requests_and_the_bound_stays_true() {
    use tsod::sources::ntp::{NtpSource, NtpSourceConfig};
    require(&[("chronyd", "chrony")]);
    let dir = Scratch::new("chrony", "interleaved");
    let port = free_udp_port();
    let _server = chronyd(&dir.0, port, None);

    // The core against the real server: after the first (basic) exchange,
    // chronyd answers in interleaved mode, and every reported departure is
    // consistent with the exchange it belongs to.
    let config = NtpSourceConfig { interleaved: true, ..NtpSourceConfig::default() };
    let mut source = NtpSource::new(config).unwrap();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(("127.0.0.1", port)).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut cookie = 0x1234_5678_9ABC_DEF0_u64;
    while source.counters().interleaved() < 10 && Instant::now() < deadline {
        cookie = cookie.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let t1 = tsod_client::sys::reader_clock_now().unwrap();
        socket.send(&source.start_request(t1, cookie)).unwrap();
        if let Ok(n) = socket.recv(&mut buf) {
            let t4 = tsod_client::sys::reader_clock_now().unwrap();
            let _ = source.handle_reply(&buf[..n], t4, common::realtime());
        }
        std::thread::sleep(Duration::from_millis(70));
    }
    let counters = source.counters();
    assert!(counters.interleaved() >= 10, "chronyd did not answer in interleaved mode: {counters:?}");
    assert_eq!(counters.interleaved_refused(), 0, "{counters:?}");
    assert_eq!(counters.rejected_total(), 0, "{counters:?}");

    // The daemon in interleaved mode, polling every 1/16 s: always true.
    let sources =
        ntp_source("chrony", port).replace("poll-interval-ms = 250", "poll-interval-ms = 62.5\ninterleaved = true");
    let (_tsod, segment) = tsod(&dir.0, &sources);
    let clock = synchronized(&segment);
    let widths = check_truth(&clock, Duration::from_secs(4), true);
    let median = widths[widths.len() / 2];
    eprintln!("interleaved: median half-width {median} ns over {} reads", widths.len());
    assert!(median < 1_000_000, "median half-width {median} ns");
}
