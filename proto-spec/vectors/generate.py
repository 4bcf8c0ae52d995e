#!/usr/bin/env python3
"""Writes the tsod-proto test vectors from SPEC.md, independently of the Rust code.

This is a second encoder, written from the layouts in SPEC.md §4 and §5 with
Python's `struct` module, so the vectors check the Rust codec against the
specification rather than against itself. Run it from anywhere:

    python3 proto-spec/vectors/generate.py

It rewrites every *.json file beside it; `cargo test -p tsod-proto` then
checks the Rust decoder, encoder and shared-memory code against them.
"""

import hashlib
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = 1
U64_MAX = 2**64 - 1
BILLION = 10**9

KIND = {
    "probe-request": 0x01, "probe-reply": 0x02, "gossip": 0x03,
    "now-request": 0x10, "now-response": 0x11, "status-request": 0x12,
    "status-response": 0x13, "tso-request": 0x14, "tso-response": 0x15,
    "raft-request": 0x40, "raft-response": 0x41, "error": 0x1F,
}
STATUS = {"synchronized": 1, "degraded": 2, "free-running": 3, "unsynchronized": 4, "disrupted": 5}
SOURCE_KIND = {"ntp": 1, "gpsd": 2, "kernel": 3, "peer": 4}
ERROR_CODE = {
    "unsupported-version": 1, "malformed": 2, "unknown-kind": 3, "unsynchronized": 4,
    "disrupted": 5, "tso-unavailable": 6, "rate-limited": 7, "unauthorized": 8,
    "overloaded": 9, "timescale-mismatch": 10, "internal": 11,
}
TIMESCALE = {"utc-smear-24h": 1}


def frame(kind, body, version=VERSION, length=None):
    """Header (§4.2) + body; `length` overrides the length field."""
    total = 8 + len(body) if length is None else length
    return struct.pack(">BBHI", version, KIND[kind], 0, total) + body


def interval(i):
    return struct.pack(">QQ", i["earliest"], i["latest"])


# ---- bodies, one function per layout ------------------------------------------------

def probe_request(m):
    return struct.pack(">QQ", m["nonce"], m["requester-send"])


def probe_reply(m):
    flags = 1 if m["local-basis"] else 0
    return (struct.pack(">QQ", m["nonce"], m["requester-send"]) + interval(m["at-receive"])
            + interval(m["at-send"]) + struct.pack(">QIBBBB", m["processing"], m["drift-bound"],
                                                   STATUS[m["status"]], TIMESCALE[m["timescale"]], flags, 0))


def site_report(m):
    hw = U64_MAX if m["half-width"] is None else m["half-width"]
    site = m["site"].encode()
    out = struct.pack(">QQIBBBBBBH", m["generation"], hw, m["drift-bound"], STATUS[m["status"]],
                      STATUS[m["local-status"]], TIMESCALE[m["timescale"]], 0, len(site), len(m["sources"]), 0)
    out += site
    for s in m["sources"]:
        name = s["name"].encode()
        flags = (1 if s["usable"] else 0) | (2 if s["falseticker"] else 0)
        out += struct.pack(">BBBBqQ", SOURCE_KIND[s["kind"]], flags, len(name), 0, s["offset"], s["error"]) + name
    return out


def request(m):
    return struct.pack(">Q", m["request-id"])


def now_response(m):
    return (struct.pack(">Q", m["request-id"]) + interval(m["interval"])
            + struct.pack(">BBHI", STATUS[m["status"]], TIMESCALE[m["timescale"]], 0, m["drift-bound"]))


def status_response(m):
    return struct.pack(">Q", m["request-id"]) + site_report(m["report"])


def tso_request(m):
    return struct.pack(">QII", m["request-id"], m["count"], 0)


def tso_response(m):
    return struct.pack(">QQII", m["request-id"], m["first"], m["count"], 0)


RAFT_RPC = {"append-entries": 1, "vote": 2, "install-snapshot": 3, "pre-vote": 4, "reset-vote": 5}


def raft(m):
    text = m["payload"].encode()
    return struct.pack(">QB3xI", m["request-id"], RAFT_RPC[m["rpc"]], len(text)) + text


def error(m):
    code = m["code"] if isinstance(m["code"], int) else ERROR_CODE[m["code"]]
    text = m["message"].encode()
    retry = 0 if m["retry-after"] is None else m["retry-after"]
    return struct.pack(">QHHI", m["request-id"], code, len(text), retry) + text


BODY = {
    "probe-request": probe_request, "probe-reply": probe_reply, "gossip": site_report,
    "now-request": request, "now-response": now_response, "status-request": request,
    "status-response": status_response, "tso-request": tso_request, "tso-response": tso_response,
    "raft-request": raft, "raft-response": raft, "error": error,
}


def encode(m):
    body = {k: v for k, v in m.items() if k != "kind"}
    return frame(m["kind"], BODY[m["kind"]](body))


# ---- generic corruptions (§4.11) ----------------------------------------------------

def set_u32(b, off, v):
    return b[:off] + struct.pack(">I", v) + b[off + 4:]


def set_u8(b, off, v):
    return b[:off] + bytes([v]) + b[off + 1:]


def generic_invalid(valid):
    b = valid
    return [
        ("header-truncated", b[:5], "truncated"),
        ("body-truncated", set_u32(b[:-1], 4, len(b) - 1), "truncated"),
        ("length-longer-than-message", b[:-1], "length-mismatch"),
        ("trailing-byte", set_u32(b + b"\x00", 4, len(b) + 1), "trailing-bytes"),
        ("version-2", set_u8(b, 0, 2), "unsupported-version"),
        ("version-0", set_u8(b, 0, 0), "unsupported-version"),
        ("header-reserved-bit", set_u8(b, 3, 0x80), "reserved-non-zero"),
        ("length-below-header", set_u32(b, 4, 7), "length-mismatch"),
        ("length-over-65535", set_u32(b, 4, 65536), "too-long"),
    ]


# ---- the messages -------------------------------------------------------------------

T0 = 1_795_462_647_000_000_000  # 2026-11-23T19:37:27Z


def iv(e, l):
    return {"earliest": e, "latest": l}


PROBE_REPLY = {
    "kind": "probe-reply", "nonce": 0x0123456789ABCDEF, "requester-send": 5_000_000_000,
    "at-receive": iv(T0 - 20_000, T0 + 20_000), "at-send": iv(T0 + 30_000, T0 + 70_002),
    "processing": 50_000, "drift-bound": 15_000, "status": "synchronized",
    "timescale": "utc-smear-24h", "local-basis": True,
}

REPORT = {
    "generation": 7, "site": "bj-a", "status": "synchronized", "local-status": "degraded",
    "timescale": "utc-smear-24h", "half-width": 25_000, "drift-bound": 15_000,
    "sources": [
        {"kind": "ntp", "name": "ntp1.bj", "usable": True, "falseticker": False, "offset": -1_200, "error": 18_000},
        {"kind": "gpsd", "name": "gps0", "usable": True, "falseticker": True, "offset": 5_000_000, "error": 1_000},
        {"kind": "peer", "name": "sh-c", "usable": True, "falseticker": False, "offset": 300, "error": 12_500_000},
        {"kind": "kernel", "name": "kernel", "usable": False, "falseticker": False, "offset": 0, "error": 0},
    ],
}

REPORT_UNSYNC = {
    "generation": 0, "site": "法兰克福", "status": "unsynchronized", "local-status": "unsynchronized",
    "timescale": "utc-smear-24h", "half-width": None, "drift-bound": 0, "sources": [],
}

# ---- TSO replication payloads (§4.13, §4.14) ------------------------------------------
# The codec only frames these JSON texts; they are written here from the shapes
# §4.13 states, so the vectors double as examples of every RPC's payload.

def node_id(site):
    """§4.13: the first 8 bytes of SHA-256 of the site name, big-endian."""
    return int.from_bytes(hashlib.sha256(site.encode()).digest()[:8], "big")


def group_digest(sites):
    """§4.13: hex of the first 8 bytes of SHA-256 over the names, sorted by
    their UTF-8 bytes, duplicates removed, joined by ','."""
    names = sorted(set(sites), key=lambda n: n.encode())
    assert all("," not in n for n in names)
    return hashlib.sha256(",".join(names).encode()).hexdigest()[:16]


def compact(value):
    """JSON text as serde_json writes it: no spaces, members in order, UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


SITES = ["bj-a", "sh-c", "xa"]
BJ, SH, XA = (node_id(n) for n in SITES)
GROUP = group_digest(SITES)


def leader_id(term, node):
    return {"term": term, "node_id": node}


def log_id(term, node, index):
    return {"leader_id": leader_id(term, node), "index": index}


def vote(term, node, committed):
    return {"leader_id": leader_id(term, node), "committed": committed}


def envelope(rpc):
    return compact({"group": GROUP, "rpc": rpc})


LEASE_END = T0 + 400_000_000
LEASE = {"holder": XA, "term": 3, "end-ns": LEASE_END}
MEMBERSHIP = {"configs": [sorted([BJ, SH, XA])],
              "nodes": {str(i): {"addr": n} for i, n in sorted(zip([BJ, SH, XA], SITES))}}
TSO_STATE = {"fence-ns": LEASE_END, "last-lease": LEASE}
MERIT = {"priority": 2, "total-round-trip-us": 61_250, "half-width-us": 40}

RAFT_REQUESTS = [
    ("append-entries-lease", 48, "append-entries", envelope({
        "vote": vote(3, XA, True), "prev_log_id": log_id(3, XA, 16),
        "entries": [{"log_id": log_id(3, XA, 17), "payload": {"Normal": {"lease": LEASE}}}],
        "leader_commit": log_id(3, XA, 16)})),
    ("vote", 47, "vote", envelope({"vote": vote(4, SH, False), "last_log_id": log_id(3, XA, 17)})),
    ("append-entries-blank-and-membership", 49, "append-entries", envelope({
        "vote": vote(1, BJ, True), "prev_log_id": None,
        "entries": [{"log_id": log_id(0, 0, 0), "payload": {"Membership": MEMBERSHIP}},
                    {"log_id": log_id(1, BJ, 1), "payload": "Blank"}],
        "leader_commit": None})),
    ("heartbeat", 50, "append-entries", envelope({
        "vote": vote(3, XA, True), "prev_log_id": log_id(3, XA, 17), "entries": [],
        "leader_commit": log_id(3, XA, 17)})),
    ("install-snapshot", 51, "install-snapshot", envelope({
        "vote": vote(3, XA, True),
        "meta": {"last_log_id": log_id(3, XA, 17),
                 "last_membership": {"log_id": log_id(0, 0, 0), "membership": MEMBERSHIP},
                 "snapshot_id": "3-17-1"},
        "offset": 0, "data": list(compact(TSO_STATE).encode()), "done": True})),
    ("pre-vote", 52, "pre-vote", envelope({
        "from": SH, "campaign": True, "term": 3, "last-log-index": 17, "merit": MERIT, "handover-to": None})),
    ("hello-handing-over", 53, "pre-vote", envelope({
        "from": XA, "campaign": False, "term": 3, "last-log-index": 17,
        "merit": {"priority": None, "total-round-trip-us": 398_000, "half-width-us": None}, "handover-to": SH})),
    ("reset-vote", 54, "reset-vote", envelope({
        "at-ns": T0, "floor-ns": T0 + 61_000_000_000, "reason": "fleet-wide GPS spoof, ticket 4711"})),
    ("append-entries-reset-vote", 55, "append-entries", envelope({
        "vote": vote(3, XA, True), "prev_log_id": log_id(3, XA, 17),
        "entries": [{"log_id": log_id(3, XA, 18), "payload": {"Normal": {"fence-reset-vote": {
            "site": SH, "reset": 1, "at-ns": T0, "floor-ns": T0 + 61_000_000_000, "sites": 3,
            "reason": "fleet-wide GPS spoof, ticket 4711"}}}}],
        "leader_commit": log_id(3, XA, 17)})),
]

RAFT_RESPONSES = [
    ("vote-granted", 47, "vote", compact({"Ok": {"vote": vote(4, SH, False), "vote_granted": True,
                                                  "last_log_id": log_id(3, XA, 17)}})),
    ("append-entries-success", 48, "append-entries", compact({"Ok": "Success"})),
    ("append-entries-conflict", 50, "append-entries", compact({"Ok": "Conflict"})),
    ("append-entries-partial", 50, "append-entries", compact({"Ok": {"PartialSuccess": log_id(3, XA, 16)}})),
    ("append-entries-higher-vote", 50, "append-entries", compact({"Ok": {"HigherVote": vote(4, SH, False)}})),
    ("install-snapshot", 51, "install-snapshot", compact({"Ok": {"vote": vote(3, XA, True)}})),
    ("raft-stopped", 48, "append-entries", compact({"Err": {"Fatal": "Stopped"}})),
    ("pre-vote-refused", 52, "pre-vote", compact({
        "granted": False, "refused": "this site heard its leader 12 ms ago", "merit": MERIT, "term": 3})),
    ("reset-vote-counted", 54, "reset-vote", compact({"Ok": {
        "outcome": {"reset": 1, "votes": 2, "needed": 2, "applied": True},
        "fence-before-ns": T0 + 3_600_000_000_000, "fence-after-ns": T0 + 61_000_000_000}})),
    ("reset-vote-refused", 54, "reset-vote", compact({"Err": "this site does not lead the TSO group"})),
]


VALID = {
    "probe-request": [
        ("typical", {"kind": "probe-request", "nonce": 0x0123456789ABCDEF, "requester-send": 5_000_000_000}),
        ("all-ones", {"kind": "probe-request", "nonce": U64_MAX, "requester-send": U64_MAX}),
    ],
    "probe-reply": [
        ("typical", PROBE_REPLY),
        ("worked-example-4-5",
         {**PROBE_REPLY, "nonce": 0x9E3779B97F4A7C15, "requester-send": 1_000_000_000_000,
          "at-receive": iv(T0 - 40_000, T0 + 40_000), "at-send": iv(T0 - 10_001, T0 + 70_001),
          "processing": 30_000}),
        ("holdover-without-local-basis-flag",
         {**PROBE_REPLY, "status": "free-running", "local-basis": False, "drift-bound": 1_000_000,
          "at-send": iv(T0 + 30_000, T0 + 30_000)}),
    ],
    "gossip": [
        ("four-sources", {"kind": "gossip", **REPORT}),
        ("unsynchronized-no-sources-utf8-name", {"kind": "gossip", **REPORT_UNSYNC}),
    ],
    "now-request": [("typical", {"kind": "now-request", "request-id": 42})],
    "now-response": [
        ("degraded", {"kind": "now-response", "request-id": 42, "interval": iv(T0 - 31_000, T0 + 29_000),
                      "status": "degraded", "timescale": "utc-smear-24h", "drift-bound": 15_000}),
        ("unsynchronized-still-decodes",
         {"kind": "now-response", "request-id": 1, "interval": iv(0, 0), "status": "unsynchronized",
          "timescale": "utc-smear-24h", "drift-bound": 0}),
        ("disrupted-still-decodes",
         {"kind": "now-response", "request-id": 2, "interval": iv(T0, T0), "status": "disrupted",
          "timescale": "utc-smear-24h", "drift-bound": 1_000_000}),
    ],
    "status-request": [("typical", {"kind": "status-request", "request-id": 43})],
    "status-response": [("typical", {"kind": "status-response", "request-id": 43, "report": REPORT})],
    "tso-request": [
        ("hundred", {"kind": "tso-request", "request-id": 44, "count": 100}),
        ("maximum-count", {"kind": "tso-request", "request-id": 45, "count": 65_536}),
    ],
    "tso-response": [
        ("hundred", {"kind": "tso-response", "request-id": 44, "first": (1_795_462_647_000_000 << 12) | 5,
                     "count": 100}),
        ("ends-exactly-at-max", {"kind": "tso-response", "request-id": 46, "first": U64_MAX - 99, "count": 100}),
    ],
    "raft-request": [(name, {"kind": "raft-request", "request-id": rid, "rpc": rpc, "payload": payload})
                     for name, rid, rpc, payload in RAFT_REQUESTS],
    "raft-response": [(name, {"kind": "raft-response", "request-id": rid, "rpc": rpc, "payload": payload})
                      for name, rid, rpc, payload in RAFT_RESPONSES],
    "error": [
        ("tso-unavailable", {"kind": "error", "request-id": 44, "code": "tso-unavailable", "retry-after": 250,
                             "message": "no leader: election in progress"}),
        ("unknown-code-kept", {"kind": "error", "request-id": 0, "code": 999, "retry-after": None, "message": ""}),
    ],
}


def specific_invalid(kind, b):
    """Kind-specific corruptions of the first valid vector `b`."""
    if kind == "probe-request":
        return [("unknown-kind-0x42", set_u8(b, 1, 0x42), "unknown-kind"),
                ("reserved-kind-0x4f", set_u8(b, 1, 0x4F), "unknown-kind")]
    if kind == "probe-reply":
        swapped = b[:24] + b[32:40] + b[24:32] + b[40:]
        return [
            ("at-receive-inverted", swapped, "inverted-interval"),
            ("status-0", set_u8(b, 68, 0), "invalid-status"),
            ("status-6", set_u8(b, 68, 6), "invalid-status"),
            ("timescale-7", set_u8(b, 69, 7), "unknown-timescale"),
            ("flag-bit-1", set_u8(b, 70, 0x03), "reserved-non-zero"),
            ("reserved-byte", set_u8(b, 71, 1), "reserved-non-zero"),
            ("drift-bound-over-1000ppm", set_u32(b, 64, 1_000_001), "invalid-field"),
        ]
    if kind == "gossip":
        first_source = 36 + 4
        return [
            ("half-width-with-unsynchronized-status", set_u8(b, 28, STATUS["unsynchronized"]), "invalid-field"),
            ("site-name-control-char", set_u8(b, 37, 0x07), "invalid-text"),
            ("site-name-not-utf8", set_u8(b, 37, 0xFF), "invalid-text"),
            ("site-name-empty", set_u8(b, 32, 0), "invalid-field"),
            ("site-name-64-bytes", set_u8(b, 32, 64), "invalid-field"),
            ("source-count-65", set_u8(b, 33, 65), "invalid-field"),
            ("source-kind-9", set_u8(b, first_source, 9), "unknown-source-kind"),
            ("source-flag-bit-2", set_u8(b, first_source + 1, 0x05), "reserved-non-zero"),
            ("source-name-empty", set_u8(b, first_source + 2, 0), "invalid-field"),
            ("report-reserved-byte", set_u8(b, 31, 1), "reserved-non-zero"),
        ]
    if kind == "now-response":
        return [
            ("interval-inverted", b[:16] + b[24:32] + b[16:24] + b[32:], "inverted-interval"),
            ("reserved-after-timescale", set_u8(b, 34, 1), "reserved-non-zero"),
        ]
    if kind == "status-response":
        return [("report-status-0", set_u8(b, 36, 0), "invalid-status")]
    if kind == "tso-request":
        return [("count-0", set_u32(b, 16, 0), "invalid-field"),
                ("count-65537", set_u32(b, 16, 65_537), "invalid-field"),
                ("reserved-word", set_u32(b, 20, 1), "reserved-non-zero")]
    if kind == "tso-response":
        return [("range-passes-max", b[:16] + struct.pack(">Q", U64_MAX - 98) + b[24:], "invalid-field"),
                ("count-0", set_u32(b, 24, 0), "invalid-field")]
    if kind in ("raft-request", "raft-response"):
        return [("rpc-0", set_u8(b, 16, 0), "invalid-field"),
                ("rpc-6", set_u8(b, 16, 6), "invalid-field"),
                ("reserved-byte", set_u8(b, 17, 1), "reserved-non-zero"),
                ("payload-empty", frame(kind, struct.pack(">QB3xI", 1, 2, 0)), "invalid-field"),
                ("payload-control-char", frame(kind, struct.pack(">QB3xI", 1, 2, 3) + b"a\nb"), "invalid-text"),
                ("payload-not-utf8", frame(kind, struct.pack(">QB3xI", 1, 2, 1) + b"\xff"), "invalid-text")]
    if kind == "error":
        return [("message-1025-bytes", frame("error", struct.pack(">QHHI", 1, 2, 1025, 0) + b"x" * 1025),
                 "invalid-field"),
                ("message-control-char", frame("error", struct.pack(">QHHI", 1, 2, 3, 0) + b"a\nb"), "invalid-text"),
                ("code-0", frame("error", struct.pack(">QHHI", 1, 0, 0, 0)), "invalid-field")]
    return []


# ---- shared memory (§5) -------------------------------------------------------------

BOOT_ID = bytes.fromhex("6f1c2a3b4c5d4e6f8091a2b3c4d5e6f7")
MAX_HORIZON = 3600 * BILLION  # §5.3: valid_until − reference above this is corrupt


def rates(frequency_ppb, drift_bound_ppb):
    """§5.4: the Q32.32 rate bounds of a drift model, rounded outwards."""
    low = ((BILLION + frequency_ppb - drift_bound_ppb) << 32) // BILLION
    high = -((-((BILLION + frequency_ppb + drift_bound_ppb) << 32)) // BILLION)
    return low, high


def shm_image(s):
    """The 192-byte little-endian image of a segment (§5.3)."""
    header = (b"TSOD-SHM" + struct.pack("<IIII", s.get("layout-version", 1), s.get("file-size", 4096),
                                         s.get("reader-clock", 4), s.get("timescale", 1))
              + BOOT_ID + bytes(24))
    state = struct.pack("<QQQQQQQIIQQQ", s["generation"], s["reference"], s["earliest"], s["latest"],
                        s["rate-low-q32"], s["rate-high-q32"], s["valid-until"], s["status"], 0,
                        s["disruption-count"], s["reference-boottime"], s["writer-instance"]) + bytes(40)
    out = header + state
    assert len(out) == 192
    return out


def extrapolate(s, now):
    """§5.4, in exact integers."""
    if s["status"] == STATUS["unsynchronized"]:
        return "unsynchronized"
    if s["status"] == STATUS["disrupted"]:
        return "disrupted"
    if now > s["valid-until"]:
        return "stale"
    low, high = s["rate-low-q32"], s["rate-high-q32"]
    if now >= s["reference"]:
        m = now - s["reference"]
        lo = s["earliest"] + ((m * low) >> 32)
        hi = s["latest"] + ((m * high + (1 << 32) - 1) >> 32)
    else:
        m = s["reference"] - now
        lo = s["earliest"] - ((m * high + (1 << 32) - 1) >> 32)
        hi = s["latest"] - ((m * low) >> 32)
    if lo < 0 or hi > U64_MAX:
        return "out-of-range"
    return iv(lo, hi)


def with_model(s, frequency_ppb, drift_bound_ppb):
    low, high = rates(frequency_ppb, drift_bound_ppb)
    return {**s, "model": {"frequency-ppb": frequency_ppb, "drift-bound-ppb": drift_bound_ppb},
            "rate-low-q32": low, "rate-high-q32": high}


def shm_vectors():
    base = with_model({
        "generation": 10, "reference": 3_600_000_000_000, "earliest": T0 - 12_000, "latest": T0 + 11_000,
        "status": 1, "valid-until": 3_601_000_000_000, "disruption-count": 2,
        "reference-boottime": 3_700_000_000_000, "writer-instance": 0x0DDC0FFEE0DDF00D,
    }, 23_456, 2_000)
    reads = [
        ("at-reference", base, 3_600_000_000_000),
        ("half-second-later", base, 3_600_500_000_000),
        ("one-ns-before-reference", base, 3_599_999_999_999),
        ("at-horizon", base, 3_601_000_000_000),
        ("past-horizon", base, 3_601_000_000_001),
        ("negative-frequency", with_model(base, -1_000_000, 1_000_000), 3_600_333_333_333),
        ("exact-clock", with_model(base, 0, 0), 3_600_700_000_001),
        ("degraded", {**base, "status": 2}, 3_600_000_001_000),
        ("free-running", {**base, "status": 3}, 3_600_100_000_000),
        ("unsynchronized", {**base, "status": 4}, 3_600_000_000_000),
        ("disrupted", {**base, "status": 5}, 3_600_000_000_000),
        ("before-epoch", {**base, "earliest": 5, "latest": 10}, 3_599_000_000_000),
        ("horizon-at-cap", {**base, "valid-until": base["reference"] + MAX_HORIZON}, base["reference"] + MAX_HORIZON),
        ("valid-until-before-reference", {**base, "valid-until": base["reference"] - 1}, base["reference"]),
    ]
    corrupt = [
        ("bad-magic", {**base}, lambda b: b"TSOD-SHN" + b[8:], "bad-magic"),
        ("layout-version-2", {**base, "layout-version": 2}, None, "unsupported-layout"),
        ("layout-version-byte-swapped", {**base, "layout-version": 0x01000000}, None, "unsupported-layout"),
        ("file-size-8192", {**base, "file-size": 8192}, None, "wrong-size"),
        ("reader-clock-monotonic", {**base, "reader-clock": 1}, None, "wrong-reader-clock"),
        ("timescale-0", {**base, "timescale": 0}, None, "unknown-timescale"),
        ("other-boot", {**base}, lambda b: b[:24] + bytes(16) + b[40:], "other-boot"),
        ("generation-odd", {**base, "generation": 11}, None, "busy"),
        ("status-0", {**base, "status": 0}, None, "corrupt"),
        ("inverted-interval", {**base, "earliest": T0 + 1, "latest": T0}, None, "corrupt"),
        ("rate-high-above-range", {**base, "rate-high-q32": 4_303_557_232}, None, "corrupt"),
        ("rate-low-below-range", {**base, "rate-low-q32": 4_286_377_360}, None, "corrupt"),
        ("rates-inverted", {**base, "rate-low-q32": base["rate-high-q32"] + 1}, None, "corrupt"),
        ("rates-zero", {**base, "rate-low-q32": 0, "rate-high-q32": 0}, None, "corrupt"),
        ("horizon-beyond-cap", {**base, "valid-until": base["reference"] + MAX_HORIZON + 1}, None, "corrupt"),
        ("valid-until-max", {**base, "valid-until": U64_MAX}, None, "corrupt"),
    ]
    out = {
        "kind": "shm",
        "boot-id": BOOT_ID.hex(),
        "byte-order": "little-endian (the image as on x86-64 and AArch64 Linux)",
        "valid": [],
        "invalid": [],
    }
    for name, s, now in reads:
        out["valid"].append({"name": name, "image": shm_image(s).hex(), "state": s, "now": now,
                             "expect": extrapolate(s, now)})
    for name, s, mutate, err in corrupt:
        img = shm_image(s)
        if mutate:
            img = mutate(img)
        out["invalid"].append({"name": name, "image": img.hex(), "error": err})
    return out


def main():
    for kind, cases in VALID.items():
        valid = [{"name": n, "hex": encode(m).hex(), "decoded": m} for n, m in cases]
        first = encode(cases[0][1])
        invalid = [{"name": n, "hex": b.hex(), "error": e}
                   for n, b, e in generic_invalid(first) + specific_invalid(kind, first)]
        doc = {"kind": kind, "valid": valid, "invalid": invalid}
        with open(os.path.join(HERE, f"{kind}.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, ensure_ascii=False)
            f.write("\n")
    with open(os.path.join(HERE, "shm.json"), "w", encoding="utf-8") as f:
        json.dump(shm_vectors(), f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
