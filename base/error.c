#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *kms_strerror(kms_status code)
{
    switch (code) {
    case KMS_OK: return "ok";
    case KMS_ERR_NOMEM: return "out of memory";
    case KMS_ERR_IO: return "i/o error";
    case KMS_ERR_CONFIG: return "config error";
    case KMS_ERR_INPUT: return "bad input";
    case KMS_ERR_OPENCV: return "opencv error";
    case KMS_ERR_USAGE: return "usage error";
    case KMS_ERR_INTERRUPTED: return "interrupted";
    case KMS_ERR_INTERNAL: return "internal error";
    }
    return "unknown error";
}

void kms_error_clear(kms_error *err)
{
    if (!err)
        return;
    memset(err, 0, sizeof *err);
}

kms_status kms_error_set(kms_error *err, kms_status code, const char *file,
                         int line, const char *key, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    snprintf(err->file, sizeof err->file, "%s", file ? file : "");
    err->line = line;
    snprintf(err->key, sizeof err->key, "%s", key ? key : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    /* One-line errors: OpenCV messages can contain newlines. */
    for (char *p = err->message; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return code;
}

void kms_error_format(const kms_error *err, char *buf, size_t len)
{
    size_t used = 0;
    if (len == 0)
        return;
    buf[0] = '\0';
#define APPEND(...)                                                            \
    do {                                                                       \
        if (used < len) {                                                      \
            int n_ = snprintf(buf + used, len - used, __VA_ARGS__);            \
            if (n_ > 0)                                                        \
                used += (size_t)n_;                                            \
        }                                                                      \
    } while (0)
    if (err->file[0]) {
        APPEND("%s", err->file);
        if (err->line > 0)
            APPEND(":%d", err->line);
        APPEND(": ");
    }
    if (err->key[0])
        APPEND("%s: ", err->key);
    APPEND("%s", err->message[0] ? err->message : kms_strerror(err->code));
#undef APPEND
}
