#!/usr/bin/env bash
# What one site costs as the cluster grows (issue 19, "sites per cluster"):
# runs `tsod-testbed up` on each topology under its usual TSO load (four
# callers per site) and, after a warm-up, measures every site's tsod over a
# window:
#
# * CPU (user + system, % of one core, from /proc/PID/stat), RSS at the end;
# * its TSO role (tsod_tso_role);
# * QUIC packets and kB it sent to the other sites per second, every kind
#   together, counted by the WAN relays (the testbed's links.json: the
#   forward of the links it dials, the reverse of the links to it);
# * of those, by kind where the daemon counts them (its metrics endpoint):
#   probes sent (tsod_peer_probes_sent_total), probe replies sent (the
#   probes the other sites sent to it), forwarded TSO batches
#   (tsod_tso_forwarded_batches_total), and the rest ("other": gossip,
#   Raft RPCs and their answers, TSO batches' answers, QUIC acknowledgements
#   and keep-alives, which the daemon does not count apart);
# * Raft log entries committed per second (tsod_tso_applied_index: the
#   same at every site; each one is an AppendEntries round from the leader
#   to every follower, besides the heartbeats), and the TSO heartbeat
#   interval in force (tsod_tso_heartbeat_seconds: the leader sends one
#   AppendEntries per interval to every follower).
#
# Usage: testbed/measure-sites.sh [TOPOLOGY…]   (default: dr two-regions-five three-regions-seven)
# Env: WARMUP (s, default 20), WINDOW (s, default 40), PROFILE (release).
# Prints a Markdown table: one row per site, then per topology the mean of
# the followers, the leader, and the cluster's total.
# Run by hand on an otherwise idle machine (the sites share its cores).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-release}
warmup=${WARMUP:-20}
window=${WINDOW:-40}
[[ $warmup =~ ^[0-9]+$ && $window =~ ^[1-9][0-9]*$ ]] || { echo "measure-sites.sh: WARMUP and WINDOW are whole seconds" >&2; exit 2; }
flag=()
[ "$profile" = release ] && flag=(--release)
cargo build -q --locked "${flag[@]}" -p tsod -p tsod-testbed
bin=${CARGO_TARGET_DIR:-target}/$profile
topologies=("$@")
[ "${#topologies[@]}" -eq 0 ] && topologies=(dr two-regions-five three-regions-seven)
hz=$(getconf CLK_TCK)
scratch=$(mktemp -d /tmp/tsod-measure-sites.XXXXXX)
up=

# Stops the testbed (it stops its cluster on SIGTERM), waiting at most 20 s.
cleanup_up() {
    if [ -n "$up" ] && kill -0 "$up" 2>/dev/null; then
        kill -TERM "$up" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$up" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$up" 2>/dev/null; then
            kill -KILL "$up" 2>/dev/null || true
            # Its daemons outlive a SIGKILL: stop them too, by PID.
            for p in $(pgrep -f "tsod run --config $scratch/" || true); do kill -KILL "$p" 2>/dev/null || true; done
        fi
    fi
}
cleanup() {
    cleanup_up
    rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
scrape() { curl -s --max-time 5 "http://$1/metrics" >"$2" || : >"$2"; }
# The sum of metric $2 in file $1 over the series whose labels contain $3.
metric() { awk -v m="$2" -v l="${3:-}" '{ name = $1; sub(/\{.*/, "", name) } name == m && (l == "" || index($1, l)) { n += $2 } END { printf "%.0f", n }' "$1"; }
# Packets and bytes site $2 sent to the other sites, by links.json $1; and its time (ms).
sent() {
    jq -r --arg s "$2" '[([.links[] | select(.from == $s) | .forward] + [.links[] | select(.to == $s) | .reverse]) as $d
        | ($d | map(.arrived) | add), ($d | map(.["arrived-bytes"]) | add), .["at-unix-ms"]] | @tsv' "$1"
}
rate() { awk -v a="$1" -v b="$2" -v w="$3" -v k="${4:-1}" 'BEGIN { printf "%.1f", (b - a) / w / k }'; }

echo "| topology | site | role | CPU % of a core | RSS MB | QUIC packets sent/s | kB/s sent | probes sent/s | probe replies sent/s | TSO batches forwarded/s | other packets/s | Raft entries/s | heartbeat ms |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for topology in "${topologies[@]}"; do
    out=$scratch/$topology.out
    "$bin/tsod-testbed" up --topology "$topology" --for $((warmup + window + 5)) --work "$scratch" >"$out" 2>&1 &
    up=$!
    sleep "$warmup"
    dir=$scratch/tsod-testbed-$up
    for _ in $(seq 100); do [ -f "$dir/links.json" ] && break; sleep 0.1; done
    [ -f "$dir/links.json" ] || { echo "measure-sites.sh: $topology did not start:" >&2; cat "$out" >&2; exit 1; }
    mapfile -t sites < <(grep -o '^  [a-z0-9-]* *metrics http://[0-9.:]*' "$out" | awk '{ print $1 " " substr($3, 8) }')
    declare -A pid t0
    for entry in "${sites[@]}"; do
        name=${entry%% *}
        pid[$name]=$(pgrep -f "tsod run --config $dir/$name/" | head -1)
        t0[$name]=$(ticks "${pid[$name]}")
        scrape "${entry#* }" "$scratch/$name.m0"
    done
    cp "$dir/links.json" "$scratch/links0.json"
    sleep "$window"
    cp "$dir/links.json" "$scratch/links1.json"
    for entry in "${sites[@]}"; do
        name=${entry%% *}
        scrape "${entry#* }" "$scratch/$name.m1"
    done
    rows=$scratch/$topology.rows
    : >"$rows"
    for entry in "${sites[@]}"; do
        name=${entry%% *}
        p=${pid[$name]}
        m0=$scratch/$name.m0
        m1=$scratch/$name.m1
        cpu=$(awk -v a="${t0[$name]}" -v b="$(ticks "$p")" -v hz="$hz" -v w="$window" 'BEGIN { printf "%.1f", 100 * (b - a) / hz / w }')
        rss=$(awk -v k="$(rss_kb "$p")" 'BEGIN { printf "%.1f", k / 1024 }')
        role=$(awk '/^tsod_tso_role\{/ && $2 == 1 { sub(/.*role="/, ""); sub(/".*/, ""); print; exit }' "$m1")
        read -r pk0 by0 ms0 < <(sent "$scratch/links0.json" "$name")
        read -r pk1 by1 ms1 < <(sent "$scratch/links1.json" "$name")
        secs=$(awk -v a="$ms0" -v b="$ms1" 'BEGIN { printf "%.3f", (b - a) / 1000 }')
        packets=$(rate "$pk0" "$pk1" "$secs")
        kbytes=$(rate "$by0" "$by1" "$secs" 1000)
        probes=$(rate "$(metric "$m0" tsod_peer_probes_sent_total)" "$(metric "$m1" tsod_peer_probes_sent_total)" "$window")
        asked0=0
        asked1=0
        for other in "${sites[@]}"; do
            o=${other%% *}
            [ "$o" = "$name" ] && continue
            asked0=$((asked0 + $(metric "$scratch/$o.m0" tsod_peer_probes_sent_total "peer=\"$name\"")))
            asked1=$((asked1 + $(metric "$scratch/$o.m1" tsod_peer_probes_sent_total "peer=\"$name\"")))
        done
        replies=$(rate "$asked0" "$asked1" "$window")
        batches=$(rate "$(metric "$m0" tsod_tso_forwarded_batches_total)" "$(metric "$m1" tsod_tso_forwarded_batches_total)" "$window")
        other=$(awk -v a="$packets" -v b="$probes" -v c="$replies" -v d="$batches" 'BEGIN { printf "%.1f", a - b - c - d }')
        entries=$(rate "$(metric "$m0" tsod_tso_applied_index)" "$(metric "$m1" tsod_tso_applied_index)" "$window")
        heartbeat=$(awk '/^tsod_tso_heartbeat_seconds / { printf "%.0f", $2 * 1000 }' "$m1")
        echo "| $topology | $name | ${role:-?} | $cpu | $rss | $packets | $kbytes | $probes | $replies | $batches | $other | $entries | ${heartbeat:-?} |"
        echo "$role $cpu $packets $kbytes $probes $replies $batches $other" >>"$rows"
    done
    # The followers' mean, the leader, and the cluster's total.
    awk -v t="$topology" -v n="${#sites[@]}" '
        { k = ($1 == "leader") ? "L" : "F"; c[k]++; for (i = 2; i <= 8; i++) { s[k, i] += $i; s["T", i] += $i } }
        function row(label, k, d,   i, line) { line = "| " t " | " label " | | "
            for (i = 2; i <= 8; i++) { line = line sprintf("%.1f", s[k, i] / d) " | "; if (i == 2) line = line "| " }
            print line "| |" }
        END { if (c["F"]) row("mean of " c["F"] " followers", "F", c["F"])
              if (c["L"]) row("the leader", "L", c["L"])
              row("cluster total, " n " sites", "T", 1) }' "$rows"
    unset pid t0
    # `up` stops by itself 5 s after the window; give it 60 s more.
    for _ in $(seq 600); do kill -0 "$up" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$up" 2>/dev/null && echo "measure-sites.sh: $topology did not stop in time; stopping it" >&2 && cleanup_up
    wait "$up" || true
    up=
done
