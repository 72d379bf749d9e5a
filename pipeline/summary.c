#include "summary.h"
#include "path.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kms_row_clear(kms_row *row)
{
    free(row->error);
    free(row->note);
    free(row->previous);
    memset(row, 0, sizeof *row);
}

void kms_summary_name(char *buf, size_t len, int shard_index, int shard_count)
{
    if (shard_count > 0)
        snprintf(buf, len, "summary.shard-%d-of-%d.csv", shard_index, shard_count);
    else
        snprintf(buf, len, "summary.csv");
}

static void csv_field(FILE *f, const char *s)
{
    if (!s)
        return;
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void write_row(FILE *f, const kms_row *r, bool timings)
{
    if (r->status == KMS_ROW_SKIPPED && r->previous) {
        fprintf(f, "%s\n", r->previous);
        return;
    }
    static const char *const names[] = {"", "ok", "error", "skipped"};
    csv_field(f, r->input);
    fprintf(f, ",%s,", names[r->status]);
    if (r->width)
        fprintf(f, "%d,%d,", r->width, r->height);
    else
        fputs(",,", f);
    if (r->k)
        fprintf(f, "%d,%s,%.17g,", r->k, r->backend, r->wcss);
    else
        fputs(",,,", f);
    if (timings && r->k)
        fprintf(f, "%.3f,", r->ms_kmeans);
    else
        fputs(",", f);
    if (timings && r->status != KMS_ROW_SKIPPED)
        fprintf(f, "%.3f,", r->ms_total);
    else
        fputs(",", f);
    if (r->evaluated)
        fprintf(f, "%.6f,%.6f,", r->dice, r->iou);
    else
        fputs(",,", f);
    csv_field(f, r->error);
    fputc(',', f);
    csv_field(f, r->note);
    if (r->slices)
        fprintf(f, ",%d", r->slices);
    else
        fputs(",", f);
    for (int unit = 0; unit < 2; unit++) {
        bool known = unit == 0 ? r->lung_ml_known : r->lung_cm2_known;
        for (int side = 0; side < 2; side++)
            if (known)
                fprintf(f, ",%.2f", r->lung_size[side]);
            else
                fputs(",", f);
    }
    for (int side = 0; side < 2; side++)
        if (r->side_evaluated[side])
            fprintf(f, ",%.6f", r->side_dice[side]);
        else
            fputs(",", f);
    fputc('\n', f);
}

kms_status kms_summary_format_row(const kms_row *row, bool timings, char **buf,
                                  size_t *len, kms_error *err)
{
    FILE *f = open_memstream(buf, len);
    if (!f)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    write_row(f, row, timings);
    fclose(f);
    return KMS_OK;
}

kms_status kms_summary_write(const char *dir, const char *name,
                             const kms_row *rows, size_t n, bool timings,
                             const kms_file_set *protect, kms_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    fputs(KMS_SUMMARY_HEADER "\n", f);
    for (size_t i = 0; i < n; i++)
        if (rows[i].status != KMS_ROW_NOT_RUN)
            write_row(f, &rows[i], timings);
    fclose(f);
    kms_status st = kms_output_write(dir, name, buf, len, protect, err);
    free(buf);
    return st;
}

/* The first CSV field of line, unquoted, into out. */
static void first_field(const char *line, char *out, size_t len)
{
    size_t used = 0;
    if (*line == '"') {
        for (const char *s = line + 1; *s && used + 1 < len; s++) {
            if (*s == '"') {
                if (s[1] != '"')
                    break;
                s++;
            }
            out[used++] = *s;
        }
    } else {
        for (const char *s = line; *s && *s != ',' && used + 1 < len; s++)
            out[used++] = *s;
    }
    out[used] = '\0';
}

/* The second field (status) of line, assuming an unquoted status. */
static const char *status_of(const char *line)
{
    char input[4096];
    first_field(line, input, sizeof input);
    const char *s = line;
    if (*s == '"') {
        for (s++; *s; s++) {
            if (*s == '"' && s[1] == '"')
                s++;
            else if (*s == '"')
                break;
        }
    }
    s = strchr(s, ',');
    return s ? s + 1 : "";
}

static int cmp_line(const void *a, const void *b)
{
    char x[4096], y[4096];
    first_field(*(char *const *)a, x, sizeof x);
    first_field(*(char *const *)b, y, sizeof y);
    return strcmp(x, y);
}

/* One CSV record into *buf (NUL-terminated, without its line end): a line
 * break inside quotes belongs to the field (an input's name may hold one).
 * *complete: it ended with its line break (a journal's last record may be
 * torn by a kill). Returns its length, or -1 at the end of the file. */
static ssize_t read_record(FILE *f, char **buf, size_t *cap, bool *complete)
{
    size_t n = 0;
    bool quoted = false;
    int c;
    while ((c = getc(f)) != EOF) {
        if (c == '"')
            quoted = !quoted; /* "" inside quotes toggles twice */
        else if (c == '\n' && !quoted)
            break;
        if (n + 2 > *cap) {
            size_t want = *cap ? 2 * *cap : 256;
            char *b = realloc(*buf, want);
            if (!b)
                return -2;
            *buf = b;
            *cap = want;
        }
        (*buf)[n++] = (char)c;
    }
    *complete = c == '\n';
    if (c == EOF && n == 0)
        return -1;
    if (n > 0 && (*buf)[n - 1] == '\r')
        n--;
    (*buf)[n] = '\0';
    return (ssize_t)n;
}

/* Reads the records of a CSV file after its header; fails on a wrong
 * header. With end (journals): a torn last record (or header) is dropped
 * and *end is the size of the complete ones, header included (0: none). */
static kms_status read_lines(const char *path, char ***lines, size_t *n,
                             bool missing_ok, long *end, kms_error *err)
{
    *lines = NULL;
    *n = 0;
    if (end)
        *end = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (missing_ok && errno == ENOENT)
            return KMS_OK;
        return kms_error_set(err, KMS_ERR_IO, path, 0, NULL, "%s", strerror(errno));
    }
    kms_status st = KMS_OK;
    char *line = NULL;
    size_t cap = 0, lines_cap = 0;
    ssize_t got;
    bool header = true, complete;
    while ((got = read_record(f, &line, &cap, &complete)) >= 0) {
        if (end && !complete)
            break;
        if (end)
            *end = ftell(f);
        if (header) {
            header = false;
            if (strcmp(line, KMS_SUMMARY_HEADER) != 0) {
                st = kms_error_set(err, KMS_ERR_INPUT, path, 1, NULL,
                                   "not a kmseg summary (unexpected header)");
                break;
            }
            continue;
        }
        if (*n == lines_cap) {
            lines_cap = lines_cap ? 2 * lines_cap : 64;
            char **l = realloc(*lines, lines_cap * sizeof *l);
            if (!l) {
                st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
                break;
            }
            *lines = l;
        }
        if (!((*lines)[*n] = strdup(line))) {
            st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
            break;
        }
        (*n)++;
    }
    if (got == -2)
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    free(line);
    fclose(f);
    return st;
}

static void free_lines(char **lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

/* Orders records by input, then by when they were read, so the newest
 * record of an input comes last among its own. */
typedef struct ordered {
    char *line;
    size_t seq;
} ordered;

static int cmp_ordered(const void *a, const void *b)
{
    const ordered *x = a, *y = b;
    int c = cmp_line(&x->line, &y->line);
    if (c)
        return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

kms_status kms_summary_index_add(kms_summary_index *idx, const char *path,
                                 long *end, kms_error *err)
{
    char **got = NULL;
    size_t n_got = 0;
    kms_status st = read_lines(path, &got, &n_got, true, end, err);
    size_t total = idx->n + n_got;
    ordered *all = st == KMS_OK ? malloc((total ? total : 1) * sizeof *all) : NULL;
    char **kept = all ? malloc((total ? total : 1) * sizeof *kept) : NULL;
    if (!kept) {
        if (st == KMS_OK)
            st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        free(all);
        free_lines(got, n_got);
        return st;
    }
    for (size_t i = 0; i < total; i++)
        all[i] = (ordered){i < idx->n ? idx->lines[i] : got[i - idx->n], i};
    qsort(all, total, sizeof *all, cmp_ordered);
    /* the later file wins: a journal is newer than the summary before it */
    size_t k = 0;
    for (size_t i = 0; i < total; i++) {
        if (i + 1 < total && cmp_line(&all[i].line, &all[i + 1].line) == 0)
            free(all[i].line);
        else
            kept[k++] = all[i].line;
    }
    free(all);
    free(got);
    free(idx->lines);
    idx->lines = kept;
    idx->n = k;
    return KMS_OK;
}

const char *kms_summary_index_find(const kms_summary_index *idx,
                                   const char *input, bool *ok)
{
    size_t lo = 0, hi = idx->n;
    char key[4096];
    bool unused;
    ok = ok ? ok : &unused;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        first_field(idx->lines[mid], key, sizeof key);
        int c = strcmp(key, input);
        if (c == 0) {
            *ok = strncmp(status_of(idx->lines[mid]), "ok,", 3) == 0;
            return idx->lines[mid];
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *ok = false;
    return NULL;
}

void kms_summary_index_free(kms_summary_index *idx)
{
    if (!idx)
        return;
    free_lines(idx->lines, idx->n);
    idx->lines = NULL;
    idx->n = 0;
}

/* The N of the summary.shard-I-of-N.csv files in dir, 0 if none; -1 (err
 * set) when files of two shard counts lie there: two runs' shards. */
static int shard_count_in(const char *dir, kms_error *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        kms_error_set(err, KMS_ERR_IO, dir, 0, NULL, "%s", strerror(errno));
        return -1;
    }
    int count = 0;
    char first[300] = "";
    for (struct dirent *e; (e = readdir(d));) {
        int i, n;
        char tail[8];
        if (sscanf(e->d_name, "summary.shard-%d-of-%d.cs%1[v]", &i, &n, tail) != 3)
            continue;
        if (count && n != count) {
            kms_error_set(err, KMS_ERR_INPUT, dir, 0, NULL,
                          "%s and %s: shards of two runs (%d and %d shards); "
                          "remove the stale ones", first, e->d_name, count, n);
            count = -1;
            break;
        }
        count = n;
        snprintf(first, sizeof first, "%s", e->d_name);
    }
    closedir(d);
    if (count == 0)
        kms_error_set(err, KMS_ERR_INPUT, dir, 0, NULL,
                      "no summary.shard-I-of-N.csv files here");
    return count;
}

void kms_summary_run_name(char *buf, size_t len, int shard_index,
                          int shard_count)
{
    snprintf(buf, len, "summary.shard-%d-of-%d.run", shard_index, shard_count);
}

kms_status kms_summary_run_write(const char *dir, int shard_index,
                                 int shard_count, unsigned long long run_id,
                                 const kms_file_set *protect, kms_error *err)
{
    char name[128], text[64];
    kms_summary_run_name(name, sizeof name, shard_index, shard_count);
    int len = snprintf(text, sizeof text, "%016llx\n", run_id);
    return kms_output_write(dir, name, text, (size_t)len, protect, err);
}

/* The run id beside shard i of count, into *id. */
static kms_status read_run_id(const char *dir, int i, int count,
                              unsigned long long *id, kms_error *err)
{
    char name[128], path[4096];
    kms_summary_run_name(name, sizeof name, i, count);
    kms_path_join(path, sizeof path, dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return kms_error_set(err, KMS_ERR_IO, path, 0, NULL,
                             "%s (every sharded run writes its run id there)",
                             strerror(errno));
    int got = fscanf(f, "%16llx", id);
    fclose(f);
    if (got != 1)
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                             "not a kmseg run id");
    return KMS_OK;
}

/* Every shard must come from one run: the same config, inputs and count. */
static kms_status check_one_run(const char *dir, int count, kms_error *err)
{
    unsigned long long first = 0, id;
    for (int i = 0; i < count; i++) {
        kms_status st = read_run_id(dir, i, count, &id, err);
        if (st != KMS_OK)
            return st;
        if (i == 0)
            first = id;
        else if (id != first)
            return kms_error_set(err, KMS_ERR_INPUT, dir, 0, NULL,
                                 "summary.shard-0-of-%d.csv and "
                                 "summary.shard-%d-of-%d.csv: shards of two "
                                 "runs (run ids %016llx and %016llx); rerun "
                                 "the stale shard", count, i, count, first, id);
    }
    return KMS_OK;
}

kms_status kms_summary_merge(const char *dir, kms_merge_counts *counts,
                             kms_error *err)
{
    int count = shard_count_in(dir, err);
    if (count <= 0)
        return err->code;

    char ***lines = calloc((size_t)count, sizeof *lines);
    size_t *n = calloc((size_t)count, sizeof *n);
    char *buf = NULL;
    size_t len = 0, most = 0;
    kms_status st = KMS_OK;
    FILE *f = NULL;
    if (!lines || !n) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    for (int i = 0; i < count && st == KMS_OK; i++) {
        char name[128], path[4096];
        kms_summary_name(name, sizeof name, i, count);
        kms_path_join(path, sizeof path, dir, name);
        st = read_lines(path, &lines[i], &n[i], false, NULL, err);
        most = n[i] > most ? n[i] : most;
    }
    if (st == KMS_OK)
        st = check_one_run(dir, count, err);
    if (st != KMS_OK)
        goto out;
    f = open_memstream(&buf, &len);
    if (!f) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    /* shard i holds inputs i, i + N, i + 2N, ... in order: interleave */
    fputs(KMS_SUMMARY_HEADER "\n", f);
    for (size_t r = 0; r < most; r++)
        for (int i = 0; i < count; i++)
            if (r < n[i])
                fprintf(f, "%s\n", lines[i][r]);
    fclose(f);
    f = NULL;
    st = kms_output_write(dir, "summary.csv", buf, len, NULL, err);
    if (st == KMS_OK && counts) {
        counts->shards = count;
        counts->rows = 0;
        for (int i = 0; i < count; i++)
            counts->rows += n[i];
    }
out:
    if (f)
        fclose(f);
    for (int i = 0; lines && i < count; i++)
        free_lines(lines[i], n[i]);
    free(lines);
    free(n);
    free(buf);
    return st;
}
