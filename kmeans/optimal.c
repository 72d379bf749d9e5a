/* Exact, globally optimal k-means of 1-D data.
 *
 * In 1-D an optimal cluster is an interval of the sorted values, so the
 * optimum is a dynamic programme over the sorted DISTINCT values d (weighted
 * by their counts):
 *     D_k[i] = min_{j <= i} D_{k-1}[j-1] + cost(j, i)
 * cost from prefix sums of (v - ref) and (v - ref)^2 in double, ref the mean
 * (shifting keeps the cancellation in s2 - s1^2/w small). The optimal split
 * point is monotone in i (Wang & Song 2011, Ckmeans.1d.dp; Gronlund et al.
 * 2017), so each row is a divide-and-conquer in O(d log d).
 *
 * The distinct-value table comes from a counting table when the samples are
 * integers spanning at most 65536 values (CT Hounsfield units: O(n); int16
 * samples go straight in, kms_kmeans_optimal_s16), from a hash of the float
 * bits when the distinct values are few beside n (x / 7.3 of HU), from a
 * radix sort of the float bits otherwise (exact for any float), or straight
 * from a caller's histogram; the rest is the same for all four. Labels: a
 * value -> cluster table on the integer path (compare passes for one or
 * two boundaries), compare passes or hash look-ups on the hash path, and
 * compare passes or a binary search on the sort path: every one of them
 * gives a sample the first cluster whose largest value is >= it.
 *
 * The masked entry (kms_kmeans_optimal_masked) leaves samples out by a flag
 * array instead of a copy, and labels them with the nearest centre as
 * kms_kmeans_quantize does (kmseg's kmeans stage: padding of a CT). */
#include "kmeans_internal.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
/* valid[0..3] (0 = left out) as four float lanes: all ones where left out;
 * four samples then take a replacement value by one and-or, no branch */
static inline __m128 left_out4(const uint8_t *valid)
{
    int32_t f;
    memcpy(&f, valid, sizeof f);
    __m128i pad = _mm_cmpeq_epi8(_mm_cvtsi32_si128(f), _mm_setzero_si128());
    pad = _mm_unpacklo_epi16(_mm_unpacklo_epi8(pad, pad),
                             _mm_unpacklo_epi8(pad, pad));
    return _mm_castsi128_ps(pad);
}
#endif

enum { MAX_INT_RANGE = 65536 };

/* Integer floats: up to this many clusters the labels come from compare
 * passes, above it from the value -> cluster table (measured: a compare
 * pass per boundary costs about a third of the table's scalar look-ups). */
enum { FEW_COMPARES = 3 };

/* Sorted distinct values with their counts. */
typedef struct distinct {
    size_t d;
    float *value;
    double *weight;
    int32_t imin;     /* integer path: value of count[0] */
    size_t range;     /* integer path: table size, 0 on the sort path */
} distinct;

typedef struct dp {
    size_t d;
    double *w, *s1, *s2; /* prefix sums, d + 1 entries */
    int avx2;            /* kms_simd_avx2(): scan in four lanes */
} dp;

/* ---- distinct values ---------------------------------------------------------- */

static void distinct_free(distinct *t)
{
    free(t->value);
    free(t->weight);
}

static kms_status distinct_alloc(distinct *t, size_t d)
{
    t->d = d;
    t->value = malloc(sizeof *t->value * (d ? d : 1));
    t->weight = malloc(sizeof *t->weight * (d ? d : 1));
    return t->value && t->weight ? KMS_OK : KMS_ERR_NOMEM;
}

/* A histogram's table: values already sorted and distinct, empty bins left
 * out. */
static kms_status build_from_hist(const float *values, const uint64_t *counts,
                                  size_t bins, distinct *t)
{
    size_t d = 0;
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < bins; i++)
        d += counts[i] != 0;
    if (distinct_alloc(t, d) != KMS_OK)
        return KMS_ERR_NOMEM;
    d = 0;
    for (size_t i = 0; i < bins; i++)
        if (counts[i]) {
            t->value[d] = values[i];
            t->weight[d++] = (double)counts[i];
        }
    return KMS_OK;
}

/* Order-preserving map of float bits to unsigned (-0 taken as +0). */
static uint32_t float_key(float f)
{
    uint32_t u;
    if (f == 0)
        f = 0; /* -0.0 and +0.0 are the same value */
    memcpy(&u, &f, sizeof u);
    return u & 0x80000000u ? ~u : u | 0x80000000u;
}

static float key_float(uint32_t u)
{
    float f;
    u = u & 0x80000000u ? u & 0x7fffffffu : ~u;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* LSD radix sort, 11-bit digits; passes where every key shares the digit are
 * skipped. The result ends in *a (buffers may be swapped). */
static void radix_sort(uint32_t **a, uint32_t **b, size_t n)
{
    enum { BITS = 11, BUCKETS = 1 << BITS };
    static const int shift[3] = {0, 11, 22};
    size_t hist[BUCKETS];
    for (int p = 0; p < 3; p++) {
        memset(hist, 0, sizeof hist);
        for (size_t i = 0; i < n; i++)
            hist[((*a)[i] >> shift[p]) & (BUCKETS - 1)]++;
        if (hist[((*a)[0] >> shift[p]) & (BUCKETS - 1)] == n)
            continue;
        size_t sum = 0;
        for (int v = 0; v < BUCKETS; v++) {
            size_t c = hist[v];
            hist[v] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            (*b)[hist[((*a)[i] >> shift[p]) & (BUCKETS - 1)]++] = (*a)[i];
        uint32_t *t = *a;
        *a = *b;
        *b = t;
    }
}

static kms_status build_from_sort(const float *x, size_t n, distinct *t)
{
    uint32_t *a = malloc(sizeof *a * n), *b = malloc(sizeof *b * n);
    kms_status st = KMS_ERR_NOMEM;
    size_t d = 0;
    if (!a || !b)
        goto out;
    for (size_t i = 0; i < n; i++)
        a[i] = float_key(x[i]);
    radix_sort(&a, &b, n);
    for (size_t i = 0; i < n; i++)
        d += i == 0 || a[i] != a[i - 1];
    if ((st = distinct_alloc(t, d)) != KMS_OK)
        goto out;
    d = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || a[i] != a[i - 1]) {
            t->value[d] = key_float(a[i]);
            t->weight[d++] = 0;
        }
        t->weight[d - 1] += 1;
    }
    t->range = 0;
out:
    free(a);
    free(b);
    return st;
}

/* ---- one pass: bounds and integrality ------------------------------------------ */

/* The smallest and largest of the samples (valid[i] != 0 only, valid NULL:
 * all) and whether all of them are integers in the int32 range; false also
 * for NaN, infinities and no sample at all. One pass, four lanes at a time:
 * cvttps2dq gives INT32_MIN for what it cannot convert, which then differs
 * from the sample. */
static bool int_bounds(const float *x, const uint8_t *valid, size_t n,
                       int32_t *lo, int32_t *hi)
{
    size_t i = 0;
    if (valid)
        while (i < n && !valid[i])
            i++;
    if (i == n)
        return false;
    float first = x[i], l = first, h = first;
    int bad = 0;
#ifdef __SSE2__
    __m128 l4 = _mm_set1_ps(first), h4 = l4, bad4 = _mm_setzero_ps();
    const __m128 f4 = l4;
    for (; i + 4 <= n; i += 4) {
        __m128 v = _mm_loadu_ps(x + i);
        if (valid) { /* left-out samples count as the first valid one */
            __m128 pad = left_out4(valid + i);
            v = _mm_or_ps(_mm_and_ps(pad, f4), _mm_andnot_ps(pad, v));
        }
        l4 = _mm_min_ps(l4, v);
        h4 = _mm_max_ps(h4, v);
        bad4 = _mm_or_ps(bad4, _mm_cmpneq_ps(_mm_cvtepi32_ps(
                                                 _mm_cvttps_epi32(v)), v));
    }
    float lanes[12];
    _mm_storeu_ps(lanes, l4);
    _mm_storeu_ps(lanes + 4, h4);
    _mm_storeu_ps(lanes + 8, bad4);
    for (int j = 0; j < 4; j++) {
        l = lanes[j] < l ? lanes[j] : l;
        h = lanes[4 + j] > h ? lanes[4 + j] : h;
        uint32_t b;
        memcpy(&b, lanes + 8 + j, sizeof b);
        bad |= b != 0;
    }
#endif
    for (; i < n; i++) {
        float v = valid && !valid[i] ? first : x[i];
        if (!(v >= -2147483648.0f && v < 2147483648.0f)
            || (float)(int32_t)v != v) {
            bad = 1;
            break;
        }
        l = v < l ? v : l;
        h = v > h ? v : h;
    }
    /* min/max of NaN lanes is unreliable: bad already says so */
    if (bad || !(l >= -2147483648.0f && h < 2147483648.0f))
        return false;
    *lo = (int32_t)l;
    *hi = (int32_t)h;
    return true;
}

/* idx[k] = (int32_t)v - lo for the m samples at x, v the sample where
 * valid, lo where not: four lanes at a time (the flags widened to lane
 * masks), so the left-out samples cost no branch. */
static void masked_index(const float *x, const uint8_t *valid, size_t m,
                         int32_t lo, int32_t *idx)
{
    size_t k = 0;
#ifdef __SSE2__
    const __m128 flo = _mm_set1_ps((float)lo);
    const __m128i ilo = _mm_set1_epi32(lo);
    for (; k + 4 <= m; k += 4) {
        __m128 pm = left_out4(valid + k);
        __m128 v = _mm_or_ps(_mm_and_ps(pm, flo),
                             _mm_andnot_ps(pm, _mm_loadu_ps(x + k)));
        _mm_storeu_si128((__m128i *)(void *)(idx + k),
                         _mm_sub_epi32(_mm_cvttps_epi32(v), ilo));
    }
#endif
    for (; k < m; k++)
        idx[k] = (int32_t)(valid[k] ? x[k] : (float)lo) - lo;
}

/* Counting table of integer samples in [lo, hi] (range = hi - lo + 1 <=
 * MAX_INT_RANGE); left-out samples count as lo, and the caller takes them
 * off again (no test in the loop). Neighbouring samples often share a
 * value, and one table would make each count wait for the last; four take
 * turns. */
#define COUNT_INTEGERS(name, type, conv, masked)                               \
    static void name(const type *x, const uint8_t *valid, size_t n,           \
                     int32_t lo, size_t range, uint32_t *count)               \
    {                                                                          \
        uint32_t *c[4] = {count, count + range, count + 2 * range,            \
                          count + 3 * range};                                 \
        enum { BLOCK = 512 };                                                  \
        int32_t idx[BLOCK];                                                    \
        for (size_t i = 0; i < n; i += BLOCK) {                                \
            size_t m = n - i < BLOCK ? n - i : BLOCK, j = 0;                   \
            if (valid)                                                         \
                masked(x + i, valid + i, m, lo, idx);                          \
            else                                                               \
                for (size_t k = 0; k < m; k++) /* vectorises */               \
                    idx[k] = conv(x[i + k]) - lo;                              \
            for (; j + 4 <= m; j += 4)                                         \
                for (int t = 0; t < 4; t++)                                    \
                    c[t][idx[j + t]]++;                                        \
            for (; j < m; j++)                                                 \
                c[0][idx[j]]++;                                                \
        }                                                                      \
        for (size_t v = 0; v < range; v++)                                     \
            count[v] += c[1][v] + c[2][v] + c[3][v];                           \
    }
#define CONV_F(v) ((int32_t)(v))
#define CONV_S(v) ((int32_t)(v))
COUNT_INTEGERS(count_floats, float, CONV_F, masked_index)
/* int16 samples come without flags (kms_kmeans_optimal_s16) */
static void masked_s16(const int16_t *x, const uint8_t *valid, size_t m,
                       int32_t lo, int32_t *idx)
{
    for (size_t k = 0; k < m; k++)
        idx[k] = (valid[k] ? x[k] : lo) - lo;
}
COUNT_INTEGERS(count_s16, int16_t, CONV_S, masked_s16)
#undef COUNT_INTEGERS
#undef CONV_F
#undef CONV_S

/* The distinct table of a counting table. */
static kms_status table_from_counts(const uint32_t *count, int32_t lo,
                                    size_t range, distinct *t)
{
    size_t d = 0;
    for (size_t v = 0; v < range; v++)
        d += count[v] != 0;
    if (distinct_alloc(t, d) != KMS_OK)
        return KMS_ERR_NOMEM;
    d = 0;
    for (size_t v = 0; v < range; v++)
        if (count[v]) {
            t->value[d] = (float)(lo + (int64_t)v);
            t->weight[d++] = count[v];
        }
    t->imin = lo;
    t->range = range;
    return KMS_OK;
}

/* ---- hash of distinct float values --------------------------------------------- */

/* Float samples with few distinct values (d small beside n): their counts
 * in an open-addressing table keyed by float_key (0 is never a finite
 * key: it marks an empty slot), then the d keys sorted. Two passes over
 * the samples like the counting table, where a radix sort takes six. */
typedef struct fhash {
    uint32_t *key, *count;
    int32_t *label;
    size_t mask, used;
    int shift; /* 64 - log2(size) */
} fhash;

static inline size_t fhash_slot(const fhash *h, uint32_t key)
{
    /* Fibonacci hashing: the top bits of the product */
    size_t s = (size_t)(((uint64_t)key * 0x9E3779B97F4A7C15ull) >> h->shift);
    while (h->key[s] && h->key[s] != key)
        s = (s + 1) & h->mask;
    return s;
}

static void fhash_free(fhash *h)
{
    free(h->key);
    free(h->count);
    free(h->label);
}

/* Doubles the table (load at most one half), keys and counts moved. */
static kms_status fhash_grow(fhash *h)
{
    fhash g = {0};
    size_t size = 2 * (h->mask + 1);
    g.mask = size - 1;
    g.shift = h->shift - 1;
    g.used = h->used;
    g.key = calloc(size, sizeof *g.key);
    g.count = calloc(size, sizeof *g.count);
    if (!g.key || !g.count) {
        fhash_free(&g);
        return KMS_ERR_NOMEM;
    }
    for (size_t s = 0; s <= h->mask; s++)
        if (h->key[s]) {
            size_t t = fhash_slot(&g, h->key[s]);
            g.key[t] = h->key[s];
            g.count[t] = h->count[s];
        }
    fhash_free(h);
    *h = g;
    return KMS_OK;
}

/* KMS_ERR_INTERNAL when more than limit distinct values (or a NaN/inf).
 * The table starts small and doubles: few values stay in the L1 cache. */
static kms_status fhash_build(const float *x, const uint8_t *valid, size_t n,
                              size_t limit, fhash *h)
{
    size_t size = 1024;
    memset(h, 0, sizeof *h);
    h->mask = size - 1;
    h->shift = 64 - 10;
    h->key = calloc(size, sizeof *h->key);
    h->count = calloc(size, sizeof *h->count);
    if (!h->key || !h->count)
        return KMS_ERR_NOMEM;
    uint32_t last = 0;
    size_t slot = 0;
    for (size_t i = 0; i < n; i++) {
        if (valid && !valid[i])
            continue;
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        if ((u & 0x7f800000u) == 0x7f800000u)
            return KMS_ERR_INTERNAL;
        uint32_t key = float_key(x[i]);
        if (key != last) { /* runs of one value cost one probe */
            slot = fhash_slot(h, key);
            if (!h->key[slot]) {
                if (++h->used > limit)
                    return KMS_ERR_INTERNAL;
                if (2 * h->used > h->mask + 1) {
                    kms_status st = fhash_grow(h);
                    if (st != KMS_OK)
                        return st;
                    slot = fhash_slot(h, key);
                }
                h->key[slot] = key;
            }
            last = key;
        }
        h->count[slot]++;
    }
    return KMS_OK;
}

static kms_status table_from_hash(const fhash *h, distinct *t)
{
    size_t d = 0;
    uint32_t *a = malloc(sizeof *a * (h->used ? h->used : 1)),
             *b = malloc(sizeof *b * (h->used ? h->used : 1));
    kms_status st = KMS_ERR_NOMEM;
    if (!a || !b)
        goto out;
    for (size_t s = 0; s <= h->mask; s++)
        if (h->key[s])
            a[d++] = h->key[s];
    if (d)
        radix_sort(&a, &b, d);
    if ((st = distinct_alloc(t, d)) != KMS_OK)
        goto out;
    for (size_t v = 0; v < d; v++) {
        t->value[v] = key_float(a[v]);
        t->weight[v] = h->count[fhash_slot(h, a[v])];
    }
    t->range = 0;
out:
    free(a);
    free(b);
    return st;
}

/* Few distinct values beside the samples: the hash pays (its table stays
 * in cache); beyond, the radix sort. */
static size_t hash_limit(size_t n)
{
    size_t limit = n / 16;
    return limit < 4096 ? 4096 : limit > (1u << 20) ? (1u << 20) : limit;
}

static kms_status build_distinct(const float *x, size_t n, distinct *t)
{
    fhash h = {0};
    int32_t lo, hi;
    memset(t, 0, sizeof *t);
    if (int_bounds(x, NULL, n, &lo, &hi)
        && (int64_t)hi - lo < MAX_INT_RANGE) {
        size_t range = (size_t)((int64_t)hi - lo) + 1;
        uint32_t *count = calloc(4 * range, sizeof *count);
        if (!count)
            return KMS_ERR_NOMEM;
        count_floats(x, NULL, n, lo, range, count);
        kms_status st = table_from_counts(count, lo, range, t);
        free(count);
        return st;
    }
    kms_status st = fhash_build(x, NULL, n, hash_limit(n), &h);
    if (st == KMS_OK)
        st = table_from_hash(&h, t);
    fhash_free(&h);
    if (st != KMS_ERR_INTERNAL)
        return st;
    return build_from_sort(x, n, t);
}

/* ---- dynamic programme --------------------------------------------------------- */

static void dp_free(dp *s)
{
    free(s->w);
    free(s->s1);
    free(s->s2);
}

static kms_status dp_init(dp *s, const distinct *t)
{
    size_t d = t->d;
    double tw = 0, tv = 0, ref;
    s->d = d;
    s->avx2 = kms_simd_avx2();
    s->w = malloc(sizeof *s->w * (d + 1));
    s->s1 = malloc(sizeof *s->s1 * (d + 1));
    s->s2 = malloc(sizeof *s->s2 * (d + 1));
    if (!s->w || !s->s1 || !s->s2)
        return KMS_ERR_NOMEM;
    for (size_t i = 0; i < d; i++) {
        tw += t->weight[i];
        tv += t->weight[i] * t->value[i];
    }
    ref = tv / tw;
    s->w[0] = s->s1[0] = s->s2[0] = 0;
    for (size_t i = 0; i < d; i++) {
        double v = (double)t->value[i] - ref, w = t->weight[i];
        s->w[i + 1] = s->w[i] + w;
        s->s1[i + 1] = s->s1[i] + w * v;
        s->s2[i + 1] = s->s2[i] + w * v * v;
    }
    return KMS_OK;
}

/* Sum of squares of distinct values j..i (inclusive) about their mean. */
static inline double cost(const dp *s, size_t j, size_t i)
{
    double w = s->w[i + 1] - s->w[j];
    double s1 = s->s1[i + 1] - s->s1[j];
    double c = (s->s2[i + 1] - s->s2[j]) - s1 * s1 / w;
    return c > 0 ? c : 0;
}

typedef struct row {
    const dp *s;
    const double *prev; /* D_{k-1} */
    double *cur;        /* D_k */
    uint32_t *arg;      /* start of the last cluster, or NULL */
} row;

#if KMS_HAVE_AVX2
/* scan's lanes four wide (AVX2, no FMA: the same IEEE operations, so the
 * same values): from *j while four fit, into *best / *bj as scan keeps
 * them. The division per candidate is most of the DP's time. */
KMS_AVX2_FN static void scan4(const row *r, size_t *j, size_t top, size_t i,
                              double *best, size_t *bj)
{
    const dp *s = r->s;
    const __m256d W = _mm256_set1_pd(s->w[i + 1]),
                  S1 = _mm256_set1_pd(s->s1[i + 1]),
                  S2 = _mm256_set1_pd(s->s2[i + 1]),
                  zero = _mm256_setzero_pd(), four = _mm256_set1_pd(4);
    size_t k = *j;
    __m256d b4 = _mm256_set1_pd(INFINITY), bi = _mm256_set1_pd((double)k),
            idx = _mm256_set_pd((double)k + 3, (double)k + 2, (double)k + 1,
                                (double)k);
    for (; k + 3 <= top; k += 4) {
        __m256d w = _mm256_sub_pd(W, _mm256_loadu_pd(s->w + k));
        __m256d s1 = _mm256_sub_pd(S1, _mm256_loadu_pd(s->s1 + k));
        __m256d c = _mm256_sub_pd(_mm256_sub_pd(S2, _mm256_loadu_pd(s->s2 + k)),
                                  _mm256_div_pd(_mm256_mul_pd(s1, s1), w));
        c = _mm256_max_pd(c, zero);
        __m256d v = _mm256_add_pd(_mm256_loadu_pd(r->prev + k - 1), c);
        __m256d lt = _mm256_cmp_pd(v, b4, _CMP_LT_OQ);
        b4 = _mm256_blendv_pd(b4, v, lt);
        bi = _mm256_blendv_pd(bi, idx, lt);
        idx = _mm256_add_pd(idx, four);
    }
    double b[4], at[4];
    _mm256_storeu_pd(b, b4);
    _mm256_storeu_pd(at, bi);
    int l = 0;
    for (int m = 1; m < 4; m++)
        if (b[m] < b[l] || (b[m] == b[l] && at[m] < at[l]))
            l = m;
    if (b[l] < *best) {
        *best = b[l];
        *bj = (size_t)at[l];
    }
    *j = k;
}
#endif

/* min over j in [jlo, top] of D_{k-1}[j-1] + cost(j, i), and the first j
 * that reaches it: what a scalar scan with "v < best" finds. Two lanes (four
 * with AVX2) of the same IEEE operations (so the same values), each keeping
 * its own first minimum; of equal lane minima the lower j wins. */
static inline double scan(const row *r, size_t jlo, size_t top, size_t i,
                          size_t *arg)
{
    const dp *s = r->s;
    double best = INFINITY;
    size_t bj = jlo, j = jlo;
#if KMS_HAVE_AVX2
    if (s->avx2 && top - jlo >= 8) {
        scan4(r, &j, top, i, &best, &bj);
    } else
#endif
#ifdef __SSE2__
    if (top - jlo >= 8) {
        const __m128d W = _mm_set1_pd(s->w[i + 1]),
                      S1 = _mm_set1_pd(s->s1[i + 1]),
                      S2 = _mm_set1_pd(s->s2[i + 1]),
                      zero = _mm_setzero_pd(), two = _mm_set1_pd(2);
        __m128d b2 = _mm_set1_pd(INFINITY), bi = _mm_set1_pd((double)jlo),
                idx = _mm_set_pd((double)jlo + 1, (double)jlo);
        for (; j + 1 <= top; j += 2) {
            __m128d w = _mm_sub_pd(W, _mm_loadu_pd(s->w + j));
            __m128d s1 = _mm_sub_pd(S1, _mm_loadu_pd(s->s1 + j));
            __m128d c = _mm_sub_pd(_mm_sub_pd(S2, _mm_loadu_pd(s->s2 + j)),
                                   _mm_div_pd(_mm_mul_pd(s1, s1), w));
            c = _mm_max_pd(c, zero); /* c > 0 ? c : 0 */
            __m128d v = _mm_add_pd(_mm_loadu_pd(r->prev + j - 1), c);
            __m128d lt = _mm_cmplt_pd(v, b2);
            b2 = _mm_or_pd(_mm_and_pd(lt, v), _mm_andnot_pd(lt, b2));
            bi = _mm_or_pd(_mm_and_pd(lt, idx), _mm_andnot_pd(lt, bi));
            idx = _mm_add_pd(idx, two);
        }
        double b[2], at[2];
        _mm_storeu_pd(b, b2);
        _mm_storeu_pd(at, bi);
        int l = b[1] < b[0] || (b[1] == b[0] && at[1] < at[0]);
        if (b[l] < best) {
            best = b[l];
            bj = (size_t)at[l];
        }
    }
#endif
    for (; j <= top; j++) {
        double v = r->prev[j - 1] + cost(s, j, i);
        if (v < best) {
            best = v;
            bj = j;
        }
    }
    *arg = bj;
    return best;
}

/* D_k[i] for i in [ilo, ihi], knowing the split lies in [jlo, jhi]. */
static void solve(const row *r, size_t ilo, size_t ihi, size_t jlo,
                  size_t jhi)
{
    while (ilo <= ihi) {
        size_t mid = ilo + (ihi - ilo) / 2, top = jhi < mid ? jhi : mid;
        size_t bj;
        double best = scan(r, jlo, top, mid, &bj);
        r->cur[mid] = best;
        if (r->arg)
            r->arg[mid] = (uint32_t)bj;
        if (mid > ilo)
            solve(r, ilo, mid - 1, jlo, bj);
        ilo = mid + 1; /* right half as a loop: recursion depth log d */
        jlo = bj;
    }
}

/* Runs rows 1..kmax (kmax <= d). last[k-1] = D_k[d-1]; arg (optional) holds
 * (kmax - 1) rows of d split points for rows 2..kmax. */
static kms_status run_dp(const dp *s, int kmax, double *last, uint32_t *arg)
{
    size_t d = s->d;
    double *prev = malloc(sizeof *prev * d), *cur = malloc(sizeof *cur * d);
    kms_status st = KMS_ERR_NOMEM;
    if (!prev || !cur)
        goto out;
    for (size_t i = 0; i < d; i++)
        prev[i] = cost(s, 0, i);
    last[0] = prev[d - 1];
    for (int k = 2; k <= kmax; k++) {
        row r = {s, prev, cur, arg ? arg + (size_t)(k - 2) * d : NULL};
        /* the last row is only needed at d - 1 */
        size_t ilo = k == kmax ? d - 1 : (size_t)k - 1;
        solve(&r, ilo, d - 1, (size_t)k - 1, d - 1);
        last[k - 1] = cur[d - 1];
        double *t = prev;
        prev = cur;
        cur = t;
    }
    st = KMS_OK;
out:
    free(prev);
    free(cur);
    return st;
}

/* ---- results -------------------------------------------------------------------- */

/* first[c]: index of the first distinct value of cluster c (k clusters). */
static void backtrack(const uint32_t *arg, size_t d, int k, uint32_t *first)
{
    size_t i = d - 1;
    for (int c = k - 1; c >= 1; c--) {
        first[c] = arg[(size_t)(c - 1) * d + i];
        i = first[c] - 1;
    }
    first[0] = 0;
}

/* Centres (double means stored as float) and the compactness about them. */
static double centres_of(const distinct *t, const uint32_t *first, int k,
                         float *centers)
{
    double total = 0;
    for (int c = 0; c < k; c++) {
        size_t end = c + 1 < k ? first[c + 1] : t->d;
        double w = 0, s = 0, ss = 0;
        for (size_t v = first[c]; v < end; v++) {
            w += t->weight[v];
            s += t->weight[v] * t->value[v];
        }
        centers[c] = (float)(s / w);
        for (size_t v = first[c]; v < end; v++) {
            double e = (double)t->value[v] - (double)centers[c];
            ss += t->weight[v] * e * e;
        }
        total += ss;
    }
    return total;
}

/* The first cluster (of k) whose largest value is >= v, else the last. */
static int32_t cluster_of(const distinct *t, const uint32_t *first, int k,
                          float v)
{
    int lo = 0, hi = k - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        size_t top = first[mid + 1] - 1;
        if (v <= t->value[top])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Value -> cluster of the integer table, lut[v - imin] for v in the
 * table's range: each cluster from its smallest value up to the next
 * cluster's, so a value absent from the samples (between two intervals)
 * gets a cluster too. */
static int32_t *int_lut(const distinct *t, const uint32_t *first, int k)
{
    int32_t *lut = malloc(sizeof *lut * t->range);
    if (!lut)
        return NULL;
    for (int c = 0; c < k; c++) {
        int32_t a = c ? (int32_t)t->value[first[c]] - t->imin : 0;
        int32_t b = c + 1 < k ? (int32_t)t->value[first[c + 1]] - t->imin
                              : (int32_t)t->range;
        for (int32_t v = a; v < b; v++)
            lut[v] = c;
    }
    return lut;
}

/* Each sample goes to the cluster whose interval of values holds it (the
 * sorted-table path; the integer and hash paths look it up). */
static void label_samples(const float *x, size_t n, const distinct *t,
                          const uint32_t *first, int k, int32_t *labels)
{
    enum { FEW = 8 };
    if (k <= FEW) {
        /* the number of clusters whose top value lies below x: one compare
         * per cluster boundary, which vectorises */
        float top[FEW];
        for (int c = 0; c + 1 < k; c++)
            top[c] = t->value[first[c + 1] - 1];
        for (size_t i = 0; i < n; i++)
            labels[i] = k > 1 && x[i] > top[0];
        for (int c = 1; c + 1 < k; c++)
            for (size_t i = 0; i < n; i++)
                labels[i] += x[i] > top[c];
        return;
    }
    for (size_t i = 0; i < n; i++) { /* first cluster whose top is >= x */
        labels[i] = cluster_of(t, first, k, x[i]);
    }
}

/* k >= d: one cluster per distinct value, the spare centres repeat the
 * largest value and stay empty. */
static void one_per_value(const distinct *t, int k, uint32_t *first,
                          float *centers)
{
    for (size_t v = 0; v < t->d; v++) {
        first[v] = (uint32_t)v;
        centers[v] = t->value[v];
    }
    for (int c = (int)t->d; c < k; c++)
        centers[c] = t->value[t->d - 1];
}

/* The optimum of table t in k clusters: first[] (k entries), centres and
 * compactness. *used: the clusters that hold values, min(k, d). */
static kms_status optimum(const distinct *t, int k, uint32_t *first,
                          float *centers, double *total, int *used)
{
    dp s = {0};
    uint32_t *arg = NULL;
    double *last = NULL;
    kms_status st = KMS_ERR_NOMEM;
    *total = 0;
    *used = k;
    if ((size_t)k >= t->d) {
        one_per_value(t, k, first, centers);
        *used = (int)t->d;
        return KMS_OK;
    }
    if (!(last = malloc(sizeof *last * (size_t)k))
        || (k > 1 && !(arg = malloc(sizeof *arg * t->d * (size_t)(k - 1))))
        || (st = dp_init(&s, t)) != KMS_OK
        || (st = run_dp(&s, k, last, arg)) != KMS_OK)
        goto out;
    backtrack(arg, t->d, k, first);
    *total = centres_of(t, first, k, centers);
out:
    free(arg);
    free(last);
    dp_free(&s);
    return st;
}

/* The optimum of table t, then the labels of the n values x the table was
 * built from (labels may be NULL). */
static kms_status optimum_labels(const distinct *t, int k, const float *x,
                                 size_t n, int32_t *labels, float *centers,
                                 double *compactness)
{
    uint32_t *first = malloc(sizeof *first * (size_t)k);
    double total = 0;
    int used = k;
    kms_status st = first ? optimum(t, k, first, centers, &total, &used)
                          : KMS_ERR_NOMEM;
    if (st == KMS_OK && labels)
        label_samples(x, n, t, first, used, labels);
    if (st == KMS_OK && compactness)
        *compactness = total;
    free(first);
    return st;
}

static kms_status nomem(kms_status st, kms_error *err)
{
    if (st == KMS_ERR_NOMEM)
        kms_error_set(err, st, NULL, 0, NULL, "kmeans optimal: out of memory");
    return st;
}

/* GCC would vectorise the table look-ups into lane-by-lane extracts and
 * inserts, slower than plain loads. */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_VECTORISE __attribute__((optimize("no-tree-vectorize")))
#else
#define NO_VECTORISE
#endif

/* Labels through the integer table's lut; left-out samples get lo's here
 * (label_left_out corrects them). */
#define LABEL_LUT(name, type, masked)                                          \
    NO_VECTORISE static void name(const type *x, const uint8_t *valid,        \
                                  size_t n, int32_t lo, const int32_t *lut,   \
                                  int32_t *labels)                            \
    {                                                                          \
        if (!valid) {                                                          \
            for (size_t i = 0; i < n; i++)                                     \
                labels[i] = lut[(int32_t)x[i] - lo];                           \
            return;                                                            \
        }                                                                      \
        enum { BLOCK = 512 };                                                  \
        int32_t idx[BLOCK];                                                    \
        for (size_t i = 0; i < n; i += BLOCK) {                                \
            size_t m = n - i < BLOCK ? n - i : BLOCK;                          \
            masked(x + i, valid + i, m, lo, idx);                              \
            for (size_t k = 0; k < m; k++)                                     \
                labels[i + k] = lut[idx[k]];                                   \
        }                                                                      \
    }
LABEL_LUT(label_floats, float, masked_index)
LABEL_LUT(label_s16, int16_t, masked_s16)
#undef LABEL_LUT

/* The left-out samples (valid[i] == 0) to the nearest of the k centres,
 * as kms_kmeans_quantize labels them; a run of one value costs one search. */
static void label_left_out(const float *x, const uint8_t *valid, size_t n,
                           const float *centers, int k, int32_t *labels)
{
    uint32_t last = 0;
    int32_t label = kms_quantize_nearest1(x[0], centers, k);
    memcpy(&last, x, sizeof last);
    for (size_t i = 0; i < n;) {
        const uint8_t *z = memchr(valid + i, 0, n - i);
        if (!z)
            break;
        for (i = (size_t)(z - valid); i < n && !valid[i]; i++) {
            uint32_t u;
            memcpy(&u, x + i, sizeof u);
            if (u != last) {
                label = kms_quantize_nearest1(x[i], centers, k);
                last = u;
            }
            labels[i] = label;
        }
    }
}

/* Integer samples: counting table, optimum, labels through the lut. One of
 * x (floats) and s (int16) is given. */
static kms_status int_run(const float *x, const int16_t *s,
                          const uint8_t *valid, size_t n, size_t npad, int32_t lo,
                          int32_t hi, int k, int32_t *labels, float *centers,
                          double *compactness)
{
    size_t range = (size_t)((int64_t)hi - lo) + 1;
    distinct t = {0};
    uint32_t *count = calloc(4 * range, sizeof *count);
    uint32_t *first = malloc(sizeof *first * (size_t)k);
    int32_t *lut = NULL;
    double total = 0;
    int used = k;
    kms_status st = KMS_ERR_NOMEM;
    if (!count || !first)
        goto out;
    if (x)
        count_floats(x, valid, n, lo, range, count);
    else
        count_s16(s, valid, n, lo, range, count);
    count[0] -= (uint32_t)npad; /* the left-out samples, counted as lo */
    if ((st = table_from_counts(count, lo, range, &t)) != KMS_OK
        || (st = optimum(&t, k, first, centers, &total, &used)) != KMS_OK)
        goto out;
    if (labels && x && used <= FEW_COMPARES) {
        /* one or two boundaries: compare passes (four lanes) beat the
         * table's one look-up per sample; the same labels */
        label_samples(x, n, &t, first, used, labels);
    } else if (labels) {
        if (!(lut = int_lut(&t, first, used))) {
            st = KMS_ERR_NOMEM;
            goto out;
        }
        if (x)
            label_floats(x, valid, n, lo, lut, labels);
        else
            label_s16(s, valid, n, lo, lut, labels);
    }
    if (compactness)
        *compactness = total;
out:
    free(lut);
    free(first);
    free(count);
    distinct_free(&t);
    return st;
}

/* Floats with few distinct values: the hash table, optimum, labels looked
 * up by value. KMS_ERR_INTERNAL: too many values (or not finite), sort. */
static kms_status hash_run(const float *x, const uint8_t *valid, size_t n,
                           size_t limit, int k, int32_t *labels,
                           float *centers, double *compactness)
{
    fhash h = {0};
    distinct t = {0};
    uint32_t *first = malloc(sizeof *first * (size_t)k);
    double total = 0;
    int used = k;
    kms_status st = first ? fhash_build(x, valid, n, limit, &h)
                          : KMS_ERR_NOMEM;
    if (st != KMS_OK || (st = table_from_hash(&h, &t)) != KMS_OK
        || (st = optimum(&t, k, first, centers, &total, &used)) != KMS_OK)
        goto out;
    if (labels && used <= 8) {
        /* up to seven boundaries: compare passes (four lanes) beat a hash
         * probe per sample; the same labels */
        label_samples(x, n, &t, first, used, labels);
    } else if (labels) {
        if (!(h.label = malloc(sizeof *h.label * (h.mask + 1)))) {
            st = KMS_ERR_NOMEM;
            goto out;
        }
        for (size_t v = 0, c = 0; v < t.d; v++) { /* values ascend */
            while (c + 1 < (size_t)used && v >= first[c + 1])
                c++;
            h.label[fhash_slot(&h, float_key(t.value[v]))] = (int32_t)c;
        }
        uint32_t last = 0;
        int32_t label = 0;
        for (size_t i = 0; i < n; i++) {
            if (valid && !valid[i]) {
                labels[i] = 0;
                continue;
            }
            uint32_t key = float_key(x[i]);
            if (key != last) {
                label = h.label[fhash_slot(&h, key)];
                last = key;
            }
            labels[i] = label;
        }
    }
    if (compactness)
        *compactness = total;
out:
    free(first);
    fhash_free(&h);
    distinct_free(&t);
    return st;
}

/* kms_kmeans_run's check, on the valid samples (the index counts them). */
static kms_status check_finite_valid(const float *x, const uint8_t *valid,
                                     size_t n, kms_error *err)
{
    for (size_t i = 0, j = 0; i < n; i++) {
        if (valid && !valid[i])
            continue;
        if (!isfinite(x[i]))
            return kms_error_set(err, KMS_ERR_INPUT, NULL, 0, NULL,
                                 "kmeans: sample %zu is %s", j,
                                 isnan(x[i]) ? "NaN" : "infinite");
        j++;
    }
    return KMS_OK;
}

/* All samples, or the valid ones; every sample labelled. */
static kms_status masked_run(const float *x, const uint8_t *valid, size_t n,
                             size_t nvalid, int k, int32_t *labels,
                             float *centers, double *compactness,
                             kms_error *err)
{
    int32_t lo, hi;
    kms_status st;
    if (int_bounds(x, valid, n, &lo, &hi) && (int64_t)hi - lo < MAX_INT_RANGE)
        st = int_run(x, NULL, valid, n, n - nvalid, lo, hi, k, labels,
                     centers, compactness);
    else if ((st = check_finite_valid(x, valid, n, err)) != KMS_OK)
        return st;
    else
        st = hash_run(x, valid, n, hash_limit(nvalid), k, labels, centers,
                      compactness);
    if (st == KMS_ERR_INTERNAL) {
        if (!valid) {
            distinct t = {0};
            st = build_from_sort(x, n, &t);
            if (st == KMS_OK)
                st = optimum_labels(&t, k, x, n, labels, centers,
                                    compactness);
            distinct_free(&t);
            return nomem(st, err);
        }
        /* the valid samples copied out, sorted, their labels put back */
        float *y = calloc(nvalid ? nvalid : 1, sizeof *y);
        int32_t *ly = labels ? malloc(sizeof *ly * (nvalid ? nvalid : 1))
                             : NULL;
        st = KMS_ERR_NOMEM;
        if (y && (ly || !labels)) {
            size_t m = 0;
            for (size_t i = 0; i < n; i++)
                if (valid[i])
                    y[m++] = x[i];
            distinct t = {0};
            st = build_from_sort(y, m, &t);
            if (st == KMS_OK)
                st = optimum_labels(&t, k, y, m, ly, centers, compactness);
            distinct_free(&t);
            for (size_t i = 0, j = 0; st == KMS_OK && labels && i < n; i++)
                labels[i] = valid[i] ? ly[j++] : 0;
        }
        free(y);
        free(ly);
    }
    if (st == KMS_OK && valid && labels && nvalid < n)
        label_left_out(x, valid, n, centers, k, labels);
    return nomem(st, err);
}

kms_status kms_optimal_run(const float *values, size_t n, int k,
                           int32_t *labels, float *centers,
                           double *compactness, kms_error *err)
{
    return masked_run(values, NULL, n, n, k, labels, centers, compactness,
                      err);
}

kms_status kms_optimal_hist_run(const float *values, const uint64_t *counts,
                                size_t bins, int k, int32_t *labels,
                                float *centers, double *compactness,
                                kms_error *err)
{
    distinct t = {0};
    kms_status st = build_from_hist(values, counts, bins, &t);
    if (st == KMS_OK)
        st = optimum_labels(&t, k, values, bins, labels, centers,
                            compactness);
    distinct_free(&t);
    return nomem(st, err);
}

kms_status kms_optimal_wcss_run(const float *values, size_t n, int kmax,
                                double *wcss, kms_error *err)
{
    distinct t = {0};
    dp s = {0};
    kms_status st = build_distinct(values, n, &t);
    if (st != KMS_OK)
        goto out;
    int kdp = (size_t)kmax < t.d ? kmax : (int)t.d;
    if ((st = dp_init(&s, &t)) != KMS_OK || (st = run_dp(&s, kdp, wcss, NULL)))
        goto out;
    /* d clusters or more: every value alone, exactly 0 */
    for (size_t k = t.d; k <= (size_t)kmax; k++)
        wcss[k - 1] = 0;
out:
    dp_free(&s);
    distinct_free(&t);
    return nomem(st, err);
}

/* ---- public entries with their own validation ---------------------------------- */

static kms_status check_k(const void *x, const float *centers, size_t n,
                          size_t nvalid, int k, kms_error *err)
{
    if ((n && !x) || !centers)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "kmeans: NULL samples or centers");
    if (k < 1)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "kmeans: k is %d, must be >= 1", k);
    if (nvalid < (size_t)k)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "kmeans: %zu samples for k = %d clusters", nvalid,
                             k);
    if (nvalid > INT32_MAX)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "kmeans: too many samples");
    return KMS_OK;
}

kms_status kms_kmeans_optimal_masked(const float *samples,
                                     const uint8_t *valid, size_t n, int k,
                                     int32_t *labels, float *centers,
                                     double *compactness, kms_error *err)
{
    size_t nvalid = n;
    if (valid && n) {
        nvalid = 0;
        for (size_t i = 0; i < n; i++) /* vectorises */
            nvalid += valid[i] != 0;
    }
    kms_status st = check_k(samples, centers, n, nvalid, k, err);
    if (st != KMS_OK)
        return st;
    return masked_run(samples, nvalid == n ? NULL : valid, n, nvalid, k,
                      labels, centers, compactness, err);
}

kms_status kms_kmeans_optimal_s16(const int16_t *samples, size_t n, int k,
                                  int32_t *labels, float *centers,
                                  double *compactness, kms_error *err)
{
    kms_status st = check_k(samples, centers, n, n, k, err);
    if (st != KMS_OK)
        return st;
    int16_t lo = samples[0], hi = samples[0];
    for (size_t i = 0; i < n; i++) { /* int16 lanes: pminsw, pmaxsw */
        lo = samples[i] < lo ? samples[i] : lo;
        hi = samples[i] > hi ? samples[i] : hi;
    }
    return nomem(int_run(NULL, samples, NULL, n, 0, lo, hi, k, labels, centers,
                         compactness),
                 err);
}
