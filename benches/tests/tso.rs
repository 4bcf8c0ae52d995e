//! `tsbench tso` end to end against a tiny in-test TSO server
//! (`common/tso_server.rs`): the JSON report of an honest server, the
//! `--duration` bound, and a server that hands one range out twice, which
//! the run must report as violations and fail on.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::process::{Command, Output};

use common::tso_server::{Grants, TsoServer};
use common::{json_of, stderr, u64_at};

/// `tsbench tso --site ADDR --server-name site-a --ca CA ARGS… --json`
/// against `server`.
fn tso(server: &TsoServer, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tsbench"))
        .args(["tso", "--site", &server.addr.to_string(), "--server-name", "site-a", "--ca"])
        .arg(&server.ca_path)
        .args(args)
        .arg("--json")
        .output()
        .unwrap()
}

#[test]
fn an_honest_server_gives_a_complete_report_without_violations() {
    let server = TsoServer::start("tso-honest", Grants::Honest);
    let output = tso(&server, &["--concurrency", "4", "--count", "2000"]);
    assert!(output.status.success(), "tsbench failed: {}", stderr(&output));
    assert!(output.stderr.is_empty(), "--json writes nothing to stderr: {}", stderr(&output));
    let json = json_of(&output);

    assert_eq!(json["command"], "tso");
    assert_eq!(json["target"], server.addr.to_string());
    assert_eq!(json["address"], server.addr.to_string());
    assert_eq!(u64_at(&json, "/concurrency"), 4);
    assert_eq!(u64_at(&json, "/count-per-call"), 1);
    assert_eq!(u64_at(&json, "/in-flight"), 64);
    assert_eq!(json["batch-wait-s"].as_f64(), Some(0.0));
    assert_eq!(u64_at(&json, "/calls"), 2000, "exactly --count calls");
    assert_eq!(u64_at(&json, "/timestamps"), 2000);
    assert_eq!(u64_at(&json, "/errors"), 0);
    assert_eq!(json["error-kinds"], serde_json::json!({}));
    for field in ["total", "not-increasing", "duplicate-ranges", "duplicate-timestamps"] {
        assert_eq!(u64_at(&json, &format!("/violations/{field}")), 0, "{field}");
    }
    assert_eq!(u64_at(&json, "/ranges-forgotten"), 0);
    let elapsed = json["elapsed-s"].as_f64().unwrap();
    let per_second = json["calls-per-s"].as_f64().unwrap();
    assert!(elapsed > 0.0 && per_second > 0.0, "{json}");
    assert!((per_second * elapsed - 2000.0).abs() < 2000.0 * 0.01 + 1.0, "calls-per-s × elapsed-s ≈ calls: {json}");

    let at = |field: &str| u64_at(&json, &format!("/latency/{field}"));
    let (p50, p90, p99, p999, max) = (at("p50-ns"), at("p90-ns"), at("p99-ns"), at("p999-ns"), at("max-ns"));
    assert!(p50 > 0 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max, "{p50} {p90} {p99} {p999} {max}");
    assert_eq!(at("samples"), 2000);

    assert_eq!(u64_at(&json, "/tso-stats/calls"), 2000);
    assert_eq!(u64_at(&json, "/tso-stats/timestamps-received"), 2000);
    let requests = u64_at(&json, "/tso-stats/requests-sent");
    assert!((1..=2000).contains(&requests), "{requests} requests");
    assert_eq!(u64_at(&json, "/tso-stats/errors/went-backwards"), 0);

    // reserve(K): K timestamps per call.
    let json = json_of(&tso(&server, &["--concurrency", "3", "--count-per-call", "10", "--count", "300"]));
    assert_eq!((u64_at(&json, "/calls"), u64_at(&json, "/timestamps")), (300, 3000));
    assert_eq!(u64_at(&json, "/violations/total"), 0);
}

#[test]
fn a_duration_bounds_the_run() {
    let server = TsoServer::start("tso-duration", Grants::Honest);
    let output = tso(&server, &["--concurrency", "2", "--duration", "300ms", "--batch-wait", "100us"]);
    assert!(output.status.success(), "tsbench failed: {}", stderr(&output));
    let json = json_of(&output);
    let elapsed = json["elapsed-s"].as_f64().unwrap();
    assert!((0.3..5.0).contains(&elapsed), "elapsed {elapsed} s for --duration 300ms");
    assert!(u64_at(&json, "/calls") > 0);
    assert_eq!(json["batch-wait-s"].as_f64(), Some(0.0001));
    assert_eq!(u64_at(&json, "/violations/total"), 0);
}

/// Two calls of 40 000 timestamps cannot share one request (65 536 at
/// most), so two tasks keep two requests in flight, which the server pairs
/// up and answers with one range: every timestamp goes out twice, and the
/// client's own order check (against what it had received when it sent
/// each request) cannot see it.
#[test]
fn a_range_handed_out_twice_is_a_violation() {
    let server = TsoServer::start("tso-duplicates", Grants::DuplicatePairs);
    let output = tso(&server, &["--concurrency", "2", "--count-per-call", "40000", "--count", "20"]);
    assert!(!output.status.success(), "a broken TSO must fail the run: {}", String::from_utf8_lossy(&output.stdout));
    assert!(stderr(&output).contains("the TSO broke its promises"), "{}", stderr(&output));
    let json = json_of(&output);
    assert_eq!(u64_at(&json, "/calls"), 20);
    assert_eq!(u64_at(&json, "/errors"), 0, "the client accepted every range: {json}");
    let duplicates = u64_at(&json, "/violations/duplicate-ranges");
    assert!(duplicates >= 1, "{json}");
    assert_eq!(u64_at(&json, "/violations/duplicate-timestamps"), duplicates * 40_000, "whole ranges: {json}");
    assert_eq!(u64_at(&json, "/violations/not-increasing"), 0, "each task's own order held: {json}");
    assert_eq!(u64_at(&json, "/violations/total"), duplicates);
}

/// The site's certificate is verified by its name: an `IP:PORT` without
/// `--server-name` is refused before any traffic, saying what to pass; the
/// IP address itself is verified only when given as the server name.
#[test]
fn an_ip_address_needs_a_server_name() {
    let server = TsoServer::start("tso-server-name", Grants::Honest);
    let output = Command::new(env!("CARGO_BIN_EXE_tsbench"))
        .args(["tso", "--site", &server.addr.to_string(), "--ca"])
        .arg(&server.ca_path)
        .args(["--count", "10", "--json"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no report: {}", String::from_utf8_lossy(&output.stdout));
    assert!(
        stderr(&output).contains("is an IP address") && stderr(&output).contains("--server-name SITE"),
        "{}",
        stderr(&output)
    );

    let output = Command::new(env!("CARGO_BIN_EXE_tsbench"))
        .args(["tso", "--site", &server.addr.to_string(), "--server-name", "127.0.0.1", "--ca"])
        .arg(&server.ca_path)
        .args(["--count", "10", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "tsbench failed: {}", stderr(&output));
    assert_eq!(u64_at(&json_of(&output), "/calls"), 10);
}

#[test]
fn a_cluster_file_is_enough_and_a_silent_site_in_it_is_passed_over() {
    let server = TsoServer::start("tso-cluster", Grants::Honest);
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dir = server.ca_path.parent().unwrap();
    let file = dir.join("cluster.json");
    let ca = server.ca_path.file_name().unwrap().to_str().unwrap();
    let text = format!(
        r#"{{"ca": "{ca}", "sites": [{{"name": "site-b", "address": "{}"}}, {{"name": "site-a", "address": "{}"}}]}}"#,
        silent.local_addr().unwrap(),
        server.addr
    );
    std::fs::write(&file, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tsbench"))
        .args(["tso", "--cluster"])
        .arg(&file)
        .args(["--count", "500", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "tsbench failed: {}", stderr(&output));
    let json = json_of(&output);
    assert_eq!(json["target"], file.display().to_string());
    assert_eq!(json["address"], server.addr.to_string(), "the site that answers");
    assert_eq!(u64_at(&json, "/timestamps"), 500);
    assert_eq!(u64_at(&json, "/violations/total"), 0);
}
