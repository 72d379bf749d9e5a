/* Provenance of a run: the fully resolved config (every key of [pipeline]
 * and of every stage, defaults included, after -s, paths absolute) as an
 * INI file kmseg loads again, the versions and the command line. --resume
 * checks the previous run's resolved config against this one's. */
#ifndef KMS_PROVENANCE_H
#define KMS_PROVENANCE_H

#include <stdbool.h>
#include <stddef.h>

#include "batch.h"
#include "error.h"
#include "pipeline.h"

/* What only the command line knows; set by main and passed down through
 * kms_batch_options.provenance (NULL: nothing is written). */
typedef struct kms_provenance {
    const char *version;      /* kmseg's */
    const char *command;      /* "run", "compare" or "elbow" */
    const char *config_path;  /* as given */
    int argc;                 /* the whole command line, argv[0] first */
    char *const *argv;
} kms_provenance;

/* The resolved config of a run in dir out_dir. *text is malloc'ed. */
kms_status kms_resolved_config(const kms_pipeline *pl,
                               const kms_batch_options *opt,
                               const char *out_dir, char **text, size_t *len,
                               kms_error *err);

/* Whether a key can change a product (a stage key, pipeline.stages, seed:
 * yes; pipeline.input and output: no). */
bool kms_key_alters_products(const char *section, const char *key);

/* At the start of a command, the output folder locked: with --resume (run
 * only), compares OUT/kmseg.resolved.ini of the previous run with this
 * run's; a difference in a key that alters products is KMS_ERR_CONFIG
 * naming it with both values, unless opt->force: then *redo_all is set.
 * Then writes the resolved config and the run's facts (versions, date,
 * command line): kmseg.resolved.ini and kmseg.run.txt for run (shards:
 * kmseg.run.shard-I-of-N.txt), compare.resolved.ini and compare.run.txt,
 * elbow.* for the others. */
kms_status kms_provenance_start(const kms_batch *b, const kms_pipeline *pl,
                                const kms_batch_options *opt, bool *redo_all,
                                kms_error *err);

/* The command line as one shell-quoted line (malloc'ed, NULL when out of
 * memory). */
char *kms_provenance_command_line(const kms_provenance *prov);

/* "2026-11-30 03:04:05 UTC", now. */
void kms_provenance_date(char *buf, size_t len);

/* The file names of a command's provenance and report ("run" ...). */
void kms_provenance_names(const kms_provenance *prov,
                          const kms_batch_options *opt, char *resolved,
                          char *facts, char *report, size_t len);

#endif
