//! Who this process is, for ownership checks on the segment and its lock.

/// The effective user id (`geteuid(2)`), to compare with
/// `std::os::unix::fs::MetadataExt::uid` of a file.
#[expect(unsafe_code, reason = "geteuid is a C function")]
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid takes no arguments, cannot fail and touches no memory
    // of ours.
    unsafe { libc::geteuid() }
}

/// The name of the account the packaged daemon runs as.
pub const DAEMON_USER: &str = "tsod";

/// Highest uid of a system account (Debian's and most distributions'
/// `SYS_UID_MAX`): only such an account is trusted by name.
pub const SYS_UID_MAX: u32 = 999;

/// The uid of the system account `name` (`getpwnam_r(3)`: `/etc/passwd`
/// or whatever the host's NSS names), if it exists and is a system account
/// (uid 1 … [`SYS_UID_MAX`]); `None` otherwise.
#[expect(unsafe_code, reason = "getpwnam_r is a C function")]
pub fn system_user_uid(name: &str) -> Option<u32> {
    let c_name = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value (null pointers, zero ids)
    // that getpwnam_r overwrites.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: the NUL-terminated name,
    // `pwd` and `result` on our stack, and `buf` with its true length; the
    // strings getpwnam_r stores point into `buf`, which we never read.
    let rc = unsafe { libc::getpwnam_r(c_name.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    (1..=SYS_UID_MAX).contains(&pwd.pw_uid).then_some(pwd.pw_uid)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn a_file_this_process_creates_is_owned_by_its_effective_user() {
        let path = std::env::temp_dir().join(format!("tsod-shm-uid-{}", std::process::id()));
        std::fs::write(&path, b"").unwrap();
        let owner = std::fs::metadata(&path).unwrap().uid();
        let _ = std::fs::remove_file(&path);
        assert_eq!(owner, effective_uid());
    }

    #[test]
    fn root_is_no_system_account_by_name_and_missing_users_are_none() {
        // root exists everywhere but uid 0 is trusted on its own, not by name.
        assert_eq!(system_user_uid("root"), None);
        assert_eq!(system_user_uid("no-such-user-tsod-test"), None);
        assert_eq!(system_user_uid("bad\0name"), None);
    }

    #[test]
    fn a_system_account_is_found_by_name() {
        // `daemon` (uid 1) is in every Debian base system.
        if let Some(uid) = system_user_uid("daemon") {
            assert!((1..=SYS_UID_MAX).contains(&uid));
        }
    }
}
