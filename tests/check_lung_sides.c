/* Check suite for lung_mask's helpers on synthetic shapes in the canonical
 * view (patient's right on the image's left): kms_lung_sides (lungs apart,
 * one lung alone, lungs joined at a junction split at the neck, not by a
 * straight line) and kms_lung_pleural_fill (a bite against the ribs is
 * filled, one on the mediastinal side and a long thin dome are not, bone
 * never). */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "context.h"
#include "lung_pathology.h"
#include "lung_sides.h"
#include "mask_ops.h"
#include "test_util.h"

enum { W = 200, H = 160 };

static void disk(kms_image *m, int cx, int cy, int r, uint8_t v)
{
    for (int y = 0; y < m->height; y++) {
        uint8_t *row = kms_image_row(m, y);
        for (int x = 0; x < m->width; x++)
            if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r)
                row[x] = v;
    }
}

static void rect(kms_image *m, int x0, int y0, int x1, int y1, uint8_t v)
{
    for (int y = y0; y < y1; y++)
        memset((uint8_t *)kms_image_row(m, y) + x0, v, (size_t)(x1 - x0));
}

static uint8_t at(const kms_image *m, int x, int y)
{
    return ((const uint8_t *)kms_image_row(m, y))[x];
}

/* sides nonzero exactly where mask is; counts of each value */
static void check_exact(const kms_image *mask, const kms_image *sides,
                        long *right, long *left)
{
    *right = *left = 0;
    for (int y = 0; y < mask->height; y++)
        for (int x = 0; x < mask->width; x++) {
            uint8_t s = at(sides, x, y);
            ck_assert_int_eq(at(mask, x, y) != 0, s != 0);
            ck_assert_int_le(s, 2);
            *right += s == KMS_LUNG_RIGHT;
            *left += s == KMS_LUNG_LEFT;
        }
}

START_TEST(test_two_lungs_apart)
{
    kms_image m = kt_image(W, H, 1, KMS_DEPTH_U8), s = {0};
    kms_error err = {0};
    disk(&m, 60, 80, 35, 255);
    disk(&m, 140, 80, 35, 255);
    disk(&m, 95, 30, 3, 255); /* a small piece just left of the mid-line */
    ck_assert_int_eq(kms_lung_sides(&m, 100, &s, &err), KMS_OK);
    long r, l;
    check_exact(&m, &s, &r, &l);
    ck_assert_int_eq(at(&s, 60, 80), KMS_LUNG_RIGHT);
    ck_assert_int_eq(at(&s, 140, 80), KMS_LUNG_LEFT);
    ck_assert_int_eq(at(&s, 95, 30), KMS_LUNG_RIGHT);
    kms_image_free(&m);
    kms_image_free(&s);
}
END_TEST

START_TEST(test_one_lung_by_position)
{
    kms_image m = kt_image(W, H, 1, KMS_DEPTH_U8), s = {0};
    kms_error err = {0};
    disk(&m, 150, 80, 40, 255); /* only the left lung */
    ck_assert_int_eq(kms_lung_sides(&m, 100, &s, &err), KMS_OK);
    long r, l;
    check_exact(&m, &s, &r, &l);
    ck_assert_int_eq(r, 0);
    ck_assert_int_gt(l, 0);
    kms_image_free(&s);
    memset(m.data, 0, m.stride * (size_t)H);
    disk(&m, 55, 80, 40, 255); /* only the right lung */
    ck_assert_int_eq(kms_lung_sides(&m, 100, &s, &err), KMS_OK);
    check_exact(&m, &s, &r, &l);
    ck_assert_int_eq(l, 0);
    ck_assert_int_gt(r, 0);
    kms_image_free(&m);
    kms_image_free(&s);
}
END_TEST

/* Two lungs joined by a slanted bridge (an anterior junction seen
 * obliquely): each lung whole to its side, the cut across the bridge. A
 * straight cut at the mid-line would cross the right lung, which reaches
 * past it. */
START_TEST(test_junction_split_at_neck)
{
    kms_image m = kt_image(W, H, 1, KMS_DEPTH_U8), s = {0};
    kms_error err = {0};
    disk(&m, 75, 90, 40, 255);  /* right lung, reaching x = 115 */
    disk(&m, 160, 70, 30, 255); /* left lung */
    for (int i = 0; i <= 30; i++) /* a 6-px bridge from (110, 75) on */
        rect(&m, 110 + i, 75 - i / 3 - 3, 113 + i, 75 - i / 3 + 3, 255);
    ck_assert_int_eq(kms_lung_sides(&m, 100, &s, &err), KMS_OK);
    long r, l;
    check_exact(&m, &s, &r, &l);
    /* every pixel of each disk on its side (the right one crosses x = 100) */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            if ((x - 75) * (x - 75) + (y - 90) * (y - 90) <= 40 * 40)
                ck_assert_int_eq(at(&s, x, y), KMS_LUNG_RIGHT);
            if ((x - 160) * (x - 160) + (y - 70) * (y - 70) <= 30 * 30)
                ck_assert_int_eq(at(&s, x, y), KMS_LUNG_LEFT);
        }
    kms_image_free(&m);
    kms_image_free(&s);
}
END_TEST

/* Lungs touching over a wide front at the mid-line with no neck at all:
 * failing better, cut at the mid-line (both halves large). */
START_TEST(test_no_neck_cut_at_midline)
{
    kms_image m = kt_image(W, H, 1, KMS_DEPTH_U8), s = {0};
    kms_error err = {0};
    rect(&m, 40, 40, 160, 120, 255);
    ck_assert_int_eq(kms_lung_sides(&m, 100, &s, &err), KMS_OK);
    long r, l;
    check_exact(&m, &s, &r, &l);
    ck_assert_int_eq(r, l);
    ck_assert_int_eq(at(&s, 99, 80), KMS_LUNG_RIGHT);
    ck_assert_int_eq(at(&s, 100, 80), KMS_LUNG_LEFT);
    kms_image_free(&m);
    kms_image_free(&s);
}
END_TEST

/* A lung (disk) with bites of soft tissue: lateral (rib side) filled,
 * medial not; bone in the lateral bite stays out. */
START_TEST(test_pleural_fill_rib_side)
{
    kms_image m = kt_image(W, H, 1, KMS_DEPTH_U8), s = {0};
    kms_image hu = kt_image(W, H, 1, KMS_DEPTH_S16);
    kms_error err = {0};
    for (int y = 0; y < H; y++) {
        int16_t *r = kms_image_row(&hu, y);
        for (int x = 0; x < W; x++)
            r[x] = 40;
    }
    disk(&m, 60, 80, 45, 255);   /* the right lung */
    disk(&m, 15, 80, 14, 0);     /* lateral bite: consolidation */
    disk(&m, 105, 80, 14, 0);    /* medial bite: mediastinum */
    disk(&m, 150, 80, 30, 255);  /* the left lung, untouched */
    ((int16_t *)kms_image_row(&hu, 80))[20] = 700; /* a rib's pixel */
    ck_assert_int_eq(kms_lung_sides(&m, 100, &s, &err), KMS_OK);
    kms_runs outside = {0};
    kms_image none = kt_image(W, H, 1, KMS_DEPTH_U8);
    ck_assert_int_eq(kms_runs_find(&outside, none.data, (ptrdiff_t)none.stride,
                                   W, H, 0, &err),
                     KMS_OK);
    kms_pleural_fill pf = {4, -45, 110, 200};
    long added = 0;
    ck_assert_int_eq(
        kms_lung_pleural_fill(&pf, &hu, &outside, &m, &s, &added, &err),
        KMS_OK);
    ck_assert_int_gt(added, 0);
    long r, l;
    check_exact(&m, &s, &r, &l);
    ck_assert_int_eq(at(&s, 20, 70), KMS_LUNG_RIGHT); /* lateral bite in */
    ck_assert_int_eq(at(&s, 20, 80), 0);              /* bone out */
    ck_assert_int_eq(at(&s, 100, 80), 0);             /* medial bite out */
    kms_runs_free(&outside);
    kms_image_free(&none);
    kms_image_free(&hu);
    kms_image_free(&m);
    kms_image_free(&s);
}
END_TEST

static Suite *lung_sides_suite(void)
{
    Suite *s = suite_create("lung_sides");
    TCase *core = tcase_create("Core");
    tcase_add_test(core, test_two_lungs_apart);
    tcase_add_test(core, test_one_lung_by_position);
    tcase_add_test(core, test_junction_split_at_neck);
    tcase_add_test(core, test_pleural_fill_rib_side);
    suite_add_tcase(s, core);
    TCase *limits = tcase_create("Limits");
    tcase_add_test(limits, test_no_neck_cut_at_midline);
    suite_add_tcase(s, limits);
    return s;
}

int main(void)
{
    return kt_run_suite(lung_sides_suite());
}
