/* pool.c — a context's worker threads for the generated pipelines' parallel
 * loops (see context.h: lumos__parallel_for).
 *
 * A training pipeline over a 128² crop runs dozens of parallel loops of a
 * fraction of a millisecond each; starting threads for every loop cost
 * more than the loops themselves, and so did waking sleeping workers
 * through the kernel for each loop. The workers are started once, on first
 * use; between loops they spin a few tens of microseconds (the next loop
 * usually comes sooner), then sleep on a condition variable. */
#include "core/context.h"

#include <stdatomic.h>
#include <stdlib.h>

enum { MAX_WORKERS = 63, SPIN = 2000 /* pauses, ~50 µs */ };

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

struct lumos__pool {
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    pthread_t thread[MAX_WORKERS];
    int n; /* workers started */
    atomic_int quit;
    atomic_int sleepers; /* workers waiting on `wake` */
    /* the loop being run */
    atomic_ulong generation;
    int (*task)(void *arg, int i);
    void *arg;
    int count, limit; /* iterations; workers that take part (the rest skip) */
    atomic_int next, result;
    atomic_int running; /* workers still inside this loop */
    atomic_flag busy; /* a loop is in flight: other callers run theirs serially */
};

/* Set on the pool's workers and on a caller while it runs a loop: a
 * parallel loop started from inside a task runs serially. */
static _Thread_local int in_task;

static void run_items(struct lumos__pool *p)
{
    for (;;) {
        int i = atomic_fetch_add(&p->next, 1);
        if (i >= p->count || atomic_load(&p->result) != 0) return;
        int rc = p->task(p->arg, i);
        if (rc != 0) {
            int zero = 0;
            atomic_compare_exchange_strong(&p->result, &zero, rc);
        }
    }
}

typedef struct worker_arg {
    struct lumos__pool *pool;
    int index;
    unsigned long seen; /* the generation before the loop it was started for */
} worker_arg;

static void *worker_main(void *arg)
{
    worker_arg wa = *(worker_arg *)arg;
    free(arg);
    struct lumos__pool *p = wa.pool;
    in_task = 1;
    unsigned long seen = wa.seen;
    for (;;) {
        for (int k = 0; k < SPIN && atomic_load(&p->generation) == seen && !atomic_load(&p->quit); k++)
            cpu_relax();
        if (atomic_load(&p->generation) == seen) {
            /* sleepers is raised before generation is read again: a caller
             * that publishes a loop then sees a sleeper and wakes it */
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (!atomic_load(&p->quit) && atomic_load(&p->generation) == seen)
                pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) break;
        seen = atomic_load(&p->generation);
        if (wa.index < p->limit) run_items(p);
        if (atomic_fetch_sub(&p->running, 1) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

static struct lumos__pool *pool_new(void)
{
    struct lumos__pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return NULL;
    }
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_flag_clear(&p->busy);
    return p;
}

/* Starts workers up to `want`. Fewer is not an error: the
 * loops then run on the ones there are. */
static void grow(struct lumos__pool *p, int want)
{
    while (p->n < want && p->n < MAX_WORKERS) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) return;
        *wa = (worker_arg){p, p->n, atomic_load(&p->generation)};
        if (pthread_create(&p->thread[p->n], NULL, worker_main, wa) != 0) {
            free(wa);
            return;
        }
        p->n++;
    }
}

void lumos__pool_free(struct lumos__pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++) pthread_join(p->thread[i], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static int serial(int count, int (*task)(void *, int), void *arg)
{
    for (int i = 0; i < count; i++) {
        int rc = task(arg, i);
        if (rc) return rc;
    }
    return 0;
}

int lumos__parallel_for(lumos_ctx *ctx, int count, int (*task)(void *arg, int i), void *arg)
{
    int threads = ctx ? ctx->threads : 1;
    if (threads > count) threads = count;
    if (threads <= 1 || in_task) return serial(count, task, arg);
    pthread_mutex_lock(&ctx->scratch_lock); /* the pool is made once per context */
    if (!ctx->pool) ctx->pool = pool_new();
    struct lumos__pool *p = ctx->pool;
    pthread_mutex_unlock(&ctx->scratch_lock);
    if (!p || atomic_flag_test_and_set(&p->busy)) return serial(count, task, arg);

    grow(p, threads - 1); /* only this caller touches the job fields now */
    p->task = task;
    p->arg = arg;
    p->count = count;
    p->limit = threads - 1;
    atomic_store(&p->next, 0);
    atomic_store(&p->result, 0);
    atomic_store(&p->running, p->n);
    atomic_fetch_add(&p->generation, 1);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }

    in_task = 1;
    run_items(p);
    in_task = 0;

    for (int k = 0; k < SPIN && atomic_load(&p->running) > 0; k++) cpu_relax();
    if (atomic_load(&p->running) > 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->running) > 0) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    int rc = atomic_load(&p->result);
    atomic_flag_clear(&p->busy);
    return rc;
}
