#!/bin/bash
# Line coverage of kmseg by its whole test suite: builds with gcov in
# build-cov (debug, so lines map to code), runs everything `meson test` runs
# (the Check suites, the end-to-end scripts, the notebook equality test),
# then prints the percentage of lines run per folder, and per file for
# stages/ and pipeline/. Needs gcovr (scripts/install-deps.sh --coverage).
#   scripts/coverage.sh            build, test, report
#   scripts/coverage.sh --report   report on the counts already in build-cov
set -u
cd "$(dirname "$0")/.."
dir=build-cov

if [ "${1:-}" != "--report" ]; then
    bash scripts/install-deps.sh --test && bash scripts/install-deps.sh --coverage ||
        exit 1
    # atomic counters: the batch runner's threads share them
    sh scripts/build.sh "$dir" -Dtests=enabled -Db_coverage=true \
        -Dbuildtype=debug -Dc_args=-fprofile-update=atomic \
        -Dcpp_args=-fprofile-update=atomic || exit 1
    # counts from this run only
    find "$dir" -name '*.gcda' -delete
    # failures are reported, but the coverage is still worth printing (the
    # install test's static link fails on the gcov-instrumented libkmseg.a,
    # after its shared-library run has counted api.c); the fuzz run has its
    # own clang build
    if ! meson test -C "$dir" --no-suite fuzz --print-errorlogs >"$dir/coverage-tests.log" 2>&1; then
        grep -E "^ *[0-9]+/[0-9]+ .*(FAIL|TIMEOUT|ERROR)" "$dir/coverage-tests.log"
        echo "coverage: some tests failed (see $dir/coverage-tests.log)"
    fi
fi

json=$dir/coverage.json
# the program's own sources: not the tests, benchmarks or generated files
# (gcov 12 prints negative call percentages gcovr 5.2 cannot parse; they are
# not line counts)
gcovr --root . --object-directory "$dir" --exclude 'tests/' --exclude 'bench/' \
    --exclude "$dir/" --gcov-ignore-parse-errors --json-summary "$json" \
    --json-summary-pretty >/dev/null 2>"$dir/gcovr.log" || {
    cat "$dir/gcovr.log"
    exit 1
}

/usr/bin/python3 - "$json" <<'EOF'
import json
import sys

FOLDERS = ["base", "kmeans", "opencv_c", "config", "io", "stages", "pipeline",
           "cli"]
files = json.load(open(sys.argv[1]))["files"]
per = {f: [0, 0] for f in FOLDERS}
for f in files:
    top = f["filename"].split("/")[0]
    if top in per:
        per[top][0] += f["line_covered"]
        per[top][1] += f["line_total"]


def pct(c, t):
    return 100.0 * c / t if t else 100.0


print("%-10s %7s %7s %7s" % ("folder", "lines", "run", "cover"))
covered = total = 0
for name in FOLDERS:
    c, t = per[name]
    covered += c
    total += t
    print("%-10s %7d %7d %6.1f%%" % (name, t, c, pct(c, t)))
print("%-10s %7d %7d %6.1f%%" % ("all", total, covered, pct(covered, total)))
for folder in ["stages", "pipeline"]:
    print("\n%s/" % folder)
    for f in sorted(files, key=lambda f: f["filename"]):
        if f["filename"].startswith(folder + "/"):
            print("  %-24s %5d %5d %6.1f%%" % (
                f["filename"][len(folder) + 1:], f["line_total"],
                f["line_covered"], pct(f["line_covered"], f["line_total"])))
EOF
