//! # tsod-proto
//!
//! The types every tsod crate shares, the binary codec of the `tsod-peer/1`
//! and `tsod-client/1` protocols, and the shared-memory segment layout with
//! its seqlock. The normative text is `proto-spec/SPEC.md`; the vectors in
//! `proto-spec/vectors/` are checked against this crate by its tests.
//!
//! No I/O and no async: this crate is pure data and arithmetic, so the
//! daemon, the client library and other-language ports agree by
//! construction.
//!
//! * [`time`]: [`Timestamp`] and [`TimeInterval`] on the service timescale.
//! * [`hybrid`]: [`HybridTimestamp`], 52-bit µs + 12-bit logical.
//! * [`status`]: [`ClockStatus`], [`Timescale`], reader-clock instants, rates.
//! * [`bound`]: carrying a bound along the reader clock ([`DriftModel`]).
//! * [`wire`]: messages, [`wire::decode`] and [`wire::Message::encode`].
//! * [`shm`]: the segment layout, its seqlock, and `interval_at`.
//! * [`observe`]: what the daemon reports about itself (the status file),
//!   one schema for the daemon that writes it and every tool that reads it.

pub mod bound;
pub mod hybrid;
pub mod observe;
pub mod shm;
pub mod status;
pub mod time;
pub mod wire;

pub use bound::DriftModel;
pub use hybrid::HybridTimestamp;
pub use status::{ClockStatus, MonoInstant, Offset, Ppb, Timescale};
pub use time::{TimeInterval, Timestamp};
