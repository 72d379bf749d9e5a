/* Dihedral transforms (orient.h): one pass that reads each destination
 * pixel from where the code says it came from, for any pixel size. */
#include "orient.h"

#include <stdint.h>
#include <string.h>

int kms_orient_inverse(int code)
{
    /* flips are involutions and commute; past a transpose, a column flip
     * becomes a row flip: "flip x, then transpose" = "transpose, flip y" */
    if (!(code & KMS_ORIENT_TRANSPOSE))
        return code;
    return KMS_ORIENT_TRANSPOSE | ((code & KMS_ORIENT_FLIP_X) << 1) |
           ((code & KMS_ORIENT_FLIP_Y) >> 1);
}

int kms_orient_compose(int a, int b)
{
    /* bring b's transpose in front of a's flips, swapping them */
    int fa = a & 3;
    if (b & KMS_ORIENT_TRANSPOSE)
        fa = ((fa & 1) << 1) | ((fa & 2) >> 1);
    return ((a ^ b) & KMS_ORIENT_TRANSPOSE) | (fa ^ (b & 3));
}

/* Copies one pixel of n bytes; n is one of a few sizes, so the common ones
 * get a fixed-size copy the compiler turns into one load and store. */
static inline void copy_px(unsigned char *d, const unsigned char *s, size_t n)
{
    switch (n) {
    case 1: *d = *s; return;
    case 2: memcpy(d, s, 2); return;
    case 4: memcpy(d, s, 4); return;
    default: memcpy(d, s, n);
    }
}

kms_status kms_orient_apply(const kms_image *src, kms_image *dst, int code,
                            kms_error *err)
{
    if (code < 0 || code >= KMS_ORIENT_CODES || !src || !src->data ||
        src == dst)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "orient: code %d of 0..7 on an image", code);
    bool tr = code & KMS_ORIENT_TRANSPOSE;
    int w = tr ? src->height : src->width, h = tr ? src->width : src->height;
    kms_image_free(dst);
    kms_status st = kms_image_alloc_raw(dst, w, h, src->channels, src->depth,
                                        err);
    if (st != KMS_OK)
        return st;
    size_t px = (size_t)src->channels * kms_depth_size(src->depth);
    bool fx = code & KMS_ORIENT_FLIP_X, fy = code & KMS_ORIENT_FLIP_Y;
    for (int y = 0; y < h; y++) {
        /* destination (x, y) came from (u, v) of the transposed image,
         * u = fx ? w-1-x : x, v = fy ? h-1-y : y; transposed (u, v) is
         * source (v, u) */
        int v = fy ? h - 1 - y : y;
        unsigned char *d = kms_image_row(dst, y);
        if (!tr) {
            const unsigned char *s = kms_image_row(src, v);
            if (!fx) {
                memcpy(d, s, (size_t)w * px);
                continue;
            }
            for (int x = 0; x < w; x++)
                copy_px(d + (size_t)x * px, s + (size_t)(w - 1 - x) * px, px);
            continue;
        }
        const unsigned char *col = (const unsigned char *)src->data +
                                   (size_t)v * px; /* source column v */
        for (int x = 0; x < w; x++) {
            int u = fx ? w - 1 - x : x;
            copy_px(d + (size_t)x * px, col + (size_t)u * src->stride, px);
        }
    }
    return KMS_OK;
}
