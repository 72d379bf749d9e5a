#include "inputs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "dicom.h"
#include "output.h"
#include "path.h"

static const char *const image_exts[] = {".png", ".jpg", ".jpeg", ".tif",
                                         ".tiff", ".bmp", ".nii", ".nii.gz",
                                         NULL};

static bool is_image_name(const char *name)
{
    for (int i = 0; image_exts[i]; i++)
        if (kms_ends_with(name, image_exts[i]))
            return true;
    return false;
}

void kms_input_stem(const char *path, char *stem, size_t len)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (kms_ends_with(base, ".nii.gz"))
        n -= 7;
    else {
        const char *dot = strrchr(base, '.');
        if (dot && dot != base)
            n = (size_t)(dot - base);
    }
    snprintf(stem, len, "%.*s", (int)n, base);
}

static kms_input *push(kms_input_list *list, const char *path, kms_error *err)
{
    if (list->n == list->cap) {
        size_t cap = list->cap ? 2 * list->cap : 32;
        kms_input *items = realloc(list->items, cap * sizeof *items);
        if (!items) {
            kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
            return NULL;
        }
        list->items = items;
        list->cap = cap;
    }
    kms_input *it = &list->items[list->n];
    memset(it, 0, sizeof *it);
    it->path = strdup(path);
    if (!it->path) {
        kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        return NULL;
    }
    kms_input_stem(path, it->stem, sizeof it->stem);
    list->n++;
    return it;
}

/* Marks an item as failed; the message names the spec. */
static kms_status fail_item(kms_input *it, kms_status code, const char *what,
                            const char *fmt, const char *detail)
{
    it->error = calloc(1, sizeof *it->error);
    if (!it->error)
        return KMS_ERR_NOMEM;
    kms_error_set(it->error, code, what, 0, NULL, fmt, detail);
    return KMS_OK;
}

/* An item for a file: anything but a regular file (a FIFO would make the
 * reader wait forever, a device read without end) fails at once. A missing
 * file fails when read, with the reader's message. */
static kms_status push_file(kms_input_list *list, const char *path,
                            kms_error *err)
{
    kms_input *it = push(list, path, err);
    if (!it)
        return KMS_ERR_NOMEM;
    struct stat sb;
    if (stat(path, &sb) != 0 || S_ISREG(sb.st_mode))
        return KMS_OK;
    return fail_item(it, KMS_ERR_INPUT, path, "%s",
                     S_ISFIFO(sb.st_mode) ? "not a regular file (a FIFO)"
                                          : "not a regular file");
}

/* An input found in a subfolder of the folder dir keeps that subfolder in
 * its stem ("p1/slice" for dir/p1/slice.tif), so the products mirror the
 * input tree and per-patient folders may reuse file names. */
static void mirror_stem(kms_input *it, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (strncmp(it->path, dir, n) != 0 || it->path[n] != '/')
        return;
    const char *rel = it->path + n + 1;
    const char *last = strrchr(rel, '/');
    if (!last)
        return;
    char stem[2 * sizeof it->stem + 8];
    size_t folder = (size_t)(last - rel);
    if (folder >= sizeof it->stem)
        return;
    int len = snprintf(stem, sizeof stem, "%.*s/%s", (int)folder, rel,
                       it->stem);
    /* too deep to name: the plain stem, which the stem check holds to
     * being unique */
    if (len > 0 && (size_t)len < sizeof it->stem)
        memcpy(it->stem, stem, (size_t)len + 1);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct name_list {
    char **names;
    size_t n, cap;
} name_list;

static kms_status add_name(name_list *l, const char *name, kms_error *err)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **nn = realloc(l->names, cap * sizeof *nn);
        if (!nn)
            return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        l->names = nn;
        l->cap = cap;
    }
    if (!(l->names[l->n] = strdup(name)))
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    l->n++;
    return KMS_OK;
}

/* Image paths under dir (and its subfolders when recursive) into out, DICOM
 * files into dicom; hidden files and folders are left out. Unreadable
 * subfolders are skipped. */
static kms_status scan_folder(const char *dir, bool recursive, name_list *out,
                              name_list *dicom, kms_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return KMS_OK;
    kms_status st = KMS_OK;
    for (struct dirent *e; st == KMS_OK && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        kms_path_join(path, sizeof path, dir, e->d_name);
        struct stat sb, lsb;
        if (lstat(path, &lsb) != 0)
            continue;
        if (stat(path, &sb) != 0) {
            /* a dangling or looping link: an input that fails (with the
             * reader's message) rather than a slice silently missing from
             * its series */
            st = add_name(is_image_name(e->d_name) ? out : dicom, path, err);
            continue;
        }
        if (S_ISDIR(sb.st_mode)) {
            /* linked folders are not followed (as find(1)): a link to a
             * parent would list everything again, forever */
            if (recursive && !S_ISLNK(lsb.st_mode))
                st = scan_folder(path, true, out, dicom, err);
        } else if (is_image_name(e->d_name) ||
                   (!S_ISREG(sb.st_mode) && kms_dicom_name(e->d_name))) {
            /* (not regular: fails as an input of its own, push_file) */
            st = add_name(out, path, err);
        } else if (S_ISREG(sb.st_mode) && kms_dicom_is_file(path)) {
            st = add_name(dicom, path, err);
        }
    }
    closedir(d);
    return st;
}

static void free_names(name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
    memset(l, 0, sizeof *l);
}

/* One item per series: path FOLDER/NAME (the folder of its first file),
 * stem NAME; the series' files move into the item. */
static kms_status push_series(kms_input_list *list, kms_dicom_series *s,
                              kms_error *err)
{
    char path[4096];
    const char *first = s->files[0];
    const char *slash = strrchr(first, '/');
    if (slash)
        snprintf(path, sizeof path, "%.*s/%s", (int)(slash - first), first,
                 s->name);
    else
        snprintf(path, sizeof path, "%s", s->name);
    kms_input *it = push(list, path, err);
    if (!it)
        return KMS_ERR_NOMEM;
    snprintf(it->stem, sizeof it->stem, "%s", s->name);
    it->files = s->files;
    it->n_files = s->n_files;
    s->files = NULL;
    s->n_files = 0;
    it->error = s->error;
    s->error = NULL;
    return KMS_OK;
}

/* Groups DICOM files into series, one item each, and empties files. */
static kms_status add_dicom_files(kms_input_list *list, name_list *files,
                                  kms_error *err)
{
    if (files->n == 0)
        return KMS_OK;
    kms_dicom_groups g;
    kms_status st = kms_dicom_group((const char *const *)files->names,
                                    files->n, &g, err);
    if (st != KMS_OK)
        return st;
    for (size_t i = 0; i < g.n_skipped && !list->quiet; i++)
        fprintf(stderr, "kmseg: skipped %s: %s\n", g.skipped[i].path,
                g.skipped[i].reason);
    /* a damaged file is an input of its own that fails, not a line on
     * stderr: summary.csv and the exit status must show it */
    for (size_t i = 0; i < g.n_unreadable && st == KMS_OK; i++) {
        kms_input *it = push(list, g.unreadable[i].path, err);
        st = it ? fail_item(it, KMS_ERR_INPUT, g.unreadable[i].path, "%s",
                            g.unreadable[i].reason)
                : KMS_ERR_NOMEM;
    }
    for (size_t i = 0; i < g.n_series && st == KMS_OK; i++)
        st = push_series(list, &g.series[i], err);
    kms_dicom_groups_free(&g);
    free_names(files);
    return st;
}

static kms_status add_folder(kms_input_list *list, const char *dir,
                             kms_error *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        kms_input *it = push(list, dir, err);
        if (!it)
            return KMS_ERR_NOMEM;
        return fail_item(it, KMS_ERR_IO, dir, "cannot open folder: %s",
                         strerror(errno));
    }
    closedir(d);
    name_list found = {0}, dicom = {0};
    size_t before = list->n;
    kms_status st = scan_folder(dir, list->recursive, &found, &dicom, err);
    if (st != KMS_OK)
        goto out;
    /* full paths sorted: the same order on every machine and file system */
    if (found.n > 0)
        qsort(found.names, found.n, sizeof *found.names, cmp_str);
    for (size_t i = 0; i < found.n && st == KMS_OK; i++)
        st = push_file(list, found.names[i], err);
    if (st == KMS_OK)
        st = add_dicom_files(list, &dicom, err);
    for (size_t i = before; i < list->n && st == KMS_OK; i++)
        mirror_stem(&list->items[i], dir);
    if (st == KMS_OK && list->n == before) {
        kms_input *it = push(list, dir, err);
        if (!it) {
            st = KMS_ERR_NOMEM;
            goto out;
        }
        st = fail_item(it, KMS_ERR_INPUT, dir, "%s",
                       list->recursive
                           ? "folder and its subfolders have no images (.png "
                             ".jpg .tif .bmp .nii .nii.gz, DICOM)"
                           : "folder has no images (.png .jpg .tif .bmp .nii "
                             ".nii.gz, DICOM; --recursive looks in "
                             "subfolders)");
        goto out;
    }
out:
    free_names(&found);
    free_names(&dicom);
    return st;
}

/* @FILE: one spec per line, relative to the list file's folder. Lists may
 * name lists, up to a depth that stops a list naming itself. */
enum { MAX_LIST_DEPTH = 8 };

static kms_status add_list_file(kms_input_list *list, const char *path,
                                kms_error *err)
{
    if (list->list_depth >= MAX_LIST_DEPTH)
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, NULL,
                             "input lists nested more than %d deep (does a "
                             "list name itself?)",
                             MAX_LIST_DEPTH);
    FILE *f = fopen(path, "r");
    if (!f)
        return kms_error_set(err, KMS_ERR_IO, path, 0, NULL,
                             "cannot open input list: %s", strerror(errno));
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    kms_status st = KMS_OK;
    char *line = NULL;
    size_t cap = 0, before = list->n, before_dicom = list->n_dicom;
    ssize_t got;
    list->list_depth++;
    while (st == KMS_OK && (got = getline(&line, &cap, f)) >= 0) {
        while (got > 0 && isspace((unsigned char)line[got - 1]))
            line[--got] = '\0';
        const char *spec = line;
        while (isspace((unsigned char)*spec))
            spec++;
        if (*spec && *spec != '#')
            st = kms_inputs_add_spec(list, spec, dir, err);
    }
    list->list_depth--;
    free(line);
    fclose(f);
    bool named_dicom = list->n_dicom > before_dicom;
    if (st == KMS_OK && list->list_depth == 0) {
        name_list dicom = {list->dicom, list->n_dicom, list->cap_dicom};
        list->dicom = NULL;
        list->n_dicom = list->cap_dicom = 0;
        st = add_dicom_files(list, &dicom, err);
        free_names(&dicom);
    }
    /* a list naming only non-image DICOM objects names no inputs either */
    if (st == KMS_OK && list->n == before &&
        (list->list_depth == 0 || !named_dicom)) {
        kms_input *it = push(list, path, err);
        st = it ? fail_item(it, KMS_ERR_INPUT, path, "%s",
                            "input list names no inputs")
                : KMS_ERR_NOMEM;
    }
    return st;
}

static kms_status add_glob(kms_input_list *list, const char *pattern,
                           kms_error *err)
{
    glob_t g;
    name_list dicom = {0};
    int rc = glob(pattern, 0, NULL, &g); /* glob sorts its matches */
    kms_status st = KMS_OK;
    if (rc == GLOB_NOMATCH) {
        kms_input *it = push(list, pattern, err);
        if (!it)
            st = KMS_ERR_NOMEM;
        else
            st = fail_item(it, KMS_ERR_IO, pattern, "%s",
                           "no file matches this pattern");
        goto out;
    }
    if (rc != 0) {
        st = kms_error_set(err, rc == GLOB_NOSPACE ? KMS_ERR_NOMEM : KMS_ERR_IO,
                           pattern, 0, NULL, "cannot expand pattern");
        goto out;
    }
    size_t before = list->n;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        struct stat sb;
        if (stat(g.gl_pathv[i], &sb) == 0 && S_ISDIR(sb.st_mode))
            continue;
        if (!is_image_name(g.gl_pathv[i]) && kms_dicom_is_file(g.gl_pathv[i]))
            st = add_name(&dicom, g.gl_pathv[i], err);
        else
            st = push_file(list, g.gl_pathv[i], err);
        if (st != KMS_OK)
            goto out;
    }
    if ((st = add_dicom_files(list, &dicom, err)) != KMS_OK)
        goto out;
    if (list->n == before) {
        kms_input *it = push(list, pattern, err);
        st = it ? fail_item(it, KMS_ERR_INPUT, pattern, "%s",
                            "the pattern matches only folders")
                : KMS_ERR_NOMEM;
    }
out:
    if (rc == 0 || rc == GLOB_NOMATCH)
        globfree(&g);
    free_names(&dicom);
    return st;
}

kms_status kms_inputs_add_spec(kms_input_list *list, const char *spec,
                               const char *base_dir, kms_error *err)
{
    char path[4096];
    bool list_file = spec[0] == '@';
    if (list_file)
        spec++;
    if (base_dir && spec[0] != '/')
        kms_path_join(path, sizeof path, base_dir, spec);
    else
        snprintf(path, sizeof path, "%s", spec);
    if (list_file)
        return add_list_file(list, path, err);
    /* a file literally named scan[1].tif is that file, not a pattern */
    struct stat sb;
    bool exists = stat(path, &sb) == 0;
    if (!exists && strpbrk(path, "*?["))
        return add_glob(list, path, err);
    if (exists && S_ISDIR(sb.st_mode))
        return add_folder(list, path, err);
    /* DICOM files of a list are grouped into series when the list ends */
    if (list->list_depth > 0 && !is_image_name(path) && exists &&
        kms_dicom_is_file(path)) {
        name_list l = {list->dicom, list->n_dicom, list->cap_dicom};
        kms_status st = add_name(&l, path, err);
        list->dicom = l.names;
        list->n_dicom = l.n;
        list->cap_dicom = l.cap;
        return st;
    }
    return push_file(list, path, err);
}

kms_status kms_inputs_add_list(kms_input_list *list, const char *specs,
                               const char *base_dir, kms_error *err)
{
    char *copy = strdup(specs);
    if (!copy)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    kms_status st = KMS_OK;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok && st == KMS_OK;
         tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok))
            tok++;
        size_t n = strlen(tok);
        while (n > 0 && isspace((unsigned char)tok[n - 1]))
            tok[--n] = '\0';
        if (n > 0)
            st = kms_inputs_add_spec(list, tok, base_dir, err);
    }
    free(copy);
    return st;
}

typedef struct stem_ref {
    const char *stem;
    size_t index;
} stem_ref;

static int by_stem_then_index(const void *a, const void *b)
{
    const stem_ref *x = a, *y = b;
    int c = strcmp(x->stem, y->stem);
    if (c)
        return c;
    return (x->index > y->index) - (x->index < y->index);
}

void kms_inputs_check_stems(kms_input_list *list)
{
    /* sorted by stem, a repeat sits right after the input it repeats */
    stem_ref *refs = malloc((list->n ? list->n : 1) * sizeof *refs);
    if (!refs)
        return; /* only a check: without memory for it, names stay as given */
    size_t m = 0;
    for (size_t i = 0; i < list->n; i++)
        if (!list->items[i].error)
            refs[m++] = (stem_ref){list->items[i].stem, i};
    qsort(refs, m, sizeof *refs, by_stem_then_index);
    for (size_t j = 1; j < m; j++) {
        if (strcmp(refs[j].stem, refs[j - 1].stem) != 0)
            continue;
        size_t first = j - 1;
        while (first > 0 && strcmp(refs[first - 1].stem, refs[j].stem) == 0)
            first--;
        kms_input *it = &list->items[refs[j].index];
        fail_item(it, KMS_ERR_INPUT, it->path,
                  "same name as %s: their products would overwrite each other",
                  list->items[refs[first].index].path);
    }
    free(refs);
}

static void free_item(kms_input *it)
{
    free(it->path);
    free(it->error);
    for (size_t j = 0; j < it->n_files; j++)
        free(it->files[j]);
    free(it->files);
}

void kms_inputs_keep_shard(kms_input_list *list, int index, int count)
{
    size_t kept = 0;
    for (size_t i = 0; i < list->n; i++) {
        if ((int)(i % (size_t)count) == index) {
            list->items[kept++] = list->items[i];
        } else {
            free_item(&list->items[i]);
        }
    }
    list->n = kept;
}

void kms_inputs_free(kms_input_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->n; i++)
        free_item(&list->items[i]);
    free(list->items);
    for (size_t i = 0; i < list->n_dicom; i++)
        free(list->dicom[i]);
    free(list->dicom);
    memset(list, 0, sizeof *list);
}
