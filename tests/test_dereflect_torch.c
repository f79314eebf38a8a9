/* test_dereflect_torch.c PYTHON DEREFLECT_NETS_PY — the UHD reflection
 * removal network's pipelines (stages/dereflect_net.c) against the PyTorch
 * module of tests/torch/dereflect_nets.py with the same random weights, read
 * through lumos_net_load: sizes that need padding to the network's multiple,
 * several tiles, and tilings that must all give the same result (the
 * full-resolution pass's tiles read their apron, so no seam may show).
 * The training gradient against autograd's. Skips (77) when the
 * interpreter cannot import torch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lumos.h"
#include "pipeline/learned.h"
#include "stages/dereflect_net.h"

static double worst_relative(const float *got, const float *want, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / fmax(1.0, fabs((double)want[i]));
        if (e > worst) worst = e;
    }
    return worst;
}

static void run_case(lumos_ctx *ctx, const char *python, const char *script, int w, int h, int seed,
                     const int *tiles, int n_tiles)
{
    char dir[] = "/tmp/lumos-dereflect-XXXXXX", cmd[2048], path[512];
    if (!mkdtemp(dir)) { failures++; return; }
    snprintf(cmd, sizeof cmd, "%s %s make %s --width %d --height %d --seed %d > /dev/null", python,
             script, dir, w, h, seed);
    CHECK(system(cmd) == 0, "%s failed", cmd);
    size_t n_in = 0, n_out = 0;
    snprintf(path, sizeof path, "%s/image.f32", dir);
    float *image = (float *)read_all(path, &n_in);
    snprintf(path, sizeof path, "%s/out.f32", dir);
    float *want = (float *)read_all(path, &n_out);
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    lumos_net *net = NULL;
    int rc = lumos_net_load(ctx, "uhd", path, &net);
    CHECK(rc == LUMOS_OK, "load torch's weights: %s", lumos_last_error(ctx));
    const size_t px = (size_t)w * h;
    if (rc == LUMOS_OK && image && want && n_in == px * 12 && n_out == px * 24) {
        size_t count = 0;
        const float *flat = lumos__net_flat(net, &count);
        float *first = malloc(px * 6 * sizeof *first), *got = malloc(px * 6 * sizeof *got);
        float *t_only = malloc(px * 3 * sizeof *t_only);
        for (int i = 0; first && got && i < n_tiles; i++) {
            float *out = i ? got : first;
            rc = lumos__dereflect_net(ctx, lumos__net_def_of(net), flat, image, w, h, tiles[i], 1, out);
            CHECK(rc == LUMOS_OK, "run: %s", lumos_last_error(ctx));
            if (rc != LUMOS_OK) break;
            double e = worst_relative(out, want, px * 6);
            printf("uhd %4dx%-4d tile %4d vs PyTorch (T, R): max relative error %.2e\n", w, h,
                   tiles[i], e);
            CHECK(e <= 1e-4, "%dx%d tile %d: max error %.3e vs PyTorch", w, h, tiles[i], e);
            if (i) {
                double seam = worst_relative(out, first, px * 6);
                printf("             tile %4d vs tile %d: max difference %.2e\n", tiles[i], tiles[0], seam);
                CHECK(seam <= 1e-5, "tile %d differs from tile %d by %.3e", tiles[i], tiles[0], seam);
            }
        }
        /* the transmission alone (the command's variant) equals the first three channels */
        rc = t_only ? lumos__dereflect_net(ctx, lumos__net_def_of(net), flat, image, w, h, 0, 0, t_only) : -1;
        CHECK(rc == LUMOS_OK, "run (T only): %s", lumos_last_error(ctx));
        double e = 0;
        for (size_t p = 0; rc == LUMOS_OK && p < px; p++)
            for (int c = 0; c < 3; c++) e = fmax(e, fabs(t_only[p * 3 + c] - first[p * 6 + c]));
        CHECK(e <= 1e-5, "T-only variant differs by %.3e", e);
        free(first);
        free(got);
        free(t_only);
    } else {
        CHECK(0, "case files missing or of the wrong size in %s", dir);
    }
    lumos_net_free(net);
    free(image);
    free(want);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", dir);
}

/* Training's gradient (lumos__dereflect_net_backward) against autograd's
 * for L = sum(g · T) on a w × h crop: every trainable tensor's, and zero
 * for the frozen feature network. */
static void grad_case(lumos_ctx *ctx, const char *python, const char *script, int w, int h, int seed)
{
    char dir[] = "/tmp/lumos-dereflect-grad-XXXXXX", cmd[2048], path[512];
    if (!mkdtemp(dir)) { failures++; return; }
    snprintf(cmd, sizeof cmd, "%s %s make %s --width %d --height %d --seed %d --grad > /dev/null",
             python, script, dir, w, h, seed);
    CHECK(system(cmd) == 0, "%s failed", cmd);
    size_t n_in = 0, n_g = 0, n_want = 0;
    snprintf(path, sizeof path, "%s/image.f32", dir);
    float *image = (float *)read_all(path, &n_in);
    snprintf(path, sizeof path, "%s/grad_t.f32", dir);
    float *grad_t = (float *)read_all(path, &n_g);
    snprintf(path, sizeof path, "%s/grad_params.f32", dir);
    float *want = (float *)read_all(path, &n_want);
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    lumos_net *net = NULL;
    int rc = lumos_net_load(ctx, "uhd", path, &net);
    CHECK(rc == LUMOS_OK, "load torch's weights: %s", lumos_last_error(ctx));
    size_t count = 0;
    const float *flat = net ? lumos__net_flat(net, &count) : NULL;
    const size_t px = (size_t)w * h;
    if (rc == LUMOS_OK && image && grad_t && want && n_in == px * 12 && n_g == px * 12 &&
        n_want == count * 4) {
        float *got = malloc(count * sizeof *got);
        rc = lumos__dereflect_net_backward(ctx, lumos__net_def_of(net), flat, image, w, h, grad_t, got);
        CHECK(rc == LUMOS_OK, "backward: %s", lumos_last_error(ctx));
        /* per tensor: the error against the tensor's largest gradient */
        const lumos__tensor_spec *t;
        size_t at = 0;
        double worst = 0;
        const char *worst_name = "";
        for (size_t i = 0; rc == LUMOS_OK && (t = lumos__net_tensor(lumos__net_def_of(net), i)); i++) {
            const size_t n = lumos__tensor_elements(t);
            double scale = 0, err = 0;
            for (size_t k = 0; k < n; k++) scale = fmax(scale, fabs(want[at + k]));
            for (size_t k = 0; k < n; k++) err = fmax(err, fabs((double)got[at + k] - want[at + k]));
            const int frozen = !strncmp(t->name, "features.", 9);
            double e = frozen ? err : err / fmax(scale, 1e-6);
            CHECK(!frozen || err == 0, "%s: frozen, but its gradient is %.3e", t->name, err);
            CHECK(frozen || scale > 0, "%s: PyTorch's gradient is 0", t->name);
            if (e > worst) worst = e, worst_name = t->name;
            at += n;
        }
        printf("uhd %dx%d gradient vs PyTorch: max error %.2e of the tensor's largest (%s)\n", w, h,
               worst, worst_name);
        CHECK(worst <= 1e-4, "gradient of %s off by %.3e", worst_name, worst);
        free(got);
    } else {
        CHECK(0, "gradient case files missing or of the wrong size in %s", dir);
    }
    /* a crop that is not a multiple of 128 is refused */
    float dummy = 0;
    CHECK(lumos__dereflect_net_backward(ctx, net ? lumos__net_def_of(net) : NULL, flat, image, 200,
                                        128, grad_t, &dummy) == LUMOS_E_ARG, "200x128 crop accepted");
    lumos_net_free(net);
    free(image);
    free(grad_t);
    free(want);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PYTHON dereflect_nets.py\n", argv[0]);
        return 2;
    }
    if (!torch_importable(argv[1])) return 77;
    lumos_ctx *ctx = lumos_ctx_new();
    /* padded from 200×150 to 256×256; tiles of 64 and 40: several, ragged */
    const int tiles_a[] = {0, 64, 40};
    run_case(ctx, argv[1], argv[2], 200, 150, 1, tiles_a, 3);
    /* a whole multiple (no padding), wider than tall */
    const int tiles_b[] = {0, 96};
    run_case(ctx, argv[1], argv[2], 384, 128, 2, tiles_b, 2);
    /* training's gradient, on a training-sized crop */
    grad_case(ctx, argv[1], argv[2], 256, 256, 3);
    /* a bad call */
    CHECK(lumos__dereflect_net(ctx, NULL, NULL, NULL, 1, 1, 0, 0, NULL) == LUMOS_E_ARG, "NULL net accepted");
    lumos_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "Success!");
    return failures ? 1 : 0;
}
