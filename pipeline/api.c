/* The public pipeline facade (include/kmseg/pipeline_api.h) over the
 * internals the commands use: config, pipeline, batch and context. */
#include "pipeline_api.h"

#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "config.h"
#include "output.h"
#include "path.h"
#include "pipeline.h"

#ifndef KMSEG_LIB_VERSION
#define KMSEG_LIB_VERSION "unknown"
#endif

struct kmseg_pipeline {
    kms_pipeline pl;
    kms_batch batch;     /* the last file run: ctx points into it */
    bool batch_open;
    char out_dir[4096];  /* the last image run's output folder */
    kms_context ctx;     /* the last run's products */
    bool ran;            /* ctx holds a successful run */
};

const char *kmseg_version(void)
{
    return KMSEG_LIB_VERSION;
}

/* The internals write through err, which callers may leave NULL: then a
 * local record takes the writes. Cleared either way. */
static kms_error *errors_to(kms_error *err, kms_error *local)
{
    err = err ? err : local;
    kms_error_clear(err);
    return err;
}

kms_status kmseg_pipeline_open(kmseg_pipeline **out, const char *config_path,
                               const char *const *overrides,
                               size_t n_overrides, kms_error *err)
{
    kms_error local;
    err = errors_to(err, &local);
    if (!out || !config_path || (n_overrides && !overrides))
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "kmseg_pipeline_open: NULL argument");
    *out = NULL;
    kmseg_pipeline *h = calloc(1, sizeof *h);
    if (!h)
        return kms_error_set(err, KMS_ERR_NOMEM, config_path, 0, NULL,
                             "out of memory");
    kms_config cfg = {0};
    kms_status st = kms_config_load(&cfg, config_path, err);
    for (size_t i = 0; st == KMS_OK && i < n_overrides; i++)
        st = kms_config_override(&cfg, overrides[i], err);
    if (st == KMS_OK)
        st = kms_pipeline_build(&h->pl, &cfg, err);
    /* the pipeline keeps copies of what it needs */
    kms_config_free(&cfg);
    if (st != KMS_OK) {
        free(h);
        return st;
    }
    *out = h;
    return KMS_OK;
}

/* Forgets the last run: its products and the inputs they point into. */
static void reset(kmseg_pipeline *h)
{
    kms_context_clear(&h->ctx);
    memset(&h->ctx, 0, sizeof h->ctx);
    if (h->batch_open)
        kms_batch_close(&h->batch);
    h->batch_open = false;
    h->ran = false;
}

void kmseg_pipeline_close(kmseg_pipeline *h)
{
    if (!h)
        return;
    reset(h);
    kms_pipeline_free(&h->pl);
    free(h);
}

kms_status kmseg_pipeline_run_file(kmseg_pipeline *h, const char *input_path,
                                   const char *output_dir, kms_error *err)
{
    kms_error local;
    err = errors_to(err, &local);
    if (!h || !input_path)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "kmseg_pipeline_run_file: NULL argument");
    reset(h);
    /* one input through the batch's own set-up: the same inputs, stems,
     * DICOM series and protected files as `kmseg run -i PATH` */
    kms_batch_options opt;
    kms_batch_options_default(&opt);
    opt.inputs = &input_path;
    opt.n_inputs = 1;
    opt.output = output_dir;
    opt.quiet = true;
    opt.jobs = 1;
    kms_status st = kms_batch_open(&h->batch, &h->pl, &opt, err);
    if (st != KMS_OK)
        return st;
    h->batch_open = true;
    const kms_input_list *in = &h->batch.inputs;
    if (in->n != 1)
        return kms_error_set(err, KMS_ERR_USAGE, input_path, 0, NULL,
                             "names %zu inputs: run one at a time", in->n);
    if (in->items[0].error) {
        if (err)
            *err = *in->items[0].error;
        return in->items[0].error->code;
    }
    kms_batch_context(&h->batch, &h->pl, 0, &h->ctx);
    st = kms_pipeline_run(&h->pl, &h->ctx, err);
    h->ran = st == KMS_OK;
    return st;
}

kms_status kmseg_pipeline_run_image(kmseg_pipeline *h, const kms_image *img,
                                    const char *stem, const char *output_dir,
                                    kms_error *err)
{
    kms_error local;
    err = errors_to(err, &local);
    if (!h || !img)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "kmseg_pipeline_run_image: NULL argument");
    reset(h);
    if (!img->data || img->width < 1 || img->height < 1 ||
        (img->channels != 1 && img->channels != 3 && img->channels != 4) ||
        img->stride < (size_t)img->width * (size_t)img->channels *
                          kms_depth_size(img->depth))
        return kms_error_set(err, KMS_ERR_USAGE, stem, 0, NULL,
                             "not an image: %dx%d, %d channels, stride %zu",
                             img->width, img->height, img->channels,
                             img->stride);
    if (!stem || !stem[0])
        stem = "image";
    if (output_dir)
        snprintf(h->out_dir, sizeof h->out_dir, "%s", output_dir);
    else
        kms_path_join(h->out_dir, sizeof h->out_dir, h->pl.base_dir,
                      h->pl.params.output);
    size_t read = kms_pipeline_stage_index(&h->pl, "read");
    size_t first = read < h->pl.n_stages ? read + 1 : 0;
    kms_status st = KMS_OK;
    if (kms_pipeline_stage_index(&h->pl, "write") < h->pl.n_stages)
        st = kms_output_prepare_dir(h->out_dir, err);
    if (st != KMS_OK)
        return st;

    /* what read leaves for a 2-D file (stages/read.c) */
    kms_context *ctx = &h->ctx;
    ctx->input_path = stem;
    snprintf(ctx->stem, sizeof ctx->stem, "%s", stem);
    ctx->output_dir = h->out_dir;
    ctx->base_dir = h->pl.base_dir;
    ctx->seed = (uint64_t)h->pl.params.seed;
    ctx->threads = 1;
    ctx->slices = 1;
    st = kms_image_copy(&ctx->image, img, err);
    if (st == KMS_OK)
        st = kms_image_copy(&ctx->original, img, err);
    if (st != KMS_OK)
        return st;
    ctx->input_width = img->width;
    ctx->input_height = img->height;
    ctx->input_depth = img->depth;
    ctx->display_lo = 0;
    ctx->display_hi = img->depth == KMS_DEPTH_U8 ? 255 : 65535;
    if (img->channels == 1 && img->depth != KMS_DEPTH_U8)
        kms_context_claim_hu(ctx);
    st = kms_pipeline_run_span(&h->pl, ctx, first, h->pl.n_stages, err);
    h->ran = st == KMS_OK;
    return st;
}

int kmseg_pipeline_k(const kmseg_pipeline *h)
{
    return h && h->ran && h->ctx.backend ? h->ctx.k : 0;
}

double kmseg_pipeline_wcss(const kmseg_pipeline *h)
{
    return h && h->ran && h->ctx.backend ? h->ctx.wcss : -1;
}

const float *kmseg_pipeline_centers(const kmseg_pipeline *h, int *dims)
{
    bool have = h && h->ran && h->ctx.backend && h->ctx.centers;
    if (dims)
        *dims = have ? h->ctx.dims : 0;
    return have ? h->ctx.centers : NULL;
}

int kmseg_pipeline_scores(const kmseg_pipeline *h, double *dice, double *iou)
{
    bool have = h && h->ran && h->ctx.evaluated;
    if (dice)
        *dice = have ? h->ctx.dice : 0;
    if (iou)
        *iou = have ? h->ctx.iou : 0;
    return have;
}

static kms_status copy_product(const kmseg_pipeline *h, const kms_image *src,
                               const char *what, kms_image *out,
                               kms_error *err)
{
    kms_error local;
    err = errors_to(err, &local);
    if (!h || !out)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "kmseg_pipeline_%s: NULL argument", what);
    if (!h->ran || !src->data)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, what,
                             "the last run made no %s (a stage that makes "
                             "it is not in pipeline.stages, or it failed)",
                             what);
    return kms_image_copy(out, src, err);
}

kms_status kmseg_pipeline_mask(const kmseg_pipeline *h, kms_image *out,
                               kms_error *err)
{
    return copy_product(h, h ? &h->ctx.mask : NULL, "mask", out, err);
}

kms_status kmseg_pipeline_recolor(const kmseg_pipeline *h, kms_image *out,
                                  kms_error *err)
{
    return copy_product(h, h ? &h->ctx.recolor : NULL, "recolor", out, err);
}

kms_status kmseg_pipeline_labels(const kmseg_pipeline *h, kms_image *out,
                                 kms_error *err)
{
    kms_error local;
    err = errors_to(err, &local);
    if (!h || !out)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "kmseg_pipeline_labels: NULL argument");
    const kms_context *c = &h->ctx;
    if (!h->ran || !c->labels || c->sample_width < 1 ||
        (size_t)c->sample_width * (size_t)c->sample_height != c->n_samples)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, "labels",
                             "the last run made no labels (no kmeans stage, "
                             "or it failed)");
    kms_image labels = {0};
    kms_status st = kms_image_alloc_raw(&labels, c->sample_width,
                                        c->sample_height, 1, KMS_DEPTH_S32,
                                        err);
    if (st != KMS_OK)
        return st;
    for (int y = 0; y < labels.height; y++)
        memcpy(kms_image_row(&labels, y),
               c->labels + (size_t)y * (size_t)c->sample_width,
               (size_t)c->sample_width * sizeof *c->labels);
    kms_image_free(out);
    *out = labels;
    return KMS_OK;
}

const char *kmseg_pipeline_note(const kmseg_pipeline *h)
{
    return h && h->ran ? h->ctx.note : "";
}
