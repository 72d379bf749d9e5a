#!/usr/bin/python3
"""DICOM series to HU in memory: kmseg's reader against dcm2niix.

    bench/bench_dicom.py [BUILD_DIR] [REPS]

Builds a 512 x 512 x 300 signed 16-bit CT series (the real slices of
../shared/data/lung-ct/images when present, else samples/ct, cycled), then
times, interleaved after one warm-up each:
  kmseg     BUILD_DIR/bench/bench_dicom_read: input grouping + the read stage
            (decode, RescaleSlope/Intercept per slice, canonical HU stack)
  dcm2niix  dcm2niix -z n (sorting, decoding, writing an uncompressed NIfTI
            to a temporary folder: its whole job)
and prints medians, min-max and the ratio. Files are in the page cache
(warm), as they are after the first of several runs."""
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_lib import machine_line, readme_row, readme_value, spread  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def slices():
    shared = os.path.join(ROOT, "..", "shared", "data", "lung-ct", "images")
    files = sorted(glob.glob(os.path.join(shared, "*.tif")))
    if not files:
        files = sorted(glob.glob(os.path.join(ROOT, "samples", "ct", "*.tif")))
    imgs = [cv2.imread(f, cv2.IMREAD_UNCHANGED) for f in files]
    imgs = [i for i in imgs if i is not None and i.shape == (512, 512)]
    return [i.astype(np.int16) for i in imgs], os.path.dirname(files[0])


def write_series(folder, n=300):
    imgs, src = slices()
    uid, study = generate_uid(), generate_uid()
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = os.path.join(folder, f"IM{k:04d}.dcm")
        ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.PatientID, ds.Modality = "BENCH", "CT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, uid
        ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
        ds.ImagePositionPatient = ["-250", "-250", f"{k * 1.0:.1f}"]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.PixelSpacing = ["0.7", "0.7"]
        ds.SliceThickness = "1"
        ds.Rows = ds.Columns = 512
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 0
        ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
        stored = np.clip(imgs[k % len(imgs)].astype(np.int32) + 1024, 0, 65535)
        ds.PixelData = stored.astype("<u2").tobytes()
        ds.save_as(path, write_like_original=False)
    return src


def timed(cmd, clean=None):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ms = (time.perf_counter() - t0) * 1e3
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr.decode()}")
    # untimed: dcm2niix's 157 MB of dirty pages are flushed before the next
    # run, which would otherwise pay for the write-back
    if clean:
        for f in glob.glob(os.path.join(clean, "*")):
            os.remove(f)
    os.sync()
    return ms, r.stdout.decode()


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 9
    reader = os.path.join(build, "bench", "bench_dicom_read")
    tmp = tempfile.mkdtemp(prefix="bench_dicom_")
    try:
        series = os.path.join(tmp, "series")
        os.makedirs(series)
        src = write_series(series)
        out = os.path.join(tmp, "nii")
        os.makedirs(out)
        kms_cmd = [reader, series]
        d2n_cmd = ["dcm2niix", "-z", "n", "-f", "vol", "-o", out, series]
        print(f"series: 512 x 512 x 300 int16 (unsigned + intercept -1024) "
              f"from {src}, {reps} interleaved runs after a warm-up")
        _, info = timed(kms_cmd)
        timed(d2n_cmd, out)
        print(f"kmseg reads it as {info.split(' ', 2)[2].strip()}")
        kms, d2n, inner = [], [], []
        for rep in range(reps):
            # alternate which goes first, so neither always gets the
            # caches the other warmed
            for side in ((0, 1) if rep % 2 == 0 else (1, 0)):
                if side == 0:
                    ms, text = timed(kms_cmd)
                    kms.append(ms)
                    inner.append(float(text.split()[0]))
                else:
                    ms, _ = timed(d2n_cmd, out)
                    d2n.append(ms)
        med = statistics.median
        ratios = [d / k for d, k in zip(d2n, kms)]
        print(f"kmseg read (process)  median {med(kms):7.1f} ms  "
              f"[{min(kms):.1f} - {max(kms):.1f}]")
        print(f"  of which reading    median {med(inner):7.1f} ms  "
              f"[{min(inner):.1f} - {max(inner):.1f}]")
        print(f"dcm2niix -z n         median {med(d2n):7.1f} ms  "
              f"[{min(d2n):.1f} - {max(d2n):.1f}]")
        print(f"ratio dcm2niix / kmseg (process), per run: median "
              f"{med(ratios):.2f}x  [{min(ratios):.2f} - {max(ratios):.2f}]; {machine_line()}")
        readme_row("bench/bench_dicom.py [BUILD] [REPS]",
                   "a 512×512×300 DICOM series (unsigned, intercept −1024, made from the CT "
                   "slices) read to HU in memory by kmseg (grouping, decoding, canonical stack; "
                   "whole process) against Debian's `dcm2niix -z n` converting it to NIfTI, "
                   f"{reps} interleaved runs after a warm-up",
                   f"kmseg {spread(kms, '%.0f')} ms, dcm2niix {spread(d2n, '%.0f')} ms; "
                   f"dcm2niix / kmseg per run {spread(ratios, '%.2f')}×")
        readme_value("dicom_ratio", f"{med(ratios):.1f}")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
