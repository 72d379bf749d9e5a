/* The commands behind `kmseg run`, `compare`, `elbow` and `stages`, one file
 * each. Each returns the process exit status: 0 all inputs succeeded, 1 some
 * failed, 2 nothing could run (the error is printed). */
#ifndef KMS_COMMANDS_H
#define KMS_COMMANDS_H

#include "batch.h"
#include "pipeline.h"

int kms_cmd_run(const kms_pipeline *pl, const kms_batch_options *opt);
int kms_cmd_compare(const kms_pipeline *pl, const kms_batch_options *opt);
int kms_cmd_elbow(const kms_pipeline *pl, const kms_batch_options *opt,
                  int k_min, int k_max);
int kms_cmd_stages(void);

#endif
