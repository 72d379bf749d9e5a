/* Lungs of a CT volume in 3-D (a helper of the lung_mask stage): one
 * threshold for the volume, outside air per slice, candidates as 3-D
 * components, the trachea and main bronchi followed down from the top and
 * cut out, lungs told apart from gas by 3-D rules, then per slice and side
 * the rib-side hull, a closing and hole filling. Design, measurements and
 * limits: the header of lung_volume.c. */
#ifndef KMS_LUNG_VOLUME_H
#define KMS_LUNG_VOLUME_H

#include <stdbool.h>

#include "error.h"
#include "image.h"

typedef struct kms_lung_volume_params {
    double threshold;    /* fixed HU level, or NaN: from the 2-means */
    double boundary;     /* where the edge lies from dark to bright centre */
    double smooth_sigma; /* Gaussian sigma in reference pixels (0: none) */
    double fov_min;      /* HU at or below: padding, taken as air */
    double posterior;    /* a lung reaches this far back in the body */
    double min_contrast; /* lungs are this many HU denser than outside air */
    double min_volume;   /* pieces below this fraction of the largest lung */
    int close;           /* closing radius in reference pixels */
    double reference_mm; /* the pixel size `close` and the sigma are in */
    double airway_hu;    /* the trachea is grown through voxels below it */
    bool rib_hull;       /* take in the rib side of each lung's hull */
} kms_lung_volume_params;

typedef struct kms_lung_volume_info {
    double T;          /* the threshold used, HU */
    double air_ref;    /* median HU of outside air */
    long lung_voxels;  /* in the mask */
    long airway_voxels;/* cut out as trachea and bronchi */
    int slices_found;  /* slices with lung */
    int split_slices;  /* slices where one piece held both lungs */
} kms_lung_volume_info;

/* hu: S16 stack of nz canonical slices (nifti_io.h: x towards the
 * patient's left, y towards posterior, z towards superior); voxel_mm along
 * x, y, z (0: unknown, taken as a 358 mm field of view in x). mask gets
 * 0/255 and lungs 0 / KMS_LUNG_RIGHT / KMS_LUNG_LEFT (U8, hu's size; both
 * overwritten, not freed). info (may be NULL) says what was found; no lung
 * is not an error (empty mask, info->slices_found = 0). */
kms_status kms_lung_volume(const kms_image *hu, int nz,
                           const double voxel_mm[3],
                           const kms_lung_volume_params *p, kms_image *mask,
                           kms_image *lungs, kms_lung_volume_info *info,
                           kms_error *err);

#endif
