/* adversarial.c — content, texture, colour and perceptual terms (see
 * adversarial.h). */
#include "train/adversarial.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/learned.h"
#include "core/context.h"
#include "stages/train_losses.h"
#include "train/unprocess.h"

enum { D_EARLY, D_DEEP, D_COLOUR, N_DISC };
enum { MAX_SIDE_BY_SIDE = 8 }; /* discriminator pairs run at once (terms_d_step) */
enum { TERM_CONTENT, TERM_TEXTURE, TERM_COLOUR, TERM_PERCEPTUAL, N_TERMS };

static const int disc_net[N_DISC] = {LUMOS__NET_DISC_TEXTURE_EARLY, LUMOS__NET_DISC_TEXTURE_DEEP,
                                     LUMOS__NET_DISC_COLOUR};
static const char *const disc_name[N_DISC] = {"D_texture_early", "D_texture_deep", "D_colour"};

/* The feature maps a discriminator term scored in the generator's step,
 * of the real and the fake images, kept for the discriminators' step that
 * follows on the same batch, which would compute them again otherwise. An
 * entry is found by the image's address and checked by a hash of its
 * pixels, so a buffer refilled since is never taken for its old content. */
enum { MAP_CACHE = 64 };
typedef struct map_entry {
    const float *image;
    uint64_t hash;
    int colour;
    float *maps[2];
} map_entry;

/* What the terms share: the frozen feature networks and the
 * discriminators (weights, and the gradients their d_steps fill). */
typedef struct shared {
    int refs;
    float *features;
    float *content_vgg; /* content and perceptual's VGG-19; NULL: features */
    float *d[N_DISC], *grad[N_DISC];
    size_t n[N_DISC];
    lumos__train_params groups[N_DISC];
    float gamma;
    lumos_ctx *side_ctx[MAX_SIDE_BY_SIDE]; /* the D steps' contexts (made on first use) */
    pthread_mutex_t cache_lock; /* the G step's workers put entries at once */
    map_entry cache[MAP_CACHE];
    unsigned cache_next;
} shared;

typedef struct term_state {
    shared *sh;
    int which;
} term_state;

void lumos__gan_options_init(lumos__gan_options *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->gamma = 10.f;
}

static size_t count_of(int net) { return lumos__net_weight_count(lumos__loss_net(net)); }

static void shared_free(shared *sh)
{
    if (!sh || --sh->refs > 0) return;
    free(sh->features);
    free(sh->content_vgg);
    for (int i = 0; i < MAX_SIDE_BY_SIDE; i++) lumos_ctx_free(sh->side_ctx[i]);
    for (int i = 0; i < MAP_CACHE; i++) {
        free(sh->cache[i].maps[0]);
        free(sh->cache[i].maps[1]);
    }
    pthread_mutex_destroy(&sh->cache_lock);
    for (int k = 0; k < N_DISC; k++) {
        free(sh->d[k]);
        free(sh->grad[k]);
    }
    free(sh);
}

/* A random MobileNetV2 of the real one's shape (tests): He-uniform convs,
 * identity batch norms. */
static void random_features(float *flat, uint64_t *rng)
{
    const lumos__tensor_spec *t;
    size_t at = 0;
    for (size_t i = 0; (t = lumos__net_tensor(lumos__loss_net(LUMOS__NET_MOBILENET), i)); i++) {
        size_t n = lumos__tensor_elements(t), len = strlen(t->name);
        double bound = t->ndim == 4 ? sqrt(6.0 / (double)(t->shape[1] * t->shape[2] * t->shape[3])) : 0;
        int ones = t->ndim == 1 && (strstr(t->name + len - 7, ".weight") || strstr(t->name, "running_var"));
        for (size_t k = 0; k < n; k++)
            flat[at + k] = t->ndim == 4 ? (float)((2 * lumos__rng_uniform(rng) - 1) * bound) : ones ? 1.f : 0.f;
        at += n;
    }
}

/* The content terms' VGG-19; a file of another network is refused as such
 * (the loader names the file and the first tensor that does not fit). */
static int load_content_vgg(lumos_ctx *ctx, const char *path, shared *sh)
{
    const lumos__net_def *vgg = lumos__loss_net(LUMOS__NET_VGG19);
    sh->content_vgg = malloc(count_of(LUMOS__NET_VGG19) * sizeof(float));
    if (!sh->content_vgg) return lumos__fail(ctx, LUMOS_E_NOMEM, "training terms: out of memory");
    int rc = lumos__flat_from_safetensors(ctx, vgg, path, 0, sh->content_vgg, NULL, NULL);
    if (rc == LUMOS_E_FORMAT) {
        char why[512];
        snprintf(why, sizeof why, "%s", lumos_last_error(ctx));
        rc = lumos__fail(ctx, rc, "%s is not a VGG-19 in torchvision's layout "
                         "(vgg19().state_dict() saved with safetensors): %s", path, why);
    }
    return rc;
}

static int terms_eval(void *state, lumos_ctx *ctx, const lumos__train_sample *s, const float *out,
                      float *value, float *grad_out);
static int terms_d_step(void *state, lumos_ctx *ctx, const float *const *fake,
                        const float *const *real, int count, int width, int height, float *d_loss);
static void term_free(void *state)
{
    term_state *ts = state;
    shared_free(ts->sh);
    free(ts);
}

int lumos__gan_terms(lumos_ctx *ctx, const lumos__gan_options *o, lumos__train_term **out, int *n)
{
    *out = NULL;
    *n = 0;
    shared *sh = calloc(1, sizeof *sh);
    lumos__train_term *terms = calloc(N_TERMS, sizeof *terms);
    if (!sh || !terms) goto nomem;
    pthread_mutex_init(&sh->cache_lock, NULL);
    sh->gamma = o->gamma;
    sh->features = malloc(count_of(LUMOS__NET_MOBILENET) * sizeof(float));
    if (!sh->features) goto nomem;
    uint64_t rng = o->seed ^ 0x67616e2d696e6974ull; /* "gan-init": apart from the generator's */
    int rc = LUMOS_OK;
    if (o->features)
        rc = lumos__flat_from_safetensors(ctx, lumos__loss_net(LUMOS__NET_MOBILENET), o->features, 0,
                                          sh->features, NULL, NULL);
    else random_features(sh->features, &rng);
    if (rc == LUMOS_OK && o->content_features) rc = load_content_vgg(ctx, o->content_features, sh);
    for (int k = 0; rc == LUMOS_OK && k < N_DISC; k++) {
        sh->n[k] = count_of(disc_net[k]);
        sh->d[k] = malloc(sh->n[k] * sizeof(float));
        sh->grad[k] = calloc(sh->n[k], sizeof(float));
        if (!sh->d[k] || !sh->grad[k]) goto nomem;
        rc = lumos__train_init_weights(ctx, lumos__loss_net(disc_net[k]), &rng, sh->d[k]);
        sh->groups[k] = (lumos__train_params){disc_name[k], sh->d[k], sh->grad[k], sh->n[k]};
    }
    if (rc) {
        sh->refs = 1;
        shared_free(sh);
        free(terms);
        return rc;
    }
    static const char *const names[N_TERMS] = {"content", "texture", "colour", "perceptual"};
    for (int i = 0; i < N_TERMS; i++) {
        term_state *ts = malloc(sizeof *ts);
        if (!ts) {
            for (int k = 0; k < i; k++) lumos__train_term_free(&terms[k]);
            free(terms);
            if (sh->refs == 0) {
                sh->refs = 1;
                shared_free(sh);
            }
            return lumos__fail(ctx, LUMOS_E_NOMEM, "training terms: out of memory");
        }
        *ts = (term_state){sh, i};
        sh->refs++;
        lumos__train_term *t = &terms[i];
        snprintf(t->name, sizeof t->name, "%s", names[i]);
        t->weight = 1.f;
        t->state = ts;
        t->eval = terms_eval;
        t->free = term_free;
        t->needs_aligned_target = i == TERM_PERCEPTUAL;
        if (i == TERM_TEXTURE) {
            t->d_step = terms_d_step;
            t->groups = &sh->groups[D_EARLY];
            t->n_groups = 2;
        } else if (i == TERM_COLOUR) {
            t->d_step = terms_d_step;
            t->groups = &sh->groups[D_COLOUR];
            t->n_groups = 1;
        }
    }
    *out = terms;
    *n = N_TERMS;
    return LUMOS_OK;
nomem:
    if (sh) {
        sh->refs = 1;
        shared_free(sh);
    }
    free(terms);
    return lumos__fail(ctx, LUMOS_E_NOMEM, "training terms: out of memory");
}

const char *lumos__gan_content_net(const lumos__train_term *t)
{
    const term_state *ts = t->eval == terms_eval ? t->state : NULL;
    if (!ts || (ts->which != TERM_CONTENT && ts->which != TERM_PERCEPTUAL)) return NULL;
    return ts->sh->content_vgg ? "vgg19" : "mobilenet";
}

/* The discriminators of a term: their indices (texture: early, deep). */
static int term_discs(int which, int disc[2])
{
    if (which == TERM_TEXTURE) {
        disc[0] = D_EARLY;
        disc[1] = D_DEEP;
        return 2;
    }
    disc[0] = D_COLOUR;
    return 1;
}

/* Scores and input gradients of a term's discriminators on one image of
 * width×height. */
typedef struct d_call {
    float score[2];   /* (early, deep) or (colour) */
    float *input[2];  /* gradients over the feature maps */
    size_t input_n[2];
} d_call;

static int d_call_alloc(lumos_ctx *ctx, int which, int w, int h, d_call *c)
{
    memset(c, 0, sizeof *c);
    int disc[2], parts = term_discs(which, disc);
    for (int k = 0; k < parts; k++) {
        int ch, fw, fh;
        lumos__disc_map_shape(disc_net[disc[k]], w, h, &ch, &fw, &fh);
        c->input_n[k] = (size_t)ch * fw * fh;
        c->input[k] = malloc(c->input_n[k] * sizeof(float));
        if (!c->input[k]) return lumos__fail(ctx, LUMOS_E_NOMEM, "discriminator: out of memory");
    }
    return LUMOS_OK;
}

static void d_call_free(d_call *c)
{
    for (int k = 0; k < 2; k++) free(c->input[k]);
}

static uint64_t image_hash(const float *image, int w, int h)
{
    const uint8_t *b = (const uint8_t *)image;
    uint64_t x = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < (size_t)w * h * 3 * sizeof(float); i++) x = (x ^ b[i]) * 0x100000001b3ull;
    return x;
}

/* Keeps maps (taken over) as those of image, replacing an older entry. */
static void cache_put(shared *sh, const float *image, int w, int h, int colour, float *maps[2])
{
    const uint64_t hash = image_hash(image, w, h);
    pthread_mutex_lock(&sh->cache_lock);
    map_entry *e = NULL;
    for (int i = 0; i < MAP_CACHE && !e; i++)
        if (sh->cache[i].image == image && sh->cache[i].colour == colour) e = &sh->cache[i];
    if (!e) e = &sh->cache[sh->cache_next++ % MAP_CACHE];
    free(e->maps[0]);
    free(e->maps[1]);
    *e = (map_entry){image, hash, colour, {maps[0], maps[1]}};
    pthread_mutex_unlock(&sh->cache_lock);
}

/* The kept maps of image (borrowed: the D step only reads the cache), or 0. */
static int cache_get(const shared *sh, const float *image, int w, int h, int colour, float *maps[2])
{
    for (int i = 0; i < MAP_CACHE; i++) {
        const map_entry *e = &sh->cache[i];
        if (e->image == image && e->colour == colour && e->maps[0] && e->hash == image_hash(image, w, h)) {
            maps[0] = e->maps[0];
            maps[1] = e->maps[1];
            return 1;
        }
    }
    return 0;
}

static int terms_eval(void *state, lumos_ctx *ctx, const lumos__train_sample *s, const float *out,
                      float *value, float *grad_out)
{
    const term_state *ts = state;
    const shared *sh = ts->sh;
    float d_real[3] = {0, 0, 0}, weight[4] = {0, 0, 0, 0}, losses[4];
    int rc = LUMOS_OK;
    const int adversarial = ts->which == TERM_TEXTURE || ts->which == TERM_COLOUR;
    const int colour = ts->which == TERM_COLOUR;
    if (adversarial) {
        /* D(real) of this sample's target, for the relativistic pair; its
         * maps kept for the D step */
        d_call c;
        float *maps[2] = {NULL, NULL};
        int disc[2], parts = term_discs(ts->which, disc);
        rc = d_call_alloc(ctx, ts->which, s->width, s->height, &c);
        if (rc == LUMOS_OK)
            rc = lumos__stage_d_maps(ctx, colour, s->width, s->height, s->target, sh->features, maps);
        for (int k = 0; rc == LUMOS_OK && k < parts; k++)
            rc = lumos__stage_discriminate(ctx, disc_net[disc[k]], s->width, s->height, sh->d[disc[k]],
                                           maps[k], NULL, 0, &d_real[colour ? 2 : k], NULL,
                                           c.input[k]);
        if (rc == LUMOS_OK) cache_put(ts->sh, s->target, s->width, s->height, colour, maps);
        else {
            free(maps[0]);
            free(maps[1]);
        }
        d_call_free(&c);
        if (rc) return rc;
    }
    if (ts->which == TERM_CONTENT || ts->which == TERM_PERCEPTUAL) weight[0] = 1;
    else if (ts->which == TERM_TEXTURE) weight[1] = weight[2] = 1;
    else weight[3] = 1;
    /* content compares with the classical render; perceptual (paired) with
     * the aligned target photo */
    const float *ref = ts->which == TERM_PERCEPTUAL ? s->target : s->classic;
    float *out_maps[3];
    rc = lumos__stage_g_losses(ctx, s->width, s->height, out, ref, sh->features, sh->content_vgg,
                               sh->d[D_EARLY], sh->d[D_DEEP], sh->d[D_COLOUR], d_real, weight,
                               losses, grad_out, adversarial ? out_maps : NULL);
    if (rc) return rc;
    if (adversarial) {
        float *fake[2] = {colour ? out_maps[2] : out_maps[0], colour ? NULL : out_maps[1]};
        free(colour ? out_maps[0] : out_maps[2]); /* not computed: NULL */
        if (fake[0]) cache_put(ts->sh, out, s->width, s->height, colour, fake);
        else free(fake[1]);
    }
    *value = ts->which == TERM_TEXTURE ? losses[1] + losses[2] : ts->which == TERM_COLOUR ? losses[3] : losses[0];
    return LUMOS_OK;
}

static double norm2(const float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)v[i] * v[i];
    return s;
}

static float softplus(float z) { return fmaxf(z, 0.f) + log1pf(expf(-fabsf(z))); }
static float sigmoid(float z) { return 1.f / (1.f + expf(-z)); }

/* Adds one pair's D-loss gradient, times scale, into grad_out[k] (each
 * discriminator of the term: texture early and deep, or colour) and its loss
 * per discriminator into d_loss[k]. Each image's feature maps are computed
 * once (or kept from the G step); each discriminator then runs twice per
 * image: at the map (score, v = ∇D and D's state), then from that state
 * its share of the gradient, softplus and γ/2 ‖v‖² together
 * (lumos__stage_discriminate_params). */
static int d_pair(lumos_ctx *ctx, const term_state *ts, const float *fake, const float *real,
                  int w, int h, float scale, float *const grad_out[2], float *d_loss)
{
    const shared *sh = ts->sh;
    int disc[2];
    const int parts = term_discs(ts->which, disc), colour = ts->which == TERM_COLOUR;
    float *maps[2][2] = {{NULL, NULL}, {NULL, NULL}};  /* [real, fake][disc] */
    float *state[2][2] = {{NULL, NULL}, {NULL, NULL}}; /* D's state at each map */
    float *part = NULL;                                /* one image's share of a gradient */
    d_call at[2];
    memset(at, 0, sizeof at);
    int rc = d_call_alloc(ctx, ts->which, w, h, &at[0]);
    if (!rc) rc = d_call_alloc(ctx, ts->which, w, h, &at[1]);
    const float *image[2] = {real, fake};
    int kept[2] = {0, 0}; /* maps borrowed from the G step's cache */
    for (int side = 0; !rc && side < 2; side++) {
        kept[side] = cache_get(sh, image[side], w, h, colour, maps[side]);
        if (!kept[side])
            rc = lumos__stage_d_maps(ctx, colour, w, h, image[side], sh->features, maps[side]);
        for (int k = 0; !rc && k < parts; k++) {
            int ch, fw, fh;
            lumos__disc_map_shape(disc_net[disc[k]], w, h, &ch, &fw, &fh);
            state[side][k] = malloc(lumos__disc_state_size(disc_net[disc[k]], fw, fh) * sizeof(float));
            if (!state[side][k]) {
                rc = lumos__fail(ctx, LUMOS_E_NOMEM, "discriminator: out of memory");
                break;
            }
            rc = lumos__stage_discriminate_at(ctx, disc_net[disc[k]], w, h, sh->d[disc[k]],
                                              maps[side][k], &at[side].score[k], at[side].input[k],
                                              state[side][k]);
        }
    }
    for (int k = 0; !rc && k < parts; k++) {
        const size_t n = sh->n[disc[k]];
        free(part);
        if (!(part = malloc(n * sizeof *part))) {
            rc = lumos__fail(ctx, LUMOS_E_NOMEM, "discriminator: out of memory");
            break;
        }
        /* softplus(−(D(r) − D(f))): dL/dD(r) = −σ(D(f) − D(r)), dL/dD(f) = +σ(...) */
        const float a = sigmoid(at[1].score[k] - at[0].score[k]);
        d_loss[k] += scale * softplus(at[1].score[k] - at[0].score[k]);
        for (int side = 0; !rc && side < 2; side++) {
            /* γ/2 ‖v‖², v = ∇D here: its θ-gradient is γ ∇θ(∇D · v), v fixed */
            const float *v = at[side].input[k];
            d_loss[k] += scale * 0.5f * sh->gamma * (float)norm2(v, at[side].input_n[k]);
            rc = lumos__stage_discriminate_params(ctx, disc_net[disc[k]], w, h, sh->d[disc[k]],
                                                  maps[side][k], state[side][k], v,
                                                  scale * (side ? a : -a), scale * sh->gamma, part);
            for (size_t i = 0; !rc && i < n; i++) grad_out[k][i] += part[i];
        }
    }
    free(part);
    for (int side = 0; side < 2; side++)
        for (int k = 0; k < 2; k++) {
            if (!kept[side]) free(maps[side][k]);
            free(state[side][k]);
        }
    d_call_free(&at[0]);
    d_call_free(&at[1]);
    return rc;
}

int lumos__gan_d_pair(lumos_ctx *ctx, void *state, const float *fake, const float *real,
                      int width, int height, float *d_loss)
{
    const term_state *ts = state;
    int disc[2];
    int parts = term_discs(ts->which, disc);
    float *grad[2] = {ts->sh->grad[disc[0]], parts > 1 ? ts->sh->grad[disc[1]] : NULL};
    return d_pair(ctx, ts, fake, real, width, height, 1.f, grad, d_loss);
}

/* Pairs run side by side, one per thread, each on its own context (its
 * pipelines then run serially: the crops are too small to split well) and
 * into its own gradient buffers, added up after each round. */

typedef struct pair_round {
    const term_state *ts;
    const float *const *fake, *const *real;
    int first, width, height;
    float scale;
    lumos_ctx *ctx[MAX_SIDE_BY_SIDE];
    float *grad[MAX_SIDE_BY_SIDE][2];
    float loss[MAX_SIDE_BY_SIDE][2];
} pair_round;

static int pair_task(void *arg, int i)
{
    pair_round *r = arg;
    int disc[2], parts = term_discs(r->ts->which, disc);
    for (int k = 0; k < parts; k++) memset(r->grad[i][k], 0, r->ts->sh->n[disc[k]] * sizeof(float));
    r->loss[i][0] = r->loss[i][1] = 0;
    return d_pair(r->ctx[i], r->ts, r->fake[r->first + i], r->real[r->first + i], r->width,
                  r->height, r->scale, r->grad[i], r->loss[i]);
}

static int terms_d_step(void *state, lumos_ctx *ctx, const float *const *fake,
                        const float *const *real, int count, int width, int height, float *d_loss)
{
    const term_state *ts = state;
    shared *sh = ts->sh;
    int disc[2], parts = term_discs(ts->which, disc);
    for (int k = 0; k < parts; k++) memset(sh->grad[disc[k]], 0, sh->n[disc[k]] * sizeof(float));
    int side = lumos_ctx_threads(ctx);
    if (side > count) side = count;
    if (side > MAX_SIDE_BY_SIDE) side = MAX_SIDE_BY_SIDE;
    if (side < 1) side = 1;
    pair_round r = {ts, fake, real, 0, width, height, 1.f / (float)count, {0}, {{0}}, {{0}}};
    int rc = LUMOS_OK;
    for (int i = 0; i < side && rc == LUMOS_OK; i++) {
        if (!sh->side_ctx[i] && (sh->side_ctx[i] = lumos_ctx_new()))
            lumos_ctx_set_threads(sh->side_ctx[i], 1);
        r.ctx[i] = sh->side_ctx[i];
        for (int k = 0; k < parts && r.ctx[i]; k++)
            if (!(r.grad[i][k] = malloc(sh->n[disc[k]] * sizeof(float)))) rc = LUMOS_E_NOMEM;
        if (!r.ctx[i]) rc = LUMOS_E_NOMEM;
    }
    if (rc) rc = lumos__fail(ctx, rc, "discriminator step: out of memory");
    float loss[2] = {0, 0};
    for (r.first = 0; rc == LUMOS_OK && r.first < count; r.first += side) {
        int n = count - r.first < side ? count - r.first : side;
        rc = lumos__parallel_for(ctx, n, pair_task, &r);
        for (int i = 0; rc != LUMOS_OK && i < n; i++)
            if (lumos_last_error(r.ctx[i])[0]) {
                rc = lumos__fail(ctx, rc, "%s", lumos_last_error(r.ctx[i]));
                break;
            }
        for (int i = 0; rc == LUMOS_OK && i < n; i++)
            for (int k = 0; k < parts; k++) {
                float *dst = sh->grad[disc[k]];
                const float *src = r.grad[i][k];
                for (size_t q = 0; q < sh->n[disc[k]]; q++) dst[q] += src[q];
                loss[k] += r.loss[i][k];
            }
    }
    for (int i = 0; i < side; i++) {
        free(r.grad[i][0]);
        free(r.grad[i][1]);
    }
    *d_loss = loss[0] + loss[1];
    return rc;
}
