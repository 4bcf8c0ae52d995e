//! The metrics endpoint (`tsod::metrics`): its text checked by the real
//! `promtool`, the Grafana dashboard's queries against what tsod exports,
//! and the HTTP server over real sockets: routes, formats, and clients that
//! open connections and never finish a request.
//!
//! The `promtool` tests need it (Debian's `prometheus`); without it they are
//! ignored with the reason (`server/build.rs`), except under CI, which
//! installs it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Scratch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tsod::metrics::{Format, HEADER_TIMEOUT, MAX_CONNECTIONS, render, render_as};
use tsod_proto::observe::{
    EndpointCounters, PeerSnapshot, SiteSummary, SourceSnapshot, SourceSummary, StatusSnapshot, TsoRole, TsoStatus,
    TsoTimingStatus,
};
use tsod_proto::wire::SourceKind;
use tsod_proto::{ClockStatus, Offset, Ppb, Timescale};

/// Names a peer or an operator could choose: quotes, backslashes, newlines,
/// other control characters, a forged series and the format's end marker.
const HOSTILE: &str = "evil\"} 1\ntsod_forged 1\n# EOF\n\\\r\t\u{1b}[2J\u{0}\u{202e}µs";

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
        last_error: Some("origin timestamp mismatch".into()),
    }
}

/// A cluster site leading the TSO, every part filled in, hostile names included.
fn rich() -> StatusSnapshot {
    let json = br#"{"status":"synchronized","half_width_ns":12000,"frequency_ppb":-1500,"drift_bound_ppb":5700,
        "disruption_count":2,"pid":42,"sources":[]}"#;
    let mut s = StatusSnapshot::from_json(json).unwrap();
    s.sources = vec![
        source("gps0", SourceKind::Gpsd),
        SourceSnapshot { falseticker: true, ..source("ntp0", SourceKind::Ntp) },
        SourceSnapshot { usable: false, offset_ns: None, error_ns: None, ..source(HOSTILE, SourceKind::Peer) },
        source("xa", SourceKind::Peer),
    ];
    s.site = Some("bj-a".into());
    s.local_status = Some(ClockStatus::Degraded);
    let report = SiteSummary {
        site: "xa".into(),
        generation: 3,
        status: ClockStatus::Synchronized,
        local_status: ClockStatus::Synchronized,
        timescale: Timescale::UtcSmear24h,
        half_width: Some(Duration::from_micros(25)),
        drift_bound: Ppb::from_ppm(15),
        sources: vec![SourceSummary {
            kind: SourceKind::Ntp,
            name: HOSTILE.into(),
            usable: true,
            falseticker: true,
            offset: Offset::from_nanos(-7),
            error: Duration::from_micros(9),
        }],
    };
    s.peers = vec![
        PeerSnapshot {
            name: "xa".into(),
            connected: true,
            last_round_trip_ns: Some(31_250_000),
            probes_sent: 10,
            replies_used: 9,
            report: Some(report),
            ..PeerSnapshot::default()
        },
        PeerSnapshot { name: HOSTILE.into(), dial_failures: 4, ..PeerSnapshot::default() },
    ];
    s.endpoint = EndpointCounters { rate_limited: 5, client_requests: 99, ..EndpointCounters::default() };
    s.tso = Some(TsoStatus {
        role: TsoRole::Leader,
        leader: Some("(this site)".into()),
        term: 4,
        applied_index: Some(12),
        lease_end_ns: Some(1_700_000_000_400_000_000),
        issued: 1_000,
        refused: 2,
        fence_resets: 1,
        timing: Some(TsoTimingStatus {
            lease_ms: 2_000,
            heartbeat_ms: 100,
            problem: Some(HOSTILE.into()),
            ..TsoTimingStatus::default()
        }),
        ..TsoStatus::default()
    });
    s.bound_latest_ns = Some(1_700_000_000_000_000_000);
    s.ntp_server = Some(tsod_proto::observe::NtpServerStatus {
        listen: vec!["0.0.0.0:123".into()],
        stratum: Some(1),
        reference_id: Some("PPS".into()),
        requests: 5_004,
        replies: 14,
        unsynchronized_replies: 0,
        dropped_malformed: 6,
        rate_limited: 4_990,
        kod_sent: 1_250,
        send_errors: 0,
    });
    s
}

/// Runs `promtool` with `args`, `stdin` on its standard input; its output, or a panic with it.
fn promtool(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is not installed: apt-get install prometheus (the README's test command does)");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?} failed ({}):\n{text}\non:\n{stdin}", out.status);
    text
}

#[test]
#[cfg_attr(tsod_no_promtool, ignore = "needs promtool (Debian's prometheus)")]
fn promtool_accepts_the_text_of_a_rich_snapshot_in_both_formats() {
    for snapshot in [None, Some(rich())] {
        // What curl or `promtool check metrics` gets from the endpoint: lint-clean.
        let text = render_as(snapshot.as_ref(), Format::Prometheus).unwrap();
        let lint = promtool(&["check", "metrics"], &text);
        assert!(lint.trim().is_empty(), "promtool found problems:\n{lint}");

        // What Prometheus gets: `check metrics` reads only the 0.0.4 format,
        // so the OpenMetrics text goes through promtool's OpenMetrics parser
        // (the backfill importer), which wants a timestamp on every sample.
        let text = render(snapshot.as_ref()).unwrap();
        assert!(text.ends_with("# EOF\n"));
        let stamped: String = text
            .lines()
            .map(|l| if l.starts_with('#') { format!("{l}\n") } else { format!("{l} 1700000000\n") })
            .collect();
        let dir = Scratch::new("metrics", "openmetrics");
        let input = dir.join("scrape.om");
        std::fs::write(&input, &stamped).unwrap();
        let blocks = dir.join("blocks");
        let out = promtool(
            &["tsdb", "create-blocks-from", "openmetrics", input.to_str().unwrap(), blocks.to_str().unwrap()],
            "",
        );
        let series = stamped.lines().filter(|l| !l.starts_with('#')).count();
        assert!(out.contains(&format!(" {series} ")), "not all {series} samples imported:\n{out}");
    }
}

/// Every PromQL expression of the dashboard.
fn dashboard_queries() -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                        _ => walk(value, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS");
    let mut queries = Vec::new();
    walk(&dashboard, &mut queries);
    queries
}

#[test]
fn the_dashboard_queries_only_metrics_tsod_exports() {
    let text = render(Some(&rich())).unwrap();
    let exported: Vec<&str> =
        text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split(['{', ' ']).next()).collect();
    let queries = dashboard_queries();
    assert!(queries.len() >= 10, "{queries:?}");
    let mut used = 0;
    for query in &queries {
        for (start, _) in query.match_indices("tsod_") {
            let name: String = query[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            assert!(exported.contains(&name.as_str()), "the dashboard queries {name}, which tsod does not export");
            used += 1;
        }
    }
    assert!(used >= queries.len());
}

#[test]
fn the_contrib_readme_lists_every_metric() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/README.md")).unwrap();
    let text = render(Some(&rich())).unwrap();
    let mut names: Vec<&str> =
        text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split(['{', ' ']).next()).collect();
    names.dedup();
    assert!(names.len() > 40, "{names:?}");
    for name in names {
        assert!(readme.contains(&format!("`{name}`")) || readme.contains(&format!("`{name}{{")), "{name} not listed");
    }
}

#[test]
#[cfg_attr(tsod_no_promtool, ignore = "needs promtool (Debian's prometheus)")]
fn promtool_parses_every_dashboard_query() {
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, query) in dashboard_queries().iter().enumerate() {
        let expr = query.replace("$instance", ".*").replace("$__rate_interval", "1m");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap()
        ));
    }
    let dir = Scratch::new("metrics", "rules");
    let path = dir.join("dashboard.rules.yml");
    std::fs::write(&path, &rules).unwrap();
    let out = promtool(&["check", "rules", path.to_str().unwrap()], "");
    assert!(out.contains("SUCCESS"), "{out}\n{rules}");
}

/// A metrics endpoint on a loopback port, fed by the returned sender.
async fn endpoint() -> (SocketAddr, watch::Sender<Option<Arc<StatusSnapshot>>>) {
    let listener = tsod::metrics::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = listener.local_addr().unwrap();
    let (tx, rx) = watch::channel(None);
    tokio::spawn(tsod::metrics::serve(listener, rx));
    (address, tx)
}

/// An HTTP answer: status code, header lines (lower-cased names), body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Sends `request` as is and reads the whole answer (the server closes).
async fn exchange(address: SocketAddr, request: &str) -> Answer {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut bytes)).await.unwrap().unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    Answer { status, headers, body: body.to_owned() }
}

async fn get(address: SocketAddr, path: &str, accept: Option<&str>) -> Answer {
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    exchange(address, &format!("GET {path} HTTP/1.1\r\nHost: tsod\r\n{accept}\r\n")).await
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_ASKS: &str = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[tokio::test]
async fn the_endpoint_serves_the_latest_snapshot_in_the_format_asked_for() {
    let (address, snapshots) = endpoint().await;

    let before = get(address, "/metrics", Some(PROMETHEUS_ASKS)).await;
    assert_eq!(before.status, 200);
    assert_eq!(before.header("content-type"), Some(OPENMETRICS));
    assert_eq!(before.body, render(None).unwrap());
    assert!(before.body.contains("\ntsod_up 0\n"));

    snapshots.send_replace(Some(Arc::new(rich())));
    let after = get(address, "/metrics", Some(PROMETHEUS_ASKS)).await;
    assert_eq!(after.body, render(Some(&rich())).unwrap());
    assert!(after.body.contains("\ntsod_bound_half_width_seconds 0.000012\n"));
    assert!(after.body.contains("\ntsod_tso_lease_margin_seconds 0.4\n"));
    assert_eq!(after.header("content-length"), Some(after.body.len().to_string().as_str()));

    let plain = get(address, "/metrics", None).await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    assert_eq!(plain.body, render_as(Some(&rich()), Format::Prometheus).unwrap());

    // A newer snapshot is what the next scrape says.
    let mut newer = rich();
    newer.disruption_count = 3;
    snapshots.send_replace(Some(Arc::new(newer)));
    assert!(get(address, "/metrics", None).await.body.contains("\ntsod_disruptions_total 3\n"));

    let head = exchange(address, "HEAD /metrics HTTP/1.1\r\nHost: tsod\r\n\r\n").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "{head:?}");

    let index = get(address, "/", None).await;
    assert_eq!(index.status, 200);
    assert!(index.body.contains("/metrics"), "{index:?}");
}

#[tokio::test]
async fn other_paths_are_404_and_other_methods_405_without_reading_a_body() {
    let (address, snapshots) = endpoint().await;
    snapshots.send_replace(Some(Arc::new(rich())));
    for path in ["/nope", "/metrics/", "/status.json"] {
        assert_eq!(get(address, path, None).await.status, 404, "{path}");
    }
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let answer = exchange(address, &format!("{method} /metrics HTTP/1.1\r\nHost: tsod\r\n\r\n")).await;
        assert_eq!(answer.status, 405, "{method}");
        assert_eq!(answer.header("allow"), Some("GET, HEAD"));
    }
    // A body announced as a gigabyte is refused at once, not waited for.
    let started = Instant::now();
    let answer = exchange(
        address,
        "POST /metrics HTTP/1.1\r\nHost: tsod\r\nContent-Length: 1000000000\r\n\r\nthe first bytes of a gigabyte",
    )
    .await;
    assert_eq!(answer.status, 405);
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    // A request head larger than the server reads is refused.
    let huge = format!("GET /metrics HTTP/1.1\r\nHost: tsod\r\nX-Pad: {}\r\n\r\n", "a".repeat(64 * 1024));
    let mut stream = TcpStream::connect(address).await.unwrap();
    let _ = stream.write_all(huge.as_bytes()).await;
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut bytes)).await.unwrap();
    assert!(!String::from_utf8_lossy(&bytes).starts_with("HTTP/1.1 200"), "an oversized head was answered");
}

/// Whether the server has closed `stream` (end of stream or reset),
/// waiting at most `limit`; any bytes it sent first are read and dropped.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn clients_that_never_finish_a_request_neither_block_a_scrape_nor_stay() {
    let (address, snapshots) = endpoint().await;
    snapshots.send_replace(Some(Arc::new(rich())));
    let opened = Instant::now();
    let mut stuck = Vec::new();
    for _ in 0..MAX_CONNECTIONS + 5 {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: tsod\r\n").await.unwrap();
        stuck.push(stream);
    }
    // And one that trickles its head a byte at a time, never finishing.
    let trickle = tokio::spawn(async move {
        let mut stream = TcpStream::connect(address).await.unwrap();
        for byte in b"GET /metrics HTTP/1.1\r\nX-Slow: ".iter().chain(b"a".repeat(1_000).iter()) {
            if stream.write_all(&[*byte]).await.is_err() {
                return Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the trickling client was never cut off");
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A real scrape gets through at once.
    let started = Instant::now();
    let scrape = get(address, "/metrics", Some(PROMETHEUS_ASKS)).await;
    let took = started.elapsed();
    assert_eq!(scrape.status, 200);
    assert!(scrape.body.contains("\ntsod_up 1\n"));
    assert!(took < Duration::from_secs(1), "the scrape waited {took:?} behind stuck clients");

    // Bounded in count: no more than MAX_CONNECTIONS of them are still held.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut open = 0;
    for stream in &mut stuck {
        if !closed_within(stream, Duration::from_millis(20)).await {
            open += 1;
        }
    }
    assert!(open <= MAX_CONNECTIONS, "{open} stuck connections held, more than {MAX_CONNECTIONS}");
    assert!(open > 0, "the stuck clients were all cut off at once: the bound in time is not what is tested");

    // Bounded in time: every one is closed once the header timeout has
    // passed, a few seconds after it opened.
    let limit = HEADER_TIMEOUT + Duration::from_secs(1);
    assert!(limit <= Duration::from_secs(5), "stuck clients may hold a slot for {limit:?}");
    for (i, stream) in stuck.iter_mut().enumerate() {
        let left = limit.saturating_sub(opened.elapsed());
        assert!(closed_within(stream, left).await, "stuck connection {i} still open after {:?}", opened.elapsed());
    }
    let cut = tokio::time::timeout(limit, trickle).await.expect("the trickling client was never cut off").unwrap();
    assert!(cut.duration_since(opened) < limit, "trickling client cut after {:?}", cut.duration_since(opened));

    // And the endpoint still serves.
    assert_eq!(get(address, "/metrics", None).await.status, 200);
}

/// A live daemon with `[metrics]` (fed by a simulated GPS): a scrape once it
/// is synchronized carries its bound and source, and `promtool check
/// metrics` accepts it.
#[tokio::test]
#[cfg_attr(tsod_no_promtool, ignore = "needs promtool (Debian's prometheus)")]
async fn a_live_daemons_scrape_passes_promtool() {
    let scratch = Scratch::new("metrics", "live");
    let gps = tsod_testbed::sim::gpsd::GpsdSim::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let extra = format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let sources = format!(
        "\n[[source]]\nkind = \"gpsd\"\nname = \"gps\"\naddress = \"{}\"\ntimescale = \"utc\"\n",
        gps.local_addr()
    );
    let (_daemon, segment) = common::tsod_with(&scratch.0, &extra, &sources);
    let _clock = tokio::task::spawn_blocking(move || common::synchronized(&segment)).await.unwrap();
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    let scrape = loop {
        // The status snapshot reaches the endpoint once a second.
        if let Ok(Ok(answer)) =
            tokio::time::timeout(Duration::from_secs(2), tokio::spawn(get(address, "/metrics", None))).await
        {
            if answer.body.contains("tsod_clock_status{status=\"synchronized\"} 1") {
                break answer;
            }
        }
        assert!(Instant::now() < deadline, "no synchronized scrape within 10 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(scrape.status, 200);
    assert!(scrape.body.contains("tsod_bound_half_width_seconds "), "{}", scrape.body);
    assert!(scrape.body.contains("tsod_source_usable{source=\"gps\",kind=\"gpsd\"} 1"), "{}", scrape.body);
    promtool(&["check", "metrics"], &scrape.body);
}
