/* Line plots a person can read (axes, ticks, labels, one marked point),
 * drawn with OpenCV into an 8-bit BGR image. */
#ifndef KMS_PLOT_H
#define KMS_PLOT_H

#include "error.h"
#include "image.h"

typedef struct kms_plot {
    const char *title;
    const char *x_label;
    const char *y_label;
    const double *x;
    const double *y;
    int n;
    int mark;          /* index of the point to mark, -1 for none */
    const char *mark_label;
} kms_plot;

/* Draws the plot into a new width x height BGR image (out is replaced). */
kms_status kms_plot_draw(const kms_plot *plot, int width, int height,
                         kms_image *out, kms_error *err);

#endif
