/* Check suite for the base library: error records (pipeline/error.c) and
 * image buffers (pipeline/image.c). */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "image.h"
#include "test_util.h"

/* The NOMEM test asks for an impossible allocation; under AddressSanitizer
 * that must return NULL (as glibc does) instead of aborting. Only read when
 * the program is built with -fsanitize=address. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

static const kms_status all_codes[] = {
    KMS_OK,           KMS_ERR_NOMEM, KMS_ERR_IO,    KMS_ERR_CONFIG,
    KMS_ERR_INPUT,    KMS_ERR_OPENCV, KMS_ERR_USAGE, KMS_ERR_INTERRUPTED,
    KMS_ERR_INTERNAL,
};
#define N_CODES (sizeof all_codes / sizeof all_codes[0])

/* A record with every field set to something recognisable. */
static kms_error dirty_error(void)
{
    kms_error e;
    memset(&e, 'x', sizeof e);
    e.file[sizeof e.file - 1] = '\0';
    e.key[sizeof e.key - 1] = '\0';
    e.message[sizeof e.message - 1] = '\0';
    e.code = KMS_ERR_INTERNAL;
    e.line = 77;
    return e;
}

static kms_error make_error(kms_status code, const char *file, int line,
                            const char *key, const char *message)
{
    kms_error e;
    kms_error_clear(&e);
    e.code = code;
    snprintf(e.file, sizeof e.file, "%s", file);
    e.line = line;
    snprintf(e.key, sizeof e.key, "%s", key);
    snprintf(e.message, sizeof e.message, "%s", message);
    return e;
}

static void assert_format(const kms_error *e, const char *expected)
{
    char buf[4096];
    memset(buf, '#', sizeof buf);
    kms_error_format(e, buf, sizeof buf);
    ck_assert_str_eq(buf, expected);
}

/* ---- error.c: Core ------------------------------------------------------- */

START_TEST(test_strerror_names)
{
    /* the name of each of all_codes, in its order */
    static const char *const names[] = {
        "ok",           "out of memory", "i/o error",
        "config error", "bad input",     "opencv error",
        "usage error",  "interrupted",   "internal error",
    };
    _Static_assert(sizeof names / sizeof names[0] == N_CODES,
                   "one name per code");
    for (size_t i = 0; i < N_CODES; i++)
        ck_assert_str_eq(kms_strerror(all_codes[i]), names[i]);
}
END_TEST

START_TEST(test_strerror_distinct)
{
    /* every code has its own, non-empty name */
    for (size_t i = 0; i < N_CODES; i++) {
        const char *a = kms_strerror(all_codes[i]);
        ck_assert_ptr_nonnull(a);
        ck_assert_uint_gt(strlen(a), 0);
        ck_assert_str_ne(a, "unknown error");
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(a, kms_strerror(all_codes[j]));
    }
}
END_TEST

START_TEST(test_error_set_fills)
{
    kms_error e = dirty_error();
    kms_status st = kms_error_set(&e, KMS_ERR_CONFIG, "a/b.ini", 12,
                                  "kmeans.k", "%d is %s", 300, "too big");
    ck_assert_int_eq(st, KMS_ERR_CONFIG);
    ck_assert_int_eq(e.code, KMS_ERR_CONFIG);
    ck_assert_str_eq(e.file, "a/b.ini");
    ck_assert_int_eq(e.line, 12);
    ck_assert_str_eq(e.key, "kmeans.k");
    ck_assert_str_eq(e.message, "300 is too big");
}
END_TEST

START_TEST(test_error_set_null_parts)
{
    kms_error e = dirty_error();
    ck_assert_int_eq(kms_error_set(&e, KMS_ERR_IO, NULL, 0, NULL, "gone"),
                     KMS_ERR_IO);
    ck_assert_str_eq(e.file, "");
    ck_assert_str_eq(e.key, "");
    ck_assert_int_eq(e.line, 0);
    ck_assert_str_eq(e.message, "gone");
}
END_TEST

START_TEST(test_error_set_newlines)
{
    kms_error e;
    kms_error_clear(&e);
    kms_error_set(&e, KMS_ERR_OPENCV, NULL, 0, NULL, "%s",
                  "OpenCV(4.6.0) error:\nassertion failed\r\nin resize\n");
    ck_assert_str_eq(e.message, "OpenCV(4.6.0) error: assertion failed  in resize ");
    ck_assert_ptr_null(strchr(e.message, '\n'));
    ck_assert_ptr_null(strchr(e.message, '\r'));
}
END_TEST

START_TEST(test_error_set_null_err)
{
    for (size_t i = 0; i < N_CODES; i++)
        ck_assert_int_eq(kms_error_set(NULL, all_codes[i], "f", 1, "k", "m"),
                         all_codes[i]);
}
END_TEST

START_TEST(test_error_clear)
{
    kms_error e = dirty_error();
    kms_error_clear(&e);
    ck_assert_int_eq(e.code, KMS_OK);
    ck_assert_int_eq(e.line, 0);
    ck_assert_str_eq(e.file, "");
    ck_assert_str_eq(e.key, "");
    ck_assert_str_eq(e.message, "");
    kms_error_clear(NULL); /* must not crash */
}
END_TEST

START_TEST(test_format_all_parts)
{
    kms_error e = make_error(KMS_ERR_CONFIG, "cfg.ini", 12, "kmeans.k",
                             "0 is out of range [1, 255]");
    assert_format(&e, "cfg.ini:12: kmeans.k: 0 is out of range [1, 255]");
}
END_TEST

START_TEST(test_format_no_line)
{
    kms_error e = make_error(KMS_ERR_IO, "in/x.png", 0, "read", "cannot open");
    assert_format(&e, "in/x.png: read: cannot open");
}
END_TEST

START_TEST(test_format_no_key)
{
    kms_error e = make_error(KMS_ERR_CONFIG, "cfg.ini", 3, "", "syntax error");
    assert_format(&e, "cfg.ini:3: syntax error");
}
END_TEST

START_TEST(test_format_no_file)
{
    /* the line belongs to the file: without a file it is left out too */
    kms_error e = make_error(KMS_ERR_CONFIG, "", 9, "-s", "'x' is not SECTION.KEY=VALUE");
    assert_format(&e, "-s: 'x' is not SECTION.KEY=VALUE");
    e = make_error(KMS_ERR_USAGE, "", 9, "", "bad image size 0x1x1");
    assert_format(&e, "bad image size 0x1x1");
}
END_TEST

START_TEST(test_format_no_message)
{
    /* an empty message falls back to the name of the code */
    kms_error e = make_error(KMS_ERR_NOMEM, "x.png", 0, "kmeans", "");
    assert_format(&e, "x.png: kmeans: out of memory");
    kms_error ok;
    kms_error_clear(&ok);
    assert_format(&ok, "ok");
}
END_TEST

START_TEST(test_format_roundtrip_set)
{
    kms_error e;
    kms_error_clear(&e);
    kms_error_set(&e, KMS_ERR_CONFIG, "command line", 0, "-s kmeans.kay",
                  "unknown key");
    assert_format(&e, "command line: -s kmeans.kay: unknown key");
}
END_TEST

/* ---- error.c: Limits ----------------------------------------------------- */

START_TEST(test_strerror_unknown_code)
{
    const char *s = kms_strerror((kms_status)1000);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, "unknown error");
    ck_assert_str_eq(kms_strerror((kms_status)-1), "unknown error");
}
END_TEST

START_TEST(test_error_set_truncates)
{
    char longtext[3000];
    memset(longtext, 'a', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = '\0';
    kms_error e;
    kms_error_clear(&e);
    kms_error_set(&e, KMS_ERR_INPUT, longtext, 1, longtext, "%s", longtext);
    ck_assert_uint_eq(strlen(e.file), sizeof e.file - 1);
    ck_assert_uint_eq(strlen(e.key), sizeof e.key - 1);
    ck_assert_uint_eq(strlen(e.message), sizeof e.message - 1);
}
END_TEST

START_TEST(test_format_small_buffer)
{
    kms_error e = make_error(KMS_ERR_CONFIG, "cfg.ini", 12, "kmeans.k", "bad");
    char buf[8];
    memset(buf, '#', sizeof buf);
    kms_error_format(&e, buf, sizeof buf);
    ck_assert_str_eq(buf, "cfg.ini"); /* 7 characters and the NUL */

    char one[1] = {'#'};
    kms_error_format(&e, one, sizeof one);
    ck_assert_int_eq(one[0], '\0');

    char none[2] = {'#', '#'};
    kms_error_format(&e, none, 0); /* len 0: not touched */
    ck_assert_int_eq(none[0], '#');
}
END_TEST

START_TEST(test_format_truncates_each_part)
{
    /* a full record into a buffer shorter than each of its parts */
    kms_error e;
    kms_error_clear(&e);
    e.code = KMS_ERR_IO;
    memset(e.file, 'f', sizeof e.file - 1);
    e.line = 123456;
    memset(e.key, 'k', sizeof e.key - 1);
    memset(e.message, 'm', sizeof e.message - 1);
    char full[4096], small[100];
    kms_error_format(&e, full, sizeof full);
    ck_assert_uint_eq(strlen(full), (sizeof e.file - 1) + strlen(":123456: ") +
                                        (sizeof e.key - 1) + 2 +
                                        (sizeof e.message - 1));
    kms_error_format(&e, small, sizeof small);
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
    ck_assert_int_eq(strncmp(small, full, sizeof small - 1), 0);
}
END_TEST

/* ---- image.c: Core --------------------------------------------------------- */

static const kms_depth all_depths[] = {
    KMS_DEPTH_U8, KMS_DEPTH_S16, KMS_DEPTH_U16, KMS_DEPTH_S32, KMS_DEPTH_F32};

START_TEST(test_depth_size_name)
{
    /* the size and name of each of all_depths, in its order */
    static const struct {
        size_t size;
        const char *name;
    } want[] = {
        {1, "8-bit unsigned"}, {2, "16-bit signed"}, {2, "16-bit unsigned"},
        {4, "32-bit signed"},  {4, "32-bit float"},
    };
    _Static_assert(sizeof want / sizeof want[0] ==
                       sizeof all_depths / sizeof all_depths[0],
                   "one row per depth");
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ck_assert_uint_eq(kms_depth_size(all_depths[i]), want[i].size);
        ck_assert_str_eq(kms_depth_name(all_depths[i]), want[i].name);
    }
}
END_TEST

START_TEST(test_alloc_sizes_zeroed)
{
    /* _i runs over depths x channels */
    kms_depth depth = all_depths[_i % 5];
    int channels = 1 + _i / 5; /* 1..4 */
    kms_image img = {0};
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_image_alloc(&img, 7, 5, channels, depth, &err), KMS_OK);
    ck_assert_int_eq(err.code, KMS_OK);
    ck_assert_int_eq(img.width, 7);
    ck_assert_int_eq(img.height, 5);
    ck_assert_int_eq(img.channels, channels);
    ck_assert_int_eq(img.depth, depth);
    ck_assert_uint_eq(img.stride, 7u * (size_t)channels * kms_depth_size(depth));
    ck_assert_ptr_nonnull(img.data);
    const unsigned char *p = img.data;
    for (size_t i = 0; i < img.stride * 5; i++)
        ck_assert_msg(p[i] == 0, "byte %zu is %d, not zero", i, p[i]);
    /* rows are contiguous */
    ck_assert_ptr_eq(kms_image_row(&img, 0), img.data);
    ck_assert_ptr_eq(kms_image_row(&img, 4), p + 4 * img.stride);
    kms_image_free(&img);
}
END_TEST

START_TEST(test_free_empties)
{
    kms_image img = {0};
    ck_assert_int_eq(kms_image_alloc(&img, 3, 2, 1, KMS_DEPTH_U8, NULL), KMS_OK);
    kms_image_free(&img);
    ck_assert_ptr_null(img.data);
    ck_assert_int_eq(img.width, 0);
    ck_assert_int_eq(img.height, 0);
    ck_assert_int_eq(img.channels, 0);
    ck_assert_uint_eq(img.stride, 0);
    /* freeing again, an empty image and NULL are no-ops */
    kms_image_free(&img);
    ck_assert_ptr_null(img.data);
    kms_image empty = {0};
    kms_image_free(&empty);
    ck_assert_ptr_null(empty.data);
    kms_image_free(NULL);
}
END_TEST

START_TEST(test_copy_deep)
{
    kms_image src = {0}, dst = {0};
    ck_assert_int_eq(kms_image_alloc(&src, 4, 3, 3, KMS_DEPTH_S16, NULL), KMS_OK);
    int16_t *s = src.data;
    for (int i = 0; i < 4 * 3 * 3; i++)
        s[i] = (int16_t)(i * 37 - 1000);
    /* dst holds an image already: copy frees it (ASan checks the leak) */
    ck_assert_int_eq(kms_image_alloc(&dst, 9, 9, 1, KMS_DEPTH_U8, NULL), KMS_OK);
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_image_copy(&dst, &src, &err), KMS_OK);
    ck_assert_int_eq(dst.width, 4);
    ck_assert_int_eq(dst.height, 3);
    ck_assert_int_eq(dst.channels, 3);
    ck_assert_int_eq(dst.depth, KMS_DEPTH_S16);
    ck_assert_uint_eq(dst.stride, src.stride);
    ck_assert_ptr_ne(dst.data, src.data);
    ck_assert_int_eq(memcmp(dst.data, src.data, src.stride * 3), 0);
    /* deep: changing the copy leaves the source alone */
    ((int16_t *)dst.data)[5] = 12345;
    ck_assert_int_eq(s[5], 5 * 37 - 1000);
    kms_image_free(&src);
    kms_image_free(&dst);
}
END_TEST

START_TEST(test_copy_padded_stride)
{
    /* a source with padding between rows (as a cv::Mat ROI would have)
     * copies into a compact image with the same pixels */
    enum { W = 5, H = 4, PAD = 11 };
    size_t stride = W + PAD;
    unsigned char *buf = malloc(stride * H);
    ck_assert_ptr_nonnull(buf);
    memset(buf, 0xEE, stride * H);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            buf[(size_t)y * stride + (size_t)x] = (unsigned char)(10 * y + x);
    kms_image src = {W, H, 1, KMS_DEPTH_U8, stride, buf};
    kms_image dst = {0};
    ck_assert_int_eq(kms_image_copy(&dst, &src, NULL), KMS_OK);
    ck_assert_uint_eq(dst.stride, W);
    for (int y = 0; y < H; y++) {
        const unsigned char *row = kms_image_row(&dst, y);
        for (int x = 0; x < W; x++)
            ck_assert_int_eq(row[x], 10 * y + x);
    }
    kms_image_free(&dst);
    free(buf);
}
END_TEST

START_TEST(test_copy_onto_itself)
{
    kms_image img = {0};
    ck_assert_int_eq(kms_image_alloc(&img, 3, 3, 1, KMS_DEPTH_F32, NULL), KMS_OK);
    float *f = img.data;
    for (int i = 0; i < 9; i++)
        f[i] = (float)i + 0.5f;
    ck_assert_int_eq(kms_image_copy(&img, &img, NULL), KMS_OK);
    ck_assert_int_eq(img.width, 3);
    ck_assert_int_eq(img.height, 3);
    f = img.data;
    for (int i = 0; i < 9; i++)
        ck_assert_float_eq(f[i], (float)i + 0.5f);
    kms_image_free(&img);
}
END_TEST

START_TEST(test_move)
{
    kms_image a = {0}, b = {0};
    ck_assert_int_eq(kms_image_alloc(&a, 6, 2, 4, KMS_DEPTH_U16, NULL), KMS_OK);
    ck_assert_int_eq(kms_image_alloc(&b, 1, 1, 1, KMS_DEPTH_U8, NULL), KMS_OK);
    void *data = a.data;
    kms_image_move(&b, &a); /* b's old pixels are freed (ASan checks) */
    ck_assert_ptr_eq(b.data, data);
    ck_assert_int_eq(b.width, 6);
    ck_assert_int_eq(b.height, 2);
    ck_assert_int_eq(b.channels, 4);
    ck_assert_int_eq(b.depth, KMS_DEPTH_U16);
    ck_assert_uint_eq(b.stride, 6u * 4u * 2u);
    ck_assert_ptr_null(a.data);
    ck_assert_int_eq(a.width, 0);
    ck_assert_uint_eq(a.stride, 0);
    /* moving onto itself keeps the image */
    kms_image_move(&b, &b);
    ck_assert_ptr_eq(b.data, data);
    ck_assert_int_eq(b.width, 6);
    kms_image_free(&b);
}
END_TEST

/* ---- image.c: Limits ------------------------------------------------------- */

static const int bad_sizes[][3] = {
    {0, 1, 1}, {1, 0, 1}, {1, 1, 0}, {-1, 5, 1}, {5, -1, 1},
    {1, 1, 5}, {1, 1, -3}, {-2147483647 - 1, 1, 1},
};

START_TEST(test_alloc_bad_sizes)
{
    const int *s = bad_sizes[_i];
    kms_image img = {0};
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_image_alloc(&img, s[0], s[1], s[2], KMS_DEPTH_U8, &err),
                     KMS_ERR_USAGE);
    ck_assert_int_eq(err.code, KMS_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(err.message, "bad image size"));
    /* img untouched */
    ck_assert_ptr_null(img.data);
    ck_assert_int_eq(img.width, 0);
    /* also without an error record */
    ck_assert_int_eq(kms_image_alloc(&img, s[0], s[1], s[2], KMS_DEPTH_U8, NULL),
                     KMS_ERR_USAGE);
}
END_TEST

START_TEST(test_alloc_edges)
{
    /* 1x1x1 and 4 channels are the smallest and largest allowed */
    kms_image img = {0};
    ck_assert_int_eq(kms_image_alloc(&img, 1, 1, 1, KMS_DEPTH_U8, NULL), KMS_OK);
    ck_assert_uint_eq(img.stride, 1);
    kms_image_free(&img);
    ck_assert_int_eq(kms_image_alloc(&img, 1, 1, 4, KMS_DEPTH_F32, NULL), KMS_OK);
    ck_assert_uint_eq(img.stride, 16);
    kms_image_free(&img);
}
END_TEST

START_TEST(test_alloc_nomem)
{
    kms_image img = {0};
    kms_error err;
    kms_error_clear(&err);
    /* 2^30 rows of 2^34 bytes: calloc must refuse */
    ck_assert_int_eq(kms_image_alloc(&img, 1 << 30, 1 << 30, 4, KMS_DEPTH_F32,
                                     &err),
                     KMS_ERR_NOMEM);
    ck_assert_int_eq(err.code, KMS_ERR_NOMEM);
    ck_assert_ptr_null(img.data);
}
END_TEST

START_TEST(test_copy_empty_source)
{
    /* an empty source cannot be copied; dst keeps what it had */
    kms_image empty = {0}, dst = {0};
    ck_assert_int_eq(kms_image_alloc(&dst, 2, 2, 1, KMS_DEPTH_U8, NULL), KMS_OK);
    void *data = dst.data;
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_image_copy(&dst, &empty, &err), KMS_ERR_USAGE);
    ck_assert_int_eq(err.code, KMS_ERR_USAGE);
    ck_assert_ptr_eq(dst.data, data);
    ck_assert_int_eq(dst.width, 2);
    kms_image_free(&dst);
}
END_TEST

START_TEST(test_move_empty)
{
    /* moving an empty image empties dst and frees its pixels */
    kms_image empty = {0}, dst = {0};
    ck_assert_int_eq(kms_image_alloc(&dst, 2, 2, 1, KMS_DEPTH_U8, NULL), KMS_OK);
    kms_image_move(&dst, &empty);
    ck_assert_ptr_null(dst.data);
    ck_assert_int_eq(dst.width, 0);
}
END_TEST

static Suite *base_suite(void)
{
    Suite *s = suite_create("base");

    TCase *core = tcase_create("Core");
    tcase_add_test(core, test_strerror_names);
    tcase_add_test(core, test_strerror_distinct);
    tcase_add_test(core, test_error_set_fills);
    tcase_add_test(core, test_error_set_null_parts);
    tcase_add_test(core, test_error_set_newlines);
    tcase_add_test(core, test_error_set_null_err);
    tcase_add_test(core, test_error_clear);
    tcase_add_test(core, test_format_all_parts);
    tcase_add_test(core, test_format_no_line);
    tcase_add_test(core, test_format_no_key);
    tcase_add_test(core, test_format_no_file);
    tcase_add_test(core, test_format_no_message);
    tcase_add_test(core, test_format_roundtrip_set);
    tcase_add_test(core, test_depth_size_name);
    tcase_add_loop_test(core, test_alloc_sizes_zeroed, 0, 20);
    tcase_add_test(core, test_free_empties);
    tcase_add_test(core, test_copy_deep);
    tcase_add_test(core, test_copy_padded_stride);
    tcase_add_test(core, test_copy_onto_itself);
    tcase_add_test(core, test_move);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("Limits");
    tcase_add_test(limits, test_strerror_unknown_code);
    tcase_add_test(limits, test_error_set_truncates);
    tcase_add_test(limits, test_format_small_buffer);
    tcase_add_test(limits, test_format_truncates_each_part);
    tcase_add_loop_test(limits, test_alloc_bad_sizes, 0,
                        (int)(sizeof bad_sizes / sizeof bad_sizes[0]));
    tcase_add_test(limits, test_alloc_edges);
    tcase_add_test(limits, test_alloc_nomem);
    tcase_add_test(limits, test_copy_empty_source);
    tcase_add_test(limits, test_move_empty);
    suite_add_tcase(s, limits);

    return s;
}

int main(void)
{
    return kt_run_suite(base_suite());
}
