#!/bin/sh
# Configures (once) and builds kmseg in build/, or in $1 with extra meson
# options after it: scripts/build.sh build-asan -Db_sanitize=address,undefined
set -eu
cd "$(dirname "$0")/.."
dir=${1:-build}
[ $# -gt 0 ] && shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# quiet when all is well, the whole story when not
if [ ! -f "$dir/build.ninja" ]; then
    setup="meson setup"
else
    setup="meson configure" # an existing folder takes the options too
fi
if { [ ! -f "$dir/build.ninja" ] || [ $# -gt 0 ]; } && ! $setup "$dir" "$@" >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
fi
# two cores on the target machines
if ! ninja -C "$dir" -j2 >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
fi
