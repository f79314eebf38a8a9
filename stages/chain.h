/* chain.h — running a network too big for one pipeline over an image of any
 * size, in bounded memory.
 *
 * The network is a chain of ahead-of-time pieces cut where it needs global
 * statistics (RMFA's channel attention pools each block over the whole
 * image): piece 0 maps the input to a stored state s_0 (what the rest of
 * the network needs at statistics point 0, the pooled map among it);
 * statistics pass k reduces s_k's pooled map to per-channel means and
 * maxima (each tile's partial sums and maxima, reduced here); piece k > 0
 * maps s_{k-1} and the statistics before it to s_k; the tail maps the last
 * state and every statistic to the output.
 * Each piece is computed once; inside a piece the generated pipeline works
 * in output tiles that recompute their apron exactly, so no seams need
 * blending.
 *
 * Only one state is ever stored: piece k > 0 replaces s_{k-1} in place, band of
 * rows by band, each band written back once the band after it (whose apron
 * reads back into it) has been computed. Memory: one map plus two bands.
 * A chain may split its state: piece k then writes only the part carried
 * from point to point, and `derive` completes the rest from it, in place
 * (RMFA: a block's input, then its fused features), so the carried part is
 * not recomputed over the derived part's apron. */
#ifndef LUMOS_STAGE_CHAIN_H
#define LUMOS_STAGE_CHAIN_H

#include <stddef.h>

#include "lumos.h"

/* Computes rows [y0, y0 + rows) of the new map into `dst` (rows of the
 * store's row size, first row y0), reading the old map from the store only
 * within `apron` rows of them. */
typedef int (*lumos__band_fn)(void *user, int y0, int rows, void *dst);

/* Replaces the map in `store` (`rows` rows of `row_bytes`) by fn's, in bands
 * of `band` rows (a multiple of the pipeline's tile height); needs
 * apron <= band. */
int lumos__map_in_place(lumos_ctx *ctx, void *store, size_t row_bytes, int rows, int band,
                        int apron, lumos__band_fn fn, void *user);

/* Per-channel mean (over `area` pixels) and maximum from `tiles` partials
 * of 2·channels floats: the tile's sums, then its maxima. */
void lumos__reduce_statistics(const float *partial, int tiles, int channels, double area,
                              float *mean, float *max);

/* A network's chain. The store holds its state at one point: (c, x, y), c
 * innermost, `channels` × `cap_w` × `cap_h` (the domain rounded up to whole
 * tiles) elements of `elem_bytes` (4: float, 2: half float). */
typedef struct lumos__chain {
    int points;       /* statistics points; states 0 .. points-1 */
    int channels;     /* of the state */
    int elem_bytes;
    int stat_channels; /* of each point's pooled map */
    int width, height, cap_w, cap_h; /* the network's domain, the store's capacity */
    int band, apron;  /* rows: piece bands (tile multiple), the pieces' reach */
    /* piece k: rows [y0, y0 + rows) of state k into dst (k = 0: from the input) */
    int (*piece)(void *user, int k, const void *store, int y0, int rows, void *dst);
    /* statistics pass k over state k: fills partial (2·stat_channels a tile), sets *tiles */
    int (*statistics)(void *user, int k, const void *store, float *partial, int *tiles);
    int max_tiles;    /* partials' capacity, in tiles */
    /* NULL, or: after piece k, completes state k in the store from what
     * piece k wrote (its first channels; the rest, whatever the band copies
     * left there, is rewritten from them alone, so in place, without bands) */
    int (*derive)(void *user, int k, void *store);
    /* the output from the last state */
    int (*tail)(void *user, const void *store);
    void *user;
} lumos__chain;

/* Runs the chain; `stats` (2 · stat_channels · points floats) receives
 * every point's (mean, max), (channel, mean | max, point), before the
 * pieces after that point run (they read it). */
int lumos__chain_run(lumos_ctx *ctx, const lumos__chain *chain, float *stats);

/* ------------------------------------------------ training through a chain
 *
 * A network (or a frozen feature network a loss differentiates through)
 * too big to compile as one pipeline with its backward, as pieces: piece i
 * maps activation i to activation i + 1 (activation 0 the input). Forward
 * keeps every activation; backward runs the pieces' adjoints from the last
 * seeded activation down to the input, adding the gradients given at the
 * activations on the way (a loss may tap several). A piece with parameters
 * adds their gradients where its callbacks keep them. */
enum { LUMOS__CHAIN_MAX_PIECES = 32 };

/* A float map (c, x, y), c innermost. */
typedef struct lumos__act {
    float *data;
    int c, w, h;
} lumos__act;

typedef struct lumos__piece_chain {
    int pieces; /* <= LUMOS__CHAIN_MAX_PIECES */
    /* piece i's output shape (c, w, h: data untouched) for its input's */
    void (*out_shape)(void *user, int i, const lumos__act *in, lumos__act *out);
    int (*forward)(void *user, lumos_ctx *ctx, int i, const lumos__act *in, lumos__act *out);
    /* grad_in = dL/d(in), from in and grad_out = dL/d(out) */
    int (*backward)(void *user, lumos_ctx *ctx, int i, const lumos__act *in,
                    const lumos__act *grad_out, lumos__act *grad_in);
    void *user;
} lumos__piece_chain;

/* A forward run: act[0] the caller's input, act[i + 1] piece i's output
 * (owned by the tape) for i <= last. */
typedef struct lumos__chain_tape {
    const lumos__piece_chain *chain;
    int last;
    lumos__act act[LUMOS__CHAIN_MAX_PIECES + 1];
} lumos__chain_tape;

/* Runs pieces 0..last on input (not copied: it must outlive the tape). On
 * failure the tape holds what was made; free it either way. */
int lumos__chain_forward(lumos_ctx *ctx, const lumos__piece_chain *chain, lumos__act input,
                         int last, lumos__chain_tape *tape);
/* dL/d(input) into grad_input (the input's size) from seed[i] = dL/d(act[i +
 * 1]) for the pieces that have one (NULL: none), i <= tape->last. */
int lumos__chain_backward(lumos_ctx *ctx, const lumos__chain_tape *tape, float *const *seed,
                          float *grad_input);
void lumos__chain_tape_free(lumos__chain_tape *tape);

/* For tests: bands of this many rows instead of the chain's (0: the
 * chain's); the state stored as half floats (1) or floats (-1) whatever the
 * size (0: by size, stages/learned_isp.c). */
extern int lumos__chain_band_override, lumos__chain_half_override;

#endif
