#include "bench_stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

bench_spread bench_spread_of(const double *v, int n)
{
    double *s = malloc((size_t)n * sizeof *s);
    if (!s) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    bench_spread r = {n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2, s[0],
                      s[n - 1]};
    free(s);
    return r;
}
