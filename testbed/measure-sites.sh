#!/usr/bin/env bash
# What one site costs as the cluster grows (issue 19, "sites per cluster"):
# runs `tsod-testbed up` on each topology under its usual TSO load (four
# callers per site) and, after a warm-up, measures every site's tsod over a
# window: CPU (user + system, % of one core, from /proc/PID/stat), RSS at
# the end, and probes sent per second to all its peers (its metrics
# endpoint's tsod_peer_probes_sent_total).
#
# Usage: testbed/measure-sites.sh [TOPOLOGY…]   (default: dr two-regions-five three-regions-seven)
# Env: WARMUP (s, default 20), WINDOW (s, default 40), PROFILE (release).
# Prints a Markdown table: one row per site, then the mean per topology.
# Run by hand on an otherwise idle machine (the sites share its cores).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-release}
warmup=${WARMUP:-20}
window=${WINDOW:-40}
flag=()
[ "$profile" = release ] && flag=(--release)
cargo build -q --locked "${flag[@]}" -p tsod -p tsod-testbed
bin=${CARGO_TARGET_DIR:-target}/$profile
topologies=("$@")
[ "${#topologies[@]}" -eq 0 ] && topologies=(dr two-regions-five three-regions-seven)
hz=$(getconf CLK_TCK)

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
probes() { curl -s "http://$1/metrics" | awk '/^tsod_peer_probes_sent_total/ { n += $2 } END { printf "%d", n }'; }

echo "| topology | site | CPU % of a core | RSS MB | probes sent/s |"
echo "|---|---|---|---|---|"
for topology in "${topologies[@]}"; do
    out=$(mktemp)
    "$bin/tsod-testbed" up --topology "$topology" --for $((warmup + window + 5)) >"$out" 2>&1 &
    up=$!
    sleep "$warmup"
    dir=$(grep -o '/[^ ]*/tsod-testbed-[0-9]*' "$out" | head -1)
    mapfile -t sites < <(grep -o '^  [a-z0-9-]* *metrics http://[0-9.:]*' "$out" | awk '{ print $1 " " substr($3, 8) }' | sort -u)
    declare -A pid t0 p0
    for entry in "${sites[@]}"; do
        name=${entry%% *}
        pid[$name]=$(pgrep -f "tsod run --config $dir/$name/" | head -1)
        t0[$name]=$(ticks "${pid[$name]}")
        p0[$name]=$(probes "${entry#* }")
    done
    sleep "$window"
    sum_cpu=0
    for entry in "${sites[@]}"; do
        name=${entry%% *}
        p=${pid[$name]}
        cpu=$(awk -v a="${t0[$name]}" -v b="$(ticks "$p")" -v hz="$hz" -v w="$window" 'BEGIN { printf "%.1f", 100 * (b - a) / hz / w }')
        rss=$(awk -v k="$(rss_kb "$p")" 'BEGIN { printf "%.1f", k / 1024 }')
        prb=$(awk -v a="${p0[$name]}" -v b="$(probes "${entry#* }")" -v w="$window" 'BEGIN { printf "%.1f", (b - a) / w }')
        echo "| $topology | $name | $cpu | $rss | $prb |"
        sum_cpu=$(awk -v s="$sum_cpu" -v c="$cpu" 'BEGIN { print s + c }')
    done
    echo "| $topology | mean of ${#sites[@]} | $(awk -v s="$sum_cpu" -v n="${#sites[@]}" 'BEGIN { printf "%.1f", s / n }') | | |"
    unset pid t0 p0
    wait "$up" || true
    rm -f "$out"
done
