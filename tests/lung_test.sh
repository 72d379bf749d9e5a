#!/bin/bash
# Lung CT end to end: the sample configs, masks scored against the bundled
# truth, NIfTI in and out, and every bad input of the lung job.
# Usage: tests/lung_test.sh KMSEG   (PASS/FAIL lines and a count)
source "$(dirname "$0")/e2e_lib.sh"
S=$SAMPLES
PY=/usr/bin/python3


# --- the sample slices: masks, overlays, Dice ---------------------------------------
"$KMSEG" run "$S/lung_ct.ini" -q -o "$T/ct"
rc=$?
n_mask=$(ls "$T/ct"/*_mask.png 2>/dev/null | wc -l)
n_over=$(ls "$T/ct"/*_overlay.png 2>/dev/null | wc -l)
[ $rc = 0 ] && [ "$n_mask" = 4 ] && [ "$n_over" = 4 ] && ok "lung_ct.ini: 4 masks and overlays" \
    || ko "lung_ct.ini" "rc $rc, $n_mask masks, $n_over overlays"
# measured 0.9914, 0.9833, 0.9932, 0.9917: each must stay at or above 0.98
low=$($PY -c "
import csv; r = list(csv.DictReader(open('$T/ct/summary.csv')))
print(' '.join('%s=%s' % (x['input'].split('/')[-1], x['dice']) for x in r if not x['dice'] or float(x['dice']) < 0.98))")
[ -z "$low" ] && ok "lung_ct.ini: Dice >= 0.98 on every sample slice" || ko "Dice" "$low"
$PY - "$T/ct" <<'EOP' && ok "masks are 0/255 at the slice's size" || ko "mask values" "not 0/255 512x512"
import sys, glob, cv2, numpy as np
for f in glob.glob(sys.argv[1] + "/*_mask.png"):
    m = cv2.imread(f, cv2.IMREAD_UNCHANGED)
    assert m.shape == (512, 512) and m.dtype == np.uint8 and set(np.unique(m)) <= {0, 255}
EOP

# uncompressed TIFFs take kmseg's own fast reader: the same masks as through
# OpenCV's (the samples are Deflate-compressed, which goes to OpenCV)
$PY - "$S/ct" "$T/raw" <<'EOP'
import sys, os, glob, cv2
os.makedirs(sys.argv[2])
for f in glob.glob(sys.argv[1] + "/*.tif"):
    a = cv2.imread(f, cv2.IMREAD_UNCHANGED)
    cv2.imwrite(os.path.join(sys.argv[2], os.path.basename(f)), a, [cv2.IMWRITE_TIFF_COMPRESSION, 1])
    # an odd size too, cropped from the same slice
    cv2.imwrite(os.path.join(sys.argv[2], "odd_" + os.path.basename(f)), a[3:404, 5:506],
                [cv2.IMWRITE_TIFF_COMPRESSION, 1])
EOP
"$KMSEG" run "$S/lung_ct.ini" -q -i "$T/raw" -o "$T/rawout" -s write.products=mask,labels
same=1
for f in "$T/ct"/*_mask.png; do
    $PY -c "
import cv2, sys
a = cv2.imread('$f', 0); b = cv2.imread('$T/rawout/$(basename "$f")', 0)
sys.exit(0 if b is not None and (a == b).all() else 1)" || same=0
done
n_odd=$(ls "$T/rawout"/odd_*_mask.png 2>/dev/null | wc -l)
[ "$same" = 1 ] && [ "$n_odd" = 4 ] && ok "uncompressed TIFFs (fast reader): same masks; odd sizes work" \
    || ko "fast tiff" "same $same odd $n_odd"

# the same slices as 8-bit display PNGs: not HU, windowed in display units
"$KMSEG" run "$S/lung_ct.ini" -q -i "$S/png" -o "$T/png"
d=$(col "$T/png/summary.csv" ID_0000 dice)
$PY -c "import sys; sys.exit(0 if '$d' and float('$d') >= 0.97 else 1)" \
    && ok "8-bit PNG (not HU) gets a lung mask too (Dice $d)" || ko "8-bit png" "dice '$d'"

# --- the NIfTI volume ---------------------------------------------------------------------
"$KMSEG" run "$S/lung_volume.ini" -q -o "$T/vol"
rc=$?
d=$(col "$T/vol/summary.csv" ct.nii.gz dice)
[ $rc = 0 ] && [ -f "$T/vol/ct_mask.nii.gz" ] && $PY -c "import sys; sys.exit(0 if float('$d') >= 0.9 else 1)" \
    && ok "lung_volume.ini: NIfTI mask, Dice $d against the reference" || ko "volume" "rc $rc dice '$d'"
$PY - "$S/volume/ct.nii.gz" "$T/vol/ct_mask.nii.gz" <<'EOP' && ok "volume mask keeps the input's header and affine" || ko "nifti header" "differs"
import gzip, struct, sys
a = gzip.open(sys.argv[1]).read(348)
b = gzip.open(sys.argv[2]).read(348)
dims = lambda h: struct.unpack("<8h", h[40:56])
pix = lambda h: struct.unpack("<8f", h[76:108])
aff = lambda h: h[252:256] + h[280:328]   # qform/sform codes and the sform rows
assert dims(a) == dims(b), (dims(a), dims(b))
assert pix(a)[1:4] == pix(b)[1:4]
assert aff(a) == aff(b)
assert struct.unpack("<h", b[70:72])[0] == 2       # uint8
EOP
$PY - "$T/vol/ct_mask.nii.gz" <<'EOP' && ok "volume: no lung in the slices below the lung bases (bowel gas left out)" || ko "volume gas" "mask below z = 19"
import gzip, struct, sys, numpy as np
raw = gzip.open(sys.argv[1]).read()
nx, ny, nz = struct.unpack("<3h", raw[42:48])
off = int(struct.unpack("<f", raw[108:112])[0])
m = np.frombuffer(raw[off:off + nx * ny * nz], np.uint8).reshape(nz, ny, nx)
# the reference has lung only in z = 19..29; gas fills the slices below
sys.exit(0 if m[:17].sum() == 0 and m[19:].sum() > 0 else 1)
EOP

# --- inputs with no lung, or no information ----------------------------------------------
$PY - "$T" <<'EOP'
import sys, cv2, numpy as np
t = sys.argv[1]
# an abdomen-like slice: air outside, a soft-tissue body, gas at the front
a = np.full((512, 512), -1000, np.int16)
cv2.ellipse(a, (256, 256), (200, 150), 0, 0, 360, 40, -1)
cv2.circle(a, (256, 170), 25, -950, -1)
cv2.imwrite(t + "/abdomen.tif", a)
cv2.imwrite(t + "/constant.tif", np.full((512, 512), 40, np.int16))
cv2.imwrite(t + "/small_truth.png", np.zeros((100, 100), np.uint8))
# a float32 NIfTI with a NaN, and a truncated one
import struct
def nifti(path, data, datatype, bitpix, cut=0):
    nz, ny, nx = data.shape
    h = bytearray(348)
    struct.pack_into("<i", h, 0, 348)
    struct.pack_into("<8h", h, 40, 3, nx, ny, nz, 1, 1, 1, 1)
    struct.pack_into("<hh", h, 70, datatype, bitpix)
    struct.pack_into("<8f", h, 76, 1, 1, 1, 1, 1, 1, 1, 1)
    struct.pack_into("<f", h, 108, 352)
    struct.pack_into("<f", h, 112, 1)
    h[344:348] = b"n+1\0"
    body = bytes(h) + b"\0" * 4 + data.tobytes()
    open(path, "wb").write(body[:len(body) - cut])
v = np.full((4, 8, 8), -500, np.float32)
v[2, 3, 3] = np.nan
nifti(t + "/nan.nii", v, 16, 32)
nifti(t + "/cut.nii", np.zeros((4, 8, 8), np.int16), 4, 16, cut=100)
EOP
"$KMSEG" run "$S/lung_ct.ini" -i "$T/abdomen.tif" -o "$T/abd" -s pipeline.stages="read, window, denoise, reshape, kmeans, lung_mask, write" 2>"$T/e.txt"
rc=$?
area=$($PY -c "import cv2; print(int((cv2.imread('$T/abd/abdomen_mask.png', 0) > 0).sum()))" 2>/dev/null)
[ $rc = 0 ] && [ "$area" = 0 ] && grep -q "no lung found" "$T/e.txt" && grep -q "no lung found" "$T/abd/summary.csv" \
    && ok "slice without lung: empty mask, said so" || ko "no lung" "rc $rc area '$area': $(cat "$T/e.txt")"
"$KMSEG" run "$S/lung_ct.ini" -i "$T/constant.tif" -o "$T/const" -s pipeline.stages="read, window, denoise, reshape, kmeans, lung_mask, write" 2>"$T/e.txt"
rc=$?
[ $rc = 0 ] && [ -f "$T/const/constant_mask.png" ] && grep -q "no lung found" "$T/e.txt" \
    && ok "constant image: empty mask, no crash" || ko "constant" "rc $rc: $(cat "$T/e.txt")"
"$KMSEG" run "$S/lung_volume.ini" -i "$T/nan.nii" -o "$T/nan" -s pipeline.stages="read, window, reshape, kmeans, lung_mask, write" 2>"$T/e.txt"
[ $? = 1 ] && grep -q "$T/nan.nii" "$T/e.txt" && grep -qi "nan" "$T/e.txt" \
    && ok "NaN in a float volume: an error naming the file" || ko "nan volume" "$(cat "$T/e.txt")"
"$KMSEG" run "$S/lung_volume.ini" -i "$T/cut.nii" -o "$T/cut" -s pipeline.stages="read, window, reshape, kmeans, lung_mask, write" 2>"$T/e.txt"
[ $? = 1 ] && grep -q "$T/cut.nii" "$T/e.txt" && grep -q "truncated" "$T/e.txt" \
    && ok "NIfTI with a truncated payload: an error naming the file" || ko "truncated nifti" "$(cat "$T/e.txt")"

# --- evaluate: truth of another size, missing truth ----------------------------------------
"$KMSEG" run "$S/lung_ct.ini" -i "$S/ct/ID_0000_Z_0142.tif" -o "$T/ev1" -s "evaluate.truth=$T/small_truth.png" 2>"$T/e.txt"
[ $? = 1 ] && grep -q "small_truth.png" "$T/e.txt" && grep -q "truth is 100x100 but the mask is 512x512" "$T/e.txt" \
    && ok "truth of another size: an error naming the truth file" || ko "truth size" "$(cat "$T/e.txt")"
"$KMSEG" run "$S/lung_ct.ini" -i "$S/ct/ID_0000_Z_0142.tif" -o "$T/ev2" -s "evaluate.truth=$T/nowhere/{stem}.png" 2>"$T/e.txt"
rc=$?
[ $rc = 0 ] && grep -q "warning: .*no truth at" "$T/e.txt" && [ -f "$T/ev2/ID_0000_Z_0142_mask.png" ] \
    && [ -z "$(col "$T/ev2/summary.csv" ID_0000 dice)" ] \
    && ok "missing truth: reported, not fatal, Dice left empty" || ko "missing truth" "rc $rc: $(cat "$T/e.txt")"

# --- lung_mask settings are checked before any image is read -------------------------------
"$KMSEG" run "$S/lung_ct.ini" -q -o "$T/bad" -s lung_mask.threshold=lots 2>"$T/e.txt"
[ $? = 2 ] && grep -q "lung_mask.threshold" "$T/e.txt" && ok "bad lung_mask.threshold rejected" || ko "threshold key" "$(cat "$T/e.txt")"
"$KMSEG" run "$S/lung_ct.ini" -q -o "$T/badnan" -s lung_mask.threshold=nan 2>"$T/e.txt"
[ $? = 2 ] && grep -q "lung_mask.threshold" "$T/e.txt" && ok "lung_mask.threshold = nan rejected" || ko "nan threshold" "$(cat "$T/e.txt")"
# lung_mask takes its centres from the slice itself: no kmeans (or window)
# needed, and the masks are those of the full sample pipeline
"$KMSEG" run "$S/lung_ct.ini" -q -o "$T/lean" -s "pipeline.stages=read, lung_mask, write" -s write.products=mask 2>"$T/e.txt"
rc=$?
same=1
for f in "$T/ct"/*_mask.png; do
    cmp -s "$f" "$T/lean/$(basename "$f")" || same=0
done
[ $rc = 0 ] && [ $same = 1 ] && ok "lung_mask without window/kmeans: the same masks as lung_ct.ini" \
    || ko "lung without kmeans" "rc $rc same $same: $(cat "$T/e.txt")"
"$KMSEG" run "$S/lung_ct.ini" -q -o "$T/bad2" -s "pipeline.stages=lung_mask, write" 2>"$T/e.txt"
[ $? = 2 ] && grep -q "lung_mask needs an image" "$T/e.txt" && ok "lung_mask without read rejected" || ko "lung link" "$(cat "$T/e.txt")"

e2e_done
