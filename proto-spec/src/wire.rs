//! The binary message codec for `tsod-peer/1` and `tsod-client/1` (SPEC.md §4).
//!
//! Every message is an 8-byte header followed by a fixed-layout body, all
//! integers big-endian:
//!
//! ```text
//! 0  u8   version (1)        2  u16  reserved, 0
//! 1  u8   kind               4  u32  length of the whole message in bytes
//! ```
//!
//! [`decode`] takes exactly one message (a datagram, or a frame cut from a
//! stream with [`frame_len`]) and borrows text from it; [`Message::encode`]
//! writes into a caller-provided buffer. Decoding never panics and checks
//! everything a receiver relies on: version, kind, length, reserved bits,
//! `earliest <= latest`, enumerations and ranges. Encoding refuses to emit a
//! message that would not decode.

mod client;
mod cursor;
mod peer;
mod raft;

use core::time::Duration;

use serde::{Serialize, Serializer};

pub use client::{
    ErrorCode, ErrorResponse, MAX_ERROR_MESSAGE_LEN, MAX_TSO_COUNT, NowResponse, Request, StatusResponse, TsoRequest,
    TsoResponse,
};
use cursor::{Reader, Writer};
pub use peer::{MAX_NAME_LEN, MAX_SOURCES, ProbeReply, ProbeRequest, SiteReport, SourceKind, SourceReport};
pub use raft::{MAX_RAFT_PAYLOAD, RaftMessage, RaftRpc};

/// The message format version this crate speaks.
pub const VERSION: u8 = 1;
/// Length of the common header.
pub const HEADER_LEN: usize = 8;
/// Longest message a receiver accepts (header included).
pub const MAX_MESSAGE_LEN: usize = 65_535;
/// ALPN protocol id for site-to-site connections.
pub const ALPN_PEER: &[u8] = b"tsod-peer/1";
/// ALPN protocol id for remote clients.
pub const ALPN_CLIENT: &[u8] = b"tsod-client/1";

/// Which connection a message kind belongs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// `tsod-peer/1`, as an unreliable QUIC datagram.
    PeerDatagram,
    /// `tsod-peer/1`, on a stream.
    PeerStream,
    /// `tsod-client/1`, on a stream.
    ClientStream,
    /// Either ALPN, on a stream: TSO requests and responses (clients ask
    /// their site, follower sites forward batches to the leader) and the
    /// error response.
    AnyStream,
}

/// The message kinds of version 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// 0x01
    ProbeRequest,
    /// 0x02
    ProbeReply,
    /// 0x03
    Gossip,
    /// 0x10
    NowRequest,
    /// 0x11
    NowResponse,
    /// 0x12
    StatusRequest,
    /// 0x13
    StatusResponse,
    /// 0x14
    TsoRequest,
    /// 0x15
    TsoResponse,
    /// 0x40
    RaftRequest,
    /// 0x41
    RaftResponse,
    /// 0x1F
    Error,
}

impl MessageKind {
    /// Every kind, in code order.
    pub const ALL: [Self; 12] = [
        Self::ProbeRequest,
        Self::ProbeReply,
        Self::Gossip,
        Self::NowRequest,
        Self::NowResponse,
        Self::StatusRequest,
        Self::StatusResponse,
        Self::TsoRequest,
        Self::TsoResponse,
        Self::RaftRequest,
        Self::RaftResponse,
        Self::Error,
    ];

    /// The header's kind byte.
    pub const fn code(self) -> u8 {
        match self {
            Self::ProbeRequest => 0x01,
            Self::ProbeReply => 0x02,
            Self::Gossip => 0x03,
            Self::NowRequest => 0x10,
            Self::NowResponse => 0x11,
            Self::StatusRequest => 0x12,
            Self::StatusResponse => 0x13,
            Self::TsoRequest => 0x14,
            Self::TsoResponse => 0x15,
            Self::Error => 0x1F,
            Self::RaftRequest => 0x40,
            Self::RaftResponse => 0x41,
        }
    }

    /// The kind with this code, or `None`.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Where this kind is sent (SPEC.md §4.1). A receiver answers a kind on
    /// the wrong channel like an unknown kind.
    pub const fn channel(self) -> Channel {
        match self {
            Self::ProbeRequest | Self::ProbeReply => Channel::PeerDatagram,
            Self::Gossip | Self::RaftRequest | Self::RaftResponse => Channel::PeerStream,
            Self::NowRequest | Self::NowResponse | Self::StatusRequest | Self::StatusResponse => Channel::ClientStream,
            Self::TsoRequest | Self::TsoResponse | Self::Error => Channel::AnyStream,
        }
    }

    /// Kebab-case name, as in test vectors and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::ProbeRequest => "probe-request",
            Self::ProbeReply => "probe-reply",
            Self::Gossip => "gossip",
            Self::NowRequest => "now-request",
            Self::NowResponse => "now-response",
            Self::StatusRequest => "status-request",
            Self::StatusResponse => "status-response",
            Self::TsoRequest => "tso-request",
            Self::TsoResponse => "tso-response",
            Self::RaftRequest => "raft-request",
            Self::RaftResponse => "raft-response",
            Self::Error => "error",
        }
    }
}

/// One decoded message. Text fields borrow from the decoded buffer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Message<'a> {
    /// Peer probe (datagram).
    ProbeRequest(ProbeRequest),
    /// Peer probe reply (datagram).
    ProbeReply(ProbeReply),
    /// A site's report to its peers (stream).
    #[serde(borrow)]
    Gossip(SiteReport<'a>),
    /// Client: the server's current interval, please.
    NowRequest(Request),
    /// Server: the interval at send time.
    NowResponse(NowResponse),
    /// Client: the server's site report, please.
    StatusRequest(Request),
    /// Server: its site report.
    #[serde(borrow)]
    StatusResponse(StatusResponse<'a>),
    /// Client (or follower site): TSO timestamps, please.
    TsoRequest(TsoRequest),
    /// Server: a range of TSO timestamps.
    TsoResponse(TsoResponse),
    /// Peer: a Raft RPC (TSO replication, SPEC.md §4.13).
    #[serde(borrow)]
    RaftRequest(RaftMessage<'a>),
    /// Peer: a Raft RPC's result.
    #[serde(borrow)]
    RaftResponse(RaftMessage<'a>),
    /// Either side: the request failed.
    #[serde(borrow)]
    Error(ErrorResponse<'a>),
}

impl Message<'_> {
    /// The header's kind.
    pub const fn kind(&self) -> MessageKind {
        match self {
            Self::ProbeRequest(_) => MessageKind::ProbeRequest,
            Self::ProbeReply(_) => MessageKind::ProbeReply,
            Self::Gossip(_) => MessageKind::Gossip,
            Self::NowRequest(_) => MessageKind::NowRequest,
            Self::NowResponse(_) => MessageKind::NowResponse,
            Self::StatusRequest(_) => MessageKind::StatusRequest,
            Self::StatusResponse(_) => MessageKind::StatusResponse,
            Self::TsoRequest(_) => MessageKind::TsoRequest,
            Self::TsoResponse(_) => MessageKind::TsoResponse,
            Self::RaftRequest(_) => MessageKind::RaftRequest,
            Self::RaftResponse(_) => MessageKind::RaftResponse,
            Self::Error(_) => MessageKind::Error,
        }
    }

    /// The encoded length, header included.
    pub fn encoded_len(&self) -> usize {
        let body = match self {
            Self::ProbeRequest(_) => ProbeRequest::BODY_LEN,
            Self::ProbeReply(_) => ProbeReply::BODY_LEN,
            Self::Gossip(r) => r.body_len(),
            Self::NowRequest(_) | Self::StatusRequest(_) => Request::BODY_LEN,
            Self::NowResponse(_) => NowResponse::BODY_LEN,
            Self::StatusResponse(r) => r.body_len(),
            Self::TsoRequest(_) => TsoRequest::BODY_LEN,
            Self::TsoResponse(_) => TsoResponse::BODY_LEN,
            Self::RaftRequest(m) | Self::RaftResponse(m) => m.body_len(),
            Self::Error(e) => e.body_len(),
        };
        body.saturating_add(HEADER_LEN)
    }

    /// Writes the message at the start of `out`; returns the bytes written.
    /// Fails, writing nothing meaningful, if `out` is too short or a field is
    /// outside what a receiver accepts.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        match self {
            Self::ProbeRequest(_) | Self::NowRequest(_) | Self::StatusRequest(_) => Ok(()),
            Self::ProbeReply(m) => m.check(),
            Self::Gossip(m) => m.check(),
            Self::NowResponse(m) => m.check(),
            Self::StatusResponse(m) => m.report.check(),
            Self::TsoRequest(m) => m.check(),
            Self::TsoResponse(m) => m.check(),
            Self::RaftRequest(m) | Self::RaftResponse(m) => m.check(),
            Self::Error(m) => m.check(),
        }?;
        let len = self.encoded_len();
        if len > MAX_MESSAGE_LEN {
            return Err(EncodeError::TooLong { len });
        }
        if out.len() < len {
            return Err(EncodeError::BufferTooSmall { needed: len, available: out.len() });
        }
        let mut w = Writer::new(out);
        w.u8(VERSION);
        w.u8(self.kind().code());
        w.u16(0);
        w.u32(u32::try_from(len).unwrap_or(u32::MAX));
        match self {
            Self::ProbeRequest(m) => m.write(&mut w),
            Self::ProbeReply(m) => m.write(&mut w),
            Self::Gossip(m) => m.write(&mut w),
            Self::NowRequest(m) | Self::StatusRequest(m) => m.write(&mut w),
            Self::NowResponse(m) => m.write(&mut w),
            Self::StatusResponse(m) => m.write(&mut w),
            Self::TsoRequest(m) => m.write(&mut w),
            Self::TsoResponse(m) => m.write(&mut w),
            Self::RaftRequest(m) | Self::RaftResponse(m) => m.write(&mut w),
            Self::Error(m) => m.write(&mut w),
        }
        match w.written() {
            Some(n) if n == len => Ok(n),
            _ => Err(EncodeError::BufferTooSmall { needed: len, available: out.len() }),
        }
    }

    /// [`Message::encode`] into a new `Vec`.
    pub fn to_vec(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = vec![0; self.encoded_len()];
        let n = self.encode(&mut out)?;
        out.truncate(n);
        Ok(out)
    }
}

/// A message that a receiver must drop (datagrams) or answer with an error
/// response (streams). Offsets count from the first byte of the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the layout needs.
    #[error("truncated message: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the layout needs up to the field that did not fit.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// The version byte is not one this decoder speaks (answer with
    /// `unsupported-version`).
    #[error("unsupported message version {version}; this side speaks version 1")]
    UnsupportedVersion {
        /// The version byte received.
        version: u8,
    },
    /// The kind byte is not defined in this version.
    #[error("unknown message kind 0x{kind:02x}")]
    UnknownKind {
        /// The kind byte received.
        kind: u8,
    },
    /// The header's length disagrees with the bytes received.
    #[error("length field says {declared} bytes, message has {actual}")]
    LengthMismatch {
        /// The header's length field.
        declared: u32,
        /// Bytes received.
        actual: usize,
    },
    /// The header's length exceeds 65535.
    #[error("length field {declared} exceeds the 65535-byte limit")]
    TooLong {
        /// The header's length field.
        declared: u32,
    },
    /// The body has bytes after its last field.
    #[error("{offset} bytes of body expected, more received")]
    TrailingBytes {
        /// Where the unexpected bytes begin.
        offset: usize,
    },
    /// A reserved field or flag bit is not zero.
    #[error("reserved bits set at offset {offset}")]
    ReservedNonZero {
        /// The offending byte.
        offset: usize,
    },
    /// An interval with `earliest > latest`.
    #[error("interval at offset {offset} has earliest after latest")]
    InvertedInterval {
        /// Where the interval starts.
        offset: usize,
    },
    /// A clock status byte outside 1..=5.
    #[error("invalid clock status {code} at offset {offset}")]
    InvalidStatus {
        /// Where.
        offset: usize,
        /// The byte.
        code: u8,
    },
    /// A timescale this side does not run.
    #[error("unknown timescale {code} at offset {offset}")]
    UnknownTimescale {
        /// Where.
        offset: usize,
        /// The byte.
        code: u8,
    },
    /// A source kind outside 1..=4.
    #[error("unknown source kind {code} at offset {offset}")]
    UnknownSourceKind {
        /// Where.
        offset: usize,
        /// The byte.
        code: u8,
    },
    /// Text that is not UTF-8 or contains control characters.
    #[error("{field} at offset {offset} is not UTF-8 text without control characters")]
    InvalidText {
        /// Where the text starts.
        offset: usize,
        /// Which field.
        field: &'static str,
    },
    /// A number outside its allowed range (a count, a length, a rate).
    #[error("{field} at offset {offset} is out of range")]
    InvalidField {
        /// Where.
        offset: usize,
        /// Which field.
        field: &'static str,
    },
}

impl DecodeError {
    /// Kebab-case name of the variant, as used in the test vectors.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::UnsupportedVersion { .. } => "unsupported-version",
            Self::UnknownKind { .. } => "unknown-kind",
            Self::LengthMismatch { .. } => "length-mismatch",
            Self::TooLong { .. } => "too-long",
            Self::TrailingBytes { .. } => "trailing-bytes",
            Self::ReservedNonZero { .. } => "reserved-non-zero",
            Self::InvertedInterval { .. } => "inverted-interval",
            Self::InvalidStatus { .. } => "invalid-status",
            Self::UnknownTimescale { .. } => "unknown-timescale",
            Self::UnknownSourceKind { .. } => "unknown-source-kind",
            Self::InvalidText { .. } => "invalid-text",
            Self::InvalidField { .. } => "invalid-field",
        }
    }

    /// The error code a stream receiver answers with.
    pub const fn response_code(&self) -> ErrorCode {
        match self {
            Self::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            Self::UnknownKind { .. } => ErrorCode::UnknownKind,
            Self::UnknownTimescale { .. } => ErrorCode::TimescaleMismatch,
            _ => ErrorCode::Malformed,
        }
    }
}

/// A message that must not be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The output buffer is shorter than the message.
    #[error("buffer of {available} bytes is too small for a {needed}-byte message")]
    BufferTooSmall {
        /// The message's length.
        needed: usize,
        /// The buffer's length.
        available: usize,
    },
    /// The message would exceed 65535 bytes.
    #[error("message of {len} bytes exceeds the 65535-byte limit")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// A field is outside what receivers accept (names, counts, rates).
    #[error("field {field} is outside its allowed range")]
    Invalid {
        /// Which field.
        field: &'static str,
    },
}

/// Reads the header at the start of a stream and returns the length of the
/// whole message, so the receiver knows how much to read before [`decode`].
/// `Ok(None)` while fewer than 8 bytes have arrived.
pub fn frame_len(prefix: &[u8]) -> Result<Option<usize>, DecodeError> {
    let Some(header) = prefix.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let mut r = Reader::new(header);
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion { version });
    }
    let kind = r.u8()?;
    MessageKind::from_code(kind).ok_or(DecodeError::UnknownKind { kind })?;
    r.reserved(2)?;
    let declared = r.u32()?;
    let len = usize::try_from(declared).map_err(|_| DecodeError::TooLong { declared })?;
    if len > MAX_MESSAGE_LEN {
        return Err(DecodeError::TooLong { declared });
    }
    if len < HEADER_LEN {
        return Err(DecodeError::LengthMismatch { declared, actual: prefix.len() });
    }
    Ok(Some(len))
}

/// Decodes exactly one message occupying all of `buf`.
pub fn decode(buf: &[u8]) -> Result<Message<'_>, DecodeError> {
    let len = frame_len(buf)?.ok_or(DecodeError::Truncated { needed: HEADER_LEN, available: buf.len() })?;
    if len != buf.len() {
        let declared = u32::try_from(len).unwrap_or(u32::MAX);
        return Err(DecodeError::LengthMismatch { declared, actual: buf.len() });
    }
    let kind_code = buf.get(1).copied().unwrap_or(0);
    let kind = MessageKind::from_code(kind_code).ok_or(DecodeError::UnknownKind { kind: kind_code })?;
    let mut r = Reader::new(buf);
    r.bytes(HEADER_LEN)?;
    let message = match kind {
        MessageKind::ProbeRequest => Message::ProbeRequest(ProbeRequest::decode(&mut r)?),
        MessageKind::ProbeReply => Message::ProbeReply(ProbeReply::decode(&mut r)?),
        MessageKind::Gossip => Message::Gossip(SiteReport::decode(&mut r)?),
        MessageKind::NowRequest => Message::NowRequest(Request::decode(&mut r)?),
        MessageKind::NowResponse => Message::NowResponse(NowResponse::decode(&mut r)?),
        MessageKind::StatusRequest => Message::StatusRequest(Request::decode(&mut r)?),
        MessageKind::StatusResponse => Message::StatusResponse(StatusResponse::decode(&mut r)?),
        MessageKind::TsoRequest => Message::TsoRequest(TsoRequest::decode(&mut r)?),
        MessageKind::TsoResponse => Message::TsoResponse(TsoResponse::decode(&mut r)?),
        MessageKind::RaftRequest => Message::RaftRequest(RaftMessage::decode(&mut r)?),
        MessageKind::RaftResponse => Message::RaftResponse(RaftMessage::decode(&mut r)?),
        MessageKind::Error => Message::Error(ErrorResponse::decode(&mut r)?),
    };
    r.finish()?;
    Ok(message)
}

/// Serde helper: a duration as whole nanoseconds (the JSON form of SPEC.md §7).
pub fn serialize_nanos<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Serde helper: an optional duration as whole nanoseconds, or `null`.
pub fn serialize_opt_nanos<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => serialize_nanos(d, s),
        None => s.serialize_none(),
    }
}

fn serialize_opt_millis<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        None => s.serialize_none(),
    }
}
