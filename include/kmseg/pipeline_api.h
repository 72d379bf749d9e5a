/* The pipeline as a library: load an INI config (as `kmseg run CONFIG -s
 * S.KEY=VAL` would), run it on one file or on an image already in memory,
 * and read what the last run produced. One handle runs one input at a time;
 * use one handle per thread. Errors fill a kms_error (error.h; err may be
 * NULL) and return its code, as everywhere in kmseg. */
#ifndef KMSEG_PIPELINE_API_H
#define KMSEG_PIPELINE_API_H

#include <stddef.h>

#include "error.h"
#include "image.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kmseg_pipeline kmseg_pipeline; /* opaque */

/* The version of the library linked at run time ("0.1.0"), which may be
 * newer than the KMSEG_VERSION_STRING of the headers compiled against. */
const char *kmseg_version(void);

/* Loads config_path, applies the n_overrides "SECTION.KEY=VALUE" texts
 * (overrides may be NULL when n_overrides is 0) and builds the pipeline.
 * Config errors are KMS_ERR_CONFIG naming file, line and SECTION.KEY.
 * *out is NULL on error. A section that pipeline.stages does not list is
 * a warning on stderr, as for `kmseg run`. */
kms_status kmseg_pipeline_open(kmseg_pipeline **out, const char *config_path,
                               const char *const *overrides,
                               size_t n_overrides, kms_error *err);

/* Frees the handle and the products of its last run; NULL is a no-op. */
void kmseg_pipeline_close(kmseg_pipeline *pl);

/* Runs every stage on one input: an image file, a NIfTI volume, or a DICOM
 * file or folder holding one series (relative paths start at the current
 * folder). Products go to output_dir, or to pipeline.output (relative to
 * the config's folder) when it is NULL; the folder is made if missing.
 * Compressed DICOM is decoded in a child process: a program that sets
 * SIGCHLD to SIG_IGN makes those slices fail. */
kms_status kmseg_pipeline_run_file(kmseg_pipeline *pl, const char *input_path,
                                   const char *output_dir, kms_error *err);

/* Runs the stages after read on a copy of img, taken as what read would
 * have left: a 2-D image of 1, 3 (BGR) or 4 channels; one channel deeper
 * than 8 bits counts as CT in HU, as for files. stem names the products and
 * fills {stem} in config paths (NULL: "image"). output_dir as above; it is
 * only made when the pipeline has a write stage. */
kms_status kmseg_pipeline_run_image(kmseg_pipeline *pl, const kms_image *img,
                                    const char *stem, const char *output_dir,
                                    kms_error *err);

/* --- the products of the last successful run ---------------------------- */

/* K and the within-cluster sum of squares of the kmeans stage; 0 and a
 * negative wcss when the pipeline has none or nothing has run. */
int kmseg_pipeline_k(const kmseg_pipeline *pl);
double kmseg_pipeline_wcss(const kmseg_pipeline *pl);

/* The k x dims cluster centres (centre 0 the darkest), or NULL; *dims gets
 * the number of features (may be NULL). Valid until the next run. */
const float *kmseg_pipeline_centers(const kmseg_pipeline *pl, int *dims);

/* Dice and IoU of the evaluate stage: 1 when the last run was scored
 * against a truth mask (dice, iou may be NULL), else 0. */
int kmseg_pipeline_scores(const kmseg_pipeline *pl, double *dice, double *iou);

/* Copies into out (zeroed, or holding an image, which is freed first; free
 * the copy with kms_image_free): the mask (8-bit, 0/255, at the input's size; a
 * volume's slices stacked), the labels (32-bit signed, one per sample of
 * the k-means grid, 0 = darkest centre), the recoloured image (32-bit
 * float, the centre values). KMS_ERR_USAGE when the last run made none. */
kms_status kmseg_pipeline_mask(const kmseg_pipeline *pl, kms_image *out,
                               kms_error *err);
kms_status kmseg_pipeline_labels(const kmseg_pipeline *pl, kms_image *out,
                                 kms_error *err);
kms_status kmseg_pipeline_recolor(const kmseg_pipeline *pl, kms_image *out,
                                  kms_error *err);

/* Warnings of the last run that did not fail it ("no lung found"), "; "
 * between them; "" when none. Valid until the next run. */
const char *kmseg_pipeline_note(const kmseg_pipeline *pl);

#ifdef __cplusplus
}
#endif

#endif
