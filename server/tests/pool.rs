//! NTP pools: a `pool-size = 3` source of a name with five addresses (in
//! /etc/hosts, as a DNS pool answers with several), one of them dead and one
//! a liar. The members spread over the addresses, the dead one's member and
//! the liar's member each take a spare address, and the published bound
//! contains true time throughout.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Scratch, realtime, tsod};
use tsod_client::LocalClock;
use tsod_proto::Offset;
use tsod_testbed::sim::ntp::{NtpFault, NtpSim};

/// Lines added to /etc/hosts for the test, removed when dropped.
struct Hosts {
    original: String,
}

impl Hosts {
    fn add(lines: &str) -> Self {
        let original = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        std::fs::write("/etc/hosts", format!("{original}{lines}")).unwrap();
        Self { original }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let _ = std::fs::write("/etc/hosts", &self.original);
    }
}

#[test]
#[cfg_attr(tsod_not_root, ignore = "names a pool in /etc/hosts: run as root, or the README's test command")]
fn pool_members_replace_a_dead_and_a_lying_server_and_the_bound_stays_true() {
    let scratch = Scratch::new("pool", "replace");
    let name = format!("tsod-pool-{}.test", std::process::id());
    let ip = |i: u8| std::net::Ipv4Addr::new(127, 0, 0, 20 + i);
    // Five addresses; the second has no server, the third lies by 50 ms.
    let first = NtpSim::start(SocketAddr::from((ip(1), 0))).unwrap();
    let port = first.local_addr().port();
    let mut sims = vec![first];
    for i in [3u8, 4, 5] {
        sims.push(NtpSim::start(SocketAddr::from((ip(i), port))).unwrap());
    }
    let liar = &sims[1];
    assert_eq!(liar.local_addr().ip(), ip(3));
    liar.set_fault(NtpFault { offset: Offset::from_nanos(50_000_000), ..NtpFault::default() });
    let lines: String = (1..=5u8).map(|i| format!("{} {name}\n", ip(i))).collect();
    let _hosts = Hosts::add(&lines);
    let resolved: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), port)).unwrap().collect();
    assert_eq!(resolved.len(), 5, "/etc/hosts gives {resolved:?}");

    let source = format!(
        "\n[[source]]\nkind = \"ntp\"\nname = \"pool\"\naddress = \"{name}:{port}\"\ntimescale = \"utc\"\n\
         poll-interval-ms = 250\npool-size = 3\n"
    );
    let (_daemon, segment) = tsod(&scratch.0, &source);
    let status_path = tsod::daemon::status_file::status_path(&segment);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut misses = 0;
    let mut reads = 0;
    let settled = loop {
        assert!(Instant::now() < deadline, "the pool never settled: {:?}", std::fs::read_to_string(&status_path));
        std::thread::sleep(Duration::from_millis(200));
        // The bound, whenever there is one, contains true time.
        if let Ok(clock) = LocalClock::open_path(&segment) {
            let before = realtime();
            if let Ok(interval) = clock.now() {
                let after = realtime();
                reads += 1;
                if interval.earliest() > after || interval.latest() < before {
                    misses += 1;
                }
            }
        }
        let Ok(status) = tsod::daemon::status_file::read(&status_path) else { continue };
        let members: Vec<_> = status.sources.iter().filter(|s| s.name.starts_with("pool-")).collect();
        assert_eq!(members.len(), 3, "three members: {members:?}");
        // Settled: both spare servers polled (the dead and the lying
        // servers were replaced), and all three members usable and agreeing.
        let spares_polled = sims[2].answered() > 0 && sims[3].answered() > 0;
        if members.iter().all(|m| m.usable && !m.falseticker) && liar.answered() > 0 && spares_polled {
            break members.iter().map(|m| (*m).clone()).collect::<Vec<_>>();
        }
    };
    eprintln!("settled: {settled:#?}; {reads} reads, {misses} missed true time");
    assert_eq!(misses, 0, "{misses} of {reads} reads missed true time");
    // The liar is no longer polled.
    let liar_answers = sims[1].answered();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sims[1].answered(), liar_answers, "the lying server is still polled");
}
