#!/bin/bash
# The whole test suite: installs test dependencies, builds kmseg twice
# (release, and debug with AddressSanitizer + UndefinedBehaviorSanitizer),
# runs the Check suites, the command-line tests and the cv2 notebook
# equality test in both, and ends with one line "N passed, N failed".
# The Slurm test (a one-node Slurm started by tests/slurm_test.sh) runs in
# the release pass only. A script that cannot run here prints "SKIP WHAT: WHY":
# shown, counted apart ("N skipped" before the last line), never a failure.
set -u
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --test || { echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
skipped=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

note_fail() { failed=$((failed + 1)); echo "FAIL $1"; }

# Check prints "NN%: Checks: N, Failures: F, Errors: E"
run_check() { # BINARY LABEL
    local line n f e
    "$1" >"$log" 2>&1
    local rc=$?
    grep -E "^[0-9]+%: Checks:|:[EF]:" "$log"
    line=$(grep -E "^[0-9]+%: Checks:" "$log" | tail -1)
    if [ -z "$line" ]; then
        cat "$log"
        note_fail "$2: no Check summary (exit $rc)"
        return
    fi
    n=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
    f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
    e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
    passed=$((passed + n - f - e))
    failed=$((failed + f + e))
    if grep -qE "AddressSanitizer|LeakSanitizer|runtime error:" "$log"; then
        cat "$log"
        note_fail "$2: sanitizer report"
    fi
}

# scripts that print PASS/FAIL lines
run_cases() { # LABEL COMMAND...
    local label=$1
    shift
    "$@" >"$log" 2>&1
    local rc=$?
    # with the indented lines that follow a FAIL or SKIP (why, logs)
    awk -v l="[$label] " '/^(PASS|FAIL|SKIP)/ { more = /^(FAIL|SKIP)/; print l $0; next }
        more && /^  / { print l $0; next } { more = 0 }' "$log"
    local p f s
    p=$(grep -c "^PASS" "$log")
    f=$(grep -c "^FAIL" "$log")
    s=$(grep -c "^SKIP" "$log")
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + s))
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        tail -20 "$log"
        note_fail "$label: exit $rc"
    fi
}

suite() { # BUILD_DIR LABEL
    local dir=$1 label=$2 suites=0
    for t in "$dir"/tests/check_*; do
        [ -f "$t" ] && [ -x "$t" ] || continue
        echo "== [$label] $(basename "$t")"
        run_check "$t" "$label $(basename "$t")"
        suites=$((suites + 1))
    done
    [ "$suites" -gt 0 ] || note_fail "$label: no Check suites were built"
    echo "== [$label] command line"
    run_cases "$label cli" bash tests/cli_test.sh "$dir/kmseg"
    echo "== [$label] lung CT"
    run_cases "$label lung" bash tests/lung_test.sh "$dir/kmseg"
    echo "== [$label] lung CT with pathology, right and left"
    run_cases "$label lung_pathology" bash tests/lung_pathology_test.sh "$dir/kmseg"
    echo "== [$label] right and left lungs"
    run_cases "$label sides" bash tests/sides_test.sh "$dir/kmseg"
    echo "== [$label] lung CT volumes in 3-D"
    run_cases "$label lung3d" bash tests/lung3d_test.sh "$dir/kmseg"
    echo "== [$label] lung CT turned, mirrored, zoomed"
    run_cases "$label orient" bash tests/orient_test.sh "$dir/kmseg"
    echo "== [$label] DICOM"
    run_cases "$label dicom" bash tests/dicom_test.sh "$dir/kmseg"
    echo "== [$label] batches"
    run_cases "$label batch" bash tests/batch_test.sh "$dir/kmseg"
    echo "== [$label] report.html and provenance"
    run_cases "$label report" bash tests/report_test.sh "$dir/kmseg"
    echo "== [$label] units of CT values"
    run_cases "$label units" bash tests/units_test.sh "$dir/kmseg"
    echo "== [$label] hostile inputs"
    run_cases "$label hostile" bash tests/hostile_test.sh "$dir/kmseg"
    if [ "$label" = release ]; then
        # a real Slurm (daemons as root, ~20 s): once, not again under sanitizers
        echo "== [$label] Slurm job array"
        run_cases "$label slurm" bash tests/slurm_test.sh "$dir/kmseg"
    fi
    echo "== [$label] library install"
    run_cases "$label install" sh tests/install_test.sh "$dir"
    echo "== [$label] notebook equality with cv2"
    local out
    out=$(mktemp -d)
    for seed in 42 7; do
        run_cases "$label cv2" /usr/bin/python3 tests/notebook_equality.py \
            "$dir/kmseg" samples/notebook.ini "$out/$seed" "$seed"
    done
    rm -rf "$out"
}

echo "== layers depend only downward"
run_cases layers /usr/bin/python3 tests/layers_test.py

if sh scripts/build.sh build -Dtests=enabled; then
    suite build release
else
    note_fail "release build"
fi

# Sanitizers: any report fails the run (leaks included; none needs a
# suppression).
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
if sh scripts/build.sh build-asan -Dtests=enabled -Dbuildtype=debug \
    -Db_sanitize=address,undefined -Db_lundef=false; then
    suite build-asan sanitizers
else
    note_fail "sanitizer build"
fi

# libFuzzer: each target a fixed 20 s on its corpus (long campaigns:
# tests/fuzz/README)
echo "== fuzz targets (clang, libFuzzer)"
run_cases fuzz bash scripts/fuzz.sh 20

[ "$skipped" = 0 ] || echo "$skipped skipped (SKIP lines above)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
