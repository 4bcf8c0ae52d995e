//! What `tsbench compare` reports: tsod's figures measured on a local
//! testbed cluster, beside the **published** figures of reference systems
//! (never measured here), as a Markdown table to paste in an issue and as
//! JSON. Pure: [`Comparison::to_markdown`] and [`Comparison::to_json`]
//! only format the values they are given.
//!
//! # `tsbench compare --json`
//!
//! One object on one line; kebab-case fields that may be added to, never
//! renamed or removed. Every `…-ns` figure is in nanoseconds; a percentile
//! object (`p50-ns`, `p99-ns`, `max-ns`, `samples`) summarizes the
//! histogram of one measurement (3 significant figures, see `report.rs`).
//!
//! ```text
//! {"command":"compare","topology":"dr","duration-s":5.0,"cpus":8,
//!  "sites":[{"name":"bj-a","address":"127.0.0.1:40123"},…],"leader":"bj-a","far-site":"xa",
//!  "far-round-trip-ns":25104000,
//!  "half-width":[{"site":"bj-a","half-width":{"p50-ns":…,"p99-ns":…,"max-ns":…,"samples":50},"errors":0},…],
//!  "commit-wait":{"site":"bj-a","waited":{…},"errors":0},
//!  "local-now":{"site":"bj-a","now":{…},"clock-gettime-realtime":{…},"errors":0},
//!  "tso":[{"from":"leader","site":"bj-a","call":"next","concurrency":64,"count-per-call":1,"in-flight":2,
//!          "calls-per-s":…,"timestamps-per-s":…,"latency":{…},"errors":0,"violations":0},…],
//!  "published":[{"system":"Spanner TrueTime","figure":"ε (half-width)","value":"1–7 ms","source":"…"},…]}
//! ```
//!
//! | field | meaning |
//! |---|---|
//! | `command` | `"compare"` |
//! | `topology` | the testbed topology the cluster ran (`--topology`) |
//! | `duration-s` | how long each measurement ran (`--duration`), in seconds |
//! | `cpus` | CPUs of the machine that ran every site and every client |
//! | `sites` | each site's `name` and client `address` (`IP:PORT`) |
//! | `leader` | the site whose TSO held a lease when measuring began |
//! | `far-site` | the site the far TSO rows were measured from: the one with the longest probe round trip to the leader |
//! | `far-round-trip-ns` | that round trip as the far site's status file last reported it; `null` if unknown |
//! | `half-width` | per site: the half-width ε of its bound, sampled every 100 ms from its segment (`tsbench uncertainty --local`); `errors` counts failed reads |
//! | `commit-wait` | at one site: how long each commit-wait lasted (`tsbench commit-wait --local`, `waited`); `errors` counts failed transactions |
//! | `local-now` | at one site: `LocalClock::now()` and, measured interleaved, `clock_gettime(CLOCK_REALTIME)` per call (`tsbench now`); `null` if not measured |
//! | `tso` | per TSO measurement (`tsbench tso`): `from` (`"leader"` or `"far"`), `site`, `call` (`"next"` or `"reserve"`), `concurrency`, `count-per-call`, `in-flight`, `calls-per-s`, `timestamps-per-s`, `latency` of successful calls, `errors` (failed calls), `violations` (ranges out of order or handed out twice; must be 0) |
//! | `published` | the reference figures, as published by their authors and **not measured here**: `system`, `figure`, `value` (text, e.g. `"1–7 ms"`), `source` |

use std::fmt::Write as _;

use serde::Serialize;

use crate::text::format_ns;

/// Percentiles of one measurement, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Percentiles {
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// Largest value.
    pub max_ns: u64,
    /// Values recorded.
    pub samples: u64,
}

/// A site of the cluster measured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SiteEntry {
    /// Its name (`bj-a`).
    pub name: String,
    /// Its client address, `IP:PORT`.
    pub address: String,
}

/// The half-width of one site's bound over the measurement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct HalfWidthFigures {
    /// The site.
    pub site: String,
    /// Its half-width ε.
    pub half_width: Percentiles,
    /// Reads that failed.
    pub errors: u64,
}

/// Commit-waits at one site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CommitWaitFigures {
    /// The site.
    pub site: String,
    /// How long each wait lasted.
    pub waited: Percentiles,
    /// Transactions that failed.
    pub errors: u64,
}

/// `LocalClock::now()` at one site, with its baseline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct LocalNowFigures {
    /// The site whose segment was read.
    pub site: String,
    /// `LocalClock::now()`, per call.
    pub now: Percentiles,
    /// `clock_gettime(CLOCK_REALTIME)`, per call, interleaved.
    pub clock_gettime_realtime: Percentiles,
    /// Calls that failed.
    pub errors: u64,
}

/// Which site a TSO measurement called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TsoFrom {
    /// The site whose TSO leads.
    Leader,
    /// The site farthest from the leader, which forwards to it.
    Far,
}

/// The TSO call measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TsoCall {
    /// `Tso::next()`: one timestamp per call.
    Next,
    /// `Tso::reserve(K)`: a range of K per call.
    Reserve,
}

/// One TSO measurement.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TsoFigures {
    /// Leader's site or far site.
    pub from: TsoFrom,
    /// The site called.
    pub site: String,
    /// `next` or `reserve`.
    pub call: TsoCall,
    /// Tasks calling at once.
    pub concurrency: u32,
    /// Timestamps per call.
    pub count_per_call: u32,
    /// Requests unanswered at once, at most.
    pub in_flight: usize,
    /// Calls per second.
    pub calls_per_s: f64,
    /// Timestamps per second.
    pub timestamps_per_s: f64,
    /// Latency of successful calls.
    pub latency: Percentiles,
    /// Calls that failed.
    pub errors: u64,
    /// Broken promises (out of order or duplicate ranges); must be 0.
    pub violations: u64,
}

/// A reference figure, as its authors published it; not measured here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Published {
    /// The system.
    pub system: &'static str,
    /// What the figure is.
    pub figure: &'static str,
    /// The figure, as text.
    pub value: &'static str,
    /// Where it was published.
    pub source: &'static str,
}

/// Spanner's TrueTime uncertainty.
pub const SPANNER_EPSILON: Published = Published {
    system: "Spanner TrueTime",
    figure: "ε (half-width)",
    value: "1–7 ms",
    source: "Corbett et al., \"Spanner: Google's Globally-Distributed Database\", OSDI 2012 (ε a sawtooth from about 1 to 7 ms)",
};

/// A shared-memory bound client's read.
pub const CLOCKBOUND_READ: Published = Published {
    system: "AWS ClockBound",
    figure: "client read of the bound (shared memory)",
    value: "~80–90 ns",
    source: "github.com/aws/clock-bound, the project's published per-read cost of its client",
};

/// An established TSO's throughput.
pub const PD_TSO_THROUGHPUT: Published = Published {
    system: "TiDB PD",
    figure: "TSO throughput",
    value: "~1 M timestamps/s",
    source: "timestamps per second measured by its own benchmark tool, pd-tso-bench",
};

/// Every reference figure, in the order of the table's notes.
pub const PUBLISHED: [Published; 3] = [SPANNER_EPSILON, CLOCKBOUND_READ, PD_TSO_THROUGHPUT];

/// Everything `tsbench compare` measured; the module doc describes each
/// JSON field.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Comparison {
    /// Always `"compare"`.
    pub command: &'static str,
    /// The testbed topology.
    pub topology: String,
    /// Each measurement's duration, in seconds.
    pub duration_s: f64,
    /// CPUs of the machine.
    pub cpus: usize,
    /// The sites.
    pub sites: Vec<SiteEntry>,
    /// The TSO leader's site.
    pub leader: String,
    /// The far site.
    pub far_site: String,
    /// The far site's probe round trip to the leader, if known.
    pub far_round_trip_ns: Option<u64>,
    /// ε per site.
    pub half_width: Vec<HalfWidthFigures>,
    /// Commit-waits at one site.
    pub commit_wait: CommitWaitFigures,
    /// `LocalClock::now()` at one site, if measured.
    pub local_now: Option<LocalNowFigures>,
    /// The TSO measurements.
    pub tso: Vec<TsoFigures>,
    /// The reference figures ([`PUBLISHED`]).
    pub published: Vec<Published>,
}

/// The column of published figures.
const PUBLISHED_COLUMN: &str = "Reference system: published, not measured here";

impl Comparison {
    /// The JSON object, on one line.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }

    /// Measurements whose figures cannot be trusted as they are: failures
    /// and TSO violations, one line each; empty if none.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for row in &self.half_width {
            if row.errors > 0 {
                problems.push(format!("ε at {}: {} failed reads", row.site, row.errors));
            }
            if row.half_width.samples == 0 {
                problems.push(format!("ε at {}: no bound was read", row.site));
            }
        }
        if self.commit_wait.errors > 0 {
            problems.push(format!(
                "commit-wait at {}: {} failed transactions",
                self.commit_wait.site, self.commit_wait.errors
            ));
        }
        if self.commit_wait.waited.samples == 0 {
            problems.push(format!("commit-wait at {}: no wait finished", self.commit_wait.site));
        }
        if let Some(now) = self.local_now.as_ref().filter(|now| now.errors > 0) {
            problems.push(format!("LocalClock::now() at {}: {} failed calls", now.site, now.errors));
        }
        for row in &self.tso {
            let what = format!("TSO {} at {}", call_text(row), row.site);
            if row.violations > 0 {
                problems
                    .push(format!("{what}: {} VIOLATIONS (ranges out of order or handed out twice)", row.violations));
            }
            if row.errors > 0 {
                problems.push(format!("{what}: {} failed calls", row.errors));
            }
            if row.latency.samples == 0 {
                problems.push(format!("{what}: no call succeeded"));
            }
        }
        problems
    }

    /// The Markdown table, with its heading and notes, to paste in an issue.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("### tsod on tsod-testbed `{}`, beside published reference figures\n\n", self.topology);
        let far = match self.far_round_trip_ns {
            Some(rtt) => format!("far site {} ({} probe round trip to the leader)", self.far_site, format_ns(rtt)),
            None => format!("far site {}", self.far_site),
        };
        let _ = writeln!(
            out,
            "Measured here: {} sites ({}) on one machine with {} CPUs, WAN links simulated; TSO leader {}, {far}; {} per measurement.\n",
            self.sites.len(),
            self.sites.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
            self.cpus,
            self.leader,
            format_seconds(self.duration_s),
        );
        let _ = writeln!(out, "| Measured here (tsod) | Site | p50 | p99 | Throughput | {PUBLISHED_COLUMN} |");
        out.push_str("|---|---|---:|---:|---:|---|\n");
        for (i, row) in self.half_width.iter().enumerate() {
            let reference = if i == 0 { published_cell(&SPANNER_EPSILON, 1) } else { String::new() };
            let p = row.half_width;
            table_row(&mut out, "ε, half-width of the bound", &row.site, p, "", &reference);
        }
        let wait = &self.commit_wait;
        table_row(
            &mut out,
            "commit-wait (≈ 2ε)",
            &wait.site,
            wait.waited,
            "",
            "Spanner: at least 2ε, so about 2–14 ms (derived from ¹)",
        );
        if let Some(now) = &self.local_now {
            table_row(&mut out, "`LocalClock::now()`", &now.site, now.now, "", &published_cell(&CLOCKBOUND_READ, 2));
            table_row(
                &mut out,
                "`clock_gettime(CLOCK_REALTIME)`, baseline",
                &now.site,
                now.clock_gettime_realtime,
                "",
                "",
            );
        }
        let mut pd_shown = false;
        for row in &self.tso {
            let reference = if pd_shown { String::new() } else { published_cell(&PD_TSO_THROUGHPUT, 3) };
            pd_shown = true;
            let site = match row.from {
                TsoFrom::Leader => format!("{} (leader)", row.site),
                TsoFrom::Far => format!("{} (far)", row.site),
            };
            let what = format!("TSO `{}`, {} callers", call_text(row), row.concurrency);
            table_row(&mut out, &what, &site, row.latency, &format_rate(row.timestamps_per_s), &reference);
        }
        out.push('\n');
        for (i, published) in PUBLISHED.iter().enumerate() {
            let _ = writeln!(out, "{} {}: {}.  ", superscript(i.saturating_add(1)), published.system, published.source);
        }
        out.push_str(
            "\nReference figures are as published, on other hardware and deployments; they place tsod's figures, \
             they were not measured here. Throughput is timestamps per second; TSO latency is per call, \
             the far site forwarding to the leader.\n",
        );
        if let (Some(rtt), Some(far)) =
            (self.far_round_trip_ns.filter(|rtt| *rtt > 0), self.tso.iter().find(|row| row.from == TsoFrom::Far))
        {
            let calls_per_s = f64::from(far.concurrency) * 1e9 / rtt as f64;
            let _ = writeln!(
                out,
                "At the far site each call waits about one round trip to the leader, so {} callers make at most \
                 about {} ÷ {} ≈ {calls_per_s:.0} calls/s there: its rows measure latency more than capacity.",
                far.concurrency,
                far.concurrency,
                format_ns(rtt),
            );
        }
        let problems = self.problems();
        if problems.is_empty() {
            out.push_str("\nNo errors, no TSO violations.\n");
        } else {
            out.push_str("\nProblems:\n");
            for problem in problems {
                let _ = writeln!(out, "- {problem}");
            }
        }
        out
    }
}

/// `next()` or `reserve(K)`.
fn call_text(row: &TsoFigures) -> String {
    match row.call {
        TsoCall::Next => "next()".to_owned(),
        TsoCall::Reserve => format!("reserve({})", row.count_per_call),
    }
}

/// A published figure and its note number.
fn published_cell(published: &Published, note: usize) -> String {
    format!("{} {}: {} {}", published.system, published.figure, published.value, superscript(note))
}

fn superscript(n: usize) -> &'static str {
    match n {
        1 => "¹",
        2 => "²",
        3 => "³",
        _ => "⁺",
    }
}

fn table_row(out: &mut String, what: &str, site: &str, p: Percentiles, throughput: &str, reference: &str) {
    let (p50, p99) =
        if p.samples == 0 { ("–".to_owned(), "–".to_owned()) } else { (format_ns(p.p50_ns), format_ns(p.p99_ns)) };
    let _ = writeln!(out, "| {what} | {site} | {p50} | {p99} | {throughput} | {reference} |");
}

/// Timestamps per second for people: `950 ts/s`, `12.3 k ts/s`, `2.87 M ts/s`.
pub fn format_rate(per_second: f64) -> String {
    if per_second >= 1e6 {
        format!("{:.2} M ts/s", per_second / 1e6)
    } else if per_second >= 1e4 {
        format!("{:.1} k ts/s", per_second / 1e3)
    } else {
        format!("{per_second:.0} ts/s")
    }
}

/// `5 s`, `1.5 s`, `250 ms`.
fn format_seconds(seconds: f64) -> String {
    if seconds >= 1.0 {
        let text = format!("{seconds:.3}");
        format!("{} s", text.trim_end_matches('0').trim_end_matches('.'))
    } else {
        format!("{:.0} ms", seconds * 1e3)
    }
}
