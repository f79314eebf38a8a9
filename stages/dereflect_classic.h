/* dereflect_classic.h — classical single-image reflection suppression
 * (Arvanitopoulos et al., CVPR 2017): `lumos dereflect --net classic`. */
#ifndef LUMOS_STAGE_DEREFLECT_CLASSIC_H
#define LUMOS_STAGE_DEREFLECT_CLASSIC_H

#include "lumos.h"

/* Defaults, chosen on a synthetic pair (tests/test_dereflect_classic.c: a
 * 256² crop of skimage's astronaut plus a σ 4 blur of coffee at 0.4; h
 * 0.01–0.05 and eps 1e-8–1e-3 all helped there, h 0.03 and eps 1e-8 most).
 * eps pins the frequencies below about eps^(1/4) rad/pixel to the input, so
 * its effect depends on the image size: 1e-8 keeps from the input only
 * structures wider than about 600 pixels and rebuilds the rest from the
 * kept gradients. */
#define LUMOS__DEREFLECT_CLASSIC_H 0.03f
#define LUMOS__DEREFLECT_CLASSIC_EPS 1e-8f

/* For each channel c of I, the T minimising
 *     ‖ΔT − div(τ_h(∇I))‖² + eps·‖T − I‖²
 * (τ_h zeroes the gradients of magnitude below h, mostly the blurry
 * reflection's; Δ, ∇, div with Neumann boundaries: see
 * generators/dereflect_classic_generator.cpp), clamped to 0..1.
 *
 * rgb: width×height×3 floats interleaved, sRGB-encoded 0..1 (as read); out
 * likewise, and may be rgb itself (in place). h >= 0: the gradient threshold
 * (0 gives the input back exactly); eps > 0: the fidelity weight. Works one
 * channel at a time: beyond rgb and out it holds one width×height float
 * plane (133 MB at 7680×4320) and a few column buffers.
 *
 * Returns LUMOS_OK, LUMOS_E_ARG (NULL pointers, sizes below 1 or above
 * 2^31/3 pixels, h < 0, eps <= 0, either not finite), LUMOS_E_NOMEM, or
 * LUMOS_E_PIPELINE; out is then undefined. */
int lumos__dereflect_classic(lumos_ctx *ctx, const float *rgb, int width, int height, float h,
                             float eps, float *out);

#endif
