/* dereflect_net.c — a dereflect network's low and full pipelines over a
 * photo of any size (dereflect_net.h). */
#include "stages/dereflect_net.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "stages/halide_glue.h"
#include "stages/tiler.h"

/* What the C side must know of each network's shape (its net.h says the
 * same; the pipelines check the low map's channels against their own). */
typedef struct {
    const char *name;
    int multiple, scale, low_channels, apron;
} net_shape;

static const net_shape shapes[] = {{"uhd", 128, 8, 11, 3}};

enum { DEFAULT_TILE = 512 };

typedef int (*low_fn)(void const *, struct halide_buffer_t *, struct halide_buffer_t *,
                      struct halide_buffer_t *);
typedef int (*full_fn)(void const *, struct halide_buffer_t *, int32_t, int32_t,
                       struct halide_buffer_t *, struct halide_buffer_t *,
                       struct halide_buffer_t *);

/* Index i of a side of n samples, mirrored past either end without
 * repeating the edge (torch's "reflect"), as often as it takes. */
static int mirror(int i, int n)
{
    if (n == 1) return 0;
    const int period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

typedef struct {
    lumos_ctx *ctx;
    const net_shape *shape;
    full_fn full;
    const float *rgb, *flat, *low;
    size_t n_flat;
    int width, height, padded_w, padded_h;
    int channels;
    float *window; /* one tile plus its apron */
} job;

/* The full pass over one region: its window of the padded photo (mirrored
 * reads), the region out. */
static int full_region(void *user, int x0, int y0, int w, int h, float *out)
{
    job *j = user;
    const int a = j->shape->apron;
    int wx0 = x0 - a < 0 ? 0 : x0 - a, wy0 = y0 - a < 0 ? 0 : y0 - a;
    int wx1 = x0 + w + a > j->padded_w ? j->padded_w : x0 + w + a;
    int wy1 = y0 + h + a > j->padded_h ? j->padded_h : y0 + h + a;
    int ww = wx1 - wx0, wh = wy1 - wy0;
    for (int y = 0; y < wh; y++) {
        const float *src = j->rgb + (size_t)mirror(wy0 + y, j->height) * j->width * 3;
        float *dst = j->window + (size_t)y * ww * 3;
        for (int x = 0; x < ww; x++) memcpy(dst + 3 * x, src + 3 * mirror(wx0 + x, j->width), 3 * sizeof(float));
    }
    halide_buffer_t win, low, weights, o;
    halide_dimension_t wd[3], ld[3], fd, od[3];
    lumos__hl_buffer_cxy_at(&win, wd, j->window, 3, wx0, wy0, ww, wh);
    const int s = j->shape->scale;
    lumos__hl_buffer_cxy(&low, ld, j->low, j->shape->low_channels, j->padded_w / s, j->padded_h / s);
    lumos__hl_buffer_1d(&weights, &fd, j->flat, j->n_flat);
    lumos__hl_buffer_cxy_at(&o, od, out, j->channels, x0, y0, w, h);
    lumos__clear_error(j->ctx);
    int rc = j->full(j->ctx, &win, j->padded_w, j->padded_h, &low, &weights, &o);
    return lumos__hl_status(j->ctx, rc, "dereflect: full-resolution pass");
}

int lumos__dereflect_net(lumos_ctx *ctx, const lumos__net_def *net, const float *flat,
                         const float *rgb, int width, int height, int tile, int with_reflection,
                         float *out)
{
    lumos__halide_init();
    const net_shape *shape = NULL;
    for (size_t i = 0; net && i < sizeof shapes / sizeof *shapes; i++)
        if (!strcmp(shapes[i].name, net->name)) shape = &shapes[i];
    if (!shape || strcmp(net->task, "dereflect") || !flat || !rgb || !out || width < 1 ||
        height < 1 || width > (1 << 16) || height > (1 << 16) || tile < 0 || tile % 8)
        return lumos__fail(ctx, LUMOS_E_ARG, "dereflect: bad arguments");
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return lumos__fail(ctx, LUMOS_E_UNSUPPORTED, "dereflect: %s needs a CPU with AVX2 and FMA",
                           net->name);
    low_fn low_pass = (low_fn)lumos__net_pipeline(net, "low");
    full_fn full_pass = (full_fn)lumos__net_pipeline(net, with_reflection ? "full_tr" : "full");
    if (!low_pass || !full_pass)
        return lumos__fail(ctx, LUMOS_E_UNSUPPORTED, "%s: no low or full pipeline", net->name);

    job j = {ctx, shape, full_pass, rgb, flat, NULL, lumos__net_weight_count(net), width, height,
             lumos__round_up(width, shape->multiple), lumos__round_up(height, shape->multiple),
             with_reflection ? 6 : 3, NULL};
    const int qw = j.padded_w / 4, qh = j.padded_h / 4, s = shape->scale;
    float *quarter = malloc((size_t)qw * qh * 3 * sizeof *quarter);
    float *low = malloc((size_t)(j.padded_w / s) * (j.padded_h / s) * shape->low_channels * sizeof *low);
    int rc = quarter && low ? LUMOS_OK : lumos__fail(ctx, LUMOS_E_NOMEM, "dereflect: out of memory");
    /* the quarter image: 4×4 means of the padded photo */
    for (int qy = 0; rc == LUMOS_OK && qy < qh; qy++)
        for (int qx = 0; qx < qw; qx++) {
            float sum[3] = {0, 0, 0};
            for (int dy = 0; dy < 4; dy++) {
                const float *row = rgb + (size_t)mirror(4 * qy + dy, height) * width * 3;
                for (int dx = 0; dx < 4; dx++)
                    for (int c = 0; c < 3; c++) sum[c] += row[3 * mirror(4 * qx + dx, width) + c];
            }
            for (int c = 0; c < 3; c++) quarter[((size_t)qy * qw + qx) * 3 + c] = sum[c] / 16.f;
        }
    if (rc == LUMOS_OK) {
        halide_buffer_t qb, lb, wb;
        halide_dimension_t qd[3], ld[3], wd;
        lumos__hl_buffer_cxy(&qb, qd, quarter, 3, qw, qh);
        lumos__hl_buffer_cxy(&lb, ld, low, shape->low_channels, j.padded_w / s, j.padded_h / s);
        lumos__hl_buffer_1d(&wb, &wd, flat, j.n_flat);
        lumos__clear_error(ctx);
        rc = lumos__hl_status(ctx, low_pass(ctx, &qb, &wb, &lb), "dereflect: low-resolution pass");
    }
    free(quarter);
    j.low = low;

    /* the full pass in tiles: exact (no overlap), each reading its apron */
    lumos__tiler t = {width, height, j.channels, tile ? tile : DEFAULT_TILE,
                      tile ? tile : DEFAULT_TILE, shape->apron, 0, 1, NULL, NULL,
                      full_region, &j};
    if (rc == LUMOS_OK) {
        int mw, mh;
        lumos__tiler_max_region(&t, &mw, &mh);
        j.window = malloc((size_t)(mw + 2 * shape->apron) * (mh + 2 * shape->apron) * 3 * sizeof(float));
        if (!j.window) rc = lumos__fail(ctx, LUMOS_E_NOMEM, "dereflect: out of memory");
    }
    if (rc == LUMOS_OK) rc = lumos__tiler_run(ctx, &t, out, (size_t)width * j.channels);
    free(j.window);
    free(low);
    return rc;
}
