/* isp.c — lumos_isp_classic: RAW metadata and options -> ISP parameters.
 *
 * The mosaic goes to the Halide pipeline (stages/classic_isp.c). A non-Bayer
 * file (X-Trans, Foveon, linear DNG) goes through LibRaw's own processing with
 * the same options, and a notice says so. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/raw_internal.h"
#include "core/context.h"
#include "stages/classic_isp.h"

void lumos_isp_options_init(lumos_isp_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->wb = LUMOS_WB_CAMERA;
    opt->wb_user[0] = opt->wb_user[1] = opt->wb_user[2] = 1.f;
    opt->tone = 0.5f;
    opt->bits = 8;
}

static int check_options(lumos_ctx *ctx, const lumos_isp_options *o)
{
    if (o->bits != 8 && o->bits != 16 && o->bits != 32)
        return lumos__fail(ctx, LUMOS_E_ARG, "bits must be 8, 16 or 32 (float), not %d", o->bits);
    if (!(o->exposure_ev >= -16 && o->exposure_ev <= 16))
        return lumos__fail(ctx, LUMOS_E_ARG, "exposure %g EV is out of range -16..16",
                           o->exposure_ev);
    if (!(o->tone >= 0 && o->tone <= 1))
        return lumos__fail(ctx, LUMOS_E_ARG, "tone %g is out of range 0..1", o->tone);
    if (!(o->sharpen >= 0 && o->sharpen <= 10))
        return lumos__fail(ctx, LUMOS_E_ARG, "sharpen %g is out of range 0..10", o->sharpen);
    if (o->wb == LUMOS_WB_USER)
        for (int i = 0; i < 3; i++)
            if (!(o->wb_user[i] > 0 && o->wb_user[i] < 100))
                return lumos__fail(ctx, LUMOS_E_ARG, "white balance multipliers must be > 0");
    return LUMOS_OK;
}

/* Gray world over the sites that are clipped in no channel's own sample. */
static void auto_wb(const lumos_raw *raw, float gains[3])
{
    const lumos_raw_info *in = &raw->info;
    double sum[3] = {0, 0, 0};
    long long count[3] = {0, 0, 0};
    for (int y = 0; y < in->height; y++) {
        const uint16_t *row = (const uint16_t *)((const uint8_t *)raw->mosaic + (size_t)y * raw->stride);
        for (int x = 0; x < in->width; x++) {
            int site = (y & 1) * 2 + (x & 1);
            float v = row[x];
            if (v >= 0.98f * in->white) continue;
            int c = lumos__cfa_color(in->cfa, x, y);
            sum[c] += fmaxf(v - in->black[site], 0.f);
            count[c]++;
        }
    }
    double mean[3];
    for (int c = 0; c < 3; c++) mean[c] = count[c] ? sum[c] / (double)count[c] : 0;
    for (int c = 0; c < 3; c++)
        gains[c] = mean[c] > 0 && mean[1] > 0 ? (float)(mean[1] / mean[c]) : 1.f;
}

static int libraw_fallback(lumos_ctx *ctx, const lumos_raw *raw, const lumos_isp_options *o,
                           lumos_image *out);

lumos_status lumos_isp_classic(lumos_ctx *ctx, const lumos_raw *raw, const lumos_isp_options *opt,
                               lumos_image *out)
{
    if (!raw || !opt || !out) return lumos__fail(ctx, LUMOS_E_ARG, "lumos_isp_classic: NULL argument");
    memset(out, 0, sizeof *out);
    int rc = check_options(ctx, opt);
    if (rc) return rc;
    if (!raw->info.is_bayer) return libraw_fallback(ctx, raw, opt, out);

    const lumos_raw_info *in = &raw->info;
    lumos__isp_params p;
    memset(&p, 0, sizeof p);
    lumos__cfa_offsets(in->cfa, &p.cfa_x, &p.cfa_y);

    float gains[3];
    if (opt->wb == LUMOS_WB_AUTO) auto_wb(raw, gains);
    else memcpy(gains, opt->wb == LUMOS_WB_USER ? opt->wb_user : in->wb_as_shot, sizeof gains);
    /* Smallest gain 1: every channel then clips at the same white. */
    float gmin = fminf(gains[0], fminf(gains[1], gains[2]));
    for (int site = 0; site < 4; site++) {
        int c = lumos__cfa_color(in->cfa, site & 1, site >> 1);
        float range = in->white - in->black[site];
        if (!(range > 0))
            return lumos__fail(ctx, LUMOS_E_FORMAT, "white level %g is not above black %g",
                               in->white, in->black[site]);
        p.black[site] = in->black[site];
        p.scale[site] = gains[c] / gmin / range;
    }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            p.matrix[i][j] = opt->camera_space ? (float)(i == j) : in->cam_to_srgb[i][j];
    p.exposure = exp2f(opt->exposure_ev);
    p.tone = opt->linear ? 0.f : opt->tone;
    p.sharpen = opt->sharpen;
    p.linear = opt->linear;
    p.half = opt->half;

    rc = lumos__stage_classic_isp(ctx, raw->mosaic, in->width, in->height, raw->stride, &p,
                                  opt->bits, out);
    if (rc) return rc;
    out->space = opt->camera_space ? LUMOS_SPACE_CAMERA
                 : opt->linear     ? LUMOS_SPACE_LINEAR_SRGB
                                   : LUMOS_SPACE_SRGB;
    return LUMOS_OK;
}

/* LibRaw's own demosaic and colour for sensors the Halide ISP does not take.
 * The handle belongs to this lumos_raw, so processing it here is safe as long
 * as one lumos_raw is not processed by two threads at once (documented). */
static int libraw_fallback(lumos_ctx *ctx, const lumos_raw *raw, const lumos_isp_options *o,
                           lumos_image *out)
{
    libraw_data_t *lr = raw->libraw;
    if (!lr) return lumos__fail(ctx, LUMOS_E_UNSUPPORTED, "not a Bayer mosaic");
    lumos__notice(ctx, "%s %s: not a 2x2 Bayer sensor; using LibRaw's own processing",
                  raw->info.exif.make, raw->info.exif.model);
    libraw_output_params_t *po = &lr->params;
    /* LibRaw gives integers only: float output is its 16 bits / 65535. */
    const int bits = o->bits == 32 ? 16 : o->bits;
    po->output_bps = bits;
    po->half_size = o->half;
    po->no_auto_bright = 1;
    po->adjust_maximum_thr = 0; /* keep the file's white level: LibRaw would lower
                                   it to the data maximum, brightening the image */
    po->use_camera_wb = o->wb == LUMOS_WB_CAMERA;
    po->use_auto_wb = o->wb == LUMOS_WB_AUTO;
    if (o->wb == LUMOS_WB_USER) {
        po->user_mul[0] = o->wb_user[0];
        po->user_mul[1] = po->user_mul[3] = o->wb_user[1];
        po->user_mul[2] = o->wb_user[2];
    }
    po->output_color = o->camera_space ? 0 : 1;
    po->bright = exp2f(o->exposure_ev);
    if (o->linear) {
        po->gamm[0] = 1.0;
        po->gamm[1] = 1.0;
    } else { /* sRGB: slope 12.92 below the knee, exponent 1/2.4 */
        po->gamm[0] = 1 / 2.4;
        po->gamm[1] = 12.92;
    }
    po->user_flip = 0; /* sensor orientation: the caller orients */
    int rc = libraw_dcraw_process(lr);
    if (rc != LIBRAW_SUCCESS)
        return lumos__fail(ctx, LUMOS_E_FORMAT, "LibRaw processing failed: %s", libraw_strerror(rc));
    int err = 0;
    libraw_processed_image_t *img = libraw_dcraw_make_mem_image(lr, &err);
    if (!img) return lumos__fail(ctx, LUMOS_E_NOMEM, "LibRaw image: %s", libraw_strerror(err));
    rc = lumos_image_alloc(out, img->width, img->height, 3, o->bits);
    if (rc == LUMOS_OK && (img->colors != 3 || img->bits != bits))
        rc = lumos__fail(ctx, LUMOS_E_UNSUPPORTED, "LibRaw produced %d colours at %d bits",
                         img->colors, img->bits);
    if (rc == LUMOS_OK) {
        size_t row = (size_t)img->width * 3 * (size_t)(bits / 8);
        for (int y = 0; y < img->height; y++) {
            const uint8_t *src = img->data + (size_t)y * row;
            uint8_t *dst = (uint8_t *)out->data + (size_t)y * out->stride;
            if (o->bits != 32) {
                memcpy(dst, src, row);
                continue;
            }
            for (int i = 0; i < img->width * 3; i++) {
                uint16_t v;
                memcpy(&v, src + 2 * (size_t)i, 2);
                ((float *)(void *)dst)[i] = v / 65535.f;
            }
        }
        out->space = o->camera_space ? LUMOS_SPACE_CAMERA
                     : o->linear     ? LUMOS_SPACE_LINEAR_SRGB
                                     : LUMOS_SPACE_SRGB;
    } else {
        lumos_image_free(out);
    }
    libraw_dcraw_clear_mem(img);
    return rc;
}
