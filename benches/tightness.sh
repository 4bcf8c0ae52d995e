#!/usr/bin/env bash
# Tightness of the bound with one stratum-1 chronyd on loopback as the only
# source: the half-width a client reads (tsod now --json, 10 Hz), after a
# 20 s warm-up. Needs root and chrony. Until `tsbench uncertainty` exists,
# this is the reproducible measurement quoted in BENCHMARKS.md.
#
#   benches/tightness.sh [POLL_MS] [SECONDS] [RUNS]
set -euo pipefail
poll=${1:-250}
seconds=${2:-40}
runs=${3:-5}
cd "$(dirname "$0")/.."
cargo build -q --release -p tsod
tsod=$PWD/target/release/tsod
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'port %s\nlocal stratum 1\nallow 127.0.0.1\ncmdport 0\npidfile %s/chrony.pid\n' "$port" "$work" > "$work/chrony.conf"
chronyd -d -x -u root -f "$work/chrony.conf" >/dev/null 2>&1 &
printf '[publish]\npath = "%s/seg"\n\n[[source]]\nkind = "ntp"\nname = "chrony"\naddress = "127.0.0.1:%s"\ntimescale = "utc"\npoll-interval-ms = %s\n' \
    "$work" "$port" "$poll" > "$work/tsod.toml"
for run in $(seq "$runs"); do
    rm -f "$work/seg" "$work/seg.status.json"
    TSOD_LOG=warn "$tsod" run --config "$work/tsod.toml" &
    daemon=$!
    sleep 20
    python3 - "$tsod" "$work/seg" "$seconds" "$run" "$poll" <<'PY'
import json, statistics, subprocess, sys, time
tsod, seg, seconds, run, poll = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
hw, end = [], time.time() + seconds
while time.time() < end:
    out = subprocess.run([tsod, "now", "--segment", seg, "--json"], capture_output=True, text=True)
    if out.returncode == 0:
        d = json.loads(out.stdout)
        hw.append((d["latest_ns"] - d["earliest_ns"]) / 2000)
    time.sleep(0.1)
hw.sort()
print(f"poll {poll} ms run {run}: n={len(hw)} median {statistics.median(hw):.1f} us  "
      f"p90 {hw[9 * len(hw) // 10]:.1f} us  max {hw[-1]:.1f} us")
PY
    kill "$daemon"
    wait "$daemon" 2>/dev/null || true
done
