/* write: saves the products of one input into the output folder, each
 * atomically and never over an input (output contract in README). */
#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "opencv_c.h"
#include "output.h"
#include "stage.h"

typedef struct write_params {
    unsigned products; /* KMS_PRODUCT_* bits, in the order of product_names */
} write_params;

static const char *const product_names[] = {"recolor", "labels", "recolor_raw",
                                            "mask", "overlay", NULL};

static const kms_param write_table[] = {
    {"products", KMS_PARAM_FLAGS, "recolor", 0, 0, product_names,
     offsetof(write_params, products),
     "recolor: {stem}_recolor.png (8-bit); labels: {stem}_labels.png (cluster "
     "index, 0 = darkest); recolor_raw: {stem}_recolor.tif (32-bit float "
     "centre values, exact); mask: {stem}_mask.png (0/255); overlay: "
     "{stem}_overlay.png"},
    {0},
};

static kms_status write_prepare(const void *params, kms_link *link,
                                kms_error *err)
{
    const write_params *p = params;
    if ((p->products & (KMS_PRODUCT_RECOLOR | KMS_PRODUCT_RECOLOR_RAW)) &&
        !link->recolor)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "products",
                             "recolor products need the recolor stage before "
                             "write");
    if ((p->products & KMS_PRODUCT_LABELS) && !link->labels)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "products",
                             "labels need the kmeans stage before write");
    if ((p->products & (KMS_PRODUCT_MASK | KMS_PRODUCT_OVERLAY)) && !link->mask)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "products",
                             "mask and overlay need a mask stage before write");
    if (!p->products)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "products",
                             "no products listed");
    return KMS_OK;
}

static uint8_t to_u8(double v)
{
    v = rint(v);
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* 8-bit view of the recoloured image. For 8-bit inputs the centres go back
 * to pixel units exactly (centre * b / a, rounded half to even); other
 * depths (e.g. HU) are stretched from the darkest to the brightest centre. */
static kms_status recolor_u8(const kms_context *ctx, kms_image *out,
                             kms_error *err)
{
    const kms_image *rc = &ctx->recolor;
    kms_status st = kms_image_alloc(out, rc->width, rc->height, rc->channels,
                                    KMS_DEPTH_U8, err);
    if (st != KMS_OK)
        return st;
    double gain = ctx->value_den / ctx->value_num, offset = 0;
    if (ctx->input_depth != KMS_DEPTH_U8) {
        size_t nc = (size_t)ctx->k * (size_t)ctx->dims;
        double lo = ctx->centers[0], hi = ctx->centers[0];
        for (size_t i = 1; i < nc; i++) {
            lo = fmin(lo, ctx->centers[i]);
            hi = fmax(hi, ctx->centers[i]);
        }
        gain = hi > lo ? 255.0 / (hi - lo) : 0;
        offset = -lo * gain;
    }
    size_t row = (size_t)rc->width * (size_t)rc->channels;
    for (int y = 0; y < rc->height; y++) {
        const float *src = kms_image_row(rc, y);
        uint8_t *dst = kms_image_row(out, y);
        for (size_t i = 0; i < row; i++)
            dst[i] = to_u8((double)src[i] * gain + offset);
    }
    return KMS_OK;
}

static kms_status labels_u8(const kms_context *ctx, kms_image *out,
                            kms_error *err)
{
    kms_status st = kms_image_alloc(out, ctx->sample_width, ctx->sample_height,
                                    1, KMS_DEPTH_U8, err);
    if (st != KMS_OK)
        return st;
    for (int y = 0; y < out->height; y++) {
        uint8_t *dst = kms_image_row(out, y);
        const int32_t *lab = ctx->labels + (size_t)y * (size_t)out->width;
        for (int x = 0; x < out->width; x++)
            dst[x] = (uint8_t)lab[x];
    }
    return KMS_OK;
}

/* The image in its display window as 8-bit BGR. */
static kms_status display_bgr(const kms_context *ctx, const kms_image *src,
                              kms_image *out, kms_error *err)
{
    kms_image grey = {0};
    kms_status st = KMS_OK;
    if (src->channels == 1) {
        double lo = ctx->display_lo, hi = ctx->display_hi;
        double gain = hi > lo ? 255.0 / (hi - lo) : 1;
        st = kms_cv_convert(src, &grey, KMS_DEPTH_U8, gain, -lo * gain, err);
        if (st == KMS_OK)
            st = kms_cv_cvt_color(&grey, out, KMS_CV_GRAY2BGR, err);
    } else if (src->channels == 4) {
        st = kms_cv_cvt_color(src, out, KMS_CV_BGRA2BGR, err);
    } else {
        st = kms_image_copy(out, src, err);
    }
    kms_image_free(&grey);
    return st;
}

/* The slice of a volume to show: the one with the most mask (or truth). */
static int overlay_slice(const kms_context *ctx)
{
    int slices = ctx->slices > 1 ? ctx->slices : 1, rows = ctx->mask.height / slices;
    int best = slices / 2;
    long best_area = 0;
    for (int z = 0; z < slices; z++) {
        long area = 0;
        for (int y = z * rows; y < (z + 1) * rows; y++) {
            const uint8_t *m = kms_image_row(&ctx->mask, y);
            const uint8_t *t = ctx->evaluated ? kms_image_row(&ctx->truth, y) : m;
            for (int x = 0; x < ctx->mask.width; x++)
                area += (m[x] != 0) + (t[x] != 0);
        }
        if (area > best_area) {
            best_area = area;
            best = z;
        }
    }
    return best;
}

/* The slice with the mask's outline (green) and the truth's (magenta). */
static kms_status overlay(const kms_context *ctx, kms_image *out,
                          kms_error *err)
{
    static const double green[4] = {0, 255, 0, 0};
    static const double magenta[4] = {255, 0, 255, 0};
    int slices = ctx->slices > 1 ? ctx->slices : 1;
    int rows = ctx->mask.height / slices, z = overlay_slice(ctx);
    const kms_image *src = ctx->original.data ? &ctx->original : &ctx->image;
    kms_image image = kms_image_rows(src, z * rows, rows);
    kms_image mask = kms_image_rows(&ctx->mask, z * rows, rows);
    kms_status st = display_bgr(ctx, &image, out, err);
    if (st == KMS_OK && out->depth != KMS_DEPTH_U8)
        st = kms_error_set(err, KMS_ERR_INPUT, NULL, 0, "write.products",
                           "overlay needs an 8-bit or single-channel image");
    if (st == KMS_OK && ctx->evaluated) {
        kms_image truth = kms_image_rows(&ctx->truth, z * rows, rows);
        st = kms_cv_draw_outline(out, &truth, magenta, 1, err);
    }
    if (st == KMS_OK)
        st = kms_cv_draw_outline(out, &mask, green, 1, err);
    if (st == KMS_OK) {
        char label[96];
        int n = ctx->evaluated ? snprintf(label, sizeof label, "mask  Dice %.4f",
                                          ctx->dice)
                               : snprintf(label, sizeof label, "mask");
        if (n > 0 && slices > 1)
            snprintf(label + n, sizeof label - (size_t)n, "  slice %d", z);
        st = kms_cv_put_text(out, label, 8, 20, 0.5, green, 1, err);
    }
    if (st == KMS_OK && ctx->evaluated)
        st = kms_cv_put_text(out, "truth", 8, 40, 0.5, magenta, 1, err);
    return st;
}

/* --- PNG of a mask ----------------------------------------------------------
 * Masks (8-bit, one channel, long runs of 0 and 255) are encoded here rather
 * than by libpng, whose filter search and deflate cost more than the rest of
 * the lung pipeline's writing: filter "none" on every row, and one deflate
 * block with the fixed codes where each run of a byte is a literal and
 * copies of distance 1 (what zlib's Z_RLE strategy does). A normal PNG. */

typedef struct bitbuf {
    uint8_t *buf;
    size_t len;
    uint64_t acc;   /* bits not yet written, LSB first */
    int n;
} bitbuf;

static void put_bits(bitbuf *b, uint32_t v, int n)
{
    b->acc |= (uint64_t)v << b->n;
    b->n += n;
    while (b->n >= 8) {
        b->buf[b->len++] = (uint8_t)b->acc;
        b->acc >>= 8;
        b->n -= 8;
    }
}

/* Huffman codes go in most significant bit first. */
static void put_code(bitbuf *b, uint32_t code, int n)
{
    uint32_t r = 0;
    for (int i = 0; i < n; i++)
        r |= (code >> i & 1) << (n - 1 - i);
    put_bits(b, r, n);
}

/* Literal/length symbol 0..287 in the fixed code (RFC 1951, 3.2.6). */
static void put_symbol(bitbuf *b, int sym)
{
    if (sym < 144)
        put_code(b, 0x30 + (uint32_t)sym, 8);
    else if (sym < 256)
        put_code(b, 0x190 + (uint32_t)(sym - 144), 9);
    else if (sym < 280)
        put_code(b, (uint32_t)(sym - 256), 7);
    else
        put_code(b, 0xc0 + (uint32_t)(sym - 280), 8);
}

/* A copy of len (3..258) bytes from distance 1. */
static void put_copy(bitbuf *b, int len)
{
    static const uint16_t base[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11, 13,
                                      15, 17, 19, 23, 27, 31, 35, 43, 51, 59,
                                      67, 83, 99, 115, 131, 163, 195, 227, 258};
    static const uint8_t extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1,
                                      1, 1, 2, 2, 2, 2, 3, 3, 3, 3,
                                      4, 4, 4, 4, 5, 5, 5, 5, 0};
    int c = 28;
    while (base[c] > len)
        c--;
    put_symbol(b, 257 + c);
    put_bits(b, (uint32_t)(len - base[c]), extra[c]);
    put_code(b, 0, 5); /* distance code 0: distance 1 */
}

typedef struct deflater {
    bitbuf out;
    int value;          /* the pending run: byte value (-1: none), length */
    size_t run;
    uint32_t s1, s2;    /* Adler-32 of the bytes so far */
} deflater;

static void flush_run(deflater *d)
{
    if (d->value < 0)
        return;
    enum { MOD = 65521 };
    uint64_t L = d->run % MOD, b = (uint64_t)d->value;
    /* run bytes of one value at once: s2 += L s1 + b L (L + 1) / 2 */
    uint64_t tri = (uint64_t)d->run % (2 * MOD) * ((d->run + 1) % (2 * MOD)) / 2;
    d->s2 = (uint32_t)((d->s2 + L * d->s1 + b * (tri % MOD)) % MOD);
    d->s1 = (uint32_t)((d->s1 + L * b) % MOD);
    put_symbol(&d->out, d->value);
    size_t rem = d->run - 1;
    while (rem >= 3) {
        int len = rem > 258 ? 258 : (int)rem;
        put_copy(&d->out, len);
        rem -= (size_t)len;
    }
    while (rem-- > 0)
        put_symbol(&d->out, d->value);
    d->value = -1;
}

static void add_run(deflater *d, int value, size_t run)
{
    if (value != d->value) {
        flush_run(d);
        d->value = value;
        d->run = 0;
    }
    d->run += run;
}

/* Length of the run of bytes equal to p[0] in p[0 .. n). */
static size_t run_length(const uint8_t *p, size_t n)
{
    size_t i = 1;
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t same = 0x0101010101010101u * p[0];
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, sizeof v);
        if (v != same)
            return i + (size_t)__builtin_ctzll(v ^ same) / 8;
    }
#endif
    while (i < n && p[i] == p[0])
        i++;
    return i;
}

static uint32_t crc32_png(uint32_t crc, const uint8_t *p, size_t n)
{
    static const uint32_t t[16] = {
        0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4,
        0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
        0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c};
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ t[crc & 15];
        crc = (crc >> 4) ^ t[crc & 15];
    }
    return ~crc;
}

static uint8_t *put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

/* A chunk around data already at p + 8; returns the end. */
static uint8_t *close_chunk(uint8_t *p, const char *type, size_t len)
{
    put_be32(p, (uint32_t)len);
    memcpy(p + 4, type, 4);
    return put_be32(p + 8 + len, crc32_png(0, p + 4, len + 4));
}

/* The zlib stream of the rows, each after its filter byte (0), at p. */
static size_t deflate_rows(const kms_image *img, uint8_t *p)
{
    deflater d = {.out = {.buf = p}, .value = -1, .s1 = 1};
    put_bits(&d.out, 0x78, 8); /* zlib: deflate, 32K window */
    put_bits(&d.out, 0x01, 8);
    put_bits(&d.out, 1, 1);    /* the final block, fixed codes */
    put_bits(&d.out, 1, 2);
    for (int y = 0; y < img->height; y++) {
        const uint8_t *r = kms_image_row(img, y);
        size_t w = (size_t)img->width;
        add_run(&d, 0, 1);
        for (size_t x = 0; x < w;) {
            size_t n = run_length(r + x, w - x);
            add_run(&d, r[x], n);
            x += n;
        }
    }
    flush_run(&d);
    put_symbol(&d.out, 256);
    if (d.out.n > 0) /* to a byte boundary */
        put_bits(&d.out, 0, 8 - d.out.n);
    uint8_t *end = put_be32(d.out.buf + d.out.len, d.s2 << 16 | d.s1);
    return (size_t)(end - p);
}

static kms_status encode_mask_png(const kms_image *img, unsigned char **bytes,
                                  size_t *len, kms_error *err)
{
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a,
                                         '\n'};
    /* at worst 9 bits per byte (a literal each) */
    size_t raw = (size_t)img->height * ((size_t)img->width + 1);
    uint8_t *buf = malloc(raw + raw / 8 + 128), *p = buf;
    if (!buf)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    memcpy(p, signature, sizeof signature);
    p += sizeof signature;
    uint8_t *d = put_be32(put_be32(p + 8, (uint32_t)img->width),
                          (uint32_t)img->height);
    memcpy(d, (const uint8_t[5]){8, 0, 0, 0, 0}, 5); /* 8-bit grey */
    p = close_chunk(p, "IHDR", 13);
    p = close_chunk(p, "IDAT", deflate_rows(img, p + 8));
    p = close_chunk(p, "IEND", 0);
    *bytes = buf;
    *len = (size_t)(p - buf);
    return KMS_OK;
}

enum { MAX_PRODUCTS = 8 };

/* File name endings, in the order of product_names (the KMS_PRODUCT_ bits);
 * volumes keep masks and labels as NIfTI in the input's geometry. */
static const char *const image_suffixes[] = {
    "_recolor.png", "_labels.png", "_recolor.tif", "_mask.png", "_overlay.png",
};
static const char *const volume_suffixes[] = {
    "_recolor.png", "_labels.nii.gz", "_recolor.tif", "_mask.nii.gz",
    "_overlay.png",
};

static const char *suffix_of(int product, bool volume)
{
    return volume ? volume_suffixes[product] : image_suffixes[product];
}

int kms_write_stage_product_names(const void *params, const char *input_path,
                                  const char *stem, char names[][512], int max)
{
    const write_params *p = params;
    bool volume = kms_nifti_is_path(input_path);
    int n = 0;
    for (int i = 0; product_names[i] && n < max; i++)
        if (p->products >> i & 1)
            snprintf(names[n++], 512, "%.400s%s", stem, suffix_of(i, volume));
    return n;
}

/* The products of one input, made before any is written, so a failure can
 * remove what was already written: an input has all its products or none. */
typedef struct product {
    char name[512];
    unsigned char *bytes;    /* an encoded image, or */
    kms_image volume_mask;   /* a stack written as NIfTI */
    size_t len;
} product;

typedef struct product_set {
    product items[MAX_PRODUCTS];
    int n;
} product_set;

/* Takes img (moved into the set for NIfTI, encoded otherwise). */
static kms_status add_product(product_set *set, const kms_context *ctx,
                              int product_bit, kms_image *img, kms_error *err)
{
    assert(set->n < MAX_PRODUCTS);
    product *it = &set->items[set->n];
    bool volume = ctx->volume.header != NULL;
    const char *suffix = suffix_of(product_bit, volume);
    snprintf(it->name, sizeof it->name, "%.400s%s", ctx->stem, suffix);
    kms_status st;
    if (strstr(suffix, ".nii")) {
        if (img->width != ctx->input_width || img->height != ctx->input_height)
            return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "write.products",
                                 "%s of a resized volume cannot be written in "
                                 "the volume's geometry (drop reshape's size)",
                                 product_names[product_bit]);
        kms_image_move(&it->volume_mask, img);
        st = KMS_OK;
    } else if (product_bit == 3 && img->channels == 1 &&
               img->depth == KMS_DEPTH_U8) {
        st = encode_mask_png(img, &it->bytes, &it->len, err);
    } else {
        st = kms_cv_imencode(strrchr(suffix, '.'), img, NULL, 0, &it->bytes,
                             &it->len, err);
    }
    if (st == KMS_OK)
        set->n++;
    return st;
}

static void free_products(product_set *set)
{
    for (int i = 0; i < set->n; i++) {
        free(set->items[i].bytes);
        kms_image_free(&set->items[i].volume_mask);
    }
}

/* Makes the image of one product (bit: its index in product_names). */
static kms_status make_product(int bit, const kms_context *ctx, kms_image *out,
                               kms_error *err)
{
    switch (bit) {
    case 0: return recolor_u8(ctx, out, err);
    case 1: return labels_u8(ctx, out, err);
    case 2: return kms_image_copy(out, &ctx->recolor, err);
    case 3: return kms_image_copy(out, &ctx->mask, err);
    case 4: return overlay(ctx, out, err);
    }
    abort();
}

static kms_status encode_products(const write_params *p, const kms_context *ctx,
                                  product_set *set, kms_error *err)
{
    kms_status st = KMS_OK;
    for (int bit = 0; product_names[bit] && st == KMS_OK; bit++) {
        if (!(p->products >> bit & 1))
            continue;
        kms_image img = {0};
        /* a mask of a 2-D image is encoded as it is, without a copy */
        bool view = bit == 3 && !ctx->volume.header;
        if (view)
            img = ctx->mask;
        else
            st = make_product(bit, ctx, &img, err);
        if (st == KMS_OK)
            st = add_product(set, ctx, bit, &img, err);
        if (!view)
            kms_image_free(&img);
    }
    return st;
}

static kms_status write_product(const kms_context *ctx, const product *it,
                                kms_error *err)
{
    if (it->volume_mask.data)
        return kms_nifti_write_mask(ctx->output_dir, it->name, &ctx->volume,
                                    &it->volume_mask, ctx->inputs, err);
    return kms_output_write(ctx->output_dir, it->name, it->bytes, it->len,
                            ctx->inputs, err);
}

static kms_status write_run(const void *params, kms_context *ctx,
                            kms_error *err)
{
    product_set set = {0};
    kms_status st = encode_products(params, ctx, &set, err);
    int written = 0;
    while (st == KMS_OK && written < set.n) {
        st = write_product(ctx, &set.items[written], err);
        if (st == KMS_OK)
            written++;
    }
    if (st != KMS_OK) {
        /* the failed one left nothing behind; take back the earlier ones */
        for (int i = 0; i < written; i++) {
            char path[4096];
            kms_path_join(path, sizeof path, ctx->output_dir, set.items[i].name);
            unlink(path);
        }
    }
    free_products(&set);
    return st;
}

const kms_stage_class kms_stage_write = {
    .name = "write",
    .description = "save the products into the output folder",
    .params = write_table,
    .params_size = sizeof(write_params),
    .prepare = write_prepare,
    .run = write_run,
};
