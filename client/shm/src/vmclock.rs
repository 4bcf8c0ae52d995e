//! The hypervisor's VMClock page (`/dev/vmclock0`, Linux 6.13+,
//! `drivers/ptp/ptp_vmclock.c`), read for what it says about disruptions:
//! its `disruption_marker` changes whenever the guest's counter may have
//! been disrupted (live migration), and its `vm_generation_counter`, when
//! the hypervisor sets `VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT`, changes when
//! the VM is restored from a snapshot or cloned. Either means every
//! calibration of the local clock against other sources is void. Only with
//! `vmclock` (the daemon).
//!
//! [`VmClock`] maps the page read-only and copies fields out under the
//! hypervisor's seqlock; [`DisruptionWatch`] is the pure part: it remembers
//! the last markers seen and says when they changed. A watch that was in
//! memory when the VM was snapshotted is restored with it, still holding
//! the old markers, while the hypervisor has changed the page: the first
//! read after the restore reports the disruption.
//!
//! # Layout
//!
//! `struct vmclock_abi` of the Linux uapi header
//! `include/uapi/linux/vmclock-abi.h` (version 1; read from the torvalds/linux
//! tree, the version that has `vm_generation_counter`, appended after the
//! 6.13 original, which ended at `time_maxerror_nanosec`). All fields are
//! little-endian and naturally aligned; the struct is 112 bytes at the start
//! of a page-sized region. The offsets are asserted at compile time below
//! and tested against numbers copied from the header. aws/clock-bound
//! (`clock-bound-vmclock`) reads the same page the same way.
//!
//! # Invariants
//!
//! * The mapping is read-only and shared, of a device or file checked to
//!   hold at least the struct (the device's own `mmap` accepts exactly one
//!   page at offset 0, read-only; the kernel rounds our 112-byte request up
//!   to that page).
//! * The constant fields (magic, size, version) are checked once, at open;
//!   the others are only read between two equal, even `seq_count` loads,
//!   and a read gives up after a bounded number of attempts
//!   ([`VmClockError::Busy`]) rather than spin on a stuck writer.
//! * A vanished device is [`VmClockError::Absent`], the normal case on bare
//!   metal and most VMs: the caller treats it as "no VMClock", not a fault.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering, fence};

use memmap2::{MmapOptions, MmapRaw};

/// `VMCLOCK_MAGIC`: "VCLK" read as a little-endian `u32`.
const VMCLOCK_MAGIC: u32 = 0x4b4c_4356;
/// The one ABI version this reader knows (the kernel driver also accepts only 1).
const VMCLOCK_VERSION: u16 = 1;
/// `VMCLOCK_FLAG_DISRUPTION_SOON`: maintenance in about a day.
const FLAG_DISRUPTION_SOON: u64 = 1 << 1;
/// `VMCLOCK_FLAG_DISRUPTION_IMMINENT`: maintenance in about an hour.
const FLAG_DISRUPTION_IMMINENT: u64 = 1 << 2;
/// `VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT`: `vm_generation_counter` is maintained.
const FLAG_VM_GEN_COUNTER_PRESENT: u64 = 1 << 8;

/// Attempts a read makes before [`VmClockError::Busy`]; the first
/// `SPIN_ATTEMPTS` spin, the rest yield the CPU. A hypervisor update takes
/// microseconds; an odd `seq_count` that outlasts this is a stuck writer.
const READ_ATTEMPTS: u32 = 10_000;
const SPIN_ATTEMPTS: u32 = 16;

/// `struct vmclock_abi`, every field an atomic of its ABI width so that
/// reads racing the hypervisor's writes are defined. Fields this reader does
/// not use are kept to fix the offsets of the ones it does.
#[repr(C)]
struct VmClockAbi {
    magic: AtomicU32,
    size: AtomicU32,
    version: AtomicU16,
    counter_id: AtomicU8,
    time_type: AtomicU8,
    seq_count: AtomicU32,
    disruption_marker: AtomicU64,
    flags: AtomicU64,
    pad: [AtomicU8; 2],
    clock_status: AtomicU8,
    leap_second_smearing_hint: AtomicU8,
    tai_offset_sec: AtomicU16,
    leap_indicator: AtomicU8,
    counter_period_shift: AtomicU8,
    counter_value: AtomicU64,
    counter_period_frac_sec: AtomicU64,
    counter_period_esterror_rate_frac_sec: AtomicU64,
    counter_period_maxerror_rate_frac_sec: AtomicU64,
    time_sec: AtomicU64,
    time_frac_sec: AtomicU64,
    time_esterror_nanosec: AtomicU64,
    time_maxerror_nanosec: AtomicU64,
    vm_generation_counter: AtomicU64,
}

/// Bytes of the struct: what the file must hold and what is mapped.
const ABI_SIZE: usize = 112;

const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<VmClockAbi>() == ABI_SIZE);
    assert!(align_of::<VmClockAbi>() == 8);
    assert!(offset_of!(VmClockAbi, seq_count) == 12);
    assert!(offset_of!(VmClockAbi, disruption_marker) == 16);
    assert!(offset_of!(VmClockAbi, flags) == 24);
    assert!(offset_of!(VmClockAbi, clock_status) == 34);
    assert!(offset_of!(VmClockAbi, vm_generation_counter) == 104);
};

/// Why the VMClock page could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum VmClockError {
    /// The path does not exist: no VMClock on this machine (bare metal, most
    /// VMs, kernels before 6.13 or without `CONFIG_PTP_1588_CLOCK_VMCLOCK`).
    #[error("no VMClock device at {}: the hypervisor offers none, or the kernel lacks ptp_vmclock", .0.display())]
    Absent(PathBuf),
    /// Opening, `fstat` or `mmap` failed.
    #[error("cannot map the VMClock device {}: {source}; the daemon needs read access to it", path.display())]
    Io {
        /// What was opened.
        path: PathBuf,
        /// The system call's error.
        source: io::Error,
    },
    /// A regular file shorter than the 112-byte struct.
    #[error("VMClock file is {0} bytes, shorter than the 112-byte structure; not a VMClock page")]
    WrongSize(u64),
    /// The page's `size` field declares a region smaller than the struct.
    #[error("VMClock page declares {0} bytes, fewer than the 112-byte structure; not a VMClock page")]
    TooSmall(u32),
    /// The first four bytes are not "VCLK".
    #[error("VMClock magic is {0:#010x}, expected 0x4b4c4356 (\"VCLK\"); not a VMClock page")]
    BadMagic(u32),
    /// A layout version this reader does not know.
    #[error("VMClock version {0} is not supported (only 1); update tsod")]
    UnsupportedVersion(u16),
    /// `seq_count` stayed odd or kept changing for every attempt: the
    /// hypervisor is stuck mid-update. Retry later; meanwhile trust no
    /// calibration older than the last good read.
    #[error("VMClock page is being updated and no consistent copy was read; retry")]
    Busy,
}

/// The hypervisor's view of its own clock (`clock_status`, the values of
/// virtio-rtc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmClockStatus {
    /// `VMCLOCK_STATUS_UNKNOWN` (0).
    Unknown,
    /// `VMCLOCK_STATUS_INITIALIZING` (1).
    Initializing,
    /// `VMCLOCK_STATUS_SYNCHRONIZED` (2).
    Synchronized,
    /// `VMCLOCK_STATUS_FREERUNNING` (3).
    FreeRunning,
    /// `VMCLOCK_STATUS_UNRELIABLE` (4): the hypervisor says not to use it.
    Unreliable,
    /// A value the header does not define.
    Other(u8),
}

impl VmClockStatus {
    /// The status for a `clock_status` byte.
    pub const fn from_code(code: u8) -> Self {
        match code {
            0 => Self::Unknown,
            1 => Self::Initializing,
            2 => Self::Synchronized,
            3 => Self::FreeRunning,
            4 => Self::Unreliable,
            other => Self::Other(other),
        }
    }
}

/// A consistent copy of the fields that signal disruptions, taken under
/// the page's seqlock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmClockSnapshot {
    /// The even `seq_count` both ends of the copy saw.
    pub seq_count: u32,
    /// Changes to a new, non-repeating value whenever the counter may have
    /// been disrupted (live migration).
    pub disruption_marker: u64,
    /// The raw `VMCLOCK_FLAG_*` bits.
    pub flags: u64,
    /// The hypervisor's clock status.
    pub clock_status: VmClockStatus,
    /// Changes when the VM is restored from a snapshot or cloned; `None`
    /// when the hypervisor does not maintain it (its flag is clear).
    pub vm_generation_counter: Option<u64>,
}

impl VmClockSnapshot {
    /// The hypervisor announces maintenance (a disruption) in about a day.
    pub const fn disruption_soon(&self) -> bool {
        self.flags & FLAG_DISRUPTION_SOON != 0
    }

    /// The hypervisor announces maintenance (a disruption) in about an hour.
    pub const fn disruption_imminent(&self) -> bool {
        self.flags & FLAG_DISRUPTION_IMMINENT != 0
    }
}

/// A read-only mapping of the VMClock page.
#[derive(Debug)]
pub struct VmClock {
    map: MmapRaw,
}

impl VmClock {
    /// Where Linux puts the first VMClock device.
    pub const DEFAULT_PATH: &'static str = "/dev/vmclock0";

    /// Opens [`Self::DEFAULT_PATH`].
    pub fn open_default() -> Result<Self, VmClockError> {
        Self::open(Self::DEFAULT_PATH)
    }

    /// Opens `path` read-only, maps it and checks its magic, size and version.
    /// A character device is mapped as it is (its `fstat` size is 0; the
    /// driver checks the mapping); any other file must hold the struct.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, VmClockError> {
        let path = path.as_ref();
        let io_error = |source| VmClockError::Io { path: path.to_path_buf(), source };
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(VmClockError::Absent(path.to_path_buf())),
            Err(e) => return Err(io_error(e)),
        };
        let meta = file.metadata().map_err(io_error)?;
        if !meta.file_type().is_char_device() && meta.len() < ABI_SIZE as u64 {
            return Err(VmClockError::WrongSize(meta.len()));
        }
        let map = MmapOptions::new().len(ABI_SIZE).map_raw_read_only(&file).map_err(io_error)?;
        let clock = Self { map };
        clock.check_header()?;
        Ok(clock)
    }

    /// A consistent copy of the disruption fields (reader side of the
    /// hypervisor's seqlock). Lock-free; gives up with [`VmClockError::Busy`].
    pub fn read(&self) -> Result<VmClockSnapshot, VmClockError> {
        let abi = view(&self.map);
        for attempt in 0..READ_ATTEMPTS {
            let seq_count = u32::from_le(abi.seq_count.load(Ordering::Acquire));
            if seq_count % 2 == 0 {
                let disruption_marker = u64::from_le(abi.disruption_marker.load(Ordering::Relaxed));
                let flags = u64::from_le(abi.flags.load(Ordering::Relaxed));
                let clock_status = abi.clock_status.load(Ordering::Relaxed);
                let generation = u64::from_le(abi.vm_generation_counter.load(Ordering::Relaxed));
                fence(Ordering::Acquire);
                if u32::from_le(abi.seq_count.load(Ordering::Relaxed)) == seq_count {
                    return Ok(VmClockSnapshot {
                        seq_count,
                        disruption_marker,
                        flags,
                        clock_status: VmClockStatus::from_code(clock_status),
                        vm_generation_counter: (flags & FLAG_VM_GEN_COUNTER_PRESENT != 0).then_some(generation),
                    });
                }
            }
            if attempt < SPIN_ATTEMPTS {
                core::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        Err(VmClockError::Busy)
    }

    /// The constant fields: magic, then the declared size, then the version.
    fn check_header(&self) -> Result<(), VmClockError> {
        let abi = view(&self.map);
        let magic = u32::from_le(abi.magic.load(Ordering::Relaxed));
        if magic != VMCLOCK_MAGIC {
            return Err(VmClockError::BadMagic(magic));
        }
        let size = u32::from_le(abi.size.load(Ordering::Relaxed));
        if (size as usize) < ABI_SIZE {
            return Err(VmClockError::TooSmall(size));
        }
        let version = u16::from_le(abi.version.load(Ordering::Relaxed));
        if version != VMCLOCK_VERSION {
            return Err(VmClockError::UnsupportedVersion(version));
        }
        Ok(())
    }
}

#[expect(unsafe_code, reason = "viewing mapped memory as the #[repr(C)] VMClock structure")]
#[inline]
fn view(map: &MmapRaw) -> &VmClockAbi {
    // SAFETY: every mapping here is ABI_SIZE bytes (size_of::<VmClockAbi>(),
    // asserted at compile time) of a device, or of a file checked to hold at
    // least that many, and page-aligned, so aligned for VmClockAbi (align
    // 8). Every field is an integer atomic: any bit pattern is valid, and
    // concurrent writes by the hypervisor (or another process) are reads of
    // atomics here. The mapping outlives the returned reference, which
    // borrows it; it is read-only and nothing here stores through it.
    unsafe { &*map.as_ptr().cast::<VmClockAbi>() }
}

/// What changed since the previous snapshot a [`DisruptionWatch`] saw;
/// at least one field is true.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disruption {
    /// `disruption_marker` changed: the counter may have jumped or changed
    /// rate (live migration); recalibrate against external sources.
    pub clock: bool,
    /// `vm_generation_counter` changed, appeared or disappeared: the VM was
    /// restored from a snapshot or cloned (which also disrupts the clock).
    pub generation: bool,
}

/// Remembers the last (`disruption_marker`, `vm_generation_counter`) seen
/// and reports changes. Pure: no I/O, fed snapshots by the caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DisruptionWatch {
    last: Option<(u64, Option<u64>)>,
}

impl DisruptionWatch {
    /// A watch with no baseline yet.
    pub const fn new() -> Self {
        Self { last: None }
    }

    /// Records `snapshot` and says what changed since the previous one. The
    /// first snapshot only sets the baseline (`None`): what happened before
    /// the daemon started is not its business. A generation counter that
    /// appears or disappears counts as a change (the hypervisor itself
    /// changed, which only a restore or migration does).
    #[must_use = "a disruption voids every calibration of the clock"]
    pub fn observe(&mut self, snapshot: &VmClockSnapshot) -> Option<Disruption> {
        let now = (snapshot.disruption_marker, snapshot.vm_generation_counter);
        let before = self.last.replace(now)?;
        let disruption = Disruption { clock: before.0 != now.0, generation: before.1 != now.1 };
        (disruption.clock || disruption.generation).then_some(disruption)
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::os::unix::fs::FileExt;

    use super::*;

    // Offsets in `struct vmclock_abi`, counted by hand from the Linux uapi
    // header include/uapi/linux/vmclock-abi.h (version 1, with
    // vm_generation_counter). The struct above must agree.
    const HDR_MAGIC: usize = 0;
    const HDR_SIZE: usize = 4;
    const HDR_VERSION: usize = 8;
    const HDR_COUNTER_ID: usize = 10;
    const HDR_TIME_TYPE: usize = 11;
    const HDR_SEQ_COUNT: usize = 12;
    const HDR_DISRUPTION_MARKER: usize = 16;
    const HDR_FLAGS: usize = 24;
    const HDR_PAD: usize = 32;
    const HDR_CLOCK_STATUS: usize = 34;
    const HDR_LEAP_SECOND_SMEARING_HINT: usize = 35;
    const HDR_TAI_OFFSET_SEC: usize = 36;
    const HDR_LEAP_INDICATOR: usize = 38;
    const HDR_COUNTER_PERIOD_SHIFT: usize = 39;
    const HDR_COUNTER_VALUE: usize = 40;
    const HDR_COUNTER_PERIOD_FRAC_SEC: usize = 48;
    const HDR_COUNTER_PERIOD_ESTERROR_RATE: usize = 56;
    const HDR_COUNTER_PERIOD_MAXERROR_RATE: usize = 64;
    const HDR_TIME_SEC: usize = 72;
    const HDR_TIME_FRAC_SEC: usize = 80;
    const HDR_TIME_ESTERROR_NANOSEC: usize = 88;
    const HDR_TIME_MAXERROR_NANOSEC: usize = 96;
    const HDR_VM_GENERATION_COUNTER: usize = 104;
    const HDR_STRUCT_SIZE: usize = 112;
    const PAGE: u64 = 4096;

    #[test]
    fn the_struct_matches_the_uapi_header() {
        use core::mem::{offset_of, size_of};
        let fields = [
            (offset_of!(VmClockAbi, magic), HDR_MAGIC),
            (offset_of!(VmClockAbi, size), HDR_SIZE),
            (offset_of!(VmClockAbi, version), HDR_VERSION),
            (offset_of!(VmClockAbi, counter_id), HDR_COUNTER_ID),
            (offset_of!(VmClockAbi, time_type), HDR_TIME_TYPE),
            (offset_of!(VmClockAbi, seq_count), HDR_SEQ_COUNT),
            (offset_of!(VmClockAbi, disruption_marker), HDR_DISRUPTION_MARKER),
            (offset_of!(VmClockAbi, flags), HDR_FLAGS),
            (offset_of!(VmClockAbi, pad), HDR_PAD),
            (offset_of!(VmClockAbi, clock_status), HDR_CLOCK_STATUS),
            (offset_of!(VmClockAbi, leap_second_smearing_hint), HDR_LEAP_SECOND_SMEARING_HINT),
            (offset_of!(VmClockAbi, tai_offset_sec), HDR_TAI_OFFSET_SEC),
            (offset_of!(VmClockAbi, leap_indicator), HDR_LEAP_INDICATOR),
            (offset_of!(VmClockAbi, counter_period_shift), HDR_COUNTER_PERIOD_SHIFT),
            (offset_of!(VmClockAbi, counter_value), HDR_COUNTER_VALUE),
            (offset_of!(VmClockAbi, counter_period_frac_sec), HDR_COUNTER_PERIOD_FRAC_SEC),
            (offset_of!(VmClockAbi, counter_period_esterror_rate_frac_sec), HDR_COUNTER_PERIOD_ESTERROR_RATE),
            (offset_of!(VmClockAbi, counter_period_maxerror_rate_frac_sec), HDR_COUNTER_PERIOD_MAXERROR_RATE),
            (offset_of!(VmClockAbi, time_sec), HDR_TIME_SEC),
            (offset_of!(VmClockAbi, time_frac_sec), HDR_TIME_FRAC_SEC),
            (offset_of!(VmClockAbi, time_esterror_nanosec), HDR_TIME_ESTERROR_NANOSEC),
            (offset_of!(VmClockAbi, time_maxerror_nanosec), HDR_TIME_MAXERROR_NANOSEC),
            (offset_of!(VmClockAbi, vm_generation_counter), HDR_VM_GENERATION_COUNTER),
        ];
        for (ours, header) in fields {
            assert_eq!(ours, header);
        }
        assert_eq!(size_of::<VmClockAbi>(), HDR_STRUCT_SIZE);
        assert_eq!(ABI_SIZE, HDR_STRUCT_SIZE);
        assert_eq!(&VMCLOCK_MAGIC.to_le_bytes(), b"VCLK");
    }

    /// A file standing in for the device, removed on drop.
    struct FakePage {
        path: PathBuf,
        file: File,
    }

    impl FakePage {
        /// A page laid out as a hypervisor would: magic, region size 4096,
        /// version 1, a synchronized clock, the generation counter present.
        fn new(name: &str) -> Self {
            let page = Self::empty(name, PAGE);
            page.put(HDR_MAGIC, &VMCLOCK_MAGIC.to_le_bytes());
            page.put(HDR_SIZE, &4096u32.to_le_bytes());
            page.put(HDR_VERSION, &1u16.to_le_bytes());
            page.put(HDR_COUNTER_ID, &[1]); // VMCLOCK_COUNTER_X86_TSC
            page.put(HDR_TIME_TYPE, &[0]); // VMCLOCK_TIME_UTC
            page.put(HDR_SEQ_COUNT, &2u32.to_le_bytes());
            page.put(HDR_DISRUPTION_MARKER, &0x1111u64.to_le_bytes());
            page.put(HDR_FLAGS, &FLAG_VM_GEN_COUNTER_PRESENT.to_le_bytes());
            page.put(HDR_CLOCK_STATUS, &[2]); // VMCLOCK_STATUS_SYNCHRONIZED
            page.put(HDR_VM_GENERATION_COUNTER, &7u64.to_le_bytes());
            page
        }

        fn empty(name: &str, len: u64) -> Self {
            let path = std::env::temp_dir().join(format!("tsod-vmclock-{name}-{}", std::process::id()));
            let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
            file.set_len(len).unwrap();
            Self { path, file }
        }

        fn put(&self, offset: usize, bytes: &[u8]) {
            self.file.write_all_at(bytes, offset as u64).unwrap();
        }

        /// One hypervisor update: seq_count odd, `fields` written, seq_count even.
        fn update(&self, seq: u32, fields: &[(usize, &[u8])]) {
            self.put(HDR_SEQ_COUNT, &(seq + 1).to_le_bytes());
            for (offset, bytes) in fields {
                self.put(*offset, bytes);
            }
            self.put(HDR_SEQ_COUNT, &(seq + 2).to_le_bytes());
        }
    }

    impl Drop for FakePage {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    #[test]
    fn a_migration_and_a_restore_are_each_reported_once() {
        let page = FakePage::new("disruption");
        let clock = VmClock::open(&page.path).unwrap();
        let first = clock.read().unwrap();
        assert_eq!(
            first,
            VmClockSnapshot {
                seq_count: 2,
                disruption_marker: 0x1111,
                flags: FLAG_VM_GEN_COUNTER_PRESENT,
                clock_status: VmClockStatus::Synchronized,
                vm_generation_counter: Some(7),
            }
        );
        let mut watch = DisruptionWatch::new();
        assert_eq!(watch.observe(&first), None, "the first snapshot is the baseline");
        assert_eq!(watch.observe(&clock.read().unwrap()), None, "nothing changed");

        // Live migration: the marker changes; the mapping shows it without re-mapping.
        page.update(2, &[(HDR_DISRUPTION_MARKER, &0x2222u64.to_le_bytes())]);
        let migrated = clock.read().unwrap();
        assert_eq!((migrated.seq_count, migrated.disruption_marker), (4, 0x2222));
        assert_eq!(watch.observe(&migrated), Some(Disruption { clock: true, generation: false }));
        assert_eq!(watch.observe(&migrated), None, "reported once");

        // Restore from a snapshot: both change.
        page.update(
            4,
            &[(HDR_DISRUPTION_MARKER, &0x3333u64.to_le_bytes()), (HDR_VM_GENERATION_COUNTER, &8u64.to_le_bytes())],
        );
        assert_eq!(watch.observe(&clock.read().unwrap()), Some(Disruption { clock: true, generation: true }));

        // The hypervisor stops maintaining the counter: a change too.
        page.update(6, &[(HDR_FLAGS, &0u64.to_le_bytes())]);
        let without = clock.read().unwrap();
        assert_eq!(without.vm_generation_counter, None, "ignored without its flag");
        assert_eq!(watch.observe(&without), Some(Disruption { clock: false, generation: true }));
    }

    #[test]
    fn status_and_maintenance_flags_are_read() {
        let page = FakePage::new("status");
        page.update(2, &[(HDR_CLOCK_STATUS, &[4]), (HDR_FLAGS, &(FLAG_DISRUPTION_SOON).to_le_bytes())]);
        let read = VmClock::open(&page.path).unwrap().read().unwrap();
        assert_eq!(read.clock_status, VmClockStatus::Unreliable);
        assert!(read.disruption_soon() && !read.disruption_imminent());
        assert_eq!(read.vm_generation_counter, None);
        assert_eq!(VmClockStatus::from_code(3), VmClockStatus::FreeRunning);
        assert_eq!(VmClockStatus::from_code(9), VmClockStatus::Other(9));
    }

    #[test]
    fn a_stuck_writer_makes_the_read_busy_not_endless() {
        let page = FakePage::new("stuck");
        let clock = VmClock::open(&page.path).unwrap();
        page.put(HDR_SEQ_COUNT, &3u32.to_le_bytes());
        assert!(matches!(clock.read(), Err(VmClockError::Busy)));
        page.put(HDR_SEQ_COUNT, &4u32.to_le_bytes());
        assert_eq!(clock.read().unwrap().seq_count, 4, "and recovers when the writer finishes");
    }

    #[test]
    fn pages_that_are_not_vmclock_are_refused() {
        let page = FakePage::new("bad-magic");
        page.put(HDR_MAGIC, b"NTPD");
        assert!(matches!(VmClock::open(&page.path), Err(VmClockError::BadMagic(m)) if m == 0x4450_544e));

        let page = FakePage::new("bad-version");
        page.put(HDR_VERSION, &2u16.to_le_bytes());
        assert!(matches!(VmClock::open(&page.path), Err(VmClockError::UnsupportedVersion(2))));

        let page = FakePage::new("declared-small");
        page.put(HDR_SIZE, &104u32.to_le_bytes());
        assert!(matches!(VmClock::open(&page.path), Err(VmClockError::TooSmall(104))));

        for len in [0, 104, 111] {
            let page = FakePage::empty(&format!("short-{len}"), len);
            assert!(matches!(VmClock::open(&page.path), Err(VmClockError::WrongSize(l)) if l == len));
        }
        let page = FakePage::empty("zeroed", PAGE);
        assert!(matches!(VmClock::open(&page.path), Err(VmClockError::BadMagic(0))));
    }

    #[test]
    fn a_missing_device_is_absent() {
        let path = std::env::temp_dir().join(format!("tsod-vmclock-missing-{}", std::process::id()));
        assert!(matches!(VmClock::open(&path), Err(VmClockError::Absent(p)) if p == path));
    }

    /// Whatever this machine has: no device (the usual case), no access,
    /// or a real page that must read consistently.
    #[test]
    fn the_default_device_reads_or_is_absent() {
        match VmClock::open_default() {
            Ok(clock) => assert_eq!(clock.read().unwrap().seq_count % 2, 0),
            Err(VmClockError::Absent(_) | VmClockError::Io { .. }) => {}
            Err(other) => panic!("{}: {other}", VmClock::DEFAULT_PATH),
        }
    }

    /// The seqlock against a writer in another mapping of the page, as
    /// between the hypervisor and the guest: a read never mixes two updates.
    #[test]
    #[expect(unsafe_code, reason = "a writable view of the fake page, to play the hypervisor")]
    fn concurrent_reads_are_never_torn() {
        let page = FakePage::new("concurrent");
        let clock = VmClock::open(&page.path).unwrap();
        let writable = MmapOptions::new().len(ABI_SIZE).map_raw(&page.file).unwrap();
        // SAFETY: as in `view`: ABI_SIZE bytes of a file that holds a page,
        // page-aligned, all fields atomics; the mapping outlives the borrow.
        let abi = unsafe { &*writable.as_ptr().cast::<VmClockAbi>() };
        page.update(
            2,
            &[(HDR_DISRUPTION_MARKER, &0u64.to_le_bytes()), (HDR_VM_GENERATION_COUNTER, &0u64.to_le_bytes())],
        );
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 1..20_000u64 {
                    let seq = u32::from_le(abi.seq_count.load(Ordering::Relaxed));
                    abi.seq_count.store(seq.wrapping_add(1).to_le(), Ordering::Relaxed);
                    fence(Ordering::Release);
                    abi.disruption_marker.store(i.to_le(), Ordering::Relaxed);
                    abi.vm_generation_counter.store((i * 3).to_le(), Ordering::Relaxed);
                    abi.seq_count.store(seq.wrapping_add(2).to_le(), Ordering::Release);
                }
            });
            for _ in 0..20_000 {
                if let Ok(read) = clock.read() {
                    assert_eq!(read.vm_generation_counter, Some(read.disruption_marker * 3));
                }
            }
        });
    }
}
