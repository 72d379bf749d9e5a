/* kmeans: kmseg's native k-means library, plain C, no OpenCV.
 *
 * Three methods behind one call:
 *  - lloyd:   a faithful reimplementation of cv::kmeans (OpenCV 4.6
 *             modules/core/src/kmeans.cpp), same RNG, same init, same
 *             stopping rule, so the same seed gives the same answer;
 *  - optimal: the exact, globally optimal k-means of 1-D data by dynamic
 *             programming over the sorted distinct values;
 *  - auto:    optimal for 1-D data, lloyd (with the fast bounded assignment)
 *             otherwise.
 * Results never depend on the number of threads. */
#ifndef KMS_KMEANS_H
#define KMS_KMEANS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "kmeans_params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Clusters n samples of dims floats (row-major). labels: n int32 (input when
 * init is LABELS). centers: k * dims floats. compactness: sum over samples of
 * the squared distance to their centre (what cv::kmeans returns), computed
 * in double. Errors: KMS_ERR_USAGE for k < 1, attempts < 1, n < k, dims < 1,
 * method optimal with dims != 1; KMS_ERR_INPUT for NaN or infinite samples;
 * KMS_ERR_NOMEM. compactness may be NULL.
 *
 * optimal: raw labels are ordered by value (cluster 0 holds the smallest
 * values); centres are the cluster means (double, stored as float) and
 * compactness is taken about those float centres. With fewer distinct values
 * d than k, each value is its own cluster (labels 0..d-1, compactness 0) and
 * centres d..k-1 repeat the largest value; no sample is labelled with them.
 *
 * lloyd: the same float operations in the same order as cv::kmeans, so
 * bit-identical results (checked against OpenCV 4.6 on x86-64), whatever the
 * thread count. Squared distances that overflow a float (values ~1e19 and
 * up) give KMS_ERR_INPUT, where cv fails or returns garbage. */
kms_status kms_kmeans_run(const float *samples, size_t n, int dims,
                          const kms_kmeans_params *p, int32_t *labels,
                          float *centers, double *compactness, kms_error *err);

/* Exact 1-D optimum for every K in 1..kmax in one DP pass: wcss[k-1] is the
 * minimum within-cluster sum of squares with k clusters (kmax entries).
 * When there are fewer distinct values d than kmax, wcss for k >= d is 0. */
kms_status kms_kmeans_optimal_wcss(const float *values, size_t n, int kmax,
                                   double *wcss, kms_error *err);

/* The exact 1-D optimum of a histogram: value values[i] occurs counts[i]
 * times (values finite and strictly increasing; counts may be 0). The same
 * answer, bit for bit, as kms_kmeans_run with method optimal on the samples
 * the histogram counts (each value repeated counts[i] times, in any order),
 * in O(bins) memory whatever the number of samples: e.g. the 2-means of a
 * CT slice's Hounsfield units from their counts. labels (bins entries, may
 * be NULL): the cluster of each value; a value with count 0 gets the
 * cluster that a sample of that value would get (the first whose largest
 * value is >= it, else the last used). centers: k floats, compactness (may
 * be NULL) as kms_kmeans_run gives them, including k above the number of
 * non-empty bins. Errors: KMS_ERR_USAGE for NULL values, counts or centers,
 * k < 1, bins above INT32_MAX, values not strictly increasing or all counts
 * 0; KMS_ERR_INPUT for NaN or infinite values; KMS_ERR_NOMEM. */
kms_status kms_kmeans_optimal_hist(const float *values, const uint64_t *counts,
                                   size_t bins, int k, int32_t *labels,
                                   float *centers, double *compactness,
                                   kms_error *err);

/* kms_kmeans_run with method optimal on the samples whose valid[i] is
 * non-zero (valid NULL: all n), bit for bit the same centres and
 * compactness, and labels for EVERY sample: a valid one as kms_kmeans_run
 * labels it, a left-out one as kms_kmeans_quantize labels it with those k
 * centres (how kmseg's stage labels padding). Without a copy of the valid
 * samples; integer samples (e.g. Hounsfield units as floats) are counted in
 * a table and labelled through a value -> cluster table, floats with few
 * distinct values through a hash of them. labels (n entries) may be NULL.
 * Errors: KMS_ERR_USAGE for NULL samples or centers, k < 1, fewer valid
 * samples than k or more than INT32_MAX; KMS_ERR_INPUT for a NaN or
 * infinite valid sample (its index among the valid ones); KMS_ERR_NOMEM. */
kms_status kms_kmeans_optimal_masked(const float *samples,
                                     const uint8_t *valid, size_t n, int k,
                                     int32_t *labels, float *centers,
                                     double *compactness, kms_error *err);

/* kms_kmeans_run with method optimal on (float)samples[i], bit for bit,
 * straight from int16 (e.g. a CT slice): one pass for the bounds, one
 * counting the values, one labelling through a value -> cluster table.
 * labels may be NULL. Errors: KMS_ERR_USAGE for NULL samples or centers,
 * k < 1, n < k or above INT32_MAX; KMS_ERR_NOMEM. */
kms_status kms_kmeans_optimal_s16(const int16_t *samples, size_t n, int k,
                                  int32_t *labels, float *centers,
                                  double *compactness, kms_error *err);

/* Labels n samples of dims floats with their nearest of the k centres
 * (k * dims floats): the smallest squared Euclidean distance, summed in
 * double over the float differences; ties go to the lower index and a NaN
 * sample gets 0. This is how kmseg labels samples that were not clustered
 * (padding, another resolution). Because kms_kmeans_run's lloyd measures in
 * float as cv does, and cv::kmeans does not relabel after its last centre
 * update, its labels can differ from these in near-ties and when it stops
 * before converging. threads as in kms_kmeans_params (<= 0: all cores; a
 * pool only above 32768 samples); labels never depend on it. Errors:
 * KMS_ERR_USAGE for NULL pointers, k < 1 or dims < 1. */
kms_status kms_kmeans_quantize(const float *samples, size_t n, int dims,
                               const float *centers, int k, int32_t *labels,
                               int threads, kms_error *err);

/* Relabels so that centre 0 is the darkest (smallest sum over dims), ties
 * broken by the old index; centers are permuted to match. */
void kms_kmeans_canonicalize(int32_t *labels, size_t n, float *centers, int k,
                             int dims);

/* --- cv::RNG-compatible random numbers ---------------------------------- */

/* Multiply-with-carry generator of cv::RNG (coefficient 4164903690). */
typedef struct kms_rng {
    uint64_t state;
} kms_rng;

/* cv::RNG(seed): a zero seed becomes 0xffffffff as in OpenCV. */
void kms_rng_seed(kms_rng *rng, uint64_t seed);
/* cv::RNG::next() */
uint32_t kms_rng_next(kms_rng *rng);
/* cv::RNG::uniform(int a, int b): a + next() % (b - a), b > a */
int kms_rng_uniform_int(kms_rng *rng, int a, int b);
/* cv::RNG::uniform(float a, float b) */
float kms_rng_uniform_float(kms_rng *rng, float a, float b);
/* cv::RNG::uniform(double a, double b) */
double kms_rng_uniform_double(kms_rng *rng, double a, double b);

#ifdef __cplusplus
}
#endif

#endif
