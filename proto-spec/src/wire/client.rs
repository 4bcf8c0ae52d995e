//! Bodies of the `tsod-client/1` messages (SPEC.md §4.7–§4.9): now, status,
//! TSO, and the error response both protocols share.

use core::fmt;
use core::time::Duration;

use serde::{Serialize, Serializer};

use super::cursor::{Reader, Writer};
use super::peer::{SiteReport, check_drift_bound, drift_bound};
use super::{DecodeError, EncodeError, serialize_opt_millis};
use crate::hybrid::HybridTimestamp;
use crate::status::{ClockStatus, Ppb, Timescale};
use crate::time::TimeInterval;

/// Most timestamps one TSO request may ask for.
pub const MAX_TSO_COUNT: u32 = 65_536;
/// Longest error message, in bytes of UTF-8.
pub const MAX_ERROR_MESSAGE_LEN: usize = 1024;

/// A request that carries nothing but its id: `now` (0x10) and `status` (0x12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Request {
    /// Chosen by the client; echoed in the response.
    pub request_id: u64,
}

impl Request {
    pub(crate) const BODY_LEN: usize = 8;

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { request_id: r.u64()? })
    }

    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        w.u64(self.request_id);
    }
}

/// The server's interval when it sent the response (0x11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct NowResponse {
    /// The request's id.
    pub request_id: u64,
    /// True time when the server sent this. The client must widen it by the
    /// whole round trip (SPEC.md §4.7) before using it.
    pub interval: TimeInterval,
    /// The server's status; clients treat a status that is not bounded as an error.
    pub status: ClockStatus,
    /// Timescale of `interval`.
    pub timescale: Timescale,
    /// The server's drift bound ρ.
    pub drift_bound: Ppb,
}

impl NowResponse {
    pub(crate) const BODY_LEN: usize = 32;

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let request_id = r.u64()?;
        let interval = r.interval()?;
        let status = r.status()?;
        let timescale = r.timescale()?;
        r.reserved(2)?;
        let drift_bound = drift_bound(r)?;
        Ok(Self { request_id, interval, status, timescale, drift_bound })
    }

    pub(crate) fn check(&self) -> Result<(), EncodeError> {
        check_drift_bound(self.drift_bound)
    }

    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        w.u64(self.request_id);
        w.interval(&self.interval);
        w.u8(self.status.code());
        w.u8(self.timescale.code());
        w.zeros(2);
        w.u32(u32::try_from(self.drift_bound.get()).unwrap_or(u32::MAX));
    }
}

/// The server's site report, in answer to a status request (0x13).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct StatusResponse<'a> {
    /// The request's id.
    pub request_id: u64,
    /// The server's own site report (the gossip layout).
    #[serde(borrow)]
    pub report: SiteReport<'a>,
}

impl<'a> StatusResponse<'a> {
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(Self { request_id: r.u64()?, report: SiteReport::decode(r)? })
    }

    pub(crate) fn body_len(&self) -> usize {
        self.report.body_len().saturating_add(8)
    }

    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        w.u64(self.request_id);
        self.report.write(w);
    }
}

/// "Give me `count` consecutive TSO timestamps" (0x14).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TsoRequest {
    /// Chosen by the client; echoed in the response.
    pub request_id: u64,
    /// How many, 1..=65536.
    pub count: u32,
}

impl TsoRequest {
    pub(crate) const BODY_LEN: usize = 16;

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let request_id = r.u64()?;
        let count_at = r.position();
        let count = r.u32()?;
        r.reserved(4)?;
        if !(1..=MAX_TSO_COUNT).contains(&count) {
            return Err(DecodeError::InvalidField { offset: count_at, field: "count" });
        }
        Ok(Self { request_id, count })
    }

    pub(crate) fn check(&self) -> Result<(), EncodeError> {
        if (1..=MAX_TSO_COUNT).contains(&self.count) { Ok(()) } else { Err(EncodeError::Invalid { field: "count" }) }
    }

    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        w.u64(self.request_id);
        w.u32(self.count);
        w.zeros(4);
    }
}

/// The timestamps `first`, `first + 1`, …, `first + count − 1` (raw values), 0x15.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TsoResponse {
    /// The request's id.
    pub request_id: u64,
    /// The first timestamp of the range.
    pub first: HybridTimestamp,
    /// How many, 1..=65536; the range never passes [`HybridTimestamp::MAX`].
    pub count: u32,
}

impl TsoResponse {
    pub(crate) const BODY_LEN: usize = 24;

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let request_id = r.u64()?;
        let first = HybridTimestamp::from_raw(r.u64()?);
        let count_at = r.position();
        let count = r.u32()?;
        r.reserved(4)?;
        let response = Self { request_id, first, count };
        response.last().map(|_| response).ok_or(DecodeError::InvalidField { offset: count_at, field: "count" })
    }

    /// The last timestamp of the range, or `None` if the range is empty,
    /// too long, or would pass [`HybridTimestamp::MAX`].
    pub fn last(&self) -> Option<HybridTimestamp> {
        if !(1..=MAX_TSO_COUNT).contains(&self.count) {
            return None;
        }
        self.first.checked_add_ticks(u64::from(self.count).saturating_sub(1))
    }

    pub(crate) fn check(&self) -> Result<(), EncodeError> {
        self.last().map(|_| ()).ok_or(EncodeError::Invalid { field: "count" })
    }

    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        w.u64(self.request_id);
        w.u64(self.first.raw());
        w.u32(self.count);
        w.zeros(4);
    }
}

/// Why a request failed. Unknown codes from newer peers are kept as [`ErrorCode::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: the message's version is not supported; the error's header carries
    /// the responder's version.
    UnsupportedVersion,
    /// 2: the request did not decode.
    Malformed,
    /// 3: the kind is unknown, or not allowed on this ALPN.
    UnknownKind,
    /// 4: no valid bound (status `unsynchronized`).
    Unsynchronized,
    /// 5: the clock was disrupted and is not yet re-synchronized.
    Disrupted,
    /// 6: no TSO leader is reachable, or its lease is not surely held; retry.
    TsoUnavailable,
    /// 7: too many requests on this connection; retry after `retry_after`.
    RateLimited,
    /// 8: the peer or client is not authorized for this request.
    Unauthorized,
    /// 9: the server is shedding load; retry after `retry_after`.
    Overloaded,
    /// 10: the peer runs a different timescale; never retry.
    TimescaleMismatch,
    /// 11: a bug or an I/O failure on the server.
    Internal,
    /// Any other code (from a newer version); treat as a failed request.
    /// Never 0, and never a code listed above.
    Other(u16),
}

impl ErrorCode {
    /// The two-byte code.
    pub const fn code(self) -> u16 {
        match self {
            Self::UnsupportedVersion => 1,
            Self::Malformed => 2,
            Self::UnknownKind => 3,
            Self::Unsynchronized => 4,
            Self::Disrupted => 5,
            Self::TsoUnavailable => 6,
            Self::RateLimited => 7,
            Self::Unauthorized => 8,
            Self::Overloaded => 9,
            Self::TimescaleMismatch => 10,
            Self::Internal => 11,
            Self::Other(c) => c,
        }
    }

    /// The code's meaning (unknown codes become [`ErrorCode::Other`]).
    pub const fn from_code(code: u16) -> Self {
        match code {
            1 => Self::UnsupportedVersion,
            2 => Self::Malformed,
            3 => Self::UnknownKind,
            4 => Self::Unsynchronized,
            5 => Self::Disrupted,
            6 => Self::TsoUnavailable,
            7 => Self::RateLimited,
            8 => Self::Unauthorized,
            9 => Self::Overloaded,
            10 => Self::TimescaleMismatch,
            11 => Self::Internal,
            c => Self::Other(c),
        }
    }

    /// Kebab-case name, or `None` for [`ErrorCode::Other`].
    pub const fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::UnsupportedVersion => "unsupported-version",
            Self::Malformed => "malformed",
            Self::UnknownKind => "unknown-kind",
            Self::Unsynchronized => "unsynchronized",
            Self::Disrupted => "disrupted",
            Self::TsoUnavailable => "tso-unavailable",
            Self::RateLimited => "rate-limited",
            Self::Unauthorized => "unauthorized",
            Self::Overloaded => "overloaded",
            Self::TimescaleMismatch => "timescale-mismatch",
            Self::Internal => "internal",
            Self::Other(_) => return None,
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "error-{}", self.code()),
        }
    }
}

impl Serialize for ErrorCode {
    /// Known codes as their name, others as the number.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.name() {
            Some(n) => s.serialize_str(n),
            None => s.serialize_u16(self.code()),
        }
    }
}

/// A failed request (0x1F), on either ALPN.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ErrorResponse<'a> {
    /// The failed request's id, or 0 if it could not be read.
    pub request_id: u64,
    /// Why.
    pub code: ErrorCode,
    /// When to retry, if at all (whole milliseconds, at most 2^32 − 1).
    #[serde(serialize_with = "serialize_opt_millis")]
    pub retry_after: Option<Duration>,
    /// For people: UTF-8, at most 1024 bytes, no control characters.
    pub message: &'a str,
}

impl<'a> ErrorResponse<'a> {
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let request_id = r.u64()?;
        let code_at = r.position();
        let code = ErrorCode::from_code(r.u16()?);
        if code.code() == 0 {
            return Err(DecodeError::InvalidField { offset: code_at, field: "code" });
        }
        let len_at = r.position();
        let len = usize::from(r.u16()?);
        let retry_after = match r.u32()? {
            0 => None,
            ms => Some(Duration::from_millis(u64::from(ms))),
        };
        if len > MAX_ERROR_MESSAGE_LEN {
            return Err(DecodeError::InvalidField { offset: len_at, field: "message" });
        }
        let message = r.text(len, "message")?;
        Ok(Self { request_id, code, retry_after, message })
    }

    pub(crate) fn body_len(&self) -> usize {
        self.message.len().saturating_add(16)
    }

    pub(crate) fn check(&self) -> Result<(), EncodeError> {
        // Code 0 is never sent, and a known code must use its own variant
        // (so that decoding gives back the same value).
        if ErrorCode::from_code(self.code.code()) != self.code || self.code.code() == 0 {
            return Err(EncodeError::Invalid { field: "code" });
        }
        if self.message.len() > MAX_ERROR_MESSAGE_LEN || self.message.chars().any(char::is_control) {
            return Err(EncodeError::Invalid { field: "message" });
        }
        if let Some(d) = self.retry_after {
            let whole_ms = d.subsec_nanos() % 1_000_000 == 0;
            if d.is_zero() || d.as_millis() > u128::from(u32::MAX) || !whole_ms {
                return Err(EncodeError::Invalid { field: "retry-after" });
            }
        }
        Ok(())
    }

    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        w.u64(self.request_id);
        w.u16(self.code.code());
        w.u16(u16::try_from(self.message.len()).unwrap_or(u16::MAX));
        let ms = self.retry_after.map_or(0, |d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX));
        w.u32(ms);
        w.bytes(self.message.as_bytes());
    }
}
