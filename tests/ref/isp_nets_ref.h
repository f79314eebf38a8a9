/* isp_nets_ref.h — a plain-C reference of the three lightweight ISP networks
 * of reference-methods.md §1 (EfficientISP, RobustISP, RMFA-Net tiny), written
 * as naive loops for the tests to check the Halide versions against. Weights
 * are looked up by their PyTorch state_dict names (tests/torch/isp_nets.py
 * defines the same modules). Slow on purpose: use it on small images. */
#ifndef LUMOS_TESTS_ISP_NETS_REF_H
#define LUMOS_TESTS_ISP_NETS_REF_H

#include <stddef.h>
#include <stdint.h>

typedef enum { REF_EFFICIENT, REF_ROBUST, REF_RMFA_TINY } ref_net;

/* Looks up a tensor by its PyTorch state_dict name; returns NULL if absent.
 * The tensor is float32, contiguous, in PyTorch's layout (conv weights
 * [out][in][kh][kw]) and of the shape ref_isp_tensors() gives. */
typedef const float *(*ref_tensor_fn)(void *user, const char *name);

/* Runs the net on an RGGB mosaic (width×height samples, row-major, no padding),
 * black[4] per site of the 2×2 block row by row, white.
 * Sizes: the 4-channel nets need width and height even; RMFA needs each of them
 * ≡ 0 or 1 (mod 4) and ≥ 4 — the sizes on which the PyTorch model runs (at
 * ≡ 2 or 3 (mod 4) its x1 + up(x3) has mismatched sizes); only at ≡ 1 does the
 * final F.interpolate run.
 * out: 3×height×width floats, planar (C, H, W), the network's raw output (no
 * clamp). Returns 0; -1 if a tensor is missing; -2 for an unsupported size;
 * -3 when out of memory. */
int ref_isp_forward(ref_net net, ref_tensor_fn tensor, void *user, const uint16_t *mosaic,
                    int width, int height, const float black[4], float white, float *out);

/* The state_dict names and shapes of a net (for writing random weights). */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[4];
} ref_tensor_spec;

/* Sets *specs to the net's table and returns its length (0 for an unknown net). */
size_t ref_isp_tensors(ref_net net, const ref_tensor_spec **specs);

/* The net's name as isp_nets.py spells it: "efficient", "robust", "rmfa_tiny". */
const char *ref_isp_name(ref_net net);

/* Bilinear resampling as PyTorch's upsample_bilinear2d with align_corners=False:
 * in (C, hin, win) -> out (C, hout, wout), each axis's scale in/out
 * (nn.Upsample(scale_factor=2) gives the same, as out = 2·in). Exposed so the
 * tests can check it alone on odd sizes. */
void ref_bilinear_resize(const float *in, int c, int hin, int win, float *out, int hout, int wout);

#endif
