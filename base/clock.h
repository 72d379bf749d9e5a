/* A monotonic clock for the timings in summary.csv and the benchmarks. */
#ifndef KMS_CLOCK_H
#define KMS_CLOCK_H

#ifdef __cplusplus
extern "C" {
#endif

/* Milliseconds on a monotonic clock. */
double kms_now_ms(void);

#ifdef __cplusplus
}
#endif

#endif
