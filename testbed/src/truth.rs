//! True time on the testbed, on the service timescale, and what the
//! simulated sources make of it around a leap second.
//!
//! The host's `CLOCK_REALTIME` is true time by definition
//! (docs/ARCHITECTURE.md, "The testbed's truth"), but the host has no leap
//! second near now. A scenario with a `leap` therefore moves the whole
//! cluster's notion of time by a **shift** Δ, a whole number of seconds
//! chosen at start ([`TrueTime::for_leap`]), so that the leap falls at the
//! scenario's instant. Everything that tells time in the cluster applies
//! it: each site's simulated clock (its `offset-ns`), the simulated NTP
//! servers and gpsd ([`crate::sim`]), the truth checker and the TSO
//! checks. Without a leap Δ = 0 and true time is the host's realtime.
//!
//! # The three times
//!
//! With `h` the host's realtime, `T = h + Δ` is **true elapsed time**: SI
//! seconds, equal to POSIX UTC until the leap. For a leap at boundary `L`
//! (POSIX seconds of 00:00:00 UTC on the 1st of a month), sign `d` (+1
//! inserted, −1 deleted):
//!
//! * **POSIX UTC** ([`TrueTime::posix`]), what a `utc` source serves, by
//!   the kernel's convention: an inserted second repeats `[L − 1, L)` —
//!   `T` for `T < L`, `T − 1` from then on; a deleted one skips it — `T`
//!   for `T < L − 1`, `T + 1` from then on. The day ends (the kernel
//!   steps) at `T = L` for an insert, `T = L − 1` for a delete
//!   ([`TrueTime::day_ends`]).
//! * **Service time** ([`TrueTime::service`]), SPEC.md §2: the window
//!   starts at `W0 = L − 43 200` and lasts `86 400 + d` true seconds; with
//!   `τ = T − W0`, service time is `W0 + τ·86 400/(86 400 + d)` inside it,
//!   `T` before it and `T − d` after it (POSIX UTC again). At the middle of
//!   an inserted second (`τ = 43 200.5`) it reads exactly `L`.
//!
//! This is the testbed's own arithmetic, written from the specification
//! and nothing else: it is the ground truth the daemon's conversion is
//! judged against, so it must not share the daemon's code.

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use tsod_proto::Timestamp;

const NS: i128 = 1_000_000_000;
/// Half the smear window (s).
const HALF_WINDOW_S: i128 = 43_200;
/// How long before the day ends a simulated NTP server announces a leap (s).
pub const ANNOUNCE_FOR_S: i128 = 86_400;
/// How far after the host's date the chosen boundary lies at least (days).
pub const MIN_LEAD_DAYS: u64 = 31;

/// Which way a leap second goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeapKind {
    /// A second is inserted (23:59:60): the day has 86 401 s.
    Insert,
    /// The day's last second (23:59:59) is deleted: the day has 86 399 s.
    Delete,
}

impl LeapKind {
    /// `d`: +1 for an insert, −1 for a delete.
    pub fn sign(self) -> i64 {
        match self {
            Self::Insert => 1,
            Self::Delete => -1,
        }
    }

    /// `insert` or `delete`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Delete => "delete",
        }
    }
}

/// A leap second at a month boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leap {
    /// `L`: POSIX seconds of 00:00:00 UTC on the 1st of the month after it.
    pub boundary_s: u64,
    /// Its sign.
    pub kind: LeapKind,
    /// Whether the sources (NTP's leap indicator) and the leap-second list
    /// know of it; else nobody announces it and the list expires before it.
    pub announced: bool,
}

/// True time for a cluster: the shift Δ and the leap, if any. The default
/// is the host's realtime, unshifted, without a leap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrueTime {
    shift_s: i64,
    leap: Option<Leap>,
}

impl TrueTime {
    /// Shifted so that the day before `leap` ends at the host's realtime
    /// `day_ends` (whole seconds: the shift is whole seconds too).
    pub fn for_leap(leap: Leap, day_ends: Timestamp) -> Self {
        let host_s = i64::try_from(day_ends.as_nanos() / 1_000_000_000).unwrap_or(i64::MAX);
        let boundary = i64::try_from(leap.boundary_s).unwrap_or(i64::MAX);
        let ends = if leap.kind == LeapKind::Insert { boundary } else { boundary.saturating_sub(1) };
        Self { shift_s: ends.saturating_sub(host_s), leap: Some(leap) }
    }

    /// Δ, in seconds.
    pub fn shift_s(&self) -> i64 {
        self.shift_s
    }

    /// The leap, if any.
    pub fn leap(&self) -> Option<Leap> {
        self.leap
    }

    /// `T`: true elapsed time at host realtime `host`, ns since the epoch.
    pub fn elapsed(&self, host: Timestamp) -> i128 {
        i128::from(host.as_nanos()) + i128::from(self.shift_s) * NS
    }

    /// POSIX UTC at host realtime `host`, ns since the epoch (what a `utc`
    /// source serves, the kernel's way round a leap).
    pub fn posix(&self, host: Timestamp) -> i128 {
        let t = self.elapsed(host);
        let Some(leap) = self.leap else { return t };
        let ends = self.day_ends_elapsed(leap);
        if t < ends { t } else { t - i128::from(leap.kind.sign()) * NS }
    }

    /// Service time at host realtime `host`, rounded down and up (ns since
    /// the epoch): true time on the timescale tsod publishes.
    pub fn service(&self, host: Timestamp) -> (i128, i128) {
        let t = self.elapsed(host);
        let Some(leap) = self.leap else { return (t, t) };
        let d = i128::from(leap.kind.sign());
        let w0 = (i128::from(leap.boundary_s) - HALF_WINDOW_S) * NS;
        let length = (2 * HALF_WINDOW_S + d) * NS;
        let tau = t - w0;
        if tau <= 0 {
            (t, t)
        } else if tau >= length {
            (t - d * NS, t - d * NS)
        } else {
            let scaled = tau * (2 * HALF_WINDOW_S * NS);
            let denominator = length;
            let floor = scaled.div_euclid(denominator);
            let ceil = floor + i128::from(scaled.rem_euclid(denominator) != 0);
            (w0 + floor, w0 + ceil)
        }
    }

    /// Service time at `host`, rounded down, as a timestamp (the epoch if
    /// before it, the largest timestamp if beyond).
    pub fn truth(&self, host: Timestamp) -> Timestamp {
        to_timestamp(self.service(host).0)
    }

    /// Service time at `host`, rounded up, as a timestamp.
    pub fn truth_ceil(&self, host: Timestamp) -> Timestamp {
        to_timestamp(self.service(host).1)
    }

    /// The host realtime at which the day before the leap ends (the
    /// kernel steps, POSIX repeats or skips its second), if there is one.
    pub fn day_ends(&self) -> Option<Timestamp> {
        let leap = self.leap?;
        Some(to_timestamp(self.day_ends_elapsed(leap) - i128::from(self.shift_s) * NS))
    }

    /// The leap a source that announces leaps announces at `host`: the
    /// leap's kind during the [`ANNOUNCE_FOR_S`] before the day ends, if
    /// the leap is announced; `None` otherwise (and from the end of the day on).
    pub fn announcement(&self, host: Timestamp) -> Option<LeapKind> {
        let leap = self.leap.filter(|l| l.announced)?;
        let t = self.elapsed(host);
        let ends = self.day_ends_elapsed(leap);
        (ends - ANNOUNCE_FOR_S * NS <= t && t < ends).then_some(leap.kind)
    }

    /// `T` at which the day before `leap` ends.
    fn day_ends_elapsed(&self, leap: Leap) -> i128 {
        let boundary = i128::from(leap.boundary_s) * NS;
        if leap.kind == LeapKind::Insert { boundary } else { boundary - NS }
    }
}

fn to_timestamp(ns: i128) -> Timestamp {
    Timestamp::from_nanos(u64::try_from(ns.max(0)).unwrap_or(u64::MAX))
}

/// The boundary (POSIX s) a scenario's leap is put on: 00:00:00 UTC on the
/// first 1 January or 1 July at least [`MIN_LEAD_DAYS`] after `host`, where
/// IERS prefers to schedule leaps and where the daemon's drift allowance
/// for a smear applies; far enough ahead that no real list or source could
/// know of it, and before any real one.
pub fn leap_boundary_after(host: Timestamp) -> u64 {
    let secs = i64::try_from(host.as_nanos() / 1_000_000_000).unwrap_or(i64::MAX);
    let earliest = DateTime::<Utc>::from_timestamp(secs, 0)
        .unwrap_or_default()
        .date_naive()
        .checked_add_days(chrono::Days::new(MIN_LEAD_DAYS))
        .unwrap_or_default();
    let half_year = if earliest.month() <= 6 { 1 } else { 7 };
    let start = NaiveDate::from_ymd_opt(earliest.year(), half_year, 1).unwrap_or_default();
    let mut boundary = start;
    while boundary < earliest {
        boundary = boundary.checked_add_months(Months::new(6)).unwrap_or(earliest);
    }
    u64::try_from(boundary.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    /// 2027-07-01T00:00:00Z.
    const L: u64 = 1_814_400_000;

    fn at(host_s: u64, plus_ns: u64) -> Timestamp {
        Timestamp::from_nanos(host_s * S + plus_ns)
    }

    fn leap(kind: LeapKind) -> Leap {
        Leap { boundary_s: L, kind, announced: true }
    }

    #[test]
    fn without_a_leap_true_time_is_the_host() {
        let t = TrueTime::default();
        let h = at(1_796_000_000, 123);
        assert_eq!((t.elapsed(h), t.posix(h)), (i128::from(h.as_nanos()), i128::from(h.as_nanos())));
        assert_eq!((t.truth(h), t.truth_ceil(h)), (h, h));
        assert_eq!((t.day_ends(), t.announcement(h)), (None, None));
    }

    #[test]
    fn an_inserted_second_repeats_in_posix_and_is_smeared_in_service_time() {
        // The day ends at host 1000 s: the shift is L - 1000 s.
        let t = TrueTime::for_leap(leap(LeapKind::Insert), at(1_000, 0));
        assert_eq!(t.shift_s(), 1_814_399_000);
        assert_eq!(t.day_ends(), Some(at(1_000, 0)));
        let n = |s: u64| i128::from(s) * i128::from(S);
        // POSIX: [L - 1, L) twice.
        assert_eq!(t.posix(at(999, 500_000_000)), n(L - 1) + 500_000_000);
        assert_eq!(t.posix(at(1_000, 0)), n(L - 1));
        assert_eq!(t.posix(at(1_000, 500_000_000)), n(L - 1) + 500_000_000);
        assert_eq!(t.posix(at(1_001, 0)), n(L));
        // Service time: at T = L (the start of 23:59:60) L - 43200/86401 s,
        // 0.499994213 s behind; at the middle of the inserted second exactly L.
        assert_eq!(t.service(at(1_000, 0)), (n(L) - 499_994_214, n(L) - 499_994_213));
        assert_eq!(t.service(at(1_000, 500_000_000)), (n(L), n(L)));
        // The window's ends: service = T before, T - 1 s after.
        let before = TrueTime::for_leap(leap(LeapKind::Insert), at(100_000, 0));
        assert_eq!(before.service(at(100_000 - 43_200, 0)), (n(L - 43_200), n(L - 43_200)));
        assert_eq!(before.service(at(100_000 + 43_201, 0)), (n(L + 43_200), n(L + 43_200)));
        assert_eq!(before.service(at(100_000 + 50_000, 0)).0, n(L + 50_000 - 1));
        // A quarter in: τ = 21600.25 s true is 21600 smeared seconds.
        let (lo, hi) = before.service(at(100_000 - 21_600, 250_000_000));
        assert!(lo <= n(L - 21_600) && n(L - 21_600) <= hi && hi - lo <= 1, "{lo} {hi}");
        // Slower than SI time inside the window, by 1/86401: a true second
        // is 0.999988426 s (plus the rounding of two floors).
        let a = before.service(at(100_000, 0)).0;
        let b = before.service(at(100_001, 0)).0;
        assert_eq!(b - a, 999_988_427);
    }

    #[test]
    fn a_deleted_second_is_skipped_in_posix_and_smeared_faster() {
        // The day ends at host 1000 s, at T = L - 1: the shift is L - 1001 s.
        let t = TrueTime::for_leap(leap(LeapKind::Delete), at(1_000, 0));
        assert_eq!(t.shift_s(), 1_814_398_999);
        assert_eq!(t.day_ends(), Some(at(1_000, 0)));
        let n = |s: u64| i128::from(s) * i128::from(S);
        assert_eq!(t.posix(at(999, 999_999_999)), n(L - 1) - 1);
        assert_eq!(t.posix(at(1_000, 0)), n(L), "23:59:59 is skipped");
        // At T = L - 1, τ = 43199: service = W0 + 43199·86400/86399 = L - 1 + 43199/86399
        // = L - 0.500005787 s.
        assert_eq!(t.service(at(1_000, 0)), (n(L) - 500_005_788, n(L) - 500_005_787));
        // Exactly L at τ = 43199.5, half a second later.
        assert_eq!(t.service(at(1_000, 500_000_000)), (n(L), n(L)));
        // After the window (86399 true s): POSIX again, T + 1.
        let end = 1_000 + 43_200;
        assert_eq!(t.service(at(end, 0)), (n(L + 43_200), n(L + 43_200)));
        assert_eq!(t.service(at(end + 10, 0)).0, n(L + 43_210));
    }

    #[test]
    fn only_announced_leaps_are_announced_and_only_until_the_day_ends() {
        let t = TrueTime::for_leap(leap(LeapKind::Delete), at(100_000, 0));
        assert_eq!(t.announcement(at(100_000 - 86_401, 0)), None);
        assert_eq!(t.announcement(at(100_000 - 86_400, 0)), Some(LeapKind::Delete));
        assert_eq!(t.announcement(at(99_999, 999_999_999)), Some(LeapKind::Delete));
        assert_eq!(t.announcement(at(100_000, 0)), None);
        let quiet = TrueTime::for_leap(Leap { announced: false, ..leap(LeapKind::Insert) }, at(100_000, 0));
        assert_eq!(quiet.announcement(at(99_990, 0)), None);
    }

    #[test]
    fn the_boundary_is_the_next_january_or_july_a_month_ahead() {
        let day = |y, m, d| {
            let secs = NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(12, 0, 0).unwrap().and_utc().timestamp();
            Timestamp::from_nanos(u64::try_from(secs).unwrap() * S)
        };
        let midnight = |y, m| {
            u64::try_from(NaiveDate::from_ymd_opt(y, m, 1).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp())
                .unwrap()
        };
        assert_eq!(leap_boundary_after(day(2026, 12, 5)), midnight(2027, 7));
        assert_eq!(leap_boundary_after(day(2026, 11, 30)), midnight(2027, 1));
        assert_eq!(leap_boundary_after(day(2027, 5, 31)), midnight(2027, 7));
        assert_eq!(leap_boundary_after(day(2027, 6, 1)), midnight(2028, 1));
        assert_eq!(midnight(2027, 7), L);
    }
}
