/* k-means++ with 3 local trials, as cv generateCentersPP (OpenCV 4.6):
 *
 *   centers[0] = (unsigned)rng % N;
 *   dist[i] = normL2Sqr_(x_i, x_c0); sum0 += dist[i];      (double sum)
 *   for each next centre, 3 trials:
 *       p = (double)rng*sum0; ci = first i < N-1 with (p -= dist[i]) <= 0
 *       tdist2[i] = min(normL2Sqr_(x_i, x_ci), dist[i]); s = sum, in order
 *       keep the trial with the smallest s (strictly smaller wins)
 *
 * The trials only read dist and sum0, which change after all three, so the
 * three draws are made first and the trials scanned together.
 *
 * Sequential double sums and the subtract-until-negative search are serial
 * chains. When every sample is an integer, every float distance is an
 * integer too, and while the totals stay below 2^52 every partial sum is
 * exact: the sums may then be taken in any order (so in parallel chunks),
 * and the search is a search of the exact prefix sums S_i (p - S_i is exact
 * while positive, and its sign is exact at the crossing): first the chunk,
 * from the per-chunk sums, then the sample inside it. Otherwise the serial
 * chains run as in cv. Both give identical results. */
#include "kmeans_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { CHUNK = 4096, TRIALS = 3 };

#define EXACT_LIMIT 4503599627370496.0 /* 2^52 */

struct kms_pp {
    const float *x;
    int n, dims, k;
    kms_pool *pool;
    int integral;     /* every sample is an integer */
    size_t nchunks;
    float *buf;       /* 1 + TRIALS arrays of n distances */
    double *part;     /* per trial and chunk: sums (exact on integral data) */
    double *dpart;    /* per chunk: sums of the current dist */
    int *idx;         /* the k picked samples */
};

static int all_integers(const float *x, size_t total)
{
    for (size_t i = 0; i < total; i++) {
        float a = x[i] < 0 ? -x[i] : x[i];
        /* from 2^23 on, every float is an integer */
        if (!(a >= 8388608.f || (float)(int32_t)x[i] == x[i]))
            return 0;
    }
    return 1;
}

kms_pp *kms_pp_create(const float *x, int n, int dims, int k, kms_pool *pool)
{
    kms_pp *pp = calloc(1, sizeof *pp);
    if (!pp)
        return NULL;
    *pp = (kms_pp){.x = x, .n = n, .dims = dims, .k = k, .pool = pool};
    pp->nchunks = ((size_t)n + CHUNK - 1) / CHUNK;
    pp->integral = all_integers(x, (size_t)n * (size_t)dims);
    pp->buf = malloc(sizeof *pp->buf * (size_t)n * (1 + TRIALS));
    pp->part = malloc(sizeof *pp->part * pp->nchunks * TRIALS);
    pp->dpart = malloc(sizeof *pp->dpart * pp->nchunks);
    pp->idx = malloc(sizeof *pp->idx * (size_t)k);
    if (!pp->buf || !pp->part || !pp->dpart || !pp->idx) {
        kms_pp_destroy(pp);
        return NULL;
    }
    return pp;
}

void kms_pp_destroy(kms_pp *pp)
{
    if (!pp)
        return;
    free(pp->buf);
    free(pp->part);
    free(pp->dpart);
    free(pp->idx);
    free(pp);
}

/* ---- the parallel pass ---------------------------------------------------------- */

typedef struct pass {
    kms_pp *pp;
    const float *dist;       /* current minimum distances, NULL at first */
    float *tdist[TRIALS];    /* trial outputs */
    int ci[TRIALS];          /* trial centres */
    int ntrials;
} pass;

/* One sample, all trials: the one-sample path of trials_range. */
KMS_INLINE void trial_point(const pass *s, int i, int ntrials, int dims,
                            float *out)
{
    const float *x = s->pp->x, *xi = x + (size_t)i * dims;
    float di = s->dist ? s->dist[i] : INFINITY;
    for (int t = 0; t < ntrials; t++) {
        float dt = kms_dist2(xi, x + (size_t)s->ci[t] * dims, dims);
        out[t] = di < dt ? di : dt; /* std::min(dt, dist[i]) */
        s->tdist[t][i] = out[t];
    }
}

#if KMS_VECTOR
/* Four samples from i, all trials; sums into acc (any order: exact data). */
KMS_INLINE void trials4(pass *s, int i, int ntrials, int dims,
                        kms_v2d acc[][2])
{
    const float *x = s->pp->x;
    kms_v4f p[16], di = {INFINITY, INFINITY, INFINITY, INFINITY};
    kms_load4(x + (size_t)i * dims, dims, p);
    if (s->dist)
        memcpy(&di, s->dist + i, sizeof di);
    for (int t = 0; t < ntrials; t++) {
        kms_v4f d = kms_dist4v(p, x + (size_t)s->ci[t] * dims, dims);
        kms_v4f m = kms_blend4(di < d, di, d); /* std::min(d, dist[i]) */
        memcpy(s->tdist[t] + i, &m, sizeof m);
        acc[t][0] += (kms_v2d){m[0], m[1]};
        acc[t][1] += (kms_v2d){m[2], m[3]};
    }
}
#endif

/* cv KMeansPPDistanceComputer for all trials at once (one read of each
 * sample): tdist[i] = std::min(normL2Sqr_(x_i, x_ci), dist[i]); plus the
 * per-chunk sums, meaningful (exact, so in any order) on integral data. */
KMS_INLINE void trials_range(pass *s, size_t c, int lo, int hi, int ntrials,
                             int dims)
{
    double sum[TRIALS] = {0};
    float d[TRIALS];
    int i = lo;
#if KMS_VECTOR
    kms_v2d acc[TRIALS][2] = {{{0, 0}, {0, 0}}, {{0, 0}, {0, 0}},
                              {{0, 0}, {0, 0}}};
    for (; dims < 16 && i + 4 <= hi; i += 4)
        trials4(s, i, ntrials, dims, acc);
    for (int t = 0; t < ntrials; t++) {
        kms_v2d a = acc[t][0] + acc[t][1];
        sum[t] = a[0] + a[1];
    }
#endif
    for (; i < hi; i++) {
        trial_point(s, i, ntrials, dims, d);
        for (int t = 0; t < ntrials; t++)
            sum[t] += d[t];
    }
    for (int t = 0; t < ntrials; t++)
        s->pp->part[(size_t)t * s->pp->nchunks + c] = sum[t];
}

static void trials_chunk(void *ctx, size_t c)
{
    pass *s = ctx;
    int nt = s->ntrials;
    int lo = (int)(c * CHUNK), hi = lo + CHUNK < s->pp->n ? lo + CHUNK : s->pp->n;
    switch (s->pp->dims * 4 + nt) { /* constant dims and trial count */
    case 1 * 4 + 1: trials_range(s, c, lo, hi, 1, 1); break;
    case 1 * 4 + TRIALS: trials_range(s, c, lo, hi, TRIALS, 1); break;
    case 3 * 4 + 1: trials_range(s, c, lo, hi, 1, 3); break;
    case 3 * 4 + TRIALS: trials_range(s, c, lo, hi, TRIALS, 3); break;
    default: trials_range(s, c, lo, hi, nt, s->pp->dims); break;
    }
}

/* ---- searches and sums ------------------------------------------------------------ */

/* cv: for (ci = 0; ci < N-1; ci++) { p -= dist[ci]; if (p <= 0) break; }
 * three independent chains in one loop */
static void search_serial(const float *dist, int n, const double *p0, int *ci)
{
    double p[TRIALS];
    int done = 0;
    for (int t = 0; t < TRIALS; t++) {
        p[t] = p0[t];
        ci[t] = n - 1;
    }
    for (int i = 0; i < n - 1 && done != (1 << TRIALS) - 1; i++)
        for (int t = 0; t < TRIALS; t++) {
            if (done >> t & 1)
                continue;
            p[t] -= dist[i];
            if (p[t] <= 0) {
                ci[t] = i;
                done |= 1 << t;
            }
        }
}

/* Same result on integral data: first i <= n-2 with S_i >= p, else n-1,
 * S_i the exact prefix sums; the chunk first, then the sample. */
static int search_exact(const kms_pp *pp, const float *dist, double p)
{
    double off = 0;
    size_t c = 0;
    while (c + 1 < pp->nchunks && off + pp->dpart[c] < p)
        off += pp->dpart[c++];
    int lo = (int)(c * CHUNK), hi = lo + CHUNK < pp->n ? lo + CHUNK : pp->n;
    for (int i = lo; i < hi && i < pp->n - 1; i++) {
        off += dist[i];
        if (off >= p)
            return i;
    }
    return pp->n - 1;
}

static double sum_serial(const float *d, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += d[i];
    return s;
}

/* Trial t's sum: its exact chunk sums combined, or cv's serial sum. */
static double trial_sum(const kms_pp *pp, const pass *s, int t, int exact)
{
    if (!exact)
        return sum_serial(s->tdist[t], pp->n);
    double sum = 0;
    for (size_t c = 0; c < pp->nchunks; c++)
        sum += pp->part[(size_t)t * pp->nchunks + c];
    return sum;
}

/* ---- the algorithm ---------------------------------------------------------------- */

static void keep_chunk_sums(kms_pp *pp, int t)
{
    memcpy(pp->dpart, pp->part + (size_t)t * pp->nchunks,
           sizeof *pp->dpart * pp->nchunks);
}

/* cv: dist[i] = normL2Sqr_(x_i, x_c0); sum0 += dist[i] */
static double first_centre(kms_pp *pp, pass *s, int *exact)
{
    s->dist = NULL;
    s->tdist[0] = pp->buf;
    s->ntrials = 1;
    kms_pool_run(pp->pool, pp->nchunks, trials_chunk, s);
    s->dist = pp->buf;
    double sum0 = trial_sum(pp, s, 0, 1);
    *exact = pp->integral && sum0 < EXACT_LIMIT;
    if (!*exact)
        return sum_serial(s->dist, pp->n);
    keep_chunk_sums(pp, 0);
    return sum0;
}

/* The three draws, in cv's order, and their samples. */
static void pick_trials(kms_pp *pp, pass *s, kms_rng *rng, double sum0,
                        int exact)
{
    double p[TRIALS];
    for (int t = 0; t < TRIALS; t++)
        p[t] = kms_rng_uniform_double(rng, 0.0, 1.0) * sum0;
    if (!exact) {
        search_serial(s->dist, pp->n, p, s->ci);
        return;
    }
    for (int t = 0; t < TRIALS; t++)
        s->ci[t] = search_exact(pp, s->dist, p[t]);
}

kms_status kms_pp_run(kms_pp *pp, kms_rng *rng, float *centers,
                      kms_error *err)
{
    int n = pp->n, exact;
    pass s = {.pp = pp};
    pp->idx[0] = (int)(kms_rng_next(rng) % (uint32_t)n); /* (unsigned)rng % N */
    s.ci[0] = pp->idx[0];
    double sum0 = first_centre(pp, &s, &exact);
    for (int k = 1; k < pp->k; k++) {
        double best_sum = DBL_MAX;
        int f = 0, best = -1;
        for (int t = 0; t <= TRIALS; t++) /* the 3 buffers that are not dist */
            if (pp->buf + (size_t)t * n != s.dist)
                s.tdist[f++] = pp->buf + (size_t)t * n;
        pick_trials(pp, &s, rng, sum0, exact);
        s.ntrials = TRIALS;
        kms_pool_run(pp->pool, pp->nchunks, trials_chunk, &s);
        for (int t = 0; t < TRIALS; t++) {
            double sum = trial_sum(pp, &s, t, exact);
            if (sum < best_sum) { /* cv: strictly smaller */
                best_sum = sum;
                best = t;
            }
        }
        if (best < 0)
            return kms_error_set(err, KMS_ERR_INPUT, NULL, 0, NULL,
                                 "kmeans: can't update cluster centre "
                                 "(values too large)");
        pp->idx[k] = s.ci[best];
        sum0 = best_sum;
        if (exact)
            keep_chunk_sums(pp, best);
        s.dist = s.tdist[best];
    }
    for (int k = 0; k < pp->k; k++)
        memcpy(centers + (size_t)k * pp->dims,
               pp->x + (size_t)pp->idx[k] * pp->dims,
               sizeof *centers * (size_t)pp->dims);
    return KMS_OK;
}
