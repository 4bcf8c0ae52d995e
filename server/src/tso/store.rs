//! The Raft log store and state machine on disk (being written).
