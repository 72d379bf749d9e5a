/* Shared by the libFuzzer targets of tests/fuzz: the readers take paths,
 * so every input is written to a file in a private temporary folder
 * (removed at exit), and the read stage is run the way the batch runs it. */
#ifndef KMS_FUZZ_UTIL_H
#define KMS_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "context.h"
#include "error.h"
#include "pipeline.h"

#define FZ_MAX_FILES 16

static char fz_dir_path[512];
static char fz_files[FZ_MAX_FILES][600];
static int fz_n_files;

static inline void fz_cleanup(void)
{
    for (int i = 0; i < fz_n_files; i++)
        unlink(fz_files[i]);
    if (fz_dir_path[0])
        rmdir(fz_dir_path);
}

/* The private folder, made on first use. */
static inline const char *fz_dir(void)
{
    if (!fz_dir_path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(fz_dir_path, sizeof fz_dir_path, "%s/kmseg-fuzz-XXXXXX",
                 tmp && tmp[0] ? tmp : "/tmp");
        if (!mkdtemp(fz_dir_path)) {
            perror("kmseg fuzz: mkdtemp");
            abort();
        }
        atexit(fz_cleanup);
    }
    return fz_dir_path;
}

/* dir/name, remembered for the clean-up (a handful of fixed names). */
static inline const char *fz_path(const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", fz_dir(), name);
    for (int i = 0; i < fz_n_files; i++)
        if (strcmp(fz_files[i], path) == 0)
            return fz_files[i];
    if (fz_n_files == FZ_MAX_FILES)
        abort();
    memcpy(fz_files[fz_n_files], path, sizeof path);
    return fz_files[fz_n_files++];
}

/* Writes the bytes to dir/name; returns the path. */
static inline const char *fz_write(const char *name, const uint8_t *data, size_t size)
{
    const char *path = fz_path(name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
    return path;
}

/* With KMSEG_FUZZ_VERBOSE set in the environment, each input's outcome on
 * stderr (to check that seeds get through): "ok" or kmseg's error line. */
static inline void fz_report(const char *what, kms_status st,
                             const kms_error *err)
{
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("KMSEG_FUZZ_VERBOSE") != NULL;
    if (!verbose)
        return;
    char line[2600] = "ok";
    if (st != KMS_OK)
        kms_error_format(err, line, sizeof line);
    fprintf(stderr, "kmseg fuzz: %s: %s\n", what, line);
}

/* A pipeline built from INI text (a harness's fixed set-up; any error is
 * the harness's bug). */
static inline void fz_pipeline(kms_pipeline *pl, const char *name, const char *ini)
{
    kms_config cfg;
    kms_error err;
    kms_error_clear(&err);
    const char *path = fz_write(name, (const uint8_t *)ini, strlen(ini));
    if (kms_config_load(&cfg, path, &err) != KMS_OK ||
        kms_pipeline_build(pl, &cfg, &err) != KMS_OK) {
        char line[2600];
        kms_error_format(&err, line, sizeof line);
        fprintf(stderr, "kmseg fuzz: set-up: %s\n", line);
        abort();
    }
    kms_config_free(&cfg);
}

static inline int fz_verbose_image(void)
{
    return getenv("KMSEG_FUZZ_VERBOSE") != NULL;
}

/* Runs the pipeline on one input as pipeline/batch.c does (a DICOM series:
 * files, n_files), then frees everything it made. */
#define FZ_MAX_PIXELS ((size_t)1 << 22)

static inline kms_status fz_run(const kms_pipeline *pl, const char *input,
                         const char *const *files, size_t n_files)
{
    kms_context ctx;
    kms_error err;
    kms_error_clear(&err);
    memset(&ctx, 0, sizeof ctx);
    ctx.input_path = input;
    ctx.input_files = files;
    ctx.n_input_files = n_files;
    snprintf(ctx.stem, sizeof ctx.stem, "fuzz");
    ctx.output_dir = fz_dir();
    ctx.base_dir = pl->base_dir;
    ctx.seed = (uint64_t)pl->params.seed;
    ctx.threads = 1;
    /* as --max-pixels would: an input may claim at most 2^22 pixels here,
     * so a header's size cannot push a run past -rss_limit_mb (the
     * default limit, 2^28, is sized for a whole machine) */
    ctx.max_pixels = FZ_MAX_PIXELS;
    kms_status st = kms_pipeline_run(pl, &ctx, &err);
    if (st == KMS_OK && fz_verbose_image())
        fprintf(stderr, "kmseg fuzz: image %dx%d, %d channel(s), depth %d, "
                "%d slice(s)\n", ctx.image.width, ctx.image.height,
                ctx.image.channels, (int)ctx.image.depth, ctx.slices);
    fz_report("read", st, &err);
    kms_context_clear(&ctx);
    return st;
}

#endif
