/* Check suite for pipeline/summary.c: summary.csv rows written and read
 * back for --resume (inputs that need CSV quoting included), and the merge
 * of shard summaries with its errors. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "summary.h"
#include "test_util.h"

/* Inputs whose names need quoting: a comma, a quote, both. */
static const char *const names[] = {
    "b,c.png", "a\"q\".png", "plain.png", "\"x,y\".png", "zz.png",
};
enum { N_NAMES = sizeof names / sizeof names[0] };

static void write_summary(const char *name, const kms_row *rows, size_t n)
{
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_summary_write(kt_tmpdir, name, rows, n, false, NULL,
                                       &err),
                     KMS_OK);
}

static char *read_tmp(const char *rel)
{
    char path[4096];
    size_t len;
    return kt_read_file(kt_tmp_path(path, sizeof path, rel), &len);
}

START_TEST(test_index_finds_ok_rows)
{
    /* every other input ok; the rest failed, skipped or never run */
    kms_row rows[N_NAMES] = {{0}};
    const kms_row_status st[N_NAMES] = {KMS_ROW_OK, KMS_ROW_ERROR, KMS_ROW_OK,
                                        KMS_ROW_NOT_RUN, KMS_ROW_OK};
    for (int i = 0; i < N_NAMES; i++) {
        rows[i].input = names[i];
        rows[i].status = st[i];
        rows[i].width = 10 + i;
        rows[i].height = 20;
        rows[i].k = 2;
        rows[i].backend = "native";
    }
    rows[1].error = strdup("x.png: \"bad\", truly");
    write_summary("summary.csv", rows, N_NAMES);
    char *csv = read_tmp("summary.csv");
    /* the names quoted as CSV quotes them, the row not run left out */
    ck_assert_ptr_nonnull(strstr(csv, "\n\"b,c.png\",ok,10,20,2,native,"));
    ck_assert_ptr_nonnull(strstr(csv, "\n\"a\"\"q\"\".png\",error,"));
    ck_assert_ptr_nonnull(strstr(csv, ",\"x.png: \"\"bad\"\", truly\","));
    ck_assert_ptr_null(strstr(csv, "x,y"));
    free(csv);

    char path[4096];
    kms_summary_index idx = {0};
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_summary_index_add(&idx, kt_tmp_path(path, sizeof path,
                                                               "summary.csv"), NULL, &err),
                     KMS_OK);
    ck_assert_uint_eq(idx.n, 4);
    for (int i = 0; i < N_NAMES; i++) {
        bool ok = false;
        const char *row = kms_summary_index_find(&idx, names[i], &ok);
        if (st[i] != KMS_ROW_OK) {
            /* an error row is found as such (--resume runs it again); a
             * row never written is not found */
            ck_assert_msg(row == NULL || !ok, "%s: %s", names[i], row);
            continue;
        }
        ck_assert_msg(row != NULL && ok, "%s not found", names[i]);
        char want[64];
        snprintf(want, sizeof want, ",ok,%d,20,", 10 + i);
        ck_assert_msg(strstr(row, want), "%s: %s", names[i], row);
    }
    ck_assert_ptr_null(kms_summary_index_find(&idx, "b", NULL));
    ck_assert_ptr_null(kms_summary_index_find(&idx, "zzz.png", NULL));
    ck_assert_ptr_null(kms_summary_index_find(&idx, "", NULL));
    kms_summary_index_free(&idx);
    ck_assert_uint_eq(idx.n, 0);
    kms_summary_index_free(&idx); /* twice is harmless */
    kms_summary_index_free(NULL);
    kms_row_clear(&rows[1]);
}
END_TEST

/* Lung sizes by side: ml for a volume, cm^2 for a slice, Dice by side
 * only where scored; each in its own column, empty when unknown. */
START_TEST(test_lung_columns)
{
    kms_row rows[3] = {{0}};
    rows[0].input = "vol.nii.gz";
    rows[0].status = KMS_ROW_OK;
    rows[0].lung_ml_known = true;
    rows[0].lung_size[0] = 1234.5;
    rows[0].lung_size[1] = 1000.004;
    rows[0].side_evaluated[0] = rows[0].side_evaluated[1] = true;
    rows[0].side_dice[0] = 0.98;
    rows[0].side_dice[1] = 0.5;
    rows[1].input = "slice.png";
    rows[1].status = KMS_ROW_OK;
    rows[1].lung_cm2_known = true;
    rows[1].lung_size[0] = 80;
    rows[1].lung_size[1] = 0;
    rows[1].side_evaluated[1] = true; /* only the left was there */
    rows[1].side_dice[1] = 1;
    rows[2].input = "plain.png";
    rows[2].status = KMS_ROW_OK;
    write_summary("l.csv", rows, 3);
    char *csv = read_tmp("l.csv");
    ck_assert_str_eq(csv, KMS_SUMMARY_HEADER "\n"
                          "vol.nii.gz,ok,,,,,,,,,,,,,1234.50,1000.00,,,"
                          "0.980000,0.500000\n"
                          "slice.png,ok,,,,,,,,,,,,,,,80.00,0.00,,1.000000\n"
                          "plain.png,ok,,,,,,,,,,,,,,,,,,\n");
    free(csv);
}
END_TEST

START_TEST(test_skipped_rows_keep_their_line)
{
    /* a skipped row is written as the earlier run wrote it */
    kms_row rows[2] = {{0}};
    rows[0].input = "a.png";
    rows[0].status = KMS_ROW_SKIPPED;
    rows[0].previous = strdup("a.png,ok,1,2,3,native,4,,,,,,,");
    rows[1].input = "b.png";
    rows[1].status = KMS_ROW_SKIPPED;
    write_summary("s.csv", rows, 2);
    char *csv = read_tmp("s.csv");
    ck_assert_str_eq(csv, KMS_SUMMARY_HEADER "\n"
                          "a.png,ok,1,2,3,native,4,,,,,,,\n"
                          "b.png,skipped,,,,,,,,,,,,,,,,,,\n");
    free(csv);
    kms_row_clear(&rows[0]);
    ck_assert_ptr_null(rows[0].previous);
}
END_TEST

START_TEST(test_index_errors)
{
    char path[4096];
    kms_summary_index idx = {0};
    kms_error err;
    /* missing: an empty index */
    kms_error_clear(&err);
    ck_assert_int_eq(kms_summary_index_add(&idx, kt_tmp_path(path, sizeof path,
                                                               "none.csv"), NULL, &err),
                     KMS_OK);
    ck_assert_uint_eq(idx.n, 0);
    ck_assert_ptr_null(kms_summary_index_find(&idx, "a.png", NULL));
    /* not a summary: the header says so */
    kt_write_tmp("other.csv", "name,value\na,1\n", path, sizeof path);
    ck_assert_int_eq(kms_summary_index_add(&idx, path, NULL, &err), KMS_ERR_INPUT);
    ck_assert_str_eq(err.file, path);
    ck_assert_int_eq(err.line, 1);
    ck_assert_ptr_nonnull(strstr(err.message, "not a kmseg summary"));
    ck_assert_uint_eq(idx.n, 0); /* the index is left as it was */
    /* a path through a file: an I/O error naming it */
    kt_tmp_path(path, sizeof path, "other.csv/summary.csv");
    kms_error_clear(&err);
    ck_assert_int_eq(kms_summary_index_add(&idx, path, NULL, &err), KMS_ERR_IO);
    ck_assert_str_eq(err.file, path);
    kms_summary_index_free(&idx);
}
END_TEST

/* A shard summary of these inputs, as a shard's run would write it, with
 * its run id (all of one run alike). */
static void shard(int i, int n, const char *const *inputs)
{
    kms_error err;
    ck_assert_int_eq(kms_summary_run_write(kt_tmpdir, i, n, 0x5eedULL, NULL, &err),
                     KMS_OK);
    char name[128];
    kms_row rows[8] = {{0}};
    size_t k = 0;
    for (; inputs[k]; k++) {
        rows[k].input = inputs[k];
        rows[k].status = KMS_ROW_OK;
    }
    kms_summary_name(name, sizeof name, i, n);
    write_summary(name, rows, k);
}

START_TEST(test_merge_interleaves)
{
    /* shard i of 3 ran inputs i, i + 3, ...: merged back in input order */
    const char *const s0[] = {"1.png", "4.png", "7.png", NULL};
    const char *const s1[] = {"2.png", "5.png", NULL};
    const char *const s2[] = {"3.png", "6.png", NULL};
    shard(0, 3, s0);
    shard(1, 3, s1);
    shard(2, 3, s2);
    kms_error err;
    kms_merge_counts counts;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_summary_merge(kt_tmpdir, &counts, &err), KMS_OK);
    ck_assert_int_eq(counts.shards, 3);
    ck_assert_uint_eq(counts.rows, 7);
    char *csv = read_tmp("summary.csv");
    char want[1024] = KMS_SUMMARY_HEADER "\n";
    for (int i = 1; i <= 7; i++) {
        char line[64];
        snprintf(line, sizeof line, "%d.png,ok,,,,,,,,,,,,,,,,,,\n", i);
        strcat(want, line);
    }
    ck_assert_str_eq(csv, want);
    free(csv);
}
END_TEST

START_TEST(test_merge_errors)
{
    kms_error err;
    char path[4096];
    /* no shards */
    kms_error_clear(&err);
    ck_assert_int_eq(kms_summary_merge(kt_tmpdir, NULL, &err), KMS_ERR_INPUT);
    ck_assert_str_eq(err.file, kt_tmpdir);
    ck_assert_ptr_nonnull(strstr(err.message, "no summary.shard-I-of-N.csv"));
    /* no folder */
    kms_error_clear(&err);
    ck_assert_int_eq(kms_summary_merge(kt_tmp_path(path, sizeof path, "nope"), NULL,
                                       &err),
                     KMS_ERR_IO);
    ck_assert_str_eq(err.file, path);
    /* shard 1 of 3 missing: named */
    const char *const s[] = {"1.png", NULL};
    shard(0, 3, s);
    shard(2, 3, s);
    kms_error_clear(&err);
    ck_assert_int_eq(kms_summary_merge(kt_tmpdir, NULL, &err), KMS_ERR_IO);
    ck_assert_str_eq(err.file,
                     kt_tmp_path(path, sizeof path, "summary.shard-1-of-3.csv"));
    /* a shard that is not a summary */
    kt_write_tmp("summary.shard-1-of-3.csv", "what,is,this\n", path, sizeof path);
    kms_error_clear(&err);
    ck_assert_int_eq(kms_summary_merge(kt_tmpdir, NULL, &err), KMS_ERR_INPUT);
    ck_assert_str_eq(err.file, path);
    ck_assert_int_eq(err.line, 1);
    /* nothing was written */
    ck_assert_int_eq(kt_count_entries(kt_tmpdir, "summary.csv"), 0);
}
END_TEST

START_TEST(test_names)
{
    char buf[64];
    kms_summary_name(buf, sizeof buf, 0, 0);
    ck_assert_str_eq(buf, "summary.csv");
    kms_summary_name(buf, sizeof buf, 2, 5);
    ck_assert_str_eq(buf, "summary.shard-2-of-5.csv");
}
END_TEST

static Suite *summary_suite(void)
{
    Suite *s = suite_create("summary");
    TCase *tc = tcase_create("Core");
    kt_add_tmp_fixture(tc, "check_summary");
    tcase_add_test(tc, test_index_finds_ok_rows);
    tcase_add_test(tc, test_skipped_rows_keep_their_line);
    tcase_add_test(tc, test_lung_columns);
    tcase_add_test(tc, test_index_errors);
    tcase_add_test(tc, test_merge_interleaves);
    tcase_add_test(tc, test_merge_errors);
    tcase_add_test(tc, test_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kt_run_suite(summary_suite());
}
