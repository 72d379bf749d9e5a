#include "mask_ops.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <math.h>
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

/* One slice's holes: the components of 0-pixels (4-connected, as runs)
 * that do not reach the border are enclosed. */
static kms_status fill_slice(kms_image *mask, kms_runs *r, kms_error *err)
{
    const int w = mask->width, h = mask->height;
    kms_status st = kms_runs_find(r, mask->data, (ptrdiff_t)mask->stride, w, h,
                                  KMS_RUNS_ZERO | KMS_RUNS_LABEL4, err);
    bool *open = st == KMS_OK ? calloc((size_t)r->n_labels + 1, 1) : NULL;
    if (st == KMS_OK && !open)
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    if (st != KMS_OK)
        return st;
    for (size_t k = 0; k < r->n; k++) {
        const kms_run *u = &r->run[k];
        open[u->label] |= u->y == 0 || u->y == h - 1 || u->x0 == 0 || u->x1 == w;
    }
    for (size_t k = 0; k < r->n; k++)
        if (!open[r->run[k].label])
            memset((uint8_t *)kms_image_row(mask, r->run[k].y) + r->run[k].x0,
                   255, (size_t)(r->run[k].x1 - r->run[k].x0));
    free(open);
    return KMS_OK;
}

kms_status kms_mask_fill_holes(kms_image *mask, int slices, kms_error *err)
{
    slices = slices > 1 ? slices : 1;
    int rows = mask->height / slices;
    kms_runs runs = {0};
    kms_status st = KMS_OK;
    for (int z = 0; z < slices && st == KMS_OK; z++) {
        kms_image slice = kms_image_rows(mask, z * rows, rows);
        st = fill_slice(&slice, &runs, err);
    }
    kms_runs_free(&runs);
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

/* --- runs ------------------------------------------------------------------ */

/* buf with room for need items of size bytes (cap: items it holds now);
 * NULL when out of memory (buf is then left as it was). */
static void *grow(void *buf, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap && buf)
        return buf;
    size_t n = *cap > 1024 ? *cap : 1024;
    while (n < need)
        n *= 2;
    void *p = realloc(buf, n * size);
    if (p)
        *cap = n;
    return p;
}

/* Bit x set where p[x] != 0, for x < n <= 64: 16 pixels per compare. */
static inline uint64_t nonzero_bits(const uint8_t *p, int n)
{
    uint64_t bits = 0;
    int x = 0;
#ifdef __SSE2__
    const __m128i zero = _mm_setzero_si128();
    for (; x + 16 <= n; x += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + x));
        uint32_t z = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero));
        bits |= (uint64_t)(~z & 0xffffu) << x;
    }
#endif
    for (; x < n; x++)
        bits |= (uint64_t)(p[x] != 0) << x;
    return bits;
}

/* Appends the runs of one row (of zero bytes when zeros); room for
 * (width + 1) / 2 more is there. 64 pixels at a time as bits, whose
 * changes from one pixel to the next are the ends of runs. */
static void row_runs(kms_runs *r, const uint8_t *p, int y, bool zeros)
{
    const int w = r->width;
    uint64_t inside = 0; /* 1 while in a run */
    int x0 = 0;
    for (int base = 0; base < w; base += 64) {
        int n = w - base < 64 ? w - base : 64;
        uint64_t valid = n == 64 ? ~(uint64_t)0 : ((uint64_t)1 << n) - 1;
        uint64_t bits = nonzero_bits(p + base, n);
        if (zeros)
            bits = ~bits & valid;
        uint64_t change = (bits ^ (bits << 1 | inside)) & valid;
        while (change) {
            int x = base + __builtin_ctzll(change);
            change &= change - 1;
            if (!inside)
                x0 = x;
            else
                r->run[r->n++] = (kms_run){y, x0, x, 0};
            inside ^= 1;
        }
    }
    if (inside)
        r->run[r->n++] = (kms_run){y, x0, w, 0};
}

static int32_t run_root(int32_t *parent, int32_t i)
{
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

/* Union of the runs of row y with the connected ones of row y - 1 (reach
 * 1: 8-connected, diagonal neighbours too; 0: 4-connected); the root of a
 * set is its first run in raster order. */
static void join_rows(kms_runs *r, int y, int reach)
{
    int32_t *parent = r->parent;
    size_t j = r->row[y - 1], prev_end = r->row[y];
    for (size_t a = r->row[y]; a < r->row[y + 1]; a++) {
        const kms_run *ra = &r->run[a];
        while (j < prev_end && r->run[j].x1 + reach <= ra->x0)
            j++;
        for (size_t k = j; k < prev_end && r->run[k].x0 < ra->x1 + reach; k++) {
            int32_t x = run_root(parent, (int32_t)a);
            int32_t z = run_root(parent, (int32_t)k);
            if (x < z)
                parent[z] = x;
            else if (z < x)
                parent[x] = z;
        }
    }
}

typedef struct root_key {
    uint64_t key;   /* first 2x2 block of the component, raster order */
    int32_t root;
} root_key;

static int by_key(const void *a, const void *b)
{
    const root_key *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key;
}

/* Final labels in OpenCV's order, then the runs grouped by label. All
 * pixels of a 2x2 block are 8-adjacent, so a block belongs to one
 * component and the keys are distinct. */
static kms_status number_components(kms_runs *r, kms_error *err)
{
    int32_t *parent = r->parent;
    uint64_t bw = (uint64_t)(r->width + 1) / 2;
    size_t n_roots = 0;
    for (size_t i = 0; i < r->n; i++)
        n_roots += run_root(parent, (int32_t)i) == (int32_t)i;
    root_key *keys = malloc((n_roots ? n_roots : 1) * sizeof *keys);
    uint64_t *best = malloc((r->n ? r->n : 1) * sizeof *best); /* by root */
    kms_status st = KMS_OK;
    size_t *first = grow(r->first, &r->cap_first, n_roots + 2, sizeof *first);
    if (first)
        r->first = first;
    if (!keys || !best || !first) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < r->n; i++) {
        const kms_run *u = &r->run[i];
        uint64_t k = (uint64_t)(u->y / 2) * bw + (uint64_t)(u->x0 / 2);
        int32_t root = parent[i];
        if (root == (int32_t)i || k < best[root])
            best[root] = k;
    }
    size_t m = 0;
    for (size_t i = 0; i < r->n; i++)
        if (parent[i] == (int32_t)i)
            keys[m++] = (root_key){best[i], (int32_t)i};
    qsort(keys, m, sizeof *keys, by_key);
    for (size_t c = 0; c < m; c++)
        r->run[keys[c].root].label = (int32_t)c + 1;
    r->n_labels = (int)m;
    memset(r->first, 0, (m + 2) * sizeof *r->first);
    for (size_t i = 0; i < r->n; i++) {
        r->run[i].label = r->run[parent[i]].label;
        r->first[r->run[i].label + 1]++;
    }
    for (size_t c = 1; c <= m + 1; c++)
        r->first[c] += r->first[c - 1];
    for (size_t i = 0; i < r->n; i++)
        r->at[r->first[r->run[i].label]++] = i;
    /* the fill advanced first[c] to the start of c + 1: shift back */
    memmove(r->first + 1, r->first, (m + 1) * sizeof *r->first);
    r->first[0] = r->first[1] = 0;
out:
    free(keys);
    free(best);
    return st;
}

kms_status kms_runs_find(kms_runs *r, const uint8_t *px, ptrdiff_t stride,
                         int width, int height, int mode, kms_error *err)
{
    size_t per_row = (size_t)(width + 1) / 2;
    r->width = width;
    r->height = height;
    r->n = 0;
    r->n_labels = 0;
    size_t *row = grow(r->row, &r->cap_row, (size_t)height + 1, sizeof *row);
    if (!row)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    r->row = row;
    for (int y = 0; y < height; y++) {
        kms_run *run = grow(r->run, &r->cap_run, r->n + per_row, sizeof *run);
        if (!run)
            return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                                 "out of memory");
        r->run = run;
        r->row[y] = r->n;
        row_runs(r, px + (ptrdiff_t)y * stride, y, mode & KMS_RUNS_ZERO);
    }
    r->row[height] = r->n;
    if (!(mode & (KMS_RUNS_LABEL4 | KMS_RUNS_LABEL8)))
        return KMS_OK;
    /* parent and at share the run capacity */
    size_t cap = r->cap_run;
    int32_t *parent = realloc(r->parent, (cap ? cap : 1) * sizeof *parent);
    if (parent)
        r->parent = parent;
    size_t *at = parent ? realloc(r->at, (cap ? cap : 1) * sizeof *at) : NULL;
    if (at)
        r->at = at;
    if (!parent || !at)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    for (size_t i = 0; i < r->n; i++)
        parent[i] = (int32_t)i;
    for (int y = 1; y < height; y++)
        join_rows(r, y, mode & KMS_RUNS_LABEL8 ? 1 : 0);
    for (size_t i = 0; i < r->n; i++)
        parent[i] = run_root(parent, (int32_t)i);
    return number_components(r, err);
}

kms_status kms_runs_reserve(kms_runs *r, int width, int height, size_t runs,
                            kms_error *err)
{
    kms_run *run = grow(r->run, &r->cap_run, runs ? runs : 1, sizeof *run);
    if (run)
        r->run = run;
    size_t *row = grow(r->row, &r->cap_row, (size_t)height + 1, sizeof *row);
    if (row)
        r->row = row;
    if (!run || !row)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    r->width = width;
    r->height = height;
    r->n = 0;
    r->n_labels = 0;
    return KMS_OK;
}

void kms_runs_free(kms_runs *r)
{
    free(r->run);
    free(r->row);
    free(r->first);
    free(r->at);
    free(r->parent);
    memset(r, 0, sizeof *r);
}

static void paint_run(const kms_run *u, kms_image *dst, int ox, int oy,
                      uint8_t value)
{
    int y = u->y - oy, x0 = u->x0 - ox, x1 = u->x1 - ox;
    if (y < 0 || y >= dst->height)
        return;
    x0 = x0 < 0 ? 0 : x0;
    x1 = x1 > dst->width ? dst->width : x1;
    if (x0 < x1)
        memset((uint8_t *)kms_image_row(dst, y) + x0, value, (size_t)(x1 - x0));
}

void kms_runs_paint(const kms_runs *r, int c, kms_image *dst, int ox, int oy,
                    uint8_t value)
{
    if (c == 0) {
        for (size_t i = 0; i < r->n; i++)
            paint_run(&r->run[i], dst, ox, oy, value);
        return;
    }
    for (size_t k = r->first[c]; k < r->first[c + 1]; k++)
        paint_run(&r->run[r->at[k]], dst, ox, oy, value);
}

/* --- erosion of runs ------------------------------------------------------ */

/* Half-widths of OpenCV's elliptic element of radius r, row by row. */
static void ellipse_widths(int r, int *hw)
{
    double inv_r2 = r ? 1.0 / ((double)r * r) : 0;
    for (int i = 0; i <= 2 * r; i++) {
        int dy = i - r;
        hw[i] = (int)lrint(r * sqrt((double)(r * r - dy * dy) * inv_r2));
    }
}

kms_status kms_eroder_init(kms_eroder *e, int width, int R, kms_error *err)
{
    size_t cap = 2 * ((size_t)width / 2 + 2); /* a row's runs, as pairs */
    memset(e, 0, sizeof *e);
    if (R < 0 || R > KMS_ERODE_MAX_R)
        return kms_error_set(err, KMS_ERR_INTERNAL, NULL, 0, NULL,
                             "erosion radius %d is not supported", R);
    e->R = R;
    ellipse_widths(R, e->hw);
    e->buf = malloc(2 * cap * sizeof *e->buf);
    if (!e->buf)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    e->cur = e->buf;
    e->next = e->buf + cap;
    return KMS_OK;
}

void kms_eroder_free(kms_eroder *e)
{
    free(e->buf);
    memset(e, 0, sizeof *e);
}

/* Run k of r shrunk by hw at both ends; a run reaching a side of the
 * image keeps it (beyond it counts as set). false when nothing is left. */
static inline bool shrunk_run(const kms_runs *r, size_t k, int hw, int *x0,
                              int *x1)
{
    *x0 = r->run[k].x0 == 0 ? 0 : r->run[k].x0 + hw;
    *x1 = r->run[k].x1 == r->width ? r->width : r->run[k].x1 - hw;
    return *x0 < *x1;
}

/* The intervals iv (n, sorted) intersected with row y's runs shrunk by hw,
 * into out; their count. */
static int intersect_row(const int *iv, int n, const kms_runs *r, int y,
                         int hw, int *out)
{
    int m = 0, i = 0;
    size_t k = r->row[y], end = r->row[y + 1];
    int b0 = 0, b1 = 0;
    while (k < end && !shrunk_run(r, k, hw, &b0, &b1))
        k++;
    while (i < n && k < end) {
        int x0 = iv[2 * i] > b0 ? iv[2 * i] : b0;
        int x1 = iv[2 * i + 1] < b1 ? iv[2 * i + 1] : b1;
        if (x0 < x1) {
            out[2 * m] = x0;
            out[2 * m + 1] = x1;
            m++;
        }
        if (iv[2 * i + 1] < b1) {
            i++;
            continue;
        }
        do
            k++;
        while (k < end && !shrunk_run(r, k, hw, &b0, &b1));
    }
    return m;
}

int kms_eroder_row(kms_eroder *e, const kms_runs *r, int y)
{
    /* the row itself first: the erosion lies within its runs */
    int n = 1;
    e->cur[0] = 0;
    e->cur[1] = r->width;
    n = intersect_row(e->cur, n, r, y, e->hw[e->R], e->next);
    int *t = e->cur;
    e->cur = e->next;
    e->next = t;
    for (int d = 1; d <= e->R && n > 0; d++) {
        for (int side = -1; side <= 1 && n > 0; side += 2) {
            int yy = y + side * d;
            if (yy < 0 || yy >= r->height)
                continue; /* outside the image: no limit */
            n = intersect_row(e->cur, n, r, yy, e->hw[e->R + side * d],
                              e->next);
            t = e->cur;
            e->cur = e->next;
            e->next = t;
        }
    }
    return n;
}

/* --- closing on bits ------------------------------------------------------ */

/* A binary image as bits, 64 pixels a word: pixel x of row y is bit x % 64
 * of row(y)[x / 64]. A word of margin on both sides of each row and two
 * rows above and below, so the 5x5 neighbourhood needs no bounds checks. */
typedef struct bitmap {
    uint64_t *buf;
    size_t stride;      /* words per row, margins included */
    int w, h, nw;       /* pixels, rows, words of pixels per row */
} bitmap;

static inline uint64_t *bit_row(const bitmap *b, int y)
{
    return b->buf + (size_t)(y + 2) * b->stride + 1;
}

static kms_status bitmap_alloc(bitmap *b, int w, int h, kms_error *err)
{
    b->w = w;
    b->h = h;
    b->nw = (w + 63) / 64;
    b->stride = (size_t)b->nw + 2;
    b->buf = malloc(b->stride * (size_t)(h + 4) * sizeof *b->buf);
    return b->buf ? KMS_OK
                  : kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                                  "out of memory");
}

/* What lies outside the image (margins, and the bits past w in each row's
 * last word) set to v: none before a dilation, all before an erosion, as
 * OpenCV's borders take it. */
static void bitmap_frame(bitmap *b, bool v)
{
    const uint64_t fill = v ? ~(uint64_t)0 : 0;
    const int tail = b->w % 64;
    const uint64_t inside = tail ? ((uint64_t)1 << tail) - 1 : ~(uint64_t)0;
    for (int y = -2; y < b->h + 2; y++) {
        uint64_t *r = bit_row(b, y);
        if (y < 0 || y >= b->h) {
            for (int k = -1; k <= b->nw; k++)
                r[k] = fill;
            continue;
        }
        r[-1] = r[b->nw] = fill;
        r[b->nw - 1] = (r[b->nw - 1] & inside) | (fill & ~inside);
    }
}

/* The 5-pixel extreme (OR to dilate, AND to erode) around each pixel of a
 * row, across word boundaries. */
static inline uint64_t across5(const uint64_t *r, int k, bool erode)
{
    uint64_t v = r[k], a = r[k - 1], b = r[k + 1];
    uint64_t l1 = v << 1 | a >> 63, l2 = v << 2 | a >> 62;
    uint64_t r1 = v >> 1 | b << 63, r2 = v >> 2 | b << 62;
    return erode ? v & l1 & l2 & r1 & r2 : v | l1 | l2 | r1 | r2;
}

/* One dilation (erosion) of src, framed for it, by OpenCV's 5x5 ellipse
 * into dst: rows of 1, 5, 5, 5 and 1 pixels, so the middle three rows'
 * 5-wide extremes (in tmp) and the single pixels above and below. dst's
 * bits past w are left for the next bitmap_frame. */
static void morph5(const bitmap *src, bitmap *tmp, bitmap *dst, bool erode)
{
    for (int y = -1; y <= src->h; y++) {
        const uint64_t *r = bit_row(src, y);
        uint64_t *t = bit_row(tmp, y);
        for (int k = 0; k < src->nw; k++)
            t[k] = across5(r, k, erode);
    }
    for (int y = 0; y < src->h; y++) {
        const uint64_t *u = bit_row(src, y - 2), *d = bit_row(src, y + 2);
        const uint64_t *t0 = bit_row(tmp, y - 1), *t1 = bit_row(tmp, y),
                       *t2 = bit_row(tmp, y + 1);
        uint64_t *o = bit_row(dst, y);
        for (int k = 0; k < src->nw; k++)
            o[k] = erode ? u[k] & t0[k] & t1[k] & t2[k] & d[k]
                         : u[k] | t0[k] | t1[k] | t2[k] | d[k];
    }
}

/* `steps` dilations, then as many erosions, by the 5x5 ellipse: what
 * cv::morphologyEx does with `steps` iterations. The result ends in *a (a
 * and b are swapped as they take turns). */
static kms_status close5(bitmap *a, bitmap *b, int steps, kms_error *err)
{
    bitmap tmp = {0};
    if (steps <= 0)
        return KMS_OK;
    kms_status st = bitmap_alloc(&tmp, a->w, a->h, err);
    for (int op = 0; st == KMS_OK && op < 2; op++) {
        bool erode = op == 1;
        for (int i = 0; i < steps; i++) {
            bitmap_frame(a, erode);
            bitmap_frame(b, erode);
            morph5(a, &tmp, b, erode);
            bitmap t = *a;
            *a = *b;
            *b = t;
        }
    }
    free(tmp.buf);
    return st;
}

/* Row y of b into 0/255 bytes, run by run of set bits. */
static void unpack_row(const bitmap *b, int y, uint8_t *out)
{
    const uint64_t *r = bit_row(b, y);
    const int tail = b->w % 64;
    uint64_t inside = 0;
    int x0 = 0;
    memset(out, 0, (size_t)b->w);
    for (int k = 0; k < b->nw; k++) {
        uint64_t v = r[k];
        if (k == b->nw - 1 && tail)
            v &= ((uint64_t)1 << tail) - 1; /* bits past w */
        uint64_t change = v ^ (v << 1 | inside);
        while (change) {
            int x = 64 * k + __builtin_ctzll(change);
            change &= change - 1;
            if (!inside)
                x0 = x;
            else
                memset(out + x0, 255, (size_t)(x - x0));
            inside ^= 1;
        }
    }
    if (inside)
        memset(out + x0, 255, (size_t)(b->w - x0));
}

kms_status kms_mask_close5(kms_image *mask, int iterations, kms_error *err)
{
    if (iterations <= 0)
        return KMS_OK;
    bitmap a = {0}, b = {0};
    kms_status st = bitmap_alloc(&a, mask->width, mask->height, err);
    if (st == KMS_OK)
        st = bitmap_alloc(&b, mask->width, mask->height, err);
    for (int y = 0; st == KMS_OK && y < mask->height; y++) {
        const uint8_t *p = kms_image_row(mask, y);
        uint64_t *w = bit_row(&a, y);
        for (int x = 0; x < mask->width; x += 64)
            w[x / 64] = nonzero_bits(p + x, mask->width - x < 64
                                                ? mask->width - x
                                                : 64);
    }
    if (st == KMS_OK)
        st = close5(&a, &b, iterations, err);
    for (int y = 0; st == KMS_OK && y < mask->height; y++)
        unpack_row(&a, y, kms_image_row(mask, y));
    free(a.buf);
    free(b.buf);
    return st;
}
