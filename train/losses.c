/* losses.c — pixel loss terms and their gradients. See losses.h. */
#include "train/losses.h"

#include <math.h>
#include <stddef.h>

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
