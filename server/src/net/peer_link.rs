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
use tsod_proto::Timescale;
use tsod_proto::wire::{self, ErrorCode, Message};

use super::{Count, PeerEvent, PeerTable};
use crate::clock::{Clock, ClockReading};
use crate::config::{PeerConfig, SiteConfig};
use crate::engine::detect_disruption;
use crate::peer::probe::{self, BestOf, Prober};
use crate::site::SiteView;
use crate::stream::{error_message, read_one, request_id, write_one};
use crate::tso::network::Direction;
use crate::tso::serve::{self, Origin, RaftOutcome};
use tsod_proto::observe::SiteSummary;

/// Samples kept per peer for the best-of choice, and for how long.
const BEST_OF: usize = 8;
const BEST_OF_MAX_AGE: Duration = Duration::from_secs(64);
/// Redial backoff: from the first to the last, doubling.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
/// A second at most: a site back from a partition rejoins (and its TSO
/// clients are served again) within about a second, for one handshake a
/// second to a peer that is down.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Largest message a peer may send on a stream: Raft requests may fill a
/// whole message (SPEC.md §4.13); the stream and connection receive windows
/// and the stream count bound what a peer can make us hold.
const PEER_STREAM_LIMIT: usize = wire::MAX_MESSAGE_LEN;
/// Longest a peer may take to deliver one stream message.
const STREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The link this site keeps to one peer.
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
    /// Status of the peers.
    pub peers: Arc<PeerTable>,
    /// The local clocks (t1 and t4 are full readings, so a suspend between
    /// them is seen).
    pub clock: Arc<dyn Clock>,
    /// `clock.max-sample-age`: samples older than this are not kept.
    pub max_sample_age: Duration,
}

/// What probing one peer remembers across connections.
struct Probing {
    prober: Prober,
    best: BestOf,
    /// The last clock reading taken for this peer: each new one is checked
    /// against it, so a suspend or step anywhere between a probe's t1 and
    /// its reply's t4 is seen before the reply is used.
    last: Option<ClockReading>,
}

impl Probing {
    /// A fresh reading; on a disruption since the last one, every
    /// outstanding probe and kept sample is forgotten (none can be carried
    /// across it) and `None` is returned for this event.
    fn look(&mut self, clock: &dyn Clock, peer: &str) -> Option<ClockReading> {
        let now = clock.read().ok()?;
        let disrupted = self.last.and_then(|last| detect_disruption(&last, &now));
        self.last = Some(now);
        if let Some(d) = disrupted {
            warn!(%peer, ?d, "clock disruption: forgetting outstanding probes and kept samples");
            self.prober.clear();
            self.best.clear();
            return None;
        }
        Some(now)
    }
}

impl Link {
    /// Dials, probes and gossips until the daemon stops; redials with
    /// backoff whenever the connection is lost.
    pub async fn run(self) {
        let mut backoff = BACKOFF_FIRST;
        let mut probing = Probing {
            prober: Prober::new(self.site.probe_timeout(), Timescale::UtcSmear24h),
            best: BestOf::new(BEST_OF, BEST_OF_MAX_AGE.min(self.max_sample_age)),
            last: None,
        };
        loop {
            match self.dial().await {
                Ok(conn) => {
                    info!(peer = %self.peer.name, addr = %self.peer.address, "connected to peer");
                    self.peers.update(self.index, |p| {
                        p.connected = true;
                        p.connects = p.connects.saturating_add(1);
                    });
                    backoff = BACKOFF_FIRST;
                    self.peers.conns.set(&self.peer.name, Direction::Outgoing, Some(conn.clone()));
                    let why = self.session(&conn, &mut probing).await;
                    self.peers.conns.clear(&self.peer.name, Direction::Outgoing, &conn);
                    probing.prober.clear();
                    self.peers.update(self.index, |p| p.connected = false);
                    warn!(peer = %self.peer.name, reason = %why, "lost the peer; redialling");
                }
                Err(e) => {
                    let changed = self.peers.update_returning(self.index, |p| {
                        p.dial_failures = p.dial_failures.saturating_add(1);
                        let changed = p.last_dial_error.as_deref() != Some(e.as_str());
                        p.last_dial_error = Some(e.clone());
                        changed
                    });
                    if changed == Some(true) {
                        warn!(peer = %self.peer.name, error = %e, "cannot connect to the peer (retrying)");
                    } else {
                        debug!(peer = %self.peer.name, error = %e, "cannot connect to the peer");
                    }
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
    async fn session(&self, conn: &quinn::Connection, probing: &mut Probing) -> String {
        let rng = SystemRandom::new();
        let mut probe_every = tokio::time::interval(self.site.probe_interval());
        probe_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut gossip_every = tokio::time::interval(self.site.gossip_interval());
        gossip_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let generation = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(AtomicU64::new(0));
        let mut changes = self.view.clone();
        let mut last_gist: Option<ReportGist> = None;
        loop {
            tokio::select! {
                // A report that changed in substance (status, falsetickers)
                // goes out at once; the periodic one follows as usual.
                Ok(()) = changes.changed() => {
                    let report = changes.borrow_and_update().report.clone();
                    let gist = ReportGist::of(&report);
                    if last_gist.as_ref() == Some(&gist) {
                        continue;
                    }
                    last_gist = Some(gist);
                    let n = generation.fetch_add(1, Ordering::Relaxed);
                    let Ok(bytes) = Message::Gossip(report.to_wire(n)).to_vec() else { continue };
                    tokio::spawn(send_gossip(conn.clone(), bytes));
                }
                _ = probe_every.tick() => {
                    let mut nonce = [0u8; 8];
                    if rng.fill(&mut nonce).is_err() {
                        return "no randomness from the OS for a probe nonce".into();
                    }
                    let Some(t1) = probing.look(self.clock.as_ref(), &self.peer.name) else { continue };
                    let request = probing.prober.request(u64::from_ne_bytes(nonce), t1.raw);
                    let Ok(bytes) = Message::ProbeRequest(request).to_vec() else { continue };
                    if let Err(e) = conn.send_datagram(Bytes::from(bytes)) {
                        return format!("sending a probe: {e}");
                    }
                    self.peers.update(self.index, |p| p.probes_sent = p.probes_sent.saturating_add(1));
                }
                _ = gossip_every.tick() => {
                    let report = self.view.borrow().report.clone();
                    last_gist = Some(ReportGist::of(&report));
                    let n = generation.fetch_add(1, Ordering::Relaxed);
                    let Ok(bytes) = Message::Gossip(report.to_wire(n)).to_vec() else { continue };
                    tokio::spawn(send_gossip(conn.clone(), bytes));
                }
                datagram = conn.read_datagram() => {
                    let bytes = match datagram {
                        Ok(b) => b,
                        Err(e) => return e.to_string(),
                    };
                    let Some(t4) = probing.look(self.clock.as_ref(), &self.peer.name) else { continue };
                    self.on_datagram(conn, &bytes, t4, probing).await;
                }
                stream = conn.accept_bi() => {
                    match stream {
                        Ok((send, recv)) => {
                            tokio::spawn(serve_stream(send, recv, self.index, Arc::clone(&self.peers), Arc::clone(&seen)));
                        }
                        Err(e) => return e.to_string(),
                    }
                }
            }
        }
    }

    async fn on_datagram(&self, conn: &quinn::Connection, bytes: &[u8], t4: ClockReading, probing: &mut Probing) {
        match wire::decode(bytes) {
            Ok(Message::ProbeReply(reply)) => {
                let Some(drift) = self.view.borrow().drift else {
                    let reason = "no drift model for the local clock yet".to_owned();
                    let _ = self.events.send(PeerEvent::Reject { peer: self.index, reason }).await;
                    return;
                };
                let t4 = t4.raw;
                match probing.prober.on_reply(&reply, t4, drift, self.site.max_round_trip()) {
                    Ok(sample) => {
                        let rtt = t4.as_nanos().saturating_sub(reply.requester_send.as_nanos());
                        self.peers.conns.record_round_trip(&self.peer.name, Duration::from_nanos(rtt));
                        self.peers.update(self.index, |p| {
                            p.replies_used = p.replies_used.saturating_add(1);
                            p.last_round_trip_ns = Some(rtt);
                        });
                        let sample = probing.best.push(sample, drift);
                        let _ = self.events.send(PeerEvent::Sample { peer: self.index, sample }).await;
                    }
                    Err(reject) => {
                        self.peers.update(self.index, |p| p.replies_refused = p.replies_refused.saturating_add(1));
                        let _ =
                            self.events.send(PeerEvent::Reject { peer: self.index, reason: reject.to_string() }).await;
                    }
                }
            }
            Ok(Message::ProbeRequest(request)) => answer_probe(conn, &request, t4, self.clock.as_ref(), &self.view),
            _ => self.peers.counters.bump(Count::BadDatagram),
        }
    }
}

/// What makes a report worth sending at once: the statuses and which
/// sources are usable or falsetickers (half-widths change every tick).
#[derive(Debug, PartialEq, Eq)]
struct ReportGist {
    status: tsod_proto::ClockStatus,
    local_status: tsod_proto::ClockStatus,
    sources: Vec<(bool, bool)>,
}

impl ReportGist {
    fn of(report: &SiteSummary) -> Self {
        Self {
            status: report.status,
            local_status: report.local_status,
            sources: report.sources.iter().map(|s| (s.usable, s.falseticker)).collect(),
        }
    }
}

/// Answers one probe request received at `t2` from the local basis.
fn answer_probe(
    conn: &quinn::Connection,
    request: &wire::ProbeRequest,
    t2: ClockReading,
    clock: &dyn Clock,
    view: &watch::Receiver<SiteView>,
) {
    let basis = view.borrow().local;
    let Ok(t3) = clock.read() else { return };
    let reply = probe::answer(request, &basis, &t2, &t3, Timescale::UtcSmear24h);
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
        let answer = read_one(&mut recv, PEER_STREAM_LIMIT).await.map_err(|e| e.to_string())?;
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
    clock: Arc<dyn Clock>,
    view: watch::Receiver<SiteView>,
    peers: Arc<PeerTable>,
) {
    let seen = Arc::new(AtomicU64::new(0));
    let name = peers.update_returning(index, |p| p.name.clone()).unwrap_or_default();
    peers.conns.set(&name, Direction::Incoming, Some(conn.clone()));
    serve_incoming_until_closed(&conn, index, clock, view, &peers, seen).await;
    peers.conns.clear(&name, Direction::Incoming, &conn);
}

async fn serve_incoming_until_closed(
    conn: &quinn::Connection,
    index: usize,
    clock: Arc<dyn Clock>,
    view: watch::Receiver<SiteView>,
    peers: &Arc<PeerTable>,
    seen: Arc<AtomicU64>,
) {
    loop {
        tokio::select! {
            datagram = conn.read_datagram() => {
                let Ok(bytes) = datagram else { return };
                let Ok(t2) = clock.read() else { continue };
                match wire::decode(&bytes) {
                    Ok(Message::ProbeRequest(request)) => answer_probe(conn, &request, t2, clock.as_ref(), &view),
                    _ => peers.counters.bump(Count::BadDatagram),
                }
            }
            stream = conn.accept_bi() => {
                let Ok((send, recv)) = stream else { return };
                tokio::spawn(serve_stream(send, recv, index, Arc::clone(peers), Arc::clone(&seen)));
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
    peers: Arc<PeerTable>,
    seen: Arc<AtomicU64>,
) {
    let Ok(Ok(bytes)) = tokio::time::timeout(STREAM_TIMEOUT, read_one(&mut recv, PEER_STREAM_LIMIT)).await else {
        peers.counters.bump(Count::BadMessage);
        return;
    };
    let answer = match wire::decode(&bytes) {
        Ok(Message::Gossip(report)) => {
            let next = report.generation.saturating_add(1);
            if seen.fetch_max(next, Ordering::Relaxed) >= next {
                peers.counters.bump(Count::GossipRefused);
            } else {
                let summary = SiteSummary::from_wire(&report);
                peers.update(index, |p| p.report = Some(summary));
            }
            None
        }
        Ok(Message::TsoRequest(r)) => {
            let tso = peers.tso.get().map(AsRef::as_ref);
            if let Err(e) = serve::answer_tso(tso, &mut send, &r, Origin::Follower).await {
                debug!(error = %e, "answering a forwarded TSO batch");
            }
            return;
        }
        Ok(Message::RaftRequest(m)) => {
            let sender = peers.update_returning(index, |p| p.name.clone()).unwrap_or_default();
            let tso = peers.tso.get().map(AsRef::as_ref);
            if serve::answer_raft(tso, &mut send, &m, &sender).await == RaftOutcome::Refused {
                peers.counters.bump(Count::BadMessage);
            }
            return;
        }
        Ok(other) => {
            peers.counters.bump(Count::BadMessage);
            Some(error_message(request_id(&other), ErrorCode::UnknownKind, "not a request on tsod-peer/1"))
        }
        Err(e) => {
            peers.counters.bump(Count::BadMessage);
            if matches!(e.response_code(), ErrorCode::TimescaleMismatch) {
                peers.counters.bump(Count::GossipRefused);
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tsod_proto::{DriftModel, MonoInstant, Ppb, TimeInterval, Timestamp};

    use super::*;
    use crate::sample::Sample;

    /// Hands out scripted readings in order.
    struct Scripted(Mutex<Vec<ClockReading>>);

    impl Clock for Scripted {
        fn read(&self) -> std::io::Result<ClockReading> {
            self.0.lock().unwrap().pop().ok_or_else(|| std::io::Error::other("script ended"))
        }
    }

    fn reading(raw: u64, boot: u64) -> ClockReading {
        let mono = MonoInstant::from_nanos;
        ClockReading {
            raw: mono(raw),
            monotonic: mono(raw),
            boottime: mono(boot),
            realtime: Timestamp::from_nanos(raw),
            hypervisor_epoch: 0,
        }
    }

    /// A suspend between a probe's t1 and its reply's t4: the reply is not
    /// used, and no sample from before it survives in the best-of choice.
    #[test]
    fn a_suspend_between_probe_and_reply_forgets_everything_before_it() {
        let asleep = 10_000_000_000;
        let mut script = vec![reading(1_000_000, 1_000_000), reading(2_000_000, 2_000_000 + asleep)];
        script.reverse();
        let clock = Scripted(Mutex::new(script));
        let mut probing = Probing {
            prober: Prober::new(Duration::from_secs(2), Timescale::UtcSmear24h),
            best: BestOf::new(8, Duration::from_secs(64)),
            last: None,
        };
        let model = DriftModel::symmetric(Ppb::from_ppm(20)).unwrap();
        let old = Sample {
            at: MonoInstant::from_nanos(500_000),
            interval: TimeInterval::around(Timestamp::from_nanos(1_000_000_000_000), Duration::from_nanos(10)),
        };
        probing.best.push(old, model);
        let t1 = probing.look(&clock, "p").unwrap();
        probing.prober.request(7, t1.raw);
        assert_eq!(probing.look(&clock, "p"), None, "the suspend must be seen at t4");
        assert_eq!(probing.prober.outstanding(), 0);
        // The old sample is gone: a new one is the best.
        let new =
            Sample { at: MonoInstant::from_nanos(3_000_000), interval: old.interval.widened(Duration::from_secs(11)) };
        assert_eq!(probing.best.push(new, model), new);
    }
}
