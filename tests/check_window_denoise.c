/* Check suite for the window and denoise stages (stages/window.c,
 * stages/denoise.c) through pipelines: windows clip to known values in
 * every depth, padding is marked, each filter gives what OpenCV's gives
 * with the same keys; and the errors of bad keys. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "opencv_c.h"
#include "pipeline.h"
#include "test_util.h"

#ifndef KMS_SOURCE_DIR
#error "build with -DKMS_SOURCE_DIR=\"<repo root>\""
#endif

#define SAMPLE_PNG KMS_SOURCE_DIR "/samples/png/ID_0000_Z_0142.png"

static void run_ok(const char *text, const char *input, kms_context *ctx)
{
    kms_error err;
    kms_status st = kt_run_text(text, input, ctx, &err);
    ck_assert_msg(st == KMS_OK, "run: %s: %s", err.key, err.message);
}

/* A 1-channel image of depth d holding values[i] at pixel i (4 x 2). */
static kms_image ramp(kms_depth d, const double *values)
{
    kms_image img = kt_image(4, 2, 1, d);
    for (int i = 0; i < 8; i++) {
        void *row = kms_image_row(&img, i / 4);
        int x = i % 4;
        switch (d) {
        case KMS_DEPTH_U8: ((uint8_t *)row)[x] = (uint8_t)values[i]; break;
        case KMS_DEPTH_U16: ((uint16_t *)row)[x] = (uint16_t)values[i]; break;
        case KMS_DEPTH_S16: ((int16_t *)row)[x] = (int16_t)values[i]; break;
        case KMS_DEPTH_S32: ((int32_t *)row)[x] = (int32_t)values[i]; break;
        case KMS_DEPTH_F32: ((float *)row)[x] = (float)values[i]; break;
        }
    }
    return img;
}

static double value_at(const kms_image *img, int i)
{
    const void *row = kms_image_row(img, i / 4);
    int x = i % 4;
    switch (img->depth) {
    case KMS_DEPTH_U8: return ((const uint8_t *)row)[x];
    case KMS_DEPTH_U16: return ((const uint16_t *)row)[x];
    case KMS_DEPTH_S16: return ((const int16_t *)row)[x];
    case KMS_DEPTH_S32: return ((const int32_t *)row)[x];
    case KMS_DEPTH_F32: return ((const float *)row)[x];
    }
    abort();
}

/* ---- window ---------------------------------------------------------------- */

START_TEST(test_window_8bit_picture)
{
    /* an 8-bit picture: explicit bounds in its own units clip it; the HU
     * window (level/width) means nothing there and leaves it alone */
    static const double v[8] = {0, 10, 49, 50, 120, 200, 201, 255};
    kms_image img = ramp(KMS_DEPTH_U8, v);
    char png[4096];
    kt_write_image("pic.png", &img, png, sizeof png);
    kms_context ctx;
    run_ok("[pipeline]\nstages = read, window\n[read]\nmode = grayscale\n"
           "[window]\nlo = 50\nhi = 200\n",
           png, &ctx);
    static const double want[8] = {50, 50, 50, 50, 120, 200, 200, 200};
    for (int i = 0; i < 8; i++)
        ck_assert_double_eq(value_at(&ctx.image, i), want[i]);
    ck_assert(!ctx.hu);
    ck_assert_ptr_null(ctx.valid.data); /* no padding in a picture */
    kms_context_clear(&ctx);
    run_ok("[pipeline]\nstages = read, window\n[read]\nmode = grayscale\n"
           "[window]\nlevel = 100\nwidth = 10\n",
           png, &ctx);
    for (int i = 0; i < 8; i++)
        ck_assert_double_eq(value_at(&ctx.image, i), v[i]);
    kms_context_clear(&ctx);
    kms_image_free(&img);
}
END_TEST

START_TEST(test_window_16bit_unsigned)
{
    /* one channel deeper than 8 bits claims HU: explicit bounds clip it;
     * nothing is at or below padding_below, so no padding is marked */
    static const double v[8] = {0, 100, 999, 1000, 1500, 2000, 2001, 65535};
    kms_image img = ramp(KMS_DEPTH_U16, v);
    char png[4096];
    kt_write_image("u16.png", &img, png, sizeof png);
    kms_context ctx;
    run_ok("[pipeline]\nstages = read, window\n[window]\nlo = 1000\nhi = 2000\n",
           png, &ctx);
    ck_assert_int_eq(ctx.image.depth, KMS_DEPTH_U16);
    ck_assert(ctx.hu);
    static const double want[8] = {1000, 1000, 1000, 1000, 1500, 2000, 2000, 2000};
    for (int i = 0; i < 8; i++)
        ck_assert_double_eq(value_at(&ctx.image, i), want[i]);
    ck_assert_ptr_null(ctx.valid.data);
    kms_context_clear(&ctx);
    kms_image_free(&img);
}
END_TEST

START_TEST(test_window_float_padding)
{
    /* float HU: at or below padding_below is padding, which becomes
     * padding_value (clipped into the window) and is marked invalid */
    static const double v[8] = {-3000, -1100, -1099.5, -1000, -600.25, 0,
                                149.5, 3000};
    kms_image img = ramp(KMS_DEPTH_F32, v);
    char tif[4096];
    kt_write_image("f32.tif", &img, tif, sizeof tif);
    kms_context ctx;
    run_ok("[pipeline]\nstages = read, window\n"
           "[window]\nlo = -1050\nhi = 100\npadding_value = -2000\n",
           tif, &ctx);
    ck_assert_int_eq(ctx.image.depth, KMS_DEPTH_F32);
    static const double want[8] = {-1050, -1050, -1050, -1000, -600.25, 0,
                                   100, 100};
    static const int valid[8] = {0, 0, 1, 1, 1, 1, 1, 1};
    ck_assert_ptr_nonnull(ctx.valid.data);
    for (int i = 0; i < 8; i++) {
        ck_assert_double_eq(value_at(&ctx.image, i), want[i]);
        ck_assert_int_eq(((uint8_t *)kms_image_row(&ctx.valid, i / 4))[i % 4] != 0,
                         valid[i]);
    }
    kms_context_clear(&ctx);
    kms_image_free(&img);
}
END_TEST

START_TEST(test_window_s16_outside_int16)
{
    /* bounds beyond int16 take the general path: the same clipping */
    static const double v[8] = {-1200, -1101, -1100, -1000, 0, 500, 1000, 2000};
    kms_image img = ramp(KMS_DEPTH_S16, v);
    char tif[4096];
    kt_write_image("s16.tif", &img, tif, sizeof tif);
    kms_context ctx;
    run_ok("[pipeline]\nstages = read, window\n"
           "[window]\nlo = -40000\nhi = 40000\npadding_below = -1101\n",
           tif, &ctx);
    ck_assert_int_eq(ctx.image.depth, KMS_DEPTH_S16);
    /* -1200 and -1101 are padding: -1000 (padding_value, inside) */
    static const double want[8] = {-1000, -1000, -1100, -1000, 0, 500, 1000, 2000};
    for (int i = 0; i < 8; i++)
        ck_assert_double_eq(value_at(&ctx.image, i), want[i]);
    ck_assert_ptr_nonnull(ctx.valid.data);
    kms_context_clear(&ctx);
    kms_image_free(&img);
}
END_TEST

/* ---- denoise --------------------------------------------------------------- */

/* The sample read as grey, and the denoise stage's result with lines. */
static void denoised(const char *lines, kms_image *grey, kms_context *ctx)
{
    char text[1024];
    snprintf(text, sizeof text,
             "[pipeline]\nstages = read, denoise\n[read]\nmode = grayscale\n"
             "[denoise]\n%s\n",
             lines);
    run_ok(text, SAMPLE_PNG, ctx);
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_cv_imread(SAMPLE_PNG, KMS_CV_IMREAD_GRAYSCALE, grey,
                                   &err),
                     KMS_OK);
}

static void assert_same(const kms_image *a, const kms_image *b)
{
    ck_assert_int_eq(a->width, b->width);
    ck_assert_int_eq(a->height, b->height);
    ck_assert_int_eq(a->depth, b->depth);
    size_t bytes = (size_t)a->width * (size_t)a->channels * kms_depth_size(a->depth);
    for (int y = 0; y < a->height; y++)
        if (memcmp(kms_image_row(a, y), kms_image_row(b, y), bytes) != 0)
            ck_abort_msg("row %d differs", y);
}

START_TEST(test_denoise_filters_are_opencv)
{
    kms_error err;
    kms_error_clear(&err);
    kms_context ctx;
    kms_image grey = {0}, want = {0};

    denoised("method = gaussian\nksize = 7\nsigma = 1.5", &grey, &ctx);
    ck_assert_int_eq(kms_cv_gaussian_blur(&grey, &want, 7, 1.5, &err), KMS_OK);
    assert_same(&ctx.image, &want);
    kms_context_clear(&ctx);
    kms_image_free(&grey);

    denoised("method = median\nksize = 5", &grey, &ctx);
    ck_assert_int_eq(kms_cv_median_blur(&grey, &want, 5, &err), KMS_OK);
    assert_same(&ctx.image, &want);
    kms_context_clear(&ctx);
    kms_image_free(&grey);

    denoised("method = bilateral\ndiameter = 5\nsigma_color = 30\n"
             "sigma_space = 4",
             &grey, &ctx);
    ck_assert_int_eq(kms_cv_bilateral(&grey, &want, 5, 30, 4, &err), KMS_OK);
    assert_same(&ctx.image, &want);
    kms_context_clear(&ctx);
    kms_image_free(&grey);

    denoised("method = nlmeans\nh = 12\ntemplate_window = 3\n"
             "search_window = 7",
             &grey, &ctx);
    ck_assert_int_eq(kms_cv_nlmeans(&grey, &want, 12, 3, 7, &err), KMS_OK);
    assert_same(&ctx.image, &want);
    kms_context_clear(&ctx);

    /* none: the image as read; and a filter does change it */
    kms_image gauss = {0};
    ck_assert_int_eq(kms_cv_gaussian_blur(&grey, &gauss, 5, 0, &err), KMS_OK);
    kms_image_free(&grey);
    denoised("method = none", &grey, &ctx);
    assert_same(&ctx.image, &grey);
    ck_assert_int_ne(memcmp(gauss.data, grey.data, grey.stride * 512), 0);
    kms_context_clear(&ctx);
    kms_image_free(&grey);
    kms_image_free(&gauss);
    kms_image_free(&want);
}
END_TEST

/* ---- errors ---------------------------------------------------------------- */

static void expect_error(const char *text, const char *key, const char *words)
{
    char path[4096];
    kms_pipeline pl;
    kms_error err;
    ck_assert_int_eq(kt_build_text(text, NULL, &pl, &err, path, sizeof path),
                     KMS_ERR_CONFIG);
    ck_assert_msg(strcmp(err.key, key) == 0, "%s: key %s, not %s", text,
                  err.key, key);
    ck_assert_msg(strstr(err.message, words), "%s: %s", text, err.message);
}

START_TEST(test_bad_keys)
{
    expect_error("[pipeline]\nstages = read, window\n[window]\nlo = low\n",
                 "window.lo", "'low'");
    expect_error("[pipeline]\nstages = read, window\n[window]\nhi = 1e\n",
                 "window.hi", "'1e'");
    expect_error("[pipeline]\nstages = read, window\n[window]\nlo = 5\nhi = 5\n",
                 "window.hi", "empty");
    expect_error("[pipeline]\nstages = read, window\n[window]\nlo = 2000\n",
                 "window.width", "empty");
    expect_error("[pipeline]\nstages = window, read\n", "pipeline.stages",
                 "window needs an image");
    expect_error("[pipeline]\nstages = denoise\n", "pipeline.stages",
                 "denoise needs an image");
    expect_error("[pipeline]\nstages = read, denoise\n[denoise]\n"
                 "method = gaussian\nksize = 4\n",
                 "denoise.ksize", "odd");
    expect_error("[pipeline]\nstages = read, denoise\n[denoise]\n"
                 "method = median\nksize = 1\n",
                 "denoise.ksize", "median needs ksize >= 3");
    expect_error("[pipeline]\nstages = read, denoise\n[denoise]\n"
                 "method = nlmeans\ntemplate_window = 4\n",
                 "denoise.template_window", "odd");
    expect_error("[pipeline]\nstages = read, denoise\n[denoise]\n"
                 "method = nlmeans\nsearch_window = 20\n",
                 "denoise.search_window", "odd");
}
END_TEST

static Suite *window_denoise_suite(void)
{
    Suite *s = suite_create("window_denoise");
    TCase *tc = tcase_create("Core");
    kt_add_tmp_fixture(tc, "check_window_denoise");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_window_8bit_picture);
    tcase_add_test(tc, test_window_16bit_unsigned);
    tcase_add_test(tc, test_window_float_padding);
    tcase_add_test(tc, test_window_s16_outside_int16);
    tcase_add_test(tc, test_denoise_filters_are_opencv);
    tcase_add_test(tc, test_bad_keys);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kt_run_suite(window_denoise_suite());
}
