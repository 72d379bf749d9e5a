/* What the C benchmarks share: median, min and max of repeated timings
 * (bench/bench_lib.py is the Python benchmarks' twin). */
#ifndef KMS_BENCH_STATS_H
#define KMS_BENCH_STATS_H

typedef struct bench_spread {
    double med, min, max;
} bench_spread;

/* Of v[0..n), n >= 1; sorts a copy, so v keeps its repetition order. */
bench_spread bench_spread_of(const double *v, int n);

#endif
