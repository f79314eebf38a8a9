/* dereflect_task.c — the reflection-removal training task (train/task.h)
 * for a network of the dereflect family (generators/nets/dereflect.h).
 *
 * Samples. Two photos of the train split, drawn by two independent cursors
 * (never the same file), are each cut to a random view (scale, position,
 * left-right flip: lumos__reflect_view_draw) of crop × crop; one is the
 * transmission T, the other the reflection R, mixed by a synthesis model
 * drawn from the standard mixture (train/reflect_synth.h). A pair Zhang's
 * rules reject is made again with the next R (up to MAX_REDRAWS times,
 * then kept). The network sees I and is scored against T; the terms see I
 * too (sample.input), so the exclusion term can take R = I − T̂.
 *
 * The loss is the usual weighted sum of its terms (task.plain_sum): one
 * backward a sample. Held-out pairs (the previews; bench/dereflect_quality)
 * come from the test split only, with draws fixed by each photo's name. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "io/weights.h"
#include "pipeline/learned.h"
#include "stages/dereflect_net.h"
#include "train/adversarial.h"
#include "train/dereflect_task.h"
#include "train/files.h"
#include "train/reflect_synth.h"
#include "train/task.h"
#include "train/unprocess.h" /* lumos__rng_* */

enum {
    N_RNG = 1,    /* the views' and the synthesis' draws */
    N_CURSOR = 2, /* the T and R streams */
    MAX_REDRAWS = 8,
    PREVIEW_ROWS = 4
};

const char *lumos__dereflect_default_terms(void)
{
    return "l1:1,gradient:1,perceptual:0.2,exclusion:0.1";
}

typedef struct dr_sample {
    lumos__train_sample s;
    float *in, *target, *t_view, *r_view;
    float *out; /* previews: the network's output */
} dr_sample;

typedef struct dr_task {
    lumos_ctx *ctx;
    const lumos__train_options *o;
    const lumos__net_def *def;
    lumos__train_files files;
    lumos__train_stream t_stream, r_stream;
    dr_sample **previews;
    int n_previews;
} dr_task;

static void sample_free(void *sample)
{
    dr_sample *sl = sample;
    if (!sl) return;
    free(sl->in);
    free(sl->target);
    free(sl->t_view);
    free(sl->r_view);
    free(sl->out);
    free(sl);
}

static dr_sample *sample_alloc(int crop, int with_out)
{
    const size_t n = (size_t)crop * crop * 3 * sizeof(float);
    dr_sample *sl = calloc(1, sizeof *sl);
    if (!sl) return NULL;
    sl->in = malloc(n);
    sl->target = malloc(n);
    sl->t_view = malloc(n);
    sl->r_view = malloc(n);
    sl->out = with_out ? malloc(n) : NULL;
    if (!sl->in || !sl->target || !sl->t_view || !sl->r_view || (with_out && !sl->out)) {
        sample_free(sl);
        return NULL;
    }
    return sl;
}

/* A random view of a loaded photo into out (crop × crop). */
static int view_of(lumos_ctx *ctx, uint64_t *rng, const lumos__item *it, int crop, float *out)
{
    lumos__reflect_view v;
    int rc = lumos__reflect_view_draw(ctx, rng, it->photo.width, it->photo.height, crop, crop, &v);
    if (rc == LUMOS_OK) rc = lumos__reflect_view_apply(ctx, &it->photo, &v, crop, crop, out);
    return rc ? lumos__train_fail_in(ctx, rc, it->path) : LUMOS_OK;
}

/* The pair's view: what the terms see. */
static void set_view(dr_sample *sl, int crop, const char *t_path, const char *r_path)
{
    memset(&sl->s, 0, sizeof sl->s);
    sl->s.width = sl->s.height = crop;
    sl->s.input = sl->in;
    sl->s.target = sl->target;
    sl->s.aligned = 1;
    sl->s.path = t_path;
    sl->s.target_path = r_path; /* the reflection's photo, for error messages */
}

static int draw_sample(dr_task *t, uint64_t *rng, uint64_t *cursor, dr_sample *sl)
{
    const int crop = t->o->crop;
    lumos__item ti, ri;
    size_t t_index, r_index;
    int w, h;
    int rc = lumos__train_stream_next(&t->files, &t->t_stream, &cursor[0], SIZE_MAX, crop / 2, &ti,
                                      &t_index, &w, &h);
    if (rc) return rc;
    rc = view_of(t->ctx, &rng[0], &ti, crop, sl->t_view);
    const char *t_path = ti.path, *r_path = NULL;
    lumos__item_free(&ti);
    lumos__reflect_params p;
    lumos__reflect_draw(&rng[0], NULL, crop, crop, &p);
    for (int k = 0; rc == LUMOS_OK && k < MAX_REDRAWS; k++) {
        rc = lumos__train_stream_next(&t->files, &t->r_stream, &cursor[1], t_index, crop / 2, &ri,
                                      &r_index, &w, &h);
        if (rc) break;
        r_path = ri.path;
        rc = view_of(t->ctx, &rng[0], &ri, crop, sl->r_view);
        lumos__item_free(&ri);
        if (rc == LUMOS_OK)
            rc = lumos__reflect_apply(t->ctx, &p, crop, crop, sl->t_view, sl->r_view, sl->in,
                                      sl->target, NULL);
        if (rc != LUMOS__REFLECT_REJECTED) break;
        rc = LUMOS_OK; /* the last rejected pair is kept */
    }
    if (rc) return lumos__train_fail_in(t->ctx, rc, t_path);
    set_view(sl, crop, t_path, r_path);
    return LUMOS_OK;
}

/* ------------------------------------------------------ held-out pairs */

int lumos__dereflect_heldout_make(lumos_ctx *ctx, const lumos__dataset *ds, size_t i, int size,
                                  uint64_t seed, float *in, float *target)
{
    const size_t n = lumos__dataset_count(ds, LUMOS__SPLIT_TEST);
    if (n < 2 || i >= n || size < 8 || size > 4096)
        return lumos__fail(ctx, LUMOS_E_ARG, "held-out pair %zu of %zu (size %d): the test split "
                           "needs two photos", i, n, size);
    const size_t px = (size_t)size * size * 3;
    float *t_view = malloc(px * sizeof *t_view), *r_view = malloc(px * sizeof *r_view);
    int rc = t_view && r_view ? LUMOS_OK : lumos__fail(ctx, LUMOS_E_NOMEM, "out of memory");
    lumos__item it;
    char key[1024];
    uint64_t rng = 0;
    if (rc == LUMOS_OK) rc = lumos__dataset_load(ctx, ds, LUMOS__SPLIT_TEST, i, &it);
    if (rc == LUMOS_OK) {
        lumos__split_key(it.path, key, sizeof key);
        rng = seed ^ lumos__fnv1a64(key);
        rc = it.kind == LUMOS__ITEM_PHOTO ? view_of(ctx, &rng, &it, size, t_view)
                                          : lumos__fail(ctx, LUMOS_E_ARG, "%s: not a photo", it.path);
        lumos__item_free(&it);
    }
    lumos__reflect_params p;
    lumos__reflect_draw(&rng, NULL, size, size, &p);
    /* R: the next photos of the test split, in order, until one is kept */
    for (size_t k = 1; rc == LUMOS_OK && k <= MAX_REDRAWS; k++) {
        rc = lumos__dataset_load(ctx, ds, LUMOS__SPLIT_TEST, (i + k) % n, &it);
        if (rc) break;
        rc = it.kind == LUMOS__ITEM_PHOTO ? view_of(ctx, &rng, &it, size, r_view)
                                          : lumos__fail(ctx, LUMOS_E_ARG, "%s: not a photo", it.path);
        lumos__item_free(&it);
        if (rc == LUMOS_OK)
            rc = lumos__reflect_apply(ctx, &p, size, size, t_view, r_view, in, target, NULL);
        if (rc != LUMOS__REFLECT_REJECTED) break;
        rc = LUMOS_OK;
    }
    free(t_view);
    free(r_view);
    return rc;
}

/* ------------------------------------------------------------ the task */

static int task_sample_new(void *state, lumos_ctx *ctx, void **sample, lumos__train_sample **view)
{
    const dr_task *t = state;
    dr_sample *sl = sample_alloc(t->o->crop, 0);
    if (!sl) return lumos__fail(ctx, LUMOS_E_NOMEM, "train: out of memory for the batch");
    *sample = sl;
    *view = &sl->s;
    return LUMOS_OK;
}

static int task_draw(void *state, lumos_ctx *ctx, uint64_t *rng, uint64_t *cursor, void *sample)
{
    (void)ctx; /* the task's own, the loop's */
    return draw_sample(state, rng, cursor, sample);
}

static int task_forward(void *state, lumos_ctx *ctx, const float *params, void *sample, float *out)
{
    const dr_task *t = state;
    const dr_sample *sl = sample;
    return lumos__dereflect_net(ctx, t->def, params, sl->in, sl->s.width, sl->s.height, 0, 0, out);
}

static int task_backward(void *state, lumos_ctx *ctx, const float *params, void *sample,
                         const float *grad_out, float *grad_params)
{
    const dr_task *t = state;
    const dr_sample *sl = sample;
    return lumos__dereflect_net_backward(ctx, t->def, params, sl->in, sl->s.width, sl->s.height,
                                         grad_out, grad_params);
}

static int task_default_terms(void *state, lumos_ctx *ctx, lumos__train_term **terms, int *n)
{
    const lumos__train_options *o = ((const dr_task *)state)->o;
    return lumos__train_terms_of_options(ctx, o, lumos__dereflect_default_terms(), terms, n);
}

static int task_check_term(void *state, lumos_ctx *ctx, const lumos__train_term *term)
{
    (void)state;
    static const char *const unpaired[] = {"content", "texture", "colour", "mse-classic"};
    for (size_t i = 0; i < sizeof unpaired / sizeof *unpaired; i++)
        if (!strcmp(term->name, unpaired[i]))
            return lumos__fail(ctx, LUMOS_E_ARG, "loss term %s is the ISP task's (the dereflect "
                               "task has l1, gradient, perceptual, exclusion, tv)", term->name);
    return LUMOS_OK;
}

/* Truncated normal (±2σ) of σ 0.02: Swin's init of its linear layers and
 * position-bias tables. */
static float trunc_normal(uint64_t *rng)
{
    for (;;) {
        double u1 = lumos__rng_uniform(rng), u2 = lumos__rng_uniform(rng);
        double z = sqrt(-2 * log(u1 > 1e-300 ? u1 : 1e-300)) * cos(6.283185307179586 * u2);
        if (fabs(z) <= 2) return (float)(0.02 * z);
    }
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && !strcmp(s + n - k, tail);
}

/* Fresh parameters: the frozen feature network from --features (a random
 * one of its shape without, for tests: said on the notice), convs by
 * PyTorch's default, linear layers and position biases as Swin inits them
 * (σ 0.02, biases 0), LayerNorms 1 and 0; the layers that make the
 * reflection ("head", "refine.4") start at 0, so training starts from
 * T = I, the input itself. */
static int task_init_params(void *state, lumos_ctx *ctx, uint64_t *rng, float *params)
{
    const dr_task *t = state;
    int rc = lumos__train_init_weights_conv_default(ctx, t->def, rng, params);
    lumos__weights *features = NULL;
    if (rc == LUMOS_OK && t->o->features) rc = lumos__weights_open(ctx, t->o->features, &features);
    else if (rc == LUMOS_OK)
        lumos__notice(ctx, "train: no --features: %s starts with a random MobileNetV2 (tests only)",
                      t->def->name);
    const lumos__tensor_spec *s;
    size_t at = 0;
    for (size_t i = 0; rc == LUMOS_OK && (s = lumos__net_tensor(t->def, i)); i++) {
        const size_t n = lumos__tensor_elements(s);
        float *p = params + at;
        at += n;
        if (!strncmp(s->name, "features.", 9) && !features) {
            /* random convs; batch norms as identities */
            if (s->ndim == 1)
                for (size_t k = 0; k < n; k++)
                    p[k] = ends_with(s->name, ".weight") || ends_with(s->name, ".running_var");
        } else if (!strncmp(s->name, "features.", 9)) {
            const float *data;
            rc = lumos__weights_get(ctx, features, s->name, s->ndim, s->shape, &data);
            if (rc == LUMOS_OK) memcpy(p, data, n * sizeof *p);
        } else if (strstr(s->name, ".norm1.") || strstr(s->name, ".norm2.")) {
            for (size_t k = 0; k < n; k++) p[k] = ends_with(s->name, ".weight") ? 1.f : 0.f;
        } else if (strstr(s->name, "relative_position_bias_table") || s->ndim == 2) {
            for (size_t k = 0; k < n; k++) p[k] = trunc_normal(rng);
        } else if (s->ndim == 1 && (strstr(s->name, ".attn.") || strstr(s->name, ".mlp."))) {
            memset(p, 0, n * sizeof *p); /* a linear layer's bias */
        } else if (!strncmp(s->name, "head.", 5) || !strncmp(s->name, "refine.4.", 9)) {
            memset(p, 0, n * sizeof *p);
        }
    }
    lumos__weights_free(features);
    return rc;
}

static int task_load_params(void *state, lumos_ctx *ctx, const char *path, float *params)
{
    const dr_task *t = state;
    lumos_net *net = NULL;
    int rc = lumos_net_load(ctx, t->def->name, path, &net);
    if (rc) return rc;
    size_t count;
    const float *flat = lumos__net_flat(net, &count);
    memcpy(params, flat, count * sizeof *params);
    lumos_net_free(net);
    return LUMOS_OK;
}

static int task_write_params(void *state, lumos_ctx *ctx, const float *params, uint64_t step,
                             const char *path)
{
    const dr_task *t = state;
    return lumos__train_write_net(ctx, t->def, params, step, NULL, path);
}

static void task_meta(void *state, const lumos__train_term *terms, int n_terms, char *buf, size_t n)
{
    (void)terms, (void)n_terms;
    const dr_task *t = state;
    snprintf(buf, n, "net=%s\ntask=dereflect\ncrop=%d\ndata=%zu:%016" PRIx64 "\n", t->def->name,
             t->o->crop, t->files.n_train, t->files.hash);
}

static int task_check_resume(void *state, lumos_ctx *ctx, const char *path, const char *was,
                             const char *now)
{
    (void)state;
    int rc = lumos__train_meta_agree(ctx, path, was, now, "net", "the network", "");
    if (rc == LUMOS_OK) rc = lumos__train_meta_agree(ctx, path, was, now, "task", "the task", "isp");
    if (rc == LUMOS_OK) rc = lumos__train_meta_agree(ctx, path, was, now, "crop", "the crop", "");
    if (rc == LUMOS_OK) lumos__train_note_data_change(ctx, path, was, now);
    return rc;
}

/* Up to PREVIEW_ROWS held-out pairs (none when the test split has fewer
 * than two photos: said once). */
static int task_prepare_preview(void *state, lumos_ctx *ctx, const char *path)
{
    (void)ctx;
    dr_task *t = state;
    const int crop = t->o->crop;
    const size_t n = lumos__dataset_count(t->files.ds, LUMOS__SPLIT_TEST);
    t->previews = calloc(PREVIEW_ROWS, sizeof *t->previews);
    if (!t->previews) return lumos__fail(t->ctx, LUMOS_E_NOMEM, "train: out of memory");
    for (size_t i = 0; i < n && n >= 2 && t->n_previews < PREVIEW_ROWS; i++) {
        dr_sample *sl = sample_alloc(crop, 1);
        if (!sl) return lumos__fail(t->ctx, LUMOS_E_NOMEM, "train: out of memory");
        int rc = lumos__dereflect_heldout_make(t->ctx, t->files.ds, i, crop, t->o->seed, sl->in,
                                               sl->target);
        if (rc == LUMOS_E_NOMEM) {
            sample_free(sl);
            return rc;
        }
        if (rc) {
            lumos__notice(t->ctx, "preview: skipped a held-out pair: %s", lumos_last_error(t->ctx));
            sample_free(sl);
            continue;
        }
        set_view(sl, crop, lumos__dataset_name(t->files.ds, LUMOS__SPLIT_TEST, i), NULL);
        t->previews[t->n_previews++] = sl;
    }
    if (!t->n_previews)
        lumos__notice(t->ctx, "%s: the test split has no two usable photos: no preview", path);
    return LUMOS_OK;
}

/* Rows of [input | network output | target], written atomically. */
static int task_write_preview(void *state, lumos_ctx *ctx, const float *params, const char *path)
{
    (void)ctx;
    dr_task *t = state;
    const float *panels[3 * PREVIEW_ROWS];
    int rc = LUMOS_OK;
    for (int r = 0; r < t->n_previews && rc == LUMOS_OK; r++) {
        dr_sample *sl = t->previews[r];
        rc = task_forward(t, t->ctx, params, sl, sl->out);
        panels[3 * r] = sl->in, panels[3 * r + 1] = sl->out, panels[3 * r + 2] = sl->target;
    }
    return rc ? rc : lumos__train_write_grid(t->ctx, path, panels, t->n_previews, 3, t->o->crop);
}

static size_t task_skipped(void *state) { return ((const dr_task *)state)->files.skipped; }

static void task_close(void *state)
{
    dr_task *t = state;
    if (!t) return;
    for (int i = 0; i < t->n_previews; i++) sample_free(t->previews[i]);
    free(t->previews);
    lumos__train_stream_free(&t->t_stream);
    lumos__train_stream_free(&t->r_stream);
    lumos__train_files_close(&t->files);
    free(t);
}

int lumos__dereflect_task_open(lumos_ctx *ctx, const lumos__train_options *o,
                               lumos__train_task *task)
{
    memset(task, 0, sizeof *task);
    const lumos__net_def *def = lumos__net_find(o->net);
    if (!def || strcmp(def->task, "dereflect") || !def->backward)
        return lumos__fail(ctx, LUMOS_E_ARG,
                           "train: '%s' is not a reflection-removal network with a gradient",
                           o->net ? o->net : "(null)");
    if (o->crop % 128)
        return lumos__fail(ctx, LUMOS_E_ARG, "train: crop %d: %s needs a multiple of 128", o->crop,
                           def->name);
    if (o->n_sources < 1 || !o->sources)
        return lumos__fail(ctx, LUMOS_E_ARG, "train: no training data (sources)");
    dr_task *t = calloc(1, sizeof *t);
    if (!t) return lumos__fail(ctx, LUMOS_E_NOMEM, "train: out of memory");
    t->ctx = ctx;
    t->o = o;
    t->def = def;
    *task = (lumos__train_task){
        .state = t,
        .n_params = lumos__net_weight_count(def),
        .n_rng = N_RNG,
        .n_cursor = N_CURSOR,
        .plain_sum = 1,
        .default_terms = task_default_terms,
        .check_term = task_check_term,
        .init_params = task_init_params,
        .load_params = task_load_params,
        .write_params = task_write_params,
        .sample_new = task_sample_new,
        .sample_free = sample_free,
        .draw = task_draw,
        .forward = task_forward,
        .backward = task_backward,
        .meta = task_meta,
        .check_resume = task_check_resume,
        .prepare_preview = task_prepare_preview,
        .write_preview = task_write_preview,
        .skipped = task_skipped,
        .close = task_close,
    };
    int rc = lumos__train_files_open(ctx, o->sources, o->n_sources, o->cache_mb, o->seed, &t->files);
    if (rc == LUMOS_OK) rc = lumos__train_stream_init(&t->files, &t->t_stream, 1, 1);
    if (rc == LUMOS_OK) rc = lumos__train_stream_init(&t->files, &t->r_stream, 2, 1);
    if (rc == LUMOS_OK && t->t_stream.n < 2)
        rc = lumos__fail(ctx, LUMOS_E_ARG, "train: the train split has %zu photos; a reflection "
                         "pair needs two", t->t_stream.n);
    if (rc) {
        task_close(t);
        memset(task, 0, sizeof *task);
    }
    return rc;
}
