//! `tsod status [--json]`: what the local daemon is doing and why — its
//! status file (sources, falsetickers, drift model) plus the segment.

use std::path::PathBuf;

use anyhow::Context;
use tsod::daemon::status_file::{self, printable};
use tsod_proto::observe::{NtpServerStatus, StatusSnapshot, TsoStatus, source_kind_name};
use tsod_proto::shm::{SHM_DEFAULT_PATH, SHM_PATH_ENV};

pub(crate) fn run(segment: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let segment = segment
        .or_else(|| std::env::var_os(SHM_PATH_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(SHM_DEFAULT_PATH));
    let path = status_file::status_path(&segment);
    let snapshot = status_file::read(&path)
        .with_context(|| format!("reading {} (is tsod running with this segment?)", path.display()))?;
    if json {
        return super::print_line(&serde_json::to_string_pretty(&snapshot)?);
    }
    let mut out = format!("status {}", snapshot.status);
    if let Some(hw) = snapshot.half_width_ns {
        out.push_str(&format!(", half-width {:.3} µs", hw as f64 / 1e3));
    }
    if let (Some(f), Some(rho)) = (snapshot.frequency_ppb, snapshot.drift_bound_ppb) {
        out.push_str(&format!(", reader clock {:+.3} ppm ± {:.3} ppm", f as f64 / 1e3, rho as f64 / 1e3));
    }
    out.push_str(&format!(", {} disruption(s), pid {}\n", snapshot.disruption_count, snapshot.pid));
    out.push_str(&format!(
        "{:<16} {:<7} {:<12} {:>14} {:>12} {:>8} {:>8}\n",
        "source", "kind", "state", "offset µs", "error µs", "samples", "rejects"
    ));
    for s in &snapshot.sources {
        let state = if !s.usable {
            "unusable"
        } else if s.falseticker {
            "FALSETICKER"
        } else {
            "ok"
        };
        let micros = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{:.3}", v / 1e3));
        out.push_str(&format!(
            "{:<16} {:<7} {:<12} {:>14} {:>12} {:>8} {:>8}\n",
            printable(&s.name),
            source_kind_name(s.kind),
            state,
            micros(s.offset_ns.map(|o| o as f64)),
            micros(s.error_ns.map(|e| e as f64)),
            s.samples,
            s.rejects
        ));
        if let Some(e) = &s.last_error {
            out.push_str(&format!("{:<16} last refusal: {}\n", "", printable(e)));
        }
    }
    if let Some(site) = &snapshot.site {
        out.push_str(&cluster_table(site, &snapshot));
    }
    if let Some(tso) = &snapshot.tso {
        out.push_str(&tso_line(tso));
    }
    if let Some(ntp) = &snapshot.ntp_server {
        out.push_str(&ntp_server_line(ntp));
    }
    super::print_line(out.trim_end())
}

/// The cluster as this site sees it: itself, then each peer's link and the
/// report it last gossiped (status, half-width, falsetickers it sees).
/// Names a peer reported are printed escaped ([`printable`]).
fn cluster_table(site: &str, snapshot: &StatusSnapshot) -> String {
    let micros = |ns: Option<u64>| ns.map_or_else(|| "-".to_owned(), |v| format!("{:.3}", v as f64 / 1e3));
    let mut out = format!(
        "{:<16} {:<6} {:<15} {:>13} {:>10} {}\n",
        "site", "link", "status", "half-width µs", "rtt µs", "falsetickers seen"
    );
    let own_falsetickers: Vec<_> =
        snapshot.sources.iter().filter(|s| s.falseticker).map(|s| printable(&s.name)).collect();
    out.push_str(&format!(
        "{:<16} {:<6} {:<15} {:>13} {:>10} {}\n",
        printable(site),
        "self",
        snapshot.status.to_string(),
        micros(snapshot.half_width_ns),
        "-",
        own_falsetickers.join(",")
    ));
    for peer in &snapshot.peers {
        let link = if peer.connected { "up" } else { "DOWN" };
        let (status, half_width, falsetickers) = match &peer.report {
            Some(r) => (
                r.status.to_string(),
                r.half_width.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
                r.sources.iter().filter(|s| s.falseticker).map(|s| printable(&s.name)).collect::<Vec<_>>().join(","),
            ),
            None => ("(no report)".to_owned(), None, String::new()),
        };
        out.push_str(&format!(
            "{:<16} {:<6} {:<15} {:>13} {:>10} {}\n",
            printable(&peer.name),
            link,
            status,
            micros(half_width),
            micros(peer.last_round_trip_ns),
            falsetickers
        ));
    }
    out
}

/// The NTP server: what it serves and what it counted.
fn ntp_server_line(ntp: &NtpServerStatus) -> String {
    let serving = match (ntp.stratum, &ntp.reference_id) {
        (Some(stratum), Some(id)) => format!("stratum {stratum} ({})", printable(id)),
        _ => "UNSYNCHRONIZED (leap indicator 3)".to_owned(),
    };
    format!(
        "ntp server on {}: {serving}; requests {}, replies {} ({} unsynchronized), dropped malformed {}, \
         rate-limited {}, kiss-o'-death sent {}, send errors {}\n",
        ntp.listen.join(", "),
        ntp.requests,
        ntp.replies,
        ntp.unsynchronized_replies,
        ntp.dropped_malformed,
        ntp.rate_limited,
        ntp.kod_sent,
        ntp.send_errors,
    )
}

/// A fence reset's voters and their reasons, escaped.
fn votes(r: &tsod_proto::observe::TsoResetStatus) -> String {
    let named: Vec<String> = r
        .voters
        .iter()
        .zip(r.reasons.iter())
        .map(|(site, reason)| format!("{}: \"{}\"", printable(site), printable(reason)))
        .collect();
    named.join(", ")
}

/// The TSO's Raft role, leader, term, lease and window.
fn tso_line(tso: &TsoStatus) -> String {
    let at = |ns: u64| {
        let secs = i64::try_from(ns / 1_000_000_000).unwrap_or(i64::MAX);
        let nanos = u32::try_from(ns % 1_000_000_000).unwrap_or(0);
        chrono::DateTime::from_timestamp(secs, nanos)
            .map_or_else(|| ns.to_string(), |t| t.format("%H:%M:%S%.3f").to_string())
    };
    let leader = match (&tso.leader, tso.leader_priority) {
        (Some(l), Some(p)) => format!("{}, priority {p}", printable(l)),
        (Some(l), None) => printable(l).into_owned(),
        (None, _) => "none".to_owned(),
    };
    let mut out = format!(
        "tso: {} (leader {}), term {}, applied {}, committed window end {}, own lease end {}, issued {}, refused {}, batches forwarded {}\n",
        tso.role,
        leader,
        tso.term,
        tso.applied_index.map_or_else(|| "-".to_owned(), |i| i.to_string()),
        if tso.fence_ns == 0 { "-".to_owned() } else { at(tso.fence_ns) },
        tso.lease_end_ns.filter(|n| *n > 0).map_or_else(|| "-".to_owned(), at),
        tso.issued,
        tso.refused,
        tso.forwarded_batches,
    );
    if let Some(why) = &tso.failed {
        out.push_str(&format!("  FAILED: {}; restart tsod once the cause is fixed\n", printable(why)));
    }
    if let Some(p) = &tso.pending_reset {
        out.push_str(&format!(
            "  FENCE RESET #{} PENDING: {} of {} votes ({})\n",
            p.reset,
            p.voters.len(),
            p.needed,
            votes(p)
        ));
    }
    if let Some(r) = &tso.last_reset {
        out.push_str(&format!(
            "  fence resets: {}; the last, #{}, moved the fence from {} to {} ({})\n",
            tso.fence_resets,
            r.reset,
            at(r.from_ns),
            r.to_ns.map_or_else(|| "-".to_owned(), at),
            votes(r)
        ));
    }
    if let Some(why) = &tso.why_leading {
        out.push_str(&format!("  leads: {}\n", printable(why)));
    }
    if let Some(to) = &tso.handover_to {
        out.push_str(&format!("  handing leadership over to {}\n", printable(to)));
    }
    if let Some(t) = &tso.timing {
        out.push_str(&format!(
            "  timing ({}): round trip {} ms (quorum {} ms), heartbeat {} ms, election {} ms, lease {} ms (renewed {} ms before its end), this site's priority {}\n",
            if t.explicit { "partly explicit" } else { "derived" },
            t.round_trip_ms,
            t.quorum_round_trip_ms,
            t.heartbeat_ms,
            t.election_timeout_ms,
            t.lease_ms,
            t.renew_left_ms,
            tso.priority.map_or_else(|| "none".to_owned(), |p| p.to_string()),
        ));
        if let Some(problem) = &t.problem {
            out.push_str(&format!("  timing problem: {}\n", printable(problem)));
        }
    }
    out
}
