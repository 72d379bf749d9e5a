/* lung_mask: both lungs of axial CT as a binary mask, from the k-means
 * centres.
 *
 * Per slice, at a reference scale of 0.7 mm per pixel (a 512-pixel slice of
 * a 358 mm chest field of view; other resolutions are resampled to it):
 *  1. padding outside the field of view becomes air; a 5x5 Gaussian takes
 *     the ~100 HU pixel noise down to ~30 HU;
 *  2. dark = below T, where T lies `boundary` of the way from the darkest
 *     to the brightest k-means centre (0.5 is the k-means label boundary;
 *     the manual masks' edge sits a little towards tissue, about -300 HU);
 *  3. outside air = dark pixels connected to the image border; body = the
 *     rest; air_ref = median HU of outside air;
 *  4. candidates = dark pixels in the body, as components;
 *  5. lungs reach the dependent (posterior) part of the body of a supine
 *     patient; gas in the bowel and stomach rises to the front. No such
 *     component, or one no denser than air: no lung in this slice;
 *  6. airway lumens and gas pockets: components nearer air than lung whose
 *     ring is mostly soft tissue (a wall), at T and deeper levels on a
 *     half-size copy (a main bronchus's wall often leaks at T); they are cut
 *     out with their wall, as the manual masks do;
 *  7. pieces that are lung-like and within a fissure's width of a lung are
 *     kept (lobes split by a fissure), others dropped;
 *  8. per lung side: holes filled (vessels), a closing of ~7 mm smooths the
 *     border and takes in vessels at it.
 * Volumes: slice by slice, then 3-D components far smaller than the lungs
 * are dropped. Design and measurements: README.md, "Lung masks".
 *
 * Speed: masks are handled as runs of pixels per row (mask_ops.h), so
 * components, their statistics, the erosions that find their cores and
 * the body's extent, and hole filling cost O(runs); morphology on whole
 * images is confined to the boxes where it can change something. Every
 * step gives what the OpenCV calls it replaces give (same components,
 * numbered alike, same border rules, sums in the same order), so the masks
 * are the same. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mask_ops.h"
#include "opencv_c.h"
#include "stage.h"

typedef struct lung_params {
    char threshold[KMS_STR_MAX];
    double boundary;
    double smooth_sigma;
    double fov_min;
    double posterior;
    double min_lung;
    double min_piece;
    double min_contrast;
    int airway_min;
    double airway_max;
    double airway_air;
    double airway_wall;
    char airway_levels[KMS_STR_MAX];
    int wall;
    int fissure;
    int close;
    double reference_mm;
    double display_lo;
    double display_hi;
    double min_volume;
} lung_params;

static const kms_param lung_table[] = {
    {"threshold", KMS_PARAM_STRING, "kmeans", 0, 0, NULL,
     offsetof(lung_params, threshold),
     "kmeans: between the darkest and brightest k-means centres (see "
     "boundary); or a fixed HU level such as -300"},
    {"boundary", KMS_PARAM_DOUBLE, "0.55", 0.05, 0.95, NULL,
     offsetof(lung_params, boundary),
     "where the lung edge lies from the dark to the bright centre (0.5: the "
     "k-means label boundary; manual masks sit at about 0.55)"},
    {"smooth_sigma", KMS_PARAM_DOUBLE, "1.0", 0, 5, NULL,
     offsetof(lung_params, smooth_sigma),
     "Gaussian (5x5) sigma in reference pixels before thresholding (0: none)"},
    {"fov_min", KMS_PARAM_DOUBLE, "-1100", -4000, -900, NULL,
     offsetof(lung_params, fov_min),
     "HU at or below this is padding outside the field of view (becomes air)"},
    {"posterior", KMS_PARAM_DOUBLE, "0.55", 0, 1, NULL,
     offsetof(lung_params, posterior),
     "a lung reaches at least this far back in the body (fraction of its "
     "front-to-back extent; supine patients)"},
    {"min_lung", KMS_PARAM_DOUBLE, "0.002", 0, 1, NULL,
     offsetof(lung_params, min_lung),
     "smallest lung in a slice, as a fraction of the body's area"},
    {"min_piece", KMS_PARAM_DOUBLE, "0.0005", 0, 1, NULL,
     offsetof(lung_params, min_piece),
     "smallest extra piece kept next to a lung (fraction of body area)"},
    {"min_contrast", KMS_PARAM_DOUBLE, "30", 0, 1000, NULL,
     offsetof(lung_params, min_contrast),
     "lungs are at least this many HU denser than outside air; else the "
     "dark regions are gas, not lung"},
    {"airway_min", KMS_PARAM_INT, "30", 1, 100000, NULL,
     offsetof(lung_params, airway_min),
     "smallest airway lumen in reference pixels (~4 mm across)"},
    {"airway_max", KMS_PARAM_DOUBLE, "0.05", 0, 1, NULL,
     offsetof(lung_params, airway_max),
     "largest lumen or gas pocket, as a fraction of the body's area"},
    {"airway_air", KMS_PARAM_DOUBLE, "0.5", 0, 1, NULL,
     offsetof(lung_params, airway_air),
     "a lumen's core is nearer air than lung: below this on the scale "
     "0 = outside air, 1 = lung"},
    {"airway_wall", KMS_PARAM_DOUBLE, "0.65", 0, 1, NULL,
     offsetof(lung_params, airway_wall),
     "share of the ring around a lumen that must be tissue (its wall)"},
    {"airway_levels", KMS_PARAM_LIST, "150, 300", 0, 0, NULL,
     offsetof(lung_params, airway_levels),
     "extra levels (HU below the threshold) where lumens are looked for on a "
     "half-size copy"},
    {"wall", KMS_PARAM_INT, "2", 0, 20, NULL, offsetof(lung_params, wall),
     "bronchial wall cut out around a lumen (reference pixels)"},
    {"fissure", KMS_PARAM_INT, "8", 0, 50, NULL, offsetof(lung_params, fissure),
     "lung-like pieces this close to a lung are kept: a fissure plus partial "
     "volume (reference pixels)"},
    {"close", KMS_PARAM_INT, "10", 0, 50, NULL, offsetof(lung_params, close),
     "closing radius per lung that takes in vessels at its border (reference "
     "pixels)"},
    {"reference_mm", KMS_PARAM_DOUBLE, "0.7", 0.1, 5, NULL,
     offsetof(lung_params, reference_mm),
     "pixel size the method works at; slices are resampled to it. 2-D images "
     "carry no size: they are taken as a 358 mm field of view"},
    {"display_lo", KMS_PARAM_DOUBLE, "-1350", -4000, 4000, NULL,
     offsetof(lung_params, display_lo),
     "8-bit images (not HU): the HU that grey 0 stood for"},
    {"display_hi", KMS_PARAM_DOUBLE, "150", -4000, 4000, NULL,
     offsetof(lung_params, display_hi),
     "8-bit images (not HU): the HU that grey 255 stood for"},
    {"min_volume", KMS_PARAM_DOUBLE, "0.01", 0, 1, NULL,
     offsetof(lung_params, min_volume),
     "volumes: 3-D pieces smaller than this fraction of the largest are "
     "dropped"},
    {0},
};

enum { MAX_LEVELS = 4, HU_LO = -1100, HU_HI = 4000 };
static const double FIELD_OF_VIEW_MM = 358.4; /* 512 x 0.7 mm */

/* --- parameters ------------------------------------------------------------ */

static kms_status parse_levels(const lung_params *p, double *levels, int *n,
                               kms_error *err)
{
    char buf[KMS_STR_MAX];
    snprintf(buf, sizeof buf, "%s", p->airway_levels);
    *n = 0;
    for (char *save = NULL, *w = strtok_r(buf, ", \t", &save); w;
         w = strtok_r(NULL, ", \t", &save)) {
        double v;
        if (!kms_param_number(w, &v) || v < 0 || v > 2000 || *n == MAX_LEVELS)
            return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "airway_levels",
                                 "'%s': want up to %d HU depths 0..2000", w,
                                 MAX_LEVELS);
        levels[(*n)++] = v;
    }
    return KMS_OK;
}

/* A fixed HU threshold, or NaN for "from the k-means centres". */
static kms_status parse_threshold(const lung_params *p, double *t,
                                  kms_error *err)
{
    if (strcmp(p->threshold, "kmeans") == 0) {
        *t = NAN;
        return KMS_OK;
    }
    if (!kms_param_number(p->threshold, t) || *t < -1100 || *t > 500)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "threshold",
                             "'%s' is not kmeans or an HU level -1100..500",
                             p->threshold);
    return KMS_OK;
}

static kms_status lung_prepare(const void *params, kms_link *link,
                               kms_error *err)
{
    const lung_params *p = params;
    double levels[MAX_LEVELS], t;
    int n;
    if (!link->labels)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                             "lung_mask needs the k-means result: put kmeans "
                             "before it");
    if (p->display_lo >= p->display_hi)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "display_hi",
                             "must be above display_lo");
    link->mask = true;
    kms_status st = parse_levels(p, levels, &n, err);
    return st == KMS_OK ? parse_threshold(p, &t, err) : st;
}

/* --- one slice at the reference scale -------------------------------------- */

/* A rectangle x0 .. x1 - 1, y0 .. y1 - 1; empty while x1 <= x0. */
typedef struct box {
    int x0, y0, x1, y1;
} box;

static const box NO_BOX = {1 << 30, 1 << 30, -(1 << 30), -(1 << 30)};

static bool box_empty(const box *b)
{
    return b->x1 <= b->x0 || b->y1 <= b->y0;
}

static void box_add(box *b, int x0, int y0, int x1, int y1)
{
    b->x0 = x0 < b->x0 ? x0 : b->x0;
    b->y0 = y0 < b->y0 ? y0 : b->y0;
    b->x1 = x1 > b->x1 ? x1 : b->x1;
    b->y1 = y1 > b->y1 ? y1 : b->y1;
}

/* b grown by q on every side, within w x h. */
static box box_grow(const box *b, int q, int w, int h)
{
    box g = {b->x0 - q, b->y0 - q, b->x1 + q, b->y1 + q};
    g.x0 = g.x0 < 0 ? 0 : g.x0;
    g.y0 = g.y0 < 0 ? 0 : g.y0;
    g.x1 = g.x1 > w ? w : g.x1;
    g.y1 = g.y1 > h ? h : g.y1;
    return g;
}

/* The least integer v with v >= t, for comparing S16 pixels with a real
 * level (v >= t exactly when v >= s16_at_least(t)); NaN: none. */
static int s16_at_least(double t)
{
    if (isnan(t) || t > 32767)
        return 32768;
    return t <= -32768 ? -32768 : (int)ceil(t);
}

/* Working images of one slice, all w x h unless said. */
typedef struct slice_work {
    const lung_params *p;
    double levels[MAX_LEVELS];
    int n_levels;
    double T;                 /* HU */
    int w, h;
    kms_image hu;             /* S16: HU, padding already air */
    kms_image f;              /* S16: smoothed */
    kms_runs outside;         /* runs of outside air */
    kms_runs body;            /* runs of the rest */
    kms_image cand;           /* U8 0/1: dark pixels in the body */
    double A;                 /* body area */
    double air_ref, lung_ref, den;
} slice_work;

static void slice_work_free(slice_work *s)
{
    kms_image_free(&s->hu);
    kms_image_free(&s->f);
    kms_runs_free(&s->outside);
    kms_runs_free(&s->body);
    kms_image_free(&s->cand);
}

/* OpenCV morphology with the elliptic element of this radius, on the small
 * boxes where that is cheap enough (radius 0: a copy). */
static kms_status morph(const kms_image *src, kms_image *dst, int op,
                        int radius, int iterations, kms_error *err)
{
    if (radius <= 0 || iterations <= 0)
        return kms_image_copy(dst, src, err);
    return kms_cv_morphology(src, dst, op, KMS_CV_MORPH_ELLIPSE, 2 * radius + 1,
                             iterations, err);
}

static double median_of_histogram(const long *hist, long count)
{
    long half = (count + 1) / 2, seen = 0;
    for (int v = 0; v <= HU_HI - HU_LO; v++) {
        seen += hist[v];
        if (seen >= half)
            return v + HU_LO;
    }
    return HU_HI;
}

/* Step 1: padding becomes air, then the smoothing. */
static kms_status smooth(slice_work *s, const kms_image *raw, kms_error *err)
{
    const int fov = (int)floor(s->p->fov_min); /* v <= fov_min, v integer */
    kms_status st = kms_image_alloc_raw(&s->hu, raw->width, raw->height, 1,
                                        KMS_DEPTH_S16, err);
    for (int y = 0; st == KMS_OK && y < s->h; y++) {
        const int16_t *r = kms_image_row(raw, y);
        int16_t *o = kms_image_row(&s->hu, y);
        for (int x = 0; x < s->w; x++)
            o[x] = r[x] <= fov ? -1000 : r[x];
    }
    if (st != KMS_OK)
        return st;
    return s->p->smooth_sigma > 0
               ? kms_cv_gaussian_blur(&s->hu, &s->f, 5, s->p->smooth_sigma, err)
               : kms_image_copy(&s->f, &s->hu, err);
}

/* Step 2: the dark pixels (0/1) into the candidate mask, which outside
 * air is taken from next. */
static kms_status find_dark(slice_work *s, kms_error *err)
{
    const int tissue = s16_at_least(s->T);
    kms_status st = kms_image_alloc_raw(&s->cand, s->w, s->h, 1, KMS_DEPTH_U8,
                                        err);
    const int w = s->w; /* a local: byte stores could alias s->w */
    for (int y = 0; st == KMS_OK && y < s->h; y++) {
        const int16_t *f = kms_image_row(&s->f, y);
        uint8_t *c = (uint8_t *)kms_image_row(&s->cand, y);
        for (int x = 0; x < w; x++)
            c[x] = f[x] < tissue;
    }
    return st;
}

/* HU of r[x0 .. x1) above fov into the histogram; how many. */
static long count_air(const int16_t *r, int x0, int x1, int fov, long *hist)
{
    long n = 0;
    for (int x = x0; x < x1; x++) {
        if (r[x] <= fov)
            continue;
        int v = r[x] < HU_LO ? HU_LO : r[x] > HU_HI ? HU_HI : r[x];
        hist[v - HU_LO]++;
        n++;
    }
    return n;
}

/* Step 3, outside air: the dark components (4-connected) that reach the
 * border of the image, as a flood fill from the border would find them.
 * They leave the candidate mask, and their HU go into the histogram
 * (padding left out); returns how many did, *area the outside's size. */
static kms_status find_outside(slice_work *s, const kms_image *raw, long *hist,
                               long *air, long *area, kms_error *err)
{
    const int fov = (int)floor(s->p->fov_min); /* v <= fov_min, v integer */
    kms_runs dark = {0}, *d = &dark, *o = &s->outside;
    kms_status st = kms_runs_find(d, s->cand.data, (ptrdiff_t)s->cand.stride,
                                  s->w, s->h, KMS_RUNS_LABEL4, err);
    bool *border = st == KMS_OK ? calloc((size_t)d->n_labels + 1, 1) : NULL;
    if (st == KMS_OK && !border)
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    if (st == KMS_OK)
        st = kms_runs_reserve(o, s->w, s->h, d->n, err);
    if (st != KMS_OK)
        goto out;
    for (size_t k = 0; k < d->n; k++) {
        const kms_run *u = &d->run[k];
        border[u->label] |= u->y == 0 || u->y == s->h - 1 || u->x0 == 0 ||
                            u->x1 == s->w;
    }
    long n_air = 0, n_out = 0; /* locals: hist's stores could alias them */
    o->n = 0;
    for (int y = 0; y < s->h; y++) {
        const int16_t *r = kms_image_row(raw, y);
        uint8_t *c = (uint8_t *)kms_image_row(&s->cand, y);
        o->row[y] = o->n;
        for (size_t k = d->row[y]; k < d->row[y + 1]; k++) {
            const kms_run *u = &d->run[k];
            if (!border[u->label])
                continue;
            o->run[o->n++] = *u;
            n_out += u->x1 - u->x0;
            memset(c + u->x0, 0, (size_t)(u->x1 - u->x0));
            n_air += count_air(r, u->x0, u->x1, fov, hist);
        }
    }
    o->row[s->h] = o->n;
    *air = n_air;
    *area = n_out;
out:
    free(border);
    kms_runs_free(&dark);
    return st;
}

/* The body's runs: the gaps between outside runs, row by row. */
static kms_status body_runs(slice_work *s, kms_error *err)
{
    const kms_runs *o = &s->outside;
    kms_runs *b = &s->body;
    kms_status st = kms_runs_reserve(b, s->w, s->h, o->n + (size_t)s->h, err);
    for (int y = 0; st == KMS_OK && y < s->h; y++) {
        int x = 0;
        b->row[y] = b->n;
        for (size_t k = o->row[y]; k <= o->row[y + 1]; k++) {
            int end = k < o->row[y + 1] ? o->run[k].x0 : s->w;
            if (x < end)
                b->run[b->n++] = (kms_run){y, x, end, 0};
            if (k < o->row[y + 1])
                x = o->run[k].x1;
        }
    }
    if (st == KMS_OK)
        b->row[s->h] = b->n;
    return st;
}

/* Steps 1 and 3: smoothing, body, outside air, candidates (step 4's
 * pixels). false when there is no body. */
static kms_status find_body(slice_work *s, const kms_image *raw, bool *found,
                            kms_error *err)
{
    long *hist = calloc(HU_HI - HU_LO + 1, sizeof *hist), air = 0, outside = 0;
    kms_status st = hist ? smooth(s, raw, err)
                         : kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                                         "out of memory");
    if (st == KMS_OK)
        st = find_dark(s, err);
    if (st == KMS_OK)
        st = find_outside(s, raw, hist, &air, &outside, err);
    if (st == KMS_OK)
        st = body_runs(s, err);
    if (st == KMS_OK) {
        s->A = (double)s->w * (double)s->h - (double)outside;
        /* the median: skin partial volume pulls a mean up */
        s->air_ref = air >= 500 ? median_of_histogram(hist, air) : -1000;
        *found = s->A > 0;
    }
    free(hist);
    return st;
}

/* Front-to-back extent of the body without thin attachments (table,
 * straps): the box of the body eroded by 4 px, grown back by 4. */
static kms_status body_extent(const slice_work *s, double *top, double *height,
                              double *xmid, bool *found, kms_error *err)
{
    enum { OPEN_R = 4 };
    kms_eroder e;
    kms_status st = kms_eroder_init(&e, s->w, OPEN_R, err);
    if (st != KMS_OK)
        return st;
    int y0 = s->h, y1 = -1, x0 = s->w, x1 = -1;
    for (int y = 0; y < s->h; y++) {
        int n = kms_eroder_row(&e, &s->body, y);
        if (n == 0)
            continue;
        y0 = y < y0 ? y : y0;
        y1 = y;
        x0 = e.cur[0] < x0 ? e.cur[0] : x0;
        x1 = e.cur[2 * n - 1] - 1 > x1 ? e.cur[2 * n - 1] - 1 : x1;
    }
    kms_eroder_free(&e);
    *found = y1 >= 0;
    *top = y0 - OPEN_R;
    *height = y1 - y0 + 1 + 2 * OPEN_R;
    *xmid = 0.5 * (x0 + x1);
    return KMS_OK;
}

/* Components of a mask with the statistics the rules need. */
typedef struct comps {
    kms_runs r;         /* the mask's runs, labelled */
    kms_component *c;   /* [1..n] */
    int n;
    double *mean;       /* core mean HU (all pixels when the core is tiny) */
    double *core_sum;   /* HU summed over the core, and its pixels */
    double *core_n;
    double *sum_x;      /* for the centroid */
} comps;

static void comps_free(comps *c)
{
    kms_runs_free(&c->r);
    free(c->c);
    free(c->mean);
    free(c->core_sum);
    free(c->core_n);
    free(c->sum_x);
    memset(c, 0, sizeof *c);
}

/* Value images: S16 and F32 hold the values, S32 four times them (sums of
 * 2x2 blocks: their means are quarters, exact). */
static inline double value_at(const kms_image *v, const void *row, int x)
{
    switch (v->depth) {
    case KMS_DEPTH_S16: return ((const int16_t *)row)[x];
    case KMS_DEPTH_S32: return ((const int32_t *)row)[x] * 0.25;
    default: return ((const float *)row)[x];
    }
}

/* Adds the values of x0 .. x1 - 1 in row y to *sum. Integer values sum
 * exactly, in any order; floats one by one in raster order, so they round
 * as a pass over the pixels would. */
static void add_values(const kms_image *v, int y, int x0, int x1, double *sum)
{
    const void *row = kms_image_row(v, y);
    int64_t s = 0;
    switch (v->depth) {
    case KMS_DEPTH_S16:
        for (int x = x0; x < x1; x++)
            s += ((const int16_t *)row)[x];
        *sum += (double)s;
        return;
    case KMS_DEPTH_S32:
        for (int x = x0; x < x1; x++)
            s += ((const int32_t *)row)[x];
        *sum += (double)s * 0.25;
        return;
    default: {
        double acc = *sum; /* a local: the same additions in the same order */
        for (int x = x0; x < x1; x++)
            acc += ((const float *)row)[x];
        *sum = acc;
    }
    }
}

/* Area, box, sums of values and of x per component, in raster order per
 * component, as a pass over a labels image would. */
static kms_status comp_stats(comps *out, const kms_image *values,
                             kms_error *err)
{
    size_t n1 = (size_t)out->n + 1;
    out->c = calloc(n1, sizeof *out->c);
    out->sum_x = calloc(n1, sizeof *out->sum_x);
    if (!out->c || !out->sum_x)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    for (int i = 1; i <= out->n; i++) {
        out->c[i].x0 = out->c[i].y0 = 1 << 30;
        out->c[i].x1 = out->c[i].y1 = -1;
    }
    for (size_t k = 0; k < out->r.n; k++) {
        const kms_run *u = &out->r.run[k];
        kms_component *c = &out->c[u->label];
        long len = u->x1 - u->x0;
        c->area += len;
        c->x0 = u->x0 < c->x0 ? u->x0 : c->x0;
        c->x1 = u->x1 - 1 > c->x1 ? u->x1 - 1 : c->x1;
        c->y0 = u->y < c->y0 ? u->y : c->y0;
        c->y1 = u->y;
        out->sum_x[u->label] += (double)((int64_t)(u->x0 + u->x1 - 1) * len / 2);
        add_values(values, u->y, u->x0, u->x1, &c->sum);
    }
    return KMS_OK;
}

/* Each component's mean HU over its core: the mask eroded by core_r, which
 * leaves out the partial-volume rim. */
static kms_status core_means(comps *out, const kms_image *values, int core_r,
                             kms_error *err)
{
    size_t n1 = (size_t)out->n + 1;
    free(out->mean);
    free(out->core_sum);
    free(out->core_n);
    out->mean = calloc(n1, sizeof *out->mean);
    out->core_sum = calloc(n1, sizeof *out->core_sum);
    out->core_n = calloc(n1, sizeof *out->core_n);
    kms_eroder e;
    kms_status st = kms_eroder_init(&e, out->r.width, core_r, err);
    if (st == KMS_OK && (!out->mean || !out->core_sum || !out->core_n))
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    for (int y = 0; st == KMS_OK && y < out->r.height; y++) {
        size_t k = out->r.row[y];
        if (k == out->r.row[y + 1])
            continue;
        int n = kms_eroder_row(&e, &out->r, y);
        for (int i = 0; i < n; i++) {
            int x0 = e.cur[2 * i], x1 = e.cur[2 * i + 1];
            while (out->r.run[k].x1 <= x0) /* the run holding the interval */
                k++;
            int l = out->r.run[k].label;
            out->core_n[l] += x1 - x0;
            add_values(values, y, x0, x1, &out->core_sum[l]);
        }
    }
    for (int i = 1; st == KMS_OK && i <= out->n; i++)
        out->mean[i] = out->core_n[i] >= 5
                           ? out->core_sum[i] / out->core_n[i]
                           : out->c[i].sum / (double)out->c[i].area;
    kms_eroder_free(&e);
    return st;
}

/* Labels mask (8-connected) with sums of values, then the core means. */
static kms_status label_with_means(const kms_image *mask,
                                   const kms_image *values,
                                   int core_r, comps *out, kms_error *err)
{
    kms_status st = kms_runs_find(&out->r, mask->data, (ptrdiff_t)mask->stride,
                                  mask->width, mask->height, KMS_RUNS_LABEL8,
                                  err);
    out->n = out->r.n_labels;
    if (st == KMS_OK)
        st = comp_stats(out, values, err);
    if (st == KMS_OK)
        st = core_means(out, values, core_r, err);
    return st;
}

/* Is component i walled: at least airway_wall of the ring ring0..ring1
 * pixels around it at or above T in f? */
static kms_status walled(const slice_work *s, const comps *c, int i,
                         const kms_image *f, int ring0, int ring1, bool *yes,
                         kms_error *err)
{
    const kms_component *k = &c->c[i];
    box b = {k->x0, k->y0, k->x1 + 1, k->y1 + 1};
    b = box_grow(&b, ring1 + 1, f->width, f->height);
    kms_image sub = {0}, outer = {0}, inner = {0};
    kms_status st = kms_image_alloc(&sub, b.x1 - b.x0, b.y1 - b.y0, 1,
                                    KMS_DEPTH_U8, err);
    if (st == KMS_OK) {
        kms_runs_paint(&c->r, i, &sub, b.x0, b.y0, 255);
        st = morph(&sub, &outer, KMS_CV_MORPH_DILATE, ring1, 1, err);
    }
    if (st == KMS_OK)
        st = morph(&sub, &inner, KMS_CV_MORPH_DILATE, ring0, 1, err);
    long ring = 0, wall = 0;
    for (int y = 0; st == KMS_OK && y < sub.height; y++) {
        const uint8_t *a = kms_image_row(&outer, y);
        const uint8_t *in = kms_image_row(&inner, y);
        const void *fr = kms_image_row(f, y + b.y0);
        for (int x = 0; x < sub.width; x++) {
            if (!a[x] || in[x])
                continue;
            ring++;
            wall += value_at(f, fr, x + b.x0) >= s->T;
        }
    }
    *yes = ring > 0 && (double)wall >= s->p->airway_wall * (double)ring;
    kms_image_free(&sub);
    kms_image_free(&outer);
    kms_image_free(&inner);
    return st;
}

/* Step 6 for one mask: marks (255) in out the air-like, walled components
 * of c, and adds their boxes to painted. body_area: the body's area at this
 * resolution; min_area in its pixels. */
static kms_status find_lumens(const slice_work *s, const comps *c,
                              const kms_image *f, double body_area,
                              int min_area, int ring0, int ring1,
                              kms_image *out, box *painted, kms_error *err)
{
    kms_status st = KMS_OK;
    for (int i = 1; st == KMS_OK && i <= c->n; i++) {
        double score = (c->mean[i] - s->air_ref) / s->den;
        if (c->c[i].area < min_area || c->c[i].area > s->p->airway_max * body_area ||
            score >= s->p->airway_air)
            continue;
        bool wall = false;
        st = walled(s, c, i, f, ring0, ring1, &wall, err);
        if (st != KMS_OK || !wall)
            continue;
        kms_runs_paint(&c->r, i, out, 0, 0, 255);
        box_add(painted, c->c[i].x0, c->c[i].y0, c->c[i].x1 + 1, c->c[i].y1 + 1);
    }
    return st;
}

/* INTER_AREA at exactly half size is the mean of each 2x2 block: here
 * kept as the block's sum (S32, four times the mean). The mean of four S16
 * values is a quarter, exact in OpenCV's F32 result too, so values and
 * sums are those of that result, bit for bit. */
static kms_status half_sum(const kms_image *src, kms_image *dst,
                           kms_error *err)
{
    int w2 = src->width / 2, h2 = src->height / 2;
    kms_status st = kms_image_alloc_raw(dst, w2, h2, 1, KMS_DEPTH_S32, err);
    for (int y = 0; st == KMS_OK && y < h2; y++) {
        const int16_t *a = kms_image_row(src, 2 * y);
        const int16_t *b = kms_image_row(src, 2 * y + 1);
        int32_t *o = kms_image_row(dst, y);
        for (int x = 0; x < w2; x++)
            o[x] = a[2 * x] + a[2 * x + 1] + b[2 * x] + b[2 * x + 1];
    }
    return st;
}

/* The half-size images of an odd-sized slice, through OpenCV: smoothed
 * (fh) and HU (hh) by area, the body (bh, 0/255) by nearest neighbour. */
static kms_status half_images_odd(const slice_work *s, kms_image *fh,
                                  kms_image *hh, kms_image *bh, kms_error *err)
{
    int w2 = s->w / 2, h2 = s->h / 2;
    kms_image f32 = {0}, hu32 = {0}, body = {0};
    kms_status st = kms_cv_convert(&s->f, &f32, KMS_DEPTH_F32, 1, 0, err);
    if (st == KMS_OK)
        st = kms_cv_convert(&s->hu, &hu32, KMS_DEPTH_F32, 1, 0, err);
    if (st == KMS_OK)
        st = kms_cv_resize(&f32, fh, w2, h2, 0, 0, KMS_CV_INTER_AREA, err);
    if (st == KMS_OK)
        st = kms_cv_resize(&hu32, hh, w2, h2, 0, 0, KMS_CV_INTER_AREA, err);
    if (st == KMS_OK)
        st = kms_image_alloc(&body, s->w, s->h, 1, KMS_DEPTH_U8, err);
    if (st == KMS_OK) {
        memset(body.data, 255, body.stride * (size_t)s->h);
        kms_runs_paint(&s->outside, 0, &body, 0, 0, 0);
        st = kms_cv_resize(&body, bh, w2, h2, 0, 0, KMS_CV_INTER_NEAREST, err);
    }
    kms_image_free(&f32);
    kms_image_free(&hu32);
    kms_image_free(&body);
    return st;
}

/* The body at half size as cv::resize INTER_NEAREST makes it when the size
 * is exactly half: pixel (2x, 2y), 1 in the body. */
static kms_status half_body(const slice_work *s, kms_image *bh, kms_error *err)
{
    int w2 = s->w / 2, h2 = s->h / 2;
    kms_status st = kms_image_alloc_raw(bh, w2, h2, 1, KMS_DEPTH_U8, err);
    for (int y = 0; st == KMS_OK && y < h2; y++) {
        uint8_t *b = kms_image_row(bh, y);
        memset(b, 1, (size_t)w2);
        const kms_runs *o = &s->outside;
        for (size_t k = o->row[2 * y]; k < o->row[2 * y + 1]; k++) {
            /* even columns 2x in x0 .. x1 - 1 */
            int x0 = (o->run[k].x0 + 1) / 2, x1 = (o->run[k].x1 + 1) / 2;
            memset(b + x0, 0, (size_t)(x1 - x0));
        }
    }
    return st;
}

/* acc (half size) ORed into airway (full size) by nearest neighbour, as
 * cv::resize INTER_NEAREST would scale it up. */
static kms_status upsample_lumens(const slice_work *s, const kms_image *acc,
                                  const box *painted, kms_image *airway,
                                  box *abox, kms_error *err)
{
    if (box_empty(painted))
        return KMS_OK;
    if (s->w == 2 * acc->width && s->h == 2 * acc->height) {
        /* exactly twice the size: source pixel (x / 2, y / 2) */
        for (int y = 2 * painted->y0; y < 2 * painted->y1; y++) {
            const uint8_t *u = kms_image_row(acc, y / 2);
            uint8_t *a = kms_image_row(airway, y);
            for (int x = 2 * painted->x0; x < 2 * painted->x1; x++)
                a[x] |= u[x / 2];
        }
        box_add(abox, 2 * painted->x0, 2 * painted->y0, 2 * painted->x1,
                2 * painted->y1);
        return KMS_OK;
    }
    kms_image up = {0};
    kms_status st = kms_cv_resize(acc, &up, s->w, s->h, 0, 0,
                                  KMS_CV_INTER_NEAREST, err);
    for (int y = 0; st == KMS_OK && y < s->h; y++) {
        const uint8_t *u = kms_image_row(&up, y);
        uint8_t *a = kms_image_row(airway, y);
        for (int x = 0; x < s->w; x++) {
            a[x] |= u[x];
            if (u[x])
                box_add(abox, x, y, x + 1, y + 1);
        }
    }
    kms_image_free(&up);
    return st;
}

/* Deeper lumen levels on a half-size copy: a main bronchus's wall often has
 * a partial-volume gap at T, so its lumen joins the lung there. */
static kms_status half_size_lumens(const slice_work *s, kms_image *airway,
                                   box *abox, kms_error *err)
{
    int w2 = s->w / 2, h2 = s->h / 2;
    bool exact = s->w % 2 == 0 && s->h % 2 == 0;
    kms_image fh = {0}, hh = {0}, bh = {0}, acc = {0};
    kms_image mask = {0};
    comps c = {0};
    box painted = NO_BOX;
    kms_status st = exact ? half_sum(&s->f, &fh, err)
                          : half_images_odd(s, &fh, &hh, &bh, err);
    if (st == KMS_OK && exact)
        st = half_sum(&s->hu, &hh, err);
    if (st == KMS_OK && exact)
        st = half_body(s, &bh, err);
    if (st == KMS_OK)
        st = kms_image_alloc(&acc, w2, h2, 1, KMS_DEPTH_U8, err);
    if (st == KMS_OK)
        st = kms_image_alloc_raw(&mask, w2, h2, 1, KMS_DEPTH_U8, err);
    int min_area = s->p->airway_min / 4 > 1 ? s->p->airway_min / 4 : 1;
    for (int l = 0; st == KMS_OK && l < s->n_levels; l++) {
        double level = s->T - s->levels[l];
        /* sums of four below four times the level: an integer compare */
        double lim4 = ceil(4 * level);
        int32_t lim = !(lim4 > INT32_MIN) ? INT32_MIN /* NaN too: none */
                      : lim4 > INT32_MAX  ? INT32_MAX
                                          : (int32_t)lim4;
        for (int y = 0; y < h2; y++) {
            const void *fr = kms_image_row(&fh, y);
            const uint8_t *b = kms_image_row(&bh, y);
            uint8_t *m = kms_image_row(&mask, y);
            if (exact)
                for (int x = 0; x < w2; x++)
                    m[x] = (((const int32_t *)fr)[x] < lim) & (b[x] != 0);
            else
                for (int x = 0; x < w2; x++)
                    m[x] = (((const float *)fr)[x] < level) & (b[x] != 0);
        }
        st = label_with_means(&mask, &hh, 1, &c, err);
        if (st == KMS_OK)
            st = find_lumens(s, &c, &fh, s->A / 4, min_area, 1, 2, &acc,
                             &painted, err);
        kms_runs r = c.r; /* keep the run buffers for the next level */
        c.r = (kms_runs){0};
        comps_free(&c);
        c.r = r;
    }
    if (st == KMS_OK)
        st = upsample_lumens(s, &acc, &painted, airway, abox, err);
    comps_free(&c);
    kms_image_free(&mask);
    kms_image *all[] = {&fh, &hh, &bh, &acc};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        kms_image_free(all[i]);
    return st;
}

/* The airway zone: lumens dilated by their wall, kept as the box around
 * them (zone->data empty when there are none). */
typedef struct zone_t {
    kms_image img;
    box at;
} zone_t;

static kms_status make_zone(const slice_work *s, const kms_image *airway,
                            const box *abox, zone_t *z, kms_error *err)
{
    if (box_empty(abox))
        return KMS_OK;
    /* everything within `wall` of a lumen is inside the grown box */
    z->at = box_grow(abox, s->p->wall, s->w, s->h);
    kms_image view = kms_image_roi(airway, z->at.x0, z->at.y0,
                                   z->at.x1 - z->at.x0, z->at.y1 - z->at.y0);
    return morph(&view, &z->img, KMS_CV_MORPH_DILATE, s->p->wall, 1, err);
}

static inline const uint8_t *zone_row(const zone_t *z, int y)
{
    if (!z->img.data || y < z->at.y0 || y >= z->at.y1)
        return NULL;
    return (const uint8_t *)kms_image_row(&z->img, y - z->at.y0) - z->at.x0;
}

/* Step 8 for one side: holes filled, then a closing of radius `close` as
 * close/2 steps of a 5x5 ellipse (close to a true disk, 3x cheaper). All
 * within the box of the side's pieces, grown by more than the closing
 * reaches. */
static kms_status close_side(const slice_work *s, const comps *c,
                             const bool *keep, const bool *on_left,
                             const zone_t *zone, bool left, kms_image *out,
                             kms_error *err)
{
    box b = NO_BOX;
    for (int i = 1; i <= c->n; i++)
        if (keep[i] && on_left[i] == left)
            box_add(&b, c->c[i].x0, c->c[i].y0, c->c[i].x1 + 1, c->c[i].y1 + 1);
    if (box_empty(&b))
        return KMS_OK;
    b = box_grow(&b, s->p->close + 2, s->w, s->h);
    kms_image r = {0};
    kms_status st = kms_image_alloc(&r, b.x1 - b.x0, b.y1 - b.y0, 1,
                                    KMS_DEPTH_U8, err);
    for (int i = 1; st == KMS_OK && i <= c->n; i++)
        if (keep[i] && on_left[i] == left)
            kms_runs_paint(&c->r, i, &r, b.x0, b.y0, 255);
    for (int y = b.y0; st == KMS_OK && y < b.y1; y++) {
        const uint8_t *z = zone_row(zone, y);
        uint8_t *o = (uint8_t *)kms_image_row(&r, y - b.y0) - b.x0;
        int x0 = b.x0 > zone->at.x0 ? b.x0 : zone->at.x0;
        int x1 = b.x1 < zone->at.x1 ? b.x1 : zone->at.x1;
        for (int x = x0; z && x < x1; x++)
            o[x] = z[x] ? 0 : o[x];
    }
    if (st == KMS_OK)
        st = kms_mask_fill_holes(&r, 1, err);
    if (st == KMS_OK)
        st = kms_mask_close5(&r, (int)lround(s->p->close / 2.0), err);
    for (int y = b.y0; st == KMS_OK && y < b.y1; y++) {
        const uint8_t *cr = (const uint8_t *)kms_image_row(&r, y - b.y0) - b.x0;
        uint8_t *o = kms_image_row(out, y);
        for (int x = b.x0; x < b.x1; x++)
            o[x] |= cr[x];
    }
    kms_image_free(&r);
    return st;
}

/* Is piece i within `fissure` of a primary lung? The element is symmetric,
 * so that is: the piece dilated by it meets a primary lung, which only its
 * own box grown by `fissure` can show. */
static kms_status near_lung(const slice_work *s, const comps *c,
                            const bool *prim, int i, bool *near,
                            kms_error *err)
{
    const kms_component *k = &c->c[i];
    box b = {k->x0, k->y0, k->x1 + 1, k->y1 + 1};
    b = box_grow(&b, s->p->fissure, s->w, s->h);
    kms_image piece = {0}, grown = {0};
    *near = false;
    kms_status st = kms_image_alloc(&piece, b.x1 - b.x0, b.y1 - b.y0, 1,
                                    KMS_DEPTH_U8, err);
    if (st == KMS_OK) {
        kms_runs_paint(&c->r, i, &piece, b.x0, b.y0, 255);
        st = morph(&piece, &grown, KMS_CV_MORPH_DILATE, s->p->fissure, 1, err);
    }
    for (int y = b.y0; st == KMS_OK && !*near && y < b.y1; y++) {
        const uint8_t *g =
            (const uint8_t *)kms_image_row(&grown, y - b.y0) - b.x0;
        for (size_t j = c->r.row[y]; j < c->r.row[y + 1] && !*near; j++) {
            const kms_run *u = &c->r.run[j];
            if (!prim[u->label])
                continue;
            int x0 = u->x0 > b.x0 ? u->x0 : b.x0;
            int x1 = u->x1 < b.x1 ? u->x1 : b.x1;
            for (int x = x0; x < x1; x++)
                *near |= g[x] != 0;
        }
    }
    kms_image_free(&piece);
    kms_image_free(&grown);
    return st;
}

/* Pixels of each component that lie in an airway lumen. */
static void count_in_airway(const comps *c, const kms_image *airway,
                            const box *abox, long *in_airway)
{
    if (box_empty(abox))
        return;
    for (int y = abox->y0; y < abox->y1; y++) {
        const uint8_t *a = kms_image_row(airway, y);
        for (size_t j = c->r.row[y]; j < c->r.row[y + 1]; j++) {
            const kms_run *u = &c->r.run[j];
            int x0 = u->x0 > abox->x0 ? u->x0 : abox->x0;
            int x1 = u->x1 < abox->x1 ? u->x1 : abox->x1;
            long n = 0;
            for (int x = x0; x < x1; x++)
                n += a[x] != 0;
            in_airway[u->label] += n;
        }
    }
}

/* Step 7: which components are lung. prim[i]: a primary lung. */
static kms_status select_lungs(const slice_work *s, const comps *c,
                               const bool *prim, const kms_image *airway,
                               const box *abox, bool *keep, kms_error *err)
{
    long *in_airway = calloc((size_t)c->n + 1, sizeof *in_airway);
    if (!in_airway)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    count_in_airway(c, airway, abox, in_airway);
    kms_status st = KMS_OK;
    for (int i = 1; st == KMS_OK && i <= c->n; i++) {
        bool mostly_lumen = in_airway[i] > 0 &&
                            (double)in_airway[i] >= 0.5 * (double)c->c[i].area;
        double score = (c->mean[i] - s->air_ref) / s->den;
        bool piece = !prim[i] && !mostly_lumen &&
                     c->c[i].area >= s->p->min_piece * s->A &&
                     score >= s->p->airway_air;
        bool adjacent = false;
        /* only pieces that could be kept need the distance test */
        if (piece)
            st = near_lung(s, c, prim, i, &adjacent, err);
        keep[i] = (prim[i] || (piece && adjacent)) && !mostly_lumen;
    }
    free(in_airway);
    return st;
}

/* Step 6: lumens at the deeper levels (half size) and at T, with the
 * zone of their walls. */
static kms_status find_airways(slice_work *s, comps *c, kms_image *airway,
                               zone_t *zone, box *abox, kms_error *err)
{
    double *lung_means = c->mean;
    c->mean = NULL;
    kms_status st = kms_image_alloc(airway, s->w, s->h, 1, KMS_DEPTH_U8, err);
    if (st == KMS_OK && s->n_levels > 0)
        st = half_size_lumens(s, airway, abox, err);
    /* at T: the same components, judged by 1-px cores */
    if (st == KMS_OK)
        st = core_means(c, &s->hu, 1, err);
    if (st == KMS_OK)
        st = find_lumens(s, c, &s->f, s->A, s->p->airway_min, 1, 3, airway,
                         abox, err);
    free(c->mean);
    c->mean = lung_means;
    if (st == KMS_OK)
        st = make_zone(s, airway, abox, zone, err);
    return st;
}

/* Steps 4, 5 and on, given the body. *found: some lung in the slice. */
static kms_status find_lungs(slice_work *s, kms_image *out, bool *found,
                             kms_error *err)
{
    const lung_params *p = s->p;
    double top, height, xmid;
    bool body = false;
    comps c = {0};
    bool *prim = NULL, *keep = NULL, *on_left = NULL;
    kms_image airway = {0};
    zone_t zone = {.at = NO_BOX};
    box abox = NO_BOX;
    kms_status st = body_extent(s, &top, &height, &xmid, &body, err);
    *found = false;
    if (st != KMS_OK || !body)
        return st;
    st = label_with_means(&s->cand, &s->hu, 2, &c, err);
    if (st != KMS_OK)
        goto out;
    prim = calloc((size_t)c.n + 1, sizeof *prim);
    keep = calloc((size_t)c.n + 1, sizeof *keep);
    on_left = calloc((size_t)c.n + 1, sizeof *on_left);
    if (!prim || !keep || !on_left) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    /* step 5: lungs reach the dependent part of the body */
    double core_sum = 0, core_n = 0, mean_sum = 0;
    int n_prim = 0;
    for (int i = 1; i <= c.n; i++) {
        double bottom = (c.c[i].y1 + 1 - top) / height;
        prim[i] = c.c[i].area >= p->min_lung * s->A && bottom >= p->posterior;
        on_left[i] = c.sum_x[i] / (double)c.c[i].area < xmid;
        if (prim[i]) {
            core_sum += c.core_sum[i];
            core_n += c.core_n[i];
            mean_sum += c.mean[i];
            n_prim++;
        }
    }
    if (n_prim == 0)
        goto out; /* no lung in this slice */
    /* pooled over the lungs' cores; tiny lungs have none to speak of */
    s->lung_ref = core_n > 20 ? core_sum / core_n : mean_sum / n_prim;
    if (s->lung_ref - s->air_ref < p->min_contrast)
        goto out; /* as dark as outside air: gas, not parenchyma */
    s->den = s->lung_ref - s->air_ref > 1 ? s->lung_ref - s->air_ref : 1;
    st = find_airways(s, &c, &airway, &zone, &abox, err);
    /* step 7 and 8 */
    if (st == KMS_OK)
        st = select_lungs(s, &c, prim, &airway, &abox, keep, err);
    if (st == KMS_OK)
        st = close_side(s, &c, keep, on_left, &zone, true, out, err);
    if (st == KMS_OK)
        st = close_side(s, &c, keep, on_left, &zone, false, out, err);
    for (int y = zone.at.y0; st == KMS_OK && zone.img.data && y < zone.at.y1;
         y++) {
        const uint8_t *z = zone_row(&zone, y);
        uint8_t *o = kms_image_row(out, y);
        for (int x = zone.at.x0; x < zone.at.x1; x++)
            o[x] = z[x] ? 0 : o[x];
    }
    for (int y = 0; st == KMS_OK && y < s->h; y++) {
        const uint8_t *o = kms_image_row(out, y);
        uint8_t any = 0;
        for (int x = 0; x < s->w; x++)
            any |= o[x];
        *found |= any != 0;
    }
out:
    comps_free(&c);
    free(prim);
    free(keep);
    free(on_left);
    kms_image_free(&airway);
    kms_image_free(&zone.img);
    return st;
}

/* One slice of HU (S16) at the reference scale; out: U8 0/255 of its size. */
static kms_status segment_slice(const lung_params *p, const double *levels,
                                int n_levels, double T, const kms_image *raw,
                                kms_image *out, bool *found, kms_error *err)
{
    slice_work s = {.p = p, .n_levels = n_levels, .T = T, .w = raw->width,
                    .h = raw->height};
    memcpy(s.levels, levels, sizeof s.levels);
    bool body = false;
    *found = false;
    kms_status st = kms_image_alloc(out, raw->width, raw->height, 1,
                                    KMS_DEPTH_U8, err);
    if (st == KMS_OK)
        st = find_body(&s, raw, &body, err);
    if (st == KMS_OK && body)
        st = find_lungs(&s, out, found, err);
    slice_work_free(&s);
    return st;
}

/* --- the stage ------------------------------------------------------------ */

/* The image as HU in S16: CT as it is; 8-bit pictures through the window
 * they were displayed in. */
static kms_status to_hu(const lung_params *p, const kms_context *ctx,
                        kms_image *hu, kms_error *err)
{
    const kms_image *src = kms_context_as_read(ctx);
    if (src->channels != 1)
        return kms_error_set(err, KMS_ERR_INPUT, NULL, 0, "lung_mask",
                             "needs a single-channel image (read mode = "
                             "unchanged or grayscale)");
    if (ctx->hu)
        return kms_cv_convert(src, hu, KMS_DEPTH_S16, 1, 0, err);
    double scale = src->depth == KMS_DEPTH_U8 ? 255.0 : 65535.0;
    double gain = (p->display_hi - p->display_lo) / scale;
    return kms_cv_convert(src, hu, KMS_DEPTH_S16, gain, p->display_lo, err);
}

/* T in HU from the darkest and brightest centres (in sample units). */
static kms_status threshold_hu(const lung_params *p, const kms_context *ctx,
                               double fixed, double *T, kms_error *err)
{
    if (!isnan(fixed)) {
        *T = fixed;
        return KMS_OK;
    }
    if (ctx->dims != 1 || ctx->k < 2)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "lung_mask.threshold",
                             "kmeans needs k >= 2 on one feature (intensity); "
                             "this run has k = %d, %d features",
                             ctx->k, ctx->dims);
    double lo = ctx->centers[0], hi = ctx->centers[0];
    for (int j = 1; j < ctx->k; j++) {
        lo = fmin(lo, ctx->centers[j]);
        hi = fmax(hi, ctx->centers[j]);
    }
    double t = lo + p->boundary * (hi - lo);
    t = t * ctx->value_den / ctx->value_num; /* back to pixel units */
    if (!ctx->hu) {
        const kms_image *src = kms_context_as_read(ctx);
        double scale = src->depth == KMS_DEPTH_U8 ? 255.0 : 65535.0;
        t = p->display_lo + t * (p->display_hi - p->display_lo) / scale;
    }
    *T = t;
    return KMS_OK;
}

/* Pixel size of a slice, so it can be brought to the reference scale. */
static double pixel_mm(const kms_context *ctx, int width)
{
    if (ctx->volume.header && ctx->volume.voxel_mm[0] > 0)
        return ctx->volume.voxel_mm[0];
    return FIELD_OF_VIEW_MM / width;
}

typedef struct slice_job {
    const lung_params *p;
    double levels[MAX_LEVELS];
    int n_levels;
    double T;
    double scale;       /* reference pixels per input pixel */
    long found;         /* slices with lung */
} slice_job;

static kms_status lung_slice(const kms_image *src, kms_image *dst, void *arg,
                             kms_error *err)
{
    slice_job *j = arg;
    kms_image big = {0}, mask = {0};
    bool found = false;
    kms_status st = KMS_OK;
    bool resample = fabs(j->scale - 1) > 0.05;
    if (resample)
        st = kms_cv_resize(src, &big, (int)lround(src->width * j->scale),
                           (int)lround(src->height * j->scale), 0, 0,
                           KMS_CV_INTER_LINEAR, err);
    if (st == KMS_OK)
        st = segment_slice(j->p, j->levels, j->n_levels, j->T,
                           resample ? &big : src, &mask, &found, err);
    if (st == KMS_OK && resample) {
        /* back to the input grid: area-weighted, then half-way */
        kms_image back = {0};
        st = kms_cv_resize(&mask, &back, src->width, src->height, 0, 0,
                           KMS_CV_INTER_AREA, err);
        for (int y = 0; st == KMS_OK && y < back.height; y++) {
            uint8_t *r = kms_image_row(&back, y);
            for (int x = 0; x < back.width; x++)
                r[x] = r[x] >= 128 ? 255 : 0;
        }
        kms_image_move(&mask, &back);
    }
    if (st == KMS_OK)
        kms_image_move(dst, &mask);
    j->found += found;
    kms_image_free(&big);
    kms_image_free(&mask);
    return st;
}

/* The mask of every slice of hu (a stack of `slices`), at hu's size. */
static kms_status map_lung_slices(const kms_image *hu, int slices,
                                  slice_job *job, kms_image *mask,
                                  kms_error *err)
{
    if (slices <= 1)
        return lung_slice(hu, mask, job, err);
    int rows = hu->height / slices;
    kms_image all = {0}, one = {0};
    kms_status st = kms_image_alloc(&all, hu->width, hu->height, 1,
                                    KMS_DEPTH_U8, err);
    for (int z = 0; st == KMS_OK && z < slices; z++) {
        kms_image view = kms_image_rows(hu, z * rows, rows);
        st = lung_slice(&view, &one, job, err);
        for (int y = 0; st == KMS_OK && y < rows; y++)
            memcpy(kms_image_row(&all, z * rows + y), kms_image_row(&one, y),
                   (size_t)hu->width);
        kms_image_free(&one);
    }
    if (st == KMS_OK)
        kms_image_move(mask, &all);
    kms_image_free(&all);
    return st;
}

static kms_status lung_run(const void *params, kms_context *ctx, kms_error *err)
{
    const lung_params *p = params;
    slice_job job = {.p = p};
    double fixed;
    kms_image hu = {0};
    kms_status st = parse_levels(p, job.levels, &job.n_levels, err);
    if (st == KMS_OK)
        st = parse_threshold(p, &fixed, err);
    if (st == KMS_OK)
        st = threshold_hu(p, ctx, fixed, &job.T, err);
    /* CT read as S16 is HU already: no copy */
    const kms_image *src = kms_context_as_read(ctx);
    bool as_is = ctx->hu && src->depth == KMS_DEPTH_S16 && src->channels == 1;
    if (st == KMS_OK && !as_is)
        st = to_hu(p, ctx, &hu, err);
    if (st != KMS_OK)
        goto out;
    if (as_is)
        hu = *src; /* a view: never freed here */
    job.scale = pixel_mm(ctx, hu.width) / p->reference_mm;
    int slices = ctx->slices > 1 ? ctx->slices : 1;
    st = map_lung_slices(&hu, slices, &job, &ctx->mask, err);
    if (as_is)
        hu = (kms_image){0};
    if (st != KMS_OK)
        goto out;
    /* volumes: pieces far smaller than the lungs are strays of one slice */
    if (slices > 1 && p->min_volume > 0 && job.found > 0) {
        int32_t *labels = NULL;
        kms_component *c = NULL;
        int n = 0;
        st = kms_mask_label(&ctx->mask, slices, NULL, &labels, &c, &n, err);
        bool *keep = st == KMS_OK ? calloc((size_t)n + 1, sizeof *keep) : NULL;
        if (st == KMS_OK && keep) {
            long largest = 0;
            for (int i = 1; i <= n; i++)
                largest = c[i].area > largest ? c[i].area : largest;
            for (int i = 1; i <= n; i++)
                keep[i] = (double)c[i].area >= p->min_volume * (double)largest;
            kms_mask_keep_labels(&ctx->mask, labels, keep);
        } else if (st == KMS_OK) {
            st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        }
        free(labels);
        free(c);
        free(keep);
    }
    if (st == KMS_OK && job.found == 0)
        snprintf(ctx->note, sizeof ctx->note,
                 "no lung found (empty mask; threshold %.0f HU)", job.T);
out:
    kms_image_free(&hu);
    return st;
}

const kms_stage_class kms_stage_lung_mask = {
    .name = "lung_mask",
    .description = "mask of both lungs in CT from the k-means centres: body, "
                   "dependent dark regions, airways and gas cut out, lobes "
                   "kept, vessels filled",
    .params = lung_table,
    .params_size = sizeof(lung_params),
    .prepare = lung_prepare,
    .run = lung_run,
};
