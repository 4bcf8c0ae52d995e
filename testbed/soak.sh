#!/usr/bin/env bash
# A soak (issue 19): the `dr` cluster for SOAK_MINUTES under the testbed's
# TSO load (four callers per site, checked for duplicates, real-time order
# and honesty) and a fault every FAULT_EVERY seconds, five kinds in turn:
#
#   kill the TSO leader, restart it 10 s later     (a new process: new PID)
#   pause (SIGSTOP) the leader, resume it 3 s later
#   partition xa, heal 15 s later
#   GPS outage at bj-a, restored 20 s later
#   bj-b's NTP server a falseticker (+20 ms claiming ±50 µs), restored 20 s later
#
# The faults are a generated scenario (OUT/soak.toml, run with
# `tsod-testbed run`), so the truth checker judges every site's interval
# and the TSO checker every timestamp the whole time. Every SAMPLE_EVERY
# seconds from the end of the warm-up (t = 0) it samples each site's tsod:
# PID and age, RSS (VmRSS), open fds, threads, and the bytes waiting in the
# receive queues of its UDP sockets (the kernel's queue in front of the
# QUIC endpoint: the daemon exports no gauge of queued work), the WAN
# relays' datagrams in flight (links.json), and its Raft applied index
# (tsod_tso_applied_index: a snapshot is taken every 1 000 entries).
#
# Like with like: a killed site's daemon comes back as a new process. A
# site whose PID is the same at the settled sample (the first at or after
# SETTLED_AT s) and the last is compared settled → end, and t = 0 → end is
# shown beside it. SETTLED_AT (300 s) is one round of the five fault kinds
# and past the first Raft snapshot: the daemon's live heap is a sawtooth
# (the Raft log grows ~3 KB/s between snapshots, and each snapshot's purge
# frees it), and the allocator keeps the pages of the first rounds'
# highest water mark, so RSS steps up by 2 – 3 MB in the first minutes and
# is flat after (BENCHMARKS.md, soak: the heap measured with heaptrack).
# A site whose PID changed is compared its newest process, at its age at
# the last sample, with its earliest process sampled at the same age
# (within AGE_MATCH s), or says n/a. The leader kill can only hit a site
# that leads, so xa (the far site, which does not lead on dr) normally
# keeps one process throughout.
#
# Exits non-zero on any interval that excluded true time, any TSO
# duplicate, regression or dishonest timestamp, any event that could not be
# applied, any compared RSS growth over RSS_TOLERANCE_PCT or fd growth over
# FD_TOLERANCE, TSO latency (timestamp-weighted p50 over all sites, in the
# quiet phases: after a repair) in the last LATENCY_WINDOW s over
# LATENCY_FACTOR × the first window's + 1 ms, or no site compared at all.
#
# Usage: testbed/soak.sh
# Env: SOAK_MINUTES (30), FAULT_EVERY (s, 60), WARMUP (s, 60), SAMPLE_EVERY
#      (s, 60), LATENCY_WINDOW (s, 300, at most half the run),
#      RSS_TOLERANCE_PCT (10), FD_TOLERANCE (2), LATENCY_FACTOR (2),
#      AGE_MATCH (s, 30), SETTLED_AT (s, 300), PROFILE (release), OUT (a new /tmp/tsod-soak.* dir,
#      kept: soak.toml, report.json, samples.csv, summary.md).
# Run by hand on an otherwise idle machine; a short check: SOAK_MINUTES=4 FAULT_EVERY=30.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${SOAK_MINUTES:-30}
fault_every=${FAULT_EVERY:-60}
warmup=${WARMUP:-60}
sample_every=${SAMPLE_EVERY:-60}
rss_tol=${RSS_TOLERANCE_PCT:-10}
fd_tol=${FD_TOLERANCE:-2}
lat_factor=${LATENCY_FACTOR:-2}
age_match=${AGE_MATCH:-30}
settled_at=${SETTLED_AT:-300}
profile=${PROFILE:-release}
for v in minutes fault_every warmup sample_every rss_tol fd_tol age_match settled_at; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "soak.sh: $v must be a whole number, not '${!v}'" >&2; exit 2; }
done
[[ $lat_factor =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "soak.sh: LATENCY_FACTOR must be a number" >&2; exit 2; }
duration=$((minutes * 60))
((minutes >= 2 && minutes <= 360 && fault_every >= 25 && sample_every >= 5 && warmup <= 600)) || {
    echo "soak.sh: needs 2 ≤ SOAK_MINUTES ≤ 360 (a scenario lasts at most 6 h), FAULT_EVERY ≥ 25 (the longest fault lasts 20 s), SAMPLE_EVERY ≥ 5, WARMUP ≤ 600" >&2
    exit 2
}
lat_window=${LATENCY_WINDOW:-300}
((lat_window > duration / 2)) && lat_window=$((duration / 2))

flag=()
[ "$profile" = release ] && flag=(--release)
cargo build -q --locked "${flag[@]}" -p tsod -p tsod-testbed
bin=${CARGO_TARGET_DIR:-target}/$profile
out=${OUT:-$(mktemp -d /tmp/tsod-soak.XXXXXX)}
mkdir -p "$out/work"
scenario=$out/soak.toml
report=$out/report.json
samples=$out/samples.csv
summary=$out/summary.md

# The scenario: one fault every FAULT_EVERY s from t = 5 s, the kinds in
# turn, each repaired before the next begins and before the end.
{
    echo 'name = "soak"'
    echo "description = \"long: soak.sh, $minutes min of dr under TSO load, a fault every $fault_every s\""
    echo 'topology = "dr"'
    echo "duration-s = $duration"
    echo "warmup-s = $warmup"
    ev() { printf '\n[[event]]\nat-s = %s\naction = "%s"\n%s\n' "$1" "$2" "$3"; }
    k=0
    for ((at = 5; at + 25 < duration; at += fault_every)); do
        case $((k % 5)) in
        0) ev "$at" kill 'site = "leader"'; ev $((at + 10)) restart 'site = "leader"' ;;
        1) ev "$at" pause 'site = "leader"'; ev $((at + 3)) resume 'site = "leader"' ;;
        2) ev "$at" partition 'site = "xa"'; ev $((at + 15)) heal 'site = "xa"' ;;
        3) ev "$at" gps-outage 'site = "bj-a"'; ev $((at + 20)) gps-restore 'site = "bj-a"' ;;
        4)
            ev "$at" ntp-offset "$(printf 'site = "bj-b"\noffset-ms = 20.0\nclaimed-error-us = 50.0')"
            ev $((at + 20)) ntp-restore 'site = "bj-b"'
            ;;
        esac
        k=$((k + 1))
    done
} >"$scenario"

tb=
dir=
# Stops the testbed (it tears its cluster down on SIGTERM), then anything
# of its cluster still running, by PID.
cleanup() {
    if [ -n "$tb" ] && kill -0 "$tb" 2>/dev/null; then
        kill -TERM "$tb" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$tb" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$tb" 2>/dev/null || true
    fi
    if [ -n "$dir" ]; then
        for p in $(pgrep -f "tsod run --config $dir/" || true); do kill -KILL "$p" 2>/dev/null || true; done
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The run ends by itself after warm-up + duration; `timeout` bounds it anyway.
timeout --signal=TERM --kill-after=30 $((warmup + duration + 300)) \
    "$bin/tsod-testbed" run "$scenario" --json --work "$out/work" >"$report" 2>"$out/testbed.stderr" &
tb=$!
dir=$out/work/tsod-testbed-$tb
# The testbed is a child of `timeout`: its scratch directory is named after its own PID.
for _ in $(seq 300); do
    child=$(pgrep -P "$tb" -x tsod-testbed || true)
    [ -n "$child" ] && dir=$out/work/tsod-testbed-$child && [ -f "$dir/links.json" ] && break
    kill -0 "$tb" 2>/dev/null || break
    sleep 0.1
done
[ -f "$dir/links.json" ] || { echo "soak.sh: the testbed did not start (see $out/testbed.stderr)" >&2; cat "$out/testbed.stderr" >&2; exit 1; }
# links.json is first written as the warm-up begins: t = 0 is WARMUP s later.
zero=$(($(date +%s) + warmup))
sites=(bj-a bj-b xa)
hz=$(getconf CLK_TCK)
echo "soak: $minutes min of dr, a fault every $fault_every s, samples every $sample_every s from t = 0 (in ${warmup} s); files in $out"

# The bytes queued to be read, and the drops, over process $1's UDP sockets.
udp_queue() {
    local inodes
    inodes=$(find "/proc/$1/fd" -maxdepth 1 -lname 'socket:*' -printf '%l\n' 2>/dev/null | tr -dc '0-9\n' | paste -sd' ' -)
    awk -v inodes="$inodes" 'function hex(h,   i, v) { v = 0; h = tolower(h)
            for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1; return v }
        BEGIN { n = split(inodes, a, " "); for (i = 1; i <= n; i++) want[a[i]] = 1 }
        FNR > 1 && ($10 in want) { split($5, q, ":"); rx += hex(q[2]); drops += $NF }
        END { printf "%d %d", rx, drops }' /proc/net/udp /proc/net/udp6 2>/dev/null || echo "0 0"
}
# One sample of every site at timeline second $1.
sample() {
    local t=$1 name pid up age rss anon file fds threads q inflight
    inflight=$(jq '[.links[] | .forward["in-flight"] + .reverse["in-flight"]] | add' "$dir/links.json" 2>/dev/null || echo "")
    up=$(awk '{ print $1 }' /proc/uptime)
    for name in "${sites[@]}"; do
        pid=$(pgrep -f "tsod run --config $dir/$name/tsod.toml" | head -1 || true)
        if [ -z "$pid" ] || [ ! -r "/proc/$pid/status" ]; then
            echo "$t,$name,,,,,,,,$inflight,,," >>"$samples"
            continue
        fi
        age=$(awk -v up="$up" -v hz="$hz" '{ sub(/^.*\) /, ""); printf "%.0f", up - $20 / hz }' "/proc/$pid/stat" 2>/dev/null || echo "")
        rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo "")
        anon=$(awk '/^RssAnon/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo "")
        file=$(awk '/^RssFile/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo "")
        threads=$(awk '/^Threads/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo "")
        fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
        q=$(udp_queue "$pid")
        applied=$(curl -s --max-time 2 "http://${metrics[$name]}/metrics" | awk '/^tsod_tso_applied_index / { print $2 }' || true)
        echo "$t,$name,$pid,$age,$rss,$fds,$threads,${q% *},${q#* },$inflight,$applied,$anon,$file" >>"$samples"
    done
}
echo "t_s,site,pid,age_s,rss_kb,fds,threads,udp_rx_queue_bytes,udp_drops,relay_in_flight,raft_applied_index,rss_anon_kb,rss_file_kb" >"$samples"
# Each site's metrics endpoint, from its configuration.
declare -A metrics
for name in "${sites[@]}"; do
    metrics[$name]=$(awk -F'"' '/^\[/ { m = ($0 == "[metrics]") } m && /^listen/ { print $2; exit }' "$dir/$name/tsod.toml")
done
# Samples on the grid, and one 5 s before the end (the cluster is torn down at the end).
times=()
for ((t = 0; t < duration - 5; t += sample_every)); do times+=("$t"); done
times+=($((duration - 5)))
for t in "${times[@]}"; do
    wait_s=$((zero + t - $(date +%s)))
    ((wait_s > 0)) && sleep "$wait_s"
    kill -0 "$tb" 2>/dev/null || { echo "soak.sh: the testbed ended early (see $out/testbed.stderr)" >&2; break; }
    sample "$t"
    awk -F, -v t="$t" '$1 == t { printf "  t=%5ss %-5s pid %-7s RSS %6.1f MB (anon %5.1f, file %5.1f)  fds %3s  threads %3s  udp rxq %s B  Raft applied %s\n", t, $2, $3, $5 / 1024, $12 / 1024, $13 / 1024, $6, $7, $8, $11 }' "$samples"
done
rc=0
wait "$tb" || rc=$?
tb=
[ -s "$report" ] || { echo "soak.sh: no report (testbed exit $rc; see $out/testbed.stderr)" >&2; cat "$out/testbed.stderr" >&2; exit 1; }

fail=()
# The checkers' verdict.
read -r violations stamps errors dups regs back dishonest event_errors passed < <(jq -r '[(.violations | length), .tso.timestamps, .tso.errors,
    .tso.duplicates, .tso.regressions, .tso["went-backwards"], .tso.dishonest,
    ([.events[] | select(.error != null)] | length), .passed] | @tsv' "$report")
errors_by_kind=$(jq -r '.tso["errors-by-kind"] | to_entries | map("\(.value) \(.key)") | join(", ")' "$report")
((violations == 0)) || fail+=("$violations interval(s) excluded true time")
((dups + regs + back + dishonest == 0)) || fail+=("TSO: $dups duplicate, $regs regression, $back went-backwards, $dishonest dishonest")
((event_errors == 0)) || fail+=("$event_errors event(s) could not be applied")
[ "$passed" = true ] || fail+=("the scenario failed: $(jq -r '[.checks[] | select(.passed | not) | .check] | join("; ")' "$report")")

# TSO latency in the quiet phases (from a repair, or the start, to the next
# fault), timestamp-weighted over every site, first and last window.
latency() {
    jq -r --argjson from "$1" --argjson to "$2" '
        [.phases[] | select(.["from-s"] >= $from and .["to-s"] <= $to)
         | select(.after | test("start|restart|resume|heal|restore"))
         | .tso[] | select(.["p50-latency-ms"] != null)] as $p
        | ($p | map(.timestamps) | add // 0) as $n
        | if $n == 0 then "- - 0"
          else "\($p | map(.["p50-latency-ms"] * .timestamps) | add / $n * 100 | round / 100) \($p | map(.["p99-latency-ms"]) | max * 100 | round / 100) \($n)" end' "$report"
}
read -r first_p50 first_p99 first_n < <(latency 0 "$lat_window")
read -r last_p50 last_p99 last_n < <(latency $((duration - lat_window)) "$duration")
if [ "$first_p50" = - ] || [ "$last_p50" = - ]; then
    fail+=("no TSO latency in a quiet phase of the first or last ${lat_window} s")
elif awk -v a="$first_p50" -v b="$last_p50" -v f="$lat_factor" 'BEGIN { exit !(b > f * a + 1) }'; then
    fail+=("TSO p50 grew from $first_p50 ms to $last_p50 ms (limit ${lat_factor}× + 1 ms)")
fi

# Per site: settled → end, like with like.
first_t=${times[0]}
last_t=$(awk -F, 'NR > 1 { t = $1 } END { print t }' "$samples")
# The settled sample: the first at or after SETTLED_AT, if before the end.
settled_t=$(awk -F, -v s="$settled_at" -v last="$last_t" 'NR > 1 && $1 >= s && $1 < last { print $1; exit }' "$samples")
[ -n "$settled_t" ] || settled_t=$first_t
row() { awk -F, -v t="$1" -v s="$2" '$1 == t && $2 == s && $3 != "" { print; exit }' "$samples"; }
{
    echo "## Soak: $minutes min of dr under TSO load, a fault every $fault_every s"
    echo
    echo "| site | PIDs seen | compared | RSS MB | RSS MB from t = $first_t s (not judged) | fds | threads | UDP rx queue, B (end) | verdict |"
    echo "|---|---|---|---|---|---|---|---|---|"
} >"$summary"
compared=0
for name in "${sites[@]}"; do
    pids=$(awk -F, -v s="$name" '$2 == s && $3 != "" && !seen[$3]++ { n++ } END { print n + 0 }' "$samples")
    a=$(row "$settled_t" "$name")
    b=$(row "$last_t" "$name")
    z=$(row "$first_t" "$name")
    how=
    since_start=
    if [ -z "$a" ] || [ -z "$b" ]; then
        echo "| $name | $pids | no sample at t = $settled_t or $last_t s | | | | | | n/a |" >>"$summary"
        continue
    fi
    if [ -n "$z" ] && [ "$(cut -d, -f3 <<<"$z")" = "$(cut -d, -f3 <<<"$b")" ]; then
        since_start=$(awk -v a="$(cut -d, -f5 <<<"$z")" -v b="$(cut -d, -f5 <<<"$b")" \
            'BEGIN { printf "%.1f → %.1f (%+.1f %%)", a / 1024, b / 1024, 100 * (b - a) / a }')
    fi
    if [ "$(cut -d, -f3 <<<"$a")" = "$(cut -d, -f3 <<<"$b")" ]; then
        how="one process, t = $settled_t → $last_t s"
    else
        # The newest process at its age now, against the earliest process
        # of this site sampled at the nearest age.
        age=$(cut -d, -f4 <<<"$b")
        pid=$(cut -d, -f3 <<<"$b")
        a=$(awk -F, -v s="$name" -v p="$pid" -v age="$age" -v m="$age_match" '
            $2 == s && $3 != "" && $3 != p { d = $4 - age; if (d < 0) d = -d
                if (d <= m && (!(($3) in best) || d < bestd[$3])) { best[$3] = $0; bestd[$3] = d; if (!(($3) in order)) order[$3] = NR } }
            END { for (k in best) if (first == "" || order[k] < order[first]) first = k; if (first != "") print best[first] }' "$samples")
        if [ -z "$a" ]; then
            echo "| $name | $pids | newest process $age s old: no earlier one sampled at that age | | | | | $(cut -d, -f8 <<<"$b") | n/a |" >>"$summary"
            continue
        fi
        how="restarted: PID $(cut -d, -f3 <<<"$a") at $(cut -d, -f4 <<<"$a") s old → PID $pid at $age s old"
    fi
    compared=$((compared + 1))
    IFS=, read -r _ _ _ _ rss0 fd0 th0 _ <<<"$a"
    IFS=, read -r _ _ _ _ rss1 fd1 th1 q1 _ <<<"$b"
    verdict=ok
    if awk -v a="$rss0" -v b="$rss1" -v tol="$rss_tol" 'BEGIN { exit !(b > a * (1 + tol / 100)) }'; then
        verdict="RSS grew"
        fail+=("$name: RSS grew from $rss0 kB to $rss1 kB (over ${rss_tol} %)")
    fi
    if ((fd1 > fd0 + fd_tol)); then
        [ "$verdict" = ok ] && verdict="fds grew" || verdict="$verdict, fds grew"
        fail+=("$name: open fds grew from $fd0 to $fd1 (over $fd_tol)")
    fi
    rss=$(awk -v a="$rss0" -v b="$rss1" 'BEGIN { printf "%.1f → %.1f (%+.1f %%)", a / 1024, b / 1024, 100 * (b - a) / a }')
    echo "| $name | $pids | $how | $rss | ${since_start:--} | $fd0 → $fd1 | $th0 → $th1 | $q1 | $verdict |" >>"$summary"
done
((compared > 0)) || fail+=("no site could be compared settled → end")
max_q=$(awk -F, 'NR > 1 && $8 > m { m = $8 } END { print m + 0 }' "$samples")
max_inflight=$(awk -F, 'NR > 1 && $10 > m { m = $10 } END { print m + 0 }' "$samples")
{
    echo
    echo "| figure | value |"
    echo "|---|---|"
    echo "| faults | $(jq '.events | length' "$report") events ($(jq -r '[.events[].event | sub("^t\\+[0-9.]+ s: "; "") | split(" ")[0]] | group_by(.) | map("\(length) \(.[0])") | join(", ")' "$report")) |"
    echo "| intervals excluding true time | $violations |"
    echo "| TSO timestamps | $stamps |"
    echo "| TSO errors | $errors${errors_by_kind:+ ($errors_by_kind)} |"
    echo "| TSO duplicates / regressions / went backwards / dishonest | $dups / $regs / $back / $dishonest |"
    echo "| events not applied | $event_errors |"
    echo "| TSO p50 (weighted) / worst p99, quiet phases, first ${lat_window} s | $first_p50 / $first_p99 ms ($first_n timestamps) |"
    echo "| TSO p50 (weighted) / worst p99, quiet phases, last ${lat_window} s | $last_p50 / $last_p99 ms ($last_n timestamps) |"
    echo "| largest UDP receive queue of a daemon at a sample | $max_q B |"
    echo "| most datagrams in flight in the WAN relays at a sample | $max_inflight |"
    echo "| TSO leader changes | $(jq '.["tso-leaders"] | length' "$report") |"
    echo
    echo "Tolerances: RSS +${rss_tol} %, fds +${fd_tol}, TSO p50 ${lat_factor}× + 1 ms. Samples: $samples; report: $report."
    echo
    echo "RSS MB / open fds per sample, and the Raft log's applied index (a snapshot every 1 000 entries):"
    echo
    printf '| t s |'; printf ' %s |' "${sites[@]}"; echo ' Raft applied |'
    printf '|---|'; printf -- '---|%.0s' "${sites[@]}"; echo '---|'
    awk -F, 'function flush() { print line " | " (applied == "" ? "-" : applied) " |" }
        NR > 1 { if (!started || $1 != t) { if (started) flush(); started = 1; t = $1; line = "| " t; applied = "" }
        line = line " | " ($3 == "" ? "down" : sprintf("%.1f / %s", $5 / 1024, $6))
        if ($11 != "" && (applied == "" || $11 + 0 > applied + 0)) applied = $11 }
        END { if (started) flush() }' "$samples"
} >>"$summary"
echo
cat "$summary"
echo
if ((${#fail[@]} > 0)); then
    printf 'SOAK FAILED: %s\n' "${fail[@]}"
    exit 1
fi
echo "soak passed"
