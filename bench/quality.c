/* quality.c — PSNR, SSIM and CIEDE2000. See quality.h. */
#include "bench/quality.h"

#include <math.h>
#include <stdlib.h>

static const double PI = 3.14159265358979323846;

double quality_psnr(const float *a, const float *b, int width, int height, int border)
{
    double sum = 0;
    size_t n = 0;
    for (int y = border; y < height - border; y++)
        for (int x = border; x < width - border; x++)
            for (int c = 0; c < 3; c++) {
                size_t i = ((size_t)y * width + x) * 3 + c;
                double d = (double)a[i] - (double)b[i];
                sum += d * d;
                n++;
            }
    if (!n) return NAN;
    return sum == 0 ? INFINITY : 10 * log10((double)n / sum);
}

enum { WIN = 11 };

double quality_ssim(const float *a, const float *b, int width, int height, int border)
{
    const int w = width - 2 * border, h = height - 2 * border;
    if (w < WIN || h < WIN) return NAN;
    double g[WIN], gsum = 0;
    for (int k = 0; k < WIN; k++) {
        double d = k - WIN / 2;
        gsum += g[k] = exp(-d * d / (2 * 1.5 * 1.5));
    }
    for (int k = 0; k < WIN; k++) g[k] /= gsum;

    /* The five moments of the luma planes, filtered along x (valid
     * columns), then along y (valid rows). */
    const int ow = w - WIN + 1, oh = h - WIN + 1;
    double *ya = malloc((size_t)w * h * sizeof *ya), *yb = malloc((size_t)w * h * sizeof *yb);
    double *hx = malloc((size_t)5 * ow * h * sizeof *hx);
    double result = NAN;
    if (!ya || !yb || !hx) goto done;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = ((size_t)(y + border) * width + (x + border)) * 3;
            ya[(size_t)y * w + x] = 0.299 * a[i] + 0.587 * a[i + 1] + 0.114 * a[i + 2];
            yb[(size_t)y * w + x] = 0.299 * b[i] + 0.587 * b[i + 1] + 0.114 * b[i + 2];
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < ow; x++) {
            double m[5] = {0};
            for (int k = 0; k < WIN; k++) {
                double p = ya[(size_t)y * w + x + k], q = yb[(size_t)y * w + x + k];
                m[0] += g[k] * p;
                m[1] += g[k] * q;
                m[2] += g[k] * p * p;
                m[3] += g[k] * q * q;
                m[4] += g[k] * p * q;
            }
            for (int j = 0; j < 5; j++) hx[((size_t)j * h + y) * ow + x] = m[j];
        }
    const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
    double sum = 0;
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            double m[5] = {0};
            for (int k = 0; k < WIN; k++)
                for (int j = 0; j < 5; j++) m[j] += g[k] * hx[((size_t)j * h + y + k) * ow + x];
            double va = m[2] - m[0] * m[0], vb = m[3] - m[1] * m[1], cov = m[4] - m[0] * m[1];
            sum += (2 * m[0] * m[1] + c1) * (2 * cov + c2) /
                   ((m[0] * m[0] + m[1] * m[1] + c1) * (va + vb + c2));
        }
    result = sum / ((double)ow * oh);
done:
    free(ya);
    free(yb);
    free(hx);
    return result;
}

static double srgb_decode(double v)
{
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    return v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4);
}

static double lab_f(double t)
{
    const double d = 6.0 / 29.0;
    return t > d * d * d ? cbrt(t) : t / (3 * d * d) + 4.0 / 29.0;
}

void quality_srgb_to_lab(const float rgb[3], double lab[3])
{
    double r = srgb_decode(rgb[0]), g = srgb_decode(rgb[1]), b = srgb_decode(rgb[2]);
    double x = 0.4124564 * r + 0.3575761 * g + 0.1804375 * b;
    double y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b;
    double z = 0.0193339 * r + 0.1191920 * g + 0.9503041 * b;
    double fx = lab_f(x / 0.95047), fy = lab_f(y), fz = lab_f(z / 1.08883);
    lab[0] = 116 * fy - 16;
    lab[1] = 500 * (fx - fy);
    lab[2] = 200 * (fy - fz);
}

static double hue_deg(double b, double a)
{
    if (a == 0 && b == 0) return 0;
    double h = atan2(b, a) * 180 / PI;
    return h < 0 ? h + 360 : h;
}

double quality_ciede2000(const double lab1[3], const double lab2[3])
{
    const double L1 = lab1[0], a1 = lab1[1], b1 = lab1[2];
    const double L2 = lab2[0], a2 = lab2[1], b2 = lab2[2];
    const double p25_7 = 6103515625.0; /* 25^7 */
    const double rad = PI / 180;
    double cbar = (hypot(a1, b1) + hypot(a2, b2)) / 2, cbar7 = pow(cbar, 7);
    double G = 0.5 * (1 - sqrt(cbar7 / (cbar7 + p25_7)));
    double a1p = (1 + G) * a1, a2p = (1 + G) * a2;
    double c1p = hypot(a1p, b1), c2p = hypot(a2p, b2);
    double h1p = hue_deg(b1, a1p), h2p = hue_deg(b2, a2p);

    double dL = L2 - L1, dC = c2p - c1p, dh = 0;
    if (c1p * c2p != 0) {
        dh = h2p - h1p;
        if (dh > 180) dh -= 360;
        else if (dh < -180) dh += 360;
    }
    double dH = 2 * sqrt(c1p * c2p) * sin(dh / 2 * rad);

    double Lbar = (L1 + L2) / 2, cbarp = (c1p + c2p) / 2, hbar = h1p + h2p;
    if (c1p * c2p != 0) {
        if (fabs(h1p - h2p) <= 180) hbar = (h1p + h2p) / 2;
        else if (h1p + h2p < 360) hbar = (h1p + h2p + 360) / 2;
        else hbar = (h1p + h2p - 360) / 2;
    }
    double T = 1 - 0.17 * cos((hbar - 30) * rad) + 0.24 * cos(2 * hbar * rad) +
               0.32 * cos((3 * hbar + 6) * rad) - 0.20 * cos((4 * hbar - 63) * rad);
    double dtheta = 30 * exp(-((hbar - 275) / 25) * ((hbar - 275) / 25));
    double cbarp7 = pow(cbarp, 7);
    double Rc = 2 * sqrt(cbarp7 / (cbarp7 + p25_7));
    double l50 = (Lbar - 50) * (Lbar - 50);
    double Sl = 1 + 0.015 * l50 / sqrt(20 + l50), Sc = 1 + 0.045 * cbarp,
           Sh = 1 + 0.015 * cbarp * T;
    double Rt = -sin(2 * dtheta * rad) * Rc;
    double tl = dL / Sl, tc = dC / Sc, th = dH / Sh;
    return sqrt(tl * tl + tc * tc + th * th + Rt * tc * th);
}

double quality_delta_e(const float *a, const float *b, int width, int height, int border)
{
    double sum = 0;
    size_t n = 0;
    for (int y = border; y < height - border; y++)
        for (int x = border; x < width - border; x++) {
            size_t i = ((size_t)y * width + x) * 3;
            double la[3], lb[3];
            quality_srgb_to_lab(a + i, la);
            quality_srgb_to_lab(b + i, lb);
            sum += quality_ciede2000(la, lb);
            n++;
        }
    return n ? sum / (double)n : NAN;
}
