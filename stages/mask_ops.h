/* Binary mask operations shared by the mask and lung_mask stages. Masks are
 * 1-channel 8-bit images holding 0 and 255. */
#ifndef KMS_MASK_OPS_H
#define KMS_MASK_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "image.h"

/* 255 where the label is one of the chosen clusters (bit r of `ranks` set
 * for rank r, 0 = darkest), at the label grid's size. */
kms_status kms_mask_from_labels(const int32_t *labels, int width, int height,
                                uint64_t ranks, kms_image *mask,
                                kms_error *err);

/* Masks of volumes are stacks of `slices` slices (context.h); 2-D
 * operations (hole filling, morphology) work slice by slice, since a vessel
 * is a hole in a slice but a tube, open at its ends, in 3-D. Components are
 * 3-D. slices <= 1 means a 2-D image. */

/* Sets every 0-pixel not reachable from its slice's border (4-connected)
 * to 255. */
kms_status kms_mask_fill_holes(kms_image *mask, int slices, kms_error *err);

/* reach[i] = 1 for each 0-pixel of a 1-slice mask that is 4-connected to
 * the image border through 0-pixels (reach: width * height bytes). */
kms_status kms_mask_reach_border(const kms_image *mask, uint8_t *reach,
                                 kms_error *err);

/* Opening or closing with a disk of the given radius (0: nothing), per
 * slice. */
kms_status kms_mask_open(kms_image *mask, int slices, int radius,
                         kms_error *err);
kms_status kms_mask_close(kms_image *mask, int slices, int radius,
                          kms_error *err);

typedef struct kms_component {
    long area;          /* pixels (voxels) */
    int x0, y0, z0;     /* bounding box, inclusive; y within the slice */
    int x1, y1, z1;
    bool border;        /* touches the edge of a slice (not the scan's ends) */
    double sum;         /* of `values` over the component, when given */
} kms_component;

/* Labels the components of mask: 8-connected in 2-D, 6-connected in 3-D.
 * *labels (one int32 per pixel, 0 = background, components 1..n) and
 * *comps (n + 1 entries, [0] unused) are malloc'ed; values (may be NULL):
 * a 1-channel image of the mask's size (S16 or F32) summed per component. */
kms_status kms_mask_label(const kms_image *mask, int slices,
                          const kms_image *values, int32_t **labels,
                          kms_component **comps, int *n, kms_error *err);

/* Sets mask to 255 exactly where keep[labels[i]] is true. */
void kms_mask_keep_labels(kms_image *mask, const int32_t *labels,
                          const bool *keep);

/* Component filter: keeps components with at least min_area pixels;
 * drop_border removes those touching a slice's edge; keep > 0 keeps only
 * that many largest. *kept gets the number kept (may be NULL). */
kms_status kms_mask_filter_components(kms_image *mask, int slices,
                                      long min_area, bool drop_border, int keep,
                                      int *kept, kms_error *err);

/* Number of 255 pixels. */
long kms_mask_area(const kms_image *mask);

/* Resizes to width x height with nearest neighbour (no new values). */
kms_status kms_mask_resize(kms_image *mask, int width, int height,
                           kms_error *err);

#endif
