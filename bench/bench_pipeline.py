#!/usr/bin/python3
"""The lung pipeline per slice, whole runs of kmseg side by side (issue 13).

Configs, each a whole `kmseg run ... -j 1 -q` over the same N slices (a
fresh output folder each time, start-up, journal, summary, report included):
  full      samples/lung_ct.ini as it is: read, window, denoise, reshape,
            kmeans, lung_mask, evaluate (truth: the slices' manual masks),
            write; products mask, overlay
  full_rgb  the same with write.overlay_format = rgb (the 24-bit PNG of
            before; only when KMSEG knows the key)
  mask      the same config writing the mask only (write.products = mask)
  slices    stages = read, lung_mask, write; products = lungs (right/left
            labels and the pathology step: lung_mask needs only read)
  floor     build/bench/bench_io_floor: the I/O floor: each slice read and
            decoded by kmseg's TIFF reader, a 0/255 mask of the same size
            (HU < -400) encoded by write's mask PNG encoder and written
            atomically; nothing else (same start-up: it links libkmseg)
Targets: T1 full <= 1.5 x mask; T2 mask <= 3 x floor; T3 slices >= 200/s.

One warm-up run of each config, then REPS reps; each rep runs every config
once, the order rotated rep by rep. Printed: ms per slice (wall time of the
whole run / N) and its CPU time (user + system) as median [min-max] over reps, the ratios computed rep by
rep the same way, and README rows.

Slices: N copies of ../shared/data/lung-ct/images (24 with masks) when
present, else of samples/ct (4).
Usage: bench/bench_pipeline.py [KMSEG] [--n N] [--reps REPS]
"""
import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_lib import spread  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kmseg", nargs="?", default=os.path.join(ROOT, "build/kmseg"))
    ap.add_argument("--n", type=int, default=240)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--floor", default=os.path.join(ROOT, "build/bench/bench_io_floor"))
    a = ap.parse_args()
    shared = os.path.join(ROOT, "..", "shared", "data", "lung-ct")
    if os.path.isdir(shared):
        images, masks = os.path.join(shared, "images"), os.path.join(shared, "masks")
    else:
        images, masks = os.path.join(ROOT, "samples", "ct"), os.path.join(ROOT, "samples", "masks")
    sources = sorted(glob.glob(os.path.join(images, "*.tif")))
    stages = subprocess.run([a.kmseg, "stages"], capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        inp, truth = os.path.join(tmp, "in"), os.path.join(tmp, "truth")
        os.makedirs(inp)
        os.makedirs(truth)
        files = []
        for i in range(a.n):
            src = sources[i % len(sources)]
            stem = os.path.splitext(os.path.basename(src))[0]
            name = "%s_c%03d" % (stem, i // len(sources))
            files.append(os.path.join(inp, name + ".tif"))
            shutil.copy(src, files[-1])
            os.symlink(os.path.join(masks, stem + ".png"), os.path.join(truth, name + ".png"))
        ini = os.path.join(ROOT, "samples", "lung_ct.ini")
        base = [a.kmseg, "run", ini, "-q", "-j", "1", "-i", inp,
                "-s", "evaluate.truth=" + os.path.join(truth, "{stem}.png")]
        configs = [("full", base),
                   ("mask", base + ["-s", "write.products=mask"]),
                   ("slices", base + ["-s", "pipeline.stages=read, lung_mask, write",
                                      "-s", "write.products=lungs"]),
                   ("floor", [a.floor, None] + files)]
        if "overlay_format" in stages:
            configs.insert(1, ("full_rgb", base + ["-s", "write.overlay_format=rgb"]))
        runs = [0]

        def run(cmd):
            runs[0] += 1
            out = os.path.join(tmp, "out%d" % runs[0])
            cmd = [out if c is None else c for c in cmd]
            if cmd[0] == a.kmseg:
                cmd = cmd + ["-o", out]
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
            _, status, ru = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - t0
            if status != 0:
                sys.exit("%s failed (wait status %d)" % (" ".join(cmd[:4]), status))
            # outputs stay until the end: ext4 makes new files slow for a while
            # after many were deleted (recently_deleted), which would charge
            # one run for the clean-up of the one before
            return seconds, ru.ru_utime + ru.ru_stime

        for _, cmd in configs:  # warm-up: file cache, page cache of the binaries
            run(cmd)
        ms = {name: [] for name, _ in configs}   # wall time per slice
        cpu = {name: [] for name, _ in configs}  # user + system CPU time
        for rep in range(a.reps):
            k = rep % len(configs)
            for name, cmd in configs[k:] + configs[:k]:
                wall, used = run(cmd)
                ms[name].append(1000 * wall / a.n)
                cpu[name].append(1000 * used / a.n)
    print("kmseg: %s; %d slices (copies of %s), -j 1, %d reps after a warm-up" % (
        a.kmseg, a.n, os.path.relpath(images, ROOT), a.reps))
    print("wall: the run's elapsed time; cpu: its user + system time (less "
          "sensitive to the other load of a shared machine)")
    for name, _ in configs:
        print("  %-9s wall %s ms/slice (%s slices/s); cpu %s ms/slice" % (
            name, spread(ms[name], "%.2f"),
            spread([1000 / v for v in ms[name]], "%.0f"), spread(cpu[name], "%.2f")))

    def ratio(d, x, y):
        return [p / q for p, q in zip(d[x], d[y])]

    res = {}
    for label, d in (("wall", ms), ("cpu", cpu)):
        res[label] = (ratio(d, "full", "mask"), ratio(d, "mask", "floor"),
                      [1000 / v for v in d["slices"]])
        t1, t2, t3 = res[label]
        print("%s: T1 full / mask %s (target <= 1.5); T2 mask / floor %s (target <= 3); "
              "T3 %s slices/s (target >= 200)" % (
                  label, spread(t1, "%.2f"), spread(t2, "%.2f"), spread(t3, "%.0f")))
        if "full_rgb" in d:
            print("%s: full_rgb / mask %s (the overlay as 24-bit PNG, as before)" % (
                label, spread(ratio(d, "full_rgb", "mask"), "%.2f")))
    cmd = "`bench/bench_pipeline.py`"
    (w1, w2, w3), (c1, c2, c3) = res["wall"], res["cpu"]
    print("README| | %s | lung_ct.ini per slice (-j 1, %d slices, whole runs): mask + overlay "
          "over mask only (T1) | wall %s x, CPU %s x (%s vs %s ms/slice wall) |" % (
              cmd, a.n, spread(w1, "%.2f"), spread(c1, "%.2f"), spread(ms["full"], "%.2f"),
              spread(ms["mask"], "%.2f")))
    print("README| | %s | mask only over the I/O floor (read TIFF + write a mask PNG, "
          "build/bench/bench_io_floor) (T2) | wall %s x, CPU %s x (floor %s ms/slice wall) |" % (
              cmd, spread(w2, "%.2f"), spread(c2, "%.2f"), spread(ms["floor"], "%.2f")))
    print("README| | %s | slices/s, one thread: read, lung_mask (sides, pathology), lungs PNG, "
          "whole process over %d slices (T3) | wall %s, CPU %s slices/s |" % (
              cmd, a.n, spread(w3, "%.0f"), spread(c3, "%.0f")))
    print("README| | %s | the overlay as 24-bit RGB PNG (`overlay_format = rgb`, the encoding of "
          "before) over mask only | wall %s x |" % (cmd, spread(ratio(ms, "full_rgb", "mask"), "%.2f")))
    print("README-VALUE| t1 %.2f" % statistics.median(w1))
    print("README-VALUE| t2 %.2f" % statistics.median(w2))
    print("README-VALUE| t3 %.0f" % statistics.median(w3))
    print("README-VALUE| t3_cpu %.0f" % statistics.median(c3))


if __name__ == "__main__":
    main()
