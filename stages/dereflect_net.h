/* dereflect_net.h — runs a reflection-removal network of the registry
 * (task "dereflect", generators/nets/dereflect.h) on a photo of any size.
 *
 * The photo is padded by mirroring to the network's multiple (never
 * stored: each read mirrors its index); its quarter image (4×4 means) goes
 * whole through the low pass; the full-resolution pass then runs in tiles
 * (stages/tiler.c) whose aprons cover its reach, so the result equals an
 * untiled run. Memory: the quarter image, the low map and one tile beside
 * the caller's images. */
#ifndef LUMOS_STAGE_DEREFLECT_NET_H
#define LUMOS_STAGE_DEREFLECT_NET_H

#include "lumos.h"
#include "stages/nets.h"

/* rgb: width × height × 3 floats, interleaved, sRGB-encoded 0..1. out:
 * the same size, with 3 channels (the transmission) or, with_reflection, 6
 * (transmission, then reflection). tile: the full pass's tile side (0: the
 * default); a multiple of 8. */
int lumos__dereflect_net(lumos_ctx *ctx, const lumos__net_def *net, const float *flat,
                         const float *rgb, int width, int height, int tile, int with_reflection,
                         float *out);

/* Training: dL/dθ (grad_params, every parameter; the frozen feature
 * network's 0) of a crop `rgb` whose sides are multiples of the network's
 * (128 for uhd), given dL/dT (grad_t, width × height × 3), the crop taken
 * as the whole photo. */
int lumos__dereflect_net_backward(lumos_ctx *ctx, const lumos__net_def *net, const float *flat,
                                  const float *rgb, int width, int height, const float *grad_t,
                                  float *grad_params);

#endif
