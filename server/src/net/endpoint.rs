//! The daemon's one QUIC endpoint: TLS set-up, the accept loop and ALPN
//! routing. Incoming connections are refused (and counted) when they exceed
//! [`MAX_CONNECTIONS`], fail the handshake (foreign CA, expired or missing
//! certificate, no common ALPN), or — on `tsod-peer/1` — present a
//! certificate that names no configured peer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use quinn::crypto::rustls::{HandshakeData, QuicClientConfig, QuicServerConfig};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};
use tsod_proto::wire::{ALPN_CLIENT, ALPN_PEER};

use super::{Cluster, Count, PeerEvent, SiteView, client_service, peer_link};
use crate::config::{ClientsConfig, PeerConfig, SiteConfig};
use crate::tls::{self, ClientAuth};

/// Connections open at once (peers and clients); more are refused.
pub const MAX_CONNECTIONS: usize = 1_024;
/// Streams a connection may have open at once.
const MAX_STREAMS: u32 = 64;

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
    Arc::new(t)
}

/// Binds the endpoint, starts the accept loop and one link per peer.
/// Returns the endpoint (to close on shutdown) and the cluster state.
pub fn start(
    setup: NetSetup,
    view: watch::Receiver<SiteView>,
    events: mpsc::Sender<PeerEvent>,
) -> Result<(quinn::Endpoint, Arc<Cluster>), EndpointError> {
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
    let cluster = Arc::new(Cluster::new(setup.peers.iter().map(|p| (p.name.clone(), p.address.to_string()))));
    info!(%addr, site = %setup.site.name, peers = setup.peers.len(), "QUIC endpoint listening");

    for (index, peer) in setup.peers.iter().enumerate() {
        let link = peer_link::Link {
            index,
            peer: peer.clone(),
            site: setup.site.clone(),
            endpoint: endpoint.clone(),
            view: view.clone(),
            events: events.clone(),
            cluster: Arc::clone(&cluster),
        };
        tokio::spawn(link.run());
    }
    tokio::spawn(accept_loop(endpoint.clone(), setup, view, events, Arc::clone(&cluster)));
    Ok((endpoint, cluster))
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    setup: NetSetup,
    view: watch::Receiver<SiteView>,
    events: mpsc::Sender<PeerEvent>,
    cluster: Arc<Cluster>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let setup = Arc::new(setup);
    while let Some(incoming) = endpoint.accept().await {
        if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            cluster.counters.bump(Count::OverLimit);
            debug!(remote = %incoming.remote_address(), "refusing a connection: too many open");
            incoming.refuse();
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let guard = OpenGuard(Arc::clone(&open));
        let (setup, view, events, cluster) = (Arc::clone(&setup), view.clone(), events.clone(), Arc::clone(&cluster));
        tokio::spawn(async move {
            let _guard = guard;
            let remote = incoming.remote_address();
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    cluster.counters.bump(Count::HandshakeRefused);
                    warn!(%remote, error = %e, "refused a connection: handshake failed");
                    return;
                }
            };
            route(conn, &setup, view, events, cluster).await;
        });
    }
}

/// Decrements the open-connection count when a connection's task ends.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn route(
    conn: quinn::Connection,
    setup: &NetSetup,
    view: watch::Receiver<SiteView>,
    events: mpsc::Sender<PeerEvent>,
    cluster: Arc<Cluster>,
) {
    let remote = conn.remote_address();
    let alpn = conn
        .handshake_data()
        .and_then(|d| d.downcast::<HandshakeData>().ok())
        .and_then(|d| d.protocol)
        .unwrap_or_default();
    if alpn == ALPN_PEER {
        let Some(index) = peer_of(&conn, &setup.peers) else {
            cluster.counters.bump(Count::UnknownPeer);
            warn!(%remote, "refused a peer connection: its certificate names no configured peer");
            conn.close(1u8.into(), b"unknown peer");
            return;
        };
        debug!(%remote, peer = %setup.peers.get(index).map_or("", |p| p.name.as_str()), "peer connected to us");
        peer_link::serve_incoming(conn, index, view, cluster).await;
        drop(events);
    } else if alpn == ALPN_CLIENT && setup.clients.enabled {
        client_service::serve(conn, setup.clients.max_requests_per_second, setup.site.name.clone(), view, cluster)
            .await;
    } else {
        cluster.counters.bump(Count::HandshakeRefused);
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
