#include "batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inputs.h"
#include "output.h"

typedef struct row {
    const char *input;
    kms_status status;
    char error[1400];
    char note[160];
    int width, height, k;
    const char *backend;
    double wcss, ms_kmeans, ms_total;
    bool evaluated;
    double dice, iou;
} row;

static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* summary.csv, built in memory and written atomically. */
static kms_status write_summary(const char *dir, const row *rows, size_t n,
                                const kms_file_set *inputs, kms_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    fputs("input,status,width,height,k,backend,wcss,ms_kmeans,ms_total,dice,"
          "iou,error,note\n", f);
    for (size_t i = 0; i < n; i++) {
        const row *r = &rows[i];
        csv_field(f, r->input);
        fputs(r->status == KMS_OK ? ",ok," : ",error,", f);
        if (r->width)
            fprintf(f, "%d,%d,", r->width, r->height);
        else
            fputs(",,", f);
        if (r->k)
            fprintf(f, "%d,%s,%.17g,%.3f,", r->k, r->backend, r->wcss,
                    r->ms_kmeans);
        else
            fputs(",,,,", f);
        fprintf(f, "%.3f,", r->ms_total);
        if (r->evaluated)
            fprintf(f, "%.6f,%.6f,", r->dice, r->iou);
        else
            fputs(",,", f);
        csv_field(f, r->error);
        fputc(',', f);
        csv_field(f, r->note);
        fputc('\n', f);
    }
    fclose(f);
    kms_status st = kms_output_write(dir, "summary.csv", buf, len, inputs, err);
    free(buf);
    return st;
}

void kms_batch_context(const kms_batch *b, const kms_pipeline *pl, size_t i,
                       kms_context *ctx)
{
    const kms_input *in = &b->inputs.items[i];
    memset(ctx, 0, sizeof *ctx);
    ctx->input_path = in->path;
    snprintf(ctx->stem, sizeof ctx->stem, "%s", in->stem);
    ctx->output_dir = b->out_dir;
    ctx->base_dir = pl->base_dir;
    ctx->inputs = &b->protect;
    ctx->seed = (uint64_t)pl->params.seed;
    ctx->threads = 1;
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

/* Mean and minimum Dice/IoU over the inputs that had a truth mask. */
static void print_scores(const row *rows, size_t n)
{
    double dice_sum = 0, iou_sum = 0, dice_min = 2, iou_min = 2;
    size_t m = 0, worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rows[i].evaluated)
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

static void run_item(const kms_pipeline *pl, const kms_batch *b, size_t i,
                     row *r)
{
    const kms_input *in = &b->inputs.items[i];
    kms_context ctx = {0};
    kms_error err;
    kms_error_clear(&err);
    double t0 = kms_now_ms();
    r->input = in->path;
    if (in->error.code != KMS_OK) {
        err = in->error;
        r->status = err.code;
    } else {
        kms_batch_context(b, pl, i, &ctx);
        r->status = kms_pipeline_run(pl, &ctx, &err);
    }
    r->ms_total = kms_now_ms() - t0;
    r->width = ctx.input_width;
    r->height = ctx.input_height;
    if (ctx.backend) {
        r->k = ctx.k;
        r->backend = ctx.backend;
        r->wcss = ctx.wcss;
        r->ms_kmeans = ctx.ms_kmeans;
    }
    r->evaluated = ctx.evaluated;
    snprintf(r->note, sizeof r->note, "%s", ctx.note);
    r->dice = ctx.dice;
    r->iou = ctx.iou;
    if (r->status != KMS_OK)
        kms_error_format(&err, r->error, sizeof r->error);
    kms_context_clear(&ctx);
}

static kms_status collect_inputs(const kms_pipeline *pl,
                                 const kms_batch_options *opt,
                                 kms_input_list *list, kms_error *err)
{
    kms_status st = KMS_OK;
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
    kms_inputs_check_stems(list);
    return KMS_OK;
}

kms_status kms_batch_open(kms_batch *b, const kms_pipeline *pl,
                          const kms_batch_options *opt, kms_error *err)
{
    memset(b, 0, sizeof *b);
    const char **paths = NULL;
    if (opt->output)
        snprintf(b->out_dir, sizeof b->out_dir, "%s", opt->output);
    else
        kms_path_join(b->out_dir, sizeof b->out_dir, pl->base_dir,
                      pl->params.output);
    kms_status st = kms_output_prepare_dir(b->out_dir, err);
    if (st == KMS_OK)
        st = collect_inputs(pl, opt, &b->inputs, err);
    if (st != KMS_OK)
        goto out;
    paths = calloc(b->inputs.n, sizeof *paths);
    if (!paths) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < b->inputs.n; i++)
        paths[i] = b->inputs.items[i].path;
    st = kms_file_set_build(&b->protect, paths, b->inputs.n, err);
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
}

kms_status kms_batch_run(const kms_pipeline *pl, const kms_batch_options *opt,
                         kms_batch_result *res, kms_error *err)
{
    kms_batch b;
    row *rows = NULL;
    memset(res, 0, sizeof *res);
    kms_status st = kms_batch_open(&b, pl, opt, err);
    if (st != KMS_OK)
        return st;
    size_t n = b.inputs.n;
    rows = calloc(n, sizeof *rows);
    if (!rows) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    bool tty = !opt->quiet && isatty(STDERR_FILENO);
    for (size_t i = 0; i < n; i++) {
        if (tty)
            fprintf(stderr, "\r\033[K[%zu/%zu] %s", i + 1, n,
                    b.inputs.items[i].stem);
        run_item(pl, &b, i, &rows[i]);
        res->total++;
        if (rows[i].status == KMS_OK) {
            res->succeeded++;
            if (rows[i].note[0] && !opt->quiet)
                fprintf(stderr, "%skmseg: warning: %s: %s\n",
                        tty ? "\r\033[K" : "", rows[i].input, rows[i].note);
            continue;
        }
        res->failed++;
        if (tty)
            fputs("\r\033[K", stderr);
        fprintf(stderr, "kmseg: error: %s\n", rows[i].error);
    }
    if (tty)
        fputs("\r\033[K", stderr);
    st = write_summary(b.out_dir, rows, n, &b.protect, err);
    if (st == KMS_OK && !opt->quiet) {
        print_scores(rows, n);
        fprintf(stderr, "kmseg: %d of %d inputs done, %d failed; outputs in %s\n",
                res->succeeded, res->total, res->failed, b.out_dir);
    }
out:
    free(rows);
    kms_batch_close(&b);
    return st;
}
