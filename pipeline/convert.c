/* convert.c — lumos_convert_file: RAW file -> ISP -> upright image file. */
#include <string.h>

#include "core/context.h"

void lumos_convert_options_init(lumos_convert_options *opt)
{
    memset(opt, 0, sizeof *opt);
    lumos_isp_options_init(&opt->isp);
    lumos_write_options_init(&opt->write);
    opt->isp_name = "classic";
}

/* NULL and "classic" name the classical ISP. */
static int is_classic(const lumos_convert_options *opt)
{
    return !opt->isp_name || !strcmp(opt->isp_name, "classic");
}

lumos_status lumos_convert_file(lumos_ctx *ctx, const char *in_path, const char *out_path,
                                const lumos_convert_options *opt)
{
    if (!in_path || !out_path || !opt)
        return lumos__fail(ctx, LUMOS_E_ARG, "lumos_convert_file: NULL argument");
    lumos__clear_error(ctx);
    lumos_write_options wo = opt->write;
    lumos_format fmt = wo.format != LUMOS_FORMAT_AUTO ? wo.format : lumos_format_from_path(out_path);
    if (fmt == LUMOS_FORMAT_AUTO)
        return lumos__fail(ctx, LUMOS_E_ARG,
                           "%s: unknown output format (use .jpg, .png, .tif or .exr)", out_path);
    if (fmt == LUMOS_FORMAT_JPEG && opt->isp.bits != 8)
        return lumos__fail(ctx, LUMOS_E_ARG, "%s: JPEG holds 8 bits only", out_path);
    if (fmt == LUMOS_FORMAT_PNG && opt->isp.bits == 32)
        return lumos__fail(ctx, LUMOS_E_ARG, "%s: PNG holds 8 or 16 bits, not 32-bit float",
                           out_path);
    /* Checked before any work: EXR's readers take its values as linear light. */
    if (fmt == LUMOS_FORMAT_EXR && (!is_classic(opt) || !opt->isp.linear))
        return lumos__fail(ctx, LUMOS_E_ARG,
                           "%s: OpenEXR holds scene-linear light: use the classical ISP with "
                           "linear output",
                           out_path);
    wo.format = fmt;
    /* EXR stores float: an integer development would only add quantisation. */
    lumos_isp_options isp = opt->isp;
    if (fmt == LUMOS_FORMAT_EXR) isp.bits = 32;

    /* A learned ISP's weights: given, or loaded (and checked) before the RAW. */
    lumos_net *loaded = NULL;
    const lumos_net *net = opt->net;
    if (!is_classic(opt) && !net) {
        int rc = lumos_net_load(ctx, opt->isp_name, opt->weights, &loaded);
        if (rc) return rc;
        net = loaded;
    }
    lumos_raw *raw = NULL;
    int rc = lumos_raw_open_file(ctx, in_path, &raw);
    if (rc) {
        lumos_net_free(loaded);
        return rc;
    }
    lumos_image img = {0};
    rc = is_classic(opt) ? lumos_isp_classic(ctx, raw, &isp, &img)
                         : lumos_isp_learned(ctx, net, raw, isp.exposure_ev, isp.bits, &img);
    if (rc == LUMOS_OK) rc = lumos_image_orient(ctx, &img, lumos_raw_get_info(raw)->orientation);
    if (rc == LUMOS_OK) {
        if (!wo.exif) wo.exif = &lumos_raw_get_info(raw)->exif;
        rc = lumos_image_write(ctx, &img, out_path, &wo);
    } else if (ctx && strncmp(ctx->error, in_path, strlen(in_path)) != 0) {
        /* Name the file in errors from stages that do not know it. */
        char detail[sizeof ctx->error];
        memcpy(detail, ctx->error, sizeof detail);
        lumos__fail(ctx, rc, "%s: %s", in_path, detail);
    }
    lumos_image_free(&img);
    lumos_raw_free(raw);
    lumos_net_free(loaded);
    return rc;
}
