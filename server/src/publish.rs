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
//!   another user planted is never reused (its "previous state" would be a
//!   forged bound); in a sticky directory like `/dev/shm` it cannot be
//!   replaced either, so the daemon refuses to start and says why. A
//!   directory only the daemon's user can write (e.g. `/run/tsod/`) rules
//!   the attack out.
//!   Clients keep their mapping and keep working; the previous state is
//!   returned so the daemon can carry it forward as holdover (it was a true
//!   bound, and extrapolating it at ρ keeps it true).

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tsod_proto::bound::RateBounds;
use tsod_proto::shm::{Anchor, PublishedState, SHM_FILE_SIZE, ShmHeader};
use tsod_proto::{ClockStatus, MonoInstant, TimeInterval, Timescale, Timestamp};
use tsod_shm::{ExclusiveLock, LockError, MapError, WriteMapping, effective_uid, this_boot_id};

/// File mode of the segment: the daemon writes, every local user reads.
const SEGMENT_MODE: u32 = 0o644;

/// Why the segment could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Another process holds the segment's lock.
    #[error("another tsod is already publishing at {0} (its lock file is held)")]
    AlreadyRunning(PathBuf),
    /// The lock file belongs to someone else.
    #[error("lock file {0} is not owned by this user; refusing to share it")]
    ForeignLock(PathBuf),
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
        let lock = lock(path)?;
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
        file.set_len(u64::from(SHM_FILE_SIZE)).map_err(|source| io_error("sizing", &tmp, source))?;
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
