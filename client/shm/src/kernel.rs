//! The kernel's clock discipline state, read with `adjtimex(2)` and
//! `modes = 0`: a query that changes nothing. Only with `adjtimex` (the
//! daemon's kernel source, `server/src/sources/kernel.rs`, which explains
//! what the fields mean for a bound).

use std::io;

use tsod_proto::{Offset, Timestamp};

/// What one `adjtimex(modes = 0)` call returned, in project units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelClockState {
    /// The call's return value: the clock state (`TIME_OK`, `TIME_INS`,
    /// `TIME_DEL`, `TIME_OOP`, `TIME_WAIT`, `TIME_ERROR`).
    pub state: i32,
    /// `timex.status`: the `STA_*` flags.
    pub status: i32,
    /// `timex.maxerror`: the discipline's maximum error, in microseconds
    /// (the kernel's unit; kept signed as the kernel keeps it).
    pub maxerror_us: i64,
    /// `timex.offset`: what the discipline still has to slew out (scaled to
    /// nanoseconds whether or not `STA_NANO` is set).
    pub offset: Offset,
    /// `timex.time`: the system clock when the kernel answered.
    pub time: Timestamp,
}

/// Why the kernel's clock state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KernelStateError {
    /// `adjtimex` failed (a seccomp filter or container may forbid it).
    #[error("adjtimex failed: {0}; disable the kernel source if this host forbids the call")]
    Os(io::Error),
    /// The system clock reads before 1970 or has a negative sub-second field.
    #[error("the kernel's clock reads {seconds} s + {fraction} (before 1970 or malformed); is the system clock set?")]
    OutOfRange {
        /// `timex.time.tv_sec`.
        seconds: i64,
        /// `timex.time.tv_usec` (nanoseconds with `STA_NANO`).
        fraction: i64,
    },
}

impl From<KernelStateError> for io::Error {
    /// The system call's own error as it was; a bad reading as `InvalidData`.
    fn from(error: KernelStateError) -> Self {
        match error {
            KernelStateError::Os(source) => source,
            bad @ KernelStateError::OutOfRange { .. } => io::Error::new(io::ErrorKind::InvalidData, bad),
        }
    }
}

/// Reads the kernel's clock state (`adjtimex` with `modes = 0`: read only).
#[expect(unsafe_code, reason = "adjtimex is a C function")]
pub fn kernel_clock_state() -> Result<KernelClockState, KernelStateError> {
    // SAFETY: an all-zero timex is a valid value of this plain C struct of
    // integers (modes = 0 asks the kernel to change nothing).
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a valid, writable timex for the duration of the call;
    // the kernel writes only into it and keeps no pointer to it.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return Err(KernelStateError::Os(io::Error::last_os_error()));
    }
    let out_of_range = || KernelStateError::OutOfRange { seconds: tx.time.tv_sec, fraction: tx.time.tv_usec };
    let secs = u64::try_from(tx.time.tv_sec).map_err(|_| out_of_range())?;
    let sub = u64::try_from(tx.time.tv_usec).map_err(|_| out_of_range())?;
    let nano = tx.status & libc::STA_NANO != 0;
    let sub_ns = if nano { sub } else { sub.saturating_mul(1_000) };
    let time = Timestamp::from_nanos(secs.saturating_mul(1_000_000_000).saturating_add(sub_ns));
    let offset = Offset::from_nanos(if nano { tx.offset } else { tx.offset.saturating_mul(1_000) });
    Ok(KernelClockState { state, status: tx.status, maxerror_us: tx.maxerror, offset, time })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_answers_with_the_system_clock() {
        let before = crate::realtime_now().unwrap();
        let k = kernel_clock_state().unwrap();
        let after = crate::realtime_now().unwrap();
        // adjtimex's time has microsecond resolution without STA_NANO.
        assert!(k.time.as_nanos() + 1_000 >= before.as_nanos(), "{k:?} before {before:?}");
        assert!(k.time <= after, "{k:?} after {after:?}");
        assert!((0..=5).contains(&k.state), "a TIME_* state: {}", k.state);
    }
}
