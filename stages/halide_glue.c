/* halide_glue.c — error routing and per-context threads for generated code. */
#include "stages/halide_glue.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"

static void on_halide_error(void *user_context, const char *msg)
{
    lumos_ctx *ctx = user_context;
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) n--;
    lumos__fail(ctx, LUMOS_E_PIPELINE, "%.*s", (int)n, msg);
}

struct par_loop {
    halide_task_t task;
    void *user_context;
    int min;
    uint8_t *closure;
};

static int par_item(void *arg, int i)
{
    struct par_loop *l = arg;
    return l->task(l->user_context, l->min + i, l->closure);
}

/* Halide's parallel loops on the context's threads (lumos__parallel_for). */
static int par_for(void *user_context, halide_task_t task, int min, int size, uint8_t *closure)
{
    struct par_loop loop = {task, user_context, min, closure};
    return lumos__parallel_for(user_context, size, par_item, &loop);
}

/* Pipeline buffers come from the context's scratch cache. */
static void *scratch_malloc(void *user_context, size_t size)
{
    return lumos__scratch_alloc(user_context, size);
}

static void scratch_free(void *user_context, void *ptr) { lumos__scratch_free(user_context, ptr); }

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init(void)
{
    halide_set_error_handler(on_halide_error);
    halide_set_custom_do_par_for(par_for);
    halide_set_custom_malloc(scratch_malloc);
    halide_set_custom_free(scratch_free);
}

void lumos__halide_init(void) { pthread_once(&init_once, init); }

void lumos__hl_buffer_2d(halide_buffer_t *b, halide_dimension_t dim[2], const void *host,
                         struct halide_type_t type, int width, int height, int stride)
{
    memset(b, 0, sizeof *b);
    memset(dim, 0, 2 * sizeof *dim);
    dim[0].extent = width;
    dim[0].stride = 1;
    dim[1].extent = height;
    dim[1].stride = stride;
    b->host = (uint8_t *)host;
    b->type = type;
    b->dimensions = 2;
    b->dim = dim;
}

void lumos__hl_buffer_image(halide_buffer_t *b, halide_dimension_t dim[3], lumos_image *img)
{
    int bytes = img->bits / 8;
    memset(b, 0, sizeof *b);
    memset(dim, 0, 3 * sizeof *dim);
    dim[0].extent = img->width;
    dim[0].stride = img->channels;
    dim[1].extent = img->height;
    dim[1].stride = (int32_t)(img->stride / (size_t)bytes);
    dim[2].extent = img->channels;
    dim[2].stride = 1;
    b->host = img->data;
    b->type.code = halide_type_uint;
    b->type.bits = (uint8_t)img->bits;
    b->type.lanes = 1;
    b->dimensions = 3;
    b->dim = dim;
}

int lumos__hl_status(lumos_ctx *ctx, int rc, const char *stage)
{
    if (rc == 0) return LUMOS_OK;
    if (rc == halide_error_code_out_of_memory)
        return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", stage);
    /* The error handler has already written the runtime's message. */
    if (ctx && ctx->error[0] == '\0')
        lumos__fail(ctx, LUMOS_E_PIPELINE, "%s: pipeline failed (Halide error %d)", stage, rc);
    return LUMOS_E_PIPELINE;
}

void lumos__hl_buffer_1d(halide_buffer_t *b, halide_dimension_t *dim, const float *host, size_t n)
{
    memset(b, 0, sizeof *b);
    *dim = (halide_dimension_t){0, (int32_t)n, 1, 0};
    b->host = (uint8_t *)host;
    b->type = (struct halide_type_t){halide_type_float, 32, 1};
    b->dimensions = 1;
    b->dim = dim;
}

void lumos__hl_buffer_cxy_at(halide_buffer_t *b, halide_dimension_t dim[3], const float *host,
                             int c, int x0, int y0, int w, int h)
{
    memset(b, 0, sizeof *b);
    dim[0] = (halide_dimension_t){0, c, 1, 0};
    dim[1] = (halide_dimension_t){x0, w, c, 0};
    dim[2] = (halide_dimension_t){y0, h, c * w, 0};
    b->host = (uint8_t *)host;
    b->type = (struct halide_type_t){halide_type_float, 32, 1};
    b->dimensions = 3;
    b->dim = dim;
}

void lumos__hl_buffer_cxy(halide_buffer_t *b, halide_dimension_t dim[3], const float *host, int c,
                          int w, int h)
{
    lumos__hl_buffer_cxy_at(b, dim, host, c, 0, 0, w, h);
}
