/* The parameters of one k-means run, shared by both backends: the native
 * library (kmeans/kms_kmeans_run) and the OpenCV wrapper
 * (opencv_c/kms_cv_kmeans). Both are rank-1 layers that may not see each
 * other, so the struct lives here, below both: one struct means the same run
 * on either side. */
#ifndef KMS_KMEANS_PARAMS_H
#define KMS_KMEANS_PARAMS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kms_km_method {
    KMS_KM_AUTO,    /* optimal when dims == 1, else lloyd */
    KMS_KM_OPTIMAL, /* exact 1-D optimum (dims must be 1) */
    KMS_KM_LLOYD    /* cv::kmeans-compatible Lloyd iterations */
} kms_km_method;

typedef enum kms_km_init {
    KMS_KM_INIT_PP,     /* k-means++, 3 local trials (cv KMEANS_PP_CENTERS) */
    KMS_KM_INIT_RANDOM, /* uniform in the widened bounding box
                           (cv KMEANS_RANDOM_CENTERS) */
    KMS_KM_INIT_LABELS  /* start from the labels passed in
                           (cv KMEANS_USE_INITIAL_LABELS); later attempts
                           start at random, as in cv */
} kms_km_init;

/* Termination bits, the values of cv::TermCriteria::COUNT / EPS. */
enum { KMS_KM_TERM_COUNT = 1, KMS_KM_TERM_EPS = 2 };

typedef struct kms_kmeans_params {
    int k;             /* clusters, >= 1 */
    int attempts;      /* >= 1; the lowest compactness wins (lloyd) */
    int criteria;      /* KMS_KM_TERM_* bits */
    int max_iter;      /* as cv::TermCriteria::maxCount */
    double epsilon;    /* as cv::TermCriteria::epsilon (not squared) */
    kms_km_init init;
    kms_km_method method; /* native only: OpenCV is always Lloyd */
    uint64_t seed;     /* as cv::setRNGSeed(seed) before cv::kmeans: the
                          cv::RNG state (0 means 0xffffffff, as in cv);
                          setRNGSeed takes an int, so its negative s is
                          seed (uint64_t)(int64_t)s here */
    int threads;       /* native only: worker threads for lloyd; <= 0: all
                          cores (OpenCV's come from kms_cv_set_num_threads) */
} kms_kmeans_params;

/* Defaults: k 2, attempts 10, COUNT|EPS, 10 iterations, epsilon 1.0, PP,
 * AUTO, seed 0x12345678, threads 1. (An untouched cv::theRNG() has state
 * 0xffffffff, which is seed 0 here: use seed 0 to match a cv::kmeans call
 * made without cv::setRNGSeed on a fresh thread.) */
void kms_kmeans_params_default(kms_kmeans_params *p);

#ifdef __cplusplus
}
#endif

#endif
