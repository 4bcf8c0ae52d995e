#!/usr/bin/env bash
# Thousands of clients on one tsod site (issue 19): for each N in COUNTS,
# a fresh single-site daemon (QUIC on 127.0.0.1, mutual TLS, client limits
# raised to MAX_CONNECTIONS) and `tsbench clients` with N clients, each its
# own connection, PER_SOCKET of them sharing a UDP socket and source address
# (--sources 127.0.0.0/8, PER_PREFIX clients a /24), calling CALL (now or
# next) every CALL_INTERVAL, ramped at RAMP_RATE a second and held for HOLD.
# The daemon is left SETTLE after it leads, so that its bound has narrowed
# before the "before" half-width is sampled. tsbench samples the daemon from
# /proc (RSS, CPU time, descriptors) and its published half-width from the
# segment before the clients and while they are held. Prints a Markdown
# table, one row per N; the JSON and the daemon log of each run stay in
# $KEEP if set. TSOD_LOG sets the daemon's log filter (default warn).
#
# PER_SOCKET=1 is what separate client hosts look like, but tsbench then
# runs a receive loop per client, and past ~5 000 clients on its one core
# the load generator saturates before the site does (BENCHMARKS.md).
#
# The site's time source is a stratum-1 NTP server on loopback serving the
# host's clock (python3, below): the host clock is true time here, as in
# the testbed. With PIN=1 (default) the daemon and its NTP server run on
# CPU 0 and tsbench on CPU 1, so the daemon's CPU share is of its own core.
#
#   benches/clients.sh             # or COUNTS="1000 10000" HOLD=20s CALL=next benches/clients.sh
set -euo pipefail
cd "$(dirname "$0")/.."
COUNTS=${COUNTS:-1000 5000 10000}
HOLD=${HOLD:-30s}
BEFORE=${BEFORE:-10s}
CALL=${CALL:-now}
CALL_INTERVAL=${CALL_INTERVAL:-1s}
RAMP_RATE=${RAMP_RATE:-2000}
IN_FLIGHT=${IN_FLIGHT:-128}
PER_PREFIX=${PER_PREFIX:-50}
# Clients per UDP socket in tsbench; must divide PER_PREFIX.
PER_SOCKET=${PER_SOCKET:-10}
SETTLE=${SETTLE:-60}
THREADS=${THREADS:-1}
MAX_CONNECTIONS=${MAX_CONNECTIONS:-20000}
PIN=${PIN:-1}
# Each client's RemoteOptions::dead_after (e.g. 3s); empty: the client
# library's default (250 ms: a keep-alive every ~83 ms per idle client).
DEAD_AFTER=${DEAD_AFTER:-}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p tsod -p tsod-bench
tsod=$target/release/tsod
tsbench=$target/release/tsbench

largest=0
for n in $COUNTS; do [ "$n" -gt "$largest" ] && largest=$n; done
# One UDP socket per PER_SOCKET clients in tsbench; the daemon serves them all on one.
ulimit -n "$(( largest / PER_SOCKET + 1024 ))" 2>/dev/null || {
  echo "cannot raise the open-files limit to $(( largest / PER_SOCKET + 1024 )) (hard limit $(ulimit -Hn))" >&2; exit 1; }
# `$(pin CPU) command…`: the command on that CPU (taskset execs it, so $!
# of a background one is the command's own process id).
pin() { if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ]; then echo "taskset -c $1"; fi; }

work=$(mktemp -d)
daemon=""
ntp=""
stop_daemon() { if [ -n "$daemon" ]; then kill -TERM "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; daemon=""; fi; }
trap 'stop_daemon; [ -n "$ntp" ] && kill "$ntp" 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A stratum-1 NTP server on loopback serving the host's clock. The receive
# timestamp is the kernel's (SO_TIMESTAMPNS), so time the server's process
# waits for the CPU counts as its residence, not as path delay.
ntp_port=$(free_port)
cat >"$work/ntp.py" <<'PY'
import socket, struct, sys, time
SO_TIMESTAMPNS = 35  # Linux
EPOCH = 2208988800
def ntp(ns):
    s, frac = divmod(ns, 10**9)
    return ((s + EPOCH) << 32) | ((frac << 32) // 10**9)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
sock.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    data, ancillary, _, addr = sock.recvmsg(512, 64)
    t2 = time.time_ns()
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
            sec, nsec = struct.unpack("qq", value[:16])
            t2 = sec * 10**9 + nsec
    if len(data) < 48 or data[0] & 7 != 3:
        continue
    version = (data[0] >> 3) & 7
    t3 = time.time_ns()
    reply = struct.pack("!BBBbII4sQ8sQQ", (version << 3) | 4, 1, data[2], -20, 0, 0, b"GPS\0",
                        ntp(t3), data[40:48], ntp(t2), ntp(t3))
    sock.sendto(reply, addr)
PY
$(pin 0) python3 "$work/ntp.py" "$ntp_port" &
ntp=$!

quic=$(free_port)
"$tsod" cluster init --out "$work/cluster" --site site-a=127.0.0.1 >/dev/null
"$tsod" cluster add-client --dir "$work/cluster" --name app >/dev/null
cert=$(ls "$work"/cluster/app*.crt)
key=$(ls "$work"/cluster/app*.key)
cat >"$work/tsod.toml" <<TOML
[publish]
path = "$work/segment"

[site]
name = "site-a"
listen = "127.0.0.1:$quic"
cluster-dir = "$work/cluster"

[clients]
max-connections = $MAX_CONNECTIONS

[tso]
state-dir = "$work/tso"

[[source]]
kind = "ntp"
name = "local-gps"
address = "127.0.0.1:$ntp_port"
timescale = "utc"
poll-interval-ms = 500
TOML
"$tsod" check-config "$work/tsod.toml" >/dev/null
"$tsod" cluster bootstrap --config "$work/tsod.toml" >/dev/null

start_daemon() {
  rm -f "$work/segment" "$work/segment.status.json"
  TSOD_LOG=${TSOD_LOG:-warn} $(pin 0) "$tsod" run --config "$work/tsod.toml" 2>>"$work/tsod.log" &
  daemon=$!
  "$tsod" wait-sync --segment "$work/segment" --timeout 60s >/dev/null
  # The TSO leads once its lease is committed: wait for the status to say so.
  for _ in $(seq 1 60); do
    "$tsod" status --segment "$work/segment" --json 2>/dev/null | python3 -c '
import json, sys
t = json.load(sys.stdin).get("tso") or {}
sys.exit(0 if t.get("role") == "leader" else 1)' && return 0
    sleep 0.5
  done
  echo "the TSO did not lead within 30 s" >&2
  return 1
}

settle() {
  echo "letting the daemon's bound settle for ${SETTLE} s" >&2
  sleep "$SETTLE"
}

echo "| clients | per socket | call | dead after | established | handshakes/s | p50 | p99 | max | call errors | daemon RSS before → held | per connection | daemon CPU before / ramp / held | half-width p50 (p99) before | held | tsbench CPU held |"
echo "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---|---|---:|"
for n in $COUNTS; do
  start_daemon
  settle
  out=$work/clients-$n.json
  $(pin 1) "$tsbench" clients --site "127.0.0.1:$quic" --server-name site-a --ca "$work/cluster/ca.crt" \
    --cert "$cert" --key "$key" --connections "$n" --call "$CALL" --call-interval "$CALL_INTERVAL" \
    --per-socket "$PER_SOCKET" --ramp-rate "$RAMP_RATE" --in-flight "$IN_FLIGHT" --sources 127.0.0.0/8 --per-prefix "$PER_PREFIX" \
    --threads "$THREADS" --hold "$HOLD" --before "$BEFORE" --daemon-pid "$daemon" --segment "$work/segment" \
    ${DEAD_AFTER:+--dead-after "$DEAD_AFTER"} --json >"$out" || echo "tsbench clients with $n clients failed (figures below)" >&2
  [ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$out" "$KEEP/" && cp "$work/tsod.log" "$KEEP/tsod-$n.log"
  python3 - "$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
d, h = r.get("daemon") or {}, r.get("half-width") or {}
ms = lambda ns: "%.2f ms" % (ns / 1e6)
us = lambda s: "-" if not s else "%.1f µs (%.1f)" % (s["p50-ns"] / 1e3, s["p99-ns"] / 1e3)
mib = lambda k: "-" if k is None else "%.1f MiB" % (k / 1024)
pct = lambda x: "-" if x is None else "%.1f %%" % (x * 100)
errors = "%d" % r["errors"] + ("" if not r["error-kinds"] else " (%s)" % ", ".join("%s %d" % kv for kv in r["error-kinds"].items()))
at = r.get("connect-errors-dialled-at-s") or []
when = "" if not at else ", dialled %.1f – %.1f s into the ramp" % (at[0], at[-1])
failed = "" if not r["connect-error-kinds"] else " (failed: %s%s)" % (", ".join("%s %d" % kv for kv in r["connect-error-kinds"].items()), when)
print("| %d | %d | %s | %g s | %d%s | %.0f | %s | %s | %s | %s | %s → %s | %s | %s / %s / %s | %s | %s | %s |" % (
    r["connections"], r["per-socket"], r["call"], r["dead-after-s"], r["established"], failed, r["handshakes-per-s"],
    ms(r["latency"]["p50-ns"]), ms(r["latency"]["p99-ns"]), ms(r["latency"]["max-ns"]), errors,
    mib(d.get("rss-before-kib")), mib(d.get("rss-held-kib")),
    "-" if d.get("rss-per-connection-kib") is None else "%.1f KiB" % d["rss-per-connection-kib"],
    pct(d.get("cpu-before")), pct(d.get("cpu-ramp")), pct(d.get("cpu-held")),
    us(h.get("before")), us(h.get("held")), pct(r.get("tsbench-cpu-held"))))
slow = r.get("slow-calls-by-second") or []
if any(slow):
    print("%d clients: calls failed or over 100 ms, by second from the ramp's start (ramp %.1f s): %s" % (
        r["connections"], r["ramp-s"], " ".join("%d:%d" % (t, n) for t, n in enumerate(slow) if n)), file=sys.stderr)
PY
  stop_daemon
done
