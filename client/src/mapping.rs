//! The read-only mapping of the segment file (SPEC.md §5), from `tsod-shm`.
//! Only the reader is re-exported: the writable mapping exists in
//! `tsod-shm` behind its `writer` feature, for the daemon, and is not part
//! of this crate's API whichever features a build enables.

pub use tsod_shm::{MapError, ReadMapping};
