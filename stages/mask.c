/* mask: turns k-means labels into a binary mask: clusters picked by rank,
 * cleaned with morphology, components kept or dropped, holes filled. */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mask_ops.h"
#include "stage.h"

typedef struct mask_params {
    char clusters[KMS_STR_MAX];
    int open_radius;
    int close_radius;
    int min_area;
    bool drop_border;
    int keep;
    bool fill_holes;
} mask_params;

static const kms_param mask_table[] = {
    {"clusters", KMS_PARAM_LIST, "darkest", 0, 0, NULL,
     offsetof(mask_params, clusters),
     "clusters in the mask, by rank: darkest, brightest, or numbers "
     "(0 = darkest), comma-separated"},
    {"open_radius", KMS_PARAM_INT, "0", 0, 50, NULL,
     offsetof(mask_params, open_radius),
     "opening with a disk of this radius (px): removes specks"},
    {"close_radius", KMS_PARAM_INT, "0", 0, 50, NULL,
     offsetof(mask_params, close_radius),
     "closing with a disk of this radius (px): bridges small gaps"},
    {"min_area", KMS_PARAM_INT, "0", 0, 100000000, NULL,
     offsetof(mask_params, min_area),
     "drop components smaller than this (px)"},
    {"drop_border", KMS_PARAM_BOOL, "false", 0, 0, NULL,
     offsetof(mask_params, drop_border),
     "drop components touching the image edge (e.g. air outside the body)"},
    {"keep", KMS_PARAM_INT, "0", 0, 100000, NULL, offsetof(mask_params, keep),
     "keep only this many largest components (0: all)"},
    {"fill_holes", KMS_PARAM_BOOL, "false", 0, 0, NULL,
     offsetof(mask_params, fill_holes), "fill holes enclosed by the mask"},
    {0},
};

/* Ranks as bits; brightest needs k, so it is resolved per input. */
static kms_status parse_ranks(const char *text, int k, uint64_t *ranks,
                              kms_error *err)
{
    *ranks = 0;
    char buf[KMS_STR_MAX];
    snprintf(buf, sizeof buf, "%s", text);
    for (char *save = NULL, *w = strtok_r(buf, ", \t", &save); w;
         w = strtok_r(NULL, ", \t", &save)) {
        long r;
        char *end;
        if (strcmp(w, "darkest") == 0)
            r = 0;
        else if (strcmp(w, "brightest") == 0)
            r = k > 0 ? k - 1 : 0;
        else if ((r = strtol(w, &end, 10)), end == w || *end || r < 0 || r > 63)
            return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "clusters",
                                 "'%s' is not darkest, brightest or a rank "
                                 "0..63", w);
        *ranks |= (uint64_t)1 << r;
    }
    if (!*ranks)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "clusters",
                             "no clusters listed");
    return KMS_OK;
}

static kms_status mask_prepare(const void *params, kms_link *link,
                               kms_error *err)
{
    const mask_params *p = params;
    const kms_link_labels *in = &link->labels;
    uint64_t ranks;
    if (!in->present)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                             "mask needs labels: put kmeans before it");
    /* k = auto: any k up to k_max may come out */
    int k = in->k > 0 ? in->k : in->k_max;
    kms_status st = parse_ranks(p->clusters, k, &ranks, err);
    if (st != KMS_OK)
        return st;
    /* a rank no cluster has would leave every mask empty */
    if (k < 64 && ranks >> k) {
        int r = k;
        while (!(ranks >> r & 1))
            r++;
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "clusters",
                             "rank %d needs %d clusters, but kmeans.k = %s%d "
                             "gives ranks 0..%d", r, r + 1,
                             in->k > 0 ? "" : "auto, k_max = ", k, k - 1);
    }
    link->mask = true;
    link->lungs = false; /* a new mask: sides found before it are stale */
    return KMS_OK;
}

static kms_status mask_run(const void *params, kms_context *ctx, kms_error *err)
{
    const mask_params *p = params;
    uint64_t ranks;
    kms_image_free(&ctx->lungs); /* sides of an earlier mask */
    kms_status st = parse_ranks(p->clusters, ctx->k, &ranks, err);
    if (st == KMS_OK)
        st = kms_mask_from_labels(ctx->labels, ctx->sample_width,
                                  ctx->sample_height, ranks, &ctx->mask, err);
    if (st == KMS_OK)
        st = kms_mask_resize(&ctx->mask, ctx->input_width, ctx->input_height, err);
    int slices = ctx->slices;
    if (st == KMS_OK)
        st = kms_mask_open(&ctx->mask, slices, p->open_radius, err);
    if (st == KMS_OK)
        st = kms_mask_close(&ctx->mask, slices, p->close_radius, err);
    if (st == KMS_OK && (p->min_area > 0 || p->drop_border || p->keep > 0))
        st = kms_mask_filter_components(&ctx->mask, slices, p->min_area,
                                        p->drop_border, p->keep, NULL, err);
    if (st == KMS_OK && p->fill_holes)
        st = kms_mask_fill_holes(&ctx->mask, slices, err);
    return st;
}

const kms_stage_class kms_stage_mask = {
    .name = "mask",
    .description = "binary mask from clusters by rank, with morphology, "
                   "component filters and hole filling",
    .params = mask_table,
    .params_size = sizeof(mask_params),
    .prepare = mask_prepare,
    .run = mask_run,
};
