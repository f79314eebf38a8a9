/* dereflect_net.c — a dereflect network's low and full pipelines over a
 * photo of any size (dereflect_net.h). */
#include "stages/dereflect_net.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "stages/halide_glue.h"
#include "stages/tiler.h"

/* What the C side must know of each network's shape (its net.h says the
 * same; the pipelines check the low map's channels against their own). */
enum { N_TAPS = 4, MAX_PIECES = 8 };

typedef struct {
    const char *name;
    int multiple, scale, low_channels, apron;
    /* training's pieces (nets/dereflect.h): the feature taps' channels and
     * strides from the quarter image, the later pieces' count, and the
     * channels of the maps between pieces (at 1/scale) */
    int tap_channels[N_TAPS], tap_strides[N_TAPS];
    int n_pieces;
    int piece_channels[MAX_PIECES + 1];
} net_shape;

static const net_shape shapes[] = {
    {"uhd", 128, 8, 11, 3, {16, 24, 32, 64}, {2, 4, 8, 16}, 2, {32, 32, 11}},
};

enum { DEFAULT_TILE = 512 };

static const net_shape *shape_of(const lumos__net_def *net)
{
    for (size_t i = 0; net && !strcmp(net->task, "dereflect") && i < sizeof shapes / sizeof *shapes; i++)
        if (!strcmp(shapes[i].name, net->name)) return &shapes[i];
    return NULL;
}

/* The low pass and the gradient are built for AVX2 and FMA only (Halide
 * takes minutes to lower them per target). */
static int check_cpu(lumos_ctx *ctx, const lumos__net_def *net)
{
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return LUMOS_OK;
    return lumos__fail(ctx, LUMOS_E_UNSUPPORTED, "dereflect: %s needs a CPU with AVX2 and FMA",
                       net->name);
}

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

/* The quarter image (qw × qh): 4×4 means of the photo padded by
 * mirroring. */
static void quarter_image(const float *rgb, int width, int height, int qw, int qh, float *quarter)
{
    for (int qy = 0; qy < qh; qy++)
        for (int qx = 0; qx < qw; qx++) {
            float sum[3] = {0, 0, 0};
            for (int dy = 0; dy < 4; dy++) {
                const float *row = rgb + (size_t)mirror(4 * qy + dy, height) * width * 3;
                for (int dx = 0; dx < 4; dx++)
                    for (int c = 0; c < 3; c++) sum[c] += row[3 * mirror(4 * qx + dx, width) + c];
            }
            for (int c = 0; c < 3; c++) quarter[((size_t)qy * qw + qx) * 3 + c] = sum[c] / 16.f;
        }
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
    const net_shape *shape = shape_of(net);
    if (!shape || !flat || !rgb || !out || width < 1 ||
        height < 1 || width > (1 << 16) || height > (1 << 16) || tile < 0 || tile % 8)
        return lumos__fail(ctx, LUMOS_E_ARG, "dereflect: bad arguments");
    if (check_cpu(ctx, net)) return LUMOS_E_UNSUPPORTED;
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
    if (rc == LUMOS_OK) quarter_image(rgb, width, height, qw, qh, quarter);
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

/* The training pieces' signatures (dereflect_generator.cpp's
 * dereflect_piece): inputs, then weights, then (grad) dL/d(output), then
 * the outputs. */
typedef struct halide_buffer_t hb;
typedef int (*taps_fn)(void const *, hb *quarter, hb *w, hb *t0, hb *t1, hb *t2, hb *t3);
typedef int (*first_fn)(void const *, hb *t0, hb *t1, hb *t2, hb *t3, hb *quarter, hb *w, hb *out);
typedef int (*first_grad_fn)(void const *, hb *t0, hb *t1, hb *t2, hb *t3, hb *quarter, hb *w,
                             hb *grad_out, hb *grad_w);
typedef int (*piece_fn)(void const *, hb *in, hb *w, hb *out);
typedef int (*piece_grad_fn)(void const *, hb *in, hb *w, hb *grad_out, hb *grad_in, hb *grad_w);
typedef int (*full_grad_fn)(void const *, hb *image, hb *low, hb *w, hb *grad_out, hb *grad_in,
                            hb *grad_w);

/* A float map (c, x, y) of the training crop and its Halide buffer. */
typedef struct {
    float *data;
    int channels, width, height;
    halide_buffer_t buf;
    halide_dimension_t dim[3];
} crop_map;

static int map_alloc(lumos_ctx *ctx, crop_map *m, int channels, int width, int height)
{
    m->data = malloc((size_t)channels * width * height * sizeof *m->data);
    if (!m->data) return lumos__fail(ctx, LUMOS_E_NOMEM, "dereflect backward: out of memory");
    m->channels = channels, m->width = width, m->height = height;
    lumos__hl_buffer_cxy(&m->buf, m->dim, m->data, channels, width, height);
    return LUMOS_OK;
}

/* grad_params += the piece's dL/dθ (each piece writes every parameter's). */
static void accumulate(float *grad_params, const float *piece, size_t n)
{
    for (size_t i = 0; i < n; i++) grad_params[i] += piece[i];
}

int lumos__dereflect_net_backward(lumos_ctx *ctx, const lumos__net_def *net, const float *flat,
                                  const float *rgb, int width, int height, const float *grad_t,
                                  float *grad_params)
{
    lumos__halide_init();
    const net_shape *shape = shape_of(net);
    if (!shape || !flat || !rgb || !grad_t || !grad_params || width < shape->multiple ||
        height < shape->multiple || width % shape->multiple || height % shape->multiple ||
        width > (1 << 14) || height > (1 << 14))
        return lumos__fail(ctx, LUMOS_E_ARG, "dereflect backward: bad arguments (%dx%d)", width,
                           height);
    if (check_cpu(ctx, net)) return LUMOS_E_UNSUPPORTED;
    char name[32];
    taps_fn taps = (taps_fn)lumos__net_pipeline(net, "taps");
    first_fn first = (first_fn)lumos__net_pipeline(net, "first");
    first_grad_fn first_grad = (first_grad_fn)lumos__net_pipeline(net, "first_grad");
    full_grad_fn full_grad = (full_grad_fn)lumos__net_pipeline(net, "full_grad");
    piece_fn piece[MAX_PIECES];
    piece_grad_fn piece_grad[MAX_PIECES];
    int have = taps && first && first_grad && full_grad;
    for (int k = 0; k < shape->n_pieces; k++) {
        snprintf(name, sizeof name, "piece%d", k + 1);
        piece[k] = (piece_fn)lumos__net_pipeline(net, name);
        snprintf(name, sizeof name, "piece%d_grad", k + 1);
        piece_grad[k] = (piece_grad_fn)lumos__net_pipeline(net, name);
        have = have && piece[k] && piece_grad[k];
    }
    if (!have) return lumos__fail(ctx, LUMOS_E_UNSUPPORTED, "%s: no training pipelines", net->name);

    const int qw = width / 4, qh = height / 4, mw = width / shape->scale, mh = height / shape->scale;
    const size_t n_flat = lumos__net_weight_count(net);
    const int np = shape->n_pieces;
    crop_map quarter = {0}, tap[N_TAPS] = {{0}}, maps[MAX_PIECES + 1] = {{0}}, grads[2] = {{0}};
    float *piece_params = malloc(n_flat * sizeof *piece_params);
    int rc = piece_params ? LUMOS_OK : lumos__fail(ctx, LUMOS_E_NOMEM, "dereflect backward: out of memory");
    if (rc == LUMOS_OK) rc = map_alloc(ctx, &quarter, 3, qw, qh);
    for (int k = 0; rc == LUMOS_OK && k < N_TAPS; k++)
        rc = map_alloc(ctx, &tap[k], shape->tap_channels[k], qw / shape->tap_strides[k],
                       qh / shape->tap_strides[k]);
    for (int k = 0; rc == LUMOS_OK && k <= np; k++)
        rc = map_alloc(ctx, &maps[k], shape->piece_channels[k], mw, mh);
    int widest = 0;
    for (int k = 0; k <= np; k++) widest = shape->piece_channels[k] > widest ? shape->piece_channels[k] : widest;
    for (int k = 0; rc == LUMOS_OK && k < 2; k++) rc = map_alloc(ctx, &grads[k], widest, mw, mh);
    halide_buffer_t wb, ib, gtb, pb;
    halide_dimension_t wd, id[3], gtd[3], pd;
    lumos__hl_buffer_1d(&wb, &wd, flat, n_flat);
    lumos__hl_buffer_cxy(&ib, id, rgb, 3, width, height);
    lumos__hl_buffer_cxy(&gtb, gtd, grad_t, 3, width, height);
    lumos__hl_buffer_1d(&pb, &pd, piece_params, n_flat);
    lumos__clear_error(ctx);

    /* forward: the taps, then every piece's map (the inputs of the gradients) */
    if (rc == LUMOS_OK) {
        quarter_image(rgb, width, height, qw, qh, quarter.data);
        rc = lumos__hl_status(ctx, taps(ctx, &quarter.buf, &wb, &tap[0].buf, &tap[1].buf, &tap[2].buf,
                                        &tap[3].buf), "dereflect: feature taps");
    }
    if (rc == LUMOS_OK)
        rc = lumos__hl_status(ctx, first(ctx, &tap[0].buf, &tap[1].buf, &tap[2].buf, &tap[3].buf,
                                         &quarter.buf, &wb, &maps[0].buf), "dereflect: first piece");
    for (int k = 0; rc == LUMOS_OK && k < np; k++)
        rc = lumos__hl_status(ctx, piece[k](ctx, &maps[k].buf, &wb, &maps[k + 1].buf), "dereflect: piece");

    /* backward, from dL/dT: each piece's dL/dθ summed, dL/d(its input) on */
    memset(grad_params, 0, n_flat * sizeof *grad_params);
    int g = 0; /* grads[g] holds dL/d(maps[k]) */
    if (rc == LUMOS_OK) {
        lumos__hl_buffer_cxy(&grads[g].buf, grads[g].dim, grads[g].data, shape->piece_channels[np], mw, mh);
        rc = lumos__hl_status(ctx, full_grad(ctx, &ib, &maps[np].buf, &wb, &gtb, &grads[g].buf, &pb),
                              "dereflect: full-resolution gradient");
        if (rc == LUMOS_OK) accumulate(grad_params, piece_params, n_flat);
    }
    for (int k = np - 1; rc == LUMOS_OK && k >= 0; k--) {
        /* piece k + 1 maps maps[k] to maps[k + 1] */
        crop_map *in_grad = &grads[1 - g];
        lumos__hl_buffer_cxy(&in_grad->buf, in_grad->dim, in_grad->data, shape->piece_channels[k], mw, mh);
        rc = lumos__hl_status(ctx, piece_grad[k](ctx, &maps[k].buf, &wb, &grads[g].buf, &in_grad->buf, &pb),
                              "dereflect: piece gradient");
        if (rc == LUMOS_OK) accumulate(grad_params, piece_params, n_flat);
        g = 1 - g;
    }
    if (rc == LUMOS_OK) {
        rc = lumos__hl_status(ctx, first_grad(ctx, &tap[0].buf, &tap[1].buf, &tap[2].buf, &tap[3].buf,
                                              &quarter.buf, &wb, &grads[g].buf, &pb),
                              "dereflect: first piece's gradient");
        if (rc == LUMOS_OK) accumulate(grad_params, piece_params, n_flat);
    }
    free(piece_params);
    free(quarter.data);
    for (int k = 0; k < N_TAPS; k++) free(tap[k].data);
    for (int k = 0; k <= np; k++) free(maps[k].data);
    for (int k = 0; k < 2; k++) free(grads[k].data);
    return rc;
}
