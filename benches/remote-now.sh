#!/usr/bin/env bash
# Remote now() over QUIC on loopback: `tsbench now --remote` against one tsod
# site fed by a stratum-1 chronyd, with a client certificate from the
# cluster CA. Prints, per run, the p50/p99 of RemoteClock::now_at(), the
# half-width the client got (widened by its round trip) and the
# clock_gettime(CLOCK_REALTIME) median measured in the same run. Needs root
# and chrony (chronyd serves the site's time).
#
#   benches/remote-now.sh [COUNT] [RUNS]
set -euo pipefail
count=${1:-10000}
runs=${2:-5}
cd "$(dirname "$0")/.."
cargo build -q --release -p tsod -p tsod-bench
tsod=$PWD/target/release/tsod
tsbench=$PWD/target/release/tsbench
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ntp=$(free_port)
quic=$(free_port)
printf 'port %s\nlocal stratum 1\nallow 127.0.0.1\ncmdport 0\npidfile %s/chrony.pid\n' "$ntp" "$work" > "$work/chrony.conf"
chronyd -d -x -u root -f "$work/chrony.conf" >/dev/null 2>&1 &
"$tsod" cluster init --out "$work/cluster" --site site-a=127.0.0.1 --site app >/dev/null
cat > "$work/tsod.toml" <<TOML
[publish]
path = "$work/seg"

[site]
name = "site-a"
listen = "127.0.0.1:$quic"
cluster-dir = "$work/cluster"

[clients]
# The benchmark measures latency, not the limit.
max-requests-per-second = 1000000

[[source]]
kind = "ntp"
name = "chrony"
address = "127.0.0.1:$ntp"
timescale = "utc"
poll-interval-ms = 250
TOML
TSOD_LOG=warn "$tsod" run --config "$work/tsod.toml" &
sleep 15
for run in $(seq "$runs"); do
    "$tsbench" now --remote "127.0.0.1:$quic" --ca "$work/cluster/ca.crt" --server-name site-a \
        --cert "$work/cluster/app.crt" --key "$work/cluster/app.key" --count "$count" --json > "$work/run.json"
    python3 - "$run" "$work/run.json" <<'PY'
import json, sys
run, d = sys.argv[1], json.load(open(sys.argv[2]))
n, h, r = d["series"]["now"], d["half-width"], d["series"]["clock-gettime-realtime"]
print("run %s: now_at p50 %.1f us p99 %.1f us | half-width p50 %.1f us p99 %.1f us | "
      "clock_gettime p50 %d ns | ratio %.0fx | errors %d"
      % (run, n["p50-ns"] / 1e3, n["p99-ns"] / 1e3, h["p50-ns"] / 1e3, h["p99-ns"] / 1e3,
         r["p50-ns"], d["ratio-now-to-realtime"], d["errors"]))
PY
done
