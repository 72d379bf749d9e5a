/* reshape: turns the image into k-means samples, as the notebook's
 * cvtColor → resize → float32(img) / 255 → reshape(-1, channels). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "opencv_c.h"
#include "stage.h"

typedef enum features { FEATURES_INTENSITY, FEATURES_COLOR } features;

typedef struct reshape_params {
    int width;
    int height;
    double scale;
    int interpolation;
    int features;
    kms_ratio value_scale;
} reshape_params;

/* The values are cv::resize's (static_asserts in opencv_c.cpp). */
static const kms_choice interpolations[] = {
    {"nearest", KMS_CV_INTER_NEAREST}, {"linear", KMS_CV_INTER_LINEAR},
    {"cubic", KMS_CV_INTER_CUBIC},     {"area", KMS_CV_INTER_AREA},
    {"lanczos4", KMS_CV_INTER_LANCZOS4}, {NULL, 0}};
static const kms_choice feature_names[] = {{"intensity", FEATURES_INTENSITY},
                                           {"color", FEATURES_COLOR},
                                           {NULL, 0}};

/* The largest resized slice: 8192 x 8192, 256 MiB of float samples a
 * channel. Beyond it a typo (width = 65536) would ask for tens of GiB. */
#define MAX_SLICE_PIXELS (8192.0 * 8192.0)

static const kms_param reshape_table[] = {
    {"width", KMS_PARAM_INT, "0", 0, 65536, NULL,
     offsetof(reshape_params, width),
     "resize to this width (0: keep; set with height; width x height at "
     "most 8192 x 8192)"},
    {"height", KMS_PARAM_INT, "0", 0, 65536, NULL,
     offsetof(reshape_params, height),
     "resize to this height (0: keep; set with width)"},
    {"scale", KMS_PARAM_DOUBLE, "0", 0, 64, NULL,
     offsetof(reshape_params, scale),
     "resize by this factor instead (0: off; the result at most 8192 x "
     "8192 pixels a slice)"},
    {"interpolation", KMS_PARAM_CHOICE, "linear", 0, 0, interpolations,
     offsetof(reshape_params, interpolation),
     "cv::resize interpolation (linear is cv2.resize's default)"},
    {"features", KMS_PARAM_CHOICE, "intensity", 0, 0, feature_names,
     offsetof(reshape_params, features),
     "intensity: one value per pixel (colour is converted with "
     "cvtColor BGR2GRAY first); color: B, G, R per pixel"},
    {"value_scale", KMS_PARAM_RATIO, "1", 1e-12, 1e12, NULL,
     offsetof(reshape_params, value_scale),
     "sample = float32(pixel) * a / b; 1/255 as in the notebook"},
    {0},
};

static kms_status reshape_prepare(const void *params, kms_link *link,
                                  kms_error *err)
{
    const reshape_params *p = params;
    if (!link->image.present)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                             "reshape needs an image: put read before it");
    if ((p->width == 0) != (p->height == 0))
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0,
                             p->width ? "height" : "width",
                             "set both width and height, or neither");
    if (p->width && p->scale > 0)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "scale",
                             "give either width/height or scale, not both");
    if ((double)p->width * p->height > MAX_SLICE_PIXELS)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "width",
                             "%d x %d is more than 8192 x 8192 pixels a slice",
                             p->width, p->height);
    bool color = p->features == FEATURES_COLOR;
    if (color && !(link->image.channels & (KMS_CHANNELS_3 | KMS_CHANNELS_4)))
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "features",
                             "color needs a colour image, but read.mode = "
                             "grayscale gives one channel: set read.mode = "
                             "color or unchanged, or features = intensity");
    link->samples.present = true;
    link->samples.dims = color ? 3 : 1;
    link->samples.per_slice = (long)p->width * p->height;
    link->samples.value = p->value_scale;
    return KMS_OK;
}

static kms_status to_features(const reshape_params *p, kms_image *img,
                              kms_error *err)
{
    if (p->features == FEATURES_INTENSITY) {
        if (img->channels == 3)
            return kms_cv_cvt_color(img, img, KMS_CV_BGR2GRAY, err);
        if (img->channels == 4)
            return kms_cv_cvt_color(img, img, KMS_CV_BGRA2GRAY, err);
        return KMS_OK;
    }
    if (img->channels == 1)
        return kms_error_set(err, KMS_ERR_INPUT, NULL, 0, "reshape.features",
                             "features = color needs a colour image, this "
                             "one has one channel (use read mode = color)");
    if (img->channels == 4)
        return kms_cv_cvt_color(img, img, KMS_CV_BGRA2BGR, err);
    return KMS_OK;
}

/* One row of pixels to samples: float32 multiply then divide, bit-equal to
 * numpy's float32(img) / 255. One loop per depth, so it vectorises. */
#define ROW_TO_SAMPLES(type)                                                   \
    static void samples_##type(const type *v, size_t n, float num, float den, \
                               float *out)                                     \
    {                                                                          \
        for (size_t i = 0; i < n; i++)                                         \
            out[i] = (float)v[i] * num / den;                                  \
    }
ROW_TO_SAMPLES(uint8_t)
ROW_TO_SAMPLES(int16_t)
ROW_TO_SAMPLES(uint16_t)
ROW_TO_SAMPLES(int32_t)
ROW_TO_SAMPLES(float)
#undef ROW_TO_SAMPLES

static void row_to_samples(const kms_image *img, int y, float num, float den,
                           float *out)
{
    const void *r = kms_image_row(img, y);
    size_t n = (size_t)img->width * (size_t)img->channels;
    switch (img->depth) {
    case KMS_DEPTH_U8: samples_uint8_t(r, n, num, den, out); return;
    case KMS_DEPTH_S16: samples_int16_t(r, n, num, den, out); return;
    case KMS_DEPTH_U16: samples_uint16_t(r, n, num, den, out); return;
    case KMS_DEPTH_S32: samples_int32_t(r, n, num, den, out); return;
    case KMS_DEPTH_F32: samples_float(r, n, num, den, out); return;
    }
    abort();
}

static kms_status to_samples(const reshape_params *p, kms_context *ctx,
                             kms_error *err)
{
    const kms_image *img = &ctx->image;
    size_t n = (size_t)img->width * (size_t)img->height;
    float *s = malloc(n * (size_t)img->channels * sizeof *s);
    if (!s)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                             "cannot allocate %zu samples", n);
    /* float32 multiply then divide: bit-equal to numpy's float32(img) / 255 */
    const float num = (float)p->value_scale.num, den = (float)p->value_scale.den;
    size_t row = (size_t)img->width * (size_t)img->channels;
    for (int y = 0; y < img->height; y++)
        row_to_samples(img, y, num, den, s + (size_t)y * row);
    free(ctx->samples);
    free(ctx->sample_valid);
    ctx->sample_valid = NULL;
    ctx->samples = s;
    ctx->n_samples = n;
    ctx->dims = img->channels;
    ctx->sample_width = img->width;
    ctx->sample_height = img->height;
    ctx->value_num = num;
    ctx->value_den = den;
    return KMS_OK;
}

static kms_status resize_slice(const kms_image *src, kms_image *dst, void *arg,
                               kms_error *err)
{
    const reshape_params *p = arg;
    if (p->width)
        return kms_cv_resize(src, dst, p->width, p->height, 0, 0,
                             p->interpolation, err);
    return kms_cv_resize(src, dst, 0, 0, p->scale, p->scale, p->interpolation,
                         err);
}

static kms_status resize_nearest(const kms_image *src, kms_image *dst,
                                 void *arg, kms_error *err)
{
    const kms_image *to = arg;
    return kms_cv_resize(src, dst, to->width, to->height, 0, 0,
                         KMS_CV_INTER_NEAREST, err);
}

/* Which samples are real pixels, not padding (window stage): k-means
 * leaves the others out. */
static kms_status valid_samples(const reshape_params *p, kms_context *ctx,
                                int slices, kms_error *err)
{
    (void)p;
    kms_image resized = {0}, slice_size = {0};
    const kms_image *valid = &ctx->valid;
    kms_status st = KMS_OK;
    slice_size.width = ctx->sample_width;
    slice_size.height = ctx->sample_height / slices;
    if (valid->width != ctx->sample_width ||
        valid->height != ctx->sample_height) {
        st = kms_image_copy(&resized, valid, err);
        if (st == KMS_OK)
            st = kms_map_slices(&resized, slices, resize_nearest, &slice_size,
                                err);
        valid = &resized;
    }
    uint8_t *flags = st == KMS_OK ? malloc(ctx->n_samples) : NULL;
    if (st == KMS_OK && !flags)
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    for (int y = 0; st == KMS_OK && y < valid->height; y++)
        memcpy(flags + (size_t)y * (size_t)valid->width, kms_image_row(valid, y),
               (size_t)valid->width);
    if (st == KMS_OK)
        ctx->sample_valid = flags;
    kms_image_free(&resized);
    return st;
}

static kms_status reshape_run(const void *params, kms_context *ctx,
                              kms_error *err)
{
    const reshape_params *p = params;
    kms_image *img = &ctx->image;
    int slices = ctx->slices > 1 ? ctx->slices : 1;
    kms_status st = kms_context_keep_original(ctx, err);
    if (st == KMS_OK)
        st = to_features(p, img, err);
    if (st != KMS_OK)
        return st;
    bool resize = p->width ? p->width != img->width || p->height * slices != img->height
                           : p->scale > 0 && p->scale != 1;
    double rows = (double)img->height / slices;
    if (resize && !p->width &&
        (double)img->width * p->scale * rows * p->scale > MAX_SLICE_PIXELS)
        return kms_error_set(err, KMS_ERR_INPUT, NULL, 0, "reshape.scale",
                             "%g x %d x %.0f is more than 8192 x 8192 pixels "
                             "a slice",
                             p->scale, img->width, rows);
    if (resize)
        st = kms_map_slices(img, slices, resize_slice, (void *)p, err);
    if (st != KMS_OK)
        return st;
    st = to_samples(p, ctx, err);
    if (st == KMS_OK && ctx->valid.data)
        st = valid_samples(p, ctx, slices, err);
    return st;
}

const kms_stage_class kms_stage_reshape = {
    .name = "reshape",
    .description = "resize and turn pixels into k-means samples "
                   "(intensity or colour, scaled)",
    .params = reshape_table,
    .params_size = sizeof(reshape_params),
    .prepare = reshape_prepare,
    .run = reshape_run,
};
