//! Runs a [`Scenario`] on a live [`Cluster`]: a warm-up, then the events at
//! their times, while the [`Checker`] reads every site's bound every 50 ms,
//! a [`TsoLoad`] asks every site for TSO timestamps (from the start of the
//! warm-up), and the sites' status files are polled every 250 ms. The
//! result is a [`Report`] (see [`report`]): violations (must be none),
//! half-width percentiles and TSO figures per site and phase (the spans
//! between events), the TSO checks (duplicates, real-time order, honesty;
//! must find nothing), and for each event how long until the cluster's
//! view changed (detection), until every running site was synchronized
//! with no falseticker again (recovery), and the longest span each site's
//! TSO clients went without a timestamp.
//!
//! The scenario's checks are judged here too: an `expect-leader` at every
//! status poll of its window (and when it fires) with [`leadership`], a
//! `max-gap-ms` from the TSO record at the end ([`report`]). Either one
//! failing fails the scenario.
//!
//! The cluster's clock starts at a whole second of the host's realtime
//! (its origin, the timeline's t = −warm-up): every site's scripted clock
//! steps and slews count from it, and a scenario's `leap` (whole seconds
//! of `at-s` and `warmup-s`) ends the day at exactly `origin + warm-up +
//! at-s`, true time being shifted for it ([`crate::truth`]). A `clock-slew`
//! slews the site's simulated realtime (from its configuration) and has
//! its gpsd emulate the slew in PPS reports for as long, each edge's lines
//! sent [`PPS_LATENCY_WHILE_SLEWING`] after it.
//!
//! An event on `site = "leader"` is resolved when it fires
//! ([`crate::tso::status::leader_of`] over the status files of the sites
//! that run, are not paused and not partitioned); the `restart`, `resume`
//! or `heal` of `"leader"` acts on the site its `kill`, `pause` or
//! `partition` hit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use tsod_proto::{ClockStatus, Timestamp};

use crate::checker::{Checker, Reading};
use crate::cluster::{ClockChange, Cluster, ClusterError, ClusterPlan};
use crate::plot::Series;
use crate::sim::gpsd::{GpsFault, RealtimeSlew};
use crate::sim::host_realtime;
use crate::sim::ntp::NtpFault;
use crate::spec::scenario::Action;
use crate::spec::scenario::Event;
use crate::spec::{LEADER, Scenario};
use crate::status_file;
use crate::truth::{Leap, TrueTime, leap_boundary_after};
use crate::tso::load::{LoadOptions, TsoLoad, TsoTarget};
use crate::tso::status::{self, SiteView, agreed_leader, leader_of};

pub mod report;

pub use report::{
    CheckReport, EventReport, GapCheck, LeaderChange, Observed, PhaseReport, Report, SitePhase, TsoReport,
    ViolationReport,
};

/// How often every site's bound is read.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// How often the status files are polled.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// How long after each PPS edge a slewing site's gpsd sends its lines
/// (about what a loaded host takes), so that the slew shows in the gap.
pub const PPS_LATENCY_WHILE_SLEWING: Duration = Duration::from_millis(2);
/// How far ahead of now the cluster's origin is set: about the time the
/// cluster takes to start (certificates, simulators, relays).
const START_MARGIN: Duration = Duration::from_secs(1);

/// What a status poll looks at: a change in it is a detection.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Gist {
    status: ClockStatus,
    falsetickers: BTreeSet<String>,
    peers_up: usize,
}

fn gist(path: &Path) -> Option<Gist> {
    let snapshot = status_file::read(path)?;
    let falsetickers = snapshot.sources.iter().filter(|s| s.falseticker).map(|s| s.name.clone()).collect();
    let peers_up = snapshot.peers.iter().filter(|p| p.connected).count();
    Some(Gist { status: snapshot.status, falsetickers, peers_up })
}

fn healthy(gists: &[Option<Gist>], up: &[bool]) -> bool {
    gists
        .iter()
        .zip(up)
        .filter(|(_, up)| **up)
        .all(|(g, _)| g.as_ref().is_some_and(|g| g.status == ClockStatus::Synchronized && g.falsetickers.is_empty()))
}

/// What the live view gets about once a second.
#[derive(Debug)]
pub struct Progress<'a> {
    /// The truth checker.
    pub checker: &'a Checker,
    /// The TSO load (its totals so far).
    pub tso: &'a TsoLoad,
    /// Seconds into the timeline (negative: warm-up).
    pub at: f64,
    /// The events applied so far, as text.
    pub applied: &'a [String],
}

/// The TSO load for `cluster`'s sites, its times counted from `zero`, and
/// the failover clients of the region of `failover_home`, if given
/// (recorded last, as `clients@<home>`).
pub fn tso_load(cluster: &Cluster, zero: Instant, failover_home: Option<&str>) -> Result<TsoLoad, ClusterError> {
    let mut targets: Vec<TsoTarget> = cluster.sites().iter().map(|s| TsoTarget::site(&s.plan.name, s.addr)).collect();
    if let Some(home) = failover_home {
        let index = cluster.index_of(home).ok_or_else(|| ClusterError::Plan(format!("no site {home}")))?;
        targets.push(TsoTarget { name: format!("clients@{home}"), sites: cluster.client_sites(index) });
    }
    TsoLoad::start(&targets, &cluster.ca_path(), zero, LoadOptions { time: cluster.time(), ..LoadOptions::default() })
        .map_err(|source| ClusterError::Io { what: "starting the TSO load's runtime".to_owned(), source })
}

/// The site that leads the TSO now, by the status files of the sites that
/// run, are not paused and are not partitioned.
pub fn current_leader(cluster: &mut Cluster) -> Option<usize> {
    let sites: Vec<_> = cluster
        .sites_mut()
        .iter_mut()
        .map(|s| (s.is_up() && !s.is_paused() && !s.is_partitioned(), status::read(&s.status)))
        .collect();
    leader_of(&sites)
}

/// Whether `expected` leads by the status files ([`agreed_leader`] over
/// every site: down, paused or partitioned, or what its file says if it
/// was written since the site last started, resumed or was healed).
pub fn leadership(cluster: &mut Cluster, expected: &str) -> Result<u64, String> {
    let sites: Vec<SiteView> = cluster
        .sites_mut()
        .iter_mut()
        .map(|site| {
            let absent = if !site.is_up() {
                Some("down")
            } else if site.is_paused() {
                Some("paused")
            } else if site.is_partitioned() {
                Some("partitioned")
            } else {
                None
            };
            let fresh = absent.is_none() && site.status_is_fresh();
            let tso = if fresh { status::read(&site.status) } else { None };
            SiteView { name: site.plan.name.clone(), absent, tso }
        })
        .collect();
    agreed_leader(&sites, expected)
}

/// An `expect-leader` whose window is open.
struct Expectation {
    /// Its entry in the checks.
    check: usize,
    /// The site that should lead.
    site: String,
    /// When it fired, and when its window closes (timeline s).
    at_s: f64,
    deadline_s: f64,
}

/// Judges the open `expectations` at `at` (timeline s): each that is met,
/// or whose window has closed, gets its verdict in `checks` and a note in
/// `applied`, and is removed; the others stay open, their detail saying
/// what was seen last (which stands if the run is stopped first).
fn judge_expectations(
    expectations: &mut Vec<Expectation>,
    checks: &mut [CheckReport],
    cluster: &mut Cluster,
    at: f64,
    applied: &mut Vec<String>,
) {
    expectations.retain(|e| {
        let Some(check) = checks.get_mut(e.check) else { return false };
        match leadership(cluster, &e.site) {
            Ok(term) => {
                check.passed = true;
                check.detail = format!("met after {:.2} s (term {term})", at - e.at_s);
                applied.push(format!("t+{at:.3} s: {} met (term {term})", check.check));
                false
            }
            Err(seen) if at >= e.deadline_s => {
                check.detail = format!("not met by {at:+.2} s: {seen}");
                applied.push(format!("t+{at:.3} s: {} FAILED: {seen}", check.check));
                false
            }
            Err(seen) => {
                check.detail = format!("not met by {at:+.2} s (the run was stopped first): {seen}");
                true
            }
        }
    });
}

/// Runs `scenario` with the `tsod` binary at `tsod`, scratch files under
/// `work`. `on_second` is called about once a second with the cluster and
/// the [`Progress`] so far (for a live view).
pub fn run(
    scenario: &Scenario,
    tsod: &Path,
    work: &Path,
    stop: &dyn Fn() -> bool,
    mut on_second: impl FnMut(&mut Cluster, &Progress<'_>),
) -> Result<(Report, Vec<Series>), ClusterError> {
    let warmup = scenario.warmup();
    let plan = plan(scenario, host_realtime());
    let zero_host = Timestamp::from_nanos(plan.origin.as_nanos().saturating_add(nanos(warmup)));
    let mut cluster = Cluster::start(&plan, tsod, work)?;
    let names: Vec<String> = plan.sites.iter().map(|s| s.name.clone()).collect();
    let mut checker = Checker::new(cluster.sites().iter().map(|s| (s.plan.name.clone(), s.segment.clone())))
        .with_time(cluster.time());
    let mut faults = Faults {
        gps: vec![GpsFault::default(); names.len()],
        ntp: vec![NtpFault::default(); names.len()],
        leader_hits: BTreeMap::new(),
        zero_host,
    };
    // The timeline's clock starts at the origin: wait for it, or count
    // from it if starting the cluster took longer.
    let now = host_realtime();
    std::thread::sleep(Duration::from_nanos(plan.origin.as_nanos().saturating_sub(now.as_nanos())));
    let late = Duration::from_nanos(host_realtime().as_nanos().saturating_sub(plan.origin.as_nanos()));
    let started = Instant::now().checked_sub(late).unwrap_or_else(Instant::now);
    let tso = tso_load(&cluster, started + warmup, scenario.failover_home())?;
    let t = |now: Instant| now.duration_since(started).as_secs_f64() - warmup.as_secs_f64();
    let end = scenario.duration().as_secs_f64();
    let mut pending = scenario.events().iter().peekable();
    let mut applied: Vec<String> = Vec::new();
    let mut events: Vec<EventReport> = Vec::new();
    // Per event: the gist just before it, for detection.
    let mut baselines: Vec<Vec<Option<Gist>>> = Vec::new();
    let mut gists: Vec<Option<Gist>> = vec![None; names.len()];
    let mut status_changes: Vec<Vec<(f64, String)>> = vec![Vec::new(); names.len()];
    let mut leaders: Vec<LeaderChange> = Vec::new();
    let mut checks: Vec<CheckReport> = Vec::new();
    let mut expectations: Vec<Expectation> = Vec::new();
    // Per event (index into `events`) with a `max-gap-ms`: the limit and
    // the site the event acted on.
    let mut gap_checks: Vec<GapCheck> = Vec::new();
    let (mut next_poll, mut next_second) = (started, started);
    loop {
        let now = Instant::now();
        let at = t(now);
        if at >= end || stop() {
            break;
        }
        let mut fresh_expectation = false;
        while let Some(event) = pending.next_if(|e| e.at().as_secs_f64() <= at) {
            if let Action::ExpectLeader { site, within } = event.action() {
                let at_s = event.at().as_secs_f64();
                checks.push(CheckReport {
                    at_s,
                    check: event.action().to_string(),
                    passed: false,
                    detail: "not judged: the run ended first".to_owned(),
                });
                expectations.push(Expectation {
                    check: checks.len() - 1,
                    site: site.clone(),
                    at_s,
                    deadline_s: at_s + within.as_secs_f64(),
                });
                applied.push(event.to_string());
                fresh_expectation = true;
                continue;
            }
            baselines.push(gists.clone());
            let outcome = faults.apply(&mut cluster, &names, event)?;
            let mut report = EventReport {
                at_s: event.at().as_secs_f64(),
                event: event.to_string(),
                site: None,
                error: None,
                detected_after_s: None,
                recovered_after_s: None,
                tso_unavailable_s: BTreeMap::new(),
                widening: Vec::new(),
            };
            let acted_on = match outcome {
                Ok(site) => {
                    report.site = site;
                    report.site.clone().or_else(|| event.action().site().map(str::to_owned))
                }
                Err(error) => {
                    report.error = Some(error);
                    None
                }
            };
            if let Some(limit) = event.gap_limit() {
                gap_checks.push(GapCheck { event: events.len(), limit: limit.clone(), site: acted_on });
            }
            applied.push(match &report.error {
                Some(error) => format!("{} FAILED: {error}", report.described()),
                None => report.described(),
            });
            events.push(report);
        }
        checker.sample(at);
        if fresh_expectation || (now >= next_poll && !expectations.is_empty()) {
            judge_expectations(&mut expectations, &mut checks, &mut cluster, at, &mut applied);
        }
        if now >= next_poll {
            next_poll += POLL_EVERY;
            let up: Vec<bool> = cluster.sites_mut().iter_mut().map(|s| s.is_up()).collect();
            let fresh: Vec<Option<Gist>> = cluster.sites().iter().map(|s| gist(&s.status)).collect();
            for (i, (old, new)) in gists.iter().zip(&fresh).enumerate() {
                let (old, new) = (old.as_ref().map(|g| &g.status), new.as_ref().map(|g| &g.status));
                if let (Some(new), true) = (new, old != new) {
                    if let Some(changes) = status_changes.get_mut(i) {
                        changes.push((at, new.name().to_owned()));
                    }
                }
            }
            gists = fresh;
            let leader = current_leader(&mut cluster).and_then(|i| cluster.sites().get(i));
            let role = leader.and_then(|s| status::read(&s.status));
            let term = role.as_ref().map(|r| r.term);
            let site = leader.map(|s| s.plan.name.clone());
            if leaders.last().is_none_or(|l| (&l.site, l.term) != (&site, term)) {
                let why = role.and_then(|r| r.why_leading);
                #[expect(clippy::cast_possible_truncation, reason = "a timeline is at most an hour long")]
                leaders.push(LeaderChange { at_ms: (at * 1e3).round() as i64, site, term, why });
            }
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
            on_second(&mut cluster, &Progress { checker: &checker, tso: &tso, at, applied: &applied });
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    // A window that closes with the timeline gets a last look.
    let at = t(Instant::now());
    for e in &mut expectations {
        e.deadline_s = e.deadline_s.min(at);
    }
    judge_expectations(&mut expectations, &mut checks, &mut cluster, at, &mut applied);
    // The load stops before the cluster does: no error from the teardown.
    let tso = tso.finish();
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
    let report = report::build(
        scenario.name(),
        scenario.topology().name(),
        &checker,
        &tso,
        Observed { leaders, events, expectations: checks, gaps: gap_checks },
        end,
    );
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

/// The cluster to start for `scenario`, `host_now` being the host's
/// realtime: its origin the whole second after `host_now` plus
/// [`START_MARGIN`], each site's clock steps and slews from its events,
/// and true time shifted for its leap second, if any, so that the day ends
/// at the leap's `at-s` (on the first 30 June or 31 December at least a
/// month after `host_now`).
pub fn plan(scenario: &Scenario, host_now: Timestamp) -> ClusterPlan {
    let second = 1_000_000_000;
    let origin = (host_now.as_nanos().saturating_add(nanos(START_MARGIN)) / second).saturating_add(1) * second;
    let warmup = scenario.warmup();
    let mut plan = ClusterPlan::from_topology(scenario.topology());
    plan.origin = Timestamp::from_nanos(origin);
    plan.time = match scenario.leap() {
        None => TrueTime::default(),
        Some((at, kind, announced)) => {
            let day_ends = Timestamp::from_nanos(origin.saturating_add(nanos(warmup.saturating_add(at))));
            TrueTime::for_leap(Leap { boundary_s: leap_boundary_after(host_now), kind, announced }, day_ends)
        }
    };
    for site in &mut plan.sites {
        site.clock_changes = scenario
            .clock_changes(&site.name)
            .into_iter()
            .map(|(at, by, over)| ClockChange { after: at.saturating_add(warmup), by, over })
            .collect();
    }
    plan
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The faults the timeline has set, and which site each `"leader"` event hit.
struct Faults {
    gps: Vec<GpsFault>,
    ntp: Vec<NtpFault>,
    /// `kill`, `pause` or `partition` of `"leader"` → the site it hit, for
    /// the `restart`, `resume` or `heal` of `"leader"` that follows.
    leader_hits: BTreeMap<&'static str, usize>,
    /// The host realtime of the timeline's t = 0.
    zero_host: Timestamp,
}

impl Faults {
    /// Applies `action`. `Err` stops the run (the cluster failed);
    /// `Ok(Err(why))` is an event that could not be applied (it did
    /// nothing); `Ok(Ok(site))` names the site `"leader"` resolved to.
    fn apply(
        &mut self,
        cluster: &mut Cluster,
        names: &[String],
        event: &Event,
    ) -> Result<Result<Option<String>, String>, ClusterError> {
        let action = event.action();
        let (action, resolved) = match self.resolve_leader(cluster, names, action) {
            Ok(Some((action, site))) => (action, Some(site)),
            Ok(None) => (action.clone(), None),
            Err(why) => return Ok(Err(why)),
        };
        let index = |site: &str| names.iter().position(|n| n == site);
        let signal_error = |e: ClusterError| e.to_string();
        match &action {
            Action::Kill { site } => {
                if let Some(i) = index(site) {
                    cluster.kill(i);
                }
            }
            Action::Restart { site } => {
                if let Some(i) = index(site) {
                    cluster.restart(i)?;
                }
            }
            Action::Pause { site } => {
                if let Some(i) = index(site) {
                    if let Err(e) = cluster.pause(i) {
                        return Ok(Err(signal_error(e)));
                    }
                }
            }
            Action::Resume { site } => {
                if let Some(i) = index(site) {
                    if let Err(e) = cluster.resume(i) {
                        return Ok(Err(signal_error(e)));
                    }
                }
            }
            Action::GpsOffset { site, offset } => set_gps(cluster, index(site), &mut self.gps, |f| f.offset = *offset),
            Action::GpsDrift { site, drift } => set_gps(cluster, index(site), &mut self.gps, |f| f.drift = *drift),
            Action::GpsOutage { site } => set_gps(cluster, index(site), &mut self.gps, |f| f.outage = true),
            Action::GpsRestore { site } => {
                set_gps(cluster, index(site), &mut self.gps, |f| *f = GpsFault::default());
            }
            Action::NtpOffset { site, offset, claimed_error } => set_ntp(cluster, index(site), &mut self.ntp, |f| {
                f.offset = *offset;
                f.claimed_root_dispersion = *claimed_error;
            }),
            Action::NtpOutage { site } => set_ntp(cluster, index(site), &mut self.ntp, |f| f.outage = true),
            Action::NtpRestore { site } => {
                set_ntp(cluster, index(site), &mut self.ntp, |f| *f = NtpFault::default());
            }
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
            // The daemon slews its clock from its configuration; its gpsd
            // reports the edges as the slewing realtime would stamp them.
            Action::ClockSlew { site, rate, duration } => {
                if let Some(i) = index(site) {
                    let ends = event.at().saturating_add(*duration);
                    let until = Timestamp::from_nanos(self.zero_host.as_nanos().saturating_add(nanos(ends)));
                    let slew = RealtimeSlew { rate: *rate, until, latency: PPS_LATENCY_WHILE_SLEWING };
                    cluster.realtime_slew(i, Some(slew));
                }
            }
            // In the cluster's time from the start (sources, lists, kernels).
            Action::Leap { .. } => {}
            // A check: judged by the run loop, not applied.
            Action::ExpectLeader { .. } => {}
        }
        Ok(Ok(resolved))
    }

    /// For an action on `"leader"`: the same action on the site it means
    /// now, and that site's name; `None` for other actions.
    fn resolve_leader(
        &mut self,
        cluster: &mut Cluster,
        names: &[String],
        action: &Action,
    ) -> Result<Option<(Action, String)>, String> {
        if action.site() != Some(LEADER) {
            return Ok(None);
        }
        let (hit, follows) = match action {
            Action::Kill { .. } => ("kill", None),
            Action::Pause { .. } => ("pause", None),
            Action::Partition { .. } => ("partition", None),
            Action::Restart { .. } => ("kill", Some("restart")),
            Action::Resume { .. } => ("pause", Some("resume")),
            Action::Heal { .. } => ("partition", Some("heal")),
            _ => return Err(format!("{} cannot name site = {LEADER:?}", action.name())),
        };
        let index = match follows {
            None => {
                let index = current_leader(cluster).ok_or_else(|| {
                    "no site leads the TSO (no status file of a running, unpaused, connected site says role = \
                     leader)"
                        .to_owned()
                })?;
                self.leader_hits.insert(hit, index);
                index
            }
            Some(verb) => self
                .leader_hits
                .remove(hit)
                .ok_or_else(|| format!("nothing to {verb}: the {hit} of {LEADER:?} before it found no leader"))?,
        };
        let name = names.get(index).cloned().ok_or_else(|| format!("no site #{index}"))?;
        Ok(Some((action.on_site(&name), name)))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::truth::LeapKind;

    #[test]
    fn the_plan_puts_the_leap_at_its_event_and_the_clock_changes_after_the_warmup() {
        let text = "name = \"t\"\nduration-s = 60\nwarmup-s = 20\n\n[[event]]\nat-s = 30\naction = \"leap\"\n\
                    kind = \"delete\"\n\n[[event]]\nat-s = 5\naction = \"clock-slew\"\nsite = \"xa\"\n\
                    rate-ppm = -50000\nduration-s = 10\n";
        let scenario = Scenario::parse(text, "t.toml").unwrap();
        // 2026-12-05T07:57:08.25Z: the origin is the whole second after 1 s more.
        let host_now = Timestamp::from_nanos(1_796_457_428_250_000_000);
        let plan = plan(&scenario, host_now);
        assert_eq!(plan.origin, Timestamp::from_nanos(1_796_457_430_000_000_000));
        let leap = plan.time.leap().unwrap();
        // 2027-07-01T00:00:00Z, deleted, announced.
        assert_eq!((leap.boundary_s, leap.kind, leap.announced), (1_814_400_000, LeapKind::Delete, true));
        assert_eq!(plan.time.day_ends(), Some(Timestamp::from_nanos(1_796_457_480_000_000_000)));
        let xa = plan.sites.iter().find(|s| s.name == "xa").unwrap();
        assert_eq!(
            xa.clock_changes,
            [ClockChange {
                after: Duration::from_secs(25),
                by: tsod_proto::Offset::from_nanos(-500_000_000),
                over: Duration::from_secs(10)
            }]
        );
        assert!(plan.sites.iter().filter(|s| s.name != "xa").all(|s| s.clock_changes.is_empty()));
        // Without a leap: the host's own time.
        let quiet = Scenario::parse("name = \"q\"\nduration-s = 60\n", "q.toml").unwrap();
        assert_eq!(super::plan(&quiet, host_now).time, TrueTime::default());
    }
}
