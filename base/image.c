#define _DEFAULT_SOURCE /* madvise's MADV_HUGEPAGE */
#include "image.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

size_t kms_depth_size(kms_depth depth)
{
    switch (depth) {
    case KMS_DEPTH_U8: return 1;
    case KMS_DEPTH_S16:
    case KMS_DEPTH_U16: return 2;
    case KMS_DEPTH_S32:
    case KMS_DEPTH_F32: return 4;
    }
    abort();
}

const char *kms_depth_name(kms_depth depth)
{
    switch (depth) {
    case KMS_DEPTH_U8: return "8-bit unsigned";
    case KMS_DEPTH_S16: return "16-bit signed";
    case KMS_DEPTH_U16: return "16-bit unsigned";
    case KMS_DEPTH_S32: return "32-bit signed";
    case KMS_DEPTH_F32: return "32-bit float";
    }
    abort();
}

/* Volumes (hundreds of MB) in 2 MB pages where the kernel offers them
 * (transparent huge pages in "madvise" mode): touching them for the first
 * time costs a fault per 2 MB instead of per 4 kB, which is most of the
 * time of a copy of a fresh volume. Small images: plain malloc/calloc.
 * Both are released by free(). */
enum { HUGE_PAGE = 2 << 20, HUGE_MIN = 32 << 20 };

static void *big_alloc(size_t bytes, bool zero)
{
#ifdef MADV_HUGEPAGE
    if (bytes >= HUGE_MIN) {
        void *p = NULL;
        if (posix_memalign(&p, HUGE_PAGE, bytes) != 0)
            return NULL;
        madvise(p, bytes, MADV_HUGEPAGE); /* a hint: failure is harmless */
        if (zero)
            memset(p, 0, bytes);
        return p;
    }
#endif
    return zero ? calloc(1, bytes) : malloc(bytes);
}

/* One allocator for both: zeroed (calloc) or not. */
static kms_status alloc_pixels(kms_image *img, int width, int height,
                               int channels, kms_depth depth, bool zero,
                               kms_error *err)
{
    if (width <= 0 || height <= 0 || channels <= 0 || channels > 4)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "bad image size %dx%dx%d", width, height, channels);
    size_t stride = (size_t)width * (size_t)channels * kms_depth_size(depth);
    void *data = NULL;
    if ((size_t)height <= SIZE_MAX / stride)
        data = big_alloc((size_t)height * stride, zero);
    if (!data)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                             "cannot allocate a %dx%d image", width, height);
    *img = (kms_image){.width = width, .height = height, .channels = channels,
                       .depth = depth, .stride = stride, .data = data};
    return KMS_OK;
}

kms_status kms_image_alloc(kms_image *img, int width, int height, int channels,
                           kms_depth depth, kms_error *err)
{
    return alloc_pixels(img, width, height, channels, depth, true, err);
}

kms_status kms_image_alloc_raw(kms_image *img, int width, int height,
                               int channels, kms_depth depth, kms_error *err)
{
    return alloc_pixels(img, width, height, channels, depth, false, err);
}

void kms_image_free(kms_image *img)
{
    if (!img)
        return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

kms_status kms_image_copy(kms_image *dst, const kms_image *src, kms_error *err)
{
    kms_image tmp = {0};
    kms_status st = kms_image_alloc_raw(&tmp, src->width, src->height,
                                        src->channels, src->depth, err);
    if (st != KMS_OK)
        return st;
    for (int y = 0; y < src->height; y++)
        memcpy(kms_image_row(&tmp, y), kms_image_row(src, y), tmp.stride);
    kms_image_move(dst, &tmp);
    return KMS_OK;
}

void kms_image_move(kms_image *dst, kms_image *src)
{
    if (dst == src)
        return;
    kms_image_free(dst);
    *dst = *src;
    memset(src, 0, sizeof *src);
}
