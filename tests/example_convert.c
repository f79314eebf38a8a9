/* example_convert.c — the C API example of the README, built and run as a
 * test so that the README stays true. Usage: example_convert IN.CR2 OUT.jpg */
#include <stdio.h>

#include "lumos.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s IN.raw OUT.jpg\n", argv[0]);
        return 2;
    }
    lumos_ctx *ctx = lumos_ctx_new();
    lumos_ctx_set_threads(ctx, 2);

    lumos_raw *raw = NULL;
    if (lumos_raw_open_file(ctx, argv[1], &raw) != LUMOS_OK) {
        fprintf(stderr, "%s\n", lumos_last_error(ctx));
        return 1;
    }
    const lumos_raw_info *info = lumos_raw_get_info(raw);
    printf("%s %s, %dx%d\n", info->exif.make, info->exif.model, info->width, info->height);

    lumos_isp_options isp;
    lumos_isp_options_init(&isp);
    isp.exposure_ev = 0.5f; /* half a stop brighter */

    lumos_image img;
    int rc = lumos_isp_classic(ctx, raw, &isp, &img);
    if (rc == LUMOS_OK) rc = lumos_image_orient(ctx, &img, info->orientation);
    if (rc == LUMOS_OK) {
        lumos_write_options out;
        lumos_write_options_init(&out);
        out.quality = 90;
        out.exif = &info->exif;
        out.overwrite = 1;
        rc = lumos_image_write(ctx, &img, argv[2], &out);
    }
    if (rc != LUMOS_OK) fprintf(stderr, "%s: %s\n", lumos_strerror(rc), lumos_last_error(ctx));
    lumos_image_free(&img);
    lumos_raw_free(raw);
    lumos_ctx_free(ctx);
    return rc == LUMOS_OK ? 0 : 1;
}
