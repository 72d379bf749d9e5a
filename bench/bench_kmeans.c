/* Native k-means against cv::kmeans, measured in one run on the same data.
 *
 * 1-D: CT slices clipped to [-1200, 600] HU, K = 2, 3, 4, attempts 10,
 * criteria (EPS + MAX_ITER, 10, 1.0), KMEANS_PP_CENTERS, one thread each
 * side: native exact optimum vs OpenCV (time, WCSS), and native lloyd with
 * the same seed vs OpenCV (label agreement, compactness).
 * Colour: a 3-channel image, K = 4 and 8, both sides on every core.
 *
 * Usage: bench_kmeans [SLICE_DIR] [COLOUR_IMAGE]
 * (defaults: ../shared/data/lung-ct/images, else samples/ct; and
 * ../shared/data/seed-reference/k_means_img_seg1.png when present) */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kmeans.h"
#include "opencv_c.h"
#include "output.h"
#include "clock.h"

enum { MAX_SLICES = 64, ATTEMPTS = 10, MAX_ITER = 10, SEED = 1 };

typedef struct data {
    float *x;
    size_t n;
    int dims;
} data;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int load_slice(const char *path, data *d)
{
    kms_image img = {0};
    kms_error err;
    if (kms_cv_imread(path, KMS_CV_IMREAD_UNCHANGED, &img, &err) != KMS_OK ||
        img.channels != 1 || img.depth != KMS_DEPTH_S16) {
        fprintf(stderr, "bench: skipping %s (not a 16-bit CT slice)\n", path);
        kms_image_free(&img);
        return 0;
    }
    d->n = (size_t)img.width * (size_t)img.height;
    d->dims = 1;
    d->x = malloc(d->n * sizeof *d->x);
    for (int y = 0; y < img.height; y++) {
        const int16_t *row = kms_image_row(&img, y);
        for (int x = 0; x < img.width; x++) {
            float v = row[x];
            d->x[(size_t)y * (size_t)img.width + (size_t)x] =
                v < -1200 ? -1200 : v > 600 ? 600 : v;
        }
    }
    kms_image_free(&img);
    return 1;
}

static int load_colour(const char *path, data *d)
{
    kms_image img = {0};
    kms_error err;
    if (kms_cv_imread(path, KMS_CV_IMREAD_COLOR, &img, &err) != KMS_OK)
        return 0;
    d->n = (size_t)img.width * (size_t)img.height;
    d->dims = 3;
    d->x = malloc(d->n * 3 * sizeof *d->x);
    for (int y = 0; y < img.height; y++) {
        const uint8_t *row = kms_image_row(&img, y);
        for (int i = 0; i < img.width * 3; i++)
            d->x[(size_t)y * (size_t)img.width * 3 + (size_t)i] = row[i];
    }
    kms_image_free(&img);
    return 1;
}

/* The benchmark's k-means, the same for both backends (OpenCV ignores
 * method and threads). */
static kms_kmeans_params bench_params(int k, kms_km_method method, int threads)
{
    kms_kmeans_params p;
    kms_kmeans_params_default(&p);
    p.k = k;
    p.attempts = ATTEMPTS;
    p.max_iter = MAX_ITER;
    p.epsilon = 1.0;
    p.criteria = KMS_KM_TERM_COUNT | KMS_KM_TERM_EPS;
    p.init = KMS_KM_INIT_PP;
    p.method = method;
    p.seed = SEED;
    p.threads = threads;
    return p;
}

static double run_opencv(const data *d, int k, int32_t *labels, float *centers,
                         double *wcss)
{
    kms_error err;
    kms_kmeans_params p = bench_params(k, KMS_KM_LLOYD, 1);
    double t0 = kms_now_ms();
    if (kms_cv_kmeans(d->x, d->n, d->dims, &p, labels, centers, wcss, &err) !=
        KMS_OK) {
        fprintf(stderr, "bench: cv::kmeans failed: %s\n", err.message);
        exit(1);
    }
    return kms_now_ms() - t0;
}

static double run_native(const data *d, int k, kms_km_method method,
                         int threads, int32_t *labels, float *centers,
                         double *wcss)
{
    kms_error err;
    kms_kmeans_params p = bench_params(k, method, threads);
    double t0 = kms_now_ms();
    if (kms_kmeans_run(d->x, d->n, d->dims, &p, labels, centers, wcss, &err) !=
        KMS_OK) {
        fprintf(stderr, "bench: native k-means failed: %s\n", err.message);
        exit(1);
    }
    return kms_now_ms() - t0;
}

/* WCSS of a labelling with exact (double) cluster means: both sides judged
 * the same way, free of how each rounds its float centres. 1-D. */
static double partition_wcss(const data *d, const int32_t *labels, int k)
{
    double sum[8] = {0}, count[8] = {0}, wcss = 0;
    for (size_t i = 0; i < d->n; i++) {
        sum[labels[i]] += d->x[i];
        count[labels[i]] += 1;
    }
    for (int j = 0; j < k; j++)
        sum[j] = count[j] ? sum[j] / count[j] : 0;
    for (size_t i = 0; i < d->n; i++) {
        double t = d->x[i] - sum[labels[i]];
        wcss += t * t;
    }
    return wcss;
}

static int list_slices(const char *dir, char paths[][1024])
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d)) && n < MAX_SLICES;) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".tif") == 0)
            snprintf(paths[n++], 1024, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    qsort(paths, (size_t)n, 1024, (int (*)(const void *, const void *))strcmp);
    return n;
}

static void bench_1d(data *slices, int n)
{
    printf("1-D: %d CT slices clipped to [-1200, 600], attempts %d, criteria "
           "(EPS+MAX_ITER, %d, 1.0), PP, seed %d, one thread each side\n",
           n, ATTEMPTS, MAX_ITER, SEED);
    printf("%2s %11s %11s %9s %10s %13s %12s %14s %13s\n", "K", "opencv_ms",
           "optimal_ms", "speedup", "opt<=cv", "cv_above_opt", "lloyd_ms",
           "lloyd_agree%", "lloyd_reldiff");
    size_t nmax = 0;
    for (int i = 0; i < n; i++)
        nmax = slices[i].n > nmax ? slices[i].n : nmax;
    int32_t *l1 = malloc(nmax * sizeof *l1), *l2 = malloc(nmax * sizeof *l2);
    float c1[8], c2[8];
    for (int k = 2; k <= 4; k++) {
        double cv_ms[MAX_SLICES], opt_ms[MAX_SLICES], ratio[MAX_SLICES],
            ll_ms[MAX_SLICES];
        int not_above = 0, cv_above = 0;
        double agree_min = 1, reldiff_max = 0;
        for (int i = 0; i < n; i++) {
            double wcv, wopt, wll;
            cv_ms[i] = run_opencv(&slices[i], k, l1, c1, &wcv);
            ll_ms[i] = run_native(&slices[i], k, KMS_KM_LLOYD, 1, l2, c2, &wll);
            size_t same = 0;
            for (size_t j = 0; j < slices[i].n; j++)
                same += l1[j] == l2[j];
            double agree = (double)same / (double)slices[i].n;
            agree_min = agree < agree_min ? agree : agree_min;
            double rd = fabs(wll - wcv) / wcv;
            reldiff_max = rd > reldiff_max ? rd : reldiff_max;
            opt_ms[i] = run_native(&slices[i], k, KMS_KM_OPTIMAL, 1, l2, c2, &wopt);
            ratio[i] = cv_ms[i] / opt_ms[i];
            double pcv = partition_wcss(&slices[i], l1, k);
            double popt = partition_wcss(&slices[i], l2, k);
            not_above += popt <= pcv * (1 + 1e-13);
            cv_above += pcv > popt * (1 + 1e-13);
        }
        printf("%2d %11.2f %11.3f %8.0fx %7d/%-2d %10d/%-2d %12.2f %13.4f %13.2e\n",
               k, median(cv_ms, n), median(opt_ms, n), median(ratio, n),
               not_above, n, cv_above, n, median(ll_ms, n), 100 * agree_min,
               reldiff_max);
    }
    printf("(speedup and times: medians over slices; opt<=cv: slices where the "
           "exact optimum's WCSS is not above OpenCV's; cv_above_opt: slices "
           "where OpenCV stopped above the optimum (WCSS of both labellings "
           "recomputed in double with exact means, 1e-13 relative); "
           "lloyd_agree: the lowest "
           "label agreement with OpenCV, lloyd_reldiff: the largest relative "
           "compactness difference)\n\n");
    free(l1);
    free(l2);
}

static void bench_colour(const data *d, const char *name)
{
    enum { REPEATS = 3 };
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    printf("colour: %s, %zu pixels x 3, attempts %d, criteria (EPS+MAX_ITER, "
           "%d, 1.0), PP, %ld threads each side\n",
           name, d->n, ATTEMPTS, MAX_ITER, cores);
    printf("%2s %11s %11s %9s %14s\n", "K", "opencv_ms", "native_ms", "speedup",
           "wcss_native/cv");
    int32_t *labels = malloc(d->n * sizeof *labels);
    float centers[8 * 3];
    kms_cv_set_num_threads((int)cores, NULL);
    for (int k = 4; k <= 8; k += 4) {
        double cv_ms[REPEATS], nat_ms[REPEATS], wcv = 0, wnat = 0;
        for (int r = 0; r < REPEATS; r++) {
            cv_ms[r] = run_opencv(d, k, labels, centers, &wcv);
            nat_ms[r] = run_native(d, k, KMS_KM_AUTO, (int)cores, labels,
                                   centers, &wnat);
        }
        double cvm = median(cv_ms, REPEATS), natm = median(nat_ms, REPEATS);
        printf("%2d %11.1f %11.1f %8.2fx %14.6f\n", k, cvm, natm, cvm / natm,
               wnat / wcv);
    }
    printf("(times: medians of %d runs)\n", REPEATS);
    free(labels);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "../shared/data/lung-ct/images";
    const char *colour = argc > 2 ? argv[2]
                                  : "../shared/data/seed-reference/k_means_img_seg1.png";
    static char paths[MAX_SLICES][1024];
    int n = list_slices(dir, paths);
    if (n == 0) {
        dir = "samples/ct";
        n = list_slices(dir, paths);
    }
    data slices[MAX_SLICES];
    int loaded = 0;
    for (int i = 0; i < n; i++)
        loaded += load_slice(paths[i], &slices[loaded]);
    kms_cv_set_num_threads(1, NULL);
    printf("kmseg k-means benchmark (OpenCV %s), slices from %s\n\n",
           kms_cv_version(), dir);
    if (loaded > 0)
        bench_1d(slices, loaded);
    data img;
    if (access(colour, R_OK) == 0 && load_colour(colour, &img)) {
        bench_colour(&img, colour);
        free(img.x);
    } else {
        printf("colour: %s not found, skipped\n", colour);
    }
    for (int i = 0; i < loaded; i++)
        free(slices[i].x);
    return 0;
}
