//! # tsod-shm
//!
//! Everything tsod asks of the operating system that the standard library
//! does not wrap, behind safe, typed functions: the shared mapping of the
//! segment file (SPEC.md §5), `clock_gettime` for the clocks the project
//! reads, the boot id, `geteuid`, the segment's `flock`, and the kernel's
//! clock state (`adjtimex`). It is the only crate of the workspace with
//! `unsafe` code; every other crate keeps the workspace's
//! `unsafe_code = "deny"` and calls this one.
//!
//! What the segment *is* (the `#[repr(C)]` layout, the seqlock, header
//! validation) lives in `tsod_proto::shm`, which does no I/O; this crate
//! only maps the file and hands out the view.
//!
//! # Who links which feature
//!
//! * No features (what `tsod-client`, and so every application, links):
//!   [`open_segment`] (the checked, non-following open of SPEC.md §5.1
//!   that a planted segment cannot pass), [`ReadMapping`], the clock
//!   reads, the boot id, [`effective_uid`].
//!   A reader cannot reach the writer side of the seqlock.
//! * `writer` (the daemon only, and tests that play the daemon):
//!   [`WriteMapping`], [`allocate`] (`posix_fallocate`) and
//!   [`ExclusiveLock`], the lock that makes the daemon the segment's one
//!   writer; [`ClockBoundMapping`], AWS ClockBound's segment layout
//!   (SPEC.md §5.8), with `CLOCK_MONOTONIC_COARSE`, the clock its readers use.
//! * `adjtimex` (the daemon only): [`kernel_clock_state`], the read-only
//!   query of the kernel's clock discipline state.
//! * `vmclock` (the daemon only): [`VmClock`], the hypervisor's VMClock
//!   page (`/dev/vmclock0`) mapped read-only, and [`DisruptionWatch`], which
//!   tells live migrations and snapshot restores from its markers.
//!
//! `tsod-client` re-exports items of this crate one by one, never the crate
//! or a glob: cargo unifies features across a build, so a workspace build in
//! which the daemon enables `writer` compiles [`WriteMapping`] here, and only
//! a named re-export keeps it out of the client's API.
//!
//! # Invariants
//!
//! * Every `unsafe` block has a `// SAFETY:` comment (enforced by
//!   `clippy::undocumented_unsafe_blocks`), and every function holding one
//!   carries `#[expect(unsafe_code, reason = …)]`, so the list of unsafe
//!   sites is one grep.
//! * A mapping is exactly `SHM_FILE_SIZE` (4096) bytes of a file that was
//!   checked to be that long, and lives as long as the references into it
//!   (they borrow it). Writers never shrink a published file: the daemon
//!   replaces a segment by `rename`, so a live mapping never loses its pages
//!   (a file truncated under a mapping would make access `SIGBUS`).
//! * A read-only mapping is only reachable through [`ReadMapping`], whose
//!   methods are the reader side of the seqlock; the writer side
//!   (`ShmSegment::publish`, `ShmHeader::write`) needs a [`WriteMapping`].
//! * The system calls used are the read-only ones: `clock_gettime`,
//!   `geteuid`, `openat` (read-only, `O_NOFOLLOW`), `flock` on a file the
//!   caller owns, `posix_fallocate` on the daemon's own new segment, and
//!   `adjtimex` with `modes = 0`, which changes nothing. Nothing here steps or slews a clock.
//!
//! Linux only (the clocks, `/proc` and `adjtimex` are Linux's), 64-bit
//! targets (`time_t` and `long` are `i64`).

#![deny(clippy::undocumented_unsafe_blocks)]

mod boot;
mod clock;
#[cfg(feature = "writer")]
mod clockbound;
#[cfg(feature = "adjtimex")]
mod kernel;
#[cfg(feature = "writer")]
mod lock;
mod mapping;
mod open;
mod user;
#[cfg(feature = "vmclock")]
mod vmclock;

pub use boot::{parse_boot_id, this_boot_id};
pub use clock::{
    ClockId, ClockReadError, Timespec, boottime_now, clock_gettime, monotonic_now, reader_clock_now, realtime_now,
};
#[cfg(feature = "writer")]
pub use clockbound::{
    CLOCKBOUND_FILE_SIZE, CLOCKBOUND_LAYOUT_VERSION, CLOCKBOUND_MAGIC, CLOCKBOUND_SEGMENT_SIZE, ClockBoundMapping,
    ClockBoundRecord, ClockBoundStatus, TSOD_MARKER, coarse_monotonic_now, coarse_monotonic_resolution,
};
#[cfg(feature = "adjtimex")]
pub use kernel::{KernelClockState, KernelStateError, kernel_clock_state};
#[cfg(feature = "writer")]
pub use lock::{ExclusiveLock, LockError};
pub use mapping::{MapError, ReadMapping};
#[cfg(feature = "writer")]
pub use mapping::{WriteMapping, allocate};
pub use open::{
    AllowedOwners, OpenError, OpenedSegment, check_directory, check_file, open_segment, split_segment_path,
};
pub use user::{DAEMON_USER, SYS_UID_MAX, effective_uid, system_user_uid};
#[cfg(feature = "vmclock")]
pub use vmclock::{Disruption, DisruptionWatch, VmClock, VmClockError, VmClockSnapshot, VmClockStatus};
