/* context.c — contexts, status names and error text. */
#include "core/context.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *lumos_strerror(int status)
{
    switch (status) {
    case LUMOS_OK: return "success";
    case LUMOS_E_ARG: return "invalid argument";
    case LUMOS_E_NOMEM: return "out of memory";
    case LUMOS_E_IO: return "input/output error";
    case LUMOS_E_FORMAT: return "unrecognised or damaged file";
    case LUMOS_E_UNSUPPORTED: return "unsupported input";
    case LUMOS_E_ORDER: return "call out of order";
    case LUMOS_E_PIPELINE: return "pipeline error";
    case LUMOS_E_EXISTS: return "output exists";
    default: return "unknown error";
    }
}

const char *lumos_version(void) { return LUMOS_VERSION_STRING; }

int lumos__cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

lumos_ctx *lumos_ctx_new(void)
{
    lumos_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return NULL;
    ctx->threads = lumos__cpu_count();
    if (pthread_mutex_init(&ctx->scratch_lock, NULL) != 0) {
        free(ctx);
        return NULL;
    }
    return ctx;
}

void lumos_ctx_free(lumos_ctx *ctx)
{
    if (!ctx) return;
    lumos__pool_free(ctx->pool);
    for (int i = 0; i < ctx->scratch_count; i++) free(ctx->scratch[i]);
    pthread_mutex_destroy(&ctx->scratch_lock);
    free(ctx);
}

/* A block is [size_t capacity | padding to 128][data]. */
enum { SCRATCH_ALIGN = 128 };

static size_t scratch_capacity(void *block) { return *(size_t *)block; }

void *lumos__scratch_alloc(lumos_ctx *ctx, size_t size)
{
    if (size > SIZE_MAX - 2 * SCRATCH_ALIGN) return NULL;
    if (ctx) {
        /* the smallest cached block that fits without wasting over half */
        pthread_mutex_lock(&ctx->scratch_lock);
        int best = -1;
        for (int i = 0; i < ctx->scratch_count; i++) {
            size_t cap = scratch_capacity(ctx->scratch[i]);
            if (cap >= size && cap / 2 <= size &&
                (best < 0 || cap < scratch_capacity(ctx->scratch[best])))
                best = i;
        }
        void *block = NULL;
        if (best >= 0) {
            block = ctx->scratch[best];
            ctx->scratch[best] = ctx->scratch[--ctx->scratch_count];
        }
        pthread_mutex_unlock(&ctx->scratch_lock);
        if (block) return (uint8_t *)block + SCRATCH_ALIGN;
    }
    size_t cap = (size + SCRATCH_ALIGN - 1) / SCRATCH_ALIGN * SCRATCH_ALIGN;
    void *block = aligned_alloc(SCRATCH_ALIGN, cap + SCRATCH_ALIGN);
    if (!block) return NULL;
    *(size_t *)block = cap;
    return (uint8_t *)block + SCRATCH_ALIGN;
}

void lumos__scratch_free(lumos_ctx *ctx, void *data)
{
    if (!data) return;
    void *block = (uint8_t *)data - SCRATCH_ALIGN;
    if (ctx) {
        pthread_mutex_lock(&ctx->scratch_lock);
        int kept = ctx->scratch_count < LUMOS_SCRATCH_SLOTS;
        if (kept) ctx->scratch[ctx->scratch_count++] = block;
        pthread_mutex_unlock(&ctx->scratch_lock);
        if (kept) return;
    }
    free(block);
}

void lumos_ctx_set_threads(lumos_ctx *ctx, int threads)
{
    if (ctx) ctx->threads = threads > 0 ? threads : lumos__cpu_count();
}

int lumos_ctx_threads(const lumos_ctx *ctx) { return ctx ? ctx->threads : 1; }

const char *lumos_last_error(const lumos_ctx *ctx) { return ctx ? ctx->error : ""; }

void lumos_ctx_set_max_pixels(lumos_ctx *ctx, uint64_t pixels)
{
    if (ctx) ctx->max_pixels = pixels;
}

uint64_t lumos_ctx_max_pixels(const lumos_ctx *ctx)
{
    return ctx && ctx->max_pixels ? ctx->max_pixels : LUMOS_DEFAULT_MAX_PIXELS;
}

void lumos_ctx_set_max_alloc(lumos_ctx *ctx, uint64_t bytes)
{
    if (ctx) ctx->max_alloc = bytes;
}

/* By default the machine's physical memory: the bound lumos_image_alloc
 * keeps anyway, as an allocation past it would end in the OOM killer. */
uint64_t lumos_ctx_max_alloc(const lumos_ctx *ctx)
{
    if (ctx && ctx->max_alloc) return ctx->max_alloc;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return UINT64_MAX;
    return (uint64_t)pages * (uint64_t)page;
}

void lumos_ctx_set_notice(lumos_ctx *ctx, lumos_notice_fn fn, void *user)
{
    if (!ctx) return;
    ctx->notice = fn;
    ctx->notice_user = user;
}

void lumos__clear_error(lumos_ctx *ctx)
{
    if (ctx) ctx->error[0] = '\0';
}

static void set_error(lumos_ctx *ctx, const char *fmt, va_list ap, int err)
{
    if (!ctx) return;
    int n = vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
    if (err && n >= 0 && (size_t)n < sizeof ctx->error)
        snprintf(ctx->error + n, sizeof ctx->error - (size_t)n, ": %s", strerror(err));
}

int lumos__fail(lumos_ctx *ctx, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error(ctx, fmt, ap, 0);
    va_end(ap);
    return status;
}

int lumos__fail_errno(lumos_ctx *ctx, int status, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error(ctx, fmt, ap, err);
    va_end(ap);
    return status;
}

void lumos__notice(lumos_ctx *ctx, const char *fmt, ...)
{
    if (!ctx || !ctx->notice) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ctx->notice(ctx->notice_user, msg);
}
