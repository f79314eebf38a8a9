/* chain.c — the chain runner and in-place band map of chain.h. */
#define _DEFAULT_SOURCE /* madvise */
#include "stages/chain.h"

#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/context.h"

int lumos__chain_band_override = 0, lumos__chain_half_override = 0;

/* The store and the bands: hundreds of MiB. On this project's VM the first
 * touch of 768 MiB of fresh pages cost 0.5-3.7 s (in 4 KiB pages, or in
 * transparent huge pages when the kernel has them to give) against 0.05 s
 * to write it again: so they come from the context's scratch blocks, which
 * outlive the call, and the next call on the context reuses them already
 * mapped. Huge pages are asked for on the 2 MiB-aligned part. */
typedef struct {
    void *block; /* the scratch block, for lumos__scratch_free */
    void *data;  /* 2 MiB-aligned inside it */
} big_buffer;

static void *big_alloc(lumos_ctx *ctx, big_buffer *b, size_t bytes)
{
    enum { HUGE = 2 << 20 };
    bytes = (bytes + HUGE - 1) / HUGE * HUGE;
    b->block = lumos__scratch_alloc(ctx, bytes + HUGE);
    if (!b->block) return b->data = NULL;
    b->data = (void *)(((uintptr_t)b->block + HUGE - 1) / HUGE * HUGE);
#ifdef MADV_HUGEPAGE
    madvise(b->data, bytes, MADV_HUGEPAGE); /* advice: failing is harmless */
#endif
    return b->data;
}

static void big_free(lumos_ctx *ctx, big_buffer *b) { lumos__scratch_free(ctx, b->block); }

int lumos__map_in_place(lumos_ctx *ctx, void *store, size_t row_bytes, int rows, int band,
                        int apron, lumos__band_fn fn, void *user)
{
    if (band < 1 || apron < 0 || apron > band)
        return lumos__fail(ctx, LUMOS_E_ARG, "band map: apron %d over band %d", apron, band);
    if (band > rows) band = rows;
    /* Two band buffers: band r waits in one while band r + 1, whose apron
     * still reads the old rows of band r, is computed into the other. */
    big_buffer bands[2];
    unsigned char *buf[2] = {big_alloc(ctx, &bands[0], row_bytes * (size_t)band),
                             big_alloc(ctx, &bands[1], row_bytes * (size_t)band)};
    int rc = buf[0] && buf[1] ? LUMOS_OK : lumos__fail(ctx, LUMOS_E_NOMEM, "band map: out of memory");
    int pending = -1, pending_rows = 0, pending_buf = 0; /* computed, not yet written back */
    for (int y0 = 0, i = 0; rc == LUMOS_OK && y0 < rows; y0 += band, i ^= 1) {
        int n = rows - y0 < band ? rows - y0 : band;
        rc = fn(user, y0, n, buf[i]);
        if (rc == LUMOS_OK && pending >= 0)
            memcpy((unsigned char *)store + (size_t)pending * row_bytes, buf[pending_buf],
                   row_bytes * (size_t)pending_rows);
        pending = y0;
        pending_rows = n;
        pending_buf = i;
    }
    if (rc == LUMOS_OK && pending >= 0)
        memcpy((unsigned char *)store + (size_t)pending * row_bytes, buf[pending_buf],
               row_bytes * (size_t)pending_rows);
    big_free(ctx, &bands[0]);
    big_free(ctx, &bands[1]);
    return rc;
}

void lumos__reduce_statistics(const float *partial, int tiles, int channels, double area,
                              float *mean, float *max)
{
    for (int c = 0; c < channels; c++) {
        double sum = 0; /* double: 12 MP of floats */
        float mx = -FLT_MAX;
        for (int t = 0; t < tiles; t++) {
            sum += partial[(size_t)t * 2 * channels + c];
            float m = partial[(size_t)t * 2 * channels + channels + c];
            if (m > mx) mx = m;
        }
        mean[c] = (float)(sum / area);
        max[c] = mx;
    }
}

typedef struct {
    const lumos__chain *chain;
    int k;
    const void *store;
} band_call;

static int band_piece(void *user, int y0, int rows, void *dst)
{
    band_call *b = user;
    return b->chain->piece(b->chain->user, b->k, b->store, y0, rows, dst);
}

int lumos__chain_run(lumos_ctx *ctx, const lumos__chain *ch, float *stats)
{
    const int S = ch->stat_channels;
    const size_t row_bytes = (size_t)ch->channels * (size_t)ch->cap_w * (size_t)ch->elem_bytes;
    big_buffer store_buffer;
    void *store = big_alloc(ctx, &store_buffer, row_bytes * (size_t)ch->cap_h);
    float *partial = malloc((size_t)ch->max_tiles * 2 * (size_t)S * sizeof *partial);
    int rc = store && partial ? LUMOS_OK : lumos__fail(ctx, LUMOS_E_NOMEM, "chain: out of memory");
    int band = lumos__chain_band_override > 0 ? lumos__chain_band_override : ch->band;
    band_call call = {ch, 0, store};
    /* state 0 straight into the store: nothing is read from it */
    if (rc == LUMOS_OK) rc = ch->piece(ch->user, 0, store, 0, ch->cap_h, store);
    for (int k = 0; rc == LUMOS_OK && k < ch->points; k++) {
        if (k > 0) {
            call.k = k;
            rc = lumos__map_in_place(ctx, store, row_bytes, ch->cap_h, band, ch->apron, band_piece,
                                     &call);
        }
        if (rc == LUMOS_OK && ch->derive) rc = ch->derive(ch->user, k, store);
        int tiles = 0;
        if (rc == LUMOS_OK) rc = ch->statistics(ch->user, k, store, partial, &tiles);
        if (rc == LUMOS_OK)
            lumos__reduce_statistics(partial, tiles, S, (double)ch->width * ch->height,
                                     stats + (size_t)k * 2 * S, stats + (size_t)k * 2 * S + S);
    }
    free(partial);
    if (rc == LUMOS_OK) rc = ch->tail(ch->user, store);
    big_free(ctx, &store_buffer);
    return rc;
}

/* ------------------------------------------------ training through a chain */

static size_t act_floats(const lumos__act *a) { return (size_t)a->c * a->w * a->h; }

static int act_alloc(lumos_ctx *ctx, lumos__act *a)
{
    a->data = calloc(act_floats(a) ? act_floats(a) : 1, sizeof *a->data);
    return a->data ? LUMOS_OK : lumos__fail(ctx, LUMOS_E_NOMEM, "chain: out of memory");
}

int lumos__chain_forward(lumos_ctx *ctx, const lumos__piece_chain *chain, lumos__act input,
                         int last, lumos__chain_tape *tape)
{
    memset(tape, 0, sizeof *tape);
    tape->chain = chain;
    tape->last = -1;
    tape->act[0] = input;
    if (last < 0 || last >= chain->pieces || chain->pieces > LUMOS__CHAIN_MAX_PIECES)
        return lumos__fail(ctx, LUMOS_E_ARG, "chain: piece %d of %d", last, chain->pieces);
    for (int i = 0; i <= last; i++) {
        lumos__act *out = &tape->act[i + 1];
        chain->out_shape(chain->user, i, &tape->act[i], out);
        int rc = act_alloc(ctx, out);
        if (rc == LUMOS_OK) tape->last = i;
        if (rc == LUMOS_OK) rc = chain->forward(chain->user, ctx, i, &tape->act[i], out);
        if (rc != LUMOS_OK) return rc;
    }
    return LUMOS_OK;
}

int lumos__chain_backward(lumos_ctx *ctx, const lumos__chain_tape *tape, float *const *seed,
                          float *grad_input)
{
    const lumos__piece_chain *chain = tape->chain;
    int top = tape->last;
    while (top >= 0 && !seed[top]) top--;
    if (top < 0) {
        memset(grad_input, 0, act_floats(&tape->act[0]) * sizeof(float));
        return LUMOS_OK;
    }
    lumos__act g = tape->act[top + 1];
    int rc = act_alloc(ctx, &g);
    if (rc != LUMOS_OK) return rc;
    memcpy(g.data, seed[top], act_floats(&g) * sizeof(float));
    for (int i = top; i >= 0 && rc == LUMOS_OK; i--) {
        lumos__act gin = tape->act[i];
        gin.data = grad_input;
        if (i > 0) rc = act_alloc(ctx, &gin);
        if (rc == LUMOS_OK) rc = chain->backward(chain->user, ctx, i, &tape->act[i], &g, &gin);
        free(g.data);
        g = gin;
        if (rc == LUMOS_OK && i > 0 && seed[i - 1])
            for (size_t k = 0; k < act_floats(&g); k++) g.data[k] += seed[i - 1][k];
    }
    if (g.data != grad_input) free(g.data);
    return rc;
}

void lumos__chain_tape_free(lumos__chain_tape *tape)
{
    for (int i = 1; i <= tape->last + 1; i++) free(tape->act[i].data);
    tape->last = -1;
}
