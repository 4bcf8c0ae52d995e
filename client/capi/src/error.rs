//! Result codes (`tsod_error`), their names, the calling thread's last
//! error message, and [`guard`], which every exported function runs its
//! body in: it turns a Rust error into its code (recording the message)
//! and a panic into `TSOD_ERR_INTERNAL`, so nothing unwinds into C.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use tsod_client::cluster::ClusterFileError;
use tsod_client::hlc::HlcError;
use tsod_client::tso::TsoError;
use tsod_client::{BoundError, ClockError};

use crate::ffi;

/// What a call did: `TSOD_OK` (0), or a negative code saying why it failed.
/// `tsod_error_name` names a code; `tsod_last_error_message` gives the
/// failed call's full message on the same thread.
#[expect(non_camel_case_types, reason = "the C name, as the header shows it")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum tsod_error {
    /// Success.
    TSOD_OK = 0,
    /// A pointer the call requires was NULL.
    TSOD_ERR_NULL_POINTER = -1,
    /// A buffer given to the call is too small for its result.
    TSOD_ERR_BUFFER_TOO_SMALL = -2,
    /// An argument is out of range (a TSO count of 0 or above 65536, a
    /// client certificate without its key, ...).
    TSOD_ERR_INVALID_ARGUMENT = -3,
    /// The segment file could not be opened, mapped or trusted (is tsod
    /// running? is this its path? see the message for the open rules).
    TSOD_ERR_OPEN = -4,
    /// The segment is unusable: not a segment, another layout, written
    /// during an earlier boot, or corrupt.
    TSOD_ERR_SEGMENT = -5,
    /// The daemon has no valid bound: no majority of its sources agrees,
    /// or it never synchronized.
    TSOD_ERR_UNSYNCHRONIZED = -6,
    /// The clock was disturbed (step, suspend, restart) and is not yet
    /// re-synchronized.
    TSOD_ERR_DISRUPTED = -7,
    /// The daemon has not refreshed the segment in time (stopped or stalled).
    TSOD_ERR_STALE = -8,
    /// A time outside what the types can hold (before 1970, after 2112).
    TSOD_ERR_OUT_OF_RANGE = -9,
    /// A system clock (CLOCK_MONOTONIC_RAW, CLOCK_BOOTTIME) could not be read.
    TSOD_ERR_CLOCK_READ = -10,
    /// Time ran out: waiting for synchronization, connecting, or a TSO call
    /// past its deadline (the message carries the last attempt's error).
    TSOD_ERR_TIMEOUT = -11,
    /// A hybrid timestamp (received, or to commit-wait on) is further ahead
    /// of the latest possible time now than the HLC's maximum offset: the
    /// clock of the node that issued it is wrong. Nothing was changed.
    TSOD_ERR_TOO_FAR_AHEAD = -12,
    /// No hybrid timestamp comes after the last one (the range ends in 2112).
    TSOD_ERR_EXHAUSTED = -13,
    /// The cluster file cannot be read or is not a valid cluster file.
    TSOD_ERR_CLUSTER_FILE = -14,
    /// Connecting to a site failed (address, CA, certificate, handshake),
    /// or a PEM file could not be loaded.
    TSOD_ERR_CONNECT = -15,
    /// The server refused the request (unauthorized, unsynchronized,
    /// another timescale, internal error: see the message).
    TSOD_ERR_REFUSED = -16,
    /// The server answered something impossible (wrong id or count, an
    /// undecodable answer, a TSO that went backwards): a bug, reported.
    TSOD_ERR_PROTOCOL = -17,
    /// A bug in the library (a caught panic) or its runtime is gone.
    TSOD_ERR_INTERNAL = -18,
}

impl tsod_error {
    /// The code's C name.
    pub const fn name(self) -> &'static CStr {
        match self {
            Self::TSOD_OK => c"TSOD_OK",
            Self::TSOD_ERR_NULL_POINTER => c"TSOD_ERR_NULL_POINTER",
            Self::TSOD_ERR_BUFFER_TOO_SMALL => c"TSOD_ERR_BUFFER_TOO_SMALL",
            Self::TSOD_ERR_INVALID_ARGUMENT => c"TSOD_ERR_INVALID_ARGUMENT",
            Self::TSOD_ERR_OPEN => c"TSOD_ERR_OPEN",
            Self::TSOD_ERR_SEGMENT => c"TSOD_ERR_SEGMENT",
            Self::TSOD_ERR_UNSYNCHRONIZED => c"TSOD_ERR_UNSYNCHRONIZED",
            Self::TSOD_ERR_DISRUPTED => c"TSOD_ERR_DISRUPTED",
            Self::TSOD_ERR_STALE => c"TSOD_ERR_STALE",
            Self::TSOD_ERR_OUT_OF_RANGE => c"TSOD_ERR_OUT_OF_RANGE",
            Self::TSOD_ERR_CLOCK_READ => c"TSOD_ERR_CLOCK_READ",
            Self::TSOD_ERR_TIMEOUT => c"TSOD_ERR_TIMEOUT",
            Self::TSOD_ERR_TOO_FAR_AHEAD => c"TSOD_ERR_TOO_FAR_AHEAD",
            Self::TSOD_ERR_EXHAUSTED => c"TSOD_ERR_EXHAUSTED",
            Self::TSOD_ERR_CLUSTER_FILE => c"TSOD_ERR_CLUSTER_FILE",
            Self::TSOD_ERR_CONNECT => c"TSOD_ERR_CONNECT",
            Self::TSOD_ERR_REFUSED => c"TSOD_ERR_REFUSED",
            Self::TSOD_ERR_PROTOCOL => c"TSOD_ERR_PROTOCOL",
            Self::TSOD_ERR_INTERNAL => c"TSOD_ERR_INTERNAL",
        }
    }
}

/// Every code, in order (not exported: the header lists them).
const ALL: [tsod_error; 19] = [
    tsod_error::TSOD_OK,
    tsod_error::TSOD_ERR_NULL_POINTER,
    tsod_error::TSOD_ERR_BUFFER_TOO_SMALL,
    tsod_error::TSOD_ERR_INVALID_ARGUMENT,
    tsod_error::TSOD_ERR_OPEN,
    tsod_error::TSOD_ERR_SEGMENT,
    tsod_error::TSOD_ERR_UNSYNCHRONIZED,
    tsod_error::TSOD_ERR_DISRUPTED,
    tsod_error::TSOD_ERR_STALE,
    tsod_error::TSOD_ERR_OUT_OF_RANGE,
    tsod_error::TSOD_ERR_CLOCK_READ,
    tsod_error::TSOD_ERR_TIMEOUT,
    tsod_error::TSOD_ERR_TOO_FAR_AHEAD,
    tsod_error::TSOD_ERR_EXHAUSTED,
    tsod_error::TSOD_ERR_CLUSTER_FILE,
    tsod_error::TSOD_ERR_CONNECT,
    tsod_error::TSOD_ERR_REFUSED,
    tsod_error::TSOD_ERR_PROTOCOL,
    tsod_error::TSOD_ERR_INTERNAL,
];

/// Why a call failed, on the Rust side: a code and the message recorded
/// for `tsod_last_error_message`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A required pointer argument was NULL.
    #[error("{0} is NULL")]
    Null(&'static str),
    /// A buffer is too small.
    #[error("{what} holds {given} but {needed} are needed")]
    TooSmall {
        /// Which buffer.
        what: &'static str,
        /// Its size.
        given: usize,
        /// What the result needs.
        needed: usize,
    },
    /// An argument out of range.
    #[error("{0}")]
    Invalid(String),
    /// A time or timestamp outside what the types hold.
    #[error("{0}")]
    OutOfRange(String),
    /// The local clock's error.
    #[error(transparent)]
    Clock(#[from] ClockError),
    /// The HLC's refusal (its clock errors arrive as [`Error::Clock`]).
    #[error(transparent)]
    Hlc(HlcError<ClockError>),
    /// The cluster file's error.
    #[error(transparent)]
    ClusterFile(#[from] ClusterFileError),
    /// The TSO's error.
    #[error(transparent)]
    Tso(#[from] TsoError),
    /// Connecting took longer than allowed.
    #[error("{0}")]
    Timeout(String),
    /// A panic or a broken runtime.
    #[error("{0}")]
    Internal(String),
}

impl From<HlcError<ClockError>> for Error {
    fn from(error: HlcError<ClockError>) -> Self {
        match error {
            HlcError::Clock(e) => Self::Clock(e),
            other => Self::Hlc(other),
        }
    }
}

impl Error {
    /// The code C sees.
    pub(crate) fn code(&self) -> tsod_error {
        use tsod_error::*;
        match self {
            Self::Null(_) => TSOD_ERR_NULL_POINTER,
            Self::TooSmall { .. } => TSOD_ERR_BUFFER_TOO_SMALL,
            Self::Invalid(_) => TSOD_ERR_INVALID_ARGUMENT,
            Self::OutOfRange(_) => TSOD_ERR_OUT_OF_RANGE,
            Self::Clock(e) => clock_code(e),
            Self::Hlc(HlcError::TooFarAhead { .. }) => TSOD_ERR_TOO_FAR_AHEAD,
            Self::Hlc(HlcError::Exhausted(_)) => TSOD_ERR_EXHAUSTED,
            Self::Hlc(HlcError::OutOfRange(_)) => TSOD_ERR_OUT_OF_RANGE,
            Self::Hlc(HlcError::Clock(e)) => clock_code(e),
            Self::ClusterFile(_) => TSOD_ERR_CLUSTER_FILE,
            Self::Tso(e) => tso_code(e),
            Self::Timeout(_) => TSOD_ERR_TIMEOUT,
            Self::Internal(_) => TSOD_ERR_INTERNAL,
        }
    }
}

fn clock_code(error: &ClockError) -> tsod_error {
    use tsod_error::*;
    match error {
        ClockError::Open { .. }
        | ClockError::Map { .. }
        | ClockError::Insecure { .. }
        | ClockError::Symlink { .. }
        | ClockError::NotRegularFile { .. }
        | ClockError::ForeignOwner { .. }
        | ClockError::ForeignDirectory { .. }
        | ClockError::WritableDirectory { .. } => TSOD_ERR_OPEN,
        ClockError::Segment(_) => TSOD_ERR_SEGMENT,
        ClockError::Bound(BoundError::Unsynchronized) => TSOD_ERR_UNSYNCHRONIZED,
        ClockError::Bound(BoundError::Disrupted) => TSOD_ERR_DISRUPTED,
        ClockError::Bound(BoundError::Stale) => TSOD_ERR_STALE,
        ClockError::Bound(BoundError::OutOfRange) => TSOD_ERR_OUT_OF_RANGE,
        ClockError::Clock(_) => TSOD_ERR_CLOCK_READ,
        ClockError::Timeout(..) => TSOD_ERR_TIMEOUT,
    }
}

fn tso_code(error: &TsoError) -> tsod_error {
    use tsod_error::*;
    match error {
        TsoError::InvalidOptions(_) | TsoError::InvalidCount(_) => TSOD_ERR_INVALID_ARGUMENT,
        TsoError::Transport(_) => TSOD_ERR_CONNECT,
        // Retried inside the client until the deadline; seen alone only if
        // a future client stops retrying them.
        TsoError::Unavailable { .. }
        | TsoError::RateLimited { .. }
        | TsoError::Overloaded { .. }
        | TsoError::DeadlineExceeded { .. } => TSOD_ERR_TIMEOUT,
        TsoError::Refused { .. } => TSOD_ERR_REFUSED,
        TsoError::RequestIdMismatch { .. }
        | TsoError::CountMismatch { .. }
        | TsoError::UnexpectedKind { .. }
        | TsoError::Decode(_)
        | TsoError::WentBackwards { .. } => TSOD_ERR_PROTOCOL,
        TsoError::Stopped => TSOD_ERR_INTERNAL,
    }
}

thread_local! {
    /// The message of the last failed call on this thread.
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Records `message` as this thread's last error (interior NULs replaced).
fn record(message: String) {
    let message = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // During thread teardown the slot may be gone: then there is nobody to tell.
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = Some(message);
        }
    });
}

/// Runs an exported function's body: `Ok` is `TSOD_OK`, an error its code
/// (its message recorded), a panic `TSOD_ERR_INTERNAL`. Nothing unwinds
/// past this function.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Error>) -> tsod_error {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => tsod_error::TSOD_OK,
        Ok(Err(error)) => {
            let code = error.code();
            // Formatting a foreign error could itself panic; contain it too.
            let message = catch_unwind(AssertUnwindSafe(|| error.to_string()))
                .unwrap_or_else(|_| "an error whose message could not be formatted".to_owned());
            record(message);
            code
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            record(format!("internal error in libtsod (a bug, please report it): {what}"));
            // The payload's destructor could panic again; leak it instead.
            std::mem::forget(payload);
            tsod_error::TSOD_ERR_INTERNAL
        }
    }
}

/// Copies the message of the last call that failed on the calling thread
/// into `buf` (`len` bytes), NUL-terminated. Successful calls leave the
/// message as it was; before any failure it is the empty string. The
/// message is in English and meant for logs and people, not for parsing:
/// branch on the code instead.
///
/// Ownership: `buf` is the caller's; nothing is allocated for it.
///
/// Returns `TSOD_OK`; `TSOD_ERR_NULL_POINTER` if `buf` is NULL;
/// `TSOD_ERR_BUFFER_TOO_SMALL` if the message and its NUL need more than
/// `len` bytes: then the first `len - 1` bytes and a NUL are written (if
/// `len` > 0), and `tsod_last_error_length` tells the size needed. This
/// call does not change the last error, even when it fails.
///
/// # Safety
///
/// `buf` is NULL or points to `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsod_last_error_message(buf: *mut c_char, len: usize) -> tsod_error {
    match catch_unwind(AssertUnwindSafe(|| copy_last_error(buf, len))) {
        Ok(code) => code,
        Err(payload) => {
            std::mem::forget(payload);
            tsod_error::TSOD_ERR_INTERNAL
        }
    }
}

fn copy_last_error(buf: *mut c_char, len: usize) -> tsod_error {
    if buf.is_null() {
        return tsod_error::TSOD_ERR_NULL_POINTER;
    }
    let copied = LAST_ERROR.try_with(|slot| {
        let slot = slot.try_borrow().ok();
        let message = slot.as_ref().and_then(|m| m.as_deref()).unwrap_or(c"");
        // SAFETY: `buf` is non-NULL and, by this function's contract, points
        // to `len` writable bytes that the caller owns.
        let out = unsafe { ffi::bytes_mut(buf, len) };
        ffi::copy_c_string(message, out)
    });
    match copied {
        Ok(true) => tsod_error::TSOD_OK,
        Ok(false) => tsod_error::TSOD_ERR_BUFFER_TOO_SMALL,
        Err(_) => tsod_error::TSOD_ERR_INTERNAL,
    }
}

/// The size of buffer, NUL included, that `tsod_last_error_message` needs
/// for the calling thread's last error now (1 before any failure).
#[unsafe(no_mangle)]
pub extern "C" fn tsod_last_error_length() -> usize {
    catch_unwind(|| {
        LAST_ERROR
            .try_with(|slot| slot.try_borrow().ok().and_then(|m| m.as_ref().map(|m| m.as_bytes().len())).unwrap_or(0))
            .unwrap_or(0)
            .saturating_add(1)
    })
    .unwrap_or(1)
}

/// The C name of `code` (`"TSOD_ERR_STALE"`), or `"TSOD_ERR_UNKNOWN"` for a
/// value that is not a `tsod_error`.
///
/// Ownership: the string is static, owned by the library; never free or
/// modify it. It stays valid as long as the library is loaded.
#[unsafe(no_mangle)]
pub extern "C" fn tsod_error_name(code: i32) -> *const c_char {
    ALL.iter().find(|c| **c as i32 == code).map_or(c"TSOD_ERR_UNKNOWN".as_ptr(), |c| c.name().as_ptr())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "test code: a failed unwrap is a failed test")]

    use super::*;

    fn last() -> String {
        let mut buf = vec![0 as c_char; tsod_last_error_length()];
        // SAFETY: `buf` holds `buf.len()` writable bytes.
        assert_eq!(unsafe { tsod_last_error_message(buf.as_mut_ptr(), buf.len()) }, tsod_error::TSOD_OK);
        // SAFETY: the call wrote a NUL-terminated string into `buf`.
        unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap().to_owned()
    }

    #[test]
    fn a_panic_is_a_code_and_a_message_never_an_unwind() {
        let code = guard(|| panic!("boom"));
        assert_eq!(code, tsod_error::TSOD_ERR_INTERNAL);
        assert!(last().contains("boom"), "{}", last());
        let code = guard(|| Err(Error::Null("out")));
        assert_eq!(code, tsod_error::TSOD_ERR_NULL_POINTER);
        assert_eq!(last(), "out is NULL");
        assert_eq!(guard(|| Ok(())), tsod_error::TSOD_OK);
        assert_eq!(last(), "out is NULL", "success leaves the last error");
    }

    #[test]
    fn the_message_is_truncated_into_a_small_buffer_and_says_so() {
        let _ = guard(|| Err(Error::Invalid("0123456789".to_owned())));
        assert_eq!(tsod_last_error_length(), 11);
        let mut small = [1 as c_char; 5];
        // SAFETY: `small` holds 5 writable bytes (and 0 ≤ 5); NULL is allowed.
        unsafe {
            let too_small = tsod_error::TSOD_ERR_BUFFER_TOO_SMALL;
            assert_eq!(tsod_last_error_message(small.as_mut_ptr(), small.len()), too_small);
            // Truncated and NUL-terminated within the 5 bytes.
            assert_eq!(CStr::from_ptr(small.as_ptr()).to_bytes(), b"0123");
            assert_eq!(tsod_last_error_message(small.as_mut_ptr(), 0), too_small);
            assert_eq!(tsod_last_error_message(std::ptr::null_mut(), 64), tsod_error::TSOD_ERR_NULL_POINTER);
        }
        assert_eq!(last(), "0123456789");
    }

    #[test]
    fn every_code_has_its_name_and_unknown_values_are_named_so() {
        for code in ALL {
            // SAFETY: tsod_error_name returns a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(tsod_error_name(code as i32)) };
            assert_eq!(name, code.name());
            assert!(format!("{code:?}") == name.to_str().unwrap());
        }
        // SAFETY: as above.
        assert_eq!(unsafe { CStr::from_ptr(tsod_error_name(-999)) }, c"TSOD_ERR_UNKNOWN");
    }
}
