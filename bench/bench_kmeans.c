/* Native 1-D k-means against cv::kmeans and against its own floor, measured
 * in one process on the same data.
 *
 * Section 1, vs OpenCV, two data sets of the same CT slices:
 *  - integer: HU clipped to [-1200, 600], as floats;
 *  - non-integer: those values divided by 7.3 (x / 7.3f): no sample is an
 *    integer, the distinct values stay as few as the HU.
 * K = 2, 3, 4; cv::kmeans with attempts 10, criteria (EPS + MAX_ITER, 10,
 * 1.0), KMEANS_PP_CENTERS, one thread; native: kms_kmeans_run, method
 * optimal. Each repetition times both sides on every slice, the side that
 * goes first alternating; a repetition's ratio is cv / native on one slice
 * (paired). WCSS: both labellings rescored in double with exact means.
 *
 * Section 2, the floor: K = 2..8 on one 512 x 512 int16 slice (clipped as
 * above): kms_kmeans_optimal_s16 against one pass counting a 65536-bin
 * histogram plus one pass labelling through a value -> label table (the
 * table given, built from the exact answer, so the labels agree). Target:
 * exact <= 2 x floor.
 *
 * Every figure: the median over repetitions after a warm-up, [min-max]
 * beside it. The colour benchmark is bench/bench_colour.c.
 *
 * Usage: bench_kmeans [SLICE_DIR] (default ../shared/data/lung-ct/images,
 * else samples/ct) */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmeans.h"
#include "opencv_c.h"
#include "output.h"
#include "clock.h"
#include "bench_stats.h"

enum {
    MAX_SLICES = 4,   /* cv::kmeans takes ~0.7 s a call: 4 slices x 5 reps */
    REPS = 5,         /* vs-OpenCV repetitions (after one warm-up) */
    NATIVE_INNER = 5, /* native calls per timing (a call is ~1 ms) */
    FLOOR_REPS = 41,  /* floor repetitions (after warm-up) */
    FLOOR_INNER = 10, /* calls per floor timing, averaged */
    ATTEMPTS = 10,
    MAX_ITER = 10,
    SEED = 1
};

typedef struct slice {
    float *x;      /* clipped HU */
    float *frac;   /* clipped HU / 7.3f */
    int16_t *s16;  /* clipped HU */
    size_t n;
} slice;

static int load_slice(const char *path, slice *d)
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
    d->x = malloc(d->n * sizeof *d->x);
    d->frac = malloc(d->n * sizeof *d->frac);
    d->s16 = malloc(d->n * sizeof *d->s16);
    for (int y = 0; y < img.height; y++) {
        const int16_t *row = kms_image_row(&img, y);
        for (int x = 0; x < img.width; x++) {
            size_t i = (size_t)y * (size_t)img.width + (size_t)x;
            int v = row[x] < -1200 ? -1200 : row[x] > 600 ? 600 : row[x];
            d->s16[i] = (int16_t)v;
            d->x[i] = (float)v;
            d->frac[i] = (float)v / 7.3f;
        }
    }
    kms_image_free(&img);
    return 1;
}

static kms_kmeans_params bench_params(int k, kms_km_method method)
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
    p.threads = 1;
    return p;
}

static void fail(const char *what, const kms_error *err)
{
    fprintf(stderr, "bench: %s failed: %s\n", what, err->message);
    exit(1);
}

static double run_opencv(const float *x, size_t n, int k, int32_t *labels)
{
    kms_error err;
    float centers[8];
    double wcss;
    kms_kmeans_params p = bench_params(k, KMS_KM_LLOYD);
    double t0 = kms_now_ms();
    if (kms_cv_kmeans(x, n, 1, &p, labels, centers, &wcss, &err) != KMS_OK)
        fail("cv::kmeans", &err);
    return kms_now_ms() - t0;
}

/* The mean of NATIVE_INNER back-to-back calls. */
static double run_optimal(const float *x, size_t n, int k, int32_t *labels)
{
    kms_error err;
    float centers[8];
    double wcss;
    kms_kmeans_params p = bench_params(k, KMS_KM_OPTIMAL);
    double t0 = kms_now_ms();
    for (int r = 0; r < NATIVE_INNER; r++)
        if (kms_kmeans_run(x, n, 1, &p, labels, centers, &wcss, &err) !=
            KMS_OK)
            fail("native k-means", &err);
    return (kms_now_ms() - t0) / NATIVE_INNER;
}

/* WCSS of a labelling with exact (double) cluster means: both sides judged
 * the same way, free of how each rounds its float centres. */
static double partition_wcss(const float *x, size_t n, const int32_t *labels,
                             int k)
{
    double sum[8] = {0}, count[8] = {0}, wcss = 0;
    for (size_t i = 0; i < n; i++) {
        sum[labels[i]] += x[i];
        count[labels[i]] += 1;
    }
    for (int j = 0; j < k; j++)
        sum[j] = count[j] ? sum[j] / count[j] : 0;
    for (size_t i = 0; i < n; i++) {
        double t = x[i] - sum[labels[i]];
        wcss += t * t;
    }
    return wcss;
}

static int list_slices(const char *dir, char paths[][1024])
{
    DIR *d = opendir(dir);
    int n = 0;
    enum { MAX_LIST = 256 };
    static char all[MAX_LIST][1024];
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d)) && n < MAX_LIST;) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".tif") == 0)
            snprintf(all[n++], 1024, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    qsort(all, (size_t)n, 1024, (int (*)(const void *, const void *))strcmp);
    /* MAX_SLICES spread over the sorted list */
    int m = n < MAX_SLICES ? n : MAX_SLICES;
    for (int i = 0; i < m; i++)
        memcpy(paths[i], all[(size_t)i * (size_t)n / (size_t)m], 1024);
    return m;
}

/* Section 1 for one data set (which: 0 integer, 1 non-integer). */
static void vs_opencv(slice *s, int ns, int which, char *readme,
                      size_t readme_size)
{
    const char *name = which ? "non-integer (HU / 7.3)" : "integer (HU)";
    printf("%s: %d slices, K = 2..4, %d reps after a warm-up, sides "
           "alternating\n", name, ns, REPS);
    printf("%2s %22s %26s %28s %10s\n", "K", "opencv_ms med [min-max]",
           "optimal_ms med [min-max]", "speedup med [min-max]",
           "wcss<=cv");
    size_t nmax = 0;
    for (int i = 0; i < ns; i++)
        nmax = s[i].n > nmax ? s[i].n : nmax;
    int32_t *l1 = malloc(nmax * sizeof *l1), *l2 = malloc(nmax * sizeof *l2);
    /* warm-up: both sides once */
    const float *x0 = which ? s[0].frac : s[0].x;
    run_opencv(x0, s[0].n, 2, l1);
    run_optimal(x0, s[0].n, 2, l2);
    for (int k = 2; k <= 4; k++) {
        double cv[REPS * MAX_SLICES], opt[REPS * MAX_SLICES],
            ratio[REPS * MAX_SLICES];
        int m = 0, not_above = 0;
        for (int r = 0; r < REPS; r++)
            for (int i = 0; i < ns; i++, m++) {
                const float *x = which ? s[i].frac : s[i].x;
                if ((r + i) % 2) {
                    opt[m] = run_optimal(x, s[i].n, k, l2);
                    cv[m] = run_opencv(x, s[i].n, k, l1);
                } else {
                    cv[m] = run_opencv(x, s[i].n, k, l1);
                    opt[m] = run_optimal(x, s[i].n, k, l2);
                }
                ratio[m] = cv[m] / opt[m];
                if (r == 0) {
                    double pcv = partition_wcss(x, s[i].n, l1, k);
                    double popt = partition_wcss(x, s[i].n, l2, k);
                    not_above += popt <= pcv * (1 + 1e-13);
                }
            }
        bench_spread c = bench_spread_of(cv, m), o = bench_spread_of(opt, m),
                     q = bench_spread_of(ratio, m);
        printf("%2d %7.1f [%6.1f-%6.1f] %9.3f [%6.3f-%6.3f] %10.0fx "
               "[%5.0f-%5.0f]x %7d/%-2d\n",
               k, c.med, c.min, c.max, o.med, o.min, o.max, q.med, q.min, q.max,
               not_above, ns);
        size_t len = strlen(readme);
        snprintf(readme + len, readme_size - len, "%sK=%d %.0fx [%.0f-%.0f]",
                 k > 2 ? ", " : "", k, q.med, q.min, q.max);
        if (k == 4)
            snprintf(readme + strlen(readme), readme_size - strlen(readme),
                     " (optimal %.2f ms [%.2f-%.2f] at K=4); WCSS <= cv on "
                     "every slice: %s",
                     o.med, o.min, o.max, not_above == ns ? "yes" : "NO");
        else if (not_above != ns)
            snprintf(readme + strlen(readme), readme_size - strlen(readme),
                     " (WCSS above cv on %d slices!)", ns - not_above);
    }
    printf("(times per call; speedup: cv / optimal per slice and rep, "
           "paired; wcss<=cv: slices where the exact optimum's WCSS is not "
           "above OpenCV's, rescored in double with exact means, 1e-13 "
           "relative)\n\n");
    free(l1);
    free(l2);
}

/* The floor: a 65536-bin histogram of the values, then the labels through
 * a given value -> label table. */
static double run_floor(const int16_t *x, size_t n, uint32_t *hist,
                        const int32_t *lut, int32_t *labels)
{
    double t0 = kms_now_ms();
    for (int r = 0; r < FLOOR_INNER; r++) {
        memset(hist, 0, sizeof *hist * 65536);
        for (size_t i = 0; i < n; i++)
            hist[x[i] + 32768]++;
        for (size_t i = 0; i < n; i++)
            labels[i] = lut[x[i] + 32768];
    }
    return (kms_now_ms() - t0) / FLOOR_INNER;
}

static double run_s16(const int16_t *x, size_t n, int k, int32_t *labels,
                      float *centers)
{
    kms_error err;
    double wcss, t0 = kms_now_ms();
    for (int r = 0; r < FLOOR_INNER; r++)
        if (kms_kmeans_optimal_s16(x, n, k, labels, centers, &wcss, &err) !=
            KMS_OK)
            fail("kms_kmeans_optimal_s16", &err);
    return (kms_now_ms() - t0) / FLOOR_INNER;
}

static void floor_section(const slice *s, char *readme, size_t readme_size)
{
    size_t n = s->n;
    uint32_t *hist = malloc(sizeof *hist * 65536);
    int32_t *lut = malloc(sizeof *lut * 65536);
    int32_t *l1 = malloc(sizeof *l1 * n), *l2 = malloc(sizeof *l2 * n);
    float centers[8];
    int all_ok = 1;
    double worst = 0;
    printf("floor: one %zu-sample int16 slice (clipped), %d reps of %d calls "
           "after a warm-up, sides alternating\n", n, FLOOR_REPS,
           FLOOR_INNER);
    printf("%2s %24s %24s %26s\n", "K", "exact_ms med [min-max]",
           "floor_ms med [min-max]", "exact/floor med [min-max]");
    for (int k = 2; k <= 8; k++) {
        /* the exact answer, and the floor's table from it */
        run_s16(s->s16, n, k, l1, centers);
        for (int v = 0; v < 65536; v++)
            lut[v] = 0;
        for (size_t i = 0; i < n; i++)
            lut[s->s16[i] + 32768] = l1[i];
        run_floor(s->s16, n, hist, lut, l2); /* warm-up */
        if (memcmp(l1, l2, sizeof *l1 * n) != 0) {
            fprintf(stderr, "bench: floor labels differ at K = %d\n", k);
            exit(1);
        }
        double ex[FLOOR_REPS], fl[FLOOR_REPS], q[FLOOR_REPS];
        for (int r = 0; r < FLOOR_REPS; r++) {
            if (r % 2) {
                fl[r] = run_floor(s->s16, n, hist, lut, l2);
                ex[r] = run_s16(s->s16, n, k, l1, centers);
            } else {
                ex[r] = run_s16(s->s16, n, k, l1, centers);
                fl[r] = run_floor(s->s16, n, hist, lut, l2);
            }
            q[r] = ex[r] / fl[r];
        }
        bench_spread e = bench_spread_of(ex, FLOOR_REPS),
                     f = bench_spread_of(fl, FLOOR_REPS),
                     rq = bench_spread_of(q, FLOOR_REPS);
        all_ok &= rq.med <= 2.0;
        worst = rq.med > worst ? rq.med : worst;
        printf("%2d %7.3f [%6.3f-%6.3f] %7.3f [%6.3f-%6.3f] %8.2f "
               "[%5.2f-%5.2f] %s\n",
               k, e.med, e.min, e.max, f.med, f.min, f.max, rq.med, rq.min, rq.max,
               rq.med <= 2.0 ? "" : "(above 2)");
        size_t len = strlen(readme);
        snprintf(readme + len, readme_size - len, "%sK=%d %.2f [%.2f-%.2f]",
                 k > 2 ? ", " : "", k, rq.med, rq.min, rq.max);
    }
    printf("(exact: kms_kmeans_optimal_s16, labels, centres and WCSS; "
           "floor: memset + histogram pass + label pass through a given "
           "table; target exact/floor <= 2.0 at every K: %s, worst median "
           "%.2f)\n\n",
           all_ok ? "met" : "NOT met", worst);
    free(hist);
    free(lut);
    free(l1);
    free(l2);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "../shared/data/lung-ct/images";
    static char paths[MAX_SLICES][1024];
    int n = list_slices(dir, paths);
    if (n == 0) {
        dir = "samples/ct";
        n = list_slices(dir, paths);
    }
    slice s[MAX_SLICES];
    int loaded = 0;
    for (int i = 0; i < n; i++)
        loaded += load_slice(paths[i], &s[loaded]);
    if (loaded == 0) {
        fprintf(stderr, "bench: no 16-bit CT slice in %s\n", dir);
        return 1;
    }
    kms_cv_set_num_threads(1, NULL);
    printf("kmseg 1-D k-means benchmark (OpenCV %s), %d slices from %s\n"
           "cv::kmeans: attempts %d, (EPS+MAX_ITER, %d, 1.0), PP, seed %d, "
           "one thread; native: exact optimum (kms_kmeans_run, optimal)\n\n",
           kms_cv_version(), loaded, dir, ATTEMPTS, MAX_ITER, SEED);
    char r_int[1024] = "", r_frac[1024] = "", r_floor[1024] = "";
    /* KMS_BENCH_FLOOR_ONLY=1: the floor section alone (seconds, not
     * minutes), no README rows */
    const char *only = getenv("KMS_BENCH_FLOOR_ONLY");
    if (only && *only == '1') {
        floor_section(&s[0], r_floor, sizeof r_floor);
        return 0;
    }
    vs_opencv(s, loaded, 0, r_int, sizeof r_int);
    vs_opencv(s, loaded, 1, r_frac, sizeof r_frac);
    floor_section(&s[0], r_floor, sizeof r_floor);
    printf("README| | `build/bench/bench_kmeans` | exact 1-D k-means vs "
           "cv::kmeans (attempts 10, PP, 1 thread), %d CT slices clipped to "
           "[-1200, 600] HU, integer values: speed-up median [min-max] of "
           "paired per-slice ratios | %s |\n",
           loaded, r_int);
    printf("README| | `build/bench/bench_kmeans` | the same, non-integer "
           "values (HU / 7.3) | %s |\n",
           r_frac);
    printf("README| | `build/bench/bench_kmeans` | exact 1-D k-means of a "
           "512x512 int16 slice (kms_kmeans_optimal_s16) / histogram+label "
           "floor, median [min-max], target <= 2 | %s |\n",
           r_floor);
    for (int i = 0; i < loaded; i++) {
        free(s[i].x);
        free(s[i].frac);
        free(s[i].s16);
    }
    return 0;
}
