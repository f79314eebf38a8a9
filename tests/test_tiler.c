/* test_tiler.c — the chain runtime (stages/chain.c).
 *
 *  - the in-place band map equals the same map computed out of place, for
 *    band sizes that do and do not divide the rows, bands taller than the
 *    image, and an apron as tall as a band; an apron over the band is refused;
 *  - the statistics reduction: mean over the area, maximum over the tiles;
 *  - RMFA-Net tiny (a chain) on an image of several bands gives the same
 *    bits with its bands as with one band over the whole image (where
 *    nothing is replaced in place), in float and 8-bit output, on two CFA
 *    patterns, its state stored as floats and as half floats; half floats
 *    stay within 2e-3 of floats. test_learned and test_learned_torch check
 *    the float state (small images) against the references. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "test_nets.h"
#include "lumos.h"
#include "pipeline/learned.h"
#include "stages/chain.h"

/* ------------------------------------------------------------ band map */

typedef struct {
    const float *store; /* the map being replaced, read by the band function */
    int width, rows, apron;
    int reads_outside; /* rows read beyond the declared apron */
} blur_job;

/* new(y) = Σ_{|d| <= apron} (d + 2) · old(y + d), rows clamped. */
static float blur_at(const float *old, int width, int rows, int apron, int x, int y)
{
    float s = 0;
    for (int d = -apron; d <= apron; d++) {
        int yy = y + d < 0 ? 0 : y + d >= rows ? rows - 1 : y + d;
        s += (float)(d + 2 + apron) * old[(size_t)yy * width + x];
    }
    return s;
}

static int blur_band(void *user, int y0, int n, void *dst)
{
    blur_job *j = user;
    float *out = dst;
    for (int y = y0; y < y0 + n; y++)
        for (int x = 0; x < j->width; x++)
            out[(size_t)(y - y0) * j->width + x] = blur_at(j->store, j->width, j->rows, j->apron, x, y);
    return LUMOS_OK;
}

static void test_band_map(lumos_ctx *ctx)
{
    const int cases[][3] = {/* rows, band, apron */
                            {10, 4, 1}, {12, 4, 4}, {7, 16, 3}, {9, 1, 1}, {33, 8, 5}, {1, 1, 0}};
    const int width = 5;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int rows = cases[c][0], band = cases[c][1], apron = cases[c][2];
        size_t n = (size_t)rows * width;
        float *store = malloc(n * sizeof *store), *old = malloc(n * sizeof *old);
        for (size_t i = 0; i < n; i++) old[i] = store[i] = (float)((i * 7919) % 101) - 50.f;
        blur_job j = {store, width, rows, apron, 0};
        int rc = lumos__map_in_place(ctx, store, width * sizeof(float), rows, band, apron, blur_band, &j);
        CHECK(rc == LUMOS_OK, "band map %d rows, band %d: %s", rows, band, lumos_last_error(ctx));
        int bad = 0;
        for (int y = 0; y < rows; y++)
            for (int x = 0; x < width; x++)
                bad += store[(size_t)y * width + x] != blur_at(old, width, rows, apron, x, y);
        CHECK(bad == 0, "band map %d rows, band %d, apron %d: %d values differ from out of place",
              rows, band, apron, bad);
        free(store);
        free(old);
    }
    float one = 0;
    blur_job j = {&one, 1, 1, 3, 0};
    CHECK(lumos__map_in_place(ctx, &one, sizeof one, 1, 2, 3, blur_band, &j) == LUMOS_E_ARG,
          "an apron over the band must be refused");
}

static void test_reduce(void)
{
    /* 3 tiles of 2 channels: sums then maxima */
    const float partial[] = {1, 10, 5, -1, 2, 20, 7, -3, 3, 30, 6, -2};
    float mean[2], mx[2];
    lumos__reduce_statistics(partial, 3, 2, 4.0, mean, mx);
    CHECK(mean[0] == 1.5f && mean[1] == 15.f, "means %g %g, want 1.5 15", mean[0], mean[1]);
    CHECK(mx[0] == 7.f && mx[1] == -1.f, "maxima %g %g, want 7 -1", mx[0], mx[1]);
}

/* ------------------------------------------------------ RMFA as a chain */

static uint32_t rng = 77;
static float uniform(void) /* [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return (float)(rng >> 8) / (float)(1 << 23) - 1.f;
}

static void test_rmfa_bands(lumos_ctx *ctx)
{
    const lumos__net_def *def = net_named("rmfa-tiny");
    size_t count = lumos__net_weight_count(def);
    float *flat = malloc(count * sizeof *flat);
    size_t at = 0;
    const lumos__tensor_spec *t;
    for (size_t i = 0; (t = lumos__net_tensor(def, i)); i++) {
        size_t e = lumos__tensor_elements(t), fan_in = 1;
        for (int d = 1; d < t->ndim; d++) fan_in *= (size_t)t->shape[d];
        float bound = t->ndim > 1 ? 2.f / sqrtf((float)fan_in) : 0.2f; /* attention matters */
        for (size_t k = 0; k < e; k++) flat[at + k] = bound * uniform();
        at += e;
    }
    lumos_net *net = NULL;
    CHECK(lumos__net_from_flat(ctx, def, flat, count, &net) == LUMOS_OK, "%s", lumos_last_error(ctx));

    /* 3 bands of 128 rows and a partial fourth; two CFA patterns */
    const int w = 70, h = 3 * 128 + 37;
    uint16_t *m = malloc((size_t)w * h * sizeof *m);
    for (int i = 0; i < w * h; i++) m[i] = (uint16_t)(64 + (i * 2654435761u >> 22) % 900);
    const lumos_cfa cfas[2] = {LUMOS_CFA_RGGB, LUMOS_CFA_GBRG};
    for (int p = 0; net && p < 2; p++) {
        lumos_raw_info info;
        memset(&info, 0, sizeof info);
        info.cfa = cfas[p];
        for (int s = 0; s < 4; s++) info.black[s] = 60.f;
        info.white = 1023.f;
        info.orientation = 1;
        lumos_raw *raw = NULL;
        CHECK(lumos_raw_from_mosaic(ctx, m, w, h, (size_t)w * 2, &info, &raw) == LUMOS_OK, "%s",
              lumos_last_error(ctx));
        if (!raw) continue;
        /* [half][one band]: the state as floats, then as half floats */
        float *got[2][2] = {{NULL, NULL}, {NULL, NULL}};
        size_t row[2][2] = {{0, 0}, {0, 0}};
        for (int half = 0; half < 2; half++) {
            lumos__chain_half_override = half ? 1 : -1;
            lumos_image img[2];
            for (int one = 0; one < 2; one++) {
                lumos__chain_band_override = one ? 1 << 20 : 0;
                CHECK(lumos__isp_learned_f32(ctx, net, raw, 0, &got[half][one], &row[half][one]) ==
                          LUMOS_OK, "%s", lumos_last_error(ctx));
                CHECK(lumos_isp_learned(ctx, net, raw, 0, 8, &img[one]) == LUMOS_OK, "%s",
                      lumos_last_error(ctx));
            }
            lumos__chain_band_override = 0;
            int differ = 0, outside = 0;
            for (int y = 0; got[half][0] && got[half][1] && y < h; y++)
                for (int x = 0; x < 3 * w; x++) {
                    float a = got[half][0][y * row[half][0] + x], b = got[half][1][y * row[half][1] + x];
                    differ += memcmp(&a, &b, sizeof a) != 0;
                    outside += !(a > 0 && a < 1);
                }
            printf("rmfa-tiny %dx%d cfa %d, state %s: %d float values differ between bands and one band\n",
                   w, h, p, half ? "half" : "float", differ);
            CHECK(differ == 0 && row[half][0] == row[half][1], "bands change %d values", differ);
            CHECK(outside == 0, "%d values outside (0, 1)", outside);
            int differ8 = 0;
            for (int y = 0; img[0].data && img[1].data && y < h; y++)
                differ8 += memcmp((const uint8_t *)img[0].data + (size_t)y * img[0].stride,
                                  (const uint8_t *)img[1].data + (size_t)y * img[1].stride,
                                  (size_t)w * 3) != 0;
            CHECK(differ8 == 0, "8-bit output: %d rows differ between bands and one band", differ8);
            lumos_image_free(&img[0]);
            lumos_image_free(&img[1]);
        }
        lumos__chain_half_override = 0;
        /* half-float storage: close to float storage (a 10-bit mantissa) */
        double worst = 0;
        for (int y = 0; got[0][0] && got[1][0] && y < h; y++)
            for (int x = 0; x < 3 * w; x++) {
                double e = fabs((double)got[1][0][y * row[1][0] + x] - got[0][0][y * row[0][0] + x]);
                if (e > worst) worst = e;
            }
        printf("rmfa-tiny %dx%d cfa %d: half-float state vs float state: max |difference| %.2e\n", w,
               h, p, worst);
        CHECK(got[0][0] && got[1][0] && worst <= 2e-3, "half-float state off by %.3e", worst);
        for (int i = 0; i < 4; i++) free(got[i / 2][i % 2]);
        lumos_raw_free(raw);
    }
    free(m);
    lumos_net_free(net);
    free(flat);
}

/* Training through a chain: three pieces (a 2×2 mean pool, a per-channel
 * square, a 1→2 channel split with weights), activations kept; the input
 * gradient from seeds at the last and the first piece against central
 * finite differences of L = Σ seed_last·act3 + Σ seed_first·act1. */
static const float split_w[2] = {0.5f, -1.5f};

static void toy_shape(void *user, int i, const lumos__act *in, lumos__act *out)
{
    (void)user;
    *out = (lumos__act){NULL, i == 2 ? 2 : 1, i == 0 ? in->w / 2 : in->w, i == 0 ? in->h / 2 : in->h};
}

static int toy_forward(void *user, lumos_ctx *ctx, int i, const lumos__act *in, lumos__act *out)
{
    (void)user, (void)ctx;
    for (int y = 0; y < out->h; y++)
        for (int x = 0; x < out->w; x++) {
            float *o = out->data + ((size_t)y * out->w + x) * out->c;
            if (i == 0) {
                float s = 0;
                for (int d = 0; d < 4; d++) s += in->data[(size_t)(2 * y + d / 2) * in->w + 2 * x + d % 2];
                o[0] = s / 4;
            } else {
                float v = in->data[(size_t)y * in->w + x];
                if (i == 1) o[0] = v * v;
                else o[0] = split_w[0] * v, o[1] = split_w[1] * v;
            }
        }
    return LUMOS_OK;
}

static int toy_backward(void *user, lumos_ctx *ctx, int i, const lumos__act *in, const lumos__act *g,
                        lumos__act *gin)
{
    (void)user, (void)ctx;
    memset(gin->data, 0, (size_t)gin->c * gin->w * gin->h * sizeof(float));
    for (int y = 0; y < g->h; y++)
        for (int x = 0; x < g->w; x++) {
            const float *go = g->data + ((size_t)y * g->w + x) * g->c;
            if (i == 0) {
                for (int d = 0; d < 4; d++) gin->data[(size_t)(2 * y + d / 2) * gin->w + 2 * x + d % 2] = go[0] / 4;
            } else if (i == 1) {
                gin->data[(size_t)y * gin->w + x] = 2 * in->data[(size_t)y * in->w + x] * go[0];
            } else {
                gin->data[(size_t)y * gin->w + x] = split_w[0] * go[0] + split_w[1] * go[1];
            }
        }
    return LUMOS_OK;
}

static void test_train_chain(lumos_ctx *ctx)
{
    enum { W = 8, H = 6 };
    lumos__piece_chain chain = {3, toy_shape, toy_forward, toy_backward, NULL};
    float input[W * H], grad[W * H], seed_first[W * H / 4], seed_last[W * H / 2];
    unsigned state = 7;
#define UNIFORM() ((state = state * 1103515245u + 12345u) >> 8) / 16777216.f
    for (int i = 0; i < W * H; i++) input[i] = UNIFORM() * 2 - 1;
    for (int i = 0; i < W * H / 4; i++) seed_first[i] = UNIFORM() - 0.5f;
    for (int i = 0; i < W * H / 2; i++) seed_last[i] = UNIFORM() - 0.5f;
#undef UNIFORM
    float *seed[3] = {seed_first, NULL, seed_last};
    lumos__chain_tape tape;
    CHECK(lumos__chain_forward(ctx, &chain, (lumos__act){input, 1, W, H}, 2, &tape) == LUMOS_OK,
          "train chain forward: %s", lumos_last_error(ctx));
    CHECK(lumos__chain_backward(ctx, &tape, seed, grad) == LUMOS_OK, "train chain backward");
    lumos__chain_tape_free(&tape);
    double worst = 0;
    for (int k = 0; k < W * H; k++) {
        double l[2];
        for (int side = 0; side < 2; side++) {
            float x[W * H];
            memcpy(x, input, sizeof x);
            x[k] += side ? 1e-2f : -1e-2f;
            lumos__chain_tape t;
            lumos__chain_forward(ctx, &chain, (lumos__act){x, 1, W, H}, 2, &t);
            l[side] = 0;
            for (int i = 0; i < W * H / 4; i++) l[side] += (double)seed_first[i] * t.act[1].data[i];
            for (int i = 0; i < W * H / 2; i++) l[side] += (double)seed_last[i] * t.act[3].data[i];
            lumos__chain_tape_free(&t);
        }
        double fd = (l[1] - l[0]) / 2e-2, e = fabs(fd - grad[k]);
        if (e > worst) worst = e;
    }
    printf("train chain: input gradient vs finite differences, max error %.2e\n", worst);
    CHECK(worst < 1e-3, "train chain gradient off by %.3e", worst);
    /* no seed: a zero gradient; a piece out of range: refused */
    float *none[3] = {NULL, NULL, NULL};
    CHECK(lumos__chain_forward(ctx, &chain, (lumos__act){input, 1, W, H}, 1, &tape) == LUMOS_OK, "forward to 1");
    CHECK(lumos__chain_backward(ctx, &tape, none, grad) == LUMOS_OK && grad[0] == 0 && grad[W * H - 1] == 0,
          "no seed: zero gradient");
    lumos__chain_tape_free(&tape);
    CHECK(lumos__chain_forward(ctx, &chain, (lumos__act){input, 1, W, H}, 3, &tape) == LUMOS_E_ARG,
          "piece 3 of 3 accepted");
    lumos__chain_tape_free(&tape);
}

int main(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    test_band_map(ctx);
    test_reduce();
    test_rmfa_bands(ctx);
    test_train_chain(ctx);
    lumos_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "Success!");
    return failures ? 1 : 0;
}
