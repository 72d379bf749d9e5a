/* Native colour (3-channel) k-means against cv::kmeans, in one process on
 * the same data: OpenCV's own sample photos (Debian package opencv-doc)
 * resized to squares of 256^2 .. 4096^2 pixels, K = 2 .. 32, 1 and 2
 * threads (cv::setNumThreads and the native threads option alike).
 *
 * Both sides: attempts 1, criteria EPS+MAX_ITER (10 iterations, epsilon
 * 1.0), KMEANS_PP_CENTERS, cv::setRNGSeed(1) / native seed 1. The native
 * side is method lloyd, which replays cv::kmeans's arithmetic, so the same
 * seed should give the same labels: the table says when it does not.
 *
 * Timing: per cell (size, K, threads) a warm-up pair, then interleaved
 * repetitions in which the two sides alternate which goes first; medians
 * with [min-max]; the ratio is the median of the paired per-repetition
 * ratios cv_ms / native_ms. WCSS of both sides is recomputed the same way
 * in double from the returned labels and centres.
 *
 * Usage: bench_colour [--quick] [PHOTO_DIR]
 * (default /usr/share/doc/opencv-doc/examples/data) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "kmeans.h"
#include "opencv_c.h"
#include "bench_stats.h"

enum { SEED = 1, MAX_ITER = 10, ATTEMPTS = 1, NPHOTOS = 4, MAX_REPS = 16 };

#define DEFAULT_DIR "/usr/share/doc/opencv-doc/examples/data"

static const char *const photo_names[NPHOTOS] = {"fruits", "baboon", "home",
                                                 "starry_night"};
static const int ks[] = {2, 4, 8, 16, 32};
enum { NK = sizeof ks / sizeof ks[0] };
enum { WARM_ONCE = 2048 }; /* sizes from which only the first K warms up */

/* Per size: photos used, timed repetitions. The big sizes use fewer of
 * both so that a full run fits in about 15 minutes on 2 cores. */
typedef struct size_plan {
    int side, photos, reps;
} size_plan;

static const size_plan full_plan[] = {
    {256, 4, 7}, {512, 4, 5}, {1024, 4, 3}, {2048, 2, 3}, {4096, 1, 3}};
static const size_plan quick_plan[] = {{256, 2, 3}, {1024, 1, 3}};

/* WCSS is compared with this relative tolerance: both sides should agree
 * exactly (same arithmetic), 1e-3 only absorbs a near-tie going the other
 * way in one of millions of pixels; anything bigger is a different answer. */
#define WCSS_TOL 1e-3

typedef struct photo {
    const char *name;
    kms_image img; /* BGR 8-bit, as read */
} photo;

typedef struct samples {
    float *x; /* n x 3 */
    size_t n;
} samples;

static void die(const char *what, const kms_error *err)
{
    fprintf(stderr, "bench_colour: %s: %s\n", what, err->message);
    exit(1);
}

/* The photo resized to side x side: INTER_AREA when shrinking in both
 * directions (or equal), INTER_CUBIC otherwise; then floats, n x 3 (BGR). */
static samples make_samples(const photo *ph, int side)
{
    kms_image sq = {0};
    kms_error err;
    int shrink = side <= ph->img.width && side <= ph->img.height;
    if (kms_cv_resize(&ph->img, &sq, side, side, 0, 0,
                      shrink ? KMS_CV_INTER_AREA : KMS_CV_INTER_CUBIC,
                      &err) != KMS_OK)
        die("resize", &err);
    samples s = {malloc(sizeof(float) * 3 * (size_t)side * (size_t)side),
                 (size_t)side * (size_t)side};
    if (!s.x) {
        fprintf(stderr, "bench_colour: out of memory\n");
        exit(1);
    }
    for (int y = 0; y < side; y++) {
        const uint8_t *row = kms_image_row(&sq, y);
        for (int i = 0; i < 3 * side; i++)
            s.x[(size_t)y * 3 * (size_t)side + (size_t)i] = row[i];
    }
    kms_image_free(&sq);
    return s;
}

static kms_kmeans_params params(int k, int threads)
{
    kms_kmeans_params p;
    kms_kmeans_params_default(&p);
    p.k = k;
    p.attempts = ATTEMPTS;
    p.criteria = KMS_KM_TERM_COUNT | KMS_KM_TERM_EPS;
    p.max_iter = MAX_ITER;
    p.epsilon = 1.0;
    p.init = KMS_KM_INIT_PP;
    p.method = KMS_KM_LLOYD;
    p.seed = SEED;
    p.threads = threads;
    return p;
}

/* One run of a side; returns its milliseconds. */
static double run_side(int opencv, const samples *s, int k, int threads,
                       int32_t *labels, float *centers)
{
    kms_kmeans_params p = params(k, threads);
    kms_error err;
    double c, t0 = kms_now_ms();
    kms_status st = opencv ? kms_cv_kmeans(s->x, s->n, 3, &p, labels, centers,
                                           &c, &err)
                           : kms_kmeans_run(s->x, s->n, 3, &p, labels, centers,
                                            &c, &err);
    double ms = kms_now_ms() - t0;
    if (st != KMS_OK)
        die(opencv ? "cv::kmeans" : "native k-means", &err);
    return ms;
}

/* Sum of squared distances to the own centre, in double from the float
 * samples and centres: the same formula for both sides. */
static double wcss_of(const samples *s, const int32_t *labels,
                      const float *centers)
{
    double w = 0;
    for (size_t i = 0; i < s->n; i++) {
        const float *c = centers + 3 * (size_t)labels[i];
        for (int j = 0; j < 3; j++) {
            double t = (double)s->x[3 * i + (size_t)j] - (double)c[j];
            w += t * t;
        }
    }
    return w;
}

/* Results over all cells, for the README rows. */
typedef struct summary {
    double min_ratio[3], med_of_med[3];
    char min_cell[3][64];
    double cell_ratio[3][64];
    int ncells[3];
    double wcss_rel[1024]; /* native / cv per (cell, photo) */
    int nw;
    int not_identical;   /* (cell, photo) pairs whose labels differ */
    int pairs;
    int wcss_worse;      /* native WCSS above cv's by more than WCSS_TOL */
} summary;

typedef struct cell_buf {
    int32_t *lab_cv, *lab_nat;
    float cen_cv[32 * 3], cen_nat[32 * 3];
} cell_buf;

static void run_cell(photo *photos, const size_plan *sp, int k, int threads,
                     int cell_no, int warm, cell_buf *b, summary *sum)
{
    int np = sp->photos, nr = sp->reps, m = np * nr;
    double cv_ms[4 * MAX_REPS], nat_ms[4 * MAX_REPS], ratio[4 * MAX_REPS];
    double wrel_max = 0, wrel_med[NPHOTOS];
    int same_all = 1;
    for (int ph = 0; ph < np; ph++) {
        samples s = make_samples(&photos[ph], sp->side);
        if (warm) {
            run_side(1, &s, k, threads, b->lab_cv, b->cen_cv);
            run_side(0, &s, k, threads, b->lab_nat, b->cen_nat);
        }
        for (int r = 0; r < nr; r++) {
            int cv_first = (r + cell_no + ph) % 2 == 0, i = ph * nr + r;
            for (int side = 0; side < 2; side++) {
                int opencv = side == 0 ? cv_first : !cv_first;
                double ms = run_side(opencv, &s, k, threads,
                                     opencv ? b->lab_cv : b->lab_nat,
                                     opencv ? b->cen_cv : b->cen_nat);
                if (opencv)
                    cv_ms[i] = ms;
                else
                    nat_ms[i] = ms;
            }
            ratio[i] = cv_ms[i] / nat_ms[i];
        }
        double wcv = wcss_of(&s, b->lab_cv, b->cen_cv);
        double wnat = wcss_of(&s, b->lab_nat, b->cen_nat);
        double rel = wnat / wcv;
        wrel_med[ph] = rel;
        wrel_max = rel > wrel_max ? rel : wrel_max;
        sum->wcss_rel[sum->nw++] = rel;
        sum->wcss_worse += rel > 1 + WCSS_TOL;
        int same = memcmp(b->lab_cv, b->lab_nat, sizeof *b->lab_cv * s.n) == 0;
        same_all &= same;
        sum->not_identical += !same;
        sum->pairs++;
        free(s.x);
    }
    bench_spread cv = bench_spread_of(cv_ms, m), nat = bench_spread_of(nat_ms, m),
                 r = bench_spread_of(ratio, m);
    printf("%5d^2 %3d %2d %6d %9.1f [%7.1f-%7.1f] %9.1f [%7.1f-%7.1f] %6.2fx "
           "[%5.2f-%5.2f] %9.6f %9.6f %5s\n",
           sp->side, k, threads, m, cv.med, cv.min, cv.max, nat.med, nat.min,
           nat.max, r.med, r.min, r.max, bench_spread_of(wrel_med, np).med,
           wrel_max, same_all ? "yes" : "NO");
    fflush(stdout);
    int t = threads;
    if (r.med < sum->min_ratio[t]) {
        sum->min_ratio[t] = r.med;
        snprintf(sum->min_cell[t], sizeof sum->min_cell[t], "%d² K=%d [%.2f-%.2f]",
                 sp->side, k, r.min, r.max);
    }
    sum->cell_ratio[t][sum->ncells[t]++] = r.med;
}

static int load_photos(const char *dir, photo *photos)
{
    for (int i = 0; i < NPHOTOS; i++) {
        char path[4096];
        kms_error err;
        snprintf(path, sizeof path, "%s/%s.jpg", dir, photo_names[i]);
        photos[i].name = photo_names[i];
        photos[i].img = (kms_image){0};
        if (access(path, R_OK) != 0
            || kms_cv_imread(path, KMS_CV_IMREAD_COLOR, &photos[i].img,
                             &err) != KMS_OK
            || photos[i].img.channels != 3) {
            fprintf(stderr,
                    "bench_colour: cannot read %s\n"
                    "  the photos are OpenCV's samples from Debian's "
                    "opencv-doc package: apt-get install opencv-doc\n"
                    "  (or scripts/install-deps.sh --bench as root), or pass "
                    "the folder holding %s.jpg as an argument\n"
                    "  (slim Docker images drop /usr/share/doc: see "
                    "path-exclude in /etc/dpkg/dpkg.cfg.d/)\n",
                    path, photo_names[i]);
            return 0;
        }
    }
    return 1;
}

int main(int argc, char **argv)
{
    const char *dir = DEFAULT_DIR;
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: bench_colour [--quick] [PHOTO_DIR]\n");
            return 2;
        } else
            dir = argv[i];
    }
    photo photos[NPHOTOS];
    if (!load_photos(dir, photos))
        return 1;
    const size_plan *plan = quick ? quick_plan : full_plan;
    int nplan = quick ? (int)(sizeof quick_plan / sizeof *quick_plan)
                      : (int)(sizeof full_plan / sizeof *full_plan);
    size_t nmax = 0;
    for (int i = 0; i < nplan; i++) {
        size_t n = (size_t)plan[i].side * (size_t)plan[i].side;
        nmax = n > nmax ? n : nmax;
    }
    cell_buf b = {malloc(sizeof(int32_t) * nmax), malloc(sizeof(int32_t) * nmax),
                  {0}, {0}};
    summary *sum = calloc(1, sizeof *sum);
    if (!b.lab_cv || !b.lab_nat || !sum) {
        fprintf(stderr, "bench_colour: out of memory\n");
        return 1;
    }
    sum->min_ratio[1] = sum->min_ratio[2] = INFINITY;

    printf("kmseg colour k-means benchmark%s: native (lloyd) vs cv::kmeans "
           "(OpenCV %s)\n", quick ? " (--quick)" : "", kms_cv_version());
    printf("photos: %s/{fruits,baboon,home,starry_night}.jpg, BGR 8-bit as "
           "floats, resized to squares (INTER_AREA when shrinking both ways, "
           "else INTER_CUBIC)\n", dir);
    printf("both sides: attempts %d, criteria EPS+MAX_ITER (%d, 1.0), "
           "KMEANS_PP_CENTERS, seed %d; threads: cv::setNumThreads(T) and "
           "native threads = T\n", ATTEMPTS, MAX_ITER, SEED);
    printf("plan (photos x timed repetitions per cell, after a warm-up pair "
           "per photo and cell; from %d^2 on, per photo at K = %d only, "
           "cv::kmeans taking ~1 min at 4096^2 K = 32):", WARM_ONCE, ks[0]);
    for (int i = 0; i < nplan; i++)
        printf(" %d^2 %dx%d%s", plan[i].side, plan[i].photos, plan[i].reps,
               i + 1 < nplan ? "," : "\n");
    printf("ratio = cv_ms / native_ms per repetition: median [min-max]; "
           "wcss = native / cv, both in double from labels and centres "
           "(median over photos, max); same = identical labels\n\n");
    printf("%7s %3s %2s %6s %9s %17s %9s %17s %7s %13s %9s %9s %5s\n", "size",
           "K", "T", "pairs", "cv_ms", "[min-max]", "nat_ms", "[min-max]",
           "ratio", "[min-max]", "wcss_med", "wcss_max", "same");

    double t_start = kms_now_ms();
    int cell_no = 0;
    for (int threads = 1; threads <= 2; threads++) {
        kms_error err;
        if (kms_cv_set_num_threads(threads, &err) != KMS_OK)
            die("setNumThreads", &err);
        for (int si = 0; si < nplan; si++)
            for (int ki = 0; ki < NK; ki++)
                run_cell(photos, &plan[si], ks[ki], threads, cell_no++,
                         plan[si].side < WARM_ONCE || ki == 0, &b, sum);
    }
    double total_s = (kms_now_ms() - t_start) / 1000;

    printf("\nwall time %.0f s; cells with labels not identical to OpenCV's: "
           "%d of %d (photo, cell) pairs; native WCSS above OpenCV's by more "
           "than %.0e: %d\n", total_s, sum->not_identical, sum->pairs,
           WCSS_TOL, sum->wcss_worse);
    const char *cmd = quick ? "build/bench/bench_colour --quick"
                            : "build/bench/bench_colour";
    for (int t = 1; t <= 2; t++)
        printf("README| | `%s` | native colour k-means vs cv::kmeans, %d "
               "thread%s each, 4 OpenCV sample photos 256²–4096², K 2–32 "
               "(ratio of paired times per cell) | slowest cell %.2fx (%s), "
               "median cell %.2fx |\n",
               cmd, t, t > 1 ? "s" : "", sum->min_ratio[t], sum->min_cell[t],
               bench_spread_of(sum->cell_ratio[t], sum->ncells[t]).med);
    bench_spread w = bench_spread_of(sum->wcss_rel, sum->nw);
    printf("README| | `%s` | WCSS native / OpenCV (double, from labels and "
           "centres), all cells and photos | median %.6f, max %.6f; labels "
           "identical in %d of %d |\n",
           cmd, w.med, w.max,
           sum->pairs - sum->not_identical, sum->pairs);
    for (int i = 0; i < NPHOTOS; i++)
        kms_image_free(&photos[i].img);
    free(b.lab_cv);
    free(b.lab_nat);
    free(sum);
    return 0;
}
