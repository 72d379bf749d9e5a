/* kmseg stages: every stage and key with its default, range and help,
 * printed from the parameter tables themselves so the docs never drift. */
#include <stdio.h>

#include "commands.h"

static void print_table(const char *section, const char *description,
                        const kms_param *table)
{
    printf("[%s]\n    %s\n", section, description);
    for (const kms_param *p = table; p->name; p++) {
        char kind[600];
        kms_param_describe(p, kind, sizeof kind);
        printf("  %-16s %s; default: %s\n", p->name, kind,
               p->default_value ? (p->default_value[0] ? p->default_value : "(empty)")
                                : "(required)");
        printf("  %-16s %s\n", "", p->help);
    }
    printf("\n");
}

int kms_cmd_stages(void)
{
    print_table("pipeline", "the run itself: inputs, output folder, stages, seed",
                kms_pipeline_param_table);
    for (const kms_stage_class *const *c = kms_stage_classes; *c; c++)
        print_table((*c)->name, (*c)->description, (*c)->params);
    return 0;
}
