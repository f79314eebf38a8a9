/* tiler.h — running an image operation over an image of any size in
 * overlapping tiles, in bounded memory, with an optional global statistics
 * pass first.
 *
 * The image is cut into a grid of core tiles (tile_w × tile_h, the last row
 * and column ragged). Each image call computes its core tile grown by
 * `overlap` each side; where two tiles meet, their outputs are blended over
 * the 2·overlap pixels around the seam by linear ramps that sum to one, so
 * an operation whose output does not depend on the tiling comes out as if
 * run on the whole image. The tiler adds weight × value into the output
 * itself: no weight map, and the only memory beyond the output is one
 * region's buffer (lumos__tiler_buffer_floats).
 *
 * The tiler never sees the input. A callback is told the region of the
 * output it must produce and reads its own input around it: `apron` more
 * pixels each side (the operation's reach), clamped or mirrored at the
 * image border as the operation defines. With overlap 0 the seams are hard
 * and the result is exact when the operation's reach is within the apron;
 * overlap hides seams of operations that are not (or not quite) local.
 *
 * Statistics an operation needs over the whole image (a mean, a maximum)
 * come from the statistics pass: once per core tile before any image call,
 * then statistics_done once; the image calls read what it gathered. */
#ifndef LUMOS_STAGE_TILER_H
#define LUMOS_STAGE_TILER_H

#include <stddef.h>

#include "lumos.h"

/* Every region a callback is given has its origin and size multiples of
 * `align` (a network's downsampling factor); where the image size is not a
 * multiple of it, the last column and row of regions reach up to align − 1
 * pixels past the image's right and bottom edges. The callback computes
 * those pixels as its operation defines (the tiler discards them from image
 * calls; a statistics callback decides whether they count). Callbacks run
 * in row-major tile order, one at a time, and return LUMOS_OK or an error,
 * which stops the run and is returned. */
typedef struct lumos__tiler {
    int width, height; /* the image (output) size, >= 1 */
    int channels;      /* of the output: float32, interleaved (c innermost) */
    int tile_w, tile_h; /* core tiles, the output each call owns: multiples of align */
    int apron;   /* input pixels each side a callback reads beyond its region */
    int overlap; /* pixels each side of a seam that neighbouring tiles blend; at
                    most half a tile (more: LUMOS_E_ARG, whatever the image size) */
    int align;   /* >= 1 */
    /* Optional (NULL: no statistics pass): region [x0, x0 + w) × [y0, y0 + h)
     * is a core tile (no overlap); the core tiles cover the image once. */
    int (*statistics)(void *user, int x0, int y0, int w, int h);
    int (*statistics_done)(void *user); /* optional: once after them, before any image call */
    /* The image pass: the operation's output over region [x0, x0 + w) ×
     * [y0, y0 + h) into `out`, w·h·channels floats, rows w·channels apart. */
    int (*run)(void *user, int x0, int y0, int w, int h, float *out);
    void *user;
} lumos__tiler;

/* Runs the statistics pass, then the image pass into `image` (height rows
 * of width·channels floats, row_stride_floats apart), all of which it
 * writes. LUMOS_E_ARG on a bad description (before any callback); on a
 * callback's error the image is partly written. */
int lumos__tiler_run(lumos_ctx *ctx, const lumos__tiler *t, float *image, size_t row_stride_floats);

/* The largest region a callback is given, `max_w` × `max_h`: the core tile
 * plus overlap (rounded up to align) each side, or the image rounded up to
 * align where that is smaller. A callback's input window is at most
 * (max_w + 2·apron) × (max_h + 2·apron). Expects a valid description. */
void lumos__tiler_max_region(const lumos__tiler *t, int *max_w, int *max_h);

/* Floats in the tiler's one region buffer, its whole memory beyond the
 * output: max_w · max_h · channels. */
size_t lumos__tiler_buffer_floats(const lumos__tiler *t);

#endif
