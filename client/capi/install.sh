#!/usr/bin/env bash
# Installs libtsod (the C API of tsod-client) under a prefix:
#   PREFIX/lib/libtsod.so.VERSION, libtsod.so.0 and libtsod.so (links),
#   PREFIX/lib/libtsod.a, PREFIX/include/tsod.h,
#   PREFIX/lib/pkgconfig/tsod.pc
# then `cc app.c $(pkg-config --cflags --libs tsod)` builds a program
# (with PKG_CONFIG_PATH=PREFIX/lib/pkgconfig for a prefix pkg-config does
# not search by default).
#
#   client/capi/install.sh [--prefix DIR] [--libdir DIR] [--profile NAME]
#                          [--target-dir DIR] [--no-build]
#
# --prefix      default /usr/local
# --libdir      default PREFIX/lib
# --profile     the cargo profile to build and take the library from
#               (default release)
# --target-dir  cargo's target directory (default: $CARGO_TARGET_DIR, or
#               what `cargo metadata` says)
# --no-build    install what is already built (the tests use this)
# DESTDIR is honoured (staged installs for packaging): files go under
# DESTDIR/PREFIX, and tsod.pc still says PREFIX.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
prefix=/usr/local
libdir=
profile=release
target_dir=${CARGO_TARGET_DIR:-}
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --libdir) libdir=$2; shift 2 ;;
        --profile) profile=$2; shift 2 ;;
        --target-dir) target_dir=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
libdir=${libdir:-$prefix/lib}
includedir=$prefix/include
cargo=${CARGO:-cargo}

if [ -z "$target_dir" ]; then
    target_dir=$(cd "$root" && "$cargo" metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
fi
# cargo's directory for a profile: dev is "debug", the others their name.
case "$profile" in
    dev|debug) out="$target_dir/debug"; profile=dev ;;
    *) out="$target_dir/$profile" ;;
esac
if [ "$build" = 1 ]; then
    (cd "$root" && "$cargo" build -p tsod-capi --profile "$profile")
fi
for f in libtsod.so libtsod.a; do
    [ -f "$out/$f" ] || { echo "install.sh: $out/$f is missing: build it (cargo build -p tsod-capi --profile $profile)" >&2; exit 1; }
done

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml")
major=${version%%.*}
dest=${DESTDIR:-}

install -d "$dest$libdir" "$dest$libdir/pkgconfig" "$dest$includedir"
# The library's SONAME is libtsod.so.0 (client/capi/build.rs): the real
# file is versioned, the SONAME link is what programs load, the bare link is
# what -ltsod finds at link time.
install -m 0755 "$out/libtsod.so" "$dest$libdir/libtsod.so.$version"
ln -sfn "libtsod.so.$version" "$dest$libdir/libtsod.so.$major"
ln -sfn "libtsod.so.$major" "$dest$libdir/libtsod.so"
install -m 0644 "$out/libtsod.a" "$dest$libdir/libtsod.a"
install -m 0644 "$here/include/tsod.h" "$dest$includedir/tsod.h"
sed -e "s|@PREFIX@|$prefix|" -e "s|@LIBDIR@|$libdir|" -e "s|@INCLUDEDIR@|$includedir|" -e "s|@VERSION@|$version|" \
    "$here/tsod.pc.in" > "$dest$libdir/pkgconfig/tsod.pc"
chmod 0644 "$dest$libdir/pkgconfig/tsod.pc"
echo "installed libtsod $version in $dest$libdir, tsod.h in $dest$includedir, tsod.pc in $dest$libdir/pkgconfig"
