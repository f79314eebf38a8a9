/* test_pixel_losses — the trainer's pixel loss terms (train/losses.h):
 *
 * - values on small hand-worked images;
 * - every element of each gradient against a central finite difference of
 *   the returned (double) loss, on images of several shapes (1x1, a row, a
 *   column, 7x5). Inputs are multiples of 2^-12 and the step is 2^-10, so
 *   x ± h is exact in float and the difference is the loss's own slope: for
 *   MSE and TV (quadratic) it is exact up to rounding, for L1 away from its
 *   kink it is exactly ±1/N;
 * - the gradient L1 and the exclusion loss (reflection removal): values
 *   against naive formulas written out here (pooled levels as block means,
 *   sigmoid by exp), hand-worked cases (the exclusion loss's alpha and zero
 *   mean conventions), and their gradients against central differences on
 *   9x7, 16x12 and 33x20 images of values in 0..1. The exclusion loss's
 *   gradient holds alpha constant, so it is differenced two ways: the C loss
 *   itself on ramps (every difference keeps its sign, so mean |difference|
 *   telescopes to the border pixels and alpha does not move with an interior
 *   element), and the naive loss with alpha frozen on random images, every
 *   element eligible. (tests/test_pixel_losses_torch.c checks both against
 *   PyTorch's autograd.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "train/losses.h"
#include "train/unprocess.h"

#define H 0x1p-10
#define GRAD_TOL 1e-6 /* relative to the largest gradient element */

enum { L1, MSE, TV };
static const char *const names[] = {"l1", "mse", "tv"};

static double loss(int which, const float *x, const float *t, int w, int h, float *grad)
{
    switch (which) {
    case L1: return lumos__loss_l1(x, t, w, h, grad);
    case MSE: return lumos__loss_mse(x, t, w, h, grad);
    default: return lumos__loss_tv(x, w, h, grad);
    }
}

static void test_values(void)
{
    /* Two pixels, black and white: x-neighbour pairs (3 channels) differ by
     * 1 each, no vertical pairs. */
    float x[6] = {0, 0, 0, 1, 1, 1}, zero[6] = {0}, g[6];
    CHECK(lumos__loss_l1(x, zero, 2, 1, g) == 0.5, "l1 of black|white vs black");
    CHECK(g[0] == 0 && g[3] == 1.f / 6, "l1 grad %g %g (0 where equal, 1/N)", g[0], g[3]);
    CHECK(lumos__loss_mse(x, zero, 2, 1, g) == 0.5, "mse of black|white vs black");
    CHECK(g[3] == 2.f / 6, "mse grad %g", g[3]);
    CHECK(lumos__loss_tv(x, 2, 1, g) == 1.0, "tv of black|white: %g", lumos__loss_tv(x, 2, 1, g));
    CHECK(g[0] == -2.f / 3 && g[3] == 2.f / 3, "tv grad %g %g (2d/3)", g[0], g[3]);
    /* The same pair stacked: the vertical term alone, same value. */
    CHECK(lumos__loss_tv(x, 1, 2, NULL) == 1.0, "tv of the column");
    /* A 2x2 with a vertical edge: x pairs all differ by 0.5, y pairs by 0. */
    float e[12] = {0, 0, 0, .5f, .5f, .5f, 0, 0, 0, .5f, .5f, .5f};
    double tv = lumos__loss_tv(e, 2, 2, NULL);
    CHECK(tv == 0.25, "tv of a 2x2 edge: %g", tv);
    CHECK(lumos__loss_tv(e, 1, 1, g) == 0 && g[0] == 0, "a 1x1 image has no variation");
}

static void test_gradients(void)
{
    static const int shapes[][2] = {{1, 1}, {6, 1}, {1, 5}, {7, 5}};
    uint64_t rng = 2024;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int w = shapes[s][0], h = shapes[s][1], n = w * h * 3;
        float x[7 * 5 * 3], t[7 * 5 * 3], g[7 * 5 * 3], scratch[7 * 5 * 3];
        for (int i = 0; i < n; i++) {
            /* Network outputs may leave [0, 1]: draw from [-0.25, 1.25]. */
            x[i] = (float)(floor(lumos__rng_uniform(&rng) * 6144) - 1024) * 0x1p-12f;
            /* At least 4h from x, so L1's kink stays out of x ± h. */
            double d = (4 + floor(lumos__rng_uniform(&rng) * 512)) * 0x1p-12 * 4;
            t[i] = x[i] + (float)(lumos__rng_uniform(&rng) < 0.5 ? -d : d);
        }
        for (int which = L1; which <= TV; which++) {
            loss(which, x, t, w, h, g);
            double worst = 0, gmax = 0;
            for (int i = 0; i < n; i++) gmax = fmax(gmax, fabs(g[i]));
            for (int i = 0; i < n; i++) {
                float keep = x[i];
                x[i] = keep + (float)H;
                double up = loss(which, x, t, w, h, scratch);
                x[i] = keep - (float)H;
                double down = loss(which, x, t, w, h, scratch);
                x[i] = keep;
                double fd = (up - down) / (2 * H);
                worst = fmax(worst, fabs(fd - g[i]));
            }
            CHECK(worst <= GRAD_TOL * fmax(gmax, 1e-30) || (gmax == 0 && worst == 0),
                  "%s %dx%d: gradient off the finite difference by %g (largest element %g)",
                  names[which], w, h, worst, gmax);
            printf("%-3s %dx%d: max |grad - central difference| %.2g (largest grad %.3g)\n",
                   names[which], w, h, worst, gmax);
        }
    }
}

/* ---- gradient L1 and exclusion loss ---- */

static float px(const float *img, int w, int x, int y, int c) { return img[((size_t)y * w + x) * 3 + c]; }

/* mean over the 2^l x 2^l block of level 0 under level l's pixel (x, y):
 * what l nested 2x2 average pools give */
static double block(const float *img, int w, int l, int x, int y, int c)
{
    double s = 0;
    for (int j = 0; j < 1 << l; j++)
        for (int i = 0; i < 1 << l; i++) s += px(img, w, (x << l) + i, (y << l) + j, c);
    return s / (1 << (2 * l));
}

static double naive_gradient_l1(const float *a, const float *b, int w, int h)
{
    double sx = 0, sy = 0;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                if (x + 1 < w)
                    sx += fabs(((double)px(a, w, x + 1, y, c) - px(a, w, x, y, c)) -
                               ((double)px(b, w, x + 1, y, c) - px(b, w, x, y, c)));
                if (y + 1 < h)
                    sy += fabs(((double)px(a, w, x, y + 1, c) - px(a, w, x, y, c)) -
                               ((double)px(b, w, x, y + 1, c) - px(b, w, x, y, c)));
            }
    return (w > 1 ? sx / (3.0 * (w - 1) * h) : 0) + (h > 1 ? sy / (3.0 * w * (h - 1)) : 0);
}

static double sq(double v) { return v * v; }

/* The exclusion loss straight from its definition. alpha[2 l + direction]:
 * taken from alpha_in when given (frozen), else computed; written to
 * alpha_out when given. */
static double naive_exclusion(const float *t, const float *r, int w, int h, const double *alpha_in,
                              double *alpha_out)
{
    double loss = 0;
    for (int l = 0; l < 3 && (w >> l) >= 2 && (h >> l) >= 2; l++)
        for (int dir = 0; dir < 2; dir++) {
            const int ox = dir == 0, oy = dir == 1, cols = (w >> l) - ox, rows = (h >> l) - oy;
            double s1 = 0, s2 = 0;
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < rows; y++)
                    for (int x = 0; x < cols; x++) {
                        s1 += fabs(block(t, w, l, x + ox, y + oy, c) - block(t, w, l, x, y, c));
                        s2 += fabs(block(r, w, l, x + ox, y + oy, c) - block(r, w, l, x, y, c));
                    }
            const double alpha = alpha_in ? alpha_in[2 * l + dir] : s2 > 0 ? 2 * s1 / s2 : 1;
            if (alpha_out) alpha_out[2 * l + dir] = alpha;
            for (int c = 0; c < 3; c++) {
                double m = 0;
                for (int y = 0; y < rows; y++)
                    for (int x = 0; x < cols; x++) {
                        double d1 = block(t, w, l, x + ox, y + oy, c) - block(t, w, l, x, y, c);
                        double d2 = block(r, w, l, x + ox, y + oy, c) - block(r, w, l, x, y, c);
                        m += sq(2 / (1 + exp(-d1)) - 1) * sq(2 / (1 + exp(-alpha * d2)) - 1);
                    }
                loss += pow(m / ((double)cols * rows), 0.25) / 3 / 2;
            }
        }
    return loss;
}

static void test_edge_values(void)
{
    /* 2x2, each row black|white, against black: x differences 1 (6 of
     * them), y differences 0 */
    float e[12] = {0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1}, zero[12] = {0}, g[12];
    double v = lumos__loss_gradient_l1(e, zero, 2, 2, g);
    CHECK(v == 1.0, "gradient l1 of a 2x2 edge: %g", v);
    CHECK(g[0] == -1.f / 6 && g[3] == 1.f / 6 && g[6] == -1.f / 6 && g[9] == 1.f / 6,
          "gradient l1 grad %g %g %g %g (±1/6)", g[0], g[3], g[6], g[9]);
    /* the same edges elsewhere (an offset): no loss, and sign(0) = 0 */
    float shifted[12];
    for (int i = 0; i < 12; i++) shifted[i] = e[i] + 0.25f;
    v = lumos__loss_gradient_l1(e, shifted, 2, 2, g);
    int nonzero = 0;
    for (int i = 0; i < 12; i++) nonzero += g[i] != 0;
    CHECK(v == 0 && nonzero == 0, "gradient l1 of offset images: %g, %d nonzero", v, nonzero);
    CHECK(lumos__loss_gradient_l1(e, zero, 1, 1, g) == 0 && g[0] == 0, "1x1: no gradients");

    /* Exclusion: t varies only across, r only down, so every product has a
     * zero factor: loss 0. r's x differences are all 0 (alpha_x = 1), and
     * every mean is 0: gradients 0, not NaN. */
    enum { W = 6, HH = 5 };
    float t[W * HH * 3], r[W * HH * 3], gt[W * HH * 3], gr[W * HH * 3], g2[W * HH * 3];
    for (int y = 0; y < HH; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) {
                t[(y * W + x) * 3 + c] = 0.1f * x + 0.05f * c;
                r[(y * W + x) * 3 + c] = 0.2f * y * y + 0.1f * c;
            }
    v = lumos__loss_exclusion(t, r, W, HH, gt, gr);
    nonzero = 0;
    for (int i = 0; i < W * HH * 3; i++) nonzero += gt[i] != 0 || gr[i] != 0;
    CHECK(v == 0 && nonzero == 0, "exclusion of crossed edges: %g, %d nonzero gradients", v, nonzero);
    /* sides below 2: nothing at all */
    CHECK(lumos__loss_exclusion(t, r, W, 1, gt, gr) == 0 && gt[0] == 0 && gr[5] == 0, "a row");
    CHECK(lumos__loss_exclusion(t, r, 1, HH, NULL, NULL) == 0, "a column");
    CHECK(lumos__loss_exclusion(t, r, 1, 1, gt, gr) == 0 && gt[0] == 0, "a pixel");
    /* gradients: NULL, one or both; the same value every way */
    for (int i = 0; i < W * HH * 3; i++) t[i] = (float)((i * 37 % 101) / 101.0);
    double both = lumos__loss_exclusion(t, r, W, HH, gt, gr);
    double only_r = lumos__loss_exclusion(t, r, W, HH, NULL, g2);
    CHECK(both > 0 && both == lumos__loss_exclusion(t, r, W, HH, NULL, NULL) && both == only_r,
          "exclusion with and without gradients: %.17g %.17g", both, only_r);
    CHECK(memcmp(g2, gr, sizeof g2) == 0, "grad_r alone differs from grad_r with grad_t");
    double naive = naive_exclusion(t, r, W, HH, NULL, NULL);
    CHECK(fabs(both - naive) <= 1e-12, "exclusion %.17g vs naive %.17g", both, naive);
}

static void random_image(uint64_t *rng, float *img, int n)
{
    for (int i = 0; i < n; i++) img[i] = (float)lumos__rng_uniform(rng);
}

/* A rising/falling ramp in x and in y per channel plus noise below the
 * slopes: every forward difference, at every level, keeps its sign. */
static void ramp_image(uint64_t *rng, float *img, int w, int h, double base, double kx, double ky)
{
    const double noise = 0.5 * fmin(fabs(kx) / w, fabs(ky) / h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                img[(y * w + x) * 3 + c] =
                    (float)(base + kx * x / w + ky * y / h + noise * lumos__rng_uniform(rng));
}

/* Central difference of f at element i of x (h as near as float allows;
 * the step actually taken divides). */
typedef double (*loss_fn)(float *x, void *ctx);
static double central(loss_fn f, void *ctx, float *x, int i, double h)
{
    const float keep = x[i], up = (float)(keep + h), down = (float)(keep - h);
    x[i] = up;
    double lu = f(x, ctx);
    x[i] = down;
    double ld = f(x, ctx);
    x[i] = keep;
    return (lu - ld) / ((double)up - down);
}

struct pair {
    const float *other; /* the second image */
    int w, h, which;    /* which: 0 x is t (or img), 1 x is r */
    const double *alpha;
};
static double f_gradient_l1(float *x, void *ctx)
{
    const struct pair *p = ctx;
    return lumos__loss_gradient_l1(x, p->other, p->w, p->h, NULL);
}
static double f_exclusion(float *x, void *ctx)
{
    const struct pair *p = ctx;
    return p->which ? lumos__loss_exclusion(p->other, x, p->w, p->h, NULL, NULL)
                    : lumos__loss_exclusion(x, p->other, p->w, p->h, NULL, NULL);
}
static double f_naive_frozen(float *x, void *ctx)
{
    const struct pair *p = ctx;
    return p->which ? naive_exclusion(p->other, x, p->w, p->h, p->alpha, NULL)
                    : naive_exclusion(x, p->other, p->w, p->h, p->alpha, NULL);
}

/* Whether element i's pixel is in neither the first nor the last column or
 * row of any level that holds it (pixels an odd pool drops are not held). */
static int interior(int i, int w, int h)
{
    const int x = i / 3 % w, y = i / 3 / w;
    for (int l = 0; l < 3 && (w >> l) >= 2 && (h >> l) >= 2; l++) {
        const int X = x >> l, Y = y >> l, lw = w >> l, lh = h >> l;
        if ((X < lw && (X == 0 || X == lw - 1)) || (Y < lh && (Y == 0 || Y == lh - 1))) return 0;
    }
    return 1;
}

#define EDGE_TOL 1e-5 /* relative to the largest gradient element */

static void test_edge_gradients(void)
{
    static const int shapes[][2] = {{9, 7}, {16, 12}, {33, 20}, {6, 1}, {1, 5}};
    enum { N = 33 * 20 * 3 };
    static float a[N], b[N], ga[N], gb[N];
    uint64_t rng = 77;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int w = shapes[s][0], h = shapes[s][1], n = w * h * 3;
        random_image(&rng, a, n);
        random_image(&rng, b, n);

        /* Gradient L1: piecewise linear, with a kink where the two images'
         * differences agree. A step under the smallest |difference of
         * differences| crosses none, so the central difference is the slope,
         * every element. */
        double v = lumos__loss_gradient_l1(a, b, w, h, ga), naive = naive_gradient_l1(a, b, w, h);
        CHECK(fabs(v - naive) <= 1e-14 * fmax(1, naive), "gradient l1 %dx%d: %.17g, naive %.17g", w,
              h, v, naive);
        double dmin = INFINITY;
        for (int i = 0; i < n; i++) {
            if (i % (3 * w) < 3 * (w - 1))
                dmin = fmin(dmin, fabs(((double)a[i + 3] - a[i]) - ((double)b[i + 3] - b[i])));
            if (i + 3 * w < n)
                dmin = fmin(dmin, fabs(((double)a[i + 3 * w] - a[i]) - ((double)b[i + 3 * w] - b[i])));
        }
        struct pair p = {b, w, h, 0, NULL};
        double worst = 0, gmax = 0;
        for (int i = 0; i < n; i++) {
            gmax = fmax(gmax, fabs(ga[i]));
            worst = fmax(worst, fabs(central(f_gradient_l1, &p, a, i, dmin / 4) - ga[i]));
        }
        CHECK(worst <= 1e-6 * fmax(gmax, 1e-30) || (gmax == 0 && worst == 0),
              "gradient l1 %dx%d: gradient off the central difference by %g (largest %g)", w, h,
              worst, gmax);
        printf("gradient l1 %2dx%-2d: |loss - naive| %.2g; max |grad - central difference| %.2g "
               "(largest grad %.3g)\n", w, h, fabs(v - naive), worst, gmax);

        /* Exclusion on the random images: the value against the naive
         * formula; the gradient against the naive formula with alpha frozen,
         * on a few random elements of each image. */
        double alpha[6];
        v = lumos__loss_exclusion(a, b, w, h, ga, gb);
        naive = naive_exclusion(a, b, w, h, NULL, alpha);
        CHECK(fabs(v - naive) <= 1e-12 * fmax(1, naive), "exclusion %dx%d: %.17g, naive %.17g", w, h,
              v, naive);
        worst = 0, gmax = 0;
        for (int i = 0; i < n; i++) gmax = fmax(gmax, fmax(fabs(ga[i]), fabs(gb[i])));
        for (int k = 0; k < 24 && n > 3; k++) {
            /* the first and last element, then random ones */
            const int i = k == 0 ? 0 : k == 1 ? n - 1 : (int)(lumos__rng_uniform(&rng) * n);
            struct pair pt = {b, w, h, 0, alpha}, pr = {a, w, h, 1, alpha};
            worst = fmax(worst, fabs(central(f_naive_frozen, &pt, a, i, 1e-4) - ga[i]));
            worst = fmax(worst, fabs(central(f_naive_frozen, &pr, b, i, 1e-4) - gb[i]));
        }
        CHECK(worst <= EDGE_TOL * fmax(gmax, 1e-30) || (gmax == 0 && worst == 0),
              "exclusion %dx%d: gradient off the frozen-alpha central difference by %g (largest %g)",
              w, h, worst, gmax);
        printf("exclusion   %2dx%-2d: |loss - naive| %.2g; random: max |grad - central difference, "
               "alpha frozen| %.2g (largest grad %.3g)\n", w, h, fabs(v - naive), worst, gmax);

        /* Exclusion on ramps: the C loss itself, alpha live, on every
         * interior element. */
        ramp_image(&rng, a, w, h, 0.05, 0.6, 0.3);
        ramp_image(&rng, b, w, h, 0.45, -0.4, 0.5);
        lumos__loss_exclusion(a, b, w, h, ga, gb);
        worst = 0, gmax = 0;
        int tried = 0;
        for (int i = 0; i < n; i++) {
            gmax = fmax(gmax, fmax(fabs(ga[i]), fabs(gb[i])));
            if (!interior(i, w, h)) continue;
            struct pair pt = {b, w, h, 0, NULL}, pr = {a, w, h, 1, NULL};
            worst = fmax(worst, fabs(central(f_exclusion, &pt, a, i, 1e-4) - ga[i]));
            worst = fmax(worst, fabs(central(f_exclusion, &pr, b, i, 1e-4) - gb[i]));
            tried++;
        }
        CHECK(worst <= EDGE_TOL * fmax(gmax, 1e-30) || (gmax == 0 && worst == 0),
              "exclusion ramps %dx%d: gradient off the central difference by %g (largest %g)", w, h,
              worst, gmax);
        if (w > 2 && h > 2) CHECK(tried > 0 && gmax > 0, "exclusion ramps %dx%d: nothing tried", w, h);
        printf("exclusion   %2dx%-2d: ramps, %d interior elements: max |grad - central difference| "
               "%.2g (largest grad %.3g)\n", w, h, tried, worst, gmax);
    }
}

int main(void)
{
    test_values();
    test_gradients();
    test_edge_values();
    test_edge_gradients();
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
