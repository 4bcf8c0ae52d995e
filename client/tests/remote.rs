//! `RemoteClock` against a small in-test `tsod-client/1` server (quinn on
//! 127.0.0.1, certificates from an rcgen CA): widening by the round trip,
//! typed errors for every refusal SPEC.md §6 lists, certificate checks,
//! timeouts and reconnection after a server restart.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pki::{Pki, SERVER_NAME};
use common::server::{Stop, TestServer};
use tsod_client::{
    ClientSocket, ClockStatus, ErrorCode, Offset, Ppb, RemoteClock, RemoteError, RemoteOptions, SourceKind,
    TimeInterval, Timescale, Timestamp,
};
use tsod_proto::wire::{
    self, ErrorResponse, MAX_MESSAGE_LEN, Message, NowResponse, SiteReport, SourceReport, StatusResponse,
};

/// The interval the test server always answers with.
fn server_interval() -> TimeInterval {
    TimeInterval::new(
        Timestamp::from_nanos(1_700_000_000_000_000_000),
        Timestamp::from_nanos(1_700_000_000_000_050_000),
    )
    .unwrap()
}

/// What the test server does with a now-request.
#[derive(Clone, Debug)]
enum Reply {
    /// A now-response with the fixed interval and this status.
    Now(ClockStatus),
    /// An error response.
    Error(ErrorCode, &'static str, Option<Duration>),
    /// A now-response for another request id.
    WrongId,
    /// Nothing: the stream stays open, unanswered.
    Silent,
}

#[derive(Clone, Debug)]
struct Behavior {
    reply: Reply,
    delay: Duration,
}

impl Behavior {
    fn answer() -> Self {
        Self { reply: Reply::Now(ClockStatus::Synchronized), delay: Duration::ZERO }
    }
}

impl TestServer<Mutex<Behavior>> {
    fn start(config: quinn::ServerConfig, behavior: Behavior) -> Self {
        Self::start_on((Ipv4Addr::LOCALHOST, 0).into(), config, behavior)
    }

    fn start_on(bind: SocketAddr, config: quinn::ServerConfig, behavior: Behavior) -> Self {
        Self::spawn(bind, config, Arc::new(Mutex::new(behavior)), |send, recv, behavior| {
            let behavior = behavior.lock().unwrap().clone();
            answer(send, recv, behavior)
        })
    }

    fn set(&self, reply: Reply, delay: Duration) {
        *self.state.lock().unwrap() = Behavior { reply, delay };
    }
}

async fn answer(mut send: quinn::SendStream, mut recv: quinn::RecvStream, behavior: Behavior) {
    let Ok(request) = recv.read_to_end(MAX_MESSAGE_LEN).await else { return };
    let response = match wire::decode(&request) {
        Ok(Message::NowRequest(r)) => match behavior.reply {
            Reply::Now(status) => now_response(r.request_id, status),
            Reply::WrongId => now_response(r.request_id.wrapping_add(1), ClockStatus::Synchronized),
            Reply::Error(code, message, retry_after) => {
                Message::Error(ErrorResponse { request_id: r.request_id, code, retry_after, message }).to_vec().unwrap()
            }
            Reply::Silent => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
        },
        Ok(Message::StatusRequest(r)) => status_response(r.request_id),
        _ => Message::Error(ErrorResponse {
            request_id: 0,
            code: ErrorCode::Malformed,
            retry_after: None,
            message: "not a client request",
        })
        .to_vec()
        .unwrap(),
    };
    tokio::time::sleep(behavior.delay).await;
    if send.write_all(&response).await.is_ok() && send.finish().is_ok() {
        let _ = send.stopped().await;
    }
}

fn now_response(request_id: u64, status: ClockStatus) -> Vec<u8> {
    Message::NowResponse(NowResponse {
        request_id,
        interval: server_interval(),
        status,
        timescale: Timescale::UtcSmear24h,
        drift_bound: Ppb::from_ppm(15),
    })
    .to_vec()
    .unwrap()
}

fn status_response(request_id: u64) -> Vec<u8> {
    let report = SiteReport {
        generation: 42,
        site: "site-a",
        status: ClockStatus::Degraded,
        local_status: ClockStatus::Synchronized,
        timescale: Timescale::UtcSmear24h,
        half_width: Some(Duration::from_micros(25)),
        drift_bound: Ppb::from_ppm(15),
        sources: vec![
            SourceReport {
                kind: SourceKind::Ntp,
                name: "time1",
                usable: true,
                falseticker: false,
                offset: Offset::from_nanos(-3_000),
                error: Duration::from_micros(20),
            },
            SourceReport {
                kind: SourceKind::Peer,
                name: "site-b",
                usable: true,
                falseticker: true,
                offset: Offset::from_nanos(900_000),
                error: Duration::from_micros(80),
            },
        ],
    };
    Message::StatusResponse(StatusResponse { request_id, report }).to_vec().unwrap()
}

#[tokio::test]
async fn now_widens_the_server_interval_by_at_least_the_round_trip() {
    let pki = Pki::new("widen");
    let server = TestServer::start(pki.server_config(false), Behavior::answer());
    let clock = RemoteClock::connect(server.addr, SERVER_NAME, &pki.ca_path).await.unwrap();
    assert_eq!(clock.server_name(), "site-a");

    let delay = Duration::from_millis(100);
    server.set(Reply::Now(ClockStatus::Synchronized), delay);
    let started = Instant::now();
    let now = clock.now_at().await.unwrap();
    let elapsed = started.elapsed();
    let after = tsod_client::sys::reader_clock_now().unwrap();

    let server = server_interval();
    assert_eq!(now.interval.earliest(), server.earliest(), "the lower end is never widened");
    let widening = now.interval.latest().checked_duration_since(server.latest()).unwrap();
    assert!(widening >= delay, "widened by {widening:?}, less than the server's {delay:?} delay");
    assert!(now.round_trip >= delay && now.round_trip <= elapsed + Duration::from_millis(1), "{now:?}");
    // ⌈rtt · (1 + 100 ppm)⌉, nothing more.
    let expected = now.round_trip.as_nanos() * 1_000_100_000 / 1_000_000_000;
    assert!(widening.as_nanos() >= expected && widening.as_nanos() <= expected + 1, "{widening:?} vs {now:?}");
    assert_eq!(now.status, ClockStatus::Synchronized);
    assert_eq!(now.server_drift_bound, Ppb::from_ppm(15));
    assert!(now.at <= after);
    assert_eq!(now.interval_at(now.at), Some(now.interval));
    let later = now.interval_at(after).unwrap();
    assert!(later.earliest() >= now.interval.earliest() && later.latest() >= now.interval.latest());

    // `now` is the same interval without the reader instant.
    let interval = clock.now().await.unwrap();
    assert_eq!(interval.earliest(), server.earliest());
    assert!(interval.latest() >= server.latest().checked_add(delay).unwrap());
}

#[tokio::test]
async fn unbounded_statuses_and_error_responses_are_typed_errors() {
    let pki = Pki::new("errors");
    let server = TestServer::start(pki.server_config(false), Behavior::answer());
    let clock = RemoteClock::connect(server.addr, SERVER_NAME, &pki.ca_path).await.unwrap();

    server.set(Reply::Now(ClockStatus::Unsynchronized), Duration::ZERO);
    let e = clock.now().await.unwrap_err();
    assert!(matches!(e, RemoteError::Unsynchronized { .. }), "{e:?}");
    server.set(Reply::Now(ClockStatus::Disrupted), Duration::ZERO);
    let e = clock.now().await.unwrap_err();
    assert!(matches!(e, RemoteError::Disrupted { .. }), "{e:?}");

    server.set(Reply::Error(ErrorCode::Unsynchronized, "no majority of sources", None), Duration::ZERO);
    let e = clock.now().await.unwrap_err();
    assert!(matches!(&e, RemoteError::Unsynchronized { message } if message == "no majority of sources"), "{e:?}");
    assert!(e.to_string().contains("retry later"), "{e}");
    server.set(Reply::Error(ErrorCode::Disrupted, "clock stepped", None), Duration::ZERO);
    let e = clock.now().await.unwrap_err();
    assert!(matches!(e, RemoteError::Disrupted { .. }), "{e:?}");
    server.set(Reply::Error(ErrorCode::RateLimited, "", Some(Duration::from_millis(750))), Duration::ZERO);
    let e = clock.now().await.unwrap_err();
    assert!(matches!(e, RemoteError::RateLimited { .. }), "{e:?}");
    assert_eq!(e.retry_after(), Some(Duration::from_millis(750)));
    server.set(Reply::Error(ErrorCode::Overloaded, "shedding", Some(Duration::from_secs(1))), Duration::ZERO);
    let e = clock.now().await.unwrap_err();
    assert!(matches!(e, RemoteError::Refused { code: ErrorCode::Overloaded, .. }), "{e:?}");
    server.set(Reply::Error(ErrorCode::Other(300), "from the future", None), Duration::ZERO);
    let e = clock.now().await.unwrap_err();
    assert!(
        matches!(&e, RemoteError::Refused { code: ErrorCode::Other(300), message, .. } if message == "from the future")
    );

    // The connection survives refusals: the same one answers again.
    server.set(Reply::Now(ClockStatus::FreeRunning), Duration::ZERO);
    assert_eq!(clock.now_at().await.unwrap().status, ClockStatus::FreeRunning);
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn concurrent_calls_share_one_connection_each_on_its_own_stream() {
    let pki = Pki::new("concurrent");
    let server = TestServer::start(pki.server_config(false), Behavior::answer());
    let clock = RemoteClock::connect(server.addr, SERVER_NAME, &pki.ca_path).await.unwrap();
    server.set(Reply::Now(ClockStatus::Synchronized), Duration::from_millis(20));
    let (a, b, c, d) = tokio::join!(clock.now_at(), clock.now_at(), clock.site_report(), clock.now_at());
    for now in [a.unwrap(), b.unwrap(), d.unwrap()] {
        assert_eq!(now.interval.earliest(), server_interval().earliest());
        assert!(now.round_trip >= Duration::from_millis(20));
    }
    assert_eq!(c.unwrap().site, "site-a");
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn a_response_for_another_request_is_refused() {
    let pki = Pki::new("wrong-id");
    let server = TestServer::start(pki.server_config(false), Behavior { reply: Reply::WrongId, delay: Duration::ZERO });
    let clock = RemoteClock::connect(server.addr, SERVER_NAME, &pki.ca_path).await.unwrap();
    let e = clock.now().await.unwrap_err();
    match e {
        RemoteError::RequestIdMismatch { sent, received } => assert_eq!(received, sent.wrapping_add(1)),
        other => panic!("expected a request-id mismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_whose_certificate_is_not_from_the_ca_or_not_for_the_name_is_refused() {
    let ours = Pki::new("ca-ours");
    let theirs = Pki::new("ca-theirs");
    let server = TestServer::start(theirs.server_config(false), Behavior::answer());
    let e = RemoteClock::connect(server.addr, SERVER_NAME, &ours.ca_path).await.unwrap_err();
    assert!(matches!(e, RemoteError::Handshake { .. }), "{e:?}");
    assert!(e.to_string().contains("cluster CA"), "{e}");

    // The right CA, but the certificate does not name the site asked for.
    let e = RemoteClock::connect(server.addr, "site-b", &theirs.ca_path).await.unwrap_err();
    assert!(matches!(&e, RemoteError::Handshake { server_name, .. } if server_name == "site-b"), "{e:?}");
    assert!(e.to_string().contains("names site-b"), "{e}");
    // The certificate's DNS name: accepted.
    let clock = RemoteClock::connect(server.addr, "site-a", &theirs.ca_path).await.unwrap();
    assert!(clock.now().await.is_ok());
}

#[tokio::test]
async fn an_ip_address_is_verified_only_when_given_as_the_server_name() {
    let pki = Pki::new("by-ip");
    let server = TestServer::start(pki.server_config(false), Behavior::answer());
    // Asked for explicitly, the address is matched against the IP SANs.
    let clock = RemoteClock::connect(server.addr, "127.0.0.1", &pki.ca_path).await.unwrap();
    assert_eq!(clock.server_name(), "127.0.0.1");
    assert!(clock.now().await.is_ok());
    // An address the certificate does not carry is refused.
    let e = RemoteClock::connect(server.addr, "127.0.0.2", &pki.ca_path).await.unwrap_err();
    assert!(matches!(e, RemoteError::Handshake { .. }), "{e:?}");
}

#[tokio::test]
async fn a_silent_server_times_out_and_a_slow_one_exceeds_the_round_trip_limit() {
    let pki = Pki::new("timeout");
    let server = TestServer::start(pki.server_config(false), Behavior::answer());
    let options = RemoteOptions {
        request_timeout: Duration::from_millis(300),
        max_round_trip: Duration::from_millis(100),
        ..pki.remote_options()
    };
    let clock = RemoteClock::connect_with(server.addr, options).await.unwrap();

    server.set(Reply::Silent, Duration::ZERO);
    let started = Instant::now();
    let e = clock.now().await.unwrap_err();
    assert!(matches!(e, RemoteError::Timeout { after, .. } if after == Duration::from_millis(300)), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());

    server.set(Reply::Now(ClockStatus::Synchronized), Duration::from_millis(150));
    let e = clock.now().await.unwrap_err();
    match e {
        RemoteError::RoundTripTooLong { round_trip, limit } => {
            assert_eq!(limit, Duration::from_millis(100));
            assert!(round_trip >= Duration::from_millis(150), "{round_trip:?}");
        }
        other => panic!("expected RoundTripTooLong, got {other:?}"),
    }

    // After a timeout the next call dials again and gets an answer.
    server.set(Reply::Now(ClockStatus::Synchronized), Duration::ZERO);
    assert!(clock.now().await.is_ok());
    assert_eq!(server.connections(), 2, "the timed-out connection was replaced");
}

#[tokio::test]
async fn reconnects_after_the_server_restarts_on_the_same_port() {
    let pki = Pki::new("restart");
    let server = TestServer::start(pki.server_config(false), Behavior::answer());
    let addr = server.addr;
    let options = RemoteOptions { request_timeout: Duration::from_millis(500), ..pki.remote_options() };
    let clock = RemoteClock::connect_with(addr, options).await.unwrap();
    assert!(clock.now().await.is_ok());

    // A clean restart: the client is told the connection closed, so the
    // next call dials the new server at once.
    server.stop(Stop::Graceful);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let e = clock.now().await.unwrap_err();
    assert!(matches!(e, RemoteError::Handshake { .. } | RemoteError::Timeout { .. }), "nobody there: {e:?}");
    let server = TestServer::start_on(addr, pki.server_config(false), Behavior::answer());
    clock.now().await.unwrap();

    // A crash: nothing tells the client; the first call may fail (timeout or
    // a lost connection), and is not retried; the next one dials again.
    server.stop(Stop::Crash);
    let server = TestServer::start_on(addr, pki.server_config(false), Behavior::answer());
    let mut failures = 0;
    let started = Instant::now();
    loop {
        match clock.now().await {
            Ok(interval) => {
                assert_eq!(interval.earliest(), server_interval().earliest());
                break;
            }
            Err(e @ (RemoteError::Timeout { .. } | RemoteError::ConnectionLost { .. })) => {
                failures += 1;
                assert!(failures <= 1, "a second failure after a restart: {e:?}");
            }
            Err(e) => panic!("unexpected error after a crash: {e:?}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(server);
}

#[tokio::test]
async fn status_and_site_report_are_the_server_report_owned() {
    let pki = Pki::new("status");
    let server = TestServer::start(pki.server_config(false), Behavior::answer());
    let clock = RemoteClock::connect(server.addr, SERVER_NAME, &pki.ca_path).await.unwrap();
    assert_eq!(clock.status().await.unwrap(), ClockStatus::Degraded);
    let report = clock.site_report().await.unwrap();
    assert_eq!(report.site, "site-a");
    assert_eq!(report.generation, 42);
    assert_eq!(report.local_status, ClockStatus::Synchronized);
    assert_eq!(report.half_width, Some(Duration::from_micros(25)));
    assert_eq!(report.drift_bound, Ppb::from_ppm(15));
    assert_eq!(report.sources.len(), 2);
    let peer = &report.sources[1];
    assert_eq!(
        (peer.kind, peer.name.as_str(), peer.usable, peer.falseticker),
        (SourceKind::Peer, "site-b", true, true)
    );
    assert_eq!(peer.offset, Offset::from_nanos(900_000));
    assert_eq!(peer.error, Duration::from_micros(80));
}

#[tokio::test]
async fn mutual_tls_with_a_client_certificate_from_the_cluster_ca() {
    let pki = Pki::new("mtls");
    let server = TestServer::start(pki.server_config(true), Behavior::answer());
    let options = RemoteOptions {
        client_identity: Some((pki.client_cert.clone(), pki.client_key.clone())),
        request_timeout: Duration::from_millis(500),
        ..pki.remote_options()
    };
    let clock = RemoteClock::connect_with(server.addr, options).await.unwrap();
    assert!(clock.now().await.is_ok());

    // Without a certificate the server refuses: at the handshake, or (TLS 1.3
    // client auth finishing after the client's side) on the first request
    // (which may be one connect sends, or arrive while it returns).
    let options = RemoteOptions { request_timeout: Duration::from_millis(500), ..pki.remote_options() };
    match RemoteClock::connect_with(server.addr, options).await {
        Err(e) => assert!(
            matches!(
                e,
                RemoteError::Handshake { .. } | RemoteError::ConnectionLost { .. } | RemoteError::Timeout { .. }
            ),
            "{e:?}"
        ),
        Ok(clock) => {
            let e = clock.now().await.unwrap_err();
            assert!(matches!(e, RemoteError::ConnectionLost { .. } | RemoteError::Timeout { .. }), "{e:?}");
        }
    }
}

/// Clients on one shared socket: each its own connection and TLS session
/// (a client without the certificate the server requires is refused, the
/// others are not), all from the socket's address, and one client going
/// away leaves the others working.
#[tokio::test]
async fn clients_sharing_a_socket_keep_their_own_connections_and_options() {
    let pki = Pki::new("shared-socket");
    let server = TestServer::start(pki.server_config(true), Behavior::answer());
    let socket = ClientSocket::bind((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
    let with_identity = RemoteOptions {
        client_identity: Some((pki.client_cert.clone(), pki.client_key.clone())),
        request_timeout: Duration::from_millis(500),
        socket: Some(socket.clone()),
        ..pki.remote_options()
    };
    let a = RemoteClock::connect_with(server.addr, with_identity.clone()).await.unwrap();
    let b = RemoteClock::connect_with(server.addr, with_identity).await.unwrap();
    a.now().await.unwrap();
    b.now().await.unwrap();
    assert_eq!(server.connections(), 2);
    assert_eq!(server.remotes(), vec![socket.local_addr(); 2], "both from the shared socket");

    // Without the certificate: refused, on the same socket, while a and b go on.
    let anonymous = RemoteOptions {
        request_timeout: Duration::from_millis(500),
        socket: Some(socket.clone()),
        ..pki.remote_options()
    };
    let refused = match RemoteClock::connect_with(server.addr, anonymous).await {
        Err(e) => e,
        Ok(clock) => clock.now().await.unwrap_err(),
    };
    assert!(
        matches!(
            refused,
            RemoteError::Handshake { .. } | RemoteError::ConnectionLost { .. } | RemoteError::Timeout { .. }
        ),
        "{refused:?}"
    );
    drop(a);
    for _ in 0..3 {
        b.now().await.unwrap();
    }
}

#[tokio::test]
async fn a_shared_socket_must_match_the_site_and_excludes_local_address() {
    let pki = Pki::new("shared-socket-options");
    let socket = ClientSocket::bind((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
    let v6_site: SocketAddr = (std::net::Ipv6Addr::LOCALHOST, 9).into();
    let options = RemoteOptions { socket: Some(socket.clone()), ..pki.remote_options() };
    let e = RemoteClock::connect_with(v6_site, options).await.unwrap_err();
    assert!(matches!(&e, RemoteError::InvalidOptions(why) if why.contains("address families")), "{e:?}");
    let options =
        RemoteOptions { socket: Some(socket), local_address: Some(Ipv4Addr::LOCALHOST.into()), ..pki.remote_options() };
    let e = RemoteClock::connect_with((Ipv4Addr::LOCALHOST, 9).into(), options).await.unwrap_err();
    assert!(matches!(&e, RemoteError::InvalidOptions(why) if why.contains("local_address")), "{e:?}");
}

#[tokio::test]
async fn bad_options_and_files_are_typed_errors_before_any_traffic() {
    let pki = Pki::new("options");
    let addr: SocketAddr = (Ipv4Addr::LOCALHOST, 9).into();
    let missing = RemoteOptions::new(pki.dir.0.join("nope.crt"), SERVER_NAME);
    let e = RemoteClock::connect_with(addr, missing).await.unwrap_err();
    assert!(matches!(e, RemoteError::Pem { .. }), "{e:?}");
    std::fs::write(pki.dir.0.join("garbage.crt"), "not a certificate").unwrap();
    let e = RemoteClock::connect_with(addr, RemoteOptions::new(pki.dir.0.join("garbage.crt"), SERVER_NAME))
        .await
        .unwrap_err();
    assert!(matches!(e, RemoteError::Pem { .. }), "{e:?}");
    let e = RemoteClock::connect_with(addr, RemoteOptions { drift_bound: Ppb::new(1_000_001), ..pki.remote_options() })
        .await
        .unwrap_err();
    assert!(matches!(e, RemoteError::InvalidOptions(_)), "{e:?}");
    let e = RemoteClock::connect_with(addr, RemoteOptions { request_timeout: Duration::ZERO, ..pki.remote_options() })
        .await
        .unwrap_err();
    assert!(matches!(e, RemoteError::InvalidOptions(_)), "{e:?}");
    // No server name, or one that is neither a DNS name nor an IP address.
    for name in ["", "site a", "site-a:4460", "[::1]"] {
        let e = RemoteClock::connect(addr, name, &pki.ca_path).await.unwrap_err();
        assert!(matches!(&e, RemoteError::InvalidOptions(why) if why.contains("server_name")), "{name:?}: {e:?}");
    }
    // A key that is not the certificate's.
    let options = RemoteOptions {
        client_identity: Some((pki.client_cert.clone(), pki.dir.0.join("nope.key"))),
        ..pki.remote_options()
    };
    let e = RemoteClock::connect_with(addr, options).await.unwrap_err();
    assert!(matches!(e, RemoteError::Pem { .. }), "{e:?}");
    // Nobody listening: the dial times out (or is refused), boundedly.
    let started = Instant::now();
    let options = RemoteOptions { request_timeout: Duration::from_millis(300), ..pki.remote_options() };
    let e = RemoteClock::connect_with(addr, options).await.unwrap_err();
    assert!(matches!(e, RemoteError::Timeout { .. } | RemoteError::Handshake { .. }), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}
