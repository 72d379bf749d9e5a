/* Input lists: files, folders and globs expanded into a deterministic list
 * of items. A spec that yields nothing is an item of its own that fails, so
 * it shows up in summary.csv instead of vanishing. */
#ifndef KMS_INPUTS_H
#define KMS_INPUTS_H

#include <stddef.h>

#include "error.h"

typedef struct kms_input {
    char *path;
    char stem[256];
    kms_error error;   /* KMS_OK unless the spec itself is bad */
} kms_input;

typedef struct kms_input_list {
    kms_input *items;
    size_t n, cap;
} kms_input_list;

/* Expands one spec; a relative spec is taken from base_dir (NULL: as is). */
kms_status kms_inputs_add_spec(kms_input_list *list, const char *spec,
                               const char *base_dir, kms_error *err);

/* Expands a comma-separated list of specs. */
kms_status kms_inputs_add_list(kms_input_list *list, const char *specs,
                               const char *base_dir, kms_error *err);

/* Marks items whose stem repeats an earlier one: their products would
 * overwrite each other. */
void kms_inputs_check_stems(kms_input_list *list);

/* File name without folder and image extension (".nii.gz" counts as one). */
void kms_input_stem(const char *path, char *stem, size_t len);

void kms_inputs_free(kms_input_list *list);

#endif
