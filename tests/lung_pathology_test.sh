#!/bin/bash
# Lung masks with pathology, and the lungs by side, end to end:
#  - synthetic consolidation and ground glass painted against the chest wall
#    and in the dependent lung of real slices are taken into the mask, an
#    effusion band and a mediastinal patch are not (tests/lung_pathology.py);
#  - right and left lungs against the manual masks split by side
#    (tests/lung_sides_eval.py), and unlabelled nowhere the mask is set.
# On the bundled samples, and on the 24 slices of ../shared/data/lung-ct
# when that folder exists.
# Usage: tests/lung_pathology_test.sh KMSEG   (PASS/FAIL lines and a count)
source "$(dirname "$0")/e2e_lib.sh"
S=$SAMPLES
PY=/usr/bin/python3
SHARED=$ROOT/../shared/data/lung-ct

sets=("samples:$S/ct:$S/masks")
[ -d "$SHARED/images" ] && sets+=("shared:$SHARED/images:$SHARED/masks")

for set in "${sets[@]}"; do
    IFS=: read -r name images masks <<<"$set"
    if $PY "$ROOT/tests/lung_pathology.py" "$KMSEG" "$S/lung_ct.ini" "$images" "$masks" \
        "$T/path_$name" >"$T/path_$name.txt" 2>"$T/path_$name.err"; then
        ok "pathology ($name): $(tail -1 "$T/path_$name.txt")"
    else
        ko "pathology ($name)" "$(grep -v '^ok' "$T/path_$name.txt"; tail -3 "$T/path_$name.err")"
    fi
    cat "$T/path_$name.txt"
    # the lungs by side: until write.products = lungs is on main, through
    # lung_mask's temporary KMS_DEBUG_LUNGS dump
    mkdir -p "$T/sides_$name"
    KMS_DEBUG_LUNGS="$T/sides_$name" "$KMSEG" run "$S/lung_ct.ini" -q -i "$images" \
        -o "$T/sides_$name" -s "evaluate.truth=$masks/{stem}.png" -s write.products=mask
    if $PY "$ROOT/tests/lung_sides_eval.py" "$images" "$masks" "$T/sides_$name" 0.98 0.97 \
        >"$T/sides_$name.txt" 2>&1; then
        ok "right/left ($name): $(tail -1 "$T/sides_$name.txt")"
    else
        ko "right/left ($name)" "$(grep FAIL "$T/sides_$name.txt"; tail -1 "$T/sides_$name.txt")"
    fi
    cat "$T/sides_$name.txt"
done

e2e_done
