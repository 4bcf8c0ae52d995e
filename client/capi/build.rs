//! Tells the tests whether this machine has a C compiler, so the tests that
//! compile C against libtsod are *ignored* with their reason when it lacks
//! one (cargo prints `ignored, needs a C compiler …` and counts it) rather
//! than passing without running (as `server/build.rs` does for daemons).
//!
//! Sets `tsod_no_cc` when `cc` is not found (`$CC` names another compiler)
//! and `tsod_no_pkg_config` when `pkg-config` is not. Under `CI=true`
//! nothing is ignored: a missing tool fails the test.
//!
//! Also gives `libtsod.so` its ELF SONAME, `libtsod.so.MAJOR`, so that
//! programs load the ABI they were linked against (install.sh installs
//! the versioned file and both links).

use std::path::Path;

const DIRS: [&str; 2] = ["/usr/bin", "/bin"];

fn installed(program: &str) -> bool {
    let on_path =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file())).unwrap_or(false);
    on_path || Path::new(program).is_file() || DIRS.iter().any(|d| Path::new(d).join(program).is_file())
}

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux") {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".to_owned());
        println!("cargo::rustc-cdylib-link-arg=-Wl,-soname,libtsod.so.{major}");
    }
    println!("cargo::rustc-check-cfg=cfg(tsod_no_cc)");
    println!("cargo::rustc-check-cfg=cfg(tsod_no_pkg_config)");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=CC");
    println!("cargo::rerun-if-env-changed=PATH");
    for dir in DIRS {
        println!("cargo::rerun-if-changed={dir}/cc");
        println!("cargo::rerun-if-changed={dir}/pkg-config");
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    if !installed(&cc) {
        println!("cargo::rustc-cfg=tsod_no_cc");
    }
    if !installed("pkg-config") {
        println!("cargo::rustc-cfg=tsod_no_pkg_config");
    }
}
