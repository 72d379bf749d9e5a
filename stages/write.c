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

#include <zlib.h>

#include "opencv_c.h"
#include "output.h"
#include "stage.h"
#include "path.h"

typedef struct write_params {
    unsigned products; /* KMS_PRODUCT_* bits */
    double overlay_fill;
    int overlay_format; /* overlay_format */
} write_params;

/* All three hold the same pixels (lossless). On the 512 x 512 CT overlays
 * of the shared slices: fast 263 KB, small 187 KB and about 3 ms more, rgb
 * 520 KB and 10-15 ms more than fast (bench/bench_pipeline.py's full_rgb
 * against full). */
enum overlay_format {
    OVERLAY_FAST,  /* palette PNG, zlib stored (no compression) */
    OVERLAY_SMALL, /* palette PNG, Huffman-coded (zlib's fastest coding) */
    OVERLAY_RGB,   /* 24-bit RGB PNG through OpenCV (the encoding before) */
};

static const kms_choice overlay_formats[] = {
    {"fast", OVERLAY_FAST},
    {"small", OVERLAY_SMALL},
    {"rgb", OVERLAY_RGB},
    {NULL, 0}};

/* In the order they are made and written. */
static const kms_choice product_names[] = {
    {"recolor", KMS_PRODUCT_RECOLOR},
    {"labels", KMS_PRODUCT_LABELS},
    {"recolor_raw", KMS_PRODUCT_RECOLOR_RAW},
    {"mask", KMS_PRODUCT_MASK},
    {"overlay", KMS_PRODUCT_OVERLAY},
    {"lungs", KMS_PRODUCT_LUNGS},
    {"labels_color", KMS_PRODUCT_LABELS_COLOR},
    {NULL, 0}};

static const kms_param write_table[] = {
    {"products", KMS_PARAM_FLAGS, "recolor", 0, 0, product_names,
     offsetof(write_params, products),
     "recolor: {stem}_recolor.png (8-bit); labels: {stem}_labels.png (cluster "
     "index, 0 = darkest); recolor_raw: {stem}_recolor.tif (32-bit float "
     "centre values, exact); mask: {stem}_mask.png (0/255); overlay: "
     "{stem}_overlay.png; lungs: {stem}_lungs.png (0, 1 = the patient's "
     "right lung, 2 = left; lung_mask); labels_color: "
     "{stem}_labels_color.png (each cluster in a colour of Okabe and Ito's "
     "colour-blind-safe palette, 0 = darkest centre = black; a volume's: "
     "the overlay's slice). Volumes: mask, labels and lungs as .nii.gz in "
     "the input's geometry"},
    {"overlay_fill", KMS_PARAM_DOUBLE, "0", 0, 1, NULL,
     offsetof(write_params, overlay_fill),
     "overlay: also fill the mask (each lung in its colour) with this "
     "opacity, 0 = outlines only"},
    {"overlay_format", KMS_PARAM_CHOICE, "fast", 0, 0, overlay_formats,
     offsetof(write_params, overlay_format),
     "the overlay's PNG, the same pixels in each: fast (a palette of its "
     "colours, uncompressed: the fastest, half the bytes of rgb), small (a "
     "palette, Huffman-coded: a third of rgb's bytes, some ms more), rgb "
     "(24-bit RGB, the slowest); fast and small fall back to rgb for an "
     "overlay of more than 256 colours (overlay_fill can make them)"},
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
    if ((p->products & (KMS_PRODUCT_LABELS | KMS_PRODUCT_LABELS_COLOR)) &&
        !link->labels.present)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "products",
                             "labels need the kmeans stage before write");
    if ((p->products & (KMS_PRODUCT_MASK | KMS_PRODUCT_OVERLAY)) && !link->mask)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "products",
                             "mask and overlay need a mask stage before write");
    if ((p->products & KMS_PRODUCT_LUNGS) && !link->lungs)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "products",
                             "lungs need lung_mask before write (and no mask "
                             "stage between them)");
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

/* Okabe and Ito's eight colours (BGR), distinguishable with every common
 * colour-vision deficiency; label 0 (the darkest centre) is black. Labels
 * past 8 take them again, darker by a third each round. */
static const uint8_t okabe_ito[8][3] = {
    {0, 0, 0},       /* black */
    {0, 159, 230},   /* orange */
    {233, 180, 86},  /* sky blue */
    {115, 158, 0},   /* bluish green */
    {66, 228, 240},  /* yellow */
    {178, 114, 0},   /* blue */
    {0, 94, 213},    /* vermillion */
    {167, 121, 204}, /* reddish purple */
};

static int overlay_slice(const kms_context *ctx);

static kms_status labels_color(const kms_context *ctx, kms_image *out,
                               kms_error *err)
{
    int slices = ctx->slices > 1 ? ctx->slices : 1;
    int rows = ctx->sample_height / slices;
    int z = slices > 1 && ctx->mask.data && ctx->mask.height == ctx->sample_height
                ? overlay_slice(ctx)
                : slices / 2;
    kms_status st = kms_image_alloc(out, ctx->sample_width, rows, 3,
                                    KMS_DEPTH_U8, err);
    if (st != KMS_OK)
        return st;
    for (int y = 0; y < rows; y++) {
        uint8_t *dst = kms_image_row(out, y);
        const int32_t *lab = ctx->labels + ((size_t)z * (size_t)rows + (size_t)y) *
                                               (size_t)out->width;
        for (int x = 0; x < out->width; x++) {
            int l = lab[x] < 0 ? 0 : lab[x];
            const uint8_t *c = okabe_ito[l % 8];
            int round = (l / 8) % 3; /* 0, 1, 2: full, 2/3, 1/3 */
            for (int ch = 0; ch < 3; ch++)
                dst[3 * x + ch] = (uint8_t)(c[ch] * (3 - round) / 3);
        }
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
        /* an 8-bit picture is shown as it is, its full grey range: a
         * window (set for k-means) would wash it out or clip it */
        bool picture = src->depth == KMS_DEPTH_U8;
        double lo = picture ? 0 : ctx->display_lo;
        double hi = picture ? 255 : ctx->display_hi;
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
    if (slices == 1)
        return 0; /* a slice: no need to count */
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

/* Small slices are enlarged to at least 512 px wide, but never past 4096 px
 * on either side (a 2 x 20000 picture would otherwise become gigabytes). */
enum { OVERLAY_MIN_WIDTH = 512, OVERLAY_MAX_SIDE = 4096 };

/* A layer's box: pixels [x0, x1) x [y0, y1) hold all it has set (x0 ==
 * x1: none). */
typedef struct layer_box {
    int x0, y0, x1, y1;
} layer_box;

/* Rows [y0, y0 + rows) of a U8 mask or label image as 0/255 where it is
 * nonzero (value 0) or equals value, enlarged scale times (nearest), and
 * the box of its set pixels. */
static kms_status overlay_layer(const kms_image *src, int y0, int rows,
                                int value, int scale, kms_image *out,
                                layer_box *at, kms_error *err)
{
    kms_image part = {0};
    kms_status st = kms_image_alloc_raw(&part, src->width, rows, 1,
                                        KMS_DEPTH_U8, err);
    const int w = src->width;
    *at = (layer_box){w, rows, 0, 0};
    for (int y = 0; st == KMS_OK && y < rows; y++) {
        const uint8_t *s = kms_image_row(src, y0 + y);
        uint8_t *d = kms_image_row(&part, y);
        uint8_t any = 0;
        for (int x = 0; x < w; x++) {
            d[x] = (value ? s[x] == value : s[x] != 0) ? 255 : 0;
            any |= d[x];
        }
        if (!any)
            continue;
        int a = 0, b = w;
        while (!d[a])
            a++;
        while (!d[b - 1])
            b--;
        *at = (layer_box){a < at->x0 ? a : at->x0, y < at->y0 ? y : at->y0,
                          b > at->x1 ? b : at->x1, y + 1};
    }
    if (at->x0 >= at->x1)
        *at = (layer_box){0, 0, 0, 0};
    else
        *at = (layer_box){at->x0 * scale, at->y0 * scale, at->x1 * scale,
                          at->y1 * scale};
    if (st == KMS_OK && scale > 1)
        st = kms_cv_resize(&part, out, part.width * scale, part.height * scale,
                           0, 0, KMS_CV_INTER_NEAREST, err);
    else if (st == KMS_OK)
        kms_image_move(out, &part);
    kms_image_free(&part);
    return st;
}

/* The slice with the mask's outline (green; with lung sides, the patient's
 * right lung orange and the left sky blue: Okabe and Ito's colour-blind-safe
 * pair) and the truth's (magenta). */
/* Blends colour into out where layer is set, with opacity alpha. */
static void fill_layer(kms_image *out, const kms_image *layer,
                       const double colour[4], double alpha)
{
    for (int y = 0; y < out->height; y++) {
        uint8_t *o = kms_image_row(out, y);
        const uint8_t *m = kms_image_row(layer, y);
        for (int x = 0; x < out->width; x++)
            for (int c = 0; c < 3 && m[x]; c++)
                o[3 * x + c] = to_u8((1 - alpha) * o[3 * x + c] +
                                     alpha * colour[c]);
    }
}

/* An outline of layer in colour, after filling it when fill > 0: within
 * its box grown by a pixel, where all of it lies (OpenCV's contours of a
 * view are those of the whole, moved: it pads views with background, not
 * with the pixels around them), so the contours search a fraction of the
 * image. */
static kms_status draw_layer(kms_image *out, const kms_image *layer,
                             const layer_box *at, const double colour[4],
                             double fill, kms_error *err)
{
    if (at->x0 >= at->x1)
        return KMS_OK; /* nothing set: no outline */
    int x0 = at->x0 > 0 ? at->x0 - 1 : 0, y0 = at->y0 > 0 ? at->y0 - 1 : 0;
    int x1 = at->x1 < out->width ? at->x1 + 1 : out->width;
    int y1 = at->y1 < out->height ? at->y1 + 1 : out->height;
    kms_image o = kms_image_roi(out, x0, y0, x1 - x0, y1 - y0);
    kms_image l = kms_image_roi(layer, x0, y0, x1 - x0, y1 - y0);
    if (fill > 0)
        fill_layer(&o, &l, colour, fill);
    return kms_cv_draw_outline(&o, &l, colour, 1, err);
}

static kms_status overlay(const kms_context *ctx, double fill, kms_image *out,
                          kms_error *err)
{
    static const double green[4] = {0, 255, 0, 0};
    static const double magenta[4] = {255, 0, 255, 0};
    static const double orange[4] = {0, 159, 230, 0};   /* BGR */
    static const double sky_blue[4] = {233, 180, 86, 0};
    int slices = ctx->slices > 1 ? ctx->slices : 1;
    int rows = ctx->mask.height / slices, z = overlay_slice(ctx);
    const kms_image *src = kms_context_as_read(ctx);
    kms_image image = kms_image_rows(src, z * rows, rows);
    kms_image layer = {0};
    layer_box at;
    kms_status st = display_bgr(ctx, &image, out, err);
    if (st == KMS_OK && out->depth != KMS_DEPTH_U8)
        st = kms_error_set(err, KMS_ERR_INPUT, NULL, 0, "write.products",
                           "overlay needs an 8-bit or single-channel image");
    /* small slices (3 mm volumes: 122 px) are enlarged, voxels kept square
     * and sharp, so outlines and text can be read */
    int scale = st == KMS_OK && out->width > 0 && out->width < OVERLAY_MIN_WIDTH
                    ? (OVERLAY_MIN_WIDTH + out->width - 1) / out->width : 1;
    int longest = out->width > out->height ? out->width : out->height;
    if (scale > 1 && longest > 0 && scale > OVERLAY_MAX_SIDE / longest)
        scale = OVERLAY_MAX_SIDE / longest > 1 ? OVERLAY_MAX_SIDE / longest : 1;
    if (st == KMS_OK && scale > 1)
        st = kms_cv_resize(out, out, out->width * scale, out->height * scale,
                           0, 0, KMS_CV_INTER_NEAREST, err);
    if (st == KMS_OK && ctx->evaluated) {
        st = overlay_layer(&ctx->truth, z * rows, rows, 0, scale, &layer, &at,
                           err);
        if (st == KMS_OK)
            st = draw_layer(out, &layer, &at, magenta, 0, err);
    }
    bool sides = ctx->lungs.data != NULL;
    if (st == KMS_OK && sides) {
        st = overlay_layer(&ctx->lungs, z * rows, rows, KMS_LUNG_RIGHT, scale,
                           &layer, &at, err);
        if (st == KMS_OK)
            st = draw_layer(out, &layer, &at, orange, fill, err);
        if (st == KMS_OK)
            st = overlay_layer(&ctx->lungs, z * rows, rows, KMS_LUNG_LEFT,
                               scale, &layer, &at, err);
        if (st == KMS_OK)
            st = draw_layer(out, &layer, &at, sky_blue, fill, err);
    } else if (st == KMS_OK) {
        st = overlay_layer(&ctx->mask, z * rows, rows, 0, scale, &layer, &at,
                           err);
        if (st == KMS_OK)
            st = draw_layer(out, &layer, &at, green, fill, err);
    }
    kms_image_free(&layer);
    if (st == KMS_OK) {
        char label[96];
        int n = ctx->evaluated ? snprintf(label, sizeof label, "mask  Dice %.4f",
                                          ctx->dice)
                               : snprintf(label, sizeof label, "mask");
        if (n > 0 && slices > 1)
            snprintf(label + n, sizeof label - (size_t)n, "  slice %d", z);
        st = kms_cv_put_text(out, label, 8, 20, 0.5, sides ? orange : green, 1,
                             err);
    }
    if (st == KMS_OK && ctx->evaluated)
        st = kms_cv_put_text(out, "truth", 8, 40, 0.5, magenta, 1, err);
    if (st == KMS_OK && sides)
        st = kms_cv_put_text(out, "right lung", 8, ctx->evaluated ? 60 : 40,
                             0.5, orange, 1, err);
    if (st == KMS_OK && sides)
        st = kms_cv_put_text(out, "left lung", 8, ctx->evaluated ? 80 : 60, 0.5,
                             sky_blue, 1, err);
    return st;
}

/* --- PNG of a mask ----------------------------------------------------------
 * Masks (8-bit, one channel, long runs of 0 and 255) are encoded by
 * kms_png_encode8 rather than by libpng through OpenCV, whose filter search
 * costs more than the rest of the lung pipeline's writing: filter "none" on
 * every row and zlib's run-length strategy (Z_RLE), which is made for
 * exactly such data. */

static kms_status encode_mask_png(const kms_image *img, unsigned char **bytes,
                                  size_t *len, kms_error *err)
{
    return kms_png_encode8(img, NULL, 0, 0, 1, Z_RLE, bytes, len, err);
}

/* --- the overlay as an indexed PNG ------------------------------------------
 * An overlay is a grey slice with a few coloured outlines and labels: it
 * rarely has more than 256 colours, so it is stored losslessly as palette
 * indices, a third of the bytes of RGB for zlib to compress (the slowest
 * part of writing it). The palette is sorted by brightness, so the indices
 * of a grey slice change as its grey does and the sub filter takes them to
 * small numbers. An overlay of more colours (overlay_fill blends) is written
 * as RGB. */

typedef struct palette_entry {
    uint32_t bgr; /* b << 16 | g << 8 | r */
    int luma;
} palette_entry;

static int by_luma(const void *a, const void *b)
{
    const palette_entry *x = a, *y = b;
    if (x->luma != y->luma)
        return x->luma < y->luma ? -1 : 1;
    return x->bgr < y->bgr ? -1 : x->bgr > y->bgr;
}

enum { HASH_SIZE = 1024 }; /* a power of two, > 2 x 256 */

/* The slot of key in the open-addressing table (keys + 1, 0 = empty). */
static unsigned hash_slot(const uint32_t *keys, uint32_t key)
{
    unsigned h = (key * 2654435761u) >> 22 & (HASH_SIZE - 1);
    while (keys[h] && keys[h] != key + 1)
        h = (h + 1) & (HASH_SIZE - 1);
    return h;
}

/* Are the 8 BGR pixels at p grey (b = g = r)? p[24] must be readable: byte
 * i is compared with byte i + 1, 8 at a time, for the i that are a blue or
 * a green. */
static bool grey8(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    static const uint64_t lanes[3] = {0xFFFF00FFFF00FFFFull,
                                      0xFF00FFFF00FFFF00ull,
                                      0x00FFFF00FFFF00FFull};
    uint64_t diff = 0;
    for (int k = 0; k < 3; k++) {
        uint64_t a, b;
        memcpy(&a, p + 8 * k, 8);
        memcpy(&b, p + 8 * k + 1, 8);
        diff |= (a ^ b) & lanes[k];
    }
    return diff == 0;
#else
    (void)p;
    return false; /* the pixel by pixel path */
#endif
}

/* Indices into a palette of at most 256 colours, or *n_out = 0 when the
 * image has more. One pass keeps the grey level of grey pixels (nearly all)
 * and the places of the others; the palette known, a table maps the grey
 * levels and a small hash table the other colours. */
static kms_status index_colours(const kms_image *bgr, kms_image *idx,
                                uint8_t palette[256 * 3], int *n_out,
                                kms_error *err)
{
    uint32_t table[HASH_SIZE] = {0};
    uint8_t value[HASH_SIZE], grey_value[256] = {0}, seen[256] = {0};
    palette_entry entries[256];
    int n = 0, colours = 0;
    size_t n_places = 0, cap_places = 0;
    uint32_t *places = NULL; /* y * width + x of the coloured pixels */
    *n_out = 0;
    kms_status st = kms_image_alloc_raw(idx, bgr->width, bgr->height, 1,
                                        KMS_DEPTH_U8, err);
    for (int y = 0; st == KMS_OK && y < bgr->height; y++) {
        const uint8_t *s = kms_image_row(bgr, y);
        uint8_t *d = kms_image_row(idx, y);
        const int w = bgr->width;
        for (int x = 0; x < w; x++, s += 3) {
            if (x + 8 < w && grey8(s)) { /* the common case, 8 at once */
                for (int i = 0; i < 8; i++) {
                    d[x + i] = s[3 * i];
                    seen[s[3 * i]] = 1;
                }
                x += 7;
                s += 21;
                continue;
            }
            uint8_t b = s[0];
            d[x] = b;
            if (b == s[1] && b == s[2]) {
                seen[b] = 1;
                continue;
            }
            if (n_places == cap_places) {
                size_t cap = cap_places ? 2 * cap_places : 1024;
                uint32_t *grown = realloc(places, cap * sizeof *places);
                if (!grown) {
                    st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                                       "out of memory");
                    break;
                }
                places = grown;
                cap_places = cap;
            }
            places[n_places++] = (uint32_t)y * (uint32_t)w + (uint32_t)x;
            uint32_t key = (uint32_t)b << 16 | (uint32_t)s[1] << 8 | s[2];
            unsigned h = hash_slot(table, key);
            if (table[h])
                continue;
            if (++colours > 256)
                goto out; /* too many: RGB */
            table[h] = key + 1;
            entries[n].bgr = key;
            /* ITU-R BT.601 luma, in thousandths */
            entries[n].luma = 114 * b + 587 * s[1] + 299 * s[2];
            n++;
        }
    }
    if (st != KMS_OK)
        goto out;
    for (int v = 0; v < 256; v++) {
        if (!seen[v])
            continue;
        if (n == 256)
            goto out;
        entries[n].bgr = (uint32_t)v * 0x010101u;
        entries[n].luma = 1000 * v;
        n++;
    }
    qsort(entries, (size_t)n, sizeof *entries, by_luma);
    for (int i = 0; i < n; i++) {
        uint32_t c = entries[i].bgr;
        uint8_t b = (uint8_t)(c >> 16), g = (uint8_t)(c >> 8), r = (uint8_t)c;
        if (b == g && g == r)
            grey_value[b] = (uint8_t)i;
        else
            value[hash_slot(table, c)] = (uint8_t)i;
        palette[3 * i] = r;
        palette[3 * i + 1] = g;
        palette[3 * i + 2] = b;
    }
    for (int y = 0; y < bgr->height; y++) {
        uint8_t *d = kms_image_row(idx, y);
        for (int x = 0; x < bgr->width; x++)
            d[x] = grey_value[d[x]];
    }
    for (size_t i = 0; i < n_places; i++) {
        int y = (int)(places[i] / (uint32_t)bgr->width);
        int x = (int)(places[i] % (uint32_t)bgr->width);
        const uint8_t *s = (const uint8_t *)kms_image_row(bgr, y) + 3 * x;
        uint32_t key = (uint32_t)s[0] << 16 | (uint32_t)s[1] << 8 | s[2];
        ((uint8_t *)kms_image_row(idx, y))[x] = value[hash_slot(table, key)];
    }
    *n_out = n;
out:
    free(places);
    return st;
}

static kms_status encode_overlay_indexed(const kms_image *img, bool small,
                                         unsigned char **bytes, size_t *len,
                                         kms_error *err)
{
    kms_image idx = {0};
    uint8_t palette[256 * 3];
    int n = 0;
    kms_status st = img->channels == 3 && img->depth == KMS_DEPTH_U8
                        ? index_colours(img, &idx, palette, &n, err)
                        : KMS_OK;
    if (st == KMS_OK && n > 0)
        st = small ? kms_png_encode8(&idx, palette, n, 1, 1, Z_HUFFMAN_ONLY,
                                     bytes, len, err)
                   : kms_png_encode8(&idx, palette, n, 0, 0, Z_DEFAULT_STRATEGY,
                                     bytes, len, err);
    else if (st == KMS_OK)
        st = kms_cv_imencode(".png", img, NULL, 0, bytes, len, err);
    kms_image_free(&idx);
    return st;
}

enum { MAX_PRODUCTS = 8 };

/* File name endings; volumes keep masks and labels as NIfTI in the input's
 * geometry. */
static const char *suffix_of(unsigned product, bool volume)
{
    switch (product) {
    case KMS_PRODUCT_RECOLOR: return "_recolor.png";
    case KMS_PRODUCT_LABELS: return volume ? "_labels.nii.gz" : "_labels.png";
    case KMS_PRODUCT_RECOLOR_RAW: return "_recolor.tif";
    case KMS_PRODUCT_MASK: return volume ? "_mask.nii.gz" : "_mask.png";
    case KMS_PRODUCT_OVERLAY: return "_overlay.png";
    case KMS_PRODUCT_LUNGS: return volume ? "_lungs.nii.gz" : "_lungs.png";
    case KMS_PRODUCT_LABELS_COLOR: return "_labels_color.png";
    }
    abort();
}

static int write_products(const void *params, const char *input_path,
                          const char *stem, char names[][KMS_PRODUCT_NAME_MAX],
                          int max)
{
    const write_params *p = params;
    bool volume = kms_nifti_is_path(input_path);
    int n = 0;
    for (const kms_choice *c = product_names; c->name && n < max; c++)
        if (p->products & (unsigned)c->value)
            snprintf(names[n++], KMS_PRODUCT_NAME_MAX, "%.400s%s", stem,
                     suffix_of((unsigned)c->value, volume));
    return n;
}

/* The products of one input, made before any is written, so a failure can
 * remove what was already written: an input has all its products or none. */
typedef struct product {
    char name[KMS_PRODUCT_NAME_MAX];
    unsigned char *bytes;    /* an encoded image, or */
    kms_image volume_mask;   /* a stack written as NIfTI, owned, or */
    const kms_image *volume_view; /* one of the context's, not owned */
    size_t len;
} product;

typedef struct product_set {
    product items[MAX_PRODUCTS];
    int n;
} product_set;

/* Takes img (moved into the set for NIfTI, encoded otherwise); view: img
 * is one of the context's images, borrowed until the set is written. */
static kms_status add_product(const write_params *p, product_set *set,
                              const kms_context *ctx, unsigned kind,
                              kms_image *img, bool view, kms_error *err)
{
    assert(set->n < MAX_PRODUCTS);
    product *it = &set->items[set->n];
    bool volume = ctx->volume.header != NULL;
    const char *suffix = suffix_of(kind, volume);
    snprintf(it->name, sizeof it->name, "%.400s%s", ctx->stem, suffix);
    kms_status st;
    if (strstr(suffix, ".nii")) {
        if (img->width != ctx->input_width || img->height != ctx->input_height)
            return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "write.products",
                                 "%s of a resized volume cannot be written in "
                                 "the volume's geometry (drop reshape's size)",
                                 kms_choice_name(product_names, (int)kind));
        if (view)
            it->volume_view = img;
        else
            kms_image_move(&it->volume_mask, img);
        st = KMS_OK;
    } else if ((kind == KMS_PRODUCT_MASK || kind == KMS_PRODUCT_LUNGS) &&
               img->channels == 1 && img->depth == KMS_DEPTH_U8) {
        st = encode_mask_png(img, &it->bytes, &it->len, err);
    } else if (kind == KMS_PRODUCT_OVERLAY &&
               p->overlay_format != OVERLAY_RGB) {
        st = encode_overlay_indexed(img, p->overlay_format == OVERLAY_SMALL,
                                    &it->bytes, &it->len, err);
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

/* Makes the image of one product (a KMS_PRODUCT_ bit). */
static kms_status make_product(const write_params *p, unsigned kind,
                               const kms_context *ctx, kms_image *out,
                               kms_error *err)
{
    switch (kind) {
    case KMS_PRODUCT_RECOLOR: return recolor_u8(ctx, out, err);
    case KMS_PRODUCT_LABELS: return labels_u8(ctx, out, err);
    case KMS_PRODUCT_RECOLOR_RAW: return kms_image_copy(out, &ctx->recolor, err);
    case KMS_PRODUCT_OVERLAY: return overlay(ctx, p->overlay_fill, out, err);
    case KMS_PRODUCT_LABELS_COLOR: return labels_color(ctx, out, err);
    }
    abort(); /* mask and lungs are written from the context (no image made) */
}

static kms_status encode_products(const write_params *p, const kms_context *ctx,
                                  product_set *set, kms_error *err)
{
    kms_status st = KMS_OK;
    for (const kms_choice *c = product_names; c->name && st == KMS_OK; c++) {
        unsigned kind = (unsigned)c->value;
        if (!(p->products & kind))
            continue;
        kms_image img = {0};
        /* masks are encoded or written as they are, without a copy (a
         * volume's are large) */
        const kms_image *view = kind == KMS_PRODUCT_MASK    ? &ctx->mask
                                : kind == KMS_PRODUCT_LUNGS ? &ctx->lungs
                                                            : NULL;
        if (view && !view->data)
            st = kms_error_set(err, KMS_ERR_INTERNAL, NULL, 0, "write.products",
                               "%s: no such image was made",
                               kms_choice_name(product_names, (int)kind));
        else if (view)
            img = *view;
        else
            st = make_product(p, kind, ctx, &img, err);
        if (st == KMS_OK)
            st = add_product(p, set, ctx, kind,
                             view ? (kms_image *)view : &img, view != NULL,
                             err);
        if (!view)
            kms_image_free(&img);
    }
    return st;
}

static kms_status write_product(const kms_context *ctx, const product *it,
                                kms_error *err)
{
    if (it->volume_view || it->volume_mask.data)
        return kms_nifti_write_mask(ctx->output_dir, it->name, &ctx->volume,
                                    it->volume_view ? it->volume_view
                                                    : &it->volume_mask,
                                    ctx->inputs, err);
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
    .products = write_products,
};
