/* Hamerly's bounded assignment (G. Hamerly, "Making k-means even faster",
 * SDM 2010), made exact for float distances.
 *
 * The bounds are bounds on the EXACT Euclidean distance: upper[i] >=
 * |x_i - c_a| for the sample's own centre a, lower[i] <= |x_i - c_j| for every
 * other centre j. kms_dist2 (a float sum, what cv::kmeans compares) is within
 * a relative GAMMA (plus an absolute TINY for underflow) of the exact squared
 * distance, so when
 *     upper^2 (1 + GAMMA) + TINY < lower^2 (1 - GAMMA) - TINY
 * the float distance to a is strictly the smallest: the full scan would pick
 * a too, whatever its tie rule. The bounds are floats (4 per SIMD register);
 * every operation on them is rounded outwards by the factors UPF / DNF,
 * which exceed the rounding error of the few operations before each. */
#include "kmeans_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

#if KMS_VECTOR && defined(__SSE__)
#include <xmmintrin.h>
#endif

enum { CHUNK = 4096 }; /* samples per chunk: fixed, never thread-dependent */

#define UPF (1.0f + 0x1p-21f) /* covers up to 7 float roundings */
#define DNF (1.0f - 0x1p-21f)

struct kms_hamerly {
    size_t n;
    int k, dims, kpad;
    float *ct;      /* centres transposed, for rescans (kms_dist2_multi) */
    float tiny;     /* absolute error bound of kms_dist2 from underflow */
    float inv_lo;   /* >= 1 / (1 - GAMMA) */
    float inv_hi;   /* <= 1 / (1 + GAMMA) */
    float c1, tau;  /* lo > u c1 + tau implies the squared test above */
    double cslack;  /* relative error of a centre distance computed in double */
    float *upper, *lower;
    float *delta;   /* per centre: upper bound of its last move */
    float *drop;    /* per centre: largest move of the OTHER centres */
    float *sep;     /* per centre: lower bound of the distance to the nearest
                       other centre */
    uint64_t *count; /* per chunk: distance evaluations */
    uint64_t total;
};

typedef struct step_ctx {
    kms_hamerly *h;
    const float *x, *centers;
    int32_t *labels;
    int full;            /* 1: full scan of every sample */
} step_ctx;

/* Float of a double, rounded up (dir > 0) or down by more than its error. */
static float outward(double v, int dir)
{
    return (float)(v * (dir > 0 ? 1 + 0x1p-20 : 1 - 0x1p-20));
}

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
    /* dims terms, each (x - c)^2 rounded twice, summed: relative error below
     * (dims + 2) 2^-24; doubled for comfort */
    double gamma = 2.0 * (dims + 3) * 0x1p-24;
    h->tiny = 4.0f * (float)dims * FLT_MIN;
    h->inv_lo = outward(1.0 / (1.0 - gamma), 1);
    h->inv_hi = outward(1.0 / (1.0 + gamma), -1);
    /* lo >= u c1 + tau with c1^2 = (1+g)/(1-g), tau^2 = 2 tiny/(1-g) gives
     * lo^2 (1-g) >= u^2 (1+g) + 2 tiny; outward() and the factor 2 cover the
     * float rounding of the test itself */
    h->c1 = outward(sqrt((1.0 + gamma) / (1.0 - gamma)), 1);
    h->tau = (float)(2.0 * sqrt(2.0 * h->tiny / (1.0 - gamma)));
    h->cslack = (dims + 8) * DBL_EPSILON;
    h->upper = malloc(sizeof *h->upper * (n + 4));
    h->lower = malloc(sizeof *h->lower * (n + 4));
    h->delta = malloc(sizeof *h->delta * (size_t)k);
    h->drop = malloc(sizeof *h->drop * (size_t)k);
    h->sep = malloc(sizeof *h->sep * (size_t)k);
    h->ct = malloc(sizeof *h->ct * (size_t)h->kpad * (size_t)dims);
    h->count = calloc(nchunks ? nchunks : 1, sizeof *h->count);
    if (!h->upper || !h->lower || !h->delta || !h->drop || !h->sep
        || !h->ct || !h->count) {
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

/* ---- bounds from float squared distances ------------------------------------------ */

static float upper_of(const kms_hamerly *h, float d2)
{
    return sqrtf((d2 + h->tiny) * h->inv_lo * UPF) * UPF;
}

static float lower_of(const kms_hamerly *h, float d2)
{
    float v = (d2 - h->tiny) * h->inv_hi * DNF;
    return v > 0 ? sqrtf(v) * DNF : 0;
}

/* 1 when the float distance to the own centre is surely the unique minimum */
static int surely_nearest(const kms_hamerly *h, float u, float lo)
{
    return lo > u * h->c1 + h->tau;
}

#if KMS_VECTOR
static inline kms_v4f sqrt4(kms_v4f v)
{
#if defined(__SSE__)
    return (kms_v4f)_mm_sqrt_ps((__m128)v);
#else
    return (kms_v4f){sqrtf(v[0]), sqrtf(v[1]), sqrtf(v[2]), sqrtf(v[3])};
#endif
}

static inline kms_v4f max0(kms_v4f v)
{
    kms_v4f zero = {0, 0, 0, 0};
    return kms_blend4(v > zero, v, zero);
}
#endif

/* ---- full scan --------------------------------------------------------------------- */

/* cv::kmeans's scan (first minimum, float comparison from +inf, which is cv's
 * "min_dist > dist" in double from DBL_MAX) plus the bounds. */
KMS_INLINE void scan_one(kms_hamerly *h, const float *xi, const float *centers,
                         size_t i, int32_t *label, int dims)
{
    enum { MULTI_MAX = 64 };
    float best = INFINITY, second = INFINITY, d[MULTI_MAX];
    int k_best = 0, multi = dims < 16 && h->k <= MULTI_MAX;
    if (multi)
        kms_dist2_multi(xi, h->ct, h->kpad, dims, d);
    for (int j = 0; j < h->k; j++) {
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

/* Four samples from i: labels and bounds. */
KMS_INLINE void scan4(kms_hamerly *h, const step_ctx *s, size_t i, int dims)
{
    kms_near4 nb;
    kms_nearest4(s->x + i * (size_t)dims, s->centers, h->k, dims, &nb);
    memcpy(s->labels + i, nb.label, sizeof nb.label);
#if KMS_VECTOR
    kms_v4f best, second;
    memcpy(&best, nb.best, sizeof best);
    memcpy(&second, nb.second, sizeof second);
    kms_v4f u = sqrt4((best + h->tiny) * h->inv_lo * UPF) * UPF;
    kms_v4f v = max0((second - h->tiny) * h->inv_hi * DNF);
    kms_v4f l = sqrt4(v) * DNF;
    memcpy(h->upper + i, &u, sizeof u);
    memcpy(h->lower + i, &l, sizeof l);
#else
    for (int l = 0; l < 4; l++) {
        h->upper[i + l] = upper_of(h, nb.best[l]);
        h->lower[i + l] = lower_of(h, nb.second[l]);
    }
#endif
}

KMS_INLINE uint64_t full_range(kms_hamerly *h, const step_ctx *s, size_t lo,
                               size_t hi, int dims)
{
    size_t i = lo;
    for (; dims < 16 && i + 4 <= hi; i += 4)
        scan4(h, s, i, dims);
    for (; i < hi; i++)
        scan_one(h, s->x + i * (size_t)dims, s->centers, i, &s->labels[i],
                 dims);
    return (uint64_t)h->k * (hi - lo);
}

/* ---- bounded step ------------------------------------------------------------------- */

/* A sample whose loose bounds failed: tighten the upper bound with the real
 * distance, else rescan. Returns the distances evaluated. */
KMS_INLINE int recheck(kms_hamerly *h, const step_ctx *s, size_t i, int dims)
{
    int a = s->labels[i];
    const float *xi = s->x + i * (size_t)dims;
    float l = h->lower[i];
    float u = upper_of(h, kms_dist2(xi, s->centers + (size_t)a * dims, dims));
    float lb = (h->sep[a] - u) * DNF;
    if (surely_nearest(h, u, lb > l ? lb : l)) {
        h->upper[i] = u;
        return 1;
    }
    scan_one(h, xi, s->centers, i, &s->labels[i], dims);
    return 1 + h->k;
}

/* Moves the bounds of sample i; returns 1 when its label is surely kept. */
static int move_one(kms_hamerly *h, int a, size_t i)
{
    float u = (h->upper[i] + h->delta[a]) * UPF;
    float l = (h->lower[i] - h->drop[a]) * DNF;
    l = l > 0 ? l : 0;
    float lb = (h->sep[a] - u) * DNF;
    h->upper[i] = u;
    h->lower[i] = l;
    return surely_nearest(h, u, lb > l ? lb : l);
}

/* Moves the bounds of samples i..i+3; returns a bit per sample to recheck. */
static inline int move4(kms_hamerly *h, const int32_t *lab, size_t i)
{
#if KMS_VECTOR
    kms_v4f u, l;
    kms_v4f da = {h->delta[lab[0]], h->delta[lab[1]], h->delta[lab[2]],
                  h->delta[lab[3]]};
    kms_v4f dr = {h->drop[lab[0]], h->drop[lab[1]], h->drop[lab[2]],
                  h->drop[lab[3]]};
    kms_v4f sp = {h->sep[lab[0]], h->sep[lab[1]], h->sep[lab[2]],
                  h->sep[lab[3]]};
    memcpy(&u, h->upper + i, sizeof u);
    memcpy(&l, h->lower + i, sizeof l);
    u = (u + da) * UPF;
    l = max0((l - dr) * DNF);
    kms_v4f lb = (sp - u) * DNF;
    lb = kms_blend4(lb > l, lb, l);
    kms_v4i ok = lb > u * h->c1 + h->tau;
    memcpy(h->upper + i, &u, sizeof u);
    memcpy(h->lower + i, &l, sizeof l);
    return (ok[0] ? 0 : 1) | (ok[1] ? 0 : 2) | (ok[2] ? 0 : 4) | (ok[3] ? 0 : 8);
#else
    int fail = 0;
    for (int b = 0; b < 4; b++)
        fail |= move_one(h, lab[b], i + b) ? 0 : 1 << b;
    return fail;
#endif
}

KMS_INLINE uint64_t step_range(kms_hamerly *h, const step_ctx *s, size_t lo,
                               size_t hi, int dims)
{
    uint64_t count = 0;
    size_t i = lo;
    for (; i + 4 <= hi; i += 4) {
        int fail = move4(h, s->labels + i, i);
        for (int b = 0; fail; b++, fail >>= 1)
            if (fail & 1)
                count += (uint64_t)recheck(h, s, i + (size_t)b, dims);
    }
    for (; i < hi; i++)
        if (!move_one(h, s->labels[i], i))
            count += (uint64_t)recheck(h, s, i, dims);
    return count;
}

/* ---- driver ------------------------------------------------------------------------- */

KMS_INLINE uint64_t range(kms_hamerly *h, const step_ctx *s, size_t lo,
                          size_t hi, int dims)
{
    return s->full ? full_range(h, s, lo, hi, dims)
                   : step_range(h, s, lo, hi, dims);
}

static void run_chunk(void *ctx, size_t c)
{
    step_ctx *s = ctx;
    kms_hamerly *h = s->h;
    size_t lo = c * CHUNK, hi = lo + CHUNK < h->n ? lo + CHUNK : h->n;
    uint64_t count;
    switch (h->dims) { /* constant dims for the distance kernels */
    case 1: count = range(h, s, lo, hi, 1); break;
    case 2: count = range(h, s, lo, hi, 2); break;
    case 3: count = range(h, s, lo, hi, 3); break;
    case 4: count = range(h, s, lo, hi, 4); break;
    default: count = range(h, s, lo, hi, h->dims); break;
    }
    h->count[c] = count;
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
    step_ctx s = {h, x, centers, labels, 1};
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

/* delta, drop and sep for the centres that moved from old to centers. */
static void centre_moves(kms_hamerly *h, const float *old,
                         const float *centers)
{
    int k = h->k, dims = h->dims, imax = -1;
    double dmax1 = 0, dmax2 = 0;
    for (int j = 0; j < k; j++) {
        size_t o = (size_t)j * dims;
        double d = center_dist(old + o, centers + o, dims) * (1 + h->cslack);
        h->delta[j] = outward(d, 1);
        if (d > dmax1) {
            dmax2 = dmax1;
            dmax1 = d;
            imax = j;
        } else if (d > dmax2) {
            dmax2 = d;
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
        h->sep[a] = outward(m * (1 - h->cslack), -1);
        h->drop[a] = outward(a == imax ? dmax2 : dmax1, 1);
    }
}

void kms_hamerly_step(kms_hamerly *h, const float *x, const float *old,
                      const float *centers, int32_t *labels, kms_pool *pool)
{
    step_ctx s = {h, x, centers, labels, 0};
    centre_moves(h, old, centers);
    kms_transpose(centers, h->k, h->dims, h->ct);
    run_all(&s, pool);
}
