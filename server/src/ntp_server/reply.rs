//! Building replies (sans-IO; every instant is an argument). A time reply
//! is made in two steps, so that its transmit timestamp is read as late as
//! possible: [`prepare`] at receipt (every field but the transmit time and
//! the root dispersion), [`Prepared::finish`] just before sending. Both
//! use the one published anchor read at receipt, so the two timestamps
//! are consistent (the receive one never after the transmit one). The
//! module doc of [`crate::ntp_server`] derives why the fields are a bound.

use std::time::Duration;

use tsod_proto::shm::{Anchor, PublishedState};
use tsod_proto::{MonoInstant, TimeInterval, Timestamp};

use super::identity::{Identity, UNSYNCHRONIZED_STRATUM};
use super::request::Request;
use crate::sources::ntp::packet::{LeapIndicator, NtpPacket, NtpShort, NtpTimestamp};
use crate::sources::ntp::{KissCode, Mode, ReferenceId};

/// What the server says about itself, refreshed at every published tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerView {
    /// The published state (the site's bound).
    pub published: PublishedState,
    /// Stratum and reference ID.
    pub identity: Identity,
    /// When the bound last rested on agreeing sources (service time): the
    /// reference timestamp.
    pub reference_time: Timestamp,
    /// The precision field: log2 of the error of one reading, in seconds.
    pub precision: i8,
}

/// A reply prepared at receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prepared {
    /// A time reply, to be finished at sending.
    Time {
        /// The host's clock at receipt, should the bound go stale before sending.
        local_clock: Timestamp,
        /// Every field but the transmit timestamp and the root dispersion.
        packet: NtpPacket,
        /// The anchor both timestamps come from.
        anchor: Anchor,
        /// Half-width of the interval the receive timestamp was taken from.
        receive_half_width: Duration,
        /// The reference time (service time), kept exact until sending.
        reference_time: Timestamp,
    },
    /// No valid bound: leap indicator 3, no time.
    Unsynchronized(NtpPacket),
}

/// When a request was received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The reader clock, read after the request was received.
    pub at: MonoInstant,
    /// At least this much true time passed between the request's arrival
    /// (the kernel's receive timestamp) and `at`; zero without one.
    pub credit: Duration,
    /// The host's own (unsynchronized) clock then, for a reply that has no bound to give.
    pub local_clock: Timestamp,
    /// The host slept since the anchor (SPEC.md §5.6): it cannot be carried to now.
    pub suspended: bool,
}

/// The reply to `request`, received as `receipt` says.
pub fn prepare(request: &Request, view: &ServerView, receipt: &Receipt) -> Prepared {
    let anchor = view.published.anchor;
    let unsynchronized = Prepared::Unsynchronized(unsynchronized(request, view.precision, receipt.local_clock));
    let (received_at, credit, suspended) = (receipt.at, receipt.credit, receipt.suspended);
    if suspended || view.identity.stratum >= UNSYNCHRONIZED_STRATUM {
        return unsynchronized;
    }
    let Ok(interval) = anchor.interval_at(received_at) else { return unsynchronized };
    let receive = interval.midpoint().saturating_sub(credit);
    let packet = NtpPacket {
        leap: LeapIndicator::NoWarning,
        version: request.version,
        mode: Mode::Server,
        stratum: view.identity.stratum,
        poll: request.poll,
        precision: view.precision,
        root_delay: NtpShort::default(),
        root_dispersion: NtpShort::default(),
        reference_id: view.identity.reference_id,
        reference_time: NtpTimestamp::ZERO,
        origin: request.transmit,
        receive: NtpTimestamp::from_timestamp(receive),
        transmit: NtpTimestamp::ZERO,
    };
    Prepared::Time {
        local_clock: receipt.local_clock,
        packet,
        anchor,
        receive_half_width: interval.half_width(),
        reference_time: view.reference_time,
    }
}

impl Prepared {
    /// The reply to send, its transmit timestamp taken at reader instant
    /// `transmit_at` (just before sending). A bound that went stale since
    /// receipt, or whose half-width the 16.16 root dispersion cannot carry,
    /// gives the unsynchronized reply instead. `local_clock` reads the
    /// host's own clock, called only for an unsynchronized reply (its
    /// transmit timestamp).
    pub fn finish(self, transmit_at: MonoInstant, local_clock: impl FnOnce() -> Timestamp) -> NtpPacket {
        let (packet, anchor, receive_half_width, reference_time, received) = match self {
            Self::Unsynchronized(packet) => {
                return NtpPacket { transmit: NtpTimestamp::from_timestamp(local_clock()), ..packet };
            }
            Self::Time { packet, anchor, receive_half_width, reference_time, local_clock: received } => {
                (packet, anchor, receive_half_width, reference_time, received)
            }
        };
        let request = Request { version: packet.version, poll: packet.poll, transmit: packet.origin };
        let give_up = |local_clock: Timestamp| NtpPacket {
            transmit: NtpTimestamp::from_timestamp(local_clock),
            ..unsynchronized(&request, packet.precision, received)
        };
        let Ok(interval) = anchor.interval_at(transmit_at) else { return give_up(local_clock()) };
        let Some(root_dispersion) = root_dispersion(receive_half_width, &interval) else {
            return give_up(local_clock());
        };
        let transmit = interval.midpoint();
        // A new selection may move the midpoint back past the last update.
        let reference_time = NtpTimestamp::from_timestamp(reference_time.min(transmit));
        NtpPacket { root_dispersion, transmit: NtpTimestamp::from_timestamp(transmit), reference_time, ..packet }
    }
}

/// The root dispersion that makes both timestamps a bound: the larger
/// half-width, plus 1 ns for rounding the timestamps down to 2⁻³² s,
/// rounded up to 2⁻¹⁶ s; `None` beyond 65 536 s.
pub fn root_dispersion(receive_half_width: Duration, transmit: &TimeInterval) -> Option<NtpShort> {
    let nanos = receive_half_width.max(transmit.half_width()).as_nanos().checked_add(1)?;
    let units = (nanos << 16).div_ceil(1_000_000_000);
    u32::try_from(units).ok().map(NtpShort::from_bits)
}

/// The reply when tsod has no valid bound: leap indicator 3 and stratum
/// 16 (unsynchronized), reference ID and time zero, the largest root
/// dispersion. As chrony and ntpd do when unsynchronized, its receive (and,
/// once finished, transmit) timestamps read the host's own clock,
/// `local_clock`: not a bound and not claimed as one, but a well-formed
/// reply, so a client reads the leap indicator and the stratum and says
/// why it will not follow (a reply without timestamps is discarded as
/// bogus before its header is looked at).
pub fn unsynchronized(request: &Request, precision: i8, local_clock: Timestamp) -> NtpPacket {
    NtpPacket {
        leap: LeapIndicator::Unsynchronized,
        version: request.version,
        mode: Mode::Server,
        stratum: UNSYNCHRONIZED_STRATUM,
        poll: request.poll,
        precision,
        root_delay: NtpShort::default(),
        root_dispersion: NtpShort::from_bits(u32::MAX),
        reference_id: ReferenceId::default(),
        reference_time: NtpTimestamp::ZERO,
        origin: request.transmit,
        receive: NtpTimestamp::from_timestamp(local_clock),
        transmit: NtpTimestamp::from_timestamp(local_clock),
    }
}

/// A `RATE` kiss-o'-death (RFC 5905 §7.4): stratum 0, leap indicator 3,
/// the poll exponent raised to at least `min_poll`, and, as ntpd sends
/// it, the request's transmit timestamp in every timestamp field, so it
/// carries no time of ours.
pub fn kiss(request: &Request, min_poll: i8, precision: i8) -> NtpPacket {
    NtpPacket {
        leap: LeapIndicator::Unsynchronized,
        version: request.version,
        mode: Mode::Server,
        stratum: 0,
        poll: request.poll.max(min_poll),
        precision,
        root_delay: NtpShort::default(),
        root_dispersion: NtpShort::default(),
        reference_id: ReferenceId(KissCode::RATE.0),
        reference_time: request.transmit,
        origin: request.transmit,
        receive: request.transmit,
        transmit: request.transmit,
    }
}

/// The precision field for readings that may be off by `resolution`: the
/// smallest `e` with 2^e s ≥ `resolution` (−29 for 1 ns), within −32 … 0.
pub fn precision_of(resolution: Duration) -> i8 {
    let nanos = resolution.as_nanos().max(1);
    (-32..=0i8).find(|e| nanos << u32::from(e.unsigned_abs()) <= 1_000_000_000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;
    use tsod_proto::{ClockStatus, DriftModel, Ppb};

    const NOW: u64 = 1_000_000_000_000; // reader clock, ns
    const TRUE: u64 = 1_800_000_000_000_000_000; // service time at NOW

    fn view(status: ClockStatus, half_width: Duration) -> ServerView {
        let interval = TimeInterval::around(Timestamp::from_nanos(TRUE), half_width);
        let rates = DriftModel::symmetric(Ppb::from_ppm(100)).unwrap().rates();
        let anchor = Anchor {
            reference: MonoInstant::from_nanos(NOW),
            interval,
            rates,
            status,
            valid_until: MonoInstant::from_nanos(NOW + 1_000_000_000),
        };
        ServerView {
            published: PublishedState {
                anchor,
                disruption_count: 0,
                reference_boottime: MonoInstant::from_nanos(NOW),
                writer_instance: 1,
            },
            identity: Identity { stratum: 1, reference_id: ReferenceId(*b"PPS\0") },
            reference_time: Timestamp::from_nanos(TRUE - 50_000_000),
            precision: -29,
        }
    }

    fn request() -> Request {
        Request { version: 3, poll: -4, transmit: NtpTimestamp::from_bits(0xDEAD_BEEF_0000_0001) }
    }

    fn at(offset_ns: u64) -> MonoInstant {
        MonoInstant::from_nanos(NOW + offset_ns)
    }

    /// The host's own clock: 5 s fast.
    const LOCAL: u64 = TRUE + 5_000_000_000;

    /// The reply to `request()` received at `received` (with `credit`),
    /// finished at `sent`.
    fn answer(
        v: &ServerView,
        received: MonoInstant,
        credit: Duration,
        suspended: bool,
        sent: MonoInstant,
    ) -> NtpPacket {
        let receipt = Receipt { at: received, credit, local_clock: Timestamp::from_nanos(LOCAL), suspended };
        prepare(&request(), v, &receipt).finish(sent, || Timestamp::from_nanos(LOCAL + 1_000))
    }

    fn time_of(t: NtpTimestamp) -> Timestamp {
        t.to_timestamp_floor(Timestamp::from_nanos(TRUE)).unwrap()
    }

    #[test]
    fn a_synchronized_reply_carries_the_midpoint_and_the_half_width() {
        let v = view(ClockStatus::Synchronized, Duration::from_micros(20));
        let reply = answer(&v, at(0), Duration::ZERO, false, at(30_000));
        assert_eq!((reply.leap, reply.version, reply.mode), (LeapIndicator::NoWarning, 3, Mode::Server));
        assert_eq!(
            (reply.stratum, reply.reference_id, reply.poll, reply.precision),
            (1, ReferenceId(*b"PPS\0"), -4, -29)
        );
        assert_eq!(reply.origin, request().transmit);
        assert_eq!(reply.root_delay.to_bits(), 0);
        // Receive: the midpoint at receipt; transmit: at 30 µs later.
        let (t2, t3) = (time_of(reply.receive), time_of(reply.transmit));
        assert!(t2.as_nanos().abs_diff(TRUE) <= 1, "{t2:?}");
        assert!(t3.as_nanos().abs_diff(TRUE + 30_000) <= 1, "{t3:?}");
        // Root dispersion ≥ the half-width at sending (20 µs + 100 ppm of 30 µs), in 2⁻¹⁶ s units.
        let at_send = v.published.anchor.interval_at(at(30_000)).unwrap();
        let dispersion = reply.root_dispersion.to_duration_ceil();
        assert!(dispersion >= at_send.half_width() && dispersion < at_send.half_width() + Duration::from_micros(16));
        // So each timestamp ± the root dispersion covers the bound at its instant.
        assert!(
            t3.saturating_sub(dispersion) <= at_send.earliest() && at_send.latest() <= t3.saturating_add(dispersion)
        );
        let at_receipt = v.published.anchor.interval_at(at(0)).unwrap();
        assert!(t2.saturating_sub(dispersion) <= at_receipt.earliest());
        assert!(at_receipt.latest() <= t2.saturating_add(dispersion));
        assert!(time_of(reply.reference_time) <= t3);
    }

    #[test]
    fn the_kernel_credit_moves_only_the_receive_timestamp_back() {
        let v = view(ClockStatus::Degraded, Duration::from_micros(5));
        let credit = Duration::from_micros(12);
        let reply = answer(&v, at(0), credit, false, at(40_000));
        let (t2, t3) = (time_of(reply.receive), time_of(reply.transmit));
        assert!(t2.as_nanos().abs_diff(TRUE - 12_000) <= 1, "{t2:?}");
        assert!(t2 < t3);
        assert_eq!(reply.leap, LeapIndicator::NoWarning, "degraded is a valid bound");
    }

    #[test]
    fn no_valid_bound_gives_leap_3_and_no_time() {
        for status in [ClockStatus::Unsynchronized, ClockStatus::Disrupted] {
            let reply = answer(&view(status, Duration::ZERO), at(0), Duration::ZERO, false, at(1));
            assert_eq!((reply.leap, reply.stratum), (LeapIndicator::Unsynchronized, 16), "{status}");
            assert_eq!((reply.reference_id, reply.root_dispersion.to_bits()), (ReferenceId([0; 4]), u32::MAX));
            // The host's own clock, well-formed, and no bound claimed.
            assert!(reply.reference_time.is_zero());
            assert!(time_of(reply.receive).as_nanos().abs_diff(LOCAL) <= 1);
            assert!(time_of(reply.transmit).as_nanos().abs_diff(LOCAL + 1_000) <= 1);
            assert_eq!(reply.origin, request().transmit);
            assert_eq!(reply.version, 3);
        }
        let good = view(ClockStatus::Synchronized, Duration::from_micros(1));
        // The host slept since the anchor.
        let slept = answer(&good, at(0), Duration::ZERO, true, at(1));
        assert_eq!(slept.leap, LeapIndicator::Unsynchronized);
        // The anchor went stale between receipt and sending.
        let stale = answer(&good, at(0), Duration::ZERO, false, at(2_000_000_000));
        assert_eq!(stale.leap, LeapIndicator::Unsynchronized);
        // A holdover bound wider than the 16.16 field.
        let huge = view(ClockStatus::FreeRunning, Duration::from_secs(70_000));
        let reply = answer(&huge, at(0), Duration::ZERO, false, at(1));
        assert_eq!(reply.leap, LeapIndicator::Unsynchronized);
        let free = view(ClockStatus::FreeRunning, Duration::from_millis(3));
        assert_eq!(answer(&free, at(0), Duration::ZERO, false, at(1)).leap, LeapIndicator::NoWarning);
        // Upstreams at stratum 15 leave none to give.
        let deep = ServerView { identity: Identity { stratum: 16, ..good.identity }, ..good };
        assert_eq!(answer(&deep, at(0), Duration::ZERO, false, at(1)).leap, LeapIndicator::Unsynchronized);
    }

    #[test]
    fn root_dispersion_rounds_up_and_covers_the_wider_end() {
        let point = TimeInterval::point(Timestamp::from_nanos(TRUE));
        assert_eq!(root_dispersion(Duration::ZERO, &point).unwrap().to_bits(), 1, "1 ns rounds up to one unit");
        // 2⁻¹⁶ s = 15 258.79 ns: with the 1 ns added, 15 257 ns fits in one unit, 15 258 ns does not.
        assert_eq!(root_dispersion(Duration::from_nanos(15_257), &point).unwrap().to_bits(), 1);
        assert_eq!(root_dispersion(Duration::from_nanos(15_258), &point).unwrap().to_bits(), 2);
        let wide = TimeInterval::around(Timestamp::from_nanos(TRUE), Duration::from_secs(1));
        assert_eq!(root_dispersion(Duration::ZERO, &wide).unwrap().to_bits(), 65_537);
        assert_eq!(root_dispersion(Duration::from_secs(65_536), &point), None);
        for ns in [0u64, 1, 999, 15_259, 1_234_567, 3_000_000_000] {
            let d = root_dispersion(Duration::from_nanos(ns), &point).unwrap().to_duration_ceil();
            assert!(d > Duration::from_nanos(ns) && d <= Duration::from_nanos(ns + 15_260), "{ns}: {d:?}");
        }
    }

    #[test]
    fn a_kiss_carries_rate_stratum_0_and_no_time() {
        let k = kiss(&request(), -2, -29);
        assert_eq!((k.stratum, k.reference_id.kiss_code(), k.leap), (0, KissCode::RATE, LeapIndicator::Unsynchronized));
        assert_eq!(k.poll, -2, "raised to the limit");
        assert_eq!(kiss(&Request { poll: 6, ..request() }, -2, -29).poll, 6);
        for t in [k.origin, k.receive, k.transmit, k.reference_time] {
            assert_eq!(t, request().transmit);
        }
    }

    #[test]
    fn precision_is_the_first_power_of_two_at_least_the_resolution() {
        assert_eq!(precision_of(Duration::from_nanos(1)), -29);
        assert_eq!(precision_of(Duration::ZERO), -29);
        assert_eq!(precision_of(Duration::from_nanos(2)), -28);
        assert_eq!(precision_of(Duration::from_micros(1)), -19);
        assert_eq!(precision_of(Duration::from_secs(5)), 0);
    }
}
