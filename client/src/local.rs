//! [`LocalClock`]: the bounded clock of the tsod daemon on this host, read
//! from its shared-memory segment with no system call into the daemon:
//! [`LocalClock::now`] reads the reader clock and `CLOCK_BOOTTIME` (the
//! suspend check of SPEC.md §5.6), [`LocalClock::now_unchecked`] the reader
//! clock alone.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tsod_proto::shm::{BoundError, PublishedState, SHM_DEFAULT_PATH, SHM_PATH_ENV, ShmError};
use tsod_proto::{ClockStatus, MonoInstant, TimeInterval, Timescale};
use tsod_shm::{AllowedOwners, OpenError, open_segment};

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
    /// The segment file is writable by users other than its owner: anyone
    /// could forge bounds in it.
    #[error("tsod segment {path} has mode {mode:o}: writable by others, so its bounds cannot be trusted")]
    Insecure {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The path is a symbolic link, which is never followed: a link in a
    /// shared directory could point at a forged segment.
    #[error(
        "tsod segment {path} is a symbolic link; refusing to follow it (point TSOD_SHM at the segment file itself)"
    )]
    Symlink {
        /// The path.
        path: PathBuf,
    },
    /// The path is not a regular file (a directory, FIFO, socket, device).
    #[error("tsod segment {path} is a {kind}, not a regular file; remove it and restart tsod")]
    NotRegularFile {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The segment file is owned by a user that is neither root, this
    /// process's user nor the daemon user given to
    /// [`LocalClock::open_path_with_owners`]: possibly a segment another
    /// local user planted before the daemon started.
    #[error(
        "tsod segment {path} is owned by uid {owner}, but only segments owned by {allowed} are trusted \
         (remove the file if tsod did not write it, or open it with LocalClock::open_path_with_owners and the daemon's uid)"
    )]
    ForeignOwner {
        /// The path.
        path: PathBuf,
        /// The file's owner.
        owner: u32,
        /// Who would have been trusted.
        allowed: AllowedOwners,
    },
    /// The segment's directory is owned by an untrusted user, who could
    /// replace the segment.
    #[error(
        "tsod segment {path}: its directory {dir} is owned by uid {owner}, who could replace the segment; \
         only directories owned by {allowed} are trusted (publish in e.g. /run/tsod)"
    )]
    ForeignDirectory {
        /// The path.
        path: PathBuf,
        /// The directory.
        dir: PathBuf,
        /// The directory's owner.
        owner: u32,
        /// Who would have been trusted.
        allowed: AllowedOwners,
    },
    /// The segment's directory is writable by group or others and has no
    /// sticky bit: anyone could replace the segment by their own.
    #[error(
        "tsod segment {path}: its directory {dir} has mode {mode:o}, writable by others without the sticky bit, \
         so anyone could replace the segment (chmod go-w or +t the directory, or publish in e.g. /run/tsod)"
    )]
    WritableDirectory {
        /// The path.
        path: PathBuf,
        /// The directory.
        dir: PathBuf,
        /// The directory's permission bits.
        mode: u32,
    },
    /// The segment is unusable (wrong format, other boot, busy, corrupt).
    #[error(transparent)]
    Segment(#[from] ShmError),
    /// The segment is fine but holds no valid bound now.
    #[error(transparent)]
    Bound(#[from] BoundError),
    /// The reader clock (or, for the suspend check, `CLOCK_BOOTTIME`) could
    /// not be read.
    #[error("cannot read CLOCK_MONOTONIC_RAW or CLOCK_BOOTTIME: {0}")]
    Clock(io::Error),
    /// [`LocalClock::wait_until_synchronized`] ran out of time.
    #[error("not synchronized after {0:?}; last error: {1}")]
    Timeout(Duration, Box<ClockError>),
}

/// The local tsod's bounded clock. Cheap to share between threads (`&self`
/// everywhere); one instance per process is enough.
///
/// If the daemon replaces the segment file (a restart that could not reuse
/// it), the old mapping goes stale; the clock then re-opens the path, off
/// the hot path, at most every [`REOPEN_INTERVAL`], and continues on the new
/// file. Mappings are never unmapped while the clock lives (a reader may
/// still be copying from one), so at most [`MAX_MAPPINGS`] are kept.
#[derive(Debug)]
pub struct LocalClock {
    /// The file opened first: the hot path's mapping until a replacement.
    primary: Mapped,
    /// Replacements, in order; `current` is 0 for `primary`, k for `replacements[k − 1]`.
    replacements: Box<[OnceLock<Mapped>]>,
    current: AtomicUsize,
    last_reopen: Mutex<Option<Instant>>,
    timescale: Timescale,
    path: PathBuf,
    /// Whose segment files are trusted, on the first open and on re-opens.
    owners: AllowedOwners,
}

/// One mapped segment file and the identity of the file it maps.
#[derive(Debug)]
struct Mapped {
    mapping: ReadMapping,
    file_id: (u64, u64),
}

/// Most segment files one [`LocalClock`] maps over its life (one per
/// replacement by the daemon).
pub const MAX_MAPPINGS: usize = 64;
/// Least time between two attempts to re-open a replaced segment.
pub const REOPEN_INTERVAL: Duration = Duration::from_millis(100);

impl LocalClock {
    /// Opens the segment at `$TSOD_SHM`, or `/run/tsod/segment`
    /// ([`SHM_DEFAULT_PATH`]), trusting segments owned by root or by this
    /// process's user ([`AllowedOwners::this_process`]).
    pub fn open() -> Result<Self, ClockError> {
        Self::open_with_owners(AllowedOwners::this_process())
    }

    /// [`LocalClock::open`], trusting segments owned by `owners`, e.g.
    /// [`AllowedOwners::with_daemon_uid`] when the daemon runs as a
    /// dedicated user.
    pub fn open_with_owners(owners: AllowedOwners) -> Result<Self, ClockError> {
        let path = std::env::var_os(SHM_PATH_ENV).map_or_else(|| PathBuf::from(SHM_DEFAULT_PATH), PathBuf::from);
        Self::open_path_with_owners(path, owners)
    }

    /// Opens the segment at `path` and checks its header, including that it
    /// was written during this boot. The file must pass the open rules of
    /// SPEC.md §5.1 (no symbolic link, a regular file owned by root or by
    /// this process's user, writable by its owner only, in a directory no
    /// one else can replace it in).
    pub fn open_path(path: impl AsRef<Path>) -> Result<Self, ClockError> {
        Self::open_path_with_owners(path, AllowedOwners::this_process())
    }

    /// [`LocalClock::open_path`], trusting segment files (and their
    /// directory) owned by `owners` instead of root and this process's user
    /// only.
    pub fn open_path_with_owners(path: impl AsRef<Path>, owners: AllowedOwners) -> Result<Self, ClockError> {
        let path = path.as_ref().to_path_buf();
        let (primary, timescale) = map(&path, &owners)?;
        let replacements = (1..MAX_MAPPINGS).map(|_| OnceLock::new()).collect();
        Ok(Self {
            primary,
            replacements,
            current: AtomicUsize::new(0),
            last_reopen: Mutex::new(None),
            timescale,
            path,
            owners,
        })
    }

    /// The mapped file in use: one atomic load and a compare on the hot path.
    #[inline]
    fn mapped(&self) -> Option<&Mapped> {
        match self.current.load(Ordering::Acquire) {
            0 => Some(&self.primary),
            k => self.replacements.get(k.saturating_sub(1)).and_then(OnceLock::get),
        }
    }

    #[inline]
    fn mapping(&self) -> Option<&ReadMapping> {
        self.mapped().map(|m| &m.mapping)
    }

    /// An interval that contains true time now, or why there is none;
    /// callable from any number of threads at once.
    ///
    /// The reader clock (`CLOCK_MONOTONIC_RAW`, vDSO) is read together with
    /// `CLOCK_BOOTTIME`, a lock-free seqlock copy of the published state is
    /// taken, and the interval is extrapolated with integer arithmetic. The
    /// second clock read is the suspend check of SPEC.md §5.6: the reader
    /// clock stands still while the host is suspended, BOOTTIME does not, so
    /// a suspend between the daemon's last publication and this read (which
    /// the daemon has not seen yet) is refused with
    /// [`BoundError::Disrupted`] instead of extrapolating the pre-suspend
    /// anchor. [`LocalClock::now_unchecked`] is the single-read opt-out.
    ///
    /// A thread preempted between the two reads for more than the 1 ms
    /// allowance looks suspended, so a failed check is retried with a
    /// bracketed pair (reader, BOOTTIME, reader; a pair whose bracket
    /// exceeds 100 µs is retaken, a few times at most) before `Disrupted`
    /// is returned. Only a thread preempted for over 1 ms on every try can
    /// still get a false `Disrupted`; reading again tells it from a real
    /// one (the HLC does).
    ///
    /// A segment file replaced by the daemon is followed (see
    /// [`LocalClock`]).
    pub fn now(&self) -> Result<TimeInterval, ClockError> {
        match self.now_once() {
            Ok(interval) => Ok(interval),
            Err(e) => self.now_after(e, Self::now_once),
        }
    }

    /// Like [`LocalClock::now`] without the suspend check: one
    /// `CLOCK_MONOTONIC_RAW` read instead of two (three after a failed
    /// check) (benches/BENCHMARKS.md).
    ///
    /// **It can return an interval that excludes true time** for up to one
    /// daemon tick after the host resumes from a suspend: the reader clock
    /// did not advance while the host slept, so the pre-suspend anchor is
    /// extrapolated as if no time had passed, until the daemon sees the
    /// suspend and publishes `disrupted`. It is fine on a host that never
    /// suspends (a server with suspend disabled), and in a hot loop that
    /// checks for suspends separately, at its own pace: for example a
    /// checked [`LocalClock::now`] before and after each batch of unchecked
    /// reads, or [`LocalClock::status`] and
    /// [`PublishedState::disruption_count`] plus its own `CLOCK_BOOTTIME`
    /// check ([`slept_between`]), discarding the batch if either fires.
    /// Follows a replaced segment file as [`LocalClock::now`] does.
    pub fn now_unchecked(&self) -> Result<TimeInterval, ClockError> {
        match self.now_unchecked_once() {
            Ok(interval) => Ok(interval),
            Err(e) => self.now_after(e, Self::now_unchecked_once),
        }
    }

    /// The error path of both reads: follow a replaced file, once, and read
    /// again with `read`.
    #[cold]
    #[inline(never)]
    fn now_after(
        &self,
        error: ClockError,
        read: fn(&Self) -> Result<TimeInterval, ClockError>,
    ) -> Result<TimeInterval, ClockError> {
        if error.may_mean_replaced() && self.reopen_if_replaced() { read(self) } else { Err(error) }
    }

    /// One checked read (SPEC.md §5.6) on the current mapping.
    ///
    /// Fast path: two clock reads (reader, then BOOTTIME). Preemption
    /// between them can only make BOOTTIME look later, i.e. raise a false
    /// suspend, never hide a real one; so only a failed check pays for the
    /// bracketed pair ([`read_pair`]) that tells the two apart.
    #[inline]
    fn now_once(&self) -> Result<TimeInterval, ClockError> {
        let raw = sys::reader_clock_now().map_err(ClockError::Clock)?;
        let boot = sys::boottime_now().map_err(ClockError::Clock)?;
        let state = self.mapping().ok_or(ClockError::Segment(ShmError::Busy))?.read()?;
        if !suspended_since(&state, raw, boot) {
            return Ok(state.anchor.interval_at(raw)?);
        }
        self.now_bracketed()
    }

    /// The checked read with a bracketed clock pair, after a failed check.
    #[cold]
    #[inline(never)]
    fn now_bracketed(&self) -> Result<TimeInterval, ClockError> {
        let (raw, boot) = read_pair()?;
        let state = self.mapping().ok_or(ClockError::Segment(ShmError::Busy))?.read()?;
        if suspended_since(&state, raw, boot) {
            return Err(ClockError::Bound(BoundError::Disrupted));
        }
        Ok(state.anchor.interval_at(raw)?)
    }

    /// One unchecked read on the current mapping.
    #[inline]
    fn now_unchecked_once(&self) -> Result<TimeInterval, ClockError> {
        let now = sys::reader_clock_now().map_err(ClockError::Clock)?;
        let mapping = self.mapping().ok_or(ClockError::Segment(ShmError::Busy))?;
        Ok(mapping.read_anchor()?.interval_at(now)?)
    }

    /// If the file at the path is no longer the one mapped (the daemon
    /// replaced it), maps the new one and returns true. Rate-limited; a
    /// concurrent attempt by another thread makes this one return false.
    fn reopen_if_replaced(&self) -> bool {
        let Ok(mut last) = self.last_reopen.try_lock() else { return false };
        let now = Instant::now();
        if last.is_some_and(|t| now.saturating_duration_since(t) < REOPEN_INTERVAL) {
            return false;
        }
        *last = Some(now);
        let index = self.current.load(Ordering::Acquire);
        let current_id = self.mapped().map(|m| m.file_id);
        let Ok(meta) = std::fs::metadata(&self.path) else { return false };
        if current_id == Some((meta.dev(), meta.ino())) {
            return false;
        }
        let Ok((mapped, timescale)) = map(&self.path, &self.owners) else { return false };
        if timescale != self.timescale {
            return false;
        }
        let next = index.saturating_add(1);
        match self.replacements.get(index) {
            Some(slot) if slot.set(mapped).is_ok() => {
                self.current.store(next, Ordering::Release);
                true
            }
            _ => false,
        }
    }

    /// The daemon's status as published (no interval computed).
    pub fn status(&self) -> Result<ClockStatus, ClockError> {
        Ok(self.mapping().ok_or(ClockError::Segment(ShmError::Busy))?.read_anchor()?.status)
    }

    /// The whole published state, for tools that show it.
    pub fn published_state(&self) -> Result<PublishedState, ClockError> {
        Ok(self.mapping().ok_or(ClockError::Segment(ShmError::Busy))?.read()?)
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

impl ClockError {
    /// Errors a replaced segment file produces on the old mapping: its last
    /// anchor goes stale, or, if the host suspended since, fails the
    /// suspend check first (a `Disrupted` the daemon would otherwise clear
    /// by publishing, which it no longer does in the old file).
    fn may_mean_replaced(&self) -> bool {
        matches!(
            self,
            Self::Bound(BoundError::Stale | BoundError::Disrupted)
                | Self::Segment(ShmError::Busy | ShmError::Corrupt(_))
        )
    }
}

/// Opens, checks and maps the segment at `path` (SPEC.md §5.1).
fn map(path: &Path, owners: &AllowedOwners) -> Result<(Mapped, Timescale), ClockError> {
    let opened = open_segment(path, owners).map_err(|e| open_error(path, e))?;
    let boot = sys::this_boot_id().map_err(|source| ClockError::Open { path: path.to_path_buf(), source })?;
    let header = opened.mapping.header(Some(boot))?;
    Ok((Mapped { mapping: opened.mapping, file_id: (opened.device, opened.inode) }, header.timescale))
}

/// The client's error, with the path, for each refusal of [`open_segment`].
fn open_error(path: &Path, error: OpenError) -> ClockError {
    let path = path.to_path_buf();
    match error {
        OpenError::Io(source) => ClockError::Open { path, source },
        OpenError::Symlink => ClockError::Symlink { path },
        OpenError::NotRegularFile(kind) => ClockError::NotRegularFile { path, kind },
        OpenError::ForeignOwner { owner, allowed } => ClockError::ForeignOwner { path, owner, allowed },
        OpenError::WritableByOthers(mode) => ClockError::Insecure { path, mode },
        OpenError::ForeignDirectory { dir, owner, allowed } => {
            ClockError::ForeignDirectory { path, dir, owner, allowed }
        }
        OpenError::WritableDirectory { dir, mode } => ClockError::WritableDirectory { path, dir, mode },
        OpenError::Map(source) => ClockError::Map { path, source },
    }
}

/// Longest a (reader, BOOTTIME) pair's bracket may take before it is retaken.
const PAIR_SLACK: Duration = Duration::from_micros(100);

/// Reads `(CLOCK_MONOTONIC_RAW, CLOCK_BOOTTIME)` close together: BOOTTIME
/// is bracketed by two reader-clock reads `before` and `after`, and the
/// pair `(before, boot)` is used once the bracket is within [`PAIR_SLACK`]
/// (at most 4 tries, then the last pair). A preemption between the reads
/// stretches the bracket (the reader clock runs on) and is retaken; a
/// suspend between `before` and `boot` does not stretch it (the reader
/// clock stops) but moves BOOTTIME ahead, so the check still fires; a
/// suspend after `boot` is after the instant `before` the interval is
/// computed for. Falling back to a stretched pair can only make the check
/// fire, never miss a suspend.
fn read_pair() -> Result<(MonoInstant, MonoInstant), ClockError> {
    let slack = i128::try_from(PAIR_SLACK.as_nanos()).unwrap_or(i128::MAX);
    let mut tries = 0;
    loop {
        let before = sys::reader_clock_now().map_err(ClockError::Clock)?;
        let boot = sys::boottime_now().map_err(ClockError::Clock)?;
        let after = sys::reader_clock_now().map_err(ClockError::Clock)?;
        tries += 1;
        if after.signed_nanos_since(before) <= slack || tries == 4 {
            return Ok((before, boot));
        }
    }
}

/// SPEC.md §5.6: whether `CLOCK_BOOTTIME` ran ahead of the reader clock
/// since the anchor by more than 1 ms + |Δ|/8 (the discipline may slew
/// BOOTTIME by up to about 10 %), i.e. the host was suspended.
pub fn suspended_since(state: &PublishedState, raw: MonoInstant, boot: MonoInstant) -> bool {
    slept_between((state.anchor.reference, state.reference_boottime), (raw, boot))
}

/// SPEC.md §5.6 between two readings `(CLOCK_MONOTONIC_RAW, CLOCK_BOOTTIME)`:
/// whether BOOTTIME ran ahead of the reader clock by more than
/// 1 ms + |Δraw|/8, i.e. the host was suspended in between (the reader clock
/// stood still while BOOTTIME went on).
pub fn slept_between(earlier: (MonoInstant, MonoInstant), later: (MonoInstant, MonoInstant)) -> bool {
    let d_raw = later.0.signed_nanos_since(earlier.0);
    let d_boot = later.1.signed_nanos_since(earlier.1);
    d_boot.saturating_sub(d_raw) > 1_000_000i128.saturating_add(d_raw.saturating_abs() / 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsod_proto::Timestamp;
    use tsod_proto::bound::RateBounds;
    use tsod_proto::shm::Anchor;

    fn state(reference: u64, boot: u64) -> PublishedState {
        PublishedState {
            anchor: Anchor {
                reference: MonoInstant::from_nanos(reference),
                interval: TimeInterval::point(Timestamp::from_nanos(1)),
                rates: RateBounds::EXACT,
                status: ClockStatus::Synchronized,
                valid_until: MonoInstant::from_nanos(reference + 1_000_000_000),
            },
            disruption_count: 0,
            reference_boottime: MonoInstant::from_nanos(boot),
            writer_instance: 1,
        }
    }

    #[test]
    fn suspend_check_follows_spec_5_6() {
        let s = state(10_000_000_000, 15_000_000_000);
        let at = |raw_after: u64, boot_after: u64| {
            suspended_since(
                &s,
                MonoInstant::from_nanos(10_000_000_000 + raw_after),
                MonoInstant::from_nanos(15_000_000_000 + boot_after),
            )
        };
        assert!(!at(500_000_000, 500_000_000), "no suspend");
        assert!(!at(500_000_000, 500_000_000 + 60_000_000), "slew within 1 ms + Δ/8");
        assert!(at(500_000_000, 500_000_000 + 64_000_000), "beyond 1 ms + Δ/8 = 63.5 ms");
        assert!(at(1_000, 30_000_000_000), "a 30 s suspend right after publication");
        assert!(!at(0, 0));
    }

    /// What RemoteClock checks between c1 and c4: a request the host slept
    /// through (10 s of BOOTTIME in a 2 ms reader-clock round trip) is refused.
    #[test]
    fn a_request_the_host_slept_through_is_seen() {
        let m = MonoInstant::from_nanos;
        let c1 = (m(1_000_000_000), m(5_000_000_000));
        assert!(!slept_between(c1, (m(1_002_000_000), m(5_002_000_000))));
        assert!(slept_between(c1, (m(1_002_000_000), m(15_002_000_000))));
    }
}
