/* A program built against an installed libkmseg (tests/install_test.sh):
 * only <kmseg/kmseg.h> and pkg-config, as a user would. Prints one
 * "ok"/"FAIL" line per check; exits 1 when any failed.
 *   install_example SAMPLES_DIR TINY_CONFIG OUT_DIR */
#include <kmseg/kmseg.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int failures;

static void check(int ok, const char *what)
{
    printf("%s %s\n", ok ? "ok" : "FAIL", what);
    failures += !ok;
}

static void print_error(const kms_error *err)
{
    char line[2600];
    kms_error_format(err, line, sizeof line);
    printf("  error: %s\n", line);
}

static int exists(const char *dir, const char *name)
{
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &sb) == 0 && sb.st_size > 0;
}

/* The exact 1-D optimum of a known set: {1,2,3} {10,11,12} {100,101}. */
static void native_kmeans(void)
{
    const float x[] = {100, 1, 11, 2, 101, 12, 3, 10};
    const int32_t want[] = {2, 0, 1, 0, 2, 1, 0, 1};
    size_t n = sizeof x / sizeof *x;
    int32_t labels[8];
    float centers[3];
    double wcss = -1, curve[4];
    kms_error err;
    kms_kmeans_params p;
    kms_kmeans_params_default(&p);
    p.k = 3;
    p.method = KMS_KM_OPTIMAL;
    kms_status st = kms_kmeans_run(x, n, 1, &p, labels, centers, &wcss, &err);
    if (st != KMS_OK)
        print_error(&err);
    check(st == KMS_OK && memcmp(labels, want, sizeof want) == 0 &&
              centers[0] == 2.0f && centers[1] == 11.0f &&
              centers[2] == 100.5f && fabs(wcss - 4.5) < 1e-9,
          "kms_kmeans_run optimal: labels, centres 2 11 100.5, wcss 4.5");
    /* K = 1..4: 13380, 126 ({1..12} {100,101}), 4.5, 3 ({1,2} {3} ...) */
    st = kms_kmeans_optimal_wcss(x, n, 4, curve, &err);
    int knee = kms_kneedle(curve, 4);
    printf("  wcss %g %g %g %g, knee at K=%d\n", curve[0], curve[1], curve[2],
           curve[3], knee + 1);
    check(st == KMS_OK && curve[0] == 13380 && curve[1] == 126 &&
              curve[2] == 4.5 && curve[3] == 3 && knee == 1,
          "kms_kmeans_optimal_wcss: 13380 126 4.5 3, knee at K=2");
    p.k = 4; /* a bad call is an error, not a crash */
    st = kms_kmeans_run(x, 3, 1, &p, labels, centers, NULL, &err);
    check(st == KMS_ERR_USAGE, "kms_kmeans_run with n < k: KMS_ERR_USAGE");
}

/* The installed lung sample on one installed CT slice, by file. */
static void pipeline_file(const char *samples, const char *out)
{
    char config[4096], input[4096];
    snprintf(config, sizeof config, "%s/lung_ct.ini", samples);
    snprintf(input, sizeof input, "%s/ct/ID_0000_Z_0142.tif", samples);
    kmseg_pipeline *pl = NULL;
    kms_error err;
    kms_status st = kmseg_pipeline_open(&pl, config, NULL, 0, &err);
    if (st != KMS_OK)
        print_error(&err);
    check(st == KMS_OK && pl, "kmseg_pipeline_open lung_ct.ini");
    if (!pl)
        return;
    st = kmseg_pipeline_run_file(pl, input, out, &err);
    if (st != KMS_OK)
        print_error(&err);
    double dice = 0, iou = 0;
    int scored = kmseg_pipeline_scores(pl, &dice, &iou);
    printf("  dice %.4f iou %.4f k %d\n", dice, iou, kmseg_pipeline_k(pl));
    check(st == KMS_OK && scored && dice > 0.95 && iou > 0.9 &&
              kmseg_pipeline_k(pl) == 2,
          "kmseg_pipeline_run_file: lung mask scored, Dice > 0.95, K 2");
    kms_image mask = {0};
    st = kmseg_pipeline_mask(pl, &mask, &err);
    check(st == KMS_OK && mask.width == 512 && mask.height == 512 &&
              mask.depth == KMS_DEPTH_U8 && mask.channels == 1,
          "kmseg_pipeline_mask: 512x512 8-bit");
    kms_image_free(&mask);
    check(exists(out, "ID_0000_Z_0142_mask.png") &&
              exists(out, "ID_0000_Z_0142_overlay.png"),
          "products written to the output folder");
    snprintf(input, sizeof input, "%s/ct/no_such_slice.tif", samples);
    st = kmseg_pipeline_run_file(pl, input, out, &err);
    check(st != KMS_OK && strstr(err.file, "no_such_slice") != NULL &&
              kmseg_pipeline_k(pl) == 0 &&
              kmseg_pipeline_run_file(pl, input, out, NULL) == st,
          "a missing input fails naming it (err NULL too); no products");
    kmseg_pipeline_close(pl);
}

/* A tiny config with an override, on an image made here: two flat halves. */
static void pipeline_image(const char *tiny, const char *out)
{
    const char *const sets[] = {"kmeans.k=2"};
    kmseg_pipeline *pl = NULL;
    kms_error err;
    kms_status st = kmseg_pipeline_open(&pl, tiny, sets, 1, &err);
    if (st != KMS_OK)
        print_error(&err);
    check(st == KMS_OK && pl, "kmseg_pipeline_open tiny config -s kmeans.k=2");
    if (!pl)
        return;
    kms_image img = {0};
    kms_image_alloc(&img, 40, 30, 1, KMS_DEPTH_U8, &err);
    for (int y = 0; y < img.height; y++) {
        uint8_t *row = (uint8_t *)kms_image_row(&img, y);
        for (int x = 0; x < img.width; x++)
            row[x] = x < 20 ? 10 : 200;
    }
    st = kmseg_pipeline_run_image(pl, &img, "halves", out, &err);
    if (st != KMS_OK)
        print_error(&err);
    int dims = 0;
    const float *c = kmseg_pipeline_centers(pl, &dims);
    check(st == KMS_OK && kmseg_pipeline_k(pl) == 2 &&
              kmseg_pipeline_wcss(pl) == 0 && c && dims == 1 &&
              c[0] == 10.0f && c[1] == 200.0f,
          "kmseg_pipeline_run_image: K 2, centres 10 and 200, wcss 0");
    kms_image labels = {0};
    st = kmseg_pipeline_labels(pl, &labels, &err);
    int right = st == KMS_OK && labels.width == 40 && labels.height == 30 &&
                labels.depth == KMS_DEPTH_S32;
    for (int y = 0; right && y < labels.height; y++) {
        const int32_t *row = (const int32_t *)kms_image_row(&labels, y);
        for (int x = 0; x < labels.width; x++)
            right &= row[x] == (x < 20 ? 0 : 1);
    }
    check(right, "kmseg_pipeline_labels: 0 left, 1 right");
    kms_image_free(&labels);
    check(exists(out, "halves_labels.png"), "halves_labels.png written");
    st = kmseg_pipeline_mask(pl, &labels, &err);
    check(st == KMS_ERR_USAGE, "no mask stage: kmseg_pipeline_mask refuses");
    kms_image_free(&img);
    kmseg_pipeline_close(pl);

    const char *const bad[] = {"kmeans.kk=2"};
    st = kmseg_pipeline_open(&pl, tiny, bad, 1, &err);
    check(st == KMS_ERR_CONFIG && pl == NULL &&
              strstr(err.key, "kmeans.kk") != NULL,
          "an unknown key is KMS_ERR_CONFIG naming it");
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s SAMPLES_DIR TINY_CONFIG OUT_DIR\n", argv[0]);
        return 2;
    }
    check(strcmp(kmseg_version(), KMSEG_VERSION_STRING) == 0 &&
              KMSEG_VERSION_NUMBER >= KMSEG_VERSION_AT(0, 1, 0),
          "kmseg_version() is KMSEG_VERSION_STRING");
    native_kmeans();
    pipeline_file(argv[1], argv[3]);
    pipeline_image(argv[2], argv[3]);
    return failures ? 1 : 0;
}
