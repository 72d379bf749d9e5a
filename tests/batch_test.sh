#!/bin/bash
# Batch behaviour end to end: parallel jobs, progress on a terminal, resume
# after a killed run, Ctrl-C, shards through GNU parallel, a bad file in the
# middle. Usage: tests/batch_test.sh KMSEG   (PASS/FAIL lines and a count)
source "$(dirname "$0")/e2e_lib.sh"

# 24 inputs made of the four sample slices under other names
mkdir -p "$T/in"
i=0
for rep in 1 2 3 4 5 6; do
    for f in "$ROOT"/samples/png/*.png; do
        cp "$f" "$T/in/slice_$(printf %03d $i).png"
        i=$((i + 1))
    done
done
cat >"$T/batch.ini" <<EOI
[pipeline]
input = in
output = out
stages = read, reshape, kmeans, recolor, write
seed = 3
[read]
mode = grayscale
[reshape]
value_scale = 1/255
[kmeans]
k = 3
[write]
products = recolor, labels
EOI

# the run's own record (date, command line, output folder) differs by design
not_products=(-x 'kmseg.resolved.ini' -x 'kmseg.run*.txt' -x 'kmseg.inputs.txt' -x 'report*.html')
same_tree() { # A B: same file names and bytes (summary.csv included)
    diff -r "${not_products[@]}" "$1" "$2" >/dev/null
}

# --- jobs: same bytes whatever N is -----------------------------------------------
"$KMSEG" run "$T/batch.ini" -q -j 1 --no-timings -o "$T/j1"
rc1=$?
"$KMSEG" run "$T/batch.ini" -q -j 2 --no-timings -o "$T/j2"
rc2=$?
"$KMSEG" run "$T/batch.ini" -q -j 5 --no-timings -o "$T/j5"
if [ $rc1 = 0 ] && [ $rc2 = 0 ] && same_tree "$T/j1" "$T/j2" && same_tree "$T/j1" "$T/j5" \
    && [ "$(ls "$T/j1" | wc -l)" = 52 ]; then
    ok "-j 1, 2, 5 give byte-identical outputs"
else
    ko "jobs" "outputs differ or missing ($(ls "$T/j1" | wc -l) files)"
fi

# --- progress: a line redrawn in place on a terminal, nothing otherwise ----------
script -qec "'$KMSEG' run '$T/batch.ini' -j 2 -o '$T/p'" /dev/null >"$T/tty.txt" 2>&1
if grep -q $'\r' "$T/tty.txt" && grep -q "ETA" "$T/tty.txt" && grep -q "24/24 100%" "$T/tty.txt" \
    && grep -q "failed 0" "$T/tty.txt" && grep -q "24 succeeded, 0 failed" "$T/tty.txt"; then
    ok "progress line on a pseudo-terminal"
else
    ko "progress on tty" "$(tr '\r' '\n' <"$T/tty.txt" | tail -3)"
fi
"$KMSEG" run "$T/batch.ini" -j 2 -o "$T/p2" 2>"$T/notty.txt"
if ! grep -q $'\r' "$T/notty.txt" && ! grep -q "ETA" "$T/notty.txt" \
    && grep -q "24 succeeded" "$T/notty.txt"; then
    ok "no progress line when stderr is not a terminal"
else
    ko "progress off" "$(cat "$T/notty.txt")"
fi
script -qec "'$KMSEG' run '$T/batch.ini' -j 2 --progress=never -o '$T/p3'" /dev/null >"$T/never.txt" 2>&1
! grep -q "ETA" "$T/never.txt" && ok "--progress=never" || ko "--progress=never" "progress shown"

# --- a bad file in the middle ----------------------------------------------------------
mkdir -p "$T/mid"
cp "$T/in/slice_000.png" "$T/mid/a.png"
echo "garbage" >"$T/mid/b.png"
cp "$T/in/slice_001.png" "$T/mid/c.png"
"$KMSEG" run "$T/batch.ini" -q -j 2 -i "$T/mid" -o "$T/midout" 2>/dev/null
rc=$?
rows=$(cut -d, -f1,2 "$T/midout/summary.csv" | tail -n +2 | sed "s|$T/mid/||" | tr '\n' ' ')
if [ $rc = 1 ] && [ "$rows" = "a.png,ok b.png,error c.png,ok " ] \
    && [ -f "$T/midout/a_recolor.png" ] && [ -f "$T/midout/c_labels.png" ] \
    && ! ls "$T/midout" | grep -q '^b_'; then
    ok "bad file in the middle: its row fails, the others are written, order kept"
else
    ko "bad file in the middle" "rc $rc rows: $rows"
fi

# --- resume after a killed run ----------------------------------------------------------
# nlmeans makes each input slow enough to kill the batch half-way
slow=(-s "pipeline.stages=read, denoise, reshape, kmeans, recolor, write" -s denoise.method=nlmeans)
"$KMSEG" run "$T/batch.ini" -q -j 1 --no-timings "${slow[@]}" -o "$T/full"
"$KMSEG" run "$T/batch.ini" -q -j 1 --no-timings "${slow[@]}" -o "$T/killed" &
pid=$!
for _ in $(seq 200); do
    n=$(ls "$T/killed" 2>/dev/null | grep -c '_labels.png$')
    [ "$n" -ge 5 ] && break
    sleep 0.05
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
done_before=$(ls "$T/killed" | grep -c '_labels.png$')
"$KMSEG" run "$T/batch.ini" -j 2 --progress never --no-timings "${slow[@]}" --resume -o "$T/killed" 2>"$T/resume.txt"
rc=$?
# skipped rows keep their earlier ok row (from the journal): counted here
skipped=$(grep -o '[0-9]* skipped of 24' "$T/resume.txt" | cut -d' ' -f1)
skipped=${skipped:-0}
rm -f "$T/killed"/.*.tmp-* 2>/dev/null # kill -9 can strand a temporary file
products_same=1
for f in "$T/full"/*.png; do cmp -s "$f" "$T/killed/$(basename "$f")" || products_same=0; done
if [ $rc = 0 ] && [ "$done_before" -ge 1 ] && [ "$done_before" -lt 24 ] && [ "$skipped" -ge 1 ] \
    && [ "$products_same" = 1 ] && cmp -s "$T/full/summary.csv" "$T/killed/summary.csv"; then
    ok "resume after kill -9: $done_before done before, $skipped skipped, products identical"
else
    ko "resume" "rc $rc, done before $done_before, skipped $skipped, same $products_same"
fi

# --- the journal: kill -9 at five moments of a 200-input batch, --resume gives the
# uninterrupted summary ------------------------------------------------------------------
mkdir -p "$T/in200"
for i in $(seq 0 199); do
    cp "$T/in/slice_$(printf %03d $((i % 24))).png" "$T/in200/s_$(printf %03d $i).png"
done
mid=(-i "$T/in200")
"$KMSEG" run "$T/batch.ini" -q -j 2 --no-timings "${mid[@]}" -o "$T/mid_full"
records() { # DIR: complete records in its journal
    echo $(($(wc -l 2>/dev/null <"$1/.kmseg-journal.csv" || echo 1) - 1))
}
for at in 20 60 100 140 180; do
    d=$T/kill$at
    "$KMSEG" run "$T/batch.ini" -q -j 2 --no-timings "${mid[@]}" -o "$d" &
    pid=$!
    for _ in $(seq 3000); do
        [ "$(records "$d")" -ge $at ] && break
        sleep 0.01
    done
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    before=$(records "$d")
    mid_run=0 # killed before its end: a journal, no summary yet
    [ -f "$d/.kmseg-journal.csv" ] && [ ! -f "$d/summary.csv" ] && mid_run=1
    if [ $at = 180 ]; then
        # a record torn by the kill: half of the first one, no line end
        line=$(sed -n 2p "$d/.kmseg-journal.csv")
        printf '%s' "${line:0:$((${#line} / 2))}" >>"$d/.kmseg-journal.csv"
    fi
    "$KMSEG" run "$T/batch.ini" -q -j 2 --no-timings "${mid[@]}" --resume -o "$d"
    rc=$?
    rm -f "$d"/.*.tmp-* 2>/dev/null # kill -9 can strand a temporary file
    # byte for byte: summary.csv, products, and no journal or lock left
    if [ $rc = 0 ] && [ $mid_run = 1 ] && [ "$before" -ge 1 ] && same_tree "$T/mid_full" "$d"; then
        ok "kill -9 after $before of 200 (journal there mid-run), --resume: same summary and products as one run, journal gone"
    else
        ko "kill -9 near $at" "rc $rc, mid-run $mid_run, $before before; $(diff -r "${not_products[@]}" "$T/mid_full" "$d" | head -3)"
    fi
done

# --- one run per output folder -------------------------------------------------------------
journal_appears() { # DIR [NAME]: wait until the run writing there has its journal
    for _ in $(seq 1000); do
        [ -f "$1/${2:-.kmseg-journal.csv}" ] && return 0
        sleep 0.01
    done
    return 1
}
"$KMSEG" run "$T/batch.ini" -q -j 1 --no-timings "${mid[@]}" -o "$T/busy" &
pid=$!
journal_appears "$T/busy"
"$KMSEG" run "$T/batch.ini" -q -j 1 --no-timings -o "$T/busy" 2>"$T/busy.err"
rc2=$?
wait $pid
rc1=$?
if [ $rc2 = 2 ] && [ "$(cat "$T/busy.err")" = "kmseg: error: $T/busy: another kmseg run (pid $pid) is writing here" ] \
    && [ $rc1 = 0 ] && cmp -s "$T/busy/summary.csv" "$T/mid_full/summary.csv" \
    && [ -z "$(ls -A "$T/busy" | grep '^\.')" ]; then
    ok "a second run into a busy folder: exit 2 naming the folder and pid; the first completes, lock removed"
else
    ko "busy folder" "rc $rc1/$rc2: $(cat "$T/busy.err")"
fi
# shards of one run share the folder; the same shard twice or an unsharded run does not
"$KMSEG" run "$T/batch.ini" -q -j 1 --no-timings "${mid[@]}" --shard 0/2 -o "$T/sh" &
pid=$!
journal_appears "$T/sh" .kmseg-journal.shard-0-of-2.csv
"$KMSEG" run "$T/batch.ini" -q -j 1 --no-timings --shard 0/2 -o "$T/sh" 2>"$T/sh0.err"
rc_same=$?
"$KMSEG" run "$T/batch.ini" -q -j 1 --no-timings -o "$T/sh" 2>"$T/sh_all.err"
rc_all=$?
"$KMSEG" run "$T/batch.ini" -q -j 1 --no-timings "${mid[@]}" --shard 1/2 -o "$T/sh"
rc_other=$?
wait $pid
rc_first=$?
"$KMSEG" merge-summaries "$T/sh" 2>"$T/merge.err"
grep -q "^kmseg: merged 2 shard summaries ([0-9]* rows) into $T/sh/summary.csv$" "$T/merge.err" \
    && ok "merge-summaries says what it merged, and where" || ko "merge message" "$(cat "$T/merge.err")"
if [ $rc_same = 2 ] && [ $rc_all = 2 ] && [ $rc_other = 0 ] && [ $rc_first = 0 ] \
    && grep -q "(pid $pid) is writing here" "$T/sh0.err" && grep -q "(pid $pid)" "$T/sh_all.err" \
    && cmp -s "$T/sh/summary.csv" "$T/mid_full/summary.csv"; then
    ok "lock: shard 1/2 beside 0/2 runs; 0/2 twice and an unsharded run are refused"
else
    ko "shard lock" "same $rc_same, unsharded $rc_all, other $rc_other, first $rc_first"
fi

# --- a row failed after write stays failed on --resume -------------------------------------
mkdir -p "$T/two"
cp "$T/in/slice_000.png" "$T/in/slice_001.png" "$T/two/"
echo garbage >"$T/badtruth.png"
ev=(-s "pipeline.stages=read, reshape, kmeans, recolor, mask, write, evaluate"
    -s "evaluate.truth=$T/badtruth.png" -i "$T/two" -o "$T/ev")
"$KMSEG" run "$T/batch.ini" -q -j 1 --no-timings "${ev[@]}" 2>/dev/null
rc1=$?
"$KMSEG" run "$T/batch.ini" -q -j 1 --no-timings "${ev[@]}" --resume 2>/dev/null
rc2=$?
st=$(tail -n +2 "$T/ev/summary.csv" | cut -d, -f2 | tr '\n' ' ')
[ $rc1 = 1 ] && [ $rc2 = 1 ] && [ "$st" = "error error " ] && [ -f "$T/ev/slice_000_labels.png" ] \
    && ok "write, evaluate with a bad truth: error rows, and --resume runs them again: error, exit 1" \
    || ko "error rows on resume" "rc $rc1/$rc2 statuses $st"

# --- merge-summaries refuses shards of two runs ------------------------------------------
mkdir -p "$T/four"
cp "$T/in/slice_00"[0-3].png "$T/four/"
sh_run() { # I/N DIR [ARGS]
    "$KMSEG" run "$T/batch.ini" -q -j 1 --no-timings -i "$T/four" --shard "$1" -o "$2" "${@:3}"
}
sh_run 0/2 "$T/mixn"; sh_run 1/2 "$T/mixn"; sh_run 0/3 "$T/mixn"
"$KMSEG" merge-summaries "$T/mixn" 2>"$T/mixn.err"
rc=$?
[ $rc != 0 ] && grep -q "of-2.csv" "$T/mixn.err" && grep -q "of-3.csv" "$T/mixn.err" && [ ! -f "$T/mixn/summary.csv" ] \
    && ok "merge-summaries: shards of two counts refused, both files named" \
    || ko "merge two counts" "rc $rc: $(cat "$T/mixn.err")"
sh_run 0/2 "$T/mixr"; sh_run 1/2 "$T/mixr" -s pipeline.seed=4
"$KMSEG" merge-summaries "$T/mixr" 2>"$T/mixr.err"
rc=$?
[ $rc != 0 ] && grep -q "summary.shard-0-of-2.csv and summary.shard-1-of-2.csv: shards of two runs" "$T/mixr.err" \
    && [ ! -f "$T/mixr/summary.csv" ] \
    && ok "merge-summaries: shards of two runs (another seed) refused, both named" \
    || ko "merge two runs" "rc $rc: $(cat "$T/mixr.err")"

# --- Ctrl-C and SIGTERM: stop cleanly, keep what finished ----------------------------------
# a run into DIR stopped by SIGNAL once 3 inputs are done: "rc rows labels"
stopped_run() { # SIGNAL DIR
    "$KMSEG" run "$T/batch.ini" -q -j 1 "${slow[@]}" -o "$2" &
    local pid=$! rc
    for _ in $(seq 200); do
        [ "$(ls "$2" 2>/dev/null | grep -c '_labels.png$')" -ge 3 ] && break
        sleep 0.05
    done
    kill -"$1" $pid
    wait $pid
    rc=$?
    echo "$rc $(tail -n +2 "$2/summary.csv" 2>/dev/null | wc -l) $(ls "$2" | grep -c '_labels.png$')"
}
# SIGTERM is how a scheduler stops a job: the status a shell gives it
for s in INT:130 TERM:143; do
    read -r rc rows labels <<<"$(stopped_run ${s%%:*} "$T/stop_${s%%:*}")"
    if [ "$rc" = "${s##*:}" ] && [ "$rows" -ge 3 ] && [ "$rows" -lt 24 ] && [ "$rows" = "$labels" ] \
        && ! ls -a "$T/stop_${s%%:*}" | grep -q '\.tmp-'; then
        ok "SIG${s%%:*}: exit ${s##*:}, summary of the $rows finished, no temporary files"
    else
        ko "SIG${s%%:*}" "rc $rc rows $rows labels $labels"
    fi
done

# --- shards through GNU parallel: their union is the unsharded run -------------------------
parallel --will-cite -j 3 "'$KMSEG'" run "'$T/batch.ini'" -q -j 1 --no-timings \
    --shard {}/3 -o "'$T/shards'" ::: 0 1 2
"$KMSEG" merge-summaries "$T/shards"
rm -f "$T/shards"/summary.shard-*
if same_tree "$T/shards" "$T/j1"; then
    ok "three shards through GNU parallel, merged: byte-identical to one run"
else
    ko "shards" "$(diff -r "${not_products[@]}" "$T/shards" "$T/j1" | head -3)"
fi
"$KMSEG" run "$T/batch.ini" -q --shard 3/3 2>"$T/e.txt"
[ $? = 2 ] && grep -q "want I/N" "$T/e.txt" && ok "--shard out of range" || ko "--shard 3/3" "$(cat "$T/e.txt")"

# --- file modes follow the umask, for run and merge-summaries alike -----------------------
modes() { # FOLDER: the distinct permission bits of its files
    stat -c %a "$1"/* | sort -u | tr '\n' ' '
}
for u in 077:600 022:644; do
    (umask "${u%%:*}"
     "$KMSEG" run "$T/batch.ini" -q -j 1 --shard 0/2 -o "$T/mode${u%%:*}"
     "$KMSEG" run "$T/batch.ini" -q -j 1 --shard 1/2 -o "$T/mode${u%%:*}"
     "$KMSEG" merge-summaries "$T/mode${u%%:*}")
    got=$(modes "$T/mode${u%%:*}")
    [ "$got" = "${u##*:} " ] && [ -f "$T/mode${u%%:*}/summary.csv" ] \
        && ok "umask ${u%%:*}: products, shard summaries and the merged summary.csv are ${u##*:}" \
        || ko "umask ${u%%:*}" "modes $got"
done

# --- a file name holding a newline and a quote: one CSV record for --resume and merge ------
mkdir -p "$T/nl"
cp "$T/in/slice_000.png" "$T/nl/$(printf 'two\nlines "q".png')"
cp "$T/in/slice_001.png" "$T/nl/plain.png"
for i in 0 1; do
    "$KMSEG" run "$T/batch.ini" -q -j 1 --no-timings -i "$T/nl" --shard $i/2 -o "$T/nl_out"
done
"$KMSEG" merge-summaries "$T/nl_out"
"$KMSEG" run "$T/batch.ini" -j 1 --progress never --no-timings -i "$T/nl" --resume -o "$T/nl_out" 2>"$T/nl.err"
rc=$?
got=$(/usr/bin/python3 -c "
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline='')))
print(len(rows), sorted(r['status'] for r in rows), any('\n' in r['input'] for r in rows))" "$T/nl_out/summary.csv")
[ $rc = 0 ] && [ "$got" = "2 ['ok', 'ok'] True" ] && grep -q " 2 skipped of 2" "$T/nl.err" \
    && ok "a name with a newline: shards merge, --resume skips both and keeps their rows" \
    || ko "newline name" "rc $rc: $got $(cat "$T/nl.err")"

# --- inputs: recursive folders and list files ----------------------------------------------
mkdir -p "$T/tree/a/b"
cp "$T/in/slice_000.png" "$T/tree/top.png"
cp "$T/in/slice_001.png" "$T/tree/a/b/deep.png"
"$KMSEG" run "$T/batch.ini" -q -i "$T/tree" -o "$T/flat"
n_flat=$(tail -n +2 "$T/flat/summary.csv" | wc -l)
"$KMSEG" run "$T/batch.ini" -q -r -i "$T/tree" -o "$T/deep"
n_deep=$(tail -n +2 "$T/deep/summary.csv" | wc -l)
[ "$n_flat" = 1 ] && [ "$n_deep" = 2 ] && ok "--recursive" || ko "--recursive" "$n_flat $n_deep"
# per-patient folders reusing file names: the products mirror the tree, and
# the truth can too ({dir}); --resume finds them there
mkdir -p "$T/pat/p1" "$T/pat/p2" "$T/patmask/p1" "$T/patmask/p2"
cp "$ROOT/samples/ct/ID_0000_Z_0142.tif" "$T/pat/p1/slice.tif"
cp "$ROOT/samples/ct/ID_0088_Z_0100.tif" "$T/pat/p2/slice.tif"
cp "$ROOT/samples/masks/ID_0000_Z_0142.png" "$T/patmask/p1/slice.png"
cp "$ROOT/samples/masks/ID_0088_Z_0100.png" "$T/patmask/p2/slice.png"
cp "$ROOT/samples/ct/ID_0165_Z_0145.tif" "$T/pat/top.tif"
"$KMSEG" run "$ROOT/samples/lung_ct.ini" -q -r -i "$T/pat" -o "$T/patout" \
    -s evaluate.truth="$T/patmask/{dir}/{stem}.png" 2>"$T/pat.err"
rc=$?
"$KMSEG" run "$ROOT/samples/lung_ct.ini" -q -r -i "$T/pat" -o "$T/patout" --resume \
    -s evaluate.truth="$T/patmask/{dir}/{stem}.png" 2>"$T/pat2.err"
rc2=$?
dice=$(awk -F, 'NR > 1 && $10 != "" { n++ } END { print n + 0 }' "$T/patout/summary.csv")
[ $rc = 0 ] && [ $rc2 = 0 ] && [ -f "$T/patout/p1/slice_mask.png" ] && [ -f "$T/patout/p2/slice_mask.png" ] \
    && [ -f "$T/patout/top_mask.png" ] && ! cmp -s "$T/patout/p1/slice_mask.png" "$T/patout/p2/slice_mask.png" \
    && [ "$dice" = 2 ] && grep -q "no truth at $T/patmask//top.png" "$T/patout/summary.csv" \
    && [ "$(grep -c ',skipped,' "$T/patout/summary.csv")" = 0 ] \
    && [ "$(tail -n +2 "$T/patout/summary.csv" | wc -l)" = 3 ] \
    && ok "-r over p1/slice.tif and p2/slice.tif: out/p1/, out/p2/ mirrored, truth by {dir}, --resume keeps them" \
    || ko "mirror tree" "rc $rc $rc2 dice $dice $(head -2 "$T/pat.err") $(cat "$T/patout/summary.csv")"
printf '# two inputs\n%s\n\nin/slice_002.png\n' "$T/in/slice_001.png" >"$T/list.txt"
"$KMSEG" run "$T/batch.ini" -q -i @"$T/list.txt" -o "$T/listed"
[ "$(tail -n +2 "$T/listed/summary.csv" | wc -l)" = 2 ] && [ -f "$T/listed/slice_002_labels.png" ] \
    && ok "@list input file" || ko "@list" "$(cat "$T/listed/summary.csv")"

e2e_done
