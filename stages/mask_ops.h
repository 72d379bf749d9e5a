/* Binary mask operations shared by the mask and lung_mask stages. Masks are
 * 1-channel 8-bit images holding 0 and 255. */
#ifndef KMS_MASK_OPS_H
#define KMS_MASK_OPS_H

#include <stdbool.h>
#include <stddef.h>
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

/* --- runs --------------------------------------------------------------------
 * A 2-D mask as horizontal runs of set pixels, optionally labelled into
 * 8-connected components. Per-component statistics and painting then cost
 * O(runs) instead of a pass over every pixel, and no label image is made. */

enum { KMS_ERODE_MAX_R = 8 };

typedef struct kms_run {
    int32_t y, x0, x1;  /* pixels x0 .. x1 - 1 of row y */
    int32_t label;      /* component 1..n (0 when not labelled) */
} kms_run;

typedef struct kms_runs {
    int width, height;
    kms_run *run;       /* raster order */
    size_t n;
    size_t *row;        /* height + 1: row y holds run[row[y] .. row[y + 1]) */
    int n_labels;
    size_t *first;      /* n_labels + 2: component c is
                           at[first[c] .. first[c + 1]) */
    size_t *at;         /* run indices by component, raster order within one */
    /* capacities, so a kms_runs reused for several masks allocates once */
    size_t cap_run, cap_row, cap_first;
    int32_t *parent;
} kms_runs;

/* What kms_runs_find looks for: runs of nonzero pixels, or of zero ones
 * (KMS_RUNS_ZERO); not labelled, or labelled into 4- or 8-connected
 * components. */
enum {
    KMS_RUNS_ZERO = 1,
    KMS_RUNS_LABEL4 = 2,
    KMS_RUNS_LABEL8 = 4
};

/* Runs of a width x height byte image whose rows lie `stride` bytes apart,
 * as `mode` says. Components are numbered by their first 2x2 block, blocks
 * in raster order: as OpenCV's connectedComponents numbers 8-connected ones
 * (so those match a labels image from it). r may hold an earlier result
 * (its buffers are reused); zero it before first use. */
kms_status kms_runs_find(kms_runs *r, const uint8_t *px, ptrdiff_t stride,
                         int width, int height, int mode, kms_error *err);
void kms_runs_free(kms_runs *r);

/* Room for `runs` runs and the row index of a width x height mask, for a
 * caller that fills r itself; r->n is set to 0. */
kms_status kms_runs_reserve(kms_runs *r, int width, int height, size_t runs,
                            kms_error *err);

/* Erosion of a mask given as runs by OpenCV's elliptic element of radius
 * R (getStructuringElement MORPH_ELLIPSE, 2R + 1 square), row by row, as
 * cv::erode gives it (what lies outside the image counts as set): the
 * intersection of rows y - R .. y + R, each shrunk by the element's
 * half-width there. */
typedef struct kms_eroder {
    int R;
    int hw[2 * KMS_ERODE_MAX_R + 1];
    int *cur;           /* the row: x0, x1 pairs, sorted */
    int *next, *buf;
} kms_eroder;

kms_status kms_eroder_init(kms_eroder *e, int width, int R, kms_error *err);
/* Row y of the erosion of r into e->cur; returns the number of intervals. */
int kms_eroder_row(kms_eroder *e, const kms_runs *r, int y);
void kms_eroder_free(kms_eroder *e);

/* A closing by OpenCV's 5x5 ellipse: `iterations` dilations, then as many
 * erosions, with OpenCV's borders (cv::morphologyEx MORPH_CLOSE), in place
 * on a 0/255 mask. On bits, 64 pixels a word: a fraction of the cost. */
kms_status kms_mask_close5(kms_image *mask, int iterations, kms_error *err);

/* Sets row bytes x0 - ox .. x1 - ox - 1 of dst (rows y - oy) to value for
 * each run of component c (c = 0: every run) that lies in dst once moved by
 * (-ox, -oy); parts outside dst are clipped. */
void kms_runs_paint(const kms_runs *r, int c, kms_image *dst, int ox, int oy,
                    uint8_t value);

#endif
