/* cv::kmeans, reimplemented from OpenCV 4.6 modules/core/src/kmeans.cpp so
 * that the same seed gives the same answer: same RNG draws in the same order
 * (one generator across attempts), same float/double types, same summation
 * orders, same stopping rule. Only the label assignment differs in HOW it is
 * computed (Hamerly bounds, threads), never in its result. */
#include "kmeans_internal.h"

#include <float.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum { CHUNK = 4096 }; /* samples per parallel chunk, fixed */

/* ---- instruction set ------------------------------------------------------------ */

static int simd_forced_off;

int kms_simd_avx2(void)
{
#if KMS_HAVE_AVX2
    return !simd_forced_off && __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

void kms_simd_force(int avx2)
{
    simd_forced_off = !avx2;
}

typedef struct lloyd {
    /* input */
    const float *x;
    int n, dims, k;
    kms_km_init init;
    kms_lloyd_assign assign;
    int max_count;     /* cv: criteria.maxCount after clamping */
    double eps2;       /* cv: criteria.epsilon squared */
    int attempts;
    kms_rng rng;       /* cv: theRNG(), shared by all attempts */
    /* state */
    float *centers, *old_centers, *temp; /* k*dims, k*dims, dims */
    int32_t *labels;                     /* working labels */
    int32_t *own_labels;                 /* labels when allocated here */
    int *counters;
    double *dists;     /* n / 4 sums of 4 distances (compactness_of); the
                          k-means++ buffer with PP init (fresh pages cost
                          as much as a pass over them) */
    float *box;        /* dims pairs (min, max), RANDOM init only */
    kms_pp *pp;        /* k-means++ workspace, PP init only */
    int groups;        /* cluster groups summed in parallel */
    size_t gstride;    /* floats (and ints) per group, cache-line padded */
    float *gsum;       /* groups * gstride */
    int *gcount;       /* groups * gstride */
    kms_hamerly *ham;
    kms_pool *pool;
    int avx2;          /* kms_simd_avx2() at the start */
    int short_runs;    /* runs_are_short of this attempt, -1: not known */
    int presummed;     /* group 0 of gsum/gcount holds the sums of the
                          labels (fused assignment) */
    atomic_size_t *summed; /* fused assignment, per group: chunks summed */
} lloyd;

/* ---- setup ------------------------------------------------------------------ */

/* cv::kmeans's criteria handling, K == 1 special case included. */
static void set_criteria(lloyd *l, const kms_kmeans_params *p)
{
    double eps = FLT_EPSILON;
    if (p->criteria & KMS_KM_TERM_EPS)
        eps = p->epsilon < 0. ? 0. : p->epsilon; /* std::max(epsilon, 0.) */
    l->eps2 = eps * eps;
    l->max_count = 100;
    if (p->criteria & KMS_KM_TERM_COUNT)
        l->max_count = p->max_iter < 2 ? 2 : p->max_iter > 100 ? 100 : p->max_iter;
    l->attempts = p->attempts;
    if (p->k == 1) {
        l->attempts = 1;
        l->max_count = 2;
    }
}

/* The bounded path needs float distances far from overflow. */
static int bounded_is_safe(const lloyd *l)
{
    size_t total = (size_t)l->n * (size_t)l->dims;
    for (size_t i = 0; i < total; i++)
        if (fabsf(l->x[i]) > 1e15f)
            return 0;
    return l->k >= 2;
}

static kms_lloyd_assign choose_assign(const lloyd *l, kms_lloyd_assign want)
{
    switch (want) {
    case KMS_LLOYD_AUTO:
        /* Colour (dims 3): the vectorised scan beat the bounds at every K
         * up to 32 on photos of 1024^2 (bench_colour), 8 lanes more so. */
        if (l->dims < 2 || l->k < 6 || (l->dims <= 4 && l->k <= 32))
            return KMS_LLOYD_PLAIN;
        return bounded_is_safe(l) ? KMS_LLOYD_BOUNDED : KMS_LLOYD_PLAIN;
    case KMS_LLOYD_BOUNDED:
        return bounded_is_safe(l) ? KMS_LLOYD_BOUNDED : KMS_LLOYD_PLAIN;
    case KMS_LLOYD_PLAIN:
        return KMS_LLOYD_PLAIN;
    default:
        abort();
    }
}

static kms_status lloyd_alloc(lloyd *l, int threads)
{
    size_t kd = (size_t)l->k * (size_t)l->dims, n = (size_t)l->n;
    l->centers = calloc(kd, sizeof *l->centers);
    l->old_centers = calloc(kd, sizeof *l->old_centers);
    l->temp = calloc((size_t)l->dims, sizeof *l->temp);
    if (!l->labels) /* else the caller's (one attempt) */
        l->labels = l->own_labels = calloc(n, sizeof *l->labels);
    l->counters = calloc((size_t)l->k, sizeof *l->counters);
    if (l->init != KMS_KM_INIT_PP) /* else the k-means++ buffer */
        l->dists = calloc(n / 4 + 1, sizeof *l->dists);
    if (!l->centers || !l->old_centers || !l->temp || !l->labels
        || !l->counters || (l->init != KMS_KM_INIT_PP && !l->dists))
        return KMS_ERR_NOMEM;
    if (l->init != KMS_KM_INIT_PP
        && !(l->box = malloc(sizeof *l->box * 2 * (size_t)l->dims)))
        return KMS_ERR_NOMEM;
    if (l->assign == KMS_LLOYD_BOUNDED
        && !(l->ham = kms_hamerly_create(n, l->k, l->dims)))
        return KMS_ERR_NOMEM;
    if (!(l->pool = kms_pool_create(threads)))
        return KMS_ERR_NOMEM;
    l->groups = kms_pool_threads(l->pool) < l->k ? kms_pool_threads(l->pool)
                                                  : l->k;
    l->gstride = ((kd > (size_t)l->k ? kd : (size_t)l->k) + 15) / 16 * 16;
    /* 64-byte aligned blocks: no cache line shared between groups */
    l->gsum = aligned_alloc(64, sizeof *l->gsum * l->gstride * (size_t)l->groups);
    l->gcount = aligned_alloc(64, sizeof *l->gcount * l->gstride
                                      * (size_t)l->groups);
    l->summed = malloc(sizeof *l->summed * (size_t)l->groups);
    if (!l->gsum || !l->gcount || !l->summed)
        return KMS_ERR_NOMEM;
    if (l->init == KMS_KM_INIT_PP
        && !(l->pp = kms_pp_create(l->x, l->n, l->dims, l->k, l->pool)))
        return KMS_ERR_NOMEM;
    return KMS_OK;
}

static void lloyd_free(lloyd *l)
{
    free(l->centers);
    free(l->old_centers);
    free(l->temp);
    free(l->own_labels);
    free(l->counters);
    if (!l->pp) /* else the k-means++ buffer */
        free(l->dists);
    free(l->box);
    kms_pp_destroy(l->pp);
    free(l->gsum);
    free(l->gcount);
    free(l->summed);
    kms_hamerly_destroy(l->ham);
    kms_pool_destroy(l->pool);
}

static size_t nchunks(const lloyd *l)
{
    return ((size_t)l->n + CHUNK - 1) / CHUNK;
}

static const float *sample(const lloyd *l, int i)
{
    return l->x + (size_t)i * (size_t)l->dims;
}

/* ---- initial centres ------------------------------------------------------------- */

/* cv: box[j] = (min, max) of feature j, computed once before the attempts */
static void compute_box(lloyd *l)
{
    for (int j = 0; j < l->dims; j++)
        l->box[2 * j] = l->box[2 * j + 1] = l->x[j];
    for (int i = 1; i < l->n; i++)
        for (int j = 0; j < l->dims; j++) {
            float v = sample(l, i)[j];
            l->box[2 * j] = v < l->box[2 * j] ? v : l->box[2 * j];  /* std::min */
            l->box[2 * j + 1] = l->box[2 * j + 1] < v ? v : l->box[2 * j + 1];
        }
}

/* cv generateRandomCenter:
 *   center[j] = ((float)rng*(1.f+margin*2.f)-margin)*(box[j][1] - box[j][0])
 *               + box[j][0]; */
static void init_random(lloyd *l)
{
    float margin = 1.f / (float)l->dims;
    for (int k = 0; k < l->k; k++)
        for (int j = 0; j < l->dims; j++) {
            float u = kms_rng_uniform_float(&l->rng, 0.f, 1.f);
            float lo = l->box[2 * j], hi = l->box[2 * j + 1];
            l->centers[(size_t)k * l->dims + j]
                = (u * (1.f + margin * 2.f) - margin) * (hi - lo) + lo;
        }
}

/* ---- centre update ---------------------------------------------------------------- */

/* cv: an empty cluster k takes the farthest sample (last one on ties,
 * "max_dist <= dist") of the biggest cluster (first one on ties). Centres
 * still hold sums here. */
static void fill_empty(lloyd *l, int k)
{
    int dims = l->dims, max_k = 0;
    for (int k1 = 1; k1 < l->k; k1++)
        if (l->counters[max_k] < l->counters[k1])
            max_k = k1;
    float *base = l->centers + (size_t)max_k * dims;
    float scale = 1.f / (float)l->counters[max_k];
    for (int j = 0; j < dims; j++)
        l->temp[j] = base[j] * scale;
    double max_dist = 0;
    int farthest = -1;
    for (int i = 0; i < l->n; i++) {
        if (l->labels[i] != max_k)
            continue;
        double d = kms_dist2(sample(l, i), l->temp, dims);
        if (max_dist <= d) {
            max_dist = d;
            farthest = i;
        }
    }
    l->counters[max_k]--;
    l->counters[k]++;
    l->labels[farthest] = k;
    if (l->ham)
        kms_hamerly_invalidate(l->ham, (size_t)farthest);
    float *cur = l->centers + (size_t)k * dims;
    for (int j = 0; j < dims; j++) {
        base[j] -= sample(l, farthest)[j];
        cur[j] += sample(l, farthest)[j];
    }
}

typedef struct sum_ctx {
    lloyd *l;
    int groups;
    int masked;  /* short runs: sum_masked instead of sum_runs */
} sum_ctx;

/* Long runs of one label (images): accumulate a run in registers, the same
 * adds in the same order as cv, without a store-to-load chain per sample.
 * Only the clusters k with k % groups == g. */
KMS_INLINE void sum_runs(lloyd *l, int groups, int g, float *acc, int *cnt,
                         int dims, int lo, int hi)
{
    enum { MAXD = 4 };
    const int32_t *lab = l->labels;
    for (int i = lo; i < hi;) {
        int k = lab[i], start = i;
        if (k % groups != g) {
            while (++i < hi && lab[i] == k)
                ;
            continue;
        }
        float a[MAXD];
        float *c = acc + (size_t)k * dims;
        for (int j = 0; j < dims; j++)
            a[j] = c[j];
        do {
            const float *xi = sample(l, i);
            for (int j = 0; j < dims; j++)
                a[j] += xi[j];
        } while (++i < hi && lab[i] == k);
        for (int j = 0; j < dims; j++)
            c[j] = a[j];
        cnt[k] += i - start;
    }
}

/* any dims: the plain loop */
static void sum_plain(lloyd *l, int groups, int g, float *acc, int *cnt)
{
    int dims = l->dims;
    for (int i = 0; i < l->n; i++) {
        int k = l->labels[i];
        if (k % groups != g)
            continue;
        float *c = acc + (size_t)k * dims;
        const float *xi = sample(l, i);
        for (int j = 0; j < dims; j++)
            c[j] += xi[j];
        cnt[k]++;
    }
}

#if KMS_VECTOR
/* Short runs of labels (1-D data): every sample adds to all 8 lanes of an
 * accumulator, +0.0 outside its own cluster's lane. x + 0.0 == x for every
 * accumulator value (a sum that starts at +0.0 is never -0.0), so each lane
 * sees cv's additions in cv's order; no branch, no store-to-load chain.
 * k <= 8, dims <= 4. */
KMS_INLINE void sum_masked(lloyd *l, float *acc, int *cnt, int dims)
{
    const kms_v4i id0 = {0, 1, 2, 3}, id1 = {4, 5, 6, 7};
    kms_v4f a[4][2] = {{{0}}};
    kms_v4i c0 = {0, 0, 0, 0}, c1 = c0;
    for (int i = 0; i < l->n; i++) {
        int k = l->labels[i];
        kms_v4i m0 = id0 == k, m1 = id1 == k;
        const float *xi = sample(l, i);
        for (int j = 0; j < dims; j++) {
            kms_v4f v = {xi[j], xi[j], xi[j], xi[j]};
            a[j][0] += (kms_v4f)((kms_v4i)v & m0);
            a[j][1] += (kms_v4f)((kms_v4i)v & m1);
        }
        c0 -= m0; /* masks are -1 */
        c1 -= m1;
    }
    for (int k = 0; k < l->k; k++) {
        for (int j = 0; j < dims; j++)
            acc[(size_t)k * dims + j] = a[j][k / 4][k % 4];
        cnt[k] = k < 4 ? c0[k] : c1[k - 4];
    }
}

/* Average run length of equal labels below 4? (one cheap pass) */
static int runs_are_short(const lloyd *l)
{
    int changes = 0;
    for (int i = 1; i < l->n; i++)
        changes += l->labels[i] != l->labels[i - 1];
    return (double)changes * 4 > l->n;
}
#endif

/* Float sums of the clusters k with k % groups == g, each in sample order
 * as in cv, into the group's own scratch (no false sharing); the grouping
 * spreads clusters over threads without changing any sum. */
static void sum_group(void *ctx, size_t g)
{
    sum_ctx *s = ctx;
    lloyd *l = s->l;
    float *acc = l->gsum + g * l->gstride;
    int *cnt = l->gcount + g * l->gstride;
    memset(acc, 0, sizeof *acc * (size_t)l->k * l->dims);
    memset(cnt, 0, sizeof *cnt * (size_t)l->k);
#if KMS_VECTOR
    if (s->masked)
        switch (l->dims) {
        case 1: sum_masked(l, acc, cnt, 1); return;
        case 2: sum_masked(l, acc, cnt, 2); return;
        case 3: sum_masked(l, acc, cnt, 3); return;
        case 4: sum_masked(l, acc, cnt, 4); return;
        default: abort();
        }
#endif
    switch (l->dims) {
    case 1: sum_runs(l, s->groups, (int)g, acc, cnt, 1, 0, l->n); break;
    case 2: sum_runs(l, s->groups, (int)g, acc, cnt, 2, 0, l->n); break;
    case 3: sum_runs(l, s->groups, (int)g, acc, cnt, 3, 0, l->n); break;
    case 4: sum_runs(l, s->groups, (int)g, acc, cnt, 4, 0, l->n); break;
    default: sum_plain(l, s->groups, (int)g, acc, cnt); break;
    }
}

/* cv "compute centers": float sums in sample order, empty clusters filled,
 * then scaled by the float reciprocal. Returns the largest squared shift
 * (double of the float difference), or DBL_MAX when not measured. */
static double update_centers(lloyd *l, int measure_shift)
{
    int dims = l->dims;
    sum_ctx sc = {l, l->groups, 0};
    if (l->presummed) { /* the assignment summed already */
        l->presummed = 0;
    } else {
#if KMS_VECTOR
        /* how labels run is a property of the data: looked at once per
         * attempt (either way gives the same sums) */
        if (l->k <= 8 && dims <= 4 && l->short_runs < 0)
            l->short_runs = runs_are_short(l);
        if (l->k <= 8 && dims <= 4 && l->short_runs) {
            sc.groups = 1;
            sc.masked = 1;
        }
#endif
        kms_pool_run(l->pool, (size_t)sc.groups, sum_group, &sc);
    }
    for (int k = 0; k < l->k; k++) {
        size_t g = (size_t)(k % sc.groups) * l->gstride;
        memcpy(l->centers + (size_t)k * dims, l->gsum + g + (size_t)k * dims,
               sizeof *l->centers * (size_t)dims);
        l->counters[k] = l->gcount[g + (size_t)k];
    }
    for (int k = 0; k < l->k; k++)
        if (l->counters[k] == 0)
            fill_empty(l, k);
    double max_shift = measure_shift ? 0.0 : DBL_MAX;
    for (int k = 0; k < l->k; k++) {
        float *c = l->centers + (size_t)k * dims;
        const float *o = l->old_centers + (size_t)k * dims;
        float scale = 1.f / (float)l->counters[k];
        for (int j = 0; j < dims; j++)
            c[j] *= scale;
        if (!measure_shift)
            continue;
        double dist = 0;
        for (int j = 0; j < dims; j++) {
            double t = c[j] - o[j]; /* float difference, then double */
            dist += t * t;
        }
        max_shift = max_shift < dist ? dist : max_shift; /* std::max */
    }
    return max_shift;
}

/* ---- assignment ------------------------------------------------------------------- */

/* cv KMeansDistanceComputer<false>: first minimum, compared in double from
 * DBL_MAX, i.e. the float comparison from +inf. */
static int nearest_one(const lloyd *l, const float *xi)
{
    float min_dist = INFINITY;
    int k_best = 0;
    for (int k = 0; k < l->k; k++) {
        float d = kms_dist2(xi, l->centers + (size_t)k * l->dims, l->dims);
        k_best = min_dist > d ? k : k_best;
        min_dist = min_dist > d ? d : min_dist;
    }
    return k_best;
}

#if KMS_VECTOR
/* Labels of the 4 samples at i: cv's first minimum, 4 lanes. */
KMS_INLINE void label4(lloyd *l, int i, int dims)
{
    kms_v4f p[16], best = {INFINITY, INFINITY, INFINITY, INFINITY};
    kms_v4i label = {0, 0, 0, 0};
    kms_load4(sample(l, i), dims, p);
    for (int c = 0; c < l->k; c++) {
        kms_v4f d = kms_dist4v(p, l->centers + (size_t)c * dims, dims);
        kms_v4i lt = d < best;
        best = kms_blend4(lt, d, best);
        label = (lt & c) | (~lt & label);
    }
    memcpy(l->labels + i, &label, sizeof label);
}
#endif

KMS_INLINE void assign_range(lloyd *l, int lo, int hi, int dims)
{
    int i = lo;
#if KMS_VECTOR
    if (dims < 16) /* four samples per SIMD lane group, same results */
        for (; i + 4 <= hi; i += 4)
            label4(l, i, dims);
#else
    (void)dims;
#endif
    for (; i < hi; i++)
        l->labels[i] = nearest_one(l, sample(l, i));
}

#if KMS_HAVE_AVX2
/* assign_range with 8 samples per AVX2 register, dims 1..4 */
static inline __attribute__((always_inline, target("avx2"))) void
assign_range8(lloyd *l, int lo, int hi, int dims)
{
    int i = lo;
    for (; i + 8 <= hi; i += 8) {
        kms_v8f p[16], best;
        kms_v8i label = {0, 0, 0, 0, 0, 0, 0, 0};
        kms_load8(sample(l, i), dims, p);
        best = kms_dist8v(p, l->centers, dims); /* centre 0 wins over +inf */
        for (int c = 1; c < l->k; c++) {
            kms_v8f d = kms_dist8v(p, l->centers + (size_t)c * dims, dims);
            kms_v8i lt = d < best;
            best = kms_blend8(lt, d, best);
            label = (lt & c) | (~lt & label);
        }
        memcpy(l->labels + i, &label, sizeof label);
    }
    for (; i < hi; i++)
        l->labels[i] = nearest_one(l, sample(l, i));
}

KMS_AVX2_FN static void assign_chunk8(lloyd *l, int lo, int hi)
{
    switch (l->dims) {
    case 1: assign_range8(l, lo, hi, 1); break;
    case 2: assign_range8(l, lo, hi, 2); break;
    case 3: assign_range8(l, lo, hi, 3); break;
    case 4: assign_range8(l, lo, hi, 4); break;
    default: abort();
    }
}
#endif

static void assign_chunk(void *ctx, size_t c)
{
    lloyd *l = ctx;
    int lo = (int)(c * CHUNK), hi = lo + CHUNK < l->n ? lo + CHUNK : l->n;
#if KMS_HAVE_AVX2
    if (l->avx2 && l->dims <= 4) {
        assign_chunk8(l, lo, hi);
        return;
    }
#endif
    switch (l->dims) { /* constant dims lets the compiler unroll kms_dist2 */
    case 1: assign_range(l, lo, hi, 1); break;
    case 2: assign_range(l, lo, hi, 2); break;
    case 3: assign_range(l, lo, hi, 3); break;
    case 4: assign_range(l, lo, hi, 4); break;
    default: assign_range(l, lo, hi, l->dims); break;
    }
}

/* Fused assignment and summation: a chunk is labelled (in parallel), then
 * its samples are added to the cluster sums in order, chunk after chunk,
 * while it is still in cache: the sums are cv's, sample after sample, and
 * the samples are read once per iteration instead of twice. Each group of
 * clusters (as in sum_group) is its own pipeline, so threads sum different
 * groups of neighbouring chunks at once. Chunks are taken in increasing
 * order, so the chunk waited for is always being run by a thread that
 * waits only for earlier ones. */
static int can_fuse(const lloyd *l)
{
    if (l->dims > 4)
        return 0;
#if KMS_VECTOR
    if (l->k <= 8 && l->short_runs != 0) /* sum_masked, or not known yet */
        return 0;
#endif
    return 1;
}

static void wait_turn(const atomic_size_t *summed, size_t c)
{
    for (unsigned spin = 0;
         atomic_load_explicit(summed, memory_order_acquire) != c; spin++)
        if (spin > 200) /* the thread summing before us lost its core */
            sched_yield();
}

static void assign_sum_chunk(void *ctx, size_t c)
{
    lloyd *l = ctx;
    int lo = (int)(c * CHUNK), hi = lo + CHUNK < l->n ? lo + CHUNK : l->n;
    assign_chunk(l, c);
    for (int g = 0; g < l->groups; g++) {
        float *acc = l->gsum + (size_t)g * l->gstride;
        int *cnt = l->gcount + (size_t)g * l->gstride, G = l->groups;
        wait_turn(&l->summed[g], c);
        switch (l->dims) {
        case 1: sum_runs(l, G, g, acc, cnt, 1, lo, hi); break;
        case 2: sum_runs(l, G, g, acc, cnt, 2, lo, hi); break;
        case 3: sum_runs(l, G, g, acc, cnt, 3, lo, hi); break;
        case 4: sum_runs(l, G, g, acc, cnt, 4, lo, hi); break;
        default: abort();
        }
        atomic_store_explicit(&l->summed[g], c + 1, memory_order_release);
    }
}

/* first: the centres come from initialisation, so no bounds exist yet */
static void assign(lloyd *l, int first)
{
    switch (l->assign) {
    case KMS_LLOYD_BOUNDED:
        if (first)
            kms_hamerly_full(l->ham, l->x, l->centers, l->labels, l->pool);
        else
            kms_hamerly_step(l->ham, l->x, l->old_centers, l->centers,
                             l->labels, l->pool);
        break;
    case KMS_LLOYD_PLAIN:
        if (can_fuse(l)) {
            for (int g = 0; g < l->groups; g++) {
                memset(l->gsum + (size_t)g * l->gstride, 0,
                       sizeof *l->gsum * (size_t)l->k * l->dims);
                memset(l->gcount + (size_t)g * l->gstride, 0,
                       sizeof *l->gcount * (size_t)l->k);
                atomic_store(&l->summed[g], 0);
            }
            kms_pool_run(l->pool, nchunks(l), assign_sum_chunk, l);
            l->presummed = 1;
        } else {
            kms_pool_run(l->pool, nchunks(l), assign_chunk, l);
        }
        break;
    default:
        abort();
    }
}

/* cv KMeansDistanceComputer<true>: distance to the own centre, as double.
 * Stored as cv::sum adds them (below): quad[g] is the sum
 * ((d[4g] + d[4g+1]) + d[4g+2]) + d[4g+3], a quarter of the memory. */
KMS_INLINE void own_dist_range(lloyd *l, int lo, int hi, int dims)
{
    for (int i = lo; i + 4 <= hi; i += 4) {
        double d[4];
        for (int b = 0; b < 4; b++)
            d[b] = kms_dist2(sample(l, i + b),
                             l->centers + (size_t)l->labels[i + b] * dims,
                             dims);
        l->dists[i / 4] = d[0] + d[1] + d[2] + d[3];
    }
}

static void own_dist_chunk(void *ctx, size_t c)
{
    lloyd *l = ctx;
    int lo = (int)(c * CHUNK), hi = lo + CHUNK < l->n ? lo + CHUNK : l->n;
    switch (l->dims) { /* constant dims: the loop unrolled */
    case 1: own_dist_range(l, lo, hi, 1); break;
    case 3: own_dist_range(l, lo, hi, 3); break;
    default: own_dist_range(l, lo, hi, l->dims); break;
    }
}

/* cv: compactness = sum(Mat(Size(N, 1), CV_64F, &dists[0]))[0]; cv::sum on
 * doubles is sum_<double,double> with CV_ENABLE_UNROLLED:
 *   s0 += src[0] + src[1] + src[2] + src[3]; then the tail one by one
 * (CHUNK is a multiple of 4: a chunk holds whole quads) */
static double compactness_of(lloyd *l)
{
    if (l->pp) /* may move at every kms_pp_run */
        l->dists = kms_pp_scratch(l->pp);
    kms_pool_run(l->pool, nchunks(l), own_dist_chunk, l);
    double s = 0;
    int i = 0;
    for (; i <= l->n - 4; i += 4)
        s += l->dists[i / 4];
    for (; i < l->n; i++)
        s += (double)kms_dist2(sample(l, i),
                               l->centers + (size_t)l->labels[i] * l->dims,
                               l->dims);
    return s;
}

/* ---- attempts ---------------------------------------------------------------------- */

static void swap_centers(lloyd *l)
{
    float *t = l->centers;
    l->centers = l->old_centers;
    l->old_centers = t;
}

/* One attempt of cv::kmeans; iteration 0 is the initialisation. */
static kms_status run_attempt(lloyd *l, int a, double *compactness,
                              kms_error *err)
{
    l->short_runs = -1;
    l->presummed = 0;
    for (int iter = 0;;) {
        double max_shift = iter == 0 ? DBL_MAX : 0.0;
        swap_centers(l);
        if (iter == 0 && (a > 0 || l->init != KMS_KM_INIT_LABELS)) {
            if (l->init == KMS_KM_INIT_PP) {
                kms_status st = kms_pp_run(l->pp, &l->rng, l->centers, err);
                if (st != KMS_OK)
                    return st;
            } else {
                init_random(l);
            }
        } else {
            double s = update_centers(l, iter > 0);
            if (iter > 0)
                max_shift = s;
        }
        if (++iter == l->max_count || max_shift <= l->eps2) {
            /* cv: "don't re-assign labels to avoid creation of empty
             * clusters" */
            *compactness = compactness_of(l);
            return KMS_OK;
        }
        assign(l, iter == 1);
    }
}

kms_status kms_lloyd_run(const float *samples, size_t n, int dims,
                         const kms_kmeans_params *p, kms_lloyd_assign assign_how,
                         int32_t *labels, float *centers, double *compactness,
                         kms_error *err)
{
    lloyd l = {.x = samples, .n = (int)n, .dims = dims, .k = p->k,
               .init = p->init};
    kms_status st = KMS_OK;
    double best = DBL_MAX;
    set_criteria(&l, p);
    if (l.attempts == 1) /* the one attempt labels the caller's array */
        l.labels = labels;
    kms_rng_seed(&l.rng, p->seed);
    l.assign = choose_assign(&l, assign_how);
    l.avx2 = kms_simd_avx2();
    if ((st = lloyd_alloc(&l, p->threads)) != KMS_OK) {
        kms_error_set(err, st, NULL, 0, NULL, "kmeans: out of memory");
        goto out;
    }
    if (l.init == KMS_KM_INIT_LABELS && l.labels != labels)
        memcpy(l.labels, labels, sizeof *labels * n);
    if (l.init != KMS_KM_INIT_PP)
        compute_box(&l); /* cv: whenever KMEANS_PP_CENTERS is not set */
    for (int a = 0; a < l.attempts; a++) {
        double c = 0;
        if ((st = run_attempt(&l, a, &c, err)) != KMS_OK)
            goto out;
        if (c < best) { /* cv: strictly better only */
            best = c;
            memcpy(centers, l.centers, sizeof *centers * (size_t)p->k * dims);
            if (l.labels != labels)
                memcpy(labels, l.labels, sizeof *labels * n);
        }
    }
    if (best == DBL_MAX) {
        st = kms_error_set(err, KMS_ERR_INPUT, NULL, 0, NULL,
                           "kmeans: no finite compactness (values too large)");
        goto out;
    }
    if (compactness)
        *compactness = best;
out:
    lloyd_free(&l);
    return st;
}
