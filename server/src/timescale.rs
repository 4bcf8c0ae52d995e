//! Bringing each source's time onto the service timescale (SPEC.md §2:
//! UTC with a 24-hour noon-to-noon linear leap smear).
//!
//! A source configured as `utc-smear-24h` already serves the service
//! timescale. A source configured as `utc` serves UTC as POSIX numbers it:
//! an inserted second repeats `[L − 1 s, L)` (the kernel's convention; a
//! server that freezes instead gives values inside the same range), a
//! deleted one skips it. Outside the 24 hours around a leap the two
//! timescales are identical; inside, they differ by up to half a second.
//! [`ToService`] converts every `utc` sample *exactly* through the smear:
//! each end of the interval goes to the earliest (resp. latest) true
//! instant its UTC value can name, and that instant to its smeared time.
//! Which leap happens at a month end comes from the [`LeapSchedule`]:
//!
//! * the IERS list tzdata ships ([`crate::leap_list`]), for every month end
//!   it covers (up to its expiry): the list is the authority, and a source
//!   announcing otherwise is converted by the list (its time is then off,
//!   and selection out-votes it);
//! * beyond the list (missing, expired), the leap is **unknown**, and the
//!   conversion is the hull over "none", "inserted" and "deleted": true,
//!   about half a second wider at the boundary, shrinking to nothing 12 h
//!   away. A source that announces a leap there (NTP LI, the kernel's
//!   `STA_INS`/`STA_DEL`) narrows this to its announcement or none; a
//!   source that cannot announce (gpsd) or announces nothing gets the
//!   full hull, because "no announcement" is not evidence of no leap.
//!
//! [`smear_allowance`] widens the drift bound around every month end where
//! a smear may happen (a known leap, or an unknown month end).

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use tsod_proto::{Ppb, TimeInterval, Timestamp};

/// The timescale a source serves (SPEC.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceTimescale {
    /// UTC with leap seconds inserted (what most NTP servers and GPS give).
    Utc,
    /// UTC with the 24-hour noon-to-noon linear smear (Google, AWS).
    #[serde(rename = "utc-smear-24h")]
    UtcSmear24h,
}

/// What a source says about an upcoming leap second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LeapAnnouncement {
    /// No leap second announced.
    #[default]
    None,
    /// A second will be inserted at the end of the month.
    Insert,
    /// A second will be deleted at the end of the month.
    Delete,
}

/// Half the smear window, 12 h, in nanoseconds.
const HALF_WINDOW_NS: i128 = 43_200 * NS_PER_SEC;
const NS_PER_SEC: i128 = 1_000_000_000;
/// How long before a month end a source's announcement is taken to be
/// about it (NTP servers announce up to a month ahead).
const ANNOUNCEMENT_REACH: Duration = Duration::from_secs(32 * 86_400);

/// The leaps the daemon knows of, shared by every source and the engine.
#[derive(Clone, Debug, Default)]
pub struct LeapSchedule {
    list: Option<crate::leap_list::LeapList>,
}

impl LeapSchedule {
    /// From the IERS list (`None`: no list, every month end unknown).
    pub fn new(list: Option<crate::leap_list::LeapList>) -> Self {
        Self { list }
    }

    /// The leap at month boundary `boundary` (00:00:00 UTC on the 1st):
    /// `Some` when the list covers it, `None` when unknown.
    pub fn known(&self, boundary: Timestamp) -> Option<LeapAnnouncement> {
        self.list.as_ref().and_then(|l| l.leap_at(boundary))
    }

    /// The list's expiry, if there is a list.
    pub fn expires(&self) -> Option<Timestamp> {
        self.list.as_ref().map(crate::leap_list::LeapList::expires)
    }

    /// The leaps possible at the month boundary nearest `at`, and that boundary.
    fn possible(&self, at: Timestamp, announced: Option<LeapAnnouncement>) -> (Timestamp, Possible) {
        let boundary = nearest_month_start(at);
        let possible = match (self.known(boundary), announced) {
            (Some(known), _) => Possible::only(known),
            (None, Some(a @ (LeapAnnouncement::Insert | LeapAnnouncement::Delete))) => {
                Possible { none: true, ..Possible::only(a) }
            }
            (None, _) => Possible { none: true, insert: true, delete: true },
        };
        (boundary, possible)
    }
}

/// Which of the three cases may hold at a boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Possible {
    none: bool,
    insert: bool,
    delete: bool,
}

impl Possible {
    const fn only(a: LeapAnnouncement) -> Self {
        Self {
            none: matches!(a, LeapAnnouncement::None),
            insert: matches!(a, LeapAnnouncement::Insert),
            delete: matches!(a, LeapAnnouncement::Delete),
        }
    }

    fn signs(self) -> impl Iterator<Item = i128> {
        [(self.none, 0), (self.insert, 1), (self.delete, -1)].into_iter().filter(|(p, _)| *p).map(|(_, d)| d)
    }

    const fn any_leap(self) -> bool {
        self.insert || self.delete
    }
}

/// Per-source conversion of sample intervals onto the service timescale.
#[derive(Clone, Debug)]
pub struct ToService {
    timescale: SourceTimescale,
    schedule: std::sync::Arc<LeapSchedule>,
    /// The last leap this source announced, and the boundary it was for.
    announced: Option<(Timestamp, LeapAnnouncement)>,
}

impl ToService {
    /// Conversion for a source serving `timescale`.
    pub fn new(timescale: SourceTimescale, schedule: std::sync::Arc<LeapSchedule>) -> Self {
        Self { timescale, schedule, announced: None }
    }

    /// `interval`, read from the source, as an interval of the service
    /// timescale containing the same true instants. `announcement`: what
    /// the source said with it (`None` for a source that cannot announce).
    pub fn convert(&mut self, interval: TimeInterval, announcement: Option<LeapAnnouncement>) -> TimeInterval {
        if self.timescale == SourceTimescale::UtcSmear24h {
            return interval;
        }
        let at = interval.midpoint();
        if let Some(a @ (LeapAnnouncement::Insert | LeapAnnouncement::Delete)) = announcement {
            // About the first month end not more than 12 h behind.
            let back = Timestamp::from_nanos(at.as_nanos().saturating_sub(43_200 * 1_000_000_000));
            self.announced = Some((first_month_start_after(back), a));
        }
        let boundary = nearest_month_start(at);
        let remembered = self
            .announced
            .filter(|(b, _)| *b == boundary)
            .map(|(_, a)| a)
            .filter(|_| boundary.checked_duration_since(at).is_none_or(|ahead| ahead <= ANNOUNCEMENT_REACH));
        let (boundary, possible) = self.schedule.possible(at, remembered);
        to_service(interval, boundary, possible)
    }
}

/// The service-timescale interval of UTC interval `[a, b]` near `boundary`.
fn to_service(interval: TimeInterval, boundary: Timestamp, possible: Possible) -> TimeInterval {
    let l = i128::from(boundary.as_nanos());
    let (a, b) = (i128::from(interval.earliest().as_nanos()), i128::from(interval.latest().as_nanos()));
    let mut lo = i128::MAX;
    let mut hi = i128::MIN;
    for d in possible.signs() {
        lo = lo.min(smeared(tau_earliest(a, l, d), l, d, false));
        hi = hi.max(smeared(tau_latest(b, l, d), l, d, true));
    }
    let clamp = |x: i128| Timestamp::from_nanos(u64::try_from(x.max(0)).unwrap_or(u64::MAX));
    TimeInterval::new(clamp(lo), clamp(hi)).unwrap_or(interval)
}

/// The earliest true time (ns since the window's start, W0 = L − 12 h)
/// that POSIX value `p` can name with a leap of sign `d` at `l`.
fn tau_earliest(p: i128, l: i128, d: i128) -> i128 {
    let r = p - (l - HALF_WINDOW_NS);
    match d {
        1 if p >= l => r + NS_PER_SEC,
        -1 if p >= l - NS_PER_SEC => r - NS_PER_SEC,
        _ => r,
    }
}

/// The latest true time (as [`tau_earliest`]) POSIX value `p` can name.
fn tau_latest(p: i128, l: i128, d: i128) -> i128 {
    let r = p - (l - HALF_WINDOW_NS);
    match d {
        1 if p >= l - NS_PER_SEC => r + NS_PER_SEC,
        -1 if p >= l => r - NS_PER_SEC,
        _ => r,
    }
}

/// The service time at true time `tau` (ns since W0) around a leap of
/// sign `d` at `l`: linear over the window's 86 400 + d true seconds.
fn smeared(tau: i128, l: i128, d: i128, round_up: bool) -> i128 {
    let w0 = l - HALF_WINDOW_NS;
    let len = (86_400 + d) * NS_PER_SEC;
    if tau <= 0 {
        w0 + tau
    } else if tau >= len {
        w0 + tau - d * NS_PER_SEC
    } else {
        let num = tau * 86_400;
        let den = 86_400 + d;
        let q = num.div_euclid(den);
        w0 + if round_up && num.rem_euclid(den) != 0 { q + 1 } else { q }
    }
}

/// The service timescale's own rate change during a leap smear: 1/86400
/// (11 574.07 ppb), rounded up.
pub const SMEAR_RATE: Ppb = Ppb::new(11_575);

/// How much to widen the drift bound at `at` for the timescale itself:
/// within 13 hours of a month end where a smear may start or stop (a
/// scheduled leap, or one `schedule` cannot rule out), its rate changes by
/// [`SMEAR_RATE`], which neither the measured frequency nor the wander
/// allowance covers. Zero elsewhere. The window is an hour wider than the
/// smear's on each side, so samples and frequency baselines that straddle
/// an edge are covered too.
pub fn smear_allowance(schedule: &LeapSchedule, at: Timestamp) -> Ppb {
    let boundary = nearest_month_start(at);
    let near = i128::from(at.as_nanos()).abs_diff(i128::from(boundary.as_nanos())) < SMEAR_ALLOWANCE_WINDOW.as_nanos();
    if near && schedule.possible(at, None).1.any_leap() { SMEAR_RATE } else { Ppb::ZERO }
}

/// Half-width of the window in which [`smear_allowance`] applies: 13 hours.
const SMEAR_ALLOWANCE_WINDOW: Duration = Duration::from_secs(13 * 3600);

/// Whether a realtime step of `step` ns, seen between two readings the later
/// of which read `realtime`, is the kernel applying a leap second: ±1 s
/// (within `slack` ns) within two seconds of a month boundary where such a
/// leap is possible. Applied whatever the schedule says: the kernel was
/// told by its discipline, which may know better than an old list, and the
/// reader clock, which every sample is on, does not step with it.
pub fn is_leap_step(step_ns: i128, realtime: Timestamp, slack_ns: i128) -> bool {
    let boundary = i128::from(nearest_month_start(realtime).as_nanos());
    let near = (i128::from(realtime.as_nanos()) - boundary).abs() <= 2 * NS_PER_SEC;
    near && ((step_ns + NS_PER_SEC).abs() <= slack_ns || (step_ns - NS_PER_SEC).abs() <= slack_ns)
}

/// Whether the realtime span `[from, to]` passes within a second of a month
/// boundary, where the kernel may step realtime for a leap second.
pub fn spans_possible_leap_step(from: Timestamp, to: Timestamp) -> bool {
    let near =
        |t: Timestamp| (i128::from(t.as_nanos()) - i128::from(nearest_month_start(t).as_nanos())).abs() <= NS_PER_SEC;
    let (from_b, to_b) = (nearest_month_start(from), nearest_month_start(to));
    near(from) || near(to) || (from < from_b && to >= from_b) || (from < to_b && to >= to_b)
}

/// 00:00:00 UTC on the 1st of the month nearest `at` (the start of its
/// month or of the next).
pub fn nearest_month_start(at: Timestamp) -> Timestamp {
    let t = DateTime::<Utc>::from(at);
    let this =
        NaiveDate::from_ymd_opt(t.year(), t.month(), 1).and_then(|d| d.and_hms_opt(0, 0, 0)).map(|n| n.and_utc());
    let next = this.and_then(|d| d.checked_add_months(chrono::Months::new(1)));
    let this = this.and_then(|d| Timestamp::try_from(d).ok());
    let next = next.and_then(|d| Timestamp::try_from(d).ok());
    match (this, next) {
        (Some(a), Some(b)) => {
            if at.as_nanos().saturating_sub(a.as_nanos()) <= b.as_nanos().saturating_sub(at.as_nanos()) { a } else { b }
        }
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => at,
    }
}

/// The first month start strictly after `at`.
fn first_month_start_after(at: Timestamp) -> Timestamp {
    let t = DateTime::<Utc>::from(at);
    NaiveDate::from_ymd_opt(t.year(), t.month(), 1)
        .and_then(|d| d.checked_add_months(chrono::Months::new(1)))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|n| Timestamp::try_from(n.and_utc()).ok())
        .unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests;
