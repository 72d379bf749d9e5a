/* opencv_c: the C interface to OpenCV 4's C++ API (see opencv_c.h). */

#include "opencv_c.h" /* its C headers carry their own extern "C" */

#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <sys/stat.h>

#include <opencv2/core.hpp>
#include <opencv2/core/core_c.h> /* cvErrorStr */
#include <opencv2/core/utility.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/photo.hpp>

/* The KMS_CV_* constants of opencv_c.h mirror OpenCV's, and config choices
 * (reshape.interpolation, read.mode) store them as values: keep them equal. */
#define KMS_SAME_AS_CV(kms, cv_name)                                           \
    static_assert(int(kms) == int(cv_name), #kms " is not " #cv_name)
KMS_SAME_AS_CV(KMS_CV_IMREAD_UNCHANGED, cv::IMREAD_UNCHANGED);
KMS_SAME_AS_CV(KMS_CV_IMREAD_GRAYSCALE, cv::IMREAD_GRAYSCALE);
KMS_SAME_AS_CV(KMS_CV_IMREAD_COLOR, cv::IMREAD_COLOR);
KMS_SAME_AS_CV(KMS_CV_IMREAD_ANYDEPTH, cv::IMREAD_ANYDEPTH);
KMS_SAME_AS_CV(KMS_CV_BGR2BGRA, cv::COLOR_BGR2BGRA);
KMS_SAME_AS_CV(KMS_CV_BGRA2BGR, cv::COLOR_BGRA2BGR);
KMS_SAME_AS_CV(KMS_CV_BGR2GRAY, cv::COLOR_BGR2GRAY);
KMS_SAME_AS_CV(KMS_CV_GRAY2BGR, cv::COLOR_GRAY2BGR);
KMS_SAME_AS_CV(KMS_CV_BGRA2GRAY, cv::COLOR_BGRA2GRAY);
KMS_SAME_AS_CV(KMS_CV_GRAY2BGRA, cv::COLOR_GRAY2BGRA);
KMS_SAME_AS_CV(KMS_CV_INTER_NEAREST, cv::INTER_NEAREST);
KMS_SAME_AS_CV(KMS_CV_INTER_LINEAR, cv::INTER_LINEAR);
KMS_SAME_AS_CV(KMS_CV_INTER_CUBIC, cv::INTER_CUBIC);
KMS_SAME_AS_CV(KMS_CV_INTER_AREA, cv::INTER_AREA);
KMS_SAME_AS_CV(KMS_CV_INTER_LANCZOS4, cv::INTER_LANCZOS4);
/* kms_kmeans_params.criteria is passed to cv::TermCriteria as it is */
KMS_SAME_AS_CV(KMS_KM_TERM_COUNT, cv::TermCriteria::COUNT);
KMS_SAME_AS_CV(KMS_KM_TERM_EPS, cv::TermCriteria::EPS);
KMS_SAME_AS_CV(KMS_CV_MORPH_ERODE, cv::MORPH_ERODE);
KMS_SAME_AS_CV(KMS_CV_MORPH_DILATE, cv::MORPH_DILATE);
KMS_SAME_AS_CV(KMS_CV_MORPH_OPEN, cv::MORPH_OPEN);
KMS_SAME_AS_CV(KMS_CV_MORPH_CLOSE, cv::MORPH_CLOSE);
KMS_SAME_AS_CV(KMS_CV_MORPH_RECT, cv::MORPH_RECT);
KMS_SAME_AS_CV(KMS_CV_MORPH_CROSS, cv::MORPH_CROSS);
KMS_SAME_AS_CV(KMS_CV_MORPH_ELLIPSE, cv::MORPH_ELLIPSE);
KMS_SAME_AS_CV(KMS_CV_CC_STAT_LEFT, cv::CC_STAT_LEFT);
KMS_SAME_AS_CV(KMS_CV_CC_STAT_TOP, cv::CC_STAT_TOP);
KMS_SAME_AS_CV(KMS_CV_CC_STAT_WIDTH, cv::CC_STAT_WIDTH);
KMS_SAME_AS_CV(KMS_CV_CC_STAT_HEIGHT, cv::CC_STAT_HEIGHT);
KMS_SAME_AS_CV(KMS_CV_CC_STAT_AREA, cv::CC_STAT_AREA);
KMS_SAME_AS_CV(KMS_CV_CC_STAT_MAX, cv::CC_STAT_MAX);
#undef KMS_SAME_AS_CV

/* ---- exceptions -> kms_status -------------------------------------------- */

/* OpenCV's CV_Check messages span several lines prefixed with "> ": squeeze
 * them into one line with single spaces. */
static void squeeze(char *dst, size_t len, const char *src)
{
    size_t n = 0;
    bool blank = false;
    for (const char *p = src; *p && n + 2 < len; p++) {
        if (*p == '>' && (p == src || p[-1] == '\n'))
            continue;
        if (std::isspace(static_cast<unsigned char>(*p))) {
            blank = true;
            continue;
        }
        if (blank && n > 0)
            dst[n++] = ' ';
        blank = false;
        dst[n++] = *p;
    }
    dst[n] = '\0';
}

/* e.func is sometimes a whole signature, "double cv::kmeans(InputArray, ...)"
 * or "cv::impl::CvtHelper<VScn, VDcn, ...>::CvtHelper(...)": keep the
 * qualified name, without template arguments. */
static void short_func(char *dst, size_t len, const char *func)
{
    const char *end = std::strchr(func, '(');
    if (!end)
        end = func + std::strlen(func);
    const char *start = end;
    for (int depth = 0; start > func; start--) {
        char c = start[-1];
        if (c == '>')
            depth++;
        else if (c == '<')
            depth--;
        else if (c == ' ' && depth == 0)
            break;
    }
    size_t n = 0;
    int depth = 0;
    for (const char *p = start; p < end && n + 1 < len; p++) {
        if (*p == '<')
            depth++;
        else if (*p == '>')
            depth--;
        else if (depth == 0)
            dst[n++] = *p;
    }
    dst[n] = '\0';
}

static kms_status opencv_error(kms_error *err, const char *api,
                               const char *file, const cv::Exception &e)
{
    char msg[800], func[128];
    squeeze(msg, sizeof msg, e.err.c_str());
    short_func(func, sizeof func, e.func.c_str());
    return kms_error_set(err, KMS_ERR_OPENCV, file, 0, NULL,
                         "%s: OpenCV error in %s (%s): %s", api,
                         func[0] ? func : "?", cvErrorStr(e.code),
                         msg[0] ? msg : "no details");
}

/* Runs body (which returns a kms_status) so that no exception reaches C.
 * file goes into err->file for errors about a named file. */
template <typename F>
static kms_status guarded(kms_error *err, const char *api, const char *file,
                          F &&body) noexcept
{
    try {
        return body();
    } catch (const cv::Exception &e) {
        return opencv_error(err, api, file, e);
    } catch (const std::bad_alloc &) {
        return kms_error_set(err, KMS_ERR_NOMEM, file, 0, NULL,
                             "%s: out of memory", api);
    } catch (const std::exception &e) {
        return kms_error_set(err, KMS_ERR_OPENCV, file, 0, NULL, "%s: %s", api,
                             e.what());
    } catch (...) {
        return kms_error_set(err, KMS_ERR_INTERNAL, file, 0, NULL,
                             "%s: unknown C++ exception", api);
    }
}

/* The whole body of an API function: runs the block under guarded(), with
 * `api` naming the function (inside a lambda __func__ is "operator()"). */
#define GUARDED(...)                                                           \
    const char *const api = __func__;                                          \
    return guarded(err, api, NULL, [&]() -> kms_status __VA_ARGS__)

/* ---- kms_image <-> cv::Mat ----------------------------------------------- */

/* C callers may pass any int as a kms_depth; in C++ merely loading an
 * out-of-range enum is undefined (UBSan flags it), so read it as an int. */
static int depth_int(const kms_depth &d)
{
    static_assert(sizeof(kms_depth) == sizeof(int),
                  "kms_depth is not int-sized");
    int v;
    std::memcpy(&v, &d, sizeof v);
    return v;
}

/* OpenCV depth of a kms_depth, -1 if it is not one. */
static int cv_depth(const kms_depth &d)
{
    switch (depth_int(d)) {
    case KMS_DEPTH_U8: return CV_8U;
    case KMS_DEPTH_S16: return CV_16S;
    case KMS_DEPTH_U16: return CV_16U;
    case KMS_DEPTH_S32: return CV_32S;
    case KMS_DEPTH_F32: return CV_32F;
    }
    return -1;
}

static bool kms_depth_of(int cvdepth, kms_depth *d)
{
    switch (cvdepth) {
    case CV_8U: *d = KMS_DEPTH_U8; return true;
    case CV_16S: *d = KMS_DEPTH_S16; return true;
    case CV_16U: *d = KMS_DEPTH_U16; return true;
    case CV_32S: *d = KMS_DEPTH_S32; return true;
    case CV_32F: *d = KMS_DEPTH_F32; return true;
    default: return false;
    }
}

static kms_status bad_image(kms_error *err, const char *api, const char *what)
{
    return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                         "%s: %s is empty or malformed", api, what);
}

static bool image_ok(const kms_image *img)
{
    return img && img->data && img->width > 0 && img->height > 0 &&
           img->channels >= 1 && img->channels <= 4 &&
           cv_depth(img->depth) >= 0;
}

/* Wraps img's pixels without copying. */
static kms_status wrap(const kms_image *img, cv::Mat &m, const char *api,
                       const char *what, kms_error *err)
{
    if (!image_ok(img))
        return bad_image(err, api, what);
    m = cv::Mat(img->height, img->width,
                CV_MAKETYPE(cv_depth(img->depth), img->channels), img->data,
                img->stride);
    return KMS_OK;
}

/* A kms_image freed on every path unless moved out. */
struct tmp_image {
    kms_image img{};
    tmp_image() = default;
    tmp_image(const tmp_image &) = delete;
    tmp_image &operator=(const tmp_image &) = delete;
    ~tmp_image()
    {
        kms_image_free(&img);
    }
};

/* Allocates t like (w, h, channels, depth) and wraps it as m. Not zeroed:
 * every operation given such an output writes all of its pixels, and
 * zeroing a slice first cost as much as a pass over it. */
static kms_status alloc_wrapped(tmp_image &t, cv::Mat &m, int w, int h,
                                int channels, kms_depth depth, const char *api,
                                kms_error *err)
{
    kms_status st = kms_image_alloc_raw(&t.img, w, h, channels, depth, err);
    if (st != KMS_OK)
        return st;
    return wrap(&t.img, m, api, "output", err);
}

/* One copy of an OpenCV-owned Mat into out (out's old data freed).
 * depth_code: status for a depth kms_image cannot hold. */
static kms_status copy_mat(const cv::Mat &m, kms_image *out,
                           kms_status depth_code, const char *file,
                           const char *api, kms_error *err)
{
    kms_depth d;
    if (m.empty() || m.dims != 2)
        return kms_error_set(err, KMS_ERR_INTERNAL, file, 0, NULL,
                             "%s: OpenCV returned no image", api);
    if (!kms_depth_of(m.depth(), &d))
        return kms_error_set(err, depth_code, file, 0, NULL,
                             "%s: pixel depth %s is not supported (only 8U, "
                             "16S, 16U, 32S, 32F)",
                             api, cv::depthToString(m.depth()));
    if (m.channels() > 4)
        return kms_error_set(err, depth_code, file, 0, NULL,
                             "%s: %d channels are not supported (at most 4)",
                             api, m.channels());
    tmp_image t; /* every row copied below */
    kms_status st =
        kms_image_alloc_raw(&t.img, m.cols, m.rows, m.channels(), d, err);
    if (st != KMS_OK)
        return st;
    for (int y = 0; y < m.rows; y++)
        std::memcpy(kms_image_row(&t.img, y), m.ptr(y), t.img.stride);
    kms_image_move(out, &t.img);
    return KMS_OK;
}

/* After OpenCV wrote into m (which wrapped t, or was left empty when the
 * output shape could not be predicted): hand the result to dst. If OpenCV
 * reallocated m, its pixels are not in t, so copy them once. */
static kms_status finish(cv::Mat &m, tmp_image &t, kms_image *dst,
                         const char *api, kms_error *err)
{
    if (!t.img.data || m.data != t.img.data || m.rows != t.img.height ||
        m.cols != t.img.width ||
        m.type() != CV_MAKETYPE(cv_depth(t.img.depth), t.img.channels))
        return copy_mat(m, dst, KMS_ERR_INTERNAL, NULL, api, err);
    kms_image_move(dst, &t.img);
    return KMS_OK;
}

/* The usual "dst = f(src)" with dst shaped like src but of depth `depth`
 * (or src's own when depth < 0). */
template <typename F>
static kms_status unary(const kms_image *src, kms_image *dst, int depth,
                        const char *api, kms_error *err, F &&op)
{
    return guarded(err, api, NULL, [&]() -> kms_status {
        cv::Mat s, d;
        tmp_image t;
        kms_status st = wrap(src, s, api, "source image", err);
        if (st != KMS_OK)
            return st;
        if (!dst)
            return bad_image(err, api, "destination");
        st = alloc_wrapped(
            t, d, src->width, src->height, src->channels,
            depth < 0 ? src->depth : static_cast<kms_depth>(depth), api, err);
        if (st != KMS_OK)
            return st;
        op(s, d);
        return finish(d, t, dst, api, err);
    });
}

static cv::Scalar scalar(const double c[4])
{
    return cv::Scalar(c[0], c[1], c[2], c[3]);
}

/* ---- misc ---------------------------------------------------------------- */

extern "C" const char *kms_cv_version(void)
{
    return CV_VERSION;
}

extern "C" kms_status kms_cv_set_num_threads(int n, kms_error *err)
{
    /* OpenCV: 0 means "no threading", < 0 means "default". */
    GUARDED({
        cv::setNumThreads(n <= 0 ? -1 : n);
        return KMS_OK;
    });
}

/* ---- images in and out --------------------------------------------------- */

extern "C" kms_status kms_cv_imread(const char *path, int flags, kms_image *out,
                                    kms_error *err)
{
    if (!path || !out)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "%s: no path or output image", __func__);
    /* cv::imread reports every failure as an empty Mat: tell "cannot open"
     * and "empty" apart from "cannot decode" first. */
    FILE *f = std::fopen(path, "rb");
    if (!f)
        return kms_error_set(err, KMS_ERR_IO, path, 0, NULL, "cannot open: %s",
                             std::strerror(errno));
    struct stat sb;
    int rc = fstat(fileno(f), &sb);
    int saved = errno;
    std::fclose(f);
    if (rc != 0)
        return kms_error_set(err, KMS_ERR_IO, path, 0, NULL, "cannot stat: %s",
                             std::strerror(saved));
    if (S_ISDIR(sb.st_mode))
        return kms_error_set(err, KMS_ERR_IO, path, 0, NULL, "cannot read: %s",
                             std::strerror(EISDIR));
    if (S_ISREG(sb.st_mode) && sb.st_size == 0)
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL, "empty file");
    const char *const api = __func__;
    return guarded(err, api, path, [&]() -> kms_status {
        cv::Mat m = cv::imread(path, flags);
        if (m.empty())
            return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                                 "not an image OpenCV can decode");
        return copy_mat(m, out, KMS_ERR_INPUT, path, api, err);
    });
}

extern "C" kms_status kms_cv_imdecode(const void *buf, size_t len, int flags,
                                      const char *name, kms_image *out,
                                      kms_error *err)
{
    if (!out || (!buf && len > 0))
        return kms_error_set(err, KMS_ERR_USAGE, name, 0, NULL,
                             "%s: no buffer or output image", __func__);
    if (len == 0)
        return kms_error_set(err, KMS_ERR_INPUT, name, 0, NULL, "empty file");
    if (len > static_cast<size_t>(INT32_MAX))
        return kms_error_set(err, KMS_ERR_INPUT, name, 0, NULL,
                             "file too large for OpenCV (%zu bytes)", len);
    const char *const api = __func__;
    return guarded(err, api, name, [&]() -> kms_status {
        const cv::Mat raw(1, static_cast<int>(len), CV_8U,
                          const_cast<void *>(buf));
        cv::Mat m = cv::imdecode(raw, flags);
        if (m.empty())
            return kms_error_set(err, KMS_ERR_INPUT, name, 0, NULL,
                                 "not an image OpenCV can decode");
        return copy_mat(m, out, KMS_ERR_INPUT, name, api, err);
    });
}

/* Depths each OpenCV 4.6 encoder stores as they are. For any other depth
 * cv::imencode silently converts (to 8U, or to 32F for PFM/HDR) instead of
 * failing, which would quietly destroy CT values. Measured by round trips. */
struct codec_depths {
    const char *ext;
    unsigned mask; /* bit (1u << kms_depth) */
};

#define D(x) (1u << KMS_DEPTH_##x)
static const codec_depths codecs[] = {
    {"png", D(U8) | D(U16)},
    {"tif", D(U8) | D(U16) | D(S16) | D(S32) | D(F32)},
    {"tiff", D(U8) | D(U16) | D(S16) | D(S32) | D(F32)},
    {"pgm", D(U8) | D(U16)},
    {"ppm", D(U8) | D(U16)},
    {"pnm", D(U8) | D(U16)},
    {"pam", D(U8) | D(U16)},
    {"jp2", D(U8) | D(U16)},
    {"pfm", D(F32)},
    {"exr", D(F32)},
    {"hdr", D(F32)},
    {"pic", D(F32)},
};
#undef D

/* Depths `ext` can store: from the table, else 8U only (every other
 * OpenCV encoder is 8-bit). */
static unsigned storable_depths(const char *ext)
{
    const char *dot = std::strrchr(ext, '.');
    char low[16];
    size_t n = 0;
    for (const char *p = dot ? dot + 1 : ext;
         *p && std::isalnum(static_cast<unsigned char>(*p)) &&
         n + 1 < sizeof low;
         p++)
        low[n++] =
            static_cast<char>(std::tolower(static_cast<unsigned char>(*p)));
    low[n] = '\0';
    for (const codec_depths &c : codecs)
        if (std::strcmp(c.ext, low) == 0)
            return c.mask;
    return 1u << KMS_DEPTH_U8;
}

extern "C" kms_status kms_cv_imencode(const char *ext, const kms_image *img,
                                      const int *params, int nparams,
                                      unsigned char **buf, size_t *len,
                                      kms_error *err)
{
    GUARDED({
        cv::Mat m;
        if (!ext || !buf || !len || nparams < 0 || (nparams > 0 && !params))
            return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                                 "%s: bad arguments", api);
        *buf = NULL;
        *len = 0;
        kms_status st = wrap(img, m, api, "image", err);
        if (st != KMS_OK)
            return st;
        if (!cv::haveImageWriter(ext))
            return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                                 "%s: OpenCV has no encoder for \"%s\"", api,
                                 ext);
        if (!(storable_depths(ext) & (1u << img->depth)))
            return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                                 "%s: \"%s\" cannot store %s pixels (OpenCV "
                                 "would convert them)",
                                 api, ext, kms_depth_name(img->depth));
        /* OpenCV 4.6 does not check this, and its encoders then read
         * params[i + 1] past the end. */
        if (nparams % 2 != 0)
            return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                                 "%s: params must be (IMWRITE_* id, value) "
                                 "pairs, got %d ints",
                                 api, nparams);
        std::vector<int> p(params, params + nparams);
        std::vector<unsigned char> out;
        if (!cv::imencode(ext, m, out, p))
            return kms_error_set(err, KMS_ERR_OPENCV, NULL, 0, NULL,
                                 "%s: cv::imencode(\"%s\") failed", api, ext);
        unsigned char *copy = static_cast<unsigned char *>(
            std::malloc(out.empty() ? 1 : out.size()));
        if (!copy)
            return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                                 "%s: cannot allocate %zu bytes", api,
                                 out.size());
        if (!out.empty())
            std::memcpy(copy, out.data(), out.size());
        *buf = copy;
        *len = out.size();
        return KMS_OK;
    });
}

/* ---- pixel operations ---------------------------------------------------- */

/* Output channels of the codes kmseg uses; 0 = let OpenCV decide. */
static int cvt_channels(int code)
{
    switch (code) {
    case KMS_CV_BGR2BGRA:
    case KMS_CV_GRAY2BGRA: return 4;
    case KMS_CV_BGRA2BGR:
    case KMS_CV_GRAY2BGR: return 3;
    case KMS_CV_BGR2GRAY:
    case KMS_CV_BGRA2GRAY: return 1;
    default: return 0;
    }
}

extern "C" kms_status kms_cv_cvt_color(const kms_image *src, kms_image *dst,
                                       int code, kms_error *err)
{
    GUARDED({
        cv::Mat s, d;
        tmp_image t;
        kms_status st = wrap(src, s, api, "source image", err);
        if (st != KMS_OK)
            return st;
        if (!dst)
            return bad_image(err, api, "destination");
        int cn = cvt_channels(code);
        if (cn > 0) {
            st = alloc_wrapped(t, d, src->width, src->height, cn, src->depth,
                               api, err);
            if (st != KMS_OK)
                return st;
        }
        cv::cvtColor(s, d, code);
        return finish(d, t, dst, api, err);
    });
}

extern "C" kms_status kms_cv_resize(const kms_image *src, kms_image *dst,
                                    int width, int height, double fx, double fy,
                                    int interpolation, kms_error *err)
{
    GUARDED({
        cv::Mat s, d;
        tmp_image t;
        kms_status st = wrap(src, s, api, "source image", err);
        if (st != KMS_OK)
            return st;
        if (!dst)
            return bad_image(err, api, "destination");
        /* Predict the size as cv::resize does; if we cannot, OpenCV
         * allocates (or throws) and finish() copies. */
        int w = width, h = height;
        if (w <= 0 || h <= 0) {
            w = h = 0;
            if (fx > 0 && fy > 0) {
                w = cv::saturate_cast<int>(src->width * fx);
                h = cv::saturate_cast<int>(src->height * fy);
            }
        }
        if (w > 0 && h > 0) {
            st = alloc_wrapped(t, d, w, h, src->channels, src->depth, api, err);
            if (st != KMS_OK)
                return st;
        }
        cv::resize(s, d, cv::Size(width, height), fx, fy, interpolation);
        return finish(d, t, dst, api, err);
    });
}

extern "C" kms_status kms_cv_convert(const kms_image *src, kms_image *dst,
                                     kms_depth depth, double alpha, double beta,
                                     kms_error *err)
{
    if (cv_depth(depth) < 0)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "%s: unknown depth %d", __func__,
                             depth_int(depth));
    return unary(src, dst, depth, __func__, err, [&](cv::Mat &s, cv::Mat &d) {
        s.convertTo(d, cv_depth(depth), alpha, beta);
    });
}

extern "C" kms_status kms_cv_gaussian_blur(const kms_image *src, kms_image *dst,
                                           int ksize, double sigma,
                                           kms_error *err)
{
    return unary(src, dst, -1, __func__, err, [&](cv::Mat &s, cv::Mat &d) {
        cv::GaussianBlur(s, d, cv::Size(ksize, ksize), sigma);
    });
}

extern "C" kms_status kms_cv_median_blur(const kms_image *src, kms_image *dst,
                                         int ksize, kms_error *err)
{
    return unary(src, dst, -1, __func__, err,
                 [&](cv::Mat &s, cv::Mat &d) { cv::medianBlur(s, d, ksize); });
}

extern "C" kms_status kms_cv_bilateral(const kms_image *src, kms_image *dst,
                                       int d, double sigma_color,
                                       double sigma_space, kms_error *err)
{
    /* unary() writes into a fresh buffer, so src == dst is fine here. */
    return unary(src, dst, -1, __func__, err, [&](cv::Mat &s, cv::Mat &o) {
        cv::bilateralFilter(s, o, d, sigma_color, sigma_space);
    });
}

extern "C" kms_status kms_cv_nlmeans(const kms_image *src, kms_image *dst,
                                     float h, int template_window,
                                     int search_window, kms_error *err)
{
    bool gray = image_ok(src) && src->channels == 1 &&
                (src->depth == KMS_DEPTH_U8 || src->depth == KMS_DEPTH_U16);
    bool color =
        image_ok(src) && src->channels == 3 && src->depth == KMS_DEPTH_U8;
    if (image_ok(src) && !gray && !color)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "%s: non-local means takes 1-channel 8-bit or "
                             "16-bit unsigned, or 3-channel 8-bit images, "
                             "not %d-channel %s",
                             __func__, src->channels,
                             kms_depth_name(src->depth));
    return unary(src, dst, -1, __func__, err, [&](cv::Mat &s, cv::Mat &d) {
        if (src->channels == 3)
            cv::fastNlMeansDenoisingColored(s, d, h, h, template_window,
                                            search_window);
        else if (src->depth == KMS_DEPTH_U16)
            cv::fastNlMeansDenoising(s, d, std::vector<float>{h},
                                     template_window, search_window,
                                     cv::NORM_L1);
        else
            cv::fastNlMeansDenoising(s, d, h, template_window, search_window);
    });
}

/* ---- k-means ------------------------------------------------------------- */

/* kms_km_init as cv::KmeansFlags, -1 for a value it does not name. Read as
 * an int, as depth_int does: C callers may pass any int. */
static int kmeans_flags(const kms_km_init &init)
{
    static_assert(sizeof(kms_km_init) == sizeof(int),
                  "kms_km_init is not int-sized");
    int v;
    std::memcpy(&v, &init, sizeof v);
    switch (v) {
    case KMS_KM_INIT_PP: return cv::KMEANS_PP_CENTERS;
    case KMS_KM_INIT_RANDOM: return cv::KMEANS_RANDOM_CENTERS;
    case KMS_KM_INIT_LABELS: return cv::KMEANS_USE_INITIAL_LABELS;
    default: return -1;
    }
}

extern "C" kms_status kms_cv_kmeans(const float *samples, size_t count,
                                    int dims, const kms_kmeans_params *p,
                                    int32_t *labels, float *centers,
                                    double *compactness, kms_error *err)
{
    GUARDED({
        if (!samples || !p || !labels || !centers)
            return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                                 "%s: NULL samples, params, labels or "
                                 "centers",
                                 api);
        const int flags = kmeans_flags(p->init);
        if (flags < 0)
            return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                                 "%s: unknown init", api);
        /* cv::Mat counts rows in an int */
        if (count > static_cast<size_t>(INT_MAX))
            return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                                 "%s: %zu samples are more than cv::kmeans "
                                 "takes",
                                 api, count);
        const int n = static_cast<int>(count), k = p->k;
        /* The one thing cv::kmeans does not reject: it "clusters" in an
         * empty feature space. */
        if (dims <= 0)
            return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                                 "%s: dims must be positive, not %d", api,
                                 dims);
        /* cv::setRNGSeed takes an int; cv2.setRNGSeed(seed) truncates the
         * same way, so seeds match Python's. */
        cv::setRNGSeed(static_cast<int>(static_cast<uint32_t>(p->seed)));
        /* cv::kmeans reads a 1-row matrix as 1-D samples along the row, so a
         * single sample is passed as one pixel of `dims` channels. */
        if (n == 1 && dims > CV_CN_MAX)
            return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                                 "%s: one sample of more than %d dimensions "
                                 "cannot be passed to cv::kmeans",
                                 api, CV_CN_MAX);
        cv::Mat data =
            n == 1 ? cv::Mat(1, 1, CV_32FC(dims), const_cast<float *>(samples))
                   : cv::Mat(n, dims, CV_32F, const_cast<float *>(samples));
        cv::Mat lab(n, 1, CV_32S, labels);
        cv::Mat cen;
        double c = cv::kmeans(
            data, k, lab,
            cv::TermCriteria(p->criteria, p->max_iter, p->epsilon),
            p->attempts, flags, cen);
        if (cen.rows != k || cen.cols != dims || cen.type() != CV_32F ||
            !cen.isContinuous() || lab.total() != static_cast<size_t>(n) ||
            lab.type() != CV_32S || !lab.isContinuous())
            return kms_error_set(err, KMS_ERR_INTERNAL, NULL, 0, NULL,
                                 "%s: cv::kmeans returned unexpected shapes",
                                 api);
        if (lab.data != reinterpret_cast<uchar *>(labels))
            std::memcpy(labels, lab.data,
                        sizeof(int32_t) * static_cast<size_t>(n));
        std::memcpy(centers, cen.data, cen.total() * sizeof(float));
        if (compactness)
            *compactness = c;
        return KMS_OK;
    });
}

/* ---- morphology and regions ---------------------------------------------- */

extern "C" kms_status kms_cv_morphology(const kms_image *src, kms_image *dst,
                                        int op, int shape, int ksize,
                                        int iterations, kms_error *err)
{
    return unary(src, dst, -1, __func__, err, [&](cv::Mat &s, cv::Mat &d) {
        cv::Mat kernel =
            cv::getStructuringElement(shape, cv::Size(ksize, ksize));
        cv::morphologyEx(s, d, op, kernel, cv::Point(-1, -1), iterations,
                         cv::BORDER_CONSTANT,
                         cv::morphologyDefaultBorderValue());
    });
}

extern "C" kms_status
kms_cv_connected_components(const kms_image *src, kms_image *labels,
                            int connectivity, int *count, int32_t **stats,
                            double **centroids, kms_error *err)
{
    if (stats)
        *stats = NULL;
    if (centroids)
        *centroids = NULL;
    GUARDED({
        cv::Mat s, l, st_m, ce_m;
        tmp_image t;
        kms_status st = wrap(src, s, api, "mask", err);
        if (st != KMS_OK)
            return st;
        if (!labels || !count)
            return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                                 "%s: NULL labels or count", api);
        st = alloc_wrapped(t, l, src->width, src->height, 1, KMS_DEPTH_S32, api,
                           err);
        if (st != KMS_OK)
            return st;
        if (!stats && !centroids) {
            /* labels only: about 5x faster than WithStats in OpenCV 4.6 */
            *count = cv::connectedComponents(s, l, connectivity, CV_32S);
            return finish(l, t, labels, api, err);
        }
        int nl = cv::connectedComponentsWithStats(s, l, st_m, ce_m,
                                                  connectivity, CV_32S);
        if (st_m.rows != nl || st_m.cols != KMS_CV_CC_STAT_MAX ||
            st_m.type() != CV_32S || ce_m.rows != nl || ce_m.cols != 2 ||
            ce_m.type() != CV_64F)
            return kms_error_set(err, KMS_ERR_INTERNAL, NULL, 0, NULL,
                                 "%s: unexpected statistics from OpenCV", api);
        int32_t *sp = NULL;
        double *cp = NULL;
        if (stats && !(sp = static_cast<int32_t *>(
                           std::malloc(sizeof *sp * KMS_CV_CC_STAT_MAX * nl))))
            return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                                 "%s: out of memory", api);
        if (centroids &&
            !(cp = static_cast<double *>(std::malloc(sizeof *cp * 2 * nl)))) {
            std::free(sp);
            return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                                 "%s: out of memory", api);
        }
        st = finish(l, t, labels, api, err);
        if (st != KMS_OK) {
            std::free(sp);
            std::free(cp);
            return st;
        }
        for (int i = 0; i < nl; i++) {
            if (sp)
                std::memcpy(sp + i * KMS_CV_CC_STAT_MAX, st_m.ptr<int32_t>(i),
                            sizeof *sp * KMS_CV_CC_STAT_MAX);
            if (cp)
                std::memcpy(cp + 2 * i, ce_m.ptr<double>(i), sizeof *cp * 2);
        }
        *count = nl;
        if (stats)
            *stats = sp;
        if (centroids)
            *centroids = cp;
        return KMS_OK;
    });
}

extern "C" kms_status kms_cv_flood_fill(kms_image *img, int x, int y,
                                        double new_value, int connectivity,
                                        int *area, kms_error *err)
{
    GUARDED({
        cv::Mat m;
        kms_status st = wrap(img, m, api, "image", err);
        if (st != KMS_OK)
            return st;
        if (img->channels != 1 || img->depth != KMS_DEPTH_U8)
            return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                                 "%s: needs a 1-channel 8-bit image, not "
                                 "%d-channel %s",
                                 api, img->channels,
                                 kms_depth_name(img->depth));
        int a = cv::floodFill(m, cv::Point(x, y), cv::Scalar(new_value), NULL,
                              cv::Scalar(), cv::Scalar(), connectivity);
        if (area)
            *area = a;
        return KMS_OK;
    });
}

/* ---- drawing ------------------------------------------------------------- */

extern "C" kms_status kms_cv_line(kms_image *img, int x0, int y0, int x1,
                                  int y1, const double color[4], int thickness,
                                  kms_error *err)
{
    GUARDED({
        cv::Mat m;
        kms_status st = wrap(img, m, api, "image", err);
        if (st != KMS_OK)
            return st;
        if (!color)
            return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                                 "%s: NULL colour", api);
        cv::line(m, cv::Point(x0, y0), cv::Point(x1, y1), scalar(color),
                 thickness);
        return KMS_OK;
    });
}

extern "C" kms_status kms_cv_circle(kms_image *img, int cx, int cy, int radius,
                                    const double color[4], int thickness,
                                    kms_error *err)
{
    GUARDED({
        cv::Mat m;
        kms_status st = wrap(img, m, api, "image", err);
        if (st != KMS_OK)
            return st;
        if (!color)
            return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                                 "%s: NULL colour", api);
        cv::circle(m, cv::Point(cx, cy), radius, scalar(color), thickness);
        return KMS_OK;
    });
}

extern "C" kms_status kms_cv_put_text(kms_image *img, const char *text, int x,
                                      int y, double scale,
                                      const double color[4], int thickness,
                                      kms_error *err)
{
    GUARDED({
        cv::Mat m;
        kms_status st = wrap(img, m, api, "image", err);
        if (st != KMS_OK)
            return st;
        if (!text || !color)
            return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                                 "%s: NULL text or colour", api);
        cv::putText(m, text, cv::Point(x, y), cv::FONT_HERSHEY_SIMPLEX, scale,
                    scalar(color), thickness);
        return KMS_OK;
    });
}

extern "C" kms_status kms_cv_text_size(const char *text, double scale,
                                       int thickness, int *width, int *height,
                                       int *baseline, kms_error *err)
{
    GUARDED({
        if (!text || !width || !height)
            return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                                 "%s: NULL text, width or height", api);
        int base = 0;
        cv::Size s = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, scale,
                                     thickness, &base);
        *width = s.width;
        *height = s.height;
        if (baseline)
            *baseline = base;
        return KMS_OK;
    });
}

extern "C" kms_status kms_cv_draw_outline(kms_image *img, const kms_image *mask,
                                          const double color[4], int thickness,
                                          kms_error *err)
{
    GUARDED({
        cv::Mat m, k;
        kms_status st = wrap(img, m, api, "image", err);
        if (st == KMS_OK)
            st = wrap(mask, k, api, "mask", err);
        if (st != KMS_OK)
            return st;
        if (!color)
            return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                                 "%s: NULL colour", api);
        if (mask->width != img->width || mask->height != img->height)
            return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                                 "%s: mask is %dx%d but image is %dx%d", api,
                                 mask->width, mask->height, img->width,
                                 img->height);
        std::vector<std::vector<cv::Point>> contours;
        cv::findContours(k, contours, cv::RETR_LIST, cv::CHAIN_APPROX_NONE);
        cv::drawContours(m, contours, -1, scalar(color), thickness);
        return KMS_OK;
    });
}
