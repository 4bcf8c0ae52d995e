//! `tsbench commit-wait` end to end, in local mode, against segments this
//! test publishes itself (see `common`): the waits last about twice the
//! published half-width, and a segment without a bound fails every wait.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{Drift, Scratch, Segment, u64_at};
use serde_json::Value;
use tsod_proto::ClockStatus;

/// The half-width the test publishes (constant: no drift).
const HALF_WIDTH: Duration = Duration::from_micros(500);

fn commit_wait(segment: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tsbench"))
        .args(["commit-wait", "--local", "--segment"])
        .arg(segment)
        .args(args)
        .env_remove("TSOD_SHM")
        .output()
        .unwrap()
}

#[test]
fn waits_last_about_the_published_width() {
    let dir = Scratch::new("commit-wait-json");
    let segment = Segment::publish(&dir, "segment", ClockStatus::Synchronized, HALF_WIDTH, Drift::None);
    let output = commit_wait(&segment.path, &["--count", "50", "--json"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "tsbench failed: {stderr}\n{stdout}");
    assert!(stderr.is_empty(), "--json writes nothing to stderr: {stderr}");
    assert_eq!(stdout.lines().count(), 1, "one JSON object on one line: {stdout}");
    let json: Value = serde_json::from_str(&stdout).unwrap();

    assert_eq!(json["command"], "commit-wait");
    assert_eq!(json["mode"], "local");
    assert_eq!(json["target"], segment.path.display().to_string());
    assert!(json.get("address").is_none(), "remote only: {json}");
    assert_eq!(u64_at(&json, "/count"), 50);
    assert_eq!(u64_at(&json, "/waits"), 50);
    assert_eq!(u64_at(&json, "/errors"), 0);
    assert_eq!(json["error-kinds"], serde_json::json!({}));
    assert!(u64_at(&json, "/reads") >= 50 * 2, "every wait read at least twice: {json}");

    // The commit timestamp is at `latest`; `earliest` passes it one width
    // later: never sooner (within the histogram's 0.1 %), and not much later.
    let width = u64::try_from(2 * HALF_WIDTH.as_nanos()).unwrap();
    let waited = |field: &str| u64_at(&json, &format!("/waited/{field}"));
    assert_eq!(waited("samples"), 50);
    assert!(waited("p50-ns") >= width - width / 1000, "waited p50 {} ns, width {width} ns", waited("p50-ns"));
    assert!(waited("p50-ns") < width + 20_000_000, "waited p50 {} ns is far too long", waited("p50-ns"));
    assert!(waited("p50-ns") <= waited("p99-ns") && waited("p99-ns") <= waited("max-ns"));
    let half_width = u64::try_from(HALF_WIDTH.as_nanos()).unwrap();
    for field in ["p50-ns", "max-ns"] {
        let got = u64_at(&json, &format!("/half-width/{field}"));
        assert!(got.abs_diff(half_width) <= half_width / 1000 + 1, "half-width {field}: {got} ns");
    }
    let overshoot = u64_at(&json, "/overshoot/p50-ns");
    assert!(overshoot < waited("p50-ns"), "overshoot {overshoot} ns: {json}");
    assert_eq!(u64_at(&json, "/overshoot/samples"), 50);

    // The table.
    let output = commit_wait(&segment.path, &["--count", "5"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for needle in ["commit_wait_blocking", "waited", "overshoot", "half-width", "errors: 0 of 5"] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

#[test]
fn an_unbounded_clock_fails_every_wait() {
    let dir = Scratch::new("commit-wait-unsynchronized");
    let segment = Segment::publish(&dir, "segment", ClockStatus::Unsynchronized, HALF_WIDTH, Drift::None);
    let output = commit_wait(&segment.path, &["--count", "10", "--json"]);
    assert!(!output.status.success(), "every wait failed: the run must fail");
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((u64_at(&json, "/count"), u64_at(&json, "/waits"), u64_at(&json, "/errors")), (10, 0, 10));
    assert_eq!(u64_at(&json, "/error-kinds/unsynchronized"), 10, "{json}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("more than 1%"));
}
