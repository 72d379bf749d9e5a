#include "output.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

kms_status kms_output_prepare_dir(const char *dir, kms_error *err)
{
    if (!dir[0])
        return kms_error_set(err, KMS_ERR_CONFIG, dir, 0, "pipeline.output",
                             "the output folder is empty: name one (\".\" "
                             "for the current folder)");

    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", dir);
    /* mkdir -p: create each missing parent in turn */
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return kms_error_set(err, KMS_ERR_IO, dir, 0, NULL,
                                 "cannot create output folder: %s",
                                 strerror(errno));
        *p = '/';
    }
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return kms_error_set(err, KMS_ERR_IO, dir, 0, NULL,
                             "cannot create output folder: %s", strerror(errno));
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return kms_error_set(err, KMS_ERR_IO, dir, 0, NULL,
                             "output is not a folder");
    if (access(path, W_OK | X_OK) != 0)
        return kms_error_set(err, KMS_ERR_IO, dir, 0, NULL,
                             "output folder is not writable: %s",
                             strerror(errno));
    return KMS_OK;
}

static int cmp_id(const void *a, const void *b)
{
    const kms_file_id *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

kms_status kms_file_set_build(kms_file_set *set, const char *const *paths,
                              size_t n, kms_error *err)
{
    set->n = 0;
    set->ids = malloc((n ? n : 1) * sizeof *set->ids);
    if (!set->ids)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        if (stat(paths[i], &sb) != 0)
            continue;
        set->ids[set->n].dev = (unsigned long long)sb.st_dev;
        set->ids[set->n].ino = (unsigned long long)sb.st_ino;
        set->n++;
    }
    qsort(set->ids, set->n, sizeof *set->ids, cmp_id);
    return KMS_OK;
}

bool kms_file_set_contains(const kms_file_set *set, const char *path)
{
    struct stat sb;
    if (!set || set->n == 0 || stat(path, &sb) != 0)
        return false;
    kms_file_id key = {(unsigned long long)sb.st_dev,
                       (unsigned long long)sb.st_ino};
    return bsearch(&key, set->ids, set->n, sizeof key, cmp_id) != NULL;
}

void kms_file_set_free(kms_file_set *set)
{
    if (!set)
        return;
    free(set->ids);
    set->ids = NULL;
    set->n = 0;
}

/* A new file beside path, created 0666 so the kernel applies the umask as
 * for any ordinary file (mkstemp makes 0600, and reading the umask means
 * setting it, which is not thread-safe). The name is unique to this process
 * and call; EEXIST (a leftover of a crashed run with the same pid) tries the
 * next. */
static int open_temp(const char *dir, const char *name, char *tmp, size_t len)
{
    static atomic_uint counter;
    for (int tries = 0; tries < 100; tries++) {
        char tmpname[PATH_MAX];
        /* at most 200 bytes of the name: a product name near NAME_MAX
         * (255) must not make its temporary name too long */
        snprintf(tmpname, sizeof tmpname, ".%.200s.tmp-%ld-%u", name,
                 (long)getpid(), atomic_fetch_add(&counter, 1));
        kms_path_join(tmp, len, dir, tmpname);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

static kms_status write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return KMS_ERR_IO;
        }
        p += n;
        len -= (size_t)n;
    }
    return KMS_OK;
}

kms_status kms_output_write(const char *dir, const char *name, const void *buf,
                            size_t len, const kms_file_set *protect,
                            kms_error *err)
{
    char path[PATH_MAX], tmp[PATH_MAX + 32];
    kms_path_join(path, sizeof path, dir, name);
    if (kms_file_set_contains(protect, path))
        return kms_error_set(err, KMS_ERR_IO, path, 0, NULL,
                             "refusing to overwrite the input with a product; "
                             "choose another output folder");
    /* a name in a subfolder (inputs of a folder tree, mirrored): make it,
     * and the temporary file beside the target */
    char sub[PATH_MAX];
    const char *slash = strrchr(name, '/');
    if (slash) {
        snprintf(sub, sizeof sub, "%s", path);
        *strrchr(sub, '/') = '\0';
        kms_status st = kms_output_prepare_dir(sub, err);
        if (st != KMS_OK)
            return st;
        dir = sub;
        name = slash + 1;
    }
    /* same folder as the target, so rename() cannot cross file systems */
    int fd = open_temp(dir, name, tmp, sizeof tmp);
    if (fd < 0)
        return kms_error_set(err, KMS_ERR_IO, path, 0, NULL, "cannot write: %s",
                             strerror(errno));
    kms_status st = write_all(fd, buf, len);
    int saved = errno;
    if (close(fd) != 0 && st == KMS_OK) {
        st = KMS_ERR_IO;
        saved = errno;
    }
    if (st == KMS_OK && rename(tmp, path) != 0) {
        st = KMS_ERR_IO;
        saved = errno;
    }
    if (st != KMS_OK) {
        unlink(tmp);
        return kms_error_set(err, KMS_ERR_IO, path, 0, NULL, "cannot write: %s",
                             strerror(saved));
    }
    return KMS_OK;
}

/* --- PNG of an 8-bit one-channel image (see output.h) ------------------ */

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
    uLong crc = crc32(0L, p + 4, (uInt)(len + 4));
    return put_be32(p + 8 + len, (uint32_t)crc);
}

/* The zlib stream of the rows, each after its filter byte, into out (cap
 * bytes); 0 when it does not fit or zlib fails. Filter 0 (none) keeps the
 * rows as they are, 1 (sub) takes each byte less the one before. The rows
 * go to zlib as one buffer (raw: height x (width + 1) bytes) in one call:
 * half the time of a call per row, and the same stream (zlib's choices do
 * not depend on how its input is cut). */
static size_t deflate_rows(const kms_image *img, int filter, int level,
                           int strategy, uint8_t *raw, uint8_t *out, size_t cap)
{
    const int w = img->width;
    uint8_t *d = raw;
    for (int y = 0; y < img->height; y++) {
        const uint8_t *src = kms_image_row(img, y);
        *d++ = (uint8_t)filter;
        if (filter == 1 && w > 0) {
            d[0] = src[0];
            for (int x = 1; x < w; x++)
                d[x] = (uint8_t)(src[x] - src[x - 1]);
        } else {
            memcpy(d, src, (size_t)w);
        }
        d += w;
    }
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, level, Z_DEFLATED, 15, 8, strategy) != Z_OK)
        return 0;
    z.next_in = raw;
    z.avail_in = (uInt)(d - raw);
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    size_t len = rc == Z_STREAM_END ? (size_t)z.total_out : 0;
    deflateEnd(&z);
    return len;
}

kms_status kms_png_encode8(const kms_image *img, const uint8_t *palette,
                           int n_palette, int filter, int level,
                           int strategy, unsigned char **bytes, size_t *len,
                           kms_error *err)
{
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a,
                                         '\n'};
    size_t raw = (size_t)img->height * ((size_t)img->width + 1);
    size_t cap = deflateBound(NULL, (uLong)raw) + 64;
    size_t head = 128 + 3 * (size_t)n_palette; /* signature, chunk heads */
    uint8_t *buf = malloc(cap + head + raw), *p = buf; /* + the rows */
    if (!buf)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
    memcpy(p, signature, sizeof signature);
    p += sizeof signature;
    uint8_t *d = put_be32(put_be32(p + 8, (uint32_t)img->width),
                          (uint32_t)img->height);
    /* 8 bits, colour type 0 (grey) or 3 (palette) */
    memcpy(d, (const uint8_t[5]){8, n_palette ? 3 : 0, 0, 0, 0}, 5);
    p = close_chunk(p, "IHDR", 13);
    if (n_palette) {
        memcpy(p + 8, palette, 3 * (size_t)n_palette);
        p = close_chunk(p, "PLTE", 3 * (size_t)n_palette);
    }
    size_t idat = deflate_rows(img, filter, level, strategy,
                               buf + cap + head, p + 8, cap);
    if (idat == 0) {
        free(buf);
        return kms_error_set(err, KMS_ERR_INTERNAL, NULL, 0, NULL,
                             "zlib could not compress the image");
    }
    p = close_chunk(p, "IDAT", idat);
    p = close_chunk(p, "IEND", 0);
    *bytes = buf;
    *len = (size_t)(p - buf);
    return KMS_OK;
}

