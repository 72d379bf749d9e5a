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
 * integers spanning at most 65536 values (CT Hounsfield units: O(n)), from
 * a radix sort of the float bits otherwise (exact for any float), or
 * straight from a caller's histogram; the rest is the same for all three. */
#include "kmeans_internal.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_INT_RANGE = 65536 };

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

/* Are all samples integers? They lie in the int32 range. No early exit,
 * so the loop vectorises. */
static bool all_integers(const float *x, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= (float)(int32_t)x[i] != x[i];
    return !bad;
}

/* Counting table; returns 1 when a sample is not an integer (try sorting).
 * Neighbouring samples often share a value, and one table would make each
 * count wait for the last; four take turns. */
static int count_integers(const float *x, size_t n, int32_t imin,
                          size_t range, uint32_t *count)
{
    if (!all_integers(x, n))
        return 1;
    uint32_t *c[4] = {count, count + range, count + 2 * range,
                      count + 3 * range};
    enum { BLOCK = 512 };
    int32_t idx[BLOCK];
    for (size_t i = 0; i < n; i += BLOCK) {
        size_t m = n - i < BLOCK ? n - i : BLOCK, j = 0;
        for (size_t k = 0; k < m; k++) /* vectorises */
            idx[k] = (int32_t)x[i + k] - imin;
        for (; j + 4 <= m; j += 4)
            for (int t = 0; t < 4; t++)
                c[t][idx[j + t]]++;
        for (; j < m; j++)
            c[0][idx[j]]++;
    }
    for (size_t v = 0; v < range; v++)
        count[v] += c[1][v] + c[2][v] + c[3][v];
    return 0;
}

/* Returns KMS_OK, KMS_ERR_NOMEM, or KMS_ERR_INTERNAL for "not integers". */
static kms_status build_from_counts(const float *x, size_t n, float lo,
                                    float hi, distinct *t)
{
    int32_t imin = (int32_t)floorf(lo);
    size_t range = (size_t)((int64_t)ceilf(hi) - imin) + 1, d = 0;
    uint32_t *count = calloc(4 * range, sizeof *count);
    kms_status st = KMS_ERR_INTERNAL;
    if (!count)
        return KMS_ERR_NOMEM;
    if (count_integers(x, n, imin, range, count))
        goto out;
    for (size_t v = 0; v < range; v++)
        d += count[v] != 0;
    if ((st = distinct_alloc(t, d)) != KMS_OK)
        goto out;
    d = 0;
    for (size_t v = 0; v < range; v++)
        if (count[v]) {
            t->value[d] = (float)(imin + (int64_t)v);
            t->weight[d++] = count[v];
        }
    t->imin = imin;
    t->range = range;
out:
    free(count);
    return st;
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

/* Smallest and largest of n >= 1 finite samples (min/max of -0 and +0
 * may be either: they floor and ceil alike). */
static void min_max(const float *x, size_t n, float *lo, float *hi)
{
    float l = x[0], h = x[0];
    size_t i = 0;
#ifdef __SSE2__
    /* four lanes per instruction; without SSE the compiler keeps one */
    __m128 l4 = _mm_set1_ps(x[0]), h4 = l4;
    for (; i + 4 <= n; i += 4) {
        __m128 v = _mm_loadu_ps(x + i);
        l4 = _mm_min_ps(l4, v);
        h4 = _mm_max_ps(h4, v);
    }
    float lanes[8];
    _mm_storeu_ps(lanes, l4);
    _mm_storeu_ps(lanes + 4, h4);
    for (int j = 0; j < 4; j++) {
        l = lanes[j] < l ? lanes[j] : l;
        h = lanes[4 + j] > h ? lanes[4 + j] : h;
    }
#endif
    for (; i < n; i++) {
        l = x[i] < l ? x[i] : l;
        h = x[i] > h ? x[i] : h;
    }
    *lo = l;
    *hi = h;
}

static kms_status build_distinct(const float *x, size_t n, distinct *t)
{
    float lo, hi;
    min_max(x, n, &lo, &hi);
    memset(t, 0, sizeof *t);
    if (lo >= -2147483648.0f && hi < 2147483648.0f
        && (double)ceilf(hi) - (double)floorf(lo) < MAX_INT_RANGE) {
        kms_status st = build_from_counts(x, n, lo, hi, t);
        if (st != KMS_ERR_INTERNAL)
            return st;
    }
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

/* D_k[i] for i in [ilo, ihi], knowing the split lies in [jlo, jhi]. */
static void solve(const row *r, size_t ilo, size_t ihi, size_t jlo,
                  size_t jhi)
{
    while (ilo <= ihi) {
        size_t mid = ilo + (ihi - ilo) / 2, top = jhi < mid ? jhi : mid;
        size_t bj = jlo;
        double best = INFINITY;
        for (size_t j = jlo; j <= top; j++) {
            double v = r->prev[j - 1] + cost(r->s, j, mid);
            if (v < best) {
                best = v;
                bj = j;
            }
        }
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

/* Each sample goes to the cluster whose interval of values holds it. */
static kms_status label_samples(const float *x, size_t n, const distinct *t,
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
        return KMS_OK;
    }
    if (t->range) { /* integer path: value -> cluster table */
        int32_t *lut = malloc(sizeof *lut * t->range);
        if (!lut)
            return KMS_ERR_NOMEM;
        for (int c = 0; c < k; c++) {
            size_t end = c + 1 < k ? first[c + 1] : t->d;
            int32_t a = (int32_t)t->value[first[c]] - t->imin;
            int32_t b = (int32_t)t->value[end - 1] - t->imin;
            for (int32_t v = a; v <= b; v++)
                lut[v] = c;
        }
        for (size_t i = 0; i < n; i++)
            labels[i] = lut[(int32_t)x[i] - t->imin];
        free(lut);
        return KMS_OK;
    }
    for (size_t i = 0; i < n; i++) { /* first cluster whose top is >= x */
        int lo = 0, hi = k - 1;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            size_t top = first[mid + 1] - 1;
            if (x[i] <= t->value[top])
                hi = mid;
            else
                lo = mid + 1;
        }
        labels[i] = lo;
    }
    return KMS_OK;
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
        st = label_samples(x, n, t, first, used, labels);
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

kms_status kms_optimal_run(const float *values, size_t n, int k,
                           int32_t *labels, float *centers,
                           double *compactness, kms_error *err)
{
    distinct t = {0};
    kms_status st = build_distinct(values, n, &t);
    if (st == KMS_OK)
        st = optimum_labels(&t, k, values, n, labels, centers, compactness);
    distinct_free(&t);
    return nomem(st, err);
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
