/* train_isp.c — binds an ISP network's isp_grad pipeline (generators/train_generator.cpp). */
#include "stages/train_isp.h"

#include <string.h>

#include "core/context.h"
#include "stages/halide_glue.h"

typedef int (*grad_fn)(void const *, struct halide_buffer_t *, int32_t, int32_t,
                       struct halide_buffer_t *, struct halide_buffer_t *,
                       struct halide_buffer_t *, struct halide_buffer_t *,
                       struct halide_buffer_t *);

int lumos__stage_learned_backward(lumos_ctx *ctx, const lumos__net_def *net, const float *flat,
                                  const uint16_t *mosaic, int width, int height, size_t stride,
                                  int cfa_x, int cfa_y, const float black[4], const float scale[4],
                                  const float *grad_out, float *grad_flat)
{
    lumos__halide_init();
    if (!net || strcmp(net->task, "isp") || width < 2 || height < 2 || stride % 2 ||
        (cfa_x | cfa_y) & ~1)
        return lumos__fail(ctx, LUMOS_E_ARG, "learned ISP gradient: bad arguments");
    grad_fn fn = (grad_fn)net->backward;
    if (!fn) return lumos__fail(ctx, LUMOS_E_UNSUPPORTED, "%s: no gradient pipeline", net->name);

    const struct halide_type_t u16 = {halide_type_uint, 16, 1}, f32 = {halide_type_float, 32, 1};
    halide_buffer_t raw, bl, sc, w, g, gw;
    halide_dimension_t raw_d[2], bl_d[2], sc_d[2], w_d, g_d[3], gw_d;
    const int n = (int)lumos__net_weight_count(net);
    lumos__hl_buffer_2d(&raw, raw_d, mosaic, u16, width, height, (int)(stride / 2));
    lumos__hl_buffer_2d(&bl, bl_d, black, f32, 2, 2, 2);
    lumos__hl_buffer_2d(&sc, sc_d, scale, f32, 2, 2, 2);
    lumos__hl_buffer_1d(&w, &w_d, flat, n);
    lumos__hl_buffer_1d(&gw, &gw_d, grad_flat, n);
    memset(&g, 0, sizeof g);
    g_d[0] = (halide_dimension_t){0, 3, 1, 0};
    g_d[1] = (halide_dimension_t){0, width, 3, 0};
    g_d[2] = (halide_dimension_t){0, height, 3 * width, 0};
    g.host = (uint8_t *)grad_out;
    g.type = f32;
    g.dimensions = 3;
    g.dim = g_d;
    lumos__clear_error(ctx);
    int rc = fn(ctx, &raw, cfa_x, cfa_y, &bl, &sc, &w, &g, &gw);
    return lumos__hl_status(ctx, rc, "learned ISP gradient");
}
