//! What the metrics endpoint says: one [`StatusSnapshot`] as metric
//! families, encoded by `prometheus-client` (names, types, units, label
//! escaping) in either text format.
//!
//! Pure: a snapshot in, text out. The families are built afresh for each
//! scrape from the snapshot alone, so the output is exactly what `tsod
//! status` would show at that moment, in a fixed order.
//!
//! Conventions (Prometheus's): every name starts with `tsod_`; base units
//! in the name (`_seconds`, `_ratio` for rates such as ppb / 10⁹); counters
//! end in `_total`; a state (clock status, TSO role) is a gauge per state,
//! 1 for the current one and 0 for the others; a fact (version, site name)
//! is an info metric. Series whose value is unknown (no bound, no round
//! trip yet) are left out rather than given a made-up value. Label values
//! are the configured or reported names verbatim; the encoder escapes `\`,
//! `"` and newlines, so a hostile name cannot break the format.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use tsod_proto::ClockStatus;
use tsod_proto::observe::{PeerSnapshot, SourceSnapshot, StatusSnapshot, TsoRole, TsoStatus, source_kind_name};

use super::error::MetricsError;

/// The text formats the endpoint speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text: what Prometheus asks for first.
    OpenMetrics,
    /// The Prometheus text format 0.0.4: for clients that do not ask for
    /// OpenMetrics (curl, and `promtool check metrics`, which parses only this).
    Prometheus,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }

    /// The format a request's `Accept` header asks for: OpenMetrics when it
    /// names `application/openmetrics-text` with a non-zero `q`, else the
    /// Prometheus text format (as Prometheus's own exporters negotiate).
    pub fn negotiate(accept: Option<&str>) -> Self {
        let wants_openmetrics = accept.is_some_and(|accept| {
            accept.split(',').any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or_default();
                let refused = parts
                    .any(|p| p.strip_prefix("q=").is_some_and(|q| q.trim().parse::<f64>().is_ok_and(|q| q <= 0.0)));
                media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
            })
        });
        if wants_openmetrics { Self::OpenMetrics } else { Self::Prometheus }
    }
}

/// The metrics of `snapshot` as OpenMetrics text (ending in `# EOF`).
/// Without a snapshot (the daemon has not built its first one yet): only
/// `tsod_build_info` and `tsod_up 0`.
pub fn render(snapshot: Option<&StatusSnapshot>) -> Result<String, MetricsError> {
    render_as(snapshot, Format::OpenMetrics)
}

/// The metrics of `snapshot` in `format`.
pub fn render_as(snapshot: Option<&StatusSnapshot>, format: Format) -> Result<String, MetricsError> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(families(snapshot)));
    let mut out = String::new();
    match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry)?,
        Format::Prometheus => prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?,
    }
    Ok(out)
}

/// Every metric family of `snapshot`, in output order.
fn families(snapshot: Option<&StatusSnapshot>) -> Families {
    let mut out = Families::default();
    out.family("tsod_build", "The tsod version", None, Kind::Info)
        .add(vec![("version", env!("CARGO_PKG_VERSION").to_owned())], Value::Info);
    out.gauge("tsod_up", "1 once the daemon has built its first status snapshot (within a second of starting), else 0")
        .add(vec![], Value::flag(snapshot.is_some()));
    let Some(s) = snapshot else { return out };

    clock(&mut out, s);
    sources(&mut out, &s.sources);
    if let Some(site) = &s.site {
        out.family("tsod_site", "This daemon's site in its cluster", None, Kind::Info)
            .add(vec![("site", site.clone())], Value::Info);
        peers(&mut out, &s.peers);
        endpoint(&mut out, s);
    }
    if let Some(tso) = &s.tso {
        self::tso(&mut out, tso, s.bound_latest_ns);
    }
    if let Some(ntp) = &s.ntp_server {
        ntp_server(&mut out, ntp);
    }
    out
}

/// The NTP server's counters and what it serves.
fn ntp_server(out: &mut Families, n: &tsod_proto::observe::NtpServerStatus) {
    if let Some(stratum) = n.stratum {
        out.gauge("tsod_ntp_server_serving_stratum", "Stratum the NTP server serves while tsod has a bound")
            .add(vec![], Value::Whole(u64::from(stratum)));
    }
    let counts = [
        ("tsod_ntp_server_requests", "NTP datagrams received", n.requests),
        ("tsod_ntp_server_replies", "NTP replies sent (time or unsynchronized), kiss-o'-death excluded", n.replies),
        (
            "tsod_ntp_server_unsynchronized_replies",
            "NTP replies sent with leap indicator 3 (no bound)",
            n.unsynchronized_replies,
        ),
        ("tsod_ntp_server_dropped_malformed", "NTP datagrams dropped as malformed", n.dropped_malformed),
        ("tsod_ntp_server_rate_limited", "NTP requests over a client's rate limit", n.rate_limited),
        ("tsod_ntp_server_kod_sent", "RATE kiss-o'-death replies sent", n.kod_sent),
        ("tsod_ntp_server_send_errors", "NTP replies the kernel would not send", n.send_errors),
    ];
    for (name, help, count) in counts {
        out.counter(name, help).add(vec![], Value::Count(count));
    }
}

/// The published bound, its status and the drift model.
fn clock(out: &mut Families, s: &StatusSnapshot) {
    states(
        out.gauge("tsod_clock_status", "The published status: 1 for the current one, 0 for the others"),
        &[],
        "status",
        ClockStatus::ALL.map(ClockStatus::name),
        s.status.name(),
    );
    out.gauge(
        "tsod_clock_bounded",
        "1 when the published interval is a valid bound (synchronized, degraded or free-running)",
    )
    .add(vec![], Value::flag(s.status.is_bounded()));
    let half_width = out.seconds("tsod_bound_half_width", "Half-width of the published interval at its reference");
    if let Some(ns) = s.half_width_ns {
        half_width.add(vec![], Value::Float(seconds(ns)));
    }
    if let Some(local) = s.local_status {
        states(
            out.gauge("tsod_local_clock_status", "Status of the local basis (this site's own sources only)"),
            &[],
            "status",
            ClockStatus::ALL.map(ClockStatus::name),
            local.name(),
        );
    }
    let frequency = out.ratio("tsod_clock_frequency_error", "Measured frequency error of the reader clock");
    if let Some(ppb) = s.frequency_ppb {
        frequency.add(vec![], Value::Float(ratio(ppb)));
    }
    let drift = out.ratio("tsod_clock_drift_bound", "Bound rho on the reader clock's residual rate error");
    if let Some(ppb) = s.drift_bound_ppb {
        drift.add(vec![], Value::Float(ratio(ppb)));
    }
    out.counter("tsod_disruptions", "Disruptions (steps, suspends, migrations, restarts) seen on the segment")
        .add(vec![], Value::Count(s.disruption_count));
}

/// Each source (peers included): its interval and the verdicts on it.
fn sources(out: &mut Families, sources: &[SourceSnapshot]) {
    let labels = |s: &SourceSnapshot| vec![("source", s.name.clone()), ("kind", source_kind_name(s.kind).to_owned())];
    let each = |out: &mut Families, family: Family, value: &dyn Fn(&SourceSnapshot) -> Option<Value>| {
        let family = out.push(family);
        for s in sources {
            if let Some(v) = value(s) {
                family.add(labels(s), v);
            }
        }
    };
    each(out, Family::gauge("tsod_source_usable", "1 when the source has a sample young enough to use"), &|s| {
        Some(Value::flag(s.usable))
    });
    each(
        out,
        Family::gauge("tsod_source_falseticker", "1 when selection rejected the source as a falseticker"),
        &|s| Some(Value::flag(s.falseticker)),
    );
    each(out, Family::seconds("tsod_source_offset", "Midpoint of the source's interval minus the bound's"), &|s| {
        s.offset_ns.map(|ns| Value::Float(signed_seconds(ns)))
    });
    each(
        out,
        Family::seconds("tsod_source_half_width", "Half-width of the source's projected interval (its error)"),
        &|s| s.error_ns.map(|ns| Value::Float(seconds(ns))),
    );
    each(out, Family::counter("tsod_source_samples", "Samples accepted from the source"), &|s| {
        Some(Value::Count(s.samples))
    });
    each(out, Family::counter("tsod_source_rejects", "Inputs from the source refused"), &|s| {
        Some(Value::Count(s.rejects))
    });
}

/// The link to each other site, and the last report it gossiped.
fn peers(out: &mut Families, peers: &[PeerSnapshot]) {
    let labels = |p: &PeerSnapshot| vec![("peer", p.name.clone())];
    let each = |out: &mut Families, family: Family, value: &dyn Fn(&PeerSnapshot) -> Option<Value>| {
        let family = out.push(family);
        for p in peers {
            if let Some(v) = value(p) {
                family.add(labels(p), v);
            }
        }
    };
    each(out, Family::gauge("tsod_peer_connected", "1 when the connection to the peer is up"), &|p| {
        Some(Value::flag(p.connected))
    });
    each(out, Family::seconds("tsod_peer_round_trip", "Round trip of the last probe the peer answered"), &|p| {
        p.last_round_trip_ns.map(|ns| Value::Float(seconds(ns)))
    });
    each(out, Family::counter("tsod_peer_probes_sent", "Probes sent to the peer"), &|p| {
        Some(Value::Count(p.probes_sent))
    });
    each(out, Family::counter("tsod_peer_replies_used", "Probe replies from the peer that became samples"), &|p| {
        Some(Value::Count(p.replies_used))
    });
    each(
        out,
        Family::counter(
            "tsod_peer_replies_refused",
            "Probe replies from the peer refused (stale, replayed, unbounded)",
        ),
        &|p| Some(Value::Count(p.replies_refused)),
    );
    each(out, Family::counter("tsod_peer_connects", "Times the connection to the peer was (re-)established"), &|p| {
        Some(Value::Count(p.connects))
    });
    each(out, Family::counter("tsod_peer_dial_failures", "Dial attempts to the peer that failed"), &|p| {
        Some(Value::Count(p.dial_failures))
    });
    let reported = out.gauge("tsod_peer_reported_status", "Status the peer last reported: 1 for it, 0 for the others");
    for p in peers {
        if let Some(report) = &p.report {
            states(reported, &labels(p), "status", ClockStatus::ALL.map(ClockStatus::name), report.status.name());
        }
    }
    each(
        out,
        Family::seconds("tsod_peer_reported_half_width", "Half-width of the interval the peer last reported"),
        &|p| p.report.as_ref()?.half_width.map(|d| Value::Float(d.as_secs_f64())),
    );
    each(
        out,
        Family::gauge("tsod_peer_reported_falsetickers", "Sources the peer last reported as falsetickers"),
        &|p| {
            let report = p.report.as_ref()?;
            Some(Value::Whole(report.sources.iter().filter(|s| s.falseticker).count() as u64))
        },
    );
}

/// The QUIC endpoint's counters.
fn endpoint(out: &mut Families, s: &StatusSnapshot) {
    let e = &s.endpoint;
    let refused = out.counter("tsod_endpoint_refused", "Refusals at the QUIC endpoint, by reason (each also logged)");
    for (reason, count) in [
        ("handshakes_refused", e.handshakes_refused),
        ("unknown_peers", e.unknown_peers),
        ("connections_over_limit", e.connections_over_limit),
        ("bad_datagrams", e.bad_datagrams),
        ("bad_messages", e.bad_messages),
        ("gossip_refused", e.gossip_refused),
        ("rate_limited", e.rate_limited),
    ] {
        refused.add(vec![("reason", reason.to_owned())], Value::Count(count));
    }
    out.counter("tsod_endpoint_client_requests", "Remote client requests answered")
        .add(vec![], Value::Count(e.client_requests));
}

/// The replicated TSO. `bound_latest_ns` dates the snapshot (the lease margin).
fn tso(out: &mut Families, tso: &TsoStatus, bound_latest_ns: Option<u64>) {
    const ROLES: [TsoRole; 6] = [
        TsoRole::Leader,
        TsoRole::LeaderWithoutQuorum,
        TsoRole::Follower,
        TsoRole::Candidate,
        TsoRole::Learner,
        TsoRole::Shutdown,
    ];
    states(
        out.gauge("tsod_tso_role", "This site's TSO role: 1 for the current one, 0 for the others"),
        &[],
        "role",
        ROLES.map(TsoRole::name),
        tso.role.name(),
    );
    out.gauge("tsod_tso_has_leader", "1 when this site knows a TSO leader (itself included)")
        .add(vec![], Value::flag(tso.leader.is_some()));
    out.gauge("tsod_tso_term", "The Raft term").add(vec![], Value::Whole(tso.term));
    let applied = out.gauge("tsod_tso_applied_index", "Last Raft log index applied");
    if let Some(index) = tso.applied_index {
        applied.add(vec![], Value::Whole(index));
    }
    out.counter("tsod_tso_issued", "Timestamps issued by this site as leader").add(vec![], Value::Count(tso.issued));
    out.counter("tsod_tso_refused", "TSO requests refused (unavailable)").add(vec![], Value::Count(tso.refused));
    out.counter("tsod_tso_forwarded_batches", "Batches of requests forwarded to the leader")
        .add(vec![], Value::Count(tso.forwarded_batches));
    let margin = out.seconds(
        "tsod_tso_lease_margin",
        "As leader: own committed lease end minus the bound's latest end at the status snapshot (negative: expired)",
    );
    if let (Some(end), Some(latest)) = (tso.lease_end_ns.filter(|end| *end > 0), bound_latest_ns) {
        margin.add(vec![], Value::Float(lease_margin_seconds(end, latest)));
    }
    out.counter("tsod_tso_fence_resets", "Operator fence resets applied in the group's history")
        .add(vec![], Value::Count(tso.fence_resets));
    out.gauge("tsod_tso_fence_reset_pending", "1 while a fence reset has votes but not yet a majority")
        .add(vec![], Value::flag(tso.pending_reset.is_some()));
    out.gauge(
        "tsod_tso_failed",
        "1 when this site's Raft node stopped for good (restart tsod once the cause is fixed)",
    )
    .add(vec![], Value::flag(tso.failed.is_some()));
    if let Some(t) = &tso.timing {
        let ms = |ms: u64| Value::Float(ms as f64 / 1e3);
        out.seconds("tsod_tso_lease", "The TSO lease in force").add(vec![], ms(t.lease_ms));
        out.seconds("tsod_tso_heartbeat", "The TSO heartbeat interval in force").add(vec![], ms(t.heartbeat_ms));
        out.seconds("tsod_tso_election_timeout", "The TSO election timeout in force")
            .add(vec![], ms(t.election_timeout_ms));
        out.seconds("tsod_tso_quorum_round_trip", "Round trip to the nearest majority of the TSO group")
            .add(vec![], ms(t.quorum_round_trip_ms));
        out.gauge("tsod_tso_timing_problem", "1 when the explicit [tso] timing does not fit the measured round trips")
            .add(vec![], Value::flag(t.problem.is_some()));
    }
}

/// One series per state in `family`: `label` = each of `all`, 1 for `current`.
fn states<const N: usize>(
    family: &mut Family,
    base: &[(&'static str, String)],
    label: &'static str,
    all: [&'static str; N],
    current: &str,
) {
    for state in all {
        let mut labels = base.to_vec();
        labels.push((label, state.to_owned()));
        family.add(labels, Value::flag(state == current));
    }
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn signed_seconds(ns: i64) -> f64 {
    ns as f64 / 1e9
}

/// Parts per billion as a plain ratio.
fn ratio(ppb: i64) -> f64 {
    ppb as f64 / 1e9
}

/// `end − latest`, in seconds, exact in integers before the one rounding.
fn lease_margin_seconds(end_ns: u64, latest_ns: u64) -> f64 {
    (i128::from(end_ns) - i128::from(latest_ns)) as f64 / 1e9
}

/// The families of one scrape, in output order.
#[derive(Debug, Default)]
struct Families(Vec<Family>);

impl Families {
    fn push(&mut self, family: Family) -> &mut Family {
        let index = self.0.len();
        self.0.push(family);
        &mut self.0[index]
    }

    fn family(&mut self, name: &'static str, help: &'static str, unit: Option<Unit>, kind: Kind) -> &mut Family {
        self.push(Family { name, help, unit, kind, series: Vec::new() })
    }

    fn gauge(&mut self, name: &'static str, help: &'static str) -> &mut Family {
        self.push(Family::gauge(name, help))
    }

    fn seconds(&mut self, name: &'static str, help: &'static str) -> &mut Family {
        self.push(Family::seconds(name, help))
    }

    fn ratio(&mut self, name: &'static str, help: &'static str) -> &mut Family {
        self.family(name, help, Some(Unit::Other("ratio".to_owned())), Kind::Gauge)
    }

    fn counter(&mut self, name: &'static str, help: &'static str) -> &mut Family {
        self.push(Family::counter(name, help))
    }
}

/// One metric family: a name (without its unit or `_total`), its help,
/// unit and type, and its series.
#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    kind: Kind,
    series: Vec<Series>,
}

impl Family {
    fn gauge(name: &'static str, help: &'static str) -> Self {
        Self { name, help, unit: None, kind: Kind::Gauge, series: Vec::new() }
    }

    fn seconds(name: &'static str, help: &'static str) -> Self {
        Self { unit: Some(Unit::Seconds), ..Self::gauge(name, help) }
    }

    fn counter(name: &'static str, help: &'static str) -> Self {
        Self { kind: Kind::Counter, ..Self::gauge(name, help) }
    }

    fn add(&mut self, labels: Vec<(&'static str, String)>, value: Value) -> &mut Self {
        self.series.push(Series { labels, value });
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
    Info,
}

impl Kind {
    fn metric_type(self) -> MetricType {
        match self {
            Self::Gauge => MetricType::Gauge,
            Self::Counter => MetricType::Counter,
            Self::Info => MetricType::Info,
        }
    }
}

#[derive(Debug)]
struct Series {
    labels: Vec<(&'static str, String)>,
    value: Value,
}

/// A series' value; which one fits its family's [`Kind`].
#[derive(Clone, Copy, Debug)]
enum Value {
    /// A gauge with a fractional value (seconds, ratios).
    Float(f64),
    /// A gauge with a whole value (flags, terms, indexes), printed exactly.
    Whole(u64),
    /// A counter.
    Count(u64),
    /// An info metric's one sample.
    Info,
}

impl Value {
    fn flag(on: bool) -> Self {
        Self::Whole(u64::from(on))
    }
}

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        for family in self.0.iter().filter(|f| !f.series.is_empty()) {
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, family.unit.as_ref(), family.kind.metric_type())?;
            for series in &family.series {
                let labels = &series.labels;
                match (family.kind, series.value) {
                    (Kind::Info, _) | (_, Value::Info) => metric.encode_info(labels)?,
                    (Kind::Counter, Value::Count(v) | Value::Whole(v)) => {
                        metric.encode_family(labels)?.encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
                    }
                    (Kind::Counter, Value::Float(v)) => {
                        metric.encode_family(labels)?.encode_counter::<NoLabelSet, f64, u64>(&v, None)?;
                    }
                    (Kind::Gauge, Value::Float(v)) => metric.encode_family(labels)?.encode_gauge(&v)?,
                    (Kind::Gauge, Value::Count(v) | Value::Whole(v)) => {
                        metric.encode_family(labels)?.encode_gauge(&v)?
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
