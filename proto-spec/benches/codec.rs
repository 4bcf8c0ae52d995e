//! `Message::encode` and `decode` for the messages tsod sends most, beside
//! `copy_from_slice` of the same number of bytes, the baseline, in the same
//! run.
//!
//! `cargo bench -p tsod-proto --bench codec`. One group per message, each
//! with three functions: `encode` (into a buffer allocated once), `decode`
//! (of the encoded bytes) and `copy_from_slice` (a `memcpy` of the encoded
//! length into the same buffer), so the ratio to the copy is what the
//! codec's checks and field-by-field big-endian layout cost over moving the
//! bytes at all. Decoding a gossip report allocates its source list; the
//! other messages decode without allocating.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark set-up")]
#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tsod_proto::wire::{
    Message, NowResponse, ProbeReply, ProbeRequest, RaftMessage, RaftRpc, SiteReport, SourceKind, SourceReport,
    TsoRequest, TsoResponse, decode,
};
use tsod_proto::{ClockStatus, HybridTimestamp, MonoInstant, Offset, Ppb, TimeInterval, Timescale, Timestamp};

/// Room for every message benchmarked here (the largest is the raft request).
const BUFFER_LEN: usize = 1024;

/// A raft-request payload as openraft 0.9's serde form writes an
/// append-entries with one TSO-ceiling entry: 321 bytes of JSON.
const RAFT_PAYLOAD: &str = concat!(
    r#"{"vote":{"leader_id":{"term":7,"node_id":2},"committed":true},"#,
    r#""prev_log_id":{"leader_id":{"term":7,"node_id":2},"index":18442},"#,
    r#""entries":[{"log_id":{"leader_id":{"term":7,"node_id":2},"index":18443},"#,
    r#""payload":{"Normal":{"ceiling":1795462647123456789}}}],"#,
    r#""leader_commit":{"leader_id":{"term":7,"node_id":2},"index":18442}}"#,
);

fn interval(midpoint_ns: u64, half_width: Duration) -> TimeInterval {
    TimeInterval::around(Timestamp::from_nanos(midpoint_ns), half_width)
}

/// A site's typical gossip: two NTP servers, a GPS receiver, the kernel and
/// one peer, one of the NTP servers rejected by selection.
fn gossip() -> Message<'static> {
    let source = |kind, name, falseticker, offset_ns, error_us| SourceReport {
        kind,
        name,
        usable: true,
        falseticker,
        offset: Offset::from_nanos(offset_ns),
        error: Duration::from_micros(error_us),
    };
    Message::Gossip(SiteReport {
        generation: 48_211,
        site: "eu-west-1a",
        status: ClockStatus::Synchronized,
        local_status: ClockStatus::Synchronized,
        timescale: Timescale::UtcSmear24h,
        half_width: Some(Duration::from_micros(38)),
        drift_bound: Ppb::from_ppm(2),
        sources: vec![
            source(SourceKind::Gpsd, "gps0", false, 1_250, 12),
            source(SourceKind::Ntp, "time1.google.com", false, -8_400, 410),
            source(SourceKind::Ntp, "time.cloudflare.com", true, 2_900_000, 520),
            source(SourceKind::Kernel, "adjtimex", false, 3_100, 95),
            source(SourceKind::Peer, "us-east-1b", false, -22_000, 640),
        ],
    })
}

/// The messages benchmarked, by group name.
fn messages() -> Vec<(&'static str, Message<'static>)> {
    let now = 1_795_462_647_123_456_789;
    vec![
        (
            "probe-request",
            Message::ProbeRequest(ProbeRequest {
                nonce: 0x9e37_79b9_7f4a_7c15,
                requester_send: MonoInstant::from_nanos(86_400_123_456_789),
            }),
        ),
        (
            "probe-reply",
            Message::ProbeReply(ProbeReply {
                nonce: 0x9e37_79b9_7f4a_7c15,
                requester_send: MonoInstant::from_nanos(86_400_123_456_789),
                at_receive: interval(now, Duration::from_micros(40)),
                at_send: interval(now + 18_000, Duration::from_micros(40)),
                processing: Duration::from_micros(18),
                drift_bound: Ppb::from_ppm(2),
                status: ClockStatus::Synchronized,
                timescale: Timescale::UtcSmear24h,
                local_basis: true,
            }),
        ),
        (
            "now-response",
            Message::NowResponse(NowResponse {
                request_id: 7_301,
                interval: interval(now, Duration::from_micros(38)),
                status: ClockStatus::Synchronized,
                timescale: Timescale::UtcSmear24h,
                drift_bound: Ppb::from_ppm(2),
            }),
        ),
        ("tso-request", Message::TsoRequest(TsoRequest { request_id: 7_302, count: 64 })),
        (
            "tso-response",
            Message::TsoResponse(TsoResponse {
                request_id: 7_302,
                first: HybridTimestamp::from_raw((now / 1_000) << HybridTimestamp::LOGICAL_BITS),
                count: 64,
            }),
        ),
        ("gossip", gossip()),
        (
            "raft-request",
            Message::RaftRequest(RaftMessage { request_id: 911, rpc: RaftRpc::AppendEntries, payload: RAFT_PAYLOAD }),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    for (name, message) in messages() {
        let encoded = message.to_vec().unwrap();
        assert_eq!(decode(&encoded).unwrap(), message, "{name} must round-trip");
        let mut out = vec![0_u8; BUFFER_LEN];
        let len = encoded.len();

        let mut group = c.benchmark_group(format!("codec/{name}"));
        group.bench_function("encode", |b| b.iter(|| black_box(black_box(&message).encode(black_box(&mut out)))));
        group.bench_function("decode", |b| b.iter(|| black_box(decode(black_box(&encoded)))));
        group.bench_function("copy_from_slice", |b| {
            b.iter(|| {
                let out = black_box(&mut out);
                out[..len].copy_from_slice(black_box(&encoded));
                black_box(&out);
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
