//! Tells the tests which real daemons this machine has, so a test that needs
//! one it lacks is *ignored* with its reason (cargo prints `ignored, needs
//! chronyd …` and counts it) rather than passing without running.
//!
//! Sets `tsod_no_chronyd`, `tsod_no_gpsd` (gpsd or gpsfake missing),
//! `tsod_no_promtool` (Debian's `prometheus`), `tsod_no_systemd_analyze`
//! (Debian's `systemd`) and `tsod_not_root` (chronyd and gpsfake must start
//! as root). Under
//! `CI=true` nothing is ignored: a missing daemon fails the test, since CI
//! must install it. Re-runs when the daemons appear or disappear.

use std::path::Path;

const DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

fn installed(program: &str) -> bool {
    let on_path =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file())).unwrap_or(false);
    on_path || DIRS.iter().any(|d| Path::new(d).join(program).is_file())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

fn main() {
    for cfg in ["tsod_no_chronyd", "tsod_no_gpsd", "tsod_no_promtool", "tsod_no_systemd_analyze", "tsod_not_root"] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
    }
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=PATH");
    for program in ["chronyd", "gpsd", "gpsfake", "promtool", "systemd-analyze"] {
        for dir in DIRS {
            println!("cargo::rerun-if-changed={dir}/{program}");
        }
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        return;
    }
    if !installed("chronyd") {
        println!("cargo::rustc-cfg=tsod_no_chronyd");
    }
    if !installed("gpsd") || !installed("gpsfake") {
        println!("cargo::rustc-cfg=tsod_no_gpsd");
    }
    if !installed("promtool") {
        println!("cargo::rustc-cfg=tsod_no_promtool");
    }
    if !installed("systemd-analyze") {
        println!("cargo::rustc-cfg=tsod_no_systemd_analyze");
    }
    if !is_root() {
        println!("cargo::rustc-cfg=tsod_not_root");
    }
}
