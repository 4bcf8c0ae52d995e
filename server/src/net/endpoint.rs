//! The daemon's one QUIC endpoint: TLS set-up, the accept loop and ALPN
//! routing. Incoming connections are refused (and counted) when they find
//! no slot ([`super::admission`]: configured peers' addresses have their
//! own, everyone else shares handshake and client slots with a share per
//! /24 or /64), take longer than [`HANDSHAKE_TIMEOUT`] to handshake, fail
//! the handshake (foreign CA, expired or missing certificate, no common
//! ALPN), or — on `tsod-peer/1` — present a certificate that names no
//! configured peer. Client connections get smaller windows than peers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{HandshakeData, QuicClientConfig, QuicServerConfig};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};
use tsod_proto::wire::{ALPN_CLIENT, ALPN_PEER};

use super::admission::{Admission, Limits, Slot};
use super::limit::{ClientIdentity, ClientLimits};
use super::{Count, PeerEvent, PeerTable, client_service, peer_link, udp};
use crate::clock::Clock;
use crate::config::{ClientsConfig, PeerConfig, SiteConfig};
use crate::site::SiteView;
use crate::tls::{self, ClientAuth};

/// From this many handshakes and client connections held on, unvalidated
/// addresses are sent a QUIC Retry first (spoofed floods cannot answer it).
pub const RETRY_FROM: usize = 256;
/// Longest a handshake may take before its slot is freed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Streams a peer connection may have open at once.
const MAX_STREAMS: u32 = 256;
/// A peer connection's receive window.
const PEER_WINDOW: u32 = 1024 * 1024;
/// Streams a client connection may have open at once (a TSO client keeps
/// up to `TsoOptions::max_in_flight`, 64 by default, in flight). An
/// incoming connection starts with the client limits and is raised to the
/// peers' once its certificate names a peer: quinn keeps the state of
/// every stream slot a connection has used (its buffer too) until the
/// connection closes, so the limit granted in the handshake is what a
/// client connection costs once settled (BENCHMARKS.md, "Clients per
/// site").
const CLIENT_STREAMS: u32 = 64;
/// A client connection's receive window.
const CLIENT_WINDOW: u32 = 256 * 1024;

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// Certificates or keys could not be loaded or used.
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// rustls configuration not usable for QUIC.
    #[error("QUIC TLS configuration: {0}")]
    QuicTls(String),
    /// The UDP socket could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Everything the endpoint needs.
#[derive(Clone, Debug)]
pub struct NetSetup {
    /// `[site]`.
    pub site: SiteConfig,
    /// `[[peer]]`.
    pub peers: Vec<PeerConfig>,
    /// `[clients]`.
    pub clients: ClientsConfig,
    /// `clock.max-sample-age`: peer samples older than this are not kept.
    pub max_sample_age: Duration,
}

/// Transport settings; `streams` and `window` are the limits granted in
/// the handshake (`MAX_STREAMS`/`PEER_WINDOW` on the connections we dial,
/// the clients' on those we accept).
fn transport(dead_after: Duration, streams: u32, window: u32) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(streams.into());
    t.max_concurrent_uni_streams(0u8.into());
    // Dead-peer detection: silence for `dead_after` closes the connection;
    // keep-alives at a third of it keep a healthy but idle link open.
    t.max_idle_timeout(quinn::IdleTimeout::try_from(dead_after).ok());
    t.keep_alive_interval(Some(dead_after / 3));
    t.datagram_receive_buffer_size(Some(64 * 1024));
    t.packet_threshold(tsod_client::REORDERING_PACKETS);
    // Flow control keeps what a stalled or hostile sender can make us buffer
    // small: messages are at most 64 KiB, most far smaller.
    t.stream_receive_window(quinn::VarInt::from_u32(64 * 1024));
    t.receive_window(quinn::VarInt::from_u32(window));
    Arc::new(t)
}

/// Binds the endpoint, starts the accept loop and one link per peer.
/// Returns the endpoint (to close on shutdown) and the peers state.
pub fn start(
    setup: NetSetup,
    clock: Arc<dyn Clock>,
    view: watch::Receiver<SiteView>,
    events: mpsc::Sender<PeerEvent>,
) -> Result<(quinn::Endpoint, Arc<PeerTable>), EndpointError> {
    let dir = &setup.site.cluster_dir;
    let roots = tls::load_roots(dir)?;
    let client_auth = if setup.clients.enabled && setup.clients.allow_anonymous {
        ClientAuth::Optional
    } else {
        ClientAuth::Required
    };
    let alpn: Vec<&[u8]> = if setup.clients.enabled { vec![ALPN_PEER, ALPN_CLIENT] } else { vec![ALPN_PEER] };
    let server_tls =
        tls::server_config(Arc::clone(&roots), tls::load_identity(dir, &setup.site.name)?, &alpn, client_auth)?;
    let client_tls = tls::client_config(roots, tls::load_identity(dir, &setup.site.name)?, &[ALPN_PEER])?;
    let quic_server = QuicServerConfig::try_from(server_tls).map_err(|e| EndpointError::QuicTls(e.to_string()))?;
    let quic_client = QuicClientConfig::try_from(client_tls).map_err(|e| EndpointError::QuicTls(e.to_string()))?;
    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(quic_server));
    server_config.transport_config(transport(setup.site.dead_after(), CLIENT_STREAMS, CLIENT_WINDOW));
    let mut client_config = quinn::ClientConfig::new(Arc::new(quic_client));
    client_config.transport_config(transport(setup.site.dead_after(), MAX_STREAMS, PEER_WINDOW));

    let addr = setup.site.listen;
    let bound = udp::bind(addr, setup.site.receive_buffer()).map_err(|source| EndpointError::Bind { addr, source })?;
    if bound.short() {
        warn!(
            %addr,
            asked_kib = bound.asked / 1024,
            granted_kib = bound.granted / 1024,
            "the QUIC socket's receive buffer is smaller than site.receive-buffer-kib: packets arriving while the \
             daemon waits for the CPU may be dropped; raise net.core.rmem_max (sysctl) or give the daemon \
             CAP_NET_ADMIN"
        );
    } else {
        debug!(%addr, granted_kib = bound.granted / 1024, "QUIC socket receive buffer");
    }
    // Connection IDs with 8 random bytes, not quinn's 3 (see `cid`).
    let mut endpoint_config = quinn::EndpointConfig::default();
    endpoint_config.cid_generator(|| Box::new(super::cid::Cids::new()));
    let mut endpoint =
        quinn::Endpoint::new(endpoint_config, Some(server_config), bound.socket, Arc::new(quinn::TokioRuntime))
            .map_err(|source| EndpointError::Bind { addr, source })?;
    endpoint.set_default_client_config(client_config);
    let peers = Arc::new(PeerTable::new(setup.peers.iter().map(|p| (p.name.clone(), p.address.to_string()))));
    info!(%addr, site = %setup.site.name, peers = setup.peers.len(), "QUIC endpoint listening");

    for (index, peer) in setup.peers.iter().enumerate() {
        let link = peer_link::Link {
            index,
            peer: peer.clone(),
            site: setup.site.clone(),
            endpoint: endpoint.clone(),
            view: view.clone(),
            events: events.clone(),
            peers: Arc::clone(&peers),
            clock: Arc::clone(&clock),
            max_sample_age: setup.max_sample_age,
        };
        tokio::spawn(link.run());
    }
    drop(events);
    tokio::spawn(accept_loop(endpoint.clone(), setup, clock, view, Arc::clone(&peers)));
    Ok((endpoint, peers))
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    setup: NetSetup,
    clock: Arc<dyn Clock>,
    view: watch::Receiver<SiteView>,
    peers: Arc<PeerTable>,
) {
    let admission = Admission::new(admission_limits(&setup.clients), setup.peers.iter().map(|p| p.address.ip()));
    let limits = Arc::new(ClientLimits::new(
        setup.clients.max_timestamps_per_second_per_client,
        setup.clients.max_timestamps_per_second,
    ));
    let setup = Arc::new(setup);
    while let Some(incoming) = endpoint.accept().await {
        let remote = incoming.remote_address();
        // Under load, make unvalidated addresses prove they can receive
        // (a QUIC Retry) before they may hold a slot: spoofed floods cannot.
        if admission.load() >= RETRY_FROM && !incoming.remote_address_validated() {
            if incoming.retry().is_err() {
                peers.counters.bump(Count::OverLimit);
            }
            continue;
        }
        let slot = match admission.handshake(remote.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                peers.counters.bump(Count::OverLimit);
                debug!(%remote, %why, "refusing a connection");
                incoming.refuse();
                continue;
            }
        };
        let (setup, clock, view, peers) = (Arc::clone(&setup), Arc::clone(&clock), view.clone(), Arc::clone(&peers));
        let limits = Arc::clone(&limits);
        tokio::spawn(async move {
            let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    peers.counters.bump(Count::HandshakeRefused);
                    warn!(%remote, error = %e, "refused a connection: handshake failed");
                    return;
                }
                Err(_) => {
                    peers.counters.bump(Count::HandshakeRefused);
                    debug!(%remote, "refused a connection: handshake took over {HANDSHAKE_TIMEOUT:?}");
                    return;
                }
            };
            route(conn, slot, &setup, &limits, clock, view, peers).await;
        });
    }
}

/// The admission limits `[clients]` sets (peers' own slots are fixed).
fn admission_limits(clients: &ClientsConfig) -> Limits {
    Limits {
        handshakes: clients.max_handshakes,
        clients: clients.max_connections,
        per_prefix: clients.max_connections_per_prefix,
        per_peer_address: Limits::PER_PEER_ADDRESS,
    }
}

async fn route(
    conn: quinn::Connection,
    slot: Slot,
    setup: &NetSetup,
    limits: &Arc<ClientLimits>,
    clock: Arc<dyn Clock>,
    view: watch::Receiver<SiteView>,
    peers: Arc<PeerTable>,
) {
    let remote = conn.remote_address();
    let alpn = conn
        .handshake_data()
        .and_then(|d| d.downcast::<HandshakeData>().ok())
        .and_then(|d| d.protocol)
        .unwrap_or_default();
    if alpn == ALPN_PEER {
        let Some(index) = peer_of(&conn, &setup.peers) else {
            peers.counters.bump(Count::UnknownPeer);
            warn!(%remote, "refused a peer connection: its certificate names no configured peer");
            conn.close(1u8.into(), b"unknown peer");
            return;
        };
        debug!(%remote, peer = %setup.peers.get(index).map_or("", |p| p.name.as_str()), "peer connected to us");
        conn.set_max_concurrent_bi_streams(MAX_STREAMS.into());
        conn.set_receive_window(PEER_WINDOW.into());
        let _slot = slot.into_other();
        peer_link::serve_incoming(conn, index, clock, view, peers).await;
    } else if alpn == ALPN_CLIENT && setup.clients.enabled {
        let _slot = match slot.into_client() {
            Ok(slot) => slot,
            Err((why, _slot)) => {
                peers.counters.bump(Count::OverLimit);
                debug!(%remote, %why, "refusing a client connection");
                conn.close(3u8.into(), b"busy");
                return;
            }
        };
        let who = client_identity(&conn, remote);
        let rate = setup.clients.max_requests_per_second;
        client_service::serve(conn, rate, Arc::clone(limits), who, setup.site.name.clone(), clock, view, peers).await;
    } else {
        peers.counters.bump(Count::HandshakeRefused);
        conn.close(2u8.into(), b"no protocol");
    }
}

/// Who a client connection is for its limits: its leaf certificate's
/// SHA-256, or, anonymous, the /24 or /64 it comes from.
fn client_identity(conn: &quinn::Connection, remote: SocketAddr) -> ClientIdentity {
    let leaf = conn
        .peer_identity()
        .and_then(|i| i.downcast::<Vec<CertificateDer<'static>>>().ok())
        .and_then(|chain| chain.first().map(|c| ring::digest::digest(&ring::digest::SHA256, c.as_ref())));
    match leaf.and_then(|d| <[u8; 32]>::try_from(d.as_ref()).ok()) {
        Some(hash) => ClientIdentity::Certificate(hash),
        None => ClientIdentity::Anonymous(super::admission::prefix(remote.ip())),
    }
}

/// The configured peer the connection's client certificate names, if any.
fn peer_of(conn: &quinn::Connection, peers: &[PeerConfig]) -> Option<usize> {
    let chain = conn.peer_identity()?.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    let leaf = chain.first()?;
    let parsed = rustls::server::ParsedCertificate::try_from(leaf).ok()?;
    peers.iter().position(|p| {
        ServerName::try_from(p.name.as_str())
            .is_ok_and(|name| rustls::client::verify_server_name(&parsed, &name).is_ok())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use std::net::IpAddr;
    use std::path::Path;

    use super::*;
    use crate::config::Config;
    use crate::net::admission::Refusal;

    fn clients(section: &str) -> ClientsConfig {
        let text = format!(
            "[site]\nname = \"bj-a\"\nlisten = \"127.0.0.1:4460\"\ncluster-dir = \"/c\"\n\
             [[peer]]\nname = \"bj-b\"\naddress = \"127.0.0.2:4460\"\n[clients]\n{section}"
        );
        Config::parse(&text, Path::new("t.toml")).unwrap().clients
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_defaults_are_the_documented_limits() {
        let limits = admission_limits(&clients(""));
        assert_eq!(limits, Limits { handshakes: 256, clients: 1_024, per_prefix: 64, per_peer_address: 8 });
    }

    /// What `[clients]` configures is what the endpoint's admission enforces.
    #[test]
    fn admission_honours_the_configured_limits() {
        let config = clients("max-connections = 5\nmax-connections-per-prefix = 3\nmax-handshakes = 4\n");
        let admission = Admission::new(admission_limits(&config), [ip("127.0.0.2")]);
        // Three from one /24, then that prefix is full.
        let mut held: Vec<_> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
            .into_iter()
            .map(|s| admission.handshake(ip(s)).unwrap().into_client().unwrap())
            .collect();
        assert_eq!(admission.handshake(ip("10.0.0.4")).err(), Some(Refusal::Prefix));
        // Two more clients from elsewhere reach max-connections = 5 …
        for s in ["10.0.1.1", "10.0.2.1"] {
            held.push(admission.handshake(ip(s)).unwrap().into_client().unwrap());
        }
        let (why, refused) = admission.handshake(ip("10.0.3.1")).unwrap().into_client().err().unwrap();
        assert_eq!(why, Refusal::Clients);
        drop(refused);
        // … and four handshakes at once fill max-handshakes = 4.
        let handshakes: Vec<_> = ["10.0.4.1", "10.0.5.1", "10.0.6.1", "10.0.7.1"]
            .into_iter()
            .map(|s| admission.handshake(ip(s)).unwrap())
            .collect();
        assert_eq!(admission.handshake(ip("10.0.8.1")).err(), Some(Refusal::Handshakes));
        // The peer's address keeps its own slots through all of it.
        assert!(admission.handshake(ip("127.0.0.2")).is_ok());
        drop((held, handshakes));
        assert_eq!(admission.load(), 0);

        // Raised, the same admission takes 2 000 clients from 40 /24s.
        let raised = clients("max-connections = 2000\nmax-connections-per-prefix = 50\n");
        let admission = Admission::new(admission_limits(&raised), []);
        let many: Vec<_> = (0..2_000u32)
            .map(|i| {
                let addr = IpAddr::from([10, 1, u8::try_from(i / 50).unwrap(), u8::try_from(i % 50 + 1).unwrap()]);
                admission.handshake(addr).unwrap().into_client().unwrap()
            })
            .collect();
        assert_eq!(admission.load(), 2_000);
        assert_eq!(admission.handshake(ip("10.1.0.200")).err(), Some(Refusal::Prefix));
        let (why, _) = admission.handshake(ip("10.2.0.1")).unwrap().into_client().err().unwrap();
        assert_eq!(why, Refusal::Clients);
        drop(many);
    }
}
