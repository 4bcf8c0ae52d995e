use std::time::Duration;

use tsod_proto::observe::{
    EndpointCounters, PeerSnapshot, SiteSummary, SourceSummary, TsoResetStatus, TsoTimingStatus,
};
use tsod_proto::wire::SourceKind;
use tsod_proto::{Offset, Ppb, Timescale};

use super::*;

fn source(name: &str, kind: SourceKind) -> SourceSnapshot {
    SourceSnapshot {
        name: name.into(),
        kind,
        usable: true,
        falseticker: false,
        offset_ns: Some(-1_500),
        error_ns: Some(30_000),
        samples: 9,
        rejects: 1,
        last_error: None,
    }
}

/// A snapshot of a lone unsynchronized daemon: every field the schema
/// defaults, so fields added later need no change here.
fn bare() -> StatusSnapshot {
    let json = br#"{"status":"unsynchronized","half_width_ns":null,"frequency_ppb":null,"drift_bound_ppb":null,
        "disruption_count":0,"pid":1,"sources":[]}"#;
    StatusSnapshot::from_json(json).unwrap()
}

/// A site of a cluster that leads the TSO, with every part filled in.
fn rich() -> StatusSnapshot {
    StatusSnapshot {
        status: ClockStatus::Degraded,
        half_width_ns: Some(12_000),
        frequency_ppb: Some(-1_500),
        drift_bound_ppb: Some(5_700),
        disruption_count: 2,
        pid: 42,
        sources: vec![
            source("gps0", SourceKind::Gpsd),
            SourceSnapshot { falseticker: true, offset_ns: Some(250_000), ..source("ntp0", SourceKind::Ntp) },
            SourceSnapshot {
                usable: false,
                offset_ns: None,
                error_ns: None,
                samples: 0,
                rejects: 7,
                ..source("xa", SourceKind::Peer)
            },
        ],
        site: Some("bj-a".into()),
        local_status: Some(ClockStatus::Synchronized),
        peers: vec![
            PeerSnapshot {
                name: "xa".into(),
                address: "192.0.2.1:4460".into(),
                connected: true,
                last_round_trip_ns: Some(31_250_000),
                probes_sent: 100,
                replies_used: 97,
                replies_refused: 2,
                connects: 1,
                dial_failures: 3,
                last_dial_error: None,
                report: Some(SiteSummary {
                    site: "xa".into(),
                    generation: 7,
                    status: ClockStatus::FreeRunning,
                    local_status: ClockStatus::FreeRunning,
                    timescale: Timescale::UtcSmear24h,
                    half_width: Some(Duration::from_micros(40)),
                    drift_bound: Ppb::from_ppm(15),
                    sources: vec![
                        SourceSummary {
                            kind: SourceKind::Gpsd,
                            name: "gps-x".into(),
                            usable: true,
                            falseticker: true,
                            offset: Offset::from_nanos(5),
                            error: Duration::from_micros(3),
                        };
                        2
                    ],
                }),
            },
            PeerSnapshot { name: "sh".into(), ..PeerSnapshot::default() },
        ],
        endpoint: EndpointCounters { bad_datagrams: 3, client_requests: 1_000, ..EndpointCounters::default() },
        tso: Some(TsoStatus {
            role: TsoRole::Leader,
            leader: Some("(this site)".into()),
            term: 5,
            applied_index: Some(77),
            fence_ns: 1_700_000_000_000_000_000,
            lease_end_ns: Some(1_700_000_000_250_000_000),
            last_issued: Some(123),
            issued: 4_096,
            refused: 3,
            forwarded_batches: 0,
            fence_resets: 1,
            pending_reset: Some(TsoResetStatus::default()),
            timing: Some(TsoTimingStatus {
                lease_ms: 2_000,
                heartbeat_ms: 100,
                election_timeout_ms: 1_000,
                quorum_round_trip_ms: 31,
                ..TsoTimingStatus::default()
            }),
            ..TsoStatus::default()
        }),
        bound_latest_ns: Some(1_700_000_000_000_000_000),
        ..bare()
    }
}

/// The sample lines (not comments) of `text`.
fn samples(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

fn has(text: &str, line: &str) {
    assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
}

#[test]
fn without_a_snapshot_only_the_build_and_up_are_said() {
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        render(None).unwrap(),
        format!(
            "# HELP tsod_build The tsod version\n# TYPE tsod_build info\ntsod_build_info{{version=\"{version}\"}} 1\n\
             # HELP tsod_up 1 once the daemon has built its first status snapshot (within a second of starting), else 0\n\
             # TYPE tsod_up gauge\ntsod_up 0\n# EOF\n"
        )
    );
    let text = render_as(None, Format::Prometheus).unwrap();
    has(&text, "# TYPE tsod_build_info gauge");
    has(&text, &format!("tsod_build_info{{version=\"{version}\"}} 1"));
    has(&text, "tsod_up 0");
    assert!(!text.contains("# EOF"));
}

#[test]
fn a_rich_snapshot_gives_the_expected_series_and_values() {
    let text = render(Some(&rich())).unwrap();
    for line in [
        "tsod_up 1",
        "tsod_clock_status{status=\"synchronized\"} 0",
        "tsod_clock_status{status=\"degraded\"} 1",
        "tsod_clock_status{status=\"free-running\"} 0",
        "tsod_clock_bounded 1",
        "tsod_bound_half_width_seconds 0.000012",
        "tsod_local_clock_status{status=\"synchronized\"} 1",
        "tsod_clock_frequency_error_ratio -0.0000015",
        "tsod_clock_drift_bound_ratio 0.0000057",
        "tsod_disruptions_total 2",
        "tsod_source_usable{source=\"gps0\",kind=\"gpsd\"} 1",
        "tsod_source_usable{source=\"xa\",kind=\"peer\"} 0",
        "tsod_source_falseticker{source=\"ntp0\",kind=\"ntp\"} 1",
        "tsod_source_falseticker{source=\"gps0\",kind=\"gpsd\"} 0",
        "tsod_source_offset_seconds{source=\"gps0\",kind=\"gpsd\"} -0.0000015",
        "tsod_source_offset_seconds{source=\"ntp0\",kind=\"ntp\"} 0.00025",
        "tsod_source_half_width_seconds{source=\"ntp0\",kind=\"ntp\"} 0.00003",
        "tsod_source_samples_total{source=\"gps0\",kind=\"gpsd\"} 9",
        "tsod_source_rejects_total{source=\"xa\",kind=\"peer\"} 7",
        "tsod_site_info{site=\"bj-a\"} 1",
        "tsod_peer_connected{peer=\"xa\"} 1",
        "tsod_peer_connected{peer=\"sh\"} 0",
        "tsod_peer_round_trip_seconds{peer=\"xa\"} 0.03125",
        "tsod_peer_probes_sent_total{peer=\"xa\"} 100",
        "tsod_peer_replies_used_total{peer=\"xa\"} 97",
        "tsod_peer_replies_refused_total{peer=\"xa\"} 2",
        "tsod_peer_connects_total{peer=\"xa\"} 1",
        "tsod_peer_dial_failures_total{peer=\"xa\"} 3",
        "tsod_peer_reported_status{peer=\"xa\",status=\"free-running\"} 1",
        "tsod_peer_reported_status{peer=\"xa\",status=\"synchronized\"} 0",
        "tsod_peer_reported_half_width_seconds{peer=\"xa\"} 0.00004",
        "tsod_peer_reported_falsetickers{peer=\"xa\"} 2",
        "tsod_endpoint_refused_total{reason=\"bad_datagrams\"} 3",
        "tsod_endpoint_refused_total{reason=\"rate_limited\"} 0",
        "tsod_endpoint_client_requests_total 1000",
        "tsod_tso_role{role=\"leader\"} 1",
        "tsod_tso_role{role=\"follower\"} 0",
        "tsod_tso_has_leader 1",
        "tsod_tso_term 5",
        "tsod_tso_applied_index 77",
        "tsod_tso_issued_total 4096",
        "tsod_tso_refused_total 3",
        "tsod_tso_forwarded_batches_total 0",
        "tsod_tso_lease_margin_seconds 0.25",
        "tsod_tso_fence_resets_total 1",
        "tsod_tso_fence_reset_pending 1",
        "tsod_tso_failed 0",
        "tsod_tso_lease_seconds 2.0",
        "tsod_tso_heartbeat_seconds 0.1",
        "tsod_tso_election_timeout_seconds 1.0",
        "tsod_tso_quorum_round_trip_seconds 0.031",
        "tsod_tso_timing_problem 0",
    ] {
        has(&text, line);
    }
    // Unknown values are left out, not made up.
    assert!(!text.contains("tsod_source_offset_seconds{source=\"xa\""));
    assert!(!text.contains("tsod_peer_round_trip_seconds{peer=\"sh\"}"));
    assert!(!text.contains("tsod_peer_reported_status{peer=\"sh\""));
    // Every state set has exactly one state on per label set.
    let on = |prefix: &str| samples(&text).iter().filter(|l| l.starts_with(prefix) && l.ends_with(" 1")).count();
    assert_eq!(on("tsod_clock_status{"), 1);
    assert_eq!(on("tsod_tso_role{"), 1);
    assert_eq!(samples(&text).iter().filter(|l| l.starts_with("tsod_clock_status{")).count(), ClockStatus::ALL.len());
    assert_eq!(samples(&text).iter().filter(|l| l.starts_with("tsod_tso_role{")).count(), 6);
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn without_a_bound_or_a_cluster_those_series_are_absent() {
    let lone = StatusSnapshot {
        status: ClockStatus::Unsynchronized,
        half_width_ns: None,
        frequency_ppb: None,
        drift_bound_ppb: None,
        site: None,
        local_status: None,
        peers: Vec::new(),
        tso: None,
        bound_latest_ns: None,
        ..rich()
    };
    let text = render(Some(&lone)).unwrap();
    has(&text, "tsod_clock_bounded 0");
    has(&text, "tsod_clock_status{status=\"unsynchronized\"} 1");
    for absent in [
        "tsod_bound_half_width",
        "tsod_clock_frequency_error",
        "tsod_clock_drift_bound",
        "tsod_local_clock_status",
        "tsod_site",
        "tsod_peer_",
        "tsod_endpoint_",
        "tsod_tso_",
    ] {
        assert!(!text.contains(absent), "{absent} in\n{text}");
    }
}

#[test]
fn the_lease_margin_follows_the_lease_and_the_bound() {
    let margin = |tso: TsoStatus, latest: Option<u64>| {
        let text = render(Some(&StatusSnapshot { tso: Some(tso), bound_latest_ns: latest, ..rich() })).unwrap();
        text.lines().find_map(|l| l.strip_prefix("tsod_tso_lease_margin_seconds ")).map(str::to_owned)
    };
    let leader = |end: Option<u64>| TsoStatus { role: TsoRole::Leader, lease_end_ns: end, ..TsoStatus::default() };
    let t = 1_700_000_000_000_000_000;
    assert_eq!(margin(leader(Some(t + 1_500_000)), Some(t)).as_deref(), Some("0.0015"));
    assert_eq!(margin(leader(Some(t)), Some(t + 2_000_000_000)).as_deref(), Some("-2.0"), "expired: negative");
    assert_eq!(margin(leader(Some(0)), Some(t)), None, "no lease committed yet");
    assert_eq!(margin(leader(None), Some(t)), None, "not leading");
    assert_eq!(margin(leader(Some(t)), None), None, "no bound to judge it by");
}

#[test]
fn names_carry_their_units_and_counters_end_in_total() {
    for format in [Format::OpenMetrics, Format::Prometheus] {
        let text = render_as(Some(&rich()), format).unwrap();
        let mut types = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                types.push((name.to_owned(), kind.to_owned()));
            }
            if let Some(rest) = line.strip_prefix("# UNIT ") {
                let (name, unit) = rest.split_once(' ').unwrap();
                assert!(name.ends_with(&format!("_{unit}")), "{line}");
            }
        }
        assert!(types.len() > 40, "{types:?}");
        for (name, kind) in &types {
            assert!(name.starts_with("tsod_"), "{name}");
            for word in name.split('_') {
                let not_base = ["ns", "us", "ms", "ppb", "ppm", "nanoseconds", "microseconds", "milliseconds"];
                assert!(!not_base.contains(&word), "{name} is not in a base unit");
            }
            let own = [name.clone(), format!("{name}_total"), format!("{name}_info")];
            let series: Vec<&str> = samples(&text)
                .into_iter()
                .filter(|l| l.split(['{', ' ']).next().is_some_and(|n| own.iter().any(|o| o == n)))
                .collect();
            assert!(!series.is_empty(), "{name} has no series");
            if kind == "counter" {
                let sample_name = if format == Format::OpenMetrics { format!("{name}_total") } else { name.clone() };
                assert!(sample_name.ends_with("_total"), "{sample_name}");
                assert!(series.iter().all(|l| l.split(['{', ' ']).next() == Some(sample_name.as_str())), "{series:?}");
            }
        }
        let seconds: Vec<_> = types.iter().filter(|(n, _)| n.ends_with("_seconds")).collect();
        assert!(seconds.len() >= 10, "{seconds:?}");
        if format == Format::OpenMetrics {
            for (name, _) in seconds {
                has(&text, &format!("# UNIT {name} seconds"));
            }
            has(&text, "# UNIT tsod_clock_drift_bound_ratio ratio");
        }
    }
}

#[test]
fn hostile_names_are_escaped_and_cannot_forge_a_series() {
    let evil = "x\"} 1\ntsod_forged 1\n# EOF\n\\";
    let snapshot = StatusSnapshot {
        sources: vec![source(evil, SourceKind::Ntp)],
        site: Some(evil.into()),
        peers: vec![PeerSnapshot { name: evil.into(), connected: true, ..PeerSnapshot::default() }],
        ..rich()
    };
    for format in [Format::OpenMetrics, Format::Prometheus] {
        let text = render_as(Some(&snapshot), format).unwrap();
        let escaped = r#"x\"} 1\ntsod_forged 1\n# EOF\n\\"#;
        has(&text, &format!("tsod_peer_connected{{peer=\"{escaped}\"}} 1"));
        has(&text, &format!("tsod_source_usable{{source=\"{escaped}\",kind=\"ntp\"}} 1"));
        assert!(!text.lines().any(|l| l.starts_with("tsod_forged")), "{text}");
        assert_eq!(text.lines().filter(|l| *l == "# EOF").count(), usize::from(format == Format::OpenMetrics));
        // No line is split: every sample line ends with its value.
        for line in samples(&text) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line:?}");
        }
    }
}

#[test]
fn the_accept_header_chooses_the_format() {
    let prometheus_asks = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;\
                           q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    for (accept, format) in [
        (Some(prometheus_asks), Format::OpenMetrics),
        (Some("application/openmetrics-text"), Format::OpenMetrics),
        (Some("text/html, Application/OpenMetrics-Text ; q=0.2"), Format::OpenMetrics),
        (None, Format::Prometheus),
        (Some("*/*"), Format::Prometheus),
        (Some("text/plain;version=0.0.4"), Format::Prometheus),
        (Some("application/openmetrics-text;q=0"), Format::Prometheus),
        (Some("application/openmetrics-textual"), Format::Prometheus),
    ] {
        assert_eq!(Format::negotiate(accept), format, "{accept:?}");
    }
    assert_eq!(Format::OpenMetrics.content_type(), "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert_eq!(Format::Prometheus.content_type(), "text/plain; version=0.0.4; charset=utf-8");
}
