/* The image buffer every stage passes along. Rows are contiguous with a
 * stride in bytes, so opencv_c can wrap it as a cv::Mat without copying. */
#ifndef KMS_IMAGE_H
#define KMS_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most pixels (voxels for volumes) one input may have, unless the user
 * says otherwise (--max-pixels): 2^28, a 512 x 512 x 1024 CT. The lung
 * pipeline peaks at tens of bytes a voxel, so this keeps one input within
 * a 24 GiB machine; -j N inputs run at once. */
#define KMS_MAX_PIXELS_DEFAULT ((size_t)1 << 28)

/* limit, or the default for 0. */
static inline size_t kms_max_pixels(size_t limit)
{
    return limit ? limit : KMS_MAX_PIXELS_DEFAULT;
}

typedef enum kms_depth {
    KMS_DEPTH_U8,  /* uint8_t: 8-bit PNG/JPEG, labels, masks */
    KMS_DEPTH_S16, /* int16_t: CT in Hounsfield units */
    KMS_DEPTH_U16, /* uint16_t */
    KMS_DEPTH_S32, /* int32_t: connected-component labels */
    KMS_DEPTH_F32  /* float: scaled intensities, k-means samples */
} kms_depth;

typedef struct kms_image {
    int width;
    int height;
    int channels;     /* 1, 3 (BGR, OpenCV order) or 4 (BGRA) */
    kms_depth depth;
    size_t stride;    /* bytes between row starts */
    void *data;       /* owned by the image; NULL when empty */
} kms_image;

/* Bytes of one sample of this depth. */
size_t kms_depth_size(kms_depth depth);
const char *kms_depth_name(kms_depth depth);

/* Allocates zeroed pixels; any old data in img is NOT freed (call free first).
 * Fails with KMS_ERR_USAGE for non-positive sizes, KMS_ERR_NOMEM otherwise. */
kms_status kms_image_alloc(kms_image *img, int width, int height, int channels,
                           kms_depth depth, kms_error *err);
/* kms_image_alloc without zeroing the pixels, for images whose every pixel
 * is written next: zeroing a large image costs as much as a pass over it. */
kms_status kms_image_alloc_raw(kms_image *img, int width, int height,
                               int channels, kms_depth depth, kms_error *err);
/* Frees the pixels and empties img; NULL and empty images are no-ops. */
void kms_image_free(kms_image *img);
/* Deep copy into dst (dst's old data is freed first). */
kms_status kms_image_copy(kms_image *dst, const kms_image *src, kms_error *err);
/* Moves src into dst (dst freed first); src becomes empty. */
void kms_image_move(kms_image *dst, kms_image *src);

/* rows y0 .. y0 + rows - 1 of img as an image that shares img's pixels
 * (never free it): one slice of a volume stack. */
static inline kms_image kms_image_rows(const kms_image *img, int y0, int rows)
{
    kms_image v = *img;
    v.height = rows;
    v.data = (unsigned char *)img->data + (size_t)y0 * img->stride;
    return v;
}

/* The w x h window at (x, y) of img, sharing its pixels (never free it). */
static inline kms_image kms_image_roi(const kms_image *img, int x, int y,
                                      int w, int h)
{
    kms_image v = *img;
    v.width = w;
    v.height = h;
    v.data = (unsigned char *)img->data + (size_t)y * img->stride +
             (size_t)x * (size_t)img->channels * kms_depth_size(img->depth);
    return v;
}

static inline void *kms_image_row(const kms_image *img, int y)
{
    return (unsigned char *)img->data + (size_t)y * img->stride;
}

#ifdef __cplusplus
}
#endif

#endif
