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

/* Sets every 0-pixel not reachable from the border (4-connected) to 255. */
kms_status kms_mask_fill_holes(kms_image *mask, kms_error *err);

/* Opening or closing with a disk of the given radius (0: nothing). */
kms_status kms_mask_open(kms_image *mask, int radius, kms_error *err);
kms_status kms_mask_close(kms_image *mask, int radius, kms_error *err);

/* Component filter: keeps 8-connected components with at least min_area
 * pixels; drop_border removes those touching the image edge; keep > 0 keeps
 * only that many largest. *kept gets the number kept (may be NULL). */
kms_status kms_mask_filter_components(kms_image *mask, long min_area,
                                      bool drop_border, int keep, int *kept,
                                      kms_error *err);

/* Number of 255 pixels. */
long kms_mask_area(const kms_image *mask);

/* Resizes to width x height with nearest neighbour (no new values). */
kms_status kms_mask_resize(kms_image *mask, int width, int height,
                           kms_error *err);

#endif
