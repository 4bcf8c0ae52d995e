//! The scheduled leap seconds, from the IERS list that tzdata ships.
//!
//! `leap-seconds.list` is published by the IERS Earth Orientation Center
//! (Paris Observatory) after each Bulletin C, twice a year, and distributed
//! with tzdata as `/usr/share/zoneinfo/leap-seconds.list` ([`SYSTEM_PATH`]).
//! It lists every instant since 1972 at which TAI − UTC changed, which
//! tells the daemon at which month ends a leap second was or will be
//! inserted or deleted, independently of what its sources announce.
//!
//! **Format.** Times are NTP seconds (since 1900-01-01; Unix = NTP −
//! 2 208 988 800). A data line is `<ntp> <TAI−UTC> # comment`, the time
//! being the first instant *after* the change (00:00:00 UTC on the 1st of a
//! month). `#$ <ntp>` is the last update, `#@ <ntp>` the expiry, `#h` five
//! hex words of SHA-1 over the file's numbers: the digits of the `#$` line,
//! the `#@` line and each data line's two fields, concatenated in file order
//! with whitespace and comments removed (the IERS `sources/README`; checked
//! against the file tzdata ships). Every other `#` line is a comment.
//!
//! **The first entry** (1 Jan 1972, TAI − UTC = 10) is the baseline, not a
//! leap. Each later entry changes the offset by exactly one: +1 means a
//! second was inserted (23:59:60) at the end of the day before it, −1 that
//! the day's last second (23:59:59) was deleted.
//!
//! **Why the hash.** The file is root-owned, so an attacker who can change it
//! already owns the machine; the hash catches accidental damage (truncation,
//! a bad edit, a broken package). Any changed number fails it. On top of it,
//! [`LeapList::parse`] checks the list's own rules (order, ±1 steps, month
//! starts, the 1972 baseline, no entry after the expiry), so a file that
//! merely *looks* like a leap list is refused rather than believed.
//!
//! **Expiry.** The list only speaks for month ends up to its `#@` time
//! (IERS sets it a few days before the first month end it has not yet
//! decided). For a later month end it knows nothing: [`LeapList::leap_at`]
//! answers `None`, "unknown", and the daemon must treat that month end as a
//! possible leap either way, exactly as if it had no list. An expired list
//! is still right about the past. Comparisons are inclusive: the list covers
//! instants `<= expires()`, and it is expired only strictly after it.
//!
//! Pure: [`LeapList::load`] is the only function that does I/O.

use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Months, NaiveDate, Timelike, Utc};
use ring::digest;
use tsod_proto::Timestamp;

use crate::timescale::LeapAnnouncement;

/// Where tzdata installs the list.
pub const SYSTEM_PATH: &str = "/usr/share/zoneinfo/leap-seconds.list";

/// The largest list accepted, in bytes (the real file is about 5 KiB).
pub const MAX_LEN: usize = 64 * 1024;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
/// 1972-01-01T00:00:00Z in NTP seconds: the baseline entry's time.
const NTP_1972: u64 = 2_272_060_800;
/// TAI − UTC at the baseline.
const BASELINE_OFFSET: i32 = 10;
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Why a leap-second list was refused. Every variant means "do not use this
/// file": the daemon then knows no leap schedule and must treat every June
/// and December end (indeed every month end) as a possible leap.
#[derive(Debug, thiserror::Error)]
pub enum LeapListError {
    /// The file could not be opened or read.
    #[error("cannot read the leap-second list {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Longer than [`MAX_LEN`]: not a leap-seconds.list.
    #[error("the leap-second list is larger than {max} bytes; check that the path names tzdata's leap-seconds.list")]
    TooLarge {
        /// The limit, [`MAX_LEN`].
        max: usize,
    },
    /// The file is not UTF-8 text.
    #[error("the leap-second list {path} is not text; check the path or reinstall tzdata")]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// A line that is neither a comment nor a well-formed `#$`, `#@`, `#h` or
    /// data line.
    #[error("line {line} of the leap-second list is malformed ({what}); reinstall tzdata")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        what: &'static str,
    },
    /// A second `#$`, `#@` or `#h` line.
    #[error("line {line} repeats the leap-second list's `{tag}` line; reinstall tzdata")]
    Duplicate {
        /// 1-based line number of the repetition.
        line: usize,
        /// `#$`, `#@` or `#h`.
        tag: &'static str,
    },
    /// A required part is absent (the file is truncated or is not a
    /// leap-seconds.list).
    #[error("the leap-second list has no {what}; it is truncated or not a leap-seconds.list, reinstall tzdata")]
    Missing {
        /// "`#$` (last update) line", "`#@` (expiry) line", "`#h` (hash)
        /// line" or "data lines".
        what: &'static str,
    },
    /// The numbers do not match the `#h` line.
    #[error("the leap-second list is corrupt: its hash is {stated} but its data hash to {computed}; reinstall tzdata")]
    HashMismatch {
        /// The `#h` line, as five 8-digit hex words.
        stated: String,
        /// SHA-1 of the data, in the same form.
        computed: String,
    },
    /// An entry not strictly after the one before it.
    #[error("line {line} of the leap-second list is not after the entry before it; reinstall tzdata")]
    OutOfOrder {
        /// 1-based line number.
        line: usize,
    },
    /// TAI − UTC changing by other than ±1 between consecutive entries.
    #[error(
        "line {line} of the leap-second list changes TAI-UTC from {from} to {to}, not by one second; reinstall tzdata"
    )]
    OffsetStep {
        /// 1-based line number.
        line: usize,
        /// TAI − UTC before.
        from: i32,
        /// TAI − UTC at this entry.
        to: i32,
    },
    /// An entry whose time is not 00:00:00 UTC on the 1st of a month.
    #[error("line {line} of the leap-second list is not at the start of a month, where leaps happen; reinstall tzdata")]
    NotMonthStart {
        /// 1-based line number.
        line: usize,
    },
    /// A time before 1972-01-01, when leap seconds began.
    #[error("line {line} of the leap-second list has a time before 1972; reinstall tzdata")]
    TooEarly {
        /// 1-based line number.
        line: usize,
    },
    /// A number too large for its meaning (a time after 2554, an offset
    /// beyond `i32`).
    #[error("line {line} of the leap-second list has a number out of range; reinstall tzdata")]
    Unrepresentable {
        /// 1-based line number.
        line: usize,
    },
    /// The first entry is not the 1972 baseline (1 Jan 1972, TAI − UTC 10).
    #[error("line {line}: the leap-second list must start at 1 Jan 1972 with TAI-UTC 10; reinstall tzdata")]
    Baseline {
        /// 1-based line number of the first entry.
        line: usize,
    },
    /// An entry after the list's own expiry.
    #[error("line {line} of the leap-second list is after the list's expiry; reinstall tzdata")]
    EntryAfterExpiry {
        /// 1-based line number.
        line: usize,
    },
    /// The expiry (`#@`) is before the last update (`#$`).
    #[error("line {line}: the leap-second list expires before its last update; reinstall tzdata")]
    ExpiryBeforeUpdate {
        /// 1-based line number of the `#@` line.
        line: usize,
    },
}

/// One data line: from `at` on, TAI − UTC is `offset` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    at: Timestamp,
    offset: i32,
}

/// A verified leap-second schedule (see the module doc).
///
/// Invariants, checked by [`LeapList::parse`]: at least one entry, the first
/// the 1972 baseline; entries strictly increasing, each on a month start and
/// ±1 from the one before; none after `expires`; `updated <= expires`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeapList {
    updated: Timestamp,
    expires: Timestamp,
    entries: Vec<Entry>,
}

impl LeapList {
    /// Reads and parses the list at `path` (normally [`SYSTEM_PATH`]),
    /// reading at most [`MAX_LEN`] + 1 bytes.
    pub fn load(path: &Path) -> Result<Self, LeapListError> {
        let io = |source| LeapListError::Io { path: path.to_owned(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut bytes = Vec::new();
        file.take(MAX_LEN as u64 + 1).read_to_end(&mut bytes).map_err(io)?;
        if bytes.len() > MAX_LEN {
            return Err(LeapListError::TooLarge { max: MAX_LEN });
        }
        let text = String::from_utf8(bytes).map_err(|_| LeapListError::NotText { path: path.to_owned() })?;
        Self::parse(&text)
    }

    /// Parses and verifies a list's text: syntax, the hash, then the list's
    /// own rules (see [`LeapListError`]). Never panics.
    pub fn parse(text: &str) -> Result<Self, LeapListError> {
        if text.len() > MAX_LEN {
            return Err(LeapListError::TooLarge { max: MAX_LEN });
        }
        let scan = scan(text)?;
        let (updated_line, updated) = scan.updated.ok_or(LeapListError::Missing { what: "`#$` (last update) line" })?;
        let (expires_line, expires) = scan.expires.ok_or(LeapListError::Missing { what: "`#@` (expiry) line" })?;
        let (_, stated) = scan.hash.ok_or(LeapListError::Missing { what: "`#h` (hash) line" })?;
        if scan.data.is_empty() {
            return Err(LeapListError::Missing { what: "data lines" });
        }
        if stated != scan.digest {
            return Err(LeapListError::HashMismatch { stated: hex_words(stated), computed: hex_words(scan.digest) });
        }

        let updated = ntp_time(updated, updated_line)?;
        let expires = ntp_time(expires, expires_line)?;
        if expires < updated {
            return Err(LeapListError::ExpiryBeforeUpdate { line: expires_line });
        }
        let mut entries: Vec<Entry> = Vec::with_capacity(scan.data.len());
        for &(line, at, offset) in &scan.data {
            let at = ntp_time(at, line)?;
            let offset: i32 = offset.parse().map_err(|_| LeapListError::Unrepresentable { line })?;
            match entries.last() {
                None if at != ntp_1972() || offset != BASELINE_OFFSET => {
                    return Err(LeapListError::Baseline { line });
                }
                None => {}
                Some(prev) => {
                    if !is_month_start(at) {
                        return Err(LeapListError::NotMonthStart { line });
                    }
                    if at <= prev.at {
                        return Err(LeapListError::OutOfOrder { line });
                    }
                    if (i64::from(offset) - i64::from(prev.offset)).abs() != 1 {
                        return Err(LeapListError::OffsetStep { line, from: prev.offset, to: offset });
                    }
                }
            }
            if at > expires {
                return Err(LeapListError::EntryAfterExpiry { line });
            }
            entries.push(Entry { at, offset });
        }
        Ok(Self { updated, expires, entries })
    }

    /// The list's last update (`#$`).
    pub fn updated(&self) -> Timestamp {
        self.updated
    }

    /// The list's expiry (`#@`): it speaks for instants up to and including
    /// this one.
    pub fn expires(&self) -> Timestamp {
        self.expires
    }

    /// Whether `now` is past the expiry. An expired list is still right
    /// about every month end up to [`LeapList::expires`].
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now > self.expires
    }

    /// What the list says about a leap just before `boundary`, the instant
    /// 00:00:00 UTC on the 1st of a month (a leap at the end of June is asked
    /// for as 1 July 00:00:00):
    /// * `Some(Insert)` / `Some(Delete)`: the list has a leap there;
    /// * `Some(None)`: the list covers `boundary` (`boundary <= expires()`)
    ///   and has no leap there. Also the answer before and at the 1972
    ///   baseline (UTC had no leap seconds before it), and for any
    ///   `boundary` that is *not* a month start: per the list's own rules a
    ///   leap can only happen at the end of a month, so none happens there,
    ///   whatever the expiry;
    /// * `None`: unknown, the month start is after the expiry.
    pub fn leap_at(&self, boundary: Timestamp) -> Option<LeapAnnouncement> {
        if !is_month_start(boundary) {
            return Some(LeapAnnouncement::None);
        }
        if boundary > self.expires {
            return None;
        }
        let k = self.entries.partition_point(|e| e.at < boundary);
        let announcement = match (k.checked_sub(1).and_then(|p| self.entries.get(p)), self.entries.get(k)) {
            (Some(prev), Some(e)) if e.at == boundary && e.offset > prev.offset => LeapAnnouncement::Insert,
            (Some(prev), Some(e)) if e.at == boundary && e.offset < prev.offset => LeapAnnouncement::Delete,
            _ => LeapAnnouncement::None,
        };
        Some(announcement)
    }

    /// TAI − UTC in seconds at the UTC (POSIX) instant `at`, or `None` before
    /// 1972 or from the first month start after the expiry on (a leap there
    /// is unknown). During an inserted second, whose POSIX time repeats
    /// 23:59:59, this is the offset before the leap.
    pub fn tai_offset_at(&self, at: Timestamp) -> Option<i32> {
        if at >= first_month_start_after(self.expires) {
            return None;
        }
        let k = self.entries.partition_point(|e| e.at <= at);
        k.checked_sub(1).and_then(|p| self.entries.get(p)).map(|e| e.offset)
    }

    /// Every leap in the list (the baseline excluded), oldest first, as the
    /// month start just after it and its direction.
    pub fn leaps(&self) -> impl Iterator<Item = (Timestamp, LeapAnnouncement)> + '_ {
        self.entries.windows(2).filter_map(|w| match w {
            [prev, e] if e.offset > prev.offset => Some((e.at, LeapAnnouncement::Insert)),
            [_, e] => Some((e.at, LeapAnnouncement::Delete)),
            _ => None,
        })
    }
}

/// The first pass: the syntax, and the hash over the numbers as written.
struct Scan<'a> {
    updated: Option<(usize, &'a str)>,
    expires: Option<(usize, &'a str)>,
    hash: Option<(usize, [u32; 5])>,
    /// (line, NTP time, TAI − UTC), as written.
    data: Vec<(usize, &'a str, &'a str)>,
    digest: [u32; 5],
}

fn scan(text: &str) -> Result<Scan<'_>, LeapListError> {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    let mut updated = None;
    let mut expires = None;
    let mut hash = None;
    let mut data = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let line = index.saturating_add(1);
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix("#$") {
            let n = single_number(rest, line)?;
            set_once(&mut updated, (line, n), "#$")?;
            ctx.update(n.as_bytes());
        } else if let Some(rest) = raw.strip_prefix("#@") {
            let n = single_number(rest, line)?;
            set_once(&mut expires, (line, n), "#@")?;
            ctx.update(n.as_bytes());
        } else if let Some(rest) = raw.strip_prefix("#h") {
            set_once(&mut hash, (line, hash_words(rest, line)?), "#h")?;
        } else if raw.starts_with('#') {
            // A comment.
        } else {
            let fields = raw.split_once('#').map_or(raw, |(fields, _comment)| fields);
            let mut fields = fields.split_whitespace();
            match (fields.next(), fields.next(), fields.next()) {
                (None, _, _) => {} // Blank.
                (Some(at), Some(offset), None) => {
                    let at = number(at, line)?;
                    let offset = number(offset, line)?;
                    ctx.update(at.as_bytes());
                    ctx.update(offset.as_bytes());
                    data.push((line, at, offset));
                }
                _ => {
                    return Err(LeapListError::Malformed { line, what: "a data line is a time and TAI-UTC" });
                }
            }
        }
    }
    let mut digest = [0_u32; 5];
    for (word, chunk) in digest.iter_mut().zip(ctx.finish().as_ref().chunks_exact(4)) {
        *word = chunk.iter().fold(0, |w, &b| (w << 8) | u32::from(b));
    }
    Ok(Scan { updated, expires, hash, data, digest })
}

fn set_once<T>(slot: &mut Option<(usize, T)>, value: (usize, T), tag: &'static str) -> Result<(), LeapListError> {
    if slot.is_some() {
        return Err(LeapListError::Duplicate { line: value.0, tag });
    }
    *slot = Some(value);
    Ok(())
}

/// A decimal number of ASCII digits only (no sign: `str::parse` would take
/// a `+`, which the hash does not see).
fn number(token: &str, line: usize) -> Result<&str, LeapListError> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LeapListError::Malformed { line, what: "not a decimal number" });
    }
    Ok(token)
}

fn single_number(rest: &str, line: usize) -> Result<&str, LeapListError> {
    let mut tokens = rest.split_whitespace();
    match (tokens.next(), tokens.next()) {
        (Some(n), None) => number(n, line),
        _ => Err(LeapListError::Malformed { line, what: "`#$` and `#@` take one number" }),
    }
}

/// The `#h` line's five words, kept as numbers, so a word written without
/// its leading zeros (as `printf("%x")` would write it) still verifies.
fn hash_words(rest: &str, line: usize) -> Result<[u32; 5], LeapListError> {
    let malformed = || LeapListError::Malformed { line, what: "`#h` takes five hex words of up to 8 digits" };
    let mut words = [0_u32; 5];
    let mut tokens = rest.split_whitespace();
    for word in &mut words {
        let token = tokens.next().ok_or_else(malformed)?;
        if token.len() > 8 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed());
        }
        *word = u32::from_str_radix(token, 16).map_err(|_| malformed())?;
    }
    if tokens.next().is_some() {
        return Err(malformed());
    }
    Ok(words)
}

fn hex_words(words: [u32; 5]) -> String {
    words.map(|w| format!("{w:08x}")).join(" ")
}

/// An NTP time as written, checked to lie in 1972..2554.
fn ntp_time(digits: &str, line: usize) -> Result<Timestamp, LeapListError> {
    let ntp: u64 = digits.parse().map_err(|_| LeapListError::Unrepresentable { line })?;
    if ntp < NTP_1972 {
        return Err(LeapListError::TooEarly { line });
    }
    ntp.checked_sub(NTP_UNIX_OFFSET)
        .and_then(|unix| unix.checked_mul(NANOS_PER_SEC))
        .map(Timestamp::from_nanos)
        .ok_or(LeapListError::Unrepresentable { line })
}

fn ntp_1972() -> Timestamp {
    Timestamp::from_nanos((NTP_1972 - NTP_UNIX_OFFSET) * NANOS_PER_SEC)
}

fn is_month_start(t: Timestamp) -> bool {
    let d = DateTime::<Utc>::from(t);
    d.day() == 1 && d.num_seconds_from_midnight() == 0 && d.nanosecond() == 0
}

/// The first 1st-of-a-month 00:00:00 UTC strictly after `t` (or
/// [`Timestamp::MAX`] past the representable range).
fn first_month_start_after(t: Timestamp) -> Timestamp {
    let d = DateTime::<Utc>::from(t);
    NaiveDate::from_ymd_opt(d.year(), d.month(), 1)
        .and_then(|first| first.checked_add_months(Months::new(1)))
        .and_then(|next| next.and_hms_opt(0, 0, 0))
        .and_then(|next| Timestamp::try_from(next.and_utc()).ok())
        .unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests;
