//! Checks the codec and the shared-memory code against `proto-spec/vectors/`,
//! which `generate.py` writes from SPEC.md with an independent encoder.
//! A missing file, a changed byte or a changed expectation fails a test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tsod_proto::bound::RateBounds;
use tsod_proto::shm::{Anchor, PublishedState, SHM_LAYOUT_LEN, ShmHeader, ShmSegment};
use tsod_proto::wire::{
    self, ErrorCode, ErrorResponse, Message, MessageKind, NowResponse, ProbeReply, ProbeRequest, RaftMessage, RaftRpc,
    Request, SiteReport, SourceKind, SourceReport, StatusResponse, TsoRequest, TsoResponse,
};
use tsod_proto::{
    ClockStatus, DriftModel, HybridTimestamp, MonoInstant, Offset, Ppb, TimeInterval, Timescale, Timestamp,
};

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

fn load(name: &str) -> Value {
    let path = vectors_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cases<'a>(doc: &'a Value, section: &str) -> &'a Vec<Value> {
    doc[section].as_array().unwrap_or_else(|| panic!("{} has no {section} array", doc["kind"]))
}

fn bytes(case: &Value, field: &str) -> Vec<u8> {
    hex::decode(case[field].as_str().unwrap()).unwrap()
}

#[test]
fn every_message_kind_has_valid_and_invalid_vectors_that_hold() {
    for kind in MessageKind::ALL {
        let doc = load(kind.name());
        assert_eq!(doc["kind"], kind.name());
        let valid = cases(&doc, "valid");
        let invalid = cases(&doc, "invalid");
        assert!(!valid.is_empty(), "{}: no valid vector", kind.name());
        assert!(invalid.len() >= 5, "{}: fewer than 5 invalid vectors", kind.name());

        for case in valid {
            let name = format!("{}/{}", kind.name(), case["name"]);
            let raw = bytes(case, "hex");
            let message = wire::decode(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(message.kind(), kind, "{name}");
            assert_eq!(serde_json::to_value(&message).unwrap(), case["decoded"], "{name}: decoded form");
            // The JSON form round-trips on its own: read back by the rules of
            // SPEC.md §4.15 (not by the decoder) it encodes to the same bytes.
            let rebuilt = message_from_json(&case["decoded"]);
            assert_eq!(rebuilt, message, "{name}: decoded read back");
            assert_eq!(rebuilt.to_vec().unwrap(), raw, "{name}: decoded encodes to hex");
            assert_eq!(message.encoded_len(), raw.len(), "{name}: encoded_len");
            assert_eq!(message.to_vec().unwrap(), raw, "{name}: re-encoding");
            assert_eq!(wire::frame_len(&raw), Ok(Some(raw.len())), "{name}: frame_len");
        }
        for case in invalid {
            let name = format!("{}/{}", kind.name(), case["name"]);
            let err = wire::decode(&bytes(case, "hex")).expect_err(&name);
            assert_eq!(err.name(), case["error"], "{name}: {err}");
        }
    }
}

/// The segment a vector's image describes: the image is the file's first
/// 192 bytes (little-endian, so these tests run on little-endian hosts).
fn segment_from_image(image: &[u8]) -> ShmSegment {
    let bytes: &[u8; SHM_LAYOUT_LEN] = image.try_into().expect("a 192-byte image");
    ShmSegment::from_bytes(bytes)
}

fn image_of(segment: &ShmSegment) -> Vec<u8> {
    segment.to_bytes().to_vec()
}

fn state_from(v: &Value) -> PublishedState {
    let u = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("field {k}"));
    let rates = RateBounds::new(u("rate-low-q32"), u("rate-high-q32")).unwrap();
    // The rates are the model's, rounded outwards as SPEC.md §5.4 says.
    let model = DriftModel::new(
        Ppb::new(v["model"]["frequency-ppb"].as_i64().unwrap()),
        Ppb::new(v["model"]["drift-bound-ppb"].as_i64().unwrap()),
    )
    .unwrap();
    assert_eq!(model.rates(), rates, "rates of {}", v["model"]);
    PublishedState {
        anchor: Anchor {
            reference: MonoInstant::from_nanos(u("reference")),
            interval: TimeInterval::new(Timestamp::from_nanos(u("earliest")), Timestamp::from_nanos(u("latest")))
                .unwrap(),
            rates,
            status: ClockStatus::from_code(u8::try_from(u("status")).unwrap()).unwrap(),
            valid_until: MonoInstant::from_nanos(u("valid-until")),
        },
        disruption_count: u("disruption-count"),
        reference_boottime: MonoInstant::from_nanos(u("reference-boottime")),
        writer_instance: u("writer-instance"),
    }
}

// ---- the JSON form read back (SPEC.md §4.15) --------------------------------------

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key}: not a u64 in {v}"))
}

fn u32_of(v: &Value, key: &str) -> u32 {
    u32::try_from(u64_of(v, key)).unwrap_or_else(|_| panic!("{key}: not a u32"))
}

fn bool_of(v: &Value, key: &str) -> bool {
    v[key].as_bool().unwrap_or_else(|| panic!("{key}: not a bool in {v}"))
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key}: not a string in {v}"))
}

fn interval_of(v: &Value, key: &str) -> TimeInterval {
    let i = &v[key];
    TimeInterval::new(Timestamp::from_nanos(u64_of(i, "earliest")), Timestamp::from_nanos(u64_of(i, "latest")))
        .unwrap_or_else(|e| panic!("{key}: {e}"))
}

fn status_of(v: &Value, key: &str) -> ClockStatus {
    serde_json::from_value(v[key].clone()).unwrap_or_else(|e| panic!("{key}: {e}"))
}

fn timescale_of(v: &Value) -> Timescale {
    serde_json::from_value(v["timescale"].clone()).unwrap_or_else(|e| panic!("timescale: {e}"))
}

fn ppb_of(v: &Value, key: &str) -> Ppb {
    Ppb::new(i64::from(u32_of(v, key)))
}

fn nanos_of(v: &Value, key: &str) -> Duration {
    Duration::from_nanos(u64_of(v, key))
}

/// A name the crate serializes, looked up among the codes 1 … 255.
fn by_name<T: serde::Serialize>(v: &Value, key: &str, from_code: impl Fn(u8) -> Option<T>) -> T {
    (1..=u8::MAX)
        .filter_map(from_code)
        .find(|t| serde_json::to_value(t).unwrap() == v[key])
        .unwrap_or_else(|| panic!("{key}: unknown name {}", v[key]))
}

fn report_of(v: &Value) -> SiteReport<'_> {
    let sources = v["sources"].as_array().expect("sources").iter().map(|s| SourceReport {
        kind: by_name(s, "kind", SourceKind::from_code),
        name: str_of(s, "name"),
        usable: bool_of(s, "usable"),
        falseticker: bool_of(s, "falseticker"),
        offset: Offset::from_nanos(s["offset"].as_i64().expect("offset")),
        error: nanos_of(s, "error"),
    });
    SiteReport {
        generation: u64_of(v, "generation"),
        site: str_of(v, "site"),
        status: status_of(v, "status"),
        local_status: status_of(v, "local-status"),
        timescale: timescale_of(v),
        half_width: (!v["half-width"].is_null()).then(|| nanos_of(v, "half-width")),
        drift_bound: ppb_of(v, "drift-bound"),
        sources: sources.collect(),
    }
}

fn raft_of(v: &Value) -> RaftMessage<'_> {
    RaftMessage {
        request_id: u64_of(v, "request-id"),
        rpc: by_name(v, "rpc", RaftRpc::from_code),
        payload: str_of(v, "payload"),
    }
}

/// A message from its JSON form, read field by field as SPEC.md §4.15 states.
fn message_from_json(v: &Value) -> Message<'_> {
    let request_id = || u64_of(v, "request-id");
    match str_of(v, "kind") {
        "probe-request" => Message::ProbeRequest(ProbeRequest {
            nonce: u64_of(v, "nonce"),
            requester_send: MonoInstant::from_nanos(u64_of(v, "requester-send")),
        }),
        "probe-reply" => Message::ProbeReply(ProbeReply {
            nonce: u64_of(v, "nonce"),
            requester_send: MonoInstant::from_nanos(u64_of(v, "requester-send")),
            at_receive: interval_of(v, "at-receive"),
            at_send: interval_of(v, "at-send"),
            processing: nanos_of(v, "processing"),
            drift_bound: ppb_of(v, "drift-bound"),
            status: status_of(v, "status"),
            timescale: timescale_of(v),
            local_basis: bool_of(v, "local-basis"),
        }),
        "gossip" => Message::Gossip(report_of(v)),
        "now-request" => Message::NowRequest(Request { request_id: request_id() }),
        "now-response" => Message::NowResponse(NowResponse {
            request_id: request_id(),
            interval: interval_of(v, "interval"),
            status: status_of(v, "status"),
            timescale: timescale_of(v),
            drift_bound: ppb_of(v, "drift-bound"),
        }),
        "status-request" => Message::StatusRequest(Request { request_id: request_id() }),
        "status-response" => {
            Message::StatusResponse(StatusResponse { request_id: request_id(), report: report_of(&v["report"]) })
        }
        "tso-request" => Message::TsoRequest(TsoRequest { request_id: request_id(), count: u32_of(v, "count") }),
        "tso-response" => Message::TsoResponse(TsoResponse {
            request_id: request_id(),
            first: HybridTimestamp::from_raw(u64_of(v, "first")),
            count: u32_of(v, "count"),
        }),
        "raft-request" => Message::RaftRequest(raft_of(v)),
        "raft-response" => Message::RaftResponse(raft_of(v)),
        "error" => Message::Error(ErrorResponse {
            request_id: request_id(),
            code: match v["code"].as_u64() {
                Some(n) => ErrorCode::from_code(u16::try_from(n).expect("code")),
                None => (1..=u16::MAX)
                    .map(ErrorCode::from_code)
                    .find(|c| c.name() == v["code"].as_str())
                    .unwrap_or_else(|| panic!("unknown error code {}", v["code"])),
            },
            retry_after: (!v["retry-after"].is_null()).then(|| Duration::from_millis(u64_of(v, "retry-after"))),
            message: str_of(v, "message"),
        }),
        other => panic!("unknown kind {other}"),
    }
}

#[cfg(target_endian = "little")]
#[test]
fn shared_memory_vectors_hold() {
    let doc = load("shm");
    let boot: [u8; 16] = hex::decode(doc["boot-id"].as_str().unwrap()).unwrap().try_into().unwrap();
    for case in cases(&doc, "valid") {
        let name = case["name"].to_string();
        let image = bytes(case, "image");
        let expected = state_from(&case["state"]);

        // Reader side: the image decodes to the state and extrapolates as stated.
        let segment = segment_from_image(&image);
        let header = ShmHeader::read(&segment, Some(boot)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(header.timescale, Timescale::UtcSmear24h);
        let state = segment.read().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(state, expected, "{name}");
        let now = MonoInstant::from_nanos(case["now"].as_u64().unwrap());
        assert_eq!(segment.read_anchor(), Ok(expected.anchor), "{name}: read_anchor");
        let got = match state.anchor.interval_at(now) {
            Ok(i) => serde_json::json!({"earliest": i.earliest().as_nanos(), "latest": i.latest().as_nanos()}),
            Err(e) => Value::from(e.name()),
        };
        assert_eq!(got, case["expect"], "{name}: interval_at");

        // Writer side: header + five publishes (generation 10) give the same bytes.
        let fresh = ShmSegment::default();
        header.write(&fresh);
        for _ in 0..5 {
            fresh.publish(&expected);
        }
        assert_eq!(case["state"]["generation"], 10, "{name}: vectors assume five publishes");
        assert_eq!(hex::encode(image_of(&fresh)), case["image"].as_str().unwrap(), "{name}: written image");
    }
    for case in cases(&doc, "invalid") {
        let name = case["name"].to_string();
        let segment = segment_from_image(&bytes(case, "image"));
        let err = ShmHeader::read(&segment, Some(boot)).and_then(|_| segment.read()).expect_err(&name);
        assert_eq!(err.name(), case["error"], "{name}: {err}");
    }
}

/// Every vector file is one these tests read: none is silently ignored.
#[test]
fn no_unchecked_vector_files() {
    let mut expected: Vec<String> = MessageKind::ALL.iter().map(|k| format!("{}.json", k.name())).collect();
    expected.push("shm.json".into());
    expected.sort();
    let mut found: Vec<String> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    found.sort();
    assert_eq!(found, expected);
}
