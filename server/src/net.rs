//! The QUIC shell: one endpoint per daemon, routed by ALPN (SPEC.md §4.1).
//!
//! * `tsod-peer/1` ([`peer_link`]): this site dials every configured peer and
//!   keeps that connection alive (redialled with backoff when lost; a peer
//!   silent for `dead-after` is dead). On it the site sends probes as
//!   datagrams (the replies become samples for the engine) and gossips its
//!   report on streams. Connections a peer dials to us are served the same
//!   way: probe requests are answered from our local basis, gossip is kept
//!   for `tsod status`.
//! * `tsod-client/1` ([`client_service`]): now, status and TSO requests from
//!   remote clients, with a per-connection rate limit.
//!
//! Authentication is mutual TLS against the cluster CA ([`crate::tls`]); a
//! peer connection must also present a certificate naming a configured peer.
//! Every refusal is logged and counted ([`Counters`]).
//!
//! The shell holds no time logic: the engine's latest results arrive as a
//! [`SiteView`](crate::site::SiteView) on a watch channel, probe math is [`crate::peer::probe`].

pub mod admission;
pub mod cid;
pub mod client_service;
pub mod endpoint;
pub mod limit;
pub mod peer_link;
pub mod udp;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tsod_proto::observe::{EndpointCounters, PeerSnapshot};

use crate::sample::Sample;
use crate::tso::network::PeerConns;
use crate::tso::node::TsoNode;

/// What the shell tells the main loop about peers.
#[derive(Debug)]
pub enum PeerEvent {
    /// A sample from peer `peer` (index into the configured peers).
    Sample {
        /// Which peer.
        peer: usize,
        /// The sample (best of its recent ones).
        sample: Sample,
    },
    /// A probe reply from `peer` was refused.
    Reject {
        /// Which peer.
        peer: usize,
        /// Why.
        reason: String,
    },
}

/// Refusal counters of the endpoint.
#[derive(Debug, Default)]
pub struct Counters {
    handshakes_refused: AtomicU64,
    unknown_peers: AtomicU64,
    connections_over_limit: AtomicU64,
    bad_datagrams: AtomicU64,
    bad_messages: AtomicU64,
    gossip_refused: AtomicU64,
    rate_limited: AtomicU64,
    client_requests: AtomicU64,
}

/// Which counter to bump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// A failed handshake.
    HandshakeRefused,
    /// A peer certificate naming no configured peer.
    UnknownPeer,
    /// Too many connections.
    OverLimit,
    /// A datagram that did not decode or was the wrong kind.
    BadDatagram,
    /// A stream message that did not decode or was the wrong kind.
    BadMessage,
    /// A refused gossip report.
    GossipRefused,
    /// A rate-limited client request.
    RateLimited,
    /// A client request answered.
    ClientRequest,
}

impl Counters {
    /// Adds one.
    pub fn bump(&self, which: Count) {
        let counter = match which {
            Count::HandshakeRefused => &self.handshakes_refused,
            Count::UnknownPeer => &self.unknown_peers,
            Count::OverLimit => &self.connections_over_limit,
            Count::BadDatagram => &self.bad_datagrams,
            Count::BadMessage => &self.bad_messages,
            Count::GossipRefused => &self.gossip_refused,
            Count::RateLimited => &self.rate_limited,
            Count::ClientRequest => &self.client_requests,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> EndpointCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EndpointCounters {
            handshakes_refused: get(&self.handshakes_refused),
            unknown_peers: get(&self.unknown_peers),
            connections_over_limit: get(&self.connections_over_limit),
            bad_datagrams: get(&self.bad_datagrams),
            bad_messages: get(&self.bad_messages),
            gossip_refused: get(&self.gossip_refused),
            rate_limited: get(&self.rate_limited),
            client_requests: get(&self.client_requests),
        }
    }
}

/// The other sites as this site sees them: one entry per configured peer,
/// the live connections, the endpoint's counters and the TSO it serves.
#[derive(Debug)]
pub struct PeerTable {
    peers: Vec<Mutex<PeerSnapshot>>,
    /// The endpoint's counters.
    pub counters: Counters,
    /// The live connection this site dialled to each peer (Raft and TSO
    /// forwarding use it).
    pub conns: Arc<PeerConns>,
    /// The TSO, once started (requests before that are unavailable).
    pub tso: OnceLock<Arc<TsoNode>>,
}

impl PeerTable {
    /// Entries for `peers` (name, address).
    pub fn new(peers: impl IntoIterator<Item = (String, String)>) -> Self {
        let peers: Vec<(String, String)> = peers.into_iter().collect();
        Self {
            conns: Arc::new(PeerConns::new(peers.iter().map(|(name, _)| name.clone()))),
            peers: peers
                .into_iter()
                .map(|(name, address)| Mutex::new(PeerSnapshot { name, address, ..PeerSnapshot::default() }))
                .collect(),
            counters: Counters::default(),
            tso: OnceLock::new(),
        }
    }

    /// Changes peer `index`'s entry (a poisoned lock is recovered: the
    /// entry is plain data, for display only).
    pub fn update(&self, index: usize, f: impl FnOnce(&mut PeerSnapshot)) {
        if let Some(entry) = self.peers.get(index) {
            let mut guard = entry.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut guard);
        }
    }

    /// Changes peer `index`'s entry and returns what `f` returned (`None`
    /// for an index that is not configured).
    pub fn update_returning<T>(&self, index: usize, f: impl FnOnce(&mut PeerSnapshot) -> T) -> Option<T> {
        let entry = self.peers.get(index)?;
        let mut guard = entry.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(f(&mut guard))
    }

    /// Every peer's entry.
    pub fn snapshot(&self) -> Vec<PeerSnapshot> {
        self.peers.iter().map(|p| p.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()).collect()
    }

    /// How many peers are configured.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// No peers configured.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}
