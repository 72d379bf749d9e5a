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

#include "output.h"

static const char *const image_exts[] = {".png", ".jpg", ".jpeg", ".tif",
                                         ".tiff", ".bmp", ".nii", ".nii.gz",
                                         NULL};

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static bool is_image_name(const char *name)
{
    for (int i = 0; image_exts[i]; i++)
        if (ends_with(name, image_exts[i]))
            return true;
    return false;
}

void kms_input_stem(const char *path, char *stem, size_t len)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (ends_with(base, ".nii.gz"))
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

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static kms_status add_folder(kms_input_list *list, const char *dir,
                             kms_error *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        kms_input *it = push(list, dir, err);
        if (!it)
            return KMS_ERR_NOMEM;
        kms_error_set(&it->error, KMS_ERR_IO, dir, 0, NULL,
                      "cannot open folder: %s", strerror(errno));
        return KMS_OK;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    kms_status st = KMS_OK;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' || !is_image_name(e->d_name))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                                   "out of memory");
                goto out;
            }
            names = nn;
        }
        names[n] = strdup(e->d_name);
        if (!names[n]) {
            st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
            goto out;
        }
        n++;
    }
    if (n == 0) {
        kms_input *it = push(list, dir, err);
        if (!it) {
            st = KMS_ERR_NOMEM;
            goto out;
        }
        kms_error_set(&it->error, KMS_ERR_INPUT, dir, 0, NULL,
                      "folder has no images (.png .jpg .tif .bmp .nii .nii.gz)");
        goto out;
    }
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        kms_path_join(path, sizeof path, dir, names[i]);
        if (!push(list, path, err)) {
            st = KMS_ERR_NOMEM;
            goto out;
        }
    }
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return st;
}

static kms_status add_glob(kms_input_list *list, const char *pattern,
                           kms_error *err)
{
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g); /* glob sorts its matches */
    kms_status st = KMS_OK;
    if (rc == GLOB_NOMATCH) {
        kms_input *it = push(list, pattern, err);
        if (!it)
            st = KMS_ERR_NOMEM;
        else
            kms_error_set(&it->error, KMS_ERR_IO, pattern, 0, NULL,
                          "no file matches this pattern");
        goto out;
    }
    if (rc != 0) {
        st = kms_error_set(err, rc == GLOB_NOSPACE ? KMS_ERR_NOMEM : KMS_ERR_IO,
                           pattern, 0, NULL, "cannot expand pattern");
        goto out;
    }
    for (size_t i = 0; i < g.gl_pathc; i++) {
        struct stat sb;
        if (stat(g.gl_pathv[i], &sb) == 0 && S_ISDIR(sb.st_mode))
            continue;
        if (!push(list, g.gl_pathv[i], err)) {
            st = KMS_ERR_NOMEM;
            goto out;
        }
    }
out:
    if (rc == 0 || rc == GLOB_NOMATCH)
        globfree(&g);
    return st;
}

kms_status kms_inputs_add_spec(kms_input_list *list, const char *spec,
                               const char *base_dir, kms_error *err)
{
    char path[4096];
    if (base_dir && spec[0] != '/')
        kms_path_join(path, sizeof path, base_dir, spec);
    else
        snprintf(path, sizeof path, "%s", spec);
    if (strpbrk(path, "*?["))
        return add_glob(list, path, err);
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return add_folder(list, path, err);
    /* a missing file fails when read, with the reader's message */
    return push(list, path, err) ? KMS_OK : KMS_ERR_NOMEM;
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

void kms_inputs_check_stems(kms_input_list *list)
{
    /* quadratic, but only over names; thousands of inputs take microseconds
     * compared with the images themselves */
    for (size_t i = 1; i < list->n; i++) {
        if (list->items[i].error.code != KMS_OK)
            continue;
        for (size_t j = 0; j < i; j++) {
            if (list->items[j].error.code != KMS_OK ||
                strcmp(list->items[i].stem, list->items[j].stem) != 0)
                continue;
            kms_error_set(&list->items[i].error, KMS_ERR_INPUT,
                          list->items[i].path, 0, NULL,
                          "same name as %s: their products would overwrite "
                          "each other",
                          list->items[j].path);
            break;
        }
    }
}

void kms_inputs_free(kms_input_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->n; i++)
        free(list->items[i].path);
    free(list->items);
    memset(list, 0, sizeof *list);
}
