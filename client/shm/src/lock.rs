//! The single-writer lock (SPEC.md §5.1): the daemon holds an exclusive
//! `flock(2)` on the segment's lock file for as long as it publishes, so a
//! second daemon on the same path cannot start. Only with `writer`.
//!
//! `flock` locks belong to the open file description: the lock is released
//! when the [`ExclusiveLock`] (and with it the file) is dropped, or when the
//! process dies, never left behind by a crash. A second `open` of the same
//! file, in this process or another, is refused while the lock is held.

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;

/// Why [`ExclusiveLock::try_acquire`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another open of the file holds the lock: another daemon is running
    /// on this segment (stop it, or give this one another path).
    #[error("the file is locked by another process (is another tsod running on this segment?)")]
    HeldElsewhere,
    /// `flock` failed for another reason (e.g. a file system without locks).
    #[error("cannot lock: {0}")]
    Os(io::Error),
}

/// An open file on which this process holds an exclusive `flock`, released
/// when this value is dropped.
#[derive(Debug)]
pub struct ExclusiveLock {
    file: File,
}

impl ExclusiveLock {
    /// Takes an exclusive lock on `file` without waiting
    /// (`LOCK_EX | LOCK_NB`). On failure the file is closed.
    #[expect(unsafe_code, reason = "flock is a C function")]
    pub fn try_acquire(file: File) -> Result<Self, LockError> {
        // SAFETY: flock takes a file descriptor, which `file` owns and keeps
        // open for the duration of the call; it touches no memory of ours.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(Self { file });
        }
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock { Err(LockError::HeldElsewhere) } else { Err(LockError::Os(err)) }
    }

    /// The locked file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::path::Path;

    use super::*;

    fn open(path: &Path) -> File {
        OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).unwrap()
    }

    #[test]
    fn a_second_exclusive_lock_is_refused_until_the_first_is_dropped() {
        let path = std::env::temp_dir().join(format!("tsod-shm-lock-{}", std::process::id()));
        let first = ExclusiveLock::try_acquire(open(&path)).unwrap();
        assert!(matches!(ExclusiveLock::try_acquire(open(&path)), Err(LockError::HeldElsewhere)));
        assert!(matches!(ExclusiveLock::try_acquire(open(&path)), Err(LockError::HeldElsewhere)), "still held");
        assert!(first.file().metadata().is_ok());
        drop(first);
        let again = ExclusiveLock::try_acquire(open(&path));
        let _ = std::fs::remove_file(&path);
        assert!(again.is_ok(), "released on drop: {again:?}");
    }
}
