/* read, for DICOM inputs: a series (kms_context.input_files) or one file. */
#ifndef KMS_READ_DICOM_H
#define KMS_READ_DICOM_H

#include <stdbool.h>

#include "context.h"

/* True when the read stage should go through kms_read_dicom. */
bool kms_read_is_dicom(const kms_context *ctx);

/* A series of two or more slices becomes a volume with the NIfTI machinery
 * (ctx->volume: canonical axial stack, masks written as NIfTI in the
 * series' geometry); one slice is a 2-D image in stored pixel order with
 * ctx->pixel_mm and ctx->orient from its header. Values are HU
 * (RescaleSlope/Intercept applied per slice); warnings go to ctx->note.
 * The input size and ctx->original are left to the caller (read.c), as
 * for every reader: read.slope/intercept come first. */
kms_status kms_read_dicom(kms_context *ctx, kms_error *err);

#endif
