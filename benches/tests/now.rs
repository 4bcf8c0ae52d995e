//! `tsbench now` end to end, in local mode, against a segment this test
//! publishes itself (a synchronized bound valid for an hour), so no daemon
//! is needed: the read path does not depend on who wrote the segment.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::process::Command;

use common::{Scratch, assert_a_closed_stdout_is_a_clean_exit, publish_segment, u64_at};
use serde_json::Value;
use tsod_proto::ClockStatus;

#[test]
fn local_json_report_is_complete_and_sane() {
    let dir = Scratch::new("local-json");
    let segment = publish_segment(&dir, "segment", ClockStatus::Synchronized);
    let output = Command::new(env!("CARGO_BIN_EXE_tsbench"))
        .args(["now", "--segment"])
        .arg(&segment)
        .args(["--count", "20000", "--json"])
        .env_remove("TSOD_SHM")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "tsbench failed: {stderr}\n{stdout}");
    assert_eq!(stdout.lines().count(), 1, "one JSON object on one line: {stdout}");
    assert!(stderr.is_empty(), "--json writes nothing to stderr: {stderr}");
    let json: Value = serde_json::from_str(&stdout).unwrap();

    assert_eq!(json["command"], "now");
    assert_eq!(json["mode"], "local");
    assert_eq!(json["target"], segment.display().to_string());
    assert_eq!(u64_at(&json, "/batch"), 64);
    let count = u64_at(&json, "/count");
    assert!((20_000..20_000 + 64).contains(&count), "count {count}: 20000 rounded up to whole batches");
    assert_eq!(u64_at(&json, "/errors"), 0);
    assert_eq!(json["error-kinds"], serde_json::json!({}));
    assert!(json.get("half-width").is_none() && json.get("round-trip").is_none(), "remote-only fields: {json}");

    for series in ["now", "clock-gettime-realtime", "clock-gettime-monotonic"] {
        let at = |field: &str| u64_at(&json, &format!("/series/{series}/{field}"));
        let (p50, p90, p99, p999, max) = (at("p50-ns"), at("p90-ns"), at("p99-ns"), at("p999-ns"), at("max-ns"));
        assert!(p50 > 0, "{series}: p50 {p50}");
        assert!(p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max, "{series}: {p50} {p90} {p99} {p999} {max}");
        assert!(p50 < 1_000_000, "{series}: a clock read of {p50} ns is not plausible");
        assert_eq!(at("count"), count, "{series}: every batch recorded");
        assert_eq!(at("samples") * 64, count);
    }
    let ratio = json["ratio-now-to-realtime"].as_f64().unwrap();
    assert!(ratio > 0.0 && ratio.is_finite(), "ratio {ratio}");

    // Only a duration: as many calls as fit, then stop.
    let output = Command::new(env!("CARGO_BIN_EXE_tsbench"))
        .args(["now", "--segment"])
        .arg(&segment)
        .args(["--duration", "200ms", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    let elapsed = json["elapsed-s"].as_f64().unwrap();
    assert!((0.2..5.0).contains(&elapsed), "elapsed {elapsed} s for --duration 200ms");
    assert!(u64_at(&json, "/count") >= 64);
}

#[test]
fn local_human_report_and_unusable_segments() {
    let dir = Scratch::new("local-human");
    let segment = publish_segment(&dir, "segment", ClockStatus::Synchronized);
    let output = Command::new(env!("CARGO_BIN_EXE_tsbench"))
        .args(["now", "--segment"])
        .arg(&segment)
        .args(["--count", "2000", "--threads", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for needle in ["LocalClock::now()", "clock_gettime(CLOCK_REALTIME)", "2 threads", "errors: 0 of"] {
        assert!(stdout.contains(needle), "{needle:?} missing from:\n{stdout}");
    }

    let missing = dir.0.join("no-such-segment");
    let output = Command::new(env!("CARGO_BIN_EXE_tsbench")).args(["now", "--segment"]).arg(&missing).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("is tsod running?") && stderr.contains("no-such-segment"), "{stderr}");

    let unsynchronized = publish_segment(&dir, "unsynchronized", ClockStatus::Unsynchronized);
    let output =
        Command::new(env!("CARGO_BIN_EXE_tsbench")).args(["now", "--segment"]).arg(&unsynchronized).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no report when the first call fails");
    assert!(stderr.contains("unsynchronized") && stderr.contains("tsod status"), "{stderr}");
}

#[test]
fn a_closed_stdout_is_a_clean_exit() {
    let dir = Scratch::new("broken-pipe");
    let segment = publish_segment(&dir, "segment", ClockStatus::Synchronized);
    assert_a_closed_stdout_is_a_clean_exit(|| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tsbench"));
        command.args(["now", "--segment"]).arg(&segment).args(["--duration", "300ms"]);
        command
    });
}
