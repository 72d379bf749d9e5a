#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/)
from the samples, small and deterministic. Run from anywhere:

    /usr/bin/python3 tests/fuzz/make_corpus.py

Needs Debian's python3-opencv, python3-numpy and python3-pydicom (only to
regenerate the seeds: the corpora are committed). The compressed DICOM
seeds are copied from python3-pydicom's test files (pydicom's licence,
MIT/Expat as Debian's copyright file for the package says)."""
import gzip
import os
import shutil
import struct
import sys

import cv2
import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import (ExplicitVRBigEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian, RLELossless)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
PYDICOM_FILES = os.path.join(os.path.dirname(pydicom.__file__), "data",
                             "test_files")


def out(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def config():
    for name in sorted(os.listdir(os.path.join(ROOT, "samples"))):
        if name.endswith(".ini"):
            with open(os.path.join(ROOT, "samples", name), "rb") as f:
                out("config", name, f.read())
    # after a NUL: -s overrides, one a line
    out("config", "overrides.ini",
        b"[pipeline]\ninput = ct\noutput = out\n"
        b"stages = read, reshape, kmeans, recolor, write\n"
        b"[kmeans]\nk = 3\n\0kmeans.k=4\nread.mode=grayscale\n"
        b"write.products=recolor\npipeline.seed=7")
    out("config", "bom_crlf.ini",
        b"\xef\xbb\xbf[pipeline]\r\ninput = a.png, b.png\r\n"
        b"stages = read,lung_mask,write\r\n\r\n[ write ]\r\n"
        b"products = mask\r\n")


def images():
    gray = cv2.imread(os.path.join(ROOT, "samples/png/ID_0000_Z_0142.png"),
                      cv2.IMREAD_UNCHANGED)
    ct = cv2.imread(os.path.join(ROOT, "samples/ct/ID_0000_Z_0142.tif"),
                    cv2.IMREAD_UNCHANGED)
    g = cv2.resize(gray, (16, 16), interpolation=cv2.INTER_AREA)
    c = cv2.resize(ct, (16, 16), interpolation=cv2.INTER_NEAREST)
    color = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
    color[:, :, 0] = 255 - color[:, :, 0]
    bgra = cv2.cvtColor(color, cv2.COLOR_BGR2BGRA)

    def enc(ext, img, params=()):
        ok, buf = cv2.imencode(ext, img, list(params))
        assert ok
        return buf.tobytes()

    seeds = {
        "gray.png": enc(".png", g),
        "color.png": enc(".png", color),
        "bgra.png": enc(".png", bgra),
        "u16.png": enc(".png", (c.astype(np.int32) + 2048).astype(np.uint16)),
        "gray.jpg": enc(".jpg", g, (cv2.IMWRITE_JPEG_QUALITY, 80)),
        "color.jpg": enc(".jpg", color, (cv2.IMWRITE_JPEG_QUALITY, 80)),
        "gray.bmp": enc(".bmp", g),
        # the plain CT layout read.c copies itself: little-endian,
        # uncompressed, int16, with a resolution in pixels per cm
        "ct_plain.tif": enc(".tif", c, (cv2.IMWRITE_TIFF_COMPRESSION, 1,
                                        cv2.IMWRITE_TIFF_RESUNIT, 3,
                                        cv2.IMWRITE_TIFF_XDPI, 14,
                                        cv2.IMWRITE_TIFF_YDPI, 14)),
        "ct_lzw.tif": enc(".tif", c),
        "f32.tif": enc(".tif", c.astype(np.float32) / 7,
                       (cv2.IMWRITE_TIFF_COMPRESSION, 1)),
        "gray.tif": enc(".tif", g, (cv2.IMWRITE_TIFF_COMPRESSION, 1)),
        "color.tif": enc(".tif", color),
    }
    for name, data in sorted(seeds.items()):
        out("image", name, data)
    # read.mode comes from the size (fuzz_image.c): the main layouts in
    # every mode
    for name in ("gray.png", "ct_plain.tif"):
        for pad in (1, 2):
            stem, ext = os.path.splitext(name)
            out("image", "%s_pad%d%s" % (stem, pad, ext),
                seeds[name] + b"\0" * pad)


def nifti1(vox, datatype, bitpix, slope=0.0, inter=0.0, sform=None,
           qform_code=0, quatern=(0, 0, 0), pixdim=(1.0, 0.8, 0.8, 2.5)):
    """A NIfTI-1 single file (.nii): 348-byte header, 4-byte extension
    flag, the voxels at vox_offset 352."""
    nz, ny, nx = vox.shape
    h = bytearray(348)
    struct.pack_into("<i", h, 0, 348)
    struct.pack_into("<8h", h, 40, 3, nx, ny, nz, 1, 1, 1, 1)
    struct.pack_into("<hh", h, 70, datatype, bitpix)
    struct.pack_into("<8f", h, 76, pixdim[0], pixdim[1], pixdim[2], pixdim[3],
                     1, 1, 1, 1)
    struct.pack_into("<f", h, 108, 352.0)
    struct.pack_into("<ff", h, 112, slope, inter)
    h[123] = 2 | 8  # mm, s
    struct.pack_into("<hh", h, 252, qform_code, 1 if sform else 0)
    struct.pack_into("<3f", h, 256, *quatern)
    struct.pack_into("<3f", h, 268, 10.0, -20.0, 30.0)
    if sform:
        for r in range(3):
            struct.pack_into("<4f", h, 280 + 16 * r, *sform[r])
    h[344:348] = b"n+1\0"
    return bytes(h) + b"\0\0\0\0" + vox.tobytes()


def nifti2(vox, datatype, bitpix):
    """A NIfTI-2 single file: 540-byte header, extension flag, voxels at
    544."""
    nz, ny, nx = vox.shape
    h = bytearray(540)
    struct.pack_into("<i", h, 0, 540)
    h[4:12] = b"n+2\0\r\n\x1a\n"
    struct.pack_into("<hh", h, 12, datatype, bitpix)
    struct.pack_into("<8q", h, 16, 3, nx, ny, nz, 1, 1, 1, 1)
    struct.pack_into("<8d", h, 104, 1, 0.7, 0.7, 3, 1, 1, 1, 1)
    struct.pack_into("<q", h, 168, 544)
    struct.pack_into("<dd", h, 176, 1.0, -1024.0)
    struct.pack_into("<ii", h, 344, 1, 1)  # qform, sform: scanner
    struct.pack_into("<4d", h, 400, -0.7, 0, 0, 5)
    struct.pack_into("<4d", h, 432, 0, 0.7, 0, -5)
    struct.pack_into("<4d", h, 464, 0, 0, 3, 0)
    struct.pack_into("<i", h, 500, 2 | 8)
    return bytes(h) + b"\0\0\0\0" + vox.tobytes()


def niftis():
    z, y, x = np.mgrid[0:4, 0:8, 0:8]
    hu = (-1000 + 60 * x + 25 * y + 200 * z).astype("<i2")
    s16 = nifti1(hu, 4, 16, qform_code=1, quatern=(0.0, 0.0, 1.0))
    out("nifti", "ct_s16.nii", s16)
    out("nifti", "ct_s16.nii.gz", gzip.compress(s16, 6, mtime=0))
    # odd size: the harness gzips it (.nii.gz path on readable headers)
    out("nifti", "ct_s16_odd.nii", s16 + b"\0")
    u16 = (hu.astype(np.int32) + 1024).astype("<u2")
    out("nifti", "ct_u16_scaled_sform.nii",
        nifti1(u16, 512, 16, slope=1.0, inter=-1024.0,
               sform=((-0.8, 0, 0, 12.0), (0, 0.8, 0.1, -40.0),
                      (0, 0, 2.5, 7.0))))
    f32 = (hu.astype("<f4") / 3).astype("<f4")
    out("nifti", "ct_f32.nii", nifti1(f32, 16, 32, slope=1.0))
    out("nifti", "ct_nifti2_s16.nii", nifti2(hu, 4, 16))


def dicom_ds(pixels, transfer_syntax, modality="CT", rows_first=True):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.2.1143.1.1"
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.2.1143.9"
    ds = FileDataset("fuzz.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.2.1143.2"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.2.1143.3"
    ds.Modality = modality
    ds.PatientID = "FUZZ"
    ds.SeriesNumber = 3
    ds.SeriesDescription = "seed"
    ds.InstanceNumber = 1
    ds.ImagePositionPatient = [-4.0, -4.0, 12.5]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 1.25
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.PixelData = pixels.astype("<u2").tobytes()
    ds.is_little_endian = transfer_syntax != ExplicitVRBigEndian
    ds.is_implicit_VR = transfer_syntax == ImplicitVRLittleEndian
    return ds


def dicoms():
    y, x = np.mgrid[0:8, 0:8]
    px = (24 + 60 * x + 30 * y).astype(np.uint16)
    for name, ts in (("ct_explicit_le.dcm", ExplicitVRLittleEndian),
                     ("ct_implicit_le.dcm", ImplicitVRLittleEndian),
                     ("ct_explicit_be.dcm", ExplicitVRBigEndian)):
        ds = dicom_ds(px, ts)
        if ts == ExplicitVRBigEndian:
            ds.PixelData = px.astype(">u2").tobytes()
        path = os.path.join(CORPUS, "dicom", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        ds.save_as(path, write_like_original=False)
    ds = dicom_ds(px, ExplicitVRLittleEndian)
    ds.compress(RLELossless)
    ds.save_as(os.path.join(CORPUS, "dicom", "ct_rle.dcm"),
               write_like_original=False)
    # compressed seeds pydicom ships (JPEG 2000 goes to a child process)
    for name in ("MR_small_jp2klossless.dcm", "JPEG-lossy.dcm",
                 "MR_small_jpeg_ls_lossless.dcm", "rtstruct.dcm"):
        shutil.copyfile(os.path.join(PYDICOM_FILES, name),
                        os.path.join(CORPUS, "dicom", "pydicom_" + name))


def regressions():
    """Inputs that crashed a target once (tests/fuzz/README), kept as
    seeds: regress/<target>/ is copied as it is."""
    src = os.path.join(HERE, "regress")
    for target in sorted(os.listdir(src)) if os.path.isdir(src) else ():
        for name in sorted(os.listdir(os.path.join(src, target))):
            with open(os.path.join(src, target, name), "rb") as f:
                out(target, "regress_" + name, f.read())


def main():
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    config()
    images()
    niftis()
    dicoms()
    regressions()
    return 0


if __name__ == "__main__":
    sys.exit(main())
