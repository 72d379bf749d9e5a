/* Check suite for the units of CT values: the HU check (stages/hu_check.c)
 * on synthetic and real slices in HU and in wrong units, and the read
 * stage's slope, intercept and spacing (stages/read.c). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hu_check.h"
#include "opencv_c.h"
#include "stage.h"
#include "test_util.h"

enum { W = 256 };

/* Noise of +-20 HU, the same on every run. */
static double noise(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return ((double)(*state >> 8) / (double)(1u << 24) - 0.5) * 40;
}

/* A synthetic axial slice in HU, w x h: padding (pad) outside a circle,
 * outside air -1000, a body of muscle (40) with a fat rim (-100), two
 * lungs (-850). body_only: a zoomed abdominal slice, all body, hardly any
 * air. */
static double synth_hu(int x, int y, int w, int h, double pad, bool body_only,
                       uint32_t *state)
{
    double u = (x + 0.5) / w - 0.5, v = (y + 0.5) / h - 0.5;
    double n = noise(state);
    if (body_only) /* fat, muscle, a vertebra, a little bowel gas */
        return (u * u + v * v < 0.05                    ? -100
                : u * u + (v - 0.3) * (v - 0.3) < 0.01 ? 700
                : (u - 0.3) * (u - 0.3) + v * v < 0.003 ? -950
                                                        : 40) +
               n;
    if (u * u + v * v > 0.24)
        return pad;
    double body = u * u / 0.16 + v * v / 0.1;
    if (body > 1)
        return -1000 + n;
    double lu = fabs(u) - 0.17;
    if (lu * lu / 0.01 + v * v / 0.04 < 1)
        return -850 + n;
    return (body > 0.8 ? -100 : 40) + n;
}

/* The synthetic slice(s) stored as value = HU * k + o in depth d; slices
 * stacked. */
static kms_image synth(kms_depth d, double k, double o, int slices,
                       bool body_only)
{
    kms_image img = kt_image(W, W * slices, 1, d);
    uint32_t state = 12345;
    for (int y = 0; y < img.height; y++) {
        void *r = kms_image_row(&img, y);
        for (int x = 0; x < W; x++) {
            double v = synth_hu(x, y % W, W, W, -2000, body_only, &state) * k + o;
            switch (d) {
            case KMS_DEPTH_S16: ((int16_t *)r)[x] = (int16_t)lround(v); break;
            case KMS_DEPTH_U16:
                ((uint16_t *)r)[x] = (uint16_t)(v < 0 ? 0 : lround(v));
                break;
            case KMS_DEPTH_S32: ((int32_t *)r)[x] = (int32_t)lround(v); break;
            case KMS_DEPTH_F32: ((float *)r)[x] = (float)v; break;
            case KMS_DEPTH_U8: ((uint8_t *)r)[x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); break;
            }
        }
    }
    return img;
}

/* kms_check_hu on img (taken over) in a context claiming HU. */
static kms_status check(kms_image img, kms_error *err, bool *cached)
{
    kms_context ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.input_path = "slice.tif";
    ctx.image = img;
    ctx.hu = img.depth != KMS_DEPTH_U8;
    ctx.slices = img.height >= W ? img.height / W : 1;
    kms_error_clear(err);
    kms_status st = kms_check_hu(&ctx, err);
    if (cached)
        *cached = ctx.hu_checked;
    kms_context_clear(&ctx);
    return st;
}

static void assert_passes(kms_image img)
{
    kms_error err;
    ck_assert_msg(check(img, &err, NULL) == KMS_OK, "%s", err.message);
}

static void assert_fails(kms_image img, const char *key, const char *text)
{
    kms_error err;
    ck_assert_int_eq(check(img, &err, NULL), KMS_ERR_INPUT);
    ck_assert_str_eq(err.key, key);
    ck_assert_str_eq(err.file, "slice.tif");
    ck_assert_msg(strstr(err.message, text), "'%s' lacks '%s'", err.message,
                  text);
}

/* ---- Core: real HU passes, the usual wrong units are named ---------------- */

START_TEST(test_hu_passes_and_is_cached)
{
    static const kms_depth depths[] = {KMS_DEPTH_S16, KMS_DEPTH_S32,
                                       KMS_DEPTH_F32};
    for (size_t i = 0; i < sizeof depths / sizeof *depths; i++) {
        kms_error err;
        bool cached = false;
        ck_assert_int_eq(check(synth(depths[i], 1, 0, 1, false), &err, &cached),
                         KMS_OK);
        ck_assert(cached);
    }
}
END_TEST

START_TEST(test_levels_measured)
{
    kms_image img = synth(KMS_DEPTH_S16, 1, 0, 1, false);
    kms_hu_levels lv;
    kms_error err;
    ck_assert_int_eq(kms_hu_measure(&img, &lv, &err), KMS_OK);
    ck_assert_int_eq(lv.verdict, KMS_HU_OK);
    ck_assert_double_eq_tol(lv.tissue, 20, 80);
    ck_assert_double_eq_tol(lv.air, -925, 100);
    ck_assert_double_eq(lv.min, -2000);
    kms_image_free(&img);
}
END_TEST

/* Slices stored as HU * k + o in depth d: each error names its key. */
START_TEST(test_wrong_units)
{
    static const struct {
        kms_depth d;
        double k, o;
        const char *key, *text;
    } cases[] = {
        {KMS_DEPTH_U16, 1, 1024, "read.intercept", "values look like HU + 1024 (air at "},
        {KMS_DEPTH_U16, 1, 1024, "read.intercept", "set read.intercept = -1024"},
        {KMS_DEPTH_S16, 1, 500, "read.intercept", "set read.intercept = -5"},
        {KMS_DEPTH_U16, 1, 32768, "read.intercept", "set read.intercept = -32768"},
        {KMS_DEPTH_S16, 1, -1024, "read.intercept", "set read.intercept = 1024"},
        {KMS_DEPTH_S16, 0.5, 0, "read.slope", "set read.slope = 2"},
        {KMS_DEPTH_U16, 0.5, 512, "read.slope", "set read.slope = 2"},
        {KMS_DEPTH_F32, 2, 0, "read.slope", "set read.slope = 0.5"},
        /* HU -2000..40+ normalised to 0..1 */
        {KMS_DEPTH_F32, 1 / 4096.0, 2000 / 4096.0, "read.slope", "not CT in HU"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        assert_fails(synth(cases[i].d, cases[i].k, cases[i].o, 1, false),
                     cases[i].key, cases[i].text);
}
END_TEST

START_TEST(test_zoomed_without_air)
{
    assert_passes(synth(KMS_DEPTH_S16, 1, 0, 1, true));
    assert_fails(synth(KMS_DEPTH_U16, 1, 1024, 1, true), "read.intercept",
                 "hardly any air");
}
END_TEST

START_TEST(test_volume_stack)
{
    assert_passes(synth(KMS_DEPTH_S16, 1, 0, 3, false));
    assert_fails(synth(KMS_DEPTH_F32, 1, 1024, 3, false), "read.intercept",
                 "HU + 1024");
}
END_TEST

START_TEST(test_pictures_pass_untouched)
{
    assert_passes(synth(KMS_DEPTH_U8, 0.1, 128, 1, false));
}
END_TEST

/* the real sample slices (signed HU, padding -2000 and others) pass; their
 * HU + 1024 in unsigned 16-bit does not */
START_TEST(test_sample_slices)
{
    static const char *const names[] = {"ID_0000_Z_0142", "ID_0088_Z_0100",
                                        "ID_0165_Z_0145", "ID_0253_Z_0238"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/samples/ct/%s.tif", KMS_SOURCE_DIR,
                 names[i]);
        kms_image img = {0}, u16 = {0};
        kms_error err;
        ck_assert_int_eq(kms_cv_imread(path, KMS_CV_IMREAD_UNCHANGED, &img, &err),
                         KMS_OK);
        ck_assert_int_eq(kms_cv_convert(&img, &u16, KMS_DEPTH_U16, 1, 1024, &err),
                         KMS_OK);
        assert_passes(img);
        assert_fails(u16, "read.intercept", "set read.intercept = -1024");
    }
}
END_TEST

/* ---- Limits --------------------------------------------------------------- */

START_TEST(test_nan_and_constant)
{
    kms_image img = synth(KMS_DEPTH_F32, 1, 0, 1, false);
    ((float *)kms_image_row(&img, 2))[2] = NAN;
    assert_fails(img, "", "NaN"); /* no key to set: the runner names the stage */
    assert_passes(kt_image(W, W, 1, KMS_DEPTH_S16)); /* 0: nothing to judge */
    kms_image narrow = synth(KMS_DEPTH_S16, 0.1, 0, 1, false);
    assert_fails(narrow, "read.slope", "values span -200…");
}
END_TEST

START_TEST(test_tiny_images)
{
    /* smaller than the sampling grid: every pixel is looked at */
    assert_passes(kt_image(1, 1, 1, KMS_DEPTH_S16)); /* one value */
    kms_image two = kt_image(2, 1, 1, KMS_DEPTH_F32);
    ((float *)two.data)[0] = 0.25f;
    ((float *)two.data)[1] = 0.75f;
    assert_fails(two, "read.slope", "values span 0.25…0.75");
    /* the extremes of float: no overflow in the histogram */
    kms_image wide = kt_image(2, 1, 1, KMS_DEPTH_F32);
    ((float *)wide.data)[0] = -3.4e38f;
    ((float *)wide.data)[1] = 3.4e38f;
    assert_fails(wide, "read.slope", "no soft-tissue peak");
}
END_TEST

/* ---- the read stage: slope, intercept, spacing ------------------------------ */

/* A plain little- or big-endian TIFF: w x h unsigned 16-bit values, one strip,
 * XResolution/YResolution = res (pixels per unit) and ResolutionUnit unit
 * when res > 0. */
typedef struct tiff_tag {
    uint32_t tag, type, value;
} tiff_tag;

static void write_tiff(const char *path, bool big, int w, int h,
                       const int32_t *v, double res_x, double res_y, int unit)
{
    size_t data = (size_t)w * h * 2, n_tags = res_x > 0 ? 12 : 9;
    size_t ifd = 8, rat = ifd + 2 + 12 * n_tags + 4, pix = rat + 16;
    size_t len = pix + data;
    unsigned char *b = calloc(1, len);
    ck_assert_ptr_nonnull(b);
#define PUT16(p, x)                                                            \
    do {                                                                       \
        unsigned char *q_ = (p);                                               \
        uint32_t x_ = (uint32_t)(x);                                           \
        q_[big ? 1 : 0] = (unsigned char)x_;                                   \
        q_[big ? 0 : 1] = (unsigned char)(x_ >> 8);                            \
    } while (0)
#define PUT32(p, x)                                                            \
    do {                                                                       \
        uint32_t y_ = (uint32_t)(x);                                           \
        PUT16((p) + (big ? 2 : 0), y_);                                        \
        PUT16((p) + (big ? 0 : 2), y_ >> 16);                                  \
    } while (0)
    memcpy(b, big ? "MM\0*" : "II*\0", 4);
    PUT32(b + 4, ifd);
    PUT16(b + ifd, n_tags);
    tiff_tag tags[12] = {
        {256, 3, (uint32_t)w}, {257, 3, (uint32_t)h}, {258, 3, 16},
        {259, 3, 1},           {262, 3, 1},           {273, 4, (uint32_t)pix},
        {277, 3, 1},           {278, 3, (uint32_t)h}, {279, 4, (uint32_t)data},
    };
    size_t n = 9;
    if (res_x > 0) {
        tags[n++] = (tiff_tag){282, 5, (uint32_t)rat};
        tags[n++] = (tiff_tag){283, 5, (uint32_t)rat + 8};
        tags[n++] = (tiff_tag){296, 3, (uint32_t)unit};
        PUT32(b + rat, lround(res_x * 1000));
        PUT32(b + rat + 4, 1000);
        PUT32(b + rat + 8, lround(res_y * 1000));
        PUT32(b + rat + 12, 1000);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char *e = b + ifd + 2 + 12 * i;
        PUT16(e, tags[i].tag);
        PUT16(e + 2, tags[i].type);
        PUT32(e + 4, 1);
        if (tags[i].type == 3)
            PUT16(e + 8, tags[i].value);
        else
            PUT32(e + 8, tags[i].value);
    }
    for (int i = 0; i < w * h; i++)
        PUT16(b + pix + 2 * (size_t)i, (uint16_t)v[i]);
#undef PUT16
#undef PUT32
    kt_write_bytes(path, b, len);
    free(b);
}

/* Runs the read stage on path with overrides "key=value" (NULL-ended). */
static kms_status run_read(const char *path, const char *const *kv,
                           kms_context *ctx, kms_error *err)
{
    const kms_stage_class *cls = kms_stage_find("read");
    ck_assert_ptr_nonnull(cls);
    void *params = calloc(1, cls->params_size);
    ck_assert_int_eq(kms_params_apply_defaults(cls->params, params, err), KMS_OK);
    for (; kv && *kv; kv++) {
        char key[64];
        const char *eq = strchr(*kv, '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - *kv), *kv);
        const kms_param *p = kms_param_find(cls->params, key);
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(kms_param_parse(p, eq + 1, params, err), KMS_OK);
    }
    kms_link link = {0};
    memset(ctx, 0, sizeof *ctx);
    ctx->input_path = path;
    kms_status st = cls->prepare(params, &link, err);
    if (st == KMS_OK)
        st = cls->run(params, ctx, err);
    free(params);
    return st;
}

static int32_t *ramp(int w, int h, int32_t lo)
{
    int32_t *v = malloc((size_t)w * h * sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (int i = 0; i < w * h; i++)
        v[i] = lo + i;
    return v;
}

/* Reads an 8 x 4 TIFF of lo, lo + 1, ... (unsigned 16-bit; resolution
 * tags when res_x > 0) with the overrides kv; the read must work. */
static void read_ramp(int32_t lo, bool big, double res_x, double res_y,
                      int unit, const char *const *kv, kms_context *ctx)
{
    static char path[1024];
    kt_tmp_path(path, sizeof path, "ramp.tif");
    int32_t *v = ramp(8, 4, lo);
    write_tiff(path, big, 8, 4, v, res_x, res_y, unit);
    free(v);
    kms_error err;
    ck_assert_msg(run_read(path, kv, ctx, &err) == KMS_OK, "%s", err.message);
}

START_TEST(test_read_intercept_to_s16)
{
    kms_context ctx;
    const char *const kv[] = {"intercept=-1024", NULL};
    read_ramp(1000, false, 0, 0, 0, kv, &ctx);
    ck_assert_int_eq(kms_context_as_read(&ctx)->depth, KMS_DEPTH_S16);
    ck_assert(ctx.hu);
    ck_assert_int_eq(((int16_t *)kms_image_row(kms_context_as_read(&ctx), 0))[0], -24);
    ck_assert_int_eq(((int16_t *)kms_image_row(kms_context_as_read(&ctx), 3))[7], 7);
    kms_context_clear(&ctx);
}
END_TEST

START_TEST(test_read_slope_to_f32)
{
    kms_context ctx;
    const char *const kv[] = {"slope=0.5", "intercept=-1", NULL};
    read_ramp(0, false, 0, 0, 0, kv, &ctx);
    ck_assert_int_eq(kms_context_as_read(&ctx)->depth, KMS_DEPTH_F32); /* 0.5 steps */
    ck_assert_float_eq(((float *)kms_image_row(kms_context_as_read(&ctx), 0))[1], -0.5f);
    ck_assert_float_eq(((float *)kms_image_row(&ctx.image, 3))[7], 14.5f);
    kms_context_clear(&ctx);
}
END_TEST

START_TEST(test_read_bad_keys)
{
    static const char *const bad[][2] = {
        {"slope=abc", "slope"},     {"slope=0", "slope"},
        {"intercept=x", "intercept"}, {"spacing=0", "spacing"},
        {"spacing=-1", "spacing"},  {"spacing=abc", "spacing"},
        {"spacing=1,2,3", "spacing"}, {"spacing=1,", "spacing"},
        {"spacing=200", "spacing"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        kms_context ctx;
        kms_error err;
        const char *const kv[] = {bad[i][0], NULL};
        kms_error_clear(&err);
        ck_assert_int_eq(run_read("nowhere.tif", kv, &ctx, &err),
                         KMS_ERR_CONFIG);
        ck_assert_str_eq(err.key, bad[i][1]);
        kms_context_clear(&ctx);
    }
}
END_TEST

START_TEST(test_read_spacing)
{
    kms_context ctx;
    /* 40 pixels per cm: 0.25 mm; 50 per cm: 0.2 mm */
    read_ramp(500, false, 40, 50, 3, NULL, &ctx);
    ck_assert_double_eq_tol(ctx.pixel_mm[0], 0.25, 1e-9);
    ck_assert_double_eq_tol(ctx.pixel_mm[1], 0.2, 1e-9);
    kms_context_clear(&ctx);
    const char *const kv[] = {"spacing=0.7", NULL};
    read_ramp(500, false, 40, 50, 3, kv, &ctx);
    ck_assert_double_eq(ctx.pixel_mm[0], 0.7); /* the key wins */
    ck_assert_double_eq(ctx.pixel_mm[1], 0.7);
    kms_context_clear(&ctx);
    const char *const xy[] = {"spacing=0.6, 0.8", NULL};
    read_ramp(500, false, 0, 0, 0, xy, &ctx);
    ck_assert_double_eq(ctx.pixel_mm[0], 0.6);
    ck_assert_double_eq(ctx.pixel_mm[1], 0.8);
    kms_context_clear(&ctx);
    /* big-endian, 127 pixels per inch: 0.2 mm */
    read_ramp(500, true, 127, 127, 2, NULL, &ctx);
    ck_assert_double_eq_tol(ctx.pixel_mm[0], 0.2, 1e-9);
    ck_assert_double_eq_tol(ctx.pixel_mm[1], 0.2, 1e-9);
    kms_context_clear(&ctx);
    /* 72 dpi is a software's default; 1 pixel per cm is implausible */
    read_ramp(500, false, 72, 72, 2, NULL, &ctx);
    ck_assert_double_eq(ctx.pixel_mm[0], 0);
    kms_context_clear(&ctx);
    read_ramp(500, false, 1, 1, 3, NULL, &ctx);
    ck_assert_double_eq(ctx.pixel_mm[0], 0);
    kms_context_clear(&ctx);
}
END_TEST

START_TEST(test_read_depths_claim_hu)
{
    static const kms_depth depths[] = {KMS_DEPTH_U16, KMS_DEPTH_S16,
                                       KMS_DEPTH_F32, KMS_DEPTH_S32};
    static const kms_depth as_read[] = {KMS_DEPTH_U16, KMS_DEPTH_S16,
                                        KMS_DEPTH_F32, KMS_DEPTH_S16};
    for (size_t i = 0; i < sizeof depths / sizeof *depths; i++) {
        kms_image img = synth(depths[i], 1, depths[i] == KMS_DEPTH_U16 ? 1024 : 0,
                              1, false);
        char path[1024];
        kt_tmp_path(path, sizeof path, "d.tif");
        unsigned char *buf = NULL;
        size_t len = 0;
        kms_error err;
        ck_assert_int_eq(kms_cv_imencode(".tif", &img, NULL, 0, &buf, &len, &err),
                         KMS_OK);
        kt_write_bytes(path, buf, len);
        free(buf);
        kms_context ctx;
        ck_assert_int_eq(run_read(path, NULL, &ctx, &err), KMS_OK);
        ck_assert_int_eq(kms_context_as_read(&ctx)->depth, as_read[i]);
        ck_assert(ctx.hu);
        kms_context_clear(&ctx);
        kms_image_free(&img);
    }
}
END_TEST

static Suite *units_suite(void)
{
    Suite *s = suite_create("units");
    TCase *core = tcase_create("Core");
    tcase_add_test(core, test_hu_passes_and_is_cached);
    tcase_add_test(core, test_levels_measured);
    tcase_add_test(core, test_wrong_units);
    tcase_add_test(core, test_zoomed_without_air);
    tcase_add_test(core, test_volume_stack);
    tcase_add_test(core, test_pictures_pass_untouched);
    tcase_add_test(core, test_sample_slices);
    suite_add_tcase(s, core);
    TCase *limits = tcase_create("Limits");
    tcase_add_test(limits, test_nan_and_constant);
    tcase_add_test(limits, test_tiny_images);
    suite_add_tcase(s, limits);
    TCase *read = tcase_create("Read");
    kt_add_tmp_fixture(read, "kms_units");
    tcase_add_test(read, test_read_intercept_to_s16);
    tcase_add_test(read, test_read_slope_to_f32);
    tcase_add_test(read, test_read_bad_keys);
    tcase_add_test(read, test_read_spacing);
    tcase_add_test(read, test_read_depths_claim_hu);
    suite_add_tcase(s, read);
    return s;
}

int main(void)
{
    return kt_run_suite(units_suite());
}
