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
          "iou,error\n", f);
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
        fputc('\n', f);
    }
    fclose(f);
    kms_status st = kms_output_write(dir, "summary.csv", buf, len, inputs, err);
    free(buf);
    return st;
}

static void run_item(const kms_pipeline *pl, const kms_input *in,
                     const char *out_dir, const kms_file_set *inputs, row *r)
{
    kms_context ctx = {0};
    kms_error err;
    kms_error_clear(&err);
    double t0 = kms_now_ms();
    r->input = in->path;
    if (in->error.code != KMS_OK) {
        err = in->error;
        r->status = err.code;
    } else {
        ctx.input_path = in->path;
        snprintf(ctx.stem, sizeof ctx.stem, "%s", in->stem);
        ctx.output_dir = out_dir;
        ctx.inputs = inputs;
        ctx.seed = (uint64_t)pl->params.seed;
        ctx.threads = 1;
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

kms_status kms_batch_run(const kms_pipeline *pl, const kms_batch_options *opt,
                         kms_batch_result *res, kms_error *err)
{
    kms_input_list list = {0};
    kms_file_set protect = {0};
    const char **paths = NULL;
    row *rows = NULL;
    char out_dir[4096];
    memset(res, 0, sizeof *res);
    if (opt->output)
        snprintf(out_dir, sizeof out_dir, "%s", opt->output);
    else
        kms_path_join(out_dir, sizeof out_dir, pl->base_dir, pl->params.output);
    kms_status st = kms_output_prepare_dir(out_dir, err);
    if (st != KMS_OK)
        goto out;
    st = collect_inputs(pl, opt, &list, err);
    if (st != KMS_OK)
        goto out;
    rows = calloc(list.n, sizeof *rows);
    paths = calloc(list.n, sizeof *paths);
    if (!rows || !paths) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < list.n; i++)
        paths[i] = list.items[i].path;
    st = kms_file_set_build(&protect, paths, list.n, err);
    if (st != KMS_OK)
        goto out;
    bool tty = !opt->quiet && isatty(STDERR_FILENO);
    for (size_t i = 0; i < list.n; i++) {
        if (tty)
            fprintf(stderr, "\r\033[K[%zu/%zu] %s", i + 1, list.n,
                    list.items[i].stem);
        run_item(pl, &list.items[i], out_dir, &protect, &rows[i]);
        res->total++;
        if (rows[i].status == KMS_OK) {
            res->succeeded++;
            continue;
        }
        res->failed++;
        if (tty)
            fputs("\r\033[K", stderr);
        fprintf(stderr, "kmseg: error: %s\n", rows[i].error);
    }
    if (tty)
        fputs("\r\033[K", stderr);
    st = write_summary(out_dir, rows, list.n, &protect, err);
    if (st == KMS_OK && !opt->quiet)
        fprintf(stderr, "kmseg: %d of %d inputs done, %d failed; outputs in %s\n",
                res->succeeded, res->total, res->failed, out_dir);
out:
    free(rows);
    free(paths);
    kms_file_set_free(&protect);
    kms_inputs_free(&list);
    return st;
}
