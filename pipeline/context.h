/* context.h — the lumos_ctx internals and the error helpers every folder uses. */
#ifndef LUMOS_CONTEXT_H
#define LUMOS_CONTEXT_H

#include <pthread.h>
#include <stddef.h>

#include "lumos.h"

enum { LUMOS_SCRATCH_SLOTS = 64 };

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

/* Number of online CPUs (>= 1). */
int lumos__cpu_count(void);

#endif
