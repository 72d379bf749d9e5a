/* DICOM input through GDCM (C++ behind this C header, as opencv_c).
 *
 * Two steps: kms_dicom_group reads only the header tags of a set of files
 * and sorts them into series (one input each), kms_dicom_read decodes the
 * sorted files of one series into a stack of slices in HU with its
 * geometry. Every error is one line naming the file; no C++ exception and
 * no GDCM message gets out (GDCM's warnings and errors are switched off).
 *
 * Geometry is DICOM's patient coordinate system, LPS in mm: x towards the
 * patient's Left, y towards Posterior, z towards Superior. */
#ifndef KMS_DICOM_H
#define KMS_DICOM_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "image.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Slices of a series are refused beyond these (checked on the headers,
 * before anything is allocated). */
enum { KMS_DICOM_MAX_SIDE = 16384, KMS_DICOM_MAX_SLICES = 8192 };
#define KMS_DICOM_MAX_VOXELS ((size_t)1 << 31)

/* A regular file with "DICM" at byte 128 (Part 10 file), or a
 * .dcm/.dicom/.ima name. */
bool kms_dicom_is_file(const char *path);

/* A .dcm/.dicom/.ima name (the file is not looked at). */
bool kms_dicom_name(const char *path);

typedef struct kms_dicom_series {
    char *name;        /* {PatientID}_{SeriesNumber}_{SeriesDescription},
                          only [A-Za-z0-9._-], unique among the groups */
    char **files;      /* sorted along the slice normal (one file: as is) */
    size_t n_files;
    kms_error *error;  /* NULL, or why the series cannot be read (mixed
                          sizes, duplicate positions, irregular spacing, an
                          unreadable file beside its files): names a file.
                          Warnings (gap, modality) come from kms_dicom_read */
} kms_dicom_series;

typedef struct kms_dicom_skip {
    char *path;
    char *reason;      /* e.g. "RTSTRUCT, not an image" */
} kms_dicom_skip;

typedef struct kms_dicom_groups {
    kms_dicom_series *series;  /* sorted by name */
    size_t n_series;
    kms_dicom_skip *skipped;   /* valid objects that are no images */
    size_t n_skipped;
    kms_dicom_skip *unreadable;/* files that cannot be parsed (damaged,
                                  truncated, not DICOM): reason says why */
    size_t n_unreadable;
} kms_dicom_groups;

/* Groups n files by SeriesInstanceUID. A valid object that is no image (no
 * Rows/Columns, or an RTSTRUCT, SR, RTPLAN, ... object) is listed in
 * skipped; a file that cannot be parsed in unreadable, and every series
 * with files in the same folder gets an error naming it (it may be one of
 * its slices). Problems of one series go into its error; the call itself
 * fails only for bad arguments or memory. */
kms_status kms_dicom_group(const char *const *paths, size_t n,
                           kms_dicom_groups *out, kms_error *err);
void kms_dicom_groups_free(kms_dicom_groups *g);

typedef struct kms_dicom_volume {
    /* width = Columns, height = Rows * slices; slice k = rows
     * [k*Rows, (k+1)*Rows) in stored pixel order, the k-th file of the
     * sorted list (gaps filled, see note). KMS_DEPTH_S16 when every value
     * after RescaleSlope/Intercept (per slice) is integral and fits int16,
     * else KMS_DEPTH_F32. Values are HU for CT. */
    kms_image img;
    int columns, rows, slices;
    double row_spacing, column_spacing; /* PixelSpacing[0], [1] (mm; 0 when
                                           the files have none) */
    bool has_geometry;      /* ImageOrientation/PositionPatient given */
    double orientation[6];  /* ImageOrientationPatient: row, column cosines */
    /* (column i, row j, slice k, 1) -> LPS mm; identity scaled by the
     * spacings when the files have no geometry */
    double affine[4][4];
    char modality[20];
    char note[512];         /* warnings ("" when none) */
} kms_dicom_volume;

/* Decodes the n files (one series, sorted as kms_dicom_group sorts them)
 * into vol (overwritten, not freed; empty on failure), on up to threads
 * threads (<= 1: this one). Damaged headers, truncated pixel data,
 * multi-frame, colour, mixed sizes, irregular slice spacing and
 * undecodable pixel data are errors naming the file. Every file is walked
 * (dicom_walk.h) before GDCM parses it; compressed slices are decoded in a
 * child process (openjp2 crashes and GDCM's JPEG codecs abort on some
 * damaged streams). */
kms_status kms_dicom_read(const char *const *files, size_t n, int threads,
                          size_t max_voxels, kms_dicom_volume *vol,
                          kms_error *err);
void kms_dicom_volume_free(kms_dicom_volume *vol);

/* The orient code (orient.h: first transpose if c & 4, then flip columns
 * if c & 1, then flip rows if c & 2) that brings a slice stored with this
 * ImageOrientationPatient to the canonical axial view: columns towards the
 * patient's Left (+x), rows towards Posterior (+y). Directions snap to the
 * nearest axis; *known is false (and 0 returned) for a slice that is not
 * axial (its normal not mostly along z) or degenerate cosines. */
int kms_dicom_orient(const double iop[6], bool *known);

#ifdef __cplusplus
}
#endif

#endif
