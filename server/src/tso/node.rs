//! One site's TSO: its Raft node, the leader's allocator and renewals, and
//! the follower's batching proxy (SPEC.md §4.8, §4.13).
//!
//! * Requests from this site's clients: the leader issues from memory
//!   ([`Allocator`]); a follower queues them and a forwarder task sends the
//!   leader one `tso-request` for everything pending (at most
//!   [`MAX_IN_FLIGHT`] batches at a time), splitting the granted range in
//!   order.
//! * The leader task follows Raft's metrics: on winning a term it starts a
//!   fresh allocator and proposes a lease; it proposes a renewal once less
//!   than the renewal point of the lease is left, one proposal at a time.
//!   It hands leadership over to a better site once that site is caught up
//!   ([`super::election`]).
//! * The driver task sends heartbeats while leading, hellos to every peer,
//!   and campaigns (pre-vote, then openraft's election) when no leader has
//!   been heard for the election timeout; the timing is re-derived from the
//!   measured round trips every second ([`super::timing`]).
//! * A former leader whose lease has not ended keeps issuing from it (a
//!   *lame duck*): its successor issues nothing before that lease's end, so
//!   both are safe, and a handover leaves no gap while the successor starts.
//! * Every refusal is `tso-unavailable` with a `retry-after`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::{BasicNode, Raft, ServerState, SnapshotPolicy};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tracing::{debug, info, warn};
use tsod_client::suspended_since;
use tsod_proto::shm::BoundError;
use tsod_proto::wire::{self, ErrorCode, MAX_MESSAGE_LEN, Message, RaftRpc, TsoRequest};
use tsod_proto::{HybridTimestamp, TimeInterval};

use super::election::{self, Campaign, CampaignAnswer, Handover, Merit, UNMEASURED_US};
use super::forward::Forwarder;
use super::lease::{Allocator, Refusal};
use super::network::{Answered, Network, PeerConns, Refused, group_digest};
use super::raft::{Command, Lease, NodeId, TsoRaft, node_id};
use super::reset::{ResetVote, ResetVoteAnswer, ResetVoteRequest};
use super::store::{self, AppliedView};
use super::timing::{self, ASSUMED_ROUND_TRIP, Overrides, RoundTrips, StaticTiming, Timing};
use super::unavailable::Unavailable;
use crate::clock::Clock;
use crate::site::SiteView;
use crate::stream::{read_one, write_one};
use tsod_proto::observe::{TsoResetStatus, TsoRole as Role, TsoStatus, TsoTimingStatus};

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
/// Longest a fence-reset vote may take to reach the leader and commit.
const VOTE_TIMEOUT: Duration = Duration::from_secs(10);
/// What a site that does not lead answers a fence-reset vote (the voter asks again).
const NOT_LEADING: &str = "this site does not lead the TSO group";
/// Requests queued at a follower before new ones are refused.
const QUEUE: usize = 4_096;
/// How often each peer gets a hello (merits, handover) and the timing is
/// re-derived.
const HELLO_EVERY: Duration = Duration::from_secs(1);
/// A peer's merit older than this is not counted (the peer may be gone).
const MERIT_FRESH: Duration = Duration::from_secs(3);
/// A leader leads at least this long before handing over (no ping-pong
/// right after an election).
const LEAD_BEFORE_HANDOVER: Duration = Duration::from_secs(3);
/// After a handover that did not happen, the next try waits this long.
const HANDOVER_RETRY: Duration = Duration::from_secs(30);

/// The file in a site's `[tso] state-dir` that marks its empty store as
/// part of a new cluster (`tsod cluster bootstrap`): only such a store may
/// vote, and initialize the group, without a leader having caught it up.
/// Removed once the store holds the group's log.
pub const NEW_CLUSTER_MARKER: &str = "new-cluster";

/// Creates `dir` (mode 0700, as the Raft store it holds is the daemon's
/// alone) and its missing parents, and makes each new directory entry
/// durable (fsync of its parent), so a power loss cannot take a new store
/// with its directory.
pub fn create_durable_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_durable_dir(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(parent)?.sync_all()
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
    /// Explicit timing settings.
    overrides: Overrides,
    /// `round-trip-ms`, if declared.
    declared: Option<Duration>,
    /// What openraft was started with.
    fixed: StaticTiming,
    /// The timing in force (re-derived every [`HELLO_EVERY`]).
    timing: Mutex<Timing>,
    /// Why the explicit settings do not fit the measured round trips.
    timing_problem: Mutex<Option<String>>,
    /// `[tso] leader-priority`.
    priority: Option<u32>,
    /// `[tso] max-half-width-ms`.
    max_half_width: Duration,
    /// Peers' merits, with when they were learnt.
    merits: Mutex<HashMap<NodeId, (Merit, Instant)>>,
    /// As leader: the handover in progress, since when, and when it was
    /// announced (before that the leader only stops renewing).
    handover: Mutex<Option<(Handover, Instant, Option<Instant>)>>,
    /// As leader: no handover before this instant (one failed).
    handover_not_before: Mutex<Option<Instant>>,
    /// As follower: the leader said it hands over to this site, in this term.
    handover_offered: Mutex<Option<(Handover, Instant)>>,
    /// When this site last accepted a leader's AppendEntries (or started).
    last_heard: Mutex<Instant>,
    /// Campaigns allowed (after joining).
    electing: AtomicBool,
    /// When this site last granted another site's pre-vote.
    pre_vote_granted: Mutex<Option<Instant>>,
    /// This site's election timeout passed and it campaigns (cleared when
    /// it hears a leader or leads, or when a campaign fails).
    campaigning: AtomicBool,
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
    /// How many sites the group has.
    sites: u32,
    /// This site's name.
    site: String,
    /// Why the Raft node stopped for good, once it has.
    failed: Mutex<Option<String>>,
    /// The daemon is stopping Raft itself ([`TsoNode::shutdown`]): its
    /// end is no failure to shout about.
    stopping: AtomicBool,
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
    /// An explicit timing setting cannot work at the round trips.
    #[error("{0}")]
    Timing(String),
}

/// The round trips to start from: the measured ones, else the declared
/// one, else [`ASSUMED_ROUND_TRIP`]; where they came from; whether they
/// were measured or declared (not assumed).
fn start_round_trips(conns: &PeerConns, declared: Option<Duration>) -> (RoundTrips, String, bool) {
    let measured: Vec<Option<Duration>> = conns.round_trips().into_iter().map(|(_, r)| r).collect();
    let fallback = declared.unwrap_or(ASSUMED_ROUND_TRIP);
    let mut rtt = RoundTrips::from_peers(&measured, fallback);
    let what = if measured.iter().any(Option::is_some) {
        // Never below what the operator declared.
        if let Some(d) = declared {
            rtt.max = rtt.max.max(d);
        }
        "measured to the peers".to_owned()
    } else if declared.is_some() {
        "declared in tso.round-trip-ms".to_owned()
    } else {
        return (rtt, format!("assumed: nothing measured yet ({} ms)", ASSUMED_ROUND_TRIP.as_millis()), false);
    };
    (rtt, what, true)
}

/// What the `[tso]` section configures, as the node needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Where the Raft log, vote and snapshot live.
    pub state_dir: PathBuf,
    /// Explicit timing settings (the rest is derived).
    pub overrides: Overrides,
    /// `round-trip-ms`, if declared.
    pub declared_round_trip: Option<Duration>,
    /// `leader-priority`.
    pub leader_priority: Option<u32>,
    /// `max-half-width-ms`: the widest bound at which this site proposes
    /// leases, and the skew it allows other leaders' lease ends.
    pub max_half_width: Duration,
}

impl TsoNode {
    /// Opens the store under `config.state_dir`, starts the Raft node of
    /// site `site` with every site in `all_sites` as a voter, and the
    /// leader, driver and forwarder tasks. The timing is derived from the
    /// round trips `conns` measured so far (or `round-trip-ms`); explicit
    /// settings that cannot work at them are refused.
    pub async fn start(
        config: &Settings,
        site: &str,
        all_sites: &[String],
        conns: Arc<PeerConns>,
        clock: Arc<dyn Clock>,
        view: watch::Receiver<SiteView>,
    ) -> Result<Arc<Self>, StartError> {
        let overrides = config.overrides;
        let declared = config.declared_round_trip;
        let (rtt, what, known) = start_round_trips(&conns, declared);
        if known {
            timing::check(overrides, rtt, &what).map_err(|e| StartError::Timing(e.to_string()))?;
        }
        let fixed = StaticTiming::at_start(rtt);
        let timing = Timing::derive(rtt, overrides, fixed);
        let state_dir_error = |source| StartError::StateDir { path: config.state_dir.display().to_string(), source };
        create_durable_dir(&config.state_dir).map_err(state_dir_error)?;
        let path = config.state_dir.join(store::FILE_NAME);
        let (mut log, machine) = store::open(&path)?;
        // An empty log holds no committed state: such a store votes only
        // once a leader has caught it up, unless it was marked as part of a
        // new cluster (a site that lost its disk must not help elect a
        // leader that lacks leases it once acknowledged).
        let fresh = openraft::storage::RaftLogStorage::get_log_state(&mut log)
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?
            .last_log_id
            .is_none();
        let marker = config.state_dir.join(NEW_CLUSTER_MARKER);
        let may_bootstrap = fresh && marker.exists();
        let applied = machine.watch();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        // openraft's own heartbeat and election timers stay off: the driver
        // sends heartbeats and campaigns after a pre-vote. What remains of
        // its timing are the RPC timeouts (module `timing`).
        let raft_config = openraft::Config {
            cluster_name: "tsod".into(),
            heartbeat_interval: ms(fixed.vote_timeout).saturating_sub(1).max(1),
            election_timeout_min: ms(fixed.vote_timeout),
            election_timeout_max: ms(fixed.raft_stickiness()),
            enable_heartbeat: false,
            enable_elect: false,
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
        let (queue, queued) = mpsc::channel(QUEUE);
        let node = Arc::new(Self {
            me,
            raft,
            conns,
            clock,
            view,
            overrides,
            declared,
            fixed,
            timing: Mutex::new(timing),
            timing_problem: Mutex::new(None),
            priority: config.leader_priority,
            max_half_width: config.max_half_width,
            merits: Mutex::new(HashMap::new()),
            handover: Mutex::new(None),
            handover_not_before: Mutex::new(None),
            handover_offered: Mutex::new(None),
            last_heard: Mutex::new(Instant::now()),
            electing: AtomicBool::new(false),
            pre_vote_granted: Mutex::new(None),
            campaigning: AtomicBool::new(false),
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
            sites: u32::try_from(all_sites.len()).unwrap_or(u32::MAX),
            site: site.to_owned(),
            failed: Mutex::new(None),
            stopping: AtomicBool::new(false),
        });
        let members: BTreeMap<NodeId, BasicNode> =
            all_sites.iter().map(|s| (node_id(s), BasicNode::new(s.clone()))).collect();
        tokio::spawn(Arc::clone(&node).join(members, fresh, may_bootstrap.then_some(marker)));
        tokio::spawn(Arc::clone(&node).lead());
        tokio::spawn(Arc::clone(&node).watch_fatal());
        tokio::spawn(Arc::clone(&node).drive());
        tokio::spawn(Arc::clone(&node).forward(queued));
        info!(
            %site,
            sites = all_sites.len(),
            round_trip_ms = ms(rtt.max),
            heartbeat_ms = ms(timing.heartbeat),
            election_ms = ms(timing.election),
            lease_ms = ms(timing.lease),
            vote_timeout_ms = ms(fixed.vote_timeout),
            "TSO started ({what})"
        );
        Ok(node)
    }

    /// Notes that a leader's AppendEntries was accepted (see [`TsoNode::join`]).
    pub fn leader_heard(&self) {
        *self.last_heard.locked() = Instant::now();
        self.campaigning.store(false, Ordering::Release);
        if !self.leader_heard.swap(true, Ordering::AcqRel) {
            self.leader_heard_changed.notify_waiters();
        }
    }

    /// Whether this node may take part in elections (see [`TsoNode::join`]).
    pub fn voting(&self) -> bool {
        self.voting.load(Ordering::Acquire)
    }

    /// Joins the group. A node with a store from before may campaign at
    /// once (pre-votes keep it from deposing a leader the others hear). A
    /// new store first waits a few election timeouts (one more per better
    /// site) for an existing leader to reach it (it then follows, and votes
    /// once it holds the leader's log); if none does, the whole cluster is
    /// new and it initializes the same membership as every site (safe per
    /// openraft; whichever wins the first election leads).
    async fn join(self: Arc<Self>, members: BTreeMap<NodeId, BasicNode>, fresh: bool, marker: Option<PathBuf>) {
        // A new cluster's first election is openraft's `initialize`, which
        // campaigns at once, without a pre-vote. An empty store marked as
        // part of a new cluster (`marker`) that heard no leader within three
        // election timeouts votes from then on, and initializes one election
        // timeout later per site better than itself (by the merits learnt
        // from hellos meanwhile), unless it hears the leader a better site
        // became. An unmarked empty store waits for a leader, however long.
        let bootstrap = marker.is_some();
        let mut warned = false;
        let started = tokio::time::Instant::now();
        let mut metrics = self.raft.metrics();
        let mut new_cluster = false;
        let leader_seen = loop {
            let heard = self.leader_heard_changed.notified();
            tokio::pin!(heard);
            heard.as_mut().enable();
            if self.leader_heard.load(Ordering::Acquire) {
                break true;
            }
            if !fresh {
                break false;
            }
            let election = self.timing().election;
            let now = tokio::time::Instant::now();
            if !bootstrap && !warned && now >= started + election * 3 {
                warned = true;
                warn!(
                    "this site's TSO store is empty and not marked as part of a new cluster: it waits for the \
                     leader to catch it up before it votes (for a new cluster, run `tsod cluster bootstrap` at \
                     every site before its first start)"
                );
            }
            if bootstrap && !new_cluster && now >= started + election * 3 {
                new_cluster = true;
                self.voting.store(true, Ordering::Release);
            }
            let mine = self.merit();
            let better = self.fresh_merits().iter().filter(|(_, m)| m.better_than(&mine)).count();
            let deadline = started + election * 3 + election * u32::try_from(better).unwrap_or(u32::MAX);
            if bootstrap && now >= deadline {
                break false;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline.min(now + Duration::from_millis(20))) => {}
                () = heard => {}
            }
        };
        if fresh && (leader_seen || !bootstrap) && !new_cluster {
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
        if fresh && !leader_seen {
            info!("no TSO leader reached this new store: initializing the group");
            match self.raft.is_initialized().await {
                Ok(true) => {}
                Ok(false) => {
                    // Initializing campaigns (see above): the driver waits
                    // a whole election timeout from here before it would.
                    *self.last_heard.locked() = Instant::now();
                    if let Err(e) = self.raft.initialize(members).await {
                        debug!(error = %e, "Raft already initialized");
                    }
                }
                Err(e) => warn!(error = %e, "Raft stopped before joining"),
            }
        }
        self.electing.store(true, Ordering::Release);
        // The marker has done its work once the store holds the group's log.
        if let Some(marker) = marker {
            while metrics.borrow().last_log_index.is_none() {
                if metrics.changed().await.is_err() {
                    return;
                }
            }
            if let Err(e) = std::fs::remove_file(&marker) {
                warn!(error = %e, path = %marker.display(), "cannot remove the new-cluster marker; remove it by hand");
            }
        }
    }

    /// Watches for the Raft node stopping for good (openraft's `Fatal`: a
    /// storage error such as a full disk, or a panic in its core). The time
    /// service is not touched: the site keeps publishing its bound, says
    /// why in `tsod status` (`tso.failed`) and in a loud log, and refuses
    /// TSO requests until tsod is restarted.
    async fn watch_fatal(self: Arc<Self>) {
        let mut metrics = self.raft.metrics();
        let why = loop {
            if let Err(fatal) = &metrics.borrow().running_state {
                break fatal.to_string();
            }
            if metrics.changed().await.is_err() {
                break "the Raft node stopped".to_owned();
            }
        };
        let first = self.failed.locked().replace(why.clone()).is_none();
        if first && self.stopping.load(Ordering::Acquire) {
            tracing::debug!(reason = %why, "the TSO's Raft node stopped: tsod is stopping");
        } else if first {
            tracing::error!(
                reason = %why,
                "the TSO's Raft node stopped: this site serves no TSO timestamps until tsod is restarted \
                 (fix the cause first, e.g. free the disk of [tso] state-dir); time is still published"
            );
        }
        self.lease_changed.notify_waiters();
    }

    /// Why the Raft node stopped for good, if it has.
    pub fn failed(&self) -> Option<String> {
        self.failed.locked().clone()
    }

    /// The timing in force.
    pub fn timing(&self) -> Timing {
        *self.timing.locked()
    }

    /// This site's merit: its priority and total typical round trip to its
    /// peers.
    fn merit(&self) -> Merit {
        let total = self
            .conns
            .typical_round_trips()
            .into_iter()
            .map(|(_, r)| r.map_or(UNMEASURED_US, |d| u64::try_from(d.as_micros()).unwrap_or(UNMEASURED_US)))
            .fold(0u64, u64::saturating_add);
        let half_width_us = self
            .site_now()
            .ok()
            .filter(|_| self.synchronized())
            .map(|now| u64::try_from(now.half_width().as_micros()).unwrap_or(u64::MAX));
        Merit { priority: self.priority, total_round_trip_us: total, half_width_us }
    }

    /// The site's published interval is `synchronized`.
    fn synchronized(&self) -> bool {
        self.view.borrow().published.anchor.status == tsod_proto::ClockStatus::Synchronized
    }

    /// Whether this site may propose a lease on `now`: its sources agree
    /// (`synchronized`, or `degraded`: a majority of them) and its
    /// half-width is at most `max-half-width-ms`. A free-running or wider
    /// clock proposes nothing, so its lease lapses and a better site leads.
    fn fit_to_propose(&self, now: &TimeInterval) -> bool {
        super::lease::fit_to_propose(self.view.borrow().published.anchor.status, now, self.max_half_width)
    }

    /// The latest lease end this site accepts from a leader (ns): its own
    /// `latest` now, plus the longest lease any site may hold, plus twice
    /// the largest half-width a leader proposes at (the leader's `latest`
    /// may be that far above true time, ours is not below it). `None`
    /// without a bound.
    fn lease_limit_ns(&self) -> Option<u64> {
        let now = self.site_now().ok()?;
        let margin = timing::LEASE_MAX.saturating_add(self.max_half_width.saturating_mul(2));
        Some(now.latest().as_nanos().saturating_add(u64::try_from(margin.as_nanos()).unwrap_or(u64::MAX)))
    }

    /// Re-derives the timing from the round trips measured now.
    fn refresh_timing(&self) -> Timing {
        let measured: Vec<Option<Duration>> = self.conns.round_trips().into_iter().map(|(_, r)| r).collect();
        let fallback = self.declared.unwrap_or(ASSUMED_ROUND_TRIP);
        let rtt = RoundTrips::from_peers(&measured, fallback);
        let new = Timing::derive(rtt, self.overrides, self.fixed);
        let problem = if rtt.max > self.fixed.carries() {
            Some(format!(
                "the round trip grew to {} ms, beyond the {} ms the vote timeout fixed at start carries: restart this site to adapt",
                rtt.max.as_millis(),
                self.fixed.carries().as_millis()
            ))
        } else if measured.iter().any(Option::is_some) {
            timing::check(self.overrides, rtt, "measured to the peers").err().map(|e| e.to_string())
        } else {
            None
        };
        {
            let mut slot = self.timing_problem.locked();
            if problem != *slot {
                if let Some(p) = &problem {
                    warn!("TSO timing: {p}");
                }
                slot.clone_from(&problem);
            }
        }
        let mut slot = self.timing.locked();
        if timing::changed_much(&slot, &new) {
            info!(
                round_trip_ms = rtt.max.as_millis(),
                quorum_round_trip_ms = rtt.quorum.as_millis(),
                election_ms = new.election.as_millis(),
                lease_ms = new.lease.as_millis(),
                "TSO timing follows the measured round trips"
            );
        }
        *slot = new;
        new
    }

    /// The group digest every Raft RPC must carry.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Answers a peer's `raft-request`: pre-votes and hellos here, the rest
    /// by Raft. `sender` is the site the peer's certificate names.
    pub async fn answer(&self, rpc: RaftRpc, payload: &str, sender: &str) -> Result<Answered, Refused> {
        if rpc == RaftRpc::ResetVote {
            let request: ResetVoteRequest = super::network::open(payload, &self.group)?;
            let answer = self.commit_vote(node_id(sender), request).await;
            return Ok(Answered { payload: serde_json::to_string(&answer)?, from_leader: false });
        }
        if rpc != RaftRpc::PreVote {
            let (fence_ns, resets) = {
                let applied = self.applied.borrow();
                (applied.fence.as_nanos(), applied.resets)
            };
            let guard = super::network::Guard {
                sender: (node_id(sender), sender),
                lease_limit_ns: self.lease_limit_ns(),
                fence_ns,
                resets,
            };
            let answered = super::network::answer(&self.raft, rpc, payload, &self.group, guard).await?;
            if answered.from_leader {
                self.leader_heard();
            }
            return Ok(answered);
        }
        let c: Campaign = super::network::open(payload, &self.group)?;
        if c.from != node_id(sender) {
            return Err(Refused::Impostor { claimed: c.from, sender: sender.to_owned() });
        }
        let now = Instant::now();
        self.merits.locked().insert(c.from, (c.merit, now));
        let m = self.raft.metrics().borrow().clone();
        if let Some(to) = c.handover_to {
            // A site that has not caught up with the leader's term yet (just
            // resumed) keeps the offer: it campaigns on it once in that term.
            if c.term >= m.current_term {
                let offered = Handover { to, term: c.term };
                *self.handover_offered.locked() = Some((offered, now));
            }
        }
        let answer = if c.campaign {
            let timing = self.timing();
            let own_handover = self.handover.locked().and_then(|(h, _, announced)| announced.map(|_| h.to));
            let offered = self.offered_handover(m.current_term).map(|h| h.to);
            let local = election::Local {
                voting: self.voting(),
                leading: self.role(&m) == Role::Leader,
                // A site in Raft's leader state hears a leader: itself
                // (until its heartbeats are refused for a newer term).
                heard_leader_ago: if m.state == ServerState::Leader && m.current_leader == Some(self.me) {
                    Duration::ZERO
                } else {
                    now.saturating_duration_since(*self.last_heard.locked())
                },
                handover_to_candidate: own_handover == Some(c.from) || offered == Some(c.from),
                stickiness: timing.stickiness,
                last_log_index: m.last_log_index,
                rival: self.campaigning.load(Ordering::Acquire)
                    && election::outranks(&self.merit(), self.me, &c.merit, c.from),
            };
            let verdict = election::grant(&c, &local);
            debug!(candidate = self.conns.name(c.from).unwrap_or("?"), ?verdict, "pre-vote");
            if verdict.is_ok() {
                // As Raft resets its timer on granting a vote: give the
                // candidate its election before campaigning here (two sites
                // that granted each other's pre-votes would split the vote).
                *self.pre_vote_granted.locked() = Some(now);
            }
            CampaignAnswer {
                granted: verdict.is_ok(),
                refused: verdict.err(),
                merit: self.merit(),
                term: m.current_term,
            }
        } else {
            CampaignAnswer { granted: false, refused: None, merit: self.merit(), term: m.current_term }
        };
        Ok(Answered { payload: serde_json::to_string(&answer)?, from_leader: false })
    }

    /// The handover the current leader offered in `term`, if recent.
    fn offered_handover(&self, term: u64) -> Option<Handover> {
        let offered = *self.handover_offered.locked();
        offered.filter(|(h, at)| h.term == term && at.elapsed() < MERIT_FRESH).map(|(h, _)| h)
    }

    /// This site's role, judged from evidence: openraft restores a leader
    /// from its store at start-up and never steps down for want of a
    /// quorum, so a leader no majority acknowledged within a lease is not
    /// leading anything ([`Role::LeaderWithoutQuorum`]).
    fn role(&self, m: &openraft::RaftMetrics<NodeId, BasicNode>) -> Role {
        match m.state {
            ServerState::Leader if m.current_leader == Some(self.me) => {
                let stale = self.timing().lease;
                let fresh = m.millis_since_quorum_ack.is_some_and(|ms| u128::from(ms) <= stale.as_millis());
                if fresh { Role::Leader } else { Role::LeaderWithoutQuorum }
            }
            ServerState::Leader => Role::LeaderWithoutQuorum,
            ServerState::Follower => Role::Follower,
            ServerState::Candidate => Role::Candidate,
            ServerState::Learner => Role::Learner,
            ServerState::Shutdown => Role::Shutdown,
        }
    }

    /// Peers' merits learnt within [`MERIT_FRESH`].
    fn fresh_merits(&self) -> Vec<(NodeId, Merit)> {
        let merits = self.merits.locked();
        merits.iter().filter(|(_, (_, at))| at.elapsed() < MERIT_FRESH).map(|(id, (m, _))| (*id, *m)).collect()
    }

    /// Heartbeats while leading, hellos every second, and campaigns when no
    /// leader has been heard for the election timeout.
    async fn drive(self: Arc<Self>) {
        let mut timing = self.refresh_timing();
        // The first hellos go out at once: merits decide the first election.
        self.hello_all(timing);
        let mut last_hello = Instant::now();
        let mut last_heartbeat = Instant::now();
        // The next campaign: `from + wait`, with `from` the last leader
        // contact (or the last attempt) and `spread` drawn once per `from`;
        // the wait itself is re-judged every tick, since merits learnt late
        // (a peer whose TSO started after ours) change this site's rank.
        let mut next: Option<(Instant, Instant, u16)> = None;
        let mut hello_every = Duration::from_millis(200);
        loop {
            let tick = (timing.heartbeat / 4).clamp(Duration::from_millis(2), Duration::from_millis(25));
            tokio::time::sleep(tick).await;
            let now = Instant::now();
            if now.duration_since(last_hello) >= hello_every {
                // Quick hellos at first, so the first election knows merits.
                hello_every = (hello_every * 2).min(HELLO_EVERY);
                last_hello = now;
                timing = self.refresh_timing();
                self.hello_all(timing);
            }
            let m = self.raft.metrics().borrow().clone();
            if m.state == ServerState::Shutdown {
                return;
            }
            if m.state == ServerState::Leader && m.current_leader == Some(self.me) {
                next = None;
                // Leading counts as hearing a leader: once deposed, this
                // site waits a whole election timeout like any follower.
                *self.last_heard.locked() = now;
                self.campaigning.store(false, Ordering::Release);
                let handing_over = self.handover.locked().is_some_and(|(_, _, announced)| announced.is_some());
                if !handing_over && now.duration_since(last_heartbeat) >= timing.heartbeat {
                    last_heartbeat = now;
                    if self.raft.trigger().heartbeat().await.is_err() {
                        return;
                    }
                }
                continue;
            }
            if !self.electing.load(Ordering::Acquire) {
                continue;
            }
            let heard = *self.last_heard.locked();
            let granted_at = *self.pre_vote_granted.locked();
            let heard = granted_at.map_or(heard, |g| g.max(heard));
            let offered_to_me = self.offered_handover(m.current_term).is_some_and(|h| h.to == self.me);
            let (from, spread) = match next {
                Some((for_heard, from, spread)) if for_heard == heard => (from, spread),
                _ => {
                    let spread = random_u16();
                    next = Some((heard, heard, spread));
                    (heard, spread)
                }
            };
            let at = if offered_to_me { now } else { from + self.campaign_wait(&timing, m.current_leader, spread) };
            if now < at {
                continue;
            }
            if offered_to_me {
                *self.handover_offered.locked() = None;
                info!("the TSO leader hands over to this site: campaigning");
            }
            self.campaigning.store(true, Ordering::Release);
            // Invited by the leader: its vote is certain and the others were
            // told, so no pre-vote round trip (the handover's timing counts
            // on the vote alone, `election::handover_due`).
            let asked = Instant::now();
            let granted = offered_to_me
                || (self.pre_vote(&m).await && !self.pre_vote_granted.locked().is_some_and(|g| g >= asked));
            let from = if granted {
                info!(
                    term = m.current_term.saturating_add(1),
                    "pre-vote granted by a majority: starting a TSO election"
                );
                if self.raft.trigger().elect().await.is_err() {
                    return;
                }
                // The election has its vote round trip before another
                // attempt (which would start a newer term) is considered.
                Instant::now() + self.fixed.vote_timeout
            } else {
                // Refused (others still hear a leader, or a better rival
                // campaigns): stop outranking others, try again after half
                // a window.
                self.campaigning.store(false, Ordering::Release);
                Instant::now().checked_sub(timing.election / 2).unwrap_or_else(Instant::now)
            };
            // A leader heard meanwhile restarts the wait from that contact.
            next = Some((heard, from, random_u16()));
        }
    }

    /// The wait at `spread` (of `u16::MAX`) through this site's campaign
    /// window: later by half an election timeout per live peer better than
    /// this site (the leader being waited out does not count).
    fn campaign_wait(&self, timing: &Timing, lost_leader: Option<NodeId>, spread: u16) -> Duration {
        let mine = self.merit();
        let better =
            self.fresh_merits().iter().filter(|(id, m)| Some(*id) != lost_leader && m.better_than(&mine)).count();
        let (low, high) = timing.campaign_window(better);
        low + (high - low) * u32::from(spread) / u32::from(u16::MAX)
    }

    /// Asks every peer for a pre-vote; true when a majority (this site
    /// included) grants it.
    async fn pre_vote(&self, m: &openraft::RaftMetrics<NodeId, BasicNode>) -> bool {
        let request = Campaign {
            from: self.me,
            campaign: true,
            term: m.current_term,
            last_log_index: m.last_log_index,
            merit: self.merit(),
            handover_to: None,
        };
        let peers: Vec<NodeId> = self.conns.ids().collect();
        let needed = peers.len().saturating_add(1) / 2;
        let ttl = self.fixed.vote_timeout;
        let mut asks = tokio::task::JoinSet::new();
        for id in peers {
            let conns = Arc::clone(&self.conns);
            let group = self.group.clone();
            let request = request.clone();
            asks.spawn(async move { (id, super::network::campaign(&conns, &group, id, &request, ttl).await) });
        }
        let mut granted = 0usize;
        while let Some(done) = asks.join_next().await {
            let Ok((id, answer)) = done else { continue };
            let name = self.conns.name(id).unwrap_or("?");
            match answer {
                Ok(a) => {
                    self.merits.locked().insert(id, (a.merit, Instant::now()));
                    if a.granted {
                        granted = granted.saturating_add(1);
                        if granted >= needed {
                            return true;
                        }
                    } else {
                        debug!(peer = name, refused = a.refused.as_deref().unwrap_or(""), "pre-vote refused");
                    }
                }
                Err(e) => debug!(peer = name, error = %e, "no pre-vote answer"),
            }
        }
        granted >= needed
    }

    /// Sends every peer a hello (no answer is waited for here).
    fn hello_all(self: &Arc<Self>, timing: Timing) {
        let m = self.raft.metrics().borrow().clone();
        let handover = self.handover.locked().and_then(|(h, _, announced)| announced.map(|_| h));
        let request = Campaign {
            from: self.me,
            campaign: false,
            term: m.current_term,
            last_log_index: m.last_log_index,
            merit: self.merit(),
            handover_to: handover.filter(|h| h.term == m.current_term).map(|h| h.to),
        };
        let ttl = self.fixed.vote_timeout.max(timing.election);
        for id in self.conns.ids() {
            let node = Arc::clone(self);
            let request = request.clone();
            tokio::spawn(async move {
                if let Ok(a) = super::network::campaign(&node.conns, &node.group, id, &request, ttl).await {
                    node.merits.locked().insert(id, (a.merit, Instant::now()));
                }
            });
        }
    }

    /// The Raft node (for RPCs from peers).
    pub fn raft(&self) -> &Raft<TsoRaft> {
        &self.raft
    }

    /// Stops Raft (on daemon shutdown).
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        if let Err(e) = self.raft.shutdown().await {
            warn!(error = %e, "stopping Raft");
        }
    }

    /// `count` timestamps for a client of this site: issued here when this
    /// site leads, else forwarded in a batch to the leader.
    pub async fn serve_local(&self, count: u32) -> Result<HybridTimestamp, Unavailable> {
        let result = if let Some(why) = self.failed() {
            Err(Unavailable::new(format!("this site's TSO stopped: {why}"), Duration::from_secs(5)))
        } else if self.leading_term().is_some() {
            self.issue_held(count).await
        } else if let Some(first) = self.issue_as_lame_duck(count) {
            Ok(first)
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
        let result = if let Some(why) = self.failed() {
            Err(Unavailable::new(format!("this site's TSO stopped: {why}"), Duration::from_secs(5)))
        } else if self.leading_term().is_some() {
            self.issue_held(count).await
        } else if let Some(first) = self.issue_as_lame_duck(count) {
            Ok(first)
        } else {
            Err(Unavailable::new("this site does not lead the TSO group", Duration::from_millis(20)))
        };
        self.count(&result, count);
        result
    }

    /// Issues from the lease of a term this site no longer leads, while
    /// that lease surely holds (`latest` below its committed end): every
    /// successor waits for its `earliest` to pass that end, so these
    /// timestamps are below and before all of the successor's. Never waits.
    fn issue_as_lame_duck(&self, count: u32) -> Option<HybridTimestamp> {
        let now = self.site_now().ok()?;
        let top = Allocator::top_of(now).ok()?;
        let mut guard = self.allocator.locked();
        guard.as_mut()?.issue_from(count, now, top).ok()
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
                let mut guard = self.allocator.locked();
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
                Err(Refusal::LeaseExpired) if self.handing_over_announced() => {
                    // No renewal is coming: the client retries at the successor.
                    return Err(Unavailable::new(
                        "the TSO leader is handing over to another site",
                        Duration::from_millis(5),
                    ));
                }
                Err(Refusal::NoLease | Refusal::LeaseExpired) => None,
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                let why = attempt.err().map_or_else(String::new, |r| r.to_string());
                debug!(%why, "TSO request held in vain");
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

    /// Follows Raft's leadership; proposes leases while leading, and hands
    /// leadership over to a better site once it is caught up.
    async fn lead(self: Arc<Self>) {
        let mut metrics = self.raft.metrics();
        let mut leading_since: Option<(u64, Instant)> = None;
        loop {
            let timing = self.timing();
            let tick = (timing.renew_left / 8).clamp(Duration::from_millis(2), Duration::from_millis(50));
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(tick) => {}
            }
            let term = self.leading_term();
            let now = self.site_now().ok();
            if term.is_none() && leading_since.is_some() {
                // Requests held for a lease of ours give up at once.
                self.lease_changed.notify_waiters();
            }
            match (term, leading_since) {
                (Some(t), Some((since_term, _))) if since_term == t => {}
                (Some(t), _) => leading_since = Some((t, Instant::now())),
                (None, _) => leading_since = None,
            }
            let wants = {
                let mut guard = self.allocator.locked();
                match term {
                    None => {
                        // A lame duck issues until its lease ends (module doc).
                        let ended = match (guard.as_ref(), now) {
                            (Some(a), Some(now)) => a.lease_left(now).is_zero(),
                            (Some(_), None) => true,
                            (None, _) => false,
                        };
                        if ended && guard.take().is_some() {
                            info!("no longer leading the TSO group; the last lease has ended");
                        }
                        *self.handover.locked() = None;
                        None
                    }
                    Some(t) => {
                        if guard.as_ref().map(Allocator::term) != Some(t) {
                            info!(term = t, "leading the TSO group; taking a lease");
                            *guard = Some(Allocator::new(t));
                        }
                        match (guard.as_ref(), now) {
                            (Some(a), Some(now)) => {
                                let led = leading_since.map_or(Duration::ZERO, |(_, at)| at.elapsed());
                                if self.handing_over(t, a, now, led, &timing) {
                                    None
                                } else if a.wants_renewal(now, timing.renew_left) && self.fit_to_propose(&now) {
                                    Some((t, now))
                                } else {
                                    None
                                }
                            }
                            _ => None,
                        }
                    }
                }
            };
            if let Some((t, now)) = wants {
                if !self.proposing.swap(true, Ordering::AcqRel) {
                    tokio::spawn(Arc::clone(&self).propose(t, now, timing.lease));
                }
            }
        }
    }

    /// Whether this leader is handing over (and so does not renew): picks a
    /// successor when a better site is live and caught up and this site has
    /// led for a while, stops renewing, and announces the handover once its
    /// lease has about as much left as the successor needs to start; gives
    /// it up when it did not happen in time.
    fn handing_over(
        self: &Arc<Self>,
        term: u64,
        a: &Allocator,
        now: TimeInterval,
        led: Duration,
        timing: &Timing,
    ) -> bool {
        let mut slot = self.handover.locked();
        if let Some((h, since, announced)) = *slot {
            let to_successor = self.round_trip_to(h.to).unwrap_or(timing.round_trips.max);
            // Announced, the successor campaigns at once: a vote round trip
            // and a margin. Pending, the lease runs out within one lease.
            let late = match announced {
                Some(at) => at.elapsed() >= timing.election + to_successor * 2,
                None => since.elapsed() >= timing.lease * 2,
            };
            if h.term != term || late {
                warn!(to = self.conns.name(h.to).unwrap_or("?"), "TSO handover did not happen in time; leading on");
                *slot = None;
                *self.handover_not_before.locked() = Some(Instant::now() + HANDOVER_RETRY);
                return false;
            }
            if announced.is_none() && election::handover_due(a.lease_left(now), to_successor, timing.round_trips.quorum)
            {
                info!(to = self.conns.name(h.to).unwrap_or("?"), "handing TSO leadership over to a better site");
                *slot = Some((h, since, Some(Instant::now())));
                drop(slot);
                self.hello_all(*timing);
            }
            return true;
        }
        if led < LEAD_BEFORE_HANDOVER || a.fence_ns().is_none() {
            return false;
        }
        if self.handover_not_before.locked().is_some_and(|t| Instant::now() < t) {
            return false;
        }
        let mine = self.merit();
        let m = self.raft.metrics().borrow().clone();
        let caught_up = |id: NodeId| {
            m.replication.as_ref().and_then(|r| r.get(&id)).and_then(|l| l.map(|l| l.index)) == m.last_log_index
        };
        let best = self
            .fresh_merits()
            .into_iter()
            .filter(|(id, merit)| {
                merit.better_than(&mine) && merit.ready_to_succeed(mine.half_width_us) && caught_up(*id)
            })
            .reduce(|x, y| if y.1.better_than(&x.1) { y } else { x });
        let Some((to, _)) = best else { return false };
        debug!(to = self.conns.name(to).unwrap_or("?"), "a better site is caught up: no more renewals");
        *slot = Some((Handover { to, term }, Instant::now(), None));
        true
    }

    /// This leader announced a handover (it renews no more).
    fn handing_over_announced(&self) -> bool {
        self.handover.locked().is_some_and(|(_, _, a)| a.is_some())
    }

    /// The round trip to peer `id`, if measured.
    fn round_trip_to(&self, id: NodeId) -> Option<Duration> {
        self.conns.round_trips().into_iter().find(|(peer, _)| *peer == id).and_then(|(_, r)| r)
    }

    /// Proposes a lease ending `lease` after `now.latest` and records it
    /// once committed.
    async fn propose(self: Arc<Self>, term: u64, now: TimeInterval, lease: Duration) {
        let end_ns = now.latest().as_nanos().saturating_add(u64::try_from(lease.as_nanos()).unwrap_or(u64::MAX));
        let command = Command::Lease(Lease { holder: self.me, term, end_ns });
        let asked = Instant::now();
        match tokio::time::timeout(lease, self.raft.client_write(command)).await {
            Ok(Ok(response)) => {
                debug!(term, took = ?asked.elapsed(), fence_before = response.data.previous_end_ns, "lease committed");
                let mut guard = self.allocator.locked();
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

    /// This site's operator votes to reset the fence, for `reason`
    /// ([`super::reset`]): the vote's floor is taken from this site's
    /// bound (which must be fit to propose a lease), and the vote goes to
    /// the leader, which commits it in this site's name.
    pub async fn vote_reset(&self, reason: &str) -> Result<ResetVoteAnswer, String> {
        super::reset::check_reason(reason)?;
        if let Some(why) = self.failed() {
            return Err(format!("this site's TSO stopped: {why}"));
        }
        let now = self.site_now().map_err(|e| format!("this site's clock has no bound: {e}"))?;
        if !self.fit_to_propose(&now) {
            return Err(format!(
                "this site's clock is not synchronized within [tso] max-half-width-ms ({} ms): a vote needs a \
                 good bound to set the lowest fence it allows",
                self.max_half_width.as_millis()
            ));
        }
        let margin = timing::LEASE_MAX.saturating_add(self.max_half_width.saturating_mul(2));
        let at_ns = now.latest().as_nanos();
        let request = ResetVoteRequest {
            at_ns,
            floor_ns: at_ns.saturating_add(u64::try_from(margin.as_nanos()).unwrap_or(u64::MAX)),
            reason: reason.to_owned(),
        };
        // Leadership may be changing hands (an election, a lame duck, a
        // leader not yet holding a lease): the vote goes to whoever leads,
        // asked again for up to half of VOTE_TIMEOUT rather than failing
        // the operator's command on a transient answer.
        let deadline = tokio::time::Instant::now() + VOTE_TIMEOUT / 2;
        loop {
            let leader = self.raft.metrics().borrow().current_leader;
            let result = match leader {
                None => Err(NOT_LEADING.to_owned()),
                Some(id) if id == self.me => self.commit_vote(self.me, request.clone()).await,
                Some(id) => {
                    let name = self.conns.name(id).unwrap_or("?");
                    super::network::reset_vote(&self.conns, &self.group, id, &request, VOTE_TIMEOUT)
                        .await
                        .map_err(|e| format!("sending the vote to the TSO leader {name}: {e}"))?
                        .map_err(|e| format!("the TSO leader {name}: {e}"))
                }
            };
            match result {
                Err(why) if why.ends_with(NOT_LEADING) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(why) if leader.is_none() => {
                    return Err(format!(
                        "no TSO leader elected ({why}): the vote needs one to be committed; try again"
                    ));
                }
                other => return other,
            }
        }
    }

    /// As leader: commits `site`'s vote (`site` is the authenticated
    /// sender, or this site), and once a reset takes effect, starts the
    /// allocator afresh so that it learns the lowered fence from its next
    /// lease.
    async fn commit_vote(&self, site: NodeId, request: ResetVoteRequest) -> Result<ResetVoteAnswer, String> {
        super::reset::check_reason(&request.reason)?;
        if request.floor_ns < request.at_ns {
            return Err("the vote's floor is below its own time".into());
        }
        let Some(term) = self.leading_term() else {
            return Err(NOT_LEADING.into());
        };
        let vote = ResetVote {
            site,
            reset: self.applied.borrow().resets.saturating_add(1),
            at_ns: request.at_ns,
            floor_ns: request.floor_ns,
            sites: self.sites,
            reason: request.reason,
        };
        let written = tokio::time::timeout(VOTE_TIMEOUT, self.raft.client_write(Command::FenceResetVote(vote)))
            .await
            .map_err(|_| "the vote was not committed in time".to_owned())?
            .map_err(|e| format!("the vote was not committed: {e}"))?;
        let applied = written.data;
        let outcome = applied.vote.unwrap_or_default();
        if outcome.applied {
            let mut guard = self.allocator.locked();
            if guard.as_ref().is_some_and(|a| a.term() == term) {
                *guard = Some(Allocator::new(term));
            }
            drop(guard);
            self.lease_changed.notify_waiters();
        }
        Ok(ResetVoteAnswer { outcome, fence_before_ns: applied.previous_end_ns, fence_after_ns: applied.end_ns })
    }

    /// Sends what is queued to the leader, in batches ([`Forwarder`]
    /// decides which calls go together, and splits the answers).
    async fn forward(self: Arc<Self>, mut queued: mpsc::Receiver<Pending>) {
        let mut core = Forwarder::new(MAX_IN_FLIGHT);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let mut open = true;
        loop {
            while let Some(batch) = core.next_batch() {
                let (node, done) = (Arc::clone(&self), done_tx.clone());
                tokio::spawn(async move {
                    let result = node.forward_batch(batch.total()).await;
                    let _ = done.send((batch, result));
                });
            }
            tokio::select! {
                pending = queued.recv(), if open && core.waiting() < QUEUE => match pending {
                    Some(p) => {
                        core.push(p.reply, p.count);
                        while core.waiting() < QUEUE {
                            let Ok(p) = queued.try_recv() else { break };
                            core.push(p.reply, p.count);
                        }
                    }
                    None => open = false,
                },
                Some((batch, result)) = done_rx.recv() => {
                    for (reply, answer) in core.complete(batch, result) {
                        // A client that gave up is simply gone.
                        let _ = reply.send(answer);
                    }
                }
            }
            if !open && core.in_flight() == 0 {
                return;
            }
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
        let applied = self.applied.borrow().clone();
        let (lease_end_ns, last_issued) = {
            let guard = self.allocator.locked();
            guard.as_ref().map_or((None, None), |a| (Some(a.lease_end_ns()), a.last().map(HybridTimestamp::raw)))
        };
        let name = |id: NodeId| {
            if id == self.me { "(this site)".to_owned() } else { self.conns.name(id).unwrap_or("?").to_owned() }
        };
        // The audit names every site, this one included.
        let site_name = |id: NodeId| {
            if id == self.me { self.site.clone() } else { self.conns.name(id).unwrap_or("?").to_owned() }
        };
        let role = self.role(&m);
        let mine = self.merit();
        let merits = self.fresh_merits();
        let leader_priority = match m.current_leader {
            Some(id) if id == self.me => self.priority,
            Some(id) => merits.iter().find(|(p, _)| *p == id).and_then(|(_, merit)| merit.priority),
            None => None,
        };
        let others: Vec<Merit> = merits.iter().map(|(_, merit)| *merit).collect();
        let timing = self.timing();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let handover_to = self.handover.locked().map(|(h, _, _)| name(h.to));
        TsoStatus {
            role,
            leader: m.current_leader.map(name),
            term: m.current_term,
            applied_index: m.last_applied.map(|l| l.index),
            fence_ns: applied.fence.as_nanos(),
            lease_end_ns,
            last_issued,
            issued: self.issued.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            forwarded_batches: self.forwarded.load(Ordering::Relaxed),
            priority: self.priority,
            leader_priority,
            why_leading: (role == Role::Leader).then(|| mine.why(&others)),
            handover_to,
            timing: Some(TsoTimingStatus {
                round_trip_ms: ms(timing.round_trips.max),
                quorum_round_trip_ms: ms(timing.round_trips.quorum),
                heartbeat_ms: ms(timing.heartbeat),
                election_timeout_ms: ms(timing.election),
                stickiness_ms: ms(timing.stickiness),
                lease_ms: ms(timing.lease),
                renew_left_ms: ms(timing.renew_left),
                vote_timeout_ms: ms(self.fixed.vote_timeout),
                explicit: self.overrides != Overrides::default(),
                problem: self.timing_problem.locked().clone(),
            }),
            failed: self.failed(),
            fence_resets: applied.resets,
            pending_reset: applied.pending_reset.as_ref().map(|p| TsoResetStatus {
                reset: applied.resets.saturating_add(1),
                voters: p.votes.iter().map(|v| site_name(v.site)).collect(),
                needed: super::reset::majority(self.sites),
                reasons: p.votes.iter().map(|v| v.reason.clone()).collect(),
                from_ns: applied.fence.as_nanos(),
                to_ns: None,
            }),
            last_reset: applied.last_reset.as_ref().map(|r| TsoResetStatus {
                reset: r.reset,
                voters: r.votes.iter().map(|v| site_name(v.site)).collect(),
                needed: super::reset::majority(r.votes.first().map_or(self.sites, |v| v.sites)),
                reasons: r.votes.iter().map(|v| v.reason.clone()).collect(),
                from_ns: r.from_ns,
                to_ns: Some(r.to_ns),
            }),
        }
    }
}

/// Locks a mutex whose data stays valid if a holder panicked (plain
/// values, each written whole).
trait Locked<T> {
    fn locked(&self) -> std::sync::MutexGuard<'_, T>;
}

impl<T> Locked<T> for Mutex<T> {
    fn locked(&self) -> std::sync::MutexGuard<'_, T> {
        self.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A random number from the OS (the middle of the range if it fails).
fn random_u16() -> u16 {
    let mut bytes = [0u8; 2];
    if SystemRandom::new().fill(&mut bytes).is_ok() { u16::from_be_bytes(bytes) } else { u16::MAX / 2 }
}
