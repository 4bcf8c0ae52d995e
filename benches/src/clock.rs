//! Bare clock reads: the baselines `LocalClock::now()` is compared against,
//! and the timer around each measured batch. The system call itself is
//! `tsod-shm`'s; tsbench has no `unsafe`.

use std::io;

use tsod_shm::{ClockId, ClockReadError, Timespec};

/// One `clock_gettime(clock)` as an application would call it (the vDSO on
/// Linux), unconverted, so that a baseline costs the call and nothing else.
#[inline]
pub(crate) fn clock_gettime(clock: ClockId) -> Result<Timespec, ClockReadError> {
    tsod_shm::clock_gettime(clock)
}

/// The timer: `CLOCK_MONOTONIC_RAW` in nanoseconds. Not slewed by NTP, so a
/// batch measured across a frequency adjustment is not stretched.
#[inline]
pub(crate) fn timer_nanos() -> io::Result<u64> {
    Ok(tsod_shm::reader_clock_now()?.as_nanos())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use std::time::Duration;

    use super::*;

    #[test]
    fn timer_advances_and_baselines_read() {
        let a = timer_nanos().unwrap();
        let b = timer_nanos().unwrap();
        assert!(b >= a);
        for clock in [ClockId::Realtime, ClockId::Monotonic] {
            let ts = clock_gettime(clock).unwrap();
            assert!(ts.since_epoch().unwrap() > Duration::ZERO);
        }
    }
}
