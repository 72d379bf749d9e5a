/* kmseg: the command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__ /* defined by the headers above */
#include <malloc.h>
#endif

#include "commands.h"
#include "config.h"
#include "opencv_c.h"
#include "options.h"
#include "path.h"
#include "provenance.h"
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
    "  --resume              skip inputs whose products all exist already;\n"
    "                        refused (exit 2) when a key that alters products\n"
    "                        differs from the previous run's\n"
    "  --force               with --resume after such a change: redo every input\n"
    "  --no-report           no report.html (compare.html, elbow.html)\n"
    "  --shard I/N           only inputs i with i mod N = I (I from 0); the\n"
    "                        summary is summary.shard-I-of-N.csv\n"
    "  --no-timings          leave ms_* empty in summary.csv (same bytes on\n"
    "                        every run)\n"
    "  --stage-times         print the mean time per input of each stage\n"
    "  --max-pixels N        refuse an input of more than N pixels (voxels),\n"
    "                        found from its header before it is read\n"
    "                        (default 268435456 = 2^28: 512 x 512 x 1024)\n"
    "  -q, --quiet           no progress or summary on stderr\n"
    "  --k MIN..MAX          elbow only: the range of K (default: the config's\n"
    "                        kmeans.k_min..k_max, the range of k = auto)\n"
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
    "the output folder, with report.html, kmseg.resolved.ini (every key the\n"
    "run used; kmseg loads it again) and kmseg.run.txt; see README.md.\n";

static void print_error(const kms_error *err)
{
    char line[2600];
    kms_error_format(err, line, sizeof line);
    fprintf(stderr, "kmseg: error: %s\n", line);
}

/* run, compare and elbow: options, the config with its -s overrides, the
 * pipeline built and checked, then the command. */
static int cmd_pipeline(kms_command cmd, int argc, char **argv)
{
    kms_cli_options o;
    kms_config cfg = {0};
    kms_pipeline pl = {0};
    kms_error err;
    kms_error_clear(&err);
    /* getopt permutes argv: the command line as typed, for provenance */
    char **typed = calloc((size_t)argc + 2, sizeof *typed);
    if (typed)
        memcpy(typed, argv - 1, ((size_t)argc + 1) * sizeof *typed);
    int status = kms_cli_options_parse(&o, cmd, argc, argv, usage_text);
    if (status >= 0)
        goto out;
    status = EXIT_USAGE;
    if (kms_config_load(&cfg, o.config, &err) != KMS_OK)
        goto fail;
    for (int i = 0; i < o.n_sets; i++)
        if (kms_config_override(&cfg, o.sets[i], &err) != KMS_OK)
            goto fail;
    if (kms_pipeline_build(&pl, &cfg, &err) != KMS_OK)
        goto fail;
    /* the resolved config, versions and command line go with the outputs */
    static const char *const names[] = {"run", "compare", "elbow"};
    kms_provenance prov = {KMS_VERSION, names[cmd], o.config,
                           typed ? argc + 1 : 0, typed};
    o.batch.provenance = &prov;
    kms_batch_install_signals();
    switch (cmd) {
    case KMS_CMD_RUN: status = kms_cmd_run(&pl, &o.batch); break;
    case KMS_CMD_COMPARE: status = kms_cmd_compare(&pl, &o.batch); break;
    case KMS_CMD_ELBOW:
        status = kms_cmd_elbow(&pl, &o.batch, o.k_min, o.k_max);
        break;
    }
    goto out;
fail:
    print_error(&err);
out:
    kms_pipeline_free(&pl);
    kms_config_free(&cfg);
    kms_cli_options_free(&o);
    free(typed);
    return status;
}

static int cmd_merge(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "kmseg: error: merge-summaries needs one folder\n");
        return EXIT_USAGE;
    }
    kms_error err;
    kms_error_clear(&err);
    kms_merge_counts counts;
    if (kms_summary_merge(argv[1], &counts, &err) != KMS_OK) {
        print_error(&err);
        return EXIT_SOME_FAILED;
    }
    char path[4096];
    kms_path_join(path, sizeof path, argv[1], "summary.csv");
    fprintf(stderr, "kmseg: merged %d shard summaries (%zu rows) into %s\n",
            counts.shards, counts.rows, path);
    return 0;
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
        return cmd_pipeline(KMS_CMD_RUN, argc - 1, argv + 1);
    if (strcmp(cmd, "compare") == 0)
        return cmd_pipeline(KMS_CMD_COMPARE, argc - 1, argv + 1);
    if (strcmp(cmd, "elbow") == 0)
        return cmd_pipeline(KMS_CMD_ELBOW, argc - 1, argv + 1);
    if (strcmp(cmd, "stages") == 0)
        return kms_cmd_stages();
    if (strcmp(cmd, "merge-summaries") == 0)
        return cmd_merge(argc - 1, argv + 1);
    fprintf(stderr, "kmseg: error: unknown command '%s'\nTry 'kmseg --help'.\n",
            cmd);
    return EXIT_USAGE;
}
