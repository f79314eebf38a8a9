/* agnostic.h — the camera-agnostic input of the learned ISPs.
 *
 * A network trained on one sensor's mosaic learns that sensor's colour
 * response and white balance along with demosaicing and tone. In the
 * camera-agnostic mode the network sees instead a "canonical" mosaic: the
 * sensor's samples levelled, white-balanced (as shot), demosaiced
 * bilinearly, mapped by the camera's matrix to linear sRGB, clipped at
 * white (1) but not at black, and sampled again in the same CFA pattern. What is left for the
 * network (demosaicing, denoising, tone) no longer depends on the camera,
 * so one set of weights serves any Bayer sensor LibRaw describes. Training
 * applies the same transform to its mosaics, so both sides agree. */
#ifndef LUMOS_PIPELINE_AGNOSTIC_H
#define LUMOS_PIPELINE_AGNOSTIC_H

#include <stddef.h>
#include <stdint.h>

#include "lumos.h"

/* The canonical mosaic's black level: 0..1 is stored as 8192..65535, so a
 * noisy dark sample keeps its value down to -0.14. */
#define LUMOS__AGNOSTIC_BLACK 8192

/* mosaic: width×height samples, stride in bytes, described by info (Bayer).
 * out: width×height samples, rows packed; out_info: info with black
 * LUMOS__AGNOSTIC_BLACK, white 65535, neutral white balance and the identity matrix (what the
 * canonical mosaic is). out may be mosaic itself when its rows are packed
 * (the samples are all read before any is written). LUMOS_E_ARG for a
 * non-Bayer info or bad levels. */
int lumos__agnostic_mosaic(lumos_ctx *ctx, const uint16_t *mosaic, int width, int height,
                           size_t stride, const lumos_raw_info *info, uint16_t *out,
                           lumos_raw_info *out_info);

#endif
