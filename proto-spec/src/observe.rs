//! What the daemon reports about itself: one typed schema, written by `tsod`
//! and read back by everything else.
//!
//! `tsod run` writes a [`StatusSnapshot`] about once a second to the status
//! file beside its segment ([`status_path`]), replaced atomically; `tsod
//! status` prints it, the testbed's view, timeline and TSO checks read it,
//! `tsbench` waits on it, and any future tool (metrics, packaging checks)
//! reads the same types. No tool parses the status by hand: a field added
//! here reaches every reader, and a field removed breaks them at compile
//! time rather than at run time.
//!
//! The segment carries the bound; this file carries the explanation:
//! sources and their verdicts, the drift model, the other sites and their
//! links, the endpoint's refusals, and the TSO. It is not a time source —
//! nothing in it may be used to build an interval.
//!
//! Field names are stable (snake_case, as [`StatusSnapshot`] spells them);
//! new fields get `#[serde(default)]` so older files still read. A site's
//! report ([`SiteSummary`]) keeps the JSON form of the wire report (SPEC.md
//! §4.6: kebab-case keys, durations in ns), so `tsod status --json` and
//! `tsod decode` of a gossip message show the same shape.
//!
//! Pure data: [`StatusSnapshot::from_json`] and [`StatusSnapshot::to_json`]
//! convert bytes; reading and writing the file is the caller's business.

use core::fmt;
use core::time::Duration;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::wire::{MAX_SOURCES, SiteReport, SourceKind, SourceReport};
use crate::{ClockStatus, DriftModel, Offset, Ppb, Timescale};

/// The daemon's state, as `tsod status --json` prints it and the status
/// file holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    /// The published status.
    pub status: ClockStatus,
    /// Half-width of the published interval at its reference, ns (`None`:
    /// no valid bound).
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
    pub local_status: Option<ClockStatus>,
    /// The other sites: the link to each and the last report it gossiped.
    #[serde(default)]
    pub peers: Vec<PeerSnapshot>,
    /// Refusals counted by the QUIC endpoint.
    #[serde(default)]
    pub endpoint: EndpointCounters,
    /// The replicated TSO, when this site runs it.
    #[serde(default)]
    pub tso: Option<TsoStatus>,
    /// The published interval's latest end at the tick this snapshot
    /// describes (ns on the service timescale), when that interval is a
    /// valid bound: the side a TSO leader judges its lease by, so a reader
    /// can tell the lease's margin (`tso.lease_end_ns` minus this) without
    /// a clock of its own. It dates the snapshot; it is not a time source.
    #[serde(default)]
    pub bound_latest_ns: Option<u64>,
    /// The NTP server (`[ntp-server]`), when it runs.
    #[serde(default)]
    pub ntp_server: Option<NtpServerStatus>,
}

impl StatusSnapshot {
    /// Parses a status file's contents.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The status file's contents (pretty-printed JSON).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec_pretty(self)
    }
}

/// `<segment>.status.json`: where the daemon publishing `segment` writes
/// its status.
pub fn status_path(segment: &Path) -> PathBuf {
    let mut name = segment.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".status.json");
    segment.with_file_name(name)
}

/// One source in a [`StatusSnapshot`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSnapshot {
    /// Configured name.
    pub name: String,
    /// What kind of source.
    #[serde(with = "kind_name")]
    pub kind: SourceKind,
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

/// A site's report (SPEC.md §4.6), owned: what a site says about itself in
/// gossip and status responses. The daemon builds its own with
/// `generation` 0 and stamps the generation when it sends
/// ([`SiteSummary::to_wire`]); receivers keep the last one per peer
/// ([`SiteSummary::from_wire`]); the client's `RemoteClock::site_report`
/// returns one. Its JSON form is the spec's report JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SiteSummary {
    /// The site's name.
    pub site: String,
    /// Increases with every report the site makes.
    pub generation: u64,
    /// Status of the site's published interval (all sources, peers included).
    pub status: ClockStatus,
    /// Status of its local basis (its own sources only).
    pub local_status: ClockStatus,
    /// The timescale it runs.
    pub timescale: Timescale,
    /// Half-width of its published interval; `None` when it has no valid bound.
    #[serde(with = "opt_nanos")]
    pub half_width: Option<Duration>,
    /// Its drift bound ρ.
    pub drift_bound: Ppb,
    /// Its sources (at most [`MAX_SOURCES`] are sent).
    pub sources: Vec<SourceSummary>,
}

/// One of a site's sources, in a [`SiteSummary`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SourceSummary {
    /// What kind of source.
    #[serde(with = "kind_name")]
    pub kind: SourceKind,
    /// Its configured name.
    pub name: String,
    /// It currently yields samples.
    pub usable: bool,
    /// Selection rejected it: its interval disagrees with the majority.
    pub falseticker: bool,
    /// Midpoint of its interval minus the midpoint of the site's published interval.
    pub offset: Offset,
    /// Half-width of its interval, projected to the report's instant.
    #[serde(with = "nanos")]
    pub error: Duration,
}

impl SiteSummary {
    /// The owned form of a received report.
    pub fn from_wire(report: &SiteReport<'_>) -> Self {
        Self {
            site: report.site.to_owned(),
            generation: report.generation,
            status: report.status,
            local_status: report.local_status,
            timescale: report.timescale,
            half_width: report.half_width,
            drift_bound: report.drift_bound,
            sources: report
                .sources
                .iter()
                .map(|s| SourceSummary {
                    kind: s.kind,
                    name: s.name.to_owned(),
                    usable: s.usable,
                    falseticker: s.falseticker,
                    offset: s.offset,
                    error: s.error,
                })
                .collect(),
        }
    }

    /// The wire form with `generation`: the half-width is present exactly
    /// when the status is bounded (SPEC.md §4.6), the drift bound is clamped
    /// to what the wire allows, and at most [`MAX_SOURCES`] sources go.
    pub fn to_wire(&self, generation: u64) -> SiteReport<'_> {
        let half_width = if self.status.is_bounded() { Some(self.half_width.unwrap_or(Duration::ZERO)) } else { None };
        SiteReport {
            generation,
            site: &self.site,
            status: self.status,
            local_status: self.local_status,
            timescale: self.timescale,
            half_width,
            drift_bound: Ppb::new(self.drift_bound.get().clamp(0, DriftModel::MAX_RATE.get())),
            sources: self
                .sources
                .iter()
                .take(MAX_SOURCES)
                .map(|s| SourceReport {
                    kind: s.kind,
                    name: &s.name,
                    usable: s.usable,
                    falseticker: s.falseticker,
                    offset: s.offset,
                    error: s.error,
                })
                .collect(),
        }
    }
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

/// The NTP server's state and counters (SPEC.md §2.7).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NtpServerStatus {
    /// The addresses it listens on.
    pub listen: Vec<String>,
    /// The stratum it serves; `None` while it answers "unsynchronized".
    pub stratum: Option<u8>,
    /// The reference ID it serves (`GPS`, `PPS`, or an upstream's address).
    pub reference_id: Option<String>,
    /// Datagrams received.
    pub requests: u64,
    /// Replies sent (time, or "unsynchronized"), kiss-o'-death not included.
    pub replies: u64,
    /// Of the replies, those with leap indicator 3 (no valid bound).
    pub unsynchronized_replies: u64,
    /// Datagrams dropped unanswered: too short, not mode 3, version 0 or above 4.
    pub dropped_malformed: u64,
    /// Requests over a client's rate limit (dropped, or kissed).
    pub rate_limited: u64,
    /// `RATE` kiss-o'-death replies sent.
    pub kod_sent: u64,
    /// Replies the kernel would not send.
    pub send_errors: u64,
}

/// A site's part in the replicated TSO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TsoRole {
    /// Leads with a quorum: issues timestamps inside its lease.
    Leader,
    /// Raft says it leads, but it is restored or cut off: it issues nothing.
    LeaderWithoutQuorum,
    /// Follows a leader (or waits for one); forwards its clients' requests.
    Follower,
    /// Campaigning.
    Candidate,
    /// Not (yet) a voter: catching up.
    Learner,
    /// Raft stopped; the TSO answers nothing.
    #[default]
    Shutdown,
}

impl TsoRole {
    /// The kebab-case name, as in the JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Leader => "leader",
            Self::LeaderWithoutQuorum => "leader-without-quorum",
            Self::Follower => "follower",
            Self::Candidate => "candidate",
            Self::Learner => "learner",
            Self::Shutdown => "shutdown",
        }
    }
}

impl fmt::Display for TsoRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `tsod status` shows about the TSO.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TsoStatus {
    /// This site's role.
    pub role: TsoRole,
    /// The site this one believes leads, if any (`(this site)` for itself).
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
    /// Why this site leads (when it does): priority or round trip, in words.
    #[serde(default)]
    pub why_leading: Option<String>,
    /// As leader: the site leadership is being handed over to.
    #[serde(default)]
    pub handover_to: Option<String>,
    /// The timing in force.
    #[serde(default)]
    pub timing: Option<TsoTimingStatus>,
    /// Why this site's Raft node stopped for good (a storage error such as
    /// a full disk, or a panic inside it), if it did: the site then serves
    /// no TSO timestamps until tsod is restarted; its time is still published.
    #[serde(default)]
    pub failed: Option<String>,
    /// Operator fence resets applied in the group's history.
    #[serde(default)]
    pub fence_resets: u64,
    /// Votes for the next fence reset, not yet a majority.
    #[serde(default)]
    pub pending_reset: Option<TsoResetStatus>,
    /// The last fence reset (the audit record).
    #[serde(default)]
    pub last_reset: Option<TsoResetStatus>,
}

/// A fence reset (`tsod tso reset-fence`), pending or done.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TsoResetStatus {
    /// Its number (1 for the group's first).
    pub reset: u64,
    /// The sites whose operators voted for it, in order.
    pub voters: Vec<String>,
    /// Votes it needs (a majority of the sites).
    pub needed: u32,
    /// Their reasons, in the same order.
    pub reasons: Vec<String>,
    /// The fence before it (ns; pending: the fence now).
    pub from_ns: u64,
    /// The fence after it (ns), once done.
    pub to_ns: Option<u64>,
}

impl TsoStatus {
    /// Leads with a committed lease: the site that issues timestamps now.
    pub fn issuing(&self) -> bool {
        self.role == TsoRole::Leader && self.lease_end_ns.is_some_and(|end| end > 0)
    }
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

/// A [`SourceKind`] as its kebab-case name (`ntp`, `gpsd`, `kernel`, `peer`).
mod kind_name {
    use super::{Deserialize, Deserializer, Serialize, Serializer, SourceKind};

    pub(super) fn serialize<S: Serializer>(kind: &SourceKind, s: S) -> Result<S::Ok, S::Error> {
        kind.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SourceKind, D::Error> {
        let name = String::deserialize(d)?;
        [SourceKind::Ntp, SourceKind::Gpsd, SourceKind::Kernel, SourceKind::Peer]
            .into_iter()
            .find(|k| super::source_kind_name(*k) == name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown source kind `{name}`")))
    }
}

/// The kebab-case name of a source kind (`ntp`, `gpsd`, `kernel`, `peer`).
pub const fn source_kind_name(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Ntp => "ntp",
        SourceKind::Gpsd => "gpsd",
        SourceKind::Kernel => "kernel",
        SourceKind::Peer => "peer",
    }
}

/// A duration as whole nanoseconds.
mod nanos {
    use super::{Deserialize, Deserializer, Duration, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_nanos)
    }
}

/// An optional duration as whole nanoseconds, or `null`.
mod opt_nanos {
    use super::{Deserialize, Deserializer, Duration, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::nanos::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> SiteSummary {
        SiteSummary {
            site: "bj-a".into(),
            generation: 7,
            status: ClockStatus::Synchronized,
            local_status: ClockStatus::Degraded,
            timescale: Timescale::UtcSmear24h,
            half_width: Some(Duration::from_micros(40)),
            drift_bound: Ppb::from_ppm(15),
            sources: vec![SourceSummary {
                kind: SourceKind::Gpsd,
                name: "gps0".into(),
                usable: true,
                falseticker: false,
                offset: Offset::from_nanos(-1_200),
                error: Duration::from_micros(3),
            }],
        }
    }

    fn snapshot() -> StatusSnapshot {
        StatusSnapshot {
            status: ClockStatus::Synchronized,
            half_width_ns: Some(40_000),
            frequency_ppb: Some(-1_500),
            drift_bound_ppb: Some(5_700),
            disruption_count: 1,
            pid: 42,
            sources: vec![SourceSnapshot {
                name: "ntp0".into(),
                kind: SourceKind::Ntp,
                usable: true,
                falseticker: false,
                offset_ns: Some(12),
                error_ns: Some(30_000),
                samples: 9,
                rejects: 1,
                last_error: Some("origin timestamp mismatch".into()),
            }],
            site: Some("bj-a".into()),
            local_status: Some(ClockStatus::Synchronized),
            peers: vec![PeerSnapshot { name: "xa".into(), report: Some(summary()), ..PeerSnapshot::default() }],
            endpoint: EndpointCounters { bad_datagrams: 3, ..EndpointCounters::default() },
            tso: Some(TsoStatus {
                role: TsoRole::LeaderWithoutQuorum,
                lease_end_ns: Some(5),
                timing: Some(TsoTimingStatus { lease_ms: 200, ..TsoTimingStatus::default() }),
                failed: Some("storage error".into()),
                ..TsoStatus::default()
            }),
            bound_latest_ns: Some(1_700_000_000_000_040_000),
            ntp_server: Some(NtpServerStatus {
                listen: vec!["0.0.0.0:123".into()],
                stratum: Some(1),
                reference_id: Some("PPS".into()),
                requests: 10,
                replies: 7,
                rate_limited: 3,
                kod_sent: 1,
                ..NtpServerStatus::default()
            }),
        }
    }

    #[test]
    fn a_snapshot_round_trips_through_its_json() {
        let s = snapshot();
        let json = s.to_json().unwrap();
        assert_eq!(StatusSnapshot::from_json(&json).unwrap(), s);
    }

    #[test]
    fn json_names_are_the_documented_ones() {
        let v: serde_json::Value = serde_json::from_slice(&snapshot().to_json().unwrap()).unwrap();
        assert_eq!(v["status"], "synchronized");
        assert_eq!(v["local_status"], "synchronized");
        assert_eq!(v["sources"][0]["kind"], "ntp");
        assert_eq!(v["tso"]["role"], "leader-without-quorum");
        assert_eq!(v["tso"]["failed"], "storage error");
        assert_eq!(v["ntp_server"]["kod_sent"], 1);
        assert_eq!(v["ntp_server"]["reference_id"], "PPS");
        let report = &v["peers"][0]["report"];
        assert_eq!(report["local-status"], "degraded");
        assert_eq!(report["half-width"], 40_000);
        assert_eq!(report["drift-bound"], 15_000);
        assert_eq!(report["sources"][0]["kind"], "gpsd");
        assert_eq!(report["sources"][0]["offset"], -1_200);
        assert_eq!(report["sources"][0]["error"], 3_000);
    }

    #[test]
    fn an_older_file_without_the_newer_fields_still_reads() {
        let old = br#"{"status":"free-running","half_width_ns":null,"frequency_ppb":null,
            "drift_bound_ppb":null,"disruption_count":0,"pid":1,"sources":[]}"#;
        let s = StatusSnapshot::from_json(old).unwrap();
        assert_eq!(s.status, ClockStatus::FreeRunning);
        assert!(s.tso.is_none() && s.peers.is_empty() && s.site.is_none() && s.bound_latest_ns.is_none());
        assert!(s.ntp_server.is_none());
    }

    #[test]
    fn unknown_roles_kinds_and_statuses_are_errors_not_defaults() {
        let json = String::from_utf8(snapshot().to_json().unwrap()).unwrap();
        for (from, to) in
            [("\"leader-without-quorum\"", "\"boss\""), ("\"ntp\"", "\"sundial\""), ("\"degraded\"", "\"fine\"")]
        {
            let bad = json.replacen(from, to, 1);
            assert!(StatusSnapshot::from_json(bad.as_bytes()).is_err(), "{to} accepted");
        }
    }

    #[test]
    fn the_wire_form_round_trips_and_keeps_the_half_width_rule() {
        let s = summary();
        assert_eq!(SiteSummary::from_wire(&s.to_wire(7)), s);
        let unbounded = SiteSummary { status: ClockStatus::Unsynchronized, ..summary() };
        assert_eq!(unbounded.to_wire(1).half_width, None);
        let bounded_without = SiteSummary { half_width: None, ..summary() };
        assert_eq!(bounded_without.to_wire(1).half_width, Some(Duration::ZERO));
    }

    #[test]
    fn roles_name_themselves_as_in_the_json() {
        for role in [
            TsoRole::Leader,
            TsoRole::LeaderWithoutQuorum,
            TsoRole::Follower,
            TsoRole::Candidate,
            TsoRole::Learner,
            TsoRole::Shutdown,
        ] {
            assert_eq!(serde_json::to_value(role).unwrap(), role.name());
        }
        assert!(TsoStatus { role: TsoRole::Leader, lease_end_ns: Some(1), ..TsoStatus::default() }.issuing());
        assert!(!TsoStatus { role: TsoRole::Leader, lease_end_ns: None, ..TsoStatus::default() }.issuing());
    }

    #[test]
    fn the_status_file_sits_beside_the_segment() {
        assert_eq!(status_path(Path::new("/run/tsod/segment")), PathBuf::from("/run/tsod/segment.status.json"));
    }
}
