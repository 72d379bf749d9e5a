/* The options run, compare and elbow share, parsed from argv. */
#ifndef KMS_OPTIONS_H
#define KMS_OPTIONS_H

#include "batch.h"

typedef enum kms_command { KMS_CMD_RUN, KMS_CMD_COMPARE, KMS_CMD_ELBOW } kms_command;

typedef struct kms_cli_options {
    kms_batch_options batch;
    const char *config;  /* the one CONFIG argument */
    char **inputs;       /* -i, made absolute (owned) */
    int n_inputs;
    char *output;        /* -o, made absolute (owned), or NULL */
    const char **sets;   /* -s S.KEY=VAL, in order (argv's strings) */
    int n_sets;
    int k_min, k_max;    /* elbow --k */
} kms_cli_options;

/* Parses argv (argv[0] is the command's name). Returns -1 when the options
 * are good, else the exit status to leave with: 0 after --help, 2 after a
 * usage error (printed). Free o with kms_cli_options_free in every case. */
int kms_cli_options_parse(kms_cli_options *o, kms_command cmd, int argc,
                          char **argv, const char *usage_text);

void kms_cli_options_free(kms_cli_options *o);

#endif
