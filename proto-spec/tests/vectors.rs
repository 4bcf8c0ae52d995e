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

use serde_json::Value;
use tsod_proto::bound::RateBounds;
use tsod_proto::shm::{Anchor, PublishedState, ShmHeader, ShmSegment};
use tsod_proto::wire::{self, MessageKind};
use tsod_proto::{ClockStatus, DriftModel, MonoInstant, Ppb, TimeInterval, Timescale, Timestamp};

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

#[expect(unsafe_code, reason = "a mapped segment is bytes; the test views it as a mapped file is viewed")]
fn segment_from_image(image: &[u8]) -> ShmSegment {
    assert_eq!(image.len(), size_of::<ShmSegment>());
    let mut segment = ShmSegment::default();
    // SAFETY: `segment` is an exclusively borrowed, properly aligned
    // ShmSegment of exactly image.len() bytes; every field is an integer
    // atomic, for which any bit pattern is valid.
    unsafe {
        core::ptr::copy_nonoverlapping(image.as_ptr(), (&raw mut segment).cast::<u8>(), image.len());
    }
    segment
}

#[expect(unsafe_code, reason = "a mapped segment is bytes; the test views it as a mapped file is viewed")]
fn image_of(segment: &ShmSegment) -> Vec<u8> {
    // SAFETY: the pointer covers exactly one live ShmSegment, which no other
    // thread accesses during the copy; integer atomics have no padding here
    // (the layout is asserted in shm.rs).
    unsafe { core::slice::from_raw_parts((segment as *const ShmSegment).cast::<u8>(), size_of::<ShmSegment>()) }
        .to_vec()
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
