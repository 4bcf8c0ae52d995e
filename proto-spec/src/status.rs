//! Small closed vocabularies shared by the wire format and shared memory:
//! clock status, timescale identifiers, reader-clock instants and drift rates.

use core::fmt;
use core::time::Duration;

use serde::{Deserialize, Serialize};

/// What a site (or a client reading it) may claim about its bound.
///
/// Encoded as one byte on the wire and as a `u32` in shared memory, with the
/// same codes; 0 is never valid, so zeroed memory reads as invalid rather
/// than as a status (SPEC.md §3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClockStatus {
    /// At least the configured number of sources agree; the bound is valid.
    Synchronized,
    /// Fewer agreeing sources than configured (but a majority of the usable
    /// ones agree): the bound is valid, redundancy is reduced.
    Degraded,
    /// Holdover: no source currently usable; the last bound is extrapolated
    /// at the maximum drift rate and is still valid, growing with time.
    FreeRunning,
    /// No majority of sources agrees, or never synchronized: no valid bound.
    Unsynchronized,
    /// The local clock was disturbed (step, suspend, migration, restart)
    /// since the last valid bound: no valid bound until re-synchronized.
    Disrupted,
}

impl ClockStatus {
    /// All statuses, in code order.
    pub const ALL: [Self; 5] =
        [Self::Synchronized, Self::Degraded, Self::FreeRunning, Self::Unsynchronized, Self::Disrupted];

    /// The one-byte code (1..=5).
    pub const fn code(self) -> u8 {
        match self {
            Self::Synchronized => 1,
            Self::Degraded => 2,
            Self::FreeRunning => 3,
            Self::Unsynchronized => 4,
            Self::Disrupted => 5,
        }
    }

    /// The status with this code, or `None` (0 and 6..=255 are invalid).
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Synchronized),
            2 => Some(Self::Degraded),
            3 => Some(Self::FreeRunning),
            4 => Some(Self::Unsynchronized),
            5 => Some(Self::Disrupted),
            _ => None,
        }
    }

    /// Whether an interval published with this status is a valid bound
    /// (`Synchronized`, `Degraded`, `FreeRunning`).
    pub const fn is_bounded(self) -> bool {
        matches!(self, Self::Synchronized | Self::Degraded | Self::FreeRunning)
    }

    /// The kebab-case name used in JSON output and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Synchronized => "synchronized",
            Self::Degraded => "degraded",
            Self::FreeRunning => "free-running",
            Self::Unsynchronized => "unsynchronized",
            Self::Disrupted => "disrupted",
        }
    }
}

impl fmt::Display for ClockStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which timescale a value is on (SPEC.md §2). Version 1 defines one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Timescale {
    /// UTC with each leap second smeared linearly over the 24 hours from
    /// noon UTC before it to noon UTC after it (code 1).
    #[serde(rename = "utc-smear-24h")]
    UtcSmear24h,
}

impl Timescale {
    /// The one-byte code.
    pub const fn code(self) -> u8 {
        match self {
            Self::UtcSmear24h => 1,
        }
    }

    /// The timescale with this code, or `None`.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::UtcSmear24h),
            _ => None,
        }
    }
}

/// A reading of the host's reader clock (`CLOCK_MONOTONIC_RAW` on Linux,
/// SPEC.md §5.2), in nanoseconds. Only meaningful on the host that took it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MonoInstant(u64);

impl MonoInstant {
    /// A reading of `nanos` nanoseconds.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// The reading in nanoseconds.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self - earlier` as signed nanoseconds (negative if `self` is earlier).
    pub fn signed_nanos_since(self, earlier: Self) -> i128 {
        i128::from(self.0) - i128::from(earlier.0)
    }

    /// `self + d`, or `None` on overflow.
    pub fn checked_add(self, d: Duration) -> Option<Self> {
        let d = u64::try_from(d.as_nanos()).ok()?;
        self.0.checked_add(d).map(Self)
    }
}

/// A rate in parts per billion: `1_000` is 1 ppm.
///
/// Used signed for a measured frequency error and unsigned (by the
/// constructor of each field) for a drift *bound*.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ppb(i64);

impl Ppb {
    /// Zero.
    pub const ZERO: Self = Self(0);

    /// `ppb` parts per billion.
    pub const fn new(ppb: i64) -> Self {
        Self(ppb)
    }

    /// `ppm` parts per million.
    pub const fn from_ppm(ppm: i32) -> Self {
        Self(ppm as i64 * 1000)
    }

    /// The value in parts per billion.
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Ppb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ppb", self.0)
    }
}

/// A signed difference between two clocks or timescales, in nanoseconds
/// (e.g. a source's offset from the site's own estimate).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Offset(i64);

impl Offset {
    /// `nanos` nanoseconds.
    pub const fn from_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    /// The offset in nanoseconds.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_round_trip_and_zero_is_invalid() {
        for s in ClockStatus::ALL {
            assert_eq!(ClockStatus::from_code(s.code()), Some(s));
        }
        assert_eq!(ClockStatus::from_code(0), None);
        assert_eq!(ClockStatus::from_code(6), None);
        let bounded: Vec<_> = ClockStatus::ALL.into_iter().filter(|s| s.is_bounded()).collect();
        assert_eq!(bounded, [ClockStatus::Synchronized, ClockStatus::Degraded, ClockStatus::FreeRunning]);
    }

    #[test]
    fn timescale_codes() {
        assert_eq!(Timescale::from_code(1), Some(Timescale::UtcSmear24h));
        assert_eq!(Timescale::from_code(0), None);
    }

    #[test]
    fn signed_difference() {
        let a = MonoInstant::from_nanos(5);
        let b = MonoInstant::from_nanos(u64::MAX);
        assert_eq!(a.signed_nanos_since(b), 5 - i128::from(u64::MAX));
        assert_eq!(b.signed_nanos_since(a), i128::from(u64::MAX) - 5);
    }
}
