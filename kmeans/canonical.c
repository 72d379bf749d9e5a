/* Canonical labels: cluster 0 is the darkest centre, so label images compare
 * across runs, seeds and backends. */
#include "kmeans.h"

#include <stdlib.h>
#include <string.h>

void kms_kmeans_canonicalize(int32_t *labels, size_t n, float *centers, int k,
                             int dims)
{
    enum { SMALL_K = 64 };
    int order_small[SMALL_K], rank_small[SMALL_K];
    double key_small[SMALL_K];
    float centers_small[SMALL_K * 4];
    int *order = order_small, *rank = rank_small;
    double *key = key_small;
    float *sorted = centers_small;
    int heap = k > SMALL_K || (size_t)k * (size_t)dims > SMALL_K * 4;
    if (heap) {
        order = malloc(sizeof *order * (size_t)k);
        rank = malloc(sizeof *rank * (size_t)k);
        key = malloc(sizeof *key * (size_t)k);
        sorted = malloc(sizeof *sorted * (size_t)k * (size_t)dims);
        if (!order || !rank || !key || !sorted)
            goto out; /* leaving labels as they are is safe, only less tidy */
    }
    for (int j = 0; j < k; j++) {
        double s = 0;
        for (int d = 0; d < dims; d++)
            s += centers[(size_t)j * dims + d];
        key[j] = s;
        order[j] = j;
    }
    /* insertion sort: stable, and k is small */
    for (int i = 1; i < k; i++) {
        int o = order[i], j = i - 1;
        while (j >= 0 && key[order[j]] > key[o]) {
            order[j + 1] = order[j];
            j--;
        }
        order[j + 1] = o;
    }
    for (int r = 0; r < k; r++) {
        rank[order[r]] = r;
        memcpy(sorted + (size_t)r * dims, centers + (size_t)order[r] * dims,
               sizeof *sorted * (size_t)dims);
    }
    memcpy(centers, sorted, sizeof *sorted * (size_t)k * (size_t)dims);
    int moved = 0;
    for (int j = 0; j < k; j++)
        moved |= rank[j] != j;
    for (size_t i = 0; moved && i < n; i++)
        if (labels[i] >= 0 && labels[i] < k)
            labels[i] = rank[labels[i]];
out:
    if (heap) {
        free(order);
        free(rank);
        free(key);
        free(sorted);
    }
}
