//! Runs a [`Scenario`] on a live [`Cluster`]: a warm-up, then the events at
//! their times, while the [`Checker`] reads every site's bound every 50 ms
//! and the sites' status files are polled every 250 ms. The result is a
//! [`Report`]: violations (must be none), half-width percentiles per site
//! and phase (the spans between events), and for each event how long until
//! the cluster's view changed (detection) and until every running site was
//! synchronized with no falseticker again (recovery).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::checker::{Checker, Reading};
use crate::cluster::{Cluster, ClusterError, ClusterPlan};
use crate::plot::Series;
use crate::scenario::{Action, Scenario};
use crate::sim::gpsd::GpsFault;
use crate::sim::ntp::NtpFault;

/// How often every site's bound is read.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// How often the status files are polled.
const POLL_EVERY: Duration = Duration::from_millis(250);

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
    /// Half-widths per phase and site.
    pub phases: Vec<PhaseReport>,
    /// Per event: detection and recovery.
    pub events: Vec<EventReport>,
    /// No violation.
    pub passed: bool,
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
    /// Per site.
    pub sites: Vec<SitePhase>,
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
    /// Until some site's status, falsetickers or peer links changed, s.
    pub detected_after_s: Option<f64>,
    /// Until every running site was synchronized with no falseticker again,
    /// after the event was detected, s (within the phase the event began).
    pub recovered_after_s: Option<f64>,
}

/// What a status poll looks at: a change in it is a detection.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Gist {
    status: String,
    falsetickers: BTreeSet<String>,
    peers_up: usize,
}

fn gist(path: &Path) -> Option<Gist> {
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let status = json.get("status")?.as_str()?.to_owned();
    let falsetickers = json
        .get("sources")?
        .as_array()?
        .iter()
        .filter(|s| s.get("falseticker").and_then(serde_json::Value::as_bool) == Some(true))
        .filter_map(|s| s.get("name").and_then(serde_json::Value::as_str).map(str::to_owned))
        .collect();
    let peers_up = json.get("peers").and_then(serde_json::Value::as_array).map_or(0, |p| {
        p.iter().filter(|p| p.get("connected").and_then(serde_json::Value::as_bool) == Some(true)).count()
    });
    Some(Gist { status, falsetickers, peers_up })
}

fn healthy(gists: &[Option<Gist>], up: &[bool]) -> bool {
    gists
        .iter()
        .zip(up)
        .filter(|(_, up)| **up)
        .all(|(g, _)| g.as_ref().is_some_and(|g| g.status == "synchronized" && g.falsetickers.is_empty()))
}

/// Runs `scenario` with the `tsod` binary at `tsod`, scratch files under
/// `work`. `on_second` is called about once a second with the cluster, the
/// checker, the timeline time and the events applied so far (for a live view).
pub fn run(
    scenario: &Scenario,
    tsod: &Path,
    work: &Path,
    stop: &dyn Fn() -> bool,
    mut on_second: impl FnMut(&mut Cluster, &Checker, f64, &[String]),
) -> Result<(Report, Vec<Series>), ClusterError> {
    let warmup = scenario.warmup();
    let plan = ClusterPlan::from_topology(scenario.topology(), |site| {
        scenario.clock_steps(site).into_iter().map(|(at, by)| (at.saturating_add(warmup), by)).collect()
    });
    let mut cluster = Cluster::start(&plan, tsod, work)?;
    let names: Vec<String> = plan.sites.iter().map(|s| s.name.clone()).collect();
    let mut checker = Checker::new(cluster.sites().iter().map(|s| (s.plan.name.clone(), s.segment.clone())));
    let mut gps: Vec<GpsFault> = vec![GpsFault::default(); names.len()];
    let mut ntp: Vec<NtpFault> = vec![NtpFault::default(); names.len()];
    let started = Instant::now();
    let t = |now: Instant| now.duration_since(started).as_secs_f64() - warmup.as_secs_f64();
    let end = scenario.duration().as_secs_f64();
    let mut pending = scenario.events().iter().peekable();
    let mut applied: Vec<String> = Vec::new();
    let mut events: Vec<EventReport> = Vec::new();
    // Per event: the gist just before it, for detection.
    let mut baselines: Vec<Vec<Option<Gist>>> = Vec::new();
    let mut gists: Vec<Option<Gist>> = vec![None; names.len()];
    let mut status_changes: Vec<Vec<(f64, String)>> = vec![Vec::new(); names.len()];
    let (mut next_poll, mut next_second) = (started, started);
    loop {
        let now = Instant::now();
        let at = t(now);
        if at >= end || stop() {
            break;
        }
        while let Some(event) = pending.next_if(|e| e.at().as_secs_f64() <= at) {
            baselines.push(gists.clone());
            apply(&mut cluster, &names, event.action(), &mut gps, &mut ntp, started.elapsed(), scenario, warmup)?;
            applied.push(format!("{event}"));
            events.push(EventReport {
                at_s: event.at().as_secs_f64(),
                event: event.to_string(),
                detected_after_s: None,
                recovered_after_s: None,
            });
        }
        checker.sample(at);
        if now >= next_poll {
            next_poll += POLL_EVERY;
            let up: Vec<bool> = cluster.sites_mut().iter_mut().map(|s| s.is_up()).collect();
            let fresh: Vec<Option<Gist>> = cluster.sites().iter().map(|s| gist(&s.status)).collect();
            for (i, (old, new)) in gists.iter().zip(&fresh).enumerate() {
                let (old, new) = (old.as_ref().map(|g| &g.status), new.as_ref().map(|g| &g.status));
                if let (Some(new), true) = (new, old != new) {
                    if let Some(changes) = status_changes.get_mut(i) {
                        changes.push((at, new.clone()));
                    }
                }
            }
            gists = fresh;
            let all_healthy = healthy(&gists, &up);
            for (report, baseline) in events.iter_mut().zip(&baselines) {
                let since = at - report.at_s;
                if report.detected_after_s.is_none() && &gists != baseline {
                    report.detected_after_s = Some(since);
                }
                // Recovery is only meaningful once the fault was seen.
                if report.detected_after_s.is_some_and(|d| d < since)
                    && report.recovered_after_s.is_none()
                    && all_healthy
                {
                    report.recovered_after_s = Some(since);
                }
            }
        }
        if now >= next_second {
            next_second += Duration::from_secs(1);
            on_second(&mut cluster, &checker, at, &applied);
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    // Detection and recovery count only within the phase the event began
    // (until the next event at a later time): a change after that belongs
    // to the next event.
    let starts: Vec<f64> = events.iter().map(|e| e.at_s).collect();
    for report in &mut events {
        let phase_end = starts.iter().copied().find(|t| *t > report.at_s).unwrap_or(end);
        if report.detected_after_s.is_some_and(|d| report.at_s + d > phase_end) {
            report.detected_after_s = None;
        }
        if report.recovered_after_s.is_some_and(|r| report.at_s + r > phase_end) {
            report.recovered_after_s = None;
        }
    }
    let report = build_report(scenario, &checker, events, end);
    let series = checker
        .sites
        .iter()
        .zip(status_changes)
        .map(|(site, status_changes)| Series {
            site: site.name.clone(),
            points: site
                .readings
                .iter()
                .map(|(t, r)| {
                    let hw = match r {
                        Reading::True(w) | Reading::False(w) => Some(w.as_secs_f64() * 1e6),
                        Reading::NoBound => None,
                    };
                    (*t, hw)
                })
                .collect(),
            status_changes,
        })
        .collect();
    drop(cluster);
    Ok((report, series))
}

#[expect(clippy::too_many_arguments, reason = "one call site; the cluster's fault state lives in the loop")]
fn apply(
    cluster: &mut Cluster,
    names: &[String],
    action: &Action,
    gps: &mut [GpsFault],
    ntp: &mut [NtpFault],
    elapsed: Duration,
    scenario: &Scenario,
    warmup: Duration,
) -> Result<(), ClusterError> {
    let index = |site: &str| names.iter().position(|n| n == site);
    match action {
        Action::Kill { site } => {
            if let Some(i) = index(site) {
                cluster.kill(i);
            }
        }
        Action::Restart { site } => {
            if let Some(i) = index(site) {
                // The new daemon's scripted steps are counted from its own start.
                let steps = scenario
                    .clock_steps(site)
                    .into_iter()
                    .filter_map(|(at, by)| at.saturating_add(warmup).checked_sub(elapsed).map(|after| (after, by)))
                    .collect();
                cluster.restart(i, steps)?;
            }
        }
        Action::GpsOffset { site, offset } => set_gps(cluster, index(site), gps, |f| f.offset = *offset),
        Action::GpsDrift { site, drift } => set_gps(cluster, index(site), gps, |f| f.drift = *drift),
        Action::GpsOutage { site } => set_gps(cluster, index(site), gps, |f| f.outage = true),
        Action::GpsRestore { site } => set_gps(cluster, index(site), gps, |f| *f = GpsFault::default()),
        Action::NtpOffset { site, offset, claimed_error } => set_ntp(cluster, index(site), ntp, |f| {
            f.offset = *offset;
            f.claimed_root_dispersion = *claimed_error;
        }),
        Action::NtpOutage { site } => set_ntp(cluster, index(site), ntp, |f| f.outage = true),
        Action::NtpRestore { site } => set_ntp(cluster, index(site), ntp, |f| *f = NtpFault::default()),
        Action::Partition { site } => {
            if let Some(i) = index(site) {
                cluster.partition(i, true);
            }
        }
        Action::Heal { site } => {
            if let Some(i) = index(site) {
                cluster.partition(i, false);
            }
        }
        Action::Link(link) => {
            let (a, b) = link.between();
            if let (Some(from), Some(to), Some(shape)) = (index(a), index(b), link.shape_from(a)) {
                cluster.set_link(from, to, shape);
            }
        }
        // Applied by the daemon itself, from its configuration.
        Action::ClockStep { .. } => {}
    }
    Ok(())
}

fn set_gps(cluster: &mut Cluster, index: Option<usize>, faults: &mut [GpsFault], change: impl FnOnce(&mut GpsFault)) {
    if let Some((i, fault)) = index.and_then(|i| faults.get_mut(i).map(|f| (i, f))) {
        change(fault);
        cluster.gps_fault(i, *fault);
    }
}

fn set_ntp(cluster: &mut Cluster, index: Option<usize>, faults: &mut [NtpFault], change: impl FnOnce(&mut NtpFault)) {
    if let Some((i, fault)) = index.and_then(|i| faults.get_mut(i).map(|f| (i, f))) {
        change(fault);
        cluster.ntp_fault(i, *fault);
    }
}

fn build_report(scenario: &Scenario, checker: &Checker, events: Vec<EventReport>, end: f64) -> Report {
    let mut bounds: Vec<(f64, String)> = vec![(0.0, "start".to_owned())];
    bounds.extend(events.iter().map(|e| (e.at_s, e.event.clone())));
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
                        let us = |d: Duration| d.as_secs_f64() * 1e6;
                        SitePhase {
                            site: site.name.clone(),
                            p50_us: p.map(|p| us(p.0)),
                            p99_us: p.map(|p| us(p.1)),
                            max_us: p.map(|p| us(p.2)),
                            unbounded: site.unbounded_fraction(*from, to),
                        }
                    })
                    .collect(),
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
    Report {
        scenario: scenario.name().to_owned(),
        topology: scenario.topology().name().to_owned(),
        readings,
        passed: violations.is_empty(),
        violations,
        phases,
        events,
    }
}

impl Report {
    /// The report for people: violations, events, half-widths per phase.
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
        let secs = |s: Option<f64>| s.map_or_else(|| "-".to_owned(), |s| format!("{s:.2} s"));
        for e in &self.events {
            let _ = writeln!(
                out,
                "  {}  detected after {}, recovered after {}",
                e.event,
                secs(e.detected_after_s),
                secs(e.recovered_after_s)
            );
        }
        let us = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
        for phase in &self.phases {
            let _ = writeln!(out, "phase {:.0}–{:.0} s after {}", phase.from_s, phase.to_s, phase.after);
            let _ =
                writeln!(out, "  {:<12} {:>10} {:>10} {:>10} {:>9}", "site", "p50 µs", "p99 µs", "max µs", "no bound");
            for s in &phase.sites {
                let _ = writeln!(
                    out,
                    "  {:<12} {:>10} {:>10} {:>10} {:>8.1}%",
                    s.site,
                    us(s.p50_us),
                    us(s.p99_us),
                    us(s.max_us),
                    s.unbounded * 100.0
                );
            }
        }
        out
    }
}
