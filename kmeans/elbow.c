#include "elbow.h"

#include <stdlib.h>

kms_status kms_elbow_curve(const float *samples, size_t n, int dims,
                           const kms_kmeans_params *p, int k_min, int k_max,
                           double *wcss, kms_error *err)
{
    if (k_min < 1 || k_max < k_min)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "bad K range %d..%d", k_min, k_max);
    if ((size_t)k_max > n)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "K up to %d needs at least %d samples, there are %zu",
                             k_max, k_max, n);
    if (dims == 1 && p->method != KMS_KM_LLOYD) {
        double *all = malloc(sizeof *all * (size_t)k_max);
        if (!all)
            return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                                 "out of memory");
        kms_status st = kms_kmeans_optimal_wcss(samples, n, k_max, all, err);
        if (st == KMS_OK)
            for (int k = k_min; k <= k_max; k++)
                wcss[k - k_min] = all[k - 1];
        free(all);
        return st;
    }
    int32_t *labels = malloc(sizeof *labels * n);
    float *centers = malloc(sizeof *centers * (size_t)k_max * (size_t)dims);
    kms_status st = KMS_OK;
    if (!labels || !centers) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    for (int k = k_min; k <= k_max && st == KMS_OK; k++) {
        kms_kmeans_params q = *p;
        q.k = k;
        st = kms_kmeans_run(samples, n, dims, &q, labels, centers,
                            &wcss[k - k_min], err);
    }
out:
    free(labels);
    free(centers);
    return st;
}

int kms_kneedle(const double *y, int n)
{
    if (n < 3)
        return 0;
    double lo = y[0], hi = y[0];
    for (int i = 1; i < n; i++) {
        lo = y[i] < lo ? y[i] : lo;
        hi = y[i] > hi ? y[i] : hi;
    }
    if (hi <= lo)
        return 0;
    /* difference curve of the normalised points from the chord (0,1)-(1,0) */
    double *d = malloc(sizeof *d * (size_t)n);
    if (!d)
        return 0;
    int best = 0;
    for (int i = 0; i < n; i++) {
        double xn = (double)i / (n - 1), yn = (y[i] - lo) / (hi - lo);
        d[i] = 1.0 - xn - yn;
        if (d[i] > d[best])
            best = i;
    }
    const double step = 1.0 / (n - 1); /* S = 1 times the mean x spacing */
    int knee = -1;
    for (int i = 1; i + 1 < n && knee < 0; i++) {
        if (!(d[i] > d[i - 1] && d[i] >= d[i + 1]))
            continue;
        double threshold = d[i] - step;
        for (int j = i + 1; j < n; j++) {
            if (j + 1 < n && d[j] > d[j - 1] && d[j] >= d[j + 1])
                break; /* the next local maximum came first */
            if (d[j] < threshold) {
                knee = i;
                break;
            }
        }
    }
    free(d);
    return knee >= 0 ? knee : best;
}
