//! `LocalClock` refuses a segment another local user could have planted
//! (SPEC.md §5.1): owned by someone untrusted, reached through a symbolic
//! link, or in a directory others may write without the sticky bit.
//!
//! The ownership test needs root (to `chown`); run as another user it
//! prints `SKIPPED` on stderr and passes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};

use common::Scratch;
use tsod_client::{AllowedOwners, ClockError, LocalClock};
use tsod_proto::Timescale;
use tsod_proto::shm::{SHM_DEFAULT_PATH, SHM_FILE_SIZE, ShmHeader};
use tsod_shm::{WriteMapping, effective_uid, this_boot_id};

const OTHER_UID: u32 = 65534;

/// A valid segment of this boot at `dir/name`, mode 0644, in a directory
/// of mode 0755.
fn write_segment(dir: &Path, name: &str) -> PathBuf {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join(name);
    let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path).unwrap();
    file.set_len(u64::from(SHM_FILE_SIZE)).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let mapping = WriteMapping::new(&file).unwrap();
    ShmHeader { timescale: Timescale::UtcSmear24h, boot_id: this_boot_id().unwrap() }.write(mapping.segment());
    path
}

#[test]
fn the_default_path_is_in_a_directory_only_tsod_writes() {
    assert_eq!(SHM_DEFAULT_PATH, "/run/tsod/segment");
}

#[test]
fn a_segment_planted_by_another_user_is_refused() {
    if effective_uid() != 0 {
        eprintln!(
            "SKIPPED a_segment_planted_by_another_user_is_refused: needs root to chown (uid {})",
            effective_uid()
        );
        return;
    }
    let dir = Scratch::new("planted");
    let path = write_segment(&dir.0, "segment");
    assert!(LocalClock::open_path(&path).is_ok(), "the same file owned by root is trusted");
    chown(&path, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
    let err = LocalClock::open_path(&path).unwrap_err();
    assert!(matches!(&err, ClockError::ForeignOwner { owner: OTHER_UID, path: p, .. } if *p == path), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("uid 65534") && message.contains("open_path_with_owners"), "{message}");
    // A client told the daemon's uid trusts it.
    let clock = LocalClock::open_path_with_owners(&path, AllowedOwners::with_daemon_uid(OTHER_UID)).unwrap();
    assert_eq!(clock.timescale(), Timescale::UtcSmear24h);
}

#[test]
fn a_symbolic_link_to_a_segment_is_refused() {
    let dir = Scratch::new("symlink");
    let real = write_segment(&dir.0, "real");
    let link = dir.0.join("segment");
    symlink(&real, &link).unwrap();
    assert!(LocalClock::open_path(&real).is_ok());
    let err = LocalClock::open_path(&link).unwrap_err();
    assert!(matches!(&err, ClockError::Symlink { path } if *path == link), "{err:?}");
    assert!(err.to_string().contains("symbolic link"), "{err}");
}

#[test]
fn a_segment_in_a_directory_others_may_write_is_refused() {
    let dir = Scratch::new("open-dir");
    let path = write_segment(&dir.0, "segment");
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o777)).unwrap();
    let err = LocalClock::open_path(&path).unwrap_err();
    assert!(matches!(&err, ClockError::WritableDirectory { mode: 0o777, dir: d, .. } if *d == dir.0), "{err:?}");
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o1777)).unwrap();
    assert!(LocalClock::open_path(&path).is_ok(), "a sticky directory is fine when the file's owner is trusted");
}
