//! Hybrid timestamps: one `u64` for HLC, TSO and commit-wait timestamps.
//!
//! Layout (SPEC.md §3.3), identical to YugabyteDB's `HybridTime` so values
//! interoperate: the upper 52 bits are microseconds since the Unix epoch on
//! the service timescale, the lower 12 bits a logical counter. Comparing two
//! hybrid timestamps is comparing the raw `u64`s.
//!
//! The physical part ranges up to 2^52 − 1 µs after the epoch, i.e. until
//! 2112-09-17T23:53:47.370495Z (hence "valid until 2112"). Incrementing the raw
//! value carries a logical overflow into the physical part (4096 logical
//! ticks then advance physical time by one microsecond); past
//! [`HybridTimestamp::MAX`] every operation returns `None` or an error, never
//! a wrapped value.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::time::{TimeInterval, Timestamp};

/// A 52-bit-microsecond, 12-bit-logical hybrid timestamp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HybridTimestamp(u64);

/// A hybrid timestamp could not be formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HybridError {
    /// The physical part does not fit in 52 bits (after 2112-09-17).
    #[error("physical time {0} µs is past the hybrid timestamp range (year 2112)")]
    PhysicalOutOfRange(u64),
    /// The logical part does not fit in 12 bits.
    #[error("logical counter {0} exceeds 4095")]
    LogicalOutOfRange(u16),
}

impl HybridTimestamp {
    /// Bits used by the logical counter.
    pub const LOGICAL_BITS: u32 = 12;
    /// Largest logical value (4095).
    pub const MAX_LOGICAL: u16 = (1 << Self::LOGICAL_BITS) - 1;
    /// Largest physical value in microseconds (2^52 − 1).
    pub const MAX_PHYSICAL_MICROS: u64 = (1 << (64 - Self::LOGICAL_BITS)) - 1;
    /// The smallest hybrid timestamp (epoch, logical 0).
    pub const MIN: Self = Self(0);
    /// The largest hybrid timestamp.
    pub const MAX: Self = Self(u64::MAX);

    /// From the raw encoding. Every `u64` is a valid hybrid timestamp.
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw encoding (what goes on the wire and into databases).
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// From a physical time in microseconds and a logical counter.
    pub fn from_parts(physical_micros: u64, logical: u16) -> Result<Self, HybridError> {
        if physical_micros > Self::MAX_PHYSICAL_MICROS {
            return Err(HybridError::PhysicalOutOfRange(physical_micros));
        }
        if logical > Self::MAX_LOGICAL {
            return Err(HybridError::LogicalOutOfRange(logical));
        }
        Ok(Self((physical_micros << Self::LOGICAL_BITS) | u64::from(logical)))
    }

    /// The physical part, microseconds since the epoch.
    pub const fn physical_micros(self) -> u64 {
        self.0 >> Self::LOGICAL_BITS
    }

    /// The logical part.
    #[expect(clippy::cast_possible_truncation, reason = "masked to 12 bits, so the cast is exact")]
    pub const fn logical(self) -> u16 {
        (self.0 & Self::MAX_LOGICAL as u64) as u16
    }

    /// The hybrid timestamp at the start of the microsecond containing `t`
    /// (physical = ⌊t / 1000⌋, logical 0): never after `t`.
    pub fn from_timestamp_floor(t: Timestamp) -> Result<Self, HybridError> {
        Self::from_parts(t.as_nanos() / 1000, 0)
    }

    /// The hybrid timestamp at the first microsecond boundary at or after `t`
    /// (physical = ⌈t / 1000⌉, logical 0): never before `t`.
    pub fn from_timestamp_ceil(t: Timestamp) -> Result<Self, HybridError> {
        Self::from_parts(t.as_nanos().div_ceil(1000), 0)
    }

    /// The instants this timestamp's physical microsecond covers:
    /// `[physical × 1000, physical × 1000 + 999]` ns. An event stamped `h`
    /// is surely in the past once `now().earliest > h.time_range().latest()`.
    pub fn time_range(self) -> TimeInterval {
        // physical < 2^52, so × 1000 + 999 < 2^62: no overflow.
        let start = self.physical_micros().saturating_mul(1000);
        let start_ts = Timestamp::from_nanos(start);
        TimeInterval::new(start_ts, Timestamp::from_nanos(start.saturating_add(999)))
            .unwrap_or(TimeInterval::point(start_ts))
    }

    /// The next hybrid timestamp (raw + 1; logical overflow carries into the
    /// physical part), or `None` after [`HybridTimestamp::MAX`].
    pub fn checked_next(self) -> Option<Self> {
        self.0.checked_add(1).map(Self)
    }

    /// The timestamp `n` ticks later, or `None` past [`HybridTimestamp::MAX`].
    pub fn checked_add_ticks(self, n: u64) -> Option<Self> {
        self.0.checked_add(n).map(Self)
    }
}

impl fmt::Display for HybridTimestamp {
    /// `PHYSICAL_MICROS.LOGICAL`, e.g. `1795462647123456.7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.physical_micros(), self.logical())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_yugabyte_hybrid_time() {
        // YugabyteDB: HybridTime::FromMicrosecondsAndLogicalValue(m, l) == (m << 12) | l.
        let h = HybridTimestamp::from_parts(1_795_462_647_123_456, 7).unwrap();
        assert_eq!(h.raw(), (1_795_462_647_123_456 << 12) | 7);
        assert_eq!((h.physical_micros(), h.logical()), (1_795_462_647_123_456, 7));
    }

    #[test]
    fn range_ends_in_2112() {
        let last = HybridTimestamp::from_parts(HybridTimestamp::MAX_PHYSICAL_MICROS, 4095).unwrap();
        assert_eq!(last, HybridTimestamp::MAX);
        let end = chrono::DateTime::<chrono::Utc>::from(last.time_range().latest());
        assert_eq!(end.to_rfc3339(), "2112-09-17T23:53:47.370495999+00:00");
        assert!(HybridTimestamp::from_parts(HybridTimestamp::MAX_PHYSICAL_MICROS + 1, 0).is_err());
        assert!(HybridTimestamp::from_parts(0, 4096).is_err());
    }

    #[test]
    fn logical_overflow_carries_into_physical() {
        let h = HybridTimestamp::from_parts(10, 4095).unwrap();
        let n = h.checked_next().unwrap();
        assert_eq!((n.physical_micros(), n.logical()), (11, 0));
        assert_eq!(HybridTimestamp::MAX.checked_next(), None);
        assert_eq!(HybridTimestamp::MAX.checked_add_ticks(1), None);
    }

    #[test]
    fn rounding_from_timestamps() {
        let t = Timestamp::from_nanos(1_500);
        assert_eq!(HybridTimestamp::from_timestamp_floor(t).unwrap().physical_micros(), 1);
        assert_eq!(HybridTimestamp::from_timestamp_ceil(t).unwrap().physical_micros(), 2);
        let exact = Timestamp::from_nanos(2_000);
        assert_eq!(HybridTimestamp::from_timestamp_ceil(exact).unwrap().physical_micros(), 2);
        let r = HybridTimestamp::from_parts(2, 5).unwrap().time_range();
        assert_eq!((r.earliest().as_nanos(), r.latest().as_nanos()), (2_000, 2_999));
        // Timestamps past 2112 have no hybrid form.
        assert!(HybridTimestamp::from_timestamp_floor(Timestamp::MAX).is_err());
    }
}
