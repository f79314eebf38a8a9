/* test_pixel_losses — the trainer's pixel loss terms (train/losses.h):
 *
 * - values on small hand-worked images;
 * - every element of each gradient against a central finite difference of
 *   the returned (double) loss, on images of several shapes (1x1, a row, a
 *   column, 7x5). Inputs are multiples of 2^-12 and the step is 2^-10, so
 *   x ± h is exact in float and the difference is the loss's own slope: for
 *   MSE and TV (quadratic) it is exact up to rounding, for L1 away from its
 *   kink it is exactly ±1/N. */
#include <math.h>
#include <stdio.h>
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

int main(void)
{
    test_values();
    test_gradients();
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
