/* Check suite for config (config/config.c): INI files as (section, key,
 * value, line) entries, and -s SECTION.KEY=VALUE overrides. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "test_util.h"

/* Loads text as kt_tmpdir/test.ini, expecting success. */
static void load_ok(const char *text, kms_config *cfg, char *path, size_t len)
{
    kms_error err;
    kms_status st = kt_load_text("test.ini", text, cfg, &err, path, len);
    ck_assert_msg(st == KMS_OK, "load failed: %s:%d: %s", err.file, err.line,
                  err.message);
    ck_assert_int_eq(err.code, KMS_OK);
}

/* Loads text expecting a config error on the given line; err gets the
 * error. The config must be left empty (freed). */
static void load_fail(const char *text, int line, kms_error *err, char *path,
                      size_t len)
{
    kms_config cfg;
    memset(&cfg, 0x5A, sizeof cfg);
    kms_status st = kt_load_text("test.ini", text, &cfg, err, path, len);
    ck_assert_int_ne(st, KMS_OK);
    ck_assert_int_eq(err->code, st);
    ck_assert_int_eq(st, KMS_ERR_CONFIG);
    ck_assert_int_eq(err->line, line);
    ck_assert_ptr_null(cfg.path);
    ck_assert_ptr_null(cfg.entries);
    ck_assert_ptr_null(cfg.sections);
    ck_assert_uint_eq(cfg.n_entries, 0);
    ck_assert_uint_eq(cfg.n_sections, 0);
}

static void assert_entry(const kms_config *cfg, size_t i, const char *section,
                         const char *key, const char *value, int line)
{
    ck_assert_uint_lt(i, cfg->n_entries);
    const kms_config_entry *e = &cfg->entries[i];
    ck_assert_str_eq(e->section, section);
    ck_assert_str_eq(e->key, key);
    ck_assert_str_eq(e->value, value);
    ck_assert_int_eq(e->line, line);
    ck_assert(!e->used);
}

static const char notebook_like[] =
    "; a comment\n"                                    /* 1 */
    "# another comment\n"                              /* 2 */
    "[pipeline]\n"                                     /* 3 */
    "input = png          ; inline comment\n"          /* 4 */
    "stages = read, reshape, kmeans, recolor, write\n" /* 5 */
    "\n"                                               /* 6 */
    "[read]\n"                                         /* 7 */
    "  mode=color\n"                                   /* 8 */
    "\n"                                               /* 9 */
    "; [commented] = out\n"                            /* 10 */
    "[reshape]\n"                                      /* 11 */
    "value_scale = 1/255\n";                           /* 12 */

/* ---- Core ---------------------------------------------------------------- */

START_TEST(test_load_entries_and_lines)
{
    kms_config cfg;
    char path[4096];
    load_ok(notebook_like, &cfg, path, sizeof path);
    ck_assert_str_eq(cfg.path, path);
    ck_assert_str_eq(cfg.dir, kt_tmpdir);
    ck_assert_uint_eq(cfg.n_entries, 4);
    assert_entry(&cfg, 0, "pipeline", "input", "png", 4);
    assert_entry(&cfg, 1, "pipeline", "stages",
                 "read, reshape, kmeans, recolor, write", 5);
    assert_entry(&cfg, 2, "read", "mode", "color", 8);
    assert_entry(&cfg, 3, "reshape", "value_scale", "1/255", 12);
    ck_assert_uint_eq(cfg.n_sections, 3);
    ck_assert_str_eq(cfg.sections[0].name, "pipeline");
    ck_assert_int_eq(cfg.sections[0].line, 3);
    ck_assert_str_eq(cfg.sections[1].name, "read");
    ck_assert_int_eq(cfg.sections[1].line, 7);
    ck_assert_str_eq(cfg.sections[2].name, "reshape");
    ck_assert_int_eq(cfg.sections[2].line, 11);
    kms_config_free(&cfg);
}
END_TEST

START_TEST(test_get_and_section_find)
{
    kms_config cfg;
    char path[4096];
    load_ok(notebook_like, &cfg, path, sizeof path);
    kms_config_entry *e = kms_config_get(&cfg, "read", "mode");
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_eq(e, &cfg.entries[2]);
    ck_assert_ptr_null(kms_config_get(&cfg, "read", "Mode"));
    ck_assert_ptr_null(kms_config_get(&cfg, "pipeline", "mode"));
    ck_assert_ptr_null(kms_config_get(&cfg, "kmeans", "k"));
    const kms_config_section *s = kms_config_section_find(&cfg, "reshape");
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->line, 11);
    ck_assert_ptr_null(kms_config_section_find(&cfg, "commented"));
    ck_assert_ptr_null(kms_config_section_find(&cfg, "kmeans"));
    kms_config_free(&cfg);
}
END_TEST

START_TEST(test_empty_section_listed)
{
    kms_config cfg;
    char path[4096];
    load_ok("[pipeline]\nstages = read\n\n[recolor]\n\n[read]\nmode = color\n",
            &cfg, path, sizeof path);
    ck_assert_uint_eq(cfg.n_entries, 2);
    const kms_config_section *s = kms_config_section_find(&cfg, "recolor");
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->line, 4);
    ck_assert_uint_eq(cfg.n_sections, 3);
    ck_assert_str_eq(cfg.sections[1].name, "recolor");
    kms_config_free(&cfg);
}
END_TEST

START_TEST(test_crlf_and_bom)
{
    kms_config cfg;
    char path[4096];
    load_ok("\xEF\xBB\xBF[read]\r\nmode = color\r\n\r\n[kmeans]\r\nk = 3\r\n",
            &cfg, path, sizeof path);
    ck_assert_uint_eq(cfg.n_sections, 2);
    ck_assert_str_eq(cfg.sections[0].name, "read");
    ck_assert_int_eq(cfg.sections[0].line, 1);
    ck_assert_int_eq(cfg.sections[1].line, 4);
    assert_entry(&cfg, 0, "read", "mode", "color", 2);
    assert_entry(&cfg, 1, "kmeans", "k", "3", 5);
    kms_config_free(&cfg);
}
END_TEST

START_TEST(test_empty_file)
{
    kms_config cfg;
    char path[4096];
    load_ok("", &cfg, path, sizeof path);
    ck_assert_uint_eq(cfg.n_entries, 0);
    ck_assert_uint_eq(cfg.n_sections, 0);
    kms_config_free(&cfg);
    load_ok("; only a comment\n\n", &cfg, path, sizeof path);
    ck_assert_uint_eq(cfg.n_entries, 0);
    kms_config_free(&cfg);
}
END_TEST

START_TEST(test_section_twice)
{
    kms_error err;
    char path[4096];
    load_fail("[read]\nmode = color\n\n[kmeans]\nk = 2\n"
              "[read]\nmode = grayscale\n",
              6, &err, path, sizeof path);
    ck_assert_str_eq(err.file, path);
    ck_assert_str_eq(err.message,
                     "section [read] defined twice (first on line 1)");
}
END_TEST

START_TEST(test_key_outside_section)
{
    kms_error err;
    char path[4096];
    load_fail("; header\n\nk = 3\n[kmeans]\n", 3, &err, path, sizeof path);
    ck_assert_str_eq(err.file, path);
    ck_assert_str_eq(err.key, "k");
    ck_assert_ptr_nonnull(strstr(err.message, "outside any section"));
}
END_TEST

START_TEST(test_key_twice)
{
    kms_error err;
    char path[4096];
    load_fail("[kmeans]\nk = 2\nattempts = 3\nk = 4\n", 4, &err, path,
              sizeof path);
    ck_assert_str_eq(err.file, path);
    ck_assert_str_eq(err.message, "kmeans.k set twice (first on line 2)");
}
END_TEST

START_TEST(test_indented_line_not_continuation)
{
    /* with multi-line values off, an indented line is a key of its own */
    kms_config cfg;
    char path[4096];
    load_ok("[pipeline]\ninput = a.png,\n    stages = read\n", &cfg, path,
            sizeof path);
    ck_assert_uint_eq(cfg.n_entries, 2);
    assert_entry(&cfg, 0, "pipeline", "input", "a.png,", 2);
    assert_entry(&cfg, 1, "pipeline", "stages", "read", 3);
    kms_config_free(&cfg);
}
END_TEST

START_TEST(test_syntax_error_line)
{
    kms_error err;
    char path[4096];
    load_fail("[pipeline]\nstages = read\n\n[read]\nmode color\nx = 1\n", 5,
              &err, path, sizeof path);
    ck_assert_str_eq(err.file, path);
    ck_assert_ptr_nonnull(strstr(err.message, "syntax error"));
}
END_TEST

START_TEST(test_missing_file)
{
    char path[4096];
    kt_tmp_path(path, sizeof path, "no/such.ini");
    kms_config cfg;
    memset(&cfg, 0x5A, sizeof cfg);
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_config_load(&cfg, path, &err), KMS_ERR_IO);
    ck_assert_int_eq(err.code, KMS_ERR_IO);
    ck_assert_str_eq(err.file, path);
    ck_assert_int_eq(err.line, 0);
    ck_assert_ptr_nonnull(strstr(err.message, "cannot open config"));
    ck_assert_ptr_null(cfg.path);
    ck_assert_uint_eq(cfg.n_entries, 0);
}
END_TEST

START_TEST(test_relative_path_dir)
{
    char path[4096];
    kt_write_tmp("rel.ini", "[read]\nmode = color\n", path, sizeof path);
    ck_assert_int_eq(chdir(kt_tmpdir), 0);
    kms_config cfg;
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_config_load(&cfg, "rel.ini", &err), KMS_OK);
    ck_assert_str_eq(cfg.path, "rel.ini");
    ck_assert_str_eq(cfg.dir, ".");
    kms_config_free(&cfg);
}
END_TEST

START_TEST(test_override_replaces)
{
    kms_config cfg;
    char path[4096];
    load_ok("[kmeans]\nk = 2\nbackend = opencv\n", &cfg, path, sizeof path);
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_config_override(&cfg, "kmeans.k=3", &err), KMS_OK);
    ck_assert_uint_eq(cfg.n_entries, 2);
    assert_entry(&cfg, 0, "kmeans", "k", "3", 0);
    assert_entry(&cfg, 1, "kmeans", "backend", "opencv", 3);
    /* a second override of the same key replaces again */
    ck_assert_int_eq(kms_config_override(&cfg, "kmeans.k=5", &err), KMS_OK);
    ck_assert_uint_eq(cfg.n_entries, 2);
    ck_assert_str_eq(kms_config_get(&cfg, "kmeans", "k")->value, "5");
    kms_config_free(&cfg);
}
END_TEST

START_TEST(test_override_adds)
{
    kms_config cfg;
    char path[4096];
    load_ok("[kmeans]\nk = 2\n", &cfg, path, sizeof path);
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_config_override(&cfg, "kmeans.attempts=7", &err),
                     KMS_OK);
    ck_assert_int_eq(kms_config_override(&cfg, "denoise.method=median", &err),
                     KMS_OK);
    ck_assert_uint_eq(cfg.n_entries, 3);
    assert_entry(&cfg, 0, "kmeans", "k", "2", 2);
    assert_entry(&cfg, 1, "kmeans", "attempts", "7", 0);
    assert_entry(&cfg, 2, "denoise", "method", "median", 0);
    /* an override does not invent a section header */
    ck_assert_uint_eq(cfg.n_sections, 1);
    kms_config_free(&cfg);
}
END_TEST

START_TEST(test_override_value_text)
{
    /* only the first '=' splits; the value is kept as written */
    kms_config cfg;
    char path[4096];
    load_ok("[pipeline]\ninput = a\n", &cfg, path, sizeof path);
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_config_override(&cfg, "pipeline.input=x=y.png", &err),
                     KMS_OK);
    ck_assert_str_eq(kms_config_get(&cfg, "pipeline", "input")->value,
                     "x=y.png");
    ck_assert_int_eq(kms_config_override(&cfg, "pipeline.output=", &err), KMS_OK);
    ck_assert_str_eq(kms_config_get(&cfg, "pipeline", "output")->value, "");
    /* a key may contain a dot after the section's */
    ck_assert_int_eq(kms_config_override(&cfg, "a.b.c=1", &err), KMS_OK);
    ck_assert_ptr_nonnull(kms_config_get(&cfg, "a", "b.c"));
    kms_config_free(&cfg);
}
END_TEST

START_TEST(test_override_zeroed_config)
{
    /* overrides alone, without a file */
    kms_config cfg;
    memset(&cfg, 0, sizeof cfg);
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_config_override(&cfg, "kmeans.k=3", &err), KMS_OK);
    ck_assert_uint_eq(cfg.n_entries, 1);
    assert_entry(&cfg, 0, "kmeans", "k", "3", 0);
    kms_config_free(&cfg);
}
END_TEST

static const char *const bad_overrides[] = {
    "kmeans", "=3", "kmeans.=3", ".k=3", "kmeans.k", "k=0.5", "", ".=",
};

START_TEST(test_override_malformed)
{
    const char *a = bad_overrides[_i];
    kms_config cfg;
    char path[4096];
    load_ok("[kmeans]\nk = 2\n", &cfg, path, sizeof path);
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_config_override(&cfg, a, &err), KMS_ERR_CONFIG);
    ck_assert_int_eq(err.code, KMS_ERR_CONFIG);
    ck_assert_str_eq(err.file, KMS_CONFIG_CMDLINE);
    ck_assert_int_eq(err.line, 0);
    ck_assert_str_eq(err.key, "-s");
    char expected[256];
    snprintf(expected, sizeof expected, "'%s' is not SECTION.KEY=VALUE", a);
    ck_assert_str_eq(err.message, expected);
    /* nothing changed */
    ck_assert_uint_eq(cfg.n_entries, 1);
    assert_entry(&cfg, 0, "kmeans", "k", "2", 2);
    kms_config_free(&cfg);
}
END_TEST

START_TEST(test_free_zeroed)
{
    kms_config cfg;
    memset(&cfg, 0, sizeof cfg);
    kms_config_free(&cfg);
    ck_assert_ptr_null(cfg.path);
    ck_assert_uint_eq(cfg.n_entries, 0);
    kms_config_free(NULL);
    /* freeing a loaded config twice: the second is a no-op */
    char path[4096];
    load_ok(notebook_like, &cfg, path, sizeof path);
    kms_config_free(&cfg);
    ck_assert_ptr_null(cfg.entries);
    ck_assert_ptr_null(cfg.sections);
    ck_assert_ptr_null(cfg.dir);
    kms_config_free(&cfg);
}
END_TEST

/* ---- Limits -------------------------------------------------------------- */

/* "[s]\nk = " + value padded to total characters (without the newline) */
static void long_line_config(char *buf, size_t len, int chars)
{
    int value = chars - 4; /* "k = " */
    ck_assert_int_gt(value, 0);
    ck_assert_uint_lt((size_t)chars + 16, len);
    int n = snprintf(buf, len, "[s]\nk = ");
    memset(buf + n, 'v', (size_t)value);
    snprintf(buf + n + value, len - (size_t)(n + value), "\nz = 1\n");
}

START_TEST(test_line_197_accepted)
{
    char text[512];
    long_line_config(text, sizeof text, 197);
    kms_config cfg;
    char path[4096];
    load_ok(text, &cfg, path, sizeof path);
    ck_assert_uint_eq(cfg.n_entries, 2);
    ck_assert_uint_eq(strlen(cfg.entries[0].value), 193);
    ck_assert_int_eq(cfg.entries[0].line, 2);
    assert_entry(&cfg, 1, "s", "z", "1", 3);
    kms_config_free(&cfg);
}
END_TEST

START_TEST(test_line_198_rejected)
{
    char text[512];
    long_line_config(text, sizeof text, 198);
    kms_error err;
    char path[4096];
    load_fail(text, 2, &err, path, sizeof path);
    ck_assert_str_eq(err.file, path);
    ck_assert_ptr_nonnull(strstr(err.message, "longer than 197 characters"));
}
END_TEST

START_TEST(test_very_long_line_rejected)
{
    /* longer than the scanner's own 4 KiB buffer */
    static char text[10000];
    int n = snprintf(text, sizeof text, "[s]\na = 1\nk = ");
    memset(text + n, 'v', 9000);
    text[n + 9000] = '\0';
    strcat(text, "\n");
    kms_error err;
    char path[4096];
    load_fail(text, 3, &err, path, sizeof path);
    ck_assert_ptr_nonnull(strstr(err.message, "longer than"));
}
END_TEST

START_TEST(test_last_line_without_newline)
{
    kms_config cfg;
    char path[4096];
    load_ok("[kmeans]\nk = 4", &cfg, path, sizeof path);
    ck_assert_uint_eq(cfg.n_entries, 1);
    assert_entry(&cfg, 0, "kmeans", "k", "4", 2);
    kms_config_free(&cfg);
}
END_TEST

START_TEST(test_section_twice_with_spaces)
{
    /* "[ read ]" names the same section as "[read]" */
    kms_error err;
    char path[4096];
    load_fail("[read]\n[ read ]\n", 2, &err, path, sizeof path);
    ck_assert_str_eq(err.message,
                     "section [read] defined twice (first on line 1)");
}
END_TEST

START_TEST(test_section_name_spaces_consistent)
{
    /* Regression test (fixed): config/config.c:109-114 (scan_sections) trims the spaces of
     * "[ read ]" and lists the section as "read", but inih hands on_entry the
     * untrimmed name " read ", so the entries land in a section " read " that
     * is not in cfg->sections: kms_config_get(cfg, "read", "mode") finds
     * nothing and kms_pipeline_build calls the section unknown at the key's
     * line. The section list and the entries must agree on the name. */
    kms_config cfg;
    char path[4096];
    load_ok("[ read ]\nmode = color\n", &cfg, path, sizeof path);
    ck_assert_uint_eq(cfg.n_sections, 1);
    ck_assert_str_eq(cfg.sections[0].name, "read");
    ck_assert_uint_eq(cfg.n_entries, 1);
    ck_assert_str_eq(cfg.entries[0].section, cfg.sections[0].name);
    ck_assert_ptr_nonnull(kms_config_get(&cfg, "read", "mode"));
    kms_config_free(&cfg);
}
END_TEST

START_TEST(test_first_error_wins)
{
    /* Regression test (fixed): config/config.c:202-207 (kms_config_load) prefers the handler's
     * error over inih's syntax error even when the syntax error comes first:
     * "[read" (line 1, no ']') leaves the key on line 2 outside any section,
     * and the user is told "2: key outside any section" instead of the
     * syntax error on line 1. The earliest line should win. */
    kms_error err;
    char path[4096];
    load_fail("[read\nmode = color\n", 1, &err, path, sizeof path);
    ck_assert_ptr_nonnull(strstr(err.message, "syntax error"));
}
END_TEST

START_TEST(test_unreadable_path_is_folder)
{
    /* Regression test (fixed): config/config.c:86 (scan_sections) and 193-200 (kms_config_load)
     * never check ferror(): fopen() of a folder succeeds on Linux, fgets()
     * fails with EISDIR, and the folder loads as an empty config (KMS_OK),
     * so `kmseg run somedir` reports a missing pipeline.stages instead of
     * an unreadable config. Expected KMS_ERR_IO naming the path. */
    kms_config cfg;
    memset(&cfg, 0, sizeof cfg);
    kms_error err;
    kms_error_clear(&err);
    kms_status st = kms_config_load(&cfg, kt_tmpdir, &err);
    if (st == KMS_OK)
        kms_config_free(&cfg);
    ck_assert_int_eq(st, KMS_ERR_IO);
    ck_assert_str_eq(err.file, kt_tmpdir);
    ck_assert_ptr_null(cfg.path);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");

    TCase *core = tcase_create("Core");
    kt_add_tmp_fixture(core, "check_config");
    tcase_add_test(core, test_load_entries_and_lines);
    tcase_add_test(core, test_get_and_section_find);
    tcase_add_test(core, test_empty_section_listed);
    tcase_add_test(core, test_crlf_and_bom);
    tcase_add_test(core, test_empty_file);
    tcase_add_test(core, test_section_twice);
    tcase_add_test(core, test_key_outside_section);
    tcase_add_test(core, test_key_twice);
    tcase_add_test(core, test_indented_line_not_continuation);
    tcase_add_test(core, test_syntax_error_line);
    tcase_add_test(core, test_missing_file);
    tcase_add_test(core, test_relative_path_dir);
    tcase_add_test(core, test_override_replaces);
    tcase_add_test(core, test_override_adds);
    tcase_add_test(core, test_override_value_text);
    tcase_add_test(core, test_override_zeroed_config);
    tcase_add_loop_test(core, test_override_malformed, 0,
                        (int)(sizeof bad_overrides / sizeof bad_overrides[0]));
    tcase_add_test(core, test_free_zeroed);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("Limits");
    kt_add_tmp_fixture(limits, "check_config");
    tcase_add_test(limits, test_line_197_accepted);
    tcase_add_test(limits, test_line_198_rejected);
    tcase_add_test(limits, test_very_long_line_rejected);
    tcase_add_test(limits, test_last_line_without_newline);
    tcase_add_test(limits, test_section_twice_with_spaces);
    tcase_add_test(limits, test_section_name_spaces_consistent);
    tcase_add_test(limits, test_first_error_wins);
    tcase_add_test(limits, test_unreadable_path_is_folder);
    suite_add_tcase(s, limits);

    return s;
}

int main(void)
{
    return kt_run_suite(config_suite());
}
