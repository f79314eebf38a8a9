/* test_dng_paths.c — orientation and the non-Bayer fallback, on DNGs made
 * by tests/tools/dng_writer.c (camera space = linear sRGB).
 *
 *  - a Bayer DNG tagged orientation 6 (and 3, 8) is written upright: the
 *    output has the rotated size and the picture is turned the right way;
 *  - a LinearRaw (demosaiced, non-Bayer) DNG goes through LibRaw's own
 *    processing with a notice, and comes out as the picture it holds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "lumos.h"
#include "tools/dng_writer.h"


enum { W = 320, H = 200 };
static const float black[4] = {256, 256, 256, 256}, white = 16383, neutral[3] = {1, 1, 1};

/* The scene: red grows to the right, green grows downwards, blue constant. */
static void scene(int x, int y, float rgb[3])
{
    rgb[0] = 0.05f + 0.9f * (float)x / (W - 1);
    rgb[1] = 0.05f + 0.9f * (float)y / (H - 1);
    rgb[2] = 0.3f;
}

static uint16_t level(float linear) { return (uint16_t)lrintf(black[0] + linear * (white - black[0])); }

/* Mean of channel c over a 9×9 block centred on (x, y) of a 16-bit image. */
static double block_mean(const lumos_image *img, int x, int y, int c)
{
    double s = 0;
    for (int dy = -4; dy <= 4; dy++)
        for (int dx = -4; dx <= 4; dx++) {
            const uint16_t *row = (const uint16_t *)((const uint8_t *)img->data +
                                                     (size_t)(y + dy) * img->stride);
            s += row[(x + dx) * 3 + c];
        }
    return s / 81 / 65535.0;
}

static void notice(void *user, const char *msg)
{
    snprintf(user, 512, "%s", msg);
}

static void test_orientation(lumos_ctx *ctx, const char *dir)
{
    uint16_t *m = malloc((size_t)W * H * 2);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float rgb[3];
            scene(x, y, rgb);
            m[y * W + x] = level(rgb[lumos_test_cfa_color(LUMOS_CFA_RGGB, x, y)]);
        }
    /* orientation, output size, and where the sensor's top-left corner lands */
    const struct { int o, w, h; } cases[] = {{1, W, H}, {3, W, H}, {6, H, W}, {8, H, W}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char dng[512], png[512];
        snprintf(dng, sizeof dng, "%s/o%d.dng", dir, cases[k].o);
        snprintf(png, sizeof png, "%s/o%d.png", dir, cases[k].o);
        CHECK(lumos_test_write_bayer_dng(dng, m, W, H, LUMOS_CFA_RGGB, black, white,
                                         lumos_test_xyz_to_srgb, neutral, cases[k].o) == 0,
              "write %s", dng);
        lumos_convert_options co;
        lumos_convert_options_init(&co);
        co.isp.bits = 16;
        co.isp.tone = 0;
        co.isp.linear = 1;
        int rc = lumos_convert_file(ctx, dng, png, &co);
        CHECK(rc == LUMOS_OK, "convert %s: %s", dng, lumos_last_error(ctx));
        lumos_image img;
        if (rc || lumos_image_read(ctx, png, &img) != LUMOS_OK) { failures++; continue; }
        CHECK(img.width == cases[k].w && img.height == cases[k].h, "orientation %d: %dx%d",
              cases[k].o, img.width, img.height);
        if (img.width == cases[k].w && img.height == cases[k].h) {
            /* Find the sensor's top-left (least red, least green) among the
             * four output corners; it must be where the orientation puts it. */
            int cx[4] = {8, img.width - 9, 8, img.width - 9};
            int cy[4] = {8, 8, img.height - 9, img.height - 9};
            int best = 0;
            double best_v = 1e9;
            for (int i = 0; i < 4; i++) {
                double v = block_mean(&img, cx[i], cy[i], 0) + block_mean(&img, cx[i], cy[i], 1);
                if (v < best_v) { best_v = v; best = i; }
            }
            /* 1: top-left; 3 (180°): bottom-right; 6 (90° CW): top-right; 8: bottom-left */
            int want = cases[k].o == 1 ? 0 : cases[k].o == 3 ? 3 : cases[k].o == 6 ? 1 : 2;
            CHECK(best == want, "orientation %d: sensor origin at corner %d, wanted %d",
                  cases[k].o, best, want);
            /* and the colour there is the scene's (linear output, camera = sRGB) */
            float rgb[3];
            scene(8, 8, rgb);
            double r = block_mean(&img, cx[best], cy[best], 0);
            CHECK(fabs(r - rgb[0]) < 0.02, "orientation %d: red %.3f, scene %.3f", cases[k].o,
                  r, rgb[0]);
            lumos_image_free(&img);
        }
        unlink(dng);
        unlink(png);
    }
    free(m);
    printf("orientation: 1, 3, 6, 8 written upright\n");
}

static void test_linear_dng_fallback(lumos_ctx *ctx, const char *dir)
{
    uint16_t *rgb = malloc((size_t)W * H * 3 * 2);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float v[3];
            scene(x, y, v);
            for (int c = 0; c < 3; c++) rgb[(y * W + x) * 3 + c] = level(v[c]);
        }
    char dng[512];
    snprintf(dng, sizeof dng, "%s/linear.dng", dir);
    const float blk3[3] = {black[0], black[1], black[2]};
    CHECK(lumos_test_write_linear_dng(dng, rgb, W, H, blk3, white, lumos_test_xyz_to_srgb,
                                      neutral, 1) == 0, "write %s", dng);
    char said[512] = "";
    lumos_ctx_set_notice(ctx, notice, said);
    lumos_raw *raw = NULL;
    int rc = lumos_raw_open_file(ctx, dng, &raw);
    CHECK(rc == LUMOS_OK, "open linear DNG: %s", lumos_last_error(ctx));
    if (rc == LUMOS_OK) {
        CHECK(!lumos_raw_get_info(raw)->is_bayer && lumos_raw_get_info(raw)->cfa == LUMOS_CFA_NONE,
              "a LinearRaw DNG reported as Bayer");
        CHECK(lumos_raw_mosaic(raw, NULL) == NULL, "a LinearRaw DNG has a mosaic");
        lumos_isp_options o;
        lumos_isp_options_init(&o);
        o.bits = 16;
        o.linear = 1;
        lumos_image img;
        rc = lumos_isp_classic(ctx, raw, &o, &img);
        CHECK(rc == LUMOS_OK, "fallback ISP: %s", lumos_last_error(ctx));
        CHECK(strstr(said, "LibRaw") != NULL, "no notice of the fallback (got '%s')", said);
        if (rc == LUMOS_OK) {
            CHECK(img.width == W && img.height == H, "fallback size %dx%d", img.width, img.height);
            double worst = 0;
            for (int y = 8; y < H - 8; y += 16)
                for (int x = 8; x < W - 8; x += 16) {
                    float v[3];
                    scene(x, y, v);
                    for (int c = 0; c < 3; c++) {
                        double d = fabs(block_mean(&img, x, y, c) - v[c]);
                        if (d > worst) worst = d;
                    }
                }
            printf("linear DNG through LibRaw: max deviation from the scene %.4f\n", worst);
            CHECK(worst < 0.02, "fallback colours off by %.4f", worst);
            lumos_image_free(&img);
        }
        lumos_raw_free(raw);
    }
    lumos_ctx_set_notice(ctx, NULL, NULL);
    if (!getenv("KEEP")) unlink(dng);
    free(rgb);
}

int main(void)
{
    char dir[] = "/tmp/lumos-dng-XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    lumos_ctx *ctx = lumos_ctx_new();
    test_orientation(ctx, dir);
    test_linear_dng_fallback(ctx, dir);
    lumos_ctx_free(ctx);
    rmdir(dir);
    printf("%s\n", failures ? "FAILED" : "Success!");
    return failures ? 1 : 0;
}
