use super::*;
use tsod_proto::Timestamp;
use tsod_proto::shm::Anchor;

/// A basis published at raw `reference` with BOOTTIME `boot`.
fn published(anchor: Anchor, boot: u64) -> PublishedState {
    PublishedState { anchor, disruption_count: 0, reference_boottime: mono(boot), writer_instance: 1 }
}

/// A clock reading at raw `raw` with BOOTTIME `boot`.
fn reading(raw: u64, boot: u64) -> ClockReading {
    ClockReading {
        raw: mono(raw),
        monotonic: mono(raw),
        boottime: mono(boot),
        realtime: Timestamp::from_nanos(raw),
        hypervisor_epoch: 0,
    }
}

const T0: u64 = 1_795_462_647_000_000_000;

fn iv(e: u64, l: u64) -> TimeInterval {
    TimeInterval::new(Timestamp::from_nanos(e), Timestamp::from_nanos(l)).unwrap()
}

fn mono(n: u64) -> MonoInstant {
    MonoInstant::from_nanos(n)
}

/// The worked example of SPEC.md §4.5.
fn spec_reply() -> ProbeReply {
    ProbeReply {
        nonce: 0x9e37_79b9_7f4a_7c15,
        requester_send: mono(1_000_000_000_000),
        at_receive: iv(T0 - 40_000, T0 + 40_000),
        at_send: iv(T0 - 10_001, T0 + 70_001),
        processing: Duration::from_nanos(30_000),
        drift_bound: Ppb::new(15_000),
        status: ClockStatus::Synchronized,
        timescale: Timescale::UtcSmear24h,
        local_basis: true,
    }
}

fn model_20ppm() -> DriftModel {
    DriftModel::symmetric(Ppb::new(20_000)).unwrap()
}

#[test]
fn the_spec_worked_example_gives_the_spec_interval() {
    let mut p = Prober::new(Duration::from_secs(2), Timescale::UtcSmear24h);
    p.request(0x9e37_79b9_7f4a_7c15, mono(1_000_000_000_000));
    let s = p.on_reply(&spec_reply(), mono(1_000_002_000_000), model_20ppm(), Duration::from_secs(1)).unwrap();
    assert_eq!(s.at, mono(1_000_002_000_000));
    assert_eq!(s.interval.earliest().as_nanos(), 1_795_462_646_999_989_999);
    // Q32.32 rounding of the fast rate may add a nanosecond to the SPEC's U.
    let latest = s.interval.latest().as_nanos();
    assert!((1_795_462_647_002_040_042..=1_795_462_647_002_040_043).contains(&latest), "{latest}");
}

#[test]
fn replays_duplicates_and_stale_replies_are_refused() {
    let mut p = Prober::new(Duration::from_secs(2), Timescale::UtcSmear24h);
    let r = spec_reply();
    let t4 = mono(1_000_002_000_000);
    assert_eq!(p.on_reply(&r, t4, model_20ppm(), Duration::from_secs(1)), Err(ProbeReject::UnknownNonce));
    p.request(r.nonce, r.requester_send);
    assert!(p.on_reply(&r, t4, model_20ppm(), Duration::from_secs(1)).is_ok());
    // The same reply again (a replay or a duplicate datagram).
    assert_eq!(p.on_reply(&r, t4, model_20ppm(), Duration::from_secs(1)), Err(ProbeReject::UnknownNonce));
    // Expired: answered after the timeout.
    p.request(r.nonce, r.requester_send);
    let late = mono(1_000_000_000_000 + 3_000_000_000);
    assert_eq!(p.on_reply(&r, late, model_20ppm(), Duration::from_secs(10)), Err(ProbeReject::UnknownNonce));
    // Wrong echo retires the probe too.
    p.request(r.nonce, r.requester_send);
    let wrong = ProbeReply { requester_send: mono(5), ..r };
    assert_eq!(p.on_reply(&wrong, t4, model_20ppm(), Duration::from_secs(1)), Err(ProbeReject::WrongEcho));
    assert_eq!(p.outstanding(), 0);
}

#[test]
fn outstanding_probes_are_bounded() {
    let mut p = Prober::new(Duration::from_secs(3600), Timescale::UtcSmear24h);
    for n in 0..1000u64 {
        p.request(n, mono(n));
    }
    assert_eq!(p.outstanding(), MAX_OUTSTANDING);
}

#[test]
fn unusable_replies_are_refused_with_their_reason() {
    let t1 = mono(1_000_000_000_000);
    let t4 = mono(1_000_002_000_000);
    let m = model_20ppm();
    let ts = Timescale::UtcSmear24h;
    let one_s = Duration::from_secs(1);
    let check = |r: ProbeReply| sample_from_reply(&r, t1, t4, m, ts, one_s);
    assert_eq!(check(ProbeReply { local_basis: false, ..spec_reply() }), Err(ProbeReject::NotLocalBasis));
    assert_eq!(
        check(ProbeReply { status: ClockStatus::Unsynchronized, ..spec_reply() }),
        Err(ProbeReject::Unbounded(ClockStatus::Unsynchronized))
    );
    let contradicting = ProbeReply { at_receive: iv(T0 + 100_000, T0 + 200_000), ..spec_reply() };
    assert_eq!(check(contradicting), Err(ProbeReject::Inconsistent));
    let slow = ProbeReply { processing: Duration::from_millis(3), ..spec_reply() };
    assert_eq!(check(slow), Err(ProbeReject::ProcessingExceedsRoundTrip));
    assert_eq!(sample_from_reply(&spec_reply(), t4, t1, m, ts, one_s), Err(ProbeReject::BeforeSend));
    assert_eq!(
        sample_from_reply(&spec_reply(), t1, t4, m, ts, Duration::from_millis(1)),
        Err(ProbeReject::RoundTripTooLong)
    );
}

/// Whatever share of the round trip each direction takes, and however long
/// the responder holds the request, the sample contains true time at t4.
#[test]
fn samples_contain_truth_for_any_path_asymmetry() {
    let rates = model_20ppm().rates();
    for (out_ns, back_ns, hold_ns) in
        [(1u64, 999_999u64, 0u64), (999_999, 1, 0), (500_000, 500_000, 400_000), (25_000_000, 100, 7), (0, 0, 0)]
    {
        let t1 = 7_000_000_000u64;
        // True time runs 20 ppm slower than the reader clock (the extreme).
        let true_at = |raw: u64| T0 + (raw - t1) - (raw - t1) / 50_000;
        let t2 = t1 + out_ns;
        let t3 = t2 + hold_ns;
        let t4 = t3 + back_ns;
        let basis = Anchor {
            reference: mono(t2),
            interval: iv(true_at(t2) - 5_000, true_at(t2) + 3_000),
            rates,
            status: ClockStatus::Synchronized,
            valid_until: mono(t4),
        };
        let request = ProbeRequest { nonce: 1, requester_send: mono(t1) };
        let basis = published(basis, t2);
        let reply = answer(&request, &basis, &reading(t2, t2), &reading(t3, t3), Timescale::UtcSmear24h);
        let s = sample_from_reply(&reply, mono(t1), mono(t4), model_20ppm(), Timescale::UtcSmear24h, Duration::MAX)
            .unwrap();
        assert!(s.interval.contains(Timestamp::from_nanos(true_at(t4))), "{out_ns}/{back_ns}/{hold_ns}: {s:?}");
    }
}

#[test]
fn an_unbounded_stale_or_suspended_basis_is_answered_unbounded() {
    let mut anchor = Anchor {
        reference: mono(1_000),
        interval: iv(T0, T0 + 10),
        rates: RateBounds::EXACT,
        status: ClockStatus::Unsynchronized,
        valid_until: mono(1_000_000_000),
    };
    let request = ProbeRequest { nonce: 9, requester_send: mono(3) };
    let ts = Timescale::UtcSmear24h;
    let reply = answer(&request, &published(anchor, 1_000), &reading(5_000, 5_000), &reading(6_000, 6_000), ts);
    assert_eq!((reply.nonce, reply.requester_send, reply.status), (9, mono(3), ClockStatus::Unsynchronized));
    assert!(reply.local_basis);
    anchor.status = ClockStatus::Synchronized;
    let basis = published(anchor, 1_000);
    let fine = answer(&request, &basis, &reading(5_000, 5_000), &reading(6_000, 6_000), ts);
    assert_eq!(fine.status, ClockStatus::Synchronized);
    // Past its horizon the basis is not carried: unsynchronized.
    let stale = answer(&request, &basis, &reading(5_000, 5_000), &reading(2_000_000_000, 2_000_000_000), ts);
    assert_eq!(stale.status, ClockStatus::Unsynchronized);
    // The host slept 10 s since the basis (BOOTTIME ran on, the reader clock
    // did not): carrying it would be 10 s early, so the reply is unbounded.
    let asleep = 10_000_000_000;
    let reply = answer(&request, &basis, &reading(5_000, 5_000 + asleep), &reading(6_000, 6_000 + asleep), ts);
    assert_eq!(reply.status, ClockStatus::Disrupted);
}

/// A responder whose clock runs beyond what `drift-bound` can carry
/// (|f| + ρ > 10⁶ ppb) sends the plain form: processing 0.
#[test]
fn a_rate_spread_beyond_the_field_sends_no_processing_time() {
    let model = DriftModel::new(Ppb::new(-900_000), Ppb::new(200_000)).unwrap();
    let t1 = 5_000_000_000u64;
    let (t2, t3, t4) = (t1 + 1_000, t1 + 10_001_000, t1 + 10_002_000);
    // True time runs at the slowest rate the model allows: 1 - 1100 ppm.
    let true_at = |raw: u64| T0 + (raw - t1) - (raw - t1) * 11 / 10_000;
    let anchor = Anchor {
        reference: mono(t2),
        interval: iv(true_at(t2) - 100, true_at(t2) + 100),
        rates: model.rates(),
        status: ClockStatus::Synchronized,
        valid_until: mono(t4),
    };
    let request = ProbeRequest { nonce: 1, requester_send: mono(t1) };
    let reply = answer(&request, &published(anchor, t2), &reading(t2, t2), &reading(t3, t3), Timescale::UtcSmear24h);
    assert_eq!(reply.processing, Duration::ZERO);
    assert_eq!(reply.drift_bound, DriftModel::MAX_RATE);
    let s =
        sample_from_reply(&reply, mono(t1), mono(t4), model_20ppm(), Timescale::UtcSmear24h, Duration::MAX).unwrap();
    // The requester's own clock is ideal here; truth at t4 is covered.
    let truth_t4 = true_at(t3) + (t4 - t3);
    assert!(s.interval.contains(Timestamp::from_nanos(truth_t4)), "{s:?}");
}

#[test]
fn drift_bound_covers_the_rates() {
    assert_eq!(drift_bound_of(RateBounds::EXACT), Ppb::ZERO);
    let b = drift_bound_of(DriftModel::new(Ppb::new(3_000), Ppb::new(15_000)).unwrap().rates());
    assert!((18_000..=18_001).contains(&b.get()), "{b:?}");
}

#[test]
fn best_of_keeps_the_narrowest_projection() {
    let m = model_20ppm();
    let mut best = BestOf::new(4, Duration::from_secs(60));
    let narrow = Sample { at: mono(1_000_000_000), interval: iv(T0 - 10, T0 + 10) };
    assert_eq!(best.push(narrow, m), narrow);
    // A later, wider sample: the narrow one carried forward 1 s at 20 ppm
    // is ±20 µs wider, still narrower than ±1 ms.
    let wide = Sample { at: mono(2_000_000_000), interval: iv(T0 + 1_000_000_000 - 1_000_000, T0 + 1_000_001_000) };
    // The winner comes back as measured, at its own instant, so the engine
    // can refuse it if a disruption happened since.
    assert_eq!(best.push(wide, m), narrow);
    best.clear();
    assert_eq!(best.push(wide, m), wide);
}

/// Issue 15, path 2: a VM paused for 30 s freezes every guest clock, so
/// the narrow pre-pause sample carried along the reader clock is 30 s
/// early. The first sample after the resume misses it entirely and wins.
#[test]
fn best_of_drops_samples_a_vm_pause_left_behind() {
    let m = model_20ppm();
    let mut best = BestOf::new(4, Duration::from_secs(60));
    let narrow = Sample { at: mono(1_000_000_000), interval: iv(T0 - 10, T0 + 10) };
    assert_eq!(best.push(narrow, m), narrow);
    // Reader clock +1 s, true time +31 s.
    let resumed =
        Sample { at: mono(2_000_000_000), interval: iv(T0 + 31_000_000_000 - 1_000_000, T0 + 31_001_000_000) };
    assert_eq!(best.push(resumed, m), resumed);
    let later = Sample { at: mono(3_000_000_000), interval: iv(T0 + 32_000_000_000 - 2_000_000, T0 + 32_002_000_000) };
    assert_eq!(best.push(later, m), resumed, "the pre-pause sample is gone for good");
}
