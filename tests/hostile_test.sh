#!/bin/bash
# Hostile inputs (the start of issue 11's catalogue): each case with the
# exit status and message a user gets. Every run has a time limit, so a hang
# is a failure, not a stuck test.
# Usage: tests/hostile_test.sh KMSEG   (PASS/FAIL lines and a count)
source "$(dirname "$0")/e2e_lib.sh"
S=$SAMPLES
PY=/usr/bin/python3

# column NAME of summary.csv rows whose input ends with SUFFIX
col() { # FILE SUFFIX NAME
    $PY - "$@" <<'EOP'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["input"].endswith(sys.argv[2])]
print(rows[0][sys.argv[3]] if rows else "")
EOP
}
# every run's peak memory goes to a log, checked against the bound at the end
REAL_KMSEG=$KMSEG
KMSEG=$T/kmseg_peak
printf '#!/bin/sh\nexec /usr/bin/python3 %s/tests/peak_rss.py %s/peak.log %s "$@"\n' \
    "$ROOT" "$T" "$REAL_KMSEG" >"$KMSEG"
chmod +x "$KMSEG"
CFG="$S/lung_ct.ini"
one=$S/ct/ID_0000_Z_0142.tif

# a file literally named like a glob is that file: scan1.tif (another slice)
# must not be taken for scan[1].tif
mkdir -p "$T/lit"
cp "$one" "$T/lit/scan[1].tif"
cp "$S/ct/ID_0088_Z_0100.tif" "$T/lit/scan1.tif"
timeout 60 "$KMSEG" run "$CFG" -q -i "$T/lit/scan[1].tif" -o "$T/out_lit" \
    -s write.products=mask -s "pipeline.stages=read, lung_mask, write" 2>"$T/lit.err"
rc=$?
rows=$(($(wc -l <"$T/out_lit/summary.csv") - 1))
[ $rc = 0 ] && [ "$rows" = 1 ] && [ "$(col "$T/out_lit/summary.csv" "scan[1].tif" status)" = ok ] \
    && cmp -s "$T/out_lit/scan[1]_mask.png" <(timeout 60 "$KMSEG" run "$CFG" -q -i "$one" -o "$T/out_one" \
        -s write.products=mask -s "pipeline.stages=read, lung_mask, write" 2>/dev/null; cat "$T/out_one/ID_0000_Z_0142_mask.png") \
    && ok "a file named scan[1].tif is that file, not the pattern (scan1.tif untouched)" \
    || ko "literal name" "rc $rc rows $rows $(cat "$T/lit.err")"
# the pattern still works where no such file exists
timeout 60 "$KMSEG" run "$CFG" -q -i "$T/lit/scan[0-9].tif" -o "$T/out_pat" \
    -s write.products=mask -s "pipeline.stages=read, lung_mask, write" 2>/dev/null
[ "$(col "$T/out_pat/summary.csv" "scan1.tif" status)" = ok ] \
    && ok "scan[0-9].tif, no file of that name: a pattern" || ko "pattern" "$(cat "$T/out_pat/summary.csv")"

# a FIFO among the inputs: an error row at once, never a hang; the rest runs
mkdir -p "$T/fifo"
cp "$one" "$T/fifo/a.tif"
mkfifo "$T/fifo/x.png" "$T/fifo/y.nii" "$T/fifo/z.dcm"
timeout 60 "$KMSEG" run "$CFG" -q -i "$T/fifo" -o "$T/out_fifo" \
    -s write.products=mask -s "pipeline.stages=read, lung_mask, write" 2>"$T/fifo.err"
rc=$?
n_fifo=$($PY -c "
import csv; r = list(csv.DictReader(open('$T/out_fifo/summary.csv')))
print(sum(1 for x in r if x['status'] == 'error' and 'not a regular file (a FIFO)' in x['error']))")
[ $rc = 1 ] && [ "$n_fifo" = 3 ] && [ "$(col "$T/out_fifo/summary.csv" "a.tif" status)" = ok ] \
    && ok "FIFOs named .png/.nii/.dcm in a folder: error rows, no hang, the slice beside them done" \
    || ko "fifo folder" "rc $rc fifo rows $n_fifo: $(head -3 "$T/fifo.err")"
timeout 60 "$KMSEG" run "$CFG" -q -i "$T/fifo/x.png" -o "$T/out_fifo1" 2>"$T/fifo1.err"
rc=$?
[ $rc = 1 ] && grep -q "x.png: not a regular file (a FIFO)" "$T/fifo1.err" \
    && ok "a FIFO given with -i: exit 1, 'not a regular file'" || ko "fifo -i" "rc $rc $(cat "$T/fifo1.err")"
timeout 60 "$KMSEG" run "$CFG" -q -i "$T/fifo/*" -o "$T/out_fifo2" \
    -s write.products=mask -s "pipeline.stages=read, lung_mask, write" 2>/dev/null
rc=$?
[ $rc = 1 ] && [ "$(col "$T/out_fifo2/summary.csv" "a.tif" status)" = ok ] \
    && ok "a glob matching FIFOs: no hang" || ko "fifo glob" "rc $rc"

# an empty output folder would put products beside the config (and its
# inputs): a config error naming the key, nothing run
printf '[pipeline]\ninput = %s\noutput =\nstages = read, lung_mask, write\n[write]\nproducts = mask\n' \
    "$S/ct" >"$T/empty_out.ini"
(cd "$T" && timeout 60 "$KMSEG" run "$T/empty_out.ini" -q 2>"$T/eo.err")
rc=$?
[ $rc = 2 ] && grep -q "empty_out.ini:3: pipeline.output: empty" "$T/eo.err" && ! ls "$T"/*_mask.png >/dev/null 2>&1 \
    && ok "pipeline.output = (empty): exit 2 naming file:line and key, nothing written" \
    || ko "empty output" "rc $rc $(cat "$T/eo.err")"
(cd "$T" && timeout 60 "$KMSEG" run "$CFG" -q -o "" 2>"$T/eo2.err")
rc=$?
[ $rc = 2 ] && grep -q "^kmseg: error: -o: empty output folder" "$T/eo2.err" && ! ls "$T"/*_mask.png >/dev/null 2>&1 \
    && ok "-o '': exit 2, nothing written" || ko "-o ''" "rc $rc $(cat "$T/eo2.err")"
(cd "$T" && timeout 60 "$KMSEG" run "$CFG" -q -s pipeline.output= 2>"$T/eo3.err")
rc=$?
[ $rc = 2 ] && grep -q "pipeline.output: empty" "$T/eo3.err" \
    && ok "-s pipeline.output= : exit 2" || ko "-s output empty" "rc $rc $(cat "$T/eo3.err")"

# a NUL byte in a config (a binary file, or a paste gone wrong) is named as such
printf '[pipeline]\ninput = ct\0junk\nstages = read, lung_mask, write\n' >"$T/nul.ini"
timeout 60 "$KMSEG" run "$T/nul.ini" -q -o "$T/out_nul" 2>"$T/nul.err"
rc=$?
[ $rc = 2 ] && grep -q "nul.ini:2: a NUL byte" "$T/nul.err" && [ ! -e "$T/out_nul" ] \
    && ok "a NUL byte in the config: exit 2 naming file:line, no output folder" \
    || ko "NUL byte" "rc $rc $(cat "$T/nul.err")"

# NIfTI headers nifti_clib would repair: an error row naming the field, and
# nothing of the library's own on stderr
/usr/bin/python3 - "$S/volume/ct.nii.gz" "$T/bad" <<'EOP'
import gzip, struct, sys, os
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
data = bytearray(gzip.open(src).read())
def put(name, fmt, off, val):
    d = bytearray(data); struct.pack_into(fmt, d, off, val)
    open(os.path.join(out, name), "wb").write(gzip.compress(bytes(d)))
put("rank0.nii.gz", "<h", 40, 0)
put("negdim.nii.gz", "<h", 44, -3)
put("offset.nii.gz", "<f", 108, 40.0)
put("pixdim.nii.gz", "<f", 88, 100.0)
EOP
timeout 60 "$KMSEG" run "$CFG" -q -i "$T/bad" -o "$T/out_bad" 2>"$T/bad.err"
rc=$?
for c in "rank0:dim\[0\] = 0" "negdim:dim\[2\] = -3" "offset:vox_offset = 40" "pixdim:pixdim\[3\] = 100 mm"; do
    name=${c%%:*} want=${c#*:}
    [ "$(col "$T/out_bad/summary.csv" "$name.nii.gz" status)" = error ] \
        && grep -q "$name.nii.gz.*$want" "$T/bad.err" \
        && ok "NIfTI $name: error row naming the field" || ko "NIfTI $name" "$(grep "$name" "$T/bad.err")"
done
[ $rc = 1 ] && ! grep -q '\*\*' "$T/bad.err" && [ "$(grep -vc '^kmseg: ' "$T/bad.err")" = 0 ] \
    && ok "bad NIfTI headers: exit 1, only kmseg's own lines on stderr" \
    || ko "NIfTI stderr" "rc $rc $(grep -v '^kmseg: ' "$T/bad.err" | head -3)"

# a 2 x 20000 picture with an overlay: enlarged at most to 4096 px a side
# (it was 13 GB and 33 s); reshape's sizes are bounded before any pixel
/usr/bin/python3 -c "
import cv2, numpy as np, sys
img = (np.arange(2 * 20000) % 251).astype(np.uint8).reshape(20000, 2)
cv2.imwrite(sys.argv[1], img)" "$T/thin.png"
printf '[pipeline]\nstages = read, reshape, kmeans, mask, write\n[read]\nmode = grayscale\n[write]\nproducts = overlay\n' >"$T/thin.ini"
timeout 60 "$KMSEG" run "$T/thin.ini" -q -i "$T/thin.png" -o "$T/out_thin" 2>"$T/thin.err"
rc=$?
size=$(/usr/bin/python3 -c "
import cv2, sys
im = cv2.imread(sys.argv[1]); print('%dx%d' % (im.shape[1], im.shape[0]))" "$T/out_thin/thin_overlay.png" 2>/dev/null)
[ $rc = 0 ] && [ "$size" = "2x20000" ] \
    && ok "a 2 x 20000 overlay is not enlarged past 4096 px a side ($size)" \
    || ko "thin overlay" "rc $rc size $size $(cat "$T/thin.err")"
timeout 60 "$KMSEG" run "$T/thin.ini" -q -i "$T/thin.png" -o "$T/out_big" \
    -s reshape.width=65536 -s reshape.height=65536 2>"$T/big.err"
rc=$?
[ $rc = 2 ] && grep -q "reshape.width: 65536 x 65536 is more than 8192 x 8192" "$T/big.err" && [ ! -e "$T/out_big" ] \
    && ok "reshape 65536 x 65536: exit 2 before any input" || ko "reshape bound" "rc $rc $(cat "$T/big.err")"
timeout 60 "$KMSEG" run "$T/thin.ini" -q -i "$S/png" -o "$T/out_scale" -s reshape.scale=64 2>"$T/scale.err"
rc=$?
[ $rc = 1 ] && grep -q "reshape.scale: 64 x 512 x 512 is more than 8192 x 8192" "$T/scale.err" \
    && ok "reshape.scale = 64 on 512 x 512: an error row, not 16 GiB" || ko "scale bound" "rc $rc $(head -2 "$T/scale.err")"

# a cut JPEG decodes with grey rows and a libjpeg warning: an error row now;
# a whole one (also with padding after its end marker) is read
mkdir -p "$T/jpg"
/usr/bin/python3 -c "
import cv2, sys
im = cv2.imread(sys.argv[1], cv2.IMREAD_GRAYSCALE)
ok, b = cv2.imencode('.jpg', im); b = b.tobytes()
open(sys.argv[2] + '/whole.jpg', 'wb').write(b)
open(sys.argv[2] + '/padded.jpg', 'wb').write(b + bytes(16))
open(sys.argv[2] + '/cut.jpg', 'wb').write(b[:len(b) * 2 // 3])" "$(ls "$S"/png/*.png | head -1)" "$T/jpg"
timeout 60 "$KMSEG" run "$T/thin.ini" -q -i "$T/jpg" -o "$T/out_jpg" 2>"$T/jpg.err"
rc=$?
[ $rc = 1 ] && [ "$(col "$T/out_jpg/summary.csv" cut.jpg status)" = error ] \
    && grep -q "cut.jpg: read: truncated JPEG" "$T/jpg.err" \
    && [ "$(col "$T/out_jpg/summary.csv" whole.jpg status)" = ok ] \
    && [ "$(col "$T/out_jpg/summary.csv" padded.jpg status)" = ok ] \
    && ! grep -qi "premature" "$T/jpg.err" \
    && ok "a cut JPEG is an error row naming it; whole and padded ones are read" \
    || ko "cut JPEG" "rc $rc $(cat "$T/jpg.err")"

# --max-pixels: sizes from headers are refused before anything that size is
# allocated, each input an error row naming the limit
mkdir -p "$T/big"
cp "$T/thin.png" "$T/big/thin.png"
cp "$T/jpg/whole.jpg" "$T/big/photo.jpg"
cp "$S/volume/ct.nii.gz" "$T/big/ct.nii.gz"
timeout 60 "$KMSEG" run "$T/thin.ini" -q -i "$T/big" -o "$T/out_limit" --max-pixels 1000 2>"$T/limit.err"
rc=$?
n=$(grep -c "more than the limit of 1000 (--max-pixels)" "$T/limit.err")
[ $rc = 1 ] && [ "$n" = 3 ] && grep -q "thin.png: read: 2 x 20000 = 40000 pixels" "$T/limit.err" \
    && grep -q "ct.nii.gz: .*voxels are more than" "$T/limit.err" \
    && ok "--max-pixels 1000: PNG, JPEG and NIfTI refused from their headers" \
    || ko "--max-pixels" "rc $rc $(cat "$T/limit.err")"
timeout 60 "$KMSEG" run "$T/thin.ini" -q -i "$T/thin.png" -o "$T/out_nolimit" --max-pixels 40000 2>/dev/null
[ $? = 0 ] && ok "--max-pixels 40000 admits a 40000-pixel picture" || ko "--max-pixels exact" "refused"
timeout 60 "$KMSEG" run "$T/thin.ini" -q -o "$T/out_badlimit" --max-pixels 0 2>"$T/bl.err"
[ $? = 2 ] && grep -q "max-pixels 0: want" "$T/bl.err" && [ ! -e "$T/out_badlimit" ] \
    && ok "--max-pixels 0: usage error" || ko "--max-pixels 0" "$(cat "$T/bl.err")"
# a 73-byte PNG whose header claims 20000 x 20000: the default limit (2^28)
/usr/bin/python3 -c "
import struct, zlib, sys
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 20000, 20000, 8, 0, 0, 0, 0)) \
    + chunk(b'IDAT', zlib.compress(b'\0' * 10)) + chunk(b'IEND', b'')
open(sys.argv[1], 'wb').write(png)" "$T/claims.png"
timeout 60 "$KMSEG" run "$T/thin.ini" -q -i "$T/claims.png" -o "$T/out_claims" 2>"$T/claims.err"
[ $? = 1 ] && grep -q "20000 x 20000 = 400000000 pixels are more than the limit of 268435456" "$T/claims.err" \
    && ok "a PNG claiming 20000 x 20000: refused by the default limit from its header" \
    || ko "claims" "$(cat "$T/claims.err")"

# a JPEG with a video appended after its end marker (phones' motion photos)
# is whole; a PGM (no header kmseg sizes) is held to --max-pixels after decoding
head -c 5000 /dev/urandom | cat "$T/jpg/whole.jpg" - >"$T/motion.jpg"
/usr/bin/python3 -c "
import cv2, numpy as np, sys
cv2.imwrite(sys.argv[1], np.full((40, 40), 128, np.uint8))" "$T/small.pgm"
timeout 60 "$KMSEG" run "$T/thin.ini" -q -i "$T/motion.jpg" -o "$T/out_motion" 2>"$T/motion.err"
rc1=$?
timeout 60 "$KMSEG" run "$T/thin.ini" -q -i "$T/small.pgm" -o "$T/out_pgm" --max-pixels 100 2>"$T/pgm.err"
rc2=$?
[ $rc1 = 0 ] && [ $rc2 = 1 ] && grep -q "small.pgm: read: 40 x 40 pixels are more than the limit of 100" "$T/pgm.err" \
    && ok "5000 bytes after a JPEG's end marker: read; a PGM over --max-pixels: an error row" \
    || ko "motion jpeg / pgm" "rc $rc1 $rc2 $(cat "$T/motion.err" "$T/pgm.err")"

# a JPEG with bytes before its frame header that libjpeg skips (a fuzzer's
# find): its size is still read from the header, and refused
cp "$ROOT/tests/fuzz/regress/image/jpeg_garbage_before_sof.jpg" "$T/garbage.jpg"
timeout 60 "$KMSEG" run "$T/thin.ini" -q -i "$T/garbage.jpg" -o "$T/out_garbage" 2>"$T/garbage.err"
[ $? = 1 ] && grep -q "garbage.jpg: read: 17732 x 21588 = 382798416 pixels are more than the limit" "$T/garbage.err" \
    && ok "a JPEG with garbage before its frame header: refused from the header libjpeg would read" \
    || ko "jpeg garbage" "$(cat "$T/garbage.err")"
printf '\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00\xff\xd9' \
    >"$T/nosof.jpg"
timeout 60 "$KMSEG" run "$T/thin.ini" -q -i "$T/nosof.jpg" -o "$T/out_nosof" 2>"$T/nosof.err"
[ $? = 1 ] && grep -q "nosof.jpg: read: JPEG without a frame header (SOFn) before its first scan" "$T/nosof.err" \
    && ok "a JPEG without a frame header: an error row before decoding" || ko "jpeg no SOF" "$(cat "$T/nosof.err")"

# k = auto on a one-pixel picture: one cluster would segment nothing
/usr/bin/python3 -c "
import cv2, numpy as np, sys; cv2.imwrite(sys.argv[1], np.full((1, 1), 7, np.uint8))" "$T/one.png"
printf '[pipeline]\nstages = read, reshape, kmeans, recolor, write\n[read]\nmode = grayscale\n[kmeans]\nk = auto\n[write]\nproducts = recolor\n' \
    >"$T/auto.ini"
timeout 60 "$KMSEG" run "$T/auto.ini" -q -i "$T/one.png" -o "$T/out_auto1" 2>"$T/auto1.err"
[ $? = 1 ] && grep -q "one.png: kmeans.k: auto: 1 sample to cluster, and k = 1 segments nothing" "$T/auto1.err" \
    && [ ! -e "$T/out_auto1/one_recolor.png" ] \
    && ok "k = auto on one pixel: an error row, not k = 1" || ko "auto k 1" "$(cat "$T/auto1.err")"

# a product name of 249 bytes (NAME_MAX is 255): written, though its
# temporary name would be longer than that
long=$(printf 'n%.0s' $(seq 240))
mkdir -p "$T/long"
cp "$one" "$T/long/$long.tif"
timeout 60 "$KMSEG" run "$CFG" -q -i "$T/long/$long.tif" -o "$T/out_long" -s write.products=mask \
    -s "pipeline.stages=read, lung_mask, write" 2>"$T/long.err"
[ $? = 0 ] && [ -f "$T/out_long/${long}_mask.png" ] && [ -z "$(ls -A "$T/out_long" | grep tmp)" ] \
    && ok "a 249-byte product name is written (its temporary name kept short)" || ko "long name" "$(cat "$T/long.err")"

# -s paths are made absolute: a list that outgrows the limit then says so
list=$(for i in $(seq 30); do printf 'samples/ct/ID_0000_Z_0142.tif,'; done)
(cd "$ROOT" && timeout 60 "$KMSEG" run "$CFG" -q -o "$T/out_list" -s "pipeline.input=$list" 2>"$T/list.err")
[ $? = 2 ] && grep -q "pipeline.input: value longer than 1023 characters once its paths are made absolute" "$T/list.err" \
    && [ ! -e "$T/out_list" ] && ok "-s list of 900 characters, 1023+ once absolute: exit 2 saying so" \
    || ko "-s list" "$(cat "$T/list.err")"

# peak memory of every run above (the README's bound for one hostile input;
# a sanitizer build maps shadow memory, so it gets twice the room)
bound_mib=256
nm "$REAL_KMSEG" 2>/dev/null | grep -q __asan_init && bound_mib=512
read -r runs worst_kib worst_cmd < <(sort -n "$T/peak.log" | awk '{n++; last=$0} END {print n, last}')
[ "$runs" -ge 20 ] && [ "$worst_kib" -le $((bound_mib * 1024)) ] \
    && ok "peak memory of all $runs runs under $bound_mib MiB (largest $((worst_kib / 1024)) MiB)" \
    || ko "peak memory" "$runs runs, largest $worst_kib KiB: $worst_cmd"

e2e_done
