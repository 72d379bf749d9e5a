/* Choosing K: the WCSS curve over a range of K and its knee. */
#ifndef KMS_ELBOW_H
#define KMS_ELBOW_H

#include <stddef.h>

#include "error.h"
#include "kmeans.h"

#ifdef __cplusplus
extern "C" {
#endif

/* WCSS for every k in k_min..k_max (wcss[k - k_min]). One feature: the exact
 * optimum from one DP pass. Several: one run of p's method per k (p->k is
 * ignored). */
kms_status kms_elbow_curve(const float *samples, size_t n, int dims,
                           const kms_kmeans_params *p, int k_min, int k_max,
                           double *wcss, kms_error *err);

/* The knee of a decreasing, convex curve y over x = k_min, k_min + 1, ...
 * by the Kneedle method (Satopää, Albrecht, Irwin, Raghavan 2011) with
 * sensitivity S = 1: the first local maximum of the difference curve
 * (1 - x_n) - y_n whose value the curve falls below the threshold
 * d_max - S / (n - 1) before the next maximum; the global maximum of the
 * difference curve when none qualifies. Returns an index into y (0 for n
 * < 3 or a flat curve). */
int kms_kneedle(const double *y, int n);

#ifdef __cplusplus
}
#endif

#endif
