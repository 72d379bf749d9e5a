/* kmseg: the command line. */
#include <getopt.h>
#include <stdbool.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "commands.h"
#include "config.h"
#include "opencv_c.h"
#include "pipeline.h"
#include "stage.h"
#include "summary.h"

#ifndef KMS_VERSION
#define KMS_VERSION "unknown"
#endif

enum { EXIT_SOME_FAILED = 1, EXIT_USAGE = 2 };

static const char usage_text[] =
    "Usage: kmseg COMMAND [OPTIONS]\n"
    "Segment images by k-means clustering, driven by an INI pipeline config.\n"
    "\n"
    "Commands:\n"
    "  run CONFIG      run the config's stages over its inputs\n"
    "  compare CONFIG  k-means with both backends (native, opencv) on the same\n"
    "                  samples: compare.csv, {stem}_diff.png, a table, the\n"
    "                  median speed-up\n"
    "  elbow CONFIG    WCSS for every K in a range and the knee (Kneedle):\n"
    "                  elbow.csv, {stem}_elbow.png\n"
    "  merge-summaries DIR\n"
    "                  join the summary.shard-I-of-N.csv files of --shard\n"
    "                  runs in DIR into DIR/summary.csv\n"
    "  stages          list every stage and key with defaults, ranges, help\n"
    "\n"
    "Options of run, compare and elbow:\n"
    "  -i, --input PATH      input file, folder or glob (repeatable; replaces\n"
    "                        pipeline.input; relative to the current folder)\n"
    "  -o, --output DIR      output folder (replaces pipeline.output)\n"
    "  -s, --set S.KEY=VAL   override any config key, e.g. -s kmeans.k=3\n"
    "  -r, --recursive       folders: also look in subfolders\n"
    "  -j, --jobs N          inputs in parallel (default: all cores); products\n"
    "                        are the same bytes whatever N is\n"
    "  --progress WHEN       auto (on a terminal), always, never\n"
    "  --resume              skip inputs whose products all exist already\n"
    "  --shard I/N           only inputs i with i mod N = I (I from 0); the\n"
    "                        summary is summary.shard-I-of-N.csv\n"
    "  --no-timings          leave ms_* empty in summary.csv (same bytes on\n"
    "                        every run)\n"
    "  --stage-times         print the mean time per input of each stage\n"
    "  -q, --quiet           no progress or summary on stderr\n"
    "  --k MIN..MAX          elbow only: the range of K (default 1..10)\n"
    "\n"
    "  -h, --help            this help\n"
    "  -V, --version         version of kmseg and OpenCV\n"
    "\n"
    "Inputs: files, folders, globs, and @LIST (a file of inputs, one a line).\n"
    "Exit status: 0 all inputs succeeded, 1 some failed (the others were\n"
    "written), 2 usage or config error (nothing was run), 130 or 143\n"
    "stopped by SIGINT (Ctrl-C) or SIGTERM (finished inputs and summary.csv\n"
    "are kept; --resume goes on).\n"
    "Outputs: {stem}_recolor.png, {stem}_labels.png, ... and summary.csv in\n"
    "the output folder; see README.md.\n";

static void print_error(const kms_error *err)
{
    char line[2600];
    kms_error_format(err, line, sizeof line);
    fprintf(stderr, "kmseg: error: %s\n", line);
}

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

static int cmd_stages(void)
{
    print_table("pipeline", "the run itself: inputs, output folder, stages, seed",
                kms_pipeline_param_table);
    for (const kms_stage_class *const *c = kms_stage_classes; *c; c++)
        print_table((*c)->name, (*c)->description, (*c)->params);
    return 0;
}

/* Command-line paths are relative to the current folder, not the config's;
 * "@list" keeps its @. */
static char *absolute(const char *path)
{
    if (path[0] == '@') {
        char *rest = absolute(path + 1);
        char *s = rest ? malloc(strlen(rest) + 2) : NULL;
        if (s)
            sprintf(s, "@%s", rest);
        free(rest);
        return s;
    }
    if (path[0] == '/')
        return strdup(path);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return strdup(path);
    size_t n = strlen(cwd) + strlen(path) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", cwd, path);
    return s;
}

typedef enum command { CMD_RUN, CMD_COMPARE, CMD_ELBOW } command;

static bool parse_k_range(const char *text, int *k_min, int *k_max)
{
    char tail;
    if (sscanf(text, "%d..%d%c", k_min, k_max, &tail) != 2)
        return false;
    return *k_min >= 1 && *k_max > *k_min && *k_max <= 255;
}

/* run, compare and elbow share their options and the config loading. */
static int cmd_pipeline(command cmd, int argc, char **argv)
{
    enum { OPT_K = 256, OPT_PROGRESS, OPT_RESUME, OPT_SHARD, OPT_NO_TIMINGS,
           OPT_STAGE_TIMES };
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
        {"k", required_argument, NULL, OPT_K},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int status = EXIT_USAGE;
    char **inputs = calloc((size_t)argc, sizeof *inputs);
    char **sets = calloc((size_t)argc, sizeof *sets);
    char *output = NULL;
    int n_inputs = 0, n_sets = 0, k_min = 1, k_max = 10;
    kms_batch_options opt;
    kms_batch_options_default(&opt);
    kms_config cfg = {0};
    kms_pipeline pl = {0};
    kms_error err;
    kms_error_clear(&err);
    if (!inputs || !sets) {
        fprintf(stderr, "kmseg: out of memory\n");
        goto out;
    }
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "i:o:s:qrj:h", longopts, NULL)) != -1;) {
        char tail;
        switch (c) {
        case 'i':
            inputs[n_inputs] = absolute(optarg);
            if (!inputs[n_inputs++])
                goto out;
            break;
        case 'o':
            if (!optarg[0]) { /* "" would be the current folder */
                fprintf(stderr, "kmseg: -o: empty output folder: name one\n");
                goto out; /* status is EXIT_USAGE */
            }
            free(output);
            output = absolute(optarg);
            break;
        case 's': sets[n_sets++] = optarg; break;
        case 'q': opt.quiet = true; break;
        case 'r': opt.recursive = true; break;
        case 'j':
            if (sscanf(optarg, "%d%c", &opt.jobs, &tail) != 1 || opt.jobs < 1 ||
                opt.jobs > 1024) {
                fprintf(stderr, "kmseg: error: -j %s: want a number of jobs "
                                "from 1 to 1024\n", optarg);
                goto out;
            }
            break;
        case OPT_PROGRESS:
            if (strcmp(optarg, "auto") == 0)
                opt.progress = KMS_PROGRESS_AUTO;
            else if (strcmp(optarg, "always") == 0)
                opt.progress = KMS_PROGRESS_ALWAYS;
            else if (strcmp(optarg, "never") == 0)
                opt.progress = KMS_PROGRESS_NEVER;
            else {
                fprintf(stderr, "kmseg: error: --progress %s: want auto, "
                                "always or never\n", optarg);
                goto out;
            }
            break;
        case OPT_RESUME: opt.resume = true; break;
        case OPT_NO_TIMINGS: opt.timings = false; break;
        case OPT_STAGE_TIMES: opt.stage_times = true; break;
        case OPT_SHARD:
            if (sscanf(optarg, "%d/%d%c", &opt.shard_index, &opt.shard_count,
                       &tail) != 2 || opt.shard_count < 1 ||
                opt.shard_index < 0 || opt.shard_index >= opt.shard_count) {
                fprintf(stderr, "kmseg: error: --shard %s: want I/N with "
                                "0 <= I < N, e.g. --shard 0/16\n", optarg);
                goto out;
            }
            break;
        case OPT_K:
            if (cmd != CMD_ELBOW) {
                fprintf(stderr, "kmseg: error: --k is an option of elbow; "
                                "for run use -s kmeans.k=N\n");
                goto out;
            }
            if (!parse_k_range(optarg, &k_min, &k_max)) {
                fprintf(stderr, "kmseg: error: --k %s: want MIN..MAX with "
                                "1 <= MIN < MAX <= 255, e.g. --k 1..10\n",
                        optarg);
                goto out;
            }
            break;
        case 'h': fputs(usage_text, stdout); status = 0; goto out;
        default:
            fprintf(stderr, "Try 'kmseg --help'.\n");
            goto out;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "kmseg: error: %s needs exactly one CONFIG file\n"
                        "Try 'kmseg --help'.\n", argv[0]);
        goto out;
    }
    if (kms_config_load(&cfg, argv[optind], &err) != KMS_OK)
        goto fail;
    for (int i = 0; i < n_sets; i++)
        if (kms_config_override(&cfg, sets[i], &err) != KMS_OK)
            goto fail;
    if (kms_pipeline_build(&pl, &cfg, &err) != KMS_OK)
        goto fail;
    opt.inputs = (const char *const *)inputs;
    opt.n_inputs = n_inputs;
    opt.output = output;
    kms_batch_install_signals();
    switch (cmd) {
    case CMD_RUN: status = kms_cmd_run(&pl, &opt); break;
    case CMD_COMPARE: status = kms_cmd_compare(&pl, &opt); break;
    case CMD_ELBOW: status = kms_cmd_elbow(&pl, &opt, k_min, k_max); break;
    }
    goto out;
fail:
    print_error(&err);
    status = EXIT_USAGE;
out:
    kms_pipeline_free(&pl);
    kms_config_free(&cfg);
    for (int i = 0; inputs && i < n_inputs; i++)
        free(inputs[i]);
    free(inputs);
    free(sets);
    free(output);
    return status;
}

int main(int argc, char **argv)
{
#ifdef __GLIBC__
    /* Every input allocates and frees the same few image-sized buffers.
     * Past glibc's default 128 KiB threshold each would be a fresh mmap,
     * paid for in page faults and zeroing on every input; from the heap
     * they are reused. */
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
#endif
    if (argc < 2) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 ||
        strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        printf("kmseg %s (OpenCV %s)\n", KMS_VERSION, kms_cv_version());
        return 0;
    }
    if (strcmp(cmd, "run") == 0)
        return cmd_pipeline(CMD_RUN, argc - 1, argv + 1);
    if (strcmp(cmd, "compare") == 0)
        return cmd_pipeline(CMD_COMPARE, argc - 1, argv + 1);
    if (strcmp(cmd, "elbow") == 0)
        return cmd_pipeline(CMD_ELBOW, argc - 1, argv + 1);
    if (strcmp(cmd, "stages") == 0)
        return cmd_stages();
    if (strcmp(cmd, "merge-summaries") == 0) {
        if (argc != 3) {
            fprintf(stderr, "kmseg: error: merge-summaries needs one folder\n");
            return EXIT_USAGE;
        }
        kms_error err;
        kms_error_clear(&err);
        if (kms_summary_merge(argv[2], &err) != KMS_OK) {
            print_error(&err);
            return EXIT_SOME_FAILED;
        }
        return 0;
    }
    fprintf(stderr, "kmseg: error: unknown command '%s'\nTry 'kmseg --help'.\n",
            cmd);
    return EXIT_USAGE;
}
