/* denoise: smooths the working image before clustering, so k-means sees
 * tissue rather than noise. */
#include <stddef.h>
#include <stdlib.h>

#include "opencv_c.h"
#include "stage.h"

typedef enum denoise_method {
    DENOISE_NONE,
    DENOISE_GAUSSIAN,  /* cv::GaussianBlur */
    DENOISE_MEDIAN,    /* cv::medianBlur: keeps edges, kills salt noise */
    DENOISE_BILATERAL, /* cv::bilateralFilter: edge-preserving */
    DENOISE_NLMEANS    /* cv::fastNlMeansDenoising: best, slowest */
} denoise_method;

typedef struct denoise_params {
    int method;
    int ksize;
    double sigma;
    int diameter;
    double sigma_color;
    double sigma_space;
    double h;
    int template_window;
    int search_window;
} denoise_params;

static const kms_choice methods[] = {
    {"none", DENOISE_NONE},           {"gaussian", DENOISE_GAUSSIAN},
    {"median", DENOISE_MEDIAN},       {"bilateral", DENOISE_BILATERAL},
    {"nlmeans", DENOISE_NLMEANS},     {NULL, 0}};

static const kms_param denoise_table[] = {
    {"method", KMS_PARAM_CHOICE, "none", 0, 0, methods,
     offsetof(denoise_params, method), "which filter"},
    {"ksize", KMS_PARAM_INT, "5", 1, 99, NULL, offsetof(denoise_params, ksize),
     "gaussian, median: odd kernel size in pixels"},
    {"sigma", KMS_PARAM_DOUBLE, "0", 0, 100, NULL,
     offsetof(denoise_params, sigma),
     "gaussian: standard deviation (0: from ksize, as OpenCV)"},
    {"diameter", KMS_PARAM_INT, "9", 1, 50, NULL,
     offsetof(denoise_params, diameter), "bilateral: pixel neighbourhood"},
    {"sigma_color", KMS_PARAM_DOUBLE, "75", 0, 1e6, NULL,
     offsetof(denoise_params, sigma_color),
     "bilateral: how different values may be and still mix"},
    {"sigma_space", KMS_PARAM_DOUBLE, "75", 0, 1e6, NULL,
     offsetof(denoise_params, sigma_space), "bilateral: spatial reach"},
    {"h", KMS_PARAM_DOUBLE, "10", 0, 1e6, NULL, offsetof(denoise_params, h),
     "nlmeans: filter strength"},
    {"template_window", KMS_PARAM_INT, "7", 1, 99, NULL,
     offsetof(denoise_params, template_window), "nlmeans: odd patch size"},
    {"search_window", KMS_PARAM_INT, "21", 1, 199, NULL,
     offsetof(denoise_params, search_window), "nlmeans: odd search area"},
    {0},
};

static kms_status denoise_prepare(const void *params, kms_link *link,
                                  kms_error *err)
{
    const denoise_params *p = params;
    if (!link->image.present)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                             "denoise needs an image: put read before it");
    if ((p->method == DENOISE_GAUSSIAN || p->method == DENOISE_MEDIAN) &&
        p->ksize % 2 == 0)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "ksize",
                             "%d must be odd", p->ksize);
    if (p->method == DENOISE_MEDIAN && p->ksize < 3)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "ksize",
                             "median needs ksize >= 3");
    if (p->method == DENOISE_NLMEANS &&
        (p->template_window % 2 == 0 || p->search_window % 2 == 0))
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0,
                             p->template_window % 2 == 0 ? "template_window"
                                                         : "search_window",
                             "must be odd");
    /* OpenCV's own limits on depth, when the config fixes the depth (HU
     * rescaled by read.slope/intercept: 16-bit signed or float) */
    unsigned depths = link->image.depths;
    if (p->method == DENOISE_MEDIAN && p->ksize > 5 &&
        !(depths & KMS_DEPTH_BIT(KMS_DEPTH_U8)))
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "ksize",
                             "median above 5 takes 8-bit images only, and "
                             "read.slope/intercept make HU: use 3 or 5");
    if (p->method == DENOISE_NLMEANS &&
        !(depths & (KMS_DEPTH_BIT(KMS_DEPTH_U8) | KMS_DEPTH_BIT(KMS_DEPTH_U16))))
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "method",
                             "nlmeans takes 8- or 16-bit unsigned images, and "
                             "read.slope/intercept make HU: use gaussian, "
                             "median or bilateral");
    return KMS_OK;
}

static kms_status filter_slice(const kms_image *src, kms_image *dst, void *arg,
                               kms_error *err)
{
    const denoise_params *p = arg;
    switch ((denoise_method)p->method) {
    case DENOISE_NONE:
        return kms_image_copy(dst, src, err);
    case DENOISE_GAUSSIAN:
        return kms_cv_gaussian_blur(src, dst, p->ksize, p->sigma, err);
    case DENOISE_MEDIAN:
        return kms_cv_median_blur(src, dst, p->ksize, err);
    case DENOISE_BILATERAL:
        return kms_cv_bilateral(src, dst, p->diameter, p->sigma_color,
                                p->sigma_space, err);
    case DENOISE_NLMEANS:
        return kms_cv_nlmeans(src, dst, (float)p->h, p->template_window,
                              p->search_window, err);
    }
    abort();
}

/* Slice by slice: a volume's slices are 2-D images to these filters. */
static kms_status denoise_run(const void *params, kms_context *ctx,
                              kms_error *err)
{
    const denoise_params *p = params;
    if (p->method == DENOISE_NONE)
        return KMS_OK;
    kms_status st = kms_context_keep_original(ctx, err);
    if (st != KMS_OK)
        return st;
    return kms_map_slices(&ctx->image, ctx->slices, filter_slice, (void *)p,
                          err);
}

const kms_stage_class kms_stage_denoise = {
    .name = "denoise",
    .description = "smooth the image: gaussian, median, bilateral or "
                   "non-local means",
    .params = denoise_table,
    .params_size = sizeof(denoise_params),
    .prepare = denoise_prepare,
    .run = denoise_run,
};
