//! The reader's open rules (SPEC.md §5.1): what a local user could plant at
//! the segment's path — a file of their own, a symbolic link, a FIFO, a
//! file in a directory anyone can write — is refused before it is mapped.
//!
//! The ownership tests need root (to `chown` a file to another user); run
//! as another user they print `SKIPPED` on stderr and pass (nextest shows it
//! with `--no-capture` or `--success-output immediate`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};

use tsod_proto::shm::SHM_FILE_SIZE;
use tsod_shm::{AllowedOwners, OpenError, effective_uid, open_segment};

/// `nobody` on most systems: a user that is neither root nor the tests'.
const OTHER_UID: u32 = 65534;

/// A directory (mode 0755) removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tsod-shm-open-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        Self(dir)
    }

    /// A segment-sized file, mode 0644, owned by this process's user.
    fn segment(&self, name: &str) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, vec![0; SHM_FILE_SIZE as usize]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn open(path: &Path) -> Result<(), OpenError> {
    open_segment(path, &AllowedOwners::this_process()).map(|_| ())
}

/// Whether `chown` to another user is possible; prints why a test is
/// skipped when it is not.
fn root_or_skip(test: &str) -> bool {
    if effective_uid() == 0 {
        return true;
    }
    eprintln!("SKIPPED {test}: needs root to chown a file to uid {OTHER_UID} (running as uid {})", effective_uid());
    false
}

#[test]
fn a_segment_of_this_user_in_a_private_directory_opens() {
    let dir = Scratch::new("ok");
    let path = dir.segment("segment");
    let opened = open_segment(&path, &AllowedOwners::this_process()).unwrap();
    assert!(opened.inode > 0);
}

#[test]
fn a_segment_planted_by_another_user_is_refused() {
    if !root_or_skip("a_segment_planted_by_another_user_is_refused") {
        return;
    }
    let dir = Scratch::new("planted");
    let path = dir.segment("segment");
    chown(&path, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
    let err = open(&path).unwrap_err();
    assert!(matches!(err, OpenError::ForeignOwner { owner: OTHER_UID, .. }), "{err:?}");
    assert!(err.to_string().contains("uid 65534"), "{err}");

    // Named as the daemon's user, the same owner is trusted.
    assert!(open_segment(&path, &AllowedOwners::with_daemon_uid(OTHER_UID)).is_ok());
}

#[test]
fn a_directory_another_user_owns_is_refused() {
    if !root_or_skip("a_directory_another_user_owns_is_refused") {
        return;
    }
    let dir = Scratch::new("foreign-dir");
    let path = dir.segment("segment");
    chown(&dir.0, Some(OTHER_UID), None).unwrap();
    let err = open(&path).unwrap_err();
    assert!(matches!(&err, OpenError::ForeignDirectory { owner: OTHER_UID, dir: d, .. } if *d == dir.0), "{err:?}");
}

#[test]
fn a_symbolic_link_at_the_path_is_refused() {
    let dir = Scratch::new("symlink");
    let real = dir.segment("real");
    let link = dir.0.join("segment");
    symlink(&real, &link).unwrap();
    assert!(open(&real).is_ok());
    let err = open(&link).unwrap_err();
    assert!(matches!(err, OpenError::Symlink), "{err:?}");
    // A dangling link too (the planted link may point where the daemon
    // will create nothing).
    let dangling = dir.0.join("dangling");
    symlink(dir.0.join("nowhere"), &dangling).unwrap();
    assert!(matches!(open(&dangling), Err(OpenError::Symlink)));
}

#[test]
fn a_directory_others_may_write_without_the_sticky_bit_is_refused() {
    let dir = Scratch::new("open-dir");
    let path = dir.segment("segment");
    for mode in [0o777, 0o775, 0o757] {
        fs::set_permissions(&dir.0, fs::Permissions::from_mode(mode)).unwrap();
        let err = open(&path).unwrap_err();
        assert!(matches!(err, OpenError::WritableDirectory { mode: m, .. } if m == mode), "{mode:o}: {err:?}");
        assert!(err.to_string().contains("sticky"), "{err}");
    }
    // With the sticky bit (like /dev/shm and /tmp), only the file's owner,
    // the directory's owner and root can replace the entry: accepted.
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o1777)).unwrap();
    assert!(open(&path).is_ok());
}

#[test]
fn a_segment_writable_by_others_is_refused() {
    let dir = Scratch::new("mode");
    let path = dir.segment("segment");
    for mode in [0o666, 0o646, 0o664] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        assert!(matches!(open(&path), Err(OpenError::WritableByOthers(m)) if m == mode));
    }
}

#[test]
fn a_fifo_or_directory_at_the_path_is_refused_without_blocking() {
    let dir = Scratch::new("special");
    let fifo = dir.0.join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // A blocking open of a FIFO would wait for a writer forever.
    assert!(matches!(open(&fifo), Err(OpenError::NotRegularFile("FIFO"))));
    let sub = dir.0.join("subdir");
    fs::create_dir(&sub).unwrap();
    assert!(matches!(open(&sub), Err(OpenError::NotRegularFile("directory"))));
}

#[test]
fn a_missing_segment_is_an_io_error() {
    let dir = Scratch::new("missing");
    assert!(matches!(open(&dir.0.join("segment")), Err(OpenError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound));
    assert!(matches!(open(Path::new("/")), Err(OpenError::Io(_))));
}

#[test]
fn the_size_is_still_checked() {
    let dir = Scratch::new("size");
    let path = dir.segment("segment");
    fs::write(&path, b"short").unwrap();
    assert!(matches!(open(&path), Err(OpenError::Map(tsod_shm::MapError::WrongSize(5)))));
}
