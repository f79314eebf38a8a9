/* test_layers.c — the layers of generators/layers.h that no ISP uses yet,
 * through the test-only `layer_zoo` network (learned_isp_generator.cpp),
 * against naive C: a depthwise 3×3 conv with BatchNorm (eval) after it —
 * folded into the conv by the pipeline, applied as a separate step here —,
 * ReLU6, a stride-2 conv, LeakyReLU(0.2), 2×2 max pooling, a ×4 bilinear
 * resize, pixel unshuffle, a 1×1 conv and pixel shuffle ×4. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "test_nets.h"
#include "lumos_layer_zoo_f32.h"
#include "core/context.h"
#include "ref/isp_nets_ref.h"
#include "stages/halide_glue.h"
#include "stages/learned_isp.h"

#define ZOO (&test_net_layer_zoo)

static uint32_t rng = 77;
static float uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return (float)(rng >> 8) / (float)(1 << 23) - 1.f;
}

/* (C, H, W) planar maps */
typedef struct { int c, h, w; float *v; } map;
static map alloc_map(int c, int h, int w) { return (map){c, h, w, calloc((size_t)c * h * w, sizeof(float))}; }
#define AT(m, ch, y, x) (m).v[((size_t)(ch) * (m).h + (y)) * (m).w + (x)]

static map conv(map in, const float *w, const float *b, int cout, int k, int stride, int groups)
{
    int pad = k / 2, cin_g = in.c / groups, cout_g = cout / groups;
    map out = alloc_map(cout, (in.h + 2 * pad - k) / stride + 1, (in.w + 2 * pad - k) / stride + 1);
    for (int o = 0; o < cout; o++)
        for (int y = 0; y < out.h; y++)
            for (int x = 0; x < out.w; x++) {
                double s = b ? b[o] : 0;
                for (int i = 0; i < cin_g; i++)
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int sy = y * stride + ky - pad, sx = x * stride + kx - pad;
                            if (sy < 0 || sx < 0 || sy >= in.h || sx >= in.w) continue;
                            s += (double)w[((o * cin_g + i) * k + ky) * k + kx] *
                                 AT(in, (o / cout_g) * cin_g + i, sy, sx);
                        }
                AT(out, o, y, x) = (float)s;
            }
    return out;
}

static const float *tensor(const float *flat, const char *name)
{
    ptrdiff_t at = lumos__net_tensor_offset(ZOO, name);
    return at < 0 ? NULL : flat + at;
}

/* The whole chain on an RGGB mosaic, W and H multiples of 8. */
static map reference(const float *flat, const uint16_t *m, int W, int H, const float black[4], float white)
{
    map x = alloc_map(4, H / 2, W / 2);
    for (int y = 0; y < H / 2; y++)
        for (int xx = 0; xx < W / 2; xx++) {
            const int sy[4] = {1, 0, 0, 1}, sx[4] = {1, 1, 0, 0};
            for (int c = 0; c < 4; c++) {
                int s = sy[c] * 2 + sx[c];
                AT(x, c, y, xx) = ((float)m[(2 * y + sy[c]) * W + 2 * xx + sx[c]] - black[s]) / (white - black[s]);
            }
        }
    map d = conv(x, tensor(flat, "dw.weight"), NULL, 4, 3, 1, 4);
    const float *g = tensor(flat, "dw_bn.weight"), *be = tensor(flat, "dw_bn.bias");
    const float *mu = tensor(flat, "dw_bn.running_mean"), *var = tensor(flat, "dw_bn.running_var");
    for (int c = 0; c < 4; c++)
        for (int i = 0; i < d.h * d.w; i++) {
            float v = (d.v[c * d.h * d.w + i] - mu[c]) / sqrtf(var[c] + 1e-5f) * g[c] + be[c];
            d.v[c * d.h * d.w + i] = fminf(fmaxf(v, 0.f), 6.f); /* ReLU6 */
        }
    map s2 = conv(d, tensor(flat, "down.weight"), tensor(flat, "down.bias"), 8, 3, 2, 1);
    for (size_t i = 0; i < (size_t)s2.c * s2.h * s2.w; i++) s2.v[i] = s2.v[i] > 0 ? s2.v[i] : 0.2f * s2.v[i];
    map p = alloc_map(8, s2.h / 2, s2.w / 2);
    for (int c = 0; c < 8; c++)
        for (int y = 0; y < p.h; y++)
            for (int xx = 0; xx < p.w; xx++)
                AT(p, c, y, xx) = fmaxf(fmaxf(AT(s2, c, 2 * y, 2 * xx), AT(s2, c, 2 * y, 2 * xx + 1)),
                                        fmaxf(AT(s2, c, 2 * y + 1, 2 * xx), AT(s2, c, 2 * y + 1, 2 * xx + 1)));
    map up = alloc_map(8, 2 * s2.h, 2 * s2.w);
    ref_bilinear_resize(p.v, 8, p.h, p.w, up.v, up.h, up.w);
    map un = alloc_map(32, up.h / 2, up.w / 2); /* pixel_unshuffle(2) */
    for (int c = 0; c < 8; c++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
                for (int y = 0; y < un.h; y++)
                    for (int xx = 0; xx < un.w; xx++) AT(un, c * 4 + i * 2 + j, y, xx) = AT(up, c, 2 * y + i, 2 * xx + j);
    map mix = conv(un, tensor(flat, "mix.weight"), tensor(flat, "mix.bias"), 48, 1, 1, 1);
    map out = alloc_map(3, mix.h * 4, mix.w * 4); /* pixel_shuffle(4) */
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < out.h; y++)
            for (int xx = 0; xx < out.w; xx++) AT(out, c, y, xx) = AT(mix, c * 16 + (y % 4) * 4 + xx % 4, y / 4, xx / 4);
    free(x.v); free(d.v); free(s2.v); free(p.v); free(up.v); free(un.v); free(mix.v);
    return out;
}

int main(void)
{
    lumos__halide_init();
    lumos_ctx *ctx = lumos_ctx_new();
    size_t n = lumos__net_weight_count(ZOO);
    float *flat = malloc(n * sizeof *flat);
    for (size_t i = 0; i < n; i++) flat[i] = 0.5f * uniform();
    float *var = (float *)tensor(flat, "dw_bn.running_var");
    for (int c = 0; c < 4; c++) var[c] = 0.2f + fabsf(var[c]); /* variances are positive */
    const float black[4] = {64, 60, 66, 62}, white = 1023;
    const float scale[4] = {1 / (white - 64), 1 / (white - 60), 1 / (white - 66), 1 / (white - 62)};
    const int sizes[][2] = {{256, 128}, {512, 256}};
    for (int s = 0; s < 2; s++) {
        int W = sizes[s][0], H = sizes[s][1];
        uint16_t *m = malloc((size_t)W * H * 2);
        for (int i = 0; i < W * H; i++) m[i] = (uint16_t)(70 + (uniform() * 0.5f + 0.5f) * 940);
        const struct halide_type_t u16 = {halide_type_uint, 16, 1}, f32 = {halide_type_float, 32, 1};
        halide_buffer_t raw, bl, sc, wt, st, out = {0};
        halide_dimension_t raw_d[2], bl_d[2], sc_d[2], wt_d[2], st_d[2];
        float stats[64] = {0};
        lumos__hl_buffer_2d(&raw, raw_d, m, u16, W, H, W);
        lumos__hl_buffer_2d(&bl, bl_d, black, f32, 2, 2, 2);
        lumos__hl_buffer_2d(&sc, sc_d, scale, f32, 2, 2, 2);
        lumos__hl_buffer_2d(&wt, wt_d, flat, f32, (int)n, 1, (int)n);
        wt.dimensions = 1;
        lumos__hl_buffer_2d(&st, st_d, stats, f32, 16, 4, 16);
        halide_dimension_t st3[3] = {{0, 16, 1, 0}, {0, 2, 16, 0}, {0, 2, 32, 0}};
        st.dimensions = 3;
        st.dim = st3;
        float *got = calloc((size_t)W * H * 3, sizeof *got);
        halide_dimension_t od[3] = {{0, W, 3, 0}, {0, H, 3 * W, 0}, {0, 3, 1, 0}};
        out.host = (uint8_t *)got;
        out.type = f32;
        out.dimensions = 3;
        out.dim = od;
        int rc = lumos_layer_zoo_f32(ctx, &raw, 0, 0, &bl, &sc, &wt, &st, &out);
        CHECK(rc == 0, "layer_zoo: %s", lumos_last_error(ctx));
        map ref = reference(flat, m, W, H, black, white);
        double worst = 0;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    double r = AT(ref, c, y, x), e = fabs(got[((size_t)y * W + x) * 3 + c] - r) / fmax(1, fabs(r));
                    if (e > worst) worst = e;
                }
        printf("layer_zoo %dx%d: max relative error %.2e\n", W, H, worst);
        CHECK(worst <= 1e-5, "layer_zoo %dx%d: max error %.3e", W, H, worst);
        free(ref.v);
        free(got);
        free(m);
    }
    free(flat);
    lumos_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "Success!");
    return failures ? 1 : 0;
}
