//! The replicated TSO (SPEC.md §4.8, ARCHITECTURE Invariant 2).

pub mod election;
pub mod lease;
pub mod network;
pub mod node;
pub mod raft;
pub mod store;
pub mod timing;
