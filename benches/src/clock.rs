//! Bare `clock_gettime` reads: the baselines `LocalClock::now()` is compared
//! against, and the timer around each measured batch. The only `unsafe` in
//! tsbench.

use std::io;

/// One `clock_gettime(clock)` exactly as an application would call it (the
/// vDSO on Linux): the return code and the time, unconverted, so that a
/// baseline costs the call and nothing else.
#[expect(unsafe_code, reason = "clock_gettime is a C function")]
#[inline]
pub(crate) fn clock_gettime(clock: libc::clockid_t) -> (libc::c_int, libc::timespec) {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the
    // call; clock_gettime writes nothing else.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc, ts)
}

/// The timer: `CLOCK_MONOTONIC_RAW` in nanoseconds. Not slewed by NTP, so a
/// batch measured across a frequency adjustment is not stretched.
#[inline]
pub(crate) fn timer_nanos() -> io::Result<u64> {
    let (rc, ts) = clock_gettime(libc::CLOCK_MONOTONIC_RAW);
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let secs = u64::try_from(ts.tv_sec).map_err(|_| io::Error::other("CLOCK_MONOTONIC_RAW reads before zero"))?;
    let nanos =
        u64::try_from(ts.tv_nsec).map_err(|_| io::Error::other("CLOCK_MONOTONIC_RAW nanoseconds out of range"))?;
    secs.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nanos))
        .ok_or_else(|| io::Error::other("CLOCK_MONOTONIC_RAW overflows 64 bits of nanoseconds"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    #[test]
    fn timer_advances_and_baselines_read() {
        let a = timer_nanos().unwrap();
        let b = timer_nanos().unwrap();
        assert!(b >= a);
        for clock in [libc::CLOCK_REALTIME, libc::CLOCK_MONOTONIC] {
            let (rc, ts) = clock_gettime(clock);
            assert_eq!(rc, 0);
            assert!(ts.tv_sec > 0);
        }
    }
}
