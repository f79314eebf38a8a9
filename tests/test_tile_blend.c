/* test_tile_blend.c — the overlapping-tile runner (stages/tiler.c).
 *
 *  - a box blur of radius r (clamp-to-edge) run in tiles, each call reading
 *    only its region plus the apron, equals the blur of the whole image:
 *    bit for bit with hard seams (overlap 0), within 1e-6 with blended seams
 *    (the ramps sum to one); ragged edges (517×389 in 128×96 tiles), align
 *    4 and 8 with odd sizes, overlap of half a tile, tiles of one pixel,
 *    1×1 images, images smaller than a tile, a padded row stride left alone;
 *  - with an apron short of the blur the result differs, and only near
 *    seams: the comparison can fail;
 *  - a statistics pass: pixel minus the global mean equals the untiled
 *    result; the core tiles cover the image once, all before any image call;
 *  - every region is aligned, within the image rounded up to align, at
 *    most tile + 2·overlap (rounded up to align) each way and within the
 *    buffer the tiler reports, which does not grow with the image;
 *  - a failing callback's code is returned and no callback runs after it;
 *    bad descriptions are refused before any callback. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lumos.h"
#include "core/context.h"
#include "stages/tiler.h"

static uint32_t seed = 12345;
static float uniform01(void)
{
    seed = seed * 1664525u + 1013904223u;
    return (float)(seed >> 8) / (float)(1 << 24);
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static int round_up(int v, int align)
{
    return (v + align - 1) / align * align;
}

/* -------------------------------------------------------- the reference */

/* Box blur of radius r over the whole image, edges clamped. */
static void box_blur(const float *src, int W, int H, int C, int r, float *out)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++) {
                float s = 0;
                for (int dy = -r; dy <= r; dy++)
                    for (int dx = -r; dx <= r; dx++) {
                        int xx = clampi(x + dx, 0, W - 1), yy = clampi(y + dy, 0, H - 1);
                        s += src[((size_t)yy * W + xx) * C + c];
                    }
                out[((size_t)y * W + x) * C + c] = s / (float)((2 * r + 1) * (2 * r + 1));
            }
}

/* ------------------------------------------------------- the callbacks */

typedef struct {
    int x0, y0, w, h;
} region;

typedef struct {
    lumos_ctx *ctx;
    const float *src;
    int W, H, C;
    int radius, apron;
    int minus_mean; /* the op: 0 box blur, 1 pixel minus the global mean */
    /* what the tiler asked */
    region *runs;
    int nruns, cap;
    int stat_calls, done_calls, max_window_w, max_window_h;
    int *covered;     /* statistics tiles over each pixel */
    int late_stats;   /* statistics calls after an image call */
    int early_runs;   /* image calls before statistics_done */
    int fail_run, fail_stat, fail_done; /* fail at this call (1-based), 0 never */
    double sum[4];
    float mean[4];
} job;

static int blur_run(void *user, int x0, int y0, int w, int h, float *out)
{
    job *j = user;
    if (j->nruns == j->cap) {
        j->cap = j->cap ? 2 * j->cap : 64;
        j->runs = realloc(j->runs, (size_t)j->cap * sizeof *j->runs);
    }
    j->runs[j->nruns++] = (region){x0, y0, w, h};
    if (j->nruns == j->fail_run) return lumos__fail(j->ctx, LUMOS_E_PIPELINE, "run: boom");
    if (j->done_calls == 0) j->early_runs++;

    if (j->minus_mean) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < j->C; c++) {
                    int xx = clampi(x0 + x, 0, j->W - 1), yy = clampi(y0 + y, 0, j->H - 1);
                    out[((size_t)y * w + x) * j->C + c] =
                        j->src[((size_t)yy * j->W + xx) * j->C + c] - j->mean[c];
                }
        return LUMOS_OK;
    }
    /* As a pipeline would: copy the input window (the region plus the
     * apron, inside the image), then blur reading only the window, clamped
     * to it; the window's edges are the image's only where it reaches them. */
    int wx0 = clampi(x0 - j->apron, 0, j->W), wx1 = clampi(x0 + w + j->apron, 0, j->W);
    int wy0 = clampi(y0 - j->apron, 0, j->H), wy1 = clampi(y0 + h + j->apron, 0, j->H);
    int ww = wx1 - wx0, wh = wy1 - wy0, C = j->C, r = j->radius;
    if (ww > j->max_window_w) j->max_window_w = ww;
    if (wh > j->max_window_h) j->max_window_h = wh;
    float *win = malloc((size_t)ww * wh * C * sizeof *win);
    for (int y = 0; y < wh; y++)
        memcpy(win + (size_t)y * ww * C, j->src + ((size_t)(wy0 + y) * j->W + wx0) * C,
               (size_t)ww * C * sizeof *win);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < C; c++) {
                float s = 0;
                for (int dy = -r; dy <= r; dy++)
                    for (int dx = -r; dx <= r; dx++) {
                        int xx = clampi(x0 + x + dx, wx0, wx1 - 1) - wx0;
                        int yy = clampi(y0 + y + dy, wy0, wy1 - 1) - wy0;
                        s += win[((size_t)yy * ww + xx) * C + c];
                    }
                out[((size_t)y * w + x) * C + c] = s / (float)((2 * r + 1) * (2 * r + 1));
            }
    free(win);
    return LUMOS_OK;
}

static int stats_tile(void *user, int x0, int y0, int w, int h)
{
    job *j = user;
    j->stat_calls++;
    if (j->stat_calls == j->fail_stat) return lumos__fail(j->ctx, LUMOS_E_PIPELINE, "stats: boom");
    if (j->nruns > 0) j->late_stats++;
    /* the region may reach past the image (align): only the image counts */
    for (int y = y0; y < y0 + h && y < j->H; y++)
        for (int x = x0; x < x0 + w && x < j->W; x++) {
            if (j->covered) j->covered[(size_t)y * j->W + x]++;
            for (int c = 0; c < j->C; c++) j->sum[c] += j->src[((size_t)y * j->W + x) * j->C + c];
        }
    return LUMOS_OK;
}

static int stats_done(void *user)
{
    job *j = user;
    j->done_calls++;
    if (j->done_calls == j->fail_done) return lumos__fail(j->ctx, LUMOS_E_PIPELINE, "done: boom");
    for (int c = 0; c < j->C; c++) j->mean[c] = (float)(j->sum[c] / ((double)j->W * j->H));
    return LUMOS_OK;
}

/* ----------------------------------------------------------- the checks */

static float *random_image(int W, int H, int C)
{
    float *p = malloc((size_t)W * H * C * sizeof *p);
    for (size_t i = 0; i < (size_t)W * H * C; i++) p[i] = uniform01();
    return p;
}

/* Every region aligned, inside the image rounded up to align, at most the
 * tile plus the rounded overlap each way, within the tiler's buffer, the
 * input windows within the documented bound; one call a tile. */
static void check_regions(const lumos__tiler *t, const job *j, const char *name)
{
    int a = t->align, grow = round_up(t->overlap, a);
    int mw, mh;
    lumos__tiler_max_region(t, &mw, &mh);
    size_t buffer = lumos__tiler_buffer_floats(t);
    int bad = 0, too_big = 0;
    for (int i = 0; i < j->nruns; i++) {
        region g = j->runs[i];
        bad += g.x0 % a || g.y0 % a || g.w % a || g.h % a || g.w < 1 || g.h < 1 || g.x0 < 0 ||
               g.y0 < 0 || g.x0 >= t->width || g.y0 >= t->height ||
               g.x0 + g.w > round_up(t->width, a) || g.y0 + g.h > round_up(t->height, a);
        too_big += g.w > t->tile_w + 2 * grow || g.h > t->tile_h + 2 * grow || g.w > mw ||
                   g.h > mh || (size_t)g.w * g.h * t->channels > buffer;
    }
    int tiles = ((t->width - 1) / t->tile_w + 1) * ((t->height - 1) / t->tile_h + 1);
    CHECK(bad == 0, "%s: %d regions unaligned or outside the padded image", name, bad);
    CHECK(too_big == 0, "%s: %d regions over %dx%d (tile + 2·overlap) or the buffer", name,
          too_big, t->tile_w + 2 * grow, t->tile_h + 2 * grow);
    CHECK(j->nruns == tiles, "%s: %d image calls for %d tiles", name, j->nruns, tiles);
    CHECK(j->max_window_w <= mw + 2 * t->apron && j->max_window_h <= mh + 2 * t->apron,
          "%s: input window %dx%d over the bound", name, j->max_window_w, j->max_window_h);
}

/* Whether v lies within `reach` of a seam between tiles of `tile`. */
static int near_seam(int v, int tile, int size, int reach)
{
    for (int s = tile; s < size; s += tile)
        if (v >= s - reach && v < s + reach) return 1;
    return 0;
}

typedef struct {
    const char *name;
    int W, H, C, tile_w, tile_h, radius, apron, overlap, align;
    double tol; /* max |tiled − whole|; < 0: an apron short of the blur, must differ */
} blur_case;

static void test_blur(lumos_ctx *ctx)
{
    const blur_case cases[] = {
        {"hard seams", 517, 389, 3, 128, 96, 3, 3, 0, 1, 0},
        {"hard seams, apron over the reach", 517, 389, 1, 128, 96, 2, 5, 0, 1, 0},
        {"blended seams", 517, 389, 3, 128, 96, 3, 3, 8, 1, 1e-6},
        {"align 4, hard seams", 517, 389, 3, 128, 96, 3, 3, 0, 4, 0},
        {"align 4, overlap 6", 517, 389, 3, 128, 96, 3, 3, 6, 4, 1e-6},
        {"overlap half a tile", 77, 61, 2, 16, 16, 2, 2, 8, 1, 1e-6},
        {"tiles of one pixel", 7, 5, 1, 1, 1, 1, 1, 0, 1, 0},
        {"1x1", 1, 1, 3, 128, 96, 3, 3, 8, 1, 0},
        {"1x1, align 4", 1, 1, 3, 128, 96, 3, 3, 8, 4, 0},
        {"smaller than a tile", 50, 40, 3, 128, 96, 3, 3, 8, 1, 0},
        {"one column", 1, 389, 3, 128, 96, 3, 3, 8, 1, 1e-6},
        {"align 8, 3x5", 3, 5, 1, 8, 8, 1, 1, 4, 8, 0},
        {"align 8, 45x29, tiles 16", 45, 29, 2, 16, 16, 2, 2, 8, 8, 1e-6},
        {"apron short, hard seams", 517, 389, 3, 128, 96, 3, 1, 0, 1, -1},
        {"apron short, blended seams", 517, 389, 3, 128, 96, 3, 1, 8, 1, -1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const blur_case *b = &cases[k];
        const int W = b->W, H = b->H, C = b->C;
        const size_t stride = (size_t)W * C + 3; /* padding the tiler must not touch */
        float *src = random_image(W, H, C), *want = malloc((size_t)W * H * C * sizeof *want);
        float *got = malloc(stride * H * sizeof *got);
        for (size_t i = 0; i < stride * H; i++) got[i] = -7.f;
        box_blur(src, W, H, C, b->radius, want);

        job j = {.ctx = ctx, .src = src, .W = W, .H = H, .C = C, .radius = b->radius,
                 .apron = b->apron};
        lumos__tiler t = {.width = W, .height = H, .channels = C, .tile_w = b->tile_w,
                          .tile_h = b->tile_h, .apron = b->apron, .overlap = b->overlap,
                          .align = b->align, .run = blur_run, .user = &j};
        int rc = lumos__tiler_run(ctx, &t, got, stride);
        CHECK(rc == LUMOS_OK, "%s: %s", b->name, lumos_last_error(ctx));

        double worst = 0;
        int differ = 0, far = 0, padding = 0, fx = -1, fy = -1;
        int reach = b->radius + b->overlap;
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++)
                for (int c = 0; c < C; c++) {
                    float g = got[(size_t)y * stride + (size_t)x * C + c];
                    float w = want[((size_t)y * W + x) * C + c];
                    double e = fabs((double)g - w);
                    if (!(e <= worst)) worst = e; /* NaN counts */
                    if (g != w) {
                        differ++;
                        if (fx < 0) fx = x, fy = y;
                        far += !near_seam(x, b->tile_w, W, reach) &&
                               !near_seam(y, b->tile_h, H, reach);
                    }
                }
            for (size_t i = (size_t)W * C; i < stride; i++) padding += got[y * stride + i] != -7.f;
        }
        printf("%-34s %3dx%-3d c%d tiles %3dx%-3d r%d apron %d overlap %d align %d: "
               "%4d calls, max |tiled - whole| %.2e, %d differ (first at %d,%d)\n",
               b->name, W, H, C, b->tile_w, b->tile_h, b->radius, b->apron, b->overlap, b->align,
               j.nruns, worst, differ, fx, fy);
        if (b->tol < 0) {
            CHECK(differ > 0, "%s: an apron short of the blur must change the result", b->name);
            CHECK(far == 0, "%s: %d values differ farther than %d from a seam", b->name, far,
                  reach);
        } else if (b->tol == 0) {
            CHECK(differ == 0, "%s: %d values differ, first at (%d, %d)", b->name, differ, fx, fy);
        } else {
            CHECK(worst <= b->tol, "%s: off by %.3e, first difference at (%d, %d)", b->name,
                  worst, fx, fy);
        }
        CHECK(padding == 0, "%s: %d floats of the row padding written", b->name, padding);
        check_regions(&t, &j, b->name);
        free(j.runs);
        free(src);
        free(want);
        free(got);
    }
}

static void test_statistics(lumos_ctx *ctx)
{
    const int sizes[][5] = {/* W, H, tile_w, tile_h, align */
                            {517, 389, 128, 96, 1}, {517, 389, 128, 96, 4}, {1, 1, 8, 8, 4}};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        const int W = sizes[k][0], H = sizes[k][1], C = 3;
        float *src = random_image(W, H, C), *got = malloc((size_t)W * H * C * sizeof *got);
        job j = {.ctx = ctx, .src = src, .W = W, .H = H, .C = C, .minus_mean = 1,
                 .covered = calloc((size_t)W * H, sizeof(int))};
        lumos__tiler t = {.width = W, .height = H, .channels = C, .tile_w = sizes[k][2],
                          .tile_h = sizes[k][3], .overlap = 4, .align = sizes[k][4],
                          .statistics = stats_tile, .statistics_done = stats_done,
                          .run = blur_run, .user = &j};
        int rc = lumos__tiler_run(ctx, &t, got, (size_t)W * C);
        CHECK(rc == LUMOS_OK, "statistics: %s", lumos_last_error(ctx));

        double sum[3] = {0, 0, 0}, worst = 0;
        for (int i = 0; i < W * H; i++)
            for (int c = 0; c < C; c++) sum[c] += src[(size_t)i * C + c];
        int once = 0;
        for (int i = 0; i < W * H; i++) {
            once += j.covered[i] == 1;
            for (int c = 0; c < C; c++) {
                float want = src[(size_t)i * C + c] - (float)(sum[c] / ((double)W * H));
                double e = fabs((double)got[(size_t)i * C + c] - want);
                if (!(e <= worst)) worst = e;
            }
        }
        int tiles = ((W - 1) / t.tile_w + 1) * ((H - 1) / t.tile_h + 1);
        printf("statistics %dx%d align %d: %d statistics calls, mean %.6f %.6f %.6f, "
               "max |tiled - whole| %.2e\n", W, H, t.align, j.stat_calls, j.mean[0], j.mean[1],
               j.mean[2], worst);
        CHECK(worst <= 1e-6, "pixel minus the global mean off by %.3e", worst);
        CHECK(once == W * H, "%d of %d pixels in exactly one statistics tile", once, W * H);
        CHECK(j.stat_calls == tiles && j.done_calls == 1, "%d statistics calls for %d tiles, "
              "%d done calls", j.stat_calls, tiles, j.done_calls);
        CHECK(j.early_runs == 0 && j.late_stats == 0,
              "%d image calls before the statistics were done, %d statistics calls after",
              j.early_runs, j.late_stats);
        check_regions(&t, &j, "statistics");
        free(j.covered);
        free(j.runs);
        free(src);
        free(got);
    }
}

/* The buffer does not grow with the image. */
static void test_bounded(void)
{
    lumos__tiler t = {.width = 517, .height = 389, .channels = 3, .tile_w = 128, .tile_h = 96,
                      .overlap = 6, .align = 4};
    size_t small = lumos__tiler_buffer_floats(&t);
    t.width = t.height = 100000;
    size_t big = lumos__tiler_buffer_floats(&t);
    CHECK(small == big && big == (size_t)(128 + 16) * (96 + 16) * 3,
          "buffer %zu floats for 517x389, %zu for 100000x100000, want %d", small, big,
          (128 + 16) * (96 + 16) * 3);
    t.width = 5, t.height = 3; /* smaller than a tile: the image rounded up to align */
    CHECK(lumos__tiler_buffer_floats(&t) == 8 * 4 * 3, "buffer %zu floats for 5x3, want 96",
          lumos__tiler_buffer_floats(&t));
}

static void test_errors(lumos_ctx *ctx)
{
    enum { W = 300, H = 200, C = 1 };
    float *src = random_image(W, H, C), *out = malloc((size_t)W * H * C * sizeof *out);
    const lumos__tiler base = {.width = W, .height = H, .channels = C, .tile_w = 64,
                               .tile_h = 64, .apron = 1, .overlap = 2, .align = 1,
                               .statistics = stats_tile, .statistics_done = stats_done,
                               .run = blur_run};

    /* a failing image call: its code back, no call after it */
    job j = {.ctx = ctx, .src = src, .W = W, .H = H, .C = C, .radius = 1, .apron = 1,
             .fail_run = 3};
    lumos__tiler t = base;
    t.user = &j;
    int rc = lumos__tiler_run(ctx, &t, out, W * C);
    CHECK(rc == LUMOS_E_PIPELINE && j.nruns == 3, "failing 3rd image call: rc %d after %d calls",
          rc, j.nruns);
    CHECK(strstr(lumos_last_error(ctx), "run: boom"), "the callback's detail lost: '%s'",
          lumos_last_error(ctx));
    free(j.runs);

    /* a failing statistics call: no more statistics, no done, no image call */
    j = (job){.ctx = ctx, .src = src, .W = W, .H = H, .C = C, .radius = 1, .apron = 1,
              .fail_stat = 2};
    rc = lumos__tiler_run(ctx, &t, out, W * C);
    CHECK(rc == LUMOS_E_PIPELINE && j.stat_calls == 2 && j.done_calls == 0 && j.nruns == 0,
          "failing 2nd statistics call: rc %d, %d statistics, %d done, %d image calls", rc,
          j.stat_calls, j.done_calls, j.nruns);
    free(j.runs);

    /* a failing statistics_done: no image call */
    j = (job){.ctx = ctx, .src = src, .W = W, .H = H, .C = C, .radius = 1, .apron = 1,
              .fail_done = 1};
    rc = lumos__tiler_run(ctx, &t, out, W * C);
    CHECK(rc == LUMOS_E_PIPELINE && j.nruns == 0, "failing done: rc %d, %d image calls", rc,
          j.nruns);
    free(j.runs);

    /* bad descriptions: LUMOS_E_ARG, no callback */
    struct {
        const char *what;
        lumos__tiler t;
        size_t stride;
        float *image;
    } bad[] = {
        {"overlap over half a tile's width", base, W * C, out},
        {"overlap over half a tile's height", base, W * C, out},
        {"tile not a multiple of align", base, W * C, out},
        {"zero width", base, W * C, out},
        {"negative apron", base, W * C, out},
        {"row stride under a row", base, W * C - 1, out},
        {"no image", base, W * C, NULL},
        {"no image callback", base, W * C, out},
        {"coordinates past INT_MAX", base, W * C, out},
        {"zero channels", base, W * C, out},
    };
    bad[0].t.overlap = 33, bad[0].t.tile_h = 128;
    bad[1].t.overlap = 33, bad[1].t.tile_w = 128;
    bad[2].t.align = 3, bad[2].t.tile_h = 66; /* the width alone at fault */
    bad[3].t.width = 0;
    bad[4].t.apron = -1;
    bad[7].t.run = NULL;
    bad[8].t.width = INT_MAX - 10, bad[8].stride = INT_MAX; /* the size alone at fault */
    bad[9].t.channels = 0;
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        j = (job){.ctx = ctx, .src = src, .W = W, .H = H, .C = C, .radius = 1, .apron = 1};
        bad[k].t.user = &j;
        rc = lumos__tiler_run(ctx, &bad[k].t, bad[k].image, bad[k].stride);
        CHECK(rc == LUMOS_E_ARG && j.stat_calls + j.done_calls + j.nruns == 0,
              "%s: rc %d, %d callbacks", bad[k].what, rc, j.stat_calls + j.done_calls + j.nruns);
    }
    /* half a tile exactly is fine */
    j = (job){.ctx = ctx, .src = src, .W = W, .H = H, .C = C, .radius = 1, .apron = 1};
    t = base;
    t.overlap = 32;
    t.user = &j;
    CHECK(lumos__tiler_run(ctx, &t, out, W * C) == LUMOS_OK, "overlap of half a tile: %s",
          lumos_last_error(ctx));
    free(j.runs);
    free(src);
    free(out);
}

int main(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    test_blur(ctx);
    test_statistics(ctx);
    test_bounded();
    test_errors(ctx);
    lumos_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : "Success!");
    return failures ? 1 : 0;
}
