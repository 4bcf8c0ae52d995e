//! [`Unavailable`]: why the TSO did not grant a request, as the client is
//! told (SPEC.md §4.9: `tso-unavailable` with a `retry-after`, or the
//! leader's own error passed through).

use std::time::Duration;

use tsod_proto::wire::ErrorCode;

/// Why a TSO request failed: what the client is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable {
    /// The error code (`tso-unavailable`, or the leader's code).
    pub code: ErrorCode,
    /// When to retry, if known.
    pub retry_after: Option<Duration>,
    /// Why.
    pub message: String,
}

impl Unavailable {
    /// `tso-unavailable` with `message`, retry after `retry_after`.
    pub fn new(message: impl Into<String>, retry_after: Duration) -> Self {
        let ms = retry_after.as_millis().clamp(1, 5_000);
        let retry_after = Some(Duration::from_millis(u64::try_from(ms).unwrap_or(5_000)));
        Self { code: ErrorCode::TsoUnavailable, retry_after, message: message.into() }
    }
}
