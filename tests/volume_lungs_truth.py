#!/usr/bin/python3
"""Makes samples/volume/lungs.nii.gz, the sided truth of the sample volume:
0 background, 1 the patient's right lung, 2 the left (lungmask's
convention), from TotalSegmentator's lobes (seg_multilabel.nii.gz of
/work/shared/data/lung-ct-volume: 10, 11 left upper and lower lobes; 12, 13,
14 right upper, middle and lower). The 352-byte header (and so the affine)
is lung_mask.nii.gz's, which is uint8 already. No nibabel: gzip + struct.

Usage: tests/volume_lungs_truth.py SEG_MULTILABEL OUT [LUNG_MASK]
"""
import gzip
import struct
import sys

import numpy as np


def read(path):
    raw = gzip.open(path).read()
    dims = struct.unpack("<8h", raw[40:56])
    dt = struct.unpack("<h", raw[70:72])[0]
    off = int(struct.unpack("<f", raw[108:112])[0])
    dtype = {2: np.uint8, 4: np.int16, 8: np.int32, 16: np.float32, 512: np.uint16}[dt]
    n = dims[1] * dims[2] * dims[3]
    a = np.frombuffer(raw[off:off + n * np.dtype(dtype).itemsize], dtype=dtype)
    return raw[:352], a.reshape(dims[3], dims[2], dims[1])


def main():
    seg_path, out = sys.argv[1], sys.argv[2]
    mask_path = sys.argv[3] if len(sys.argv) > 3 else "samples/volume/lung_mask.nii.gz"
    _, seg = read(seg_path)
    hdr, mask = read(mask_path)
    sided = np.zeros(seg.shape, np.uint8)
    sided[np.isin(seg, (12, 13, 14))] = 1
    sided[np.isin(seg, (10, 11))] = 2
    assert ((sided > 0) == (mask > 0)).all(), "lobes and lung_mask disagree"
    with gzip.open(out, "wb") as f:
        f.write(hdr + sided.tobytes())


if __name__ == "__main__":
    main()
