#!/usr/bin/python3
"""Lung masks: accuracy against manual masks and speed, measured in one run.

Accuracy: samples/lung_ct.ini's pipeline (lung_mask) and, for comparison, the
usual OpenCV k-means recipe (bench/opencv_recipe.ini) on the same slices with
their manual masks: Dice mean and minimum, the worst slices.
Speed: the lung pipeline with the mask as its only product, 200 slices, one
thread (-j 1): slices per second, read TIFF to mask PNG written.

Slices: ../shared/data/lung-ct (24 with masks) when present, else samples/.
Usage: bench/bench_lung.py [KMSEG]
"""
import csv
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

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
        many = os.path.join(tmp, "many")
        os.makedirs(many)
        sources = sorted(glob.glob(os.path.join(images, "*.tif")))
        for i in range(200):
            shutil.copy(sources[i % len(sources)], os.path.join(many, "s%03d.tif" % i))
        args = [kmseg, "run", os.path.join(ROOT, "samples/lung_ct.ini"), "-q", "-j", "1",
                "-i", many, "-o", os.path.join(tmp, "speed"),
                "-s", "pipeline.stages=read, window, denoise, reshape, kmeans, lung_mask, write",
                "-s", "write.products=mask"]
        run(args[:-4] + ["-o", os.path.join(tmp, "warm")] + args[-4:])  # file cache
        t0 = time.perf_counter()
        run(args)
        seconds = time.perf_counter() - t0
        print("speed: %.1f slices/s on one thread (200 slices, read TIFF to mask PNG "
              "written, in %.2f s; target >= 200)" % (200 / seconds, seconds))


if __name__ == "__main__":
    main()
