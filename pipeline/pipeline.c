#include "pipeline.h"
#include "path.h"

#include "output.h"
#include "clock.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PIPELINE_SECTION "pipeline"

const kms_param kms_pipeline_param_table[] = {
    {"input", KMS_PARAM_PATH_LIST, "", 0, 0, NULL,
     offsetof(kms_pipeline_params, input),
     "input images: files, folders, globs, comma-separated; relative to the "
     "config file's folder (to the current folder when given with -s)"},
    {"output", KMS_PARAM_PATH, "out", 0, 0, NULL,
     offsetof(kms_pipeline_params, output),
     "output folder (created if missing); relative to the config's folder "
     "(to the current folder when given with -s)"},
    {"stages", KMS_PARAM_LIST, NULL, 0, 0, NULL,
     offsetof(kms_pipeline_params, stages),
     "stage sections to run, in order, comma-separated"},
    {"seed", KMS_PARAM_INT, "0", 0, 2147483647.0, NULL,
     offsetof(kms_pipeline_params, seed),
     "random seed (as cv2.setRNGSeed(seed) before cv2.kmeans)"},
    {0},
};

/* Fills file/line/key of an error a parser left without them. */
static kms_status locate(kms_error *err, const kms_config *cfg,
                         const kms_config_entry *e)
{
    char key[96];
    snprintf(key, sizeof key, "%s%s.%s", e->line ? "" : "-s ", e->section,
             e->key);
    snprintf(err->key, sizeof err->key, "%s", key);
    snprintf(err->file, sizeof err->file, "%s",
             e->line ? cfg->path : KMS_CONFIG_CMDLINE);
    err->line = e->line;
    return err->code;
}

static void list_keys(const kms_param *table, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (const kms_param *p = table; p->name && used < len; p++) {
        int n = snprintf(buf + used, len - used, "%s%s",
                         p == table ? "" : ", ", p->name);
        if (n > 0)
            used += (size_t)n;
    }
}

/* A -s value of paths (comma-separated for a list) with each relative one
 * made absolute against the current folder: the command line means the
 * folder it is typed in. malloc'ed; NULL when out of memory. */
static char *absolute_paths(const char *value, bool list)
{
    if (!list)
        return kms_path_absolute(value);
    size_t cap = strlen(value) + 1, used = 0;
    char *out = malloc(cap);
    char *copy = strdup(value);
    char *save = NULL;
    bool ok = out && copy;
    if (ok)
        out[0] = '\0';
    for (char *tok = ok ? strtok_r(copy, ",", &save) : NULL; ok && tok;
         tok = strtok_r(NULL, ",", &save)) {
        tok += strspn(tok, " \t");
        size_t n = strlen(tok);
        while (n > 0 && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
            tok[--n] = '\0';
        char *abs = n ? kms_path_absolute(tok) : strdup("");
        size_t need = used + (abs ? strlen(abs) : 0) + 3;
        char *grown = abs && need > cap ? realloc(out, cap = 2 * need) : out;
        ok = abs && grown;
        if (ok) {
            out = grown;
            used += (size_t)sprintf(out + used, "%s%s", used ? ", " : "", abs);
        }
        free(abs);
    }
    free(copy);
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}

/* Parses every entry of section into params; unknown keys are errors. */
static kms_status apply_section(const kms_config *cfg, const char *section,
                                const kms_param *table, void *params,
                                kms_error *err)
{
    for (size_t i = 0; i < cfg->n_entries; i++) {
        kms_config_entry *e = &cfg->entries[i];
        if (strcmp(e->section, section) != 0)
            continue;
        e->used = true;
        const kms_param *p = kms_param_find(table, e->key);
        if (!p) {
            char keys[512];
            list_keys(table, keys, sizeof keys);
            kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                          "unknown key (keys of [%s]: %s)", section, keys);
            return locate(err, cfg, e);
        }
        char *value = NULL;
        bool path = p->type == KMS_PARAM_PATH || p->type == KMS_PARAM_PATH_LIST;
        if (!e->line && path &&
            !(value = absolute_paths(e->value, p->type == KMS_PARAM_PATH_LIST))) {
            kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
            return locate(err, cfg, e);
        }
        kms_status st;
        if (value && strlen(value) >= KMS_STR_MAX && strlen(e->value) < KMS_STR_MAX)
            st = kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                               "value longer than %d characters once its "
                               "paths are made absolute (%zu): give fewer "
                               "paths, or a folder or pattern",
                               KMS_STR_MAX - 1, strlen(value));
        else
            st = kms_param_parse(p, value ? value : e->value, params, err);
        free(value);
        if (st != KMS_OK)
            return locate(err, cfg, e);
    }
    return KMS_OK;
}

static int section_line(const kms_config *cfg, const char *name)
{
    const kms_config_section *s = kms_config_section_find(cfg, name);
    return s ? s->line : 0;
}

static kms_status check_sections(const kms_config *cfg, kms_error *err)
{
    for (size_t i = 0; i < cfg->n_sections; i++) {
        const char *name = cfg->sections[i].name;
        if (strcmp(name, PIPELINE_SECTION) != 0 && !kms_stage_find(name))
            return kms_error_set(err, KMS_ERR_CONFIG, cfg->path,
                                 cfg->sections[i].line, NULL,
                                 "unknown section [%s] (see `kmseg stages`)",
                                 name);
    }
    for (size_t i = 0; i < cfg->n_entries; i++) {
        const kms_config_entry *e = &cfg->entries[i];
        if (strcmp(e->section, PIPELINE_SECTION) != 0 &&
            !kms_stage_find(e->section)) {
            kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                          "unknown section [%s] (see `kmseg stages`)",
                          e->section);
            return locate(err, cfg, e);
        }
    }
    return KMS_OK;
}

/* Splits the stages list and instantiates each stage with its section. */
static kms_status build_stages(kms_pipeline *pl, const kms_config *cfg,
                               const kms_config_entry *list, kms_error *err)
{
    char names[KMS_STR_MAX];
    snprintf(names, sizeof names, "%s", pl->params.stages);
    size_t cap = 0;
    for (char *save = NULL, *name = strtok_r(names, ", \t", &save); name;
         name = strtok_r(NULL, ", \t", &save)) {
        const kms_stage_class *cls = kms_stage_find(name);
        if (!cls) {
            kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                          "unknown stage '%s' (see `kmseg stages`)", name);
            return locate(err, cfg, list);
        }
        if (pl->n_stages == cap) {
            cap = cap ? 2 * cap : 8;
            kms_stage_instance *s = realloc(pl->stages, cap * sizeof *s);
            if (!s)
                return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                                     "out of memory");
            pl->stages = s;
        }
        kms_stage_instance *inst = &pl->stages[pl->n_stages];
        inst->cls = cls;
        inst->params = calloc(1, cls->params_size ? cls->params_size : 1);
        if (!inst->params)
            return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                                 "out of memory");
        pl->n_stages++;
        kms_status st = kms_params_apply_defaults(cls->params, inst->params, err);
        if (st != KMS_OK)
            return st;
        st = apply_section(cfg, name, cls->params, inst->params, err);
        if (st != KMS_OK)
            return st;
        for (const kms_param *p = cls->params; p && p->name; p++) {
            if (p->default_value || kms_config_get(cfg, name, p->name))
                continue;
            int line = section_line(cfg, name);
            return kms_error_set(err, KMS_ERR_CONFIG, cfg->path,
                                 line ? line : list->line, NULL,
                                 "stage [%s] needs the key %s.%s", name, name,
                                 p->name);
        }
    }
    if (pl->n_stages > KMS_MAX_STAGES) {
        kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                      "more than %d stages", KMS_MAX_STAGES);
        return locate(err, cfg, list);
    }
    if (pl->n_stages == 0) {
        kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL, "no stages listed");
        return locate(err, cfg, list);
    }
    return KMS_OK;
}

/* The link check: each stage's prepare sees what the earlier ones provide. */
static kms_status link_stages(kms_pipeline *pl, const kms_config *cfg,
                              kms_error *err)
{
    kms_link link = {0};
    const kms_config_entry *list = kms_config_get(cfg, PIPELINE_SECTION, "stages");
    for (size_t i = 0; i < pl->n_stages; i++) {
        const kms_stage_class *cls = pl->stages[i].cls;
        if (!cls->prepare)
            continue;
        kms_error_clear(err);
        kms_status st = cls->prepare(pl->stages[i].params, &link, err);
        if (st == KMS_OK)
            continue;
        if (err->key[0]) {
            /* prepare names the key; point at its line if it was set */
            char key[96];
            snprintf(key, sizeof key, "%s", err->key);
            const kms_config_entry *e = kms_config_get(cfg, cls->name, key);
            if (snprintf(err->key, sizeof err->key, "%s%s.%s",
                         e && !e->line ? "-s " : "", cls->name, key) < 0)
                err->key[0] = '\0';
            snprintf(err->file, sizeof err->file, "%s",
                     e && !e->line ? KMS_CONFIG_CMDLINE : cfg->path);
            err->line = e ? e->line : section_line(cfg, cls->name);
            /* a default of a stage without a section: where it is listed */
            if (!e && !err->line && list)
                err->line = list->line;
        } else {
            snprintf(err->key, sizeof err->key, "%s", "pipeline.stages");
            snprintf(err->file, sizeof err->file, "%s", cfg->path);
            err->line = list ? list->line : 0;
        }
        return st;
    }
    pl->link = link;
    return KMS_OK;
}

static void warn_unlisted(const kms_pipeline *pl, const kms_config *cfg)
{
    for (size_t i = 0; i < cfg->n_sections; i++) {
        const char *name = cfg->sections[i].name;
        if (strcmp(name, PIPELINE_SECTION) == 0 ||
            kms_pipeline_stage_params(pl, name))
            continue;
        fprintf(stderr, "%s:%d: warning: section [%s] is not in "
                        "pipeline.stages and is not used\n",
                cfg->path, cfg->sections[i].line, name);
    }
}

kms_status kms_pipeline_build(kms_pipeline *pl, kms_config *cfg,
                              kms_error *err)
{
    memset(pl, 0, sizeof *pl);
    kms_status st = check_sections(cfg, err);
    if (st != KMS_OK)
        goto out;
    st = kms_params_apply_defaults(kms_pipeline_param_table, &pl->params, err);
    if (st != KMS_OK)
        goto out;
    st = apply_section(cfg, PIPELINE_SECTION, kms_pipeline_param_table,
                       &pl->params, err);
    if (st != KMS_OK)
        goto out;
    const kms_config_entry *list = kms_config_get(cfg, PIPELINE_SECTION, "stages");
    if (!list) {
        int line = section_line(cfg, PIPELINE_SECTION);
        st = kms_error_set(err, KMS_ERR_CONFIG, cfg->path, line,
                           "pipeline.stages",
                           "missing: list the stages to run, e.g. "
                           "stages = read, reshape, kmeans, recolor, write");
        goto out;
    }
    /* an empty output would put products beside the config (and its
     * inputs): name a folder */
    const kms_config_entry *out = kms_config_get(cfg, PIPELINE_SECTION, "output");
    if (out && !pl->params.output[strspn(pl->params.output, " \t")]) {
        kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                      "empty: name an output folder (or give -o)");
        st = locate(err, cfg, out);
        goto out;
    }
    pl->base_dir = strdup(cfg->dir);
    if (!pl->base_dir) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    st = build_stages(pl, cfg, list, err);
    if (st != KMS_OK)
        goto out;
    st = link_stages(pl, cfg, err);
    if (st != KMS_OK)
        goto out;
    warn_unlisted(pl, cfg);
out:
    if (st != KMS_OK)
        kms_pipeline_free(pl);
    return st;
}

kms_status kms_pipeline_run(const kms_pipeline *pl, kms_context *ctx,
                            kms_error *err)
{
    return kms_pipeline_run_span(pl, ctx, 0, pl->n_stages, err);
}

kms_status kms_pipeline_run_span(const kms_pipeline *pl, kms_context *ctx,
                                 size_t first, size_t end, kms_error *err)
{
    for (size_t i = first; i < end && i < pl->n_stages; i++) {
        const kms_stage_class *cls = pl->stages[i].cls;
        double t0 = kms_now_ms();
        kms_status st = cls->run(pl->stages[i].params, ctx, err);
        if (i < KMS_MAX_STAGES)
            ctx->stage_ms[i] += kms_now_ms() - t0;
        if (st == KMS_OK)
            continue;
        if (!err->file[0])
            snprintf(err->file, sizeof err->file, "%s", ctx->input_path);
        if (!err->key[0])
            snprintf(err->key, sizeof err->key, "%s", cls->name);
        return st;
    }
    return KMS_OK;
}

size_t kms_pipeline_clustering(const kms_pipeline *pl)
{
    size_t i = 0;
    while (i < pl->n_stages && !pl->stages[i].cls->clustering)
        i++;
    return i;
}

int kms_pipeline_products(const kms_pipeline *pl, const char *input_path,
                          const char *stem,
                          char names[][KMS_PRODUCT_NAME_MAX], int max)
{
    int n = 0;
    for (size_t i = 0; i < pl->n_stages && n < max; i++) {
        const kms_stage_class *cls = pl->stages[i].cls;
        if (cls->products)
            n += cls->products(pl->stages[i].params, input_path, stem,
                               names + n, max - n);
    }
    return n;
}

size_t kms_pipeline_stage_index(const kms_pipeline *pl, const char *stage_name)
{
    for (size_t i = 0; i < pl->n_stages; i++)
        if (strcmp(pl->stages[i].cls->name, stage_name) == 0)
            return i;
    return pl->n_stages;
}

const void *kms_pipeline_stage_params(const kms_pipeline *pl,
                                      const char *stage_name)
{
    for (size_t i = 0; i < pl->n_stages; i++)
        if (strcmp(pl->stages[i].cls->name, stage_name) == 0)
            return pl->stages[i].params;
    return NULL;
}

void kms_pipeline_free(kms_pipeline *pl)
{
    if (!pl)
        return;
    for (size_t i = 0; i < pl->n_stages; i++)
        free(pl->stages[i].params);
    free(pl->stages);
    free(pl->base_dir);
    memset(pl, 0, sizeof *pl);
}
