/* A batch: a pipeline over every input, one summary.csv row each. A bad
 * input fails only its own row; the others still run and are written. */
#ifndef KMS_BATCH_H
#define KMS_BATCH_H

#include <stdbool.h>

#include "error.h"
#include "inputs.h"
#include "output.h"
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

/* The inputs and output folder of one command, shared by run, compare and
 * elbow. */
typedef struct kms_batch {
    char out_dir[4096];
    kms_input_list inputs;
    kms_file_set protect; /* the inputs' files: never written over */
} kms_batch;

/* Resolves and prepares the output folder and expands the inputs. */
kms_status kms_batch_open(kms_batch *b, const kms_pipeline *pl,
                          const kms_batch_options *opt, kms_error *err);
void kms_batch_close(kms_batch *b);

/* Sets up ctx for input i (which must have no error of its own). */
void kms_batch_context(const kms_batch *b, const kms_pipeline *pl, size_t i,
                       kms_context *ctx);

/* One line for a failed input, above the progress line if there is one. */
void kms_batch_report(const kms_error *err);

/* Writes bytes to the output folder atomically under name. */
kms_status kms_batch_write(const kms_batch *b, const char *name,
                           const void *buf, size_t len, kms_error *err);

/* Runs pl over its inputs. Returns KMS_OK when the batch ran (items may have
 * failed: see res); an error when it could not start (e.g. the output folder
 * cannot be written). */
kms_status kms_batch_run(const kms_pipeline *pl, const kms_batch_options *opt,
                         kms_batch_result *res, kms_error *err);

#endif
