//! Bodies of the `tsod-peer/1` messages: probes (datagrams) and gossip (stream).
//!
//! Layouts, with offsets, are in SPEC.md §4.4–§4.6; fields are read and
//! written here in exactly that order, after the 8-byte header.

use core::time::Duration;

use serde::Serialize;

use super::cursor::{Reader, Writer};
use super::{DecodeError, EncodeError, serialize_nanos, serialize_opt_nanos};
use crate::bound::DriftModel;
use crate::status::{ClockStatus, MonoInstant, Offset, Ppb, Timescale};
use crate::time::TimeInterval;

/// Longest site or source name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 63;
/// Most sources one site report may list.
pub const MAX_SOURCES: usize = 64;

/// Probe-reply flag: the intervals come from the responder's own inputs only.
const FLAG_LOCAL_BASIS: u8 = 0b0000_0001;
/// Source flags.
const SOURCE_USABLE: u8 = 0b0000_0001;
const SOURCE_FALSETICKER: u8 = 0b0000_0010;

/// "What time is it at your site?" — sent as a QUIC datagram (kind 0x01).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ProbeRequest {
    /// Chosen at random by the requester; the reply must echo it.
    pub nonce: u64,
    /// The requester's reader clock when it sent this (t1); echoed, opaque to the responder.
    pub requester_send: MonoInstant,
}

impl ProbeRequest {
    pub(crate) const BODY_LEN: usize = 16;

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { nonce: r.u64()?, requester_send: MonoInstant::from_nanos(r.u64()?) })
    }

    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        w.u64(self.nonce);
        w.u64(self.requester_send.as_nanos());
    }
}

/// The answer to a [`ProbeRequest`] (kind 0x02), sent as a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ProbeReply {
    /// The request's nonce.
    pub nonce: u64,
    /// The request's `requester_send`, echoed.
    pub requester_send: MonoInstant,
    /// The responder's local-basis interval when the request arrived (t2).
    pub at_receive: TimeInterval,
    /// The responder's local-basis interval when this reply left (t3).
    pub at_send: TimeInterval,
    /// t3 − t2 on the responder's reader clock.
    #[serde(serialize_with = "serialize_nanos")]
    pub processing: Duration,
    /// Bound on the responder's reader-clock rate error over `processing`.
    pub drift_bound: Ppb,
    /// Status of the responder's local basis.
    pub status: ClockStatus,
    /// Timescale of both intervals.
    pub timescale: Timescale,
    /// Set by conforming responders: both intervals were computed from the
    /// responder's own local sources only, never from peers (SPEC.md §4.5).
    pub local_basis: bool,
}

impl ProbeReply {
    pub(crate) const BODY_LEN: usize = 64;

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let nonce = r.u64()?;
        let requester_send = MonoInstant::from_nanos(r.u64()?);
        let at_receive = r.interval()?;
        let at_send = r.interval()?;
        let processing = r.nanos()?;
        let drift_bound = drift_bound(r)?;
        let status = r.status()?;
        let timescale = r.timescale()?;
        let flags_at = r.position();
        let flags = r.u8()?;
        if flags & !FLAG_LOCAL_BASIS != 0 {
            return Err(DecodeError::ReservedNonZero { offset: flags_at });
        }
        r.reserved(1)?;
        let local_basis = flags & FLAG_LOCAL_BASIS != 0;
        Ok(Self { nonce, requester_send, at_receive, at_send, processing, drift_bound, status, timescale, local_basis })
    }

    pub(crate) fn check(&self) -> Result<(), EncodeError> {
        check_nanos(self.processing, "processing")?;
        check_drift_bound(self.drift_bound)
    }

    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        w.u64(self.nonce);
        w.u64(self.requester_send.as_nanos());
        w.interval(&self.at_receive);
        w.interval(&self.at_send);
        w.nanos(self.processing);
        w.u32(u32::try_from(self.drift_bound.get()).unwrap_or(u32::MAX));
        w.u8(self.status.code());
        w.u8(self.timescale.code());
        w.u8(if self.local_basis { FLAG_LOCAL_BASIS } else { 0 });
        w.zeros(1);
    }
}

/// Where a source's samples come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// An NTP server (code 1).
    Ntp,
    /// A GPS receiver through gpsd (code 2).
    Gpsd,
    /// The kernel's own error estimate (`adjtimex`) (code 3).
    Kernel,
    /// Another tsod site (code 4).
    Peer,
}

impl SourceKind {
    /// The one-byte code.
    pub const fn code(self) -> u8 {
        match self {
            Self::Ntp => 1,
            Self::Gpsd => 2,
            Self::Kernel => 3,
            Self::Peer => 4,
        }
    }

    /// The kind with this code, or `None`.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Ntp),
            2 => Some(Self::Gpsd),
            3 => Some(Self::Kernel),
            4 => Some(Self::Peer),
            _ => None,
        }
    }
}

/// One source as a site sees it, in a [`SiteReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SourceReport<'a> {
    /// What kind of source.
    pub kind: SourceKind,
    /// Its configured name (1–63 bytes of UTF-8, no control characters).
    pub name: &'a str,
    /// It currently yields samples.
    pub usable: bool,
    /// Selection rejected it: its interval disagrees with the majority.
    pub falseticker: bool,
    /// Midpoint of its interval minus the midpoint of the site's published interval.
    pub offset: Offset,
    /// Half-width of its interval, projected to the report's instant.
    #[serde(serialize_with = "serialize_nanos")]
    pub error: Duration,
}

/// A site's summary: sent as gossip (kind 0x03) and in status responses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SiteReport<'a> {
    /// Increases with every report a site sends; receivers drop older ones.
    pub generation: u64,
    /// The site's name (1–63 bytes of UTF-8, no control characters).
    pub site: &'a str,
    /// Status of the site's published interval (all sources, peers included).
    pub status: ClockStatus,
    /// Status of its local basis (own sources only; what its probe replies carry).
    pub local_status: ClockStatus,
    /// The service timescale it runs.
    pub timescale: Timescale,
    /// Half-width of its published interval; `None` when it has no valid bound.
    #[serde(serialize_with = "serialize_opt_nanos")]
    pub half_width: Option<Duration>,
    /// Its drift bound ρ.
    pub drift_bound: Ppb,
    /// Its sources, at most 64.
    pub sources: Vec<SourceReport<'a>>,
}

/// Wire value of `half_width` meaning "no valid bound".
const NO_HALF_WIDTH: u64 = u64::MAX;
/// Fixed part of a site report, and of one source entry (names follow each).
const REPORT_FIXED_LEN: usize = 28;
const SOURCE_FIXED_LEN: usize = 20;

impl<'a> SiteReport<'a> {
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let generation = r.u64()?;
        let half_width_at = r.position();
        let half_width = match r.u64()? {
            NO_HALF_WIDTH => None,
            n => Some(Duration::from_nanos(n)),
        };
        let drift_bound = drift_bound(r)?;
        let status = r.status()?;
        let local_status = r.status()?;
        let timescale = r.timescale()?;
        r.reserved(1)?;
        let name_len_at = r.position();
        let site_len = usize::from(r.u8()?);
        let count_at = r.position();
        let count = usize::from(r.u8()?);
        r.reserved(2)?;
        check_name_len(site_len, name_len_at, "site")?;
        if count > MAX_SOURCES {
            return Err(DecodeError::InvalidField { offset: count_at, field: "source-count" });
        }
        if half_width.is_some() != status.is_bounded() {
            return Err(DecodeError::InvalidField { offset: half_width_at, field: "half-width" });
        }
        let site = r.text(site_len, "site")?;
        let mut sources = Vec::with_capacity(count);
        for _ in 0..count {
            sources.push(SourceReport::decode(r)?);
        }
        Ok(Self { generation, site, status, local_status, timescale, half_width, drift_bound, sources })
    }

    pub(crate) fn body_len(&self) -> usize {
        let sources: usize =
            self.sources.iter().map(|s| SOURCE_FIXED_LEN.saturating_add(s.name.len())).fold(0, usize::saturating_add);
        REPORT_FIXED_LEN.saturating_add(self.site.len()).saturating_add(sources)
    }

    pub(crate) fn check(&self) -> Result<(), EncodeError> {
        check_name(self.site, "site")?;
        check_drift_bound(self.drift_bound)?;
        if self.sources.len() > MAX_SOURCES {
            return Err(EncodeError::Invalid { field: "source-count" });
        }
        match self.half_width {
            Some(d) if !self.status.is_bounded() || d.as_nanos() >= u128::from(NO_HALF_WIDTH) => {
                return Err(EncodeError::Invalid { field: "half-width" });
            }
            None if self.status.is_bounded() => return Err(EncodeError::Invalid { field: "half-width" }),
            _ => {}
        }
        for s in &self.sources {
            check_name(s.name, "source-name")?;
            check_nanos(s.error, "source-error")?;
        }
        Ok(())
    }

    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        w.u64(self.generation);
        w.nanos(self.half_width.unwrap_or(Duration::from_nanos(NO_HALF_WIDTH)));
        w.u32(u32::try_from(self.drift_bound.get()).unwrap_or(u32::MAX));
        w.u8(self.status.code());
        w.u8(self.local_status.code());
        w.u8(self.timescale.code());
        w.zeros(1);
        w.u8(u8::try_from(self.site.len()).unwrap_or(u8::MAX));
        w.u8(u8::try_from(self.sources.len()).unwrap_or(u8::MAX));
        w.zeros(2);
        w.bytes(self.site.as_bytes());
        for s in &self.sources {
            s.write(w);
        }
    }
}

impl<'a> SourceReport<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let kind_at = r.position();
        let code = r.u8()?;
        let kind = SourceKind::from_code(code).ok_or(DecodeError::UnknownSourceKind { offset: kind_at, code })?;
        let flags_at = r.position();
        let flags = r.u8()?;
        if flags & !(SOURCE_USABLE | SOURCE_FALSETICKER) != 0 {
            return Err(DecodeError::ReservedNonZero { offset: flags_at });
        }
        let name_len_at = r.position();
        let name_len = usize::from(r.u8()?);
        r.reserved(1)?;
        check_name_len(name_len, name_len_at, "source-name")?;
        let offset = Offset::from_nanos(r.i64()?);
        let error = r.nanos()?;
        let name = r.text(name_len, "source-name")?;
        Ok(Self {
            kind,
            name,
            usable: flags & SOURCE_USABLE != 0,
            falseticker: flags & SOURCE_FALSETICKER != 0,
            offset,
            error,
        })
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.u8(self.kind.code());
        let mut flags = 0;
        if self.usable {
            flags |= SOURCE_USABLE;
        }
        if self.falseticker {
            flags |= SOURCE_FALSETICKER;
        }
        w.u8(flags);
        w.u8(u8::try_from(self.name.len()).unwrap_or(u8::MAX));
        w.zeros(1);
        w.i64(self.offset.as_nanos());
        w.nanos(self.error);
        w.bytes(self.name.as_bytes());
    }
}

/// A u32 drift bound in ppb, at most 1000 ppm.
pub(crate) fn drift_bound(r: &mut Reader<'_>) -> Result<Ppb, DecodeError> {
    let offset = r.position();
    let ppb = Ppb::new(i64::from(r.u32()?));
    DriftModel::symmetric(ppb).map(|_| ppb).map_err(|_| DecodeError::InvalidField { offset, field: "drift-bound" })
}

pub(crate) fn check_drift_bound(ppb: Ppb) -> Result<(), EncodeError> {
    DriftModel::symmetric(ppb).map(|_| ()).map_err(|_| EncodeError::Invalid { field: "drift-bound" })
}

pub(crate) fn check_nanos(d: Duration, field: &'static str) -> Result<(), EncodeError> {
    u64::try_from(d.as_nanos()).map(|_| ()).map_err(|_| EncodeError::Invalid { field })
}

fn check_name_len(len: usize, offset: usize, field: &'static str) -> Result<(), DecodeError> {
    if (1..=MAX_NAME_LEN).contains(&len) { Ok(()) } else { Err(DecodeError::InvalidField { offset, field }) }
}

fn check_name(name: &str, field: &'static str) -> Result<(), EncodeError> {
    if (1..=MAX_NAME_LEN).contains(&name.len()) && !name.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(EncodeError::Invalid { field })
    }
}
