//! [`RemoteError`]: every way a [`RemoteClock`](super::RemoteClock) call
//! can end without an answer (SPEC.md §6, remote rows), each saying what to do.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tsod_proto::wire::{DecodeError, EncodeError, ErrorCode};

/// Why a [`RemoteClock`](super::RemoteClock) gives no interval, status or
/// report. A request that fails is never retried behind the caller's back:
/// a retry must read its own `c1`, so it is the caller's decision.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// A [`RemoteOptions`](super::RemoteOptions) field is out of range, or
    /// its server name is empty or neither a DNS name nor an IP address.
    #[error("invalid RemoteOptions: {0}")]
    InvalidOptions(String),
    /// A PEM file (CA, client certificate or key) could not be read or holds
    /// nothing usable.
    #[error("cannot load {path}: {why}; give the PEM files made by `tsod cluster init`")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// rustls refused the TLS configuration (e.g. a key that does not match
    /// its certificate).
    #[error("TLS configuration refused: {0}; check the client certificate and key")]
    Tls(#[from] rustls::Error),
    /// The local UDP socket for QUIC could not be opened.
    #[error("cannot open a UDP socket for QUIC: {0}; RemoteClock must be used inside a tokio runtime")]
    Socket(io::Error),
    /// The UDP socket for QUIC could not be bound to
    /// [`RemoteOptions::local_address`](super::RemoteOptions::local_address).
    #[error(
        "cannot bind a UDP socket for QUIC to {addr}: {source}; local_address must be one of this host's addresses"
    )]
    Bind {
        /// The local address asked for (port 0: any).
        addr: SocketAddr,
        /// The system's reason.
        source: io::Error,
    },
    /// quinn refused to start a connection (bad server name, endpoint
    /// stopping, unreachable address family).
    #[error("cannot start a QUIC connection to {addr}: {source}")]
    Connect {
        /// The server address.
        addr: SocketAddr,
        /// quinn's reason.
        source: quinn::ConnectError,
    },
    /// The QUIC/TLS handshake failed: no server, a server that does not
    /// speak `tsod-client/1`, or a certificate not from the given CA or not
    /// naming `server_name`.
    #[error(
        "handshake with {addr} failed: {source}; check that tsod serves tsod-client/1 there and that its \
         certificate comes from the cluster CA given and names {server_name}"
    )]
    Handshake {
        /// The server address.
        addr: SocketAddr,
        /// The name its certificate must carry.
        server_name: String,
        /// quinn's reason.
        source: quinn::ConnectionError,
    },
    /// None of several sites answered a handshake within the request timeout.
    #[error("no tsod site answered: {tried}")]
    NoSiteAnswered {
        /// Each site's name, address and reason.
        tried: String,
    },
    /// The connection died during the request; the next call dials again.
    #[error("connection to {addr} lost: {source}; the next call dials again")]
    ConnectionLost {
        /// The server address.
        addr: SocketAddr,
        /// quinn's reason.
        source: quinn::ConnectionError,
    },
    /// The server reset or stopped the request's stream without answering.
    #[error("the server at {addr} abandoned the request ({why}); retry")]
    StreamAborted {
        /// The server address.
        addr: SocketAddr,
        /// What happened to the stream.
        why: String,
    },
    /// No answer (or no connection) within the request timeout. The
    /// connection is dropped, so the next call dials again.
    #[error("no answer from {addr} within {after:?}; server unreachable or overloaded, the next call dials again")]
    Timeout {
        /// The server address.
        addr: SocketAddr,
        /// The configured request timeout.
        after: Duration,
    },
    /// The response was longer than any message may be (65 535 bytes).
    #[error("the response exceeds 65535 bytes: the server is not tsod, or has a bug")]
    ResponseTooLong,
    /// The request could not be encoded (a bug in this library).
    #[error("cannot encode the request: {0} (a bug in tsod-client)")]
    Encode(#[from] EncodeError),
    /// The response did not decode.
    #[error("the server's response does not decode ({0}); a bug or a protocol version mismatch on one side")]
    Decode(DecodeError),
    /// The response decoded, but is not an answer to the request sent.
    #[error("expected a {expected} but the server sent a {received}; a bug on the server")]
    UnexpectedKind {
        /// The kind the request calls for.
        expected: &'static str,
        /// The kind received.
        received: &'static str,
    },
    /// The response carries another request's id (SPEC.md §4.7): refused.
    #[error("the response is for request {received}, not for request {sent}: refused; a bug on the server")]
    RequestIdMismatch {
        /// The id sent.
        sent: u64,
        /// The id received.
        received: u64,
    },
    /// The server runs another timescale (or said so with
    /// `timescale-mismatch`). A configuration error: retrying does not help.
    #[error("the server runs another timescale{}; fix the configuration, retrying will not help", detail(.message))]
    TimescaleMismatch {
        /// The server's explanation, if any.
        message: String,
    },
    /// The server has no valid bound (status `unsynchronized`, by an error
    /// response or a now-response carrying that status).
    #[error("the server has no valid bound (unsynchronized){}; retry later", detail(.message))]
    Unsynchronized {
        /// The server's explanation, if any.
        message: String,
    },
    /// The server's clock was disrupted and is not re-synchronized (status
    /// `disrupted`, by an error response or a now-response).
    #[error("the server's clock was disrupted and is not re-synchronized{}; retry later", detail(.message))]
    Disrupted {
        /// The server's explanation, if any.
        message: String,
    },
    /// Too many requests on this connection.
    #[error("rate-limited by the server{}; retry after {}", detail(.message), retry_text(*.retry_after))]
    RateLimited {
        /// The server's advice, if any.
        retry_after: Option<Duration>,
        /// The server's explanation, if any.
        message: String,
    },
    /// Any other error response (SPEC.md §4.9): the code tells what to do.
    #[error("the server refused the request: {code}{}; {}", detail(.message), advice(*.code, *.retry_after))]
    Refused {
        /// The error code.
        code: ErrorCode,
        /// The server's advice, if any.
        retry_after: Option<Duration>,
        /// The server's explanation, if any.
        message: String,
    },
    /// The round trip took longer than `max_round_trip`: the widened
    /// interval would be wider than the caller accepts.
    #[error(
        "round trip of {round_trip:?} exceeds the limit of {limit:?}, so the bound would be too wide; \
         retry, or raise max_round_trip"
    )]
    RoundTripTooLong {
        /// The measured round trip `c4 − c1`.
        round_trip: Duration,
        /// The configured limit.
        limit: Duration,
    },
    /// The widened interval would pass the end of the timestamp range:
    /// the server's interval cannot be right.
    #[error("the widened interval passes the end of the timestamp range; the server's interval is wrong")]
    OutOfRange,
    /// This host was suspended while the request was in flight: its reader
    /// clock stood still, so the round trip cannot be measured (SPEC.md §5.6).
    #[error("this host was suspended during the request; ask again")]
    Suspended,
    /// The reader clock (`CLOCK_MONOTONIC_RAW`) could not be read.
    #[error("cannot read CLOCK_MONOTONIC_RAW: {0}")]
    Clock(io::Error),
}

impl RemoteError {
    /// The server's advice on when to retry (`rate-limited`,
    /// `tso-unavailable`, `overloaded`), if it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } | Self::Refused { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// `": message"`, or nothing for an empty message.
fn detail(message: &str) -> String {
    if message.is_empty() { String::new() } else { format!(": {message}") }
}

fn retry_text(retry_after: Option<Duration>) -> String {
    retry_after.map_or_else(|| "a while".to_owned(), |d| format!("{d:?}"))
}

/// What the requester does about `code` (SPEC.md §4.9, last column).
fn advice(code: ErrorCode, retry_after: Option<Duration>) -> String {
    match code {
        ErrorCode::TsoUnavailable | ErrorCode::Overloaded => format!("retry after {}", retry_text(retry_after)),
        ErrorCode::Unauthorized => "this client may not make the request; check its certificate".to_owned(),
        ErrorCode::UnsupportedVersion | ErrorCode::Malformed | ErrorCode::UnknownKind => {
            "the server does not understand this client's request: upgrade one side".to_owned()
        }
        ErrorCode::Internal => "a bug or an I/O failure on the server; see its logs".to_owned(),
        _ => "the request failed".to_owned(),
    }
}
