//! What a source task tells the main loop. Defined here, below both: the
//! tasks ([`super::ntp_task`], [`super::gpsd_task`], [`super::sources`])
//! send it and the loop ([`super::Daemon`]) receives it; neither imports
//! the other.

use crate::engine::SourceId;
use crate::sample::Sample;

/// One event from a local source.
#[derive(Debug)]
pub enum SourceEvent {
    /// A new sample.
    Sample(SourceId, Sample),
    /// An input was refused (the reason is counted and shown in status).
    Reject(SourceId, String),
}
