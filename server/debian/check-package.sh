#!/usr/bin/env bash
# Builds tsod's Debian package and checks it: its file list, owners and
# modes; then installs it on this machine (root, Debian: CI's container),
# checks what the maintainer scripts made (the tsod system user, /etc/tsod
# with a configuration `tsod check-config` accepts, /var/lib/tsod), runs
# the installed daemon as tsod with that configuration against a local
# chronyd that the configuration found in /etc/chrony, checks that
# `tsod wait-sync` sees it synchronize and that `systemd-analyze verify`
# accepts the installed units, then purges it.
#
#   server/debian/check-package.sh            # release binaries (cargo deb builds them)
#   server/debian/check-package.sh --debug    # the debug binaries already built
#                                             # (CI: the tests built them; the package
#                                             # layout and scripts are what is checked)
set -euo pipefail
cd "$(dirname "$0")/../.."
export DEBIAN_FRONTEND=noninteractive

fail() { echo "check-package: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (it installs the package)"
command -v cargo-deb >/dev/null || cargo install --locked cargo-deb
work=$(mktemp -d)
cleanup() {
    [ -n "${chronyd_pid:-}" ] && kill "$chronyd_pid" 2>/dev/null || true
    [ -n "${tsod_pid:-}" ] && kill "$tsod_pid" 2>/dev/null || true
    if dpkg -s tsod >/dev/null 2>&1; then dpkg --purge tsod >/dev/null || true; fi
    [ -n "${chrony_conf_saved:-}" ] && mv "$chrony_conf_saved" /etc/chrony/chrony.conf
    [ -n "${rmem_max_saved:-}" ] && echo "$rmem_max_saved" > /proc/sys/net/core/rmem_max
    rm -rf "$work"
}
trap cleanup EXIT

deb="$work/tsod.deb"
if [ "${1:-}" = --debug ]; then
    target="$work/target"
    mkdir -p "$target/release"
    for bin in tsod tsbench; do
        [ -x "target/debug/$bin" ] || cargo build -q --locked -p tsod -p tsod-bench
        strip --strip-debug -o "$target/release/$bin" "target/debug/$bin"
    done
    CARGO_TARGET_DIR="$target" cargo deb -p tsod --no-build --fast -o "$deb"
else
    cargo build --release --locked -p tsod-bench
    cargo deb -p tsod --locked -o "$deb"
fi

echo "== file list, owners and modes"
dpkg-deb -c "$deb" | awk '{ print $1, $2, $6 }' | sort -k3 > "$work/list"
cat "$work/list"
expect() {
    local mode=$1 path=$2
    grep -qx -- "$mode 0/0 $path" "$work/list" || fail "$path: expected $mode root:root"
}
expect -rwxr-xr-x ./usr/bin/tsod
expect -rwxr-xr-x ./usr/bin/tsbench
expect -rw-r--r-- ./usr/lib/systemd/system/tsod.service
expect -rw-r--r-- ./usr/lib/systemd/system/tsod-wait-sync.service
expect -rw-r--r-- ./usr/lib/sysctl.d/60-tsod.conf
expect -rw-r--r-- ./usr/share/doc/tsod/README.md
expect -rw-r--r-- ./usr/share/doc/tsod/OPERATIONS.md
expect -rw-r--r-- ./usr/share/doc/tsod/copyright
# Nothing else is owned by anyone but root, nothing is setuid or writable
# by group or others.
awk '$2 != "0/0" { exit 1 }' "$work/list" || fail "a file not owned by root"
awk '$1 ~ /^-.....w|^-........w|s/ { exit 1 }' "$work/list" || fail "a file writable by others, or setuid"
dpkg-deb -f "$deb" Depends | grep -q adduser || fail "Depends lacks adduser"

echo "== install"
# The host's NTP server, as chrony's configuration names it: a local
# chronyd serving on loopback.
mkdir -p /etc/chrony
if [ -e /etc/chrony/chrony.conf ]; then
    chrony_conf_saved="$work/chrony.conf.saved"
    cp /etc/chrony/chrony.conf "$chrony_conf_saved"
fi
port=$((20000 + RANDOM % 20000))
printf 'server 127.0.0.1 port %s iburst minpoll -4 maxpoll -4\n' "$port" > /etc/chrony/chrony.conf
dpkg --purge tsod >/dev/null 2>&1 || true
# The socket buffer cap at the kernel's usual default, for the postinst to
# raise (restored on exit), where this host lets us write it.
rmem_writable=0
if rmem_max_before=$(cat /proc/sys/net/core/rmem_max) && echo 212992 > /proc/sys/net/core/rmem_max 2>/dev/null; then
    rmem_max_saved=$rmem_max_before
    rmem_writable=1
fi
dpkg -i "$deb"
if [ "$rmem_writable" = 1 ]; then
    [ "$(cat /proc/sys/net/core/rmem_max)" -ge 4194304 ] || fail "the postinst did not raise net.core.rmem_max: $(cat /proc/sys/net/core/rmem_max)"
else
    echo "check-package: NOT CHECKED: the postinst raising net.core.rmem_max (read-only here)"
fi
uid=$(id -u tsod) || fail "no tsod user"
[ "$uid" -lt 1000 ] || fail "tsod is not a system user (uid $uid)"
[ "$(stat -c '%U %a' /var/lib/tsod)" = "tsod 700" ] || fail "/var/lib/tsod: $(stat -c '%U %a' /var/lib/tsod)"
[ "$(stat -c '%U %a' /etc/tsod/tsod.toml)" = "root 644" ] || fail "/etc/tsod/tsod.toml: $(stat -c '%U %a' /etc/tsod/tsod.toml)"
grep -q "127.0.0.1:$port" /etc/tsod/tsod.toml || fail "the configuration does not use the host's NTP server"
/usr/bin/tsod check-config /etc/tsod/tsod.toml
echo "== units"
systemd-analyze verify /usr/lib/systemd/system/tsod.service /usr/lib/systemd/system/tsod-wait-sync.service

echo "== the installed daemon, as tsod, synchronizes from the host's NTP server"
cat > "$work/chrony-server.conf" <<CONF
port $port
bindaddress 127.0.0.1
cmdport 0
local stratum 1
allow 127.0.0.1
driftfile $work/chrony.drift
pidfile $work/chronyd.pid
CONF
chronyd -d -x -u root -f "$work/chrony-server.conf" >/dev/null 2>&1 &
chronyd_pid=$!
# What systemd's RuntimeDirectory= and StateDirectory= would make.
install -d -m 0755 -o tsod -g tsod /run/tsod
setpriv --reuid=tsod --regid=tsod --clear-groups /usr/bin/tsod run --config /etc/tsod/tsod.toml 2>"$work/tsod.log" &
tsod_pid=$!
if ! /usr/bin/tsod wait-sync --timeout 90s; then
    cat "$work/tsod.log" >&2
    fail "the installed daemon did not synchronize"
fi
if [ "$rmem_writable" = 1 ] && grep -q "receive buffer is smaller" "$work/tsod.log"; then
    cat "$work/tsod.log" >&2
    fail "the installed daemon did not get its 4 MiB socket buffer"
fi
[ "$(stat -c '%U %a' /run/tsod/segment)" = "tsod 644" ] || fail "/run/tsod/segment: $(stat -c '%U %a' /run/tsod/segment)"
# Any local user reads it (the tsod system account is trusted by readers).
setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/tsod now || fail "another user cannot read the segment"
kill "$tsod_pid"; wait "$tsod_pid" 2>/dev/null || true; tsod_pid=

echo "== purge"
dpkg --purge tsod
[ ! -e /etc/tsod/tsod.toml ] || fail "purge left /etc/tsod/tsod.toml"
[ ! -e /var/lib/tsod ] || fail "purge left /var/lib/tsod"
[ ! -e /usr/bin/tsod ] || fail "purge left /usr/bin/tsod"
echo "check-package: OK"
