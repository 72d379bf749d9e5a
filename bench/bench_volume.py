#!/usr/bin/python3
"""Lung masks of a CT volume: the 3-D path against the 2-D slice path.

Builds a 512 x 512 x 300 int16 volume from the 24 development slices
(../shared/data/lung-ct/images/*.tif, else samples/ct; repeated in order to 300 slices;
0.7 mm pixels, 1 mm slices, stored as most scanners' NIfTI are: RAS, so the
reader flips x and y) in a temporary folder, and the same 300 slices as
uncompressed TIFF files. Then, interleaved, REPS times each:

  3-D: kmseg run -j 1 -i ct.nii[.gz], stages = read, lung_mask, write,
       write.products = PRODUCT (lungs when kmseg has it, else mask)
  2-D: kmseg run -j 1 -i the 300 TIFFs, the same stages and product

after one warm-up run of each, alternating which goes first, each in
its own child, timed from the start to the exit (file read to the
products written) with its peak RSS from os.wait4. Prints the median and
min-max of slices/s for both, their ratio, the 3-D peak in MiB and as a
multiple of the int16 voxel data.

Usage: bench/bench_volume.py [KMSEG] [--reps N] [--gz] [--slices N]
"""
import argparse
import glob
import gzip
import os
import statistics
import struct
import subprocess
import sys
import tempfile

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_lib import interleaved, machine_line, ratios, readme_row, readme_value, run_child, spread  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = "read, lung_mask, write"


def nifti_header(shape, mm):
    """A NIfTI-1 header (352 bytes with the extender) for int16 voxels of
    shape (nz, ny, nx) in RAS with the given (x, y, z) spacing."""
    nz, ny, nx = shape
    h = bytearray(352)
    struct.pack_into("<i", h, 0, 348)
    struct.pack_into("<8h", h, 40, 3, nx, ny, nz, 1, 1, 1, 1)
    struct.pack_into("<hh", h, 70, 4, 16)                 # int16
    struct.pack_into("<8f", h, 76, 1, mm[0], mm[1], mm[2], 0, 0, 0, 0)
    struct.pack_into("<f", h, 108, 352.0)                 # vox_offset
    struct.pack_into("<ff", h, 112, 1.0, 0.0)             # scl_slope, inter
    h[123] = 10                                           # mm, s
    struct.pack_into("<hh", h, 252, 1, 1)                 # qform, sform
    struct.pack_into("<4f", h, 256, 0, 0, 0, 1)           # quatern b, c, d: identity
    struct.pack_into("<3f", h, 268, 0, 0, 0)
    struct.pack_into("<4f", h, 280, mm[0], 0, 0, -nx * mm[0] / 2)
    struct.pack_into("<4f", h, 296, 0, mm[1], 0, -ny * mm[1] / 2)
    struct.pack_into("<4f", h, 312, 0, 0, mm[2], 0)
    h[344:348] = b"n+1\0"
    return bytes(h)


def build(tmp, n, gz):
    files = sorted(glob.glob(os.path.join(ROOT, "..", "shared", "data", "lung-ct", "images",
                                          "*.tif"))) or \
        sorted(glob.glob(os.path.join(ROOT, "samples", "ct", "*.tif")))
    if not files:
        sys.exit("bench_volume: no CT slices found")
    imgs = [cv2.imread(f, cv2.IMREAD_UNCHANGED) for f in files]
    tifs = os.path.join(tmp, "tif")
    os.makedirs(tifs)
    vol = np.empty((n, 512, 512), np.int16)
    for z in range(n):
        a = imgs[z % len(imgs)]
        assert a.dtype == np.int16 and a.shape == (512, 512)
        cv2.imwrite(os.path.join(tifs, "s%03d.tif" % z), a,
                    [cv2.IMWRITE_TIFF_COMPRESSION, 1])
        # canonical rows are anterior -> posterior, columns right -> left;
        # RAS storage runs the other way along both
        vol[z] = a[::-1, ::-1]
    name = "ct.nii.gz" if gz else "ct.nii"
    path = os.path.join(tmp, name)
    data = nifti_header(vol.shape, (0.7, 0.7, 1.0)) + vol.tobytes()
    if gz:
        with gzip.open(path, "wb", compresslevel=1) as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)
    return path, tifs, vol.nbytes


def run(kmseg, inp, out, product):
    """Seconds (wall, and user + system CPU) and peak RSS (MiB) of one kmseg
    run in its own child. CPU time is what the run costs on a busy machine,
    where the wall time also counts the other processes' turns."""
    return run_child([kmseg, "run", os.path.join(ROOT, "samples/lung_volume.ini"), "-q",
                      "-j", "1", "--no-timings", "-i", inp, "-o", out,
                      "-s", "pipeline.stages=" + STAGES, "-s", "write.products=" + product])


def has_lungs_product(kmseg):
    out = subprocess.run([kmseg, "stages"], capture_output=True, text=True).stdout
    return any("lungs" in line for line in out.splitlines() if "products" in line
               or "lungs:" in line)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kmseg", nargs="?", default=os.path.join(ROOT, "build/kmseg"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--gz", action="store_true", help="a .nii.gz input")
    ap.add_argument("--no-2d", action="store_true", help="the 3-D path only")
    a = ap.parse_args()
    kmseg = os.path.abspath(a.kmseg)
    product = "lungs" if has_lungs_product(kmseg) else "mask"
    with tempfile.TemporaryDirectory() as tmp:
        nii, tifs, nbytes = build(tmp, a.slices, a.gz)
        mib16 = nbytes / 2 ** 20
        runs = [0]

        def one(inp):
            runs[0] += 1
            out = os.path.join(tmp, "o%d" % runs[0])
            dt, cpu, peak = run(kmseg, inp, out, product)
            # kept to the end: see bench_pipeline.py (ext4's recently_deleted)
            return a.slices / dt, a.slices / cpu, peak

        sides = {"3d": lambda: one(nii)}
        if not a.no_2d:
            sides["2d"] = lambda: one(tifs)
        got = interleaved(a.reps, sides)
        v_rate, v_cpu, v_peak = ([r[i] for r in got["3d"]] for i in range(3))
        s_rate, s_cpu = ([r[i] for r in got.get("2d", [])] for i in range(2))
        print("volume: 512 x 512 x %d int16 (%.0f MiB), %s, products = %s, -j 1, %d runs"
              % (a.slices, mib16, os.path.basename(nii), product, a.reps))
        print(machine_line() + " after measuring")
        print("3-D path: %s slices/s wall, %s slices/s of CPU time (median [min-max])"
              % (spread(v_rate), spread(v_cpu)))
        print("3-D path: peak RSS %s MiB = %.2f x the int16 voxels (target <= 3)"
              % (spread(v_peak), statistics.median(v_peak) / mib16))
        if not s_rate:
            return
        wall, cpu = ratios(v_rate, s_rate), ratios(v_cpu, s_cpu)
        print("2-D path (%d TIFF slices): %s slices/s wall, %s slices/s of CPU time"
              % (a.slices, spread(s_rate), spread(s_cpu)))
        print("ratio 3-D / 2-D, per rep: %s wall, %s CPU" % (spread(wall, "%.2f"), spread(cpu, "%.2f")))
        readme_row("bench/bench_volume.py [KMSEG] [--reps N] [--gz]",
                   "the lung volume path in 3-D against the 2-D slice path on the same data: a "
                   "512×512×%d int16 volume built from the development slices (`%s`), "
                   "`stages = read, lung_mask, write`, `products = %s`, `-j 1`, file read to the "
                   "product written, each run its own process (peak RSS from `wait4`); the 2-D "
                   "path on the same slices as TIFFs; %d interleaved reps"
                   % (a.slices, os.path.basename(nii), product, a.reps),
                   "3-D %s slices/s; peak %s MiB = %.2f× the %.0f MiB of voxels; 2-D %s slices/s; "
                   "3-D / 2-D per rep %s"
                   % (spread(v_rate), spread(v_peak, "%.0f"), statistics.median(v_peak) / mib16,
                      mib16, spread(s_rate), spread(wall, "%.2f")))
        readme_value("volume_rate", "%.0f" % statistics.median(v_rate))
        readme_value("volume_peak_x", "%.2f" % (statistics.median(v_peak) / mib16))

if __name__ == "__main__":
    main()
