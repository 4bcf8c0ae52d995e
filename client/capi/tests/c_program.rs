//! The C API from C: `tests/c/tsod_test.c`, compiled with the system's
//! `cc` against libtsod installed into a scratch prefix by `install.sh`
//! (so the flags come from the installed `tsod.pc` through `pkg-config`),
//! run against three real `tsod` sites on simulated GPS receivers with a
//! TSO, and required to exit 0. It calls every function of `tsod.h` and
//! checks what it returns against the host clock (true time here); its
//! output is printed (shown with --nocapture, or when the test fails).
//!
//! Ignored with the reason when the machine has no C compiler or no
//! pkg-config (`build.rs`), never reported `ok` without running.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::path::Path;

use common::{Scratch, cluster, compile_c, install_libtsod, run};

#[test]
#[cfg_attr(tsod_no_cc, ignore = "needs a C compiler (cc): apt-get install gcc")]
#[cfg_attr(tsod_no_pkg_config, ignore = "needs pkg-config: apt-get install pkg-config")]
fn a_c_program_uses_every_function_against_live_daemons() {
    let scratch = Scratch::new("c-program");
    let pkgconfig = install_libtsod(&scratch.join("prefix"));
    let exe = scratch.join("tsod_test");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/tsod_test.c");
    compile_c(&pkgconfig, &source, &exe, &["-O1"]);

    let cluster = cluster(&scratch.0);
    let bogus = scratch.join("bogus.json");
    std::fs::write(&bogus, "{\"ca\": \"ca.crt\", \"sites\": \"not a list\"}\n").unwrap();
    let (cert, key) = cluster.add_client("capi-test");
    let segment = &cluster.segments[0];
    let output = run(&exe, &[segment, &cluster.file, &bogus, &cert, &key], &[("TSOD_SHM", segment)]);
    assert!(output.status.success(), "the C program failed ({}); its output is above", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(", 0 failed"), "the C program did not finish its checks");

    // The README's example, as a user would build it.
    let example = scratch.join("now");
    compile_c(&pkgconfig, &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/now.c"), &example, &[]);
    let output = run(&example, &[], &[("TSOD_SHM", segment)]);
    assert!(output.status.success(), "examples/now.c failed ({})", output.status);
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("true time is in ["));
}
