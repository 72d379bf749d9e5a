/* Input lists: files, folders (optionally recursive), globs and list files
 * (@list.txt) expanded into a deterministic list of items. A spec that
 * yields nothing is an item of its own that fails, so it shows up in
 * summary.csv instead of vanishing. */
#ifndef KMS_INPUTS_H
#define KMS_INPUTS_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct kms_input {
    char *path;
    char stem[256];
    kms_error *error;  /* NULL unless the spec itself is bad (owned) */
} kms_input;

typedef struct kms_input_list {
    kms_input *items;
    size_t n, cap;
    bool recursive;    /* folders: descend into subfolders */
    int list_depth;    /* @list files being read, one inside another */
} kms_input_list;

/* Expands one spec: a file, a folder, a glob, or @FILE naming a list file
 * with one spec per line (blank lines and # comments skipped; relative
 * specs start at the list file's folder). A relative spec starts at
 * base_dir (NULL: the current folder). */
kms_status kms_inputs_add_spec(kms_input_list *list, const char *spec,
                               const char *base_dir, kms_error *err);

/* Expands a comma-separated list of specs. */
kms_status kms_inputs_add_list(kms_input_list *list, const char *specs,
                               const char *base_dir, kms_error *err);

/* Marks items whose stem repeats an earlier one: their products would
 * overwrite each other. */
void kms_inputs_check_stems(kms_input_list *list);

/* Keeps items i with i % count == index (shard `index` of `count`). */
void kms_inputs_keep_shard(kms_input_list *list, int index, int count);

/* File name without folder and image extension (".nii.gz" counts as one). */
void kms_input_stem(const char *path, char *stem, size_t len);

void kms_inputs_free(kms_input_list *list);

#endif
