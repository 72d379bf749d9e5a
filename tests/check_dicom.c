/* Check suite for DICOM input (io/dicom.cpp) and DICOM geometry through the
 * NIfTI machinery (kms_nifti_volume_from_lps). Uses pydicom's test files
 * (Debian python3-pydicom) and files copied from them. */
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nifti2_io.h>

#include "batch.h"
#include "dicom.h"
#include "dicom_walk.h"
#include "nifti_io.h"
#include "orient.h"
#include "test_util.h"

#define PYD "/usr/lib/python3/dist-packages/pydicom/data/test_files/"

/* Copies a file into kt_tmpdir/rel; the full path into path. */
static const char *copy_to_tmp(const char *src, const char *rel, char *path,
                               size_t len)
{
    size_t n;
    void *buf = kt_read_file(src, &n);
    kt_tmp_path(path, len, rel);
    kt_write_bytes(path, buf, n);
    free(buf);
    return path;
}

static kms_dicom_volume read_one(const char *path)
{
    kms_dicom_volume v;
    kms_error err;
    kms_error_clear(&err);
    kms_status st = kms_dicom_read(&path, 1, 1, 0, &v, &err);
    ck_assert_msg(st == KMS_OK, "%s: %s", path, err.message);
    return v;
}

/* ---- Core ---------------------------------------------------------------- */

START_TEST(test_is_file)
{
    char p[1024];
    ck_assert(kms_dicom_is_file(PYD "CT_small.dcm"));
    copy_to_tmp(PYD "CT_small.dcm", "noext", p, sizeof p);
    ck_assert(kms_dicom_is_file(p)); /* DICM at byte 128 */
    ck_assert(kms_dicom_name("x/name.IMA")); /* by name alone */
    ck_assert(!kms_dicom_name("x/name.png"));
    ck_assert(!kms_dicom_is_file("x/name.IMA")); /* but no such file */
    kt_write_tmp("text", "a .dcm name is enough", p, sizeof p);
    char named[1100];
    snprintf(named, sizeof named, "%s.dcm", p);
    ck_assert_int_eq(rename(p, named), 0);
    ck_assert(kms_dicom_is_file(named));
    remove(named);
    kt_write_tmp("text", "not DICOM, long enough to have a byte 128 ......"
                         "................................................"
                         "................................................",
                 p, sizeof p);
    ck_assert(!kms_dicom_is_file(p));
    ck_assert(!kms_dicom_is_file(KMS_SOURCE_DIR "/samples/ct/ID_0000_Z_0142.tif"));
    ck_assert(!kms_dicom_is_file(NULL));
    ck_assert(!kms_dicom_is_file("/nonexistent"));
}
END_TEST

START_TEST(test_read_ct_small)
{
    kms_dicom_volume v = read_one(PYD "CT_small.dcm");
    ck_assert_int_eq(v.columns, 128);
    ck_assert_int_eq(v.rows, 128);
    ck_assert_int_eq(v.slices, 1);
    ck_assert_int_eq(v.img.width, 128);
    ck_assert_int_eq(v.img.height, 128);
    ck_assert_int_eq(v.img.depth, KMS_DEPTH_S16);
    ck_assert_str_eq(v.modality, "CT");
    ck_assert_str_eq(v.note, "");
    ck_assert(fabs(v.row_spacing - 0.661468) < 1e-9);
    ck_assert(fabs(v.column_spacing - 0.661468) < 1e-9);
    ck_assert(v.has_geometry);
    /* RescaleIntercept -1024: stored values are >= 0, HU are not */
    const int16_t *p = v.img.data;
    int lo = p[0];
    for (int i = 0; i < 128 * 128; i++)
        lo = p[i] < lo ? p[i] : lo;
    ck_assert_int_lt(lo, 0);
    /* the affine: column i along the row cosines times the column spacing */
    ck_assert(fabs(v.affine[0][0] - 0.661468) < 1e-9);
    ck_assert(fabs(v.affine[1][1] - 0.661468) < 1e-9);
    ck_assert(fabs(v.affine[3][3] - 1) < 1e-12);
    kms_dicom_volume_free(&v);
    kms_dicom_volume_free(&v); /* idempotent */
    kms_dicom_volume_free(NULL);
}
END_TEST

/* Compressed pixel data decodes to the same values as uncompressed. */
START_TEST(test_codecs_lossless)
{
    static const char *const same[] = {
        PYD "MR_small_RLE.dcm", PYD "MR_small_jp2klossless.dcm",
        PYD "MR_small_jpeg_ls_lossless.dcm", PYD "MR_small_bigendian.dcm",
        PYD "MR_small_implicit.dcm"};
    kms_dicom_volume ref = read_one(PYD "MR_small.dcm");
    ck_assert_str_eq(ref.modality, "MR");
    ck_assert_msg(strstr(ref.note, "modality MR, not CT"), "%s", ref.note);
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        kms_dicom_volume v = read_one(same[i]);
        ck_assert_int_eq(v.img.depth, ref.img.depth);
        ck_assert_int_eq(v.img.width, ref.img.width);
        ck_assert_int_eq(v.img.height, ref.img.height);
        ck_assert_msg(memcmp(v.img.data, ref.img.data,
                             ref.img.stride * (size_t)ref.img.height) == 0,
                      "%s decodes differently", same[i]);
        kms_dicom_volume_free(&v);
    }
    kms_dicom_volume_free(&ref);
}
END_TEST

START_TEST(test_codecs_jpeg2000)
{
    kms_dicom_volume v = read_one(PYD "JPEG2000.dcm");
    ck_assert_int_eq(v.columns, 256);
    ck_assert_int_eq(v.rows, 1024);
    ck_assert(!v.has_geometry);
    /* not all one value */
    const int16_t *p = v.img.data;
    bool varies = false;
    for (int i = 1; i < 256 * 1024 && !varies; i++)
        varies = p[i] != p[0];
    ck_assert(varies);
    kms_dicom_volume_free(&v);
}
END_TEST

START_TEST(test_group)
{
    char dup[1024], text[1024], sr[1024];
    copy_to_tmp(PYD "test-SR.dcm", "report", sr, sizeof sr);
    kt_write_tmp("junk.dcm", "not DICOM", text, sizeof text);
    copy_to_tmp(PYD "CT_small.dcm", "copy.dcm", dup, sizeof dup);
    const char *paths[] = {PYD "CT_small.dcm", PYD "MR_small.dcm",
                           PYD "rtstruct.dcm", sr, text};
    kms_dicom_groups g;
    kms_error err;
    ck_assert_int_eq(kms_dicom_group(paths, 5, &g, &err), KMS_OK);
    ck_assert_uint_eq(g.n_series, 2);
    ck_assert_str_eq(g.series[0].name, "1CT1_1");
    ck_assert_str_eq(g.series[1].name, "4MR1_1");
    ck_assert_uint_eq(g.series[0].n_files, 1);
    ck_assert_ptr_null(g.series[0].error);
    ck_assert_ptr_null(g.series[1].error);
    ck_assert_uint_eq(g.n_skipped, 2);
    ck_assert_str_eq(g.skipped[0].reason, "RTSTRUCT, not an image");
    ck_assert_str_eq(g.skipped[1].reason, "SR, not an image");
    /* a .dcm that is no DICOM is no valid object to skip: unreadable */
    ck_assert_uint_eq(g.n_unreadable, 1);
    ck_assert_str_eq(g.unreadable[0].path, text);
    ck_assert_str_eq(g.unreadable[0].reason, "not a DICOM file");
    kms_dicom_groups_free(&g);
    kms_dicom_groups_free(&g);

    /* the same slice twice in one series: an error naming both files */
    const char *twice[] = {PYD "CT_small.dcm", dup};
    ck_assert_int_eq(kms_dicom_group(twice, 2, &g, &err), KMS_OK);
    ck_assert_uint_eq(g.n_series, 1);
    ck_assert_ptr_nonnull(g.series[0].error);
    ck_assert_msg(strstr(g.series[0].error->message, "same slice position") &&
                      (strstr(g.series[0].error->message, dup) ||
                       strstr(g.series[0].error->file, dup)) &&
                      (strstr(g.series[0].error->message, "CT_small.dcm") ||
                       strstr(g.series[0].error->file, "CT_small.dcm")),
                  "%s: %s", g.series[0].error->file,
                  g.series[0].error->message);
    kms_dicom_groups_free(&g);

    ck_assert_int_eq(kms_dicom_group(NULL, 0, &g, &err), KMS_OK);
    ck_assert_uint_eq(g.n_series, 0);
    kms_dicom_groups_free(&g);
}
END_TEST

/* Every axial storage of a slice: the code brings columns to +x (patient
 * left) and rows to +y (posterior). */
START_TEST(test_orient_codes)
{
    const int w = 4, h = 3;
    for (int swap = 0; swap < 2; swap++) {
        for (int sr = -1; sr <= 1; sr += 2) {
            for (int sc = -1; sc <= 1; sc += 2) {
                double iop[6] = {0};
                /* direction of increasing column index, then of rows */
                iop[swap ? 1 : 0] = sr;
                iop[3 + (swap ? 0 : 1)] = sc;
                bool known;
                int code = kms_dicom_orient(iop, &known);
                ck_assert(known);
                /* pixel = its LPS x * 100 + y, as stored */
                kms_image src = kt_image(w, h, 1, KMS_DEPTH_S32), dst = {0};
                for (int j = 0; j < h; j++)
                    for (int i = 0; i < w; i++) {
                        double x = i * iop[0] + j * iop[3];
                        double y = i * iop[1] + j * iop[4];
                        ((int32_t *)kms_image_row(&src, j))[i] =
                            (int32_t)(x * 100 + y);
                    }
                kms_error err;
                ck_assert_int_eq(kms_orient_apply(&src, &dst, code, &err),
                                 KMS_OK);
                for (int y = 0; y < dst.height; y++)
                    for (int x = 0; x + 1 < dst.width; x++) {
                        const int32_t *r = kms_image_row(&dst, y);
                        ck_assert_msg(r[x + 1] - r[x] == 100,
                                      "code %d: columns not towards L", code);
                    }
                for (int y = 0; y + 1 < dst.height; y++) {
                    const int32_t *r0 = kms_image_row(&dst, y),
                                  *r1 = kms_image_row(&dst, y + 1);
                    ck_assert_msg(r1[0] - r0[0] == 1,
                                  "code %d: rows not towards P", code);
                }
                kms_image_free(&src);
                kms_image_free(&dst);
            }
        }
    }
    bool known = true;
    const double coronal[6] = {1, 0, 0, 0, 0, -1};
    ck_assert_int_eq(kms_dicom_orient(coronal, &known), 0);
    ck_assert(!known);
    const double oblique[6] = {0.9, 0.1, 0, -0.1, 0.9, 0.05};
    kms_dicom_orient(oblique, &known);
    ck_assert(known); /* snaps to the nearest axes */
}
END_TEST

/* A DICOM-like buffer (columns, rows, slices) with an LPS affine lands in
 * the canonical stack, and its mask goes out with the affine in RAS. */
START_TEST(test_volume_from_lps)
{
    enum { NX = 3, NY = 2, NZ = 2 };
    int16_t raw[NZ][NY][NX];
    for (int k = 0; k < NZ; k++)
        for (int j = 0; j < NY; j++)
            for (int i = 0; i < NX; i++)
                raw[k][j][i] = (int16_t)(100 * k + 10 * j + i);
    /* columns towards the patient's RIGHT (-x), rows posterior, slices
     * superior, 0.5 x 0.7 x 2.5 mm */
    const double lps[4][4] = {{-0.5, 0, 0, 10},
                              {0, 0.7, 0, -20},
                              {0, 0, 2.5, 30},
                              {0, 0, 0, 1}};
    kms_volume vol;
    kms_error err;
    kms_image stack = kt_image(NX, NY * NZ, 1, KMS_DEPTH_S16);
    memcpy(stack.data, raw, sizeof raw);
    ck_assert_int_eq(
        kms_nifti_volume_from_lps("mem", &stack, NZ, lps, &vol, &err), KMS_OK);
    ck_assert_ptr_nonnull(stack.data); /* reoriented: a copy */
    kms_image_free(&stack);
    ck_assert_int_eq(vol.nx, NX);
    ck_assert_int_eq(vol.ny, NY);
    ck_assert_int_eq(vol.nz, NZ);
    ck_assert_int_eq(vol.img.depth, KMS_DEPTH_S16);
    ck_assert(fabs(vol.voxel_mm[0] - 0.5) < 1e-9);
    ck_assert(fabs(vol.voxel_mm[1] - 0.7) < 1e-9);
    ck_assert(fabs(vol.voxel_mm[2] - 2.5) < 1e-9);
    /* canonical x runs towards L: the stored columns reversed */
    for (int z = 0; z < NZ; z++)
        for (int y = 0; y < NY; y++)
            for (int x = 0; x < NX; x++)
                ck_assert_int_eq(
                    ((int16_t *)kms_image_row(&vol.img, z * NY + y))[x],
                    raw[z][y][NX - 1 - x]);

    kms_image mask = kt_image(NX, NY * NZ, 1, KMS_DEPTH_U8);
    ((uint8_t *)kms_image_row(&mask, 0))[0] = 1; /* canonical (0,0,0) */
    ck_assert_int_eq(kms_nifti_write_mask(kt_tmpdir, "m.nii.gz", &vol, &mask,
                                          NULL, &err),
                     KMS_OK);
    char path[1024];
    kt_tmp_path(path, sizeof path, "m.nii.gz");
    nifti_set_debug_level(0);
    nifti_image *nim = nifti_image_read(path, 1);
    ck_assert_ptr_nonnull(nim);
    ck_assert_int_eq(nim->sform_code, NIFTI_XFORM_SCANNER_ANAT);
    ck_assert_int_eq(nim->qform_code, NIFTI_XFORM_SCANNER_ANAT);
    /* sform = the LPS affine with its first two rows negated */
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) {
            double want = r < 2 ? -lps[r][c] : lps[r][c];
            ck_assert_msg(fabs(nim->sto_xyz.m[r][c] - want) < 1e-4,
                          "sform[%d][%d] %g, want %g", r, c,
                          nim->sto_xyz.m[r][c], want);
            ck_assert_msg(fabs(nim->qto_xyz.m[r][c] - want) < 1e-4,
                          "qform[%d][%d] %g, want %g", r, c,
                          nim->qto_xyz.m[r][c], want);
        }
    /* canonical (0,0,0) is stored column NX-1 of row 0, slice 0 */
    const uint8_t *d = nim->data;
    for (int i = 0; i < NX * NY * NZ; i++)
        ck_assert_int_eq(d[i], i == NX - 1);
    nifti_image_free(nim);
    kms_image_free(&mask);
    kms_volume_free(&vol);

    /* columns towards L, rows towards P, slices towards S: already
     * canonical, the pixels move */
    const double canon[4][4] = {
        {0.5, 0, 0, 1}, {0, 0.7, 0, 2}, {0, 0, 2.5, 3}, {0, 0, 0, 1}};
    stack = kt_image(NX, NY * NZ, 1, KMS_DEPTH_S16);
    memcpy(stack.data, raw, sizeof raw);
    void *pixels = stack.data;
    ck_assert_int_eq(
        kms_nifti_volume_from_lps("mem", &stack, NZ, canon, &vol, &err), KMS_OK);
    ck_assert_ptr_null(stack.data);
    ck_assert_ptr_eq(vol.img.data, pixels);
    ck_assert_int_eq(memcmp(vol.img.data, raw, sizeof raw), 0);
    kms_volume_free(&vol);
    /* bad arguments */
    stack = kt_image(NX, NY * NZ + 1, 1, KMS_DEPTH_S16);
    ck_assert_int_eq(
        kms_nifti_volume_from_lps("mem", &stack, NZ, canon, &vol, &err),
        KMS_ERR_USAGE);
    kms_image_free(&stack);
}
END_TEST

/* A folder of DICOM files is one input per series; every file of a series
 * is in the protected set, and the context lists the series' files. */
START_TEST(test_batch_series)
{
    char a[1024], b[1024], c[1024], path[1024];
    kt_make_dir("s");
    kt_make_dir("s/sub");
    copy_to_tmp(PYD "CT_small.dcm", "s/a.dcm", a, sizeof a);
    copy_to_tmp(PYD "CT_small.dcm", "s/sub/b", b, sizeof b); /* no .dcm */
    copy_to_tmp(PYD "MR_small.dcm", "s/c", c, sizeof c);
    kt_touch("s/notes.txt", "not an image");
    static const char text[] =
        "[pipeline]\n"
        "input = s\n"
        "output = out\n"
        "stages = read, reshape, kmeans, recolor, write\n"
        "[write]\n"
        "products = recolor\n";
    kms_pipeline pl;
    kms_error err;
    ck_assert_int_eq(kt_build_text(text, NULL, &pl, &err, path, sizeof path),
                     KMS_OK);
    kms_batch_options opt;
    kms_batch_options_default(&opt);
    opt.recursive = true;
    opt.quiet = true;
    kms_batch b_;
    ck_assert_int_eq(kms_batch_open(&b_, &pl, &opt, &err), KMS_OK);
    ck_assert_uint_eq(b_.inputs.n, 2);
    /* 1CT1_1: a.dcm and sub/b are the same slice twice (an error), 4MR1_1
     * the MR slice; paths are the folder of the first file + the name */
    const kms_input *ct = &b_.inputs.items[0], *mr = &b_.inputs.items[1];
    ck_assert_str_eq(ct->stem, "1CT1_1");
    ck_assert_str_eq(mr->stem, "4MR1_1");
    ck_assert_uint_eq(ct->n_files, 2);
    ck_assert_ptr_nonnull(ct->error);
    ck_assert_ptr_null(mr->error);
    char want[1200];
    snprintf(want, sizeof want, "%s/s/4MR1_1", kt_tmpdir);
    ck_assert_str_eq(mr->path, want);
    ck_assert(kms_file_set_contains(&b_.protect, a));
    ck_assert(kms_file_set_contains(&b_.protect, b));
    ck_assert(kms_file_set_contains(&b_.protect, c));
    kms_context ctx;
    kms_batch_context(&b_, &pl, 1, &ctx);
    ck_assert_uint_eq(ctx.n_input_files, 1);
    ck_assert_str_eq(ctx.input_files[0], c);
    kms_context_clear(&ctx);
    kms_batch_close(&b_);
    kms_pipeline_free(&pl);
}
END_TEST

/* ---- Limits -------------------------------------------------------------- */

static void expect_error(const char *path, const char *words)
{
    kms_dicom_volume v;
    kms_error err;
    kms_error_clear(&err);
    ck_assert_msg(kms_dicom_read(&path, 1, 1, 0, &v, &err) != KMS_OK,
                  "%s: read without error", path);
    ck_assert_str_eq(err.file, path);
    ck_assert_msg(strstr(err.message, words), "%s: %s", path, err.message);
    ck_assert_ptr_null(v.img.data);
}

START_TEST(test_errors)
{
    char p[1024];
    expect_error(PYD "rtdose.dcm", "multi-frame");
    expect_error(PYD "SC_rgb_small_odd.dcm", "colour");
    expect_error(PYD "rtstruct.dcm", "RTSTRUCT, not an image");
    kt_write_tmp("bad.dcm", "not DICOM at all", p, sizeof p);
    expect_error(p, "not a DICOM file");
    expect_error("/nonexistent.dcm", "not a DICOM file");
    /* a file cut in its pixel data */
    size_t n;
    void *buf = kt_read_file(PYD "CT_small.dcm", &n);
    kt_tmp_path(p, sizeof p, "cut.dcm");
    kt_write_bytes(p, buf, n - 5000);
    free(buf);
    expect_error(p, "truncated");
    kms_dicom_volume v;
    kms_error err;
    ck_assert_int_eq(kms_dicom_read(NULL, 0, 1, 0, &v, &err), KMS_ERR_USAGE);
}
END_TEST

/* The walk finds the pixel data where pydicom says it is, in every
 * transfer syntax GDCM reads here. */
START_TEST(test_walk_layout)
{
    kms_dicom_layout l;
    ck_assert_int_eq(kms_dicom_walk(PYD "CT_small.dcm", NULL, &l), KMS_DICOM_WALK_OK);
    ck_assert(l.has_pixels && !l.encapsulated);
    ck_assert_uint_eq(l.pixel_length, 128 * 128 * 2);
    /* (two trailing elements follow the pixel data) */
    ck_assert_uint_eq(l.pixel_offset, 39206 - 138 - 128 * 128 * 2);
    ck_assert_str_eq(l.transfer_syntax, "1.2.840.10008.1.2.1");
    static const char *const ok[] = {
        PYD "MR_small.dcm", PYD "MR_small_implicit.dcm",
        PYD "MR_small_bigendian.dcm", PYD "MR_small_RLE.dcm",
        PYD "JPEG2000.dcm", PYD "rtstruct.dcm", PYD "test-SR.dcm",
        PYD "rtdose.dcm", PYD "SC_rgb_small_odd.dcm"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        ck_assert_msg(kms_dicom_walk(ok[i], NULL, &l) == KMS_DICOM_WALK_OK,
                      "%s: at %llu: %s", ok[i], (unsigned long long)l.bad_at,
                      l.why);
    ck_assert_int_eq(kms_dicom_walk(PYD "MR_small_implicit.dcm", NULL, &l),
                     KMS_DICOM_WALK_OK);
    ck_assert_uint_eq(l.pixel_length, 64 * 64 * 2);
    ck_assert_int_eq(kms_dicom_walk(PYD "MR_small_RLE.dcm", NULL, &l),
                     KMS_DICOM_WALK_OK);
    ck_assert(l.has_pixels && l.encapsulated);
    ck_assert_int_eq(kms_dicom_walk("/nonexistent.dcm", NULL, &l), KMS_DICOM_WALK_IO);
}
END_TEST

/* A file cut anywhere is an error naming it, never a crash, never ok;
 * also as a slice beside good ones: its own error, and the series'. */
START_TEST(test_cut_everywhere)
{
    size_t n;
    unsigned char *buf = kt_read_file(PYD "CT_small.dcm", &n);
    char p[1024];
    kt_tmp_path(p, sizeof p, "cut.dcm");
    for (size_t at = 0; at < n; at += at < 2048 ? 7 : 997) {
        kt_write_bytes(p, buf, at);
        kms_dicom_volume v;
        kms_error err;
        kms_error_clear(&err);
        const char *one = p;
        ck_assert_msg(kms_dicom_read(&one, 1, 1, 0, &v, &err) != KMS_OK,
                      "cut at %zu read as ok", at);
        ck_assert_str_eq(err.file, p);
    }
    /* cut by 1 byte: inside the pixel data */
    kt_write_bytes(p, buf, n - 1);
    expect_error(p, "truncated");

    /* a damaged slice beside a good one in a folder */
    char a[1024], bad[1024];
    kt_make_dir("ser");
    copy_to_tmp(PYD "CT_small.dcm", "ser/a.dcm", a, sizeof a);
    kt_tmp_path(bad, sizeof bad, "ser/b.dcm");
    kt_write_bytes(bad, buf, 600);
    free(buf);
    const char *paths[] = {a, bad};
    kms_dicom_groups g;
    kms_error err;
    ck_assert_int_eq(kms_dicom_group(paths, 2, &g, &err), KMS_OK);
    ck_assert_uint_eq(g.n_unreadable, 1);
    ck_assert_str_eq(g.unreadable[0].path, bad);
    ck_assert_msg(strstr(g.unreadable[0].reason, "corrupt or truncated DICOM "
                                                 "header at byte "),
                  "%s", g.unreadable[0].reason);
    ck_assert_uint_eq(g.n_series, 1);
    ck_assert_ptr_nonnull(g.series[0].error);
    ck_assert_msg(strstr(g.series[0].error->message,
                         "slice b.dcm of this series cannot be read"),
                  "%s", g.series[0].error->message);
    kms_dicom_groups_free(&g);
}
END_TEST

static Suite *dicom_suite(void)
{
    Suite *s = suite_create("dicom");
    TCase *core = tcase_create("Core");
    kt_add_tmp_fixture(core, "check_dicom");
    tcase_add_test(core, test_is_file);
    tcase_add_test(core, test_read_ct_small);
    tcase_add_test(core, test_codecs_lossless);
    tcase_add_test(core, test_codecs_jpeg2000);
    tcase_add_test(core, test_group);
    tcase_add_test(core, test_orient_codes);
    tcase_add_test(core, test_volume_from_lps);
    tcase_add_test(core, test_batch_series);
    suite_add_tcase(s, core);
    TCase *limits = tcase_create("Limits");
    kt_add_tmp_fixture(limits, "check_dicom");
    tcase_add_test(limits, test_errors);
    tcase_add_test(limits, test_walk_layout);
    tcase_add_test(limits, test_cut_everywhere);
    suite_add_tcase(s, limits);
    return s;
}

int main(void)
{
    return kt_run_suite(dicom_suite());
}
