//! # tsod-client
//!
//! The library applications link. Today: [`LocalClock`], which reads the
//! local daemon's shared-memory segment (SPEC.md §5) with one clock read per
//! [`LocalClock::now`]. To come (see `ARCHITECTURE.md`): `RemoteClock` over
//! QUIC `tsod-client/1`, the hybrid logical clock, `commit_wait`, and the TSO
//! client. The types it returns live in [`tsod_proto`] and are re-exported
//! here so applications need only this crate.

mod local;
pub mod mapping;
pub mod sys;

pub use local::{ClockError, LocalClock, MAX_MAPPINGS, REOPEN_INTERVAL};
pub use tsod_proto::shm::{BoundError, PublishedState, ShmError};
pub use tsod_proto::{ClockStatus, HybridTimestamp, TimeInterval, Timestamp};
