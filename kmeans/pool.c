/* A small fixed-chunk thread pool: the caller cuts work into chunks whose
 * bounds depend only on the problem size, threads take chunks in any order,
 * so results never depend on the thread count or on scheduling.
 *
 * The caller drains chunks too and waits only for chunks already taken: a
 * worker that wakes late (its core busy with another process) finds nothing
 * left instead of holding the caller up. A chunk is taken with one atomic
 * compare-and-swap on (run number << 32 | next chunk), so a late worker can
 * never take a chunk of a later run with the previous run's function. */
#include "kmeans_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

enum { SPIN = 2000 }; /* polls before sleeping on the condition variable */

struct kms_pool {
    int nworkers;         /* spawned threads actually running */
    pthread_t *tids;
    pthread_mutex_t mu;
    pthread_cond_t start, done_cv;
    uint32_t gen;         /* run number, under mu */
    int quit;
    kms_chunk_fn fn;      /* the current run, under mu */
    void *ctx;
    size_t nchunks;
    atomic_uint_fast64_t ticket; /* gen << 32 | next chunk */
    atomic_size_t done;          /* chunks finished in this run */
};

typedef struct job {
    uint32_t gen;
    kms_chunk_fn fn;
    void *ctx;
    size_t nchunks;
} job;

static void finish_chunk(kms_pool *pool, size_t nchunks)
{
    if (atomic_fetch_add(&pool->done, 1) + 1 == nchunks) {
        pthread_mutex_lock(&pool->mu);
        pthread_cond_signal(&pool->done_cv);
        pthread_mutex_unlock(&pool->mu);
    }
}

/* Takes and runs chunks of run j until none is left. */
static void drain(kms_pool *pool, const job *j)
{
    uint_fast64_t v = atomic_load(&pool->ticket);
    for (;;) {
        size_t c = (size_t)(v & 0xffffffffu);
        if ((uint32_t)(v >> 32) != j->gen || c >= j->nchunks)
            return;
        if (!atomic_compare_exchange_weak(&pool->ticket, &v, v + 1))
            continue; /* v reloaded */
        j->fn(j->ctx, c);
        finish_chunk(pool, j->nchunks);
        v = atomic_load(&pool->ticket);
    }
}

static void *worker(void *arg)
{
    kms_pool *pool = arg;
    uint32_t seen = 0;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (pool->gen == seen && !pool->quit)
            pthread_cond_wait(&pool->start, &pool->mu);
        if (pool->quit)
            break;
        job j = {pool->gen, pool->fn, pool->ctx, pool->nchunks};
        seen = j.gen;
        pthread_mutex_unlock(&pool->mu);
        drain(pool, &j);
        pthread_mutex_lock(&pool->mu);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

static int online_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

kms_pool *kms_pool_create(int threads)
{
    kms_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    threads = threads > 0 ? threads : online_cores();
    atomic_init(&pool->ticket, 0);
    atomic_init(&pool->done, 0);
    if (threads == 1)
        return pool;
    pool->tids = calloc((size_t)threads - 1, sizeof *pool->tids);
    if (!pool->tids) {
        free(pool);
        return NULL;
    }
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->start, NULL);
    pthread_cond_init(&pool->done_cv, NULL);
    /* a thread that cannot be created only costs speed, never results */
    for (int t = 0; t < threads - 1; t++) {
        if (pthread_create(&pool->tids[t], NULL, worker, pool) != 0)
            break;
        pool->nworkers++;
    }
    return pool;
}

void kms_pool_destroy(kms_pool *pool)
{
    if (!pool)
        return;
    if (pool->tids) {
        pthread_mutex_lock(&pool->mu);
        pool->quit = 1;
        pthread_cond_broadcast(&pool->start);
        pthread_mutex_unlock(&pool->mu);
        for (int t = 0; t < pool->nworkers; t++)
            pthread_join(pool->tids[t], NULL);
        pthread_mutex_destroy(&pool->mu);
        pthread_cond_destroy(&pool->start);
        pthread_cond_destroy(&pool->done_cv);
        free(pool->tids);
    }
    free(pool);
}

int kms_pool_threads(const kms_pool *pool)
{
    return pool ? 1 + pool->nworkers : 1;
}

/* Waits for the chunks other threads took: a short spin (they are running),
 * then the condition variable. */
static void wait_done(kms_pool *pool, size_t nchunks)
{
    for (int i = 0; i < SPIN; i++)
        if (atomic_load(&pool->done) == nchunks)
            return;
    pthread_mutex_lock(&pool->mu);
    while (atomic_load(&pool->done) < nchunks)
        pthread_cond_wait(&pool->done_cv, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
}

void kms_pool_run(kms_pool *pool, size_t nchunks, kms_chunk_fn fn, void *ctx)
{
    if (!pool || pool->nworkers == 0 || nchunks <= 1) {
        for (size_t c = 0; c < nchunks; c++)
            fn(ctx, c);
        return;
    }
    pthread_mutex_lock(&pool->mu);
    job j = {++pool->gen, fn, ctx, nchunks};
    pool->fn = fn;
    pool->ctx = ctx;
    pool->nchunks = nchunks;
    atomic_store(&pool->done, 0);
    atomic_store(&pool->ticket, (uint_fast64_t)j.gen << 32);
    pthread_cond_broadcast(&pool->start);
    pthread_mutex_unlock(&pool->mu);
    drain(pool, &j);
    wait_done(pool, nchunks);
}
