//! `tsbench compare`: its table and JSON from a fixed set of measured
//! values, finding a testbed's sites in a fake scratch directory, when a
//! cluster counts as ready, and (ignored: it starts a real testbed for a
//! minute) the whole run end to end against a release build.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::Scratch;
use serde_json::Value;
use tsod_bench::comparison::{
    CommitWaitFigures, Comparison, HalfWidthFigures, LocalNowFigures, PUBLISHED, Percentiles, SiteEntry, TsoCall,
    TsoFigures, TsoFrom,
};
use tsod_bench::testbed_sites::{self, Readiness, far_site, readiness};
use tsod_proto::ClockStatus;
use tsod_proto::observe::{PeerSnapshot, StatusSnapshot, TsoRole, TsoStatus};
use tsod_testbed::description::{ClusterDescription, SiteDescription};

fn p(p50_ns: u64, p99_ns: u64) -> Percentiles {
    Percentiles { p50_ns, p99_ns, max_ns: p99_ns * 2, samples: 50 }
}

fn tso_row(from: TsoFrom, site: &str, call: TsoCall, per_s: f64, latency: Percentiles) -> TsoFigures {
    let count_per_call = if call == TsoCall::Next { 1 } else { 16 };
    TsoFigures {
        from,
        site: site.to_owned(),
        call,
        concurrency: 64,
        count_per_call,
        in_flight: if from == TsoFrom::Leader { 2 } else { 8 },
        calls_per_s: per_s / f64::from(count_per_call),
        timestamps_per_s: per_s,
        latency,
        errors: 0,
        violations: 0,
    }
}

/// A comparison with fixed, plausible figures.
fn fixed() -> Comparison {
    let sites = ["bj-a", "bj-b", "xa"];
    Comparison {
        command: "compare",
        topology: "dr".to_owned(),
        duration_s: 5.0,
        cpus: 8,
        sites: sites
            .iter()
            .zip(40_001..)
            .map(|(name, port)| SiteEntry { name: (*name).to_owned(), address: format!("127.0.0.1:{port}") })
            .collect(),
        leader: "bj-a".to_owned(),
        far_site: "xa".to_owned(),
        far_round_trip_ns: Some(25_104_000),
        half_width: sites
            .iter()
            .zip([12_300, 15_000, 480_000])
            .map(|(site, p50)| HalfWidthFigures {
                site: (*site).to_owned(),
                half_width: p(p50, p50 + 2_000),
                errors: 0,
            })
            .collect(),
        commit_wait: CommitWaitFigures { site: "bj-a".to_owned(), waited: p(25_000, 31_000), errors: 0 },
        local_now: Some(LocalNowFigures {
            site: "bj-a".to_owned(),
            now: p(36, 41),
            clock_gettime_realtime: p(19, 22),
            errors: 0,
        }),
        tso: vec![
            tso_row(TsoFrom::Leader, "bj-a", TsoCall::Next, 310_000.0, p(180_000, 900_000)),
            tso_row(TsoFrom::Leader, "bj-a", TsoCall::Reserve, 2_870_000.0, p(300_000, 1_200_000)),
            tso_row(TsoFrom::Far, "xa", TsoCall::Next, 95_500.0, p(26_000_000, 27_100_000)),
            tso_row(TsoFrom::Far, "xa", TsoCall::Reserve, 1_020_000.0, p(26_500_000, 28_000_000)),
        ],
        published: PUBLISHED.to_vec(),
    }
}

#[test]
fn the_table_shows_measured_figures_beside_labelled_published_ones() {
    let table = fixed().to_markdown();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("### tsod on tsod-testbed `dr`"), "{table}");
    let header = lines.iter().position(|l| l.starts_with("| Measured here")).expect(&table);
    assert_eq!(
        lines[header],
        "| Measured here (tsod) | Site | p50 | p99 | Throughput | Reference system: published, not measured here |"
    );
    assert_eq!(lines[header + 1], "|---|---|---:|---:|---:|---|");
    let rows: Vec<&str> = lines[header + 2..].iter().take_while(|l| l.starts_with('|')).copied().collect();
    assert_eq!(rows.len(), 3 + 1 + 2 + 4, "{table}");
    for row in &rows {
        assert_eq!(row.matches('|').count(), 7, "six cells: {row}");
    }
    assert_eq!(
        rows[0],
        "| ε, half-width of the bound | bj-a | 12.3 µs | 14.3 µs |  | Spanner TrueTime ε (half-width): 1–7 ms ¹ |"
    );
    assert!(rows[2].starts_with("| ε, half-width of the bound | xa | 480.0 µs | 482.0 µs |  |  |"), "{}", rows[2]);
    assert!(rows[3].starts_with("| commit-wait (≈ 2ε) | bj-a | 25.0 µs | 31.0 µs |"), "{}", rows[3]);
    assert!(rows[4].starts_with("| `LocalClock::now()` | bj-a | 36 ns | 41 ns |  | AWS ClockBound"), "{}", rows[4]);
    assert!(rows[4].ends_with("~80–90 ns ² |"), "{}", rows[4]);
    assert_eq!(
        rows[6],
        "| TSO `next()`, 64 callers | bj-a (leader) | 180.0 µs | 900.0 µs | 310.0 k ts/s | TiDB PD TSO throughput: ~1 M timestamps/s ³ |"
    );
    assert!(rows[7].contains("TSO `reserve(16)`, 64 callers | bj-a (leader) |") && rows[7].contains("2.87 M ts/s"));
    assert!(rows[8].contains("| xa (far) | 26.00 ms | 27.10 ms | 95.5 k ts/s |  |"), "{}", rows[8]);
    assert!(rows[9].contains("1.02 M ts/s"), "{}", rows[9]);
    assert!(
        table.contains("TSO leader bj-a, far site xa (25.10 ms probe round trip to the leader); 5 s per measurement")
    );
    assert!(table.contains("with 8 CPUs"));
    for note in ["¹ Spanner TrueTime: Corbett et al.", "² AWS ClockBound:", "³ TiDB PD:"] {
        assert!(table.contains(note), "{note:?} missing:\n{table}");
    }
    assert!(table.contains("they were not measured here"));
    assert!(table.contains("64 callers make at most about 64 ÷ 25.10 ms ≈ 2549 calls/s there"), "{table}");
    assert!(table.ends_with("No errors, no TSO violations.\n"), "{table}");
}

#[test]
fn the_table_lists_problems() {
    let mut comparison = fixed();
    comparison.tso[2].violations = 3;
    comparison.tso[3].errors = 7;
    comparison.half_width[1].half_width = Percentiles::default();
    let table = comparison.to_markdown();
    assert!(table.contains("| ε, half-width of the bound | bj-b | – | – |"), "{table}");
    assert!(table.contains("- ε at bj-b: no bound was read"), "{table}");
    assert!(table.contains("- TSO next() at xa: 3 VIOLATIONS"), "{table}");
    assert!(table.contains("- TSO reserve(16) at xa: 7 failed calls"), "{table}");
    assert_eq!(comparison.problems().len(), 3);
}

#[test]
fn the_json_has_stable_kebab_case_fields() {
    let text = fixed().to_json().unwrap();
    assert_eq!(text.lines().count(), 1);
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["command"], "compare");
    assert_eq!(json["topology"], "dr");
    assert_eq!(json["duration-s"], 5.0);
    assert_eq!(json["cpus"], 8);
    assert_eq!(json["leader"], "bj-a");
    assert_eq!(json["far-site"], "xa");
    assert_eq!(json["far-round-trip-ns"], 25_104_000);
    assert_eq!(json["sites"][2], serde_json::json!({"name": "xa", "address": "127.0.0.1:40003"}));
    assert_eq!(
        json["half-width"][0],
        serde_json::json!({"site": "bj-a", "half-width": {"p50-ns": 12_300, "p99-ns": 14_300, "max-ns": 28_600, "samples": 50}, "errors": 0})
    );
    assert_eq!(json["commit-wait"]["waited"]["p99-ns"], 31_000);
    assert_eq!(json["local-now"]["now"]["p50-ns"], 36);
    assert_eq!(json["local-now"]["clock-gettime-realtime"]["p50-ns"], 19);
    let far_reserve = &json["tso"][3];
    for (field, expected) in [
        ("from", serde_json::json!("far")),
        ("site", serde_json::json!("xa")),
        ("call", serde_json::json!("reserve")),
        ("concurrency", serde_json::json!(64)),
        ("count-per-call", serde_json::json!(16)),
        ("in-flight", serde_json::json!(8)),
        ("timestamps-per-s", serde_json::json!(1_020_000.0)),
        ("calls-per-s", serde_json::json!(63_750.0)),
        ("errors", serde_json::json!(0)),
        ("violations", serde_json::json!(0)),
    ] {
        assert_eq!(far_reserve[field], expected, "tso[3].{field}: {far_reserve}");
    }
    assert_eq!(far_reserve["latency"]["p50-ns"], 26_500_000);
    let published = json["published"].as_array().unwrap();
    assert_eq!(published.len(), 3);
    assert_eq!(published[0]["system"], "Spanner TrueTime");
    assert_eq!(published[0]["value"], "1–7 ms");
    assert_eq!(published[1]["value"], "~80–90 ns");
    assert_eq!(published[2]["value"], "~1 M timestamps/s");
    for entry in published {
        let keys: Vec<&str> = entry.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["figure", "source", "system", "value"]);
    }
}

/// Writes `text` to `dir/relative`, creating directories.
fn write(dir: &Path, relative: &str, text: &str) -> PathBuf {
    let path = dir.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// A scratch directory as the testbed lays it out, without `cluster.json`.
fn fake_scratch(work: &Path) -> PathBuf {
    let scratch = testbed_sites::scratch_dir(work, 4242);
    for (name, port) in [("xa", 40_003), ("bj-a", 40_001), ("bj-b", 40_002)] {
        let segment = scratch.join(name).join("segment");
        let config = format!(
            "[clock]\nmax-faulty = 1\n\n[publish]\npath = \"{}\"\n\n[site]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\n\
             cluster-dir = \"{}\"\n\n[[peer]]\nname = \"other\"\naddress = \"127.0.0.1:1\"\n",
            segment.display(),
            scratch.join("certs").display()
        );
        write(&scratch, &format!("{name}/tsod.toml"), &config);
    }
    write(&scratch, "certs/ca.crt", "-----BEGIN CERTIFICATE-----\n");
    std::fs::create_dir_all(scratch.join("relays")).unwrap();
    scratch
}

#[test]
fn sites_are_found_from_the_tsod_configurations() {
    let dir = Scratch::new("compare-discover-toml");
    let scratch = fake_scratch(&dir.0);
    assert_eq!(scratch, dir.0.join("tsod-testbed-4242"));
    let cluster = testbed_sites::discover(&scratch).unwrap();
    assert_eq!(cluster.ca, scratch.join("certs/ca.crt"));
    let names: Vec<&str> = cluster.sites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["bj-a", "bj-b", "xa"], "sorted by name");
    let xa = &cluster.sites[2];
    assert_eq!(xa.address.to_string(), "127.0.0.1:40003");
    assert_eq!(xa.segment, scratch.join("xa/segment"));
    assert_eq!(xa.status, scratch.join("xa/segment.status.json"));
}

#[test]
fn cluster_json_is_preferred_when_the_testbed_writes_it() {
    let dir = Scratch::new("compare-discover-json");
    let scratch = fake_scratch(&dir.0);
    let description = serde_json::json!({
        "dir": scratch,
        "ca": "/elsewhere/ca.crt",
        "sites": [
            {"name": "bj-a", "address": "127.0.0.1:50001", "segment": "/s/bj-a/segment",
             "status": "/s/bj-a/segment.status.json", "added-later": true},
            {"name": "xa", "address": "127.0.0.1:50003", "segment": "/s/xa/segment",
             "status": "/s/xa/segment.status.json"}
        ]
    });
    write(&scratch, "cluster.json", &description.to_string());
    let cluster = testbed_sites::discover(&scratch).unwrap();
    let expected = ClusterDescription {
        dir: scratch.clone(),
        ca: PathBuf::from("/elsewhere/ca.crt"),
        sites: vec![
            SiteDescription {
                name: "bj-a".to_owned(),
                address: "127.0.0.1:50001".parse().unwrap(),
                segment: PathBuf::from("/s/bj-a/segment"),
                status: PathBuf::from("/s/bj-a/segment.status.json"),
            },
            SiteDescription {
                name: "xa".to_owned(),
                address: "127.0.0.1:50003".parse().unwrap(),
                segment: PathBuf::from("/s/xa/segment"),
                status: PathBuf::from("/s/xa/segment.status.json"),
            },
        ],
    };
    assert_eq!(cluster, expected, "the testbed's own order, unknown fields ignored");
}

#[test]
fn broken_or_missing_layouts_are_explained() {
    let dir = Scratch::new("compare-discover-bad");
    let missing = testbed_sites::discover(&dir.0.join("tsod-testbed-1")).unwrap_err().to_string();
    assert!(missing.contains("cannot read") && missing.contains("tsod-testbed-1"), "{missing}");
    std::fs::create_dir_all(dir.0.join("empty")).unwrap();
    let empty = testbed_sites::discover(&dir.0.join("empty")).unwrap_err().to_string();
    assert!(empty.contains("no site found"), "{empty}");
    write(&dir.0, "bad/a/tsod.toml", "[site]\nname = \"a\"\n");
    let bad = testbed_sites::discover(&dir.0.join("bad")).unwrap_err().to_string();
    assert!(bad.contains("no `listen` in [site]") && bad.contains("tsod.toml"), "{bad}");
    write(&dir.0, "port/a/tsod.toml", "[site]\nlisten = \"localhost\"\n[publish]\npath = \"/s\"\n");
    let port = testbed_sites::discover(&dir.0.join("port")).unwrap_err().to_string();
    assert!(port.contains("not an IP:PORT") && port.contains("tsod.toml"), "{port}");
    write(&dir.0, "json/cluster.json", "{\"ca\": 3}");
    let json = testbed_sites::discover(&dir.0.join("json")).unwrap_err().to_string();
    assert!(json.contains("cannot parse") && json.contains("cluster.json"), "{json}");
}

#[test]
fn status_files_parse_as_tsod_writes_them() {
    let dir = Scratch::new("compare-status");
    let text = r#"{"status":"synchronized","half_width_ns":12345,"frequency_ppb":10,"drift_bound_ppb":50,
        "disruption_count":0,"pid":7,"sources":[],"site":"bj-a","local_status":"synchronized",
        "peers":[{"name":"bj-b","address":"127.0.0.1:1","connected":true,"last_round_trip_ns":1000000,
                  "probes_sent":3,"replies_used":3,"replies_refused":0,"connects":1,"report":null}],
        "endpoint":{"handshakes_refused":0,"unknown_peers":0,"connections_over_limit":0,"bad_datagrams":0,
                    "bad_messages":0,"gossip_refused":0,"rate_limited":0,"client_requests":4},
        "tso":{"role":"leader","leader":"bj-a","term":2,"applied_index":9,"fence_ns":5,
                   "lease_end_ns":99,"last_issued":null,"issued":0,"refused":0,"forwarded_batches":0}}"#;
    let path = write(&dir.0, "segment.status.json", text);
    let status = testbed_sites::read_status(&path).unwrap();
    assert_eq!(status.status, ClockStatus::Synchronized);
    assert_eq!(status.half_width_ns, Some(12_345));
    let tso = status.tso.unwrap();
    assert_eq!((tso.role, tso.leader.as_deref(), tso.lease_end_ns), (TsoRole::Leader, Some("bj-a"), Some(99)));
    assert_eq!(
        status.peers.iter().map(|p| (p.name.as_str(), p.last_round_trip_ns)).collect::<Vec<_>>(),
        [("bj-b", Some(1_000_000))]
    );
    let older = r#"{"status":"unsynchronized","half_width_ns":null,"frequency_ppb":null,"drift_bound_ppb":null,
        "disruption_count":0,"pid":7,"sources":[]}"#;
    let unsynchronized = write(&dir.0, "other.status.json", older);
    assert_eq!(testbed_sites::read_status(&unsynchronized).unwrap().tso, None);
    let partial = write(&dir.0, "partial.status.json", r#"{"status":"unsynchronized","half_width_ns":null}"#);
    let error = testbed_sites::read_status(&partial).unwrap_err().to_string();
    assert!(error.contains("cannot parse") && error.contains("partial.status.json"), "{error}");
}

fn status(state: ClockStatus, role: Option<(TsoRole, u64)>, peers: &[(&str, u64)]) -> Option<StatusSnapshot> {
    let mut status = StatusSnapshot::from_json(
        br#"{"status":"synchronized","half_width_ns":1000,"frequency_ppb":null,"drift_bound_ppb":null,
            "disruption_count":0,"pid":7,"sources":[]}"#,
    )
    .unwrap();
    status.status = state;
    status.tso = role.map(|(role, lease)| TsoStatus {
        role,
        lease_end_ns: (lease > 0).then_some(lease),
        ..TsoStatus::default()
    });
    status.peers = peers
        .iter()
        .map(|(name, rtt)| PeerSnapshot {
            name: (*name).to_owned(),
            last_round_trip_ns: Some(*rtt),
            ..PeerSnapshot::default()
        })
        .collect();
    Some(status)
}

#[test]
fn ready_once_all_synchronized_and_a_leader_holds_a_lease() {
    let peers = [("bj-b", 1_000_000), ("xa", 25_000_000)];
    let mut sites = vec![
        ("bj-a".to_owned(), status(ClockStatus::Synchronized, Some((TsoRole::Leader, 0)), &peers)),
        ("bj-b".to_owned(), status(ClockStatus::Synchronized, Some((TsoRole::Follower, 0)), &[])),
        ("xa".to_owned(), None),
    ];
    let Readiness::Waiting(why) = readiness(&sites) else { panic!("not ready yet") };
    assert_eq!(why, "xa: no status yet; no TSO leader with a lease");
    sites[2].1 = status(ClockStatus::Unsynchronized, Some((TsoRole::Follower, 0)), &[]);
    sites[0].1 = status(ClockStatus::Synchronized, Some((TsoRole::Leader, 77)), &peers);
    assert_eq!(readiness(&sites), Readiness::Waiting("xa: unsynchronized".to_owned()));
    sites[2].1 = status(ClockStatus::Synchronized, Some((TsoRole::Follower, 0)), &[]);
    assert_eq!(readiness(&sites), Readiness::Ready { leader: "bj-a".to_owned() });
    assert_eq!(far_site("bj-a", &sites), Some(("xa".to_owned(), Some(25_000_000))), "the longest round trip");
    assert_eq!(readiness(&[]), Readiness::Waiting("no TSO leader with a lease; no sites".to_owned()));
}

#[test]
fn without_round_trips_the_far_site_is_xa_unless_it_leads() {
    let sites: Vec<(String, Option<StatusSnapshot>)> = ["bj-a", "bj-b", "xa"]
        .iter()
        .map(|n| ((*n).to_owned(), status(ClockStatus::Synchronized, None, &[])))
        .collect();
    assert_eq!(far_site("bj-b", &sites), Some(("xa".to_owned(), None)));
    assert_eq!(far_site("xa", &sites), Some(("bj-b".to_owned(), None)), "the last other site");
    assert_eq!(far_site("solo", &sites[..0]), None);
}

/// The release build's directory (`CARGO_TARGET_DIR` honoured).
fn release_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"), PathBuf::from);
    target.join("release")
}

/// The whole run, against the release binaries: about a minute, so not in
/// CI. Build first: `cargo build --release -p tsod -p tsod-testbed -p
/// tsod-bench`, then `cargo test -p tsod-bench --test compare -- --ignored
/// --nocapture` (the table is printed).
#[test]
#[ignore = "starts a real testbed cluster for about a minute; needs a release build"]
fn end_to_end_against_a_release_build() {
    let release = release_dir();
    let tsbench = release.join("tsbench");
    for binary in ["tsbench", "tsod-testbed", "tsod"] {
        assert!(
            release.join(binary).is_file(),
            "no {binary} in {}: cargo build --release -p tsod -p tsod-testbed -p tsod-bench",
            release.display()
        );
    }
    let child = Command::new(&tsbench)
        .args(["compare", "--duration", "3s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let work = std::env::temp_dir().join(format!("tsbench-compare-{}", child.id()));
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(output.status.success(), "tsbench compare failed:\n{stderr}\n{stdout}");
    assert!(
        stdout.contains("| Measured here (tsod) |") && stdout.contains("No errors, no TSO violations."),
        "{stdout}"
    );
    assert!(stderr.contains("[9/9]") && stderr.contains("stopping the testbed"), "{stderr}");
    assert!(!work.exists(), "{} is left behind", work.display());
}
