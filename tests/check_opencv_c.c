/* Check suite for opencv_c: the C wrapper over OpenCV. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "opencv_c.h"
#include "test_util.h"

/* ---- helpers ------------------------------------------------------------- */

static uint8_t *px8(const kms_image *img, int x, int y)
{
    return (uint8_t *)kms_image_row(img, y) + (size_t)x * (size_t)img->channels;
}

static void assert_same_pixels(const kms_image *a, const kms_image *b)
{
    ck_assert_int_eq(a->width, b->width);
    ck_assert_int_eq(a->height, b->height);
    ck_assert_int_eq(a->channels, b->channels);
    ck_assert_int_eq(a->depth, b->depth);
    size_t row =
        (size_t)a->width * (size_t)a->channels * kms_depth_size(a->depth);
    for (int y = 0; y < a->height; y++)
        ck_assert_msg(memcmp(kms_image_row(a, y), kms_image_row(b, y), row) ==
                          0,
                      "row %d differs", y);
}

/* Encodes img as ext, decodes it unchanged and compares every pixel. */
static void roundtrip(const char *ext, const kms_image *img)
{
    kms_error err;
    kms_error_clear(&err);
    unsigned char *buf = NULL;
    size_t len = 0;
    kms_image back = {0};
    ck_assert_msg(kms_cv_imencode(ext, img, NULL, 0, &buf, &len, &err) ==
                      KMS_OK,
                  "imencode %s: %s", ext, err.message);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_gt(len, 0);
    ck_assert_msg(kms_cv_imdecode(buf, len, KMS_CV_IMREAD_UNCHANGED, ext, &back,
                                  &err) == KMS_OK,
                  "imdecode %s: %s", ext, err.message);
    assert_same_pixels(img, &back);
    free(buf);
    kms_image_free(&back);
}

/* Deterministic noise so the tests never depend on luck. */
static uint32_t lcg_state = 12345u;
static int noise(int amplitude)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return (int)((lcg_state >> 8) % (uint32_t)(2 * amplitude + 1)) - amplitude;
}

static double variance8(const kms_image *img)
{
    double s = 0, s2 = 0, n = (double)img->width * img->height;
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++) {
            double v = *px8(img, x, y);
            s += v;
            s2 += v * v;
        }
    return s2 / n - (s / n) * (s / n);
}

static kms_image noisy_flat(int w, int h)
{
    kms_image img = kt_image(w, h, 1, KMS_DEPTH_U8);
    lcg_state = 12345u;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            *px8(&img, x, y) = (uint8_t)(128 + noise(25));
    return img;
}

static void assert_one_line_opencv_error(kms_status st, const kms_error *err)
{
    ck_assert_int_eq(st, KMS_ERR_OPENCV);
    ck_assert_int_eq(err->code, KMS_ERR_OPENCV);
    ck_assert_uint_gt(strlen(err->message), 0);
    ck_assert_ptr_null(strchr(err->message, '\n'));
    ck_assert_ptr_null(strchr(err->message, '\r'));
    /* OpenCV's e.what() carries its source path; the message should not. */
    ck_assert_ptr_null(strstr(err->message, ".cpp"));
}

/* ---- Core ---------------------------------------------------------------- */

START_TEST(test_version)
{
    const char *v = kms_cv_version();
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(v[0], '4');
    ck_assert_int_eq(v[1], '.');
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_cv_set_num_threads(1, &err), KMS_OK);
    ck_assert_int_eq(kms_cv_set_num_threads(0, &err), KMS_OK);
}
END_TEST

START_TEST(test_roundtrip_png_u8)
{
    kms_image g = kt_image(7, 5, 1, KMS_DEPTH_U8);
    kms_image c = kt_image(6, 4, 3, KMS_DEPTH_U8);
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 7; x++)
            *px8(&g, x, y) = (uint8_t)(x * 37 + y * 11);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 6; x++)
            for (int ch = 0; ch < 3; ch++)
                px8(&c, x, y)[ch] = (uint8_t)(x * 40 + y * 7 + ch * 90);
    roundtrip(".png", &g);
    roundtrip(".png", &c);
    kms_image_free(&g);
    kms_image_free(&c);
}
END_TEST

START_TEST(test_roundtrip_png_u16)
{
    kms_image img = kt_image(5, 3, 1, KMS_DEPTH_U16);
    const uint16_t v[] = {0, 1, 255, 256, 4095, 40000, 65535};
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 5; x++)
            ((uint16_t *)kms_image_row(&img, y))[x] = v[(x + 5 * y) % 7];
    roundtrip(".png", &img);
    kms_image_free(&img);
}
END_TEST

START_TEST(test_roundtrip_tiff_s16)
{
    kms_image img = kt_image(4, 2, 1, KMS_DEPTH_S16);
    const int16_t v[] = {-2000, -1000, 0, 1500, -32768, 32767, -1, 1};
    for (int i = 0; i < 8; i++)
        ((int16_t *)kms_image_row(&img, i / 4))[i % 4] = v[i];
    roundtrip(".tif", &img);
    roundtrip(".tiff", &img);
    kms_image_free(&img);
}
END_TEST

START_TEST(test_roundtrip_tiff_f32)
{
    kms_image img = kt_image(3, 3, 1, KMS_DEPTH_F32);
    const float v[] = {-1024.5f,    0.0f,        3.14159265f, 1e-7f, -0.0f,
                       123456.789f, 1.0f / 3.0f, 2.5f,        -7.25f};
    for (int i = 0; i < 9; i++)
        ((float *)kms_image_row(&img, i / 3))[i % 3] = v[i];
    roundtrip(".tif", &img);
    kms_image_free(&img);
}
END_TEST

START_TEST(test_cvt_color_gray)
{
    kms_error err;
    kms_error_clear(&err);
    kms_image bgr = kt_image(3, 1, 3, KMS_DEPTH_U8), gray = {0};
    px8(&bgr, 0, 0)[0] = 255; /* blue */
    px8(&bgr, 1, 0)[1] = 255; /* green */
    px8(&bgr, 2, 0)[2] = 255; /* red */
    ck_assert_int_eq(kms_cv_cvt_color(&bgr, &gray, KMS_CV_BGR2GRAY, &err),
                     KMS_OK);
    ck_assert_int_eq(gray.channels, 1);
    ck_assert_int_eq(gray.width, 3);
    ck_assert_int_eq(*px8(&gray, 0, 0), 29);
    ck_assert_int_eq(*px8(&gray, 1, 0), 150);
    ck_assert_int_eq(*px8(&gray, 2, 0), 76);
    /* In place, and to 4 channels. */
    ck_assert_int_eq(kms_cv_cvt_color(&gray, &gray, KMS_CV_GRAY2BGRA, &err),
                     KMS_OK);
    ck_assert_int_eq(gray.channels, 4);
    ck_assert_int_eq(px8(&gray, 1, 0)[0], 150);
    ck_assert_int_eq(px8(&gray, 1, 0)[2], 150);
    ck_assert_int_eq(px8(&gray, 1, 0)[3], 255);
    kms_image_free(&bgr);
    kms_image_free(&gray);
}
END_TEST

START_TEST(test_resize_nearest)
{
    kms_error err;
    kms_error_clear(&err);
    kms_image img = kt_image(2, 2, 1, KMS_DEPTH_U8), out = {0};
    *px8(&img, 0, 0) = 1;
    *px8(&img, 1, 0) = 2;
    *px8(&img, 0, 1) = 3;
    *px8(&img, 1, 1) = 4;
    ck_assert_int_eq(
        kms_cv_resize(&img, &out, 4, 4, 0, 0, KMS_CV_INTER_NEAREST, &err),
        KMS_OK);
    ck_assert_int_eq(out.width, 4);
    ck_assert_int_eq(out.height, 4);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            ck_assert_int_eq(*px8(&out, x, y), 1 + x / 2 + 2 * (y / 2));
    /* src == dst, with the size from fx/fy. */
    ck_assert_int_eq(
        kms_cv_resize(&img, &img, 0, 0, 2.0, 2.0, KMS_CV_INTER_NEAREST, &err),
        KMS_OK);
    assert_same_pixels(&img, &out);
    kms_image_free(&img);
    kms_image_free(&out);
}
END_TEST

START_TEST(test_convert)
{
    kms_error err;
    kms_error_clear(&err);
    kms_image f = kt_image(4, 1, 1, KMS_DEPTH_F32), u = {0};
    float *p = kms_image_row(&f, 0);
    p[0] = 300.0f;
    p[1] = -5.0f;
    p[2] = 2.5f;
    p[3] = 3.5f;
    ck_assert_int_eq(kms_cv_convert(&f, &u, KMS_DEPTH_U8, 1.0, 0.0, &err),
                     KMS_OK);
    ck_assert_int_eq(u.depth, KMS_DEPTH_U8);
    /* Saturating, round half to even. */
    ck_assert_int_eq(*px8(&u, 0, 0), 255);
    ck_assert_int_eq(*px8(&u, 1, 0), 0);
    ck_assert_int_eq(*px8(&u, 2, 0), 2);
    ck_assert_int_eq(*px8(&u, 3, 0), 4);
    /* In place with scale and offset. */
    ck_assert_int_eq(kms_cv_convert(&f, &f, KMS_DEPTH_S16, 2.0, -1.0, &err),
                     KMS_OK);
    ck_assert_int_eq(f.depth, KMS_DEPTH_S16);
    ck_assert_int_eq(((int16_t *)kms_image_row(&f, 0))[0], 599);
    ck_assert_int_eq(((int16_t *)kms_image_row(&f, 0))[1], -11);
    kms_image_free(&f);
    kms_image_free(&u);
}
END_TEST

START_TEST(test_blurs)
{
    kms_error err;
    kms_error_clear(&err);
    kms_image img = kt_image(9, 9, 1, KMS_DEPTH_U8), out = {0};
    memset(img.data, 50, img.stride * 9);
    *px8(&img, 4, 4) = 255; /* salt */
    ck_assert_int_eq(kms_cv_median_blur(&img, &out, 3, &err), KMS_OK);
    ck_assert_int_eq(*px8(&out, 4, 4), 50);
    ck_assert_int_eq(kms_cv_gaussian_blur(&img, &img, 3, 0, &err), KMS_OK);
    ck_assert_int_gt(*px8(&img, 4, 4), 50);
    ck_assert_int_lt(*px8(&img, 4, 4), 255);
    ck_assert_int_eq(*px8(&img, 0, 0), 50);
    kms_image_free(&img);
    kms_image_free(&out);
}
END_TEST

/* cv::kmeans's arguments in the parameter struct both backends take */
static kms_kmeans_params cv_params(int k, int criteria, int max_iter,
                                   double epsilon, int attempts,
                                   kms_km_init init, uint64_t seed)
{
    kms_kmeans_params p;
    kms_kmeans_params_default(&p);
    p.k = k;
    p.criteria = criteria;
    p.max_iter = max_iter;
    p.epsilon = epsilon;
    p.attempts = attempts;
    p.init = init;
    p.seed = seed;
    return p;
}

START_TEST(test_kmeans_two_groups)
{
    kms_error err;
    kms_error_clear(&err);
    const float s[] = {1, 2, 3, 10, 11, 12};
    int32_t lab[6];
    float c[2];
    double comp = -1;
    const kms_kmeans_params p =
        cv_params(2, KMS_KM_TERM_COUNT | KMS_KM_TERM_EPS, 100, 1e-6, 3,
                  KMS_KM_INIT_PP, 42);
    ck_assert_int_eq(kms_cv_kmeans(s, 6, 1, &p, lab, c, &comp, &err), KMS_OK);
    ck_assert_int_eq(lab[0], lab[1]);
    ck_assert_int_eq(lab[1], lab[2]);
    ck_assert_int_eq(lab[3], lab[4]);
    ck_assert_int_eq(lab[4], lab[5]);
    ck_assert_int_ne(lab[0], lab[3]);
    ck_assert(lab[0] == 0 || lab[0] == 1);
    ck_assert_float_eq_tol(c[lab[0]], 2.0f, 1e-5f);
    ck_assert_float_eq_tol(c[lab[3]], 11.0f, 1e-5f);
    ck_assert_double_eq_tol(comp, 4.0, 1e-6);
}
END_TEST

START_TEST(test_kmeans_same_seed)
{
    enum { N = 300, DIMS = 2, K = 3 };
    static float s[N * DIMS];
    lcg_state = 777u;
    for (int i = 0; i < N; i++)
        for (int d = 0; d < DIMS; d++)
            s[i * DIMS + d] = (float)(100 * (i % 3) * (d + 1) + noise(60));
    int32_t l1[N], l2[N];
    float c1[K * DIMS], c2[K * DIMS];
    double p1, p2;
    kms_error err;
    kms_error_clear(&err);
    kms_kmeans_params p =
        cv_params(K, KMS_KM_TERM_COUNT, 10, 0, 2, KMS_KM_INIT_RANDOM, 2024);
    for (int run = 0; run < 2; run++) {
        /* native-only fields change nothing here */
        p.method = run ? KMS_KM_OPTIMAL : KMS_KM_LLOYD;
        p.threads = run ? 0 : 1;
        ck_assert_int_eq(kms_cv_kmeans(s, N, DIMS, &p, run ? l2 : l1,
                                       run ? c2 : c1, run ? &p2 : &p1, &err),
                         KMS_OK);
    }
    ck_assert_mem_eq(l1, l2, sizeof l1);
    ck_assert_mem_eq(c1, c2, sizeof c1);
    ck_assert(p1 == p2);
}
END_TEST

START_TEST(test_kmeans_initial_labels)
{
    const float s[] = {1, 2, 3, 10, 11, 12};
    kms_error err;
    kms_error_clear(&err);
    for (int low = 0; low < 2; low++) {
        int32_t lab[6];
        float c[2];
        double comp;
        for (int i = 0; i < 6; i++)
            lab[i] = i < 3 ? low : 1 - low;
        const kms_kmeans_params p =
            cv_params(2, KMS_KM_TERM_COUNT, 10, 0, 1, KMS_KM_INIT_LABELS, 1);
        ck_assert_int_eq(kms_cv_kmeans(s, 6, 1, &p, lab, c, &comp, &err),
                         KMS_OK);
        for (int i = 0; i < 6; i++)
            ck_assert_int_eq(lab[i], i < 3 ? low : 1 - low);
        ck_assert_float_eq_tol(c[low], 2.0f, 1e-5f);
        ck_assert_float_eq_tol(c[1 - low], 11.0f, 1e-5f);
        ck_assert_double_eq_tol(comp, 4.0, 1e-6);
    }
}
END_TEST

START_TEST(test_kmeans_single_sample)
{
    /* cv::kmeans reads one row as 1-D samples; one 3-D sample must stay one. */
    const float s[] = {1.5f, -2.0f, 7.0f};
    int32_t lab[1] = {-1};
    float c[3] = {0};
    double comp = -1;
    kms_error err;
    kms_error_clear(&err);
    const kms_kmeans_params p =
        cv_params(1, KMS_KM_TERM_COUNT, 5, 0, 1, KMS_KM_INIT_PP, 0);
    ck_assert_int_eq(kms_cv_kmeans(s, 1, 3, &p, lab, c, &comp, &err), KMS_OK);
    ck_assert_int_eq(lab[0], 0);
    ck_assert_mem_eq(c, s, sizeof c);
    ck_assert_double_eq_tol(comp, 0.0, 1e-12);
}
END_TEST

/* The parameter struct's edges: compactness is optional, a NULL struct or an
 * init outside kms_km_init is a usage error (nothing is written). */
START_TEST(test_kmeans_params_checked)
{
    const float s[] = {1, 2, 3, 10, 11, 12};
    int32_t lab[6], lab2[6];
    float c[2], c2[2];
    double comp;
    kms_error err;
    kms_error_clear(&err);
    kms_kmeans_params p =
        cv_params(2, KMS_KM_TERM_COUNT, 10, 0, 2, KMS_KM_INIT_PP, 7);
    ck_assert_int_eq(kms_cv_kmeans(s, 6, 1, &p, lab, c, &comp, &err), KMS_OK);
    ck_assert_int_eq(kms_cv_kmeans(s, 6, 1, &p, lab2, c2, NULL, &err), KMS_OK);
    ck_assert_mem_eq(lab, lab2, sizeof lab);
    ck_assert_mem_eq(c, c2, sizeof c);
    ck_assert_int_eq(kms_cv_kmeans(s, 6, 1, NULL, lab, c, &comp, &err),
                     KMS_ERR_USAGE);
    p.init = (kms_km_init)7;
    lab[0] = -5;
    ck_assert_int_eq(kms_cv_kmeans(s, 6, 1, &p, lab, c, &comp, &err),
                     KMS_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(err.message, "init"));
    ck_assert_int_eq(lab[0], -5);
}
END_TEST

START_TEST(test_connected_components)
{
    kms_error err;
    kms_error_clear(&err);
    kms_image mask = kt_image(10, 10, 1, KMS_DEPTH_U8), labels = {0};
    for (int y = 1; y < 3; y++) /* blob 1: 3x2 at (1,1) */
        for (int x = 1; x < 4; x++)
            *px8(&mask, x, y) = 255;
    for (int y = 5; y < 8; y++) /* blob 2: 3x3 at (5,5) */
        for (int x = 5; x < 8; x++)
            *px8(&mask, x, y) = 1;
    int count = 0;
    int32_t *stats = NULL;
    double *cen = NULL;
    ck_assert_int_eq(kms_cv_connected_components(&mask, &labels, 8, &count,
                                                 &stats, &cen, &err),
                     KMS_OK);
    ck_assert_int_eq(count, 3);
    ck_assert_int_eq(labels.depth, KMS_DEPTH_S32);
    ck_assert_int_eq(stats[0 * KMS_CV_CC_STAT_MAX + KMS_CV_CC_STAT_AREA], 85);
    ck_assert_int_eq(stats[1 * KMS_CV_CC_STAT_MAX + KMS_CV_CC_STAT_AREA], 6);
    ck_assert_int_eq(stats[2 * KMS_CV_CC_STAT_MAX + KMS_CV_CC_STAT_AREA], 9);
    ck_assert_int_eq(stats[1 * KMS_CV_CC_STAT_MAX + KMS_CV_CC_STAT_LEFT], 1);
    ck_assert_int_eq(stats[1 * KMS_CV_CC_STAT_MAX + KMS_CV_CC_STAT_WIDTH], 3);
    ck_assert_int_eq(stats[2 * KMS_CV_CC_STAT_MAX + KMS_CV_CC_STAT_TOP], 5);
    ck_assert_int_eq(stats[2 * KMS_CV_CC_STAT_MAX + KMS_CV_CC_STAT_HEIGHT], 3);
    ck_assert_double_eq_tol(cen[2 * 2 + 0], 6.0, 1e-9);
    ck_assert_double_eq_tol(cen[2 * 2 + 1], 6.0, 1e-9);
    ck_assert_double_eq_tol(cen[1 * 2 + 0], 2.0, 1e-9);
    ck_assert_double_eq_tol(cen[1 * 2 + 1], 1.5, 1e-9);
    ck_assert_int_eq(((int32_t *)kms_image_row(&labels, 1))[2], 1);
    ck_assert_int_eq(((int32_t *)kms_image_row(&labels, 6))[6], 2);
    ck_assert_int_eq(((int32_t *)kms_image_row(&labels, 9))[9], 0);
    free(stats);
    free(cen);
    /* Neither table wanted; labels written over the mask itself. */
    ck_assert_int_eq(
        kms_cv_connected_components(&mask, &mask, 4, &count, NULL, NULL, &err),
        KMS_OK);
    ck_assert_int_eq(count, 3);
    ck_assert_int_eq(mask.depth, KMS_DEPTH_S32);
    kms_image_free(&mask);
    kms_image_free(&labels);
}
END_TEST

START_TEST(test_flood_fill)
{
    kms_error err;
    kms_error_clear(&err);
    kms_image img = kt_image(8, 8, 1, KMS_DEPTH_U8);
    for (int y = 0; y < 8; y++)
        *px8(&img, 4, y) = 255; /* wall at x = 4 */
    int area = 0;
    ck_assert_int_eq(kms_cv_flood_fill(&img, 0, 0, 100, 4, &area, &err),
                     KMS_OK);
    ck_assert_int_eq(area, 32);
    ck_assert_int_eq(*px8(&img, 3, 7), 100);
    ck_assert_int_eq(*px8(&img, 4, 7), 255);
    ck_assert_int_eq(*px8(&img, 5, 0), 0);
    kms_image_free(&img);
}
END_TEST

START_TEST(test_morphology_close)
{
    kms_error err;
    kms_error_clear(&err);
    kms_image img = kt_image(11, 11, 1, KMS_DEPTH_U8), out = {0};
    for (int y = 3; y < 8; y++)
        for (int x = 3; x < 8; x++)
            *px8(&img, x, y) = 255;
    *px8(&img, 5, 5) = 0; /* one-pixel hole */
    ck_assert_int_eq(kms_cv_morphology(&img, &out, KMS_CV_MORPH_CLOSE,
                                       KMS_CV_MORPH_RECT, 3, 1, &err),
                     KMS_OK);
    for (int y = 0; y < 11; y++)
        for (int x = 0; x < 11; x++)
            ck_assert_int_eq(*px8(&out, x, y),
                             (x >= 3 && x < 8 && y >= 3 && y < 8) ? 255 : 0);
    kms_image_free(&img);
    kms_image_free(&out);
}
END_TEST

START_TEST(test_draw_outline)
{
    kms_error err;
    kms_error_clear(&err);
    kms_image img = kt_image(12, 12, 3, KMS_DEPTH_U8);
    kms_image mask = kt_image(12, 12, 1, KMS_DEPTH_U8);
    for (int y = 3; y < 9; y++)
        for (int x = 3; x < 9; x++)
            *px8(&mask, x, y) = 255;
    const double red[4] = {0, 0, 255, 0};
    ck_assert_int_eq(kms_cv_draw_outline(&img, &mask, red, 1, &err), KMS_OK);
    int changed = 0;
    for (int y = 0; y < 12; y++)
        for (int x = 0; x < 12; x++) {
            uint8_t *p = px8(&img, x, y);
            int on_edge =
                *px8(&mask, x, y) && (x == 3 || x == 8 || y == 3 || y == 8);
            if (p[0] || p[1] || p[2]) {
                changed++;
                ck_assert_msg(on_edge, "pixel (%d,%d) is not on the boundary",
                              x, y);
                ck_assert_int_eq(p[2], 255);
                ck_assert_int_eq(p[0], 0);
            } else {
                ck_assert_msg(!on_edge, "boundary pixel (%d,%d) not drawn", x,
                              y);
            }
        }
    ck_assert_int_eq(changed, 20);
    kms_image_free(&img);
    kms_image_free(&mask);
}
END_TEST

START_TEST(test_drawing)
{
    kms_error err;
    kms_error_clear(&err);
    const double white[4] = {255, 255, 255, 255};
    kms_image img = kt_image(10, 10, 1, KMS_DEPTH_U8);
    ck_assert_int_eq(kms_cv_line(&img, 0, 5, 9, 5, white, 1, &err), KMS_OK);
    for (int y = 0; y < 10; y++)
        for (int x = 0; x < 10; x++)
            ck_assert_int_eq(*px8(&img, x, y), y == 5 ? 255 : 0);
    memset(img.data, 0, img.stride * 10);
    ck_assert_int_eq(kms_cv_circle(&img, 5, 5, 2, white, -1, &err), KMS_OK);
    ck_assert_int_eq(*px8(&img, 5, 5), 255);
    ck_assert_int_eq(*px8(&img, 7, 5), 255);
    ck_assert_int_eq(*px8(&img, 0, 0), 0);
    ck_assert_int_eq(*px8(&img, 8, 5), 0);
    kms_image_free(&img);

    kms_image t = kt_image(100, 40, 3, KMS_DEPTH_U8);
    ck_assert_int_eq(kms_cv_put_text(&t, "Hi 42", 5, 30, 1.0, white, 2, &err),
                     KMS_OK);
    int changed = 0;
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 100; x++)
            changed += px8(&t, x, y)[1] != 0;
    ck_assert_int_gt(changed, 20);
    kms_image_free(&t);

    int w = 0, h = 0, base = -1, w2 = 0, h2 = 0;
    ck_assert_int_eq(kms_cv_text_size("Hi 42", 1.0, 2, &w, &h, &base, &err),
                     KMS_OK);
    ck_assert_int_gt(w, 0);
    ck_assert_int_gt(h, 0);
    ck_assert_int_ge(base, 0);
    ck_assert_int_eq(kms_cv_text_size("Hi 42", 2.0, 2, &w2, &h2, NULL, &err),
                     KMS_OK);
    ck_assert_int_gt(w2, w);
}
END_TEST

START_TEST(test_denoise)
{
    kms_error err;
    kms_error_clear(&err);
    kms_image img = noisy_flat(48, 48), out = {0};
    double before = variance8(&img);
    ck_assert_double_gt(before, 100.0);
    ck_assert_int_eq(kms_cv_nlmeans(&img, &out, 30.0f, 7, 21, &err), KMS_OK);
    ck_assert_double_lt(variance8(&out), before / 4);
    ck_assert_int_eq(kms_cv_bilateral(&img, &out, 9, 80.0, 5.0, &err), KMS_OK);
    ck_assert_double_lt(variance8(&out), before / 4);
    /* In place: OpenCV itself refuses src == dst for the bilateral filter. */
    ck_assert_int_eq(kms_cv_bilateral(&img, &img, 9, 80.0, 5.0, &err), KMS_OK);
    assert_same_pixels(&img, &out);
    kms_image_free(&img);
    kms_image_free(&out);
}
END_TEST

START_TEST(test_denoise_u16_and_color)
{
    kms_error err;
    kms_error_clear(&err);
    kms_image g = noisy_flat(32, 32), w = {0}, c = {0};
    ck_assert_int_eq(kms_cv_convert(&g, &w, KMS_DEPTH_U16, 100.0, 0.0, &err),
                     KMS_OK);
    ck_assert_int_eq(kms_cv_nlmeans(&w, &w, 3000.0f, 7, 21, &err), KMS_OK);
    ck_assert_int_eq(w.depth, KMS_DEPTH_U16);
    ck_assert_int_eq(kms_cv_convert(&w, &w, KMS_DEPTH_U8, 0.01, 0.0, &err),
                     KMS_OK);
    ck_assert_double_lt(variance8(&w), variance8(&g) / 2);
    ck_assert_int_eq(kms_cv_cvt_color(&g, &c, KMS_CV_GRAY2BGR, &err), KMS_OK);
    ck_assert_int_eq(kms_cv_nlmeans(&c, &c, 30.0f, 7, 21, &err), KMS_OK);
    ck_assert_int_eq(c.channels, 3);
    kms_image_free(&g);
    kms_image_free(&w);
    kms_image_free(&c);
}
END_TEST

/* ---- Limits: errors ------------------------------------------------------ */

START_TEST(test_imread_ok)
{
    char path[512];
    kt_tmp_path(path, sizeof path, "ok.png");
    kms_error err;
    kms_error_clear(&err);
    kms_image img = kt_image(5, 4, 1, KMS_DEPTH_U16), back = {0};
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 5; x++)
            ((uint16_t *)kms_image_row(&img, y))[x] = (uint16_t)(1000 * x + y);
    unsigned char *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(kms_cv_imencode(".PNG", &img, NULL, 0, &buf, &len, &err),
                     KMS_OK);
    kt_write_bytes(path, buf, len);
    free(buf);
    ck_assert_int_eq(kms_cv_imread(path, KMS_CV_IMREAD_UNCHANGED, &back, &err),
                     KMS_OK);
    assert_same_pixels(&img, &back);
    /* Grayscale reading converts to 8 bits, as in OpenCV. */
    ck_assert_int_eq(kms_cv_imread(path, KMS_CV_IMREAD_GRAYSCALE, &back, &err),
                     KMS_OK);
    ck_assert_int_eq(back.depth, KMS_DEPTH_U8);
    kms_image_free(&img);
    kms_image_free(&back);
}
END_TEST

START_TEST(test_imread_missing)
{
    char path[512];
    kt_tmp_path(path, sizeof path, "gone.png");
    kms_error err;
    kms_error_clear(&err);
    kms_image img = {0};
    ck_assert_int_eq(kms_cv_imread(path, KMS_CV_IMREAD_UNCHANGED, &img, &err),
                     KMS_ERR_IO);
    ck_assert_int_eq(err.code, KMS_ERR_IO);
    ck_assert_str_eq(err.file, path);
    ck_assert_ptr_nonnull(strstr(err.message, "No such file"));
    ck_assert_ptr_null(img.data);
    /* A directory is not a readable file either. */
    ck_assert_int_eq(
        kms_cv_imread(kt_tmpdir, KMS_CV_IMREAD_UNCHANGED, &img, &err),
        KMS_ERR_IO);
    ck_assert_str_eq(err.file, kt_tmpdir);
}
END_TEST

START_TEST(test_imread_not_image)
{
    char path[512];
    kms_error err;
    kms_error_clear(&err);
    kms_image img = {0};
    kt_tmp_path(path, sizeof path, "empty.png");
    kt_write_bytes(path, "", 0);
    ck_assert_int_eq(kms_cv_imread(path, KMS_CV_IMREAD_UNCHANGED, &img, &err),
                     KMS_ERR_INPUT);
    ck_assert_str_eq(err.file, path);
    ck_assert_str_eq(err.message, "empty file");

    kt_tmp_path(path, sizeof path, "x.png");
    const char text[] = "this is not a PNG\n";
    kt_write_bytes(path, text, sizeof text - 1);
    kms_error_clear(&err);
    ck_assert_int_eq(kms_cv_imread(path, KMS_CV_IMREAD_UNCHANGED, &img, &err),
                     KMS_ERR_INPUT);
    ck_assert_str_eq(err.file, path);
    ck_assert_ptr_nonnull(strstr(err.message, "decode"));
    ck_assert_ptr_null(img.data);

    ck_assert_int_eq(kms_cv_imdecode(text, sizeof text - 1,
                                     KMS_CV_IMREAD_UNCHANGED, "mem.png", &img,
                                     &err),
                     KMS_ERR_INPUT);
    ck_assert_str_eq(err.file, "mem.png");
    ck_assert_int_eq(kms_cv_imdecode(text, 0, KMS_CV_IMREAD_UNCHANGED,
                                     "mem.png", &img, &err),
                     KMS_ERR_INPUT);
}
END_TEST

START_TEST(test_imencode_refuses_conversion)
{
    kms_error err;
    kms_error_clear(&err);
    unsigned char *buf = (unsigned char *)"sentinel";
    size_t len = 99;
    kms_image s16 = kt_image(4, 4, 1, KMS_DEPTH_S16);
    kms_image f32 = kt_image(4, 4, 1, KMS_DEPTH_F32);
    /* OpenCV 4.6 would silently write these as 8-bit. */
    ck_assert_int_eq(kms_cv_imencode(".png", &s16, NULL, 0, &buf, &len, &err),
                     KMS_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(err.message, "16-bit signed"));
    ck_assert_ptr_null(buf);
    ck_assert_int_eq(kms_cv_imencode(".jpg", &f32, NULL, 0, &buf, &len, &err),
                     KMS_ERR_USAGE);
    ck_assert_int_eq(
        kms_cv_imencode(".nosuchformat", &s16, NULL, 0, &buf, &len, &err),
        KMS_ERR_USAGE);
    ck_assert_int_eq(kms_cv_imencode("png", &s16, NULL, 0, &buf, &len, &err),
                     KMS_ERR_USAGE);
    /* Odd params: OpenCV would read past the end of them. */
    kms_image u8 = kt_image(4, 4, 1, KMS_DEPTH_U8);
    const int params[] = {16 /* IMWRITE_PNG_COMPRESSION */};
    ck_assert_int_eq(kms_cv_imencode(".png", &u8, params, 1, &buf, &len, &err),
                     KMS_ERR_USAGE);
    ck_assert_ptr_null(buf);
    /* OpenCV's own check (no 2-channel images) becomes a status. */
    kms_image two = kt_image(4, 4, 2, KMS_DEPTH_U8);
    assert_one_line_opencv_error(
        kms_cv_imencode(".png", &two, NULL, 0, &buf, &len, &err), &err);
    ck_assert_ptr_null(buf);
    kms_image_free(&two);
    const int good[] = {16, 9};
    ck_assert_int_eq(kms_cv_imencode(".png", &u8, good, 2, &buf, &len, &err),
                     KMS_OK);
    free(buf);
    kms_image_free(&s16);
    kms_image_free(&f32);
    kms_image_free(&u8);
}
END_TEST

START_TEST(test_opencv_exceptions)
{
    kms_error err;
    kms_error_clear(&err);
    kms_image img = kt_image(8, 8, 1, KMS_DEPTH_U8);
    kms_image out = kt_image(2, 2, 1, KMS_DEPTH_U8);
    void *old = out.data;

    assert_one_line_opencv_error(kms_cv_median_blur(&img, &out, 4, &err), &err);
    ck_assert_ptr_nonnull(strstr(err.message, "kms_cv_median_blur"));
    ck_assert_ptr_nonnull(strstr(err.message, "medianBlur"));
    ck_assert_ptr_eq(out.data, old); /* dst untouched on failure */
    ck_assert_int_eq(out.width, 2);

    kms_error_clear(&err);
    assert_one_line_opencv_error(kms_cv_gaussian_blur(&img, &out, 4, 1.0, &err),
                                 &err);
    ck_assert_ptr_eq(out.data, old);

    const float s[] = {1, 2, 3};
    int32_t lab[3];
    float c[5];
    double comp;
    kms_error_clear(&err);
    const kms_kmeans_params p =
        cv_params(5, KMS_KM_TERM_COUNT, 10, 0, 1, KMS_KM_INIT_RANDOM, 1);
    assert_one_line_opencv_error(
        kms_cv_kmeans(s, 3, 1, &p, lab, c, &comp, &err), &err);
    ck_assert_ptr_nonnull(strstr(err.message, "kmeans"));

    kms_error_clear(&err);
    assert_one_line_opencv_error(
        kms_cv_flood_fill(&img, 8, 0, 1, 4, NULL, &err), &err);
    kms_error_clear(&err);
    assert_one_line_opencv_error(
        kms_cv_resize(&img, &out, 0, 0, 0, 0, KMS_CV_INTER_LINEAR, &err), &err);
    kms_error_clear(&err);
    assert_one_line_opencv_error(
        kms_cv_cvt_color(&img, &out, KMS_CV_BGR2GRAY, &err), &err);
    ck_assert_ptr_eq(out.data, old);
    kms_image_free(&img);
    kms_image_free(&out);
}
END_TEST

START_TEST(test_usage_errors)
{
    kms_error err;
    kms_error_clear(&err);
    kms_image empty = {0}, out = {0};
    kms_image f = kt_image(4, 4, 1, KMS_DEPTH_F32);
    kms_image rgb = kt_image(4, 4, 3, KMS_DEPTH_U8);
    kms_image small = kt_image(3, 3, 1, KMS_DEPTH_U8);
    const double white[4] = {255, 255, 255, 0};
    ck_assert_int_eq(kms_cv_median_blur(&empty, &out, 3, &err), KMS_ERR_USAGE);
    ck_assert_int_eq(kms_cv_median_blur(NULL, &out, 3, &err), KMS_ERR_USAGE);
    ck_assert_int_eq(kms_cv_nlmeans(&f, &out, 3.0f, 7, 21, &err),
                     KMS_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(err.message, "8-bit"));
    ck_assert_int_eq(kms_cv_convert(&f, &out, (kms_depth)42, 1, 0, &err),
                     KMS_ERR_USAGE);
    ck_assert_int_eq(kms_cv_flood_fill(&rgb, 0, 0, 1, 4, NULL, &err),
                     KMS_ERR_USAGE);
    ck_assert_int_eq(kms_cv_draw_outline(&rgb, &small, white, 1, &err),
                     KMS_ERR_USAGE);
    kms_kmeans_params kp;
    kms_kmeans_params_default(&kp);
    ck_assert_int_eq(kms_cv_kmeans(NULL, 3, 1, &kp, NULL, NULL, NULL, &err),
                     KMS_ERR_USAGE);
    ck_assert_ptr_null(out.data);
    /* NULL err is allowed everywhere. */
    ck_assert_int_eq(kms_cv_median_blur(&f, &out, 4, NULL), KMS_ERR_OPENCV);
    kms_image_free(&f);
    kms_image_free(&rgb);
    kms_image_free(&small);
}
END_TEST

static Suite *opencv_c_suite(void)
{
    Suite *s = suite_create("opencv_c");
    TCase *core = tcase_create("Core");
    tcase_add_test(core, test_version);
    tcase_add_test(core, test_roundtrip_png_u8);
    tcase_add_test(core, test_roundtrip_png_u16);
    tcase_add_test(core, test_roundtrip_tiff_s16);
    tcase_add_test(core, test_roundtrip_tiff_f32);
    tcase_add_test(core, test_cvt_color_gray);
    tcase_add_test(core, test_resize_nearest);
    tcase_add_test(core, test_convert);
    tcase_add_test(core, test_blurs);
    tcase_add_test(core, test_kmeans_two_groups);
    tcase_add_test(core, test_kmeans_same_seed);
    tcase_add_test(core, test_kmeans_initial_labels);
    tcase_add_test(core, test_kmeans_single_sample);
    tcase_add_test(core, test_kmeans_params_checked);
    tcase_add_test(core, test_connected_components);
    tcase_add_test(core, test_flood_fill);
    tcase_add_test(core, test_morphology_close);
    tcase_add_test(core, test_draw_outline);
    tcase_add_test(core, test_drawing);
    tcase_add_test(core, test_denoise);
    tcase_add_test(core, test_denoise_u16_and_color);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("Limits");
    kt_add_tmp_fixture(limits, "check_opencv_c");
    tcase_add_test(limits, test_imread_ok);
    tcase_add_test(limits, test_imread_missing);
    tcase_add_test(limits, test_imread_not_image);
    tcase_add_test(limits, test_imencode_refuses_conversion);
    tcase_add_test(limits, test_opencv_exceptions);
    tcase_add_test(limits, test_usage_errors);
    suite_add_tcase(s, limits);
    return s;
}

int main(void)
{
    return kt_run_suite(opencv_c_suite());
}
