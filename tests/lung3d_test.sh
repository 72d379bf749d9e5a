#!/bin/bash
# Lung masks of CT volumes in 3-D (stages/lung_volume.c): the sample volume
# against its reference (whole and per side), nothing in the abdomen below
# the lungs, the input's geometry kept, the right lung on the patient's
# right in world coordinates, painted lesions kept and an effusion-like
# patch left out, a volume without lung. Uses samples/ only; the check of
# the sided truth against TotalSegmentator's lobes needs /work/shared.
# Usage: tests/lung3d_test.sh KMSEG   (PASS/FAIL lines and a count)
source "$(dirname "$0")/e2e_lib.sh"
S=$SAMPLES
PY=/usr/bin/python3
NII="$PY $ROOT/tests/lung3d_nii.py"
TRUTH=$S/volume/lungs.nii.gz

# column NAME of the one row of summary.csv
col() { # FILE NAME
    $PY -c "import csv, sys; print(next(csv.DictReader(open(sys.argv[1])))[sys.argv[2]])" "$1" "$2"
}
# value of KEY=... in a line of KEY=VALUE words
val() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
ge() { $PY -c "import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)" "$1" "$2"; }

# the lungs product (0, 1 right, 2 left) when this kmseg writes it
if "$KMSEG" stages 2>/dev/null | grep -q "products.*lungs"; then
    PRODUCTS=mask,lungs
else
    PRODUCTS=mask
fi

# --- the sample volume: whole Dice, nothing below the lungs, geometry ------------
"$KMSEG" run "$S/lung_volume.ini" -q -o "$T/vol" -s write.products=$PRODUCTS
rc=$?
dice=$(col "$T/vol/summary.csv" dice 2>/dev/null)
# measured 0.9749 (0.9398 slice by slice before the 3-D method)
[ $rc = 0 ] && ge "$dice" 0.97 && ok "sample volume: Dice $dice >= 0.97" \
    || ko "sample volume Dice" "rc $rc dice '$dice'"
below=$($NII below "$T/vol/ct_mask.nii.gz" 19)
[ "$below" = 0 ] && ok "nothing in the 19 abdominal slices below the lungs (bowel and stomach gas)" \
    || ko "below the lungs" "$below voxels in slices 0..18"
same=$($NII header "$T/vol/ct_mask.nii.gz" "$S/volume/ct.nii.gz")
[ "$same" = same ] && ok "mask keeps the input's dims, pixdim, qform and sform" \
    || ko "mask geometry" "$same"
# the same whole mask with the full sample pipeline and with read + lung_mask
"$KMSEG" run "$S/lung_volume.ini" -q -o "$T/short" -s write.products=mask \
    -s "pipeline.stages=read, lung_mask, evaluate, write"
cmp -s <(gzip -dc "$T/vol/ct_mask.nii.gz") <(gzip -dc "$T/short/ct_mask.nii.gz") \
    && ok "stages = read, lung_mask gives the sample config's volume mask" \
    || ko "short pipeline" "masks differ"

# the same volume stored with its axes swapped (the reader's general path)
# or its slices reversed (flipped in place): the same mask, stored back
for how in swapij flipk; do
    $NII reorient "$S/volume/ct.nii.gz" "$T/$how.nii.gz" $how
    "$KMSEG" run "$S/lung_volume.ini" -q -i "$T/$how.nii.gz" -o "$T/$how" -s write.products=mask \
        -s "pipeline.stages=read, lung_mask, write"
    r=$($NII same_after "$T/$how/${how}_mask.nii.gz" $how "$T/vol/ct_mask.nii.gz")
    [ "$r" = same ] && ok "stored $how: the same mask in the file's own order" || ko "stored $how" "$r"
done

# --- sides ---------------------------------------------------------------------------
if [ "$PRODUCTS" = mask,lungs ]; then
    d=$($NII dice "$T/vol/ct_lungs.nii.gz" "$TRUTH" --sided)
    # measured right 0.9776, left 0.9703 (the left lung: 1571 voxels of 3 mm,
    # 0.9673 when dome_edges took single-contact spikes)
    ge "$(val "$d" right)" 0.97 && ge "$(val "$d" left)" 0.97 \
        && ok "per side: $d (each >= 0.97)" || ko "per-side Dice" "$d"
    s=$($NII sides "$T/vol/ct_lungs.nii.gz")
    [ "${s%% *}" = ok ] && ok "label 1 is the patient's right lung in world (sform) coordinates: $s" \
        || ko "sides" "$s"
    same=$($NII header "$T/vol/ct_lungs.nii.gz" "$S/volume/ct.nii.gz")
    [ "$same" = same ] && ok "lungs product keeps the input's geometry" || ko "lungs geometry" "$same"
    $PY -c "
import sys; sys.path.insert(0, '$ROOT/tests'); from lung3d_nii import read
_, l = read('$T/vol/ct_lungs.nii.gz'); _, m = read('$T/vol/ct_mask.nii.gz')
assert set(l.flatten().tolist()) <= {0, 1, 2} and ((l > 0) == (m == 255)).all()
" && ok "lungs values 0/1/2 exactly where the mask is set" || ko "lungs values" "not 0/1/2 or not the mask"
    # the lungs joined by a band of lung in 4 slices: one 3-D component, cut
    # per slice along the cheapest path near the body's centre line (here
    # where the band meets the right lung: measured right 0.9772, left
    # 0.9618 off the band); given wholesale to one side, the other would be 0
    $NII bridge "$S/volume/ct.nii.gz" "$TRUTH" "$T/bridged.nii.gz" "$T/band.nii.gz"
    "$KMSEG" run "$S/lung_volume.ini" -q -i "$T/bridged.nii.gz" -o "$T/bridged" \
        -s write.products=lungs -s "pipeline.stages=read, lung_mask, write"
    r=$($NII bridge_check "$T/bridged/bridged_lungs.nii.gz" "$TRUTH" "$T/band.nii.gz")
    ge "$(val "$r" right)" 0.97 && ge "$(val "$r" left)" 0.95 \
        && ok "lungs joined by a band: split, $r" || ko "joined lungs" "$r"
else
    echo "SKIP per-side checks: this kmseg has no lungs product (write.products)"
fi

# --- painted lesions and an effusion-like patch ------------------------------------------
$NII paint "$S/volume/ct.nii.gz" "$TRUTH" "$T/painted.nii.gz" "$T/patches.nii.gz" >/dev/null
"$KMSEG" run "$S/lung_volume.ini" -q -i "$T/painted.nii.gz" -o "$T/painted" \
    -s write.products=mask -s "evaluate.truth=$S/volume/lung_mask.nii.gz"
r=$($NII patches "$T/painted/painted_mask.nii.gz" "$T/patches.nii.gz" "$TRUTH")
# measured: 0.92 of the lesion voxels in (0.44 without the rib-side hull; the
# rest lie on the lung's edge at 3 mm), effusion 0, Dice 0.9736 against the
# untouched truth. 0.98 is out of reach at 3 mm: the untouched volume gives 0.975.
ge "$(val "$r" lesion_in)" 0.9 && ok "painted consolidation / ground glass at the pleura and dependent: $r" \
    || ko "lesions" "$r"
ge 0 "$(val "$r" effusion_in)" && ok "effusion-like patch behind the lung left out" || ko "effusion" "$r"
ge "$(val "$r" dice)" 0.965 && ok "painted volume still matches the untouched truth (Dice >= 0.965)" \
    || ko "painted Dice" "$r"

# --- trachea and main bronchi (a phantom: the sample has only the bases) -----------------
$NII phantom "$T/chest.nii.gz" "$T/chest_truth.nii.gz" "$T/chest_airway.nii.gz"
"$KMSEG" run "$S/lung_volume.ini" -q -i "$T/chest.nii.gz" -o "$T/chest" \
    -s write.products=$PRODUCTS -s "pipeline.stages=read, lung_mask, write"
r=$($NII airway_check "$T/chest/chest_mask.nii.gz" "$T/chest_truth.nii.gz" "$T/chest_airway.nii.gz")
d=$($NII dice "$T/chest/chest_mask.nii.gz" "$T/chest_truth.nii.gz")
# measured: no lumen voxel, whole 0.9998 (0.9919 with the airway left in:
# 5606 lumen voxels, airway_hu = -1200)
[ "$(val "$r" lumen_in)" = 0 ] && ge "$(val "$d" whole)" 0.99 \
    && ok "phantom: trachea and bronchi cut out ($(val "$r" lumen_in) lumen voxels, $d)" \
    || ko "phantom airway" "$r $d"
if [ "$PRODUCTS" = mask,lungs ]; then
    r=$($NII airway_check "$T/chest/chest_lungs.nii.gz" "$T/chest_truth.nii.gz" "$T/chest_airway.nii.gz")
    ge "$(val "$r" right)" 0.99 && ge "$(val "$r" left)" 0.99 \
        && ok "phantom: sides after the carina is cut ($r)" || ko "phantom sides" "$r"
fi

# --- a volume without lung ------------------------------------------------------------------
$NII crop "$S/volume/ct.nii.gz" "$T/abdomen.nii.gz" 0 19
"$KMSEG" run "$S/lung_volume.ini" -q -i "$T/abdomen.nii.gz" -o "$T/abd" -s write.products=mask \
    -s "pipeline.stages=read, lung_mask, write"
rc=$?
note=$(col "$T/abd/summary.csv" note 2>/dev/null)
status=$(col "$T/abd/summary.csv" status 2>/dev/null)
n=$($NII below "$T/abd/abdomen_mask.nii.gz" 19 2>/dev/null)
[ $rc = 0 ] && [ "$status" = ok ] && [ "$n" = 0 ] && [[ "$note" == *"no lung found"* ]] \
    && ok "abdomen only: empty mask and the note '$note'" \
    || ko "abdomen only" "rc $rc status '$status' voxels '$n' note '$note'"

# --- the sided truth is TotalSegmentator's lobes --------------------------------------------
SHARED=/work/shared/data/lung-ct-volume
if [ -f "$SHARED/seg_multilabel.nii.gz" ]; then
    $PY "$ROOT/tests/volume_lungs_truth.py" "$SHARED/seg_multilabel.nii.gz" "$T/lungs.nii.gz" \
        "$S/volume/lung_mask.nii.gz"
    cmp -s <(gzip -dc "$T/lungs.nii.gz") <(gzip -dc "$TRUTH") \
        && ok "samples/volume/lungs.nii.gz = lobes 12-14 right, 10-11 left" \
        || ko "sided truth" "differs from seg_multilabel"
else
    echo "SKIP sided truth check: $SHARED is absent"
fi

e2e_done
