/* learned_runner.c — times lumos_isp_learned for bench/learned_speed.py,
 * which compiles it into its temp dir (it is not part of the main build).
 *
 *   learned_runner NET WEIGHTS MOSAIC W H B0 B1 B2 B3 WHITE WARMUP RUNS THREADS OUT
 *
 * NET: efficient | robust | rmfa. MOSAIC: W×H little-endian uint16, RGGB;
 * B0..B3 the black level of each site of the 2×2 block, row by row.
 * WARMUP untimed calls, then RUNS timed calls of lumos_isp_learned
 * (8-bit output; the call alone, the image freed outside the clock), each
 * printed as "time_s SECONDS". OUT gets the last output, W×H×3 bytes (RGB
 * interleaved, no padding), for the agreement check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lumos.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int fail(lumos_ctx *ctx, const char *what)
{
    fprintf(stderr, "learned_runner: %s: %s\n", what, ctx ? lumos_last_error(ctx) : "");
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 15) {
        fprintf(stderr,
                "usage: %s NET WEIGHTS MOSAIC W H B0 B1 B2 B3 WHITE WARMUP RUNS THREADS OUT\n",
                argv[0]);
        return 2;
    }
    /* "rmfa" is what bench/learned_speed.py has always passed */
    const char *name = !strcmp(argv[1], "rmfa") ? "rmfa-tiny" : argv[1];
    int w = atoi(argv[4]), h = atoi(argv[5]), warmup = atoi(argv[11]), runs = atoi(argv[12]);
    int threads = atoi(argv[13]);
    if (w < 1 || h < 1 || warmup < 0 || runs < 1 || threads < 0) {
        fprintf(stderr, "learned_runner: bad size, run or thread count\n");
        return 2;
    }

    size_t n = (size_t)w * (size_t)h;
    uint16_t *mosaic = malloc(n * sizeof *mosaic);
    FILE *f = fopen(argv[3], "rb");
    if (!mosaic || !f || fread(mosaic, sizeof *mosaic, n, f) != n) {
        fprintf(stderr, "learned_runner: cannot read %zu samples from %s\n", n, argv[3]);
        return 1;
    }
    fclose(f);

    lumos_ctx *ctx = lumos_ctx_new();
    if (!ctx) return fail(NULL, "out of memory");
    lumos_ctx_set_threads(ctx, threads);
    lumos_raw_info info;
    memset(&info, 0, sizeof info);
    info.cfa = LUMOS_CFA_RGGB;
    for (int s = 0; s < 4; s++) info.black[s] = (float)atof(argv[6 + s]);
    info.white = (float)atof(argv[10]);
    info.orientation = 1;
    lumos_raw *raw = NULL;
    if (lumos_raw_from_mosaic(ctx, mosaic, w, h, (size_t)w * 2, &info, &raw) != LUMOS_OK)
        return fail(ctx, "lumos_raw_from_mosaic");
    free(mosaic); /* copied into raw */
    lumos_net *net = NULL;
    if (lumos_net_load(ctx, name, argv[2], &net) != LUMOS_OK) return fail(ctx, "lumos_net_load");

    lumos_image img;
    for (int r = 0; r < warmup; r++) {
        if (lumos_isp_learned(ctx, net, raw, 0, 8, &img) != LUMOS_OK) return fail(ctx, "warm-up");
        lumos_image_free(&img);
    }
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        int rc = lumos_isp_learned(ctx, net, raw, 0, 8, &img);
        double t1 = now();
        if (rc != LUMOS_OK) return fail(ctx, "lumos_isp_learned");
        printf("time_s %.6f\n", t1 - t0);
        fflush(stdout);
        if (r + 1 < runs) lumos_image_free(&img);
    }

    f = fopen(argv[14], "wb");
    int ok = f != NULL;
    for (int y = 0; ok && y < img.height; y++)
        ok = fwrite((const uint8_t *)img.data + (size_t)y * img.stride, 1, (size_t)w * 3, f) ==
             (size_t)w * 3;
    if (f && fclose(f)) ok = 0;
    if (!ok) {
        fprintf(stderr, "learned_runner: cannot write %s\n", argv[14]);
        return 1;
    }
    lumos_image_free(&img);
    lumos_net_free(net);
    lumos_raw_free(raw);
    lumos_ctx_free(ctx);
    return 0;
}
