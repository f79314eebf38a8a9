/* learned_isp.h — the learned-ISP task's binding: any registered ISP
 * network's generated pipelines (generators/learned_isp_generator.cpp)
 * bound to lumos types. */
#ifndef LUMOS_STAGE_LEARNED_ISP_H
#define LUMOS_STAGE_LEARNED_ISP_H

#include <stddef.h>

#include "lumos.h"
#include "stages/nets.h"

/* Runs ISP network `net` with weights `flat` on a width×height mosaic
 * (stride in bytes): red where (x + cfa_x), (y + cfa_y) are even; black and
 * scale (1 / (white - black)) per site of the 2×2 block, row by row.
 * Allocates *data (free()): interleaved RGB, uint8 (bits 8), uint16 (16) or
 * float (32, the network's own output), rows *row_stride bytes apart. */
int lumos__stage_learned(lumos_ctx *ctx, const lumos__net_def *net, const float *flat,
                         const uint16_t *mosaic, int width, int height, size_t stride, int cfa_x,
                         int cfa_y, const float black[4], const float scale[4], int bits,
                         void **data, size_t *row_stride);

#endif
