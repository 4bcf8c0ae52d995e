//! Publication: the daemon's side of the shared-memory segment (SPEC.md §5).
//!
//! * One writer: the daemon holds an exclusive `flock` on `<path>.lock` for
//!   as long as it runs; a second daemon on the same path fails to start.
//! * Atomic creation: a new segment is written completely in a temporary
//!   file in the same directory (header, then an `unsynchronized` state),
//!   made readable by everyone (0644), and renamed into place, so a reader
//!   never sees a partial header.
//! * Reuse across restarts: if the file at `path` is a valid segment of this
//!   boot and timescale, owned by the daemon's user and writable by no one
//!   else, the daemon maps it again instead of replacing it. A segment
//!   another user planted is neither reused (its "previous state" would be
//!   a forged bound) nor replaced: anything at `path` another user owns
//!   makes the daemon refuse to start and say why
//!   ([`PublishError::ForeignSegment`]), whatever the directory. A
//!   directory only the daemon's user can write (the default `/run/tsod/`)
//!   rules the attack out. On reuse, clients keep their mapping and keep
//!   working; the previous state is returned so the daemon can carry it
//!   forward as holdover (it was a true bound, and extrapolating it at ρ
//!   keeps it true).
//! * The directory: the default path's directory, `/run/tsod`, is created
//!   (mode 0755) when missing. Other directories are not checked here;
//!   readers refuse a segment in a directory others could replace it in
//!   (SPEC.md §5.1).
//! * Allocation: a new segment's 4096 bytes are allocated with
//!   `posix_fallocate`, so a full tmpfs fails the start instead of raising
//!   `SIGBUS` at the first write through the mapping.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tsod_proto::bound::RateBounds;
use tsod_proto::shm::{Anchor, PublishedState, SHM_DEFAULT_PATH, SHM_FILE_SIZE, ShmHeader};
use tsod_proto::{ClockStatus, MonoInstant, TimeInterval, Timescale, Timestamp};
use tsod_shm::{ExclusiveLock, LockError, MapError, WriteMapping, allocate, effective_uid, this_boot_id};

/// File mode of the segment: the daemon writes, every local user reads.
const SEGMENT_MODE: u32 = 0o644;
/// Mode of the default path's directory when the daemon creates it.
const DEFAULT_DIRECTORY_MODE: u32 = 0o755;

/// Why the segment could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Another process holds the segment's lock.
    #[error("another tsod is already publishing at {0} (its lock file is held)")]
    AlreadyRunning(PathBuf),
    /// The lock file belongs to someone else.
    #[error("lock file {0} is not owned by this user; refusing to share it")]
    ForeignLock(PathBuf),
    /// A file (or link) at the segment's path belongs to another user: it
    /// may be a planted segment, and is neither reused nor replaced.
    #[error(
        "{path} is owned by uid {owner}, not by this daemon's user (uid {uid}); someone else may have planted it: \
         remove it, or publish in a directory only tsod can write (the default /run/tsod)"
    )]
    ForeignSegment {
        /// The segment's path.
        path: PathBuf,
        /// The owner of what is there.
        owner: u32,
        /// This daemon's effective user.
        uid: u32,
    },
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which file.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
    /// The new segment could not be mapped.
    #[error("cannot map segment {0}: {1}")]
    Map(PathBuf, MapError),
}

/// The daemon's handle on its segment.
#[derive(Debug)]
pub struct Publisher {
    mapping: WriteMapping,
    path: PathBuf,
    /// Held for the publisher's lifetime: the flock is released on close.
    _lock: ExclusiveLock,
}

impl Publisher {
    /// Locks, then reuses or creates the segment at `path`. Returns the
    /// state the previous daemon left, when the segment was reused and that
    /// state reads consistently.
    pub fn open(path: &Path, timescale: Timescale) -> Result<(Self, Option<PublishedState>), PublishError> {
        ensure_default_directory(path)?;
        let lock = lock(path)?;
        refuse_foreign(path)?;
        let boot = this_boot_id().map_err(|source| io_error("reading boot id for", path, source))?;
        if let Some(mapping) = reusable(path, timescale, boot) {
            let previous = mapping.segment().read().ok();
            return Ok((Self { mapping, path: path.to_path_buf(), _lock: lock }, previous));
        }
        let mapping = create(path, ShmHeader { timescale, boot_id: boot })?;
        Ok((Self { mapping, path: path.to_path_buf(), _lock: lock }, None))
    }

    /// Publishes `state` (the seqlock's writer side).
    pub fn publish(&self, state: &PublishedState) {
        self.mapping.segment().publish(state);
    }

    /// The segment's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The state of a segment that holds no bound yet.
pub fn unsynchronized_state(writer_instance: u64, disruption_count: u64) -> PublishedState {
    PublishedState {
        anchor: Anchor {
            reference: MonoInstant::from_nanos(0),
            interval: TimeInterval::point(Timestamp::EPOCH),
            rates: RateBounds::EXACT,
            status: ClockStatus::Unsynchronized,
            valid_until: MonoInstant::from_nanos(0),
        },
        disruption_count,
        reference_boottime: MonoInstant::from_nanos(0),
        writer_instance,
    }
}

fn io_error(what: &'static str, path: &Path, source: io::Error) -> PublishError {
    PublishError::Io { what, path: path.to_path_buf(), source }
}

/// Creates `/run/tsod` (mode 0755, owned by this daemon's user) when
/// `path` is in the default path's directory and that directory is missing.
fn ensure_default_directory(path: &Path) -> Result<(), PublishError> {
    let default_dir = Path::new(SHM_DEFAULT_PATH).parent();
    match (path.parent(), default_dir) {
        (Some(dir), Some(default_dir)) if dir == default_dir => create_directory(dir),
        _ => Ok(()),
    }
}

/// Creates the one directory `dir` (its parent must exist) with mode 0755
/// whatever the umask; an existing directory is left as it is.
fn create_directory(dir: &Path) -> Result<(), PublishError> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new().mode(DEFAULT_DIRECTORY_MODE).create(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(DEFAULT_DIRECTORY_MODE))
            .map_err(|source| io_error("setting permissions of", dir, source)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(io_error(
            "creating the segment directory (create it for tsod's user, e.g. systemd RuntimeDirectory=tsod, or set [publish] path)",
            dir,
            source,
        )),
    }
}

/// Refuses whatever is at `path` (file, link, anything) when another user
/// owns it: it is neither reused nor replaced.
fn refuse_foreign(path: &Path) -> Result<(), PublishError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.uid() != effective_uid() => {
            Err(PublishError::ForeignSegment { path: path.to_path_buf(), owner: meta.uid(), uid: effective_uid() })
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io_error("inspecting", path, source)),
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    path.with_file_name(name)
}

fn lock(path: &Path) -> Result<ExclusiveLock, PublishError> {
    let lock_path = lock_path(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(SEGMENT_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock_path)
        .map_err(|source| io_error("opening lock file", &lock_path, source))?;
    let meta = file.metadata().map_err(|source| io_error("inspecting lock file", &lock_path, source))?;
    if meta.uid() != effective_uid() {
        return Err(PublishError::ForeignLock(lock_path));
    }
    ExclusiveLock::try_acquire(file).map_err(|e| match e {
        LockError::HeldElsewhere => PublishError::AlreadyRunning(path.to_path_buf()),
        LockError::Os(source) => io_error("locking", &lock_path, source),
    })
}

/// The existing segment at `path`, if it is ours (owned by this user,
/// writable by no one else) and valid for this boot and timescale.
fn reusable(path: &Path, timescale: Timescale, boot: [u8; 16]) -> Option<WriteMapping> {
    let file = OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOFOLLOW).open(path).ok()?;
    let meta = file.metadata().ok()?;
    if meta.uid() != effective_uid() || meta.mode() & 0o022 != 0 {
        return None;
    }
    let mapping = WriteMapping::new(&file).ok()?;
    let header = ShmHeader::read(mapping.segment(), Some(boot)).ok()?;
    (header.timescale == timescale).then_some(mapping)
}

/// Writes a fresh segment to a temporary file and renames it into place.
fn create(path: &Path, header: ShmHeader) -> Result<WriteMapping, PublishError> {
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    // A leftover of ours from a crash may be in the way; anything else there
    // (a planted file or symlink) makes create_new fail instead of being used.
    let _ = fs::remove_file(&tmp);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(SEGMENT_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|source| io_error("creating", &tmp, source))?;
    let result = (|| {
        // The umask may have narrowed the mode: readers need 0644.
        file.set_permissions(fs::Permissions::from_mode(SEGMENT_MODE))
            .map_err(|source| io_error("setting permissions of", &tmp, source))?;
        allocate(&file, u64::from(SHM_FILE_SIZE))
            .map_err(|source| io_error("allocating 4096 bytes (is the file system full?) for", &tmp, source))?;
        let mapping = WriteMapping::new(&file).map_err(|e| PublishError::Map(tmp.clone(), e))?;
        header.write(mapping.segment());
        mapping.segment().publish(&unsynchronized_state(0, 0));
        fs::rename(&tmp, path).map_err(|source| {
            let what = if source.kind() == io::ErrorKind::PermissionDenied {
                "replacing a segment another user owns (remove it, or publish in a directory only tsod can write)"
            } else {
                "renaming into place"
            };
            io_error(what, path, source)
        })?;
        Ok(mapping)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::chown;

    use super::*;

    /// A directory (mode 0755) removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("tsod-publish-unit-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir(&dir).unwrap();
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
            Self(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const OTHER_UID: u32 = 65534;

    #[test]
    fn a_segment_another_user_owns_is_neither_reused_nor_replaced() {
        if effective_uid() != 0 {
            eprintln!("SKIPPED a_segment_another_user_owns_is_neither_reused_nor_replaced: needs root to chown");
            return;
        }
        let dir = Scratch::new("foreign");
        let path = dir.0.join("segment");
        drop(Publisher::open(&path, Timescale::UtcSmear24h).unwrap());
        chown(&path, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
        let inode = fs::metadata(&path).unwrap().ino();
        let err = Publisher::open(&path, Timescale::UtcSmear24h).unwrap_err();
        assert!(matches!(&err, PublishError::ForeignSegment { owner: OTHER_UID, uid: 0, .. }), "{err:?}");
        assert!(err.to_string().contains("planted"), "{err}");
        assert_eq!(fs::metadata(&path).unwrap().ino(), inode, "left in place, for the operator to look at");

        // A planted symbolic link, whoever it points to, is refused the same way.
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
        std::os::unix::fs::lchown(&path, Some(OTHER_UID), None).unwrap();
        assert!(matches!(Publisher::open(&path, Timescale::UtcSmear24h), Err(PublishError::ForeignSegment { .. })));
    }

    #[test]
    fn a_new_segment_is_allocated_in_full() {
        let dir = Scratch::new("allocated");
        let path = dir.0.join("segment");
        let _publisher = Publisher::open(&path, Timescale::UtcSmear24h).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), u64::from(SHM_FILE_SIZE));
        assert!(
            meta.blocks() * 512 >= u64::from(SHM_FILE_SIZE),
            "blocks allocated, not a sparse file: {}",
            meta.blocks()
        );
    }

    #[test]
    fn only_the_default_directory_is_created_with_mode_0755() {
        let dir = Scratch::new("mkdir");
        let sub = dir.0.join("tsod");
        create_directory(&sub).unwrap();
        assert_eq!(fs::metadata(&sub).unwrap().permissions().mode() & 0o7777, 0o755);
        assert_eq!(fs::metadata(&sub).unwrap().uid(), effective_uid());
        create_directory(&sub).unwrap();

        // A missing directory other than the default one's is not created.
        let elsewhere = dir.0.join("missing").join("segment");
        ensure_default_directory(&elsewhere).unwrap();
        assert!(!dir.0.join("missing").exists());
        assert!(Publisher::open(&elsewhere, Timescale::UtcSmear24h).is_err());
    }
}
