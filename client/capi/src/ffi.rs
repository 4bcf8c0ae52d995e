//! The crate's raw-pointer handling, in one place: reading C strings,
//! borrowing handles, writing out-parameters. Each function checks for NULL
//! and turns it into [`Error::Null`]; what it cannot check (that a non-NULL
//! pointer is valid) is the caller's contract, stated on the exported
//! function and repeated in each `SAFETY` comment.

use std::ffi::{CStr, c_char};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::error::Error;

/// The path in the C string `ptr`, or `None` for NULL. Any bytes but NUL
/// are accepted (Unix paths need not be UTF-8).
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid and
/// unmodified for the duration of the call.
pub(crate) unsafe fn optional_path(ptr: *const c_char) -> Option<PathBuf> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-NULL, and NUL-terminated and valid by the caller's contract.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
}

/// The path in the C string `ptr`, required.
///
/// # Safety
/// As for [`optional_path`].
pub(crate) unsafe fn path(ptr: *const c_char, what: &'static str) -> Result<PathBuf, Error> {
    // SAFETY: the caller's contract is the one optional_path needs.
    unsafe { optional_path(ptr) }.ok_or(Error::Null(what))
}

/// Borrows the object behind a handle.
///
/// # Safety
/// `ptr` is NULL or a handle this library returned and that has not been
/// freed; it is not freed while the borrow lives (the exported function's
/// duration).
pub(crate) unsafe fn handle<'a, T>(ptr: *const T, what: &'static str) -> Result<&'a T, Error> {
    // SAFETY: non-NULL pointers are live handles by the caller's contract;
    // handles are only ever shared (`&`), never mutated through.
    unsafe { ptr.as_ref() }.ok_or(Error::Null(what))
}

/// Checks that an out-parameter is not NULL, before any work is done.
pub(crate) fn out_param<T>(ptr: *mut T, what: &'static str) -> Result<OutParam<T>, Error> {
    if ptr.is_null() { Err(Error::Null(what)) } else { Ok(OutParam(ptr)) }
}

/// A non-NULL out-parameter, written once the result is known.
pub(crate) struct OutParam<T>(*mut T);

impl<T> OutParam<T> {
    /// Writes `value` (without reading or dropping what was there).
    ///
    /// # Safety
    /// The pointer given to [`out_param`] points to memory, owned by the
    /// caller, that is valid for a write of a `T` and suitably aligned.
    pub(crate) unsafe fn write(self, value: T) {
        // SAFETY: non-NULL (checked by out_param), valid and aligned by the
        // caller's contract; `write` neither reads nor drops the old value,
        // which may be uninitialized.
        unsafe { self.0.write(value) }
    }
}

/// The `len` bytes at `buf` as a slice.
///
/// # Safety
/// `buf` is non-NULL and points to `len` bytes writable by this call, not
/// accessed by anything else during it.
pub(crate) unsafe fn bytes_mut<'a>(buf: *mut c_char, len: usize) -> &'a mut [u8] {
    // SAFETY: by the caller's contract; `c_char` and `u8` have the same
    // size and alignment, and every bit pattern is valid for both.
    unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) }
}

/// Copies `message` and its NUL into `out`; if it does not fit, as much as
/// fits and a NUL (nothing if `out` is empty), and returns false.
pub(crate) fn copy_c_string(message: &CStr, out: &mut [u8]) -> bool {
    let bytes = message.to_bytes_with_nul();
    if let Some(dest) = out.get_mut(..bytes.len()) {
        dest.copy_from_slice(bytes);
        return true;
    }
    let keep = out.len().saturating_sub(1);
    if let (Some(dest), Some(src)) = (out.get_mut(..keep), bytes.get(..keep)) {
        dest.copy_from_slice(src);
    }
    if let Some(last) = out.get_mut(keep) {
        *last = 0;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_whole_or_truncated_and_always_terminates() {
        let mut buf = [9u8; 6];
        assert!(copy_c_string(c"abcde", &mut buf));
        assert_eq!(&buf, b"abcde\0");
        let mut buf = [9u8; 3];
        assert!(!copy_c_string(c"abcde", &mut buf));
        assert_eq!(&buf, b"ab\0");
        assert!(!copy_c_string(c"abcde", &mut []));
        let mut one = [9u8; 1];
        assert!(copy_c_string(c"", &mut one));
        assert_eq!(one, [0]);
    }

    #[test]
    fn null_is_refused_and_paths_need_not_be_utf8() {
        // SAFETY: NULL and a NUL-terminated literal.
        unsafe {
            assert!(optional_path(std::ptr::null()).is_none());
            assert!(matches!(path(std::ptr::null(), "p"), Err(Error::Null("p"))));
            let odd = c"/tmp/\xff";
            assert_eq!(
                path(odd.as_ptr(), "p").ok().map(|p| p.as_os_str().as_bytes().to_vec()),
                Some(b"/tmp/\xff".to_vec())
            );
        }
        assert!(out_param(std::ptr::null_mut::<u64>(), "out").is_err());
    }
}
