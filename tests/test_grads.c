/* test_grads.c — the hand-written conv gradients of generators/layers.h
 * (NetBuilder::conv2d_backward, via generators/train_generator.cpp) against
 * central finite differences of the forward, computed here in double.
 *
 * L = Σ dL/d(out) · conv(in; w, b), so dL/d(in), dL/dw and dL/db are the
 * pipeline's outputs; each of them is checked entry by entry, for stride 1
 * and 2 and an odd-sized input (which stride 2 does not cover evenly). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lumos_conv_backward_s1.h"
#include "lumos_conv_backward_s2.h"
#include "pipeline/context.h"
#include "stages/halide_glue.h"

enum { CIN = 4, COUT = 6, K = 3, NW = COUT * CIN * K * K, NP = NW + COUT };

static uint32_t rng = 99;
static float uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return (float)(rng >> 8) / (float)(1 << 23) - 1.f;
}

/* in: (c, x, y) with c fastest, W×H; params: weights [co][ci][ky][kx], bias. */
static double loss(const double *in, const double *params, const float *gout, int W, int H, int s,
                   int OW, int OH)
{
    double L = 0;
    for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++)
            for (int o = 0; o < COUT; o++) {
                double v = params[NW + o];
                for (int ci = 0; ci < CIN; ci++)
                    for (int ky = 0; ky < K; ky++)
                        for (int kx = 0; kx < K; kx++) {
                            int x = ox * s + kx - 1, y = oy * s + ky - 1;
                            if (x < 0 || y < 0 || x >= W || y >= H) continue;
                            v += params[((o * CIN + ci) * K + ky) * K + kx] * in[(y * W + x) * CIN + ci];
                        }
                L += gout[(oy * OW + ox) * COUT + o] * v;
            }
    return L;
}

static void buffer3(halide_buffer_t *b, halide_dimension_t d[3], void *host, int c, int w, int h)
{
    memset(b, 0, sizeof *b);
    d[0] = (halide_dimension_t){0, c, 1, 0};
    d[1] = (halide_dimension_t){0, w, c, 0};
    d[2] = (halide_dimension_t){0, h, c * w, 0};
    b->host = host;
    b->type = (struct halide_type_t){halide_type_float, 32, 1};
    b->dimensions = 3;
    b->dim = d;
}

static void buffer1(halide_buffer_t *b, halide_dimension_t *d, void *host, int n)
{
    memset(b, 0, sizeof *b);
    *d = (halide_dimension_t){0, n, 1, 0};
    b->host = host;
    b->type = (struct halide_type_t){halide_type_float, 32, 1};
    b->dimensions = 1;
    b->dim = d;
}

static void check_stride(lumos_ctx *ctx, int s, int W, int H)
{
    int OW = (W + 2 - K) / s + 1, OH = (H + 2 - K) / s + 1;
    float *in = malloc(sizeof(float) * CIN * W * H), *gout = malloc(sizeof(float) * COUT * OW * OH);
    float params[NP], gparams[NP];
    float *gin = calloc((size_t)CIN * W * H, sizeof(float));
    for (int i = 0; i < CIN * W * H; i++) in[i] = uniform();
    for (int i = 0; i < COUT * OW * OH; i++) gout[i] = uniform();
    for (int i = 0; i < NP; i++) params[i] = 0.3f * uniform();

    halide_buffer_t bi, bw, bg, bgi, bgw;
    halide_dimension_t di[3], dw, dg[3], dgi[3], dgw;
    buffer3(&bi, di, in, CIN, W, H);
    buffer1(&bw, &dw, params, NP);
    buffer3(&bg, dg, gout, COUT, OW, OH);
    buffer3(&bgi, dgi, gin, CIN, W, H);
    buffer1(&bgw, &dgw, gparams, NP);
    int rc = (s == 1 ? lumos_conv_backward_s1 : lumos_conv_backward_s2)(ctx, &bi, &bw, &bg, &bgi, &bgw);
    CHECK(rc == 0, "conv backward (stride %d): %s", s, lumos_last_error(ctx));

    /* central differences in double; L is linear in each entry, so h need
     * not be small, only the arithmetic exact enough */
    double *din = malloc(sizeof(double) * CIN * W * H), dparams[NP];
    for (int i = 0; i < CIN * W * H; i++) din[i] = in[i];
    for (int i = 0; i < NP; i++) dparams[i] = params[i];
    const double h = 0.5;
    double worst_in = 0, worst_w = 0;
    for (int i = 0; i < CIN * W * H; i++) {
        double keep = din[i];
        din[i] = keep + h;
        double up = loss(din, dparams, gout, W, H, s, OW, OH);
        din[i] = keep - h;
        double down = loss(din, dparams, gout, W, H, s, OW, OH);
        din[i] = keep;
        double fd = (up - down) / (2 * h), e = fabs(gin[i] - fd) / fmax(1, fabs(fd));
        if (e > worst_in) worst_in = e;
    }
    for (int i = 0; i < NP; i++) {
        double keep = dparams[i];
        dparams[i] = keep + h;
        double up = loss(din, dparams, gout, W, H, s, OW, OH);
        dparams[i] = keep - h;
        double down = loss(din, dparams, gout, W, H, s, OW, OH);
        dparams[i] = keep;
        double fd = (up - down) / (2 * h), e = fabs(gparams[i] - fd) / fmax(1, fabs(fd));
        if (e > worst_w) worst_w = e;
    }
    printf("conv 4->6 3x3 stride %d, %dx%d: max relative error dL/din %.2e, dL/dw,b %.2e\n", s, W,
           H, worst_in, worst_w);
    CHECK(worst_in <= 1e-5 && worst_w <= 1e-5, "stride %d: gradients off (%.3e, %.3e)", s,
          worst_in, worst_w);
    free(in);
    free(gout);
    free(gin);
    free(din);
}

int main(void)
{
    lumos__halide_init();
    lumos_ctx *ctx = lumos_ctx_new();
    check_stride(ctx, 1, 13, 9);
    check_stride(ctx, 2, 13, 9);
    check_stride(ctx, 2, 16, 10);
    lumos_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "Success!");
    return failures ? 1 : 0;
}
