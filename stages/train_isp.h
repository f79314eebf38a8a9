/* train_isp.h — the learned ISPs' parameter gradients bound to lumos types. */
#ifndef LUMOS_STAGE_TRAIN_ISP_H
#define LUMOS_STAGE_TRAIN_ISP_H

#include <stddef.h>
#include <stdint.h>

#include "lumos.h"
#include "stages/nets.h"

/* dL/dθ of ISP network `net` (weights `flat`) for one mosaic, as
 * lumos__stage_learned takes it (width×height, stride in bytes, CFA shift,
 * black and scale per 2×2 site), given dL/d(output): interleaved RGB floats,
 * width*height*3, rows packed — the gradient of the loss with respect to the
 * network's float output (bits 32 of lumos__stage_learned). grad_flat gets
 * lumos__net_weight_count(net) floats in flat-buffer order
 * (overwritten). The forward is recomputed inside. LUMOS_E_UNSUPPORTED for a
 * network without a gradient pipeline yet. */
int lumos__stage_learned_backward(lumos_ctx *ctx, const lumos__net_def *net, const float *flat,
                                  const uint16_t *mosaic, int width, int height, size_t stride,
                                  int cfa_x, int cfa_y, const float black[4], const float scale[4],
                                  const float *grad_out, float *grad_flat);

#endif
