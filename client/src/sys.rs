//! The operating-system facts a reader needs: the clocks and the boot id.
//! The system calls themselves live in `tsod-shm`; this module keeps the
//! `io::Result` signatures the client's callers use (`tsod_client::sys::…`).

use std::io;

use tsod_proto::{MonoInstant, Timestamp};
pub use tsod_shm::{parse_boot_id, this_boot_id};

/// The reader clock, `CLOCK_MONOTONIC_RAW` (SPEC.md §5.2).
#[inline]
pub fn reader_clock_now() -> io::Result<MonoInstant> {
    tsod_shm::reader_clock_now().map_err(to_io)
}

/// The conversion, out of line: `now()` reads this clock on its hot path.
#[cold]
#[inline(never)]
fn to_io(error: tsod_shm::ClockReadError) -> io::Error {
    error.into()
}

/// `CLOCK_MONOTONIC` (slewed by the discipline, stopped during suspend).
#[inline]
pub fn monotonic_now() -> io::Result<MonoInstant> {
    Ok(tsod_shm::monotonic_now()?)
}

/// `CLOCK_REALTIME`, the system clock, as nanoseconds since the Unix epoch.
#[inline]
pub fn realtime_now() -> io::Result<Timestamp> {
    Ok(tsod_shm::realtime_now()?)
}

/// `CLOCK_BOOTTIME`, for the optional suspend check (SPEC.md §5.6).
#[inline]
pub fn boottime_now() -> io::Result<MonoInstant> {
    Ok(tsod_shm::boottime_now()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clocks_read_through_this_module() {
        let a = reader_clock_now().unwrap();
        assert!(reader_clock_now().unwrap() >= a);
        assert!(monotonic_now().unwrap().as_nanos() > 0);
        assert!(boottime_now().unwrap().as_nanos() > 0);
        assert!(realtime_now().unwrap().as_nanos() > 0);
        assert!(this_boot_id().is_ok());
    }
}
