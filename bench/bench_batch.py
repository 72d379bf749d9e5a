#!/usr/bin/python3
"""Batch throughput and memory, measured in one run.

Throughput of `kmseg run CONFIG` at -j 1 and -j 2 on the same 1000 inputs
(enough work that the ~65 ms of process start-up, mostly loading OpenCV,
does not decide the ratio), REPS interleaved repetitions after a warm-up:
slices/s median [min-max] and the per-rep ratio. Peak RSS for 20 and for
200 inputs (-j 2), interleaved the same way, and their ratio.

Inputs are copies of the lung slices (../shared/data/lung-ct when present,
else samples/ct) under distinct names, each with a copy of its manual mask
under the same name, so the evaluate stage scores every input: the run
fails loudly when a row has no Dice or a product is missing (a benchmark
that silently skipped a stage would flatter the figure).

Usage: bench/bench_batch.py [KMSEG] [CONFIG] [--reps N]
"""
import argparse
import csv
import glob
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_lib import interleaved, machine_line, ratios, readme_row, readme_value, run_child, spread  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sources():
    for images, masks in ((os.path.join(ROOT, "..", "shared", "data", "lung-ct", "images"),
                           os.path.join(ROOT, "..", "shared", "data", "lung-ct", "masks")),
                          (os.path.join(ROOT, "samples", "ct"), os.path.join(ROOT, "samples", "masks"))):
        found = sorted(glob.glob(os.path.join(images, "*.tif")))
        if found:
            return [(f, os.path.join(masks, os.path.splitext(os.path.basename(f))[0] + ".png"))
                    for f in found], os.path.relpath(images, ROOT)
    sys.exit("bench_batch: no CT slices found")


def make_inputs(folder, pairs, n):
    """n copies of the slices as s0000.tif..., and truth/s0000.png... beside."""
    os.makedirs(os.path.join(folder, "truth"))
    os.makedirs(os.path.join(folder, "in"))
    for i in range(n):
        image, mask = pairs[i % len(pairs)]
        shutil.copy(image, os.path.join(folder, "in", "s%04d.tif" % i))
        shutil.copy(mask, os.path.join(folder, "truth", "s%04d.png" % i))
    return folder


def checked(out, n, products):
    """Every input scored and written: the stages the figure claims ran."""
    rows = list(csv.DictReader(open(os.path.join(out, "summary.csv"))))
    if len(rows) != n:
        sys.exit("bench_batch: %d rows in %s, expected %d" % (len(rows), out, n))
    bad = [r["input"] for r in rows if r["status"] != "ok" or not r["dice"]]
    if bad:
        sys.exit("bench_batch: %d inputs without a Dice (evaluate did not run), e.g. %s"
                 % (len(bad), bad[0]))
    for suffix in products:
        found = len(glob.glob(os.path.join(out, "*" + suffix)))
        if found != n:
            sys.exit("bench_batch: %d files *%s in %s, expected %d" % (found, suffix, out, n))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kmseg", nargs="?", default=os.path.join(ROOT, "build/kmseg"))
    ap.add_argument("config", nargs="?", default=os.path.join(ROOT, "samples/lung_ct.ini"))
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    kmseg, config = os.path.abspath(a.kmseg), os.path.abspath(a.config)
    pairs, where = sources()
    with tempfile.TemporaryDirectory() as tmp:
        sets = {n: make_inputs(os.path.join(tmp, "set%d" % n), pairs, n) for n in (1000, 200, 20)}
        runs = [0]

        def run(n, jobs):
            runs[0] += 1
            out = os.path.join(tmp, "out%d" % runs[0])
            wall, _, rss = run_child([kmseg, "run", config, "-q", "-j", str(jobs),
                                      "-i", os.path.join(sets[n], "in"), "-o", out,
                                      "-s", "evaluate.truth=%s/truth/{stem}.png" % sets[n]])
            checked(out, n, ("_mask.png",))
            # kept to the end: see bench_pipeline.py (ext4's recently_deleted)
            return wall, rss

        speed = interleaved(a.reps, {"j1": lambda: 1000 / run(1000, 1)[0],
                                     "j2": lambda: 1000 / run(1000, 2)[0]})
        rss = interleaved(a.reps, {"r20": lambda: run(20, 2)[1],
                                   "r200": lambda: run(200, 2)[1]})
    scale = ratios(speed["j2"], speed["j1"])
    grow = ratios(rss["r200"], rss["r20"])
    name = os.path.relpath(config, ROOT)
    print("config: %s; %d source slices from %s, each scored against its manual mask; "
          "%d interleaved reps after a warm-up; %s" % (name, len(pairs), where, a.reps, machine_line()))
    print("throughput -j 1: %s slices/s (1000 slices)" % spread(speed["j1"]))
    print("throughput -j 2: %s slices/s (1000 slices)" % spread(speed["j2"]))
    print("scaling -j 2 / -j 1, per rep: %s (target >= 1.8 on 2 cores)" % spread(scale, "%.2f"))
    print("peak RSS  20 inputs: %s MiB" % spread(rss["r20"]))
    print("peak RSS 200 inputs: %s MiB" % spread(rss["r200"]))
    print("RSS 200 / 20, per rep: %s (target within 10 %%)" % spread(grow, "%.3f"))
    readme_row("bench/bench_batch.py [KMSEG] [CONFIG] [--reps N]",
               "`kmseg run` throughput at `-j 1` and `-j 2` over 1000 slices with every stage of "
               "`%s` (evaluate scores each against its manual mask), and peak RSS for 20 and 200 "
               "inputs; %d interleaved reps" % (name, a.reps),
               "%s → %s slices/s, scaling %s×; peak RSS %s / %s MiB (ratio %s)"
               % (spread(speed["j1"]), spread(speed["j2"]), spread(scale, "%.2f"),
                  spread(rss["r20"]), spread(rss["r200"]), spread(grow, "%.3f")))
    readme_value("batch_j1", "%.0f" % statistics.median(speed["j1"]))
    readme_value("batch_j2", "%.0f" % statistics.median(speed["j2"]))
    readme_value("batch_scaling", "%.2f" % statistics.median(scale))


if __name__ == "__main__":
    main()
