#!/usr/bin/env bash
# tsod beside AWS ClockBound on the same time source, measured in one run
# from one process (`tsbench side-by-side`). Needs root (chronyd, mount
# namespaces); installs chrony if missing, and ClockBound's daemon from the
# published clock-bound-d crate (2.0.x) into target/clockbound-tools.
#
#   benches/clockbound-compare.sh [SECONDS] [WARMUP_SECONDS]
#
# The setup:
#   chronyd A   stratum 1 on loopback (`local stratum 1`), serving this host's clock;
#   chronyd B   a client of A polling every second (-x: never touches the clock),
#               its command socket where ClockBound looks for it
#               (/var/run/chrony/chronyd.sock: no other chronyd may use it);
#   clockbound  reading B, once at its default --max-drift-rate 1 and once at 50,
#               each in its own mount namespace (its segment path is fixed:
#               /var/run/clockbound/shm0);
#   tsod        A as its one NTP source: at its defaults (poll 1 s), polling
#               every 1/16 s (poll-interval-ms = 62.5), that in interleaved
#               mode (chronyd takes its transmit timestamps in the kernel),
#               and interleaved every 1/64 s (15.625, chrony's minpoll -6).
# Then every reader is read at 10 Hz for SECONDS (default 60) and checked
# against the host's clock, which is what A serves.
set -euo pipefail
seconds=${1:-60}
warmup=${2:-40}
cd "$(dirname "$0")/.."
root=$PWD
if [ "$(id -u)" != 0 ]; then
    echo "clockbound-compare: needs root (chronyd, mount namespaces)" >&2
    exit 2
fi
if ! command -v chronyd >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chrony >/dev/null
fi
tools=$root/target/clockbound-tools
if [ ! -x "$tools/bin/clockbound" ]; then
    echo "installing clock-bound-d 2.0.x into $tools" >&2
    cargo install -q clock-bound-d --version '~2.0' --root "$tools"
fi
cargo build -q --release -p tsod -p tsod-bench
tsod=$root/target/release/tsod
tsbench=$root/target/release/tsbench

work=$(mktemp -d /tmp/clockbound-compare.XXXXXX)
chmod 0755 "$work"
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port_a=$(free_port)

# chronyd A: the stratum 1. No command sockets ("bindcmdaddress /" turns the
# Unix one off), so it cannot collide with B's.
printf 'port %s\nlocal stratum 1\nallow 127.0.0.1\ncmdport 0\nbindcmdaddress /\npidfile %s/a.pid\n' \
    "$port_a" "$work" >"$work/a.conf"
chronyd -d -x -u root -f "$work/a.conf" >"$work/a.log" 2>&1 &

# chronyd B: A's client, polling every second, its command socket where
# ClockBound looks for it. chronyd answers a Unix-socket client at the path
# that client bound, so both must see the same /var/run/chrony: the host's.
sock=/var/run/chrony/chronyd.sock
if [ -S "$sock" ] && chronyc -h "$sock" -n tracking >/dev/null 2>&1; then
    echo "a chronyd already answers on $sock; stop it first (this script runs its own)" >&2
    exit 1
fi
mkdir -p -m 0750 /var/run/chrony
printf 'server 127.0.0.1 port %s iburst minpoll 0 maxpoll 0\nport 0\ncmdport 0\nbindcmdaddress %s\npidfile %s/b.pid\n' \
    "$port_a" "$sock" "$work" >"$work/b.conf"
chronyd -d -x -u root -f "$work/b.conf" >"$work/b.log" 2>&1 &

for _ in $(seq 60); do
    if chronyc -h "$sock" -n tracking 2>/dev/null | grep -q '^Leap status *: Normal'; then
        break
    fi
    sleep 1
done
chronyc -h "$sock" -n tracking | grep -q '^Leap status *: Normal' || {
    echo "chronyd B did not synchronize to A; its log:" >&2
    cat "$work/b.log" >&2
    exit 1
}

# ClockBound, once per drift rate, each seeing its own /var/run/clockbound.
mkdir -p /var/run/clockbound
disruption=()
[ -e /dev/vmclock0 ] || disruption=(--disable-clock-disruption-support)
for rate in 1 50; do
    mkdir -p "$work/cb$rate"
    unshare --mount --propagation private sh -c \
        "mount --bind '$work/cb$rate' /var/run/clockbound && exec '$tools/bin/clockbound' --max-drift-rate $rate ${disruption[*]}" \
        >"$work/cb$rate.log" 2>&1 &
done

# tsod at its defaults, polling every 1/16 s, that in interleaved mode, and
# interleaved every 1/64 s.
for variant in default fast interleaved fastest; do
    mkdir -p "$work/$variant"
    poll=""
    [ "$variant" = fast ] && poll="poll-interval-ms = 62.5"
    [ "$variant" = interleaved ] && poll=$'poll-interval-ms = 62.5\ninterleaved = true'
    [ "$variant" = fastest ] && poll=$'poll-interval-ms = 15.625\ninterleaved = true'
    printf '[publish]\npath = "%s/%s/segment"\n\n[[source]]\nkind = "ntp"\nname = "chronyd-a"\naddress = "127.0.0.1:%s"\ntimescale = "utc"\n%s\n' \
        "$work" "$variant" "$port_a" "$poll" >"$work/$variant/tsod.toml"
    TSOD_LOG=error "$tsod" run --config "$work/$variant/tsod.toml" >"$work/$variant/log" 2>&1 &
done

echo "warming up for ${warmup} s, then reading every reader at 10 Hz for ${seconds} s" >&2
sleep "$warmup"
for f in "$work"/cb{1,50}/shm0 "$work"/{default,fast,interleaved,fastest}/segment; do
    [ -e "$f" ] || { echo "missing $f; logs in $work:" >&2; tail -n 5 "$work"/*.log "$work"/*/log >&2; exit 1; }
done
"$tsbench" side-by-side --duration "${seconds}s" --interval 100ms \
    --clockbound "ClockBound, --max-drift-rate 1 (default)=$work/cb1/shm0" \
    --clockbound "ClockBound, --max-drift-rate 50=$work/cb50/shm0" \
    --tsod "tsod, defaults (poll 1 s)=$work/default/segment" \
    --tsod "tsod, poll 1/16 s=$work/fast/segment" \
    --tsod "tsod, poll 1/16 s, interleaved=$work/interleaved/segment" \
    --tsod "tsod, poll 1/64 s, interleaved=$work/fastest/segment" "${@:3}"
echo
echo "chronyd B's view of A (its root delay is the loopback round trip it measures):"
chronyc -h "$sock" -n sourcestats 2>/dev/null | tail -n 1 || true
chronyc -h "$sock" -n tracking 2>/dev/null | grep -E 'Root (delay|dispersion)|Frequency|Skew' || true
