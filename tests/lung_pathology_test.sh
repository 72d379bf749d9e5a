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
    # the lungs by side
    "$KMSEG" run "$S/lung_ct.ini" -q -i "$images" -o "$T/sides_$name" \
        -s "evaluate.truth=$masks/{stem}.png" -s write.products=mask,lungs
    if $PY "$ROOT/tests/lung_sides_eval.py" "$images" "$masks" "$T/sides_$name" 0.98 0.97 \
        >"$T/sides_$name.txt" 2>&1; then
        ok "right/left ($name): $(tail -1 "$T/sides_$name.txt")"
    else
        ko "right/left ($name)" "$(grep FAIL "$T/sides_$name.txt"; tail -1 "$T/sides_$name.txt")"
    fi
    cat "$T/sides_$name.txt"
done

# turned slices (no header: the turn is found from the image) get the same
# sides as upright ones, turned; the sides name the patient's, not the
# image's. Upright sides from the samples' run above.
$PY - "$S/ct" "$T/turned" <<'EOP'
import glob, os, sys, cv2, numpy as np
os.makedirs(sys.argv[2])
for f in glob.glob(sys.argv[1] + "/*.tif"):
    a = cv2.imread(f, cv2.IMREAD_UNCHANGED)
    stem = os.path.splitext(os.path.basename(f))[0]
    for k in (1, 2, 3):
        cv2.imwrite(os.path.join(sys.argv[2], "%s_rot%d.tif" % (stem, k)), np.rot90(a, k))
EOP
"$KMSEG" run "$S/lung_ct.ini" -q -i "$T/turned" -o "$T/turned_out" \
    -s write.products=mask,lungs -s "pipeline.stages=read, lung_mask, write"
# The turn is found from the image (lung_mask.c, find_orient): when it is
# found, the sides must be the upright ones turned. A slice it leaves upside
# down (it turns one end over end only when bone is clearly in front, since
# the mask is the same either way) gets its sides swapped: a known limit,
# printed, not failed.
if $PY - "$T/sides_samples" "$T/turned_out" <<'EOP'
import csv, glob, os, sys, cv2, numpy as np
notes = {os.path.basename(r["input"]): r["note"]
         for r in csv.DictReader(open(os.path.join(sys.argv[2], "summary.csv")))}
want = {1: "stored turned 90 degrees counter-clockwise",
        2: "stored upside down", 3: "stored turned 90 degrees clockwise"}
bad = found = 0
for f in sorted(glob.glob(sys.argv[1] + "/*_lungs.png")):
    up = cv2.imread(f, cv2.IMREAD_UNCHANGED)
    stem = os.path.basename(f)[:-len("_lungs.png")]
    for k in (1, 2, 3):
        name = "%s_rot%d" % (stem, k)
        got = cv2.imread(os.path.join(sys.argv[2], name + "_lungs.png"), cv2.IMREAD_UNCHANGED)
        same = got is not None and np.array_equal(got, np.rot90(up, k))
        if notes.get(name + ".tif", "").startswith(want[k]):
            found += 1
            if not same:
                print("%s: turn found, but the sides differ" % name)
                bad += 1
        else:
            print("%s: turn not found (%r): sides %s (known limit)" % (
                name, notes.get(name + ".tif", ""), "right" if same else "swapped"))
print("%d of %d turns found, their sides right" % (found - bad, found))
sys.exit(1 if bad or found == 0 else 0)
EOP
then ok "sides of slices turned by 90, 180, 270 degrees whose turn is found: the upright ones, turned"
else ko "turned sides" "see above"; fi

# a slice stored mirrored (neurological display: the patient's right on the
# image's right) is not told by the image: lung_mask.orient = mirrored says
# so, and its sides are the upright ones mirrored
$PY - "$S/ct" "$T/mirrored" <<'EOP'
import glob, os, sys, cv2
os.makedirs(sys.argv[2])
for f in glob.glob(sys.argv[1] + "/*.tif"):
    cv2.imwrite(os.path.join(sys.argv[2], os.path.basename(f)), cv2.imread(f, -1)[:, ::-1].copy())
EOP
"$KMSEG" run "$S/lung_ct.ini" -q -i "$T/mirrored" -o "$T/mirrored_out" -s lung_mask.orient=mirrored \
    -s write.products=mask,lungs -s "pipeline.stages=read, lung_mask, write" 2>/dev/null
if $PY - "$T/sides_samples" "$T/mirrored_out" <<'EOP'
import glob, os, sys, cv2, numpy as np
files = sorted(glob.glob(sys.argv[1] + "/*_lungs.png"))
bad = [os.path.basename(f) for f in files
       if not np.array_equal(cv2.imread(f, -1)[:, ::-1],
                             cv2.imread(os.path.join(sys.argv[2], os.path.basename(f)), -1))]
print(" ".join(bad))
sys.exit(1 if bad or not files else 0)
EOP
then ok "orient = mirrored: the sides of mirrored slices are the upright ones, mirrored"
else ko "mirrored sides" "see above"; fi

e2e_done
