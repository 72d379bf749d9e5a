/* A small fixed-chunk thread pool: the caller cuts work into chunks whose
 * bounds depend only on the problem size, workers take chunks in any order,
 * so results never depend on the thread count or on scheduling. */
#include "kmeans_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

struct kms_pool {
    int threads;          /* including the calling thread */
    int nworkers;         /* spawned threads actually running */
    pthread_t *tids;
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    unsigned long gen;    /* bumped once per kms_pool_run */
    int active;           /* workers still busy with this generation */
    int quit;
    kms_chunk_fn fn;
    void *ctx;
    size_t nchunks;
    atomic_size_t next;
};

static void drain(kms_pool *pool)
{
    size_t c;
    while ((c = atomic_fetch_add(&pool->next, 1)) < pool->nchunks)
        pool->fn(pool->ctx, c);
}

static void *worker(void *arg)
{
    kms_pool *pool = arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (pool->gen == seen && !pool->quit)
            pthread_cond_wait(&pool->start, &pool->mu);
        if (pool->quit)
            break;
        seen = pool->gen;
        pthread_mutex_unlock(&pool->mu);
        drain(pool);
        pthread_mutex_lock(&pool->mu);
        if (--pool->active == 0)
            pthread_cond_signal(&pool->done);
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
    pool->threads = threads > 0 ? threads : online_cores();
    atomic_init(&pool->next, 0);
    if (pool->threads == 1)
        return pool;
    pool->tids = calloc((size_t)pool->threads - 1, sizeof *pool->tids);
    if (!pool->tids) {
        free(pool);
        return NULL;
    }
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->start, NULL);
    pthread_cond_init(&pool->done, NULL);
    /* a thread that cannot be created only costs speed, never results */
    for (int t = 0; t < pool->threads - 1; t++) {
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
        pthread_cond_destroy(&pool->done);
        free(pool->tids);
    }
    free(pool);
}

int kms_pool_threads(const kms_pool *pool)
{
    return pool ? 1 + pool->nworkers : 1;
}

void kms_pool_run(kms_pool *pool, size_t nchunks, kms_chunk_fn fn, void *ctx)
{
    if (!pool || pool->nworkers == 0 || nchunks <= 1) {
        for (size_t c = 0; c < nchunks; c++)
            fn(ctx, c);
        return;
    }
    pthread_mutex_lock(&pool->mu);
    pool->fn = fn;
    pool->ctx = ctx;
    pool->nchunks = nchunks;
    atomic_store(&pool->next, 0);
    pool->active = pool->nworkers;
    pool->gen++;
    pthread_cond_broadcast(&pool->start);
    pthread_mutex_unlock(&pool->mu);
    drain(pool);
    pthread_mutex_lock(&pool->mu);
    while (pool->active > 0)
        pthread_cond_wait(&pool->done, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
}
