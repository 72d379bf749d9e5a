/* Check suite for the stages (the files in stages/): pipelines built from config texts
 * and run with kms_pipeline_run on the sample CT slices. */
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "context.h"
#include "kmeans.h"
#include "opencv_c.h"
#include "output.h"
#include "pipeline.h"
#include "test_util.h"

#ifndef KMS_SOURCE_DIR
#error "build with -DKMS_SOURCE_DIR=\"<repo root>\""
#endif

#define SAMPLE_PNG KMS_SOURCE_DIR "/samples/png/ID_0000_Z_0142.png"
#define SAMPLE_CT KMS_SOURCE_DIR "/samples/ct/ID_0000_Z_0142.tif"
#define SAMPLE_STEM "ID_0000_Z_0142"

/* ---- fixture: kt_tmpdir per test, with an output folder in it --------- */

static char outdir[640];

/* Runs after kt_add_tmp_fixture's setup has made kt_tmpdir. */
static void setup_outdir(void)
{
    snprintf(outdir, sizeof outdir, "%s/out", kt_tmpdir);
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_output_prepare_dir(outdir, &err), KMS_OK);
}

/* ---- helpers -------------------------------------------------------------- */

/* Builds a pipeline from a config text (written to kt_tmpdir/p.ini). */
static void build(const char *text, kms_pipeline *pl)
{
    char path[4096];
    kms_error err;
    kms_status st = kt_build_text(text, NULL, pl, &err, path, sizeof path);
    ck_assert_msg(st == KMS_OK, "build: %s:%d: %s: %s", err.file, err.line,
                  err.key, err.message);
}

/* A context for one input, as the batch runner sets it up. */
static void context_for(kms_context *ctx, const char *input, const char *stem,
                        uint64_t seed)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->input_path = input;
    snprintf(ctx->stem, sizeof ctx->stem, "%s", stem);
    ctx->output_dir = outdir;
    ctx->base_dir = kt_tmpdir;
    ctx->seed = seed;
    ctx->threads = 1;
}

/* Builds text and runs it on input; the caller clears ctx. */
static kms_status run_text(const char *text, const char *input, uint64_t seed,
                           kms_context *ctx, kms_error *err)
{
    kms_pipeline pl;
    build(text, &pl);
    context_for(ctx, input, SAMPLE_STEM, seed);
    kms_error_clear(err);
    kms_status st = kms_pipeline_run(&pl, ctx, err);
    kms_pipeline_free(&pl);
    return st;
}

static void run_ok(const char *text, const char *input, uint64_t seed,
                   kms_context *ctx)
{
    kms_error err;
    kms_status st = run_text(text, input, seed, ctx, &err);
    ck_assert_msg(st == KMS_OK, "run: %s: %s: %s", err.file, err.key,
                  err.message);
    ck_assert_int_eq(err.code, KMS_OK);
}

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Distinct values of a 1-channel 8-bit image. */
static int distinct_u8(const kms_image *img)
{
    ck_assert_int_eq(img->depth, KMS_DEPTH_U8);
    ck_assert_int_eq(img->channels, 1);
    bool seen[256] = {false};
    int n = 0;
    for (int y = 0; y < img->height; y++) {
        const uint8_t *row = kms_image_row(img, y);
        for (int x = 0; x < img->width; x++)
            if (!seen[row[x]]) {
                seen[row[x]] = true;
                n++;
            }
    }
    return n;
}

/* ---- the notebook pipeline, stage by stage ------------------------------- */

static const char cfg_read_color[] =
    "[pipeline]\nstages = read\n[read]\nmode = color\n";

static const char cfg_reshape[] =
    "[pipeline]\nstages = read, reshape\n"
    "[read]\nmode = color\n"
    "[reshape]\nwidth = 128\nheight = 128\nvalue_scale = 1/255\n";

/* read, reshape, kmeans with the given backend line, recolor, write */
static void notebook_config(char *buf, size_t len, const char *backend)
{
    snprintf(buf, len,
             "[pipeline]\n"
             "stages = read, reshape, kmeans, recolor, write\n"
             "[read]\nmode = color\n"
             "[reshape]\nwidth = 128\nheight = 128\ninterpolation = linear\n"
             "features = intensity\nvalue_scale = 1/255\n"
             "[kmeans]\n%s\nk = 2\nattempts = 10\nmax_iter = 10\n"
             "epsilon = 1.0\ncriteria = eps+max_iter\ninit = pp\n"
             "[write]\nproducts = recolor, labels, recolor_raw\n",
             backend);
}

START_TEST(test_read_color)
{
    kms_context ctx;
    run_ok(cfg_read_color, SAMPLE_PNG, 0, &ctx);
    ck_assert_int_eq(ctx.image.width, 512);
    ck_assert_int_eq(ctx.image.height, 512);
    ck_assert_int_eq(ctx.image.channels, 3);
    ck_assert_int_eq(ctx.image.depth, KMS_DEPTH_U8);
    ck_assert_int_eq(ctx.input_width, 512);
    ck_assert_int_eq(ctx.input_height, 512);
    ck_assert_int_eq(ctx.input_depth, KMS_DEPTH_U8);
    ck_assert(!ctx.hu);
    /* a grey PNG read as colour: B = G = R everywhere, and not all black */
    long sum = 0;
    for (int y = 0; y < 512; y++) {
        const uint8_t *row = kms_image_row(&ctx.image, y);
        for (int x = 0; x < 512; x++) {
            ck_assert_int_eq(row[3 * x], row[3 * x + 1]);
            ck_assert_int_eq(row[3 * x], row[3 * x + 2]);
            sum += row[3 * x];
        }
    }
    ck_assert_int_gt(sum, 0);
    kms_context_clear(&ctx);
    ck_assert_ptr_null(ctx.image.data);
}
END_TEST

START_TEST(test_read_grayscale_matches_color)
{
    kms_context color, grey;
    run_ok(cfg_read_color, SAMPLE_PNG, 0, &color);
    run_ok("[pipeline]\nstages = read\n[read]\nmode = grayscale\n", SAMPLE_PNG,
           0, &grey);
    ck_assert_int_eq(grey.image.channels, 1);
    ck_assert_int_eq(grey.image.depth, KMS_DEPTH_U8);
    ck_assert_int_eq(grey.image.width, 512);
    for (int y = 0; y < 512; y++) {
        const uint8_t *c = kms_image_row(&color.image, y);
        const uint8_t *g = kms_image_row(&grey.image, y);
        for (int x = 0; x < 512; x++)
            ck_assert_int_eq(g[x], c[3 * x]);
    }
    kms_context_clear(&color);
    kms_context_clear(&grey);
}
END_TEST

START_TEST(test_reshape_samples)
{
    kms_context ctx;
    run_ok(cfg_reshape, SAMPLE_PNG, 0, &ctx);
    ck_assert_uint_eq(ctx.n_samples, 16384);
    ck_assert_int_eq(ctx.dims, 1);
    ck_assert_int_eq(ctx.sample_width, 128);
    ck_assert_int_eq(ctx.sample_height, 128);
    ck_assert_double_eq(ctx.value_num, 1.0);
    ck_assert_double_eq(ctx.value_den, 255.0);
    /* every sample is an 8-bit grey k scaled as numpy's float32(k) / 255 */
    int distinct = 0;
    bool seen[256] = {false};
    for (size_t i = 0; i < ctx.n_samples; i++) {
        float s = ctx.samples[i];
        long k = lrintf(s * 255.0f);
        ck_assert_msg(k >= 0 && k <= 255, "sample %zu = %.9g", i, (double)s);
        ck_assert_msg(s == (float)k / 255.0f, "sample %zu = %.9g is not %ld/255",
                      i, (double)s, k);
        if (!seen[k]) {
            seen[k] = true;
            distinct++;
        }
    }
    ck_assert_int_gt(distinct, 50);
    kms_context_clear(&ctx);
}
END_TEST

START_TEST(test_reshape_matches_opencv)
{
    /* the samples are cvtColor → resize(linear) of the image, over 255 */
    kms_context ctx;
    run_ok(cfg_reshape, SAMPLE_PNG, 0, &ctx);
    kms_image img = {0}, grey = {0}, small = {0};
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_cv_imread(SAMPLE_PNG, KMS_CV_IMREAD_COLOR, &img, &err),
                     KMS_OK);
    ck_assert_int_eq(kms_cv_cvt_color(&img, &grey, KMS_CV_BGR2GRAY, &err), KMS_OK);
    ck_assert_int_eq(kms_cv_resize(&grey, &small, 128, 128, 0, 0,
                                   KMS_CV_INTER_LINEAR, &err),
                     KMS_OK);
    for (int y = 0; y < 128; y++) {
        const uint8_t *row = kms_image_row(&small, y);
        for (int x = 0; x < 128; x++)
            ck_assert_float_eq(ctx.samples[y * 128 + x], (float)row[x] / 255.0f);
    }
    kms_image_free(&img);
    kms_image_free(&grey);
    kms_image_free(&small);
    kms_context_clear(&ctx);
}
END_TEST

/* Canonical 2-means labels: 0/1, centre 0 the darker, each sample at least
 * as close to its own centre as to the other, and wcss the sum of squares
 * (recomputed in double, 1e-6 relative). */
static void assert_two_means(const kms_context *ctx)
{
    ck_assert_int_eq(ctx->k, 2);
    ck_assert_ptr_nonnull(ctx->labels);
    ck_assert_ptr_nonnull(ctx->centers);
    const float *c = ctx->centers;
    ck_assert_msg(c[0] <= c[1], "centres %.9g > %.9g", (double)c[0],
                  (double)c[1]);
    size_t count[2] = {0, 0};
    double wcss = 0;
    for (size_t i = 0; i < ctx->n_samples; i++) {
        int32_t l = ctx->labels[i];
        ck_assert_msg(l == 0 || l == 1, "label %zu is %d", i, (int)l);
        count[l]++;
        double s = ctx->samples[i];
        double own = (s - c[l]) * (s - c[l]);
        double other = (s - c[1 - l]) * (s - c[1 - l]);
        ck_assert_msg(own <= other, "sample %zu = %.9g has label %d: centres "
                                    "%.9g %.9g",
                      i, s, (int)l, (double)c[0], (double)c[1]);
        wcss += own;
    }
    ck_assert_uint_gt(count[0], 0);
    ck_assert_uint_gt(count[1], 0);
    ck_assert_double_gt(wcss, 0);
    ck_assert_msg(fabs(ctx->wcss - wcss) <= 1e-6 * wcss,
                  "wcss %.12g, recomputed %.12g", ctx->wcss, wcss);
}

/* Every pixel of the recoloured image is its label's centre. */
static void assert_recolor(const kms_context *ctx)
{
    const kms_image *r = &ctx->recolor;
    ck_assert_int_eq(r->width, 128);
    ck_assert_int_eq(r->height, 128);
    ck_assert_int_eq(r->channels, 1);
    ck_assert_int_eq(r->depth, KMS_DEPTH_F32);
    for (int y = 0; y < 128; y++) {
        const float *row = kms_image_row(r, y);
        for (int x = 0; x < 128; x++) {
            int32_t l = ctx->labels[y * 128 + x];
            ck_assert_float_eq(row[x], ctx->centers[l]);
        }
    }
}

static uint8_t u8_of_center(float c)
{
    double v = rint((double)c * 255.0);
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* Reads the product outdir/<stem><suffix> as it is: 128 wide, one channel
 * of the given depth. */
static void read_product(const char *suffix, kms_depth depth, kms_image *img)
{
    char path[1024];
    kms_error err;
    kms_error_clear(&err);
    snprintf(path, sizeof path, "%s/%s%s", outdir, SAMPLE_STEM, suffix);
    ck_assert_msg(kms_cv_imread(path, KMS_CV_IMREAD_UNCHANGED, img, &err) ==
                      KMS_OK,
                  "%s: %s", path, err.message);
    ck_assert_int_eq(img->width, 128);
    ck_assert_int_eq(img->channels, 1);
    ck_assert_int_eq(img->depth, depth);
}

/* The three products decode to the labels, rint(centre * 255) and the
 * centres; nothing else is in the output folder. */
static void assert_products(const kms_context *ctx)
{
    ck_assert_int_eq(kt_count_entries(outdir, NULL), 3);
    kms_image labels = {0}, recolor = {0}, raw = {0};
    read_product("_labels.png", KMS_DEPTH_U8, &labels);
    ck_assert_int_eq(labels.height, 128);
    read_product("_recolor.png", KMS_DEPTH_U8, &recolor);
    read_product("_recolor.tif", KMS_DEPTH_F32, &raw);

    for (int y = 0; y < 128; y++) {
        const uint8_t *lr = kms_image_row(&labels, y);
        const uint8_t *rr = kms_image_row(&recolor, y);
        const float *fr = kms_image_row(&raw, y);
        for (int x = 0; x < 128; x++) {
            int32_t l = ctx->labels[y * 128 + x];
            ck_assert_int_eq(lr[x], l);
            ck_assert_int_eq(rr[x], u8_of_center(ctx->centers[l]));
            ck_assert_float_eq(fr[x], ctx->centers[l]);
        }
    }
    kms_image_free(&labels);
    kms_image_free(&recolor);
    kms_image_free(&raw);
}

START_TEST(test_notebook_opencv)
{
    /* seed 42 as in samples/notebook.ini. cv::kmeans labels with the centres
     * of its last iteration but one; with this seed they are also the
     * nearest of the final centres. */
    char text[1024];
    notebook_config(text, sizeof text, "backend = opencv");
    kms_context ctx;
    run_ok(text, SAMPLE_PNG, 42, &ctx);
    ck_assert_str_eq(ctx.backend, "opencv");
    ck_assert_uint_eq(ctx.n_samples, 16384);
    assert_two_means(&ctx);
    assert_recolor(&ctx);
    assert_products(&ctx);
    kms_context_clear(&ctx);
}
END_TEST

START_TEST(test_notebook_native)
{
    char text[1024];
    notebook_config(text, sizeof text, "backend = native");
    kms_context ctx;
    run_ok(text, SAMPLE_PNG, 42, &ctx);
    ck_assert_str_eq(ctx.backend, "native");
    assert_two_means(&ctx);
    /* 1-D optimum: each centre is the mean of its cluster */
    double sum[2] = {0, 0};
    size_t count[2] = {0, 0};
    for (size_t i = 0; i < ctx.n_samples; i++) {
        sum[ctx.labels[i]] += ctx.samples[i];
        count[ctx.labels[i]]++;
    }
    for (int j = 0; j < 2; j++)
        ck_assert_double_eq_tol(ctx.centers[j], sum[j] / (double)count[j], 1e-6);
    assert_recolor(&ctx);
    assert_products(&ctx);
    kms_context_clear(&ctx);
}
END_TEST

START_TEST(test_native_not_worse_than_opencv)
{
    /* the native 1-D method is the exact optimum: never a larger wcss than
     * cv::kmeans on the same samples, whatever the seed */
    char native_cfg[1024], opencv_cfg[1024];
    notebook_config(native_cfg, sizeof native_cfg, "backend = native");
    notebook_config(opencv_cfg, sizeof opencv_cfg, "backend = opencv");
    kms_context a, b;
    run_ok(native_cfg, SAMPLE_PNG, (uint64_t)_i, &a);
    run_ok(opencv_cfg, SAMPLE_PNG, (uint64_t)_i, &b);
    ck_assert_msg(a.wcss <= b.wcss * (1 + 1e-9), "native %.12g > opencv %.12g",
                  a.wcss, b.wcss);
    kms_context_clear(&a);
    kms_context_clear(&b);
}
END_TEST

START_TEST(test_notebook_deterministic)
{
    /* the same config and seed give the same labels, run after run */
    char text[1024];
    notebook_config(text, sizeof text, _i ? "backend = opencv" : "backend = native");
    kms_context a, b;
    run_ok(text, SAMPLE_PNG, 7, &a);
    run_ok(text, SAMPLE_PNG, 7, &b);
    ck_assert_uint_eq(a.n_samples, b.n_samples);
    ck_assert_int_eq(memcmp(a.labels, b.labels, a.n_samples * sizeof *a.labels), 0);
    ck_assert_int_eq(memcmp(a.centers, b.centers, 2 * sizeof *a.centers), 0);
    ck_assert_double_eq(a.wcss, b.wcss);
    kms_context_clear(&a);
    kms_context_clear(&b);
}
END_TEST

START_TEST(test_read_ct_unchanged)
{
    kms_context ctx;
    run_ok("[pipeline]\nstages = read\n[read]\nmode = unchanged\n", SAMPLE_CT, 0,
           &ctx);
    ck_assert_int_eq(ctx.image.width, 512);
    ck_assert_int_eq(ctx.image.height, 512);
    ck_assert_int_eq(ctx.image.channels, 1);
    ck_assert_int_eq(ctx.image.depth, KMS_DEPTH_S16);
    ck_assert_int_eq(ctx.input_depth, KMS_DEPTH_S16);
    ck_assert(ctx.hu);
    int lo = 32767, hi = -32768;
    for (int y = 0; y < 512; y++) {
        const int16_t *row = kms_image_row(&ctx.image, y);
        for (int x = 0; x < 512; x++) {
            if (row[x] < lo)
                lo = row[x];
            if (row[x] > hi)
                hi = row[x];
        }
    }
    /* air in Hounsfield units is about -1000; tissue and bone are above 0 */
    ck_assert_int_lt(lo, -900);
    ck_assert_int_gt(hi, 0);
    kms_context_clear(&ctx);
}
END_TEST

START_TEST(test_denoise_median)
{
    kms_context raw, smooth;
    run_ok("[pipeline]\nstages = read\n[read]\nmode = grayscale\n", SAMPLE_PNG,
           0, &raw);
    run_ok("[pipeline]\nstages = read, denoise\n[read]\nmode = grayscale\n"
           "[denoise]\nmethod = median\nksize = 5\n",
           SAMPLE_PNG, 0, &smooth);
    ck_assert_int_eq(smooth.image.width, 512);
    ck_assert_int_eq(smooth.image.height, 512);
    ck_assert_int_eq(smooth.image.depth, KMS_DEPTH_U8);
    int before = distinct_u8(&raw.image), after = distinct_u8(&smooth.image);
    ck_assert_msg(after < before, "distinct grey values %d -> %d", before, after);
    /* a median never leaves the range of its neighbourhood: the extremes
     * cannot grow */
    int rmin = 255, rmax = 0, smin = 255, smax = 0;
    for (int y = 0; y < 512; y++) {
        const uint8_t *r = kms_image_row(&raw.image, y);
        const uint8_t *s = kms_image_row(&smooth.image, y);
        for (int x = 0; x < 512; x++) {
            rmin = r[x] < rmin ? r[x] : rmin;
            rmax = r[x] > rmax ? r[x] : rmax;
            smin = s[x] < smin ? s[x] : smin;
            smax = s[x] > smax ? s[x] : smax;
        }
    }
    ck_assert_int_ge(smin, rmin);
    ck_assert_int_le(smax, rmax);
    kms_context_clear(&raw);
    kms_context_clear(&smooth);
}
END_TEST

START_TEST(test_context_clear)
{
    char text[1024];
    notebook_config(text, sizeof text, "backend = opencv");
    kms_context ctx;
    run_ok(text, SAMPLE_PNG, 42, &ctx);
    kms_context_clear(&ctx);
    ck_assert_ptr_null(ctx.samples);
    ck_assert_ptr_null(ctx.labels);
    ck_assert_ptr_null(ctx.centers);
    ck_assert_ptr_null(ctx.image.data);
    ck_assert_ptr_null(ctx.recolor.data);
    ck_assert_uint_eq(ctx.n_samples, 0);
    kms_context_clear(&ctx); /* again: no-op */
    kms_context_clear(NULL);
}
END_TEST

/* ---- Limits ---------------------------------------------------------------- */

START_TEST(test_missing_input)
{
    char missing[1024];
    kt_tmp_path(missing, sizeof missing, "no_such_slice.png");
    char text[1024];
    notebook_config(text, sizeof text, "backend = opencv");
    kms_context ctx;
    kms_error err;
    ck_assert_int_eq(run_text(text, missing, 0, &ctx, &err), KMS_ERR_IO);
    ck_assert_int_eq(err.code, KMS_ERR_IO);
    ck_assert_str_eq(err.file, missing);
    ck_assert_str_eq(err.key, "read");
    ck_assert_ptr_null(ctx.labels);
    ck_assert_int_eq(kt_count_entries(outdir, NULL), 0);
    kms_context_clear(&ctx);
}
END_TEST

START_TEST(test_not_an_image)
{
    char path[1024];
    kt_write_tmp("notes.png", "this is not a PNG\n", path, sizeof path);
    kms_context ctx;
    kms_error err;
    ck_assert_int_eq(run_text(cfg_read_color, path, 0, &ctx, &err), KMS_ERR_INPUT);
    ck_assert_str_eq(err.file, path);
    ck_assert_str_eq(err.key, "read");
    kms_context_clear(&ctx);
}
END_TEST

START_TEST(test_truncated_png)
{
    /* the first half of a real PNG */
    size_t n;
    unsigned char *buf = kt_read_file(SAMPLE_PNG, &n);
    ck_assert_uint_gt(n, 1000);
    char path[1024];
    kt_write_bytes(kt_tmp_path(path, sizeof path, "cut.png"), buf, n / 2);
    free(buf);
    kms_context ctx;
    kms_error err;
    ck_assert_int_eq(run_text(cfg_read_color, path, 0, &ctx, &err), KMS_ERR_INPUT);
    ck_assert_str_eq(err.file, path);
    ck_assert_ptr_nonnull(strstr(err.message, "truncated"));
    kms_context_clear(&ctx);
}
END_TEST

START_TEST(test_clustering_hook)
{
    /* compare and elbow cluster through the class's hook: the same labels
     * as the stage's own run, with the native parameters its config means */
    static const char text[] =
        "[pipeline]\nstages = read, reshape, kmeans, recolor\n[read]\n"
        "mode = grayscale\n[reshape]\nwidth = 64\nheight = 64\n"
        "value_scale = 1/255\n[kmeans]\nbackend = native\nk = 3\n"
        "attempts = 4\nmethod = lloyd\n";
    kms_pipeline pl;
    build(text, &pl);
    size_t at = kms_pipeline_clustering(&pl);
    ck_assert_uint_eq(at, 2);
    const kms_stage_instance *km = &pl.stages[at];
    kms_context a, b;
    kms_error err;
    kms_error_clear(&err);
    context_for(&a, SAMPLE_PNG, SAMPLE_STEM, 5);
    context_for(&b, SAMPLE_PNG, SAMPLE_STEM, 5);
    ck_assert_int_eq(kms_pipeline_run(&pl, &a, &err), KMS_OK);
    ck_assert_int_eq(kms_pipeline_run_span(&pl, &b, 0, at, &err), KMS_OK);
    ck_assert_int_eq(km->cls->clustering->cluster(km->params, &b,
                                                  KMS_BACKEND_NATIVE, &err),
                     KMS_OK);
    ck_assert_int_eq(b.k, 3);
    ck_assert_str_eq(b.backend, "native");
    ck_assert_uint_eq(b.n_samples, a.n_samples);
    ck_assert_mem_eq(b.labels, a.labels, a.n_samples * sizeof *a.labels);
    kms_kmeans_params kp;
    km->cls->clustering->kmeans_params(km->params, &b, &kp);
    ck_assert_int_eq(kp.k, 3);
    ck_assert_int_eq(kp.attempts, 4);
    ck_assert_int_eq(kp.method, KMS_KM_LLOYD);
    ck_assert_uint_eq(kp.seed, 5);
    kms_context_clear(&a);
    kms_context_clear(&b);
    kms_pipeline_free(&pl);
}
END_TEST

START_TEST(test_k_larger_than_samples)
{
    /* reshape's fixed size caps the samples: a config error before any
     * input is read */
    static const char text[] =
        "[pipeline]\nstages = read, reshape, kmeans\n[read]\nmode = grayscale\n"
        "[reshape]\nwidth = 1\nheight = 1\n[kmeans]\nbackend = opencv\nk = 2\n";
    kms_pipeline pl;
    kms_error err;
    char path[4096];
    ck_assert_int_eq(kt_build_text(text, NULL, &pl, &err, path, sizeof path),
                     KMS_ERR_CONFIG);
    ck_assert_str_eq(err.key, "kmeans.k");
    ck_assert_str_eq(err.file, path);
    ck_assert_int_eq(err.line, 10);
    ck_assert_ptr_nonnull(strstr(err.message, "gives 1 a slice"));
}
END_TEST

START_TEST(test_write_never_over_input)
{
    /* an input that a product would replace: nothing of that input is
     * written (the recolor product written before is taken back) and the
     * input is unchanged */
    char input[1024];
    snprintf(input, sizeof input, "%s/x_labels.png", outdir);
    size_t n;
    unsigned char *buf = kt_read_file(SAMPLE_PNG, &n);
    kt_write_bytes(input, buf, n);

    kms_pipeline pl;
    char text[1024];
    notebook_config(text, sizeof text, "backend = opencv");
    build(text, &pl);
    kms_file_set inputs = {0};
    kms_error err;
    kms_error_clear(&err);
    const char *const paths[] = {input};
    ck_assert_int_eq(kms_file_set_build(&inputs, paths, 1, &err), KMS_OK);
    kms_context ctx;
    context_for(&ctx, input, "x", 42);
    ctx.inputs = &inputs;
    ck_assert_int_eq(kms_pipeline_run(&pl, &ctx, &err), KMS_ERR_IO);
    char labels[1024];
    snprintf(labels, sizeof labels, "%s/x_labels.png", outdir);
    ck_assert_str_eq(err.file, labels);
    ck_assert_ptr_nonnull(strstr(err.message, "refusing to overwrite"));
    /* only the input is left */
    ck_assert_int_eq(kt_count_entries(outdir, NULL), 1);
    char recolor[1024];
    snprintf(recolor, sizeof recolor, "%s/x_recolor.png", outdir);
    ck_assert(!exists(recolor));
    size_t n_back;
    unsigned char *back = kt_read_file(input, &n_back);
    ck_assert_uint_eq(n_back, n);
    ck_assert_int_eq(memcmp(back, buf, n), 0);
    free(back);
    free(buf);
    kms_context_clear(&ctx);
    kms_file_set_free(&inputs);
    kms_pipeline_free(&pl);
}
END_TEST

START_TEST(test_write_missing_output_dir)
{
    char text[1024];
    notebook_config(text, sizeof text, "backend = opencv");
    kms_pipeline pl;
    build(text, &pl);
    char gone[1024];
    kt_tmp_path(gone, sizeof gone, "gone");
    kms_context ctx;
    context_for(&ctx, SAMPLE_PNG, SAMPLE_STEM, 42);
    ctx.output_dir = gone;
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_pipeline_run(&pl, &ctx, &err), KMS_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.file, gone));
    ck_assert_str_eq(err.key, "write");
    ck_assert(!exists(gone));
    kms_context_clear(&ctx);
    kms_pipeline_free(&pl);
}
END_TEST

static Suite *stages_suite(void)
{
    Suite *s = suite_create("stages");

    TCase *core = tcase_create("Core");
    kt_add_tmp_fixture(core, "check_stages");
    tcase_add_checked_fixture(core, setup_outdir, NULL);
    tcase_set_timeout(core, 120);
    tcase_add_test(core, test_read_color);
    tcase_add_test(core, test_read_grayscale_matches_color);
    tcase_add_test(core, test_reshape_samples);
    tcase_add_test(core, test_reshape_matches_opencv);
    tcase_add_test(core, test_notebook_opencv);
    tcase_add_test(core, test_notebook_native);
    tcase_add_loop_test(core, test_native_not_worse_than_opencv, 0, 4);
    tcase_add_loop_test(core, test_notebook_deterministic, 0, 2);
    tcase_add_test(core, test_read_ct_unchanged);
    tcase_add_test(core, test_denoise_median);
    tcase_add_test(core, test_context_clear);
    tcase_add_test(core, test_clustering_hook);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("Limits");
    kt_add_tmp_fixture(limits, "check_stages");
    tcase_add_checked_fixture(limits, setup_outdir, NULL);
    tcase_set_timeout(limits, 120);
    tcase_add_test(limits, test_missing_input);
    tcase_add_test(limits, test_not_an_image);
    tcase_add_test(limits, test_truncated_png);
    tcase_add_test(limits, test_k_larger_than_samples);
    tcase_add_test(limits, test_write_never_over_input);
    tcase_add_test(limits, test_write_missing_output_dir);
    suite_add_tcase(s, limits);

    return s;
}

int main(void)
{
    return kt_run_suite(stages_suite());
}
