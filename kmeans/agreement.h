/* How far two labelings of the same samples agree: kmseg compare's
 * measures between the native and the OpenCV backend. */
#ifndef KMS_AGREEMENT_H
#define KMS_AGREEMENT_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kms_agreement {
    double fraction; /* share of samples with equal labels after the best
                        one-to-one matching of b's labels onto a's */
    double ari;      /* adjusted Rand index (Hubert & Arabie 1985) */
    int *match;      /* match[label of b] = label of a; k entries, caller frees */
} kms_agreement;

/* Labels in 0..k-1. The best matching is exact (Hungarian algorithm on the
 * k x k contingency table). */
kms_status kms_agreement_compute(const int32_t *a, const int32_t *b, size_t n,
                                 int k, kms_agreement *out, kms_error *err);

#ifdef __cplusplus
}
#endif

#endif
