//! The shared-memory layout of AWS ClockBound 2.x (layout version 2), mapped
//! writable, so that the daemon can also publish its bound to existing
//! ClockBound readers (SPEC.md §5.8; the policy, what goes into each field,
//! is the server's `clockbound` module). Only with `writer`.
//!
//! The layout, as ClockBound's readers (the `clock-bound-shm` crate 2.0,
//! libclockbound) expect it, native byte order:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic: two `u32`, `0x414D5A4E`, `0x43420200` |
//! | 8 | 4 | `segsize`: bytes of header and record, 80 |
//! | 12 | 2 | layout `version`: 2 |
//! | 14 | 2 | `generation`: seqlock counter, odd while written, never 0 once published |
//! | 16 | 16 | `as_of`: `struct timespec` on `CLOCK_MONOTONIC_COARSE` |
//! | 32 | 16 | `void_after`: `struct timespec`, same clock |
//! | 48 | 8 | `bound_nsec`: `i64`, the error bound around `CLOCK_REALTIME` at `as_of` |
//! | 56 | 8 | `disruption_marker`: `u64` |
//! | 64 | 4 | `max_drift_ppb`: `u32`, below 10⁹ |
//! | 68 | 4 | `clock_status`: C enum, 0 unknown, 1 synchronized, 2 free-running, 3 disrupted |
//! | 72 | 1 | `clock_disruption_support_enabled`: `bool` |
//! | 73 | 7 | padding |
//!
//! Readers map `segsize` bytes; the file is one page ([`CLOCKBOUND_FILE_SIZE`]),
//! allocated up front, and tsod's own marker, [`TSOD_MARKER`], sits at
//! byte 128, beyond what any ClockBound reader maps. ClockBound's daemon
//! writes an 80-byte file without it, so the marker is how the daemon knows
//! a file at its path is one it created (with its owner and the lock file).
//!
//! The seqlock is the one of SPEC.md §5.5 on a 16-bit counter: the writer
//! stores an odd `generation`, a release fence, the fields (relaxed atomic
//! stores), then the next even `generation` with release ordering, skipping
//! 0 when it wraps (0 means "not initialized" to a reader).

use std::fs::File;
use std::io;
use std::mem::{offset_of, size_of};
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering, fence};
use std::time::Duration;

use memmap2::{MmapOptions, MmapRaw};
use tsod_proto::{MonoInstant, Ppb};

use crate::mapping::MapError;

/// The magic number that opens every ClockBound segment.
pub const CLOCKBOUND_MAGIC: [u32; 2] = [0x414D_5A4E, 0x4342_0200];
/// The layout version ClockBound 2.0.x readers accept (and the only one).
pub const CLOCKBOUND_LAYOUT_VERSION: u16 = 2;
/// `segsize`: the header (16 bytes) and the record (64 bytes).
pub const CLOCKBOUND_SEGMENT_SIZE: u32 = 80;
/// The length of the file tsod creates: one page.
pub const CLOCKBOUND_FILE_SIZE: u64 = FILE_LEN as u64;
/// tsod's marker at byte 128 of the files it creates: `TSOD-CB` and a
/// format byte, as a native-endian `u64`.
pub const TSOD_MARKER: u64 = u64::from_ne_bytes(*b"TSOD-CB\x01");

/// ClockBound's clock status (`clock_status`, a C enum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClockBoundStatus {
    /// 0: no bound can be trusted.
    Unknown,
    /// 1: kept accurate by the synchronization daemon; the bound can be trusted.
    Synchronized,
    /// 2: not updated by a synchronization source; the bound can be trusted.
    FreeRunning,
    /// 3: the clock was disrupted; no bound can be trusted.
    Disrupted,
}

impl ClockBoundStatus {
    /// The value in the segment.
    pub const fn code(self) -> u32 {
        match self {
            Self::Unknown => 0,
            Self::Synchronized => 1,
            Self::FreeRunning => 2,
            Self::Disrupted => 3,
        }
    }

    /// The status a value stands for, if any.
    pub const fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(Self::Unknown),
            1 => Some(Self::Synchronized),
            2 => Some(Self::FreeRunning),
            3 => Some(Self::Disrupted),
            _ => None,
        }
    }
}

/// One state of the segment, in project types. `as_of` and `void_after`
/// are `CLOCK_MONOTONIC_COARSE` instants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockBoundRecord {
    /// When `bound` was computed.
    pub as_of: MonoInstant,
    /// After this, readers trust no bound.
    pub void_after: MonoInstant,
    /// Half-width of the interval around `CLOCK_REALTIME` at `as_of`
    /// (written as `i64` ns, saturating).
    pub bound: Duration,
    /// Counts disruptions.
    pub disruption_marker: u64,
    /// How fast the bound grows per `CLOCK_MONOTONIC` ns after `as_of`
    /// (written as `u32` ppb; at most 999 999 999).
    pub max_drift: Ppb,
    /// The clock status.
    pub status: ClockBoundStatus,
    /// Whether readers must compare `disruption_marker` with the VMClock
    /// device's.
    pub disruption_support: bool,
}

/// The segment as mapped: every field an atomic of its size.
#[repr(C)]
struct Segment {
    magic: [AtomicU32; 2],
    segsize: AtomicU32,
    version: AtomicU16,
    generation: AtomicU16,
    as_of_sec: AtomicI64,
    as_of_nsec: AtomicI64,
    void_after_sec: AtomicI64,
    void_after_nsec: AtomicI64,
    bound_nsec: AtomicI64,
    disruption_marker: AtomicU64,
    max_drift_ppb: AtomicU32,
    clock_status: AtomicU32,
    disruption_support: AtomicU8,
    padding: [AtomicU8; 7],
    reserved: [AtomicU64; 6],
    marker: AtomicU64,
}

// The layout above is ClockBound's, byte for byte (checked at compile time).
const _: () = {
    assert!(offset_of!(Segment, segsize) == 8);
    assert!(offset_of!(Segment, version) == 12);
    assert!(offset_of!(Segment, generation) == 14);
    assert!(offset_of!(Segment, as_of_sec) == 16);
    assert!(offset_of!(Segment, void_after_sec) == 32);
    assert!(offset_of!(Segment, bound_nsec) == 48);
    assert!(offset_of!(Segment, disruption_marker) == 56);
    assert!(offset_of!(Segment, max_drift_ppb) == 64);
    assert!(offset_of!(Segment, clock_status) == 68);
    assert!(offset_of!(Segment, disruption_support) == 72);
    assert!(offset_of!(Segment, reserved) == CLOCKBOUND_SEGMENT_SIZE as usize);
    assert!(offset_of!(Segment, marker) == 128);
    assert!(size_of::<Segment>() <= FILE_LEN);
};

/// The largest `max_drift_ppb` readers accept, plus one.
const DRIFT_LIMIT_PPB: i64 = 1_000_000_000;
const NANOS_PER_SEC: u64 = 1_000_000_000;
/// Bytes mapped: the whole file, one page.
const FILE_LEN: usize = 4096;

/// A writable shared mapping of a ClockBound segment file tsod created.
#[derive(Debug)]
pub struct ClockBoundMapping {
    map: MmapRaw,
}

impl ClockBoundMapping {
    /// Maps `file` (opened for reading and writing, exactly
    /// [`CLOCKBOUND_FILE_SIZE`] bytes long) shared and writable.
    pub fn new(file: &File) -> Result<Self, MapError> {
        let len = file.metadata()?.len();
        if len != CLOCKBOUND_FILE_SIZE {
            return Err(MapError::WrongSize(len));
        }
        Ok(Self { map: MmapOptions::new().len(FILE_LEN).map_raw(file)? })
    }

    /// Writes the header and tsod's marker into a new, zeroed segment. The
    /// generation stays 0 (readers refuse the segment) until [`Self::publish`].
    pub fn initialize(&self) {
        let s = self.segment();
        s.magic[0].store(CLOCKBOUND_MAGIC[0], Ordering::Relaxed);
        s.magic[1].store(CLOCKBOUND_MAGIC[1], Ordering::Relaxed);
        s.segsize.store(CLOCKBOUND_SEGMENT_SIZE, Ordering::Relaxed);
        s.marker.store(TSOD_MARKER, Ordering::Relaxed);
        s.version.store(CLOCKBOUND_LAYOUT_VERSION, Ordering::Release);
    }

    /// Whether the mapped file is a ClockBound segment tsod created: the
    /// magic, size, layout version and tsod's marker.
    pub fn is_tsod_segment(&self) -> bool {
        let s = self.segment();
        s.magic[0].load(Ordering::Relaxed) == CLOCKBOUND_MAGIC[0]
            && s.magic[1].load(Ordering::Relaxed) == CLOCKBOUND_MAGIC[1]
            && s.segsize.load(Ordering::Relaxed) == CLOCKBOUND_SEGMENT_SIZE
            && s.version.load(Ordering::Relaxed) == CLOCKBOUND_LAYOUT_VERSION
            && s.marker.load(Ordering::Relaxed) == TSOD_MARKER
    }

    /// The current `generation`.
    pub fn generation(&self) -> u16 {
        self.segment().generation.load(Ordering::Acquire)
    }

    /// Publishes `record` (the seqlock's writer side) and returns the new,
    /// even, non-zero generation. A generation left odd by a writer that
    /// died mid-write is completed with that same odd value first.
    pub fn publish(&self, record: &ClockBoundRecord) -> u16 {
        let s = self.segment();
        let g = s.generation.load(Ordering::Relaxed);
        let odd = if g % 2 == 1 { g } else { g.wrapping_add(1) };
        s.generation.store(odd, Ordering::Relaxed);
        fence(Ordering::Release);
        let (as_of_sec, as_of_nsec) = timespec(record.as_of);
        let (void_sec, void_nsec) = timespec(record.void_after);
        s.as_of_sec.store(as_of_sec, Ordering::Relaxed);
        s.as_of_nsec.store(as_of_nsec, Ordering::Relaxed);
        s.void_after_sec.store(void_sec, Ordering::Relaxed);
        s.void_after_nsec.store(void_nsec, Ordering::Relaxed);
        s.bound_nsec.store(i64::try_from(record.bound.as_nanos()).unwrap_or(i64::MAX), Ordering::Relaxed);
        s.disruption_marker.store(record.disruption_marker, Ordering::Relaxed);
        let drift = u32::try_from(record.max_drift.get().clamp(0, DRIFT_LIMIT_PPB - 1)).unwrap_or(0);
        s.max_drift_ppb.store(drift, Ordering::Relaxed);
        s.clock_status.store(record.status.code(), Ordering::Relaxed);
        s.disruption_support.store(u8::from(record.disruption_support), Ordering::Relaxed);
        let next = match odd.wrapping_add(1) {
            0 => 2,
            n => n,
        };
        s.generation.store(next, Ordering::Release);
        next
    }

    /// A consistent copy of the published record and its generation (the
    /// seqlock's reader side), or `None` if never published, being written
    /// throughout 10 000 attempts, or holding an unknown status.
    pub fn read(&self) -> Option<(u16, ClockBoundRecord)> {
        let s = self.segment();
        for _ in 0..10_000 {
            let g1 = s.generation.load(Ordering::Acquire);
            if g1 == 0 {
                return None;
            }
            if g1 % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let as_of = (s.as_of_sec.load(Ordering::Relaxed), s.as_of_nsec.load(Ordering::Relaxed));
            let void_after = (s.void_after_sec.load(Ordering::Relaxed), s.void_after_nsec.load(Ordering::Relaxed));
            let bound = s.bound_nsec.load(Ordering::Relaxed);
            let disruption_marker = s.disruption_marker.load(Ordering::Relaxed);
            let drift = s.max_drift_ppb.load(Ordering::Relaxed);
            let status = s.clock_status.load(Ordering::Relaxed);
            let support = s.disruption_support.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if s.generation.load(Ordering::Relaxed) != g1 {
                continue;
            }
            let record = ClockBoundRecord {
                as_of: from_timespec(as_of)?,
                void_after: from_timespec(void_after)?,
                bound: Duration::from_nanos(u64::try_from(bound).ok()?),
                disruption_marker,
                max_drift: Ppb::new(i64::from(drift)),
                status: ClockBoundStatus::from_code(status)?,
                disruption_support: support != 0,
            };
            return Some((g1, record));
        }
        None
    }

    #[expect(unsafe_code, reason = "viewing mapped memory as the #[repr(C)] ClockBound segment")]
    fn segment(&self) -> &Segment {
        // SAFETY: the mapping is FILE_LEN (4096) bytes of a file checked to
        // be that long, at least size_of::<Segment>() (asserted at compile
        // time), and page-aligned, so aligned for Segment (align 8). Every
        // field is an integer atomic, for which any bit pattern is valid and
        // concurrent access from other processes is defined. The mapping
        // lives as long as `self`, which the returned reference borrows.
        unsafe { &*self.map.as_ptr().cast::<Segment>() }
    }
}

/// `struct timespec` fields of a monotonic instant.
fn timespec(t: MonoInstant) -> (i64, i64) {
    let ns = t.as_nanos();
    let sec = i64::try_from(ns / NANOS_PER_SEC).unwrap_or(i64::MAX);
    let nsec = i64::try_from(ns % NANOS_PER_SEC).unwrap_or(0);
    (sec, nsec)
}

fn from_timespec((sec, nsec): (i64, i64)) -> Option<MonoInstant> {
    let sec = u64::try_from(sec).ok()?;
    let nsec = u64::try_from(nsec).ok().filter(|n| *n < NANOS_PER_SEC)?;
    Some(MonoInstant::from_nanos(sec.checked_mul(NANOS_PER_SEC)?.checked_add(nsec)?))
}

/// `CLOCK_MONOTONIC_COARSE`: the clock ClockBound's readers compare `as_of`
/// and `void_after` with. It is `CLOCK_MONOTONIC` as of the kernel's last
/// tick, so it lags `CLOCK_MONOTONIC` by up to one tick
/// ([`coarse_monotonic_resolution`]).
#[expect(unsafe_code, reason = "clock_gettime is a C function")]
pub fn coarse_monotonic_now() -> io::Result<MonoInstant> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the
    // call; the kernel (or vDSO) writes only into it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    from_timespec((ts.tv_sec, ts.tv_nsec))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "CLOCK_MONOTONIC_COARSE out of range"))
}

/// `clock_getres(CLOCK_MONOTONIC_COARSE)`: the kernel's tick, the most
/// [`coarse_monotonic_now`] lags `CLOCK_MONOTONIC` by (1–10 ms).
#[expect(unsafe_code, reason = "clock_getres is a C function")]
pub fn coarse_monotonic_resolution() -> io::Result<Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the
    // call; the kernel writes only into it.
    let rc = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    from_timespec((ts.tv_sec, ts.tv_nsec))
        .map(|t| Duration::from_nanos(t.as_nanos()))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "clock_getres out of range"))
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::path::PathBuf;

    use super::*;

    struct TempFile {
        path: PathBuf,
        file: File,
    }

    impl TempFile {
        fn new(name: &str, len: u64) -> Self {
            let path = std::env::temp_dir().join(format!("tsod-shm-cb-{name}-{}", std::process::id()));
            let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
            file.set_len(len).unwrap();
            Self { path, file }
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    fn record(n: u64) -> ClockBoundRecord {
        ClockBoundRecord {
            as_of: MonoInstant::from_nanos(1_234_567_890_123 + n),
            void_after: MonoInstant::from_nanos(2_234_567_890_123 + n),
            bound: Duration::from_nanos(17_000 + n),
            disruption_marker: n,
            max_drift: Ppb::new(15_000),
            status: ClockBoundStatus::Synchronized,
            disruption_support: false,
        }
    }

    fn native_u32(bytes: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    fn native_i64(bytes: &[u8], at: usize) -> i64 {
        i64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap())
    }

    /// The bytes in the file are ClockBound's layout, field by field.
    #[test]
    fn the_file_holds_clockbounds_layout() {
        let f = TempFile::new("layout", CLOCKBOUND_FILE_SIZE);
        let m = ClockBoundMapping::new(&f.file).unwrap();
        m.initialize();
        assert_eq!(m.generation(), 0, "not readable before the first record");
        assert!(m.read().is_none());
        assert_eq!(m.publish(&record(5)), 2);
        let bytes = std::fs::read(&f.path).unwrap();
        assert_eq!(native_u32(&bytes, 0), 0x414D_5A4E);
        assert_eq!(native_u32(&bytes, 4), 0x4342_0200);
        assert_eq!(native_u32(&bytes, 8), 80);
        assert_eq!(u16::from_ne_bytes([bytes[12], bytes[13]]), 2);
        assert_eq!(u16::from_ne_bytes([bytes[14], bytes[15]]), 2);
        assert_eq!((native_i64(&bytes, 16), native_i64(&bytes, 24)), (1_234, 567_890_128));
        assert_eq!((native_i64(&bytes, 32), native_i64(&bytes, 40)), (2_234, 567_890_128));
        assert_eq!(native_i64(&bytes, 48), 17_005);
        assert_eq!(native_i64(&bytes, 56), 5);
        assert_eq!(native_u32(&bytes, 64), 15_000);
        assert_eq!(native_u32(&bytes, 68), 1);
        assert_eq!(bytes[72], 0);
        assert_eq!(&bytes[128..136], b"TSOD-CB\x01");
        assert_eq!(m.read(), Some((2, record(5))));
        assert!(m.is_tsod_segment());
    }

    #[test]
    fn the_generation_wraps_past_zero_and_completes_a_dead_writers_odd_value() {
        let f = TempFile::new("wrap", CLOCKBOUND_FILE_SIZE);
        let m = ClockBoundMapping::new(&f.file).unwrap();
        m.initialize();
        m.segment().generation.store(u16::MAX - 1, Ordering::Relaxed);
        assert_eq!(m.publish(&record(1)), 2, "65534 → 65535 (writing) → 0 is skipped → 2");
        m.segment().generation.store(7, Ordering::Relaxed);
        assert_eq!(m.publish(&record(2)), 8, "an odd value left by a dead writer is completed");
        assert_eq!(m.read(), Some((8, record(2))));
    }

    #[test]
    fn only_a_file_tsod_initialized_is_recognized() {
        let f = TempFile::new("marker", CLOCKBOUND_FILE_SIZE);
        let m = ClockBoundMapping::new(&f.file).unwrap();
        assert!(!m.is_tsod_segment(), "zeroed");
        m.initialize();
        assert!(m.is_tsod_segment());
        m.segment().marker.store(0, Ordering::Relaxed);
        assert!(!m.is_tsod_segment(), "ClockBound's own daemon writes no marker");
        for len in [0, 80, 4095, 8192] {
            let other = TempFile::new(&format!("size-{len}"), len);
            assert!(matches!(ClockBoundMapping::new(&other.file), Err(MapError::WrongSize(l)) if l == len));
        }
    }

    #[test]
    fn concurrent_reads_are_never_torn() {
        let f = TempFile::new("torn", CLOCKBOUND_FILE_SIZE);
        let writer = ClockBoundMapping::new(&f.file).unwrap();
        writer.initialize();
        writer.publish(&record(0));
        let reader = ClockBoundMapping::new(&f.file).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                for n in 1..20_000 {
                    writer.publish(&record(n));
                }
            });
            for _ in 0..20_000 {
                if let Some((_, r)) = reader.read() {
                    assert_eq!(r, record(r.disruption_marker));
                }
            }
        });
    }

    #[test]
    fn the_coarse_clock_lags_the_monotonic_clock_by_at_most_its_resolution() {
        let res = coarse_monotonic_resolution().unwrap();
        assert!(res > Duration::ZERO && res <= Duration::from_millis(100), "{res:?}");
        for _ in 0..1_000 {
            let coarse = coarse_monotonic_now().unwrap();
            let fine = crate::monotonic_now().unwrap();
            assert!(coarse <= fine, "{coarse:?} after {fine:?}");
            assert!(fine.as_nanos() - coarse.as_nanos() <= 2 * u64::try_from(res.as_nanos()).unwrap());
        }
    }
}
