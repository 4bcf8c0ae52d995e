//! The report of `tsbench uncertainty`: what a run of samples adds up to,
//! as JSON and as text.
//!
//! # `tsbench uncertainty --json`
//!
//! One object on one line; kebab-case fields that may be added to, never
//! renamed or removed (the run header, the errors and the summary as in
//! `report.rs`).
//!
//! ```text
//! {"command":"uncertainty","mode":"local","target":"/run/tsod/segment","interval-s":1.0,
//!  "elapsed-s":59.0,"samples":60,"bounded":58,"half-width":{…},
//!  "statuses":{"synchronized":58,"degraded":0,"free-running":0,"unsynchronized":2,"disrupted":0,"unknown":0},
//!  "status-changes":2,"changes":[{"at-s":12.0,"from":"synchronized","to":"unsynchronized"},…],
//!  "reads":120,"errors":2,"error-kinds":{"unsynchronized":2},"interrupted":false}
//! ```
//!
//! | field | meaning |
//! |---|---|
//! | `command` | `"uncertainty"` |
//! | `mode` | `"local"` (`LocalClock::now()`, with the suspend check, and `status()`, shared memory) or `"remote"` (`RemoteClock::now_at()` and its status report, QUIC) |
//! | `target` | the segment path (local) or the address as given, `IP:PORT` or `HOST:PORT` (remote) |
//! | `address` | remote only: the `IP:PORT` connected to |
//! | `site` | remote only: the site's name from its status report; absent if it never answered one |
//! | `interval-s` | the time between two samples asked for, in seconds (a sample that takes longer skips the slots it overran) |
//! | `elapsed-s` | from the first sample to the end of the last, in seconds |
//! | `samples` | samples taken; each is one `now` read and one status read, back to back |
//! | `bounded` | samples whose `now` read returned an interval (and so a half-width) |
//! | `half-width` | summary (see the module above: `p50-ns` … `max-ns`, `count`, `samples`) of the half-width of each interval returned, in nanoseconds; remote: as the client received it, widened by the round trip. Every field 0 if no sample was bounded |
//! | `statuses` | samples by the status read: all five statuses (`synchronized`, `degraded`, `free-running`, `unsynchronized`, `disrupted`) always present, and `unknown` for samples whose status read failed |
//! | `status-changes` | times the status differed from the previous known status (samples with an unknown status are skipped; the first status is not a change) |
//! | `changes` | each change: `at-s` (seconds since the first sample), `from`, `to` |
//! | `reads` | reads made, two per sample |
//! | `errors` | reads that failed. An unsynchronized or disrupted site fails the `now` read (kind `unsynchronized` or `disrupted`): such a sample has no half-width, and is counted here and under its status |
//! | `error-kinds` | failed reads by kind, as `tsbench now` names them (`unsynchronized`, `disrupted`, `stale`, `busy`, … local; `timeout`, `connection-lost`, `refused-<code>`, … remote) |
//! | `interrupted` | whether Ctrl-C (SIGINT) ended the run before its `--count` or `--duration` |
//! | `plot` | with `--plot`: the file written |

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use tsod_bench::text::plural;
use tsod_proto::ClockStatus;

use crate::report::{ErrorTally, Report, RunHeader, Summary, render_table};

/// The result of `tsbench uncertainty`; the module doc describes each JSON field.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct UncertaintyReport {
    /// `"uncertainty"`, local or remote, what it read (remote: the address connected to).
    #[serde(flatten)]
    pub(crate) run: RunHeader,
    /// Remote only: the site's name, once it reported one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) site: Option<String>,
    /// Time between samples, seconds.
    pub(crate) interval_s: f64,
    /// First sample to the end of the last, seconds.
    pub(crate) elapsed_s: f64,
    /// Samples taken.
    pub(crate) samples: u64,
    /// Samples with a half-width.
    pub(crate) bounded: u64,
    /// The half-widths.
    pub(crate) half_width: Summary,
    /// Samples by status.
    pub(crate) statuses: StatusCounts,
    /// Changes of status.
    pub(crate) status_changes: u64,
    /// Each change.
    pub(crate) changes: Vec<StatusChange>,
    /// Reads made.
    pub(crate) reads: u64,
    /// Reads that failed, by kind.
    #[serde(flatten)]
    pub(crate) errors: ErrorTally,
    /// Ended by Ctrl-C.
    pub(crate) interrupted: bool,
    /// The plot written, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) plot: Option<String>,
}

/// Samples by status; every status always present, for scripts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct StatusCounts {
    /// Read as synchronized.
    pub(crate) synchronized: u64,
    /// Read as degraded.
    pub(crate) degraded: u64,
    /// Read as free-running.
    pub(crate) free_running: u64,
    /// Read as unsynchronized.
    pub(crate) unsynchronized: u64,
    /// Read as disrupted.
    pub(crate) disrupted: u64,
    /// The status read failed.
    pub(crate) unknown: u64,
}

impl StatusCounts {
    /// Counts one sample with `status` (`None`: the read failed).
    pub(crate) fn add(&mut self, status: Option<ClockStatus>) {
        let slot = match status {
            Some(ClockStatus::Synchronized) => &mut self.synchronized,
            Some(ClockStatus::Degraded) => &mut self.degraded,
            Some(ClockStatus::FreeRunning) => &mut self.free_running,
            Some(ClockStatus::Unsynchronized) => &mut self.unsynchronized,
            Some(ClockStatus::Disrupted) => &mut self.disrupted,
            None => &mut self.unknown,
        };
        *slot = slot.saturating_add(1);
    }

    /// `(name, count)` of every status seen, in code order, then `unknown`.
    pub(crate) fn seen(&self) -> Vec<(&'static str, u64)> {
        let all = [
            (ClockStatus::Synchronized.name(), self.synchronized),
            (ClockStatus::Degraded.name(), self.degraded),
            (ClockStatus::FreeRunning.name(), self.free_running),
            (ClockStatus::Unsynchronized.name(), self.unsynchronized),
            (ClockStatus::Disrupted.name(), self.disrupted),
            ("unknown", self.unknown),
        ];
        all.into_iter().filter(|(_, n)| *n > 0).collect()
    }
}

/// One change of the status between two samples.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct StatusChange {
    /// When the sample with the new status was taken, seconds since the first.
    pub(crate) at_s: f64,
    /// The status before.
    pub(crate) from: ClockStatus,
    /// The status after.
    pub(crate) to: ClockStatus,
}

/// Changes listed in the text report; the rest are counted.
const CHANGES_LISTED: usize = 10;

impl UncertaintyReport {
    /// What the run looked at, for the text report and the plot's title:
    /// `segment /run/tsod/segment` or `site site-a at 127.0.0.1:4460`.
    pub(crate) fn subject(&self) -> String {
        let target = &self.run.target;
        if !self.run.is_remote() {
            return format!("segment {target}");
        }
        match (&self.site, &self.run.address) {
            (Some(site), Some(address)) if address == target => format!("site {site} at {address}"),
            (Some(site), Some(address)) => format!("site {site} at {target} ({address})"),
            (None, Some(address)) if address != target => format!("site at {target} ({address})"),
            _ => format!("site at {target}"),
        }
    }
}

impl Report for UncertaintyReport {
    /// The report for people: a header line, the half-width table, the
    /// statuses, their changes and the errors.
    fn to_human(&self) -> String {
        let mut out = format!(
            "tsbench uncertainty: {}, {} samples every {}, {:.2} s{}\n\n",
            self.subject(),
            self.samples,
            format_seconds(self.interval_s),
            self.elapsed_s,
            if self.interrupted { " (interrupted)" } else { "" }
        );
        out.push_str(&render_table(&[("half-width", &self.half_width)]));
        out.push('\n');
        let _ = writeln!(out, "bounded: {} of {} samples", self.bounded, self.samples);
        let statuses: Vec<String> = self.statuses.seen().iter().map(|(name, n)| format!("{name} {n}")).collect();
        let statuses = if statuses.is_empty() { "none".to_owned() } else { statuses.join(", ") };
        let _ = writeln!(out, "statuses: {statuses}; {} change{}", self.status_changes, plural(self.status_changes));
        for change in self.changes.iter().take(CHANGES_LISTED) {
            let _ = writeln!(out, "  {:>9.3} s  {} -> {}", change.at_s, change.from, change.to);
        }
        if self.changes.len() > CHANGES_LISTED {
            let _ = writeln!(out, "  … and {} more (all in --json)", self.changes.len() - CHANGES_LISTED);
        }
        let _ = writeln!(out, "errors: {} of {} reads ({})", self.errors.total, self.reads, self.errors.kinds_text());
        if let Some(plot) = &self.plot {
            let _ = writeln!(out, "plot: {plot}");
        }
        out
    }
}

/// An interval as the command line writes it: `1s`, `250ms`, `1.5s`.
fn format_seconds(seconds: f64) -> String {
    format!("{:?}", Duration::try_from_secs_f64(seconds).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use std::collections::BTreeMap;

    use super::*;
    use crate::report::Mode;

    fn sample_report(mode: Mode) -> UncertaintyReport {
        let half_width = Summary {
            p50_ns: 20_000,
            p90_ns: 21_000,
            p99_ns: 22_000,
            p999_ns: 22_000,
            max_ns: 22_000,
            count: 3,
            samples: 3,
        };
        let mut statuses = StatusCounts::default();
        for status in [ClockStatus::Synchronized, ClockStatus::Synchronized, ClockStatus::Degraded] {
            statuses.add(Some(status));
        }
        statuses.add(Some(ClockStatus::Unsynchronized));
        let remote = mode == Mode::Remote;
        UncertaintyReport {
            run: RunHeader {
                command: "uncertainty",
                mode: Some(mode),
                target: if remote { "localhost:4460".to_owned() } else { "/run/tsod/segment".to_owned() },
                address: remote.then(|| "127.0.0.1:4460".to_owned()),
            },
            site: remote.then(|| "site-a".to_owned()),
            interval_s: 0.25,
            elapsed_s: 0.75,
            samples: 4,
            bounded: 3,
            half_width,
            statuses,
            status_changes: 2,
            changes: vec![
                StatusChange { at_s: 0.5, from: ClockStatus::Synchronized, to: ClockStatus::Degraded },
                StatusChange { at_s: 0.75, from: ClockStatus::Degraded, to: ClockStatus::Unsynchronized },
            ],
            reads: 8,
            errors: ErrorTally { total: 1, by_kind: BTreeMap::from([("unsynchronized".to_owned(), 1)]) },
            interrupted: false,
            plot: None,
        }
    }

    #[test]
    fn json_shape_is_stable() {
        let local: serde_json::Value = serde_json::from_str(&sample_report(Mode::Local).to_json().unwrap()).unwrap();
        let keys: Vec<&str> = local.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "bounded",
                "changes",
                "command",
                "elapsed-s",
                "error-kinds",
                "errors",
                "half-width",
                "interrupted",
                "interval-s",
                "mode",
                "reads",
                "samples",
                "status-changes",
                "statuses",
                "target"
            ]
        );
        let statuses: Vec<&str> = local["statuses"].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(statuses, ["degraded", "disrupted", "free-running", "synchronized", "unknown", "unsynchronized"]);
        assert_eq!(local["statuses"]["free-running"], 0, "every status present, even at 0");
        assert_eq!(local["changes"][1], serde_json::json!({"at-s": 0.75, "from": "degraded", "to": "unsynchronized"}));
        assert_eq!(local["half-width"]["p50-ns"], 20_000);

        let mut remote = sample_report(Mode::Remote);
        remote.plot = Some("run.svg".to_owned());
        let remote: serde_json::Value = serde_json::from_str(&remote.to_json().unwrap()).unwrap();
        assert_eq!(remote["mode"], "remote");
        assert_eq!(remote["site"], "site-a");
        assert_eq!(remote["address"], "127.0.0.1:4460");
        assert_eq!(remote["plot"], "run.svg");
    }

    #[test]
    fn statuses_count_and_list_what_was_seen() {
        let mut counts = StatusCounts::default();
        counts.add(Some(ClockStatus::FreeRunning));
        counts.add(None);
        counts.add(None);
        assert_eq!(counts.seen(), vec![("free-running", 1), ("unknown", 2)]);
        assert_eq!(StatusCounts::default().seen(), vec![]);
    }

    #[test]
    fn human_output_names_subject_statuses_changes_and_errors() {
        let text = sample_report(Mode::Local).to_human();
        for needle in [
            "segment /run/tsod/segment",
            "every 250ms",
            "half-width",
            "20.0 µs",
            "synchronized 2, degraded 1, unsynchronized 1; 2 changes",
            "synchronized -> degraded",
            "errors: 1 of 8 reads (unsynchronized: 1)",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
        }
        let remote = sample_report(Mode::Remote);
        assert_eq!(remote.subject(), "site site-a at localhost:4460 (127.0.0.1:4460)");
        let mut unnamed = UncertaintyReport { site: None, ..remote };
        unnamed.run.target = "127.0.0.1:4460".to_owned();
        assert_eq!(unnamed.subject(), "site at 127.0.0.1:4460");
        assert_eq!(format_seconds(1.0), "1s");
        assert_eq!(format_seconds(0.01), "10ms");
        assert_eq!(format_seconds(90.0), "90s");
    }
}
