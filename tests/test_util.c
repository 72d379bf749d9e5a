/* Helpers shared by the Check suites; see test_util.h. */
#include "test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a temporary folder per test ----------------------------------------- */

char kt_tmpdir[512];

static char rootdir[256];
/* The suite's name for its root folder; set while the suite is built, so
 * the runner and its forked tests all see it. */
static const char *root_prefix = "check";

/* Removes path and everything below it; symlinks are removed, not followed. */
static void remove_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return;
    if (S_ISDIR(sb.st_mode)) {
        chmod(path, 0700); /* a test may have left a folder unreadable */
        DIR *d = opendir(path);
        if (d) {
            for (struct dirent *e; (e = readdir(d));) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                    continue;
                char child[4096];
                snprintf(child, sizeof child, "%s/%s", path, e->d_name);
                remove_tree(child);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void setup_root(void)
{
    snprintf(rootdir, sizeof rootdir, "/tmp/%s_XXXXXX", root_prefix);
    ck_assert_ptr_nonnull(mkdtemp(rootdir));
}

static void teardown_root(void)
{
    remove_tree(rootdir);
}

static void setup_test(void)
{
    snprintf(kt_tmpdir, sizeof kt_tmpdir, "%s/t_XXXXXX", rootdir);
    ck_assert_ptr_nonnull(mkdtemp(kt_tmpdir));
}

static void teardown_test(void)
{
    remove_tree(kt_tmpdir);
}

void kt_add_tmp_fixture(TCase *tc, const char *prefix)
{
    root_prefix = prefix;
    tcase_add_unchecked_fixture(tc, setup_root, teardown_root);
    tcase_add_checked_fixture(tc, setup_test, teardown_test);
}

const char *kt_tmp_path(char *buf, size_t len, const char *rel)
{
    snprintf(buf, len, "%s/%s", kt_tmpdir, rel);
    return buf;
}

void kt_make_dir(const char *rel)
{
    char path[4096];
    ck_assert_int_eq(mkdir(kt_tmp_path(path, sizeof path, rel), 0777), 0);
}

/* ---- files --------------------------------------------------------------- */

void kt_write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

const char *kt_write_tmp(const char *rel, const char *text, char *path,
                         size_t len)
{
    kt_write_bytes(kt_tmp_path(path, len, rel), text, strlen(text));
    return path;
}

void kt_touch(const char *rel, const char *text)
{
    char path[4096];
    kt_write_tmp(rel, text, path, sizeof path);
}

void *kt_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    ck_assert_int_ge(n, 0);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

int kt_count_entries(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (!needle || strstr(e->d_name, needle))
            n++;
    }
    closedir(d);
    return n;
}

/* ---- images -------------------------------------------------------------- */

kms_image kt_image(int w, int h, int channels, kms_depth depth)
{
    kms_image img = {0};
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_image_alloc(&img, w, h, channels, depth, &err),
                     KMS_OK);
    return img;
}

/* ---- stderr ---------------------------------------------------------------- */

static int saved_stderr = -1;

void kt_stderr_begin(void)
{
    char path[4096];
    fflush(stderr);
    saved_stderr = dup(2);
    ck_assert_int_ge(saved_stderr, 0);
    int fd = open(kt_tmp_path(path, sizeof path, "stderr.txt"),
                  O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(dup2(fd, 2), 2);
    close(fd);
}

char *kt_stderr_end(void)
{
    char path[4096];
    size_t len;
    fflush(stderr);
    ck_assert_int_eq(dup2(saved_stderr, 2), 2);
    close(saved_stderr);
    saved_stderr = -1;
    return kt_read_file(kt_tmp_path(path, sizeof path, "stderr.txt"), &len);
}

/* ---- running ------------------------------------------------------------- */

int kt_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#ifdef KT_WITH_CORE

#include "opencv_c.h"

const char *kt_write_image(const char *rel, const kms_image *img, char *path,
                           size_t len)
{
    unsigned char *buf = NULL;
    size_t n = 0;
    kms_error err;
    kms_error_clear(&err);
    const char *ext = strrchr(rel, '.');
    ck_assert_ptr_nonnull(ext);
    ck_assert_msg(kms_cv_imencode(ext, img, NULL, 0, &buf, &n, &err) == KMS_OK,
                  "imencode %s: %s", rel, err.message);
    kt_write_bytes(kt_tmp_path(path, len, rel), buf, n);
    free(buf);
    return path;
}

kms_status kt_load_text(const char *rel, const char *text, kms_config *cfg,
                        kms_error *err, char *path, size_t len)
{
    kt_write_tmp(rel, text, path, len);
    kms_error_clear(err);
    return kms_config_load(cfg, path, err);
}

kms_status kt_build_text(const char *text, const char *const *overrides,
                         kms_pipeline *pl, kms_error *err, char *path,
                         size_t len)
{
    kms_config cfg;
    kms_status st = kt_load_text("p.ini", text, &cfg, err, path, len);
    ck_assert_msg(st == KMS_OK, "config: %s:%d: %s", err->file, err->line,
                  err->message);
    for (const char *const *o = overrides; o && *o; o++)
        ck_assert_int_eq(kms_config_override(&cfg, *o, err), KMS_OK);
    kms_error_clear(err);
    st = kms_pipeline_build(pl, &cfg, err);
    kms_config_free(&cfg);
    return st;
}

kms_status kt_run_text(const char *text, const char *input, kms_context *ctx,
                       kms_error *err)
{
    char path[4096];
    kms_pipeline pl;
    kms_status st = kt_build_text(text, NULL, &pl, err, path, sizeof path);
    ck_assert_msg(st == KMS_OK, "build: %s:%d: %s: %s", err->file, err->line,
                  err->key, err->message);
    memset(ctx, 0, sizeof *ctx);
    ctx->input_path = input;
    snprintf(ctx->stem, sizeof ctx->stem, "in");
    ctx->output_dir = kt_tmpdir;
    ctx->base_dir = kt_tmpdir;
    ctx->threads = 1;
    kms_error_clear(err);
    st = kms_pipeline_run(&pl, ctx, err);
    kms_pipeline_free(&pl);
    return st;
}

#endif
