/* A pipeline: the [pipeline] section and the stage instances it lists, built
 * and checked from a config before any input is touched. */
#ifndef KMS_PIPELINE_H
#define KMS_PIPELINE_H

#include <stddef.h>

#include "config.h"
#include "context.h"
#include "error.h"
#include "stage.h"

typedef struct kms_pipeline_params {
    char input[KMS_STR_MAX];  /* files, folders, globs */
    char output[KMS_STR_MAX]; /* folder */
    char stages[KMS_STR_MAX]; /* section names, in order */
    int seed;
} kms_pipeline_params;

/* The keys of [pipeline], for the loader and `kmseg stages`. */
extern const kms_param kms_pipeline_param_table[];

typedef struct kms_stage_instance {
    const kms_stage_class *cls;
    void *params;             /* cls->params_size bytes */
} kms_stage_instance;

typedef struct kms_pipeline {
    kms_pipeline_params params;
    char *base_dir;           /* relative input/output paths start here */
    kms_stage_instance *stages;
    size_t n_stages;
    kms_link link;            /* what the stages leave, as their prepare
                                 declared it */
} kms_pipeline;

/* Builds pl from cfg: unknown sections and keys, bad and out-of-range
 * values, missing required keys and unmet stage links are KMS_ERR_CONFIG
 * naming file, line and SECTION.KEY. On error pl is freed. */
kms_status kms_pipeline_build(kms_pipeline *pl, kms_config *cfg,
                              kms_error *err);

/* Runs every stage on ctx (which the caller set up with the input path,
 * stem and output folder). err->file names the input. */
kms_status kms_pipeline_run(const kms_pipeline *pl, kms_context *ctx,
                            kms_error *err);

/* Runs stages first..end-1 only (compare and elbow stop before kmeans). */
kms_status kms_pipeline_run_span(const kms_pipeline *pl, kms_context *ctx,
                                 size_t first, size_t end, kms_error *err);

/* Index of the first stage whose class clusters (has the clustering hook),
 * or n_stages: what compare and elbow work with. */
size_t kms_pipeline_clustering(const kms_pipeline *pl);

/* The names of the files every stage with a products hook writes for an
 * input (input_path: as the stages see it). Returns how many (at most
 * max). */
int kms_pipeline_products(const kms_pipeline *pl, const char *input_path,
                          const char *stem,
                          char names[][KMS_PRODUCT_NAME_MAX], int max);

/* Index of the first stage of that class, or n_stages (for tools and
 * tests; commands use the hooks above). */
size_t kms_pipeline_stage_index(const kms_pipeline *pl, const char *stage_name);

/* The params of the first stage of that class, or NULL. */
const void *kms_pipeline_stage_params(const kms_pipeline *pl,
                                      const char *stage_name);

void kms_pipeline_free(kms_pipeline *pl);

#endif
