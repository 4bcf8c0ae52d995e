//! The TSO checker's judgement (pure: no runtime, no sockets): what the
//! load generator ([`crate::tso::load`]) recorded, checked against invariant
//! 2 of docs/ARCHITECTURE.md (SPEC.md §4.13) and the host clock, which is true time on this machine.
//!
//! Every successful call is a [`Success`]: the site asked, the host
//! `CLOCK_REALTIME` read just before the call (`sent_ns`) and just after it
//! returned (`received_ns`), and the timestamp. Three checks judge them all
//! together, across sites ([`check`]):
//!
//! * **duplicates**: one timestamp handed out twice (to any two calls at any
//!   sites). Counted once per extra copy.
//! * **regressions** (real-time order): a call `b` that started after a call
//!   `a` had returned (`a.received_ns < b.sent_ns`, host clock, any sites)
//!   must get a larger timestamp. Counted once per `b` that does not. The
//!   sweep: calls sorted by `received_ns` and by `sent_ns`; walking the
//!   second list, every call received before the current one was sent is
//!   folded into a running maximum, which the current one must exceed —
//!   O(n log n).
//! * **dishonest** timestamps: the physical part (µs, × 1000 ns) lies more
//!   than a slack, plus an allowance, outside `[sent_ns, received_ns]`, the
//!   true time while the call was in flight. A leader issues physical parts
//!   inside its bounded interval (SPEC.md §4.13: at its top microsecond),
//!   which contains true time, so a physical part lies within the
//!   interval's width of true time, and only a wrong bound or a wrong
//!   allocator gets farther. The allowance ([`check_with_allowance`]) is
//!   that width: the widest interval any site published around the call
//!   ([`Checker::widest`](crate::checker::Checker::widest)); with narrow
//!   bounds it is small against the slack, but a bound a second wide (a
//!   leap second nobody announced) rightly gives timestamps up to a second
//!   ahead.
//!
//! Each failed call is a [`Failure`] with its kind ([`FailureKind`]).
//! [`site_phase`] sums up one site over one span of the timeline:
//! timestamps, errors, latency percentiles and the longest span without a
//! success (the unavailability a client saw).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use tsod_proto::HybridTimestamp;

/// Violations quoted in a [`Findings`], at most.
pub const MAX_EXAMPLES: usize = 10;

/// How far a timestamp's physical part may lie outside the host time of its
/// call before it counts as dishonest: 50 ms, far more than the sites'
/// half-widths in the built-in topologies and far less than the 400 ms
/// lease a broken failover would show.
pub const HONESTY_SLACK: Duration = Duration::from_millis(50);

/// One call that returned a timestamp.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Success {
    /// The site asked (index into the cluster's sites).
    pub site: usize,
    /// Host realtime just before the call, ns since the Unix epoch.
    pub sent_ns: u64,
    /// Host realtime just after it returned.
    pub received_ns: u64,
    /// When it returned, seconds into the timeline (negative: warm-up).
    pub at_s: f64,
    /// How long the call took (monotonic).
    pub latency: Duration,
    /// What it got.
    pub timestamp: HybridTimestamp,
}

/// Why a call gave no timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureKind {
    /// The client could not connect to the site (daemon down, paused, handshake failed).
    Connect,
    /// `tso-unavailable`: no leader, or the leader is not sure of its lease.
    Unavailable,
    /// `rate-limited`.
    RateLimited,
    /// `overloaded`.
    Overloaded,
    /// The connection failed or a request timed out.
    Transport,
    /// Another error answer.
    Refused,
    /// An answer that did not match the request.
    Mismatch,
    /// The client refused a range below one it had already received: the
    /// service went backwards (a violation, like a regression).
    WentBackwards,
    /// The client's retries did not succeed within its deadline.
    DeadlineExceeded,
    /// The client's background task stopped.
    Stopped,
}

impl FailureKind {
    /// Its stable kebab-case name (report keys).
    pub fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Unavailable => "unavailable",
            Self::RateLimited => "rate-limited",
            Self::Overloaded => "overloaded",
            Self::Transport => "transport",
            Self::Refused => "refused",
            Self::Mismatch => "mismatch",
            Self::WentBackwards => "went-backwards",
            Self::DeadlineExceeded => "deadline-exceeded",
            Self::Stopped => "stopped",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One call that gave no timestamp.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Failure {
    /// The site asked.
    pub site: usize,
    /// When the call returned, seconds into the timeline.
    pub at_s: f64,
    /// Why.
    pub kind: FailureKind,
}

/// What [`check`] found: each count is a violation of the scenario.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Findings {
    /// Timestamps handed out more than once (extra copies).
    pub duplicates: u64,
    /// Calls that got a timestamp not above one received before they started.
    pub regressions: u64,
    /// Timestamps whose physical part lay more than the slack from host time.
    pub dishonest: u64,
    /// The farthest any physical part lay outside its call's span, ms
    /// (0 when all lay inside).
    pub max_deviation_ms: f64,
    /// Which call that was, in words (`None` when all lay inside).
    pub max_deviation: Option<String>,
    /// The first few violations, in words.
    pub examples: Vec<String>,
}

impl Findings {
    /// No violation.
    pub fn clean(&self) -> bool {
        self.duplicates == 0 && self.regressions == 0 && self.dishonest == 0
    }

    fn example(&mut self, text: impl FnOnce() -> String) {
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(text());
        }
    }
}

/// Runs the three checks over every success (any order), `names` naming the
/// sites for the examples, `slack` the honesty tolerance (no allowance).
pub fn check(successes: &[Success], names: &[String], slack: Duration) -> Findings {
    check_with_allowance(successes, names, slack, &|_| Duration::ZERO)
}

/// [`check`], a physical part being honest within `slack` plus
/// `allowance(call)` of its call's span (the widest interval around it).
pub fn check_with_allowance(
    successes: &[Success],
    names: &[String],
    slack: Duration,
    allowance: &dyn Fn(&Success) -> Duration,
) -> Findings {
    let mut findings = Findings::default();
    duplicates(successes, &mut findings, names);
    regressions(successes, &mut findings, names);
    honesty(successes, slack, allowance, &mut findings, names);
    findings
}

fn site_name(names: &[String], site: usize) -> &str {
    names.get(site).map_or("?", String::as_str)
}

fn sent_at_s(s: &Success) -> f64 {
    s.at_s - s.received_ns.saturating_sub(s.sent_ns) as f64 / 1e9
}

fn duplicates(successes: &[Success], findings: &mut Findings, names: &[String]) {
    let mut by_value: Vec<&Success> = successes.iter().collect();
    by_value.sort_unstable_by_key(|s| s.timestamp);
    for pair in by_value.windows(2) {
        if let [a, b] = pair {
            if a.timestamp == b.timestamp {
                findings.duplicates = findings.duplicates.saturating_add(1);
                findings.example(|| {
                    format!(
                        "duplicate {} (raw {}): {} at {:+.3} s and {} at {:+.3} s",
                        a.timestamp,
                        a.timestamp.raw(),
                        site_name(names, a.site),
                        a.at_s,
                        site_name(names, b.site),
                        b.at_s
                    )
                });
            }
        }
    }
}

fn regressions(successes: &[Success], findings: &mut Findings, names: &[String]) {
    let mut by_receipt: Vec<&Success> = successes.iter().collect();
    by_receipt.sort_unstable_by_key(|s| s.received_ns);
    let mut by_start: Vec<&Success> = successes.iter().collect();
    by_start.sort_unstable_by_key(|s| s.sent_ns);
    let mut received = by_receipt.iter().peekable();
    // The largest timestamp among the calls received so far, and its call.
    let mut highest: Option<&Success> = None;
    for b in by_start {
        while let Some(a) = received.next_if(|a| a.received_ns < b.sent_ns) {
            if highest.is_none_or(|h| a.timestamp > h.timestamp) {
                highest = Some(a);
            }
        }
        if let Some(a) = highest.filter(|a| b.timestamp <= a.timestamp) {
            findings.regressions = findings.regressions.saturating_add(1);
            findings.example(|| {
                format!(
                    "regression: {} asked at {:+.3} s and got {}, but {} had received {} at {:+.3} s",
                    site_name(names, b.site),
                    sent_at_s(b),
                    b.timestamp,
                    site_name(names, a.site),
                    a.timestamp,
                    a.at_s
                )
            });
        }
    }
}

fn honesty(
    successes: &[Success],
    slack: Duration,
    allowance: &dyn Fn(&Success) -> Duration,
    findings: &mut Findings,
    names: &[String],
) {
    for s in successes {
        let slack_ns = u64::try_from(slack.saturating_add(allowance(s)).as_nanos()).unwrap_or(u64::MAX);
        let physical_ns = s.timestamp.physical_micros().saturating_mul(1_000);
        let behind = s.sent_ns.saturating_sub(physical_ns);
        let ahead = physical_ns.saturating_sub(s.received_ns);
        let off = behind.max(ahead);
        let describe = || {
            let way = if ahead > behind { "ahead of" } else { "behind" };
            format!(
                "{} got {} at {:+.3} s after a {:.3} ms call, {:.3} ms {way} true time",
                site_name(names, s.site),
                s.timestamp,
                s.at_s,
                s.latency.as_secs_f64() * 1e3,
                off as f64 / 1e6
            )
        };
        if off > 0 && off as f64 / 1e6 > findings.max_deviation_ms {
            findings.max_deviation_ms = off as f64 / 1e6;
            findings.max_deviation = Some(describe());
        }
        if off > slack_ns {
            findings.dishonest = findings.dishonest.saturating_add(1);
            findings.example(|| format!("dishonest: {}", describe()));
        }
    }
}

/// One site over one span of the timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SitePhase {
    /// The site.
    pub site: String,
    /// Calls that returned a timestamp within the span.
    pub timestamps: u64,
    /// Calls that failed within the span.
    pub errors: u64,
    /// Those by kind ([`FailureKind::name`]).
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Median latency of the successful calls, ms.
    pub p50_latency_ms: Option<f64>,
    /// 99th percentile.
    pub p99_latency_ms: Option<f64>,
    /// The longest span without a success, counting from the span's start
    /// and to its end, s: the unavailability this site's clients saw.
    pub longest_gap_s: f64,
}

/// The figures of `site` (named `name`) over `[from_s, to_s)`, from the
/// successes and failures of all sites (any order).
pub fn site_phase(
    site: usize,
    name: &str,
    successes: &[Success],
    failures: &[Failure],
    from_s: f64,
    to_s: f64,
) -> SitePhase {
    let within = |at: f64| at >= from_s && at < to_s;
    let mine: Vec<&Success> = successes.iter().filter(|s| s.site == site && within(s.at_s)).collect();
    let mut times: Vec<f64> = mine.iter().map(|s| s.at_s).collect();
    times.sort_unstable_by(f64::total_cmp);
    let mut latencies: Vec<Duration> = mine.iter().map(|s| s.latency).collect();
    latencies.sort_unstable();
    let percentile = |q: usize| {
        let last = latencies.len().checked_sub(1)?;
        latencies.get(last.saturating_mul(q) / 100).map(|d| d.as_secs_f64() * 1e3)
    };
    let mut longest_gap_s: f64 = 0.0;
    let mut previous = from_s;
    for t in times.iter().copied().chain([to_s]) {
        longest_gap_s = longest_gap_s.max(t - previous);
        previous = t;
    }
    let mut errors_by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut errors = 0_u64;
    for failure in failures.iter().filter(|f| f.site == site && within(f.at_s)) {
        errors = errors.saturating_add(1);
        let count = errors_by_kind.entry(failure.kind.name().to_owned()).or_default();
        *count = count.saturating_add(1);
    }
    SitePhase {
        site: name.to_owned(),
        timestamps: u64::try_from(mine.len()).unwrap_or(u64::MAX),
        errors,
        errors_by_kind,
        p50_latency_ms: percentile(50),
        p99_latency_ms: percentile(99),
        longest_gap_s,
    }
}

/// The unavailability `site`'s clients saw after an event at `from_s`: the
/// longest span without a success that begins in `[from_s, to_s)` (at
/// `from_s` or at a success), running to the next success even past
/// `to_s`, or to `end_s` if none came. Unlike [`SitePhase::longest_gap_s`]
/// it is not cut at the next event: a fault that outlasts its phase (a
/// pause shorter than the failover) shows in full.
pub fn unavailability_after(site: usize, successes: &[Success], from_s: f64, to_s: f64, end_s: f64) -> f64 {
    longest_gap_after(site, successes, from_s, to_s, end_s).length_s
}

/// A span without a success at one site.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Gap {
    /// When it began (the event, or the success before it), timeline s.
    pub from_s: f64,
    /// How long it lasted, s.
    pub length_s: f64,
}

/// The gap [`unavailability_after`] measures, with when it began (the
/// first of the longest, if several are as long).
pub fn longest_gap_after(site: usize, successes: &[Success], from_s: f64, to_s: f64, end_s: f64) -> Gap {
    let mut times: Vec<f64> =
        successes.iter().filter(|s| s.site == site && s.at_s >= from_s && s.at_s < end_s).map(|s| s.at_s).collect();
    times.sort_unstable_by(f64::total_cmp);
    let mut longest = Gap { from_s, length_s: 0.0 };
    let mut previous = from_s;
    for t in times.iter().copied().chain([end_s]) {
        if previous >= to_s {
            break;
        }
        if t - previous > longest.length_s {
            longest = Gap { from_s: previous, length_s: t - previous };
        }
        previous = t;
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;
    /// Host realtime of the timeline's t = 0 in these tests.
    const ZERO: u64 = 1_800_000_000 * SECOND;

    fn names() -> Vec<String> {
        ["bj-a", "bj-b", "xa"].map(str::to_owned).to_vec()
    }

    /// A call at `site` sent `sent_ms` after t = 0, taking `took_ms`, that
    /// got the timestamp of physical time `physical_ms` (after t = 0) with
    /// logical part `logical`.
    fn call(site: usize, sent_ms: u64, took_ms: u64, physical_ms: u64, logical: u16) -> Success {
        let sent_ns = ZERO + sent_ms * 1_000_000;
        let received_ns = sent_ns + took_ms * 1_000_000;
        Success {
            site,
            sent_ns,
            received_ns,
            at_s: (received_ns - ZERO) as f64 / 1e9,
            latency: Duration::from_millis(took_ms),
            timestamp: HybridTimestamp::from_parts((ZERO + physical_ms * 1_000_000) / 1_000, logical).unwrap(),
        }
    }

    /// Honest, ordered calls: three sites, one call each every 10 ms, each
    /// taking 2 ms and issued at its midpoint.
    fn honest_run() -> Vec<Success> {
        let mut calls = Vec::new();
        for i in 0..100u64 {
            for site in 0..3usize {
                let sent = i * 10 + site as u64 * 3;
                calls.push(call(site, sent, 2, sent + 1, 0));
            }
        }
        calls
    }

    fn slack() -> Duration {
        Duration::from_millis(50)
    }

    #[test]
    fn an_honest_ordered_run_is_clean() {
        let findings = check(&honest_run(), &names(), slack());
        assert!(findings.clean(), "{findings:?}");
        assert_eq!(findings.examples, Vec::<String>::new());
        assert!(findings.max_deviation_ms < 1e-9, "{}", findings.max_deviation_ms);
        assert_eq!(findings.max_deviation, None);
        assert!(check(&[], &names(), slack()).clean());
    }

    #[test]
    fn overlapping_calls_may_come_back_in_any_order() {
        // b starts before a returned: b's smaller timestamp is no regression.
        let a = call(0, 100, 10, 105, 0);
        let b = call(1, 105, 10, 104, 0);
        assert!(check(&[a, b], &names(), slack()).clean());
        // Sent in the very nanosecond a returned: not "after" it (strict).
        let c = call(2, 110, 5, 103, 0);
        assert_eq!(c.sent_ns, a.received_ns);
        assert!(check(&[a, c], &names(), slack()).clean());
        // One nanosecond later it is.
        let d = Success { sent_ns: c.sent_ns + 1, ..c };
        assert_eq!(check(&[a, d], &names(), slack()).regressions, 1);
    }

    #[test]
    fn a_duplicate_is_counted() {
        let mut calls = honest_run();
        let copy = Success { site: 2, ..calls[40] };
        calls.push(copy);
        let findings = check(&calls, &names(), slack());
        assert_eq!(findings.duplicates, 1, "{findings:?}");
        assert!(findings.examples.iter().any(|e| e.starts_with("duplicate") && e.contains("xa")), "{findings:?}");
        // Three copies: two extra.
        calls.push(Success { site: 1, ..calls[40] });
        assert_eq!(check(&calls, &names(), slack()).duplicates, 2);
    }

    #[test]
    fn a_regression_across_sites_is_counted() {
        let mut calls = honest_run();
        // xa asks at 500 ms, long after bj-a received a timestamp of 300 ms,
        // and gets one of 299 ms.
        calls.push(call(2, 500, 1, 299, 7));
        let findings = check(&calls, &names(), slack());
        assert_eq!(findings.regressions, 1, "{findings:?}");
        // 299 ms lies 201 ms behind host time: also dishonest.
        assert_eq!(findings.dishonest, 1, "{findings:?}");
        assert_eq!(findings.duplicates, 0);
        assert!(findings.examples.iter().any(|e| e.starts_with("regression: xa asked at +0.500 s")), "{findings:?}");
    }

    #[test]
    fn an_honest_regression_within_the_slack_is_still_a_regression() {
        let a = call(0, 100, 2, 101, 5);
        // Sent after a returned, honest (inside its own span), but equal to a.
        let equal = call(1, 103, 2, 101, 5);
        let findings = check(&[a, equal], &names(), slack());
        assert_eq!((findings.regressions, findings.duplicates, findings.dishonest), (1, 1, 0), "{findings:?}");
        // One logical tick lower.
        let lower = call(1, 103, 2, 101, 4);
        let findings = check(&[a, lower], &names(), slack());
        assert_eq!((findings.regressions, findings.duplicates, findings.dishonest), (1, 0, 0), "{findings:?}");
    }

    #[test]
    fn a_dishonest_timestamp_is_counted_either_way() {
        let mut calls = honest_run();
        // 80 ms ahead of host time: dishonest, though still in order at the end.
        calls.push(call(0, 2_000, 1, 2_081, 0));
        let findings = check(&calls, &names(), slack());
        assert_eq!((findings.dishonest, findings.regressions), (1, 0), "{findings:?}");
        assert!((findings.max_deviation_ms - 80.0).abs() < 1e-6, "{}", findings.max_deviation_ms);
        assert!(findings.examples[0].contains("ahead of true time"), "{findings:?}");
        // 40 ms ahead: within the 50 ms slack, only its deviation shows.
        let findings = check(&[call(0, 2_000, 1, 2_041, 0)], &names(), slack());
        assert!(findings.clean());
        assert!((findings.max_deviation_ms - 40.0).abs() < 1e-6);
        assert_eq!(
            findings.max_deviation.as_deref(),
            Some("bj-a got 1800000002041000.0 at +2.001 s after a 1.000 ms call, 40.000 ms ahead of true time")
        );
        // Behind.
        let findings = check(&[call(1, 2_000, 1, 1_900, 0)], &names(), slack());
        assert_eq!(findings.dishonest, 1);
        assert!(findings.examples[0].contains("behind true time"), "{findings:?}");
    }

    #[test]
    fn a_wide_bound_allows_timestamps_as_far_off_as_it_is_wide() {
        // 999 ms ahead: the top of a second-wide interval (an unknown leap).
        let calls = [call(0, 2_000, 1, 2_999, 0), call(1, 5_000, 1, 5_300, 0)];
        let wide = |s: &Success| if s.site == 0 { Duration::from_millis(1_000) } else { Duration::ZERO };
        let findings = check_with_allowance(&calls, &names(), slack(), &wide);
        assert_eq!(findings.dishonest, 1, "only the call without the allowance: {findings:?}");
        assert!(findings.examples[0].starts_with("dishonest: bj-b"), "{findings:?}");
        assert_eq!(check(&calls, &names(), slack()).dishonest, 2);
    }

    #[test]
    fn examples_are_capped() {
        let calls: Vec<Success> = (0..50).map(|i| call(0, 1_000 + i, 1, 0, 0)).collect();
        let findings = check(&calls, &names(), slack());
        assert_eq!(findings.dishonest, 50);
        assert_eq!(findings.examples.len(), MAX_EXAMPLES);
    }

    #[test]
    fn phase_figures_and_the_longest_gap() {
        let mut calls = Vec::new();
        // bj-a: a success every 10 ms from 0 to 1 s, then none until 3 s,
        // then every 10 ms until 4 s.
        for i in 0..100u64 {
            calls.push(call(0, i * 10, 1 + i % 10, i * 10, 0));
            calls.push(call(0, 3_000 + i * 10, 1, 3_000 + i * 10, 0));
        }
        let failures = [
            Failure { site: 0, at_s: 1.5, kind: FailureKind::DeadlineExceeded },
            Failure { site: 0, at_s: 2.5, kind: FailureKind::DeadlineExceeded },
            Failure { site: 0, at_s: 2.6, kind: FailureKind::Connect },
            Failure { site: 1, at_s: 2.6, kind: FailureKind::Connect },
            Failure { site: 0, at_s: 9.0, kind: FailureKind::Connect },
        ];
        let phase = site_phase(0, "bj-a", &calls, &failures, 0.0, 5.0);
        assert_eq!(phase.site, "bj-a");
        assert_eq!((phase.timestamps, phase.errors), (200, 3));
        assert_eq!(phase.errors_by_kind.get("deadline-exceeded"), Some(&2));
        assert_eq!(phase.errors_by_kind.get("connect"), Some(&1));
        // The last of the first second was received at 1.000 s (sent at 990 ms,
        // took 1 + 99 % 10 = 10 ms), the next at 3.001 s.
        assert!((phase.longest_gap_s - 2.001).abs() < 1e-9, "{}", phase.longest_gap_s);
        assert_eq!(phase.p50_latency_ms, Some(1.0));
        assert_eq!(phase.p99_latency_ms, Some(10.0));
        // A span with no success at all: the whole span is the gap.
        let quiet = site_phase(1, "bj-b", &calls, &failures, 0.0, 5.0);
        assert_eq!((quiet.timestamps, quiet.errors, quiet.longest_gap_s), (0, 1, 5.0));
        assert_eq!((quiet.p50_latency_ms, quiet.p99_latency_ms), (None, None));
        // The gap runs to the span's end.
        let tail = site_phase(0, "bj-a", &calls, &failures, 3.5, 6.0);
        assert!((tail.longest_gap_s - (6.0 - 3.991)).abs() < 1e-9, "{}", tail.longest_gap_s);
    }

    #[test]
    fn unavailability_runs_past_the_next_event() {
        let mut calls = Vec::new();
        // bj-a: successes every 10 ms until 1 s, then from 3 s on.
        for i in 0..100u64 {
            calls.push(call(0, i * 10, 1, i * 10, 0));
            calls.push(call(0, 3_000 + i * 10, 1, 3_000 + i * 10, 0));
        }
        let gap = |from, to, end| unavailability_after(0, &calls, from, to, end);
        // An event at 0.5 s followed by another at 2 s: the gap that began at
        // 0.991 s runs on to the success at 3.001 s.
        assert!((gap(0.5, 2.0, 10.0) - 2.01).abs() < 1e-9, "{}", gap(0.5, 2.0, 10.0));
        // An event at 1.5 s, inside the gap: from the event to 3.001 s.
        assert!((gap(1.5, 2.0, 10.0) - 1.501).abs() < 1e-9, "{}", gap(1.5, 2.0, 10.0));
        // A gap that begins after the next event is not this event's.
        assert!(gap(0.0, 0.5, 10.0) < 0.02, "{}", gap(0.0, 0.5, 10.0));
        // No success after the event at all: to the end.
        assert!((gap(4.5, 5.0, 10.0) - 5.5).abs() < 1e-9, "{}", gap(4.5, 5.0, 10.0));
        assert!((unavailability_after(1, &calls, 2.0, 3.0, 10.0) - 8.0).abs() < 1e-9);
        // Where the longest gap began: at the last success before it, or at
        // the event.
        let gap = longest_gap_after(0, &calls, 0.5, 2.0, 10.0);
        assert!((gap.from_s - 0.991).abs() < 1e-9 && (gap.length_s - 2.01).abs() < 1e-9, "{gap:?}");
        let gap = longest_gap_after(0, &calls, 1.5, 2.0, 10.0);
        assert!((gap.from_s - 1.5).abs() < 1e-9, "{gap:?}");
        assert_eq!(longest_gap_after(1, &calls, 2.0, 3.0, 10.0), Gap { from_s: 2.0, length_s: 8.0 });
    }
}
