//! Benchmark (ignored by default): the half-width a site gets from a peer
//! alone, across an emulated WAN link, beside the theoretical minimum.
//!
//! Site A has a simulated GPS; site B has no source of its own and measures
//! A through the testbed's UDP relay (one-way delays as given, no jitter).
//! A probe sample is `[at-send.earliest, at-send.latest + U − P]` (SPEC.md
//! §4.5): its width is A's width plus the round trip, so B's half-width can
//! be no less than `A's half-width + rtt/2`. The benchmark prints B's median
//! half-width, that minimum and their ratio, and asserts that B's interval
//! always contains true time.
//!
//! ```sh
//! cargo test --release -p tsod --test peer_width -- --ignored --nocapture
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::time::{Duration, Instant};

use common::{Scratch, free_udp_port, synchronized, tsod_with};
use tsod::pki::{self, SiteSpec};
use tsod_testbed::sim::gpsd::GpsdSim;
use tsod_testbed::wan::{DirectionShape, LinkShape, WanRelay};

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Runs A and B for one link shape; returns (B's median half-width, A's
/// median half-width, B's median probe round trip), all in ns.
fn measure(name: &str, out: Duration, back: Duration) -> (u64, u64, u64) {
    let scratch = Scratch::new("peer-width", name);
    let certs = scratch.join("certs");
    let specs: Vec<SiteSpec> = ["a", "b"].iter().map(|s| SiteSpec::parse(&format!("{s}=127.0.0.1")).unwrap()).collect();
    pki::init(&certs, &pki::ca_dir(&certs), &specs, 30).unwrap();
    let (port_a, port_b) = (free_udp_port(), free_udp_port());
    let a_addr = format!("127.0.0.1:{port_a}").parse().unwrap();
    // B → relay → A: "forward" is B's probes on their way to A.
    let shape = LinkShape { forward: DirectionShape::with_delay(out), reverse: DirectionShape::with_delay(back) };
    let relay = WanRelay::start("127.0.0.1:0".parse().unwrap(), a_addr, shape).unwrap();
    let gps = GpsdSim::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let gps2 = GpsdSim::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let site = |me: &str, port: u16| {
        format!(
            "[tso]\nenabled = false\n[site]\nname = \"{me}\"\nlisten = \"127.0.0.1:{port}\"\ncluster-dir = \"{}\"\nprobe-interval-ms = 250\n",
            certs.display()
        )
    };
    let dir_a = scratch.join("a");
    let dir_b = scratch.join("b");
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let a_sources = format!(
        "\n[[source]]\nkind = \"gpsd\"\nname = \"gps\"\naddress = \"{}\"\ntimescale = \"utc\"\n\
         \n[[source]]\nkind = \"gpsd\"\nname = \"gps2\"\naddress = \"{}\"\ntimescale = \"utc\"\n\
         \n[[peer]]\nname = \"b\"\naddress = \"127.0.0.1:{port_b}\"\n",
        gps.local_addr(),
        gps2.local_addr()
    );
    let b_sources = format!("\n[[peer]]\nname = \"a\"\naddress = \"{}\"\n", relay.local_addr());
    // A's two GPS receivers are the two sources it needs (B has no local
    // basis to offer): of three, f = 1, two must agree.
    let (_a, seg_a) = tsod_with(&dir_a, &format!("[clock]\nmin-agreeing = 2\n{}", site("a", port_a)), &a_sources);
    let (_b, seg_b) = tsod_with(&dir_b, &site("b", port_b), &b_sources);
    let clock_a = synchronized(&seg_a);
    let clock_b = synchronized(&seg_b);
    // Let B collect its best-of samples.
    std::thread::sleep(Duration::from_secs(5));
    let (mut hw_a, mut hw_b) = (Vec::new(), Vec::new());
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        let before = common::realtime();
        let b = clock_b.now().unwrap();
        let after = common::realtime();
        assert!(b.earliest() <= after && before <= b.latest(), "{b} excludes [{before}, {after}]");
        hw_b.push(u64::try_from(b.half_width().as_nanos()).unwrap());
        hw_a.push(u64::try_from(clock_a.now().unwrap().half_width().as_nanos()).unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = tsod::daemon::status_file::read(&tsod::daemon::status_file::status_path(&seg_b)).unwrap();
    let rtt = status.peers[0].last_round_trip_ns.unwrap();
    (median(hw_b), median(hw_a), rtt)
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture (about 2 minutes)"]
fn half_width_from_a_peer_alone_beside_the_theoretical_minimum() {
    let cases = [
        ("lan-1ms", Duration::from_micros(500), Duration::from_micros(500)),
        ("wan-25ms", Duration::from_micros(12_500), Duration::from_micros(12_500)),
        ("asym-5-20ms", Duration::from_millis(5), Duration::from_millis(20)),
        ("global-150ms", Duration::from_millis(75), Duration::from_millis(75)),
    ];
    println!("{:<14} {:>10} {:>12} {:>12} {:>14} {:>7}", "link", "rtt µs", "A hw µs", "B hw µs", "min hw µs", "B/min");
    for (name, out, back) in cases {
        let (b, a, rtt) = measure(name, out, back);
        let minimum = a + rtt / 2;
        println!(
            "{name:<14} {:>10.1} {:>12.1} {:>12.1} {:>14.1} {:>7.3}",
            rtt as f64 / 1e3,
            a as f64 / 1e3,
            b as f64 / 1e3,
            minimum as f64 / 1e3,
            b as f64 / minimum as f64
        );
        assert!(b as f64 >= 0.9 * minimum as f64, "B tighter than the round trip allows: a bug in the measurement");
    }
}
