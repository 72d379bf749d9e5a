#include "progress.h"

#include <stdio.h>
#include <unistd.h>

#include "output.h"
#include "clock.h"

void kms_progress_start(kms_progress *p, size_t total, kms_progress_mode mode)
{
    *p = (kms_progress){0};
    p->total = total;
    p->enabled = mode == KMS_PROGRESS_ALWAYS ||
                 (mode == KMS_PROGRESS_AUTO && isatty(STDERR_FILENO));
    p->start_ms = kms_now_ms();
}

double kms_progress_elapsed(const kms_progress *p)
{
    return (kms_now_ms() - p->start_ms) / 1000.0;
}

static void clock_text(char *buf, size_t len, double seconds)
{
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, len, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, len, "%ld:%02ld", s / 60, s % 60);
}

static void draw(kms_progress *p)
{
    double elapsed = kms_progress_elapsed(p);
    double rate = elapsed > 0 ? (double)p->done / elapsed : 0;
    char el[32], eta[32] = "?";
    clock_text(el, sizeof el, elapsed);
    if (rate > 0)
        clock_text(eta, sizeof eta, (double)(p->total - p->done) / rate);
    fprintf(stderr, "\r\033[K%zu/%zu %3.0f%%  %.1f/s  elapsed %s  ETA %s  failed %zu",
            p->done, p->total,
            p->total ? 100.0 * (double)p->done / (double)p->total : 100.0, rate,
            el, eta, p->failed);
    if (p->skipped)
        fprintf(stderr, "  skipped %zu", p->skipped);
    fflush(stderr);
    p->shown = true;
    p->drawn_ms = kms_now_ms();
}

void kms_progress_step(kms_progress *p, bool failed, bool skipped)
{
    p->done++;
    p->failed += failed;
    p->skipped += skipped;
    if (p->enabled && (p->done == p->total || kms_now_ms() - p->drawn_ms >= 100))
        draw(p);
}

void kms_progress_hide(kms_progress *p)
{
    if (p->enabled && p->shown) {
        fputs("\r\033[K", stderr);
        p->shown = false;
    }
}
