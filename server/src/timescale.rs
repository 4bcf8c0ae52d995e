//! Bringing each source's time onto the service timescale (SPEC.md §2:
//! UTC with a 24-hour noon-to-noon linear leap smear).
//!
//! A source configured as `utc-smear-24h` already serves the service
//! timescale. A source configured as `utc` serves UTC with leap seconds
//! inserted; outside the 24 hours around a leap second the two timescales are
//! identical. Inside them they differ by up to one second, so a `utc`
//! sample is *not used* there: [`LeapGuard`] refuses `utc` samples within
//! 12 hours (plus two minutes, for samples carried into the window) of a
//! month's end whenever the source announced a leap second in the preceding
//! 36 hours — and, since a guard that starts inside such a window cannot
//! know whether a leap just happened, a guard whose first sample falls
//! within the window of a June or December end (where IERS schedules leap
//! seconds) refuses `utc` samples until that window is over. The site then carries on with its smeared
//! sources, its peers, or holdover; a source never contributes a bound it
//! cannot back. (Converting exactly through the smear, instead of refusing,
//! is a later refinement; it needs the leap's direction and instant, which
//! a source can lie about, so refusing is also the safer default.)

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use tsod_proto::{Ppb, Timestamp};

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

/// Half the smear window: a leap's smear runs from 12 h before to 12 h after
/// it; two minutes more cover samples carried into the window.
const HALF_SMEAR: Duration = Duration::from_secs(12 * 3600 + 120);
/// How long an announcement keeps the guard closed around month ends.
const ANNOUNCEMENT_MEMORY: Duration = Duration::from_secs(36 * 3600);

/// Per-source state deciding whether a sample may be used as service time.
#[derive(Clone, Debug)]
pub struct LeapGuard {
    timescale: SourceTimescale,
    last_announcement: Option<Timestamp>,
    /// Set when the guard's first sample fell inside a June/December
    /// window: it has not been watching, so it refuses until the window ends.
    blind_until_outside: Option<bool>,
}

impl LeapGuard {
    /// A guard for a source serving `timescale`.
    pub fn new(timescale: SourceTimescale) -> Self {
        Self { timescale, last_announcement: None, blind_until_outside: None }
    }

    /// Whether a sample whose source time is `at` (with the source's current
    /// announcement) is on the service timescale and may be used.
    pub fn admit(&mut self, at: Timestamp, announcement: LeapAnnouncement) -> bool {
        if self.timescale == SourceTimescale::UtcSmear24h {
            return true;
        }
        let near = near_month_end(at);
        let blind = self.blind_until_outside.get_or_insert_with(|| near && near_june_or_december_end(at));
        if !near {
            *blind = false;
        }
        if *blind {
            return false;
        }
        if announcement != LeapAnnouncement::None {
            self.last_announcement = Some(at);
        }
        let recently_announced = self
            .last_announcement
            .is_some_and(|t| at.checked_duration_since(t).is_none_or(|d| d <= ANNOUNCEMENT_MEMORY));
        !(recently_announced && near)
    }
}

/// The service timescale's own rate change during a leap smear: 1/86400
/// (11 574.07 ppb), rounded up.
pub const SMEAR_RATE: Ppb = Ppb::new(11_575);

/// How much to widen the drift bound at `at` for the timescale itself: near
/// the end of June or December a smear may start or stop (its rate changes
/// by [`SMEAR_RATE`]), which neither the measured frequency nor the wander
/// allowance covers. Zero elsewhere. The window is an hour wider than the
/// smear's on each side, so samples and frequency baselines that straddle
/// an edge are covered too.
pub fn smear_allowance(at: Timestamp) -> Ppb {
    let t = DateTime::<Utc>::from(at);
    let candidates = [(t.year(), 7), (t.year(), 1), (t.year().saturating_add(1), 1)];
    let near = candidates.into_iter().any(|(year, month)| {
        NaiveDate::from_ymd_opt(year, month, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .is_some_and(|b| (t - b.and_utc()).abs().to_std().is_ok_and(|gap| gap < SMEAR_ALLOWANCE_WINDOW))
    });
    if near { SMEAR_RATE } else { Ppb::ZERO }
}

/// Half-width of the window in which [`smear_allowance`] applies: 13 hours.
const SMEAR_ALLOWANCE_WINDOW: Duration = Duration::from_secs(13 * 3600);

/// Whether `at` lies within the window of the end of June or December.
fn near_june_or_december_end(at: Timestamp) -> bool {
    let t = DateTime::<Utc>::from(at);
    near_month_end(at) && matches!((t.month(), t.day() > 15), (6, true) | (7, false) | (12, true) | (1, false))
}

/// Whether `at` lies within 12 hours (and two minutes) of the end of a
/// month (where IERS may place a leap second).
pub fn near_month_end(at: Timestamp) -> bool {
    let t = DateTime::<Utc>::from(at);
    let this_month = NaiveDate::from_ymd_opt(t.year(), t.month(), 1);
    let next_month = if t.month() == 12 {
        NaiveDate::from_ymd_opt(t.year().saturating_add(1), 1, 1)
    } else {
        NaiveDate::from_ymd_opt(t.year(), t.month().saturating_add(1), 1)
    };
    [this_month, next_month].into_iter().flatten().any(|d| {
        let boundary = d.and_hms_opt(0, 0, 0).map(|n| n.and_utc());
        boundary.is_some_and(|b| (t - b).abs().to_std().is_ok_and(|gap| gap < HALF_SMEAR))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(rfc3339: &str) -> Timestamp {
        Timestamp::try_from(DateTime::parse_from_rfc3339(rfc3339).unwrap().with_timezone(&Utc)).unwrap()
    }

    #[test]
    fn month_ends() {
        assert!(near_month_end(ts("2026-12-31T23:59:59Z")));
        assert!(near_month_end(ts("2027-01-01T11:59:59Z")));
        assert!(near_month_end(ts("2026-06-30T12:00:01Z")));
        assert!(near_month_end(ts("2026-06-30T11:59:59Z")), "two minutes of margin");
        assert!(!near_month_end(ts("2026-06-30T11:57:59Z")));
        assert!(!near_month_end(ts("2026-11-23T19:37:27Z")));
        assert!(near_month_end(ts("2026-02-28T23:00:00Z")));
    }

    #[test]
    fn utc_sources_pause_around_an_announced_leap_only() {
        let mut g = LeapGuard::new(SourceTimescale::Utc);
        assert!(g.admit(ts("2026-12-30T20:00:00Z"), LeapAnnouncement::None), "watching before the window");
        assert!(g.admit(ts("2026-12-31T20:00:00Z"), LeapAnnouncement::None), "no leap announced");
        let mut g = LeapGuard::new(SourceTimescale::Utc);
        assert!(g.admit(ts("2026-12-31T00:00:00Z"), LeapAnnouncement::Insert), "announced, not yet near");
        assert!(!g.admit(ts("2026-12-31T13:00:00Z"), LeapAnnouncement::Insert));
        // After the leap the announcement is withdrawn, but the smear goes on until noon.
        assert!(!g.admit(ts("2027-01-01T06:00:00Z"), LeapAnnouncement::None));
        assert!(g.admit(ts("2027-01-01T12:02:01Z"), LeapAnnouncement::None));
    }

    #[test]
    fn a_guard_starting_inside_a_june_or_december_window_waits_it_out() {
        let mut g = LeapGuard::new(SourceTimescale::Utc);
        assert!(!g.admit(ts("2027-01-01T06:00:00Z"), LeapAnnouncement::None), "a leap may just have happened");
        assert!(!g.admit(ts("2027-01-01T11:00:00Z"), LeapAnnouncement::None));
        assert!(g.admit(ts("2027-01-01T12:03:00Z"), LeapAnnouncement::None), "window over");
        assert!(g.admit(ts("2027-06-30T13:00:00Z"), LeapAnnouncement::None), "watching since: no announcement seen");
        let mut other = LeapGuard::new(SourceTimescale::Utc);
        assert!(other.admit(ts("2026-11-30T23:00:00Z"), LeapAnnouncement::None), "November: no blind start");
    }

    #[test]
    fn smear_allowance_covers_june_and_december_ends_only() {
        assert_eq!(smear_allowance(ts("2026-12-31T11:30:00Z")), SMEAR_RATE);
        assert_eq!(smear_allowance(ts("2027-01-01T12:30:00Z")), SMEAR_RATE);
        assert_eq!(smear_allowance(ts("2026-06-30T23:59:59Z")), SMEAR_RATE);
        assert_eq!(smear_allowance(ts("2026-11-30T23:59:59Z")), Ppb::ZERO);
        assert_eq!(smear_allowance(ts("2026-12-31T10:00:00Z")), Ppb::ZERO);
    }

    #[test]
    fn smeared_sources_are_always_admitted() {
        let mut g = LeapGuard::new(SourceTimescale::UtcSmear24h);
        assert!(g.admit(ts("2026-12-31T23:59:59Z"), LeapAnnouncement::Insert));
    }
}
