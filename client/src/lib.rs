//! # tsod-client
//!
//! The library applications link. It will hold (see `ARCHITECTURE.md`):
//! `LocalClock` (reads the daemon's shared-memory segment with one clock
//! read per `now()`), `RemoteClock` over QUIC `tsod-client/1`, the hybrid
//! logical clock, `commit_wait`, and the TSO client with batching and
//! failover. The types it returns live in [`tsod_proto`] and are re-exported
//! here so applications need only this crate.

pub use tsod_proto::{ClockStatus, HybridTimestamp, TimeInterval, Timestamp};
