/* libFuzzer target: the NIfTI reader (io/nifti_io.c over nifti_clib and
 * zlib): kms_nifti_read, then kms_volume_free.
 *
 * Input: a .nii file's bytes. Input starting with the gzip magic (1f 8b) is
 * written as it is to a .nii.gz (damaged and cut gzip streams); any other
 * input of odd size is gzip-compressed by the harness into a .nii.gz (the
 * compressed path on meaningful headers), of even size written as .nii. */
#include <stdint.h>
#include <stdlib.h>
#include <zlib.h>

#include "fuzz_util.h"
#include "nifti_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path;
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
        path = fz_write("fuzz.nii.gz", data, size);
    } else if (size % 2 == 1) {
        path = fz_path("fuzz.nii.gz");
        gzFile gz = gzopen(path, "wb1");
        if (!gz || (size && gzwrite(gz, data, (unsigned)size) != (int)size) ||
            gzclose(gz) != Z_OK)
            abort();
    } else {
        path = fz_write("fuzz.nii", data, size);
    }
    kms_volume vol;
    kms_error err;
    kms_error_clear(&err);
    kms_status st = kms_nifti_read(path, FZ_MAX_PIXELS, &vol, &err);
    fz_report(path, st, &err);
    if (st == KMS_OK) {
        /* what the read stage relies on */
        if (vol.img.width != vol.nx || vol.img.height != vol.ny * vol.nz ||
            vol.img.channels != 1)
            abort();
    }
    kms_volume_free(&vol);
    return 0;
}
