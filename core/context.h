/* context.h — the lumos_ctx internals and the error helpers every folder uses. */
#ifndef LUMOS_CONTEXT_H
#define LUMOS_CONTEXT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "lumos.h"

enum { LUMOS_SCRATCH_SLOTS = 256 }; /* a training pipeline holds ~100 buffers at once */

struct lumos_ctx {
    int threads;          /* >= 1 */
    char error[1024];     /* detail of the last error */
    lumos_notice_fn notice;
    void *notice_user;
    /* Blocks the context's pipelines freed, kept for their next tiles and
     * calls (see lumos__scratch_alloc). */
    pthread_mutex_t scratch_lock;
    int scratch_count;
    void *scratch[LUMOS_SCRATCH_SLOTS];
    struct lumos__pool *pool; /* worker threads, started on first use */
    /* Readers' limits (lumos_ctx_set_max_pixels/_alloc); 0: the default. */
    uint64_t max_pixels, max_alloc;
};

#if defined(__GNUC__)
#define LUMOS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LUMOS_PRINTF(a, b)
#endif

/* Records the detail of an error on ctx (ctx may be NULL) and returns status,
 * so that a failing path reads `return lumos__fail(ctx, LUMOS_E_IO, ...)`. */
int lumos__fail(lumos_ctx *ctx, int status, const char *fmt, ...) LUMOS_PRINTF(3, 4);
/* The same, with ": <strerror(err)>" appended. */
int lumos__fail_errno(lumos_ctx *ctx, int status, int err, const char *fmt, ...)
    LUMOS_PRINTF(4, 5);
void lumos__clear_error(lumos_ctx *ctx);
void lumos__notice(lumos_ctx *ctx, const char *fmt, ...) LUMOS_PRINTF(2, 3);

/* Scratch memory for generated pipelines (their per-tile buffers), 128-byte
 * aligned. Freed blocks stay with the context for reuse, so a pipeline's
 * tiles and later calls do not grow and trim the heap over and over, which
 * cost a first call twice the time of the next. Thread-safe; ctx may be
 * NULL (no reuse). */
void *lumos__scratch_alloc(lumos_ctx *ctx, size_t size);
void lumos__scratch_free(lumos_ctx *ctx, void *block);

/* Runs task(arg, i) for every i in [0, count) on the context's threads: the
 * caller and ctx->threads − 1 workers kept for the context's life (started
 * on first use, pipeline/pool.c). A loop started from inside a task, or
 * while another thread runs one on the same context, runs serially on its
 * caller. Returns the first nonzero result of a task (the rest are then
 * skipped). ctx may be NULL (serial). */
int lumos__parallel_for(lumos_ctx *ctx, int count, int (*task)(void *arg, int i), void *arg);
void lumos__pool_free(struct lumos__pool *pool);

/* Number of online CPUs (>= 1). */
int lumos__cpu_count(void);

#endif
