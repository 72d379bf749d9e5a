"""CT slices the way users really have them, made from upright ones with
their truth: shared by the orientation and DICOM tests."""
import cv2
import numpy as np


def body_centre(a):
    """Centre (x, y) of the largest region above -500 HU: the body."""
    _, _, st, cen = cv2.connectedComponentsWithStats((a > -500).astype(np.uint8))
    return cen[1 + np.argmax(st[1:, cv2.CC_STAT_AREA])]


def crop(a, m, x0, y0, side):
    """side x side from (x0, y0), padding outside, resized back: a zoomed
    reconstruction of the same slice, and its truth."""
    h, w = a.shape
    pa = np.full((h + 2 * side, w + 2 * side), -2000, np.int16)
    pa[side:side + h, side:side + w] = a
    pm = np.zeros(pa.shape, np.uint8)
    pm[side:side + h, side:side + w] = m
    ca = pa[y0 + side:y0 + 2 * side, x0 + side:x0 + 2 * side].astype(np.float32)
    cm = pm[y0 + side:y0 + 2 * side, x0 + side:x0 + 2 * side]
    ra = np.round(cv2.resize(ca, (w, h), interpolation=cv2.INTER_LINEAR)).astype(np.int16)
    rm = cv2.resize(cm, (w, h), interpolation=cv2.INTER_LINEAR)
    return ra, np.where(rm >= 128, 255, 0).astype(np.uint8)


def zoom(a, m, frac=0.7):
    """frac of the field of view around the body: (slice, truth, the new
    pixel size in mm when the old one was 0.7)."""
    side = round(frac * a.shape[1])
    cx, cy = body_centre(a)
    za, zm = crop(a, m, round(cx - side / 2), round(cy - side / 2), side)
    return za, zm, 0.7 * side / a.shape[1]
