/* cv::RNG, bit for bit: OpenCV 4.6 core/operations.hpp (RNG::next, uniform,
 * operator float / double). */
#include "kmeans.h"

/* CV_RNG_COEFF */
#define RNG_COEFF 4164903690u

void kms_rng_seed(kms_rng *rng, uint64_t seed)
{
    /* RNG::RNG(uint64 _state): state = _state ? _state : 0xffffffff */
    rng->state = seed ? seed : 0xffffffffu;
}

uint32_t kms_rng_next(kms_rng *rng)
{
    rng->state = (uint64_t)(uint32_t)rng->state * RNG_COEFF
                 + (uint32_t)(rng->state >> 32);
    return (uint32_t)rng->state;
}

int kms_rng_uniform_int(kms_rng *rng, int a, int b)
{
    /* a == b ? a : (int)(next() % (b - a) + a): unsigned arithmetic, and no
     * draw at all when a == b. b - a in unsigned: same bits, no overflow. */
    if (a == b)
        return a;
    uint32_t r = kms_rng_next(rng) % ((uint32_t)b - (uint32_t)a) + (uint32_t)a;
    return (int)r;
}

float kms_rng_uniform_float(kms_rng *rng, float a, float b)
{
    /* operator float: next()*2.3283064365386962890625e-10f, the unsigned
     * converted to float first */
    float u = (float)kms_rng_next(rng) * 2.3283064365386962890625e-10f;
    return u * (b - a) + a;
}

double kms_rng_uniform_double(kms_rng *rng, double a, double b)
{
    /* operator double: two draws, the first is the high word */
    uint32_t hi = kms_rng_next(rng);
    uint32_t lo = kms_rng_next(rng);
    double u = (double)(((uint64_t)hi << 32) | lo)
               * 5.4210108624275221700372640043497e-20;
    return u * (b - a) + a;
}
