#include "mask_ops.h"

#include <stdlib.h>
#include <string.h>

#include "opencv_c.h"

kms_status kms_mask_from_labels(const int32_t *labels, int width, int height,
                                uint64_t ranks, kms_image *mask,
                                kms_error *err)
{
    kms_image m = {0};
    kms_status st = kms_image_alloc(&m, width, height, 1, KMS_DEPTH_U8, err);
    if (st != KMS_OK)
        return st;
    for (int y = 0; y < height; y++) {
        uint8_t *row = kms_image_row(&m, y);
        const int32_t *lab = labels + (size_t)y * (size_t)width;
        for (int x = 0; x < width; x++)
            row[x] = lab[x] >= 0 && lab[x] < 64 && (ranks >> lab[x] & 1) ? 255 : 0;
    }
    kms_image_move(mask, &m);
    return KMS_OK;
}

long kms_mask_area(const kms_image *mask)
{
    long n = 0;
    for (int y = 0; y < mask->height; y++) {
        const uint8_t *row = kms_image_row(mask, y);
        for (int x = 0; x < mask->width; x++)
            n += row[x] != 0;
    }
    return n;
}

kms_status kms_mask_fill_holes(kms_image *mask, kms_error *err)
{
    const int w = mask->width, h = mask->height;
    size_t n = (size_t)w * (size_t)h;
    /* breadth-first search over background from the border; what it never
     * reaches is enclosed, i.e. a hole */
    uint8_t *outside = calloc(n, 1);
    int32_t *queue = malloc(n * sizeof *queue);
    if (!outside || !queue) {
        free(outside);
        free(queue);
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    }
    size_t head = 0, tail = 0;
#define BG(x, y) (((const uint8_t *)kms_image_row(mask, (y)))[(x)] == 0)
#define SEED(x, y)                                                             \
    do {                                                                       \
        size_t i_ = (size_t)(y) * (size_t)w + (size_t)(x);                     \
        if (!outside[i_] && BG((x), (y))) {                                    \
            outside[i_] = 1;                                                   \
            queue[tail++] = (int32_t)i_;                                       \
        }                                                                      \
    } while (0)
    for (int x = 0; x < w; x++) {
        SEED(x, 0);
        SEED(x, h - 1);
    }
    for (int y = 0; y < h; y++) {
        SEED(0, y);
        SEED(w - 1, y);
    }
    while (head < tail) {
        int i = queue[head++], x = i % w, y = i / w;
        if (x > 0)
            SEED(x - 1, y);
        if (x + 1 < w)
            SEED(x + 1, y);
        if (y > 0)
            SEED(x, y - 1);
        if (y + 1 < h)
            SEED(x, y + 1);
    }
#undef SEED
#undef BG
    for (int y = 0; y < h; y++) {
        uint8_t *row = kms_image_row(mask, y);
        for (int x = 0; x < w; x++)
            if (!outside[(size_t)y * (size_t)w + (size_t)x])
                row[x] = 255;
    }
    free(outside);
    free(queue);
    return KMS_OK;
}

static kms_status morph(kms_image *mask, int op, int radius, kms_error *err)
{
    if (radius <= 0)
        return KMS_OK;
    return kms_cv_morphology(mask, mask, op, KMS_CV_MORPH_ELLIPSE,
                             2 * radius + 1, 1, err);
}

kms_status kms_mask_open(kms_image *mask, int radius, kms_error *err)
{
    return morph(mask, KMS_CV_MORPH_OPEN, radius, err);
}

kms_status kms_mask_close(kms_image *mask, int radius, kms_error *err)
{
    return morph(mask, KMS_CV_MORPH_CLOSE, radius, err);
}

typedef struct comp {
    int label;
    int area;
} comp;

static int by_area_desc(const void *a, const void *b)
{
    const comp *x = a, *y = b;
    if (x->area != y->area)
        return x->area < y->area ? 1 : -1;
    return x->label - y->label; /* stable: lower label first */
}

kms_status kms_mask_filter_components(kms_image *mask, long min_area,
                                      bool drop_border, int keep, int *kept,
                                      kms_error *err)
{
    kms_image labels = {0};
    int32_t *stats = NULL;
    int count = 0;
    comp *comps = NULL;
    uint8_t *keep_label = NULL;
    kms_status st = kms_cv_connected_components(mask, &labels, 8, &count, &stats,
                                                NULL, err);
    if (st != KMS_OK)
        goto out;
    comps = malloc(sizeof *comps * (size_t)count);
    keep_label = calloc((size_t)count, 1);
    if (!comps || !keep_label) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    int n = 0;
    for (int c = 1; c < count; c++) {
        const int32_t *s = stats + (size_t)c * KMS_CV_CC_STAT_MAX;
        bool border = s[KMS_CV_CC_STAT_LEFT] == 0 || s[KMS_CV_CC_STAT_TOP] == 0 ||
                      s[KMS_CV_CC_STAT_LEFT] + s[KMS_CV_CC_STAT_WIDTH] >= mask->width ||
                      s[KMS_CV_CC_STAT_TOP] + s[KMS_CV_CC_STAT_HEIGHT] >= mask->height;
        if (s[KMS_CV_CC_STAT_AREA] < min_area || (drop_border && border))
            continue;
        comps[n].label = c;
        comps[n].area = s[KMS_CV_CC_STAT_AREA];
        n++;
    }
    qsort(comps, (size_t)n, sizeof *comps, by_area_desc);
    if (keep > 0 && n > keep)
        n = keep;
    for (int i = 0; i < n; i++)
        keep_label[comps[i].label] = 1;
    for (int y = 0; y < mask->height; y++) {
        uint8_t *row = kms_image_row(mask, y);
        const int32_t *lab = kms_image_row(&labels, y);
        for (int x = 0; x < mask->width; x++)
            row[x] = keep_label[lab[x]] ? 255 : 0;
    }
    if (kept)
        *kept = n;
out:
    kms_image_free(&labels);
    free(stats);
    free(comps);
    free(keep_label);
    return st;
}

kms_status kms_mask_resize(kms_image *mask, int width, int height,
                           kms_error *err)
{
    if (mask->width == width && mask->height == height)
        return KMS_OK;
    return kms_cv_resize(mask, mask, width, height, 0, 0, KMS_CV_INTER_NEAREST,
                         err);
}
