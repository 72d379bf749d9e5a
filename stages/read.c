/* read: loads one input image as OpenCV's imread would. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "opencv_c.h"
#include "stage.h"

typedef enum read_mode { READ_COLOR, READ_GRAYSCALE, READ_UNCHANGED } read_mode;

typedef struct read_params {
    int mode; /* read_mode */
} read_params;

static const char *const modes[] = {"color", "grayscale", "unchanged", NULL};

static const kms_param read_table[] = {
    {"mode", KMS_PARAM_CHOICE, "unchanged", 0, 0, modes,
     offsetof(read_params, mode),
     "color: 8-bit BGR (cv2.imread default); grayscale: 8-bit grey; "
     "unchanged: as stored (16-bit CT stays in HU). NIfTI volumes (.nii, "
     ".nii.gz) are always read as they are, in HU"},
    {0},
};

static kms_status read_prepare(const void *params, kms_link *link,
                               kms_error *err)
{
    (void)params;
    (void)err;
    link->image = true;
    return KMS_OK;
}

static int imread_flags(read_mode mode)
{
    switch (mode) {
    case READ_COLOR: return KMS_CV_IMREAD_COLOR;
    case READ_GRAYSCALE: return KMS_CV_IMREAD_GRAYSCALE;
    case READ_UNCHANGED: return KMS_CV_IMREAD_UNCHANGED;
    }
    abort();
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

/* Item i of an IFD entry's SHORT or LONG values; false when out of the
 * file or of another type. */
static bool tiff_value(const tiff_view *t, const unsigned char *entry,
                       uint32_t i, uint32_t *v)
{
    uint32_t type = le16(entry + 2), count = le32(entry + 4);
    size_t size = type == 3 ? 2 : type == 4 ? 4 : 0;
    if (!size || i >= count)
        return false;
    const unsigned char *p = entry + 8;
    if ((size_t)count * size > 4) {
        size_t off = le32(entry + 8);
        if (off > t->len || (size_t)count * size > t->len - off)
            return false;
        p = t->buf + off;
    }
    p += (size_t)i * size;
    *v = size == 2 ? le16(p) : le32(p);
    return true;
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
    tiff_view t = {buf, len};
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

/* A NIfTI volume: a stack of axial slices in HU (nifti_io.h). */
static kms_status read_volume(kms_context *ctx, kms_error *err)
{
    kms_status st = kms_nifti_read(ctx->input_path, &ctx->volume, err);
    if (st != KMS_OK)
        return st;
    kms_image_move(&ctx->image, &ctx->volume.img);
    ctx->slices = ctx->volume.nz;
    ctx->input_width = ctx->image.width;
    ctx->input_height = ctx->image.height;
    ctx->input_depth = ctx->image.depth;
    ctx->hu = true;
    ctx->display_lo = -1350;
    ctx->display_hi = 150;
    return kms_image_copy(&ctx->original, &ctx->image, err);
}

static kms_status read_run(const void *params, kms_context *ctx, kms_error *err)
{
    const read_params *p = params;
    ctx->slices = 1;
    if (kms_nifti_is_path(ctx->input_path))
        return read_volume(ctx, err);
    unsigned char *buf = NULL;
    size_t len = 0;
    kms_status st = load_file(ctx->input_path, &buf, &len, err);
    if (st == KMS_OK)
        st = check_png(ctx->input_path, buf, len, err);
    bool done = st == KMS_OK && p->mode == READ_UNCHANGED &&
                read_plain_tiff(buf, len, &ctx->image, err, &st);
    if (st == KMS_OK && !done)
        st = kms_cv_imdecode(buf, len, imread_flags((read_mode)p->mode),
                             ctx->input_path, &ctx->image, err);
    free(buf);
    if (st != KMS_OK)
        return st;
    ctx->input_width = ctx->image.width;
    ctx->input_height = ctx->image.height;
    ctx->input_depth = ctx->image.depth;
    /* signed 16-bit is how CT keeps Hounsfield units; 8-bit is a picture */
    ctx->hu = ctx->image.depth == KMS_DEPTH_S16;
    ctx->display_lo = 0;
    ctx->display_hi = ctx->image.depth == KMS_DEPTH_U8 ? 255 : 65535;
    if (ctx->hu) {
        ctx->display_lo = -1350; /* the lung window, until [window] says */
        ctx->display_hi = 150;
    }
    return kms_image_copy(&ctx->original, &ctx->image, err);
}

const kms_stage_class kms_stage_read = {
    .name = "read",
    .description = "load the input: an image (PNG, JPEG, TIFF; 8/16-bit, "
                   "1/3/4 channels) or a NIfTI volume",
    .params = read_table,
    .params_size = sizeof(read_params),
    .prepare = read_prepare,
    .run = read_run,
};
