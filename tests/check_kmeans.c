/* Check suite for kmeans: the native k-means library (cv::RNG, cv::kmeans
 * reimplementation, exact 1-D optimum). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmeans.h"
#include "kmeans_internal.h"
#include "test_util.h"

/* ---- reference numbers from OpenCV ------------------------------------------
 *
 * Obtained with OpenCV 4.6.0 (Debian libopencv-dev) by a small C++ program,
 * g++ ref.cpp $(pkg-config --cflags --libs opencv4):
 *  - rng_refs: cv::RNG r(seed); r.next(); r.uniform(0, 100);
 *    r.uniform(0.f, 1.f); r.uniform(0.0, 1.0); r.uniform(-50, 50);
 *    r.uniform(-3.5f, 7.25f); r.uniform(-1e3, 2.5); printed with %u/%d/%a.
 *  - cv_cases: make_data() below (same LCG) as an N x dims CV_32F Mat, labels
 *    preset to (i * 7) % k, cv::setRNGSeed(seed); cv::kmeans(data, k, labels,
 *    TermCriteria(criteria, max_iter, epsilon), attempts, flags, centers):
 *    compactness, FNV-1a hash of the labels, centres (%a). init_centers:
 *    OpenCV's own static generateCentersPP (copied verbatim from kmeans.cpp,
 *    run with cv::RNG(seed) and cv::hal::normL2Sqr_), PP cases only.
 *    compactness2 / centers2: the same call with TermCriteria(COUNT, 1, 0)
 *    (clamped to 2 iterations) and 1 attempt, i.e. the centres of the first
 *    assignment, which pin the initialisation for every init method. */

typedef struct rng_ref {
    uint64_t seed;
    uint32_t next;
    int uni_int;       /* uniform(0, 100) */
    float uni_float;   /* uniform(0.f, 1.f) */
    double uni_double; /* uniform(0.0, 1.0) */
    int uni_int2;      /* uniform(-50, 50) */
    float uni_float2;  /* uniform(-3.5f, 7.25f) */
    double uni_double2; /* uniform(-1e3, 2.5) */
} rng_ref;

typedef struct cv_case {
    int dims, k;
    kms_km_init init;
    int attempts, criteria, max_iter;
    double epsilon;
    int seed, integral, distinct; /* make_data arguments */
    double compactness;
    uint32_t label_hash;
    double compactness2;
    float centers[24], init_centers[24], centers2[24];
} cv_case;

static const rng_ref rng_refs[] = {
    {0x0ull, 130063606u, 97, 0x1.cd57aap-1f, 0x1.41ee2977bf9fdp-2,
     -40, -0x1.20d47p-1f, -0x1.70a021f9b7d7dp+9},
    {0x1ull, 4164903690u, 92, 0x1.7a439ep-2f, 0x1.c2aba3e3c5ad5p-5,
     -47, -0x1.3bec72p+1f, -0x1.480be87f18accp+7},
    {0x2aull, 3127263140u, 48, 0x1.078bf6p-1f, 0x1.3e051c97cdcep-2,
     40, -0x1.94cac6p+1f, -0x1.e83d0930a354fp+9},
    {0x12345678ull, 2063845552u, 84, 0x1.ac01dcp-1f, 0x1.cca32c5dc2371p-1,
     -23, 0x1.800b18p+2f, -0x1.de22f57e21f4ap+8},
    {0xfedcba9876543210ull, 4285718328u, 87, 0x1.da78cap-3f,
     0x1.73f7fcf77213ap-1, -4, 0x1.f1a008p+0f, -0x1.3f822fa379344p+9},
};

static const cv_case cv_cases[] = {
    {1, 3, KMS_KM_INIT_PP, 1, 3, 10, 0x1p+0, 7, 0, 0,
     0x1.0bf82335b444p+14, 0x3546801au, 0x1.0f161499c3ep+14,
        {0x1.e61b3p+3f, 0x1.4c8612p+6f, 0x1.804a3cp+5f},
        {0x1.06e148p+4f, 0x1.4cd70ap+6f, 0x1.653334p+5f},
        {0x1.e61b3p+3f, 0x1.499eb4p+6f, 0x1.79e87ep+5f}},
    {1, 3, KMS_KM_INIT_RANDOM, 3, 3, 10, 0x1p+0, 7, 0, 0,
     0x1.0be713173d4ap+14, 0xecc4ff34u, 0x1.4879a64a8efap+17,
        {0x1.ee9de4p+3f, 0x1.825df4p+5f, 0x1.4c8612p+6f},
        {0x0p+0f, 0x0p+0f, 0x0p+0f},
        {0x1.5c28f6p-2f, 0x1.8f5c28p-1f, 0x1.9d858ap+5f}},
    {3, 4, KMS_KM_INIT_PP, 3, 3, 10, 0x1p+0, 12345, 1, 0,
     0x1.6399bfac4p+20, 0xf61d2683u, 0x1.7da06a8bp+20,
        {0x1.284646p+7f, 0x1.1a8284p+6f, 0x1.e0282ap+5f, 0x1.832298p+6f,
         0x1.8be454p+7f, 0x1.e4c1bcp+5f, 0x1.a1368ep+7f, 0x1.3e0864p+7f,
         0x1.49e6dp+7f, 0x1.212d2ep+6f, 0x1.fefafcp+6f, 0x1.663c3ep+7f},
        {0x1.1ep+7f, 0x1.8cp+6f, 0x1.4p+4f, 0x1.a8p+6f, 0x1.78p+7f,
         0x1.08p+6f, 0x1.eep+7f, 0x1.78p+6f, 0x1.96p+7f, 0x1.18p+6f,
         0x1.3ep+7f, 0x1.dep+7f},
        {0x1.24ccccp+7f, 0x1.3fed62p+6f, 0x1.cefb58p+5f, 0x1.a32c24p+6f,
         0x1.7e2c24p+7f, 0x1.539612p+6f, 0x1.a1ccccp+7f, 0x1.fd3332p+6f,
         0x1.66ccccp+7f, 0x1.4167cap+6f, 0x1.1e2984p+7f, 0x1.913e46p+7f}},
    {3, 4, KMS_KM_INIT_RANDOM, 1, 3, 10, 0x1p+0, 12345, 1, 0,
     0x1.61590bb1ep+20, 0x1c584a9cu, 0x1.aebf4b882p+20,
        {0x1.371556p+6f, 0x1.842aacp+7f, 0x1.6d8p+6f, 0x1.876666p+6f,
         0x1.a1199ap+6f, 0x1.90b334p+7f, 0x1.aca1bp+7f, 0x1.53047ep+7f,
         0x1.333a62p+7f, 0x1.17745cp+7f, 0x1.2253c8p+6f, 0x1.e66666p+5f},
        {0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f,
         0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f},
        {0x1.6d1eb8p+6f, 0x1.9d28f6p+7f, 0x1.bf47aep+6f, 0x1.5e1084p+6f,
         0x1.67def8p+6f, 0x1.2f6b5ap+7f, 0x1.a6b334p+7f, 0x1.0a3334p+7f,
         0x1.d67334p+6f, 0x1.45p+6f, 0x1.25p+6f, 0x1.78p+3f}},
    {3, 5, KMS_KM_INIT_PP, 1, 1, 100, 0x0p+0, 99, 0, 0,
     0x1.52984363f4p+17, 0x8b639924u, 0x1.678c8fb264p+17,
        {0x1.8249b8p+5f, 0x1.463c42p+4f, 0x1.2eeddcp+6f, 0x1.fb1644p+5f,
         0x1.29c21ep+6f, 0x1.2db332p+6f, 0x1.e82ea4p+4f, 0x1.3fcdecp+6f,
         0x1.8b6e5cp+4f, 0x1.515fbep+6f, 0x1.63f494p+5f, 0x1.b41ba4p+4f,
         0x1.a31fbep+4f, 0x1.e5852p+4f, 0x1.0653f8p+5f},
        {0x1.5beb86p+5f, 0x1.9a8f5cp+3f, 0x1.e6f5c2p+5f, 0x1.f3999ap+5f,
         0x1.410a3ep+6f, 0x1.2fccccp+6f, 0x1.9ae148p+4f, 0x1.7070a4p+6f,
         0x1.c47ae2p+4f, 0x1.6a1eb8p+6f, 0x1.4947aep+5f, 0x1.8bd70ap+4f,
         0x1.ffd70ap+4f, 0x1.9c3d7p+5f, 0x1.1b5c28p+4f},
        {0x1.5d4744p+5f, 0x1.31c76p+4f, 0x1.049f3ap+6f, 0x1.fb1644p+5f,
         0x1.29c21ep+6f, 0x1.2db332p+6f, 0x1.d38b34p+4f, 0x1.52f4a2p+6f,
         0x1.b3f3dcp+4f, 0x1.5b6c32p+6f, 0x1.69fb48p+5f, 0x1.b1640ep+4f,
         0x1.ca60dap+4f, 0x1.6dc3bp+5f, 0x1.891932p+4f}},
    {1, 4, KMS_KM_INIT_PP, 3, 2, 0, 0x1.47ae147ae147bp-7, 99, 1, 0,
     0x1.d99ea5a5555f8p+15, 0x97d79b06u, 0x1.f3f354679ap+15,
        {0x1.3d05f4p+7f, 0x1.b05396p+4f, 0x1.b5eefp+7f, 0x1.7baaacp+6f},
        {0x1.2ap+7f, 0x1.1p+5f, 0x1.bap+7f, 0x1.3p+6f},
        {0x1.2d84bep+7f, 0x1.9c415cp+4f, 0x1.b5eefp+7f, 0x1.56f97p+6f}},
    {3, 8, KMS_KM_INIT_PP, 2, 3, 10, 0x1p+0, 3, 1, 5,
     0x1.ac8ebd46p+14, 0xab7cd0b3u, 0x1.031c5f706p+15,
        {0x1.ce38e4p+2f, 0x1.f1c71cp+1f, 0x1.18p+5f, 0x1.e9696ap+3f,
         0x1.0e9696p+5f, 0x1.d69696p+2f, 0x1.638e3ap+2f, 0x1.e8e38ep+4f,
         0x1.138e3ap+5f, 0x1.4p+4f, 0x1.d79436p+3f, 0x1.379436p+4f,
         0x1.19bd38p+5f, 0x1.69bd38p+2f, 0x1.f4de9cp+4f, 0x1.05d174p+5f,
         0x1.31745ep+3f, 0x1.7a2e8cp+2f, 0x1.04bda2p+2f, 0x1.1097b4p+3f,
         0x1.f1c71cp+2f, 0x1.aaaaacp+4f, 0x1.292492p+5f, 0x1.19e79ep+5f},
        {0x1.4p+5f, 0x1.4p+3f, 0x1.ep+4f, 0x1.4p+3f, 0x1.4p+3f, 0x1.ep+4f,
         0x0p+0f, 0x1.4p+5f, 0x1.4p+4f, 0x1.ep+4f, 0x1.ep+4f, 0x0p+0f,
         0x1.4p+4f, 0x1.4p+3f, 0x1.4p+3f, 0x1.4p+4f, 0x1.4p+5f, 0x1.4p+5f,
         0x0p+0f, 0x1.4p+3f, 0x0p+0f, 0x1.ep+4f, 0x1.4p+3f, 0x1.4p+5f},
        {0x1.28aaacp+5f, 0x1.c55556p+2f, 0x1.7cp+4f, 0x1.98e38ep+2f,
         0x1.5aaaaap+3f, 0x1.ff1c72p+4f, 0x1.52d2d2p+2f, 0x1.1cb4b4p+5f,
         0x1.52d2d2p+4f, 0x1.a4p+4f, 0x1.c55556p+4f, 0x1.255556p+2f,
         0x1.527628p+4f, 0x1.33b13cp+3f, 0x1.64ec5p+3f, 0x1.6f684cp+4f,
         0x1.255556p+5f, 0x1.225edp+5f, 0x1.d79436p+1f, 0x1.1e50d8p+3f,
         0x1.d79436p+1f, 0x1.ap+4f, 0x1.2p+3f, 0x1.4p+5f}},
    {3, 6, KMS_KM_INIT_RANDOM, 2, 3, 20, 0x1.999999999999ap-4, 5, 1, 4,
     0x1.601b18ecp+14, 0xb05f4edbu, 0x1.e0be6e374p+14,
        {0x1.98e38ep+4f, 0x1.638e3ap+2f, 0x1.871c72p+4f, 0x1.36db6ep+2f,
         0x1.892492p+4f, 0x1.64924ap+4f, 0x1.1d37a8p+3f, 0x1.8590b2p+2f,
         0x1.242c86p+2f, 0x1.4p+2f, 0x1.89d89ep+2f, 0x1.aec4eep+4f,
         0x1.8d097cp+4f, 0x1.871c72p+4f, 0x1.7b426p+4f, 0x1.2f96fap+4f,
         0x1.920d22p+4f, 0x1.276276p+2f},
        {0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f,
         0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f,
         0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f},
        {0x1.9d5556p+4f, 0x1.9p+2f, 0x1.b15556p+4f, 0x1.22e8bap+2f,
         0x1.61f07cp+4f, 0x1.83e0f8p+4f, 0x1.629838p+3f, 0x1.9f2298p+2f,
         0x1.7c8a62p+1f, 0x1.999998p+0f, 0x1.ccccccp+1f, 0x1.59999ap+4f,
         0x1.ep+4f, 0x1.ep+4f, 0x1.ap+4f, 0x1.2f286cp+4f, 0x1.6c35e6p+4f,
         0x1.8bca1cp+3f}},
    {3, 3, KMS_KM_INIT_LABELS, 2, 3, 10, 0x1p+0, 11, 0, 0,
     0x1.0c2f99ec9p+18, 0x5ed20a48u, 0x1.2728d359p+18,
        {0x1.129b46p+6f, 0x1.101758p+6f, 0x1.1cf87p+6f, 0x1.2c39f6p+6f,
         0x1.ffec8ep+4f, 0x1.c723ecp+4f, 0x1.3f23d4p+4f, 0x1.b287a6p+5f,
         0x1.551f7ap+5f},
        {0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f,
         0x0p+0f, 0x0p+0f},
        {0x1.b0fbcp+5f, 0x1.9b0144p+5f, 0x1.371p+6f, 0x1.658384p+5f,
         0x1.3dda0ep+6f, 0x1.cb6a9cp+4f, 0x1.a142c8p+5f, 0x1.f98d5ap+4f,
         0x1.7cb3b6p+4f}},
    {1, 5, KMS_KM_INIT_PP, 2, 3, 10, 0x1p+0, 21, 1, 3,
     0x0p+0, 0xb11506a1u, 0x0p+0,
        {0x0p+0f, 0x1.4p+3f, 0x1.4p+4f, 0x1.4p+3f, 0x0p+0f},
        {0x0p+0f, 0x1.4p+3f, 0x1.4p+4f, 0x1.4p+3f, 0x1.4p+3f},
        {0x0p+0f, 0x1.4p+3f, 0x1.4p+4f, 0x1.4p+3f, 0x0p+0f}},
    {2, 6, KMS_KM_INIT_RANDOM, 3, 3, 10, 0x1p+0, 8, 1, 2,
     0x0p+0, 0xb2a176d1u, 0x1.239f516cp+11,
        {0x1.4p+3f, 0x0p+0f, 0x0p+0f, 0x1.4p+3f, 0x1.4p+3f, 0x1.4p+3f,
         0x1.4p+3f, 0x1.4p+3f, 0x0p+0f, 0x0p+0f, 0x1.4p+3f, 0x1.4p+3f},
        {0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f,
         0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f, 0x0p+0f},
        {0x1.4p+3f, 0x0p+0f, 0x0p+0f, 0x1.4p+3f, 0x0p+0f, 0x1.4p+3f,
         0x1.4p+3f, 0x1.4p+3f, 0x0p+0f, 0x1.24c416p+2f, 0x0p+0f, 0x1.4p+3f}},
};

enum { CV_N = 200 };

/* ---- helpers -------------------------------------------------------------- */

/* The data of the OpenCV references: an LCG, integer or real valued. */
static float *make_data(int n, int dims, int integral, uint32_t seed,
                        int distinct)
{
    float *x = malloc(sizeof *x * (size_t)n * (size_t)dims);
    uint32_t s = seed;
    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < (size_t)n * (size_t)dims; i++) {
        s = s * 1664525u + 1013904223u;
        uint32_t r = s >> 8;
        if (distinct)
            x[i] = (float)(r % (uint32_t)distinct) * 10.f;
        else
            x[i] = integral ? (float)(r % 256u) : (float)(r % 10000u) / 100.f;
    }
    return x;
}

static uint32_t fnv(const int32_t *l, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint32_t)l[i];
        h *= 16777619u;
    }
    return h;
}

static uint32_t lcg_next(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static void assert_rel(double got, double want, double tol, const char *what)
{
    ck_assert_msg(fabs(got - want) <= tol * fabs(want) + 1e-30,
                  "%s: got %.17g, want %.17g", what, got, want);
}

static kms_kmeans_params params(int k, kms_km_method m)
{
    kms_kmeans_params p;
    kms_kmeans_params_default(&p);
    p.k = k;
    p.method = m;
    return p;
}

/* Runs kms_kmeans_run, failing the test on error. */
static double run_ok(const float *x, size_t n, int dims,
                     const kms_kmeans_params *p, int32_t *labels,
                     float *centers)
{
    kms_error err;
    double c = -1;
    kms_error_clear(&err);
    ck_assert_msg(kms_kmeans_run(x, n, dims, p, labels, centers, &c, &err)
                      == KMS_OK,
                  "kms_kmeans_run: %s", err.message);
    return c;
}

/* Runs kms_kmeans_run expecting code, and a message containing needle. */
static void run_fails(const float *x, size_t n, int dims,
                      const kms_kmeans_params *p, kms_status code,
                      const char *needle)
{
    int32_t labels[64] = {0};
    float centers[64];
    double c;
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_kmeans_run(x, n, dims, p, labels, centers, &c, &err),
                     code);
    ck_assert_int_eq(err.code, code);
    ck_assert_msg(strstr(err.message, needle) != NULL,
                  "message \"%s\" lacks \"%s\"", err.message, needle);
    ck_assert_ptr_null(strchr(err.message, '\n'));
}

/* Minimum WCSS of sorted v[0..n) in k contiguous groups, by brute force over
 * every set of k - 1 cut points. */
static double brute_wcss(const double *v, int n, int k)
{
    double best = INFINITY;
    int cut[4] = {0}; /* cut[c]: first index of group c, cut[0] = 0 */
    for (unsigned mask = 0; mask < 1u << (n - 1); mask++) {
        if (__builtin_popcount(mask) != k - 1)
            continue;
        int g = 1;
        for (int i = 1; i < n; i++)
            if (mask >> (i - 1) & 1)
                cut[g++] = i;
        double total = 0;
        for (int c = 0; c < k; c++) {
            int a = cut[c], b = c + 1 < k ? cut[c + 1] : n;
            double m = 0, ss = 0;
            for (int i = a; i < b; i++)
                m += v[i];
            m /= b - a;
            for (int i = a; i < b; i++)
                ss += (v[i] - m) * (v[i] - m);
            total += ss;
        }
        best = total < best ? total : best;
    }
    return best;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- Core: cv::RNG ---------------------------------------------------------- */

START_TEST(test_rng_matches_opencv)
{
    const rng_ref *r = &rng_refs[_i];
    kms_rng rng;
    kms_rng_seed(&rng, r->seed);
    ck_assert_uint_eq(kms_rng_next(&rng), r->next);
    ck_assert_int_eq(kms_rng_uniform_int(&rng, 0, 100), r->uni_int);
    ck_assert_msg(kms_rng_uniform_float(&rng, 0.f, 1.f) == r->uni_float,
                  "uniform(0.f, 1.f), seed %llx",
                  (unsigned long long)r->seed);
    ck_assert_msg(kms_rng_uniform_double(&rng, 0.0, 1.0) == r->uni_double,
                  "uniform(0.0, 1.0), seed %llx",
                  (unsigned long long)r->seed);
    ck_assert_int_eq(kms_rng_uniform_int(&rng, -50, 50), r->uni_int2);
    ck_assert(kms_rng_uniform_float(&rng, -3.5f, 7.25f) == r->uni_float2);
    ck_assert(kms_rng_uniform_double(&rng, -1e3, 2.5) == r->uni_double2);
}
END_TEST

START_TEST(test_rng_seed_zero_and_empty_range)
{
    kms_rng a, b;
    kms_rng_seed(&a, 0);
    ck_assert_uint_eq(a.state, 0xffffffffu); /* as cv::RNG(0) */
    kms_rng_seed(&b, 0xffffffffu);
    ck_assert_uint_eq(kms_rng_next(&a), kms_rng_next(&b));
    /* uniform(a, a) returns a without drawing, as cv */
    uint64_t before = a.state;
    ck_assert_int_eq(kms_rng_uniform_int(&a, 5, 5), 5);
    ck_assert_uint_eq(a.state, before);
    /* next(): state = (uint32)state * 4164903690 + (state >> 32) */
    kms_rng_seed(&a, 1);
    ck_assert_uint_eq(kms_rng_next(&a), 4164903690u);
    ck_assert_uint_eq(a.state, 4164903690ull);
}
END_TEST

/* ---- Core: lloyd against cv::kmeans ------------------------------------------- */

static void check_cv_case(const cv_case *c, int threads)
{
    size_t kd = (size_t)c->k * (size_t)c->dims;
    float *x = make_data(CV_N, c->dims, c->integral, 1000u + (uint32_t)c->seed,
                         c->distinct);
    int32_t labels[CV_N];
    float centers[24];
    kms_kmeans_params p = params(c->k, KMS_KM_LLOYD);
    p.init = c->init;
    p.attempts = c->attempts;
    p.criteria = c->criteria;
    p.max_iter = c->max_iter;
    p.epsilon = c->epsilon;
    p.seed = (uint64_t)(int64_t)c->seed; /* cv::setRNGSeed(int) */
    p.threads = threads;
    for (int i = 0; i < CV_N; i++)
        labels[i] = (i * 7) % c->k;
    double comp = run_ok(x, CV_N, c->dims, &p, labels, centers);
    assert_rel(comp, c->compactness, 1e-6, "compactness");
    ck_assert_uint_eq(fnv(labels, CV_N), c->label_hash);
    for (size_t j = 0; j < kd; j++)
        assert_rel(centers[j], c->centers[j], 1e-5, "centre");
#if defined(__x86_64__) && !defined(__FMA__)
    /* same float operations in the same order as cv: bit for bit where the
     * compiler cannot contract them into FMAs */
    ck_assert(comp == c->compactness);
    ck_assert_int_eq(memcmp(centers, c->centers, sizeof *centers * kd), 0);
#endif
    /* the first assignment: pins the initial centres */
    p.criteria = KMS_KM_TERM_COUNT;
    p.max_iter = 1;
    p.attempts = 1;
    for (int i = 0; i < CV_N; i++)
        labels[i] = (i * 7) % c->k;
    comp = run_ok(x, CV_N, c->dims, &p, labels, centers);
    assert_rel(comp, c->compactness2, 1e-6, "compactness after 1 step");
    for (size_t j = 0; j < kd; j++)
        assert_rel(centers[j], c->centers2[j], 1e-5, "centre after 1 step");
    free(x);
}

START_TEST(test_lloyd_matches_opencv)
{
    check_cv_case(&cv_cases[_i], 1);
    check_cv_case(&cv_cases[_i], 2);
}
END_TEST

START_TEST(test_pp_init_matches_opencv)
{
    const cv_case *c = &cv_cases[_i];
    if (c->init != KMS_KM_INIT_PP)
        return;
    float *x = make_data(CV_N, c->dims, c->integral, 1000u + (uint32_t)c->seed,
                         c->distinct);
    float centers[24];
    kms_rng rng;
    kms_error err;
    kms_pool *pool = kms_pool_create(1);
    kms_pp *pp = kms_pp_create(x, CV_N, c->dims, c->k, pool);
    ck_assert_ptr_nonnull(pp);
    kms_rng_seed(&rng, (uint64_t)(int64_t)c->seed);
    ck_assert_int_eq(kms_pp_run(pp, &rng, centers, &err), KMS_OK);
    for (int j = 0; j < c->k * c->dims; j++)
        ck_assert_msg(centers[j] == c->init_centers[j], "init centre %d", j);
    kms_pp_destroy(pp);
    kms_pool_destroy(pool);
    free(x);
}
END_TEST

/* ---- Core: known answers ------------------------------------------------------ */

START_TEST(test_known_answer_1d)
{
    static const float x[] = {1, 2, 3, 10, 11, 12};
    int32_t labels[6];
    float centers[2];
    for (int m = 0; m < 2; m++) {
        kms_kmeans_params p = params(2, m ? KMS_KM_LLOYD : KMS_KM_OPTIMAL);
        double c = run_ok(x, 6, 1, &p, labels, centers);
        kms_kmeans_canonicalize(labels, 6, centers, 2, 1);
        ck_assert(c == 4.0);
        ck_assert(centers[0] == 2.f && centers[1] == 11.f);
        for (int i = 0; i < 6; i++)
            ck_assert_int_eq(labels[i], i < 3 ? 0 : 1);
    }
}
END_TEST

START_TEST(test_known_answer_2d)
{
    /* two vertical pairs 10 apart: centres (0, 1) and (10, 1), WCSS 4 */
    static const float x[] = {10, 0, 0, 0, 10, 2, 0, 2};
    int32_t labels[4];
    float centers[4];
    kms_kmeans_params p = params(2, KMS_KM_AUTO);
    double c = run_ok(x, 4, 2, &p, labels, centers);
    kms_kmeans_canonicalize(labels, 4, centers, 2, 2);
    ck_assert(c == 4.0);
    ck_assert(centers[0] == 0.f && centers[1] == 1.f);
    ck_assert(centers[2] == 10.f && centers[3] == 1.f);
    ck_assert_int_eq(labels[0], 1);
    ck_assert_int_eq(labels[1], 0);
    ck_assert_int_eq(labels[2], 1);
    ck_assert_int_eq(labels[3], 0);
}
END_TEST

START_TEST(test_known_answer_k1)
{
    static const float x[] = {1, 2, 3, 4};
    int32_t labels[4];
    float centers[1];
    for (int m = 0; m < 2; m++) {
        kms_kmeans_params p = params(1, m ? KMS_KM_LLOYD : KMS_KM_OPTIMAL);
        double c = run_ok(x, 4, 1, &p, labels, centers);
        ck_assert(c == 5.0);
        ck_assert(centers[0] == 2.5f);
        for (int i = 0; i < 4; i++)
            ck_assert_int_eq(labels[i], 0);
    }
}
END_TEST

/* ---- Core: the exact 1-D optimum ---------------------------------------------- */

/* Small random samples, some with repeated values: the optimum over every
 * contiguous partition of the sorted values, from both entry points. */
START_TEST(test_optimal_equals_brute_force)
{
    uint32_t s = 77u + (uint32_t)_i * 1013u;
    int n = 2 + (int)(lcg_next(&s) % 11); /* 2..12 */
    int repeated = _i % 3 == 0;
    float x[12];
    double v[12], wcss[4];
    int32_t labels[12];
    float centers[4];
    for (int i = 0; i < n; i++) {
        uint32_t r = lcg_next(&s);
        x[i] = repeated ? (float)(r % 5) : (float)(r % 100000) / 997.f - 40.f;
        v[i] = x[i];
    }
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    int kmax = n < 4 ? n : 4;
    ck_assert_int_eq(kms_kmeans_optimal_wcss(x, (size_t)n, kmax, wcss, NULL),
                     KMS_OK);
    for (int k = 1; k <= kmax; k++) {
        double want = brute_wcss(v, n, k);
        kms_kmeans_params p = params(k, KMS_KM_OPTIMAL);
        double got = run_ok(x, (size_t)n, 1, &p, labels, centers);
        /* got uses float-rounded centres: a hair above the optimum */
        ck_assert_msg(fabs(got - want) <= 1e-9 * want + 1e-9,
                      "n %d k %d: optimal %.17g, brute force %.17g", n, k, got,
                      want);
        ck_assert_msg(fabs(wcss[k - 1] - want) <= 1e-9 * want + 1e-9,
                      "n %d k %d: wcss %.17g, brute force %.17g", n, k,
                      wcss[k - 1], want);
    }
}
END_TEST

/* Labels are intervals of the values, each centre the mean of its samples. */
START_TEST(test_optimal_labels_are_intervals)
{
    uint32_t s = 4242u + (uint32_t)_i;
    enum { N = 3000 };
    float *x = malloc(sizeof *x * N), centers[5];
    int32_t *labels = malloc(sizeof *labels * N);
    int k = 2 + _i % 4;
    for (int i = 0; i < N; i++) /* integer path on even _i, sort path on odd */
        x[i] = _i % 2 ? (float)(lcg_next(&s) % 100000) / 333.f
                      : (float)((int)(lcg_next(&s) % 1801) - 1200);
    kms_kmeans_params p = params(k, KMS_KM_OPTIMAL);
    double comp = run_ok(x, N, 1, &p, labels, centers);
    double sum[5] = {0}, ss = 0;
    float lo[5], hi[5];
    int cnt[5] = {0};
    for (int c = 0; c < k; c++) {
        lo[c] = INFINITY;
        hi[c] = -INFINITY;
    }
    for (int i = 0; i < N; i++) {
        int c = labels[i];
        ck_assert(c >= 0 && c < k);
        sum[c] += x[i];
        cnt[c]++;
        lo[c] = x[i] < lo[c] ? x[i] : lo[c];
        hi[c] = x[i] > hi[c] ? x[i] : hi[c];
        ss += ((double)x[i] - centers[c]) * ((double)x[i] - centers[c]);
    }
    for (int c = 0; c < k; c++) {
        ck_assert_int_gt(cnt[c], 0);
        ck_assert(centers[c] == (float)(sum[c] / cnt[c]));
        if (c > 0)
            ck_assert(hi[c - 1] < lo[c]); /* raw labels ordered by value */
    }
    assert_rel(comp, ss, 1e-12, "compactness");
    free(x);
    free(labels);
}
END_TEST

/* The optimum is never worse than Lloyd's local optimum. */
START_TEST(test_optimal_not_above_lloyd)
{
    uint32_t s = 99u + (uint32_t)_i * 7u;
    enum { N = 500 };
    float x[N], centers[6];
    int32_t labels[N];
    for (int i = 0; i < N; i++) { /* three blobs plus noise */
        uint32_t r = lcg_next(&s);
        x[i] = (float)(r % 3) * 40.f + (float)(lcg_next(&s) % 3000) / 100.f;
    }
    for (int k = 2; k <= 6; k++) {
        kms_kmeans_params po = params(k, KMS_KM_OPTIMAL);
        kms_kmeans_params pl = params(k, KMS_KM_LLOYD);
        pl.seed = (uint64_t)_i;
        pl.attempts = 1;
        double opt = run_ok(x, N, 1, &po, labels, centers);
        double lloyd = run_ok(x, N, 1, &pl, labels, centers);
        ck_assert_msg(opt <= lloyd * (1 + 1e-6),
                      "k %d: optimal %.17g above lloyd %.17g", k, opt, lloyd);
    }
}
END_TEST

START_TEST(test_optimal_wcss_consistent)
{
    uint32_t s = 5u + (uint32_t)_i;
    enum { N = 2000, KMAX = 8 };
    float *x = malloc(sizeof *x * N), centers[KMAX];
    int32_t *labels = malloc(sizeof *labels * N);
    double wcss[KMAX];
    for (int i = 0; i < N; i++)
        x[i] = _i % 2 ? (float)(lcg_next(&s) % 700) - 300.f
                      : (float)(lcg_next(&s) % 1000000) / 4096.f;
    ck_assert_int_eq(kms_kmeans_optimal_wcss(x, N, KMAX, wcss, NULL), KMS_OK);
    for (int k = 1; k <= KMAX; k++) {
        kms_kmeans_params p = params(k, KMS_KM_OPTIMAL);
        double c = run_ok(x, N, 1, &p, labels, centers);
        assert_rel(c, wcss[k - 1], 1e-9, "per-k compactness vs wcss");
        if (k > 1)
            ck_assert_msg(wcss[k - 1] <= wcss[k - 2] * (1 + 1e-12),
                          "wcss rises from k %d to %d", k - 1, k);
    }
    ck_assert(wcss[KMAX - 1] < wcss[0]);
    free(x);
    free(labels);
}
END_TEST

/* Integer samples take the counting table, the same samples plus 0.5 the
 * radix sort: same partition, same WCSS (a shift changes neither). */
START_TEST(test_optimal_table_paths_agree)
{
    uint32_t s = 31337u;
    enum { N = 4000 };
    float *a = malloc(sizeof *a * N), *b = malloc(sizeof *b * N), ca[4], cb[4];
    int32_t *la = malloc(sizeof *la * N), *lb = malloc(sizeof *lb * N);
    for (int i = 0; i < N; i++) {
        a[i] = (float)((int)(lcg_next(&s) % 1801) - 1200);
        b[i] = a[i] + 0.5f;
    }
    kms_kmeans_params p = params(4, KMS_KM_OPTIMAL);
    double wa = run_ok(a, N, 1, &p, la, ca);
    double wb = run_ok(b, N, 1, &p, lb, cb);
    ck_assert_int_eq(memcmp(la, lb, sizeof *la * N), 0);
    assert_rel(wb, wa, 1e-9, "shifted WCSS");
    for (int c = 0; c < 4; c++)
        ck_assert(fabsf(cb[c] - ca[c] - 0.5f) < 1e-3f);
    free(a);
    free(b);
    free(la);
    free(lb);
}
END_TEST

/* ---- Core: fast paths give cv's answer ---------------------------------------- */

static float *random_nd(int n, int dims, uint32_t seed, int integral)
{
    float *x = malloc(sizeof *x * (size_t)n * (size_t)dims);
    uint32_t s = seed;
    for (size_t i = 0; i < (size_t)n * (size_t)dims; i++) {
        uint32_t r = lcg_next(&s);
        float blob = (float)(i / (size_t)dims % 5) * 37.f;
        x[i] = integral ? (float)(r % 256)
                        : blob + (float)(r % 100000) / 1700.f;
    }
    return x;
}

typedef struct result {
    int32_t *labels;
    float centers[16 * 17];
    double compactness;
} result;

static void lloyd_raw(const float *x, int n, int dims, int k,
                      kms_lloyd_assign how, int threads, kms_km_init init,
                      result *r)
{
    kms_kmeans_params p = params(k, KMS_KM_LLOYD);
    kms_error err;
    p.threads = threads;
    p.init = init;
    p.attempts = 3;
    p.seed = 2024;
    r->labels = malloc(sizeof *r->labels * (size_t)n);
    ck_assert_int_eq(kms_lloyd_run(x, (size_t)n, dims, &p, how, r->labels,
                                   r->centers, &r->compactness, &err),
                     KMS_OK);
}

static void assert_same_result(const result *a, const result *b, int n,
                               int kd)
{
    ck_assert_int_eq(memcmp(a->labels, b->labels, sizeof *a->labels * n), 0);
    ck_assert_int_eq(memcmp(a->centers, b->centers, sizeof *a->centers * kd), 0);
    ck_assert(a->compactness == b->compactness);
}

/* Hamerly's bounds never change a label: same labels and centres, bit for
 * bit, as the full scan; dims 2, 3, 5 and 17, k up to 16. */
START_TEST(test_bounded_equals_plain)
{
    static const int dims_of[] = {3, 3, 2, 5, 3, 17};
    static const int k_of[] = {6, 12, 8, 7, 16, 6};
    int dims = dims_of[_i % 6], k = k_of[_i % 6], n = 6000;
    float *x = random_nd(n, dims, 17u + (uint32_t)_i, _i % 2);
    result a, b;
    lloyd_raw(x, n, dims, k, KMS_LLOYD_BOUNDED, 1, KMS_KM_INIT_PP, &a);
    lloyd_raw(x, n, dims, k, KMS_LLOYD_PLAIN, 1, KMS_KM_INIT_PP, &b);
    assert_same_result(&a, &b, n, k * dims);
    free(a.labels);
    free(b.labels);
    free(x);
}
END_TEST

/* A float tie that exact arithmetic does not see: from the origin, the new
 * centre 1 is nearer in exact arithmetic, but the float distances (what cv
 * compares) are equal, so cv's first minimum is centre 0. The centres moved
 * radially (centre 0 halved its distance, centre 1 doubled it), which makes
 * the triangle-inequality bounds tight: bounds without a rounding margin
 * would keep label 1 (found by a random search over float coordinates
 * against hamerly.c with every margin removed, which fails here). */
START_TEST(test_bounded_float_tie)
{
    static const float x[2] = {0, 0};
    static const float far[2] = {0x1.c4855p+6f, 0x1.cb33f8p+7f};
    static const float near[2] = {0x1.532202p+7f, 0x1.7f7898p+7f};
    float old[4] = {far[0] * 2, far[1] * 2, near[0] / 2, near[1] / 2};
    float now[4] = {far[0], far[1], near[0], near[1]};
    double exact_far = (double)far[0] * far[0] + (double)far[1] * far[1];
    double exact_near = (double)near[0] * near[0] + (double)near[1] * near[1];
    int32_t label = -1;
    ck_assert(exact_near < exact_far);
    ck_assert(kms_dist2(x, now, 2) == kms_dist2(x, now + 2, 2));
    kms_pool *pool = kms_pool_create(1);
    kms_hamerly *h = kms_hamerly_create(1, 2, 2);
    ck_assert_ptr_nonnull(h);
    kms_hamerly_full(h, x, old, &label, pool);
    ck_assert_int_eq(label, 1);
    kms_hamerly_step(h, x, old, now, &label, pool);
    ck_assert_int_eq(label, 0); /* cv: the first of the equal distances */
    kms_hamerly_destroy(h);
    kms_pool_destroy(pool);
}
END_TEST

/* The bounds do skip work: after the first scan, a step whose centres moved
 * a little evaluates far fewer than n * k distances, and labels still match
 * the full scan. */
START_TEST(test_bounded_skips_distances)
{
    enum { N = 8000, K = 8, D = 3 };
    float *x = random_nd(N, D, 5u, 0), c0[K * D], c1[K * D];
    int32_t *lab = malloc(sizeof *lab * N), *want = malloc(sizeof *want * N);
    kms_pool *pool = kms_pool_create(1);
    kms_hamerly *h = kms_hamerly_create(N, K, D);
    for (int j = 0; j < K * D; j++) { /* samples as centres, then nudged */
        c0[j] = x[(size_t)(j / D) * 997 * D + (size_t)(j % D)];
        c1[j] = c0[j] + (j % 2 ? 0.05f : -0.03f);
    }
    kms_hamerly_full(h, x, c0, lab, pool);
    uint64_t full = kms_hamerly_distances(h);
    ck_assert_uint_eq(full, (uint64_t)N * K);
    kms_hamerly_step(h, x, c0, c1, lab, pool);
    uint64_t step = kms_hamerly_distances(h) - full;
    ck_assert_msg(step < (uint64_t)N * K / 10, "step evaluated %llu",
                  (unsigned long long)step);
    kms_hamerly_full(h, x, c1, want, pool);
    ck_assert_int_eq(memcmp(lab, want, sizeof *lab * N), 0);
    kms_hamerly_destroy(h);
    kms_pool_destroy(pool);
    free(lab);
    free(want);
    free(x);
}
END_TEST

/* Results never depend on the thread count (several chunks of samples). */
START_TEST(test_threads_identical)
{
    static const kms_lloyd_assign how[] = {KMS_LLOYD_BOUNDED, KMS_LLOYD_PLAIN};
    int n = 20011, dims = _i < 2 ? 3 : 1, k = 7;
    float *x = random_nd(n, dims, 99u + (uint32_t)_i, _i % 2);
    result r[3];
    for (int t = 0; t < 3; t++)
        lloyd_raw(x, n, dims, k, how[_i % 2], t + 1,
                  _i == 3 ? KMS_KM_INIT_RANDOM : KMS_KM_INIT_PP, &r[t]);
    for (int t = 1; t < 3; t++)
        assert_same_result(&r[0], &r[t], n, k * dims);
    for (int t = 0; t < 3; t++)
        free(r[t].labels);
    free(x);
}
END_TEST

/* The 8-lane AVX2 paths (assignment, k-means++ trials) and the fused
 * k-means++ update give what the 4-lane SSE paths give, bit for bit, and
 * AUTO's choice (the plain scan for colour up to K = 32) what both
 * assignments give: colour-like data (integral 0..255, where k-means++ sums
 * exactly, and fractional), dims 1 to 5, K 2 to 32, several chunks and a
 * tail that is no multiple of 8, 1, 2 and 4 threads. */
START_TEST(test_simd_paths_identical)
{
    static const int dims_of[] = {3, 3, 1, 2, 4, 5, 3, 3};
    static const int k_of[] = {2, 32, 9, 5, 16, 7, 8, 24};
    int dims = dims_of[_i % 8], k = k_of[_i % 8], n = 9001 + _i;
    float *x = random_nd(n, dims, 4242u + (uint32_t)_i, _i % 2 == 0);
    result ref, r;
    kms_simd_force(0);
    lloyd_raw(x, n, dims, k, KMS_LLOYD_PLAIN, 1, KMS_KM_INIT_PP, &ref);
    kms_simd_force(1);
    static const kms_lloyd_assign how[] = {KMS_LLOYD_AUTO, KMS_LLOYD_PLAIN,
                                           KMS_LLOYD_BOUNDED};
    for (int h = 0; h < 3; h++)
        for (int t = 1; t <= 4; t *= 2) {
            lloyd_raw(x, n, dims, k, how[h], t, KMS_KM_INIT_PP, &r);
            assert_same_result(&ref, &r, n, k * dims);
            free(r.labels);
        }
    free(ref.labels);
    free(x);
}
END_TEST

/* The exact 1-D DP scans its candidate splits four at a time with AVX2
 * and two at a time without: the same labels, centres, WCSS and WCSS curve,
 * bit for bit (integers, wide integer ranges, fractions, and evenly spaced
 * values with equal counts, whose splits tie exactly; K 2-16). */
START_TEST(test_optimal_simd_identical)
{
    static const int k_of[] = {2, 3, 5, 8, 11, 16};
    int k = k_of[_i % 6], n = _i < 12 ? 20000 + 37 * _i : 64 * 320;
    float *x = random_nd(n, 1, 777u + (uint32_t)_i, _i % 3 != 2);
    if (_i % 3 == 1 && _i < 12)
        for (int i = 0; i < n; i++)
            x[i] = x[i] * 13 - 1500; /* integral, range of a CT window */
    if (_i >= 12) /* 64 evenly spaced values, equal counts: splits that tie */
        for (int i = 0; i < n; i++)
            x[i] = (float)(i % 64) * (_i % 2 ? 1 : 0.25f);
    int32_t *la = malloc(sizeof *la * (size_t)n), *lb = malloc(sizeof *lb * (size_t)n);
    float ca[16], cb[16];
    double wa[16], wb[16];
    kms_error err;
    kms_kmeans_params p = params(k, KMS_KM_OPTIMAL);
    kms_simd_force(0);
    double a = run_ok(x, (size_t)n, 1, &p, la, ca);
    ck_assert_int_eq(kms_kmeans_optimal_wcss(x, (size_t)n, 16, wa, &err), KMS_OK);
    kms_simd_force(1);
    double b = run_ok(x, (size_t)n, 1, &p, lb, cb);
    ck_assert_int_eq(kms_kmeans_optimal_wcss(x, (size_t)n, 16, wb, &err), KMS_OK);
    ck_assert_int_eq(memcmp(&a, &b, sizeof a), 0);
    ck_assert_int_eq(memcmp(la, lb, sizeof *la * (size_t)n), 0);
    ck_assert_int_eq(memcmp(ca, cb, sizeof *ca * (size_t)k), 0);
    ck_assert_int_eq(memcmp(wa, wb, sizeof wa), 0);
    free(la);
    free(lb);
    free(x);
}
END_TEST

/* AUTO is optimal in 1-D and lloyd (cv's answer) otherwise. */
START_TEST(test_auto_dispatch)
{
    float *x1 = random_nd(500, 1, 3u, 0), *x3 = random_nd(500, 3, 4u, 1);
    int32_t la[500], lb[500];
    float ca[12], cb[12];
    kms_kmeans_params pa = params(3, KMS_KM_AUTO);
    kms_kmeans_params pb = params(3, KMS_KM_OPTIMAL);
    ck_assert(run_ok(x1, 500, 1, &pa, la, ca) == run_ok(x1, 500, 1, &pb, lb, cb));
    ck_assert_int_eq(memcmp(la, lb, sizeof la), 0);
    pa.k = pb.k = 4;
    pb.method = KMS_KM_LLOYD;
    ck_assert(run_ok(x3, 500, 3, &pa, la, ca) == run_ok(x3, 500, 3, &pb, lb, cb));
    ck_assert_int_eq(memcmp(la, lb, sizeof la), 0);
    ck_assert_int_eq(memcmp(ca, cb, sizeof *ca * 12), 0);
    free(x1);
    free(x3);
}
END_TEST

START_TEST(test_params_default)
{
    kms_kmeans_params p;
    memset(&p, 0x5a, sizeof p);
    kms_kmeans_params_default(&p);
    ck_assert_int_eq(p.k, 2);
    ck_assert_int_eq(p.attempts, 10);
    ck_assert_int_eq(p.criteria, KMS_KM_TERM_COUNT | KMS_KM_TERM_EPS);
    ck_assert_int_eq(p.max_iter, 10);
    ck_assert(p.epsilon == 1.0);
    ck_assert_int_eq(p.init, KMS_KM_INIT_PP);
    ck_assert_int_eq(p.method, KMS_KM_AUTO);
    ck_assert_uint_eq(p.seed, 0x12345678u);
    ck_assert_int_eq(p.threads, 1);
}
END_TEST

/* ---- optimum of a histogram ----------------------------------------------------- */

/* Random histograms (integer or fractional values, empty bins, k from 1 to
 * above the number of values): bit for bit what kms_kmeans_run's optimal
 * method gives on the samples expanded and shuffled. */
START_TEST(test_optimal_hist_equals_expanded)
{
    uint32_t s = 1000u + (uint32_t)_i;
    size_t bins = 3 + lcg_next(&s) % 60;
    int k = 1 + (int)(lcg_next(&s) % 7);
    float *v = malloc(sizeof *v * bins);
    uint64_t *cnt = malloc(sizeof *cnt * bins);
    size_t n = 0;
    float at = -1100.f + (float)(lcg_next(&s) % 200);
    for (size_t i = 0; i < bins; i++) {
        at += _i % 2 ? (float)(1 + lcg_next(&s) % 300) / 7.f
                     : (float)(1 + lcg_next(&s) % 9);
        v[i] = at;
        cnt[i] = lcg_next(&s) % 4 == 0 ? 0 : 1 + lcg_next(&s) % 40;
        n += cnt[i];
    }
    cnt[bins / 2] += (uint64_t)k; /* n >= k, as kms_kmeans_run needs */
    n += (size_t)k;
    float *x = malloc(sizeof *x * n);
    size_t *bin = malloc(sizeof *bin * n);
    size_t j = 0;
    for (size_t i = 0; i < bins; i++)
        for (uint64_t c = 0; c < cnt[i]; c++) {
            x[j] = v[i];
            bin[j++] = i;
        }
    for (size_t i = n - 1; i > 0; i--) { /* shuffle: order does not matter */
        size_t r = lcg_next(&s) % (i + 1);
        float tx = x[i];
        size_t tb = bin[i];
        x[i] = x[r], bin[i] = bin[r];
        x[r] = tx, bin[r] = tb;
    }
    int32_t *lr = malloc(sizeof *lr * n), *lh = malloc(sizeof *lh * bins);
    float cr[8], ch[8];
    double comp = -1;
    kms_kmeans_params p = params(k, KMS_KM_OPTIMAL);
    double want = run_ok(x, n, 1, &p, lr, cr);
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_kmeans_optimal_hist(v, cnt, bins, k, lh, ch, &comp,
                                             &err),
                     KMS_OK);
    ck_assert(comp == want);
    ck_assert_int_eq(memcmp(cr, ch, sizeof *cr * (size_t)k), 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(lr[i], lh[bin[i]]);
    free(lr);
    free(lh);
    free(x);
    free(bin);
    free(v);
    free(cnt);
}
END_TEST

/* 2-means of consecutive integers by the best cut (the largest
 * s0^2/n0 + s1^2/n1, sums exact in double): the centres agree. Millions of
 * samples cost only their bins. */
START_TEST(test_optimal_hist_two_means)
{
    enum { BINS = 1701 }; /* -1100 .. 600 HU */
    static float v[BINS];
    static uint64_t cnt[BINS];
    uint32_t s = 77u + (uint32_t)_i;
    double n = 0, sum = 0;
    for (int i = 0; i < BINS; i++) {
        v[i] = (float)(-1100 + i);
        /* two humps (air/lung and tissue) and empty stretches */
        int hu = -1100 + i;
        uint64_t base = hu < -700 ? 3000 : hu > -100 && hu < 100 ? 5000 : 40;
        cnt[i] = lcg_next(&s) % 7 == 0 ? 0 : base + lcg_next(&s) % 1000;
        n += (double)cnt[i];
        sum += (double)cnt[i] * v[i];
    }
    double best = -1, n0 = 0, s0 = 0;
    float c0 = 0, c1 = 0;
    for (int i = 0; i + 1 < BINS; i++) {
        if (!cnt[i])
            continue;
        n0 += (double)cnt[i];
        s0 += (double)cnt[i] * v[i];
        if (n0 == n)
            break;
        double score = s0 * s0 / n0 + (sum - s0) * (sum - s0) / (n - n0);
        if (score > best) {
            best = score;
            c0 = (float)(s0 / n0);
            c1 = (float)((sum - s0) / (n - n0));
        }
    }
    float c[2];
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_kmeans_optimal_hist(v, cnt, BINS, 2, NULL, c, NULL,
                                             &err),
                     KMS_OK);
    ck_assert_msg(c[0] == c0 && c[1] == c1, "centres %a %a, want %a %a",
                  (double)c[0], (double)c[1], (double)c0, (double)c1);
}
END_TEST

/* Worked by hand: -5 x3, 2 x4, 9 x2 (0 and 7 empty). k = 2 splits {-5} |
 * {2, 9}; an empty value joins the first cluster whose top is >= it. */
START_TEST(test_optimal_hist_known_answer)
{
    static const float v[] = {-5, 0, 2, 7, 9};
    static const uint64_t cnt[] = {3, 0, 4, 0, 2};
    int32_t l[5];
    float c[4];
    double comp;
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(
        kms_kmeans_optimal_hist(v, cnt, 5, 2, l, c, &comp, &err), KMS_OK);
    static const int32_t want2[] = {0, 1, 1, 1, 1};
    ck_assert_mem_eq(l, want2, sizeof want2);
    ck_assert(c[0] == -5.f && c[1] == (float)(26.0 / 6));
    double e2 = 2 - (double)c[1], e9 = 9 - (double)c[1];
    ck_assert(comp == 4 * e2 * e2 + 2 * e9 * e9);
    /* more clusters than values: one per value, spares repeat the top */
    ck_assert_int_eq(
        kms_kmeans_optimal_hist(v, cnt, 5, 4, l, c, &comp, &err), KMS_OK);
    static const int32_t want4[] = {0, 1, 1, 2, 2};
    static const float cwant4[] = {-5, 2, 9, 9};
    ck_assert_mem_eq(l, want4, sizeof want4);
    ck_assert_mem_eq(c, cwant4, sizeof cwant4);
    ck_assert(comp == 0);
    /* one sample is enough (kms_kmeans_run would need n >= k) */
    static const uint64_t one[] = {0, 0, 1, 0, 0};
    ck_assert_int_eq(
        kms_kmeans_optimal_hist(v, one, 5, 2, l, c, &comp, &err), KMS_OK);
    ck_assert(c[0] == 2.f && c[1] == 2.f && comp == 0);
    ck_assert_int_eq(l[0], 0);
    ck_assert_int_eq(l[4], 0);
}
END_TEST

START_TEST(test_optimal_hist_usage)
{
    static const float v[] = {1, 2, 3}, same[] = {1, 2, 2}, bad[] = {1, NAN, 3};
    static const uint64_t cnt[] = {1, 1, 1}, none[] = {0, 0, 0};
    float c[3];
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_kmeans_optimal_hist(same, cnt, 3, 2, NULL, c, NULL,
                                             &err),
                     KMS_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(err.message, "not above"));
    ck_assert_int_eq(kms_kmeans_optimal_hist(bad, cnt, 3, 2, NULL, c, NULL,
                                             &err),
                     KMS_ERR_INPUT);
    ck_assert_int_eq(kms_kmeans_optimal_hist(v, none, 3, 2, NULL, c, NULL,
                                             &err),
                     KMS_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(err.message, "empty"));
    ck_assert_int_eq(kms_kmeans_optimal_hist(v, cnt, 3, 0, NULL, c, NULL,
                                             &err),
                     KMS_ERR_USAGE);
    ck_assert_int_eq(kms_kmeans_optimal_hist(v, NULL, 3, 2, NULL, c, NULL,
                                             &err),
                     KMS_ERR_USAGE);
    ck_assert_int_eq(kms_kmeans_optimal_hist(v, cnt, 3, 2, NULL, NULL, NULL,
                                             &err),
                     KMS_ERR_USAGE);
}
END_TEST

/* ---- quantize --------------------------------------------------------------- */

/* kms_kmeans_quantize, failing the test on error. */
static void quantize_ok(const float *x, size_t n, int dims, const float *c,
                        int k, int32_t *labels, int threads)
{
    kms_error err;
    kms_error_clear(&err);
    ck_assert_msg(kms_kmeans_quantize(x, n, dims, c, k, labels, threads, &err)
                      == KMS_OK,
                  "kms_kmeans_quantize: %s", err.message);
}

/* Nearest centres worked by hand; equal distances go to the lower index,
 * whatever order the centres are in; NaN gets 0. */
START_TEST(test_quantize_known_answers)
{
    /* 2 is 4 from 0 and from 4; 7 is 3 from 4 and from 10 */
    static const float c1[] = {0, 10, 4};
    static const float x1[] = {-3, 1, 2, 3, 7, 7.5f, 100, NAN};
    static const int32_t want1[] = {0, 0, 0, 2, 1, 1, 1, 0};
    int32_t l1[8];
    quantize_ok(x1, 8, 1, c1, 3, l1, 1);
    ck_assert_mem_eq(l1, want1, sizeof want1);

    static const float c3[] = {0, 0, 0, 1, 1, 1, 0, 0, 2};
    static const float x3[] = {0.4f, 0.4f, 0.4f, /* 0 */
                               0, 0, 1,          /* 0 = 2 < 1: 0 */
                               0.5f, 0.5f, 0.5f, /* 0 = 1: 0 */
                               1, 1, 1.5f,       /* 1 */
                               0, 0, 1.6f,       /* 2 */
                               0.5f, 0.5f, 1.5f, /* 1 = 2 < 0: 1 */
                               -9, 9, 99};       /* 2 */
    static const int32_t want3[] = {0, 0, 0, 1, 2, 1, 2};
    int32_t l3[7];
    quantize_ok(x3, 7, 3, c3, 3, l3, 1);
    ck_assert_mem_eq(l3, want3, sizeof want3);

    /* a repeated centre never wins over its first copy; k = 1 is all 0 */
    static const float dup[] = {5, 5, 8};
    static const float xd[] = {5, 4, 9, 6.5f};
    static const int32_t wantd[] = {0, 0, 2, 0};
    int32_t ld[4];
    quantize_ok(xd, 4, 1, dup, 3, ld, 1);
    ck_assert_mem_eq(ld, wantd, sizeof wantd);
    quantize_ok(xd, 4, 1, dup, 1, ld, 1);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(ld[i], 0);
}
END_TEST

/* The distance is summed in double: from (4096, 0) the squared distances
 * 2^24 + 0.25 and 2^24 + 0.0625 are equal as float sums (kms_dist2, where
 * cv's first minimum would pick 0), not in double. */
START_TEST(test_quantize_double_sum)
{
    static const float c[] = {0, 0.5f, 0, 0.25f};
    static const float x[] = {4096, 0};
    int32_t l[1];
    ck_assert(kms_dist2(x, c, 2) == kms_dist2(x, c + 2, 2));
    quantize_ok(x, 1, 2, c, 2, l, 1);
    ck_assert_int_eq(l[0], 1);
}
END_TEST

/* Reference: every sample scanned on its own, the obvious way. */
static void quantize_ref(const float *x, size_t n, int dims, const float *c,
                         int k, int32_t *labels)
{
    for (size_t i = 0; i < n; i++) {
        double best = INFINITY;
        labels[i] = 0;
        for (int j = 0; j < k; j++) {
            double d = 0;
            for (int e = 0; e < dims; e++) {
                double t = x[i * (size_t)dims + (size_t)e]
                           - c[(size_t)j * (size_t)dims + (size_t)e];
                d += t * t;
            }
            if (d < best) {
                best = d;
                labels[i] = j;
            }
        }
    }
}

/* Several chunks with runs of repeated samples (padding) between them:
 * the same labels as the reference whatever the thread count. */
START_TEST(test_quantize_threads_and_runs)
{
    int n = 150001, dims = _i ? 3 : 1, k = 6;
    float *x = random_nd(n, dims, 7u + (uint32_t)_i, 0);
    for (int i = 40000; i < 100000; i++) /* a long run of one value */
        memcpy(x + (size_t)i * dims, x, sizeof *x * (size_t)dims);
    for (int i = 120000; i + 1 < n; i += 2) /* short runs */
        memcpy(x + (size_t)(i + 1) * dims, x + (size_t)i * dims,
               sizeof *x * (size_t)dims);
    float c[6 * 3];
    for (int j = 0; j < k * dims; j++)
        c[j] = x[(size_t)(j / dims) * 1009 * dims + (size_t)(j % dims)];
    int32_t *want = malloc(sizeof *want * (size_t)n);
    int32_t *got = malloc(sizeof *got * (size_t)n);
    quantize_ref(x, (size_t)n, dims, c, k, want);
    for (int threads = -1; threads <= 3; threads++) {
        memset(got, 0xff, sizeof *got * (size_t)n);
        quantize_ok(x, (size_t)n, dims, c, k, got, threads);
        ck_assert_int_eq(memcmp(got, want, sizeof *got * (size_t)n), 0);
    }
    free(got);
    free(want);
    free(x);
}
END_TEST

/* On well-separated clusters, the labels kms_kmeans_run returns are the
 * nearest centres of its own samples: optimal in 1-D, lloyd run to
 * convergence in 3-D. */
START_TEST(test_quantize_agrees_with_run)
{
    enum { N = 3000 };
    const int dims = _i ? 3 : 1, k = 4;
    float *x = malloc(sizeof *x * N * 3);
    uint32_t s = 31u;
    for (int i = 0; i < N; i++)
        for (int e = 0; e < dims; e++)
            x[i * dims + e] = /* blobs of width 10, 100 apart */
                (dims == 1 ? 100.f * (float)(i % k)
                           : (i % k == e + 1 ? 100.f : 0.f))
                + (float)(lcg_next(&s) % 1000) / 100.f;
    kms_kmeans_params p = params(k, _i ? KMS_KM_LLOYD : KMS_KM_OPTIMAL);
    p.max_iter = 100;
    p.epsilon = 0;
    int32_t *lr = malloc(sizeof *lr * N), *lq = malloc(sizeof *lq * N);
    float c[4 * 3];
    run_ok(x, N, dims, &p, lr, c);
    quantize_ok(x, N, dims, c, k, lq, 1);
    ck_assert_int_eq(memcmp(lr, lq, sizeof *lr * N), 0);
    free(lr);
    free(lq);
    free(x);
}
END_TEST

START_TEST(test_quantize_usage)
{
    static const float x[] = {1, 2}, c[] = {0};
    int32_t l[2];
    kms_error err;
    kms_error_clear(&err);
    ck_assert_int_eq(kms_kmeans_quantize(x, 2, 1, c, 0, l, 1, &err),
                     KMS_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(err.message, "k >= 1"));
    ck_assert_int_eq(kms_kmeans_quantize(x, 2, 0, c, 1, l, 1, &err),
                     KMS_ERR_USAGE);
    ck_assert_int_eq(kms_kmeans_quantize(x, 2, 1, NULL, 1, l, 1, &err),
                     KMS_ERR_USAGE);
    ck_assert_int_eq(kms_kmeans_quantize(x, 2, 1, c, 1, NULL, 1, &err),
                     KMS_ERR_USAGE);
    /* nothing to label is no error */
    ck_assert_int_eq(kms_kmeans_quantize(NULL, 0, 1, c, 1, NULL, 1, &err),
                     KMS_OK);
}
END_TEST

/* ---- Limits ------------------------------------------------------------------- */

/* k above the number of distinct values: one cluster per value, the spare
 * centres repeat the largest value, labels only use the real clusters. */
START_TEST(test_k_above_distinct_values)
{
    static const float x[] = {7, 5, 7, 5, 7};
    int32_t labels[5];
    float centers[4];
    double wcss[4];
    kms_kmeans_params p = params(4, KMS_KM_OPTIMAL);
    ck_assert(run_ok(x, 5, 1, &p, labels, centers) == 0.0);
    ck_assert(centers[0] == 5.f && centers[1] == 7.f);
    ck_assert(centers[2] == 7.f && centers[3] == 7.f);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(labels[i], x[i] == 5.f ? 0 : 1);
    ck_assert_int_eq(kms_kmeans_optimal_wcss(x, 5, 4, wcss, NULL), KMS_OK);
    assert_rel(wcss[0], 4.8, 1e-12, "k = 1"); /* mean 6.2 */
    ck_assert(wcss[1] == 0 && wcss[2] == 0 && wcss[3] == 0);
    /* lloyd: empty clusters are refilled (cv), every label stays in range */
    p.method = KMS_KM_LLOYD;
    p.k = 3;
    ck_assert(run_ok(x, 5, 1, &p, labels, centers) == 0.0);
    for (int i = 0; i < 5; i++)
        ck_assert(labels[i] >= 0 && labels[i] < 3);
}
END_TEST

START_TEST(test_all_values_equal)
{
    float x[50];
    int32_t labels[50];
    float centers[3];
    for (int i = 0; i < 50; i++)
        x[i] = -3.25f;
    for (int m = 0; m < 2; m++)
        for (int k = 1; k <= 3; k++) {
            kms_kmeans_params p = params(k, m ? KMS_KM_LLOYD : KMS_KM_OPTIMAL);
            ck_assert(run_ok(x, 50, 1, &p, labels, centers) == 0.0);
            for (int c = 0; c < k; c++)
                ck_assert(centers[c] == -3.25f);
            for (int i = 0; i < 50; i++)
                ck_assert(labels[i] >= 0 && labels[i] < k);
            if (m == 0) /* optimal: a single real cluster */
                for (int i = 0; i < 50; i++)
                    ck_assert_int_eq(labels[i], 0);
        }
}
END_TEST

START_TEST(test_usage_errors)
{
    static const float x[] = {1, 2, 3, 4, 5, 6};
    kms_kmeans_params p = params(2, KMS_KM_AUTO);
    p.k = 0;
    run_fails(x, 6, 1, &p, KMS_ERR_USAGE, "k is 0");
    p.k = 7;
    run_fails(x, 6, 1, &p, KMS_ERR_USAGE, "6 samples for k = 7");
    p.k = 2;
    p.attempts = 0;
    run_fails(x, 6, 1, &p, KMS_ERR_USAGE, "attempts is 0");
    p.attempts = 1;
    run_fails(x, 6, 0, &p, KMS_ERR_USAGE, "dims is 0");
    p.method = KMS_KM_OPTIMAL;
    run_fails(x, 3, 2, &p, KMS_ERR_USAGE, "needs 1-D samples");
    p.method = KMS_KM_LLOYD;
    p.init = KMS_KM_INIT_LABELS;
    int32_t labels[6] = {0, 1, 0, 2, 1, 0}; /* 2 is out of range */
    float centers[2];
    kms_error err;
    ck_assert_int_eq(kms_kmeans_run(x, 6, 1, &p, labels, centers, NULL, &err),
                     KMS_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(err.message, "label 2 of sample 3"));
    ck_assert_int_eq(kms_kmeans_run(x, 6, 1, &p, NULL, centers, NULL, &err),
                     KMS_ERR_USAGE);
}
END_TEST

START_TEST(test_non_finite_samples)
{
    float x[] = {1, 2, 3, 4, 5, 6};
    double wcss[2];
    kms_error err;
    for (int m = 0; m < 3; m++) {
        kms_kmeans_params p = params(2, (kms_km_method)m);
        x[3] = NAN;
        run_fails(x, 6, 1, &p, KMS_ERR_INPUT, "sample 3 is NaN");
        x[3] = -INFINITY;
        run_fails(x, 6, 1, &p, KMS_ERR_INPUT, "sample 3 is infinite");
        p.method = KMS_KM_LLOYD;
        run_fails(x, 3, 2, &p, KMS_ERR_INPUT, "sample 1 is infinite");
    }
    ck_assert_int_eq(kms_kmeans_optimal_wcss(x, 6, 2, wcss, &err),
                     KMS_ERR_INPUT);
    ck_assert_int_eq(kms_kmeans_optimal_wcss(x, 6, 0, wcss, &err),
                     KMS_ERR_USAGE);
}
END_TEST

/* Squared distances overflowing float: an error, as cv's "can't update
 * cluster center", not a crash. Large but finite ones still work. */
START_TEST(test_huge_values)
{
    float x[] = {-3e30f, 3e30f, 1e30f, -1e30f, 2e30f, 0};
    int32_t labels[6];
    float centers[2];
    kms_kmeans_params p = params(2, KMS_KM_LLOYD);
    run_fails(x, 6, 1, &p, KMS_ERR_INPUT, "too large");
    for (int i = 0; i < 6; i++)
        x[i] *= 1e-12f; /* 1e18: squares fit in a float */
    double c = run_ok(x, 6, 1, &p, labels, centers);
    ck_assert(isfinite(c) && c > 0);
    p.method = KMS_KM_OPTIMAL;
    ck_assert(isfinite(run_ok(x, 6, 1, &p, labels, centers)));
}
END_TEST

/* N == K: every sample its own cluster, for every method. */
START_TEST(test_n_equals_k)
{
    static const float x[] = {4, 1, 9};
    int32_t labels[3];
    float centers[3];
    for (int m = 1; m < 3; m++) {
        kms_kmeans_params p = params(3, (kms_km_method)m);
        ck_assert(run_ok(x, 3, 1, &p, labels, centers) == 0.0);
        kms_kmeans_canonicalize(labels, 3, centers, 3, 1);
        ck_assert(centers[0] == 1.f && centers[1] == 4.f && centers[2] == 9.f);
        ck_assert_int_eq(labels[0], 1);
        ck_assert_int_eq(labels[1], 0);
        ck_assert_int_eq(labels[2], 2);
    }
}
END_TEST


/* ---- Core: the integer, masked and hashed entries of the 1-D optimum --------- */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* An independent reference: the histogram of the samples (sorted with
 * qsort) through kms_kmeans_optimal_hist, each sample labelled by its
 * value's bin. */
static void hist_reference(const float *x, size_t n, int k, int32_t *labels,
                           float *centers, double *compactness)
{
    float *v = malloc(sizeof *v * n);
    uint64_t *cnt = calloc(n, sizeof *cnt);
    int32_t *bl = malloc(sizeof *bl * n);
    memcpy(v, x, sizeof *v * n);
    qsort(v, n, sizeof *v, cmp_float);
    size_t bins = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || v[i] != v[bins - 1])
            v[bins++] = v[i];
    for (size_t i = 0; i < n; i++) {
        float *b = bsearch(x + i, v, bins, sizeof *v, cmp_float);
        ck_assert_ptr_nonnull(b);
        cnt[b - v]++;
    }
    kms_error err;
    ck_assert_int_eq(kms_kmeans_optimal_hist(v, cnt, bins, k, bl, centers,
                                             compactness, &err),
                     KMS_OK);
    for (size_t i = 0; i < n; i++)
        labels[i] = bl[(float *)bsearch(x + i, v, bins, sizeof *v, cmp_float)
                       - v];
    free(v);
    free(cnt);
    free(bl);
}

/* int16 samples of six kinds: CT-like (clipped to [-1200, 600], a spike
 * at the clip), the full int16 range, a constant, negatives only, a small
 * alphabet (many ties), the two extremes only. */
static size_t s16_data(int kind, uint32_t seed, int16_t *x, size_t nmax)
{
    uint32_t s = seed;
    size_t n = kind == 2 ? 50 : nmax;
    for (size_t i = 0; i < n; i++) {
        uint32_t r = lcg_next(&s);
        int v;
        switch (kind) {
        case 0:
            v = (int)(r % 2400) - 1500 + (i % 7 == 0 ? -400 : 0);
            v = v < -1200 ? -1200 : v > 600 ? 600 : v;
            break;
        case 1: v = (int)(r % 65536) - 32768; break;
        case 2: v = -1024; break;
        case 3: v = -(int)(r % 3000) - 1; break;
        case 4: v = (int)(r % 7) - 3; break;
        default: v = r & 1 ? 32767 : -32768; break;
        }
        x[i] = (int16_t)v;
    }
    if (kind == 1) { /* both ends present */
        x[0] = INT16_MIN;
        x[1] = INT16_MAX;
    }
    return n;
}

/* kms_kmeans_optimal_s16 == kms_kmeans_run (optimal) on the floats ==
 * the histogram reference: labels, centres and compactness bit for bit,
 * K = 1..16. */
START_TEST(test_optimal_s16_equals_float)
{
    enum { NMAX = 6000, KMAX = 16 };
    int16_t *x = malloc(sizeof *x * NMAX);
    float *f = malloc(sizeof *f * NMAX);
    int32_t *l1 = malloc(sizeof *l1 * NMAX), *l2 = malloc(sizeof *l2 * NMAX),
            *l3 = malloc(sizeof *l3 * NMAX);
    size_t n = s16_data(_i % 6, 4242u + (uint32_t)_i, x, NMAX);
    for (size_t i = 0; i < n; i++)
        f[i] = x[i];
    for (int k = 1; k <= KMAX; k++) {
        float c1[KMAX], c2[KMAX], c3[KMAX];
        double w1 = -1, w2 = -2, w3 = -3;
        kms_error err;
        ck_assert_int_eq(
            kms_kmeans_optimal_s16(x, n, k, l1, c1, &w1, &err), KMS_OK);
        kms_kmeans_params p = params(k, KMS_KM_OPTIMAL);
        w2 = run_ok(f, n, 1, &p, l2, c2);
        hist_reference(f, n, k, l3, c3, &w3);
        ck_assert_msg(memcmp(l1, l2, sizeof *l1 * n) == 0,
                      "kind %d k %d: s16 labels differ", _i % 6, k);
        ck_assert_msg(memcmp(l1, l3, sizeof *l1 * n) == 0,
                      "kind %d k %d: labels differ from the histogram's",
                      _i % 6, k);
        ck_assert(memcmp(c1, c2, sizeof c1[0] * (size_t)k) == 0);
        ck_assert(memcmp(c1, c3, sizeof c1[0] * (size_t)k) == 0);
        ck_assert(memcmp(&w1, &w2, sizeof w1) == 0);
        ck_assert(memcmp(&w1, &w3, sizeof w1) == 0);
        /* without labels: the same centres */
        ck_assert_int_eq(
            kms_kmeans_optimal_s16(x, n, k, NULL, c2, NULL, &err), KMS_OK);
        ck_assert(memcmp(c1, c2, sizeof c1[0] * (size_t)k) == 0);
    }
    free(x);
    free(f);
    free(l1);
    free(l2);
    free(l3);
}
END_TEST

/* Known answers, a constant slice (the spare centres repeat the value) and
 * the usage errors. */
START_TEST(test_optimal_s16_known_answers)
{
    int16_t x[6] = {-5, -5, -5, 7, 7, 7};
    int32_t l[6];
    float c[3];
    double w = -1;
    kms_error err;
    ck_assert_int_eq(kms_kmeans_optimal_s16(x, 6, 2, l, c, &w, &err), KMS_OK);
    ck_assert(c[0] == -5.f && c[1] == 7.f && w == 0);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(l[i], i >= 3);
    ck_assert_int_eq(kms_kmeans_optimal_s16(x, 6, 1, l, c, &w, &err), KMS_OK);
    ck_assert(c[0] == 1.f && w == 6 * 36.0);
    int16_t same[4] = {-32768, -32768, -32768, -32768};
    ck_assert_int_eq(kms_kmeans_optimal_s16(same, 4, 3, l, c, &w, &err),
                     KMS_OK);
    ck_assert(c[0] == -32768.f && c[1] == -32768.f && c[2] == -32768.f);
    ck_assert(l[0] == 0 && l[3] == 0 && w == 0);
    ck_assert_int_eq(kms_kmeans_optimal_s16(x, 6, 0, l, c, &w, &err),
                     KMS_ERR_USAGE);
    ck_assert_int_eq(kms_kmeans_optimal_s16(x, 2, 3, l, c, &w, &err),
                     KMS_ERR_USAGE);
    ck_assert_int_eq(kms_kmeans_optimal_s16(NULL, 6, 2, l, c, &w, &err),
                     KMS_ERR_USAGE);
}
END_TEST

/* Float data of three kinds: integers (counting table), few distinct
 * fractions (hash), all distinct (radix sort). */
static void float_data(int kind, uint32_t seed, float *x, size_t n)
{
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        uint32_t r = lcg_next(&s);
        if (kind == 0)
            x[i] = (float)((int)(r % 1801) - 1200);
        else if (kind == 1)
            x[i] = (float)((int)(r % 1801) - 1200) / 7.3f;
        else
            x[i] = (float)(r % 1000000) / 997.f - 400.f;
    }
}

/* The masked entry: centres and compactness of the valid samples copied
 * out, their labels, and the nearest-centre labels of the others; for
 * each of the three paths. */
START_TEST(test_optimal_masked_equals_copy)
{
    enum { N = 40000 };
    float *x = malloc(sizeof *x * N), *y = malloc(sizeof *y * N);
    uint8_t *valid = malloc(N);
    int32_t *lm = malloc(sizeof *lm * N), *ly = malloc(sizeof *ly * N),
            *lq = malloc(sizeof *lq * N);
    float_data(_i % 3, 99u + (uint32_t)_i, x, N);
    /* runs of padding of values far outside, like a CT's rim (none from
     * _i = 3 on: the unmasked paths) */
    size_t m = 0;
    for (size_t i = 0; i < N; i++) {
        valid[i] = (i / 97) % 5 != 0 || _i >= 3;
        if (!valid[i])
            x[i] = (i / 97) % 2 ? -2000.f : 3000.5f;
        if (valid[i])
            y[m++] = x[i];
    }
    for (int k = 1; k <= 12; k++) {
        float cm[12], cy[12];
        double wm = -1, wy = -2;
        kms_error err;
        ck_assert_int_eq(kms_kmeans_optimal_masked(x, valid, N, k, lm, cm,
                                                   &wm, &err),
                         KMS_OK);
        kms_kmeans_params p = params(k, KMS_KM_OPTIMAL);
        wy = run_ok(y, m, 1, &p, ly, cy);
        ck_assert(memcmp(cm, cy, sizeof cm[0] * (size_t)k) == 0);
        ck_assert(memcmp(&wm, &wy, sizeof wm) == 0);
        ck_assert_int_eq(kms_kmeans_quantize(x, N, 1, cm, k, lq, 1, &err),
                         KMS_OK);
        for (size_t i = 0, j = 0; i < N; i++)
            ck_assert_int_eq(lm[i], valid[i] ? ly[j++] : lq[i]);
        if (k <= 4) { /* the independent reference */
            float cr[12];
            double wr = -3;
            hist_reference(y, m, k, lq, cr, &wr);
            ck_assert(memcmp(ly, lq, sizeof *ly * m) == 0);
            ck_assert(memcmp(cm, cr, sizeof cm[0] * (size_t)k) == 0);
            ck_assert(memcmp(&wm, &wr, sizeof wm) == 0);
        }
    }
    /* a NaN among the valid samples is named by its index among them */
    kms_error err;
    float c[2];
    if (_i < 3) {
        x[0] = NAN; /* padding: left out */
        ck_assert_int_eq(kms_kmeans_optimal_masked(x, valid, N, 2, lm, c,
                                                   NULL, &err),
                         KMS_OK);
    }
    x[100] = NAN;
    ck_assert_int_eq(kms_kmeans_optimal_masked(x, valid, N, 2, lm, c, NULL,
                                               &err),
                     KMS_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err.message, _i < 3 ? "sample 3 is NaN"
                                                     : "sample 100 is NaN"));
    memset(valid, 0, N);
    valid[7] = 1;
    ck_assert_int_eq(kms_kmeans_optimal_masked(x, valid, N, 2, lm, c, NULL,
                                               &err),
                     KMS_ERR_USAGE);
    free(x);
    free(y);
    free(valid);
    free(lm);
    free(ly);
    free(lq);
}
END_TEST

/* Non-integer samples: the exact path against brute force over every
 * contiguous partition, and its labels and centres against the histogram
 * reference (small inputs, ties included). */
START_TEST(test_optimal_fraction_brute_force)
{
    uint32_t s = 515u + (uint32_t)_i * 7919u;
    int n = 3 + (int)(lcg_next(&s) % 10); /* 3..12 */
    float x[12], c[4], cr[4];
    double v[12];
    int32_t l[12], lr[12];
    for (int i = 0; i < n; i++) {
        x[i] = (float)(int)(lcg_next(&s) % (_i % 2 ? 4 : 50)) / 7.3f + 0.37f;
        v[i] = x[i];
    }
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    for (int k = 1; k <= 4 && k <= n; k++) {
        kms_kmeans_params p = params(k, KMS_KM_OPTIMAL);
        double got = run_ok(x, (size_t)n, 1, &p, l, c);
        double want = brute_wcss(v, n, k), wr;
        ck_assert_msg(fabs(got - want) <= 1e-9 * want + 1e-9,
                      "n %d k %d: %.17g vs brute force %.17g", n, k, got,
                      want);
        hist_reference(x, (size_t)n, k, lr, cr, &wr);
        ck_assert(memcmp(l, lr, sizeof l[0] * (size_t)n) == 0);
        ck_assert(memcmp(c, cr, sizeof c[0] * (size_t)k) == 0);
        ck_assert(memcmp(&got, &wr, sizeof got) == 0);
    }
}
END_TEST

static Suite *kmeans_suite(void)
{
    Suite *s = suite_create("kmeans");
    int nrng = (int)(sizeof rng_refs / sizeof rng_refs[0]);
    int ncv = (int)(sizeof cv_cases / sizeof cv_cases[0]);

    TCase *core = tcase_create("Core");
    tcase_set_timeout(core, 120);
    tcase_add_loop_test(core, test_rng_matches_opencv, 0, nrng);
    tcase_add_test(core, test_rng_seed_zero_and_empty_range);
    tcase_add_loop_test(core, test_lloyd_matches_opencv, 0, ncv);
    tcase_add_loop_test(core, test_pp_init_matches_opencv, 0, ncv);
    tcase_add_test(core, test_known_answer_1d);
    tcase_add_test(core, test_known_answer_2d);
    tcase_add_test(core, test_known_answer_k1);
    tcase_add_loop_test(core, test_optimal_equals_brute_force, 0, 300);
    tcase_add_loop_test(core, test_optimal_labels_are_intervals, 0, 8);
    tcase_add_loop_test(core, test_optimal_not_above_lloyd, 0, 20);
    tcase_add_loop_test(core, test_optimal_wcss_consistent, 0, 4);
    tcase_add_test(core, test_optimal_table_paths_agree);
    tcase_add_loop_test(core, test_bounded_equals_plain, 0, 12);
    tcase_add_test(core, test_bounded_float_tie);
    tcase_add_test(core, test_bounded_skips_distances);
    tcase_add_loop_test(core, test_threads_identical, 0, 4);
    tcase_add_loop_test(core, test_simd_paths_identical, 0, 16);
    tcase_add_loop_test(core, test_optimal_simd_identical, 0, 18);
    tcase_add_test(core, test_auto_dispatch);
    tcase_add_test(core, test_params_default);
    tcase_add_loop_test(core, test_optimal_hist_equals_expanded, 0, 200);
    tcase_add_loop_test(core, test_optimal_hist_two_means, 0, 5);
    tcase_add_test(core, test_optimal_hist_known_answer);
    tcase_add_test(core, test_quantize_known_answers);
    tcase_add_test(core, test_quantize_double_sum);
    tcase_add_loop_test(core, test_quantize_threads_and_runs, 0, 2);
    tcase_add_loop_test(core, test_quantize_agrees_with_run, 0, 2);
    tcase_add_test(core, test_quantize_usage);
    tcase_add_loop_test(core, test_optimal_s16_equals_float, 0, 12);
    tcase_add_test(core, test_optimal_s16_known_answers);
    tcase_add_loop_test(core, test_optimal_masked_equals_copy, 0, 6);
    tcase_add_loop_test(core, test_optimal_fraction_brute_force, 0, 200);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("Limits");
    tcase_add_test(limits, test_k_above_distinct_values);
    tcase_add_test(limits, test_all_values_equal);
    tcase_add_test(limits, test_usage_errors);
    tcase_add_test(limits, test_non_finite_samples);
    tcase_add_test(limits, test_huge_values);
    tcase_add_test(limits, test_n_equals_k);
    tcase_add_test(limits, test_optimal_hist_usage);
    suite_add_tcase(s, limits);

    return s;
}

int main(void)
{
    return kt_run_suite(kmeans_suite());
}
