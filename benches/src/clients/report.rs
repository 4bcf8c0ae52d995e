//! The report of `tsbench clients`: one JSON object on one line
//! (`--json`), or a table.
//!
//! # JSON fields
//!
//! Besides the run header (`command` `"clients"`, `target`, `address`;
//! `report.rs`) and `errors`/`error-kinds` (failed calls, by the kinds of
//! `tsbench now` and `tsbench tso`):
//!
//! | field | meaning |
//! |---|---|
//! | `call` | `"now"` (`RemoteClock::now()`) or `"next"` (`Tso::next()`) |
//! | `connections` | clients asked for, each its own QUIC connection |
//! | `per-socket` | clients sharing one UDP socket (and source address); 1: a socket each |
//! | `sources` | the range their source addresses were spread over, and `per-prefix` of them in each /24; `null`: the system's choice |
//! | `ramp-rate` | connections started per second, at most |
//! | `call-interval-s` | time between two calls of one client |
//! | `dead-after-s` | each client's `RemoteOptions::dead_after` (an idle client sends a QUIC keep-alive every third of it) |
//! | `established` | clients whose connection was established |
//! | `connect-errors`, `connect-error-kinds` | clients whose connection failed, by kind (`handshake`, `timeout`, …) |
//! | `slow-calls-by-second` | calls that failed or took over 100 ms, by the second (from the ramp's start) they started in; a stall shows as a run of seconds |
//! | `connect-errors-dialled-at-s` | when each of those clients started dialling, s from the ramp's start, sorted (the first 1 000 to fail) |
//! | `ramp-s` | from the first connection started to the last one established or failed |
//! | `handshakes-per-s` | `established` / `ramp-s` |
//! | `handshake` | summary of the connection times (dial to established) |
//! | `held-s` | how long every client was held after the ramp |
//! | `calls` | calls answered, in all |
//! | `latency-ramp`, `latency` | summaries of the answered calls started while ramping, and while held |
//! | `daemon` | with `--daemon-pid`: `pid`; `rss-before-kib` (the last sample before the clients), `rss-held-kib` (the largest while held), `rss-per-connection-kib` ((held − before) / `established`); `cpu-before`, `cpu-ramp`, `cpu-held` (its CPU time over each phase, as a share of one core); `fds-before`, `fds-held`; else `null` |
//! | `half-width` | with `--segment`: the published half-width's summaries `before` and `held` (sampled every 100 ms, `null` when none was read), and `failures` (reads that failed while held); else `null` |
//! | `tsbench-cpu-held` | tsbench's own CPU time while held, as a share of one core (the clients' side of the load) |

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use tsod_bench::text::format_ns;

use crate::report::{ErrorTally, Report, RunHeader, Summary, render_table};

/// Where the sources were spread.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct SourcesField {
    /// The range, `a.b.c.d/len`.
    pub(crate) range: String,
    /// Clients per /24.
    pub(crate) per_prefix: u32,
}

/// What was seen of the daemon.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct DaemonField {
    pub(crate) pid: u32,
    pub(crate) rss_before_kib: Option<u64>,
    pub(crate) rss_held_kib: Option<u64>,
    pub(crate) rss_per_connection_kib: Option<f64>,
    pub(crate) cpu_before: Option<f64>,
    pub(crate) cpu_ramp: Option<f64>,
    pub(crate) cpu_held: Option<f64>,
    pub(crate) fds_before: Option<u64>,
    pub(crate) fds_held: Option<u64>,
}

/// The published half-width before and while held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct HalfWidthField {
    pub(crate) before: Option<Summary>,
    pub(crate) held: Option<Summary>,
    pub(crate) failures: u64,
}

/// The report.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct ClientsReport {
    #[serde(flatten)]
    pub(crate) header: RunHeader,
    pub(crate) call: &'static str,
    pub(crate) connections: u64,
    pub(crate) per_socket: u32,
    pub(crate) sources: Option<SourcesField>,
    pub(crate) ramp_rate: u32,
    pub(crate) call_interval_s: f64,
    pub(crate) dead_after_s: f64,
    pub(crate) established: u64,
    pub(crate) connect_errors: u64,
    pub(crate) connect_error_kinds: BTreeMap<String, u64>,
    pub(crate) connect_errors_dialled_at_s: Vec<f64>,
    pub(crate) slow_calls_by_second: Vec<u64>,
    pub(crate) ramp_s: f64,
    pub(crate) handshakes_per_s: f64,
    pub(crate) handshake: Summary,
    pub(crate) held_s: f64,
    pub(crate) calls: u64,
    #[serde(flatten)]
    pub(crate) errors: ErrorTally,
    pub(crate) latency_ramp: Summary,
    pub(crate) latency: Summary,
    pub(crate) daemon: Option<DaemonField>,
    pub(crate) half_width: Option<HalfWidthField>,
    pub(crate) tsbench_cpu_held: Option<f64>,
}

impl ClientsReport {
    /// Whether the run should fail: no client connected, or more than 1 %
    /// of the clients or of the calls failed.
    pub(crate) fn failed(&self) -> bool {
        self.established == 0
            || self.connect_errors.saturating_mul(100) > self.connections
            || self.errors.over_one_percent_of(self.calls.saturating_add(self.errors.total))
    }
}

fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "-".to_owned(), |s| format!("{:.1} %", s * 100.0))
}

fn kib(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{:.1} MiB", v as f64 / 1024.0))
}

fn half_width_text(summary: Option<&Summary>) -> String {
    summary.map_or_else(
        || "-".to_owned(),
        |s| format!("p50 {} p99 {} max {}", format_ns(s.p50_ns), format_ns(s.p99_ns), format_ns(s.max_ns)),
    )
}

impl Report for ClientsReport {
    fn to_human(&self) -> String {
        let mut out = format!(
            "tsbench clients: {} connections ({} a UDP socket) to {} ({}), {} every {:.3} s each, dead after {:.3} s\n",
            self.connections,
            self.per_socket,
            self.header.target,
            self.header.address.as_deref().unwrap_or("?"),
            self.call,
            self.call_interval_s,
            self.dead_after_s
        );
        if let Some(s) = &self.sources {
            let _ = writeln!(out, "sources: {} at {} a /24", s.range, s.per_prefix);
        }
        let _ = writeln!(
            out,
            "established {} of {} in {:.2} s ({:.0} handshakes/s at most {}/s); connect failures: {}",
            self.established,
            self.connections,
            self.ramp_s,
            self.handshakes_per_s,
            self.ramp_rate,
            if self.connect_error_kinds.is_empty() {
                "none".to_owned()
            } else {
                self.connect_error_kinds.iter().map(|(k, n)| format!("{k}: {n}")).collect::<Vec<_>>().join(", ")
            }
        );
        if let (Some(first), Some(last)) =
            (self.connect_errors_dialled_at_s.first(), self.connect_errors_dialled_at_s.last())
        {
            let _ = writeln!(out, "the clients that failed started dialling {first:.3} s to {last:.3} s into the ramp");
        }
        let _ = writeln!(out, "held {:.1} s; {} calls answered", self.held_s, self.calls);
        let seconds = self.slow_calls_by_second.iter().filter(|&&n| n > 0).count();
        if let Some((worst, n)) =
            self.slow_calls_by_second.iter().enumerate().max_by_key(|&(_, n)| *n).filter(|&(_, n)| *n > 0)
        {
            let _ = writeln!(
                out,
                "calls failed or over 100 ms in {seconds} seconds of the run; the worst, {worst} s after the ramp's start, had {n}"
            );
        }
        out.push('\n');
        out.push_str(&render_table(&[
            ("handshake", &self.handshake),
            ("call while ramping", &self.latency_ramp),
            ("call while held", &self.latency),
        ]));
        let _ = writeln!(out, "\ncall failures: {} ({})", self.errors.total, self.errors.kinds_text());
        if let Some(d) = &self.daemon {
            let _ = writeln!(
                out,
                "daemon {}: RSS {} before, {} held ({} per connection); CPU {} before, {} ramping, {} held; fds {} -> {}",
                d.pid,
                kib(d.rss_before_kib),
                kib(d.rss_held_kib),
                d.rss_per_connection_kib.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} KiB")),
                percent(d.cpu_before),
                percent(d.cpu_ramp),
                percent(d.cpu_held),
                d.fds_before.map_or_else(|| "-".to_owned(), |n| n.to_string()),
                d.fds_held.map_or_else(|| "-".to_owned(), |n| n.to_string()),
            );
        }
        if let Some(h) = &self.half_width {
            let _ = writeln!(
                out,
                "published half-width: before {}; held {}; failed reads while held {}",
                half_width_text(h.before.as_ref()),
                half_width_text(h.held.as_ref()),
                h.failures
            );
        }
        let _ = writeln!(out, "tsbench CPU while held: {}", percent(self.tsbench_cpu_held));
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    fn sample() -> ClientsReport {
        let latency = Summary {
            p50_ns: 200_000,
            p90_ns: 300_000,
            p99_ns: 900_000,
            p999_ns: 1_000_000,
            max_ns: 2_000_000,
            count: 1000,
            samples: 1000,
        };
        ClientsReport {
            header: RunHeader {
                command: "clients",
                mode: None,
                target: "127.0.0.1:4460".to_owned(),
                address: Some("127.0.0.1:4460".to_owned()),
            },
            call: "now",
            connections: 1000,
            per_socket: 1,
            sources: Some(SourcesField { range: "127.0.0.0/8".to_owned(), per_prefix: 50 }),
            ramp_rate: 500,
            call_interval_s: 1.0,
            dead_after_s: 0.25,
            established: 1000,
            connect_errors: 0,
            connect_errors_dialled_at_s: Vec::new(),
            slow_calls_by_second: Vec::new(),
            connect_error_kinds: BTreeMap::new(),
            ramp_s: 2.5,
            handshakes_per_s: 400.0,
            handshake: latency,
            held_s: 10.0,
            calls: 12_000,
            errors: ErrorTally::default(),
            latency_ramp: latency,
            latency,
            daemon: Some(DaemonField {
                pid: 42,
                rss_before_kib: Some(16_000),
                rss_held_kib: Some(46_000),
                rss_per_connection_kib: Some(30.0),
                cpu_before: Some(0.01),
                cpu_ramp: Some(0.5),
                cpu_held: Some(0.2),
                fds_before: Some(20),
                fds_held: Some(20),
            }),
            half_width: Some(HalfWidthField { before: Some(latency), held: None, failures: 0 }),
            tsbench_cpu_held: Some(0.3),
        }
    }

    #[test]
    fn json_has_the_documented_fields() {
        let json: serde_json::Value = serde_json::from_str(&sample().to_json().unwrap()).unwrap();
        assert_eq!(json["command"], "clients");
        assert_eq!(json["established"], 1000);
        assert_eq!(json["handshakes-per-s"], 400.0);
        assert_eq!(json["latency"]["p99-ns"], 900_000);
        assert_eq!(json["daemon"]["rss-per-connection-kib"], 30.0);
        assert_eq!(json["daemon"]["cpu-held"], 0.2);
        assert_eq!(json["half-width"]["held"], serde_json::Value::Null);
        assert_eq!(json["sources"]["per-prefix"], 50);
        assert_eq!(json["dead-after-s"], 0.25);
        assert_eq!(json["errors"], 0);
        assert!(json.get("mode").is_none());
    }

    #[test]
    fn a_run_fails_past_one_percent_of_failures() {
        let mut report = sample();
        assert!(!report.failed());
        report.connect_errors = 11;
        assert!(report.failed(), "11 of 1000 connections");
        report.connect_errors = 10;
        assert!(!report.failed());
        for _ in 0..122 {
            report.errors.add("timeout");
        }
        assert!(report.failed(), "122 of 12 122 calls");
        report.errors = ErrorTally::default();
        report.established = 0;
        assert!(report.failed());
    }

    #[test]
    fn the_table_names_every_phase() {
        let text = sample().to_human();
        for needle in [
            "established 1000 of 1000",
            "400 handshakes/s",
            "call while held",
            "30.0 KiB per connection",
            "CPU 1.0 % before",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
    }
}
