/* Check suite for the dihedral transforms (pipeline/orient.c): known small
 * matrices for every code, round trips for all eight codes at every depth
 * and channel count, composition, and bad arguments. */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "error.h"
#include "image.h"
#include "orient.h"
#include "test_util.h"

/* A w x h U8 image with pixel (x, y) = 10 * y + x + 1. */
static kms_image numbered(int w, int h)
{
    kms_image a = {0};
    kms_error err;
    ck_assert_int_eq(kms_image_alloc(&a, w, h, 1, KMS_DEPTH_U8, &err), KMS_OK);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            ((uint8_t *)kms_image_row(&a, y))[x] = (uint8_t)(10 * y + x + 1);
    return a;
}

static void assert_u8(const kms_image *img, int w, int h, const uint8_t *want)
{
    ck_assert_int_eq(img->width, w);
    ck_assert_int_eq(img->height, h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            ck_assert_msg(((const uint8_t *)kms_image_row(img, y))[x] ==
                              want[y * w + x],
                          "pixel (%d, %d): %d, want %d", x, y,
                          ((const uint8_t *)kms_image_row(img, y))[x],
                          want[y * w + x]);
}

/* Distinct-looking bytes in every pixel, so a misplaced one shows. */
static kms_image patterned(int w, int h, int channels, kms_depth depth)
{
    kms_image a = kt_image(w, h, channels, depth);
    size_t row = (size_t)w * (size_t)channels * kms_depth_size(depth);
    for (int y = 0; y < h; y++) {
        uint8_t *r = kms_image_row(&a, y);
        for (size_t i = 0; i < row; i++)
            r[i] = (uint8_t)(31 * y + 7 * i + 3);
    }
    return a;
}

static bool same_pixels(const kms_image *a, const kms_image *b)
{
    if (a->width != b->width || a->height != b->height ||
        a->channels != b->channels || a->depth != b->depth)
        return false;
    size_t row = (size_t)a->width * (size_t)a->channels *
                 kms_depth_size(a->depth);
    for (int y = 0; y < a->height; y++)
        if (memcmp(kms_image_row(a, y), kms_image_row(b, y), row) != 0)
            return false;
    return true;
}

/* The 3 x 2 image
 *    1  2  3
 *   11 12 13
 * under each code, as the convention says: transpose, flip x, flip y. */
static const struct {
    int w, h;
    uint8_t px[6];
} expected[8] = {
    {3, 2, {1, 2, 3, 11, 12, 13}},  /* 0: as is */
    {3, 2, {3, 2, 1, 13, 12, 11}},  /* 1: columns flipped */
    {3, 2, {11, 12, 13, 1, 2, 3}},  /* 2: rows flipped */
    {3, 2, {13, 12, 11, 3, 2, 1}},  /* 3: 180 degrees */
    {2, 3, {1, 11, 2, 12, 3, 13}},  /* 4: transposed */
    {2, 3, {11, 1, 12, 2, 13, 3}},  /* 5: transposed, columns flipped (CW) */
    {2, 3, {3, 13, 2, 12, 1, 11}},  /* 6: transposed, rows flipped (CCW) */
    {2, 3, {13, 3, 12, 2, 11, 1}},  /* 7: anti-transposed */
};

START_TEST(test_known_matrices)
{
    kms_image a = numbered(3, 2), b = {0};
    kms_error err;
    ck_assert_int_eq(kms_orient_apply(&a, &b, _i, &err), KMS_OK);
    assert_u8(&b, expected[_i].w, expected[_i].h, expected[_i].px);
    ck_assert_int_eq(kms_orient_transposes(_i), b.width == 2);
    kms_image_free(&a);
    kms_image_free(&b);
}
END_TEST

START_TEST(test_rotation_names)
{
    kms_image a = numbered(3, 2), b = {0};
    kms_error err;
    /* a quarter turn clockwise: the left column becomes the top row */
    ck_assert_int_eq(kms_orient_apply(&a, &b, KMS_ORIENT_ROT90_CW, &err), KMS_OK);
    assert_u8(&b, 2, 3, (const uint8_t[]){11, 1, 12, 2, 13, 3});
    ck_assert_int_eq(kms_orient_apply(&a, &b, KMS_ORIENT_ROT90_CCW, &err), KMS_OK);
    assert_u8(&b, 2, 3, (const uint8_t[]){3, 13, 2, 12, 1, 11});
    ck_assert_int_eq(kms_orient_inverse(KMS_ORIENT_ROT90_CW), KMS_ORIENT_ROT90_CCW);
    ck_assert_int_eq(kms_orient_inverse(KMS_ORIENT_ROT180), KMS_ORIENT_ROT180);
    kms_image_free(&a);
    kms_image_free(&b);
}
END_TEST

/* Every depth and channel count, an odd non-square size with a padded
 * stride (a view into a larger image). */
static const struct {
    kms_depth depth;
    int channels;
} kinds[] = {
    {KMS_DEPTH_U8, 1},  {KMS_DEPTH_U8, 3},  {KMS_DEPTH_U8, 4},
    {KMS_DEPTH_S16, 1}, {KMS_DEPTH_U16, 1}, {KMS_DEPTH_U16, 3},
    {KMS_DEPTH_S32, 1}, {KMS_DEPTH_F32, 1}, {KMS_DEPTH_F32, 3},
};

START_TEST(test_round_trip_all_codes)
{
    kms_error err;
    kms_image big = patterned(23, 17, kinds[_i].channels, kinds[_i].depth);
    kms_image a = kms_image_roi(&big, 2, 1, 19, 13);
    for (int c = 0; c < KMS_ORIENT_CODES; c++) {
        kms_image b = {0}, back = {0};
        ck_assert_int_eq(kms_orient_apply(&a, &b, c, &err), KMS_OK);
        ck_assert_int_eq(b.width, kms_orient_transposes(c) ? 13 : 19);
        ck_assert_int_eq(b.channels, a.channels);
        ck_assert_int_eq(b.depth, a.depth);
        ck_assert_int_eq(kms_orient_apply(&b, &back, kms_orient_inverse(c),
                                          &err), KMS_OK);
        ck_assert_msg(same_pixels(&a, &back), "code %d, kind %d", c, _i);
        /* the inverse's inverse is the code */
        ck_assert_int_eq(kms_orient_inverse(kms_orient_inverse(c)), c);
        kms_image_free(&b);
        kms_image_free(&back);
    }
    kms_image_free(&big);
}
END_TEST

START_TEST(test_compose)
{
    kms_error err;
    kms_image a = patterned(7, 5, 1, KMS_DEPTH_S16);
    for (int c1 = 0; c1 < KMS_ORIENT_CODES; c1++)
        for (int c2 = 0; c2 < KMS_ORIENT_CODES; c2++) {
            kms_image b = {0}, ab = {0}, one = {0};
            ck_assert_int_eq(kms_orient_apply(&a, &b, c1, &err), KMS_OK);
            ck_assert_int_eq(kms_orient_apply(&b, &ab, c2, &err), KMS_OK);
            int c = kms_orient_compose(c1, c2);
            ck_assert_int_eq(kms_orient_apply(&a, &one, c, &err), KMS_OK);
            ck_assert_msg(same_pixels(&ab, &one), "%d then %d != %d", c1, c2, c);
            kms_image_free(&b);
            kms_image_free(&ab);
            kms_image_free(&one);
        }
    for (int c = 0; c < KMS_ORIENT_CODES; c++)
        ck_assert_int_eq(kms_orient_compose(c, kms_orient_inverse(c)), 0);
    kms_image_free(&a);
}
END_TEST

START_TEST(test_one_pixel_and_one_row)
{
    kms_error err;
    kms_image a = numbered(1, 1), row = numbered(4, 1), b = {0};
    for (int c = 0; c < KMS_ORIENT_CODES; c++) {
        ck_assert_int_eq(kms_orient_apply(&a, &b, c, &err), KMS_OK);
        assert_u8(&b, 1, 1, (const uint8_t[]){1});
        ck_assert_int_eq(kms_orient_apply(&row, &b, c, &err), KMS_OK);
        ck_assert_int_eq(b.width * b.height, 4);
    }
    ck_assert_int_eq(kms_orient_apply(&row, &b, KMS_ORIENT_ROT90_CW, &err), KMS_OK);
    assert_u8(&b, 1, 4, (const uint8_t[]){1, 2, 3, 4});
    kms_image_free(&a);
    kms_image_free(&row);
    kms_image_free(&b);
}
END_TEST

START_TEST(test_bad_arguments)
{
    kms_error err;
    kms_image a = numbered(3, 2), b = {0}, empty = {0};
    ck_assert_int_eq(kms_orient_apply(&a, &b, 8, &err), KMS_ERR_USAGE);
    ck_assert_int_eq(kms_orient_apply(&a, &b, -1, &err), KMS_ERR_USAGE);
    ck_assert_int_eq(kms_orient_apply(&empty, &b, 0, &err), KMS_ERR_USAGE);
    ck_assert_int_eq(kms_orient_apply(&a, &a, 1, &err), KMS_ERR_USAGE);
    ck_assert_ptr_null(b.data);
    /* dst's old pixels are freed, not leaked */
    ck_assert_int_eq(kms_orient_apply(&a, &b, 1, &err), KMS_OK);
    ck_assert_int_eq(kms_orient_apply(&a, &b, 4, &err), KMS_OK);
    ck_assert_int_eq(b.width, 2);
    kms_image_free(&a);
    kms_image_free(&b);
}
END_TEST

static Suite *orient_suite(void)
{
    Suite *s = suite_create("orient");
    TCase *core = tcase_create("Core");
    tcase_add_loop_test(core, test_known_matrices, 0, 8);
    tcase_add_test(core, test_rotation_names);
    tcase_add_loop_test(core, test_round_trip_all_codes, 0,
                        (int)(sizeof kinds / sizeof kinds[0]));
    tcase_add_test(core, test_compose);
    suite_add_tcase(s, core);
    TCase *limits = tcase_create("Limits");
    tcase_add_test(limits, test_one_pixel_and_one_row);
    tcase_add_test(limits, test_bad_arguments);
    suite_add_tcase(s, limits);
    return s;
}

int main(void)
{
    return kt_run_suite(orient_suite());
}
