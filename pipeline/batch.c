#include "batch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "opencv_c.h"
#include "provenance.h"
#include "report.h"
#include "summary.h"
#include "clock.h"
#include "path.h"

volatile sig_atomic_t kms_batch_stop = 0;

static void on_signal(int sig)
{
    kms_batch_stop = sig;
}

int kms_batch_stop_status(void)
{
    return 128 + (kms_batch_stop ? (int)kms_batch_stop : SIGINT);
}

void kms_batch_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C stops at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* an ignored SIGCHLD is inherited through exec and would make waitpid
     * lose the status of the processes that decode JPEG 2000 */
    signal(SIGCHLD, SIG_DFL);
}

void kms_batch_options_default(kms_batch_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->jobs = 0;
    opt->progress = KMS_PROGRESS_AUTO;
    opt->timings = true;
    opt->report = true;
}

static int cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void kms_batch_context(const kms_batch *b, const kms_pipeline *pl, size_t i,
                       kms_context *ctx)
{
    const kms_input *in = &b->inputs.items[i];
    memset(ctx, 0, sizeof *ctx);
    ctx->input_path = in->path;
    ctx->input_files = (const char *const *)in->files;
    ctx->n_input_files = in->n_files;
    snprintf(ctx->stem, sizeof ctx->stem, "%s", in->stem);
    ctx->output_dir = b->out_dir;
    ctx->base_dir = pl->base_dir;
    ctx->inputs = &b->protect;
    ctx->seed = (uint64_t)pl->params.seed;
    ctx->threads = 1;
    ctx->max_pixels = b->max_pixels;
}

void kms_batch_report(const kms_error *err)
{
    char line[2600];
    kms_error_format(err, line, sizeof line);
    fprintf(stderr, "kmseg: error: %s\n", line);
}

kms_status kms_batch_write(const kms_batch *b, const char *name,
                           const void *buf, size_t len, kms_error *err)
{
    return kms_output_write(b->out_dir, name, buf, len, &b->protect, err);
}

/* FNV-1a, to tell runs apart: not for security. */
static unsigned long long hash_bytes(unsigned long long h, const void *p,
                                     size_t n)
{
    for (const unsigned char *c = p; n--; c++)
        h = (h ^ *c) * 0x100000001b3ULL;
    return h;
}

/* What makes two shards parts of one run: the pipeline, every input (before
 * sharding) and the shard count. */
static unsigned long long run_id(const kms_pipeline *pl,
                                 const kms_input_list *list, int shard_count)
{
    unsigned long long h = 0xcbf29ce484222325ULL;
    h = hash_bytes(h, pl->params.stages, strlen(pl->params.stages) + 1);
    h = hash_bytes(h, &pl->params.seed, sizeof pl->params.seed);
    for (size_t s = 0; s < pl->n_stages; s++) {
        const kms_stage_class *cls = pl->stages[s].cls;
        h = hash_bytes(h, cls->name, strlen(cls->name) + 1);
        h = hash_bytes(h, pl->stages[s].params, cls->params_size);
    }
    for (size_t i = 0; i < list->n; i++)
        h = hash_bytes(h, list->items[i].path, strlen(list->items[i].path) + 1);
    return hash_bytes(h, &shard_count, sizeof shard_count);
}

static kms_status collect_inputs(const kms_pipeline *pl,
                                 const kms_batch_options *opt,
                                 kms_input_list *list,
                                 unsigned long long *id, kms_error *err)
{
    kms_status st = KMS_OK;
    list->recursive = opt->recursive;
    list->quiet = opt->quiet;
    if (opt->n_inputs > 0) {
        for (int i = 0; i < opt->n_inputs && st == KMS_OK; i++)
            st = kms_inputs_add_spec(list, opt->inputs[i], NULL, err);
    } else {
        st = kms_inputs_add_list(list, pl->params.input, pl->base_dir, err);
    }
    if (st != KMS_OK)
        return st;
    if (list->n == 0)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "pipeline.input",
                             "no inputs: set pipeline.input or give -i");
    /* stems are checked over all inputs, so every shard agrees on them */
    kms_inputs_check_stems(list);
    *id = run_id(pl, list, opt->shard_count);
    if (opt->shard_count > 0)
        kms_inputs_keep_shard(list, opt->shard_index, opt->shard_count);
    return KMS_OK;
}

kms_status kms_batch_open(kms_batch *b, const kms_pipeline *pl,
                          const kms_batch_options *opt, kms_error *err)
{
    memset(b, 0, sizeof *b);
    b->lock.fd = -1;
    b->max_pixels = kms_max_pixels(opt->max_pixels);
    const char **paths = NULL;
    if (opt->output)
        snprintf(b->out_dir, sizeof b->out_dir, "%s", opt->output);
    else
        kms_path_join(b->out_dir, sizeof b->out_dir, pl->base_dir,
                      pl->params.output);
    kms_status st = kms_output_prepare_dir(b->out_dir, err);
    if (st == KMS_OK)
        st = kms_dir_lock_take(&b->lock, b->out_dir, opt->shard_index,
                               opt->shard_count, err);
    if (st == KMS_OK)
        st = collect_inputs(pl, opt, &b->inputs, &b->run_id, err);
    if (st != KMS_OK)
        goto out;
    /* every file of a DICOM series too, not only the series' name */
    size_t n_paths = b->inputs.n;
    for (size_t i = 0; i < b->inputs.n; i++)
        n_paths += b->inputs.items[i].n_files;
    paths = calloc(n_paths + 1, sizeof *paths);
    if (!paths) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < b->inputs.n; i++) {
        const kms_input *in = &b->inputs.items[i];
        paths[k++] = in->path;
        for (size_t j = 0; j < in->n_files; j++)
            paths[k++] = in->files[j];
    }
    st = kms_file_set_build(&b->protect, paths, k, err);
out:
    free(paths);
    if (st != KMS_OK)
        kms_batch_close(b);
    return st;
}

void kms_batch_close(kms_batch *b)
{
    if (!b)
        return;
    kms_inputs_free(&b->inputs);
    kms_file_set_free(&b->protect);
    kms_dir_lock_release(&b->lock);
}

/* --- one input ------------------------------------------------------------ */

static char *dup_or_null(const char *s)
{
    return s && s[0] ? strdup(s) : NULL;
}

static void run_item(const kms_pipeline *pl, const kms_batch *b, size_t i,
                     int threads, kms_row *r, double *stage_ms)
{
    const kms_input *in = &b->inputs.items[i];
    kms_context ctx;
    kms_error err;
    kms_error_clear(&err);
    double t0 = kms_now_ms();
    kms_status st;
    r->input = in->path;
    memset(&ctx, 0, sizeof ctx);
    if (in->error) {
        err = *in->error;
        st = err.code;
    } else {
        kms_batch_context(b, pl, i, &ctx);
        ctx.threads = threads;
        st = kms_pipeline_run(pl, &ctx, &err);
    }
    r->ms_total = kms_now_ms() - t0;
    r->status = st == KMS_OK ? KMS_ROW_OK : KMS_ROW_ERROR;
    if (st == KMS_ERR_INTERRUPTED)
        r->status = KMS_ROW_NOT_RUN;
    r->slices = ctx.input_width ? (ctx.slices > 1 ? ctx.slices : 1) : 0;
    r->width = ctx.input_width;
    r->height = r->slices ? ctx.input_height / r->slices : 0;
    if (ctx.backend) {
        r->k = ctx.k;
        r->backend = ctx.backend;
        r->wcss = ctx.wcss;
        r->ms_kmeans = ctx.ms_kmeans;
    }
    r->evaluated = ctx.evaluated;
    r->dice = ctx.dice;
    r->iou = ctx.iou;
    bool volume;
    if (st == KMS_OK && kms_context_lung_sizes(&ctx, r->lung_size, &volume)) {
        r->lung_ml_known = volume;
        r->lung_cm2_known = !volume;
    }
    for (int side = 0; side < 2; side++) {
        r->side_evaluated[side] = ctx.side_evaluated[side];
        r->side_dice[side] = ctx.side_dice[side];
    }
    r->note = dup_or_null(ctx.note);
    for (size_t s = 0; s < pl->n_stages && s < KMS_MAX_STAGES; s++)
        stage_ms[s] = ctx.stage_ms[s];
    if (st != KMS_OK) {
        char line[2600];
        kms_error_format(&err, line, sizeof line);
        r->error = strdup(line);
    }
    kms_context_clear(&ctx);
}

/* --resume: every product of the input already exists (writes are atomic,
 * so existing means complete). */
static bool products_complete(const kms_pipeline *pl, const kms_batch *b,
                              const kms_input *in)
{
    enum { MAX_NAMES = 16 };
    char names[MAX_NAMES][KMS_PRODUCT_NAME_MAX];
    if (in->error)
        return false;
    /* a DICOM series of two or more slices is a volume: its products are
     * named as those of a NIfTI input */
    const char *as = in->n_files > 1 ? "series.nii.gz" : in->path;
    int n = kms_pipeline_products(pl, as, in->stem, names, MAX_NAMES);
    for (int i = 0; i < n; i++) {
        char path[4096 + 600];
        struct stat sb;
        kms_path_join(path, sizeof path, b->out_dir, names[i]);
        if (stat(path, &sb) != 0)
            return false;
    }
    return n > 0;
}

/* --- the workers ------------------------------------------------------------ */

typedef struct shared {
    const kms_pipeline *pl;
    const kms_batch *b;
    const kms_batch_options *opt;
    const kms_summary_index *previous;
    kms_journal *journal;
    kms_row *rows;
    atomic_size_t next;
    int threads_per_item;
    pthread_mutex_t lock;   /* guards progress, res, stage_ms and stderr */
    double stage_ms[KMS_MAX_STAGES]; /* summed over inputs */
    kms_progress progress;
    kms_batch_result *res;
} shared;

static void finish_item(shared *sh, const kms_row *r, const double *stage_ms)
{
    pthread_mutex_lock(&sh->lock);
    for (int s = 0; s < KMS_MAX_STAGES; s++)
        sh->stage_ms[s] += stage_ms[s];
    if (r->status != KMS_ROW_NOT_RUN) {
        sh->res->total++;
        sh->res->succeeded += r->status == KMS_ROW_OK;
        sh->res->failed += r->status == KMS_ROW_ERROR;
        sh->res->skipped += r->status == KMS_ROW_SKIPPED;
        /* errors always; warnings unless -q */
        if (r->error || (r->note && !sh->opt->quiet)) {
            kms_progress_hide(&sh->progress);
            if (r->error)
                fprintf(stderr, "kmseg: error: %s\n", r->error);
            else
                fprintf(stderr, "kmseg: warning: %s: %s\n", r->input, r->note);
        }
        kms_progress_step(&sh->progress, r->status == KMS_ROW_ERROR,
                          r->status == KMS_ROW_SKIPPED);
    }
    pthread_mutex_unlock(&sh->lock);
}

static void *worker(void *arg)
{
    shared *sh = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&sh->next, 1);
        if (i >= sh->b->inputs.n || kms_batch_stop)
            break;
        kms_row *r = &sh->rows[i];
        const kms_input *in = &sh->b->inputs.items[i];
        double stage_ms[KMS_MAX_STAGES] = {0};
        /* skipped only with its numbers: an earlier ok row and its
         * products; an error row (or none) runs again */
        bool ok = false;
        const char *line = sh->opt->resume
                               ? kms_summary_index_find(sh->previous, in->path, &ok)
                               : NULL;
        if (ok && products_complete(sh->pl, sh->b, in)) {
            r->input = in->path;
            r->status = KMS_ROW_SKIPPED;
            r->previous = strdup(line);
        } else {
            run_item(sh->pl, sh->b, i, sh->threads_per_item, r, stage_ms);
            if (r->status != KMS_ROW_NOT_RUN)
                kms_journal_append(sh->journal, r);
        }
        finish_item(sh, r, stage_ms);
    }
    return NULL;
}

/* --- reporting ------------------------------------------------------------- */

static void print_scores(const kms_row *rows, size_t n)
{
    double dice_sum = 0, iou_sum = 0, dice_min = 2, iou_min = 2;
    size_t m = 0, worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].status != KMS_ROW_OK || !rows[i].evaluated)
            continue;
        dice_sum += rows[i].dice;
        iou_sum += rows[i].iou;
        if (rows[i].dice < dice_min) {
            dice_min = rows[i].dice;
            worst = i;
        }
        iou_min = rows[i].iou < iou_min ? rows[i].iou : iou_min;
        m++;
    }
    if (m == 0)
        return;
    fprintf(stderr, "kmseg: Dice mean %.4f min %.4f (%s), IoU mean %.4f min "
                    "%.4f over %zu inputs with truth\n",
            dice_sum / (double)m, dice_min, rows[worst].input,
            iou_sum / (double)m, iou_min, m);
}

static void print_stage_times(const kms_pipeline *pl, const double *ms,
                              int inputs)
{
    double total = 0;
    for (size_t s = 0; s < pl->n_stages && s < KMS_MAX_STAGES; s++)
        total += ms[s];
    fprintf(stderr, "kmseg: time per input by stage (mean of %d):\n", inputs);
    for (size_t s = 0; s < pl->n_stages && s < KMS_MAX_STAGES; s++)
        fprintf(stderr, "  %-10s %8.3f ms %5.1f%%\n", pl->stages[s].cls->name,
                inputs ? ms[s] / inputs : 0, total > 0 ? 100 * ms[s] / total : 0);
    fprintf(stderr, "  %-10s %8.3f ms\n", "all", inputs ? total / inputs : 0);
}

static void print_end(const kms_batch_result *res, const kms_row *rows,
                      size_t n, double seconds, const char *out_dir,
                      const char *summary)
{
    enum { LIST_AT_MOST = 10 };
    print_scores(rows, n);
    if (res->failed) {
        fprintf(stderr, "kmseg: failed inputs:\n");
        int listed = 0;
        for (size_t i = 0; i < n && listed < LIST_AT_MOST; i++)
            if (rows[i].status == KMS_ROW_ERROR) {
                fprintf(stderr, "  %s\n", rows[i].error);
                listed++;
            }
        if (res->failed > LIST_AT_MOST)
            fprintf(stderr, "  ... and %d more (see %s)\n",
                    res->failed - LIST_AT_MOST, summary);
    }
    fprintf(stderr, "kmseg: %d succeeded, %d failed, %d skipped of %zu in "
                    "%.1f s (%.1f/s)%s; outputs in %s\n",
            res->succeeded, res->failed, res->skipped, n, seconds,
            seconds > 0 ? (double)res->total / seconds : 0.0,
            res->interrupted ? "; INTERRUPTED, rerun with --resume" : "",
            out_dir);
}

kms_status kms_batch_run(const kms_pipeline *pl, const kms_batch_options *opt,
                         kms_batch_result *res, kms_error *err)
{
    kms_batch b;
    kms_summary_index previous = {0};
    kms_journal journal = {.fd = -1};
    memset(res, 0, sizeof *res);
    kms_status st = kms_batch_open(&b, pl, opt, err);
    if (st != KMS_OK)
        return st;
    /* the previous run's config against this one's (--resume), then this
     * one's, before anything runs */
    kms_batch_options eff = *opt;
    bool redo_all = false;
    st = kms_provenance_start(&b, pl, opt, &redo_all, err);
    if (st != KMS_OK) {
        kms_batch_close(&b);
        return st;
    }
    if (redo_all)
        eff.resume = false; /* --force: every input again */
    opt = &eff;
    char summary[128];
    kms_summary_name(summary, sizeof summary, opt->shard_index, opt->shard_count);
    size_t n = b.inputs.n;
    /* -j N means N cores' worth of threads in all: N workers, or fewer
     * workers (fewer inputs than N) each allowed the cores left over */
    int wanted = opt->jobs > 0 ? opt->jobs : cores();
    int jobs = wanted;
    if ((size_t)jobs > n)
        jobs = n > 0 ? (int)n : 1;
    int per_item = wanted / jobs > 1 ? wanted / jobs : 1;
    pthread_t *threads = calloc((size_t)jobs, sizeof *threads);
    shared sh = {.pl = pl, .b = &b, .opt = opt, .previous = &previous,
                 .journal = &journal,
                 .rows = calloc(n ? n : 1, sizeof(kms_row)), .res = res,
                 .threads_per_item = per_item};
    atomic_init(&sh.next, 0);
    pthread_mutex_init(&sh.lock, NULL);
    if (!threads || !sh.rows) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    char journal_name[128], path[4096 + 160];
    kms_journal_name(journal_name, sizeof journal_name, opt->shard_index,
                     opt->shard_count);
    long keep = 0; /* of the journal: its complete records, when resuming */
    if (opt->resume) {
        /* the journal of an interrupted run is newer than the summary */
        kms_path_join(path, sizeof path, b.out_dir, summary);
        st = kms_summary_index_add(&previous, path, NULL, err);
        kms_path_join(path, sizeof path, b.out_dir, journal_name);
        if (st == KMS_OK)
            st = kms_summary_index_add(&previous, path, &keep, err);
    }
    if (st == KMS_OK && opt->shard_count > 0)
        st = kms_summary_run_write(b.out_dir, opt->shard_index, opt->shard_count,
                                   b.run_id, &b.protect, err);
    if (st == KMS_OK)
        st = kms_journal_open(&journal, b.out_dir, journal_name, keep,
                              opt->timings, err);
    if (st != KMS_OK)
        goto out;
    /* OpenCV's own threads count too, or they would oversubscribe the cores */
    kms_cv_set_num_threads(per_item, NULL);
    kms_progress_start(&sh.progress, n, opt->quiet ? KMS_PROGRESS_NEVER : opt->progress);
    int started = 0;
    for (; started < jobs; started++)
        if (pthread_create(&threads[started], NULL, worker, &sh) != 0)
            break;
    if (started == 0)
        worker(&sh); /* no threads to be had: do the work here */
    for (int t = 0; t < started; t++)
        pthread_join(threads[t], NULL);
    kms_progress_hide(&sh.progress);
    res->interrupted = kms_batch_stop != 0;
    st = kms_summary_write(b.out_dir, summary, sh.rows, n, opt->timings,
                           &b.protect, err);
    kms_journal_close(&journal, b.out_dir, summary, st == KMS_OK);
    if (st == KMS_OK && opt->report && opt->provenance) {
        /* from summary.csv as written: with --resume, every row */
        kms_error rerr;
        kms_error_clear(&rerr);
        if (kms_report_run(&b, pl, opt, summary, res->skipped, &rerr) != KMS_OK)
            kms_batch_report(&rerr);
    }
    if (st == KMS_OK && !opt->quiet)
        print_end(res, sh.rows, n, kms_progress_elapsed(&sh.progress), b.out_dir,
                  summary);
    if (opt->stage_times)
        print_stage_times(pl, sh.stage_ms, res->total - res->skipped);
out:
    kms_journal_close(&journal, b.out_dir, summary, false);
    for (size_t i = 0; sh.rows && i < n; i++)
        kms_row_clear(&sh.rows[i]);
    free(sh.rows);
    free(threads);
    pthread_mutex_destroy(&sh.lock);
    kms_summary_index_free(&previous);
    kms_batch_close(&b);
    return st;
}

static void record_error(FILE *f, const char *input, const kms_error *err)
{
    char line[2600];
    kms_error_format(err, line, sizeof line);
    fwrite(input, 1, strlen(input) + 1, f);
    fwrite(line, 1, strlen(line) + 1, f);
}

int kms_batch_each(const kms_pipeline *pl, const kms_batch_options *opt,
                   kms_each *each)
{
    kms_error err;
    kms_error_clear(&err);
    kms_batch b;
    each->done = each->failed = 0;
    if (kms_batch_open(&b, pl, opt, &err) != KMS_OK) {
        kms_batch_report(&err);
        return 2;
    }
    bool redo_all; /* only run resumes */
    if (kms_provenance_start(&b, pl, opt, &redo_all, &err) != KMS_OK) {
        kms_batch_report(&err);
        kms_batch_close(&b);
        return 2;
    }
    char *csv = NULL, *errors = NULL;
    size_t csv_len = 0, errors_len = 0;
    FILE *f = open_memstream(&csv, &csv_len);
    /* the failed inputs for the report: input NUL error NUL, each */
    FILE *ef = open_memstream(&errors, &errors_len);
    if (!f || !ef) {
        fprintf(stderr, "kmseg: error: out of memory\n");
        if (f)
            fclose(f);
        if (ef)
            fclose(ef);
        free(csv);
        free(errors);
        kms_batch_close(&b);
        return 2;
    }
    fprintf(f, "%s\n", each->csv_header);
    for (size_t i = 0; i < b.inputs.n && !kms_batch_stop; i++) {
        const kms_input *in = &b.inputs.items[i];
        if (in->error) {
            kms_batch_report(in->error);
            record_error(ef, in->path, in->error);
            each->failed++;
            continue;
        }
        kms_context ctx;
        kms_batch_context(&b, pl, i, &ctx);
        kms_error_clear(&err);
        kms_status st = each->fn(pl, &b, &ctx, f, each->arg, &err);
        kms_context_clear(&ctx);
        if (st == KMS_OK) {
            each->done++;
            continue;
        }
        if (!err.file[0])
            snprintf(err.file, sizeof err.file, "%s", in->path);
        kms_batch_report(&err);
        record_error(ef, in->path, &err);
        each->failed++;
    }
    fclose(f);
    fclose(ef);
    if (kms_batch_write(&b, each->csv_name, csv, csv_len, &err) != KMS_OK) {
        kms_batch_report(&err);
        each->failed++;
    }
    if (!opt->quiet)
        fprintf(stderr, "kmseg: %s %d inputs, %d failed; %s in %s\n",
                each->what, each->done, each->failed, each->csv_name, b.out_dir);
    if (each->report != KMS_REPORT_NONE && opt->report && opt->provenance) {
        kms_error_clear(&err);
        if (kms_report_each(&b, pl, opt, each->report, csv, csv_len, errors,
                            errors_len, &err) != KMS_OK)
            kms_batch_report(&err);
    }
    free(csv);
    free(errors);
    kms_batch_close(&b);
    if (kms_batch_stop)
        return kms_batch_stop_status();
    return each->failed ? 1 : 0;
}
