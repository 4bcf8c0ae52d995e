//! The two operating-system facts a reader needs: the reader clock and the
//! boot id. This is the crate's only `unsafe` besides the segment mapping.

use std::io;

use tsod_proto::{MonoInstant, Timestamp};

/// Reads `clock` with `clock_gettime` (the vDSO on Linux: no system call).
#[expect(unsafe_code, reason = "clock_gettime is a C function")]
fn read_clock(clock: libc::clockid_t) -> io::Result<MonoInstant> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the
    // call; clock_gettime writes nothing else.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let secs = u64::try_from(ts.tv_sec).map_err(|_| io::Error::other("clock reads before its epoch"))?;
    let nanos = u64::try_from(ts.tv_nsec).map_err(|_| io::Error::other("clock nanoseconds out of range"))?;
    secs.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nanos))
        .map(MonoInstant::from_nanos)
        .ok_or_else(|| io::Error::other("clock reading overflows 64 bits"))
}

/// The reader clock, `CLOCK_MONOTONIC_RAW` (SPEC.md §5.2).
pub fn reader_clock_now() -> io::Result<MonoInstant> {
    read_clock(libc::CLOCK_MONOTONIC_RAW)
}

/// `CLOCK_MONOTONIC` (slewed by the discipline, stopped during suspend).
pub fn monotonic_now() -> io::Result<MonoInstant> {
    read_clock(libc::CLOCK_MONOTONIC)
}

/// `CLOCK_REALTIME`, the system clock, as nanoseconds since the Unix epoch.
pub fn realtime_now() -> io::Result<Timestamp> {
    read_clock(libc::CLOCK_REALTIME).map(|t| Timestamp::from_nanos(t.as_nanos()))
}

/// `CLOCK_BOOTTIME`, for the optional suspend check (SPEC.md §5.6).
pub fn boottime_now() -> io::Result<MonoInstant> {
    read_clock(libc::CLOCK_BOOTTIME)
}

/// `/proc/sys/kernel/random/boot_id` as 16 bytes.
pub fn this_boot_id() -> io::Result<[u8; 16]> {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?;
    parse_boot_id(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed boot_id"))
}

/// A UUID's 32 hex digits (dashes and whitespace ignored) as 16 bytes.
pub fn parse_boot_id(text: &str) -> Option<[u8; 16]> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b'-' && !b.is_ascii_whitespace()).collect();
    if digits.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let s = core::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_clock_advances() {
        let a = reader_clock_now().unwrap();
        let b = reader_clock_now().unwrap();
        assert!(b >= a);
        assert!(boottime_now().unwrap().as_nanos() > 0);
    }

    #[test]
    fn boot_id_parses() {
        let id = parse_boot_id("6f1c2a3b-4c5d-4e6f-8091-a2b3c4d5e6f7\n").unwrap();
        assert_eq!(id[0], 0x6f);
        assert_eq!(id[15], 0xf7);
        assert_eq!(parse_boot_id("6f1c"), None);
        assert_eq!(parse_boot_id("zz1c2a3b-4c5d-4e6f-8091-a2b3c4d5e6f7"), None);
        assert!(this_boot_id().is_ok());
    }
}
