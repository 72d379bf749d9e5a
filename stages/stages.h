/* The stage classes, one per file in stages/. */
#ifndef KMS_STAGES_H
#define KMS_STAGES_H

#include "stage.h"

extern const kms_stage_class kms_stage_read;
extern const kms_stage_class kms_stage_denoise;
extern const kms_stage_class kms_stage_reshape;
extern const kms_stage_class kms_stage_kmeans;
extern const kms_stage_class kms_stage_recolor;
extern const kms_stage_class kms_stage_write;

#endif
