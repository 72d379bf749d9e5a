/* Are the values of this input really CT in Hounsfield units? Stages that
 * trust HU (lung_mask; window with its default HU level/width) call this
 * before any pixel work, so a wrong unit is a one-line error naming the
 * key to set, never an `ok` row with an empty mask. */
#ifndef KMS_HU_CHECK_H
#define KMS_HU_CHECK_H

#include "context.h"
#include "error.h"

/* Checks kms_context_as_read(ctx) once per input (ctx->hu_checked caches a
 * pass). 8-bit pictures (ctx->hu false) pass untouched: they are read
 * through their display window. On failure: KMS_ERR_INPUT, err->file the
 * input, err->key the key to set, and a message such as
 * "values look like HU + 1024 (air at 24): set read.intercept = -1024". */
kms_status kms_check_hu(kms_context *ctx, kms_error *err);

#endif
