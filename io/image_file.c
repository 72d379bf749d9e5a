/* Image files read by kmseg's own code before (or instead of) OpenCV's
 * decoders: whole-file loading, truncation checks, and plain CT TIFFs. */
#include "image_file.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Reads the whole file: one read for the decoder, and room to look at the
 * bytes first. */
kms_status kms_file_load(const char *path, unsigned char **buf, size_t *len,
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

/* Walks a JPEG's marker segments from SOI: *sof at the frame header (FFC0-
 * FFCF but DHT, JPG, DAC), *sos at the first scan (FFDA); 0 when not met.
 * It finds markers the way libjpeg's next_marker does, so that it sees the
 * frame header libjpeg will decode: bytes that are not FF before a marker
 * are skipped as garbage (libjpeg only warns), as are FF fill bytes and a
 * stuffed FF 00. TEM and RSTn have no length. */
static void jpeg_walk(const unsigned char *buf, size_t len, size_t *sof,
                      size_t *sos)
{
    *sof = *sos = 0;
    if (len < 4 || buf[0] != 0xFF || buf[1] != 0xD8)
        return;
    size_t pos = 2;
    for (;;) {
        while (pos < len && buf[pos] != 0xFF)
            pos++;
        while (pos + 1 < len && buf[pos + 1] == 0xFF)
            pos++;
        if (pos + 1 >= len)
            return;
        unsigned m = buf[pos + 1];
        if (m == 0x00) { /* FF 00: data, not a marker */
            pos += 2;
            continue;
        }
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { /* no length */
            pos += 2;
            continue;
        }
        if (m == 0xD9)
            return;
        bool frame = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 &&
                     m != 0xCC;
        if (frame && !*sof)
            *sof = pos;
        if (m == 0xDA) {
            *sos = pos;
            return;
        }
        if (pos + 4 > len)
            return;
        size_t seg = (size_t)buf[pos + 2] << 8 | buf[pos + 3];
        if (seg < 2)
            return;
        pos += 2 + seg;
    }
}

/* A JPEG's scan ends with the EOI marker (FF D9). libjpeg decodes a cut
 * file as far as it goes, fills the rest with grey and only warns; a cut
 * file is an error here instead. In the entropy-coded data FF is always
 * followed by 00 or a restart marker, so an FF D9 after the first scan
 * starts is the real EOI (a thumbnail's sits in a segment before it;
 * whatever a phone appends after it, a video say, does not matter). */
static kms_status check_jpeg(const char *path, const unsigned char *buf,
                             size_t len, kms_error *err)
{
    size_t sof, sos;
    jpeg_walk(buf, len, &sof, &sos);
    if (!sos)
        return KMS_OK; /* not a JPEG, or one the decoder will refuse */
    for (size_t i = sos + 1; i + 1 < len; i++)
        if (buf[i] == 0xFF && buf[i + 1] == 0xD9)
            return KMS_OK;
    return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                         "truncated JPEG: the file ends at byte %zu without "
                         "its end-of-image marker (FF D9)",
                         len);
}

kms_status kms_image_file_check(const char *path, const unsigned char *buf,
                                size_t len, kms_error *err)
{
    kms_status st = check_png(path, buf, len, err);
    return st == KMS_OK ? check_jpeg(path, buf, len, err) : st;
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

/* The first IFD's entries (12 bytes each) and their count *n, when t is a
 * TIFF of its byte order whose first IFD lies within the file; else NULL. */
static const unsigned char *tiff_first_ifd(const tiff_view *t, uint32_t *n)
{
    if (t->len < 8 || memcmp(t->buf, t->big ? "MM\0*" : "II*\0", 4) != 0)
        return NULL;
    size_t ifd = tiff_u32(t, t->buf + 4);
    if (ifd > t->len || t->len - ifd < 2)
        return NULL;
    *n = tiff_u16(t, t->buf + ifd);
    if ((t->len - ifd - 2) / 12 < *n)
        return NULL;
    return t->buf + ifd + 2;
}

/* mm per pixel (x, y) from the first IFD's XResolution, YResolution (282,
 * 283; y defaults to x) and ResolutionUnit (296: 2 inch, TIFF's default,
 * or 3 cm); both 0 unless the file is a TIFF saying so plausibly. */
void kms_tiff_pixel_mm(const unsigned char *buf, size_t len, double mm[2])
{
    tiff_view t = {buf, len, len >= 4 && memcmp(buf, "MM\0*", 4) == 0};
    mm[0] = mm[1] = 0;
    uint32_t n, unit = 2;
    const unsigned char *entries = tiff_first_ifd(&t, &n);
    if (!entries)
        return;
    double res[2] = {0, 0};
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *e = entries + 12 * (size_t)i;
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

/* Width and height from a PNG's IHDR, a JPEG's frame header (SOFn), a
 * TIFF's first IFD or a BMP's header; false for other or damaged files. */
static bool png_size(const unsigned char *buf, size_t len, uint32_t *w,
                     uint32_t *h)
{
    if (len < 24 || memcmp(buf + 1, "PNG", 3) != 0 ||
        memcmp(buf + 12, "IHDR", 4) != 0)
        return false;
    *w = be32(buf + 16);
    *h = be32(buf + 20);
    return true;
}

static bool jpeg_size(const unsigned char *buf, size_t len, uint32_t *w,
                      uint32_t *h)
{
    size_t sof, sos;
    jpeg_walk(buf, len, &sof, &sos);
    if (!sof || sof + 9 > len)
        return false;
    *h = (uint32_t)buf[sof + 5] << 8 | buf[sof + 6];
    *w = (uint32_t)buf[sof + 7] << 8 | buf[sof + 8];
    return true;
}

static bool tiff_size(const unsigned char *buf, size_t len, uint32_t *w,
                      uint32_t *h)
{
    tiff_view t = {buf, len, len >= 4 && memcmp(buf, "MM\0*", 4) == 0};
    uint32_t n;
    const unsigned char *entries = tiff_first_ifd(&t, &n);
    if (!entries)
        return false;
    bool got_w = false, got_h = false;
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *e = entries + 12 * (size_t)i;
        uint32_t tag = tiff_u16(&t, e);
        if (tag == 256)
            got_w = tiff_value(&t, e, 0, w);
        else if (tag == 257)
            got_h = tiff_value(&t, e, 0, h);
    }
    return got_w && got_h;
}

static bool bmp_size(const unsigned char *buf, size_t len, uint32_t *w,
                     uint32_t *h)
{
    if (len < 26 || buf[0] != 'B' || buf[1] != 'M')
        return false;
    if (le32(buf + 14) == 12) { /* OS/2 1.x core header: 16-bit sizes */
        *w = le16(buf + 18);
        *h = le16(buf + 20);
        return true;
    }
    int32_t sw, sh;
    uint32_t uw = le32(buf + 18), uh = le32(buf + 22);
    memcpy(&sw, &uw, 4);
    memcpy(&sh, &uh, 4);
    /* a negative height is a top-down bitmap */
    *w = sw < 0 ? 0u - (uint32_t)sw : (uint32_t)sw;
    *h = sh < 0 ? 0u - (uint32_t)sh : (uint32_t)sh;
    return true;
}

kms_status kms_image_file_check_size(const char *path, const unsigned char *buf,
                                     size_t len, size_t max_pixels,
                                     kms_error *err)
{
    uint32_t w = 0, h = 0;
    bool jpeg = len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF;
    if (jpeg && !jpeg_size(buf, len, &w, &h))
        /* libjpeg would refuse it too, but only once it has found a size
         * this walk missed and allocated for it */
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                             "JPEG without a frame header (SOFn) before its "
                             "first scan");
    if (!jpeg && !png_size(buf, len, &w, &h) && !tiff_size(buf, len, &w, &h) &&
        !bmp_size(buf, len, &w, &h))
        return KMS_OK; /* the decoder's own limit applies */
    double pixels = (double)w * h;
    if (pixels > (double)kms_max_pixels(max_pixels))
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                             "%u x %u = %.0f pixels are more than the limit "
                             "of %zu (--max-pixels)",
                             w, h, pixels, kms_max_pixels(max_pixels));
    return KMS_OK;
}

typedef struct tiff_layout {
    uint32_t width, height, rows_per_strip;
    const unsigned char *offsets, *counts; /* IFD entries of the strips */
} tiff_layout;

/* Reads the first IFD; false unless it is the plain layout above. */
static bool tiff_plain_layout(const tiff_view *t, tiff_layout *l)
{
    uint32_t n;
    const unsigned char *entries = t->big ? NULL : tiff_first_ifd(t, &n);
    if (!entries)
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
        const unsigned char *e = entries + 12 * (size_t)i;
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
bool kms_tiff_read_plain(const unsigned char *buf, size_t len, kms_image *out,
                         kms_error *err, kms_status *st)
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

