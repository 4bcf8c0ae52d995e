//! The NTPv4 packet header (RFC 5905 §7.3): decoding a server's reply and
//! encoding a client's request.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |LI | VN  |Mode |    Stratum    |     Poll      |   Precision   |
//! |                 Root Delay (16.16, unsigned)                  |
//! |               Root Dispersion (16.16, unsigned)               |
//! |                     Reference ID (4 bytes)                    |
//! |              Reference Timestamp (32.32, 8 bytes)             |
//! |                Origin Timestamp (32.32, 8 bytes)              |
//! |                Receive Timestamp (32.32, 8 bytes)             |
//! |               Transmit Timestamp (32.32, 8 bytes)             |
//! ```
//!
//! Only these 48 bytes are read; extension fields or a MAC after them are
//! ignored (tsod uses neither NTS nor symmetric keys). Decoding fails only on
//! an input shorter than the header: every bit pattern of the header is a
//! packet, and whether its values make sense is the reply validation's job
//! (`super::sample_from_reply`), not the codec's.
//!
//! Timestamps stay in their wire form, [`NtpTimestamp`] (seconds since
//! 1900-01-01 modulo 2³² in 32.32 fixed point), until the caller resolves
//! the era against a pivot, an approximate current time: the value within
//! ±68 years (2³¹ s) of the pivot is chosen, which is right across the era
//! rollover of 2036-02-07T06:28:16Z as long as the pivot is within 68 years
//! of the truth.

use core::fmt;
use core::time::Duration;

use tsod_proto::Timestamp;

/// Length of the NTP header, the only part of a packet tsod reads or writes.
pub const PACKET_LEN: usize = 48;

/// Seconds from the NTP prime epoch (1900-01-01) to the Unix epoch (1970-01-01).
const UNIX_EPOCH_NTP_SECONDS: i128 = 2_208_988_800;
const NANOS_PER_SEC: i128 = 1_000_000_000;
/// One second in 32.32 fixed point.
const FIXED_ONE: i128 = 1 << 32;
/// One NTP era (2³² s) in 32.32 fixed point.
const ERA: i128 = 1 << 64;

/// A packet that cannot be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer bytes than the 48-byte header.
    #[error("NTP packet of {len} bytes is shorter than the 48-byte header; drop it")]
    TooShort {
        /// How many bytes arrived.
        len: usize,
    },
}

/// The leap indicator: a warning of a leap second at the end of the current
/// UTC day, or that the server's clock is unsynchronized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeapIndicator {
    /// 0: no leap second pending.
    NoWarning,
    /// 1: the last minute of the day has 61 seconds.
    InsertSecond,
    /// 2: the last minute of the day has 59 seconds.
    DeleteSecond,
    /// 3: the server's clock is not synchronized.
    Unsynchronized,
}

/// A leap second announced for the end of the current UTC day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeapSecond {
    /// 23:59:60 will exist.
    Insert,
    /// 23:59:59 will be skipped.
    Delete,
}

impl LeapIndicator {
    /// The indicator with these two bits (higher bits are ignored).
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0 => Self::NoWarning,
            1 => Self::InsertSecond,
            2 => Self::DeleteSecond,
            _ => Self::Unsynchronized,
        }
    }

    /// The two-bit code.
    pub const fn bits(self) -> u8 {
        match self {
            Self::NoWarning => 0,
            Self::InsertSecond => 1,
            Self::DeleteSecond => 2,
            Self::Unsynchronized => 3,
        }
    }

    /// The announced leap second, if any (`None` for `Unsynchronized` too).
    pub const fn leap_second(self) -> Option<LeapSecond> {
        match self {
            Self::InsertSecond => Some(LeapSecond::Insert),
            Self::DeleteSecond => Some(LeapSecond::Delete),
            Self::NoWarning | Self::Unsynchronized => None,
        }
    }
}

/// The association mode (RFC 5905 Figure 10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// 0: reserved.
    Reserved,
    /// 1: symmetric active.
    SymmetricActive,
    /// 2: symmetric passive.
    SymmetricPassive,
    /// 3: client (what tsod sends).
    Client,
    /// 4: server (the only mode tsod accepts in a reply).
    Server,
    /// 5: broadcast.
    Broadcast,
    /// 6: NTP control message.
    Control,
    /// 7: reserved for private use.
    Private,
}

impl Mode {
    /// The mode with these three bits (higher bits are ignored).
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0b111 {
            0 => Self::Reserved,
            1 => Self::SymmetricActive,
            2 => Self::SymmetricPassive,
            3 => Self::Client,
            4 => Self::Server,
            5 => Self::Broadcast,
            6 => Self::Control,
            _ => Self::Private,
        }
    }

    /// The three-bit code.
    pub const fn bits(self) -> u8 {
        match self {
            Self::Reserved => 0,
            Self::SymmetricActive => 1,
            Self::SymmetricPassive => 2,
            Self::Client => 3,
            Self::Server => 4,
            Self::Broadcast => 5,
            Self::Control => 6,
            Self::Private => 7,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.bits())
    }
}

/// An unsigned 16.16 fixed-point duration in seconds (root delay, root dispersion).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NtpShort(u32);

impl NtpShort {
    /// The value with this wire encoding.
    pub const fn from_bits(bits: u32) -> Self {
        Self(bits)
    }

    /// The wire encoding.
    pub const fn to_bits(self) -> u32 {
        self.0
    }

    /// The duration, rounded up to whole nanoseconds (at most 65536 s).
    pub fn to_duration_ceil(self) -> Duration {
        Duration::from_nanos(self.nanos_ceil(1))
    }

    /// `⌈value / divisor⌉` in nanoseconds, for `divisor` ≥ 1 (halving the
    /// root delay rounds once, not twice).
    pub(super) fn nanos_ceil(self, divisor: u64) -> u64 {
        let num = u128::from(self.0) * 1_000_000_000;
        let den = u128::from(divisor.max(1)) << 16;
        // ≤ 2³² · 10⁹ / 2¹⁶ < 2⁴⁷: always fits.
        u64::try_from(num.div_ceil(den)).unwrap_or(u64::MAX)
    }
}

/// A 64-bit NTP timestamp as on the wire: 32.32 fixed-point seconds since
/// 1900-01-01T00:00:00Z modulo 2³² s. Zero means "not set" (RFC 5905 §6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NtpTimestamp(u64);

impl NtpTimestamp {
    /// The "not set" value.
    pub const ZERO: Self = Self(0);

    /// The timestamp with this wire encoding.
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    /// The wire encoding.
    pub const fn to_bits(self) -> u64 {
        self.0
    }

    /// Whether this is the "not set" value.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `t` on the NTP timescale, rounded down to 2⁻³² s, with the era dropped
    /// (what a server would put on the wire at instant `t`).
    pub fn from_timestamp(t: Timestamp) -> Self {
        let fixed = timestamp_to_fixed_floor(t).rem_euclid(ERA);
        Self(u64::try_from(fixed).unwrap_or(0))
    }

    /// The instant this timestamp names within `[pivot − 2³¹ s, pivot + 2³¹ s)`,
    /// rounded down to the nanosecond; `None` outside the [`Timestamp`]
    /// range (before 1970 or after 2554).
    pub fn to_timestamp_floor(self, pivot: Timestamp) -> Option<Timestamp> {
        fixed_to_unix_nanos_floor(self.unwrap_near(pivot)).and_then(timestamp_from_nanos)
    }

    /// As [`NtpTimestamp::to_timestamp_floor`], rounded up.
    pub fn to_timestamp_ceil(self, pivot: Timestamp) -> Option<Timestamp> {
        fixed_to_unix_nanos_ceil(self.unwrap_near(pivot)).and_then(timestamp_from_nanos)
    }

    /// 32.32 fixed-point seconds since 1900 (era 0), choosing the era that
    /// puts the value in `[pivot − 2³¹ s, pivot + 2³¹ s)`.
    pub(super) fn unwrap_near(self, pivot: Timestamp) -> i128 {
        let pivot_fixed = timestamp_to_fixed_floor(pivot);
        pivot_fixed + wrap_signed(i128::from(self.0) - pivot_fixed.rem_euclid(ERA))
    }

    /// `self − earlier` in 32.32 fixed point, taking the shorter way round
    /// the era: within `[−2³¹ s, 2³¹ s)`. Right across an era rollover.
    pub(super) fn fixed_since(self, earlier: Self) -> i128 {
        wrap_signed(i128::from(self.0) - i128::from(earlier.0))
    }
}

/// `d` (any integer) reduced modulo one era into `[−2⁶³, 2⁶³)`.
fn wrap_signed(d: i128) -> i128 {
    let d = d.rem_euclid(ERA);
    if d >= ERA / 2 { d - ERA } else { d }
}

/// `t` as 32.32 fixed-point seconds since 1900, rounded down.
fn timestamp_to_fixed_floor(t: Timestamp) -> i128 {
    let nanos = i128::from(t.as_nanos()) + UNIX_EPOCH_NTP_SECONDS * NANOS_PER_SEC;
    // < 2⁶⁵ · 2³²: no overflow.
    (nanos * FIXED_ONE).div_euclid(NANOS_PER_SEC)
}

/// Nanoseconds since the Unix epoch (may be negative) of a fixed-point
/// time since 1900, rounded down.
pub(super) fn fixed_to_unix_nanos_floor(fixed: i128) -> Option<i128> {
    Some(fixed.checked_mul(NANOS_PER_SEC)?.div_euclid(FIXED_ONE) - UNIX_EPOCH_NTP_SECONDS * NANOS_PER_SEC)
}

/// As [`fixed_to_unix_nanos_floor`], rounded up.
pub(super) fn fixed_to_unix_nanos_ceil(fixed: i128) -> Option<i128> {
    let scaled = fixed.checked_mul(NANOS_PER_SEC)?;
    let ceil = scaled.div_euclid(FIXED_ONE) + i128::from(scaled.rem_euclid(FIXED_ONE) != 0);
    Some(ceil - UNIX_EPOCH_NTP_SECONDS * NANOS_PER_SEC)
}

/// A fixed-point duration (2⁻³² s units) in nanoseconds, rounded down.
pub(super) fn fixed_to_nanos_floor(fixed: i128) -> i128 {
    fixed.saturating_mul(NANOS_PER_SEC).div_euclid(FIXED_ONE)
}

fn timestamp_from_nanos(nanos: i128) -> Option<Timestamp> {
    u64::try_from(nanos).ok().map(Timestamp::from_nanos)
}

/// `2^exponent` seconds (a precision field), rounded up to whole nanoseconds:
/// at least 1 ns, and [`Duration::MAX`] for absurd exponents (≥ 64).
pub fn log2_seconds_ceil(exponent: i8) -> Duration {
    if exponent >= 0 {
        let shift = u32::from(exponent.unsigned_abs());
        return 1u64.checked_shl(shift).map_or(Duration::MAX, Duration::from_secs);
    }
    let shift = u32::from(exponent.unsigned_abs());
    // 2³⁰ > 10⁹, so from 2⁻³⁰ s down the ceiling is 1 ns.
    if shift >= 30 {
        return Duration::from_nanos(1);
    }
    Duration::from_nanos(1_000_000_000u64.div_ceil(1u64 << shift))
}

/// The reference ID: for stratum 1 a four-character source code (`GPS`,
/// `PPS`…), above it an address hash, and for stratum 0 a kiss code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReferenceId(pub [u8; 4]);

impl ReferenceId {
    /// The field read as a kiss code (meaningful when the stratum is 0).
    pub const fn kiss_code(self) -> KissCode {
        KissCode(self.0)
    }
}

/// A kiss-o'-death code (RFC 5905 §7.4): four ASCII characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KissCode(pub [u8; 4]);

impl KissCode {
    /// "Rate exceeded": poll less often.
    pub const RATE: Self = Self(*b"RATE");
    /// "Access denied": stop polling this server.
    pub const DENY: Self = Self(*b"DENY");
    /// "Access restricted": stop polling this server.
    pub const RSTR: Self = Self(*b"RSTR");

    /// Whether the server asks us to stop for good (`DENY`, `RSTR`).
    pub fn is_denial(self) -> bool {
        self == Self::DENY || self == Self::RSTR
    }
}

impl fmt::Display for KissCode {
    /// The four characters, with anything but printable ASCII escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{}", core::ascii::escape_default(b))?;
        }
        Ok(())
    }
}

/// The 48-byte NTP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NtpPacket {
    /// Leap indicator (2 bits).
    pub leap: LeapIndicator,
    /// Version number (3 bits; higher bits are dropped by [`NtpPacket::encode`]).
    pub version: u8,
    /// Association mode (3 bits).
    pub mode: Mode,
    /// 0: kiss-o'-death; 1: primary; 2..=15: secondary; 16: unsynchronized.
    pub stratum: u8,
    /// Log2 of the poll interval in seconds.
    pub poll: i8,
    /// Log2 of the sender's clock precision in seconds.
    pub precision: i8,
    /// Round trip to the primary reference.
    pub root_delay: NtpShort,
    /// Dispersion accumulated up to the primary reference.
    pub root_dispersion: NtpShort,
    /// Reference ID or kiss code.
    pub reference_id: ReferenceId,
    /// When the sender's clock was last set or corrected.
    pub reference_time: NtpTimestamp,
    /// T1 as echoed by the server: in tsod's case, the request's cookie.
    pub origin: NtpTimestamp,
    /// T2: when the server received the request.
    pub receive: NtpTimestamp,
    /// T3: when the server sent the reply (in a request: the cookie).
    pub transmit: NtpTimestamp,
}

impl NtpPacket {
    /// A version-4 client request whose transmit timestamp is `cookie`, a
    /// random value the reply must echo as its origin (tsod never puts its
    /// own clock on the wire), and whose other fields are zero except the
    /// poll exponent.
    pub fn client_request(cookie: u64, poll: i8) -> Self {
        Self {
            leap: LeapIndicator::NoWarning,
            version: 4,
            mode: Mode::Client,
            stratum: 0,
            poll,
            precision: 0,
            root_delay: NtpShort::default(),
            root_dispersion: NtpShort::default(),
            reference_id: ReferenceId::default(),
            reference_time: NtpTimestamp::ZERO,
            origin: NtpTimestamp::ZERO,
            receive: NtpTimestamp::ZERO,
            transmit: NtpTimestamp::from_bits(cookie),
        }
    }

    /// Decodes the header at the start of `bytes`; anything after it is ignored.
    pub fn decode(bytes: &[u8]) -> Result<Self, PacketError> {
        let too_short = PacketError::TooShort { len: bytes.len() };
        let mut reader = Reader(bytes);
        let [lvm, stratum, poll, precision] = reader.take().ok_or(too_short)?;
        let mut u32_field = || reader.take().map(u32::from_be_bytes).ok_or(too_short);
        let root_delay = NtpShort(u32_field()?);
        let root_dispersion = NtpShort(u32_field()?);
        let reference_id = ReferenceId(u32_field()?.to_be_bytes());
        let mut timestamp = || reader.take().map(|b| NtpTimestamp(u64::from_be_bytes(b))).ok_or(too_short);
        Ok(Self {
            leap: LeapIndicator::from_bits(lvm >> 6),
            version: (lvm >> 3) & 0b111,
            mode: Mode::from_bits(lvm),
            stratum,
            poll: i8::from_be_bytes([poll]),
            precision: i8::from_be_bytes([precision]),
            root_delay,
            root_dispersion,
            reference_id,
            reference_time: timestamp()?,
            origin: timestamp()?,
            receive: timestamp()?,
            transmit: timestamp()?,
        })
    }

    /// The 48 wire bytes.
    pub fn encode(&self) -> [u8; PACKET_LEN] {
        let lvm = (self.leap.bits() << 6) | ((self.version & 0b111) << 3) | self.mode.bits();
        let head = [
            lvm,
            self.stratum,
            u8::from_be_bytes(self.poll.to_be_bytes()),
            u8::from_be_bytes(self.precision.to_be_bytes()),
        ];
        let bytes = head
            .into_iter()
            .chain(self.root_delay.0.to_be_bytes())
            .chain(self.root_dispersion.0.to_be_bytes())
            .chain(self.reference_id.0)
            .chain(self.reference_time.0.to_be_bytes())
            .chain(self.origin.0.to_be_bytes())
            .chain(self.receive.0.to_be_bytes())
            .chain(self.transmit.0.to_be_bytes());
        let mut out = [0u8; PACKET_LEN];
        for (slot, byte) in out.iter_mut().zip(bytes) {
            *slot = byte;
        }
        out
    }
}

/// Reads fixed-size fields off the front of a slice without indexing.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A reply from a stratum-2 server, written out by hand from RFC 5905 §7.3.
    const GOLDEN_REPLY: [u8; 52] = [
        0x64, // LI 1 (insert), VN 4, mode 4 (server)
        0x02, // stratum 2
        0x06, // poll 2⁶ s
        0xEC, // precision 2⁻²⁰ s
        0x00, 0x00, 0x01, 0x80, // root delay 0x180 / 2¹⁶ s = 5.859375 ms
        0x00, 0x01, 0x00, 0x00, // root dispersion 1 s
        0xC0, 0x00, 0x02, 0x01, // reference ID 192.0.2.1
        0xE8, 0x7A, 0x5B, 0x00, 0x00, 0x00, 0x00, 0x00, // reference
        0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, // origin (our cookie)
        0xE8, 0x7A, 0x5B, 0x10, 0x80, 0x00, 0x00, 0x00, // receive: +16.5 s
        0xE8, 0x7A, 0x5B, 0x10, 0x80, 0x01, 0x00, 0x00, // transmit: 2⁻¹⁶ s later
        0xDE, 0xAD, 0xBE, 0xEF, // trailing bytes (an extension or MAC): ignored
    ];

    #[test]
    fn golden_reply_decodes_field_by_field() {
        let p = NtpPacket::decode(&GOLDEN_REPLY).unwrap();
        assert_eq!(p.leap, LeapIndicator::InsertSecond);
        assert_eq!(p.leap.leap_second(), Some(LeapSecond::Insert));
        assert_eq!((p.version, p.mode, p.stratum, p.poll, p.precision), (4, Mode::Server, 2, 6, -20));
        assert_eq!(p.root_delay.to_duration_ceil(), Duration::from_nanos(5_859_375));
        assert_eq!(p.root_dispersion.to_duration_ceil(), Duration::from_secs(1));
        assert_eq!(p.reference_id, ReferenceId([192, 0, 2, 1]));
        assert_eq!(p.reference_time.to_bits(), 0xE87A_5B00_0000_0000);
        assert_eq!(p.origin.to_bits(), 0x0123_4567_89AB_CDEF);
        assert_eq!(p.receive.to_bits(), 0xE87A_5B10_8000_0000);
        assert_eq!(p.transmit.fixed_since(p.receive), 1 << 16);
        // 0xE87A5B10 s after 1900 is 2023-08-06T17:46:56Z (Unix 1 691 344 016).
        let pivot = Timestamp::from_nanos(1_700_000_000_000_000_000);
        assert_eq!(p.receive.to_timestamp_floor(pivot), Some(Timestamp::from_nanos(1_691_344_016_500_000_000)));
        // Re-encoding gives back the header, without the trailing bytes.
        assert_eq!(p.encode().as_slice(), GOLDEN_REPLY.get(..PACKET_LEN).unwrap());
    }

    #[test]
    fn client_request_golden_bytes() {
        let bytes = NtpPacket::client_request(0x0123_4567_89AB_CDEF, -3).encode();
        let mut expected = [0u8; PACKET_LEN];
        expected[0] = 0x23; // LI 0, VN 4, mode 3
        expected[2] = 0xFD; // poll −3: 1/8 s
        expected[40..].copy_from_slice(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn short_input_is_an_error_not_a_panic() {
        for len in 0..PACKET_LEN {
            assert_eq!(NtpPacket::decode(&GOLDEN_REPLY[..len]), Err(PacketError::TooShort { len }));
        }
    }

    #[test]
    fn era_is_resolved_around_the_2036_rollover() {
        // Era 1 begins at Unix 2 085 978 496 s (2036-02-07T06:28:16Z).
        let rollover = 2_085_978_496_000_000_000u64;
        let after = NtpTimestamp::from_bits(10 << 32); // era-relative second 10
        let before = NtpTimestamp::from_bits((u64::from(u32::MAX) - 9) << 32); // second 2³² − 10
        for pivot_offset_s in [-3_600i64 * 24 * 365 * 60, -5, 0, 5, 3_600 * 24 * 365 * 60] {
            let pivot = Timestamp::from_nanos(rollover.checked_add_signed(pivot_offset_s * 1_000_000_000).unwrap());
            assert_eq!(after.to_timestamp_floor(pivot), Some(Timestamp::from_nanos(rollover + 10_000_000_000)));
            assert_eq!(before.to_timestamp_floor(pivot), Some(Timestamp::from_nanos(rollover - 10_000_000_000)));
        }
        // Differences are right across the rollover too.
        assert_eq!(after.fixed_since(before), 20 << 32);
        assert_eq!(before.fixed_since(after), -(20 << 32));
        // Seen from 2026, second 1 of era 0 is in 2036 (era 1); seen from 1971,
        // 1950-01-01 stays in 1950, before the Timestamp range.
        let pivot_2026 = Timestamp::from_nanos(1_790_000_000_000_000_000);
        let second_1 = NtpTimestamp::from_bits(1 << 32);
        assert_eq!(second_1.to_timestamp_floor(pivot_2026), Some(Timestamp::from_nanos(rollover + 1_000_000_000)));
        let pivot_1971 = Timestamp::from_nanos(31_536_000_000_000_000);
        assert_eq!(NtpTimestamp::from_bits(1_577_836_800 << 32).to_timestamp_floor(pivot_1971), None);
    }

    #[test]
    fn timestamp_conversion_rounds_in_the_asked_direction() {
        let pivot = Timestamp::from_nanos(1_790_000_000_000_000_000);
        // One fixed-point unit (0.23 ns) after a whole second.
        let whole = NtpTimestamp::from_timestamp(pivot).to_bits();
        let t = NtpTimestamp::from_bits(whole + 1);
        assert_eq!(t.to_timestamp_floor(pivot), Some(pivot));
        assert_eq!(t.to_timestamp_ceil(pivot), Some(Timestamp::from_nanos(pivot.as_nanos() + 1)));
        assert_eq!(NtpTimestamp::from_bits(whole).to_timestamp_ceil(pivot), Some(pivot));
    }

    #[test]
    fn precision_exponents_and_kiss_codes() {
        assert_eq!(log2_seconds_ceil(0), Duration::from_secs(1));
        assert_eq!(log2_seconds_ceil(-1), Duration::from_millis(500));
        assert_eq!(log2_seconds_ceil(-20), Duration::from_nanos(954)); // 953.67 ns
        assert_eq!(log2_seconds_ceil(-29), Duration::from_nanos(2));
        assert_eq!(log2_seconds_ceil(-128), Duration::from_nanos(1));
        assert_eq!(log2_seconds_ceil(10), Duration::from_secs(1024));
        assert_eq!(log2_seconds_ceil(127), Duration::MAX);
        // Kiss codes display safely whatever the bytes.
        assert_eq!(KissCode::RATE.to_string(), "RATE");
        assert_eq!(KissCode([b'X', 0, b'\n', 0xFF]).to_string(), "X\\x00\\n\\xff");
        assert!(KissCode::DENY.is_denial() && KissCode::RSTR.is_denial() && !KissCode::RATE.is_denial());
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            match NtpPacket::decode(&bytes) {
                Err(PacketError::TooShort { len }) => prop_assert!(len < PACKET_LEN),
                Ok(p) => {
                    let encoded = p.encode();
                    prop_assert_eq!(encoded.as_slice(), &bytes[..PACKET_LEN]);
                    prop_assert_eq!(NtpPacket::decode(&encoded), Ok(p));
                }
            }
        }

        #[test]
        fn era_resolution_stays_within_68_years_of_the_pivot(
            t in 0u64..=u64::MAX, pivot in 0u64..=u64::MAX,
        ) {
            let ntp = NtpTimestamp::from_timestamp(Timestamp::from_nanos(t));
            let pivot = Timestamp::from_nanos(pivot);
            let resolved = ntp.unwrap_near(pivot);
            let pivot_fixed = timestamp_to_fixed_floor(pivot);
            prop_assert!((-(1i128 << 63)..(1i128 << 63)).contains(&(resolved - pivot_fixed)));
            prop_assert_eq!(resolved.rem_euclid(ERA), i128::from(ntp.to_bits()));
            // A pivot within a few decades of t recovers t (down to rounding).
            let near = Timestamp::from_nanos(t.saturating_add(1_000_000_000 * 3600 * 24 * 365 * 30));
            if let Some(back) = ntp.to_timestamp_floor(near) {
                prop_assert!(t - back.as_nanos() <= 1, "{} vs {}", t, back.as_nanos());
                let ceil = ntp.to_timestamp_ceil(near).unwrap();
                prop_assert!(ceil.as_nanos() <= t && ceil.as_nanos() >= back.as_nanos());
            }
        }
    }
}
