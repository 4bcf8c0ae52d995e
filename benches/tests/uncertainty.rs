//! `tsbench uncertainty` end to end, in local mode, against segments this
//! test publishes itself (see `common`): the figures it reports, a status
//! change in the middle of a run, the plot, Ctrl-C, and a closed stdout.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{
    Drift, Scratch, Segment, assert_a_closed_stdout_is_a_clean_exit, u64_at, wait_at_most, wait_until_mapped,
};
use serde_json::Value;
use tsod_proto::ClockStatus;

/// The half-width every test publishes.
const HALF_WIDTH: Duration = Duration::from_micros(20);

/// `tsbench uncertainty --local --segment SEGMENT ARGS…`.
fn uncertainty(segment: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tsbench"));
    command.args(["uncertainty", "--local", "--segment"]).arg(segment).args(args).env_remove("TSOD_SHM");
    command
}

/// The JSON report of a successful run, checked to be one line with nothing on stderr.
fn json_of(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "tsbench failed: {stderr}\n{stdout}");
    assert_eq!(stdout.lines().count(), 1, "one JSON object on one line: {stdout}");
    assert!(stderr.is_empty(), "--json writes nothing to stderr: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// Every half-width percentile is the published one, within the histogram's
/// 0.1 % and the interval's rounding to whole nanoseconds.
fn assert_half_widths_are(json: &Value, expected: Duration) {
    let expected = u64::try_from(expected.as_nanos()).unwrap();
    for field in ["p50-ns", "p90-ns", "p99-ns", "p999-ns", "max-ns"] {
        let got = u64_at(json, &format!("/half-width/{field}"));
        assert!(got.abs_diff(expected) <= expected / 1000 + 1, "{field}: {got} ns, published {expected} ns");
    }
}

#[test]
fn local_json_report_is_complete_and_sane() {
    let dir = Scratch::new("uncertainty-json");
    let segment = Segment::publish(&dir, "segment", ClockStatus::Synchronized, HALF_WIDTH, Drift::None);

    // The default interval (1 s): the one sample at the start of the second.
    let json = json_of(&uncertainty(&segment.path, &["--duration", "1s", "--json"]).output().unwrap());
    assert_eq!(u64_at(&json, "/samples"), 1, "{json}");

    let json =
        json_of(&uncertainty(&segment.path, &["--duration", "1s", "--interval", "50ms", "--json"]).output().unwrap());
    assert_eq!(json["command"], "uncertainty");
    assert_eq!(json["mode"], "local");
    assert_eq!(json["target"], segment.path.display().to_string());
    assert!(json.get("site").is_none() && json.get("address").is_none() && json.get("plot").is_none(), "{json}");
    assert_eq!(json["interval-s"].as_f64(), Some(0.05));
    let samples = u64_at(&json, "/samples");
    assert!((10..=20).contains(&samples), "{samples} samples every 50 ms in 1 s");
    let elapsed = json["elapsed-s"].as_f64().unwrap();
    assert!((0.5..1.5).contains(&elapsed), "elapsed {elapsed} s");
    assert_eq!(u64_at(&json, "/bounded"), samples);
    assert_eq!(u64_at(&json, "/half-width/samples"), samples);
    assert_half_widths_are(&json, HALF_WIDTH);
    assert_eq!(u64_at(&json, "/statuses/synchronized"), samples);
    for status in ["degraded", "free-running", "unsynchronized", "disrupted", "unknown"] {
        assert_eq!(u64_at(&json, &format!("/statuses/{status}")), 0, "{status}");
    }
    assert_eq!(u64_at(&json, "/status-changes"), 0);
    assert_eq!(json["changes"], serde_json::json!([]));
    assert_eq!(u64_at(&json, "/reads"), 2 * samples);
    assert_eq!(u64_at(&json, "/errors"), 0);
    assert_eq!(json["error-kinds"], serde_json::json!({}));
    assert_eq!(json["interrupted"], false);

    // --count, and the text report.
    let output = uncertainty(&segment.path, &["--count", "3", "--interval", "10ms"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for needle in ["tsbench uncertainty: segment", "3 samples every 10ms", "half-width", "synchronized 3; 0 changes"] {
        assert!(stdout.contains(needle), "{needle:?} missing from:\n{stdout}");
    }
}

#[test]
fn a_status_change_mid_run_is_counted() {
    let dir = Scratch::new("uncertainty-change");
    let segment = Segment::publish(&dir, "segment", ClockStatus::Synchronized, HALF_WIDTH, Drift::None);
    let mut child = uncertainty(&segment.path, &["--duration", "2s", "--interval", "10ms", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once tsbench has mapped the segment it samples at once: change in the middle of its run.
    wait_until_mapped(child.id(), &segment.path, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(600));
    segment.republish(ClockStatus::Unsynchronized, HALF_WIDTH, Drift::None);
    wait_at_most(&mut child, Duration::from_secs(30));
    let output = child.wait_with_output().unwrap();
    let json = json_of(&output);

    assert_eq!(u64_at(&json, "/status-changes"), 1, "{json}");
    assert_eq!(json["changes"][0]["from"], "synchronized");
    assert_eq!(json["changes"][0]["to"], "unsynchronized");
    let at = json["changes"][0]["at-s"].as_f64().unwrap();
    assert!((0.2..1.9).contains(&at), "changed at {at} s");
    let (synchronized, unsynchronized) =
        (u64_at(&json, "/statuses/synchronized"), u64_at(&json, "/statuses/unsynchronized"));
    assert!(synchronized > 0 && unsynchronized > 0, "{json}");
    assert_eq!(synchronized + unsynchronized, u64_at(&json, "/samples"));
    // An unsynchronized read is a sample without a half-width, counted by kind, not a crash.
    // (A publication between a sample's two reads may shift one sample.)
    let bounded = u64_at(&json, "/bounded");
    assert!(bounded.abs_diff(synchronized) <= 1, "{bounded} bounded, {synchronized} synchronized");
    let failed = u64_at(&json, "/error-kinds/unsynchronized");
    assert_eq!(u64_at(&json, "/errors"), failed, "only unsynchronized reads failed: {json}");
    assert!(failed.abs_diff(unsynchronized) <= 1, "{failed} failed reads, {unsynchronized} unsynchronized");
    assert_half_widths_are(&json, HALF_WIDTH);
}

#[test]
fn plots_are_written_with_the_expected_elements() {
    let dir = Scratch::new("uncertainty-plot");
    let segment = Segment::publish(&dir, "segment", ClockStatus::Synchronized, HALF_WIDTH, Drift::Realistic);
    let svg_path = dir.0.join("x.svg");
    let json = json_of(
        &uncertainty(&segment.path, &["--count", "20", "--interval", "5ms", "--json", "--plot"])
            .arg(&svg_path)
            .output()
            .unwrap(),
    );
    assert_eq!(json["plot"], svg_path.display().to_string());
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{}", &svg[..svg.len().min(200)]);
    for needle in [
        "Half-width of the bound",
        &format!("segment {}", segment.path.display()),
        "seconds since the first sample",
        "half-width",
        "synchronized",
        "20 samples",
        "µs",
        "<polyline",
    ] {
        assert!(svg.contains(needle), "{needle:?} missing from the SVG");
    }

    let png_path = dir.0.join("x.png");
    let output =
        uncertainty(&segment.path, &["--count", "5", "--interval", "5ms", "--plot"]).arg(&png_path).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains(&format!("plot: {}", png_path.display())));
    let png = std::fs::read(&png_path).unwrap();
    assert!(png.len() > 1000 && png.starts_with(b"\x89PNG\r\n\x1a\n"), "{} bytes", png.len());

    // Refused before sampling: a format it cannot write, or a directory that does not exist.
    let output = uncertainty(&segment.path, &["--count", "1", "--plot", "x.jpg"]).output().unwrap();
    assert!(!output.status.success() && String::from_utf8_lossy(&output.stderr).contains("FILE.svg or FILE.png"));
    let nowhere = dir.0.join("no-such-dir").join("x.svg");
    let output = uncertainty(&segment.path, &["--count", "1", "--plot"]).arg(&nowhere).output().unwrap();
    assert!(!output.status.success() && output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist"));
}

#[test]
fn unusable_clocks_and_addresses_are_explained() {
    let dir = Scratch::new("uncertainty-unusable");
    let missing = dir.0.join("no-such-segment");
    let output = uncertainty(&missing, &["--count", "1"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("is tsod running?") && stderr.contains("no-such-segment"), "{stderr}");

    // Unsynchronized from the start: samples without a half-width, not a failure.
    let segment = Segment::publish(&dir, "unsynchronized", ClockStatus::Unsynchronized, HALF_WIDTH, Drift::None);
    let json = json_of(&uncertainty(&segment.path, &["--count", "3", "--interval", "1ms", "--json"]).output().unwrap());
    assert_eq!((u64_at(&json, "/samples"), u64_at(&json, "/bounded")), (3, 0));
    assert_eq!(u64_at(&json, "/statuses/unsynchronized"), 3);
    assert_eq!(u64_at(&json, "/error-kinds/unsynchronized"), 3);
    assert_eq!(u64_at(&json, "/half-width/max-ns"), 0);

    let output = Command::new(env!("CARGO_BIN_EXE_tsbench"))
        .args(["uncertainty", "--site", "tsod-site-a", "--ca", "ca.crt"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("has no port"));
}

/// Ctrl-C ends a long run early, and still reports what was sampled.
#[test]
fn an_interrupted_run_still_reports() {
    let dir = Scratch::new("uncertainty-interrupt");
    let segment = Segment::publish(&dir, "segment", ClockStatus::Synchronized, HALF_WIDTH, Drift::None);
    let mut child = uncertainty(&segment.path, &["--duration", "60s", "--interval", "20ms", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It watches for Ctrl-C before it opens the segment.
    wait_until_mapped(child.id(), &segment.path, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(200));
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let status = wait_at_most(&mut child, Duration::from_secs(20));
    let output = child.wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json = json_of(&output);
    assert_eq!(json["interrupted"], true);
    assert!(u64_at(&json, "/samples") > 0, "{json}");
    assert!(json["elapsed-s"].as_f64().unwrap() < 30.0);
}

#[test]
fn a_closed_stdout_is_a_clean_exit() {
    let dir = Scratch::new("uncertainty-pipe");
    let segment = Segment::publish(&dir, "segment", ClockStatus::Synchronized, HALF_WIDTH, Drift::None);
    assert_a_closed_stdout_is_a_clean_exit(|| {
        uncertainty(&segment.path, &["--duration", "300ms", "--interval", "10ms"])
    });
}
