/* What survives a crash: the journal, where each finished input's row is
 * written the moment it finishes and made durable within
 * KMS_JOURNAL_SYNC_MS (summary.csv is written only at the end), and the lock that keeps two runs out of one output folder. */
#ifndef KMS_JOURNAL_H
#define KMS_JOURNAL_H

#include <pthread.h>
#include <stdbool.h>

#include "error.h"
#include "summary.h"

/* ".kmseg-journal.csv", or ".kmseg-journal.shard-I-of-N.csv" (N > 0): each
 * shard has its own, as it has its own summary. */
void kms_journal_name(char *buf, size_t len, int shard_index, int shard_count);

/* Rows are fdatasynced at most this far apart (ms), and at close. */
#define KMS_JOURNAL_SYNC_MS 1000.0

typedef struct kms_journal {
    int fd;            /* -1: none */
    bool timings;
    bool warned;       /* an append failed: reported once, no more appends */
    bool unsynced;     /* rows written since the last fdatasync */
    double synced_ms;  /* kms_now_ms() of the last fdatasync */
    long syncs;        /* fdatasyncs of rows so far (tests count them) */
    char path[4352];
    pthread_mutex_t lock; /* workers finish concurrently */
} kms_journal;

/* Opens dir/name keeping its first keep bytes (the complete records a
 * --resume read; 0 starts afresh with the header), so what follows a torn
 * record is never glued to it. */
kms_status kms_journal_open(kms_journal *j, const char *dir, const char *name,
                            long keep, bool timings, kms_error *err);

/* Appends r (ok or error), written at once (it survives kill -9) and
 * fdatasynced when the last sync is KMS_JOURNAL_SYNC_MS old. A failure is reported once
 * and the batch goes on: the summary at the end still holds the row. */
void kms_journal_append(kms_journal *j, const kms_row *r);

/* Closes the journal; with summary_written, first makes dir/summary durable
 * and then removes the journal, whose rows the summary now holds. */
void kms_journal_close(kms_journal *j, const char *dir, const char *summary,
                       bool summary_written);

/* The output folder's lock, dir/.kmseg.lock, an fcntl lock the kernel drops
 * when its process dies (kill -9 included). Rule: byte 0 is taken
 * exclusively by an unsharded run and shared by shards; byte 1 + I
 * exclusively by shard I. So the shards of one run (any count, e.g. from
 * GNU parallel) write side by side, while the same shard twice, or an
 * unsharded run beside any sharded one, is refused. Shards of two counts
 * side by side are caught by merge-summaries instead (their run ids). */
typedef struct kms_dir_lock {
    int fd; /* -1: not held */
    char path[4352];
} kms_dir_lock;

/* Fails with the folder and the holder's pid: "DIR: another kmseg run (pid
 * N) is writing here". */
kms_status kms_dir_lock_take(kms_dir_lock *l, const char *dir, int shard_index,
                             int shard_count, kms_error *err);
/* The last holder out removes the lock file. */
void kms_dir_lock_release(kms_dir_lock *l);

#endif
