//! The daemon's status for `tsod status`: a small JSON file beside the
//! segment, `<segment>.status.json`, replaced atomically (write + rename)
//! about once a second. The segment carries the bound; this file carries the
//! explanation (sources, falsetickers, the drift model) for people and scripts.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tsod_proto::ClockStatus;
use tsod_proto::wire::SourceKind;

use crate::engine::{SourceState, Tick};

/// What `tsod status --json` prints (stable field names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    /// The published status.
    pub status: ClockStatus,
    /// Half-width of the published interval at its reference, ns.
    pub half_width_ns: Option<u64>,
    /// Measured frequency error of the reader clock, ppb.
    pub frequency_ppb: Option<i64>,
    /// Bound ρ on the residual rate error, ppb.
    pub drift_bound_ppb: Option<i64>,
    /// Disruptions seen on the segment.
    pub disruption_count: u64,
    /// The daemon's process id.
    pub pid: u32,
    /// Per source.
    pub sources: Vec<SourceSnapshot>,
    /// This site's name, when it is part of a cluster.
    #[serde(default)]
    pub site: Option<String>,
    /// Status of the local basis (own sources only), when part of a cluster.
    #[serde(default)]
    pub local_status: Option<String>,
    /// The other sites: the link to each and the last report it gossiped.
    #[serde(default)]
    pub peers: Vec<PeerSnapshot>,
    /// Refusals counted by the QUIC endpoint.
    #[serde(default)]
    pub endpoint: EndpointCounters,
    /// The replicated TSO, when this site runs it.
    #[serde(default)]
    pub tso: Option<TsoStatus>,
}

/// What `tsod status` shows about the TSO.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TsoStatus {
    /// `leader`, `leader-without-quorum` (restored or cut off; it issues
    /// nothing), `follower`, `candidate`, `learner` or `shutdown`.
    pub role: String,
    /// The site this one believes leads, if any.
    pub leader: Option<String>,
    /// The Raft term.
    pub term: u64,
    /// Last log index applied.
    pub applied_index: Option<u64>,
    /// The fence: largest committed lease end (ns), the window end.
    pub fence_ns: u64,
    /// This site's own committed lease end when it leads (ns).
    pub lease_end_ns: Option<u64>,
    /// The last timestamp this site issued as leader (raw).
    pub last_issued: Option<u64>,
    /// Timestamps issued by this site as leader.
    pub issued: u64,
    /// Requests refused (unavailable).
    pub refused: u64,
    /// Batches forwarded to the leader.
    pub forwarded_batches: u64,
    /// This site's `leader-priority`.
    #[serde(default)]
    pub priority: Option<u32>,
    /// The leader's `leader-priority`, when known.
    #[serde(default)]
    pub leader_priority: Option<u32>,
    /// Why this site leads (when it does): priority or round trip.
    #[serde(default)]
    pub why_leading: Option<String>,
    /// As leader: the site leadership is being handed over to.
    #[serde(default)]
    pub handover_to: Option<String>,
    /// The timing in force.
    #[serde(default)]
    pub timing: Option<TsoTimingStatus>,
}

/// The TSO timing in force at a site (SPEC.md §4.14).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TsoTimingStatus {
    /// Largest round trip to a peer (ms).
    pub round_trip_ms: u64,
    /// Round trip to the nearest majority (ms).
    pub quorum_round_trip_ms: u64,
    /// Heartbeat interval (ms).
    pub heartbeat_ms: u64,
    /// Election timeout (ms).
    pub election_timeout_ms: u64,
    /// Pre-vote stickiness (ms).
    pub stickiness_ms: u64,
    /// Lease (ms).
    pub lease_ms: u64,
    /// Renewal point: lease left when the leader renews (ms).
    pub renew_left_ms: u64,
    /// Vote timeout fixed at start (ms).
    pub vote_timeout_ms: u64,
    /// Some of it was set explicitly in `[tso]`.
    pub explicit: bool,
    /// Why the explicit settings do not fit the measured round trips.
    pub problem: Option<String>,
}

/// One peer site in a [`StatusSnapshot`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSnapshot {
    /// The peer's site name.
    pub name: String,
    /// Its configured address.
    pub address: String,
    /// Our connection to it is up.
    pub connected: bool,
    /// Round trip of the last probe answered, ns.
    pub last_round_trip_ns: Option<u64>,
    /// Probes sent.
    pub probes_sent: u64,
    /// Replies that became samples.
    pub replies_used: u64,
    /// Replies refused (stale, replayed, inconsistent, unbounded …).
    pub replies_refused: u64,
    /// Times our connection to it was (re-)established.
    pub connects: u64,
    /// Dial attempts that failed (unreachable, refused, wrong certificate).
    #[serde(default)]
    pub dial_failures: u64,
    /// Why the last dial failed.
    #[serde(default)]
    pub last_dial_error: Option<String>,
    /// The last report it gossiped to us, if any.
    pub report: Option<SiteSummary>,
}

/// A site's report (SPEC.md §4.6) in owned, JSON-friendly form.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteSummary {
    /// The site's name.
    pub site: String,
    /// Its report generation.
    pub generation: u64,
    /// Status of its published interval.
    pub status: String,
    /// Status of its local basis.
    pub local_status: String,
    /// Half-width of its published interval, ns (`None`: no bound).
    pub half_width_ns: Option<u64>,
    /// Its drift bound, ppb.
    pub drift_bound_ppb: i64,
    /// Its sources.
    pub sources: Vec<ReportedSource>,
}

/// One source of a [`SiteSummary`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedSource {
    /// Configured name.
    pub name: String,
    /// `ntp`, `gpsd`, `kernel` or `peer`.
    pub kind: String,
    /// Yields samples.
    pub usable: bool,
    /// Rejected by the site's selection.
    pub falseticker: bool,
    /// Its midpoint minus the site's, ns.
    pub offset_ns: i64,
    /// Its half-width, ns.
    pub error_ns: u64,
}

/// Refusals at the QUIC endpoint (each one also logged).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointCounters {
    /// Handshakes that failed (foreign CA, expired or missing certificate, no common ALPN).
    pub handshakes_refused: u64,
    /// Peer connections whose certificate names no configured peer.
    pub unknown_peers: u64,
    /// Connections refused because too many were open.
    pub connections_over_limit: u64,
    /// Datagrams that did not decode or were the wrong kind.
    pub bad_datagrams: u64,
    /// Stream messages that did not decode or were the wrong kind.
    pub bad_messages: u64,
    /// Gossip reports dropped (stale generation, wrong timescale, inconsistent).
    pub gossip_refused: u64,
    /// Client requests refused by the rate limit.
    pub rate_limited: u64,
    /// Client requests answered.
    pub client_requests: u64,
}

/// The JSON name of a source kind (`ntp`, `gpsd`, `kernel`, `peer`).
pub fn kind_name(kind: SourceKind) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// One source in a [`StatusSnapshot`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSnapshot {
    /// Configured name.
    pub name: String,
    /// `ntp`, `gpsd`, `kernel` or `peer`.
    pub kind: String,
    /// Has a sample young enough to use.
    pub usable: bool,
    /// Rejected by selection.
    pub falseticker: bool,
    /// Its midpoint minus the bound's, ns.
    pub offset_ns: Option<i64>,
    /// Half-width of its projected interval, ns.
    pub error_ns: Option<u64>,
    /// Samples accepted.
    pub samples: u64,
    /// Inputs refused.
    pub rejects: u64,
    /// Why the last input was refused.
    pub last_error: Option<String>,
}

impl StatusSnapshot {
    /// The snapshot of a tick and the engine's sources.
    pub fn new<'a>(tick: &Tick, sources: impl Iterator<Item = &'a SourceState>) -> Self {
        let anchor = &tick.state.anchor;
        Self {
            status: anchor.status,
            half_width_ns: anchor
                .status
                .is_bounded()
                .then(|| u64::try_from(anchor.interval.half_width().as_nanos()).unwrap_or(u64::MAX)),
            frequency_ppb: tick.model.map(|m| m.frequency().get()),
            drift_bound_ppb: tick.model.map(|m| m.bound().get()),
            disruption_count: tick.state.disruption_count,
            pid: std::process::id(),
            sources: sources
                .map(|s| SourceSnapshot {
                    name: s.name.clone(),
                    kind: kind_name(s.kind),
                    usable: s.usable,
                    falseticker: s.falseticker,
                    offset_ns: s.offset.map(|o| o.as_nanos()),
                    error_ns: s.error.map(|e| u64::try_from(e.as_nanos()).unwrap_or(u64::MAX)),
                    samples: s.samples,
                    rejects: s.rejects,
                    last_error: s.last_error.clone(),
                })
                .collect(),
            site: None,
            local_status: None,
            peers: Vec::new(),
            endpoint: EndpointCounters::default(),
            tso: None,
        }
    }
}

/// `<segment>.status.json`.
pub fn status_path(segment: &Path) -> PathBuf {
    let mut name = segment.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".status.json");
    segment.with_file_name(name)
}

/// Writes `snapshot` to `path` atomically (temporary file, then rename).
pub fn write(path: &Path, snapshot: &StatusSnapshot) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(snapshot).map_err(io::Error::other)?;
    let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
}

/// Reads a snapshot.
pub fn read(path: &Path) -> io::Result<StatusSnapshot> {
    let text = std::fs::read(path)?;
    serde_json::from_slice(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
