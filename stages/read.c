/* read: loads one input image as OpenCV's imread would. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "image_file.h"
#include "opencv_c.h"
#include "read_dicom.h"
#include "stage.h"

/* The modes are imread's flags. */
typedef enum read_mode {
    READ_COLOR = KMS_CV_IMREAD_COLOR,
    READ_GRAYSCALE = KMS_CV_IMREAD_GRAYSCALE,
    READ_UNCHANGED = KMS_CV_IMREAD_UNCHANGED
} read_mode;

typedef struct read_params {
    int mode; /* read_mode */
    char slope[KMS_STR_MAX];     /* "": from the file, else 1 */
    char intercept[KMS_STR_MAX]; /* "": from the file, else 0 */
    char spacing[KMS_STR_MAX];   /* "": from the file, else unknown */
} read_params;

static const kms_choice modes[] = {{"color", READ_COLOR},
                                   {"grayscale", READ_GRAYSCALE},
                                   {"unchanged", READ_UNCHANGED},
                                   {NULL, 0}};

static const kms_param read_table[] = {
    {"mode", KMS_PARAM_CHOICE, "unchanged", 0, 0, modes,
     offsetof(read_params, mode),
     "color: 8-bit BGR (cv2.imread default); grayscale: 8-bit grey; "
     "unchanged: as stored (CT in 16/32-bit integers or floats keeps its "
     "values; 32-bit integers become 16-bit when they fit). NIfTI volumes "
     "(.nii, .nii.gz) are always read as they are, in HU"},
    {"slope", KMS_PARAM_STRING, "", 0, 0, NULL, offsetof(read_params, slope),
     "value = stored * slope + intercept, for images that store CT in other "
     "units; empty: the file's own rescale (NIfTI scl_slope, DICOM "
     "RescaleSlope), else 1. When "
     "slope or intercept is set the image holds the rescaled values (16-bit "
     "signed if all are integers that fit, else float) and counts as HU; "
     "NIfTI and DICOM: applied after the header's own rescale"},
    {"intercept", KMS_PARAM_STRING, "", 0, 0, NULL,
     offsetof(read_params, intercept),
     "added after slope, e.g. -1024 for CT stored as HU + 1024 in unsigned "
     "16-bit; empty: the file's own (NIfTI scl_inter, DICOM "
     "RescaleIntercept), else 0"},
    {"spacing", KMS_PARAM_STRING, "", 0, 0, NULL,
     offsetof(read_params, spacing),
     "mm per pixel of 2-D images: one number (square pixels) or x,y, each "
     "above 0 and at most 100; empty: from the file (TIFF XResolution/"
     "YResolution in pixels per inch or cm, when 0.05-5 mm and not a "
     "software default of 72, 96, 150, 200 or 300 dpi), else unknown. Wins "
     "over the file's"},
    {0},
};

/* read.slope and read.intercept; *set false when neither is given. Errors
 * name the key (the runner adds the section and the config line). */
static kms_status parse_rescale(const read_params *p, double *slope,
                                double *intercept, bool *set, kms_error *err)
{
    *slope = 1;
    *intercept = 0;
    *set = p->slope[0] || p->intercept[0];
    if (p->slope[0] && !kms_param_number(p->slope, slope))
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "slope",
                             "'%s' is not a number", p->slope);
    if (p->slope[0] && *slope == 0)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "slope",
                             "0 would make every value the intercept");
    if (p->intercept[0] && !kms_param_number(p->intercept, intercept))
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "intercept",
                             "'%s' is not a number", p->intercept);
    return KMS_OK;
}

enum { SPACING_MAX_MM = 100 };

/* read.spacing: "0.7" or "0.7, 0.7" (x, y) into mm (0, 0: not given). */
static kms_status parse_spacing(const read_params *p, double mm[2],
                                kms_error *err)
{
    mm[0] = mm[1] = 0;
    if (!p->spacing[0])
        return KMS_OK;
    char text[KMS_STR_MAX];
    snprintf(text, sizeof text, "%s", p->spacing);
    int n = 0;
    for (char *item = text, *next; item; item = next, n++) {
        next = strchr(item, ',');
        if (next)
            *next++ = '\0';
        double v;
        if (n == 2 || !kms_param_number(item, &v) || !(v > 0) ||
            v > SPACING_MAX_MM)
            return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "spacing",
                                 "'%s' is not a pixel size: one number or "
                                 "x,y in mm, each in (0, %d]",
                                 p->spacing, SPACING_MAX_MM);
        mm[n] = v;
    }
    if (n == 1)
        mm[1] = mm[0];
    return KMS_OK;
}

typedef struct read_options {
    double slope, intercept;
    bool rescale;     /* slope or intercept given */
    double mm[2];     /* spacing; 0: not given */
} read_options;

static kms_status parse_options(const read_params *p, read_options *o,
                                kms_error *err)
{
    kms_status st =
        parse_rescale(p, &o->slope, &o->intercept, &o->rescale, err);
    return st == KMS_OK ? parse_spacing(p, o->mm, err) : st;
}

/* Volumes (NIfTI, DICOM series) are read as stored, in HU, whatever the
 * mode; the mode says what the config expects of its image files. */
static kms_status read_prepare(const void *params, kms_link *link,
                               kms_error *err)
{
    const read_params *p = params;
    read_options o;
    kms_status st = parse_options(p, &o, err);
    if (st != KMS_OK)
        return st;
    if (o.rescale && p->mode == READ_COLOR)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0,
                             p->slope[0] ? "slope" : "intercept",
                             "a rescale needs one channel, but mode = color "
                             "gives three: set mode = unchanged or grayscale");
    link->image.present = true;
    link->image.channels = p->mode == READ_COLOR       ? KMS_CHANNELS_3
                           : p->mode == READ_GRAYSCALE ? KMS_CHANNELS_1
                                                       : KMS_CHANNELS_ANY;
    link->image.depths = p->mode == READ_UNCHANGED
                             ? KMS_DEPTHS_ANY
                             : KMS_DEPTH_BIT(KMS_DEPTH_U8);
    link->image.units = p->mode == READ_UNCHANGED ? KMS_UNITS_AS_STORED
                                                  : KMS_UNITS_PICTURE;
    if (o.rescale) {
        link->image.depths = KMS_DEPTH_BIT(KMS_DEPTH_S16) |
                             KMS_DEPTH_BIT(KMS_DEPTH_F32);
        link->image.units = KMS_UNITS_HU;
    }
    link->spacing = o.mm[0] > 0;
    link->shapes = KMS_SHAPE_SLICE | KMS_SHAPE_VOLUME;
    return KMS_OK;
}

/* value = stored * slope + intercept, computed in double: S16 when every
 * value is an integer that fits, else F32. */
static kms_status rescale(kms_image *img, double slope, double intercept,
                          kms_error *err)
{
    kms_image f = {0};
    kms_status st = kms_cv_convert(img, &f, KMS_DEPTH_F32, 1, 0, err);
    bool s16 = true;
    for (int y = 0; st == KMS_OK && y < f.height; y++) {
        float *r = kms_image_row(&f, y);
        for (int x = 0; x < f.width; x++) {
            double v = (double)r[x] * slope + intercept;
            s16 = s16 && v == rint(v) && v >= INT16_MIN && v <= INT16_MAX;
            r[x] = (float)v;
        }
    }
    if (st == KMS_OK && s16)
        st = kms_cv_convert(&f, img, KMS_DEPTH_S16, 1, 0, err);
    else if (st == KMS_OK)
        kms_image_move(img, &f);
    kms_image_free(&f);
    return st;
}

/* What read.slope, read.intercept and read.spacing say, on the decoded
 * image (before the copy kept as read). */
static kms_status apply_options(const read_params *p, kms_context *ctx,
                                kms_error *err)
{
    read_options o;
    kms_status st = parse_options(p, &o, err);
    if (st != KMS_OK)
        return st;
    if (o.mm[0] > 0 && ctx->slices <= 1) {
        ctx->pixel_mm[0] = o.mm[0];
        ctx->pixel_mm[1] = o.mm[1];
    }
    /* 32-bit integers (no filter of OpenCV takes them) become S16 when
     * they fit, else F32, as a rescale by 1 and 0 gives */
    bool s32 = ctx->image.depth == KMS_DEPTH_S32 && ctx->image.channels == 1;
    if (!o.rescale && !s32)
        return KMS_OK;
    if (ctx->image.channels != 1)
        return kms_error_set(err, KMS_ERR_INPUT, ctx->input_path, 0,
                             p->slope[0] ? "read.slope" : "read.intercept",
                             "a rescale needs one channel (read.mode = "
                             "unchanged or grayscale); this image has %d",
                             ctx->image.channels);
    st = rescale(&ctx->image, o.slope, o.intercept, err);
    if (st != KMS_OK)
        return st;
    ctx->input_depth = ctx->image.depth;
    if (o.rescale)
        kms_context_claim_hu(ctx);
    return KMS_OK;
}

/* A NIfTI volume: a stack of axial slices in HU (nifti_io.h). */
static kms_status read_volume(kms_context *ctx, kms_error *err)
{
    kms_status st = kms_nifti_read(ctx->input_path, ctx->max_pixels, &ctx->volume, err);
    if (st != KMS_OK)
        return st;
    kms_image_move(&ctx->image, &ctx->volume.img);
    ctx->slices = ctx->volume.nz;
    kms_context_claim_hu(ctx);
    return KMS_OK;
}

/* An image file, as OpenCV's imread would give it. */
static kms_status read_image(const read_params *p, kms_context *ctx,
                             kms_error *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    kms_status st = kms_file_load(ctx->input_path, &buf, &len, err);
    if (st == KMS_OK)
        st = kms_image_file_check(ctx->input_path, buf, len, err);
    if (st == KMS_OK)
        st = kms_image_file_check_size(ctx->input_path, buf, len,
                                       ctx->max_pixels, err);
    bool done = st == KMS_OK && p->mode == READ_UNCHANGED &&
                kms_tiff_read_plain(buf, len, &ctx->image, err, &st);
    if (st == KMS_OK && !done)
        st = kms_cv_imdecode(buf, len, p->mode,
                             ctx->input_path, &ctx->image, err);
    if (st == KMS_OK)
        kms_tiff_pixel_mm(buf, len, ctx->pixel_mm);
    free(buf);
    /* formats whose header kmseg does not read (PNM, WebP, ...): after
     * decoding, within OpenCV's own limit of 2^30 pixels */
    if (st == KMS_OK && (size_t)ctx->image.width * (size_t)ctx->image.height >
                            kms_max_pixels(ctx->max_pixels))
        st = kms_error_set(err, KMS_ERR_INPUT, ctx->input_path, 0, NULL,
                           "%d x %d pixels are more than the limit of %zu "
                           "(--max-pixels)",
                           ctx->image.width, ctx->image.height,
                           kms_max_pixels(ctx->max_pixels));
    if (st != KMS_OK)
        return st;
    /* one channel deeper than 8 bits is CT and claims HU (kms_check_hu
     * tests the claim where it matters); 8-bit is a picture */
    ctx->hu = false;
    ctx->display_lo = 0;
    ctx->display_hi = ctx->image.depth == KMS_DEPTH_U8 ? 255 : 65535;
    if (ctx->image.channels == 1 && ctx->image.depth != KMS_DEPTH_U8)
        kms_context_claim_hu(ctx);
    return KMS_OK;
}

static kms_status read_run(const void *params, kms_context *ctx, kms_error *err)
{
    const read_params *p = params;
    ctx->slices = 1;
    kms_status st = kms_read_is_dicom(ctx)             ? kms_read_dicom(ctx, err)
                    : kms_nifti_is_path(ctx->input_path) ? read_volume(ctx, err)
                                                         : read_image(p, ctx, err);
    if (st != KMS_OK)
        return st;
    /* as read; apply_options updates the depth when it rescales */
    ctx->input_width = ctx->image.width;
    ctx->input_height = ctx->image.height;
    ctx->input_depth = ctx->image.depth;
    /* the image as read: stages that change ctx->image keep a copy in
     * ctx->original first (kms_context_keep_original) */
    kms_image_free(&ctx->original);
    return apply_options(p, ctx, err);
}

const kms_stage_class kms_stage_read = {
    .name = "read",
    .description = "load the input: an image (PNG, JPEG, TIFF; 8/16/32-bit "
                   "integer or float, 1/3/4 channels) or a NIfTI volume",
    .params = read_table,
    .params_size = sizeof(read_params),
    .prepare = read_prepare,
    .run = read_run,
};
