#include "mask_ops.h"

#include <stdlib.h>
#include <string.h>

#include "context.h"
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

/* outside[i] = 1 for background pixels 4-connected to the border: one
 * OpenCV flood fill (scanline, fast) from the corner of a copy padded with
 * a ring of background, so every border pixel is reached from one seed. */
static kms_status flood_from_border(const kms_image *mask, uint8_t *outside,
                                    kms_error *err)
{
    enum { REACHED = 128 };
    const int w = mask->width, h = mask->height;
    kms_image pad = {0};
    kms_status st = kms_image_alloc(&pad, w + 2, h + 2, 1, KMS_DEPTH_U8, err);
    if (st != KMS_OK)
        return st;
    for (int y = 0; y < h; y++) {
        const uint8_t *m = kms_image_row(mask, y);
        uint8_t *p = (uint8_t *)kms_image_row(&pad, y + 1) + 1;
        for (int x = 0; x < w; x++)
            p[x] = m[x] ? 255 : 0;
    }
    st = kms_cv_flood_fill(&pad, 0, 0, REACHED, 4, NULL, err);
    for (int y = 0; st == KMS_OK && y < h; y++) {
        const uint8_t *p = (const uint8_t *)kms_image_row(&pad, y + 1) + 1;
        uint8_t *o = outside + (size_t)y * (size_t)w;
        for (int x = 0; x < w; x++)
            o[x] = p[x] == REACHED;
    }
    kms_image_free(&pad);
    return st;
}

/* One slice's holes: what the flood from the border never reaches is
 * enclosed. */
static kms_status fill_slice(kms_image *mask, uint8_t *outside, kms_error *err)
{
    const int w = mask->width, h = mask->height;
    kms_status st = flood_from_border(mask, outside, err);
    for (int y = 0; st == KMS_OK && y < h; y++) {
        uint8_t *row = kms_image_row(mask, y);
        const uint8_t *o = outside + (size_t)y * (size_t)w;
        for (int x = 0; x < w; x++)
            row[x] = o[x] ? row[x] : 255;
    }
    return st;
}

kms_status kms_mask_reach_border(const kms_image *mask, uint8_t *reach,
                                 kms_error *err)
{
    return flood_from_border(mask, reach, err);
}

kms_status kms_mask_fill_holes(kms_image *mask, int slices, kms_error *err)
{
    slices = slices > 1 ? slices : 1;
    int rows = mask->height / slices;
    uint8_t *outside = malloc((size_t)mask->width * (size_t)rows);
    if (!outside)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    kms_status st = KMS_OK;
    for (int z = 0; z < slices && st == KMS_OK; z++) {
        kms_image slice = kms_image_rows(mask, z * rows, rows);
        st = fill_slice(&slice, outside, err);
    }
    free(outside);
    return st;
}

static kms_status morph_slice(const kms_image *src, kms_image *dst, void *arg,
                              kms_error *err)
{
    const int *op_radius = arg;
    return kms_cv_morphology(src, dst, op_radius[0], KMS_CV_MORPH_ELLIPSE,
                             2 * op_radius[1] + 1, 1, err);
}

static kms_status morph(kms_image *mask, int slices, int op, int radius,
                        kms_error *err)
{
    if (radius <= 0)
        return KMS_OK;
    int op_radius[2] = {op, radius};
    return kms_map_slices(mask, slices, morph_slice, op_radius, err);
}

kms_status kms_mask_open(kms_image *mask, int slices, int radius,
                         kms_error *err)
{
    return morph(mask, slices, KMS_CV_MORPH_OPEN, radius, err);
}

kms_status kms_mask_close(kms_image *mask, int slices, int radius,
                          kms_error *err)
{
    return morph(mask, slices, KMS_CV_MORPH_CLOSE, radius, err);
}

/* --- components ------------------------------------------------------------ */

static int32_t find_root(int32_t *parent, int32_t i)
{
    while (parent[i] != i) {
        parent[i] = parent[parent[i]]; /* path halving */
        i = parent[i];
    }
    return i;
}

static void unite(int32_t *parent, int32_t a, int32_t b)
{
    a = find_root(parent, a);
    b = find_root(parent, b);
    if (a != b) {
        if (a < b)
            parent[b] = a;
        else
            parent[a] = b;
    }
}

static double value_at(const kms_image *values, int y, int x)
{
    const void *row = kms_image_row(values, y);
    switch (values->depth) {
    case KMS_DEPTH_U8: return ((const uint8_t *)row)[x];
    case KMS_DEPTH_S16: return ((const int16_t *)row)[x];
    case KMS_DEPTH_U16: return ((const uint16_t *)row)[x];
    case KMS_DEPTH_S32: return ((const int32_t *)row)[x];
    case KMS_DEPTH_F32: return ((const float *)row)[x];
    }
    abort();
}

/* Two passes with union-find over a stack of slices: 6-connected in 3-D,
 * 8-connected within a slice when there is only one (as OpenCV's 2-D
 * default, so thin diagonal bridges join as a person would see them). */
static kms_status label_pixels(const kms_image *mask, int slices,
                               int32_t *labels, int *n, kms_error *err)
{
    const int w = mask->width, rows = mask->height / slices;
    const bool diagonal = slices == 1;
    size_t total = (size_t)w * (size_t)mask->height;
    int32_t *parent = malloc((total / 2 + 2) * sizeof *parent);
    if (!parent)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    size_t cap = total / 2 + 2, next = 1;
    parent[0] = 0;
    for (int z = 0; z < slices; z++) {
        for (int y = 0; y < rows; y++) {
            int gy = z * rows + y;
            const uint8_t *m = kms_image_row(mask, gy);
            int32_t *lab = labels + (size_t)gy * (size_t)w;
            const int32_t *up = y > 0 ? lab - w : NULL;
            const int32_t *below = z > 0 ? lab - (size_t)w * (size_t)rows : NULL;
            for (int x = 0; x < w; x++) {
                lab[x] = 0;
                if (!m[x])
                    continue;
                int32_t l = 0;
                int32_t cand[5] = {x > 0 ? lab[x - 1] : 0, up ? up[x] : 0,
                                   below ? below[x] : 0,
                                   diagonal && up && x > 0 ? up[x - 1] : 0,
                                   diagonal && up && x + 1 < w ? up[x + 1] : 0};
                for (int c = 0; c < 5; c++) {
                    if (!cand[c])
                        continue;
                    if (!l)
                        l = cand[c];
                    else
                        unite(parent, l, cand[c]);
                }
                if (!l) {
                    if (next == cap) {
                        cap *= 2;
                        int32_t *p = realloc(parent, cap * sizeof *p);
                        if (!p) {
                            free(parent);
                            return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0,
                                                 NULL, "out of memory");
                        }
                        parent = p;
                    }
                    parent[next] = (int32_t)next;
                    l = (int32_t)next++;
                }
                lab[x] = l;
            }
        }
    }
    /* final labels 1..n in order of first appearance: deterministic */
    int32_t *final = calloc(next, sizeof *final);
    if (!final) {
        free(parent);
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    }
    int count = 0;
    for (size_t i = 0; i < total; i++) {
        if (!labels[i])
            continue;
        int32_t r = find_root(parent, labels[i]);
        if (!final[r])
            final[r] = ++count;
        labels[i] = final[r];
    }
    free(final);
    free(parent);
    *n = count;
    return KMS_OK;
}

kms_status kms_mask_label(const kms_image *mask, int slices,
                          const kms_image *values, int32_t **labels_out,
                          kms_component **comps_out, int *n_out,
                          kms_error *err)
{
    slices = slices > 1 ? slices : 1;
    const int w = mask->width, rows = mask->height / slices;
    size_t total = (size_t)w * (size_t)mask->height;
    int32_t *labels = malloc(total * sizeof *labels);
    kms_component *comps = NULL;
    int n = 0;
    if (!labels)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    kms_status st;
    if (slices == 1) {
        /* OpenCV's labeller (8-connected) beats a union-find in 2-D */
        kms_image lab = {0};
        st = kms_cv_connected_components(mask, &lab, 8, &n, NULL, NULL, err);
        if (st == KMS_OK) {
            n -= 1; /* OpenCV counts the background */
            for (int y = 0; y < mask->height; y++)
                memcpy(labels + (size_t)y * (size_t)w, kms_image_row(&lab, y),
                       (size_t)w * sizeof *labels);
        }
        kms_image_free(&lab);
    } else {
        st = label_pixels(mask, slices, labels, &n, err);
    }
    if (st != KMS_OK)
        goto out;
    comps = calloc((size_t)n + 1, sizeof *comps);
    if (!comps) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    for (int c = 1; c <= n; c++) {
        comps[c].x0 = comps[c].y0 = comps[c].z0 = 1 << 30;
        comps[c].x1 = comps[c].y1 = comps[c].z1 = -1;
    }
    for (int gy = 0; gy < mask->height; gy++) {
        int z = gy / rows, y = gy % rows;
        const int32_t *lab = labels + (size_t)gy * (size_t)w;
        for (int x = 0; x < w; x++) {
            if (!lab[x])
                continue;
            kms_component *c = &comps[lab[x]];
            c->area++;
            c->x0 = x < c->x0 ? x : c->x0;
            c->x1 = x > c->x1 ? x : c->x1;
            c->y0 = y < c->y0 ? y : c->y0;
            c->y1 = y > c->y1 ? y : c->y1;
            c->z0 = z < c->z0 ? z : c->z0;
            c->z1 = z > c->z1 ? z : c->z1;
            if (values)
                c->sum += value_at(values, gy, x);
        }
    }
    for (int c = 1; c <= n; c++)
        comps[c].border = comps[c].x0 == 0 || comps[c].y0 == 0 ||
                          comps[c].x1 == w - 1 || comps[c].y1 == rows - 1;
out:
    if (st != KMS_OK) {
        free(labels);
        free(comps);
        return st;
    }
    *labels_out = labels;
    *comps_out = comps;
    *n_out = n;
    return KMS_OK;
}

void kms_mask_keep_labels(kms_image *mask, const int32_t *labels,
                          const bool *keep)
{
    for (int y = 0; y < mask->height; y++) {
        uint8_t *row = kms_image_row(mask, y);
        const int32_t *lab = labels + (size_t)y * (size_t)mask->width;
        for (int x = 0; x < mask->width; x++)
            row[x] = keep[lab[x]] ? 255 : 0;
    }
}

typedef struct comp {
    int label;
    long area;
} comp;

static int by_area_desc(const void *a, const void *b)
{
    const comp *x = a, *y = b;
    if (x->area != y->area)
        return x->area < y->area ? 1 : -1;
    return x->label - y->label; /* stable: lower label first */
}

kms_status kms_mask_filter_components(kms_image *mask, int slices,
                                      long min_area, bool drop_border, int keep,
                                      int *kept, kms_error *err)
{
    int32_t *labels = NULL;
    kms_component *comps = NULL;
    comp *order = NULL;
    bool *keep_label = NULL;
    int count = 0;
    kms_status st = kms_mask_label(mask, slices, NULL, &labels, &comps, &count,
                                   err);
    if (st != KMS_OK)
        return st;
    order = malloc(sizeof *order * ((size_t)count + 1));
    keep_label = calloc((size_t)count + 1, sizeof *keep_label);
    if (!order || !keep_label) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    int n = 0;
    for (int c = 1; c <= count; c++) {
        if (comps[c].area < min_area || (drop_border && comps[c].border))
            continue;
        order[n++] = (comp){c, comps[c].area};
    }
    qsort(order, (size_t)n, sizeof *order, by_area_desc);
    if (keep > 0 && n > keep)
        n = keep;
    for (int i = 0; i < n; i++)
        keep_label[order[i].label] = true;
    kms_mask_keep_labels(mask, labels, keep_label);
    if (kept)
        *kept = n;
out:
    free(labels);
    free(comps);
    free(order);
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
