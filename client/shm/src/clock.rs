//! Clock reads: `clock_gettime` for the four clocks tsod uses, as project
//! types. On Linux the call goes through the vDSO: no system call, a few
//! nanoseconds, which is why [`crate::ReadMapping`]'s readers can afford one
//! per `now()`.
//!
//! * `CLOCK_MONOTONIC_RAW`, the reader clock (SPEC.md §5.2): not slewed by
//!   any discipline, stopped during suspend. [`reader_clock_now`].
//! * `CLOCK_MONOTONIC`: slewed by the discipline, stopped during suspend.
//! * `CLOCK_BOOTTIME`: like `CLOCK_MONOTONIC` but counting suspend, for the
//!   suspend check of SPEC.md §5.6.
//! * `CLOCK_REALTIME`: the system clock, nanoseconds since the Unix epoch,
//!   hence a [`Timestamp`] rather than a [`MonoInstant`].

use std::fmt;
use std::io;
use std::time::Duration;

use tsod_proto::{MonoInstant, Timestamp};

/// A clock `clock_gettime` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClockId {
    /// `CLOCK_REALTIME`, the system clock.
    Realtime,
    /// `CLOCK_MONOTONIC`.
    Monotonic,
    /// `CLOCK_MONOTONIC_RAW`, the reader clock.
    MonotonicRaw,
    /// `CLOCK_BOOTTIME`.
    Boottime,
}

impl ClockId {
    /// Every clock, for tests and tools that read them all.
    pub const ALL: [Self; 4] = [Self::Realtime, Self::Monotonic, Self::MonotonicRaw, Self::Boottime];

    /// The C name, as in `clock_gettime(2)`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Realtime => "CLOCK_REALTIME",
            Self::Monotonic => "CLOCK_MONOTONIC",
            Self::MonotonicRaw => "CLOCK_MONOTONIC_RAW",
            Self::Boottime => "CLOCK_BOOTTIME",
        }
    }

    #[inline]
    const fn raw(self) -> libc::clockid_t {
        match self {
            Self::Realtime => libc::CLOCK_REALTIME,
            Self::Monotonic => libc::CLOCK_MONOTONIC,
            Self::MonotonicRaw => libc::CLOCK_MONOTONIC_RAW,
            Self::Boottime => libc::CLOCK_BOOTTIME,
        }
    }
}

impl fmt::Display for ClockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One reading as `clock_gettime` returned it, unconverted: seconds and
/// nanoseconds since the clock's epoch (boot for the monotonic clocks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timespec {
    seconds: libc::time_t,
    nanoseconds: libc::c_long,
}

impl Timespec {
    /// The time since the clock's epoch, or `None` if the kernel returned a
    /// negative or non-normalized value.
    pub fn since_epoch(self) -> Option<Duration> {
        let secs = u64::try_from(self.seconds).ok()?;
        let nanos = u32::try_from(self.nanoseconds).ok().filter(|n| *n < 1_000_000_000)?;
        Some(Duration::new(secs, nanos))
    }

    /// Nanoseconds since the epoch, if they fit 64 bits (until the year 2554).
    #[inline]
    fn nanos(self) -> Option<u64> {
        let secs = u64::try_from(self.seconds).ok()?;
        let nanos = u64::try_from(self.nanoseconds).ok()?;
        secs.checked_mul(1_000_000_000)?.checked_add(nanos)
    }
}

/// Why a clock gave no reading.
#[derive(Debug, thiserror::Error)]
pub enum ClockReadError {
    /// `clock_gettime` failed: this kernel does not offer the clock (Linux
    /// has all four since 2.6.39).
    #[error("cannot read {clock}: {source}; tsod needs Linux 2.6.39 or later")]
    Os {
        /// The clock asked for.
        clock: ClockId,
        /// The error `clock_gettime` set.
        source: io::Error,
    },
    /// The reading is negative or beyond 64 bits of nanoseconds: the clock
    /// is set before its epoch or after the year 2554 (check the system
    /// clock's setting).
    #[error("{clock} reads {reading:?}, outside 0 to 2^64 ns since its epoch; is the system clock set?")]
    OutOfRange {
        /// The clock read.
        clock: ClockId,
        /// What it returned.
        reading: Timespec,
    },
}

impl From<ClockReadError> for io::Error {
    /// The system call's own error as it was (its `errno` kept); an
    /// out-of-range reading as `InvalidData`.
    fn from(error: ClockReadError) -> Self {
        match error {
            ClockReadError::Os { source, .. } => source,
            out_of_range @ ClockReadError::OutOfRange { .. } => {
                io::Error::new(io::ErrorKind::InvalidData, out_of_range)
            }
        }
    }
}

/// One bare `clock_gettime(clock)`, as an application calling the C
/// function gets it: the benchmarks' baseline. Use the typed reads below
/// for anything else.
#[expect(unsafe_code, reason = "clock_gettime is a C function")]
#[inline]
pub fn clock_gettime(clock: ClockId) -> Result<Timespec, ClockReadError> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the
    // call; clock_gettime writes nothing else and keeps no pointer to it.
    let rc = unsafe { libc::clock_gettime(clock.raw(), &mut ts) };
    if rc != 0 {
        return Err(os_error(clock));
    }
    Ok(Timespec { seconds: ts.tv_sec, nanoseconds: ts.tv_nsec })
}

/// The error of a failed `clock_gettime`: out of line, so the read that
/// every `now()` makes stays as small as the bare call.
#[cold]
#[inline(never)]
fn os_error(clock: ClockId) -> ClockReadError {
    ClockReadError::Os { clock, source: io::Error::last_os_error() }
}

/// `clock` as nanoseconds since its epoch.
#[inline]
fn read_nanos(clock: ClockId) -> Result<u64, ClockReadError> {
    let reading = clock_gettime(clock)?;
    match reading.nanos() {
        Some(nanos) => Ok(nanos),
        None => Err(out_of_range(clock, reading)),
    }
}

#[cold]
#[inline(never)]
fn out_of_range(clock: ClockId, reading: Timespec) -> ClockReadError {
    ClockReadError::OutOfRange { clock, reading }
}

/// The reader clock, `CLOCK_MONOTONIC_RAW` (SPEC.md §5.2).
#[inline]
pub fn reader_clock_now() -> Result<MonoInstant, ClockReadError> {
    read_nanos(ClockId::MonotonicRaw).map(MonoInstant::from_nanos)
}

/// `CLOCK_MONOTONIC` (slewed by the discipline, stopped during suspend).
#[inline]
pub fn monotonic_now() -> Result<MonoInstant, ClockReadError> {
    read_nanos(ClockId::Monotonic).map(MonoInstant::from_nanos)
}

/// `CLOCK_BOOTTIME`, for the suspend check (SPEC.md §5.6).
#[inline]
pub fn boottime_now() -> Result<MonoInstant, ClockReadError> {
    read_nanos(ClockId::Boottime).map(MonoInstant::from_nanos)
}

/// `CLOCK_REALTIME`, the system clock, as a time since the Unix epoch.
#[inline]
pub fn realtime_now() -> Result<Timestamp, ClockReadError> {
    read_nanos(ClockId::Realtime).map(Timestamp::from_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clock_reads_and_the_monotonic_ones_never_go_back() {
        for clock in ClockId::ALL {
            let reading = clock_gettime(clock).unwrap();
            assert!(reading.since_epoch().is_some_and(|d| d > Duration::ZERO), "{clock}: {reading:?}");
        }
        type Read = fn() -> Result<MonoInstant, ClockReadError>;
        for read in [reader_clock_now as Read, monotonic_now, boottime_now] {
            let mut last = read().unwrap();
            for _ in 0..1_000 {
                let next = read().unwrap();
                assert!(next >= last);
                last = next;
            }
        }
    }

    #[test]
    fn boottime_counts_at_least_what_the_reader_clock_counts() {
        let raw = reader_clock_now().unwrap();
        let boot = boottime_now().unwrap();
        // BOOTTIME adds suspend to a slewed monotonic clock; both started at boot.
        assert!(boot.as_nanos() >= raw.as_nanos() / 2, "{boot:?} vs {raw:?}");
    }

    #[test]
    fn realtime_is_after_2020_and_agrees_with_std() {
        let ours = realtime_now().unwrap();
        let std_now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        assert!(ours.as_nanos() > 1_577_836_800_000_000_000);
        assert!(u128::from(ours.as_nanos()).abs_diff(std_now.as_nanos()) < 1_000_000_000);
    }

    #[test]
    fn out_of_range_readings_are_refused() {
        let negative = Timespec { seconds: -1, nanoseconds: 0 };
        assert_eq!(negative.nanos(), None);
        assert_eq!(negative.since_epoch(), None);
        let far = Timespec { seconds: 18_446_744_074, nanoseconds: 0 };
        assert_eq!(far.nanos(), None, "past 2^64 ns");
        assert_eq!(Timespec { seconds: 1, nanoseconds: 1_000_000_000 }.since_epoch(), None);
        assert_eq!(Timespec { seconds: 2, nanoseconds: 5 }.nanos(), Some(2_000_000_005));
        let e = io::Error::from(ClockReadError::OutOfRange { clock: ClockId::Realtime, reading: negative });
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("CLOCK_REALTIME"), "{e}");
    }
}
