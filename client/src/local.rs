//! [`LocalClock`]: the bounded clock of the tsod daemon on this host, read
//! from its shared-memory segment with one clock read and no system call.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tsod_proto::shm::{BoundError, PublishedState, SHM_DEFAULT_PATH, SHM_PATH_ENV, ShmError};
use tsod_proto::{ClockStatus, TimeInterval, Timescale};

use crate::mapping::{MapError, ReadMapping};
use crate::sys;

/// Why [`LocalClock`] gives no interval (SPEC.md §6).
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    /// The segment file could not be opened (is tsod running? right path?).
    #[error("cannot open tsod segment {path}: {source}")]
    Open {
        /// The path tried.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file could not be mapped.
    #[error("cannot map tsod segment {path}: {source}")]
    Map {
        /// The path tried.
        path: PathBuf,
        /// Why.
        source: MapError,
    },
    /// The segment is unusable (wrong format, other boot, busy, corrupt).
    #[error(transparent)]
    Segment(#[from] ShmError),
    /// The segment is fine but holds no valid bound now.
    #[error(transparent)]
    Bound(#[from] BoundError),
    /// The reader clock could not be read.
    #[error("cannot read CLOCK_MONOTONIC_RAW: {0}")]
    Clock(io::Error),
    /// [`LocalClock::wait_until_synchronized`] ran out of time.
    #[error("not synchronized after {0:?}; last error: {1}")]
    Timeout(Duration, Box<ClockError>),
}

/// The local tsod's bounded clock. Cheap to share between threads (`&self`
/// everywhere); one instance per process is enough.
#[derive(Debug)]
pub struct LocalClock {
    mapping: ReadMapping,
    timescale: Timescale,
    path: PathBuf,
}

impl LocalClock {
    /// Opens the segment at `$TSOD_SHM`, or `/dev/shm/tsod`.
    pub fn open() -> Result<Self, ClockError> {
        let path = std::env::var_os(SHM_PATH_ENV).map_or_else(|| PathBuf::from(SHM_DEFAULT_PATH), PathBuf::from);
        Self::open_path(path)
    }

    /// Opens the segment at `path` and checks its header, including that it
    /// was written during this boot.
    pub fn open_path(path: impl AsRef<Path>) -> Result<Self, ClockError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| ClockError::Open { path: path.clone(), source })?;
        let mapping = ReadMapping::new(&file).map_err(|source| ClockError::Map { path: path.clone(), source })?;
        let boot = sys::this_boot_id().map_err(|source| ClockError::Open { path: path.clone(), source })?;
        let header = mapping.header(Some(boot))?;
        Ok(Self { mapping, timescale: header.timescale, path })
    }

    /// An interval that contains true time now, or why there is none.
    /// One `CLOCK_MONOTONIC_RAW` read (vDSO), a lock-free seqlock copy, and
    /// integer arithmetic; callable from any number of threads at once.
    pub fn now(&self) -> Result<TimeInterval, ClockError> {
        let now = sys::reader_clock_now().map_err(ClockError::Clock)?;
        Ok(self.mapping.read_anchor()?.interval_at(now)?)
    }

    /// The daemon's status as published (no interval computed).
    pub fn status(&self) -> Result<ClockStatus, ClockError> {
        Ok(self.mapping.read_anchor()?.status)
    }

    /// The whole published state, for tools that show it.
    pub fn published_state(&self) -> Result<PublishedState, ClockError> {
        Ok(self.mapping.read()?)
    }

    /// The timescale of every interval this clock returns.
    pub fn timescale(&self) -> Timescale {
        self.timescale
    }

    /// The segment path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Blocks until [`LocalClock::now`] returns an interval, polling every
    /// 10 ms, or fails with the last error after `timeout` — for start-up,
    /// when the daemon may still be acquiring its sources.
    pub fn wait_until_synchronized(&self, timeout: Duration) -> Result<TimeInterval, ClockError> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            match self.now() {
                Ok(interval) => return Ok(interval),
                Err(e) if deadline.is_some_and(|d| Instant::now() >= d) => {
                    return Err(ClockError::Timeout(timeout, Box::new(e)));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}
