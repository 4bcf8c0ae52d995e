//! [`TsoError`]: every way a [`Tso`](super::Tso) call can end without
//! timestamps, each saying what to do, and which of them the client retries
//! on its own (SPEC.md §4.9, last column).

use std::sync::Arc;
use std::time::Duration;

use tsod_proto::HybridTimestamp;
use tsod_proto::wire::{DecodeError, ErrorCode};

use crate::RemoteError;

/// Why a [`Tso`](super::Tso) call gives no timestamps. Errors the service
/// asks to retry (`tso-unavailable`, `rate-limited`, `overloaded`), a lost
/// connection and a timeout are retried inside the client until
/// [`TsoOptions::deadline`](super::TsoOptions::deadline); the caller sees
/// them only inside [`TsoError::DeadlineExceeded`]. Cloneable, because one
/// failed request fails every call batched into it.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TsoError {
    /// A [`TsoOptions`](super::TsoOptions) field is out of range.
    #[error("invalid TsoOptions: {0}")]
    InvalidOptions(String),
    /// [`Tso::reserve`](super::Tso::reserve) was asked for no timestamps or
    /// more than one request may grant.
    #[error("cannot reserve {0} timestamps: one range holds 1 to 65536; reserve several ranges instead")]
    InvalidCount(u32),
    /// Setting up, dialling or using the QUIC connection failed; the
    /// [`RemoteError`] says how.
    #[error("{0}")]
    Transport(Arc<RemoteError>),
    /// `tso-unavailable`: no TSO leader is reachable, or it is not sure it
    /// holds its lease.
    #[error("the TSO is unavailable{}; retry after {}", detail(.message), retry_text(*.retry_after))]
    Unavailable {
        /// The server's advice, if any.
        retry_after: Option<Duration>,
        /// The server's explanation, if any.
        message: String,
    },
    /// `rate-limited`: too many requests on this connection.
    #[error("rate-limited by the server{}; retry after {}", detail(.message), retry_text(*.retry_after))]
    RateLimited {
        /// The server's advice, if any.
        retry_after: Option<Duration>,
        /// The server's explanation, if any.
        message: String,
    },
    /// `overloaded`: the server is shedding load.
    #[error("the server is overloaded{}; retry after {}, possibly at another site", detail(.message), retry_text(*.retry_after))]
    Overloaded {
        /// The server's advice, if any.
        retry_after: Option<Duration>,
        /// The server's explanation, if any.
        message: String,
    },
    /// Any other error response (SPEC.md §4.9); the code tells what to do.
    #[error("the server refused the TSO request: {code}{}; {}", detail(.message), advice(*.code))]
    Refused {
        /// The error code.
        code: ErrorCode,
        /// The server's advice, if any.
        retry_after: Option<Duration>,
        /// The server's explanation, if any.
        message: String,
    },
    /// The response (or error response) carries another request's id: refused.
    #[error("the TSO response is for request {received}, not for request {sent}: refused; a bug on the server")]
    RequestIdMismatch {
        /// The id sent.
        sent: u64,
        /// The id received.
        received: u64,
    },
    /// The response grants another number of timestamps than was asked
    /// (SPEC.md §4.8): a failed request, none of them is used.
    #[error("asked for {asked} timestamps but the server granted {granted}: refused; a bug on the server")]
    CountMismatch {
        /// The count sent.
        asked: u32,
        /// The count received.
        granted: u32,
    },
    /// The answer decoded, but is neither a tso-response nor an error.
    #[error("expected a tso-response but the server sent a {received}; a bug on the server")]
    UnexpectedKind {
        /// The kind received.
        received: &'static str,
    },
    /// The answer did not decode.
    #[error("the server's TSO response does not decode ({0}); a bug or a protocol version mismatch on one side")]
    Decode(DecodeError),
    /// The service went backwards: the granted range starts at or below a
    /// timestamp this client had already received when it sent the request,
    /// which breaks real-time order (docs/ARCHITECTURE.md, invariant 2). None of the
    /// range is used.
    #[error(
        "the TSO went backwards: granted {first} although {floor} had already been received before the request \
         was sent; the service broke its ordering guarantee, report it"
    )]
    WentBackwards {
        /// The largest timestamp received before the request was sent.
        floor: HybridTimestamp,
        /// The first timestamp of the refused range.
        first: HybridTimestamp,
    },
    /// Retrying did not succeed within [`TsoOptions::deadline`](super::TsoOptions::deadline).
    #[error("no TSO timestamps within {deadline:?} ({attempts} attempts); the last attempt failed: {last}")]
    DeadlineExceeded {
        /// The configured deadline.
        deadline: Duration,
        /// Requests sent for the call.
        attempts: u32,
        /// Why the last one failed.
        last: Box<TsoError>,
    },
    /// The client's background task is gone: the tokio runtime that ran
    /// [`Tso::connect`](super::Tso::connect) is shutting down.
    #[error("the TSO client's background task stopped (its tokio runtime is shutting down)")]
    Stopped,
}

impl TsoError {
    /// Whether the client retries this error on its own (before the deadline).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unavailable { .. } | Self::RateLimited { .. } | Self::Overloaded { .. } => true,
            Self::Transport(e) => matches!(
                **e,
                RemoteError::ConnectionLost { .. }
                    | RemoteError::Timeout { .. }
                    | RemoteError::StreamAborted { .. }
                    | RemoteError::Handshake { .. }
            ),
            _ => false,
        }
    }

    /// The server's advice on when to retry, if it gave one (for
    /// [`TsoError::DeadlineExceeded`], the last attempt's).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { retry_after, .. }
            | Self::RateLimited { retry_after, .. }
            | Self::Overloaded { retry_after, .. }
            | Self::Refused { retry_after, .. } => *retry_after,
            Self::DeadlineExceeded { last, .. } => last.retry_after(),
            _ => None,
        }
    }

    /// The counter a failed request adds to.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            Self::Unavailable { .. } => ErrorKind::Unavailable,
            Self::RateLimited { .. } => ErrorKind::RateLimited,
            Self::Overloaded { .. } => ErrorKind::Overloaded,
            Self::Transport(e) if matches!(**e, RemoteError::Timeout { .. }) => ErrorKind::Timeout,
            Self::Transport(_) | Self::Stopped | Self::InvalidOptions(_) => ErrorKind::Connection,
            Self::RequestIdMismatch { .. }
            | Self::CountMismatch { .. }
            | Self::UnexpectedKind { .. }
            | Self::Decode(_)
            | Self::InvalidCount(_) => ErrorKind::Mismatch,
            Self::Refused { .. } => ErrorKind::Refused,
            Self::WentBackwards { .. } => ErrorKind::WentBackwards,
            Self::DeadlineExceeded { .. } => ErrorKind::DeadlineExceeded,
        }
    }
}

impl From<RemoteError> for TsoError {
    fn from(error: RemoteError) -> Self {
        Self::Transport(Arc::new(error))
    }
}

/// The error counters of [`TsoStats`](super::TsoStats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    Unavailable,
    RateLimited,
    Overloaded,
    Connection,
    Timeout,
    Mismatch,
    Refused,
    WentBackwards,
    DeadlineExceeded,
}

/// `": message"`, or nothing for an empty message.
fn detail(message: &str) -> String {
    if message.is_empty() { String::new() } else { format!(": {message}") }
}

fn retry_text(retry_after: Option<Duration>) -> String {
    retry_after.map_or_else(|| "a while".to_owned(), |d| format!("{d:?}"))
}

/// What the requester does about `code` (SPEC.md §4.9, last column).
fn advice(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Unauthorized => "this client may not ask for TSO timestamps; check its certificate",
        ErrorCode::UnsupportedVersion | ErrorCode::Malformed | ErrorCode::UnknownKind => {
            "the server does not understand this client's request: upgrade one side"
        }
        ErrorCode::Unsynchronized | ErrorCode::Disrupted => "the server has no valid bound; retry later",
        ErrorCode::TimescaleMismatch => "the server runs another timescale; fix the configuration",
        ErrorCode::Internal => "a bug or an I/O failure on the server; see its logs",
        _ => "the request failed",
    }
}
