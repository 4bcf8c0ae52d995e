//! `tsbench clients` end to end against the in-test TSO server
//! (`common/tso_server.rs`): a fleet of `Tso` clients, each with its own
//! connection from its own source address, and a site that is not there.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::net::IpAddr;
use std::process::{Command, Output};

use common::tso_server::{Grants, TsoServer};
use common::{json_of, stderr, u64_at};
use serde_json::Value;

fn clients(site: &str, ca: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tsbench"))
        .args(["clients", "--site", site, "--server-name", "site-a", "--ca"])
        .arg(ca)
        .args(args)
        .arg("--json")
        .output()
        .unwrap()
}

/// 30 clients, 10 in each of three /24s of 127.0.0.0/8: each is its own
/// connection from its own address, every one is held and calls, and the
/// report adds up.
#[test]
fn a_fleet_connects_from_spread_sources_and_every_client_calls() {
    let server = TsoServer::start("clients-fleet", Grants::Honest);
    let output = clients(
        &server.addr.to_string(),
        &server.ca_path,
        &[
            "--call",
            "next",
            "--connections",
            "30",
            "--sources",
            "127.0.0.0/8",
            "--per-prefix",
            "10",
            "--ramp-rate",
            "1000",
            "--hold",
            "1s",
            "--call-interval",
            "100ms",
        ],
    );
    assert!(output.status.success(), "tsbench failed: {}", stderr(&output));
    let json = json_of(&output);
    assert_eq!(json["command"], "clients");
    assert_eq!(json["call"], "next");
    assert_eq!(u64_at(&json, "/connections"), 30);
    assert_eq!(u64_at(&json, "/established"), 30, "{json}");
    assert_eq!(u64_at(&json, "/connect-errors"), 0, "{json}");
    assert_eq!(json["connect-errors-dialled-at-s"], serde_json::json!([]), "{json}");
    assert_eq!(u64_at(&json, "/errors"), 0, "{json}");
    assert_eq!(json["sources"]["per-prefix"], 10);
    // 30 clients calling every 100 ms for a 1 s hold: about 300 calls held.
    assert!(u64_at(&json, "/latency/count") >= 150, "{json}");
    assert!(u64_at(&json, "/calls") >= u64_at(&json, "/latency/count"), "{json}");
    assert!(json["handshakes-per-s"].as_f64().unwrap() > 0.0, "{json}");
    assert_eq!(json["daemon"], Value::Null, "no --daemon-pid, no daemon figures");

    let (connections, remotes) = server.connections();
    assert_eq!(connections, 30, "one connection per client");
    assert_eq!(remotes.len(), 30, "one source address per client: {remotes:?}");
    let prefixes: std::collections::BTreeSet<[u8; 3]> = remotes
        .iter()
        .map(|ip| match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                [a, b, c]
            }
            IpAddr::V6(v6) => panic!("an IPv6 source {v6}"),
        })
        .collect();
    assert_eq!(prefixes.len(), 3, "10 per /24: {remotes:?}");
}

/// 30 clients, 5 to a socket, 10 to a /24: 30 connections from 6 source
/// addresses (one per socket) in three /24s, every client calling; and a
/// --per-socket that does not divide --per-prefix is refused before any
/// traffic.
#[test]
fn clients_sharing_sockets_each_keep_their_own_connection() {
    let server = TsoServer::start("clients-shared", Grants::Honest);
    let site = server.addr.to_string();
    let fleet = |per_socket: &str| {
        let args = [
            "--call",
            "next",
            "--connections",
            "30",
            "--per-socket",
            per_socket,
            "--sources",
            "127.0.0.0/8",
            "--per-prefix",
            "10",
            "--hold",
            "1s",
            "--call-interval",
            "100ms",
        ];
        clients(&site, &server.ca_path, &args)
    };
    let refused = fleet("3");
    assert!(!refused.status.success(), "3 does not divide 10");
    assert!(stderr(&refused).contains("does not divide"), "{}", stderr(&refused));
    assert_eq!(server.connections().0, 0, "refused before any traffic");

    let output = fleet("5");
    assert!(output.status.success(), "tsbench failed: {}", stderr(&output));
    let json = json_of(&output);
    assert_eq!(u64_at(&json, "/per-socket"), 5);
    assert_eq!(u64_at(&json, "/established"), 30, "{json}");
    assert_eq!(u64_at(&json, "/errors"), 0, "{json}");
    assert!(u64_at(&json, "/latency/count") >= 150, "{json}");
    let (connections, remotes) = server.connections();
    assert_eq!(connections, 30, "one connection per client");
    assert_eq!(remotes.len(), 6, "one source address per socket: {remotes:?}");
}

/// Nothing listens: every client fails to connect, the failures are
/// counted by kind, and the run fails after its report.
#[test]
fn a_site_that_is_not_there_fails_the_run_with_its_connect_errors_counted() {
    let server = TsoServer::start("clients-absent", Grants::Honest);
    let ca = server.ca_path.clone();
    // A port nothing listens on: bind one, note it, let it go.
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = clients(
        &format!("127.0.0.1:{port}"),
        &ca,
        &["--call", "now", "--connections", "4", "--hold", "200ms", "--call-interval", "100ms"],
    );
    drop(server);
    assert!(!output.status.success(), "a run where no client connected must fail");
    let json = json_of(&output);
    assert_eq!(u64_at(&json, "/established"), 0, "{json}");
    assert_eq!(u64_at(&json, "/connect-errors"), 4, "{json}");
    assert!(json["connect-error-kinds"].as_object().is_some_and(|k| !k.is_empty()), "{json}");
    // When each failed client started dialling: all four, sorted, within the ramp.
    let dialled: Vec<f64> =
        json["connect-errors-dialled-at-s"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(dialled.len(), 4, "{json}");
    assert!(dialled.windows(2).all(|w| w[0] <= w[1]) && dialled.iter().all(|&t| (0.0..5.0).contains(&t)), "{json}");
    assert!(stderr(&output).contains("could not connect"), "{}", stderr(&output));
}

/// A site that answers each lone request only after 200 ms: every call is
/// slow, and the report counts each by the second it started in, so a
/// stall shows when it happened.
#[test]
fn slow_calls_are_counted_by_the_second_they_started_in() {
    let server = TsoServer::start("clients-slow", Grants::DuplicatePairs);
    let output = clients(
        &server.addr.to_string(),
        &server.ca_path,
        &["--call", "next", "--connections", "1", "--hold", "2s", "--call-interval", "500ms"],
    );
    assert!(output.status.success(), "tsbench failed: {}", stderr(&output));
    let json = json_of(&output);
    let by_second: Vec<u64> =
        json["slow-calls-by-second"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    let slow: u64 = by_second.iter().sum();
    let calls = u64_at(&json, "/calls");
    assert!(calls >= 3, "{json}");
    assert_eq!(slow, calls + u64_at(&json, "/errors"), "every call took 200 ms: {json}");
    // One client calling every 500 ms for a 2 s hold: no second holds more than three.
    assert!(by_second.iter().all(|&n| n <= 3) && by_second.len() >= 2, "{json}");
}
