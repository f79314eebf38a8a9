/* learned_isp.c — runs an ISP network's pipelines (generators/learned_isp_generator.cpp)
 * on a mosaic.
 *
 * Most networks are one call. One with global statistics (RMFA-Net tiny's
 * channel attention: variants stats0, stats1) first runs each statistics
 * pass, reduced here to the per-channel mean and maximum the network pools
 * over the whole image, then the image pass. A network registered as a chain
 * of pieces instead (variants carry0, derive0, pstats0, carry1, ..., tailK_u8: RMFA)
 * runs on the chain runtime (stages/chain.c), each block input it pools
 * from stored once rather than recomputed per pass. */
#include "stages/learned_isp.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "stages/chain.h"
#include "stages/halide_glue.h"

typedef int (*net_fn)(void const *, struct halide_buffer_t *, int32_t, int32_t,
                      struct halide_buffer_t *, struct halide_buffer_t *,
                      struct halide_buffer_t *, struct halide_buffer_t *,
                      struct halide_buffer_t *);

static net_fn image_pass(const lumos__net_def *net, int bits)
{
    return (net_fn)lumos__net_pipeline(net, bits == 8 ? "u8" : bits == 16 ? "u16" : "f32");
}

/* The pipeline of statistics pass `pass`, NULL when the network has none. */
static net_fn statistics_pass(const lumos__net_def *net, int pass)
{
    char variant[16];
    snprintf(variant, sizeof variant, "stats%d", pass);
    return (net_fn)lumos__net_pipeline(net, variant);
}

/* A piece of a chain (learned_isp_piece): the arguments above, then the
 * stored state it starts from. */
typedef int (*piece_fn)(void const *, struct halide_buffer_t *, int32_t, int32_t,
                        struct halide_buffer_t *, struct halide_buffer_t *,
                        struct halide_buffer_t *, struct halide_buffer_t *,
                        struct halide_buffer_t *, struct halide_buffer_t *);

/* Whether the chain's state is split (carryK + deriveK instead of pieceK,
 * nets/isp.h). */
static bool chain_split(const lumos__net_def *net) { return lumos__net_pipeline(net, "carry0") != NULL; }

/* The chain's pieces: the statistics points (pieces pieceK or carryK
 * before the tail), 0 when the network is not a chain. */
static int chain_points(const lumos__net_def *net)
{
    const char *kind = chain_split(net) ? "carry" : "piece";
    char variant[16];
    int k = 0;
    for (;; k++) {
        snprintf(variant, sizeof variant, "%s%d", kind, k);
        if (!lumos__net_pipeline(net, variant)) return k;
    }
}

/* The chain's tail for `bits` (float state; the half-float one goes with it). */
static lumos__pipeline_fn chain_tail_fn(const lumos__net_def *net, int points, int bits)
{
    char variant[24];
    snprintf(variant, sizeof variant, "tail%d_%s", points - 1,
             bits == 8 ? "u8" : bits == 16 ? "u16" : "f32");
    return lumos__net_pipeline(net, variant);
}

/* The generator's output tiles (kTileW × kTileH), RMFA's statistics' too. */
/* The statistics' channels: every pooled map has 16 so far (RMFA-Net tiny's). */
enum { TILE_W = 256, TILE_H = 128, CHANNELS = 16, MAX_STAT_PASSES = 2 };

typedef struct {
    halide_buffer_t raw, black, scale, weights, stats;
    halide_dimension_t raw_d[2], black_d[2], scale_d[2], weights_d[1], stats_d[3];
    float stats_data[CHANNELS * 2 * MAX_STAT_PASSES]; /* (channel, mean|max, pass) */
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
    const int32_t extents[3] = {CHANNELS, 2, MAX_STAT_PASSES}, strides[3] = {1, CHANNELS, 2 * CHANNELS};
    for (int d = 0; d < 3; d++) {
        in->stats_d[d] = (halide_dimension_t){0, extents[d], strides[d], 0};
    }
    in->stats.host = (uint8_t *)in->stats_data;
    in->stats.type = f32;
    in->stats.dimensions = 3;
    in->stats.dim = in->stats_d;
}

/* One statistics pass: fills point `pass`'s mean and maximum. */
static int statistics(lumos_ctx *ctx, net_fn fn, inputs *in, int pass, int cfa_x, int cfa_y,
                      int width, int height)
{
    int fw = width + cfa_x, fh = height + cfa_y; /* the network's domain */
    int tx = lumos__round_up(fw, TILE_W) / TILE_W, ty = lumos__round_up(fh, TILE_H) / TILE_H;
    float *partial = malloc((size_t)2 * CHANNELS * tx * ty * sizeof *partial);
    if (!partial) return lumos__fail(ctx, LUMOS_E_NOMEM, "statistics pass: out of memory");
    const struct halide_type_t f32 = {halide_type_float, 32, 1};
    halide_buffer_t out = {0};
    halide_dimension_t d[3] = {{0, 2 * CHANNELS, 1, 0}, {0, tx, 2 * CHANNELS, 0},
                               {0, ty, 2 * CHANNELS * tx, 0}};
    out.host = (uint8_t *)partial;
    out.type = f32;
    out.dimensions = 3;
    out.dim = d;
    lumos__clear_error(ctx);
    int rc = fn(ctx, &in->raw, cfa_x, cfa_y, &in->black, &in->scale, &in->weights, &in->stats, &out);
    rc = lumos__hl_status(ctx, rc, "statistics pass");
    if (rc == LUMOS_OK)
        lumos__reduce_statistics(partial, tx * ty, CHANNELS, (double)fw * fh,
                                 in->stats_data + pass * 2 * CHANNELS,
                                 in->stats_data + pass * 2 * CHANNELS + CHANNELS);
    free(partial);
    return rc;
}

/* ---------------------------------------------------------------- chains */

/* The chain's state: RMFA's block input and fused features (32 channels).
 * Rows of it a piece reads above and below its band: RMFA's block reaches
 * about 25 (its ½ and ¼ pyramid, the fusion and the 7×7 spatial
 * attention), declared with margin. Bands: one tile row (two bands of
 * memory beside the store). The state is stored as half floats when it
 * would take over STATE_FLOAT_MAX bytes as floats (≈ 2 MP): 12 MP take
 * 768 MiB instead of 1.5 GiB. */
/* Split, its first CARRIED_CHANNELS (the block input) are stored by
 * carryK and the rest derived from them by deriveK. (The pipelines check
 * these counts against their own.) */
enum { STATE_CHANNELS = 32, CARRIED_CHANNELS = 16, CHAIN_APRON = 64, CHAIN_BAND = TILE_H };
#define STATE_FLOAT_MAX ((size_t)256 << 20)

typedef struct {
    lumos_ctx *ctx;
    const lumos__net_def *net;
    inputs *in;
    int cfa_x, cfa_y, cap_w, cap_h, half;
    halide_buffer_t *image; /* the tail's output */
    int bits;
} chain_job;

/* Channels [c0, c0 + channels) of a state's rows [y0, y0 + rows) over host
 * (row y0): (c, x, y), c innermost. */
static void state_buffer(halide_buffer_t *b, halide_dimension_t d[3], const void *host, int half,
                         int cap_w, int y0, int rows, int c0, int channels)
{
    memset(b, 0, sizeof *b);
    d[0] = (halide_dimension_t){0, channels, 1, 0};
    d[1] = (halide_dimension_t){0, cap_w, STATE_CHANNELS, 0};
    d[2] = (halide_dimension_t){y0, rows, STATE_CHANNELS * cap_w, 0};
    b->host = (uint8_t *)host + (size_t)c0 * (half ? 2 : 4);
    b->type = (struct halide_type_t){halide_type_float, half ? 16 : 32, 1};
    b->dimensions = 3;
    b->dim = d;
}

static int chain_call(chain_job *j, const char *kind, int k, int bits, const void *store,
                      halide_buffer_t *out)
{
    static const float none[STATE_CHANNELS]; /* piece 0 reads no state */
    char variant[24];
    snprintf(variant, sizeof variant, "%s%s%d%s", j->half ? "h" : "", kind, k,
             bits == 8 ? "_u8" : bits == 16 ? "_u16" : bits == 32 ? "_f32" : "");
    piece_fn fn = (piece_fn)lumos__net_pipeline(j->net, variant);
    if (!fn) return lumos__fail(j->ctx, LUMOS_E_UNSUPPORTED, "%s: no %s pipeline", j->net->name, variant);
    /* a derive piece reads the carried channels only */
    int in_channels = strcmp(kind, "derive") ? STATE_CHANNELS : CARRIED_CHANNELS;
    halide_buffer_t xin;
    halide_dimension_t xd[3];
    if (store) state_buffer(&xin, xd, store, j->half, j->cap_w, 0, j->cap_h, 0, in_channels);
    else state_buffer(&xin, xd, none, j->half, 1, 0, 1, 0, in_channels);
    lumos__clear_error(j->ctx);
    int rc = fn(j->ctx, &j->in->raw, j->cfa_x, j->cfa_y, &j->in->black, &j->in->scale,
                &j->in->weights, &j->in->stats, &xin, out);
    return lumos__hl_status(j->ctx, rc, variant);
}

static int chain_piece(void *user, int k, const void *store, int y0, int rows, void *dst)
{
    chain_job *j = user;
    const bool split = chain_split(j->net);
    halide_buffer_t out;
    halide_dimension_t d[3];
    state_buffer(&out, d, dst, j->half, j->cap_w, y0, rows, 0,
                 split ? CARRIED_CHANNELS : STATE_CHANNELS);
    return chain_call(j, split ? "carry" : "piece", k, 0, k ? store : NULL, &out);
}

static int chain_derive(void *user, int k, void *store)
{
    chain_job *j = user;
    halide_buffer_t out;
    halide_dimension_t d[3];
    state_buffer(&out, d, store, j->half, j->cap_w, 0, j->cap_h, CARRIED_CHANNELS,
                 STATE_CHANNELS - CARRIED_CHANNELS);
    return chain_call(j, "derive", k, 0, store, &out);
}

static int chain_statistics(void *user, int k, const void *store, float *partial, int *tiles)
{
    chain_job *j = user;
    int tx = j->cap_w / TILE_W, ty = j->cap_h / TILE_H;
    halide_buffer_t out = {0};
    halide_dimension_t d[3] = {{0, 2 * CHANNELS, 1, 0}, {0, tx, 2 * CHANNELS, 0},
                               {0, ty, 2 * CHANNELS * tx, 0}};
    out.host = (uint8_t *)partial;
    out.type = (struct halide_type_t){halide_type_float, 32, 1};
    out.dimensions = 3;
    out.dim = d;
    *tiles = tx * ty;
    return chain_call(j, "pstats", k, 0, store, &out);
}

static int chain_tail(void *user, const void *store)
{
    chain_job *j = user;
    return chain_call(j, "tail", chain_points(j->net) - 1, j->bits, store, j->image);
}

static int run_chain(lumos_ctx *ctx, const lumos__net_def *net, inputs *in, int points, int cfa_x,
                     int cfa_y, int width, int height, int bits, halide_buffer_t *image)
{
    if (points > MAX_STAT_PASSES)
        return lumos__fail(ctx, LUMOS_E_UNSUPPORTED, "%s: too many statistics points", net->name);
    int fw = width + cfa_x, fh = height + cfa_y; /* the network's domain */
    chain_job j = {ctx, net, in, cfa_x, cfa_y, lumos__round_up(fw, TILE_W),
                   lumos__round_up(fh, TILE_H), 0, image, bits};
    size_t float_bytes = (size_t)j.cap_w * (size_t)j.cap_h * STATE_CHANNELS * sizeof(float);
    j.half = lumos__chain_half_override ? lumos__chain_half_override > 0 : float_bytes > STATE_FLOAT_MAX;
    lumos__chain ch = {points, STATE_CHANNELS, j.half ? 2 : 4, CHANNELS, fw, fh, j.cap_w, j.cap_h,
                       CHAIN_BAND, CHAIN_APRON, chain_piece, chain_statistics,
                       (j.cap_w / TILE_W) * (j.cap_h / TILE_H),
                       chain_split(net) ? chain_derive : NULL, chain_tail, &j};
    return lumos__chain_run(ctx, &ch, in->stats_data);
}

int lumos__stage_learned(lumos_ctx *ctx, const lumos__net_def *net, const float *flat,
                         const uint16_t *mosaic, int width, int height, size_t stride, int cfa_x,
                         int cfa_y, const float black[4], const float scale[4], int bits,
                         void **data, size_t *row_stride)
{
    lumos__halide_init();
    *data = NULL;
    const int points = net ? chain_points(net) : 0;
    if (!net || strcmp(net->task, "isp") ||
        !(points ? chain_tail_fn(net, points, bits) != NULL : image_pass(net, bits) != NULL) ||
        (bits != 8 && bits != 16 && bits != 32) || width < 1 || height < 1 || stride % 2)
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
    bind_inputs(&in, flat, lumos__net_weight_count(net), mosaic, rw, rh, (int)(stride / 2),
                black, scale);
    int rc = LUMOS_OK;
    net_fn pass_fn;
    for (int pass = 0; rc == LUMOS_OK && !points && (pass_fn = statistics_pass(net, pass)); pass++)
        rc = pass < MAX_STAT_PASSES
                 ? statistics(ctx, pass_fn, &in, pass, cfa_x, cfa_y, rw, rh)
                 : lumos__fail(ctx, LUMOS_E_UNSUPPORTED, "%s: too many statistics passes", net->name);

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
        if (points) {
            rc = run_chain(ctx, net, &in, points, cfa_x, cfa_y, rw, rh, bits, &out);
        } else {
            lumos__clear_error(ctx);
            rc = image_pass(net, bits)(ctx, &in.raw, cfa_x, cfa_y, &in.black, &in.scale,
                                       &in.weights, &in.stats, &out);
            rc = lumos__hl_status(ctx, rc, net->name);
        }
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
