/* libFuzzer target: the read stage on an image file (PNG, TIFF, JPEG, BMP,
 * or whatever OpenCV recognises), exactly as a batch runs it: load_file,
 * the PNG chunk walk, the plain CT TIFF reader, kms_cv_imdecode, the TIFF
 * resolution tags, then the copy kept for overlays.
 *
 * Input: the file's bytes. The extension is chosen from the first byte
 * (it only names the file: the decoders look at the content, and
 * "DICM" at byte 128 sends it to the DICOM reader as in kmseg). read.mode
 * is chosen by the size: size % 3 = 0 unchanged (the default, and the only
 * mode with the plain TIFF path), 1 grayscale, 2 color. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static kms_pipeline pipelines[3];
static int ready;

static void setup(void)
{
    static const char *const modes[3] = {"unchanged", "grayscale", "color"};
    for (int i = 0; i < 3; i++) {
        char ini[256];
        snprintf(ini, sizeof ini,
                 "[pipeline]\ninput = in\noutput = out\nstages = read\n"
                 "[read]\nmode = %s\n",
                 modes[i]);
        fz_pipeline(&pipelines[i], "image.ini", ini);
    }
    ready = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready)
        setup();
    const char *name = "fuzz.png";
    if (size > 0) {
        switch (data[0]) {
        case 'I':
        case 'M':
            name = "fuzz.tif";
            break;
        case 0xFF:
            name = "fuzz.jpg";
            break;
        case 'B':
            name = "fuzz.bmp";
            break;
        }
    }
    const char *path = fz_write(name, data, size);
    fz_run(&pipelines[size % 3], path, NULL, 0);
    return 0;
}
