/* What the units check and the orientation handling cost the lung pipeline,
 * measured side by side in one run (claim: together under 5 % per slice).
 *
 * Per 512x512 signed-16 HU CT slice, in process, one thread:
 *   auto    samples/lung_ct.ini run on the slice through the pipeline API:
 *           read TIFF -> window -> denoise -> reshape -> kmeans -> lung_mask
 *           -> mask PNG written, with lung_mask.orient = auto (the default)
 *   stored  the same with lung_mask.orient = stored (no detection): on
 *           upright slices auto - stored is the detection's cost
 *   check   kms_check_hu alone on the slice as read (hu_checked reset)
 * The config's evaluate stage and overlay product are dropped: they are not
 * part of a production run, and a smaller denominator only makes the
 * ratios larger. Both pipeline times include lung_mask's own call of
 * kms_check_hu (once per slice), so a last line also relates the overhead
 * to the pipeline without it (stored - check).
 *
 * An extra line takes the detection's cost from the lung_mask stage's own
 * time (ctx->stage_ms), free of the other stages' noise. Dropping evaluate
 * makes the config loader warn once per build that [evaluate] is unused
 * (stderr): expected.
 *
 * Two warm-up passes, then REPS repetitions; each runs every slice auto,
 * stored (that order swapped every other rep) and check. A rep's value is
 * its mean over slices; printed are the medians over reps with min-max,
 * and the ratios, computed rep by rep, the same way.
 *
 * Usage, from the repo root:
 *   build/bench/bench_ct_overhead [FOLDER] [REPS]
 * FOLDER: its *.tif slices (default ../shared/data/lung-ct/images when it
 * exists, else samples/ct); REPS: default 15. */
#include <glob.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "context.h"
#include "hu_check.h"
#include "inputs.h"
#include "opencv_c.h"
#include "pipeline.h"
#include "bench_stats.h"

#define CONFIG_PATH "samples/lung_ct.ini"
#define STAGES "read, window, denoise, reshape, kmeans, lung_mask, write"

enum { WARMUP = 2, DEFAULT_REPS = 15 };

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void die(const char *what, const kms_error *err)
{
    fprintf(stderr, "bench_ct_overhead: %s: %s%s%s%s%s\n", what,
            err->file[0] ? err->file : "", err->file[0] ? ": " : "",
            err->key[0] ? err->key : "", err->key[0] ? ": " : "",
            err->message);
    exit(1);
}

/* The lung config with evaluate and overlay dropped and orient set. */
static void build(kms_pipeline *pl, const char *orient)
{
    kms_config cfg;
    kms_error err;
    char orient_set[64];
    snprintf(orient_set, sizeof orient_set, "lung_mask.orient=%s", orient);
    const char *overrides[] = {"pipeline.stages=" STAGES,
                               "write.products=mask", orient_set, NULL};
    kms_error_clear(&err);
    if (kms_config_load(&cfg, CONFIG_PATH, &err) != KMS_OK)
        die("config (run from the repo root)", &err);
    for (const char *const *o = overrides; *o; o++)
        if (kms_config_override(&cfg, *o, &err) != KMS_OK)
            die("override", &err);
    kms_status st = kms_pipeline_build(pl, &cfg, &err);
    kms_config_free(&cfg);
    if (st != KMS_OK)
        die("pipeline", &err);
}

typedef struct slice {
    char path[1024];
    char stem[256];
    kms_context read_ctx; /* after read only: what kms_check_hu is timed on */
} slice;

/* A context for one input, as kms_batch_context sets it up. */
static void context_for(kms_context *ctx, const kms_pipeline *pl,
                        const slice *s, const char *out_dir)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->input_path = s->path;
    snprintf(ctx->stem, sizeof ctx->stem, "%s", s->stem);
    ctx->output_dir = out_dir;
    ctx->base_dir = pl->base_dir;
    ctx->seed = (uint64_t)pl->params.seed;
    ctx->threads = 1;
}

/* FNV-1a of the mask: tells whether auto turned a slice (then its time is
 * not detection alone). */
static uint64_t mask_hash(const kms_image *m)
{
    uint64_t h = 1469598103934665603u;
    for (int y = 0; y < m->height; y++) {
        const uint8_t *row = kms_image_row(m, y);
        for (int x = 0; x < m->width * m->channels; x++)
            h = (h ^ row[x]) * 1099511628211u;
    }
    return h;
}

/* One whole run of pl on s, timed like summary.csv's ms_total (the run,
 * not the context's set-up and freeing). */
static double run_pipeline(const kms_pipeline *pl, size_t lung_idx,
                           const slice *s, const char *out_dir,
                           double *lung_ms, uint64_t *hash)
{
    kms_context ctx;
    kms_error err;
    context_for(&ctx, pl, s, out_dir);
    kms_error_clear(&err);
    double t0 = now_ms();
    kms_status st = kms_pipeline_run(pl, &ctx, &err);
    double ms = now_ms() - t0;
    if (st != KMS_OK)
        die("run", &err);
    *lung_ms = ctx.stage_ms[lung_idx];
    if (hash)
        *hash = mask_hash(&ctx.mask);
    kms_context_clear(&ctx);
    return ms;
}

static double time_check(slice *s)
{
    kms_error err;
    kms_error_clear(&err);
    s->read_ctx.hu_checked = false; /* else the cached pass skips the work */
    double t0 = now_ms();
    kms_status st = kms_check_hu(&s->read_ctx, &err);
    double ms = now_ms() - t0;
    if (st != KMS_OK || !s->read_ctx.hu_checked)
        die("kms_check_hu", &err);
    return ms;
}

static double *per_rep(int reps)
{
    double *v = calloc((size_t)reps, sizeof *v);
    if (!v) {
        fprintf(stderr, "bench_ct_overhead: out of memory\n");
        exit(1);
    }
    return v;
}

static void print_row(const char *name, const double *v, int n)
{
    bench_spread s = bench_spread_of(v, n);
    printf("  %-40s %8.3f  [%.3f - %.3f]\n", name, s.med, s.min, s.max);
}

static void print_pct(const char *name, const double *v, int n)
{
    bench_spread s = bench_spread_of(v, n);
    printf("  %-48s %+7.2f %%  [%+.2f - %+.2f]\n", name, s.med, s.min, s.max);
}

int main(int argc, char **argv)
{
    struct stat sb;
    const char *dir = argc > 1                             ? argv[1]
                      : stat("../shared/data/lung-ct/images", &sb) == 0
                          ? "../shared/data/lung-ct/images"
                          : "samples/ct";
    int reps = argc > 2 ? atoi(argv[2]) : DEFAULT_REPS;
    if (reps < 1) {
        fprintf(stderr, "usage: bench_ct_overhead [FOLDER] [REPS >= 1]\n");
        return 2;
    }

    char pattern[1100];
    glob_t g;
    snprintf(pattern, sizeof pattern, "%s/*.tif", dir);
    if (glob(pattern, 0, NULL, &g) != 0 || g.gl_pathc == 0) {
        fprintf(stderr, "bench_ct_overhead: no *.tif in %s\n", dir);
        return 1;
    }
    int n = (int)g.gl_pathc;
    slice *sl = calloc((size_t)n, sizeof *sl);
    if (!sl)
        return 1;

    /* one thread: OpenCV's pool would otherwise blur what a stage costs */
    kms_cv_set_num_threads(1, NULL);
    kms_pipeline pl_auto, pl_stored;
    build(&pl_auto, "auto");
    build(&pl_stored, "stored");
    size_t lung_idx = kms_pipeline_stage_index(&pl_auto, "lung_mask");

    char out_dir[] = "/tmp/bench_ct_overhead_XXXXXX";
    if (!mkdtemp(out_dir)) {
        perror("bench_ct_overhead: mkdtemp");
        return 1;
    }

    int width = 0, height = 0;
    for (int i = 0; i < n; i++) {
        slice *s = &sl[i];
        kms_error err;
        snprintf(s->path, sizeof s->path, "%s", g.gl_pathv[i]);
        kms_input_stem(s->path, s->stem, sizeof s->stem);
        context_for(&s->read_ctx, &pl_auto, s, out_dir);
        kms_error_clear(&err);
        if (kms_pipeline_run_span(&pl_auto, &s->read_ctx, 0, 1, &err) != KMS_OK)
            die("read", &err);
        const kms_image *img = kms_context_as_read(&s->read_ctx);
        if (!s->read_ctx.hu || img->channels != 1 ||
            img->depth != KMS_DEPTH_S16) {
            fprintf(stderr, "bench_ct_overhead: %s is not a signed 16-bit "
                            "CT slice\n", s->path);
            return 1;
        }
        width = img->width;
        height = img->height;
    }
    globfree(&g);

    /* per rep: ms per slice, then the ratios in % */
    double *a = per_rep(reps), *st = per_rep(reps), *ck = per_rep(reps),
           *la = per_rep(reps), *ls = per_rep(reps);
    double *r_orient = per_rep(reps), *r_check = per_rep(reps),
           *r_both = per_rep(reps), *r_bare = per_rep(reps),
           *r_stage = per_rep(reps);

    int same_masks = 0;
    for (int rep = -WARMUP; rep < reps; rep++) {
        double sa = 0, ss = 0, sc = 0, sla = 0, sls = 0;
        for (int i = 0; i < n; i++) {
            double lm_a, lm_s;
            uint64_t ha = 0, hs = 0;
            /* masks compared once, in a warm-up pass */
            bool first = rep == -WARMUP;
            /* alternate which goes first: neither gets the warmer caches */
            if (rep % 2 == 0) {
                sa += run_pipeline(&pl_auto, lung_idx, &sl[i], out_dir, &lm_a,
                                   first ? &ha : NULL);
                ss += run_pipeline(&pl_stored, lung_idx, &sl[i], out_dir, &lm_s,
                                   first ? &hs : NULL);
            } else {
                ss += run_pipeline(&pl_stored, lung_idx, &sl[i], out_dir, &lm_s,
                                   first ? &hs : NULL);
                sa += run_pipeline(&pl_auto, lung_idx, &sl[i], out_dir, &lm_a,
                                   first ? &ha : NULL);
            }
            sc += time_check(&sl[i]);
            sla += lm_a;
            sls += lm_s;
            same_masks += first && ha == hs;
        }
        if (rep < 0)
            continue;
        a[rep] = sa / n;
        st[rep] = ss / n;
        ck[rep] = sc / n;
        la[rep] = sla / n;
        ls[rep] = sls / n;
        double extra = ck[rep] + (a[rep] - st[rep]);
        r_orient[rep] = 100 * (a[rep] - st[rep]) / st[rep];
        r_check[rep] = 100 * ck[rep] / st[rep];
        r_both[rep] = 100 * extra / st[rep];
        r_bare[rep] = 100 * extra / (st[rep] - ck[rep]);
        /* the rest of the pipeline is the same work both ways: without its
         * timing noise the detection's cost shows more sharply */
        r_stage[rep] = 100 * (la[rep] - ls[rep]) / st[rep];
    }

    printf("kmseg CT overhead: units check + orientation handling vs the lung "
           "pipeline\n");
    printf("%d slices %dx%d from %s; %d reps after %d warm-up passes; one "
           "thread (OpenCV %s)\n",
           n, width, height, dir, reps, WARMUP, kms_cv_version());
    printf("pipeline: %s with stages = %s; write.products = mask (evaluate "
           "and overlay dropped)\n",
           CONFIG_PATH, STAGES);
    printf("masks of auto and stored identical on %d/%d slices (identical: "
           "detection kept the slice as stored)\n\n",
           same_masks, n);

    printf("ms per slice: median over reps [min - max]; a rep = mean over "
           "slices\n");
    print_row("auto    (pipeline, orient = auto)", a, reps);
    print_row("stored  (pipeline, orient = stored)", st, reps);
    print_row("check   (kms_check_hu alone)", ck, reps);
    print_row("lung_mask stage, auto (info)", la, reps);
    print_row("lung_mask stage, stored (info)", ls, reps);

    printf("\noverhead, per rep: median [min - max]\n");
    print_pct("orientation  (auto - stored) / stored", r_orient, reps);
    print_pct("units check  check / stored", r_check, reps);
    print_pct("both         (check + (auto - stored)) / stored", r_both, reps);
    print_pct("both, vs the pipeline without its check", r_bare, reps);
    print_pct("orientation, lung_mask stage only (info)", r_stage, reps);
    printf("  (pipeline times include lung_mask's one kms_check_hu; the last "
           "line divides by stored - check)\n");

    bench_spread both = bench_spread_of(r_both, reps);
    printf("\nclaim \"under 5 %%\": %s (median %.2f %%, worst rep %.2f %%)\n",
           both.med < 5 ? (both.max < 5 ? "holds in every rep"
                                        : "holds at the median, not in every rep")
                        : "does NOT hold",
           both.med, both.max);

    /* the README's row and prose figures (bench/update_readme.py) */
    bench_spread sa = bench_spread_of(a, reps), ss = bench_spread_of(st, reps),
           sc = bench_spread_of(ck, reps), sk = bench_spread_of(r_check, reps);
    printf("README| | `build/bench/bench_ct_overhead [FOLDER] [REPS]` | the "
           "units check and the orientation detection against the lung "
           "pipeline per slice (`lung_ct.ini` writing the mask, one thread, "
           "%d slices, %d interleaved reps) | pipeline %.2f ms [%.2f–%.2f] "
           "with `orient = stored`, %.2f ms [%.2f–%.2f] with `auto`; the "
           "check alone %.3f ms [%.3f–%.3f]: %+.1f %% [%+.1f–%+.1f]; both "
           "together %+.1f %% [%+.1f–%+.1f] |\n",
           n, reps, ss.med, ss.min, ss.max, sa.med, sa.min, sa.max, sc.med,
           sc.min, sc.max, sk.med, sk.min, sk.max, both.med, both.min,
           both.max);
    printf("README-VALUE| units_check_ms %.2f\n", sc.med);
    printf("README-VALUE| units_check_pct %.1f\n", sk.med);

    for (int i = 0; i < n; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s_mask.png", out_dir, sl[i].stem);
        unlink(p);
        kms_context_clear(&sl[i].read_ctx);
    }
    rmdir(out_dir);
    kms_pipeline_free(&pl_auto);
    kms_pipeline_free(&pl_stored);
    free(sl);
    double *bufs[] = {a,       st,      ck,     la,     ls,
                      r_orient, r_check, r_both, r_bare, r_stage};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    return 0;
}
