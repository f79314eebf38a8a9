/* classic_isp.c — runs generators/classic_isp_generator.cpp on a mosaic. */
#include "stages/classic_isp.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lumos_isp_full_f32.h"
#include "lumos_isp_full_u16.h"
#include "lumos_isp_full_u8.h"
#include "lumos_isp_half_f32.h"
#include "lumos_isp_half_u16.h"
#include "lumos_isp_half_u8.h"
#include "core/context.h"
#include "stages/halide_glue.h"

/* Inputs narrower or shorter than this are mirror-padded first: the
 * demosaic's 9×9 footprint then mirrors within the image. */
enum { MIN_SIDE = 16 };

/* The generator's tiles (see its schedule): the output buffer is rounded up
 * to whole tiles so that every tile is full. */
static int tile_width(int w)
{
    return lumos__round_up(w, 128) >= 512 ? lumos__round_up(w, 512) : lumos__round_up(w, 128);
}

typedef int (*isp_fn)(void const *, struct halide_buffer_t *, int32_t, int32_t,
                      struct halide_buffer_t *, struct halide_buffer_t *,
                      struct halide_buffer_t *, float, float, float, bool,
                      struct halide_buffer_t *);

/* Mirror about the edge sample (period 2(n-1)), which keeps CFA parity. */
static int mirror(int v, int n)
{
    if (n == 1) return 0;
    int period = 2 * (n - 1);
    v %= period;
    if (v < 0) v += period;
    return v < n ? v : period - v;
}

static int run(lumos_ctx *ctx, const uint16_t *mosaic, int width, int height, int stride_elems,
               const lumos__isp_params *p, lumos_image *out)
{
    /* [half][8, 16, 32 bits] */
    static const isp_fn fns[2][3] = {{lumos_isp_full_u8, lumos_isp_full_u16, lumos_isp_full_f32},
                                     {lumos_isp_half_u8, lumos_isp_half_u16, lumos_isp_half_f32}};
    isp_fn fn = fns[p->half != 0][out->bits == 8 ? 0 : out->bits == 16 ? 1 : 2];
    const struct halide_type_t u16 = {halide_type_uint, 16, 1}, f32 = {halide_type_float, 32, 1};
    halide_buffer_t raw_b, black_b, scale_b, matrix_b, out_b;
    halide_dimension_t raw_d[2], black_d[2], scale_d[2], matrix_d[2], out_d[3];
    lumos__hl_buffer_2d(&raw_b, raw_d, mosaic, u16, width, height, stride_elems);
    lumos__hl_buffer_2d(&black_b, black_d, p->black, f32, 2, 2, 2);
    lumos__hl_buffer_2d(&scale_b, scale_d, p->scale, f32, 2, 2, 2);
    lumos__hl_buffer_2d(&matrix_b, matrix_d, p->matrix, f32, 3, 3, 3);
    lumos_image whole = *out; /* the rounded-up capacity */
    whole.width = tile_width(out->width);
    whole.height = lumos__round_up(out->height, 128);
    lumos__hl_buffer_image(&out_b, out_d, &whole);
    if (whole.bits == 32) out_b.type.code = halide_type_float;
    lumos__clear_error(ctx);
    int rc = fn(ctx, &raw_b, p->cfa_x, p->cfa_y, &black_b, &scale_b, &matrix_b, p->exposure,
                p->tone, p->sharpen, p->linear != 0, &out_b);
    return lumos__hl_status(ctx, rc, "classic ISP");
}

/* Allocates *out (width×height visible, capacity rounded up to tiles). */
static int alloc_tiled(lumos_ctx *ctx, lumos_image *out, int width, int height, int bits)
{
    int cap_w = tile_width(width), cap_h = lumos__round_up(height, 128);
    memset(out, 0, sizeof *out);
    size_t stride = (size_t)cap_w * 3 * (size_t)(bits / 8);
    out->data = calloc((size_t)cap_h, stride);
    if (!out->data) return lumos__fail(ctx, LUMOS_E_NOMEM, "classic ISP: out of memory");
    out->width = width;
    out->height = height;
    out->channels = 3;
    out->bits = bits;
    out->stride = stride;
    return LUMOS_OK;
}

int lumos__stage_classic_isp(lumos_ctx *ctx, const uint16_t *mosaic, int width, int height,
                             size_t stride, const lumos__isp_params *p, int bits, lumos_image *out)
{
    lumos__halide_init();
    memset(out, 0, sizeof *out);
    if ((bits != 8 && bits != 16 && bits != 32) || stride % 2 || width < 1 || height < 1)
        return lumos__fail(ctx, LUMOS_E_ARG, "classic ISP: bad arguments");
    int ow = p->half ? (width / 2 > 0 ? width / 2 : 1) : width;
    int oh = p->half ? (height / 2 > 0 ? height / 2 : 1) : height;
    int rc = alloc_tiled(ctx, out, ow, oh, bits);
    if (rc) return rc;
    if (width >= MIN_SIDE && height >= MIN_SIDE) {
        rc = run(ctx, mosaic, width, height, (int)(stride / 2), p, out);
        if (rc) lumos_image_free(out);
        return rc;
    }

    /* Small inputs: mirror-pad, run into a larger image, crop. */
    int pw = width > MIN_SIDE ? width : MIN_SIDE, ph = height > MIN_SIDE ? height : MIN_SIDE;
    uint16_t *padded = malloc((size_t)pw * ph * sizeof *padded);
    lumos_image big = {0};
    rc = padded ? alloc_tiled(ctx, &big, p->half ? pw / 2 : pw, p->half ? ph / 2 : ph, bits)
                : lumos__fail(ctx, LUMOS_E_NOMEM, "classic ISP: out of memory");
    if (rc == LUMOS_OK) {
        for (int y = 0; y < ph; y++) {
            const uint16_t *row = (const uint16_t *)((const uint8_t *)mosaic +
                                                     (size_t)mirror(y, height) * stride);
            for (int x = 0; x < pw; x++) padded[(size_t)y * pw + x] = row[mirror(x, width)];
        }
        rc = run(ctx, padded, pw, ph, pw, p, &big);
    }
    if (rc == LUMOS_OK) {
        size_t row_bytes = (size_t)ow * 3 * (size_t)(bits / 8);
        for (int y = 0; y < oh; y++)
            memcpy((uint8_t *)out->data + (size_t)y * out->stride,
                   (const uint8_t *)big.data + (size_t)y * big.stride, row_bytes);
    } else {
        lumos_image_free(out);
    }
    lumos_image_free(&big);
    free(padded);
    return rc;
}
