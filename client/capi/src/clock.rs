//! The local daemon's bounded clock for C (`tsod_clock_*`): a handle on
//! `tsod_client::LocalClock`, which reads the daemon's shared-memory
//! segment with no system call into the daemon.
//!
//! Times are `uint64_t` nanoseconds since the Unix epoch on tsod's
//! timescale (UTC with leap seconds smeared over 24 h around each: equal
//! to `CLOCK_REALTIME` on a correctly set host except near a leap second),
//! exactly `tsod_proto::Timestamp`.

use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use tsod_client::hlc::{CommitWait, HybridClock};
use tsod_client::{ClockStatus, HybridTimestamp, LocalClock, TimeInterval, Timestamp};

use crate::error::{Error, guard, tsod_error};
use crate::ffi;

/// The local tsod's bounded clock (opaque). Made by `tsod_clock_open`,
/// freed by `tsod_clock_close`. Thread-safe: any number of threads may use
/// one handle at once (one per process is enough).
#[expect(non_camel_case_types, reason = "the C name, as the header shows it")]
#[derive(Debug)]
pub struct tsod_clock {
    /// Shared with every `tsod_hlc` made on it, so closing the clock
    /// handle never leaves an HLC without its clock.
    pub(crate) clock: Arc<LocalClock>,
}

/// An interval that contains true time: `earliest_ns <= latest_ns`,
/// nanoseconds since the Unix epoch on tsod's timescale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct tsod_interval {
    /// True time is at or after this.
    pub earliest_ns: u64,
    /// True time is at or before this.
    pub latest_ns: u64,
}

impl From<TimeInterval> for tsod_interval {
    fn from(interval: TimeInterval) -> Self {
        Self { earliest_ns: interval.earliest().as_nanos(), latest_ns: interval.latest().as_nanos() }
    }
}

/// The daemon's status, with the codes of SPEC.md §3.5.
#[expect(non_camel_case_types, reason = "the C name, as the header shows it")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum tsod_clock_status {
    /// Enough sources agree; the bound is valid.
    TSOD_CLOCK_SYNCHRONIZED = 1,
    /// Fewer agreeing sources than configured; the bound is valid,
    /// redundancy is reduced.
    TSOD_CLOCK_DEGRADED = 2,
    /// No source usable now; the last bound is carried forward at the
    /// drift bound, still valid, growing wider.
    TSOD_CLOCK_FREE_RUNNING = 3,
    /// No valid bound.
    TSOD_CLOCK_UNSYNCHRONIZED = 4,
    /// The clock was disturbed; no valid bound until re-synchronized.
    TSOD_CLOCK_DISRUPTED = 5,
}

impl From<ClockStatus> for tsod_clock_status {
    fn from(status: ClockStatus) -> Self {
        match status {
            ClockStatus::Synchronized => Self::TSOD_CLOCK_SYNCHRONIZED,
            ClockStatus::Degraded => Self::TSOD_CLOCK_DEGRADED,
            ClockStatus::FreeRunning => Self::TSOD_CLOCK_FREE_RUNNING,
            ClockStatus::Unsynchronized => Self::TSOD_CLOCK_UNSYNCHRONIZED,
            ClockStatus::Disrupted => Self::TSOD_CLOCK_DISRUPTED,
        }
    }
}

/// What `tsod_clock_now` read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct tsod_now {
    /// Contains true time at an instant during the call.
    pub interval: tsod_interval,
    /// The daemon's status, read from the segment just after the interval
    /// (a second read: at a republication it may already be the next
    /// one's, e.g. `TSOD_CLOCK_UNSYNCHRONIZED` although the interval was
    /// valid when read).
    pub status: tsod_clock_status,
}

/// How a commit-wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct tsod_commit_wait {
    /// The interval read that ended the wait: its `earliest_ns` is past the
    /// time waited for.
    pub interval: tsod_interval,
    /// How long the call took, in nanoseconds (`CLOCK_MONOTONIC`).
    pub waited_ns: u64,
    /// Intervals read; 1 means the time had already passed.
    pub reads: u32,
}

impl From<CommitWait> for tsod_commit_wait {
    fn from(wait: CommitWait) -> Self {
        Self {
            interval: wait.interval.into(),
            waited_ns: u64::try_from(wait.waited.as_nanos()).unwrap_or(u64::MAX),
            reads: wait.reads,
        }
    }
}

/// Opens the local tsod's segment and returns a clock handle in `*out`.
///
/// `path` is the segment file, or NULL for `$TSOD_SHM` or else
/// `/run/tsod/segment`. The file must pass the open rules of SPEC.md §5.1
/// (no symbolic link; a regular file owned by root, this process's user or
/// the system user `tsod`, writable by its owner only, in a directory no
/// one else can replace it in) and have been written during this boot.
///
/// Ownership: `path` stays the caller's (it is copied). On `TSOD_OK`,
/// `*out` is a new handle the caller owns and frees with
/// `tsod_clock_close`; on failure `*out` is left unchanged.
///
/// Returns `TSOD_OK`, `TSOD_ERR_NULL_POINTER` (`out`), `TSOD_ERR_OPEN`,
/// `TSOD_ERR_SEGMENT`.
///
/// # Safety
///
/// `path` is NULL or a NUL-terminated string;
/// `out` is NULL or points to writable memory for a `tsod_clock *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsod_clock_open(path: *const c_char, out: *mut *mut tsod_clock) -> tsod_error {
    guard(|| {
        let out = ffi::out_param(out, "out")?;
        // SAFETY: `path` is NULL or a NUL-terminated string (this function's contract).
        let clock = match unsafe { ffi::optional_path(path) } {
            Some(path) => LocalClock::open_path(path)?,
            None => LocalClock::open()?,
        };
        let handle = Box::into_raw(Box::new(tsod_clock { clock: Arc::new(clock) }));
        // SAFETY: `out` points to a writable `tsod_clock *` (this function's contract).
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Frees a clock handle. NULL is ignored. HLCs made on it keep working
/// (they share the clock). The caller must not use `clock` afterwards, nor
/// close it while another thread is still inside a call on it.
///
/// # Safety
///
/// `clock` is NULL or a handle from `tsod_clock_open` that was not closed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsod_clock_close(clock: *mut tsod_clock) {
    if clock.is_null() {
        return;
    }
    let dropped = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: a non-NULL `clock` was returned by tsod_clock_open and is
        // freed only here, once, when no call uses it (this function's contract).
        drop(unsafe { Box::from_raw(clock) });
    }));
    // A panicking destructor leaks what is left rather than unwinding into C.
    if let Err(payload) = dropped {
        std::mem::forget(payload);
    }
}

/// Reads the bounded clock: `out->interval` contains true time at an
/// instant during the call, `out->status` is the daemon's status. Lock-free
/// and without system calls into the daemon: two vDSO clock reads
/// (`CLOCK_MONOTONIC_RAW`, and `CLOCK_BOOTTIME` for the suspend check of
/// SPEC.md §5.6) and a copy from shared memory. A segment the daemon
/// replaced (restart) is followed.
///
/// Ownership: `clock` stays the caller's; `*out` is written on `TSOD_OK`
/// only.
///
/// Returns `TSOD_OK`, `TSOD_ERR_NULL_POINTER`, `TSOD_ERR_UNSYNCHRONIZED`,
/// `TSOD_ERR_DISRUPTED`, `TSOD_ERR_STALE`, `TSOD_ERR_SEGMENT`,
/// `TSOD_ERR_OUT_OF_RANGE`, `TSOD_ERR_CLOCK_READ`.
///
/// # Safety
///
/// `clock` is NULL or a live handle from `tsod_clock_open`;
/// `out` is NULL or points to writable memory for a `tsod_now`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsod_clock_now(clock: *const tsod_clock, out: *mut tsod_now) -> tsod_error {
    guard(|| {
        // SAFETY: `clock` is NULL or a live handle (this function's contract).
        let clock = unsafe { ffi::handle(clock, "clock") }?;
        let out = ffi::out_param(out, "out")?;
        let interval = clock.clock.now()?;
        let status = clock.clock.status()?;
        // SAFETY: `out` points to a writable `tsod_now` (this function's contract).
        unsafe { out.write(tsod_now { interval: interval.into(), status: status.into() }) };
        Ok(())
    })
}

/// Blocks until the clock gives an interval (polling every 10 ms) and
/// writes it to `*out`, or fails after `timeout_ms` milliseconds with
/// `TSOD_ERR_TIMEOUT` (the message says the last error): for start-up, when
/// the daemon may still be acquiring its sources.
///
/// Ownership: as for `tsod_clock_now`.
///
/// Returns `TSOD_OK`, `TSOD_ERR_NULL_POINTER`, `TSOD_ERR_TIMEOUT`.
///
/// # Safety
///
/// `clock` is NULL or a live handle from `tsod_clock_open`;
/// `out` is NULL or points to writable memory for a `tsod_interval`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsod_clock_wait_synchronized(
    clock: *const tsod_clock,
    timeout_ms: u32,
    out: *mut tsod_interval,
) -> tsod_error {
    guard(|| {
        // SAFETY: `clock` is NULL or a live handle (this function's contract).
        let clock = unsafe { ffi::handle(clock, "clock") }?;
        let out = ffi::out_param(out, "out")?;
        let interval = clock.clock.wait_until_synchronized(Duration::from_millis(u64::from(timeout_ms)))?;
        // SAFETY: `out` points to a writable `tsod_interval` (this function's contract).
        unsafe { out.write(interval.into()) };
        Ok(())
    })
}

/// Commit-wait, blocking: returns once an interval read shows
/// `earliest_ns > until_ns`, so that `until_ns` is surely in the past
/// everywhere. The usual use: `until_ns` is the `latest_ns` of a
/// `tsod_clock_now` taken when the transaction committed; once this
/// returns, every node's clock is past the commit.
///
/// It sleeps while far from the goal and polls in the last 100 µs (the
/// Rust client's `HybridClock::commit_wait_blocking`; the wait ends at most
/// 1 µs after the microsecond of `until_ns` ends). A `until_ns` more than
/// 250 ms after the current `latest_ns` is refused with
/// `TSOD_ERR_TOO_FAR_AHEAD` rather than waited for. A clock that loses
/// its bound during the wait fails the call within 10 ms.
///
/// Ownership: `clock` stays the caller's; `*out` is written on `TSOD_OK`
/// only.
///
/// Returns `TSOD_OK`, `TSOD_ERR_NULL_POINTER`, `TSOD_ERR_TOO_FAR_AHEAD`,
/// `TSOD_ERR_OUT_OF_RANGE`, and the errors of `tsod_clock_now`.
///
/// # Safety
///
/// `clock` is NULL or a live handle from `tsod_clock_open`;
/// `out` is NULL or points to writable memory for a `tsod_commit_wait`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsod_clock_commit_wait(
    clock: *const tsod_clock,
    until_ns: u64,
    out: *mut tsod_commit_wait,
) -> tsod_error {
    guard(|| {
        // SAFETY: `clock` is NULL or a live handle (this function's contract).
        let clock = unsafe { ffi::handle(clock, "clock") }?;
        let out = ffi::out_param(out, "out")?;
        let until = Timestamp::from_nanos(until_ns);
        // The microsecond holding `until`: waiting past its end is waiting
        // past `until`. A throw-away HLC is one atomic; only its wait is used.
        let ts = HybridTimestamp::from_timestamp_floor(until).map_err(|e| Error::OutOfRange(e.to_string()))?;
        let wait = HybridClock::new(&*clock.clock).commit_wait_blocking(ts)?;
        // SAFETY: `out` points to a writable `tsod_commit_wait` (this function's contract).
        unsafe { out.write(wait.into()) };
        Ok(())
    })
}
