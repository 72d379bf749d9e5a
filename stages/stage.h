/* The stage interface. A stage is a const class (after darktable's iop_api.h
 * and libvips's argument tables): a name that is also its INI section, a
 * parameter table the config loader and `kmseg stages` both read, and
 * prepare/run functions. */
#ifndef KMS_STAGE_H
#define KMS_STAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "context.h"
#include "kmeans_params.h"
#include "error.h"

#define KMS_STR_MAX 1024

typedef enum kms_param_type {
    KMS_PARAM_INT,    /* int, range [min, max]; words in choices (optional)
                         are accepted too and stored as their values */
    KMS_PARAM_DOUBLE, /* double, range [min, max] */
    KMS_PARAM_BOOL,   /* bool: true/false, yes/no, on/off, 1/0 */
    KMS_PARAM_CHOICE, /* int: the value of the choice named */
    KMS_PARAM_FLAGS,  /* unsigned: the values (bits) of the choices named,
                         or'ed; a list */
    KMS_PARAM_RATIO,  /* kms_ratio: "0.5" or "1/255", num/den in range */
    KMS_PARAM_STRING, /* char[KMS_STR_MAX] */
    KMS_PARAM_LIST,   /* char[KMS_STR_MAX]: comma-separated items, kept as text */
    /* As STRING and LIST, of paths: relative ones start at the config's
     * folder when the config gives them, at the current folder when -s
     * does (the command line means the folder it is typed in). */
    KMS_PARAM_PATH,
    KMS_PARAM_PATH_LIST
} kms_param_type;

/* A number written as a fraction keeps both parts, so 1/255 scales exactly
 * as numpy's `x / 255` does in float32. */
typedef struct kms_ratio {
    double num;
    double den;
} kms_ratio;

/* A word a parameter accepts and the value stored for it: code switches on
 * values, never on a word's place in the table. Tables end with {NULL}. */
typedef struct kms_choice {
    const char *name;
    int value;
} kms_choice;

typedef struct kms_param {
    const char *name;
    kms_param_type type;
    const char *default_value; /* text, parsed like a config value; NULL: required */
    double min, max;           /* INT, DOUBLE, RATIO */
    const kms_choice *choices; /* CHOICE, FLAGS, INT words */
    size_t offset;             /* offsetof in the stage's params struct */
    const char *help;
} kms_param;

/* The link: what the stages before this one leave in the context, as typed
 * facts of the config alone. Each prepare() checks what it consumes against
 * it and declares what it produces, so a config that cannot work fails
 * before any input is read. "May" sets are what some input could give.
 * Image facts are those of image files: volumes (NIfTI, DICOM series) are
 * read as one channel of HU whatever read.mode says. */

/* Channel counts an image may have, as bits. */
enum {
    KMS_CHANNELS_1 = 1u << 0,
    KMS_CHANNELS_3 = 1u << 1,
    KMS_CHANNELS_4 = 1u << 2,
    KMS_CHANNELS_ANY = KMS_CHANNELS_1 | KMS_CHANNELS_3 | KMS_CHANNELS_4
};

/* Depths an image may have: bit (1u << kms_depth). */
#define KMS_DEPTH_BIT(d) (1u << (unsigned)(d))
#define KMS_DEPTHS_ANY                                                         \
    (KMS_DEPTH_BIT(KMS_DEPTH_U8) | KMS_DEPTH_BIT(KMS_DEPTH_S16) |              \
     KMS_DEPTH_BIT(KMS_DEPTH_U16) | KMS_DEPTH_BIT(KMS_DEPTH_S32) |             \
     KMS_DEPTH_BIT(KMS_DEPTH_F32))

/* What an image's values stand for. */
typedef enum kms_units {
    KMS_UNITS_AS_STORED, /* as the file has them: HU for CT, grey levels for
                            pictures (read.mode = unchanged) */
    KMS_UNITS_PICTURE,   /* 8-bit display grey or BGR (read.mode = color or
                            grayscale) */
    KMS_UNITS_HU         /* rescaled by read.slope/intercept */
} kms_units;

/* Input shapes, as bits. */
enum { KMS_SHAPE_SLICE = 1u << 0, KMS_SHAPE_VOLUME = 1u << 1 };

typedef struct kms_link_image {
    bool present;       /* ctx->image */
    unsigned channels;  /* KMS_CHANNELS_* it may have */
    unsigned depths;    /* KMS_DEPTH_BIT()s it may have */
    kms_units units;
} kms_link_image;

typedef struct kms_link_samples {
    bool present;       /* ctx->samples */
    int dims;           /* features per sample: 1 intensity, 3 B, G, R */
    long per_slice;     /* samples of a slice when reshape fixes the size
                           (width x height), 0: the input's own size */
    kms_ratio value;    /* sample = pixel * num / den */
} kms_link_samples;

typedef struct kms_link_labels {
    bool present;       /* ctx->labels, ctx->centers, ctx->k */
    int k;              /* clusters; 0: auto, one of k_min..k_max per input */
    int k_min, k_max;
} kms_link_labels;

typedef struct kms_link {
    kms_link_image image;
    kms_link_samples samples;
    kms_link_labels labels;
    bool recolor;       /* ctx->recolor */
    bool mask;          /* ctx->mask */
    bool lungs;         /* ctx->lungs: the lungs by side (lung_mask) */
    bool spacing;       /* the config gives the pixel size (read.spacing);
                           else it comes from the file, or is unknown */
    unsigned shapes;    /* KMS_SHAPE_* the inputs may have */
} kms_link;

/* Optional hook of a stage that clusters samples: commands that compare or
 * sweep clusterings (compare, elbow) look for the first stage that has it. */
typedef enum kms_backend { KMS_BACKEND_NATIVE, KMS_BACKEND_OPENCV } kms_backend;
typedef struct kms_clustering {
    /* Clusters ctx's samples with backend, whatever the config says. Sets
     * ctx->k, labels (canonical), centers, wcss, backend and ms_kmeans. */
    kms_status (*cluster)(const void *params, kms_context *ctx,
                          kms_backend backend, kms_error *err);
    /* The k-means parameters the stage's config means (one struct for
     * both backends). */
    void (*kmeans_params)(const void *params, const kms_context *ctx,
                          kms_kmeans_params *kp);
} kms_clustering;

#define KMS_PRODUCT_NAME_MAX 512

typedef struct kms_stage_class {
    const char *name;        /* = INI section */
    const char *description; /* one line */
    const kms_param *params; /* terminated by a zeroed entry */
    size_t params_size;      /* sizeof the params struct */
    /* Optional. Checks params against link and adds what the stage
     * produces; err->key names the offending key of the stage's section
     * (none: pipeline.stages is named). */
    kms_status (*prepare)(const void *params, kms_link *link, kms_error *err);
    /* Required. Works on one input. */
    kms_status (*run)(const void *params, kms_context *ctx, kms_error *err);
    /* Optional: the names of the files the stage writes for an input
     * (--resume skips an input when all exist). Returns how many (at most
     * max). A DICOM series of two or more files is passed as a volume. */
    int (*products)(const void *params, const char *input_path,
                    const char *stem, char names[][KMS_PRODUCT_NAME_MAX],
                    int max);
    /* Optional: the stage clusters (see kms_clustering). */
    const kms_clustering *clustering;
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

/* The name of value in choices, or NULL. */
const char *kms_choice_name(const kms_choice *choices, int value);

/* Writes the value of param in params as text that kms_param_parse reads
 * back to the same value (numbers with 17 digits, choices by name): the
 * resolved config of a run. Paths are written as stored. */
void kms_param_format(const kms_param *param, const void *params, char *buf,
                      size_t len);

/* Writes "int 1..256", "one of: a, b", ... for `kmseg stages`. */
void kms_param_describe(const kms_param *param, char *buf, size_t len);

#endif
