#!/usr/bin/python3
"""Batch throughput and memory, measured in one run.

Throughput of `kmseg run` at -j 1 and -j 2 on the same 1000 inputs and
their ratio (enough work that the ~65 ms of process start-up, mostly loading
OpenCV, does not decide the ratio); peak RSS for 20 and for 200 inputs and
their ratio. Inputs are copies
of the lung slices (../shared/data/lung-ct when present, else samples/ct)
under distinct names, so every run does the full work.

Usage: bench/bench_batch.py [KMSEG] [CONFIG]
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(kmseg, config, inputs_dir, out, jobs):
    """Wall time and peak RSS (KiB) of one kmseg run."""
    args = [kmseg, "run", config, "-q", "-i", inputs_dir, "-o", out, "-j", str(jobs)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(args)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit("kmseg exited %d" % code)
    return seconds, usage.ru_maxrss


def make_inputs(folder, sources, n):
    os.makedirs(folder)
    ext = os.path.splitext(sources[0])[1]
    for i in range(n):
        shutil.copy(sources[i % len(sources)], os.path.join(folder, "s%04d%s" % (i, ext)))


def main():
    kmseg = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build/kmseg")
    config = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "samples/lung_ct.ini")
    shared = os.path.join(ROOT, "..", "shared", "data", "lung-ct", "images")
    sources = sorted(glob.glob(os.path.join(shared, "*.tif"))) or \
        sorted(glob.glob(os.path.join(ROOT, "samples", "ct", "*.tif")))
    with tempfile.TemporaryDirectory() as tmp:
        lots = os.path.join(tmp, "in1000")
        many = os.path.join(tmp, "in200")
        few = os.path.join(tmp, "in20")
        make_inputs(lots, sources, 1000)
        make_inputs(many, sources, 200)
        make_inputs(few, sources, 20)
        run(kmseg, config, lots, os.path.join(tmp, "warm"), 2)  # warm the file cache
        t1, _ = run(kmseg, config, lots, os.path.join(tmp, "o1"), 1)
        t2, _ = run(kmseg, config, lots, os.path.join(tmp, "o2"), 2)
        _, rss20 = run(kmseg, config, few, os.path.join(tmp, "r20"), 2)
        _, rss200 = run(kmseg, config, many, os.path.join(tmp, "r200"), 2)
    print("config: %s; %d source slices" % (os.path.relpath(config, ROOT), len(sources)))
    print("throughput -j 1: %7.1f slices/s (1000 slices in %.2f s)" % (1000 / t1, t1))
    print("throughput -j 2: %7.1f slices/s (1000 slices in %.2f s)" % (1000 / t2, t2))
    print("scaling -j 2 / -j 1: %.2fx (target >= 1.8x on 2 cores)" % (t1 / t2))
    print("peak RSS  20 inputs: %6.1f MiB" % (rss20 / 1024))
    print("peak RSS 200 inputs: %6.1f MiB" % (rss200 / 1024))
    print("RSS 200 / 20: %.3f (target within 10%%)" % (rss200 / rss20))


if __name__ == "__main__":
    main()
