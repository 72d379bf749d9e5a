#!/usr/bin/python3
"""Lung masks: accuracy against manual masks.

Accuracy: samples/lung_ct.ini's pipeline (lung_mask) and, for comparison, the
usual OpenCV k-means recipe (bench/opencv_recipe.ini) on the same slices with
their manual masks: Dice mean and minimum, the worst slices. The right and
left lungs ({stem}_lungs.png) against the manual masks split by side
(tests/lung_sides_eval.py), and the sample volume (samples/lung_volume.ini)
against its sided TotalSegmentator reference (samples/volume/lungs.nii.gz):
whole, right and left Dice.
Speed moved to bench/bench_pipeline.py (whole runs side by side, interleaved
reps with their spread: slices per second, the overlay's cost, the I/O
floor); a single timed run here said little on a shared machine.

Slices: ../shared/data/lung-ct (24 with masks) when present, else samples/.
Usage: bench/bench_lung.py [KMSEG]
"""
import csv
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_lib import readme_row, readme_value  # noqa: E402

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
        sides = sides_of(kmseg, images, masks, os.path.join(tmp, "sides"))
        vol = volume_of(kmseg, os.path.join(tmp, "volume"))
    for name, config, mean, low, n in rows:
        readme_row("bench/bench_lung.py", "Dice against manual masks, %s, %d slices" % (name, n),
                   "mean %.4f, min %.4f" % (mean, low))
    (_, _, mean, low, _), (_, _, rmean, rlow, _) = rows
    for key, v in (("dice_mean", mean), ("dice_min", low), ("recipe_mean", rmean),
                   ("recipe_min", rlow)):
        readme_value(key, "%.4f" % v)
    readme_row("bench/bench_lung.py", "right and left lungs against the manual masks split by "
               "side (%d slices)" % sides["n"],
               "right mean %.4f, min %.4f; left mean %.4f, min %.4f (%s); split agreement min %.4f"
               % (sides["right_mean"], sides["right_min"], sides["left_mean"], sides["left_min"],
                  sides["left_worst"], sides["agree"]))
    for key in ("right_mean", "right_min", "left_mean", "left_min"):
        readme_value(key, "%.4f" % sides[key])
    readme_value("left_worst", sides["left_worst"])
    readme_value("sides_agree", "%.2f" % (100 * sides["agree"]))
    readme_row("bench/bench_lung.py", "the sample volume (`samples/lung_volume.ini`) against its "
               "sided TotalSegmentator reference", "Dice %.4f whole, %.4f right, %.4f left"
               % (vol["dice"], vol["dice_right"], vol["dice_left"]))
    readme_value("vol_whole", "%.4f" % vol["dice"])
    readme_value("vol_right", "%.4f" % vol["dice_right"])
    readme_value("vol_left", "%.4f" % vol["dice_left"])


def sides_of(kmseg, images, masks, out):
    """Right/left Dice per slice by tests/lung_sides_eval.py (its thresholds
    at 0: here it measures, the tests judge)."""
    run([kmseg, "run", os.path.join(ROOT, "samples/lung_ct.ini"), "-q", "-i", images, "-o", out,
         "-s", "pipeline.stages=read, lung_mask, write", "-s", "write.products=lungs"])
    text = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "lung_sides_eval.py"),
                           images, masks, out, "0", "0"], capture_output=True, text=True).stdout
    per = re.findall(r"^(\S+)\s+right ([0-9.]+)\s+left ([0-9.]+)\s+split agreement ([0-9.]+)",
                     text, re.M)
    if not per:
        sys.exit("bench_lung: lung_sides_eval.py printed no slice:\n" + text)
    right = [float(r) for _, r, _, _ in per]
    left = [(float(lf), stem) for stem, _, lf, _ in per]
    print(text, end="")
    return {"n": len(per), "right_mean": sum(right) / len(right), "right_min": min(right),
            "left_mean": sum(v for v, _ in left) / len(left), "left_min": min(left)[0],
            "left_worst": min(left)[1], "agree": min(float(a) for *_, a in per)}


def volume_of(kmseg, out):
    run([kmseg, "run", os.path.join(ROOT, "samples/lung_volume.ini"), "-q", "-o", out,
         "-s", "evaluate.truth=" + os.path.join(ROOT, "samples/volume/lungs.nii.gz"),
         "-s", "write.products=lungs"])
    row = next(csv.DictReader(open(os.path.join(out, "summary.csv"))))
    got = {k: float(row[k]) for k in ("dice", "dice_right", "dice_left")}
    print("volume %s: Dice %.4f whole, %.4f right, %.4f left"
          % (row["input"], got["dice"], got["dice_right"], got["dice_left"]))
    return got

if __name__ == "__main__":
    main()
