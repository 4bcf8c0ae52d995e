//! [`Action`]: what a scenario's event does, as the testbed applies it, and
//! `ActionFile`, the `[[event]]` keys that give it (an internally tagged
//! enum on `action`, each variant with its own keys and nothing else).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use tsod_proto::{Offset, Ppb};

use crate::spec::fields::{check_range, millis, offset_from_ms, ppb_from_ppm, seconds};
use crate::spec::topology::{Link, LinkSpec, MAX_CLOCK_OFFSET_MS};
use crate::truth::LeapKind;

/// Largest drift a `gps-drift` event may give a receiver's lie, either way (ppm).
pub const MAX_FAULT_DRIFT_PPM: f64 = 1_000.0;

/// Largest error an NTP server may claim in `ntp-offset` (µs): 60 s.
pub const MAX_CLAIMED_ERROR_US: f64 = 60_000_000.0;

/// Fastest `clock-slew`, either way (ppm): chronyd's `maxslewrate`
/// (83 333.333 ppm, 1/12), rounded up.
pub const MAX_SLEW_PPM: f64 = 83_334.0;

/// What an event does. Times are the event's; "the lie" of a simulated
/// source is how far its time is from the truth (see [`crate::sim`]).
///
/// A simulator's fault ([`GpsFault`](crate::sim::gpsd::GpsFault),
/// [`NtpFault`](crate::sim::ntp::NtpFault)) counts its drift from when it is
/// set, so `gps-offset` and `gps-drift` map to setting the fault's `offset`
/// to the lie wanted at the event (the new offset, or the lie the receiver
/// has reached) and its `drift` to the rate from then on.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// The site's `tsod` process is killed (abruptly); its simulated sources
    /// and links keep running.
    Kill {
        /// The site.
        site: String,
    },
    /// The site's `tsod` process, killed earlier, is started again.
    Restart {
        /// The site.
        site: String,
    },
    /// The site's `tsod` process is stopped (SIGSTOP): it keeps its
    /// sockets and state but does nothing until resumed, as in a long GC
    /// pause or a frozen VM.
    Pause {
        /// The site.
        site: String,
    },
    /// The site's paused `tsod` process runs again (SIGCONT).
    Resume {
        /// The site.
        site: String,
    },
    /// The GPS receiver's lie jumps to `offset` (a drift set earlier keeps
    /// growing from there).
    GpsOffset {
        /// The site.
        site: String,
        /// The new lie (positive: the receiver runs ahead).
        offset: Offset,
    },
    /// The GPS receiver's lie, from what it is now, grows at `drift` (slow spoofing).
    GpsDrift {
        /// The site.
        site: String,
        /// How fast the lie grows.
        drift: Ppb,
    },
    /// The GPS receiver loses its signal: no PPS, no fix.
    GpsOutage {
        /// The site.
        site: String,
    },
    /// The GPS receiver is healthy again: a signal, no lie.
    GpsRestore {
        /// The site.
        site: String,
    },
    /// The NTP server's lie becomes `offset`, and it advertises
    /// `claimed_error` as its root dispersion when that is set.
    NtpOffset {
        /// The site.
        site: String,
        /// The new lie (positive: the server runs ahead).
        offset: Offset,
        /// The root dispersion it claims instead of its honest one: a claim
        /// smaller than `offset` makes it a falseticker.
        claimed_error: Option<Duration>,
    },
    /// The NTP server stops answering.
    NtpOutage {
        /// The site.
        site: String,
    },
    /// The NTP server is healthy again: it answers, without a lie.
    NtpRestore {
        /// The site.
        site: String,
    },
    /// Every link of the site is cut, both ways (a link is cut while either
    /// of its sites is partitioned).
    Partition {
        /// The site.
        site: String,
    },
    /// The site's links carry traffic again (those to another partitioned
    /// site stay cut).
    Heal {
        /// The site.
        site: String,
    },
    /// The link between the two sites takes this shape for datagrams sent
    /// from now on. Its forward direction is from the first site *of this
    /// event's* `between` (which may be written the other way round than in
    /// the topology): use [`Link::shape_from`] to orient it.
    Link(Link),
    /// The site's local clock steps by `by` (see
    /// [`Scenario::clock_changes`](super::Scenario::clock_changes)).
    ClockStep {
        /// The site.
        site: String,
        /// How far it jumps (positive: ahead).
        by: Offset,
    },
    /// The site's local clock (its `CLOCK_REALTIME`) runs at `1 + rate`
    /// for `duration`, as chronyd slews it at up to 83 333 ppm, and the
    /// site's simulated gpsd reports PPS edges as such a realtime would
    /// stamp them ([`crate::sim::gpsd::RealtimeSlew`]).
    ClockSlew {
        /// The site.
        site: String,
        /// How much faster than true time it runs (negative: slower).
        rate: Ppb,
        /// For how long.
        duration: Duration,
    },
    /// A leap second at the end of the day: the testbed shifts the
    /// cluster's time so that the day ends at the event
    /// ([`crate::truth`]). An `announced` leap is in the daemons'
    /// leap-second list, the NTP servers announce it (leap indicator 1 or
    /// 2) the day before, and every site's kernel steps its realtime by it
    /// at its own 00:00:00 (an insert back, a delete forward, one second);
    /// one not announced is in no list (the list expired before it), no
    /// server announces it, and no kernel steps. gpsd never announces one.
    Leap {
        /// Inserted or deleted.
        kind: LeapKind,
        /// Whether the list, the NTP servers and the kernels know of it.
        announced: bool,
    },
    /// A check, not a fault: at some status poll from the event to `within`
    /// after it, the site leads the TSO and every other site that runs, is
    /// not paused and not partitioned names it as its leader in the same
    /// term ([`crate::tso::status::agreed_leader`]). It changes nothing, and
    /// begins no phase of the report.
    ExpectLeader {
        /// The site that should lead.
        site: String,
        /// How long it may take to get there (zero: at the event itself).
        within: Duration,
    },
}

/// `[[event]]` keys other than `at-s`, as written: the variant is chosen by
/// `action`, and each accepts only its own keys.
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", rename_all_fields = "kebab-case", deny_unknown_fields)]
pub(super) enum ActionFile {
    Kill { site: String },
    Restart { site: String },
    Pause { site: String },
    Resume { site: String },
    GpsOffset { site: String, offset_ms: f64 },
    GpsDrift { site: String, drift_ppm: f64 },
    GpsOutage { site: String },
    GpsRestore { site: String },
    NtpOffset { site: String, offset_ms: f64, claimed_error_us: Option<f64> },
    NtpOutage { site: String },
    NtpRestore { site: String },
    Partition { site: String },
    Heal { site: String },
    Link(LinkSpec),
    ClockStep { site: String, by_ms: f64 },
    ClockSlew { site: String, rate_ppm: f64, duration_s: f64 },
    Leap { kind: LeapKind, announced: Option<bool> },
    ExpectLeader { site: String, within_s: Option<f64> },
}

impl ActionFile {
    /// The action with its values checked and converted (its sites are
    /// checked against the topology later).
    pub(super) fn resolve(self) -> Result<Action, String> {
        let offset = |key: &str, ms: f64| {
            check_range(key, ms, -MAX_CLOCK_OFFSET_MS, MAX_CLOCK_OFFSET_MS).map(|()| offset_from_ms(ms))
        };
        Ok(match self {
            Self::Kill { site } => Action::Kill { site },
            Self::Restart { site } => Action::Restart { site },
            Self::Pause { site } => Action::Pause { site },
            Self::Resume { site } => Action::Resume { site },
            Self::GpsOffset { site, offset_ms } => Action::GpsOffset { site, offset: offset("offset-ms", offset_ms)? },
            Self::GpsDrift { site, drift_ppm } => {
                check_range("drift-ppm", drift_ppm, -MAX_FAULT_DRIFT_PPM, MAX_FAULT_DRIFT_PPM)?;
                Action::GpsDrift { site, drift: ppb_from_ppm(drift_ppm) }
            }
            Self::GpsOutage { site } => Action::GpsOutage { site },
            Self::GpsRestore { site } => Action::GpsRestore { site },
            Self::NtpOffset { site, offset_ms, claimed_error_us } => {
                let claimed_error = match claimed_error_us {
                    None => None,
                    Some(us) => {
                        check_range("claimed-error-us", us, 0.0, MAX_CLAIMED_ERROR_US)?;
                        Some(millis("claimed-error-us", us / 1e3)?)
                    }
                };
                Action::NtpOffset { site, offset: offset("offset-ms", offset_ms)?, claimed_error }
            }
            Self::NtpOutage { site } => Action::NtpOutage { site },
            Self::NtpRestore { site } => Action::NtpRestore { site },
            Self::Partition { site } => Action::Partition { site },
            Self::Heal { site } => Action::Heal { site },
            Self::Link(spec) => Action::Link(spec.resolve()?),
            Self::ClockStep { site, by_ms } => Action::ClockStep { site, by: offset("by-ms", by_ms)? },
            Self::ClockSlew { site, rate_ppm, duration_s } => {
                check_range("rate-ppm", rate_ppm, -MAX_SLEW_PPM, MAX_SLEW_PPM)?;
                if rate_ppm == 0.0 {
                    return Err("rate-ppm = 0 is no slew".to_owned());
                }
                check_range("duration-s", duration_s, 0.001, super::MAX_DURATION_S)?;
                Action::ClockSlew { site, rate: ppb_from_ppm(rate_ppm), duration: seconds("duration-s", duration_s)? }
            }
            Self::Leap { kind, announced } => Action::Leap { kind, announced: announced.unwrap_or(true) },
            Self::ExpectLeader { site, within_s } => {
                let within_s = within_s.unwrap_or(0.0);
                check_range("within-s", within_s, 0.0, super::MAX_DURATION_S)?;
                Action::ExpectLeader { site, within: millis("within-s", within_s * 1e3)? }
            }
        })
    }
}

impl Action {
    /// The `action` key that gives it (`"kill"`, `"gps-offset"`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Kill { .. } => "kill",
            Self::Restart { .. } => "restart",
            Self::Pause { .. } => "pause",
            Self::Resume { .. } => "resume",
            Self::GpsOffset { .. } => "gps-offset",
            Self::GpsDrift { .. } => "gps-drift",
            Self::GpsOutage { .. } => "gps-outage",
            Self::GpsRestore { .. } => "gps-restore",
            Self::NtpOffset { .. } => "ntp-offset",
            Self::NtpOutage { .. } => "ntp-outage",
            Self::NtpRestore { .. } => "ntp-restore",
            Self::Partition { .. } => "partition",
            Self::Heal { .. } => "heal",
            Self::Link(_) => "link",
            Self::ClockStep { .. } => "clock-step",
            Self::ClockSlew { .. } => "clock-slew",
            Self::Leap { .. } => "leap",
            Self::ExpectLeader { .. } => "expect-leader",
        }
    }

    /// Whether it is a check ([`Action::ExpectLeader`]) rather than a
    /// change to the cluster: checks begin no phase, and are not the "next
    /// event" that ends another's detection, recovery or unavailability.
    pub fn is_check(&self) -> bool {
        matches!(self, Self::ExpectLeader { .. })
    }

    /// Whether it may name [`LEADER`](crate::spec::LEADER) as its site.
    pub fn may_target_leader(&self) -> bool {
        matches!(
            self,
            Self::Kill { .. }
                | Self::Restart { .. }
                | Self::Pause { .. }
                | Self::Resume { .. }
                | Self::Partition { .. }
                | Self::Heal { .. }
        )
    }

    /// The same action on `site` instead (for resolving [`LEADER`](crate::spec::LEADER));
    /// [`Action::Link`] is returned unchanged.
    pub fn on_site(&self, site: &str) -> Self {
        let mut action = self.clone();
        match &mut action {
            Self::Kill { site: s }
            | Self::Restart { site: s }
            | Self::Pause { site: s }
            | Self::Resume { site: s }
            | Self::GpsOffset { site: s, .. }
            | Self::GpsDrift { site: s, .. }
            | Self::GpsOutage { site: s }
            | Self::GpsRestore { site: s }
            | Self::NtpOffset { site: s, .. }
            | Self::NtpOutage { site: s }
            | Self::NtpRestore { site: s }
            | Self::Partition { site: s }
            | Self::Heal { site: s }
            | Self::ClockStep { site: s, .. }
            | Self::ClockSlew { site: s, .. }
            | Self::ExpectLeader { site: s, .. } => site.clone_into(s),
            Self::Link(_) | Self::Leap { .. } => {}
        }
        action
    }

    /// The site it acts on (`None` for [`Action::Link`], which names two,
    /// and [`Action::Leap`], which is everywhere).
    pub fn site(&self) -> Option<&str> {
        match self {
            Self::Kill { site }
            | Self::Restart { site }
            | Self::Pause { site }
            | Self::Resume { site }
            | Self::GpsOffset { site, .. }
            | Self::GpsDrift { site, .. }
            | Self::GpsOutage { site }
            | Self::GpsRestore { site }
            | Self::NtpOffset { site, .. }
            | Self::NtpOutage { site }
            | Self::NtpRestore { site }
            | Self::Partition { site }
            | Self::Heal { site }
            | Self::ClockStep { site, .. }
            | Self::ClockSlew { site, .. }
            | Self::ExpectLeader { site, .. } => Some(site),
            Self::Link(_) | Self::Leap { .. } => None,
        }
    }
}

/// Milliseconds of an offset, for display.
fn offset_ms(offset: Offset) -> f64 {
    offset.as_nanos() as f64 / 1e6
}

/// Microseconds of a duration, for display.
fn duration_us(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e3
}

/// Milliseconds of a duration, for display.
fn duration_ms(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match self {
            Self::GpsOffset { site, offset } => write!(f, "{name} {site} {:+} ms", offset_ms(*offset)),
            Self::GpsDrift { site, drift } => write!(f, "{name} {site} {:+} ppm", drift.get() as f64 / 1e3),
            Self::NtpOffset { site, offset, claimed_error } => {
                write!(f, "{name} {site} {:+} ms", offset_ms(*offset))?;
                match claimed_error {
                    Some(claimed) => write!(f, " claiming ±{} µs", duration_us(*claimed)),
                    None => Ok(()),
                }
            }
            Self::Link(link) => {
                let (a, b) = link.between();
                write!(
                    f,
                    "{name} {a} → {b} {} ms, {b} → {a} {} ms, jitter {} ms, loss {}",
                    duration_ms(link.forward_delay()),
                    duration_ms(link.reverse_delay()),
                    duration_ms(link.jitter()),
                    link.loss()
                )
            }
            Self::ClockStep { site, by } => write!(f, "{name} {site} {:+} ms", offset_ms(*by)),
            Self::ClockSlew { site, rate, duration } => {
                write!(f, "{name} {site} {:+} ppm for {} s", rate.get() as f64 / 1e3, duration.as_secs_f64())
            }
            Self::Leap { kind, announced } => {
                write!(f, "{name} {} ({})", kind.name(), if *announced { "announced" } else { "unannounced" })
            }
            Self::ExpectLeader { site, within } if within.is_zero() => write!(f, "{name} {site}"),
            Self::ExpectLeader { site, within } => {
                write!(f, "{name} {site} within {} s", within.as_secs_f64())
            }
            Self::Kill { site }
            | Self::Restart { site }
            | Self::Pause { site }
            | Self::Resume { site }
            | Self::GpsOutage { site }
            | Self::GpsRestore { site }
            | Self::NtpOutage { site }
            | Self::NtpRestore { site }
            | Self::Partition { site }
            | Self::Heal { site } => write!(f, "{name} {site}"),
        }
    }
}
