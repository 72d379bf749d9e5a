/* dicom_walk: see dicom_walk.h. Reads go through one small window (pread),
 * so a header costs a read or two and the pixel data is never touched. */
#define _XOPEN_SOURCE 700
#include "dicom_walk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { WINDOW = 8192, UNDEFINED = -1 };
#define UNDEF_LEN 0xFFFFFFFFu

typedef struct walker {
    int fd;
    uint64_t size;
    unsigned char win[WINDOW];
    uint64_t win_off;
    size_t win_len;
    bool big; /* data set in explicit VR big endian */
    kms_dicom_vr_check check;
    bool rle; /* RLE transfer syntax: fragments start with an RLE header */
    kms_dicom_walk_result result;
    kms_dicom_layout *out;
} walker;

typedef struct elem {
    uint16_t group, element;
    char vr[3];      /* "" for item tags and implicit VR */
    uint32_t length;
    unsigned header; /* bytes before the value */
} elem;

static bool fail(walker *w, kms_dicom_walk_result r, uint64_t at,
                 const char *fmt, ...)
{
    w->result = r;
    w->out->bad_at = at;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->out->why, sizeof w->out->why, fmt, ap);
    va_end(ap);
    return false;
}

/* n (<= WINDOW) bytes at off, or NULL when the file ends before */
static const unsigned char *bytes(walker *w, uint64_t off, size_t n)
{
    if (n > WINDOW || off > w->size || w->size - off < n)
        return NULL;
    if (off >= w->win_off && off + n <= w->win_off + w->win_len)
        return w->win + (off - w->win_off);
    uint64_t want = w->size - off < WINDOW ? w->size - off : WINDOW;
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(w->fd, w->win + got, (size_t)want - got,
                          (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    w->win_off = off;
    w->win_len = got;
    return got >= n ? w->win : NULL;
}

static uint16_t u16(const walker *w, const unsigned char *p)
{
    return w->big ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t u32(const walker *w, const unsigned char *p)
{
    return w->big ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                        (uint32_t)p[2] << 8 | p[3]
                  : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 |
                        (uint32_t)p[1] << 8 | p[0];
}

static const char valid_vrs[] = "AEASATCSDADSDTFLFDISLOLTOBODOFOLOVOWPNSHSL"
                                "SQSSSTSVTMUCUIULUNURUSUTUV";
static const char long_vrs[] = "OBODOFOLOVOWSQSVUCUNURUTUV";

static bool vr_in(const char *list, const unsigned char *vr)
{
    for (const char *p = list; *p; p += 2)
        if (p[0] == (char)vr[0] && p[1] == (char)vr[1])
            return true;
    return false;
}

/* The element header at pos, which must end by limit. */
static bool read_elem(walker *w, uint64_t pos, uint64_t limit, bool implicit,
                      elem *el)
{
    const unsigned char *p = limit - pos >= 8 ? bytes(w, pos, 8) : NULL;
    if (!p || pos + 8 > limit)
        return fail(w, KMS_DICOM_WALK_CORRUPT, pos,
                    "an element header runs past the end of %s",
                    limit < w->size ? "its item" : "the file");
    el->group = u16(w, p);
    el->element = u16(w, p + 2);
    el->vr[0] = '\0';
    if (el->group == 0xFFFE || implicit) {
        el->length = u32(w, p + 4);
        el->header = 8;
        return true;
    }
    if (!vr_in(valid_vrs, p + 4))
        return fail(w, KMS_DICOM_WALK_CORRUPT, pos,
                    "element (%04X,%04X) has no valid VR", el->group,
                    el->element);
    el->vr[0] = (char)p[4];
    el->vr[1] = (char)p[5];
    el->vr[2] = '\0';
    if (w->check && !w->check(el->group, el->element, el->vr))
        return fail(w, KMS_DICOM_WALK_CORRUPT, pos,
                    "element (%04X,%04X) has VR %s, not its dictionary's",
                    el->group, el->element, el->vr);
    if (!vr_in(long_vrs, p + 4)) {
        el->length = u16(w, p + 6);
        el->header = 8;
        return true;
    }
    if (limit - pos < 12 || !(p = bytes(w, pos, 12)))
        return fail(w, KMS_DICOM_WALK_CORRUPT, pos,
                    "an element header runs past the end of %s",
                    limit < w->size ? "its item" : "the file");
    el->length = u32(w, p + 8);
    el->header = 12;
    return true;
}

static bool walk_set(walker *w, uint64_t *pos, uint64_t end, bool in_item,
                     int depth, bool implicit);

/* Items of a sequence from *pos to end (UNDEFINED: to its delimiter). */
static bool walk_seq(walker *w, uint64_t *pos, uint64_t end, int depth,
                     bool implicit)
{
    if (depth > KMS_DICOM_WALK_MAX_DEPTH)
        return fail(w, KMS_DICOM_WALK_CORRUPT, *pos,
                    "sequences nested more than %d deep",
                    KMS_DICOM_WALK_MAX_DEPTH);
    uint64_t limit = end == (uint64_t)UNDEFINED ? w->size : end;
    for (;;) {
        if (end != (uint64_t)UNDEFINED && *pos == end)
            return true;
        elem el;
        if (!read_elem(w, *pos, limit, true, &el))
            return false;
        uint64_t v = *pos + 8;
        if (el.group == 0xFFFE && el.element == 0xE0DD &&
            end == (uint64_t)UNDEFINED) {
            *pos = v;
            return true;
        }
        if (el.group != 0xFFFE || el.element != 0xE000)
            return fail(w, KMS_DICOM_WALK_CORRUPT, *pos,
                        "(%04X,%04X) where a sequence item should be",
                        el.group, el.element);
        if (el.length == UNDEF_LEN) {
            *pos = v;
            if (!walk_set(w, pos, (uint64_t)UNDEFINED, true, depth, implicit))
                return false;
        } else {
            if (el.length > limit - v)
                return fail(w, KMS_DICOM_WALK_CORRUPT, *pos,
                            "an item of %u bytes runs past the end of %s",
                            el.length,
                            limit < w->size ? "its sequence" : "the file");
            *pos = v;
            if (!walk_set(w, pos, v + el.length, true, depth, implicit))
                return false;
        }
    }
}

/* An RLE fragment's header (PS3.5 G.3.1): 1-15 segments whose offsets,
 * the first 64, rise inside the fragment (GDCM asserts otherwise). */
static bool rle_header_fits(walker *w, uint64_t at, uint32_t length)
{
    const unsigned char *p = length >= 64 ? bytes(w, at, 64) : NULL;
    if (!p)
        return false;
    bool big = w->big;
    w->big = false; /* always little endian */
    uint32_t n = u32(w, p), prev = 0;
    bool ok = n >= 1 && n <= 15 && u32(w, p + 4) == 64;
    for (uint32_t i = 0; ok && i < n; i++) {
        uint32_t o = u32(w, p + 4 + 4 * i);
        ok = o >= 64 && o < length && (i == 0 || o > prev);
        prev = o;
    }
    w->big = big;
    return ok;
}

/* Fragments of encapsulated pixel data, up to the sequence delimiter. */
static bool walk_fragments(walker *w, uint64_t *pos, uint64_t limit)
{
    for (int index = 0;; index++) {
        elem el;
        if (!read_elem(w, *pos, limit, true, &el))
            return false;
        uint64_t v = *pos + 8;
        if (el.group == 0xFFFE && el.element == 0xE0DD) {
            *pos = v;
            return true;
        }
        if (el.group != 0xFFFE || el.element != 0xE000 ||
            el.length == UNDEF_LEN)
            return fail(w, KMS_DICOM_WALK_CORRUPT, *pos,
                        "(%04X,%04X) where a pixel data fragment should be",
                        el.group, el.element);
        if (el.length > limit - v)
            return fail(w, KMS_DICOM_WALK_TRUNCATED, *pos,
                        "truncated: a pixel data fragment of %u bytes runs "
                        "%llu bytes past the end of the file",
                        el.length,
                        (unsigned long long)(v + el.length - limit));
        /* (fragment 0 is the basic offset table) */
        if (w->rle && index > 0 && !rle_header_fits(w, v, el.length))
            return fail(w, KMS_DICOM_WALK_CORRUPT, *pos,
                        "a damaged RLE segment header");
        if (w->rle && index == 1 && w->out->rle_segments == 0) {
            const unsigned char *p = bytes(w, v, 4);
            w->out->rle_segments = p ? (unsigned)(p[0] | p[1] << 8) : 0;
        }
        *pos = v + el.length;
    }
}

/* Elements of one data set from *pos: up to end (a defined length), to the
 * item delimiter (end UNDEFINED, in_item) or to the end of the file. */
static bool walk_set(walker *w, uint64_t *pos, uint64_t end, bool in_item,
                     int depth, bool implicit)
{
    bool top = !in_item;
    uint64_t limit = end == (uint64_t)UNDEFINED ? w->size : end;
    for (;;) {
        if (*pos == limit && (end != (uint64_t)UNDEFINED || top))
            return true;
        elem el;
        uint64_t at = *pos;
        if (!read_elem(w, at, limit, implicit, &el))
            return false;
        uint64_t v = at + el.header;
        if (el.group == 0xFFFE) {
            if (el.element == 0xE00D && in_item &&
                end == (uint64_t)UNDEFINED) {
                *pos = v;
                return true;
            }
            return fail(w, KMS_DICOM_WALK_CORRUPT, at,
                        "item tag (FFFE,%04X) outside a sequence", el.element);
        }
        bool pixels = el.group == 0x7FE0 && el.element == 0x0010;
        bool undef = el.length == UNDEF_LEN;
        bool seq = !strcmp(el.vr, "SQ") || (undef && !strcmp(el.vr, "UN"));
        if (implicit && !pixels) {
            /* no VR: undefined length, or a value that starts with an item,
             * is a sequence */
            const unsigned char *p;
            seq = undef || (el.length >= 8 && el.length <= limit - v &&
                            (p = bytes(w, v, 4)) && u16(w, p) == 0xFFFE &&
                            u16(w, p + 2) == 0xE000);
        }
        if (top && pixels) {
            w->out->has_pixels = true;
            w->out->encapsulated = undef;
            w->out->pixel_offset = v;
            w->out->pixel_length = undef ? 0 : el.length;
        }
        if (seq) {
            *pos = v;
            /* an undefined-length UN is a sequence in implicit VR */
            bool imp = implicit || !strcmp(el.vr, "UN");
            if (!walk_seq(w, pos, undef ? (uint64_t)UNDEFINED : v + el.length,
                          depth + 1, imp))
                return false;
            if (!undef && *pos != v + el.length)
                return fail(w, KMS_DICOM_WALK_CORRUPT, at,
                            "sequence (%04X,%04X) does not end where its "
                            "length says",
                            el.group, el.element);
        } else if (undef) {
            if (!pixels)
                return fail(w, KMS_DICOM_WALK_CORRUPT, at,
                            "element (%04X,%04X) %s has an undefined length",
                            el.group, el.element, el.vr);
            *pos = v;
            if (!walk_fragments(w, pos, limit))
                return false;
        } else if (el.length > limit - v) {
            if (pixels && top)
                return fail(w, KMS_DICOM_WALK_TRUNCATED, at,
                            "truncated: the file ends %llu bytes before the "
                            "end of its pixel data",
                            (unsigned long long)(v + el.length - limit));
            return fail(w, KMS_DICOM_WALK_CORRUPT, at,
                        "the %u bytes of (%04X,%04X) run past the end of %s",
                        el.length, el.group, el.element,
                        limit < w->size ? "its item" : "the file");
        } else {
            *pos = v + el.length;
        }
    }
}

static const char *const syntaxes[] = {
    "1.2.840.10008.1.2",     /* implicit VR little endian */
    "1.2.840.10008.1.2.1",   /* explicit VR little endian */
    "1.2.840.10008.1.2.2",   /* explicit VR big endian */
    "1.2.840.10008.1.2.5",   /* RLE */
    NULL};

static bool known_syntax(const char *ts)
{
    for (int i = 0; syntaxes[i]; i++)
        if (!strcmp(ts, syntaxes[i]))
            return true;
    /* JPEG, JPEG-LS, JPEG 2000, MPEG, HEVC, HTJ2K: encapsulated, explicit LE */
    static const char *const families[] = {"1.2.840.10008.1.2.4.",
                                           "1.2.840.10008.1.2.8.", NULL};
    for (int i = 0; families[i]; i++) {
        size_t n = strlen(families[i]);
        if (!strncmp(ts, families[i], n) && ts[n] >= '0' && ts[n] <= '9' &&
            strspn(ts + n, "0123456789.") == strlen(ts + n))
            return true;
    }
    return false;
}

static bool walk_file(walker *w)
{
    kms_dicom_layout *out = w->out;
    uint64_t pos = 0;
    const unsigned char *p = bytes(w, 128, 4);
    bool dicm = p && !memcmp(p, "DICM", 4);
    if (dicm)
        pos = 132;
    /* the meta group: explicit VR little endian whatever follows */
    bool meta = false;
    for (;;) {
        if (pos == w->size)
            break;
        p = bytes(w, pos, 2);
        if (!p || (p[0] | p[1] << 8) != 0x0002)
            break;
        elem el;
        if (!read_elem(w, pos, w->size, false, &el))
            return false;
        uint64_t v = pos + el.header;
        if (el.length == UNDEF_LEN || el.length > w->size - v)
            return fail(w, KMS_DICOM_WALK_CORRUPT, pos,
                        "meta element (0002,%04X) runs past the end of the "
                        "file",
                        el.element);
        if (el.element == 0x0010) {
            if (el.length >= sizeof out->transfer_syntax ||
                !(p = bytes(w, v, el.length)))
                return fail(w, KMS_DICOM_WALK_CORRUPT, pos,
                            "TransferSyntaxUID of %u bytes", el.length);
            size_t n = el.length;
            memcpy(out->transfer_syntax, p, n);
            while (n > 0 && (out->transfer_syntax[n - 1] == '\0' ||
                             out->transfer_syntax[n - 1] == ' '))
                n--;
            out->transfer_syntax[n] = '\0';
            for (size_t i = 0; i < n; i++) /* printable in messages */
                if (out->transfer_syntax[i] < 0x20 ||
                    out->transfer_syntax[i] > 0x7e)
                    out->transfer_syntax[i] = '?';
        }
        meta = true;
        pos = v + el.length;
    }
    if (pos == w->size)
        return fail(w, meta ? KMS_DICOM_WALK_CORRUPT : KMS_DICOM_WALK_NOT_DICOM,
                    pos, "no data set after the meta header");
    bool implicit = false;
    const char *ts = out->transfer_syntax;
    if (!strcmp(ts, "1.2.840.10008.1.2.1.99"))
        return fail(w, KMS_DICOM_WALK_UNSUPPORTED, pos,
                    "deflated transfer syntax is not supported");
    if (ts[0] && !known_syntax(ts))
        return fail(w, KMS_DICOM_WALK_UNSUPPORTED, pos,
                    "unknown transfer syntax \"%.64s\"", ts);
    w->rle = !strcmp(ts, "1.2.840.10008.1.2.5");
    if (!strcmp(ts, "1.2.840.10008.1.2")) {
        implicit = true;
    } else if (!strcmp(ts, "1.2.840.10008.1.2.2")) {
        w->big = true;
    } else if (!ts[0]) {
        /* no meta header: explicit when the first element has a VR, big
         * endian when its group reads as a small big-endian number */
        p = bytes(w, pos, 6);
        implicit = !p || !vr_in(valid_vrs, p + 4);
        w->big = !implicit && p[0] == 0 && p[1] != 0;
    } else {
        /* explicit named, implicit written (GDCM reads these too) */
        p = bytes(w, pos, 6);
        implicit = p && !vr_in(valid_vrs, p + 4);
    }
    uint64_t start = pos;
    if (!walk_set(w, &pos, (uint64_t)UNDEFINED, false, 0, implicit)) {
        if (!dicm && !meta && w->out->bad_at == start)
            w->result = KMS_DICOM_WALK_NOT_DICOM;
        return false;
    }
    return true;
}

kms_dicom_walk_result kms_dicom_walk(const char *path, kms_dicom_vr_check check,
                                     kms_dicom_layout *out)
{
    memset(out, 0, sizeof *out);
    walker *w = &(walker){0};
    w->out = out;
    w->check = check;
    w->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (w->fd < 0) {
        snprintf(out->why, sizeof out->why, "cannot open: %s", strerror(errno));
        return KMS_DICOM_WALK_IO;
    }
    struct stat sb;
    if (fstat(w->fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(out->why, sizeof out->why, "not a regular file");
        close(w->fd);
        return KMS_DICOM_WALK_IO;
    }
    w->size = out->file_size = (uint64_t)sb.st_size;
    w->result = KMS_DICOM_WALK_OK;
    if (w->size == 0) {
        snprintf(out->why, sizeof out->why, "empty file");
        close(w->fd);
        return KMS_DICOM_WALK_NOT_DICOM;
    }
    bool ok = walk_file(w);
    close(w->fd);
    return ok ? KMS_DICOM_WALK_OK : w->result;
}
