/* Dihedral transforms of images: the eight ways a 2-D slice can be stored
 * rotated by a multiple of 90 degrees and/or mirrored.
 *
 * An orient code c in 0..7 takes a STORED image to the CANONICAL axial view
 * (anterior at the top, the patient's right on the image's left): first
 * transpose if (c & 4), then flip columns (x -> w - 1 - x) if (c & 1), then
 * flip rows (y -> h - 1 - y) if (c & 2). Readers with a header (DICOM)
 * produce these codes (kms_context.orient). */
#ifndef KMS_ORIENT_H
#define KMS_ORIENT_H

#include <stdbool.h>

#include "error.h"
#include "image.h"

enum {
    KMS_ORIENT_FLIP_X = 1,    /* flip columns */
    KMS_ORIENT_FLIP_Y = 2,    /* flip rows */
    KMS_ORIENT_TRANSPOSE = 4, /* first: swap x and y */
    KMS_ORIENT_CODES = 8
};

/* The codes that rotate an image on screen (y down): ROT90_CW turns it a
 * quarter clockwise, so it undoes a slice stored turned counter-clockwise. */
enum {
    KMS_ORIENT_IDENTITY = 0,
    KMS_ORIENT_ROT180 = KMS_ORIENT_FLIP_X | KMS_ORIENT_FLIP_Y,
    KMS_ORIENT_ROT90_CW = KMS_ORIENT_TRANSPOSE | KMS_ORIENT_FLIP_X,
    KMS_ORIENT_ROT90_CCW = KMS_ORIENT_TRANSPOSE | KMS_ORIENT_FLIP_Y
};

/* The code that undoes code: apply(apply(a, c), inverse(c)) == a. */
int kms_orient_inverse(int code);

/* The code of "first a, then b". */
int kms_orient_compose(int a, int b);

/* Does code swap width and height? */
static inline bool kms_orient_transposes(int code)
{
    return (code & KMS_ORIENT_TRANSPOSE) != 0;
}

/* dst (freed first, then new) = src transformed by code; any depth and
 * channel count; dst is h x w when the code transposes. src and dst must
 * differ. KMS_ERR_USAGE for a code outside 0..7 or an empty src. */
kms_status kms_orient_apply(const kms_image *src, kms_image *dst, int code,
                            kms_error *err);

#endif
