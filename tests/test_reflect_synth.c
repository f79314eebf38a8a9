/* test_reflect_synth — reflection training pairs (train/reflect_synth.h).
 *
 *   test_reflect_synth PHOTO_DIR [PYTHON SCRIPT]
 *
 * - the separable blur against a direct 2-D convolution (both borders,
 *   kernels 1..21, images down to 1×1 where the mirror folds many times);
 * - Zhang's vignette factor against his whole gkern(size, 3) mask;
 * - each model against a naive per-pixel reference written out here in
 *   double (2-D convolution, the formulas of reference-methods.md §2), on
 *   drawn parameters, with the excess subtraction on and off: ≤ TOL;
 * - the draws: every parameter in its documented range (and reaching its
 *   ends), the mixture and DSRNet's kernel sizes at their frequencies over
 *   N_DRAWS draws (± FREQ_TOL), a fixed number of values taken, same seed
 *   same parameters, a custom mixture, a crop larger than the mask;
 * - Zhang's rejection: each rule alone, a dark R rejected, pairs of normal
 *   photos kept;
 * - views: exact crops, flips, 2×2 area means, area averages at fractional
 *   positions and bilinear enlargement against 2-D references, 8/16/32
 *   bits, windows outside refused, drawn views inside their photo;
 * - tests/torch/reflect_synth.py (numpy + PyTorch, the public code's
 *   formulas in float64) recomputing every model on given parameters and
 *   crops: ≤ TOL.
 * Without the photos the photo checks are skipped, without numpy/torch the
 * cross-check; the test then exits 77 unless something else failed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lumos.h"
#include "test_tmp.h"
#include "train/reflect_synth.h"
#include "train/unprocess.h"

#define TOL 1e-5      /* float C against double references: measured ≤ 1.5e-6 (see the output) */
#define BLUR_TOL 1e-6 /* the blur alone: float stores of a double sum */
#define N_DRAWS 200000
#define FREQ_TOL 0.01 /* ≥ 6 sd of a frequency near .3 over N_DRAWS (sd 0.001) */

enum { W = 37, H = 29 }; /* odd, unequal: rows and columns not confused */

static int skipped;

static double max_diff_fd(const float *a, const double *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs(a[i] - b[i]));
    return d;
}

/* A smooth pattern plus noise in lo..hi: blurs and ghosts have structure to move. */
static void test_image(uint64_t *rng, int w, int h, double lo, double hi, float *img)
{
    double ph = 6.283 * lumos__rng_uniform(rng);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double s = 0.5 + 0.5 * sin(0.37 * x + 0.23 * y + 1.7 * c + ph);
                double v = 0.6 * s + 0.4 * lumos__rng_uniform(rng);
                img[((size_t)y * w + x) * 3 + c] = (float)(lo + (hi - lo) * v);
            }
}

/* ------------------------------------------------- naive references */

/* Reflect-101, folded one step at a time. */
static int fold(int i, int n)
{
    if (n == 1) return 0;
    for (;;) {
        if (i < 0) i = -i;
        else if (i >= n) i = 2 * (n - 1) - i;
        else return i;
    }
}

/* Direct 2-D convolution with the outer product of the Gaussian, the 2-D
 * kernel normalised as a whole. */
static void naive_blur(const double *src, double *dst, int w, int h, int k, double sigma,
                       int border)
{
    int r = k / 2;
    double *k2 = malloc((size_t)k * k * sizeof *k2), sum = 0;
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++)
            sum += k2[a * k + b] =
                exp(-((a - r) * (a - r) + (b - r) * (b - r)) / (2 * sigma * sigma));
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double acc = 0;
                for (int a = 0; a < k; a++)
                    for (int b = 0; b < k; b++) {
                        int sy = y + a - r, sx = x + b - r;
                        if (sy < 0 || sy >= h || sx < 0 || sx >= w) {
                            if (border == LUMOS__REFLECT_ZERO) continue;
                            sy = fold(sy, h);
                            sx = fold(sx, w);
                        }
                        acc += k2[a * k + b] / sum * src[((size_t)sy * w + sx) * 3 + c];
                    }
                dst[((size_t)y * w + x) * 3 + c] = acc;
            }
    free(k2);
}

/* Zhang's gkern(size, 3), the whole 2-D mask as his code builds it. */
static double *naive_gkern(int size)
{
    double interval = 7.0 / size, lo = -3 - interval / 2, hi = 3 + interval / 2;
    double *k = malloc((size_t)size * sizeof *k), *m = malloc((size_t)size * size * sizeof *m);
    for (int i = 0; i < size; i++) {
        double x0 = lo + (hi - lo) * i / size, x1 = i + 1 == size ? hi : lo + (hi - lo) * (i + 1) / size;
        k[i] = 0.5 * (erf(x1 / sqrt(2)) - erf(x0 / sqrt(2)));
    }
    double sum = 0, mx = 0;
    for (int i = 0; i < size * size; i++) sum += m[i] = sqrt(k[i / size] * k[i % size]);
    for (int i = 0; i < size * size; i++) mx = fmax(mx, m[i] /= sum);
    for (int i = 0; i < size * size; i++) m[i] /= mx;
    free(k);
    return m;
}

static double clampd(double v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

static int overflowed; /* the last naive model subtracted an excess over 1 */

/* CEILNet's addition on a given reflection layer rb (ghost too). */
static void naive_add(const float *t, const double *rb, double gamma, size_t n, double *in,
                      double *rl)
{
    double mx = -1, sum = 0;
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, t[i] + rb[i]);
    overflowed = mx > 1;
    for (size_t i = 0; i < n; i++)
        if (t[i] + rb[i] > 1) {
            sum += t[i] + rb[i];
            cnt++;
        }
    for (size_t i = 0; i < n; i++) {
        if (mx > 1) {
            rl[i] = clampd(rb[i] - (sum / cnt - 1) * gamma);
            in[i] = clampd(t[i] + rl[i]);
        } else {
            rl[i] = rb[i];
            in[i] = t[i] + rb[i];
        }
    }
}

/* The model of p on t and r, per pixel; returns Zhang's rejection. */
static int naive_model(const lumos__reflect_params *p, int w, int h, const float *t, const float *r,
                       double *in, double *rl)
{
    const size_t n = (size_t)w * h * 3;
    double *a = malloc(n * sizeof *a), *rb = malloc(n * sizeof *rb), *g = malloc(n * sizeof *g);
    int reject = 0;
    overflowed = 0;
    if (p->model == LUMOS__REFLECT_ZHANG) {
        for (size_t i = 0; i < n; i++) a[i] = pow(r[i], 2.2);
        naive_blur(a, rb, w, h, p->ksize, p->sigma, p->border);
        double *mask = naive_gkern(p->vig_size);
        for (int c = 0; c < 3; c++) {
            double sum = 0, cnt = 0;
            for (int i = 0; i < w * h; i++) {
                double blend = rb[i * 3 + c] + pow(t[i * 3 + c], 2.2);
                if (blend > 1) sum += blend, cnt++;
            }
            double mean = fmax(1, sum / (cnt + 1e-6));
            overflowed |= cnt > 0;
            for (int i = 0; i < w * h; i++) rb[i * 3 + c] = clampd(rb[i * 3 + c] - (mean - 1) * p->att);
        }
        double mean_t = 0, mean_r = 0, max_t = 0, max_rl = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    size_t i = ((size_t)y * w + x) * 3 + c;
                    double v = rb[i] * mask[(size_t)(p->vig_y + y) * p->vig_size + p->vig_x + x];
                    in[i] = clampd(pow(v + pow(t[i], 2.2) * p->t_scale, 1 / 2.2));
                    rl[i] = pow(v, 1 / 2.2);
                    mean_t += t[i] / n;
                    mean_r += r[i] / n;
                    max_t = fmax(max_t, t[i]);
                    max_rl = fmax(max_rl, rl[i]);
                }
        reject = mean_t / 2 > mean_r || max_rl < 0.15 || max_t < 0.15;
        free(mask);
    } else {
        for (size_t i = 0; i < n; i++) a[i] = r[i];
        naive_blur(a, rb, w, h, p->ksize, p->sigma, p->border);
        if (p->model == LUMOS__REFLECT_CEILNET) {
            naive_add(t, rb, p->gamma, n, in, rl);
        } else if (p->model == LUMOS__REFLECT_SCREEN) {
            for (size_t i = 0; i < n; i++) {
                double at = p->alpha * t[i], br = p->beta * rb[i];
                in[i] = at + br - at * br;
                rl[i] = br;
            }
        } else { /* ghost: (R_b(x) + c R_b(x − d)) / (1 + c) */
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    for (int c = 0; c < 3; c++) {
                        int sy = y - p->ghost_dy, sx = x - p->ghost_dx;
                        double s = 0;
                        if (sy >= 0 && sy < h && sx >= 0 && sx < w)
                            s = rb[((size_t)sy * w + sx) * 3 + c];
                        else if (p->border == LUMOS__REFLECT_MIRROR)
                            s = rb[((size_t)fold(sy, h) * w + fold(sx, w)) * 3 + c];
                        g[((size_t)y * w + x) * 3 + c] =
                            (rb[((size_t)y * w + x) * 3 + c] + p->ghost_c * s) / (1 + p->ghost_c);
                    }
            naive_add(t, g, p->gamma, n, in, rl);
        }
    }
    free(a);
    free(rb);
    free(g);
    return reject;
}

/* ------------------------------------------------------------ blur */

static void test_blur(void)
{
    static const int sizes[][2] = {{W, H}, {1, 1}, {2, 3}, {5, 1}, {12, 7}};
    static const int ks[] = {1, 3, 5, 11, 21};
    uint64_t rng = 7;
    double worst = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        int w = sizes[s][0], h = sizes[s][1];
        size_t n = (size_t)w * h * 3;
        float *src = malloc(n * sizeof *src), *dst = malloc(n * sizeof *dst),
              *tmp = malloc(n * sizeof *tmp);
        double *srcd = malloc(n * sizeof *srcd), *ref = malloc(n * sizeof *ref);
        test_image(&rng, w, h, 0, 1, src);
        for (size_t i = 0; i < n; i++) srcd[i] = src[i];
        for (size_t k = 0; k < sizeof ks / sizeof *ks; k++)
            for (int border = 0; border < 2; border++) {
                double sigma = 0.5 + 4.5 * lumos__rng_uniform(&rng);
                lumos__reflect_blur(src, dst, tmp, w, h, ks[k], sigma, border);
                naive_blur(srcd, ref, w, h, ks[k], sigma, border);
                double d = max_diff_fd(dst, ref, n);
                worst = fmax(worst, d);
                CHECK(d <= BLUR_TOL, "blur %dx%d k %d sigma %g border %d: off by %g", w, h, ks[k],
                      sigma, border, d);
            }
        free(src);
        free(dst);
        free(tmp);
        free(srcd);
        free(ref);
    }
    /* getGaussianKernel's values */
    double g[5];
    lumos__reflect_gaussian(5, 1.0, g);
    double e1 = exp(-0.5), e2 = exp(-2.0), s = 1 + 2 * e1 + 2 * e2;
    CHECK(fabs(g[2] - 1 / s) < 1e-15 && fabs(g[0] - e2 / s) < 1e-15 && fabs(g[3] - e1 / s) < 1e-15,
          "getGaussianKernel(5, 1) = %g %g %g", g[0], g[2], g[3]);
    printf("blur: separable vs 2-D convolution, max diff %.2g\n", worst);
}

static void test_vignette(void)
{
    static const int sizes[] = {LUMOS__REFLECT_VIGNETTE, 811, 33};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        int size = sizes[s];
        double *m = naive_gkern(size), *f = malloc((size_t)size * sizeof *f), worst = 0, peak = 0;
        lumos__reflect_vignette(size, 0, size, f);
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++) {
                worst = fmax(worst, fabs(f[y] * f[x] - m[(size_t)y * size + x]));
                peak = fmax(peak, f[y] * f[x]);
            }
        CHECK(worst < 1e-12, "vignette %d: f f^T off the gkern mask by %g", size, worst);
        CHECK(fabs(peak - 1) < 1e-15, "vignette %d: peak %.17g, not 1", size, peak);
        /* an offset crop of it */
        double part[7];
        lumos__reflect_vignette(size, size / 3, 7, part);
        for (int i = 0; i < 7; i++)
            CHECK(fabs(part[i] - f[size / 3 + i]) < 1e-15, "vignette %d: entry %d of a crop", size,
                  size / 3 + i);
        if (size == LUMOS__REFLECT_VIGNETTE)
            printf("vignette: gkern(560, 3) corner %.4f, edge middle %.4f, worst diff %.2g\n", m[0],
                   m[279], worst);
        free(m);
        free(f);
    }
}

/* ------------------------------------------------------------ models */

static void test_models(lumos_ctx *ctx)
{
    const size_t n = (size_t)W * H * 3;
    float *t = malloc(n * sizeof *t), *r = malloc(n * sizeof *r), *in = malloc(n * sizeof *in),
          *tg = malloc(n * sizeof *tg), *rl = malloc(n * sizeof *rl);
    double *ref_in = malloc(n * sizeof *ref_in), *ref_rl = malloc(n * sizeof *ref_rl);
    uint64_t rng = 99;
    for (int m = 0; m < LUMOS__REFLECT_MODELS; m++) {
        double worst = 0;
        int excess = 0, plain = 0;
        for (int k = 0; k < 8; k++) {
            lumos__reflect_params p;
            lumos__reflect_draw_model(&rng, (lumos__reflect_model)m, W, H, &p);
            if (k & 1) p.border = LUMOS__REFLECT_ZERO;
            /* bright pairs overflow (the excess subtraction runs), dark ones do not */
            int dark = k >= 6;
            test_image(&rng, W, H, dark ? 0 : 0.3, dark ? 0.4 : 1, t);
            test_image(&rng, W, H, dark ? 0 : 0.2, dark ? 0.4 : 1, r);
            int rc = lumos__reflect_apply(ctx, &p, W, H, t, r, in, tg, rl);
            int ref = naive_model(&p, W, H, t, r, ref_in, ref_rl);
            CHECK(rc == 0 || rc == LUMOS__REFLECT_REJECTED, "%s: %s",
                  lumos__reflect_model_name(m), lumos_last_error(ctx));
            CHECK(rc == ref, "%s draw %d: rejected %d, reference %d", lumos__reflect_model_name(m),
                  k, rc, ref);
            double d = fmax(max_diff_fd(in, ref_in, n), max_diff_fd(rl, ref_rl, n));
            worst = fmax(worst, d);
            CHECK(d <= TOL, "%s draw %d (k %d sigma %g border %d): off the naive model by %g",
                  lumos__reflect_model_name(m), k, p.ksize, p.sigma, p.border, d);
            CHECK(!memcmp(tg, t, n * sizeof *t), "%s: the target is not T",
                  lumos__reflect_model_name(m));
            float lo = 1, hi = 0;
            for (size_t i = 0; i < n; i++) {
                lo = fminf(lo, fminf(in[i], rl[i]));
                hi = fmaxf(hi, fmaxf(in[i], rl[i]));
            }
            CHECK(lo >= 0 && hi <= 1, "%s: I or R' outside 0..1 (%g..%g)",
                  lumos__reflect_model_name(m), lo, hi);
            if (overflowed) excess++;
            else plain++;
            /* Deterministic, and refl and target optional. */
            float *in2 = malloc(n * sizeof *in2);
            int rc2 = lumos__reflect_apply(ctx, &p, W, H, t, r, in2, NULL, NULL);
            CHECK(rc2 == rc && !memcmp(in, in2, n * sizeof *in), "%s: a second run differs",
                  lumos__reflect_model_name(m));
            free(in2);
        }
        printf("%-8s vs naive reference: max diff %.2g (%d pairs over 1, %d not)\n",
               lumos__reflect_model_name(m), worst, excess, plain);
        if (m != LUMOS__REFLECT_SCREEN) /* a screen blend never passes 1 */
            CHECK(excess >= 4 && plain >= 2, "%s: %d pairs over 1, %d not: both cases wanted",
                  lumos__reflect_model_name(m), excess, plain);
    }
    /* Screen with the excess visible: I = αT + βR_b − αTβR_b at one pixel. */
    lumos__reflect_params p;
    lumos__reflect_draw_model(&rng, LUMOS__REFLECT_SCREEN, W, H, &p);
    p.ksize = 1; /* no blur: R_b = R */
    for (size_t i = 0; i < n; i++) t[i] = 0.5f, r[i] = 0.5f;
    lumos__reflect_apply(ctx, &p, W, H, t, r, in, NULL, rl);
    float want = p.alpha * 0.5f + p.beta * 0.5f - p.alpha * 0.5f * p.beta * 0.5f;
    CHECK(fabsf(in[17] - want) < 1e-6f, "screen of 0.5 and 0.5: %g, want %g", in[17], want);
    /* CEILNet on T + R = 1.5 everywhere: m = 1.3·0.5, R' = clip(0.5 − 0.65) = 0, I = T. */
    lumos__reflect_draw_model(&rng, LUMOS__REFLECT_CEILNET, W, H, &p);
    for (size_t i = 0; i < n; i++) t[i] = 1.0f, r[i] = 0.5f;
    lumos__reflect_apply(ctx, &p, W, H, t, r, in, NULL, rl);
    CHECK(rl[40] == 0 && in[40] == 1, "ceilnet on a flat overflow: R' %g I %g", rl[40], in[40]);
    /* Bad parameters are refused. */
    lumos__reflect_params bad = p;
    bad.ksize = 4;
    CHECK(lumos__reflect_apply(ctx, &bad, W, H, t, r, in, NULL, NULL) == LUMOS_E_ARG,
          "an even kernel accepted");
    bad = p;
    bad.model = LUMOS__REFLECT_MODELS;
    CHECK(lumos__reflect_apply(ctx, &bad, W, H, t, r, in, NULL, NULL) == LUMOS_E_ARG,
          "an unknown model accepted");
    lumos__reflect_draw_model(&rng, LUMOS__REFLECT_ZHANG, W, H, &bad);
    bad.vig_x = bad.vig_size - W + 1;
    CHECK(lumos__reflect_apply(ctx, &bad, W, H, t, r, in, NULL, NULL) == LUMOS_E_ARG,
          "a vignette crop outside the mask accepted");
    free(t);
    free(r);
    free(in);
    free(tg);
    free(rl);
    free(ref_in);
    free(ref_rl);
}

/* ------------------------------------------------------------ draws */

static void test_draws(void)
{
    uint64_t rng = 2024;
    long count[LUMOS__REFLECT_MODELS] = {0}, ks[12] = {0}, screens = 0;
    double lo[LUMOS__REFLECT_MODELS][8], hi[LUMOS__REFLECT_MODELS][8];
    for (int m = 0; m < LUMOS__REFLECT_MODELS; m++)
        for (int k = 0; k < 8; k++) lo[m][k] = 1e9, hi[m][k] = -1e9;
    /* Zhang's vignette offsets, the ghost's |d| and dx: lowest, highest */
    int vx[2] = {1 << 30, -1}, vy[2] = {1 << 30, -1}, gx[2] = {1 << 30, -(1 << 30)};
    double gd[2] = {1e9, -1};
    int bad = 0;
    for (long i = 0; i < N_DRAWS; i++) {
        lumos__reflect_params p;
        uint64_t before = rng, want = rng;
        lumos__reflect_draw(&rng, NULL, 224, 160, &p);
        for (int k = 0; k < 1 + LUMOS__REFLECT_DRAWS; k++) lumos__rng_next(&want);
        if (rng != want && bad++ < 3) CHECK(0, "draw %ld took other than %d values", i, 1 + LUMOS__REFLECT_DRAWS);
        if (i < 100) { /* same seed, same parameters */
            lumos__reflect_params q;
            lumos__reflect_draw(&before, NULL, 224, 160, &q);
            CHECK(!memcmp(&p, &q, sizeof p), "draw %ld: same seed, other parameters", i);
        }
        int m = p.model;
        CHECK(m >= 0 && m < LUMOS__REFLECT_MODELS, "model %d", m);
        if (m < 0 || m >= LUMOS__REFLECT_MODELS) continue;
        count[m]++;
        CHECK(p.border == LUMOS__REFLECT_MIRROR, "border %d", p.border);
        double v[8] = {p.sigma, p.ksize, p.gamma, p.alpha, p.beta, p.att, p.t_scale, p.ghost_c};
        for (int k = 0; k < 8; k++) {
            lo[m][k] = fmin(lo[m][k], v[k]);
            hi[m][k] = fmax(hi[m][k], v[k]);
        }
        int ok = 1;
        switch (m) {
        case LUMOS__REFLECT_CEILNET:
            ok = p.sigma >= 2 && p.sigma < 5 && p.ksize == 11 && p.gamma == 1.3f;
            break;
        case LUMOS__REFLECT_ZHANG: {
            double k = (p.sigma - 1) * 79 / 4;
            ok = fabs(k - lrint(k)) < 1e-4 && k > -0.5 && k < 79.5 &&
                 p.ksize == 2 * (int)ceil(2 * (double)p.sigma - 1e-6) + 1 && p.att >= 1.08f &&
                 p.att <= 1.18f && p.t_scale > 0.8f && p.t_scale <= 1 && p.vig_size == 560 &&
                 p.vig_x >= 0 && p.vig_x <= 560 - 224 - 11 && p.vig_y >= 0 &&
                 p.vig_y <= 560 - 160 - 11;
            vx[0] = p.vig_x < vx[0] ? p.vig_x : vx[0], vx[1] = p.vig_x > vx[1] ? p.vig_x : vx[1];
            vy[0] = p.vig_y < vy[0] ? p.vig_y : vy[0], vy[1] = p.vig_y > vy[1] ? p.vig_y : vy[1];
            break;
        }
        case LUMOS__REFLECT_SCREEN:
            ok = p.sigma >= 2 && p.sigma < 5 && p.ksize >= 5 && p.ksize <= 11 && (p.ksize & 1) &&
                 p.alpha >= 0.8f && p.alpha <= 1 && p.beta >= 0.4f && p.beta <= 1;
            ks[p.ksize]++;
            screens++;
            break;
        case LUMOS__REFLECT_GHOST: {
            double d = hypot(p.ghost_dx, p.ghost_dy);
            ok = p.sigma >= 0.5f && p.sigma < 2 && p.ksize == 2 * (int)ceil(2 * (double)p.sigma) + 1 &&
                 p.ghost_c >= 0.3f && p.ghost_c < 0.8f && d >= 3 - 0.71 && d <= 15 + 0.71 &&
                 p.gamma == 1.3f;
            gd[0] = fmin(gd[0], d), gd[1] = fmax(gd[1], d);
            gx[0] = p.ghost_dx < gx[0] ? p.ghost_dx : gx[0];
            gx[1] = p.ghost_dx > gx[1] ? p.ghost_dx : gx[1];
            break;
        }
        }
        if (!ok && bad++ < 5)
            CHECK(0, "%s draw out of range: sigma %g k %d gamma %g alpha %g beta %g att %g t %g vig %d,%d c %g d %d,%d",
                  lumos__reflect_model_name(m), p.sigma, p.ksize, p.gamma, p.alpha, p.beta, p.att,
                  p.t_scale, p.vig_x, p.vig_y, p.ghost_c, p.ghost_dx, p.ghost_dy);
    }
    /* the documented mixture, written out (not lumos__reflect_mix: a
     * changed table must fail here until the header says so) */
    static const double documented[LUMOS__REFLECT_MODELS] = {0.30, 0.25, 0.30, 0.15};
    printf("mixture over %d draws:", N_DRAWS);
    for (int m = 0; m < LUMOS__REFLECT_MODELS; m++) {
        double f = (double)count[m] / N_DRAWS;
        printf(" %s %.4f", lumos__reflect_model_name(m), f);
        CHECK(fabs(f - documented[m]) <= FREQ_TOL, "%s drawn %.4f of the time, not %.2f",
              lumos__reflect_model_name(m), f, documented[m]);
        CHECK(lumos__reflect_mix[m] == documented[m], "lumos__reflect_mix[%s] = %g, documented %g",
              lumos__reflect_model_name(m), lumos__reflect_mix[m], documented[m]);
    }
    printf("\n");
    static const double kp[4] = {0.1, 0.2, 0.3, 0.4};
    for (int i = 0; i < 4; i++) {
        double f = screens ? (double)ks[5 + 2 * i] / screens : 0;
        CHECK(fabs(f - kp[i]) <= FREQ_TOL, "screen kernel %d drawn %.4f, not %.1f", 5 + 2 * i, f, kp[i]);
    }
    /* the ranges are covered to their ends */
    CHECK(lo[0][0] < 2.01 && hi[0][0] > 4.99, "ceilnet sigma %g..%g", lo[0][0], hi[0][0]);
    CHECK(lo[1][1] == 5 && hi[1][1] == 21, "zhang kernels %g..%g", lo[1][1], hi[1][1]);
    CHECK(lo[1][5] < 1.081 && hi[1][5] > 1.179, "zhang att %g..%g", lo[1][5], hi[1][5]);
    CHECK(lo[1][6] < 0.801 && hi[1][6] > 0.999, "zhang t_scale %g..%g", lo[1][6], hi[1][6]);
    CHECK(vx[0] == 0 && vx[1] == 560 - 224 - 11, "zhang vig_x %d..%d", vx[0], vx[1]);
    CHECK(vy[0] == 0 && vy[1] == 560 - 160 - 11, "zhang vig_y %d..%d", vy[0], vy[1]);
    CHECK(lo[2][3] < 0.801 && hi[2][3] > 0.999 && lo[2][4] < 0.401 && hi[2][4] > 0.999,
          "screen alpha %g..%g beta %g..%g", lo[2][3], hi[2][3], lo[2][4], hi[2][4]);
    CHECK(lo[3][0] < 0.51 && hi[3][0] > 1.99 && lo[3][7] < 0.301 && hi[3][7] > 0.799,
          "ghost sigma %g..%g c %g..%g", lo[3][0], hi[3][0], lo[3][7], hi[3][7]);
    CHECK(gx[0] == -15 && gx[1] == 15 && gd[0] < 3.1 && gd[1] > 14.9, "ghost dx %d..%d |d| %g..%g",
          gx[0], gx[1], gd[0], gd[1]);
    /* a custom mixture; a crop larger than Zhang's mask */
    static const double only_ghost[4] = {0, 0, 0, 2};
    int all = 1;
    for (int i = 0; i < 1000; i++) {
        lumos__reflect_params p;
        lumos__reflect_draw(&rng, only_ghost, 64, 64, &p);
        all &= p.model == LUMOS__REFLECT_GHOST;
    }
    CHECK(all, "a mixture of ghosts alone drew another model");
    lumos__reflect_params p;
    lumos__reflect_draw_model(&rng, LUMOS__REFLECT_ZHANG, 800, 300, &p);
    CHECK(p.vig_size == 811 && p.vig_x == 0 && p.vig_y >= 0 && p.vig_y <= 811 - 300 - 11,
          "an 800x300 crop: mask %d at %d,%d", p.vig_size, p.vig_x, p.vig_y);
}

/* ------------------------------------------------------------ rejection */

static int zhang_of(lumos_ctx *ctx, const lumos__reflect_params *p, int w, int h, const float *t,
                    const float *r)
{
    size_t n = (size_t)w * h * 3;
    float *in = malloc(n * sizeof *in);
    int rc = lumos__reflect_apply(ctx, p, w, h, t, r, in, NULL, NULL);
    free(in);
    return rc;
}

static void test_rejection(lumos_ctx *ctx)
{
    const size_t n = (size_t)W * H * 3;
    float *t = malloc(n * sizeof *t), *r = malloc(n * sizeof *r);
    uint64_t rng = 5;
    lumos__reflect_params p;
    lumos__reflect_draw_model(&rng, LUMOS__REFLECT_ZHANG, W, H, &p);
    p.vig_x = 280 - W / 2; /* the mask's middle: vignette ~1 */
    p.vig_y = 280 - H / 2;
    /* each rule alone; the mean rule on both sides of its threshold: flat
     * T 0.8 (mean/2 = 0.4) and flat R 0.395 / 0.405 (R' ~ 0.4, kept) */
    for (size_t i = 0; i < n; i++) t[i] = 0.8f, r[i] = 0.395f;
    CHECK(zhang_of(ctx, &p, W, H, t, r) == LUMOS__REFLECT_REJECTED, "mean(T)/2 > mean(R) kept");
    for (size_t i = 0; i < n; i++) r[i] = 0.405f;
    CHECK(zhang_of(ctx, &p, W, H, t, r) == 0, "mean(T)/2 < mean(R) rejected");
    test_image(&rng, W, H, 0.2, 0.5, r);
    test_image(&rng, W, H, 0.5, 0.7, t); /* now mean(T)/2 < mean(R) */
    CHECK(zhang_of(ctx, &p, W, H, t, r) == 0, "a bright R rejected");
    test_image(&rng, W, H, 0.05, 0.14, t);
    CHECK(zhang_of(ctx, &p, W, H, t, r) == LUMOS__REFLECT_REJECTED, "max T < 0.15 kept");
    test_image(&rng, W, H, 0.151, 0.17, t);
    test_image(&rng, W, H, 0.09, 0.1, r); /* mean rule passes, R' <= 0.1 */
    CHECK(zhang_of(ctx, &p, W, H, t, r) == LUMOS__REFLECT_REJECTED, "max R' < 0.15 kept");
    /* other models never reject */
    for (int m = 0; m < LUMOS__REFLECT_MODELS; m++) {
        if (m == LUMOS__REFLECT_ZHANG) continue;
        lumos__reflect_params q;
        lumos__reflect_draw_model(&rng, (lumos__reflect_model)m, W, H, &q);
        CHECK(zhang_of(ctx, &q, W, H, t, r) == 0, "%s rejected a pair", lumos__reflect_model_name(m));
    }
    free(t);
    free(r);
}

/* Photos: views over their whole short side (means .39–.45) are kept as
 * T and R in every order; the same R darkened ×0.1 is rejected. */
static void test_photos(lumos_ctx *ctx, const char *dir)
{
    static const char *names[] = {"astronaut.png", "coffee.png", "chelsea.png"};
    enum { N_PHOTOS = 3, S = 128 };
    float *crop[N_PHOTOS] = {0};
    for (int i = 0; i < N_PHOTOS; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        lumos_image img;
        if (lumos_image_read(ctx, path, &img) != LUMOS_OK || img.channels != 3) {
            printf("[SKIP] no photo %s: the photo checks skipped\n", path);
            skipped = 1;
            for (int k = 0; k < i; k++) free(crop[k]);
            return;
        }
        int sh = img.width < img.height ? img.width : img.height;
        lumos__reflect_view v = {(img.width - sh) / 2, (img.height - sh) / 2, (double)sh / S, 0};
        crop[i] = malloc((size_t)S * S * 3 * sizeof(float));
        CHECK(lumos__reflect_view_apply(ctx, &img, &v, S, S, crop[i]) == LUMOS_OK, "%s",
              lumos_last_error(ctx));
        lumos_image_free(&img);
    }
    uint64_t rng = 11;
    int kept = 0, tries = 0, dark_rejected = 0;
    float *dark = malloc((size_t)S * S * 3 * sizeof *dark);
    for (int a = 0; a < N_PHOTOS; a++)
        for (int b = 0; b < N_PHOTOS; b++) {
            if (a == b) continue;
            for (size_t i = 0; i < (size_t)S * S * 3; i++) dark[i] = 0.1f * crop[b][i];
            for (int k = 0; k < 10; k++) {
                lumos__reflect_params p;
                lumos__reflect_draw_model(&rng, LUMOS__REFLECT_ZHANG, S, S, &p);
                kept += zhang_of(ctx, &p, S, S, crop[a], crop[b]) == 0;
                dark_rejected += zhang_of(ctx, &p, S, S, crop[a], dark) == LUMOS__REFLECT_REJECTED;
                tries++;
            }
        }
    CHECK(kept == tries, "%d of %d pairs of normal photos rejected", tries - kept, tries);
    CHECK(dark_rejected == tries, "%d of %d pairs with a dark R kept", tries - dark_rejected, tries);
    printf("photos: %d/%d normal pairs kept, %d/%d with R x0.1 rejected\n", kept, tries,
           dark_rejected, tries);
    free(dark);
    for (int i = 0; i < N_PHOTOS; i++) free(crop[i]);
}

/* ------------------------------------------------------------ views */

/* The 2-D reference: each output pixel the source integrated over its
 * footprint square (step > 1), or bilinear at its centre (step <= 1). */
static double naive_view(const lumos_image *src, const lumos__reflect_view *v, int w, int x,
                         int y, int c)
{
    int ox = v->flip_x ? w - 1 - x : x;
    double scale = src->bits == 8 ? 1 / 255.0 : src->bits == 16 ? 1 / 65535.0 : 1;
#define PX(yy, xx)                                                                            \
    (src->bits == 32 ? ((const float *)((const uint8_t *)src->data + (size_t)(yy) * src->stride))[(xx) * 3 + c] \
     : src->bits == 16 ? ((const uint16_t *)((const uint8_t *)src->data + (size_t)(yy) * src->stride))[(xx) * 3 + c] * scale \
                       : ((const uint8_t *)src->data + (size_t)(yy) * src->stride)[(xx) * 3 + c] * scale)
    if (v->step > 1) {
        double ax = v->x + ox * v->step, ay = v->y + y * v->step, acc = 0, area = 0;
        for (int sy = (int)floor(ay); sy < ay + v->step && sy < src->height; sy++)
            for (int sx = (int)floor(ax); sx < ax + v->step && sx < src->width; sx++) {
                double cover = (fmin(sx + 1, ax + v->step) - fmax(sx, ax)) *
                               (fmin(sy + 1, ay + v->step) - fmax(sy, ay));
                acc += cover * PX(sy, sx);
                area += cover;
            }
        return acc / area;
    }
    double sx = fmin(fmax(v->x + (ox + 0.5) * v->step - 0.5, 0), src->width - 1);
    double sy = fmin(fmax(v->y + (y + 0.5) * v->step - 0.5, 0), src->height - 1);
    int x0 = (int)sx, y0 = (int)sy, x1 = x0 + 1 < src->width ? x0 + 1 : x0,
        y1 = y0 + 1 < src->height ? y0 + 1 : y0;
    double fx = sx - x0, fy = sy - y0;
    return (1 - fy) * ((1 - fx) * PX(y0, x0) + fx * PX(y0, x1)) +
           fy * ((1 - fx) * PX(y1, x0) + fx * PX(y1, x1));
#undef PX
}

static void test_views(lumos_ctx *ctx)
{
    enum { SW = 61, SH = 47 };
    uint64_t rng = 3;
    for (int bits = 8; bits <= 32; bits *= 2) {
        lumos_image img;
        CHECK(lumos_image_alloc(&img, SW, SH, 3, bits) == LUMOS_OK, "alloc");
        for (int y = 0; y < SH; y++)
            for (int x = 0; x < SW * 3; x++) {
                uint8_t *row = (uint8_t *)img.data + (size_t)y * img.stride;
                double u = lumos__rng_uniform(&rng);
                if (bits == 8) row[x] = (uint8_t)(u * 256);
                else if (bits == 16) ((uint16_t *)(void *)row)[x] = (uint16_t)(u * 65536);
                else ((float *)(void *)row)[x] = (float)u;
            }
        static const lumos__reflect_view views[] = {
            {5, 7, 1, 0}, {5, 7, 1, 1}, {4, 2, 2, 0}, {1.5, 2.25, 3, 1}, {0.3, 0, 2.6, 0},
            {10, 8, 0.5, 0}, {0, 0, 0.37, 1}, {20.5, 3, 1, 0},
        };
        enum { OW = 16, OH = 12 };
        float out[OW * OH * 3];
        double worst = 0;
        for (size_t k = 0; k < sizeof views / sizeof *views; k++) {
            const lumos__reflect_view *v = &views[k];
            CHECK(lumos__reflect_view_apply(ctx, &img, v, OW, OH, out) == LUMOS_OK, "view %zu: %s",
                  k, lumos_last_error(ctx));
            double d = 0;
            for (int y = 0; y < OH; y++)
                for (int x = 0; x < OW; x++)
                    for (int c = 0; c < 3; c++)
                        d = fmax(d, fabs(out[(y * OW + x) * 3 + c] - naive_view(&img, v, OW, x, y, c)));
            worst = fmax(worst, d);
            CHECK(d <= 1e-6, "%d bits, view %zu (%g,%g step %g flip %d): off by %g", bits, k, v->x,
                  v->y, v->step, v->flip_x, d);
        }
        /* step 1 at whole pixels is the crop itself, exactly */
        lumos__reflect_view v = {5, 7, 1, 1};
        lumos__reflect_view_apply(ctx, &img, &v, OW, OH, out);
        int exact = 1;
        for (int y = 0; y < OH; y++)
            for (int x = 0; x < OW; x++)
                for (int c = 0; c < 3; c++) {
                    const uint8_t *row = (const uint8_t *)img.data + (size_t)(7 + y) * img.stride;
                    int sx = 5 + OW - 1 - x;
                    float want = bits == 8    ? row[sx * 3 + c] * (1.f / 255.f)
                                 : bits == 16 ? ((const uint16_t *)(const void *)row)[sx * 3 + c] * (1.f / 65535.f)
                                              : ((const float *)(const void *)row)[sx * 3 + c];
                    exact &= out[(y * OW + x) * 3 + c] == want;
                }
        CHECK(exact, "%d bits: a flipped step-1 view is not the mirrored crop", bits);
        /* step 2: the 2×2 means */
        v = (lumos__reflect_view){4, 2, 2, 0};
        lumos__reflect_view_apply(ctx, &img, &v, OW, OH, out);
        double dm = 0;
        for (int y = 0; y < OH; y++)
            for (int x = 0; x < OW; x++) {
                lumos__reflect_view one = {4 + 2 * x, 2 + 2 * y, 1, 0};
                float q[2 * 2 * 3];
                lumos__reflect_view_apply(ctx, &img, &one, 2, 2, q);
                for (int c = 0; c < 3; c++)
                    dm = fmax(dm, fabs(out[(y * OW + x) * 3 + c] - (q[c] + q[3 + c] + q[6 + c] + q[9 + c]) / 4));
            }
        CHECK(dm <= 1e-6, "%d bits: step 2 off the 2x2 means by %g", bits, dm);
        /* windows outside, bad images */
        lumos__reflect_view out_of = {SW - OW + 1, 0, 1, 0};
        CHECK(lumos__reflect_view_apply(ctx, &img, &out_of, OW, OH, out) == LUMOS_E_ARG,
              "a window past the right edge accepted");
        out_of = (lumos__reflect_view){0, 0, 4, 0};
        CHECK(lumos__reflect_view_apply(ctx, &img, &out_of, OW, OH, out) == LUMOS_E_ARG,
              "a window taller than the photo accepted");
        if (bits == 8) printf("views: max diff against 2-D area/bilinear references %.2g\n", worst);
        lumos_image_free(&img);
    }
    /* drawn views fit, scale the short side to [c, 2c), flip half the time */
    int flips = 0, fit = 1;
    double smin = 1e9, smax = 0;
    for (int i = 0; i < 10000; i++) {
        lumos__reflect_view v;
        CHECK(lumos__reflect_view_draw(ctx, &rng, 512, 384, 128, 96, &v) == LUMOS_OK, "draw");
        fit &= v.x >= 0 && v.y >= 0 && v.x + 128 * v.step <= 512 + 1e-9 &&
               v.y + 96 * v.step <= 384 + 1e-9 && v.x == floor(v.x) && v.y == floor(v.y);
        smin = fmin(smin, v.step);
        smax = fmax(smax, v.step);
        flips += v.flip_x;
    }
    CHECK(fit, "a drawn view leaves its photo");
    CHECK(smin >= 1.5 && smin < 1.51 && smax <= 3 && smax > 2.98, "steps %g..%g, not 1.5..3", smin,
          smax);
    CHECK(abs(flips - 5000) < 300, "%d flips of 10000", flips);
    lumos__reflect_view v;
    CHECK(lumos__reflect_view_draw(ctx, &rng, 0, 10, 8, 8, &v) == LUMOS_E_ARG, "an empty photo");
}

/* ------------------------------------------------------------ numpy/PyTorch */

static void run_python(lumos_ctx *ctx, const char *python, const char *script)
{
    char probe[4096];
    snprintf(probe, sizeof probe, "%s -c 'import numpy, torch' 2>/dev/null", python);
    if (system(probe) != 0) {
        printf("[SKIP] %s cannot import numpy and torch: the cross-check skipped\n", python);
        skipped = 1;
        return;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lumos-reflect-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    enum { MAX_JOBS = 64 };
    static const int sizes[][2] = {{W, H}, {24, 40}};
    typedef struct {
        int w, h, rc;
        float *in, *rl;
    } job;
    job jobs[MAX_JOBS];
    int n_jobs = 0;
    FILE *list = fopen(tpath("jobs.txt"), "w");
    CHECK(list != NULL, "%s", tpath("jobs.txt"));
    uint64_t rng = 4242;
    for (int m = 0; list && m < LUMOS__REFLECT_MODELS; m++)
        for (int k = 0; k < 8; k++) {
            const int w = sizes[k & 1][0], h = sizes[k & 1][1];
            const size_t n = (size_t)w * h * 3;
            lumos__reflect_params p;
            lumos__reflect_draw_model(&rng, (lumos__reflect_model)m, w, h, &p);
            if (k >= 4) p.border = LUMOS__REFLECT_ZERO; /* the public code's convolve2d */
            float *t = malloc(n * sizeof *t), *r = malloc(n * sizeof *r);
            int dark = k == 3 || k == 7;
            test_image(&rng, w, h, dark ? 0 : 0.3, dark ? 0.4 : 1, t);
            test_image(&rng, w, h, 0, dark ? 0.12 : 1, r); /* dark: Zhang rejects */
            job *j = &jobs[n_jobs];
            j->w = w;
            j->h = h;
            j->in = malloc(n * sizeof *j->in);
            j->rl = malloc(n * sizeof *j->rl);
            j->rc = lumos__reflect_apply(ctx, &p, w, h, t, r, j->in, NULL, j->rl);
            write_all(tpath("%d.t.f32", n_jobs), t, n * sizeof *t);
            write_all(tpath("%d.r.f32", n_jobs), r, n * sizeof *r);
            fprintf(list, "%d %s %d %d %d %d %.9g %.9g %.9g %.9g %.9g %.9g %d %d %d %d %d %.9g\n",
                    n_jobs, lumos__reflect_model_name(m), w, h, (int)p.border, p.ksize, p.sigma,
                    p.gamma, p.alpha, p.beta, p.att, p.t_scale, p.vig_size, p.vig_x, p.vig_y,
                    p.ghost_dx, p.ghost_dy, p.ghost_c);
            free(t);
            free(r);
            n_jobs++;
        }
    if (list) fclose(list);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s %s", python, script, tmpdir);
    int rc = system(cmd);
    CHECK(rc == 0, "%s failed (%d)", cmd, rc);
    double worst[LUMOS__REFLECT_MODELS] = {0};
    int rejected = 0;
    for (int i = 0; rc == 0 && i < n_jobs; i++) {
        size_t n = (size_t)jobs[i].w * jobs[i].h * 3, bytes = 0;
        double *ref = (double *)read_all(tpath("%d.out.f64", i), &bytes);
        CHECK(ref && bytes == (3 * n + 1) * sizeof(double), "job %d: %zu bytes", i, bytes);
        if (ref && bytes == (3 * n + 1) * sizeof(double)) {
            int m = i / 8;
            float *t = (float *)read_all(tpath("%d.t.f32", i), &bytes);
            double d = fmax(max_diff_fd(jobs[i].in, ref, n), max_diff_fd(jobs[i].rl, ref + 2 * n, n));
            d = fmax(d, max_diff_fd(t, ref + n, n));
            worst[m] = fmax(worst[m], d);
            CHECK(d <= TOL, "job %d (%s): off numpy/PyTorch by %g", i, lumos__reflect_model_name(m), d);
            CHECK(jobs[i].rc == (int)ref[3 * n], "job %d (%s): rejected %d, numpy %g", i,
                  lumos__reflect_model_name(m), jobs[i].rc, ref[3 * n]);
            rejected += jobs[i].rc == LUMOS__REFLECT_REJECTED;
            free(t);
        }
        free(ref);
    }
    printf("numpy/PyTorch (%d jobs, %d rejected by Zhang's rules): max diff", n_jobs, rejected);
    for (int m = 0; m < LUMOS__REFLECT_MODELS; m++)
        printf(" %s %.2g", lumos__reflect_model_name(m), worst[m]);
    printf("\n");
    CHECK(rc != 0 || rejected == 2, "%d Zhang pairs rejected, want the 2 dark ones", rejected);
    for (int i = 0; i < n_jobs; i++) {
        free(jobs[i].in);
        free(jobs[i].rl);
    }
    if (failures) printf("inputs kept in %s (%s %s %s recomputes)\n", tmpdir, python, script, tmpdir);
    else rm_rf(tmpdir);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *photos = argc > 1 ? argv[1] : "/usr/lib/python3/dist-packages/skimage/data";
    lumos_ctx *ctx = lumos_ctx_new();
    test_blur();
    test_vignette();
    test_models(ctx);
    test_draws();
    test_rejection(ctx);
    test_views(ctx);
    test_photos(ctx, photos);
    if (argc > 3) run_python(ctx, argv[2], argv[3]);
    else {
        printf("[SKIP] no python and script given: the cross-check skipped\n");
        skipped = 1;
    }
    lumos_ctx_free(ctx);
    if (failures) {
        printf("FAILED (%d)\n", failures);
        return 1;
    }
    if (skipped) return 77;
    printf("Success!\n");
    return 0;
}
