/* kmseg elbow: WCSS for every K in a range, the knee by Kneedle, elbow.csv
 * and a {stem}_elbow.png plot per input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "elbow.h"
#include "opencv_c.h"
#include "plot.h"
#include "stages.h"

static kms_status write_plot(const kms_batch *b, const kms_context *ctx,
                             const double *wcss, int k_min, int n, int knee,
                             kms_error *err)
{
    double *x = malloc(sizeof *x * (size_t)n);
    unsigned char *png = NULL;
    size_t len = 0;
    kms_image img = {0};
    kms_status st = KMS_OK;
    if (!x)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    for (int i = 0; i < n; i++)
        x[i] = k_min + i;
    char title[400], mark[64], name[512];
    snprintf(title, sizeof title, "%.200s: within-cluster sum of squares by K",
             ctx->stem);
    snprintf(mark, sizeof mark, "knee: K = %d", k_min + knee);
    kms_plot plot = {title, "K (clusters)", "WCSS", x, wcss, n, knee, mark};
    st = kms_plot_draw(&plot, 800, 500, &img, err);
    if (st == KMS_OK)
        st = kms_cv_imencode(".png", &img, NULL, 0, &png, &len, err);
    snprintf(name, sizeof name, "%s_elbow.png", ctx->stem);
    if (st == KMS_OK)
        st = kms_batch_write(b, name, png, len, err);
    free(png);
    free(x);
    kms_image_free(&img);
    return st;
}

static kms_status elbow_one(const kms_pipeline *pl, const kms_batch *b,
                            size_t kmeans_at, kms_context *ctx, int k_min,
                            int k_max, FILE *csv, kms_error *err)
{
    kms_status st = kms_pipeline_run_span(pl, ctx, 0, kmeans_at, err);
    if (st != KMS_OK)
        return st;
    if ((size_t)k_max > ctx->n_samples)
        return kms_error_set(err, KMS_ERR_INPUT, NULL, 0, "--k",
                             "K up to %d needs %d samples, there are %zu", k_max,
                             k_max, ctx->n_samples);
    int n = k_max - k_min + 1;
    double *wcss = malloc(sizeof *wcss * (size_t)n);
    if (!wcss)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    kms_kmeans_params kp;
    kms_kmeans_stage_native_params(pl->stages[kmeans_at].params, ctx, &kp);
    st = kms_elbow_curve(ctx->samples, ctx->n_samples, ctx->dims, &kp, k_min,
                         k_max, wcss, err);
    int knee = st == KMS_OK ? kms_kneedle(wcss, n) : 0;
    if (st == KMS_OK)
        st = write_plot(b, ctx, wcss, k_min, n, knee, err);
    if (st == KMS_OK) {
        for (int i = 0; i < n; i++)
            fprintf(csv, "%s,%d,%.17g\n", ctx->input_path, k_min + i, wcss[i]);
        printf("%s: knee at K = %d (WCSS %.6g; K %d..%d)\n", ctx->stem,
               k_min + knee, wcss[knee], k_min, k_max);
    }
    free(wcss);
    return st;
}

int kms_cmd_elbow(const kms_pipeline *pl, const kms_batch_options *opt,
                  int k_min, int k_max)
{
    kms_error err;
    kms_error_clear(&err);
    size_t kmeans_at = kms_pipeline_stage_index(pl, "kmeans");
    if (kmeans_at == pl->n_stages) {
        fprintf(stderr, "kmseg: error: elbow needs a kmeans stage in "
                        "pipeline.stages (its samples and settings are used)\n");
        return 2;
    }
    kms_batch b;
    if (kms_batch_open(&b, pl, opt, &err) != KMS_OK) {
        kms_batch_report(&err);
        return 2;
    }
    char *csv = NULL;
    size_t csv_len = 0;
    int failed = 0, done = 0;
    FILE *f = open_memstream(&csv, &csv_len);
    if (!f) {
        fprintf(stderr, "kmseg: error: out of memory\n");
        kms_batch_close(&b);
        return 2;
    }
    fputs("input,k,wcss\n", f);
    for (size_t i = 0; i < b.inputs.n; i++) {
        const kms_input *in = &b.inputs.items[i];
        if (in->error) {
            kms_batch_report(in->error);
            failed++;
            continue;
        }
        kms_context ctx;
        kms_batch_context(&b, pl, i, &ctx);
        kms_error_clear(&err);
        kms_status st = elbow_one(pl, &b, kmeans_at, &ctx, k_min, k_max, f, &err);
        kms_context_clear(&ctx);
        if (st == KMS_OK) {
            done++;
            continue;
        }
        if (!err.file[0])
            snprintf(err.file, sizeof err.file, "%s", in->path);
        kms_batch_report(&err);
        failed++;
    }
    fclose(f);
    if (kms_batch_write(&b, "elbow.csv", csv, csv_len, &err) != KMS_OK) {
        kms_batch_report(&err);
        failed++;
    }
    if (!opt->quiet)
        fprintf(stderr, "kmseg: elbow for %d inputs, %d failed; elbow.csv in %s\n",
                done, failed, b.out_dir);
    free(csv);
    kms_batch_close(&b);
    return failed ? 1 : 0;
}
