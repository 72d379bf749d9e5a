/* Check suite for the batch runner's reports (pipeline/batch.c): the Dice
 * and IoU summary, the list of failed inputs, stage times, --resume, the
 * input-by-input commands (kms_batch_each); and the limits of building a
 * pipeline (pipeline/pipeline.c) that no other suite reaches. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "batch.h"
#include "pipeline.h"
#include "test_util.h"

/* A grey 8x4 PNG: two 2x2 white blocks on black (8 white pixels). */
static void write_blocks(const char *rel)
{
    char path[4096];
    kms_image img = kt_image(8, 4, 1, KMS_DEPTH_U8);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 8; x++)
            ((uint8_t *)kms_image_row(&img, y))[x] = (x % 4) < 2 ? 255 : 0;
    kt_write_image(rel, &img, path, sizeof path);
    kms_image_free(&img);
}

/* A truth mask of the same size: the left block alone, or both. */
static void write_truth(const char *rel, bool both)
{
    char path[4096];
    kms_image img = kt_image(8, 4, 1, KMS_DEPTH_U8);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < (both ? 8 : 4); x++)
            ((uint8_t *)kms_image_row(&img, y))[x] = (x % 4) < 2 ? 255 : 0;
    kt_write_image(rel, &img, path, sizeof path);
    kms_image_free(&img);
}

static const char cfg_eval[] =
    "[pipeline]\ninput = in\noutput = out\n"
    "stages = read, reshape, kmeans, mask, evaluate, write\n"
    "[read]\nmode = grayscale\n[reshape]\n[kmeans]\nk = 2\n"
    "[mask]\nclusters = brightest\n[evaluate]\ntruth = truth/{stem}.png\n"
    "[write]\nproducts = mask\n";

static void build(const char *text, kms_pipeline *pl)
{
    char path[4096];
    kms_error err;
    kms_status st = kt_build_text(text, NULL, pl, &err, path, sizeof path);
    ck_assert_msg(st == KMS_OK, "build: %s: %s", err.key, err.message);
}

/* Runs the batch with stderr captured into *out (malloc'ed). */
static void run_batch(const kms_pipeline *pl, const kms_batch_options *opt,
                      kms_batch_result *res, char **out)
{
    kms_error err;
    kms_error_clear(&err);
    kt_stderr_begin();
    kms_status st = kms_batch_run(pl, opt, res, &err);
    *out = kt_stderr_end();
    ck_assert_msg(st == KMS_OK, "batch: %s: %s", err.file, err.message);
}

static kms_batch_options quiet_options(void)
{
    kms_batch_options opt = {0};
    opt.jobs = 1;
    opt.progress = KMS_PROGRESS_NEVER;
    return opt;
}

START_TEST(test_scores_summary)
{
    /* a: truth = mask, Dice 1; b: truth = half the mask, Dice 8/12, IoU
     * 4/8: means 0.8333 and 0.75, b the worst */
    kt_make_dir("in");
    kt_make_dir("truth");
    write_blocks("in/a.png");
    write_blocks("in/b.png");
    write_truth("truth/a.png", true);
    write_truth("truth/b.png", false);
    kms_pipeline pl;
    build(cfg_eval, &pl);
    kms_batch_options opt = quiet_options();
    kms_batch_result res;
    char *out;
    run_batch(&pl, &opt, &res, &out);
    ck_assert_int_eq(res.succeeded, 2);
    ck_assert_int_eq(res.failed, 0);
    ck_assert_msg(strstr(out, "kmseg: Dice mean 0.8333 min 0.6667 ("), "%s", out);
    ck_assert_msg(strstr(out, "b.png), IoU mean 0.7500 min 0.5000 over 2 inputs "
                              "with truth\n"),
                  "%s", out);
    ck_assert_msg(strstr(out, "kmseg: 2 succeeded, 0 failed, 0 skipped of 2 in "),
                  "%s", out);
    free(out);
    /* quiet: nothing at all */
    opt.quiet = true;
    run_batch(&pl, &opt, &res, &out);
    ck_assert_str_eq(out, "");
    free(out);
    kms_pipeline_free(&pl);
}
END_TEST

START_TEST(test_failed_inputs_listed)
{
    /* twelve inputs that are no images: ten listed, then a count */
    kt_make_dir("in");
    for (int i = 0; i < 12; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "in/bad%02d.png", i);
        kt_touch(rel, "not a PNG at all");
    }
    kms_pipeline pl;
    build(cfg_eval, &pl);
    kms_batch_options opt = quiet_options();
    kms_batch_result res;
    char *out;
    run_batch(&pl, &opt, &res, &out);
    ck_assert_int_eq(res.failed, 12);
    ck_assert_int_eq(res.succeeded, 0);
    const char *list = strstr(out, "kmseg: failed inputs:\n");
    ck_assert_msg(list != NULL, "%s", out);
    int listed = 0;
    for (const char *l = strchr(list, '\n') + 1; strncmp(l, "  ", 2) == 0;
         l = strchr(l, '\n') + 1) {
        if (strncmp(l, "  ... and ", 10) != 0) {
            char want[32];
            snprintf(want, sizeof want, "bad%02d.png", listed);
            ck_assert_msg(strstr(l, want) && strstr(l, want) < strchr(l, '\n'),
                          "line %d: %s", listed, l);
            listed++;
        }
    }
    ck_assert_int_eq(listed, 10);
    ck_assert_msg(strstr(out, "  ... and 2 more (see summary.csv)\n"), "%s", out);
    ck_assert_msg(strstr(out, "kmseg: 0 succeeded, 12 failed, 0 skipped of 12"),
                  "%s", out);
    /* no Dice line without an evaluated input */
    ck_assert_ptr_null(strstr(out, "Dice"));
    free(out);
    kms_pipeline_free(&pl);
}
END_TEST

START_TEST(test_stage_times_and_resume)
{
    kt_make_dir("in");
    kt_make_dir("truth");
    write_blocks("in/a.png");
    write_blocks("in/b.png");
    write_truth("truth/a.png", true);
    write_truth("truth/b.png", true);
    kms_pipeline pl;
    build(cfg_eval, &pl);
    kms_batch_options opt = quiet_options();
    opt.quiet = true;
    opt.stage_times = true;
    kms_batch_result res;
    char *out;
    run_batch(&pl, &opt, &res, &out);
    /* one line per stage, in order, then the total */
    ck_assert_msg(strstr(out, "kmseg: time per input by stage (mean of 2):\n"),
                  "%s", out);
    const char *at = out;
    const char *const stages[] = {"read", "reshape", "kmeans", "mask",
                                  "evaluate", "write", "all"};
    for (int i = 0; i < 7; i++) {
        char want[32];
        snprintf(want, sizeof want, "\n  %-10s ", stages[i]);
        const char *hit = strstr(at, want);
        ck_assert_msg(hit != NULL, "%s after %s", stages[i], at);
        at = hit + 1;
    }
    free(out);
    char path[4096];
    size_t len;
    char *first = kt_read_file(kt_tmp_path(path, sizeof path, "out/summary.csv"),
                               &len);
    /* --resume: both inputs' products are there, so they are skipped and
     * their rows kept */
    opt.resume = true;
    opt.stage_times = false;
    opt.quiet = false;
    run_batch(&pl, &opt, &res, &out);
    ck_assert_int_eq(res.skipped, 2);
    ck_assert_int_eq(res.succeeded, 0);
    ck_assert_msg(strstr(out, "0 succeeded, 0 failed, 2 skipped of 2"), "%s", out);
    free(out);
    char *second = kt_read_file(path, &len);
    ck_assert_str_eq(second, first);
    free(first);
    free(second);
    kms_pipeline_free(&pl);
}
END_TEST

/* ---- kms_batch_each -------------------------------------------------------- */

/* One CSV line per input; input "b" fails. */
static kms_status each_stem(const kms_pipeline *pl, const kms_batch *b,
                            kms_context *ctx, FILE *csv, void *arg,
                            kms_error *err)
{
    (void)pl;
    (void)b;
    ++*(int *)arg;
    if (strcmp(ctx->stem, "b") == 0)
        return kms_error_set(err, KMS_ERR_INPUT, NULL, 0, NULL, "b is bad");
    fprintf(csv, "%s\n", ctx->stem);
    return KMS_OK;
}

START_TEST(test_each)
{
    kt_make_dir("in");
    write_blocks("in/a.png");
    write_blocks("in/b.png");
    write_blocks("in/c.png");
    char fifo[4096];
    ck_assert_int_eq(mkfifo(kt_tmp_path(fifo, sizeof fifo, "in/d.png"), 0600), 0);
    kms_pipeline pl;
    build(cfg_eval, &pl);
    kms_batch_options opt = quiet_options();
    int calls = 0;
    kms_each each = {.what = "listed", .csv_name = "stems.csv",
                     .csv_header = "stem", .fn = each_stem, .arg = &calls};
    kt_stderr_begin();
    int rc = kms_batch_each(&pl, &opt, &each);
    char *out = kt_stderr_end();
    /* the FIFO fails before fn, b in it */
    ck_assert_int_eq(rc, 1);
    ck_assert_int_eq(calls, 3);
    ck_assert_int_eq(each.done, 2);
    ck_assert_int_eq(each.failed, 2);
    ck_assert_msg(strstr(out, "b is bad"), "%s", out);
    ck_assert_msg(strstr(out, "in/b.png"), "%s", out);
    ck_assert_msg(strstr(out, "not a regular file (a FIFO)"), "%s", out);
    ck_assert_msg(strstr(out, "kmseg: listed 2 inputs, 2 failed; stems.csv in "),
                  "%s", out);
    free(out);
    char path[4096];
    size_t len;
    char *csv = kt_read_file(kt_tmp_path(path, sizeof path, "out/stems.csv"), &len);
    ck_assert_str_eq(csv, "stem\na\nc\n");
    free(csv);
    /* a CSV name that would write over an input is refused, and counted */
    opt.output = kt_tmp_path(path, sizeof path, "in");
    opt.quiet = true;
    each.csv_name = "a.png";
    calls = 0;
    kt_stderr_begin();
    rc = kms_batch_each(&pl, &opt, &each);
    out = kt_stderr_end();
    ck_assert_int_eq(rc, 1);
    ck_assert_int_eq(each.failed, 3);
    ck_assert_msg(strstr(out, "a.png"), "%s", out);
    ck_assert_ptr_null(strstr(out, "kmseg: listed")); /* quiet */
    free(out);
    kms_pipeline_free(&pl);
}
END_TEST

START_TEST(test_each_without_inputs)
{
    /* the batch cannot open: status 2, the error reported */
    kms_pipeline pl;
    build("[pipeline]\nstages = read\n", &pl);
    kms_batch_options opt = quiet_options();
    kms_each each = {.what = "listed", .csv_name = "x.csv", .csv_header = "x",
                     .fn = each_stem, .arg = &(int){0}};
    kt_stderr_begin();
    int rc = kms_batch_each(&pl, &opt, &each);
    char *out = kt_stderr_end();
    ck_assert_int_eq(rc, 2);
    ck_assert_msg(strstr(out, "no inputs"), "%s", out);
    free(out);
    kms_pipeline_free(&pl);
}
END_TEST

/* ---- building pipelines ---------------------------------------------------- */

static void expect_build_error(const char *text, const char *const *overrides,
                               const char *key, const char *words)
{
    char path[4096];
    kms_pipeline pl;
    kms_error err;
    ck_assert_int_eq(kt_build_text(text, overrides, &pl, &err, path, sizeof path),
                     KMS_ERR_CONFIG);
    ck_assert_msg(strcmp(err.key, key) == 0, "key %s, not %s", err.key, key);
    ck_assert_msg(strstr(err.message, words), "%s", err.message);
}

START_TEST(test_build_limits)
{
    /* 33 stages (without blanks: a config line holds at most 197 bytes) */
    char text[1024] = "[pipeline]\nstages = read";
    for (int i = 1; i < 33; i++)
        strcat(text, ",read");
    strcat(text, "\n");
    expect_build_error(text, NULL, "pipeline.stages", "more than 32 stages");
    /* a key without a default must be given */
    expect_build_error("[pipeline]\nstages = read, reshape, kmeans, mask, "
                       "evaluate\n",
                       NULL, "", "stage [evaluate] needs the key evaluate.truth");
    /* a bad value from the command line is named as such */
    const char *const bad[] = {"mask.clusters=no_such", NULL};
    expect_build_error("[pipeline]\nstages = read, reshape, kmeans, mask\n", bad,
                       "-s mask.clusters", "'no_such'");
}
END_TEST

START_TEST(test_stage_lookup)
{
    kms_pipeline pl;
    build("[pipeline]\nstages = read, reshape, kmeans, mask\n", &pl);
    ck_assert_uint_eq(kms_pipeline_stage_index(&pl, "kmeans"), 2);
    ck_assert_uint_eq(kms_pipeline_stage_index(&pl, "write"), pl.n_stages);
    ck_assert_ptr_null(kms_pipeline_stage_params(&pl, "write"));
    ck_assert_ptr_nonnull(kms_pipeline_stage_params(&pl, "mask"));
    kms_pipeline_free(&pl);
    kms_pipeline_free(NULL);
}
END_TEST

static Suite *batch_suite(void)
{
    Suite *s = suite_create("batch");
    TCase *tc = tcase_create("Reports");
    kt_add_tmp_fixture(tc, "check_batch");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_scores_summary);
    tcase_add_test(tc, test_failed_inputs_listed);
    tcase_add_test(tc, test_stage_times_and_resume);
    tcase_add_test(tc, test_each);
    tcase_add_test(tc, test_each_without_inputs);
    suite_add_tcase(s, tc);
    TCase *b = tcase_create("Build");
    kt_add_tmp_fixture(b, "check_batch");
    tcase_add_test(b, test_build_limits);
    tcase_add_test(b, test_stage_lookup);
    suite_add_tcase(s, b);
    return s;
}

int main(void)
{
    return kt_run_suite(batch_suite());
}
