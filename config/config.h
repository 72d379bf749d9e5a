/* INI files as a flat list of (section, key, value, line) entries, read with
 * inih, plus -s SECTION.KEY=VALUE overrides. Validation against the stage
 * tables happens when the pipeline is built, so every error can still name
 * the file, line and key it came from. */
#ifndef KMS_CONFIG_H
#define KMS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define KMS_CONFIG_CMDLINE "command line"

typedef struct kms_config_entry {
    char *section;
    char *key;
    char *value;
    int line;        /* 0 for a -s override */
    bool used;       /* claimed by a stage; unclaimed keys are errors */
} kms_config_entry;

typedef struct kms_config_section {
    char *name;
    int line;
} kms_config_section;

typedef struct kms_config {
    char *path;      /* as given */
    char *dir;       /* its folder: relative paths in the file start here */
    kms_config_entry *entries;
    size_t n_entries, cap_entries;
    kms_config_section *sections;
    size_t n_sections, cap_sections;
} kms_config;

/* Reads path. Errors (KMS_ERR_CONFIG/IO, naming file and line): unreadable
 * file, a syntax error, a key outside any section, a section or key given
 * twice. On error cfg is freed. */
kms_status kms_config_load(kms_config *cfg, const char *path, kms_error *err);

/* Applies "SECTION.KEY=VALUE" from the command line (replacing a value from
 * the file). A malformed assignment is KMS_ERR_CONFIG. */
kms_status kms_config_override(kms_config *cfg, const char *assignment,
                               kms_error *err);

/* The entry for section.key, or NULL. */
kms_config_entry *kms_config_get(const kms_config *cfg, const char *section,
                                 const char *key);

/* The section called name, or NULL. */
const kms_config_section *kms_config_section_find(const kms_config *cfg,
                                                  const char *name);

/* Frees everything; NULL or a zeroed config is a no-op. */
void kms_config_free(kms_config *cfg);

#endif
