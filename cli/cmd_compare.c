/* kmseg compare: the config's k-means with both backends on the same
 * samples and seed; compare.csv, {stem}_diff.png, a table on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agreement.h"
#include "commands.h"
#include "opencv_c.h"

typedef struct outcome {
    int k;
    double native_ms, opencv_ms, native_wcss, opencv_wcss;
    double opencv_compactness; /* OpenCV's own figure, in float */
    kms_agreement agree;
} outcome;

/* The within-cluster sum of squares of a labelling, in double, about the
 * means of its own clusters: the same sum for both backends, so equal
 * labellings get equal figures (OpenCV's compactness is summed in float
 * about its float centres). Samples left out of k-means (padding) are left
 * out here too. */
static kms_status labelling_wcss(const kms_context *ctx, const int32_t *labels,
                                 int k, double *wcss, kms_error *err)
{
    int dims = ctx->dims;
    double *sum = calloc((size_t)k * (size_t)dims, sizeof *sum);
    double *count = calloc((size_t)k, sizeof *count);
    kms_status st = KMS_OK;
    if (!sum || !count) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < ctx->n_samples; i++) {
        if (ctx->sample_valid && !ctx->sample_valid[i])
            continue;
        const float *x = ctx->samples + i * (size_t)dims;
        for (int d = 0; d < dims; d++)
            sum[(size_t)labels[i] * (size_t)dims + (size_t)d] += x[d];
        count[labels[i]]++;
    }
    for (int c = 0; c < k; c++)
        for (int d = 0; d < dims && count[c] > 0; d++)
            sum[(size_t)c * (size_t)dims + (size_t)d] /= count[c];
    double total = 0;
    for (size_t i = 0; i < ctx->n_samples; i++) {
        if (ctx->sample_valid && !ctx->sample_valid[i])
            continue;
        const float *x = ctx->samples + i * (size_t)dims;
        const double *m = sum + (size_t)labels[i] * (size_t)dims;
        for (int d = 0; d < dims; d++)
            total += ((double)x[d] - m[d]) * ((double)x[d] - m[d]);
    }
    *wcss = total;
out:
    free(sum);
    free(count);
    return st;
}

/* Where the labels differ after matching: red over the native labels in grey. */
static kms_status diff_image(const kms_context *ctx, const int32_t *native,
                             const int32_t *opencv, const int *match,
                             kms_image *out, kms_error *err)
{
    kms_status st = kms_image_alloc(out, ctx->sample_width, ctx->sample_height,
                                    3, KMS_DEPTH_U8, err);
    if (st != KMS_OK)
        return st;
    int k = ctx->k > 1 ? ctx->k - 1 : 1;
    for (int y = 0; y < out->height; y++) {
        uint8_t *row = kms_image_row(out, y);
        for (int x = 0; x < out->width; x++) {
            size_t i = (size_t)y * (size_t)out->width + (size_t)x;
            uint8_t *px = row + 3 * x;
            if (match[opencv[i]] != native[i]) {
                px[0] = 0, px[1] = 0, px[2] = 255;
            } else {
                uint8_t g = (uint8_t)(40 + native[i] * 150 / k);
                px[0] = px[1] = px[2] = g;
            }
        }
    }
    return KMS_OK;
}

static kms_status compare_one(const kms_pipeline *pl, const kms_batch *b,
                              size_t kmeans_at, kms_context *ctx, outcome *o,
                              kms_error *err)
{
    const kms_stage_instance *km = &pl->stages[kmeans_at];
    const kms_clustering *cl = km->cls->clustering;
    int32_t *native = NULL;
    kms_image diff = {0};
    kms_status st = kms_pipeline_run_span(pl, ctx, 0, kmeans_at, err);
    if (st == KMS_OK)
        st = cl->cluster(km->params, ctx, KMS_BACKEND_NATIVE, err);
    if (st != KMS_OK)
        goto out;
    o->k = ctx->k;
    o->native_ms = ctx->ms_kmeans;
    st = labelling_wcss(ctx, ctx->labels, ctx->k, &o->native_wcss, err);
    if (st != KMS_OK)
        goto out;
    native = ctx->labels; /* keep them: the next call allocates new ones */
    ctx->labels = NULL;
    st = cl->cluster(km->params, ctx, KMS_BACKEND_OPENCV, err);
    if (st != KMS_OK)
        goto out;
    o->opencv_ms = ctx->ms_kmeans;
    o->opencv_compactness = ctx->wcss;
    st = labelling_wcss(ctx, ctx->labels, ctx->k, &o->opencv_wcss, err);
    if (st != KMS_OK)
        goto out;
    st = kms_agreement_compute(native, ctx->labels, ctx->n_samples, ctx->k,
                               &o->agree, err);
    if (st != KMS_OK)
        goto out;
    st = diff_image(ctx, native, ctx->labels, o->agree.match, &diff, err);
    if (st == KMS_OK) {
        char name[512];
        snprintf(name, sizeof name, "%s_diff.png", ctx->stem);
        unsigned char *png = NULL;
        size_t len = 0;
        st = kms_cv_imencode(".png", &diff, NULL, 0, &png, &len, err);
        if (st == KMS_OK)
            st = kms_batch_write(b, name, png, len, err);
        free(png);
    }
out:
    free(native);
    kms_image_free(&diff);
    return st;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct compare_state {
    size_t kmeans_at;
    double *speedups;
    int n, cap;
} compare_state;

static kms_status compare_input(const kms_pipeline *pl, const kms_batch *b,
                                kms_context *ctx, FILE *csv, void *arg,
                                kms_error *err)
{
    compare_state *cs = arg;
    outcome o = {0};
    kms_status st = compare_one(pl, b, cs->kmeans_at, ctx, &o, err);
    if (st == KMS_OK && cs->n == cs->cap) {
        int cap = cs->cap ? 2 * cs->cap : 64;
        double *s = realloc(cs->speedups, sizeof *s * (size_t)cap);
        if (s) {
            cs->speedups = s;
            cs->cap = cap;
        } else {
            st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        }
    }
    if (st == KMS_OK) {
        double speedup = o.native_ms > 0 ? o.opencv_ms / o.native_ms : 0;
        cs->speedups[cs->n++] = speedup;
        fprintf(csv, "%s,%d,%.3f,%.3f,%.17g,%.17g,%.17g,%.6f,%.6f\n",
                ctx->input_path, o.k, o.native_ms, o.opencv_ms, o.native_wcss,
                o.opencv_wcss, o.opencv_compactness, o.agree.fraction,
                o.agree.ari);
        printf("%-28.28s %3d %10.3f %10.3f %7.1fx %14.6g %14.6g %9.3f %7.4f\n",
               ctx->stem, o.k, o.native_ms, o.opencv_ms, speedup, o.native_wcss,
               o.opencv_wcss, 100 * o.agree.fraction, o.agree.ari);
    }
    free(o.agree.match);
    return st;
}

int kms_cmd_compare(const kms_pipeline *pl, const kms_batch_options *opt)
{
    compare_state cs = {kms_pipeline_clustering(pl), NULL, 0, 0};
    if (cs.kmeans_at == pl->n_stages) {
        fprintf(stderr, "kmseg: error: compare needs a stage that clusters "
                        "(kmeans) in pipeline.stages\n");
        return 2;
    }
    /* one thread each side, so the ratio compares the algorithms */
    kms_cv_set_num_threads(1, NULL);
    printf("%-28s %3s %10s %10s %8s %14s %14s %9s %7s\n", "input", "k",
           "native_ms", "opencv_ms", "speedup", "native_wcss", "opencv_wcss",
           "agree_%", "ari");
    kms_each each = {"compared", "compare.csv",
                     "input,k,native_ms,opencv_ms,native_wcss,opencv_wcss,"
                     "opencv_compactness,label_agreement,ari",
                     compare_input, &cs, 0, 0, KMS_REPORT_COMPARE};
    int status = kms_batch_each(pl, opt, &each);
    if (cs.n > 0) {
        qsort(cs.speedups, (size_t)cs.n, sizeof *cs.speedups, cmp_double);
        double median = cs.n % 2 ? cs.speedups[cs.n / 2]
                                 : (cs.speedups[cs.n / 2 - 1] + cs.speedups[cs.n / 2]) / 2;
        printf("median speed-up of native over opencv: %.1fx over %d inputs "
               "(one thread each side)\n",
               median, cs.n);
    }
    free(cs.speedups);
    return status;
}
