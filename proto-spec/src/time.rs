//! Instants on the service timescale and intervals that bound true time.
//!
//! A [`Timestamp`] is a count of nanoseconds since the Unix epoch on the
//! service timescale (SPEC.md §2: UTC with a 24-hour linear leap smear). A
//! [`TimeInterval`] is a claim "true time lies in `[earliest, latest]`"; its
//! invariant `earliest <= latest` is enforced by every constructor.
//!
//! Arithmetic never wraps silently: instant arithmetic is `checked_*`
//! (returns `None` past the representable range), and widening an interval
//! saturates *outwards*, which keeps a valid bound valid (a wider interval
//! still contains true time).

use core::fmt;
use core::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Nanoseconds since 1970-01-01T00:00:00 on the service timescale.
///
/// Range: 1970 to 2554-07-21 (`u64::MAX` ns). Instants before the epoch are
/// not representable; the service never needs them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Self = Self(0);
    /// The last representable instant (2554-07-21T23:34:33.709551615).
    pub const MAX: Self = Self(u64::MAX);

    /// An instant `nanos` nanoseconds after the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + d`, or `None` past [`Timestamp::MAX`].
    pub fn checked_add(self, d: Duration) -> Option<Self> {
        let d = u64::try_from(d.as_nanos()).ok()?;
        self.0.checked_add(d).map(Self)
    }

    /// `self - d`, or `None` before the epoch.
    pub fn checked_sub(self, d: Duration) -> Option<Self> {
        let d = u64::try_from(d.as_nanos()).ok()?;
        self.0.checked_sub(d).map(Self)
    }

    /// `self + d`, clamped to [`Timestamp::MAX`].
    pub fn saturating_add(self, d: Duration) -> Self {
        self.checked_add(d).unwrap_or(Self::MAX)
    }

    /// `self - d`, clamped to the epoch.
    pub fn saturating_sub(self, d: Duration) -> Self {
        self.checked_sub(d).unwrap_or(Self::EPOCH)
    }

    /// How long after `earlier` this instant is, or `None` if it is before.
    pub fn checked_duration_since(self, earlier: Self) -> Option<Duration> {
        self.0.checked_sub(earlier.0).map(Duration::from_nanos)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 with nanoseconds, e.g. `2026-11-23T19:37:27.000000001Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", DateTime::<Utc>::from(*self).format("%Y-%m-%dT%H:%M:%S%.9fZ"))
    }
}

/// A chrono value outside the range of [`Timestamp`] (before 1970 or after 2554).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("date-time outside the timestamp range 1970-01-01 to 2554-07-21")]
pub struct OutOfRange;

impl From<Timestamp> for DateTime<Utc> {
    fn from(t: Timestamp) -> Self {
        // Both parts are in range for every u64 (seconds < 2^35, nanos < 1e9),
        // and chrono covers years up to 262143, so this cannot fail; the
        // fallback only keeps the conversion total.
        let secs = t.0.div_euclid(NANOS_PER_SEC);
        let nanos = t.0.rem_euclid(NANOS_PER_SEC);
        i64::try_from(secs)
            .ok()
            .zip(u32::try_from(nanos).ok())
            .and_then(|(s, n)| DateTime::from_timestamp(s, n))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

impl TryFrom<DateTime<Utc>> for Timestamp {
    type Error = OutOfRange;

    fn try_from(d: DateTime<Utc>) -> Result<Self, OutOfRange> {
        let secs = u64::try_from(d.timestamp()).map_err(|_| OutOfRange)?;
        secs.checked_mul(NANOS_PER_SEC)
            .and_then(|n| n.checked_add(u64::from(d.timestamp_subsec_nanos())))
            .map(Self)
            .ok_or(OutOfRange)
    }
}

/// "True time lies in `[earliest, latest]`", with `earliest <= latest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct TimeInterval {
    earliest: Timestamp,
    latest: Timestamp,
}

/// An attempt to build a [`TimeInterval`] whose `earliest` is after its `latest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("inverted interval: earliest {earliest:?} is after latest {latest:?}")]
pub struct InvertedInterval {
    /// The offending lower end.
    pub earliest: Timestamp,
    /// The offending upper end.
    pub latest: Timestamp,
}

impl TimeInterval {
    /// `[earliest, latest]`, or an error if `earliest > latest`.
    pub fn new(earliest: Timestamp, latest: Timestamp) -> Result<Self, InvertedInterval> {
        if earliest <= latest { Ok(Self { earliest, latest }) } else { Err(InvertedInterval { earliest, latest }) }
    }

    /// `[t, t]`: exact knowledge (only tests and simulations have it).
    pub const fn point(t: Timestamp) -> Self {
        Self { earliest: t, latest: t }
    }

    /// `[midpoint - half_width, midpoint + half_width]`, saturating outwards.
    pub fn around(midpoint: Timestamp, half_width: Duration) -> Self {
        Self::point(midpoint).widened(half_width)
    }

    /// The lower end: true time is not before this.
    pub const fn earliest(&self) -> Timestamp {
        self.earliest
    }

    /// The upper end: true time is not after this.
    pub const fn latest(&self) -> Timestamp {
        self.latest
    }

    /// `latest - earliest`.
    pub fn width(&self) -> Duration {
        Duration::from_nanos(self.latest.0.saturating_sub(self.earliest.0))
    }

    /// Half the width, rounded up (so `midpoint ± half_width` covers the interval).
    pub fn half_width(&self) -> Duration {
        Duration::from_nanos(self.latest.0.saturating_sub(self.earliest.0).div_ceil(2))
    }

    /// The middle, rounded down.
    pub fn midpoint(&self) -> Timestamp {
        // earliest + (latest - earliest) / 2 cannot overflow.
        Timestamp(self.earliest.0.saturating_add(self.latest.0.saturating_sub(self.earliest.0) / 2))
    }

    /// Whether `t` lies in the interval (both ends included).
    pub fn contains(&self, t: Timestamp) -> bool {
        self.earliest <= t && t <= self.latest
    }

    /// Both ends moved outwards by `d`, saturating at the representable range.
    /// Saturation only ever widens, so a true bound stays true.
    #[must_use]
    pub fn widened(&self, d: Duration) -> Self {
        Self { earliest: self.earliest.saturating_sub(d), latest: self.latest.saturating_add(d) }
    }

    /// Every instant of `self` is strictly before every instant of `other`:
    /// an event stamped `self` surely happened before one stamped `other`.
    pub fn definitely_before(&self, other: &Self) -> bool {
        self.latest < other.earliest
    }

    /// Every instant of `self` is strictly after every instant of `other`.
    pub fn definitely_after(&self, other: &Self) -> bool {
        other.definitely_before(self)
    }

    /// The two intervals share at least one instant (their order is unknown).
    pub fn overlaps(&self, other: &Self) -> bool {
        self.earliest <= other.latest && other.earliest <= self.latest
    }

    /// The instants in both, or `None` if they are disjoint.
    pub fn intersection(&self, other: &Self) -> Option<Self> {
        Self::new(self.earliest.max(other.earliest), self.latest.min(other.latest)).ok()
    }
}

impl fmt::Display for TimeInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {}]", self.earliest, self.latest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(n: u64) -> Timestamp {
        Timestamp::from_nanos(n)
    }

    #[test]
    fn constructor_rejects_inverted_intervals() {
        assert!(TimeInterval::new(ts(2), ts(1)).is_err());
        assert_eq!(TimeInterval::new(ts(1), ts(1)).map(|i| i.width()), Ok(Duration::ZERO));
    }

    #[test]
    fn widening_saturates_outwards_and_keeps_containment() {
        let i = TimeInterval::new(ts(5), ts(u64::MAX - 5)).unwrap().widened(Duration::from_nanos(10));
        assert_eq!(i.earliest(), Timestamp::EPOCH);
        assert_eq!(i.latest(), Timestamp::MAX);
        assert!(i.contains(ts(0)) && i.contains(Timestamp::MAX));
    }

    #[test]
    fn ordering_helpers() {
        let a = TimeInterval::new(ts(10), ts(20)).unwrap();
        let b = TimeInterval::new(ts(21), ts(30)).unwrap();
        let c = TimeInterval::new(ts(20), ts(25)).unwrap();
        assert!(a.definitely_before(&b) && b.definitely_after(&a));
        assert!(!a.definitely_before(&c), "touching intervals share an instant");
        assert!(a.overlaps(&c) && c.overlaps(&a) && !a.overlaps(&b));
        assert_eq!(a.intersection(&c), TimeInterval::new(ts(20), ts(20)).ok());
        assert_eq!(a.intersection(&b), None);
    }

    #[test]
    fn half_width_rounds_up_and_midpoint_down() {
        let i = TimeInterval::new(ts(10), ts(13)).unwrap();
        assert_eq!(i.half_width(), Duration::from_nanos(2));
        assert_eq!(i.midpoint(), ts(11));
        let full = TimeInterval::new(Timestamp::EPOCH, Timestamp::MAX).unwrap();
        assert_eq!(full.midpoint(), ts(u64::MAX / 2));
    }

    #[test]
    fn checked_arithmetic_reports_overflow() {
        assert_eq!(Timestamp::MAX.checked_add(Duration::from_nanos(1)), None);
        assert_eq!(Timestamp::EPOCH.checked_sub(Duration::from_nanos(1)), None);
        assert_eq!(Timestamp::MAX.checked_add(Duration::MAX), None);
        assert_eq!(ts(3).checked_duration_since(ts(5)), None);
        assert_eq!(ts(5).checked_duration_since(ts(3)), Some(Duration::from_nanos(2)));
    }

    #[test]
    fn chrono_round_trip() {
        let d = DateTime::parse_from_rfc3339("2026-11-23T19:37:27.123456789Z").unwrap().with_timezone(&Utc);
        let t = Timestamp::try_from(d).unwrap();
        assert_eq!(t.as_nanos(), 1_795_462_647_123_456_789);
        assert_eq!(DateTime::<Utc>::from(t), d);
        assert_eq!(t.to_string(), "2026-11-23T19:37:27.123456789Z");
        let before_epoch = DateTime::parse_from_rfc3339("1969-12-31T23:59:59Z").unwrap().with_timezone(&Utc);
        assert_eq!(Timestamp::try_from(before_epoch), Err(OutOfRange));
        assert_eq!(DateTime::<Utc>::from(Timestamp::MAX).to_rfc3339(), "2554-07-21T23:34:33.709551615+00:00");
    }
}
