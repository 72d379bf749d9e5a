/* The progress line: one line on stderr, redrawn in place, on a terminal. */
#ifndef KMS_PROGRESS_H
#define KMS_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum kms_progress_mode {
    KMS_PROGRESS_AUTO,   /* when stderr is a terminal */
    KMS_PROGRESS_ALWAYS,
    KMS_PROGRESS_NEVER
} kms_progress_mode;

typedef struct kms_progress {
    bool enabled;
    size_t total, done, failed, skipped;
    double start_ms, drawn_ms;
    bool shown;          /* a line is on screen */
} kms_progress;

void kms_progress_start(kms_progress *p, size_t total, kms_progress_mode mode);
/* Counts one finished input and redraws (at most 10 times a second). */
void kms_progress_step(kms_progress *p, bool failed, bool skipped);
/* Erases the line so other text can be printed; the next step redraws it. */
void kms_progress_hide(kms_progress *p);
/* Seconds since start. */
double kms_progress_elapsed(const kms_progress *p);

#endif
