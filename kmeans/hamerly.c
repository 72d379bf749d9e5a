/* Hamerly's bounded assignment (G. Hamerly, "Making k-means even faster",
 * SDM 2010), made exact for float distances.
 *
 * Bounds live in double and are bounds on the EXACT Euclidean distance:
 * upper[i] >= |x_i - c_a| for the sample's own centre a, lower[i] <= |x_i - c_j|
 * for every other centre j. kms_dist2 (a float sum, what cv::kmeans uses) is
 * within a relative GAMMA of the exact squared distance, so when
 *     upper^2 (1 + GAMMA) + TINY < lower^2 (1 - GAMMA) - TINY
 * the float distance to a is strictly the smallest and the full scan would
 * pick a too, whatever the tie rule. Every double operation on a bound is
 * rounded outwards by a few ulps (UP/DOWN). */
#include "kmeans_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

enum {
    CHUNK = 4096,   /* samples per chunk: fixed, never thread-dependent */
    MULTI_MAX = 64  /* up to this many centres, scan all at once */
};

#define UP(v) ((v) * (1.0 + 4 * DBL_EPSILON))
#define DOWN(v) ((v) * (1.0 - 4 * DBL_EPSILON))

struct kms_hamerly {
    size_t n;
    int k, dims, kpad;
    float *ct;      /* centres transposed for kms_dist2_multi */
    double gamma;   /* relative error bound of kms_dist2 (twice the proof) */
    double tiny;    /* absolute error bound from float underflow */
    double cslack;  /* relative error of a centre distance computed in double */
    double inv_lo;  /* >= 1 / (1 - gamma) */
    double inv_hi;  /* <= 1 / (1 + gamma) */
    double c1, tau; /* lo > u c1 + tau implies the squared test below */
    double *upper, *lower;
    double *delta;  /* per centre: upper bound of its last move */
    double *drop;   /* per centre: largest move of the OTHER centres */
    double *sep;    /* per centre: lower bound of the distance to the nearest
                       other centre */
    uint64_t *count; /* per chunk: distance evaluations */
    uint64_t total;
};

typedef struct step_ctx {
    kms_hamerly *h;
    const float *x, *centers;
    int32_t *labels;
    double dmax1, dmax2; /* largest and second largest centre moves */
    int imax;            /* centre with the largest move */
    int full;            /* 1: full scan of every sample */
} step_ctx;

kms_hamerly *kms_hamerly_create(size_t n, int k, int dims)
{
    kms_hamerly *h = calloc(1, sizeof *h);
    size_t nchunks = (n + CHUNK - 1) / CHUNK;
    if (!h)
        return NULL;
    h->n = n;
    h->k = k;
    h->dims = dims;
    h->kpad = kms_kpad(k);
    /* n terms, each (x - c)^2 rounded twice, summed: relative error below
     * (dims + 2) u with u = 2^-24; doubled for comfort */
    h->gamma = 2.0 * (dims + 3) * ldexp(1.0, -24);
    h->tiny = 4.0 * dims * FLT_MIN;
    h->cslack = (dims + 8) * DBL_EPSILON;
    h->inv_lo = UP(1.0 / (1.0 - h->gamma));
    h->inv_hi = DOWN(1.0 / (1.0 + h->gamma));
    /* lo >= u c1 + tau with c1^2 = (1+g)/(1-g), tau^2 = 2 tiny/(1-g) gives
     * lo^2 (1-g) >= u^2 (1+g) + 2 tiny; the factors 16 eps and 2 cover the
     * rounding of the test itself */
    h->c1 = sqrt((1.0 + h->gamma) / (1.0 - h->gamma)) * (1.0 + 16 * DBL_EPSILON);
    h->tau = 2.0 * sqrt(2.0 * h->tiny / (1.0 - h->gamma));
    h->upper = malloc(sizeof *h->upper * n);
    h->lower = malloc(sizeof *h->lower * n);
    h->delta = malloc(sizeof *h->delta * (size_t)k);
    h->drop = malloc(sizeof *h->drop * (size_t)k);
    h->sep = malloc(sizeof *h->sep * (size_t)k);
    h->ct = malloc(sizeof *h->ct * (size_t)h->kpad * (size_t)dims);
    h->count = calloc(nchunks ? nchunks : 1, sizeof *h->count);
    if (!h->upper || !h->lower || !h->delta || !h->drop || !h->sep || !h->ct || !h->count) {
        kms_hamerly_destroy(h);
        return NULL;
    }
    return h;
}

void kms_hamerly_destroy(kms_hamerly *h)
{
    if (!h)
        return;
    free(h->upper);
    free(h->lower);
    free(h->delta);
    free(h->drop);
    free(h->sep);
    free(h->ct);
    free(h->count);
    free(h);
}

void kms_hamerly_invalidate(kms_hamerly *h, size_t i)
{
    h->upper[i] = INFINITY;
    h->lower[i] = 0;
}

uint64_t kms_hamerly_distances(const kms_hamerly *h)
{
    return h->total;
}

/* Exact-distance bounds from a float squared distance. */
static double upper_of(const kms_hamerly *h, float d2)
{
    return UP(sqrt(UP(((double)d2 + h->tiny) * h->inv_lo)));
}

static double lower_of(const kms_hamerly *h, double d2)
{
    double v = DOWN((d2 - h->tiny) * h->inv_hi);
    return v > 0 ? DOWN(sqrt(v)) : 0;
}

/* 1 when the float distance to the own centre is surely the unique minimum:
 * u^2 (1 + GAMMA) + TINY < lo^2 (1 - GAMMA) - TINY */
static int surely_nearest(const kms_hamerly *h, double u, double lo)
{
    return lo > u * h->c1 + h->tau;
}

/* cv::kmeans's scan plus the bounds. cv compares double(dist) with
 * "min_dist > dist" from DBL_MAX: for float distances that is the float
 * comparison from +inf (first minimum wins, an infinite distance never). */
KMS_INLINE void scan(kms_hamerly *h, const float *xi, const float *centers,
                     size_t i, int32_t *label, int dims)
{
    float best = INFINITY, second = INFINITY, d[MULTI_MAX];
    int k_best = 0, k = h->k, multi = dims < 16 && k <= MULTI_MAX;
    if (multi)
        kms_dist2_multi(xi, h->ct, h->kpad, dims, d);
    for (int j = 0; j < k; j++) {
        float dj = multi ? d[j] : kms_dist2(xi, centers + (size_t)j * dims, dims);
        float hi = best > dj ? best : dj;
        second = second < hi ? second : hi;
        k_best = best > dj ? j : k_best;
        best = best > dj ? dj : best;
    }
    *label = k_best;
    h->upper[i] = upper_of(h, best);
    h->lower[i] = lower_of(h, second);
}

/* A sample whose loose bounds failed: tighten the upper bound with the real
 * distance, else rescan. Returns the distances evaluated. */
KMS_INLINE int recheck(kms_hamerly *h, const step_ctx *s, size_t i, double l,
                       int dims)
{
    const float *xi = s->x + i * (size_t)dims;
    int a = s->labels[i];
    double u = upper_of(h, kms_dist2(xi, s->centers + (size_t)a * dims, dims));
    double lo = DOWN(h->sep[a] - u);
    if (surely_nearest(h, u, lo > l ? lo : l)) {
        h->upper[i] = u;
        h->lower[i] = l;
        return 1;
    }
    scan(h, xi, s->centers, i, &s->labels[i], dims);
    return 1 + h->k;
}

/* Bounded step over [lo, hi): most samples only move their bounds. */
KMS_INLINE uint64_t step_range(kms_hamerly *h, const step_ctx *s, size_t lo,
                               size_t hi, int dims)
{
    double *restrict upper = h->upper, *restrict lower = h->lower;
    const double *delta = h->delta, *drop = h->drop, *sep = h->sep;
    const int32_t *labels = s->labels;
    const double c1 = h->c1, tau = h->tau;
    uint64_t count = 0;
    for (size_t i = lo; i < hi; i++) {
        int a = labels[i];
        double u = UP(upper[i] + delta[a]);
        double l = DOWN(lower[i] - drop[a]);
        l = l > 0 ? l : 0;
        double lb = DOWN(sep[a] - u);
        lb = lb > l ? lb : l;
        if (lb > u * c1 + tau) { /* surely_nearest, inlined */
            upper[i] = u;
            lower[i] = l;
            continue;
        }
        count += (uint64_t)recheck(h, s, i, l, dims);
    }
    return count;
}

/* dims is a parameter so the switch in run_chunk specialises the loop body */
KMS_INLINE uint64_t chunk_loop(step_ctx *s, size_t lo, size_t hi, int dims)
{
    kms_hamerly *h = s->h;
    if (!s->full)
        return step_range(h, s, lo, hi, dims);
    for (size_t i = lo; i < hi; i++)
        scan(h, s->x + i * (size_t)dims, s->centers, i, &s->labels[i], dims);
    return (uint64_t)h->k * (hi - lo);
}

static void run_chunk(void *ctx, size_t c)
{
    step_ctx *s = ctx;
    size_t lo = c * CHUNK, hi = lo + CHUNK < s->h->n ? lo + CHUNK : s->h->n;
    uint64_t count;
    switch (s->h->dims) {
    case 1: count = chunk_loop(s, lo, hi, 1); break;
    case 3: count = chunk_loop(s, lo, hi, 3); break;
    default: count = chunk_loop(s, lo, hi, s->h->dims); break;
    }
    s->h->count[c] = count;
}

static void run_all(step_ctx *s, kms_pool *pool)
{
    kms_hamerly *h = s->h;
    size_t nchunks = (h->n + CHUNK - 1) / CHUNK;
    kms_pool_run(pool, nchunks, run_chunk, s);
    for (size_t c = 0; c < nchunks; c++)
        h->total += h->count[c];
}

void kms_hamerly_full(kms_hamerly *h, const float *x, const float *centers,
                      int32_t *labels, kms_pool *pool)
{
    step_ctx s = {h, x, centers, labels, 0, 0, -1, 1};
    kms_transpose(centers, h->k, h->dims, h->ct);
    run_all(&s, pool);
}

/* Exact distance between two float centres, computed in double. */
static double center_dist(const float *a, const float *b, int dims)
{
    double s = 0;
    for (int j = 0; j < dims; j++) {
        double t = (double)a[j] - (double)b[j];
        s += t * t;
    }
    return sqrt(s);
}

static void centre_moves(kms_hamerly *h, const float *old,
                         const float *centers, step_ctx *s)
{
    int k = h->k, dims = h->dims;
    s->dmax1 = s->dmax2 = 0;
    s->imax = -1;
    for (int j = 0; j < k; j++) {
        size_t o = (size_t)j * dims;
        double d = center_dist(old + o, centers + o, dims) * (1 + h->cslack);
        h->delta[j] = d;
        if (d > s->dmax1) {
            s->dmax2 = s->dmax1;
            s->dmax1 = d;
            s->imax = j;
        } else if (d > s->dmax2) {
            s->dmax2 = d;
        }
    }
    for (int a = 0; a < k; a++) {
        double m = INFINITY;
        for (int j = 0; j < k; j++) {
            if (j == a)
                continue;
            double d = center_dist(centers + (size_t)a * dims,
                                   centers + (size_t)j * dims, dims);
            m = d < m ? d : m;
        }
        h->sep[a] = m * (1 - h->cslack);
        h->drop[a] = a == s->imax ? s->dmax2 : s->dmax1;
    }
}

void kms_hamerly_step(kms_hamerly *h, const float *x, const float *old,
                      const float *centers, int32_t *labels, kms_pool *pool)
{
    step_ctx s = {h, x, centers, labels, 0, 0, -1, 0};
    centre_moves(h, old, centers, &s);
    kms_transpose(centers, h->k, h->dims, h->ct);
    run_all(&s, pool);
}
