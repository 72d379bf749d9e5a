/* Internals shared by the kmeans/ sources (and white-box tests); not API. */
#ifndef KMS_KMEANS_INTERNAL_H
#define KMS_KMEANS_INTERNAL_H

#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kmeans.h"

/* Forces inlining where a constant dims must reach kms_dist2's loops. */
#if defined(__GNUC__)
#define KMS_INLINE static inline __attribute__((always_inline))
#else
#define KMS_INLINE static inline
#endif

/* Vector types of GCC and Clang (SSE registers on x86-64); every use has a
 * scalar fallback (forced with -DKMS_NO_VECTOR). Element-wise IEEE
 * operations, so a lane computes exactly what the scalar code does. */
#if defined(__GNUC__) && !defined(KMS_NO_VECTOR)
#define KMS_VECTOR 1
#else
#define KMS_VECTOR 0
#endif

#if KMS_VECTOR
typedef float kms_v4f __attribute__((vector_size(16)));
typedef int32_t kms_v4i __attribute__((vector_size(16)));
typedef double kms_v2d __attribute__((vector_size(16)));

/* m ? a : b lane by lane, m from a comparison (all ones or all zeros) */
static inline kms_v4f kms_blend4(kms_v4i m, kms_v4f a, kms_v4f b)
{
    return (kms_v4f)(((kms_v4i)a & m) | ((kms_v4i)b & ~m));
}
#endif

/* --- distances ------------------------------------------------------------ */

/* cv::hal::normL2Sqr_ bit for bit (OpenCV 4.6, x86-64 SSE baseline): a float
 * sum, 4 accumulators of 4 lanes over blocks of 16, then the tail in order.
 * Below 16 dims this is the plain left-to-right float sum. */
KMS_INLINE float kms_dist2(const float *a, const float *b, int dims)
{
    int j = 0;
    float d = 0.f;
    if (dims >= 16) {
        float v[4][4] = {{0}};
        for (; j <= dims - 16; j += 16)
            for (int r = 0; r < 4; r++)
                for (int l = 0; l < 4; l++) {
                    float t = a[j + 4 * r + l] - b[j + 4 * r + l];
                    v[r][l] = t * t + v[r][l];
                }
        float s[4];
        for (int l = 0; l < 4; l++)
            s[l] = ((v[0][l] + v[1][l]) + v[2][l]) + v[3][l];
        /* v_reduce_sum on SSE: (l0 + l2) + (l1 + l3) */
        d = (s[0] + s[2]) + (s[1] + s[3]);
    }
    for (; j < dims; j++) {
        float t = a[j] - b[j];
        d += t * t;
    }
    return d;
}

/* Centres transposed for kms_dist2_multi: ct[j * kpad + c] is feature j of
 * centre c; kpad = k rounded up to 4, spare lanes zero. */
static inline int kms_kpad(int k)
{
    return (k + 3) & ~3;
}

static inline void kms_transpose(const float *centers, int k, int dims,
                                 float *ct)
{
    int kpad = kms_kpad(k);
    for (int j = 0; j < dims; j++)
        for (int c = 0; c < kpad; c++)
            ct[(size_t)j * kpad + c] = c < k ? centers[(size_t)c * dims + j] : 0.f;
}

/* kms_dist2 from one sample to every centre at once (dims < 16 only): the
 * same float operations in the same order per centre, vectorised across
 * centres. out has kpad entries. */
KMS_INLINE void kms_dist2_multi(const float *xi, const float *ct, int kpad,
                                int dims, float *out)
{
    for (int c = 0; c < kpad; c += 4) { /* blocks of 4: one SSE register */
#if KMS_VECTOR
        kms_v4f o = {0.f, 0.f, 0.f, 0.f};
        for (int j = 0; j < dims; j++) {
            kms_v4f cj, t;
            memcpy(&cj, ct + (size_t)j * kpad + c, sizeof cj);
            t = xi[j] - cj;
            o += t * t;
        }
        memcpy(out + c, &o, sizeof o);
#else
        float o[4] = {0.f, 0.f, 0.f, 0.f};
        for (int j = 0; j < dims; j++) {
            const float xj = xi[j], *cj = ct + (size_t)j * kpad + c;
            for (int l = 0; l < 4; l++) {
                float t = xj - cj[l];
                o[l] += t * t;
            }
        }
        for (int l = 0; l < 4; l++)
            out[c + l] = o[l];
#endif
    }
}

/* --- four samples at a time ------------------------------------------------- */

/* One sample per SIMD lane (GCC/Clang vector extensions, a scalar loop
 * elsewhere). Each lane does kms_dist2's float operations in the same order
 * (dims < 16), so results are bit-identical to the one-sample code. x4
 * points at 4 consecutive samples. */

#if KMS_VECTOR
/* p[j] = feature j of the 4 samples at x4 */
KMS_INLINE void kms_load4(const float *x4, int dims, kms_v4f *p)
{
    for (int j = 0; j < dims; j++)
        p[j] = (kms_v4f){x4[j], x4[dims + j], x4[2 * dims + j],
                         x4[3 * dims + j]};
}

/* lane l: kms_dist2(sample l, c, dims) */
KMS_INLINE kms_v4f kms_dist4v(const kms_v4f *p, const float *c, int dims)
{
    kms_v4f d = {0.f, 0.f, 0.f, 0.f};
    for (int j = 0; j < dims; j++) {
        kms_v4f t = p[j] - c[j];
        d += t * t;
    }
    return d;
}
#endif

/* Nearest of k centres for 4 samples: cv's first minimum ("min_dist > dist"
 * from +inf), the distance to it and the smallest distance to the others. */
typedef struct kms_near4 {
    float best[4], second[4];
    int32_t label[4];
} kms_near4;

KMS_INLINE void kms_nearest4(const float *x4, const float *centers, int k,
                             int dims, kms_near4 *out)
{
#if KMS_VECTOR
    kms_v4f p[16];
    kms_v4f best = {INFINITY, INFINITY, INFINITY, INFINITY}, second = best;
    kms_v4i label = {0, 0, 0, 0};
    kms_load4(x4, dims, p);
    for (int c = 0; c < k; c++) {
        kms_v4f d = kms_dist4v(p, centers + (size_t)c * dims, dims);
        kms_v4i lt = d < best;
        kms_v4f hi = kms_blend4(lt, best, d); /* the loser of the two */
        second = kms_blend4(hi < second, hi, second);
        label = (lt & c) | (~lt & label);
        best = kms_blend4(lt, d, best);
    }
    memcpy(out->best, &best, sizeof best);
    memcpy(out->second, &second, sizeof second);
    memcpy(out->label, &label, sizeof label);
#else
    for (int l = 0; l < 4; l++) {
        float best = INFINITY, second = INFINITY;
        int label = 0;
        for (int c = 0; c < k; c++) {
            float d = kms_dist2(x4 + (size_t)l * dims,
                                centers + (size_t)c * dims, dims);
            float hi = best > d ? best : d;
            second = second < hi ? second : hi;
            label = best > d ? c : label;
            best = best > d ? d : best;
        }
        out->best[l] = best;
        out->second[l] = second;
        out->label[l] = label;
    }
#endif
}

/* --- fixed-chunk thread pool ------------------------------------------------ */

/* Work is cut into chunks whose bounds depend only on the problem size, so a
 * chunk computes the same thing whichever thread runs it: results never
 * depend on the thread count. */
typedef struct kms_pool kms_pool;
typedef void (*kms_chunk_fn)(void *ctx, size_t chunk);

/* threads <= 0: all online cores. Returns NULL when out of memory; a pool of
 * one thread spawns nothing. */
kms_pool *kms_pool_create(int threads);
void kms_pool_destroy(kms_pool *pool);
int kms_pool_threads(const kms_pool *pool);
/* Runs fn(ctx, c) for c in [0, nchunks) and waits for all of them. */
void kms_pool_run(kms_pool *pool, size_t nchunks, kms_chunk_fn fn, void *ctx);

/* --- k-means++ initialisation (cv generateCentersPP) ---------------------------- */

typedef struct kms_pp kms_pp;

/* Workspace for n samples of dims floats and k centres. */
kms_pp *kms_pp_create(const float *x, int n, int dims, int k, kms_pool *pool);
void kms_pp_destroy(kms_pp *pp);
/* Picks k centres as cv generateCentersPP(data, centers, K, rng, 3) does,
 * drawing from rng in the same order. KMS_ERR_INPUT when sums overflow. */
kms_status kms_pp_run(kms_pp *pp, kms_rng *rng, float *centers,
                      kms_error *err);

/* --- bounded assignment (Hamerly 2010) --------------------------------------- */

/* Per-sample bounds that let an iteration skip samples whose nearest centre
 * cannot have changed. The bounds are inflated by the worst-case rounding of
 * the float distance kms_dist2, so a sample is skipped only when its float
 * distance to its own centre is strictly below its float distance to every
 * other centre: the labels are exactly those of the full scan, ties
 * included (first minimum wins). */
typedef struct kms_hamerly kms_hamerly;

kms_hamerly *kms_hamerly_create(size_t n, int k, int dims);
void kms_hamerly_destroy(kms_hamerly *h);
/* Labels every sample by a full scan of centers, and sets its bounds. */
void kms_hamerly_full(kms_hamerly *h, const float *x, const float *centers,
                      int32_t *labels, kms_pool *pool);
/* The centres moved from old to centers: updates the bounds and relabels. */
void kms_hamerly_step(kms_hamerly *h, const float *x, const float *old,
                      const float *centers, int32_t *labels, kms_pool *pool);
/* Sample i was relabelled outside an assignment (empty-cluster repair). */
void kms_hamerly_invalidate(kms_hamerly *h, size_t i);
/* Distance evaluations so far (statistics for benchmarks and tests). */
uint64_t kms_hamerly_distances(const kms_hamerly *h);

/* --- methods ----------------------------------------------------------------- */

/* How lloyd assigns labels. All give the same labels (see hamerly.c);
 * AUTO picks the faster: BOUNDED for dims >= 2 and k >= 6, where skipping
 * distances pays for the bookkeeping, PLAIN (cv's full scan, vectorised)
 * otherwise and for values too large for the bounds' error analysis. */
typedef enum kms_lloyd_assign {
    KMS_LLOYD_AUTO,
    KMS_LLOYD_BOUNDED,
    KMS_LLOYD_PLAIN
} kms_lloyd_assign;

/* cv::kmeans. Arguments already validated by kms_kmeans_run. */
kms_status kms_lloyd_run(const float *samples, size_t n, int dims,
                         const kms_kmeans_params *p, kms_lloyd_assign assign,
                         int32_t *labels, float *centers, double *compactness,
                         kms_error *err);

/* Exact 1-D optimum. Arguments already validated. */
kms_status kms_optimal_run(const float *values, size_t n, int k,
                           int32_t *labels, float *centers,
                           double *compactness, kms_error *err);

/* kms_kmeans_optimal_hist after validation (labels may be NULL). */
kms_status kms_optimal_hist_run(const float *values, const uint64_t *counts,
                                size_t bins, int k, int32_t *labels,
                                float *centers, double *compactness,
                                kms_error *err);

/* kms_kmeans_optimal_wcss after validation. */
kms_status kms_optimal_wcss_run(const float *values, size_t n, int kmax,
                                double *wcss, kms_error *err);

/* The label kms_kmeans_quantize gives one 1-D sample x (its nearest of the
 * k centres, first on ties, 0 for NaN). */
int32_t kms_quantize_nearest1(float x, const float *centers, int k);

/* --- eight samples at a time (AVX2, chosen at run time) --------------------- */

/* The shipped build targets baseline x86-64; functions marked KMS_AVX2_FN
 * are compiled for AVX2 as well and called only when the CPU has it. A lane
 * does the same IEEE float operations as the scalar code (the avx2 target
 * has no FMA to contract into), so results are bit-identical to the 4-lane
 * and scalar paths. */
#if KMS_VECTOR && defined(__x86_64__) && defined(__GNUC__)
#define KMS_HAVE_AVX2 1
#include <immintrin.h>
#define KMS_AVX2_FN __attribute__((target("avx2")))
typedef float kms_v8f __attribute__((vector_size(32)));
typedef int32_t kms_v8i __attribute__((vector_size(32)));
typedef double kms_v4d __attribute__((vector_size(32)));

static inline __attribute__((always_inline, target("avx2"))) kms_v8f
kms_blend8(kms_v8i m, kms_v8f a, kms_v8f b)
{
    return (kms_v8f)(((kms_v8i)a & m) | ((kms_v8i)b & ~m));
}

/* p[j] = feature j of the 8 samples at x8; 3 features (colour) by three
 * loads, blends and permutes instead of 24 single-float inserts */
static inline __attribute__((always_inline, target("avx2"))) void
kms_load8(const float *x8, int dims, kms_v8f *p)
{
    if (dims == 3) {
        __m256 a = _mm256_loadu_ps(x8), b = _mm256_loadu_ps(x8 + 8),
               c = _mm256_loadu_ps(x8 + 16);
        /* feature j of sample s sits at 3s + j: position (3s + j) % 8 of
         * a, b or c, never two samples at one position */
        __m256 t0 = _mm256_blend_ps(_mm256_blend_ps(a, b, 0x92), c, 0x24);
        __m256 t1 = _mm256_blend_ps(_mm256_blend_ps(a, b, 0x24), c, 0x49);
        __m256 t2 = _mm256_blend_ps(_mm256_blend_ps(a, b, 0x49), c, 0x92);
        p[0] = (kms_v8f)_mm256_permutevar8x32_ps(
            t0, _mm256_setr_epi32(0, 3, 6, 1, 4, 7, 2, 5));
        p[1] = (kms_v8f)_mm256_permutevar8x32_ps(
            t1, _mm256_setr_epi32(1, 4, 7, 2, 5, 0, 3, 6));
        p[2] = (kms_v8f)_mm256_permutevar8x32_ps(
            t2, _mm256_setr_epi32(2, 5, 0, 3, 6, 1, 4, 7));
        return;
    }
    for (int j = 0; j < dims; j++)
        p[j] = (kms_v8f){x8[j], x8[dims + j], x8[2 * dims + j],
                         x8[3 * dims + j], x8[4 * dims + j],
                         x8[5 * dims + j], x8[6 * dims + j],
                         x8[7 * dims + j]};
}

/* lane l: kms_dist2(sample l, c, dims), dims < 16 (0.f + t*t == t*t: a
 * square is never -0) */
static inline __attribute__((always_inline, target("avx2"))) kms_v8f
kms_dist8v(const kms_v8f *p, const float *c, int dims)
{
    kms_v8f t = p[0] - c[0], d = t * t;
    for (int j = 1; j < dims; j++) {
        t = p[j] - c[j];
        d += t * t;
    }
    return d;
}
#else
#define KMS_HAVE_AVX2 0
#endif

/* The k-means++ distance buffer, free between kms_pp_run calls: room for
 * (n + 7) / 4 doubles at least (lloyd's compactness quads use it, so that
 * a run touches one fresh array fewer). */
double *kms_pp_scratch(kms_pp *pp);

/* 1 when the AVX2 paths run: the CPU has AVX2 and kms_simd_force has not
 * turned them off. */
int kms_simd_avx2(void);
/* Tests: 0 turns the AVX2 paths off (the 4-lane SSE paths run), 1 restores
 * the CPU's choice. Not thread-safe; call between runs. */
void kms_simd_force(int avx2);

#endif
