//! Property tests of the codec: decoding never panics, every accepted
//! message has exactly one encoding, and valid messages round-trip.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

use core::time::Duration;

use proptest::prelude::*;
use tsod_proto::wire::{
    self, ErrorCode, ErrorResponse, MAX_ERROR_MESSAGE_LEN, MAX_NAME_LEN, MAX_TSO_COUNT, Message, MessageKind,
    NowResponse, ProbeReply, ProbeRequest, Request, SiteReport, SourceKind, SourceReport, StatusResponse, TsoRequest,
    TsoResponse,
};
use tsod_proto::{ClockStatus, HybridTimestamp, MonoInstant, Offset, Ppb, TimeInterval, Timescale, Timestamp};

fn interval() -> impl Strategy<Value = TimeInterval> {
    (any::<u64>(), any::<u64>())
        .prop_map(|(a, b)| TimeInterval::new(Timestamp::from_nanos(a.min(b)), Timestamp::from_nanos(a.max(b))).unwrap())
}

fn status() -> impl Strategy<Value = ClockStatus> {
    proptest::sample::select(ClockStatus::ALL.to_vec())
}

fn drift_bound() -> impl Strategy<Value = Ppb> {
    (0i64..=1_000_000).prop_map(Ppb::new)
}

/// Text that the codec accepts: 1..=max bytes, no control characters.
fn text(max: usize) -> impl Strategy<Value = &'static str> {
    proptest::string::string_regex(&format!("[^\\p{{Cc}}]{{1,{max}}}"))
        .unwrap()
        .prop_filter("fits", move |s| s.len() <= max)
        .prop_map(|s| &*Box::leak(s.into_boxed_str()))
}

fn source() -> impl Strategy<Value = SourceReport<'static>> {
    (
        proptest::sample::select(vec![SourceKind::Ntp, SourceKind::Gpsd, SourceKind::Kernel, SourceKind::Peer]),
        text(MAX_NAME_LEN),
        any::<bool>(),
        any::<bool>(),
        any::<i64>(),
        any::<u64>(),
    )
        .prop_map(|(kind, name, usable, falseticker, offset, error)| SourceReport {
            kind,
            name,
            usable,
            falseticker,
            offset: Offset::from_nanos(offset),
            error: Duration::from_nanos(error),
        })
}

fn report() -> impl Strategy<Value = SiteReport<'static>> {
    (
        any::<u64>(),
        text(MAX_NAME_LEN),
        status(),
        status(),
        0u64..u64::MAX,
        drift_bound(),
        proptest::collection::vec(source(), 0..=8),
    )
        .prop_map(|(generation, site, status, local_status, hw, drift_bound, sources)| SiteReport {
            generation,
            site,
            status,
            local_status,
            timescale: Timescale::UtcSmear24h,
            half_width: status.is_bounded().then(|| Duration::from_nanos(hw)),
            drift_bound,
            sources,
        })
}

fn message() -> impl Strategy<Value = Message<'static>> {
    prop_oneof![
        (any::<u64>(), any::<u64>()).prop_map(|(nonce, t)| Message::ProbeRequest(ProbeRequest {
            nonce,
            requester_send: MonoInstant::from_nanos(t)
        })),
        (any::<u64>(), any::<u64>(), interval(), interval(), any::<u64>(), drift_bound(), status(), any::<bool>())
            .prop_map(|(nonce, t, at_receive, at_send, p, drift_bound, status, local_basis)| {
                Message::ProbeReply(ProbeReply {
                    nonce,
                    requester_send: MonoInstant::from_nanos(t),
                    at_receive,
                    at_send,
                    processing: Duration::from_nanos(p),
                    drift_bound,
                    status,
                    timescale: Timescale::UtcSmear24h,
                    local_basis,
                })
            }),
        report().prop_map(Message::Gossip),
        any::<u64>().prop_map(|request_id| Message::NowRequest(Request { request_id })),
        any::<u64>().prop_map(|request_id| Message::StatusRequest(Request { request_id })),
        (any::<u64>(), interval(), status(), drift_bound()).prop_map(|(request_id, interval, status, drift_bound)| {
            Message::NowResponse(NowResponse {
                request_id,
                interval,
                status,
                timescale: Timescale::UtcSmear24h,
                drift_bound,
            })
        }),
        (any::<u64>(), report())
            .prop_map(|(request_id, report)| Message::StatusResponse(StatusResponse { request_id, report })),
        (any::<u64>(), 1..=MAX_TSO_COUNT)
            .prop_map(|(request_id, count)| Message::TsoRequest(TsoRequest { request_id, count })),
        (any::<u64>(), 0..=u64::MAX - u64::from(MAX_TSO_COUNT), 1..=MAX_TSO_COUNT).prop_map(
            |(request_id, first, count)| Message::TsoResponse(TsoResponse {
                request_id,
                first: HybridTimestamp::from_raw(first),
                count
            })
        ),
        (any::<u64>(), 1..=u16::MAX, proptest::option::of(1u64..=u64::from(u32::MAX)), text(MAX_ERROR_MESSAGE_LEN))
            .prop_map(|(request_id, code, retry, message)| Message::Error(ErrorResponse {
                request_id,
                code: ErrorCode::from_code(code),
                retry_after: retry.map(Duration::from_millis),
                message,
            })),
    ]
}

/// Every decoded message re-encodes to exactly the bytes it came from.
fn assert_canonical(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(m) = wire::decode(bytes) {
        prop_assert_eq!(m.to_vec().unwrap(), bytes.to_vec());
    }
    Ok(())
}

fn all_vector_encodings() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors");
    let mut out = Vec::new();
    for kind in MessageKind::ALL {
        let text = std::fs::read_to_string(dir.join(format!("{}.json", kind.name()))).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        for case in doc["valid"].as_array().unwrap() {
            out.push(hex::decode(case["hex"].as_str().unwrap()).unwrap());
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        assert_canonical(&bytes)?;
    }

    /// A valid header in front of random bytes reaches every body decoder.
    #[test]
    fn decode_never_panics_behind_a_valid_header(
        kind in proptest::sample::select(MessageKind::ALL.to_vec()),
        body in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut bytes = vec![wire::VERSION, kind.code(), 0, 0];
        bytes.extend_from_slice(&u32::try_from(body.len() + 8).unwrap().to_be_bytes());
        bytes.extend_from_slice(&body);
        assert_canonical(&bytes)?;
    }

    /// Valid encodings with bytes flipped, cut or extended.
    #[test]
    fn decode_never_panics_on_mutated_vectors(
        pick in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let all = all_vector_encodings();
        let mut bytes = pick.get(&all).clone();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len() + 1));
        }
        assert_canonical(&bytes)?;
        let _ = wire::frame_len(&bytes);
    }

    #[test]
    fn valid_messages_round_trip(m in message()) {
        let bytes = m.to_vec().unwrap();
        prop_assert_eq!(bytes.len(), m.encoded_len());
        prop_assert_eq!(wire::frame_len(&bytes), Ok(Some(bytes.len())));
        let decoded = wire::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &m);
        prop_assert_eq!(decoded.to_vec().unwrap(), bytes);
    }

    #[test]
    fn encoding_into_a_short_buffer_fails_cleanly(m in message(), short in 0usize..8) {
        let mut buf = vec![0u8; m.encoded_len().saturating_sub(short + 1)];
        prop_assert!(m.encode(&mut buf).is_err());
    }
}

#[test]
fn encoder_refuses_messages_receivers_would_reject() {
    let report = |site: &'static str, status: ClockStatus, half_width: Option<Duration>| SiteReport {
        generation: 1,
        site,
        status,
        local_status: status,
        timescale: Timescale::UtcSmear24h,
        half_width,
        drift_bound: Ppb::new(1),
        sources: Vec::new(),
    };
    let hw = Some(Duration::from_micros(5));
    for bad in [
        report("", ClockStatus::Synchronized, hw),
        report("bell\u{7}", ClockStatus::Synchronized, hw),
        report("x".repeat(64).leak(), ClockStatus::Synchronized, hw),
        report("a", ClockStatus::Unsynchronized, hw),
        report("a", ClockStatus::Synchronized, None),
    ] {
        assert!(Message::Gossip(bad).to_vec().is_err());
    }
    let tso = |count| Message::TsoRequest(TsoRequest { request_id: 1, count });
    assert!(tso(0).to_vec().is_err() && tso(MAX_TSO_COUNT + 1).to_vec().is_err());
    let last = Message::TsoResponse(TsoResponse { request_id: 1, first: HybridTimestamp::MAX, count: 2 });
    assert!(last.to_vec().is_err());
    let error = |retry_after| {
        Message::Error(ErrorResponse { request_id: 1, code: ErrorCode::Overloaded, retry_after, message: "" })
    };
    assert!(error(Some(Duration::ZERO)).to_vec().is_err());
    assert!(error(Some(Duration::from_micros(1500))).to_vec().is_err(), "not whole milliseconds");
    assert!(error(Some(Duration::from_millis(u64::from(u32::MAX) + 1))).to_vec().is_err());
    assert!(error(Some(Duration::from_millis(1))).to_vec().is_ok());
    let coded = |code| Message::Error(ErrorResponse { request_id: 1, code, retry_after: None, message: "" });
    assert!(coded(ErrorCode::Other(0)).to_vec().is_err(), "code 0 is never sent");
    assert!(coded(ErrorCode::Other(4)).to_vec().is_err(), "4 must be sent as Unsynchronized");
    assert!(coded(ErrorCode::Other(999)).to_vec().is_ok());
}
