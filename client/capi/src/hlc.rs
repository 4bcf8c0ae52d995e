//! The hybrid logical clock for C (`tsod_hlc_*`), on a local clock, and
//! what a hybrid timestamp encodes (`tsod_hts_*`).
//!
//! A hybrid timestamp (`tsod_hts`) is `tsod_proto::HybridTimestamp`'s raw
//! `uint64_t`, unchanged (SPEC.md §3.3, YugabyteDB's `HybridTime` layout):
//! the upper 52 bits are microseconds since the Unix epoch on tsod's
//! timescale, the lower 12 bits a logical counter. Comparing two of them is
//! comparing the integers; the TSO's timestamps are the same type.
//!
//! The HLC's promises are the Rust client's (`tsod_client::hlc`): every
//! timestamp it issues is greater than every one it issued before, whichever
//! thread asked; its physical part is at least the microsecond of the
//! `earliest` of an interval read during the call; and there is none while
//! the clock has no bound.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use tsod_client::hlc::{DEFAULT_MAX_OFFSET, HybridClock};
use tsod_client::{HybridTimestamp, LocalClock};

use crate::clock::{tsod_clock, tsod_commit_wait, tsod_interval};
use crate::error::{Error, guard, tsod_error};
use crate::ffi;

/// A hybrid timestamp: 52 bits of microseconds since the Unix epoch (tsod's
/// timescale) above 12 bits of logical counter. Ordered as integers.
#[expect(non_camel_case_types, reason = "the C name, as the header shows it")]
pub type tsod_hts = u64;

/// Bits of a `tsod_hts` that hold the logical counter (the low 12).
/// (A literal, for the header; a test checks it against the Rust type.)
pub const TSOD_HTS_LOGICAL_BITS: u32 = 12;

/// A hybrid logical clock (opaque). Made by `tsod_hlc_new`, freed by
/// `tsod_hlc_free`. Thread-safe and lock-free: any number of threads may
/// use one handle at once, and they share one total order.
#[expect(non_camel_case_types, reason = "the C name, as the header shows it")]
#[derive(Debug)]
pub struct tsod_hlc {
    hlc: HybridClock<Arc<LocalClock>>,
}

/// Makes a hybrid logical clock on `clock` and returns it in `*out`.
///
/// `max_offset_ns` is the furthest a received timestamp (or one given to
/// `tsod_hlc_commit_wait`) may start after the `latest_ns` of the current
/// interval before it is refused with `TSOD_ERR_TOO_FAR_AHEAD`; 0 means the
/// default, 250 ms.
///
/// Ownership: `clock` stays the caller's; the HLC shares the clock, so
/// `clock` may be closed before or after the HLC is freed. On `TSOD_OK`,
/// `*out` is a new handle the caller owns and frees with `tsod_hlc_free`;
/// on failure `*out` is left unchanged.
///
/// Returns `TSOD_OK` or `TSOD_ERR_NULL_POINTER`.
///
/// # Safety
///
/// `clock` is NULL or a live handle from `tsod_clock_open`;
/// `out` is NULL or points to writable memory for a `tsod_hlc *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsod_hlc_new(
    clock: *const tsod_clock,
    max_offset_ns: u64,
    out: *mut *mut tsod_hlc,
) -> tsod_error {
    guard(|| {
        // SAFETY: `clock` is NULL or a live handle (this function's contract).
        let clock = unsafe { ffi::handle(clock, "clock") }?;
        let out = ffi::out_param(out, "out")?;
        let max_offset = if max_offset_ns == 0 { DEFAULT_MAX_OFFSET } else { Duration::from_nanos(max_offset_ns) };
        let hlc = HybridClock::with_max_offset(Arc::clone(&clock.clock), max_offset);
        let handle = Box::into_raw(Box::new(tsod_hlc { hlc }));
        // SAFETY: `out` points to a writable `tsod_hlc *` (this function's contract).
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Frees an HLC handle. NULL is ignored. The caller must not use `hlc`
/// afterwards, nor free it while another thread is inside a call on it.
///
/// # Safety
///
/// `hlc` is NULL or a handle from `tsod_hlc_new` that was not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsod_hlc_free(hlc: *mut tsod_hlc) {
    if hlc.is_null() {
        return;
    }
    let dropped = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: a non-NULL `hlc` was returned by tsod_hlc_new and is freed
        // only here, once, when no call uses it (this function's contract).
        drop(unsafe { Box::from_raw(hlc) });
    }));
    if let Err(payload) = dropped {
        std::mem::forget(payload);
    }
}

/// Runs `issue` on the HLC behind `hlc` and writes its timestamp to `out`.
fn issue(
    hlc: *const tsod_hlc,
    out: *mut tsod_hts,
    issue: impl FnOnce(&HybridClock<Arc<LocalClock>>) -> Result<HybridTimestamp, Error>,
) -> tsod_error {
    guard(|| {
        // SAFETY: `hlc` is NULL or a live handle (the exported function's contract).
        let hlc = unsafe { ffi::handle(hlc, "hlc") }?;
        let out = ffi::out_param(out, "out")?;
        let ts = issue(&hlc.hlc)?;
        // SAFETY: `out` points to a writable `tsod_hts` (the exported function's contract).
        unsafe { out.write(ts.raw()) };
        Ok(())
    })
}

/// A timestamp for a local event: greater than every one this HLC issued
/// before, at least the microsecond of the current interval's `earliest`.
///
/// Ownership: `hlc` stays the caller's; `*out` is written on `TSOD_OK` only.
///
/// Returns `TSOD_OK`, `TSOD_ERR_NULL_POINTER`, `TSOD_ERR_EXHAUSTED`,
/// `TSOD_ERR_OUT_OF_RANGE`, and the errors of `tsod_clock_now`.
///
/// # Safety
///
/// `hlc` is NULL or a live handle from `tsod_hlc_new`;
/// `out` is NULL or points to writable memory for a `tsod_hts`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsod_hlc_now(hlc: *const tsod_hlc, out: *mut tsod_hts) -> tsod_error {
    issue(hlc, out, |hlc| Ok(hlc.now()?))
}

/// Merges `received`, a timestamp from another node's message: the result
/// is greater than `received` and than every timestamp this HLC issued
/// before. A `received` more than the maximum offset ahead of the current
/// `latest` is refused with `TSOD_ERR_TOO_FAR_AHEAD` and changes nothing.
///
/// Ownership: as for `tsod_hlc_now`.
///
/// Returns the codes of `tsod_hlc_now`, and `TSOD_ERR_TOO_FAR_AHEAD`.
///
/// # Safety
///
/// `hlc` is NULL or a live handle from `tsod_hlc_new`;
/// `out` is NULL or points to writable memory for a `tsod_hts`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsod_hlc_update(hlc: *const tsod_hlc, received: tsod_hts, out: *mut tsod_hts) -> tsod_error {
    issue(hlc, out, |hlc| Ok(hlc.update(HybridTimestamp::from_raw(received))?))
}

/// A commit timestamp (Spanner's recipe): its whole microsecond is at or
/// after the current interval's `latest`, and it is greater than every
/// timestamp this HLC issued before. Commit-wait on it
/// (`tsod_hlc_commit_wait`) before making the commit visible.
///
/// Ownership: as for `tsod_hlc_now`.
///
/// Returns the codes of `tsod_hlc_now`.
///
/// # Safety
///
/// `hlc` is NULL or a live handle from `tsod_hlc_new`;
/// `out` is NULL or points to writable memory for a `tsod_hts`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsod_hlc_commit_timestamp(hlc: *const tsod_hlc, out: *mut tsod_hts) -> tsod_error {
    issue(hlc, out, |hlc| Ok(hlc.commit_timestamp()?))
}

/// The last timestamp this HLC issued (0 before the first). Another thread
/// may issue a larger one at any moment.
///
/// Ownership: as for `tsod_hlc_now`.
///
/// Returns `TSOD_OK` or `TSOD_ERR_NULL_POINTER`.
///
/// # Safety
///
/// `hlc` is NULL or a live handle from `tsod_hlc_new`;
/// `out` is NULL or points to writable memory for a `tsod_hts`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsod_hlc_last_issued(hlc: *const tsod_hlc, out: *mut tsod_hts) -> tsod_error {
    issue(hlc, out, |hlc| Ok(hlc.last_issued()))
}

/// Commit-wait on a hybrid timestamp, blocking: returns once an interval
/// read shows `earliest_ns` past the end of `ts`'s microsecond, so that
/// every event stamped `ts` is surely in the past. A `ts` more than the
/// maximum offset ahead is refused (`TSOD_ERR_TOO_FAR_AHEAD`) rather than
/// waited for; a clock that loses its bound fails the wait within 10 ms.
///
/// Ownership: `hlc` stays the caller's; `*out` is written on `TSOD_OK` only.
///
/// Returns `TSOD_OK`, `TSOD_ERR_NULL_POINTER`, `TSOD_ERR_TOO_FAR_AHEAD`,
/// and the errors of `tsod_clock_now`.
///
/// # Safety
///
/// `hlc` is NULL or a live handle from `tsod_hlc_new`;
/// `out` is NULL or points to writable memory for a `tsod_commit_wait`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsod_hlc_commit_wait(
    hlc: *const tsod_hlc,
    ts: tsod_hts,
    out: *mut tsod_commit_wait,
) -> tsod_error {
    guard(|| {
        // SAFETY: `hlc` is NULL or a live handle (this function's contract).
        let hlc = unsafe { ffi::handle(hlc, "hlc") }?;
        let out = ffi::out_param(out, "out")?;
        let wait = hlc.hlc.commit_wait_blocking(HybridTimestamp::from_raw(ts))?;
        // SAFETY: `out` points to a writable `tsod_commit_wait` (this function's contract).
        unsafe { out.write(wait.into()) };
        Ok(())
    })
}

/// The physical part of `ts`: microseconds since the Unix epoch on tsod's
/// timescale. Cannot fail.
#[unsafe(no_mangle)]
pub extern "C" fn tsod_hts_physical_us(ts: tsod_hts) -> u64 {
    catch_unwind(|| HybridTimestamp::from_raw(ts).physical_micros()).unwrap_or(0)
}

/// The logical part of `ts`, 0 … 4095. Cannot fail.
#[unsafe(no_mangle)]
pub extern "C" fn tsod_hts_logical(ts: tsod_hts) -> u16 {
    catch_unwind(|| HybridTimestamp::from_raw(ts).logical()).unwrap_or(0)
}

/// The instants `ts`'s microsecond covers, `[physical × 1000,
/// physical × 1000 + 999]` ns: an event stamped `ts` is surely in the past
/// once a `tsod_clock_now` interval's `earliest_ns` exceeds `latest_ns`
/// of this. Cannot fail.
#[unsafe(no_mangle)]
pub extern "C" fn tsod_hts_time_range(ts: tsod_hts) -> tsod_interval {
    catch_unwind(|| HybridTimestamp::from_raw(ts).time_range().into())
        .unwrap_or(tsod_interval { earliest_ns: 0, latest_ns: 0 })
}

/// The hybrid timestamp with physical part `physical_us` (below 2^52: until
/// 2112-09-17) and logical part `logical` (0 … 4095), in `*out`.
///
/// Ownership: `*out` is the caller's, written on `TSOD_OK` only.
///
/// Returns `TSOD_OK`, `TSOD_ERR_NULL_POINTER`, `TSOD_ERR_OUT_OF_RANGE`.
///
/// # Safety
///
/// `out` is NULL or points to writable memory for a `tsod_hts`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsod_hts_from_parts(physical_us: u64, logical: u16, out: *mut tsod_hts) -> tsod_error {
    guard(|| {
        let out = ffi::out_param(out, "out")?;
        let ts = HybridTimestamp::from_parts(physical_us, logical).map_err(|e| Error::OutOfRange(e.to_string()))?;
        // SAFETY: `out` points to a writable `tsod_hts` (this function's contract).
        unsafe { out.write(ts.raw()) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    #[test]
    fn the_encoding_is_the_rust_one() {
        assert_eq!(TSOD_HTS_LOGICAL_BITS, HybridTimestamp::LOGICAL_BITS);
        let mut ts = 0;
        // SAFETY: `ts` is a writable tsod_hts.
        assert_eq!(unsafe { tsod_hts_from_parts(1_700_000_000_123_456, 7, &mut ts) }, tsod_error::TSOD_OK);
        assert_eq!(ts, HybridTimestamp::from_parts(1_700_000_000_123_456, 7).unwrap().raw());
        assert_eq!((tsod_hts_physical_us(ts), tsod_hts_logical(ts)), (1_700_000_000_123_456, 7));
        let range = tsod_hts_time_range(ts);
        assert_eq!((range.earliest_ns, range.latest_ns), (1_700_000_000_123_456_000, 1_700_000_000_123_456_999));
        // SAFETY: `ts` is a writable tsod_hts; NULL is allowed.
        unsafe {
            assert_eq!(tsod_hts_from_parts(1 << 52, 0, &mut ts), tsod_error::TSOD_ERR_OUT_OF_RANGE);
            assert_eq!(tsod_hts_from_parts(1, 4096, &mut ts), tsod_error::TSOD_ERR_OUT_OF_RANGE);
            assert_eq!(tsod_hts_from_parts(1, 1, std::ptr::null_mut()), tsod_error::TSOD_ERR_NULL_POINTER);
        }
    }

    #[test]
    fn null_handles_are_refused() {
        let mut ts = 0;
        let mut hlc = std::ptr::null_mut();
        // SAFETY: NULL handles are allowed; the out-parameters are writable.
        unsafe {
            assert_eq!(tsod_hlc_now(std::ptr::null(), &mut ts), tsod_error::TSOD_ERR_NULL_POINTER);
            assert_eq!(tsod_hlc_new(std::ptr::null(), 0, &mut hlc), tsod_error::TSOD_ERR_NULL_POINTER);
            tsod_hlc_free(std::ptr::null_mut());
        }
        assert!(hlc.is_null());
    }
}
