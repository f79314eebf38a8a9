/* unprocess.c — Brooks et al. 2019 unprocessing, in our own code, and the
 * random crops of training pairs. See unprocess.h. */
#include "train/unprocess.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/raw_internal.h"
#include "core/context.h"

/* LibRaw's rgb_cam of the Canon EOS 30D (rawtran-doc's IMG_5952.CR2, as
 * `lumos info --json` prints it): a real camera's gamut, so that unprocessed
 * mosaics have realistic cross-talk between channels. */
static const float default_cam_to_srgb[3][3] = {
    {1.84992f, -0.996375f, 0.146455f},
    {-0.0382645f, 1.33736f, -0.299098f},
    {0.0563294f, -0.350968f, 1.29464f},
};

void lumos__unprocess_params_init(lumos__unprocess_params *p)
{
    memset(p, 0, sizeof *p);
    memcpy(p->cam_to_srgb, default_cam_to_srgb, sizeof p->cam_to_srgb);
    p->red_gain = p->blue_gain = p->rgb_gain = 1.f;
    p->tone_curve = 1;
    p->cfa = LUMOS_CFA_RGGB;
    p->black = 512.f;
    p->white = 16383.f;
}

/* ------------------------------------------------------------ random */

uint64_t lumos__rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double lumos__rng_uniform(uint64_t *state) { return (double)(lumos__rng_next(state) >> 11) * 0x1p-53; }

double lumos__rng_normal(uint64_t *state)
{
    /* 1 - u is in (0, 1], so the log is finite. */
    double u1 = 1.0 - lumos__rng_uniform(state), u2 = lumos__rng_uniform(state);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void lumos__unprocess_sample(uint64_t *rng, lumos__unprocess_params *p)
{
    /* The paper's brightening is 1 / N(0.8, 0.1); the floor only guards the
     * reciprocal against a (7-sigma) draw near 0. */
    double n = 0.8 + 0.1 * lumos__rng_normal(rng);
    p->rgb_gain = (float)(1.0 / fmax(n, 0.1));
    p->red_gain = (float)(1.9 + 0.5 * lumos__rng_uniform(rng));
    p->blue_gain = (float)(1.5 + 0.4 * lumos__rng_uniform(rng));
    double lo = log(0.0001), hi = log(0.012);
    double log_shot = lo + (hi - lo) * lumos__rng_uniform(rng);
    double log_read = 2.18 * log_shot + 1.20 + 0.26 * lumos__rng_normal(rng);
    p->shot_noise = (float)exp(log_shot);
    p->read_noise = (float)exp(log_read);
    p->noise_seed = lumos__rng_next(rng);
}

/* ------------------------------------------------------------- steps */

float lumos__srgb_encode(float v)
{
    v = fminf(fmaxf(v, 0.f), 1.f);
    return v <= 0.0031308f ? 12.92f * v : 1.055f * powf(v, 1.f / 2.4f) - 0.055f;
}

float lumos__srgb_decode(float e)
{
    e = fminf(fmaxf(e, 0.f), 1.f);
    return e <= 0.04045f ? e / 12.92f : powf((e + 0.055f) / 1.055f, 2.4f);
}

float lumos__smoothstep(float x)
{
    x = fminf(fmaxf(x, 0.f), 1.f);
    return x * x * (3.f - 2.f * x);
}

float lumos__smoothstep_inverse(float y)
{
    y = fminf(fmaxf(y, 0.f), 1.f);
    /* The root of 3x^2 - 2x^3 = y in [0, 1] (the paper's closed form). */
    return (float)(0.5 - sin(asin(1.0 - 2.0 * y) / 3.0));
}

int lumos__mat3_inverse(const float m[3][3], float inv[3][3])
{
    /* Adjugate over determinant, in double: camera matrices are well
     * conditioned, so this is exact to float precision. */
    double a[3][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) a[i][j] = m[i][j];
    double c[3][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            int i1 = (i + 1) % 3, i2 = (i + 2) % 3, j1 = (j + 1) % 3, j2 = (j + 2) % 3;
            c[i][j] = a[i1][j1] * a[i2][j2] - a[i1][j2] * a[i2][j1];
        }
    double det = a[0][0] * c[0][0] + a[0][1] * c[0][1] + a[0][2] * c[0][2];
    double scale = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) scale = fmax(scale, fabs(a[i][j]));
    if (!(fabs(det) > 1e-9 * scale * scale * scale)) return -1;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) inv[i][j] = (float)(c[j][i] / det);
    return 0;
}

void lumos__safe_inverse_gains(const float rgb[3], const float inv_gain[3], float out[3])
{
    /* The paper's mask: 0 up to a mean of 0.9, rising quadratically to 1 at
     * white, where the gain becomes 1. max() with the plain gain keeps a
     * gain above 1 (brightening, rgb_gain < 1) as it is. */
    float gray = (rgb[0] + rgb[1] + rgb[2]) / 3.f;
    float t = fmaxf(gray - 0.9f, 0.f) / 0.1f;
    float mask = t * t;
    for (int c = 0; c < 3; c++) {
        float safe = fmaxf(mask + (1.f - mask) * inv_gain[c], inv_gain[c]);
        out[c] = rgb[c] * safe;
    }
}

/* ---------------------------------------------------------- unprocess */

static int check_params(lumos_ctx *ctx, const lumos__unprocess_params *p)
{
    if (p->cfa < LUMOS_CFA_RGGB || p->cfa > LUMOS_CFA_GBRG)
        return lumos__fail(ctx, LUMOS_E_ARG, "unprocess: not a Bayer CFA (%d)", (int)p->cfa);
    if (!(p->black >= 0 && p->black < p->white && p->white <= 65535))
        return lumos__fail(ctx, LUMOS_E_ARG, "unprocess: levels black %g white %g", p->black,
                           p->white);
    if (!(p->red_gain > 0 && p->red_gain < 100 && p->blue_gain > 0 && p->blue_gain < 100 &&
          p->rgb_gain > 0 && p->rgb_gain < 100))
        return lumos__fail(ctx, LUMOS_E_ARG, "unprocess: gains %g %g %g out of range",
                           p->red_gain, p->blue_gain, p->rgb_gain);
    if (!(p->shot_noise >= 0 && p->shot_noise < 1 && p->read_noise >= 0 && p->read_noise < 1))
        return lumos__fail(ctx, LUMOS_E_ARG, "unprocess: noise %g %g out of range",
                           p->shot_noise, p->read_noise);
    return LUMOS_OK;
}

int lumos__unprocess(lumos_ctx *ctx, const lumos_image *srgb, const lumos__unprocess_params *p,
                     uint16_t *mosaic, lumos_raw_info *info_out)
{
    if (!srgb || !srgb->data || !p || !mosaic)
        return lumos__fail(ctx, LUMOS_E_ARG, "unprocess: NULL argument");
    if ((srgb->channels != 3 && srgb->channels != 1) || (srgb->bits != 8 && srgb->bits != 16) ||
        srgb->width < 1 || srgb->height < 1)
        return lumos__fail(ctx, LUMOS_E_ARG, "unprocess: need an 8/16-bit RGB image, not %dx%d "
                           "%d-channel %d-bit", srgb->width, srgb->height, srgb->channels,
                           srgb->bits);
    int rc = check_params(ctx, p);
    if (rc) return rc;
    float rgb_to_cam[3][3];
    if (lumos__mat3_inverse(p->cam_to_srgb, rgb_to_cam))
        return lumos__fail(ctx, LUMOS_E_ARG, "unprocess: the camera matrix is singular");

    /* lumos_isp_classic scales the gains so the smallest is 1 (a common
     * clip), then brightens by its exposure: invert exactly that. */
    float gains[3] = {p->red_gain, 1.f, p->blue_gain};
    float gmin = fminf(gains[0], fminf(gains[1], gains[2]));
    float inv_gain[3];
    for (int c = 0; c < 3; c++) inv_gain[c] = gmin / (gains[c] * p->rgb_gain);

    /* Tone and transfer depend on the code value only: one table. The
     * paper's tone curve acts on the encoded value, after the transfer, so
     * it is undone first. */
    int levels = srgb->bits == 8 ? 256 : 65536;
    float *lut = malloc((size_t)levels * sizeof *lut);
    if (!lut) return lumos__fail(ctx, LUMOS_E_NOMEM, "unprocess: out of memory");
    for (int v = 0; v < levels; v++) {
        float e = (float)v / (float)(levels - 1);
        lut[v] = lumos__srgb_decode(p->tone_curve ? lumos__smoothstep_inverse(e) : e);
    }

    int noisy = p->shot_noise > 0 || p->read_noise > 0;
    uint64_t rng = p->noise_seed;
    double range = (double)p->white - p->black;
    int cfa_x, cfa_y;
    lumos__cfa_offsets(p->cfa, &cfa_x, &cfa_y);
    for (int y = 0; y < srgb->height; y++) {
        const uint8_t *row8 = (const uint8_t *)srgb->data + (size_t)y * srgb->stride;
        const uint16_t *row16 = (const uint16_t *)(const void *)row8;
        uint16_t *out = mosaic + (size_t)y * srgb->width;
        for (int x = 0; x < srgb->width; x++) {
            float lin[3];
            for (int c = 0; c < 3; c++) {
                size_t i = (size_t)x * srgb->channels + (srgb->channels == 3 ? c : 0);
                lin[c] = lut[srgb->bits == 8 ? row8[i] : row16[i]];
            }
            float cam[3], raw[3];
            for (int i = 0; i < 3; i++)
                cam[i] = rgb_to_cam[i][0] * lin[0] + rgb_to_cam[i][1] * lin[1] +
                         rgb_to_cam[i][2] * lin[2];
            lumos__safe_inverse_gains(cam, inv_gain, raw);
            int c = lumos__cfa_color(p->cfa, x, y);
            /* Out-of-gamut colours clip at 0 and white as a sensor would. */
            double v = fmin(fmax(raw[c], 0.f), 1.f);
            if (noisy) {
                /* Poisson-Gaussian as one Gaussian: variance shot·x + read. */
                double var = p->shot_noise * v + p->read_noise;
                v += sqrt(var) * lumos__rng_normal(&rng);
            }
            /* Below black stays (a real sensor's read noise does); above
             * white saturates. */
            double s = floor(p->black + v * range + 0.5);
            out[x] = (uint16_t)fmin(fmax(s, 0.0), p->white);
        }
    }
    free(lut);

    if (info_out) {
        memset(info_out, 0, sizeof *info_out);
        info_out->width = srgb->width;
        info_out->height = srgb->height;
        info_out->cfa = p->cfa;
        for (int i = 0; i < 4; i++) info_out->black[i] = p->black;
        info_out->white = p->white;
        memcpy(info_out->wb_as_shot, gains, sizeof gains);
        memcpy(info_out->cam_to_srgb, p->cam_to_srgb, sizeof info_out->cam_to_srgb);
        info_out->orientation = 1;
        info_out->is_bayer = 1;
    }
    return LUMOS_OK;
}

/* -------------------------------------------------------------- crops */

int lumos__random_crop(lumos_ctx *ctx, uint64_t *rng, int width, int height, int crop_w,
                       int crop_h, lumos__crop *out)
{
    crop_w &= ~1;
    crop_h &= ~1;
    if (!rng || !out || crop_w < 2 || crop_h < 2 || crop_w > width || crop_h > height)
        return lumos__fail(ctx, LUMOS_E_ARG, "random crop %dx%d does not fit %dx%d", crop_w,
                           crop_h, width, height);
    /* Even positions 0, 2, .. up to the last that fits. */
    uint64_t nx = (uint64_t)(width - crop_w) / 2 + 1, ny = (uint64_t)(height - crop_h) / 2 + 1;
    out->x = (int)(2 * (lumos__rng_next(rng) % nx));
    out->y = (int)(2 * (lumos__rng_next(rng) % ny));
    out->width = crop_w;
    out->height = crop_h;
    uint64_t f = lumos__rng_next(rng);
    out->flip_x = (int)(f >> 62 & 1);
    out->flip_y = (int)(f >> 63);
    return LUMOS_OK;
}

static int check_crop(lumos_ctx *ctx, int width, int height, const lumos__crop *c)
{
    if (!c || c->x < 0 || c->y < 0 || c->width < 1 || c->height < 1 ||
        c->width > width - c->x || c->height > height - c->y)
        return lumos__fail(ctx, LUMOS_E_ARG, "crop outside the %dx%d source", width, height);
    return LUMOS_OK;
}

int lumos__crop_image(lumos_ctx *ctx, const lumos_image *src, const lumos__crop *c,
                      lumos_image *dst)
{
    if (!src || !src->data || !dst) return lumos__fail(ctx, LUMOS_E_ARG, "crop: NULL argument");
    int rc = check_crop(ctx, src->width, src->height, c);
    if (rc) return rc;
    rc = lumos_image_alloc(dst, c->width, c->height, src->channels, src->bits);
    if (rc) return lumos__fail(ctx, rc, "crop: out of memory");
    dst->space = src->space;
    size_t px = (size_t)src->channels * (size_t)(src->bits / 8);
    for (int y = 0; y < c->height; y++) {
        int sy = c->y + (c->flip_y ? c->height - 1 - y : y);
        const uint8_t *in = (const uint8_t *)src->data + (size_t)sy * src->stride;
        uint8_t *o = (uint8_t *)dst->data + (size_t)y * dst->stride;
        for (int x = 0; x < c->width; x++) {
            int sx = c->x + (c->flip_x ? c->width - 1 - x : x);
            memcpy(o + (size_t)x * px, in + (size_t)sx * px, px);
        }
    }
    return LUMOS_OK;
}

int lumos__crop_mosaic(lumos_ctx *ctx, const uint16_t *src, size_t stride,
                       const lumos_raw_info *info, const lumos__crop *c, uint16_t *dst,
                       lumos_raw_info *info_out)
{
    if (!src || !info || !dst || !info_out)
        return lumos__fail(ctx, LUMOS_E_ARG, "crop: NULL argument");
    int rc = check_crop(ctx, info->width, info->height, c);
    if (rc) return rc;
    if ((c->x | c->y | c->width | c->height) & 1)
        return lumos__fail(ctx, LUMOS_E_ARG, "crop of a mosaic at odd offset or size");
    if (info->cfa < LUMOS_CFA_RGGB || info->cfa > LUMOS_CFA_GBRG)
        return lumos__fail(ctx, LUMOS_E_ARG, "crop: not a Bayer mosaic");
    for (int y = 0; y < c->height; y++) {
        int sy = c->y + (c->flip_y ? c->height - 1 - y : y);
        const uint16_t *in = (const uint16_t *)(const void *)((const uint8_t *)src + (size_t)sy * stride);
        uint16_t *o = dst + (size_t)y * c->width;
        for (int x = 0; x < c->width; x++) o[x] = in[c->x + (c->flip_x ? c->width - 1 - x : x)];
    }
    /* Site (i, j) of the output's 2x2 block came from site (si, sj) of the
     * source's: find the pattern and blacks that say so. */
    lumos_raw_info o = *info;
    o.width = c->width;
    o.height = c->height;
    o.cfa = LUMOS_CFA_NONE;
    for (int cand = LUMOS_CFA_RGGB; cand <= LUMOS_CFA_GBRG && o.cfa == LUMOS_CFA_NONE; cand++) {
        int ok = 1;
        for (int k = 0; k < 4; k++) {
            int i = k & 1, j = k >> 1;
            int si = c->flip_x ? c->width - 1 - i : i, sj = c->flip_y ? c->height - 1 - j : j;
            ok &= lumos__cfa_color((lumos_cfa)cand, i, j) == lumos__cfa_color(info->cfa, si, sj);
        }
        if (ok) o.cfa = (lumos_cfa)cand;
    }
    for (int k = 0; k < 4; k++) {
        int i = k & 1, j = k >> 1;
        int si = (c->flip_x ? c->width - 1 - i : i) & 1, sj = (c->flip_y ? c->height - 1 - j : j) & 1;
        o.black[k] = info->black[sj * 2 + si];
    }
    *info_out = o;
    return LUMOS_OK;
}
