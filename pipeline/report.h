/* report.html: one self-contained page per command in the output folder
 * (inline CSS and JS, no network; pictures referenced by relative links):
 * the run's facts and resolved config, and a table of the inputs, sortable
 * and paged, with a thumbnail of each overlay (compare: its diff and a
 * chart of the speed-up and agreement; elbow: the plot with the knee). */
#ifndef KMS_REPORT_H
#define KMS_REPORT_H

#include <stddef.h>

#include "batch.h"
#include "error.h"
#include "pipeline.h"

/* report.html of a run (report.shard-I-of-N.html for a shard), from
 * summary_name as written in the output folder: with --resume every row
 * (kept: how many rows --resume kept from the previous run). Needs
 * opt->provenance. */
kms_status kms_report_run(const kms_batch *b, const kms_pipeline *pl,
                          const kms_batch_options *opt,
                          const char *summary_name, int kept, kms_error *err);

/* compare.html or elbow.html from the command's CSV (csv, len) and its
 * failed inputs (errors: input NUL message NUL, each). */
kms_status kms_report_each(const kms_batch *b, const kms_pipeline *pl,
                           const kms_batch_options *opt, kms_report_kind kind,
                           const char *csv, size_t csv_len, const char *errors,
                           size_t errors_len, kms_error *err);

#endif
