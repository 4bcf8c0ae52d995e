//! One site's TSO: its Raft node, the leader's allocator and renewals, and
//! the follower's batching proxy (SPEC.md §4.8, §4.13).
//!
//! * Requests from this site's clients: the leader issues from memory
//!   ([`Allocator`]); a follower queues them and a forwarder task sends the
//!   leader one `tso-request` for everything pending (at most
//!   [`MAX_IN_FLIGHT`] batches at a time), splitting the granted range in
//!   order.
//! * The leader task follows Raft's metrics: on winning a term it starts a
//!   fresh allocator and proposes a lease; it proposes a renewal once a
//!   third of the lease has passed, one proposal at a time.
//! * Every refusal is `tso-unavailable` with a `retry-after`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::{BasicNode, Raft, ServerState, SnapshotPolicy};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
use tracing::{debug, info, warn};
use tsod_client::suspended_since;
use tsod_proto::shm::BoundError;
use tsod_proto::wire::{self, ErrorCode, MAX_MESSAGE_LEN, MAX_TSO_COUNT, Message, TsoRequest};
use tsod_proto::{HybridTimestamp, TimeInterval};

use super::lease::{Allocator, Refusal};
use super::network::{Network, PeerConns, group_digest};
use super::raft::{Command, Lease, NodeId, TsoRaft, node_id};
use super::store::{self, AppliedView};
use crate::clock::Clock;
use crate::config::TsoConfig;
use crate::net::SiteView;
use crate::net::stream::{read_one, write_one};
use crate::status_file::TsoStatus;

/// Forwarded batches in flight to the leader at once. Closed-loop callers
/// arrive in waves, one per round trip: a cap a wave can fill makes the
/// rest of it wait a whole round trip for a permit (64 did, at a 26 ms
/// round trip with one client of 64 callers: p99 two round trips). Below
/// the peer connection's 256 streams, leaving room for Raft and probes.
pub const MAX_IN_FLIGHT: usize = 192;
/// Longest the leader holds a request waiting for its lease (the fence to
/// pass, a commit, the clock to catch up) before answering unavailable.
const HOLD: Duration = Duration::from_millis(900);
/// Waits shorter than this are yielded through, not slept.
const SPIN_BELOW: Duration = Duration::from_micros(200);
/// Longest a forwarded batch may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);
/// Requests queued at a follower before new ones are refused.
const QUEUE: usize = 4_096;

/// Why a TSO request failed: what the client is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable {
    /// The error code (`tso-unavailable`, or the leader's code).
    pub code: ErrorCode,
    /// When to retry, if known.
    pub retry_after: Option<Duration>,
    /// Why.
    pub message: String,
}

impl Unavailable {
    fn new(message: impl Into<String>, retry_after: Duration) -> Self {
        let ms = retry_after.as_millis().clamp(1, 5_000);
        let retry_after = Some(Duration::from_millis(u64::try_from(ms).unwrap_or(5_000)));
        Self { code: ErrorCode::TsoUnavailable, retry_after, message: message.into() }
    }
}

/// A client's request waiting at a follower.
struct Pending {
    count: u32,
    reply: oneshot::Sender<Result<HybridTimestamp, Unavailable>>,
}

/// This site's TSO.
pub struct TsoNode {
    me: NodeId,
    raft: Raft<TsoRaft>,
    conns: Arc<PeerConns>,
    clock: Arc<dyn Clock>,
    view: watch::Receiver<SiteView>,
    lease: Duration,
    allocator: Mutex<Option<Allocator>>,
    lease_changed: Notify,
    proposing: AtomicBool,
    applied: watch::Receiver<AppliedView>,
    queue: mpsc::Sender<Pending>,
    issued: AtomicU64,
    refused: AtomicU64,
    forwarded: AtomicU64,
    /// Whether this node may grant votes: not while its store is new and no
    /// leader has caught it up (a site that lost its disk must not help
    /// elect a leader that lacks leases it once acknowledged).
    voting: AtomicBool,
    /// A leader's AppendEntries reached this node since it started (not
    /// Raft's `current_leader`: that is restored from the stored vote, so a
    /// restarted node would "see" a leader before any heartbeat came).
    leader_heard: AtomicBool,
    leader_heard_changed: Notify,
    /// The group digest ([`group_digest`]).
    group: String,
}

impl std::fmt::Debug for TsoNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsoNode").field("me", &self.me).finish_non_exhaustive()
    }
}

/// Why the TSO could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The state directory could not be made.
    #[error("creating the TSO state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The Raft store could not be opened.
    #[error("opening the Raft store: {0}")]
    Store(#[from] store::StoreError),
    /// openraft refused the configuration.
    #[error("Raft configuration: {0}")]
    Config(String),
    /// openraft failed to start.
    #[error("starting Raft: {0}")]
    Raft(String),
}

impl TsoNode {
    /// Opens the store under `config.state_dir`, starts the Raft node of
    /// site `site` with every site in `all_sites` as a voter, and the
    /// leader and forwarder tasks.
    pub async fn start(
        config: &TsoConfig,
        site: &str,
        all_sites: &[String],
        conns: Arc<PeerConns>,
        clock: Arc<dyn Clock>,
        view: watch::Receiver<SiteView>,
    ) -> Result<Arc<Self>, StartError> {
        std::fs::create_dir_all(&config.state_dir)
            .map_err(|source| StartError::StateDir { path: config.state_dir.display().to_string(), source })?;
        let path = config.state_dir.join(store::FILE_NAME);
        let fresh = !path.exists();
        let (log, machine) = store::open(&path)?;
        let applied = machine.watch();
        let raft_config = openraft::Config {
            cluster_name: "tsod".into(),
            heartbeat_interval: config.heartbeat_ms,
            election_timeout_min: config.election_timeout_ms,
            election_timeout_max: config.election_timeout_ms.saturating_mul(5) / 3,
            max_payload_entries: 32,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(1_000),
            max_in_snapshot_log_to_keep: 100,
            snapshot_max_chunk_size: 32 * 1024,
            ..openraft::Config::default()
        }
        .validate()
        .map_err(|e| StartError::Config(e.to_string()))?;
        let me = node_id(site);
        let group = group_digest(all_sites);
        let raft = Raft::new(me, Arc::new(raft_config), Network::new(Arc::clone(&conns), &group), log, machine)
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        // No elections until `join` says so.
        raft.runtime_config().elect(false);
        let (queue, queued) = mpsc::channel(QUEUE);
        let node = Arc::new(Self {
            me,
            raft,
            conns,
            clock,
            view,
            lease: config.lease(),
            allocator: Mutex::new(None),
            lease_changed: Notify::new(),
            proposing: AtomicBool::new(false),
            applied,
            queue,
            issued: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            voting: AtomicBool::new(!fresh),
            leader_heard: AtomicBool::new(false),
            leader_heard_changed: Notify::new(),
            group,
        });
        let members: BTreeMap<NodeId, BasicNode> =
            all_sites.iter().map(|s| (node_id(s), BasicNode::new(s.clone()))).collect();
        tokio::spawn(Arc::clone(&node).join(members, fresh, config.election_timeout_ms));
        tokio::spawn(Arc::clone(&node).lead());
        tokio::spawn(Arc::clone(&node).forward(queued));
        info!(%site, sites = all_sites.len(), lease_ms = config.lease_ms, "TSO started");
        Ok(node)
    }

    /// Notes that a leader's AppendEntries was accepted (see [`TsoNode::join`]).
    pub fn leader_heard(&self) {
        if !self.leader_heard.swap(true, Ordering::AcqRel) {
            self.leader_heard_changed.notify_waiters();
        }
    }

    /// Whether this node may take part in elections (see [`TsoNode::join`]).
    pub fn voting(&self) -> bool {
        self.voting.load(Ordering::Acquire)
    }

    /// Joins the group. A node with a store from before starts voting at
    /// once. A new store first waits a few election timeouts for an
    /// existing leader to reach it (it then follows, and votes once it holds
    /// the leader's log); if none does, the whole cluster is new and every
    /// site initializes the same membership (safe per openraft; whichever
    /// wins the first election leads).
    async fn join(self: Arc<Self>, members: BTreeMap<NodeId, BasicNode>, fresh: bool, election_ms: u64) {
        // Elections stay off (set in `start`) until a leader is heard from
        // or the grace period passes: openraft 0.9 has no PreVote, and a
        // restarted node whose timer fires before the leader's heartbeats
        // reach it would depose a healthy leader.
        let grace = Duration::from_millis(election_ms.saturating_mul(if fresh { 6 } else { 4 }));
        let mut metrics = self.raft.metrics();
        let wait = tokio::time::sleep(grace);
        tokio::pin!(wait);
        let leader_seen = loop {
            let heard = self.leader_heard_changed.notified();
            tokio::pin!(heard);
            heard.as_mut().enable();
            if self.leader_heard.load(Ordering::Acquire) {
                break true;
            }
            tokio::select! {
                () = &mut wait => break false,
                () = heard => {}
            }
        };
        if fresh && leader_seen {
            // A leader exists: follow it; vote once caught up.
            loop {
                let caught_up = {
                    let m = metrics.borrow();
                    m.last_applied.is_some() && m.last_applied.map(|l| l.index) >= m.last_log_index
                };
                if caught_up {
                    info!("caught up by the TSO leader; voting from now on");
                    break;
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        }
        self.voting.store(true, Ordering::Release);
        self.raft.runtime_config().elect(true);
        if fresh && !leader_seen {
            info!("no TSO leader reached this new store: initializing the group");
            match self.raft.is_initialized().await {
                Ok(true) => {}
                Ok(false) => {
                    if let Err(e) = self.raft.initialize(members).await {
                        debug!(error = %e, "Raft already initialized");
                    }
                }
                Err(e) => warn!(error = %e, "Raft stopped before joining"),
            }
        }
    }

    /// The group digest every Raft RPC must carry.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The Raft node (for RPCs from peers).
    pub fn raft(&self) -> &Raft<TsoRaft> {
        &self.raft
    }

    /// Stops Raft (on daemon shutdown).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            warn!(error = %e, "stopping Raft");
        }
    }

    /// `count` timestamps for a client of this site: issued here when this
    /// site leads, else forwarded in a batch to the leader.
    pub async fn serve_local(&self, count: u32) -> Result<HybridTimestamp, Unavailable> {
        let result = if self.leading_term().is_some() {
            self.issue_held(count).await
        } else {
            let (reply, answer) = oneshot::channel();
            match self.queue.try_send(Pending { count, reply }) {
                Ok(()) => {
                    answer.await.unwrap_or_else(|_| Err(Unavailable::new("TSO stopping", Duration::from_millis(100))))
                }
                Err(_) => Err(Unavailable::new("too many TSO requests queued at this site", Duration::from_millis(10))),
            }
        };
        self.count(&result, count);
        result
    }

    /// `count` timestamps for a follower site's batch: only the leader answers.
    pub async fn serve_forwarded(&self, count: u32) -> Result<HybridTimestamp, Unavailable> {
        let result = if self.leading_term().is_some() {
            self.issue_held(count).await
        } else {
            Err(Unavailable::new("this site does not lead the TSO group", Duration::from_millis(20)))
        };
        self.count(&result, count);
        result
    }

    fn count(&self, result: &Result<HybridTimestamp, Unavailable>, count: u32) {
        match result {
            Ok(_) => self.issued.fetch_add(u64::from(count), Ordering::Relaxed),
            Err(_) => self.refused.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// The term this site leads in, per Raft's latest metrics.
    fn leading_term(&self) -> Option<u64> {
        let m = self.raft.metrics();
        let m = m.borrow();
        (m.state == ServerState::Leader && m.current_leader == Some(self.me)).then_some(m.current_term)
    }

    /// The site's published interval now, read after the request arrived.
    fn site_now(&self) -> Result<TimeInterval, BoundError> {
        let published = self.view.borrow().published;
        let now = self.clock.read().map_err(|_| BoundError::Stale)?;
        if suspended_since(&published, now.raw, now.boottime) {
            return Err(BoundError::Disrupted);
        }
        published.anchor.interval_at(now.raw)
    }

    /// Issues as leader, holding the request up to [`HOLD`] while the
    /// lease is being taken or the fence has not yet passed.
    async fn issue_held(&self, count: u32) -> Result<HybridTimestamp, Unavailable> {
        let deadline = tokio::time::Instant::now() + HOLD;
        // Where the range may start: the top microsecond at the first read.
        let mut not_below = None;
        loop {
            let now = self.site_now().map_err(|e| {
                Unavailable::new(format!("the site's clock has no bound: {e}"), Duration::from_millis(500))
            })?;
            let not_below = match not_below {
                Some(n) => n,
                None => {
                    let top = Allocator::top_of(now).map_err(|_| Unavailable {
                        code: ErrorCode::Internal,
                        retry_after: None,
                        message: "timestamp space exhausted".into(),
                    })?;
                    *not_below.insert(top)
                }
            };
            let term = self.leading_term();
            // Registered before the attempt, so a commit between the
            // attempt and the wait is not missed.
            let notified = self.lease_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let attempt = {
                let mut guard = self.allocator.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                match (guard.as_mut(), term) {
                    (Some(a), Some(t)) if a.term() == t => a.issue_from(count, now, not_below),
                    _ => {
                        return Err(Unavailable::new(
                            "this site does not lead the TSO group",
                            Duration::from_millis(20),
                        ));
                    }
                }
            };
            let wait = match attempt {
                Ok(first) => return Ok(first),
                Err(Refusal::Exhausted) => {
                    return Err(Unavailable {
                        code: ErrorCode::Internal,
                        retry_after: None,
                        message: "timestamp space exhausted".into(),
                    });
                }
                Err(Refusal::FenceNotPassed { wait } | Refusal::AheadOfClock { wait }) => Some(wait),
                Err(Refusal::NoLease | Refusal::LeaseExpired) => None,
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                let why = attempt.err().map_or_else(String::new, |r| r.to_string());
                return Err(Unavailable::new(
                    format!("leader not ready: {why}"),
                    wait.unwrap_or(Duration::from_millis(50)),
                ));
            }
            match wait {
                // Microseconds (a range waiting for the next microsecond):
                // yield rather than sleep, whose granularity is 1 ms.
                Some(w) if w < SPIN_BELOW => tokio::task::yield_now().await,
                Some(w) => tokio::time::sleep(w.min(left)).await,
                None => {
                    let _ = tokio::time::timeout(left, notified).await;
                }
            }
        }
    }

    /// Follows Raft's leadership; proposes leases while leading.
    async fn lead(self: Arc<Self>) {
        let mut metrics = self.raft.metrics();
        let mut tick = tokio::time::interval((self.lease / 12).max(Duration::from_millis(5)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                _ = tick.tick() => {}
            }
            let term = self.leading_term();
            let wants = {
                let mut guard = self.allocator.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                match term {
                    None => {
                        if guard.take().is_some() {
                            info!("no longer leading the TSO group");
                        }
                        None
                    }
                    Some(t) => {
                        if guard.as_ref().map(Allocator::term) != Some(t) {
                            info!(term = t, "leading the TSO group; taking a lease");
                            *guard = Some(Allocator::new(t));
                        }
                        let now = self.site_now().ok();
                        match (guard.as_ref(), now) {
                            (Some(a), Some(now)) if a.wants_renewal(now, self.lease) => Some((t, now)),
                            _ => None,
                        }
                    }
                }
            };
            if let Some((t, now)) = wants {
                if !self.proposing.swap(true, Ordering::AcqRel) {
                    tokio::spawn(Arc::clone(&self).propose(t, now));
                }
            }
        }
    }

    /// Proposes a lease ending `lease` after `now.latest` and records it
    /// once committed.
    async fn propose(self: Arc<Self>, term: u64, now: TimeInterval) {
        let end_ns = now.latest().as_nanos().saturating_add(u64::try_from(self.lease.as_nanos()).unwrap_or(u64::MAX));
        let command = Command::Lease(Lease { holder: self.me, term, end_ns });
        match tokio::time::timeout(self.lease, self.raft.client_write(command)).await {
            Ok(Ok(response)) => {
                let mut guard = self.allocator.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(a) = guard.as_mut().filter(|a| a.term() == term) {
                    a.on_committed(response.data.previous_end_ns, end_ns);
                }
                drop(guard);
                self.lease_changed.notify_waiters();
            }
            Ok(Err(e)) => debug!(error = %e, "lease not committed"),
            Err(_) => debug!("lease proposal timed out"),
        }
        self.proposing.store(false, Ordering::Release);
    }

    /// Sends what is queued to the leader, in batches.
    async fn forward(self: Arc<Self>, mut queued: mpsc::Receiver<Pending>) {
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut carry: Option<Pending> = None;
        loop {
            let first = match carry.take() {
                Some(p) => p,
                None => match queued.recv().await {
                    Some(p) => p,
                    None => return,
                },
            };
            let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else { return };
            let mut total = first.count;
            let mut batch = vec![first];
            while let Ok(p) = queued.try_recv() {
                match total.checked_add(p.count).filter(|t| *t <= MAX_TSO_COUNT) {
                    Some(t) => {
                        total = t;
                        batch.push(p);
                    }
                    None => {
                        carry = Some(p);
                        break;
                    }
                }
            }
            let node = Arc::clone(&self);
            tokio::spawn(async move {
                let result = node.forward_batch(total).await;
                split(batch, result);
                drop(permit);
            });
        }
    }

    /// One batch of `count` to the leader.
    async fn forward_batch(&self, count: u32) -> Result<HybridTimestamp, Unavailable> {
        let leader = self.raft.metrics().borrow().current_leader;
        let Some(leader) = leader else {
            return Err(Unavailable::new("no TSO leader elected", Duration::from_millis(20)));
        };
        if leader == self.me {
            return self.issue_held(count).await;
        }
        let Some(conn) = self.conns.get(leader) else {
            let name = self.conns.name(leader).unwrap_or("?");
            return Err(Unavailable::new(format!("no connection to the TSO leader {name}"), Duration::from_millis(20)));
        };
        let request_id = self.forwarded.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let exchange = async {
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
            let request = Message::TsoRequest(TsoRequest { request_id, count });
            write_one(&mut send, &request).await.map_err(|e| e.to_string())?;
            read_one(&mut recv, MAX_MESSAGE_LEN).await.map_err(|e| e.to_string())
        };
        // A leader that dies keeps its connection open until the idle
        // timeout: stop waiting as soon as Raft has moved on.
        let mut metrics = self.raft.metrics();
        let deposed = async move {
            while metrics.changed().await.is_ok() {
                if metrics.borrow().current_leader != Some(leader) {
                    return;
                }
            }
            std::future::pending::<()>().await;
        };
        let answer = tokio::select! {
            answer = tokio::time::timeout(FORWARD_TIMEOUT, exchange) => answer,
            () = deposed => return Err(Unavailable::new("the TSO leader changed", Duration::from_millis(10))),
        };
        let bytes = match answer {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                return Err(Unavailable::new(format!("forwarding to the TSO leader: {e}"), Duration::from_millis(100)));
            }
            Err(_) => {
                return Err(Unavailable::new("the TSO leader did not answer in time", Duration::from_millis(100)));
            }
        };
        match wire::decode(&bytes) {
            Ok(Message::TsoResponse(r)) if r.request_id == request_id && r.count == count => Ok(r.first),
            Ok(Message::Error(e)) => {
                Err(Unavailable { code: e.code, retry_after: e.retry_after, message: format!("leader: {}", e.message) })
            }
            _ => Err(Unavailable::new("the TSO leader's answer did not match the request", Duration::from_millis(100))),
        }
    }

    /// What `tsod status` shows.
    pub fn status(&self) -> TsoStatus {
        let m = self.raft.metrics().borrow().clone();
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        let applied = self.applied.borrow().clone();
        let (lease_end_ns, last_issued) = {
            let guard = self.allocator.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            guard.as_ref().map_or((None, None), |a| (Some(a.lease_end_ns()), a.last().map(HybridTimestamp::raw)))
        };
        let leader = m.current_leader.map(|id| {
            if id == self.me { "(this site)".to_owned() } else { self.conns.name(id).unwrap_or("?").to_owned() }
        });
        TsoStatus {
            role: match m.state {
                // openraft 0.9 restores a leader from its store at start-up
                // and never steps down for want of a quorum: a leader no
                // majority has acknowledged within a lease is not leading
                // anything (it cannot commit, so it issues nothing).
                ServerState::Leader if m.millis_since_quorum_ack.is_none_or(|ms| ms > lease_ms) => {
                    "leader-without-quorum"
                }
                ServerState::Leader => "leader",
                ServerState::Follower => "follower",
                ServerState::Candidate => "candidate",
                ServerState::Learner => "learner",
                ServerState::Shutdown => "shutdown",
            }
            .to_owned(),
            leader,
            term: m.current_term,
            applied_index: m.last_applied.map(|l| l.index),
            fence_ns: applied.fence.as_nanos(),
            lease_end_ns,
            last_issued,
            issued: self.issued.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            forwarded_batches: self.forwarded.load(Ordering::Relaxed),
        }
    }
}

/// Hands each waiting client its consecutive part of the granted range.
fn split(batch: Vec<Pending>, result: Result<HybridTimestamp, Unavailable>) {
    let mut next = result;
    for p in batch {
        let answer = next.clone();
        next = match &next {
            Ok(first) => first
                .checked_add_ticks(u64::from(p.count))
                .ok_or_else(|| Unavailable::new("timestamp space exhausted", Duration::from_secs(1))),
            Err(e) => Err(e.clone()),
        };
        // A client that gave up is simply gone.
        let _ = p.reply.send(answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_split_in_order_into_consecutive_ranges() {
        let mut answers = Vec::new();
        let mut batch = Vec::new();
        for count in [1u32, 5, 2] {
            let (reply, rx) = oneshot::channel();
            batch.push(Pending { count, reply });
            answers.push(rx);
        }
        split(batch, Ok(HybridTimestamp::from_raw(100)));
        let got: Vec<u64> = answers.into_iter().map(|mut rx| rx.try_recv().unwrap().unwrap().raw()).collect();
        assert_eq!(got, [100, 101, 106]);
    }

    #[test]
    fn a_failed_batch_fails_every_client() {
        let (reply, mut rx) = oneshot::channel();
        split(vec![Pending { count: 3, reply }], Err(Unavailable::new("x", Duration::from_millis(5))));
        assert_eq!(rx.try_recv().unwrap().unwrap_err().code, ErrorCode::TsoUnavailable);
    }
}
