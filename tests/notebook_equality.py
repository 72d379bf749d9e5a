#!/usr/bin/python3
"""The notebook in Python's cv2 against `kmseg run samples/notebook.ini`.

Runs the original notebook's steps (imread colour -> grey -> resize 128x128
-> float32 / 255 -> cv2.kmeans K=2 with cv2.setRNGSeed(seed) right before ->
center[label]) on every input and compares kmseg's products pixel for pixel:
the float32 recolour (exact centre values), the 8-bit recolour and the
canonical labels. Prints one PASS/FAIL line per input and product; exits 1 on
any failure.

Usage: notebook_equality.py KMSEG CONFIG OUTDIR [SEED]
"""
import glob
import os
import subprocess
import sys

import cv2
import numpy as np


def notebook(path, seed):
    img = cv2.imread(path)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    gray = cv2.resize(gray, (128, 128))
    data = np.float32(gray).reshape(-1, 1) / 255
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    cv2.setRNGSeed(seed)
    _, label, center = cv2.kmeans(data, 2, None, criteria, 10,
                                  cv2.KMEANS_PP_CENTERS)
    res = center[label.flatten()].reshape(gray.shape)
    # kmseg's canonical labels: 0 is the darkest centre (stable on ties)
    order = np.argsort(center[:, 0], kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    labels = rank[label.flatten()].reshape(gray.shape).astype(np.uint8)
    # the 8-bit recolour: centre * 255 / 1 in double, rounded half to even
    res8 = np.clip(np.rint(res.astype(np.float64) * 255.0 / 1.0), 0, 255)
    return res, res8.astype(np.uint8), labels


def main():
    kmseg, config, outdir = sys.argv[1:4]
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 42
    inputs = sorted(glob.glob(os.path.join(os.path.dirname(config), "png", "*.png")))
    run = subprocess.run([kmseg, "run", config, "-q", "-o", outdir,
                          "-s", "pipeline.seed=%d" % seed],
                         capture_output=True, text=True)
    if run.returncode != 0:
        print("FAIL kmseg run: exit %d: %s" % (run.returncode, run.stderr.strip()))
        return 1
    failed = 0
    for path in inputs:
        stem = os.path.splitext(os.path.basename(path))[0]
        res, res8, labels = notebook(path, seed)
        checks = [
            ("recolor_raw", res, cv2.imread(os.path.join(outdir, stem + "_recolor.tif"),
                                            cv2.IMREAD_UNCHANGED)),
            ("recolor", res8, cv2.imread(os.path.join(outdir, stem + "_recolor.png"),
                                         cv2.IMREAD_UNCHANGED)),
            ("labels", labels, cv2.imread(os.path.join(outdir, stem + "_labels.png"),
                                          cv2.IMREAD_UNCHANGED)),
        ]
        for name, want, got in checks:
            if got is None:
                print("FAIL %s %s: product missing" % (stem, name))
                failed += 1
            elif got.dtype != want.dtype or got.shape != want.shape:
                print("FAIL %s %s: %s%s, want %s%s" % (stem, name, got.dtype, got.shape,
                                                     want.dtype, want.shape))
                failed += 1
            elif got.tobytes() != want.tobytes():
                diff = int(np.count_nonzero(got != want))
                print("FAIL %s %s: %d pixels differ" % (stem, name, diff))
                failed += 1
            else:
                print("PASS %s %s (seed %d)" % (stem, name, seed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
