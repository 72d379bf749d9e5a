/* read: loads one input image as OpenCV's imread would. */
#include <errno.h>
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
    if (st == KMS_OK)
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
