/* lung_mask: both lungs of axial CT as a binary mask, from the 2-means
 * centres of the slice's own values.
 *
 * Units first: kms_check_hu (hu_check.h) before any pixel work. CT of any
 * depth is taken to S16 HU (rounded, clamped); 8-bit pictures through
 * their display window.
 *
 * The threshold needs no other stage: the exact 2-means of the input's own
 * values as samples/lung_ct.ini's window (padding left out, clipped to
 * [-1100, 600] HU) and denoise (5x5 Gaussian, sigma 1) give them to
 * k-means, from a histogram (threshold_hu). Any config with read before
 * lung_mask works, and gives the masks of lung_ct.ini.
 *
 * Orientation (2-D slices): the method assumes the canonical axial view
 * (anterior at the top, a supine patient: gas rises to the top). A slice
 * with a header's orientation (ctx->orient_known, DICOM) is brought to that
 * view by its code (orient.h); other slices by the side their bone lies on
 * (find_orient: the body's aspect and the offset of bone from the body's
 * centre; method, measurements and limits there); the mask is brought
 * back to the input's grid. `orient = stored` turns it off. Volumes are a
 * canonical stack already (nifti_io.h).
 *
 * Per slice, at a reference scale of 0.7 mm per pixel (a 512-pixel slice of
 * a 358 mm chest field of view unless read.spacing or a header gives the
 * pixel size; other resolutions are resampled to it):
 *  1. padding outside the field of view becomes air; a 5x5 Gaussian takes
 *     the ~100 HU pixel noise down to ~30 HU;
 *  2. dark = below T, where T lies `boundary` of the way from the dark
 *     centre to the bright one (0.5 is the k-means label boundary; the
 *     manual masks' edge sits a little towards tissue, about -300 HU);
 *  3. outside air = dark pixels connected to the image border, but for
 *     lungs cut by the border in a zoomed view (lungs_at_border: large,
 *     walled by tissue, with vessels, not the table's gap); body = the
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
 *     border and takes in vessels at it;
 *  9. right and left (lung_sides.c): each component to the side of the
 *     body's mid-line its centroid is on; lungs touching at the anterior or
 *     posterior junction are split at their neck (erosion cores grown back
 *     within the mask), not by a straight line;
 * 10. dense lung against the ribs (consolidation, juxtapleural nodules,
 *     dependent lung; lung_pathology.c): bites between a lung and its
 *     convex hull that face the ribs (lateral to posterior from the lung's
 *     centroid), thick enough for their length, are filled; the heart's,
 *     hilum's and domes' concavities are not. None of the 24 development
 *     slices' masks changes (byte for byte); synthetic patches painted into
 *     them are taken in (lung_pathology_test.sh).
 * 2-D slices: the sides come back to the input's grid with the mask (a
 * resampled slice: each side's share of a pixel by area, the larger one).
 * Volumes: in 3-D, by lung_volume.c (its header). Design and
 * measurements: README.md, "Lung masks".
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

#include "hu_check.h"
#include "kmeans.h"
#include "lung_pathology.h"
#include "lung_sides.h"
#include "lung_volume.h"
#include "mask_ops.h"
#include "opencv_c.h"
#include "orient.h"
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
    int pleural_depth;
    double pleural_lo;
    double pleural_hi;
    double reference_mm;
    double display_lo;
    double display_hi;
    double min_volume;
    int orient;
    double airway_hu;
    bool rib_hull;
} lung_params;

typedef enum lung_orient {
    ORIENT_AUTO,
    ORIENT_STORED,
    ORIENT_MIRRORED /* upright, the patient's right on the image's right */
} lung_orient;
static const kms_choice orient_choices[] = {{"auto", ORIENT_AUTO},
                                            {"stored", ORIENT_STORED},
                                            {"mirrored", ORIENT_MIRRORED},
                                            {NULL, 0}};

static const kms_param lung_table[] = {
    {"threshold", KMS_PARAM_STRING, "kmeans", 0, 0, NULL,
     offsetof(lung_params, threshold),
     "kmeans: between the dark and bright centres of the slice's own "
     "exact 2-means (values clipped to -1100..600 HU and smoothed, as "
     "samples/lung_ct.ini's k-means sees them; see boundary); or a fixed HU "
     "level such as -300"},
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
    {"pleural_depth", KMS_PARAM_INT, "4", 0, 100, NULL,
     offsetof(lung_params, pleural_depth),
     "dense lung against the ribs (consolidation, juxtapleural nodules, "
     "dependent lung): bites between a lung and its convex hull at least "
     "this thick (reference pixels) on the rib side are lung (0: off)"},
    {"pleural_lo", KMS_PARAM_DOUBLE, "-45", -180, 180, NULL,
     offsetof(lung_params, pleural_lo),
     "the rib side, from a lung's centroid: from this direction (degrees; "
     "0 lateral, 90 posterior, -90 anterior) ..."},
    {"pleural_hi", KMS_PARAM_DOUBLE, "110", -180, 180, NULL,
     offsetof(lung_params, pleural_hi),
     "... to this one (beyond: the aorta, spine and mediastinum)"},
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
    {"orient", KMS_PARAM_CHOICE, "auto", 0, 0, orient_choices,
     offsetof(lung_params, orient),
     "2-D slices: auto: the header's orientation (DICOM), else found from "
     "the body's shape and where its bone lies (the spine and posterior "
     "ribs are at the back); stored: upright as stored (anterior at the "
     "top) in radiological display (the patient's right on the image's "
     "left); mirrored: upright, the patient's right on the image's right "
     "(neurological display). Right and left (lungs): a slice without a "
     "header is taken as radiological display; one stored mirrored needs "
     "orient = mirrored, or gets its sides swapped"},
    {"airway_hu", KMS_PARAM_DOUBLE, "-950", -1200, -500, NULL,
     offsetof(lung_params, airway_hu),
     "volumes: the trachea and main bronchi are followed down from the top "
     "through voxels below this HU and cut out (-1200: not looked for)"},
    {"rib_hull", KMS_PARAM_BOOL, "true", 0, 0, NULL,
     offsetof(lung_params, rib_hull),
     "volumes: per slice, bites in each lung's outline from the rib side "
     "(hull pixels with lung in front of them and medial of them within "
     "25 mm: consolidation, nodules, dense dependent lung) are taken in; "
     "the heart and the organs under the domes are not"},
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
    if (!link->image.present)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                             "lung_mask needs an image: put read before it");
    if (!(link->image.channels & KMS_CHANNELS_1))
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                             "lung_mask needs one value per pixel, but "
                             "read.mode = color gives three: set read.mode = "
                             "unchanged (CT) or grayscale");
    if (p->display_lo >= p->display_hi)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "display_hi",
                             "must be above display_lo");
    link->mask = true;
    link->lungs = true;
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
    bool air_unseen;          /* lungs at the border: air_ref no reference */
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

/* Outside air's HU are counted in HIST_WAYS histograms, pixel x into
 * x % HIST_WAYS: air is nearly one value, and increments of one bin in a
 * row wait for each other. Their sum is the histogram. */
enum { HIST_BINS = HU_HI - HU_LO + 1, HIST_WAYS = 4 };

static double median_of_histogram(const uint32_t *hist, long count)
{
    long half = (count + 1) / 2, seen = 0;
    for (int v = 0; v < HIST_BINS; v++) {
        for (int k = 0; k < HIST_WAYS; k++)
            seen += hist[k * HIST_BINS + v];
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

/* HU of r[x0 .. x1) above fov into the histograms; how many. */
static long count_air(const int16_t *r, int x0, int x1, int fov,
                      uint32_t *hist)
{
    long n = 0;
    for (int x = x0; x < x1; x++) {
        if (r[x] <= fov)
            continue;
        int v = r[x] < HU_LO ? HU_LO : r[x] > HU_HI ? HU_HI : r[x];
        hist[(x % HIST_WAYS) * HIST_BINS + v - HU_LO]++;
        n++;
    }
    return n;
}

/* Step 3 for a zoomed field of view (lungs cut by the image's edge): a dark
 * component that reaches the border is outside air unless it looks like
 * lung by its shape and its vessels. No HU level tells them apart: HU of
 * some scanners are offset (air at -810 on the 24 slices) and the foam
 * under the patient is as dark as lung. Lung, when all of:
 *  - large: LUNG_AT_BORDER of the image at least;
 *  - not at the bottom edge, and not from the left edge to the right below
 *    the top: that is the gap between the body and the table and its foam
 *    (the slice is upright by now, and the back wall is thick, so a view
 *    cut around the body keeps it); lungs joined in front may reach the
 *    top edge;
 *  - mostly walled by tissue: few pixels on the image border for its size
 *    (contact < CONTACT_MAX * sqrt(area): a lung cut by the edge measures
 *    0.1 .. 1.5, the air around a body 4 .. 6, in a corner about 3);
 *  - vessels: holes (tissue it encloses) of HOLES_MIN of its area, or in
 *    its rows GAPS_MIN short gaps (< GAP_MAX) of tissue per pixel. Lungs at
 *    the border of the zoomed views: holes 0.2 .. 6 %, gaps 1 .. 7 per
 *    1000; the air and foam at the border of the 24 full slices: holes
 *    0.1 % and gaps 1.5 per 1000 at most.
 * On the 24 full slices no border component passes (masks unchanged).
 * Such components are cleared in border[]; *moved: some were. The outside
 * air left is then too little, or mixed with foam, to be a reference:
 * find_lungs takes air as at least UNSEEN_CONTRAST below the lungs. */
static const double LUNG_AT_BORDER = 0.005, CONTACT_MAX = 2.3;
static const double GAPS_MIN = 2e-3, HOLES_MIN = 1.5e-3;
/* Lung minus air when the air in view is no reference: the median over
 * the 24 slices (47 .. 182 HU) */
static const double UNSEEN_CONTRAST = 80;
enum { GAP_MAX = 20 };
enum { SIDE_LEFT = 1, SIDE_RIGHT = 2, SIDE_TOP = 4, SIDE_BOTTOM = 8 };

typedef struct border_comp {
    long area, contact, gaps;
    unsigned sides; /* SIDE_* bits: the image edges it reaches */
    box at;
} border_comp;

/* Pixels in the holes of component l (tissue it encloses: vessels), in a
 * box one pixel larger than its own, so holes open to the image's edge do
 * not count. */
static kms_status hole_area(const kms_runs *d, int l, const box *at,
                            long *holes, kms_error *err)
{
    kms_image m = {0};
    int w = at->x1 - at->x0 + 2, h = at->y1 - at->y0 + 2;
    kms_status st = kms_image_alloc(&m, w, h, 1, KMS_DEPTH_U8, err);
    if (st == KMS_OK) {
        kms_runs_paint(d, l, &m, at->x0 - 1, at->y0 - 1, 255);
        st = kms_mask_fill_holes(&m, 1, err);
    }
    long n = 0;
    for (int y = 0; st == KMS_OK && y < h; y++) {
        const uint8_t *r = kms_image_row(&m, y);
        for (int x = 0; x < w; x++)
            n += r[x] != 0;
    }
    kms_image_free(&m);
    *holes = n;
    return st;
}

static kms_status lungs_at_border(const slice_work *s, const kms_runs *d,
                                  bool *border, bool *moved,
                                  kms_error *err)
{
    border_comp *bc = calloc((size_t)d->n_labels + 1, sizeof *bc);
    *moved = false;
    if (!bc)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    for (size_t k = 0; k < d->n; k++) {
        const kms_run *u = &d->run[k];
        if (!border[u->label])
            continue;
        border_comp *c = &bc[u->label];
        /* a gap of tissue narrower than a large vessel to the component's
         * next run in this row */
        for (size_t j = k + 1; j < d->row[u->y + 1]; j++)
            if (d->run[j].label == u->label) {
                c->gaps += d->run[j].x0 - u->x1 <= GAP_MAX;
                break;
            }
        if (c->area == 0)
            c->at = NO_BOX;
        box_add(&c->at, u->x0, u->y, u->x1, u->y + 1);
        c->area += u->x1 - u->x0;
        c->sides |= (u->x0 == 0 ? SIDE_LEFT : 0u) |
                    (u->x1 == s->w ? SIDE_RIGHT : 0u) |
                    (u->y == 0 ? SIDE_TOP : 0u) |
                    (u->y == s->h - 1 ? SIDE_BOTTOM : 0u);
        c->contact += u->y == 0 || u->y == s->h - 1
                          ? u->x1 - u->x0
                          : (u->x0 == 0) + (u->x1 == s->w);
    }
    double min_area = LUNG_AT_BORDER * (double)s->w * (double)s->h;
    kms_status st = KMS_OK;
    for (int l = 1; st == KMS_OK && l <= d->n_labels; l++) {
        const border_comp *c = &bc[l];
        /* the table's gap: at the bottom, or across below the top */
        bool table = (c->sides & SIDE_BOTTOM) ||
                     ((c->sides & (SIDE_LEFT | SIDE_RIGHT)) ==
                          (SIDE_LEFT | SIDE_RIGHT) &&
                      !(c->sides & SIDE_TOP));
        if (!border[l] || table || (double)c->area < min_area ||
            (double)c->contact >= CONTACT_MAX * sqrt((double)c->area))
            continue;
        long holes = 0;
        st = hole_area(d, l, &c->at, &holes, err);
        holes -= c->area;
        if ((double)holes >= HOLES_MIN * (double)c->area ||
            (double)c->gaps >= GAPS_MIN * (double)c->area) {
            border[l] = false;
            *moved = true;
        }
    }
    free(bc);
    return st;
}

/* Step 3, outside air: the dark components (4-connected) that reach the
 * border of the image, as a flood fill from the border would find them,
 * but for lungs cut by the border (lungs_at_border).
 * They leave the candidate mask, and their HU go into the histogram
 * (padding left out); returns how many did, *area the outside's size. */
static kms_status find_outside(slice_work *s, const kms_image *raw,
                               uint32_t *hist, long *air, long *area,
                               bool *lung_at_border, kms_error *err)
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
    st = lungs_at_border(s, d, border, lung_at_border, err);
    if (st != KMS_OK)
        goto out;
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
    uint32_t *hist = calloc(HIST_WAYS * HIST_BINS, sizeof *hist);
    long air = 0, outside = 0;
    kms_status st = hist ? smooth(s, raw, err)
                         : kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                                         "out of memory");
    if (st == KMS_OK)
        st = find_dark(s, err);
    if (st == KMS_OK)
        st = find_outside(s, raw, hist, &air, &outside, &s->air_unseen, err);
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
    /* not clipped to the image: past its edge is background, or a lung cut
     * by the edge (a zoomed view) would close onto the edge */
    const int q = s->p->close + 2;
    b = (box){b.x0 - q, b.y0 - q, b.x1 + q, b.y1 + q};
    kms_image r = {0};
    kms_status st = kms_image_alloc(&r, b.x1 - b.x0, b.y1 - b.y0, 1,
                                    KMS_DEPTH_U8, err);
    for (int i = 1; st == KMS_OK && i <= c->n; i++)
        if (keep[i] && on_left[i] == left)
            kms_runs_paint(&c->r, i, &r, b.x0, b.y0, 255);
    for (int y = b.y0; st == KMS_OK && y < b.y1; y++) {
        const uint8_t *z = zone_row(zone, y); /* NULL outside the image */
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
    const box in = box_grow(&b, 0, s->w, s->h); /* b within the image */
    for (int y = in.y0; st == KMS_OK && y < in.y1; y++) {
        const uint8_t *cr = (const uint8_t *)kms_image_row(&r, y - b.y0) - b.x0;
        uint8_t *o = kms_image_row(out, y);
        for (int x = in.x0; x < in.x1; x++)
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

/* Bone is never lung (the ribs dent a lung's hull) */
enum { PLEURAL_BONE_HU = 200 };

/* Steps 4, 5 and on, given the body. *found: some lung in the slice.
 * sides: the lungs by side (lung_sides.h), of out's size. */
static kms_status find_lungs(slice_work *s, kms_image *out, kms_image *sides,
                             bool *found, kms_error *err)
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
    if (s->air_unseen) /* lungs cut by the border have vessels, gas none */
        s->air_ref = fmin(s->air_ref, s->lung_ref - UNSEEN_CONTRAST);
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
    /* step 9: right and left */
    if (st == KMS_OK && *found)
        st = kms_lung_sides(out, xmid, sides, err);
    /* step 10: dense lung against the ribs */
    if (st == KMS_OK && *found && p->pleural_depth > 0) {
        kms_pleural_fill pf = {p->pleural_depth, p->pleural_lo, p->pleural_hi,
                               PLEURAL_BONE_HU};
        long added = 0;
        st = kms_lung_pleural_fill(&pf, &s->f, &s->outside, out, sides, &added,
                                   err);
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

/* One slice of HU (S16) at the reference scale; out: U8 0/255 of its size,
 * sides: 0 / KMS_LUNG_RIGHT / KMS_LUNG_LEFT of its size. */
static kms_status segment_slice(const lung_params *p, const double *levels,
                                int n_levels, double T, const kms_image *raw,
                                kms_image *out, kms_image *sides, bool *found,
                                kms_error *err)
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
        st = find_lungs(&s, out, sides, found, err);
    if (st == KMS_OK && !sides->data)
        st = kms_image_alloc(sides, raw->width, raw->height, 1, KMS_DEPTH_U8,
                             err);
    slice_work_free(&s);
    return st;
}

/* --- the stage ------------------------------------------------------------ */

/* 8-bit pictures are not HU: they are read through their display window. */
static bool is_picture(const kms_context *ctx, const kms_image *src)
{
    return !ctx->hu || src->depth == KMS_DEPTH_U8;
}

/* The image as HU in S16: CT of any other depth rounded and clamped to
 * int16; 8-bit pictures through the window they were displayed in. */
static kms_status to_hu(const lung_params *p, const kms_context *ctx,
                        kms_image *hu, kms_error *err)
{
    const kms_image *src = kms_context_as_read(ctx);
    if (src->channels != 1)
        return kms_error_set(err, KMS_ERR_INPUT, NULL, 0, "lung_mask",
                             "needs a single-channel image (read mode = "
                             "unchanged or grayscale)");
    if (!is_picture(ctx, src))
        return kms_cv_convert(src, hu, KMS_DEPTH_S16, 1, 0, err);
    double scale = src->depth == KMS_DEPTH_U8 ? 255.0 : 65535.0;
    double gain = (p->display_hi - p->display_lo) / scale;
    return kms_cv_convert(src, hu, KMS_DEPTH_S16, gain, p->display_lo, err);
}

/* --- the threshold from the slice's own values ------------------------------
 * The dark (air, lung) and bright (soft tissue) centres are the exact 2-means
 * of the slice's values as samples/lung_ct.ini's window and denoise leave
 * them for k-means: padding left out, values clipped to [-1100, 600] HU (so
 * bone does not pull the bright centre), a 5x5 Gaussian of sigma 1. So the
 * mask depends on no other stage's settings, and equals that config's. */
enum { CENTRE_LO = -1100, CENTRE_HI = 600, CENTRE_KSIZE = 5 };
static const double CENTRE_SIGMA = 1.0;

/* Exact 2-means of integer values: count[i] samples of value lo + i, by the
 * library's exact 1-D k-means of a histogram (the centres kms_kmeans_run's
 * optimal method gives the same samples). No samples: both centres 0. */
static kms_status two_means(const long *count, int bins, int lo, double *c0,
                            double *c1, kms_error *err)
{
    float *values = malloc((size_t)bins * sizeof *values);
    uint64_t *counts = malloc((size_t)bins * sizeof *counts);
    kms_status st = values && counts
                        ? KMS_OK
                        : kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                                        "out of memory");
    uint64_t n = 0;
    for (int i = 0; st == KMS_OK && i < bins; i++) {
        values[i] = (float)(lo + i);
        counts[i] = (uint64_t)count[i];
        n += counts[i];
    }
    float c[2] = {0, 0};
    if (st == KMS_OK && n > 0)
        st = kms_kmeans_optimal_hist(values, counts, (size_t)bins, 2, NULL, c,
                                     NULL, err);
    *c0 = c[0];
    *c1 = c[1];
    free(values);
    free(counts);
    return st;
}

/* Histogram of one slice of HU as the window stage (padding_below =
 * fov_min, padding to air) and a 5x5 Gaussian would leave it; padding not
 * counted. count has CENTRE_HI - CENTRE_LO + 1 bins. */
static kms_status hu_histogram(const lung_params *p, const kms_image *hu,
                               long *count, kms_error *err)
{
    const int fov = (int)floor(p->fov_min); /* v <= fov_min, v integer */
    kms_image clipped = {0}, blurred = {0};
    kms_status st = kms_image_alloc_raw(&clipped, hu->width, hu->height, 1,
                                        KMS_DEPTH_S16, err);
    for (int y = 0; st == KMS_OK && y < hu->height; y++) {
        const int16_t *r = kms_image_row(hu, y);
        int16_t *o = kms_image_row(&clipped, y);
        for (int x = 0; x < hu->width; x++)
            o[x] = r[x] <= fov         ? -1000
                   : r[x] < CENTRE_LO ? CENTRE_LO
                   : r[x] > CENTRE_HI ? CENTRE_HI
                                      : r[x];
    }
    if (st == KMS_OK)
        st = kms_cv_gaussian_blur(&clipped, &blurred, CENTRE_KSIZE,
                                  CENTRE_SIGMA, err);
    /* four counts per value, so runs of one value do not wait on each
     * other's increments; a blur stays in the window */
    enum { BINS = CENTRE_HI - CENTRE_LO + 1 };
    long *four = st == KMS_OK ? calloc(4 * BINS, sizeof *four) : NULL;
    if (st == KMS_OK && !four)
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    long *h0 = st == KMS_OK ? four - CENTRE_LO : NULL;
    long *h1 = h0 ? h0 + BINS : NULL, *h2 = h1 ? h1 + BINS : NULL,
         *h3 = h2 ? h2 + BINS : NULL;
    for (int y = 0; st == KMS_OK && y < hu->height; y++) {
        const int16_t *r = kms_image_row(hu, y);
        const int16_t *b = kms_image_row(&blurred, y);
        int x = 0;
        for (; x + 4 <= hu->width; x += 4) {
            h0[b[x]] += r[x] > fov;
            h1[b[x + 1]] += r[x + 1] > fov;
            h2[b[x + 2]] += r[x + 2] > fov;
            h3[b[x + 3]] += r[x + 3] > fov;
        }
        for (; x < hu->width; x++)
            h0[b[x]] += r[x] > fov;
    }
    for (int v = 0; st == KMS_OK && v < BINS; v++)
        count[v] += four[v] + four[BINS + v] + four[2 * BINS + v] +
                    four[3 * BINS + v];
    free(four);
    kms_image_free(&clipped);
    kms_image_free(&blurred);
    return st;
}

/* Histogram of an 8-bit (or 16-bit) picture, smoothed like the HU: its
 * values are display units, with no padding to leave out. */
static kms_status picture_histogram(const kms_image *src, long *count,
                                    kms_error *err)
{
    kms_image blurred = {0};
    kms_status st = kms_cv_gaussian_blur(src, &blurred, CENTRE_KSIZE,
                                         CENTRE_SIGMA, err);
    for (int y = 0; st == KMS_OK && y < src->height; y++) {
        const void *b = kms_image_row(&blurred, y);
        for (int x = 0; x < src->width; x++)
            count[src->depth == KMS_DEPTH_U8 ? ((const uint8_t *)b)[x]
                                             : ((const uint16_t *)b)[x]]++;
    }
    kms_image_free(&blurred);
    return st;
}

/* T in HU: a fixed level, or `boundary` of the way from the dark centre to
 * the bright one of the slices' own values (hu: the slices as HU, a stack
 * of `slices`). Pictures: centres in display units, then through the
 * display window. */
static kms_status threshold_hu(const lung_params *p, const kms_context *ctx,
                               const kms_image *hu, int slices, double fixed,
                               double *T, kms_error *err)
{
    if (!isnan(fixed)) {
        *T = fixed;
        return KMS_OK;
    }
    const kms_image *src = kms_context_as_read(ctx);
    bool picture = is_picture(ctx, src) &&
                   (src->depth == KMS_DEPTH_U8 || src->depth == KMS_DEPTH_U16);
    int bins = !picture                      ? CENTRE_HI - CENTRE_LO + 1
               : src->depth == KMS_DEPTH_U8 ? 256
                                            : 65536;
    long *count = calloc((size_t)bins, sizeof *count);
    if (!count)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    kms_status st = KMS_OK;
    int rows = hu->height / slices;
    if (picture)
        st = picture_histogram(src, count, err);
    for (int z = 0; !picture && st == KMS_OK && z < slices; z++) {
        kms_image view = kms_image_rows(hu, z * rows, rows);
        st = hu_histogram(p, &view, count, err);
    }
    double lo = 0, hi = 0;
    if (st == KMS_OK)
        st = two_means(count, bins, picture ? 0 : CENTRE_LO, &lo, &hi, err);
    free(count);
    double t = lo + p->boundary * (hi - lo);
    if (picture)
        t = p->display_lo + t * (p->display_hi - p->display_lo) / (bins - 1);
    *T = t;
    return st;
}

/* Pixel size of a slice, so it can be brought to the reference scale. */
static void pixel_mm(const kms_context *ctx, int width, double mm[2])
{
    if (ctx->volume.header && ctx->volume.voxel_mm[0] > 0) {
        mm[0] = ctx->volume.voxel_mm[0];
        mm[1] = ctx->volume.voxel_mm[1] > 0 ? ctx->volume.voxel_mm[1] : mm[0];
    } else if (ctx->slices <= 1 && ctx->pixel_mm[0] > 0) {
        mm[0] = ctx->pixel_mm[0];
        mm[1] = ctx->pixel_mm[1] > 0 ? ctx->pixel_mm[1] : mm[0];
    } else {
        mm[0] = mm[1] = FIELD_OF_VIEW_MM / width;
    }
}

typedef struct slice_job {
    const lung_params *p;
    double levels[MAX_LEVELS];
    int n_levels;
    double T;
    double scale[2];    /* reference pixels per input pixel along x, y of
                           the slice lung_slice gets */
    long found;         /* slices with lung */
    int orient;         /* 2-D: code to the canonical view, -1: find it */
    int turned;         /* 2-D: the code found (find_orient) */
    int bone_hu;        /* find_orient's bone level */
    bool want_sides;    /* 2-D: keep the lungs by side in sides */
    kms_image sides;    /* 2-D: 0 / KMS_LUNG_RIGHT / _LEFT, the input's grid */
} slice_job;

/* Lungs by side (reference scale) to width x height: each side's share of
 * a pixel by area, the larger one wins; 0 where neither has any. The mask
 * is resampled on its own; the caller clears what it leaves out, and a
 * pixel it keeps always has some share of a side. */
static kms_status sides_back(kms_image *sides, int width, int height,
                             kms_error *err)
{
    kms_image one[2] = {{0}, {0}}, back[2] = {{0}, {0}}, out = {0};
    kms_status st = KMS_OK;
    for (int k = 0; st == KMS_OK && k < 2; k++) {
        st = kms_image_alloc_raw(&one[k], sides->width, sides->height, 1,
                                 KMS_DEPTH_U8, err);
        for (int y = 0; st == KMS_OK && y < sides->height; y++) {
            const uint8_t *r = kms_image_row(sides, y);
            uint8_t *o = kms_image_row(&one[k], y);
            for (int x = 0; x < sides->width; x++)
                o[x] = r[x] == k + 1 ? 255 : 0;
        }
        if (st == KMS_OK)
            st = kms_cv_resize(&one[k], &back[k], width, height, 0, 0,
                               KMS_CV_INTER_AREA, err);
    }
    if (st == KMS_OK)
        st = kms_image_alloc_raw(&out, width, height, 1, KMS_DEPTH_U8, err);
    for (int y = 0; st == KMS_OK && y < height; y++) {
        const uint8_t *a = kms_image_row(&back[0], y);
        const uint8_t *b = kms_image_row(&back[1], y);
        uint8_t *o = kms_image_row(&out, y);
        for (int x = 0; x < width; x++)
            o[x] = !a[x] && !b[x] ? 0
                   : a[x] >= b[x] ? KMS_LUNG_RIGHT
                                  : KMS_LUNG_LEFT;
    }
    if (st == KMS_OK)
        kms_image_move(sides, &out);
    for (int k = 0; k < 2; k++) {
        kms_image_free(&one[k]);
        kms_image_free(&back[k]);
    }
    kms_image_free(&out);
    return st;
}

static kms_status lung_slice(const kms_image *src, kms_image *dst, void *arg,
                             kms_error *err)
{
    slice_job *j = arg;
    kms_image big = {0}, mask = {0}, sides = {0};
    bool found = false;
    kms_status st = KMS_OK;
    bool resample = fabs(j->scale[0] - 1) > 0.05 || fabs(j->scale[1] - 1) > 0.05;
    if (resample)
        st = kms_cv_resize(src, &big, (int)lround(src->width * j->scale[0]),
                           (int)lround(src->height * j->scale[1]), 0, 0,
                           KMS_CV_INTER_LINEAR, err);
    if (st == KMS_OK)
        st = segment_slice(j->p, j->levels, j->n_levels, j->T,
                           resample ? &big : src, &mask, &sides, &found, err);
    if (st == KMS_OK && resample && j->want_sides)
        st = sides_back(&sides, src->width, src->height, err);
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
    if (st == KMS_OK && j->want_sides) {
        /* exactly where the mask is (the two were resampled apart) */
        for (int y = 0; resample && y < mask.height; y++) {
            const uint8_t *m = kms_image_row(&mask, y);
            uint8_t *r = kms_image_row(&sides, y);
            for (int x = 0; x < mask.width; x++)
                r[x] = m[x] ? r[x] : 0;
        }
        kms_image_free(&j->sides);
        kms_image_move(&j->sides, &sides);
    }
    if (st == KMS_OK)
        kms_image_move(dst, &mask);
    j->found += found;
    kms_image_free(&big);
    kms_image_free(&mask);
    kms_image_free(&sides);
    return st;
}

/* --- orientation of 2-D slices -----------------------------------------------
 * Which axis runs front to back, from two cues on every 4th pixel of a 512
 * slice (16k samples; 0.06 ms, 2 % of the mask's 2.7 ms):
 *  - the body (> BODY_HU) is wider than deep: the ratio of its spreads
 *    along x and y, 1.02 .. 1.52 on the 24 slices upright;
 *  - bone (> BONE_HU: the vertebral body, the posterior ribs, the
 *    scapulae) lies behind the body's centre: its offset from the centre in
 *    units of the body's spread, along each axis. Alone it is weak: in
 *    contrast CT the heart and aorta pass 250 HU, at the shoulders the
 *    clavicles and humeri pull it sideways or forward (offsets 0.0 .. 0.85
 *    along the true axis, up to 0.3 across it).
 * Both together (log ratio + half the bone's say) took the axis right on
 * all 24 slices in all 8 orientations. When the body reaches the image's
 * edges over CLIP_SHARE of an edge (a zoomed field of view; a table or an
 * arm reaches it over a short stretch) its spread along that axis is cut:
 * a body still wider than deep when cut in width is upright; else bone
 * decides, with a margin for the stored axis. Which end is the back:
 * bone's side, but a slice is turned end over end only when bone is
 * clearly in front (offset < -0.2): the masks of a slice with lung are the
 * same upside down (its lungs reach both halves), and a prone patient's
 * slice keeps its table side down. 8-bit pictures saturate at display_hi
 * (150 HU): their bone is the top grey level.
 * Limits: measured on 24 slices of one data set (plus their crops); the
 * clip share has a narrow margin (0.1 and 0.3 each failed one slice); a
 * slice turned 90 degrees AND cut in both axes rests on bone alone; gas-only
 * slices stored upside down keep the side bone gives weakly. */
enum { BODY_HU = -500, BONE_HU = 250 };
static const double CLIP_SHARE = 0.2;

typedef struct orient_cues {
    double ratio;        /* body spread along x / along y */
    double ux, uy;       /* bone offset from the body's centre, in spreads */
    bool clip_x, clip_y; /* body at the left/right, top/bottom border */
    double bone;         /* bone samples per body sample */
} orient_cues;

static void orient_measure(const kms_image *hu, int bone_hu, orient_cues *q)
{
    int step = (hu->width < hu->height ? hu->width : hu->height) / 128;
    step = step < 1 ? 1 : step;
    int x_first = step / 2, x_last = x_first + (hu->width - 1 - x_first) / step * step;
    double nb = 0, bx = 0, by = 0, bxx = 0, byy = 0, nk = 0, kx = 0, ky = 0;
    long edge_x = 0, edge_y = 0, rows = 0, cols = 0;
    int y_first = step / 2, y_last = y_first + (hu->height - 1 - y_first) / step * step;
    for (int y = y_first; y < hu->height; y += step) {
        const int16_t *r = kms_image_row(hu, y);
        long n = 0, sx = 0, sxx = 0, m = 0, kxs = 0;
        for (int x = x_first; x < hu->width; x += step) {
            int body = r[x] > BODY_HU, bone = r[x] > bone_hu;
            n += body;
            sx += body * x;
            sxx += body * (long)x * x;
            m += bone;
            kxs += bone * x;
        }
        if (y == y_first || y == y_last)
            for (int x = x_first; x < hu->width; x += step, cols++)
                edge_y += r[x] > BODY_HU;
        edge_x += (r[x_first] > BODY_HU) + (r[x_last] > BODY_HU);
        rows += 2;
        nb += (double)n;
        bx += (double)sx;
        bxx += (double)sxx;
        by += (double)n * y;
        byy += (double)n * y * y;
        nk += (double)m;
        kx += (double)kxs;
        ky += (double)m * y;
    }
    memset(q, 0, sizeof *q);
    q->ratio = 1;
    if (nb < 100)
        return;
    double cx = bx / nb, cy = by / nb;
    double sx = sqrt(fmax(bxx / nb - cx * cx, 1));
    double sy = sqrt(fmax(byy / nb - cy * cy, 1));
    q->ratio = sx / sy;
    q->bone = nk / nb;
    q->ux = nk > 0 ? (kx / nk - cx) / sx : 0;
    q->uy = nk > 0 ? (ky / nk - cy) / sy : 0;
    /* a table or an arm reaches an edge over a short stretch only */
    q->clip_x = edge_x > CLIP_SHARE * (double)rows;
    q->clip_y = edge_y > CLIP_SHARE * (double)cols;
}

/* The code that brings hu to the canonical view (0: as stored). bone_hu:
 * BONE_HU, or lower for pictures whose display window ends below it. */
static int find_orient(const kms_image *hu, int bone_hu)
{
    orient_cues q;
    orient_measure(hu, bone_hu, &q);
    bool bone = q.bone >= 0.005;
    double ux = bone ? q.ux : 0, uy = bone ? q.uy : 0;
    bool vertical; /* front to back along y, as stored */
    if (!q.clip_x && !q.clip_y)
        vertical = log(q.ratio) + 0.5 * (fabs(uy) - fabs(ux)) >= 0;
    else if (q.clip_x && !q.clip_y && q.ratio >= 1)
        vertical = true;  /* wider than deep even cut */
    else if (q.clip_y && !q.clip_x && q.ratio <= 1)
        vertical = false; /* deeper than wide even cut */
    else
        vertical = fabs(ux) < fabs(uy) + 0.25;
    if (vertical)
        return uy < -0.2 ? KMS_ORIENT_ROT180 : KMS_ORIENT_IDENTITY;
    return ux >= 0 ? KMS_ORIENT_ROT90_CW : KMS_ORIENT_ROT90_CCW;
}

/* How a slice that code turns back was stored, for the note. */
static const char *orient_name(int code)
{
    switch (code) {
    case KMS_ORIENT_ROT90_CW: return "turned 90 degrees counter-clockwise";
    case KMS_ORIENT_ROT90_CCW: return "turned 90 degrees clockwise";
    case KMS_ORIENT_ROT180: return "upside down";
    case KMS_ORIENT_FLIP_X: return "mirrored left to right";
    case KMS_ORIENT_FLIP_Y: return "flipped top to bottom";
    case KMS_ORIENT_TRANSPOSE: return "transposed";
    default: return "transposed and turned";
    }
}

/* lung_slice on the slice brought to the canonical view, the mask brought
 * back to the slice's grid. */
static kms_status oriented_slice(const kms_image *src, kms_image *dst,
                                 void *arg, kms_error *err)
{
    slice_job *job = arg;
    int code = job->orient;
    if (code < 0)
        code = job->turned = find_orient(src, job->bone_hu);
    if (code == 0)
        return lung_slice(src, dst, job, err);
    kms_image turned = {0}, mask = {0};
    slice_job view = *job; /* the turned slice's x and y */
    if (kms_orient_transposes(code)) {
        view.scale[0] = job->scale[1];
        view.scale[1] = job->scale[0];
    }
    view.sides = (kms_image){0};
    kms_status st = kms_orient_apply(src, &turned, code, err);
    if (st == KMS_OK)
        st = lung_slice(&turned, &mask, &view, err);
    job->found = view.found;
    if (st == KMS_OK)
        st = kms_orient_apply(&mask, dst, kms_orient_inverse(code), err);
    /* the labels name the patient's sides: turning back keeps them so */
    if (st == KMS_OK && view.sides.data) {
        kms_image_free(&job->sides);
        st = kms_orient_apply(&view.sides, &job->sides,
                              kms_orient_inverse(code), err);
    }
    kms_image_free(&view.sides);
    kms_image_free(&turned);
    kms_image_free(&mask);
    return st;
}

static kms_status lung_run(const void *params, kms_context *ctx, kms_error *err)
{
    const lung_params *p = params;
    slice_job job = {.p = p};
    double fixed;
    kms_image hu = {0};
    int slices = ctx->slices > 1 ? ctx->slices : 1;
    /* units first: a wrong unit is an error naming its key, not a mask */
    kms_status st = kms_check_hu(ctx, err);
    if (st == KMS_OK)
        st = parse_levels(p, job.levels, &job.n_levels, err);
    if (st == KMS_OK)
        st = parse_threshold(p, &fixed, err);
    /* CT read as S16 is HU already: no copy */
    const kms_image *src = kms_context_as_read(ctx);
    bool as_is = ctx->hu && src->depth == KMS_DEPTH_S16 && src->channels == 1;
    if (st == KMS_OK && !as_is)
        st = to_hu(p, ctx, &hu, err);
    if (st != KMS_OK)
        goto out;
    if (as_is)
        hu = *src; /* a view: never freed here */
    if (slices > 1) { /* volumes: in 3-D, lung_volume.c */
        const kms_lung_volume_params vp = {
            .threshold = fixed, .boundary = p->boundary,
            .smooth_sigma = p->smooth_sigma, .fov_min = p->fov_min,
            .posterior = p->posterior, .min_contrast = p->min_contrast,
            .min_volume = p->min_volume, .close = p->close,
            .reference_mm = p->reference_mm, .airway_hu = p->airway_hu,
            .rib_hull = p->rib_hull};
        kms_lung_volume_info info;
        st = kms_lung_volume(&hu, slices, ctx->volume.voxel_mm, &vp,
                             &ctx->mask, &ctx->lungs, &info, err);
        if (as_is)
            hu = (kms_image){0};
        if (st == KMS_OK && info.slices_found == 0)
            kms_context_note(ctx, "no lung found (empty mask; threshold "
                             "%.0f HU)", info.T);
        goto out;
    }
    st = threshold_hu(p, ctx, &hu, slices, fixed, &job.T, err);
    pixel_mm(ctx, hu.width, job.scale);
    job.scale[0] /= p->reference_mm;
    job.scale[1] /= p->reference_mm;
    /* 8-bit pictures saturate at display_hi: their bone is the top grey */
    job.bone_hu = BONE_HU;
    if (is_picture(ctx, src) && p->display_hi < BONE_HU + 1)
        job.bone_hu = (int)floor(p->display_hi -
                                 2 * (p->display_hi - p->display_lo) / 255);
    /* volumes are canonical already: only 2-D slices are turned */
    job.orient = p->orient == ORIENT_STORED || slices > 1 ? 0
                 : p->orient == ORIENT_MIRRORED          ? KMS_ORIENT_FLIP_X
                 : ctx->orient_known                     ? ctx->orient
                                                         : -1;
    /* 2-D: right and left too (volumes: lung_volume) */
    job.want_sides = slices == 1;
    if (st == KMS_OK)
        st = kms_map_slices_to(&hu, slices, oriented_slice, &job, &ctx->mask,
                               err);
    if (as_is)
        hu = (kms_image){0};
    if (st != KMS_OK)
        goto out;
    if (job.want_sides) {
        kms_image_free(&ctx->lungs);
        kms_image_move(&ctx->lungs, &job.sides);
    }
    /* a turn found from the image, not from a header: say so, as a wrong
     * one would cost a lung */
    if (st == KMS_OK && job.turned)
        kms_context_note(ctx, "stored %s (found from the image: "
                         "lung_mask.orient = stored keeps it as stored)",
                         orient_name(job.turned));
    if (st == KMS_OK && job.found == 0)
        kms_context_note(ctx, "no lung found (empty mask; threshold %.0f HU)",
                         job.T);
out:
    kms_image_free(&job.sides);
    kms_image_free(&hu);
    return st;
}

const kms_stage_class kms_stage_lung_mask = {
    .name = "lung_mask",
    .description = "mask of both lungs in CT from the slice's own 2-means "
                   "centres: slice turned upright, body, dependent dark "
                   "regions, airways and gas cut out, lobes kept, vessels "
                   "filled",
    .params = lung_table,
    .params_size = sizeof(lung_params),
    .prepare = lung_prepare,
    .run = lung_run,
};
