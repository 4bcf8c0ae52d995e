#!/usr/bin/env bash
# TSO throughput and latency on the testbed's `dr` cluster (bj-a and bj-b
# 1 ms apart, xa 25 ms from both; real tsod daemons, WAN relays), measured
# with `tsbench tso`: at the leader's site and at a site 25 ms from the
# leader. Each configuration runs RUNS times (default 5); the medians are
# printed, with the far site's probe round trip to the leader measured in
# the same run as the baseline for its latency.
#
#   benches/tso.sh            # or RUNS=3 DURATION=3s benches/tso.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
DURATION=${DURATION:-5s}
cargo build --release -q -p tsod -p tsod-testbed -p tsod-bench
work=$(mktemp -d)
./target/release/tsod-testbed up --for 900 --work "$work" >"$work/up.log" 2>&1 &
up=$!
trap 'kill -INT $up 2>/dev/null; wait $up 2>/dev/null; rm -rf "$work"' EXIT

status() { cat "$work"/tsod-testbed-*/"$1"/segment.status.json 2>/dev/null; }
listen() { sed -n 's/^listen = "\(.*\)"/\1/p' "$work"/tsod-testbed-*/"$1"/tsod.toml; }
leader=""
for _ in $(seq 1 120); do
  for s in bj-a bj-b xa; do
    if status "$s" | python3 -c 'import json,sys; t=json.load(sys.stdin).get("tso") or {}; sys.exit(0 if t.get("role")=="leader" and (t.get("lease_end_ns") or 0)>0 else 1)' 2>/dev/null; then
      leader=$s
    fi
  done
  [ -n "$leader" ] && break
  sleep 0.5
done
[ -n "$leader" ] || { echo "no TSO leader in 60 s" >&2; exit 1; }
if [ "$leader" = xa ]; then far=bj-a; else far=xa; fi
ca=$(echo "$work"/tsod-testbed-*/certs/ca.crt)
echo "leader $leader ($(listen $leader)), far site $far ($(listen $far)); $RUNS runs of $DURATION each"

run() { # name site concurrency count-per-call in-flight
  local out=()
  for _ in $(seq 1 "$RUNS"); do
    out+=("$(./target/release/tsbench tso --site "$(listen "$2")" --server-name "$2" --ca "$ca" \
      --concurrency "$3" --count-per-call "$4" --in-flight "$5" --duration "$DURATION" --json)")
  done
  local rtt=0
  if [ "$2" != "$leader" ]; then
    rtt=$(status "$2" | python3 -c "import json,sys; print([p['last_round_trip_ns'] for p in json.load(sys.stdin)['peers'] if p['name']=='$leader'][0] or 0)")
  fi
  printf '%s\n' "${out[@]}" | python3 -c "
import json, statistics, sys
runs = [json.loads(l) for l in sys.stdin if l.strip()]
med = lambda f: statistics.median(f(r) for r in runs)
rtt = $rtt
line = '%-34s %12.0f ts/s %10.0f calls/s  p50 %8.3f ms  p99 %8.3f ms  violations %d  errors %d' % (
    '$1', med(lambda r: r['timestamps-per-s']), med(lambda r: r['calls-per-s']),
    med(lambda r: r['latency']['p50-ns']) / 1e6, med(lambda r: r['latency']['p99-ns']) / 1e6,
    sum(r['violations']['total'] for r in runs), sum(r['errors'] for r in runs))
if rtt:
    line += '  (probe rtt %.3f ms; p99 - rtt %.3f ms)' % (rtt / 1e6, med(lambda r: r['latency']['p99-ns']) / 1e6 - rtt / 1e6)
print(line)"
}

run "leader, 1 caller, next()"        "$leader" 1   1  64
run "leader, 8 callers, next()"       "$leader" 8   1  64
run "leader, 256 callers, next()"     "$leader" 256 1  64
run "leader, 64 callers, reserve(16)" "$leader" 64  16 64
run "far, 1 caller, next()"           "$far"    1   1  64
run "far, 64 callers, next()"         "$far"    64  1  64
run "far, 64 callers, reserve(16)"    "$far"    64  16 64
