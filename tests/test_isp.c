/* test_isp.c — the classical ISP against plain-C references.
 *
 *  - half-size mode (no demosaic) against a naive per-pixel reference of the
 *    whole colour path: black, white balance, clip, matrix, exposure, tone,
 *    sRGB transfer, quantisation — for all four CFA patterns, 8 and 16 bits;
 *  - full-size mode on flat fields: every pixel equals the reference colour;
 *  - a saturated patch comes out neutral white (no magenta highlights);
 *  - any size works: 1×1, odd, just below and above the tile sizes;
 *  - thread count does not change a single output value;
 *  - gray-world white balance makes a coloured flat field neutral.
 * With --baseline the pipelines run their SSE4.1 fallback code (the run-time
 * dispatch is told the CPU has no AVX2/FMA), so both paths are checked. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <HalideRuntime.h>

#include "check.h"
#include "lumos.h"


static uint32_t rng = 12345;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static const lumos_cfa patterns[4] = {LUMOS_CFA_RGGB, LUMOS_CFA_BGGR, LUMOS_CFA_GRBG,
                                      LUMOS_CFA_GBRG};
static const char *pattern_names[4] = {"RGGB", "BGGR", "GRBG", "GBRG"};

/* Colour (0 R, 1 G, 2 B) of site (x, y), straight from the pattern's name. */
static int site_color(lumos_cfa cfa, int x, int y)
{
    const char *name = pattern_names[cfa == LUMOS_CFA_RGGB ? 0 : cfa == LUMOS_CFA_BGGR ? 1
                                     : cfa == LUMOS_CFA_GRBG ? 2 : 3];
    char ch = name[(y & 1) * 2 + (x & 1)];
    return ch == 'R' ? 0 : ch == 'G' ? 1 : 2;
}

static void test_info(lumos_raw_info *in, lumos_cfa cfa)
{
    memset(in, 0, sizeof *in);
    in->cfa = cfa;
    in->black[0] = 256; in->black[1] = 250; in->black[2] = 260; in->black[3] = 255;
    in->white = 4095;
    in->wb_as_shot[0] = 2.0f; in->wb_as_shot[1] = 1.0f; in->wb_as_shot[2] = 1.5f;
    const float m[3][3] = {{1.6f, -0.4f, -0.2f}, {-0.2f, 1.5f, -0.3f}, {0.05f, -0.45f, 1.4f}};
    memcpy(in->cam_to_srgb, m, sizeof m);
    in->orientation = 1;
}

static double srgb_encode(double v)
{
    return v <= 0.0031308 ? 12.92 * v : 1.055 * pow(v, 1 / 2.4) - 0.055;
}

/* The colour path after demosaic, for one camera-RGB triple in [0,1]. */
static void reference_color(const lumos_raw_info *in, const lumos_isp_options *o,
                            const double cam[3], double out[3])
{
    for (int c = 0; c < 3; c++) {
        double lin = 0;
        for (int k = 0; k < 3; k++) lin += (o->camera_space ? (c == k) : in->cam_to_srgb[c][k]) * cam[k];
        lin = fmax(lin, 0) * exp2(o->exposure_ev);
        double v = fmin(fmax(lin, 0), 1);
        if (!o->linear) {
            double e = srgb_encode(v), a = 0.6 * o->tone;
            v = e + a * e * (1 - e) * (2 * e - 1);
        }
        out[c] = fmin(fmax(v, 0), 1);
    }
}

/* Normalised, white-balanced, clipped sample at site (x, y). */
static double reference_norm(const lumos_raw_info *in, const float gains[3], uint16_t v, int x, int y)
{
    float gmin = fminf(gains[0], fminf(gains[1], gains[2]));
    int site = (y & 1) * 2 + (x & 1);
    double n = fmax((double)v - in->black[site], 0) * gains[site_color(in->cfa, x, y)] / gmin /
               (in->white - in->black[site]);
    return fmin(n, 1);
}

static double sample(const lumos_image *img, int x, int y, int c)
{
    const uint8_t *row = (const uint8_t *)img->data + (size_t)y * img->stride;
    return img->bits == 8 ? row[x * 3 + c] / 255.0 : ((const uint16_t *)row)[x * 3 + c] / 65535.0;
}

static lumos_raw *make_raw(lumos_ctx *ctx, const uint16_t *m, int w, int h, const lumos_raw_info *in)
{
    lumos_raw *raw = NULL;
    int rc = lumos_raw_from_mosaic(ctx, m, w, h, (size_t)w * 2, in, &raw);
    CHECK(rc == LUMOS_OK, "lumos_raw_from_mosaic: %s", lumos_last_error(ctx));
    return raw;
}

static void test_half_reference(lumos_ctx *ctx)
{
    const int w = 301, h = 203; /* odd: the last column and row are dropped */
    uint16_t *m = malloc((size_t)w * h * 2);
    for (int i = 0; i < w * h; i++) m[i] = (uint16_t)(200 + next_rand() % 4000);
    for (int p = 0; p < 4; p++)
        for (int bits = 8; bits <= 16; bits += 8) {
            lumos_raw_info in;
            test_info(&in, patterns[p]);
            lumos_raw *raw = make_raw(ctx, m, w, h, &in);
            lumos_isp_options o;
            lumos_isp_options_init(&o);
            o.half = 1;
            o.bits = bits;
            o.exposure_ev = 0.5f;
            o.tone = p * 0.3f;
            lumos_image img;
            int rc = lumos_isp_classic(ctx, raw, &o, &img);
            CHECK(rc == LUMOS_OK, "half %s: %s", pattern_names[p], lumos_last_error(ctx));
            if (rc) { lumos_raw_free(raw); continue; }
            CHECK(img.width == w / 2 && img.height == h / 2, "half size %dx%d", img.width, img.height);
            double worst = 0;
            for (int y = 0; y < img.height; y++)
                for (int x = 0; x < img.width; x++) {
                    double cam[3] = {0, 0, 0}, ref[3];
                    for (int s = 0; s < 4; s++) {
                        int sx = 2 * x + (s & 1), sy = 2 * y + (s >> 1);
                        int c = site_color(in.cfa, sx, sy);
                        cam[c] += (c == 1 ? 0.5 : 1.0) *
                                  reference_norm(&in, in.wb_as_shot, m[sy * w + sx], sx, sy);
                    }
                    reference_color(&in, &o, cam, ref);
                    for (int c = 0; c < 3; c++) {
                        double d = fabs(sample(&img, x, y, c) - ref[c]);
                        if (d > worst) worst = d;
                    }
                }
            double lsb = bits == 8 ? 1 / 255.0 : 1 / 65535.0;
            printf("half %s %2d-bit: max error %.2f LSB\n", pattern_names[p], bits, worst / lsb);
            CHECK(worst <= (bits == 8 ? 1.0 : 4.0) * lsb, "half %s %d-bit: max error %.2f LSB",
                  pattern_names[p], bits, worst / lsb);
            lumos_image_free(&img);
            lumos_raw_free(raw);
        }
    free(m);
}

/* A flat field of camera colour `cam` (before WB) demosaics to that colour. */
static void test_flat_field(lumos_ctx *ctx)
{
    const int w = 260, h = 150;
    uint16_t *m = malloc((size_t)w * h * 2);
    const double raw_level[3] = {900, 2100, 1300};
    for (int p = 0; p < 4; p++) {
        lumos_raw_info in;
        test_info(&in, patterns[p]);
        for (int s = 0; s < 4; s++) in.black[s] = 256; /* one level: an exact reference */
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                m[y * w + x] = (uint16_t)(raw_level[site_color(in.cfa, x, y)] + in.black[(y & 1) * 2 + (x & 1)]);
        lumos_raw *raw = make_raw(ctx, m, w, h, &in);
        lumos_isp_options o;
        lumos_isp_options_init(&o);
        o.bits = 16;
        o.sharpen = 1.0f; /* flat: sharpening must change nothing */
        lumos_image img;
        int rc = lumos_isp_classic(ctx, raw, &o, &img);
        CHECK(rc == LUMOS_OK, "flat %s: %s", pattern_names[p], lumos_last_error(ctx));
        if (rc) { lumos_raw_free(raw); continue; }
        double cam[3], ref[3], worst = 0;
        float gmin = fminf(in.wb_as_shot[0], fminf(in.wb_as_shot[1], in.wb_as_shot[2]));
        for (int c = 0; c < 3; c++)
            cam[c] = fmin(raw_level[c] * in.wb_as_shot[c] / gmin / (in.white - in.black[0]), 1);
        reference_color(&in, &o, cam, ref);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    double d = fabs(sample(&img, x, y, c) - ref[c]);
                    if (d > worst) worst = d;
                }
        printf("flat %s: max deviation %.5f\n", pattern_names[p], worst);
        CHECK(worst < 0.004, "flat %s: max deviation %.5f", pattern_names[p], worst);
        lumos_image_free(&img);
        lumos_raw_free(raw);
    }
    free(m);
}

/* Saturated sites in every channel, with strong WB gains: the result must be
 * neutral (no magenta cast where green clipped first). */
static void test_highlights(lumos_ctx *ctx)
{
    const int w = 200, h = 200;
    uint16_t *m = malloc((size_t)w * h * 2);
    lumos_raw_info in;
    test_info(&in, LUMOS_CFA_RGGB);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int inside = x >= 60 && x < 140 && y >= 60 && y < 140;
            m[y * w + x] = inside ? 4095 : 1000;
        }
    lumos_raw *raw = make_raw(ctx, m, w, h, &in);
    lumos_isp_options o;
    lumos_isp_options_init(&o);
    lumos_image img;
    int rc = lumos_isp_classic(ctx, raw, &o, &img);
    CHECK(rc == LUMOS_OK, "highlights: %s", lumos_last_error(ctx));
    if (rc == LUMOS_OK) {
        int worst = 0;
        for (int y = 70; y < 130; y++)
            for (int x = 70; x < 130; x++) {
                const uint8_t *px = (const uint8_t *)img.data + y * img.stride + x * 3;
                int spread = abs(px[0] - px[1]) + abs(px[2] - px[1]);
                if (spread > worst) worst = spread;
                CHECK(px[1] >= 250, "clipped patch not white at %d,%d: %d %d %d", x, y, px[0], px[1], px[2]);
                if (px[1] < 250) { x = 130; y = 130; }
            }
        printf("highlights: channel spread in the clipped patch %d\n", worst);
        CHECK(worst <= 2, "clipped patch not neutral: spread %d", worst);
        lumos_image_free(&img);
    }
    lumos_raw_free(raw);
    free(m);
}

static void test_sizes(lumos_ctx *ctx)
{
    const int sizes[][2] = {{1, 1}, {2, 2}, {3, 5}, {7, 1}, {1, 9}, {63, 64}, {127, 129},
                            {128, 128}, {129, 33}, {255, 257}, {513, 67}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int w = sizes[i][0], h = sizes[i][1];
        uint16_t *m = malloc((size_t)w * h * 2);
        for (int k = 0; k < w * h; k++) m[k] = (uint16_t)(300 + next_rand() % 3000);
        lumos_raw_info in;
        test_info(&in, patterns[i % 4]);
        lumos_raw *raw = make_raw(ctx, m, w, h, &in);
        for (int half = 0; half <= 1; half++) {
            lumos_isp_options o;
            lumos_isp_options_init(&o);
            o.half = half;
            lumos_image img;
            int rc = lumos_isp_classic(ctx, raw, &o, &img);
            int ew = half ? (w / 2 ? w / 2 : 1) : w, eh = half ? (h / 2 ? h / 2 : 1) : h;
            CHECK(rc == LUMOS_OK, "%dx%d half=%d: %s", w, h, half, lumos_last_error(ctx));
            if (rc == LUMOS_OK) {
                CHECK(img.width == ew && img.height == eh, "%dx%d half=%d gave %dx%d", w, h,
                      half, img.width, img.height);
                lumos_image_free(&img);
            }
        }
        lumos_raw_free(raw);
        free(m);
    }
    printf("sizes: %zu shapes, full and half\n", sizeof sizes / sizeof sizes[0]);
}

static void test_threads_identical(void)
{
    const int w = 640, h = 480;
    uint16_t *m = malloc((size_t)w * h * 2);
    for (int k = 0; k < w * h; k++) m[k] = (uint16_t)(300 + next_rand() % 3000);
    lumos_raw_info in;
    test_info(&in, LUMOS_CFA_GBRG);
    lumos_image out[3];
    const int threads[3] = {1, 2, 5};
    for (int t = 0; t < 3; t++) {
        lumos_ctx *ctx = lumos_ctx_new();
        lumos_ctx_set_threads(ctx, threads[t]);
        lumos_raw *raw = make_raw(ctx, m, w, h, &in);
        lumos_isp_options o;
        lumos_isp_options_init(&o);
        o.bits = 16;
        o.sharpen = 0.5f;
        int rc = lumos_isp_classic(ctx, raw, &o, &out[t]);
        CHECK(rc == LUMOS_OK, "threads %d: %s", threads[t], lumos_last_error(ctx));
        lumos_raw_free(raw);
        lumos_ctx_free(ctx);
    }
    for (int t = 1; t < 3; t++)
        CHECK(memcmp(out[0].data, out[t].data, out[0].stride * (size_t)h) == 0,
              "%d threads differ from 1 thread", threads[t]);
    for (int t = 0; t < 3; t++) lumos_image_free(&out[t]);
    free(m);
}

static void test_auto_wb(lumos_ctx *ctx)
{
    const int w = 200, h = 160;
    uint16_t *m = malloc((size_t)w * h * 2);
    lumos_raw_info in;
    test_info(&in, LUMOS_CFA_GRBG);
    const double level[3] = {700, 1900, 1100}; /* a cast the camera WB does not undo */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            m[y * w + x] = (uint16_t)(level[site_color(in.cfa, x, y)] + in.black[(y & 1) * 2 + (x & 1)] +
                                      (next_rand() % 41) - 20);
    lumos_raw *raw = make_raw(ctx, m, w, h, &in);
    lumos_isp_options o;
    lumos_isp_options_init(&o);
    o.wb = LUMOS_WB_AUTO;
    o.camera_space = 1; /* the matrix would mix channels of a neutral anyway */
    lumos_image img;
    int rc = lumos_isp_classic(ctx, raw, &o, &img);
    CHECK(rc == LUMOS_OK, "auto WB: %s", lumos_last_error(ctx));
    if (rc == LUMOS_OK) {
        double mean[3] = {0, 0, 0};
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) mean[c] += sample(&img, x, y, c) / (w * h);
        printf("auto WB: mean R %.4f G %.4f B %.4f\n", mean[0], mean[1], mean[2]);
        CHECK(fabs(mean[0] - mean[1]) < 0.01 && fabs(mean[2] - mean[1]) < 0.01,
              "gray world left a cast: %.4f %.4f %.4f", mean[0], mean[1], mean[2]);
        lumos_image_free(&img);
    }
    lumos_raw_free(raw);
    free(m);
}

static void test_bad_options(lumos_ctx *ctx)
{
    uint16_t m[64 * 64] = {0};
    lumos_raw_info in;
    test_info(&in, LUMOS_CFA_RGGB);
    lumos_raw *raw = make_raw(ctx, m, 64, 64, &in);
    lumos_isp_options o;
    lumos_image img;
    lumos_isp_options_init(&o);
    o.bits = 12;
    CHECK(lumos_isp_classic(ctx, raw, &o, &img) == LUMOS_E_ARG, "bits 12 accepted");
    lumos_isp_options_init(&o);
    o.wb = LUMOS_WB_USER;
    o.wb_user[1] = 0;
    CHECK(lumos_isp_classic(ctx, raw, &o, &img) == LUMOS_E_ARG, "zero WB gain accepted");
    lumos_raw_free(raw);
    in.black[2] = 5000;
    lumos_raw *bad = NULL;
    CHECK(lumos_raw_from_mosaic(ctx, m, 64, 64, 128, &in, &bad) == LUMOS_E_ARG,
          "black above white accepted");
}

static int feature_queries = 0;
static int no_features(int count, const uint64_t *features)
{
    (void)count;
    (void)features;
    feature_queries++;
    return 0;
}

int main(int argc, char **argv)
{
    int baseline = argc > 1 && !strcmp(argv[1], "--baseline");
    if (baseline) halide_set_custom_can_use_target_features(no_features);
    lumos_ctx *ctx = lumos_ctx_new();
    test_half_reference(ctx);
    test_flat_field(ctx);
    test_highlights(ctx);
    test_sizes(ctx);
    test_threads_identical();
    test_auto_wb(ctx);
    test_bad_options(ctx);
    lumos_ctx_free(ctx);
    if (baseline) {
        printf("baseline path: %d feature queries answered 'none'\n", feature_queries);
        CHECK(feature_queries > 0, "the run-time dispatch never asked: baseline not exercised");
    }
    printf("%s\n", failures ? "FAILED" : "Success!");
    return failures ? 1 : 0;
}
