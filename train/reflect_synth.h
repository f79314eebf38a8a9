/* reflect_synth.h — reflection training pairs synthesised from two photos:
 * one is the transmission T (what lies behind the glass), the other the
 * reflection R, mixed by the standard synthesis models of
 * shared/docs/reference-methods.md §2 (written after their public code:
 * ERRNet's data/transforms.py ReflectionSythesis_1, Zhang et al.'s main.py
 * syn_data and gkern, DSRNet's data/sirs_dataset.py ReflectionSynthesis),
 * plus the double-image ghosting of Shih et al. 2015.
 *
 * Drawing and applying are separate: lumos__reflect_draw picks a model and
 * its parameters from the trainer's random stream; lumos__reflect_apply is
 * deterministic and turns given parameters and crops into the network's
 * input I, its target T and the reflection layer R' that went into I. Crops
 * come from lumos__reflect_view_draw / _apply: a random scale, position and
 * left-right flip of a photo, resampled to float RGB.
 *
 * Images here are float RGB, interleaved (c fastest), rows packed, values
 * in 0..1 as the photo stores them (sRGB-encoded). */
#ifndef LUMOS_TRAIN_REFLECT_SYNTH_H
#define LUMOS_TRAIN_REFLECT_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "lumos.h"

typedef enum lumos__reflect_model {
    /* CEILNet (Fan et al. 2017) as ERRNet's code has it: R blurred by an
     * 11×11 Gaussian, σ ~ U(2, 5); M = T + R_b; if max M > 1,
     * m = γ (mean of M's values above 1 − 1), γ = 1.3 (all channels
     * together), R' = clip(R_b − m, 0, 1), I = clip(T + R', 0, 1); else
     * R' = R_b, I = M. */
    LUMOS__REFLECT_CEILNET = 0,
    /* Zhang et al. 2018, in linear light: t = T^2.2, r = R^2.2; r blurred
     * with σ from linspace(1, 5, 80) and kernel 2⌈2σ⌉ + 1; per channel c,
     * r_c −= (max(1, mean of (r_b + t)_c over its values above 1) − 1)·att,
     * att ~ U[1.08, 1.18], clipped to 0..1; times the vignette v (below);
     * I = clip((r_b·v + t·t_scale)^(1/2.2), 0, 1), t_scale ~ 1 − U[0, 0.2];
     * R' = (r_b·v)^(1/2.2). The target is T itself, not scaled (as their
     * training loop has it). Rejected: see lumos__reflect_apply. */
    LUMOS__REFLECT_ZHANG = 1,
    /* Screen blending (DSRNet, RDNet): R blurred with a kernel of 5, 7, 9,
     * 11 (probabilities .1 .2 .3 .4), σ ~ U[2, 5]; R' = β R_b,
     * I = αT + R' − αT·R', α ~ U[0.8, 1], β ~ U[0.4, 1]; the target is the
     * unscaled T. (DSRNet's own reflection target is R_b unscaled; R' here
     * is the layer actually screened onto αT.) */
    LUMOS__REFLECT_SCREEN = 2,
    /* Double-image ghosting (Shih et al. 2015: kernel δ(x) + c·δ(x − d)),
     * lumos's parametrisation: R lightly blurred (σ ~ U[0.5, 2], kernel
     * 2⌈2σ⌉ + 1: a ghosted reflection is usually in focus, and a blur of
     * 5 px would wipe out a ghost 4 px away), then
     * G(x) = (R_b(x) + c·R_b(x − d)) / (1 + c) — a copy displaced by d and
     * attenuated by c, normalised so that G keeps R's level —
     * c ~ U[0.3, 0.8] (the second bounce is the weaker), |d| ~ U[3, 15] px
     * at a uniform angle, rounded to whole pixels; then added to T with
     * CEILNet's excess subtraction (γ 1.3) and clipping: R' = G after it. */
    LUMOS__REFLECT_GHOST = 3,
    LUMOS__REFLECT_MODELS = 4
} lumos__reflect_model;

/* Border of the blurs (and of the ghost's shift). MIRROR is OpenCV's
 * default BORDER_REFLECT_101 (…c b | a b c d … — the edge pixel not
 * repeated), which is scipy.ndimage's 'mirror' and numpy's/PyTorch's
 * 'reflect'; Zhang et al.'s cv2.GaussianBlur uses it. ZERO is what
 * scipy.signal.convolve2d(mode='same') does in ERRNet's and DSRNet's code:
 * it darkens R in a frame of half a kernel along every crop edge. The
 * draw uses MIRROR for every model — a reflection that fades at the crop's
 * edges is an artefact of that code, not of glass, and a network could
 * learn to lean on it; ZERO stays available to reproduce the public code. */
typedef enum lumos__reflect_border {
    LUMOS__REFLECT_MIRROR = 0,
    LUMOS__REFLECT_ZERO = 1
} lumos__reflect_border;

/* The mixture lumos__reflect_draw uses by default, in model order:
 * CEILNet/ERRNet .30, Zhang .25, screen .30, ghosting .15. Why: RDNet, the
 * best of the cited methods on real test sets, trains on screen 70 % and
 * CEILNet-style addition 30 %; lumos keeps those two laws as the bulk
 * (60 %, evenly, so neither blending law is the only one a network sees),
 * adds Zhang's linear-light model with its vignette as the physically
 * closest one (25 %; its rejected pairs are redrawn with another R, so the
 * share holds), and ghosting (15 %), which only thick or double glazing
 * shows, as the minority it is in real photos. */
extern const double lumos__reflect_mix[LUMOS__REFLECT_MODELS];

/* Zhang's vignette mask: gkern(560, 3), a crop of which weights r_b. */
enum { LUMOS__REFLECT_VIGNETTE = 560 };

typedef struct lumos__reflect_params {
    lumos__reflect_model model;
    lumos__reflect_border border;
    float sigma;   /* px, the Gaussian blur of R */
    int ksize;     /* odd side of the blur kernel (OpenCV's getGaussianKernel: no truncation
                      beyond it, weights normalised to sum 1) */
    float gamma;   /* CEILNet, ghost: the excess over 1 subtracted × gamma (1.3) */
    float alpha, beta; /* screen: T × alpha, R_b × beta */
    float att;     /* Zhang: the per-channel excess subtracted × att */
    float t_scale; /* Zhang: t × t_scale in I */
    /* Zhang: the vignette is rows vig_y.., columns vig_x.. of the
     * vig_size² mask gkern(vig_size, 3) (see lumos__reflect_vignette). */
    int vig_size, vig_x, vig_y;
    int ghost_dx, ghost_dy; /* ghost: the copy's displacement d, px (right, down) */
    float ghost_c;          /* ghost: its attenuation c */
} lumos__reflect_params;

/* Every call of lumos__reflect_draw_model advances the stream by exactly
 * this many values, whatever the model, and lumos__reflect_draw by one more
 * (the model): later draws never depend on which model came up. */
enum { LUMOS__REFLECT_DRAWS = 5 };

/* Draws a model from mix (LUMOS__REFLECT_MODELS weights >= 0, not all 0,
 * taken relative to their sum; NULL: lumos__reflect_mix), then its
 * parameters (lumos__reflect_draw_model), for crops of
 * width × height (the vignette offsets depend on them). Fields the model
 * does not use are left neutral (alpha, beta, att, t_scale 1; gamma 0;
 * offsets and c 0). */
void lumos__reflect_draw(uint64_t *rng, const double *mix, int width, int height,
                         lumos__reflect_params *p);

/* The parameters of one given model, from *rng (which advances):
 *   CEILNET  sigma U(2, 5), ksize 11, gamma 1.3
 *   ZHANG    sigma = linspace(1, 5, 80)[k], k uniform in 0..79, ksize
 *            2⌈2σ⌉ + 1 (5..21), att U[1.08, 1.18), t_scale 1 − U[0, 0.2),
 *            vig_size max(560, max(width, height) + 11), vig_x uniform in
 *            0..vig_size − width − 11, vig_y in 0..vig_size − height − 11
 *            (their randint(0, 560 − w − 10))
 *   SCREEN   ksize 5/7/9/11 with .1/.2/.3/.4, sigma U[2, 5), alpha
 *            U[0.8, 1), beta U[0.4, 1)
 *   GHOST    sigma U[0.5, 2), ksize 2⌈2σ⌉ + 1 (3..9), ghost_c U[0.3, 0.8),
 *            |d| U[3, 15) at angle U[0, 2π), each component rounded, gamma 1.3
 * border MIRROR for all. Up to 549 px Zhang's mask is his 560²; a larger
 * crop gets a mask 11 px larger than its long side (then at offset 0 on
 * that axis), with the same Gaussian in units of the mask. */
void lumos__reflect_draw_model(uint64_t *rng, lumos__reflect_model model, int width, int height,
                               lumos__reflect_params *p);

/* "ceilnet", "zhang", "screen", "ghost"; NULL for anything else. */
const char *lumos__reflect_model_name(lumos__reflect_model model);

enum { LUMOS__REFLECT_REJECTED = 1 };

/* Applies p to the crops t and r (width × height, float RGB 0..1; in and
 * refl must not overlap them):
 *   in      the blended input I (0..1);
 *   target  the target: T itself in every model (may be t itself, or NULL);
 *   refl    R', the reflection layer as it went into I (0..1; NULL: not
 *           wanted) — for an exclusion loss or a reflection target.
 * Returns 0 for a kept pair, LUMOS__REFLECT_REJECTED for a pair Zhang's
 * training loop would drop (Zhang only: mean(T)/2 > mean(R) over the
 * crops' values, or max R' < 0.15, or max T < 0.15; its fourth rule,
 * max I < 0.1, follows from max T ≥ 0.15 since I ≥ (0.8·0.15^2.2)^(1/2.2)
 * = 0.135 there) — the caller then draws another R and keeps p; the
 * outputs are written all the same. A negative lumos_status on bad
 * arguments (LUMOS_E_ARG: sizes, a parameter out of its domain, a vignette
 * crop outside its mask) or LUMOS_E_NOMEM (scratch of 4 planes).
 * Deterministic: the same p and crops give the same bits. */
int lumos__reflect_apply(lumos_ctx *ctx, const lumos__reflect_params *p, int width, int height,
                         const float *t, const float *r, float *in, float *target, float *refl);

/* ---- the pieces, exposed for the tests */

/* OpenCV's getGaussianKernel(ksize, sigma): g_i ∝ exp(−(i − (ksize−1)/2)² / 2σ²),
 * summing to 1 (ksize doubles). */
void lumos__reflect_gaussian(int ksize, double sigma, double *g);

/* Separable blur of an interleaved RGB image (src and dst distinct; tmp
 * width*height*3 floats), in double per tap. */
void lumos__reflect_blur(const float *src, float *dst, float *tmp, int width, int height,
                         int ksize, double sigma, lumos__reflect_border border);

/* The 1-D factor of Zhang's gkern(size, 3) mask: the mask is
 * m[y][x] = f[y]·f[x], f = sqrt(k / max k), k the differences of the normal
 * CDF at linspace(−3 − i/2, 3 + i/2, size + 1), i = 7/size — gkern's
 * sqrt(outer(k, k)) normalised to sum 1 and then to peak 1 is exactly this
 * product, so a crop of it costs width + height values. (gkern's nsig 3 is
 * the half-width of the mask in standard deviations; the square root makes
 * the mask itself fall as exp(−x²/4), a Gaussian of σ √2 in those units:
 * 0.105 of the peak at the middle of an edge, 0.011 at a corner.)
 * f[0..count) gets entries first..first+count. */
void lumos__reflect_vignette(int size, int first, int count, double *f);

/* ---- crops: a random scale, position and left-right flip of a photo */

typedef struct lumos__reflect_view {
    double x, y;  /* the window's top-left in the source, px (whole numbers when drawn) */
    double step;  /* source px per output px: > 1 shrinks (area average), <= 1 enlarges (bilinear) */
    int flip_x;   /* mirror left-right */
} lumos__reflect_view;

/* A view of a src_w × src_h photo for a width × height crop, as ERRNet's and
 * DSRNet's loaders do (the short side resized to U[224, 448], a random
 * 224² crop, a left-right flip), for any crop: the photo's short side is
 * scaled to U[c, 2c) px, c = max(width, height), so the window spans 1/2
 * to all of it; a random whole-pixel position where it fits; flip with
 * probability 1/2 (no up-down flips: a photo upside down is not a scene).
 * Advances *rng by 4 values. LUMOS_E_ARG on empty sizes. */
int lumos__reflect_view_draw(lumos_ctx *ctx, uint64_t *rng, int src_w, int src_h, int width,
                             int height, lumos__reflect_view *v);

/* Resamples view v of src (RGB, 8, 16 or 32 bits; 8/16-bit values divided
 * by 255 / 65535) to width × height float RGB. step > 1: each output pixel
 * is the area average of the source over its footprint (OpenCV's
 * INTER_AREA); step <= 1: bilinear at the pixel centre's source position,
 * clamped at the edges. LUMOS_E_ARG if the window leaves the photo (by more
 * than 1e-6 px) or the image is not RGB; LUMOS_E_NOMEM. */
int lumos__reflect_view_apply(lumos_ctx *ctx, const lumos_image *src, const lumos__reflect_view *v,
                              int width, int height, float *out);

#endif
