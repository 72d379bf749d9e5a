/* The patient's right and left lung in a lung mask of one axial slice in the
 * canonical view (anterior at the top, patient's right on the image's left:
 * radiological display). Helper of lung_mask. */
#ifndef KMS_LUNG_SIDES_H
#define KMS_LUNG_SIDES_H

#include <stdint.h>

#include "error.h"
#include "image.h"

/* sides (U8, the mask's size, allocated) gets KMS_LUNG_RIGHT (1) or
 * KMS_LUNG_LEFT (2) exactly where mask (U8) is nonzero, 0 elsewhere.
 * xmid: the body's mid-line column. A component lies on the side of its
 * centroid, but one with a fair share of its pixels on both sides of xmid
 * (lungs touching at the anterior or posterior junction) is split along
 * its narrowest neck: cores left by eroding it (levels of its distance to
 * the background) until two large parts lie on either side, then grown
 * back through the component, each pixel to the core it is nearer to
 * inside the mask. */
kms_status kms_lung_sides(const kms_image *mask, double xmid, kms_image *sides,
                          kms_error *err);

/* Chamfer (3-4) distance of each nonzero byte of in (w x h, rows w apart,
 * the outermost rows and columns all 0) to the nearest 0, into d: three
 * per pixel straight, four diagonally. */
void kms_chamfer34(const uint8_t *in, int32_t *d, int w, int h);

#endif
