/* libFuzzer target: a config file and -s overrides, then the pipeline built
 * from them (config/config.c, inih, the stage tables and prepare hooks).
 *
 * Input: the INI text, optionally followed by a NUL byte and override lines
 * ("SECTION.KEY=VALUE", one per line) applied as kmseg's -s options are.
 * The loader refuses NUL bytes itself, so the split costs it nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t ini_len = nul ? (size_t)(nul - data) : size;
    const char *path = fz_write("fuzz.ini", data, ini_len);

    kms_config cfg;
    kms_error err;
    kms_error_clear(&err);
    kms_status st = kms_config_load(&cfg, path, &err);
    if (st != KMS_OK) {
        fz_report("load", st, &err);
        return 0;
    }
    if (nul) {
        /* the overrides, NUL-terminated, split at newlines */
        size_t n = size - ini_len - 1;
        char *s = malloc(n + 1);
        if (!s)
            abort();
        memcpy(s, nul + 1, n);
        s[n] = '\0';
        for (char *line = s, *next; line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = '\0';
            kms_error_clear(&err);
            st = kms_config_override(&cfg, line, &err);
            fz_report("override", st, &err);
            if (st != KMS_OK && st != KMS_ERR_CONFIG)
                abort(); /* only malformed assignments may fail */
        }
        free(s);
    }
    kms_pipeline pl;
    kms_error_clear(&err);
    st = kms_pipeline_build(&pl, &cfg, &err);
    fz_report("build", st, &err);
    if (st == KMS_OK)
        kms_pipeline_free(&pl);
    kms_config_free(&cfg);
    return 0;
}
