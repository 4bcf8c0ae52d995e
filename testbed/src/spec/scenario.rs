//! Scenarios: what happens to a testbed cluster, and when. A scenario names
//! a [topology](crate::spec::topology), how long to run, and a timeline of events
//! (faults and repairs) that the testbed applies while the truth checker
//! judges every site.
//!
//! ```toml
//! name = "lose-each-site"
//! description = "short: ..."
//! topology = "dr"     # a built-in topology, or a path relative to this file (default "dr")
//! duration-s = 60     # the judged timeline
//! warmup-s = 10       # time to synchronize before the timeline's t = 0, not judged (default 10)
//!
//! [[event]]
//! at-s = 10           # seconds after the timeline's start, 0 … duration-s
//! action = "kill"
//! site = "xa"
//! ```
//!
//! # Actions and their keys
//!
//! | `action`        | keys                                                      |
//! |-----------------|-----------------------------------------------------------|
//! | `kill`          | `site`                                                    |
//! | `restart`       | `site` (killed by an earlier event)                       |
//! | `pause`         | `site` (running: SIGSTOP)                                 |
//! | `resume`        | `site` (paused by an earlier event: SIGCONT)              |
//! | `gps-offset`    | `site`, `offset-ms`                                       |
//! | `gps-drift`     | `site`, `drift-ppm`                                       |
//! | `gps-outage`    | `site`                                                    |
//! | `gps-restore`   | `site` (after a `gps-*` fault)                            |
//! | `ntp-offset`    | `site`, `offset-ms`, optional `claimed-error-us`          |
//! | `ntp-outage`    | `site`                                                    |
//! | `ntp-restore`   | `site` (after an `ntp-*` fault)                           |
//! | `partition`     | `site`                                                    |
//! | `heal`          | `site` (partitioned by an earlier event)                  |
//! | `link`          | `between`, `one-way-ms` or `forward-ms` + `reverse-ms`, optional `jitter-ms`, `loss` |
//! | `clock-step`    | `site`, `by-ms`                                           |
//! | `clock-slew`    | `site`, `rate-ppm` (±83 334 at most, not 0), `duration-s` |
//! | `leap`          | `kind` (`"insert"` or `"delete"`), optional `announced` (default true) |
//! | `expect-leader` | `site`, optional `within-s` (a check, see below)          |
//!
//! `kill`, `restart`, `pause`, `resume`, `partition` and `heal` may name
//! `site = "leader"` ([`LEADER`]): when a `kill`, `pause` or `partition`
//! of the leader fires, the testbed resolves it to the site whose status
//! file says it leads the TSO (running and not paused, the highest term if
//! several claim it); the `restart`, `resume` or `heal` of `"leader"` that
//! follows acts on that same site. If no site leads at that moment the
//! event does nothing and the report shows an error for it (and the
//! scenario fails). For the order checks below `"leader"` is a site of its
//! own: `kill` of `"leader"` then `restart` of `"leader"`, not of a named site.
//!
//! # Leap seconds
//!
//! A `leap` ends the UTC day at its `at-s`: the testbed shifts the whole
//! cluster's time by whole seconds so that the event is the end of 30 June
//! or 31 December (the first such day at least a month after the host's
//! date; [`crate::truth`]), and judges every bound against the smeared
//! service time. At most one per scenario; its `at-s` must be a whole
//! number of seconds before `duration-s`, and `warmup-s` whole seconds too
//! (the leap then falls on a second of the host's clock).
//!
//! ```toml
//! [[event]]
//! at-s = 40
//! action = "leap"
//! kind = "insert"     # or "delete"
//! announced = true    # the list, NTP's leap indicator and the kernels know (default true)
//! ```
//!
//! A `clock-slew` must end within `duration-s`, and one site's slews must
//! not overlap.
//!
//! What each does is documented on [`Action`]. Unknown keys, and keys of
//! another action, are errors; the `toml` crate reports those inside an
//! event at the event's `[[event]]` line (the action's keys are read
//! through serde's buffering of an internally tagged enum, which loses the
//! position of each key).
//!
//! # Checks
//!
//! Besides what a scenario always checks (true time inside every bound, no
//! duplicate or out-of-order TSO timestamp, every event applied), it may
//! state what it expects of the TSO; a check that fails fails the scenario,
//! and the report shows each check with what was seen.
//!
//! `expect-leader` ([`Action::ExpectLeader`]) is an event that changes
//! nothing: it passes if at some status poll (every 250 ms) from `at-s` to
//! `at-s + within-s` (default 0: at the event) `site` says it leads the
//! TSO and every other site that runs, is not paused and not partitioned
//! names it as its leader in the same term (a site's status file counts
//! once written since the site last started, resumed or was healed: not
//! what it said before a pause). Its window must end within `duration-s`;
//! its site must not be killed, paused or partitioned (by the events
//! before it) when it begins. It begins no phase of the report and does not end
//! another event's span (detection, recovery, unavailability).
//!
//! ```toml
//! [[event]]
//! at-s = 35
//! action = "expect-leader"
//! site = "frankfurt"
//! within-s = 20       # 0 … duration-s - at-s (default 0)
//! ```
//!
//! `max-gap-ms` on any other event bounds the TSO's unavailability after
//! it ([`GapLimit`]): at each site checked, the longest span without a
//! timestamp that begins between the event and the next event at a later
//! time (running on to the next timestamp: the report's "TSO unavailable
//! after it") must be at most `max-gap-ms`. `gap-sites` says which sites:
//! `"all"` (the default) or `"others"` (every site but the event's own;
//! for `site = "leader"` the site it resolved to; not for `link`, which
//! names no one site). The load's clients limit what a gap can resolve: a
//! quick site gets a timestamp about every 5 ms, a far one about once per
//! round trip to the leader ([`crate::tso::load`]).
//!
//! ```toml
//! [[event]]
//! at-s = 20
//! action = "resume"
//! site = "virginia"
//! max-gap-ms = 250      # 1 … 3600000
//! gap-sites = "others"  # "all" (default) or "others"
//! ```
//!
//! # Failover clients
//!
//! `failover-home = "bj-a"` (top level) adds four TSO clients that live in
//! that site's region and are given every site, as an application given
//! the cluster file is ([`tsod_client::tso::Tso::connect_sites`]): the home
//! site directly, each other site through the WAN link from the home site
//! (so they attach to the home site, the nearest, and a partition of it
//! cuts them off from the others as it would). They are recorded as one
//! more "site", `clients@<home>`, so the report shows their longest gap
//! after each event and `max-gap-ms` judges it like a site's.
//!
//! # Invariants of a [`Scenario`]
//!
//! * its topology is valid, and every site and link an event names is in it;
//!   `gps-*` events only name sites with `gps = true`, `ntp-*` ones sites
//!   with `ntp = true`;
//! * `duration-s` is within 1 … [`MAX_DURATION_S`], `warmup-s` within
//!   0 … [`MAX_WARMUP_S`], every `at-s` within 0 … `duration-s`;
//! * at most one `leap`, at whole seconds before `duration-s`, with whole
//!   seconds of `warmup-s`; `clock-slew`s end within `duration-s` and do
//!   not overlap on one site;
//! * [`Scenario::events`] are sorted by time, events at the same time
//!   keeping their order in the file, and make sense in that order: a
//!   `restart` follows a `kill` of the same site (and a `kill` does not
//!   follow another without a `restart` between), a `resume` follows a
//!   `pause` (a `pause` needs a running, unpaused site; a `kill` ends a
//!   pause), a `heal` follows a `partition`, a `gps-restore` or
//!   `ntp-restore` follows a fault of that source;
//! * only the actions listed above name `site = "leader"`;
//! * `expect-leader` windows end within `duration-s` and begin on a site
//!   that runs, unpaused and connected; `max-gap-ms` is within
//!   1 … 3600000, not on an `expect-leader`; `gap-sites` comes with
//!   `max-gap-ms`, and `"others"` not on a `link`.
//!
//! A description that starts with `short` (any case) marks a scenario quick
//! enough for CI ([`Scenario::is_short`]; `run-scenarios.sh --short` runs
//! those); the built-in ones that are not start with `long`
//! (`tso-restart-cycles`, about five minutes).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tsod_proto::{Offset, Ppb};

use super::builtin::Builtins;
use super::error::{SpecError, SpecKind};
use super::fields::{LEADER, check_label, check_range, millis, seconds};
use super::topology::{DEFAULT_TOPOLOGY, Topology};
use crate::truth::LeapKind;

mod action;

use action::ActionFile;
pub use action::{Action, MAX_CLAIMED_ERROR_US, MAX_FAULT_DRIFT_PPM, MAX_SLEW_PPM};

/// Longest timeline a scenario may ask for (s): six hours, for soaks
/// (`testbed/soak.sh`). The TSO checker keeps every call (56 bytes each)
/// to judge them together at the end: ~0.7 GB at the soak's ~550 calls/s.
pub const MAX_DURATION_S: f64 = 21_600.0;

/// Longest warm-up a scenario may ask for (s).
pub const MAX_WARMUP_S: f64 = 600.0;

/// Warm-up when `warmup-s` is not given (s).
pub const DEFAULT_WARMUP_S: f64 = 10.0;

/// The built-in scenarios.
const BUILTINS: Builtins = Builtins::new(
    SpecKind::Scenario,
    &[
        ("lose-each-site", include_str!("../../scenarios/lose-each-site.toml")),
        ("gps-spoof", include_str!("../../scenarios/gps-spoof.toml")),
        ("gps-outage-everywhere", include_str!("../../scenarios/gps-outage-everywhere.toml")),
        ("ntp-falseticker", include_str!("../../scenarios/ntp-falseticker.toml")),
        ("asymmetric-wan", include_str!("../../scenarios/asymmetric-wan.toml")),
        ("clock-step", include_str!("../../scenarios/clock-step.toml")),
        ("partition-one-site", include_str!("../../scenarios/partition-one-site.toml")),
        ("daemon-restarts", include_str!("../../scenarios/daemon-restarts.toml")),
        ("tso-leader-loss", include_str!("../../scenarios/tso-leader-loss.toml")),
        ("tso-leader-pause", include_str!("../../scenarios/tso-leader-pause.toml")),
        ("tso-minority-partition", include_str!("../../scenarios/tso-minority-partition.toml")),
        ("tso-restart-cycles", include_str!("../../scenarios/tso-restart-cycles.toml")),
        ("tso-returning-follower", include_str!("../../scenarios/tso-returning-follower.toml")),
        ("tso-client-failover", include_str!("../../scenarios/tso-client-failover.toml")),
        ("tso-global-leader-loss", include_str!("../../scenarios/tso-global-leader-loss.toml")),
        ("tso-global-leader-pause", include_str!("../../scenarios/tso-global-leader-pause.toml")),
        ("tso-global-minority-partition", include_str!("../../scenarios/tso-global-minority-partition.toml")),
        ("tso-global-returning-follower", include_str!("../../scenarios/tso-global-returning-follower.toml")),
        ("tso-global-priority", include_str!("../../scenarios/tso-global-priority.toml")),
        ("leap-insert", include_str!("../../scenarios/leap-insert.toml")),
        ("leap-delete", include_str!("../../scenarios/leap-delete.toml")),
        ("leap-unannounced", include_str!("../../scenarios/leap-unannounced.toml")),
        ("fast-slew", include_str!("../../scenarios/fast-slew.toml")),
        ("too-few-sources", include_str!("../../scenarios/too-few-sources.toml")),
    ],
);

/// A validated scenario (see the module doc for its invariants).
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    name: String,
    description: String,
    topology: Topology,
    duration: Duration,
    warmup: Duration,
    events: Vec<Event>,
    failover_home: Option<String>,
}

/// Largest `max-gap-ms` (ms): one hour.
pub const MAX_GAP_MS: f64 = 3_600_000.0;

/// One event of the timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    at: Duration,
    action: Action,
    gap_limit: Option<GapLimit>,
}

/// `max-gap-ms` and `gap-sites` of an event: a bound on the TSO
/// unavailability at some sites after it (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GapLimit {
    /// The longest gap allowed.
    #[serde(rename = "max-gap-ms", serialize_with = "serialize_ms")]
    pub max: Duration,
    /// Which sites it holds for.
    #[serde(rename = "gap-sites")]
    pub sites: GapSites,
}

/// Which sites a [`GapLimit`] holds for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GapSites {
    /// Every site.
    All,
    /// Every site but the one the event acts on.
    Others,
}

fn serialize_ms<S: serde::Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(d.as_nanos() as f64 / 1e6)
}

impl GapLimit {
    /// Whether it holds for `site`, after an event on `event_site` (`None`:
    /// the event names no one site, or its `"leader"` was not found).
    pub fn covers(&self, site: &str, event_site: Option<&str>) -> bool {
        match self.sites {
            GapSites::All => true,
            GapSites::Others => event_site != Some(site),
        }
    }
}

impl fmt::Display for GapLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sites = match self.sites {
            GapSites::All => "every site",
            GapSites::Others => "every other site",
        };
        write!(f, "longest TSO gap at {sites} ≤ {} ms", self.max.as_nanos() as f64 / 1e6)
    }
}

/// The file as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ScenarioFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "default_topology")]
    topology: String,
    duration_s: f64,
    #[serde(default = "default_warmup_s")]
    warmup_s: f64,
    #[serde(rename = "event", default)]
    events: Vec<EventFile>,
    #[serde(default)]
    failover_home: Option<String>,
}

fn default_topology() -> String {
    DEFAULT_TOPOLOGY.to_owned()
}

fn default_warmup_s() -> f64 {
    DEFAULT_WARMUP_S
}

/// `[[event]]` as written. Unknown keys are caught by [`ActionFile`]
/// (serde cannot deny them on a struct with a flattened field).
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct EventFile {
    at_s: f64,
    max_gap_ms: Option<f64>,
    gap_sites: Option<GapSites>,
    #[serde(flatten)]
    action: ActionFile,
}

/// What the events so far have done to one site, for checking the next.
#[derive(Clone, Copy, Debug, Default)]
struct SiteState {
    killed: bool,
    paused: bool,
    partitioned: bool,
    gps_faulty: bool,
    ntp_faulty: bool,
}

impl Scenario {
    /// Parses and validates `text`; `origin` only names it in errors. A
    /// topology given as a path is read relative to the current directory.
    pub fn parse(text: &str, origin: &str) -> Result<Self, SpecError> {
        Self::parse_relative_to(text, origin, None)
    }

    /// A built-in scenario by name (one of [`Scenario::builtin_names`]), or
    /// else the scenario file at that path (its topology, if a path, is
    /// relative to the file's directory).
    pub fn load(name_or_path: &str) -> Result<Self, SpecError> {
        if BUILTINS.contains(name_or_path) {
            return Self::builtin(name_or_path);
        }
        let path = Path::new(name_or_path);
        Self::parse_relative_to(&BUILTINS.read(path)?, name_or_path, path.parent())
    }

    /// The built-in scenario `name`.
    pub fn builtin(name: &str) -> Result<Self, SpecError> {
        let (text, origin) = BUILTINS.text(name)?;
        Self::parse(text, &origin)
    }

    /// The names of the built-in scenarios.
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTINS.names()
    }

    /// The scenario's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it does and what it expects (free text, may be empty).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Whether it is quick enough for CI: its description starts with "short".
    pub fn is_short(&self) -> bool {
        self.description.get(..5).is_some_and(|first| first.eq_ignore_ascii_case("short"))
    }

    /// The cluster it runs on.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Length of the judged timeline, from its t = 0.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Time the cluster runs before the timeline's t = 0, to synchronize (not judged).
    pub fn warmup(&self) -> Duration {
        self.warmup
    }

    /// `failover-home`: the site whose region the failover clients are in,
    /// if the scenario has them (see the module doc).
    pub fn failover_home(&self) -> Option<&str> {
        self.failover_home.as_deref()
    }

    /// The events, sorted by time (ties in file order).
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The clock steps and slews of `site`, in order: when (after the
    /// timeline's t = 0; add [`Scenario::warmup`] for the time after the
    /// cluster starts), by how much in all, and over how long (zero for a
    /// step). `tsod` takes its simulated clock's steps and slews from its
    /// configuration, so the testbed needs them before it starts the site.
    pub fn clock_changes(&self, site: &str) -> Vec<(Duration, Offset, Duration)> {
        self.events
            .iter()
            .filter_map(|e| match &e.action {
                Action::ClockStep { site: stepped, by } if stepped == site => Some((e.at, *by, Duration::ZERO)),
                Action::ClockSlew { site: slewed, rate, duration } if slewed == site => {
                    Some((e.at, slew_total(*rate, *duration), *duration))
                }
                _ => None,
            })
            .collect()
    }

    /// The leap second, if the scenario has one: when the day ends (after
    /// the timeline's t = 0), its sign, and whether it is announced.
    pub fn leap(&self) -> Option<(Duration, LeapKind, bool)> {
        self.events.iter().find_map(|e| match e.action {
            Action::Leap { kind, announced } => Some((e.at, kind, announced)),
            _ => None,
        })
    }

    fn parse_relative_to(text: &str, origin: &str, base: Option<&Path>) -> Result<Self, SpecError> {
        let file: ScenarioFile = toml::from_str(text).map_err(|source| SpecError::parse(origin, source))?;
        let invalid = |what: String| SpecError::invalid(origin, what);
        check_label("name", &file.name).map_err(invalid)?;
        let topology = if Topology::builtin_names().any(|name| name == file.topology) {
            Topology::builtin(&file.topology)
        } else {
            let path = base.map_or_else(|| PathBuf::from(&file.topology), |dir| dir.join(&file.topology));
            Topology::load(&path.to_string_lossy())
        }
        .map_err(|source| SpecError::Topology { origin: origin.to_owned(), source: Box::new(source) })?;
        check_range("duration-s", file.duration_s, 1.0, MAX_DURATION_S).map_err(invalid)?;
        check_range("warmup-s", file.warmup_s, 0.0, MAX_WARMUP_S).map_err(invalid)?;
        let duration = seconds("duration-s", file.duration_s).map_err(invalid)?;
        let warmup = seconds("warmup-s", file.warmup_s).map_err(invalid)?;
        let events = timeline(file.events, file.duration_s, &topology).map_err(invalid)?;
        check_leap_and_slews(&events, file.warmup_s, file.duration_s).map_err(invalid)?;
        if let Some(home) = &file.failover_home
            && !topology.sites().iter().any(|s| s.name() == home)
        {
            return Err(invalid(format!("failover-home = {home:?} is not a site of the topology")));
        }
        Ok(Self {
            name: file.name,
            description: file.description,
            topology,
            duration,
            warmup,
            events,
            failover_home: file.failover_home,
        })
    }
}

/// The events checked, converted and sorted, then checked in order against
/// what the earlier ones did.
fn timeline(events: Vec<EventFile>, duration_s: f64, topology: &Topology) -> Result<Vec<Event>, String> {
    let mut numbered = Vec::with_capacity(events.len());
    for (i, event) in events.into_iter().enumerate() {
        let at = format!("event #{} (at-s = {})", i.saturating_add(1), event.at_s);
        check_range("at-s", event.at_s, 0.0, duration_s).map_err(|e| format!("{at}: {e} (duration-s)"))?;
        let action = event.action.resolve().map_err(|e| format!("{at}: {e}"))?;
        if let Action::ExpectLeader { within, .. } = &action {
            let ends = event.at_s + within.as_secs_f64();
            if ends > duration_s {
                return Err(format!(
                    "{at}: within-s = {}: the window ends at {ends} s, after duration-s = {duration_s}",
                    within.as_secs_f64()
                ));
            }
        }
        let gap_limit = gap_limit(event.max_gap_ms, event.gap_sites, &action).map_err(|e| format!("{at}: {e}"))?;
        let event = Event { at: seconds("at-s", event.at_s).map_err(|e| format!("{at}: {e}"))?, action, gap_limit };
        numbered.push((at, event));
    }
    // Stable: events at the same time keep their order in the file.
    numbered.sort_by_key(|(_, event)| event.at);
    // One more for "leader", which the order checks treat as a site of its own.
    let mut states = vec![SiteState::default(); topology.sites().len().saturating_add(1)];
    for (at, event) in &numbered {
        check_in_order(&event.action, topology, &mut states)
            .map_err(|e| format!("{at}, {}: {e}", event.action.name()))?;
    }
    Ok(numbered.into_iter().map(|(_, event)| event).collect())
}

/// How far a slew at `rate` for `duration` moves the clock in all.
fn slew_total(rate: Ppb, duration: Duration) -> Offset {
    let ns = i128::from(rate.get()) * i128::try_from(duration.as_nanos()).unwrap_or(i128::MAX) / 1_000_000_000;
    Offset::from_nanos(i64::try_from(ns).unwrap_or(i64::MAX))
}

/// At most one leap, on whole seconds (of `at-s` and `warmup-s`) before
/// the end; slews that end within the run and do not overlap on a site.
fn check_leap_and_slews(events: &[Event], warmup_s: f64, duration_s: f64) -> Result<(), String> {
    let mut leaps = 0_usize;
    // Per site: when its last slew ends (s).
    let mut slewing: Vec<(&str, f64)> = Vec::new();
    for event in events {
        let at_s = event.at.as_secs_f64();
        let at = format!("event at-s = {at_s}, {}", event.action.name());
        match &event.action {
            Action::Leap { .. } => {
                leaps = leaps.saturating_add(1);
                if leaps > 1 {
                    return Err(format!("{at}: a scenario has at most one leap second"));
                }
                if at_s.fract() != 0.0 || warmup_s.fract() != 0.0 {
                    return Err(format!(
                        "{at}: a leap needs whole seconds of at-s and warmup-s (given {at_s} and {warmup_s}), so                          that it falls on a second of the host's clock"
                    ));
                }
                if at_s >= duration_s {
                    return Err(format!("{at}: a leap must fall before duration-s = {duration_s}, to be seen"));
                }
            }
            Action::ClockSlew { site, duration, .. } => {
                let ends = at_s + duration.as_secs_f64();
                if ends > duration_s {
                    return Err(format!("{at}: the slew ends at {ends} s, after duration-s = {duration_s}"));
                }
                if let Some((_, until)) = slewing.iter().find(|(s, _)| s == site) {
                    if *until > at_s {
                        return Err(format!("{at}: {site:?} is still slewing until {until} s (one slew at a time)"));
                    }
                }
                slewing.retain(|(s, _)| s != site);
                slewing.push((site, ends));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The event's `max-gap-ms` and `gap-sites`, checked.
fn gap_limit(max_gap_ms: Option<f64>, sites: Option<GapSites>, action: &Action) -> Result<Option<GapLimit>, String> {
    let Some(ms) = max_gap_ms else {
        return match sites {
            Some(_) => Err("gap-sites needs max-gap-ms".to_owned()),
            None => Ok(None),
        };
    };
    if action.is_check() {
        return Err(format!("max-gap-ms is for an event that changes the cluster, not for {}", action.name()));
    }
    check_range("max-gap-ms", ms, 1.0, MAX_GAP_MS)?;
    let sites = sites.unwrap_or(GapSites::All);
    if sites == GapSites::Others && action.site().is_none() {
        return Err(format!("gap-sites = \"others\": {} names no one site (use \"all\")", action.name()));
    }
    Ok(Some(GapLimit { max: millis("max-gap-ms", ms)?, sites }))
}

/// Checks `action` against the topology and the state of its site, and
/// applies it to that state.
fn check_in_order(action: &Action, topology: &Topology, states: &mut [SiteState]) -> Result<(), String> {
    if let Action::Link(link) = action {
        let (a, b) = link.between();
        return match topology.link(a, b) {
            Some(_) => Ok(()),
            None => Err(format!("between: the topology has no link between {a:?} and {b:?}")),
        };
    }
    let Some(name) = action.site() else {
        return Ok(());
    };
    let index = if name == LEADER {
        if !action.may_target_leader() {
            return Err(format!(
                "site = {LEADER:?} is only for kill, restart, pause, resume, partition and heal (it resolves \
                 to the TSO leader when the event fires)"
            ));
        }
        topology.sites().len()
    } else {
        topology
            .sites()
            .iter()
            .position(|site| site.name() == name)
            .ok_or_else(|| format!("site: the topology has no site called {name:?}"))?
    };
    // `None` for "leader", which only the actions without sources may name.
    let site = topology.sites().get(index);
    let (has_gps, has_ntp) = (site.is_none_or(|s| s.gps()), site.is_none_or(|s| s.ntp()));
    let state = states.get_mut(index).ok_or_else(|| format!("site {name:?}: no state (a testbed bug)"))?;
    let toggle = |flag: &mut bool, to: bool, why: &str| {
        if *flag == to {
            return Err(format!("{name:?} {why}"));
        }
        *flag = to;
        Ok(())
    };
    match action {
        Action::Kill { .. } => {
            state.paused = false;
            toggle(&mut state.killed, true, "is already killed (restart it first)")
        }
        Action::Restart { .. } => toggle(&mut state.killed, false, "is not killed (restart only follows a kill)"),
        Action::Pause { .. } if state.killed => Err(format!("{name:?} is killed (restart it before pausing it)")),
        Action::Pause { .. } => toggle(&mut state.paused, true, "is already paused (resume it first)"),
        Action::Resume { .. } => toggle(&mut state.paused, false, "is not paused (resume only follows a pause)"),
        Action::Partition { .. } => toggle(&mut state.partitioned, true, "is already partitioned"),
        Action::Heal { .. } => {
            toggle(&mut state.partitioned, false, "is not partitioned (heal only follows a partition)")
        }
        Action::GpsOffset { .. } | Action::GpsDrift { .. } | Action::GpsOutage { .. } | Action::GpsRestore { .. }
            if !has_gps =>
        {
            Err(format!("{name:?} has no GPS (gps = false in the topology)"))
        }
        Action::NtpOffset { .. } | Action::NtpOutage { .. } | Action::NtpRestore { .. } if !has_ntp => {
            Err(format!("{name:?} has no NTP server (ntp = false in the topology)"))
        }
        Action::GpsOffset { .. } | Action::GpsDrift { .. } | Action::GpsOutage { .. } => {
            state.gps_faulty = true;
            Ok(())
        }
        Action::GpsRestore { .. } => toggle(&mut state.gps_faulty, false, "has no GPS fault to restore"),
        Action::NtpOffset { .. } | Action::NtpOutage { .. } => {
            state.ntp_faulty = true;
            Ok(())
        }
        Action::NtpRestore { .. } => toggle(&mut state.ntp_faulty, false, "has no NTP fault to restore"),
        Action::ExpectLeader { .. } => {
            let why = if state.killed {
                "killed (restart it before expecting it to lead)"
            } else if state.paused {
                "paused (resume it before expecting it to lead)"
            } else if state.partitioned {
                "partitioned (heal it before expecting it to lead)"
            } else {
                return Ok(());
            };
            Err(format!("{name:?} is {why}"))
        }
        Action::ClockStep { .. } | Action::ClockSlew { .. } | Action::Link(_) | Action::Leap { .. } => Ok(()),
    }
}

impl Event {
    /// When, after the timeline's t = 0.
    pub fn at(&self) -> Duration {
        self.at
    }

    /// What happens.
    pub fn action(&self) -> &Action {
        &self.action
    }

    /// Its `max-gap-ms` and `gap-sites`, if given.
    pub fn gap_limit(&self) -> Option<&GapLimit> {
        self.gap_limit.as_ref()
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t+{:.3} s: {}", self.at.as_secs_f64(), self.action)
    }
}

#[cfg(test)]
mod tests;
