/* test_adam.c — lumos__adam against a naive double-precision loop and, when
 * the Python given as argv[1] imports torch, against torch.optim.Adam: two
 * groups (the reference generator/discriminator rates, the discriminator
 * stepped every K-th step, with weight decay), 20 steps, 1e-6 relative.
 * Then a least-squares fit whose loss must fall, and argument checks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "lumos.h"
#include "train/adam.h"

enum { NG = 257, ND = 64, STEPS = 20, K = 2 };
#define TOL 1e-6

static uint64_t next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}
static float uniform(uint64_t *s) { return (float)((next(s) >> 40) * (2.0 / 16777216.0) - 1.0); }

/* The formula of adam.h, all in double; bias = 0 drops the bias
 * correction, a mutant the comparison must catch. ps and ms are the sums
 * of the magnitudes of the terms that make p and m (v's are all positive):
 * float cannot do better than rounding relative to those, so where terms
 * cancel, the relative error is taken against them. */
typedef struct ref_group {
    double p[NG], m[NG], v[NG];
    double ps[NG], ms[NG];
    size_t n;
    uint64_t t;
} ref_group;

static void ref_step(ref_group *r, const lumos__adam_hparams *hp, const float *grad, int bias)
{
    r->t++;
    double bc1 = bias ? 1 - pow(hp->beta1, (double)r->t) : 1;
    double bc2 = bias ? 1 - pow(hp->beta2, (double)r->t) : 1;
    for (size_t i = 0; i < r->n; i++) {
        double g = grad[i] + hp->weight_decay * r->p[i];
        r->m[i] = hp->beta1 * r->m[i] + (1 - hp->beta1) * g;
        r->ms[i] = hp->beta1 * r->ms[i] + (1 - hp->beta1) * fabs(g);
        r->v[i] = hp->beta2 * r->v[i] + (1 - hp->beta2) * g * g;
        double u = hp->lr * (r->m[i] / bc1) / (sqrt(r->v[i] / bc2) + hp->eps);
        r->p[i] -= u;
        r->ps[i] += fabs(u);
    }
}

/* Largest |a - b| / max(|b|, scale): relative, scale being the size of
 * the terms b was summed from (NULL: b itself). */
static double max_rel(const float *a, const double *b, const double *scale, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]) / fmax(fabs(b[i]), scale ? scale[i] : 0);
        worst = isnan(d) ? INFINITY : fmax(worst, d);
    }
    return worst;
}

typedef struct fixture {
    float g0[NG], d0[ND];             /* initial params */
    float gg[STEPS][NG], gd[STEPS][ND]; /* the grads of each step */
    lumos__adam_hparams hg, hd;
} fixture;

/* Runs lumos__adam over the fixture; params and moments come back in p/m/v. */
static void run_c(lumos_ctx *ctx, const fixture *fx, float *pg, float *pd, lumos__adam *opt)
{
    static float grad_g[NG], grad_d[ND];
    memcpy(pg, fx->g0, sizeof fx->g0);
    memcpy(pd, fx->d0, sizeof fx->d0);
    lumos__adam_init(opt);
    CHECK(lumos__adam_add_group(ctx, opt, "G", &fx->hg, pg, grad_g, NG) == 0, "%s",
          lumos_last_error(ctx));
    CHECK(lumos__adam_add_group(ctx, opt, "D", &fx->hd, pd, grad_d, ND) == 0, "%s",
          lumos_last_error(ctx));
    CHECK(opt->groups[0].m == NULL && opt->groups[1].m == NULL, "moments before the first step");
    for (int s = 0; s < STEPS; s++) {
        memcpy(grad_g, fx->gg[s], sizeof grad_g);
        memcpy(grad_d, fx->gd[s], sizeof grad_d);
        CHECK(lumos__adam_step(ctx, opt, 0) == 0, "%s", lumos_last_error(ctx));
        if (s % K == K - 1) CHECK(lumos__adam_step(ctx, opt, 1) == 0, "%s", lumos_last_error(ctx));
    }
    CHECK(opt->groups[0].step == STEPS && opt->groups[1].step == STEPS / K,
          "step counts %llu %llu", (unsigned long long)opt->groups[0].step,
          (unsigned long long)opt->groups[1].step);
}

static void run_ref(const fixture *fx, ref_group *rg, ref_group *rd, int bias)
{
    memset(rg, 0, sizeof *rg);
    memset(rd, 0, sizeof *rd);
    rg->n = NG, rd->n = ND;
    for (int i = 0; i < NG; i++) rg->p[i] = rg->ps[i] = fx->g0[i];
    for (int i = 0; i < ND; i++) rd->p[i] = rd->ps[i] = fx->d0[i];
    for (int i = 0; i < NG; i++) rg->ps[i] = fabs(rg->ps[i]);
    for (int i = 0; i < ND; i++) rd->ps[i] = fabs(rd->ps[i]);
    for (int s = 0; s < STEPS; s++) {
        ref_step(rg, &fx->hg, fx->gg[s], bias);
        if (s % K == K - 1) ref_step(rd, &fx->hd, fx->gd[s], bias);
    }
}

/* Worst relative difference of the C run against a double reference. */
static double compare(const lumos__adam *opt, const ref_group *rg, const ref_group *rd,
                      int verbose)
{
    const ref_group *r[2] = {rg, rd};
    static const char *const what[3] = {"params", "m", "v"};
    double worst = 0;
    for (int k = 0; k < 2; k++) {
        const lumos__adam_group *g = &opt->groups[k];
        const float *c[3] = {g->params, g->m, g->v};
        const double *d[3] = {r[k]->p, r[k]->m, r[k]->v};
        const double *sc[3] = {r[k]->ps, r[k]->ms, NULL};
        for (int j = 0; j < 3; j++) {
            double e = max_rel(c[j], d[j], sc[j], g->n);
            if (verbose) printf("  %s.%s: max relative difference %.3g\n", g->name, what[j], e);
            worst = fmax(worst, e);
        }
    }
    return worst;
}

static const char *const torch_script =
    "import struct, sys, torch\n"
    "data = open(sys.argv[1], 'rb').read()\n"
    "ng, nd, steps, k = struct.unpack_from('<4I', data, 0)\n"
    "hp = struct.unpack_from('<10d', data, 16)\n"
    "off = 96\n"
    "def take(n):\n"
    "    global off\n"
    "    t = torch.tensor(struct.unpack_from('<%df' % n, data, off), dtype=torch.float32)\n"
    "    off += 4 * n\n"
    "    return t\n"
    "pg = take(ng).requires_grad_()\n"
    "pd = take(nd).requires_grad_()\n"
    "group = lambda p, h: {'params': [p], 'lr': h[0], 'betas': (h[1], h[2]), 'eps': h[3],\n"
    "                      'weight_decay': h[4]}\n"
    "opt = torch.optim.Adam([group(pg, hp[:5]), group(pd, hp[5:])])\n"
    "for s in range(steps):\n"
    "    pg.grad = take(ng)\n"
    "    gd = take(nd)\n"
    "    pd.grad = gd if s % k == k - 1 else None  # None: the group is skipped\n"
    "    opt.step()\n"
    "with open(sys.argv[2], 'wb') as f:\n"
    "    for p in (pg, pd):\n"
    "        st = opt.state[p]\n"
    "        for t in (p.detach(), st['exp_avg'], st['exp_avg_sq']):\n"
    "            f.write(struct.pack('<%df' % t.numel(), *t.flatten().tolist()))\n";

static void put_u32(FILE *f, uint32_t v) { fwrite(&v, 4, 1, f); } /* x86: little-endian */

/* torch.optim.Adam on the fixture, compared with the C run; 77 = skipped. */
static int check_torch(const char *python, const fixture *fx, const lumos__adam *opt,
                       const ref_group *rg, const ref_group *rd)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import torch' >/dev/null 2>&1", python);
    if (system(cmd) != 0) {
        printf("[SKIP] %s cannot import torch: PyTorch comparison skipped\n", python);
        return 77;
    }
    const char *base = getenv("TMPDIR");
    char dir[512], in[600], out[600];
    snprintf(dir, sizeof dir, "%s/lumos-adam-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp %s", dir);
        return 1;
    }
    snprintf(in, sizeof in, "%s/in.bin", dir);
    snprintf(out, sizeof out, "%s/out.bin", dir);
    FILE *f = fopen(in, "wb");
    CHECK(f != NULL, "cannot write %s", in);
    if (!f) return 1;
    put_u32(f, NG), put_u32(f, ND), put_u32(f, STEPS), put_u32(f, K);
    const lumos__adam_hparams *h[2] = {&fx->hg, &fx->hd};
    for (int k = 0; k < 2; k++) {
        double v[5] = {h[k]->lr, h[k]->beta1, h[k]->beta2, h[k]->eps, h[k]->weight_decay};
        fwrite(v, sizeof v, 1, f);
    }
    fwrite(fx->g0, sizeof fx->g0, 1, f);
    fwrite(fx->d0, sizeof fx->d0, 1, f);
    for (int s = 0; s < STEPS; s++) {
        fwrite(fx->gg[s], sizeof fx->gg[s], 1, f);
        fwrite(fx->gd[s], sizeof fx->gd[s], 1, f);
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' - '%s' '%s'", python, in, out);
    FILE *py = popen(cmd, "w");
    int rc = -1;
    if (py) {
        fputs(torch_script, py);
        rc = pclose(py);
    }
    CHECK(rc == 0, "the torch script failed (%d)", rc);
    size_t size = 0;
    uint8_t *res = rc == 0 ? read_all(out, &size) : NULL;
    CHECK(!rc == !!res && (!res || size == 3 * sizeof(float) * (NG + ND)),
          "torch output: %zu bytes", size);
    if (res && size == 3 * sizeof(float) * (NG + ND)) {
        const float *t = (const float *)res;
        static const char *const what[3] = {"params", "m", "v"};
        const ref_group *r[2] = {rg, rd};
        for (int k = 0; k < 2; k++) {
            const lumos__adam_group *g = &opt->groups[k];
            const float *c[3] = {g->params, g->m, g->v};
            const double *sc[3] = {r[k]->ps, r[k]->ms, NULL};
            for (int j = 0; j < 3; j++, t += g->n) {
                double d[NG];
                for (size_t i = 0; i < g->n; i++) d[i] = t[i];
                double e = max_rel(c[j], d, sc[j], g->n);
                printf("  vs torch %s.%s: max relative difference %.3g\n", g->name, what[j], e);
                CHECK(e <= TOL, "%s.%s differs from torch.optim.Adam by %.3g", g->name, what[j],
                      e);
            }
        }
    }
    free(res);
    unlink(in);
    unlink(out);
    rmdir(dir);
    return 0;
}

/* 0.5 |A x - b|^2 over a random 32x8 system, solvable exactly. */
static void least_squares(lumos_ctx *ctx)
{
    enum { R = 32, C = 8, ITER = 600 };
    uint64_t s = 99;
    float A[R][C], b[R], x[C] = {0}, grad[C], xt[C];
    for (int j = 0; j < C; j++) xt[j] = 2 * uniform(&s);
    for (int i = 0; i < R; i++) {
        b[i] = 0;
        for (int j = 0; j < C; j++) b[i] += (A[i][j] = uniform(&s)) * xt[j];
    }
    lumos__adam opt;
    lumos__adam_init(&opt);
    lumos__adam_hparams hp = lumos__adam_hparams_default(0.05);
    CHECK(lumos__adam_add_group(ctx, &opt, "x", &hp, x, grad, C) == 0, "%s", lumos_last_error(ctx));
    double first = 0, last = 0, prev_block = INFINITY;
    int rises = 0;
    for (int it = 0; it < ITER; it++) {
        double loss = 0;
        memset(grad, 0, sizeof grad);
        for (int i = 0; i < R; i++) {
            double r = -b[i];
            for (int j = 0; j < C; j++) r += A[i][j] * x[j];
            loss += 0.5 * r * r;
            for (int j = 0; j < C; j++) grad[j] += (float)(r * A[i][j]);
        }
        if (it == 0) first = loss;
        last = loss;
        /* Compared every 100 steps (Adam may wobble between), until the fit
         * reaches float's resolution, where the loss is rounding noise. */
        if (it % 100 == 0) {
            printf("  step %d: loss %.4g\n", it, loss);
            if (loss >= prev_block && loss > 1e-9 * first) rises++;
            prev_block = loss;
        }
        CHECK(lumos__adam_step(ctx, &opt, -1) == 0, "%s", lumos_last_error(ctx));
    }
    printf("least squares: loss %.4g -> %.4g after %d steps\n", first, last, ITER);
    CHECK(rises == 0, "the loss rose between %d of the 100-step marks", rises);
    CHECK(last < 1e-3 * first, "loss %.4g -> %.4g: not fitted", first, last);
    lumos__adam_free(&opt);
}

static void bad_arguments(lumos_ctx *ctx)
{
    float p[4] = {0}, g[4] = {0};
    lumos__adam opt;
    lumos__adam_init(&opt);
    lumos__adam_hparams hp = lumos__adam_hparams_default(1e-3);
    CHECK(lumos__adam_add_group(ctx, &opt, "a", &hp, p, g, 4) == 0, "%s", lumos_last_error(ctx));
    CHECK(lumos__adam_add_group(ctx, &opt, "a", &hp, p, g, 4) == LUMOS_E_ARG, "duplicate name");
    CHECK(lumos__adam_add_group(ctx, &opt, "", &hp, p, g, 4) == LUMOS_E_ARG, "empty name");
    CHECK(lumos__adam_add_group(ctx, &opt, "a b", &hp, p, g, 4) == LUMOS_E_ARG, "space in name");
    lumos__adam_hparams bad = hp;
    bad.beta1 = 1.0;
    CHECK(lumos__adam_add_group(ctx, &opt, "b", &bad, p, g, 4) == LUMOS_E_ARG, "beta1 = 1");
    bad = hp;
    bad.lr = NAN;
    CHECK(lumos__adam_add_group(ctx, &opt, "b", &bad, p, g, 4) == LUMOS_E_ARG, "lr NaN");
    CHECK(lumos__adam_add_group(ctx, &opt, "b", &hp, NULL, g, 4) == LUMOS_E_ARG, "no params");
    CHECK(lumos__adam_step(ctx, &opt, 1) == LUMOS_E_ARG, "step of a missing group");
    CHECK(opt.count == 1 && lumos__adam_find(&opt, "a") == 0 && lumos__adam_find(&opt, "b") < 0,
          "%zu groups after the refusals", opt.count);
    lumos__adam_free(&opt);
}

int main(int argc, char **argv)
{
    const char *python = argc > 1 ? argv[1] : "/usr/bin/python3";
    lumos_ctx *ctx = lumos_ctx_new();
    static fixture fx;
    uint64_t s = 2024;
    for (int i = 0; i < NG; i++) fx.g0[i] = uniform(&s);
    for (int i = 0; i < ND; i++) fx.d0[i] = uniform(&s);
    for (int t = 0; t < STEPS; t++) {
        /* Grads of changing scale, so v is not a constant multiple of g^2. */
        float scale = 0.1f + 0.05f * (float)t;
        for (int i = 0; i < NG; i++) fx.gg[t][i] = scale * uniform(&s);
        for (int i = 0; i < ND; i++) fx.gd[t][i] = scale * uniform(&s);
        /* A few grads so small that sqrt(v_hat) is below eps: where eps
         * goes (outside the sqrt, as torch) decides these. */
        for (int i = 0; i < 8; i++) fx.gg[t][i] *= 1e-8f, fx.gd[t][i] *= 1e-8f;
    }
    /* The reference rates: generator 5e-4, discriminator 1e-5, betas (0.5, 0.9). */
    fx.hg = (lumos__adam_hparams){5e-4, 0.5, 0.9, 1e-8, 0.0};
    fx.hd = (lumos__adam_hparams){1e-5, 0.5, 0.9, 1e-8, 0.01};

    static float pg[NG], pd[ND];
    lumos__adam opt;
    run_c(ctx, &fx, pg, pd, &opt);
    static ref_group rg, rd, mg, md;
    run_ref(&fx, &rg, &rd, 1);
    printf("vs the double-precision loop:\n");
    double e = compare(&opt, &rg, &rd, 1);
    CHECK(e <= TOL, "differs from the naive double reference by %.3g", e);
    /* The comparison can fail: without bias correction it must. */
    run_ref(&fx, &mg, &md, 0);
    e = compare(&opt, &mg, &md, 0);
    CHECK(e > 100 * TOL, "a reference without bias correction also matches (%.3g)", e);

    int t = check_torch(python, &fx, &opt, &rg, &rd);
    lumos__adam_free(&opt);
    CHECK(opt.groups == NULL && opt.count == 0, "free leaves the optimizer empty");

    least_squares(ctx);
    bad_arguments(ctx);
    lumos_ctx_free(ctx);
    printf("%s: %d failure(s)%s\n", failures ? "FAILED" : "ok", failures,
           t == 77 ? " (PyTorch part skipped)" : "");
    return failures ? 1 : 0;
}
