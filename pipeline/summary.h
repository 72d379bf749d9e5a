/* summary.csv: one row per input, in input order, written atomically.
 * Also the rows a previous run left (for --resume) and the merge of shard
 * summaries (kmseg merge-summaries). */
#ifndef KMS_SUMMARY_H
#define KMS_SUMMARY_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "output.h"

#define KMS_SUMMARY_HEADER                                                    \
    "input,status,width,height,k,backend,wcss,ms_kmeans,ms_total,dice,iou,"    \
    "error,note,slices,lung_right_ml,lung_left_ml,lung_right_cm2,"           \
    "lung_left_cm2,dice_right,dice_left"

typedef enum kms_row_status {
    KMS_ROW_NOT_RUN, /* not reached (interrupted): left out of the file */
    KMS_ROW_OK,
    KMS_ROW_ERROR,
    KMS_ROW_SKIPPED  /* --resume: products were complete */
} kms_row_status;

typedef struct kms_row {
    const char *input;       /* not owned */
    kms_row_status status;
    char *error;             /* owned, NULL when none */
    char *note;              /* owned, NULL when none */
    char *previous;          /* owned: the row an earlier run wrote (resume) */
    int width, height, k;    /* height: of one slice */
    int slices;              /* 1 for images; volumes: axial slices */
    const char *backend;     /* static string */
    double wcss, ms_kmeans, ms_total;
    bool evaluated;
    double dice, iou;
    /* the lungs' sizes, [0] right, [1] left: ml of a volume, cm^2 of a
     * slice with a known pixel size (neither known: both false) */
    bool lung_ml_known, lung_cm2_known;
    double lung_size[2];
    bool side_evaluated[2];  /* dice_right, dice_left */
    double side_dice[2];
} kms_row;

void kms_row_clear(kms_row *row);

/* Writes the rows to dir/name; timings false leaves ms_* empty so two runs
 * give the same bytes. */
kms_status kms_summary_write(const char *dir, const char *name,
                             const kms_row *rows, size_t n, bool timings,
                             const kms_file_set *protect, kms_error *err);

/* One row as a CSV record with its line end (a journal record): the
 * bytes kms_summary_write gives it. *buf is malloc'd. */
kms_status kms_summary_format_row(const kms_row *row, bool timings, char **buf,
                                  size_t *len, kms_error *err);

/* Rows earlier runs left, by input, for --resume: one per input. */
typedef struct kms_summary_index {
    char **lines;  /* sorted by their input field */
    size_t n;
} kms_summary_index;

/* Adds the rows of path if it exists (a missing file adds none); a row
 * replaces the one an earlier call added for the same input, so add the
 * summary first and the journal after it. With end (journals): a torn last
 * record is dropped and *end is the size of the complete records. */
kms_status kms_summary_index_add(kms_summary_index *idx, const char *path,
                                 long *end, kms_error *err);
/* The earlier row of input or NULL; *ok (ok may be NULL): its status is
 * ok. */
const char *kms_summary_index_find(const kms_summary_index *idx,
                                   const char *input, bool *ok);
void kms_summary_index_free(kms_summary_index *idx);

/* Joins dir/summary.shard-I-of-N.csv (I = 0..N-1) into dir/summary.csv in
 * the order of the unsharded run. Errors name the missing or bad file, and
 * refuse shards of two runs: two shard counts, or run ids that differ.
 * counts (may be NULL) gets how many shards and rows were joined. */
typedef struct kms_merge_counts {
    int shards;
    size_t rows;
} kms_merge_counts;
kms_status kms_summary_merge(const char *dir, kms_merge_counts *counts,
                             kms_error *err);

/* "summary.csv", or "summary.shard-I-of-N.csv" for shard I of N (N > 0). */
void kms_summary_name(char *buf, size_t len, int shard_index, int shard_count);

/* A CSV may hold no comment line, so a sharded run says which run it is
 * in a sidecar, summary.shard-I-of-N.run: the id (a hash of the config, all
 * the inputs and N) every shard of one run computes alike. */
void kms_summary_run_name(char *buf, size_t len, int shard_index,
                          int shard_count);
kms_status kms_summary_run_write(const char *dir, int shard_index,
                                 int shard_count, unsigned long long run_id,
                                 const kms_file_set *protect, kms_error *err);

#endif
