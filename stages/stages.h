/* The stage classes, one per file in stages/. */
#ifndef KMS_STAGES_H
#define KMS_STAGES_H

#include "stage.h"

extern const kms_stage_class kms_stage_read;
extern const kms_stage_class kms_stage_window;
extern const kms_stage_class kms_stage_denoise;
extern const kms_stage_class kms_stage_reshape;
extern const kms_stage_class kms_stage_kmeans;
extern const kms_stage_class kms_stage_recolor;
extern const kms_stage_class kms_stage_mask;
extern const kms_stage_class kms_stage_lung_mask;
extern const kms_stage_class kms_stage_evaluate;
extern const kms_stage_class kms_stage_write;

/* The kmeans stage's clustering with a chosen backend, whatever its config
 * says (kmseg compare runs both on the same samples). Sets ctx->k, labels
 * (canonical), centers, wcss, backend and ms_kmeans. */
typedef enum kms_backend { KMS_BACKEND_NATIVE, KMS_BACKEND_OPENCV } kms_backend;
kms_status kms_kmeans_stage_cluster(const void *params, kms_context *ctx,
                                    kms_backend backend, kms_error *err);

/* The native library's parameters that a kmeans stage's config means. */
struct kms_kmeans_params;
void kms_kmeans_stage_native_params(const void *params, const kms_context *ctx,
                                    struct kms_kmeans_params *kp);

/* The file names a write stage makes for an input (--resume
 * checks they all exist). Returns how many (at most max). */
int kms_write_stage_product_names(const void *params, const char *input_path,
                                  const char *stem, char names[][512], int max);

#endif
