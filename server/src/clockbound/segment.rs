//! The ClockBound segment's file: where it may be, who created it, and
//! never writing into one tsod did not create (SPEC.md §5.8).
//!
//! * The directory: created (mode 0755, only its last component) when
//!   missing, as ClockBound's own `/var/run/clockbound` is. An existing one
//!   must belong to root or the daemon's user and be writable by no one
//!   else: ClockBound's readers open the path without any check, so whoever
//!   could replace the file there could feed them any bound.
//! * One writer: an exclusive `flock` on `<path>.lock` (owned by the
//!   daemon's user, never removed), as for tsod's own segment.
//! * "tsod created it": a file at the path is reused only if it is a
//!   regular file of the daemon's user, writable by no one else, one page
//!   long, with ClockBound's header and tsod's marker at byte 128
//!   (`tsod_shm::TSOD_MARKER`), which ClockBound's daemon (an 80-byte file)
//!   never writes. Anything else at the path (ClockBound's own segment,
//!   another user's file, a link, a directory) is refused and left as it
//!   is; the daemon does not start.
//! * Reuse keeps the inode: ClockBound's readers map the file once and
//!   never open it again, so a restarted daemon must write into the file
//!   they have mapped. A new file is written completely (header, marker and
//!   an `unknown` record) under a temporary name and renamed into place.
//! * While running, another writer (ClockBound's daemon started on the same
//!   path adopts any valid segment) shows as a `generation` the daemon did
//!   not write: it then stops writing ([`Segment::still_ours`]).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tsod_shm::{
    CLOCKBOUND_FILE_SIZE, ClockBoundMapping, ClockBoundRecord, ExclusiveLock, LockError, MapError, allocate,
    effective_uid,
};

/// Mode of the segment and its lock file: the daemon writes, everyone reads.
const FILE_MODE: u32 = 0o644;
/// Mode of the directory when the daemon creates it.
const DIRECTORY_MODE: u32 = 0o755;

/// Why the ClockBound segment could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClockBoundError {
    /// Something at the path was not created by tsod: it is left alone.
    #[error(
        "{path} exists and was not created by tsod ({why}); tsod never writes into a segment it did not create: \
         if another daemon (ClockBound's clockbound, or another tsod) owns it, stop that daemon and remove the \
         file, or set [clockbound] path elsewhere"
    )]
    NotOurs {
        /// The segment's path.
        path: PathBuf,
        /// What gave it away.
        why: String,
    },
    /// The directory lets another user replace the segment.
    #[error(
        "the ClockBound segment's directory {dir} {why}: another user could replace the segment ClockBound readers \
         trust; use a directory only root or tsod's user can write (tsod creates a missing one with mode 0755)"
    )]
    UnsafeDirectory {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// Another tsod holds the lock.
    #[error("another tsod is already publishing the ClockBound segment {0} (its lock file is held)")]
    AlreadyRunning(PathBuf),
    /// The lock file belongs to another user.
    #[error("lock file {0} is not owned by this user; refusing to share it")]
    ForeignLock(PathBuf),
    /// `CLOCK_MONOTONIC_COARSE` could not be read.
    #[error("reading CLOCK_MONOTONIC_COARSE, the clock ClockBound readers use: {0}")]
    Clock(#[source] io::Error),
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
    /// The segment could not be mapped.
    #[error("cannot map the ClockBound segment {0}: {1}")]
    Map(PathBuf, MapError),
}

/// The daemon's handle on the ClockBound segment it created.
#[derive(Debug)]
pub struct Segment {
    mapping: ClockBoundMapping,
    path: PathBuf,
    /// The generation of the last record written here.
    generation: u16,
    /// Held for the segment's lifetime: the flock is released on close.
    _lock: ExclusiveLock,
}

impl Segment {
    /// Checks the directory, locks, then reuses the segment at `path` if
    /// tsod created it, or creates one holding `first` if nothing is there.
    /// Returns whether an existing segment was reused.
    pub fn open(path: &Path, first: &ClockBoundRecord) -> Result<(Self, bool), ClockBoundError> {
        let dir = directory_of(path);
        ensure_directory(&dir)?;
        let lock = lock(path)?;
        let (mapping, reused) = match ours(path)? {
            Some(mapping) => (mapping, true),
            None => (create(path, first)?, false),
        };
        let generation = mapping.generation();
        Ok((Self { mapping, path: path.to_path_buf(), generation, _lock: lock }, reused))
    }

    /// Writes `record` (the seqlock's writer side).
    pub fn write(&mut self, record: &ClockBoundRecord) {
        self.generation = self.mapping.publish(record);
    }

    /// Whether only this daemon wrote the segment since its last record: a
    /// `generation` it did not write means another process writes here.
    pub fn still_ours(&self) -> bool {
        self.mapping.generation() == self.generation && self.mapping.is_tsod_segment()
    }

    /// The segment's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn io_error(what: &'static str, path: &Path, source: io::Error) -> ClockBoundError {
    ClockBoundError::Io { what, path: path.to_path_buf(), source }
}

fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates `dir` (mode 0755 whatever the umask; its parent must exist) if
/// missing, then checks that only root or this user can change it.
fn ensure_directory(dir: &Path) -> Result<(), ClockBoundError> {
    match fs::DirBuilder::new().mode(DIRECTORY_MODE).create(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(DIRECTORY_MODE))
            .map_err(|source| io_error("setting permissions of", dir, source))?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(source) => return Err(io_error("creating the ClockBound segment's directory", dir, source)),
    }
    let meta = fs::metadata(dir).map_err(|source| io_error("inspecting", dir, source))?;
    check_directory(dir, &meta, effective_uid())
}

/// The directory rules: a directory, owned by root or `uid`, writable by
/// neither group nor others (sticky or not: anyone could plant the file
/// while the daemon is stopped, and ClockBound's readers check nothing).
fn check_directory(dir: &Path, meta: &fs::Metadata, uid: u32) -> Result<(), ClockBoundError> {
    let refuse = |why: String| Err(ClockBoundError::UnsafeDirectory { dir: dir.to_path_buf(), why });
    if !meta.is_dir() {
        return refuse("is not a directory".to_owned());
    }
    if meta.uid() != 0 && meta.uid() != uid {
        return refuse(format!("is owned by uid {}, neither root nor this daemon's user (uid {uid})", meta.uid()));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return refuse(format!("has mode {mode:o}: group or others may write it"));
    }
    Ok(())
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    path.with_file_name(name)
}

fn lock(path: &Path) -> Result<ExclusiveLock, ClockBoundError> {
    let lock_path = lock_path(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock_path)
        .map_err(|source| io_error("opening lock file", &lock_path, source))?;
    let meta = file.metadata().map_err(|source| io_error("inspecting lock file", &lock_path, source))?;
    if meta.uid() != effective_uid() {
        return Err(ClockBoundError::ForeignLock(lock_path));
    }
    ExclusiveLock::try_acquire(file).map_err(|e| match e {
        LockError::HeldElsewhere => ClockBoundError::AlreadyRunning(path.to_path_buf()),
        LockError::Os(source) => io_error("locking", &lock_path, source),
    })
}

/// The segment at `path` mapped for writing if tsod created it, `None` if
/// nothing is there; anything else is refused.
fn ours(path: &Path) -> Result<Option<ClockBoundMapping>, ClockBoundError> {
    let not_ours = |why: String| ClockBoundError::NotOurs { path: path.to_path_buf(), why };
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_error("inspecting", path, source)),
    };
    if meta.file_type().is_symlink() {
        return Err(not_ours("it is a symbolic link".to_owned()));
    }
    if !meta.is_file() {
        return Err(not_ours("it is not a regular file".to_owned()));
    }
    let uid = effective_uid();
    if meta.uid() != uid {
        return Err(not_ours(format!("it is owned by uid {}, not by this daemon's user (uid {uid})", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(not_ours(format!("it has mode {:o}: group or others may write it", meta.mode() & 0o7777)));
    }
    if meta.len() != CLOCKBOUND_FILE_SIZE {
        return Err(not_ours(format!(
            "it is {} bytes, tsod's are {CLOCKBOUND_FILE_SIZE} (ClockBound's own daemon writes 80)",
            meta.len()
        )));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| io_error("opening", path, source))?;
    let mapping = ClockBoundMapping::new(&file).map_err(|e| ClockBoundError::Map(path.to_path_buf(), e))?;
    if !mapping.is_tsod_segment() {
        return Err(not_ours("it has no ClockBound header with tsod's marker".to_owned()));
    }
    Ok(Some(mapping))
}

/// Writes a fresh segment holding `first` to a temporary file and renames
/// it into place.
fn create(path: &Path, first: &ClockBoundRecord) -> Result<ClockBoundMapping, ClockBoundError> {
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    // A leftover of ours from a crash may be in the way; anything else there
    // makes create_new fail instead of being used.
    let _ = fs::remove_file(&tmp);
    let file: File = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|source| io_error("creating", &tmp, source))?;
    let result = (|| {
        // The umask may have narrowed the mode: every local reader needs 0644.
        file.set_permissions(fs::Permissions::from_mode(FILE_MODE))
            .map_err(|source| io_error("setting permissions of", &tmp, source))?;
        allocate(&file, CLOCKBOUND_FILE_SIZE)
            .map_err(|source| io_error("allocating the segment (is the file system full?)", &tmp, source))?;
        let mapping = ClockBoundMapping::new(&file).map_err(|e| ClockBoundError::Map(tmp.clone(), e))?;
        mapping.initialize();
        mapping.publish(first);
        fs::rename(&tmp, path).map_err(|source| io_error("renaming into place", path, source))?;
        Ok(mapping)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tsod_proto::{MonoInstant, Ppb};
    use tsod_shm::ClockBoundStatus;

    use super::*;

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("tsod-cb-unit-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir(&dir).unwrap();
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
            Self(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o755));
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn unknown() -> ClockBoundRecord {
        ClockBoundRecord {
            as_of: MonoInstant::from_nanos(1),
            void_after: MonoInstant::from_nanos(1),
            bound: Duration::from_secs(3_600),
            disruption_marker: 0,
            max_drift: Ppb::ZERO,
            status: ClockBoundStatus::Unknown,
            disruption_support: false,
        }
    }

    #[test]
    fn a_missing_directory_is_created_0755_and_the_segment_0644_then_reused_with_its_inode() {
        let scratch = Scratch::new("create");
        let path = scratch.0.join("clockbound").join("shm0");
        let (mut segment, reused) = Segment::open(&path, &unknown()).unwrap();
        assert!(!reused);
        let dir = fs::metadata(scratch.0.join("clockbound")).unwrap();
        assert_eq!(dir.mode() & 0o7777, 0o755);
        let meta = fs::metadata(&path).unwrap();
        assert_eq!((meta.mode() & 0o7777, meta.len()), (0o644, 4096));
        assert_eq!(segment.mapping.read().map(|(g, r)| (g, r.status)), Some((2, ClockBoundStatus::Unknown)));
        segment.write(&ClockBoundRecord { status: ClockBoundStatus::Synchronized, ..unknown() });
        assert!(segment.still_ours());
        // Locked while open.
        assert!(matches!(Segment::open(&path, &unknown()), Err(ClockBoundError::AlreadyRunning(_))));
        drop(segment);
        let (segment, reused) = Segment::open(&path, &unknown()).unwrap();
        assert!(reused, "a restart reuses the file readers have mapped");
        assert_eq!(fs::metadata(&path).unwrap().ino(), meta.ino());
        assert_eq!(segment.generation, 4, "the generation carries on");
        assert_eq!(segment.mapping.read().map(|(_, r)| r.status), Some(ClockBoundStatus::Synchronized));
        assert_eq!(segment.path(), path);
    }

    #[test]
    fn another_writer_is_noticed() {
        let scratch = Scratch::new("other-writer");
        let path = scratch.0.join("shm0");
        let (segment, _) = Segment::open(&path, &unknown()).unwrap();
        assert!(segment.still_ours());
        // Another process maps the same file and writes a record.
        let file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        ClockBoundMapping::new(&file).unwrap().publish(&unknown());
        assert!(!segment.still_ours());
    }

    #[test]
    fn a_file_tsod_did_not_create_is_refused_and_left_untouched() {
        let scratch = Scratch::new("foreign");
        let path = scratch.0.join("shm0");
        // What ClockBound's daemon writes: an 80-byte segment.
        let mut clockbound = vec![0u8; 80];
        clockbound[..4].copy_from_slice(&0x414D_5A4Eu32.to_ne_bytes());
        clockbound[4..8].copy_from_slice(&0x4342_0200u32.to_ne_bytes());
        clockbound[8..12].copy_from_slice(&80u32.to_ne_bytes());
        clockbound[12..14].copy_from_slice(&2u16.to_ne_bytes());
        clockbound[14..16].copy_from_slice(&10u16.to_ne_bytes());
        // A page with ClockBound's header but no tsod marker.
        let mut page = clockbound.clone();
        page.resize(4096, 0);
        for (content, says) in [(clockbound, "80 bytes"), (page, "marker")] {
            fs::write(&path, &content).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            let err = Segment::open(&path, &unknown()).unwrap_err();
            assert!(matches!(&err, ClockBoundError::NotOurs { .. }), "{err:?}");
            let text = err.to_string();
            assert!(text.contains("not created by tsod") && text.contains(says), "{text}");
            assert_eq!(fs::read(&path).unwrap(), content, "untouched");
        }
        // Writable by others, even if tsod's.
        fs::remove_file(&path).unwrap();
        drop(Segment::open(&path, &unknown()).unwrap());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(Segment::open(&path, &unknown()).unwrap_err().to_string().contains("group or others"));
        // A symbolic link, and a directory.
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
        assert!(Segment::open(&path, &unknown()).unwrap_err().to_string().contains("symbolic link"));
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(Segment::open(&path, &unknown()).unwrap_err().to_string().contains("not a regular file"));
    }

    #[test]
    fn a_directory_others_may_write_is_refused_sticky_or_not() {
        let scratch = Scratch::new("dir");
        let path = scratch.0.join("shm0");
        for mode in [0o777, 0o1777, 0o775, 0o757] {
            fs::set_permissions(&scratch.0, fs::Permissions::from_mode(mode)).unwrap();
            let err = Segment::open(&path, &unknown()).unwrap_err();
            assert!(matches!(err, ClockBoundError::UnsafeDirectory { .. }), "{mode:o}: {err:?}");
            assert!(err.to_string().contains("group or others may write"), "{err}");
            assert!(!path.exists());
        }
        let meta = fs::metadata(&scratch.0).unwrap();
        let err = check_directory(&scratch.0, &meta, meta.uid().wrapping_add(1)).unwrap_err();
        assert!(if meta.uid() == 0 {
            err.to_string().contains("mode")
        } else {
            err.to_string().contains("owned by uid")
        });
    }
}
