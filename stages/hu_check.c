/* hu_check: do the values of an input look like CT in Hounsfield units?
 *
 * A histogram of every 4th pixel in x and y (the whole stack for volumes),
 * then a template slid over offsets o and tried at value scales k (value =
 * HU * k + o): an air band (o - 1100k, o - 700k] (outside air about -1000,
 * lung -900 to -700), a soft-tissue band [o - 150k, o + 150k] (fat -100,
 * muscle +40) and "bone" above o + 200k. An offset scores
 * min(air mass, tissue mass), and only when the tissue band holds 10 % of
 * the samples and twice the mass above it (otherwise the template could
 * take padding for air and air for tissue, or fat for air and bone for
 * tissue). Padding outside the field of view is outside every band: at or
 * below o - 1100k; and the darkest cluster of values, when an empty gap of
 * 200 sets it apart (padding of -2000, -3024, or resampled from them), is
 * dropped first. The best offset at k = 1 says where air and tissue sit; a
 * clearly better fit at k = 1/2 or 2 says the values need a slope. Without
 * air (a zoomed abdominal slice) the tissue band alone places the values.
 * The medians within the bands decide:
 *   tissue within 150 of 0             CT in HU: pass
 *   tissue within 150 of +1024         HU + 1024 storage: read.intercept
 *   tissue elsewhere                   another offset: read.intercept
 *   one value only                     nothing to judge: pass
 *   values span < 500, no tissue peak,
 *   or a better fit at another scale   read.slope (and read.intercept)
 * Cost: about 0.065 ms per 512 x 512 slice (2.7 ms for the lung mask). */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hu_check.h"

enum {
    STEP = 4,        /* every STEP-th pixel in x and y */
    MAX_BINS = 2048, /* histogram bins at most */
};

#define BIN_WIDTH 8.0     /* value units per bin, unless the span needs more */
#define MIN_SPAN 500.0    /* CT spans air to tissue at least: ~1000 */
#define AIR_LO (-1100.0)  /* at or below: padding (window.padding_below) */
#define AIR_HI (-700.0)
#define TISSUE_HALF 150.0 /* tissue band: 0 +- this; also the pass margin */
#define BONE_ABOVE 200.0  /* less mass above o + this than half the tissue */
#define PAD_GAP 200.0     /* an empty gap this wide above the darkest values */
#define PAD_MAX 0.4       /* ... holding at most this fraction: padding */
#define AIR_MIN 0.02      /* of the samples: below this, "hardly any air" */
#define TISSUE_MIN 0.10   /* of the samples: a tissue peak at least */
#define SCALE_MARGIN 1.5  /* another scale must fit this much better */
#define HU_1024 1024.0    /* the usual unsigned storage offset */

typedef struct hu_hist {
    double lo, w;  /* bin b holds [lo + b w, lo + (b + 1) w) */
    int n;         /* bins */
    long *cum;     /* n + 1 prefix sums: cum[b] = samples in bins < b */
    long total;    /* samples, padding included */
} hu_hist;

/* Every STEP-th value of img (a stack of slices is one tall image) as
 * float, starting half a step in. */
#define GATHER_ROW(type)                                                       \
    static size_t gather_##type(const void *row, int width, int step,          \
                                float *out)                                    \
    {                                                                          \
        const type *v = row;                                                   \
        size_t m = 0;                                                          \
        for (int x = step / 2; x < width; x += step)                           \
            out[m++] = (float)v[x];                                            \
        return m;                                                              \
    }
GATHER_ROW(uint8_t)
GATHER_ROW(int16_t)
GATHER_ROW(uint16_t)
GATHER_ROW(int32_t)
GATHER_ROW(float)
#undef GATHER_ROW

static size_t gather_row(const kms_image *img, int y, int step, float *out)
{
    const void *r = kms_image_row(img, y);
    int w = img->width;
    switch (img->depth) {
    case KMS_DEPTH_U8: return gather_uint8_t(r, w, step, out);
    case KMS_DEPTH_S16: return gather_int16_t(r, w, step, out);
    case KMS_DEPTH_U16: return gather_uint16_t(r, w, step, out);
    case KMS_DEPTH_S32: return gather_int32_t(r, w, step, out);
    case KMS_DEPTH_F32: return gather_float(r, w, step, out);
    }
    abort();
}

/* Samples in bins [i, j). */
static long bins_mass(const hu_hist *h, long i, long j)
{
    i = i < 0 ? 0 : i > h->n ? h->n : i;
    j = j < 0 ? 0 : j > h->n ? h->n : j;
    return j > i ? h->cum[j] - h->cum[i] : 0;
}

/* The bin of value v, unclamped. */
static long bin_of(const hu_hist *h, double v)
{
    double b = floor((v - h->lo) / h->w);
    return b < -1 ? -1 : b > h->n + 1 ? h->n + 1 : (long)b;
}

/* Samples in the value interval [a, b) (bin resolution). */
static long mass(const hu_hist *h, double a, double b)
{
    return bins_mass(h, bin_of(h, a), bin_of(h, b));
}

/* Median of the samples in [a, b), at a bin's centre; NAN when none. */
static double median(const hu_hist *h, double a, double b)
{
    long m = mass(h, a, b);
    if (m == 0)
        return NAN;
    long i = bin_of(h, a) < 0 ? 0 : bin_of(h, a);
    long base = h->cum[i];
    while (i < h->n && 2 * (h->cum[i + 1] - base) < m)
        i++;
    return h->lo + (i + 0.5) * h->w;
}

typedef struct hu_fit {
    double o;     /* where tissue sits */
    long score;   /* min(air, tissue) at o, or tissue alone */
} hu_fit;

/* The best offset at scale k; air_needed false: by tissue mass alone. */
static hu_fit best_offset(const hu_hist *h, double k, bool air_needed)
{
    /* a value o + d, o a bin's centre, lies d / w bins (rounded) away */
#define BINS(d) ((long)floor(0.5 + (d) / h->w))
    const long t0 = BINS(-TISSUE_HALF * k), t1 = BINS(TISSUE_HALF * k);
    const long a0 = BINS(AIR_LO * k + h->w), a1 = BINS(AIR_HI * k + h->w);
    const long bone0 = BINS(BONE_ABOVE * k);
#undef BINS
    hu_fit best = {NAN, -1};
    for (long b = 0; b < h->n; b++) {
        long tissue = bins_mass(h, b + t0, b + t1);
        long bone = bins_mass(h, b + bone0, h->n);
        if (2 * bone >= tissue || tissue < TISSUE_MIN * (double)h->total)
            continue;
        long score = tissue;
        if (air_needed) {
            long air = bins_mass(h, b + a0, b + a1);
            score = air < tissue ? air : tissue;
        }
        if (score > best.score) {
            best.o = h->lo + ((double)b + 0.5) * h->w;
            best.score = score;
        }
    }
    return best;
}

/* Padding outside the field of view is the darkest cluster of values, set
 * apart from air by an empty gap (scanners pad with -2000, -3024, or
 * values resampled from them): the bins below such a gap, when they hold
 * less than PAD_MAX of the samples, are emptied, so the template cannot
 * take padding for air at any scale. count: h->cum + 1, not summed yet. */
static void drop_padding(hu_hist *h, long total)
{
    long *count = h->cum + 1, below = 0;
    int gap = (int)ceil(PAD_GAP / h->w), empty = 0;
    for (int b = 0; b < h->n && below <= PAD_MAX * (double)total; b++) {
        if (count[b] > 0) {
            below += count[b];
            empty = 0;
            continue;
        }
        if (++empty < gap || below == 0)
            continue;
        memset(count, 0, (size_t)b * sizeof *count);
        return;
    }
}

/* The values sampled from img into a histogram; their range in lo/hi. */
static kms_status sample(const kms_image *img, hu_hist *h, double *lo,
                         double *hi, size_t *n, size_t *bad, kms_error *err)
{
    /* small images: every pixel */
    int step = img->width >= 16 * STEP && img->height >= 16 * STEP ? STEP : 1;
    size_t per_row = (size_t)(img->width + step - 1) / (size_t)step;
    size_t rows = (size_t)(img->height + step - 1) / (size_t)step;
    float *v = malloc(per_row * rows * sizeof *v + 1);
    if (!v)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    size_t m = 0;
    for (int y = step / 2; y < img->height; y += step)
        m += gather_row(img, y, step, v + m);
    float mn = INFINITY, mx = -INFINITY;
    size_t nonfinite = 0;
    for (size_t i = 0; i < m; i++) {
        if (!isfinite(v[i])) {
            nonfinite++;
            continue;
        }
        mn = v[i] < mn ? v[i] : mn;
        mx = v[i] > mx ? v[i] : mx;
    }
    *lo = mn;
    *hi = mx;
    *n = m - nonfinite;
    *bad = nonfinite;
    kms_status st = KMS_OK;
    if (*n == 0 || nonfinite > 0 || mx - mn < MIN_SPAN)
        goto out; /* judged by the caller, no histogram needed */
    double span = (double)mx - (double)mn;
    h->w = span / MAX_BINS > BIN_WIDTH ? span / MAX_BINS : BIN_WIDTH;
    h->lo = mn;
    h->n = (int)(span / h->w) + 1;
    h->total = (long)*n;
    h->cum = calloc((size_t)h->n + 1, sizeof *h->cum);
    if (!h->cum) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    const double per_bin = 1 / h->w; /* in double: no overflow at FLT_MAX */
    for (size_t i = 0; i < m; i++) {
        int b = (int)(((double)v[i] - h->lo) * per_bin);
        h->cum[1 + (b < h->n ? b : h->n - 1)]++;
    }
    drop_padding(h, (long)*n);
    for (int b = 0; b < h->n; b++)
        h->cum[b + 1] += h->cum[b];
out:
    free(v);
    return st;
}

kms_status kms_hu_measure(const kms_image *img, kms_hu_levels *lv,
                          kms_error *err)
{
    hu_hist h = {0};
    size_t n = 0, bad = 0;
    memset(lv, 0, sizeof *lv);
    lv->air = lv->tissue = lv->slope = NAN;
    kms_status st = sample(img, &h, &lv->min, &lv->max, &n, &bad, err);
    if (st != KMS_OK)
        return st;
    lv->nonfinite = bad;
    if (!h.cum) {
        /* a constant image holds nothing to find in any units: it passes,
         * and lung_mask says it found no lung */
        lv->verdict = bad || n == 0          ? KMS_HU_NONFINITE
                      : lv->min == lv->max ? KMS_HU_OK
                                           : KMS_HU_NARROW;
        return KMS_OK;
    }
    static const double scales[] = {0.5, 2};
    hu_fit one = best_offset(&h, 1, true);
    hu_fit other = {NAN, -1};
    double k_other = 1;
    for (size_t i = 0; i < sizeof scales / sizeof *scales; i++) {
        hu_fit f = best_offset(&h, scales[i], true);
        if (f.score > other.score) {
            other = f;
            k_other = scales[i];
        }
    }
    double total = (double)n;
    bool air = one.score >= AIR_MIN * total;
    if (other.score >= AIR_MIN * total &&
        other.score > SCALE_MARGIN * (one.score > 0 ? one.score : 0)) {
        /* air and tissue sit about 1000 * k apart */
        lv->air = median(&h, other.o + AIR_LO * k_other + h.w,
                         other.o + AIR_HI * k_other + h.w);
        lv->tissue = median(&h, other.o - TISSUE_HALF * k_other,
                            other.o + TISSUE_HALF * k_other);
        lv->slope = 1 / k_other;
        lv->verdict = KMS_HU_SCALED;
        goto out;
    }
    if (!air)
        one = best_offset(&h, 1, false);
    if (one.score < TISSUE_MIN * total) {
        lv->verdict = KMS_HU_NO_TISSUE;
        goto out;
    }
    lv->tissue = median(&h, one.o - TISSUE_HALF, one.o + TISSUE_HALF);
    if (air)
        lv->air = median(&h, one.o + AIR_LO + h.w, one.o + AIR_HI + h.w);
    lv->slope = 1;
    /* the shift from tissue: air is outside air (-1000) or lung (-900 to
     * -700) in any mixture, soft tissue is within ~50 of 0 */
    double shift = lv->tissue;
    lv->shift = shift;
    lv->verdict = fabs(lv->tissue) <= TISSUE_HALF ? KMS_HU_OK
                  : fabs(shift - HU_1024) <= TISSUE_HALF ? KMS_HU_PLUS_1024
                                                         : KMS_HU_SHIFTED;
out:
    free(h.cum);
    return KMS_OK;
}

/* The intercept that undoes shift: a multiple of 1024 when near one (the
 * usual storage offsets: 1024, 32768), else shift rounded to 10. */
static double suggested_intercept(double shift)
{
    double k = round(shift / HU_1024);
    if (k != 0 && fabs(shift - k * HU_1024) <= TISSUE_HALF)
        return -k * HU_1024;
    return -10 * round(shift / 10);
}

kms_status kms_check_hu(kms_context *ctx, kms_error *err)
{
    if (!ctx->hu || ctx->hu_checked)
        return KMS_OK;
    const kms_image *img = kms_context_as_read(ctx);
    if (img->channels != 1)
        return KMS_OK; /* not CT; the stages that need one channel say so */
    /* MR or PET values are no HU whatever their range: no key can help */
    if (ctx->modality[0] && strcmp(ctx->modality, "CT") != 0)
        return kms_error_set(err, KMS_ERR_INPUT, ctx->input_path, 0, NULL,
                             "modality %s, not CT: its values are not "
                             "Hounsfield units",
                             ctx->modality);
    kms_hu_levels lv;
    kms_status st = kms_hu_measure(img, &lv, err);
    if (st != KMS_OK)
        return st;
    const char *f = ctx->input_path;
    char at[96];
    if (isnan(lv.air))
        snprintf(at, sizeof at, "tissue at %.0f, hardly any air", lv.tissue);
    else
        snprintf(at, sizeof at, "air at %.0f, tissue at %.0f", lv.air,
                 lv.tissue);
    switch (lv.verdict) {
    case KMS_HU_OK:
        ctx->hu_checked = true;
        return KMS_OK;
    case KMS_HU_NONFINITE:
        return kms_error_set(err, KMS_ERR_INPUT, f, 0, NULL,
                             "values include NaN or infinity (%zu sampled "
                             "pixels): not CT in HU",
                             lv.nonfinite);
    case KMS_HU_NARROW:
        return kms_error_set(err, KMS_ERR_INPUT, f, 0, "read.slope",
                             "values span %g…%g: not CT in HU (air to tissue "
                             "is ~1000); set read.slope and read.intercept",
                             lv.min, lv.max);
    case KMS_HU_NO_TISSUE:
        return kms_error_set(err, KMS_ERR_INPUT, f, 0, "read.slope",
                             "values %g…%g have no soft-tissue peak: not CT in "
                             "HU; set read.slope and read.intercept",
                             lv.min, lv.max);
    case KMS_HU_SCALED:
        return kms_error_set(err, KMS_ERR_INPUT, f, 0, "read.slope",
                             "%s, %.0f apart (CT in HU: ~1000): set "
                             "read.slope = %g and read.intercept",
                             at, lv.tissue - lv.air, lv.slope);
    case KMS_HU_PLUS_1024:
        return kms_error_set(err, KMS_ERR_INPUT, f, 0, "read.intercept",
                             "values look like HU + 1024 (%s): set "
                             "read.intercept = -1024",
                             at);
    case KMS_HU_SHIFTED:
        return kms_error_set(err, KMS_ERR_INPUT, f, 0, "read.intercept",
                             "values look shifted from HU (%s; CT: air -1000, "
                             "tissue 0): set read.intercept = %g",
                             at, suggested_intercept(lv.shift));
    }
    abort();
}
