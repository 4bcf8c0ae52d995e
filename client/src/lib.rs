//! # tsod-client
//!
//! The library applications link. Today: [`LocalClock`], which reads the
//! local daemon's shared-memory segment (SPEC.md §5) with no system call into
//! the daemon ([`LocalClock::now`] checks for a suspend the daemon has not
//! seen yet, SPEC.md §5.6; [`LocalClock::now_unchecked`] is the single-read
//! opt-out); and [`RemoteClock`], which asks a tsod site over QUIC
//! `tsod-client/1` and widens its answer by the measured round trip at this
//! host's drift bound (SPEC.md §4.7). [`hlc::HybridClock`] gives hybrid
//! timestamps and commit-wait over either; [`tso::Tso`] asks the cluster's
//! replicated timestamp oracle through any site. The types it
//! returns live in [`tsod_proto`] and are re-exported here so applications
//! need only this crate.
//!
//! This crate has no `unsafe` code: the segment mapping and the clock reads
//! are `tsod-shm`'s, linked without its `writer` feature; [`mapping`]
//! re-exports the read-only mapping and [`sys`] the clock reads.

pub mod cluster;
pub mod hlc;
mod local;
pub mod mapping;
mod remote;
pub mod sys;
pub mod tso;

pub use cluster::{ClusterFile, Site};
pub use local::{ClockError, LocalClock, MAX_MAPPINGS, REOPEN_INTERVAL, slept_between, suspended_since};
pub use remote::{
    ClientSocket, REORDERING_PACKETS, RemoteClock, RemoteError, RemoteNow, RemoteOptions, SiteStatus, SourceStatus,
};
pub use tsod_proto::shm::{BoundError, PublishedState, ShmError};
pub use tsod_proto::wire::{ErrorCode, SourceKind};
pub use tsod_proto::{
    ClockStatus, DriftModel, HybridTimestamp, MonoInstant, Offset, Ppb, TimeInterval, Timescale, Timestamp,
};
/// Whose segment files [`LocalClock`] trusts (SPEC.md §5.1).
pub use tsod_shm::AllowedOwners;
