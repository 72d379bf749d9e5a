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
 * and the search is a binary search of the exact prefix sums (p - S_i is
 * exact while positive, and its sign is exact at the crossing). Otherwise
 * the serial chains run as in cv. Both give identical results. */
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
    double *cum;      /* exact prefix sums of dist (integral data) */
    double *part;     /* per trial and chunk: partial sums */
    double *offset;   /* per chunk: exact prefix of the chosen trial */
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
    pp->cum = malloc(sizeof *pp->cum * (size_t)n);
    pp->part = malloc(sizeof *pp->part * pp->nchunks * TRIALS);
    pp->offset = malloc(sizeof *pp->offset * pp->nchunks);
    pp->idx = malloc(sizeof *pp->idx * (size_t)k);
    if (!pp->buf || !pp->cum || !pp->part || !pp->offset || !pp->idx) {
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
    free(pp->cum);
    free(pp->part);
    free(pp->offset);
    free(pp->idx);
    free(pp);
}

/* ---- parallel passes ------------------------------------------------------------- */

typedef struct pass {
    kms_pp *pp;
    float *dist;             /* current minimum distances */
    float *tdist[TRIALS];    /* trial outputs */
    int ci[TRIALS];          /* trial centres */
    int ntrials;             /* 0: first pass, dist from ci[0] */
    int chosen;              /* prefix pass: trial whose sums to use */
} pass;

static void chunk_range(const kms_pp *pp, size_t c, int *lo, int *hi)
{
    *lo = (int)(c * CHUNK);
    *hi = *lo + CHUNK < pp->n ? *lo + CHUNK : pp->n;
}

/* cv KMeansPPDistanceComputer for all trials at once (one read of each
 * sample): tdist[i] = std::min(normL2Sqr_(x_i, x_ci), dist[i]) */
KMS_INLINE void trials_range(pass *s, int lo, int hi, int ntrials, int dims)
{
    const float *x = s->pp->x;
    float ct[4 * 16], d[4];
    int multi = dims < 16;
    if (multi) { /* trial centres transposed, 4 lanes */
        for (int t = 0; t < 4; t++)
            for (int j = 0; j < dims; j++)
                ct[j * 4 + t] = t < ntrials ? x[(size_t)s->ci[t] * dims + j] : 0.f;
    }
    for (int i = lo; i < hi; i++) {
        const float *xi = x + (size_t)i * dims;
        float di = s->dist[i];
        if (multi)
            kms_dist2_multi(xi, ct, 4, dims, d);
        for (int t = 0; t < ntrials; t++) {
            float dt = multi ? d[t]
                             : kms_dist2(xi, x + (size_t)s->ci[t] * dims, dims);
            s->tdist[t][i] = di < dt ? di : dt;
        }
    }
}

/* Per-chunk sums; only used when exact, so in any order: four chains. */
static double chunk_sum(const float *d, int lo, int hi)
{
    double a[4] = {0, 0, 0, 0};
    int i = lo;
    for (; i + 4 <= hi; i += 4)
        for (int u = 0; u < 4; u++)
            a[u] += d[i + u];
    for (; i < hi; i++)
        a[0] += d[i];
    return (a[0] + a[1]) + (a[2] + a[3]);
}

/* Trial distances with their per-chunk sums (exact on integral data). */
static void trials_chunk(void *ctx, size_t c)
{
    pass *s = ctx;
    int lo, hi, nt = s->ntrials;
    chunk_range(s->pp, c, &lo, &hi);
    switch (s->pp->dims * 4 + nt) { /* constant dims and trial count */
    case 1 * 4 + 1: trials_range(s, lo, hi, 1, 1); break;
    case 1 * 4 + TRIALS: trials_range(s, lo, hi, TRIALS, 1); break;
    case 3 * 4 + 1: trials_range(s, lo, hi, 1, 3); break;
    case 3 * 4 + TRIALS: trials_range(s, lo, hi, TRIALS, 3); break;
    default: trials_range(s, lo, hi, nt, s->pp->dims); break;
    }
    for (int t = 0; t < nt; t++)
        s->pp->part[(size_t)t * s->pp->nchunks + c]
            = chunk_sum(s->tdist[t], lo, hi);
}

/* cum = exact prefix sums of the chosen trial's distances; exact, so the
 * running total is only updated once per 4 samples */
static void prefix_chunk(void *ctx, size_t c)
{
    pass *s = ctx;
    const float *d = s->tdist[s->chosen];
    double *cum = s->pp->cum, run = s->pp->offset[c];
    int lo, hi, i;
    chunk_range(s->pp, c, &lo, &hi);
    for (i = lo; i + 4 <= hi; i += 4) {
        double a = d[i], b = a + d[i + 1], e = b + d[i + 2], f = e + d[i + 3];
        cum[i] = run + a;
        cum[i + 1] = run + b;
        cum[i + 2] = run + e;
        cum[i + 3] = run + f;
        run += f;
    }
    for (; i < hi; i++) {
        run += d[i];
        cum[i] = run;
    }
}

/* ---- serial fallbacks, cv's own loops ---------------------------------------------- */

/* for (ci = 0; ci < N-1; ci++) { p -= dist[ci]; if (p <= 0) break; }
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

/* first i in [0, n-2] with cum[i] >= p, else n - 1 */
static int search_exact(const double *cum, int n, double p)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (cum[mid] >= p)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static double sum_serial(const float *d, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += d[i];
    return s;
}

/* ---- the algorithm ------------------------------------------------------------------ */

static double sum_parts(const kms_pp *pp, int t)
{
    double s = 0;
    for (size_t c = 0; c < pp->nchunks; c++)
        s += pp->part[(size_t)t * pp->nchunks + c];
    return s;
}

/* Trial sum: exact chunk sums combined, or cv's serial sum. */
static double trial_sum(const kms_pp *pp, const pass *s, int t, int exact)
{
    return exact ? sum_parts(pp, t) : sum_serial(s->tdist[t], pp->n);
}

static void make_prefix(kms_pp *pp, pass *s, int t)
{
    double off = 0;
    for (size_t c = 0; c < pp->nchunks; c++) {
        pp->offset[c] = off;
        off += pp->part[(size_t)t * pp->nchunks + c];
    }
    s->chosen = t;
    kms_pool_run(pp->pool, pp->nchunks, prefix_chunk, s);
}

/* dist from the first centre: one trial against an infinite "dist" */
static double first_centre(kms_pp *pp, pass *s, int *exact)
{
    float *inf = pp->buf + (size_t)TRIALS * pp->n;
    for (int i = 0; i < pp->n; i++)
        inf[i] = INFINITY; /* min(d, inf) == d, d = inf included */
    s->dist = inf;
    s->tdist[0] = pp->buf;
    s->ntrials = 1;
    kms_pool_run(pp->pool, pp->nchunks, trials_chunk, s);
    s->dist = pp->buf;
    double sum0 = sum_parts(pp, 0);
    *exact = pp->integral && sum0 < EXACT_LIMIT;
    if (!*exact)
        return sum_serial(s->dist, pp->n);
    make_prefix(pp, s, 0);
    return sum0;
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
        double p[TRIALS], best_sum = DBL_MAX;
        int f = 0, best = -1;
        for (int t = 0; t <= TRIALS; t++) /* the 3 buffers that are not dist */
            if (pp->buf + (size_t)t * n != s.dist)
                s.tdist[f++] = pp->buf + (size_t)t * n;
        for (int t = 0; t < TRIALS; t++)
            p[t] = kms_rng_uniform_double(rng, 0.0, 1.0) * sum0;
        if (exact)
            for (int t = 0; t < TRIALS; t++)
                s.ci[t] = search_exact(pp->cum, n, p[t]);
        else
            search_serial(s.dist, n, p, s.ci);
        s.ntrials = TRIALS;
        kms_pool_run(pp->pool, pp->nchunks, trials_chunk, &s);
        for (int t = 0; t < TRIALS; t++) {
            double sum = trial_sum(pp, &s, t, exact);
            if (sum < best_sum) {
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
        if (exact && k + 1 < pp->k)
            make_prefix(pp, &s, best);
        s.dist = s.tdist[best];
    }
    for (int k = 0; k < pp->k; k++)
        memcpy(centers + (size_t)k * pp->dims,
               pp->x + (size_t)pp->idx[k] * pp->dims,
               sizeof *centers * (size_t)pp->dims);
    return KMS_OK;
}
