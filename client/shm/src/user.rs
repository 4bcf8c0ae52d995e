//! Who this process is, for ownership checks on the segment and its lock.

/// The effective user id (`geteuid(2)`), to compare with
/// `std::os::unix::fs::MetadataExt::uid` of a file.
#[expect(unsafe_code, reason = "geteuid is a C function")]
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid takes no arguments, cannot fail and touches no memory
    // of ours.
    unsafe { libc::geteuid() }
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
}
