#!/bin/bash
# DICOM input end to end: series made from samples/volume/ct.nii.gz (signed,
# unsigned with an intercept, shuffled names, JPEG 2000, two series in one
# folder, a missing slice, mixed sizes, MR, RTSTRUCT/SR beside them) through
# the lung pipeline; masks checked through world coordinates against the run
# on the NIfTI volume; dcm2niix's geometry as a cross-check.
# Usage: tests/dicom_test.sh KMSEG   (PASS/FAIL lines and a count)
source "$(dirname "$0")/e2e_lib.sh"
S=$SAMPLES
PY=/usr/bin/python3
PYD=/usr/lib/python3/dist-packages/pydicom/data/test_files
D=$T/dcm


G=$T/geo # series whose geometry is easy to get wrong (not in $D: the tree count)
if ! $PY "$ROOT/tests/dicom_gen.py" "$S/volume/ct.nii.gz" "$D" "$G" >"$T/gen.log" 2>&1; then
    ko "generate DICOM series" "$(tail -3 "$T/gen.log")"
    e2e_done
    exit
fi
ok "generate DICOM series from the NIfTI volume"
# (d) JPEG 2000 through gdcmconv, in place
for f in "$D"/j2k/*.dcm; do
    gdcmconv --j2k "$f" "$f.tmp" 2>/dev/null && mv "$f.tmp" "$f"
done
ts=$($PY -c "
import glob, pydicom
print(set(str(pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID) for f in glob.glob('$D/j2k/*.dcm')))")
[ "$ts" = "{'1.2.840.10008.1.2.4.90'}" ] && ok "gdcmconv --j2k wrote JPEG 2000 lossless" \
    || ko "gdcmconv --j2k" "transfer syntaxes $ts"
# JPEG lossless and RLE copies of the signed series
for c in jpeg rle; do
    mkdir -p "$D/$c"
    for f in "$D"/s16/*.dcm; do
        gdcmconv --$c "$f" "$D/$c/$(basename "$f")" 2>/dev/null
        $PY -c "import json,sys; m=json.load(open(sys.argv[1])); m[sys.argv[3]]=m[sys.argv[2]]; json.dump(m,open(sys.argv[1],'w'))" \
            "$D/manifest.json" "$f" "$D/$c/$(basename "$f")"
    done
done
ts=$($PY -c "
import pydicom
print(pydicom.dcmread('$D/jpeg/slice_000.dcm', stop_before_pixels=True).file_meta.TransferSyntaxUID,
      pydicom.dcmread('$D/rle/slice_000.dcm', stop_before_pixels=True).file_meta.TransferSyntaxUID)")
[ "$ts" = "1.2.840.10008.1.2.4.70 1.2.840.10008.1.2.5" ] && ok "gdcmconv wrote JPEG lossless and RLE" \
    || ko "gdcmconv --jpeg/--rle" "transfer syntaxes $ts"
cp "$PYD/rtstruct.dcm" "$D/mixed/rt.dcm"
cp "$PYD/test-SR.dcm" "$D/mixed/report" # DICM at 128, no extension

# the volume config without scoring (no truth for the series)
sed -e 's/^stages = .*/stages = read, window, denoise, reshape, kmeans, lung_mask, write/' \
    -e '/^\[evaluate\]/,/^truth/d' "$S/lung_volume.ini" >"$T/lung.ini"
CFG=$T/lung.ini
# the cheapest pipeline that reads and decodes (the fuzz runs)
printf '[pipeline]\nstages = read, reshape, kmeans, recolor, write\n[write]\nproducts = recolor\n' >"$T/min.ini"

"$KMSEG" run "$CFG" -q -i "$S/volume/ct.nii.gz" -o "$T/ref" 2>"$T/ref.err"
REF=$T/ref/ct_mask.nii.gz
[ -f "$REF" ] && ok "reference run on the NIfTI volume" || ko "reference run" "$(cat "$T/ref.err")"

NAME=P001_3_Chest_CT
for v in s16 u16 shuffled j2k jpeg rle gap; do
    "$KMSEG" run "$CFG" -i "$D/$v" -o "$T/out_$v" 2>"$T/$v.err"
    rc=$?
    m="$T/out_$v/${NAME}_mask.nii.gz"
    if [ $rc = 0 ] && [ -f "$m" ]; then
        ok "$v: series read, ${NAME}_mask.nii.gz written"
    else
        ko "$v" "rc $rc, $(ls "$T/out_$v" 2>&1 | tr '\n' ' ') $(cat "$T/$v.err")"
        continue
    fi
    col "$T/out_$v/summary.csv" "$NAME" ms_total >"$T/$v.ms"
    input=$(col "$T/out_$v/summary.csv" "$NAME" input)
    [ "$input" = "$D/$v/$NAME" ] && ok "$v: input column is FOLDER/SERIES" \
        || ko "$v input column" "$input"
    [ "$(col "$T/out_$v/summary.csv" "$NAME" slices)" = 30 ] || [ $v = gap ] \
        && ok "$v: 30 slices" || ko "$v slices" "$(col "$T/out_$v/summary.csv" "$NAME" slices)"
    out=$($PY "$ROOT/tests/dicom_world.py" "$m" "$REF" "$D/$v" "$D/manifest.json" 0.99 2>&1)
    [ $? = 0 ] && ok "$v: mask through world coordinates matches the NIfTI run ($out)" \
        || ko "$v world coordinates" "$out"
done

note=$(col "$T/out_gap/summary.csv" "$NAME" note)
case "$note" in
    *"gap of 6.00 mm between slice_014.dcm and slice_016.dcm"*) ok "gap: warning note names the gap and its files" ;;
    *) ko "gap note" "$note" ;;
esac
[ "$(col "$T/out_gap/summary.csv" "$NAME" slices)" = 30 ] && ok "gap: missing slice filled, 30 slices" \
    || ko "gap slices" "$(col "$T/out_gap/summary.csv" "$NAME" slices)"
grep -q "warning: .*gap of" "$T/gap.err" && ok "gap: warning on stderr" || ko "gap stderr" "$(cat "$T/gap.err")"

# (e) two series and non-image objects in one folder
"$KMSEG" run "$CFG" -i "$D/mixed" -o "$T/out_mixed" 2>"$T/mixed.err"
rc=$?
n=$(ls "$T/out_mixed"/*_mask.nii.gz 2>/dev/null | wc -l)
[ $rc = 0 ] && [ "$n" = 2 ] && [ -f "$T/out_mixed/P001_3_Chest_CT_mask.nii.gz" ] \
    && [ -f "$T/out_mixed/P001_4_Chest_CT_soft_mask.nii.gz" ] \
    && ok "mixed folder: two series, two inputs with distinct names" \
    || ko "mixed" "rc $rc, $(ls "$T/out_mixed" | tr '\n' ' ')"
grep -q "kmseg: skipped .*/rt.dcm: RTSTRUCT, not an image" "$T/mixed.err" \
    && grep -q "kmseg: skipped .*/report: SR, not an image" "$T/mixed.err" \
    && ok "RTSTRUCT and SR skipped with a note on stderr" || ko "skipped" "$(cat "$T/mixed.err")"
rows=$(($(wc -l <"$T/out_mixed/summary.csv") - 1))
[ "$rows" = 2 ] && ok "mixed: summary has 2 rows" || ko "mixed rows" "$rows"
out=$($PY "$ROOT/tests/dicom_world.py" "$T/out_mixed/P001_4_Chest_CT_soft_mask.nii.gz" "$REF" \
    "$D/mixed" "$D/manifest.json" 0.99 2>&1)
[ $? = 0 ] && ok "mixed: second series through world coordinates ($out)" || ko "mixed world" "$out"
"$KMSEG" run "$CFG" -q -i "$D/mixed" -o "$T/out_mixed_q" 2>"$T/mixed_q.err"
[ ! -s "$T/mixed_q.err" ] && ok "-q: no skipped lines" || ko "-q" "$(cat "$T/mixed_q.err")"

# the same files through a glob and an @list: the same two series
"$KMSEG" run "$CFG" -q -i "$D/mixed/*" -o "$T/out_glob" 2>/dev/null
n=$(ls "$T/out_glob"/*_mask.nii.gz 2>/dev/null | wc -l)
[ "$n" = 2 ] && ok "glob: grouped into two series" || ko "glob" "$(ls "$T/out_glob")"
ls "$D"/s16/*.dcm >"$T/list.txt"
"$KMSEG" run "$CFG" -q -i "@$T/list.txt" -o "$T/out_list" 2>/dev/null
[ -f "$T/out_list/${NAME}_mask.nii.gz" ] && [ "$(col "$T/out_list/summary.csv" "$NAME" slices)" = 30 ] \
    && ok "@list of DICOM files: one series" || ko "@list" "$(ls "$T/out_list")"

# --resume: the series' products exist, so it is skipped
"$KMSEG" run "$CFG" -q -i "$D/s16" -o "$T/out_s16" --resume 2>/dev/null
[ "$(col "$T/out_s16/summary.csv" "$NAME" status)" = ok ] \
    && [ "$(col "$T/out_s16/summary.csv" "$NAME" ms_total)" = "$(cat "$T/s16.ms")" ] \
    && ok "--resume skips a series whose mask exists" || ko "--resume" "$(cat "$T/out_s16/summary.csv")"

# three ways a slice could go missing unseen, each must show
mkdir -p "$T/nouid" "$T/dangle" "$T/j2kbad"
# (a) no SeriesInstanceUID: files of two series are not one volume
$PY - "$D/s16" "$D/u16" "$T/nouid" <<'EOP'
import glob, os, sys, pydicom
for i, src in enumerate((sorted(glob.glob(sys.argv[1] + "/*.dcm"))[3],
                         sorted(glob.glob(sys.argv[2] + "/*.dcm"))[20])):
    ds = pydicom.dcmread(src)
    del ds.SeriesInstanceUID
    ds.save_as(os.path.join(sys.argv[3], "f%d.dcm" % i))
EOP
"$KMSEG" run "$S/ct_kmeans.ini" -q -i "$T/nouid" -o "$T/out_nouid" 2>/dev/null
rows=$($PY -c "
import csv; r = list(csv.DictReader(open('$T/out_nouid/summary.csv')))
print(len(r), sorted(set(x['slices'] for x in r)))")
[ "$rows" = "2 ['1']" ] && ok "no SeriesInstanceUID: each file a slice of its own, not one volume" \
    || ko "no uid" "$rows"
# (b) a dangling link where a slice was: an error, not an interpolated gap
cp "$D/s16"/*.dcm "$T/dangle/"
rm "$T/dangle/slice_010.dcm"
ln -s "$T/nowhere.dcm" "$T/dangle/slice_010.dcm"
"$KMSEG" run "$CFG" -q -i "$T/dangle" -o "$T/out_dangle" 2>/dev/null
rc=$?
bad=$($PY -c "
import csv; r = list(csv.DictReader(open('$T/out_dangle/summary.csv')))
print(sum(1 for x in r if x['status'] == 'error'), sum(1 for x in r if x['status'] == 'ok'))")
[ $rc = 1 ] && [ "$bad" = "2 0" ] && ok "a dangling link in a series: its row and the series' fail" \
    || ko "dangling" "rc $rc error/ok $bad"
# (c) a JPEG 2000 slice whose decoder fails, run where SIGCHLD is ignored
# (inherited through exec): the failure must still be seen
cp "$D/j2k"/*.dcm "$T/j2kbad/"
$PY - "$T/j2kbad/slice_010.dcm" <<'EOP'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
at = b.find(b"\xff\x51")  # SIZ: Lsiz, Rsiz, then Xsiz, Ysiz
b[at + 6:at + 14] = bytes(8)
open(sys.argv[1], "wb").write(b)
EOP
$PY -c "
import os, signal, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
os.execv(sys.argv[1], sys.argv[1:])" "$KMSEG" run "$CFG" -q -i "$T/j2kbad" -o "$T/out_j2kbad" 2>/dev/null
rc=$?
err=$($PY -c "
import csv; r = list(csv.DictReader(open('$T/out_j2kbad/summary.csv')))
print(r[0]['status'], r[0]['error'][:200])")
[ $rc = 1 ] && [[ "$err" == error*slice_010.dcm* ]] \
    && ok "a JPEG 2000 slice that fails to decode, SIGCHLD ignored: an error row naming it" \
    || ko "j2k sigchld" "rc $rc $err"

# recursive tree: every series once
"$KMSEG" run "$CFG" -q -r -i "$D" -o "$T/out_tree" 2>/dev/null
n=$(($(wc -l <"$T/out_tree/summary.csv") - 1))
names=$($PY -c "
import csv; r = list(csv.DictReader(open('$T/out_tree/summary.csv')))
print(len(set(x['input'].split('/')[-1] for x in r)) == len(r))")
# jpeg/ and rle/ are copies of s16/ (the same SeriesInstanceUID): one
# series whose slices are there three times, an error naming two files
dup=$($PY -c "
import csv; r = list(csv.DictReader(open('$T/out_tree/summary.csv')))
print(sum(1 for x in r if x['status'] == 'error' and 'same slice position' in x['error']))")
[ "$n" = 10 ] && [ "$names" = True ] && [ "$dup" = 1 ] \
    && ok "recursive tree: 10 series with unique names, copies of a series are duplicates" \
    || ko "tree" "$n rows, unique $names, $dup duplicate errors"

# mixed sizes inside a series: that series fails, naming the file
"$KMSEG" run "$CFG" -q -i "$D/sizes" -o "$T/out_sizes" 2>"$T/sizes.err"
rc=$?
err=$(col "$T/out_sizes/summary.csv" "sizes" error)
[ $rc = 1 ] && [[ "$err" == *"/sizes/s1.dcm: slice size 122x97 differs from 122x101"* ]] \
    && ok "mixed sizes: error row naming the file" || ko "sizes" "rc $rc: $err"
# mixed pixel spacings inside a series: likewise
"$KMSEG" run "$CFG" -q -i "$D/spacings" -o "$T/out_spacings" 2>/dev/null
rc=$?
err=$(col "$T/out_spacings/summary.csv" "spacings" error)
[ $rc = 1 ] && [[ "$err" == *"/spacings/p2.dcm: PixelSpacing "*" differs from "*" of p0.dcm"* ]] \
    && ok "mixed pixel spacings: error row naming the file" || ko "spacings" "rc $rc: $err"

# MR: read with a note, and k-means runs on it; a lung mask needs HU, which
# MR values are not whatever their range: an error naming the modality
"$KMSEG" run "$S/ct_kmeans.ini" -q -i "$D/mr" -o "$T/out_mr_km" 2>/dev/null
rc=$?
note=$(col "$T/out_mr_km/summary.csv" "P001_7_T1" note)
[ $rc = 0 ] && [[ "$note" == *"modality MR, not CT"* ]] && ok "MR series: read with a note (k-means)" \
    || ko "MR" "rc $rc, note '$note'"
"$KMSEG" run "$CFG" -q -i "$D/mr" -o "$T/out_mr" 2>/dev/null
rc=$?
err=$(col "$T/out_mr/summary.csv" "P001_7_T1" error)
[ $rc = 1 ] && [[ "$err" == *"modality MR, not CT: its values are not Hounsfield units"* ]] \
    && ok "MR series with lung_mask: error naming the modality" || ko "MR lung" "rc $rc, error '$err'"

# a single DICOM file: a 2-D slice, mask PNG on the file's pixel grid
"$KMSEG" run "$CFG" -q -i "$PYD/CT_small.dcm" -o "$T/out_small" 2>"$T/small.err"
rc=$?
$PY - "$T/out_small/CT_small_mask.png" <<'EOP' && [ $rc = 0 ] && ok "CT_small.dcm: a 2-D slice, 128x128 mask PNG" || ko "CT_small" "rc $rc $(cat "$T/small.err")"
import sys, cv2
m = cv2.imread(sys.argv[1], cv2.IMREAD_UNCHANGED)
assert m is not None and m.shape == (128, 128), m
EOP
[ "$(col "$T/out_small/summary.csv" CT_small slices)" = 1 ] && ok "CT_small.dcm: slices 1" \
    || ko "CT_small slices" "$(col "$T/out_small/summary.csv" CT_small slices)"

# a non-image object given by itself: its own error row
"$KMSEG" run "$CFG" -q -i "$PYD/rtstruct.dcm" -o "$T/out_rt" 2>/dev/null
rc=$?
err=$(col "$T/out_rt/summary.csv" rtstruct error)
[ $rc = 1 ] && [[ "$err" == *"rtstruct.dcm: "*"RTSTRUCT, not an image"* ]] && ok "RTSTRUCT given alone: error row" \
    || ko "RTSTRUCT alone" "rc $rc: $err"

# products never overwrite the series' files, even written into its folder
before=$(md5sum "$D"/s16/* | md5sum)
"$KMSEG" run "$CFG" -q -i "$D/s16" -o "$D/s16" 2>/dev/null
after=$(md5sum "$D"/s16/slice_* | md5sum)
[ "$before" = "$after" ] && [ -f "$D/s16/${NAME}_mask.nii.gz" ] \
    && ok "output in the series folder: no input touched" || ko "protect" "inputs changed"
rm -f "$D/s16/${NAME}"_* "$D/s16/summary.csv"

# dcm2niix's NIfTI of the same series, voxel by voxel through world
# coordinates (an affine flipped against its voxels fails here, where
# corners alone would agree): every voxel of dcm2niix's volume, taken
# through its affine to world, must hold the CT value of the source volume
# there, and land on a whole voxel of kmseg's mask; the mask there against
# the reference run's (the NIfTI volume's) at that point: Dice >= 0.99
if command -v dcm2niix >/dev/null; then
    mkdir -p "$T/d2n"
    dcm2niix -z y -f ref -o "$T/d2n" "$D/shuffled" >/dev/null 2>&1
    out=$($PY - "$T/d2n/ref.nii.gz" "$T/out_shuffled/${NAME}_mask.nii.gz" \
        "$S/volume/ct.nii.gz" "$REF" <<'EOP'
import gzip, struct, sys
import numpy as np
def nii(p):
    b = gzip.open(p).read()
    dim = struct.unpack("<8h", b[40:56])
    dt = {2: "u1", 4: "<i2", 8: "<i4", 16: "<f4", 512: "<u2"}[struct.unpack("<h", b[70:72])[0]]
    off = int(struct.unpack("<f", b[108:112])[0])
    slope, inter = struct.unpack("<2f", b[112:120])
    v = np.frombuffer(b[off:], dt, dim[1] * dim[2] * dim[3]).astype(float)
    if slope not in (0.0, 1.0) and np.isfinite(slope):
        v = v * slope + inter
    a = np.eye(4); a[:3] = np.array(struct.unpack("<12f", b[280:328])).reshape(3, 4)
    return v.reshape(dim[3], dim[2], dim[1]), a   # [k, j, i]
d2n, ad = nii(sys.argv[1]); mask, am = nii(sys.argv[2])
src, asrc = nii(sys.argv[3]); ref, aref = nii(sys.argv[4])
kji = np.argwhere(np.ones(d2n.shape, bool))
world = ad @ np.c_[kji[:, ::-1], np.ones(len(kji))].T
def index(a, vol):
    ijk = (np.linalg.inv(a) @ world)[:3].T
    r = np.rint(ijk).astype(int)
    assert np.abs(ijk - r).max() < 0.01, "not on whole voxels: %s" % (ijk - r)[:2]
    assert ((r >= 0) & (r < vol.shape[::-1])).all(), "outside"
    return vol[r[:, 2], r[:, 1], r[:, 0]]
want = d2n[kji[:, 0], kji[:, 1], kji[:, 2]]
ct = index(asrc, src)
m, r = index(am, mask) > 0, index(aref, ref) > 0
dice = 2 * (m & r).sum() / max(1, m.sum() + r.sum())
if not np.array_equal(want, ct):
    print("dcm2niix voxel values differ from the source CT at the same world point:",
          int((want != ct).sum()), "of", len(ct))
elif dice < 0.99:
    print("kmseg mask against the reference at dcm2niix's world points: Dice %.4f" % dice)
else:
    print("same")
EOP
)
    [ "$out" = same ] && ok "dcm2niix: every voxel through world coordinates: the source CT value; kmseg's mask there matches the NIfTI run" \
        || ko "dcm2niix" "$out"
fi

# unequal in-plane spacing (2.1 mm columns, 3 mm rows) and slices stored
# transposed: each against the run on the NIfTI it was made from, through
# world coordinates (a row/column spacing swap or a transposed orientation
# fails here; the 3 mm isotropic series above cannot see either)
for v in aniso transposed; do
    "$KMSEG" run "$CFG" -q -i "$G/$v.nii.gz" -o "$T/gref_$v" 2>/dev/null
    "$KMSEG" run "$CFG" -q -i "$G/$v" -o "$T/gout_$v" 2>"$T/g_$v.err"
    rc=$?
    m=$(ls "$T/gout_$v"/*_mask.nii.gz 2>/dev/null | head -1)
    out=$($PY "$ROOT/tests/dicom_world.py" "$m" "$T/gref_$v/${v}_mask.nii.gz" "$G/$v" \
        "$G/manifest.json" 0.99 2>&1)
    world=$?
    [ $rc = 0 ] && [ $world = 0 ] && [ -n "$m" ] \
        && ok "$v: mask through world coordinates matches the NIfTI run ($out)" \
        || ko "$v" "rc $rc $out $(cat "$T/g_$v.err")"
done

# one slice moved by 0.4 of the spacing: an error naming the two files and
# the two spacings, never a volume with the slice at a wrong place
"$KMSEG" run "$CFG" -q -i "$G/irregular" -o "$T/out_irr" 2>/dev/null
rc=$?
err=$(col "$T/out_irr/summary.csv" irregular error)
[ $rc = 1 ] && [[ "$err" == *"irregular slice spacing: 4.20 mm between slice_014.dcm and slice_015.dcm, where the series' spacing is 3.00 mm"* ]] \
    && [ ! -e "$T/out_irr/P001_10_irregular_mask.nii.gz" ] \
    && ok "irregular spacing: error row naming both files and spacings" || ko "irregular" "rc $rc: $err"

# a damaged slice inside a good series: an error row of its own, and the
# series fails too (never completed by interpolating over the slice)
cp -r "$D/s16" "$T/corrupt"
head -c 700 "$D/s16/slice_015.dcm" >"$T/corrupt/slice_015.dcm"
"$KMSEG" run "$CFG" -i "$T/corrupt" -o "$T/out_corrupt" 2>"$T/corrupt.err"
rc=$?
bad=$(col "$T/out_corrupt/summary.csv" slice_015.dcm error)
ser=$(col "$T/out_corrupt/summary.csv" "$NAME" error)
[ $rc = 1 ] && [[ "$bad" == *"/corrupt/slice_015.dcm: corrupt or truncated DICOM header at byte "* ]] \
    && [[ "$ser" == *"slice slice_015.dcm of this series cannot be read: corrupt or truncated"* ]] \
    && [ "$(($(wc -l <"$T/out_corrupt/summary.csv") - 1))" = 2 ] \
    && ! grep -q "kmseg: skipped" "$T/corrupt.err" \
    && ok "damaged slice in a series: its own error row, and the series fails" \
    || ko "damaged slice" "rc $rc: '$bad' '$ser' $(cat "$T/corrupt.err")"

# fuzz (fixed seed): a series slice and CT_small.dcm cut at every 97 bytes,
# cut by 50 bytes, and 100 copies each with 1-3 bytes of the first 1 KB
# changed; every copy alone, and in a folder beside 2 good slices. GDCM
# aborts on some damaged headers: kmseg must exit 0 or 1 (never killed),
# with a summary row per input, and an error row for every cut copy.
start=$(date +%s%N)
$PY "$ROOT/tests/dicom_gen.py" --fuzz "$T/fz" 11 "$D/s16/slice_000.dcm" "$PYD/CT_small.dcm" \
    -- "$D/s16/slice_001.dcm" "$D/s16/slice_002.dcm" >"$T/fz.list" 2>"$T/fz.err" \
    || ko "fuzz copies" "$(tail -2 "$T/fz.err")"
args=()
for f in "$T"/fz/alone/*.dcm; do args+=(-i "$f"); done
"$KMSEG" run "$T/min.ini" -q "${args[@]}" -o "$T/fz_alone" >/dev/null 2>&1
rc_alone=$?
args=()
for d in "$T"/fz/tree/*/; do args+=(-i "${d%/}"); done
"$KMSEG" run "$T/min.ini" -q "${args[@]}" -o "$T/fz_tree" >/dev/null 2>&1
rc_tree=$?
ms=$((($(date +%s%N) - start) / 1000000))
out=$($PY - "$T/fz.list" "$T/fz" "$T/fz_alone/summary.csv" "$T/fz_tree/summary.csv" <<'EOP'
import csv, sys
kinds = dict(l.split() for l in open(sys.argv[1]))
top = sys.argv[2]
rows = lambda p: list(csv.DictReader(open(p, errors="replace")))
alone, tree = rows(sys.argv[3]), rows(sys.argv[4])
bad = []
by_input = {r["input"]: r for r in alone}
if len(alone) != len(kinds):
    bad.append("alone: %d rows for %d files" % (len(alone), len(kinds)))
for name, kind in kinds.items():
    r = by_input.get(f"{top}/alone/{name}.dcm")
    if r is None or r["status"] not in ("ok", "error"):
        bad.append(f"alone {name}: no row")
    elif kind != "flip" and r["status"] != "error":
        bad.append(f"alone {name}: {r['status']}")
    elif kind == "cut50" and "truncated" not in r["error"]:
        bad.append(f"alone {name}: {r['error']}")
    folder = [t for t in tree if f"/tree/{name}/" in t["input"]]
    if not folder:
        bad.append(f"tree {name}: no row")
    elif kind != "flip" and not any(t["status"] == "error" and name in t["error"]
                                    for t in folder):
        bad.append(f"tree {name}: no error row naming it")
errors = sum(r["status"] == "error" for r in alone)
print("; ".join(bad[:5]) if bad else
      f"{len(kinds)} copies ({sum(k == 'flip' for k in kinds.values())} with bytes changed), "
      f"{errors} errors alone, {len(tree)} rows in folders")
EOP
)
case "$out" in
    *copies*) [ $rc_alone -le 1 ] && [ $rc_tree -le 1 ] \
        && ok "fuzz: never killed, a row per input, cut files are errors ($out; $ms ms)" \
        || ko "fuzz" "exit $rc_alone / $rc_tree ($out)" ;;
    *) ko "fuzz" "exit $rc_alone / $rc_tree: $out" ;;
esac

# --- single DICOM slices as scanners store them: each scores as the TIFF ------------
# (u12: unsigned 12-bit, intercept -1024; s16i: signed, intercept -1024;
# rot90: stored turned, ImageOrientationPatient saying so; zoom: 70 % field
# of view, PixelSpacing 0.49 mm); Dice within 0.01 of the upright TIFF's
$PY "$ROOT/tests/dicom_slices.py" "$S/ct" "$S/masks" "$T/ds" >"$T/ds.log" 2>&1 \
    || ko "dicom_slices.py" "$(tail -3 "$T/ds.log")"
"$KMSEG" run "$S/lung_ct.ini" -q -o "$T/ds_tiff" -s write.products=mask 2>/dev/null
for v in u12 s16i rot90 zoom; do
    args=()
    for f in "$T/ds/$v"/*.dcm; do args+=(-i "$f"); done
    "$KMSEG" run "$S/lung_ct.ini" -q "${args[@]}" -o "$T/ds_out_$v" -s write.products=mask \
        -s "evaluate.truth=$T/ds/$v/masks/{stem}.png" 2>"$T/ds_$v.err"
    rc=$?
    bad=$($PY - "$T/ds_tiff/summary.csv" "$T/ds_out_$v/summary.csv" <<'EOP'
import csv, os, sys
stem = lambda r: os.path.splitext(os.path.basename(r["input"]))[0]
tif = {stem(r): float(r["dice"]) for r in csv.DictReader(open(sys.argv[1]))}
out = []
rows = list(csv.DictReader(open(sys.argv[2])))
for r in rows:
    d = float(r["dice"] or 0)
    if r["status"] != "ok" or abs(d - tif[stem(r)]) > 0.01:
        out.append("%s %s Dice %.4f (TIFF %.4f) %s" % (stem(r), r["status"], d, tif[stem(r)], r["error"]))
print("; ".join(out) if len(rows) == len(tif) else "rows %d" % len(rows))
EOP
)
    [ $rc = 0 ] && [ -z "$bad" ] && ok "one DICOM slice ($v): every Dice within 0.01 of the TIFF's" \
        || ko "dicom slice $v" "rc $rc $bad $(head -2 "$T/ds_$v.err")"
done

# a series larger than --max-pixels is refused from its headers, before its
# pixel data are decoded
"$KMSEG" run "$CFG" -q -i "$D/s16" -o "$T/out_limit" --max-pixels 100000 2>"$T/limit.err"
rc=$?
[ $rc = 1 ] && grep -q "voxels are more than the limit of 100000 (--max-pixels)" "$T/limit.err" \
    && ok "a series over --max-pixels: an error row naming the limit" \
    || ko "dicom --max-pixels" "rc $rc $(cat "$T/limit.err")"

# damaged PhotometricInterpretation (found by fuzz_dicom): GDCM aborted the
# whole batch decoding them; now each is an error row and the batch goes on
mkdir -p "$T/photo"
cp "$ROOT"/tests/fuzz/regress/dicom/bad_photometric_*.dcm "$T/photo/"
"$KMSEG" run "$CFG" -q -i "$T/photo" -i "$S/ct/ID_0000_Z_0142.tif" -o "$T/out_photo" 2>"$T/photo.err"
rc=$?
n=$(grep -c "is not a grey image (MONOCHROME1 or MONOCHROME2)" "$T/photo.err")
[ $rc = 1 ] && [ "$n" = 3 ] && [ "$(col "$T/out_photo/summary.csv" ID_0000_Z_0142 status)" = ok ] \
    && ok "damaged PhotometricInterpretation: 3 error rows, the batch goes on" \
    || ko "photometric" "rc $rc n $n $(head -3 "$T/photo.err")"

e2e_done
