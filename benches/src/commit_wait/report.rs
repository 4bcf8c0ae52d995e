//! The report of `tsbench commit-wait`: how long commit-waits last and how
//! late they notice, as JSON and as text.
//!
//! # `tsbench commit-wait --json`
//!
//! One object on one line; kebab-case fields that may be added to, never
//! renamed or removed (the run header, the errors and each summary as in
//! `report.rs`).
//!
//! ```text
//! {"command":"commit-wait","mode":"local","target":"/run/tsod/segment","elapsed-s":0.061,"count":1000,
//!  "waits":1000,"errors":0,"error-kinds":{},"reads":5210,"waited":{…},"overshoot":{…},"half-width":{…}}
//! ```
//!
//! | field | meaning |
//! |---|---|
//! | `command` | `"commit-wait"` |
//! | `mode` | `"local"` (`HybridClock` on `LocalClock`, `commit_wait_blocking`) or `"remote"` (`HybridClock` on `RemoteSource`, refreshed before each transaction, async `commit_wait`) |
//! | `target` | the segment path (local) or the address as given, `IP:PORT` or `HOST:PORT` (remote) |
//! | `address` | remote only: the `IP:PORT` connected to |
//! | `elapsed-s` | wall time of the run, in seconds |
//! | `count` | transactions tried: each takes `commit_timestamp()` then waits on it (remote: after a `refresh()`) |
//! | `waits` | transactions whose wait ended; the three summaries cover these |
//! | `errors` | transactions that failed (a refresh, the timestamp or the wait) |
//! | `error-kinds` | failures by kind: the clock's (`unsynchronized`, `disrupted`, `stale`, … as `tsbench now` names them; remote: also `not-refreshed`, `suspended`, and the refresh's `timeout`, `connection-lost`, …), or `too-far-ahead`, `exhausted`, `out-of-range` |
//! | `reads` | intervals the successful waits read in all (`CommitWait::reads`) |
//! | `waited` | summary (`p50-ns` … `max-ns`, `count`, `samples`; see `report.rs`) of `CommitWait::waited`: from the call to its return, in nanoseconds. About twice the half-width, since the commit timestamp is at `latest` and the wait ends once `earliest` passes it |
//! | `overshoot` | summary of `CommitWait::overshoot()`: how far `earliest` had passed the target at the read that ended the wait, in nanoseconds |
//! | `half-width` | summary of the half-width of the interval that ended each wait, in nanoseconds |

use std::fmt::Write as _;

use serde::Serialize;

use crate::report::{ErrorTally, Report, RunHeader, Summary, render_table};

/// The result of `tsbench commit-wait`; the module doc describes each JSON field.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct CommitWaitReport {
    /// `"commit-wait"`, local or remote, what it waited on (remote: the address connected to).
    #[serde(flatten)]
    pub(crate) run: RunHeader,
    /// Wall time of the run, in seconds.
    pub(crate) elapsed_s: f64,
    /// Transactions tried.
    pub(crate) count: u64,
    /// Waits that ended.
    pub(crate) waits: u64,
    /// Transactions that failed, by kind.
    #[serde(flatten)]
    pub(crate) errors: ErrorTally,
    /// Intervals read by the waits.
    pub(crate) reads: u64,
    /// How long each wait took.
    pub(crate) waited: Summary,
    /// How late each wait noticed.
    pub(crate) overshoot: Summary,
    /// Half-width of the interval that ended each wait.
    pub(crate) half_width: Summary,
}

impl Report for CommitWaitReport {
    fn to_human(&self) -> String {
        let (what, how) = if self.run.is_remote() {
            ("remote", "HybridClock::commit_wait(), refreshed before each")
        } else {
            ("segment", "HybridClock::commit_wait_blocking()")
        };
        let mut out = format!(
            "tsbench commit-wait: {what} {}, {} transactions, {how}, {:.2} s\n\n",
            self.run.target, self.count, self.elapsed_s
        );
        out.push_str(&render_table(&[
            ("waited", &self.waited),
            ("overshoot", &self.overshoot),
            ("half-width", &self.half_width),
        ]));
        out.push('\n');
        let _ = writeln!(out, "reads: {} ({:.1} per wait)", self.reads, self.reads as f64 / self.waits.max(1) as f64);
        let _ = writeln!(
            out,
            "errors: {} of {} transactions ({})",
            self.errors.total,
            self.count,
            self.errors.kinds_text()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;
    use crate::report::Mode;

    fn sample(mode: Mode) -> CommitWaitReport {
        CommitWaitReport {
            run: RunHeader {
                command: "commit-wait",
                mode: Some(mode),
                target: "/run/tsod/segment".to_owned(),
                address: (mode == Mode::Remote).then(|| "127.0.0.1:4460".to_owned()),
            },
            elapsed_s: 0.1,
            count: 10,
            waits: 10,
            errors: ErrorTally::default(),
            reads: 40,
            waited: Summary::default(),
            overshoot: Summary::default(),
            half_width: Summary::default(),
        }
    }

    #[test]
    fn json_shape_is_stable() {
        let json: serde_json::Value = serde_json::from_str(&sample(Mode::Local).to_json().unwrap()).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "command",
                "count",
                "elapsed-s",
                "error-kinds",
                "errors",
                "half-width",
                "mode",
                "overshoot",
                "reads",
                "target",
                "waited",
                "waits"
            ]
        );
        let remote: serde_json::Value = serde_json::from_str(&sample(Mode::Remote).to_json().unwrap()).unwrap();
        assert_eq!(remote["address"], "127.0.0.1:4460");
        assert_eq!(remote["mode"], "remote");
    }

    #[test]
    fn human_output_names_every_series() {
        let text = sample(Mode::Local).to_human();
        for needle in ["waited", "overshoot", "half-width", "commit_wait_blocking", "4.0 per wait", "errors: 0 of 10"] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }
}
