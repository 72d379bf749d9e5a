/* kms_kmeans_quantize: every sample to its nearest centre. */
#include "kmeans_internal.h"

#include <stdbool.h>
#include <stdlib.h>

/* Samples per chunk: fixed, so the work is the same whatever the threads. */
enum { CHUNK = 1 << 15 };

typedef struct quantize {
    const float *x, *centers;
    size_t n;
    int dims, k;
    int32_t *labels;
} quantize;

/* The first centre of the smallest distance. The distance is summed in
 * double over float differences, as kmseg's stage always did (not cv's float
 * kms_dist2): changing it would move labels in near-ties. NaN never
 * compares below, so a NaN sample gets 0. */
static int32_t nearest(const quantize *q, const float *x)
{
    double best = INFINITY;
    int32_t label = 0;
    for (int c = 0; c < q->k; c++) {
        const float *cc = q->centers + (size_t)c * (size_t)q->dims;
        double dist = 0;
        for (int e = 0; e < q->dims; e++) {
            double t = x[e] - cc[e];
            dist += t * t;
        }
        if (dist < best) {
            best = dist;
            label = c;
        }
    }
    return label;
}

static bool same_bits(const float *a, const float *b, int dims)
{
    return memcmp(a, b, sizeof *a * (size_t)dims) == 0;
}

/* Samples [c * CHUNK, ...): a run of bit-identical samples (padding, flat
 * regions) costs one search. */
static void quantize_chunk(void *ctx, size_t c)
{
    const quantize *q = ctx;
    const size_t d = (size_t)q->dims, end = (c + 1) * CHUNK < q->n
                                                ? (c + 1) * CHUNK
                                                : q->n;
    const float *last = NULL;
    int32_t last_label = 0;
    for (size_t i = c * CHUNK; i < end; i++) {
        const float *x = q->x + i * d;
        if (!last || !same_bits(x, last, q->dims)) {
            last_label = nearest(q, x);
            last = x;
        }
        q->labels[i] = last_label;
    }
}

kms_status kms_kmeans_quantize(const float *samples, size_t n, int dims,
                               const float *centers, int k, int32_t *labels,
                               int threads, kms_error *err)
{
    if ((n && (!samples || !labels)) || !centers)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "kmeans: NULL samples, centers or labels");
    if (k < 1 || dims < 1)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "kmeans: quantize needs k >= 1 and dims >= 1, "
                             "not %d and %d", k, dims);
    if (n * (size_t)dims / (size_t)dims != n)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "kmeans: too many samples");
    quantize q = {samples, centers, n, dims, k, labels};
    size_t nchunks = n / CHUNK + (n % CHUNK != 0);
    /* threads only pay for several chunks; without a pool (one thread, or
     * out of memory) the same chunks run here, with the same labels */
    kms_pool *pool = nchunks > 1 && threads != 1 ? kms_pool_create(threads)
                                                 : NULL;
    if (pool)
        kms_pool_run(pool, nchunks, quantize_chunk, &q);
    else
        for (size_t c = 0; c < nchunks; c++)
            quantize_chunk(&q, c);
    kms_pool_destroy(pool);
    return KMS_OK;
}

int32_t kms_quantize_nearest1(float x, const float *centers, int k)
{
    quantize q = {NULL, centers, 1, 1, k, NULL};
    return nearest(&q, &x);
}
