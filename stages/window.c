/* window: clips CT to a window of Hounsfield units, so k-means spends its
 * clusters on tissue rather than on bone extremes or on the padding outside
 * the scanner's field of view. */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hu_check.h"
#include "stage.h"

typedef struct window_params {
    double level;
    double width;
    char lo[KMS_STR_MAX];
    char hi[KMS_STR_MAX];
    double padding_below;
    double padding_value;
} window_params;

static const kms_param window_table[] = {
    {"level", KMS_PARAM_DOUBLE, "-600", -4000, 4000, NULL,
     offsetof(window_params, level), "window centre in HU (lung window: -600)"},
    {"width", KMS_PARAM_DOUBLE, "1500", 1, 10000, NULL,
     offsetof(window_params, width), "window width in HU (lung window: 1500)"},
    {"lo", KMS_PARAM_STRING, "", 0, 0, NULL, offsetof(window_params, lo),
     "lower bound instead of level/width (HU; for 8-bit images: their own "
     "display units)"},
    {"hi", KMS_PARAM_STRING, "", 0, 0, NULL, offsetof(window_params, hi),
     "upper bound instead of level/width"},
    {"padding_below", KMS_PARAM_DOUBLE, "-1100", -100000, 0, NULL,
     offsetof(window_params, padding_below),
     "HU at or below this is padding outside the field of view (air is about "
     "-1000; scanners pad with -2000 and lower): it becomes padding_value and "
     "is left out of k-means, which would otherwise spend a cluster on it or "
     "drag the air centre"},
    {"padding_value", KMS_PARAM_DOUBLE, "-1000", -4000, 4000, NULL,
     offsetof(window_params, padding_value),
     "what padding becomes: air, so it joins the air outside the body"},
    {0},
};

/* The window as [lo, hi]; explicit bounds win over level/width. */
static kms_status bounds(const window_params *p, double *lo, double *hi,
                         bool *explicit_bounds, kms_error *err)
{
    *lo = p->level - p->width / 2;
    *hi = p->level + p->width / 2;
    *explicit_bounds = p->lo[0] || p->hi[0];
    if (p->lo[0] && !kms_param_number(p->lo, lo))
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "lo",
                             "'%s' is not a number", p->lo);
    if (p->hi[0] && !kms_param_number(p->hi, hi))
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "hi",
                             "'%s' is not a number", p->hi);
    if (*lo >= *hi)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0,
                             p->hi[0] ? "hi" : "width",
                             "the window is empty: lo %g >= hi %g", *lo, *hi);
    return KMS_OK;
}

static kms_status window_prepare(const void *params, kms_link *link,
                                 kms_error *err)
{
    double lo, hi;
    bool explicit_bounds;
    if (!link->image.present)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                             "window needs an image: put read before it");
    kms_status st = bounds(params, &lo, &hi, &explicit_bounds, err);
    if (st != KMS_OK)
        return st;
    /* an HU window on 8-bit BGR pictures would do nothing, input after
     * input, without a word */
    if (!explicit_bounds && !(link->image.channels & KMS_CHANNELS_1))
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "level",
                             "an HU window needs CT, but read.mode = color "
                             "gives 8-bit BGR pictures: set read.mode = "
                             "unchanged, or window.lo and hi in grey levels");
    return KMS_OK;
}

static double clip(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Clips one row; padding (HU only) becomes pad_value and is marked in
 * valid (may be NULL). Returns how many padding pixels it found. */
#define CLIP_ROW(type)                                                         \
    static long clip_##type(type *v, size_t n, double lo, double hi,           \
                            double pad_below, double pad_value,                \
                            uint8_t *valid)                                    \
    {                                                                          \
        long padding = 0;                                                      \
        for (size_t i = 0; i < n; i++) {                                       \
            bool pad = v[i] <= pad_below;                                      \
            v[i] = (type)(pad ? pad_value : clip(v[i], lo, hi));               \
            padding += pad;                                                    \
            if (valid)                                                         \
                valid[i] = !pad;                                               \
        }                                                                      \
        return padding;                                                        \
    }
CLIP_ROW(uint8_t)
CLIP_ROW(int16_t)
CLIP_ROW(uint16_t)
CLIP_ROW(int32_t)
CLIP_ROW(float)
#undef CLIP_ROW

/* CT rows (S16) by integer compares the compiler vectorises, with the
 * results of clip_int16_t: for an integer v, v < lo is v < ceil(lo), v > hi
 * is v > floor(hi) and v <= pad_below is v <= floor(pad_below); the double
 * results convert to S16 by truncation. Only when every bound fits S16. */
typedef struct clip_s16 {
    int16_t lo, hi;             /* v < lo, v > hi */
    int16_t lo_to, hi_to;
    bool padding;               /* v <= pad is padding */
    int16_t pad, pad_to;
} clip_s16;

static bool clip_s16_init(clip_s16 *c, double lo, double hi, double pad_below,
                          double pad_value)
{
    if (!(lo >= -32768 && hi <= 32767))
        return false; /* NaN or out of range: the double path */
    /* lo < hi, so both ceil(lo) and floor(hi) fit */
    c->lo = (int16_t)ceil(lo);
    c->hi = (int16_t)floor(hi);
    c->lo_to = (int16_t)lo;
    c->hi_to = (int16_t)hi;
    c->pad_to = (int16_t)pad_value; /* within [lo, hi] already */
    c->padding = pad_below >= -32768; /* not for NaN, -inf */
    c->pad = !c->padding         ? 0
             : pad_below > 32767 ? 32767
                                 : (int16_t)floor(pad_below);
    return true;
}

/* Separate loops over S16 and bytes, so each vectorises. */
static long clip_row_s16(const clip_s16 *c, int16_t *v, size_t n,
                         uint8_t *valid)
{
    const int16_t lo = c->lo, hi = c->hi, lo_to = c->lo_to, hi_to = c->hi_to;
    const int16_t pad = c->pad, pad_to = c->pad_to;
    unsigned padding = 0; /* 32 bits: a row's count, cheap to vectorise */
    if (valid && c->padding) {
        for (size_t i = 0; i < n; i++)
            valid[i] = v[i] > pad;
        for (size_t i = 0; i < n; i++)
            padding += !valid[i];
    } else if (valid) {
        memset(valid, 1, n);
    } else if (c->padding) {
        for (size_t i = 0; i < n; i++)
            padding += v[i] <= pad;
    }
    for (size_t i = 0; i < n; i++) {
        int16_t x = v[i];
        int16_t y = x < lo ? lo_to : x > hi ? hi_to : x;
        v[i] = c->padding && x <= pad ? pad_to : y;
    }
    return padding;
}

static long clip_row(kms_image *img, int y, double lo, double hi,
                     double pad_below, double pad_value, uint8_t *valid)
{
    void *r = kms_image_row(img, y);
    size_t n = (size_t)img->width * (size_t)img->channels;
    switch (img->depth) {
    case KMS_DEPTH_U8: return clip_uint8_t(r, n, lo, hi, pad_below, pad_value, valid);
    case KMS_DEPTH_S16: return clip_int16_t(r, n, lo, hi, pad_below, pad_value, valid);
    case KMS_DEPTH_U16: return clip_uint16_t(r, n, lo, hi, pad_below, pad_value, valid);
    case KMS_DEPTH_S32: return clip_int32_t(r, n, lo, hi, pad_below, pad_value, valid);
    case KMS_DEPTH_F32: return clip_float(r, n, lo, hi, pad_below, pad_value, valid);
    }
    abort();
}

static kms_status window_run(const void *params, kms_context *ctx,
                             kms_error *err)
{
    const window_params *p = params;
    kms_image *img = &ctx->image;
    double lo, hi;
    bool explicit_bounds;
    kms_status st = kms_context_keep_original(ctx, err);
    if (st == KMS_OK)
        st = bounds(p, &lo, &hi, &explicit_bounds, err);
    if (st != KMS_OK)
        return st;
    /* An 8-bit picture is already in display units: an HU window means
     * nothing there, so only explicit bounds (in its own units) apply. */
    if (!ctx->hu && !explicit_bounds)
        return KMS_OK;
    /* the default window is in HU: make sure the values are (explicit
     * bounds are in the image's own units, whatever they are) */
    if (!explicit_bounds && (st = kms_check_hu(ctx, err)) != KMS_OK)
        return st;
    kms_image valid = {0};
    bool mark = ctx->hu && img->channels == 1;
    if (mark) {
        st = kms_image_alloc_raw(&valid, img->width, img->height, 1,
                                 KMS_DEPTH_U8, err); /* all written */
        if (st != KMS_OK)
            return st;
    }
    double pad_below = ctx->hu ? p->padding_below : -INFINITY;
    double pad_value = clip(p->padding_value, lo, hi);
    long padding = 0;
    clip_s16 fast = {0};
    bool s16 = img->depth == KMS_DEPTH_S16 &&
               clip_s16_init(&fast, lo, hi, pad_below, pad_value);
    size_t n = (size_t)img->width * (size_t)img->channels;
    for (int y = 0; y < img->height; y++) {
        uint8_t *v = mark ? kms_image_row(&valid, y) : NULL;
        padding += s16 ? clip_row_s16(&fast, kms_image_row(img, y), n, v)
                       : clip_row(img, y, lo, hi, pad_below, pad_value, v);
    }
    if (padding > 0)
        kms_image_move(&ctx->valid, &valid);
    kms_image_free(&valid);
    ctx->display_lo = lo;
    ctx->display_hi = hi;
    return KMS_OK;
}

const kms_stage_class kms_stage_window = {
    .name = "window",
    .description = "clip CT to an HU window (default: lung, L -600 / W 1500); "
                   "padding outside the field of view becomes air",
    .params = window_table,
    .params_size = sizeof(window_params),
    .prepare = window_prepare,
    .run = window_run,
};
