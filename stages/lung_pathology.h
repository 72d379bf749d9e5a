/* Dense lung against the chest wall (consolidation, juxtapleural nodules,
 * dependent lung) taken into a canonical slice's lung mask: helper of
 * lung_mask; the method and its measurements are in lung_pathology.c. */
#ifndef KMS_LUNG_PATHOLOGY_H
#define KMS_LUNG_PATHOLOGY_H

#include "error.h"
#include "image.h"
#include "mask_ops.h"

typedef struct kms_pleural_fill {
    int min_depth;     /* a bite is at least this thick (pixels) */
    double angle_lo;   /* its direction from the lung's centroid, degrees: */
    double angle_hi;   /* 0 lateral, 90 posterior, +-180 medial, -90 front */
    int bone_hu;       /* pixels at or above this are bone: never lung */
} kms_pleural_fill;

/* Per lung of sides (U8 0 / KMS_LUNG_RIGHT / KMS_LUNG_LEFT, canonical view),
 * the bites between the lung and its convex hull that face the ribs are
 * added to mask (0/255) and sides. hu: S16 of their size; outside: runs of
 * the air around the body (never added). *added: pixels added. */
kms_status kms_lung_pleural_fill(const kms_pleural_fill *p, const kms_image *hu,
                                 const kms_runs *outside, kms_image *mask,
                                 kms_image *sides, long *added,
                                 kms_error *err);

#endif
