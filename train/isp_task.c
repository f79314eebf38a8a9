/* isp_task.c — the learned-ISP training task (train/task.h).
 *
 * Samples. A photo of the train split is cropped (crop × crop, even offset,
 * random flips) and unprocessed into a noisy mosaic with random gains
 * (train/unprocess.h); a RAW file is cropped on its mosaic. The classical
 * render of every mosaic (lumos_isp_classic, tone 0, the unprocessing's
 * exposure, then the smoothstep tone curve the unprocessing inverted: the
 * ISP Brooks et al. invert) is the content target of the unpaired method.
 * The target: paired mode, the photo crop itself (aligned; RAW files have
 * none and are left out); unpaired mode, a crop of another photo, drawn by
 * an independent cursor. Each epoch's order of the files is a shuffle
 * derived from the seed; two random streams (the data's, the targets') and
 * two cursors (the samples', the targets') are the loop's to seed and
 * checkpoint. A sample another rank trains on takes the same draws but is
 * not made: no unprocessing or render, and no file loaded but its target's
 * (when the discriminators need it) or one whose size is not known yet. */
#include "train/task.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "io/weights.h"
#include "pipeline/agnostic.h"
#include "pipeline/learned.h"
#include "stages/learned_isp.h"
#include "stages/train_isp.h"
#include "train/adversarial.h"
#include "train/data.h"
#include "train/files.h"
#include "train/losses.h"
#include "train/unprocess.h"

enum {
    MAX_TERMS = 16,
    PREVIEW_ROWS = 4,
    N_RNG = 2,   /* RNG_DATA, RNG_TARGET */
    N_CURSOR = 2 /* positions of the sample and the target streams */
};
enum { RNG_DATA, RNG_TARGET };

/* ------------------------------------------------------------ the terms */

static int eval_l1(void *state, lumos_ctx *ctx, const lumos__train_sample *s, const float *out,
                   float *value, float *grad)
{
    (void)state;
    if (!s->target || !s->aligned)
        return lumos__fail(ctx, LUMOS_E_ARG, "l1: %s has no aligned target (paired mode only)",
                           s->path);
    *value = (float)lumos__loss_l1(out, s->target, s->width, s->height, grad);
    return LUMOS_OK;
}

static int eval_tv(void *state, lumos_ctx *ctx, const lumos__train_sample *s, const float *out,
                   float *value, float *grad)
{
    (void)state, (void)ctx;
    *value = (float)lumos__loss_tv(out, s->width, s->height, grad);
    return LUMOS_OK;
}

static int eval_mse_classic(void *state, lumos_ctx *ctx, const lumos__train_sample *s,
                            const float *out, float *value, float *grad)
{
    (void)state, (void)ctx;
    *value = (float)lumos__loss_mse(out, s->classic, s->width, s->height, grad);
    return LUMOS_OK;
}

/* The dereflect task's: image gradients against the aligned target. */
static int eval_gradient(void *state, lumos_ctx *ctx, const lumos__train_sample *s,
                         const float *out, float *value, float *grad)
{
    (void)state;
    if (!s->target || !s->aligned)
        return lumos__fail(ctx, LUMOS_E_ARG, "gradient: %s has no aligned target", s->path);
    *value = (float)lumos__loss_gradient_l1(out, s->target, s->width, s->height, grad);
    return LUMOS_OK;
}

/* The dereflect task's: the output T and the reflection it leaves,
 * R = input − T, should not share edges (dL/dT = ∂L/∂T − ∂L/∂R). */
static int eval_exclusion(void *state, lumos_ctx *ctx, const lumos__train_sample *s,
                          const float *out, float *value, float *grad)
{
    (void)state;
    if (!s->input)
        return lumos__fail(ctx, LUMOS_E_ARG, "exclusion: %s has no network input image (a "
                           "reflection-removal term)", s->path);
    const size_t n = (size_t)s->width * s->height * 3;
    float *r = calloc(2 * n, sizeof *r);
    if (!r) return lumos__fail(ctx, LUMOS_E_NOMEM, "exclusion: out of memory");
    float *grad_r = r + n;
    for (size_t k = 0; k < n; k++) r[k] = s->input[k] - out[k];
    double v = lumos__loss_exclusion(out, r, s->width, s->height, grad, grad_r);
    for (size_t k = 0; k < n; k++) grad[k] -= grad_r[k];
    free(r);
    if (isnan(v)) return lumos__fail(ctx, LUMOS_E_NOMEM, "exclusion: out of memory");
    *value = (float)v;
    return LUMOS_OK;
}

static const struct {
    const char *name;
    int aligned;
    int (*eval)(void *, lumos_ctx *, const lumos__train_sample *, const float *, float *, float *);
} builtin_terms[] = {
    {"l1", 1, eval_l1},
    {"tv", 0, eval_tv},
    {"mse-classic", 0, eval_mse_classic},
    {"gradient", 1, eval_gradient},
    {"exclusion", 0, eval_exclusion},
};

int lumos__train_term_builtin(lumos_ctx *ctx, const char *name, float weight,
                              lumos__train_term *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < sizeof builtin_terms / sizeof *builtin_terms; i++)
        if (!strcmp(name, builtin_terms[i].name)) {
            snprintf(out->name, sizeof out->name, "%s", builtin_terms[i].name);
            out->weight = weight;
            out->needs_aligned_target = builtin_terms[i].aligned;
            out->eval = builtin_terms[i].eval;
            return LUMOS_OK;
        }
    return lumos__fail(ctx, LUMOS_E_ARG, "unknown loss term '%s' (known: l1, tv, mse-classic, gradient, "
                       "exclusion)",
                       name);
}

void lumos__train_term_free(lumos__train_term *t)
{
    if (t && t->free) t->free(t->state);
    if (t) memset(t, 0, sizeof *t);
}

const char *lumos__train_default_terms(lumos__train_mode mode)
{
    return mode == LUMOS__TRAIN_PAIRED ? "l1:1,perceptual:1" : "content:1,tv:1,texture:1,colour:1";
}

static int is_gan_term(const char *name)
{
    return !strcmp(name, "content") || !strcmp(name, "texture") || !strcmp(name, "colour") ||
           !strcmp(name, "perceptual");
}

int lumos__train_terms_parse(lumos_ctx *ctx, const char *spec, const lumos__gan_options *gan,
                             lumos__train_term **out, int *n)
{
    *out = NULL;
    *n = 0;
    lumos__train_term *gan_terms = NULL; /* content, texture, colour: made once, on first use */
    int n_gan = 0;
    lumos__train_term *t = calloc(MAX_TERMS, sizeof *t);
    if (!t) return lumos__fail(ctx, LUMOS_E_NOMEM, "out of memory");
    int rc = LUMOS_OK, count = 0;
    const char *p = spec ? spec : "";
    while (rc == LUMOS_OK && *p) {
        size_t len = strcspn(p, ",");
        char item[64], *colon;
        if (len == 0 || len >= sizeof item || count == MAX_TERMS) {
            rc = lumos__fail(ctx, LUMOS_E_ARG, "loss terms '%s': NAME[:WEIGHT],... (at most %d)",
                             spec, MAX_TERMS);
            break;
        }
        memcpy(item, p, len);
        item[len] = 0;
        double w = 1;
        if ((colon = strchr(item, ':'))) {
            char *end;
            *colon = 0;
            w = strtod(colon + 1, &end);
            if (end == colon + 1 || *end || !(w >= 0 && w <= 1e6))
                rc = lumos__fail(ctx, LUMOS_E_ARG, "loss term %s: weight '%s' is not in 0..1e6",
                                 item, colon + 1);
        }
        if (rc == LUMOS_OK && is_gan_term(item)) {
            if (!gan_terms && !gan)
                rc = lumos__fail(ctx, LUMOS_E_ARG, "loss term %s needs the feature network", item);
            if (rc == LUMOS_OK && !gan_terms) rc = lumos__gan_terms(ctx, gan, &gan_terms, &n_gan);
            for (int k = 0; rc == LUMOS_OK && k < n_gan; k++)
                if (gan_terms[k].eval && !strcmp(gan_terms[k].name, item)) {
                    t[count] = gan_terms[k];
                    t[count].weight = (float)w;
                    memset(&gan_terms[k], 0, sizeof gan_terms[k]); /* moved */
                    break;
                } else if (k == n_gan - 1) {
                    rc = lumos__fail(ctx, LUMOS_E_ARG, "loss term %s given twice", item);
                }
        } else if (rc == LUMOS_OK) {
            rc = lumos__train_term_builtin(ctx, item, (float)w, &t[count]);
        }
        if (rc == LUMOS_OK) count++;
        p += len + (p[len] == ',');
    }
    for (int k = 0; k < n_gan; k++) lumos__train_term_free(&gan_terms[k]); /* the unused ones */
    free(gan_terms);
    if (rc == LUMOS_OK && count == 0) rc = lumos__fail(ctx, LUMOS_E_ARG, "no loss terms");
    if (rc != LUMOS_OK) {
        for (int i = 0; i < count; i++) lumos__train_term_free(&t[i]);
        free(t);
        return rc;
    }
    *out = t;
    *n = count;
    return LUMOS_OK;
}

/* -------------------------------------------------------------- weights */

/* PyTorch's default init of every conv weight and its bias; other tensors
 * 0 (others_zero) or an error. */
static int init_weights(lumos_ctx *ctx, const lumos__net_def *net, uint64_t *rng, float *flat,
                        int others_zero)
{
    const lumos__tensor_spec *t;
    size_t at = 0;
    for (size_t i = 0; (t = lumos__net_tensor(net, i)); i++) {
        /* A conv weight [out, in, kh, kw] has fan_in in*kh*kw; its bias
         * takes the fan_in of the weight of the same module. */
        const lumos__tensor_spec *w = t;
        size_t len = strlen(t->name);
        if (t->ndim == 1 && len > 5 && !strcmp(t->name + len - 5, ".bias")) {
            char name[256];
            snprintf(name, sizeof name, "%.*s.weight", (int)(len - 5), t->name);
            ptrdiff_t off = lumos__net_tensor_offset(net, name);
            w = NULL;
            for (size_t k = 0; off >= 0 && (w = lumos__net_tensor(net, k)); k++)
                if (!strcmp(w->name, name)) break;
        }
        size_t n = lumos__tensor_elements(t);
        if ((!w || w->ndim != 4) && others_zero) {
            memset(flat + at, 0, n * sizeof *flat);
            at += n;
            continue;
        }
        if (!w || w->ndim != 4)
            return lumos__fail(ctx, LUMOS_E_UNSUPPORTED, "%s: no init rule for tensor %s",
                               net->name, t->name);
        double bound = 1.0 / sqrt((double)(w->shape[1] * w->shape[2] * w->shape[3]));
        for (size_t k = 0; k < n; k++)
            flat[at + k] = (float)((2 * lumos__rng_uniform(rng) - 1) * bound);
        at += n;
    }
    return at ? LUMOS_OK : lumos__fail(ctx, LUMOS_E_ARG, "%s: no tensors", net->name);
}

int lumos__train_init_weights(lumos_ctx *ctx, const lumos__net_def *net, uint64_t *rng, float *flat)
{
    return init_weights(ctx, net, rng, flat, 0);
}

int lumos__train_init_weights_conv_default(lumos_ctx *ctx, const lumos__net_def *net,
                                           uint64_t *rng, float *flat)
{
    return init_weights(ctx, net, rng, flat, 1);
}

void lumos__train_start_outputs_alive(const lumos__net_def *net, float *flat)
{
    if (strcmp(net->name, "efficient") && strcmp(net->name, "robust")) return;
    const lumos__tensor_spec *t;
    size_t at = 0;
    for (size_t i = 0; (t = lumos__net_tensor(net, i)); i++) {
        const size_t n = lumos__tensor_elements(t);
        if (!strcmp(t->name, "conv3.bias")) /* the layer before the output ReLU */
            for (size_t k = 0; k < n; k++) flat[at + k] = 0.5f;
        at += n;
    }
}

int lumos__train_write_net(lumos_ctx *ctx, const lumos__net_def *net, const float *flat,
                           uint64_t step, const char *const *meta, const char *path)
{
    size_t n = 0, at = 0, n_meta = 0;
    while (lumos__net_tensor(net, n)) n++;
    while (meta && meta[n_meta]) n_meta += 2;
    lumos__weights_entry *e = malloc((n ? n : 1) * sizeof *e);
    const char **all = malloc((n_meta + 7) * sizeof *all);
    if (!e || !all) {
        free(e);
        free(all);
        return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
    }
    for (size_t i = 0; i < n; i++) {
        const lumos__tensor_spec *t = lumos__net_tensor(net, i);
        e[i] = (lumos__weights_entry){t->name, t->ndim, t->shape, flat + at};
        at += lumos__tensor_elements(t);
    }
    char steps[24];
    snprintf(steps, sizeof steps, "%" PRIu64, step);
    size_t k = 0;
    all[k++] = "format", all[k++] = "pt", all[k++] = "lumos_net", all[k++] = net->name;
    for (size_t i = 0; i < n_meta; i++) all[k++] = meta[i];
    all[k++] = "lumos_step", all[k++] = steps;
    all[k] = NULL;
    int rc = lumos__weights_write(ctx, path, e, n, all);
    free(e);
    free(all);
    return rc;
}

int lumos__train_write_weights(lumos_ctx *ctx, const lumos__net_def *net, lumos_net_input input,
                               const float *flat, uint64_t step, const char *path)
{
    const char *meta[] = {"lumos_input", lumos_net_input_name(input), "lumos_exposure", "input",
                          NULL};
    return lumos__train_write_net(ctx, net, flat, step, meta, path);
}

/* ------------------------------------------------------------ the state */

/* One sample: what the terms see (first), and its buffers. */
typedef struct isp_sample {
    lumos__train_sample s;
    float black[4], scale[4];
    int cfa_x, cfa_y;
    uint16_t *mosaic;
    float *classic, *target;
    float *out; /* previews: the network's output */
} isp_sample;

typedef struct isp_task {
    lumos_ctx *ctx; /* the loop's: errors and notices */
    const lumos__train_options *o;
    const lumos__net_def *def; /* o->net's */
    lumos__train_files files;
    lumos__train_stream sample_stream, target_stream;
    isp_sample **previews;
    int n_previews;
    int dead_for[3][4]; /* steps each (colour, 2×2 phase) of the output has been 0 throughout */
} isp_task;

/* ------------------------------------------------------------ the samples */

/* An 8/16-bit RGB image as floats in [0, 1], rows packed; tone_curve: the
 * smoothstep of the classical render (see the top) on top. */
static void image_to_float(const lumos_image *img, float *out, int tone_curve)
{
    const float scale = img->bits == 8 ? 1.f / 255.f : 1.f / 65535.f;
    for (int y = 0; y < img->height; y++) {
        const uint8_t *row = (const uint8_t *)img->data + (size_t)y * img->stride;
        float *o = out + (size_t)y * img->width * 3;
        for (int i = 0; i < img->width * 3; i++) {
            float v = scale * (img->bits == 8 ? row[i] : ((const uint16_t *)(const void *)row)[i]);
            o[i] = tone_curve ? lumos__smoothstep(v) : v;
        }
    }
}

/* The classical render of a packed mosaic (see the top). */
static int classic_render(lumos_ctx *ctx, const uint16_t *mosaic, const lumos_raw_info *info,
                          float exposure_ev, float *out)
{
    lumos_raw *raw = NULL;
    lumos_image img = {0};
    int rc = lumos_raw_from_mosaic(ctx, mosaic, info->width, info->height, (size_t)info->width * 2,
                                   info, &raw);
    if (rc == LUMOS_OK) {
        lumos_isp_options o;
        lumos_isp_options_init(&o);
        o.tone = 0;
        o.bits = 16;
        o.exposure_ev = exposure_ev;
        rc = lumos_isp_classic(ctx, raw, &o, &img);
    }
    if (rc == LUMOS_OK) image_to_float(&img, out, 1);
    lumos_image_free(&img);
    lumos_raw_free(raw);
    return rc;
}

/* The unprocessing of a photo's sample: its gains and noise, drawn from
 * *rng (which advances). */
static void draw_unprocessing(uint64_t *rng, lumos__unprocess_params *p)
{
    lumos__unprocess_params_init(p);
    lumos__unprocess_sample(rng, p);
}

/* The RAW side of a sample from item `it` and crop c into sl: the mosaic
 * (a photo is unprocessed by p, draw_unprocessing's; a RAW file's needs
 * none), its info and levels, its classical render, and for a photo the
 * aligned target (the crop itself) when want_aligned. No randomness: the
 * draws are the caller's. */
static int make_side(lumos_ctx *ctx, const lumos__item *it, const lumos__crop *c,
                     const lumos__unprocess_params *p, int want_aligned, lumos_net_input input,
                     isp_sample *sl)
{
    lumos_raw_info info;
    float exposure_ev = 0;
    int rc;
    if (it->kind == LUMOS__ITEM_PHOTO) {
        lumos_image crop;
        rc = lumos__crop_image(ctx, &it->photo, c, &crop);
        if (rc) return rc;
        rc = lumos__unprocess(ctx, &crop, p, sl->mosaic, &info);
        exposure_ev = log2f(p->rgb_gain);
        if (rc == LUMOS_OK && want_aligned) image_to_float(&crop, sl->target, 0);
        lumos_image_free(&crop);
    } else {
        size_t stride;
        const uint16_t *m = lumos_raw_mosaic(it->raw, &stride);
        rc = lumos__crop_mosaic(ctx, m, stride, lumos_raw_get_info(it->raw), c, sl->mosaic, &info);
    }
    if (rc == LUMOS_OK && input == LUMOS_INPUT_AGNOSTIC) {
        /* what the network will see at inference (pipeline/agnostic.h), in place */
        lumos_raw_info canonical_info;
        rc = lumos__agnostic_mosaic(ctx, sl->mosaic, c->width, c->height, (size_t)c->width * 2,
                                    &info, sl->mosaic, &canonical_info);
        if (rc == LUMOS_OK) info = canonical_info;
    }
    if (rc == LUMOS_OK)
        /* the network gets the exposure the classical render gets (the
         * photo's brightening; 0 EV for a RAW), as lumos_isp_learned does */
        rc = lumos__mosaic_levels(ctx, &info, exposure_ev, sl->black, sl->scale, &sl->cfa_x,
                                  &sl->cfa_y);
    if (rc == LUMOS_OK) rc = classic_render(ctx, sl->mosaic, &info, exposure_ev, sl->classic);
    if (rc) return lumos__train_fail_in(ctx, rc, it->path);
    sl->s.width = c->width;
    sl->s.height = c->height;
    sl->s.mosaic = sl->mosaic;
    sl->s.info = info;
    sl->s.classic = sl->classic;
    sl->s.path = it->path;
    sl->s.target = want_aligned && it->kind == LUMOS__ITEM_PHOTO ? sl->target : NULL;
    sl->s.aligned = sl->s.target != NULL;
    sl->s.target_path = sl->s.aligned ? it->path : NULL;
    return LUMOS_OK;
}

/* The photo crop c of item `it` as floats into out. */
static int crop_to_float(lumos_ctx *ctx, const lumos__item *it, const lumos__crop *c, float *out)
{
    lumos_image img;
    int rc = lumos__crop_image(ctx, &it->photo, c, &img);
    if (rc) return lumos__train_fail_in(ctx, rc, it->path);
    image_to_float(&img, out, 0);
    lumos_image_free(&img);
    return LUMOS_OK;
}

/* Draws one training sample into sl, from the loop's RNGs and cursors.
 * whole 0 (a sample another rank trains on, task.h's draw_other): the same
 * draws, in the same order, but only the view's size and path are made,
 * and its target when with_target; files are loaded only for that target,
 * or when their size is not known yet. */
static int draw_sample(isp_task *t, uint64_t *rng, uint64_t *cursor, int whole, int with_target,
                       isp_sample *sl)
{
    const int crop = t->o->crop, paired = t->o->mode == LUMOS__TRAIN_PAIRED;
    lumos__item it;
    size_t index, target_index;
    lumos__crop c;
    lumos__unprocess_params p;
    int w, h, load = whole || (paired && with_target); /* the aligned target is the photo */
    int rc = lumos__train_stream_next(&t->files, &t->sample_stream, &cursor[0], SIZE_MAX, crop,
                                      load ? &it : NULL, &index, &w, &h);
    if (rc) return rc;
    const char *path = lumos__dataset_name(t->files.ds, LUMOS__SPLIT_TRAIN, index);
    const int photo = lumos__item_kind_of(path) == LUMOS__ITEM_PHOTO; /* as the load's kind */
    rc = lumos__random_crop(t->ctx, &rng[RNG_DATA], w, h, crop, crop, &c);
    if (rc == LUMOS_OK && photo) draw_unprocessing(&rng[RNG_DATA], &p);
    if (rc == LUMOS_OK && whole) {
        rc = make_side(t->ctx, &it, &c, photo ? &p : NULL, paired, t->o->input, sl);
    } else if (rc == LUMOS_OK) { /* another rank's: the view, as make_side leaves it */
        memset(&sl->s, 0, sizeof sl->s);
        sl->s.width = c.width;
        sl->s.height = c.height;
        sl->s.path = path;
        if (paired && with_target && photo) {
            rc = crop_to_float(t->ctx, &it, &c, sl->target);
            sl->s.target = sl->target;
            sl->s.aligned = 1;
            sl->s.target_path = path;
        }
    }
    if (load) lumos__item_free(&it);
    if (rc || paired) return rc;

    /* Unpaired: a crop of another photo, by the independent target cursor. */
    load = whole || with_target;
    rc = lumos__train_stream_next(&t->files, &t->target_stream, &cursor[1], index, crop,
                                  load ? &it : NULL, &target_index, &w, &h);
    if (rc) return rc;
    rc = lumos__random_crop(t->ctx, &rng[RNG_TARGET], w, h, crop, crop, &c);
    if (rc == LUMOS_OK && load) rc = crop_to_float(t->ctx, &it, &c, sl->target);
    if (rc == LUMOS_OK && load) {
        sl->s.target = sl->target;
        sl->s.aligned = 0;
        sl->s.target_path = it.path;
    }
    if (load) lumos__item_free(&it);
    return rc;
}

/* ------------------------------------------------------------ a sample */

static void sample_free(void *sample)
{
    isp_sample *sl = sample;
    if (!sl) return;
    free(sl->mosaic);
    free(sl->classic);
    free(sl->target);
    free(sl->out);
    free(sl);
}

/* with_out: a buffer for the network's output too (previews). */
static isp_sample *sample_alloc(const isp_task *t, int with_out)
{
    const size_t px = (size_t)t->o->crop * (size_t)t->o->crop;
    isp_sample *sl = calloc(1, sizeof *sl);
    if (!sl) return NULL;
    sl->mosaic = malloc(px * sizeof *sl->mosaic);
    sl->classic = malloc(px * 3 * sizeof(float));
    sl->target = malloc(px * 3 * sizeof(float));
    sl->out = with_out ? malloc(px * 3 * sizeof(float)) : NULL;
    if (!sl->mosaic || !sl->classic || !sl->target || (with_out && !sl->out)) {
        sample_free(sl);
        return NULL;
    }
    return sl;
}

static int task_sample_new(void *state, lumos_ctx *ctx, void **sample, lumos__train_sample **view)
{
    isp_sample *sl = sample_alloc(state, 0);
    if (!sl) return lumos__fail(ctx, LUMOS_E_NOMEM, "train: out of memory for the batch");
    *sample = sl;
    *view = &sl->s;
    return LUMOS_OK;
}

static int task_draw(void *state, lumos_ctx *ctx, uint64_t *rng, uint64_t *cursor, void *sample)
{
    (void)ctx; /* the task's own, the loop's */
    return draw_sample(state, rng, cursor, 1, 1, sample);
}

/* Another rank's sample: no unprocessing, no classical render, and only
 * the files its target needs loaded (or those never seen yet). */
static int task_draw_other(void *state, lumos_ctx *ctx, uint64_t *rng, uint64_t *cursor,
                           int with_target, void *sample)
{
    (void)ctx;
    return draw_sample(state, rng, cursor, 0, with_target, sample);
}

/* The network's float output for sl into out (rows packed). */
static int task_forward(void *state, lumos_ctx *ctx, const float *params, void *sample, float *out)
{
    const isp_task *t = state;
    const isp_sample *sl = sample;
    const lumos__train_sample *s = &sl->s;
    void *data = NULL;
    size_t row = 0;
    int rc = lumos__stage_learned(ctx, t->def, params, s->mosaic, s->width, s->height,
                                  (size_t)s->width * 2, sl->cfa_x, sl->cfa_y, sl->black, sl->scale,
                                  32, &data, &row);
    if (rc) return rc;
    const size_t packed = (size_t)s->width * 3 * sizeof(float);
    for (int y = 0; y < s->height; y++)
        memcpy(out + (size_t)y * s->width * 3, (const uint8_t *)data + (size_t)y * row, packed);
    free(data);
    return LUMOS_OK;
}

static int task_backward(void *state, lumos_ctx *ctx, const float *params, void *sample,
                         const float *grad_out, float *grad_params)
{
    const isp_task *t = state;
    const isp_sample *sl = sample;
    const lumos__train_sample *s = &sl->s;
    return lumos__stage_learned_backward(ctx, t->def, params, s->mosaic, s->width, s->height,
                                         (size_t)s->width * 2, sl->cfa_x, sl->cfa_y, sl->black,
                                         sl->scale, grad_out, grad_params);
}

static const char *mode_name(lumos__train_mode m)
{
    return m == LUMOS__TRAIN_PAIRED ? "paired" : "unpaired";
}

/* ---------------------------------------------------------------- previews */

/* Up to PREVIEW_ROWS fixed centre crops of the held-out split (of the train
 * split when it has none that fit), with fixed unprocessing per file. */
static int task_prepare_preview(void *state, lumos_ctx *ctx, const char *path)
{
    (void)ctx, (void)path; /* the task's own context; o->preview */
    isp_task *t = state;
    const int crop = t->o->crop;
    t->previews = calloc(PREVIEW_ROWS, sizeof *t->previews);
    if (!t->previews) return lumos__fail(t->ctx, LUMOS_E_NOMEM, "train: out of memory");
    for (int split = LUMOS__SPLIT_TEST; split >= LUMOS__SPLIT_TRAIN && !t->n_previews; split--) {
        size_t n = lumos__dataset_count(t->files.ds, (lumos__split)split);
        if (split == LUMOS__SPLIT_TRAIN)
            lumos__notice(t->ctx, "%s: none of the %zu held-out files fits the %dx%d crop; "
                          "previewing training files", t->o->preview,
                          lumos__dataset_count(t->files.ds, LUMOS__SPLIT_TEST), crop, crop);
        for (size_t i = 0; i < n && t->n_previews < PREVIEW_ROWS; i++) {
            lumos__item it;
            if (lumos__dataset_load(t->ctx, t->files.ds, (lumos__split)split, i, &it)) {
                if (split == LUMOS__SPLIT_TEST)
                    lumos__notice(t->ctx, "preview: skipped %s: %s",
                                  lumos__dataset_name(t->files.ds, LUMOS__SPLIT_TEST, i),
                                  lumos_last_error(t->ctx));
                continue;
            }
            int w, h;
            lumos__train_item_size(&it, &w, &h);
            int rc = LUMOS_OK;
            if (w >= crop && h >= crop) {
                lumos__crop c = {(w - crop) / 2 & ~1, (h - crop) / 2 & ~1, crop, crop, 0, 0};
                uint64_t rng = t->o->seed ^ lumos__fnv1a64(it.path);
                lumos__unprocess_params p;
                draw_unprocessing(&rng, &p);
                isp_sample *sl = sample_alloc(t, 1);
                rc = sl ? make_side(t->ctx, &it, &c, it.kind == LUMOS__ITEM_PHOTO ? &p : NULL, 1,
                                    t->o->input, sl)
                        : lumos__fail(t->ctx, LUMOS_E_NOMEM, "train: out of memory");
                if (rc == LUMOS_OK) t->previews[t->n_previews++] = sl;
                else sample_free(sl);
            }
            lumos__item_free(&it);
            if (rc == LUMOS_E_NOMEM) return rc;
        }
    }
    return LUMOS_OK;
}

/* Rows of [classical render | network output | target], written atomically. */
static int task_write_preview(void *state, lumos_ctx *ctx, const float *params, const char *path)
{
    (void)ctx, (void)path; /* the task's own context; o->preview */
    isp_task *t = state;
    const float *panels[3 * PREVIEW_ROWS];
    int rc = LUMOS_OK;
    for (int r = 0; r < t->n_previews && rc == LUMOS_OK; r++) {
        isp_sample *sl = t->previews[r];
        rc = task_forward(t, t->ctx, params, sl, sl->out);
        panels[3 * r] = sl->classic, panels[3 * r + 1] = sl->out, panels[3 * r + 2] = sl->s.target;
    }
    return rc ? rc : lumos__train_write_grid(t->ctx, t->o->preview, panels, t->n_previews, 3, t->o->crop);
}

/* An output (colour, 2×2 phase) that is 0 on every pixel of the batch for
 * this many steps running is a dead ReLU: no gradient reaches it again. */
enum { DEAD_STEPS = 50 };

/* Says once, through the notice, when an output has died: the run then
 * keeps a black phase of one colour (a 2×2 pattern and a cast). */
static void task_after_step(void *state, lumos_ctx *ctx, uint64_t step,
                            const lumos__train_sample *const *views, const float *const *outs,
                            int count)
{
    isp_task *t = state;
    static const char *colour[3] = {"red", "green", "blue"};
    for (int c = 0; c < 3; c++)
        for (int phase = 0; phase < 4; phase++) {
            int alive = 0;
            for (int b = 0; b < count && !alive; b++) {
                const lumos__train_sample *s = views[b];
                const float *out = outs[b];
                for (int y = phase >> 1; y < s->height && !alive; y += 2)
                    for (int x = phase & 1; x < s->width && !alive; x += 2)
                        alive = out[((size_t)y * s->width + x) * 3 + c] > 0;
            }
            t->dead_for[c][phase] = alive ? 0 : t->dead_for[c][phase] + 1;
            if (t->dead_for[c][phase] == DEAD_STEPS)
                lumos__notice(ctx, "step %llu: the %s output at phase (%d, %d) has been 0 on "
                              "every pixel for %d steps: a dead ReLU, which no gradient revives",
                              (unsigned long long)step, colour[c], phase & 1, phase >> 1,
                              DEAD_STEPS);
        }
}

/* ---------------------------------------------------------------- the task */

int lumos__train_terms_of_options(lumos_ctx *ctx, const lumos__train_options *o, const char *spec,
                                  lumos__train_term **terms, int *n)
{
    lumos__gan_options gan;
    lumos__gan_options_init(&gan);
    gan.features = o->features;
    gan.content_features = o->content_features;
    gan.seed = o->seed;
    return lumos__train_terms_parse(ctx, spec, &gan, terms, n);
}

static int task_default_terms(void *state, lumos_ctx *ctx, lumos__train_term **terms, int *n)
{
    const lumos__train_options *o = ((const isp_task *)state)->o;
    return lumos__train_terms_of_options(ctx, o, lumos__train_default_terms(o->mode), terms, n);
}

static int task_check_term(void *state, lumos_ctx *ctx, const lumos__train_term *term)
{
    const isp_task *t = state;
    if (!strcmp(term->name, "exclusion"))
        return lumos__fail(ctx, LUMOS_E_ARG, "loss term exclusion is the dereflect task's");
    if (term->needs_aligned_target && t->o->mode != LUMOS__TRAIN_PAIRED)
        return lumos__fail(ctx, LUMOS_E_ARG, "loss term %s needs an aligned target (the paired mode)",
                           term->name);
    return LUMOS_OK;
}

static int task_init_params(void *state, lumos_ctx *ctx, uint64_t *rng, float *params)
{
    const isp_task *t = state;
    int rc = lumos__train_init_weights(ctx, t->def, rng, params);
    if (rc == LUMOS_OK) lumos__train_start_outputs_alive(t->def, params);
    return rc;
}

/* --init: the network's weights, which must be for this run's input. */
static int task_load_params(void *state, lumos_ctx *ctx, const char *path, float *params)
{
    const isp_task *t = state;
    lumos_net *net = NULL;
    int rc = lumos_net_load(ctx, t->def->name, path, &net);
    if (rc) return rc;
    if (lumos_net_get_input(net) != t->o->input) {
        rc = lumos__fail(ctx, LUMOS_E_ARG, "%s: weights for the %s input, this run has the %s input",
                         path, lumos_net_input_name(lumos_net_get_input(net)),
                         lumos_net_input_name(t->o->input));
        lumos_net_free(net);
        return rc;
    }
    size_t count;
    const float *flat = lumos__net_flat(net, &count);
    memcpy(params, flat, count * sizeof *params);
    lumos_net_free(net);
    return LUMOS_OK;
}

static int task_write_params(void *state, lumos_ctx *ctx, const float *params, uint64_t step,
                             const char *path)
{
    const isp_task *t = state;
    return lumos__train_write_weights(ctx, t->def, t->o->input, params, step, path);
}

static void task_meta(void *state, const lumos__train_term *terms, int n_terms, char *buf, size_t n)
{
    const isp_task *t = state;
    const char *content = "none"; /* the content and perceptual terms' network */
    for (int i = 0; i < n_terms; i++)
        if (lumos__gan_content_net(&terms[i])) content = lumos__gan_content_net(&terms[i]);
    snprintf(buf, n, "net=%s\nmode=%s\ninput=%s\ncontent_net=%s\ndata=%zu:%016" PRIx64 "\n",
             t->def->name, mode_name(t->o->mode), lumos_net_input_name(t->o->input), content,
             t->files.n_train, t->files.hash);
}

static int task_check_resume(void *state, lumos_ctx *ctx, const char *path, const char *was,
                             const char *now)
{
    (void)state;
    char is[1024];
    lumos__train_meta_value(now, "content_net", is, sizeof is);
    /* from before the input mode existed: sensor; from before VGG-19: not it */
    int rc = lumos__train_meta_agree(ctx, path, was, now, "net", "the network", "");
    if (rc == LUMOS_OK) rc = lumos__train_meta_agree(ctx, path, was, now, "mode", "the mode", "");
    if (rc == LUMOS_OK)
        rc = lumos__train_meta_agree(ctx, path, was, now, "input", "the input",
                                     lumos_net_input_name(LUMOS_INPUT_SENSOR));
    if (rc == LUMOS_OK)
        rc = lumos__train_meta_agree(ctx, path, was, now, "content_net", "the content network",
                                     strcmp(is, "vgg19") ? is : "mobilenet or none");
    if (rc == LUMOS_OK) lumos__train_note_data_change(ctx, path, was, now);
    return rc;
}

static size_t task_skipped(void *state) { return ((const isp_task *)state)->files.skipped; }

static void task_close(void *state)
{
    isp_task *t = state;
    if (!t) return;
    for (int i = 0; i < t->n_previews; i++) sample_free(t->previews[i]);
    free(t->previews);
    lumos__train_stream_free(&t->sample_stream);
    lumos__train_stream_free(&t->target_stream);
    lumos__train_files_close(&t->files);
    free(t);
}

int lumos__isp_task_open(lumos_ctx *ctx, const lumos__train_options *o, lumos__train_task *task)
{
    memset(task, 0, sizeof *task);
    const lumos__net_def *def = lumos__net_find(o->net);
    if (!def || strcmp(def->task, "isp") || !def->backward)
        return lumos__fail(ctx, LUMOS_E_ARG, "train: '%s' is not a learned ISP with a gradient",
                           o->net ? o->net : "(null)");
    if (o->mode != LUMOS__TRAIN_UNPAIRED && o->mode != LUMOS__TRAIN_PAIRED)
        return lumos__fail(ctx, LUMOS_E_ARG, "train: unknown mode %d", (int)o->mode);
    if (o->n_sources < 1 || !o->sources)
        return lumos__fail(ctx, LUMOS_E_ARG, "train: no training data (sources)");
    isp_task *t = calloc(1, sizeof *t);
    if (!t) return lumos__fail(ctx, LUMOS_E_NOMEM, "train: out of memory");
    t->ctx = ctx;
    t->o = o;
    t->def = def;
    *task = (lumos__train_task){
        .state = t,
        .n_params = lumos__net_weight_count(def),
        .n_rng = N_RNG,
        .n_cursor = N_CURSOR,
        .default_terms = task_default_terms,
        .check_term = task_check_term,
        .init_params = task_init_params,
        .load_params = task_load_params,
        .write_params = task_write_params,
        .sample_new = task_sample_new,
        .sample_free = sample_free,
        .draw = task_draw,
        .draw_other = task_draw_other,
        .forward = task_forward,
        .backward = task_backward,
        .after_step = task_after_step,
        .meta = task_meta,
        .check_resume = task_check_resume,
        .prepare_preview = task_prepare_preview,
        .write_preview = task_write_preview,
        .skipped = task_skipped,
        .close = task_close,
    };
    int rc = lumos__train_files_open(ctx, o->sources, o->n_sources, o->cache_mb, o->seed, &t->files);
    int paired = o->mode == LUMOS__TRAIN_PAIRED;
    if (rc == LUMOS_OK) rc = lumos__train_stream_init(&t->files, &t->sample_stream, 1, paired);
    if (rc == LUMOS_OK) rc = lumos__train_stream_init(&t->files, &t->target_stream, 2, 1);
    if (rc == LUMOS_OK && (!t->sample_stream.n || !t->target_stream.n))
        rc = lumos__fail(ctx, LUMOS_E_ARG,
                         "train: the train split has %zu files, none of them a photo: %s",
                         t->files.n_train, paired ? "paired mode trains on photos"
                                                  : "unpaired mode needs photos as targets");
    if (rc) {
        task_close(t);
        memset(task, 0, sizeof *task);
    }
    return rc;
}

/* ------------------------------------- held-out samples (bench/isp_quality) */

int lumos__train_heldout_make(lumos_ctx *ctx, const lumos__item *it, int size, uint64_t seed,
                              lumos__train_heldout *out)
{
    memset(out, 0, sizeof *out);
    if (it->kind != LUMOS__ITEM_PHOTO)
        return lumos__fail(ctx, LUMOS_E_ARG, "%s: not a photo (a held-out sample needs the "
                           "photo as its ground truth)", it->path);
    const int w = it->photo.width, h = it->photo.height;
    if (size < 2 || size % 2 || size > 1 << 14)
        return lumos__fail(ctx, LUMOS_E_ARG, "held-out crop %d: not an even size", size);
    if (w < size || h < size)
        return lumos__fail(ctx, LUMOS_E_ARG, "%s: %dx%d, smaller than the %dx%d crop", it->path,
                           w, h, size, size);
    const size_t px = (size_t)size * (size_t)size;
    isp_sample sl;
    memset(&sl, 0, sizeof sl);
    sl.mosaic = malloc(px * sizeof *sl.mosaic);
    sl.classic = malloc(px * 3 * sizeof(float));
    sl.target = malloc(px * 3 * sizeof(float));
    int rc = sl.mosaic && sl.classic && sl.target
                 ? LUMOS_OK
                 : lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", it->path);
    /* The preview's crop; the RNG from the photo's name. */
    lumos__crop c = {(w - size) / 2 & ~1, (h - size) / 2 & ~1, size, size, 0, 0};
    char key[1024];
    lumos__split_key(it->path, key, sizeof key);
    uint64_t rng = seed ^ lumos__fnv1a64(key);
    lumos__unprocess_params p;
    draw_unprocessing(&rng, &p);
    if (rc == LUMOS_OK) rc = make_side(ctx, it, &c, &p, 1, LUMOS_INPUT_SENSOR, &sl);
    if (rc) {
        free(sl.mosaic);
        free(sl.classic);
        free(sl.target);
        return rc;
    }
    out->size = size;
    out->mosaic = sl.mosaic;
    out->info = sl.s.info;
    memcpy(out->black, sl.black, sizeof out->black);
    memcpy(out->scale, sl.scale, sizeof out->scale);
    out->cfa_x = sl.cfa_x;
    out->cfa_y = sl.cfa_y;
    out->classic = sl.classic;
    out->truth = sl.target;
    out->rgb_gain = p.rgb_gain;
    out->red_gain = p.red_gain;
    out->blue_gain = p.blue_gain;
    out->shot_noise = p.shot_noise;
    out->read_noise = p.read_noise;
    return LUMOS_OK;
}

void lumos__train_heldout_free(lumos__train_heldout *h)
{
    if (!h) return;
    free(h->mosaic);
    free(h->classic);
    free(h->truth);
    memset(h, 0, sizeof *h);
}
