/* image.c — lumos_image allocation and EXIF orientation. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/io.h"
#include "core/context.h"

lumos_status lumos_image_alloc(lumos_image *img, int width, int height, int channels, int bits)
{
    if (!img) return LUMOS_E_ARG;
    memset(img, 0, sizeof *img);
    if (width <= 0 || height <= 0 || channels < 1 || (bits != 8 && bits != 16 && bits != 32))
        return LUMOS_E_ARG;
    size_t px = (size_t)channels * (size_t)(bits / 8);
    /* A size that cannot be represented can never be allocated: report it as
     * out of memory rather than wrapping around to a small buffer. Rows are
     * addressed with ptrdiff_t arithmetic, hence the PTRDIFF_MAX bound. */
    if ((size_t)width > PTRDIFF_MAX / px) return LUMOS_E_NOMEM;
    size_t stride = (size_t)width * px;
    if ((size_t)height > PTRDIFF_MAX / stride) return LUMOS_E_NOMEM;
    /* Nor more than the machine's memory: a file's header may claim any
     * size, and an overcommitted allocation would end in the OOM killer as
     * the pixels are written, not in an error. */
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0 && (double)height * (double)stride > (double)pages * (double)page)
        return LUMOS_E_NOMEM;
    void *data = calloc((size_t)height, stride);
    if (!data) return LUMOS_E_NOMEM;
    img->width = width;
    img->height = height;
    img->channels = channels;
    img->bits = bits;
    img->stride = stride;
    img->data = data;
    img->space = LUMOS_SPACE_SRGB;
    return LUMOS_OK;
}

uint64_t lumos__mul_sat(uint64_t a, uint64_t b)
{
    return a && b > UINT64_MAX / a ? UINT64_MAX : a * b;
}

int lumos__check_claim(lumos_ctx *ctx, const char *path, const lumos__claim *c)
{
    const unsigned long long w = c->width, h = c->height;
    const uint64_t pixels = lumos__mul_sat(c->width, c->height), max_px = lumos_ctx_max_pixels(ctx);
    if (pixels > max_px)
        return lumos__fail(ctx, LUMOS_E_NOMEM,
                           "%s: the %s claims %llux%llu pixels, over the limit of %llu pixels "
                           "an image may take in memory (lumos_ctx_set_max_pixels)",
                           path, c->format, w, h, (unsigned long long)max_px);
    /* Checked before the memory limit: a header that lies is a damaged
     * file, whatever the limit. */
    const uint64_t most = lumos__mul_sat(c->held, c->ratio);
    if (c->decoded > most) {
        if (c->ratio <= 1)
            return lumos__fail(ctx, LUMOS_E_FORMAT,
                               "%s: damaged %s: the header claims %llux%llu pixels, %llu bytes "
                               "of %s data, but the file holds only %llu bytes of it",
                               path, c->format, w, h, (unsigned long long)c->decoded, c->codec,
                               (unsigned long long)c->held);
        return lumos__fail(ctx, LUMOS_E_FORMAT,
                           "%s: damaged %s: the header claims %llux%llu pixels, %llu bytes once "
                           "decoded, but the file's %llu bytes of %s data decode to at most %llu",
                           path, c->format, w, h, (unsigned long long)c->decoded,
                           (unsigned long long)c->held, c->codec, (unsigned long long)most);
    }
    const uint64_t max_alloc = lumos_ctx_max_alloc(ctx);
    if (c->alloc > max_alloc)
        return lumos__fail(ctx, LUMOS_E_NOMEM,
                           "%s: reading the %llux%llu %s needs %llu bytes, over the memory limit "
                           "of %llu bytes (lumos_ctx_set_max_alloc)",
                           path, w, h, c->format, (unsigned long long)c->alloc,
                           (unsigned long long)max_alloc);
    return LUMOS_OK;
}

void lumos_image_free(lumos_image *img)
{
    if (!img) return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

/* Every EXIF orientation is a composition of an optional transpose followed
 * by optional mirrors: the destination pixel (x, y) reads the source at
 * (u, v) = swap ? (y, x) : (x, y), then u -> W-1-u if flip_u, v -> H-1-v if
 * flip_v (W, H: source size). */
static const struct {
    unsigned char swap, flip_u, flip_v;
} orient_map[9] = {
    [1] = {0, 0, 0}, /* upright */
    [2] = {0, 1, 0}, /* mirror horizontal */
    [3] = {0, 1, 1}, /* rotate 180 */
    [4] = {0, 0, 1}, /* mirror vertical */
    [5] = {1, 0, 0}, /* transpose */
    [6] = {1, 0, 1}, /* rotate 90 CW: dst(0,0) = src(0, H-1) */
    [7] = {1, 1, 1}, /* transverse */
    [8] = {1, 1, 0}, /* rotate 90 CCW: dst(0,0) = src(W-1, 0) */
};

lumos_status lumos_image_orient(lumos_ctx *ctx, lumos_image *img, int orientation)
{
    if (!img || !img->data || img->width <= 0 || img->height <= 0 || img->channels < 1 ||
        (img->bits != 8 && img->bits != 16 && img->bits != 32) ||
        img->stride / ((size_t)img->channels * (size_t)(img->bits / 8)) < (size_t)img->width)
        return lumos__fail(ctx, LUMOS_E_ARG, "lumos_image_orient: invalid image");
    if (orientation < 1 || orientation > 8)
        return lumos__fail(ctx, LUMOS_E_ARG,
                           "lumos_image_orient: orientation %d is not an EXIF orientation (1..8)",
                           orientation);
    if (orientation == 1) return LUMOS_OK;

    const int sw = img->width, sh = img->height;
    const int swap = orient_map[orientation].swap;
    const int fu = orient_map[orientation].flip_u, fv = orient_map[orientation].flip_v;
    lumos_image dst;
    int st = lumos_image_alloc(&dst, swap ? sh : sw, swap ? sw : sh, img->channels, img->bits);
    if (st) return lumos__fail(ctx, st, "lumos_image_orient: cannot allocate %dx%d image", sw, sh);
    dst.space = img->space;

    const ptrdiff_t px = (ptrdiff_t)img->channels * (img->bits / 8);
    const ptrdiff_t sstride = (ptrdiff_t)img->stride;
    /* Step through the source by the byte offset that one destination step
     * along x (or y) means, so the loop body is a single pixel copy. */
    const ptrdiff_t du = fu ? -px : px, dv = fv ? -sstride : sstride;
    const ptrdiff_t step_x = swap ? dv : du, step_y = swap ? du : dv;
    /* Offsets rather than moving pointers: a pointer stepped backwards past
     * the buffer's start would be undefined even if never dereferenced. */
    const ptrdiff_t origin = (fu ? (ptrdiff_t)(sw - 1) * px : 0) +
                             (fv ? (ptrdiff_t)(sh - 1) * sstride : 0);
    const unsigned char *src = img->data;
    for (int y = 0; y < dst.height; y++) {
        ptrdiff_t off = origin + (ptrdiff_t)y * step_y;
        unsigned char *d = (unsigned char *)dst.data + (size_t)y * dst.stride;
        for (int x = 0; x < dst.width; x++, off += step_x, d += px)
            memcpy(d, src + off, (size_t)px);
    }
    free(img->data);
    *img = dst;
    return LUMOS_OK;
}
