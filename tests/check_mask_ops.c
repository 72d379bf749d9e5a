/* Check suite for stages/mask_ops.c against OpenCV: every operation that
 * stands in for an OpenCV one (hole filling, opening and closing, the 5x5
 * closing on bits, erosion of runs, component labels and filters, runs and
 * their 8-connected numbering, nearest resizing) gives the same bytes as
 * OpenCV (through opencv_c) on random masks of many sizes and densities,
 * blobs touching the border, and the real lung masks of samples/masks. */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mask_ops.h"
#include "opencv_c.h"
#include "test_util.h"

#ifndef KMS_SOURCE_DIR
#error "build with -DKMS_SOURCE_DIR=\"<repo root>\""
#endif

/* For loops over pixels and runs: ck_assert reports its location to the
 * runner on every call, which costs more than the work checked. */
#define EXPECT(cond, ...)                                                      \
    do {                                                                       \
        if (!(cond))                                                           \
            ck_abort_msg(__VA_ARGS__);                                         \
    } while (0)
#define EXPECT_CMP(a, op, b)                                                   \
    EXPECT((a) op (b), "line %d: %s %s %s: %lld, %lld", __LINE__, #a, #op, #b, \
           (long long)(a), (long long)(b))

/* ---- the masks ------------------------------------------------------------ */

/* Sizes with 1-pixel sides, odd ones, and widths around the 64-bit words
 * of close5 and the runs. */
static const int sizes[][2] = {
    {1, 1}, {1, 7}, {7, 1}, {2, 2}, {3, 5}, {5, 3}, {17, 13},
    {63, 65}, {64, 64}, {65, 63}, {129, 31}, {200, 150},
};
enum { N_SIZES = sizeof sizes / sizeof sizes[0] };
/* per mille of set pixels; -1: random disks and boxes, many on the border */
static const int kinds[] = {0, 1000, 100, 500, 900, -1};
enum { N_KINDS = sizeof kinds / sizeof kinds[0] };
static const char *const real_masks[] = {
    KMS_SOURCE_DIR "/samples/masks/ID_0000_Z_0142.png",
    KMS_SOURCE_DIR "/samples/masks/ID_0088_Z_0100.png",
    KMS_SOURCE_DIR "/samples/masks/ID_0165_Z_0145.png",
    KMS_SOURCE_DIR "/samples/masks/ID_0253_Z_0238.png",
};
enum {
    N_RANDOM = N_SIZES * N_KINDS,
    N_MASKS = N_RANDOM + (int)(sizeof real_masks / sizeof real_masks[0])
};

/* xorshift64*: fixed seeds, the same masks on every machine */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static void set_px(kms_image *m, int x, int y)
{
    if (x >= 0 && y >= 0 && x < m->width && y < m->height)
        ((uint8_t *)kms_image_row(m, y))[x] = 255;
}

/* Disks and boxes whose centres may lie on or past the edges. */
static void draw_blobs(kms_image *m, uint64_t *s)
{
    int n = 1 + (int)(next_rand(s) % 12);
    int big = m->width > m->height ? m->width : m->height;
    for (int i = 0; i < n; i++) {
        int cx = (int)(next_rand(s) % (uint64_t)(m->width + 2)) - 1;
        int cy = (int)(next_rand(s) % (uint64_t)(m->height + 2)) - 1;
        int r = (int)(next_rand(s) % (uint64_t)(big / 4 + 2));
        bool disk = next_rand(s) & 1;
        for (int y = cy - r; y <= cy + r; y++)
            for (int x = cx - r; x <= cx + r; x++)
                if (!disk || (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r)
                    set_px(m, x, y);
        /* a hole in some, so there is something to fill */
        if (r >= 3 && (next_rand(s) & 1))
            for (int y = cy - r / 3; y <= cy + r / 3; y++)
                for (int x = cx - r / 3; x <= cx + r / 3; x++)
                    if (x >= 0 && y >= 0 && x < m->width && y < m->height)
                        ((uint8_t *)kms_image_row(m, y))[x] = 0;
    }
}

/* Mask i of N_MASKS: a 0/255 U8 image. */
static kms_image mask_case(int i)
{
    if (i >= N_RANDOM) {
        kms_image m = {0};
        kms_error err;
        kms_error_clear(&err);
        ck_assert_int_eq(kms_cv_imread(real_masks[i - N_RANDOM],
                                       KMS_CV_IMREAD_GRAYSCALE, &m, &err),
                         KMS_OK);
        return m;
    }
    int w = sizes[i / N_KINDS][0], h = sizes[i / N_KINDS][1];
    int kind = kinds[i % N_KINDS];
    kms_image m = kt_image(w, h, 1, KMS_DEPTH_U8);
    uint64_t s = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1);
    if (kind < 0) {
        draw_blobs(&m, &s);
        return m;
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if ((int)(next_rand(&s) % 1000) < kind)
                set_px(&m, x, y);
    return m;
}

static kms_image copy_of(const kms_image *m)
{
    kms_image c = {0};
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_image_copy(&c, m, &err), KMS_OK);
    return c;
}

/* A 3-slice stack of the mask, its inverse and it upside down. */
static kms_image stack_of(const kms_image *m)
{
    int w = m->width, h = m->height;
    kms_image s = kt_image(w, 3 * h, 1, KMS_DEPTH_U8);
    for (int y = 0; y < h; y++) {
        const uint8_t *src = kms_image_row(m, y);
        uint8_t *a = kms_image_row(&s, y), *b = kms_image_row(&s, h + y),
                *c = kms_image_row(&s, 3 * h - 1 - y);
        for (int x = 0; x < w; x++) {
            a[x] = c[x] = src[x];
            b[x] = src[x] ? 0 : 255;
        }
    }
    return s;
}

static kms_image inverse_of(const kms_image *m)
{
    kms_image inv = copy_of(m);
    for (int y = 0; y < m->height; y++) {
        uint8_t *row = kms_image_row(&inv, y);
        for (int x = 0; x < m->width; x++)
            row[x] = row[x] ? 0 : 255;
    }
    return inv;
}

/* Byte equality, naming the first difference. */
static void assert_same(const kms_image *got, const kms_image *want,
                        const char *what, int i)
{
    ck_assert_int_eq(got->width, want->width);
    ck_assert_int_eq(got->height, want->height);
    ck_assert_int_eq(got->depth, want->depth);
    size_t bytes = (size_t)got->width * kms_depth_size(got->depth);
    for (int y = 0; y < got->height; y++) {
        const uint8_t *g = kms_image_row(got, y), *w = kms_image_row(want, y);
        if (memcmp(g, w, bytes) == 0)
            continue;
        size_t x = 0;
        while (g[x] == w[x])
            x++;
        ck_abort_msg("%s, mask %d (%dx%d): first difference at byte %zu of "
                     "row %d: %d, OpenCV %d", what, i, got->width,
                     got->height, x, y, g[x], w[x]);
    }
}

#define ALL_MASKS(name)                                                        \
    START_TEST(name)                                                           \
    {                                                                          \
        for (int m_i = 0; m_i < N_MASKS; m_i++)                                \
            name##_case(m_i);                                                  \
    }                                                                          \
    END_TEST

/* ---- references, with OpenCV ---------------------------------------------- */

/* Holes as the usual OpenCV recipe finds them: flood the 0-pixels from
 * outside a 1-pixel frame, 4-connected; what the flood misses is filled. */
static kms_image ref_fill_holes(const kms_image *m)
{
    int w = m->width, h = m->height;
    kms_image pad = kt_image(w + 2, h + 2, 1, KMS_DEPTH_U8);
    for (int y = 0; y < h; y++)
        memcpy((uint8_t *)kms_image_row(&pad, y + 1) + 1, kms_image_row(m, y),
               (size_t)w);
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_cv_flood_fill(&pad, 0, 0, 128, 4, NULL, &err), KMS_OK);
    kms_image out = kt_image(w, h, 1, KMS_DEPTH_U8);
    for (int y = 0; y < h; y++) {
        const uint8_t *p = (const uint8_t *)kms_image_row(&pad, y + 1) + 1;
        uint8_t *o = kms_image_row(&out, y);
        for (int x = 0; x < w; x++)
            o[x] = p[x] == 128 ? 0 : 255;
    }
    kms_image_free(&pad);
    return out;
}

/* cv::morphologyEx with the elliptic element on each slice of a stack. */
static kms_image ref_morph(const kms_image *m, int slices, int op, int ksize,
                           int iterations)
{
    int rows = m->height / slices;
    kms_image out = kt_image(m->width, m->height, 1, KMS_DEPTH_U8);
    kms_error err;
    kms_error_clear(&err);
    for (int z = 0; z < slices; z++) {
        kms_image slice = kms_image_rows(m, z * rows, rows), r = {0};
        ck_assert_int_eq(kms_cv_morphology(&slice, &r, op, KMS_CV_MORPH_ELLIPSE,
                                           ksize, iterations, &err),
                         KMS_OK);
        for (int y = 0; y < rows; y++)
            memcpy(kms_image_row(&out, z * rows + y), kms_image_row(&r, y),
                   (size_t)m->width);
        kms_image_free(&r);
    }
    return out;
}

/* OpenCV's labels of a 2-D mask (S32), *n components without background. */
static kms_image cv_labels(const kms_image *m, int connectivity, int *n)
{
    kms_image lab = {0};
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_cv_connected_components(m, &lab, connectivity, n, NULL,
                                                 NULL, &err),
                     KMS_OK);
    *n -= 1;
    return lab;
}

static int32_t uf_root(int32_t *p, int32_t i)
{
    while (p[i] != i)
        i = p[i] = p[p[i]];
    return i;
}

/* The documented 3-D labels: OpenCV's 4-connected components of each slice,
 * joined where they overlap in the next slice (6-connected), numbered in
 * order of first appearance. malloc'ed, one per pixel. */
static int32_t *ref_labels3(const kms_image *m, int slices, int *n_out)
{
    int w = m->width, rows = m->height / slices;
    size_t per = (size_t)w * (size_t)rows;
    int32_t *lab = malloc(per * (size_t)slices * sizeof *lab);
    int *base = malloc(((size_t)slices + 1) * sizeof *base);
    ck_assert_ptr_nonnull(lab);
    ck_assert_ptr_nonnull(base);
    base[0] = 0;
    for (int z = 0; z < slices; z++) {
        kms_image slice = kms_image_rows(m, z * rows, rows);
        int n;
        kms_image l = cv_labels(&slice, 4, &n);
        for (int y = 0; y < rows; y++) {
            const int32_t *src = kms_image_row(&l, y);
            for (int x = 0; x < w; x++)
                lab[z * per + (size_t)y * (size_t)w + (size_t)x] =
                    src[x] ? src[x] + base[z] : 0;
        }
        base[z + 1] = base[z] + n;
        kms_image_free(&l);
    }
    int total = base[slices];
    int32_t *parent = malloc(((size_t)total + 1) * sizeof *parent);
    int32_t *final = calloc((size_t)total + 1, sizeof *final);
    ck_assert_ptr_nonnull(parent);
    ck_assert_ptr_nonnull(final);
    for (int i = 0; i <= total; i++)
        parent[i] = i;
    for (int z = 1; z < slices; z++)
        for (size_t i = 0; i < per; i++) {
            int32_t a = lab[(size_t)(z - 1) * per + i], b = lab[z * per + i];
            if (a && b)
                parent[uf_root(parent, a)] = uf_root(parent, b);
        }
    int n = 0;
    for (size_t i = 0; i < per * (size_t)slices; i++) {
        if (!lab[i])
            continue;
        int32_t r = uf_root(parent, lab[i]);
        if (!final[r])
            final[r] = ++n;
        lab[i] = final[r];
    }
    free(parent);
    free(final);
    free(base);
    *n_out = n;
    return lab;
}

/* Labels as kms_mask_label documents them: OpenCV's 8-connected ones in
 * 2-D, ref_labels3 for a stack. */
static int32_t *ref_labels(const kms_image *m, int slices, int *n)
{
    if (slices > 1)
        return ref_labels3(m, slices, n);
    kms_image l = cv_labels(m, 8, n);
    int32_t *out = malloc((size_t)m->width * (size_t)m->height * sizeof *out);
    ck_assert_ptr_nonnull(out);
    for (int y = 0; y < m->height; y++)
        memcpy(out + (size_t)y * (size_t)m->width, kms_image_row(&l, y),
               (size_t)m->width * sizeof *out);
    kms_image_free(&l);
    return out;
}

/* ---- hole filling ----------------------------------------------------------- */

static void test_fill_holes_vs_opencv_case(int mask_i)
{
    kms_error err;
    kms_error_clear(&err);
    kms_image m = mask_case(mask_i), got = copy_of(&m), want = ref_fill_holes(&m);
    ck_assert_int_eq(kms_mask_fill_holes(&got, 1, &err), KMS_OK);
    assert_same(&got, &want, "fill_holes", mask_i);
    kms_image_free(&got);
    kms_image_free(&want);
    /* a stack: each slice on its own (a tube open at its ends is no hole) */
    kms_image st = stack_of(&m), st_got = copy_of(&st);
    ck_assert_int_eq(kms_mask_fill_holes(&st_got, 3, &err), KMS_OK);
    for (int z = 0; z < 3; z++) {
        kms_image s = kms_image_rows(&st, z * m.height, m.height);
        kms_image g = kms_image_rows(&st_got, z * m.height, m.height);
        kms_image w = ref_fill_holes(&s);
        assert_same(&g, &w, "fill_holes of a slice", mask_i);
        kms_image_free(&w);
    }
    kms_image_free(&st);
    kms_image_free(&st_got);
    kms_image_free(&m);
}

/* every mask: one Check case, not one fork per mask */
ALL_MASKS(test_fill_holes_vs_opencv)

START_TEST(test_fill_holes_known)
{
    /* a ring with a hole, a U open to the border, a hole touching nothing */
    static const char *const rows[] = {
        "........",
        ".###..#.",
        ".#.#..#.",
        ".###..##",
        "......#.",
    };
    static const char *const want[] = {
        "........",
        ".###..#.",
        ".###..#.",
        ".###..##",
        "......#.",
    };
    kms_image m = kt_image(8, 5, 1, KMS_DEPTH_U8);
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 8; x++)
            if (rows[y][x] == '#')
                set_px(&m, x, y);
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_mask_fill_holes(&m, 1, &err), KMS_OK);
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 8; x++)
            ck_assert_int_eq(((uint8_t *)kms_image_row(&m, y))[x],
                             want[y][x] == '#' ? 255 : 0);
    ck_assert_int_eq(kms_mask_area(&m), 14);
    kms_image_free(&m);
}
END_TEST

/* ---- morphology ------------------------------------------------------------- */

static void test_open_close_vs_opencv_case(int mask_i)
{
    kms_error err;
    kms_error_clear(&err);
    kms_image m = mask_case(mask_i), st = stack_of(&m);
    for (int slices = 1; slices <= 3; slices += 2) {
        const kms_image *src = slices == 1 ? &m : &st;
        for (int r = 0; r <= 3; r++) {
            kms_image o = copy_of(src), c = copy_of(src);
            ck_assert_int_eq(kms_mask_open(&o, slices, r, &err), KMS_OK);
            ck_assert_int_eq(kms_mask_close(&c, slices, r, &err), KMS_OK);
            /* radius 0 is no operation, as a 1x1 element is in OpenCV */
            kms_image wo = ref_morph(src, slices, KMS_CV_MORPH_OPEN, 2 * r + 1, 1);
            kms_image wc = ref_morph(src, slices, KMS_CV_MORPH_CLOSE, 2 * r + 1, 1);
            assert_same(&o, &wo, "open", mask_i);
            assert_same(&c, &wc, "close", mask_i);
            kms_image_free(&o);
            kms_image_free(&c);
            kms_image_free(&wo);
            kms_image_free(&wc);
        }
    }
    kms_image_free(&st);
    kms_image_free(&m);
}

/* every mask: one Check case, not one fork per mask */
ALL_MASKS(test_open_close_vs_opencv)

static void test_close5_vs_opencv_case(int mask_i)
{
    kms_error err;
    kms_error_clear(&err);
    kms_image m = mask_case(mask_i);
    for (int it = 0; it <= 3; it++) {
        kms_image got = copy_of(&m);
        ck_assert_int_eq(kms_mask_close5(&got, it, &err), KMS_OK);
        kms_image want = it ? ref_morph(&m, 1, KMS_CV_MORPH_CLOSE, 5, it)
                            : copy_of(&m);
        assert_same(&got, &want, "close5", mask_i);
        kms_image_free(&got);
        kms_image_free(&want);
    }
    kms_image_free(&m);
}

/* every mask: one Check case, not one fork per mask */
ALL_MASKS(test_close5_vs_opencv)

static void test_eroder_vs_opencv_case(int mask_i)
{
    kms_error err;
    kms_error_clear(&err);
    kms_image m = mask_case(mask_i);
    kms_runs runs = {0};
    ck_assert_int_eq(kms_runs_find(&runs, m.data, (ptrdiff_t)m.stride, m.width,
                                   m.height, 0, &err),
                     KMS_OK);
    for (int R = 0; R <= KMS_ERODE_MAX_R; R++) {
        kms_eroder e;
        ck_assert_int_eq(kms_eroder_init(&e, m.width, R, &err), KMS_OK);
        kms_image got = kt_image(m.width, m.height, 1, KMS_DEPTH_U8);
        for (int y = 0; y < m.height; y++) {
            int n = kms_eroder_row(&e, &runs, y);
            uint8_t *row = kms_image_row(&got, y);
            for (int k = 0; k < n; k++) {
                EXPECT_CMP(e.cur[2 * k], <, e.cur[2 * k + 1]);
                if (k > 0) /* sorted and apart */
                    EXPECT_CMP(e.cur[2 * k - 1], <, e.cur[2 * k]);
                memset(row + e.cur[2 * k], 255,
                       (size_t)(e.cur[2 * k + 1] - e.cur[2 * k]));
            }
        }
        kms_image want = ref_morph(&m, 1, KMS_CV_MORPH_ERODE, 2 * R + 1, 1);
        assert_same(&got, &want, "erosion of runs", mask_i);
        kms_image_free(&got);
        kms_image_free(&want);
        kms_eroder_free(&e);
    }
    kms_runs_free(&runs);
    kms_image_free(&m);
}

/* every mask: one Check case, not one fork per mask */
ALL_MASKS(test_eroder_vs_opencv)

START_TEST(test_eroder_radius_limits)
{
    kms_error err;
    kms_eroder e;
    for (int R = -1; R <= KMS_ERODE_MAX_R + 1; R += KMS_ERODE_MAX_R + 2) {
        kms_error_clear(&err);
        ck_assert_int_eq(kms_eroder_init(&e, 10, R, &err), KMS_ERR_INTERNAL);
        ck_assert_msg(strstr(err.message, "is not supported"), "%s",
                      err.message);
        ck_assert_ptr_null(e.buf);
        kms_eroder_free(&e); /* harmless after a failed init */
    }
}
END_TEST

/* ---- components ------------------------------------------------------------- */

static void check_label(const kms_image *m, int slices, int i)
{
    kms_error err;
    kms_error_clear(&err);
    int w = m->width, rows = m->height / slices;
    /* values summed per component: S16 ones, known from the position */
    kms_image v = kt_image(w, m->height, 1, KMS_DEPTH_S16);
    for (int y = 0; y < m->height; y++)
        for (int x = 0; x < w; x++)
            ((int16_t *)kms_image_row(&v, y))[x] = (int16_t)((x * 7 + y * 3) % 101 - 50);
    int32_t *labels;
    kms_component *comps;
    int n;
    ck_assert_int_eq(kms_mask_label(m, slices, &v, &labels, &comps, &n, &err),
                     KMS_OK);
    int n_ref;
    int32_t *ref = ref_labels(m, slices, &n_ref);
    ck_assert_int_eq(n, n_ref);
    size_t total = (size_t)w * (size_t)m->height;
    for (size_t p = 0; p < total; p++)
        if (labels[p] != ref[p])
            ck_abort_msg("labels, mask %d, %d slices: pixel (%zu, %zu) is %d, "
                         "reference %d", i, slices, p % (size_t)w,
                         p / (size_t)w, labels[p], ref[p]);
    /* the statistics, recomputed from the reference labels */
    kms_component *want = calloc((size_t)n + 1, sizeof *want);
    ck_assert_ptr_nonnull(want);
    for (int c = 1; c <= n; c++) {
        want[c].x0 = want[c].y0 = want[c].z0 = 1 << 30;
        want[c].x1 = want[c].y1 = want[c].z1 = -1;
    }
    for (size_t p = 0; p < total; p++) {
        if (!ref[p])
            continue;
        kms_component *c = &want[ref[p]];
        int x = (int)(p % (size_t)w), gy = (int)(p / (size_t)w);
        int y = gy % rows, z = gy / rows;
        c->area++;
        c->sum += ((const int16_t *)kms_image_row(&v, gy))[x];
        if (x < c->x0) c->x0 = x;
        if (x > c->x1) c->x1 = x;
        if (y < c->y0) c->y0 = y;
        if (y > c->y1) c->y1 = y;
        if (z < c->z0) c->z0 = z;
        if (z > c->z1) c->z1 = z;
    }
    for (int c = 1; c <= n; c++) {
        EXPECT_CMP(comps[c].area, ==, want[c].area);
        EXPECT_CMP(comps[c].x0, ==, want[c].x0);
        EXPECT_CMP(comps[c].x1, ==, want[c].x1);
        EXPECT_CMP(comps[c].y0, ==, want[c].y0);
        EXPECT_CMP(comps[c].y1, ==, want[c].y1);
        EXPECT_CMP(comps[c].z0, ==, want[c].z0);
        EXPECT_CMP(comps[c].z1, ==, want[c].z1);
        EXPECT_CMP(comps[c].sum, ==, want[c].sum);
        /* a slice's edge, not the scan's first or last slice */
        bool border = want[c].x0 == 0 || want[c].y0 == 0 ||
                      want[c].x1 == w - 1 || want[c].y1 == rows - 1;
        EXPECT_CMP(comps[c].border, ==, border);
    }
    free(want);
    free(ref);
    free(labels);
    free(comps);
    kms_image_free(&v);
}

static void test_label_vs_opencv_case(int mask_i)
{
    kms_image m = mask_case(mask_i);
    check_label(&m, 1, mask_i);
    /* and OpenCV's own statistics agree in 2-D */
    kms_error err;
    kms_error_clear(&err);
    kms_image lab = {0};
    int count;
    int32_t *stats;
    ck_assert_int_eq(kms_cv_connected_components(&m, &lab, 8, &count, &stats,
                                                 NULL, &err),
                     KMS_OK);
    int32_t *labels;
    kms_component *comps;
    int n;
    ck_assert_int_eq(kms_mask_label(&m, 1, NULL, &labels, &comps, &n, &err),
                     KMS_OK);
    ck_assert_int_eq(n, count - 1);
    for (int c = 1; c <= n; c++) {
        const int32_t *s = stats + c * KMS_CV_CC_STAT_MAX;
        EXPECT_CMP(comps[c].area, ==, s[KMS_CV_CC_STAT_AREA]);
        EXPECT_CMP(comps[c].x0, ==, s[KMS_CV_CC_STAT_LEFT]);
        EXPECT_CMP(comps[c].y0, ==, s[KMS_CV_CC_STAT_TOP]);
        EXPECT_CMP(comps[c].x1 - comps[c].x0 + 1, ==, s[KMS_CV_CC_STAT_WIDTH]);
        EXPECT_CMP(comps[c].y1 - comps[c].y0 + 1, ==, s[KMS_CV_CC_STAT_HEIGHT]);
        EXPECT_CMP(comps[c].sum, ==, 0);
    }
    free(stats);
    free(labels);
    free(comps);
    kms_image_free(&lab);
    kms_image_free(&m);
}

/* every mask: one Check case, not one fork per mask */
ALL_MASKS(test_label_vs_opencv)

static void test_label_stack_case(int mask_i)
{
    kms_image m = mask_case(mask_i), st = stack_of(&m);
    check_label(&st, 3, mask_i);
    kms_image_free(&st);
    kms_image_free(&m);
}

/* every mask: one Check case, not one fork per mask */
ALL_MASKS(test_label_stack)

START_TEST(test_label_f32_values)
{
    /* F32 values are summed as given: two 2x2 squares, apart */
    kms_image m = kt_image(5, 2, 1, KMS_DEPTH_U8);
    kms_image v = kt_image(5, 2, 1, KMS_DEPTH_F32);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 5; x++) {
            if (x != 2)
                set_px(&m, x, y);
            ((float *)kms_image_row(&v, y))[x] = (float)(x + 10 * y) + 0.25f;
        }
    kms_error err;
    kms_error_clear(&err);
    int32_t *labels;
    kms_component *comps;
    int n;
    ck_assert_int_eq(kms_mask_label(&m, 1, &v, &labels, &comps, &n, &err),
                     KMS_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_double_eq(comps[1].sum, 0 + 1 + 10 + 11 + 1.0);
    ck_assert_double_eq(comps[2].sum, 3 + 4 + 13 + 14 + 1.0);
    ck_assert_int_eq(labels[0], 1);
    ck_assert_int_eq(labels[2], 0);
    ck_assert_int_eq(labels[9], 2);
    free(labels);
    free(comps);
    kms_image_free(&m);
    kms_image_free(&v);
}
END_TEST

/* Filter settings: min_area, drop_border, keep. */
static const struct {
    long min_area;
    bool drop_border;
    int keep;
} filters[] = {
    {0, false, 0}, {2, false, 0}, {9, false, 0}, {0, true, 0},
    {0, false, 1}, {0, false, 3}, {3, true, 2}, {1000000, false, 0},
};

/* What kms_mask_filter_components keeps, from the reference labels. */
static kms_image ref_filter(const kms_image *m, int slices, int f, int *kept)
{
    int n;
    int32_t *lab = ref_labels(m, slices, &n);
    int w = m->width, rows = m->height / slices;
    size_t total = (size_t)w * (size_t)m->height;
    long *area = calloc((size_t)n + 1, sizeof *area);
    bool *border = calloc((size_t)n + 1, sizeof *border);
    bool *keep = calloc((size_t)n + 1, sizeof *keep);
    ck_assert(area && border && keep);
    for (size_t p = 0; p < total; p++) {
        if (!lab[p])
            continue;
        int x = (int)(p % (size_t)w), y = (int)(p / (size_t)w) % rows;
        area[lab[p]]++;
        border[lab[p]] |= x == 0 || y == 0 || x == w - 1 || y == rows - 1;
    }
    /* largest first, the lower label on ties: by selection, n is small */
    *kept = 0;
    for (;;) {
        int best = 0;
        for (int c = 1; c <= n; c++) {
            if (keep[c] || area[c] < filters[f].min_area ||
                (filters[f].drop_border && border[c]))
                continue;
            if (!best || area[c] > area[best])
                best = c;
        }
        if (!best || (filters[f].keep > 0 && *kept == filters[f].keep))
            break;
        keep[best] = true;
        ++*kept;
    }
    kms_image out = kt_image(w, m->height, 1, KMS_DEPTH_U8);
    for (size_t p = 0; p < total; p++)
        if (keep[lab[p]] && lab[p])
            ((uint8_t *)kms_image_row(&out, (int)(p / (size_t)w)))[p % (size_t)w] = 255;
    free(area);
    free(border);
    free(keep);
    free(lab);
    return out;
}

static void test_filter_components_case(int mask_i)
{
    kms_error err;
    kms_error_clear(&err);
    kms_image m = mask_case(mask_i), st = stack_of(&m);
    for (int slices = 1; slices <= 3; slices += 2) {
        const kms_image *src = slices == 1 ? &m : &st;
        for (int f = 0; f < (int)(sizeof filters / sizeof filters[0]); f++) {
            kms_image got = copy_of(src);
            int kept = -1, want_kept;
            ck_assert_int_eq(kms_mask_filter_components(&got, slices,
                                                        filters[f].min_area,
                                                        filters[f].drop_border,
                                                        filters[f].keep, &kept,
                                                        &err),
                             KMS_OK);
            kms_image want = ref_filter(src, slices, f, &want_kept);
            ck_assert_int_eq(kept, want_kept);
            assert_same(&got, &want, "filter_components", mask_i);
            kms_image_free(&got);
            kms_image_free(&want);
        }
    }
    kms_image_free(&st);
    kms_image_free(&m);
}

/* every mask: one Check case, not one fork per mask */
ALL_MASKS(test_filter_components)

/* ---- runs ------------------------------------------------------------------- */

/* The runs' labels as an image (0 outside them). */
static int32_t *runs_labels(const kms_runs *r)
{
    int32_t *lab = calloc((size_t)r->width * (size_t)r->height, sizeof *lab);
    ck_assert_ptr_nonnull(lab);
    for (size_t k = 0; k < r->n; k++)
        for (int x = r->run[k].x0; x < r->run[k].x1; x++)
            lab[(size_t)r->run[k].y * (size_t)r->width + (size_t)x] =
                r->run[k].label;
    return lab;
}

/* Runs are sorted, apart, inside their row, and grouped by component in
 * raster order. */
static void check_runs_shape(const kms_runs *r, bool labelled)
{
    for (int y = 0; y < r->height; y++)
        for (size_t k = r->row[y]; k < r->row[y + 1]; k++) {
            EXPECT_CMP(r->run[k].y, ==, y);
            EXPECT_CMP(r->run[k].x0, >=, 0);
            EXPECT_CMP(r->run[k].x0, <, r->run[k].x1);
            EXPECT_CMP(r->run[k].x1, <=, r->width);
            if (k > r->row[y]) /* a gap of at least one pixel */
                EXPECT_CMP(r->run[k - 1].x1, <, r->run[k].x0);
        }
    EXPECT_CMP(r->row[r->height], ==, r->n);
    if (!labelled)
        return;
    EXPECT_CMP(r->first[0], ==, 0);
    EXPECT_CMP(r->first[1], ==, 0);
    EXPECT_CMP(r->first[r->n_labels + 1], ==, r->n);
    for (int c = 1; c <= r->n_labels; c++) {
        EXPECT_CMP(r->first[c], <, r->first[c + 1]); /* none empty */
        for (size_t k = r->first[c]; k < r->first[c + 1]; k++) {
            EXPECT_CMP(r->run[r->at[k]].label, ==, c);
            if (k > r->first[c])
                EXPECT_CMP(r->at[k - 1], <, r->at[k]);
        }
    }
}

static void test_runs_vs_opencv_case(int mask_i)
{
    kms_error err;
    kms_error_clear(&err);
    kms_image m = mask_case(mask_i), inv = inverse_of(&m);
    kms_runs r = {0}; /* one for every call: its buffers are reused */
    for (int zero = 0; zero <= 1; zero++) {
        const kms_image *set = zero ? &inv : &m;
        int zbit = zero ? KMS_RUNS_ZERO : 0;
        /* unlabelled: painting every run gives the pixels back */
        ck_assert_int_eq(kms_runs_find(&r, m.data, (ptrdiff_t)m.stride, m.width,
                                       m.height, zbit, &err),
                         KMS_OK);
        check_runs_shape(&r, false);
        ck_assert_int_eq(r.n_labels, 0);
        kms_image painted = kt_image(m.width, m.height, 1, KMS_DEPTH_U8);
        kms_runs_paint(&r, 0, &painted, 0, 0, 255);
        assert_same(&painted, set, "runs painted", mask_i);
        kms_image_free(&painted);
        /* 8-connected: OpenCV's very labels */
        ck_assert_int_eq(kms_runs_find(&r, m.data, (ptrdiff_t)m.stride, m.width,
                                       m.height, zbit | KMS_RUNS_LABEL8, &err),
                         KMS_OK);
        check_runs_shape(&r, true);
        int n;
        kms_image cv = cv_labels(set, 8, &n);
        ck_assert_int_eq(r.n_labels, n);
        int32_t *lab = runs_labels(&r);
        for (int y = 0; y < m.height; y++) {
            const int32_t *want = kms_image_row(&cv, y);
            for (int x = 0; x < m.width; x++)
                EXPECT(lab[(size_t)y * (size_t)m.width + (size_t)x] == want[x],
                              "runs 8, mask %d, zero %d: (%d, %d) is %d, OpenCV %d",
                              mask_i, zero, x, y,
                              lab[(size_t)y * (size_t)m.width + (size_t)x], want[x]);
        }
        free(lab);
        kms_image_free(&cv);
        /* 4-connected: the same components as OpenCV's, numbered by their
         * first 2x2 block rather than their first pixel (see
         * test_runs4_numbering): compare the partitions */
        ck_assert_int_eq(kms_runs_find(&r, m.data, (ptrdiff_t)m.stride, m.width,
                                       m.height, zbit | KMS_RUNS_LABEL4, &err),
                         KMS_OK);
        check_runs_shape(&r, true);
        cv = cv_labels(set, 4, &n);
        ck_assert_int_eq(r.n_labels, n);
        lab = runs_labels(&r);
        int32_t *to_cv = calloc((size_t)n + 1, sizeof *to_cv);
        int32_t *from_cv = calloc((size_t)n + 1, sizeof *from_cv);
        ck_assert(to_cv && from_cv);
        for (int y = 0; y < m.height; y++) {
            const int32_t *want = kms_image_row(&cv, y);
            for (int x = 0; x < m.width; x++) {
                int32_t l = lab[(size_t)y * (size_t)m.width + (size_t)x];
                EXPECT_CMP(l == 0, ==, want[x] == 0);
                if (!l)
                    continue;
                if (!to_cv[l])
                    to_cv[l] = want[x];
                if (!from_cv[want[x]])
                    from_cv[want[x]] = l;
                EXPECT(to_cv[l] == want[x] && from_cv[want[x]] == l,
                              "runs 4, mask %d, zero %d: (%d, %d) splits or "
                              "joins components", mask_i, zero, x, y);
            }
        }
        free(to_cv);
        free(from_cv);
        free(lab);
        kms_image_free(&cv);
    }
    kms_runs_free(&r);
    ck_assert_ptr_null(r.run);
    kms_image_free(&inv);
    kms_image_free(&m);
}

/* every mask: one Check case, not one fork per mask */
ALL_MASKS(test_runs_vs_opencv)

START_TEST(test_runs4_numbering)
{
    /* The one known difference from OpenCV: 4-connected components are
     * numbered by their first 2x2 block, OpenCV's (SAUF) by their first
     * pixel. Here (2, 0) comes first in raster order but (1, 1) lies in
     * the first block. Hole filling only asks which components reach the
     * border, so the numbering does not matter there. */
    kms_image m = kt_image(3, 2, 1, KMS_DEPTH_U8);
    set_px(&m, 2, 0);
    set_px(&m, 1, 1);
    kms_error err;
    kms_error_clear(&err);
    kms_runs r = {0};
    ck_assert_int_eq(kms_runs_find(&r, m.data, (ptrdiff_t)m.stride, 3, 2,
                                   KMS_RUNS_LABEL4, &err),
                     KMS_OK);
    int n;
    kms_image cv = cv_labels(&m, 4, &n);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(r.n_labels, 2);
    ck_assert_int_eq(((int32_t *)kms_image_row(&cv, 0))[2], 1);
    ck_assert_int_eq(((int32_t *)kms_image_row(&cv, 1))[1], 2);
    ck_assert_int_eq(r.run[0].y, 0);
    ck_assert_int_eq(r.run[0].label, 2);
    ck_assert_int_eq(r.run[1].label, 1);
    /* 8-connected they are one component, as in OpenCV */
    ck_assert_int_eq(kms_runs_find(&r, m.data, (ptrdiff_t)m.stride, 3, 2,
                                   KMS_RUNS_LABEL8, &err),
                     KMS_OK);
    ck_assert_int_eq(r.n_labels, 1);
    kms_runs_free(&r);
    kms_image_free(&cv);
    kms_image_free(&m);
}
END_TEST

static void test_runs_paint_component_clipped_case(int mask_i)
{
    /* component c alone, moved by (-ox, -oy) and clipped to dst */
    kms_image m = mask_case(mask_i);
    kms_error err;
    kms_error_clear(&err);
    kms_runs r = {0};
    ck_assert_int_eq(kms_runs_find(&r, m.data, (ptrdiff_t)m.stride, m.width,
                                   m.height, KMS_RUNS_LABEL8, &err),
                     KMS_OK);
    int32_t *lab = runs_labels(&r);
    const int off[][2] = {{0, 0}, {1, 2}, {-3, 1}, {2, -2}};
    for (int c = 1; c <= r.n_labels && c <= 3; c++)
        for (int o = 0; o < 4; o++) {
            int ox = off[o][0], oy = off[o][1];
            kms_image dst = kt_image(m.width, m.height, 1, KMS_DEPTH_U8);
            kms_runs_paint(&r, c, &dst, ox, oy, 7);
            for (int y = 0; y < m.height; y++)
                for (int x = 0; x < m.width; x++) {
                    int sx = x + ox, sy = y + oy;
                    bool in = sx >= 0 && sy >= 0 && sx < m.width &&
                              sy < m.height &&
                              lab[(size_t)sy * (size_t)m.width + (size_t)sx] == c;
                    EXPECT_CMP(((uint8_t *)kms_image_row(&dst, y))[x], ==, in ? 7 : 0);
                }
            kms_image_free(&dst);
        }
    free(lab);
    kms_runs_free(&r);
    kms_image_free(&m);
}

/* every mask: one Check case, not one fork per mask */
ALL_MASKS(test_runs_paint_component_clipped)

START_TEST(test_runs_reserve)
{
    /* a caller filling runs itself: room for them, none yet */
    kms_error err;
    kms_error_clear(&err);
    kms_runs r = {0};
    ck_assert_int_eq(kms_runs_reserve(&r, 40, 30, 5000, &err), KMS_OK);
    ck_assert_uint_ge(r.cap_run, 5000);
    ck_assert_uint_ge(r.cap_row, 31);
    ck_assert_int_eq(r.width, 40);
    ck_assert_int_eq(r.height, 30);
    ck_assert_uint_eq(r.n, 0);
    ck_assert_int_eq(kms_runs_reserve(&r, 4, 3, 0, &err), KMS_OK);
    ck_assert_uint_ge(r.cap_run, 5000); /* kept, not shrunk */
    kms_runs_free(&r);
}
END_TEST

/* ---- labels to a mask, area, resize ----------------------------------------- */

START_TEST(test_from_labels_and_area)
{
    const int32_t labels[] = {0, 1, 2, 3, -1, 63, 64, 2};
    kms_image m = {0};
    kms_error err;
    kms_error_clear(&err);
    /* ranks 0, 2 and 63; -1 and 64 are no rank */
    uint64_t ranks = 1u | 4u | (uint64_t)1 << 63;
    ck_assert_int_eq(kms_mask_from_labels(labels, 4, 2, ranks, &m, &err), KMS_OK);
    const uint8_t want[] = {255, 0, 255, 0, 0, 255, 0, 255};
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(((uint8_t *)kms_image_row(&m, i / 4))[i % 4], want[i]);
    ck_assert_int_eq(kms_mask_area(&m), 4);
    kms_image_free(&m);
}
END_TEST

static void test_resize_vs_opencv_case(int mask_i)
{
    kms_error err;
    kms_error_clear(&err);
    kms_image m = mask_case(mask_i);
    const int to[][2] = {{1, 1}, {13, 7}, {512, 3}, {100, 100}};
    for (int t = 0; t < 4; t++) {
        kms_image got = copy_of(&m), want = {0};
        ck_assert_int_eq(kms_mask_resize(&got, to[t][0], to[t][1], &err), KMS_OK);
        ck_assert_int_eq(kms_cv_resize(&m, &want, to[t][0], to[t][1], 0, 0,
                                       KMS_CV_INTER_NEAREST, &err),
                         KMS_OK);
        assert_same(&got, &want, "resize", mask_i);
        kms_image_free(&got);
        kms_image_free(&want);
    }
    /* the same size: untouched, the very buffer */
    kms_image same = copy_of(&m);
    void *data = same.data;
    ck_assert_int_eq(kms_mask_resize(&same, m.width, m.height, &err), KMS_OK);
    ck_assert_ptr_eq(same.data, data);
    assert_same(&same, &m, "resize to its size", mask_i);
    kms_image_free(&same);
    kms_image_free(&m);
}

/* every mask: one Check case, not one fork per mask */
ALL_MASKS(test_resize_vs_opencv)

static Suite *mask_ops_suite(void)
{
    Suite *s = suite_create("mask_ops");
    TCase *cv = tcase_create("OpenCV");
    tcase_set_timeout(cv, 120);
    tcase_add_test(cv, test_fill_holes_vs_opencv);
    tcase_add_test(cv, test_open_close_vs_opencv);
    tcase_add_test(cv, test_close5_vs_opencv);
    tcase_add_test(cv, test_eroder_vs_opencv);
    tcase_add_test(cv, test_label_vs_opencv);
    tcase_add_test(cv, test_label_stack);
    tcase_add_test(cv, test_filter_components);
    tcase_add_test(cv, test_runs_vs_opencv);
    tcase_add_test(cv, test_runs_paint_component_clipped);
    tcase_add_test(cv, test_resize_vs_opencv);
    suite_add_tcase(s, cv);
    TCase *known = tcase_create("Known");
    tcase_add_test(known, test_fill_holes_known);
    tcase_add_test(known, test_label_f32_values);
    tcase_add_test(known, test_runs4_numbering);
    tcase_add_test(known, test_runs_reserve);
    tcase_add_test(known, test_eroder_radius_limits);
    tcase_add_test(known, test_from_labels_and_area);
    suite_add_tcase(s, known);
    return s;
}

int main(void)
{
    return kt_run_suite(mask_ops_suite());
}
