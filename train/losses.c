/* losses.c — pixel loss terms and their gradients. See losses.h. */
#include "train/losses.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

double lumos__loss_l1(const float *img, const float *target, int width, int height, float *grad)
{
    size_t n = (size_t)width * (size_t)height * 3;
    if (n == 0) return 0;
    double sum = 0;
    const float inv = (float)(1.0 / (double)n);
    for (size_t i = 0; i < n; i++) {
        float d = img[i] - target[i];
        sum += fabs((double)d);
        if (grad) grad[i] = d > 0 ? inv : d < 0 ? -inv : 0.f;
    }
    return sum / (double)n;
}

double lumos__loss_mse(const float *img, const float *target, int width, int height, float *grad)
{
    size_t n = (size_t)width * (size_t)height * 3;
    if (n == 0) return 0;
    double sum = 0;
    const float two_inv = (float)(2.0 / (double)n);
    for (size_t i = 0; i < n; i++) {
        float d = img[i] - target[i];
        sum += (double)d * d;
        if (grad) grad[i] = two_inv * d;
    }
    return sum / (double)n;
}

double lumos__loss_tv(const float *img, int width, int height, float *grad)
{
    const size_t w = (size_t)width, h = (size_t)height, row = 3 * w;
    if (grad)
        for (size_t i = 0; i < row * h; i++) grad[i] = 0.f;
    /* Each direction is a mean over its own neighbour pairs, so a tall and a
     * wide crop weigh both directions alike. */
    const size_t nx = (w - 1) * h * 3, ny = w * (h - 1) * 3;
    double sx = 0, sy = 0;
    if (w > 1) {
        const float k = (float)(2.0 / (double)nx);
        for (size_t y = 0; y < h; y++)
            for (size_t i = y * row; i < y * row + row - 3; i++) {
                float d = img[i + 3] - img[i];
                sx += (double)d * d;
                if (grad) {
                    grad[i + 3] += k * d;
                    grad[i] -= k * d;
                }
            }
    }
    if (h > 1) {
        const float k = (float)(2.0 / (double)ny);
        for (size_t i = 0; i < row * (h - 1); i++) {
            float d = img[i + row] - img[i];
            sy += (double)d * d;
            if (grad) {
                grad[i + row] += k * d;
                grad[i] -= k * d;
            }
        }
    }
    return (w > 1 ? sx / (double)nx : 0) + (h > 1 ? sy / (double)ny : 0);
}

/* One direction of the gradient L1: the positions x < cols, y < rows of a
 * w-wide image, each with its neighbour `step` floats on. Returns the mean
 * |difference of differences| and adds its gradient into grad. */
static double gradient_l1_direction(const float *img, const float *target, size_t w, size_t cols,
                                    size_t rows, size_t step, float *grad)
{
    const size_t count = cols * rows * 3;
    if (count == 0) return 0;
    const float k = (float)(1.0 / (double)count);
    double sum = 0;
    for (size_t y = 0; y < rows; y++)
        for (size_t i = 3 * w * y; i < 3 * (w * y + cols); i++) {
            /* in double: the sign must not flip by rounding where the two
             * differences nearly agree */
            double d = ((double)img[i + step] - img[i]) - ((double)target[i + step] - target[i]);
            sum += fabs(d);
            if (grad && d != 0) {
                grad[i + step] += d > 0 ? k : -k;
                grad[i] -= d > 0 ? k : -k;
            }
        }
    return sum / (double)count;
}

double lumos__loss_gradient_l1(const float *img, const float *target, int width, int height, float *grad)
{
    if (width < 1 || height < 1) return 0;
    const size_t w = (size_t)width, h = (size_t)height;
    if (grad) memset(grad, 0, w * h * 3 * sizeof *grad);
    return gradient_l1_direction(img, target, w, w - 1, h, 3, grad) +
           gradient_l1_direction(img, target, w, w, h - 1, 3 * w, grad);
}

/* The exclusion loss's pyramid works in double, h x w x 3 interleaved. */

/* 2x2 average pool, stride 2, of a w x h image into (w/2) x (h/2): an odd
 * last row or column is dropped, as torch's avg_pool2d(x, 2). */
static void pool2(const double *a, size_t w, size_t h, double *out)
{
    const size_t pw = w / 2, ph = h / 2;
    for (size_t y = 0; y < ph; y++)
        for (size_t x = 0; x < pw; x++)
            for (size_t c = 0; c < 3; c++) {
                const double *p = a + (2 * y * w + 2 * x) * 3 + c;
                out[(y * pw + x) * 3 + c] = 0.25 * (p[0] + p[3] + p[3 * w] + p[3 * w + 3]);
            }
}

/* pool2's adjoint: adds a quarter of each pooled pixel's gradient g to the
 * four pixels it averaged in ga (w x h, the unpooled size). */
static void pool2_adjoint(const double *g, size_t w, size_t h, double *ga)
{
    const size_t pw = w / 2, ph = h / 2;
    for (size_t y = 0; y < ph; y++)
        for (size_t x = 0; x < pw; x++)
            for (size_t c = 0; c < 3; c++) {
                double *p = ga + (2 * y * w + 2 * x) * 3 + c;
                const double q = 0.25 * g[(y * pw + x) * 3 + c];
                p[0] += q;
                p[3] += q;
                p[3 * w] += q;
                p[3 * w + 3] += q;
            }
}

/* One direction at one level of the exclusion loss: d1, d2 the forward
 * differences of a (t) and b (r) at the positions x < cols, y < rows of a
 * w-wide image, neighbour `step` doubles on. Returns k times the sum over
 * channels of (mean s1^2 s2^2)^(1/4) and, when ga, adds its gradient with
 * respect to a into ga and b into gb (alpha held constant). */
static double exclusion_direction(const double *a, const double *b, size_t w, size_t cols,
                                  size_t rows, size_t step, double k, double *ga, double *gb)
{
    const size_t n = cols * rows; /* positions a channel */
    double sum1 = 0, sum2 = 0;
    for (size_t y = 0; y < rows; y++)
        for (size_t i = 3 * w * y; i < 3 * (w * y + cols); i++) {
            sum1 += fabs(a[i + step] - a[i]);
            sum2 += fabs(b[i + step] - b[i]);
        }
    /* alpha brings r's edges to twice t's typical strength; with r flat
     * (sum2 = 0) every s2 is 0 whatever alpha is, so 1 rather than inf. */
    const double alpha = sum2 > 0 ? 2 * sum1 / sum2 : 1;
    /* 2 sigmoid(x) - 1 = tanh(x / 2), whose slope is (1 - tanh^2) / 2 */
    double m[3] = {0, 0, 0};
    for (size_t y = 0; y < rows; y++)
        for (size_t i = 3 * w * y; i < 3 * (w * y + cols); i++) {
            const double s1 = tanh(0.5 * (a[i + step] - a[i]));
            const double s2 = tanh(0.5 * alpha * (b[i + step] - b[i]));
            m[i % 3] += s1 * s1 * s2 * s2;
        }
    double loss = 0, dm[3];
    for (int c = 0; c < 3; c++) {
        m[c] /= (double)n;
        const double e = sqrt(sqrt(m[c]));
        loss += k * e;
        /* d(m^(1/4))/dm = e / (4 m), infinite at 0: taken as 0 there */
        dm[c] = m[c] > 0 ? k * 0.25 * e / m[c] / (double)n : 0;
    }
    if (!ga) return loss;
    for (size_t y = 0; y < rows; y++)
        for (size_t i = 3 * w * y; i < 3 * (w * y + cols); i++) {
            const double s1 = tanh(0.5 * (a[i + step] - a[i]));
            const double s2 = tanh(0.5 * alpha * (b[i + step] - b[i]));
            const double g1 = dm[i % 3] * s1 * (1 - s1 * s1) * s2 * s2;         /* d/d(d1) */
            const double g2 = dm[i % 3] * alpha * s2 * (1 - s2 * s2) * s1 * s1; /* d/d(d2) */
            ga[i + step] += g1;
            ga[i] -= g1;
            gb[i + step] += g2;
            gb[i] -= g2;
        }
    return loss;
}

double lumos__loss_exclusion(const float *t, const float *r, int width, int height, float *grad_t,
                             float *grad_r)
{
    if (width < 1 || height < 1) return 0;
    const size_t n0 = (size_t)width * (size_t)height * 3;
    if (grad_t) memset(grad_t, 0, n0 * sizeof *grad_t);
    if (grad_r) memset(grad_r, 0, n0 * sizeof *grad_r);
    /* the levels with both sides >= 2 (a difference in each direction) */
    size_t w[3], h[3], at[3], total = 0;
    int levels = 0;
    for (size_t lw = (size_t)width, lh = (size_t)height; levels < 3 && lw >= 2 && lh >= 2;
         lw /= 2, lh /= 2, levels++) {
        w[levels] = lw;
        h[levels] = lh;
        at[levels] = total;
        total += lw * lh * 3;
    }
    if (levels == 0) return 0;
    /* t's levels, then r's, then (for gradients) their gradients */
    const int grads = grad_t || grad_r;
    double *buf = malloc(total * (grads ? 4 : 2) * sizeof *buf);
    if (!buf) return NAN;
    double *a = buf, *b = buf + total, *ga = grads ? buf + 2 * total : NULL,
           *gb = grads ? buf + 3 * total : NULL;
    for (size_t i = 0; i < n0; i++) {
        a[i] = t[i];
        b[i] = r[i];
    }
    for (int l = 1; l < levels; l++) {
        pool2(a + at[l - 1], w[l - 1], h[l - 1], a + at[l]);
        pool2(b + at[l - 1], w[l - 1], h[l - 1], b + at[l]);
    }
    if (grads) memset(ga, 0, 2 * total * sizeof *ga); /* ga and gb */
    /* every e enters the loss divided by 3 (levels) and by 2 (directions),
     * even where fewer than 3 levels exist */
    const double k = 1.0 / 6;
    double loss = 0;
    for (int l = 0; l < levels; l++) {
        const size_t o = at[l];
        loss += exclusion_direction(a + o, b + o, w[l], w[l] - 1, h[l], 3, k, grads ? ga + o : NULL,
                                    grads ? gb + o : NULL);
        loss += exclusion_direction(a + o, b + o, w[l], w[l], h[l] - 1, 3 * w[l], k,
                                    grads ? ga + o : NULL, grads ? gb + o : NULL);
    }
    if (grads) {
        /* back down the pyramid: each level's gradient, pooled's included */
        for (int l = levels - 1; l > 0; l--) {
            pool2_adjoint(ga + at[l], w[l - 1], h[l - 1], ga + at[l - 1]);
            pool2_adjoint(gb + at[l], w[l - 1], h[l - 1], gb + at[l - 1]);
        }
        for (size_t i = 0; i < n0; i++) {
            if (grad_t) grad_t[i] = (float)ga[i];
            if (grad_r) grad_r[i] = (float)gb[i];
        }
    }
    free(buf);
    return loss;
}
