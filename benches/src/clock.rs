//! Bare clock reads: the baselines `LocalClock::now()` is compared against,
//! and the timer around each measured batch. The system call itself is
//! `tsod-shm`'s; tsbench has no `unsafe`.

use std::io;

use tsod_shm::{ClockId, ClockReadError, Timespec};

/// One `clock_gettime(clock)` as an application would call it (the vDSO on
/// Linux), unconverted, so that a baseline costs the call and nothing
/// else. `None` for a clock tsod does not read (no call is made).
#[inline]
pub(crate) fn clock_gettime(clock: libc::clockid_t) -> Option<Result<Timespec, ClockReadError>> {
    let id = match clock {
        libc::CLOCK_REALTIME => ClockId::Realtime,
        libc::CLOCK_MONOTONIC => ClockId::Monotonic,
        libc::CLOCK_MONOTONIC_RAW => ClockId::MonotonicRaw,
        libc::CLOCK_BOOTTIME => ClockId::Boottime,
        _ => return None,
    };
    Some(tsod_shm::clock_gettime(id))
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
        for clock in [libc::CLOCK_REALTIME, libc::CLOCK_MONOTONIC] {
            let ts = clock_gettime(clock).unwrap().unwrap();
            assert!(ts.since_epoch().unwrap() > Duration::ZERO);
        }
        assert!(clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID).is_none());
    }
}
