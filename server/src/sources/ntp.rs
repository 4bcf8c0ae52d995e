//! # NTP client core (sans-IO)
//!
//! Polls NTP servers (RFC 5905, client mode) and turns each validated reply
//! into a [`Sample`]: an interval that contains true time at the reader-clock
//! instant the reply was received, whenever the assumptions below hold. No
//! sockets and no clock reads here: the shell reads the reader clock, sends,
//! receives, and passes the instants in.
//!
//! * [`packet`]: the 48-byte header codec and NTP era resolution.
//! * this module: reply validation and the bound ([`sample_from_reply`]).
//! * [`filter`]: the best of one server's recent samples, carried to "now".
//! * [`source`]: one server's poll state machine and its counters.
//!
//! ## The exchange
//!
//! Write θ(e) for the true time of an event e, M(e) for the reader clock
//! (`CLOCK_MONOTONIC_RAW`) and S(e) for the server's clock at e. The events:
//!
//! * e1: we read t1 = M(e1), then send the request;
//! * e2: the server, having received it, reads T2 = S(e2);
//! * e3: the server reads T3 = S(e3), then sends the reply;
//! * e4: the reply having arrived, we read t4 = M(e4).
//!
//! Causality gives θ(e1) ≤ θ(e2) ≤ θ(e3) ≤ θ(e4), and nothing more about the
//! paths: no symmetry is assumed. The request does not carry t1: its transmit
//! timestamp is a random cookie, which the reply must echo as its origin
//! timestamp, so an off-path attacker cannot forge a reply (as chrony does).
//!
//! ## Assumptions, each a parameter or a check
//!
//! * (A) server accuracy: |S(e3) − θ(e3)| ≤ R = root_delay/2 + root_dispersion,
//!   the server's own root distance, its claimed maximum error relative to
//!   the primary reference (RFC 5905 §7.3, §11.2).
//! * (P) server readings: |Tᵢ − S(eᵢ)| ≤ p_s = 2^precision s.
//! * (Rs) server rate over the residence: S(e3) − S(e2) ≤ (1 + ρ_s)·(θ(e3) − θ(e2)),
//!   ρ_s = [`NtpParams::server_drift`], RFC 5905's PHI = 15 ppm by default.
//! * (Rl) reader rate: for e ≤ e′, θ(e′) − θ(e) ≤ (M(e′) − M(e))·(1 + ρ_l),
//!   ρ_l = [`NtpParams::local_drift`].
//! * (Pl) our readings: |tᵢ − M(eᵢ)| ≤ p_l = [`NtpParams::local_precision`].
//!
//! The sample is about e*, the instant at which the reader clock shows t4.
//!
//! ## Lower bound
//!
//! ```text
//! θ(e*) ≥ θ(e4) − p_l(1+ρ_l)          Pl, Rl (trivially θ(e*) ≥ θ(e4) if e* is later)
//!       ≥ θ(e3) − p_l(1+ρ_l)          causality
//!       ≥ S(e3) − R − p_l(1+ρ_l)      A
//!       ≥ T3 − p_s − R − p_l(1+ρ_l)   P
//!       = T3 − λ,        λ = root_delay/2 + root_dispersion + p_s + p_l(1+ρ_l)
//! ```
//!
//! ## Upper bound
//!
//! ```text
//! θ(e*) ≤ θ(e2) + (θ(e*) − θ(e1))                        θ(e1) ≤ θ(e2)
//! θ(e*) − θ(e1) ≤ (t4 − t1 + p_l)(1+ρ_l)                 Rl, Pl (≤ 0 if e* precedes e1)
//! θ(e3) − θ(e2) ≥ (S(e3) − S(e2))(1−ρ_s)                 Rs, as 1/(1+ρ) ≥ 1−ρ; and θ(e3) ≥ θ(e2)
//!                                                        covers S(e3) < S(e2)
//! θ(e2) = θ(e3) − (θ(e3) − θ(e2))
//!       ≤ S(e3) + R − (S(e3) − S(e2))(1−ρ_s)             A
//!       = ρ_s·S(e3) + (1−ρ_s)·S(e2) + R
//!       ≤ T3 − (T3 − T2)(1−ρ_s) + p_s + R                P (weights ρ_s, 1−ρ_s ≥ 0 sum to 1)
//!       ≤ T3 − W⁺(1−ρ_s) + p_s + R,     W⁺ = max(0, T3 − T2)
//! ```
//!
//! so, with the same λ,
//!
//! ```text
//! θ(e*) ∈ [ T3 − λ ,  T3 + ⌈(t4 − t1)(1+ρ_l)⌉ − ⌊W⁺(1−ρ_s)⌋ + λ ]
//! ```
//!
//! Every term is rounded outwards once, in nanoseconds: T3 and the 16.16
//! fields are converted down for the earliest end and up for the latest,
//! the residence W⁺ is rounded down, and λ up. The upper end is really
//! anchored at T2: T3 − W(1−ρ_s) = T2 + ρ_s·W, the server's error claim
//! made at e3, carried back to e2 at the server's drift rate.
//!
//! ## Relation to NTP's root distance
//!
//! The width is δ̂ + 2λ with δ̂ = (t4 − t1)(1+ρ_l) − W⁺(1−ρ_s) = δ + ρ_l(t4−t1) + ρ_s·W,
//! NTP's round-trip delay δ = (t4 − t1) − (T3 − T2) inflated by the two drift
//! bounds. The midpoint is T3 + δ̂/2, which is NTP's own estimate of the time
//! at t4 (t4 + offset = t4 + ((T2 − t1) + (T3 − t4))/2 = T3 + δ/2), and the
//! half-width is δ̂/2 + root_delay/2 + root_dispersion + p_s + p_l(1+ρ_l):
//! docs/ARCHITECTURE.md's "δ/2 + root_delay/2 + root_dispersion + precision terms",
//! RFC 5905's root distance. The offset estimate assumes symmetric paths; the
//! δ/2 half-width is what makes asymmetry harmless: the truth may lie
//! anywhere from T3 (all of δ on the way back) to T3 + δ (all on the way out).
//!
//! ## What the bound rests on, and what it leaves to others
//!
//! * A lying server (a falseticker) breaks (A); selection out-votes it.
//! * (Rs) fails for a server slewing faster than ρ_s (chrony slews at up to
//!   83 ms/s), by at most its slew rate × W, the residence (µs for a busy
//!   server with software timestamps). Setting `server_drift` to 100 %
//!   (`Ppb::new(1_000_000_000)`) drops the residence credit altogether.
//! * (A) trusts the server's root dispersion to grow with the age of its
//!   last clock update, as RFC 5905 servers and chrony do.
//! * t1 must be read before the request is handed to the kernel, t4 after
//!   the reply was read. Both then carry the time the request spent in the
//!   send path and the reply in the receive path and the wake-up: tens of
//!   microseconds a host's kernel timestamps see through ([`WireTimes`]).
//! * The interval is on the server's timescale, UTC as NTP numbers it (or the
//!   server's smear, if it is configured to smear). Converting into tsod's
//!   timescale (SPEC.md §2, a 24-hour smear) is the caller's job, with the
//!   leap warning passed through in [`NtpSample::leap`]; the [`filter`] never
//!   carries a sample with a leap warning across the end of its UTC day.
//! * The reader clock does not advance in suspend: after a disruption the
//!   caller must [`source::NtpSource::reset`] every source.
//!
//! ## Kernel timestamps ([`WireTimes`])
//!
//! The kernel can timestamp the request as it leaves (e_out, after e1) and
//! the reply as it arrives (e_in, before e4), on `CLOCK_REALTIME`, not the
//! reader clock. The shell (`daemon::ntp_task`) turns them into true
//! durations with the realtime clock's own rate bound, and passes:
//!
//! * b = `before_departure` ≤ θ(e_out) − θ(e1);
//! * a = `after_arrival` ≤ θ(e4) − θ(e_in);
//! * D = `departure_to_t4` ≥ θ(e*) − θ(e_out), if known.
//!
//! The derivation above holds with e_out for e1 and e_in for e4 (causality
//! e_out ≤ e2 ≤ e3 ≤ e_in), so
//!
//! ```text
//! θ(e*) ≥ θ(e_in) + a ≥ T3 − λ + a
//! θ(e*) ≤ θ(e2) + (θ(e*) − θ(e_out))
//!       ≤ T3 − W⁺(1−ρ_s) + λ + min( ⌈(t4 − t1)(1+ρ_l)⌉ − b ,  D )
//! ```
//!
//! Each credit only moves an end inwards by true time that certainly
//! passed; zero credits and no D give the bound above unchanged.
//!
//! ## Interleaved mode ([`source::NtpSourceConfig::interleaved`])
//!
//! A server can only put into its reply a T3 read before it sends it, so
//! its own send path counts as round trip: on loopback with chronyd, 3.8 µs
//! of a basic exchange's δ, against 0.7 µs interleaved. In interleaved mode
//! (RFC 9769) the request names an earlier exchange by the receive
//! timestamp T2 the server put in that exchange's reply (the request's
//! origin field), and carries a second cookie in its receive field; a
//! server that remembers that exchange answers with origin = that second
//! cookie, receive = this exchange's T2, and transmit = T3′, the time the
//! earlier reply really left. A server that does not remember it answers
//! in basic mode, which is judged as above.
//!
//! From an interleaved reply come two samples:
//!
//! * this exchange, bounded by T2 alone: the derivation above with e3 = e2
//!   (T3 := T2, W = 0) needs nothing about the reply's departure;
//! * the earlier exchange (its t1, t4, T2 and kernel timestamps, kept),
//!   with T3′ for T3 and the wider of the two replies' root delay, root
//!   dispersion and precision. Its sample is one poll interval old when it
//!   comes, and the filter carries it to now like any other.
//!
//! The earlier sample rests on one more assumption: (I) the server reads
//! T3′ no later than the reply reaches the wire, as a kernel or NIC
//! transmit timestamp does (chrony on Linux; where it has none it reports
//! the reading it took before sending, which is also fine). A server that
//! reads T3′ after its send call returns (ntpd's interleaved mode, the
//! RFC's sample code) may read it after the reply arrived, and the
//! earliest end would then rest on nothing. So interleaved mode is off
//! unless configured, per server. The consistency checks below apply to
//! the earlier exchange as to any: a T3′ before its T2, or a residence
//! longer than its round trip, refuses that sample (counted) and leaves
//! this exchange's.
//!
//! ## Rejections
//!
//! Anything the derivation cannot back is rejected, never repaired: each
//! reason is an [`NtpReject`] variant with a stable [`NtpReject::name`], and
//! [`source::NtpCounters`] counts them per server. Besides the undecodable,
//! the unsolicited and the forged (origin ≠ cookie): mode ≠ 4, version ∉
//! {3, 4}, kiss-o'-death (stratum 0, code reported), stratum ≥ 16, LI = 3,
//! a zero transmit, receive or reference timestamp, t4 < t1, t4 − t1 above
//! `max_round_trip`, and a root distance `(root_delay + δ)/2 +
//! root_dispersion + p_s` above `max_root_distance` (NTP's MAXDIST, which
//! also bounds absurd 16.16 values and precisions). The consistency checks
//! (T3 before T2, reference time after T3, residence longer than the whole
//! round trip) allow the disagreement the precisions explain, 2·p_s between
//! two server readings and 2·p_l between two of ours, within which the bound
//! above stays valid (W⁺ clamps a negative residence, and the width stays
//! non-negative); beyond it, one of the clocks is broken.

pub mod filter;
pub mod packet;
pub mod source;
#[cfg(test)]
mod tests;
pub mod wire;

use core::time::Duration;

use tsod_proto::{MonoInstant, Ppb, TimeInterval, Timestamp};

use crate::sample::Sample;
pub use filter::{FilterConfig, SampleFilter};
pub use packet::{KissCode, LeapSecond, Mode, PacketError, ReferenceId};
use packet::{
    LeapIndicator, NtpPacket, PACKET_LEN, fixed_to_nanos_floor, fixed_to_unix_nanos_ceil, fixed_to_unix_nanos_floor,
    log2_seconds_ceil,
};
pub use source::{MIN_POLL_INTERVAL, NtpCounters, NtpSource, NtpSourceConfig};

const BILLION: u128 = 1_000_000_000;

/// What the bound assumes and what replies are acceptable; see the module doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NtpParams {
    /// ρ_l: over a reader-clock span m, at most m·(1 + ρ_l) true time passes.
    /// From a [`tsod_proto::DriftModel`] `(f, ρ)` this is `f + ρ` (if
    /// positive). Default 100 ppm, a common crystal tolerance.
    pub local_drift: Ppb,
    /// ρ_s: bound on the server clock's rate error between T2 and T3.
    /// Default 15 ppm (RFC 5905's PHI).
    pub server_drift: Ppb,
    /// p_l: how far a reader-clock reading t1 or t4 may be from the instant
    /// it names: the clock's resolution. Default 1 µs; the daemon uses the
    /// reader clock's `clock_getres`.
    pub local_precision: Duration,
    /// Replies whose round trip t4 − t1 exceeds this are rejected. Default 1 s.
    pub max_round_trip: Duration,
    /// Replies whose root distance `(root_delay + δ)/2 + root_dispersion +
    /// 2^precision` exceeds this are rejected. Default 1.5 s (NTP's MAXDIST).
    pub max_root_distance: Duration,
}

impl Default for NtpParams {
    fn default() -> Self {
        Self {
            local_drift: Ppb::from_ppm(100),
            server_drift: Ppb::from_ppm(15),
            local_precision: Duration::from_micros(1),
            max_round_trip: Duration::from_secs(1),
            max_root_distance: Duration::from_millis(1_500),
        }
    }
}

impl NtpParams {
    /// The largest drift bound accepted: 100 %, which makes the bound ignore
    /// the server's residence time entirely.
    pub const MAX_DRIFT: Ppb = Ppb::new(1_000_000_000);

    /// Checks that the parameters describe something: drift bounds within
    /// 0..=100 %, non-zero maxima. [`sample_from_reply`] does not call this
    /// (it treats out-of-range drifts as the nearest valid, wider, value);
    /// [`source::NtpSource::new`] does.
    pub fn validate(&self) -> Result<(), NtpConfigError> {
        for (name, value) in [("local-drift", self.local_drift), ("server-drift", self.server_drift)] {
            if value < Ppb::ZERO || value > Self::MAX_DRIFT {
                return Err(NtpConfigError::DriftOutOfRange { name, value });
            }
        }
        if self.max_round_trip.is_zero() || self.max_root_distance.is_zero() {
            return Err(NtpConfigError::ZeroMaximum);
        }
        Ok(())
    }
}

/// A configuration no NTP source can run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NtpConfigError {
    /// A drift bound below zero or above 100 %.
    #[error("{name} {value} must be within 0 and 1000000000 ppb (100 %)")]
    DriftOutOfRange {
        /// Which parameter.
        name: &'static str,
        /// Its value.
        value: Ppb,
    },
    /// `max_round_trip` or `max_root_distance` is zero: every reply would be rejected.
    #[error("max-round-trip and max-root-distance must be above zero, or every reply is rejected")]
    ZeroMaximum,
    /// Poll interval outside 1/64 s ..= 1024 s.
    #[error("poll interval {0:?} must be within 15.625 ms and 1024 s")]
    PollIntervalOutOfRange(Duration),
    /// Filter depth zero or above [`filter::FilterConfig::MAX_CAPACITY`].
    #[error("filter capacity {0} must be within 1 and 64 samples")]
    FilterCapacity(usize),
    /// Filter max age zero.
    #[error("filter max-age must be above zero")]
    FilterMaxAge,
}

/// A request in flight: the cookie it carries and the reader-clock instant
/// t1 read just before it was sent. Not `Clone`: one request, one answer.
#[derive(Debug, PartialEq, Eq)]
pub struct PendingRequest {
    cookie: u64,
    sent_at: MonoInstant,
    /// For an interleaved request: the server's receive timestamp (T2, as
    /// its 64 bits) of the earlier exchange whose reply's departure it asks for.
    names: Option<u64>,
}

/// How a reply answers the request it echoes (RFC 9769 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMode {
    /// The reply's transmit timestamp is this exchange's T3, read before
    /// the server sent it (origin = the request's transmit field).
    Basic,
    /// The reply's transmit timestamp is the departure of the server's
    /// reply to the earlier exchange the request named (origin = the
    /// request's receive field); its receive timestamp is this exchange's T2.
    Interleaved,
}

impl PendingRequest {
    /// A basic request carrying `cookie` (random, from a CSPRNG), sent after
    /// the reader clock read `sent_at`.
    pub const fn new(cookie: u64, sent_at: MonoInstant) -> Self {
        Self { cookie, sent_at, names: None }
    }

    /// An interleaved request (RFC 9769): as [`PendingRequest::new`], and
    /// naming the earlier exchange whose reply the server received at
    /// `server_receive` (that reply's receive timestamp, as its 64 bits).
    /// The receive field carries the cookie's complement, a second value an
    /// off-path attacker cannot guess, which an interleaved reply echoes as
    /// its origin.
    pub const fn interleaved(cookie: u64, sent_at: MonoInstant, server_receive: u64) -> Self {
        Self { cookie, sent_at, names: Some(server_receive) }
    }

    /// The random transmit timestamp the reply must echo.
    pub const fn cookie(&self) -> u64 {
        self.cookie
    }

    /// t1.
    pub const fn sent_at(&self) -> MonoInstant {
        self.sent_at
    }

    /// For an interleaved request, the server receive timestamp it names.
    pub const fn names(&self) -> Option<u64> {
        self.names
    }

    /// The request's 48 bytes, advertising poll exponent `poll`.
    pub fn to_bytes(&self, poll: i8) -> [u8; PACKET_LEN] {
        let mut packet = NtpPacket::client_request(self.cookie, poll);
        if let Some(server_receive) = self.names {
            packet.origin = packet::NtpTimestamp::from_bits(server_receive);
            packet.receive = packet::NtpTimestamp::from_bits(!self.cookie);
        }
        packet.encode()
    }

    /// How `reply` answers this request, if it echoes it at all: as origin,
    /// the cookie (basic) or, for an interleaved request, its complement.
    pub fn answer(&self, reply: &NtpPacket) -> Option<ReplyMode> {
        let origin = reply.origin.to_bits();
        if origin == self.cookie {
            Some(ReplyMode::Basic)
        } else if self.names.is_some() && origin == !self.cookie {
            Some(ReplyMode::Interleaved)
        } else {
            None
        }
    }

    /// Whether `reply` echoes this request's cookie as its origin (a basic answer).
    pub fn is_answered_by(&self, reply: &NtpPacket) -> bool {
        self.answer(reply) == Some(ReplyMode::Basic)
    }
}

/// What the kernel's packet timestamps add to one exchange (module doc,
/// "Kernel timestamps"): true durations the caller has bounded. The
/// default, all zero and no `departure_to_t4`, is "no kernel timestamps".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireTimes {
    /// At least this much true time passed between t1 and the request's
    /// departure (its kernel transmit timestamp).
    pub before_departure: Duration,
    /// At least this much true time passed between the reply's arrival (its
    /// kernel receive timestamp) and t4.
    pub after_arrival: Duration,
    /// At most this much true time passed between the request's departure
    /// and t4, when the kernel's timestamps bound it.
    pub departure_to_t4: Option<Duration>,
}

impl WireTimes {
    /// No kernel timestamps: the exchange is bounded by t1 and t4 alone.
    pub const NONE: Self =
        Self { before_departure: Duration::ZERO, after_arrival: Duration::ZERO, departure_to_t4: None };
}

/// A validated reply: the [`Sample`] and what the caller needs besides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NtpSample {
    /// True time, on the server's timescale, at reader instant t4.
    pub sample: Sample,
    /// NTP's round-trip delay δ = (t4 − t1) − (T3 − T2), at least zero;
    /// with kernel timestamps, the longest true time the request and the
    /// reply can have spent between departure and arrival, less T3 − T2.
    pub delay: Duration,
    /// The server's stratum (1..=15).
    pub stratum: u8,
    /// A leap second the server announced for the end of the current UTC day.
    /// NTP servers serve unsmeared UTC unless configured otherwise; the
    /// conversion into tsod's smeared timescale is the caller's.
    pub leap: Option<LeapSecond>,
    /// `(root_delay + δ)/2 + root_dispersion + 2^precision`, as checked
    /// against [`NtpParams::max_root_distance`].
    pub root_distance: Duration,
    /// The server's reference ID (its source, or its upstream's address hash).
    pub reference_id: ReferenceId,
}

/// Why a reply was not turned into a sample. Closed: every variant has a
/// counter in [`source::NtpCounters`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NtpReject {
    /// Shorter than the header.
    #[error("undecodable reply: {0}")]
    Malformed(#[from] PacketError),
    /// No request outstanding (late, duplicate or unsolicited reply).
    #[error("reply arrived with no request outstanding (late, duplicate or unsolicited); ignore it")]
    NoRequestOutstanding,
    /// The origin timestamp is not the outstanding request's cookie.
    #[error("reply does not echo the request's cookie as origin (spoofed or stale); ignore it")]
    OriginMismatch,
    /// Not mode 4.
    #[error("reply has mode {0}, not 4 (server); ignore it")]
    WrongMode(Mode),
    /// Not version 3 or 4.
    #[error("reply has NTP version {0}; only 3 and 4 are understood")]
    UnsupportedVersion(u8),
    /// Stratum 0: a kiss-o'-death, with its code.
    #[error("kiss-o'-death {0}: RATE means poll less often, DENY and RSTR mean stop polling this server")]
    KissOfDeath(KissCode),
    /// Stratum 16 (unsynchronized) or above.
    #[error("stratum {0}: the server is unsynchronized; use another")]
    BadStratum(u8),
    /// Leap indicator 3.
    #[error("leap indicator 3: the server's clock is unsynchronized; use another")]
    Unsynchronized,
    /// Transmit timestamp zero.
    #[error("transmit timestamp is zero: the reply carries no time")]
    ZeroTransmit,
    /// Receive timestamp zero.
    #[error("receive timestamp is zero: the reply carries no time")]
    ZeroReceive,
    /// Reference timestamp zero: the server's clock was never set.
    #[error("reference timestamp is zero: the server's clock was never set; use another")]
    NoReferenceTime,
    /// Reference timestamp after the transmit timestamp, by more than two
    /// readings' precision (2·2^precision).
    #[error("reference timestamp {0:?} after transmit: the server contradicts itself")]
    ReferenceAfterTransmit(Duration),
    /// t4 before t1 on the reader clock.
    #[error("t4 is before t1 on the reader clock: the caller passed the wrong instants")]
    ReplyBeforeRequest,
    /// t4 − t1 above [`NtpParams::max_round_trip`].
    #[error("round trip of {0:?} exceeds the configured maximum")]
    RoundTripTooLong(Duration),
    /// T3 before T2 by more than two readings' precision (2·2^precision).
    #[error("server transmitted {0:?} before it received: the server contradicts itself")]
    TransmitBeforeReceive(Duration),
    /// The server's residence T3 − T2, even at its slowest, is longer than
    /// our whole round trip at its fastest, beyond what the precisions of the
    /// four readings explain: one of the two clocks is broken.
    #[error("server held the request longer than our whole round trip: a clock is broken")]
    ResidenceExceedsRoundTrip,
    /// Root distance above [`NtpParams::max_root_distance`] (absurd root
    /// delay, root dispersion or precision included).
    #[error("root distance {0:?} exceeds the configured maximum (NTP's MAXDIST is 1.5 s)")]
    RootDistanceTooLarge(Duration),
    /// The bound falls outside the [`Timestamp`] range (1970..2554): the
    /// pivot is more than 68 years from the server's time, or the server is.
    #[error("the reply's time is outside 1970..2554 when resolved against the pivot; check the pivot")]
    OutOfRange,
}

impl NtpReject {
    /// How many kinds of rejection there are.
    pub const COUNT: usize = 18;

    /// The kebab-case name of each kind, in [`NtpReject::index`] order.
    pub const NAMES: [&'static str; Self::COUNT] = [
        "malformed",
        "no-request-outstanding",
        "origin-mismatch",
        "wrong-mode",
        "unsupported-version",
        "kiss-of-death",
        "bad-stratum",
        "unsynchronized",
        "zero-transmit",
        "zero-receive",
        "no-reference-time",
        "reference-after-transmit",
        "reply-before-request",
        "round-trip-too-long",
        "transmit-before-receive",
        "residence-exceeds-round-trip",
        "root-distance-too-large",
        "out-of-range",
    ];

    /// A dense index (0..[`NtpReject::COUNT`]) for counting, ignoring any data.
    pub const fn index(&self) -> usize {
        match self {
            Self::Malformed(_) => 0,
            Self::NoRequestOutstanding => 1,
            Self::OriginMismatch => 2,
            Self::WrongMode(_) => 3,
            Self::UnsupportedVersion(_) => 4,
            Self::KissOfDeath(_) => 5,
            Self::BadStratum(_) => 6,
            Self::Unsynchronized => 7,
            Self::ZeroTransmit => 8,
            Self::ZeroReceive => 9,
            Self::NoReferenceTime => 10,
            Self::ReferenceAfterTransmit(_) => 11,
            Self::ReplyBeforeRequest => 12,
            Self::RoundTripTooLong(_) => 13,
            Self::TransmitBeforeReceive(_) => 14,
            Self::ResidenceExceedsRoundTrip => 15,
            Self::RootDistanceTooLarge(_) => 16,
            Self::OutOfRange => 17,
        }
    }

    /// The kebab-case name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        Self::NAMES.get(self.index()).copied().unwrap_or("unknown")
    }
}

/// Validates `reply` as the answer to `request`, received at reader instant
/// `t4`, and returns the sample it backs. `pivot` is an approximate current
/// time (within 68 years) that resolves the NTP era.
///
/// The caller must pass each request to this at most once per answer it
/// accepts: [`source::NtpSource`] does that bookkeeping (and rejects replays).
pub fn sample_from_reply(
    request: &PendingRequest,
    reply: &[u8],
    t4: MonoInstant,
    pivot: Timestamp,
    params: &NtpParams,
) -> Result<NtpSample, NtpReject> {
    let packet = NtpPacket::decode(reply)?;
    if !request.is_answered_by(&packet) {
        return Err(NtpReject::OriginMismatch);
    }
    sample_from_answer(request, &packet, t4, pivot, params, &WireTimes::NONE)
}

/// [`sample_from_reply`] for a decoded packet already known to echo the
/// cookie, with what the kernel's timestamps add (`wire`).
fn sample_from_answer(
    request: &PendingRequest,
    packet: &NtpPacket,
    t4: MonoInstant,
    pivot: Timestamp,
    params: &NtpParams,
    wire: &WireTimes,
) -> Result<NtpSample, NtpReject> {
    check_header(packet)?;
    // Two readings of the server's clock may disagree by 2·p_s (P) and two of
    // ours by 2·p_l, so the consistency checks allow that much.
    let precision = log2_seconds_ceil(packet.precision).as_nanos();
    if let Some(by) = later_beyond(packet.reference_time.fixed_since(packet.transmit), precision.saturating_mul(2)) {
        return Err(NtpReject::ReferenceAfterTransmit(by));
    }

    // The local span t4 − t1 and the server's residence T3 − T2.
    let span = t4.as_nanos().checked_sub(request.sent_at.as_nanos()).ok_or(NtpReject::ReplyBeforeRequest)?;
    if Duration::from_nanos(span) > params.max_round_trip {
        return Err(NtpReject::RoundTripTooLong(Duration::from_nanos(span)));
    }
    let residence_fixed = packet.transmit.fixed_since(packet.receive);
    if let Some(by) = later_beyond(-residence_fixed, precision.saturating_mul(2)) {
        return Err(NtpReject::TransmitBeforeReceive(by));
    }
    let (span, residence) = (u128::from(span), fixed_to_nanos_floor(residence_fixed.max(0)).unsigned_abs());
    let (rho_local, rho_server) = (rate(params.local_drift), rate(params.server_drift));
    // ⌈(t4 − t1)(1 + ρ_l)⌉, ⌊W⁺(1 − ρ_s)⌋ and ⌈p_l(1 + ρ_l)⌉.
    let span_true_max = span + (span * rho_local).div_ceil(BILLION);
    let residence_true_min = residence.saturating_sub((residence * rho_server).div_ceil(BILLION));
    let local_precision = params.local_precision.as_nanos().saturating_mul(BILLION + rho_local).div_ceil(BILLION);
    // θ(e*) − θ(e_out) at most, and θ(e*) − θ(e_in) at least (both the
    // reader's span alone without kernel timestamps).
    let mut span_true_max = span_true_max.saturating_sub(wire.before_departure.as_nanos());
    if let Some(d) = wire.departure_to_t4 {
        span_true_max = span_true_max.min(d.as_nanos());
    }
    let after_arrival = wire.after_arrival.as_nanos();
    // Beyond this the clocks contradict each other (and the interval would
    // be inverted: its width is span_true_max − after_arrival −
    // residence_true_min + 2λ).
    let tolerance = precision.saturating_add(local_precision).saturating_mul(2);
    if residence_true_min.saturating_add(after_arrival) > span_true_max.saturating_add(tolerance) {
        return Err(NtpReject::ResidenceExceedsRoundTrip);
    }

    let delay = if *wire == WireTimes::NONE {
        span.saturating_sub(residence)
    } else {
        span_true_max.saturating_sub(after_arrival).saturating_sub(residence)
    };
    let root_delay = u128::from(packet.root_delay.nanos_ceil(1));
    let root_dispersion = u128::from(packet.root_dispersion.nanos_ceil(1));
    let root_distance = (root_delay + delay).div_ceil(2) + root_dispersion + precision;
    if root_distance > params.max_root_distance.as_nanos() {
        return Err(NtpReject::RootDistanceTooLarge(duration_from_nanos(root_distance)));
    }

    // λ = root_delay/2 + root_dispersion + p_s + p_l(1 + ρ_l), rounded up.
    let lambda = u128::from(packet.root_delay.nanos_ceil(2)) + root_dispersion + precision + local_precision;
    let (lambda, span_true_max, residence_true_min, after_arrival) =
        (signed(lambda)?, signed(span_true_max)?, signed(residence_true_min)?, signed(after_arrival)?);

    let t3 = packet.transmit.unwrap_near(pivot);
    let earliest =
        fixed_to_unix_nanos_floor(t3).and_then(|t| t.checked_sub(lambda)).and_then(|t| t.checked_add(after_arrival));
    let latest = fixed_to_unix_nanos_ceil(t3)
        .and_then(|t| t.checked_add(span_true_max))
        .and_then(|t| t.checked_sub(residence_true_min))
        .and_then(|t| t.checked_add(lambda));
    let interval = earliest
        .zip(latest)
        .and_then(|(e, l)| TimeInterval::new(timestamp(e)?, timestamp(l)?).ok())
        .ok_or(NtpReject::OutOfRange)?;

    Ok(NtpSample {
        sample: Sample { at: t4, interval },
        delay: duration_from_nanos(delay),
        stratum: packet.stratum,
        leap: packet.leap.leap_second(),
        root_distance: duration_from_nanos(root_distance),
        reference_id: packet.reference_id,
    })
}

/// The checks that need no arithmetic, in the order they are reported.
fn check_header(packet: &NtpPacket) -> Result<(), NtpReject> {
    if packet.mode != Mode::Server {
        return Err(NtpReject::WrongMode(packet.mode));
    }
    if !matches!(packet.version, 3 | 4) {
        return Err(NtpReject::UnsupportedVersion(packet.version));
    }
    if packet.stratum == 0 {
        return Err(NtpReject::KissOfDeath(packet.reference_id.kiss_code()));
    }
    if packet.stratum >= 16 {
        return Err(NtpReject::BadStratum(packet.stratum));
    }
    if packet.leap == LeapIndicator::Unsynchronized {
        return Err(NtpReject::Unsynchronized);
    }
    if packet.transmit.is_zero() {
        return Err(NtpReject::ZeroTransmit);
    }
    if packet.receive.is_zero() {
        return Err(NtpReject::ZeroReceive);
    }
    if packet.reference_time.is_zero() {
        return Err(NtpReject::NoReferenceTime);
    }
    Ok(())
}

/// For `fixed` = a − b in 32.32 fixed point: how much later a is than b, if
/// by more than `tolerance_nanos`.
fn later_beyond(fixed: i128, tolerance_nanos: u128) -> Option<Duration> {
    let later = fixed_to_nanos_floor(fixed);
    // Exact comparison: fixed / 2³² s > tolerance ⇔ fixed · 10⁹ > tolerance · 2³².
    let tolerance_fixed = i128::try_from(tolerance_nanos.saturating_mul(1 << 32)).unwrap_or(i128::MAX);
    (fixed.saturating_mul(1_000_000_000) > tolerance_fixed).then(|| duration_from_nanos(later.unsigned_abs()))
}

/// A drift bound as a fraction of 10⁹, clamped to 0..=10⁹ (a negative bound
/// would narrow the interval; the clamp only ever widens).
fn rate(ppb: Ppb) -> u128 {
    u128::try_from(ppb.get().clamp(0, 1_000_000_000)).unwrap_or(BILLION)
}

fn signed(nanos: u128) -> Result<i128, NtpReject> {
    i128::try_from(nanos).map_err(|_| NtpReject::OutOfRange)
}

fn timestamp(unix_nanos: i128) -> Option<Timestamp> {
    u64::try_from(unix_nanos).ok().map(Timestamp::from_nanos)
}

/// Nanoseconds as a [`Duration`], saturating at [`Duration::MAX`].
fn duration_from_nanos(nanos: u128) -> Duration {
    let subsec = u32::try_from(nanos % BILLION).unwrap_or(0);
    u64::try_from(nanos / BILLION).map_or(Duration::MAX, |secs| Duration::new(secs, subsec))
}
