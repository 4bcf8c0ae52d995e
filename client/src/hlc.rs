//! Hybrid logical clock and commit-wait (being written).
