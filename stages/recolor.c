/* recolor: every pixel takes its centre's value, the notebook's
 * `center[label.flatten()].reshape(img.shape)`. */
#include <string.h>

#include "stage.h"

typedef struct recolor_params {
    int unused;
} recolor_params;

static const kms_param recolor_table[] = {{0}};

static kms_status recolor_prepare(const void *params, kms_link *link,
                                  kms_error *err)
{
    (void)params;
    if (!link->labels.present)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                             "recolor needs labels: put kmeans before it");
    link->recolor = true;
    return KMS_OK;
}

static kms_status recolor_run(const void *params, kms_context *ctx,
                              kms_error *err)
{
    (void)params;
    kms_image out = {0};
    kms_status st = kms_image_alloc(&out, ctx->sample_width, ctx->sample_height,
                                    ctx->dims, KMS_DEPTH_F32, err);
    if (st != KMS_OK)
        return st;
    size_t row_samples = (size_t)ctx->sample_width;
    size_t pixel_bytes = (size_t)ctx->dims * sizeof(float);
    for (int y = 0; y < out.height; y++) {
        float *dst = kms_image_row(&out, y);
        const int32_t *lab = ctx->labels + (size_t)y * row_samples;
        for (size_t x = 0; x < row_samples; x++)
            memcpy(dst + x * (size_t)ctx->dims,
                   ctx->centers + (size_t)lab[x] * (size_t)ctx->dims,
                   pixel_bytes);
    }
    kms_image_move(&ctx->recolor, &out);
    return KMS_OK;
}

const kms_stage_class kms_stage_recolor = {
    .name = "recolor",
    .description = "paint every pixel with its cluster centre",
    .params = recolor_table,
    .params_size = sizeof(recolor_params),
    .prepare = recolor_prepare,
    .run = recolor_run,
};
