/* opencv_c: kmseg's C interface to OpenCV 4's C++ API.
 *
 * OpenCV 4 dropped its C API, so this is ours. Rules:
 *  - every function is extern "C" and returns a kms_status;
 *  - no C++ exception crosses into C: cv::Exception and std::exception become
 *    KMS_ERR_OPENCV (or KMS_ERR_NOMEM for std::bad_alloc) with OpenCV's message;
 *  - kms_image buffers are wrapped as cv::Mat without copying. Outputs are
 *    allocated here with kms_image_alloc (dst's old data is freed first), and
 *    OpenCV writes straight into them. src and dst may be the same image
 *    unless a function says otherwise.
 * Constants mirror OpenCV's values so they pass through unchanged. */
#ifndef KMS_OPENCV_C_H
#define KMS_OPENCV_C_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "image.h"
#include "kmeans_params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* cv::ImreadModes */
enum {
    KMS_CV_IMREAD_UNCHANGED = -1,
    KMS_CV_IMREAD_GRAYSCALE = 0,
    KMS_CV_IMREAD_COLOR = 1,
    KMS_CV_IMREAD_ANYDEPTH = 2
};

/* cv::ColorConversionCodes used by kmseg */
enum {
    KMS_CV_BGR2BGRA = 0,
    KMS_CV_BGRA2BGR = 1,
    KMS_CV_BGR2GRAY = 6,
    KMS_CV_GRAY2BGR = 8,
    KMS_CV_BGRA2GRAY = 10,
    KMS_CV_GRAY2BGRA = 9
};

/* cv::InterpolationFlags */
enum {
    KMS_CV_INTER_NEAREST = 0,
    KMS_CV_INTER_LINEAR = 1,
    KMS_CV_INTER_CUBIC = 2,
    KMS_CV_INTER_AREA = 3,
    KMS_CV_INTER_LANCZOS4 = 4
};

/* cv::MorphTypes and cv::MorphShapes */
enum {
    KMS_CV_MORPH_ERODE = 0,
    KMS_CV_MORPH_DILATE = 1,
    KMS_CV_MORPH_OPEN = 2,
    KMS_CV_MORPH_CLOSE = 3,
    KMS_CV_MORPH_RECT = 0,
    KMS_CV_MORPH_CROSS = 1,
    KMS_CV_MORPH_ELLIPSE = 2
};

/* cv::ConnectedComponentsTypes columns of the stats table */
enum {
    KMS_CV_CC_STAT_LEFT = 0,
    KMS_CV_CC_STAT_TOP = 1,
    KMS_CV_CC_STAT_WIDTH = 2,
    KMS_CV_CC_STAT_HEIGHT = 3,
    KMS_CV_CC_STAT_AREA = 4,
    KMS_CV_CC_STAT_MAX = 5
};

/* OpenCV's version string, e.g. "4.6.0". */
const char *kms_cv_version(void);

/* cv::setNumThreads(n); n <= 0 restores OpenCV's default. */
kms_status kms_cv_set_num_threads(int n, kms_error *err);

/* --- images in and out ------------------------------------------------ */

/* cv::imread(path, flags). A file OpenCV cannot decode is KMS_ERR_INPUT naming
 * path; a missing or unreadable file is KMS_ERR_IO. Depths other than those of
 * kms_depth (e.g. 64F, 32S from some TIFFs) are KMS_ERR_INPUT. */
kms_status kms_cv_imread(const char *path, int flags, kms_image *out,
                         kms_error *err);

/* cv::imdecode of an in-memory file; `name` is only used in messages. */
kms_status kms_cv_imdecode(const void *buf, size_t len, int flags,
                           const char *name, kms_image *out, kms_error *err);

/* cv::imencode(ext, img, params): ext such as ".png", ".tif", ".jpg".
 * params are OpenCV's (IMWRITE_* id, value) pairs, nparams ints in all
 * (may be 0). *buf is malloc'ed; the caller frees it. */
kms_status kms_cv_imencode(const char *ext, const kms_image *img,
                           const int *params, int nparams, unsigned char **buf,
                           size_t *len, kms_error *err);

/* --- pixel operations --------------------------------------------------- */

/* cv::cvtColor(src, dst, code) */
kms_status kms_cv_cvt_color(const kms_image *src, kms_image *dst, int code,
                            kms_error *err);

/* cv::resize(src, dst, Size(width, height), fx, fy, interpolation).
 * width/height 0 means "use fx/fy" as in OpenCV. */
kms_status kms_cv_resize(const kms_image *src, kms_image *dst, int width,
                         int height, double fx, double fy, int interpolation,
                         kms_error *err);

/* src.convertTo(dst, depth, alpha, beta) (saturating, OpenCV rounding). */
kms_status kms_cv_convert(const kms_image *src, kms_image *dst,
                          kms_depth depth, double alpha, double beta,
                          kms_error *err);

/* cv::GaussianBlur(src, dst, Size(ksize, ksize), sigma); ksize odd or 0. */
kms_status kms_cv_gaussian_blur(const kms_image *src, kms_image *dst,
                                int ksize, double sigma, kms_error *err);

/* cv::medianBlur(src, dst, ksize); ksize odd > 1 (8-bit for ksize > 5). */
kms_status kms_cv_median_blur(const kms_image *src, kms_image *dst, int ksize,
                              kms_error *err);

/* cv::bilateralFilter(src, dst, d, sigma_color, sigma_space); 8U or 32F.
 * dst must not be src (OpenCV requires distinct buffers; the wrapper copies
 * if they are the same). */
kms_status kms_cv_bilateral(const kms_image *src, kms_image *dst, int d,
                            double sigma_color, double sigma_space,
                            kms_error *err);

/* Non-local means: cv::fastNlMeansDenoising for 1 channel (8U with NORM_L2;
 * 16U with NORM_L1), cv::fastNlMeansDenoisingColored for 3-channel 8U. */
kms_status kms_cv_nlmeans(const kms_image *src, kms_image *dst, float h,
                          int template_window, int search_window,
                          kms_error *err);

/* --- k-means -------------------------------------------------------------- */

/* cv::setRNGSeed(p->seed) on this thread, then cv::kmeans on the n x dims
 * float samples (row-major) with the same kms_kmeans_params as the native
 * kms_kmeans_run: TermCriteria(p->criteria, p->max_iter, p->epsilon),
 * p->attempts, and p->init as KMEANS_PP_CENTERS, KMEANS_RANDOM_CENTERS or
 * KMEANS_USE_INITIAL_LABELS. p->method and p->threads are native only and
 * ignored here (cv::kmeans is Lloyd; its threads are kms_cv_set_num_threads).
 * labels: n int32; read as initial labels when p->init is KMS_KM_INIT_LABELS,
 * always written. centers: k x dims floats, written. *compactness: the value
 * cv::kmeans returns (may be NULL). Errors: KMS_ERR_USAGE for NULL pointers,
 * dims < 1, an unknown init or n above INT_MAX; what cv::kmeans rejects
 * (k > n, ...) is KMS_ERR_OPENCV. */
kms_status kms_cv_kmeans(const float *samples, size_t n, int dims,
                         const kms_kmeans_params *p, int32_t *labels,
                         float *centers, double *compactness, kms_error *err);

/* --- morphology and regions ------------------------------------------------ */

/* cv::morphologyEx(src, dst, op, getStructuringElement(shape, Size(ksize,
 * ksize)), anchor (-1,-1), iterations, BORDER_CONSTANT with the default
 * morphology border value). */
kms_status kms_cv_morphology(const kms_image *src, kms_image *dst, int op,
                             int shape, int ksize, int iterations,
                             kms_error *err);

/* cv::connectedComponentsWithStats(src (8U, 1 channel), labels (S32, allocated
 * here), stats, centroids, connectivity 4 or 8). *count includes the
 * background label 0. *stats gets count x KMS_CV_CC_STAT_MAX ints and
 * *centroids count x 2 doubles, both malloc'ed (caller frees); either pointer
 * may be NULL when not wanted. With both NULL it runs cv::connectedComponents
 * (labels only), which is several times faster. */
kms_status kms_cv_connected_components(const kms_image *src, kms_image *labels,
                                       int connectivity, int *count,
                                       int32_t **stats, double **centroids,
                                       kms_error *err);

/* cv::floodFill(img, Point(x, y), Scalar(new_value), 0, loDiff 0, upDiff 0,
 * connectivity) in place on a 1-channel 8U image; *area gets the number of
 * pixels filled (may be NULL). */
kms_status kms_cv_flood_fill(kms_image *img, int x, int y, double new_value,
                             int connectivity, int *area, kms_error *err);

/* --- drawing (in place; colours are B, G, R, A as in cv::Scalar) ------------ */

kms_status kms_cv_line(kms_image *img, int x0, int y0, int x1, int y1,
                       const double color[4], int thickness, kms_error *err);
kms_status kms_cv_circle(kms_image *img, int cx, int cy, int radius,
                         const double color[4], int thickness, kms_error *err);
/* cv::putText with FONT_HERSHEY_SIMPLEX at (x, y) = bottom-left of the text. */
kms_status kms_cv_put_text(kms_image *img, const char *text, int x, int y,
                           double scale, const double color[4], int thickness,
                           kms_error *err);
/* cv::getTextSize for the same font; baseline may be NULL. */
kms_status kms_cv_text_size(const char *text, double scale, int thickness,
                            int *width, int *height, int *baseline,
                            kms_error *err);
/* cv::drawContours of the outline of a binary 1-channel 8U mask onto img
 * (findContours RETR_LIST, CHAIN_APPROX_NONE). */
kms_status kms_cv_draw_outline(kms_image *img, const kms_image *mask,
                               const double color[4], int thickness,
                               kms_error *err);

#ifdef __cplusplus
}
#endif

#endif
