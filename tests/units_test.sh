#!/bin/bash
# Units of CT values end to end: the sample slices stored as HU + 1024
# (unsigned 16-bit TIFF and PNG), as float32 HU, as floats normalised to
# 0..1 and with a slope; read.slope, read.intercept and read.spacing; the HU
# check's errors naming the key to set. Never an `ok` row with an empty mask
# because the units were wrong.
# Usage: tests/units_test.sh KMSEG   (PASS/FAIL lines and a count)
source "$(dirname "$0")/e2e_lib.sh"
S=$SAMPLES
PY=/usr/bin/python3
STEM=ID_0000_Z_0142
TRUTH=$S/masks/$STEM.png

# run: kmseg with the arguments; $rc, and stderr in $T/stderr
run() {
    "$KMSEG" "$@" >"$T/stdout" 2>"$T/stderr"
    rc=$?
    if grep -qE "AddressSanitizer|LeakSanitizer|runtime error:" "$T/stderr"; then
        rc=99
    fi
}

# column NAME of the one row of summary.csv in DIR
col() { # DIR NAME
    $PY - "$1/summary.csv" "$2" <<'EOP'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(rows[0][sys.argv[2]] if len(rows) == 1 else "")
EOP
}

# the variants of one sample slice
$PY - "$S/ct/$STEM.tif" "$T/v" <<'EOP'
import sys, os, cv2, numpy as np
hu = cv2.imread(sys.argv[1], cv2.IMREAD_UNCHANGED).astype(np.float64)
d = sys.argv[2]
os.makedirs(d)
u16 = np.clip(hu + 1024, 0, 65535).astype(np.uint16)
cv2.imwrite(d + "/u16.tif", u16)
cv2.imwrite(d + "/u16.png", u16)
cv2.imwrite(d + "/f32.tif", hu.astype(np.float32))
cv2.imwrite(d + "/s32.tif", hu.astype(np.int32))
cv2.imwrite(d + "/norm.tif", ((hu - hu.min()) / (hu.max() - hu.min())).astype(np.float32))
cv2.imwrite(d + "/slope2.tif", np.round(np.clip(hu + 1024, 0, None) / 2).astype(np.uint16))
EOP

lung() { # OUT INPUT [ARGS...]
    local out=$1 in=$2
    shift 2
    run run "$S/lung_ct.ini" -q -i "$in" -o "$T/$out" -s "evaluate.truth=$TRUTH" "$@"
}

lung ref "$S/ct/$STEM.tif"
ref=$(col "$T/ref" dice)
[ $rc = 0 ] && [ -n "$ref" ] && ok "the original slice: Dice $ref" || ko "original" "rc $rc dice '$ref'"

# same Dice as the original slice, within 0.01
same_dice() { # NAME OUT
    local d
    d=$(col "$T/$2" dice)
    if [ $rc = 0 ] && $PY -c "import sys; sys.exit(0 if abs(float('$d') - float('$ref')) <= 0.01 else 1)" 2>/dev/null; then
        ok "$1 (Dice $d)"
    else
        ko "$1" "rc $rc, Dice '$d' vs $ref: $(cat "$T/stderr")"
    fi
}

# an error row naming the key, exit 1, one line on stderr
fails_naming() { # NAME OUT TEXT
    local status msg
    status=$(col "$T/$2" status)
    msg=$(col "$T/$2" error)
    if [ $rc = 1 ] && [ "$status" = error ] && [[ "$msg" == *"$3"* ]] &&
        grep -qF -- "$3" "$T/stderr"; then
        ok "$1"
    else
        ko "$1" "rc $rc, status '$status', error '$msg'"
    fi
}

for f in u16.tif u16.png; do
    lung "plain_$f" "$T/v/$f"
    fails_naming "HU + 1024 ($f) without intercept: exit 1 naming read.intercept = -1024" \
        "plain_$f" "read.intercept = -1024"
    lung "icpt_$f" "$T/v/$f" -s read.intercept=-1024
    same_dice "HU + 1024 ($f) with read.intercept = -1024: the original's mask" "icpt_$f"
done
# the default window checks too (no lung_mask needed)
run run "$S/lung_ct.ini" -q -i "$T/v/u16.tif" -o "$T/win" -s window.lo= -s window.hi= \
    -s pipeline.stages=read,window,reshape,kmeans,write -s write.products=labels
grep -qF "read.intercept = -1024" "$T/stderr" && [ $rc = 1 ] \
    && ok "window with its default HU window checks the units" || ko "window check" "rc $rc: $(cat "$T/stderr")"

lung f32 "$T/v/f32.tif"
same_dice "float32 TIFF in HU: the original's mask" f32
lung s32 "$T/v/s32.tif"
same_dice "int32 TIFF in HU: the original's mask" s32
lung norm "$T/v/norm.tif"
fails_naming "floats normalised to 0..1: exit 1 naming read.slope" norm "read.slope"
lung slope2 "$T/v/slope2.tif"
fails_naming "HU / 2 stored: exit 1 naming read.slope = 2" slope2 "read.slope = 2"
lung slope2ok "$T/v/slope2.tif" -s read.slope=2 -s read.intercept=-1024
same_dice "HU / 2 with read.slope = 2, read.intercept = -1024: the original's mask" slope2ok

# k-means pipelines without HU stages take any depth as its numbers
run run "$S/ct_kmeans.ini" -q -i "$T/v/u16.tif" -i "$T/v/f32.tif" -o "$T/km"
[ $rc = 0 ] && [ -f "$T/km/u16_labels.png" ] && [ -f "$T/km/f32_labels.png" ] \
    && ok "ct_kmeans.ini runs on unsigned 16-bit and float inputs" || ko "kmeans on u16/f32" "rc $rc: $(cat "$T/stderr")"

# --- read.spacing and the new keys' errors ------------------------------------------------
lung spacing "$S/ct/$STEM.tif" -s read.spacing=0.7
[ $rc = 0 ] && ok "read.spacing = 0.7 accepted" || ko "spacing 0.7" "rc $rc: $(cat "$T/stderr")"
lung spacing2 "$S/ct/$STEM.tif" -s "read.spacing=0.7,0.7"
[ $rc = 0 ] && ok "read.spacing = 0.7,0.7 accepted" || ko "spacing x,y" "rc $rc: $(cat "$T/stderr")"
for bad in 0 -0.7 abc "0.7,0.7,0.7" "0.7,"; do
    lung "bad_spacing" "$S/ct/$STEM.tif" -s "read.spacing=$bad"
    grep -qF "read.spacing" "$T/stderr" && [ $rc = 2 ] && ok "read.spacing = '$bad' rejected (exit 2, names the key)" \
        || ko "spacing '$bad'" "rc $rc: $(cat "$T/stderr")"
done
for bad in "slope=abc" "slope=0" "intercept=x"; do
    lung "bad_rescale" "$S/ct/$STEM.tif" -s "read.$bad"
    grep -qF "read.${bad%%=*}" "$T/stderr" && [ $rc = 2 ] && ok "read.$bad rejected (exit 2, names the key)" \
        || ko "read.$bad" "rc $rc: $(cat "$T/stderr")"
done
# in a config file: file:line and key
sed -e 's/^mode = unchanged.*/mode = unchanged\nspacing = -1/' -e "s|^input = .*|input = $S/ct|" \
    -e "s|^truth = .*|truth = $S/masks/{stem}.png|" "$S/lung_ct.ini" >"$T/units.ini"
run run "$T/units.ini" -q -o "$T/cfg"
grep -qE "units.ini:12: read.spacing" "$T/stderr" && [ $rc = 2 ] \
    && ok "a bad spacing in the config: file:line and key" || ko "config line" "rc $rc: $(cat "$T/stderr")"

run stages
for k in slope intercept spacing; do
    grep -qE "^ +$k " "$T/stdout" && ok "kmseg stages lists read.$k" || ko "stages $k" "not listed"
done

e2e_done
