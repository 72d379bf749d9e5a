#!/bin/bash
# Builds the libFuzzer targets of tests/fuzz (clang, ASan + UBSan, in
# build-fuzz/, configured once) and runs each for SECONDS (default 20) on a
# copy of its seed corpus, one process each. One line per target:
#   PASS fuzz <target>: N runs, cov C, ft F
#   FAIL fuzz <target>: <first error line> [input: FILE, log: FILE]
# and exit 1 on any FAIL. Crash inputs are kept in build-fuzz/fuzz-artifacts/,
# whole logs in build-fuzz/fuzz-logs/ (tests/fuzz/README: reproducing).
set -u
cd "$(dirname "$0")/.."
secs=${1:-20}
case $secs in
'' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2 ;;
esac
dir=build-fuzz
targets="config image nifti dicom"

log=$(mktemp)
work=$(mktemp -d)
trap 'rm -rf "$log" "$work"' EXIT

if [ ! -f "$dir/build.ninja" ]; then
    if ! CC=clang CXX=clang++ meson setup "$dir" -Dfuzz=enabled \
        -Dtests=disabled -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debugoptimized >"$log" 2>&1; then
        tail -30 "$log"
        echo "FAIL fuzz build: meson setup $dir failed"
        exit 1
    fi
fi
ninja_targets=
for t in $targets; do
    ninja_targets="$ninja_targets tests/fuzz/fuzz_$t"
done
# shellcheck disable=SC2086
if ! ninja -C "$dir" -j2 $ninja_targets >"$log" 2>&1; then
    tail -40 "$log"
    echo "FAIL fuzz build: ninja failed (the targets need clang and -Dfuzz=enabled)"
    exit 1
fi

# undefined behaviour and leaks are failures; known leaks inside system
# libraries are suppressed with a reason (tests/fuzz/lsan.supp)
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=1

failed=0
mkdir -p "$dir/fuzz-logs"
for t in $targets; do
    corpus=$work/$t
    artifacts=$dir/fuzz-artifacts/$t
    out=$dir/fuzz-logs/$t.log
    mkdir -p "$corpus" "$artifacts"
    cp tests/fuzz/corpus/"$t"/* "$corpus"/
    dict=()
    [ -f "tests/fuzz/$t.dict" ] && dict=("-dict=tests/fuzz/$t.dict")
    "$dir/tests/fuzz/fuzz_$t" "${dict[@]}" -max_total_time="$secs" \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=0 \
        -artifact_prefix="$artifacts/" "$corpus" >"$out" 2>&1
    rc=$?
    done_line=$(grep -E "^Done [0-9]+ runs in" "$out" | tail -1)
    # a crash report with status 0 comes from a child process (DICOM
    # decoding): it must end by its signal, not by a handler that reports it
    child=$(grep -m1 -E "deadly signal|==[0-9]+==ERROR:" "$out")
    if [ "$rc" = 0 ] && [ -n "$done_line" ] && [ -z "$child" ]; then
        runs=$(echo "$done_line" | sed -E 's/^Done ([0-9]+) runs.*/\1/')
        stats=$(grep -E "cov: [0-9]+" "$out" | tail -1)
        cov=$(echo "$stats" | sed -nE 's/.*cov: ([0-9]+).*/\1/p')
        ft=$(echo "$stats" | sed -nE 's/.* ft: ([0-9]+).*/\1/p')
        echo "PASS fuzz $t: $runs runs, cov ${cov:-?}, ft ${ft:-?}"
    else
        first=$(grep -m1 -E "==[0-9]+==ERROR:|runtime error:|Assertion .* failed|ERROR: libFuzzer|ALARM:|out-of-memory|Test unit written" "$out")
        input=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$out" | tail -1)
        echo "FAIL fuzz $t: ${first:-exit $rc, no error line} [input: ${input:-none}, log: $out]"
        failed=1
    fi
done
exit $failed
