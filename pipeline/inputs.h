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
    char *path;        /* a DICOM series: FOLDER/NAME, FOLDER holding its
                          first file, NAME its series name (no such file) */
    char stem[256];
    kms_error *error;  /* NULL unless the spec itself is bad (owned) */
    /* A DICOM series (two or more files, or one file found in a folder,
     * glob or list): its files sorted along the slice normal; NULL/0 for
     * every other input. */
    char **files;
    size_t n_files;
} kms_input;

typedef struct kms_input_list {
    kms_input *items;
    size_t n, cap;
    bool recursive;    /* folders: descend into subfolders */
    bool quiet;        /* no "skipped" lines on stderr */
    int list_depth;    /* @list files being read, one inside another */
    /* DICOM files named in @list files, grouped into series when the
     * outermost list is done */
    char **dicom;
    size_t n_dicom, cap_dicom;
} kms_input_list;

/* Expands one spec: a file, a folder, a glob, or @FILE naming a list file
 * with one spec per line (blank lines and # comments skipped; relative
 * specs start at the list file's folder). A relative spec starts at
 * base_dir (NULL: the current folder). DICOM files (kms_dicom_is_file,
 * whatever their extension) found in a folder, a glob or a list become one
 * input per series (kms_dicom_group); DICOM objects that are no images are
 * left out with a line "kmseg: skipped FILE: REASON" on stderr unless
 * list->quiet; a DICOM file among them that cannot be read (damaged,
 * truncated) is an input of its own that fails, and so is every series
 * beside it. A DICOM file given by itself is one 2-D slice. */
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
