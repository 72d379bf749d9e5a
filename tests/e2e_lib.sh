# Shared by the end-to-end test scripts (sourced, not run): the kmseg under
# test, a temporary folder removed at exit, and PASS/FAIL counting.
# The script calls e2e_done at its end for the "N passed, N failed" line.
set -u
KMSEG=$(realpath "$1")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SAMPLES=$ROOT/samples
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "PASS $1"; }
ko() { fail=$((fail + 1)); echo "FAIL $1: $2"; }

# column NAME of the first summary.csv row whose input contains PATTERN
# ("" when none)
col() { # FILE PATTERN NAME
    /usr/bin/python3 - "$@" <<'EOP'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if sys.argv[2] in r["input"]]
print(rows[0][sys.argv[3]] if rows else "")
EOP
}

e2e_done() {
    echo "$pass passed, $fail failed"
    [ "$fail" = 0 ]
}
