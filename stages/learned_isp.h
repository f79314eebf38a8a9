/* learned_isp.h — the learned ISP pipelines bound to lumos types. */
#ifndef LUMOS_STAGE_LEARNED_ISP_H
#define LUMOS_STAGE_LEARNED_ISP_H

#include <stddef.h>

#include "lumos.h"

/* The loss networks of training, in the same tables (isp_nets.def) as the
 * ISPs, under ids outside lumos_isp_kind: the frozen feature networks and
 * the discriminators (generators/features.h, loss_generator.cpp). */
enum {
    LUMOS__NET_MOBILENET = -4,
    LUMOS__NET_DISC_TEXTURE_EARLY = -5,
    LUMOS__NET_DISC_TEXTURE_DEEP = -6,
    LUMOS__NET_DISC_COLOUR = -7,
    LUMOS__NET_VGG19 = -8
};

/* Floats in a network's flat weight buffer (the tensors of isp_nets.def). */
size_t lumos__learned_weight_count(lumos_isp_kind kind);

/* One tensor of a network, in flat-buffer order: i < count, else NULL. */
typedef struct lumos__tensor_spec {
    const char *name;
    int ndim;
    int64_t shape[4];
} lumos__tensor_spec;
const lumos__tensor_spec *lumos__learned_tensor(lumos_isp_kind kind, size_t i);

/* Number of floats in a tensor. */
size_t lumos__tensor_elements(const lumos__tensor_spec *t);

/* The offset of tensor `name` in the flat buffer of `kind`, or -1. */
ptrdiff_t lumos__learned_tensor_offset(lumos_isp_kind kind, const char *name);

/* Runs network `kind` with weights `flat` on a width×height mosaic (stride in
 * bytes): red where (x + cfa_x), (y + cfa_y) are even; black and scale
 * (1 / (white - black)) per site of the 2×2 block, row by row. Allocates
 * *data (free()): interleaved RGB, uint8 (bits 8), uint16 (16) or float (32,
 * the network's own output), rows *row_stride bytes apart. */
int lumos__stage_learned(lumos_ctx *ctx, lumos_isp_kind kind, const float *flat,
                         const uint16_t *mosaic, int width, int height, size_t stride, int cfa_x,
                         int cfa_y, const float black[4], const float scale[4], int bits,
                         void **data, size_t *row_stride);

#endif
