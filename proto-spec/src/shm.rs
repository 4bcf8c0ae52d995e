//! The shared-memory segment through which tsod publishes its bound to
//! clients on the same host (SPEC.md §5), and the seqlock that guards it.
//!
//! The layout is [`ShmSegment`], `#[repr(C)]`, 192 bytes at the start of a
//! 4096-byte file, in the host's native byte order. Every field is an atomic
//! so that concurrent access from the writer and from readers in other
//! processes is defined behaviour; on x86-64 and AArch64 relaxed atomic loads
//! and stores are plain `mov`/`ldr`/`str`, so this costs nothing.
//!
//! # Seqlock
//!
//! One writer (the daemon, which holds an exclusive lock on the file),
//! any number of lock-free readers. `generation` is odd while a write is in
//! progress and grows by 2 with every completed write, so a 64-bit counter
//! never wraps (2^63 writes at 10 kHz is 29 million years).
//!
//! ```text
//! writer                                   reader
//!   g := generation (relaxed)                loop:
//!   s := g if g is odd else g + 1              g1 := generation (ACQUIRE)
//!   generation := s (relaxed)                  if g1 is odd: retry
//!   fence(RELEASE)                             copy fields (relaxed loads)
//!   store fields (relaxed)                     fence(ACQUIRE)
//!   generation := s + 1 (RELEASE)              g2 := generation (relaxed)
//!                                              if g1 == g2: done, else retry
//! ```
//!
//! The release fence after the odd store keeps the field stores from moving
//! before it; the reader's acquire fence keeps its second load of
//! `generation` from moving before the copies. If a copy saw any store of a
//! later write, the fences synchronize and the reader sees that write's odd
//! `generation` (or later), so `g1 != g2` and it retries. On AArch64 the
//! fences are `dmb ish` / `dmb ishld` and the acquire load is `ldar`; on
//! x86-64 they compile to nothing (TSO) but still constrain the compiler.
//! This is the construction of H.-J. Boehm, "Can seqlocks get along with
//! programming language memory models?" (MSPC 2012).

use core::mem::{align_of, offset_of, size_of};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use core::time::Duration;

use crate::bound::RateBounds;
use crate::status::{ClockStatus, MonoInstant, Timescale};
use crate::time::{TimeInterval, Timestamp};

/// The first 8 bytes of every segment.
pub const SHM_MAGIC: [u8; 8] = *b"TSOD-SHM";
/// The layout version this crate reads and writes.
pub const SHM_LAYOUT_VERSION: u32 = 1;
/// Size of the segment file: one page.
pub const SHM_FILE_SIZE: u32 = 4096;
/// Default path of the segment (SPEC.md §5.1): in a directory only the
/// daemon's user can write, so no other local user can plant a segment
/// there. The daemon creates the directory (mode 0755) when it is missing.
pub const SHM_DEFAULT_PATH: &str = "/run/tsod/segment";
/// The environment variable that overrides [`SHM_DEFAULT_PATH`] for clients.
pub const SHM_PATH_ENV: &str = "TSOD_SHM";
/// Linux clock id of the clock readers read: `CLOCK_MONOTONIC_RAW`.
pub const READER_CLOCK_MONOTONIC_RAW: u32 = 4;
/// Attempts a reader makes before reporting [`ShmError::Busy`]; the first
/// few spin, the rest yield the CPU between attempts.
pub const READ_ATTEMPTS: u32 = 10_000;
/// Attempts that spin before the reader starts yielding.
const SPIN_ATTEMPTS: u32 = 16;
/// Bytes of the layout at the start of the file (SPEC.md §5.3); the rest
/// of the file is reserved.
pub const SHM_LAYOUT_LEN: usize = 192;
/// Longest validity horizon a state may claim: `valid_until − reference`
/// above this is [`ShmError::Corrupt`] (SPEC.md §5.3), so a writer bug
/// cannot switch `stale` off for good. The daemon's `clock.horizon-ms` is
/// at most this.
pub const SHM_MAX_HORIZON: Duration = Duration::from_secs(3600);
/// [`SHM_MAX_HORIZON`] in ns, for the reader's hot path.
const MAX_HORIZON_NS: u64 = 3_600_000_000_000;
const _: () = assert!(SHM_MAX_HORIZON.as_nanos() == MAX_HORIZON_NS as u128);

/// The segment, as mapped from the file. See the module doc for the protocol.
#[repr(C)]
#[derive(Debug, Default)]
pub struct ShmSegment {
    // Header: written before the file is made visible, never changed after.
    magic: AtomicU64,
    layout_version: AtomicU32,
    file_size: AtomicU32,
    reader_clock: AtomicU32,
    timescale: AtomicU32,
    boot_id: [AtomicU64; 2],
    header_reserved: [AtomicU64; 3],
    // State: guarded by the seqlock.
    generation: AtomicU64,
    reference: AtomicU64,
    earliest: AtomicU64,
    latest: AtomicU64,
    rate_low: AtomicU64,
    rate_high: AtomicU64,
    valid_until: AtomicU64,
    status: AtomicU32,
    status_reserved: AtomicU32,
    disruption_count: AtomicU64,
    reference_boottime: AtomicU64,
    writer_instance: AtomicU64,
    state_reserved: [AtomicU64; 5],
}

/// Offsets that SPEC.md §5.3 states; the build fails if the struct drifts.
const _: () = {
    assert!(size_of::<ShmSegment>() == SHM_LAYOUT_LEN);
    assert!(align_of::<ShmSegment>() == 8);
    assert!(offset_of!(ShmSegment, magic) == 0);
    assert!(offset_of!(ShmSegment, layout_version) == 8);
    assert!(offset_of!(ShmSegment, file_size) == 12);
    assert!(offset_of!(ShmSegment, reader_clock) == 16);
    assert!(offset_of!(ShmSegment, timescale) == 20);
    assert!(offset_of!(ShmSegment, boot_id) == 24);
    assert!(offset_of!(ShmSegment, header_reserved) == 40);
    assert!(offset_of!(ShmSegment, generation) == 64);
    assert!(offset_of!(ShmSegment, reference) == 72);
    assert!(offset_of!(ShmSegment, earliest) == 80);
    assert!(offset_of!(ShmSegment, latest) == 88);
    assert!(offset_of!(ShmSegment, rate_low) == 96);
    assert!(offset_of!(ShmSegment, rate_high) == 104);
    assert!(offset_of!(ShmSegment, valid_until) == 112);
    assert!(offset_of!(ShmSegment, status) == 120);
    assert!(offset_of!(ShmSegment, status_reserved) == 124);
    assert!(offset_of!(ShmSegment, disruption_count) == 128);
    assert!(offset_of!(ShmSegment, reference_boottime) == 136);
    assert!(offset_of!(ShmSegment, writer_instance) == 144);
    assert!(offset_of!(ShmSegment, state_reserved) == 152);
    assert!(size_of::<ShmSegment>() <= SHM_FILE_SIZE as usize);
};

/// The immutable header of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShmHeader {
    /// Timescale of every interval in the segment.
    pub timescale: Timescale,
    /// `/proc/sys/kernel/random/boot_id` of the boot that wrote it, as 16 bytes.
    pub boot_id: [u8; 16],
}

/// What a `now()` needs: the interval at a reference instant of the reader
/// clock, how to carry it along, whether it is a bound, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// Reader-clock instant the interval refers to.
    pub reference: MonoInstant,
    /// True time at `reference` (meaningful only when `status` is bounded).
    pub interval: TimeInterval,
    /// Bounds on the reader clock's rate against true time.
    pub rates: RateBounds,
    /// The daemon's status.
    pub status: ClockStatus,
    /// After this reader-clock instant the anchor is stale: clients must
    /// report an error, not extrapolate further.
    pub valid_until: MonoInstant,
}

/// Everything the daemon publishes; what a reader copies out under the seqlock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishedState {
    /// The bound and how to use it.
    pub anchor: Anchor,
    /// Number of disruptions (clock steps, suspends, restarts of an
    /// unsynchronized daemon) the daemon has seen on this segment.
    pub disruption_count: u64,
    /// `CLOCK_BOOTTIME` at the anchor's reference, for the optional suspend
    /// check (SPEC.md §5.6).
    pub reference_boottime: MonoInstant,
    /// Random per daemon start: a change means the daemon restarted.
    pub writer_instance: u64,
}

/// Why a segment cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShmError {
    /// The file is not a tsod segment.
    #[error("not a tsod segment (bad magic); is the path right?")]
    BadMagic,
    /// Written by an incompatible tsod.
    #[error("segment layout version {0} is not supported (this client reads version 1); upgrade the client")]
    UnsupportedLayout(u32),
    /// The file is not 4096 bytes (or its header says otherwise).
    #[error("segment size {0} bytes is not the expected 4096")]
    WrongSize(u64),
    /// Extrapolated with a clock this reader does not read.
    #[error("segment is for clock id {0}, this client reads CLOCK_MONOTONIC_RAW (4)")]
    WrongReaderClock(u32),
    /// A timescale this reader does not know.
    #[error("segment timescale {0} is unknown to this client")]
    UnknownTimescale(u32),
    /// Left over from an earlier boot: its reader-clock instants mean nothing now.
    #[error("segment was written during an earlier boot; is tsod running?")]
    OtherBoot,
    /// The seqlock stayed odd: the writer died or stalled mid-write.
    #[error("segment is being written and did not settle; the daemon may have died mid-update")]
    Busy,
    /// A state field holds a value no writer would write.
    #[error("segment field {0} holds an impossible value")]
    Corrupt(&'static str),
}

/// Why a valid segment yields no interval: the error semantics of SPEC.md §6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BoundError {
    /// No majority of sources agrees, or never synchronized.
    #[error("clock is unsynchronized: no valid bound (check `tsod status`)")]
    Unsynchronized,
    /// The clock was disturbed and is not yet re-synchronized.
    #[error("clock was disrupted (step, suspend or restart); waiting for re-synchronization")]
    Disrupted,
    /// The daemon has not refreshed the segment within its validity horizon.
    #[error("published bound is stale (daemon stopped or stalled); is tsod running?")]
    Stale,
    /// The result is outside the representable time range.
    #[error("bound is outside the representable time range")]
    OutOfRange,
}

impl ShmError {
    /// Kebab-case name of the variant, as used in the test vectors.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::BadMagic => "bad-magic",
            Self::UnsupportedLayout(_) => "unsupported-layout",
            Self::WrongSize(_) => "wrong-size",
            Self::WrongReaderClock(_) => "wrong-reader-clock",
            Self::UnknownTimescale(_) => "unknown-timescale",
            Self::OtherBoot => "other-boot",
            Self::Busy => "busy",
            Self::Corrupt(_) => "corrupt",
        }
    }
}

impl BoundError {
    /// Kebab-case name of the variant, as used in the test vectors.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Unsynchronized => "unsynchronized",
            Self::Disrupted => "disrupted",
            Self::Stale => "stale",
            Self::OutOfRange => "out-of-range",
        }
    }
}

impl ShmHeader {
    /// Reads and checks the header: magic, layout version, size, reader
    /// clock, timescale, and (when given) that it was written during this boot.
    pub fn read(segment: &ShmSegment, this_boot: Option<[u8; 16]>) -> Result<Self, ShmError> {
        if segment.magic.load(Ordering::Relaxed).to_ne_bytes() != SHM_MAGIC {
            return Err(ShmError::BadMagic);
        }
        let version = segment.layout_version.load(Ordering::Relaxed);
        if version != SHM_LAYOUT_VERSION {
            return Err(ShmError::UnsupportedLayout(version));
        }
        let size = segment.file_size.load(Ordering::Relaxed);
        if size != SHM_FILE_SIZE {
            return Err(ShmError::WrongSize(u64::from(size)));
        }
        let clock = segment.reader_clock.load(Ordering::Relaxed);
        if clock != READER_CLOCK_MONOTONIC_RAW {
            return Err(ShmError::WrongReaderClock(clock));
        }
        let code = segment.timescale.load(Ordering::Relaxed);
        let timescale =
            u8::try_from(code).ok().and_then(Timescale::from_code).ok_or(ShmError::UnknownTimescale(code))?;
        let mut boot_id = [0u8; 16];
        let (first, second) = boot_id.split_at_mut(8);
        first.copy_from_slice(&segment.boot_id[0].load(Ordering::Relaxed).to_ne_bytes());
        second.copy_from_slice(&segment.boot_id[1].load(Ordering::Relaxed).to_ne_bytes());
        if this_boot.is_some_and(|b| b != boot_id) {
            return Err(ShmError::OtherBoot);
        }
        Ok(Self { timescale, boot_id })
    }

    /// Writes the header. Only for a fresh segment that no reader can see yet
    /// (the daemon then renames the file into place).
    pub fn write(&self, segment: &ShmSegment) {
        segment.magic.store(u64::from_ne_bytes(SHM_MAGIC), Ordering::Relaxed);
        segment.layout_version.store(SHM_LAYOUT_VERSION, Ordering::Relaxed);
        segment.file_size.store(SHM_FILE_SIZE, Ordering::Relaxed);
        segment.reader_clock.store(READER_CLOCK_MONOTONIC_RAW, Ordering::Relaxed);
        segment.timescale.store(u32::from(self.timescale.code()), Ordering::Relaxed);
        let (first, second) = self.boot_id.split_at(8);
        for (slot, half) in segment.boot_id.iter().zip([first, second]) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(half);
            slot.store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
        }
    }
}

impl ShmSegment {
    /// The seqlock counter: even when no write is in progress.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Publishes `state` (writer side of the seqlock). Only one writer may
    /// call this at a time; the daemon guarantees it with a file lock.
    /// If a previous writer died mid-write (odd generation), this write
    /// completes its cycle, so readers never see its partial state.
    pub fn publish(&self, state: &PublishedState) {
        let g = self.generation.load(Ordering::Relaxed);
        let start = if g % 2 == 1 { g } else { g.wrapping_add(1) };
        self.generation.store(start, Ordering::Relaxed);
        fence(Ordering::Release);
        let anchor = &state.anchor;
        self.reference.store(anchor.reference.as_nanos(), Ordering::Relaxed);
        self.earliest.store(anchor.interval.earliest().as_nanos(), Ordering::Relaxed);
        self.latest.store(anchor.interval.latest().as_nanos(), Ordering::Relaxed);
        self.rate_low.store(anchor.rates.low_q32(), Ordering::Relaxed);
        self.rate_high.store(anchor.rates.high_q32(), Ordering::Relaxed);
        self.valid_until.store(anchor.valid_until.as_nanos(), Ordering::Relaxed);
        self.status.store(u32::from(anchor.status.code()), Ordering::Relaxed);
        self.status_reserved.store(0, Ordering::Relaxed);
        self.disruption_count.store(state.disruption_count, Ordering::Relaxed);
        self.reference_boottime.store(state.reference_boottime.as_nanos(), Ordering::Relaxed);
        self.writer_instance.store(state.writer_instance, Ordering::Relaxed);
        self.generation.store(start.wrapping_add(1), Ordering::Release);
    }

    /// Copies the whole published state out (reader side of the seqlock).
    pub fn read(&self) -> Result<PublishedState, ShmError> {
        let (anchor, disruption_count, reference_boottime, writer_instance) = self.read_consistent(|s| {
            (
                s.copy_anchor(),
                s.disruption_count.load(Ordering::Relaxed),
                s.reference_boottime.load(Ordering::Relaxed),
                s.writer_instance.load(Ordering::Relaxed),
            )
        })?;
        Ok(PublishedState {
            anchor: anchor.validate()?,
            disruption_count,
            reference_boottime: MonoInstant::from_nanos(reference_boottime),
            writer_instance,
        })
    }

    /// Copies only what `now()` needs (the hot path): seven loads under the seqlock.
    #[inline]
    pub fn read_anchor(&self) -> Result<Anchor, ShmError> {
        self.read_consistent(Self::copy_anchor)?.validate()
    }

    /// The seqlock's reader loop around `copy`, which must only do relaxed
    /// loads of state fields. Lock-free; gives up with [`ShmError::Busy`].
    #[inline]
    fn read_consistent<T>(&self, copy: impl Fn(&Self) -> T) -> Result<T, ShmError> {
        for attempt in 0..READ_ATTEMPTS {
            let g1 = self.generation.load(Ordering::Acquire);
            if g1 % 2 == 0 {
                let copied = copy(self);
                fence(Ordering::Acquire);
                if self.generation.load(Ordering::Relaxed) == g1 {
                    return Ok(copied);
                }
            }
            if attempt < SPIN_ATTEMPTS {
                core::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        Err(ShmError::Busy)
    }

    #[inline]
    fn copy_anchor(&self) -> RawAnchor {
        RawAnchor {
            reference: self.reference.load(Ordering::Relaxed),
            earliest: self.earliest.load(Ordering::Relaxed),
            latest: self.latest.load(Ordering::Relaxed),
            rate_low: self.rate_low.load(Ordering::Relaxed),
            rate_high: self.rate_high.load(Ordering::Relaxed),
            valid_until: self.valid_until.load(Ordering::Relaxed),
            status: self.status.load(Ordering::Relaxed),
        }
    }
}

/// One field of the layout, for the byte view: its offset and its atomic.
enum Field<'a> {
    U32(usize, &'a AtomicU32),
    U64(usize, &'a AtomicU64),
}

impl ShmSegment {
    /// Every field with its offset: they tile bytes 0 … 191 exactly
    /// (checked by a test).
    fn fields(&self) -> [Field<'_>; 27] {
        use Field::{U32, U64};
        let [boot0, boot1] = &self.boot_id;
        let [h0, h1, h2] = &self.header_reserved;
        let [s0, s1, s2, s3, s4] = &self.state_reserved;
        [
            U64(0, &self.magic),
            U32(8, &self.layout_version),
            U32(12, &self.file_size),
            U32(16, &self.reader_clock),
            U32(20, &self.timescale),
            U64(24, boot0),
            U64(32, boot1),
            U64(40, h0),
            U64(48, h1),
            U64(56, h2),
            U64(64, &self.generation),
            U64(72, &self.reference),
            U64(80, &self.earliest),
            U64(88, &self.latest),
            U64(96, &self.rate_low),
            U64(104, &self.rate_high),
            U64(112, &self.valid_until),
            U32(120, &self.status),
            U32(124, &self.status_reserved),
            U64(128, &self.disruption_count),
            U64(136, &self.reference_boottime),
            U64(144, &self.writer_instance),
            U64(152, s0),
            U64(160, s1),
            U64(168, s2),
            U64(176, s3),
            U64(184, s4),
        ]
    }
}

impl ShmSegment {
    /// A segment holding `bytes`: the first [`SHM_LAYOUT_LEN`] bytes of a
    /// segment file, integers in this host's byte order (SPEC.md §5.3), as
    /// a mapping of the file would show them. Safe: every field is read
    /// from its own bytes; nothing is validated (that is
    /// [`ShmHeader::read`] and [`ShmSegment::read`]'s job).
    pub fn from_bytes(bytes: &[u8; SHM_LAYOUT_LEN]) -> Self {
        let segment = Self::default();
        for field in segment.fields() {
            match field {
                Field::U32(at, slot) => slot.store(u32::from_ne_bytes(array_at(bytes, at)), Ordering::Relaxed),
                Field::U64(at, slot) => slot.store(u64::from_ne_bytes(array_at(bytes, at)), Ordering::Relaxed),
            }
        }
        segment
    }

    /// The layout's bytes as a segment file holds them (this host's byte
    /// order): what a new file's first 192 bytes are written from. Plain
    /// relaxed loads, not a seqlock read: a copy of a segment that is being
    /// written may be torn (readers use [`ShmSegment::read`]).
    pub fn to_bytes(&self) -> [u8; SHM_LAYOUT_LEN] {
        let mut out = [0u8; SHM_LAYOUT_LEN];
        for field in self.fields() {
            match field {
                Field::U32(at, slot) => put_at(&mut out, at, &slot.load(Ordering::Relaxed).to_ne_bytes()),
                Field::U64(at, slot) => put_at(&mut out, at, &slot.load(Ordering::Relaxed).to_ne_bytes()),
            }
        }
        out
    }
}

/// The `N` bytes at `at` (zeros past the end, which the tiled offsets never reach).
fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = bytes.get(at..at.saturating_add(N)) {
        out.copy_from_slice(src);
    }
    out
}

/// Writes `src` at `at` (nothing past the end, which the tiled offsets never reach).
fn put_at(out: &mut [u8], at: usize, src: &[u8]) {
    if let Some(dst) = out.get_mut(at..at.saturating_add(src.len())) {
        dst.copy_from_slice(src);
    }
}

/// The anchor's fields exactly as copied, before validation.
struct RawAnchor {
    reference: u64,
    earliest: u64,
    latest: u64,
    rate_low: u64,
    rate_high: u64,
    valid_until: u64,
    status: u32,
}

impl RawAnchor {
    #[inline]
    fn validate(self) -> Result<Anchor, ShmError> {
        let status =
            u8::try_from(self.status).ok().and_then(ClockStatus::from_code).ok_or(ShmError::Corrupt("status"))?;
        let interval = TimeInterval::new(Timestamp::from_nanos(self.earliest), Timestamp::from_nanos(self.latest))
            .map_err(|_| ShmError::Corrupt("interval"))?;
        let rates = RateBounds::new(self.rate_low, self.rate_high).map_err(|_| ShmError::Corrupt("rates"))?;
        // A horizon beyond the cap would keep a dead daemon's bound usable
        // (SPEC.md §5.3); `valid_until` before `reference` is merely stale.
        if self.valid_until.saturating_sub(self.reference) > MAX_HORIZON_NS {
            return Err(ShmError::Corrupt("valid-until"));
        }
        Ok(Anchor {
            reference: MonoInstant::from_nanos(self.reference),
            interval,
            rates,
            status,
            valid_until: MonoInstant::from_nanos(self.valid_until),
        })
    }
}

impl Anchor {
    /// The bound at reader-clock instant `now`, or why there is none:
    /// the status must be bounded and `now` no later than `valid_until`.
    #[inline]
    pub fn interval_at(&self, now: MonoInstant) -> Result<TimeInterval, BoundError> {
        match self.status {
            ClockStatus::Unsynchronized => return Err(BoundError::Unsynchronized),
            ClockStatus::Disrupted => return Err(BoundError::Disrupted),
            ClockStatus::Synchronized | ClockStatus::Degraded | ClockStatus::FreeRunning => {}
        }
        if now > self.valid_until {
            return Err(BoundError::Stale);
        }
        self.rates.extrapolate(self.interval, self.reference, now).ok_or(BoundError::OutOfRange)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bound::DriftModel;
    use crate::status::Ppb;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    fn state(k: u64) -> PublishedState {
        let drift = DriftModel::new(Ppb::new(i64::try_from(k % 1000).unwrap()), Ppb::from_ppm(15)).unwrap();
        PublishedState {
            anchor: Anchor {
                reference: MonoInstant::from_nanos(k),
                interval: TimeInterval::new(Timestamp::from_nanos(k * 3), Timestamp::from_nanos(k * 3 + 1000)).unwrap(),
                rates: drift.rates(),
                status: ClockStatus::Synchronized,
                valid_until: MonoInstant::from_nanos(k + 1_000_000_000),
            },
            disruption_count: k,
            reference_boottime: MonoInstant::from_nanos(k + 7),
            writer_instance: k ^ 0x5555,
        }
    }

    fn header() -> ShmHeader {
        ShmHeader { timescale: Timescale::UtcSmear24h, boot_id: *b"0123456789abcdef" }
    }

    #[test]
    fn publish_then_read_round_trips_and_generation_grows_by_two() {
        let seg = ShmSegment::default();
        header().write(&seg);
        assert_eq!(ShmHeader::read(&seg, Some(*b"0123456789abcdef")), Ok(header()));
        seg.publish(&state(42));
        assert_eq!(seg.generation(), 2);
        assert_eq!(seg.read(), Ok(state(42)));
        seg.publish(&state(43));
        assert_eq!(seg.generation(), 4);
        assert_eq!(seg.read(), Ok(state(43)));
    }

    #[test]
    fn header_checks_each_field() {
        let seg = ShmSegment::default();
        assert_eq!(ShmHeader::read(&seg, None), Err(ShmError::BadMagic));
        header().write(&seg);
        assert_eq!(ShmHeader::read(&seg, Some([0; 16])), Err(ShmError::OtherBoot));
        seg.layout_version.store(2, Ordering::Relaxed);
        assert_eq!(ShmHeader::read(&seg, None), Err(ShmError::UnsupportedLayout(2)));
        header().write(&seg);
        seg.file_size.store(8192, Ordering::Relaxed);
        assert_eq!(ShmHeader::read(&seg, None), Err(ShmError::WrongSize(8192)));
        header().write(&seg);
        seg.reader_clock.store(1, Ordering::Relaxed);
        assert_eq!(ShmHeader::read(&seg, None), Err(ShmError::WrongReaderClock(1)));
        header().write(&seg);
        seg.timescale.store(9, Ordering::Relaxed);
        assert_eq!(ShmHeader::read(&seg, None), Err(ShmError::UnknownTimescale(9)));
    }

    #[test]
    fn a_writer_that_died_mid_write_blocks_readers_until_the_next_publish() {
        let seg = ShmSegment::default();
        seg.publish(&state(1));
        seg.generation.store(3, Ordering::Relaxed); // died after the odd store
        assert_eq!(seg.read(), Err(ShmError::Busy));
        seg.publish(&state(2)); // the restarted writer completes the cycle
        assert_eq!(seg.generation(), 4);
        assert_eq!(seg.read(), Ok(state(2)));
    }

    #[test]
    fn impossible_values_are_corrupt_not_bounds() {
        let seg = ShmSegment::default();
        assert_eq!(seg.read(), Err(ShmError::Corrupt("status")), "a zeroed segment is not a state");
        seg.publish(&state(5));
        seg.latest.store(0, Ordering::Relaxed);
        assert_eq!(seg.read(), Err(ShmError::Corrupt("interval")));
        seg.publish(&state(5));
        seg.rate_high.store(RateBounds::MAX_Q32 + 1, Ordering::Relaxed);
        assert_eq!(seg.read(), Err(ShmError::Corrupt("rates")));
        assert_eq!(seg.read_anchor(), Err(ShmError::Corrupt("rates")));
    }

    #[test]
    fn a_horizon_beyond_the_cap_is_corrupt() {
        let seg = ShmSegment::default();
        let mut s = state(5);
        let cap = u64::try_from(SHM_MAX_HORIZON.as_nanos()).unwrap();
        s.anchor.valid_until = MonoInstant::from_nanos(5 + cap);
        seg.publish(&s);
        assert_eq!(seg.read(), Ok(s), "exactly the cap is allowed");
        s.anchor.valid_until = MonoInstant::from_nanos(5 + cap + 1);
        seg.publish(&s);
        assert_eq!(seg.read(), Err(ShmError::Corrupt("valid-until")));
        assert_eq!(seg.read_anchor(), Err(ShmError::Corrupt("valid-until")));
        s.anchor.valid_until = MonoInstant::from_nanos(u64::MAX);
        seg.publish(&s);
        assert_eq!(seg.read_anchor(), Err(ShmError::Corrupt("valid-until")), "stale can never be switched off");
        // Before the reference: valid, and stale from the start.
        s.anchor.valid_until = MonoInstant::from_nanos(4);
        seg.publish(&s);
        assert_eq!(seg.read_anchor().map(|a| a.interval_at(MonoInstant::from_nanos(5))), Ok(Err(BoundError::Stale)));
    }

    #[test]
    fn the_byte_view_tiles_the_layout_and_round_trips() {
        let seg = ShmSegment::default();
        let mut covered = [0u8; SHM_LAYOUT_LEN];
        for field in seg.fields() {
            let (at, len) = match field {
                Field::U32(at, _) => (at, 4),
                Field::U64(at, _) => (at, 8),
            };
            assert_eq!(at % len, 0, "field at {at} is not naturally aligned");
            for byte in &mut covered[at..at + len] {
                *byte += 1;
            }
        }
        assert_eq!(covered, [1u8; SHM_LAYOUT_LEN], "every byte belongs to exactly one field");

        let mut bytes = [0u8; SHM_LAYOUT_LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::try_from(i).unwrap().wrapping_mul(37).wrapping_add(11);
        }
        assert_eq!(ShmSegment::from_bytes(&bytes).to_bytes(), bytes);

        let written = ShmSegment::default();
        header().write(&written);
        written.publish(&state(9));
        let image = written.to_bytes();
        assert_eq!(&image[..8], b"TSOD-SHM");
        assert_eq!(&image[24..40], b"0123456789abcdef");
        assert_eq!(image[64..72], 2u64.to_ne_bytes(), "generation");
        let copy = ShmSegment::from_bytes(&image);
        assert_eq!(ShmHeader::read(&copy, Some(*b"0123456789abcdef")), Ok(header()));
        assert_eq!(copy.read(), Ok(state(9)));
    }

    #[test]
    fn interval_at_applies_status_and_horizon() {
        let mut s = state(1_000).anchor;
        let at_ref = s.interval_at(MonoInstant::from_nanos(1_000)).unwrap();
        assert_eq!(at_ref, s.interval);
        assert!(s.interval_at(MonoInstant::from_nanos(1_000_001_000)).is_ok(), "the horizon itself is valid");
        assert_eq!(s.interval_at(MonoInstant::from_nanos(1_000_001_001)), Err(BoundError::Stale));
        s.status = ClockStatus::FreeRunning;
        assert!(s.interval_at(MonoInstant::from_nanos(2_000)).is_ok());
        s.status = ClockStatus::Unsynchronized;
        assert_eq!(s.interval_at(MonoInstant::from_nanos(2_000)), Err(BoundError::Unsynchronized));
        s.status = ClockStatus::Disrupted;
        assert_eq!(s.interval_at(MonoInstant::from_nanos(2_000)), Err(BoundError::Disrupted));
    }

    /// Readers racing one writer never see a mix of two states: every field
    /// they copy belongs to the same `k`.
    #[test]
    fn concurrent_readers_never_see_torn_state() {
        let seg = Arc::new(ShmSegment::default());
        seg.publish(&state(1));
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (seg, stop) = (Arc::clone(&seg), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let mut seen = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let s = seg.read().unwrap();
                        let k = s.anchor.reference.as_nanos();
                        assert_eq!(seg.read_anchor().map(|a| a.reference.as_nanos() >= k), Ok(true));
                        assert_eq!(s, state(k), "torn read");
                        seen = seen.max(k);
                    }
                    seen
                })
            })
            .collect();
        for k in 2..200_000 {
            seg.publish(&state(k));
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() >= 1);
        }
    }
}
