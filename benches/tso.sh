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
# forwards through. Each row also gives what the load generator cost
# (tsbench's CPU as a share of the cores it ran on, and the share its own
# measuring took: `load-generator` in tsbench's JSON) and the leader's tsod
# CPU over the run, in % of one core (/proc/PID/stat).
#
# SCALING=1 adds rows that show how next() grows with cores: tsbench's
# runtime at 1, 2, 4 and 8 worker threads, and tsbench pinned to one core
# (`taskset -c 0`) against both.
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
listen() { sed -n '/^\[site\]/,/^$/s/^listen = "\(.*\)"/\1/p' "$work"/tsod-testbed-*/"$1"/tsod.toml; }
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

leader_pid=$(pgrep -f "tsod run --config $(echo "$work"/tsod-testbed-*)/$leader/tsod.toml" | head -1)
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

run() { # name site concurrency count-per-call in-flight [threads [taskset-cpus]]
  local out=() base=() threads=${6:-2} pin=()
  [ -n "${7:-}" ] && pin=(taskset -c "$7")
  for _ in $(seq 1 "$RUNS"); do
    local t0 t1 s0 s1 json
    t0=$(cpu_ticks "$leader_pid"); s0=$(date +%s.%N)
    json=$("${pin[@]}" ./target/release/tsbench tso --site "$(listen "$2")" --server-name "$2" --ca "$ca" \
      --concurrency "$3" --count-per-call "$4" --in-flight "$5" --threads "$threads" --duration "$DURATION" --json)
    t1=$(cpu_ticks "$leader_pid"); s1=$(date +%s.%N)
    # The leader's CPU over the whole tsbench run (connect and checks included), % of one core.
    out+=("$(echo "$json" | python3 -c "import json,sys; r=json.load(sys.stdin); r['leader-cpu']=($t1-$t0)/$hz/($s1-$s0)*100; print(json.dumps(r))")")
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
load = lambda k: med(runs, lambda r: (r['load-generator'][k] or 0) * 100)
line = '%-40s %10.0f ts/s %10.0f calls/s  p50 %7.3f ms  p99 %7.3f ms  tsbench %5.1f %% of %d cores (own %4.1f %%)  leader %5.1f %%  violations %d  errors %d' % (
    '$1', med(runs, lambda r: r['timestamps-per-s']), med(runs, lambda r: r['calls-per-s']),
    med(runs, lambda r: r['latency']['p50-ns']) / 1e6, p99, load('cpu-share'), runs[0]['load-generator']['cores'],
    load('bookkeeping-share'), med(runs, lambda r: r['leader-cpu']),
    sum(r['violations']['total'] for r in runs), sum(r['errors'] for r in runs))
if base:
    rtt50 = med(base, lambda r: r['round-trip']['p50-ns']) / 1e6
    rtt99 = med(base, lambda r: r['round-trip']['p99-ns']) / 1e6
    line += '  (WAN round trip p50 %.3f ms, p99 %.3f ms; TSO p99 - rtt p99 %.3f ms)' % (rtt50, rtt99, p99 - rtt99)
print(line)"
}

run "leader, 1 caller, next()"        "$leader" 1    1  64
run "leader, 8 callers, next()"       "$leader" 8    1  64
run "leader, 64 callers, next()"      "$leader" 64   1  64
run "leader, 256 callers, next()"     "$leader" 256  1  64
run "leader, 1024 callers, next()"    "$leader" 1024 1  64
run "leader, 2048 callers, next()"    "$leader" 2048 1  64
run "leader, 64 callers, reserve(16)" "$leader" 64   16 64
if [ "${SCALING:-0}" = 1 ]; then
  for threads in 1 2 4 8; do
    run "leader, 1024 callers, next(), $threads thr" "$leader" 1024 1 64 "$threads"
  done
  run "leader, 1024 callers, next(), 1 core"  "$leader" 1024 1 64 1 0
fi
run "far, 1 caller, next()"           "$far"    1   1  64
run "far, 64 callers, next()"         "$far"    64  1  64
run "far, 64 callers, reserve(16)"    "$far"    64  16 64
