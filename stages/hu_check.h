/* Are the values of this input really CT in Hounsfield units? Stages that
 * trust HU (lung_mask; window with its default HU level/width) call this
 * before any pixel work, so a wrong unit is a one-line error naming the
 * key to set, never an `ok` row with an empty mask. */
#ifndef KMS_HU_CHECK_H
#define KMS_HU_CHECK_H

#include <stddef.h>

#include "context.h"
#include "error.h"

/* Checks kms_context_as_read(ctx) once per input (ctx->hu_checked caches a
 * pass). 8-bit pictures (ctx->hu false) pass untouched: they are read
 * through their display window. On failure: KMS_ERR_INPUT, err->file the
 * input, err->key the key to set, and a message such as
 * "values look like HU + 1024 (air at 24): set read.intercept = -1024". */
kms_status kms_check_hu(kms_context *ctx, kms_error *err);

/* What kms_hu_measure concluded. */
typedef enum kms_hu_verdict {
    KMS_HU_OK,        /* air and tissue where CT in HU has them (or one
                         value only: nothing to judge) */
    KMS_HU_NONFINITE, /* NaN or infinite values (or no values) */
    KMS_HU_NARROW,    /* the values span less than air to tissue */
    KMS_HU_NO_TISSUE, /* no soft-tissue peak at any offset */
    KMS_HU_SCALED,    /* air and tissue fit a scale of 1/2 or 2: a slope */
    KMS_HU_PLUS_1024, /* HU + 1024, the usual unsigned storage */
    KMS_HU_SHIFTED    /* another offset */
} kms_hu_verdict;

typedef struct kms_hu_levels {
    kms_hu_verdict verdict;
    double min, max;   /* of the sampled values */
    double air;        /* median of the air band (NAN: hardly any air) */
    double tissue;     /* median of the soft-tissue band (NAN: none) */
    double shift;      /* where air/tissue sit above HU's (slope 1 only) */
    double slope;      /* the slope the values seem to need (NAN: unknown) */
    size_t nonfinite;  /* NaN or infinite samples */
} kms_hu_levels;

/* The measurements behind kms_check_hu, on img (one channel; a stack of
 * slices is measured whole), every 4th pixel in x and y. Fails only when
 * out of memory. */
kms_status kms_hu_measure(const kms_image *img, kms_hu_levels *lv,
                          kms_error *err);

#endif
