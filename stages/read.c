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

/* Reads the whole file: one read for the decoder, and room to look at the
 * bytes first. */
static kms_status load_file(const char *path, unsigned char **buf, size_t *len,
                            kms_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return kms_error_set(err, KMS_ERR_IO, path, 0, NULL, "%s",
                             strerror(errno));
    kms_status st = KMS_OK;
    unsigned char *data = NULL;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = kms_error_set(err, KMS_ERR_IO, path, 0, NULL, "not a regular file");
        goto out;
    }
    size_t size = (size_t)sb.st_size;
    data = malloc(size ? size : 1);
    if (!data) {
        st = kms_error_set(err, KMS_ERR_NOMEM, path, 0, NULL,
                           "cannot hold %zu bytes", size);
        goto out;
    }
    if (fread(data, 1, size, f) != size) {
        st = kms_error_set(err, KMS_ERR_IO, path, 0, NULL, "read failed: %s",
                           strerror(errno));
        goto out;
    }
    *buf = data;
    *len = size;
    data = NULL;
out:
    free(data);
    fclose(f);
    return st;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

/* Walks a PNG's chunk headers up to IEND. libpng only notices a cut file
 * deep in decoding, and then prints its own message to stderr; this names
 * the problem in one line instead. */
static kms_status check_png(const char *path, const unsigned char *buf,
                            size_t len, kms_error *err)
{
    static const unsigned char signature[8] = {0x89, 'P', 'N', 'G',
                                               '\r', '\n', 0x1a, '\n'};
    if (len < 8 || memcmp(buf, signature, 8) != 0)
        return KMS_OK; /* not a PNG: the decoder decides */
    size_t pos = 8;
    while (pos + 12 <= len) {
        size_t chunk = 12 + (size_t)be32(buf + pos);
        if (chunk > len - pos)
            break;
        if (memcmp(buf + pos + 4, "IEND", 4) == 0)
            return KMS_OK;
        pos += chunk;
    }
    return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                         "truncated PNG: the file ends at byte %zu before its "
                         "last chunk (IEND)",
                         len);
}

/* --- uncompressed CT TIFF ----------------------------------------------------
 * CT slices are usually plain TIFFs: little-endian, uncompressed, one
 * signed 16-bit sample per pixel in strips. Those are copied out here, the
 * same pixels libtiff would give, at a fraction of its set-up cost; any
 * other TIFF (or anything unexpected in this one) goes to OpenCV. */

typedef struct tiff_view {
    const unsigned char *buf;
    size_t len;
    bool big; /* "MM": big-endian (the plain layout is little-endian) */
} tiff_view;

static uint32_t le16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint32_t tiff_u16(const tiff_view *t, const unsigned char *p)
{
    return t->big ? (uint32_t)p[0] << 8 | (uint32_t)p[1] : le16(p);
}

static uint32_t tiff_u32(const tiff_view *t, const unsigned char *p)
{
    return t->big ? be32(p) : le32(p);
}

/* Item i of an IFD entry's SHORT or LONG values; false when out of the
 * file or of another type. */
static bool tiff_value(const tiff_view *t, const unsigned char *entry,
                       uint32_t i, uint32_t *v)
{
    uint32_t type = tiff_u16(t, entry + 2), count = tiff_u32(t, entry + 4);
    size_t size = type == 3 ? 2 : type == 4 ? 4 : 0;
    if (!size || i >= count)
        return false;
    const unsigned char *p = entry + 8;
    if ((size_t)count * size > 4) {
        size_t off = tiff_u32(t, entry + 8);
        if (off > t->len || (size_t)count * size > t->len - off)
            return false;
        p = t->buf + off;
    }
    p += (size_t)i * size;
    *v = size == 2 ? tiff_u16(t, p) : tiff_u32(t, p);
    return true;
}

/* An IFD entry's one RATIONAL value; 0 when it is not one. */
static double tiff_rational(const tiff_view *t, const unsigned char *entry)
{
    if (tiff_u16(t, entry + 2) != 5 || tiff_u32(t, entry + 4) != 1)
        return 0;
    size_t off = tiff_u32(t, entry + 8);
    if (off > t->len || t->len - off < 8)
        return 0;
    uint32_t num = tiff_u32(t, t->buf + off);
    uint32_t den = tiff_u32(t, t->buf + off + 4);
    return den ? (double)num / den : 0;
}

/* A pixel size from the resolution tags is believed within this range (a
 * CT pixel is 0.3-1 mm), and not when it is a software's default. */
#define TIFF_MM_MIN 0.05
#define TIFF_MM_MAX 5.0

static bool plausible_mm(double mm)
{
    static const double defaults_dpi[] = {72, 96, 150, 200, 300};
    for (size_t i = 0; i < sizeof defaults_dpi / sizeof *defaults_dpi; i++)
        if (fabs(mm - 25.4 / defaults_dpi[i]) < 1e-3)
            return false;
    return mm >= TIFF_MM_MIN && mm <= TIFF_MM_MAX;
}

/* mm per pixel (x, y) from the first IFD's XResolution, YResolution (282,
 * 283; y defaults to x) and ResolutionUnit (296: 2 inch, TIFF's default,
 * or 3 cm); both 0 unless the file is a TIFF saying so plausibly. */
static void tiff_pixel_mm(const unsigned char *buf, size_t len, double mm[2])
{
    tiff_view t = {buf, len, len >= 4 && memcmp(buf, "MM\0*", 4) == 0};
    mm[0] = mm[1] = 0;
    if (len < 8 || (!t.big && memcmp(buf, "II*\0", 4) != 0))
        return;
    size_t ifd = tiff_u32(&t, buf + 4);
    if (ifd > len || len - ifd < 2)
        return;
    uint32_t n = tiff_u16(&t, buf + ifd), unit = 2;
    if ((len - ifd - 2) / 12 < n)
        return;
    double res[2] = {0, 0};
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *e = buf + ifd + 2 + 12 * (size_t)i;
        uint32_t tag = tiff_u16(&t, e);
        if (tag == 282 || tag == 283)
            res[tag - 282] = tiff_rational(&t, e);
        else if (tag == 296 && !tiff_value(&t, e, 0, &unit))
            return;
    }
    double per_unit = unit == 2 ? 25.4 : unit == 3 ? 10 : 0;
    if (!(res[1] > 0))
        res[1] = res[0];
    if (!(per_unit > 0 && res[0] > 0) || !plausible_mm(per_unit / res[0]) ||
        !plausible_mm(per_unit / res[1]))
        return;
    mm[0] = per_unit / res[0];
    mm[1] = per_unit / res[1];
}

typedef struct tiff_layout {
    uint32_t width, height, rows_per_strip;
    const unsigned char *offsets, *counts; /* IFD entries of the strips */
} tiff_layout;

/* Reads the first IFD; false unless it is the plain layout above. */
static bool tiff_plain_layout(const tiff_view *t, tiff_layout *l)
{
    if (t->len < 8 || memcmp(t->buf, "II*\0", 4) != 0)
        return false;
    size_t ifd = le32(t->buf + 4);
    if (ifd > t->len || t->len - ifd < 2)
        return false;
    uint32_t n = le16(t->buf + ifd);
    if ((t->len - ifd - 2) / 12 < n)
        return false;
    /* the tags that matter, at TIFF's defaults until given (bits and
     * photometric have none: a plain file gives them) */
    uint32_t bits = 0, compression = 1, photometric = 0, samples = 1;
    uint32_t planar = 1, format = 1, orientation = 1, predictor = 1, fill = 1;
    uint32_t prev = 0;
    bool other = false;
    memset(l, 0, sizeof *l);
    l->rows_per_strip = UINT32_MAX;
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *e = t->buf + ifd + 2 + 12 * (size_t)i;
        uint32_t tag = le16(e), v = 0;
        uint32_t *dst = NULL;
        if (tag <= prev)
            return false; /* out of order or twice: not plain */
        prev = tag;
        switch (tag) {
        case 256: dst = &l->width; break;
        case 257: dst = &l->height; break;
        case 258: dst = &bits; break;
        case 259: dst = &compression; break;
        case 262: dst = &photometric; break;
        case 266: dst = &fill; break;
        case 273: l->offsets = e; continue;
        case 274: dst = &orientation; break;
        case 277: dst = &samples; break;
        case 278: dst = &l->rows_per_strip; break;
        case 279: l->counts = e; continue;
        case 284: dst = &planar; break;
        case 317: dst = &predictor; break;
        case 322: case 323: case 324: case 325: /* tiles */
        case 338:                               /* extra samples */
            other = true;
            continue;
        case 339: dst = &format; break;
        default: continue; /* resolution, software, dates: no effect */
        }
        if (le32(e + 4) != 1 || !tiff_value(t, e, 0, &v))
            return false;
        *dst = v;
    }
    return !other && bits == 16 && compression == 1 && photometric == 1 &&
           samples == 1 && planar == 1 && format == 2 && orientation == 1 &&
           predictor == 1 && fill == 1 && l->offsets && l->counts &&
           l->width > 0 && l->height > 0 && l->width <= (1u << 16) &&
           l->height <= (1u << 16) && l->rows_per_strip > 0;
}

/* The pixels of a plain CT TIFF into out (S16); false when the file is not
 * one (nothing is allocated then). */
static bool read_plain_tiff(const unsigned char *buf, size_t len,
                            kms_image *out, kms_error *err, kms_status *st)
{
    tiff_view t = {buf, len, false};
    tiff_layout l;
    if (!tiff_plain_layout(&t, &l))
        return false;
    size_t row = (size_t)l.width * 2;
    uint32_t strips = (l.height - 1) / l.rows_per_strip + 1;
    if (le32(l.offsets + 4) != strips || le32(l.counts + 4) != strips)
        return false;
    for (uint32_t s = 0; s < strips; s++) {
        uint32_t off, count;
        uint32_t rows = l.height - s * l.rows_per_strip;
        rows = rows < l.rows_per_strip ? rows : l.rows_per_strip;
        if (!tiff_value(&t, l.offsets, s, &off) ||
            !tiff_value(&t, l.counts, s, &count) || count < rows * row ||
            off > len || len - off < rows * row)
            return false;
    }
    kms_image img = {0};
    *st = kms_image_alloc_raw(&img, (int)l.width, (int)l.height, 1,
                              KMS_DEPTH_S16, err);
    if (*st != KMS_OK)
        return true;
    for (uint32_t s = 0, y = 0; s < strips; s++) {
        uint32_t off = 0;
        tiff_value(&t, l.offsets, s, &off);
        for (uint32_t r = 0; r < l.rows_per_strip && y < l.height; r++, y++) {
            const unsigned char *p = buf + off + (size_t)r * row;
            int16_t *o = kms_image_row(&img, (int)y);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            memcpy(o, p, row);
#else
            for (uint32_t x = 0; x < l.width; x++)
                o[x] = (int16_t)le16(p + 2 * (size_t)x);
#endif
        }
    }
    kms_image_move(out, &img);
    return true;
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
    kms_status st = kms_nifti_read(ctx->input_path, &ctx->volume, err);
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
    kms_status st = load_file(ctx->input_path, &buf, &len, err);
    if (st == KMS_OK)
        st = check_png(ctx->input_path, buf, len, err);
    bool done = st == KMS_OK && p->mode == READ_UNCHANGED &&
                read_plain_tiff(buf, len, &ctx->image, err, &st);
    if (st == KMS_OK && !done)
        st = kms_cv_imdecode(buf, len, p->mode,
                             ctx->input_path, &ctx->image, err);
    if (st == KMS_OK)
        tiff_pixel_mm(buf, len, ctx->pixel_mm);
    free(buf);
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
    st = apply_options(p, ctx, err);
    return st == KMS_OK ? kms_image_copy(&ctx->original, &ctx->image, err) : st;
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
