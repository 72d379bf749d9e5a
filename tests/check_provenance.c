/* Check suite for the resolved config (stages/params.c kms_param_format,
 * pipeline/provenance.c): every key of every stage prints as text that
 * parses back to the same value, and every [pipeline] key is classified for
 * the --resume check. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "provenance.h"
#include "stage.h"
#include "test_util.h"

/* The bytes a parameter's value occupies in its params struct. */
static size_t value_size(const kms_param *p)
{
    switch (p->type) {
    case KMS_PARAM_INT:
    case KMS_PARAM_CHOICE: return sizeof(int);
    case KMS_PARAM_DOUBLE: return sizeof(double);
    case KMS_PARAM_BOOL: return sizeof(bool);
    case KMS_PARAM_FLAGS: return sizeof(unsigned);
    case KMS_PARAM_RATIO: return sizeof(kms_ratio);
    default: return 0; /* text: compared as text */
    }
}

/* Parses text into a, formats it, parses that into b: the same value. */
static void round_trip(const kms_param *p, size_t params_size,
                       const char *text, const char *where)
{
    void *a = calloc(1, params_size + 1), *b = calloc(1, params_size + 1);
    kms_error err;
    kms_error_clear(&err);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_msg(kms_param_parse(p, text, a, &err) == KMS_OK, "%s: %s",
                  where, err.message);
    char once[4 * KMS_STR_MAX], twice[4 * KMS_STR_MAX];
    kms_param_format(p, a, once, sizeof once);
    ck_assert_msg(kms_param_parse(p, once, b, &err) == KMS_OK,
                  "%s: '%s' does not parse back: %s", where, once, err.message);
    kms_param_format(p, b, twice, sizeof twice);
    ck_assert_msg(strcmp(once, twice) == 0, "%s: '%s' then '%s'", where, once,
                  twice);
    size_t n = value_size(p);
    const char *x = (const char *)a + p->offset, *y = (const char *)b + p->offset;
    if (n)
        ck_assert_msg(memcmp(x, y, n) == 0, "%s: '%s' reads back another value",
                      where, once);
    else
        ck_assert_str_eq(x, y);
    free(a);
    free(b);
}

START_TEST(test_every_default_round_trips)
{
    int keys = 0;
    for (int s = 0; kms_stage_classes[s]; s++) {
        const kms_stage_class *cls = kms_stage_classes[s];
        for (const kms_param *p = cls->params; p && p->name; p++) {
            char where[160];
            snprintf(where, sizeof where, "%s.%s", cls->name, p->name);
            round_trip(p, cls->params_size,
                       p->default_value ? p->default_value : "x", where);
            keys++;
        }
    }
    ck_assert_int_gt(keys, 40);
}
END_TEST

START_TEST(test_values_round_trip_exactly)
{
    const kms_stage_class *cls = kms_stage_find("reshape");
    const kms_param *scale = kms_param_find(cls->params, "value_scale");
    round_trip(scale, cls->params_size, "1/255", "1/255");
    round_trip(scale, cls->params_size, "0.1", "0.1");
    round_trip(scale, cls->params_size, "3/7", "3/7");
    cls = kms_stage_find("kmeans");
    const kms_param *eps = kms_param_find(cls->params, "epsilon");
    round_trip(eps, cls->params_size, "0.1", "0.1");
    round_trip(eps, cls->params_size, "0.30000000000000004", "0.1 + 0.2");
    const kms_param *k = kms_param_find(cls->params, "k");
    round_trip(k, cls->params_size, "auto", "k = auto");
    round_trip(k, cls->params_size, "7", "k = 7");
    /* 0.55 reads as 0.55, not 0.55000000000000004 */
    char text[64];
    void *params = calloc(1, cls->params_size);
    kms_error err;
    ck_assert_int_eq(kms_param_parse(eps, "0.55", params, &err), KMS_OK);
    kms_param_format(eps, params, text, sizeof text);
    ck_assert_str_eq(text, "0.55");
    free(params);
    cls = kms_stage_find("write");
    const kms_param *products = kms_param_find(cls->params, "products");
    round_trip(products, cls->params_size, "mask, overlay", "products");
    round_trip(products, cls->params_size, "none", "no products");
}
END_TEST

START_TEST(test_pipeline_keys_classified)
{
    /* A new [pipeline] key must be classified in provenance.c: products
     * that depend on it make --resume refuse a change. */
    int n = 0;
    for (const kms_param *p = kms_pipeline_param_table; p->name; p++)
        n++;
    ck_assert_msg(n == 4, "[pipeline] has %d keys: classify the new ones in "
                          "pipeline/provenance.c and here", n);
    ck_assert(!kms_key_alters_products("pipeline", "input"));
    ck_assert(!kms_key_alters_products("pipeline", "output"));
    ck_assert(kms_key_alters_products("pipeline", "stages"));
    ck_assert(kms_key_alters_products("pipeline", "seed"));
    ck_assert(kms_key_alters_products("pipeline", "some_new_key"));
    ck_assert(kms_key_alters_products("kmeans", "k"));
    ck_assert(kms_key_alters_products("write", "products"));
}
END_TEST

static Suite *provenance_suite(void)
{
    Suite *s = suite_create("provenance");
    TCase *tc = tcase_create("Core");
    tcase_add_test(tc, test_every_default_round_trips);
    tcase_add_test(tc, test_values_round_trip_exactly);
    tcase_add_test(tc, test_pipeline_keys_classified);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kt_run_suite(provenance_suite());
}
