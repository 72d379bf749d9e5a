#!/usr/bin/python3
"""Checks a DICOM-series mask through world coordinates, not array order.

    dicom_world.py MASK.nii.gz REF_MASK.nii.gz SERIES_FOLDER MANIFEST.json MIN_DICE

Every voxel of MASK (the run on the series) is taken through MASK's sform to
RAS mm, to LPS (x, y negated), and through the series' own DICOM geometry
(ImagePositionPatient, ImageOrientationPatient, PixelSpacing of its files,
read with pydicom) to (column, row, file); the manifest gives the file's
slice k of the NIfTI volume the series was made from. The same point taken
through REF_MASK's sform must land on the same (i, j, k) = (column, row, k)
(a manifest value [k, "T"]: a transposed file, (i, j, k) = (row, column, k)).
Then the Dice of MASK carried over that way against REF_MASK (the run on
the NIfTI volume) must reach MIN_DICE. Voxels on a slice the series lacks
(a filled gap) are left out. Prints one line; exit 1 on failure."""
import glob
import gzip
import json
import os
import struct
import sys

import numpy as np
import pydicom


def read_mask(path):
    b = gzip.open(path).read()
    dim = struct.unpack("<8h", b[40:56])
    off = int(struct.unpack("<f", b[108:112])[0])
    assert struct.unpack("<h", b[70:72])[0] == 2, "uint8 mask"
    assert struct.unpack("<h", b[254:256])[0] > 0, "sform set"
    srow = np.array(struct.unpack("<12f", b[280:328]), dtype=float).reshape(3, 4)
    aff = np.eye(4)
    aff[:3] = srow
    n = dim[1] * dim[2] * dim[3]
    m = np.frombuffer(b[off:], dtype="u1", count=n).reshape(dim[3], dim[2], dim[1])
    return m, aff  # m[k, j, i]


def main():
    mask_p, ref_p, folder, manifest_p, min_dice = sys.argv[1:6]
    m, am = read_mask(mask_p)
    r, ar = read_mask(ref_p)
    manifest = json.load(open(manifest_p))
    files = []
    for f in sorted(glob.glob(os.path.join(folder, "*"))):
        ds = pydicom.dcmread(f, stop_before_pixels=True, force=True)
        if "ImagePositionPatient" not in ds:
            continue
        files.append((os.path.abspath(f), np.array(ds.ImagePositionPatient, float),
                      np.array(ds.ImageOrientationPatient, float),
                      np.array(ds.PixelSpacing, float)))
    iop = files[0][2]
    rowcos, colcos = iop[:3], iop[3:]
    normal = np.cross(rowcos, colcos)
    rs, cs = files[0][3]
    along = np.array([f[1] @ normal for f in files])
    step = np.median(np.diff(np.sort(along)))

    kji = np.argwhere(m > 0)
    if len(kji) == 0:
        print("no lung voxel in", mask_p)
        return 1
    vox = np.c_[kji[:, 2], kji[:, 1], kji[:, 0], np.ones(len(kji))]
    ras = (am @ vox.T).T[:, :3]
    lps = ras * np.array([-1.0, -1.0, 1.0])
    # through the DICOM geometry
    a = lps @ normal
    nearest = np.abs(a[:, None] - along[None, :]).argmin(axis=1)
    on_file = np.abs(a - along[nearest]) < 0.25 * abs(step)
    ipp = np.array([files[i][1] for i in nearest])
    col = ((lps - ipp) @ rowcos) / cs
    row = ((lps - ipp) @ colcos) / rs
    entry = [manifest[files[i][0]] for i in nearest]
    k_dcm = np.array([e[0] if isinstance(e, list) else e for e in entry])
    t = np.array([isinstance(e, list) and "T" in e[1:] for e in entry])
    col, row = np.where(t, row, col), np.where(t, col, row)  # as (i, j)
    # through the reference's own affine
    ijk = (np.linalg.inv(ar) @ np.c_[ras, np.ones(len(ras))].T).T[:, :3]
    agree = (np.abs(ijk[:, 0] - col) < 0.01) & (np.abs(ijk[:, 1] - row) < 0.01) & \
        (np.abs(ijk[:, 2] - k_dcm) < 0.01)
    bad = on_file & ~agree
    if bad.any():
        i = np.flatnonzero(bad)[0]
        print("geometry disagrees at mask voxel", kji[i][::-1], "DICOM",
              (col[i], row[i], k_dcm[i]), "reference", ijk[i])
        return 1
    ii = np.rint(ijk).astype(int)
    inside = (ii >= 0).all(axis=1) & (ii < np.array(r.shape[::-1])).all(axis=1)
    if not inside.all():
        print("lung voxels outside the reference volume:", (~inside).sum())
        return 1
    carried = np.zeros_like(r)
    carried[ii[:, 2], ii[:, 1], ii[:, 0]] = 1
    keep = np.ones(r.shape[0], bool)
    ks = [manifest[f[0]] for f in files]
    ks = [e[0] if isinstance(e, list) else e for e in ks]
    for k in set(range(r.shape[0])) - set(ks):
        keep[k] = False  # a slice the series lacks
    a_, b_ = carried[keep] > 0, r[keep] > 0
    dice = 2.0 * (a_ & b_).sum() / max(1, a_.sum() + b_.sum())
    lung_in_ref = int((r > 0).sum())
    print(f"{len(kji)} lung voxels mapped through world coordinates "
          f"(reference {lung_in_ref}); Dice {dice:.4f}")
    return 0 if dice >= float(min_dice) else 1


if __name__ == "__main__":
    sys.exit(main())
