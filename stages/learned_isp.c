/* learned_isp.c — runs generators/learned_isp_generator.cpp on a mosaic.
 *
 * EfficientISP and RobustISP are one call. RMFA-Net tiny is three: two
 * statistics passes, each reduced here to the per-channel mean and maximum
 * its channel attention pools over the whole image, then the image pass. */
#include "stages/learned_isp.h"

#include <float.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lumos_efficient_f32.h"
#include "lumos_efficient_u16.h"
#include "lumos_efficient_u8.h"
#include "lumos_rmfa_f32.h"
#include "lumos_rmfa_stats0.h"
#include "lumos_rmfa_stats1.h"
#include "lumos_rmfa_u16.h"
#include "lumos_rmfa_u8.h"
#include "lumos_robust_f32.h"
#include "lumos_robust_u16.h"
#include "lumos_robust_u8.h"
#include "pipeline/context.h"
#include "stages/halide_glue.h"

enum {
    NET_efficient = LUMOS_ISP_EFFICIENT,
    NET_robust = LUMOS_ISP_ROBUST,
    NET_rmfa = LUMOS_ISP_RMFA_TINY,
    NET_layer_zoo = -1, /* test-only: tests/test_layers.c */
    NET_grad_conv = -2, /* test-only: tests/test_grads.c */
    NET_grad_conv_s2 = -3,
    NET_mobilenet = LUMOS__NET_MOBILENET,
    NET_disc_texture_early = LUMOS__NET_DISC_TEXTURE_EARLY,
    NET_disc_texture_deep = LUMOS__NET_DISC_TEXTURE_DEEP,
    NET_disc_colour = LUMOS__NET_DISC_COLOUR,
    NET_vgg19 = LUMOS__NET_VGG19
};

static const struct {
    int net;
    lumos__tensor_spec spec;
} tensors[] = {
#define LUMOS_TENSOR(net, name, d0, d1, d2, d3)                                      \
    {NET_##net, {name, (d0 > 0) + (d1 > 0) + (d2 > 0) + (d3 > 0), {d0, d1, d2, d3}}},
#include "generators/isp_nets.def"
#undef LUMOS_TENSOR
};

const lumos__tensor_spec *lumos__learned_tensor(lumos_isp_kind kind, size_t i)
{
    for (size_t k = 0; k < sizeof tensors / sizeof tensors[0]; k++)
        if (tensors[k].net == (int)kind && i-- == 0) return &tensors[k].spec;
    return NULL;
}

size_t lumos__tensor_elements(const lumos__tensor_spec *t)
{
    size_t e = 1;
    for (int d = 0; d < t->ndim; d++) e *= (size_t)t->shape[d];
    return e;
}

ptrdiff_t lumos__learned_tensor_offset(lumos_isp_kind kind, const char *name)
{
    size_t at = 0;
    const lumos__tensor_spec *t;
    for (size_t i = 0; (t = lumos__learned_tensor(kind, i)); i++) {
        if (!strcmp(t->name, name)) return (ptrdiff_t)at;
        at += lumos__tensor_elements(t);
    }
    return -1;
}

size_t lumos__learned_weight_count(lumos_isp_kind kind)
{
    size_t n = 0;
    const lumos__tensor_spec *t;
    for (size_t i = 0; (t = lumos__learned_tensor(kind, i)); i++) n += lumos__tensor_elements(t);
    return n;
}

typedef int (*net_fn)(void const *, struct halide_buffer_t *, int32_t, int32_t,
                      struct halide_buffer_t *, struct halide_buffer_t *,
                      struct halide_buffer_t *, struct halide_buffer_t *,
                      struct halide_buffer_t *);

static net_fn image_pass(lumos_isp_kind kind, int bits)
{
    static const net_fn table[3][3] = {
        {lumos_efficient_u8, lumos_efficient_u16, lumos_efficient_f32},
        {lumos_robust_u8, lumos_robust_u16, lumos_robust_f32},
        {lumos_rmfa_u8, lumos_rmfa_u16, lumos_rmfa_f32},
    };
    return table[kind - LUMOS_ISP_EFFICIENT][bits == 8 ? 0 : bits == 16 ? 1 : 2];
}

/* The generator's output tiles (kTileW × kTileH), RMFA's statistics' too. */
enum { TILE_W = 256, TILE_H = 128, CHANNELS = 16 };

typedef struct {
    halide_buffer_t raw, black, scale, weights, stats;
    halide_dimension_t raw_d[2], black_d[2], scale_d[2], weights_d[1], stats_d[3];
    float stats_data[CHANNELS * 2 * 2]; /* (channel, mean|max, block) */
} inputs;

static void bind_inputs(inputs *in, const float *flat, size_t nflat, const uint16_t *mosaic,
                        int width, int height, int stride_elems, const float black[4],
                        const float scale[4])
{
    const struct halide_type_t u16 = {halide_type_uint, 16, 1}, f32 = {halide_type_float, 32, 1};
    lumos__hl_buffer_2d(&in->raw, in->raw_d, mosaic, u16, width, height, stride_elems);
    lumos__hl_buffer_2d(&in->black, in->black_d, black, f32, 2, 2, 2);
    lumos__hl_buffer_2d(&in->scale, in->scale_d, scale, f32, 2, 2, 2);
    memset(&in->weights, 0, sizeof in->weights);
    memset(in->weights_d, 0, sizeof in->weights_d);
    in->weights_d[0].extent = (int32_t)nflat;
    in->weights_d[0].stride = 1;
    in->weights.host = (uint8_t *)flat;
    in->weights.type = f32;
    in->weights.dimensions = 1;
    in->weights.dim = in->weights_d;
    memset(in->stats_data, 0, sizeof in->stats_data);
    memset(&in->stats, 0, sizeof in->stats);
    const int32_t extents[3] = {CHANNELS, 2, 2}, strides[3] = {1, CHANNELS, 2 * CHANNELS};
    for (int d = 0; d < 3; d++) {
        in->stats_d[d] = (halide_dimension_t){0, extents[d], strides[d], 0};
    }
    in->stats.host = (uint8_t *)in->stats_data;
    in->stats.type = f32;
    in->stats.dimensions = 3;
    in->stats.dim = in->stats_d;
}

/* One RMFA statistics pass: fills block `pass`'s mean and maximum. */
static int rmfa_statistics(lumos_ctx *ctx, inputs *in, int pass, int cfa_x, int cfa_y, int width,
                           int height)
{
    int fw = width + cfa_x, fh = height + cfa_y; /* the network's domain */
    int tx = lumos__round_up(fw, TILE_W) / TILE_W, ty = lumos__round_up(fh, TILE_H) / TILE_H;
    float *partial = malloc((size_t)2 * CHANNELS * tx * ty * sizeof *partial);
    if (!partial) return lumos__fail(ctx, LUMOS_E_NOMEM, "RMFA statistics: out of memory");
    const struct halide_type_t f32 = {halide_type_float, 32, 1};
    halide_buffer_t out = {0};
    halide_dimension_t d[3] = {{0, 2 * CHANNELS, 1, 0}, {0, tx, 2 * CHANNELS, 0},
                               {0, ty, 2 * CHANNELS * tx, 0}};
    out.host = (uint8_t *)partial;
    out.type = f32;
    out.dimensions = 3;
    out.dim = d;
    net_fn fn = pass == 0 ? lumos_rmfa_stats0 : lumos_rmfa_stats1;
    lumos__clear_error(ctx);
    int rc = fn(ctx, &in->raw, cfa_x, cfa_y, &in->black, &in->scale, &in->weights, &in->stats, &out);
    rc = lumos__hl_status(ctx, rc, "RMFA statistics");
    if (rc == LUMOS_OK) {
        for (int c = 0; c < CHANNELS; c++) {
            double sum = 0;
            float mx = -FLT_MAX;
            for (int t = 0; t < tx * ty; t++) {
                sum += partial[t * 2 * CHANNELS + c];
                float m = partial[t * 2 * CHANNELS + CHANNELS + c];
                if (m > mx) mx = m;
            }
            in->stats_data[pass * 2 * CHANNELS + c] = (float)(sum / ((double)fw * fh));
            in->stats_data[pass * 2 * CHANNELS + CHANNELS + c] = mx;
        }
    }
    free(partial);
    return rc;
}

int lumos__stage_learned(lumos_ctx *ctx, lumos_isp_kind kind, const float *flat,
                         const uint16_t *mosaic, int width, int height, size_t stride, int cfa_x,
                         int cfa_y, const float black[4], const float scale[4], int bits,
                         void **data, size_t *row_stride)
{
    lumos__halide_init();
    *data = NULL;
    if (kind < LUMOS_ISP_EFFICIENT || kind > LUMOS_ISP_RMFA_TINY || (bits != 8 && bits != 16 && bits != 32) ||
        width < 1 || height < 1 || stride % 2)
        return lumos__fail(ctx, LUMOS_E_ARG, "learned ISP: bad arguments");

    /* A 1-pixel side has nothing to mirror: repeat it once. */
    uint16_t *grown = NULL;
    int rw = width, rh = height;
    if (width < 2 || height < 2) {
        rw = width < 2 ? 2 : width;
        rh = height < 2 ? 2 : height;
        grown = malloc((size_t)rw * rh * sizeof *grown);
        if (!grown) return lumos__fail(ctx, LUMOS_E_NOMEM, "learned ISP: out of memory");
        for (int y = 0; y < rh; y++)
            for (int x = 0; x < rw; x++)
                grown[y * rw + x] = *(const uint16_t *)((const uint8_t *)mosaic +
                                                        (size_t)(y < height ? y : height - 1) * stride +
                                                        2 * (size_t)(x < width ? x : width - 1));
        mosaic = grown;
        stride = (size_t)rw * 2;
    }

    inputs in;
    bind_inputs(&in, flat, lumos__learned_weight_count(kind), mosaic, rw, rh, (int)(stride / 2),
                black, scale);
    int rc = LUMOS_OK;
    if (kind == LUMOS_ISP_RMFA_TINY)
        for (int pass = 0; pass < 2 && rc == LUMOS_OK; pass++)
            rc = rmfa_statistics(ctx, &in, pass, cfa_x, cfa_y, rw, rh);

    /* Output capacity rounded up to whole tiles (the schedule's RoundUp). */
    int cap_w = lumos__round_up(width, TILE_W), cap_h = lumos__round_up(height, TILE_H);
    int bytes = bits / 8;
    size_t row = (size_t)cap_w * 3 * (size_t)bytes;
    void *pixels = rc == LUMOS_OK ? calloc((size_t)cap_h, row) : NULL;
    if (rc == LUMOS_OK && !pixels) rc = lumos__fail(ctx, LUMOS_E_NOMEM, "learned ISP: out of memory");
    if (rc == LUMOS_OK) {
        halide_buffer_t out = {0};
        halide_dimension_t d[3] = {{0, cap_w, 3, 0}, {0, cap_h, (int32_t)(row / (size_t)bytes), 0},
                                   {0, 3, 1, 0}};
        out.host = pixels;
        out.type = (struct halide_type_t){bits == 32 ? halide_type_float : halide_type_uint,
                                          (uint8_t)bits, 1};
        out.dimensions = 3;
        out.dim = d;
        lumos__clear_error(ctx);
        rc = image_pass(kind, bits)(ctx, &in.raw, cfa_x, cfa_y, &in.black, &in.scale, &in.weights,
                                    &in.stats, &out);
        rc = lumos__hl_status(ctx, rc, lumos_isp_name(kind));
    }
    free(grown);
    if (rc != LUMOS_OK) {
        free(pixels);
        return rc;
    }
    *data = pixels;
    *row_stride = row;
    return LUMOS_OK;
}
