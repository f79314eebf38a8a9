/* test_learned_torch.c PYTHON ISP_NETS_PY — the learned ISPs' Halide
 * pipelines against PyTorch's own modules (tests/torch/isp_nets.py) with the
 * same weights, read from the safetensors file PyTorch wrote, through the
 * project's loader (lumos_net_load) and the public mosaic API.
 * Skips (77) when the interpreter cannot import torch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "test_nets.h"
#include "lumos.h"
#include "pipeline/learned.h"

static void run_case(lumos_ctx *ctx, const char *python, const char *script, const lumos__net_def *kind,
                     const char *torch_name, int w, int h, int seed, const char *extra)
{
    char dir[] = "/tmp/lumos-torch-XXXXXX", cmd[2048], path[512];
    if (!mkdtemp(dir)) { failures++; return; }
    snprintf(cmd, sizeof cmd, "%s %s make %s %s --width %d --height %d --seed %d %s", python, script,
             torch_name, dir, w, h, seed, extra);
    CHECK(system(cmd) == 0, "%s failed", cmd);

    snprintf(path, sizeof path, "%s/meta.txt", dir);
    FILE *f = fopen(path, "r");
    lumos_raw_info in;
    memset(&in, 0, sizeof in);
    int mw = 0, mh = 0;
    CHECK(f && fscanf(f, "%d %d %f %f %f %f %f", &mw, &mh, &in.black[0], &in.black[1], &in.black[2],
                      &in.black[3], &in.white) == 7, "%s unreadable", path);
    if (f) fclose(f);
    size_t n = 0, m = 0;
    snprintf(path, sizeof path, "%s/mosaic.u16", dir);
    uint16_t *mosaic = (uint16_t *)read_all(path, &n);
    snprintf(path, sizeof path, "%s/output.f32", dir);
    float *want = (float *)read_all(path, &m);
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    lumos_net *net = NULL;
    int rc = lumos_net_load(ctx, kind->name, path, &net);
    CHECK(rc == LUMOS_OK, "load torch's weights: %s", lumos_last_error(ctx));
    if (rc == LUMOS_OK && mosaic && want && mw == w && mh == h && n == (size_t)w * h * 2 &&
        m == (size_t)w * h * 3 * 4) {
        in.cfa = LUMOS_CFA_RGGB;
        in.orientation = 1;
        lumos_raw *raw = NULL;
        CHECK(lumos_raw_from_mosaic(ctx, mosaic, w, h, (size_t)w * 2, &in, &raw) == LUMOS_OK, "%s",
              lumos_last_error(ctx));
        float *got = NULL;
        size_t row = 0;
        rc = raw ? lumos__isp_learned_f32(ctx, net, raw, 0, &got, &row) : -1;
        CHECK(rc == LUMOS_OK, "run: %s", lumos_last_error(ctx));
        double worst = 0;
        for (int c = 0; rc == LUMOS_OK && c < 3; c++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    double t = want[((size_t)c * h + y) * w + x];
                    double e = fabs(got[y * row + x * 3 + c] - t) / fmax(1.0, fabs(t));
                    if (e > worst) worst = e;
                }
        printf("%-9s %3dx%-3d vs PyTorch: max relative error %.2e\n", kind->name, w, h, worst);
        CHECK(worst <= 1e-5, "%s %dx%d: max error %.3e vs PyTorch", kind->name, w, h, worst);
        free(got);
        lumos_raw_free(raw);
    } else {
        CHECK(0, "case files missing or of the wrong size in %s", dir);
    }
    lumos_net_free(net);
    free(mosaic);
    free(want);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PYTHON isp_nets.py\n", argv[0]);
        return 2;
    }
    if (!torch_importable(argv[1])) return 77;
    lumos_ctx *ctx = lumos_ctx_new();
    run_case(ctx, argv[1], argv[2], net_named("efficient"), "efficient", 64, 48, 1, "");
    run_case(ctx, argv[1], argv[2], net_named("efficient"), "efficient", 30, 18, 2, "--black 80,70,66,90");
    run_case(ctx, argv[1], argv[2], net_named("robust"), "robust", 64, 48, 3, "");
    run_case(ctx, argv[1], argv[2], net_named("robust"), "robust", 262, 130, 4, "--black 80,70,66,90");
    run_case(ctx, argv[1], argv[2], net_named("rmfa-tiny"), "rmfa_tiny", 36, 20, 5, "--gain 2");
    run_case(ctx, argv[1], argv[2], net_named("rmfa-tiny"), "rmfa_tiny", 21, 13, 6, "--gain 2");
    run_case(ctx, argv[1], argv[2], net_named("rmfa-tiny"), "rmfa_tiny", 132, 68, 7, "--black 80,70,66,90");
    lumos_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "Success!");
    return failures ? 1 : 0;
}
