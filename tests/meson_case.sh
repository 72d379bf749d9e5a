#!/bin/bash
# Runs one test script for `meson test`: its output goes through, and the
# test fails when the script exits non-zero or prints a FAIL line (the
# scripts print PASS/FAIL lines, which scripts/test.sh counts). A script
# that only printed SKIP lines (no PASS, no FAIL) and exited 0 is meson's
# SKIP (exit 77). An argument @TMP@ stands for a fresh folder, removed
# afterwards.
# Usage: tests/meson_case.sh COMMAND [ARG|@TMP@]...
set -u
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
args=()
for a in "$@"; do
    [ "$a" = "@TMP@" ] && a=$tmp/out
    args+=("$a")
done
"${args[@]}" >"$tmp/log" 2>&1
rc=$?
cat "$tmp/log"
if [ "$rc" != 0 ]; then
    echo "meson_case: $1 exited with $rc"
    exit 1
fi
grep -q "^FAIL" "$tmp/log" && exit 1
if grep -q "^SKIP" "$tmp/log" && ! grep -q "^PASS" "$tmp/log"; then
    exit 77
fi
exit 0
