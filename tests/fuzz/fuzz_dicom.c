/* libFuzzer target: a DICOM file as kmseg takes it in: kms_dicom_group (the
 * header pass that sorts inputs into series, io/dicom_walk.c first), then,
 * for a series without error, the read stage on it (kms_dicom_read through
 * stages/read_dicom.c, one thread) as a batch runs it.
 *
 * Input: the .dcm file's bytes. */
#include <stdint.h>
#include <stdlib.h>

#include "dicom.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static kms_pipeline pipeline;
static int ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        fz_pipeline(&pipeline, "dicom.ini",
                    "[pipeline]\ninput = in\noutput = out\nstages = read\n");
        ready = 1;
    }
    const char *path = fz_write("fuzz.dcm", data, size);
    const char *paths[1] = {path};
    kms_dicom_groups g;
    kms_error err;
    kms_error_clear(&err);
    if (kms_dicom_group(paths, 1, &g, &err) != KMS_OK)
        abort(); /* only bad arguments or memory fail the call */
    if (getenv("KMSEG_FUZZ_VERBOSE")) {
        for (size_t i = 0; i < g.n_skipped; i++)
            fprintf(stderr, "kmseg fuzz: skipped: %s\n", g.skipped[i].reason);
        for (size_t i = 0; i < g.n_unreadable; i++)
            fprintf(stderr, "kmseg fuzz: unreadable: %s\n",
                    g.unreadable[i].reason);
    }
    for (size_t i = 0; i < g.n_series; i++)
        if (g.series[i].error)
            fz_report("group", g.series[i].error->code, g.series[i].error);
        else
            fz_run(&pipeline, g.series[i].name,
                   (const char *const *)g.series[i].files,
                   g.series[i].n_files);
    kms_dicom_groups_free(&g);
    return 0;
}
