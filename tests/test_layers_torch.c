/* test_layers_torch.c [PYTHON LAYERS_PY] — the layers of generators/layers_*.h
 * (LayerNorm, GELU, linear, the Swin block with windowed attention, relative
 * position bias and the shifted windows' mask, transposed convs, nearest and
 * bilinear resizes by any factor or to any size, average pooling, global
 * mean / max, group and instance norm), one test pipeline each
 * (tests/layer_test_generator.cpp), against PyTorch autograd in float64
 * (tests/torch/layers.py): the output, dL/d(input) and dL/dθ of
 * L = Σ grad_out · out, at odd sizes and 1×1 where the layer allows.
 *
 * Error of an entry: |got − ref| / (|ref| + 0.01·max|ref|), the largest over
 * each tensor, against the configuration's tolerance. Skips (77) when the
 * interpreter has no torch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "lumos.h"
#include "lumos_lt_avg_pool_k2s1.h"
#include "lumos_lt_avg_pool_k3s2p1.h"
#include "lumos_lt_avg_pool_k4.h"
#include "lumos_lt_bilinear.h"
#include "lumos_lt_bilinear_by_a.h"
#include "lumos_lt_bilinear_by_b.h"
#include "lumos_lt_convt_k3s1.h"
#include "lumos_lt_convt_k3s2.h"
#include "lumos_lt_convt_k4s2.h"
#include "lumos_lt_gelu.h"
#include "lumos_lt_global_max.h"
#include "lumos_lt_global_mean.h"
#include "lumos_lt_group_norm.h"
#include "lumos_lt_instance_norm.h"
#include "lumos_lt_linear.h"
#include "lumos_lt_ln.h"
#include "lumos_lt_nearest.h"
#include "lumos_lt_nearest_by_a.h"
#include "lumos_lt_nearest_by_b.h"
#include "lumos_lt_swin_w4.h"
#include "lumos_lt_swin_w4_s2.h"
#include "lumos_lt_swin_w8_s4.h"
#include "stages/halide_glue.h"

typedef int (*layer_fn)(const void *, struct halide_buffer_t *, struct halide_buffer_t *,
                        struct halide_buffer_t *, struct halide_buffer_t *,
                        struct halide_buffer_t *, struct halide_buffer_t *);

static const struct {
    const char *net;
    layer_fn fn;
    double tol;
} layers[] = {
    {"ln", lumos_lt_ln, 1e-4},
    {"gelu", lumos_lt_gelu, 1e-4},
    {"linear", lumos_lt_linear, 1e-4},
    {"swin_w4", lumos_lt_swin_w4, 1e-4},
    {"swin_w4_s2", lumos_lt_swin_w4_s2, 1e-4},
    {"swin_w8_s4", lumos_lt_swin_w8_s4, 1e-4},
    {"convt_k4s2", lumos_lt_convt_k4s2, 1e-4},
    {"convt_k3s2", lumos_lt_convt_k3s2, 1e-4},
    {"convt_k3s1", lumos_lt_convt_k3s1, 1e-4},
    {"nearest", lumos_lt_nearest, 1e-4},
    {"nearest_by_a", lumos_lt_nearest_by_a, 1e-4},
    {"nearest_by_b", lumos_lt_nearest_by_b, 1e-4},
    {"bilinear", lumos_lt_bilinear, 1e-4},
    {"bilinear_by_a", lumos_lt_bilinear_by_a, 1e-4},
    {"bilinear_by_b", lumos_lt_bilinear_by_b, 1e-4},
    {"avg_pool_k3s2p1", lumos_lt_avg_pool_k3s2p1, 1e-4},
    {"avg_pool_k4", lumos_lt_avg_pool_k4, 1e-4},
    {"avg_pool_k2s1", lumos_lt_avg_pool_k2s1, 1e-4},
    {"global_mean", lumos_lt_global_mean, 1e-4},
    {"global_max", lumos_lt_global_max, 1e-4},
    {"group_norm", lumos_lt_group_norm, 1e-4},
    {"instance_norm", lumos_lt_instance_norm, 1e-4},
};

static float *load(const char *dir, const char *name, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t size = 0;
    uint8_t *data = read_all(path, &size);
    if (!data || size != n * sizeof(float)) {
        fprintf(stderr, "%s: %zu bytes, expected %zu\n", path, size, n * sizeof(float));
        free(data);
        return NULL;
    }
    return (float *)data;
}


static void buffer1(halide_buffer_t *b, halide_dimension_t *d, float *host, int n)
{
    memset(b, 0, sizeof *b);
    *d = (halide_dimension_t){0, n, 1, 0};
    b->host = (uint8_t *)host;
    b->type = (struct halide_type_t){halide_type_float, 32, 1};
    b->dimensions = 1;
    b->dim = d;
}

static double error(const float *got, const float *ref, size_t n)
{
    double top = 0, worst = 0;
    for (size_t i = 0; i < n; i++) top = fmax(top, fabs(ref[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]) / (fabs(ref[i]) + 0.01 * top + 1e-30);
        if (!(e <= worst)) worst = e; /* NaN too */
    }
    return worst;
}

static void run_case(lumos_ctx *ctx, const char *root, const char *line)
{
    char name[256], net[64];
    int cin, w, h, cout, ow, oh, nw;
    if (sscanf(line, "%255s %63s %d %d %d %d %d %d %d", name, net, &cin, &w, &h, &cout, &ow, &oh, &nw) != 9) {
        CHECK(0, "bad case line: %s", line);
        return;
    }
    size_t k = 0, nk = sizeof layers / sizeof *layers;
    while (k < nk && strcmp(layers[k].net, net) != 0) k++;
    if (k == nk) {
        CHECK(0, "no pipeline for %s", net);
        return;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    size_t n_in = (size_t)cin * w * h, n_out = (size_t)cout * ow * oh;
    float *in = load(dir, "in.f32", n_in), *gout = load(dir, "grad_out.f32", n_out);
    float *wts = load(dir, "weights.f32", nw), *ref_out = load(dir, "out.f32", n_out);
    float *ref_gin = load(dir, "grad_in.f32", n_in), *ref_gw = load(dir, "grad_w.f32", nw);
    float *out = calloc(n_out, sizeof *out), *gin = calloc(n_in, sizeof *gin);
    float *gw = calloc(nw, sizeof *gw);
    CHECK(in && gout && wts && ref_out && ref_gin && ref_gw, "%s: missing reference files", name);
    if (in && gout && wts && ref_out && ref_gin && ref_gw) {
        halide_buffer_t bi, bw, bg, bo, bgi, bgw;
        halide_dimension_t di[3], dw, dg[3], dout[3], dgi[3], dgw;
        lumos__hl_buffer_cxy(&bi, di, in, cin, w, h);
        buffer1(&bw, &dw, wts, nw);
        lumos__hl_buffer_cxy(&bg, dg, gout, cout, ow, oh);
        lumos__hl_buffer_cxy(&bo, dout, out, cout, ow, oh);
        lumos__hl_buffer_cxy(&bgi, dgi, gin, cin, w, h);
        buffer1(&bgw, &dgw, gw, nw);
        int rc = layers[k].fn(ctx, &bi, &bw, &bg, &bo, &bgi, &bgw);
        CHECK(rc == 0, "%s: %s", name, lumos_last_error(ctx));
        double e_out = error(out, ref_out, n_out), e_in = error(gin, ref_gin, n_in);
        double e_w = error(gw, ref_gw, nw), tol = layers[k].tol;
        printf("%-24s out %.2e  grad_in %.2e  grad_w %.2e  (tolerance %.0e)\n", name, e_out, e_in, e_w, tol);
        CHECK(e_out <= tol, "%s: output error %.3e", name, e_out);
        CHECK(e_in <= tol, "%s: input gradient error %.3e", name, e_in);
        CHECK(e_w <= tol, "%s: parameter gradient error %.3e", name, e_w);
    }
    free(in); free(gout); free(wts); free(ref_out); free(ref_gin); free(ref_gw);
    free(out); free(gin); free(gw);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s PYTHON LAYERS_PY\n", argv[0]);
        return 2;
    }
    if (!torch_importable(argv[1])) return 77;
    char dir[] = "/tmp/lumos_layers_XXXXXX", cmd[2048];
    if (!mkdtemp(dir)) return 1;
    snprintf(cmd, sizeof cmd, "%s %s make %s", argv[1], argv[2], dir);
    CHECK(system(cmd) == 0, "%s failed", cmd);
    lumos__halide_init();
    lumos_ctx *ctx = lumos_ctx_new();
    char path[1100];
    snprintf(path, sizeof path, "%s/cases.txt", dir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "no %s", path);
    int cases = 0;
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        if (line[0] == '\n') continue;
        run_case(ctx, dir, line);
        cases++;
    }
    if (f) fclose(f);
    CHECK(cases >= 40, "only %d cases", cases);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", dir);
    lumos_ctx_free(ctx);
    printf("%d cases: %s\n", cases, failures ? "FAILED" : "Success!");
    return failures ? 1 : 0;
}
