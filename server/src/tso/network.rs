//! Raft RPCs over the `tsod-peer/1` connections (SPEC.md §4.13): each RPC is
//! one stream on the connection this site dialled to the target, carrying a
//! `raft-request` and answered by a `raft-response`.
//!
//! The peer links (`net::peer_link`, which depends on this module, not the
//! other way round) register their live connection in [`PeerConns`]; the
//! Raft side only borrows it. A target
//! without a live connection is `Unreachable` (openraft backs off); an RPC
//! that outlives openraft's time-to-live is abandoned the same way.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{AnyError, BasicNode, Raft};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tsod_proto::wire::{self, MAX_MESSAGE_LEN, MAX_RAFT_PAYLOAD, Message, RaftMessage, RaftRpc};

use super::election::{Campaign, CampaignAnswer};
use super::raft::{Command, NodeId, TsoRaft, TsoState, node_id};
use super::reset::{ResetVoteAnswer, ResetVoteRequest};
use crate::stream::{read_one, write_one};

/// The connections to each peer, by node id: the one this site dialled and
/// the one the peer dialled to us; RPCs use the newest live one (after a
/// peer restarts, our redial may be seconds away in its backoff, and a
/// restarted follower that hears no heartbeat would start an election).
///
/// It also keeps each peer's recent probe round trips, which the TSO's
/// timing is derived from ([`super::timing`]).
#[derive(Debug, Default)]
pub struct PeerConns {
    slots: HashMap<NodeId, (String, RwLock<Both>)>,
    round_trips: HashMap<NodeId, Mutex<VecDeque<Duration>>>,
}

/// Probe round trips kept per peer (about a minute of probes at the
/// default interval).
pub const ROUND_TRIPS_KEPT: usize = 64;

/// A peer's outgoing and incoming connection, indexed by [`Direction`].
/// Each with the instant it was registered.
type Both = [Option<(quinn::Connection, std::time::Instant)>; 2];

/// Which of a peer's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The one this site dialled.
    Outgoing,
    /// The one the peer dialled to us.
    Incoming,
}

impl PeerConns {
    /// Slots for the sites named `peers`.
    pub fn new(peers: impl IntoIterator<Item = String>) -> Self {
        let slots: HashMap<NodeId, (String, RwLock<Both>)> =
            peers.into_iter().map(|name| (node_id(&name), (name, RwLock::new([None, None])))).collect();
        let round_trips = slots.keys().map(|id| (*id, Mutex::new(VecDeque::new()))).collect();
        Self { slots, round_trips }
    }

    /// A probe to `site` came back after `rtt`.
    pub fn record_round_trip(&self, site: &str, rtt: Duration) {
        if let Some(window) = self.round_trips.get(&node_id(site)) {
            let mut window = window.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if window.len() == ROUND_TRIPS_KEPT {
                window.pop_front();
            }
            window.push_back(rtt);
        }
    }

    /// Each peer's round trip, `None` where none was measured, in no
    /// particular order: the 90th percentile of those kept (the largest
    /// while fewer than ten), so one probe delayed by a busy host does not
    /// stretch the whole timing.
    pub fn round_trips(&self) -> Vec<(NodeId, Option<Duration>)> {
        self.round_trips_at(|n| if n < 10 { n.saturating_sub(1) } else { n * 9 / 10 })
    }

    /// Each peer's typical round trip: the median of those kept. What a
    /// site's merit is made of (`election::Merit`): a peer paused or slow
    /// for a moment stretches a probe or two, which must not move the
    /// leadership.
    pub fn typical_round_trips(&self) -> Vec<(NodeId, Option<Duration>)> {
        self.round_trips_at(|n| n / 2)
    }

    /// Each peer's kept round trip at rank `rank(n)` of `n` (ascending).
    fn round_trips_at(&self, rank: impl Fn(usize) -> usize) -> Vec<(NodeId, Option<Duration>)> {
        self.round_trips
            .iter()
            .map(|(id, w)| {
                let mut kept: Vec<Duration> =
                    w.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().copied().collect();
                kept.sort_unstable();
                (*id, kept.get(rank(kept.len())).copied())
            })
            .collect()
    }

    /// The node ids of every peer.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.slots.keys().copied()
    }

    /// The `direction` connection with `site` is up (`Some`) or down (`None`).
    pub fn set(&self, site: &str, direction: Direction, conn: Option<quinn::Connection>) {
        if let Some((_, slot)) = self.slots.get(&node_id(site)) {
            let mut conns = slot.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            conns[direction as usize] = conn.map(|c| (c, std::time::Instant::now()));
        }
    }

    /// `conn` with `site` ended: forgets it unless a newer one replaced it.
    pub fn clear(&self, site: &str, direction: Direction, conn: &quinn::Connection) {
        if let Some((_, slot)) = self.slots.get(&node_id(site)) {
            let mut conns = slot.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            let entry = &mut conns[direction as usize];
            if entry.as_ref().is_some_and(|(c, _)| c.stable_id() == conn.stable_id()) {
                *entry = None;
            }
        }
    }

    /// The newest live connection to node `id`, if any. Newest, because
    /// after the peer restarts, the connection to its old process still
    /// looks alive until the idle timeout, while the one its new process
    /// dialled to us already works.
    pub fn get(&self, id: NodeId) -> Option<quinn::Connection> {
        let (_, slot) = self.slots.get(&id)?;
        let conns = slot.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        conns
            .iter()
            .flatten()
            .filter(|(c, _)| c.close_reason().is_none())
            .max_by_key(|(_, at)| *at)
            .map(|(c, _)| c.clone())
    }

    /// The site name of node `id`.
    pub fn name(&self, id: NodeId) -> Option<&str> {
        self.slots.get(&id).map(|(name, _)| name.as_str())
    }
}

/// The group's digest: hex of the first 8 bytes of SHA-256 over the sorted
/// site names joined by `,`. Every Raft RPC carries it (SPEC.md §4.13); a
/// site configured with a different set of sites refuses the RPC, so sites
/// whose configurations disagree never form quorums together.
pub fn group_digest(sites: &[String]) -> String {
    let mut names: Vec<&str> = sites.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let digest = ring::digest::digest(&ring::digest::SHA256, names.join(",").as_bytes());
    hex::encode(digest.as_ref().get(..8).unwrap_or_default())
}

/// What a `raft-request` payload is: the group digest and openraft's
/// argument.
#[derive(Serialize, serde::Deserialize)]
struct Envelope<T> {
    group: String,
    rpc: T,
}

/// Makes an [`Rpc`] per target.
#[derive(Clone, Debug)]
pub struct Network {
    conns: Arc<PeerConns>,
    next_id: Arc<AtomicU64>,
    group: Arc<str>,
}

impl Network {
    /// RPCs over `conns` for the group with digest `group`.
    pub fn new(conns: Arc<PeerConns>, group: &str) -> Self {
        Self { conns, next_id: Arc::new(AtomicU64::new(1)), group: Arc::from(group) }
    }
}

impl RaftNetworkFactory<TsoRaft> for Network {
    type Network = Rpc;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Rpc {
        Rpc {
            target,
            conns: Arc::clone(&self.conns),
            next_id: Arc::clone(&self.next_id),
            group: Arc::clone(&self.group),
        }
    }
}

/// RPCs to one target.
#[derive(Debug)]
pub struct Rpc {
    target: NodeId,
    conns: Arc<PeerConns>,
    next_id: Arc<AtomicU64>,
    group: Arc<str>,
}

/// Why a call failed before the remote Raft answered.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("no connection to the peer")]
    NoConnection,
    #[error("the peer's TSO is not running (yet)")]
    NotRunning,
    #[error("the RPC timed out after {0:?}")]
    TimedOut(Duration),
    #[error("payload of {0} bytes does not fit one message")]
    TooLarge(usize),
    #[error("{0}")]
    Transport(String),
}

/// Sends `request` as `rpc` to node `target` over its newest live
/// connection, wrapped in the group's envelope, and decodes the answer.
async fn exchange<Q, A>(
    conns: &PeerConns,
    target: NodeId,
    group: &str,
    request_id: u64,
    rpc: RaftRpc,
    request: &Q,
    ttl: Duration,
) -> Result<A, CallError>
where
    Q: Serialize,
    A: DeserializeOwned,
{
    let envelope = Envelope { group: group.to_owned(), rpc: request };
    let payload = serde_json::to_string(&envelope).map_err(|e| CallError::Transport(e.to_string()))?;
    if payload.len() > MAX_RAFT_PAYLOAD {
        return Err(CallError::TooLarge(payload.len()));
    }
    let conn = conns.get(target).ok_or(CallError::NoConnection)?;
    let message = Message::RaftRequest(RaftMessage { request_id, rpc, payload: &payload });
    let exchange = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| CallError::Transport(e.to_string()))?;
        write_one(&mut send, &message).await.map_err(|e| CallError::Transport(e.to_string()))?;
        read_one(&mut recv, MAX_MESSAGE_LEN).await.map_err(|e| CallError::Transport(e.to_string()))
    };
    let bytes = tokio::time::timeout(ttl, exchange).await.map_err(|_| CallError::TimedOut(ttl))??;
    match wire::decode(&bytes) {
        Ok(Message::RaftResponse(m)) if m.request_id == request_id && m.rpc == rpc => {
            serde_json::from_str(m.payload).map_err(|e| CallError::Transport(format!("bad raft-response: {e}")))
        }
        Ok(Message::Error(e)) if e.code == wire::ErrorCode::TsoUnavailable => Err(CallError::NotRunning),
        Ok(Message::Error(e)) => Err(CallError::Transport(format!("peer refused: {} {}", e.code, e.message))),
        Ok(other) => Err(CallError::Transport(format!("unexpected answer {}", other.kind().name()))),
        Err(e) => Err(CallError::Transport(format!("undecodable answer: {e}"))),
    }
}

/// Sends a pre-vote or hello to node `target` and returns its answer, or
/// why there is none.
pub async fn campaign(
    conns: &PeerConns,
    group: &str,
    target: NodeId,
    request: &Campaign,
    ttl: Duration,
) -> Result<CampaignAnswer, String> {
    let request_id = CAMPAIGN_IDS.fetch_add(1, Ordering::Relaxed);
    exchange(conns, target, group, request_id, RaftRpc::PreVote, request, ttl).await.map_err(|e| e.to_string())
}

/// Sends this site's fence-reset vote to the leader `target` and returns
/// its answer (the leader's own refusal as `Err` inside), or why there is
/// none.
pub async fn reset_vote(
    conns: &PeerConns,
    group: &str,
    target: NodeId,
    request: &ResetVoteRequest,
    ttl: Duration,
) -> Result<Result<ResetVoteAnswer, String>, String> {
    let request_id = CAMPAIGN_IDS.fetch_add(1, Ordering::Relaxed);
    exchange(conns, target, group, request_id, RaftRpc::ResetVote, request, ttl).await.map_err(|e| e.to_string())
}

/// Request ids of pre-votes, hellos and reset votes (any value; echoed).
static CAMPAIGN_IDS: AtomicU64 = AtomicU64::new(1);

impl Rpc {
    /// Sends `request` as `rpc` and returns the remote's `Result`.
    async fn call<Q, A, E>(&self, rpc: RaftRpc, request: &Q, ttl: Duration) -> Result<Result<A, E>, CallError>
    where
        Q: Serialize,
        A: DeserializeOwned,
        E: DeserializeOwned,
    {
        let request_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        exchange(&self.conns, self.target, &self.group, request_id, rpc, request, ttl).await
    }

    fn fail<E: std::error::Error>(&self, e: CallError, entries: usize) -> RPCError<NodeId, BasicNode, E> {
        match e {
            CallError::NoConnection | CallError::NotRunning | CallError::TimedOut(_) => {
                RPCError::Unreachable(Unreachable::new(&e))
            }
            CallError::TooLarge(_) => {
                let hint = u64::try_from(entries / 2).unwrap_or(1).max(1);
                RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(hint))
            }
            CallError::Transport(_) => RPCError::Network(NetworkError::new(&AnyError::new(&e))),
        }
    }
}

impl RaftNetwork<TsoRaft> for Rpc {
    /// Retries an unreachable peer every heartbeat-sized 50 ms, not
    /// openraft's default 500 ms (longer than an election timeout: a peer
    /// that came back would start an election before its first heartbeat).
    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(50)))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TsoRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let entries = rpc.entries.len();
        match self.call::<_, _, RaftError<NodeId>>(RaftRpc::AppendEntries, &rpc, option.hard_ttl()).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Err(e) => Err(self.fail(e, entries)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TsoRaft>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        type E = RaftError<NodeId, InstallSnapshotError>;
        match self.call::<_, _, E>(RaftRpc::InstallSnapshot, &rpc, option.hard_ttl()).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Err(e) => Err(self.fail(e, 0)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self.call::<_, _, RaftError<NodeId>>(RaftRpc::Vote, &rpc, option.hard_ttl()).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Err(e) => Err(self.fail(e, 0)),
        }
    }
}

/// Largest snapshot a peer may send (the state is a few numbers).
pub const MAX_SNAPSHOT: u64 = 1 << 20;

/// Why a peer's `raft-request` was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The payload does not parse.
    #[error("raft payload does not parse: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A snapshot chunk beyond [`MAX_SNAPSHOT`].
    #[error("snapshot chunk out of range")]
    SnapshotTooLarge,
    /// A `pre-vote` or `reset-vote` reached openraft's dispatcher (a bug,
    /// never a peer's fault).
    #[error("pre-votes and reset votes are answered by the TSO node, not by Raft")]
    NotForRaft,
    /// A pre-vote, vote, append or snapshot that claims to come from
    /// another node than the authenticated sender's.
    #[error("the request claims node {claimed}, but the sender is {sender}")]
    Impostor {
        /// Who it claims to be.
        claimed: NodeId,
        /// The authenticated sender's site.
        sender: String,
    },
    /// An entry's lease ends beyond what this site's clock allows.
    #[error("a lease ending at {end_ns} ns is beyond this site's limit ({limit_ns:?}): the leader's clock is wrong")]
    LeaseTooFar {
        /// The lease end proposed.
        end_ns: u64,
        /// This site's limit (`None`: this site has no bound to judge by).
        limit_ns: Option<u64>,
    },
    /// A snapshot whose fence is below the one this site holds.
    #[error("a snapshot with fence {snapshot_ns} ns would lower ours ({ours_ns} ns)")]
    FenceLowered {
        /// The snapshot's fence.
        snapshot_ns: u64,
        /// Ours.
        ours_ns: u64,
    },
    /// The sender is configured with another set of sites.
    #[error("the sender's sites differ from ours (group {theirs}, ours {ours})")]
    OtherGroup {
        /// The sender's digest.
        theirs: String,
        /// Ours.
        ours: String,
    },
}

/// The argument of a `raft-request` of group `group`.
pub fn open<T: DeserializeOwned>(payload: &str, group: &str) -> Result<T, Refused> {
    let envelope: Envelope<T> = serde_json::from_str(payload)?;
    if envelope.group != group {
        return Err(Refused::OtherGroup { theirs: envelope.group, ours: group.to_owned() });
    }
    Ok(envelope.rpc)
}

/// What [`answer`] produced.
#[derive(Debug)]
pub struct Answered {
    /// The JSON payload of the `raft-response`.
    pub payload: String,
    /// It answered an AppendEntries whose sender we took as the leader
    /// (success, or a log to repair; not a refusal for a newer vote).
    pub from_leader: bool,
}

/// What a Raft request is checked against before Raft sees it.
#[derive(Clone, Copy, Debug)]
pub struct Guard<'a> {
    /// The sender's node, and the site its certificate names.
    pub sender: (NodeId, &'a str),
    /// The latest lease end this site accepts in new entries (ns): its own
    /// `latest` plus the longest lease plus twice the largest half-width a
    /// leader may propose at. `None` when this site has no bound to judge
    /// by: then it accepts no lease entry.
    pub lease_limit_ns: Option<u64>,
    /// The fence this site holds (ns): a snapshot may not lower it, unless
    /// it carries a later fence reset.
    pub fence_ns: u64,
    /// Fence resets this site has applied.
    pub resets: u64,
}

/// Answers a `raft-request` of group `group` with the local Raft's result,
/// as the JSON payload of a `raft-response`, or says why not. Refused
/// before Raft sees them: a request that speaks for another node than the
/// sender (a vote for another candidate, entries or a snapshot from another
/// leader), entries the sender proposed in its own term and not yet
/// committed carrying a lease end beyond [`Guard::lease_limit_ns`] (a
/// leader with a wrong clock would otherwise fence the TSO off until true
/// time passes it), and a one-chunk snapshot whose fence is below ours
/// (unless it carries a later fence reset).
pub async fn answer(
    raft: &Raft<TsoRaft>,
    rpc: RaftRpc,
    payload: &str,
    group: &str,
    guard: Guard<'_>,
) -> Result<Answered, Refused> {
    let sender = guard.sender;
    let speaks_for = |vote: &openraft::Vote<NodeId>| match vote.leader_id().voted_for() {
        Some(claimed) if claimed == sender.0 => Ok(()),
        claimed => Err(Refused::Impostor { claimed: claimed.unwrap_or(0), sender: sender.1.to_owned() }),
    };
    let mut from_leader = false;
    let text = match rpc {
        RaftRpc::AppendEntries => {
            let request: AppendEntriesRequest<TsoRaft> = open(payload, group)?;
            speaks_for(&request.vote)?;
            // Only the sender's own new proposals are judged: entries of
            // earlier terms, or already committed, are history that Raft
            // must be able to repair logs with (refusing them would stall
            // the group for good, and could not undo them).
            let own_term = request.vote.leader_id().get_term();
            let committed = request.leader_commit.map(|l| l.index);
            let proposed = request
                .entries
                .iter()
                .filter(|e| e.log_id.leader_id.term == own_term && committed.is_none_or(|c| e.log_id.index > c));
            for entry in proposed {
                if let openraft::EntryPayload::Normal(Command::Lease(lease)) = &entry.payload {
                    if guard.lease_limit_ns.is_none_or(|limit| lease.end_ns > limit) {
                        return Err(Refused::LeaseTooFar { end_ns: lease.end_ns, limit_ns: guard.lease_limit_ns });
                    }
                }
            }
            let result = raft.append_entries(request).await;
            from_leader = matches!(
                result,
                Ok(AppendEntriesResponse::Success
                    | AppendEntriesResponse::PartialSuccess(_)
                    | AppendEntriesResponse::Conflict)
            );
            serde_json::to_string(&result)?
        }
        RaftRpc::Vote => {
            let request: VoteRequest<NodeId> = open(payload, group)?;
            speaks_for(&request.vote)?;
            serde_json::to_string(&raft.vote(request).await)?
        }
        RaftRpc::InstallSnapshot => {
            let request: InstallSnapshotRequest<TsoRaft> = open(payload, group)?;
            speaks_for(&request.vote)?;
            if request.offset == 0 && request.done {
                let state: TsoState = serde_json::from_slice(&request.data)?;
                if state.fence_ns < guard.fence_ns && state.resets <= guard.resets {
                    return Err(Refused::FenceLowered { snapshot_ns: state.fence_ns, ours_ns: guard.fence_ns });
                }
            }
            // The real snapshot is a few hundred bytes; a chunk placed far
            // out would make the receive buffer allocate without bound.
            let end = request.offset.saturating_add(u64::try_from(request.data.len()).unwrap_or(u64::MAX));
            if end > MAX_SNAPSHOT {
                return Err(Refused::SnapshotTooLarge);
            }
            serde_json::to_string(&raft.install_snapshot(request).await)?
        }
        // Answered by the TSO node itself (`TsoNode::answer`), never here.
        RaftRpc::PreVote | RaftRpc::ResetVote => return Err(Refused::NotForRaft),
    };
    Ok(Answered { payload: text, from_leader })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_round_trip_is_a_high_percentile_of_its_recent_probes() {
        let conns = PeerConns::new(["xa".to_owned()]);
        assert_eq!(conns.round_trips(), vec![(node_id("xa"), None)]);
        let ms = Duration::from_millis;
        conns.record_round_trip("xa", ms(25));
        conns.record_round_trip("xa", ms(27));
        // Few samples: the largest.
        assert_eq!(conns.round_trips()[0].1, Some(ms(27)));
        for _ in 0..40 {
            conns.record_round_trip("xa", ms(25));
        }
        // One probe delayed by a busy host does not count...
        conns.record_round_trip("xa", ms(400));
        assert_eq!(conns.round_trips()[0].1, Some(ms(25)));
        // ...nor a few, for the typical round trip.
        for _ in 0..5 {
            conns.record_round_trip("xa", ms(3_000));
        }
        assert_eq!(conns.round_trips()[0].1, Some(ms(3_000)));
        assert_eq!(conns.typical_round_trips()[0].1, Some(ms(25)));
        // ...a lasting change does, and the window forgets the old ones.
        for _ in 0..ROUND_TRIPS_KEPT {
            conns.record_round_trip("xa", ms(230));
        }
        assert_eq!(conns.round_trips()[0].1, Some(ms(230)));
        // Unknown sites are ignored.
        conns.record_round_trip("nowhere", ms(1));
        assert_eq!(conns.round_trips().len(), 1);
    }

    /// The payloads of the SPEC's vectors (written by an independent
    /// encoder) parse into the types the daemon uses, every RPC and shape.
    #[test]
    fn the_spec_vectors_payloads_are_what_the_daemon_parses() {
        fn payloads(file: &str) -> Vec<(String, String, String)> {
            let path = format!("{}/../proto-spec/vectors/{file}", env!("CARGO_MANIFEST_DIR"));
            let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            doc["valid"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| {
                    let d = &v["decoded"];
                    let text = |k: &str| d[k].as_str().unwrap().to_owned();
                    (text("rpc"), text("payload"), v["name"].as_str().unwrap().to_owned())
                })
                .collect()
        }
        let group = |payload: &str| -> String {
            serde_json::from_str::<serde_json::Value>(payload).unwrap()["group"].as_str().unwrap().to_owned()
        };
        let mut seen_reset_entry = false;
        for (rpc, payload, name) in payloads("raft-request.json") {
            let g = group(&payload);
            match rpc.as_str() {
                "append-entries" => {
                    let r: AppendEntriesRequest<TsoRaft> = open(&payload, &g).unwrap();
                    seen_reset_entry |= r.entries.iter().any(|e| {
                        matches!(&e.payload, openraft::EntryPayload::Normal(Command::FenceResetVote(v)) if v.reset == 1)
                    });
                }
                "vote" => drop(open::<VoteRequest<NodeId>>(&payload, &g).unwrap()),
                "install-snapshot" => {
                    let r: InstallSnapshotRequest<TsoRaft> = open(&payload, &g).unwrap();
                    let _: TsoState = serde_json::from_slice(&r.data).unwrap();
                }
                "pre-vote" => drop(open::<Campaign>(&payload, &g).unwrap()),
                "reset-vote" => drop(open::<ResetVoteRequest>(&payload, &g).unwrap()),
                other => panic!("{name}: unknown rpc {other}"),
            }
        }
        assert!(seen_reset_entry, "no vector carries a fence-reset vote entry");
        for (rpc, payload, name) in payloads("raft-response.json") {
            let parsed = match rpc.as_str() {
                "reset-vote" => serde_json::from_str::<Result<ResetVoteAnswer, String>>(&payload).map(drop),
                "pre-vote" => serde_json::from_str::<CampaignAnswer>(&payload).map(drop),
                _ => Ok(()),
            };
            assert!(parsed.is_ok(), "{name}: {parsed:?}");
        }
    }

    #[test]
    fn the_group_digest_depends_on_the_set_of_sites_only() {
        let a = group_digest(&["xa".into(), "bj-a".into(), "bj-b".into()]);
        assert_eq!(a, group_digest(&["bj-b".into(), "xa".into(), "bj-a".into()]));
        assert_ne!(a, group_digest(&["bj-a".into(), "bj-b".into()]));
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn a_request_from_another_group_is_refused() {
        let payload = serde_json::to_string(&Envelope { group: "0011".into(), rpc: 5u32 }).unwrap();
        assert!(matches!(open::<u32>(&payload, "0011"), Ok(5)));
        assert!(matches!(open::<u32>(&payload, "ffee"), Err(Refused::OtherGroup { .. })));
        assert!(matches!(open::<u32>("{}", "0011"), Err(Refused::Malformed(_))));
    }
}
