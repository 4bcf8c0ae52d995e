//! Measurement, not a check: `tsod_clock_now` through the C API against
//! `clock_gettime(CLOCK_REALTIME)` in the same C process
//! (`bench/now_bench.c`, compiled -O2 through pkg-config like any C
//! program), against one real daemon on a simulated GPS receiver; and,
//! for the cost of the C boundary, the Rust client's `LocalClock::now` on
//! the same segment. Run it on the release library:
//!
//! ```text
//! cargo test --release -p tsod-capi --test now_bench -- --ignored --nocapture
//! ```
//!
//! The C program runs three times (15 rounds of 10^6 calls each); each run
//! prints its medians and their ratio. The machine is noisy: compare the
//! medians, not single rounds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::path::Path;
use std::time::Instant;

use common::{Scratch, compile_c, install_libtsod, run, single};
use tsod_client::LocalClock;

#[test]
#[ignore = "measurement: run with --release --ignored --nocapture (minutes: it builds the release daemon)"]
fn now_through_c_against_clock_gettime() {
    let scratch = Scratch::new("now-bench");
    let pkgconfig = install_libtsod(&scratch.join("prefix"));
    let exe = scratch.join("now_bench");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/now_bench.c");
    compile_c(&pkgconfig, &source, &exe, &["-O2"]);
    let daemon = single(&scratch.0);

    let mut ratios = Vec::new();
    for _ in 0..3 {
        let output = run(&exe, &[&daemon.segment], &[]);
        assert!(output.status.success(), "now_bench failed ({})", output.status);
        let stdout = String::from_utf8(output.stdout).unwrap();
        let ratio: f64 = stdout
            .lines()
            .find_map(|l| l.strip_prefix("median: ")?.rsplit_once("ratio ")?.1.trim().parse().ok())
            .expect("a median line");
        ratios.push(ratio);
    }

    let clock = LocalClock::open_path(&daemon.segment).unwrap();
    let mut rust = Vec::new();
    for _ in 0..15 {
        let start = Instant::now();
        for _ in 0..1_000_000 {
            std::hint::black_box(clock.now().unwrap());
        }
        rust.push(start.elapsed().as_secs_f64() * 1e9 / 1e6);
    }
    rust.sort_by(f64::total_cmp);
    ratios.sort_by(f64::total_cmp);
    println!("ratio tsod_clock_now / clock_gettime(CLOCK_REALTIME) per run: {ratios:?}, median {:.2}", ratios[1]);
    println!("Rust LocalClock::now on the same segment: median {:.1} ns (15 rounds of 10^6)", rust[7]);
}
