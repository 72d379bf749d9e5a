/* Typed parameters from text: the one parser behind INI values, -s
 * overrides and table defaults, so all three accept the same things. */
#include "stage.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const kms_param *kms_param_find(const kms_param *table, const char *name)
{
    for (const kms_param *p = table; p && p->name; p++)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

static void *field(const kms_param *param, void *params)
{
    return (char *)params + param->offset;
}

bool kms_param_number(const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || errno == ERANGE || !isfinite(v))
        return false;
    while (isspace((unsigned char)*end))
        end++;
    if (*end)
        return false;
    *out = v;
    return true;
}

static bool parse_int(const char *text, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || errno == ERANGE)
        return false;
    while (isspace((unsigned char)*end))
        end++;
    if (*end)
        return false;
    *out = v;
    return true;
}

static kms_status out_of_range(const kms_param *param, const char *text,
                               kms_error *err)
{
    if (param->type == KMS_PARAM_INT)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                             "%s is out of range [%.0f, %.0f]", text,
                             param->min, param->max);
    return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                         "%s is out of range [%g, %g]", text, param->min,
                         param->max);
}

static void list_choices(const kms_param *param, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (const kms_choice *c = param->choices; c->name && used < len; c++) {
        int n = snprintf(buf + used, len - used, "%s%s",
                         c == param->choices ? "" : ", ", c->name);
        if (n > 0)
            used += (size_t)n;
    }
}

/* The choice of param called word (any case), or NULL. */
static const kms_choice *choice_find(const kms_param *param, const char *word)
{
    for (const kms_choice *c = param->choices; c && c->name; c++)
        if (strcasecmp(c->name, word) == 0)
            return c;
    return NULL;
}

const char *kms_choice_name(const kms_choice *choices, int value)
{
    for (const kms_choice *c = choices; c && c->name; c++)
        if (c->value == value)
            return c->name;
    return NULL;
}

static kms_status bad_choice(const kms_param *param, const char *word,
                             kms_error *err)
{
    char choices[512];
    list_choices(param, choices, sizeof choices);
    return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                         "'%s' is not one of: %s", word, choices);
}

static kms_status parse_flags(const kms_param *param, const char *text,
                              unsigned *out, kms_error *err)
{
    unsigned flags = 0;
    char word[128];
    const char *p = text;
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        size_t n = 0;
        while (p[n] && p[n] != ',' && !isspace((unsigned char)p[n]))
            n++;
        if (n == 0)
            break;
        if (n >= sizeof word)
            return bad_choice(param, "(too long)", err);
        memcpy(word, p, n);
        word[n] = '\0';
        p += n;
        if (strcasecmp(word, "none") == 0)
            continue;
        const kms_choice *c = choice_find(param, word);
        if (!c)
            return bad_choice(param, word, err);
        flags |= (unsigned)c->value;
    }
    *out = flags;
    return KMS_OK;
}

static kms_status parse_ratio(const kms_param *param, const char *text,
                              kms_ratio *out, kms_error *err)
{
    kms_ratio r = {0, 1};
    char *end;
    errno = 0;
    r.num = strtod(text, &end);
    bool ok = end != text && errno != ERANGE && isfinite(r.num);
    while (isspace((unsigned char)*end))
        end++;
    if (ok && *end == '/')
        ok = kms_param_number(end + 1, &r.den);
    else if (ok)
        ok = kms_param_number(text, &r.num);
    if (!ok)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                             "'%s' is not a number or a fraction a/b", text);
    if (r.den == 0)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                             "'%s' divides by zero", text);
    double v = r.num / r.den;
    if (v < param->min || v > param->max)
        return out_of_range(param, text, err);
    *out = r;
    return KMS_OK;
}

static kms_status parse_bool(const char *text, bool *out, kms_error *err)
{
    static const char *const yes[] = {"true", "yes", "on", "1", NULL};
    static const char *const no[] = {"false", "no", "off", "0", NULL};
    for (int i = 0; yes[i]; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return KMS_OK;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return KMS_OK;
        }
    }
    return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                         "'%s' is not a boolean (true/false, yes/no, on/off, 1/0)",
                         text);
}

kms_status kms_param_parse(const kms_param *param, const char *text,
                           void *params, kms_error *err)
{
    void *dst = field(param, params);
    switch (param->type) {
    case KMS_PARAM_INT: {
        long v;
        const kms_choice *word = choice_find(param, text);
        if (word) {
            *(int *)dst = word->value;
            return KMS_OK;
        }
        if (!parse_int(text, &v))
            return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                                 "'%s' is not a whole number", text);
        if ((double)v < param->min || (double)v > param->max)
            return out_of_range(param, text, err);
        *(int *)dst = (int)v;
        return KMS_OK;
    }
    case KMS_PARAM_DOUBLE: {
        double v;
        if (!kms_param_number(text, &v))
            return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                                 "'%s' is not a number", text);
        if (v < param->min || v > param->max)
            return out_of_range(param, text, err);
        *(double *)dst = v;
        return KMS_OK;
    }
    case KMS_PARAM_BOOL:
        return parse_bool(text, (bool *)dst, err);
    case KMS_PARAM_CHOICE: {
        const kms_choice *c = choice_find(param, text);
        if (!c)
            return bad_choice(param, text, err);
        *(int *)dst = c->value;
        return KMS_OK;
    }
    case KMS_PARAM_FLAGS:
        return parse_flags(param, text, (unsigned *)dst, err);
    case KMS_PARAM_RATIO:
        return parse_ratio(param, text, (kms_ratio *)dst, err);
    case KMS_PARAM_STRING:
    case KMS_PARAM_LIST:
    case KMS_PARAM_PATH:
    case KMS_PARAM_PATH_LIST:
        if (strlen(text) >= KMS_STR_MAX)
            return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                                 "value longer than %d characters",
                                 KMS_STR_MAX - 1);
        snprintf((char *)dst, KMS_STR_MAX, "%s", text);
        return KMS_OK;
    }
    abort();
}

kms_status kms_params_apply_defaults(const kms_param *table, void *params,
                                     kms_error *err)
{
    for (const kms_param *p = table; p && p->name; p++) {
        if (!p->default_value)
            continue;
        kms_status st = kms_param_parse(p, p->default_value, params, err);
        if (st != KMS_OK) {
            snprintf(err->key, sizeof err->key, "%s", p->name);
            return KMS_ERR_INTERNAL;
        }
    }
    return KMS_OK;
}

void kms_param_describe(const kms_param *param, char *buf, size_t len)
{
    char choices[512];
    switch (param->type) {
    case KMS_PARAM_INT:
        if (param->choices) {
            list_choices(param, choices, sizeof choices);
            snprintf(buf, len, "int %.0f..%.0f or %s", param->min, param->max,
                     choices);
        } else {
            snprintf(buf, len, "int %.0f..%.0f", param->min, param->max);
        }
        return;
    case KMS_PARAM_DOUBLE:
        snprintf(buf, len, "number %g..%g", param->min, param->max);
        return;
    case KMS_PARAM_RATIO:
        snprintf(buf, len, "number or a/b, %g..%g", param->min, param->max);
        return;
    case KMS_PARAM_BOOL:
        snprintf(buf, len, "true | false");
        return;
    case KMS_PARAM_CHOICE:
        list_choices(param, choices, sizeof choices);
        snprintf(buf, len, "one of: %s", choices);
        return;
    case KMS_PARAM_FLAGS:
        list_choices(param, choices, sizeof choices);
        snprintf(buf, len, "list of: %s", choices);
        return;
    case KMS_PARAM_STRING:
        snprintf(buf, len, "text");
        return;
    case KMS_PARAM_LIST:
        snprintf(buf, len, "comma-separated list");
        return;
    case KMS_PARAM_PATH:
        snprintf(buf, len, "path");
        return;
    case KMS_PARAM_PATH_LIST:
        snprintf(buf, len, "comma-separated paths");
        return;
    }
    abort();
}

/* The shortest %g text that reads back as v exactly (0.55, not
 * 0.55000000000000004). */
static void format_double(double v, char *buf, size_t len)
{
    for (int digits = 6; digits <= 17; digits++) {
        snprintf(buf, len, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* The bits of flags as choice names: a choice is named when all its bits
 * are set and it adds one not named yet, so "all"-like choices and single
 * ones both parse back to the same bits. */
static void format_flags(const kms_param *param, unsigned flags, char *buf,
                         size_t len)
{
    unsigned named = 0;
    size_t used = 0;
    buf[0] = '\0';
    for (const kms_choice *c = param->choices; c && c->name; c++) {
        unsigned v = (unsigned)c->value;
        if (!v || (flags & v) != v || !(v & ~named))
            continue;
        named |= v;
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
                         c->name);
        if (n < 0 || (size_t)n >= len - used)
            return;
        used += (size_t)n;
    }
    if (!used)
        snprintf(buf, len, "none");
}

void kms_param_format(const kms_param *param, const void *params, char *buf,
                      size_t len)
{
    const void *src = (const char *)params + param->offset;
    switch (param->type) {
    case KMS_PARAM_INT: {
        int v = *(const int *)src;
        const char *word = kms_choice_name(param->choices, v);
        /* a word only where the number would be out of range (k = auto) */
        if (word && ((double)v < param->min || (double)v > param->max))
            snprintf(buf, len, "%s", word);
        else
            snprintf(buf, len, "%d", v);
        return;
    }
    case KMS_PARAM_DOUBLE:
        format_double(*(const double *)src, buf, len);
        return;
    case KMS_PARAM_BOOL:
        snprintf(buf, len, "%s", *(const bool *)src ? "true" : "false");
        return;
    case KMS_PARAM_CHOICE: {
        const char *word = kms_choice_name(param->choices, *(const int *)src);
        snprintf(buf, len, "%s", word ? word : "?");
        return;
    }
    case KMS_PARAM_FLAGS:
        format_flags(param, *(const unsigned *)src, buf, len);
        return;
    case KMS_PARAM_RATIO: {
        const kms_ratio *r = src;
        char num[40], den[40];
        format_double(r->num, num, sizeof num);
        format_double(r->den, den, sizeof den);
        if (r->den == 1)
            snprintf(buf, len, "%s", num);
        else
            snprintf(buf, len, "%s/%s", num, den);
        return;
    }
    case KMS_PARAM_STRING:
    case KMS_PARAM_LIST:
    case KMS_PARAM_PATH:
    case KMS_PARAM_PATH_LIST:
        snprintf(buf, len, "%s", (const char *)src);
        return;
    }
    abort();
}
