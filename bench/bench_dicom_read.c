/* Reads DICOM series to HU in memory the way `kmseg run` does (input
 * grouping, then the read stage: decode, rescale, canonical stack) and
 * prints the milliseconds it took, one line per FOLDER:
 *     bench_dicom_read FOLDER...
 * Used by bench/bench_dicom.py next to dcm2niix. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "context.h"
#include "inputs.h"
#include "output.h"
#include "read_dicom.h"
#include "clock.h"

int main(int argc, char **argv)
{
    int rc = 0;
    for (int a = 1; a < argc; a++) {
        double t0 = kms_now_ms();
        kms_input_list list = {0};
        kms_error err;
        kms_error_clear(&err);
        kms_status st = kms_inputs_add_spec(&list, argv[a], NULL, &err);
        if (st == KMS_OK && (list.n != 1 || list.items[0].error)) {
            fprintf(stderr, "%s: not one readable series\n", argv[a]);
            kms_inputs_free(&list);
            return 1;
        }
        double t1 = kms_now_ms();
        kms_context ctx;
        memset(&ctx, 0, sizeof ctx);
        if (st == KMS_OK) {
            ctx.input_path = list.items[0].path;
            ctx.input_files = (const char *const *)list.items[0].files;
            ctx.n_input_files = list.items[0].n_files;
            /* as `kmseg run` gives one input: every core */
            long cores = sysconf(_SC_NPROCESSORS_ONLN);
            ctx.threads = cores > 0 ? (int)cores : 1;
            st = kms_read_dicom(&ctx, &err);
        }
        double ms = kms_now_ms() - t0;
        if (st != KMS_OK) {
            char line[2600];
            kms_error_format(&err, line, sizeof line);
            fprintf(stderr, "bench_dicom_read: %s\n", line);
            rc = 1;
        } else {
            printf("%.1f ms %dx%dx%d %s (grouping %.1f ms)\n", ms,
                   ctx.volume.nx, ctx.volume.ny, ctx.volume.nz,
                   kms_depth_name(ctx.image.depth), t1 - t0);
        }
        kms_context_clear(&ctx);
        kms_inputs_free(&list);
    }
    return rc;
}
