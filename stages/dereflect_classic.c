/* dereflect_classic.c — classical single-image reflection suppression
 * (after Arvanitopoulos, Achanta and Süsstrunk, CVPR 2017): the per-pixel
 * parts in generators/dereflect_classic_generator.cpp, the screened Poisson
 * solve here, with FFTW's DCTs.
 *
 * The formula. Per channel, with L = div ∇ the 5-point Laplacian with
 * Neumann boundaries (symmetric, <= 0) and d = div(τ_h(∇I)), the output is
 * the minimiser of
 *     E(T) = ‖L T − d‖² + ε‖T − I‖².
 * ∇E = 0 gives (L² + ε) T = L d + ε I. With T = I + X:
 *     (L² + ε) X = L (d − L I) = L g,   g = div(τ_h(∇I) − ∇I)
 * (g is what the residual pipeline computes). The DCT-II C (orthonormal)
 * diagonalises L: L = Cᵀ diag(Λ) C with
 *     Λ(k, l) = (2 cos(πk/W) − 2) + (2 cos(πl/H) − 2),
 * so
 *     X = C⁻¹[ Λ · C g / (Λ² + ε) ],   T = clamp(I + X, 0, 1).
 * (Equivalently C T = (Λ·C d + ε·C I) / (Λ² + ε), the closed form in T.)
 * tests/test_dereflect_classic.c checks it against a dense Cholesky solve
 * of the normal equations in pixel space (within 2e-7).
 *
 * Why the correction X and not T: forming L d + ε I and dividing by Λ² + ε
 * amplifies the float rounding of the right-hand side by up to 1/ε at the
 * lowest frequencies (1e8 at ε = 1e-8), where Λ/(Λ² + ε) <= 1/(2√ε) (5e3);
 * and h = 0 makes g exactly 0, so the output is the input, bit for bit.
 *
 * The DCTs. FFTW's REDFT10 (DCT-II) then REDFT01 (DCT-III) multiply by 2N
 * along each axis, so the spectral factor carries 1/(4WH). They run
 * separably on the context's threads: rows in place (the plane's row stride
 * padded so that every row has the alignment the plan was made for), then
 * columns COLS at a time, gathered into a contiguous buffer, transformed,
 * multiplied by the factor, transformed back and scattered (one pass over
 * the plane for both column transforms), then rows back. On 7680×4320 this
 * took about 0.65 s a transform on one Zen 3 core, FFTW's own 2-D plan
 * 0.9–1.4 s; the whole call about 3 s, in place, 0.53 GB peak (2026-12, 2
 * threads on a machine busy with a build). */
#include "stages/dereflect_classic.h"

#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lumos_dereflect_classic_finish.h"
#include "lumos_dereflect_classic_residual.h"
#include "core/context.h"
#include "stages/halide_glue.h"

enum {
    COLS = 32,        /* columns a task transforms at once (32 ≈ 1.9× faster than strided) */
    ROWS = 16,        /* rows a task transforms */
    ROW_ALIGN = 16    /* floats: the plane's row stride is a multiple (64 bytes) */
};

/* FFTW's planner is not thread-safe (only fftwf_execute* is). */
static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct solve {
    lumos_ctx *ctx;
    float *plane; /* width×height, row stride `stride` floats */
    int width, height, stride;
    const float *lx, *ly; /* the Laplacian's eigenvalues along x and y */
    float eps, scale;     /* scale = 1 / (4WH) */
    fftwf_plan row_fwd, row_inv, col_fwd, col_inv;
    int inverse; /* the row pass: forward or inverse */
} solve;

static int row_task(void *arg, int i)
{
    solve *s = arg;
    int y1 = (i + 1) * ROWS < s->height ? (i + 1) * ROWS : s->height;
    fftwf_plan plan = s->inverse ? s->row_inv : s->row_fwd;
    for (int y = i * ROWS; y < y1; y++) {
        float *row = s->plane + (size_t)y * s->stride;
        fftwf_execute_r2r(plan, row, row);
    }
    return 0;
}

/* Columns [i·COLS, i·COLS + COLS): gather, DCT-II, × Λ/((Λ² + ε)·4WH),
 * DCT-III, scatter. */
static int col_task(void *arg, int i)
{
    solve *s = arg;
    const int H = s->height, x0 = i * COLS;
    const int n = s->width - x0 < COLS ? s->width - x0 : COLS;
    float *buf = lumos__scratch_alloc(s->ctx, (size_t)COLS * H * sizeof *buf);
    if (!buf) return LUMOS_E_NOMEM;
    if (n < COLS) memset(buf + (size_t)n * H, 0, (size_t)(COLS - n) * H * sizeof *buf);
    for (int y = 0; y < H; y++) {
        const float *row = s->plane + (size_t)y * s->stride + x0;
        for (int c = 0; c < n; c++) buf[(size_t)c * H + y] = row[c];
    }
    fftwf_execute_r2r(s->col_fwd, buf, buf);
    for (int c = 0; c < n; c++) {
        float *col = buf + (size_t)c * H;
        const float lx = s->lx[x0 + c];
        for (int y = 0; y < H; y++) {
            float lambda = lx + s->ly[y];
            col[y] *= lambda * s->scale / (lambda * lambda + s->eps);
        }
    }
    fftwf_execute_r2r(s->col_inv, buf, buf);
    for (int y = 0; y < H; y++) {
        float *row = s->plane + (size_t)y * s->stride + x0;
        for (int c = 0; c < n; c++) row[c] = buf[(size_t)c * H + y];
    }
    lumos__scratch_free(s->ctx, buf);
    return 0;
}

/* 2 cos(πk/n) − 2 = −4 sin²(πk/2n) for k < n (the second form has no
 * cancellation at the low frequencies). */
static void eigenvalues(float *l, int n)
{
    const double pi = 3.14159265358979323846;
    for (int k = 0; k < n; k++) {
        double s = sin(pi * k / (2.0 * n));
        l[k] = (float)(-4.0 * s * s);
    }
}

static int make_plans(lumos_ctx *ctx, solve *s)
{
    const int W = s->width, H = s->height;
    float *buf = lumos__scratch_alloc(ctx, (size_t)COLS * H * sizeof *buf);
    if (!buf) return lumos__fail(ctx, LUMOS_E_NOMEM, "dereflect classic: out of memory");
    const fftwf_r2r_kind dct2 = FFTW_REDFT10, dct3 = FFTW_REDFT01;
    pthread_mutex_lock(&plan_lock);
    /* FFTW_ESTIMATE plans without touching the arrays. */
    s->row_fwd = fftwf_plan_r2r_1d(W, s->plane, s->plane, dct2, FFTW_ESTIMATE);
    s->row_inv = fftwf_plan_r2r_1d(W, s->plane, s->plane, dct3, FFTW_ESTIMATE);
    s->col_fwd = fftwf_plan_many_r2r(1, &H, COLS, buf, NULL, 1, H, buf, NULL, 1, H, &dct2,
                                     FFTW_ESTIMATE);
    s->col_inv = fftwf_plan_many_r2r(1, &H, COLS, buf, NULL, 1, H, buf, NULL, 1, H, &dct3,
                                     FFTW_ESTIMATE);
    pthread_mutex_unlock(&plan_lock);
    lumos__scratch_free(ctx, buf);
    if (!s->row_fwd || !s->row_inv || !s->col_fwd || !s->col_inv)
        return lumos__fail(ctx, LUMOS_E_NOMEM, "dereflect classic: FFTW could not plan %d×%d", W,
                           H);
    return LUMOS_OK;
}

static void destroy_plans(solve *s)
{
    pthread_mutex_lock(&plan_lock);
    fftwf_plan plans[] = {s->row_fwd, s->row_inv, s->col_fwd, s->col_inv};
    for (size_t i = 0; i < sizeof plans / sizeof *plans; i++)
        if (plans[i]) fftwf_destroy_plan(plans[i]);
    pthread_mutex_unlock(&plan_lock);
}

/* plane: g in, X out (the solve above). */
static int poisson(lumos_ctx *ctx, solve *s)
{
    int rc;
    s->inverse = 0;
    rc = lumos__parallel_for(ctx, (s->height + ROWS - 1) / ROWS, row_task, s);
    if (!rc) rc = lumos__parallel_for(ctx, (s->width + COLS - 1) / COLS, col_task, s);
    s->inverse = 1;
    if (!rc) rc = lumos__parallel_for(ctx, (s->height + ROWS - 1) / ROWS, row_task, s);
    if (rc) return lumos__fail(ctx, rc, "dereflect classic: out of memory");
    return LUMOS_OK;
}

int lumos__dereflect_classic(lumos_ctx *ctx, const float *rgb, int width, int height, float h,
                             float eps, float *out)
{
    if (!rgb || !out || width < 1 || height < 1 || (int64_t)width * height > INT32_MAX / 3)
        return lumos__fail(ctx, LUMOS_E_ARG, "dereflect classic: bad image (%d×%d)", width,
                           height);
    if (!isfinite(h) || h < 0 || !isfinite(eps) || !(eps > 0))
        return lumos__fail(ctx, LUMOS_E_ARG,
                           "dereflect classic: need h >= 0 and eps > 0 (got %g, %g)", h, eps);
    lumos__halide_init();
    const int W = width, H = height, stride = lumos__round_up(W, ROW_ALIGN);
    solve s = {ctx, NULL, W, H, stride, NULL, NULL, eps, (float)(1.0 / (4.0 * W * H)),
               NULL, NULL, NULL, NULL, 0};
    float *lx = malloc((size_t)W * sizeof *lx), *ly = malloc((size_t)H * sizeof *ly);
    s.plane = fftwf_malloc((size_t)stride * H * sizeof *s.plane);
    int rc = lx && ly && s.plane ? make_plans(ctx, &s)
                                 : lumos__fail(ctx, LUMOS_E_NOMEM, "dereflect classic: out of memory");
    if (rc == LUMOS_OK) {
        eigenvalues(lx, W);
        eigenvalues(ly, H);
        s.lx = lx;
        s.ly = ly;
    }

    /* rgb as (x, y, c); the plane; out's channel c as (x, y). */
    halide_buffer_t rgb_b, plane_b, out_b;
    halide_dimension_t rgb_d[3], plane_d[2], out_d[2];
    const struct halide_type_t f32 = {halide_type_float, 32, 1};
    memset(&rgb_b, 0, sizeof rgb_b);
    rgb_d[0] = (halide_dimension_t){0, W, 3, 0};
    rgb_d[1] = (halide_dimension_t){0, H, 3 * W, 0};
    rgb_d[2] = (halide_dimension_t){0, 3, 1, 0};
    rgb_b.host = (uint8_t *)rgb;
    rgb_b.type = f32;
    rgb_b.dimensions = 3;
    rgb_b.dim = rgb_d;
    lumos__hl_buffer_2d(&plane_b, plane_d, s.plane, f32, W, H, stride);

    for (int c = 0; rc == LUMOS_OK && c < 3; c++) {
        lumos__clear_error(ctx);
        rc = lumos__hl_status(ctx, lumos_dereflect_classic_residual(ctx, &rgb_b, c, h, &plane_b),
                              "dereflect classic");
        if (rc == LUMOS_OK) rc = poisson(ctx, &s);
        if (rc != LUMOS_OK) break;
        /* In place is safe: the residual of channel c reads only channel c,
         * which no earlier finish wrote, and the finish reads each pixel
         * before writing it. */
        lumos__hl_buffer_2d(&out_b, out_d, out + c, f32, W, H, 3 * W);
        out_d[0].stride = 3;
        rc = lumos__hl_status(ctx, lumos_dereflect_classic_finish(ctx, &rgb_b, &plane_b, c, &out_b),
                              "dereflect classic");
    }
    destroy_plans(&s);
    fftwf_free(s.plane);
    free(lx);
    free(ly);
    return rc;
}
