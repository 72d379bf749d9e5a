/* Image files (PNG, JPEG, TIFF) as kmseg reads them before OpenCV decodes
 * them: the bytes at once, cut files named as such, plain CT TIFFs copied
 * out directly, and the pixel size a TIFF states. */
#ifndef KMS_IMAGE_FILE_H
#define KMS_IMAGE_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "image.h"

/* Reads the whole regular file at path into *buf (malloc'ed; the caller
 * frees) of *len bytes. Errors name the file. */
kms_status kms_file_load(const char *path, unsigned char **buf, size_t *len,
                         kms_error *err);

/* KMS_ERR_INPUT naming the file when buf is a PNG cut before its last
 * chunk (IEND) or a JPEG cut before its end-of-image marker: their
 * decoders would print a warning and give grey rows. Other formats pass. */
kms_status kms_image_file_check(const char *path, const unsigned char *buf,
                                size_t len, kms_error *err);

/* KMS_ERR_INPUT naming the file when the header of a PNG, JPEG, TIFF or
 * BMP in buf states more than max_pixels pixels (0: KMS_MAX_PIXELS_DEFAULT),
 * so nothing that size is allocated; other files pass. */
kms_status kms_image_file_check_size(const char *path, const unsigned char *buf,
                                     size_t len, size_t max_pixels,
                                     kms_error *err);

/* mm per pixel (x, y) from a TIFF's resolution tags when they say so
 * plausibly (0.05-5 mm, not a software's default dpi); both 0 otherwise. */
void kms_tiff_pixel_mm(const unsigned char *buf, size_t len, double mm[2]);

/* A little-endian, uncompressed, single-sample signed 16-bit TIFF in strips
 * (how CT slices are usually stored) into out (S16), the pixels libtiff
 * would give. Returns false, allocating nothing, for any other file; true
 * when it handled the file, with *st its outcome. */
bool kms_tiff_read_plain(const unsigned char *buf, size_t len, kms_image *out,
                         kms_error *err, kms_status *st);

#endif
