/* dereflect_runner.c — times lumos_dereflect_image for
 * bench/dereflect_speed.py (built with the benchmarks).
 *
 *   dereflect_runner NET WEIGHTS IMAGE W H WARMUP RUNS THREADS OUT
 *
 * IMAGE: W×H×3 little-endian float32, RGB interleaved, sRGB-encoded 0..1.
 * NET: uhd or classic (WEIGHTS '-' for the shipped default or none).
 * WARMUP untimed calls, then RUNS timed calls (the call alone: the image
 * is made and freed outside the clock), each printed as "time_s SECONDS".
 * OUT gets the last output, W×H×3 float32, for the agreement check. */
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

int main(int argc, char **argv)
{
    if (argc != 10) {
        fprintf(stderr, "usage: %s NET WEIGHTS IMAGE W H WARMUP RUNS THREADS OUT\n", argv[0]);
        return 2;
    }
    const int w = atoi(argv[4]), h = atoi(argv[5]), warmup = atoi(argv[6]), runs = atoi(argv[7]);
    lumos_ctx *ctx = lumos_ctx_new();
    lumos_ctx_set_threads(ctx, atoi(argv[8]));
    lumos_image in = {0}, out = {0};
    lumos_net *net = NULL;
    lumos_dereflect_options opt;
    lumos_dereflect_options_init(&opt);
    opt.net_name = argv[1];
    opt.bits = 32;
    int rc = lumos_image_alloc(&in, w, h, 3, 32);
    FILE *f = rc ? NULL : fopen(argv[3], "rb");
    for (int y = 0; f && y < h; y++)
        if (fread((char *)in.data + (size_t)y * in.stride, sizeof(float), (size_t)w * 3, f) !=
            (size_t)w * 3)
            rc = -1;
    if (f) fclose(f);
    if (!f || rc) {
        fprintf(stderr, "dereflect_runner: cannot read %s\n", argv[3]);
        return 1;
    }
    if (strcmp(argv[1], "classic")) {
        rc = lumos_net_load(ctx, argv[1], strcmp(argv[2], "-") ? argv[2] : NULL, &net);
        opt.net = net;
    }
    for (int i = 0; rc == LUMOS_OK && i < warmup + runs; i++) {
        lumos_image_free(&out);
        double t0 = now();
        rc = lumos_dereflect_image(ctx, &in, &opt, &out);
        if (rc == LUMOS_OK && i >= warmup) printf("time_s %.4f\n", now() - t0);
        fflush(stdout);
    }
    if (rc) {
        fprintf(stderr, "dereflect_runner: %s\n", lumos_last_error(ctx));
        return 1;
    }
    f = fopen(argv[9], "wb");
    for (int y = 0; f && y < h; y++)
        fwrite((const char *)out.data + (size_t)y * out.stride, sizeof(float), (size_t)w * 3, f);
    if (!f || fclose(f)) {
        fprintf(stderr, "dereflect_runner: cannot write %s\n", argv[9]);
        return 1;
    }
    lumos_image_free(&in);
    lumos_image_free(&out);
    lumos_net_free(net);
    lumos_ctx_free(ctx);
    return 0;
}
