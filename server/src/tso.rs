//! The replicated TSO (SPEC.md §4.8, §4.13, §4.14): one Raft group across
//! the sites replicates leases judged by the bounded clock, so timestamps
//! are unique and strictly increasing in real-time order across any number
//! of leader changes, restarts and the loss of any single site
//! (docs/ARCHITECTURE.md, invariant 2).
//!
//! Pure cores: [`lease`] (the allocator and the lease rules), [`election`]
//! (pre-vote grants, merit, handover), [`timing`] (timing from round
//! trips), [`forward`] (a follower's batching). The shell: [`node`] (the
//! Raft node and its tasks), [`network`] (Raft RPCs over the peer
//! connections), [`serve`] (answers on QUIC streams), [`store`] (the redb
//! log and state machine) and [`raft`] (openraft's type configuration).

pub mod election;
pub mod forward;
pub mod lease;
pub mod network;
pub mod node;
pub mod raft;
pub mod reset;
pub mod serve;
pub mod store;
pub mod timing;
pub mod unavailable;
