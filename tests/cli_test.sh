#!/bin/bash
# End-to-end tests of the kmseg command line: bad inputs and configs, exit
# statuses, one-line errors naming file/line/key, nothing half-written.
# Usage: tests/cli_test.sh KMSEG   (prints PASS/FAIL lines and a count)
source "$(dirname "$0")/e2e_lib.sh"

# run NAME: runs kmseg with the remaining args; sets $rc, $out, $err
run() {
    "$KMSEG" "$@" >"$T/stdout" 2>"$T/stderr"
    rc=$?
    out=$(cat "$T/stdout")
    err=$(cat "$T/stderr")
    if grep -qE "AddressSanitizer|LeakSanitizer|runtime error:" "$T/stderr"; then
        rc=99
    fi
}

# expect NAME RC PATTERN...: exit status and every pattern in stderr
expect() {
    local name=$1 want=$2
    shift 2
    if [ "$rc" != "$want" ]; then
        ko "$name" "exit $rc, want $want; stderr: $err"
        return 1
    fi
    for pat in "$@"; do
        if ! grep -qF -- "$pat" "$T/stderr"; then
            ko "$name" "stderr lacks '$pat': $err"
            return 1
        fi
    done
    ok "$name"
}

# a config on the notebook's pipeline, with the given extra lines appended
base_config() {
    cat <<EOI
[pipeline]
input = $SAMPLES/png
output = $T/out
stages = read, reshape, kmeans, recolor, write
seed = 1

[read]
mode = color

[reshape]
width = 64
height = 64
value_scale = 1/255

[kmeans]
k = 2
attempts = 2
backend = opencv

[write]
products = recolor, labels
EOI
}

# config NAME SED-EXPRESSION: a variant of the base config
config() {
    base_config | sed -e "$2" >"$T/$1.ini"
    echo "$T/$1.ini"
}

no_temp_files() {
    ! ls -a "$1" 2>/dev/null | grep -q '\.tmp-'
}

# --- commands -------------------------------------------------------------
# unknown options and missing values: kmseg's own words, exit 2
for spec in "--bogus|unknown option '--bogus'" "-Z|unknown option '-Z'" "-j|option '-j' needs a value" \
    "--resume=3|option '--resume=3' takes no value"; do
    run run "$SAMPLES/lung_ct.ini" ${spec%%|*}
    [ "$rc" = 2 ] && grep -q "^kmseg: error: run: ${spec#*|}$" "$T/stderr" \
        && ok "run ${spec%%|*}: kmseg: error: run: ${spec#*|}" || ko "option ${spec%%|*}" "rc $rc $err"
done
run compare "$SAMPLES/ct_kmeans.ini" --nope
[ "$rc" = 2 ] && grep -q "^kmseg: error: compare: unknown option '--nope'$" "$T/stderr" \
    && ok "compare --nope: named by its command" || ko "compare option" "rc $rc $err"

# ct_kmeans.ini windows the CT: ID_0253's 21 % of -2618 HU padding is air,
# not a cluster of its own (it took the darkest centre, -2469 HU, before)
run run "$SAMPLES/ct_kmeans.ini" -q -o "$T/ctk" -s write.products=recolor_raw
lowest=$(/usr/bin/python3 -c "
import cv2, glob, numpy as np
print(min(float(np.unique(cv2.imread(f, -1))[0]) for f in glob.glob('$T/ctk/*_recolor.tif')))")
[ "$rc" = 0 ] && /usr/bin/python3 -c "import sys; sys.exit(not -1100 <= $lowest)" \
    && ok "ct_kmeans.ini: no centre on the padding (darkest $lowest HU)" || ko "ct_kmeans padding" "rc $rc lowest $lowest"

# labels_color: each label in its palette colour (0 black, 1 orange, 2 sky
# blue), one colour a label; _labels.png stays the indices
run run "$SAMPLES/ct_kmeans.ini" -q -o "$T/lc" -i "$SAMPLES/ct/ID_0000_Z_0142.tif" -s write.products="labels, labels_color"
/usr/bin/python3 - "$T/lc" <<'EOP' >"$T/lc.txt"
import sys, cv2, numpy as np
d = sys.argv[1]
l = cv2.imread(d + "/ID_0000_Z_0142_labels.png", -1)
c = cv2.imread(d + "/ID_0000_Z_0142_labels_color.png")
want = {0: (0, 0, 0), 1: (0, 159, 230), 2: (233, 180, 86)}
ok = sorted(np.unique(l)) == [0, 1, 2] and all(
    (c[l == v] == want[v]).all() for v in want)
print("ok" if ok else "bad %s" % np.unique(l))
EOP
[ "$rc" = 0 ] && [ "$(cat "$T/lc.txt")" = ok ] && ok "labels_color: black, orange, sky blue for labels 0, 1, 2" \
    || ko "labels_color" "rc $rc $(cat "$T/lc.txt") $err"
run run "$SAMPLES/ct_kmeans.ini" -q -o "$T/lc2" -s write.products=labels_color -s "pipeline.stages=read, write"
expect "labels_color without kmeans" 2 "write.products" "labels need the kmeans stage"
# overlays of 8-bit pictures show their own grey levels, not a window's;
# overlay_fill tints the mask
run run "$SAMPLES/lung_ct.ini" -q -o "$T/ov8" -i "$SAMPLES/png/ID_0000_Z_0142.png" -s read.mode=grayscale
run2=$rc
run run "$SAMPLES/lung_ct.ini" -q -o "$T/ovf" -i "$SAMPLES/ct/ID_0000_Z_0142.tif" -s write.overlay_fill=0.3
/usr/bin/python3 - "$SAMPLES" "$T" <<'EOP' >"$T/ov.txt"
import sys, cv2, numpy as np
s, t = sys.argv[1], sys.argv[2]
a = cv2.imread(s + "/png/ID_0000_Z_0142.png", 0)
o = cv2.imread(t + "/ov8/ID_0000_Z_0142_overlay.png")
grey = (o[..., 0] == o[..., 1]) & (o[..., 1] == o[..., 2])
f = cv2.imread(t + "/ovf/ID_0000_Z_0142_overlay.png").astype(int)
m = cv2.imread(t + "/ovf/ID_0000_Z_0142_mask.png", 0) > 0
inner = cv2.erode(m.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
tinted = (f.max(axis=2) - f.min(axis=2)) > 20  # a lung's colour over the grey
print("ok" if (o[..., 0][grey] == a[grey]).all() and grey.mean() > 0.9
      and tinted[inner].mean() > 0.99 and not tinted[~m].mean() > 0.02 else
      "bad %.3f %.3f %.3f" % (grey.mean(), tinted[inner].mean(), tinted[~m].mean()))
EOP
[ "$run2" = 0 ] && [ "$rc" = 0 ] && [ "$(cat "$T/ov.txt")" = ok ] \
    && ok "overlay: an 8-bit picture in its own grey levels; overlay_fill = 0.3 tints the mask" \
    || ko "overlay grey/fill" "$run2 $rc $(cat "$T/ov.txt")"
# overlay_format: fast (default) and small are palette PNGs with rgb's very
# pixels; an overlay of more than 256 colours (overlay_fill) falls back to RGB
fmt_rc=""
for f in fast small rgb; do
    run run "$SAMPLES/lung_ct.ini" -q -o "$T/of_$f" -i "$SAMPLES/ct/ID_0000_Z_0142.tif" \
        -s write.overlay_format=$f -s "write.products=mask, lungs, overlay"
    fmt_rc="$fmt_rc$rc"
done
run run "$SAMPLES/lung_ct.ini" -q -o "$T/of_fill" -i "$SAMPLES/ct/ID_0000_Z_0142.tif" -s write.overlay_fill=0.3
fmt_rc="$fmt_rc$rc"
/usr/bin/python3 - "$T" <<'EOP' >"$T/of.txt"
import sys, os, cv2, numpy as np
t = sys.argv[1]
def png(f):  # colour type (IHDR byte 25) and pixels
    b = open(f, "rb").read()
    return b[25], cv2.imread(f, cv2.IMREAD_UNCHANGED)
n = "/ID_0000_Z_0142_overlay.png"
(cf, pf), (cs, ps), (cr, pr) = (png(t + "/of_%s%s" % (f, n)) for f in ("fast", "small", "rgb"))
cfill, pfill = png(t + "/of_fill" + n)
_, pov = png(t + "/ovf" + n)  # overlay_fill 0.3 above, default format
sizes = [os.path.getsize(t + "/of_%s%s" % (f, n)) for f in ("fast", "small", "rgb")]
same_masks = all(open(t + "/of_fast/ID_0000_Z_0142_%s.png" % k, "rb").read() ==
                 open(t + "/of_rgb/ID_0000_Z_0142_%s.png" % k, "rb").read() for k in ("mask", "lungs"))
print("ok" if (cf, cs, cr, cfill) == (3, 3, 2, 2) and np.array_equal(pf, pr)
      and np.array_equal(ps, pr) and np.array_equal(pfill, pov) and len(np.unique(pr.reshape(-1, 3), axis=0)) > 20
      and sizes[1] < sizes[0] < sizes[2] and same_masks
      else "bad types %s sizes %s masks %s" % ((cf, cs, cr, cfill), sizes, same_masks))
EOP
[ "$fmt_rc" = 0000 ] && [ "$(cat "$T/of.txt")" = ok ] \
    && ok "overlay_format: fast and small are palette PNGs with rgb's pixels, smaller; > 256 colours fall back to RGB" \
    || ko "overlay_format" "$fmt_rc $(cat "$T/of.txt")"
run run "$SAMPLES/lung_ct.ini" -q -o "$T/of_bad" -s write.overlay_format=jpeg
expect "overlay_format: unknown choice" 2 "write.overlay_format" "jpeg"

run --help
[ "$rc" = 0 ] && grep -q "Usage: kmseg" "$T/stdout" && ok "help" || ko "help" "rc $rc"
run --version
[ "$rc" = 0 ] && grep -q "^kmseg [0-9]" "$T/stdout" && grep -q OpenCV "$T/stdout" \
    && ok "version" || ko "version" "rc $rc: $out"
run frobnicate
expect "unknown command" 2 "unknown command 'frobnicate'"
run run
expect "run without config" 2 "exactly one CONFIG"
run stages
if [ "$rc" = 0 ]; then
    missing=""
    for key in input output stages seed mode method ksize sigma diameter sigma_color \
        sigma_space h template_window search_window width height scale interpolation \
        features value_scale backend k attempts max_iter epsilon criteria init products; do
        grep -qE "^  $key +" "$T/stdout" || missing="$missing $key"
    done
    for s in pipeline read denoise reshape kmeans recolor write; do
        grep -q "^\[$s\]" "$T/stdout" || missing="$missing [$s]"
    done
    [ -z "$missing" ] && ok "stages documents every key" || ko "stages" "missing:$missing"
else
    ko "stages" "rc $rc"
fi

# --- a good run -------------------------------------------------------------
cfg=$(config good "")
run run "$cfg" -q
if [ "$rc" = 0 ] && [ -f "$T/out/summary.csv" ] && [ "$(ls "$T/out"/*_recolor.png | wc -l)" = 4 ] \
    && [ "$(grep -c ',ok,' "$T/out/summary.csv")" = 4 ] && no_temp_files "$T/out"; then
    ok "good run writes 4 products and summary"
else
    ko "good run" "rc $rc: $err"
fi
head -1 "$T/out/summary.csv" | grep -q '^input,status,width,height,k,backend,wcss,ms_kmeans,ms_total,dice,iou' \
    && ok "summary header" || ko "summary header" "$(head -1 "$T/out/summary.csv")"
cp -r "$T/out" "$T/out.first"
run run "$cfg" -q
same=1
for f in "$T/out.first"/*.png; do cmp -s "$f" "$T/out/$(basename "$f")" || same=0; done
[ "$same" = 1 ] && ok "same config, same bytes" || ko "determinism" "products differ between runs"

run run "$cfg" -q -s kmeans.k=3 -o "$T/k3"
/usr/bin/python3 - "$T/k3" <<'EOP' && ok "-s override changes k" || ko "-s override" "labels not 0..2"
import sys, glob, cv2, numpy as np
fs = glob.glob(sys.argv[1] + "/*_labels.png")
sys.exit(0 if fs and all(set(np.unique(cv2.imread(f, 0))) == {0, 1, 2} for f in fs) else 1)
EOP
run run "$cfg" -q -s kmeans.kay=3
expect "-s unknown key" 2 "command line" "-s kmeans.kay" "unknown key"
run run "$cfg" -q -s nonsense
expect "-s malformed" 2 "SECTION.KEY=VALUE"

# --- compare and elbow ------------------------------------------------------------
ct=$SAMPLES/ct_kmeans.ini
run compare "$ct" -q -o "$T/cmp"
if [ "$rc" = 0 ] && head -1 "$T/cmp/compare.csv" | grep -qx 'input,k,native_ms,opencv_ms,native_wcss,opencv_wcss,opencv_compactness,label_agreement,ari' \
    && [ "$(tail -n +2 "$T/cmp/compare.csv" | wc -l)" = 4 ] && [ "$(ls "$T/cmp"/*_diff.png | wc -l)" = 4 ] \
    && grep -q "median speed-up of native over opencv" "$T/stdout"; then
    ok "compare writes compare.csv, diff images and the median speed-up"
else
    ko "compare" "rc $rc: $err"
fi
# the exact 1-D optimum is never worse than OpenCV (beyond float rounding)
# (both WCSS are summed in double from each labelling: no float tolerance)
awk -F, 'NR > 1 && $5 > $6 * (1 + 1e-12) { bad = 1 } END { exit bad }' "$T/cmp/compare.csv" \
    && ok "compare: native WCSS never above OpenCV's" || ko "compare WCSS" "$(cat "$T/cmp/compare.csv")"
# equal labellings, equal WCSS: three flat grey levels, both backends agree
/usr/bin/python3 -c "
import cv2, numpy as np, sys
a = np.zeros((64, 64), np.uint8); a[:, 20:40] = 100; a[:, 40:] = 200
a[::7, ::5] += 3
cv2.imwrite(sys.argv[1], a)" "$T/levels.png"
printf '[pipeline]\nstages = read, reshape, kmeans, recolor, write\n[read]\nmode = grayscale\n[kmeans]\nk = 3\n[write]\nproducts = recolor\n' >"$T/levels.ini"
run compare "$T/levels.ini" -q -i "$T/levels.png" -o "$T/cmp_eq"
row=$(tail -1 "$T/cmp_eq/compare.csv")
IFS=, read -r _ _ _ _ w_native w_cv _ agree _ <<<"$row"
[ "$rc" = 0 ] && [ "$agree" = 1.000000 ] && [ "$w_native" = "$w_cv" ] \
    && ok "compare: equal labellings show equal WCSS ($w_native)" || ko "compare equal" "rc $rc $row"
run elbow "$ct" -q --k 1..8 -o "$T/elb"
if [ "$rc" = 0 ] && [ "$(grep -c ',' "$T/elb/elbow.csv")" = 33 ] && [ "$(ls "$T/elb"/*_elbow.png | wc -l)" = 4 ] \
    && [ "$(grep -c "knee at K = " "$T/stdout")" = 4 ]; then
    ok "elbow writes elbow.csv, plots and the knee per input"
else
    ko "elbow" "rc $rc: $out $err"
fi
# WCSS falls with K, and K = 1 is the total sum of squares
awk -F, 'NR > 2 && $1 == prev && $3 > last * (1 + 1e-12) { bad = 1 } { prev = $1; last = $3 } END { exit bad }' \
    "$T/elb/elbow.csv" && ok "elbow: WCSS non-increasing in K" || ko "elbow order" "WCSS rises"
# without --k, elbow searches k = auto's range and marks the knee it picks
"$KMSEG" run "$ct" -q -s kmeans.k=auto -o "$T/auto0" 2>/dev/null
run elbow "$ct" -q -o "$T/elb_auto"
knees=$(awk -F, 'NR > 1 && $4 == 1 { print $1 "," $2 }' "$T/elb_auto/elbow.csv" | sort)
autos=$(awk -F, 'NR > 1 { print $1 "," $5 }' "$T/auto0/summary.csv" | sort)
[ "$rc" = 0 ] && [ -n "$knees" ] && [ "$knees" = "$autos" ] \
    && [ "$(awk -F, 'NR > 1 { print $2 }' "$T/elb_auto/elbow.csv" | sort -un | tr '\n' ' ')" = "2 3 4 5 6 7 8 " ] \
    && ok "elbow without --k: K 2..8 as k = auto, its knee column = the K auto chose" \
    || ko "elbow default range" "rc $rc knees [$knees] auto [$autos]"
run elbow "$ct" --k 5..2
expect "elbow bad --k" 2 "--k 5..2"
run run "$ct" --k 1..3
expect "--k outside elbow" 2 "--k is an option of elbow"
run run "$ct" -q -s kmeans.k=auto -o "$T/auto"
if [ "$rc" = 0 ] && awk -F, 'NR > 1 && ($5 < 2 || $5 > 8) { bad = 1 } END { exit bad }' "$T/auto/summary.csv"; then
    ok "k = auto picks a K in k_min..k_max"
else
    ko "k = auto" "rc $rc: $(cat "$T/auto/summary.csv")"
fi

# --- bad inputs: the item fails, the rest of the batch still runs ------------
mkdir -p "$T/in" "$T/empty_dir"
cp "$SAMPLES/png/ID_0000_Z_0142.png" "$T/in/good.png"
: >"$T/in/zero.png"
head -c 3000 "$SAMPLES/png/ID_0088_Z_0100.png" >"$T/in/truncated.png"
echo "this is not an image" >"$T/in/text.png"
cfg=$(config bad "")
bad_input() { # NAME FILE PATTERN
    rm -rf "$T/bo"
    run run "$cfg" -o "$T/bo" -i "$T/in/good.png" -i "$2"
    if expect "$1" 1 "$2" "$3"; then
        local lines
        lines=$(grep -c "kmseg: error" "$T/stderr")
        local stem
        stem=$(basename "${2%.*}")
        # only kmseg's own lines: no library noise
        if [ "$lines" != 1 ] || grep -vE "^(kmseg: |  )" "$T/stderr" | grep -q .; then
            ko "$1: one line" "$lines error lines; stderr: $err"
        elif ls "$T/bo" | grep -q "^${stem}_"; then
            ko "$1: no products" "$(ls "$T/bo")"
        elif [ ! -f "$T/bo/good_recolor.png" ] || ! grep -q "good.png,ok," "$T/bo/summary.csv"; then
            ko "$1: batch goes on" "good input not written"
        elif ! grep -q ",error," "$T/bo/summary.csv"; then
            ko "$1: summary row" "no error row"
        elif ! no_temp_files "$T/bo"; then
            ko "$1: temp files" "left behind"
        else
            ok "$1: rest of batch written, summary row"
        fi
    fi
}
# a mistyped -i is a usage error before anything runs; a missing file the
# config lists is that input's error row
rm -rf "$T/bo"
run run "$cfg" -o "$T/bo" -i "$T/in/good.png" -i "$T/in/nope.png"
expect "-i missing file: usage error" 2 "-i $T/in/nope.png: No such file or directory" \
    && { [ ! -e "$T/bo" ] && ok "-i missing file: no output folder" || ko "-i missing" "$(ls "$T/bo")"; }
run run "$cfg" -o "$T/bo" -s "pipeline.input=$T/in/good.png, $T/in/nope.png"
expect "missing input in the config: error row" 1 "nope.png" "No such file" \
    && grep -q "good.png,ok," "$T/bo/summary.csv" && grep -q "nope.png,error," "$T/bo/summary.csv" \
    && ok "missing input in the config: the rest of the batch written" || ko "missing input rows" "$(cat "$T/bo/summary.csv")"
bad_input "zero-byte file" "$T/in/zero.png" "empty file"
bad_input "truncated png" "$T/in/truncated.png" "truncated PNG"
bad_input "text named .png" "$T/in/text.png" "not an image OpenCV can decode"
bad_input "folder without images" "$T/empty_dir" "no images"
bad_input "glob matching nothing" "$T/in/*.jpeg" "no file matches"

cfg=$(config k2 "")

# outputs never clobber inputs
mkdir -p "$T/clobber"
cp "$SAMPLES/png/ID_0000_Z_0142.png" "$T/clobber/x_recolor.png"
cp "$SAMPLES/png/ID_0000_Z_0142.png" "$T/clobber/x.png"
sum_before=$(md5sum "$T/clobber/x_recolor.png")
run run "$cfg" -o "$T/clobber" -i "$T/clobber/x_recolor.png" -i "$T/clobber/x.png" \
    -s reshape.width=64 -s reshape.height=64 -s kmeans.k=2
[ "$(md5sum "$T/clobber/x_recolor.png")" = "$sum_before" ] && [ "$rc" = 1 ] \
    && grep -q "refusing to overwrite the input" "$T/stderr" \
    && ok "product never overwrites an input" || ko "clobber" "rc $rc: $err"

# --- output folder ------------------------------------------------------------
touch "$T/a_file"
cfg=$(config notdir "s|^output = .*|output = $T/a_file/sub|")
run run "$cfg"
expect "output under a file" 2 "$T/a_file/sub" "cannot create output folder"
# a read-only folder; root writes anywhere, so as root the run drops to
# nobody (setpriv, util-linux) with a copy of everything it needs
mkdir -p "$T/ro" "$T/roin"
chmod 555 "$T/ro"
cp "$SAMPLES/png/ID_0000_Z_0142.png" "$T/roin/"
cfg=$(config ro "s|^output = .*|output = $T/ro/out|; s|^input = .*|input = $T/roin|")
if [ "$(id -u)" = 0 ]; then
    cp "$KMSEG" "$T/kmseg-copy"
    chmod -R a+rX "$T"
    setpriv --reuid=65534 --regid=65534 --clear-groups "$T/kmseg-copy" run "$cfg" \
        >"$T/stdout" 2>"$T/stderr"
    rc=$?
    err=$(cat "$T/stderr")
    grep -qE "AddressSanitizer|LeakSanitizer|runtime error:" "$T/stderr" && rc=99
else
    run run "$cfg"
fi
expect "output folder not writable" 2 "$T/ro/out" "Permission denied"

# --- config errors: exit 2, file:line: key --------------------------------------
cfg_error() { # NAME SED PATTERN...
    local name=$1 expr=$2
    shift 2
    local c
    c=$(config "e$pass$fail" "s|^output = .*|output = $T/cfgerr|; $expr")
    run run "$c"
    expect "$name" 2 "$c:" "$@" && [ -e "$T/cfgerr" ] && ko "$name: nothing written" "output folder created"
}
cfg_error "k < 1" "s/^k = 2/k = 0/" "kmeans.k" "out of range" ":16:"
cfg_error "attempts 0" "s/^attempts = 2/attempts = 0/" "kmeans.attempts" "out of range"
cfg_error "unknown stage" "s/^stages = .*/stages = read, reshape, kmean, recolor, write/" \
    "pipeline.stages" "unknown stage 'kmean'" ":4:"
cfg_error "unknown key" "s/^attempts = 2/atempts = 2/" "kmeans.atempts" "unknown key"
cfg_error "misspelt value" "s/^mode = color/mode = colour/" "read.mode" "'colour' is not one of"
cfg_error "not a number" "s/^k = 2/k = two/" "kmeans.k" "not a whole number"
cfg_error "section twice" "\$a [kmeans]\nk = 3" "section [kmeans] defined twice"
cfg_error "key outside any section" "1i stray = 1" ":1:" "outside any section"
cfg_error "unknown section" "\$a [kmeens]\nk = 3" "unknown section [kmeens]"
cfg_error "key twice" "s/^k = 2/k = 2\nk = 3/" "set twice"
cfg_error "stage needs input" "s/^stages = .*/stages = read, kmeans, write/" "kmeans needs samples"
cfg_error "missing stages" "/^stages/d" "pipeline.stages" "missing"
cfg_error "syntax error" "s/^k = 2/k 2/" "syntax error"
cfg_error "odd ksize" "s/^stages = .*/stages = read, denoise, reshape, kmeans, recolor, write/; \$a [denoise]\nmethod = median\nksize = 4" "denoise.ksize" "must be odd"
# the typed stage contract: facts of the config alone fail before any input
cfg_error "k larger than reshape's samples" "s/^width = 64/width = 4/; s/^height = 64/height = 4/; s/^k = 2/k = 17/" \
    "kmeans.k" "17 clusters need at least 17 samples" "gives 16 a slice" ":16:"
cfg_error "optimal with colour features" "s/^height = 64/height = 64\nfeatures = color/; s/^backend = opencv/backend = native\nmethod = optimal/" \
    "kmeans.method" "optimal is exact for one feature only" ":20:"
cfg_error "colour features of a grayscale read" "s/^mode = color/mode = grayscale/; s/^height = 64/height = 64\nfeatures = color/" \
    "reshape.features" "read.mode = grayscale gives one channel" ":13:"
cfg_error "HU window on a colour read" "s/^stages = .*/stages = read, window, reshape, kmeans, recolor, write/" \
    "window.level" "an HU window needs CT" ":4:"
cfg_error "rescale of a colour read" "s/^mode = color/mode = color\nslope = 2/" \
    "read.slope" "a rescale needs one channel" ":9:"
cfg_error "lung_mask on a colour read" "s/^stages = .*/stages = read, lung_mask, write/; s/^products = .*/products = mask/" \
    "pipeline.stages" "read.mode = color gives three"
cfg_error "mask rank beyond k" "s/^stages = .*/stages = read, reshape, kmeans, mask, write/; s/^products = .*/products = mask/; \$a [mask]\nclusters = darkest, 2" \
    "mask.clusters" "rank 2 needs 3 clusters, but kmeans.k = 2"
cfg_error "mask rank beyond k_max" "s/^k = 2/k = auto\nk_max = 3/; s/^stages = .*/stages = read, reshape, kmeans, mask, write/; s/^products = .*/products = mask/; \$a [mask]\nclusters = 3" \
    "mask.clusters" "k = auto, k_max = 3"
cfg_error "k = auto without a range" "s/^k = 2/k = auto\nk_min = 4\nk_max = 4/" "kmeans.k_max" "k_min < k_max"
cfg_error "truth placeholder misspelt" "s/^stages = .*/stages = read, reshape, kmeans, mask, evaluate, write/; s/^products = .*/products = mask/; \$a [evaluate]\ntruth = masks/{name}.png" \
    "evaluate.truth" "the placeholders are {stem} and {dir}"
cfg_error "median 7 of rescaled HU" "s/^mode = color/mode = unchanged\nintercept = -1024/; s/^stages = .*/stages = read, denoise, reshape, kmeans, recolor, write/; \$a [denoise]\nmethod = median\nksize = 7" \
    "denoise.ksize" "median above 5 takes 8-bit images only"
cfg_error "labels product without kmeans" "s/^stages = .*/stages = read, lung_mask, write/; s/^mode = color/mode = unchanged/; s/^products = .*/products = labels/" \
    "write.products" "labels need the kmeans stage"
cfg_error "recolor product without recolor" "s/^stages = .*/stages = read, reshape, kmeans, write/" \
    "write.products" "recolor products need the recolor stage"
# -s overrides too: named as such, before any input
c=$(config "ov$pass" "s|^output = .*|output = $T/cfgerr|")
run run "$c" -s kmeans.method=optimal -s reshape.features=color
expect "-s contract error" 2 "-s kmeans.method" "optimal" && [ -e "$T/cfgerr" ] && ko "-s contract: nothing written" "output folder created"
# k = 1 segments nothing: a config error before any input, also where no
# later stage reads the labels (samples/lung_ct.ini)
run run "$(config k1 "")" -q -s kmeans.k=1 -o "$T/k1"
expect "k = 1: exit 2 naming -s kmeans.k" 2 "-s kmeans.k" "k = 1 puts every sample in one cluster" \
    && { [ ! -e "$T/k1" ] && ok "k = 1: no output folder" || ko "k = 1" "output folder made"; }
run run "$SAMPLES/lung_ct.ini" -q -s kmeans.k=1 -o "$T/k1lung"
expect "lung_ct.ini -s kmeans.k=1: exit 2" 2 "kmeans.k" && [ ! -e "$T/k1lung" ] \
    && ok "lung_ct.ini -s kmeans.k=1: nothing read, no output folder" || ko "k1 lung" "$(ls "$T/k1lung" 2>&1)"
# compare and elbow find the clustering stage by its hook
c=$(config "nok$pass" "s|^output = .*|output = $T/cfgerr|; s/^stages = .*/stages = read, lung_mask, write/; s/^mode = color/mode = unchanged/; s/^products = .*/products = mask/")
run compare "$c"
expect "compare without clustering" 2 "compare needs a stage that clusters" && [ -e "$T/cfgerr" ] && ko "compare: nothing written" "output folder created"
run elbow "$c" --k 1..3
expect "elbow without clustering" 2 "elbow needs a stage that clusters" && [ -e "$T/cfgerr" ] && ko "elbow: nothing written" "output folder created"

run elbow "$(config elbow4 "s|^output = .*|output = $T/cfgerr|; s/^width = 64/width = 2/; s/^height = 64/height = 2/")" --k 1..5
expect "elbow K beyond reshape's samples" 2 "--k 1..5" "gives 4 a slice" && [ -e "$T/cfgerr" ] && ko "elbow --k: nothing written" "output folder created"

run run "$T/no-such.ini"
expect "missing config" 2 "$T/no-such.ini" "cannot open config"

# -s paths are relative to the current folder, as -i and -o are (not to
# the config's folder, which holds samples/ in this tree)
mkdir -p "$T/cwd/slices" "$T/cwd/truth"
cp "$SAMPLES"/ct/*.tif "$T/cwd/slices/"
for f in "$SAMPLES"/masks/*.png; do cp "$f" "$T/cwd/truth/"; done
(cd "$T/cwd" && "$KMSEG" run "$SAMPLES/lung_ct.ini" -q -s pipeline.input=slices \
    -s pipeline.output=rel_out -s 'evaluate.truth=truth/{stem}.png' \
    -s write.products=mask 2>"$T/stderr")
rc=$?
n=$(ls "$T/cwd/rel_out"/*_mask.png 2>/dev/null | wc -l)
dice=$(awk -F, 'NR > 1 && $10 != "" { n++ } END { print n + 0 }' "$T/cwd/rel_out/summary.csv" 2>/dev/null)
[ $rc = 0 ] && [ "$n" = 4 ] && [ "$dice" = 4 ] && [ ! -e "$SAMPLES/rel_out" ] \
    && ok "-s pipeline.input/output and evaluate.truth are relative to the current folder" \
    || ko "-s paths" "rc $rc masks $n scored $dice $(cat "$T/stderr")"
"$KMSEG" stages | grep -A1 "^  input " | grep -q "comma-separated paths" \
    && ok "kmseg stages calls pipeline.input comma-separated paths" || ko "stages paths" "$("$KMSEG" stages | grep -A1 '^  input ')"

e2e_done
