/* read, DICOM inputs (read_dicom.h): decoding is io/dicom's, geometry and
 * reorientation the NIfTI reader's, so series and NIfTI volumes land in
 * the same canonical stack. */
#include "read_dicom.h"

#include <stdio.h>

#include "dicom.h"
#include "nifti_io.h"

bool kms_read_is_dicom(const kms_context *ctx)
{
    return ctx->n_input_files > 0 || kms_dicom_is_file(ctx->input_path);
}

/* The stored slice as it is: the mask stays on the file's pixel grid. */
static void take_slice(kms_context *ctx, kms_dicom_volume *dv)
{
    kms_image_move(&ctx->image, &dv->img);
    ctx->slices = 1;
    ctx->pixel_mm[0] = dv->column_spacing; /* along x: between columns */
    ctx->pixel_mm[1] = dv->row_spacing;
    ctx->orient = dv->has_geometry
                      ? kms_dicom_orient(dv->orientation, &ctx->orient_known)
                      : 0;
    if (!dv->has_geometry)
        ctx->orient_known = false;
}

kms_status kms_read_dicom(kms_context *ctx, kms_error *err)
{
    const char *one[1] = {ctx->input_path};
    const char *const *files = ctx->n_input_files ? ctx->input_files : one;
    size_t n = ctx->n_input_files ? ctx->n_input_files : 1;
    kms_dicom_volume dv;
    kms_status st = kms_dicom_read(files, n, ctx->threads, ctx->max_pixels, &dv, err);
    if (st != KMS_OK)
        return st;
    if (dv.slices > 1) {
        st = kms_nifti_volume_from_lps(files[0], &dv.img, dv.slices,
                                       (const double(*)[4])dv.affine,
                                       &ctx->volume, err);
        if (st == KMS_OK) {
            kms_image_move(&ctx->image, &ctx->volume.img);
            ctx->slices = ctx->volume.nz;
        }
    } else {
        take_slice(ctx, &dv);
    }
    snprintf(ctx->modality, sizeof ctx->modality, "%s", dv.modality);
    if (dv.note[0])
        kms_context_note(ctx, "%s", dv.note);
    kms_dicom_volume_free(&dv);
    if (st == KMS_OK)
        kms_context_claim_hu(ctx); /* rescaled (CT; others: kms_check_hu) */
    return st;
}
