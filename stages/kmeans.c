/* kmeans: clusters the samples, with OpenCV's cv::kmeans or kmseg's native
 * library, and leaves canonical labels (0 = darkest centre). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "elbow.h"
#include "kmeans.h"
#include "opencv_c.h"
#include "output.h"
#include "stage.h"
#include "clock.h"

typedef struct kmeans_params {
    int backend;  /* kms_backend */
    int method;   /* kms_km_method, native only */
    int k;        /* 0: auto, the knee of the WCSS curve over k_min..k_max */
    int k_min;
    int k_max;
    int attempts;
    int max_iter;
    double epsilon;
    int criteria; /* KMS_KM_TERM_* bits */
    int init;     /* kms_km_init */
} kmeans_params;

static const kms_choice backends[] = {{"native", KMS_BACKEND_NATIVE},
                                      {"opencv", KMS_BACKEND_OPENCV},
                                      {NULL, 0}};
static const kms_choice method_names[] = {{"auto", KMS_KM_AUTO},
                                          {"optimal", KMS_KM_OPTIMAL},
                                          {"lloyd", KMS_KM_LLOYD},
                                          {NULL, 0}};
static const kms_choice criteria_names[] = {
    {"eps+max_iter", KMS_KM_TERM_COUNT | KMS_KM_TERM_EPS},
    {"max_iter", KMS_KM_TERM_COUNT},
    {"eps", KMS_KM_TERM_EPS},
    {NULL, 0}};
static const kms_choice init_names[] = {{"pp", KMS_KM_INIT_PP},
                                        {"random", KMS_KM_INIT_RANDOM},
                                        {NULL, 0}};
static const kms_choice k_words[] = {{"auto", 0}, {NULL, 0}};

static const kms_param kmeans_table[] = {
    {"backend", KMS_PARAM_CHOICE, "native", 0, 0, backends,
     offsetof(kmeans_params, backend),
     "native: kmseg's own (exact in 1-D); opencv: cv::kmeans"},
    {"method", KMS_PARAM_CHOICE, "auto", 0, 0, method_names,
     offsetof(kmeans_params, method),
     "native only. auto: optimal for one feature, lloyd otherwise; "
     "optimal: exact 1-D optimum; lloyd: cv::kmeans's algorithm"},
    {"k", KMS_PARAM_INT, "2", 1, 255, k_words, offsetof(kmeans_params, k),
     "number of clusters, 2 or more; auto: the knee (Kneedle) of the WCSS curve over "
     "k_min..k_max, as `kmseg elbow` finds it"},
    {"k_min", KMS_PARAM_INT, "2", 2, 255, NULL, offsetof(kmeans_params, k_min),
     "smallest k that k = auto considers"},
    {"k_max", KMS_PARAM_INT, "8", 2, 255, NULL, offsetof(kmeans_params, k_max),
     "largest k that k = auto considers"},
    {"attempts", KMS_PARAM_INT, "10", 1, 1000, NULL,
     offsetof(kmeans_params, attempts),
     "restarts; the lowest compactness wins (lloyd, opencv)"},
    {"max_iter", KMS_PARAM_INT, "10", 1, 1000, NULL,
     offsetof(kmeans_params, max_iter),
     "iteration limit (OpenCV clamps it to 2..100)"},
    {"epsilon", KMS_PARAM_DOUBLE, "1.0", 0, 1e30, NULL,
     offsetof(kmeans_params, epsilon),
     "stop when no centre moves more than this"},
    {"criteria", KMS_PARAM_CHOICE, "eps+max_iter", 0, 0, criteria_names,
     offsetof(kmeans_params, criteria),
     "which of epsilon and max_iter stop the iterations"},
    {"init", KMS_PARAM_CHOICE, "pp", 0, 0, init_names,
     offsetof(kmeans_params, init),
     "pp: k-means++ (KMEANS_PP_CENTERS); random: KMEANS_RANDOM_CENTERS"},
    {0},
};

static kms_status kmeans_prepare(const void *params, kms_link *link,
                                 kms_error *err)
{
    const kmeans_params *p = params;
    const kms_link_samples *in = &link->samples;
    /* one cluster labels every sample 0: nothing is segmented (the WCSS
     * curve of `kmseg elbow` starts at K = 1 by itself) */
    if (p->k == 1)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "k",
                             "k = 1 puts every sample in one cluster and "
                             "segments nothing: use k >= 2, or auto");
    if (p->k == 0 && p->k_min >= p->k_max)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "k_max",
                             "k = auto needs k_min < k_max (%d, %d)", p->k_min,
                             p->k_max);
    if (!in->present)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                             "kmeans needs samples: put reshape before it");
    if (p->method == KMS_KM_OPTIMAL && in->dims != 1)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "method",
                             "optimal is exact for one feature only, but "
                             "reshape gives %d (features = color): use auto "
                             "or lloyd", in->dims);
    /* k = auto stops at the sample count by itself */
    if (p->k > 0 && in->per_slice > 0 && p->k > in->per_slice)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "k",
                             "%d clusters need at least %d samples, but "
                             "reshape's width x height gives %ld a slice",
                             p->k, p->k, in->per_slice);
    link->labels.present = true;
    link->labels.k = p->k;
    link->labels.k_min = p->k_min;
    link->labels.k_max = p->k_max;
    return KMS_OK;
}

/* The library parameters the stage's config means, for either backend. */
static void library_params(const void *params, const kms_context *ctx,
                           kms_kmeans_params *kp)
{
    const kmeans_params *p = params;
    kms_kmeans_params_default(kp);
    kp->k = p->k;
    kp->attempts = p->attempts;
    kp->criteria = p->criteria;
    kp->max_iter = p->max_iter;
    kp->epsilon = p->epsilon;
    kp->init = (kms_km_init)p->init;
    kp->method = (kms_km_method)p->method;
    kp->seed = ctx->seed;
    kp->threads = ctx->threads;
}

/* Both backends take the same kms_kmeans_params. */
static kms_status run_opencv(const kms_kmeans_params *kp, kms_context *ctx,
                             const kms_sample_set *set, int32_t *labels,
                             kms_error *err)
{
    ctx->backend = "opencv";
    if (set->n > INT32_MAX)
        return kms_error_set(err, KMS_ERR_INPUT, NULL, 0, "kmeans.backend",
                             "%zu samples are more than cv::kmeans takes; use "
                             "backend = native", set->n);
    return kms_cv_kmeans(set->x, set->n, ctx->dims, kp, labels, ctx->centers,
                         &ctx->wcss, err);
}

static kms_status run_native(const kms_kmeans_params *kp, kms_context *ctx,
                             const kms_sample_set *set, int32_t *labels,
                             kms_error *err)
{
    ctx->backend = "native";
    return kms_kmeans_run(set->x, set->n, ctx->dims, kp, labels, ctx->centers,
                          &ctx->wcss, err);
}

/* Labels for every sample of the grid: the clustered ones from labels, the
 * left-out ones (padding) the nearest centre. */
static kms_status scatter_labels(kms_context *ctx, const int32_t *labels,
                                 kms_error *err)
{
    const uint8_t *valid = ctx->sample_valid;
    const size_t n = ctx->n_samples, d = (size_t)ctx->dims;
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        size_t end = i + kms_scan_bytes(valid + i, n - i, true);
        memcpy(ctx->labels + i, labels + j, (end - i) * sizeof *labels);
        j += end - i;
        i = end;
        end = i + kms_scan_bytes(valid + i, n - i, false);
        if (end > i) {
            kms_status st = kms_kmeans_quantize(
                ctx->samples + i * d, end - i, ctx->dims, ctx->centers, ctx->k,
                ctx->labels + i, ctx->threads, err);
            if (st != KMS_OK)
                return st;
        }
        i = end;
    }
    return KMS_OK;
}

/* k = auto: the knee of the WCSS curve, from the native library whatever
 * the backend (in 1-D it is the exact curve, in one DP pass). */
static kms_status choose_k(const kmeans_params *p, kms_context *ctx,
                           kms_error *err)
{
    kms_sample_set set;
    kms_status st = kms_context_sample_set(ctx, &set, err);
    if (st != KMS_OK)
        return st;
    /* the curve stops at the sample count (padding left out) */
    int k_max = p->k_max;
    if ((size_t)k_max > set.n)
        k_max = (int)set.n;
    double *wcss = NULL;
    int n = k_max - p->k_min + 1;
    if (k_max < 2) {
        st = kms_error_set(err, KMS_ERR_INPUT, NULL, 0, "kmeans.k",
                           "auto: %zu sample%s to cluster, and k = 1 "
                           "segments nothing",
                           set.n, set.n == 1 ? "" : "s");
    } else if (k_max <= p->k_min) {
        ctx->k = k_max;
    } else if (!(wcss = malloc(sizeof *wcss * (size_t)n))) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    } else {
        kms_kmeans_params kp;
        library_params(p, ctx, &kp);
        st = kms_elbow_curve(set.x, set.n, ctx->dims, &kp, p->k_min, k_max,
                             wcss, err);
        if (st == KMS_OK)
            ctx->k = p->k_min + kms_kneedle(wcss, n);
    }
    free(wcss);
    kms_sample_set_free(&set);
    return st;
}

/* The exact 1-D optimum straight on the samples: the padding is left out
 * by its flags and labelled in the same call, no copy. The same labels,
 * centres and WCSS as the sample-set path. */
static kms_status cluster_optimal(kms_context *ctx, kms_error *err)
{
    const uint8_t *valid = ctx->sample_valid;
    size_t nvalid = ctx->n_samples;
    if (valid) {
        nvalid = 0;
        for (size_t i = 0; i < ctx->n_samples; i++) /* vectorises */
            nvalid += valid[i] != 0;
    }
    if (nvalid < (size_t)ctx->k)
        return kms_error_set(err, KMS_ERR_INPUT, NULL, 0, "kmeans.k",
                             "k = %d is larger than the %zu samples", ctx->k,
                             nvalid);
    free(ctx->labels);
    free(ctx->centers);
    ctx->labels = malloc((ctx->n_samples ? ctx->n_samples : 1)
                         * sizeof *ctx->labels);
    ctx->centers = calloc((size_t)ctx->k, sizeof *ctx->centers);
    if (!ctx->labels || !ctx->centers)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                             "cannot allocate labels for %zu samples",
                             ctx->n_samples);
    ctx->backend = "native";
    double t0 = kms_now_ms();
    kms_status st = kms_kmeans_optimal_masked(
        ctx->samples, valid, ctx->n_samples, ctx->k, ctx->labels,
        ctx->centers, &ctx->wcss, err);
    ctx->ms_kmeans = kms_now_ms() - t0;
    if (st == KMS_OK)
        kms_kmeans_canonicalize(ctx->labels, ctx->n_samples, ctx->centers,
                                ctx->k, ctx->dims);
    return st;
}

static kms_status cluster(const void *params, kms_context *ctx,
                          kms_backend backend, kms_error *err)
{
    const kmeans_params *p = params;
    ctx->k = p->k;
    if (p->k == 0) {
        kms_status st = choose_k(p, ctx, err);
        if (st != KMS_OK)
            return st;
    }
    if (backend == KMS_BACKEND_NATIVE && ctx->dims == 1
        && p->method != KMS_KM_LLOYD)
        return cluster_optimal(ctx, err);
    kms_sample_set set;
    kms_status st = kms_context_sample_set(ctx, &set, err);
    if (st != KMS_OK)
        return st;
    int32_t *labels = NULL;
    if (set.n < (size_t)ctx->k) {
        st = kms_error_set(err, KMS_ERR_INPUT, NULL, 0, "kmeans.k",
                           "k = %d is larger than the %zu samples", ctx->k,
                           set.n);
        goto out;
    }
    free(ctx->labels);
    free(ctx->centers);
    /* every label is written (here or by the backend): no zeroing */
    ctx->labels = malloc(ctx->n_samples * sizeof *ctx->labels);
    ctx->centers = calloc((size_t)ctx->k * (size_t)ctx->dims,
                          sizeof *ctx->centers);
    labels = set.owned ? malloc((set.n ? set.n : 1) * sizeof *labels)
                       : ctx->labels;
    if (!ctx->labels || !ctx->centers || !labels) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                           "cannot allocate labels for %zu samples",
                           ctx->n_samples);
        goto out;
    }
    kms_kmeans_params kp;
    library_params(p, ctx, &kp);
    kp.k = ctx->k;
    double t0 = kms_now_ms();
    st = backend == KMS_BACKEND_OPENCV
             ? run_opencv(&kp, ctx, &set, labels, err)
             : run_native(&kp, ctx, &set, labels, err);
    ctx->ms_kmeans = kms_now_ms() - t0;
    if (st == KMS_OK && set.owned)
        st = scatter_labels(ctx, labels, err);
    if (st != KMS_OK)
        goto out;
    kms_kmeans_canonicalize(ctx->labels, ctx->n_samples, ctx->centers, ctx->k,
                            ctx->dims);
out:
    if (labels != ctx->labels)
        free(labels);
    kms_sample_set_free(&set);
    return st;
}

static kms_status kmeans_run(const void *params, kms_context *ctx,
                             kms_error *err)
{
    const kmeans_params *p = params;
    return cluster(params, ctx, (kms_backend)p->backend, err);
}

static const kms_clustering kmeans_clustering = {
    .cluster = cluster,
    .kmeans_params = library_params,
};

const kms_stage_class kms_stage_kmeans = {
    .name = "kmeans",
    .description = "cluster the samples into k groups (native or OpenCV)",
    .params = kmeans_table,
    .params_size = sizeof(kmeans_params),
    .prepare = kmeans_prepare,
    .run = kmeans_run,
    .clustering = &kmeans_clustering,
};
