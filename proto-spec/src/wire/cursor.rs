//! Bounds-checked big-endian reading and writing of message fields.
//!
//! [`Reader`] never panics: every read is a `get` on the slice and reports
//! the offset of what went wrong. [`Writer`] never panics either: it records
//! an overflow instead of writing past the buffer, and the encoder turns that
//! into an error (the encoder checks the length first, so it does not happen).

use core::time::Duration;

use super::DecodeError;
use crate::status::{ClockStatus, Timescale};
use crate::time::{TimeInterval, Timestamp};

/// Reads fields from one message, front to back.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Offset of the next field from the start of the message.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end =
            self.pos.checked_add(n).ok_or(DecodeError::Truncated { needed: usize::MAX, available: self.buf.len() })?;
        let out =
            self.buf.get(self.pos..end).ok_or(DecodeError::Truncated { needed: end, available: self.buf.len() })?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// `n` reserved bytes, which must all be zero.
    pub(crate) fn reserved(&mut self, n: usize) -> Result<(), DecodeError> {
        let offset = self.pos;
        if self.bytes(n)?.iter().all(|b| *b == 0) { Ok(()) } else { Err(DecodeError::ReservedNonZero { offset }) }
    }

    /// A duration in nanoseconds (u64).
    pub(crate) fn nanos(&mut self) -> Result<Duration, DecodeError> {
        Ok(Duration::from_nanos(self.u64()?))
    }

    /// `earliest`, `latest` (u64 ns each), with `earliest <= latest`.
    pub(crate) fn interval(&mut self) -> Result<TimeInterval, DecodeError> {
        let offset = self.pos;
        let earliest = Timestamp::from_nanos(self.u64()?);
        let latest = Timestamp::from_nanos(self.u64()?);
        TimeInterval::new(earliest, latest).map_err(|_| DecodeError::InvertedInterval { offset })
    }

    pub(crate) fn status(&mut self) -> Result<ClockStatus, DecodeError> {
        let offset = self.pos;
        let code = self.u8()?;
        ClockStatus::from_code(code).ok_or(DecodeError::InvalidStatus { offset, code })
    }

    pub(crate) fn timescale(&mut self) -> Result<Timescale, DecodeError> {
        let offset = self.pos;
        let code = self.u8()?;
        Timescale::from_code(code).ok_or(DecodeError::UnknownTimescale { offset, code })
    }

    /// `len` bytes of UTF-8 text without control characters.
    pub(crate) fn text(&mut self, len: usize, field: &'static str) -> Result<&'a str, DecodeError> {
        let offset = self.pos;
        let s = core::str::from_utf8(self.bytes(len)?).map_err(|_| DecodeError::InvalidText { offset, field })?;
        if s.chars().any(char::is_control) {
            return Err(DecodeError::InvalidText { offset, field });
        }
        Ok(s)
    }

    /// Everything was consumed: no trailing bytes.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.pos == self.buf.len() { Ok(()) } else { Err(DecodeError::TrailingBytes { offset: self.pos }) }
    }
}

/// Writes fields into a caller-provided buffer, front to back.
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
    overflowed: bool,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0, overflowed: false }
    }

    /// Bytes written so far, or `None` if a write did not fit.
    pub(crate) fn written(&self) -> Option<usize> {
        (!self.overflowed).then_some(self.pos)
    }

    pub(crate) fn bytes(&mut self, data: &[u8]) {
        let Some(end) = self.pos.checked_add(data.len()) else {
            self.overflowed = true;
            return;
        };
        match self.buf.get_mut(self.pos..end) {
            Some(slot) => {
                slot.copy_from_slice(data);
                self.pos = end;
            }
            None => self.overflowed = true,
        }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.bytes(&v.to_be_bytes());
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.bytes(&v.to_be_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_be_bytes());
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.bytes(&v.to_be_bytes());
    }

    pub(crate) fn zeros(&mut self, n: usize) {
        for _ in 0..n {
            self.u8(0);
        }
    }

    /// A duration as u64 nanoseconds, saturating (the encoder validates first).
    pub(crate) fn nanos(&mut self, d: Duration) {
        self.u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    pub(crate) fn interval(&mut self, i: &TimeInterval) {
        self.u64(i.earliest().as_nanos());
        self.u64(i.latest().as_nanos());
    }
}
