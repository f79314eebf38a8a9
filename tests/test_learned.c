/* test_learned.c — the learned ISPs' Halide pipelines against the plain-C
 * reference (tests/ref/isp_nets_ref.c), on random weights.
 *
 *  - every network, sizes from 1×1 through odd ones to several output tiles,
 *    all four CFA patterns: max |halide − ref| ≤ 1e-5·max(1, |ref|);
 *    sizes the reference cannot take (odd for the packed nets, RMFA's
 *    ≡ 2, 3 mod 4) are compared on the mosaic extended the way the pipeline
 *    extends it (a parity-keeping mirror), shifted to RGGB;
 *  - the 8- and 16-bit outputs are the float output quantised;
 *  - 1 and 2 threads give identical bits;
 *  - weights through a safetensors file give the same network; a file with a
 *    wrong shape, a missing or an extra tensor is refused; no default yet. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "test_nets.h"
#include "io/raw_internal.h"
#include "lumos.h"
#include "pipeline/learned.h"
#include "ref/isp_nets_ref.h"
#include "stages/learned_isp.h"

static uint32_t rng = 2024;
static float uniform(void) /* [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return (float)(rng >> 8) / (float)(1 << 23) - 1.f;
}

typedef struct {
    const lumos__net_def *kind;
    float *flat;
    size_t count;
} weights;

/* PyTorch-like scale: uniform(±1/sqrt(fan_in)). */
static weights random_weights(const lumos__net_def *kind)
{
    weights w = {kind, NULL, lumos__net_weight_count(kind)};
    w.flat = malloc(w.count * sizeof *w.flat);
    size_t at = 0;
    const lumos__tensor_spec *t;
    for (size_t i = 0; (t = lumos__net_tensor(kind, i)); i++) {
        size_t e = lumos__tensor_elements(t), fan_in = 1;
        for (int d = 1; d < t->ndim; d++) fan_in *= (size_t)t->shape[d];
        /* twice PyTorch's init scale, so that RMFA's attention paths matter */
        float bound = t->ndim > 1 ? 2.f / sqrtf((float)fan_in) : 0.2f;
        for (size_t k = 0; k < e; k++) w.flat[at + k] = bound * uniform();
        at += e;
    }
    return w;
}

static const float *lookup(void *user, const char *name)
{
    weights *w = user;
    ptrdiff_t at = lumos__net_tensor_offset(w->kind, name);
    return at < 0 ? NULL : w->flat + at;
}

static ref_net ref_of(const lumos__net_def *k)
{
    return k == net_named("efficient") ? REF_EFFICIENT : k == net_named("robust") ? REF_ROBUST : REF_RMFA_TINY;
}

static int mirror(int v, int n)
{
    if (n == 1) return 0;
    int period = 2 * (n - 1);
    v %= period;
    if (v < 0) v += period;
    return v < n ? v : period - v;
}

static const float black[4] = {64, 60, 66, 62};
static const float white = 1023;

/* Image-like samples: a smooth field plus noise, in [black, white]. */
static uint16_t *make_mosaic(int w, int h)
{
    uint16_t *m = malloc((size_t)w * h * 2);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float v = 0.5f + 0.3f * sinf(0.07f * x + 0.11f * y) + 0.1f * uniform();
            m[y * w + x] = (uint16_t)(70 + fminf(fmaxf(v, 0.f), 1.f) * 940);
        }
    return m;
}

/* The reference on the network's own domain: the mosaic shifted to RGGB
 * (u = x + cfa_x) and extended by the mirror to `dw`×`dh`. */
static float *reference(const weights *wt, const uint16_t *m, int w, int h, int cfa_x, int cfa_y,
                        int dw, int dh, int *status)
{
    uint16_t *uv = malloc((size_t)dw * dh * 2);
    float blk[4];
    for (int v = 0; v < dh; v++)
        for (int u = 0; u < dw; u++) uv[v * dw + u] = m[mirror(v - cfa_y, h) * w + mirror(u - cfa_x, w)];
    /* the per-site black follows the site's original position */
    for (int s = 0; s < 4; s++) blk[s] = black[(((s >> 1) + cfa_y) & 1) * 2 + (((s & 1) + cfa_x) & 1)];
    float *out = malloc((size_t)3 * dw * dh * sizeof *out);
    *status = ref_isp_forward(ref_of(wt->kind), lookup, (void *)wt, uv, dw, dh, blk, white, out);
    free(uv);
    return out;
}

static lumos_raw *make_raw(lumos_ctx *ctx, const uint16_t *m, int w, int h, lumos_cfa cfa)
{
    lumos_raw_info in;
    memset(&in, 0, sizeof in);
    in.cfa = cfa;
    memcpy(in.black, black, sizeof black);
    in.white = white;
    in.orientation = 1;
    lumos_raw *raw = NULL;
    CHECK(lumos_raw_from_mosaic(ctx, m, w, h, (size_t)w * 2, &in, &raw) == LUMOS_OK, "%s",
          lumos_last_error(ctx));
    return raw;
}

static void compare(lumos_ctx *ctx, const weights *wt, const lumos_net *net, int w, int h,
                    lumos_cfa cfa)
{
    int cfa_x, cfa_y;
    lumos__cfa_offsets(cfa, &cfa_x, &cfa_y);
    uint16_t *m = make_mosaic(w, h);
    lumos_raw *raw = make_raw(ctx, m, w, h, cfa);
    float *got = NULL;
    size_t row = 0;
    int rc = lumos__isp_learned_f32(ctx, net, raw, 0, &got, &row);
    CHECK(rc == LUMOS_OK, "%s %dx%d: %s", wt->kind->name, w, h, lumos_last_error(ctx));
    /* The pipeline's domain: packed nets cover u < W + cfa_x in whole 2×2
     * blocks; RMFA covers exactly W + cfa_x (a 1-pixel side is repeated). */
    int dw = w + cfa_x, dh = h + cfa_y;
    if (w < 2 || h < 2) { dw = (w < 2 ? 2 : w) + cfa_x; dh = (h < 2 ? 2 : h) + cfa_y; }
    if (wt->kind != net_named("rmfa-tiny")) { dw += dw & 1; dh += dh & 1; }
    int status = 0;
    float *ref = rc == LUMOS_OK ? reference(wt, m, w, h, cfa_x, cfa_y, dw, dh, &status) : NULL;
    if (rc == LUMOS_OK && status == -2) {
        /* a size PyTorch's RMFA cannot take: the pipeline must still give
         * finite values in (0, 1) */
        int bad = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w * 3; x++) bad += !(got[y * row + x] > 0 && got[y * row + x] < 1);
        printf("%-9s %4dx%-4d %s: no reference at this size; %d values outside (0,1)\n",
               wt->kind->name, w, h, cfa == LUMOS_CFA_RGGB ? "RGGB" : "other", bad);
        CHECK(bad == 0, "%dx%d: %d values outside (0,1)", w, h, bad);
    } else if (rc == LUMOS_OK) {
        CHECK(status == 0, "reference failed (%d) at %dx%d", status, dw, dh);
        double worst = 0;
        for (int y = 0; y < h && status == 0; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    double r = ref[((size_t)c * dh + (y + cfa_y)) * dw + (x + cfa_x)];
                    double e = fabs(got[y * row + x * 3 + c] - r) / fmax(1.0, fabs(r));
                    if (e > worst) worst = e;
                }
        printf("%-9s %4dx%-4d cfa (%d,%d): max relative error %.2e\n", wt->kind->name, w,
               h, cfa_x, cfa_y, worst);
        CHECK(worst <= 1e-5, "%s %dx%d cfa (%d,%d): max error %.3e", wt->kind->name, w,
              h, cfa_x, cfa_y, worst);
    }

    /* 8 and 16 bits: the float output clamped and rounded (±1 for FMA). */
    for (int bits = 8; bits <= 16 && rc == LUMOS_OK; bits += 8) {
        lumos_image img;
        CHECK(lumos_isp_learned(ctx, net, raw, 0, bits, &img) == LUMOS_OK, "%s", lumos_last_error(ctx));
        double top = bits == 8 ? 255 : 65535, worst = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w * 3; x++) {
                const uint8_t *r8 = (const uint8_t *)img.data + (size_t)y * img.stride;
                double q = bits == 8 ? r8[x] : ((const uint16_t *)r8)[x];
                double want = floor(fmin(fmax(got[y * row + x], 0), 1) * top + 0.5);
                if (fabs(q - want) > worst) worst = fabs(q - want);
            }
        CHECK(worst <= 1, "%d-bit output differs from the float output by %g", bits, worst);
        lumos_image_free(&img);
    }
    free(ref);
    free(got);
    lumos_raw_free(raw);
    free(m);
}

/* The exposure: a network that takes it sees the levelled mosaic times
 * 2^ev, which is what halving the white-to-black range gives at 0 EV; one
 * whose weights predate it refuses a nonzero exposure. */
static void test_exposure(lumos_ctx *ctx, const weights *wt)
{
    const int w = 34, h = 22;
    uint16_t *m = make_mosaic(w, h);
    lumos_raw_info in;
    memset(&in, 0, sizeof in);
    in.cfa = LUMOS_CFA_GRBG;
    for (int s = 0; s < 4; s++) in.black[s] = 64;
    in.white = white;
    in.orientation = 1;
    lumos_raw *raw = NULL, *halved = NULL;
    CHECK(lumos_raw_from_mosaic(ctx, m, w, h, (size_t)w * 2, &in, &raw) == LUMOS_OK, "%s",
          lumos_last_error(ctx));
    in.white = 64 + (white - 64) / 2;
    CHECK(lumos_raw_from_mosaic(ctx, m, w, h, (size_t)w * 2, &in, &halved) == LUMOS_OK, "%s",
          lumos_last_error(ctx));
    lumos_net *net = NULL;
    CHECK(lumos__net_from_flat(ctx, wt->kind, wt->flat, wt->count, &net) == LUMOS_OK, "%s",
          lumos_last_error(ctx));
    float *a = NULL, *b = NULL;
    size_t ra = 0, rb = 0;
    CHECK(!lumos_net_takes_exposure(net) &&
              lumos__isp_learned_f32(ctx, net, raw, 1, &a, &ra) == LUMOS_E_UNSUPPORTED &&
              strstr(lumos_last_error(ctx), "0 EV"),
          "weights without the exposure must refuse +1 EV: '%s'", lumos_last_error(ctx));
    free(a);
    a = NULL;
    lumos__net_set_exposed(net, 1);
    CHECK(lumos__isp_learned_f32(ctx, net, raw, 1, &a, &ra) == LUMOS_OK, "%s", lumos_last_error(ctx));
    CHECK(lumos__isp_learned_f32(ctx, net, halved, 0, &b, &rb) == LUMOS_OK, "%s",
          lumos_last_error(ctx));
    double worst = 0, moved = 0;
    float *plain = NULL;
    size_t rp = 0;
    CHECK(lumos__isp_learned_f32(ctx, net, raw, 0, &plain, &rp) == LUMOS_OK, "%s",
          lumos_last_error(ctx));
    for (int y = 0; a && b && plain && y < h; y++)
        for (int x = 0; x < 3 * w; x++) {
            worst = fmax(worst, fabs(a[y * ra + x] - b[y * rb + x]));
            moved = fmax(moved, fabs(a[y * ra + x] - plain[y * rp + x]));
        }
    printf("%-9s +1 EV vs a halved range: max difference %.2e (vs 0 EV: %.3f)\n",
           wt->kind->name, worst, moved);
    CHECK(worst <= 1e-5, "+1 EV is not the halved range: %.3e", worst);
    CHECK(moved > 1e-3, "+1 EV changed nothing (%.3e)", moved);
    CHECK(lumos__isp_learned_f32(ctx, net, raw, 17, &plain, &rp) == LUMOS_E_ARG,
          "17 EV must be refused");
    free(a);
    free(b);
    free(plain);
    lumos_net_free(net);
    lumos_raw_free(raw);
    lumos_raw_free(halved);
    free(m);
}

static void test_threads(const lumos_net *net)
{
    const int w = 300, h = 140;
    uint16_t *m = make_mosaic(w, h);
    lumos_image out[2];
    for (int t = 0; t < 2; t++) {
        lumos_ctx *ctx = lumos_ctx_new();
        lumos_ctx_set_threads(ctx, t + 1);
        lumos_raw *raw = make_raw(ctx, m, w, h, LUMOS_CFA_GBRG);
        CHECK(lumos_isp_learned(ctx, net, raw, 0, 16, &out[t]) == LUMOS_OK, "%s", lumos_last_error(ctx));
        lumos_raw_free(raw);
        lumos_ctx_free(ctx);
    }
    CHECK(!memcmp(out[0].data, out[1].data, out[0].stride * (size_t)h), "1 and 2 threads differ");
    lumos_image_free(&out[0]);
    lumos_image_free(&out[1]);
    free(m);
}

/* A safetensors file of the network's tensors; `bad` breaks it: 1 a wrong
 * shape for the first tensor, 2 the last tensor left out, 3 an extra one. */
static int write_safetensors(const char *path, const weights *w, int bad)
{
    char header[16384];
    size_t n = 0, at = 0;
    n += (size_t)snprintf(header + n, sizeof header - n, "{\"__metadata__\":{\"format\":\"pt\"}");
    size_t count = 0;
    while (lumos__net_tensor(w->kind, count)) count++;
    for (size_t i = 0; i < count; i++) {
        const lumos__tensor_spec *t = lumos__net_tensor(w->kind, i);
        size_t e = lumos__tensor_elements(t);
        if (bad == 2 && i == count - 1) break;
        n += (size_t)snprintf(header + n, sizeof header - n, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", t->name);
        for (int d = 0; d < t->ndim; d++) {
            long long dim = t->shape[d];
            if (bad == 1 && i == 0 && d == t->ndim - 1) dim = 1; /* e.g. [12,4,3,1] */
            n += (size_t)snprintf(header + n, sizeof header - n, "%s%lld", d ? "," : "", dim);
        }
        size_t bytes = (bad == 1 && i == 0) ? e / (size_t)t->shape[t->ndim - 1] * 4 : e * 4;
        n += (size_t)snprintf(header + n, sizeof header - n, "],\"data_offsets\":[%zu,%zu]}", at, at + bytes);
        at += bytes;
    }
    if (bad == 3) {
        n += (size_t)snprintf(header + n, sizeof header - n,
                              ",\"extra.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[%zu,%zu]}",
                              at, at + 4);
        at += 4;
    }
    n += (size_t)snprintf(header + n, sizeof header - n, "}");
    while (n % 8) header[n++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    uint64_t len = n;
    fwrite(&len, 8, 1, f);
    fwrite(header, 1, n, f);
    /* data in tensor order; a shrunken first tensor writes its prefix */
    size_t off = 0;
    for (size_t i = 0; i < count; i++) {
        const lumos__tensor_spec *t = lumos__net_tensor(w->kind, i);
        size_t e = lumos__tensor_elements(t);
        if (bad == 2 && i == count - 1) break;
        size_t write = (bad == 1 && i == 0) ? e / (size_t)t->shape[t->ndim - 1] : e;
        fwrite(w->flat + off, 4, write, f);
        off += e;
    }
    if (bad == 3) fwrite(w->flat, 4, 1, f);
    return fclose(f);
}

static void test_safetensors(lumos_ctx *ctx, const weights *w, const lumos_net *from_flat)
{
    char path[] = "/tmp/lumos-weights-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) { failures++; return; }
    close(fd);
    CHECK(write_safetensors(path, w, 0) == 0, "write %s", path);
    lumos_net *net = NULL;
    int rc = lumos_net_load(ctx, w->kind->name, path, &net);
    CHECK(rc == LUMOS_OK, "load: %s", lumos_last_error(ctx));
    CHECK(!lumos_net_takes_exposure(net), "weights without lumos_exposure take no exposure");
    if (rc == LUMOS_OK) {
        uint16_t *m = make_mosaic(64, 48);
        lumos_raw *raw = make_raw(ctx, m, 64, 48, LUMOS_CFA_RGGB);
        lumos_image a, b;
        CHECK(lumos_isp_learned(ctx, net, raw, 0, 16, &a) == LUMOS_OK, "%s", lumos_last_error(ctx));
        CHECK(lumos_isp_learned(ctx, from_flat, raw, 0, 16, &b) == LUMOS_OK, "%s", lumos_last_error(ctx));
        CHECK(!memcmp(a.data, b.data, a.stride * 48), "safetensors weights differ from the flat ones");
        lumos_image_free(&a);
        lumos_image_free(&b);
        lumos_raw_free(raw);
        free(m);
        lumos_net_free(net);
    }
    const char *expect[4] = {NULL, "shape", "no tensor", "not part of"};
    for (int bad = 1; bad <= 3; bad++) {
        CHECK(write_safetensors(path, w, bad) == 0, "write %s", path);
        net = NULL;
        rc = lumos_net_load(ctx, w->kind->name, path, &net);
        CHECK(rc == LUMOS_E_FORMAT && net == NULL, "bad weights %d accepted (rc %d)", bad, rc);
        CHECK(strstr(lumos_last_error(ctx), path) && strstr(lumos_last_error(ctx), expect[bad]),
              "bad weights %d: message '%s'", bad, lumos_last_error(ctx));
        lumos_net_free(net);
    }
    unlink(path);
    setenv("LUMOS_DATA_DIR", "/nonexistent", 1); /* no shipped weights there */
    CHECK(lumos_net_load(ctx, w->kind->name, NULL, &net) == LUMOS_E_UNSUPPORTED &&
              strstr(lumos_last_error(ctx), "no default weights"),
          "a missing default must be said: '%s'", lumos_last_error(ctx));
}

int main(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    const lumos__net_def *kinds[3] = {net_named("efficient"), net_named("robust"), net_named("rmfa-tiny")};
    const lumos_cfa cfas[4] = {LUMOS_CFA_RGGB, LUMOS_CFA_BGGR, LUMOS_CFA_GRBG, LUMOS_CFA_GBRG};
    const int packed_sizes[][2] = {{1, 1}, {2, 2}, {3, 5}, {8, 8}, {30, 18}, {131, 67}, {260, 130}};
    const int rmfa_sizes[][2] = {{1, 1}, {6, 10}, {8, 8}, {20, 12}, {21, 13}, {36, 20}, {132, 68}};
    for (int k = 0; k < 3; k++) {
        weights w = random_weights(kinds[k]);
        lumos_net *net = NULL;
        CHECK(lumos__net_from_flat(ctx, kinds[k], w.flat, w.count, &net) == LUMOS_OK, "%s",
              lumos_last_error(ctx));
        const int (*sizes)[2] = kinds[k] == net_named("rmfa-tiny") ? rmfa_sizes : packed_sizes;
        for (int s = 0; s < 7; s++) compare(ctx, &w, net, sizes[s][0], sizes[s][1], LUMOS_CFA_RGGB);
        for (int p = 1; p < 4; p++) compare(ctx, &w, net, kinds[k] == net_named("rmfa-tiny") ? 36 : 34,
                                            kinds[k] == net_named("rmfa-tiny") ? 20 : 22, cfas[p]);
        test_threads(net);
        test_exposure(ctx, &w);
        test_safetensors(ctx, &w, net);
        lumos_net_free(net);
        free(w.flat);
    }
    lumos_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "Success!");
    return failures ? 1 : 0;
}
