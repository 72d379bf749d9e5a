/* kmseg compare: the config's k-means with both backends on the same
 * samples and seed; compare.csv, {stem}_diff.png, a table on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agreement.h"
#include "commands.h"
#include "opencv_c.h"
#include "stages.h"

typedef struct outcome {
    int k;
    double native_ms, opencv_ms, native_wcss, opencv_wcss;
    kms_agreement agree;
} outcome;

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
    const void *kp = pl->stages[kmeans_at].params;
    int32_t *native = NULL;
    kms_image diff = {0};
    kms_status st = kms_pipeline_run_span(pl, ctx, 0, kmeans_at, err);
    if (st == KMS_OK)
        st = kms_kmeans_stage_cluster(kp, ctx, KMS_BACKEND_NATIVE, err);
    if (st != KMS_OK)
        goto out;
    o->k = ctx->k;
    o->native_ms = ctx->ms_kmeans;
    o->native_wcss = ctx->wcss;
    native = ctx->labels; /* keep them: the next call allocates new ones */
    ctx->labels = NULL;
    st = kms_kmeans_stage_cluster(kp, ctx, KMS_BACKEND_OPENCV, err);
    if (st != KMS_OK)
        goto out;
    o->opencv_ms = ctx->ms_kmeans;
    o->opencv_wcss = ctx->wcss;
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

int kms_cmd_compare(const kms_pipeline *pl, const kms_batch_options *opt)
{
    kms_error err;
    kms_error_clear(&err);
    size_t kmeans_at = kms_pipeline_stage_index(pl, "kmeans");
    if (kmeans_at == pl->n_stages) {
        fprintf(stderr, "kmseg: error: compare needs a kmeans stage in "
                        "pipeline.stages\n");
        return 2;
    }
    kms_batch b;
    if (kms_batch_open(&b, pl, opt, &err) != KMS_OK) {
        kms_batch_report(&err);
        return 2;
    }
    char *csv = NULL;
    size_t csv_len = 0;
    FILE *f = open_memstream(&csv, &csv_len);
    double *speedups = calloc(b.inputs.n + 1, sizeof *speedups);
    int failed = 0, done = 0;
    if (!f || !speedups) {
        fprintf(stderr, "kmseg: error: out of memory\n");
        failed = 1;
        goto out;
    }
    fputs("input,k,native_ms,opencv_ms,native_wcss,opencv_wcss,"
          "label_agreement,ari\n", f);
    printf("%-28s %3s %10s %10s %8s %14s %14s %9s %7s\n", "input", "k",
           "native_ms", "opencv_ms", "speedup", "native_wcss", "opencv_wcss",
           "agree_%", "ari");
    for (size_t i = 0; i < b.inputs.n; i++) {
        const kms_input *in = &b.inputs.items[i];
        if (in->error) {
            kms_batch_report(in->error);
            failed++;
            continue;
        }
        kms_context ctx;
        kms_batch_context(&b, pl, i, &ctx);
        outcome o = {0};
        kms_error_clear(&err);
        kms_status st = compare_one(pl, &b, kmeans_at, &ctx, &o, &err);
        kms_context_clear(&ctx);
        if (st != KMS_OK) {
            if (!err.file[0])
                snprintf(err.file, sizeof err.file, "%s", in->path);
            kms_batch_report(&err);
            failed++;
            free(o.agree.match);
            continue;
        }
        double speedup = o.native_ms > 0 ? o.opencv_ms / o.native_ms : 0;
        speedups[done++] = speedup;
        fprintf(f, "%s,%d,%.3f,%.3f,%.17g,%.17g,%.6f,%.6f\n", in->path, o.k,
                o.native_ms, o.opencv_ms, o.native_wcss, o.opencv_wcss,
                o.agree.fraction, o.agree.ari);
        printf("%-28.28s %3d %10.3f %10.3f %7.1fx %14.6g %14.6g %9.3f %7.4f\n",
               in->stem, o.k, o.native_ms, o.opencv_ms, speedup, o.native_wcss,
               o.opencv_wcss, 100 * o.agree.fraction, o.agree.ari);
        free(o.agree.match);
    }
    fclose(f);
    f = NULL;
    if (kms_batch_write(&b, "compare.csv", csv, csv_len, &err) != KMS_OK) {
        kms_batch_report(&err);
        failed++;
    }
    if (done > 0) {
        qsort(speedups, (size_t)done, sizeof *speedups, cmp_double);
        double median = done % 2 ? speedups[done / 2]
                                 : (speedups[done / 2 - 1] + speedups[done / 2]) / 2;
        printf("median speed-up of native over opencv: %.1fx over %d inputs "
               "(native: 1 thread; opencv: its default threads)\n",
               median, done);
    }
    if (!opt->quiet)
        fprintf(stderr, "kmseg: compared %d inputs, %d failed; compare.csv in %s\n",
                done, failed, b.out_dir);
out:
    if (f)
        fclose(f);
    free(csv);
    free(speedups);
    kms_batch_close(&b);
    return failed ? 1 : 0;
}
