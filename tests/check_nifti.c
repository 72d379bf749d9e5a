/* Check suite for NIfTI volumes (pipeline/nifti_io.c). The test volumes are
 * made here with nifti_clib itself, so nothing outside the repository is
 * needed; the real CT in ../shared is read only when it is there. */
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nifti2_io.h>
#include <zlib.h>

#include "nifti_io.h"
#include "output.h"
#include "test_util.h"

#ifndef KMS_SOURCE_DIR
#error "build with -DKMS_SOURCE_DIR=\"<repo root>\""
#endif

/* Keeps the first len bytes of path. */
static void cut_file(const char *path, size_t len)
{
    size_t n;
    unsigned char *buf = kt_read_file(path, &n);
    ck_assert_uint_lt(len, n);
    kt_write_bytes(path, buf, len);
    free(buf);
}

/* ---- making test volumes with nifti_clib -------------------------------- */

/* Affines (rows x, y, z of RAS+ world = M * (i, j, k, 1)). Each puts 2 mm
 * along world x, 3 mm along y and 4 mm along z, so the canonical voxel size
 * is always 2 x 3 x 4 mm and the canonical sizes 6 x 5 x 4. */
static const double RAS[3][4] = {{2, 0, 0, -10}, {0, 3, 0, 20}, {0, 0, 4, 30}};
static const double LPS[3][4] = {{-2, 0, 0, 10}, {0, -3, 0, -20}, {0, 0, 4, 30}};
/* i -> superior (4 mm), j -> patient left (2 mm), k -> anterior (3 mm) */
static const double PERM[3][4] = {{0, -2, 0, 10}, {0, 0, 3, -20}, {4, 0, 0, 30}};
/* the file sizes that make 6 x 5 x 4 canonical */
static const int DIMS_PLAIN[3] = {6, 5, 4};
static const int DIMS_PERM[3] = {4, 6, 5};

typedef struct vspec {
    const double (*m)[4];
    const int *dims;      /* nx, ny, nz in the file */
    int nt;               /* 0 or 1: 3-D */
    int datatype;
    double slope, inter;  /* scl_slope, scl_inter */
    int sform_code, qform_code;
    int version;          /* 1: NIfTI-1, 2: NIfTI-2 */
} vspec;

static vspec spec(const double (*m)[4], int datatype)
{
    vspec v = {m, m == PERM ? DIMS_PERM : DIMS_PLAIN, 1, datatype, 0, 0,
               NIFTI_XFORM_SCANNER_ANAT, NIFTI_XFORM_SCANNER_ANAT, 1};
    return v;
}

static size_t spec_nvox(const vspec *v)
{
    return (size_t)v->dims[0] * v->dims[1] * v->dims[2] * (v->nt > 1 ? v->nt : 1);
}

static nifti_dmat44 dmat(const double m[3][4])
{
    nifti_dmat44 r;
    memset(&r, 0, sizeof r);
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 4; b++)
            r.m[a][b] = m[a][b];
    r.m[3][3] = 1;
    return r;
}

/* Writes vals (file order) converted to v->datatype as a NIfTI file. */
static void write_volume(const char *path, const vspec *v, const double *vals)
{
    int64_t dims[8] = {v->nt > 1 ? 4 : 3, v->dims[0], v->dims[1], v->dims[2],
                       v->nt > 1 ? v->nt : 1, 1, 1, 1};
    nifti_image *nim = nifti_make_new_nim(dims, v->datatype, 1);
    ck_assert_ptr_nonnull(nim);
    size_t n = spec_nvox(v);
    for (size_t i = 0; i < n; i++) {
        double x = vals ? vals[i] : 0;
        void *d = nim->data;
        switch (v->datatype) {
        case DT_INT8: ((int8_t *)d)[i] = (int8_t)x; break;
        case DT_UINT8: ((uint8_t *)d)[i] = (uint8_t)x; break;
        case DT_INT16: ((int16_t *)d)[i] = (int16_t)x; break;
        case DT_UINT16: ((uint16_t *)d)[i] = (uint16_t)x; break;
        case DT_INT32: ((int32_t *)d)[i] = (int32_t)x; break;
        case DT_UINT32: ((uint32_t *)d)[i] = (uint32_t)x; break;
        case DT_FLOAT32: ((float *)d)[i] = (float)x; break;
        case DT_FLOAT64: ((double *)d)[i] = x; break;
        default: break; /* RGB, complex: zeros will do */
        }
    }
    nifti_dmat44 m = dmat(v->m);
    for (int a = 0; a < 3; a++) {
        double d = sqrt(m.m[0][a] * m.m[0][a] + m.m[1][a] * m.m[1][a] +
                        m.m[2][a] * m.m[2][a]);
        nim->pixdim[a + 1] = d;
    }
    nim->dx = nim->pixdim[1];
    nim->dy = nim->pixdim[2];
    nim->dz = nim->pixdim[3];
    nim->xyz_units = NIFTI_UNITS_MM;
    nim->scl_slope = v->slope;
    nim->scl_inter = v->inter;
    nim->sform_code = v->sform_code;
    nim->sto_xyz = m;
    nim->qform_code = v->qform_code;
    double dx, dy, dz;
    nifti_dmat44_to_quatern(m, &nim->quatern_b, &nim->quatern_c,
                            &nim->quatern_d, &nim->qoffset_x, &nim->qoffset_y,
                            &nim->qoffset_z, &dx, &dy, &dz, &nim->qfac);
    nim->pixdim[0] = nim->qfac;
    nim->qto_xyz = m;
    nim->nifti_type = v->version == 2 ? NIFTI_FTYPE_NIFTI2_1
                                      : NIFTI_FTYPE_NIFTI1_1;
    ck_assert_int_eq(nifti_set_filenames(nim, path, 0, 1), 0);
    nifti_image_write(nim);
    nifti_image_free(nim);
    struct stat sb;
    ck_assert_msg(stat(path, &sb) == 0, "nifti_clib did not write %s", path);
}

/* The file's test pattern: distinct values from the file-order index. */
static double pattern(int i, int j, int k)
{
    return i + 10 * j + 100 * k;
}

static double *pattern_values(const vspec *v)
{
    size_t n = spec_nvox(v);
    double *vals = malloc(n * sizeof *vals);
    ck_assert_ptr_nonnull(vals);
    const int *d = v->dims;
    for (size_t t = 0; t < n; t++) {
        size_t r = t % ((size_t)d[0] * d[1] * d[2]);
        vals[t] = pattern((int)(r % d[0]), (int)(r / d[0] % d[1]),
                          (int)(r / ((size_t)d[0] * d[1])));
    }
    return vals;
}

/* Where file voxel (i, j, k) belongs in the canonical layout, worked out
 * from world coordinates, independently of nifti_io.c: x grows towards the
 * patient's left (world x falls), y towards posterior (world y falls), z
 * towards superior (world z rises). */
static void canonical_of(const double m[3][4], const int dims[3], int i, int j,
                         int k, int c[3])
{
    double lo[3], hi[3], w[3];
    for (int r = 0; r < 3; r++) {
        lo[r] = hi[r] = m[r][3];
        for (int a = 0; a < 3; a++) {
            double e = m[r][a] * (dims[a] - 1);
            lo[r] += e < 0 ? e : 0;
            hi[r] += e > 0 ? e : 0;
        }
        w[r] = m[r][0] * i + m[r][1] * j + m[r][2] * k + m[r][3];
    }
    c[0] = (int)lround((hi[0] - w[0]) / 2.0);
    c[1] = (int)lround((hi[1] - w[1]) / 3.0);
    c[2] = (int)lround((w[2] - lo[2]) / 4.0);
}

static double value_at(const kms_volume *vol, int x, int y, int z)
{
    const void *row = kms_image_row(&vol->img, z * vol->ny + y);
    switch (vol->img.depth) {
    case KMS_DEPTH_S16: return ((const int16_t *)row)[x];
    case KMS_DEPTH_F32: return ((const float *)row)[x];
    case KMS_DEPTH_U8: return ((const uint8_t *)row)[x];
    default: ck_abort_msg("unexpected depth"); return 0;
    }
}

/* Every file voxel shows up where its world position says, as
 * pattern * slope + inter. */
static void check_pattern(const kms_volume *vol, const double m[3][4],
                          const int dims[3], double slope, double inter)
{
    ck_assert_int_eq(vol->nx, 6);
    ck_assert_int_eq(vol->ny, 5);
    ck_assert_int_eq(vol->nz, 4);
    ck_assert_int_eq(vol->img.width, 6);
    ck_assert_int_eq(vol->img.height, 5 * 4);
    ck_assert_int_eq(vol->img.channels, 1);
    ck_assert_double_eq_tol(vol->voxel_mm[0], 2.0, 1e-6);
    ck_assert_double_eq_tol(vol->voxel_mm[1], 3.0, 1e-6);
    ck_assert_double_eq_tol(vol->voxel_mm[2], 4.0, 1e-6);
    for (int k = 0; k < dims[2]; k++)
        for (int j = 0; j < dims[1]; j++)
            for (int i = 0; i < dims[0]; i++) {
                int c[3];
                canonical_of(m, dims, i, j, k, c);
                double got = value_at(vol, c[0], c[1], c[2]);
                double want = pattern(i, j, k) * slope + inter;
                ck_assert_msg(fabs(got - want) < 1e-4,
                              "file (%d,%d,%d) -> (%d,%d,%d): %g, want %g", i,
                              j, k, c[0], c[1], c[2], got, want);
            }
}

/* Writes the pattern with spec v to kt_tmpdir/rel; path gets the name. */
static const char *write_pattern(const char *rel, const vspec *v, char *path,
                                 size_t len)
{
    kt_tmp_path(path, len, rel);
    double *vals = pattern_values(v);
    write_volume(path, v, vals);
    free(vals);
    return path;
}

/* Writes the pattern with spec v to kt_tmpdir/name and reads it back. */
static kms_status write_and_read(const char *name, const vspec *v,
                                 kms_volume *vol, kms_error *err)
{
    char path[512];
    write_pattern(name, v, path, sizeof path);
    kms_error_clear(err);
    return kms_nifti_read(path, 0, vol, err);
}

/* For check_read_pattern: the depth is not checked. */
#define ANY_DEPTH (-1)

/* Reads path: the pattern written with spec v, times slope plus inter, laid
 * out as its affine says, in the given depth. */
static void check_read_pattern(const char *path, const vspec *v, int depth,
                               double slope, double inter)
{
    kms_volume vol;
    kms_error err;
    kms_error_clear(&err);
    ck_assert_msg(kms_nifti_read(path, 0, &vol, &err) == KMS_OK, "%s: %s", path,
                  err.message);
    if (depth != ANY_DEPTH)
        ck_assert_int_eq(vol.img.depth, depth);
    check_pattern(&vol, v->m, v->dims, slope, inter);
    kms_volume_free(&vol);
}

/* Writes the pattern with spec v to kt_tmpdir/rel and checks it reads back
 * (see check_read_pattern). */
static void check_write_read(const char *rel, const vspec *v, int depth,
                             double slope, double inter)
{
    char path[512];
    write_pattern(rel, v, path, sizeof path);
    check_read_pattern(path, v, depth, slope, inter);
}

/* ---- Core ---------------------------------------------------------------- */

START_TEST(test_read_ras_int16)
{
    vspec v = spec(RAS, DT_INT16);
    kms_volume vol;
    kms_error err;
    ck_assert_int_eq(write_and_read("ras.nii", &v, &vol, &err), KMS_OK);
    ck_assert_int_eq(vol.img.depth, KMS_DEPTH_S16);
    check_pattern(&vol, RAS, v.dims, 1, 0);
    /* RAS flips x and y: canonical (0,0,0) is file (5,4,0) */
    ck_assert_double_eq(value_at(&vol, 0, 0, 0), pattern(5, 4, 0));
    ck_assert_double_eq(value_at(&vol, 5, 4, 3), pattern(0, 0, 3));
    kms_volume_free(&vol);
}
END_TEST

/* Three orientations, .nii and .nii.gz, via the sform and via the qform. */
START_TEST(test_read_orientations)
{
    const double (*mats[])[4] = {RAS, LPS, PERM};
    const char *names[] = {"ras", "lps", "perm"};
    for (int mi = 0; mi < 3; mi++)
        for (int gz = 0; gz < 2; gz++)
            for (int qonly = 0; qonly < 2; qonly++) {
                vspec v = spec(mats[mi], DT_INT16);
                if (qonly)
                    v.sform_code = 0;
                char name[64];
                snprintf(name, sizeof name, "%s_%d.nii%s", names[mi], qonly,
                         gz ? ".gz" : "");
                check_write_read(name, &v, ANY_DEPTH, 1, 0);
            }
}
END_TEST

START_TEST(test_read_lps_layout_is_file_order)
{
    /* LPS is the canonical layout: no flips, no permutation */
    vspec v = spec(LPS, DT_INT16);
    kms_volume vol;
    kms_error err;
    ck_assert_int_eq(write_and_read("lps.nii.gz", &v, &vol, &err), KMS_OK);
    for (int z = 0; z < 4; z++)
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 6; x++)
                ck_assert_double_eq(value_at(&vol, x, y, z), pattern(x, y, z));
    kms_volume_free(&vol);
}
END_TEST

START_TEST(test_read_permuted_layout)
{
    /* i -> S, j -> L, k -> A: canonical (x, y, z) is file (z, x, 4 - y) */
    vspec v = spec(PERM, DT_INT16);
    kms_volume vol;
    kms_error err;
    ck_assert_int_eq(write_and_read("perm.nii", &v, &vol, &err), KMS_OK);
    ck_assert_double_eq(value_at(&vol, 0, 0, 0), pattern(0, 0, 4));
    ck_assert_double_eq(value_at(&vol, 1, 2, 3), pattern(3, 1, 2));
    ck_assert_double_eq(value_at(&vol, 5, 4, 3), pattern(3, 5, 0));
    kms_volume_free(&vol);
}
END_TEST

START_TEST(test_read_method1_identity)
{
    /* no sform, no qform: i, j, k are taken as R, A, S */
    vspec v = spec(RAS, DT_INT16);
    v.sform_code = v.qform_code = 0;
    check_write_read("m1.nii", &v, ANY_DEPTH, 1, 0);
}
END_TEST

START_TEST(test_read_sform_over_qform)
{
    /* sform says LPS, qform says RAS: the sform wins */
    vspec v = spec(LPS, DT_INT16);
    char path[512];
    write_pattern("both.nii", &v, path, sizeof path);
    /* rewrite the qform as RAS (identity rotation) */
    nifti_image *nim = nifti_image_read(path, 1);
    ck_assert_ptr_nonnull(nim);
    nim->quatern_b = nim->quatern_c = nim->quatern_d = 0;
    nim->qfac = 1;
    nifti_image_write(nim);
    nifti_image_free(nim);
    check_read_pattern(path, &v, ANY_DEPTH, 1, 0);
}
END_TEST

START_TEST(test_read_scaled_s16)
{
    vspec v = spec(PERM, DT_INT16);
    v.slope = 2;
    v.inter = -1024;
    check_write_read("scaled.nii.gz", &v, KMS_DEPTH_S16, 2, -1024);
}
END_TEST

START_TEST(test_read_scaled_f32)
{
    vspec v = spec(RAS, DT_INT16);
    v.slope = 0.5;
    v.inter = 3;
    check_write_read("half.nii", &v, KMS_DEPTH_F32, 0.5, 3);
}
END_TEST

START_TEST(test_read_slope_unset)
{
    /* slope 0 and slope NaN both mean "not scaled", whatever inter says */
    double slopes[] = {0.0, NAN};
    for (int s = 0; s < 2; s++) {
        vspec v = spec(LPS, DT_INT16);
        v.slope = slopes[s];
        v.inter = 77;
        check_write_read("noscale.nii", &v, KMS_DEPTH_S16, 1, 0);
    }
}
END_TEST

START_TEST(test_read_datatypes)
{
    /* small integers of any integer type give S16; floats give F32 */
    static const struct {
        int dt;
        kms_depth depth;
    } cases[] = {
        {DT_INT8, KMS_DEPTH_S16},    {DT_UINT8, KMS_DEPTH_S16},
        {DT_INT16, KMS_DEPTH_S16},   {DT_UINT16, KMS_DEPTH_S16},
        {DT_INT32, KMS_DEPTH_S16},   {DT_UINT32, KMS_DEPTH_S16},
        {DT_FLOAT32, KMS_DEPTH_F32}, {DT_FLOAT64, KMS_DEPTH_F32},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        vspec v = spec(PERM, cases[c].dt);
        /* the pattern reaches 453: 8-bit types get i + 10 j only */
        bool small = cases[c].dt == DT_INT8 || cases[c].dt == DT_UINT8;
        char path[512];
        kt_tmp_path(path, sizeof path, "dt.nii");
        double *vals = pattern_values(&v);
        if (small)
            for (size_t i = 0; i < spec_nvox(&v); i++)
                vals[i] = fmod(vals[i], 100);
        write_volume(path, &v, vals);
        free(vals);
        kms_volume vol;
        kms_error err;
        ck_assert_msg(kms_nifti_read(path, 0, &vol, &err) == KMS_OK, "%s: %s",
                      nifti_datatype_string(cases[c].dt), err.message);
        ck_assert_msg(vol.img.depth == cases[c].depth, "%s gave %s",
                      nifti_datatype_string(cases[c].dt),
                      kms_depth_name(vol.img.depth));
        if (small) /* canonical (5, 2, 3) is file (3, 5, 2): 3 + 50 */
            ck_assert_double_eq(value_at(&vol, 5, 2, 3), 53);
        else
            check_pattern(&vol, PERM, v.dims, 1, 0);
        kms_volume_free(&vol);
    }
}
END_TEST

START_TEST(test_read_wide_integers)
{
    /* uint16 CT with inter -1024 fits int16; values beyond it do not */
    vspec v = spec(LPS, DT_UINT16);
    size_t n = spec_nvox(&v);
    double *vals = malloc(n * sizeof *vals);
    ck_assert_ptr_nonnull(vals);
    for (size_t i = 0; i < n; i++)
        vals[i] = (double)(i * 4095 / (n - 1));
    char path[512];
    kt_tmp_path(path, sizeof path, "u16.nii");
    v.inter = -1024;
    v.slope = 1;
    write_volume(path, &v, vals);
    kms_volume vol;
    kms_error err;
    ck_assert_int_eq(kms_nifti_read(path, 0, &vol, &err), KMS_OK);
    ck_assert_int_eq(vol.img.depth, KMS_DEPTH_S16);
    ck_assert_double_eq(value_at(&vol, 0, 0, 0), -1024);
    ck_assert_double_eq(value_at(&vol, 5, 4, 3), 4095 - 1024);
    kms_volume_free(&vol);

    vals[n - 1] = 40000; /* 38976 after inter: beyond int16 */
    write_volume(path, &v, vals);
    ck_assert_int_eq(kms_nifti_read(path, 0, &vol, &err), KMS_OK);
    ck_assert_int_eq(vol.img.depth, KMS_DEPTH_F32);
    ck_assert_double_eq(value_at(&vol, 5, 4, 3), 40000 - 1024);
    ck_assert_double_eq(value_at(&vol, 0, 0, 0), -1024);
    kms_volume_free(&vol);

    v.datatype = DT_INT32;
    v.inter = 0;
    vals[0] = -40000;
    vals[n - 1] = 5;
    write_volume(path, &v, vals);
    ck_assert_int_eq(kms_nifti_read(path, 0, &vol, &err), KMS_OK);
    ck_assert_int_eq(vol.img.depth, KMS_DEPTH_F32);
    ck_assert_double_eq(value_at(&vol, 0, 0, 0), -40000);
    kms_volume_free(&vol);
    free(vals);
}
END_TEST

START_TEST(test_read_nifti2)
{
    vspec v = spec(PERM, DT_FLOAT64);
    v.version = 2;
    check_write_read("v2.nii.gz", &v, KMS_DEPTH_F32, 1, 0);
}
END_TEST

START_TEST(test_read_big_endian)
{
    /* nifti_clib writes native order; swap header and voxels by hand */
    vspec v = spec(PERM, DT_INT16);
    char path[512];
    write_pattern("be.nii", &v, path, sizeof path);
    size_t n;
    unsigned char *buf = kt_read_file(path, &n);
    ck_assert_uint_eq(n, 352 + spec_nvox(&v) * 2);
    swap_nifti_header(buf, 1);
    nifti_swap_2bytes((int64_t)spec_nvox(&v), buf + 352);
    kt_write_bytes(path, buf, n);
    free(buf);
    check_read_pattern(path, &v, ANY_DEPTH, 1, 0);
}
END_TEST

/* A mask with distinct values per canonical voxel. */
static void make_mask(const kms_volume *vol, kms_image *mask)
{
    *mask = kt_image(vol->nx, vol->ny * vol->nz, 1, KMS_DEPTH_U8);
    for (int z = 0; z < vol->nz; z++)
        for (int y = 0; y < vol->ny; y++)
            for (int x = 0; x < vol->nx; x++)
                ((uint8_t *)kms_image_row(mask, z * vol->ny + y))[x] =
                    (uint8_t)(1 + x + 7 * y + 37 * z);
}

START_TEST(test_read_hdr_img_pair)
{
    /* a two-file NIfTI-1 (.hdr + .img): named by its .hdr; masks come out
     * as one .nii */
    vspec v = spec(PERM, DT_INT16);
    char path[512];
    /* one file so far, rewritten as two */
    write_pattern("pair.hdr", &v, path, sizeof path);
    nifti_image *nim = nifti_image_read(path, 1);
    ck_assert_ptr_nonnull(nim);
    nim->nifti_type = NIFTI_FTYPE_NIFTI1_2;
    ck_assert_int_eq(nifti_set_filenames(nim, path, 0, 1), 0);
    nifti_image_write(nim);
    ck_assert_str_eq(nim->iname + strlen(nim->iname) - 4, ".img");
    nifti_image_free(nim);
    char img[512];
    ck_assert_int_eq(access(kt_tmp_path(img, sizeof img, "pair.img"), R_OK), 0);

    kms_volume vol;
    kms_error err;
    ck_assert_msg(kms_nifti_read(path, 0, &vol, &err) == KMS_OK, "%s",
                  err.message);
    check_pattern(&vol, PERM, v.dims, 1, 0);
    kms_image mask = {0};
    make_mask(&vol, &mask);
    ck_assert_int_eq(kms_nifti_write_mask(kt_tmpdir, "pair_mask.nii", &vol,
                                          &mask, NULL, &err),
                     KMS_OK);
    char out[512];
    nifti_image *m =
        nifti_image_read(kt_tmp_path(out, sizeof out, "pair_mask.nii"), 0);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->nifti_type, NIFTI_FTYPE_NIFTI1_1);
    ck_assert_int_eq(m->nx, v.dims[0]);
    nifti_image_free(m);
    kms_image_free(&mask);
    kms_volume_free(&vol);

    /* without its .img: an i/o error naming the .img */
    unlink(img);
    ck_assert_int_eq(kms_nifti_read(path, 0, &vol, &err), KMS_ERR_IO);
    ck_assert_str_eq(err.file, img);
}
END_TEST

/* Mask through kms_nifti_write_mask, back through nifti_clib: the input's
 * axis order, dimensions and geometry. */
static void check_roundtrip(const vspec *v, const char *in_name,
                            const char *out_name)
{
    char in_path[512], out_path[512];
    kt_tmp_path(in_path, sizeof in_path, in_name);
    kt_tmp_path(out_path, sizeof out_path, out_name);
    kms_volume vol;
    kms_error err;
    ck_assert_int_eq(write_and_read(in_name, v, &vol, &err), KMS_OK);
    kms_image mask = {0};
    make_mask(&vol, &mask);
    ck_assert_msg(kms_nifti_write_mask(kt_tmpdir, out_name, &vol, &mask, NULL,
                                       &err) == KMS_OK,
                  "%s", err.message);

    nifti_image *in = nifti_image_read(in_path, 0);
    nifti_image *out = nifti_image_read(out_path, 1);
    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(out->datatype, DT_UINT8);
    ck_assert_int_eq(out->nifti_type, in->nifti_type);
    ck_assert_int_eq(out->nx, v->dims[0]);
    ck_assert_int_eq(out->ny, v->dims[1]);
    ck_assert_int_eq(out->nz, v->dims[2]);
    /* unused dims as in the input (nifti_clib writes them as 0) */
    ck_assert_int_eq(out->nt, in->nt);
    ck_assert_int_le(out->nt, 1);
    ck_assert_int_eq(out->sform_code, in->sform_code);
    ck_assert_int_eq(out->qform_code, in->qform_code);
    ck_assert_int_eq(out->xyz_units, in->xyz_units);
    ck_assert(out->scl_slope == 1 || out->scl_slope == 0);
    ck_assert(out->scl_inter == 0);
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            ck_assert_double_eq(out->sto_xyz.m[a][b], in->sto_xyz.m[a][b]);
            ck_assert_double_eq_tol(out->qto_xyz.m[a][b], in->qto_xyz.m[a][b],
                                    1e-9);
        }
    ck_assert_double_eq(out->quatern_b, in->quatern_b);
    ck_assert_double_eq(out->quatern_c, in->quatern_c);
    ck_assert_double_eq(out->quatern_d, in->quatern_d);
    ck_assert_double_eq(out->qoffset_x, in->qoffset_x);
    ck_assert_double_eq(out->qoffset_y, in->qoffset_y);
    ck_assert_double_eq(out->qoffset_z, in->qoffset_z);
    ck_assert_double_eq(out->qfac, in->qfac);
    for (int a = 0; a < 4; a++)
        ck_assert_double_eq(out->pixdim[a], in->pixdim[a]);

    const uint8_t *data = out->data;
    const int *d = v->dims;
    for (int k = 0; k < d[2]; k++)
        for (int j = 0; j < d[1]; j++)
            for (int i = 0; i < d[0]; i++) {
                int c[3];
                canonical_of(v->m, d, i, j, k, c);
                uint8_t want = ((const uint8_t *)kms_image_row(
                    &mask, c[2] * vol.ny + c[1]))[c[0]];
                ck_assert_uint_eq(data[i + d[0] * (j + d[1] * k)], want);
            }
    nifti_image_free(in);
    nifti_image_free(out);

    /* and back through our reader: the very same mask */
    kms_volume back;
    ck_assert_int_eq(kms_nifti_read(out_path, 0, &back, &err), KMS_OK);
    ck_assert_int_eq(back.nx, vol.nx);
    ck_assert_int_eq(back.ny, vol.ny);
    ck_assert_int_eq(back.nz, vol.nz);
    for (int y = 0; y < mask.height; y++)
        for (int x = 0; x < mask.width; x++)
            ck_assert_double_eq(value_at(&back, x, y % vol.ny, y / vol.ny),
                                ((uint8_t *)kms_image_row(&mask, y))[x]);
    kms_volume_free(&back);
    kms_image_free(&mask);
    kms_volume_free(&vol);
}

START_TEST(test_mask_roundtrip_ras_gz)
{
    vspec v = spec(RAS, DT_INT16);
    check_roundtrip(&v, "ct.nii.gz", "mask.nii.gz");
}
END_TEST

START_TEST(test_mask_roundtrip_perm_nii)
{
    vspec v = spec(PERM, DT_INT16);
    v.slope = 2;
    v.inter = -1024;
    check_roundtrip(&v, "ct.nii", "mask.nii");
}
END_TEST

START_TEST(test_mask_roundtrip_qform_only)
{
    vspec v = spec(PERM, DT_FLOAT32);
    v.sform_code = 0;
    check_roundtrip(&v, "ct.nii.gz", "MASK.NII.GZ");
}
END_TEST

START_TEST(test_mask_roundtrip_nifti2)
{
    vspec v = spec(LPS, DT_INT16);
    v.version = 2;
    check_roundtrip(&v, "ct2.nii", "mask2.nii.gz");
}
END_TEST

START_TEST(test_mask_replaces_product)
{
    /* an older product (not protected) is replaced, atomically */
    vspec v = spec(RAS, DT_INT16);
    kms_volume vol;
    kms_error err;
    ck_assert_int_eq(write_and_read("ct.nii", &v, &vol, &err), KMS_OK);
    char out[512];
    kt_write_bytes(kt_tmp_path(out, sizeof out, "m.nii"), "old", 3);
    kms_image mask = {0};
    make_mask(&vol, &mask);
    ck_assert_int_eq(
        kms_nifti_write_mask(kt_tmpdir, "m.nii", &vol, &mask, NULL, &err),
        KMS_OK);
    size_t n;
    free(kt_read_file(out, &n));
    ck_assert_uint_eq(n, 352 + 6 * 5 * 4);
    /* no temporary left behind */
    ck_assert_int_eq(kt_count_entries(kt_tmpdir, NULL), 2);
    kms_image_free(&mask);
    kms_volume_free(&vol);
}
END_TEST

START_TEST(test_is_path)
{
    ck_assert(kms_nifti_is_path("a.nii"));
    ck_assert(kms_nifti_is_path("dir/a.nii.gz"));
    ck_assert(kms_nifti_is_path("A.NII"));
    ck_assert(kms_nifti_is_path("b.Nii.Gz"));
    ck_assert(!kms_nifti_is_path("a.nii.bak"));
    ck_assert(!kms_nifti_is_path("a.gz"));
    ck_assert(!kms_nifti_is_path("a.png"));
    ck_assert(!kms_nifti_is_path("anii"));
    ck_assert(!kms_nifti_is_path(".nii"));
    ck_assert(!kms_nifti_is_path(""));
    ck_assert(!kms_nifti_is_path(NULL));
}
END_TEST

START_TEST(test_volume_free)
{
    kms_volume_free(NULL);
    vspec v = spec(RAS, DT_INT16);
    kms_volume vol;
    kms_error err;
    ck_assert_int_eq(write_and_read("f.nii", &v, &vol, &err), KMS_OK);
    kms_volume_free(&vol);
    ck_assert_ptr_null(vol.header);
    ck_assert_ptr_null(vol.img.data);
    kms_volume_free(&vol);
}
END_TEST

/* The real CT beside the repository (../shared), when there is one. */
static const char *shared_file(const char *name, char *buf, size_t len)
{
    const char *dirs[] = {KMS_SOURCE_DIR "/../shared/data/lung-ct-volume",
                          "/work/shared/data/lung-ct-volume"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(buf, len, "%s/%s", dirs[i], name);
        if (access(buf, R_OK) == 0)
            return buf;
    }
    return NULL;
}

START_TEST(test_shared_lung_ct)
{
    char ct_path[1024], mask_path[1024];
    if (!shared_file("ct.nii.gz", ct_path, sizeof ct_path) ||
        !shared_file("lung_mask.nii.gz", mask_path, sizeof mask_path)) {
        printf("check_nifti: NOTE: shared/data/lung-ct-volume not found; "
               "skipping the real-CT test\n");
        return;
    }
    kms_volume ct;
    kms_error err;
    ck_assert_msg(kms_nifti_read(ct_path, 0, &ct, &err) == KMS_OK, "%s",
                  err.message);
    ck_assert_int_eq(ct.nx, 122);
    ck_assert_int_eq(ct.ny, 101);
    ck_assert_int_eq(ct.nz, 30);
    for (int a = 0; a < 3; a++)
        ck_assert_double_eq_tol(ct.voxel_mm[a], 3.0, 1e-6);
    ck_assert_int_eq(ct.img.depth, KMS_DEPTH_S16);
    int lo = INT16_MAX, hi = INT16_MIN;
    for (int y = 0; y < ct.img.height; y++) {
        const int16_t *row = kms_image_row(&ct.img, y);
        for (int x = 0; x < ct.img.width; x++) {
            lo = row[x] < lo ? row[x] : lo;
            hi = row[x] > hi ? row[x] : hi;
        }
    }
    ck_assert_int_eq(lo, -1100);
    ck_assert_int_eq(hi, 1207);

    /* the lung bases are in the top 11 slices (z = 19..29, I->S) */
    kms_volume lung;
    ck_assert_int_eq(kms_nifti_read(mask_path, 0, &lung, &err), KMS_OK);
    ck_assert_int_eq(lung.nx, 122);
    ck_assert_int_eq(lung.nz, 30);
    long count = 0;
    int zmin = 30;
    kms_image m8 = kt_image(lung.nx, lung.ny * lung.nz, 1, KMS_DEPTH_U8);
    for (int y = 0; y < lung.img.height; y++) {
        const int16_t *row = kms_image_row(&lung.img, y);
        uint8_t *out = kms_image_row(&m8, y);
        for (int x = 0; x < lung.img.width; x++) {
            out[x] = (uint8_t)row[x];
            if (row[x]) {
                count++;
                zmin = y / lung.ny < zmin ? y / lung.ny : zmin;
            }
        }
    }
    ck_assert_int_eq(count, 4307);
    ck_assert_int_eq(zmin, 19);

    /* written back with the CT's header: the same voxels as lung_mask */
    ck_assert_int_eq(
        kms_nifti_write_mask(kt_tmpdir, "lung.nii.gz", &ct, &m8, NULL, &err),
        KMS_OK);
    char out_path[512];
    nifti_image *a = nifti_image_read(mask_path, 1);
    nifti_image *b = nifti_image_read(
        kt_tmp_path(out_path, sizeof out_path, "lung.nii.gz"), 1);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(a->nvox, b->nvox);
    ck_assert_int_eq(a->datatype, DT_UINT8);
    ck_assert_mem_eq(a->data, b->data, (size_t)a->nvox);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            ck_assert_double_eq(a->sto_xyz.m[r][c], b->sto_xyz.m[r][c]);
    nifti_image_free(a);
    nifti_image_free(b);

    /* left lung lobes (labels 10, 11) lie to the right of the right lobes
     * (12, 13, 14) in the image: x runs from the patient's right to left */
    char seg_path[1024];
    if (shared_file("seg_multilabel.nii.gz", seg_path, sizeof seg_path)) {
        kms_volume seg;
        ck_assert_int_eq(kms_nifti_read(seg_path, 0, &seg, &err), KMS_OK);
        double sum[2] = {0, 0}, cnt[2] = {0, 0};
        for (int y = 0; y < seg.img.height; y++) {
            const int16_t *row = kms_image_row(&seg.img, y);
            for (int x = 0; x < seg.img.width; x++) {
                if (row[x] >= 10 && row[x] <= 14) {
                    int left = row[x] <= 11;
                    sum[left] += x;
                    cnt[left]++;
                }
            }
        }
        ck_assert(cnt[0] > 0 && cnt[1] > 0);
        ck_assert_double_gt(sum[1] / cnt[1], seg.nx / 2.0);
        ck_assert_double_lt(sum[0] / cnt[0], seg.nx / 2.0);
        kms_volume_free(&seg);
    }
    kms_image_free(&m8);
    kms_volume_free(&lung);
    kms_volume_free(&ct);
}
END_TEST

/* ---- Limits -------------------------------------------------------------- */

/* Reading fails with code, err.file == path, message containing what, and
 * vol left empty. */
static void check_read_fails(const char *path, kms_status code,
                             const char *what)
{
    kms_volume vol;
    memset(&vol, 0x5a, sizeof vol);
    kms_error err;
    kms_error_clear(&err);
    /* nifti_clib must not print: stderr goes to a file meanwhile (Check
     * runs each test in its own process, so this touches nothing else) */
    char log[512];
    kt_tmp_path(log, sizeof log, "stderr.log");
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    ck_assert_ptr_nonnull(freopen(log, "w", stderr));
    kms_status st = kms_nifti_read(path, 0, &vol, &err);
    fflush(stderr);
    ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
    close(saved);
    size_t printed;
    char *text = kt_read_file(log, &printed);
    unlink(log);
    ck_assert_msg(printed == 0, "nifti_clib printed: %s", text);
    free(text);
    ck_assert_int_eq(st, code);
    ck_assert_int_eq(err.code, code);
    ck_assert_str_eq(err.file, path);
    ck_assert_msg(strstr(err.message, what) != NULL, "\"%s\" lacks \"%s\"",
                  err.message, what);
    ck_assert_ptr_null(vol.header);
    ck_assert_ptr_null(vol.img.data);
    if (getenv("CHECK_NIFTI_VERBOSE"))
        printf("%s: %s\n", path, err.message);
    kms_volume_free(&vol);
}

START_TEST(test_truncated_nii)
{
    vspec v = spec(RAS, DT_INT16);
    char path[512];
    write_pattern("cut.nii", &v, path, sizeof path);
    cut_file(path, 352 + 100);
    /* found from the file's size, before anything is allocated */
    check_read_fails(path, KMS_ERR_INPUT,
                     "truncated: the header claims 240 bytes of voxel data "
                     "from byte 352, the file has 452 bytes");
}
END_TEST

/* A 40^3 int16 volume of noise: its .nii.gz is about as long as the data,
 * so cutting or damaging the middle of the file hits the voxels. */
static void write_noise(const char *path)
{
    static int dims[3] = {40, 40, 40};
    vspec v = spec(RAS, DT_INT16);
    v.dims = dims;
    size_t n = spec_nvox(&v);
    double *vals = malloc(n * sizeof *vals);
    ck_assert_ptr_nonnull(vals);
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        vals[i] = (double)(s >> 17) - 16384;
    }
    write_volume(path, &v, vals);
    free(vals);
}

START_TEST(test_truncated_nii_gz)
{
    char path[512];
    kt_tmp_path(path, sizeof path, "cut.nii.gz");
    write_noise(path);
    size_t len;
    free(kt_read_file(path, &len));
    cut_file(path, len / 2);
    check_read_fails(path, KMS_ERR_INPUT,
                     "truncated: expected 128000 bytes of voxel data");
}
END_TEST

START_TEST(test_truncated_header)
{
    char path[512], gz[512];
    kt_tmp_path(path, sizeof path, "hdr.nii");
    kt_tmp_path(gz, sizeof gz, "hdr.nii.gz");
    vspec v = spec(RAS, DT_INT16);
    write_volume(path, &v, NULL);
    write_volume(gz, &v, NULL);
    cut_file(path, 200);
    check_read_fails(path, KMS_ERR_INPUT,
                     "truncated: the NIfTI header needs 348 bytes");
    cut_file(gz, 40);
    check_read_fails(gz, KMS_ERR_INPUT, "truncated");
}
END_TEST

/* Flips bytes [at, at + 64) of path. */
static void damage(const char *path, size_t at)
{
    size_t len;
    unsigned char *buf = kt_read_file(path, &len);
    ck_assert_uint_le(at + 64, len);
    for (size_t i = at; i < at + 64; i++)
        buf[i] ^= 0xa5;
    kt_write_bytes(path, buf, len);
    free(buf);
}

START_TEST(test_corrupt_gz)
{
    char path[512];
    kt_tmp_path(path, sizeof path, "bad.nii.gz");
    /* damage far from the header: the voxels do not decompress */
    write_noise(path);
    size_t len;
    free(kt_read_file(path, &len));
    damage(path, len - len / 4);
    check_read_fails(path, KMS_ERR_INPUT, "corrupt compressed data");
    /* damage near the start: zlib fails already on the header */
    write_noise(path);
    damage(path, 20);
    check_read_fails(path, KMS_ERR_INPUT, "corrupt compressed data");
}
END_TEST

/* A voxel of the pattern (file order) replaced by another value. */
typedef struct voxel {
    size_t at;
    double value;
} voxel;

/* Writes the pattern with spec v and the n bad voxels to kt_tmpdir/rel and
 * checks that reading it fails, the message naming what. */
static void check_bad_voxels(const char *rel, const vspec *v, const voxel *bad,
                             size_t n, const char *what)
{
    char path[512];
    kt_tmp_path(path, sizeof path, rel);
    double *vals = pattern_values(v);
    for (size_t i = 0; i < n; i++)
        vals[bad[i].at] = bad[i].value;
    write_volume(path, v, vals);
    free(vals);
    check_read_fails(path, KMS_ERR_INPUT, what);
}

START_TEST(test_nan_float32)
{
    vspec v = spec(PERM, DT_FLOAT32);
    const int *d = v.dims;
    const voxel bad[] = {
        /* file (2, 3, 1), then an infinity later in file order */
        {(size_t)(2 + d[0] * (3 + d[1] * 1)), NAN},
        {(size_t)(1 + d[0] * (0 + d[1] * 4)), INFINITY},
    };
    check_bad_voxels("nan.nii", &v, bad, 2, "voxel (2, 3, 1) is NaN");
}
END_TEST

START_TEST(test_inf_float64)
{
    vspec v = spec(RAS, DT_FLOAT64);
    const voxel bad[] = {{5, -INFINITY}}; /* file (5, 0, 0) */
    check_bad_voxels("inf.nii.gz", &v, bad, 1, "voxel (5, 0, 0) is infinite");
}
END_TEST

START_TEST(test_float_overflow)
{
    vspec v = spec(RAS, DT_FLOAT64);
    const voxel bad[] = {{1, 1e300}};
    check_bad_voxels("huge.nii", &v, bad, 1, "voxel (1, 0, 0) overflows");
}
END_TEST

START_TEST(test_4d)
{
    vspec v = spec(RAS, DT_INT16);
    v.nt = 2;
    char path[512];
    write_pattern("4d.nii.gz", &v, path, sizeof path);
    check_read_fails(path, KMS_ERR_INPUT,
                     "4-D volumes are not supported: nt = 2");
}
END_TEST

START_TEST(test_4d_single_volume)
{
    /* dim[0] = 4 with nt = 1 is a 3-D volume */
    vspec v = spec(LPS, DT_INT16);
    char path[512];
    write_pattern("4d1.nii", &v, path, sizeof path);
    nifti_image *nim = nifti_image_read(path, 1);
    ck_assert_ptr_nonnull(nim);
    nim->ndim = nim->dim[0] = 4;
    nim->nt = nim->dim[4] = 1;
    nifti_image_write(nim);
    nifti_image_free(nim);
    check_read_pattern(path, &v, ANY_DEPTH, 1, 0);
}
END_TEST

START_TEST(test_unsupported_types)
{
    static const struct {
        int dt;
        const char *name;
    } cases[] = {{DT_RGB24, "RGB24"},
                 {DT_COMPLEX64, "COMPLEX64"},
                 {DT_RGBA32, "RGBA32"},
                 {DT_INT64, "INT64"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char path[512];
        kt_tmp_path(path, sizeof path, "rgb.nii");
        vspec v = spec(RAS, cases[c].dt);
        write_volume(path, &v, NULL);
        char what[64];
        snprintf(what, sizeof what, "unsupported datatype %s", cases[c].name);
        check_read_fails(path, KMS_ERR_INPUT, what);
    }
}
END_TEST

START_TEST(test_missing)
{
    char path[512];
    kt_tmp_path(path, sizeof path, "missing.nii.gz");
    check_read_fails(path, KMS_ERR_IO, "No such file");
    /* a folder is no file either */
    char dir[512];
    kt_tmp_path(dir, sizeof dir, "dir.nii");
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    check_read_fails(dir, KMS_ERR_IO, "not a regular file");
}
END_TEST

START_TEST(test_not_nifti)
{
    char path[512];
    kt_tmp_path(path, sizeof path, "text.nii");
    kt_write_bytes(path, "hello, world\n", 13);
    check_read_fails(path, KMS_ERR_INPUT, "not a NIfTI file");
    kt_tmp_path(path, sizeof path, "empty.nii.gz");
    kt_write_bytes(path, "", 0);
    check_read_fails(path, KMS_ERR_INPUT, "not a NIfTI file");
    /* 400 zero bytes: long enough, but no header */
    unsigned char zeros[400] = {0};
    kt_tmp_path(path, sizeof path, "zeros.nii");
    kt_write_bytes(path, zeros, sizeof zeros);
    check_read_fails(path, KMS_ERR_INPUT, "not a NIfTI file");
    /* a good volume under a name nifti_clib does not take */
    char good[512];
    vspec v = spec(RAS, DT_INT16);
    write_volume(kt_tmp_path(good, sizeof good, "good.nii"), &v, NULL);
    size_t n;
    unsigned char *buf = kt_read_file(good, &n);
    kt_tmp_path(path, sizeof path, "good.png");
    kt_write_bytes(path, buf, n);
    free(buf);
    check_read_fails(path, KMS_ERR_INPUT, "not a NIfTI file name");
}
END_TEST

START_TEST(test_bad_header_fields)
{
    /* a header with its size right but dim[0] (the rank) out of 1..7;
     * nifti_clib itself turns other bad dimensions into 1 */
    char path[512];
    kt_tmp_path(path, sizeof path, "neg.nii");
    vspec v = spec(RAS, DT_INT16);
    write_volume(path, &v, NULL);
    size_t n;
    unsigned char *buf = kt_read_file(path, &n);
    nifti_1_header h;
    memcpy(&h, buf, sizeof h);
    h.dim[0] = 9;
    memcpy(buf, &h, sizeof h);
    kt_write_bytes(path, buf, n);
    check_read_fails(path, KMS_ERR_INPUT, "invalid NIfTI header: dim[0] = 9");
    /* the same for dim[1] and the datatype */
    h.dim[0] = 3;
    h.dim[1] = 0;
    memcpy(buf, &h, sizeof h);
    kt_write_bytes(path, buf, n);
    check_read_fails(path, KMS_ERR_INPUT, "invalid NIfTI header: dim[1] = 0");
    h.dim[1] = 6;
    h.datatype = 9999;
    memcpy(buf, &h, sizeof h);
    kt_write_bytes(path, buf, n);
    check_read_fails(path, KMS_ERR_INPUT, "unknown datatype 9999");
    /* DT_NONE and DT_ALL: in nifti_clib's table of names, but no voxel
     * type (nifti_datatype_is_valid passes them; the reader would not) */
    const short sizeless[] = {DT_NONE, DT_ALL, DT_BINARY};
    for (size_t i = 0; i < sizeof sizeless / sizeof *sizeless; i++) {
        char want[64];
        snprintf(want, sizeof want, "unknown datatype %d", sizeless[i]);
        h.datatype = sizeless[i];
        memcpy(buf, &h, sizeof h);
        kt_write_bytes(path, buf, n);
        check_read_fails(path, KMS_ERR_INPUT, want);
    }
    free(buf);
}
END_TEST

/* Header fields nifti_clib would repair silently (or print about) are
 * errors naming the field, found before any voxel is allocated. */

/* A good volume written to kt_tmpdir/name with its header edited; returns
 * the file's bytes (the caller frees) and their length. */
static unsigned char *edited_volume(const char *name,
                                    void (*edit)(nifti_1_header *),
                                    char *path, size_t len, size_t *n)
{
    kt_tmp_path(path, len, name);
    vspec v = spec(RAS, DT_INT16);
    write_volume(path, &v, NULL);
    unsigned char *buf = kt_read_file(path, n);
    nifti_1_header h;
    memcpy(&h, buf, sizeof h);
    edit(&h);
    memcpy(buf, &h, sizeof h);
    return buf;
}

static void check_header_edit(const char *name, void (*edit)(nifti_1_header *),
                              const char *what)
{
    char path[512];
    size_t n;
    unsigned char *buf = edited_volume(name, edit, path, sizeof path, &n);
    kt_write_bytes(path, buf, n);
    free(buf);
    check_read_fails(path, KMS_ERR_INPUT, what);
}

static void rank0(nifti_1_header *h) { h->dim[0] = 0; }
static void neg_dim(nifti_1_header *h) { h->dim[2] = -5; }
static void offset_in_header(nifti_1_header *h) { h->vox_offset = 100; }
static void offset_fraction(nifti_1_header *h) { h->vox_offset = 352.5f; }
static void neg_pixdim(nifti_1_header *h) { h->pixdim[2] = -1; }
static void nan_pixdim(nifti_1_header *h) { h->pixdim[1] = NAN; }
static void huge_pixdim(nifti_1_header *h) { h->pixdim[3] = 100; }
static void metre_pixdim(nifti_1_header *h)
{
    h->xyzt_units = NIFTI_UNITS_METER;
    h->pixdim[1] = h->pixdim[2] = 0.001f;
    h->pixdim[3] = 0.1f; /* 100 mm */
}
static void huge_dims(nifti_1_header *h)
{
    h->dim[1] = h->dim[2] = h->dim[3] = 600; /* within the pixel limit */
}
static void over_limit(nifti_1_header *h)
{
    h->dim[1] = h->dim[2] = h->dim[3] = 30000;
}

START_TEST(test_header_repairs_refused)
{
    check_header_edit("r0.nii", rank0,
                      "dim[0] = 0 is not a number of dimensions");
    check_header_edit("nd.nii", neg_dim, "invalid NIfTI header: dim[2] = -5");
    check_header_edit("vo.nii", offset_in_header,
                      "vox_offset = 100 (the voxel data start at byte 352");
    check_header_edit("vf.nii", offset_fraction, "vox_offset = 352.5");
    check_header_edit("np.nii", neg_pixdim, "pixdim[2] = -1 is not a voxel size");
    check_header_edit("nan.nii", nan_pixdim, "pixdim[1] = nan is not a voxel size");
    check_header_edit("hp.nii", huge_pixdim,
                      "pixdim[3] = 100 mm is not a plausible voxel size "
                      "(at most 50 mm)");
    check_header_edit("mp.nii", metre_pixdim,
                      "pixdim[3] = 100 mm is not a plausible voxel size");
    check_header_edit("big.nii", huge_dims,
                      "truncated: the header claims 432000000 bytes");
    check_header_edit("limit.nii", over_limit,
                      "27000000000000 voxels are more than the limit of "
                      "268435456 (--max-pixels)");
}
END_TEST

/* A small .nii.gz claiming terabytes fails from its size, not from malloc
 * or a long decompression. */
START_TEST(test_gz_claims_too_much)
{
    char path[512], gz[512];
    size_t n;
    unsigned char *buf = edited_volume("big.nii", huge_dims, path, sizeof path, &n);
    kt_tmp_path(gz, sizeof gz, "big.nii.gz");
    gzFile f = gzopen(gz, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gzwrite(f, buf, (unsigned)n), (int)n);
    ck_assert_int_eq(gzclose(f), Z_OK);
    free(buf);
    check_read_fails(gz, KMS_ERR_INPUT,
                     "claims 432000000 bytes of voxel data, more than a");
}
END_TEST

/* Voxel sizes in metres or microns are read as millimetres. */
static void in_metres(nifti_1_header *h)
{
    h->xyzt_units = NIFTI_UNITS_METER;
    for (int a = 1; a <= 3; a++)
        h->pixdim[a] /= 1000;
}

START_TEST(test_spacing_units)
{
    char path[512];
    size_t n;
    unsigned char *buf = edited_volume("m.nii", in_metres, path, sizeof path, &n);
    kms_volume ref, vol;
    kms_error err;
    ck_assert_int_eq(kms_nifti_read(path, 0, &ref, &err), KMS_OK); /* in mm */
    kt_write_bytes(path, buf, n);
    free(buf);
    ck_assert_int_eq(kms_nifti_read(path, 0, &vol, &err), KMS_OK);
    for (int a = 0; a < 3; a++)
        ck_assert_double_eq_tol(vol.voxel_mm[a], ref.voxel_mm[a], 1e-6);
    kms_volume_free(&vol);
    kms_volume_free(&ref);
}
END_TEST

START_TEST(test_write_protected)
{
    vspec v = spec(RAS, DT_INT16);
    kms_volume vol;
    kms_error err;
    ck_assert_int_eq(write_and_read("in.nii.gz", &v, &vol, &err), KMS_OK);
    char in[512];
    kt_tmp_path(in, sizeof in, "in.nii.gz");
    size_t n0;
    unsigned char *before = kt_read_file(in, &n0);
    kms_file_set protect;
    const char *paths[] = {in};
    ck_assert_int_eq(kms_file_set_build(&protect, paths, 1, &err), KMS_OK);

    kms_image mask = {0};
    make_mask(&vol, &mask);
    kms_error_clear(&err);
    ck_assert_int_eq(kms_nifti_write_mask(kt_tmpdir, "in.nii.gz", &vol, &mask,
                                          &protect, &err),
                     KMS_ERR_IO);
    ck_assert_str_eq(err.file, in);
    ck_assert_ptr_nonnull(strstr(err.message, "refusing to overwrite"));
    /* by another path to the same file, too */
    char other[512];
    kt_tmp_path(other, sizeof other, "sub");
    ck_assert_int_eq(mkdir(other, 0700), 0);
    char dotdot[600];
    snprintf(dotdot, sizeof dotdot, "%s/..", other);
    ck_assert_int_eq(kms_nifti_write_mask(dotdot, "in.nii.gz", &vol, &mask,
                                          &protect, &err),
                     KMS_ERR_IO);
    size_t n1;
    unsigned char *after = kt_read_file(in, &n1);
    ck_assert_uint_eq(n0, n1);
    ck_assert_mem_eq(before, after, n0);
    /* elsewhere it is fine */
    ck_assert_int_eq(kms_nifti_write_mask(other, "in.nii.gz", &vol, &mask,
                                          &protect, &err),
                     KMS_OK);
    free(before);
    free(after);
    kms_file_set_free(&protect);
    kms_image_free(&mask);
    kms_volume_free(&vol);
}
END_TEST

START_TEST(test_write_bad_arguments)
{
    vspec v = spec(PERM, DT_INT16);
    kms_volume vol;
    kms_error err;
    ck_assert_int_eq(write_and_read("in.nii", &v, &vol, &err), KMS_OK);
    kms_image mask = {0};
    make_mask(&vol, &mask);

    ck_assert_int_eq(
        kms_nifti_write_mask(kt_tmpdir, "m.png", &vol, &mask, NULL, &err),
        KMS_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(err.message, ".nii"));

    kms_image wrong = kt_image(vol.nx, vol.ny, 1, KMS_DEPTH_U8);
    ck_assert_int_eq(
        kms_nifti_write_mask(kt_tmpdir, "m.nii", &vol, &wrong, NULL, &err),
        KMS_ERR_USAGE);
    kms_image_free(&wrong);
    wrong = kt_image(vol.nx, vol.ny * vol.nz, 1, KMS_DEPTH_S16);
    ck_assert_int_eq(
        kms_nifti_write_mask(kt_tmpdir, "m.nii", &vol, &wrong, NULL, &err),
        KMS_ERR_USAGE);
    kms_image_free(&wrong);

    kms_volume empty = {0};
    ck_assert_int_eq(
        kms_nifti_write_mask(kt_tmpdir, "m.nii", &empty, &mask, NULL, &err),
        KMS_ERR_USAGE);
    /* a missing folder: an i/o error from the atomic write */
    char missing[512];
    kt_tmp_path(missing, sizeof missing, "no/such/dir");
    ck_assert_int_eq(kms_nifti_write_mask(missing, "m.nii.gz", &vol, &mask,
                                          NULL, &err),
                     KMS_ERR_IO);
    /* nothing was written */
    ck_assert_int_eq(kt_count_entries(kt_tmpdir, NULL), 1);
    kms_image_free(&mask);
    kms_volume_free(&vol);
}
END_TEST

static Suite *nifti_suite(void)
{
    Suite *s = suite_create("nifti");

    TCase *core = tcase_create("Core");
    kt_add_tmp_fixture(core, "check_nifti");
    tcase_add_test(core, test_read_ras_int16);
    tcase_add_test(core, test_read_orientations);
    tcase_add_test(core, test_read_lps_layout_is_file_order);
    tcase_add_test(core, test_read_permuted_layout);
    tcase_add_test(core, test_read_method1_identity);
    tcase_add_test(core, test_read_sform_over_qform);
    tcase_add_test(core, test_read_scaled_s16);
    tcase_add_test(core, test_read_scaled_f32);
    tcase_add_test(core, test_read_slope_unset);
    tcase_add_test(core, test_read_datatypes);
    tcase_add_test(core, test_read_wide_integers);
    tcase_add_test(core, test_read_nifti2);
    tcase_add_test(core, test_read_hdr_img_pair);
    tcase_add_test(core, test_read_big_endian);
    tcase_add_test(core, test_mask_roundtrip_ras_gz);
    tcase_add_test(core, test_mask_roundtrip_perm_nii);
    tcase_add_test(core, test_mask_roundtrip_qform_only);
    tcase_add_test(core, test_mask_roundtrip_nifti2);
    tcase_add_test(core, test_mask_replaces_product);
    tcase_add_test(core, test_is_path);
    tcase_add_test(core, test_volume_free);
    tcase_add_test(core, test_shared_lung_ct);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("Limits");
    kt_add_tmp_fixture(limits, "check_nifti");
    tcase_add_test(limits, test_truncated_nii);
    tcase_add_test(limits, test_truncated_nii_gz);
    tcase_add_test(limits, test_truncated_header);
    tcase_add_test(limits, test_corrupt_gz);
    tcase_add_test(limits, test_nan_float32);
    tcase_add_test(limits, test_inf_float64);
    tcase_add_test(limits, test_float_overflow);
    tcase_add_test(limits, test_4d);
    tcase_add_test(limits, test_4d_single_volume);
    tcase_add_test(limits, test_unsupported_types);
    tcase_add_test(limits, test_missing);
    tcase_add_test(limits, test_not_nifti);
    tcase_add_test(limits, test_bad_header_fields);
    tcase_add_test(limits, test_header_repairs_refused);
    tcase_add_test(limits, test_gz_claims_too_much);
    tcase_add_test(limits, test_spacing_units);
    tcase_add_test(limits, test_write_protected);
    tcase_add_test(limits, test_write_bad_arguments);
    suite_add_tcase(s, limits);

    return s;
}

int main(void)
{
    return kt_run_suite(nifti_suite());
}
