/* Everything the stages know about the one input they are working on.
 * The runner creates it per input and frees it after; stages read what the
 * earlier ones left and add their own results. */
#ifndef KMS_CONTEXT_H
#define KMS_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "nifti_io.h"

/* Values of kms_context.lungs (lungmask's convention). */
enum { KMS_LUNG_RIGHT = 1, KMS_LUNG_LEFT = 2 };

/* Products a write stage can emit, as bits (the order of write.products). */
enum {
    KMS_PRODUCT_RECOLOR = 1u << 0,     /* {stem}_recolor.png, 8-bit */
    KMS_PRODUCT_LABELS = 1u << 1,      /* {stem}_labels.png, label index */
    KMS_PRODUCT_RECOLOR_RAW = 1u << 2, /* {stem}_recolor.tif, 32-bit float */
    KMS_PRODUCT_MASK = 1u << 3,        /* {stem}_mask.png, 0/255 */
    KMS_PRODUCT_OVERLAY = 1u << 4,     /* {stem}_overlay.png */
    KMS_PRODUCT_LUNGS = 1u << 5,       /* {stem}_lungs.png / .nii.gz:
                                          0, 1 right, 2 left */
    KMS_PRODUCT_LABELS_COLOR = 1u << 6 /* {stem}_labels_color.png */
};

#define KMS_MAX_STAGES 32

typedef struct kms_context {
    /* set by the runner */
    const char *input_path;  /* a file, or for a DICOM series its name */
    const char *const *input_files; /* a DICOM series: its files, sorted
                                       along the slice normal; NULL else */
    size_t n_input_files;
    char stem[256];          /* file name without folder and extension */
    const char *output_dir;
    const char *base_dir;    /* the config's folder: stage paths start here */
    const struct kms_file_set *inputs; /* never written over */
    uint64_t seed;           /* [pipeline] seed */
    int threads;             /* worker threads a stage may use */
    size_t max_pixels;       /* of one input (0: KMS_MAX_PIXELS_DEFAULT);
                                readers refuse more before allocating */

    /* read, denoise */
    kms_image image;         /* the working image */
    int input_width, input_height;
    kms_depth input_depth;   /* as read: 8-bit inputs recolour exactly */
    kms_image original;      /* the image as read, for overlays */
    /* Volumes are stacks of axial slices: image height = slices * rows of a
     * slice (nifti_io.h). 2-D images are one slice. */
    int slices;
    kms_volume volume;       /* NIfTI header and geometry (img unused) */
    /* 2-D images: pixel size in mm along x and y (0: unknown; read.spacing,
     * DICOM PixelSpacing or TIFF resolution tags supply it) */
    double pixel_mm[2];
    /* 2-D images: the dihedral transform (kms_orient codes, orient.h) that
     * takes the stored image to the canonical axial view (anterior at the
     * top, patient's right on the image's left), when a header says */
    int orient;
    bool orient_known;

    /* window: what the pixel values mean, and which pixels are real (0 =
     * padding outside the field of view; empty image when all are) */
    kms_image valid;
    bool hu;                 /* values claim to be Hounsfield units (CT
                                that is not an 8-bit picture) */
    bool hu_checked;         /* kms_check_hu passed on this input */
    char modality[20];       /* DICOM Modality ("" when the file has none) */
    double display_lo, display_hi; /* window for looking at the image */

    /* reshape: n x dims float samples of a sample_width x sample_height grid */
    float *samples;
    size_t n_samples;
    int dims;
    int sample_width, sample_height;
    double value_num, value_den; /* sample = pixel * num / den */
    uint8_t *sample_valid;   /* n_samples flags, NULL: all; k-means skips 0s */

    /* kmeans: canonical labels (0 = darkest centre) and k x dims centres */
    int32_t *labels;
    float *centers;
    int k;
    double wcss;
    const char *backend;     /* "opencv" or "native" */
    double ms_kmeans;

    /* recolor: sample grid, dims channels, float centre values */
    kms_image recolor;

    /* mask, lung_mask: 0/255 at the input's size */
    kms_image mask;
    /* lung_mask: the lungs by side at the input's size (U8, the stack
     * layout of mask): KMS_LUNG_RIGHT (the patient's right lung), _LEFT,
     * 0 elsewhere; nonzero exactly where mask is. Empty when no stage
     * made it. */
    kms_image lungs;
    char note[512];          /* warnings that do not fail the input
                                (e.g. "no lung found"), "; "-separated:
                                summary.csv note; kms_context_note adds */

    /* time each stage took on this input, by stage index (--stage-times) */
    double stage_ms[KMS_MAX_STAGES];

    /* evaluate */
    kms_image truth;         /* 0/255, for the overlay */
    bool evaluated;          /* dice and iou are set: mask or truth has
                                something (both empty: a note, no score) */
    double dice, iou;
    /* a truth with sides (1 right, 2 left) against lungs: [0] right, [1]
     * left, each scored where the truth or the lungs have that side */
    bool side_evaluated[2];
    double side_dice[2];
} kms_context;

/* The samples k-means clusters: all of ctx->samples, or only the valid
 * ones (padding left out), copied. */
typedef struct kms_sample_set {
    const float *x;
    size_t n;
    float *owned;  /* the copy, when one was made */
} kms_sample_set;

kms_status kms_context_sample_set(const kms_context *ctx, kms_sample_set *set,
                                  kms_error *err);
void kms_sample_set_free(kms_sample_set *set);

/* A 2-D operation from src to a new dst (as the kms_cv_* filters are). */
typedef kms_status (*kms_slice_fn)(const kms_image *src, kms_image *dst,
                                   void *arg, kms_error *err);

/* Applies fn to each of the `slices` slices of a stacked image and replaces
 * it with the stack of the results (which may be of another size or depth,
 * the same for every slice). One slice: just fn. */
kms_status kms_map_slices(kms_image *stack, int slices, kms_slice_fn fn,
                          void *arg, kms_error *err);

/* The same from src (left as it is, e.g. a view of another image) into dst
 * (freed first, on success only). */
kms_status kms_map_slices_to(const kms_image *src, int slices, kms_slice_fn fn,
                             void *arg, kms_image *dst, kms_error *err);

/* Index of the first byte of p[0 .. n) that is zero (want_zero) or
 * nonzero (n if none), eight bytes at a time: quick through the long runs
 * of masks and valid flags. */
size_t kms_scan_bytes(const uint8_t *p, size_t n, bool want_zero);

/* The image as read (before window and denoise): what overlays show and
 * lung_mask measures HU on. */
static inline const kms_image *kms_context_as_read(const kms_context *ctx)
{
    return ctx->original.data ? &ctx->original : &ctx->image;
}

/* The input is CT in HU (kms_check_hu tests the claim where it matters):
 * it is shown in the lung window until [window] says otherwise. */
static inline void kms_context_claim_hu(kms_context *ctx)
{
    ctx->hu = true;
    ctx->display_lo = -1350;
    ctx->display_hi = 150;
}

/* A stage that changes ctx->image calls this first: the image as read is
 * kept in ctx->original (once; read leaves it empty, so a pipeline that
 * never changes the image holds it once, not twice: a CT volume is
 * hundreds of MiB). */
kms_status kms_context_keep_original(kms_context *ctx, kms_error *err);

/* Adds a warning to ctx->note (after the earlier ones, "; " between),
 * printf-style; what does not fit is cut. */
void kms_context_note(kms_context *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The lungs' sizes by side ([0] the right lung, [1] the left) from
 * ctx->lungs: millilitres of a volume, square centimetres of a slice whose
 * pixel size is known (*volume says which). False when there are no lungs
 * or no known size. */
bool kms_context_lung_sizes(const kms_context *ctx, double size[2],
                            bool *volume);

/* Frees every buffer the stages left; ctx stays valid and empty. */
void kms_context_clear(kms_context *ctx);

#endif
