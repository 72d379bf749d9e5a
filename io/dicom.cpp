/* dicom: DICOM series through GDCM 3 (see dicom.h). Everything GDCM or the
 * standard library can throw is caught at the entry points. */
#include "dicom.h"
#include "dicom_walk.h"
#include "path.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gdcmDataSet.h>
#include <gdcmDictEntry.h>
#include <gdcmDicts.h>
#include <gdcmGlobal.h>
#include <gdcmImage.h>
#include <gdcmImageReader.h>
#include <gdcmPixelFormat.h>
#include <gdcmReader.h>
#include <gdcmTag.h>
#include <gdcmTrace.h>

namespace {

/* GDCM prints warnings and errors to std::cerr; ours go into kms_error. */
std::once_flag quiet_once;

void quiet_gdcm()
{
    std::call_once(quiet_once, [] {
        gdcm::Trace::SetDebug(false);
        gdcm::Trace::SetWarning(false);
        gdcm::Trace::SetError(false);
    });
}

std::string trim(std::string s)
{
    size_t b = 0, e = s.size();
    while (b < e && (s[b] == ' ' || s[b] == '\0'))
        b++;
    while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\0'))
        e--;
    return s.substr(b, e - b);
}

const gdcm::ByteValue *value_of(const gdcm::DataSet &ds, uint16_t g, uint16_t e)
{
    const gdcm::Tag t(g, e);
    if (!ds.FindDataElement(t))
        return nullptr;
    return ds.GetDataElement(t).GetByteValue();
}

std::string text(const gdcm::DataSet &ds, uint16_t g, uint16_t e)
{
    const gdcm::ByteValue *bv = value_of(ds, g, e);
    if (!bv || !bv->GetPointer())
        return "";
    return trim(std::string(bv->GetPointer(), bv->GetLength()));
}

/* A US value (Rows, Columns, ...); -1 when absent. Little endian, as every
 * transfer syntax still in use (GDCM swaps explicit big endian on read). */
int ushort_of(const gdcm::DataSet &ds, uint16_t g, uint16_t e)
{
    const gdcm::ByteValue *bv = value_of(ds, g, e);
    if (!bv || bv->GetLength() < 2 || !bv->GetPointer())
        return -1;
    const unsigned char *p =
        reinterpret_cast<const unsigned char *>(bv->GetPointer());
    return p[0] | p[1] << 8;
}

/* The numbers of a DS/IS multi-value ("a\b\c"); false unless exactly n. */
bool numbers(const std::string &s, double *out, int n)
{
    const char *p = s.c_str();
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        double v = std::strtod(p, &end);
        if (end == p || errno || !std::isfinite(v))
            return false;
        out[i] = v;
        while (*end == ' ')
            end++;
        if (i + 1 < n) {
            if (*end != '\\')
                return false;
            end++;
        } else if (*end) {
            return false;
        }
        p = end;
    }
    return true;
}

/* The header tags this reader uses, for one file. */
struct header {
    std::string path;
    std::string series_uid, patient_id, series_number, series_desc;
    std::string modality, sop_class, photometric;
    int rows = -1, columns = -1, samples = 1, bits = -1;
    long frames = 1;
    bool has_iop = false, has_ipp = false, has_spacing = false;
    double iop[6] = {1, 0, 0, 0, 1, 0}, ipp[3] = {0, 0, 0};
    double spacing[2] = {0, 0}; /* row spacing, column spacing */
    double slope = 1, intercept = 0;
    double along = 0;           /* ipp along the slice normal */
    kms_dicom_layout layout;    /* where the pixel data is (dicom_walk) */
};

void parse_header(const gdcm::DataSet &ds, header &h)
{
    h.series_uid = text(ds, 0x0020, 0x000e);
    h.patient_id = text(ds, 0x0010, 0x0020);
    h.series_number = text(ds, 0x0020, 0x0011);
    h.series_desc = text(ds, 0x0008, 0x103e);
    h.modality = text(ds, 0x0008, 0x0060);
    h.sop_class = text(ds, 0x0008, 0x0016);
    h.photometric = text(ds, 0x0028, 0x0004);
    h.rows = ushort_of(ds, 0x0028, 0x0010);
    h.columns = ushort_of(ds, 0x0028, 0x0011);
    int spp = ushort_of(ds, 0x0028, 0x0002);
    h.samples = spp < 0 ? 1 : spp;
    h.bits = ushort_of(ds, 0x0028, 0x0100);
    std::string frames = text(ds, 0x0028, 0x0008);
    h.frames = frames.empty() ? 1 : std::strtol(frames.c_str(), nullptr, 10);
    h.has_iop = numbers(text(ds, 0x0020, 0x0037), h.iop, 6);
    h.has_ipp = numbers(text(ds, 0x0020, 0x0032), h.ipp, 3);
    h.has_spacing = numbers(text(ds, 0x0028, 0x0030), h.spacing, 2) &&
                    h.spacing[0] > 0 && h.spacing[1] > 0;
    if (!h.has_spacing)
        h.spacing[0] = h.spacing[1] = 0;
    double v;
    if (numbers(text(ds, 0x0028, 0x1053), &v, 1) && v != 0)
        h.slope = v;
    if (numbers(text(ds, 0x0028, 0x1052), &v, 1))
        h.intercept = v;
}

/* The walk's VR check: in the groups GDCM's image code converts with
 * gdcm::Attribute (which asserts on a VR other than the dictionary's),
 * a public tag's VR must be compatible with its dictionary entry. */
bool vr_fits(uint16_t g, uint16_t e, const char vr[2])
{
    switch (g) {
    case 0x0002: case 0x0008: case 0x0018: case 0x0020: case 0x0028:
    case 0x0054: case 0x3004: case 0x5200:
        break;
    default:
        return true;
    }
    if (e == 0x0000) /* group length */
        return vr[0] == 'U' && vr[1] == 'L';
    try {
        static const gdcm::Dicts &dicts = gdcm::Global::GetInstance().GetDicts();
        gdcm::VR want = dicts.GetDictEntry(gdcm::Tag(g, e)).GetVR();
        if (want == gdcm::VR::INVALID || want == gdcm::VR::UN)
            return true;
        const char s[3] = {vr[0], vr[1], '\0'};
        return want.Compatible(gdcm::VR(gdcm::VR::GetVRType(s)));
    } catch (...) {
        return false;
    }
}

/* Reads the tags before the pixel data only (its value is skipped). The
 * file is walked first (dicom_walk.h): GDCM aborts on some damaged headers,
 * so it only sees files whose every element fits. On failure, why says
 * what is wrong (one line, no file name). */
bool read_header(const std::string &path, header &h, std::string &why)
{
    switch (kms_dicom_walk(path.c_str(), vr_fits, &h.layout)) {
    case KMS_DICOM_WALK_OK:
        break;
    case KMS_DICOM_WALK_NOT_DICOM:
        why = "not a DICOM file";
        return false;
    case KMS_DICOM_WALK_CORRUPT:
        why = "corrupt or truncated DICOM header at byte " +
              std::to_string(h.layout.bad_at) + ": " + h.layout.why;
        return false;
    case KMS_DICOM_WALK_IO:
        why = std::string("not a DICOM file: ") + h.layout.why;
        return false;
    default: /* truncated pixel data, unsupported transfer syntax */
        why = h.layout.why;
        return false;
    }
    gdcm::Reader r;
    r.SetFileName(path.c_str());
    const gdcm::Tag pixel_data(0x7fe0, 0x0010);
    if (!r.ReadUpToTag(pixel_data, std::set<gdcm::Tag>{pixel_data})) {
        why = "not a DICOM file GDCM can read";
        return false;
    }
    h.path = path;
    parse_header(r.GetFile().GetDataSet(), h);
    /* GDCM's codecs assert on pixel descriptions that do not add up */
    if (h.layout.has_pixels && h.bits != 8 && h.bits != 16 && h.bits != 32 &&
        !(h.bits == 1 && h.samples == 1)) {
        why = "BitsAllocated " + std::to_string(h.bits) +
              ": damaged or unsupported";
        return false;
    }
    if (h.layout.rle_segments &&
        (int)h.layout.rle_segments != h.samples * h.bits / 8) {
        why = "RLE pixel data of " + std::to_string(h.layout.rle_segments) +
              " segments, not " + std::to_string(h.samples * h.bits / 8) +
              " (SamplesPerPixel x BitsAllocated / 8): damaged";
        return false;
    }
    return true;
}

/* An image by its SOP class or modality: one without Rows, Columns or
 * pixel data is damaged (a file cut at an element boundary), not an object
 * to skip. */
bool image_kind(const header &h)
{
    static const char *const classes[] = {
        "1.2.840.10008.5.1.4.1.1.1",   /* CR, DX, MG, IO (.1.x) */
        "1.2.840.10008.5.1.4.1.1.2",   /* CT, enhanced CT */
        "1.2.840.10008.5.1.4.1.1.4",   /* MR */
        "1.2.840.10008.5.1.4.1.1.6",   /* US */
        "1.2.840.10008.5.1.4.1.1.7",   /* secondary capture */
        "1.2.840.10008.5.1.4.1.1.12",  /* XA, RF */
        "1.2.840.10008.5.1.4.1.1.20",  /* NM */
        "1.2.840.10008.5.1.4.1.1.128", /* PET */
        nullptr};
    for (int i = 0; classes[i]; i++) {
        size_t n = std::strlen(classes[i]);
        if (h.sop_class.compare(0, n, classes[i]) == 0 &&
            (h.sop_class.size() == n || h.sop_class[n] == '.'))
            return true;
    }
    static const char *const modalities[] = {"CT", "MR", "PT", "NM", "US",
                                             "CR", "DX", "MG", "XA", "RF",
                                             nullptr};
    for (int i = 0; modalities[i]; i++)
        if (h.modality == modalities[i])
            return true;
    return false;
}

/* Objects that carry no pixels of their own. */
const char *non_image(const header &h)
{
    static const char *const kinds[] = {"RTSTRUCT", "RTPLAN", "RTRECORD",
                                        "SR", "KO", "PR", "REG", "FID",
                                        "PLAN", "DOC", nullptr};
    for (int i = 0; kinds[i]; i++)
        if (h.modality == kinds[i])
            return kinds[i];
    if ((h.rows <= 0 || h.columns <= 0) && !image_kind(h))
        return "no image (no Rows/Columns)";
    return nullptr;
}

/* Why an image file cannot be decoded, seen on its header ("" if none). */
std::string damaged_image(const header &h)
{
    if (h.rows <= 0 || h.columns <= 0)
        return "an image without Rows/Columns: damaged or truncated";
    if (!h.layout.has_pixels)
        return "an image without pixel data: damaged or truncated";
    /* GDCM asserts (abort) decoding one sample a pixel under any other
     * name; a grey CT slice is MONOCHROME1 or 2 (colour is refused with
     * its own message) */
    if (h.samples == 1 && !h.photometric.empty() &&
        h.photometric != "MONOCHROME1" && h.photometric != "MONOCHROME2") {
        std::string shown = h.photometric.substr(0, 32);
        for (char &c : shown) /* damaged bytes stay out of the message */
            if (c < 0x20 || c > 0x7e)
                c = '?';
        return "PhotometricInterpretation '" + shown +
               "' is not a grey image (MONOCHROME1 or MONOCHROME2)";
    }
    return "";
}

void normal_of(const double iop[6], double n[3])
{
    n[0] = iop[1] * iop[5] - iop[2] * iop[4];
    n[1] = iop[2] * iop[3] - iop[0] * iop[5];
    n[2] = iop[0] * iop[4] - iop[1] * iop[3];
}

const char *base_name(const std::string &p)
{
    size_t s = p.rfind('/');
    return p.c_str() + (s == std::string::npos ? 0 : s + 1);
}

struct failure {
    kms_status code = KMS_OK;
    std::string file, message;
};

/* Files of one series must agree on what makes them one volume. */
bool check_alike(const std::vector<header> &hs, failure &f)
{
    const header &a = hs[0];
    for (const header &h : hs) {
        if (h.frames > 1) {
            f = {KMS_ERR_INPUT, h.path,
                 "multi-frame images are not supported (NumberOfFrames " +
                     std::to_string(h.frames) + ")"};
            return false;
        }
        if (h.samples != 1) {
            f = {KMS_ERR_INPUT, h.path,
                 "colour images are not supported (SamplesPerPixel " +
                     std::to_string(h.samples) + ")"};
            return false;
        }
        if (h.rows != a.rows || h.columns != a.columns) {
            char m[256];
            std::snprintf(m, sizeof m,
                          "slice size %dx%d differs from %dx%d of %s in the "
                          "same series",
                          h.columns, h.rows, a.columns, a.rows,
                          base_name(a.path));
            f = {KMS_ERR_INPUT, h.path, m};
            return false;
        }
        if (hs.size() > 1 && (!h.has_iop || !h.has_ipp)) {
            f = {KMS_ERR_INPUT, h.path,
                 "no ImageOrientationPatient/ImagePositionPatient: cannot "
                 "place the slice in its series"};
            return false;
        }
        for (int i = 0; i < 2; i++) {
            if (h.has_spacing != a.has_spacing ||
                std::fabs(h.spacing[i] - a.spacing[i]) >
                    1e-3 * std::fmax(1.0, a.spacing[i])) {
                char m[256];
                std::snprintf(m, sizeof m,
                              "PixelSpacing %g\\%g differs from %g\\%g of %s "
                              "in the same series",
                              h.spacing[0], h.spacing[1], a.spacing[0],
                              a.spacing[1], base_name(a.path));
                f = {KMS_ERR_INPUT, h.path, m};
                return false;
            }
        }
        for (int i = 0; i < 6; i++) {
            if (std::fabs(h.iop[i] - a.iop[i]) > 1e-3) {
                f = {KMS_ERR_INPUT, h.path,
                     std::string("ImageOrientationPatient differs from ") +
                         base_name(a.path) + " in the same series"};
                return false;
            }
        }
    }
    return true;
}

/* Sorts along the slice normal; equal positions are an error. */
bool sort_slices(std::vector<header> &hs, failure &f)
{
    if (hs.size() < 2)
        return true;
    double n[3];
    normal_of(hs[0].iop, n);
    for (header &h : hs)
        h.along = h.ipp[0] * n[0] + h.ipp[1] * n[1] + h.ipp[2] * n[2];
    std::stable_sort(hs.begin(), hs.end(), [](const header &x, const header &y) {
        return x.along < y.along || (x.along == y.along && x.path < y.path);
    });
    for (size_t i = 1; i < hs.size(); i++) {
        if (hs[i].along - hs[i - 1].along < 1e-3) {
            char m[256];
            std::snprintf(m, sizeof m, "same slice position (%.3f mm along the "
                                       "normal) as %s",
                          hs[i].along, hs[i - 1].path.c_str());
            f = {KMS_ERR_INPUT, hs[i].path, m};
            return false;
        }
    }
    return true;
}

/* Slice spacing of sorted slices: the median step. Gaps that are a whole
 * number of steps are missing slices (filled by interpolation on reading:
 * fill[i] slices go after slice i); steps off by at most 10 % are noted
 * and the mean step is used; any other step is an error (bad, why): the
 * slices would land at wrong places. */
struct spacing_plan {
    double step = 0;
    bool regular = true;
    std::vector<int> fill;
    int filled = 0;
    std::string note;
    bool bad = false;
    failure why;
};

enum { MAX_FILLED = 64 };

spacing_plan plan_spacing(const std::vector<header> &hs)
{
    spacing_plan p;
    size_t n = hs.size();
    p.fill.assign(n, 0);
    if (n < 2)
        return p;
    std::vector<double> d(n - 1);
    for (size_t i = 1; i < n; i++)
        d[i - 1] = hs[i].along - hs[i - 1].along;
    std::vector<double> s = d;
    std::nth_element(s.begin(), s.begin() + (long)(s.size() / 2), s.end());
    p.step = s[s.size() / 2];
    char m[1024];
    for (size_t i = 0; i + 1 < n; i++) {
        double ratio = d[i] / p.step;
        long k = std::lround(ratio);
        if (std::fabs(d[i] - p.step) <= 0.01 * p.step + 0.01)
            continue;
        if (k >= 2 && std::fabs(ratio - (double)k) < 0.1 &&
            p.filled + k - 1 <= MAX_FILLED) {
            p.fill[i] = (int)(k - 1);
            p.filled += (int)(k - 1);
            std::snprintf(m, sizeof m,
                          "%sgap of %.2f mm between %s and %s (slice spacing "
                          "%.2f mm): %ld missing slice(s) filled by "
                          "interpolation",
                          p.note.empty() ? "" : "; ", d[i],
                          base_name(hs[i].path), base_name(hs[i + 1].path),
                          p.step, k - 1);
        } else if (std::fabs(d[i] - p.step) > 0.1 * p.step) {
            std::snprintf(m, sizeof m,
                          "irregular slice spacing: %.2f mm between %s and %s, "
                          "where the series' spacing is %.2f mm",
                          d[i], base_name(hs[i].path), base_name(hs[i + 1].path),
                          p.step);
            p.bad = true;
            p.why = {KMS_ERR_INPUT, hs[i + 1].path, m};
            return p;
        } else {
            p.regular = false;
            std::snprintf(m, sizeof m,
                          "%sirregular slice spacing: %.2f mm between %s and "
                          "%s (usual %.2f mm)",
                          p.note.empty() ? "" : "; ", d[i],
                          base_name(hs[i].path), base_name(hs[i + 1].path),
                          p.step);
        }
        p.note += m;
    }
    if (!p.regular) {
        p.step = (hs[n - 1].along - hs[0].along) / (double)(n - 1);
        p.note += "; the mean spacing is used";
    }
    return p;
}

std::string modality_note(const header &h)
{
    if (h.modality == "CT")
        return "";
    std::string m = h.modality.empty() ? std::string("unknown") : h.modality;
    for (char &c : m) /* a damaged file's bytes stay out of summary.csv */
        if (c < 0x20 || c > 0x7e)
            c = '?';
    return "modality " + m + ", not CT: values may not be HU";
}

std::string join_notes(const std::string &a, const std::string &b)
{
    if (a.empty())
        return b;
    if (b.empty())
        return a;
    return a + "; " + b;
}

/* Only [A-Za-z0-9._-]; runs of anything else become one '_'; no '_', '.'
 * or '-' at the ends (no hidden files, no "..") */
std::string safe_name(const std::string &s)
{
    std::string o;
    for (unsigned char c : s) {
        bool ok = std::isalnum(c) || c == '.' || c == '_' || c == '-';
        char put = ok && c < 128 ? (char)c : '_';
        if (put == '_' && !o.empty() && o.back() == '_')
            continue;
        o += put;
    }
    size_t b = o.find_first_not_of("_.-");
    if (b == std::string::npos)
        return "";
    size_t e = o.find_last_not_of("_.-");
    return o.substr(b, e - b + 1);
}

std::string series_name(const header &h)
{
    std::string n = safe_name(h.patient_id + "_" + h.series_number + "_" +
                              h.series_desc);
    if (n.empty())
        n = safe_name(h.series_uid);
    return n.empty() ? "dicom" : n;
}

char *dup(const std::string &s)
{
    char *p = static_cast<char *>(std::malloc(s.size() + 1));
    if (!p)
        throw std::bad_alloc();
    std::memcpy(p, s.c_str(), s.size() + 1);
    return p;
}

kms_status set_failure(kms_error *err, const failure &f)
{
    return kms_error_set(err, f.code, f.file.c_str(), 0, nullptr, "%s",
                         f.message.c_str());
}

/* ---- reading ---------------------------------------------------------- */

/* One decoded slice: HU into the S16 stack when every value is integral and
 * fits, else into f (a float copy, merged at the end). */
struct slice_out {
    int16_t *s16;
    std::vector<float> f;
    bool failed = false;
    /* why, in fixed storage: filled on worker threads, also after a
     * bad_alloc, so recording it must not allocate (or throw) */
    kms_status code = KMS_OK;
    char why[256] = "";
};

__attribute__((format(printf, 3, 4))) void
fail_slice(slice_out &o, kms_status code, const char *fmt, ...)
{
    o.failed = true;
    o.code = code;
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(o.why, sizeof o.why, fmt, ap);
    va_end(ap);
}

template <typename T>
bool rescale(const T *in, size_t n, double slope, double inter, slice_out &o)
{
    bool fits = true;
    if (slope == 1 && inter == std::floor(inter) && std::fabs(inter) < 65536 &&
        sizeof(T) <= 2) {
        /* the usual case: stored + integral intercept; two passes without
         * branches (range, then values) that the compiler vectorises */
        const int32_t b = (int32_t)inter;
        T lo = n ? in[0] : 0, hi = lo;
        for (size_t i = 0; i < n; i++) {
            lo = in[i] < lo ? in[i] : lo;
            hi = in[i] > hi ? in[i] : hi;
        }
        fits = (int32_t)lo + b >= INT16_MIN && (int32_t)hi + b <= INT16_MAX;
        if (fits)
            for (size_t i = 0; i < n; i++)
                o.s16[i] = (int16_t)((int32_t)in[i] + b);
    } else {
        for (size_t i = 0; i < n; i++) {
            double v = (double)in[i] * slope + inter;
            if (v != std::floor(v) || v < INT16_MIN || v > INT16_MAX) {
                fits = false;
                break;
            }
            o.s16[i] = (int16_t)v;
        }
    }
    if (fits)
        return true;
    o.f.resize(n);
    for (size_t i = 0; i < n; i++)
        o.f[i] = (float)((double)in[i] * slope + inter);
    return false;
}

/* Compressed pixel data is decoded in a child process, into memory shared
 * with it: openjp2 crashes (heap corruption, wild reads) on some damaged
 * JPEG 2000 codestreams, and GDCM's JPEG codecs assert (abort) on damaged
 * ones (found by tests/fuzz), which no check of the header can see. A crash
 * there fails the slice, not the batch; a slice the child decoded reads the
 * same way in the parent. */
bool decoded_apart(const header &h)
{
    const char *ts = h.layout.transfer_syntax;
    return h.layout.encapsulated || !std::strcmp(ts, "1.2.840.10008.1.2.4.90") ||
           !std::strcmp(ts, "1.2.840.10008.1.2.4.91") ||
           !std::strncmp(ts, "1.2.840.10008.1.2.4.20", 22);
}

struct shared_buffer {
    void *p = MAP_FAILED;
    size_t n = 0;
    ~shared_buffer()
    {
        if (p != MAP_FAILED)
            munmap(p, n);
    }
};

/* The decoded pixels of h (len bytes) into sb, decoded in a child. */
bool decode_in_child(const header &h, size_t len, shared_buffer &sb,
                     slice_out &o)
{
    sb.n = len ? len : 1;
    sb.p = mmap(nullptr, sb.n, PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sb.p == MAP_FAILED) {
        fail_slice(o, KMS_ERR_NOMEM, "no memory for the decoded slice");
        return false;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fail_slice(o, KMS_ERR_IO, "cannot start a process to decode the "
                                  "compressed pixel data");
        return false;
    }
    if (pid == 0) {
        /* A crash must end the child, with a status the parent reads: not
         * run a crash handler it inherited (a sanitizer's or libFuzzer's,
         * which report it as the whole program's), nor a stop flag. */
        for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGALRM,
                        SIGINT, SIGTERM})
            signal(sig, SIG_DFL);
        alarm(120); /* a hang in the child ends too */
        int rc = 1;
        try {
            gdcm::ImageReader r;
            r.SetFileName(h.path.c_str());
            if (r.Read() && r.GetImage().GetBufferLength() == len &&
                r.GetImage().GetBuffer(static_cast<char *>(sb.p)))
                rc = 0;
        } catch (...) {
        }
        _exit(rc);
    }
    int status = 0;
    pid_t got;
    while ((got = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    /* no status (SIGCHLD ignored by whoever started us: the child reaped
     * itself) is no proof of a decode */
    if (got != pid) {
        fail_slice(o, KMS_ERR_IO, "cannot decode the compressed pixel data: "
                                  "lost the decoding process (%s)",
                   std::strerror(errno));
        return false;
    }
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
        fail_slice(o, KMS_ERR_INPUT, "cannot decode the compressed pixel data: "
                                     "the decoder took over 120 s");
        return false;
    }
    if (WIFSIGNALED(status) &&
        (WTERMSIG(status) == SIGINT || WTERMSIG(status) == SIGTERM)) {
        fail_slice(o, KMS_ERR_IO, "interrupted while decoding (signal %d)",
                   WTERMSIG(status));
        return false;
    }
    if (WIFSIGNALED(status)) {
        fail_slice(o, KMS_ERR_INPUT,
                   "cannot decode the compressed pixel data: the decoder "
                   "crashed (signal %d): damaged pixel data",
                   WTERMSIG(status));
        return false;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fail_slice(o, KMS_ERR_INPUT, "cannot decode the pixel data");
        return false;
    }
    return true;
}

void decode_slice(const header &h, slice_out &o)
{
    try {
        shared_buffer isolated;
        if (decoded_apart(h) && h.rows > 0 && h.columns > 0 && h.bits > 0 &&
            !decode_in_child(h,
                             (size_t)h.rows * (size_t)h.columns *
                                 (size_t)(h.bits / 8) * (size_t)h.samples,
                             isolated, o))
            return;
        gdcm::ImageReader r;
        r.SetFileName(h.path.c_str());
        if (!r.Read()) {
            fail_slice(o, KMS_ERR_INPUT, "GDCM cannot read this file");
            return;
        }
        const gdcm::Image &img = r.GetImage();
        const unsigned int *dims = img.GetDimensions();
        const gdcm::PixelFormat &pf = img.GetPixelFormat();
        if (pf.GetSamplesPerPixel() != 1) {
            fail_slice(o, KMS_ERR_INPUT, "colour images are not supported");
            return;
        }
        if (dims[0] != (unsigned)h.columns || dims[1] != (unsigned)h.rows ||
            (img.GetNumberOfDimensions() > 2 && dims[2] > 1)) {
            fail_slice(o, KMS_ERR_INPUT,
                       "decoded image size differs from its header");
            return;
        }
        size_t n = (size_t)h.rows * (size_t)h.columns;
        size_t bytes = pf.GetBitsAllocated() / 8;
        unsigned long len = img.GetBufferLength();
        if (bytes == 0 || len != n * bytes) {
            fail_slice(o, KMS_ERR_INPUT,
                       "unsupported pixel data (BitsAllocated %u)",
                       (unsigned)pf.GetBitsAllocated());
            return;
        }
        /* GDCM accepts a file cut in its (uncompressed) pixel data, with
         * only a warning; the walk (read_header) knows the exact extent:
         * the value must hold every pixel, and the file the whole value */
        const gdcm::ByteValue *raw = img.GetDataElement().GetByteValue();
        const kms_dicom_layout &lay = h.layout;
        if (!lay.has_pixels) {
            fail_slice(o, KMS_ERR_INPUT, "no pixel data");
            return;
        }
        if (!lay.encapsulated &&
            (lay.pixel_length < len ||
             lay.pixel_offset + lay.pixel_length > lay.file_size)) {
            fail_slice(o, KMS_ERR_INPUT,
                       "truncated: %llu bytes of pixel data, %lu needed "
                       "(file of %llu bytes)",
                       (unsigned long long)lay.pixel_length, len,
                       (unsigned long long)lay.file_size);
            return;
        }
        /* native pixels are used where they are; anything else (codecs,
         * big endian) is decoded by GDCM */
        std::vector<char> buf;
        const void *p = nullptr;
        const gdcm::TransferSyntax &ts = img.GetTransferSyntax();
        /* (GDCM masks and sign-extends when fewer bits are stored) */
        if (raw && !ts.IsEncapsulated() &&
            ts.GetSwapCode() == gdcm::SwapCode::LittleEndian &&
            pf.GetBitsStored() == pf.GetBitsAllocated() &&
            raw->GetLength() >= len && raw->GetPointer()) {
            p = raw->GetPointer();
        } else if (isolated.p != MAP_FAILED && isolated.n == len) {
            p = isolated.p; /* decoded by the child */
        } else {
            buf.resize(len);
            if (!img.GetBuffer(buf.data())) {
                fail_slice(o, KMS_ERR_INPUT, "cannot decode the pixel data");
                return;
            }
            p = buf.data();
        }
        bool sgn = pf.GetPixelRepresentation() == 1;
        double s = h.slope, b = h.intercept;
        switch (pf.GetBitsAllocated()) {
        case 8:
            sgn ? rescale((const int8_t *)p, n, s, b, o)
                : rescale((const uint8_t *)p, n, s, b, o);
            break;
        case 16:
            sgn ? rescale((const int16_t *)p, n, s, b, o)
                : rescale((const uint16_t *)p, n, s, b, o);
            break;
        case 32:
            sgn ? rescale((const int32_t *)p, n, s, b, o)
                : rescale((const uint32_t *)p, n, s, b, o);
            break;
        default:
            fail_slice(o, KMS_ERR_INPUT, "unsupported BitsAllocated %u",
                       (unsigned)pf.GetBitsAllocated());
        }
    } catch (const std::bad_alloc &) {
        fail_slice(o, KMS_ERR_NOMEM, "out of memory decoding the slice");
    } catch (const std::exception &e) {
        fail_slice(o, KMS_ERR_INPUT, "cannot decode the pixel data: %s",
                   e.what());
    } catch (...) {
        fail_slice(o, KMS_ERR_INPUT, "cannot decode the pixel data");
    }
}

kms_status read_series(const char *const *files, size_t n, int threads,
                       size_t max_voxels,
                       kms_dicom_volume *vol, kms_error *err)
{
    std::vector<header> hs(n);
    for (size_t i = 0; i < n; i++) {
        std::string why;
        if (!read_header(files[i], hs[i], why))
            return kms_error_set(err, KMS_ERR_INPUT, files[i], 0, nullptr,
                                 "%s", why.c_str());
        if (const char *what = non_image(hs[i]))
            return kms_error_set(err, KMS_ERR_INPUT, files[i], 0, nullptr,
                                 "%s, not an image", what);
        why = damaged_image(hs[i]);
        if (!why.empty())
            return kms_error_set(err, KMS_ERR_INPUT, files[i], 0, nullptr,
                                 "%s", why.c_str());
    }
    failure f;
    if (!check_alike(hs, f))
        return set_failure(err, f);
    const header &h0 = hs[0];
    if (h0.rows > KMS_DICOM_MAX_SIDE || h0.columns > KMS_DICOM_MAX_SIDE)
        return kms_error_set(err, KMS_ERR_INPUT, files[0], 0, nullptr,
                             "slice too large: %dx%d (at most %d a side)",
                             h0.columns, h0.rows, KMS_DICOM_MAX_SIDE);
    std::vector<header> sorted = hs;
    if (!sort_slices(sorted, f))
        return set_failure(err, f);
    for (size_t i = 0; i < n; i++)
        if (sorted[i].path != hs[i].path)
            return kms_error_set(err, KMS_ERR_USAGE, files[i], 0, nullptr,
                                 "files not sorted along the slice normal "
                                 "(kms_dicom_group sorts them)");
    for (size_t i = 0; i < n; i++) /* the same order: take the positions */
        hs[i].along = sorted[i].along;
    spacing_plan plan = plan_spacing(hs);
    if (plan.bad)
        return set_failure(err, plan.why);
    size_t slices = n + (size_t)plan.filled;
    size_t per = (size_t)h0.rows * (size_t)h0.columns;
    if (slices > KMS_DICOM_MAX_SLICES || per * slices > KMS_DICOM_MAX_VOXELS)
        return kms_error_set(err, KMS_ERR_INPUT, files[0], 0, nullptr,
                             "series too large: %dx%d x %zu slices",
                             h0.columns, h0.rows, slices);
    if (per * slices > kms_max_pixels(max_voxels))
        return kms_error_set(err, KMS_ERR_INPUT, files[0], 0, nullptr,
                             "%dx%d x %zu slices: %zu voxels are more than "
                             "the limit of %zu (--max-pixels)",
                             h0.columns, h0.rows, slices, per * slices,
                             kms_max_pixels(max_voxels));

    /* freed on every way out, exceptions included */
    struct owned_image {
        kms_image img = {};
        ~owned_image() { kms_image_free(&img); }
    } holder;
    kms_image &img = holder.img;
    kms_status st = kms_image_alloc_raw(&img, h0.columns,
                                        (int)((size_t)h0.rows * slices), 1,
                                        KMS_DEPTH_S16, err);
    if (st != KMS_OK)
        return st;
    /* stack index of file i */
    std::vector<size_t> at(n);
    for (size_t i = 0, k = 0; i < n; k += 1 + (size_t)plan.fill[i], i++)
        at[i] = k;
    std::vector<slice_out> out(n);
    for (size_t i = 0; i < n; i++)
        out[i].s16 = (int16_t *)img.data + at[i] * per;

    /* slices are independent: decode on the threads we were given */
    size_t workers = std::min<size_t>(threads > 1 ? (size_t)threads : 1, n);
#ifdef __SANITIZE_ADDRESS__
    /* GCC 12's AddressSanitizer does not lock its allocator across fork()
     * (glibc's malloc does), so a decoding child forked while a sibling
     * decoder allocates can hang on that lock: one decoder at a time. */
    if (std::any_of(hs.begin(), hs.end(), decoded_apart))
        workers = 1;
#endif
    std::vector<std::thread> pool;
    std::atomic_size_t next(0);
    auto work = [&] {
        for (size_t i; (i = next++) < n;)
            decode_slice(hs[i], out[i]);
    };
    try {
        for (size_t w = 1; w < workers; w++)
            pool.emplace_back(work);
    } catch (...) {
        /* no thread: the ones started and this one do the work */
    }
    work();
    for (std::thread &t : pool)
        t.join();
    for (size_t i = 0; i < n; i++) {
        if (out[i].failed)
            return kms_error_set(err, out[i].code, hs[i].path.c_str(), 0,
                                 nullptr, "%s", out[i].why);
    }

    bool any_float = false;
    for (const slice_out &o : out)
        any_float = any_float || !o.f.empty();
    if (any_float) {
        kms_image fimg = {};
        st = kms_image_alloc_raw(&fimg, img.width, img.height, 1,
                                 KMS_DEPTH_F32, err);
        if (st != KMS_OK)
            return st;
        for (size_t i = 0; i < n; i++) {
            float *dst = (float *)fimg.data + at[i] * per;
            if (!out[i].f.empty())
                std::memcpy(dst, out[i].f.data(), per * sizeof(float));
            else
                for (size_t j = 0; j < per; j++)
                    dst[j] = out[i].s16[j];
        }
        kms_image_move(&img, &fimg);
    }
    /* missing slices: linear between their neighbours */
    for (size_t i = 0; i + 1 < n; i++) {
        for (int m = 1; m <= plan.fill[i]; m++) {
            double w = (double)m / (plan.fill[i] + 1);
            size_t a = at[i] * per, b = at[i + 1] * per, c = (at[i] + m) * per;
            if (img.depth == KMS_DEPTH_S16) {
                int16_t *p = (int16_t *)img.data;
                for (size_t j = 0; j < per; j++)
                    p[c + j] = (int16_t)std::lround((1 - w) * p[a + j] +
                                                    w * p[b + j]);
            } else {
                float *p = (float *)img.data;
                for (size_t j = 0; j < per; j++)
                    p[c + j] = (float)((1 - w) * p[a + j] + w * p[b + j]);
            }
        }
    }

    /* geometry */
    std::memset(vol, 0, sizeof *vol);
    kms_image_move(&vol->img, &img);
    vol->columns = h0.columns;
    vol->rows = h0.rows;
    vol->slices = (int)slices;
    vol->row_spacing = h0.spacing[0];
    vol->column_spacing = h0.spacing[1];
    vol->has_geometry = h0.has_iop && h0.has_ipp;
    std::memcpy(vol->orientation, h0.iop, sizeof h0.iop);
    double cs = h0.spacing[1] > 0 ? h0.spacing[1] : 1;
    double rs = h0.spacing[0] > 0 ? h0.spacing[0] : 1;
    double nrm[3];
    normal_of(h0.iop, nrm);
    for (int r = 0; r < 3; r++) {
        vol->affine[r][0] = h0.iop[r] * cs;
        vol->affine[r][1] = h0.iop[3 + r] * rs;
        /* the step from the first to the last position: keeps a gantry
         * tilt, as dcm2niix does */
        vol->affine[r][2] =
            n > 1 ? (hs[n - 1].ipp[r] - h0.ipp[r]) / (double)(slices - 1)
                  : nrm[r];
        vol->affine[r][3] = h0.ipp[r];
    }
    vol->affine[3][3] = 1;
    std::snprintf(vol->modality, sizeof vol->modality, "%s",
                  h0.modality.c_str());
    std::string note = join_notes(plan.note, modality_note(h0));
    if (!h0.has_spacing)
        note = join_notes(note, "no PixelSpacing: 1 mm assumed");
    std::snprintf(vol->note, sizeof vol->note, "%s", note.c_str());
    return KMS_OK;
}

kms_status group_files(const char *const *paths, size_t n,
                       kms_dicom_groups *out)
{
    std::map<std::string, std::vector<header>> by_uid;
    std::vector<std::pair<std::string, std::string>> skipped, unreadable;
    for (size_t i = 0; i < n; i++) {
        header h;
        std::string why;
        if (!read_header(paths[i], h, why)) {
            unreadable.emplace_back(paths[i], why);
            continue;
        }
        if (const char *what = non_image(h)) {
            skipped.emplace_back(paths[i], std::string(what) + ", not an image");
            continue;
        }
        why = damaged_image(h);
        if (!why.empty()) {
            unreadable.emplace_back(paths[i], why);
            continue;
        }
        /* no SeriesInstanceUID: nothing says which files belong
         * together, so the file is a series of its own (a 2-D slice) */
        std::string key = h.series_uid.empty() ? "\x01" + h.path : h.series_uid;
        by_uid[key].push_back(std::move(h));
    }

    struct group {
        std::string name, uid;
        std::vector<header> files;
        bool bad = false;
        failure why;
    };
    std::vector<group> gs;
    for (auto &kv : by_uid) {
        group g;
        g.uid = kv.first;
        g.files = std::move(kv.second);
        std::sort(g.files.begin(), g.files.end(),
                  [](const header &a, const header &b) { return a.path < b.path; });
        g.name = series_name(g.files[0]);
        if (!check_alike(g.files, g.why) || !sort_slices(g.files, g.why)) {
            g.bad = true;
        } else {
            spacing_plan plan = plan_spacing(g.files);
            if (plan.bad) {
                g.bad = true;
                g.why = plan.why;
            }
        }
        /* a file beside the series' files that cannot be read may be one
         * of its slices: never complete the series without it (a gap
         * would be filled by interpolation, silently) */
        for (size_t u = 0; u < unreadable.size() && !g.bad; u++) {
            const std::string &bad = unreadable[u].first;
            std::string dir = bad.substr(0, bad.rfind('/') + 1);
            for (const header &h : g.files) {
                if (h.path.size() > dir.size() &&
                    h.path.compare(0, dir.size(), dir) == 0 &&
                    h.path.find('/', dir.size()) == std::string::npos) {
                    g.bad = true;
                    g.why = {KMS_ERR_INPUT, bad,
                             "slice " + std::string(base_name(bad)) +
                                 " of this series cannot be read: " +
                                 unreadable[u].second};
                    break;
                }
            }
        }
        gs.push_back(std::move(g));
    }
    std::sort(gs.begin(), gs.end(), [](const group &a, const group &b) {
        return a.name < b.name || (a.name == b.name && a.uid < b.uid);
    });
    /* unique names: the second P1_3_Chest becomes P1_3_Chest_2 */
    std::map<std::string, int> seen;
    for (group &g : gs) {
        int &count = seen[g.name];
        if (++count > 1) {
            std::string base = g.name;
            do
                g.name = base + "_" + std::to_string(count++);
            while (seen.count(g.name));
            seen[g.name] = 1;
        }
    }

    out->series = static_cast<kms_dicom_series *>(
        std::calloc(gs.size() + 1, sizeof *out->series));
    out->skipped = static_cast<kms_dicom_skip *>(
        std::calloc(skipped.size() + 1, sizeof *out->skipped));
    out->unreadable = static_cast<kms_dicom_skip *>(
        std::calloc(unreadable.size() + 1, sizeof *out->unreadable));
    if (!out->series || !out->skipped || !out->unreadable)
        throw std::bad_alloc();
    for (const auto &s : skipped) {
        kms_dicom_skip *k = &out->skipped[out->n_skipped++];
        k->path = dup(s.first);
        k->reason = dup(s.second);
    }
    for (const auto &s : unreadable) {
        kms_dicom_skip *k = &out->unreadable[out->n_unreadable++];
        k->path = dup(s.first);
        k->reason = dup(s.second);
    }
    for (const group &g : gs) {
        kms_dicom_series *s = &out->series[out->n_series++];
        s->name = dup(g.name);
        s->files = static_cast<char **>(
            std::calloc(g.files.size(), sizeof *s->files));
        if (!s->files)
            throw std::bad_alloc();
        for (const header &h : g.files)
            s->files[s->n_files++] = dup(h.path);
        if (g.bad) {
            s->error = static_cast<kms_error *>(std::calloc(1, sizeof *s->error));
            if (!s->error)
                throw std::bad_alloc();
            set_failure(s->error, g.why);
        }
    }
    return KMS_OK;
}

} // namespace

extern "C" bool kms_dicom_name(const char *path)
{
    return path && (kms_ends_with(path, ".dcm") || kms_ends_with(path, ".dicom") ||
                    kms_ends_with(path, ".ima"));
}

extern "C" bool kms_dicom_is_file(const char *path)
{
    /* only a regular file is one: opening a FIFO would wait for a writer
     * forever (the input list fails such names on its own) */
    struct stat sb;
    if (!path || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return false;
    if (kms_dicom_name(path))
        return true;
    FILE *f = std::fopen(path, "rb");
    if (!f)
        return false;
    unsigned char b[132];
    bool yes = std::fread(b, 1, sizeof b, f) == sizeof b &&
               std::memcmp(b + 128, "DICM", 4) == 0;
    std::fclose(f);
    return yes;
}

extern "C" kms_status kms_dicom_group(const char *const *paths, size_t n,
                                      kms_dicom_groups *out, kms_error *err)
{
    if (!out || (n && !paths))
        return kms_error_set(err, KMS_ERR_USAGE, nullptr, 0, nullptr,
                             "no files or no result");
    std::memset(out, 0, sizeof *out);
    quiet_gdcm();
    try {
        return group_files(paths, n, out);
    } catch (const std::bad_alloc &) {
        kms_dicom_groups_free(out);
        return kms_error_set(err, KMS_ERR_NOMEM, n ? paths[0] : nullptr, 0,
                             nullptr, "out of memory grouping DICOM files");
    } catch (const std::exception &e) {
        kms_dicom_groups_free(out);
        return kms_error_set(err, KMS_ERR_INPUT, n ? paths[0] : nullptr, 0,
                             nullptr, "cannot group DICOM files: %s", e.what());
    } catch (...) {
        kms_dicom_groups_free(out);
        return kms_error_set(err, KMS_ERR_INPUT, n ? paths[0] : nullptr, 0,
                             nullptr, "cannot group DICOM files");
    }
}

extern "C" void kms_dicom_groups_free(kms_dicom_groups *g)
{
    if (!g)
        return;
    for (size_t i = 0; g->series && i < g->n_series; i++) {
        kms_dicom_series *s = &g->series[i];
        std::free(s->name);
        for (size_t j = 0; j < s->n_files; j++)
            std::free(s->files[j]);
        std::free(s->files);
        std::free(s->error);
    }
    for (size_t i = 0; g->skipped && i < g->n_skipped; i++) {
        std::free(g->skipped[i].path);
        std::free(g->skipped[i].reason);
    }
    for (size_t i = 0; g->unreadable && i < g->n_unreadable; i++) {
        std::free(g->unreadable[i].path);
        std::free(g->unreadable[i].reason);
    }
    std::free(g->series);
    std::free(g->skipped);
    std::free(g->unreadable);
    std::memset(g, 0, sizeof *g);
}

extern "C" kms_status kms_dicom_read(const char *const *files, size_t n,
                                     int threads, size_t max_voxels,
                                     kms_dicom_volume *vol, kms_error *err)
{
    if (!vol || !files || n == 0)
        return kms_error_set(err, KMS_ERR_USAGE, nullptr, 0, nullptr,
                             "no DICOM files to read");
    std::memset(vol, 0, sizeof *vol);
    quiet_gdcm();
    try {
        return read_series(files, n, threads, max_voxels, vol, err);
    } catch (const std::bad_alloc &) {
        kms_dicom_volume_free(vol);
        return kms_error_set(err, KMS_ERR_NOMEM, files[0], 0, nullptr,
                             "out of memory reading the DICOM series");
    } catch (const std::exception &e) {
        kms_dicom_volume_free(vol);
        return kms_error_set(err, KMS_ERR_INPUT, files[0], 0, nullptr,
                             "cannot read the DICOM series: %s", e.what());
    } catch (...) {
        kms_dicom_volume_free(vol);
        return kms_error_set(err, KMS_ERR_INPUT, files[0], 0, nullptr,
                             "cannot read the DICOM series");
    }
}

extern "C" void kms_dicom_volume_free(kms_dicom_volume *vol)
{
    if (!vol)
        return;
    kms_image_free(&vol->img);
    std::memset(vol, 0, sizeof *vol);
}

extern "C" int kms_dicom_orient(const double iop[6], bool *known)
{
    *known = false;
    if (!iop)
        return 0;
    /* axis (0 x, 1 y, 2 z) and sign of the largest component */
    int axis[2], sign[2];
    for (int d = 0; d < 2; d++) {
        const double *v = iop + 3 * d;
        int a = 0;
        for (int i = 1; i < 3; i++)
            if (std::fabs(v[i]) > std::fabs(v[a]))
                a = i;
        if (!(std::fabs(v[a]) > 0))
            return 0;
        axis[d] = a;
        sign[d] = v[a] < 0 ? -1 : 1;
    }
    double n[3];
    normal_of(iop, n);
    bool axial = std::fabs(n[2]) > std::fabs(n[0]) &&
                 std::fabs(n[2]) > std::fabs(n[1]);
    if (!axial || axis[0] == 2 || axis[1] == 2 || axis[0] == axis[1])
        return 0;
    *known = true;
    /* d = 0: the direction of increasing column index, d = 1: of rows */
    if (axis[0] == 0)
        return (sign[0] < 0 ? 1 : 0) | (sign[1] < 0 ? 2 : 0);
    /* columns run along y: transpose first, then the old rows are columns */
    return 4 | (sign[1] < 0 ? 1 : 0) | (sign[0] < 0 ? 2 : 0);
}
