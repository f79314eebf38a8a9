/* reflect_synth.c — reflection training pairs: the synthesis models and the
 * random views of photos they start from. See reflect_synth.h. */
#include "train/reflect_synth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "train/unprocess.h" /* the trainer's RNG: lumos__rng_uniform */

const double lumos__reflect_mix[LUMOS__REFLECT_MODELS] = {0.30, 0.25, 0.30, 0.15};

/* Zhang's gamma and his rejection thresholds. */
#define ZHANG_GAMMA 2.2
#define ZHANG_MIN_MAX 0.15f
/* CEILNet's γ (ERRNet: low_gamma = high_gamma = 1.3). */
#define CEILNET_GAMMA 1.3f
enum { MAX_KSIZE = 255 };

static const char *const model_names[LUMOS__REFLECT_MODELS] = {"ceilnet", "zhang", "screen",
                                                               "ghost"};

const char *lumos__reflect_model_name(lumos__reflect_model model)
{
    return (unsigned)model < LUMOS__REFLECT_MODELS ? model_names[model] : NULL;
}

/* ------------------------------------------------------------ drawing */

/* 2⌈2σ⌉ + 1, Zhang's kernel side (also the ghost's). */
static int zhang_ksize(double sigma) { return (int)(2 * ceil(2 * sigma) + 1); }

void lumos__reflect_draw_model(uint64_t *rng, lumos__reflect_model model, int width, int height,
                               lumos__reflect_params *p)
{
    /* A fixed number of draws whatever the model (LUMOS__REFLECT_DRAWS). */
    double u[LUMOS__REFLECT_DRAWS];
    for (int i = 0; i < LUMOS__REFLECT_DRAWS; i++) u[i] = lumos__rng_uniform(rng);
    memset(p, 0, sizeof *p);
    p->model = model;
    p->border = LUMOS__REFLECT_MIRROR;
    p->alpha = p->beta = p->att = p->t_scale = 1.f;
    switch (model) {
    case LUMOS__REFLECT_CEILNET:
        p->sigma = (float)(2 + 3 * u[0]);
        p->ksize = 11; /* getGaussianKernel(11, sigma): their kernel_sizes go unused */
        p->gamma = CEILNET_GAMMA;
        break;
    case LUMOS__REFLECT_ZHANG: {
        /* numpy's linspace(1, 5, 80)[k] = k·(4/79) + 1, and exactly 5 last. */
        int k = (int)(80 * u[0]);
        double sigma = k == 79 ? 5.0 : k * (4.0 / 79.0) + 1.0;
        p->sigma = (float)sigma;
        p->ksize = zhang_ksize(sigma);
        p->att = (float)(1.08 + u[1] / 10.0);
        int big = width > height ? width : height;
        p->vig_size = big + 11 > LUMOS__REFLECT_VIGNETTE ? big + 11 : LUMOS__REFLECT_VIGNETTE;
        /* randint(0, S − w − 10): 0 .. S − w − 11 */
        p->vig_x = (int)(u[2] * (p->vig_size - width - 10));
        p->vig_y = (int)(u[3] * (p->vig_size - height - 10));
        p->t_scale = (float)(1.0 - u[4] / 5.0);
        break;
    }
    case LUMOS__REFLECT_SCREEN: {
        static const int sizes[4] = {5, 7, 9, 11};
        static const double cum[4] = {0.1, 0.3, 0.6, 1.0};
        int i = 0;
        while (i < 3 && u[0] >= cum[i]) i++;
        p->ksize = sizes[i];
        p->sigma = (float)(2 + 3 * u[1]);
        p->alpha = (float)(0.8 + 0.2 * u[2]);
        p->beta = (float)(0.4 + 0.6 * u[3]);
        break;
    }
    case LUMOS__REFLECT_GHOST: {
        double sigma = 0.5 + 1.5 * u[0];
        p->sigma = (float)sigma;
        p->ksize = zhang_ksize(sigma);
        p->ghost_c = (float)(0.3 + 0.5 * u[1]);
        double radius = 3 + 12 * u[2], angle = 6.283185307179586 * u[3];
        /* |d| >= 3 and rounding moves each component by <= 0.5: never (0, 0). */
        p->ghost_dx = (int)lrint(radius * cos(angle));
        p->ghost_dy = (int)lrint(radius * sin(angle));
        p->gamma = CEILNET_GAMMA;
        break;
    }
    default:
        break;
    }
}

void lumos__reflect_draw(uint64_t *rng, const double *mix, int width, int height,
                         lumos__reflect_params *p)
{
    if (!mix) mix = lumos__reflect_mix;
    double total = 0;
    int last = 0;
    for (int m = 0; m < LUMOS__REFLECT_MODELS; m++)
        if (mix[m] > 0) {
            total += mix[m];
            last = m;
        }
    double u = lumos__rng_uniform(rng) * total, cum = 0;
    int model = last; /* where rounding leaves u past the sum */
    for (int m = 0; m < LUMOS__REFLECT_MODELS; m++) {
        if (!(mix[m] > 0)) continue;
        cum += mix[m];
        if (u < cum) {
            model = m;
            break;
        }
    }
    lumos__reflect_draw_model(rng, (lumos__reflect_model)model, width, height, p);
}

/* ------------------------------------------------------------ pieces */

void lumos__reflect_gaussian(int ksize, double sigma, double *g)
{
    double sum = 0, c = (ksize - 1) / 2.0, s = -0.5 / (sigma * sigma);
    for (int i = 0; i < ksize; i++) sum += g[i] = exp(s * (i - c) * (i - c));
    for (int i = 0; i < ksize; i++) g[i] /= sum;
}

/* OpenCV's BORDER_REFLECT_101 for any i (folded as often as it takes). */
static int mirror(int i, int n)
{
    if (n == 1) return 0;
    int period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

/* One 1-D pass: dst(x) = Σ_j g_j src(x + j − r) along an axis of n
 * samples `step` floats apart, for each of `lines` lines `line` floats
 * apart (3 channels each). */
static void blur_pass(const float *src, float *dst, int n, size_t step, int lines, size_t line,
                      const double *g, int ksize, lumos__reflect_border border)
{
    const int r = ksize / 2;
    for (int l = 0; l < lines; l++) {
        const float *s = src + (size_t)l * line;
        float *d = dst + (size_t)l * line;
        for (int x = 0; x < n; x++) {
            double acc[3] = {0, 0, 0};
            for (int j = 0; j < ksize; j++) {
                int i = x + j - r;
                if (i < 0 || i >= n) {
                    if (border == LUMOS__REFLECT_ZERO) continue;
                    i = mirror(i, n);
                }
                const float *v = s + (size_t)i * step;
                acc[0] += g[j] * v[0];
                acc[1] += g[j] * v[1];
                acc[2] += g[j] * v[2];
            }
            float *o = d + (size_t)x * step;
            o[0] = (float)acc[0];
            o[1] = (float)acc[1];
            o[2] = (float)acc[2];
        }
    }
}

void lumos__reflect_blur(const float *src, float *dst, float *tmp, int width, int height,
                         int ksize, double sigma, lumos__reflect_border border)
{
    double g[MAX_KSIZE];
    lumos__reflect_gaussian(ksize, sigma, g);
    const size_t row = (size_t)width * 3;
    blur_pass(src, tmp, width, 3, height, row, g, ksize, border); /* along rows */
    blur_pass(tmp, dst, height, row, width, 3, g, ksize, border); /* along columns */
}

static double normal_cdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

void lumos__reflect_vignette(int size, int first, int count, double *f)
{
    /* gkern(size, 3): interval = 7/size; x = linspace(−3 − interval/2,
     * 3 + interval/2, size + 1); k = diff(norm.cdf(x)). */
    const double nsig = 3, interval = (2 * nsig + 1) / size;
    const double lo = -nsig - interval / 2, hi = nsig + interval / 2, dx = (hi - lo) / size;
#define X_AT(i) ((i) == size ? hi : (i) * dx + lo)
    double kmax = 0;
    for (int i = 0; i < size; i++) kmax = fmax(kmax, normal_cdf(X_AT(i + 1)) - normal_cdf(X_AT(i)));
    for (int i = 0; i < count; i++) {
        int k = first + i;
        f[i] = sqrt((normal_cdf(X_AT(k + 1)) - normal_cdf(X_AT(k))) / kmax);
    }
#undef X_AT
}

static float clamp01(float v) { return v < 0.f ? 0.f : v > 1.f ? 1.f : v; }

/* ------------------------------------------------------------ models */

/* CEILNet's addition (and the ghost's): I = T + R_b, the mean excess over
 * 1 of all values above 1, × gamma, taken off R_b. */
static void add_clip(const float *t, const float *rb, float gamma, size_t n, float *in, float *rl)
{
    double sum = 0;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        float v = t[i] + rb[i];
        if (v > 1.f) {
            sum += v;
            count++;
        }
    }
    if (count == 0) { /* max(M) <= 1: as it is */
        for (size_t i = 0; i < n; i++) {
            rl[i] = rb[i];
            in[i] = t[i] + rb[i];
        }
        return;
    }
    const double m = (sum / (double)count - 1.0) * gamma;
    for (size_t i = 0; i < n; i++) {
        rl[i] = clamp01((float)(rb[i] - m));
        in[i] = clamp01(t[i] + rl[i]);
    }
}

/* Zhang et al.'s syn_data and the rejection of their training loop;
 * lin and rb are scratch planes, in doubles as r^2.2 first. */
static int zhang(lumos_ctx *ctx, const lumos__reflect_params *p, int w, int h, const float *t,
                 const float *r, float *in, float *rl, float *rb, float *tmp, float *lin)
{
    const size_t n = (size_t)w * h * 3;
    double *fx = malloc(((size_t)w + (size_t)h) * sizeof *fx);
    if (!fx) return lumos__fail(ctx, LUMOS_E_NOMEM, "reflection pair: out of memory");
    double *fy = fx + w;
    lumos__reflect_vignette(p->vig_size, p->vig_x, w, fx);
    lumos__reflect_vignette(p->vig_size, p->vig_y, h, fy);

    for (size_t i = 0; i < n; i++) {
        lin[i] = powf(t[i], (float)ZHANG_GAMMA);
        in[i] = powf(r[i], (float)ZHANG_GAMMA);
    }
    lumos__reflect_blur(in, rb, tmp, w, h, p->ksize, p->sigma, p->border);
    /* Per channel: mean_c = max(1, Σ blend·[blend > 1] / (count + 1e-6)). */
    double sum[3] = {0, 0, 0}, count[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        float v = rb[i] + lin[i];
        if (v > 1.f) {
            sum[i % 3] += v;
            count[i % 3] += 1;
        }
    }
    double sub[3];
    for (int c = 0; c < 3; c++) sub[c] = (fmax(1.0, sum[c] / (count[c] + 1e-6)) - 1.0) * p->att;
    const double inv_gamma = 1.0 / ZHANG_GAMMA;
    float max_t = 0.f, max_rl = 0.f;
    double mean_t = 0, mean_r = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                size_t i = ((size_t)y * w + x) * 3 + c;
                double v = clamp01((float)(rb[i] - sub[c])) * (fy[y] * fx[x]); /* r_blur_mask */
                in[i] = clamp01((float)pow(v + lin[i] * (double)p->t_scale, inv_gamma));
                rl[i] = (float)pow(v, inv_gamma);
                max_t = fmaxf(max_t, t[i]);
                max_rl = fmaxf(max_rl, rl[i]);
                mean_t += t[i];
                mean_r += r[i];
            }
    free(fx);
    int reject = mean_t / 2 > mean_r || max_rl < ZHANG_MIN_MAX || max_t < ZHANG_MIN_MAX;
    return reject ? LUMOS__REFLECT_REJECTED : 0;
}

static int check_params(lumos_ctx *ctx, const lumos__reflect_params *p, int w, int h)
{
    if ((unsigned)p->model >= LUMOS__REFLECT_MODELS)
        return lumos__fail(ctx, LUMOS_E_ARG, "reflection pair: no model %d", (int)p->model);
    const char *name = model_names[p->model];
    if (p->border != LUMOS__REFLECT_MIRROR && p->border != LUMOS__REFLECT_ZERO)
        return lumos__fail(ctx, LUMOS_E_ARG, "reflection pair (%s): no border %d", name,
                           (int)p->border);
    if (p->ksize < 1 || p->ksize > MAX_KSIZE || !(p->ksize & 1) || !(p->sigma > 0) ||
        !isfinite(p->sigma))
        return lumos__fail(ctx, LUMOS_E_ARG,
                           "reflection pair (%s): kernel %d, sigma %g (odd 1..%d, sigma > 0)",
                           name, p->ksize, p->sigma, MAX_KSIZE);
    if (!isfinite(p->gamma) || !isfinite(p->alpha) || !isfinite(p->beta) || !isfinite(p->att) ||
        !isfinite(p->t_scale) || !isfinite(p->ghost_c) || p->gamma < 0 || p->ghost_c < 0)
        return lumos__fail(ctx, LUMOS_E_ARG, "reflection pair (%s): a parameter out of range",
                           name);
    if (p->model == LUMOS__REFLECT_ZHANG &&
        (p->vig_x < 0 || p->vig_y < 0 || p->vig_size - p->vig_x < w || p->vig_size - p->vig_y < h))
        return lumos__fail(ctx, LUMOS_E_ARG,
                           "reflection pair (zhang): a %dx%d crop at %d,%d leaves the %d² vignette",
                           w, h, p->vig_x, p->vig_y, p->vig_size);
    return LUMOS_OK;
}

int lumos__reflect_apply(lumos_ctx *ctx, const lumos__reflect_params *p, int width, int height,
                         const float *t, const float *r, float *in, float *target, float *refl)
{
    if (!p || !t || !r || !in || width < 1 || height < 1)
        return lumos__fail(ctx, LUMOS_E_ARG, "reflection pair: bad arguments");
    int rc = check_params(ctx, p, width, height);
    if (rc) return rc;
    const size_t n = (size_t)width * height * 3;
    float *buf = malloc(4 * n * sizeof *buf);
    if (!buf) return lumos__fail(ctx, LUMOS_E_NOMEM, "reflection pair: out of memory");
    float *rb = buf, *tmp = buf + n, *lin = buf + 2 * n, *rl = refl ? refl : buf + 3 * n;
    rc = 0;
    switch (p->model) {
    case LUMOS__REFLECT_CEILNET:
        lumos__reflect_blur(r, rb, tmp, width, height, p->ksize, p->sigma, p->border);
        add_clip(t, rb, p->gamma, n, in, rl);
        break;
    case LUMOS__REFLECT_ZHANG:
        rc = zhang(ctx, p, width, height, t, r, in, rl, rb, tmp, lin);
        break;
    case LUMOS__REFLECT_SCREEN:
        lumos__reflect_blur(r, rb, tmp, width, height, p->ksize, p->sigma, p->border);
        for (size_t i = 0; i < n; i++) {
            float a = p->alpha * t[i];
            rl[i] = p->beta * rb[i];
            in[i] = a + rl[i] - a * rl[i];
        }
        break;
    case LUMOS__REFLECT_GHOST: {
        lumos__reflect_blur(r, rb, tmp, width, height, p->ksize, p->sigma, p->border);
        const float c = p->ghost_c, norm = 1.f / (1.f + c);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++) {
                int sx = x - p->ghost_dx, sy = y - p->ghost_dy;
                int out = sx < 0 || sx >= width || sy < 0 || sy >= height;
                const float *g = NULL; /* R_b(x − d), NULL: zero border outside */
                if (!out || p->border == LUMOS__REFLECT_MIRROR)
                    g = rb + ((size_t)mirror(sy, height) * width + mirror(sx, width)) * 3;
                for (int k = 0; k < 3; k++) {
                    size_t i = ((size_t)y * width + x) * 3 + k;
                    tmp[i] = (rb[i] + c * (g ? g[k] : 0.f)) * norm;
                }
            }
        add_clip(t, tmp, p->gamma, n, in, rl);
        break;
    }
    default:
        break;
    }
    if (rc >= 0 && target && target != t) memcpy(target, t, n * sizeof *t);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------ views */

int lumos__reflect_view_draw(lumos_ctx *ctx, uint64_t *rng, int src_w, int src_h, int width,
                             int height, lumos__reflect_view *v)
{
    if (!rng || !v || src_w < 1 || src_h < 1 || width < 1 || height < 1)
        return lumos__fail(ctx, LUMOS_E_ARG, "reflection view: bad arguments");
    double u[4];
    for (int i = 0; i < 4; i++) u[i] = lumos__rng_uniform(rng);
    const double c = width > height ? width : height, short_side = src_w < src_h ? src_w : src_h;
    v->step = short_side / (c * (1 + u[0])); /* short side scaled to U[c, 2c) */
    /* Whole-pixel positions 0 .. floor(src − window): the window fits. */
    double fx = floor(src_w - width * v->step + 1e-9), fy = floor(src_h - height * v->step + 1e-9);
    v->x = floor(u[1] * (fmax(fx, 0) + 1));
    v->y = floor(u[2] * (fmax(fy, 0) + 1));
    v->flip_x = u[3] < 0.5;
    return LUMOS_OK;
}

/* The resampling of one axis: output i is Σ_k wt[i·taps + k]·src(first[i] + k). */
typedef struct {
    int taps;
    int *first;
    double *wt;
} axis_map;

static int axis_build(axis_map *m, double x0, double step, int n_out, int n_src)
{
    m->taps = step > 1 ? (int)ceil(step) + 2 : 2;
    m->first = malloc((size_t)n_out * sizeof *m->first);
    m->wt = calloc((size_t)n_out * (size_t)m->taps, sizeof *m->wt);
    if (!m->first || !m->wt) return -1;
    for (int i = 0; i < n_out; i++) {
        double *w = m->wt + (size_t)i * m->taps;
        if (step > 1) { /* area: the footprint [a, b) */
            double a = x0 + i * step, b = a + step, sum = 0;
            int j0 = (int)floor(a);
            if (j0 < 0) j0 = 0;
            if (j0 > n_src - 1) j0 = n_src - 1;
            m->first[i] = j0;
            for (int k = 0; k < m->taps && j0 + k < n_src; k++) {
                double cover = fmin(b, j0 + k + 1) - fmax(a, j0 + k);
                if (cover > 0) sum += w[k] = cover;
            }
            for (int k = 0; k < m->taps; k++) w[k] = sum > 0 ? w[k] / sum : (k == 0);
        } else { /* bilinear at the centre's position, clamped */
            double s = x0 + (i + 0.5) * step - 0.5;
            s = fmin(fmax(s, 0), n_src - 1);
            int j0 = (int)floor(s);
            if (j0 >= n_src - 1) j0 = n_src - 1;
            double f = s - j0;
            m->first[i] = j0;
            w[0] = 1 - f;
            if (j0 + 1 < n_src) w[1] = f;
        }
    }
    return 0;
}

static void axis_free(axis_map *m)
{
    free(m->first);
    free(m->wt);
}

static float sample_of(const lumos_image *src, int y, int x, int c)
{
    const uint8_t *row = (const uint8_t *)src->data + (size_t)y * src->stride;
    size_t i = (size_t)x * 3 + c;
    if (src->bits == 8) return row[i] * (1.f / 255.f);
    if (src->bits == 16) return ((const uint16_t *)(const void *)row)[i] * (1.f / 65535.f);
    return ((const float *)(const void *)row)[i];
}

int lumos__reflect_view_apply(lumos_ctx *ctx, const lumos_image *src, const lumos__reflect_view *v,
                              int width, int height, float *out)
{
    if (!src || !src->data || !v || !out || width < 1 || height < 1)
        return lumos__fail(ctx, LUMOS_E_ARG, "reflection view: bad arguments");
    if (src->channels != 3 || (src->bits != 8 && src->bits != 16 && src->bits != 32))
        return lumos__fail(ctx, LUMOS_E_ARG, "reflection view: %d channels of %d bits, not RGB",
                           src->channels, src->bits);
    const double eps = 1e-6;
    if (!(v->step > 0) || !isfinite(v->step) || v->x < -eps || v->y < -eps ||
        v->x + width * v->step > src->width + eps || v->y + height * v->step > src->height + eps)
        return lumos__fail(ctx, LUMOS_E_ARG,
                           "reflection view: window %gx%g at %g,%g leaves the %dx%d photo",
                           width * v->step, height * v->step, v->x, v->y, src->width,
                           src->height);
    axis_map mx = {0}, my = {0};
    float *rows = NULL;
    int rc = LUMOS_OK;
    if (axis_build(&mx, v->x, v->step, width, src->width) ||
        axis_build(&my, v->y, v->step, height, src->height))
        rc = lumos__fail(ctx, LUMOS_E_NOMEM, "reflection view: out of memory");
    int y0 = 0, y1 = 0; /* the source rows the taps reach */
    if (rc == LUMOS_OK) {
        y0 = my.first[0];
        y1 = y0;
        for (int i = 0; i < height; i++) {
            if (my.first[i] < y0) y0 = my.first[i];
            int last = my.first[i] + my.taps - 1;
            if (last > y1) y1 = last;
        }
        if (y1 > src->height - 1) y1 = src->height - 1;
        rows = malloc((size_t)(y1 - y0 + 1) * width * 3 * sizeof *rows);
        if (!rows) rc = lumos__fail(ctx, LUMOS_E_NOMEM, "reflection view: out of memory");
    }
    if (rc == LUMOS_OK) {
        /* Along rows (the flip reads the mirrored column's weights)... */
        for (int sy = y0; sy <= y1; sy++)
            for (int x = 0; x < width; x++) {
                int i = v->flip_x ? width - 1 - x : x;
                const double *w = mx.wt + (size_t)i * mx.taps;
                double acc[3] = {0, 0, 0};
                for (int k = 0; k < mx.taps && mx.first[i] + k < src->width; k++)
                    if (w[k] != 0)
                        for (int c = 0; c < 3; c++)
                            acc[c] += w[k] * sample_of(src, sy, mx.first[i] + k, c);
                float *o = rows + ((size_t)(sy - y0) * width + x) * 3;
                for (int c = 0; c < 3; c++) o[c] = (float)acc[c];
            }
        /* ... then along columns. */
        for (int y = 0; y < height; y++) {
            const double *w = my.wt + (size_t)y * my.taps;
            for (int x = 0; x < width; x++)
                for (int c = 0; c < 3; c++) {
                    double acc = 0;
                    for (int k = 0; k < my.taps && my.first[y] + k <= y1; k++)
                        if (w[k] != 0)
                            acc += w[k] * rows[((size_t)(my.first[y] + k - y0) * width + x) * 3 + c];
                    out[((size_t)y * width + x) * 3 + c] = (float)acc;
                }
        }
    }
    free(rows);
    axis_free(&mx);
    axis_free(&my);
    return rc;
}
