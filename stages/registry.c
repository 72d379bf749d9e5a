/* The stage registry: every stage, in the order `kmseg stages` lists them.
 * A new stage is its own file (defining kms_stage_NAME) and one line here;
 * commands find what a stage does through its class's hooks, not its name. */
#include <string.h>

#include "stage.h"

#define STAGES(X)                                                              \
    X(read)                                                                    \
    X(window)                                                                  \
    X(denoise)                                                                 \
    X(reshape)                                                                 \
    X(kmeans)                                                                  \
    X(recolor)                                                                 \
    X(mask)                                                                    \
    X(lung_mask)                                                               \
    X(evaluate)                                                                \
    X(write)

#define DECLARE(name) extern const kms_stage_class kms_stage_##name;
STAGES(DECLARE)
#undef DECLARE

#define ENTRY(name) &kms_stage_##name,
const kms_stage_class *const kms_stage_classes[] = {STAGES(ENTRY) NULL};
#undef ENTRY

const kms_stage_class *kms_stage_find(const char *name)
{
    for (const kms_stage_class *const *c = kms_stage_classes; *c; c++)
        if (strcmp((*c)->name, name) == 0)
            return *c;
    return NULL;
}
