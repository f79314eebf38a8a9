/* convert.c — lumos_convert_file: RAW file -> ISP -> upright image file. */
#include <string.h>

#include "pipeline/context.h"

void lumos_convert_options_init(lumos_convert_options *opt)
{
    memset(opt, 0, sizeof *opt);
    lumos_isp_options_init(&opt->isp);
    lumos_write_options_init(&opt->write);
    opt->kind = LUMOS_ISP_CLASSIC;
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
        return lumos__fail(ctx, LUMOS_E_ARG, "%s: unknown output format (use .jpg, .png or .tif)",
                           out_path);
    if (fmt == LUMOS_FORMAT_JPEG && opt->isp.bits != 8)
        return lumos__fail(ctx, LUMOS_E_ARG, "%s: JPEG holds 8 bits only", out_path);
    wo.format = fmt;

    /* A learned ISP's weights: given, or loaded (and checked) before the RAW. */
    lumos_net *loaded = NULL;
    const lumos_net *net = opt->net;
    if (opt->kind != LUMOS_ISP_CLASSIC && !net) {
        int rc = lumos_net_load(ctx, opt->kind, opt->weights, &loaded);
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
    rc = opt->kind == LUMOS_ISP_CLASSIC ? lumos_isp_classic(ctx, raw, &opt->isp, &img)
                                        : lumos_isp_learned(ctx, net, raw, opt->isp.exposure_ev, opt->isp.bits, &img);
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
