/* kms_kmeans_run: validation, then one of the methods. */
#include "kmeans_internal.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static kms_status usage(kms_error *err, const char *msg)
{
    return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL, "kmeans: %s", msg);
}

/* NaN and infinities have every exponent bit set. Without an early exit
 * the loop vectorises; a second look names the first bad sample. */
static bool all_finite(const float *x, size_t total)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < total; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return !bad;
}

/* The first bad sample is named (as index and feature). */
static kms_status check_finite(const float *x, size_t n, int dims,
                               kms_error *err)
{
    size_t total = n * (size_t)dims;
    if (all_finite(x, total))
        return KMS_OK;
    for (size_t i = 0; i < total; i++)
        if (!isfinite(x[i]))
            return kms_error_set(err, KMS_ERR_INPUT, NULL, 0, NULL,
                                 "kmeans: sample %zu is %s", i / (size_t)dims,
                                 isnan(x[i]) ? "NaN" : "infinite");
    return KMS_OK;
}

static kms_status check_labels(const int32_t *labels, size_t n, int k,
                               kms_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= k)
            return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                                 "kmeans: initial label %d of sample %zu is "
                                 "outside [0, %d)", (int)labels[i], i, k);
    return KMS_OK;
}

static kms_status validate(const float *samples, size_t n, int dims,
                           const kms_kmeans_params *p, const int32_t *labels,
                           const float *centers, kms_error *err)
{
    if (!p || !samples || !labels || !centers)
        return usage(err, "NULL samples, labels, centers or params");
    if (p->k < 1)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "kmeans: k is %d, must be >= 1", p->k);
    if (p->attempts < 1)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "kmeans: attempts is %d, must be >= 1",
                             p->attempts);
    if (dims < 1)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "kmeans: dims is %d, must be >= 1", dims);
    if (n < (size_t)p->k)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "kmeans: %zu samples for k = %d clusters", n,
                             p->k);
    if (n > INT32_MAX || n * (size_t)dims / (size_t)dims != n)
        return usage(err, "too many samples");
    if ((unsigned)p->method > KMS_KM_LLOYD
        || (unsigned)p->init > KMS_KM_INIT_LABELS)
        return usage(err, "unknown method or init");
    if (p->method == KMS_KM_OPTIMAL && dims != 1)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "kmeans: method optimal needs 1-D samples, got "
                             "dims = %d", dims);
    if (p->init == KMS_KM_INIT_LABELS)
        return check_labels(labels, n, p->k, err);
    return KMS_OK;
}

kms_status kms_kmeans_run(const float *samples, size_t n, int dims,
                          const kms_kmeans_params *p, int32_t *labels,
                          float *centers, double *compactness, kms_error *err)
{
    kms_status st = validate(samples, n, dims, p, labels, centers, err);
    if (st != KMS_OK)
        return st;
    if ((st = check_finite(samples, n, dims, err)) != KMS_OK)
        return st;
    switch (p->method) {
    case KMS_KM_AUTO:
        if (dims == 1)
            return kms_optimal_run(samples, n, p->k, labels, centers,
                                   compactness, err);
        return kms_lloyd_run(samples, n, dims, p, KMS_LLOYD_AUTO, labels,
                             centers, compactness, err);
    case KMS_KM_OPTIMAL:
        return kms_optimal_run(samples, n, p->k, labels, centers, compactness,
                               err);
    case KMS_KM_LLOYD:
        return kms_lloyd_run(samples, n, dims, p, KMS_LLOYD_AUTO, labels,
                             centers, compactness, err);
    default:
        abort();
    }
}

kms_status kms_kmeans_optimal_wcss(const float *values, size_t n, int kmax,
                                   double *wcss, kms_error *err)
{
    if (!values || !wcss)
        return usage(err, "NULL values or wcss");
    if (n < 1)
        return usage(err, "no samples");
    if (kmax < 1)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "kmeans: kmax is %d, must be >= 1", kmax);
    kms_status st = check_finite(values, n, 1, err);
    if (st != KMS_OK)
        return st;
    return kms_optimal_wcss_run(values, n, kmax, wcss, err);
}

kms_status kms_kmeans_optimal_hist(const float *values, const uint64_t *counts,
                                   size_t bins, int k, int32_t *labels,
                                   float *centers, double *compactness,
                                   kms_error *err)
{
    if (!values || !counts || !centers)
        return usage(err, "NULL values, counts or centers");
    if (k < 1)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "kmeans: k is %d, must be >= 1", k);
    if (bins > INT32_MAX)
        return usage(err, "too many histogram bins");
    kms_status st = check_finite(values, bins, 1, err);
    if (st != KMS_OK)
        return st;
    bool any = false;
    for (size_t i = 0; i < bins; i++) {
        if (i > 0 && !(values[i] > values[i - 1]))
            return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                                 "kmeans: histogram value %zu (%g) is not "
                                 "above the one before (%g)",
                                 i, (double)values[i], (double)values[i - 1]);
        any |= counts[i] != 0;
    }
    if (!any)
        return usage(err, "empty histogram");
    return kms_optimal_hist_run(values, counts, bins, k, labels, centers,
                                compactness, err);
}
