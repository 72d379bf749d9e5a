/* Helpers shared by the Check suites (tests/check_*.c): a temporary folder
 * per test, small file helpers, images and the suite runner. test_util.c is
 * compiled into every suite; the part that needs the kmseg core (config and
 * pipeline) is there only when the suite is built with -DKT_WITH_CORE. */
#ifndef KMS_TEST_UTIL_H
#define KMS_TEST_UTIL_H

#include <check.h>
#include <stddef.h>

#include "error.h"
#include "image.h"

/* ---- a temporary folder per test ----------------------------------------- */

/* The running test's own fresh folder (set by the fixture). */
extern char kt_tmpdir[512];

/* Adds the fixture to tc: one root folder /tmp/<prefix>_XXXXXX per test
 * case, made and removed in the runner's process so it goes even when a test
 * dies before its own teardown, and a fresh kt_tmpdir inside it per test.
 * prefix names the suite; every test case of a suite gives the same one. */
void kt_add_tmp_fixture(TCase *tc, const char *prefix);

/* kt_tmpdir/rel into buf; returns buf. */
const char *kt_tmp_path(char *buf, size_t len, const char *rel);

/* kt_tmpdir/rel as a folder; folders above it must exist. */
void kt_make_dir(const char *rel);

/* ---- files --------------------------------------------------------------- */

/* Writes len bytes to path (created or truncated), asserting every step. */
void kt_write_bytes(const char *path, const void *data, size_t len);

/* Writes text to kt_tmpdir/rel (its folders must exist); path gets the full
 * name, which is returned. */
const char *kt_write_tmp(const char *rel, const char *text, char *path,
                         size_t len);

/* kt_write_tmp for when the caller does not need the path. */
void kt_touch(const char *rel, const char *text);

/* Reads a whole file: malloc'ed bytes, NUL-terminated for text, and *len. */
void *kt_read_file(const char *path, size_t *len);

/* Entries of dir other than "." and "..", only those whose name contains
 * needle unless it is NULL. */
int kt_count_entries(const char *dir, const char *needle);

/* ---- images -------------------------------------------------------------- */

/* A zeroed image, asserting the allocation worked. */
kms_image kt_image(int w, int h, int channels, kms_depth depth);

/* ---- stderr ---------------------------------------------------------------- */

/* Sends stderr to kt_tmpdir/stderr.txt until kt_stderr_end, which returns
 * what was written (malloc'ed, NUL-terminated): for what a command prints. */
void kt_stderr_begin(void);
char *kt_stderr_end(void);

/* ---- running ------------------------------------------------------------- */

/* Runs every test of s; EXIT_SUCCESS when none failed, else EXIT_FAILURE. */
int kt_run_suite(Suite *s);

#ifdef KT_WITH_CORE
#include "config.h"
#include "pipeline.h"

/* Writes text to kt_tmpdir/rel and loads it as a config; path gets the
 * file's name. Returns kms_config_load's status, err its error. */
kms_status kt_load_text(const char *rel, const char *text, kms_config *cfg,
                        kms_error *err, char *path, size_t len);

/* Loads text as kt_tmpdir/p.ini (it must load), applies the NULL-terminated
 * overrides (which must be well-formed) and builds a pipeline from it;
 * returns kms_pipeline_build's status. */
kms_status kt_build_text(const char *text, const char *const *overrides,
                         kms_pipeline *pl, kms_error *err, char *path,
                         size_t len);

/* Writes img at kt_tmpdir/rel in the format its extension names (".png",
 * ".tif", as cv::imencode takes them); path gets the full name, which is
 * returned. */
const char *kt_write_image(const char *rel, const kms_image *img, char *path,
                           size_t len);

/* Builds text (which must build) and runs it on input as the batch runner
 * would: stem "in", output and config folder kt_tmpdir, seed 0, one
 * thread. ctx is set up here; the caller clears it. Returns the run's
 * status, err its error. */
kms_status kt_run_text(const char *text, const char *input, kms_context *ctx,
                       kms_error *err);
#endif

#endif
