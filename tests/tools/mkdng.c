/* mkdng — mosaics a photo into a synthetic Bayer DNG whose camera space is
 * linear sRGB, so a demosaicker's output can be compared with the photo.
 *
 *   mkdng IN.png|jpg|tif OUT.dng [--cfa rggb|bggr|grbg|gbrg] [--black B] [--white W]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lumos.h"
#include "tests/tools/dng_writer.h"

static int usage(void)
{
    fprintf(stderr, "usage: mkdng IN.png|jpg|tif OUT.dng [--cfa rggb|bggr|grbg|gbrg] "
                    "[--black B] [--white W]\n");
    return 2;
}

static int parse_level(const char *s, float *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || v < 0.0 || v > 65535.0)
        return -1;
    *out = (float)v;
    return 0;
}

int main(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    lumos_cfa cfa = LUMOS_CFA_RGGB;
    float black = 512.0f, white = 16383.0f; /* a 14-bit sensor's usual range */
    static const char *names[] = {"rggb", "bggr", "grbg", "gbrg"};

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cfa") && i + 1 < argc) {
            const char *v = argv[++i];
            cfa = LUMOS_CFA_NONE;
            for (int k = 0; k < 4; k++)
                if (!strcmp(v, names[k]))
                    cfa = (lumos_cfa)(LUMOS_CFA_RGGB + k);
            if (cfa == LUMOS_CFA_NONE)
                return usage();
        } else if (!strcmp(argv[i], "--black") && i + 1 < argc) {
            if (parse_level(argv[++i], &black))
                return usage();
        } else if (!strcmp(argv[i], "--white") && i + 1 < argc) {
            if (parse_level(argv[++i], &white))
                return usage();
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return usage();
        } else if (!in) {
            in = argv[i];
        } else if (!out) {
            out = argv[i];
        } else {
            return usage();
        }
    }
    if (!in || !out)
        return usage();
    /* Fewer than ~64 levels would make the test measure quantisation. */
    if (white < black + 64.0f) {
        fprintf(stderr, "mkdng: --white must exceed --black by at least 64\n");
        return 2;
    }

    lumos_ctx *ctx = lumos_ctx_new();
    if (!ctx) {
        fprintf(stderr, "mkdng: out of memory\n");
        return 1;
    }
    lumos_image img;
    int st = lumos_image_read(ctx, in, &img);
    if (st != LUMOS_OK) {
        fprintf(stderr, "mkdng: %s: %s\n", lumos_strerror(st), lumos_last_error(ctx));
        lumos_ctx_free(ctx);
        return 1;
    }
    int rc = 1;
    if (img.channels != 3) {
        fprintf(stderr, "mkdng: %s: not an RGB image\n", in);
    } else {
        const float blacks[4] = {black, black, black, black};
        const float neutral[3] = {1.0f, 1.0f, 1.0f};
        uint16_t *mosaic = lumos_test_mosaic_from_image(&img, cfa, blacks, white);
        if (!mosaic)
            fprintf(stderr, "mkdng: out of memory\n");
        else if (lumos_test_write_bayer_dng(out, mosaic, img.width, img.height, cfa, blacks, white,
                                            lumos_test_xyz_to_srgb, neutral, 1) == 0)
            rc = 0;
        free(mosaic);
    }
    lumos_image_free(&img);
    lumos_ctx_free(ctx);
    return rc;
}
