/* NIfTI-1/NIfTI-2 volumes (.nii, .nii.gz) through nifti_clib, as a stack of
 * axial slices in one fixed orientation, and masks written back in the
 * input's own axis order and geometry.
 *
 * Canonical layout (whatever the file's axis order and signs):
 *   x  (columns)        patient right -> left   (NIfTI code R2L)
 *   y  (rows of a slice) anterior -> posterior  (NIfTI code A2P)
 *   z  (slices)          inferior -> superior   (NIfTI code I2S)
 * i.e. index increases towards L, P, S ("LPS" in ITK/DICOM terms). Each
 * slice therefore looks like the usual radiological axial view: anterior
 * at the top, the patient's right on the viewer's left. Slice 0 is the most
 * inferior one. In img, slice z is rows [z*ny, (z+1)*ny).
 *
 * The orientation comes from the sform when sform_code > 0, else from the
 * qform when qform_code > 0, else the identity (NIfTI "method 1": i -> L..R,
 * j -> P..A, k -> I..S); oblique matrices snap to the closest axes
 * (nifti_dmat44_to_orientation). */
#ifndef KMS_NIFTI_IO_H
#define KMS_NIFTI_IO_H

#include <stdbool.h>

#include "error.h"
#include "image.h"
#include "output.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kms_volume {
    /* width = nx, height = ny * nz, one channel. KMS_DEPTH_S16 when the file
     * holds integers whose values, after scl_slope/scl_inter (both integral),
     * fit int16; otherwise KMS_DEPTH_F32 with the scaling applied. Files of
     * float32/float64 type always give F32. */
    kms_image img;
    int nx, ny, nz;      /* canonical sizes (after reorientation) */
    double voxel_mm[3];  /* voxel size in mm along canonical x, y, z */
    void *header;        /* opaque: the input's header and axis mapping */
} kms_volume;

/* Reads a 3-D NIfTI volume (a 4-D file with nt == 1 is 3-D). vol is
 * overwritten, not freed (like kms_image_alloc); on failure it is left
 * empty. Errors name the file: KMS_ERR_IO when it cannot be opened,
 * KMS_ERR_INPUT when it is not NIfTI, is truncated, has nt > 1, a complex
 * or RGB (or other unsupported) datatype, or NaN/infinite voxels, or more
 * than max_voxels voxels (0: KMS_MAX_PIXELS_DEFAULT), found from the header
 * before anything is allocated. */
kms_status kms_nifti_read(const char *path, size_t max_voxels, kms_volume *vol,
                          kms_error *err);

/* A volume from a stack in file order: stack is width nx, height ny * nz,
 * one channel, KMS_DEPTH_S16 or _F32, rows contiguous; x fastest, then y,
 * then z (a DICOM series: columns, rows, slices), with the affine lps
 * mapping (x, y, z, 1) to DICOM patient coordinates (LPS, mm). The header
 * is what a NIfTI file of these voxels would have (sform and qform = the
 * affine in RAS, scanner-anatomical; pixdim from the affine's columns), so
 * the volume is reoriented exactly as kms_nifti_read would, and
 * kms_nifti_write_mask writes its masks with that geometry. An S16 stack
 * already in canonical order (columns towards L, rows towards P, slices
 * towards S) is moved into vol, not copied (stack is then empty); any
 * other stack is only read. name is for errors. vol is overwritten, not
 * freed. */
kms_status kms_nifti_volume_from_lps(const char *name, kms_image *stack,
                                     int nz, const double lps[4][4],
                                     kms_volume *vol, kms_error *err);

/* Writes mask (KMS_DEPTH_U8, one channel, the stack layout of vol->img) to
 * dir/name, a NIfTI file (.nii, or .nii.gz compressed, by name) with the
 * input's axis order, dimensions, pixdim, units, qform and sform, NIfTI
 * version and byte order native; datatype uint8, scl_slope 1, scl_inter 0,
 * cal_min/cal_max 0, no extensions. Written atomically (kms_output_write);
 * writing over a file of protect (may be NULL) is refused with KMS_ERR_IO. */
kms_status kms_nifti_write_mask(const char *dir, const char *name,
                                const kms_volume *vol, const kms_image *mask,
                                const kms_file_set *protect, kms_error *err);

/* Frees everything and empties vol; NULL-safe and idempotent. */
void kms_volume_free(kms_volume *vol);

/* True when path ends with .nii or .nii.gz (any case). */
bool kms_nifti_is_path(const char *path);

#ifdef __cplusplus
}
#endif

#endif
