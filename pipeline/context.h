/* context.h — the lumos_ctx internals and the error helpers every folder uses. */
#ifndef LUMOS_CONTEXT_H
#define LUMOS_CONTEXT_H

#include "lumos.h"

struct lumos_ctx {
    int threads;          /* >= 1 */
    char error[1024];     /* detail of the last error */
    lumos_notice_fn notice;
    void *notice_user;
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

/* Number of online CPUs (>= 1). */
int lumos__cpu_count(void);

#endif
