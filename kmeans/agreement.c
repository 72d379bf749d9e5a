#include "agreement.h"

#include <float.h>
#include <stdlib.h>

static double pairs(double x)
{
    return x * (x - 1) / 2;
}

static double adjusted_rand(const double *table, int k, size_t n)
{
    double sum_ij = 0, sum_a = 0, sum_b = 0;
    for (int i = 0; i < k; i++) {
        double row = 0, col = 0;
        for (int j = 0; j < k; j++) {
            sum_ij += pairs(table[i * k + j]);
            row += table[i * k + j];
            col += table[j * k + i];
        }
        sum_a += pairs(row);
        sum_b += pairs(col);
    }
    double expected = sum_a * sum_b / pairs((double)n);
    double max_index = (sum_a + sum_b) / 2;
    if (max_index == expected)
        return 1.0; /* both labelings trivial (one cluster each): identical */
    return (sum_ij - expected) / (max_index - expected);
}

/* Hungarian algorithm (Kuhn-Munkres, O(k^3), potentials form) maximising
 * the matched counts: minimises -table. assign[j] = row matched to col j. */
static int hungarian(const double *table, int k, int *assign)
{
    int n = k;
    double *u = calloc((size_t)n + 1, sizeof *u);
    double *v = calloc((size_t)n + 1, sizeof *v);
    double *minv = malloc(((size_t)n + 1) * sizeof *minv);
    int *p = calloc((size_t)n + 1, sizeof *p);
    int *way = calloc((size_t)n + 1, sizeof *way);
    char *used = malloc((size_t)n + 1);
    int ok = u && v && minv && p && way && used;
    for (int i = 1; ok && i <= n; i++) {
        p[0] = i;
        int j0 = 0;
        for (int j = 0; j <= n; j++) {
            minv[j] = DBL_MAX;
            used[j] = 0;
        }
        do {
            used[j0] = 1;
            int i0 = p[j0], j1 = 0;
            double delta = DBL_MAX;
            for (int j = 1; j <= n; j++) {
                if (used[j])
                    continue;
                double cur = -table[(i0 - 1) * k + (j - 1)] - u[i0] - v[j];
                if (cur < minv[j]) {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if (minv[j] < delta) {
                    delta = minv[j];
                    j1 = j;
                }
            }
            for (int j = 0; j <= n; j++) {
                if (used[j]) {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
        } while (p[j0] != 0);
        do {
            int j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        } while (j0);
    }
    for (int j = 1; ok && j <= n; j++)
        assign[j - 1] = p[j] - 1;
    free(u);
    free(v);
    free(minv);
    free(p);
    free(way);
    free(used);
    return ok;
}

kms_status kms_agreement_compute(const int32_t *a, const int32_t *b, size_t n,
                                 int k, kms_agreement *out, kms_error *err)
{
    out->match = NULL;
    if (k < 1 || n == 0)
        return kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                             "agreement needs k >= 1 and samples");
    double *table = calloc((size_t)k * (size_t)k, sizeof *table);
    int *row_of_col = malloc(sizeof *row_of_col * (size_t)k);
    out->match = malloc(sizeof *out->match * (size_t)k);
    kms_status st = KMS_OK;
    if (!table || !row_of_col || !out->match) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (a[i] < 0 || a[i] >= k || b[i] < 0 || b[i] >= k) {
            st = kms_error_set(err, KMS_ERR_USAGE, NULL, 0, NULL,
                               "label out of range at sample %zu", i);
            goto out;
        }
        table[a[i] * k + b[i]] += 1;
    }
    if (!hungarian(table, k, row_of_col)) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    double matched = 0;
    for (int j = 0; j < k; j++) {
        out->match[j] = row_of_col[j];
        matched += table[row_of_col[j] * k + j];
    }
    out->fraction = matched / (double)n;
    out->ari = n > 1 ? adjusted_rand(table, k, n) : 1.0;
out:
    free(table);
    free(row_of_col);
    if (st != KMS_OK) {
        free(out->match);
        out->match = NULL;
    }
    return st;
}
