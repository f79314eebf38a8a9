/* isp_nets_ref.c — the three lightweight ISP networks in naive C loops.
 *
 * Tensors are planar float arrays, one image (no batch): a (C, H, W) tensor
 * holds element [c][y][x] at (c·H + y)·W + x. Every layer is one function that
 * writes into a caller-given output; shapes are in the comments. Sums use
 * double accumulators; storage is float. */
#include "ref/isp_nets_ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------------ layers */

/* in (cin, h, w) -> out (cout, h, w); weight [cout][cin][k][k], bias [cout] or
 * NULL; stride 1, zero padding k/2 (k odd). */
static void conv2d(float *out, const float *in, int cin, int h, int w, const float *weight,
                   const float *bias, int cout, int k) {
    int pad = k / 2;
    for (int o = 0; o < cout; o++) {
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                double acc = bias ? bias[o] : 0.0;
                for (int i = 0; i < cin; i++) {
                    const float *wk = weight + ((size_t)o * cin + i) * k * k;
                    const float *plane = in + (size_t)i * h * w;
                    for (int ky = 0; ky < k; ky++) {
                        int sy = y + ky - pad;
                        if (sy < 0 || sy >= h) continue;
                        for (int kx = 0; kx < k; kx++) {
                            int sx = x + kx - pad;
                            if (sx < 0 || sx >= w) continue;
                            acc += (double)wk[ky * k + kx] * plane[(size_t)sy * w + sx];
                        }
                    }
                }
                out[((size_t)o * h + y) * w + x] = (float)acc;
            }
        }
    }
}

static void tanh_inplace(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = tanhf(x[i]);
}

static void relu_inplace(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static float sigmoid(double v) { return (float)(1.0 / (1.0 + exp(-v))); }

static void sigmoid_inplace(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = sigmoid(x[i]);
}

/* in (4c, h, w) -> out (c, 2h, 2w): out[k][2y+i][2x+j] = in[4k + 2i + j][y][x]
 * (F.pixel_shuffle with r = 2). */
static void pixel_shuffle2(float *out, const float *in, int c, int h, int w) {
    for (int k = 0; k < c; k++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) {
                const float *plane = in + (size_t)(4 * k + 2 * i + j) * h * w;
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                        out[((size_t)k * 2 * h + 2 * y + i) * 2 * w + 2 * x + j] =
                            plane[(size_t)y * w + x];
            }
}

/* in (c, h, w) -> out (c, h/2, w/2): AvgPool2d(2, 2), odd edges dropped. */
static void avgpool2(float *out, const float *in, int c, int h, int w) {
    int ho = h / 2, wo = w / 2;
    for (int k = 0; k < c; k++)
        for (int y = 0; y < ho; y++)
            for (int x = 0; x < wo; x++) {
                const float *p = in + ((size_t)k * h + 2 * y) * w + 2 * x;
                double s = (double)p[0] + p[1] + p[w] + p[w + 1];
                out[((size_t)k * ho + y) * wo + x] = (float)(s * 0.25);
            }
}

/* One axis of PyTorch's linear resampling (align_corners=False): source
 * position (dst + 0.5)·in/out − 0.5, clamped below at 0; the upper neighbour
 * clamped at the edge. */
typedef struct {
    int i0, i1;
    double l0, l1;
} lerp_tap;

static void lerp_taps(lerp_tap *taps, int in, int out) {
    double scale = (double)in / out;
    for (int d = 0; d < out; d++) {
        double src = scale * (d + 0.5) - 0.5;
        if (src < 0.0) src = 0.0;
        int i0 = (int)src;
        if (i0 > in - 1) i0 = in - 1;
        taps[d].i0 = i0;
        taps[d].i1 = i0 < in - 1 ? i0 + 1 : i0;
        taps[d].l1 = src - i0;
        taps[d].l0 = 1.0 - taps[d].l1;
    }
}

void ref_bilinear_resize(const float *in, int c, int hin, int win, float *out, int hout,
                         int wout) {
    lerp_tap *ty = malloc(sizeof *ty * (size_t)hout), *tx = malloc(sizeof *tx * (size_t)wout);
    if (!ty || !tx) abort();
    lerp_taps(ty, hin, hout);
    lerp_taps(tx, win, wout);
    for (int k = 0; k < c; k++) {
        const float *p = in + (size_t)k * hin * win;
        for (int y = 0; y < hout; y++) {
            const float *r0 = p + (size_t)ty[y].i0 * win, *r1 = p + (size_t)ty[y].i1 * win;
            for (int x = 0; x < wout; x++) {
                int a = tx[x].i0, b = tx[x].i1;
                double top = tx[x].l0 * r0[a] + tx[x].l1 * r0[b];
                double bot = tx[x].l0 * r1[a] + tx[x].l1 * r1[b];
                out[((size_t)k * hout + y) * wout + x] = (float)(ty[y].l0 * top + ty[y].l1 * bot);
            }
        }
    }
    free(ty);
    free(tx);
}

/* out = a + b, or a − b, over n elements (out may alias a or b). */
static void add(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

static void sub(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] - b[i];
}

/* CBAM channel attention, in place on x (c, h, w): a = sigmoid(fc(avg) + fc(max))
 * with fc = 1×1 c->r (no bias), ReLU, 1×1 r->c (no bias); x[k] *= a[k].
 * w0 [r][c], w2 [c][r]. */
static void channel_attention(float *x, int c, int h, int w, const float *w0, const float *w2,
                              int r) {
    size_t hw = (size_t)h * w;
    double *avg = calloc((size_t)c, sizeof *avg), *mx = calloc((size_t)c, sizeof *mx);
    double *hid = calloc((size_t)r, sizeof *hid);
    if (!avg || !mx || !hid) abort();
    for (int k = 0; k < c; k++) {
        const float *p = x + k * hw;
        double s = 0.0, m = p[0];
        for (size_t i = 0; i < hw; i++) {
            s += p[i];
            if (p[i] > m) m = p[i];
        }
        avg[k] = s / (double)hw;
        mx[k] = m;
    }
    /* fc(v)[k] = sum_j w2[k][j] · relu(sum_i w0[j][i] · v[i]) */
    double *logit = calloc((size_t)c, sizeof *logit);
    if (!logit) abort();
    for (int pass = 0; pass < 2; pass++) {
        const double *v = pass == 0 ? avg : mx;
        for (int j = 0; j < r; j++) {
            double s = 0.0;
            for (int i = 0; i < c; i++) s += (double)w0[j * c + i] * v[i];
            hid[j] = s > 0.0 ? s : 0.0;
        }
        for (int k = 0; k < c; k++) {
            double s = 0.0;
            for (int j = 0; j < r; j++) s += (double)w2[k * r + j] * hid[j];
            logit[k] += s;
        }
    }
    for (int k = 0; k < c; k++) {
        float a = sigmoid(logit[k]);
        float *p = x + k * hw;
        for (size_t i = 0; i < hw; i++) p[i] *= a;
    }
    free(avg);
    free(mx);
    free(hid);
    free(logit);
}

/* CBAM spatial attention, in place on x (c, h, w): s (2, h, w) = [mean over
 * channels, max over channels]; a (1, h, w) = sigmoid(conv7×7(s), pad 3, no
 * bias), weight [1][2][7][7]; x[k][y][x] *= a[y][x]. */
static void spatial_attention(float *x, int c, int h, int w, const float *weight) {
    size_t hw = (size_t)h * w;
    float *s = malloc(sizeof *s * 2 * hw), *a = malloc(sizeof *a * hw);
    if (!s || !a) abort();
    for (size_t i = 0; i < hw; i++) {
        double sum = 0.0;
        float m = x[i];
        for (int k = 0; k < c; k++) {
            float v = x[k * hw + i];
            sum += v;
            if (v > m) m = v;
        }
        s[i] = (float)(sum / c);
        s[hw + i] = m;
    }
    conv2d(a, s, 2, h, w, weight, NULL, 1, 7);
    sigmoid_inplace(a, hw);
    for (int k = 0; k < c; k++)
        for (size_t i = 0; i < hw; i++) x[k * hw + i] *= a[i];
    free(s);
    free(a);
}

/* --------------------------------------------------------------- packing */

/* mosaic (h, w) RGGB -> out (4, h/2, w/2): ch0 = raw[2y+1][2x+1] (B),
 * ch1 = raw[2y][2x+1] (G), ch2 = raw[2y][2x] (R), ch3 = raw[2y+1][2x] (G);
 * x = (raw − black[site]) / (white − black[site]), no clamp. */
static void pack_rggb4(float *out, const uint16_t *raw, int w, int h, const float black[4],
                       float white) {
    static const int dy[4] = {1, 0, 0, 1}, dx[4] = {1, 1, 0, 0};
    int ho = h / 2, wo = w / 2;
    for (int c = 0; c < 4; c++) {
        int site = dy[c] * 2 + dx[c];
        double b = black[site], range = (double)white - black[site];
        for (int y = 0; y < ho; y++)
            for (int x = 0; x < wo; x++) {
                double v = raw[(size_t)(2 * y + dy[c]) * w + 2 * x + dx[c]];
                out[((size_t)c * ho + y) * wo + x] = (float)((v - b) / range);
            }
    }
}

/* mosaic (h, w) RGGB -> out (3, h, w): x = max(raw − black, 0) / (white − black)
 * on its own colour's plane (R at even/even, G at the two mixed sites, B at
 * odd/odd), 1.0 on the other two planes. */
static void split_rggb3(float *out, const uint16_t *raw, int w, int h, const float black[4],
                        float white) {
    static const int plane_of_site[4] = {0, 1, 1, 2};
    size_t hw = (size_t)h * w;
    for (size_t i = 0; i < 3 * hw; i++) out[i] = 1.0f;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int site = (y & 1) * 2 + (x & 1);
            double v = (double)raw[(size_t)y * w + x] - black[site];
            if (v < 0.0) v = 0.0;
            out[plane_of_site[site] * hw + (size_t)y * w + x] =
                (float)(v / ((double)white - black[site]));
        }
}

/* ---------------------------------------------------------------- tables */

#define T1(n, a) {n, 1, {a, 0, 0, 0}}
#define T4(n, a, b, c, d) {n, 4, {a, b, c, d}}

static const ref_tensor_spec efficient_specs[] = {
    T4("conv1.weight", 12, 4, 3, 3),  T1("conv1.bias", 12),
    T4("conv2.weight", 12, 12, 3, 3), T1("conv2.bias", 12),
    T4("conv3.weight", 12, 12, 3, 3), T1("conv3.bias", 12),
};

static const ref_tensor_spec robust_specs[] = {
    T4("conv1.weight", 16, 4, 3, 3),  T1("conv1.bias", 16),
    T4("conv2.weight", 4, 16, 3, 3),  T1("conv2.bias", 4),
    T4("conv3.weight", 12, 4, 3, 3),  T1("conv3.bias", 12),
};

#define RMFA_BLOCK(i)                                                               \
    T4("rmfa_blocks." #i ".texture_module.high_freq.0.weight", 8, 16, 1, 1),        \
    T1("rmfa_blocks." #i ".texture_module.high_freq.0.bias", 8),                    \
    T4("rmfa_blocks." #i ".texture_module.low_freq.0.weight", 8, 16, 3, 3),         \
    T1("rmfa_blocks." #i ".texture_module.low_freq.0.bias", 8),                     \
    T4("rmfa_blocks." #i ".tone_mapping.level1.1.weight", 16, 16, 3, 3),            \
    T1("rmfa_blocks." #i ".tone_mapping.level1.1.bias", 16),                        \
    T4("rmfa_blocks." #i ".tone_mapping.level2.1.weight", 16, 16, 3, 3),            \
    T1("rmfa_blocks." #i ".tone_mapping.level2.1.bias", 16),                        \
    T4("rmfa_blocks." #i ".tone_mapping.level3.0.weight", 16, 16, 3, 3),            \
    T1("rmfa_blocks." #i ".tone_mapping.level3.0.bias", 16),                        \
    T4("rmfa_blocks." #i ".fusion.0.weight", 16, 32, 3, 3),                         \
    T1("rmfa_blocks." #i ".fusion.0.bias", 16),                                     \
    T4("rmfa_blocks." #i ".channel_attention.fc.0.weight", 1, 16, 1, 1),            \
    T4("rmfa_blocks." #i ".channel_attention.fc.2.weight", 16, 1, 1, 1),            \
    T4("rmfa_blocks." #i ".spatial_attention.conv.weight", 1, 2, 7, 7)

static const ref_tensor_spec rmfa_specs[] = {
    T4("input_module.0.weight", 16, 3, 3, 3),  T1("input_module.0.bias", 16),
    T4("input_module.1.weight", 16, 16, 3, 3), T1("input_module.1.bias", 16),
    RMFA_BLOCK(0),
    RMFA_BLOCK(1),
    T4("output_module.0.weight", 3, 16, 3, 3), T1("output_module.0.bias", 3),
};

size_t ref_isp_tensors(ref_net net, const ref_tensor_spec **specs) {
    switch (net) {
    case REF_EFFICIENT:
        *specs = efficient_specs;
        return sizeof efficient_specs / sizeof *efficient_specs;
    case REF_ROBUST:
        *specs = robust_specs;
        return sizeof robust_specs / sizeof *robust_specs;
    case REF_RMFA_TINY:
        *specs = rmfa_specs;
        return sizeof rmfa_specs / sizeof *rmfa_specs;
    }
    *specs = NULL;
    return 0;
}

const char *ref_isp_name(ref_net net) {
    switch (net) {
    case REF_EFFICIENT: return "efficient";
    case REF_ROBUST: return "robust";
    case REF_RMFA_TINY: return "rmfa_tiny";
    }
    return "?";
}

/* Looks every tensor of the table up into w[] (same order); 0 or -1. */
static int fetch(ref_net net, ref_tensor_fn tensor, void *user, const float **w) {
    const ref_tensor_spec *specs;
    size_t n = ref_isp_tensors(net, &specs);
    for (size_t i = 0; i < n; i++)
        if (!(w[i] = tensor(user, specs[i].name))) return -1;
    return 0;
}

/* ------------------------------------------------------------------ nets */

/* EfficientISP / RobustISP: (4, h, w) packed -> conv 4->a tanh -> conv a->b
 * relu -> conv b->12 relu -> pixel_shuffle -> (3, 2h, 2w). w[] in table order:
 * conv1.weight, conv1.bias, conv2.weight, conv2.bias, conv3.weight, conv3.bias. */
static int forward_4ch(const float **w, int a, int b, const uint16_t *mosaic, int width,
                       int height, const float black[4], float white, float *out) {
    int h = height / 2, wd = width / 2;
    size_t hw = (size_t)h * wd;
    float *x = malloc(sizeof *x * 4 * hw), *t1 = malloc(sizeof *t1 * a * hw);
    float *t2 = malloc(sizeof *t2 * b * hw), *t3 = malloc(sizeof *t3 * 12 * hw);
    int rc = -3;
    if (x && t1 && t2 && t3) {
        pack_rggb4(x, mosaic, width, height, black, white); /* (4, h, w) */
        conv2d(t1, x, 4, h, wd, w[0], w[1], a, 3);          /* (a, h, w) */
        tanh_inplace(t1, a * hw);
        conv2d(t2, t1, a, h, wd, w[2], w[3], b, 3);         /* (b, h, w) */
        relu_inplace(t2, b * hw);
        conv2d(t3, t2, b, h, wd, w[4], w[5], 12, 3);        /* (12, h, w) */
        relu_inplace(t3, 12 * hw);
        pixel_shuffle2(out, t3, 3, h, wd);                  /* (3, 2h, 2w) */
        rc = 0;
    }
    free(x);
    free(t1);
    free(t2);
    free(t3);
    return rc;
}

/* The 15 tensors of one RMFABlock, in table order. */
typedef struct {
    const float *hf_w, *hf_b, *lf_w, *lf_b;             /* texture_module */
    const float *l1_w, *l1_b, *l2_w, *l2_b, *l3_w, *l3_b; /* tone_mapping */
    const float *fu_w, *fu_b;                           /* fusion */
    const float *ca_w0, *ca_w2;                         /* channel_attention.fc.0 / .2 */
    const float *sa_w;                                  /* spatial_attention.conv */
} rmfa_block_w;

#define RMFA_C 16

/* TextureModule: x (16, h, w) -> out (16, h, w) = cat[relu(conv1×1 16->8),
 * relu(conv3×3 16->8)]. */
static void texture_module(float *out, const float *x, int h, int w, const rmfa_block_w *bw) {
    size_t hw = (size_t)h * w;
    conv2d(out, x, RMFA_C, h, w, bw->hf_w, bw->hf_b, RMFA_C / 2, 1);
    conv2d(out + (RMFA_C / 2) * hw, x, RMFA_C, h, w, bw->lf_w, bw->lf_b, RMFA_C / 2, 3);
    relu_inplace(out, RMFA_C * hw);
}

/* ToneMappingModule: x (16, h, w) -> out (16, h, w) = x − illumination, with
 * x1 = relu(conv(avgpool2(x)))       (16, h/2, w/2)
 * x2 = relu(conv(avgpool2(x1)))      (16, h/4', w/4')  where h/4' = (h/2)/2
 * x3 = relu(conv(x2))                (16, h/4', w/4')
 * illumination = up2(x1 + up2(x3))   (16, 2·(h/2), 2·(w/2)); resized to (h, w)
 * by F.interpolate when that differs (h or w odd). Needs up2(x3) the size of x1,
 * i.e. h/2 and w/2 even. Returns -3 when out of memory. */
static int tone_mapping(float *out, const float *x, int h, int w, const rmfa_block_w *bw) {
    int h1 = h / 2, w1 = w / 2, h2 = h1 / 2, w2 = w1 / 2;
    size_t n1 = (size_t)RMFA_C * h1 * w1, n2 = (size_t)RMFA_C * h2 * w2;
    size_t nu = (size_t)RMFA_C * (2 * h1) * (2 * w1);
    float *p1 = malloc(sizeof(float) * n1), *x1 = malloc(sizeof(float) * n1);
    float *p2 = malloc(sizeof(float) * n2), *x2 = malloc(sizeof(float) * n2);
    float *x3 = malloc(sizeof(float) * n2), *u3 = malloc(sizeof(float) * n1);
    float *illum = malloc(sizeof(float) * nu);
    float *full = malloc(sizeof(float) * RMFA_C * (size_t)h * w);
    int rc = -3;
    if (p1 && x1 && p2 && x2 && x3 && u3 && illum && full) {
        avgpool2(p1, x, RMFA_C, h, w);                               /* level1 */
        conv2d(x1, p1, RMFA_C, h1, w1, bw->l1_w, bw->l1_b, RMFA_C, 3);
        relu_inplace(x1, n1);
        avgpool2(p2, x1, RMFA_C, h1, w1);                            /* level2 */
        conv2d(x2, p2, RMFA_C, h2, w2, bw->l2_w, bw->l2_b, RMFA_C, 3);
        relu_inplace(x2, n2);
        conv2d(x3, x2, RMFA_C, h2, w2, bw->l3_w, bw->l3_b, RMFA_C, 3); /* level3 */
        relu_inplace(x3, n2);
        ref_bilinear_resize(x3, RMFA_C, h2, w2, u3, 2 * h2, 2 * w2); /* (16, h1, w1) */
        add(u3, u3, x1, n1);
        ref_bilinear_resize(u3, RMFA_C, h1, w1, illum, 2 * h1, 2 * w1);
        const float *il = illum;
        if (2 * h1 != h || 2 * w1 != w) {
            ref_bilinear_resize(illum, RMFA_C, 2 * h1, 2 * w1, full, h, w);
            il = full;
        }
        sub(out, x, il, (size_t)RMFA_C * h * w);
        rc = 0;
    }
    free(p1);
    free(x1);
    free(p2);
    free(x2);
    free(x3);
    free(u3);
    free(illum);
    free(full);
    return rc;
}

/* RMFABlock: x (16, h, w) -> out (16, h, w) =
 * spatial(channel(relu(conv 32->16 (cat[texture(x), tone(x)])))) + x. */
static int rmfa_block(float *out, const float *x, int h, int w, const rmfa_block_w *bw) {
    size_t n = (size_t)RMFA_C * h * w;
    float *cat = malloc(sizeof(float) * 2 * n);
    if (!cat) return -3;
    texture_module(cat, x, h, w, bw);        /* cat[0:16]  */
    int rc = tone_mapping(cat + n, x, h, w, bw); /* cat[16:32] */
    if (rc == 0) {
        conv2d(out, cat, 2 * RMFA_C, h, w, bw->fu_w, bw->fu_b, RMFA_C, 3);
        relu_inplace(out, n);
        channel_attention(out, RMFA_C, h, w, bw->ca_w0, bw->ca_w2, RMFA_C / 16);
        spatial_attention(out, RMFA_C, h, w, bw->sa_w);
        add(out, out, x, n);
    }
    free(cat);
    return rc;
}

/* RMFANet(num_blocks=2, width=16): split (3, h, w) -> conv 3->16 -> conv 16->16
 * -> tanh -> 2 blocks -> conv 16->3 -> sigmoid -> (3, h, w). */
static int forward_rmfa(const float **w, const uint16_t *mosaic, int width, int height,
                        const float black[4], float white, float *out) {
    size_t hw = (size_t)width * height;
    float *x = malloc(sizeof(float) * 3 * hw);
    float *a = malloc(sizeof(float) * RMFA_C * hw), *b = malloc(sizeof(float) * RMFA_C * hw);
    int rc = -3;
    if (x && a && b) {
        split_rggb3(x, mosaic, width, height, black, white);
        conv2d(a, x, 3, height, width, w[0], w[1], RMFA_C, 3);
        conv2d(b, a, RMFA_C, height, width, w[2], w[3], RMFA_C, 3);
        tanh_inplace(b, RMFA_C * hw);
        rc = 0;
        for (int i = 0; i < 2 && rc == 0; i++) {
            const float **t = w + 4 + 15 * i; /* the block's 15 tensors, table order */
            rmfa_block_w bw = {t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7],
                               t[8], t[9], t[10], t[11], t[12], t[13], t[14]};
            rc = rmfa_block(a, b, height, width, &bw);
            float *swap = a;
            a = b;
            b = swap; /* the block's output is now in b */
        }
        if (rc == 0) {
            conv2d(out, b, RMFA_C, height, width, w[34], w[35], 3, 3);
            sigmoid_inplace(out, 3 * hw);
        }
    }
    free(x);
    free(a);
    free(b);
    return rc;
}

int ref_isp_forward(ref_net net, ref_tensor_fn tensor, void *user, const uint16_t *mosaic,
                    int width, int height, const float black[4], float white, float *out) {
    const float *w[sizeof rmfa_specs / sizeof *rmfa_specs];
    switch (net) {
    case REF_EFFICIENT:
    case REF_ROBUST:
        if (width < 2 || height < 2 || (width & 1) || (height & 1)) return -2;
        if (fetch(net, tensor, user, w)) return -1;
        return net == REF_EFFICIENT
                   ? forward_4ch(w, 12, 12, mosaic, width, height, black, white, out)
                   : forward_4ch(w, 16, 4, mosaic, width, height, black, white, out);
    case REF_RMFA_TINY:
        if (width < 4 || height < 4 || (width & 3) > 1 || (height & 3) > 1) return -2;
        if (fetch(net, tensor, user, w)) return -1;
        return forward_rmfa(w, mosaic, width, height, black, white, out);
    }
    return -2;
}
