//! # tsod-capi: the C API of tsod-client
//!
//! `libtsod.so` / `libtsod.a` and the header `include/tsod.h` (generated
//! from this crate by cbindgen; `tests/header.rs` fails when it is out of
//! date), for programs in C, C++, Go (cgo), Java (FFM, JNA) and anything
//! else that calls C. It wraps `tsod-client` and adds no time logic of its
//! own: every rule (the suspend check, commit-wait, the HLC's invariants,
//! the TSO's batching and retries) is the Rust client's.
//!
//! * [`clock`]: the local daemon's bounded clock (`tsod_clock_*`):
//!   `now` with its status, waiting for synchronization, commit-wait.
//! * [`hlc`]: the hybrid logical clock on a local clock (`tsod_hlc_*`),
//!   and what a hybrid timestamp encodes (`tsod_hts_*`).
//! * [`tso`]: the cluster's timestamp oracle (`tsod_tso_*`), blocking.
//! * [`error`]: the result codes (`tsod_error`), their names, and the
//!   calling thread's last error message.
//!
//! # Rules every function follows
//!
//! * It returns a `tsod_error`: `TSOD_OK` (0) or a negative code. It never
//!   aborts the process and never lets a Rust panic cross into C: every body
//!   runs under `catch_unwind` ([`error::guard`]), a panic becomes
//!   `TSOD_ERR_INTERNAL` (this needs `panic = "unwind"`, the workspace's
//!   profile; a build with `panic = "abort"` would abort instead).
//! * A NULL pointer where one is required is `TSOD_ERR_NULL_POINTER`, a
//!   buffer too small for its result `TSOD_ERR_BUFFER_TOO_SMALL`; nothing
//!   is written through an out-parameter unless the call returns `TSOD_OK`.
//! * A failed call records its message for `tsod_last_error_message` on the
//!   calling thread.
//! * Handles (`tsod_clock`, `tsod_hlc`, `tsod_tso`) are created by the
//!   library and freed only by their `_close`/`_free` function, once, after
//!   every other use of them has returned. All three may be used from any
//!   number of threads at once.

#![expect(
    unsafe_code,
    reason = "a C API takes raw pointers and exports unmangled symbols; each unsafe block is small and \
              says why it is sound (SAFETY), and the library's own logic stays in safe tsod-client"
)]

pub mod clock;
pub mod error;
mod ffi;
pub mod hlc;
pub mod tso;
