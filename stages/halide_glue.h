/* halide_glue.h — binding lumos images and contexts to generated pipelines.
 *
 * Every generated pipeline takes the lumos_ctx as its user_context: the
 * runtime's error messages land in that context's error text, and its
 * parallel loops run on that context's thread count (a small per-call pool,
 * so two contexts on two threads never share or resize one global pool). */
#ifndef LUMOS_HALIDE_GLUE_H
#define LUMOS_HALIDE_GLUE_H

#include <HalideRuntime.h>

#include "lumos.h"

/* v rounded up to a multiple of m: generated pipelines whose tiles round up
 * (TailStrategy::RoundUp) get buffers of whole tiles. */
static inline int lumos__round_up(int v, int m) { return (v + m - 1) / m * m; }

/* Installs the error handler and the per-context parallel loop (once). */
void lumos__halide_init(void);

/* A 2-D buffer over host memory, stride in elements. */
void lumos__hl_buffer_2d(halide_buffer_t *b, halide_dimension_t dim[2], const void *host,
                         struct halide_type_t type, int width, int height, int stride);

/* A 1-D float buffer of n elements (a flat weights or gradient vector). */
void lumos__hl_buffer_1d(halide_buffer_t *b, halide_dimension_t *dim, const float *host, size_t n);

/* A (c, x, y) float buffer over an interleaved c × w × h map, rows packed. */
void lumos__hl_buffer_cxy(halide_buffer_t *b, halide_dimension_t dim[3], const float *host, int c,
                          int w, int h);
/* The same, its first pixel at (x0, y0) of the pipeline's coordinates (a
 * window or a tile of a larger image). */
void lumos__hl_buffer_cxy_at(halide_buffer_t *b, halide_dimension_t dim[3], const float *host,
                             int c, int x0, int y0, int w, int h);

/* An (x, y, c) buffer over an interleaved lumos_image. */
void lumos__hl_buffer_image(halide_buffer_t *b, halide_dimension_t dim[3], lumos_image *img);

/* Maps a pipeline's return code to a lumos status, keeping its message. */
int lumos__hl_status(lumos_ctx *ctx, int rc, const char *stage);

#endif
