/* kms_kmeans_params_default: here, beside the struct, so that callers of
 * either backend need no other layer. */
#include "kmeans_params.h"

void kms_kmeans_params_default(kms_kmeans_params *p)
{
    *p = (kms_kmeans_params){
        .k = 2,
        .attempts = 10,
        .criteria = KMS_KM_TERM_COUNT | KMS_KM_TERM_EPS,
        .max_iter = 10,
        .epsilon = 1.0,
        .init = KMS_KM_INIT_PP,
        .method = KMS_KM_AUTO,
        .seed = 0x12345678,
        .threads = 1,
    };
}
