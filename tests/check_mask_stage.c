/* Check suite for the mask stage (stages/mask.c) through pipelines: config
 * text -> read, reshape, kmeans, mask -> ctx->mask, on small drawn images
 * whose grey levels k-means separates exactly, so every key has a known
 * answer; and the errors bad values give. */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "opencv_c.h"
#include "pipeline.h"
#include "test_util.h"

/* ---- scenes ----------------------------------------------------------------
 * Drawn as text: '.' grey 0, 'o' grey 128, '#' grey 255. 3-means on three
 * greys finds them exactly: rank 0 = '.', 1 = 'o', 2 = '#'. */

#define SCENE_MAX 64

typedef struct scene {
    const char *rows[SCENE_MAX];
} scene;

static int scene_h(const scene *s)
{
    int h = 0;
    while (h < SCENE_MAX && s->rows[h])
        h++;
    return h;
}

static uint8_t grey_of(char c)
{
    return c == '#' ? 255 : c == 'o' ? 128 : 0;
}

/* The scene as a grey PNG in kt_tmpdir; its path into path. */
static void write_scene(const scene *s, char *path, size_t len)
{
    int h = scene_h(s), w = (int)strlen(s->rows[0]);
    kms_image img = kt_image(w, h, 1, KMS_DEPTH_U8);
    for (int y = 0; y < h; y++) {
        ck_assert_int_eq((int)strlen(s->rows[y]), w);
        for (int x = 0; x < w; x++)
            ((uint8_t *)kms_image_row(&img, y))[x] = grey_of(s->rows[y][x]);
    }
    kt_write_image("scene.png", &img, path, len);
    kms_image_free(&img);
}

/* A 0/255 mask where a scene's character is in `set`. */
static kms_image mask_where(const scene *s, const char *set)
{
    int h = scene_h(s), w = (int)strlen(s->rows[0]);
    kms_image m = kt_image(w, h, 1, KMS_DEPTH_U8);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (strchr(set, s->rows[y][x]))
                ((uint8_t *)kms_image_row(&m, y))[x] = 255;
    return m;
}

static void assert_mask(const kms_image *got, const kms_image *want,
                        const char *what)
{
    ck_assert_ptr_nonnull(got->data);
    ck_assert_int_eq(got->width, want->width);
    ck_assert_int_eq(got->height, want->height);
    ck_assert_int_eq(got->channels, 1);
    ck_assert_int_eq(got->depth, KMS_DEPTH_U8);
    for (int y = 0; y < got->height; y++) {
        const uint8_t *g = kms_image_row(got, y), *w = kms_image_row(want, y);
        for (int x = 0; x < got->width; x++)
            ck_assert_msg(g[x] == w[x], "%s: (%d, %d) is %d, expected %d", what,
                          x, y, g[x], w[x]);
    }
}

/* The pipeline up to the mask, with these lines in [mask] and k. */
static void config(char *buf, size_t len, int k, const char *mask_lines,
                   const char *reshape_lines)
{
    snprintf(buf, len,
             "[pipeline]\nstages = read, reshape, kmeans, mask\n"
             "[read]\nmode = grayscale\n"
             "[reshape]\n%s\n"
             "[kmeans]\nk = %d\n"
             "[mask]\n%s\n",
             reshape_lines, k, mask_lines);
}

/* The number of grey levels a scene has. */
static int scene_levels(const scene *s)
{
    bool seen[3] = {false, false, false};
    for (int y = 0; y < scene_h(s); y++)
        for (const char *c = s->rows[y]; *c; c++)
            seen[grey_of(*c) / 127] = true;
    return seen[0] + seen[1] + seen[2];
}

/* Runs [mask] mask_lines on the scene with k clusters (0: one per grey
 * level, so k-means finds the levels exactly); ctx->mask out. */
static void run_mask(const scene *s, int k, const char *mask_lines,
                     kms_context *ctx)
{
    k = k ? k : scene_levels(s);
    char text[2048], png[4096];
    kms_error err;
    write_scene(s, png, sizeof png);
    config(text, sizeof text, k, mask_lines, "");
    kms_status st = kt_run_text(text, png, ctx, &err);
    ck_assert_msg(st == KMS_OK, "[mask] %s: %s: %s", mask_lines, err.key,
                  err.message);
    ck_assert_int_eq(ctx->k, k);
}

/* Runs and compares with the scene's characters in `want`. */
static void expect_mask(const scene *s, int k, const char *mask_lines,
                        const char *want)
{
    kms_context ctx;
    run_mask(s, k, mask_lines, &ctx);
    kms_image m = mask_where(s, want);
    assert_mask(&ctx.mask, &m, mask_lines);
    kms_image_free(&m);
    kms_context_clear(&ctx);
}

/* Runs on `s` and compares with the '#' pixels of `want` (a scene of the
 * same size). */
static void expect_scene(const scene *s, int k, const char *mask_lines,
                         const scene *want)
{
    kms_context ctx;
    run_mask(s, k, mask_lines, &ctx);
    kms_image m = mask_where(want, "#");
    assert_mask(&ctx.mask, &m, mask_lines);
    kms_image_free(&m);
    kms_context_clear(&ctx);
}

/* three levels, blobs on the border and inside */
static const scene three = {{
    "##......oooo....",
    "##..##..oooo..##",
    "....##..........",
    "..........ooo...",
    "oo..####..o.o...",
    "oo..####..ooo..#",
}};

/* ---- clusters ------------------------------------------------------------- */

START_TEST(test_clusters_by_rank)
{
    expect_mask(&three, 0, "", ".");                  /* default: darkest */
    expect_mask(&three, 0, "clusters = darkest", ".");
    expect_mask(&three, 0, "clusters = brightest", "#");
    expect_mask(&three, 0, "clusters = 1", "o");
    expect_mask(&three, 0, "clusters = 0, 2", ".#");
    expect_mask(&three, 0, "clusters = brightest,darkest", ".#");
    expect_mask(&three, 0, "clusters = 1 2", "o#");
    /* repeating a rank changes nothing */
    expect_mask(&three, 0, "clusters = 2, brightest, 2", "#");
}
END_TEST

START_TEST(test_brightest_follows_k)
{
    /* brightest is rank k - 1 of each run: with k = 2, 'o' and '#' share
     * the bright cluster */
    expect_mask(&three, 2, "clusters = brightest", "o#");
    expect_mask(&three, 2, "clusters = 1", "o#");
    expect_mask(&three, 2, "clusters = darkest", ".");
}
END_TEST

START_TEST(test_rank_beyond_k_is_a_config_error)
{
    /* a rank no cluster can have would select nothing: the config is
     * refused before any input, naming the key */
    static const char *const lists[] = {"clusters = 3", "clusters = 63",
                                        "clusters = 63, 1"};
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
        char text[2048], path[4096];
        kms_pipeline pl;
        kms_error err;
        config(text, sizeof text, 3, lists[i], "");
        ck_assert_int_eq(kt_build_text(text, NULL, &pl, &err, path, sizeof path),
                         KMS_ERR_CONFIG);
        ck_assert_str_eq(err.key, "mask.clusters");
        ck_assert_msg(strstr(err.message, "kmeans.k = 3 gives ranks 0..2"),
                      "%s", err.message);
    }
}
END_TEST

START_TEST(test_mask_at_input_size)
{
    /* k-means on a half-size grid: the mask comes back to the input's size
     * by nearest neighbour; blocks on even coordinates survive exactly */
    static const scene even = {{
        "##....oo",
        "##....oo",
        "..##....",
        "..##....",
    }};
    char text[2048], png[4096];
    kms_error err;
    kms_context ctx;
    write_scene(&even, png, sizeof png);
    config(text, sizeof text, 3, "clusters = brightest",
           "width = 4\nheight = 2\ninterpolation = nearest");
    ck_assert_int_eq(kt_run_text(text, png, &ctx, &err), KMS_OK);
    ck_assert_int_eq(ctx.sample_width, 4);
    ck_assert_int_eq(ctx.sample_height, 2);
    kms_image want = mask_where(&even, "#");
    assert_mask(&ctx.mask, &want, "resized");
    kms_image_free(&want);
    kms_context_clear(&ctx);
}
END_TEST

/* ---- morphology ------------------------------------------------------------ */

/* The expected mask for a morphology key: OpenCV's morphologyEx with the
 * elliptic element of 2r + 1 (mask_ops is checked against it). */
static void expect_morph(const scene *s, const char *set, const char *lines,
                         int op, int r)
{
    kms_context ctx;
    run_mask(s, 0, lines, &ctx);
    kms_image base = mask_where(s, set), want = {0};
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_cv_morphology(&base, &want, op, KMS_CV_MORPH_ELLIPSE,
                                       2 * r + 1, 1, &err),
                     KMS_OK);
    assert_mask(&ctx.mask, &want, lines);
    kms_image_free(&base);
    kms_image_free(&want);
    kms_context_clear(&ctx);
}

static const scene specks = {{
    "................",
    ".#....#####.....",
    "......#####..#..",
    "......#####.....",
    "..#...#####.....",
    "......#####...#.",
    "................",
}};

START_TEST(test_open_radius)
{
    /* opening by the 3x3 ellipse (a cross) drops the single-pixel specks
     * and the block's corners */
    static const scene want = {{
        "................",
        ".......###......",
        "......#####.....",
        "......#####.....",
        "......#####.....",
        ".......###......",
        "................",
    }};
    expect_scene(&specks, 0, "clusters = brightest\nopen_radius = 1", &want);
    expect_morph(&specks, "#", "clusters = brightest\nopen_radius = 2",
                 KMS_CV_MORPH_OPEN, 2);
    /* radius 0 is no opening */
    expect_mask(&specks, 0, "clusters = brightest\nopen_radius = 0", "#");
}
END_TEST

START_TEST(test_close_radius)
{
    /* closing by the cross bridges a one-pixel gap where it is 3 high */
    static const scene gap = {{
        "..........",
        "..###.###.",
        "..###.###.",
        "..###.###.",
        "..........",
    }};
    /* and, as OpenCV does, keeps what the dilation spilled onto the edge
     * rows and column where it is 3 wide: the erosion takes the outside as
     * set */
    static const scene want = {{
        "...#...#..",
        "..###.###.",
        "..########",
        "..###.###.",
        "...#...#..",
    }};
    expect_scene(&gap, 0, "clusters = brightest\nclose_radius = 1", &want);
    expect_morph(&gap, "#", "clusters = brightest\nclose_radius = 3",
                 KMS_CV_MORPH_CLOSE, 3);
    expect_mask(&gap, 0, "clusters = brightest\nclose_radius = 0", "#");
}
END_TEST

/* ---- components ----------------------------------------------------------- */

/* components of 2 (a diagonal pair), 4, 6 and 9 pixels (8-connected), the
 * 6 on the border */
static const scene sizes = {{
    "..........#",
    ".##.......#",
    ".##...#...#",
    ".......#..#",
    "...###....#",
    "...###....#",
    "...###.....",
    "...........",
}};

START_TEST(test_min_area)
{
    static const scene want4 = {{
        "..........#",
        ".##.......#",
        ".##.......#",
        "..........#",
        "...###....#",
        "...###....#",
        "...###.....",
        "...........",
    }};
    expect_scene(&sizes, 0, "clusters = brightest\nmin_area = 4", &want4);
    /* the diagonal pair is one 8-connected component of 2 */
    expect_mask(&sizes, 0, "clusters = brightest\nmin_area = 2", "#");
    static const scene want7 = {{
        "...........",
        "...........",
        "...........",
        "...........",
        "...###.....",
        "...###.....",
        "...###.....",
        "...........",
    }};
    expect_scene(&sizes, 0, "clusters = brightest\nmin_area = 7", &want7);
    expect_mask(&sizes, 0, "clusters = brightest\nmin_area = 10", "");
}
END_TEST

START_TEST(test_drop_border_and_keep)
{
    static const scene no_border = {{
        "...........",
        ".##........",
        ".##...#....",
        ".......#...",
        "...###.....",
        "...###.....",
        "...###.....",
        "...........",
    }};
    expect_scene(&sizes, 0, "clusters = brightest\ndrop_border = true",
                 &no_border);
    expect_mask(&sizes, 0, "clusters = brightest\ndrop_border = false", "#");
    /* keep the largest: the 9 block; then the 9 and the 6 on the border */
    static const scene one = {{
        "...........",
        "...........",
        "...........",
        "...........",
        "...###.....",
        "...###.....",
        "...###.....",
        "...........",
    }};
    expect_scene(&sizes, 0, "clusters = brightest\nkeep = 1", &one);
    static const scene two = {{
        "..........#",
        "..........#",
        "..........#",
        "..........#",
        "...###....#",
        "...###....#",
        "...###.....",
        "...........",
    }};
    expect_scene(&sizes, 0, "clusters = brightest\nkeep = 2", &two);
    /* the filters together: not on the border, then the two largest */
    static const scene both = {{
        "...........",
        ".##........",
        ".##........",
        "...........",
        "...###.....",
        "...###.....",
        "...###.....",
        "...........",
    }};
    expect_scene(&sizes, 0,
                 "clusters = brightest\ndrop_border = yes\nkeep = 2", &both);
    expect_mask(&sizes, 0, "clusters = brightest\nkeep = 0", "#");
    expect_mask(&sizes, 0, "clusters = brightest\nkeep = 100", "#");
}
END_TEST

/* ---- holes ---------------------------------------------------------------- */

static const scene rings = {{
    "..........",
    ".#####....",
    ".#o.o#..##",
    ".#.o.#..#.",
    ".#####..#.",
    "..........",
}};

START_TEST(test_fill_holes)
{
    static const scene filled = {{
        "..........",
        ".#####....",
        ".#####..##",
        ".#####..#.",
        ".#####..#.",
        "..........",
    }};
    expect_scene(&rings, 0, "clusters = brightest\nfill_holes = true", &filled);
    expect_mask(&rings, 0, "clusters = brightest\nfill_holes = off", "#");
}
END_TEST

START_TEST(test_filters_before_fill)
{
    /* components are filtered before holes are filled: the ring's 14
     * pixels fall under min_area 15, though filled it would have 20 */
    expect_mask(&rings, 0,
                "clusters = brightest\nmin_area = 15\nfill_holes = true", "");
    static const scene ring_only = {{
        "..........",
        ".#####....",
        ".#####....",
        ".#####....",
        ".#####....",
        "..........",
    }};
    expect_scene(&rings, 0,
                 "clusters = brightest\nmin_area = 14\nfill_holes = true",
                 &ring_only);
}
END_TEST

START_TEST(test_open_before_close)
{
    /* open, then close: a speck beside a block is gone before the closing
     * could join it to the block */
    static const scene s = {{
        "...........",
        ".#####.#...",
        ".#####.....",
        ".#####.....",
        ".#####.....",
        ".#####.....",
        "...........",
    }};
    kms_context ctx;
    run_mask(&s, 0, "clusters = brightest\nopen_radius = 1\nclose_radius = 1",
             &ctx);
    kms_image base = mask_where(&s, "#"), want = {0};
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_cv_morphology(&base, &want, KMS_CV_MORPH_OPEN,
                                       KMS_CV_MORPH_ELLIPSE, 3, 1, &err),
                     KMS_OK);
    ck_assert_int_eq(kms_cv_morphology(&want, &want, KMS_CV_MORPH_CLOSE,
                                       KMS_CV_MORPH_ELLIPSE, 3, 1, &err),
                     KMS_OK);
    assert_mask(&ctx.mask, &want, "open then close");
    ck_assert_int_eq(((uint8_t *)kms_image_row(&ctx.mask, 1))[7], 0);
    kms_image_free(&base);
    kms_image_free(&want);
    kms_context_clear(&ctx);
}
END_TEST

/* ---- errors --------------------------------------------------------------- */

/* Builds the pipeline with these [mask] lines: it must fail with a config
 * error on key, its message containing each of the words. */
static void expect_build_error(const char *stages, const char *mask_lines,
                               const char *key, const char *word1,
                               const char *word2)
{
    char text[2048], path[4096];
    snprintf(text, sizeof text,
             "[pipeline]\nstages = %s\n[read]\n[reshape]\n[kmeans]\n"
             "[mask]\n%s\n",
             stages, mask_lines);
    kms_pipeline pl;
    kms_error err;
    kms_status st = kt_build_text(text, NULL, &pl, &err, path, sizeof path);
    ck_assert_msg(st == KMS_ERR_CONFIG, "[mask] %s: built (%d)", mask_lines, st);
    ck_assert_str_eq(err.key, key);
    ck_assert_str_eq(err.file, path);
    ck_assert_int_gt(err.line, 0);
    ck_assert_msg(strstr(err.message, word1), "[mask] %s: %s", mask_lines,
                  err.message);
    ck_assert_msg(!word2 || strstr(err.message, word2), "[mask] %s: %s",
                  mask_lines, err.message);
}

#define FULL "read, reshape, kmeans, mask"

START_TEST(test_bad_clusters)
{
    expect_build_error(FULL, "clusters = lightest", "mask.clusters",
                       "'lightest'", "darkest");
    expect_build_error(FULL, "clusters = 64", "mask.clusters", "'64'", "0..63");
    expect_build_error(FULL, "clusters = -1", "mask.clusters", "'-1'", NULL);
    expect_build_error(FULL, "clusters = 1.5", "mask.clusters", "'1.5'", NULL);
    expect_build_error(FULL, "clusters = 0, 2x", "mask.clusters", "'2x'", NULL);
    expect_build_error(FULL, "clusters = ,", "mask.clusters",
                       "no clusters listed", NULL);
}
END_TEST

START_TEST(test_bad_numbers)
{
    expect_build_error(FULL, "open_radius = 51", "mask.open_radius", "51", NULL);
    expect_build_error(FULL, "open_radius = -1", "mask.open_radius", "-1", NULL);
    expect_build_error(FULL, "close_radius = 2.5", "mask.close_radius", "2.5",
                       NULL);
    expect_build_error(FULL, "min_area = many", "mask.min_area", "many", NULL);
    expect_build_error(FULL, "keep = 100001", "mask.keep", "100001", NULL);
    expect_build_error(FULL, "drop_border = maybe", "mask.drop_border", "maybe",
                       NULL);
    expect_build_error(FULL, "fill_holes = 2", "mask.fill_holes", "2", NULL);
    expect_build_error(FULL, "radius = 2", "mask.radius", "unknown key",
                       "open_radius");
}
END_TEST

START_TEST(test_mask_needs_kmeans)
{
    expect_build_error("read, reshape, mask", "", "pipeline.stages",
                       "mask needs labels", "kmeans");
    expect_build_error("read, mask, reshape, kmeans", "", "pipeline.stages",
                       "mask needs labels", NULL);
}
END_TEST

START_TEST(test_limits_accepted)
{
    /* the ends of each range build */
    char text[2048], path[4096];
    kms_pipeline pl;
    kms_error err;
    config(text, sizeof text, 64,
           "clusters = 63\nopen_radius = 50\nclose_radius = 50\n"
           "min_area = 100000000\nkeep = 100000",
           "");
    ck_assert_int_eq(kt_build_text(text, NULL, &pl, &err, path, sizeof path),
                     KMS_OK);
    kms_pipeline_free(&pl);
}
END_TEST

static Suite *mask_stage_suite(void)
{
    Suite *s = suite_create("mask_stage");
    TCase *keys = tcase_create("Keys");
    kt_add_tmp_fixture(keys, "check_mask_stage");
    tcase_set_timeout(keys, 120);
    tcase_add_test(keys, test_clusters_by_rank);
    tcase_add_test(keys, test_brightest_follows_k);
    tcase_add_test(keys, test_rank_beyond_k_is_a_config_error);
    tcase_add_test(keys, test_mask_at_input_size);
    tcase_add_test(keys, test_open_radius);
    tcase_add_test(keys, test_close_radius);
    tcase_add_test(keys, test_min_area);
    tcase_add_test(keys, test_drop_border_and_keep);
    tcase_add_test(keys, test_fill_holes);
    tcase_add_test(keys, test_filters_before_fill);
    tcase_add_test(keys, test_open_before_close);
    suite_add_tcase(s, keys);
    TCase *errors = tcase_create("Errors");
    kt_add_tmp_fixture(errors, "check_mask_stage");
    tcase_add_test(errors, test_bad_clusters);
    tcase_add_test(errors, test_bad_numbers);
    tcase_add_test(errors, test_mask_needs_kmeans);
    tcase_add_test(errors, test_limits_accepted);
    suite_add_tcase(s, errors);
    return s;
}

int main(void)
{
    return kt_run_suite(mask_stage_suite());
}
