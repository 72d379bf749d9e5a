#!/usr/bin/python3
"""Single-slice DICOM files made from the sample CT slices, the way scanners
and PACS exports store them, each with its truth on the file's pixel grid:

    dicom_slices.py CT_DIR MASK_DIR OUTDIR

OUTDIR/VARIANT/ID.dcm and OUTDIR/VARIANT/masks/ID.png for VARIANT in
  u12     unsigned, BitsStored 12, RescaleIntercept -1024 (stored HU + 1024)
  s16i    signed, RescaleIntercept -1024 (stored HU + 1024)
  rot90   stored turned by 90 degrees, ImageOrientationPatient saying so
  zoom    70 % of the field of view around the body, resized back to 512:
          PixelSpacing 0.49 mm
Upright slices get PixelSpacing 0.7 mm, the size kmseg assumes for a 512-pixel
slice without one, so each variant must score as the TIFF does."""
import glob
import os
import sys

import cv2
import numpy as np
import pydicom
from pydicom.uid import generate_uid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ct_variants import zoom  # noqa: E402
from dicom_gen import write_slice  # noqa: E402


def main():
    ct, masks, out = sys.argv[1:4]
    for f in sorted(glob.glob(os.path.join(ct, "*.tif"))):
        stem = os.path.splitext(os.path.basename(f))[0]
        a = cv2.imread(f, cv2.IMREAD_UNCHANGED).astype(np.float64)
        m = cv2.imread(os.path.join(masks, stem + ".png"), 0)
        axial = np.eye(4)
        axial[0, 0] = axial[1, 1] = 0.7
        upright = ((1, 0, 0), (0, 1, 0))
        # stored[r, c] = a[c, W-1-r]: columns run to Posterior, rows to Right
        turned = ((0, 1, 0), (-1, 0, 0))
        za, zm, mm = zoom(a.astype(np.int16), m)
        variants = {
            "u12": (np.clip(a, -1024, 3071), m, upright, 0.7,
                    dict(unsigned=True, intercept=-1024)),
            "s16i": (a, m, upright, 0.7, dict(intercept=-1024)),
            "rot90": (np.rot90(a), np.rot90(m), turned, 0.7, {}),
            "zoom": (za.astype(np.float64), zm, upright, mm, {}),
        }
        for name, (px, mk, (rowcos, colcos), sp, kw) in variants.items():
            d = os.path.join(out, name)
            os.makedirs(os.path.join(d, "masks"), exist_ok=True)
            path = os.path.join(d, stem + ".dcm")
            write_slice(path, np.ascontiguousarray(px), 0, axial,
                        np.array(rowcos, float), np.array(colcos, float), sp, sp,
                        generate_uid(), generate_uid(), 1, "slice " + name,
                        patient=stem, **kw)
            if name == "u12":  # 12 bits stored, as most CT
                ds = pydicom.dcmread(path)
                ds.BitsStored, ds.HighBit = 12, 11
                ds.save_as(path, write_like_original=False)
            cv2.imwrite(os.path.join(d, "masks", stem + ".png"), np.ascontiguousarray(mk))


if __name__ == "__main__":
    main()
