#include "nifti_io.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define ZLIB_CONST
#include <zlib.h>

#include <nifti2_io.h>

_Static_assert(sizeof(nifti_1_header) == 348, "NIfTI-1 header is 348 bytes");
_Static_assert(sizeof(nifti_2_header) == 540, "NIfTI-2 header is 540 bytes");

/* What kms_volume.header points to: enough to put a mask back where the
 * input's voxels came from. */
typedef struct nifti_layout {
    nifti_image *nim;  /* the input's header: no data, no extensions */
    int64_t base;      /* file-order index of canonical voxel (0, 0, 0) */
    int64_t step[3];   /* file-order index step per canonical x, y, z */
} nifti_layout;

/* zlib and znz take at most an unsigned int per call */
#define CHUNK ((size_t)1 << 30)

/* nifti_clib prints its own errors and warnings to stderr (debug level 1 by
 * default); ours come back in kms_error instead. Once, as it is a global. */
static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;

static void quiet_library(void)
{
    nifti_set_debug_level(0);
}

bool kms_nifti_is_path(const char *path)
{
    return path && (kms_ends_with(path, ".nii") || kms_ends_with(path, ".nii.gz"));
}

/* The names nifti_image_read accepts; others it looks up under other names,
 * which would read some other file than the one asked for. A .hdr/.img
 * pair is named by its .hdr. */
static bool nifti_file_name(const char *path)
{
    static const char *const ext[] = {".nii", ".nii.gz", ".hdr", ".hdr.gz"};
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (kms_ends_with(path, ext[i]))
            return true;
    return false;
}

/* The library only says "NULL" for a missing file; tell the user why. */
static kms_status check_file(const char *path, kms_error *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return kms_error_set(err, KMS_ERR_IO, path, 0, NULL, "cannot open: %s",
                             strerror(errno));
    struct stat sb;
    int r = fstat(fd, &sb);
    close(fd);
    if (r != 0 || !S_ISREG(sb.st_mode))
        return kms_error_set(err, KMS_ERR_IO, path, 0, NULL,
                             "not a regular file");
    return KMS_OK;
}

static uint32_t swap32(uint32_t v)
{
    return (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
}

/* size bytes at p in the machine's order (reversed when swap), into b */
static void get_bytes(const unsigned char *p, size_t size, bool swap,
                      unsigned char b[8])
{
    for (size_t i = 0; i < size; i++)
        b[i] = p[swap ? size - 1 - i : i];
}

/* An int16 (size 2) or int64 (size 8) header field. */
static int64_t get_int(const unsigned char *p, size_t size, bool swap)
{
    unsigned char b[8];
    get_bytes(p, size, swap, b);
    int16_t v16;
    int64_t v64;
    memcpy(size == 2 ? (void *)&v16 : (void *)&v64, b, size);
    return size == 2 ? v16 : v64;
}

/* A float (size 4) or double (size 8) header field. */
static double get_real(const unsigned char *p, size_t size, bool swap)
{
    unsigned char b[8];
    get_bytes(p, size, swap, b);
    float f;
    double d;
    memcpy(size == 4 ? (void *)&f : (void *)&d, b, size);
    return size == 4 ? f : d;
}

/* The header fields nifti_clib would repair or reject with its own words,
 * read straight from the bytes. */
typedef struct raw_header {
    size_t size;        /* 348 (NIfTI-1) or 540 (NIfTI-2) */
    int64_t dim[8];
    int datatype;
    double pixdim[4];   /* [1..3] */
    double vox_offset;
    int space_unit;     /* xyzt_units & 7 */
    bool one_file;      /* "n+1" / "n+2": voxels follow the header */
} raw_header;

static void parse_header(const unsigned char *buf, size_t size, bool swap,
                         raw_header *h)
{
    bool v1 = size == 348;
    h->size = size;
    /* NIfTI-1: int16 dim at 40, datatype 70, float pixdim 76, vox_offset
     * 108, xyzt_units 123, magic 344; NIfTI-2: int64 dim at 16, datatype
     * 12, double pixdim 104, int64 vox_offset 168, int32 xyzt_units 500,
     * magic 4 */
    for (int i = 0; i < 8; i++)
        h->dim[i] = v1 ? get_int(buf + 40 + 2 * i, 2, swap)
                       : get_int(buf + 16 + 8 * i, 8, swap);
    h->datatype = (int)get_int(buf + (v1 ? 70 : 12), 2, swap);
    for (int i = 1; i <= 3; i++)
        h->pixdim[i] = v1 ? get_real(buf + 76 + 4 * i, 4, swap)
                          : get_real(buf + 104 + 8 * i, 8, swap);
    h->vox_offset = v1 ? get_real(buf + 108, 4, swap)
                       : (double)get_int(buf + 168, 8, swap);
    h->space_unit = (v1 ? buf[123] : buf[swap ? 503 : 500]) & 7;
    const char *magic = (const char *)buf + (v1 ? 344 : 4);
    h->one_file = magic[0] == 'n' && magic[1] == '+';
}

/* Millimetres per unit of xyzt_units' space code: 1 metre, 2 mm, 3 micron,
 * 0 unknown (taken as mm, as every reader does). */
static double unit_mm(int space_unit)
{
    return space_unit == NIFTI_UNITS_METER    ? 1000.0
           : space_unit == NIFTI_UNITS_MICRON ? 0.001
                                              : 1.0;
}

/* Voxel sizes beyond this are no medical image: a corrupt or fuzzed header
 * would make the lung mask resample to gigabytes. */
#define MAX_VOXEL_MM 50.0

/* deflate expands at most about 1032:1; more claimed voxel data than that
 * cannot be in a .gz of this size */
#define MAX_GZIP_RATIO 1100.0

static kms_status check_fields(const char *path, const raw_header *h,
                               size_t max_voxels, kms_error *err)
{
    int64_t rank = h->dim[0];
    if (rank < 1 || rank > 7)
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                             "invalid NIfTI header: dim[0] = %lld is not a "
                             "number of dimensions (1 to 7)",
                             (long long)rank);
    double voxels = 1;
    for (int i = 1; i <= rank; i++) {
        if (h->dim[i] < 1)
            return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                                 "invalid NIfTI header: dim[%d] = %lld", i,
                                 (long long)h->dim[i]);
        voxels *= (double)h->dim[i];
    }
    if (voxels > (double)kms_max_pixels(max_voxels))
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                             "%.0f voxels are more than the limit of %zu "
                             "(--max-pixels)",
                             voxels, kms_max_pixels(max_voxels));
    /* not nifti_datatype_is_valid: it passes DT_NONE (0) and DT_ALL (255),
     * which have no size and which the reader then refuses with its own
     * "bad datatype" */
    int nbyper = 0;
    nifti_datatype_sizes(h->datatype, &nbyper, NULL);
    if (nbyper == 0 || h->datatype == DT_BINARY)
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                             "invalid NIfTI header: unknown datatype %d",
                             h->datatype);
    double to_mm = unit_mm(h->space_unit);
    for (int i = 1; i <= 3 && i <= rank; i++) {
        double d = h->pixdim[i];
        if (!isfinite(d) || d < 0)
            return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                                 "invalid NIfTI header: pixdim[%d] = %g is "
                                 "not a voxel size",
                                 i, d);
        if (fabs(d) * to_mm > MAX_VOXEL_MM)
            return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                                 "invalid NIfTI header: pixdim[%d] = %g mm is "
                                 "not a plausible voxel size (at most %g mm)",
                                 i, d * to_mm, MAX_VOXEL_MM);
    }
    /* the voxels of a .nii follow its header (and the 4 extension bytes) */
    double min_offset = h->one_file ? (double)h->size + 4 : 0;
    if (!isfinite(h->vox_offset) || h->vox_offset != floor(h->vox_offset) ||
        h->vox_offset < min_offset)
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                             "invalid NIfTI header: vox_offset = %g (the "
                             "voxel data start at byte %g or later)",
                             h->vox_offset, min_offset);
    return KMS_OK;
}

/* nifti_image_read prints some header errors to stderr whatever the debug
 * level ("bad dim[0]", "bad datatype", ...) and repairs others silently
 * (a negative dim becomes 1, a vox_offset inside the header is moved), so
 * the fields are checked here first, with our own words. */
static kms_status check_header(const char *path, size_t max_voxels,
                               kms_error *err)
{
    unsigned char buf[sizeof(nifti_2_header)];
    znzFile fp = znzopen(path, "rb", 1); /* zlib reads plain files as is */
    if (znz_isnull(fp))
        return kms_error_set(err, KMS_ERR_IO, path, 0, NULL, "cannot open: %s",
                             strerror(errno));
    size_t got = znzread(buf, 1, sizeof buf, fp);
    znzclose(fp);
    /* (size_t)-1: zlib hit bad data in the blocks it decompressed ahead */
    if (got > sizeof buf)
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                             "corrupt compressed data: cannot decompress the "
                             "NIfTI header");

    uint32_t size = 0;
    if (got >= 4)
        memcpy(&size, buf, sizeof size);
    bool swap = swap32(size) == 348 || swap32(size) == 540;
    size_t need = size == 348 || swap32(size) == 348   ? 348
                  : size == 540 || swap32(size) == 540 ? 540
                                                       : 0;
    if (!need)
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                             "not a NIfTI file (no NIfTI-1 or NIfTI-2 header)");
    if (got < need)
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                             "truncated: the NIfTI header needs %zu bytes, "
                             "the file holds %zu",
                             need, got);
    raw_header h;
    parse_header(buf, need, swap, &h);
    return check_fields(path, &h, max_voxels, err);
}

static bool supported_type(int dt)
{
    switch (dt) {
    case DT_INT8: case DT_UINT8: case DT_INT16: case DT_UINT16:
    case DT_INT32: case DT_UINT32: case DT_FLOAT32: case DT_FLOAT64:
        return true;
    }
    return false;
}

static double raw_value(const void *raw, int dt, size_t i)
{
    switch (dt) {
    case DT_INT8: return ((const int8_t *)raw)[i];
    case DT_UINT8: return ((const uint8_t *)raw)[i];
    case DT_INT16: return ((const int16_t *)raw)[i];
    case DT_UINT16: return ((const uint16_t *)raw)[i];
    case DT_INT32: return ((const int32_t *)raw)[i];
    case DT_UINT32: return ((const uint32_t *)raw)[i];
    case DT_FLOAT32: return ((const float *)raw)[i];
    case DT_FLOAT64: return ((const double *)raw)[i];
    }
    abort(); /* supported_type() was checked first */
}

/* Maps the file's axes onto the canonical x (R->L), y (A->P), z (I->S). */
static kms_status find_layout(const char *path, const nifti_image *nim,
                              nifti_layout *lay, int64_t n[3], double mm[3],
                              kms_error *err)
{
    nifti_dmat44 m;
    if (nim->sform_code > 0) {
        m = nim->sto_xyz;
    } else if (nim->qform_code > 0) {
        m = nim->qto_xyz;
    } else { /* method 1: voxel indices are RAS, as in ANALYZE */
        memset(&m, 0, sizeof m);
        m.m[0][0] = m.m[1][1] = m.m[2][2] = m.m[3][3] = 1.0;
    }
    int code[3];
    nifti_dmat44_to_orientation(m, &code[0], &code[1], &code[2]);

    const int64_t n_in[3] = {nim->nx, nim->ny, nim->nz};
    const int64_t stride[3] = {1, nim->nx, nim->nx * nim->ny};
    bool seen[3] = {false, false, false};
    lay->base = 0;
    for (int a = 0; a < 3; a++) {
        int o = -1;
        bool flip = false;
        switch (code[a]) {
        case NIFTI_R2L: o = 0; break;
        case NIFTI_L2R: o = 0; flip = true; break;
        case NIFTI_A2P: o = 1; break;
        case NIFTI_P2A: o = 1; flip = true; break;
        case NIFTI_I2S: o = 2; break;
        case NIFTI_S2I: o = 2; flip = true; break;
        }
        if (o < 0 || seen[o])
            return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                                 "cannot tell the orientation: the %s matrix "
                                 "is degenerate",
                                 nim->sform_code > 0 ? "sform" : "qform");
        seen[o] = true;
        n[o] = n_in[a];
        lay->step[o] = flip ? -stride[a] : stride[a];
        if (flip)
            lay->base += (n_in[a] - 1) * stride[a];
        /* pixdim is the spacing; fall back on the matrix if it is unset */
        double d = fabs(nim->pixdim[a + 1]);
        if (!(isfinite(d) && d > 0))
            d = sqrt(m.m[0][a] * m.m[0][a] + m.m[1][a] * m.m[1][a] +
                     m.m[2][a] * m.m[2][a]);
        if (!(isfinite(d) && d > 0))
            return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                                 "invalid NIfTI header: no voxel size along "
                                 "axis %d (pixdim[%d] = 0 and the %s matrix "
                                 "gives none)",
                                 a + 1, a + 1,
                                 nim->sform_code > 0 ? "sform" : "qform");
        mm[o] = d * unit_mm(nim->xyz_units);
        /* also for axes beyond dim[0] and sizes from the matrix, which
         * check_fields does not see: lung_mask resamples by them */
        if (mm[o] > MAX_VOXEL_MM)
            return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                                 "invalid NIfTI header: a voxel size of %g mm "
                                 "along axis %d is not plausible (at most %g "
                                 "mm)",
                                 mm[o], a + 1, MAX_VOXEL_MM);
    }
    return KMS_OK;
}

/* The library's loader zero-fills a short read and only warns about it, so
 * the voxels are read here, where a short read becomes an error. */
static kms_status read_voxels(const char *path, const nifti_image *nim,
                              void *buf, size_t bytes, kms_error *err)
{
    znzFile fp = znzopen(nim->iname, "rb", nifti_is_gzfile(nim->iname));
    if (znz_isnull(fp))
        return kms_error_set(err, KMS_ERR_IO, nim->iname, 0, NULL,
                             "cannot open the voxel data: %s", strerror(errno));
    size_t got = 0;
    bool corrupt = false;
    if (znzseek(fp, (znz_off_t)nim->iname_offset, SEEK_SET) >= 0) {
        while (got < bytes) {
            size_t want = bytes - got < CHUNK ? bytes - got : CHUNK;
            size_t r = znzread((char *)buf + got, 1, want, fp);
            if (r > want) { /* (size_t)-1: zlib found bad data */
                corrupt = true;
                break;
            }
            got += r;
            if (r < want)
                break;
        }
        /* zlib checks the gzip CRC only on reaching the trailer: one more
         * byte gets it there (a plain file may have trailing bytes) */
        unsigned char extra;
        if (got == bytes && nifti_is_gzfile(nim->iname) &&
            znzread(&extra, 1, 1, fp) > 1)
            corrupt = true;
    }
    znzclose(fp);
    if (corrupt && got == bytes)
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                             "corrupt compressed data: the gzip checksum "
                             "does not match");
    if (corrupt)
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                             "corrupt compressed data: expected %zu bytes of "
                             "voxel data, decompressed %zu",
                             bytes, got);
    if (got < bytes)
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                             "truncated: expected %zu bytes of voxel data, "
                             "found %zu",
                             bytes, got);
    return KMS_OK;
}

/* Errors about one voxel give its index in the file's own axis order, the
 * one other tools show. */
static kms_status voxel_error(const char *path, const nifti_image *nim,
                              size_t i, const char *what, kms_error *err)
{
    size_t nx = (size_t)nim->nx, ny = (size_t)nim->ny;
    return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                         "voxel (%zu, %zu, %zu) %s (index i, j, k in the "
                         "file's axis order)",
                         i % nx, i / nx % ny, i / (nx * ny), what);
}

/* Applies scl_slope/scl_inter and reorients raw (file order) into img. */
static kms_status convert(const char *path, const nifti_image *nim,
                          const nifti_layout *lay, const void *raw,
                          size_t nvox, const int64_t n[3], kms_image *img,
                          kms_error *err)
{
    const int dt = nim->datatype;
    double slope = nim->scl_slope, inter = nim->scl_inter;
    /* NIfTI: a slope of 0 (or not a number) means no scaling at all */
    if (!isfinite(slope) || slope == 0) {
        slope = 1;
        inter = 0;
    }
    if (!isfinite(inter))
        inter = 0;

    bool s16 = false;
    /* int16 unscaled (most CT): copied as is, a row at a time */
    bool plain16 = dt == DT_INT16 && slope == 1 && inter == 0;
    if (plain16) {
        kms_status st = kms_image_alloc_raw(img, (int)n[0],
                                            (int)(n[1] * n[2]), 1,
                                            KMS_DEPTH_S16, err);
        if (st != KMS_OK)
            return st;
        const int16_t *in = raw;
        for (int64_t z = 0; z < n[2]; z++) {
            for (int64_t y = 0; y < n[1]; y++) {
                int16_t *row = kms_image_row(img, (int)(z * n[1] + y));
                const int16_t *at =
                    in + lay->base + y * lay->step[1] + z * lay->step[2];
                if (lay->step[0] == 1) {
                    memcpy(row, at, (size_t)n[0] * sizeof *row);
                } else {
                    for (int64_t x = 0; x < n[0]; x++, at += lay->step[0])
                        row[x] = *at;
                }
            }
        }
        return KMS_OK;
    }
    if (dt == DT_FLOAT32 || dt == DT_FLOAT64) {
        /* scan in file order so the error names the first bad voxel */
        for (size_t i = 0; i < nvox; i++) {
            double v = raw_value(raw, dt, i);
            if (!isfinite(v))
                return voxel_error(path, nim, i,
                                   isnan(v) ? "is NaN" : "is infinite", err);
        }
    } else if (slope == floor(slope) && inter == floor(inter) &&
               fabs(slope) <= 0x1p21 && fabs(inter) <= 0x1p31) {
        /* integral scaling of integers is exact in double (< 2^53), so
         * the data stay S16 when every scaled value fits */
        double lo = raw_value(raw, dt, 0), hi = lo;
        for (size_t i = 1; i < nvox; i++) {
            double v = raw_value(raw, dt, i);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        double a = lo * slope + inter, b = hi * slope + inter;
        s16 = fmin(a, b) >= INT16_MIN && fmax(a, b) <= INT16_MAX;
    }

    kms_status st = kms_image_alloc(img, (int)n[0], (int)(n[1] * n[2]), 1,
                                    s16 ? KMS_DEPTH_S16 : KMS_DEPTH_F32, err);
    if (st != KMS_OK)
        return st;
    for (int64_t z = 0; z < n[2]; z++) {
        for (int64_t y = 0; y < n[1]; y++) {
            void *row = kms_image_row(img, (int)(z * n[1] + y));
            int64_t at = lay->base + y * lay->step[1] + z * lay->step[2];
            for (int64_t x = 0; x < n[0]; x++, at += lay->step[0]) {
                double v = raw_value(raw, dt, (size_t)at) * slope + inter;
                if (s16) {
                    ((int16_t *)row)[x] = (int16_t)v;
                } else {
                    float f = (float)v;
                    if (!isfinite(f))
                        return voxel_error(path, nim, (size_t)at,
                                           "overflows a 32-bit float after "
                                           "scl_slope/scl_inter",
                                           err);
                    ((float *)row)[x] = f;
                }
            }
        }
    }
    return KMS_OK;
}

/* Where the voxels of nim go (its axis mapping) and how many there are,
 * checked before any voxel buffer is allocated. */
typedef struct volume_plan {
    nifti_layout lay;
    int64_t n[3];   /* canonical sizes */
    double mm[3];   /* canonical spacing */
    size_t nvox;
} volume_plan;

static kms_status plan_volume(const char *path, const nifti_image *nim,
                              volume_plan *plan, kms_error *err)
{
    memset(plan, 0, sizeof *plan);
    kms_status st = find_layout(path, nim, &plan->lay, plan->n, plan->mm, err);
    if (st != KMS_OK)
        return st;
    const int64_t *n = plan->n;
    /* img is width n[0], height n[1] * n[2], both int */
    if (n[0] > INT_MAX || n[1] > INT_MAX / n[2])
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                             "too large: %lld x %lld x %lld voxels",
                             (long long)n[0], (long long)n[1], (long long)n[2]);
    plan->nvox = (size_t)n[0] * (size_t)n[1] * (size_t)n[2];
    if (nim->nbyper <= 0 || plan->nvox > SIZE_MAX / (size_t)nim->nbyper)
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                             "too large: %zu voxels", plan->nvox);
    return KMS_OK;
}

/* Reorients raw (file order, nim's datatype) into vol, which then owns
 * *nim (set to NULL). take (may be NULL) is raw as an int16 image with
 * no scaling: when the file order is already canonical its pixels move
 * into vol instead of being copied. */
static kms_status finish_volume(const char *path, nifti_image **nim,
                                const volume_plan *plan, const void *raw,
                                kms_image *take, kms_volume *vol,
                                kms_error *err)
{
    kms_image img = {0};
    nifti_layout *lay = malloc(sizeof *lay);
    if (!lay)
        return kms_error_set(err, KMS_ERR_NOMEM, path, 0, NULL, "out of memory");
    *lay = plan->lay;
    const int64_t *n = plan->n;
    bool canonical = lay->base == 0 && lay->step[0] == 1 &&
                     lay->step[1] == n[0] && lay->step[2] == n[0] * n[1];
    kms_status st = KMS_OK;
    if (take && canonical)
        kms_image_move(&img, take);
    else
        st = convert(path, *nim, lay, raw, plan->nvox, plan->n, &img, err);
    if (st != KMS_OK) {
        free(lay);
        kms_image_free(&img);
        return st;
    }
    lay->nim = *nim;
    *nim = NULL;
    vol->header = lay;
    kms_image_move(&vol->img, &img);
    vol->nx = (int)plan->n[0];
    vol->ny = (int)plan->n[1];
    vol->nz = (int)plan->n[2];
    memcpy(vol->voxel_mm, plan->mm, sizeof plan->mm);
    return KMS_OK;
}

/* The file nifti_clib reads the voxels from must be able to hold them before
 * they are allocated. check_header can only test a .nii whose magic says
 * "n+1"; nifti_clib also reads a .nii with any other magic as one file, and
 * a vox_offset beyond its range becomes a negative iname_offset there. */
static kms_status check_voxel_file(const char *path, const nifti_image *nim,
                                   size_t bytes, kms_error *err)
{
    const char *iname = nim->iname ? nim->iname : path;
    struct stat sb;
    if (stat(iname, &sb) != 0)
        return kms_error_set(err, KMS_ERR_IO, iname, 0, NULL,
                             "cannot open the voxel data: %s", strerror(errno));
    if (nim->iname_offset < 0)
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                             "invalid NIfTI header: the voxel data offset is "
                             "out of range");
    double end = (double)nim->iname_offset + (double)bytes;
    if (!nifti_is_gzfile(iname) && end > (double)sb.st_size)
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                             "truncated: the header claims %zu bytes of "
                             "voxel data from byte %lld, the file has %lld "
                             "bytes",
                             bytes, (long long)nim->iname_offset,
                             (long long)sb.st_size);
    if (nifti_is_gzfile(iname) &&
        end > MAX_GZIP_RATIO * (double)sb.st_size + 65536)
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                             "invalid NIfTI header: it claims %zu bytes of "
                             "voxel data, more than a %lld-byte .gz can hold",
                             bytes, (long long)sb.st_size);
    return KMS_OK;
}

/* int16 voxels without scaling (most CT): their values are the image's. */
static bool plain_int16(const nifti_image *nim)
{
    double slope = nim->scl_slope, inter = nim->scl_inter;
    if (!isfinite(slope) || slope == 0)
        return nim->datatype == DT_INT16;
    return nim->datatype == DT_INT16 && slope == 1 &&
           (inter == 0 || !isfinite(inter));
}

/* The file's axes are the canonical ones, each maybe reversed. */
static bool flips_only(const volume_plan *plan)
{
    const int64_t *n = plan->n, *s = plan->lay.step;
    return (s[0] == 1 || s[0] == -1) && (s[1] == n[0] || s[1] == -n[0]) &&
           (s[2] == n[0] * n[1] || s[2] == -n[0] * n[1]);
}

static void swap_rows16(int16_t *a, int16_t *b, int16_t *tmp, size_t n)
{
    memcpy(tmp, a, n * sizeof *a);
    memcpy(a, b, n * sizeof *a);
    memcpy(b, tmp, n * sizeof *a);
}

/* int16 voxels whose axes only need reversing: read straight into the
 * image and reversed in place, so the volume costs its own size once (a
 * copy in file order and the reoriented one would be twice) and a pass of
 * memory moves instead of a voxel-by-voxel gather. */
static kms_status read_flipped16(const char *path, nifti_image **nim,
                                 const volume_plan *plan, kms_volume *vol,
                                 kms_error *err)
{
    const int64_t *n = plan->n, *s = plan->lay.step;
    const size_t nx = (size_t)n[0], ny = (size_t)n[1], nz = (size_t)n[2];
    kms_image img = {0};
    int16_t *tmp = NULL;
    nifti_layout *lay = malloc(sizeof *lay);
    kms_status st = lay ? kms_image_alloc_raw(&img, (int)nx, (int)(ny * nz), 1,
                                              KMS_DEPTH_S16, err)
                        : kms_error_set(err, KMS_ERR_NOMEM, path, 0, NULL,
                                        "out of memory");
    if (st == KMS_OK && img.stride != nx * sizeof(int16_t))
        st = kms_error_set(err, KMS_ERR_INTERNAL, path, 0, NULL,
                           "unexpected row padding");
    tmp = st == KMS_OK ? malloc(nx * ny * sizeof *tmp) : NULL;
    if (st == KMS_OK && !tmp)
        st = kms_error_set(err, KMS_ERR_NOMEM, path, 0, NULL, "out of memory");
    if (st == KMS_OK)
        st = read_voxels(path, *nim, img.data, plan->nvox * sizeof(int16_t),
                         err);
    if (st != KMS_OK)
        goto out;
    int16_t *v = img.data;
    if ((*nim)->byteorder != nifti_short_order())
        nifti_swap_Nbytes((int64_t)plan->nvox, 2, v);
    if (s[0] < 0)
        for (size_t r = 0; r < ny * nz; r++)
            for (size_t a = 0, b = nx - 1; a < b; a++, b--) {
                int16_t t = v[r * nx + a];
                v[r * nx + a] = v[r * nx + b];
                v[r * nx + b] = t;
            }
    if (s[1] < 0)
        for (size_t z = 0; z < nz; z++)
            for (size_t a = 0, b = ny - 1; a < b; a++, b--)
                swap_rows16(v + (z * ny + a) * nx, v + (z * ny + b) * nx, tmp,
                            nx);
    if (s[2] < 0)
        for (size_t a = 0, b = nz - 1; a < b; a++, b--)
            swap_rows16(v + a * ny * nx, v + b * ny * nx, tmp, nx * ny);
    *lay = plan->lay;
    lay->nim = *nim;
    *nim = NULL;
    vol->header = lay;
    lay = NULL;
    kms_image_move(&vol->img, &img);
    vol->nx = (int)nx;
    vol->ny = (int)ny;
    vol->nz = (int)nz;
    memcpy(vol->voxel_mm, plan->mm, sizeof plan->mm);
out:
    free(lay);
    free(tmp);
    kms_image_free(&img);
    return st;
}

kms_status kms_nifti_read(const char *path, size_t max_voxels, kms_volume *vol,
                          kms_error *err)
{
    nifti_image *nim = NULL;
    void *raw = NULL;
    kms_status st;

    if (!vol || !path)
        return kms_error_set(err, KMS_ERR_USAGE, path, 0, NULL,
                             "no path or no volume");
    memset(vol, 0, sizeof *vol);
    pthread_once(&quiet_once, quiet_library);
    if ((st = check_file(path, err)) != KMS_OK)
        goto out;
    if (!nifti_file_name(path)) {
        st = kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                           "not a NIfTI file name (expected .nii, .nii.gz "
                           "or .hdr)");
        goto out;
    }
    if ((st = check_header(path, max_voxels, err)) != KMS_OK)
        goto out;
    nim = nifti_image_read(path, 0);
    if (!nim) {
        st = kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                           "invalid NIfTI header (nifti_clib rejects it)");
        goto out;
    }
    nifti_free_extensions(nim); /* not copied into masks */

    if (nim->nifti_type == NIFTI_FTYPE_ASCII) {
        st = kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                           "ASCII NIfTI headers are not supported");
        goto out;
    }
    if (nim->nt > 1) {
        st = kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                           "4-D volumes are not supported: nt = %lld",
                           (long long)nim->nt);
        goto out;
    }
    if (nim->nu > 1 || nim->nv > 1 || nim->nw > 1) {
        st = kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                           "volumes of more than 3 dimensions are not "
                           "supported: nu = %lld, nv = %lld, nw = %lld",
                           (long long)nim->nu, (long long)nim->nv,
                           (long long)nim->nw);
        goto out;
    }
    if (!supported_type(nim->datatype)) {
        st = kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                           "unsupported datatype %s (code %d): only real "
                           "scalars (int8 to uint32, float32, float64) can "
                           "be read",
                           nifti_datatype_string(nim->datatype), nim->datatype);
        goto out;
    }
    if (nim->nx < 1 || nim->ny < 1 || nim->nz < 1) {
        st = kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                           "bad dimensions %lld x %lld x %lld",
                           (long long)nim->nx, (long long)nim->ny,
                           (long long)nim->nz);
        goto out;
    }

    volume_plan plan;
    if ((st = plan_volume(path, nim, &plan, err)) != KMS_OK)
        goto out;
    size_t bytes = plan.nvox * (size_t)nim->nbyper;
    if ((st = check_voxel_file(path, nim, bytes, err)) != KMS_OK)
        goto out;
    if (plain_int16(nim) && flips_only(&plan)) {
        st = read_flipped16(path, &nim, &plan, vol, err);
        goto out;
    }
    raw = malloc(bytes);
    if (!raw) {
        st = kms_error_set(err, KMS_ERR_NOMEM, path, 0, NULL,
                           "cannot allocate %zu bytes of voxel data", bytes);
        goto out;
    }
    if ((st = read_voxels(path, nim, raw, bytes, err)) != KMS_OK)
        goto out;
    if (nim->byteorder != nifti_short_order() && nim->swapsize > 1)
        nifti_swap_Nbytes((int64_t)plan.nvox, nim->swapsize, raw);
    st = finish_volume(path, &nim, &plan, raw, NULL, vol, err);
out:
    free(raw);
    if (nim)
        nifti_image_free(nim);
    return st;
}

kms_status kms_nifti_volume_from_lps(const char *name, kms_image *stack,
                                     int nz, const double lps[4][4],
                                     kms_volume *vol, kms_error *err)
{
    if (!vol || !stack || !stack->data || stack->channels != 1 || nz < 1 ||
        stack->height % nz != 0 ||
        stack->stride != (size_t)stack->width * kms_depth_size(stack->depth) ||
        (stack->depth != KMS_DEPTH_S16 && stack->depth != KMS_DEPTH_F32))
        return kms_error_set(err, KMS_ERR_USAGE, name, 0, NULL,
                             "no voxels, bad sizes or an unsupported depth");
    const int nx = stack->width, ny = stack->height / nz;
    const kms_depth depth = stack->depth;
    const void *raw = stack->data;
    memset(vol, 0, sizeof *vol);
    pthread_once(&quiet_once, quiet_library);
    const int64_t dims[8] = {3, nx, ny, nz, 1, 1, 1, 1};
    nifti_image *nim = nifti_make_new_nim(
        dims, depth == KMS_DEPTH_S16 ? DT_INT16 : DT_FLOAT32, 0);
    if (!nim)
        return kms_error_set(err, KMS_ERR_NOMEM, name, 0, NULL,
                             "cannot make a NIfTI header");
    /* NIfTI's world is RAS: LPS x and y change sign (the first two rows) */
    nifti_dmat44 m;
    memset(&m, 0, sizeof m);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            m.m[r][c] = r < 2 ? -lps[r][c] : lps[r][c];
    m.m[3][0] = m.m[3][1] = m.m[3][2] = 0;
    m.m[3][3] = 1;
    for (int a = 0; a < 3; a++) {
        double d = sqrt(m.m[0][a] * m.m[0][a] + m.m[1][a] * m.m[1][a] +
                        m.m[2][a] * m.m[2][a]);
        nim->pixdim[a + 1] = d > 0 && isfinite(d) ? d : 1.0;
    }
    nim->dx = nim->pixdim[1];
    nim->dy = nim->pixdim[2];
    nim->dz = nim->pixdim[3];
    nim->xyz_units = NIFTI_UNITS_MM;
    nim->nifti_type = NIFTI_FTYPE_NIFTI1_1;
    nim->sform_code = nim->qform_code = NIFTI_XFORM_SCANNER_ANAT;
    nim->sto_xyz = m;
    nim->sto_ijk = nifti_dmat44_inverse(m);
    double qfac;
    nifti_dmat44_to_quatern(m, &nim->quatern_b, &nim->quatern_c,
                            &nim->quatern_d, &nim->qoffset_x, &nim->qoffset_y,
                            &nim->qoffset_z, NULL, NULL, NULL, &qfac);
    nim->qfac = qfac;
    nim->pixdim[0] = qfac;
    nim->qto_xyz = nifti_quatern_to_dmat44(
        nim->quatern_b, nim->quatern_c, nim->quatern_d, nim->qoffset_x,
        nim->qoffset_y, nim->qoffset_z, nim->dx, nim->dy, nim->dz, qfac);
    nim->qto_ijk = nifti_dmat44_inverse(nim->qto_xyz);

    volume_plan plan;
    kms_status st = plan_volume(name, nim, &plan, err);
    if (st == KMS_OK)
        st = finish_volume(name, &nim, &plan, raw,
                           depth == KMS_DEPTH_S16 ? stack : NULL, vol, err);
    if (nim)
        nifti_image_free(nim);
    return st;
}

void kms_volume_free(kms_volume *vol)
{
    if (!vol)
        return;
    kms_image_free(&vol->img);
    nifti_layout *lay = vol->header;
    if (lay) {
        nifti_image_free(lay->nim);
        free(lay);
    }
    memset(vol, 0, sizeof *vol);
}

/* The mask's bytes in the file's voxel order: the reader's mapping the
 * other way, as a start and a step in the mask per file axis (the mask's
 * rows, slices after slices, lie `stride` apart). */
typedef struct file_order {
    const uint8_t *origin; /* the mask voxel of file voxel (0, 0, 0) */
    ptrdiff_t d[3];        /* mask bytes per step along file axis 0, 1, 2 */
    int64_t n[3];          /* the file's sizes */
} file_order;

static void file_order_init(file_order *fo, const kms_volume *vol,
                            const kms_image *mask)
{
    const nifti_layout *lay = vol->header;
    const int64_t n_in[3] = {lay->nim->nx, lay->nim->ny, lay->nim->nz};
    const int64_t stride[3] = {1, n_in[0], n_in[0] * n_in[1]};
    const int64_t nc[3] = {vol->nx, vol->ny, vol->nz};
    const ptrdiff_t unit[3] = {1, (ptrdiff_t)mask->stride,
                               (ptrdiff_t)mask->stride * vol->ny};
    int64_t at[3] = {0, 0, 0}; /* canonical coordinates of file voxel 0 */
    for (int a = 0; a < 3; a++) {
        fo->n[a] = n_in[a];
        for (int o = 0; o < 3; o++) {
            int64_t s = lay->step[o];
            if (s != stride[a] && s != -stride[a])
                continue;
            /* canonical axis o runs along file axis a */
            fo->d[a] = s > 0 ? unit[o] : -unit[o];
            at[o] = s > 0 ? 0 : nc[o] - 1;
        }
    }
    fo->origin = (const uint8_t *)mask->data + at[0] * unit[0] +
                 at[1] * unit[1] + at[2] * unit[2];
}

/* File slice k (file axis 2) into out, n[0] * n[1] bytes. */
static void file_order_slice(const file_order *fo, int64_t k, uint8_t *out)
{
    for (int64_t j = 0; j < fo->n[1]; j++) {
        const uint8_t *p = fo->origin + k * fo->d[2] + j * fo->d[1];
        uint8_t *o = out + j * fo->n[0];
        if (fo->d[0] == 1) {
            memcpy(o, p, (size_t)fo->n[0]);
        } else {
            for (int64_t i = 0; i < fo->n[0]; i++, p += fo->d[0])
                o[i] = *p;
        }
    }
}

/* gzip framing (as .nii.gz readers expect) of the header (buf, off bytes)
 * and the mask in file order, a slice at a time (buf + off holds one), into
 * a buffer grown as needed: kms_output_write then stores it atomically.
 * Level 1: masks are long runs, which the fastest level packs nearly as
 * well. */
static kms_status gzip_slices(const char *path, unsigned char *buf,
                              size_t off, const file_order *fo,
                              unsigned char **out, size_t *out_len,
                              kms_error *err)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return kms_error_set(err, KMS_ERR_NOMEM, path, 0, NULL,
                             "cannot start zlib compression");
    kms_status st = KMS_OK;
    size_t slice = (size_t)fo->n[0] * (size_t)fo->n[1];
    size_t cap = 1 << 20, len = 0;
    unsigned char *o = malloc(cap);
    if (!o)
        st = kms_error_set(err, KMS_ERR_NOMEM, path, 0, NULL, "out of memory");
    for (int64_t k = -1; st == KMS_OK && k < fo->n[2]; k++) {
        /* the header first, then each slice */
        const unsigned char *in = k < 0 ? buf : buf + off;
        size_t left = k < 0 ? off : slice;
        if (k >= 0)
            file_order_slice(fo, k, buf + off);
        int flush = k + 1 == fo->n[2] ? Z_FINISH : Z_NO_FLUSH;
        int zr = Z_OK;
        do {
            if (cap - len < 65536) {
                unsigned char *m = realloc(o, 2 * cap);
                if (!m) {
                    st = kms_error_set(err, KMS_ERR_NOMEM, path, 0, NULL,
                                       "out of memory");
                    break;
                }
                o = m;
                cap *= 2;
            }
            uInt ai = (uInt)(left < CHUNK ? left : CHUNK);
            uInt ao = (uInt)(cap - len < CHUNK ? cap - len : CHUNK);
            zs.next_in = in;
            zs.avail_in = ai;
            zs.next_out = o + len;
            zs.avail_out = ao;
            zr = deflate(&zs, ai == left ? flush : Z_NO_FLUSH);
            in += ai - zs.avail_in;
            left -= ai - zs.avail_in;
            len += ao - zs.avail_out;
        } while (zr == Z_OK && (left > 0 || zs.avail_out == 0 ||
                                (flush == Z_FINISH)));
        if (st == KMS_OK && zr != Z_OK && zr != Z_STREAM_END &&
            !(zr == Z_BUF_ERROR && left == 0))
            st = kms_error_set(err, KMS_ERR_INTERNAL, path, 0, NULL,
                               "zlib compression failed (%d)", zr);
        if (st == KMS_OK && flush == Z_FINISH && zr != Z_STREAM_END)
            st = kms_error_set(err, KMS_ERR_INTERNAL, path, 0, NULL,
                               "zlib compression did not finish (%d)", zr);
    }
    deflateEnd(&zs);
    if (st != KMS_OK) {
        free(o);
        return st;
    }
    *out = o;
    *out_len = len;
    return KMS_OK;
}

kms_status kms_nifti_write_mask(const char *dir, const char *name,
                                const kms_volume *vol, const kms_image *mask,
                                const kms_file_set *protect, kms_error *err)
{
    char path[PATH_MAX];
    unsigned char *buf = NULL, *gz = NULL;
    kms_status st = KMS_OK;

    if (!dir || !name || !vol || !vol->header || !mask || !mask->data)
        return kms_error_set(err, KMS_ERR_USAGE, name, 0, NULL,
                             "no volume or no mask to write");
    kms_path_join(path, sizeof path, dir, name);
    if (!kms_nifti_is_path(name))
        return kms_error_set(err, KMS_ERR_USAGE, path, 0, NULL,
                             "a NIfTI mask's name must end with .nii or "
                             ".nii.gz");
    if (mask->depth != KMS_DEPTH_U8 || mask->channels != 1 ||
        mask->width != vol->nx ||
        (int64_t)mask->height != (int64_t)vol->ny * vol->nz)
        return kms_error_set(err, KMS_ERR_USAGE, path, 0, NULL,
                             "mask is %dx%d %s with %d channel(s); the volume "
                             "needs %dx%d 8-bit unsigned with 1",
                             mask->width, mask->height,
                             kms_depth_name(mask->depth), mask->channels,
                             vol->nx, vol->ny * vol->nz);
    /* kms_output_write checks too; checking first saves compressing */
    if (kms_file_set_contains(protect, path))
        return kms_error_set(err, KMS_ERR_IO, path, 0, NULL,
                             "refusing to overwrite the input with a product; "
                             "choose another output folder");

    const nifti_layout *lay = vol->header;
    /* a shallow copy, only read by the header converters below */
    nifti_image h = *lay->nim;
    bool v2 = h.nifti_type == NIFTI_FTYPE_NIFTI2_1 ||
              h.nifti_type == NIFTI_FTYPE_NIFTI2_2;
    h.nifti_type = v2 ? NIFTI_FTYPE_NIFTI2_1 : NIFTI_FTYPE_NIFTI1_1;
    h.datatype = DT_UINT8;
    nifti_datatype_sizes(h.datatype, &h.nbyper, &h.swapsize);
    h.scl_slope = 1.0;
    h.scl_inter = 0.0;
    h.cal_min = h.cal_max = 0.0; /* the input's window means nothing here */
    h.intent_code = NIFTI_INTENT_NONE;
    h.intent_p1 = h.intent_p2 = h.intent_p3 = 0.0;
    memset(h.intent_name, 0, sizeof h.intent_name);
    snprintf(h.descrip, sizeof h.descrip, "kmseg mask");
    h.num_ext = 0;
    h.ext_list = NULL;
    /* header, then the 4-byte extender saying "no extensions" */
    size_t off = (v2 ? sizeof(nifti_2_header) : sizeof(nifti_1_header)) + 4;
    h.iname_offset = (int64_t)off;

    size_t nvox = (size_t)vol->nx * (size_t)vol->ny * (size_t)vol->nz;
    bool compress = kms_ends_with(name, ".gz");
    /* compressed: the header and one file-order slice at a time through
     * deflate (a mask is mostly runs: the output is small); else the file */
    size_t slice = (size_t)lay->nim->nx * (size_t)lay->nim->ny;
    size_t cap = compress ? off + slice : off + nvox;
    buf = calloc(1, cap);
    if (!buf) {
        st = kms_error_set(err, KMS_ERR_NOMEM, path, 0, NULL,
                           "cannot allocate %zu bytes for the mask", cap);
        goto out;
    }
    int rc;
    if (v2) {
        nifti_2_header hdr;
        rc = nifti_convert_nim2n2hdr(&h, &hdr);
        hdr.vox_offset = (int64_t)off;
        memcpy(buf, &hdr, sizeof hdr);
    } else {
        nifti_1_header hdr;
        rc = nifti_convert_nim2n1hdr(&h, &hdr);
        hdr.vox_offset = (float)off;
        memcpy(buf, &hdr, sizeof hdr);
    }
    if (rc != 0) {
        st = kms_error_set(err, KMS_ERR_INTERNAL, path, 0, NULL,
                           "cannot build the NIfTI header");
        goto out;
    }
    file_order fo;
    file_order_init(&fo, vol, mask);
    if (compress) {
        size_t gz_len = 0;
        st = gzip_slices(path, buf, off, &fo, &gz, &gz_len, err);
        if (st == KMS_OK)
            st = kms_output_write(dir, name, gz, gz_len, protect, err);
    } else {
        for (int64_t k = 0; k < fo.n[2]; k++)
            file_order_slice(&fo, k, buf + off + (size_t)k * slice);
        st = kms_output_write(dir, name, buf, off + nvox, protect, err);
    }
out:
    free(buf);
    free(gz);
    return st;
}
