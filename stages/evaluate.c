/* evaluate: scores the mask against a ground-truth mask (Dice, IoU), and
 * the lungs side by side against a truth with sides (1 = the patient's
 * right lung, 2 = left, lungmask's convention). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "nifti_io.h"
#include "opencv_c.h"
#include "output.h"
#include "stage.h"
#include "path.h"

typedef struct evaluate_params {
    char truth[KMS_STR_MAX];
    int sides;
} evaluate_params;

typedef enum truth_sides { SIDES_AUTO, SIDES_YES, SIDES_NO } truth_sides;
static const kms_choice sides_choices[] = {
    {"auto", SIDES_AUTO}, {"yes", SIDES_YES}, {"no", SIDES_NO}, {NULL, 0}};

/* A binary truth is 0/255 (PNG) or 0/1 (NIfTI); one with sides holds 2. */
enum { TRUTH_OTHER = 255 };

static const kms_param evaluate_table[] = {
    {"truth", KMS_PARAM_PATH, NULL, 0, 0, NULL,
     offsetof(evaluate_params, truth),
     "truth mask path; {stem} stands for the input's name, e.g. "
     "masks/{stem}.png, and {dir} for its subfolder in a folder given as "
     "input (\"\" at the top; masks/{dir}/{stem}.png mirrors a tree) "
     "(non-zero = inside; PNG/TIFF, or NIfTI for volumes); "
     "relative to the config's folder (to the current folder when given "
     "with -s)"},
    {"sides", KMS_PARAM_CHOICE, "auto", 0, 0, sides_choices,
     offsetof(evaluate_params, sides),
     "score the right and left lungs apart (dice_right, dice_left): auto "
     "when the truth holds only 0, 1 (right) and 2 (left) with some 2; yes "
     "(any other value is an error); no"},
    {0},
};

static kms_status evaluate_prepare(const void *params, kms_link *link,
                                   kms_error *err)
{
    const evaluate_params *p = params;
    if (!link->mask)
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, NULL,
                             "evaluate needs a mask: put mask or lung_mask "
                             "before it");
    if (!p->truth[0])
        return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "truth",
                             "empty: name the truth masks, e.g. "
                             "masks/{stem}.png");
    /* a misspelt placeholder would look for one missing file per input */
    for (const char *b = strchr(p->truth, '{'); b; b = strchr(b + 1, '{'))
        if (strncmp(b, "{stem}", 6) != 0 && strncmp(b, "{dir}", 5) != 0)
            return kms_error_set(err, KMS_ERR_CONFIG, NULL, 0, "truth",
                                 "'%.40s': the placeholders are {stem} and "
                                 "{dir}", b);
    return KMS_OK;
}

/* Replaces every {stem} in pattern by the input's name and {dir} by its
 * subfolder: ctx->stem is "DIR/NAME" for an input in a subfolder of a
 * folder given as input (products mirror the tree), else "NAME". */
static void expand(const char *pattern, const char *stem, char *out, size_t len)
{
    const char *slash = strrchr(stem, '/');
    const char *name = slash ? slash + 1 : stem;
    int dir_len = slash ? (int)(slash - stem) : 0;
    size_t used = 0;
    for (const char *s = pattern; *s && used + 1 < len;) {
        int n = -1;
        if (strncmp(s, "{stem}", 6) == 0) {
            n = snprintf(out + used, len - used, "%s", name);
            s += 6;
        } else if (strncmp(s, "{dir}", 5) == 0) {
            n = snprintf(out + used, len - used, "%.*s", dir_len, stem);
            s += 5;
        }
        if (n >= 0) {
            used += (size_t)n < len - used ? (size_t)n : len - used - 1;
        } else {
            out[used++] = *s++;
        }
    }
    out[used < len ? used : len - 1] = '\0';
}

/* A truth mask as 8-bit, non-zero = inside: a PNG/TIFF slice, or a NIfTI
 * volume in the same canonical stack layout as the input volume, its
 * values 1..254 kept (sides) and any other nonzero one TRUTH_OTHER. */
static kms_status read_truth(const char *path, size_t max_pixels,
                             kms_image *truth, kms_error *err)
{
    if (!kms_nifti_is_path(path))
        return kms_cv_imread(path, KMS_CV_IMREAD_GRAYSCALE, truth, err);
    kms_volume vol;
    kms_status st = kms_nifti_read(path, max_pixels, &vol, err);
    if (st != KMS_OK)
        return st;
    st = kms_image_alloc(truth, vol.img.width, vol.img.height, 1, KMS_DEPTH_U8,
                         err);
    for (int y = 0; st == KMS_OK && y < vol.img.height; y++) {
        uint8_t *t = kms_image_row(truth, y);
        const void *row = kms_image_row(&vol.img, y);
        for (int x = 0; x < vol.img.width; x++) {
            double v = vol.img.depth == KMS_DEPTH_S16
                           ? ((const int16_t *)row)[x]
                           : ((const float *)row)[x];
            t[x] = v == 0                            ? 0
                   : v >= 1 && v < 255 && v == (int)v ? (uint8_t)v
                                                      : TRUTH_OTHER;
        }
    }
    kms_volume_free(&vol);
    return st;
}

static kms_status evaluate_run(const void *params, kms_context *ctx,
                               kms_error *err)
{
    const evaluate_params *p = params;
    char rel[KMS_STR_MAX + 256], path[2 * KMS_STR_MAX];
    expand(p->truth, ctx->stem, rel, sizeof rel);
    kms_path_join(path, sizeof path, ctx->base_dir ? ctx->base_dir : "", rel);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        /* no truth for this input: say so, but the mask still counts */
        kms_context_note(ctx, "no truth at %.200s", path);
        return KMS_OK;
    }
    kms_image truth = {0};
    kms_status st = read_truth(path, ctx->max_pixels, &truth, err);
    if (st != KMS_OK)
        return st;
    if (truth.width != ctx->mask.width || truth.height != ctx->mask.height) {
        st = kms_error_set(err, KMS_ERR_INPUT, path, 0, "evaluate.truth",
                           "truth is %dx%d but the mask is %dx%d", truth.width,
                           truth.height, ctx->mask.width, ctx->mask.height);
        kms_image_free(&truth);
        return st;
    }
    /* one pass: which values the truth holds (whether it has sides is
     * known only at the end), each side's counts where the lungs have
     * sides, and the binary counts */
    bool holds[256] = {false};
    long both = 0, in_mask = 0, in_truth = 0;
    long side_both[2] = {0}, side_mask[2] = {0}, side_truth[2] = {0};
    bool lungs = ctx->lungs.data && p->sides != SIDES_NO;
    for (int y = 0; y < truth.height; y++) {
        uint8_t *t = kms_image_row(&truth, y);
        const uint8_t *m = kms_image_row(&ctx->mask, y);
        const uint8_t *l = lungs ? kms_image_row(&ctx->lungs, y) : NULL;
        for (int x = 0; x < truth.width; x++) {
            holds[t[x]] = true;
            if (l) {
                for (int side = 0; side < 2; side++) {
                    bool in_t = t[x] == side + 1, in_l = l[x] == side + 1;
                    side_truth[side] += in_t;
                    side_mask[side] += in_l;
                    side_both[side] += in_t && in_l;
                }
            }
            t[x] = t[x] ? 255 : 0;
            in_truth += t[x] != 0;
            in_mask += m[x] != 0;
            both += t[x] && m[x];
        }
    }
    int other = 0;
    for (int v = 3; v < 256 && !other; v++)
        other = holds[v] ? v : 0;
    bool sided = p->sides == SIDES_YES ||
                 (p->sides == SIDES_AUTO && holds[KMS_LUNG_LEFT] && !other);
    if (sided && other) {
        kms_image_free(&truth);
        return kms_error_set(err, KMS_ERR_INPUT, path, 0, "evaluate.sides",
                             "the truth holds %d: a truth with sides holds 0, "
                             "1 (the right lung) and 2 (the left)", other);
    }
    if (sided && !lungs) {
        kms_context_note(ctx, "the truth has sides but the mask has none "
                              "(lung_mask finds them)");
        sided = false;
    }
    long either = in_mask + in_truth - both;
    /* two empty masks agree, but that says nothing of the method: no
     * score (a Dice of 1 would lift the mean) */
    ctx->evaluated = either > 0;
    if (ctx->evaluated) {
        ctx->dice = 2.0 * both / (double)(in_mask + in_truth);
        ctx->iou = (double)both / (double)either;
    } else {
        kms_context_note(ctx, "truth and mask both empty: no Dice");
    }
    for (int side = 0; sided && side < 2; side++) {
        long sum = side_mask[side] + side_truth[side];
        ctx->side_evaluated[side] = sum > 0;
        ctx->side_dice[side] = sum ? 2.0 * side_both[side] / (double)sum : 0;
    }
    kms_image_move(&ctx->truth, &truth);
    return KMS_OK;
}

const kms_stage_class kms_stage_evaluate = {
    .name = "evaluate",
    .description = "score the mask against a truth mask: Dice and IoU into "
                   "summary.csv",
    .params = evaluate_table,
    .params_size = sizeof(evaluate_params),
    .prepare = evaluate_prepare,
    .run = evaluate_run,
};
