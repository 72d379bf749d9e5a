/* Check suite for the pipeline module: typed parameters (pipeline/params.c),
 * building a pipeline from a config (pipeline/pipeline.c), input lists
 * (pipeline/inputs.c) and atomic product writing (pipeline/output.c). */
#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "config.h"
#include "inputs.h"
#include "journal.h"
#include "opencv_c.h"
#include "output.h"
#include "pipeline.h"
#include "stage.h"
#include "summary.h"
#include "test_util.h"
#include "clock.h"
#include "path.h"

#ifndef KMS_SOURCE_DIR
#error "build with -DKMS_SOURCE_DIR=\"<repo root>\""
#endif

static bool contains(const char *haystack, const char *needle)
{
    return strstr(haystack, needle) != NULL;
}

/* ==== params.c =========================================================== */

typedef struct test_params {
    int i;
    double d;
    bool b;
    int c;
    unsigned f;
    kms_ratio r;
    char s[KMS_STR_MAX];
    char l[KMS_STR_MAX];
} test_params;

/* values unlike the places in the table: the parser stores values */
static const kms_choice colours[] = {
    {"red", 1}, {"green", 2}, {"blue", 4}, {NULL, 0}};

static const kms_param test_table[] = {
    {"i", KMS_PARAM_INT, "5", -10, 300, NULL, offsetof(test_params, i), "int"},
    {"d", KMS_PARAM_DOUBLE, "0.5", 0, 1, NULL, offsetof(test_params, d), "dbl"},
    {"b", KMS_PARAM_BOOL, "yes", 0, 0, NULL, offsetof(test_params, b), "bool"},
    {"c", KMS_PARAM_CHOICE, "green", 0, 0, colours, offsetof(test_params, c),
     "choice"},
    {"f", KMS_PARAM_FLAGS, "red, blue", 0, 0, colours,
     offsetof(test_params, f), "flags"},
    {"r", KMS_PARAM_RATIO, "1/255", 1e-12, 1e12, NULL,
     offsetof(test_params, r), "ratio"},
    {"s", KMS_PARAM_STRING, "out", 0, 0, NULL, offsetof(test_params, s), "str"},
    {"l", KMS_PARAM_LIST, "", 0, 0, NULL, offsetof(test_params, l), "list"},
    {0},
};

static const kms_param *tparam(const char *name)
{
    const kms_param *p = kms_param_find(test_table, name);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* A params struct with every field set to a sentinel, so tests can see that
 * a rejected value changes nothing. */
static test_params sentinel(void)
{
    test_params t;
    memset(&t, 0, sizeof t);
    t.i = -777;
    t.d = -777;
    t.b = false;
    t.c = -777;
    t.f = 0xdead;
    t.r.num = -777;
    t.r.den = -777;
    snprintf(t.s, sizeof t.s, "sentinel");
    return t;
}

static kms_status parse(const char *name, const char *text, test_params *t,
                        kms_error *err)
{
    kms_error_clear(err);
    return kms_param_parse(tparam(name), text, t, err);
}

static void assert_rejected(const char *name, const char *text,
                            const char *message)
{
    test_params t = sentinel(), before = sentinel();
    kms_error err;
    ck_assert_int_eq(parse(name, text, &t, &err), KMS_ERR_CONFIG);
    ck_assert_int_eq(err.code, KMS_ERR_CONFIG);
    ck_assert_str_eq(err.message, message);
    /* the parser leaves file, line and key to its caller */
    ck_assert_str_eq(err.file, "");
    ck_assert_int_eq(err.line, 0);
    ck_assert_str_eq(err.key, "");
    ck_assert_int_eq(memcmp(&t, &before, sizeof t), 0);
}

/* text is accepted for the int (or choice) field name, which becomes want. */
static void assert_parses_int(const char *name, const char *text, int want)
{
    test_params t = sentinel();
    kms_error err;
    ck_assert_int_eq(parse(name, text, &t, &err), KMS_OK);
    ck_assert_int_eq(*(const int *)((const char *)&t + tparam(name)->offset),
                     want);
}

/* The same for a double field. */
static void assert_parses_double(const char *name, const char *text,
                                 double want)
{
    test_params t = sentinel();
    kms_error err;
    ck_assert_int_eq(parse(name, text, &t, &err), KMS_OK);
    ck_assert_double_eq(
        *(const double *)((const char *)&t + tparam(name)->offset), want);
}

/* A zeroed params struct of the registered stage; *p gets its key. */
static char *stage_params(const char *stage, const char *key,
                          const kms_param **p)
{
    const kms_stage_class *c = kms_stage_find(stage);
    ck_assert_ptr_nonnull(c);
    *p = kms_param_find(c->params, key);
    ck_assert_ptr_nonnull(*p);
    char *buf = calloc(1, c->params_size);
    ck_assert_ptr_nonnull(buf);
    return buf;
}

START_TEST(test_param_int)
{
    assert_parses_int("i", "42", 42);
    assert_parses_int("i", "-10", -10); /* min */
    assert_parses_int("i", "300", 300); /* max */
    assert_parses_int("i", " 7  ", 7);
    assert_parses_int("i", "+0", 0);
}
END_TEST

START_TEST(test_param_int_range)
{
    assert_rejected("i", "-11", "-11 is out of range [-10, 300]");
    assert_rejected("i", "301", "301 is out of range [-10, 300]");
    assert_rejected("i", "12abc", "'12abc' is not a whole number");
    assert_rejected("i", "1.5", "'1.5' is not a whole number");
    assert_rejected("i", "", "'' is not a whole number");
    assert_rejected("i", "abc", "'abc' is not a whole number");
    assert_rejected("i", "99999999999999999999999",
                    "'99999999999999999999999' is not a whole number");
}
END_TEST

START_TEST(test_param_real_int_edges)
{
    /* kmeans.k is 1..255 and pipeline.seed 0..2^31-1 */
    const kms_param *k;
    char *buf = stage_params("kmeans", "k", &k);
    int *kv = (int *)(buf + k->offset);
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_param_parse(k, "1", buf, &err), KMS_OK);
    ck_assert_int_eq(*kv, 1);
    ck_assert_int_eq(kms_param_parse(k, "255", buf, &err), KMS_OK);
    ck_assert_int_eq(*kv, 255);
    ck_assert_int_eq(kms_param_parse(k, "0", buf, &err), KMS_ERR_CONFIG);
    ck_assert_str_eq(err.message, "0 is out of range [1, 255]");
    ck_assert_int_eq(kms_param_parse(k, "256", buf, &err), KMS_ERR_CONFIG);
    ck_assert_str_eq(err.message, "256 is out of range [1, 255]");
    ck_assert_int_eq(*kv, 255);
    free(buf);

    kms_pipeline_params pp;
    memset(&pp, 0, sizeof pp);
    const kms_param *seed = kms_param_find(kms_pipeline_param_table, "seed");
    ck_assert_ptr_nonnull(seed);
    ck_assert_int_eq(kms_param_parse(seed, "2147483647", &pp, &err), KMS_OK);
    ck_assert_int_eq(pp.seed, 2147483647);
    ck_assert_int_eq(kms_param_parse(seed, "0", &pp, &err), KMS_OK);
    ck_assert_int_eq(pp.seed, 0);
    ck_assert_int_eq(kms_param_parse(seed, "2147483648", &pp, &err),
                     KMS_ERR_CONFIG);
    ck_assert_str_eq(err.message,
                     "2147483648 is out of range [0, 2147483647]");
    ck_assert_int_eq(kms_param_parse(seed, "-1", &pp, &err), KMS_ERR_CONFIG);
    ck_assert(contains(err.message, "out of range"));
    ck_assert_int_eq(pp.seed, 0);
}
END_TEST

START_TEST(test_param_double)
{
    assert_parses_double("d", "0.25", 0.25);
    assert_parses_double("d", "0", 0.0);
    assert_parses_double("d", "1", 1.0);
    assert_parses_double("d", "2.5e-1 ", 0.25);
    assert_rejected("d", "1.0000001", "1.0000001 is out of range [0, 1]");
    assert_rejected("d", "-0.5", "-0.5 is out of range [0, 1]");
    assert_rejected("d", "abc", "'abc' is not a number");
    assert_rejected("d", "0.5x", "'0.5x' is not a number");
    assert_rejected("d", "nan", "'nan' is not a number");
    assert_rejected("d", "inf", "'inf' is not a number");
    assert_rejected("d", "1e999", "'1e999' is not a number");
}
END_TEST

START_TEST(test_param_bool)
{
    static const char *const yes[] = {"true", "TRUE", "yes", "Yes", "on", "ON",
                                      "1"};
    static const char *const no[] = {"false", "False", "no", "NO", "off",
                                     "Off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        test_params t = sentinel();
        kms_error err;
        ck_assert_int_eq(parse("b", yes[i], &t, &err), KMS_OK);
        ck_assert_msg(t.b, "'%s' should be true", yes[i]);
        ck_assert_int_eq(parse("b", no[i], &t, &err), KMS_OK);
        ck_assert_msg(!t.b, "'%s' should be false", no[i]);
    }
    assert_rejected("b", "2", "'2' is not a boolean (true/false, yes/no, on/off, 1/0)");
    assert_rejected("b", "tru", "'tru' is not a boolean (true/false, yes/no, on/off, 1/0)");
    assert_rejected("b", "", "'' is not a boolean (true/false, yes/no, on/off, 1/0)");
}
END_TEST

START_TEST(test_param_choice)
{
    assert_parses_int("c", "red", 1);
    assert_parses_int("c", "BLUE", 4);
    assert_parses_int("c", "gReEn", 2);
    assert_rejected("c", "gren", "'gren' is not one of: red, green, blue");
    assert_rejected("c", "", "'' is not one of: red, green, blue");

    /* the real kmeans.backend */
    const kms_param *backend;
    char *buf = stage_params("kmeans", "backend", &backend);
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_param_parse(backend, "OpenCV", buf, &err), KMS_OK);
    ck_assert_int_eq(*(int *)(buf + backend->offset), 1);
    ck_assert_int_eq(kms_param_parse(backend, "opnecv", buf, &err),
                     KMS_ERR_CONFIG);
    ck_assert_str_eq(err.message, "'opnecv' is not one of: native, opencv");
    free(buf);
}
END_TEST

START_TEST(test_param_flags)
{
    const kms_param *products;
    char *buf = stage_params("write", "products", &products);
    unsigned *v = (unsigned *)(buf + products->offset);
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_param_parse(products, "recolor, labels", buf, &err),
                     KMS_OK);
    ck_assert_uint_eq(*v, KMS_PRODUCT_RECOLOR | KMS_PRODUCT_LABELS);
    ck_assert_int_eq(kms_param_parse(products, "none", buf, &err), KMS_OK);
    ck_assert_uint_eq(*v, 0);
    ck_assert_int_eq(kms_param_parse(products, "LABELS recolor_raw,,mask",
                                     buf, &err),
                     KMS_OK);
    ck_assert_uint_eq(*v, KMS_PRODUCT_LABELS | KMS_PRODUCT_RECOLOR_RAW |
                              KMS_PRODUCT_MASK);
    ck_assert_int_eq(kms_param_parse(products, "overlay, none", buf, &err),
                     KMS_OK);
    ck_assert_uint_eq(*v, KMS_PRODUCT_OVERLAY);
    ck_assert_int_eq(kms_param_parse(products, "recolor, lables", buf, &err),
                     KMS_ERR_CONFIG);
    ck_assert_str_eq(err.message, "'lables' is not one of: recolor, labels, "
                                  "recolor_raw, mask, overlay, lungs, labels_color");
    ck_assert_uint_eq(*v, KMS_PRODUCT_OVERLAY); /* unchanged */
    free(buf);

    /* the test table: the values of the choices named, or'ed */
    test_params t = sentinel();
    ck_assert_int_eq(parse("f", "blue,red", &t, &err), KMS_OK);
    ck_assert_uint_eq(t.f, 5u);
    ck_assert_int_eq(parse("f", "", &t, &err), KMS_OK);
    ck_assert_uint_eq(t.f, 0u);
}
END_TEST

START_TEST(test_param_ratio)
{
    test_params t = sentinel();
    kms_error err;
    ck_assert_int_eq(parse("r", "1/255", &t, &err), KMS_OK);
    ck_assert_double_eq(t.r.num, 1.0);
    ck_assert_double_eq(t.r.den, 255.0);
    ck_assert_int_eq(parse("r", "0.5", &t, &err), KMS_OK);
    ck_assert_double_eq(t.r.num, 0.5);
    ck_assert_double_eq(t.r.den, 1.0);
    ck_assert_int_eq(parse("r", " 2 / 4 ", &t, &err), KMS_OK);
    ck_assert_double_eq(t.r.num, 2.0);
    ck_assert_double_eq(t.r.den, 4.0);
    ck_assert_int_eq(parse("r", "1e3", &t, &err), KMS_OK);
    ck_assert_double_eq(t.r.num, 1000.0);
    ck_assert_double_eq(t.r.den, 1.0);
    assert_rejected("r", "1/0", "'1/0' divides by zero");
    assert_rejected("r", "1/", "'1/' is not a number or a fraction a/b");
    assert_rejected("r", "/255", "'/255' is not a number or a fraction a/b");
    assert_rejected("r", "a/b", "'a/b' is not a number or a fraction a/b");
    assert_rejected("r", "1/2/3", "'1/2/3' is not a number or a fraction a/b");
    assert_rejected("r", "half", "'half' is not a number or a fraction a/b");
    assert_rejected("r", "0", "0 is out of range [1e-12, 1e+12]");
    assert_rejected("r", "-1/255", "-1/255 is out of range [1e-12, 1e+12]");
    assert_rejected("r", "1/-255", "1/-255 is out of range [1e-12, 1e+12]");
}
END_TEST

START_TEST(test_param_ratio_long_numerator)
{
    /* Regression test (fixed): pipeline/params.c:135-137 (parse_ratio) silently cuts the
     * numerator to 63 characters, so "1" + 69 zeros over 1e69 (= 1) parses
     * as 1e62 / 1e69 = 1e-7 and is accepted. A numerator that does not fit
     * should be parsed whole (strtod up to the '/') or rejected. */
    char text[128];
    int n = snprintf(text, sizeof text, "1");
    memset(text + n, '0', 69);
    snprintf(text + n + 69, sizeof text - (size_t)(n + 69), "/1e69");
    test_params t = sentinel();
    kms_error err;
    kms_status st = parse("r", text, &t, &err);
    if (st == KMS_OK) {
        ck_assert_double_eq_tol(t.r.num / t.r.den, 1.0, 1e-12);
        ck_assert_double_eq(t.r.num, 1e69);
    } else {
        ck_assert_int_eq(st, KMS_ERR_CONFIG);
    }
}
END_TEST

START_TEST(test_param_string)
{
    test_params t = sentinel();
    kms_error err;
    ck_assert_int_eq(parse("s", "out/notebook", &t, &err), KMS_OK);
    ck_assert_str_eq(t.s, "out/notebook");
    ck_assert_int_eq(parse("s", "", &t, &err), KMS_OK);
    ck_assert_str_eq(t.s, "");

    char longest[KMS_STR_MAX];
    memset(longest, 'x', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0'; /* 1023 characters */
    ck_assert_int_eq(parse("s", longest, &t, &err), KMS_OK);
    ck_assert_str_eq(t.s, longest);
    ck_assert_int_eq(parse("l", longest, &t, &err), KMS_OK);
    ck_assert_str_eq(t.l, longest);

    char too_long[KMS_STR_MAX + 1];
    memset(too_long, 'y', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0'; /* 1024 characters */
    t = sentinel();
    test_params before = sentinel();
    ck_assert_int_eq(parse("s", too_long, &t, &err), KMS_ERR_CONFIG);
    ck_assert_str_eq(err.message, "value longer than 1023 characters");
    ck_assert_int_eq(parse("l", too_long, &t, &err), KMS_ERR_CONFIG);
    ck_assert_int_eq(memcmp(&t, &before, sizeof t), 0);
}
END_TEST

START_TEST(test_params_defaults)
{
    test_params t = sentinel();
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_params_apply_defaults(test_table, &t, &err), KMS_OK);
    ck_assert_int_eq(t.i, 5);
    ck_assert_double_eq(t.d, 0.5);
    ck_assert(t.b);
    ck_assert_int_eq(t.c, 2);
    ck_assert_uint_eq(t.f, 5u);
    ck_assert_double_eq(t.r.num, 1.0);
    ck_assert_double_eq(t.r.den, 255.0);
    ck_assert_str_eq(t.s, "out");
    ck_assert_str_eq(t.l, "");
}
END_TEST

START_TEST(test_params_bad_default)
{
    static const kms_param bad[] = {
        {"ok", KMS_PARAM_INT, "1", 0, 10, NULL, offsetof(test_params, i), ""},
        {"broken", KMS_PARAM_DOUBLE, "11", 0, 10, NULL,
         offsetof(test_params, d), ""},
        {0},
    };
    test_params t = sentinel();
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_params_apply_defaults(bad, &t, &err), KMS_ERR_INTERNAL);
    ck_assert_str_eq(err.key, "broken");
    ck_assert_int_eq(t.i, 1);
}
END_TEST

START_TEST(test_stage_tables_defaults)
{
    /* every registered stage has a unique name and defaults that parse */
    size_t n = 0;
    for (const kms_stage_class *const *c = kms_stage_classes; *c; c++, n++) {
        ck_assert_ptr_eq(kms_stage_find((*c)->name), *c);
        ck_assert_ptr_nonnull((*c)->run);
        ck_assert_str_ne((*c)->name, "pipeline");
        void *params = calloc(1, (*c)->params_size ? (*c)->params_size : 1);
        ck_assert_ptr_nonnull(params);
        kms_error err;
        kms_error_clear(&err);
        ck_assert_msg(kms_params_apply_defaults((*c)->params, params, &err) ==
                          KMS_OK,
                      "[%s] default of %s: %s", (*c)->name, err.key, err.message);
        for (const kms_param *p = (*c)->params; p && p->name; p++) {
            ck_assert_uint_lt(p->offset, (*c)->params_size);
            ck_assert_ptr_eq(kms_param_find((*c)->params, p->name), p);
        }
        free(params);
    }
    /* the six of the notebook pipeline are there */
    static const char *const core[] = {"read",    "denoise", "reshape",
                                       "kmeans",  "recolor", "write"};
    for (size_t i = 0; i < 6; i++)
        ck_assert_msg(kms_stage_find(core[i]) != NULL, "no stage %s", core[i]);
    ck_assert_uint_ge(n, 6);
    /* names are unique */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(kms_stage_classes[i]->name,
                             kms_stage_classes[j]->name);
    ck_assert_ptr_null(kms_stage_find("pipeline"));
    ck_assert_ptr_null(kms_stage_find("Read"));
    ck_assert_ptr_null(kms_param_find(test_table, "x"));
    ck_assert_ptr_null(kms_param_find(NULL, "x"));
}
END_TEST

START_TEST(test_param_describe)
{
    char buf[256];
    kms_param_describe(tparam("i"), buf, sizeof buf);
    ck_assert_str_eq(buf, "int -10..300");
    kms_param_describe(tparam("d"), buf, sizeof buf);
    ck_assert_str_eq(buf, "number 0..1");
    kms_param_describe(tparam("b"), buf, sizeof buf);
    ck_assert_str_eq(buf, "true | false");
    kms_param_describe(tparam("c"), buf, sizeof buf);
    ck_assert_str_eq(buf, "one of: red, green, blue");
    kms_param_describe(tparam("f"), buf, sizeof buf);
    ck_assert_str_eq(buf, "list of: red, green, blue");
    kms_param_describe(tparam("r"), buf, sizeof buf);
    ck_assert_str_eq(buf, "number or a/b, 1e-12..1e+12");
    kms_param_describe(tparam("s"), buf, sizeof buf);
    ck_assert_str_eq(buf, "text");
    kms_param_describe(tparam("l"), buf, sizeof buf);
    ck_assert_str_eq(buf, "comma-separated list");
}
END_TEST

/* ==== pipeline.c ========================================================= */

/* A failed build is KMS_ERR_CONFIG naming file, line and key exactly, and
 * leaves pl empty. */
static void assert_build_error(const char *text, const char *const *overrides,
                               const char *file, int line, const char *key,
                               const char *message_part)
{
    kms_pipeline pl;
    kms_error err;
    char path[4096];
    memset(&pl, 0x5A, sizeof pl);
    kms_status st =
        kt_build_text(text, overrides, &pl, &err, path, sizeof path);
    ck_assert_int_eq(st, KMS_ERR_CONFIG);
    ck_assert_int_eq(err.code, KMS_ERR_CONFIG);
    ck_assert_str_eq(err.file, file ? file : path);
    ck_assert_int_eq(err.line, line);
    ck_assert_str_eq(err.key, key);
    ck_assert_msg(contains(err.message, message_part),
                  "message '%s' lacks '%s'", err.message, message_part);
    ck_assert_ptr_null(pl.stages);
    ck_assert_uint_eq(pl.n_stages, 0);
    ck_assert_ptr_null(pl.base_dir);
}

/* The value of an int/choice key of the first stage called stage. */
static int stage_int(const kms_pipeline *pl, const char *stage, const char *key)
{
    const char *params = kms_pipeline_stage_params(pl, stage);
    ck_assert_ptr_nonnull(params);
    const kms_param *p = kms_param_find(kms_stage_find(stage)->params, key);
    ck_assert_ptr_nonnull(p);
    return *(const int *)(params + p->offset);
}

static const char good_config[] =
    "; like samples/notebook.ini\n"                       /* 1 */
    "[pipeline]\n"                                        /* 2 */
    "input = png\n"                                       /* 3 */
    "output = out/notebook\n"                             /* 4 */
    "stages = read, reshape, kmeans, recolor, write\n"    /* 5 */
    "seed = 42\n"                                         /* 6 */
    "\n"                                                  /* 7 */
    "[read]\n"                                            /* 8 */
    "mode = color\n"                                      /* 9 */
    "\n"                                                  /* 10 */
    "[reshape]\n"                                         /* 11 */
    "width = 128\n"                                       /* 12 */
    "height = 128\n"                                      /* 13 */
    "value_scale = 1/255\n"                               /* 14 */
    "\n"                                                  /* 15 */
    "[kmeans]\n"                                          /* 16 */
    "backend = opencv\n"                                  /* 17 */
    "k = 2\n"                                             /* 18 */
    "attempts = 10\n"                                     /* 19 */
    "\n"                                                  /* 20 */
    "[write]\n"                                           /* 21 */
    "products = recolor, labels, recolor_raw\n";          /* 22 */

START_TEST(test_build_good)
{
    kms_pipeline pl;
    kms_error err;
    char path[4096];
    kms_status st =
        kt_build_text(good_config, NULL, &pl, &err, path, sizeof path);
    ck_assert_msg(st == KMS_OK, "%s:%d: %s: %s", err.file, err.line, err.key,
                  err.message);
    static const char *const order[] = {"read", "reshape", "kmeans", "recolor",
                                        "write"};
    ck_assert_uint_eq(pl.n_stages, 5);
    for (size_t i = 0; i < 5; i++) {
        ck_assert_str_eq(pl.stages[i].cls->name, order[i]);
        ck_assert_ptr_nonnull(pl.stages[i].params);
    }
    ck_assert_str_eq(pl.params.input, "png");
    ck_assert_str_eq(pl.params.output, "out/notebook");
    ck_assert_str_eq(pl.params.stages, "read, reshape, kmeans, recolor, write");
    ck_assert_int_eq(pl.params.seed, 42);
    ck_assert_str_eq(pl.base_dir, kt_tmpdir);
    ck_assert_int_eq(stage_int(&pl, "read", "mode"), 1); /* IMREAD_COLOR */
    ck_assert_int_eq(stage_int(&pl, "reshape", "width"), 128);
    ck_assert_int_eq(stage_int(&pl, "kmeans", "backend"), 1); /* opencv */
    ck_assert_int_eq(stage_int(&pl, "kmeans", "k"), 2);
    ck_assert_int_eq(stage_int(&pl, "kmeans", "max_iter"), 10); /* default */
    ck_assert_int_eq(stage_int(&pl, "write", "products"),
                     KMS_PRODUCT_RECOLOR | KMS_PRODUCT_LABELS |
                         KMS_PRODUCT_RECOLOR_RAW);
    ck_assert_ptr_null(kms_pipeline_stage_params(&pl, "denoise"));
    kms_pipeline_free(&pl);
    ck_assert_ptr_null(pl.stages);
    ck_assert_uint_eq(pl.n_stages, 0);
    kms_pipeline_free(&pl); /* twice: no-op */
    kms_pipeline_free(NULL);
}
END_TEST

START_TEST(test_build_sample_notebook)
{
    const char *path = KMS_SOURCE_DIR "/samples/notebook.ini";
    kms_config cfg;
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_config_load(&cfg, path, &err), KMS_OK);
    kms_pipeline pl;
    ck_assert_msg(kms_pipeline_build(&pl, &cfg, &err) == KMS_OK, "%s: %s",
                  err.key, err.message);
    kms_config_free(&cfg);
    ck_assert_uint_eq(pl.n_stages, 5);
    ck_assert_str_eq(pl.stages[0].cls->name, "read");
    ck_assert_str_eq(pl.stages[4].cls->name, "write");
    ck_assert_int_eq(pl.params.seed, 42);
    ck_assert_str_eq(pl.base_dir, KMS_SOURCE_DIR "/samples");
    kms_pipeline_free(&pl);
}
END_TEST

START_TEST(test_build_override_applies)
{
    static const char *const ov[] = {"kmeans.k=3", "pipeline.seed=7",
                                     "denoise.method=median", NULL};
    static const char text[] =
        "[pipeline]\nstages = read, denoise, reshape, kmeans\n[kmeans]\nk = 2\n";
    kms_pipeline pl;
    kms_error err;
    char path[4096];
    ck_assert_int_eq(kt_build_text(text, ov, &pl, &err, path, sizeof path),
                     KMS_OK);
    ck_assert_int_eq(stage_int(&pl, "kmeans", "k"), 3);
    ck_assert_int_eq(stage_int(&pl, "denoise", "method"), 2); /* median */
    ck_assert_int_eq(pl.params.seed, 7);
    ck_assert_str_eq(pl.params.output, "out"); /* default */
    kms_pipeline_free(&pl);
}
END_TEST

START_TEST(test_build_stage_list_forms)
{
    /* spaces, tabs and commas all separate; a stage may repeat; an
     * unlisted section is only a warning */
    static const char text[] =
        "[pipeline]\nstages = read\treshape ,,kmeans  kmeans\n"
        "[denoise]\nmethod = median\n";
    kms_pipeline pl;
    kms_error err;
    char path[4096];
    ck_assert_int_eq(kt_build_text(text, NULL, &pl, &err, path, sizeof path),
                     KMS_OK);
    ck_assert_uint_eq(pl.n_stages, 4);
    ck_assert_str_eq(pl.stages[2].cls->name, "kmeans");
    ck_assert_str_eq(pl.stages[3].cls->name, "kmeans");
    ck_assert_ptr_ne(pl.stages[2].params, pl.stages[3].params);
    ck_assert_ptr_null(kms_pipeline_stage_params(&pl, "denoise"));
    kms_pipeline_free(&pl);
}
END_TEST

START_TEST(test_build_unknown_stage)
{
    assert_build_error("[pipeline]\ninput = png\nstages = read, reshap, kmeans\n",
                       NULL, NULL, 3, "pipeline.stages",
                       "unknown stage 'reshap'");
}
END_TEST

START_TEST(test_build_unknown_key)
{
    assert_build_error("[pipeline]\nstages = read, reshape, kmeans\n\n"
                       "[kmeans]\nk = 2\nkay = 3\n",
                       NULL, NULL, 6, "kmeans.kay",
                       "unknown key (keys of [kmeans]: backend, method, k, ");
    assert_build_error("[pipeline]\nstages = read\nsed = 1\n", NULL, NULL, 3,
                       "pipeline.sed",
                       "unknown key (keys of [pipeline]: input, output, "
                       "stages, seed)");
}
END_TEST

START_TEST(test_build_bad_value)
{
    static const char text[] =
        "[pipeline]\nstages = read, reshape, kmeans\n\n[kmeans]\n"
        "backend = opencv\nk = 0\n";
    assert_build_error(text, NULL, NULL, 6, "kmeans.k",
                       "0 is out of range [1, 255]");
    /* the one-line form the CLI prints */
    kms_pipeline pl;
    kms_error err;
    char path[1024], line[2048], expected[2048];
    ck_assert_int_eq(kt_build_text(text, NULL, &pl, &err, path, sizeof path),
                     KMS_ERR_CONFIG);
    kms_error_format(&err, line, sizeof line);
    snprintf(expected, sizeof expected, "%s:6: kmeans.k: 0 is out of range [1, 255]",
             path);
    ck_assert_str_eq(line, expected);

    assert_build_error("[pipeline]\nstages = read\n[read]\nmode = colour\n",
                       NULL, NULL, 4, "read.mode",
                       "'colour' is not one of: color, grayscale, unchanged");
    assert_build_error("[pipeline]\nstages = read\nseed = -3\n", NULL, NULL, 3,
                       "pipeline.seed", "out of range");
}
END_TEST

START_TEST(test_build_unknown_section)
{
    /* the header's line; there is no key to name */
    assert_build_error("[pipeline]\nstages = read\n\n[kmean]\nk = 2\n", NULL,
                       NULL, 4, "", "unknown section [kmean]");
    assert_build_error("[pipeline]\nstages = read\n[nothing]\n", NULL, NULL, 3,
                       "", "unknown section [nothing]");
}
END_TEST

START_TEST(test_build_missing_stages)
{
    assert_build_error("; no stages\n[pipeline]\ninput = png\n", NULL, NULL, 2,
                       "pipeline.stages", "missing");
    /* no [pipeline] at all: no line to point at */
    assert_build_error("[read]\nmode = color\n", NULL, NULL, 0,
                       "pipeline.stages", "missing");
    /* listed but empty */
    assert_build_error("[pipeline]\ninput = png\nstages = , ,\n", NULL, NULL, 3,
                       "pipeline.stages", "no stages listed");
}
END_TEST

START_TEST(test_build_link_errors)
{
    /* a stage whose input no earlier stage provides: the stages line */
    assert_build_error("[pipeline]\ninput = png\nstages = read, kmeans, recolor\n",
                       NULL, NULL, 3, "pipeline.stages",
                       "kmeans needs samples: put reshape before it");
    assert_build_error("[pipeline]\nstages = reshape, read\n", NULL, NULL, 2,
                       "pipeline.stages", "reshape needs an image");
    assert_build_error("[pipeline]\nstages = read, reshape, recolor\n", NULL,
                       NULL, 2, "pipeline.stages", "recolor needs labels");
}
END_TEST

START_TEST(test_build_link_key_errors)
{
    /* prepare names a key that is set: its line */
    assert_build_error("[pipeline]\nstages = read, denoise\n[denoise]\n"
                       "method = median\nksize = 4\n",
                       NULL, NULL, 5, "denoise.ksize", "4 must be odd");
    assert_build_error("[pipeline]\nstages = read, reshape, kmeans, write\n\n"
                       "[write]\nproducts = recolor\n",
                       NULL, NULL, 5, "write.products",
                       "recolor products need the recolor stage");
    assert_build_error("[pipeline]\nstages = read, reshape, kmeans, recolor, "
                       "write\n[write]\nproducts = none\n",
                       NULL, NULL, 4, "write.products", "no products listed");
    /* a key that is not set: the section's line */
    assert_build_error("[pipeline]\nstages = read, reshape\n\n[reshape]\n"
                       "width = 128\n",
                       NULL, NULL, 4, "reshape.height",
                       "set both width and height");
}
END_TEST

START_TEST(test_build_contract_errors)
{
    /* facts of the config alone that the typed link carries from stage to
     * stage: each fails the build, naming the key on its line */
    assert_build_error("[pipeline]\nstages = read, reshape, kmeans\n[read]\n"
                       "mode = color\n[reshape]\nfeatures = color\n[kmeans]\n"
                       "method = optimal\n",
                       NULL, NULL, 8, "kmeans.method",
                       "reshape gives 3 (features = color)");
    assert_build_error("[pipeline]\nstages = read, reshape\n[read]\n"
                       "mode = grayscale\n[reshape]\nfeatures = color\n",
                       NULL, NULL, 6, "reshape.features",
                       "read.mode = grayscale gives one channel");
    assert_build_error("[pipeline]\nstages = read, window\n[read]\n"
                       "mode = color\n[window]\nlevel = -500\n",
                       NULL, NULL, 6, "window.level",
                       "an HU window needs CT");
    assert_build_error("[pipeline]\nstages = read\n[read]\nmode = color\n"
                       "intercept = -1024\n",
                       NULL, NULL, 5, "read.intercept",
                       "a rescale needs one channel");
    assert_build_error("[pipeline]\nstages = read, reshape, kmeans\n[reshape]\n"
                       "width = 4\nheight = 4\n[kmeans]\nk = 17\n",
                       NULL, NULL, 7, "kmeans.k",
                       "gives 16 a slice");
    assert_build_error("[pipeline]\nstages = read, reshape, kmeans, mask\n"
                       "[kmeans]\nk = 3\n[mask]\nclusters = 0, 3\n",
                       NULL, NULL, 6, "mask.clusters",
                       "rank 3 needs 4 clusters, but kmeans.k = 3");
    assert_build_error("[pipeline]\nstages = read, reshape, kmeans, mask\n"
                       "[kmeans]\nk = auto\nk_max = 4\n[mask]\nclusters = 5\n",
                       NULL, NULL, 7, "mask.clusters",
                       "kmeans.k = auto, k_max = 4");
    assert_build_error("[pipeline]\nstages = read, lung_mask, evaluate\n"
                       "[evaluate]\ntruth = masks/{name}.png\n",
                       NULL, NULL, 4, "evaluate.truth",
                       "the placeholders are {stem} and {dir}");
    assert_build_error("[pipeline]\nstages = read, denoise\n[read]\n"
                       "intercept = -1024\n[denoise]\nmethod = median\n"
                       "ksize = 7\n",
                       NULL, NULL, 7, "denoise.ksize",
                       "median above 5 takes 8-bit images only");
    assert_build_error("[pipeline]\nstages = read, denoise\n[read]\n"
                       "slope = 1\n[denoise]\nmethod = nlmeans\n",
                       NULL, NULL, 6, "denoise.method",
                       "nlmeans takes 8- or 16-bit unsigned images");
    /* k = 1 segments nothing: refused, naming the key's line */
    assert_build_error("[pipeline]\nstages = read, reshape, kmeans, mask\n"
                       "[kmeans]\nk = 1\n[mask]\nclusters = brightest\n",
                       NULL, NULL, 4, "kmeans.k",
                       "k = 1 puts every sample in one cluster");
}
END_TEST

START_TEST(test_build_hooks)
{
    /* commands find stages by their hooks: the clustering stage, and the
     * products of every stage that writes */
    kms_pipeline pl;
    kms_error err;
    char path[4096];
    ck_assert_int_eq(kt_build_text("[pipeline]\nstages = read, reshape, "
                                   "kmeans, recolor, write\n[write]\n"
                                   "products = labels, recolor\n",
                                   NULL, &pl, &err, path, sizeof path),
                     KMS_OK);
    ck_assert_uint_eq(kms_pipeline_clustering(&pl), 2);
    ck_assert_ptr_nonnull(pl.stages[2].cls->clustering->cluster);
    char names[4][KMS_PRODUCT_NAME_MAX];
    /* in the order they are written, whatever the list's */
    ck_assert_int_eq(kms_pipeline_products(&pl, "a/x.png", "x", names, 4), 2);
    ck_assert_str_eq(names[0], "x_recolor.png");
    ck_assert_str_eq(names[1], "x_labels.png");
    ck_assert_int_eq(kms_pipeline_products(&pl, "v.nii.gz", "v", names, 4), 2);
    ck_assert_str_eq(names[1], "v_labels.nii.gz");
    ck_assert_int_eq(kms_pipeline_products(&pl, "a/x.png", "x", names, 1), 1);
    kms_pipeline_free(&pl);
    ck_assert_int_eq(kt_build_text("[pipeline]\nstages = read, lung_mask\n",
                                   NULL, &pl, &err, path, sizeof path),
                     KMS_OK);
    ck_assert_uint_eq(kms_pipeline_clustering(&pl), pl.n_stages);
    ck_assert_int_eq(kms_pipeline_products(&pl, "a/x.png", "x", names, 4), 0);
    kms_pipeline_free(&pl);
}
END_TEST

START_TEST(test_build_override_errors)
{
    static const char text[] =
        "[pipeline]\nstages = read, reshape, kmeans\n[kmeans]\nk = 2\n";
    static const char *const kay[] = {"kmeans.kay=3", NULL};
    assert_build_error(text, kay, KMS_CONFIG_CMDLINE, 0, "-s kmeans.kay",
                       "unknown key");
    static const char *const k0[] = {"kmeans.k=0", NULL};
    assert_build_error(text, k0, KMS_CONFIG_CMDLINE, 0, "-s kmeans.k",
                       "0 is out of range [1, 255]");
    static const char *const section[] = {"kmean.k=3", NULL};
    assert_build_error(text, section, KMS_CONFIG_CMDLINE, 0, "-s kmean.k",
                       "unknown section [kmean]");
    /* the -s value replaced the file's: the file line is no longer named */
    static const char *const stages[] = {"pipeline.stages=read, bogus", NULL};
    assert_build_error(text, stages, KMS_CONFIG_CMDLINE, 0, "-s pipeline.stages",
                       "unknown stage 'bogus'");
}
END_TEST

START_TEST(test_build_override_link_error)
{
    /* Regression test (fixed): pipeline/pipeline.c:177 (link_stages) names a key set with -s
     * as "denoise.ksize" (file "command line", line 0) while every other
     * -s error (locate(), pipeline.c:32) names it "-s denoise.ksize". The
     * same override gets two spellings depending on which check fails. */
    static const char text[] =
        "[pipeline]\nstages = read, denoise\n[denoise]\nmethod = median\n";
    static const char *const ov[] = {"denoise.ksize=4", NULL};
    assert_build_error(text, ov, KMS_CONFIG_CMDLINE, 0, "-s denoise.ksize",
                       "must be odd");
}
END_TEST

/* ==== inputs.c =========================================================== */

/* kt_tmpdir/imgs: images in a scrambled order, plus things that are not */
static void make_image_folder(void)
{
    kt_make_dir("imgs");
    kt_touch("imgs/b.png", "b");
    kt_touch("imgs/a.tif", "a");
    kt_touch("imgs/notes.txt", "not an image");
    kt_touch("imgs/.hidden.png", "hidden");
    kt_touch("imgs/d.JPG", "d");
    kt_touch("imgs/e.nii.gz", "e");
    kt_touch("imgs/c.png.bak", "backup");
    kt_make_dir("imgs/sub");
    kt_touch("imgs/sub/z.png", "z");
}

/* The list spec (relative to kt_tmpdir) gives: the call must succeed, with
 * n items. */
static kms_input_list spec_list(const char *spec, bool recursive, size_t n)
{
    kms_input_list list = {0};
    list.recursive = recursive;
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_inputs_add_spec(&list, spec, kt_tmpdir, &err), KMS_OK);
    ck_assert_uint_eq(list.n, n);
    return list;
}

/* The list a comma-separated text of paths gives, with no base folder: the
 * call must succeed, with n items. */
static kms_input_list text_list(const char *text, size_t n)
{
    kms_input_list list = {0};
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_inputs_add_list(&list, text, NULL, &err), KMS_OK);
    ck_assert_uint_eq(list.n, n);
    return list;
}

/* An item's status: KMS_OK unless its spec failed. */
static kms_status item_status(const kms_input *it)
{
    if (!it->error)
        return KMS_OK;
    ck_assert_int_ne(it->error->code, KMS_OK); /* an error record is an error */
    return it->error->code;
}

static const kms_error *item_error(const kms_input *it)
{
    ck_assert_ptr_nonnull(it->error);
    return it->error;
}

static void assert_item(const kms_input_list *list, size_t i, const char *rel,
                        const char *stem)
{
    char path[4096];
    ck_assert_uint_lt(i, list->n);
    ck_assert_str_eq(list->items[i].path, kt_tmp_path(path, sizeof path, rel));
    ck_assert_str_eq(list->items[i].stem, stem);
    ck_assert_int_eq(item_status(&list->items[i]), KMS_OK);
}

START_TEST(test_inputs_folder)
{
    make_image_folder();
    kms_input_list list = {0};
    kms_error err;
    kms_error_clear(&err);
    char dir[4096];
    ck_assert_int_eq(kms_inputs_add_spec(&list,
                                         kt_tmp_path(dir, sizeof dir, "imgs"),
                                         NULL, &err),
                     KMS_OK);
    ck_assert_uint_eq(list.n, 4);
    assert_item(&list, 0, "imgs/a.tif", "a");
    assert_item(&list, 1, "imgs/b.png", "b");
    assert_item(&list, 2, "imgs/d.JPG", "d");
    assert_item(&list, 3, "imgs/e.nii.gz", "e");
    kms_inputs_free(&list);
    ck_assert_ptr_null(list.items);
    ck_assert_uint_eq(list.n, 0);
}
END_TEST

START_TEST(test_inputs_folder_relative_to_base)
{
    make_image_folder();
    /* a trailing slash does not double up */
    kms_input_list list = spec_list("imgs/", false, 4);
    char expected[4096];
    snprintf(expected, sizeof expected, "%s/imgs/a.tif", kt_tmpdir);
    ck_assert_str_eq(list.items[0].path, expected);
    kms_inputs_free(&list);
}
END_TEST

START_TEST(test_inputs_glob)
{
    make_image_folder();
    kt_touch("imgs/a.png", "a");
    kms_input_list list = {0};
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_inputs_add_spec(&list, "imgs/*.png", kt_tmpdir, &err),
                     KMS_OK);
    ck_assert_uint_eq(list.n, 2); /* not .hidden.png, not sub/z.png */
    assert_item(&list, 0, "imgs/a.png", "a");
    assert_item(&list, 1, "imgs/b.png", "b");
    /* a glob may match folders: they are skipped */
    ck_assert_int_eq(kms_inputs_add_spec(&list, "imgs/*", kt_tmpdir, &err),
                     KMS_OK);
    ck_assert_uint_eq(list.n, 2 + 7); /* all files but the hidden; not sub/ */
    for (size_t i = 2; i < list.n; i++)
        ck_assert(!contains(list.items[i].path, "/sub"));
    ck_assert_int_eq(
        kms_inputs_add_spec(&list, "imgs/*/*.png", kt_tmpdir, &err), KMS_OK);
    ck_assert_uint_eq(list.n, 10);
    assert_item(&list, 9, "imgs/sub/z.png", "z");
    kms_inputs_free(&list);
}
END_TEST

START_TEST(test_inputs_empty_folder)
{
    kt_make_dir("empty");
    kt_touch("empty/readme.txt", "no images here");
    kms_input_list list = {0};
    kms_error err;
    kms_error_clear(&err);
    char dir[4096];
    kt_tmp_path(dir, sizeof dir, "empty");
    ck_assert_int_eq(kms_inputs_add_spec(&list, dir, NULL, &err), KMS_OK);
    ck_assert_int_eq(err.code, KMS_OK); /* the item fails, not the call */
    ck_assert_uint_eq(list.n, 1);
    ck_assert_str_eq(list.items[0].path, dir);
    ck_assert_int_eq(item_status(&list.items[0]), KMS_ERR_INPUT);
    ck_assert_str_eq(item_error(&list.items[0])->file, dir);
    ck_assert(contains(item_error(&list.items[0])->message, "no images"));
    kms_inputs_free(&list);
}
END_TEST

START_TEST(test_inputs_glob_no_match)
{
    kms_input_list list = {0};
    kms_error err;
    kms_error_clear(&err);
    char pattern[4096];
    kt_tmp_path(pattern, sizeof pattern, "*.png");
    ck_assert_int_eq(kms_inputs_add_spec(&list, pattern, NULL, &err), KMS_OK);
    ck_assert_uint_eq(list.n, 1);
    ck_assert_str_eq(list.items[0].path, pattern);
    ck_assert_int_ne(item_status(&list.items[0]), KMS_OK);
    ck_assert_int_eq(item_status(&list.items[0]), KMS_ERR_IO);
    ck_assert_str_eq(item_error(&list.items[0])->file, pattern);
    ck_assert_str_eq(item_error(&list.items[0])->message, "no file matches this pattern");
    kms_inputs_free(&list);
}
END_TEST

START_TEST(test_inputs_missing_file)
{
    /* a plain path is kept as is: reading it later gives the real error */
    kms_input_list list = {0};
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(
        kms_inputs_add_spec(&list, "/no/such/file.png", kt_tmpdir, &err),
        KMS_OK);
    ck_assert_uint_eq(list.n, 1);
    ck_assert_str_eq(list.items[0].path, "/no/such/file.png");
    ck_assert_str_eq(list.items[0].stem, "file");
    ck_assert_int_eq(item_status(&list.items[0]), KMS_OK);
    kms_inputs_free(&list);
}
END_TEST

START_TEST(test_inputs_list)
{
    make_image_folder();
    kms_input_list list = {0};
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_inputs_add_list(&list, "  imgs/b.png , imgs/a.tif,, ",
                                         kt_tmpdir, &err),
                     KMS_OK);
    ck_assert_uint_eq(list.n, 2);
    assert_item(&list, 0, "imgs/b.png", "b"); /* the order given */
    assert_item(&list, 1, "imgs/a.tif", "a");
    ck_assert_int_eq(kms_inputs_add_list(&list, "", kt_tmpdir, &err), KMS_OK);
    ck_assert_uint_eq(list.n, 2);
    ck_assert_int_eq(kms_inputs_add_list(&list, "imgs", kt_tmpdir, &err),
                     KMS_OK);
    ck_assert_uint_eq(list.n, 6);
    kms_inputs_free(&list);
}
END_TEST

START_TEST(test_inputs_many)
{
    /* more than the initial capacity, still sorted */
    kt_make_dir("many");
    for (int i = 99; i >= 0; i--) {
        char rel[64];
        snprintf(rel, sizeof rel, "many/img_%03d.png", i);
        kt_touch(rel, "x");
    }
    kms_input_list list = spec_list("many", false, 100);
    for (int i = 0; i < 100; i++) {
        char stem[64];
        snprintf(stem, sizeof stem, "img_%03d", i);
        ck_assert_str_eq(list.items[i].stem, stem);
    }
    kms_inputs_free(&list);
}
END_TEST

static const char *const stem_cases[][2] = {
    {"a/b/x.png", "x"},        {"v.nii.gz", "v"},
    {"dir/V.NII.GZ", "V"},     {"scan.nii", "scan"},
    {"x.tar.gz", "x.tar"},     {"noext", "noext"},
    {"/abs/y.tif", "y"},       {"a.b/c", "c"},
    {".hidden", ".hidden"},    {"d/.hidden.png", ".hidden"},
    {"ID_0000_Z_0142.png", "ID_0000_Z_0142"},
};

START_TEST(test_input_stem)
{
    char stem[256];
    memset(stem, '#', sizeof stem);
    kms_input_stem(stem_cases[_i][0], stem, sizeof stem);
    ck_assert_str_eq(stem, stem_cases[_i][1]);
}
END_TEST

START_TEST(test_input_stem_truncates)
{
    char stem[4];
    kms_input_stem("dir/abcdef.png", stem, sizeof stem);
    ck_assert_str_eq(stem, "abc");
}
END_TEST

START_TEST(test_inputs_duplicate_stems)
{
    kms_input_list list =
        text_list("a/x.png, b/x.tif, c/y.png, d/x.nii.gz, e/y.bmp", 5);
    kms_inputs_check_stems(&list);
    ck_assert_int_eq(item_status(&list.items[0]), KMS_OK);
    ck_assert_int_eq(item_status(&list.items[2]), KMS_OK);
    static const size_t dup[] = {1, 3, 4};
    static const char *const first[] = {"a/x.png", "a/x.png", "c/y.png"};
    for (size_t i = 0; i < 3; i++) {
        const kms_input *it = &list.items[dup[i]];
        ck_assert_int_eq(item_status(it), KMS_ERR_INPUT);
        ck_assert_str_eq(item_error(it)->file, it->path);
        ck_assert_msg(contains(item_error(it)->message, first[i]),
                      "'%s' does not name %s", item_error(it)->message, first[i]);
    }
    kms_inputs_free(&list);
}
END_TEST

START_TEST(test_inputs_failed_items_not_duplicates)
{
    /* an item that already failed neither is nor causes a duplicate */
    kms_input_list list = {0};
    kms_error err;
    kms_error_clear(&err);
    char p1[4096], p2[4096];
    kt_tmp_path(p1, sizeof p1, "x*.png");
    kt_tmp_path(p2, sizeof p2, "other/x*.png");
    ck_assert_int_eq(kms_inputs_add_spec(&list, p1, NULL, &err), KMS_OK);
    ck_assert_int_eq(kms_inputs_add_spec(&list, p2, NULL, &err), KMS_OK);
    ck_assert_uint_eq(list.n, 2);
    ck_assert_str_eq(list.items[0].stem, list.items[1].stem);
    kms_inputs_check_stems(&list);
    for (size_t i = 0; i < 2; i++) {
        ck_assert_int_eq(item_status(&list.items[i]), KMS_ERR_IO);
        ck_assert_str_eq(item_error(&list.items[i])->message,
                         "no file matches this pattern");
    }
    kms_inputs_free(&list);
    kms_inputs_free(&list); /* empty: no-op */
    kms_inputs_free(NULL);
}
END_TEST

START_TEST(test_inputs_folder_skips_subfolders)
{
    /* a sub-folder whose name looks like an image is not an input */
    kt_make_dir("imgs");
    kt_touch("imgs/a.png", "a");
    kt_make_dir("imgs/old.png");
    kms_input_list list = spec_list("imgs", false, 1);
    assert_item(&list, 0, "imgs/a.png", "a");
    kms_inputs_free(&list);
}
END_TEST

START_TEST(test_inputs_recursive)
{
    make_image_folder();
    kt_make_dir("imgs/sub/deeper");
    kt_touch("imgs/sub/deeper/y.tif", "y");
    kt_make_dir("imgs/.git");
    kt_touch("imgs/.git/h.png", "hidden folder");
    /* full paths, sorted; hidden files and folders left out; stems keep
     * the subfolder (products mirror the tree) */
    kms_input_list list = spec_list("imgs", true, 6);
    assert_item(&list, 0, "imgs/a.tif", "a");
    assert_item(&list, 1, "imgs/b.png", "b");
    assert_item(&list, 2, "imgs/d.JPG", "d");
    assert_item(&list, 3, "imgs/e.nii.gz", "e");
    assert_item(&list, 4, "imgs/sub/deeper/y.tif", "sub/deeper/y");
    assert_item(&list, 5, "imgs/sub/z.png", "sub/z");
    kms_inputs_free(&list);

    /* an empty tree is one failed item */
    kt_make_dir("bare");
    kt_make_dir("bare/sub");
    kms_input_list empty = spec_list("bare", true, 1);
    ck_assert_int_eq(item_status(&empty.items[0]), KMS_ERR_INPUT);
    kms_inputs_free(&empty);
}
END_TEST

START_TEST(test_inputs_recursive_symlink_loop)
{
    /* Regression test (fixed): pipeline/inputs.c:125-129 (scan_folder) follows symlinked folders
     * with stat() and keeps no record of the folders it has been in, so a
     * link back to a parent (imgs/loop -> ..) is walked until the path no
     * longer fits in 4096 bytes: imgs/a.png is listed ~40 times (all but
     * one then fail as duplicate names). Fix: skip symlinked folders
     * (lstat), or remember (st_dev, st_ino) of visited folders. */
    kt_make_dir("imgs");
    kt_touch("imgs/a.png", "a");
    char link_path[4096];
    ck_assert_int_eq(
        symlink("..", kt_tmp_path(link_path, sizeof link_path, "imgs/loop")),
        0);
    kms_input_list list = spec_list("imgs", true, 1);
    assert_item(&list, 0, "imgs/a.png", "a");
    kms_inputs_free(&list);
}
END_TEST

START_TEST(test_inputs_list_file)
{
    make_image_folder();
    kt_make_dir("lists");
    kt_touch("lists/batch.txt", "# the slices to run\n"
                                "\n"
                                "  ../imgs/b.png  \n"
                                "../imgs/*.tif\n"
                                "missing.png\n");
    /* the list's own path is relative to base_dir, its lines to its folder */
    kms_input_list list = spec_list("@lists/batch.txt", false, 3);
    assert_item(&list, 0, "lists/../imgs/b.png", "b");
    assert_item(&list, 1, "lists/../imgs/a.tif", "a");
    assert_item(&list, 2, "lists/missing.png", "missing");
    kms_inputs_free(&list);
}
END_TEST

START_TEST(test_inputs_list_file_missing)
{
    kms_input_list list = {0};
    kms_error err;
    kms_error_clear(&err);
    char path[4096];
    kt_tmp_path(path, sizeof path, "nope.txt");
    ck_assert_int_eq(kms_inputs_add_spec(&list, "@nope.txt", kt_tmpdir, &err),
                     KMS_ERR_IO);
    ck_assert_int_eq(err.code, KMS_ERR_IO);
    ck_assert_str_eq(err.file, path);
    ck_assert(contains(err.message, "cannot open input list"));
    kms_inputs_free(&list);
}
END_TEST

START_TEST(test_inputs_list_file_empty)
{
    /* Regression test (fixed): pipeline/inputs.c:181-211 (add_list_file) adds nothing for a list
     * file with no specs (empty, or only comments), and no failed item
     * either, against inputs.h's rule that "a spec that yields nothing is
     * an item of its own that fails, so it shows up in summary.csv instead
     * of vanishing". Fix: if the list added no items, push the list path
     * with a KMS_ERR_INPUT "input list has no entries" error, as add_folder
     * does for an empty folder. */
    kt_touch("empty.txt", "# nothing yet\n\n");
    kms_input_list list = spec_list("@empty.txt", false, 1);
    ck_assert_int_eq(item_status(&list.items[0]), KMS_ERR_INPUT);
    kms_inputs_free(&list);
}
END_TEST

START_TEST(test_inputs_glob_only_folders)
{
    /* Regression test (fixed): pipeline/inputs.c:233-236 (add_glob) skips the folders a pattern
     * matches, and when it matched only folders the spec adds nothing and
     * no failed item, so it vanishes, against inputs.h's "a spec that
     * yields nothing is an item of its own that fails". Fix: count the
     * pushed items and, if none, push the pattern with an error ("matches
     * only folders"), as for GLOB_NOMATCH. */
    make_image_folder();
    kms_input_list list = spec_list("imgs/s?b", false, 1);
    ck_assert_int_ne(item_status(&list.items[0]), KMS_OK);
    kms_inputs_free(&list);
}
END_TEST

START_TEST(test_inputs_list_file_cycle)
{
    /* Regression test (fixed): pipeline/inputs.c:206 (add_list_file) has no guard against a
     * list that names itself (or a cycle of lists): add_spec and
     * add_list_file recurse until the stack overflows and kmseg dies with
     * SIGSEGV. Fix: cap the nesting depth (e.g. 16) or remember the
     * (st_dev, st_ino) of the list files being read, and fail with
     * KMS_ERR_INPUT naming the list. Expected here: the call returns, with
     * an error, either for the call or as a failed item. */
    kt_touch("self.txt", "a.png\n@self.txt\n");
    kt_touch("a.png", "a");
    kms_input_list list = {0};
    kms_error err;
    kms_error_clear(&err);
    kms_status st = kms_inputs_add_spec(&list, "@self.txt", kt_tmpdir, &err);
    bool failed_item = false;
    for (size_t i = 0; i < list.n; i++)
        failed_item |= item_status(&list.items[i]) != KMS_OK;
    ck_assert(st != KMS_OK || failed_item);
    kms_inputs_free(&list);
}
END_TEST

START_TEST(test_inputs_shard)
{
    static const char seven[] =
        "s0.png, s1.png, s2.png, s3.png, s4.png, s5.png, s6.png";
    kms_input_list list = text_list(seven, 7);
    kms_inputs_keep_shard(&list, 1, 3);
    ck_assert_uint_eq(list.n, 2);
    ck_assert_str_eq(list.items[0].path, "s1.png");
    ck_assert_str_eq(list.items[1].path, "s4.png");
    kms_inputs_free(&list);

    /* the shards of a list are disjoint and cover it */
    kms_error err;
    kms_error_clear(&err);
    int seen[7] = {0};
    for (int shard = 0; shard < 3; shard++) {
        kms_input_list l = {0};
        ck_assert_int_eq(kms_inputs_add_list(&l, seven, NULL, &err), KMS_OK);
        kms_inputs_keep_shard(&l, shard, 3);
        for (size_t i = 0; i < l.n; i++)
            seen[l.items[i].path[1] - '0']++;
        kms_inputs_free(&l);
    }
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(seen[i], 1);

    /* 1 shard keeps everything */
    kms_input_list all = {0};
    ck_assert_int_eq(kms_inputs_add_list(&all, "a.png, b.png", NULL, &err), KMS_OK);
    kms_inputs_keep_shard(&all, 0, 1);
    ck_assert_uint_eq(all.n, 2);
    kms_inputs_free(&all);
}
END_TEST

/* ==== output.c =========================================================== */

START_TEST(test_output_write_bytes)
{
    static const unsigned char data[] = {0x89, 'P', 'N', 'G', 0, '\n', 0xff, 7};
    kms_error err;
    kms_error_clear(&err);
    mode_t old = umask(022);
    ck_assert_int_eq(kms_output_prepare_dir(kt_tmpdir, &err), KMS_OK);
    ck_assert_int_eq(kms_output_write(kt_tmpdir, "x_labels.png", data,
                                      sizeof data, NULL, &err),
                     KMS_OK);
    umask(old);
    char path[4096];
    size_t len;
    char *back =
        kt_read_file(kt_tmp_path(path, sizeof path, "x_labels.png"), &len);
    ck_assert_uint_eq(len, sizeof data);
    ck_assert_int_eq(memcmp(back, data, sizeof data), 0);
    free(back);
    ck_assert_int_eq(kt_count_entries(kt_tmpdir, ".tmp-"), 0);
    /* an ordinary file, not mkstemp's 0600 */
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0644);
}
END_TEST

/* kms_png_encode8: grey (masks: filter none, Z_RLE) and palette (overlays:
 * filter sub or none, Huffman or stored) PNGs that OpenCV decodes to the
 * pixels given, the same bytes every time; the rows given to zlib in one
 * call make the stream a call per row makes. */
START_TEST(test_png_encode8_round_trip)
{
    enum { W = 37, H = 23 };
    static const uint8_t palette[3 * 3] = {0, 0, 0, 230, 159, 0, 86, 180, 233};
    kms_error err;
    kms_error_clear(&err);
    kms_image img = {0}, back = {0};
    ck_assert_int_eq(kms_image_alloc(&img, W, H, 1, KMS_DEPTH_U8, &err), KMS_OK);
    for (int y = 0; y < H; y++) {
        uint8_t *r = kms_image_row(&img, y);
        for (int x = 0; x < W; x++)
            r[x] = (uint8_t)((x * 7 + y * 3) % 11 < 5 ? 0 : x % 3);
    }
    static const struct { int n, filter, level, strategy; } cases[] = {
        {0, 0, 1, Z_RLE}, {3, 1, 1, Z_HUFFMAN_ONLY}, {3, 0, 0, Z_DEFAULT_STRATEGY},
        {3, 1, 0, Z_DEFAULT_STRATEGY}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        unsigned char *a = NULL, *b = NULL;
        size_t la = 0, lb = 0;
        ck_assert_int_eq(kms_png_encode8(&img, palette, cases[c].n, cases[c].filter,
                                         cases[c].level, cases[c].strategy, &a,
                                         &la, &err),
                         KMS_OK);
        ck_assert_int_eq(kms_png_encode8(&img, palette, cases[c].n, cases[c].filter,
                                         cases[c].level, cases[c].strategy, &b,
                                         &lb, &err),
                         KMS_OK);
        ck_assert_uint_eq(la, lb);
        ck_assert_int_eq(memcmp(a, b, la), 0);
        ck_assert_int_eq(a[25], cases[c].n ? 3 : 0); /* IHDR colour type */
        ck_assert_int_eq(kms_cv_imdecode(a, la, KMS_CV_IMREAD_UNCHANGED, "png",
                                         &back, &err),
                         KMS_OK);
        ck_assert_int_eq(back.width, W);
        ck_assert_int_eq(back.height, H);
        ck_assert_int_eq(back.channels, cases[c].n ? 3 : 1);
        for (int y = 0; y < H; y++) {
            const uint8_t *r = kms_image_row(&img, y), *o = kms_image_row(&back, y);
            for (int x = 0; x < W; x++) {
                if (!cases[c].n) {
                    ck_assert_int_eq(o[x], r[x]);
                    continue;
                }
                for (int ch = 0; ch < 3; ch++) /* BGR of the palette's RGB */
                    ck_assert_int_eq(o[3 * x + ch], palette[3 * r[x] + 2 - ch]);
            }
        }
        if (c == 0) { /* the mask's stream, fed to zlib a row at a time */
            unsigned char z[4096];
            z_stream s;
            memset(&s, 0, sizeof s);
            ck_assert_int_eq(deflateInit2(&s, 1, Z_DEFLATED, 15, 8, Z_RLE), Z_OK);
            s.next_out = z;
            s.avail_out = sizeof z;
            static const Bytef none = 0;
            for (int y = 0; y < H; y++) {
                s.next_in = (Bytef *)&none;
                s.avail_in = 1;
                ck_assert_int_eq(deflate(&s, Z_NO_FLUSH), Z_OK);
                s.next_in = kms_image_row(&img, y);
                s.avail_in = W;
                ck_assert_int_eq(deflate(&s, Z_NO_FLUSH), Z_OK);
            }
            ck_assert_int_eq(deflate(&s, Z_FINISH), Z_STREAM_END);
            size_t n = s.total_out;
            deflateEnd(&s);
            /* IDAT's data: after the signature (8), IHDR (25), IDAT's head (8) */
            ck_assert_uint_eq(la, 8 + 25 + 12 + n + 12);
            ck_assert_int_eq(memcmp(a + 8 + 25 + 8, z, n), 0);
        }
        kms_image_free(&back);
        free(a);
        free(b);
    }
    kms_image_free(&img);
}
END_TEST

START_TEST(test_output_write_replaces)
{
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(
        kms_output_write(kt_tmpdir, "s.csv", "first, longer\n", 14, NULL, &err),
        KMS_OK);
    ck_assert_int_eq(
        kms_output_write(kt_tmpdir, "s.csv", "2nd\n", 4, NULL, &err), KMS_OK);
    char path[4096];
    size_t len;
    char *back = kt_read_file(kt_tmp_path(path, sizeof path, "s.csv"), &len);
    ck_assert_str_eq(back, "2nd\n");
    free(back);
    /* an empty product is a file of 0 bytes */
    ck_assert_int_eq(kms_output_write(kt_tmpdir, "empty", "", 0, NULL, &err),
                     KMS_OK);
    back = kt_read_file(kt_tmp_path(path, sizeof path, "empty"), &len);
    ck_assert_uint_eq(len, 0);
    free(back);
    ck_assert_int_eq(kt_count_entries(kt_tmpdir, ".tmp-"), 0);
}
END_TEST

/* A protect set of the given paths. */
static kms_file_set protect_set(const char *const *paths, size_t n)
{
    kms_file_set set = {0};
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_file_set_build(&set, paths, n, &err), KMS_OK);
    return set;
}

START_TEST(test_file_set)
{
    kt_touch("a.png", "a");
    kt_touch("b.png", "b");
    kt_touch("c.png", "c");
    char a[4096], b[4096], c[4096], missing[4096], alias[4096];
    kt_tmp_path(a, sizeof a, "a.png");
    kt_tmp_path(b, sizeof b, "b.png");
    kt_tmp_path(c, sizeof c, "c.png");
    kt_tmp_path(missing, sizeof missing, "missing.png");
    kt_tmp_path(alias, sizeof alias, "./a.png");
    const char *const paths[] = {b, missing, a};
    kms_file_set set = protect_set(paths, 3);
    ck_assert_uint_eq(set.n, 2); /* the missing path is skipped */
    ck_assert(kms_file_set_contains(&set, a));
    ck_assert(kms_file_set_contains(&set, b));
    ck_assert(kms_file_set_contains(&set, alias)); /* same inode */
    ck_assert(!kms_file_set_contains(&set, c));
    ck_assert(!kms_file_set_contains(&set, missing));
    ck_assert(!kms_file_set_contains(NULL, a));
    /* a hard link is the same file */
    char link_path[4096];
    kt_tmp_path(link_path, sizeof link_path, "link.png");
    ck_assert_int_eq(link(c, link_path), 0);
    const char *const one[] = {link_path};
    kms_file_set by_link = protect_set(one, 1);
    ck_assert(kms_file_set_contains(&by_link, c));
    kms_file_set_free(&by_link);
    kms_file_set_free(&set);
    ck_assert_ptr_null(set.ids);
    ck_assert_uint_eq(set.n, 0);
    kms_file_set_free(&set);
    kms_file_set_free(NULL);
    kms_file_set empty = protect_set(NULL, 0);
    ck_assert_uint_eq(empty.n, 0);
    ck_assert(!kms_file_set_contains(&empty, a));
    kms_file_set_free(&empty);
}
END_TEST

START_TEST(test_output_protect)
{
    kt_touch("ID_1.png", "ORIGINAL INPUT");
    char input[4096];
    kt_tmp_path(input, sizeof input, "ID_1.png");
    const char *const paths[] = {input};
    kms_file_set set = protect_set(paths, 1);
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(
        kms_output_write(kt_tmpdir, "ID_1.png", "PRODUCT", 7, &set, &err),
        KMS_ERR_IO);
    ck_assert_int_eq(err.code, KMS_ERR_IO);
    ck_assert_str_eq(err.file, input);
    ck_assert(contains(err.message, "refusing to overwrite the input"));
    size_t len;
    char *back = kt_read_file(input, &len);
    ck_assert_str_eq(back, "ORIGINAL INPUT");
    free(back);
    ck_assert_int_eq(kt_count_entries(kt_tmpdir, ".tmp-"), 0);
    /* another name next to the input is fine */
    ck_assert_int_eq(
        kms_output_write(kt_tmpdir, "ID_1_recolor.png", "P", 1, &set, &err),
        KMS_OK);
    kms_file_set_free(&set);
}
END_TEST

START_TEST(test_output_protect_other_folder)
{
    /* the output folder is reached through another path (a symlink) than
     * the input: the file is still recognised */
    kt_make_dir("in");
    kt_touch("in/x.png", "INPUT");
    char input[4096], link_dir[4096];
    kt_tmp_path(input, sizeof input, "in/x.png");
    kt_tmp_path(link_dir, sizeof link_dir, "out");
    char target[4096];
    ck_assert_int_eq(
        symlink(kt_tmp_path(target, sizeof target, "in"), link_dir), 0);
    const char *const paths[] = {input};
    kms_file_set set = protect_set(paths, 1);
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_output_write(link_dir, "x.png", "PRODUCT", 7, &set, &err),
                     KMS_ERR_IO);
    size_t len;
    char *back = kt_read_file(input, &len);
    ck_assert_str_eq(back, "INPUT");
    free(back);
    kms_file_set_free(&set);
}
END_TEST

START_TEST(test_output_write_missing_dir)
{
    char dir[1024], path[2048];
    kt_tmp_path(dir, sizeof dir, "missing");
    snprintf(path, sizeof path, "%s/p.png", dir);
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_output_write(dir, "p.png", "x", 1, NULL, &err),
                     KMS_ERR_IO);
    ck_assert_str_eq(err.file, path);
    ck_assert(contains(err.message, "cannot write"));
    ck_assert_int_eq(kt_count_entries(kt_tmpdir, ".tmp-"), 0);
}
END_TEST

START_TEST(test_output_write_over_folder)
{
    /* the target is a folder: rename fails and the temporary is removed */
    kt_make_dir("taken.png");
    kms_error err;
    kms_error_clear(&err);
    char path[4096];
    ck_assert_int_eq(
        kms_output_write(kt_tmpdir, "taken.png", "x", 1, NULL, &err),
        KMS_ERR_IO);
    ck_assert_str_eq(err.file, kt_tmp_path(path, sizeof path, "taken.png"));
    ck_assert_int_eq(kt_count_entries(kt_tmpdir, ".tmp-"), 0);
}
END_TEST

START_TEST(test_prepare_dir_nested)
{
    char dir[4096];
    kt_tmp_path(dir, sizeof dir, "out/a/b/c");
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_output_prepare_dir(dir, &err), KMS_OK);
    struct stat sb;
    ck_assert_int_eq(stat(dir, &sb), 0);
    ck_assert(S_ISDIR(sb.st_mode));
    /* again: existing folders are fine, with or without a trailing slash */
    ck_assert_int_eq(kms_output_prepare_dir(dir, &err), KMS_OK);
    strcat(dir, "/");
    ck_assert_int_eq(kms_output_prepare_dir(dir, &err), KMS_OK);
    ck_assert_int_eq(err.code, KMS_OK);
}
END_TEST

START_TEST(test_prepare_dir_relative)
{
    ck_assert_int_eq(chdir(kt_tmpdir), 0);
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_output_prepare_dir("rel/out", &err), KMS_OK);
    struct stat sb;
    char path[4096];
    ck_assert_int_eq(stat(kt_tmp_path(path, sizeof path, "rel/out"), &sb), 0);
    ck_assert(S_ISDIR(sb.st_mode));
}
END_TEST

START_TEST(test_prepare_dir_parent_is_file)
{
    kt_touch("file", "a regular file");
    char dir[4096];
    kt_tmp_path(dir, sizeof dir, "file/sub/out");
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_output_prepare_dir(dir, &err), KMS_ERR_IO);
    ck_assert_int_eq(err.code, KMS_ERR_IO);
    ck_assert_str_eq(err.file, dir);
    ck_assert(contains(err.message, "cannot create output folder"));
}
END_TEST

START_TEST(test_prepare_dir_is_file)
{
    kt_touch("plain", "a regular file");
    char dir[4096];
    kt_tmp_path(dir, sizeof dir, "plain");
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_output_prepare_dir(dir, &err), KMS_ERR_IO);
    ck_assert_str_eq(err.file, dir);
    ck_assert_str_eq(err.message, "output is not a folder");
}
END_TEST

START_TEST(test_prepare_dir_empty)
{
    /* An empty output folder (`output =` in a config in the current folder,
     * or -o "") is a config error, found before any path is walked. */
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_output_prepare_dir("", &err), KMS_ERR_CONFIG);
    ck_assert_str_eq(err.key, "pipeline.output");
}
END_TEST

START_TEST(test_path_join)
{
    char buf[64];
    kms_path_join(buf, sizeof buf, "", "x.png");
    ck_assert_str_eq(buf, "x.png");
    kms_path_join(buf, sizeof buf, ".", "x.png");
    ck_assert_str_eq(buf, "x.png");
    kms_path_join(buf, sizeof buf, "out", "x.png");
    ck_assert_str_eq(buf, "out/x.png");
    kms_path_join(buf, sizeof buf, "out/", "x.png");
    ck_assert_str_eq(buf, "out/x.png");
    kms_path_join(buf, sizeof buf, "/", "x.png");
    ck_assert_str_eq(buf, "/x.png");
    kms_path_join(buf, sizeof buf, "out", "/abs/x.png");
    ck_assert_str_eq(buf, "/abs/x.png");
    char small[6];
    kms_path_join(small, sizeof small, "out", "x.png");
    ck_assert_str_eq(small, "out/x");
}
END_TEST

START_TEST(test_now_ms_monotonic)
{
    double a = kms_now_ms();
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    double b = kms_now_ms();
    ck_assert_double_gt(a, 0);
    ck_assert_double_ge(b - a, 19.0);
    ck_assert_double_lt(b - a, 10000.0);
}
END_TEST

/* --resume: the journal's rows replace the summary's, a torn last record
 * (a kill mid-write) is dropped, and end stops before it. */
START_TEST(test_summary_index_journal)
{
    static const char complete[] = KMS_SUMMARY_HEADER "\n"
                                   "b,error,,,,,,,,,,bad,,\n"
                                   "c,ok,1,1,,,,,,,,,,1\n";
    char summary[4096], journal[4096];
    kt_write_tmp("summary.csv", KMS_SUMMARY_HEADER "\na,ok,1,1,,,,,,,,,,1\n"
                 "b,ok,1,1,,,,,,,,,,1\n", summary, sizeof summary);
    kt_write_tmp("journal.csv", complete, journal, sizeof journal);
    FILE *f = fopen(journal, "a");
    ck_assert_ptr_nonnull(f);
    fputs("d,ok,5", f); /* torn */
    fclose(f);
    kms_summary_index idx = {0};
    kms_error err;
    long end = -1;
    bool ok;
    ck_assert_int_eq(kms_summary_index_add(&idx, summary, NULL, &err), KMS_OK);
    ck_assert_int_eq(kms_summary_index_add(&idx, journal, &end, &err), KMS_OK);
    ck_assert_int_eq(end, (long)strlen(complete));
    ck_assert_uint_eq(idx.n, 3);
    ck_assert_ptr_nonnull(kms_summary_index_find(&idx, "a", &ok));
    ck_assert(ok);
    ck_assert_str_eq(kms_summary_index_find(&idx, "b", &ok), "b,error,,,,,,,,,,bad,,");
    ck_assert(!ok);
    ck_assert_ptr_nonnull(kms_summary_index_find(&idx, "c", &ok));
    ck_assert(ok);
    ck_assert_ptr_null(kms_summary_index_find(&idx, "d", &ok));
    ck_assert(!ok);
    kms_summary_index_free(&idx);
    /* a header torn by the kill: nothing complete, the journal starts over */
    kt_write_tmp("torn.csv", "input,sta", journal, sizeof journal);
    ck_assert_int_eq(kms_summary_index_add(&idx, journal, &end, &err), KMS_OK);
    ck_assert_int_eq(end, 0);
    ck_assert_uint_eq(idx.n, 0);
    kms_summary_index_free(&idx);
}
END_TEST

/* Each row is written the moment it is appended (a kill -9 keeps it), but
 * rows that finish in a burst share one fdatasync, and close syncs the
 * rest when no summary follows. */
START_TEST(test_journal_group_sync)
{
    kms_journal j;
    kms_error err;
    ck_assert_int_eq(kms_journal_open(&j, kt_tmpdir, "j.csv", 0, false, &err), KMS_OK);
    char path[4096];
    kt_tmp_path(path, sizeof path, "j.csv");
    kms_row r = {.status = KMS_ROW_OK, .width = 4, .height = 4, .k = 2, .slices = 1,
                 .backend = "native"};
    char name[32];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "in%03d", i);
        r.input = name;
        kms_journal_append(&j, &r);
    }
    /* 100 rows well inside one interval: none synced yet, all written */
    ck_assert_int_eq(j.syncs, 0);
    ck_assert(j.unsynced);
    kms_summary_index idx = {0};
    long end = -1;
    ck_assert_int_eq(kms_summary_index_add(&idx, path, &end, &err), KMS_OK);
    ck_assert_uint_eq(idx.n, 100);
    kms_summary_index_free(&idx);
    /* an interval later the next row syncs all of them */
    j.synced_ms -= KMS_JOURNAL_SYNC_MS;
    kms_journal_append(&j, &r);
    ck_assert_int_eq(j.syncs, 1);
    ck_assert(!j.unsynced);
    kms_journal_append(&j, &r);
    ck_assert(j.unsynced);
    kms_journal_close(&j, kt_tmpdir, "summary.csv", false);
    ck_assert_int_eq(j.syncs, 2); /* close synced the last row */
    ck_assert_int_eq(access(path, F_OK), 0); /* no summary: the journal stays */
}
END_TEST

static Suite *pipeline_suite(void)
{
    Suite *s = suite_create("pipeline");

    TCase *params = tcase_create("Params");
    tcase_add_test(params, test_param_int);
    tcase_add_test(params, test_param_int_range);
    tcase_add_test(params, test_param_real_int_edges);
    tcase_add_test(params, test_param_double);
    tcase_add_test(params, test_param_bool);
    tcase_add_test(params, test_param_choice);
    tcase_add_test(params, test_param_flags);
    tcase_add_test(params, test_param_ratio);
    tcase_add_test(params, test_param_string);
    tcase_add_test(params, test_params_defaults);
    tcase_add_test(params, test_params_bad_default);
    tcase_add_test(params, test_stage_tables_defaults);
    tcase_add_test(params, test_param_describe);
    suite_add_tcase(s, params);

    TCase *core = tcase_create("Core");
    kt_add_tmp_fixture(core, "check_pipeline");
    tcase_add_test(core, test_build_good);
    tcase_add_test(core, test_build_sample_notebook);
    tcase_add_test(core, test_build_override_applies);
    tcase_add_test(core, test_build_stage_list_forms);
    tcase_add_test(core, test_build_unknown_stage);
    tcase_add_test(core, test_build_unknown_key);
    tcase_add_test(core, test_build_bad_value);
    tcase_add_test(core, test_build_unknown_section);
    tcase_add_test(core, test_build_missing_stages);
    tcase_add_test(core, test_build_link_errors);
    tcase_add_test(core, test_build_link_key_errors);
    tcase_add_test(core, test_build_contract_errors);
    tcase_add_test(core, test_build_hooks);
    tcase_add_test(core, test_build_override_errors);
    tcase_add_test(core, test_inputs_folder);
    tcase_add_test(core, test_inputs_folder_relative_to_base);
    tcase_add_test(core, test_inputs_glob);
    tcase_add_test(core, test_inputs_empty_folder);
    tcase_add_test(core, test_inputs_glob_no_match);
    tcase_add_test(core, test_inputs_missing_file);
    tcase_add_test(core, test_inputs_list);
    tcase_add_loop_test(core, test_input_stem, 0,
                        (int)(sizeof stem_cases / sizeof stem_cases[0]));
    tcase_add_test(core, test_inputs_duplicate_stems);
    tcase_add_test(core, test_inputs_recursive);
    tcase_add_test(core, test_inputs_list_file);
    tcase_add_test(core, test_inputs_shard);
    tcase_add_test(core, test_output_write_bytes);
    tcase_add_test(core, test_png_encode8_round_trip);
    tcase_add_test(core, test_output_write_replaces);
    tcase_add_test(core, test_output_protect);
    tcase_add_test(core, test_file_set);
    tcase_add_test(core, test_prepare_dir_nested);
    tcase_add_test(core, test_prepare_dir_relative);
    tcase_add_test(core, test_prepare_dir_parent_is_file);
    tcase_add_test(core, test_path_join);
    tcase_add_test(core, test_now_ms_monotonic);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("Limits");
    kt_add_tmp_fixture(limits, "check_pipeline");
    tcase_add_test(limits, test_param_ratio_long_numerator);
    tcase_add_test(limits, test_build_override_link_error);
    tcase_add_test(limits, test_inputs_many);
    tcase_add_test(limits, test_input_stem_truncates);
    tcase_add_test(limits, test_inputs_failed_items_not_duplicates);
    tcase_add_test(limits, test_inputs_folder_skips_subfolders);
    tcase_add_test(limits, test_inputs_recursive_symlink_loop);
    tcase_add_test(limits, test_inputs_list_file_missing);
    tcase_add_test(limits, test_inputs_list_file_empty);
    tcase_add_test(limits, test_inputs_list_file_cycle);
    tcase_add_test(limits, test_inputs_glob_only_folders);
    tcase_add_test(limits, test_output_write_missing_dir);
    tcase_add_test(limits, test_output_write_over_folder);
    tcase_add_test(limits, test_output_protect_other_folder);
    tcase_add_test(limits, test_prepare_dir_is_file);
    tcase_add_test(limits, test_prepare_dir_empty);
    tcase_add_test(limits, test_summary_index_journal);
    tcase_add_test(limits, test_journal_group_sync);
    suite_add_tcase(s, limits);

    return s;
}

int main(void)
{
    return kt_run_suite(pipeline_suite());
}
