/* kmseg elbow: WCSS for every K in a range, the knee by Kneedle, elbow.csv
 * and a {stem}_elbow.png plot per input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "elbow.h"
#include "opencv_c.h"
#include "plot.h"

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

typedef struct elbow_state {
    size_t kmeans_at;
    int k_min, k_max;
} elbow_state;

static kms_status elbow_input(const kms_pipeline *pl, const kms_batch *b,
                              kms_context *ctx, FILE *csv, void *arg,
                              kms_error *err)
{
    const elbow_state *es = arg;
    kms_status st = kms_pipeline_run_span(pl, ctx, 0, es->kmeans_at, err);
    if (st != KMS_OK)
        return st;
    kms_sample_set set;
    st = kms_context_sample_set(ctx, &set, err);
    if (st != KMS_OK)
        return st;
    int n = es->k_max - es->k_min + 1;
    double *wcss = malloc(sizeof *wcss * (size_t)n);
    if (!wcss) {
        kms_sample_set_free(&set);
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    }
    kms_kmeans_params kp;
    const kms_stage_instance *km = &pl->stages[es->kmeans_at];
    km->cls->clustering->kmeans_params(km->params, ctx, &kp);
    if ((size_t)es->k_max > set.n)
        st = kms_error_set(err, KMS_ERR_INPUT, NULL, 0, "--k",
                           "K up to %d needs %d samples, there are %zu",
                           es->k_max, es->k_max, set.n);
    else
        st = kms_elbow_curve(set.x, set.n, ctx->dims, &kp, es->k_min,
                             es->k_max, wcss, err);
    kms_sample_set_free(&set);
    int knee = st == KMS_OK ? kms_kneedle(wcss, n) : 0;
    if (st == KMS_OK)
        st = write_plot(b, ctx, wcss, es->k_min, n, knee, err);
    if (st == KMS_OK) {
        for (int i = 0; i < n; i++)
            fprintf(csv, "%s,%d,%.17g,%d\n", ctx->input_path, es->k_min + i,
                    wcss[i], i == knee);
        printf("%s: knee at K = %d (WCSS %.6g; K %d..%d)\n", ctx->stem,
               es->k_min + knee, wcss[knee], es->k_min, es->k_max);
    }
    free(wcss);
    return st;
}

int kms_cmd_elbow(const kms_pipeline *pl, const kms_batch_options *opt,
                  int k_min, int k_max)
{
    elbow_state es = {kms_pipeline_clustering(pl), k_min, k_max};
    if (es.kmeans_at == pl->n_stages) {
        fprintf(stderr, "kmseg: error: elbow needs a stage that clusters "
                        "(kmeans) in pipeline.stages (its samples and "
                        "settings are used)\n");
        return 2;
    }
    /* without --k, the range k = auto would search (kmeans.k_min..k_max),
     * so the knee shown is the K it would choose */
    if (k_min == 0) {
        es.k_min = k_min = pl->link.labels.k_min;
        es.k_max = k_max = pl->link.labels.k_max;
    }
    /* reshape's fixed size caps every input's samples: say so now */
    long per_slice = pl->link.samples.per_slice;
    if (per_slice > 0 && k_max > per_slice) {
        fprintf(stderr, "kmseg: error: --k %d..%d: K up to %d needs %d "
                        "samples, but reshape's width x height gives %ld a "
                        "slice\n",
                k_min, k_max, k_max, k_max, per_slice);
        return 2;
    }
    kms_each each = {"elbow for", "elbow.csv", "input,k,wcss,knee", elbow_input, &es,
                     0, 0, KMS_REPORT_ELBOW};
    return kms_batch_each(pl, opt, &each);
}
