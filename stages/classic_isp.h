/* classic_isp.h — the classical ISP pipeline bound to lumos types. */
#ifndef LUMOS_STAGE_CLASSIC_ISP_H
#define LUMOS_STAGE_CLASSIC_ISP_H

#include "lumos.h"

typedef struct lumos__isp_params {
    int cfa_x, cfa_y;       /* red where (x + cfa_x), (y + cfa_y) are even */
    float black[4];         /* per site of the 2×2 block, row by row */
    float scale[4];         /* per site: wb gain / (white - black) */
    float matrix[3][3];     /* out = matrix[out][in] · rgb */
    float exposure;         /* linear gain */
    float tone, sharpen;
    int linear, half;
} lumos__isp_params;

/* mosaic: width×height samples, stride in bytes. Allocates *out: RGB at
 * `bits` (8, 16, or 32: float 0..1), width×height (or half of each, at
 * least 1); its rows are padded to the pipeline's tiles, so out->stride may
 * exceed width·3·bytes. */
int lumos__stage_classic_isp(lumos_ctx *ctx, const uint16_t *mosaic, int width, int height,
                             size_t stride, const lumos__isp_params *p, int bits,
                             lumos_image *out);

#endif
