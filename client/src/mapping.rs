//! Shared mappings of the segment file (SPEC.md §5). Clients map it
//! read-only and can only read through the seqlock ([`ReadMapping`]); the
//! daemon maps it writable ([`WriteMapping`]). Keeping them apart means a
//! client cannot call the writer side on a read-only page.

use std::fs::File;
use std::io;

use memmap2::{MmapOptions, MmapRaw};
use tsod_proto::shm::{Anchor, PublishedState, SHM_FILE_SIZE, ShmError, ShmHeader, ShmSegment};

/// The file could not be mapped as a segment.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// The file is not 4096 bytes long.
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

/// A writable mapping, for the one daemon that holds the segment's lock.
#[derive(Debug)]
pub struct WriteMapping {
    map: MmapRaw,
}

impl ReadMapping {
    /// Maps `file` read-only.
    pub fn new(file: &File) -> Result<Self, MapError> {
        check_size(file)?;
        Ok(Self { map: MmapOptions::new().len(segment_len()).map_raw_read_only(file)? })
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

impl WriteMapping {
    /// Maps `file` shared and writable.
    pub fn new(file: &File) -> Result<Self, MapError> {
        check_size(file)?;
        Ok(Self { map: MmapOptions::new().len(segment_len()).map_raw(file)? })
    }

    /// The whole segment, writer side included.
    pub fn segment(&self) -> &ShmSegment {
        view(&self.map)
    }
}

fn check_size(file: &File) -> Result<(), MapError> {
    let len = file.metadata()?.len();
    if len == u64::from(SHM_FILE_SIZE) { Ok(()) } else { Err(MapError::WrongSize(len)) }
}

fn segment_len() -> usize {
    usize::try_from(SHM_FILE_SIZE).unwrap_or(4096)
}

#[expect(unsafe_code, reason = "viewing mapped memory as the #[repr(C)] segment")]
fn view(map: &MmapRaw) -> &ShmSegment {
    // SAFETY: every mapping here is SHM_FILE_SIZE (4096) bytes, at least
    // size_of::<ShmSegment>() (asserted at compile time in tsod-proto), and
    // page-aligned, so aligned for ShmSegment (align 8). Every field is an
    // integer atomic: any bit pattern is valid, and concurrent access from
    // other processes through atomics is defined. The mapping outlives the
    // returned reference, which borrows it. Read-only mappings are only
    // reachable through `ReadMapping`, which never calls the writer side.
    unsafe { &*map.as_ptr().cast::<ShmSegment>() }
}
