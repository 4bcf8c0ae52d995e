//! Shared mappings of the segment file (SPEC.md §5). Clients map it
//! read-only and can only read through the seqlock ([`ReadMapping`]); the
//! daemon maps it writable ([`WriteMapping`], feature `writer`). Keeping
//! them apart means a client cannot call the writer side on a read-only
//! page, and an application that links only the reader has no writer code.

use std::fs::File;
use std::io;

use memmap2::{MmapOptions, MmapRaw};
use tsod_proto::shm::{Anchor, PublishedState, SHM_FILE_SIZE, ShmError, ShmHeader, ShmSegment};

/// The file could not be mapped as a segment.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// The file is not 4096 bytes long: not a tsod segment, or one still
    /// being created (segments appear complete, by rename; check the path).
    #[error("segment file is {0} bytes, expected 4096")]
    WrongSize(u64),
    /// `fstat` or `mmap` failed.
    #[error("cannot map segment: {0}")]
    Io(#[from] io::Error),
}

/// A read-only mapping: header checks and seqlock reads.
#[derive(Debug)]
pub struct ReadMapping {
    map: MmapRaw,
}

impl ReadMapping {
    /// Maps `file` (opened for reading) shared and read-only.
    pub fn new(file: &File) -> Result<Self, MapError> {
        check_size(file)?;
        Ok(Self { map: MmapOptions::new().len(SEGMENT_LEN).map_raw_read_only(file)? })
    }

    /// Checks the header (SPEC.md §5.3), including that it is from `this_boot`.
    pub fn header(&self, this_boot: Option<[u8; 16]>) -> Result<ShmHeader, ShmError> {
        ShmHeader::read(view(&self.map), this_boot)
    }

    /// A consistent copy of the published state (reader side of the seqlock).
    pub fn read(&self) -> Result<PublishedState, ShmError> {
        view(&self.map).read()
    }

    /// A consistent copy of what `now()` needs (the hot path).
    #[inline]
    pub fn read_anchor(&self) -> Result<Anchor, ShmError> {
        view(&self.map).read_anchor()
    }
}

/// A writable mapping, for the one daemon that holds the segment's lock
/// ([`crate::ExclusiveLock`]).
#[cfg(feature = "writer")]
#[derive(Debug)]
pub struct WriteMapping {
    map: MmapRaw,
}

#[cfg(feature = "writer")]
impl WriteMapping {
    /// Maps `file` (opened for reading and writing) shared and writable.
    pub fn new(file: &File) -> Result<Self, MapError> {
        check_size(file)?;
        Ok(Self { map: MmapOptions::new().len(SEGMENT_LEN).map_raw(file)? })
    }

    /// The whole segment, writer side included (`ShmHeader::write`,
    /// `ShmSegment::publish`).
    pub fn segment(&self) -> &ShmSegment {
        view(&self.map)
    }
}

/// Gives `file` (opened for writing) real storage for its first `len`
/// bytes with `posix_fallocate(3)`, extending it with zeros: on a full
/// tmpfs this fails now (`ENOSPC`) instead of the first write through the
/// mapping raising `SIGBUS` later.
#[cfg(feature = "writer")]
#[expect(unsafe_code, reason = "posix_fallocate is a C function")]
pub fn allocate(file: &File, len: u64) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: posix_fallocate takes a file descriptor, which `file` owns and
    // keeps open for the duration of the call; it touches no memory of ours.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    // It returns the error number instead of setting errno.
    if rc == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(rc)) }
}

/// Bytes mapped: the whole file.
const SEGMENT_LEN: usize = SHM_FILE_SIZE as usize;

fn check_size(file: &File) -> Result<(), MapError> {
    let len = file.metadata()?.len();
    if len == u64::from(SHM_FILE_SIZE) { Ok(()) } else { Err(MapError::WrongSize(len)) }
}

#[expect(unsafe_code, reason = "viewing mapped memory as the #[repr(C)] segment")]
#[inline]
fn view(map: &MmapRaw) -> &ShmSegment {
    // SAFETY: every mapping here is SEGMENT_LEN (4096) bytes of a file
    // checked to be that long, at least size_of::<ShmSegment>() (asserted at
    // compile time in tsod-proto), and page-aligned, so aligned for
    // ShmSegment (align 8). Every field is an integer atomic: any bit
    // pattern is valid, and concurrent access from other processes through
    // atomics is defined. The mapping outlives the returned reference, which
    // borrows it. Read-only mappings are only reachable through
    // `ReadMapping`, which never calls the writer side.
    unsafe { &*map.as_ptr().cast::<ShmSegment>() }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::path::PathBuf;
    use std::time::Duration;

    use tsod_proto::bound::RateBounds;
    use tsod_proto::{ClockStatus, MonoInstant, TimeInterval, Timescale, Timestamp};

    use super::*;

    /// A segment-sized temporary file, removed on drop.
    struct TempSegment {
        path: PathBuf,
        file: File,
    }

    impl TempSegment {
        fn new(name: &str, len: u64) -> Self {
            let path = std::env::temp_dir().join(format!("tsod-shm-{name}-{}", std::process::id()));
            let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
            file.set_len(len).unwrap();
            Self { path, file }
        }

        fn reader(&self) -> ReadMapping {
            ReadMapping::new(&File::open(&self.path).unwrap()).unwrap()
        }
    }

    impl Drop for TempSegment {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    fn state(reference: u64, writer_instance: u64) -> PublishedState {
        PublishedState {
            anchor: Anchor {
                reference: MonoInstant::from_nanos(reference),
                interval: TimeInterval::around(
                    Timestamp::from_nanos(1_795_462_647_000_000_000),
                    Duration::from_micros(20),
                ),
                rates: RateBounds::EXACT,
                status: ClockStatus::Synchronized,
                valid_until: MonoInstant::from_nanos(reference + 1_000_000_000),
            },
            disruption_count: 0,
            reference_boottime: MonoInstant::from_nanos(reference),
            writer_instance,
        }
    }

    const BOOT: [u8; 16] = [7; 16];

    #[test]
    fn what_the_writer_publishes_the_reader_reads() {
        let seg = TempSegment::new("round-trip", u64::from(SHM_FILE_SIZE));
        let writer = WriteMapping::new(&seg.file).unwrap();
        let header = ShmHeader { timescale: Timescale::UtcSmear24h, boot_id: BOOT };
        header.write(writer.segment());
        writer.segment().publish(&state(5_000, 1));

        let reader = seg.reader();
        assert_eq!(reader.header(Some(BOOT)).unwrap(), header);
        assert_eq!(reader.header(None).unwrap(), header);
        assert!(reader.header(Some([8; 16])).is_err(), "a segment of another boot is refused");
        assert_eq!(reader.read().unwrap(), state(5_000, 1));
        assert_eq!(reader.read_anchor().unwrap(), state(5_000, 1).anchor);

        // The mapping is shared: a later publication shows through the
        // reader's mapping, without re-mapping.
        writer.segment().publish(&state(9_000, 2));
        assert_eq!(reader.read().unwrap(), state(9_000, 2));
        assert_eq!(seg.reader().read().unwrap(), state(9_000, 2), "and through a fresh one");
    }

    #[test]
    fn an_empty_file_maps_but_its_header_is_refused() {
        let seg = TempSegment::new("zeroed", u64::from(SHM_FILE_SIZE));
        assert!(seg.reader().header(None).is_err());
    }

    #[test]
    fn files_of_the_wrong_size_are_not_mapped() {
        for len in [0, 192, 4095, 8192] {
            let seg = TempSegment::new(&format!("size-{len}"), len);
            assert!(matches!(ReadMapping::new(&seg.file), Err(MapError::WrongSize(l)) if l == len));
            assert!(matches!(WriteMapping::new(&seg.file), Err(MapError::WrongSize(l)) if l == len));
        }
    }

    #[test]
    fn allocate_extends_an_empty_file_with_zeros() {
        let seg = TempSegment::new("allocate", 0);
        allocate(&seg.file, u64::from(SHM_FILE_SIZE)).unwrap();
        let meta = seg.file.metadata().unwrap();
        assert_eq!(meta.len(), u64::from(SHM_FILE_SIZE));
        // Storage is reserved (set_len would leave a sparse file: 0 blocks).
        assert!(std::os::unix::fs::MetadataExt::blocks(&meta) * 512 >= u64::from(SHM_FILE_SIZE));
        assert!(std::fs::read(&seg.path).unwrap().iter().all(|&b| b == 0));
        assert!(WriteMapping::new(&seg.file).is_ok());
        let read_only = File::open(&seg.path).unwrap();
        assert!(allocate(&read_only, 8192).is_err(), "a file not open for writing cannot grow");
    }

    #[test]
    fn a_read_only_file_cannot_be_mapped_for_writing() {
        let seg = TempSegment::new("read-only", u64::from(SHM_FILE_SIZE));
        let read_only = File::open(&seg.path).unwrap();
        assert!(ReadMapping::new(&read_only).is_ok());
        assert!(matches!(WriteMapping::new(&read_only), Err(MapError::Io(_))));
    }

    /// The seqlock across two mappings of the same page, as between the
    /// daemon and a client: a reader never returns a mix of two states.
    #[test]
    fn concurrent_reads_through_another_mapping_are_never_torn() {
        let seg = TempSegment::new("concurrent", u64::from(SHM_FILE_SIZE));
        let writer = WriteMapping::new(&seg.file).unwrap();
        ShmHeader { timescale: Timescale::UtcSmear24h, boot_id: BOOT }.write(writer.segment());
        writer.segment().publish(&state(1, 1));
        let reader = seg.reader();
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 2..20_000 {
                    writer.segment().publish(&state(i, i));
                }
            });
            for _ in 0..20_000 {
                if let Ok(read) = reader.read() {
                    assert_eq!(read, state(read.writer_instance, read.writer_instance));
                }
            }
        });
    }
}
