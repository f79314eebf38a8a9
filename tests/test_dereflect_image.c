/* test_dereflect_image — lumos_dereflect_image, the public entry point of
 * reflection removal (pipeline/dereflect.c), against the stages it wraps:
 *
 * - 8-bit RGB: exactly the classical stage's result on the same floats,
 *   quantised; 16-bit RGBA: the same at 16 bits, alpha copied bit for bit,
 *   and at opt.bits 8; gray: the RGB result of three equal channels;
 *   float: NaN, infinities and values beyond 0..1 give samples in 0..1;
 *   1×1 gives the input back;
 * - the "uhd" network with random weights (lumos__net_from_flat): exactly
 *   the network stage's clamped result, the same with a small tile (skipped
 *   without AVX2+FMA, as the stage is);
 * - refusals: bad options, linear light, a network of another task, no
 *   default weights, images beyond a method's size limit or the machine's
 *   memory (checked before anything is read or allocated). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "lumos.h"
#include "pipeline/learned.h"
#include "stages/dereflect_classic.h"
#include "stages/dereflect_net.h"

enum { W = 64, H = 48 };

/* A scene (ramps and edges) plus a faint blurred-looking second layer. */
static float scene(int x, int y, int c)
{
    float t = 0.35f + 0.25f * sinf(0.3f * x + 0.1f * c) + ((x / 8 + y / 6) % 2 ? 0.2f : 0.f);
    float r = 0.15f * (1.f + sinf(0.05f * (x + 2 * y) + c));
    float v = t + r;
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

static lumos_image make_image(int channels, int bits)
{
    lumos_image im;
    if (lumos_image_alloc(&im, W, H, channels, bits)) exit(1);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < channels; c++) {
                float v = c < 3 ? scene(x, y, channels < 3 ? 0 : c) : (float)((x + y) % 7) / 6.f;
                size_t i = (size_t)y * im.stride / (bits / 8) + (size_t)x * channels + c;
                if (bits == 8) ((uint8_t *)im.data)[i] = (uint8_t)lrintf(v * 255.f);
                else if (bits == 16) ((uint16_t *)im.data)[i] = (uint16_t)lrintf(v * 65535.f);
                else ((float *)im.data)[i] = v;
            }
    return im;
}

/* The first three samples of each pixel (gray repeated) as 0..1 floats. */
static float *to_rgb(const lumos_image *im)
{
    float *rgb = malloc((size_t)im->width * im->height * 3 * sizeof *rgb);
    if (!rgb) exit(1);
    for (int y = 0; y < im->height; y++)
        for (int x = 0; x < im->width; x++)
            for (int c = 0; c < 3; c++) {
                size_t i = (size_t)y * im->stride / (im->bits / 8) + (size_t)x * im->channels +
                           (im->channels < 3 ? 0 : c);
                float v = im->bits == 8    ? ((uint8_t *)im->data)[i] / 255.f
                          : im->bits == 16 ? ((uint16_t *)im->data)[i] / 65535.f
                                           : ((float *)im->data)[i];
                rgb[((size_t)y * im->width + x) * 3 + c] = v;
            }
    return rgb;
}

static double sample(const lumos_image *im, int x, int y, int c)
{
    size_t i = (size_t)y * im->stride / (im->bits / 8) + (size_t)x * im->channels + c;
    return im->bits == 8 ? ((uint8_t *)im->data)[i]
           : im->bits == 16 ? ((uint16_t *)im->data)[i]
                            : ((float *)im->data)[i];
}

/* Max |out - quantised expected| over the first `colours` channels. */
static double max_diff(const lumos_image *out, const float *expect, int colours)
{
    /* in float, as the library rounds */
    float scale = out->bits == 8 ? 255.f : out->bits == 16 ? 65535.f : 1.f;
    double worst = 0;
    for (int y = 0; y < out->height; y++)
        for (int x = 0; x < out->width; x++)
            for (int c = 0; c < colours; c++) {
                const float *e = expect + ((size_t)y * out->width + x) * 3;
                float want = colours == 1 ? (e[0] + e[1] + e[2]) / 3.f : e[c];
                want = want > 0 ? (want < 1 ? want : 1) : 0;
                if (out->bits != 32) want = (float)lrintf(want * scale);
                double d = fabs(sample(out, x, y, c) - want);
                if (d > worst) worst = d;
            }
    return worst;
}

static void test_classic(lumos_ctx *ctx)
{
    lumos_dereflect_options opt;
    lumos_dereflect_options_init(&opt);
    CHECK(!strcmp(opt.net_name, LUMOS_DEREFLECT_DEFAULT), "default %s", opt.net_name);

    /* 8-bit RGB: the stage's result, quantised */
    lumos_image in = make_image(3, 8), out;
    float *rgb = to_rgb(&in);
    CHECK(lumos__dereflect_classic(ctx, rgb, W, H, LUMOS__DEREFLECT_CLASSIC_H,
                                   LUMOS__DEREFLECT_CLASSIC_EPS, rgb) == 0, "stage");
    int rc = lumos_dereflect_image(ctx, &in, &opt, &out);
    CHECK(rc == LUMOS_OK, "rgb8: %s", lumos_last_error(ctx));
    if (rc == LUMOS_OK) {
        CHECK(out.width == W && out.height == H && out.channels == 3 && out.bits == 8 &&
                  out.space == in.space, "rgb8 layout");
        double d = max_diff(&out, rgb, 3);
        CHECK(d == 0, "rgb8 differs from the stage by %g", d);
        int changed = 0;
        for (size_t i = 0; i < (size_t)W * H * 3; i++)
            changed += ((uint8_t *)out.data)[i] != ((uint8_t *)in.data)[i];
        CHECK(changed > W * H / 4, "rgb8: only %d samples changed", changed);
    }
    lumos_image_free(&out);

    /* gray: as three equal channels, written back as their mean */
    lumos_image gray = make_image(1, 8);
    float *grgb = to_rgb(&gray);
    lumos__dereflect_classic(ctx, grgb, W, H, LUMOS__DEREFLECT_CLASSIC_H,
                             LUMOS__DEREFLECT_CLASSIC_EPS, grgb);
    rc = lumos_dereflect_image(ctx, &gray, &opt, &out);
    CHECK(rc == LUMOS_OK && out.channels == 1 && out.bits == 8, "gray: %s", lumos_last_error(ctx));
    if (rc == LUMOS_OK) CHECK(max_diff(&out, grgb, 1) == 0, "gray differs");
    lumos_image_free(&out);
    free(grgb);
    lumos_image_free(&gray);

    /* 16-bit RGBA: 16-bit out, alpha as it was; opt.bits 8 quantises the same floats */
    lumos_image rgba = make_image(4, 16);
    float *frgba = to_rgb(&rgba);
    lumos__dereflect_classic(ctx, frgba, W, H, LUMOS__DEREFLECT_CLASSIC_H,
                             LUMOS__DEREFLECT_CLASSIC_EPS, frgba);
    rc = lumos_dereflect_image(ctx, &rgba, &opt, &out);
    CHECK(rc == LUMOS_OK && out.channels == 4 && out.bits == 16, "rgba16: %s", lumos_last_error(ctx));
    if (rc == LUMOS_OK) {
        CHECK(max_diff(&out, frgba, 3) == 0, "rgba16 differs");
        int alpha_bad = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) alpha_bad += sample(&out, x, y, 3) != sample(&rgba, x, y, 3);
        CHECK(!alpha_bad, "%d alpha samples changed", alpha_bad);
    }
    lumos_image_free(&out);
    opt.bits = 8;
    rc = lumos_dereflect_image(ctx, &rgba, &opt, &out);
    CHECK(rc == LUMOS_OK && out.bits == 8, "rgba16 -> 8: %s", lumos_last_error(ctx));
    if (rc == LUMOS_OK) {
        CHECK(max_diff(&out, frgba, 3) == 0, "rgba16 -> 8 differs");
        CHECK(fabs(sample(&out, 5, 7, 3) - lrint(sample(&rgba, 5, 7, 3) / 257.0)) == 0, "alpha -> 8");
    }
    lumos_image_free(&out);
    opt.bits = 0;
    free(frgba);
    lumos_image_free(&rgba);

    /* float: anything in, 0..1 out (NaN as 0) */
    lumos_image f = make_image(3, 32);
    float *fd = f.data;
    fd[0] = NAN, fd[1] = INFINITY, fd[2] = -INFINITY, fd[3] = -1, fd[4] = 2;
    rc = lumos_dereflect_image(ctx, &f, &opt, &out);
    CHECK(rc == LUMOS_OK && out.bits == 32, "float: %s", lumos_last_error(ctx));
    int bad = 0;
    for (size_t i = 0; rc == LUMOS_OK && i < (size_t)W * H * 3; i++) {
        float v = ((float *)out.data)[i];
        bad += !(v >= 0 && v <= 1);
    }
    CHECK(!bad, "float: %d samples outside 0..1", bad);
    lumos_image_free(&out);
    lumos_image_free(&f);

    /* 1×1: nothing to remove */
    lumos_image one;
    lumos_image_alloc(&one, 1, 1, 3, 16);
    ((uint16_t *)one.data)[0] = 1000, ((uint16_t *)one.data)[1] = 40000, ((uint16_t *)one.data)[2] = 65535;
    rc = lumos_dereflect_image(ctx, &one, &opt, &out);
    CHECK(rc == LUMOS_OK && !memcmp(out.data, one.data, 6), "1x1: %s", lumos_last_error(ctx));
    lumos_image_free(&out);
    lumos_image_free(&one);

    /* the thresholds reach the stage: a larger h removes more */
    opt.h = 0.2f;
    rc = lumos_dereflect_image(ctx, &in, &opt, &out);
    CHECK(rc == LUMOS_OK, "h 0.2: %s", lumos_last_error(ctx));
    if (rc == LUMOS_OK) {
        float *again = to_rgb(&in);
        lumos__dereflect_classic(ctx, again, W, H, 0.2f, LUMOS__DEREFLECT_CLASSIC_EPS, again);
        CHECK(max_diff(&out, again, 3) == 0, "h 0.2 differs from the stage");
        free(again);
    }
    lumos_image_free(&out);
    free(rgb);
    lumos_image_free(&in);
}

static void test_net(lumos_ctx *ctx)
{
    const lumos__net_def *def = lumos__net_find("uhd");
    CHECK(def != NULL, "no uhd network in the registry");
    if (!def) return;
    size_t n = lumos__net_weight_count(def);
    float *w = malloc(n * sizeof *w);
    uint32_t seed = 7;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        w[i] = ((seed >> 8) / 16777216.f - 0.5f) * 0.2f;
    }
    lumos_net *net = NULL;
    CHECK(lumos__net_from_flat(ctx, def, w, n, &net) == 0, "net: %s", lumos_last_error(ctx));
    free(w);
    if (!net) return;

    lumos_dereflect_options opt;
    lumos_dereflect_options_init(&opt);
    opt.net = net;
    lumos_image in = make_image(3, 8), out, tiled;
    float *rgb = to_rgb(&in), *t = malloc((size_t)W * H * 3 * sizeof *t);
    size_t count;
    int rc = lumos__dereflect_net(ctx, def, lumos__net_flat(net, &count), rgb, W, H, 0, 0, t);
    if (rc == LUMOS_E_UNSUPPORTED) {
        printf("note: %s: the network path is not checked\n", lumos_last_error(ctx));
    } else {
        CHECK(rc == LUMOS_OK, "net stage: %s", lumos_last_error(ctx));
        rc = lumos_dereflect_image(ctx, &in, &opt, &out);
        CHECK(rc == LUMOS_OK && out.channels == 3 && out.bits == 8, "uhd: %s", lumos_last_error(ctx));
        if (rc == LUMOS_OK) CHECK(max_diff(&out, t, 3) == 0, "uhd differs from the stage");
        opt.tile = 16;
        rc = lumos_dereflect_image(ctx, &in, &opt, &tiled);
        CHECK(rc == LUMOS_OK, "uhd tile 16: %s", lumos_last_error(ctx));
        if (rc == LUMOS_OK) CHECK(!memcmp(out.data, tiled.data, (size_t)W * H * 3), "tiles differ");
        lumos_image_free(&out);
        lumos_image_free(&tiled);
        opt.tile = 0;
    }
    free(t);
    free(rgb);

    /* beyond the machine's memory: refused before anything is read (the
     * pixels here are a few bytes) */
    unsigned char dummy[16] = {0};
    lumos_image huge = {65536, 65536, 3, 8, (size_t)65536 * 3, dummy, LUMOS_SPACE_SRGB};
    double have = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (have < 100e9) {
        rc = lumos_dereflect_image(ctx, &huge, &opt, &out);
        CHECK(rc == LUMOS_E_NOMEM && strstr(lumos_last_error(ctx), "GiB"), "huge: %d %s", rc,
              lumos_last_error(ctx));
        CHECK(out.data == NULL, "huge: an output");
    }
    huge.width = 65537, huge.stride = (size_t)65537 * 3;
    rc = lumos_dereflect_image(ctx, &huge, &opt, &out);
    CHECK(rc == LUMOS_E_UNSUPPORTED, "65537 wide: %d %s", rc, lumos_last_error(ctx));

    /* a network of another task */
    lumos_net *isp = NULL;
    const lumos__net_def *eff = lumos__net_find("efficient");
    float *zeros = eff ? calloc(lumos__net_weight_count(eff), sizeof *zeros) : NULL;
    if (zeros && lumos__net_from_flat(ctx, eff, zeros, lumos__net_weight_count(eff), &isp) == 0) {
        opt.net = isp;
        rc = lumos_dereflect_image(ctx, &in, &opt, &out);
        CHECK(rc == LUMOS_E_ARG && strstr(lumos_last_error(ctx), "task"), "isp net: %d %s", rc,
              lumos_last_error(ctx));
    }
    free(zeros);
    lumos_net_free(isp);
    lumos_net_free(net);
    lumos_image_free(&in);
}

static void test_refusals(lumos_ctx *ctx)
{
    lumos_dereflect_options opt;
    lumos_dereflect_options_init(&opt);
    lumos_image in = make_image(3, 8), out;
    memset(&out, 0x55, sizeof out);
    CHECK(lumos_dereflect_image(ctx, NULL, &opt, &out) == LUMOS_E_ARG, "NULL in");
    CHECK(out.data == NULL, "out not cleared");
    CHECK(lumos_dereflect_image(ctx, &in, NULL, &out) == LUMOS_E_ARG, "NULL opt");
    opt.bits = 12;
    CHECK(lumos_dereflect_image(ctx, &in, &opt, &out) == LUMOS_E_ARG, "12 bits");
    opt.bits = 0, opt.h = -1;
    CHECK(lumos_dereflect_image(ctx, &in, &opt, &out) == LUMOS_E_ARG, "h -1");
    opt.h = NAN;
    CHECK(lumos_dereflect_image(ctx, &in, &opt, &out) == LUMOS_E_ARG, "h NaN");
    opt.h = 0, opt.tile = 12;
    CHECK(lumos_dereflect_image(ctx, &in, &opt, &out) == LUMOS_E_ARG, "tile 12");
    opt.tile = 0;
    in.space = LUMOS_SPACE_LINEAR_SRGB;
    CHECK(lumos_dereflect_image(ctx, &in, &opt, &out) == LUMOS_E_UNSUPPORTED, "linear light");
    in.space = LUMOS_SPACE_SRGB;
    lumos_image bad = in;
    bad.stride = 10;
    CHECK(lumos_dereflect_image(ctx, &bad, &opt, &out) == LUMOS_E_ARG, "short rows");

    /* networks by name: unknown, and uhd with no shipped weights */
    opt.net_name = "nosuch";
    CHECK(lumos_dereflect_image(ctx, &in, &opt, &out) == LUMOS_E_ARG, "unknown network");
    setenv("LUMOS_DATA_DIR", "/nonexistent-lumos-data", 1);
    opt.net_name = "uhd";
    int rc = lumos_dereflect_image(ctx, &in, &opt, &out);
    CHECK(rc == LUMOS_E_UNSUPPORTED && strstr(lumos_last_error(ctx), "no default weights"),
          "uhd without weights: %d %s", rc, lumos_last_error(ctx));
    unsetenv("LUMOS_DATA_DIR");

    /* beyond the classical method's 715 megapixels: refused, nothing read */
    opt.net_name = "classic";
    unsigned char dummy[16] = {0};
    lumos_image huge = {30000, 30000, 3, 8, 90000, dummy, LUMOS_SPACE_SRGB};
    rc = lumos_dereflect_image(ctx, &huge, &opt, &out);
    CHECK(rc == LUMOS_E_UNSUPPORTED && strstr(lumos_last_error(ctx), "30000x30000"), "classic limit: %d %s",
          rc, lumos_last_error(ctx));
    lumos_image_free(&in);
}

int main(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    if (!ctx) return 1;
    lumos_ctx_set_threads(ctx, 2);
    test_classic(ctx);
    test_net(ctx);
    test_refusals(ctx);
    lumos_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "Success!");
    return failures ? 1 : 0;
}
