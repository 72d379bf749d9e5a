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
    float *buf;       /* dist; 1 + TRIALS arrays of n when not exact */
    double *part;     /* per trial and chunk: sums (exact on integral data) */
    double *dpart;    /* per chunk: sums of the current dist */
    int *idx;         /* the k picked samples */
    int avx2;         /* kms_simd_avx2() at creation */
};

/* Without an early exit and integer conversions the loop vectorises (a
 * pass over 4096^2 colour samples cost as much as a k-means++ round):
 * below 2^23, a is an integer iff rounding it to one, (a + 2^23) - 2^23
 * with the default rounding, gives a back; from 2^23 on, every float is an
 * integer. */
static int all_integers(const float *x, size_t total)
{
    int bad = 0;
    size_t i = 0;
#if KMS_VECTOR
    const kms_v4f big = {8388608.f, 8388608.f, 8388608.f, 8388608.f};
    const kms_v4f zero = {0, 0, 0, 0};
    kms_v4i badv = {0, 0, 0, 0};
    for (; i + 4 <= total; i += 4) {
        kms_v4f v;
        memcpy(&v, x + i, sizeof v);
        v = (kms_v4f)((kms_v4i)v & 0x7fffffff); /* |x| */
        v = kms_blend4(v < big, v, zero);
        badv |= (v + big) - big != v;
    }
    bad = (badv[0] | badv[1] | badv[2] | badv[3]) != 0;
#endif
    for (; i < total; i++) {
        float a = x[i] < 0 ? -x[i] : x[i];
        float v = a < 8388608.f ? a : 0.f;
        bad |= (v + 8388608.f) - 8388608.f != v;
    }
    return !bad;
}

typedef struct int_ctx {
    const kms_pp *pp;
    int *bad; /* per chunk */
} int_ctx;

static void integers_chunk(void *ctx, size_t c)
{
    int_ctx *s = ctx;
    size_t lo = c * CHUNK, hi = lo + CHUNK < (size_t)s->pp->n ? lo + CHUNK
                                                               : (size_t)s->pp->n;
    size_t d = (size_t)s->pp->dims;
    s->bad[c] = !all_integers(s->pp->x + lo * d, (hi - lo) * d);
}

/* all_integers over the pool's threads (a pass over all samples) */
static int integers_parallel(kms_pp *pp)
{
    int_ctx s = {pp, calloc(pp->nchunks ? pp->nchunks : 1, sizeof(int))};
    int bad = 0;
    if (!s.bad)
        return all_integers(pp->x, (size_t)pp->n * (size_t)pp->dims);
    kms_pool_run(pp->pool, pp->nchunks, integers_chunk, &s);
    for (size_t c = 0; c < pp->nchunks; c++)
        bad |= s.bad[c];
    free(s.bad);
    return !bad;
}

kms_pp *kms_pp_create(const float *x, int n, int dims, int k, kms_pool *pool)
{
    kms_pp *pp = calloc(1, sizeof *pp);
    if (!pp)
        return NULL;
    *pp = (kms_pp){.x = x, .n = n, .dims = dims, .k = k, .pool = pool};
    pp->nchunks = ((size_t)n + CHUNK - 1) / CHUNK;
    pp->integral = integers_parallel(pp);
    pp->avx2 = kms_simd_avx2();
    /* grown if not exact; at least 2 (n + 7) / 4 floats: kms_pp_scratch */
    pp->buf = malloc(sizeof *pp->buf * ((size_t)n + 8));
    pp->part = malloc(sizeof *pp->part * pp->nchunks * TRIALS);
    pp->dpart = malloc(sizeof *pp->dpart * pp->nchunks);
    pp->idx = malloc(sizeof *pp->idx * (size_t)k);
    if (!pp->buf || !pp->part || !pp->dpart || !pp->idx) {
        kms_pp_destroy(pp);
        return NULL;
    }
    return pp;
}

double *kms_pp_scratch(kms_pp *pp)
{
    return (double *)(void *)pp->buf;
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
    float *dist;             /* current minimum distances, NULL at first */
    float *tdist[TRIALS];    /* trial outputs, when store */
    int ci[TRIALS];          /* trial centres */
    int ntrials;
    int store;               /* 1: write the trials' distances to tdist */
    int pending;             /* >= 0: the last centre picked, not yet in
                                dist: dist[i] = min(dist[i], d(x_i, it))
                                first (exact data only) */
} pass;

/* One sample, all trials: the one-sample path of trials_range. */
KMS_INLINE void trial_point(const pass *s, int i, int ntrials, int dims,
                            float *out)
{
    const float *x = s->pp->x, *xi = x + (size_t)i * dims;
    float di = s->dist ? s->dist[i] : INFINITY;
    if (s->pending >= 0) {
        float dp = kms_dist2(xi, x + (size_t)s->pending * dims, dims);
        s->dist[i] = di = di < dp ? di : dp;
    }
    for (int t = 0; t < ntrials; t++) {
        float dt = kms_dist2(xi, x + (size_t)s->ci[t] * dims, dims);
        out[t] = di < dt ? di : dt; /* std::min(dt, dist[i]) */
        if (s->store)
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
    if (s->pending >= 0) {
        kms_v4f d = kms_dist4v(p, x + (size_t)s->pending * dims, dims);
        di = kms_blend4(di < d, di, d);
        memcpy(s->dist + i, &di, sizeof di);
    }
    for (int t = 0; t < ntrials; t++) {
        kms_v4f d = kms_dist4v(p, x + (size_t)s->ci[t] * dims, dims);
        kms_v4f m = kms_blend4(di < d, di, d); /* std::min(d, dist[i]) */
        if (s->store)
            memcpy(s->tdist[t] + i, &m, sizeof m);
        acc[t][0] += (kms_v2d){m[0], m[1]};
        acc[t][1] += (kms_v2d){m[2], m[3]};
    }
}
#endif

#if KMS_HAVE_AVX2
/* trials4 for 8 samples in AVX2 registers */
static inline __attribute__((always_inline, target("avx2"))) void
trials8(pass *s, int i, int ntrials, int dims, kms_v4d acc[][2])
{
    const float *x = s->pp->x;
    kms_v8f p[16], di;
    kms_load8(x + (size_t)i * dims, dims, p);
    if (s->dist)
        memcpy(&di, s->dist + i, sizeof di);
    else
        di = (kms_v8f){INFINITY, INFINITY, INFINITY, INFINITY, INFINITY,
                       INFINITY, INFINITY, INFINITY};
    if (s->pending >= 0) {
        kms_v8f d = kms_dist8v(p, x + (size_t)s->pending * dims, dims);
        di = kms_blend8(di < d, di, d);
        memcpy(s->dist + i, &di, sizeof di);
    }
    for (int t = 0; t < ntrials; t++) {
        kms_v8f d = kms_dist8v(p, x + (size_t)s->ci[t] * dims, dims);
        kms_v8f m = kms_blend8(di < d, di, d); /* std::min(d, dist[i]) */
        if (s->store)
            memcpy(s->tdist[t] + i, &m, sizeof m);
        acc[t][0] += __builtin_convertvector(
            __builtin_shufflevector(m, m, 0, 1, 2, 3), kms_v4d);
        acc[t][1] += __builtin_convertvector(
            __builtin_shufflevector(m, m, 4, 5, 6, 7), kms_v4d);
    }
}

/* trials_range's vector part in AVX2; returns the first sample not done */
static inline __attribute__((always_inline, target("avx2"))) int
trials_range8(pass *s, int lo, int hi, int ntrials, int dims, double *sum)
{
    kms_v4d acc[TRIALS][2] = {{{0}}};
    int i = lo;
    for (; i + 8 <= hi; i += 8)
        trials8(s, i, ntrials, dims, acc);
    for (int t = 0; t < ntrials; t++) {
        kms_v4d a = acc[t][0] + acc[t][1];
        sum[t] = (a[0] + a[1]) + (a[2] + a[3]);
    }
    return i;
}

KMS_AVX2_FN static int trials_avx2(pass *s, int lo, int hi, int ntrials,
                                   double *sum)
{
    switch (s->pp->dims * 4 + ntrials) { /* constant dims and trial count */
    case 1 * 4 + 1: return trials_range8(s, lo, hi, 1, 1, sum);
    case 1 * 4 + TRIALS: return trials_range8(s, lo, hi, TRIALS, 1, sum);
    case 3 * 4 + 1: return trials_range8(s, lo, hi, 1, 3, sum);
    case 3 * 4 + TRIALS: return trials_range8(s, lo, hi, TRIALS, 3, sum);
    default: return lo;
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
#if KMS_HAVE_AVX2
    if (s->pp->avx2)
        i = trials_avx2(s, lo, hi, ntrials, sum);
#endif
#if KMS_VECTOR
    kms_v2d acc[TRIALS][2] = {{{0, 0}, {0, 0}}, {{0, 0}, {0, 0}},
                              {{0, 0}, {0, 0}}};
    for (; dims < 16 && i + 4 <= hi; i += 4)
        trials4(s, i, ntrials, dims, acc);
    for (int t = 0; t < ntrials; t++) {
        kms_v2d a = acc[t][0] + acc[t][1];
        sum[t] += a[0] + a[1];
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
static int search_exact(const kms_pp *pp, const float *dist, int pending,
                        double p)
{
    double off = 0;
    size_t c = 0;
    while (c + 1 < pp->nchunks && off + pp->dpart[c] < p)
        off += pp->dpart[c++];
    int lo = (int)(c * CHUNK), hi = lo + CHUNK < pp->n ? lo + CHUNK : pp->n;
    for (int i = lo; i < hi && i < pp->n - 1; i++) {
        float d = dist[i];
        if (pending >= 0) { /* the update the next pass makes */
            float dp = kms_dist2(pp->x + (size_t)i * pp->dims,
                                 pp->x + (size_t)pending * pp->dims, pp->dims);
            d = d < dp ? d : dp;
        }
        off += d;
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
static kms_status first_centre(kms_pp *pp, pass *s, int *exact,
                               double *sum0)
{
    s->dist = NULL;
    s->tdist[0] = pp->buf;
    s->ntrials = 1;
    s->store = 1;
    s->pending = -1;
    kms_pool_run(pp->pool, pp->nchunks, trials_chunk, s);
    s->dist = pp->buf;
    *sum0 = trial_sum(pp, s, 0, 1);
    *exact = pp->integral && *sum0 < EXACT_LIMIT;
    if (*exact) {
        keep_chunk_sums(pp, 0);
        return KMS_OK;
    }
    /* cv's serial path keeps every trial's distances */
    float *grown = realloc(pp->buf, sizeof *pp->buf
                                        * ((size_t)pp->n * (1 + TRIALS) + 8));
    if (!grown)
        return KMS_ERR_NOMEM;
    pp->buf = s->dist = grown;
    *sum0 = sum_serial(s->dist, pp->n);
    return KMS_OK;
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
        s->ci[t] = search_exact(pp, s->dist, s->pending, p[t]);
}

kms_status kms_pp_run(kms_pp *pp, kms_rng *rng, float *centers,
                      kms_error *err)
{
    int n = pp->n, exact;
    double sum0;
    pass s = {.pp = pp};
    pp->idx[0] = (int)(kms_rng_next(rng) % (uint32_t)n); /* (unsigned)rng % N */
    s.ci[0] = pp->idx[0];
    if (first_centre(pp, &s, &exact, &sum0) != KMS_OK)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                             "kmeans: out of memory");
    /* Exact data: the trials' distances are only summed, and the winner's
     * update of dist waits for the next pass (pending), which reads dist
     * anyway: one array instead of four, a third of the memory traffic. */
    s.store = !exact;
    for (int k = 1; k < pp->k; k++) {
        double best_sum = DBL_MAX;
        int f = 0, best = -1;
        if (!exact)
            for (int t = 0; t <= TRIALS; t++) /* the 3 buffers not dist */
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
        if (exact) {
            keep_chunk_sums(pp, best);
            s.pending = s.ci[best];
        } else {
            s.dist = s.tdist[best];
        }
    }
    for (int k = 0; k < pp->k; k++)
        memcpy(centers + (size_t)k * pp->dims,
               pp->x + (size_t)pp->idx[k] * pp->dims,
               sizeof *centers * (size_t)pp->dims);
    return KMS_OK;
}
