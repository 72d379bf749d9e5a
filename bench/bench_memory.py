#!/usr/bin/python3
"""Peak memory of one input against its voxel count, for the README's bound.

Upsamples the sample CT volume (samples/volume/ct.nii.gz) by repeating
voxels to a few sizes, runs the lung volume pipeline on each in its own
process (-j 1, no evaluate: the truth has the original size) and prints the
peak RSS and the bytes per voxel above the process's baseline (the peak of
the original, small volume).

Usage: bench/bench_memory.py [KMSEG]
"""
import gzip
import os
import struct
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_lib import readme_row, readme_value, run_child  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = "read, window, denoise, reshape, kmeans, lung_mask, write"


def peak_rss_mib(kmseg, path, out):
    """Peak RSS of one kmseg run, in its own child so the figure is its own."""
    return run_child([kmseg, "run", os.path.join(ROOT, "samples/lung_volume.ini"),
                      "-q", "-j", "1", "--no-timings", "-i", path, "-o", out,
                      "-s", "pipeline.stages=" + STAGES])[2]


def upsampled(src, tmp, f, fz):
    raw = gzip.open(src).read()
    hdr = bytearray(raw[:352])
    dims = struct.unpack("<8h", hdr[40:56])
    off = int(struct.unpack("<f", hdr[108:112])[0])
    pix = struct.unpack("<8f", hdr[76:108])
    a = np.frombuffer(raw[off:], dtype=np.int16)[:dims[1] * dims[2] * dims[3]]
    a = a.reshape(dims[3], dims[2], dims[1])
    b = np.repeat(np.repeat(np.repeat(a, fz, 0), f, 1), f, 2)
    struct.pack_into("<3h", hdr, 42, b.shape[2], b.shape[1], b.shape[0])
    struct.pack_into("<3f", hdr, 80, pix[1] / f, pix[2] / f, pix[3] / fz)
    srow = list(struct.unpack("<12f", hdr[280:328]))
    for r in range(3):
        srow[4 * r] /= f
        srow[4 * r + 1] /= f
        srow[4 * r + 2] /= fz
    struct.pack_into("<12f", hdr, 280, *srow)
    path = os.path.join(tmp, "ct_%dx%d.nii" % (f, fz))
    with open(path, "wb") as out:
        out.write(bytes(hdr) + b"\0" * (off - 352) + b.tobytes())
    return path, b.size, b.shape


def main():
    kmseg = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build/kmseg")
    src = os.path.join(ROOT, "samples/volume/ct.nii.gz")
    with tempfile.TemporaryDirectory() as tmp:
        base = peak_rss_mib(kmseg, src, os.path.join(tmp, "o0"))
        print("baseline (30 x 101 x 122 voxels): peak RSS %.0f MiB" % base)
        worst, cells = 0, []
        for f, fz in ((2, 2), (4, 2), (4, 4)):
            path, n, shape = upsampled(src, tmp, f, fz)
            mib = peak_rss_mib(kmseg, path, os.path.join(tmp, "o%d%d" % (f, fz)))
            per = (mib - base) * 1048576 / n
            worst = max(worst, per)
            print("%d x %d x %d = %d voxels: peak RSS %.0f MiB, %.1f bytes a voxel above the baseline"
                  % (shape[0], shape[1], shape[2], n, mib, per))
            cells.append("%.0f MiB for %.1f M voxels (%.1f bytes a voxel)" % (mib, n / 1e6, per))
            os.unlink(path)
        limit = 1 << 28
        most = (base * 1048576 + worst * limit) / 2 ** 30
        print("at the default --max-pixels (%d voxels): at most %.1f GiB for one input"
              % (limit, most))
    readme_row("bench/bench_memory.py [KMSEG]",
               "peak RSS of one input of the lung volume pipeline against its voxel count (the "
               "sample volume repeated to 3–24 M voxels, one process each; memory, not time: one "
               "run each)",
               "%.0f MiB baseline; %s; at most %.1f GiB at the default `--max-pixels`"
               % (base, "; ".join(cells), most))
    readme_value("memory_baseline", "%.0f" % base)
    readme_value("memory_max_gib", "%.1f" % most)


if __name__ == "__main__":
    main()
