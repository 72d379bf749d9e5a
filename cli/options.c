#include "options.h"
#include "path.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h> /* getopt_long's optind */

enum { PARSED = -1, EXIT_USAGE = 2 };

static bool parse_k_range(const char *text, int *k_min, int *k_max)
{
    char tail;
    if (sscanf(text, "%d..%d%c", k_min, k_max, &tail) != 2)
        return false;
    return *k_min >= 1 && *k_max > *k_min && *k_max <= 255;
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "kmseg: error: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return EXIT_USAGE;
}

/* "-i PATH: No such file or directory" and the like, from errno */
static int usage_error_errno(const char *fmt, const char *arg)
{
    int e = errno;
    fprintf(stderr, "kmseg: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, ": %s\n", strerror(e));
    return EXIT_USAGE;
}

enum { OPT_K = 256, OPT_PROGRESS, OPT_RESUME, OPT_SHARD, OPT_NO_TIMINGS,
       OPT_STAGE_TIMES, OPT_MAX_PIXELS, OPT_NO_REPORT, OPT_FORCE };

/* One option; PARSED, or the exit status. */
static int parse_one(kms_cli_options *o, kms_command cmd, int c,
                     const char *arg)
{
    kms_batch_options *b = &o->batch;
    char tail;
    switch (c) {
    case 'i':
        if (!(o->inputs[o->n_inputs++] = kms_path_absolute(arg)))
            return usage_error("out of memory at -i %s", arg);
        return PARSED;
    case 'o':
        if (!arg[0]) /* "" would be the current folder */
            return usage_error("-o%s: empty output folder: name one", arg);
        free(o->output);
        if (!(o->output = kms_path_absolute(arg)))
            return usage_error("out of memory at -o %s", arg);
        return PARSED;
    case 's': o->sets[o->n_sets++] = arg; return PARSED;
    case 'q': b->quiet = true; return PARSED;
    case 'r': b->recursive = true; return PARSED;
    case 'j':
        if (sscanf(arg, "%d%c", &b->jobs, &tail) != 1 || b->jobs < 1 ||
            b->jobs > 1024)
            return usage_error("-j %s: want a number of jobs from 1 to 1024",
                               arg);
        return PARSED;
    case OPT_PROGRESS:
        if (strcmp(arg, "auto") == 0)
            b->progress = KMS_PROGRESS_AUTO;
        else if (strcmp(arg, "always") == 0)
            b->progress = KMS_PROGRESS_ALWAYS;
        else if (strcmp(arg, "never") == 0)
            b->progress = KMS_PROGRESS_NEVER;
        else
            return usage_error("--progress %s: want auto, always or never", arg);
        return PARSED;
    case OPT_RESUME: b->resume = true; return PARSED;
    case OPT_NO_TIMINGS: b->timings = false; return PARSED;
    case OPT_STAGE_TIMES: b->stage_times = true; return PARSED;
    case OPT_NO_REPORT: b->report = false; return PARSED;
    case OPT_FORCE: b->force = true; return PARSED;
    case OPT_SHARD:
        if (sscanf(arg, "%d/%d%c", &b->shard_index, &b->shard_count, &tail) != 2 ||
            b->shard_count < 1 || b->shard_index < 0 ||
            b->shard_index >= b->shard_count)
            return usage_error("--shard %s: want I/N with 0 <= I < N, e.g. "
                               "--shard 0/16", arg);
        return PARSED;
    case OPT_MAX_PIXELS: {
        unsigned long long v;
        if (sscanf(arg, "%llu%c", &v, &tail) != 1 || v < 1 || v > (1ULL << 40))
            return usage_error("--max-pixels %s: want a number of pixels from "
                               "1 to 2^40", arg);
        b->max_pixels = (size_t)v;
        return PARSED;
    }
    case OPT_K:
        if (cmd != KMS_CMD_ELBOW)
            return usage_error("--k%s is an option of elbow; for run use -s "
                               "kmeans.k=N", "");
        if (!parse_k_range(arg, &o->k_min, &o->k_max))
            return usage_error("--k %s: want MIN..MAX with 1 <= MIN < MAX <= "
                               "255, e.g. --k 1..10", arg);
        return PARSED;
    default:
        fprintf(stderr, "Try 'kmseg --help'.\n");
        return EXIT_USAGE;
    }
}

int kms_cli_options_parse(kms_cli_options *o, kms_command cmd, int argc,
                          char **argv, const char *usage_text)
{
    static const struct option longopts[] = {
        {"input", required_argument, NULL, 'i'},
        {"output", required_argument, NULL, 'o'},
        {"set", required_argument, NULL, 's'},
        {"quiet", no_argument, NULL, 'q'},
        {"recursive", no_argument, NULL, 'r'},
        {"jobs", required_argument, NULL, 'j'},
        {"progress", required_argument, NULL, OPT_PROGRESS},
        {"resume", no_argument, NULL, OPT_RESUME},
        {"shard", required_argument, NULL, OPT_SHARD},
        {"no-timings", no_argument, NULL, OPT_NO_TIMINGS},
        {"stage-times", no_argument, NULL, OPT_STAGE_TIMES},
        {"max-pixels", required_argument, NULL, OPT_MAX_PIXELS},
        {"k", required_argument, NULL, OPT_K},
        {"no-report", no_argument, NULL, OPT_NO_REPORT},
        {"force", no_argument, NULL, OPT_FORCE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    kms_batch_options_default(&o->batch);
    o->k_min = o->k_max = 0; /* elbow: the config's kmeans.k_min..k_max */
    o->inputs = calloc((size_t)argc, sizeof *o->inputs);
    o->sets = calloc((size_t)argc, sizeof *o->sets);
    if (!o->inputs || !o->sets)
        return usage_error("out of memory%s", "");
    optind = 1;
    opterr = 0; /* our own words, as every other error: kmseg: error: ... */
    for (int c; (c = getopt_long(argc, argv, ":i:o:s:qrj:h", longopts, NULL)) != -1;) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            return 0;
        }
        if (c == '?' || c == ':') {
            /* the word the user typed: argv[optind - 1] (a short option
             * inside a group: only its letter is known) */
            const char *word = argv[optind - 1];
            char letter[3] = {'-', (char)optopt, '\0'};
            if (optopt && word[0] == '-' && word[1] != '-')
                word = letter;
            bool no_value = c == '?' && optopt && word[1] == '-';
            fprintf(stderr,
                    c == ':'   ? "kmseg: error: %s: option '%s' needs a value\n"
                    : no_value ? "kmseg: error: %s: option '%s' takes no value\n"
                               : "kmseg: error: %s: unknown option '%s'\n",
                    argv[0], word);
            fprintf(stderr, "Try 'kmseg --help'.\n");
            return EXIT_USAGE;
        }
        int status = parse_one(o, cmd, c, optarg);
        if (status != PARSED)
            return status;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "kmseg: error: %s needs exactly one CONFIG file\n"
                        "Try 'kmseg --help'.\n", argv[0]);
        return EXIT_USAGE;
    }
    /* a mistyped -i is a usage error before anything runs, not a failed
     * input (a pattern that matches nothing is the batch's to report) */
    for (int i = 0; i < o->n_inputs; i++) {
        const char *path = o->inputs[i] + (o->inputs[i][0] == '@');
        struct stat sb;
        if (stat(path, &sb) != 0 && !strpbrk(path, "*?["))
            return usage_error_errno("-i %s", path);
    }
    o->config = argv[optind];
    o->batch.inputs = (const char *const *)o->inputs;
    o->batch.n_inputs = o->n_inputs;
    o->batch.output = o->output;
    return PARSED;
}

void kms_cli_options_free(kms_cli_options *o)
{
    for (int i = 0; o->inputs && i < o->n_inputs; i++)
        free(o->inputs[i]);
    free(o->inputs);
    free(o->sets);
    free(o->output);
    memset(o, 0, sizeof *o);
}
