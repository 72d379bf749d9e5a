#!/usr/bin/python3
"""Lung masks: accuracy against manual masks.

Accuracy: samples/lung_ct.ini's pipeline (lung_mask) and, for comparison, the
usual OpenCV k-means recipe (bench/opencv_recipe.ini) on the same slices with
their manual masks: Dice mean and minimum, the worst slices.
Speed moved to bench/bench_pipeline.py (whole runs side by side, interleaved
reps with their spread: slices per second, the overlay's cost, the I/O
floor); a single timed run here said little on a shared machine.

Slices: ../shared/data/lung-ct (24 with masks) when present, else samples/.
Usage: bench/bench_lung.py [KMSEG]
"""
import csv
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dice_of(summary):
    rows = list(csv.DictReader(open(summary)))
    scored = [(float(r["dice"]), os.path.basename(r["input"])) for r in rows if r["dice"]]
    return scored


def run(args):
    subprocess.run(args, check=True, stderr=subprocess.DEVNULL)


def main():
    kmseg = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build/kmseg")
    shared = os.path.join(ROOT, "..", "shared", "data", "lung-ct")
    if os.path.isdir(shared):
        images, masks = os.path.join(shared, "images"), os.path.join(shared, "masks")
    else:
        images, masks = os.path.join(ROOT, "samples", "ct"), os.path.join(ROOT, "samples", "masks")
    truth = os.path.join(masks, "{stem}.png")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        print("slices: %s" % os.path.relpath(images, ROOT))
        for name, config in (("lung_mask (samples/lung_ct.ini)", "samples/lung_ct.ini"),
                             ("OpenCV recipe (bench/opencv_recipe.ini)", "bench/opencv_recipe.ini")):
            out = os.path.join(tmp, os.path.basename(config))
            run([kmseg, "run", os.path.join(ROOT, config), "-q", "-i", images, "-o", out,
                 "-s", "evaluate.truth=" + truth])
            scored = sorted(dice_of(os.path.join(out, "summary.csv")))
            mean = sum(d for d, _ in scored) / len(scored)
            print("%-42s Dice mean %.4f  min %.4f  over %d slices; worst: %s" % (
                name, mean, scored[0][0], len(scored),
                ", ".join("%s %.4f" % (n, d) for d, n in scored[:3])))
            rows.append((name, config, mean, scored[0][0], len(scored)))
    for name, config, mean, low, n in rows:
        print("README| | `bench/bench_lung.py` | Dice against manual masks, %s, %d slices "
              "| mean %.4f, min %.4f |" % (name, n, mean, low))


if __name__ == "__main__":
    main()
