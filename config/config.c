#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_range(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static char *dup_str(const char *s)
{
    return dup_range(s, strlen(s));
}

static kms_status add_entry(kms_config *cfg, const char *section,
                            const char *key, const char *value, int line,
                            kms_error *err)
{
    if (cfg->n_entries == cfg->cap_entries) {
        size_t cap = cfg->cap_entries ? 2 * cfg->cap_entries : 16;
        kms_config_entry *e = realloc(cfg->entries, cap * sizeof *e);
        if (!e)
            return kms_error_set(err, KMS_ERR_NOMEM, cfg->path, line, NULL,
                                 "out of memory");
        cfg->entries = e;
        cfg->cap_entries = cap;
    }
    kms_config_entry *e = &cfg->entries[cfg->n_entries];
    e->section = dup_str(section);
    e->key = dup_str(key);
    e->value = dup_str(value);
    e->line = line;
    e->used = false;
    cfg->n_entries++; /* counted first so free() releases partial entries */
    if (!e->section || !e->key || !e->value)
        return kms_error_set(err, KMS_ERR_NOMEM, cfg->path, line, NULL,
                             "out of memory");
    return KMS_OK;
}

static kms_status add_section(kms_config *cfg, const char *name, size_t n,
                              int line, kms_error *err)
{
    for (size_t i = 0; i < cfg->n_sections; i++)
        if (strlen(cfg->sections[i].name) == n &&
            strncmp(cfg->sections[i].name, name, n) == 0)
            /* inih would merge the two silently; a second section of the
             * same name is almost always a copy-paste mistake. */
            return kms_error_set(err, KMS_ERR_CONFIG, cfg->path, line, NULL,
                                 "section [%.*s] defined twice (first on "
                                 "line %d)",
                                 (int)n, name, cfg->sections[i].line);
    if (cfg->n_sections == cfg->cap_sections) {
        size_t cap = cfg->cap_sections ? 2 * cfg->cap_sections : 8;
        kms_config_section *s = realloc(cfg->sections, cap * sizeof *s);
        if (!s)
            return kms_error_set(err, KMS_ERR_NOMEM, cfg->path, line, NULL,
                                 "out of memory");
        cfg->sections = s;
        cfg->cap_sections = cap;
    }
    cfg->sections[cfg->n_sections].name = dup_range(name, n);
    cfg->sections[cfg->n_sections].line = line;
    if (!cfg->sections[cfg->n_sections++].name)
        return kms_error_set(err, KMS_ERR_NOMEM, cfg->path, line, NULL,
                             "out of memory");
    return KMS_OK;
}

/* A section header on this line, if any, into cfg's list. */
static kms_status scan_line(kms_config *cfg, const char *buf, int line,
                            kms_error *err)
{
    const char *p = buf;
    if (line == 1 && (unsigned char)p[0] == 0xEF &&
        (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF)
        p += 3; /* UTF-8 BOM, as inih skips it */
    while (isspace((unsigned char)*p))
        p++;
    if (*p != '[')
        return KMS_OK;
    const char *end = strchr(p, ']');
    if (!end)
        return KMS_OK; /* inih reports the syntax error with its line */
    const char *name = p + 1;
    while (name < end && isspace((unsigned char)*name))
        name++;
    size_t n = (size_t)(end - name);
    while (n > 0 && isspace((unsigned char)name[n - 1]))
        n--;
    return add_section(cfg, name, n, line, err);
}

/* inih reports keys but not empty sections or where a section starts, so
 * section headers are listed in a first pass of our own. */
static kms_status scan_sections(kms_config *cfg, FILE *f, kms_error *err)
{
    char *buf = NULL;
    size_t cap = 0;
    ssize_t got;
    int line = 0;
    kms_status st = KMS_OK;
    while (st == KMS_OK && (got = getline(&buf, &cap, f)) >= 0) {
        line++;
        /* fgets (and so inih) would stop at a NUL and report nonsense */
        if (memchr(buf, '\0', (size_t)got)) {
            st = kms_error_set(err, KMS_ERR_CONFIG, cfg->path, line, NULL,
                               "a NUL byte: this is not a text file");
            break;
        }
        size_t len = (size_t)got;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            len--;
        /* inih's line buffer holds INI_MAX_LINE bytes with "\r\n\0". */
        if (len > INI_MAX_LINE - 3) {
            st = kms_error_set(err, KMS_ERR_CONFIG, cfg->path, line, NULL,
                               "line longer than %d characters (use a "
                               "folder or a glob for long input lists)",
                               INI_MAX_LINE - 3);
            break;
        }
        st = scan_line(cfg, buf, line, err);
    }
    free(buf);
    return st;
}

typedef struct parse_state {
    kms_config *cfg;
    kms_error *err;
    kms_status status;
    FILE *file;
    int line; /* Debian's inih does not pass line numbers to the handler */
} parse_state;

/* fgets that counts lines: inih calls the handler right after reading the
 * line it came from, so the count is that line's number. */
static char *read_line(char *str, int num, void *stream)
{
    parse_state *st = stream;
    char *r = fgets(str, num, st->file);
    if (r)
        st->line++;
    return r;
}

static int on_entry(void *user, const char *section_raw, const char *key,
                    const char *value)
{
    parse_state *st = user;
    int lineno = st->line;
    if (st->status != KMS_OK)
        return 1; /* keep the first error */
    /* inih keeps the blanks inside "[ read ]"; the section list trims them */
    char section[256];
    while (isspace((unsigned char)*section_raw))
        section_raw++;
    snprintf(section, sizeof section, "%s", section_raw);
    for (size_t n = strlen(section); n > 0 && isspace((unsigned char)section[n - 1]);)
        section[--n] = '\0';
    if (!section[0]) {
        st->status = kms_error_set(st->err, KMS_ERR_CONFIG, st->cfg->path,
                                   lineno, key,
                                   "key outside any section (put it under "
                                   "[pipeline] or a stage's [section])");
        return 0;
    }
    kms_config_entry *old = kms_config_get(st->cfg, section, key);
    if (old) {
        st->status = kms_error_set(st->err, KMS_ERR_CONFIG, st->cfg->path,
                                   lineno, NULL, "%s.%s set twice (first on line %d)",
                                   section, key, old->line);
        return 0;
    }
    st->status = add_entry(st->cfg, section, key, value, lineno, st->err);
    return st->status == KMS_OK;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return dup_str(".");
    if (slash == path)
        return dup_str("/");
    return dup_range(path, (size_t)(slash - path));
}

kms_status kms_config_load(kms_config *cfg, const char *path, kms_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    kms_status status = KMS_OK;
    FILE *f = NULL;
    cfg->path = dup_str(path);
    cfg->dir = dir_of(path);
    if (!cfg->path || !cfg->dir) {
        status = kms_error_set(err, KMS_ERR_NOMEM, path, 0, NULL, "out of memory");
        goto out;
    }
    f = fopen(path, "r");
    if (!f) {
        status = kms_error_set(err, KMS_ERR_IO, path, 0, NULL,
                               "cannot open config: %s", strerror(errno));
        goto out;
    }
    status = scan_sections(cfg, f, err);
    if (status == KMS_OK && ferror(f))
        status = kms_error_set(err, KMS_ERR_IO, path, 0, NULL,
                               "cannot read config: %s", strerror(errno));
    if (status != KMS_OK)
        goto out;
    rewind(f);
    /* An indented line would otherwise continue the previous value and read
     * as the same key set twice. */
    ini_allow_multiline = false;
    parse_state st = {cfg, err, KMS_OK, f, 0};
    int rc = ini_parse_stream(read_line, &st, on_entry, &st);
    if (ferror(f)) {
        status = kms_error_set(err, KMS_ERR_IO, path, 0, NULL,
                               "cannot read config: %s", strerror(errno));
    } else if (st.status != KMS_OK && !(rc > 0 && rc < err->line)) {
        status = st.status;
    } else if (rc > 0) {
        status = kms_error_set(err, KMS_ERR_CONFIG, path, rc, NULL,
                               "syntax error (expected [section], key = value, "
                               "or a ; comment)");
    } else if (rc < 0) {
        status = kms_error_set(err, KMS_ERR_NOMEM, path, 0, NULL,
                               "out of memory while parsing");
    }
out:
    if (f)
        fclose(f);
    if (status != KMS_OK)
        kms_config_free(cfg);
    return status;
}

kms_status kms_config_override(kms_config *cfg, const char *assignment,
                               kms_error *err)
{
    const char *dot = strchr(assignment, '.');
    const char *eq = strchr(assignment, '=');
    if (!dot || !eq || dot > eq || dot == assignment || eq == dot + 1)
        return kms_error_set(err, KMS_ERR_CONFIG, KMS_CONFIG_CMDLINE, 0,
                             "-s", "'%s' is not SECTION.KEY=VALUE", assignment);
    char *section = dup_range(assignment, (size_t)(dot - assignment));
    char *key = dup_range(dot + 1, (size_t)(eq - dot - 1));
    kms_status st = KMS_OK;
    if (!section || !key) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    kms_config_entry *e = kms_config_get(cfg, section, key);
    if (e) {
        char *v = dup_str(eq + 1);
        if (!v) {
            st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
            goto out;
        }
        free(e->value);
        e->value = v;
        e->line = 0;
    } else {
        st = add_entry(cfg, section, key, eq + 1, 0, err);
    }
out:
    free(section);
    free(key);
    return st;
}

kms_config_entry *kms_config_get(const kms_config *cfg, const char *section,
                                 const char *key)
{
    for (size_t i = 0; i < cfg->n_entries; i++)
        if (strcmp(cfg->entries[i].section, section) == 0 &&
            strcmp(cfg->entries[i].key, key) == 0)
            return &cfg->entries[i];
    return NULL;
}

const kms_config_section *kms_config_section_find(const kms_config *cfg,
                                                  const char *name)
{
    for (size_t i = 0; i < cfg->n_sections; i++)
        if (strcmp(cfg->sections[i].name, name) == 0)
            return &cfg->sections[i];
    return NULL;
}

void kms_config_free(kms_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_entries; i++) {
        free(cfg->entries[i].section);
        free(cfg->entries[i].key);
        free(cfg->entries[i].value);
    }
    for (size_t i = 0; i < cfg->n_sections; i++)
        free(cfg->sections[i].name);
    free(cfg->entries);
    free(cfg->sections);
    free(cfg->path);
    free(cfg->dir);
    memset(cfg, 0, sizeof *cfg);
}
