/* test_dereflect_classic — classical reflection suppression
 * (stages/dereflect_classic.h).
 *
 *   test_dereflect_classic [PHOTO_DIR]
 *
 * - against a naive reference of the same objective solved another way:
 *   the normal equations (L² + ε) T = L d + ε I built as a dense matrix in
 *   pixel space, with the operators written out with explicit boundary
 *   tests, solved by Cholesky in double (no DCT, no correction form): ≤ TOL,
 *   on sizes 1×1, 1×N, N×1, 2×2 and odd ones (a column tail, several row
 *   bands) and on four (h, ε) pairs, the defaults among them;
 * - h = 0 gives the input back bit for bit, as does any 1×1 image;
 * - in place (out = rgb) gives the same bits as out of place;
 * - bad arguments: LUMOS_E_ARG;
 * - a synthetic pair from PHOTO_DIR (skimage's data): T a 256² crop of
 *   astronaut, I = clamp(T + 0.4·blur_σ4(R)) with R a crop of coffee; the
 *   output is closer to T than I is (PSNR, and PSNR with each image's
 *   channel means removed, since the fidelity term keeps the reflection's
 *   mean). Skipped (exit 77 unless something failed) without the photos. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lumos.h"
#include "stages/dereflect_classic.h"

/* float32 solve against a double reference; measured ≤ 1.2e-6 (see the
 * output) with the default ε = 1e-8. */
#define TOL 1e-4

static int skipped;

/* Smooth ramps, a few sharp edges and noise, quantised to k/256: gradients
 * and their squared magnitudes are then exact in float and in double, so
 * no pixel sits on the other side of the threshold in the reference. */
static void test_image(uint32_t seed, int w, int h, float *img)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                seed = seed * 1664525u + 1013904223u;
                double noise = (seed >> 8) / 16777216.0;
                double v = 0.5 + 0.3 * sin(0.21 * x + 0.13 * y + 2.1 * c);
                if ((x / 5 + y / 7) % 3 == 0) v += 0.25; /* edges */
                v += 0.08 * (noise - 0.5);
                v = v < 0 ? 0 : v > 1 ? 1 : v;
                img[((size_t)y * w + x) * 3 + c] = (float)(floor(v * 256.0) / 256.0);
            }
}

/* ------------------------------------------------------------ the naive reference */

/* One channel: T minimising ‖L T − d‖² + ε‖T − I‖², d = div(τ_h(∇I)), from
 * the normal equations as a dense n×n system (n = w·h), clamped to 0..1.
 * h2 is h·h as the stage computes it (in float). */
static void naive_channel(const float *rgb, int w, int h, int c, float hh, double eps,
                          double *out)
{
    const int n = w * h;
    double *u = malloc((size_t)n * sizeof *u), *gx = calloc((size_t)n, sizeof *gx),
           *gy = calloc((size_t)n, sizeof *gy), *d = calloc((size_t)n, sizeof *d);
    double *a = calloc((size_t)n * n, sizeof *a), *lap = calloc((size_t)n * n, sizeof *lap),
           *b = calloc((size_t)n, sizeof *b);
    const double h2 = (double)(hh * hh);
    for (int i = 0; i < n; i++) u[i] = rgb[(size_t)i * 3 + c];
    /* ∇I: forward differences, none across the last column / row. */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int i = y * w + x;
            double dx = x + 1 < w ? u[i + 1] - u[i] : 0, dy = y + 1 < h ? u[i + w] - u[i] : 0;
            int keep = dx * dx + dy * dy >= h2; /* τ_h: keep |∇I| >= h */
            gx[i] = keep ? dx : 0;
            gy[i] = keep ? dy : 0;
        }
    /* d = div(τ_h ∇I) = −∇ᵀ(τ_h ∇I). */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int i = y * w + x;
            d[i] = gx[i] + gy[i] - (x > 0 ? gx[i - 1] : 0) - (y > 0 ? gy[i - w] : 0);
        }
    /* L: the Neumann 5-point Laplacian, each neighbour inside the image. */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int i = y * w + x;
            const int nb[4][2] = {{x - 1, y}, {x + 1, y}, {x, y - 1}, {x, y + 1}};
            for (int k = 0; k < 4; k++)
                if (nb[k][0] >= 0 && nb[k][0] < w && nb[k][1] >= 0 && nb[k][1] < h) {
                    lap[(size_t)i * n + nb[k][1] * w + nb[k][0]] += 1;
                    lap[(size_t)i * n + i] -= 1;
                }
        }
    /* A = L L + ε, b = L d + ε I (L is symmetric). */
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < n; k++) {
            double l = lap[(size_t)i * n + k];
            if (l == 0) continue;
            for (int j = 0; j < n; j++) a[(size_t)i * n + j] += l * lap[(size_t)k * n + j];
            b[i] += l * d[k];
        }
        a[(size_t)i * n + i] += eps;
        b[i] += eps * u[i];
    }
    /* Cholesky A = R Rᵀ (lower R in a), then two triangular solves. A and
     * R are banded (|i − j| <= 2w: L reaches one row, L L two), so the
     * sums skip what is zero. */
    const int bw = 2 * w;
    for (int j = 0; j < n; j++) {
        int k0 = j - bw > 0 ? j - bw : 0, i1 = j + bw < n - 1 ? j + bw : n - 1;
        double s = a[(size_t)j * n + j];
        for (int k = k0; k < j; k++) s -= a[(size_t)j * n + k] * a[(size_t)j * n + k];
        double r = sqrt(s);
        a[(size_t)j * n + j] = r;
        for (int i = j + 1; i <= i1; i++) {
            double t = a[(size_t)i * n + j];
            for (int k = i - bw > 0 ? i - bw : 0; k < j; k++)
                t -= a[(size_t)i * n + k] * a[(size_t)j * n + k];
            a[(size_t)i * n + j] = t / r;
        }
    }
    for (int i = 0; i < n; i++) {
        double s = b[i];
        for (int k = i - bw > 0 ? i - bw : 0; k < i; k++) s -= a[(size_t)i * n + k] * b[k];
        b[i] = s / a[(size_t)i * n + i];
    }
    for (int i = n - 1; i >= 0; i--) {
        double s = b[i];
        for (int k = i + 1; k <= (i + bw < n - 1 ? i + bw : n - 1); k++)
            s -= a[(size_t)k * n + i] * b[k];
        b[i] = s / a[(size_t)i * n + i];
    }
    for (int i = 0; i < n; i++) out[(size_t)i * 3 + c] = b[i] < 0 ? 0 : b[i] > 1 ? 1 : b[i];
    free(u);
    free(gx);
    free(gy);
    free(d);
    free(a);
    free(lap);
    free(b);
}

static void test_reference(lumos_ctx *ctx)
{
    static const int sizes[][2] = {{1, 1}, {1, 9}, {9, 1}, {2, 2}, {3, 5}, {7, 4},
                                   {33, 17}, {37, 29}};
    static const float params[][2] = {{LUMOS__DEREFLECT_CLASSIC_H, LUMOS__DEREFLECT_CLASSIC_EPS},
                                      {0.1f, 1e-4f}, {0.05f, 1e-2f}, {0.2f, 1e-6f}};
    double worst = 0, moved = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (size_t p = 0; p < sizeof params / sizeof *params; p++) {
            const int w = sizes[s][0], h = sizes[s][1];
            const size_t n = (size_t)w * h * 3;
            float *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
            double *ref = malloc(n * sizeof *ref);
            test_image((uint32_t)(7 * s + p + 1), w, h, in);
            int rc = lumos__dereflect_classic(ctx, in, w, h, params[p][0], params[p][1], out);
            CHECK(rc == LUMOS_OK, "%d×%d: %s", w, h, lumos_last_error(ctx));
            for (int c = 0; c < 3; c++) naive_channel(in, w, h, c, params[p][0], params[p][1], ref);
            double d = 0, m = 0;
            for (size_t i = 0; i < n; i++) {
                d = fmax(d, fabs(out[i] - ref[i]));
                m = fmax(m, fabs(out[i] - in[i]));
            }
            CHECK(rc != LUMOS_OK || d <= TOL, "%d×%d h %g eps %g: off the reference by %g", w, h,
                  params[p][0], params[p][1], d);
            worst = fmax(worst, d);
            moved = fmax(moved, m);
            free(in);
            free(out);
            free(ref);
        }
    /* The reference check means nothing if nothing moved. */
    CHECK(moved > 0.05, "the output is barely the input's (%g): nothing was suppressed", moved);
    printf("naive dense reference (%zu sizes × %zu (h, eps)): max diff %.2g (output moved up to %.2g)\n",
           sizeof sizes / sizeof *sizes, sizeof params / sizeof *params, worst, moved);
}

/* ------------------------------------------------------------ exact cases */

static void test_identity(lumos_ctx *ctx)
{
    static const int sizes[][2] = {{1, 1}, {1, 6}, {6, 1}, {37, 29}, {300, 200}};
    int exact = 0, total = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        const int w = sizes[s][0], h = sizes[s][1];
        const size_t n = (size_t)w * h * 3;
        float *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out),
              *inplace = malloc(n * sizeof *inplace);
        test_image((uint32_t)(100 + s), w, h, in);
        /* Not on a grid any more: any float in 0..1 comes back. */
        for (size_t i = 0; i < n; i++) in[i] = 0.9f * in[i] + (float)((i * 2654435761u) % 1000) * 1e-7f;
        CHECK(lumos__dereflect_classic(ctx, in, w, h, 0.f, 1e-8f, out) == LUMOS_OK, "%s",
              lumos_last_error(ctx));
        int same = !memcmp(in, out, n * sizeof *in);
        CHECK(same, "%d×%d: h = 0 did not give the input back", w, h);
        exact += same;
        total++;
        if (w * h == 1) {
            CHECK(lumos__dereflect_classic(ctx, in, w, h, 0.5f, 1e-8f, out) == LUMOS_OK, "%s",
                  lumos_last_error(ctx));
            same = !memcmp(in, out, n * sizeof *in);
            CHECK(same, "1×1: not the input");
            exact += same;
            total++;
        }
        /* In place: the same bits as out of place. */
        CHECK(lumos__dereflect_classic(ctx, in, w, h, 0.05f, 1e-6f, out) == LUMOS_OK, "%s",
              lumos_last_error(ctx));
        memcpy(inplace, in, n * sizeof *in);
        CHECK(lumos__dereflect_classic(ctx, inplace, w, h, 0.05f, 1e-6f, inplace) == LUMOS_OK,
              "%s", lumos_last_error(ctx));
        CHECK(!memcmp(inplace, out, n * sizeof *out), "%d×%d: in place differs", w, h);
        free(in);
        free(out);
        free(inplace);
    }
    printf("identity: %d/%d runs (h = 0, 1×1) gave the input back bit for bit\n", exact, total);
}

static void test_arguments(lumos_ctx *ctx)
{
    float px[3 * 4] = {0.5f, 0.5f, 0.5f}, out[3 * 4];
    const float nan = NAN, inf = INFINITY;
    CHECK(lumos__dereflect_classic(ctx, NULL, 1, 1, 0.03f, 1e-8f, out) == LUMOS_E_ARG, "NULL rgb");
    CHECK(lumos__dereflect_classic(ctx, px, 1, 1, 0.03f, 1e-8f, NULL) == LUMOS_E_ARG, "NULL out");
    CHECK(lumos__dereflect_classic(ctx, px, 0, 1, 0.03f, 1e-8f, out) == LUMOS_E_ARG, "width 0");
    CHECK(lumos__dereflect_classic(ctx, px, 1, -1, 0.03f, 1e-8f, out) == LUMOS_E_ARG, "height -1");
    CHECK(lumos__dereflect_classic(ctx, px, 65536, 65536, 0.03f, 1e-8f, out) == LUMOS_E_ARG,
          "2^32 pixels");
    CHECK(lumos__dereflect_classic(ctx, px, 2, 2, -0.01f, 1e-8f, out) == LUMOS_E_ARG, "h < 0");
    CHECK(lumos__dereflect_classic(ctx, px, 2, 2, nan, 1e-8f, out) == LUMOS_E_ARG, "h NaN");
    CHECK(lumos__dereflect_classic(ctx, px, 2, 2, 0.03f, 0.f, out) == LUMOS_E_ARG, "eps 0");
    CHECK(lumos__dereflect_classic(ctx, px, 2, 2, 0.03f, nan, out) == LUMOS_E_ARG, "eps NaN");
    CHECK(lumos__dereflect_classic(ctx, px, 2, 2, 0.03f, inf, out) == LUMOS_E_ARG, "eps inf");
    CHECK(strstr(lumos_last_error(ctx), "dereflect") != NULL, "message: %s", lumos_last_error(ctx));
}

/* ------------------------------------------------------------ the synthetic pair */

/* Gaussian blur of an interleaved RGB image, mirrored at the edges. */
static void blur(const float *src, float *dst, int w, int h, double sigma)
{
    const int r = (int)ceil(3 * sigma);
    double *k = malloc((size_t)(2 * r + 1) * sizeof *k), sum = 0;
    for (int i = -r; i <= r; i++) sum += k[i + r] = exp(-i * i / (2 * sigma * sigma));
    float *tmp = malloc((size_t)w * h * 3 * sizeof *tmp);
    for (int pass = 0; pass < 2; pass++) {
        const float *s = pass ? tmp : src;
        float *d = pass ? dst : tmp;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    double v = 0;
                    for (int i = -r; i <= r; i++) {
                        int xx = pass ? x : x + i, yy = pass ? y + i : y;
                        xx = xx < 0 ? -xx : xx >= w ? 2 * w - 2 - xx : xx;
                        yy = yy < 0 ? -yy : yy >= h ? 2 * h - 2 - yy : yy;
                        v += k[i + r] * s[((size_t)yy * w + xx) * 3 + c];
                    }
                    d[((size_t)y * w + x) * 3 + c] = (float)(v / sum);
                }
    }
    free(tmp);
    free(k);
}

/* PSNR of a against t (peak 1); with means_removed, each channel's mean is
 * taken from both first. */
static double psnr(const float *a, const float *t, size_t pixels, int means_removed)
{
    double ma[3] = {0}, mt[3] = {0}, se = 0;
    if (means_removed)
        for (size_t i = 0; i < pixels * 3; i++) {
            ma[i % 3] += a[i] / (double)pixels;
            mt[i % 3] += t[i] / (double)pixels;
        }
    for (size_t i = 0; i < pixels * 3; i++) {
        double e = (a[i] - ma[i % 3]) - (t[i] - mt[i % 3]);
        se += e * e;
    }
    return 10 * log10(1 / (se / (double)(pixels * 3)));
}

/* A size×size crop at (x0, y0) of an 8-bit RGB photo as floats, or NULL. */
static float *photo_crop(lumos_ctx *ctx, const char *path, int x0, int y0, int size)
{
    lumos_image img;
    if (lumos_image_read(ctx, path, &img) != LUMOS_OK) return NULL;
    float *crop = NULL;
    if (img.channels == 3 && img.bits == 8 && img.width >= x0 + size && img.height >= y0 + size) {
        crop = malloc((size_t)size * size * 3 * sizeof *crop);
        for (int y = 0; y < size; y++) {
            const uint8_t *row = (const uint8_t *)img.data + (size_t)(y0 + y) * img.stride;
            for (int i = 0; i < size * 3; i++)
                crop[(size_t)y * size * 3 + i] = row[x0 * 3 + i] / 255.f;
        }
    }
    lumos_image_free(&img);
    return crop;
}

static void test_synthetic(lumos_ctx *ctx, const char *dir)
{
    enum { S = 256 };
    const size_t n = (size_t)S * S * 3;
    char tp[4096], rp[4096];
    snprintf(tp, sizeof tp, "%s/astronaut.png", dir);
    snprintf(rp, sizeof rp, "%s/coffee.png", dir);
    float *t = photo_crop(ctx, tp, 150, 100, S), *r = photo_crop(ctx, rp, 172, 72, S);
    if (!t || !r) {
        printf("[SKIP] no %s or %s: the synthetic pair skipped\n", tp, rp);
        skipped = 1;
        free(t);
        free(r);
        return;
    }
    float *rb = malloc(n * sizeof *rb), *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
    blur(r, rb, S, S, 4.0);
    for (size_t i = 0; i < n; i++) {
        float v = t[i] + 0.4f * rb[i];
        in[i] = v > 1 ? 1 : v;
    }
    const float h = LUMOS__DEREFLECT_CLASSIC_H, eps = LUMOS__DEREFLECT_CLASSIC_EPS;
    CHECK(lumos__dereflect_classic(ctx, in, S, S, h, eps, out) == LUMOS_OK, "%s",
          lumos_last_error(ctx));
    double p_in = psnr(in, t, (size_t)S * S, 0), p_out = psnr(out, t, (size_t)S * S, 0);
    double z_in = psnr(in, t, (size_t)S * S, 1), z_out = psnr(out, t, (size_t)S * S, 1);
    printf("synthetic pair (astronaut + 0.4·blur4(coffee), %d², h %g eps %g): PSNR to T "
           "%.2f -> %.2f dB, means removed %.2f -> %.2f dB\n",
           S, h, eps, p_in, p_out, z_in, z_out);
    CHECK(p_out > p_in + 0.3, "PSNR %.2f -> %.2f dB: not closer to T", p_in, p_out);
    CHECK(z_out > z_in + 1.0, "PSNR (means removed) %.2f -> %.2f dB: not closer to T", z_in, z_out);
    free(t);
    free(r);
    free(rb);
    free(in);
    free(out);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *photos = argc > 1 ? argv[1] : "/usr/lib/python3/dist-packages/skimage/data";
    lumos_ctx *ctx = lumos_ctx_new();
    test_reference(ctx);
    test_identity(ctx);
    test_arguments(ctx);
    test_synthetic(ctx, photos);
    lumos_ctx_free(ctx);
    if (failures) {
        printf("FAILED (%d)\n", failures);
        return 1;
    }
    return skipped ? 77 : 0;
}
