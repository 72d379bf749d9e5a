/* Writing products: to a temporary name in the output folder, then rename,
 * so a crash or a full disk never leaves a half-written file behind, and a
 * product never replaces an input. */
#ifndef KMS_OUTPUT_H
#define KMS_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "image.h"

/* Creates dir (and its parents) if missing and checks it can be written.
 * Errors name the folder. */
kms_status kms_output_prepare_dir(const char *dir, kms_error *err);

/* The files of a batch's inputs, by device and inode, so no product is ever
 * written over any of them (whatever path names them). */
typedef struct kms_file_id {
    unsigned long long dev, ino;
} kms_file_id;

typedef struct kms_file_set {
    kms_file_id *ids; /* sorted */
    size_t n;
} kms_file_set;

/* Adds every path that exists; missing ones are skipped. */
kms_status kms_file_set_build(kms_file_set *set, const char *const *paths,
                              size_t n, kms_error *err);
bool kms_file_set_contains(const kms_file_set *set, const char *path);
void kms_file_set_free(kms_file_set *set);

/* Writes len bytes to dir/name atomically. Writing over a file of protect
 * (may be NULL) is refused with KMS_ERR_IO. */
kms_status kms_output_write(const char *dir, const char *name, const void *buf,
                            size_t len, const kms_file_set *protect,
                            kms_error *err);

/* A PNG of an 8-bit one-channel image into *bytes (malloc'ed, *len bytes):
 * grey when n_palette is 0, else indices into palette (n_palette RGB
 * triples, at most 256). Rows are filtered with filter (0 none, 1 sub) and
 * compressed by zlib with level and strategy (Z_RLE, ...): the same
 * arguments give the same bytes. */
kms_status kms_png_encode8(const kms_image *img, const uint8_t *palette,
                           int n_palette, int filter, int level, int strategy,
                           unsigned char **bytes, size_t *len, kms_error *err);

#endif
