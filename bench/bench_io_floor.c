/* The I/O floor of the lung pipeline (bench/bench_pipeline.py, target T2):
 * what any program that turns CT slices into mask PNGs must do, with
 * kmseg's own pieces and nothing else. Per input: the file read whole and
 * decoded by the read stage's TIFF reader, a 0/255 mask of the same size
 * (HU < -400: a real mask's runs, not an empty image), encoded by the same
 * PNG encoder as write's masks and written atomically (temporary name,
 * rename) like every product. No journal, summary, report or run record.
 * The process links libkmseg as kmseg does, so start-up (OpenCV's loading)
 * is in the floor too.
 *
 * Usage: build/bench/bench_io_floor OUTDIR FILE... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "image_file.h"
#include "opencv_c.h"
#include "output.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s OUTDIR FILE...\n", argv[0]);
        return 2;
    }
    kms_error err = {0};
    if (kms_output_prepare_dir(argv[1], &err) != KMS_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    for (int i = 2; i < argc; i++) {
        unsigned char *buf = NULL, *png = NULL;
        size_t len = 0, png_len = 0;
        kms_image img = {0}, mask = {0};
        kms_status st = kms_file_load(argv[i], &buf, &len, &err);
        if (st == KMS_OK && !kms_tiff_read_plain(buf, len, &img, &err, &st))
            st = kms_cv_imdecode(buf, len, KMS_CV_IMREAD_UNCHANGED, argv[i], &img,
                                 &err);
        if (st == KMS_OK && (img.channels != 1 || img.depth != KMS_DEPTH_S16)) {
            fprintf(stderr, "%s: not a signed 16-bit slice\n", argv[i]);
            return 1;
        }
        if (st == KMS_OK)
            st = kms_image_alloc_raw(&mask, img.width, img.height, 1,
                                     KMS_DEPTH_U8, &err);
        for (int y = 0; st == KMS_OK && y < img.height; y++) {
            const int16_t *s = kms_image_row(&img, y);
            uint8_t *d = kms_image_row(&mask, y);
            for (int x = 0; x < img.width; x++)
                d[x] = s[x] < -400 ? 255 : 0;
        }
        if (st == KMS_OK)
            st = kms_png_encode8(&mask, NULL, 0, 0, 1, Z_RLE, &png, &png_len,
                                 &err);
        char name[4096];
        const char *base = strrchr(argv[i], '/');
        snprintf(name, sizeof name, "%s_mask.png", base ? base + 1 : argv[i]);
        if (st == KMS_OK)
            st = kms_output_write(argv[1], name, png, png_len, NULL, &err);
        if (st != KMS_OK) {
            fprintf(stderr, "%s: %s\n", argv[i], err.message);
            return 1;
        }
        free(buf);
        free(png);
        kms_image_free(&img);
        kms_image_free(&mask);
    }
    return 0;
}
