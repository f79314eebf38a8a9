/* trainer.c — the training loop of the learned ISPs. See trainer.h.
 *
 * Each step runs in three parts. The trainer's thread draws the batch (all
 * the randomness, in one fixed order); worker threads, one context each,
 * run every sample's forward, loss terms and backward passes into that
 * sample's own gradient buffers; the trainer's thread then sums them in
 * sample order and steps Adam. No result depends on which thread did what,
 * so the weights after N steps are the same for any thread count. With two
 * threads or more, the trainer's thread draws the next batch while the
 * workers run (the data do not depend on the weights); checkpoints then
 * hold the RNG and cursor state from before that prefetch. */
#include "train/trainer.h"

#include "train/adversarial.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io/weights.h"
#include "pipeline/context.h"
#include "pipeline/learned.h"
#include "stages/learned_isp.h"
#include "stages/train_isp.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/losses.h"
#include "train/unprocess.h"
#include "pipeline/agnostic.h"

enum {
    MAX_TERMS = 16,
    MAX_BATCH = 1024,
    MAX_WORKERS = 64,
    PREVIEW_ROWS = 4,
    PREVIEW_GAP = 2,
    N_RNG = 2,    /* RNG_DATA, RNG_TARGET */
    N_CURSOR = 2  /* positions of the sample and the target streams */
};
enum { RNG_DATA, RNG_TARGET };

static const double GRAD_NORM_EPS = 1e-12; /* the method's */

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

static const struct {
    const char *name;
    int aligned;
    int (*eval)(void *, lumos_ctx *, const lumos__train_sample *, const float *, float *, float *);
} builtin_terms[] = {
    {"l1", 1, eval_l1},
    {"tv", 0, eval_tv},
    {"mse-classic", 0, eval_mse_classic},
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
    return lumos__fail(ctx, LUMOS_E_ARG, "unknown loss term '%s' (known: l1, tv, mse-classic)",
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

/* ------------------------------------------------------------- options */

size_t lumos__train_default_cache_mb(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return 2048;
    return (size_t)((double)pages * (double)page / 4 / (1 << 20));
}

void lumos__train_options_init(lumos__train_options *o)
{
    memset(o, 0, sizeof *o);
    o->net = LUMOS_ISP_EFFICIENT;
    o->mode = LUMOS__TRAIN_UNPAIRED;
    o->cache_mb = lumos__train_default_cache_mb();
    o->steps = 10000;
    o->batch = 8;
    o->crop = 128;
    o->lr_g = 5e-4;
    o->lr_d = 1e-5;
    o->beta1 = 0.5;
    o->beta2 = 0.9;
    o->d_every = 10;
    o->seed = 1;
    o->preview_every = 500;
    o->checkpoint_every = 500;
    o->report_every = 10;
}

static int check_options(lumos_ctx *ctx, const lumos__train_options *o)
{
    if (o->net < LUMOS_ISP_EFFICIENT || o->net > LUMOS_ISP_RMFA_TINY)
        return lumos__fail(ctx, LUMOS_E_ARG, "train: not a learned ISP (%d)", (int)o->net);
    if (o->mode != LUMOS__TRAIN_UNPAIRED && o->mode != LUMOS__TRAIN_PAIRED)
        return lumos__fail(ctx, LUMOS_E_ARG, "train: unknown mode %d", (int)o->mode);
    if (o->n_sources < 1 || !o->sources)
        return lumos__fail(ctx, LUMOS_E_ARG, "train: no training data (sources)");
    if (o->steps < 1 || o->batch < 1 || o->batch > MAX_BATCH)
        return lumos__fail(ctx, LUMOS_E_ARG, "train: steps %" PRIu64 " (>= 1), batch %d (1..%d)",
                           o->steps, o->batch, MAX_BATCH);
    if (o->crop < 8 || o->crop > 4096 || o->crop % 2)
        return lumos__fail(ctx, LUMOS_E_ARG, "train: crop %d is not an even size in 8..4096",
                           o->crop);
    if (!(o->lr_g_final >= 0 && o->lr_g_final < 1))
        return lumos__fail(ctx, LUMOS_E_ARG, "train: final learning rate %g (in [0, 1))",
                           o->lr_g_final);
    if (!(o->lr_g > 0 && o->lr_g < 1) || !(o->lr_d > 0 && o->lr_d < 1))
        return lumos__fail(ctx, LUMOS_E_ARG, "train: learning rates %g, %g (in (0, 1))", o->lr_g,
                           o->lr_d);
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
        return lumos__fail(ctx, LUMOS_E_ARG, "train: betas %g, %g (in [0, 1))", o->beta1, o->beta2);
    if (o->d_every < 1 || (o->preview && o->preview_every < 1) ||
        (o->checkpoint && o->checkpoint_every < 1) || o->report_every < 1 || o->threads < 0)
        return lumos__fail(ctx, LUMOS_E_ARG,
                           "train: d_every, preview_every, checkpoint_every and report_every "
                           "must be >= 1, threads >= 0");
    if (o->resume && !o->checkpoint)
        return lumos__fail(ctx, LUMOS_E_ARG, "train: resume needs a checkpoint file");
    if (o->n_terms < 0 || o->n_terms > MAX_TERMS || (o->n_terms && !o->terms))
        return lumos__fail(ctx, LUMOS_E_ARG, "train: 1..%d loss terms", MAX_TERMS);
    return LUMOS_OK;
}

/* -------------------------------------------------------------- weights */

int lumos__train_init_weights(lumos_ctx *ctx, lumos_isp_kind kind, uint64_t *rng, float *flat)
{
    const lumos__tensor_spec *t;
    size_t at = 0;
    for (size_t i = 0; (t = lumos__learned_tensor(kind, i)); i++) {
        /* A conv weight [out, in, kh, kw] has fan_in in*kh*kw; its bias
         * takes the fan_in of the weight of the same module. */
        const lumos__tensor_spec *w = t;
        size_t len = strlen(t->name);
        if (t->ndim == 1 && len > 5 && !strcmp(t->name + len - 5, ".bias")) {
            char name[256];
            snprintf(name, sizeof name, "%.*s.weight", (int)(len - 5), t->name);
            ptrdiff_t off = lumos__learned_tensor_offset(kind, name);
            w = NULL;
            for (size_t k = 0; off >= 0 && (w = lumos__learned_tensor(kind, k)); k++)
                if (!strcmp(w->name, name)) break;
        }
        if (!w || w->ndim != 4)
            return lumos__fail(ctx, LUMOS_E_UNSUPPORTED, "%s: no init rule for tensor %s",
                               lumos_isp_name(kind), t->name);
        double bound = 1.0 / sqrt((double)(w->shape[1] * w->shape[2] * w->shape[3]));
        size_t n = lumos__tensor_elements(t);
        for (size_t k = 0; k < n; k++)
            flat[at + k] = (float)((2 * lumos__rng_uniform(rng) - 1) * bound);
        at += n;
    }
    return at ? LUMOS_OK : lumos__fail(ctx, LUMOS_E_ARG, "not a learned ISP: %d", (int)kind);
}

void lumos__train_start_outputs_alive(lumos_isp_kind kind, float *flat)
{
    if (kind != LUMOS_ISP_EFFICIENT && kind != LUMOS_ISP_ROBUST) return;
    const lumos__tensor_spec *t;
    size_t at = 0;
    for (size_t i = 0; (t = lumos__learned_tensor(kind, i)); i++) {
        const size_t n = lumos__tensor_elements(t);
        if (!strcmp(t->name, "conv3.bias")) /* the layer before the output ReLU */
            for (size_t k = 0; k < n; k++) flat[at + k] = 0.5f;
        at += n;
    }
}

int lumos__train_write_weights(lumos_ctx *ctx, lumos_isp_kind kind, lumos_net_input input,
                               const float *flat, uint64_t step, const char *path)
{
    lumos__weights_entry e[64];
    const lumos__tensor_spec *t;
    size_t n = 0, at = 0;
    for (; n < 64 && (t = lumos__learned_tensor(kind, n)); n++) {
        e[n] = (lumos__weights_entry){t->name, t->ndim, t->shape, flat + at};
        at += lumos__tensor_elements(t);
    }
    if (lumos__learned_tensor(kind, n))
        return lumos__fail(ctx, LUMOS_E_UNSUPPORTED, "%s: too many tensors", lumos_isp_name(kind));
    char steps[24];
    snprintf(steps, sizeof steps, "%" PRIu64, step);
    const char *meta[] = {"format", "pt", "lumos_net", lumos_isp_name(kind),
                          "lumos_input", lumos_net_input_name(input), "lumos_exposure", "input",
                          "lumos_step", steps, NULL};
    return lumos__weights_write(ctx, path, e, n, meta);
}

/* ------------------------------------------------------ the data streams */

/* A cursor through a list of the train split's items, visited epoch by
 * epoch, each epoch in its own shuffled order (from the seed, so the order
 * is not part of a checkpoint: only the position is). */
typedef struct stream {
    size_t *items;  /* indices into the train split */
    size_t n;
    uint64_t salt;
    size_t *order;  /* the permutation of `epoch` */
    uint64_t epoch; /* UINT64_MAX: none computed yet */
} stream;

/* One sample's buffers: what the terms see, and what the step computes. */
typedef struct slot {
    lumos__train_sample s;
    float black[4], scale[4];
    int cfa_x, cfa_y;
    uint16_t *mosaic;
    float *classic, *target, *out, *grad_out;
    float *grads;  /* n_terms × n_params: dL_i/dθ of this sample */
    float values[MAX_TERMS];
} slot;

typedef struct trainer {
    lumos_ctx *ctx;
    const lumos__train_options *o;
    lumos__dataset *ds;
    size_t n_train;
    unsigned char *bad;    /* per train item: known unreadable (reported once) */
    size_t skipped;
    stream sample_stream, target_stream;
    uint64_t rng[N_RNG], cursor[N_CURSOR]; /* as drawn so far */
    /* As of the current batch (before a prefetch): what a checkpoint holds. */
    uint64_t drawn_rng[N_RNG], drawn_cursor[N_CURSOR];

    lumos__train_term *terms;
    int n_terms;
    lumos__train_term *owned_terms; /* the default set, when o->terms is NULL */
    int term_group[MAX_TERMS + 1];  /* Adam groups of term i: [term_group[i], term_group[i+1]) */

    size_t n_params;
    float *weights, *grad;
    lumos__adam adam;

    slot *slots;       /* the batch */
    slot *next;        /* the prefetched batch (NULL: no prefetch) */
    slot *slot_pool;   /* both */
    int n_slots;
    slot *previews;
    int n_previews;

    int n_workers;
    lumos_ctx *worker_ctx[MAX_WORKERS];

    uint64_t data_hash;    /* of the train split's names: a resume notes a change */
    FILE *log;
    uint64_t step;
    double elapsed_before; /* training time of the runs before a resume */
    double d_loss[MAX_TERMS];
    int dead_for[3][4]; /* steps each (colour, 2×2 phase) of the output has been 0 throughout */
} trainer;

static void stream_free(stream *s)
{
    free(s->items);
    free(s->order);
    memset(s, 0, sizeof *s);
}

/* The train split's items (its photos only, when photos_only) as a stream. */
static int stream_init(trainer *t, stream *s, uint64_t salt, int photos_only)
{
    memset(s, 0, sizeof *s);
    s->items = malloc((t->n_train ? t->n_train : 1) * sizeof *s->items);
    s->order = malloc((t->n_train ? t->n_train : 1) * sizeof *s->order);
    if (!s->items || !s->order) return lumos__fail(t->ctx, LUMOS_E_NOMEM, "train: out of memory");
    for (size_t i = 0; i < t->n_train; i++) {
        const char *path = lumos__dataset_name(t->ds, LUMOS__SPLIT_TRAIN, i);
        if (!photos_only || lumos__item_kind_of(path) == LUMOS__ITEM_PHOTO) s->items[s->n++] = i;
    }
    s->salt = salt;
    s->epoch = UINT64_MAX;
    return LUMOS_OK;
}

/* The train-split index at stream position pos. */
static size_t stream_at(const trainer *t, stream *s, uint64_t pos)
{
    uint64_t epoch = pos / s->n;
    if (epoch != s->epoch) { /* Fisher-Yates from (seed, stream, epoch) */
        uint64_t r = t->o->seed ^ (s->salt * 0x9E3779B97F4A7C15ull);
        lumos__rng_next(&r);
        r ^= epoch * 0xD1B54A32D192ED03ull;
        for (size_t i = 0; i < s->n; i++) s->order[i] = i;
        for (size_t i = s->n - 1; i > 0; i--) {
            size_t j = (size_t)(lumos__rng_next(&r) % (i + 1)), k = s->order[i];
            s->order[i] = s->order[j];
            s->order[j] = k;
        }
        s->epoch = epoch;
    }
    return s->items[s->order[pos % s->n]];
}

static void mark_bad(trainer *t, size_t i, const char *why)
{
    if (t->bad[i]) return;
    t->bad[i] = 1;
    t->skipped++;
    lumos__notice(t->ctx, "skipped %s: %s", lumos__dataset_name(t->ds, LUMOS__SPLIT_TRAIN, i), why);
}

/* Loads the next readable item of stream s at *pos (which advances past
 * it), other than train item `avoid`. Bad files are reported once, then
 * passed over. Within 2n positions every item comes up at least once. */
static int stream_next(trainer *t, stream *s, uint64_t *pos, size_t avoid, lumos__item *it,
                       size_t *index)
{
    for (size_t tries = 0; s->n && tries < 2 * s->n; tries++) {
        size_t i = stream_at(t, s, (*pos)++);
        if (t->bad[i] || i == avoid) continue;
        int rc = lumos__dataset_load(t->ctx, t->ds, LUMOS__SPLIT_TRAIN, i, it);
        if (rc == LUMOS_E_NOMEM) return rc;
        if (rc == LUMOS_OK) {
            *index = i;
            return LUMOS_OK;
        }
        mark_bad(t, i, lumos_last_error(t->ctx));
    }
    return lumos__fail(t->ctx, LUMOS_E_FORMAT,
                       "train: no readable %s in the train split (%zu candidates, %zu skipped)",
                       avoid == SIZE_MAX ? "file" : "second photo (unpaired mode needs two)", s->n,
                       t->skipped);
}

/* ------------------------------------------------------------ the samples */

/* Fails with rc, the context's error prefixed with the file it concerns
 * (unless it names it already). */
static int fail_in(lumos_ctx *ctx, int rc, const char *path)
{
    char why[1024];
    snprintf(why, sizeof why, "%s", lumos_last_error(ctx));
    return strstr(why, path) ? rc : lumos__fail(ctx, rc, "%s: %s", path, why);
}

/* An 8/16-bit RGB image as floats in [0, 1], rows packed; tone_curve: the
 * smoothstep of trainer.h's classical render on top. */
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

/* The classical render of a packed mosaic (see trainer.h). */
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

/* The RAW side of a sample from item `it` and crop c into sl: the mosaic
 * (a photo is unprocessed with gains and noise drawn from *rng), its info
 * and levels, its classical render, and for a photo the aligned target
 * (the crop itself) when want_aligned. */
static int make_side(lumos_ctx *ctx, const lumos__item *it, const lumos__crop *c, uint64_t *rng,
                     int want_aligned, lumos_net_input input, slot *sl)
{
    lumos_raw_info info;
    float exposure_ev = 0;
    int rc;
    if (it->kind == LUMOS__ITEM_PHOTO) {
        lumos_image crop;
        rc = lumos__crop_image(ctx, &it->photo, c, &crop);
        if (rc) return rc;
        lumos__unprocess_params p;
        lumos__unprocess_params_init(&p);
        lumos__unprocess_sample(rng, &p);
        rc = lumos__unprocess(ctx, &crop, &p, sl->mosaic, &info);
        exposure_ev = log2f(p.rgb_gain);
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
    if (rc) return fail_in(ctx, rc, it->path);
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

static void item_size(const lumos__item *it, int *w, int *h)
{
    if (it->kind == LUMOS__ITEM_PHOTO) {
        *w = it->photo.width;
        *h = it->photo.height;
    } else {
        *w = lumos_raw_get_info(it->raw)->width;
        *h = lumos_raw_get_info(it->raw)->height;
    }
}

/* The next item of stream s at least crop × crop; smaller ones are reported
 * as skipped, like unreadable ones. */
static int next_fitting(trainer *t, stream *s, uint64_t *pos, size_t avoid, lumos__item *it,
                        size_t *index)
{
    const int crop = t->o->crop;
    for (;;) {
        int rc = stream_next(t, s, pos, avoid, it, index);
        if (rc) return rc;
        int w, h;
        item_size(it, &w, &h);
        if (w >= crop && h >= crop) return LUMOS_OK;
        char why[96];
        snprintf(why, sizeof why, "%dx%d, smaller than the %dx%d crop", w, h, crop, crop);
        mark_bad(t, *index, why);
        lumos__item_free(it);
    }
}

/* Draws one training sample into sl, from the trainer's RNGs and cursors. */
static int draw_sample(trainer *t, slot *sl)
{
    const int crop = t->o->crop, paired = t->o->mode == LUMOS__TRAIN_PAIRED;
    lumos__item it;
    size_t index, target_index;
    lumos__crop c;
    int w, h;
    int rc = next_fitting(t, &t->sample_stream, &t->cursor[0], SIZE_MAX, &it, &index);
    if (rc) return rc;
    item_size(&it, &w, &h);
    rc = lumos__random_crop(t->ctx, &t->rng[RNG_DATA], w, h, crop, crop, &c);
    if (rc == LUMOS_OK) rc = make_side(t->ctx, &it, &c, &t->rng[RNG_DATA], paired, t->o->input, sl);
    lumos__item_free(&it);
    if (rc || paired) return rc;

    /* Unpaired: a crop of another photo, by the independent target cursor. */
    rc = next_fitting(t, &t->target_stream, &t->cursor[1], index, &it, &target_index);
    if (rc) return rc;
    lumos_image crop_img;
    rc = lumos__random_crop(t->ctx, &t->rng[RNG_TARGET], it.photo.width, it.photo.height, crop,
                            crop, &c);
    if (rc == LUMOS_OK) rc = lumos__crop_image(t->ctx, &it.photo, &c, &crop_img);
    if (rc == LUMOS_OK) {
        image_to_float(&crop_img, sl->target, 0);
        lumos_image_free(&crop_img);
        sl->s.target = sl->target;
        sl->s.aligned = 0;
        sl->s.target_path = it.path;
    }
    lumos__item_free(&it);
    return rc;
}

static int slot_alloc(trainer *t, slot *sl, int with_grads)
{
    const size_t px = (size_t)t->o->crop * (size_t)t->o->crop;
    memset(sl, 0, sizeof *sl);
    sl->mosaic = malloc(px * sizeof *sl->mosaic);
    sl->classic = malloc(px * 3 * sizeof(float));
    sl->target = malloc(px * 3 * sizeof(float));
    sl->out = malloc(px * 3 * sizeof(float));
    sl->grad_out = with_grads ? malloc(px * 3 * sizeof(float)) : NULL;
    sl->grads = with_grads ? malloc((size_t)t->n_terms * t->n_params * sizeof(float)) : NULL;
    if (!sl->mosaic || !sl->classic || !sl->target || !sl->out ||
        (with_grads && (!sl->grad_out || !sl->grads)))
        return lumos__fail(t->ctx, LUMOS_E_NOMEM, "train: out of memory for the batch");
    return LUMOS_OK;
}

static void slot_free(slot *sl)
{
    free(sl->mosaic);
    free(sl->classic);
    free(sl->target);
    free(sl->out);
    free(sl->grad_out);
    free(sl->grads);
    memset(sl, 0, sizeof *sl);
}

/* ---------------------------------------------------------------- a step */

/* The network's float output for sl into sl->out (rows packed). */
static int forward(const trainer *t, lumos_ctx *ctx, slot *sl)
{
    const lumos__train_sample *s = &sl->s;
    void *data = NULL;
    size_t row = 0;
    int rc = lumos__stage_learned(ctx, t->o->net, t->weights, s->mosaic, s->width, s->height,
                                  (size_t)s->width * 2, sl->cfa_x, sl->cfa_y, sl->black, sl->scale,
                                  32, &data, &row);
    if (rc) return rc;
    const size_t packed = (size_t)s->width * 3 * sizeof(float);
    for (int y = 0; y < s->height; y++)
        memcpy(sl->out + (size_t)y * s->width * 3, (const uint8_t *)data + (size_t)y * row, packed);
    free(data);
    return LUMOS_OK;
}

/* Forward, every term's value and dL_i/d(out), and each term's backward. */
static int run_sample(const trainer *t, lumos_ctx *ctx, slot *sl)
{
    int rc = forward(t, ctx, sl);
    const lumos__train_sample *s = &sl->s;
    for (int i = 0; rc == LUMOS_OK && i < t->n_terms; i++) {
        const lumos__train_term *term = &t->terms[i];
        float *grad = sl->grads + (size_t)i * t->n_params;
        rc = term->eval(term->state, ctx, s, sl->out, &sl->values[i], sl->grad_out);
        if (rc == LUMOS_OK && term->weight == 0) { /* logged, not followed */
            memset(grad, 0, t->n_params * sizeof *grad);
        } else if (rc == LUMOS_OK) {
            rc = lumos__stage_learned_backward(ctx, t->o->net, t->weights, s->mosaic, s->width,
                                               s->height, (size_t)s->width * 2, sl->cfa_x,
                                               sl->cfa_y, sl->black, sl->scale, sl->grad_out, grad);
        }
    }
    return rc ? fail_in(ctx, rc, s->path) : LUMOS_OK;
}

typedef struct work {
    const trainer *t;
    lumos_ctx *ctx;
    int first;
    int rc;
} work;

/* Samples first, first + n_workers, ... of the batch. */
static void *work_main(void *arg)
{
    work *w = arg;
    w->rc = LUMOS_OK;
    for (int b = w->first; b < w->t->o->batch && w->rc == LUMOS_OK; b += w->t->n_workers)
        w->rc = run_sample(w->t, w->ctx, &w->t->slots[b]);
    return NULL;
}

static int draw_batch(trainer *t, slot *batch)
{
    int rc = LUMOS_OK;
    for (int b = 0; b < t->o->batch && rc == LUMOS_OK; b++) rc = draw_sample(t, &batch[b]);
    return rc;
}

/* Runs the batch on the workers. With prefetch, the trainer's thread draws
 * the next batch into t->next meanwhile (and is no worker); without, it
 * takes the first worker's share. */
static int run_batch(trainer *t, int prefetch)
{
    work w[MAX_WORKERS];
    pthread_t th[MAX_WORKERS];
    int started[MAX_WORKERS] = {0};
    for (int k = 0; k < t->n_workers; k++) w[k] = (work){t, t->worker_ctx[k], k, LUMOS_OK};
    for (int k = prefetch ? 0 : 1; k < t->n_workers; k++)
        started[k] = pthread_create(&th[k], NULL, work_main, &w[k]) == 0;
    int rc = prefetch ? draw_batch(t, t->next) : LUMOS_OK;
    for (int k = 0; k < t->n_workers; k++) {
        if (started[k]) pthread_join(th[k], NULL);
        else work_main(&w[k]); /* the first share, or no thread to spare */
    }
    for (int k = 0; k < t->n_workers; k++)
        if (w[k].rc) return lumos__fail(t->ctx, w[k].rc, "%s", lumos_last_error(w[k].ctx));
    return rc;
}

/* The generator's rate for the step after `done` steps (options.lr_g_final). */
static double generator_lr(const lumos__train_options *o, uint64_t done)
{
    if (!(o->lr_g_final > 0)) return o->lr_g;
    const double pi = 3.14159265358979323846, f = (double)done / (double)o->steps;
    return o->lr_g_final + (o->lr_g - o->lr_g_final) * 0.5 * (1 + cos(pi * f));
}

/* g = sum_i w_i g_i / (||g_i|| + eps), g_i the batch mean of term i's
 * gradient; then the generator's Adam step. */
static int generator_step(trainer *t, double *acc, double *value, double *grad_norm)
{
    const size_t np = t->n_params;
    const int batch = t->o->batch;
    double *mean = acc, *total = acc + np;
    memset(total, 0, np * sizeof *total);
    for (int i = 0; i < t->n_terms; i++) {
        double norm2 = 0, v = 0;
        for (size_t k = 0; k < np; k++) {
            double sum = 0;
            for (int b = 0; b < batch; b++) sum += t->slots[b].grads[(size_t)i * np + k];
            mean[k] = sum / batch;
            norm2 += mean[k] * mean[k];
        }
        for (int b = 0; b < batch; b++) v += t->slots[b].values[i];
        value[i] = v / batch;
        grad_norm[i] = sqrt(norm2);
        const double f = t->terms[i].weight / (grad_norm[i] + GRAD_NORM_EPS);
        for (size_t k = 0; k < np; k++) total[k] += f * mean[k];
    }
    for (size_t k = 0; k < np; k++) t->grad[k] = (float)total[k];
    t->adam.groups[0].hp.lr = generator_lr(t->o, t->step);
    return lumos__adam_step(t->ctx, &t->adam, 0);
}

/* An output (colour, 2×2 phase) that is 0 on every pixel of the batch for
 * this many steps running is a dead ReLU: no gradient reaches it again. */
enum { DEAD_STEPS = 50 };

/* Says once, through the notice, when an output has died: the run then
 * keeps a black phase of one colour (a 2×2 pattern and a cast). */
static void watch_outputs(trainer *t)
{
    static const char *colour[3] = {"red", "green", "blue"};
    for (int c = 0; c < 3; c++)
        for (int phase = 0; phase < 4; phase++) {
            int alive = 0;
            for (int b = 0; b < t->o->batch && !alive; b++) {
                const lumos__train_sample *s = &t->slots[b].s;
                const float *out = t->slots[b].out;
                for (int y = phase >> 1; y < s->height && !alive; y += 2)
                    for (int x = phase & 1; x < s->width && !alive; x += 2)
                        alive = out[((size_t)y * s->width + x) * 3 + c] > 0;
            }
            t->dead_for[c][phase] = alive ? 0 : t->dead_for[c][phase] + 1;
            if (t->dead_for[c][phase] == DEAD_STEPS)
                lumos__notice(t->ctx, "step %llu: the %s output at phase (%d, %d) has been 0 on "
                              "every pixel for %d steps: a dead ReLU, which no gradient revives",
                              (unsigned long long)t->step, colour[c], phase & 1, phase >> 1,
                              DEAD_STEPS);
        }
}

/* Every term's discriminator step on this batch, then its groups' Adam step. */
static int discriminator_steps(trainer *t)
{
    const float *fake[MAX_BATCH], *real[MAX_BATCH];
    for (int b = 0; b < t->o->batch; b++) {
        fake[b] = t->slots[b].out;
        real[b] = t->slots[b].s.target;
    }
    for (int i = 0; i < t->n_terms; i++) {
        const lumos__train_term *term = &t->terms[i];
        if (!term->d_step) continue;
        float d_loss = 0;
        int rc = term->d_step(term->state, t->ctx, fake, real, t->o->batch, t->o->crop, t->o->crop,
                              &d_loss);
        for (int g = t->term_group[i]; rc == LUMOS_OK && g < t->term_group[i + 1]; g++)
            rc = lumos__adam_step(t->ctx, &t->adam, g);
        if (rc) return rc;
        t->d_loss[i] = d_loss;
    }
    return LUMOS_OK;
}

/* -------------------------------------------------- checkpoints and meta */

static uint64_t hash_train_split(const trainer *t)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < t->n_train; i++) {
        h ^= lumos__fnv1a64(lumos__dataset_name(t->ds, LUMOS__SPLIT_TRAIN, i));
        h *= 0x100000001b3ull;
    }
    return h;
}

static const char *mode_name(lumos__train_mode m)
{
    return m == LUMOS__TRAIN_PAIRED ? "paired" : "unpaired";
}

/* "name:weight,..." of the terms (names only with weights = 0). */
static void terms_text(const trainer *t, char *buf, size_t n, int weights)
{
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < t->n_terms && at < n; i++) {
        int k = weights ? snprintf(buf + at, n - at, "%s%s:%g", i ? "," : "", t->terms[i].name,
                                   t->terms[i].weight)
                        : snprintf(buf + at, n - at, "%s%s", i ? "," : "", t->terms[i].name);
        at += k > 0 ? (size_t)k : 0;
    }
}

/* The options a resumed run must share, and the run's bookkeeping. */
static void meta_text(const trainer *t, double elapsed, char *buf, size_t n)
{
    char terms[1024];
    terms_text(t, terms, sizeof terms, 1);
    const char *content = "none"; /* the content and perceptual terms' network */
    for (int i = 0; i < t->n_terms; i++)
        if (lumos__gan_content_net(&t->terms[i])) content = lumos__gan_content_net(&t->terms[i]);
    snprintf(buf, n,
             "lumos train 1\nnet=%s\nmode=%s\ninput=%s\ncrop=%d\nbatch=%d\nseed=%" PRIu64
             "\nterms=%s\ncontent_net=%s\ndata=%zu:%016" PRIx64 "\nelapsed=%.3f\n",
             lumos_isp_name(t->o->net), mode_name(t->o->mode), lumos_net_input_name(t->o->input),
             t->o->crop, t->o->batch, t->o->seed, terms, content, t->n_train, t->data_hash, elapsed);
}

/* The value of "key=" in meta into buf ("" if absent). */
static const char *meta_value(const char *meta, const char *key, char *buf, size_t n)
{
    size_t klen = strlen(key);
    buf[0] = 0;
    for (const char *line = meta; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > klen && !strncmp(line, key, klen) && line[klen] == '=') {
            snprintf(buf, n, "%.*s", (int)(len - klen - 1), line + klen + 1);
            break;
        }
        line = end ? end + 1 : NULL;
    }
    return buf;
}

/* "a:1,b:0.1" -> "a,b" */
static void strip_weights(const char *terms, char *out, size_t n)
{
    size_t at = 0;
    for (const char *p = terms; *p && at + 1 < n; p++) {
        if (*p == ':') p += strcspn(p, ",") - 1; /* to the weight's last character */
        else out[at++] = *p;
    }
    out[at] = 0;
}

static int save_checkpoint(trainer *t, double elapsed)
{
    char meta[2048];
    meta_text(t, elapsed, meta, sizeof meta);
    lumos__checkpoint ck = {(uint32_t)t->o->net, t->step, &t->adam, t->drawn_rng, N_RNG,
                            t->drawn_cursor, N_CURSOR, meta};
    return lumos__checkpoint_write(t->ctx, t->o->checkpoint, &ck);
}

/* After a failed read: when the file is a sound checkpoint of another
 * network, say that instead of the kind number. */
static int explain_other_net(trainer *t, int rc)
{
    unsigned char h[LUMOS__CKP_HEADER_SIZE];
    FILE *f = fopen(t->o->checkpoint, "rb");
    size_t got = f ? fread(h, 1, sizeof h, f) : 0;
    if (f) fclose(f);
    if (got != sizeof h || memcmp(h, "LUMOSCKP", 8)) return rc;
    uint32_t crc = 0, kind = 0; /* little-endian at bytes 60 and 12 */
    for (int i = 3; i >= 0; i--) {
        crc = crc << 8 | h[60 + i];
        kind = kind << 8 | h[12 + i];
    }
    if (crc != lumos__crc32(0, h, 60) || kind == (uint32_t)t->o->net ||
        kind < LUMOS_ISP_EFFICIENT || kind > LUMOS_ISP_RMFA_TINY)
        return rc;
    return lumos__fail(t->ctx, LUMOS_E_ARG, "%s: a checkpoint of the %s network, not %s (--net)",
                       t->o->checkpoint, lumos_isp_name((lumos_isp_kind)kind),
                       lumos_isp_name(t->o->net));
}

static int resume(trainer *t)
{
    const char *path = t->o->checkpoint;
    lumos__checkpoint ck = {(uint32_t)t->o->net, 0, &t->adam, t->rng, N_RNG, t->cursor, N_CURSOR,
                            NULL};
    int rc = lumos__checkpoint_read(t->ctx, path, &ck);
    if (rc == LUMOS_E_FORMAT) rc = explain_other_net(t, rc);
    if (rc) return rc;
    char now[2048], was[1024], is[1024];
    meta_text(t, 0, now, sizeof now);
    /* The options that shape the state (and the data order) must agree. */
    static const char *const keys[][2] = {
        {"net", "--net"},     {"mode", "--mode"}, {"input", "--input"},
        {"crop", "--crop"},   {"batch", "--batch"}, {"seed", "--seed"},
        {"content_net", "the content network"}};
    for (size_t k = 0; rc == LUMOS_OK && k < sizeof keys / sizeof *keys; k++) {
        meta_value(ck.meta, keys[k][0], was, sizeof was);
        meta_value(now, keys[k][0], is, sizeof is);
        if (!was[0] && !strcmp(keys[k][0], "input")) /* from before the mode existed */
            snprintf(was, sizeof was, "%s", lumos_net_input_name(LUMOS_INPUT_SENSOR));
        if (!was[0] && !strcmp(keys[k][0], "content_net")) /* from before VGG-19: not it */
            snprintf(was, sizeof was, "%s", strcmp(is, "vgg19") ? is : "mobilenet or none");
        if (strcmp(was, is))
            rc = lumos__fail(t->ctx, LUMOS_E_ARG,
                             "%s: the checkpoint was made with %s %s, this run has %s %s", path,
                             keys[k][1], was[0] ? was : "(none)", keys[k][1], is);
    }
    if (rc == LUMOS_OK) {
        char names[1024];
        terms_text(t, names, sizeof names, 0);
        meta_value(ck.meta, "terms", was, sizeof was);
        /* Names must agree (they are the log's columns and the groups);
         * weights may be changed on purpose. */
        char was_names[1024];
        strip_weights(was, was_names, sizeof was_names);
        meta_value(now, "terms", is, sizeof is);
        if (strcmp(was_names, names))
            rc = lumos__fail(t->ctx, LUMOS_E_ARG,
                             "%s: the checkpoint was made with the loss terms %s, this run has %s",
                             path, was, is);
        else if (strcmp(was, is))
            lumos__notice(t->ctx, "%s: loss weights changed from %s to %s", path, was, is);
    }
    if (rc == LUMOS_OK) {
        meta_value(ck.meta, "data", was, sizeof was);
        meta_value(now, "data", is, sizeof is);
        if (strcmp(was, is))
            lumos__notice(t->ctx, "%s: the train split has changed since the checkpoint (%s, now "
                          "%s: files:hash); the run will not repeat exactly", path, was, is);
        t->elapsed_before = atof(meta_value(ck.meta, "elapsed", was, sizeof was));
        t->step = ck.step;
    }
    free(ck.meta);
    return rc;
}

/* ---------------------------------------------------------------- reports */

static int open_log(trainer *t)
{
    FILE *f = fopen(t->o->log, t->o->resume ? "a" : "w");
    if (!f)
        return lumos__fail_errno(t->ctx, LUMOS_E_IO, errno, "%s: cannot open the log", t->o->log);
    t->log = f;
    if (ftell(f) > 0) return LUMOS_OK; /* appending under the header there */
    fprintf(f, "step,elapsed_s");
    for (int i = 0; i < t->n_terms; i++) {
        fprintf(f, ",%s,%s_gnorm", t->terms[i].name, t->terms[i].name);
        if (t->terms[i].d_step) fprintf(f, ",%s_d_loss", t->terms[i].name);
    }
    fprintf(f, ",lr_g\n");
    return fflush(f) ? lumos__fail_errno(t->ctx, LUMOS_E_IO, errno, "%s", t->o->log) : LUMOS_OK;
}

static int log_row(trainer *t, const lumos__train_report *r)
{
    FILE *f = t->log;
    fprintf(f, "%" PRIu64 ",%.3f", r->step, r->elapsed_s);
    for (int i = 0; i < r->n_terms; i++) {
        fprintf(f, ",%.9g,%.9g", r->value[i], r->grad_norm[i]);
        if (r->terms[i].d_step) fprintf(f, ",%.9g", r->d_loss[i]);
    }
    fprintf(f, ",%g\n", r->lr_g);
    if (fflush(f) || ferror(f))
        return lumos__fail_errno(t->ctx, LUMOS_E_IO, errno, "%s: cannot write the log", t->o->log);
    return LUMOS_OK;
}

static void format_duration(double s, char *buf, size_t n)
{
    long v = s > 0 && s < 1e9 ? lround(s) : 0;
    if (v >= 3600) snprintf(buf, n, "%ldh%02ldm", v / 3600, v / 60 % 60);
    else if (v >= 60) snprintf(buf, n, "%ldm%02lds", v / 60, v % 60);
    else snprintf(buf, n, "%lds", v);
}

/* "step 120/1000  mse-classic 0.0213  tv 0.00121  3.40 it/s  ETA 4m18s" */
static void progress_line(const lumos__train_report *r, int tty)
{
    char eta[32];
    format_duration(r->steps_per_s > 0 ? (double)(r->steps - r->step) / r->steps_per_s : 0, eta,
                    sizeof eta);
    fprintf(stderr, "%sstep %" PRIu64 "/%" PRIu64, tty ? "\r" : "", r->step, r->steps);
    for (int i = 0; i < r->n_terms; i++)
        fprintf(stderr, "  %s %.4g", r->terms[i].name, r->value[i]);
    fprintf(stderr, "  %.2f it/s  ETA %s%s", r->steps_per_s, eta, tty ? "\033[K" : "\n");
    fflush(stderr);
}

/* ---------------------------------------------------------------- previews */

/* Up to PREVIEW_ROWS fixed centre crops of the held-out split (of the train
 * split when it has none that fit), with fixed unprocessing per file. */
static int prepare_previews(trainer *t)
{
    const int crop = t->o->crop;
    t->previews = calloc(PREVIEW_ROWS, sizeof *t->previews);
    if (!t->previews) return lumos__fail(t->ctx, LUMOS_E_NOMEM, "train: out of memory");
    for (int split = LUMOS__SPLIT_TEST; split >= LUMOS__SPLIT_TRAIN && !t->n_previews; split--) {
        size_t n = lumos__dataset_count(t->ds, (lumos__split)split);
        if (split == LUMOS__SPLIT_TRAIN)
            lumos__notice(t->ctx, "%s: none of the %zu held-out files fits the %dx%d crop; "
                          "previewing training files", t->o->preview,
                          lumos__dataset_count(t->ds, LUMOS__SPLIT_TEST), crop, crop);
        for (size_t i = 0; i < n && t->n_previews < PREVIEW_ROWS; i++) {
            lumos__item it;
            if (lumos__dataset_load(t->ctx, t->ds, (lumos__split)split, i, &it)) {
                if (split == LUMOS__SPLIT_TEST)
                    lumos__notice(t->ctx, "preview: skipped %s: %s",
                                  lumos__dataset_name(t->ds, LUMOS__SPLIT_TEST, i),
                                  lumos_last_error(t->ctx));
                continue;
            }
            int w, h;
            item_size(&it, &w, &h);
            slot *sl = &t->previews[t->n_previews];
            int rc = LUMOS_OK;
            if (w >= crop && h >= crop) {
                lumos__crop c = {(w - crop) / 2 & ~1, (h - crop) / 2 & ~1, crop, crop, 0, 0};
                uint64_t rng = t->o->seed ^ lumos__fnv1a64(it.path);
                rc = slot_alloc(t, sl, 0);
                if (rc == LUMOS_OK) rc = make_side(t->ctx, &it, &c, &rng, 1, t->o->input, sl);
                if (rc == LUMOS_OK) t->n_previews++;
                else slot_free(sl);
            }
            lumos__item_free(&it);
            if (rc == LUMOS_E_NOMEM) return rc;
        }
    }
    return LUMOS_OK;
}

static void panel(lumos_image *img, int x0, int y0, const float *src, int w, int h)
{
    for (int y = 0; y < h; y++) {
        uint8_t *o = (uint8_t *)img->data + (size_t)(y0 + y) * img->stride + (size_t)x0 * 3;
        for (int i = 0; i < 3 * w; i++) {
            float v = src ? src[(size_t)y * w * 3 + i] : 0.f;
            o[i] = (uint8_t)lrintf(255.f * fminf(fmaxf(v, 0.f), 1.f));
        }
    }
}

/* Rows of [classical render | network output | target], written atomically. */
static int write_preview(trainer *t)
{
    const int crop = t->o->crop, n = t->n_previews;
    if (!n) return LUMOS_OK;
    lumos_image grid;
    const int width = 3 * crop + 2 * PREVIEW_GAP, height = n * crop + (n - 1) * PREVIEW_GAP;
    if (lumos_image_alloc(&grid, width, height, 3, 8))
        return lumos__fail(t->ctx, LUMOS_E_NOMEM, "%s: out of memory", t->o->preview);
    memset(grid.data, 128, grid.stride * (size_t)grid.height);
    int rc = LUMOS_OK;
    for (int r = 0; r < n && rc == LUMOS_OK; r++) {
        slot *sl = &t->previews[r];
        rc = forward(t, t->ctx, sl);
        const float *panels[3] = {sl->classic, sl->out, sl->s.target};
        for (int p = 0; p < 3 && rc == LUMOS_OK; p++)
            panel(&grid, p * (crop + PREVIEW_GAP), r * (crop + PREVIEW_GAP), panels[p], crop, crop);
    }
    if (rc == LUMOS_OK) {
        lumos_write_options wo;
        lumos_write_options_init(&wo);
        wo.format = LUMOS_FORMAT_PNG;
        wo.overwrite = 1;
        rc = lumos_image_write(t->ctx, &grid, t->o->preview, &wo);
    }
    lumos_image_free(&grid);
    return rc;
}

/* ------------------------------------------------------------ set-up */

static int setup_terms(trainer *t)
{
    const lumos__train_options *o = t->o;
    if (o->n_terms) {
        t->terms = (lumos__train_term *)o->terms; /* read only */
        t->n_terms = o->n_terms;
    } else {
        lumos__gan_options gan;
        lumos__gan_options_init(&gan);
        gan.features = o->features;
        gan.content_features = o->content_features;
        gan.seed = o->seed;
        int rc = lumos__train_terms_parse(t->ctx, lumos__train_default_terms(o->mode), &gan,
                                          &t->owned_terms, &t->n_terms);
        if (rc) return rc;
        t->terms = t->owned_terms;
    }
    for (int i = 0; i < t->n_terms; i++) {
        const lumos__train_term *term = &t->terms[i];
        if (!term->eval || !term->name[0] || !(term->weight >= 0 && isfinite(term->weight)))
            return lumos__fail(t->ctx, LUMOS_E_ARG, "loss term %d (%s): no eval, name or weight",
                               i, term->name);
        for (int k = 0; k < i; k++)
            if (!strcmp(t->terms[k].name, term->name))
                return lumos__fail(t->ctx, LUMOS_E_ARG, "loss term %s given twice", term->name);
        if (term->needs_aligned_target && o->mode != LUMOS__TRAIN_PAIRED)
            return lumos__fail(t->ctx, LUMOS_E_ARG,
                               "loss term %s needs an aligned target: --mode paired", term->name);
    }
    return LUMOS_OK;
}

/* The generator group "G", then each term's own groups (lr_d). */
static int setup_optimizer(trainer *t)
{
    const lumos__train_options *o = t->o;
    lumos__adam_init(&t->adam);
    lumos__adam_hparams g = {o->lr_g, o->beta1, o->beta2, 1e-8, 0}, d = g;
    d.lr = o->lr_d;
    int rc = lumos__adam_add_group(t->ctx, &t->adam, "G", &g, t->weights, t->grad, t->n_params);
    for (int i = 0; i < t->n_terms && rc == LUMOS_OK; i++) {
        t->term_group[i] = (int)t->adam.count;
        for (size_t k = 0; k < t->terms[i].n_groups && rc == LUMOS_OK; k++) {
            const lumos__train_params *p = &t->terms[i].groups[k];
            rc = lumos__adam_add_group(t->ctx, &t->adam, p->name ? p->name : "", &d, p->params,
                                       p->grads, p->n);
        }
    }
    t->term_group[t->n_terms] = (int)t->adam.count;
    return rc;
}

static int setup_weights(trainer *t)
{
    const lumos__train_options *o = t->o;
    t->n_params = lumos__learned_weight_count(o->net);
    t->weights = malloc(t->n_params * sizeof *t->weights);
    t->grad = calloc(t->n_params, sizeof *t->grad);
    if (!t->weights || !t->grad) return lumos__fail(t->ctx, LUMOS_E_NOMEM, "train: out of memory");
    if (!o->init || o->resume) {
        /* Its own stream, so the data draws do not depend on the init. */
        uint64_t r = o->seed ^ 0x696E6974ull; /* "init" */
        lumos__rng_next(&r);
        if (o->init)
            lumos__notice(t->ctx, "%s: not read: resuming from %s", o->init, o->checkpoint);
        int rc = lumos__train_init_weights(t->ctx, o->net, &r, t->weights);
        if (rc == LUMOS_OK) lumos__train_start_outputs_alive(o->net, t->weights);
        return rc;
    }
    lumos_net *net = NULL;
    int rc = lumos_net_load(t->ctx, o->net, o->init, &net);
    if (rc) return rc;
    if (lumos_net_get_input(net) != o->input) {
        rc = lumos__fail(t->ctx, LUMOS_E_ARG, "%s: weights for the %s input, this run has --input %s",
                         o->init, lumos_net_input_name(lumos_net_get_input(net)),
                         lumos_net_input_name(o->input));
        lumos_net_free(net);
        return rc;
    }
    size_t count;
    memcpy(t->weights, lumos__net_flat(net, &count), t->n_params * sizeof *t->weights);
    lumos_net_free(net);
    return LUMOS_OK;
}

static int setup(trainer *t)
{
    const lumos__train_options *o = t->o;
    int rc = lumos__dataset_open(t->ctx, o->sources, o->n_sources, &t->ds);
    if (rc) return rc;
    lumos__dataset_set_cache(t->ds, o->cache_mb << 20);
    t->n_train = lumos__dataset_count(t->ds, LUMOS__SPLIT_TRAIN);
    t->data_hash = hash_train_split(t);
    t->bad = calloc(t->n_train ? t->n_train : 1, 1);
    if (!t->bad) return lumos__fail(t->ctx, LUMOS_E_NOMEM, "train: out of memory");
    int paired = o->mode == LUMOS__TRAIN_PAIRED;
    if ((rc = stream_init(t, &t->sample_stream, 1, paired))) return rc;
    if ((rc = stream_init(t, &t->target_stream, 2, 1))) return rc;
    if (!t->sample_stream.n || !t->target_stream.n)
        return lumos__fail(t->ctx, LUMOS_E_ARG,
                           "train: the train split has %zu files, none of them a photo: %s",
                           t->n_train, paired ? "paired mode trains on photos"
                                              : "unpaired mode needs photos as targets");
    /* The data streams start from the seed; a checkpoint replaces them. */
    uint64_t r = o->seed;
    for (int k = 0; k < N_RNG; k++) t->rng[k] = lumos__rng_next(&r);
    if ((rc = setup_terms(t)) || (rc = setup_weights(t)) || (rc = setup_optimizer(t))) return rc;
    if (o->resume && (rc = resume(t))) return rc;
    if (t->step >= o->steps)
        lumos__notice(t->ctx, "%s: already at step %" PRIu64 " of %" PRIu64 ": nothing to train",
                      o->checkpoint, t->step, o->steps);

    int threads = o->threads ? o->threads : lumos__cpu_count();
    t->n_workers = threads < o->batch ? threads : o->batch;
    if (t->n_workers > MAX_WORKERS) t->n_workers = MAX_WORKERS;
    for (int k = 0; k < t->n_workers; k++) {
        if (!(t->worker_ctx[k] = lumos_ctx_new()))
            return lumos__fail(t->ctx, LUMOS_E_NOMEM, "train: out of memory");
        lumos_ctx_set_threads(t->worker_ctx[k], threads / t->n_workers);
    }
    /* A prefetch is worth a thread when there are two; not with one. */
    int pool = threads > 1 ? 2 * o->batch : o->batch;
    t->slot_pool = calloc((size_t)pool, sizeof *t->slot_pool);
    if (!t->slot_pool) return lumos__fail(t->ctx, LUMOS_E_NOMEM, "train: out of memory");
    t->n_slots = pool;
    t->slots = t->slot_pool;
    t->next = threads > 1 ? t->slot_pool + o->batch : NULL;
    for (int b = 0; b < pool && rc == LUMOS_OK; b++) rc = slot_alloc(t, &t->slot_pool[b], 1);
    if (rc == LUMOS_OK && o->preview) rc = prepare_previews(t);
    if (rc == LUMOS_OK && o->log) rc = open_log(t);
    return rc;
}

static void teardown(trainer *t)
{
    if (t->log) fclose(t->log);
    for (int b = 0; b < t->n_slots; b++) slot_free(&t->slot_pool[b]);
    free(t->slot_pool);
    for (int i = 0; i < t->n_previews; i++) slot_free(&t->previews[i]);
    free(t->previews);
    for (int k = 0; k < t->n_workers; k++) lumos_ctx_free(t->worker_ctx[k]);
    for (int i = 0; t->owned_terms && i < t->n_terms; i++)
        lumos__train_term_free(&t->owned_terms[i]);
    free(t->owned_terms);
    lumos__adam_free(&t->adam);
    free(t->weights);
    free(t->grad);
    stream_free(&t->sample_stream);
    stream_free(&t->target_stream);
    free(t->bad);
    lumos__dataset_free(t->ds);
}

/* ----------------------------------------------------------------- loop */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int lumos__train(lumos_ctx *ctx, const lumos__train_options *o, lumos__train_result *res)
{
    lumos__train_result dummy;
    if (!res) res = &dummy;
    memset(res, 0, sizeof *res);
    if (!o) return lumos__fail(ctx, LUMOS_E_ARG, "lumos__train: no options");
    int rc = check_options(ctx, o);
    if (rc) return rc;
    trainer t = {.ctx = ctx, .o = o};
    rc = setup(&t);
    double *acc = rc == LUMOS_OK ? malloc(2 * t.n_params * sizeof *acc) : NULL;
    if (rc == LUMOS_OK && !acc) rc = lumos__fail(ctx, LUMOS_E_NOMEM, "train: out of memory");
    res->first_step = t.step;

    const int tty = o->progress && isatty(STDERR_FILENO);
    double value[MAX_TERMS] = {0}, grad_norm[MAX_TERMS] = {0};
    lumos__train_report r = {.steps = o->steps, .n_terms = t.n_terms, .terms = t.terms,
                             .value = value, .grad_norm = grad_norm, .d_loss = t.d_loss,
                             .lr_g = o->lr_g};
    const double start = now_s();
    double last_draw = 0;
    uint64_t saved_at = UINT64_MAX, previewed_at = UINT64_MAX;
    memcpy(t.drawn_rng, t.rng, sizeof t.rng);
    memcpy(t.drawn_cursor, t.cursor, sizeof t.cursor);
    if (rc == LUMOS_OK && t.step < o->steps) rc = draw_batch(&t, t.slots);
    while (rc == LUMOS_OK && t.step < o->steps) {
        /* The state a checkpoint of this step holds: the next batch is
         * drawn again on resume. */
        memcpy(t.drawn_rng, t.rng, sizeof t.rng);
        memcpy(t.drawn_cursor, t.cursor, sizeof t.cursor);
        int prefetch = t.next && t.step + 1 < o->steps && !(o->stop && *o->stop);
        rc = run_batch(&t, prefetch);
        if (rc == LUMOS_OK) rc = generator_step(&t, acc, value, grad_norm);
        if (rc) break;
        t.step++;
        watch_outputs(&t);
        if (t.step % (uint64_t)o->d_every == 0 && (rc = discriminator_steps(&t))) break;

        double now = now_s();
        r.step = t.step;
        r.lr_g = t.adam.groups[0].hp.lr;
        r.elapsed_s = t.elapsed_before + (now - start);
        r.steps_per_s = (double)(t.step - res->first_step) / (now - start);
        if (o->on_step) o->on_step(o->user, &r);
        if (t.log && (rc = log_row(&t, &r))) break;
        int last = t.step == o->steps || (o->stop && *o->stop);
        if (o->progress && (tty ? now - last_draw >= 0.25 || last
                                : t.step % (uint64_t)o->report_every == 0 || last)) {
            progress_line(&r, tty);
            last_draw = now;
        }
        if (o->preview && t.step % (uint64_t)o->preview_every == 0) {
            if ((rc = write_preview(&t))) break;
            previewed_at = t.step;
        }
        if (o->checkpoint && t.step % (uint64_t)o->checkpoint_every == 0) {
            if ((rc = save_checkpoint(&t, r.elapsed_s))) break;
            saved_at = t.step;
        }
        if (o->stop && *o->stop) {
            res->interrupted = t.step < o->steps;
            break;
        }
        if (prefetch) {
            slot *drawn = t.next;
            t.next = t.slots;
            t.slots = drawn;
        } else if (t.step < o->steps) {
            rc = draw_batch(&t, t.slots);
        }
    }
    if (tty && t.step > res->first_step) fputc('\n', stderr);
    const double elapsed = t.elapsed_before + (now_s() - start);
    /* The end (or a stop): the state as it is now, once. */
    if (rc == LUMOS_OK && o->preview && previewed_at != t.step) rc = write_preview(&t);
    if (rc == LUMOS_OK && o->checkpoint && saved_at != t.step) rc = save_checkpoint(&t, elapsed);
    if (rc == LUMOS_OK && o->out)
        rc = lumos__train_write_weights(ctx, o->net, o->input, t.weights, t.step, o->out);
    res->step = t.step;
    res->skipped_files = t.skipped;
    res->seconds = now_s() - start;
    res->seconds_per_step =
        t.step > res->first_step ? res->seconds / (double)(t.step - res->first_step) : 0;
    free(acc);
    teardown(&t);
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
    slot sl;
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
    /* make_side's first draw is lumos__unprocess_sample on fresh params:
     * the same draw on a copy of the state tells what it drew. */
    uint64_t peek = rng;
    lumos__unprocess_params p;
    lumos__unprocess_params_init(&p);
    lumos__unprocess_sample(&peek, &p);
    if (rc == LUMOS_OK) rc = make_side(ctx, it, &c, &rng, 1, LUMOS_INPUT_SENSOR, &sl);
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
