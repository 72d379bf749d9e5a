#!/usr/bin/python3
"""Writes DICOM test series made from a NIfTI CT volume (and a few odd ones).

    dicom_gen.py NIFTI OUTDIR [EXTRADIR]
    dicom_gen.py --fuzz OUTDIR SEED SOURCE... -- GOOD...

EXTRADIR (optional) gets series whose geometry a test can get wrong, each
with the NIfTI it was made from (EXTRADIR/NAME.nii.gz) and its own
EXTRADIR/manifest.json (a value [k, "T"]: the file holds slice k
transposed, pixel (row j, column i) = voxel (j, i, k)):
  aniso/       the same voxels described as 2.1 mm columns, 3 mm rows
  transposed/  every slice stored transposed (row cosines along the
               volume's j axis, column cosines along its i axis)
  irregular/   slice nz/2 moved by 0.4 of the slice spacing

For each variant OUTDIR/VARIANT/ holds one file per slice with the volume's
geometry (ImagePositionPatient, ImageOrientationPatient, PixelSpacing in
LPS, from the NIfTI sform in RAS), and OUTDIR/manifest.json maps every
written file to the slice index k of the NIfTI volume it holds (pixel
(row j, column i) of a file = voxel (i, j, k)). Reads the NIfTI with gzip +
struct + numpy only."""
import gzip
import json
import os
import random
import struct
import sys

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"


def read_nifti(path):
    b = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
    assert struct.unpack("<i", b[:4])[0] == 348, "little-endian NIfTI-1 only"
    dim = struct.unpack("<8h", b[40:56])
    dt = struct.unpack("<h", b[70:72])[0]
    off = int(struct.unpack("<f", b[108:112])[0])
    slope, inter = struct.unpack("<2f", b[112:120])
    sform = struct.unpack("<h", b[254:256])[0]
    assert sform > 0, "needs an sform"
    srow = np.array(struct.unpack("<12f", b[280:328]), dtype=float).reshape(3, 4)
    types = {2: "u1", 4: "<i2", 8: "<i4", 16: "<f4", 512: "<u2"}
    n = dim[1] * dim[2] * dim[3]
    v = np.frombuffer(b[off:], dtype=types[dt], count=n).astype(float)
    if slope not in (0.0, 1.0) and np.isfinite(slope):
        v = v * slope + inter
    vol = v.reshape(dim[3], dim[2], dim[1])  # [k, j, i]
    aff = np.eye(4)
    aff[:3] = srow
    return vol, aff


def geometry(aff):
    """LPS row/column cosines, spacings, and the LPS position of (0, 0, k)."""
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ aff
    ci, cj = lps[:3, 0], lps[:3, 1]
    return lps, ci / np.linalg.norm(ci), cj / np.linalg.norm(cj), \
        float(np.linalg.norm(ci)), float(np.linalg.norm(cj))


def write_slice(path, pixels, k, lps, rowcos, colcos, di, dj, series_uid,
                study_uid, number, desc, *, modality="CT", unsigned=False,
                intercept=0.0, slope=1.0, instance=None, patient="P001",
                shift=0.0):
    meta = FileMetaDataset()
    sop_class = CT_IMAGE if modality == "CT" else MR_IMAGE
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = patient
    ds.PatientName = "Test^Phantom"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = number
    ds.SeriesDescription = desc
    ds.Modality = modality
    ds.InstanceNumber = instance if instance is not None else k + 1
    pos = lps @ np.array([0.0, 0.0, k + shift, 1.0])
    ds.ImagePositionPatient = [f"{x:.6f}" for x in pos[:3]]
    ds.ImageOrientationPatient = [f"{x:.6f}" for x in list(rowcos) + list(colcos)]
    ds.PixelSpacing = [f"{dj:.6f}", f"{di:.6f}"]  # row spacing, column spacing
    ds.SliceThickness = f"{np.linalg.norm(lps[:3, 2]):.6f}"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.RescaleIntercept = f"{intercept:g}"
    ds.RescaleSlope = f"{slope:g}"
    stored = np.rint((pixels - intercept) / slope)
    if unsigned:
        ds.PixelRepresentation = 0
        ds.PixelData = np.clip(stored, 0, 65535).astype("<u2").tobytes()
    else:
        ds.PixelRepresentation = 1
        ds.PixelData = stored.astype("<i2").tobytes()
    ds.save_as(path, write_like_original=False)


def series(vol, aff, folder, names, manifest, *, skip=(), uid=None,
           number=3, desc="Chest CT", **kw):
    os.makedirs(folder, exist_ok=True)
    lps, rowcos, colcos, di, dj = geometry(aff)
    uid = uid or generate_uid()
    study = generate_uid()
    for k in range(vol.shape[0]):
        if k in skip:
            continue
        path = os.path.join(folder, names[k])
        write_slice(path, vol[k], k, lps, rowcos, colcos, di, dj, uid, study,
                    number, desc, **{a: (b(k) if callable(b) else b)
                                     for a, b in kw.items()})
        manifest[os.path.abspath(path)] = k
    return uid


def fuzz(args):
    """Damaged copies of each SOURCE file: cut at every 97 bytes, cut by 50
    bytes (inside the pixel data), and 100 with 1-3 random bytes of the
    first 1 KB changed (fixed seed). OUTDIR/alone/ holds them all,
    OUTDIR/tree/NAME/ each one beside copies of the GOOD files (g0.dcm,
    g1.dcm, ...: sorted first, they name the series) whose PatientID "P001"
    is changed to a number of the folder, so every folder's series has a
    name of its own.
    Prints one line per copy: NAME KIND (cut, cut50, flip)."""
    out, seed = args[0], int(args[1])
    sep = args.index("--")
    sources, good = args[2:sep], args[sep + 1:]
    rng = random.Random(seed)
    os.makedirs(f"{out}/alone", exist_ok=True)
    pid = b"\x10\x00\x20\x00LO\x04\x00P001"  # (0010,0020) LO "P001"
    good = [open(g, "rb").read() for g in good]
    assert all(g.count(pid) == 1 for g in good), "PatientID P001 in GOOD"
    number = 0
    for s in sources:
        data = open(s, "rb").read()
        tag = os.path.splitext(os.path.basename(s))[0]
        variants = [(f"{tag}_cut{at:06d}", "cut", data[:at])
                    for at in range(97, len(data), 97)]
        variants.append((f"{tag}_cut50", "cut50", data[:-50]))
        for i in range(100):
            b = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                b[rng.randrange(min(1024, len(b)))] ^= rng.randint(1, 255)
            variants.append((f"{tag}_flip{i:03d}", "flip", bytes(b)))
        for name, kind, b in variants:
            path = f"{out}/alone/{name}.dcm"
            with open(path, "wb") as f:
                f.write(b)
            os.makedirs(f"{out}/tree/{name}", exist_ok=True)
            os.link(path, f"{out}/tree/{name}/{name}.dcm")
            number += 1
            for j, g in enumerate(good):
                with open(f"{out}/tree/{name}/g{j}.dcm", "wb") as f:
                    f.write(g.replace(pid, pid[:8] + b"%04d" % number))
            print(name, kind)


def main():
    if sys.argv[1] == "--fuzz":
        return fuzz(sys.argv[2:])
    src, out = sys.argv[1], sys.argv[2]
    vol, aff = read_nifti(src)
    nz = vol.shape[0]
    rng = random.Random(7)
    manifest = {}
    plain = [f"slice_{k:03d}.dcm" for k in range(nz)]

    # (a) signed int16 HU
    series(vol, aff, f"{out}/s16", plain, manifest)
    # (b) unsigned, stored = HU + 1024 (HU below -1024 is clipped: air)
    series(np.maximum(vol, -1024), aff, f"{out}/u16", plain, manifest,
           unsigned=True, intercept=-1024.0)
    # (c) file names and InstanceNumbers that disagree with position, no
    # extension at all
    shuffled = [f"IM{n:04d}" for n in rng.sample(range(1000, 9999), nz)]
    order = list(range(nz))
    rng.shuffle(order)
    series(vol, aff, f"{out}/shuffled", shuffled, manifest,
           instance=lambda k: order[k] + 1)
    # (d) one series compressed by gdcmconv (JPEG 2000, lossless)
    series(vol, aff, f"{out}/j2k", plain, manifest)
    # (e) two series in one folder, plus an RTSTRUCT and an SR
    series(vol, aff, f"{out}/mixed", [f"a_{k:03d}.dcm" for k in range(nz)],
           manifest, number=3, desc="Chest CT")
    series(vol, aff, f"{out}/mixed", [f"b_{k:03d}.dcm" for k in range(nz)],
           manifest, number=4, desc="Chest CT/soft")
    # (f) one slice missing
    series(vol, aff, f"{out}/gap", plain, manifest, skip={nz // 2})
    # mixed sizes inside one series
    os.makedirs(f"{out}/sizes", exist_ok=True)
    lps, rowcos, colcos, di, dj = geometry(aff)
    uid, study = generate_uid(), generate_uid()
    for k in range(3):
        px = vol[k] if k != 1 else vol[k][:-4]
        write_slice(f"{out}/sizes/s{k}.dcm", px, k, lps, rowcos, colcos, di,
                    dj, uid, study, 5, "sizes")
    # mixed pixel spacings inside one series
    os.makedirs(f"{out}/spacings", exist_ok=True)
    uid = generate_uid()
    for k in range(3):
        write_slice(f"{out}/spacings/p{k}.dcm", vol[k], k, lps, rowcos, colcos,
                    di * (1.5 if k == 2 else 1), dj, uid, study, 6, "spacings")
    # an MR series (accepted, with a note)
    series(vol, aff, f"{out}/mr", plain, manifest, modality="MR",
           desc="T1", number=7)
    with open(f"{out}/manifest.json", "w") as f:
        json.dump(manifest, f, indent=0, sort_keys=True)
    if len(sys.argv) > 3:
        extra(src, vol, aff, sys.argv[3], plain)


def write_nifti_like(src, dst, aff):
    """src's bytes with sform and pixdim taken from aff (voxels as they are)."""
    b = bytearray(gzip.open(src).read() if src.endswith(".gz") else open(src, "rb").read())
    b[280:328] = struct.pack("<12f", *aff[:3].reshape(-1))
    pixdim = list(struct.unpack("<8f", b[76:108]))
    pixdim[1:4] = [float(np.linalg.norm(aff[:3, c])) for c in range(3)]
    b[76:108] = struct.pack("<8f", *pixdim)
    with gzip.open(dst, "wb") as f:
        f.write(bytes(b))


def extra(src, vol, aff, out, plain):
    os.makedirs(out, exist_ok=True)
    manifest = {}
    nz = vol.shape[0]
    # (a) unequal in-plane spacing: columns 2.1 mm, rows as they are
    an = aff.copy()
    an[:3, 0] *= 2.1 / np.linalg.norm(aff[:3, 0])
    write_nifti_like(src, f"{out}/aniso.nii.gz", an)
    series(vol, an, f"{out}/aniso", plain, manifest, number=8, desc="aniso")
    # (b) slices stored transposed: the file's columns run along the
    # volume's j axis, its rows along i
    write_nifti_like(src, f"{out}/transposed.nii.gz", aff)
    os.makedirs(f"{out}/transposed", exist_ok=True)
    lps, rowcos, colcos, di, dj = geometry(aff)
    uid, study = generate_uid(), generate_uid()
    for k in range(nz):
        path = f"{out}/transposed/{plain[k]}"
        write_slice(path, np.ascontiguousarray(vol[k].T), k, lps, colcos,
                    rowcos, dj, di, uid, study, 9, "transposed")
        manifest[os.path.abspath(path)] = [k, "T"]
    # (c) one slice 0.4 of a step off its place
    series(vol, aff, f"{out}/irregular", plain, manifest, number=10,
           desc="irregular", shift=lambda k: 0.4 if k == nz // 2 else 0.0)
    with open(f"{out}/manifest.json", "w") as f:
        json.dump(manifest, f, indent=0, sort_keys=True)


if __name__ == "__main__":
    main()
