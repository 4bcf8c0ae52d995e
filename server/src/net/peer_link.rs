//! `tsod-peer/1` connections: the link this site dials to each peer (probes
//! out, samples back, gossip out) and the connections peers dial to us
//! (probes answered from the local basis, gossip kept for status).
//!
//! Probes are datagrams: a lost one simply expires, so a retransmission can
//! never stretch a measured round trip. Every datagram is decoded before it
//! is trusted; garbage, the wrong kind and refused replies are dropped and
//! counted, never a panic. Each peer's memory is bounded (outstanding
//! probes, best-of samples, one gossip report).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};
use tsod_client::sys::reader_clock_now;
use tsod_proto::wire::{self, ErrorCode, Message};
use tsod_proto::{MonoInstant, Timescale};

use super::stream::{error_message, read_one, request_id, write_one};
use super::{Cluster, Count, PeerEvent, SiteView};
use crate::config::{PeerConfig, SiteConfig};
use crate::peer::probe::{self, BestOf, Prober};
use crate::status_file::SiteSummary;

/// Samples kept per peer for the best-of choice, and for how long.
const BEST_OF: usize = 8;
const BEST_OF_MAX_AGE: Duration = Duration::from_secs(64);
/// Redial backoff: from the first to the last, doubling.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Longest a peer may take to deliver one stream message.
const STREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The link this site keeps to one peer.
#[derive(Debug)]
pub struct Link {
    /// Index of the peer in the configuration.
    pub index: usize,
    /// The peer.
    pub peer: PeerConfig,
    /// This site.
    pub site: SiteConfig,
    /// The endpoint to dial from.
    pub endpoint: quinn::Endpoint,
    /// The engine's latest results.
    pub view: watch::Receiver<SiteView>,
    /// Samples and refusals for the main loop.
    pub events: mpsc::Sender<PeerEvent>,
    /// Status of the cluster.
    pub cluster: Arc<Cluster>,
}

impl Link {
    /// Dials, probes and gossips until the daemon stops; redials with
    /// backoff whenever the connection is lost.
    pub async fn run(self) {
        let mut backoff = BACKOFF_FIRST;
        let mut best = BestOf::new(BEST_OF, BEST_OF_MAX_AGE);
        loop {
            match self.dial().await {
                Ok(conn) => {
                    info!(peer = %self.peer.name, addr = %self.peer.address, "connected to peer");
                    self.cluster.update(self.index, |p| {
                        p.connected = true;
                        p.connects = p.connects.saturating_add(1);
                    });
                    backoff = BACKOFF_FIRST;
                    let why = self.session(&conn, &mut best).await;
                    self.cluster.update(self.index, |p| p.connected = false);
                    warn!(peer = %self.peer.name, reason = %why, "lost the peer; redialling");
                }
                Err(e) => {
                    debug!(peer = %self.peer.name, error = %e, "cannot reach the peer");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2).min(BACKOFF_MAX);
        }
    }

    async fn dial(&self) -> Result<quinn::Connection, String> {
        let connecting = self.endpoint.connect(self.peer.address, &self.peer.name).map_err(|e| e.to_string())?;
        match tokio::time::timeout(self.site.dead_after(), connecting).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("handshake timed out".into()),
        }
    }

    /// One connection's life: returns why it ended.
    async fn session(&self, conn: &quinn::Connection, best: &mut BestOf) -> String {
        let mut prober = Prober::new(self.site.probe_timeout(), Timescale::UtcSmear24h);
        let rng = SystemRandom::new();
        let mut probe_every = tokio::time::interval(self.site.probe_interval());
        probe_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut gossip_every = tokio::time::interval(self.site.gossip_interval());
        gossip_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let generation = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(AtomicU64::new(0));
        loop {
            tokio::select! {
                _ = probe_every.tick() => {
                    let mut nonce = [0u8; 8];
                    if rng.fill(&mut nonce).is_err() {
                        return "no randomness from the OS for a probe nonce".into();
                    }
                    let Ok(t1) = reader_clock_now() else { continue };
                    let request = prober.request(u64::from_ne_bytes(nonce), t1);
                    let Ok(bytes) = Message::ProbeRequest(request).to_vec() else { continue };
                    if let Err(e) = conn.send_datagram(Bytes::from(bytes)) {
                        return format!("sending a probe: {e}");
                    }
                    self.cluster.update(self.index, |p| p.probes_sent = p.probes_sent.saturating_add(1));
                }
                _ = gossip_every.tick() => {
                    let report = self.view.borrow().report.clone();
                    let n = generation.fetch_add(1, Ordering::Relaxed);
                    let Ok(bytes) = Message::Gossip(report.to_wire(n)).to_vec() else { continue };
                    tokio::spawn(send_gossip(conn.clone(), bytes));
                }
                datagram = conn.read_datagram() => {
                    let bytes = match datagram {
                        Ok(b) => b,
                        Err(e) => return e.to_string(),
                    };
                    let Ok(t4) = reader_clock_now() else { continue };
                    self.on_datagram(conn, &bytes, t4, &mut prober, best).await;
                }
                stream = conn.accept_bi() => {
                    match stream {
                        Ok((send, recv)) => {
                            tokio::spawn(serve_stream(send, recv, self.index, Arc::clone(&self.cluster), Arc::clone(&seen)));
                        }
                        Err(e) => return e.to_string(),
                    }
                }
            }
        }
    }

    async fn on_datagram(
        &self,
        conn: &quinn::Connection,
        bytes: &[u8],
        t4: MonoInstant,
        prober: &mut Prober,
        best: &mut BestOf,
    ) {
        match wire::decode(bytes) {
            Ok(Message::ProbeReply(reply)) => {
                let drift = self.view.borrow().drift;
                match prober.on_reply(&reply, t4, drift, self.site.max_round_trip()) {
                    Ok(sample) => {
                        let rtt = t4.as_nanos().saturating_sub(reply.requester_send.as_nanos());
                        self.cluster.update(self.index, |p| {
                            p.replies_used = p.replies_used.saturating_add(1);
                            p.last_round_trip_ns = Some(rtt);
                        });
                        let sample = best.push(sample, drift);
                        let _ = self.events.send(PeerEvent::Sample { peer: self.index, sample }).await;
                    }
                    Err(reject) => {
                        self.cluster.update(self.index, |p| p.replies_refused = p.replies_refused.saturating_add(1));
                        let _ =
                            self.events.send(PeerEvent::Reject { peer: self.index, reason: reject.to_string() }).await;
                    }
                }
            }
            Ok(Message::ProbeRequest(request)) => answer_probe(conn, &request, t4, &self.view),
            _ => self.cluster.counters.bump(Count::BadDatagram),
        }
    }
}

/// Answers one probe request received at `t2` from the local basis.
fn answer_probe(
    conn: &quinn::Connection,
    request: &wire::ProbeRequest,
    t2: MonoInstant,
    view: &watch::Receiver<SiteView>,
) {
    let basis = view.borrow().local;
    let Ok(t3) = reader_clock_now() else { return };
    let reply = probe::answer(request, &basis, t2, t3, Timescale::UtcSmear24h);
    if let Ok(bytes) = Message::ProbeReply(reply).to_vec() {
        // A reply that cannot be sent (connection closing, datagrams
        // disabled) is simply lost, like any datagram.
        let _ = conn.send_datagram(Bytes::from(bytes));
    }
}

async fn send_gossip(conn: quinn::Connection, bytes: Vec<u8>) {
    let exchange = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        send.write_all(&bytes).await.map_err(|e| e.to_string())?;
        send.finish().map_err(|e| e.to_string())?;
        let answer = read_one(&mut recv).await.map_err(|e| e.to_string())?;
        if answer.is_empty() {
            return Ok(());
        }
        match wire::decode(&answer) {
            Ok(Message::Error(e)) => Err(format!("peer refused our report: {} {}", e.code, e.message)),
            _ => Err("unexpected answer to gossip".to_owned()),
        }
    };
    match tokio::time::timeout(STREAM_TIMEOUT, exchange).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(error = %e, "gossip not delivered"),
        Err(_) => debug!("gossip timed out"),
    }
}

/// Serves a connection a peer dialled to us until it closes: answers its
/// probes, keeps its gossip.
pub async fn serve_incoming(
    conn: quinn::Connection,
    index: usize,
    view: watch::Receiver<SiteView>,
    cluster: Arc<Cluster>,
) {
    let seen = Arc::new(AtomicU64::new(0));
    loop {
        tokio::select! {
            datagram = conn.read_datagram() => {
                let Ok(bytes) = datagram else { return };
                let Ok(t2) = reader_clock_now() else { continue };
                match wire::decode(&bytes) {
                    Ok(Message::ProbeRequest(request)) => answer_probe(&conn, &request, t2, &view),
                    _ => cluster.counters.bump(Count::BadDatagram),
                }
            }
            stream = conn.accept_bi() => {
                let Ok((send, recv)) = stream else { return };
                tokio::spawn(serve_stream(send, recv, index, Arc::clone(&cluster), Arc::clone(&seen)));
            }
        }
    }
}

/// One stream from a peer: gossip (kept if newer than the last seen on this
/// connection; `seen` holds the last generation + 1) or a request we refuse.
async fn serve_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    index: usize,
    cluster: Arc<Cluster>,
    seen: Arc<AtomicU64>,
) {
    let Ok(Ok(bytes)) = tokio::time::timeout(STREAM_TIMEOUT, read_one(&mut recv)).await else {
        cluster.counters.bump(Count::BadMessage);
        return;
    };
    let answer = match wire::decode(&bytes) {
        Ok(Message::Gossip(report)) => {
            let next = report.generation.saturating_add(1);
            if seen.fetch_max(next, Ordering::Relaxed) >= next {
                cluster.counters.bump(Count::GossipRefused);
            } else {
                let summary = SiteSummary::from_wire(&report);
                cluster.update(index, |p| p.report = Some(summary));
            }
            None
        }
        Ok(Message::TsoRequest(r)) => {
            Some(error_message(r.request_id, ErrorCode::TsoUnavailable, "this site does not serve TSO yet"))
        }
        Ok(other) => {
            cluster.counters.bump(Count::BadMessage);
            Some(error_message(request_id(&other), ErrorCode::UnknownKind, "not a request on tsod-peer/1"))
        }
        Err(e) => {
            cluster.counters.bump(Count::BadMessage);
            if matches!(e.response_code(), ErrorCode::TimescaleMismatch) {
                cluster.counters.bump(Count::GossipRefused);
            }
            Some(error_message(0, e.response_code(), e.name()))
        }
    };
    let done = match answer {
        Some(message) => write_one(&mut send, &message).await.map_err(|e| e.to_string()),
        None => send.finish().map_err(|e| e.to_string()),
    };
    if let Err(e) = done {
        debug!(error = %e, "answering a peer stream");
    }
}
