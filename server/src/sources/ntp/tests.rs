//! Reply validation and the bound, against a simulated server whose answers
//! are derived from a known true time (see also the packet, filter and
//! source modules' own tests).

use core::time::Duration;

use proptest::prelude::*;
use tsod_proto::{MonoInstant, Ppb, Timestamp};

use super::packet::{KissCode, LeapIndicator, LeapSecond, Mode, NtpPacket, NtpShort, NtpTimestamp, ReferenceId};
use super::{NtpParams, NtpReject, NtpSample, PendingRequest, WireTimes, sample_from_answer, sample_from_reply};

const NANOS: i128 = 1_000_000_000;
const MS: u64 = 1_000_000;
/// The cookie every simulated request carries.
pub(super) const COOKIE: u64 = 0x5EED_0123_4567_89AB;
/// 2026-09-21T13:33:20Z.
const NOW_2026: i128 = 1_790_000_000 * NANOS;
/// Start of NTP era 1: 2036-02-07T06:28:16Z.
const ERA_1: i128 = 2_085_978_496 * NANOS;
/// ⌈(2³² − 1) / 2¹⁶ s⌉ / 2, rounded up: half the largest root delay, in ns.
const ROOT_DELAY_MAX_HALF: u64 = 32_767_999_992_371;
/// 1/512 s: the largest unit in which nanoseconds convert exactly to 32.32.
const U: u64 = 1_953_125;

/// One simulated exchange: what really happened, and the clocks' errors.
#[derive(Clone, Copy, Debug)]
pub(super) struct Exchange {
    /// θ(e1), true Unix nanoseconds when we read t1.
    pub(super) theta1: i128,
    /// M(e1): the reader clock at e1.
    pub(super) m1: u64,
    /// True one-way delay to the server, residence there, delay back (ns).
    pub(super) out: u64,
    /// θ(e3) − θ(e2).
    pub(super) residence: u64,
    /// θ(e4) − θ(e3).
    pub(super) back: u64,
    /// S(e3) − θ(e3): the server's clock error, within its root distance.
    pub(super) server_error: i128,
    /// The server clock's rate error over the residence, ppb.
    pub(super) server_rate: i64,
    /// True nanoseconds per reader nanosecond, minus one, in ppb.
    pub(super) local_rate: i64,
    /// T2 − S(e2) and T3 − S(e3) in 2⁻³² s units, on top of rounding S down
    /// to 32.32 (which takes off less than one unit).
    pub(super) read_error: [i128; 2],
    /// t1 − M(e1) (ns).
    pub(super) t1_error: i64,
    /// The packet fields the server fills in.
    pub(super) root_delay: u32,
    /// Root dispersion, 16.16.
    pub(super) root_dispersion: u32,
    /// Log2 seconds.
    pub(super) precision: i8,
    /// Leap indicator.
    pub(super) leap: LeapIndicator,
}

impl Exchange {
    /// Perfect clocks, an exactly right server, in 2026.
    pub(super) fn exact(out: u64, residence: u64, back: u64) -> Self {
        Self {
            theta1: NOW_2026,
            m1: 1_000_000 * MS,
            out,
            residence,
            back,
            server_error: 0,
            server_rate: 0,
            local_rate: 0,
            read_error: [0, 0],
            t1_error: 0,
            root_delay: 0x100,     // 3.90625 ms
            root_dispersion: 0x80, // 1.953125 ms
            precision: -20,
            leap: LeapIndicator::NoWarning,
        }
    }

    /// θ(e3) and θ(e4).
    fn theta3_4(&self) -> (i128, i128) {
        let theta3 = self.theta1 + i128::from(self.out) + i128::from(self.residence);
        (theta3, theta3 + i128::from(self.back))
    }

    /// True time at reader instant t4.
    pub(super) fn truth(&self) -> Timestamp {
        Timestamp::from_nanos(u64::try_from(self.theta3_4().1).unwrap())
    }

    /// t4: the reader clock after θ(e4) − θ(e1) true ns at the local rate,
    /// rounded up so that the true span never exceeds m·(1 + local_rate).
    pub(super) fn t4(&self) -> MonoInstant {
        let true_span = self.theta3_4().1 - self.theta1;
        let reader_span = -(-true_span * NANOS).div_euclid(NANOS + i128::from(self.local_rate));
        MonoInstant::from_nanos(self.m1 + u64::try_from(reader_span).unwrap())
    }

    /// The request, with t1 read `t1_error` off.
    pub(super) fn request(&self) -> PendingRequest {
        PendingRequest::new(COOKIE, MonoInstant::from_nanos(self.m1.checked_add_signed(self.t1_error).unwrap()))
    }

    /// The server's reply.
    pub(super) fn packet(&self) -> NtpPacket {
        let s3 = self.theta3_4().0 + self.server_error;
        let s2 = s3 - (i128::from(self.residence) * (NANOS + i128::from(self.server_rate))).div_euclid(NANOS);
        let [e2, e3] = self.read_error;
        NtpPacket {
            leap: self.leap,
            version: 4,
            mode: Mode::Server,
            stratum: 2,
            poll: 0,
            precision: self.precision,
            root_delay: NtpShort::from_bits(self.root_delay),
            root_dispersion: NtpShort::from_bits(self.root_dispersion),
            reference_id: ReferenceId([192, 0, 2, 1]),
            reference_time: ntp(s3 - 64 * NANOS),
            origin: NtpTimestamp::from_bits(COOKIE),
            receive: ntp_plus(s2, e2),
            transmit: ntp_plus(s3, e3),
        }
    }

    /// A pivot one day off the truth.
    pub(super) fn pivot(&self) -> Timestamp {
        Timestamp::from_nanos(self.truth().as_nanos() - 86_400 * 1_000_000_000)
    }

    /// The reply judged with `params`.
    pub(super) fn judge(&self, params: &NtpParams) -> Result<NtpSample, NtpReject> {
        sample_from_reply(&self.request(), &self.packet().encode(), self.t4(), self.pivot(), params)
    }
}

/// Unix nanoseconds (before 1970 too) as an NTP timestamp, rounded down.
fn ntp(unix_nanos: i128) -> NtpTimestamp {
    ntp_plus(unix_nanos, 0)
}

/// As [`ntp`], plus `units` of 2⁻³² s.
fn ntp_plus(unix_nanos: i128, units: i128) -> NtpTimestamp {
    let fixed = ((unix_nanos + 2_208_988_800 * NANOS) << 32).div_euclid(NANOS) + units;
    NtpTimestamp::from_bits(u64::try_from(fixed.rem_euclid(1 << 64)).unwrap())
}

/// Nanoseconds in 2⁻³² s units, rounded down.
fn units(nanos: i128) -> i128 {
    (nanos << 32) / NANOS
}

fn nanos_between(a: Timestamp, b: Timestamp) -> i128 {
    i128::from(b.as_nanos()) - i128::from(a.as_nanos())
}

#[test]
fn exact_server_gives_the_derived_interval_to_the_nanosecond() {
    // Multiples of 1/512 s, so no 32.32 rounding: every number below is exact.
    let ex = Exchange::exact(3 * U, U, 3 * U);
    let s = ex.judge(&NtpParams::default()).unwrap();
    let t3 = Timestamp::from_nanos(u64::try_from(NOW_2026).unwrap() + 4 * U);
    // λ = 1 953 125 (root delay / 2) + 1 953 125 (root dispersion)
    //   + 954 (2⁻²⁰ s) + 1 001 (1 µs · (1 + 100 ppm))
    let lambda = 3_908_205;
    // ⌈(t4 − t1)(1 + 100 ppm)⌉ = 13 671 875 + 1 368; ⌊W(1 − 15 ppm)⌋ = 1 953 125 − 30
    let (span_max, residence_min) = (13_673_243, 1_953_095);
    assert_eq!(s.sample.at, ex.t4());
    assert_eq!(s.sample.interval.earliest().as_nanos(), t3.as_nanos() - lambda);
    assert_eq!(s.sample.interval.latest().as_nanos(), t3.as_nanos() + span_max - residence_min + lambda);
    assert!(s.sample.interval.contains(ex.truth()));
    // Half-width δ̂/2 + λ around T3 + δ̂/2, δ̂ = δ + ρ_l·span + ρ_s·W.
    let delta_hat = span_max - residence_min;
    assert_eq!(s.sample.interval.half_width(), Duration::from_nanos(delta_hat / 2 + lambda));
    assert_eq!(s.sample.interval.midpoint().as_nanos(), t3.as_nanos() + delta_hat / 2);
    assert_eq!(s.delay, Duration::from_nanos(6 * U));
    assert_eq!(s.root_distance, Duration::from_nanos((3_906_250 + 6 * U) / 2 + 1_953_125 + 954));
    assert_eq!((s.stratum, s.leap, s.reference_id), (2, None, ReferenceId([192, 0, 2, 1])));
}

#[test]
fn asymmetric_paths_are_covered_both_ways() {
    let params = NtpParams::default();
    // λ as above; drift terms: ⌈10.03 ms · 100 ppm⌉ = 1 003 ns, ⌈30 µs · 15 ppm⌉ = 1 ns.
    let lambda = 3_908_205;
    for (out, back) in [(MS, 9 * MS), (9 * MS, MS)] {
        let ex = Exchange::exact(out, 30_000, back);
        let i = ex.judge(&params).unwrap().sample.interval;
        assert!(i.contains(ex.truth()), "out {out} back {back}: {i} vs {}", ex.truth());
        // The truth sits `back` above the earliest end, `out` below the latest,
        // plus λ and the drift terms (±2 ns of 32.32 rounding).
        let below = nanos_between(i.earliest(), ex.truth());
        let above = nanos_between(ex.truth(), i.latest());
        assert!((0..=2).contains(&(below - i128::from(back) - lambda)), "below {below}");
        assert!((0..=2).contains(&(above - i128::from(out) - lambda - 1_003)), "above {above}");
    }
}

#[test]
fn a_server_at_the_edge_of_its_claim_is_still_covered_tightly() {
    let r = 3_906_250 / 2 + 1_953_125; // root_delay/2 + root_dispersion
    for error in [-r, r] {
        for (out, back) in [(10 * MS, 0), (0, 10 * MS)] {
            let mut ex = Exchange::exact(out, 20_000, back);
            ex.server_error = error;
            ex.local_rate = if error < 0 { 100_000 } else { -100_000 }; // at the drift bound
            ex.server_rate = if error < 0 { -15_000 } else { 15_000 };
            let i = ex.judge(&NtpParams::default()).unwrap().sample.interval;
            assert!(i.contains(ex.truth()), "error {error} out {out}: {i} vs {}", ex.truth());
            // Server fast by R and no way back: the truth is within the
            // precision terms (954 + 1 001 ns, plus rounding) of the earliest end.
            if error > 0 && back == 0 {
                assert!(nanos_between(i.earliest(), ex.truth()) <= 1_958, "{i}");
            }
            // Server slow by R, no way out, slowest local clock: as close to the latest end.
            if error < 0 && out == 0 {
                assert!(nanos_between(ex.truth(), i.latest()) <= 1_960, "{i}");
            }
        }
    }
}

#[test]
fn leap_warnings_and_version_3_pass_through() {
    for (leap, expected) in [
        (LeapIndicator::NoWarning, None),
        (LeapIndicator::InsertSecond, Some(LeapSecond::Insert)),
        (LeapIndicator::DeleteSecond, Some(LeapSecond::Delete)),
    ] {
        let ex = Exchange { leap, ..Exchange::exact(MS, 0, MS) };
        assert_eq!(ex.judge(&NtpParams::default()).unwrap().leap, expected);
    }
    let ex = Exchange::exact(MS, 0, MS);
    let mut p = ex.packet();
    p.version = 3;
    let s = sample_from_reply(&ex.request(), &p.encode(), ex.t4(), ex.pivot(), &NtpParams::default());
    assert!(s.unwrap().sample.interval.contains(ex.truth()));
}

#[test]
fn exchange_across_the_2036_era_rollover() {
    // T2 in era 0, T3 in era 1.
    let ex = Exchange { theta1: ERA_1 - 3 * i128::from(MS), ..Exchange::exact(2 * MS, 2 * MS, MS) };
    assert!(ex.packet().receive.to_bits() > ex.packet().transmit.to_bits(), "wire values wrapped");
    let year = 365 * 86_400 * 1_000_000_000u64;
    for pivot in [ex.truth().as_nanos() - 60 * year, ex.truth().as_nanos() - 1, ex.truth().as_nanos() + 60 * year] {
        let s = sample_from_reply(
            &ex.request(),
            &ex.packet().encode(),
            ex.t4(),
            Timestamp::from_nanos(pivot),
            &NtpParams::default(),
        )
        .unwrap();
        assert!(s.sample.interval.contains(ex.truth()), "pivot {pivot}: {}", s.sample.interval);
        assert!(s.sample.interval.width() < Duration::from_millis(20));
    }
}

/// The rejection of `ex`'s reply after `change` is applied to the packet.
fn rejection(ex: &Exchange, change: impl FnOnce(&mut NtpPacket)) -> NtpReject {
    let mut p = ex.packet();
    change(&mut p);
    sample_from_reply(&ex.request(), &p.encode(), ex.t4(), ex.pivot(), &NtpParams::default()).unwrap_err()
}

#[test]
fn every_rejection_reason() {
    // Exact multiples of 1/512 s: δ = 6U, W = U, span 7U.
    let ex = Exchange::exact(3 * U, U, 3 * U);
    let params = NtpParams::default();
    assert!(ex.judge(&params).is_ok(), "the unmodified reply is good");
    let reply = ex.packet().encode();
    let too_short = sample_from_reply(&ex.request(), &reply[..47], ex.t4(), ex.pivot(), &params);
    assert_eq!(too_short.map_err(|r| r.name()), Err("malformed"));

    type Change = Box<dyn FnOnce(&mut NtpPacket)>;
    let cases: Vec<(NtpReject, Change)> = vec![
        (NtpReject::OriginMismatch, Box::new(|p| p.origin = NtpTimestamp::from_bits(COOKIE ^ 1))),
        (NtpReject::WrongMode(Mode::Client), Box::new(|p| p.mode = Mode::Client)),
        (NtpReject::WrongMode(Mode::Broadcast), Box::new(|p| p.mode = Mode::Broadcast)),
        (NtpReject::UnsupportedVersion(2), Box::new(|p| p.version = 2)),
        (NtpReject::UnsupportedVersion(5), Box::new(|p| p.version = 5)),
        (
            NtpReject::KissOfDeath(KissCode::RATE),
            Box::new(|p| {
                p.stratum = 0;
                p.leap = LeapIndicator::Unsynchronized;
                p.reference_id = ReferenceId(*b"RATE");
            }),
        ),
        (NtpReject::BadStratum(16), Box::new(|p| p.stratum = 16)),
        (NtpReject::BadStratum(255), Box::new(|p| p.stratum = 255)),
        (NtpReject::Unsynchronized, Box::new(|p| p.leap = LeapIndicator::Unsynchronized)),
        (NtpReject::ZeroTransmit, Box::new(|p| p.transmit = NtpTimestamp::ZERO)),
        (NtpReject::ZeroReceive, Box::new(|p| p.receive = NtpTimestamp::ZERO)),
        (NtpReject::NoReferenceTime, Box::new(|p| p.reference_time = NtpTimestamp::ZERO)),
        (
            NtpReject::ReferenceAfterTransmit(Duration::from_secs(1)),
            Box::new(|p| p.reference_time = NtpTimestamp::from_bits(p.transmit.to_bits() + (1 << 32))),
        ),
        (
            NtpReject::TransmitBeforeReceive(Duration::from_millis(1)),
            Box::new(|p| p.receive = NtpTimestamp::from_bits(p.transmit.to_bits() + (1 << 32) / 1_000 + 1)),
        ),
        (
            NtpReject::ResidenceExceedsRoundTrip,
            Box::new(|p| p.receive = NtpTimestamp::from_bits(p.transmit.to_bits() - (1 << 32) / 10)),
        ),
        (
            NtpReject::RootDistanceTooLarge(Duration::from_nanos(7_812_500 + 1_500_000_000 + 954)),
            Box::new(|p| p.root_dispersion = NtpShort::from_bits(0x0001_8000)),
        ),
        (
            NtpReject::RootDistanceTooLarge(Duration::from_nanos(ROOT_DELAY_MAX_HALF + 5_859_375 + 1_953_125 + 954)),
            Box::new(|p| p.root_delay = NtpShort::from_bits(0xFFFF_FFFF)), // "negative" in NTPv3's signed reading
        ),
        (
            NtpReject::RootDistanceTooLarge(Duration::from_nanos(7_812_500 + 1_953_125 + 2_000_000_000)),
            Box::new(|p| p.precision = 1),
        ),
        (NtpReject::RootDistanceTooLarge(Duration::MAX), Box::new(|p| p.precision = 127)),
    ];
    let mut seen = std::collections::BTreeSet::new();
    seen.insert("malformed");
    for (expected, change) in cases {
        let got = rejection(&ex, change);
        assert_eq!(got, expected, "{}", expected.name());
        assert!(!got.to_string().is_empty());
        seen.insert(got.name());
    }

    // The kiss code is reported whatever it is.
    assert_eq!(
        rejection(&ex, |p| {
            p.stratum = 0;
            p.reference_id = ReferenceId(*b"DENY");
        }),
        NtpReject::KissOfDeath(KissCode::DENY)
    );

    // Arguments rather than packet fields.
    let request = ex.request();
    let early = MonoInstant::from_nanos(request.sent_at().as_nanos() - 1);
    assert_eq!(sample_from_reply(&request, &reply, early, ex.pivot(), &params), Err(NtpReject::ReplyBeforeRequest));
    seen.insert("reply-before-request");
    let slow = Exchange::exact(600 * MS, 0, 500 * MS);
    assert_eq!(slow.judge(&params), Err(NtpReject::RoundTripTooLong(Duration::from_millis(1_100))));
    seen.insert("round-trip-too-long");
    let strict = NtpParams { max_round_trip: Duration::from_millis(10), ..params };
    assert_eq!(ex.judge(&strict), Err(NtpReject::RoundTripTooLong(Duration::from_nanos(7 * U))));
    // A server 10 s after 1970 and a second slow: its interval starts before the epoch.
    let ancient = Exchange { theta1: 10 * NANOS, server_error: -11 * NANOS, ..ex };
    let pivot = Timestamp::from_nanos(0);
    let verdict = sample_from_reply(&ancient.request(), &ancient.packet().encode(), ancient.t4(), pivot, &params);
    assert_eq!(verdict, Err(NtpReject::OutOfRange));
    seen.insert("out-of-range");

    // Every kind but the source's own (no request outstanding) was produced here.
    let missing: Vec<_> = NtpReject::NAMES.iter().filter(|n| !seen.contains(*n)).collect();
    assert_eq!(missing, [&"no-request-outstanding"]);
}

#[test]
fn small_inconsistencies_within_precision_are_accepted() {
    // T3 a hair before T2 (zero residence, readings rounded apart): fine, W⁺ = 0.
    let ex = Exchange { read_error: [units(900), units(-900)], ..Exchange::exact(MS, 0, MS) };
    let s = ex.judge(&NtpParams::default()).unwrap();
    assert!(s.sample.interval.contains(ex.truth()));
    // No network delay at all and the server's readings apart by 2·p_s.
    let ex = Exchange { read_error: [units(-900), units(900)], ..Exchange::exact(0, 10_000, 0) };
    assert!(ex.judge(&NtpParams::default()).unwrap().sample.interval.contains(ex.truth()));
}

#[test]
fn names_and_indices_agree() {
    assert_eq!(NtpReject::NAMES.len(), NtpReject::COUNT);
    let all = [
        NtpReject::Malformed(super::packet::PacketError::TooShort { len: 0 }),
        NtpReject::NoRequestOutstanding,
        NtpReject::OriginMismatch,
        NtpReject::WrongMode(Mode::Client),
        NtpReject::UnsupportedVersion(0),
        NtpReject::KissOfDeath(KissCode::RATE),
        NtpReject::BadStratum(16),
        NtpReject::Unsynchronized,
        NtpReject::ZeroTransmit,
        NtpReject::ZeroReceive,
        NtpReject::NoReferenceTime,
        NtpReject::ReferenceAfterTransmit(Duration::ZERO),
        NtpReject::ReplyBeforeRequest,
        NtpReject::RoundTripTooLong(Duration::ZERO),
        NtpReject::TransmitBeforeReceive(Duration::ZERO),
        NtpReject::ResidenceExceedsRoundTrip,
        NtpReject::RootDistanceTooLarge(Duration::ZERO),
        NtpReject::OutOfRange,
    ];
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.index(), i);
        assert_eq!(r.name(), NtpReject::NAMES[i]);
    }
}

#[test]
fn params_validation() {
    assert!(NtpParams::default().validate().is_ok());
    assert!(NtpParams { local_drift: Ppb::new(-1), ..NtpParams::default() }.validate().is_err());
    assert!(NtpParams { server_drift: Ppb::new(1_000_000_001), ..NtpParams::default() }.validate().is_err());
    assert!(NtpParams { max_round_trip: Duration::ZERO, ..NtpParams::default() }.validate().is_err());
    // Unvalidated, a negative drift is treated as zero, never as a narrowing.
    let ex = Exchange::exact(3 * U, U, 3 * U);
    let negative =
        NtpParams { local_drift: Ppb::new(-50_000), server_drift: Ppb::new(-50_000), ..NtpParams::default() };
    let zero = NtpParams { local_drift: Ppb::ZERO, server_drift: Ppb::ZERO, ..NtpParams::default() };
    assert_eq!(ex.judge(&negative), ex.judge(&zero));
    // 100 % server drift: the residence is given no credit at all.
    let no_credit = NtpParams { server_drift: NtpParams::MAX_DRIFT, ..NtpParams::default() };
    let wide = ex.judge(&no_credit).unwrap().sample.interval;
    let normal = ex.judge(&NtpParams::default()).unwrap().sample.interval;
    assert_eq!(wide.width() - normal.width(), Duration::from_nanos(U - 30));
}

/// A share in 0..=1000 with both extremes well represented.
fn share() -> impl Strategy<Value = i64> {
    prop_oneof![Just(0i64), Just(1_000), 0i64..=1_000]
}

/// `bound` scaled by `share`/1000 into [−bound, bound].
fn spread(bound: i128, share: i64) -> i128 {
    -bound + 2 * bound * i128::from(share) / 1_000
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]

    /// For any true offset of the server within its claimed root distance,
    /// any asymmetric split of the path delays, any server processing time,
    /// clock rates within their bounds and readings within their precisions,
    /// the sample contains true time.
    #[test]
    fn the_sample_always_contains_true_time(
        theta1 in 1_000_000_000 * NANOS..4_000_000_000 * NANOS, // 2001..2096, across 2036
        m1 in 1_000_000u64..1 << 62,
        out in prop_oneof![0u64..100_000, 0u64..200_000_000],
        back in prop_oneof![0u64..100_000, 0u64..200_000_000],
        residence in prop_oneof![Just(0u64), 0u64..100_000, 0u64..50_000_000],
        root_delay in prop_oneof![Just(0u32), 0u32..0x8000],
        root_dispersion in prop_oneof![Just(0u32), 0u32..0x8000],
        precision in -32i8..=-10,
        local_drift_ppm in prop_oneof![Just(0i32), 0i32..=1_000],
        server_drift_ppm in prop_oneof![Just(15i32), 0i32..=500],
        local_precision in prop_oneof![Just(0u64), 0u64..=10_000],
        error_share in share(), server_share in share(), local_share in share(),
        read_shares in [share(), share()], t1_share in share(),
        pivot_offset_s in -2_000_000_000i64..=2_000_000_000,
    ) {
        // R = root_delay/2 + root_dispersion, rounded down to be within the claim.
        let claim = (i128::from(root_delay) * NANOS / 2 + i128::from(root_dispersion) * NANOS) >> 16;
        let p_s = (NANOS << 32) >> (32 + i32::from(-precision)); // ⌊2^precision s⌋ in ns
        // Readings off by up to exactly 2^precision s, rounding included.
        let read_bound = 1i128 << (32 + i32::from(precision));
        let read_error = |share| spread(read_bound, share).max(1 - read_bound);
        let ex = Exchange {
            theta1,
            m1,
            out,
            residence,
            back,
            server_error: spread(claim, error_share),
            server_rate: i64::try_from(spread(i128::from(server_drift_ppm) * 1_000, server_share)).unwrap(),
            local_rate: i64::try_from(spread(i128::from(local_drift_ppm) * 1_000, local_share)).unwrap(),
            read_error: [read_error(read_shares[0]), read_error(read_shares[1])],
            t1_error: 0,
            root_delay,
            root_dispersion,
            precision,
            leap: LeapIndicator::NoWarning,
        };
        // t1 read up to p_l off, but never after t4.
        let reader_span = ex.t4().as_nanos() - ex.m1;
        let t1_error = i64::try_from(spread(i128::from(local_precision), t1_share)).unwrap();
        let ex = Exchange { t1_error: t1_error.min(i64::try_from(reader_span).unwrap()), ..ex };
        let params = NtpParams {
            local_drift: Ppb::from_ppm(local_drift_ppm),
            server_drift: Ppb::from_ppm(server_drift_ppm),
            local_precision: Duration::from_nanos(local_precision),
            ..NtpParams::default()
        };
        let pivot_nanos = i128::from(ex.truth().as_nanos()) + i128::from(pivot_offset_s) * NANOS;
        let pivot = Timestamp::from_nanos(u64::try_from(pivot_nanos.max(0)).unwrap());
        let s = sample_from_reply(&ex.request(), &ex.packet().encode(), ex.t4(), pivot, &params);
        let s = s.map_err(|r| TestCaseError::fail(format!("{r}: {ex:?}")))?;
        prop_assert!(s.sample.interval.contains(ex.truth()), "{} misses {}: {:?}", s.sample.interval, ex.truth(), ex);
        prop_assert_eq!(s.sample.at, ex.t4());
        // And it is no wider than the derivation says (plus rounding).
        let half = s.sample.interval.half_width().as_nanos();
        let delta_hat = i128::from(reader_span) * (NANOS + i128::from(local_drift_ppm) * 1_000) / NANOS;
        let bound = delta_hat / 2 + claim + 2 * (p_s + 1) + 2 * i128::from(local_precision) + 8;
        prop_assert!(i128::try_from(half).unwrap() <= bound, "half-width {} > {}", half, bound);
    }

    /// Kernel timestamps: whatever part of the way out the request spent
    /// before its departure and of the way back the reply spent after its
    /// arrival, credits no larger than those and a departure-to-t4 no
    /// shorter than the truth keep true time inside, and narrow the sample
    /// by exactly the credits.
    #[test]
    fn kernel_credits_keep_true_time_inside(
        out in 0u64..2_000_000, back in 0u64..2_000_000, residence in 0u64..100_000,
        dep_share in share(), arr_share in share(), credit_shares in [share(), share()],
        slack in prop_oneof![Just(0u64), 0u64..1_000_000, 10_000_000u64..20_000_000],
        local_share in share(), error_share in share(),
    ) {
        let ex = Exchange {
            server_error: spread(3_906_250 / 2 + 1_953_125, error_share),
            local_rate: i64::try_from(spread(100_000, local_share)).unwrap(),
            ..Exchange::exact(out, residence, back)
        };
        let params = NtpParams::default();
        let plain = ex.judge(&params).map_err(|r| TestCaseError::fail(format!("{r}: {ex:?}")))?;
        // True time from t1 to the departure, and from the arrival to t4.
        let departure = out * u64::try_from(dep_share).unwrap() / 1_000;
        let arrival = back * u64::try_from(arr_share).unwrap() / 1_000;
        let whole = u64::try_from(ex.theta3_4().1 - ex.theta1).unwrap();
        let wire = WireTimes {
            before_departure: Duration::from_nanos(departure * u64::try_from(credit_shares[0]).unwrap() / 1_000),
            after_arrival: Duration::from_nanos(arrival * u64::try_from(credit_shares[1]).unwrap() / 1_000),
            departure_to_t4: Some(Duration::from_nanos(whole - departure + slack)),
        };
        let packet = ex.packet();
        let s = sample_from_answer(&ex.request(), &packet, ex.t4(), ex.pivot(), &params, &wire)
            .map_err(|r| TestCaseError::fail(format!("{r}: {ex:?} {wire:?}")))?;
        prop_assert!(s.sample.interval.contains(ex.truth()), "{} misses {}: {ex:?} {wire:?}", s.sample.interval, ex.truth());
        prop_assert!(s.sample.interval.width() <= plain.sample.interval.width() - wire.after_arrival);
        let credit = u64::try_from(wire.after_arrival.as_nanos()).unwrap();
        prop_assert_eq!(s.sample.interval.earliest().as_nanos(), plain.sample.interval.earliest().as_nanos() + credit);
    }

    /// Whatever arrives, judging it never panics.
    #[test]
    fn judging_arbitrary_bytes_never_panics(
        mut bytes in proptest::collection::vec(any::<u8>(), 0..64),
        echo in any::<bool>(),
        t1 in any::<u64>(), t4 in any::<u64>(), pivot in any::<u64>(),
        drift in any::<i64>(), precision_ns in any::<u64>(),
    ) {
        if echo && bytes.len() >= 32 {
            bytes.splice(24..32, COOKIE.to_be_bytes());
        }
        let params = NtpParams {
            local_drift: Ppb::new(drift),
            server_drift: Ppb::new(drift.wrapping_neg()),
            local_precision: Duration::from_nanos(precision_ns),
            ..NtpParams::default()
        };
        let request = PendingRequest::new(COOKIE, MonoInstant::from_nanos(t1));
        let verdict = sample_from_reply(&request, &bytes, MonoInstant::from_nanos(t4), Timestamp::from_nanos(pivot), &params);
        if let Ok(s) = verdict {
            prop_assert!(s.sample.interval.earliest() <= s.sample.interval.latest());
        }
    }
}
