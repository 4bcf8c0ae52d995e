//! The daemon's one QUIC endpoint: TLS set-up, the accept loop and ALPN
//! routing. Incoming connections are refused (and counted) when they exceed
//! [`MAX_CONNECTIONS`], fail the handshake (foreign CA, expired or missing
//! certificate, no common ALPN), or — on `tsod-peer/1` — present a
//! certificate that names no configured peer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::crypto::rustls::{HandshakeData, QuicClientConfig, QuicServerConfig};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};
use tsod_proto::wire::{ALPN_CLIENT, ALPN_PEER};

use super::{Count, PeerEvent, PeerTable, client_service, peer_link};
use crate::clock::Clock;
use crate::config::{ClientsConfig, PeerConfig, SiteConfig};
use crate::site::SiteView;
use crate::tls::{self, ClientAuth};

/// Connections open at once (peers and clients); more are refused. From a
/// quarter of it on, unvalidated addresses are sent a QUIC Retry first.
pub const MAX_CONNECTIONS: usize = 1_024;
/// Connections open at once from one IP address.
pub const MAX_PER_ADDRESS: usize = 64;
/// Streams a connection may have open at once.
const MAX_STREAMS: u32 = 256;

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

fn transport(dead_after: Duration) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(MAX_STREAMS.into());
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
    t.receive_window(quinn::VarInt::from_u32(1024 * 1024));
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
    let transport = transport(setup.site.dead_after());
    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(quic_server));
    server_config.transport_config(Arc::clone(&transport));
    let mut client_config = quinn::ClientConfig::new(Arc::new(quic_client));
    client_config.transport_config(transport);

    let addr = setup.site.listen;
    let mut endpoint =
        quinn::Endpoint::server(server_config, addr).map_err(|source| EndpointError::Bind { addr, source })?;
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
    let open = Arc::new(AtomicUsize::new(0));
    let per_address: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let setup = Arc::new(setup);
    while let Some(incoming) = endpoint.accept().await {
        let remote = incoming.remote_address();
        let load = open.load(Ordering::Relaxed);
        // Under load, make unvalidated addresses prove they can receive
        // (a QUIC Retry) before they may hold a slot: spoofed floods cannot.
        if load >= MAX_CONNECTIONS / 4 && !incoming.remote_address_validated() {
            if incoming.retry().is_err() {
                peers.counters.bump(Count::OverLimit);
            }
            continue;
        }
        let from_address = per_address
            .lock()
            .map(|mut m| {
                let n = m.entry(remote.ip()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            })
            .unwrap_or(usize::MAX);
        open.fetch_add(1, Ordering::Relaxed);
        let guard = OpenGuard { open: Arc::clone(&open), per_address: Arc::clone(&per_address), ip: remote.ip() };
        if load >= MAX_CONNECTIONS || from_address > MAX_PER_ADDRESS {
            peers.counters.bump(Count::OverLimit);
            debug!(%remote, "refusing a connection: too many open");
            incoming.refuse();
            drop(guard);
            continue;
        }
        let (setup, clock, view, peers) = (Arc::clone(&setup), Arc::clone(&clock), view.clone(), Arc::clone(&peers));
        tokio::spawn(async move {
            let _guard = guard;
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    peers.counters.bump(Count::HandshakeRefused);
                    warn!(%remote, error = %e, "refused a connection: handshake failed");
                    return;
                }
            };
            route(conn, &setup, clock, view, peers).await;
        });
    }
}

/// Releases a connection's slots when its task ends.
struct OpenGuard {
    open: Arc<AtomicUsize>,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut m) = self.per_address.lock() {
            if let Some(n) = m.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&self.ip);
                }
            }
        }
    }
}

async fn route(
    conn: quinn::Connection,
    setup: &NetSetup,
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
        peer_link::serve_incoming(conn, index, clock, view, peers).await;
    } else if alpn == ALPN_CLIENT && setup.clients.enabled {
        client_service::serve(conn, setup.clients.max_requests_per_second, setup.site.name.clone(), clock, view, peers)
            .await;
    } else {
        peers.counters.bump(Count::HandshakeRefused);
        conn.close(2u8.into(), b"no protocol");
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
