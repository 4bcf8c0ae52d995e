//! Time sources. Each turns its raw input into [`crate::sample::Sample`]s
//! with pure functions (tested without I/O); the daemon's tasks only do the
//! reading and writing.

pub mod gpsd;
pub mod kernel;
pub mod ntp;
