#include "context.h"

#include <stdlib.h>
#include <string.h>

void kms_context_clear(kms_context *ctx)
{
    if (!ctx)
        return;
    kms_image_free(&ctx->image);
    kms_image_free(&ctx->original);
    kms_image_free(&ctx->truth);
    kms_image_free(&ctx->recolor);
    kms_image_free(&ctx->mask);
    free(ctx->samples);
    free(ctx->labels);
    free(ctx->centers);
    memset(ctx, 0, sizeof *ctx);
}
