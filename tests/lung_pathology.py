#!/usr/bin/python3
"""Synthetic pathology in real slices: lung_mask must take dense lung inside
the lung's outline into the mask and leave dense tissue outside it out.

For each slice with a manual mask (IMAGES/*.tif, MASKS/{stem}.png; signed
16-bit HU, radiological display), writes to OUT, as int16 TIFF:
  {stem}_cons: consolidation (a uniform level in 0..60 HU, pixel noise 15 HU)
      against the lateral chest wall of the right lung and at the back
      (dependent) of the left one;
  {stem}_ggo:  ground glass (a level in -700..-300 HU, noise 15 HU) against
      the lateral wall of the left lung and at the back of the right one;
  {stem}_eff:  negative control: an effusion (0..20 HU) as an even band
      along the posterior chest wall over the back of both lungs, and a
      dense patch (40 HU) in the mediastinum beside the left lung.
Patches are half disks (radius 18 px, ~13 mm) on the lung's border, cut to
the manual mask. Then runs KMSEG on them (samples/lung_ct.ini) and checks:
  cons, ggo: Dice against the untouched truth >= 0.98; every patch pixel
      at least 2 px inside the truth's border is in the mask (but 0.5 % of
      the patch). The 2-px rim is left out of the assertion: the manual
      border lies a pixel or two off the method's on clean slices already,
      and ground glass near -300 HU moves it by a pixel; its share in the
      mask is printed (93 .. 100 % on the 24 slices);
  eff: at most 10 % of the band in the mask (the truth there: minus the
      band), at most 1 % of the mediastinal patch (placed 3 px or more
      from the truth).
Usage: lung_pathology.py KMSEG CONFIG IMAGES MASKS OUT [KEY=VALUE ...]
(KEY=VALUE: more -s settings, to measure alternatives)
"""
import glob
import os
import subprocess
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lung_sides_eval import body_midline, truth_sides  # noqa: E402

R = 18


def border_points(side):
    """Lateral point at the centroid's row and posterior point at the
    centroid's column of one lung (bool image), canonical view."""
    ys, xs = np.nonzero(side)
    cy, cx = int(ys.mean()), int(xs.mean())
    return ys, xs, cy, cx


def half_disk(lung, cy, cx):
    yy, xx = np.mgrid[0:lung.shape[0], 0:lung.shape[1]]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= R * R) & lung


def lateral_patch(lung, right):
    ys, xs, cy, cx = border_points(lung)
    row = np.nonzero(lung[cy])[0]
    x = row.min() if right else row.max()
    return half_disk(lung, cy, x)


def posterior_patch(lung):
    ys, xs, cy, cx = border_points(lung)
    col = np.nonzero(lung[:, cx])[0]
    return half_disk(lung, col.max(), cx)


def paint(ct, patch, lo, hi, rng):
    level = rng.uniform(lo, hi)
    ct[patch] = np.clip(level + rng.normal(0, 15, patch.sum()), -1024, 3000)


def band(lung, depth=12):
    """The back `depth` px of each column of the lung."""
    out = np.zeros_like(lung)
    for x in np.nonzero(lung.any(0))[0]:
        col = np.nonzero(lung[:, x])[0]
        out[max(col.max() - depth + 1, 0):col.max() + 1, x] = True
    return out & lung


def dice(a, b):
    return 2.0 * np.count_nonzero(a & b) / max(a.sum() + b.sum(), 1)


def main():
    kmseg, config, images, masks, out = sys.argv[1:6]
    rng = np.random.default_rng(7)
    cases = {}
    work = os.path.join(out, "in")
    os.makedirs(work, exist_ok=True)
    for path in sorted(glob.glob(os.path.join(images, "*.tif"))):
        stem = os.path.splitext(os.path.basename(path))[0]
        ct0 = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        truth = cv2.imread(os.path.join(masks, stem + ".png"), cv2.IMREAD_GRAYSCALE) > 0
        sides = truth_sides(truth.astype(np.uint8), body_midline(ct0.astype(np.int32)))
        right, left = sides == 1, sides == 2
        if not right.any() or not left.any():
            continue
        inner = cv2.erode(truth.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        # consolidation
        ct = ct0.copy()
        p1, p2 = lateral_patch(right, True), posterior_patch(left)
        paint(ct, p1, 0, 60, rng)
        paint(ct, p2, 0, 60, rng)
        cases[stem + "_cons"] = ("in", ct, truth, p1 | p2, inner)
        # ground glass
        ct = ct0.copy()
        p1, p2 = lateral_patch(left, False), posterior_patch(right)
        paint(ct, p1, -700, -300, rng)
        paint(ct, p2, -700, -300, rng)
        cases[stem + "_ggo"] = ("in", ct, truth, p1 | p2, inner)
        # effusion band and a mediastinal patch (negative controls)
        ct = ct0.copy()
        eff = band(truth)
        paint(ct, eff, 0, 20, rng)
        ys, xs = np.nonzero(left)
        cy = int(ys.mean())
        x = np.nonzero(left[cy])[0].min()  # the left lung's medial edge
        yy, xx = np.mgrid[0:ct.shape[0], 0:ct.shape[1]]
        near = cv2.dilate(truth.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        med = ((yy - cy) ** 2 + (xx - (x - R - 3)) ** 2 <= R * R) & ~near & (ct0 > -200)
        ct[med] = 40
        cases[stem + "_eff"] = ("out", ct, truth & ~eff, (eff, med), None)
        cases[stem + "_clean"] = ("clean", ct0.copy(), truth, None, None)
    for name, (_, ct, *_rest) in cases.items():
        cv2.imwrite(os.path.join(work, name + ".tif"), ct.astype(np.int16))
    res = os.path.join(out, "out")
    subprocess.run([kmseg, "run", config, "-q", "-i", work, "-o", res,
                    "-s", "pipeline.stages=read, window, denoise, reshape, kmeans, lung_mask, write",
                    "-s", "write.products=mask"]
                   + [a for kv in sys.argv[6:] for a in ("-s", kv)], check=True)
    bad = 0
    dices = []
    for name, (kind, ct, ref, patch, inner) in sorted(cases.items()):
        if kind == "clean":
            continue
        mask = cv2.imread(os.path.join(res, name + "_mask.png"), cv2.IMREAD_GRAYSCALE) > 0
        clean = cv2.imread(os.path.join(res, name.rsplit("_", 1)[0] + "_clean_mask.png"),
                           cv2.IMREAD_GRAYSCALE) > 0
        d = dice(mask, ref)
        if kind == "in":
            dices.append(d)
            deep = patch & inner
            missed_deep = np.count_nonzero(deep & ~mask)
            share = np.count_nonzero(patch & mask) / max(patch.sum(), 1)
            kept = np.count_nonzero(patch & clean & mask) / max(np.count_nonzero(patch & clean), 1)
            ok = d >= 0.98 and missed_deep <= 0.005 * patch.sum()
            print("%s %-22s Dice %.4f  patch in mask %.1f %% (%d px; of what the clean slice's "
                  "mask has: %.1f %%), deep pixels missed %d"
                  % ("ok  " if ok else "FAIL", name, d, 100 * share, patch.sum(), 100 * kept,
                     missed_deep))
        else:
            eff, med = patch
            e_in = np.count_nonzero(eff & mask) / max(eff.sum(), 1)
            m_in = np.count_nonzero(med & mask)
            ok = e_in <= 0.10 and m_in <= 0.01 * med.sum()
            print("%s %-22s Dice %.4f (truth minus band)  band in mask %.1f %%, "
                  "mediastinal patch in mask %d px" % ("ok  " if ok else "FAIL", name, d,
                                                      100 * e_in, m_in))
        bad += not ok
    if dices:
        print("pathology: Dice mean %.4f min %.4f over %d painted slices"
              % (np.mean(dices), np.min(dices), len(dices)))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
