/* tiler.c — the overlapping-tile runner of tiler.h. */
#include "stages/tiler.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"

/* One axis of the grid; x and y are cut alike. */
typedef struct {
    int size;    /* the image's */
    int padded;  /* size rounded up to align: where regions may end */
    int tile, overlap;
    int grow;    /* overlap rounded up to align: how far a region reaches past its core */
    int tiles;
} axis;

static int round_up(int v, int align)
{
    return (v + align - 1) / align * align;
}

static axis make_axis(int size, int tile, int overlap, int align)
{
    axis a = {size, round_up(size, align), tile, overlap, round_up(overlap, align),
              (size - 1) / tile + 1};
    return a;
}

/* Core tile i: [*lo, *hi). */
static void core_span(const axis *a, int i, int *lo, int *hi)
{
    *lo = i * a->tile;
    *hi = *lo + a->tile < a->padded ? *lo + a->tile : a->padded;
}

/* Image region i: its core grown by overlap each side, clipped to the
 * padded image. The core's ends and grow being multiples of align, so are
 * the region's. */
static void region_span(const axis *a, int i, int *lo, int *hi)
{
    core_span(a, i, lo, hi);
    *lo = *lo - a->grow > 0 ? *lo - a->grow : 0;
    *hi = *hi + a->grow < a->padded ? *hi + a->grow : a->padded;
}

/* Tile i's blend weight at x: 1 inside its core, linear ramps across each
 * seam it shares (2·overlap wide, centred on the seam, sampled at pixel
 * centres so that the two tiles' weights sum to one), 0 beyond them. */
static double weight(const axis *a, int i, int x)
{
    int lo = i * a->tile, hi = lo + a->tile, ov = a->overlap;
    if (i > 0 && x < lo + ov) return x < lo - ov ? 0 : (x - (lo - ov) + 0.5) / (2.0 * ov);
    if (i < a->tiles - 1 && x >= hi - ov)
        return x >= hi + ov ? 0 : 1 - (x - (hi - ov) + 0.5) / (2.0 * ov);
    return 1;
}

/* a · b fits a size_t. */
static int mul_fits(size_t a, size_t b)
{
    return b == 0 || a <= SIZE_MAX / b;
}

static int check(lumos_ctx *ctx, const lumos__tiler *t, const float *image, size_t row_stride)
{
    if (!t || !t->run || !image)
        return lumos__fail(ctx, LUMOS_E_ARG, "tiler: no image callback or image");
    if (t->width < 1 || t->height < 1 || t->channels < 1)
        return lumos__fail(ctx, LUMOS_E_ARG, "tiler: image %dx%d of %d channels", t->width,
                           t->height, t->channels);
    if (t->align < 1 || t->tile_w < 1 || t->tile_h < 1 || t->tile_w % t->align ||
        t->tile_h % t->align)
        return lumos__fail(ctx, LUMOS_E_ARG, "tiler: tiles %dx%d are not multiples of align %d",
                           t->tile_w, t->tile_h, t->align);
    /* Ramps of a tile's two seams must not cross: at most two tiles blend
     * anywhere along an axis. Refused even where the image has no seam, so
     * that a description works on every image size or on none. */
    if (t->apron < 0 || t->overlap < 0 || 2LL * t->overlap > t->tile_w ||
        2LL * t->overlap > t->tile_h)
        return lumos__fail(ctx, LUMOS_E_ARG, "tiler: apron %d, overlap %d over half a %dx%d tile",
                           t->apron, t->overlap, t->tile_w, t->tile_h);
    /* Every coordinate the tiler or a callback forms (a region's far end
     * plus the apron) stays an int. */
    long long reach = (long long)t->overlap + t->align + t->apron;
    if (t->width + reach + t->tile_w > INT_MAX || t->height + reach + t->tile_h > INT_MAX)
        return lumos__fail(ctx, LUMOS_E_ARG, "tiler: image %dx%d too large for its tiles",
                           t->width, t->height);
    size_t row = (size_t)t->width * (size_t)t->channels;
    if (!mul_fits((size_t)t->width, (size_t)t->channels) || row_stride < row ||
        !mul_fits(row_stride, (size_t)t->height))
        return lumos__fail(ctx, LUMOS_E_ARG, "tiler: row stride %zu under %d pixels of %d channels",
                           row_stride, t->width, t->channels);
    int mw, mh;
    lumos__tiler_max_region(t, &mw, &mh);
    if (!mul_fits((size_t)mw, (size_t)mh) ||
        !mul_fits((size_t)mw * (size_t)mh, (size_t)t->channels) ||
        !mul_fits((size_t)mw * (size_t)mh * (size_t)t->channels, sizeof(float)))
        return lumos__fail(ctx, LUMOS_E_ARG, "tiler: a %dx%d region of %d channels is too large",
                           mw, mh, t->channels);
    return LUMOS_OK;
}

void lumos__tiler_max_region(const lumos__tiler *t, int *max_w, int *max_h)
{
    axis ax = make_axis(t->width, t->tile_w, t->overlap, t->align);
    axis ay = make_axis(t->height, t->tile_h, t->overlap, t->align);
    *max_w = ax.tile + 2 * ax.grow < ax.padded ? ax.tile + 2 * ax.grow : ax.padded;
    *max_h = ay.tile + 2 * ay.grow < ay.padded ? ay.tile + 2 * ay.grow : ay.padded;
}

size_t lumos__tiler_buffer_floats(const lumos__tiler *t)
{
    int mw, mh;
    lumos__tiler_max_region(t, &mw, &mh);
    return (size_t)mw * (size_t)mh * (size_t)t->channels;
}

int lumos__tiler_run(lumos_ctx *ctx, const lumos__tiler *t, float *image, size_t row_stride)
{
    int rc = check(ctx, t, image, row_stride);
    if (rc != LUMOS_OK) return rc;
    const axis ax = make_axis(t->width, t->tile_w, t->overlap, t->align);
    const axis ay = make_axis(t->height, t->tile_h, t->overlap, t->align);
    const size_t C = (size_t)t->channels;

    for (int j = 0; rc == LUMOS_OK && t->statistics && j < ay.tiles; j++)
        for (int i = 0; rc == LUMOS_OK && i < ax.tiles; i++) {
            int x0, x1, y0, y1;
            core_span(&ax, i, &x0, &x1);
            core_span(&ay, j, &y0, &y1);
            rc = t->statistics(t->user, x0, y0, x1 - x0, y1 - y0);
        }
    if (rc == LUMOS_OK && t->statistics_done) rc = t->statistics_done(t->user);
    if (rc != LUMOS_OK) return rc;

    float *buf = malloc(lumos__tiler_buffer_floats(t) * sizeof *buf);
    if (!buf) return lumos__fail(ctx, LUMOS_E_NOMEM, "tiler: out of memory");
    /* Tiles add their weighted values, and every pixel's weights sum to one. */
    for (int y = 0; y < t->height; y++)
        memset(image + (size_t)y * row_stride, 0, (size_t)t->width * C * sizeof *image);
    for (int j = 0; rc == LUMOS_OK && j < ay.tiles; j++)
        for (int i = 0; rc == LUMOS_OK && i < ax.tiles; i++) {
            int x0, x1, y0, y1;
            region_span(&ax, i, &x0, &x1);
            region_span(&ay, j, &y0, &y1);
            const size_t w = (size_t)(x1 - x0);
            rc = t->run(t->user, x0, y0, x1 - x0, y1 - y0, buf);
            if (rc != LUMOS_OK) break;
            /* the part inside the image: regions may reach past it, up to align */
            int xe = x1 < t->width ? x1 : t->width, ye = y1 < t->height ? y1 : t->height;
            for (int y = y0; y < ye; y++) {
                double wy = weight(&ay, j, y);
                if (wy == 0) continue;
                float *dst = image + (size_t)y * row_stride;
                const float *src = buf + (size_t)(y - y0) * w * C;
                for (int x = x0; x < xe; x++) {
                    double wxy = weight(&ax, i, x) * wy;
                    if (wxy == 0) continue;
                    for (size_t c = 0; c < C; c++)
                        dst[(size_t)x * C + c] += (float)(wxy * src[(size_t)(x - x0) * C + c]);
                }
            }
        }
    free(buf);
    return rc;
}
