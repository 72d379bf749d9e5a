#include <string.h>

#include "stages.h"

const kms_stage_class *const kms_stage_classes[] = {
    &kms_stage_read,
    &kms_stage_window,
    &kms_stage_denoise,
    &kms_stage_reshape,
    &kms_stage_kmeans,
    &kms_stage_recolor,
    &kms_stage_mask,
    &kms_stage_lung_mask,
    &kms_stage_evaluate,
    &kms_stage_write,
    NULL,
};

const kms_stage_class *kms_stage_find(const char *name)
{
    for (const kms_stage_class *const *c = kms_stage_classes; *c; c++)
        if (strcmp((*c)->name, name) == 0)
            return *c;
    return NULL;
}
