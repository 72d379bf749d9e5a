#!/bin/sh
# Configures (once) and builds kmseg in build/, or in $1 with extra meson
# options after it: scripts/build.sh build-asan -Db_sanitize=address,undefined
set -eu
cd "$(dirname "$0")/.."
dir=${1:-build}
[ $# -gt 0 ] && shift
if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >/dev/null
fi
# two cores on the target machines
ninja -C "$dir" -j2 >/dev/null
