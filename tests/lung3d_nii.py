#!/usr/bin/python3
"""NIfTI-1 helpers and checks for tests/lung3d_test.sh (no nibabel: gzip,
struct and numpy). Arrays are in file order, indexed [k, j, i].

  lung3d_nii.py dice MASK TRUTH [--sided]    whole (and right, left) Dice
  lung3d_nii.py below MASK Z                 mask voxels in slices k < Z
  lung3d_nii.py header MASK INPUT            dims, pixdim, qform, sform equal
  lung3d_nii.py sides LUNGS                  right lung's world x > left's
  lung3d_nii.py crop CT OUT K0 K1            slices K0..K1-1 as a new file
  lung3d_nii.py reorient CT OUT HOW          stored another way (swapij, flipk)
  lung3d_nii.py same_after MASK2 HOW MASK    MASK2 stored back equals MASK
  lung3d_nii.py paint CT TRUTH OUT PATCHES   lesions painted (see paint())
  lung3d_nii.py patches MASK PATCHES TRUTH   lesion and effusion checks
"""
import gzip
import struct
import sys

import numpy as np

DTYPES = {2: np.uint8, 4: np.int16, 8: np.int32, 16: np.float32, 512: np.uint16}


def read(path):
    raw = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
    dims = struct.unpack("<8h", raw[40:56])
    dt = struct.unpack("<h", raw[70:72])[0]
    off = int(struct.unpack("<f", raw[108:112])[0])
    dtype = DTYPES[dt]
    n = dims[1] * dims[2] * dims[3]
    a = np.frombuffer(raw[off:off + n * np.dtype(dtype).itemsize], dtype=dtype)
    return bytearray(raw[:off]), a.reshape(dims[3], dims[2], dims[1]).copy()


def write(path, hdr, a):
    hdr = bytearray(hdr)
    struct.pack_into("<3h", hdr, 42, a.shape[2], a.shape[1], a.shape[0])
    code = {np.dtype(v): k for k, v in DTYPES.items()}[a.dtype]
    struct.pack_into("<hh", hdr, 70, code, 8 * a.dtype.itemsize)
    data = bytes(hdr) + np.ascontiguousarray(a).tobytes()
    with (gzip.open(path, "wb") if path.endswith(".gz") else open(path, "wb")) as f:
        f.write(data)


def sform(hdr):
    return np.array(struct.unpack("<12f", hdr[280:328])).reshape(3, 4)


def dice(a, b):
    s = a.sum() + b.sum()
    return 2.0 * (a & b).sum() / s if s else 1.0


def cmd_dice(args):
    _, m = read(args[0])
    _, t = read(args[1])
    out = ["whole=%.4f" % dice(m > 0, t > 0)]
    if "--sided" in args:
        out += ["right=%.4f" % dice(m == 1, t == 1), "left=%.4f" % dice(m == 2, t == 2)]
    print(" ".join(out))


def cmd_below(args):
    _, m = read(args[0])
    print(int((m[:int(args[1])] > 0).sum()))


def cmd_header(args):
    a, _ = read(args[0])
    b, _ = read(args[1])
    # dims, voxel sizes, units, qform/sform codes and the sform; the
    # quaternion (and qfac in pixdim[0]) only means something with a qform
    qcode = struct.unpack("<h", a[252:254])[0]
    same = (a[40:56] == b[40:56] and a[80:92] == b[80:92] and a[252:256] == b[252:256]
            and a[280:328] == b[280:328] and a[123] == b[123]
            and (qcode == 0 or (a[256:280] == b[256:280] and a[76:80] == b[76:80])))
    print("same" if same else "differ")


def cmd_sides(args):
    hdr, m = read(args[0])
    s = sform(hdr)
    xs = []
    for v in (1, 2):
        k, j, i = np.nonzero(m == v)
        if len(i) == 0:
            print("missing side %d" % v)
            return
        xs.append((s[0] @ np.array([i.mean(), j.mean(), k.mean(), 1.0])))
    # RAS: world x grows towards the patient's right
    print("ok right %.1f left %.1f" % tuple(xs) if xs[0] > xs[1]
          else "swapped right %.1f left %.1f" % tuple(xs))


def cmd_crop(args):
    hdr, a = read(args[0])
    k0, k1 = int(args[2]), int(args[3])
    write(args[1], hdr, a[k0:k1])


def reoriented(hdr, a, how):
    """The same voxels stored another way, the sform saying so: "swapij"
    exchanges the first two axes (nifti_io's general path), "flipk" reverses
    the third (its in-place flips)."""
    hdr = bytearray(hdr)
    m = sform(hdr)
    if how == "swapij":
        a = a.transpose(0, 2, 1)
        m[:, [0, 1]] = m[:, [1, 0]]
        pix = list(struct.unpack("<8f", hdr[76:108]))
        pix[1], pix[2] = pix[2], pix[1]
        struct.pack_into("<8f", hdr, 76, *pix)
    elif how == "flipk":
        a = a[::-1]
        m[:, 3] += m[:, 2] * (a.shape[0] - 1)
        m[:, 2] = -m[:, 2]
    struct.pack_into("<12f", hdr, 280, *m.flatten())
    return hdr, np.ascontiguousarray(a)


def cmd_reorient(args):
    hdr, a = read(args[0])
    hdr, a = reoriented(hdr, a, args[2])
    write(args[1], hdr, a)


def cmd_same_after(args):
    """MASK_REORIENTED HOW MASK: the reoriented run's mask, stored back the
    first way, equals the first run's."""
    _, a = read(args[0])
    _, b = read(args[2])
    back = a.transpose(0, 2, 1) if args[1] == "swapij" else a[::-1]
    print("same" if (back == b).all() else "differ in %d voxels" % int((back != b).sum()))


def ball(shape, centre, r):
    k, j, i = np.ogrid[:shape[0], :shape[1], :shape[2]]
    # 3 mm voxels, isotropic: r in voxels; one slice above and below
    return ((i - centre[2]) ** 2 + (j - centre[1]) ** 2 <= r * r) & (abs(k - centre[0]) <= 1)


def paint(ct, truth, rng):
    """Lesions inside the reference lung, against the pleura and in the
    dependent lung, and an effusion-like patch outside it. In file order:
    i grows towards the patient's right, j towards anterior (RAS)."""
    lung = truth > 0
    patches = np.zeros(ct.shape, np.uint8)  # 1 lesion, 2 effusion
    out = ct.copy()
    specs = [  # slice, side, where, HU range, radius
        (28, 1, "lateral", (0, 60), 2.5),      # consolidation, right chest wall
        (27, 2, "lateral", (-700, -300), 2.5),  # ground glass, left chest wall
        (27, 1, "posterior", (0, 60), 2.5),    # dependent consolidation, right
        (28, 2, "posterior", (-700, -300), 2.5),  # dependent ground glass, left
    ]
    for k, side, where, (lo, hi), r in specs:
        j, i = np.nonzero(truth[k] == side)
        if where == "lateral":
            # the right lung's chest wall is at high i, the left's at low i
            jm = int(np.median(j))
            row = i[j == jm] if (j == jm).any() else i
            c = (k, jm, row.max() if side == 1 else row.min())
        else:  # posterior: lowest j (RAS j grows anterior)
            sel = j == j.min()
            c = (k, j.min(), int(np.median(i[sel])))
        b = ball(ct.shape, c, r) & lung
        out[b] = rng.integers(lo, hi + 1, size=int(b.sum()))
        patches[b] = 1
    # effusion-like: tissue behind the right lung's base, outside any lung
    k = 26
    j, i = np.nonzero(truth[k] == 1)
    c = (k, max(j.min() - 3, 0), int(np.median(i[j == j.min()])))
    b = ball(ct.shape, c, 3) & ~lung & (ct > -200)
    out[b] = rng.integers(5, 25, size=int(b.sum()))
    patches[b] = 2
    return out, patches


def cmd_bridge(args):
    """CT TRUTH OUT BRIDGE: the two lungs joined in slices 26..29 by a band
    of lung (-850 HU), 2 voxels thick, from the right lung's most medial
    voxel to the left's: one 3-D component, which the sides must cut."""
    hdr, ct = read(args[0])
    _, truth = read(args[1])
    out = ct.copy()
    band = np.zeros(ct.shape, np.uint8)
    for k in range(26, 30):
        jr, ir = np.nonzero(truth[k] == 1)
        jl, il = np.nonzero(truth[k] == 2)
        a = (jr[ir.argmin()], ir.min())   # right lung: i grows to the right
        b = (jl[il.argmax()], il.max())
        for i in range(b[1], a[1] + 1):
            j = int(round(b[0] + (a[0] - b[0]) * (i - b[1]) / max(a[1] - b[1], 1)))
            band[k, j:j + 2, i] = 1
    band[truth > 0] = 0
    out[band > 0] = -850
    write(args[2], hdr, out)
    write(args[3], hdr, band)


def cmd_bridge_check(args):
    """LUNGS TRUTH BRIDGE: per-side Dice off the band, and where the band's
    voxels went (both sides, each mostly on its own half)."""
    _, m = read(args[0])
    _, t = read(args[1])
    _, b = read(args[2])
    off = b == 0
    r, l = dice((m == 1) & off, t == 1), dice((m == 2) & off, t == 2)
    k, j, i = np.nonzero(b)
    mid = (i.min() + i.max()) / 2.0
    lab = m[k, j, i]
    # RAS: the right half of the band is at high i
    wrong = int(((lab == 1) & (i < mid - 3)).sum() + ((lab == 2) & (i > mid + 3)).sum())
    print("right=%.4f left=%.4f band_right=%d band_left=%d band_wrong_side=%d"
          % (r, l, int((lab == 1).sum()), int((lab == 2).sum()), wrong))


def cmd_phantom(args):
    """OUT_CT OUT_TRUTH OUT_AIRWAY: a chest phantom with a trachea: body
    (40 HU), two lungs (-850 HU) in slices 5..45, and a trachea (-1000 HU,
    11 mm across) from the top slice down to a carina at slice 38, whose
    bronchi run into the lungs' medial sides by slice 30. 0.7 x 0.7 x 2 mm,
    stored in the canonical order (i towards the patient's left, j
    posterior: an sform of -0.7, -0.7, 2). Truth: 1 right lung, 2 left;
    airway: the lumens."""
    rng = np.random.default_rng(3)
    nz, ny, nx = 60, 200, 256
    k, j, i = np.mgrid[:nz, :ny, :nx].astype(np.float32)
    body = ((i - 128) / 118) ** 2 + ((j - 100) / 88) ** 2 <= 1
    ct = np.where(body, 40, -1000).astype(np.float32)
    truth = np.zeros((nz, ny, nx), np.uint8)
    prof = np.clip(np.sin(np.pi * (k - 3) / 44), 0, 1)  # 0 outside 3..47
    for side, cx in ((1, 72), (2, 184)):
        ax, ay = 38 * np.sqrt(prof) + 1e-3, 58 * np.sqrt(prof) + 1e-3
        lung = (((i - cx) / ax) ** 2 + ((j - 108) / ay) ** 2 <= 1) & (k >= 5) & (k <= 45)
        truth[lung] = side
        ct[lung] = -850
    airway = np.zeros((nz, ny, nx), np.uint8)
    for z in range(nz):
        if z >= 38:
            centres = [(128.0, 55.0, 8.0)]
        elif z >= 30:
            t = (38 - z) / 8.0
            centres = [(128 - 40 * t, 55 + 20 * t, 5.0), (128 + 40 * t, 55 + 20 * t, 5.0)]
        else:
            centres = []
        for cx, cy, r in centres:
            lumen = ((i[z] - cx) ** 2 + (j[z] - cy) ** 2 <= r * r)
            airway[z][lumen] = 1
            ct[z][lumen] = -1000
    truth[airway > 0] = 0
    ct += rng.normal(0, 25, ct.shape)
    ct = np.clip(np.round(ct), -1024, 3000).astype(np.int16)
    hdr = bytearray(352)
    struct.pack_into("<i", hdr, 0, 348)
    struct.pack_into("<8h", hdr, 40, 3, nx, ny, nz, 1, 1, 1, 1)
    struct.pack_into("<hh", hdr, 70, 4, 16)
    struct.pack_into("<8f", hdr, 76, 1, 0.7, 0.7, 2.0, 0, 0, 0, 0)
    struct.pack_into("<f", hdr, 108, 352.0)
    struct.pack_into("<ff", hdr, 112, 1.0, 0.0)
    hdr[123] = 10
    struct.pack_into("<hh", hdr, 252, 0, 1)
    struct.pack_into("<12f", hdr, 280, -0.7, 0, 0, 90, 0, -0.7, 0, 70, 0, 0, 2.0, 0)
    hdr[344:348] = b"n+1\0"
    write(args[0], hdr, ct)
    write(args[1], hdr, truth)
    write(args[2], hdr, airway)


def cmd_airway_check(args):
    """LUNGS TRUTH AIRWAY: mask voxels in the trachea above the carina (k >=
    38), in all lumens, and per-side Dice."""
    _, m = read(args[0])
    _, t = read(args[1])
    _, a = read(args[2])
    trach = (a > 0) & (np.arange(a.shape[0])[:, None, None] >= 38)
    print("trachea_in=%d lumen_in=%d right=%.4f left=%.4f" % (
        int(((m > 0) & trach).sum()), int(((m > 0) & (a > 0)).sum()),
        dice(m == 1, t == 1), dice(m == 2, t == 2)))


def cmd_paint(args):
    hdr, ct = read(args[0])
    _, truth = read(args[1])
    out, patches = paint(ct, truth, np.random.default_rng(1))
    write(args[2], hdr, out)
    write(args[3], hdr, patches)
    print("lesion=%d effusion=%d" % ((patches == 1).sum(), (patches == 2).sum()))


def cmd_patches(args):
    _, m = read(args[0])
    _, p = read(args[1])
    _, t = read(args[2])
    m = m > 0
    les, eff = p == 1, p == 2
    print("lesion_in=%.4f effusion_in=%.4f dice=%.4f" % (
        (m & les).sum() / max(les.sum(), 1), (m & eff).sum() / max(eff.sum(), 1),
        dice(m, t > 0)))


if __name__ == "__main__":
    globals()["cmd_" + sys.argv[1]](sys.argv[2:])
