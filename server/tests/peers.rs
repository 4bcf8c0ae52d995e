//! Three `tsod` daemons on loopback, one per site, each on its own wrong
//! simulated clock and fed by its own simulated GPS receiver (the testbed's
//! gpsd simulator, through tsod's real gpsd code path), measuring each other
//! over QUIC (`tsod-peer/1`). The host clock is true time.
//!
//! Checks: every site's interval contains true time; a lying GPS is out-voted
//! by the other two sites and its own site does not publish the lie; killing
//! a site leaves the others synchronized; foreign certificates and
//! unauthenticated clients are refused.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{ClusterSite, SITES, Setup, make_pki, start_sites};
use common::{Scratch, check_truth, synchronized};
use tsod::daemon::status_file::{self, StatusSnapshot};
use tsod_client::{RemoteClock, RemoteError, RemoteOptions};
use tsod_proto::{ClockStatus, Offset, Ppb};
use tsod_testbed::sim::gpsd::GpsFault;

/// Makes the cluster PKI for `sites` in `scratch/name`.
fn cluster_dir(scratch: &Scratch, name: &str, sites: &[&str]) -> PathBuf {
    make_pki(&scratch.join(name), sites)
}

/// Starts the three sites; `extra` goes into every configuration.
fn start_cluster(scratch: &Scratch, certs: &Path, extra: &str) -> Vec<ClusterSite> {
    start_sites(&scratch.0, &Setup { certs, extra, tso: ["", "", ""] }, |_, address| address)
}

/// The three sites and an `app` client certificate, `extra` in every
/// configuration, once bj-a has all its peers: bj-a's QUIC address and a
/// runtime to be its client on.
struct ClientCluster {
    certs: PathBuf,
    sites: Vec<ClusterSite>,
    addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
}

fn cluster_for_clients(scratch: &Scratch, extra: &str) -> ClientCluster {
    let certs = cluster_dir(scratch, "certs", &["bj-a", "bj-b", "xa", "app"]);
    let sites = start_cluster(scratch, &certs, extra);
    wait_for(&sites[0], "all peers usable", Duration::from_secs(20), all_peers_usable);
    let addr: SocketAddr = format!("127.0.0.1:{}", sites[0].port).parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    ClientCluster { certs, sites, addr, runtime }
}

/// Waits until `check` holds for the site's status file.
fn wait_for(
    site: &ClusterSite,
    what: &str,
    within: Duration,
    check: impl Fn(&StatusSnapshot) -> bool,
) -> StatusSnapshot {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(s) = status_file::read(&status_file::status_path(&site.segment)) {
            if check(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "{}: {what} not reached within {within:?}: {s:#?}", site.name);
        }
        assert!(Instant::now() < deadline, "{}: no status file within {within:?}", site.name);
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn source<'a>(s: &'a StatusSnapshot, name: &str) -> &'a tsod_proto::observe::SourceSnapshot {
    s.sources.iter().find(|x| x.name == name).unwrap_or_else(|| panic!("no source {name}: {s:#?}"))
}

fn all_peers_usable(s: &StatusSnapshot) -> bool {
    s.sources.iter().all(|x| x.usable && !x.falseticker)
        && s.peers.iter().all(|p| p.connected && p.report.as_ref().is_some_and(|r| r.half_width.is_some()))
}

#[test]
fn three_sites_bound_true_time_through_each_other_and_survive_losing_one() {
    let scratch = Scratch::new("peers", "three");
    let certs = cluster_dir(&scratch, "certs", &SITES);
    // Two agreeing sources suffice for `synchronized`; samples of a dead peer
    // are dropped after 4 s, so the survivors run on two sources.
    let mut sites = start_cluster(&scratch, &certs, "[clock]\nmin-agreeing = 2\nmax-sample-age-ms = 4000\n");
    for site in &sites {
        let s = wait_for(site, "all peers usable", Duration::from_secs(20), all_peers_usable);
        assert_eq!(s.site.as_deref(), Some(site.name));
        // Every site sees the whole cluster, with each peer's own report.
        for p in &s.peers {
            let report = p.report.as_ref().unwrap();
            assert_eq!(report.site, p.name);
            assert_eq!(report.local_status, ClockStatus::Synchronized, "{report:?}");
            assert_eq!(report.sources.len(), 3, "{report:?}");
        }
    }
    for site in &sites {
        let clock = synchronized(&site.segment);
        let widths = check_truth(&clock, Duration::from_secs(2), true);
        eprintln!("{}: median half-width {} ns", site.name, widths[widths.len() / 2]);
    }

    // bj-a's GPS fails: it keeps a valid, wider bound from its peers alone
    // (holdover over the WAN), and still says so in its status.
    sites[0].gps.set_fault(GpsFault { outage: true, ..GpsFault::default() });
    let s = wait_for(&sites[0], "its GPS unusable", Duration::from_secs(10), |s| !source(s, "gps").usable);
    assert_eq!(s.status, ClockStatus::Synchronized, "{s:#?}");
    // Its local basis (what its probe replies carry) is at most holdover.
    assert!(matches!(s.local_status, Some(ClockStatus::FreeRunning | ClockStatus::Unsynchronized)), "{s:#?}");
    let widths = check_truth(&synchronized(&sites[0].segment), Duration::from_secs(2), true);
    eprintln!("bj-a from its peers alone: median half-width {} ns", widths[widths.len() / 2]);
    sites[0].gps.set_fault(GpsFault::default());
    wait_for(&sites[0], "its GPS back", Duration::from_secs(10), all_peers_usable);

    // Lose site xa: the others notice within the dead-peer time and stay synchronized.
    let lost = sites.pop().unwrap();
    drop(lost.daemon);
    let started = Instant::now();
    for site in &sites {
        let s = wait_for(site, "xa disconnected", Duration::from_secs(5), |s| {
            s.peers.iter().any(|p| p.name == "xa" && !p.connected)
        });
        eprintln!("{}: xa declared lost after {:?}", site.name, started.elapsed());
        assert!(started.elapsed() < Duration::from_secs(5), "{s:#?}");
    }
    for site in &sites {
        wait_for(site, "xa's samples aged out", Duration::from_secs(10), |s| !source(s, "xa").usable);
        let s = site.status().unwrap();
        assert_eq!(s.status, ClockStatus::Synchronized, "{s:#?}");
        check_truth(&synchronized(&site.segment), Duration::from_secs(1), true);
    }
}

#[test]
fn a_lying_gps_is_outvoted_by_the_other_sites() {
    let scratch = Scratch::new("peers", "liar");
    let certs = cluster_dir(&scratch, "certs", &SITES);
    let sites = start_cluster(&scratch, &certs, "");
    for site in &sites {
        wait_for(site, "all peers usable", Duration::from_secs(20), all_peers_usable);
    }
    // xa's GPS now claims a time 20 ms ahead, with its usual microsecond error.
    let liar = &sites[2];
    liar.gps.set_fault(GpsFault { offset: Offset::from_nanos(20_000_000), drift: Ppb::ZERO, outage: false });
    for site in &sites[..2] {
        let s = wait_for(site, "xa a falseticker", Duration::from_secs(10), |s| source(s, "xa").falseticker);
        assert!(!source(&s, "gps").falseticker && !source(&s, other(site.name)).falseticker, "{s:#?}");
        check_truth(&synchronized(&site.segment), Duration::from_secs(1), true);
    }
    let s = wait_for(liar, "its own GPS a falseticker", Duration::from_secs(10), |s| source(s, "gps").falseticker);
    assert!(
        matches!(s.status, ClockStatus::Degraded | ClockStatus::Unsynchronized),
        "the lying site must not claim full synchronization: {s:#?}"
    );
    // `tsod status --json` on any site lists every site with its half-width
    // and what it flags as falsetickers.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tsod"))
        .args(["status", "--json", "--segment"])
        .arg(&sites[0].segment)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["site"], "bj-a");
    assert!(json["half_width_ns"].is_u64(), "{json:#}");
    let peers = json["peers"].as_array().unwrap();
    let names: Vec<&str> = peers.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bj-b", "xa"]);
    for p in peers {
        assert!(p["report"]["half-width"].is_u64() || p["report"]["half-width"].is_null(), "{p:#}");
        assert!(p["report"]["sources"].as_array().unwrap().iter().all(|s| s["falseticker"].is_boolean()), "{p:#}");
    }
    let xa = json["sources"].as_array().unwrap().iter().find(|s| s["name"] == "xa").unwrap();
    assert_eq!(xa["falseticker"], true, "{json:#}");

    // Whatever it publishes is true (from its peers), never the lie.
    check_truth(&tsod_client::LocalClock::open_path(&liar.segment).unwrap(), Duration::from_secs(2), false);
}

fn other(name: &str) -> &'static str {
    if name == "bj-a" { "bj-b" } else { "bj-a" }
}

#[test]
fn foreign_peers_and_unauthenticated_clients_are_refused() {
    let scratch = Scratch::new("peers", "auth");
    let certs = cluster_dir(&scratch, "certs", &["bj-a", "bj-b", "xa", "intruder"]);
    let foreign = cluster_dir(&scratch, "foreign", &["bj-b"]);
    let sites = start_cluster(&scratch, &certs, "[clients]\nmax-requests-per-second = 50\n");
    let target = &sites[0];
    wait_for(target, "all peers usable", Duration::from_secs(20), all_peers_usable);
    let addr: SocketAddr = format!("127.0.0.1:{}", target.port).parse().unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        // bj-b's name, but a certificate from another cluster's CA.
        let conn = dial(&foreign, &certs, "bj-b", addr, tsod_proto::wire::ALPN_PEER).await;
        let reason = refusal(conn).await.expect("a foreign certificate was accepted");
        assert!(reason.contains("certificate") || reason.contains("alert"), "{reason}");
        // A certificate from our CA for a site that is not a configured peer.
        let conn = dial(&certs, &certs, "intruder", addr, tsod_proto::wire::ALPN_PEER).await;
        let reason = refusal(conn).await.expect("an unconfigured site was accepted as a peer");
        assert!(reason.contains("unknown peer"), "{reason}");
        // A client without a certificate (anonymous clients are off by default).
        let conn = dial_anonymous(&certs, addr).await;
        refusal(conn).await.expect("an unauthenticated client was accepted");
        // The same client is fine with a certificate from the cluster CA.
        let conn = dial(&certs, &certs, "intruder", addr, tsod_proto::wire::ALPN_CLIENT).await;
        assert_eq!(refusal(conn).await, None);

        // A configured peer's certificate, but garbage on the connection:
        // dropped and counted; a real probe still gets a true, local-basis reply.
        let conn = dial(&certs, &certs, "bj-b", addr, tsod_proto::wire::ALPN_PEER).await.unwrap();
        for garbage in [&b""[..], b"\x01", b"\x01\x02\x00\x00\x00\x00\x00\x48", &[0xff; 72], &[1, 1, 0, 0, 0, 0, 0, 24]]
        {
            conn.send_datagram(bytes::Bytes::copy_from_slice(garbage)).unwrap();
        }
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(b"\x01\x03\x00\x00\xff\xff\xff\xffnonsense").await.unwrap();
        send.finish().unwrap();
        let answer = recv.read_to_end(65_535).await.unwrap();
        assert!(matches!(tsod_proto::wire::decode(&answer), Ok(tsod_proto::wire::Message::Error(_))), "{answer:?}");
        let t1 = tsod_client::sys::reader_clock_now().unwrap();
        let request = tsod_proto::wire::ProbeRequest { nonce: 42, requester_send: t1 };
        let before = common::realtime();
        conn.send_datagram(tsod_proto::wire::Message::ProbeRequest(request).to_vec().unwrap().into()).unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(2), conn.read_datagram()).await.unwrap().unwrap();
        let after = common::realtime();
        let tsod_proto::wire::Message::ProbeReply(reply) = tsod_proto::wire::decode(&reply).unwrap() else {
            panic!("not a probe reply");
        };
        assert!(reply.local_basis && reply.status.is_bounded() && reply.nonce == 42, "{reply:?}");
        // at-send holds true time at the responder's t3, which lies between
        // our send and our receipt: it must reach into [before, after].
        let (earliest, latest) = (reply.at_send.earliest(), reply.at_send.latest());
        assert!(earliest <= after && before <= latest, "{reply:?} vs [{before}, {after}]");
        conn.close(0u8.into(), b"done");

        // RemoteClock: the interval contains true time on this host.
        let mut options = RemoteOptions::new(certs.join("ca.crt"), "bj-a");
        options.client_identity = Some((certs.join("intruder.crt"), certs.join("intruder.key")));
        let remote = RemoteClock::connect_with(addr, options).await.unwrap();
        for _ in 0..20 {
            let before = common::realtime();
            let interval = remote.now().await.unwrap();
            let after = common::realtime();
            assert!(interval.earliest() <= after && before <= interval.latest(), "{interval} vs [{before}, {after}]");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let report = remote.site_report().await.unwrap();
        assert_eq!(report.site, "bj-a");
        assert_eq!(report.sources.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["gps", "bj-b", "xa"]);
        // Past 50 requests a second the connection is refused politely.
        let mut limited = 0;
        for _ in 0..200 {
            match remote.now().await {
                Ok(_) => {}
                Err(RemoteError::RateLimited { .. }) => limited += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(limited > 100, "only {limited} of 200 back-to-back requests were limited");
    });
    let s = wait_for(target, "refusals counted", Duration::from_secs(5), |s| {
        s.endpoint.handshakes_refused >= 2
            && s.endpoint.unknown_peers >= 1
            && s.endpoint.rate_limited > 100
            && s.endpoint.bad_datagrams >= 4
            && s.endpoint.bad_messages >= 1
    });
    // The real peers were never disturbed.
    assert!(all_peers_usable(&s), "{s:#?}");
}

/// A QUIC client presenting `site`'s certificate from `identity_dir`,
/// trusting `ca_dir`'s CA, expecting the server to be `bj-a`.
async fn dial(
    identity_dir: &Path,
    ca_dir: &Path,
    site: &str,
    addr: SocketAddr,
    alpn: &[u8],
) -> Result<quinn::Connection, String> {
    let roots = tsod::tls::load_roots(ca_dir).unwrap();
    let tls = tsod::tls::client_config(roots, tsod::tls::load_identity(identity_dir, site).unwrap(), &[alpn]).unwrap();
    connect(tls, addr).await
}

async fn dial_anonymous(ca_dir: &Path, addr: SocketAddr) -> Result<quinn::Connection, String> {
    let roots = tsod::tls::load_roots(ca_dir).unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(tsod::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![tsod_proto::wire::ALPN_CLIENT.to_vec()];
    connect(tls, addr).await
}

async fn connect(tls: rustls::ClientConfig, addr: SocketAddr) -> Result<quinn::Connection, String> {
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let connecting = endpoint.connect(addr, "bj-a").map_err(|e| e.to_string())?;
    let conn = tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Why the server refused the connection, or `None` if it kept it open for
/// two seconds. With TLS 1.3 the client may finish its side of the handshake
/// before the server's refusal arrives, so a refusal shows as the connection
/// closing, not necessarily as a failed connect.
async fn refusal(conn: Result<quinn::Connection, String>) -> Option<String> {
    let conn = match conn {
        Ok(c) => c,
        Err(e) => return Some(e),
    };
    tokio::time::timeout(Duration::from_secs(2), conn.closed()).await.ok().map(|reason| reason.to_string())
}

/// A client that asks and never reads the answer does not hold the task
/// answering it: once the answer has waited on the client's flow control
/// for the write timeout (5 s), the stream is reset.
#[test]
fn a_client_that_never_reads_its_answer_is_reset() {
    let scratch = Scratch::new("peers", "never-reads");
    let ClientCluster { certs, sites: _sites, addr, runtime } = cluster_for_clients(&scratch, "");
    runtime.block_on(async {
        let roots = tsod::tls::load_roots(&certs).unwrap();
        let identity = tsod::tls::load_identity(&certs, "app").unwrap();
        let tls = tsod::tls::client_config(roots, identity, &[tsod_proto::wire::ALPN_CLIENT]).unwrap();
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        // Flow control that lets 8 bytes of any answer through.
        let mut transport = quinn::TransportConfig::default();
        transport.stream_receive_window(8u32.into()).receive_window(8u32.into());
        let mut client = quinn::ClientConfig::new(Arc::new(quic));
        client.transport_config(Arc::new(transport));
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(client);
        let conn = endpoint.connect(addr, "bj-a").unwrap().await.unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let request = tsod_proto::wire::Message::NowRequest(tsod_proto::wire::Request { request_id: 7 });
        send.write_all(&request.to_vec().unwrap()).await.unwrap();
        send.finish().unwrap();
        tokio::time::sleep(Duration::from_millis(6_500)).await;
        let answer = recv.read_to_end(65_535).await;
        assert!(
            matches!(answer, Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(_)))),
            "the unread answer was not reset: {answer:?}"
        );
    });
}

/// A client connection is granted 64 concurrent streams in its handshake,
/// a peer's is raised to 256 once its certificate names it: the daemon
/// keeps the state of every stream slot a connection has used, so what a
/// client is granted is what its connection costs once settled.
#[test]
fn a_client_connection_gets_fewer_streams_than_a_peer() {
    let scratch = Scratch::new("peers", "stream-limits");
    let ClientCluster { certs, sites: _sites, addr, runtime } = cluster_for_clients(&scratch, "");
    runtime.block_on(async {
        // How many streams the server lets us open at once: opening is
        // local (nothing is sent on an unwritten stream), so the first
        // open that waits has met the limit the server granted.
        async fn open_until_refused(conn: &quinn::Connection, most: usize) -> usize {
            let mut held = Vec::new();
            while held.len() < most {
                match tokio::time::timeout(Duration::from_millis(300), conn.open_bi()).await {
                    Ok(Ok(stream)) => held.push(stream),
                    Ok(Err(e)) => panic!("{e}"),
                    Err(_) => break,
                }
            }
            held.len()
        }
        let client = dial(&certs, &certs, "app", addr, tsod_proto::wire::ALPN_CLIENT).await.unwrap();
        assert_eq!(open_until_refused(&client, 300).await, 64);
        let peer = dial(&certs, &certs, "bj-b", addr, tsod_proto::wire::ALPN_PEER).await.unwrap();
        // The raise follows the handshake by one packet.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(open_until_refused(&peer, 300).await, 256);
        client.close(0u8.into(), b"done");
        peer.close(0u8.into(), b"done");
    });
}

/// A client's limit holds however many connections it opens: four
/// connections with one certificate share its 50 timestamps a second,
/// though each stays far under the per-connection limit.
#[test]
fn a_client_with_many_connections_shares_one_limit() {
    let scratch = Scratch::new("peers", "per-client");
    let ClientCluster { certs, sites: _sites, addr, runtime } =
        cluster_for_clients(&scratch, "[clients]\nmax-timestamps-per-second-per-client = 50\n");
    let (ok, limited) = runtime.block_on(async {
        let mut options = RemoteOptions::new(certs.join("ca.crt"), "bj-a");
        options.client_identity = Some((certs.join("app.crt"), certs.join("app.key")));
        let mut clocks = Vec::new();
        for _ in 0..4 {
            clocks.push(RemoteClock::connect_with(addr, options.clone()).await.unwrap());
        }
        let (mut ok, mut limited) = (0, 0);
        for _ in 0..100 {
            for clock in &clocks {
                match clock.now().await {
                    Ok(_) => ok += 1,
                    Err(RemoteError::RateLimited { .. }) => limited += 1,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        (ok, limited)
    });
    eprintln!("{ok} answered, {limited} limited");
    // 400 requests: a burst of 50 and 50 a second more get through, so
    // at least 100 are limited unless they took over five seconds.
    assert!(limited >= 100, "only {limited} of 400 were limited");
    assert!(ok >= 40, "only {ok} answered");
}

/// `[clients]` connection limits hold on the wire: with
/// `max-connections-per-prefix = 2` a third client from one /24 is refused
/// before its handshake, with `max-connections = 4` a fifth client from a
/// fresh /24 is closed once its handshake says it is a client, and a slot
/// given back is taken again. The clients bind source addresses across
/// 127.0.0.0/8 (`RemoteOptions::local_address`).
#[test]
fn configured_client_connection_limits_hold() {
    let scratch = Scratch::new("peers", "client-limits");
    let ClientCluster { certs, sites, addr, runtime } =
        cluster_for_clients(&scratch, "[clients]\nmax-connections = 4\nmax-connections-per-prefix = 2\n");
    let target = &sites[0];
    runtime.block_on(async {
        let from = |local: [u8; 4]| {
            let mut options = RemoteOptions::new(certs.join("ca.crt"), "bj-a");
            options.client_identity = Some((certs.join("app.crt"), certs.join("app.key")));
            options.request_timeout = Duration::from_secs(1);
            options.local_address = Some(local.into());
            options
        };
        // A client is admitted when it connects and its first call is answered.
        let admitted = |local: [u8; 4]| {
            let options = from(local);
            async move {
                let clock = RemoteClock::connect_with(addr, options).await.map_err(|e| e.to_string())?;
                clock.now().await.map_err(|e| e.to_string())?;
                Ok::<RemoteClock, String>(clock)
            }
        };
        let mut held = Vec::new();
        for local in [[127, 0, 1, 1], [127, 0, 1, 2], [127, 0, 2, 1], [127, 0, 2, 2]] {
            held.push(admitted(local).await.unwrap_or_else(|e| panic!("{local:?}: {e}")));
        }
        let Err(prefix_full) = admitted([127, 0, 1, 3]).await else {
            panic!("a third client from 127.0.1.0/24 was admitted")
        };
        let Err(clients_full) = admitted([127, 0, 3, 1]).await else { panic!("a fifth client was admitted") };
        eprintln!("refused: {prefix_full}; {clients_full}");
        // One of 127.0.2.0/24 leaves: its slot goes to the next client.
        drop(held.pop());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match admitted([127, 0, 3, 1]).await {
                Ok(clock) => {
                    held.push(clock);
                    break;
                }
                Err(e) => assert!(Instant::now() < deadline, "the freed slot was not given back: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let s = wait_for(target, "refusals counted", Duration::from_secs(5), |s| s.endpoint.connections_over_limit >= 2);
    assert!(all_peers_usable(&s), "the peers were never kept out: {s:#?}");
}
