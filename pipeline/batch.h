/* A batch: a pipeline over every input, in parallel, one summary.csv row
 * each. A bad input fails only its own row; the others still run and are
 * written. Products are the same bytes whatever the number of jobs. */
#ifndef KMS_BATCH_H
#define KMS_BATCH_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "error.h"
#include "inputs.h"
#include "journal.h"
#include "output.h"
#include "pipeline.h"
#include "progress.h"

typedef struct kms_batch_options {
    const char *const *inputs; /* command-line inputs replacing pipeline.input */
    int n_inputs;
    const char *output;        /* replaces pipeline.output when non-NULL */
    bool quiet;                /* no progress, no summary lines */
    bool recursive;            /* folders: descend into subfolders */
    int jobs;                  /* inputs in parallel; <= 0: all cores */
    kms_progress_mode progress;
    bool resume;               /* skip inputs whose products all exist */
    int shard_index, shard_count; /* run inputs i with i % count == index */
    bool timings;              /* ms_* columns in summary.csv */
    bool stage_times;          /* print the time spent in each stage */
    size_t max_pixels;         /* of one input; 0: KMS_MAX_PIXELS_DEFAULT */
    /* the run's facts (versions, command line): with them the resolved
     * config and the facts are written (provenance.h); NULL: neither */
    const struct kms_provenance *provenance;
    bool report;               /* report.html (needs provenance) */
    bool force;                /* --resume after a change that alters
                                  products: redo every input */
} kms_batch_options;

/* Defaults: all cores, progress on a terminal, timings on, no shards, a
 * report. */
void kms_batch_options_default(kms_batch_options *opt);

typedef struct kms_batch_result {
    int total, succeeded, failed, skipped;
    bool interrupted;
} kms_batch_result;

/* Set by SIGINT/SIGTERM to the signal's number: batches finish the inputs
 * they are on and stop. */
extern volatile sig_atomic_t kms_batch_stop;
void kms_batch_install_signals(void);

/* The exit status of a batch stopped by a signal, as a shell reports death
 * by it: 128 + the signal (130 for Ctrl-C, 143 for SIGTERM). */
int kms_batch_stop_status(void);

/* Runs pl over its inputs. Returns KMS_OK when the batch ran (items may have
 * failed: see res); an error when it could not start (e.g. the output folder
 * cannot be written). */
kms_status kms_batch_run(const kms_pipeline *pl, const kms_batch_options *opt,
                         kms_batch_result *res, kms_error *err);

/* The inputs and output folder of one command, shared by run, compare and
 * elbow. */
typedef struct kms_batch {
    char out_dir[4096];
    kms_input_list inputs;
    kms_file_set protect; /* the inputs' files: never written over */
    kms_dir_lock lock;    /* held from open to close */
    unsigned long long run_id; /* the same in every shard of one run */
    size_t max_pixels;    /* of one input, for kms_batch_context */
} kms_batch;

/* Resolves and prepares the output folder, locks it (one run at a time;
 * see kms_dir_lock) and expands the inputs (only this shard's when
 * sharding). */
kms_status kms_batch_open(kms_batch *b, const kms_pipeline *pl,
                          const kms_batch_options *opt, kms_error *err);
void kms_batch_close(kms_batch *b);

/* Sets up ctx for input i (which must have no error of its own). */
void kms_batch_context(const kms_batch *b, const kms_pipeline *pl, size_t i,
                       kms_context *ctx);

/* One line for a failed input. */
void kms_batch_report(const kms_error *err);

/* Writes bytes to the output folder atomically under name. */
kms_status kms_batch_write(const kms_batch *b, const char *name,
                           const void *buf, size_t len, kms_error *err);

/* The report of an input-by-input command (report.h). */
typedef enum kms_report_kind {
    KMS_REPORT_NONE,
    KMS_REPORT_COMPARE, /* compare.csv: speed-up and agreement */
    KMS_REPORT_ELBOW    /* elbow.csv: the knee and the plots */
} kms_report_kind;

/* An input-by-input command (compare, elbow): fn works on one input, set up
 * by kms_batch_context, and appends its rows to csv. */
typedef kms_status (*kms_each_fn)(const kms_pipeline *pl, const kms_batch *b,
                                  kms_context *ctx, FILE *csv, void *arg,
                                  kms_error *err);

typedef struct kms_each {
    const char *what;       /* past tense for the closing line: "compared" */
    const char *csv_name;   /* written to the output folder */
    const char *csv_header; /* its first line */
    kms_each_fn fn;
    void *arg;
    int done, failed;       /* out */
    kms_report_kind report; /* what its report shows */
} kms_each;

/* Runs each->fn over the inputs in order, reporting failures, then writes
 * the CSV. Returns the exit status: 0, 1 some failed, 2 could not start. */
int kms_batch_each(const kms_pipeline *pl, const kms_batch_options *opt,
                   kms_each *each);

#endif
