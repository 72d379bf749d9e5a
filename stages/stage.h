/* The stage interface. A stage is a const class (after darktable's iop_api.h
 * and libvips's argument tables): a name that is also its INI section, a
 * parameter table the config loader and `kmseg stages` both read, and
 * prepare/run functions. */
#ifndef KMS_STAGE_H
#define KMS_STAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "context.h"
#include "error.h"

#define KMS_STR_MAX 1024

typedef enum kms_param_type {
    KMS_PARAM_INT,    /* int, range [min, max]; words in choices (optional)
                         are accepted too and stored as 0, -1, -2, ... */
    KMS_PARAM_DOUBLE, /* double, range [min, max] */
    KMS_PARAM_BOOL,   /* bool: true/false, yes/no, on/off, 1/0 */
    KMS_PARAM_CHOICE, /* int: index into choices */
    KMS_PARAM_FLAGS,  /* unsigned: bit i set for choices[i]; a list */
    KMS_PARAM_RATIO,  /* kms_ratio: "0.5" or "1/255", num/den in range */
    KMS_PARAM_STRING, /* char[KMS_STR_MAX] */
    KMS_PARAM_LIST    /* char[KMS_STR_MAX]: comma-separated items, kept as text */
} kms_param_type;

/* A number written as a fraction keeps both parts, so 1/255 scales exactly
 * as numpy's `x / 255` does in float32. */
typedef struct kms_ratio {
    double num;
    double den;
} kms_ratio;

typedef struct kms_param {
    const char *name;
    kms_param_type type;
    const char *default_value; /* text, parsed like a config value; NULL: required */
    double min, max;           /* INT, DOUBLE, RATIO */
    const char *const *choices;/* CHOICE, FLAGS, INT words: NULL-terminated */
    size_t offset;             /* offsetof in the stage's params struct */
    const char *help;
} kms_param;

/* What the stages before this one leave in the context; prepare() checks its
 * needs against it and adds what it provides, before any pixel is touched. */
typedef struct kms_link {
    bool image;    /* ctx->image */
    bool samples;  /* ctx->samples */
    bool labels;   /* ctx->labels and ctx->centers */
    bool recolor;  /* ctx->recolor */
    bool mask;     /* ctx->mask */
    bool color;    /* the image may have 3 or 4 channels (read.mode = color):
                      read's prepare sets it */
} kms_link;

typedef struct kms_stage_class {
    const char *name;        /* = INI section */
    const char *description; /* one line */
    const kms_param *params; /* terminated by a zeroed entry */
    size_t params_size;      /* sizeof the params struct */
    /* Optional. Checks params and link; err->key names the offending key. */
    kms_status (*prepare)(const void *params, kms_link *link, kms_error *err);
    /* Required. Works on one input. */
    kms_status (*run)(const void *params, kms_context *ctx, kms_error *err);
} kms_stage_class;

/* All stages, NULL-terminated, in the order `kmseg stages` lists them. */
extern const kms_stage_class *const kms_stage_classes[];

/* The stage called name, or NULL. */
const kms_stage_class *kms_stage_find(const char *name);

/* Parses text as a value of param into params (at param->offset). On error
 * returns KMS_ERR_CONFIG with a message such as "'abc' is not a number";
 * file/line/key are left for the caller to fill. */
kms_status kms_param_parse(const kms_param *param, const char *text,
                           void *params, kms_error *err);

/* A finite number filling text (trailing blanks allowed), as every number
 * in a config is read; false otherwise. For stages that read a number out
 * of text keys (lists, "kmeans or an HU level"). */
bool kms_param_number(const char *text, double *out);

/* Applies every default of the table; fails only on a bad table (a bug). */
kms_status kms_params_apply_defaults(const kms_param *table, void *params,
                                     kms_error *err);

/* The entry of table called name, or NULL. */
const kms_param *kms_param_find(const kms_param *table, const char *name);

/* Writes "int 1..256", "one of: a | b", ... for `kmseg stages`. */
void kms_param_describe(const kms_param *param, char *buf, size_t len);

#endif
