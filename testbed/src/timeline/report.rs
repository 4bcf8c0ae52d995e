//! The [`Report`] of a scenario run: what the truth checker and the TSO
//! checker found, per phase (the spans between events) and per event, as
//! text for people ([`Report::to_text`]) and as JSON (serde, kebab-case
//! field names, stable for scripts).
//!
//! Per event and site, [`Widening`] says how far the bound widened after
//! it, and for how long.
//!
//! A scenario **passes** when no interval excluded true time, the TSO
//! checks found no duplicate, regression, went-backwards answer or
//! dishonest timestamp ([`TsoReport::clean`]), and every event could be
//! applied (a `site = "leader"` event finds no leader: an error), and
//! every check the scenario states passed ([`CheckReport`]: an
//! `expect-leader` met within its window, a `max-gap-ms` kept).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::checker::Checker;
use crate::spec::scenario::GapLimit;
use crate::tso;
use crate::tso::check::{FailureKind, Gap, SitePhase as TsoSitePhase};
use crate::tso::load::TsoRecord;

mod widening;

pub use widening::{BEFORE_S, ELEVATED_FACTOR, LEAD_S, Widening, widening};

/// How far around a TSO call the intervals that bound its honesty are
/// looked for (s): two of the checker's samples.
pub const ALLOWANCE_MARGIN_S: f64 = 0.1;

/// The outcome of a scenario.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Report {
    /// The scenario.
    pub scenario: String,
    /// Its topology.
    pub topology: String,
    /// Readings of every site's bound (all sites together).
    pub readings: u64,
    /// Intervals that excluded true time while their site said bounded.
    pub violations: Vec<ViolationReport>,
    /// Half-widths and TSO figures per phase and site.
    pub phases: Vec<PhaseReport>,
    /// Per event: detection, recovery, TSO unavailability.
    pub events: Vec<EventReport>,
    /// The TSO checks over the whole run (warm-up included).
    pub tso: TsoReport,
    /// Who led the TSO when, by the status files polled every 250 ms (a
    /// change of site or term, or no leader), and why it said it led.
    pub tso_leaders: Vec<LeaderChange>,
    /// The scenario's checks (`expect-leader`, `max-gap-ms`), by time.
    pub checks: Vec<CheckReport>,
    /// No violation, no TSO violation, no event error, no failed check.
    pub passed: bool,
}

/// One check the scenario states, judged.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CheckReport {
    /// When it began, seconds into the timeline.
    pub at_s: f64,
    /// What it expects, in words.
    pub check: String,
    /// It held.
    pub passed: bool,
    /// What was seen: when it was met, or why not.
    pub detail: String,
}

/// A `max-gap-ms` to judge once the run is over.
#[derive(Clone, Debug, PartialEq)]
pub struct GapCheck {
    /// The event it is on (index into the report's events).
    pub event: usize,
    /// The limit.
    pub limit: GapLimit,
    /// The site the event acted on (`None`: none, or not applied).
    pub site: Option<String>,
}

/// What the run loop saw of the timeline, for `build`: who led, the
/// events applied, the `expect-leader` checks (judged already) and the
/// `max-gap-ms` ones (to judge from the TSO record).
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Who led the TSO when.
    pub leaders: Vec<LeaderChange>,
    /// The events applied (checks are not events).
    pub events: Vec<EventReport>,
    /// The `expect-leader` checks, judged.
    pub expectations: Vec<CheckReport>,
    /// The `max-gap-ms` limits.
    pub gaps: Vec<GapCheck>,
}

/// One violation.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ViolationReport {
    /// The site.
    pub site: String,
    /// Seconds into the timeline (negative: warm-up).
    pub at_s: f64,
    /// How far outside truth lay, µs.
    pub by_us: f64,
    /// The interval.
    pub interval: String,
}

/// A span of the timeline.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PhaseReport {
    /// Start, seconds into the timeline.
    pub from_s: f64,
    /// End.
    pub to_s: f64,
    /// What began it (`start` or the event).
    pub after: String,
    /// Per site: half-widths.
    pub sites: Vec<SitePhase>,
    /// Per site: TSO calls, errors, latency, longest span without a timestamp.
    pub tso: Vec<TsoSitePhase>,
}

/// One site in a phase.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SitePhase {
    /// The site.
    pub site: String,
    /// Half-width percentiles over the readings with a bound, µs.
    pub p50_us: Option<f64>,
    /// 99th percentile.
    pub p99_us: Option<f64>,
    /// Largest.
    pub max_us: Option<f64>,
    /// Share of readings without a bound (0 … 1).
    pub unbounded: f64,
}

/// One event's effect.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct EventReport {
    /// Seconds into the timeline.
    pub at_s: f64,
    /// The event.
    pub event: String,
    /// The site it acted on, when it named `"leader"` and one was found.
    pub site: Option<String>,
    /// Why it could not be applied (it then did nothing).
    pub error: Option<String>,
    /// Until some site's status, falsetickers or peer links changed, s.
    pub detected_after_s: Option<f64>,
    /// Until every running site was synchronized with no falseticker again,
    /// after the event was detected, s (within the phase the event began).
    pub recovered_after_s: Option<f64>,
    /// Per site: the unavailability its TSO clients saw after the event,
    /// s: the longest span without a timestamp that began between the event
    /// and the next one at a later time, running on to the next timestamp
    /// ([`tso::check::unavailability_after`]).
    pub tso_unavailable_s: BTreeMap<String, f64>,
    /// Per site: how far its bound widened after the event, and for how long.
    pub widening: Vec<Widening>,
}

/// The TSO leader from some time on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct LeaderChange {
    /// Seconds into the timeline, as polled (negative: warm-up), in ms.
    pub at_ms: i64,
    /// The site that leads from then on (`None`: none does).
    pub site: Option<String>,
    /// Its term.
    pub term: Option<u64>,
    /// Why it leads, as its status file said then (`why_leading`).
    pub why: Option<String>,
}

/// The TSO checks over a whole run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TsoReport {
    /// Calls that returned a timestamp.
    pub timestamps: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Those by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Timestamps handed out more than once.
    pub duplicates: u64,
    /// Calls that got a timestamp not above one received before they started.
    pub regressions: u64,
    /// Answers the client itself refused as going backwards.
    pub went_backwards: u64,
    /// Timestamps farther than the slack (plus the widest interval around
    /// their call) from true time.
    pub dishonest: u64,
    /// The honesty slack, ms.
    pub honesty_slack_ms: f64,
    /// The farthest a physical part lay outside its call's span, ms.
    pub max_deviation_ms: f64,
    /// Which call that was, in words.
    pub max_deviation: Option<String>,
    /// The first few violations, in words.
    pub examples: Vec<String>,
}

impl TsoReport {
    /// The checks ([`tso::check::check_with_allowance`]) over everything
    /// `record` holds, a physical part allowed to lie as far from true time
    /// as the widest interval `checker` read from [`ALLOWANCE_MARGIN_S`]
    /// before its call was sent to as long after it returned.
    pub fn from_record(record: &TsoRecord, checker: &Checker) -> Self {
        let allowance = |s: &tso::check::Success| {
            let sent_s = s.at_s - s.latency.as_secs_f64();
            checker.widest(sent_s - ALLOWANCE_MARGIN_S, s.at_s + ALLOWANCE_MARGIN_S)
        };
        let findings =
            tso::check::check_with_allowance(&record.successes, &record.names, tso::check::HONESTY_SLACK, &allowance);
        let mut errors_by_kind: BTreeMap<String, u64> = BTreeMap::new();
        for failure in &record.failures {
            let count = errors_by_kind.entry(failure.kind.name().to_owned()).or_default();
            *count = count.saturating_add(1);
        }
        let went_backwards = errors_by_kind.get(FailureKind::WentBackwards.name()).copied().unwrap_or(0);
        Self {
            timestamps: u64::try_from(record.successes.len()).unwrap_or(u64::MAX),
            errors: u64::try_from(record.failures.len()).unwrap_or(u64::MAX),
            errors_by_kind,
            duplicates: findings.duplicates,
            regressions: findings.regressions,
            went_backwards,
            dishonest: findings.dishonest,
            honesty_slack_ms: tso::check::HONESTY_SLACK.as_secs_f64() * 1e3,
            max_deviation_ms: findings.max_deviation_ms,
            max_deviation: findings.max_deviation,
            examples: findings.examples,
        }
    }

    /// No duplicate, regression, went-backwards answer or dishonest timestamp.
    pub fn clean(&self) -> bool {
        self.duplicates == 0 && self.regressions == 0 && self.went_backwards == 0 && self.dishonest == 0
    }

    /// One line: the counts.
    pub fn summary(&self) -> String {
        format!(
            "TSO: {} timestamps, {} errors; {} duplicates, {} regressions, {} went backwards, {} dishonest \
             (slack ±{:.0} ms, farthest {:.3} ms)",
            self.timestamps,
            self.errors,
            self.duplicates,
            self.regressions,
            self.went_backwards,
            self.dishonest,
            self.honesty_slack_ms,
            self.max_deviation_ms
        )
    }
}

/// The report of a run: `checker`'s readings, `tso`'s calls, what the run
/// `observed` (its events with detection, recovery and resolution filled
/// in), the timeline ending at `end`.
pub(super) fn build(
    scenario: &str,
    topology: &str,
    checker: &Checker,
    tso: &TsoRecord,
    observed: Observed,
    end: f64,
) -> Report {
    let Observed { leaders: tso_leaders, mut events, expectations, gaps: gap_checks } = observed;
    let tso_phase = |from: f64, to: f64| -> Vec<TsoSitePhase> {
        tso.names
            .iter()
            .enumerate()
            .map(|(i, name)| tso::check::site_phase(i, name, &tso.successes, &tso.failures, from, to))
            .collect()
    };
    let starts: Vec<f64> = events.iter().map(|e| e.at_s).collect();
    // Per event, per site: the longest gap after it (for the gap checks).
    let mut gaps: Vec<BTreeMap<String, Gap>> = Vec::with_capacity(events.len());
    for event in &mut events {
        let to = starts.iter().copied().find(|t| *t > event.at_s).unwrap_or(end);
        let from = starts.iter().copied().rev().find(|t| *t < event.at_s).unwrap_or(f64::NEG_INFINITY);
        event.widening = checker.sites.iter().map(|site| widening(site, from, event.at_s, to)).collect();
        let after: BTreeMap<String, Gap> = tso
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), tso::check::longest_gap_after(i, &tso.successes, event.at_s, to, end)))
            .collect();
        event.tso_unavailable_s = after.iter().map(|(name, gap)| (name.clone(), gap.length_s)).collect();
        gaps.push(after);
    }
    let mut bounds: Vec<(f64, String)> = vec![(0.0, "start".to_owned())];
    bounds.extend(events.iter().map(|e| (e.at_s, e.described())));
    let phases = bounds
        .iter()
        .enumerate()
        .map(|(i, (from, after))| {
            let to = bounds.get(i + 1).map_or(end, |b| b.0);
            PhaseReport {
                from_s: *from,
                to_s: to,
                after: after.clone(),
                sites: checker
                    .sites
                    .iter()
                    .map(|site| {
                        let p = site.half_width_percentiles(*from, to);
                        let us = |d: std::time::Duration| d.as_secs_f64() * 1e6;
                        SitePhase {
                            site: site.name.clone(),
                            p50_us: p.map(|p| us(p.0)),
                            p99_us: p.map(|p| us(p.1)),
                            max_us: p.map(|p| us(p.2)),
                            unbounded: site.unbounded_fraction(*from, to),
                        }
                    })
                    .collect(),
                tso: tso_phase(*from, to),
            }
        })
        .collect();
    let violations: Vec<ViolationReport> = checker
        .violations()
        .map(|v| ViolationReport {
            site: v.site.clone(),
            at_s: v.at_s,
            by_us: v.by.as_secs_f64() * 1e6,
            interval: v.interval.clone(),
        })
        .collect();
    let readings = checker.sites.iter().map(|s| u64::try_from(s.readings.len()).unwrap_or(u64::MAX)).sum();
    let tso = TsoReport::from_record(tso, checker);
    let mut judged = expectations;
    judged.extend(
        gap_checks.iter().filter_map(|check| Some(judge_gap(check, events.get(check.event)?, gaps.get(check.event)?))),
    );
    // Stable: checks at the same time keep the order they were made in.
    judged.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    let passed = violations.is_empty()
        && tso.clean()
        && events.iter().all(|e| e.error.is_none())
        && judged.iter().all(|c| c.passed);
    Report {
        scenario: scenario.to_owned(),
        topology: topology.to_owned(),
        readings,
        violations,
        phases,
        events,
        tso,
        tso_leaders,
        checks: judged,
        passed,
    }
}

/// A `max-gap-ms` judged against the unavailability after its event
/// (`gaps`: the longest gap after it per site).
fn judge_gap(check: &GapCheck, event: &EventReport, gaps: &BTreeMap<String, Gap>) -> CheckReport {
    let text = format!("after {}: {}", event.described(), check.limit);
    let at_s = event.at_s;
    if let Some(error) = &event.error {
        return CheckReport {
            at_s,
            check: text,
            passed: false,
            detail: format!("not judged: the event failed ({error})"),
        };
    }
    let max_s = check.limit.max.as_secs_f64();
    let covered: Vec<(&String, &Gap)> =
        gaps.iter().filter(|(site, _)| check.limit.covers(site, check.site.as_deref())).collect();
    let over: Vec<String> =
        covered.iter().filter(|(_, gap)| gap.length_s > max_s).map(|(site, _)| (*site).clone()).collect();
    let all: Vec<String> = covered
        .iter()
        .map(|(site, gap)| format!("{site} {:.0} ms from {:+.3} s", gap.length_s * 1e3, gap.from_s))
        .collect();
    let check = text;
    let (passed, detail) = match (covered.is_empty(), over.is_empty()) {
        (true, _) => (false, "no site to judge".to_owned()),
        (false, true) => (true, format!("longest gaps: {}", all.join(", "))),
        (false, false) => (false, format!("over the limit at {}; longest gaps: {}", over.join(", "), all.join(", "))),
    };
    CheckReport { at_s, check, passed, detail }
}

impl EventReport {
    /// The event, with the site `"leader"` resolved to.
    pub fn described(&self) -> String {
        match &self.site {
            Some(site) => format!("{} ({site})", self.event),
            None => self.event.clone(),
        }
    }
}

/// `seconds` with two decimals and a unit, or `-`.
fn secs(s: Option<f64>) -> String {
    s.map_or_else(|| "-".to_owned(), |s| format!("{s:.2} s"))
}

/// `value` with `decimals` decimals, or `-`.
fn number(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

impl Report {
    /// Bound violations, TSO violations and event errors, in words (for
    /// the exit message).
    pub fn failures(&self) -> String {
        let errors = self.events.iter().filter(|e| e.error.is_some()).count();
        let tso = self.tso.duplicates + self.tso.regressions + self.tso.went_backwards + self.tso.dishonest;
        let checks = self.checks.iter().filter(|c| !c.passed).count();
        format!(
            "{} interval(s) excluded true time, {tso} TSO violation(s), {errors} event(s) could not be applied, \
             {checks} check(s) failed",
            self.violations.len()
        )
    }

    /// The report for people: verdict, violations, events, then per phase
    /// the half-widths and the TSO figures.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        let _ = writeln!(
            out,
            "scenario {} on {}: {verdict}, {} violation(s) in {} readings",
            self.scenario,
            self.topology,
            self.violations.len(),
            self.readings
        );
        for v in &self.violations {
            let _ = writeln!(out, "  VIOLATION {} at {:+.2} s by {:.1} µs: {}", v.site, v.at_s, v.by_us, v.interval);
        }
        let _ = writeln!(out, "{}", self.tso.summary());
        if !self.tso.errors_by_kind.is_empty() {
            let kinds: Vec<String> = self.tso.errors_by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
            let _ = writeln!(out, "  TSO errors by kind: {}", kinds.join(", "));
        }
        if let Some(farthest) = &self.tso.max_deviation {
            let _ = writeln!(out, "  TSO farthest from true time: {farthest}");
        }
        for example in &self.tso.examples {
            let _ = writeln!(out, "  TSO VIOLATION {example}");
        }
        let leaders: Vec<String> = self
            .tso_leaders
            .iter()
            .map(|l| match (&l.site, l.term, &l.why) {
                (Some(site), Some(term), Some(why)) => {
                    format!("{:+.2} s {site} (term {term}: {why})", l.at_ms as f64 / 1e3)
                }
                (Some(site), Some(term), None) => format!("{:+.2} s {site} (term {term})", l.at_ms as f64 / 1e3),
                _ => format!("{:+.2} s none", l.at_ms as f64 / 1e3),
            })
            .collect();
        if !leaders.is_empty() {
            let _ = writeln!(out, "  TSO leaders: {}", leaders.join(", "));
        }
        for e in &self.events {
            let _ = writeln!(
                out,
                "  {}  detected after {}, recovered after {}",
                e.described(),
                secs(e.detected_after_s),
                secs(e.recovered_after_s)
            );
            if let Some(error) = &e.error {
                let _ = writeln!(out, "    ERROR {error}");
            }
            let gaps: Vec<String> =
                e.tso_unavailable_s.iter().map(|(site, gap)| format!("{site} {gap:.2} s")).collect();
            if !gaps.is_empty() {
                let _ = writeln!(out, "    TSO unavailable after it: {}", gaps.join(", "));
            }
            let widening: Vec<String> = e.widening.iter().map(Widening::describe).collect();
            if !widening.is_empty() {
                let _ = writeln!(
                    out,
                    "    half-width µs, widest before → widest from {LEAD_S} s before: {}",
                    widening.join("; ")
                );
            }
        }
        for c in &self.checks {
            let verdict = if c.passed { "passed" } else { "FAILED" };
            let _ = writeln!(out, "  CHECK {verdict} at {:+.2} s: {}: {}", c.at_s, c.check, c.detail);
        }
        for phase in &self.phases {
            let _ = writeln!(out, "phase {:.0}–{:.0} s after {}", phase.from_s, phase.to_s, phase.after);
            let _ =
                writeln!(out, "  {:<12} {:>10} {:>10} {:>10} {:>9}", "site", "p50 µs", "p99 µs", "max µs", "no bound");
            for s in &phase.sites {
                let _ = writeln!(
                    out,
                    "  {:<12} {:>10} {:>10} {:>10} {:>8.1}%",
                    s.site,
                    number(s.p50_us, 1),
                    number(s.p99_us, 1),
                    number(s.max_us, 1),
                    s.unbounded * 100.0
                );
            }
            let _ = writeln!(
                out,
                "  {:<12} {:>10} {:>10} {:>10} {:>10} {:>11}",
                "TSO at", "stamps", "errors", "p50 ms", "p99 ms", "longest gap"
            );
            for s in &phase.tso {
                let _ = writeln!(
                    out,
                    "  {:<12} {:>10} {:>10} {:>10} {:>10} {:>11}",
                    s.site,
                    s.timestamps,
                    s.errors,
                    number(s.p50_latency_ms, 2),
                    number(s.p99_latency_ms, 2),
                    format!("{:.2} s", s.longest_gap_s)
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tsod_proto::HybridTimestamp;

    use super::*;
    use crate::spec::scenario::GapSites;
    use crate::tso::check::Success;

    /// Successes at `site` every `every_ms` from `from_ms` to `to_ms` (timeline ms).
    fn calls(site: usize, from_ms: u64, to_ms: u64, every_ms: u64) -> Vec<Success> {
        (from_ms..to_ms)
            .step_by(usize::try_from(every_ms).unwrap())
            .map(|ms| {
                let ns = 1_800_000_000_000_000_000 + ms * 1_000_000;
                Success {
                    site,
                    sent_ns: ns,
                    received_ns: ns,
                    at_s: ms as f64 / 1e3,
                    latency: Duration::ZERO,
                    timestamp: HybridTimestamp::from_parts(ns / 1_000 + u64::try_from(site).unwrap(), 0).unwrap(),
                }
            })
            .collect()
    }

    fn event(at_s: f64, event: &str) -> EventReport {
        EventReport {
            at_s,
            event: event.to_owned(),
            site: None,
            error: None,
            detected_after_s: None,
            recovered_after_s: None,
            tso_unavailable_s: BTreeMap::new(),
            widening: Vec::new(),
        }
    }

    #[test]
    fn gap_checks_judge_the_sites_they_cover() {
        // a: every 10 ms, but nothing from 4.99 s to 5.3 s; b: every 100 ms;
        // c (the event's site): nothing after 4 s.
        let mut successes = calls(0, 0, 5_000, 10);
        successes.extend(calls(0, 5_300, 10_000, 10));
        successes.extend(calls(1, 0, 10_000, 100));
        successes.extend(calls(2, 0, 4_000, 10));
        let tso = TsoRecord { names: ["a", "b", "c"].map(str::to_owned).to_vec(), successes, failures: Vec::new() };
        let checker = Checker::new(["a", "b", "c"].map(|n| (n.to_owned(), std::path::PathBuf::from("/nonexistent"))));
        let limit = |ms, sites| GapLimit { max: Duration::from_millis(ms), sites };
        let others = |event, ms| GapCheck { event, limit: limit(ms, GapSites::Others), site: Some("c".to_owned()) };
        let expected = CheckReport {
            at_s: 1.0,
            check: "expect-leader a".to_owned(),
            passed: true,
            detail: "met after 0.25 s (term 2)".to_owned(),
        };
        let observed = Observed {
            leaders: vec![
                LeaderChange { at_ms: -5_000, site: Some("a".to_owned()), term: Some(2), why: Some("best".to_owned()) },
                LeaderChange { at_ms: 2_250, site: None, term: None, why: None },
                LeaderChange { at_ms: 4_000, site: Some("b".to_owned()), term: Some(3), why: None },
            ],
            events: vec![event(2.0, "t+2.000 s: pause c"), event(4.5, "t+4.500 s: resume c")],
            expectations: vec![expected.clone()],
            gaps: vec![
                others(0, 150),
                others(1, 150),
                GapCheck { event: 1, limit: limit(150, GapSites::All), site: Some("c".to_owned()) },
            ],
        };
        let report = build("s", "t", &checker, &tso, observed, 10.0);
        // The expectation began no phase: start, and the two events.
        assert_eq!(report.phases.len(), 3);
        let verdicts: Vec<(f64, bool)> = report.checks.iter().map(|c| (c.at_s, c.passed)).collect();
        assert_eq!(verdicts, [(1.0, true), (2.0, true), (4.5, false), (4.5, false)]);
        assert_eq!(report.checks[0], expected);
        assert_eq!(report.checks[1].check, "after t+2.000 s: pause c: longest TSO gap at every other site ≤ 150 ms");
        // Each site's longest gap, and where it began (a's and b's steady
        // gaps are all alike, but for rounding).
        let detail = &report.checks[1].detail;
        assert!(detail.starts_with("longest gaps: a 10 ms from +") && detail.contains(", b 100 ms from +"), "{detail}");
        assert!(!detail.contains(" c "), "{detail}");
        let detail = &report.checks[2].detail;
        assert!(detail.starts_with("over the limit at a; longest gaps: a 310 ms from +4.990 s, b 100 ms"), "{detail}");
        let detail = &report.checks[3].detail;
        assert!(detail.starts_with("over the limit at a, c; longest gaps: a 310 ms from +4.990 s"), "{detail}");
        assert!(detail.ends_with(", c 5500 ms from +4.500 s"), "{detail}");
        assert!(!report.passed);
        assert!(
            report.failures().ends_with("0 event(s) could not be applied, 2 check(s) failed"),
            "{}",
            report.failures()
        );
        let text = report.to_text();
        assert!(text.contains("  TSO leaders: -5.00 s a (term 2: best), +2.25 s none, +4.00 s b (term 3)\n"), "{text}");
        assert!(text.contains("  CHECK passed at +1.00 s: expect-leader a: met after 0.25 s (term 2)\n"), "{text}");
        assert!(text.contains("  CHECK FAILED at +4.50 s: after t+4.500 s: resume c: longest TSO gap"), "{text}");
        // An event that could not be applied fails its check.
        let mut failed = event(3.0, "t+3.000 s: kill leader");
        failed.error = Some("no site leads the TSO".to_owned());
        let observed = Observed { events: vec![failed], gaps: vec![others(0, 1_000)], ..Observed::default() };
        let report = build("s", "t", &checker, &tso, observed, 10.0);
        assert_eq!(report.checks[0].detail, "not judged: the event failed (no site leads the TSO)");
        assert!(!report.checks[0].passed && !report.passed);
    }
}
