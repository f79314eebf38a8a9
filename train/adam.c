/* adam.c — Adam as torch.optim.Adam (single-tensor path): see adam.h. */
#include "train/adam.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"

lumos__adam_hparams lumos__adam_hparams_default(double lr)
{
    lumos__adam_hparams hp = {lr, 0.9, 0.999, 1e-8, 0.0};
    return hp;
}

void lumos__adam_init(lumos__adam *opt)
{
    if (opt) memset(opt, 0, sizeof *opt);
}

static int valid_name(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > LUMOS__ADAM_NAME_MAX) return 0;
    for (; *s; s++)
        if (*s <= ' ' || *s > '~') return 0;
    return 1;
}

int lumos__adam_add_group(lumos_ctx *ctx, lumos__adam *opt, const char *name,
                          const lumos__adam_hparams *hp, float *params, float *grads, size_t n)
{
    if (!opt || !hp || !name)
        return lumos__fail(ctx, LUMOS_E_ARG, "lumos__adam_add_group: missing argument");
    if (!valid_name(name))
        return lumos__fail(ctx, LUMOS_E_ARG,
                           "Adam group \"%.60s\": a name is 1..%d printable characters, no spaces",
                           name, LUMOS__ADAM_NAME_MAX);
    if (lumos__adam_find(opt, name) >= 0)
        return lumos__fail(ctx, LUMOS_E_ARG, "Adam group \"%s\" exists already", name);
    if (n > 0 && (!params || !grads))
        return lumos__fail(ctx, LUMOS_E_ARG, "Adam group \"%s\": no params or grads", name);
    /* The negated comparisons also reject NaN. */
    if (!(hp->lr >= 0 && isfinite(hp->lr)) || !(hp->beta1 >= 0 && hp->beta1 < 1) ||
        !(hp->beta2 >= 0 && hp->beta2 < 1) || !(hp->eps >= 0 && isfinite(hp->eps)) ||
        !(hp->weight_decay >= 0 && isfinite(hp->weight_decay)))
        return lumos__fail(ctx, LUMOS_E_ARG,
                           "Adam group \"%s\": lr %g, betas (%g, %g), eps %g, weight decay %g "
                           "(lr, eps, decay >= 0; betas in [0, 1))",
                           name, hp->lr, hp->beta1, hp->beta2, hp->eps, hp->weight_decay);
    lumos__adam_group *g = realloc(opt->groups, (opt->count + 1) * sizeof *g);
    if (!g) return lumos__fail(ctx, LUMOS_E_NOMEM, "Adam group \"%s\": out of memory", name);
    opt->groups = g;
    g += opt->count++;
    memset(g, 0, sizeof *g);
    strcpy(g->name, name);
    g->hp = *hp;
    g->params = params;
    g->grads = grads;
    g->n = n;
    return LUMOS_OK;
}

int lumos__adam_find(const lumos__adam *opt, const char *name)
{
    for (size_t i = 0; opt && name && i < opt->count; i++)
        if (!strcmp(opt->groups[i].name, name)) return (int)i;
    return -1;
}

int lumos__adam_alloc_state(lumos_ctx *ctx, lumos__adam_group *g)
{
    if (g->m) return LUMOS_OK;
    if (g->n > SIZE_MAX / (2 * sizeof(float)))
        return lumos__fail(ctx, LUMOS_E_NOMEM, "Adam group \"%s\": %zu parameters", g->name, g->n);
    /* calloc: the moments start at zero; +1 so n = 0 still marks "allocated". */
    g->m = calloc(2 * g->n + 1, sizeof(float));
    if (!g->m)
        return lumos__fail(ctx, LUMOS_E_NOMEM, "Adam group \"%s\": out of memory for %zu moments",
                           g->name, 2 * g->n);
    g->v = g->m + g->n;
    return LUMOS_OK;
}

static void step_group(lumos__adam_group *g)
{
    g->step++;
    const double t = (double)g->step;
    /* Rounded to float where torch hands a Python float to a float kernel. */
    const float b1 = (float)g->hp.beta1, one_b1 = (float)(1.0 - g->hp.beta1);
    const float b2 = (float)g->hp.beta2, one_b2 = (float)(1.0 - g->hp.beta2);
    const float wd = (float)g->hp.weight_decay, eps = (float)g->hp.eps;
    const float step_size = (float)(g->hp.lr / (1.0 - pow(g->hp.beta1, t)));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(g->hp.beta2, t));
    float *restrict p = g->params, *restrict m = g->m, *restrict v = g->v;
    const float *restrict gr = g->grads;
    for (size_t i = 0; i < g->n; i++) {
        float gi = gr[i];
        if (wd != 0) gi += wd * p[i];
        m[i] = m[i] * b1 + one_b1 * gi;
        v[i] = v[i] * b2 + one_b2 * gi * gi;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] += -step_size * m[i] / denom;
    }
}

int lumos__adam_step(lumos_ctx *ctx, lumos__adam *opt, int group)
{
    if (!opt) return lumos__fail(ctx, LUMOS_E_ARG, "lumos__adam_step: no optimizer");
    if (group >= 0 && (size_t)group >= opt->count)
        return lumos__fail(ctx, LUMOS_E_ARG, "lumos__adam_step: no group %d (of %zu)", group,
                           opt->count);
    size_t first = group < 0 ? 0 : (size_t)group;
    size_t end = group < 0 ? opt->count : first + 1;
    /* Allocate every moment first, so a failure leaves no group stepped. */
    for (size_t i = first; i < end; i++) {
        int st = lumos__adam_alloc_state(ctx, &opt->groups[i]);
        if (st) return st;
    }
    for (size_t i = first; i < end; i++) step_group(&opt->groups[i]);
    return LUMOS_OK;
}

void lumos__adam_free(lumos__adam *opt)
{
    if (!opt) return;
    for (size_t i = 0; i < opt->count; i++) free(opt->groups[i].m);
    free(opt->groups);
    memset(opt, 0, sizeof *opt);
}
