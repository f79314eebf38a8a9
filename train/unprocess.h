/* unprocess.h — sRGB photos "unprocessed" into realistic Bayer mosaics, after
 * Brooks et al. 2019, "Unprocessing Images for Learned Raw Denoising", and
 * the random crops/flips of training pairs.
 *
 * The ISP the paper inverts is: white balance and brightening, demosaic,
 * camera->sRGB matrix, sRGB transfer, then a smoothstep tone curve on the
 * encoded value. lumos__unprocess undoes it step by step in reverse order and
 * adds sensor noise; lumos_raw_from_mosaic + lumos_isp_classic (tone 0,
 * exposure log2(rgb_gain), the returned info) develop the result again. */
#ifndef LUMOS_TRAIN_UNPROCESS_H
#define LUMOS_TRAIN_UNPROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "lumos.h"

typedef struct lumos__unprocess_params {
    float cam_to_srgb[3][3]; /* white-balanced camera RGB -> linear sRGB, rows sum to 1 */
    float red_gain, blue_gain; /* white balance the ISP applies (green 1) */
    float rgb_gain;          /* brightening the ISP applies (its exposure, 2^ev) */
    int tone_curve;          /* 1: invert the smoothstep tone curve (the paper); 0: skip */
    float shot_noise;        /* variance = shot_noise * x + read_noise, x in [0, 1] */
    float read_noise;        /* 0 and 0: no noise */
    uint64_t noise_seed;     /* seeds the noise: the same seed gives the same mosaic */
    lumos_cfa cfa;           /* pattern of the output mosaic */
    float black, white;      /* output levels (16-bit samples) */
} lumos__unprocess_params;

/* Defaults: the Canon EOS 30D's matrix (LibRaw's rgb_cam of rawtran-doc's
 * CR2), neutral gains (1, 1, 1), tone curve on, no noise, RGGB, black 512,
 * white 16383 (a 14-bit sensor). */
void lumos__unprocess_params_init(lumos__unprocess_params *p);

/* Draws gains and noise levels with the paper's distributions from *rng
 * (which advances): rgb_gain = 1/N(0.8, 0.1), red U(1.9, 2.4), blue
 * U(1.5, 1.9); log shot U(log 1e-4, log 0.012), log read = 2.18 log shot +
 * 1.20 + N(0, 0.26); a fresh noise_seed. The matrix, tone curve, CFA and
 * levels are left as they are. */
void lumos__unprocess_sample(uint64_t *rng_state, lumos__unprocess_params *p);

/* srgb: 8- or 16-bit RGB (sRGB-encoded). mosaic: width*height samples, rows
 * packed. info_out (may be NULL): size, cfa, black[4], white, wb_as_shot
 * (red_gain, 1, blue_gain), cam_to_srgb, orientation 1, is_bayer. */
int lumos__unprocess(lumos_ctx *ctx, const lumos_image *srgb, const lumos__unprocess_params *p,
                     uint16_t *mosaic, lumos_raw_info *info_out);

/* ---- the steps, exposed so that each is tested against its forward */

float lumos__srgb_encode(float linear);  /* the sRGB transfer (as the ISP applies it) */
float lumos__srgb_decode(float encoded); /* its inverse */
float lumos__smoothstep(float x);        /* 3x^2 - 2x^3, the paper's tone curve */
float lumos__smoothstep_inverse(float y);/* 0.5 - sin(asin(1 - 2y) / 3) */
/* inv = m^-1; returns -1 (inv untouched) when m is singular. */
int lumos__mat3_inverse(const float m[3][3], float inv[3][3]);
/* The paper's safe inverse of the gains: rgb * inv_gain, where inv_gain_c is
 * the inverse of the ISP's gain for c, except that near white (mean above
 * 0.9) the gain is eased towards 1 so that a saturated pixel stays
 * saturated instead of being dimmed to an unclipped grey. */
void lumos__safe_inverse_gains(const float rgb[3], const float inv_gain[3], float out[3]);

/* ---- random numbers: splitmix64, one explicit 64-bit state */

uint64_t lumos__rng_next(uint64_t *state);
double lumos__rng_uniform(uint64_t *state); /* [0, 1) with 53 bits */
double lumos__rng_normal(uint64_t *state);  /* N(0, 1), Box-Muller */

/* ---- random crops and flips */

typedef struct lumos__crop {
    int x, y;           /* top-left in the source, both even */
    int width, height;  /* both even */
    int flip_x, flip_y; /* mirror left-right / top-bottom after cropping */
} lumos__crop;

/* A crop of crop_w x crop_h (rounded down to even) at a random even position
 * of a width x height source, and random flips, all from *rng. Even offsets
 * and sizes keep the CFA's 2x2 phase: an odd offset would turn RGGB into
 * GRBG/GBRG and move the per-site black levels, so the crop of a real RAW
 * would no longer match its info (and a photo's crop would no longer line up
 * with the same crop of its mosaic). LUMOS_E_ARG if the crop does not fit. */
int lumos__random_crop(lumos_ctx *ctx, uint64_t *rng_state, int width, int height, int crop_w,
                       int crop_h, lumos__crop *out);

/* Applies a crop to an image: *dst is allocated (free with lumos_image_free). */
int lumos__crop_image(lumos_ctx *ctx, const lumos_image *src, const lumos__crop *c,
                      lumos_image *dst);

/* Applies a crop to a mosaic (stride in bytes; dst c->width*c->height, rows
 * packed). A flip of an even-sized block swaps the 2x2 sites, so info_out
 * gets the flipped CFA and black levels (the rest of info copied, size set). */
int lumos__crop_mosaic(lumos_ctx *ctx, const uint16_t *src, size_t stride,
                       const lumos_raw_info *info, const lumos__crop *c, uint16_t *dst,
                       lumos_raw_info *info_out);

#endif
