/* The resolved config of a run, the facts of the run (versions, date,
 * command line) and the --resume check that a rerun would give the same
 * products. */
#include "provenance.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "opencv_c.h"
#include "path.h"
#include "summary.h"

#define INPUT_LIST_NAME "kmseg.inputs.txt"
/* inih reads lines of at most this many characters (config.c refuses
 * longer ones): a longer input list goes into a list file */
#define INI_LINE_MAX 190

/* [pipeline] keys, each classified: a key that alters products makes
 * --resume refuse a change. A key missing here counts as altering: a new
 * key must be classified to be let through. */
static const struct {
    const char *key;
    bool alters;
} pipeline_keys[] = {
    {"input", false},  /* new inputs are simply processed */
    {"output", false}, /* where, not what */
    {"stages", true},
    {"seed", true},
};

bool kms_key_alters_products(const char *section, const char *key)
{
    if (strcmp(section, "pipeline") != 0)
        return true; /* every key of every stage */
    for (size_t i = 0; i < sizeof pipeline_keys / sizeof *pipeline_keys; i++)
        if (strcmp(pipeline_keys[i].key, key) == 0)
            return pipeline_keys[i].alters;
    return true;
}

/* --- the resolved keys ----------------------------------------------------- */

typedef void (*key_fn)(const char *section, const char *key,
                       const char *value, void *arg);

typedef struct resolver {
    const kms_pipeline *pl;
    const kms_batch_options *opt;
    char base[PATH_MAX];     /* the config's folder, absolute */
    char out_dir[PATH_MAX];  /* absolute */
    char *input_list;        /* specs one a line when input needs the file */
    size_t input_list_len;
} resolver;

/* spec made absolute against dir (an @list keeps its @). */
static void absolute_spec(char *buf, size_t len, const char *dir,
                          const char *spec)
{
    bool list = spec[0] == '@';
    const char *p = spec + list;
    if (!p[0] || p[0] == '/')
        snprintf(buf, len, "%s", spec);
    else {
        char joined[PATH_MAX + KMS_STR_MAX];
        kms_path_join(joined, sizeof joined, dir, p);
        snprintf(buf, len, "%s%s", list ? "@" : "", joined);
    }
}

/* A comma-separated list of paths, each made absolute against dir; also
 * the items, one a line, into lines (may be NULL). false when an item holds
 * a comma or a line break (it could not be read back as a list). */
static bool absolute_list(const char *const *items, int n, const char *list,
                          const char *dir, FILE *out, FILE *lines)
{
    bool ok = true, first = true;
    char *copy = list ? strdup(list) : NULL, *save = NULL;
    char *tok = copy ? strtok_r(copy, ",", &save) : NULL;
    for (int i = 0;; i++) {
        const char *spec;
        if (list) {
            if (!tok)
                break;
            tok += strspn(tok, " \t");
            size_t m = strlen(tok);
            while (m > 0 && (tok[m - 1] == ' ' || tok[m - 1] == '\t'))
                tok[--m] = '\0';
            spec = tok;
            tok = strtok_r(NULL, ",", &save);
            if (!spec[0])
                continue;
        } else {
            if (i >= n)
                break;
            spec = items[i];
        }
        char abs[PATH_MAX + KMS_STR_MAX + 2];
        absolute_spec(abs, sizeof abs, dir, spec);
        if (strpbrk(abs, ",\n\r"))
            ok = false;
        fprintf(out, "%s%s", first ? "" : ", ", abs);
        if (lines)
            fprintf(lines, "%s\n", abs);
        first = false;
    }
    free(copy);
    return ok;
}

static void resolve_path(const resolver *r, const kms_param *p,
                         const char *stored, char *buf, size_t len)
{
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    if (!f) {
        snprintf(buf, len, "%s", stored);
        return;
    }
    if (p->type == KMS_PARAM_PATH)
        absolute_list((const char *const *)&stored, 1, NULL, r->base, f, NULL);
    else
        absolute_list(NULL, 0, stored, r->base, f, NULL);
    fclose(f);
    snprintf(buf, len, "%s", text ? text : stored);
    free(text);
}

static void pipeline_input(resolver *r, char *buf, size_t len)
{
    char *text = NULL, *lines = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    FILE *l = open_memstream(&lines, &r->input_list_len);
    bool ok = f && l;
    if (ok) {
        const kms_batch_options *opt = r->opt;
        if (opt->n_inputs > 0) /* -i, already absolute */
            ok = absolute_list(opt->inputs, opt->n_inputs, NULL, r->base, f, l);
        else
            ok = absolute_list(NULL, 0, r->pl->params.input, r->base, f, l);
    }
    if (f)
        fclose(f);
    if (l)
        fclose(l);
    if (ok && text && strlen(text) + strlen("input = ") <= INI_LINE_MAX) {
        snprintf(buf, len, "%s", text);
        free(lines);
    } else {
        /* too long for one line, or a name with a comma: a list file */
        char path[PATH_MAX + 64];
        kms_path_join(path, sizeof path, r->out_dir, INPUT_LIST_NAME);
        /* relative paths of a config start at its folder, the output
         * folder here: the short name when the whole one does not fit */
        snprintf(buf, len, "@%s",
                 strlen(path) + strlen("input = @") <= INI_LINE_MAX
                     ? path
                     : INPUT_LIST_NAME);
        free(r->input_list);
        r->input_list = lines;
    }
    free(text);
}

/* Calls fn on every key in the order of the file: [pipeline], then each
 * stage of the pipeline once, its keys in table order. */
static void each_key(resolver *r, key_fn fn, void *arg)
{
    const kms_pipeline *pl = r->pl;
    char value[PATH_MAX + 2 * KMS_STR_MAX];
    for (const kms_param *p = kms_pipeline_param_table; p->name; p++) {
        if (strcmp(p->name, "input") == 0)
            pipeline_input(r, value, sizeof value);
        else if (strcmp(p->name, "output") == 0)
            /* "." is the folder of the resolved config: the same folder,
             * when its whole name is too long for one line */
            snprintf(value, sizeof value, "%s",
                     strlen(r->out_dir) + strlen("output = ") <= INI_LINE_MAX
                         ? r->out_dir
                         : ".");
        else
            kms_param_format(p, &pl->params, value, sizeof value);
        fn("pipeline", p->name, value, arg);
    }
    for (size_t s = 0; s < pl->n_stages; s++) {
        const kms_stage_class *cls = pl->stages[s].cls;
        bool seen = false;
        for (size_t t = 0; t < s; t++)
            seen |= pl->stages[t].cls == cls;
        if (seen) /* a stage listed twice has one section */
            continue;
        fn(cls->name, NULL, NULL, arg);
        for (const kms_param *p = cls->params; p && p->name; p++) {
            kms_param_format(p, pl->stages[s].params, value, sizeof value);
            if ((p->type == KMS_PARAM_PATH || p->type == KMS_PARAM_PATH_LIST) &&
                value[0]) {
                char stored[sizeof value];
                snprintf(stored, sizeof stored, "%s", value);
                resolve_path(r, p, stored, value, sizeof value);
            }
            fn(cls->name, p->name, value, arg);
        }
    }
}

static kms_status resolver_init(resolver *r, const kms_pipeline *pl,
                                const kms_batch_options *opt,
                                const char *out_dir, kms_error *err)
{
    memset(r, 0, sizeof *r);
    r->pl = pl;
    r->opt = opt;
    char *base = kms_path_absolute(pl->base_dir ? pl->base_dir : ".");
    char *out = kms_path_absolute(out_dir);
    kms_status st = KMS_OK;
    if (!base || !out)
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    else {
        /* "/a/b/." reads as well as "/a/b", but say it plainly */
        size_t n = strlen(base);
        if (n >= 2 && strcmp(base + n - 2, "/.") == 0)
            base[n - 2] = '\0';
        snprintf(r->base, sizeof r->base, "%s", base[0] ? base : "/");
        snprintf(r->out_dir, sizeof r->out_dir, "%s", out);
    }
    free(base);
    free(out);
    return st;
}

static void write_key(const char *section, const char *key, const char *value,
                      void *arg)
{
    FILE *f = arg;
    if (!key)
        fprintf(f, "\n[%s]\n", section);
    else
        fprintf(f, "%s = %s\n", key, value);
}

static kms_status resolved_text(resolver *r, char **text, size_t *len,
                                kms_error *err)
{
    FILE *f = open_memstream(text, len);
    if (!f)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    fprintf(f, "; The resolved config of a kmseg run: every key of [pipeline] and of\n"
               "; every stage with the value it ran with (defaults included, -s\n"
               "; overrides applied, paths absolute). `kmseg run` loads this file as\n"
               "; it is and makes the same products.\n");
    if (r->opt->recursive)
        fprintf(f, "; The run looked into subfolders: give -r again.\n");
    fprintf(f, "[pipeline]\n");
    /* the [pipeline] header is written above: skip write_key's for it */
    each_key(r, write_key, f);
    fclose(f);
    return KMS_OK;
}

kms_status kms_resolved_config(const kms_pipeline *pl,
                               const kms_batch_options *opt,
                               const char *out_dir, char **text, size_t *len,
                               kms_error *err)
{
    resolver r;
    *text = NULL;
    kms_status st = resolver_init(&r, pl, opt, out_dir, err);
    if (st == KMS_OK)
        st = resolved_text(&r, text, len, err);
    free(r.input_list);
    return st;
}

/* --- the facts of the run -------------------------------------------------- */

static bool shell_safe(const char *s)
{
    if (!s[0])
        return false;
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    "0123456789_./=:,@%+-", *s))
            return false;
    return true;
}

char *kms_provenance_command_line(const kms_provenance *prov)
{
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    if (!f)
        return NULL;
    for (int i = 0; i < prov->argc; i++) {
        const char *a = i == 0 ? "kmseg" : prov->argv[i];
        if (i)
            fputc(' ', f);
        if (shell_safe(a)) {
            fputs(a, f);
            continue;
        }
        fputc('\'', f);
        for (; *a; a++) {
            if (*a == '\'')
                fputs("'\\''", f);
            else
                fputc(*a, f);
        }
        fputc('\'', f);
    }
    fclose(f);
    return text;
}

void kms_provenance_date(char *buf, size_t len)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

void kms_provenance_names(const kms_provenance *prov,
                          const kms_batch_options *opt, char *resolved,
                          char *facts, char *report, size_t len)
{
    bool run = strcmp(prov->command, "run") == 0;
    char shard[64] = "";
    if (run && opt->shard_count > 0)
        snprintf(shard, sizeof shard, ".shard-%d-of-%d", opt->shard_index,
                 opt->shard_count);
    if (resolved)
        snprintf(resolved, len, "%s.resolved.ini", run ? "kmseg" : prov->command);
    if (facts)
        snprintf(facts, len, "%s.run%s.txt", run ? "kmseg" : prov->command,
                 shard);
    if (report)
        snprintf(report, len, "%s%s.html", run ? "report" : prov->command, shard);
}

static kms_status write_facts(const kms_batch *b, const kms_provenance *prov,
                              const char *name, const char *resolved,
                              kms_error *err)
{
    char *text = NULL, *cmd = kms_provenance_command_line(prov);
    size_t n = 0;
    char date[64], cwd[PATH_MAX];
    char *config = kms_path_absolute(prov->config_path);
    FILE *f = open_memstream(&text, &n);
    if (!f || !cmd || !config) {
        if (f)
            fclose(f);
        free(text);
        free(cmd);
        free(config);
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    }
    kms_provenance_date(date, sizeof date);
    if (!getcwd(cwd, sizeof cwd))
        snprintf(cwd, sizeof cwd, "?");
    fprintf(f, "kmseg %s\nopencv %s\ndate %s\ncommand %s\ncwd %s\nconfig %s\n"
               "resolved %s\n",
            prov->version, kms_cv_version(), date, cmd, cwd, config, resolved);
    fclose(f);
    kms_status st = kms_batch_write(b, name, text, n, err);
    free(text);
    free(cmd);
    free(config);
    return st;
}

/* --- --resume: the same products? ------------------------------------------- */

typedef struct check {
    const char *previous;     /* the previous resolved config's text */
    char key[128];            /* the first difference */
    char was[KMS_STR_MAX + 64], is[KMS_STR_MAX + 64];
} check;

/* The value of section.key in text as write_key wrote it ("key = value"
 * lines under "[section]"), into buf; false when it is not there. Read
 * here rather than through inih, which refuses lines past 200 characters
 * (a deep output folder) and would make every --resume fail. */
static bool previous_value(const char *text, const char *section,
                           const char *key, char *buf, size_t len)
{
    bool in_section = strcmp(section, "pipeline") == 0; /* its header is
                                                           written first */
    size_t klen = strlen(key), slen = strlen(section);
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (line[0] == '[')
            in_section = n == slen + 2 && strncmp(line + 1, section, slen) == 0 &&
                         line[n - 1] == ']';
        else if (in_section && n >= klen + 3 && strncmp(line, key, klen) == 0 &&
                 strncmp(line + klen, " = ", 3) == 0) {
            snprintf(buf, len, "%.*s", (int)(n - klen - 3), line + klen + 3);
            return true;
        }
        line = end ? end + 1 : NULL;
    }
    return false;
}

static void check_key(const char *section, const char *key, const char *value,
                      void *arg)
{
    check *c = arg;
    if (!key || c->key[0] || !kms_key_alters_products(section, key))
        return;
    bool found = previous_value(c->previous, section, key, c->was, sizeof c->was);
    if (found && strcmp(c->was, value) == 0)
        return;
    snprintf(c->key, sizeof c->key, "%s.%s", section, key);
    if (!found)
        snprintf(c->was, sizeof c->was, "(not set)");
    snprintf(c->is, sizeof c->is, "%s", value);
}

static kms_status check_resume(resolver *r, const char *path, bool force,
                               bool *redo_all, kms_error *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return KMS_OK; /* no earlier run here, or one from before provenance */
    char *text = NULL;
    size_t cap = 0;
    FILE *f = fopen(path, "r");
    ssize_t got = f ? getdelim(&text, &cap, '\0', f) : -1;
    if (f)
        fclose(f);
    if (got < 0) {
        free(text);
        if (force) {
            *redo_all = true;
            return KMS_OK;
        }
        return kms_error_set(err, KMS_ERR_IO, path, 0, "--resume",
                             "the previous run's config cannot be read: add "
                             "--force to redo every input");
    }
    check c = {.previous = text};
    each_key(r, check_key, &c);
    free(text);
    free(r->input_list);
    r->input_list = NULL;
    if (!c.key[0])
        return KMS_OK;
    if (force) {
        *redo_all = true;
        return KMS_OK;
    }
    return kms_error_set(err, KMS_ERR_CONFIG, path, 0, "--resume",
                         "%s was '%s' in the previous run, is '%s' now: the "
                         "products would differ (run without --resume, or add "
                         "--force to redo every input)",
                         c.key, c.was, c.is);
}

kms_status kms_provenance_start(const kms_batch *b, const kms_pipeline *pl,
                                const kms_batch_options *opt, bool *redo_all,
                                kms_error *err)
{
    const kms_provenance *prov = opt->provenance;
    *redo_all = false;
    if (!prov)
        return KMS_OK;
    char resolved[128], facts[128], path[PATH_MAX + 160];
    kms_provenance_names(prov, opt, resolved, facts, NULL, sizeof resolved);
    resolver r;
    kms_status st = resolver_init(&r, pl, opt, b->out_dir, err);
    if (st != KMS_OK)
        return st;
    kms_path_join(path, sizeof path, b->out_dir, resolved);
    if (opt->resume && strcmp(prov->command, "run") == 0)
        st = check_resume(&r, path, opt->force, redo_all, err);
    char *text = NULL;
    size_t len = 0;
    if (st == KMS_OK)
        st = resolved_text(&r, &text, &len, err);
    if (st == KMS_OK && r.input_list)
        st = kms_batch_write(b, INPUT_LIST_NAME, r.input_list, r.input_list_len,
                             err);
    if (st == KMS_OK)
        st = kms_batch_write(b, resolved, text, len, err);
    if (st == KMS_OK)
        st = write_facts(b, prov, facts, resolved, err);
    free(text);
    free(r.input_list);
    return st;
}
