/* Result codes and the error record every fallible kmseg function fills.
 * Convention (sqlite + libvips): the function that detects a problem sets the
 * record; callers only propagate the status. */
#ifndef KMS_ERROR_H
#define KMS_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kms_status {
    KMS_OK = 0,
    KMS_ERR_NOMEM,   /* allocation failed */
    KMS_ERR_IO,      /* file could not be read or written */
    KMS_ERR_CONFIG,  /* config or command line is wrong */
    KMS_ERR_INPUT,   /* an input file is unusable (bad format, bad values) */
    KMS_ERR_OPENCV,  /* OpenCV raised an exception */
    KMS_ERR_USAGE,   /* a caller passed arguments that make no sense */
    KMS_ERR_INTERRUPTED, /* stopped by a signal */
    KMS_ERR_INTERNAL /* a bug in kmseg */
} kms_status;

typedef struct kms_error {
    kms_status code;
    char file[1024];  /* file the problem is about (config, input, output) */
    int line;         /* config line, 0 when not applicable */
    char key[96];     /* SECTION.KEY or stage name, "" when not applicable */
    char message[1024];
} kms_error;

/* Name of a status code ("out of memory", ...); never NULL. */
const char *kms_strerror(kms_status code);

/* Resets err to KMS_OK with empty fields; NULL is a no-op. */
void kms_error_clear(kms_error *err);

/* Fills err (if non-NULL) and returns code. file and key may be NULL. */
kms_status kms_error_set(kms_error *err, kms_status code, const char *file,
                         int line, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

/* One line, "file:line: key: message" with the empty parts left out. */
void kms_error_format(const kms_error *err, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
