/* A batch: a pipeline over every input, one summary.csv row each. A bad
 * input fails only its own row; the others still run and are written. */
#ifndef KMS_BATCH_H
#define KMS_BATCH_H

#include <stdbool.h>

#include "error.h"
#include "pipeline.h"

typedef struct kms_batch_options {
    const char *const *inputs; /* command-line inputs replacing pipeline.input */
    int n_inputs;
    const char *output;        /* replaces pipeline.output when non-NULL */
    bool quiet;                /* no progress, no per-item lines */
} kms_batch_options;

typedef struct kms_batch_result {
    int total, succeeded, failed;
} kms_batch_result;

/* Runs pl over its inputs. Returns KMS_OK when the batch ran (items may have
 * failed: see res); an error when it could not start (e.g. the output folder
 * cannot be written). */
kms_status kms_batch_run(const kms_pipeline *pl, const kms_batch_options *opt,
                         kms_batch_result *res, kms_error *err);

#endif
