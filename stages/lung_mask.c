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
 * are dropped. Design and measurements: README.md, "Lung masks". */
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
        char *end;
        double v = strtod(w, &end);
        if (end == w || *end || v < 0 || v > 2000 || *n == MAX_LEVELS)
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
    char *end;
    *t = strtod(p->threshold, &end);
    if (end == p->threshold || *end || *t < -1100 || *t > 500)
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

/* Working images of one slice, all w x h. */
typedef struct slice_work {
    const lung_params *p;
    double levels[MAX_LEVELS];
    int n_levels;
    double T;                 /* HU */
    int w, h;
    kms_image hu;             /* S16: HU, padding already air */
    kms_image f;              /* S16: smoothed */
    kms_image body;           /* U8 0/255 */
    kms_image cand;           /* U8 0/255 */
    double A;                 /* body area */
    double air_ref, lung_ref, den;
} slice_work;

static void slice_work_free(slice_work *s)
{
    kms_image_free(&s->hu);
    kms_image_free(&s->f);
    kms_image_free(&s->body);
    kms_image_free(&s->cand);
}

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

/* Steps 1 and 3: smoothing, body, outside air. false when there is no body. */
static kms_status find_body(slice_work *s, const kms_image *raw, bool *found,
                            kms_error *err)
{
    const lung_params *p = s->p;
    uint8_t *outside = NULL;
    long *hist = NULL;
    kms_image tissue = {0};
    kms_status st = kms_image_alloc(&s->hu, raw->width, raw->height, 1,
                                    KMS_DEPTH_S16, err);
    if (st != KMS_OK)
        return st;
    for (int y = 0; y < s->h; y++) {
        const int16_t *r = kms_image_row(raw, y);
        int16_t *o = kms_image_row(&s->hu, y);
        for (int x = 0; x < s->w; x++)
            o[x] = r[x] <= p->fov_min ? -1000 : r[x];
    }
    st = p->smooth_sigma > 0
             ? kms_cv_gaussian_blur(&s->hu, &s->f, 5, p->smooth_sigma, err)
             : kms_image_copy(&s->f, &s->hu, err);
    if (st == KMS_OK)
        st = kms_image_alloc(&tissue, s->w, s->h, 1, KMS_DEPTH_U8, err);
    outside = calloc((size_t)s->w * (size_t)s->h, 1);
    hist = calloc(HU_HI - HU_LO + 1, sizeof *hist);
    if (st == KMS_OK && (!outside || !hist))
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    if (st != KMS_OK)
        goto out;
    for (int y = 0; y < s->h; y++) {
        const int16_t *f = kms_image_row(&s->f, y);
        uint8_t *t = kms_image_row(&tissue, y);
        for (int x = 0; x < s->w; x++)
            t[x] = f[x] >= s->T ? 255 : 0;
    }
    /* outside air: dark pixels reached from the border through dark */
    st = kms_mask_reach_border(&tissue, outside, err);
    if (st == KMS_OK)
        st = kms_image_alloc(&s->body, s->w, s->h, 1, KMS_DEPTH_U8, err);
    if (st != KMS_OK)
        goto out;
    long air = 0;
    s->A = 0;
    for (int y = 0; y < s->h; y++) {
        const int16_t *r = kms_image_row(raw, y);
        uint8_t *b = kms_image_row(&s->body, y);
        for (int x = 0; x < s->w; x++) {
            size_t i = (size_t)y * (size_t)s->w + (size_t)x;
            b[x] = outside[i] ? 0 : 255;
            s->A += !outside[i];
            if (outside[i] && r[x] > p->fov_min) {
                int v = r[x] < HU_LO ? HU_LO : r[x] > HU_HI ? HU_HI : r[x];
                hist[v - HU_LO]++;
                air++;
            }
        }
    }
    /* the median: skin partial volume pulls a mean up */
    s->air_ref = air >= 500 ? median_of_histogram(hist, air) : -1000;
    *found = s->A > 0;
out:
    kms_image_free(&tissue);
    free(outside);
    free(hist);
    return st;
}

/* Front-to-back extent of the body without thin attachments (table,
 * straps): the box of the body eroded by 4 px, grown back by 4. */
static kms_status body_extent(const slice_work *s, double *top, double *height,
                              double *xmid, bool *found, kms_error *err)
{
    enum { OPEN_R = 4 };
    kms_image core = {0};
    kms_status st = morph(&s->body, &core, KMS_CV_MORPH_ERODE, OPEN_R, 1, err);
    if (st != KMS_OK)
        return st;
    int y0 = s->h, y1 = -1, x0 = s->w, x1 = -1;
    for (int y = 0; y < s->h; y++) {
        const uint8_t *r = kms_image_row(&core, y);
        for (int x = 0; x < s->w; x++) {
            if (!r[x])
                continue;
            y0 = y < y0 ? y : y0;
            y1 = y;
            x0 = x < x0 ? x : x0;
            x1 = x > x1 ? x : x1;
        }
    }
    kms_image_free(&core);
    *found = y1 >= 0;
    *top = y0 - OPEN_R;
    *height = y1 - y0 + 1 + 2 * OPEN_R;
    *xmid = 0.5 * (x0 + x1);
    return KMS_OK;
}

/* Components of a mask with the statistics the rules need. */
typedef struct comps {
    int32_t *labels;
    kms_component *c;   /* [1..n] */
    int n;
    double *mean;       /* core mean HU (all pixels when the core is tiny) */
    double *core_sum;   /* HU summed over the core, and its pixels */
    double *core_n;
    double *sum_x;      /* for the centroid */
} comps;

static void comps_free(comps *c)
{
    free(c->labels);
    free(c->c);
    free(c->mean);
    free(c->core_sum);
    free(c->core_n);
    free(c->sum_x);
    memset(c, 0, sizeof *c);
}

/* Each component's mean HU over its core: the mask eroded by core_r, which
 * leaves out the partial-volume rim. hu: S16 or F32. */
static kms_status core_means(comps *out, const kms_image *mask,
                             const kms_image *hu, int core_r, kms_error *err)
{
    kms_image core = {0};
    size_t n1 = (size_t)out->n + 1;
    free(out->mean);
    free(out->core_sum);
    free(out->core_n);
    free(out->sum_x);
    out->mean = calloc(n1, sizeof *out->mean);
    out->core_sum = calloc(n1, sizeof *out->core_sum);
    out->core_n = calloc(n1, sizeof *out->core_n);
    out->sum_x = calloc(n1, sizeof *out->sum_x);
    if (!out->mean || !out->core_sum || !out->core_n || !out->sum_x)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    kms_status st = morph(mask, &core, KMS_CV_MORPH_ERODE, core_r, 1, err);
    if (st != KMS_OK)
        return st;
    bool f32 = hu->depth == KMS_DEPTH_F32;
    for (int y = 0; y < mask->height; y++) {
        const int32_t *lab = out->labels + (size_t)y * (size_t)mask->width;
        const uint8_t *c = kms_image_row(&core, y);
        const void *row = kms_image_row(hu, y);
        for (int x = 0; x < mask->width; x++) {
            if (!lab[x])
                continue;
            out->sum_x[lab[x]] += x;
            if (c[x]) {
                out->core_sum[lab[x]] += f32 ? ((const float *)row)[x]
                                             : ((const int16_t *)row)[x];
                out->core_n[lab[x]] += 1;
            }
        }
    }
    for (int i = 1; i <= out->n; i++)
        out->mean[i] = out->core_n[i] >= 5
                           ? out->core_sum[i] / out->core_n[i]
                           : out->c[i].sum / (double)out->c[i].area;
    kms_image_free(&core);
    return KMS_OK;
}

/* Labels mask (8-connected) with sums of hu, then the core means. */
static kms_status label_with_means(const kms_image *mask, const kms_image *hu,
                                   int core_r, comps *out, kms_error *err)
{
    memset(out, 0, sizeof *out);
    kms_status st = kms_mask_label(mask, 1, hu, &out->labels, &out->c, &out->n,
                                   err);
    if (st == KMS_OK)
        st = core_means(out, mask, hu, core_r, err);
    if (st != KMS_OK)
        comps_free(out);
    return st;
}

/* Is component i walled: at least airway_wall of the ring ring0..ring1
 * pixels around it at or above T in f? */
static kms_status walled(const slice_work *s, const comps *c, int i,
                         const kms_image *f, int ring0, int ring1, bool *yes,
                         kms_error *err)
{
    const kms_component *k = &c->c[i];
    int q = ring1 + 1, W = f->width, H = f->height;
    int x0 = k->x0 - q < 0 ? 0 : k->x0 - q, y0 = k->y0 - q < 0 ? 0 : k->y0 - q;
    int x1 = k->x1 + q + 1 > W ? W : k->x1 + q + 1;
    int y1 = k->y1 + q + 1 > H ? H : k->y1 + q + 1;
    kms_image sub = {0}, outer = {0}, inner = {0};
    kms_status st = kms_image_alloc(&sub, x1 - x0, y1 - y0, 1, KMS_DEPTH_U8, err);
    for (int y = y0; st == KMS_OK && y < y1; y++) {
        uint8_t *o = kms_image_row(&sub, y - y0);
        const int32_t *lab = c->labels + (size_t)y * (size_t)W;
        for (int x = x0; x < x1; x++)
            o[x - x0] = lab[x] == i ? 255 : 0;
    }
    if (st == KMS_OK)
        st = morph(&sub, &outer, KMS_CV_MORPH_DILATE, ring1, 1, err);
    if (st == KMS_OK)
        st = morph(&sub, &inner, KMS_CV_MORPH_DILATE, ring0, 1, err);
    long ring = 0, wall = 0;
    for (int y = 0; st == KMS_OK && y < sub.height; y++) {
        const uint8_t *a = kms_image_row(&outer, y), *b = kms_image_row(&inner, y);
        const void *fr = kms_image_row(f, y + y0);
        for (int x = 0; x < sub.width; x++) {
            if (!a[x] || b[x])
                continue;
            double v = f->depth == KMS_DEPTH_F32 ? ((const float *)fr)[x + x0]
                                                 : ((const int16_t *)fr)[x + x0];
            ring++;
            wall += v >= s->T;
        }
    }
    *yes = ring > 0 && (double)wall >= s->p->airway_wall * (double)ring;
    kms_image_free(&sub);
    kms_image_free(&outer);
    kms_image_free(&inner);
    return st;
}

/* Step 6 for one mask: marks (255) in out the air-like, walled components
 * of c. area_scale: body area of this resolution; min_area in its pixels. */
static kms_status find_lumens(const slice_work *s, const comps *c,
                              const kms_image *f, double body_area,
                              int min_area, int ring0, int ring1,
                              kms_image *out, kms_error *err)
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
        for (int y = c->c[i].y0; y <= c->c[i].y1; y++) {
            uint8_t *o = kms_image_row(out, y);
            const int32_t *lab = c->labels + (size_t)y * (size_t)out->width;
            for (int x = c->c[i].x0; x <= c->c[i].x1; x++)
                if (lab[x] == i)
                    o[x] = 255;
        }
    }
    return st;
}

/* Deeper lumen levels on a half-size copy: a main bronchus's wall often has
 * a partial-volume gap at T, so its lumen joins the lung there. */
static kms_status half_size_lumens(const slice_work *s, kms_image *airway,
                                   kms_error *err)
{
    int w2 = s->w / 2, h2 = s->h / 2;
    kms_image f32 = {0}, hu32 = {0}, fh = {0}, hh = {0}, bh = {0}, acc = {0},
              mask = {0}, up = {0};
    comps c = {0};
    kms_status st = kms_cv_convert(&s->f, &f32, KMS_DEPTH_F32, 1, 0, err);
    if (st == KMS_OK)
        st = kms_cv_convert(&s->hu, &hu32, KMS_DEPTH_F32, 1, 0, err);
    if (st == KMS_OK)
        st = kms_cv_resize(&f32, &fh, w2, h2, 0, 0, KMS_CV_INTER_AREA, err);
    if (st == KMS_OK)
        st = kms_cv_resize(&hu32, &hh, w2, h2, 0, 0, KMS_CV_INTER_AREA, err);
    if (st == KMS_OK)
        st = kms_cv_resize(&s->body, &bh, w2, h2, 0, 0, KMS_CV_INTER_NEAREST, err);
    if (st == KMS_OK)
        st = kms_image_alloc(&acc, w2, h2, 1, KMS_DEPTH_U8, err);
    if (st == KMS_OK)
        st = kms_image_alloc(&mask, w2, h2, 1, KMS_DEPTH_U8, err);
    for (int l = 0; st == KMS_OK && l < s->n_levels; l++) {
        double level = s->T - s->levels[l];
        for (int y = 0; y < h2; y++) {
            const float *fr = kms_image_row(&fh, y);
            const uint8_t *b = kms_image_row(&bh, y);
            uint8_t *m = kms_image_row(&mask, y);
            for (int x = 0; x < w2; x++)
                m[x] = fr[x] < level && b[x] ? 255 : 0;
        }
        st = label_with_means(&mask, &hh, 1, &c, err);
        if (st == KMS_OK) {
            int min_area = s->p->airway_min / 4 > 1 ? s->p->airway_min / 4 : 1;
            st = find_lumens(s, &c, &fh, s->A / 4, min_area, 1, 2, &acc, err);
        }
        comps_free(&c);
    }
    if (st == KMS_OK)
        st = kms_cv_resize(&acc, &up, s->w, s->h, 0, 0, KMS_CV_INTER_NEAREST, err);
    for (int y = 0; st == KMS_OK && y < s->h; y++) {
        const uint8_t *u = kms_image_row(&up, y);
        uint8_t *a = kms_image_row(airway, y);
        for (int x = 0; x < s->w; x++)
            a[x] |= u[x];
    }
    kms_image *all[] = {&f32, &hu32, &fh, &hh, &bh, &acc, &mask, &up};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        kms_image_free(all[i]);
    return st;
}

/* Step 8 for one side: holes filled, then a closing of radius `close` as
 * close/2 steps of a 5x5 ellipse (close to a true disk, 3x cheaper). */
static kms_status close_side(const slice_work *s, const comps *c,
                             const bool *keep, const kms_image *zone,
                             bool left, double xmid, kms_image *out,
                             kms_error *err)
{
    int q = s->p->close + 2, x0 = s->w, x1 = -1, y0 = s->h, y1 = -1;
    for (int i = 1; i <= c->n; i++) {
        double cx = c->sum_x[i] / (double)c->c[i].area;
        if (!keep[i] || (cx < xmid) != left)
            continue;
        x0 = c->c[i].x0 < x0 ? c->c[i].x0 : x0;
        x1 = c->c[i].x1 > x1 ? c->c[i].x1 : x1;
        y0 = c->c[i].y0 < y0 ? c->c[i].y0 : y0;
        y1 = c->c[i].y1 > y1 ? c->c[i].y1 : y1;
    }
    if (x1 < 0)
        return KMS_OK;
    x0 = x0 - q < 0 ? 0 : x0 - q;
    y0 = y0 - q < 0 ? 0 : y0 - q;
    x1 = x1 + q + 1 > s->w ? s->w : x1 + q + 1;
    y1 = y1 + q + 1 > s->h ? s->h : y1 + q + 1;
    kms_image r = {0}, grown = {0}, closed = {0};
    kms_status st = kms_image_alloc(&r, x1 - x0, y1 - y0, 1, KMS_DEPTH_U8, err);
    for (int y = y0; st == KMS_OK && y < y1; y++) {
        uint8_t *o = kms_image_row(&r, y - y0);
        const uint8_t *z = kms_image_row(zone, y);
        const int32_t *lab = c->labels + (size_t)y * (size_t)s->w;
        for (int x = x0; x < x1; x++) {
            int i = lab[x];
            bool side = i && (c->sum_x[i] / (double)c->c[i].area < xmid) == left;
            o[x - x0] = i && keep[i] && side && !z[x] ? 255 : 0;
        }
    }
    if (st == KMS_OK)
        st = kms_mask_fill_holes(&r, 1, err);
    int steps = (int)lround(s->p->close / 2.0);
    if (st == KMS_OK)
        st = morph(&r, &grown, KMS_CV_MORPH_DILATE, 2, steps, err);
    if (st == KMS_OK)
        st = morph(&grown, &closed, KMS_CV_MORPH_ERODE, 2, steps, err);
    for (int y = y0; st == KMS_OK && y < y1; y++) {
        const uint8_t *cr = kms_image_row(&closed, y - y0);
        uint8_t *o = kms_image_row(out, y);
        for (int x = x0; x < x1; x++)
            o[x] |= cr[x - x0];
    }
    kms_image_free(&r);
    kms_image_free(&grown);
    kms_image_free(&closed);
    return st;
}

/* Step 7: which components are lung. prim[i]: a primary lung. */
static kms_status select_lungs(const slice_work *s, const comps *c,
                               const bool *prim, const kms_image *airway,
                               bool *keep, kms_error *err)
{
    long *in_airway = calloc((size_t)c->n + 1, sizeof *in_airway);
    bool *adjacent = calloc((size_t)c->n + 1, sizeof *adjacent);
    kms_image primary = {0}, near = {0};
    kms_status st = KMS_OK;
    if (!in_airway || !adjacent) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    bool others = false;
    for (int i = 1; i <= c->n; i++)
        others |= !prim[i];
    st = kms_image_alloc(&primary, s->w, s->h, 1, KMS_DEPTH_U8, err);
    for (int y = 0; st == KMS_OK && y < s->h; y++) {
        const int32_t *lab = c->labels + (size_t)y * (size_t)s->w;
        const uint8_t *a = kms_image_row(airway, y);
        uint8_t *pr = kms_image_row(&primary, y);
        for (int x = 0; x < s->w; x++) {
            in_airway[lab[x]] += lab[x] && a[x];
            pr[x] = prim[lab[x]] && lab[x] ? 255 : 0;
        }
    }
    /* only pieces that are not lungs themselves need the distance test */
    if (st == KMS_OK && others)
        st = morph(&primary, &near, KMS_CV_MORPH_DILATE, s->p->fissure, 1, err);
    for (int y = 0; st == KMS_OK && others && y < s->h; y++) {
        const int32_t *lab = c->labels + (size_t)y * (size_t)s->w;
        const uint8_t *nr = kms_image_row(&near, y);
        for (int x = 0; x < s->w; x++)
            adjacent[lab[x]] |= nr[x] != 0;
    }
    for (int i = 1; st == KMS_OK && i <= c->n; i++) {
        double score = (c->mean[i] - s->air_ref) / s->den;
        bool piece = c->c[i].area >= s->p->min_piece * s->A &&
                     score >= s->p->airway_air && adjacent[i];
        bool mostly_lumen = in_airway[i] > 0 &&
                            (double)in_airway[i] >= 0.5 * (double)c->c[i].area;
        keep[i] = (prim[i] || piece) && !mostly_lumen;
    }
out:
    free(in_airway);
    free(adjacent);
    kms_image_free(&primary);
    kms_image_free(&near);
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
    bool *prim = NULL, *keep = NULL;
    double *lung_means = NULL;
    kms_image airway = {0}, zone = {0};
    kms_status st = body_extent(s, &top, &height, &xmid, &body, err);
    *found = false;
    if (st != KMS_OK || !body)
        return st;
    st = kms_image_alloc(&s->cand, s->w, s->h, 1, KMS_DEPTH_U8, err);
    for (int y = 0; st == KMS_OK && y < s->h; y++) {
        const int16_t *f = kms_image_row(&s->f, y);
        const uint8_t *b = kms_image_row(&s->body, y);
        uint8_t *o = kms_image_row(&s->cand, y);
        for (int x = 0; x < s->w; x++)
            o[x] = f[x] < s->T && b[x] ? 255 : 0;
    }
    if (st == KMS_OK)
        st = label_with_means(&s->cand, &s->hu, 2, &c, err);
    if (st != KMS_OK)
        goto out;
    prim = calloc((size_t)c.n + 1, sizeof *prim);
    keep = calloc((size_t)c.n + 1, sizeof *keep);
    if (!prim || !keep) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    /* step 5: lungs reach the dependent part of the body */
    double core_sum = 0, core_n = 0, mean_sum = 0;
    int n_prim = 0;
    for (int i = 1; i <= c.n; i++) {
        double bottom = (c.c[i].y1 + 1 - top) / height;
        prim[i] = c.c[i].area >= p->min_lung * s->A && bottom >= p->posterior;
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
    /* step 6: airway lumens and gas pockets, with their wall */
    st = kms_image_alloc(&airway, s->w, s->h, 1, KMS_DEPTH_U8, err);
    if (st == KMS_OK && s->n_levels > 0)
        st = half_size_lumens(s, &airway, err);
    /* at T: the same components, judged by 1-px cores */
    if (st == KMS_OK) {
        lung_means = c.mean;
        c.mean = NULL;
        st = core_means(&c, &s->cand, &s->hu, 1, err);
    }
    if (st == KMS_OK)
        st = find_lumens(s, &c, &s->f, s->A, p->airway_min, 1, 3, &airway, err);
    if (st == KMS_OK) {
        free(c.mean);
        c.mean = lung_means;
        lung_means = NULL;
    }
    if (st == KMS_OK)
        st = morph(&airway, &zone, KMS_CV_MORPH_DILATE, p->wall, 1, err);
    /* step 7 and 8 */
    if (st == KMS_OK)
        st = select_lungs(s, &c, prim, &airway, keep, err);
    if (st == KMS_OK)
        st = close_side(s, &c, keep, &zone, true, xmid, out, err);
    if (st == KMS_OK)
        st = close_side(s, &c, keep, &zone, false, xmid, out, err);
    for (int y = 0; st == KMS_OK && y < s->h; y++) {
        uint8_t *o = kms_image_row(out, y);
        const uint8_t *z = kms_image_row(&zone, y);
        for (int x = 0; x < s->w; x++) {
            o[x] = z[x] ? 0 : o[x];
            *found |= o[x] != 0;
        }
    }
out:
    comps_free(&c);
    free(lung_means);
    free(prim);
    free(keep);
    kms_image_free(&airway);
    kms_image_free(&zone);
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
    const kms_image *src = ctx->original.data ? &ctx->original : &ctx->image;
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
        const kms_image *src = ctx->original.data ? &ctx->original : &ctx->image;
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
    kms_status st;
    bool resample = fabs(j->scale - 1) > 0.05;
    if (resample)
        st = kms_cv_resize(src, &big, (int)lround(src->width * j->scale),
                           (int)lround(src->height * j->scale), 0, 0,
                           KMS_CV_INTER_LINEAR, err);
    else
        st = kms_image_copy(&big, src, err);
    if (st == KMS_OK)
        st = segment_slice(j->p, j->levels, j->n_levels, j->T, &big, &mask,
                           &found, err);
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
    if (st == KMS_OK)
        st = to_hu(p, ctx, &hu, err);
    if (st != KMS_OK)
        goto out;
    job.scale = pixel_mm(ctx, hu.width) / p->reference_mm;
    int slices = ctx->slices > 1 ? ctx->slices : 1;
    st = kms_map_slices(&hu, slices, lung_slice, &job, err);
    if (st != KMS_OK)
        goto out;
    kms_image_move(&ctx->mask, &hu);
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
