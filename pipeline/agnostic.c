/* agnostic.c — the canonical mosaic of the camera-agnostic learned ISPs
 * (see agnostic.h). Plain C: it is one pass of a few operations per
 * sample, small beside the network that follows. */
#include "pipeline/agnostic.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/raw_internal.h"
#include "core/context.h"

/* A mirror that keeps the CFA phase: -1 -> 1, n -> n - 2. */
static int mirror(int i, int n)
{
    if (i < 0) i = -i;
    if (i >= n) i = 2 * (n - 1) - i;
    return i < 0 ? 0 : i >= n ? n - 1 : i; /* n < 3 */
}

int lumos__agnostic_mosaic(lumos_ctx *ctx, const uint16_t *mosaic, int width, int height,
                           size_t stride, const lumos_raw_info *info, uint16_t *out,
                           lumos_raw_info *out_info)
{
    if (!info->is_bayer || info->cfa == LUMOS_CFA_NONE)
        return lumos__fail(ctx, LUMOS_E_ARG, "camera-agnostic input: not a Bayer mosaic");
    if (width < 2 || height < 2)
        return lumos__fail(ctx, LUMOS_E_ARG, "camera-agnostic input: %dx%d is too small", width,
                           height);
    float offset[4], gain[4];
    for (int s = 0; s < 4; s++) {
        float range = info->white - info->black[s];
        if (!(range > 0))
            return lumos__fail(ctx, LUMOS_E_ARG, "white level %g is not above black %g", info->white,
                               info->black[s]);
        int colour = lumos__cfa_color(info->cfa, s & 1, s >> 1);
        float wb = info->wb_as_shot[colour] > 0 ? info->wb_as_shot[colour] : 1.f;
        offset[s] = info->black[s];
        gain[s] = wb / range;
    }
    /* Levelled and white-balanced samples, each its own site's colour (all
     * read here, before out is written: out may be mosaic). */
    float *plane = malloc((size_t)width * height * sizeof *plane);
    if (!plane) return lumos__fail(ctx, LUMOS_E_NOMEM, "camera-agnostic input: out of memory");
    for (int y = 0; y < height; y++) {
        const uint16_t *row = (const uint16_t *)(const void *)((const uint8_t *)mosaic + y * stride);
        for (int x = 0; x < width; x++) {
            int s = (y & 1) * 2 + (x & 1);
            plane[(size_t)y * width + x] = ((float)row[x] - offset[s]) * gain[s];
        }
    }
    /* Noise keeps its sign below black: clipping it at 0 would lift the
     * dark tones, each CFA colour by its own matrix gain (a cast and a 2×2
     * pattern the network cannot undo). */
    const float range = 65535.f - LUMOS__AGNOSTIC_BLACK, lowest = -LUMOS__AGNOSTIC_BLACK / range;
#define AT(xx, yy) plane[(size_t)mirror(yy, height) * width + mirror(xx, width)]
    for (int y = 0; y < height; y++) {
        for (int x = 0; x < width; x++) {
            const int colour = lumos__cfa_color(info->cfa, x, y);
            float rgb[3];
            const float self = AT(x, y);
            const float cross = 0.25f * (AT(x - 1, y) + AT(x + 1, y) + AT(x, y - 1) + AT(x, y + 1));
            const float diag =
                0.25f * (AT(x - 1, y - 1) + AT(x + 1, y - 1) + AT(x - 1, y + 1) + AT(x + 1, y + 1));
            const float across = 0.5f * (AT(x - 1, y) + AT(x + 1, y)); /* this row's other colour */
            const float down = 0.5f * (AT(x, y - 1) + AT(x, y + 1));
            if (colour == 1) {
                /* green: the row's other sample is red or blue, the column's the other */
                int row_red = lumos__cfa_color(info->cfa, x + 1, y) == 0;
                rgb[0] = row_red ? across : down;
                rgb[1] = self;
                rgb[2] = row_red ? down : across;
            } else {
                rgb[colour] = self;
                rgb[1] = cross;
                rgb[2 - colour] = diag;
            }
            float v = 0;
            for (int k = 0; k < 3; k++) v += info->cam_to_srgb[colour][k] * rgb[k];
            v = v < lowest ? lowest : v > 1 ? 1 : v;
            out[(size_t)y * width + x] = (uint16_t)lrintf(LUMOS__AGNOSTIC_BLACK + v * range);
        }
    }
#undef AT
    free(plane);
    *out_info = *info;
    out_info->width = width;
    out_info->height = height;
    for (int s = 0; s < 4; s++) out_info->black[s] = LUMOS__AGNOSTIC_BLACK;
    out_info->white = 65535;
    for (int k = 0; k < 3; k++) {
        out_info->wb_as_shot[k] = 1;
        for (int j = 0; j < 3; j++) out_info->cam_to_srgb[k][j] = k == j;
    }
    return LUMOS_OK;
}
