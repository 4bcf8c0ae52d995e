#!/usr/bin/env bash
# TSO throughput and latency on a testbed cluster (real tsod daemons, WAN
# relays), measured with `tsbench tso`: at the leader's site and at the site
# farthest from the leader. TOPOLOGY picks the cluster (default `dr`: bj-a
# and bj-b 1 ms apart, xa 25 ms from both; `global`: three continents,
# 160-230 ms; or a topology file, e.g. testbed/topologies/global-priority.toml
# where virginia leads and shanghai is 230 ms from it). Each configuration
# runs RUNS times (default 5); the medians are printed, with the far site's
# baseline measured in the same run: QUIC round trips (`tsbench now
# --remote`) to the leader through the same WAN relay the far site's daemon
# forwards through.
#
#   benches/tso.sh            # or RUNS=3 DURATION=3s TOPOLOGY=global benches/tso.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
DURATION=${DURATION:-5s}
TOPOLOGY=${TOPOLOGY:-dr}
cargo build --release -q -p tsod -p tsod-testbed -p tsod-bench
work=$(mktemp -d)
./target/release/tsod-testbed up --topology "$TOPOLOGY" --for 900 --work "$work" >"$work/up.log" 2>&1 &
up=$!
trap 'kill -INT $up 2>/dev/null; wait $up 2>/dev/null; rm -rf "$work"' EXIT

status() { cat "$work"/tsod-testbed-*/"$1"/segment.status.json 2>/dev/null; }
listen() { sed -n 's/^listen = "\(.*\)"/\1/p' "$work"/tsod-testbed-*/"$1"/tsod.toml; }
for _ in $(seq 1 60); do
  ls "$work"/tsod-testbed-*/*/tsod.toml >/dev/null 2>&1 && break
  sleep 0.5
done
sites=$(for f in "$work"/tsod-testbed-*/*/tsod.toml; do basename "$(dirname "$f")"; done)
leader=""
# The leader once it has led for 5 s (leadership may first move to the preferred site).
stable=0
for _ in $(seq 1 240); do
  previous=$leader
  leader=""
  for s in $sites; do
    if status "$s" | python3 -c 'import json,sys; t=json.load(sys.stdin).get("tso") or {}; sys.exit(0 if t.get("role")=="leader" and (t.get("lease_end_ns") or 0)>0 else 1)' 2>/dev/null; then
      leader=$s
    fi
  done
  if [ -n "$leader" ] && [ "$leader" = "$previous" ]; then stable=$((stable + 1)); else stable=0; fi
  [ "$stable" -ge 10 ] && break
  sleep 0.5
done
[ "$stable" -ge 10 ] || { echo "no stable TSO leader in 120 s" >&2; exit 1; }
# The far site: the one with the longest round trip to the leader.
far=${FAR:-$(status "$leader" | python3 -c '
import json, sys
peers = json.load(sys.stdin).get("peers", [])
print(max(peers, key=lambda p: p.get("last_round_trip_ns") or 0)["name"])')}
ca=$(echo "$work"/tsod-testbed-*/certs/ca.crt)
echo "leader $leader ($(listen $leader)), far site $far ($(listen $far)); $RUNS runs of $DURATION each"

# The far site's WAN link to the leader: the relay its [[peer]] entry names.
peer_address() { # site peer
  awk -v want="$2" '/^name = /{gsub(/"/,"",$3); name=$3} /^address = /{gsub(/"/,"",$3); if (name==want) print $3}' \
    "$work"/tsod-testbed-*/"$1"/tsod.toml
}

run() { # name site concurrency count-per-call in-flight
  local out=() base=()
  for _ in $(seq 1 "$RUNS"); do
    out+=("$(./target/release/tsbench tso --site "$(listen "$2")" --server-name "$2" --ca "$ca" \
      --concurrency "$3" --count-per-call "$4" --in-flight "$5" --duration "$DURATION" --json)")
    if [ "$2" != "$leader" ]; then
      # Baseline, in the same run: one QUIC round trip to the leader over
      # the very relay the far site's daemon forwards through.
      base+=("$(./target/release/tsbench now --remote "$(peer_address "$2" "$leader")" --server-name "$leader" \
        --ca "$ca" --duration "$DURATION" --json)")
    fi
  done
  { printf '%s\n' "${out[@]}"; echo '---'; printf '%s\n' "${base[@]}"; } | python3 -c "
import json, statistics, sys
text = sys.stdin.read().split('---')
runs = [json.loads(l) for l in text[0].splitlines() if l.strip()]
base = [json.loads(l) for l in text[1].splitlines() if l.strip()]
med = lambda rs, f: statistics.median(f(r) for r in rs)
p99 = med(runs, lambda r: r['latency']['p99-ns']) / 1e6
line = '%-34s %12.0f ts/s %10.0f calls/s  p50 %8.3f ms  p99 %8.3f ms  violations %d  errors %d' % (
    '$1', med(runs, lambda r: r['timestamps-per-s']), med(runs, lambda r: r['calls-per-s']),
    med(runs, lambda r: r['latency']['p50-ns']) / 1e6, p99,
    sum(r['violations']['total'] for r in runs), sum(r['errors'] for r in runs))
if base:
    rtt50 = med(base, lambda r: r['round-trip']['p50-ns']) / 1e6
    rtt99 = med(base, lambda r: r['round-trip']['p99-ns']) / 1e6
    line += '  (WAN round trip p50 %.3f ms, p99 %.3f ms; TSO p99 - rtt p99 %.3f ms)' % (rtt50, rtt99, p99 - rtt99)
print(line)"
}

run "leader, 1 caller, next()"        "$leader" 1   1  64
run "leader, 8 callers, next()"       "$leader" 8   1  64
run "leader, 256 callers, next()"     "$leader" 256 1  64
run "leader, 64 callers, reserve(16)" "$leader" 64  16 64
run "far, 1 caller, next()"           "$far"    1   1  64
run "far, 64 callers, next()"         "$far"    64  1  64
run "far, 64 callers, reserve(16)"    "$far"    64  16 64
