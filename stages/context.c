#include "context.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kms_context_note(kms_context *ctx, const char *fmt, ...)
{
    size_t used = strlen(ctx->note);
    if (used > 0 && used + 2 < sizeof ctx->note) {
        memcpy(ctx->note + used, "; ", 3);
        used += 2;
    }
    if (used + 1 >= sizeof ctx->note)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->note + used, sizeof ctx->note - used, fmt, ap);
    va_end(ap);
}

void kms_context_clear(kms_context *ctx)
{
    if (!ctx)
        return;
    kms_image_free(&ctx->image);
    kms_image_free(&ctx->original);
    kms_volume_free(&ctx->volume);
    kms_image_free(&ctx->truth);
    kms_image_free(&ctx->recolor);
    kms_image_free(&ctx->mask);
    kms_image_free(&ctx->lungs);
    free(ctx->samples);
    free(ctx->sample_valid);
    kms_image_free(&ctx->valid);
    free(ctx->labels);
    free(ctx->centers);
    memset(ctx, 0, sizeof *ctx);
}

kms_status kms_map_slices_to(const kms_image *src, int slices, kms_slice_fn fn,
                             void *arg, kms_image *dst, kms_error *err)
{
    if (slices <= 1) {
        kms_image out = {0};
        kms_status st = fn(src, &out, arg, err);
        if (st == KMS_OK)
            kms_image_move(dst, &out);
        kms_image_free(&out);
        return st;
    }
    int rows = src->height / slices;
    kms_image result = {0}, one = {0};
    kms_status st = KMS_OK;
    for (int z = 0; z < slices && st == KMS_OK; z++) {
        kms_image view = kms_image_rows(src, z * rows, rows);
        st = fn(&view, &one, arg, err);
        if (st != KMS_OK)
            break;
        if (z == 0)
            st = kms_image_alloc(&result, one.width, one.height * slices,
                                 one.channels, one.depth, err);
        else if (one.width != result.width || one.depth != result.depth ||
                 one.channels != result.channels ||
                 one.height * slices != result.height)
            st = kms_error_set(err, KMS_ERR_INTERNAL, NULL, 0, NULL,
                               "slice %d came out another size", z);
        if (st != KMS_OK)
            break;
        for (int y = 0; y < one.height; y++)
            memcpy(kms_image_row(&result, z * one.height + y),
                   kms_image_row(&one, y), result.stride);
        kms_image_free(&one);
    }
    kms_image_free(&one);
    if (st == KMS_OK)
        kms_image_move(dst, &result);
    kms_image_free(&result);
    return st;
}

kms_status kms_map_slices(kms_image *stack, int slices, kms_slice_fn fn,
                          void *arg, kms_error *err)
{
    return kms_map_slices_to(stack, slices, fn, arg, stack, err);
}

size_t kms_scan_bytes(const uint8_t *p, size_t n, bool want_zero)
{
    size_t i = 0;
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, sizeof v);
        uint64_t hit = want_zero ? (v - ones) & ~v & highs : v;
        if (hit)
            return i + (size_t)__builtin_ctzll(hit) / 8;
    }
#endif
    while (i < n && (p[i] == 0) != want_zero)
        i++;
    return i;
}

kms_status kms_context_sample_set(const kms_context *ctx, kms_sample_set *set,
                                  kms_error *err)
{
    set->x = ctx->samples;
    set->n = ctx->n_samples;
    set->owned = NULL;
    const uint8_t *valid = ctx->sample_valid;
    size_t n = ctx->n_samples, d = (size_t)ctx->dims;
    if (!valid || kms_scan_bytes(valid, n, true) == n)
        return KMS_OK;
    set->owned = malloc((n ? n : 1) * d * sizeof *set->owned);
    if (!set->owned)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    /* run by run of valid samples: padding is the rim of a circular field
     * of view, so the runs are long */
    size_t m = 0;
    for (size_t i = kms_scan_bytes(valid, n, false); i < n;) {
        size_t end = i + kms_scan_bytes(valid + i, n - i, true);
        memcpy(set->owned + m * d, ctx->samples + i * d,
               (end - i) * d * sizeof *set->owned);
        m += end - i;
        i = end + (end < n ? kms_scan_bytes(valid + end, n - end, false) : 0);
    }
    set->x = set->owned;
    set->n = m;
    return KMS_OK;
}

void kms_sample_set_free(kms_sample_set *set)
{
    free(set->owned);
    set->owned = NULL;
}

bool kms_context_lung_sizes(const kms_context *ctx, double size[2],
                            bool *volume)
{
    const kms_image *l = &ctx->lungs;
    *volume = ctx->volume.header != NULL;
    const double *mm = *volume ? ctx->volume.voxel_mm : ctx->pixel_mm;
    /* mm^3 -> ml, mm^2 -> cm^2 */
    double unit = *volume ? mm[0] * mm[1] * mm[2] / 1000.0
                          : mm[0] * mm[1] / 100.0;
    if (!l->data || !(unit > 0))
        return false;
    long count[3] = {0};
    for (int y = 0; y < l->height; y++) {
        const uint8_t *row = kms_image_row(l, y);
        for (int x = 0; x < l->width; x++)
            count[row[x] <= KMS_LUNG_LEFT ? row[x] : 0]++;
    }
    size[0] = (double)count[KMS_LUNG_RIGHT] * unit;
    size[1] = (double)count[KMS_LUNG_LEFT] * unit;
    return true;
}

kms_status kms_context_keep_original(kms_context *ctx, kms_error *err)
{
    if (ctx->original.data || !ctx->image.data)
        return KMS_OK;
    return kms_image_copy(&ctx->original, &ctx->image, err);
}
