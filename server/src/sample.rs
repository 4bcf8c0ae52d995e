//! What every time source produces: a [`Sample`], "when the reader clock
//! read `at`, true time lay in `interval`".
//!
//! Sources (NTP, gpsd, kernel, peers) turn their raw input into samples with
//! pure functions; the bound model carries samples to "now" along the reader
//! clock ([`tsod_proto::DriftModel::extrapolate`]) and selection combines them.
//! A sample never claims more than its source can back: each source module
//! derives its error terms in its own module doc.

use tsod_proto::{MonoInstant, TimeInterval};

/// "At reader-clock instant `at` (CLOCK_MONOTONIC_RAW), true time on the
/// service timescale lay within `interval`."
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The reader-clock instant the interval refers to.
    pub at: MonoInstant,
    /// True time at `at`.
    pub interval: TimeInterval,
}
