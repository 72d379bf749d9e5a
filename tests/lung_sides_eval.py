#!/usr/bin/python3
"""Right/left lung accuracy of {stem}_lungs.png (0, 1 = patient's right,
2 = left) against manual masks split by side.

The truth's sides: each 8-connected component of the manual mask goes to the
side of the body's mid-line its centroid lies on (the body: the largest
region above -500 HU; its mid-line: the middle of its extent in x), slices
being in radiological display (patient's right on the image's left). A truth
component with 15 % or more of its pixels on each side (lungs touching in
the manual mask) is split at its neck by OpenCV's watershed: markers are the
two largest cores (at the first level of its distance transform where two
parts of 10 % or more lie on either side of the mid-line), the relief is the
distance to the background; when it never comes apart so, the mid-line cuts
it.
Usage: lung_sides_eval.py IMAGES MASKS LUNGS_DIR MIN_MEAN MIN_SLICE
Prints one line per slice and the means. Besides each side's Dice (which
the mask's own error bounds: ID_0088 and ID_0110 lose 0.02 on the left lung
to the mediastinal border, not to the split) it prints the split's
agreement: the share of pixels in both the truth and the mask whose sides
agree. Exit 1 when a side's mean Dice is below MIN_MEAN, a slice's side
Dice below MIN_SLICE, an agreement below 0.995, a lungs file is missing, or
lungs are nonzero where the mask is not.
"""
import glob
import os
import sys

import cv2
import numpy as np


def body_midline(ct):
    body = (ct > -500).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(body, connectivity=8)
    if n < 2:
        return ct.shape[1] / 2
    big = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x0, w = stats[big, cv2.CC_STAT_LEFT], stats[big, cv2.CC_STAT_WIDTH]
    return x0 + (w - 1) / 2


def watershed_split(m, xmid):
    dist = cv2.distanceTransform(m.astype(np.uint8), cv2.DIST_L2, 5)
    for t in np.arange(1, dist.max(), 1.0):
        n, lab, stats, cents = cv2.connectedComponentsWithStats(
            (dist > t).astype(np.uint8), connectivity=8)
        if n < 3:
            continue
        order = 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])
        a, b = order[0], order[1]
        total = stats[1:, cv2.CC_STAT_AREA].sum()
        if stats[b, cv2.CC_STAT_AREA] < 0.1 * total:
            continue
        sa, sb = (1 if cents[a][0] < xmid else 2), (1 if cents[b][0] < xmid else 2)
        if sa == sb:
            continue
        markers = np.zeros(m.shape, np.int32)
        markers[~m] = 3
        markers[lab == a] = sa
        markers[lab == b] = sb
        relief = (255 - np.clip(dist / dist.max() * 255, 0, 255)).astype(np.uint8)
        cv2.watershed(cv2.cvtColor(relief, cv2.COLOR_GRAY2BGR), markers)
        out = np.where((markers == 1) | (markers == 2), markers, 0).astype(np.uint8)
        # watershed lines (-1) inside the mask: the side of the nearer x
        line = m & (markers == -1)
        out[line] = 0
        ys, xs = np.nonzero(line)
        for y, x in zip(ys, xs):
            win = out[max(0, y - 1):y + 2, max(0, x - 1):x + 2]
            vals = win[win > 0]
            out[y, x] = np.bincount(vals).argmax() if len(vals) else (1 if x < xmid else 2)
        return out
    return None


def truth_sides(truth, xmid):
    out = np.zeros(truth.shape, np.uint8)
    n, lab = cv2.connectedComponents((truth > 0).astype(np.uint8), connectivity=8)
    xs = np.arange(truth.shape[1])[None, :].repeat(truth.shape[0], 0)
    for i in range(1, n):
        m = lab == i
        left = np.count_nonzero(m & (xs < xmid))
        share = min(left, m.sum() - left) / m.sum()
        if share >= 0.15:
            split = watershed_split(m, xmid)
            if split is None:
                out[m & (xs < xmid)] = 1
                out[m & (xs >= xmid)] = 2
            else:
                out[m] = split[m]
        else:
            out[m] = 1 if xs[m].mean() < xmid else 2
    return out


def dice(a, b):
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else 2.0 * np.count_nonzero(a & b) / s


def main():
    images, masks, lungs_dir = sys.argv[1:4]
    min_mean, min_dice = float(sys.argv[4]), float(sys.argv[5])
    bad = 0
    rows = []
    for path in sorted(glob.glob(os.path.join(images, "*.tif"))):
        stem = os.path.splitext(os.path.basename(path))[0]
        ct = cv2.imread(path, cv2.IMREAD_UNCHANGED).astype(np.int32)
        truth = cv2.imread(os.path.join(masks, stem + ".png"), cv2.IMREAD_GRAYSCALE)
        got_path = os.path.join(lungs_dir, stem + "_lungs.png")
        got = cv2.imread(got_path, cv2.IMREAD_UNCHANGED)
        if got is None:
            print("FAIL %s: no %s" % (stem, got_path))
            bad += 1
            continue
        mask_path = os.path.join(lungs_dir, stem + "_mask.png")
        mask = cv2.imread(mask_path, cv2.IMREAD_GRAYSCALE)
        if mask is not None and not np.array_equal(mask > 0, got > 0):
            print("FAIL %s: lungs are not exactly where the mask is" % stem)
            bad += 1
        t = truth_sides(truth, body_midline(ct))
        dr, dl = dice(t == 1, got == 1), dice(t == 2, got == 2)
        both = (t > 0) & (got > 0)
        agree = np.count_nonzero(both & (t == got)) / max(np.count_nonzero(both), 1)
        rows.append((dr, dl, agree))
        flag = "" if min(dr, dl) >= min_dice and agree >= 0.995 else "  FAIL"
        bad += bool(flag)
        print("%-16s right %.4f  left %.4f  split agreement %.4f%s" % (stem, dr, dl, agree, flag))
    if rows:
        r = np.array(rows)
        print("sides over %d slices: right Dice mean %.4f min %.4f, left mean %.4f min %.4f; "
              "split agreement min %.4f"
              % (len(rows), r[:, 0].mean(), r[:, 0].min(), r[:, 1].mean(), r[:, 1].min(),
                 r[:, 2].min()))
        if r[:, 0].mean() < min_mean or r[:, 1].mean() < min_mean:
            print("FAIL: a side's mean Dice is below %.3f" % min_mean)
            bad += 1
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
