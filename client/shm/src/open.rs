//! Opening the segment file so that a local user cannot substitute their
//! own (SPEC.md §5.1, "Readers"). The segment's directory may be shared
//! (`/dev/shm` is world-writable), so the path alone proves nothing: a user
//! could plant a file, or a symbolic link to one, before the daemon starts.
//! [`open_segment`] therefore opens the directory, then the file inside it
//! without following a symbolic link, and checks what it got with `fstat`:
//!
//! 1. the file is not a symbolic link (`O_NOFOLLOW`) and is a regular file;
//! 2. its owner is in the [`AllowedOwners`]: root, this process's effective
//!    user, and the daemon's user (the `tsod` system account if the host
//!    has one, or the one the caller names);
//! 3. neither group nor others may write it;
//! 4. the directory's owner is in the allowed owners (a directory's owner
//!    can always replace its entries), and if group or others may write the
//!    directory, it has the sticky bit (then only the file's owner, the
//!    directory's owner and root can rename or remove the entry, and both
//!    owners were just checked);
//! 5. it is exactly 4096 bytes, and is mapped shared and read-only.
//!
//! The file is opened relative to the directory's descriptor (`openat`), so
//! the directory checked is the one the file was found in. Ancestors of the
//! directory and ACLs are not inspected. The open is non-blocking, so a FIFO
//! planted at the path is refused instead of hanging the reader.

use std::ffi::{CString, OsStr};
use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};

use crate::mapping::{MapError, ReadMapping};
use crate::user::effective_uid;

/// The users whose segment a reader trusts: root, the effective user of
/// this process (a user running their own daemon, and tests), and
/// optionally the daemon's user when it is neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedOwners {
    euid: u32,
    daemon: Option<u32>,
}

impl AllowedOwners {
    /// Root, this process's effective user, and the packaged daemon's
    /// system account `tsod` if the host has one
    /// ([`crate::user::system_user_uid`]: a system uid, so an ordinary
    /// user who happens to be named `tsod` is not trusted).
    pub fn this_process() -> Self {
        Self { euid: effective_uid(), daemon: crate::user::system_user_uid(crate::user::DAEMON_USER) }
    }

    /// Root, this process's effective user, and `daemon_uid` (the user the
    /// daemon runs as, e.g. a dedicated `tsod` account).
    pub fn with_daemon_uid(daemon_uid: u32) -> Self {
        Self { euid: effective_uid(), daemon: Some(daemon_uid) }
    }

    /// Whether a file owned by `uid` is trusted.
    pub fn contains(&self, uid: u32) -> bool {
        uid == 0 || uid == self.euid || self.daemon == Some(uid)
    }
}

impl Default for AllowedOwners {
    fn default() -> Self {
        Self::this_process()
    }
}

impl fmt::Display for AllowedOwners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "root (uid 0), this process's user (uid {})", self.euid)?;
        if let Some(uid) = self.daemon {
            write!(f, ", the daemon's user (uid {uid})")?;
        }
        Ok(())
    }
}

/// Why [`open_segment`] refused the file (SPEC.md §5.1).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory or the file could not be opened (missing: is tsod
    /// running, and is this its path?).
    #[error("cannot open: {0}")]
    Io(io::Error),
    /// The path is a symbolic link. Segments are never links; point the
    /// client (`TSOD_SHM`) at the file itself.
    #[error("it is a symbolic link; refusing to follow it (point TSOD_SHM at the daemon's segment file itself)")]
    Symlink,
    /// The path is a directory, FIFO, socket or device, not a segment.
    #[error("it is a {0}, not a regular file (someone else put it there; remove it and restart tsod)")]
    NotRegularFile(&'static str),
    /// The file is owned by a user the reader does not trust: possibly a
    /// segment planted by another local user before the daemon started.
    #[error(
        "it is owned by uid {owner}, but only segments owned by {allowed} are trusted \
         (remove the file if it is not tsod's, or tell the client the daemon's uid)"
    )]
    ForeignOwner {
        /// The file's owner.
        owner: u32,
        /// Who would have been trusted.
        allowed: AllowedOwners,
    },
    /// Group or others may write the file: anyone could forge bounds in it.
    #[error("it has mode {0:o}: writable by group or others, so its bounds cannot be trusted")]
    WritableByOthers(u32),
    /// The directory belongs to an untrusted user, who can replace the file.
    #[error(
        "its directory {dir} is owned by uid {owner}, who could replace the segment; \
         only directories owned by {allowed} are trusted (publish in e.g. /run/tsod)"
    )]
    ForeignDirectory {
        /// The directory.
        dir: PathBuf,
        /// Its owner.
        owner: u32,
        /// Who would have been trusted.
        allowed: AllowedOwners,
    },
    /// Group or others may write the directory and it has no sticky bit, so
    /// they can replace the segment with their own.
    #[error(
        "its directory {dir} has mode {mode:o}: writable by others without the sticky bit, so anyone \
         could replace the segment (chmod go-w or +t the directory, or publish in e.g. /run/tsod)"
    )]
    WritableDirectory {
        /// The directory.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file passed every check but could not be mapped (wrong size).
    #[error(transparent)]
    Map(MapError),
}

/// A segment file opened and checked by [`open_segment`].
#[derive(Debug)]
pub struct OpenedSegment {
    /// The read-only mapping.
    pub mapping: ReadMapping,
    /// `st_dev` of the file, to tell a replaced file from this one.
    pub device: u64,
    /// `st_ino` of the file.
    pub inode: u64,
}

/// Opens the segment at `path` by the rules of this module's doc, and maps
/// it read-only. The header is not checked here (`ReadMapping::header`).
pub fn open_segment(path: &Path, allowed: &AllowedOwners) -> Result<OpenedSegment, OpenError> {
    let (dir_path, name) = split_segment_path(path)?;
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir_path)
        .map_err(OpenError::Io)?;
    let file = open_in(&dir, name).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => OpenError::Symlink,
        _ => OpenError::Io(e),
    })?;
    let meta = file.metadata().map_err(OpenError::Io)?;
    check_file(&meta, allowed)?;
    let dir_meta = dir.metadata().map_err(OpenError::Io)?;
    check_directory(dir_path, &dir_meta, allowed)?;
    let mapping = ReadMapping::new(&file).map_err(OpenError::Map)?;
    Ok(OpenedSegment { mapping, device: meta.dev(), inode: meta.ino() })
}

/// The checks on the opened file: regular, trusted owner, writable by
/// its owner only.
pub fn check_file(meta: &Metadata, allowed: &AllowedOwners) -> Result<(), OpenError> {
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(OpenError::Symlink);
    }
    if !kind.is_file() {
        return Err(OpenError::NotRegularFile(kind_name(&kind)));
    }
    if !allowed.contains(meta.uid()) {
        return Err(OpenError::ForeignOwner { owner: meta.uid(), allowed: *allowed });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(OpenError::WritableByOthers(mode));
    }
    Ok(())
}

/// The checks on the segment's directory `dir` (whose metadata is `meta`):
/// a trusted owner, and not writable by group or others unless sticky.
pub fn check_directory(dir: &Path, meta: &Metadata, allowed: &AllowedOwners) -> Result<(), OpenError> {
    if !allowed.contains(meta.uid()) {
        return Err(OpenError::ForeignDirectory { dir: dir.to_path_buf(), owner: meta.uid(), allowed: *allowed });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(OpenError::WritableDirectory { dir: dir.to_path_buf(), mode });
    }
    Ok(())
}

/// The directory holding `path` (`.` for a bare name) and the file's name.
pub fn split_segment_path(path: &Path) -> Result<(&Path, &OsStr), OpenError> {
    let name = path.file_name().ok_or_else(|| {
        OpenError::Io(io::Error::new(io::ErrorKind::InvalidInput, "the segment path does not name a file"))
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

fn kind_name(kind: &std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "directory"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_socket() {
        "socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

/// `openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)`.
#[expect(unsafe_code, reason = "openat is a C function, and its descriptor becomes a File")]
fn open_in(dir: &File, name: &OsStr) -> io::Result<File> {
    let name = CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the segment path contains a NUL byte"))?;
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
    // SAFETY: `dir` owns an open directory descriptor for the duration of
    // the call, `name` is a NUL-terminated string that outlives it; openat
    // writes no memory of ours.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat, is valid and open, and is
    // owned by nothing else; the File takes sole ownership and closes it.
    Ok(unsafe { File::from_raw_fd(fd) })
}
