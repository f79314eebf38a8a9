/* test_trainer — the training loop (train/trainer.h) on four photos.
 *
 *   test_trainer PHOTO_DIR [PYTHON [CR2]]
 *
 * - PyTorch's Conv2d init: every tensor within ±1/sqrt(fan_in) and filling it;
 * - the weights file: safetensors laid out by hand-checked rules (8-byte
 *   aligned header, F32, tensors back to back in state_dict order, the
 *   bytes of the weights), read back by lumos_net_load, and by the Python
 *   safetensors module when PYTHON has it;
 * - EfficientISP trained a few dozen steps (crop 64, batch 2): the loss
 *   falls, unpaired and paired; each network takes steps and its weights
 *   file loads;
 * - N steps straight = N/2, checkpoint, resume, N/2 more, bit for bit (the
 *   weights, a toy discriminator's parameters and its step count), and the
 *   same with 1 or 2 threads; the log is appended to, under one header;
 * - two ranks (threads, with a collective of their own) train to one
 *   process's weights, and show the toy discriminator the same real images,
 *   unpaired and paired, though each makes only its own samples;
 * - a stop request ends the run after one step with checkpoint and weights;
 * - a truncated JPEG among the photos is skipped, reported and counted;
 * - damaged and mismatched checkpoints are refused, naming the file;
 * - the preview grid has a row per crop and three panels;
 * - a RAW file among the photos (the CR2, when there) trains as a cropped
 *   mosaic, is left out in paired mode, and previews without a target.
 * Without the photos the test exits 77 (skipped). */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "test_nets.h"
#include "lumos.h"
#include "pipeline/learned.h"
#include "stages/learned_isp.h"
#include "train/data.h"
#include "train/trainer.h"
#include "train/unprocess.h"

static const char *const photos[] = {"astronaut.png", "chelsea.png", "coffee.png",
                                     "motorcycle_left.png"};
static char tmp[] = "/tmp/lumos_trainer_XXXXXX";
static char data_dir[64];
static const char *python;

/* tmp/name, in one of 8 rotating buffers: copy a path to keep it. */
static const char *tmp_path(const char *name)
{
    static char buf[8][256];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", tmp, name);
    return p;
}

/* ------------------------------------------------------------ init */

static void test_init(lumos_ctx *ctx)
{
    for (int ki = 0; ki < 3; ki++) {
        const lumos__net_def *kind = net_named(ki == 0 ? "efficient" : ki == 1 ? "robust" : "rmfa-tiny");
        size_t n = lumos__net_weight_count(kind);
        float *w = malloc(n * sizeof *w);
        uint64_t rng = 5;
        int rc = lumos__train_init_weights(ctx, kind, &rng, w);
        CHECK(rc == LUMOS_OK, "%s init: %s", kind->name, lumos_last_error(ctx));
        const lumos__tensor_spec *t;
        size_t at = 0;
        for (size_t i = 0; rc == LUMOS_OK && (t = lumos__net_tensor(kind, i)); i++) {
            /* A bias's fan_in is its weight's: the tensor before it. */
            const lumos__tensor_spec *wt = t->ndim == 4 ? t : lumos__net_tensor(kind, i - 1);
            double bound = 1 / sqrt((double)(wt->shape[1] * wt->shape[2] * wt->shape[3]));
            size_t count = lumos__tensor_elements(t);
            double mx = 0, sum = 0;
            for (size_t k = 0; k < count; k++) {
                mx = fmax(mx, fabs(w[at + k]));
                sum += w[at + k];
            }
            CHECK(mx <= bound, "%s %s: |w| up to %g, bound %g", kind->name, t->name, mx,
                  bound);
            /* U(-b, b): the largest |w| of n draws is within 12b/n of b but
             * for e^-12 of seeds; the mean within 3.5 sigma (b/sqrt(3n)) of 0. */
            if (count >= 16)
                CHECK(mx > bound * (1 - 12.0 / count) &&
                          fabs(sum / count) < 2 * bound / sqrt((double)count),
                      "%s %s: max %g mean %g for U(-%g, %g)", kind->name, t->name, mx,
                      sum / count, bound, bound);
            at += count;
        }
        free(w);
    }
}

/* How many of the image's (colour, 2×2 phase) outputs of network `kind`
 * with weights w are 0 at over 99% of the pixels of a random mosaic: a
 * ReLU-output unit that is negative on every input never learns again. */
static int dead_outputs(lumos_ctx *ctx, const lumos__net_def *kind, const float *w)
{
    enum { S = 64 };
    static uint16_t mosaic[S * S];
    uint64_t rng = 3;
    for (int i = 0; i < S * S; i++) mosaic[i] = (uint16_t)(512 + lumos__rng_next(&rng) % 15000);
    const float black[4] = {512, 512, 512, 512}, scale[4] = {1 / 15871.f, 1 / 15871.f, 1 / 15871.f,
                                                             1 / 15871.f};
    void *data = NULL;
    size_t row = 0;
    if (lumos__stage_learned(ctx, kind, w, mosaic, S, S, S * 2, 0, 0, black, scale, 32, &data,
                             &row)) {
        CHECK(0, "%s: %s", kind->name, lumos_last_error(ctx));
        return -1;
    }
    int dead = 0;
    for (int c = 0; c < 3; c++)
        for (int phase = 0; phase < 4; phase++) {
            int zero = 0;
            for (int y = phase >> 1; y < S; y += 2)
                for (int x = phase & 1; x < S; x += 2)
                    zero += ((const float *)((const uint8_t *)data + y * row))[x * 3 + c] <= 0;
            dead += zero > 0.99 * (S / 2) * (S / 2);
        }
    free(data);
    return dead;
}

/* EfficientISP and RobustISP end in a ReLU: from PyTorch's init some
 * output units start dead (a black phase of one colour: a 2×2 pattern and a
 * cast that training cannot remove). The trainer's start lifts them. */
static void test_outputs_start_alive(lumos_ctx *ctx)
{
    for (int ki = 0; ki < 2; ki++) {
        const lumos__net_def *kind = net_named(ki == 0 ? "efficient" : "robust");
        size_t n = lumos__net_weight_count(kind);
        float *w = malloc(n * sizeof *w);
        int plain_dead = 0, started_dead = 0;
        for (uint64_t seed = 1; seed <= 16; seed++) {
            uint64_t rng = seed;
            lumos__train_init_weights(ctx, kind, &rng, w);
            plain_dead += dead_outputs(ctx, kind, w) > 0;
            lumos__train_start_outputs_alive(kind, w);
            started_dead += dead_outputs(ctx, kind, w) > 0;
        }
        printf("%s: PyTorch's init has dead outputs for %d of 16 seeds, the trainer's start for %d\n",
               kind->name, plain_dead, started_dead);
        CHECK(started_dead == 0, "%s: dead outputs at the start for %d of 16 seeds",
              kind->name, started_dead);
        free(w);
    }
}

/* --------------------------------------------------------- weights file */

static uint64_t le64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

static void test_weights_file(lumos_ctx *ctx)
{
    const lumos__net_def *kind = net_named("efficient");
    size_t n = lumos__net_weight_count(kind);
    float *w = malloc(n * sizeof *w);
    uint64_t rng = 9;
    lumos__train_init_weights(ctx, kind, &rng, w);
    const char *path = tmp_path("w.safetensors");
    int rc = lumos__train_write_weights(ctx, kind, LUMOS_INPUT_SENSOR, w, 1234, path);
    CHECK(rc == LUMOS_OK, "write: %s", lumos_last_error(ctx));

    /* By hand. */
    size_t size;
    uint8_t *b = read_all(path, &size);
    CHECK(b && size > 8, "%s not written", path);
    if (b && size > 8) {
        uint64_t hlen = le64(b);
        CHECK(hlen % 8 == 0 && 8 + hlen + 4 * n == size,
              "header length %llu (a multiple of 8?), file %zu bytes for %zu floats",
              (unsigned long long)hlen, size, n);
        json_error_t err;
        json_t *root = hlen < size ? json_loadb((const char *)b + 8, hlen, 0, &err) : NULL;
        CHECK(root != NULL, "the header is not JSON");
        const lumos__tensor_spec *t;
        size_t at = 0;
        for (size_t i = 0; root && (t = lumos__net_tensor(kind, i)); i++) {
            json_t *e = json_object_get(root, t->name);
            const char *dtype = json_string_value(json_object_get(e, "dtype"));
            json_t *shape = json_object_get(e, "shape"), *off = json_object_get(e, "data_offsets");
            int ok = dtype && !strcmp(dtype, "F32") && json_array_size(shape) == (size_t)t->ndim;
            for (int d = 0; ok && d < t->ndim; d++)
                ok = json_integer_value(json_array_get(shape, (size_t)d)) == t->shape[d];
            size_t count = lumos__tensor_elements(t);
            ok = ok && json_integer_value(json_array_get(off, 0)) == (json_int_t)(4 * at) &&
                 json_integer_value(json_array_get(off, 1)) == (json_int_t)(4 * (at + count));
            CHECK(ok, "%s: dtype, shape or offsets wrong", t->name);
            CHECK(!memcmp(b + 8 + hlen + 4 * at, w + at, 4 * count), "%s: bytes differ", t->name);
            at += count;
        }
        json_t *meta = json_object_get(root, "__metadata__");
        const char *net = json_string_value(json_object_get(meta, "lumos_net"));
        const char *step = json_string_value(json_object_get(meta, "lumos_step"));
        CHECK(net && !strcmp(net, "efficient") && step && !strcmp(step, "1234"),
              "metadata: net %s step %s", net ? net : "-", step ? step : "-");
        CHECK(root && json_object_size(root) == 7, "%zu header entries, not 6 tensors + metadata",
              root ? json_object_size(root) : 0);
        json_decref(root);
    }
    free(b);

    /* By lumos's reader. */
    lumos_net *net = NULL;
    rc = lumos_net_load(ctx, kind->name, path, &net);
    CHECK(rc == LUMOS_OK, "lumos_net_load: %s", lumos_last_error(ctx));
    size_t count = 0;
    const float *back = net ? lumos__net_flat(net, &count) : NULL;
    CHECK(back && count == n && !memcmp(back, w, n * sizeof *w), "weights read back differ");
    lumos_net_free(net);

    /* By the reference reader, where installed. */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s -c 'import safetensors' 2>/dev/null", python);
    if (python && system(cmd) == 0) {
        snprintf(cmd, sizeof cmd,
                 "%s -c 'import sys, safetensors.torch as s; t = s.load_file(sys.argv[1]); "
                 "sys.exit(0 if abs(float(t[\"conv1.weight\"][0,0,0,0]) - %.9g) < 1e-9 and "
                 "list(t[\"conv2.weight\"].shape) == [12,12,3,3] else 1)' %s",
                 python, (double)w[0], path);
        CHECK(system(cmd) == 0, "safetensors.torch.load_file disagrees: %s", cmd);
    } else {
        printf("weights file: no Python safetensors module; checked by hand and lumos_net_load\n");
    }
    free(w);
}

/* ------------------------------------------------------------ training */

typedef struct losses {
    double v[2][256];
    int n;
    int steps_seen;
} losses;

static void record(void *user, const lumos__train_report *r)
{
    losses *l = user;
    if (l->n < 256)
        for (int i = 0; i < r->n_terms && i < 2; i++) l->v[i][l->n] = r->value[i];
    l->n++;
}

/* The pixel terms most tests train with: quick, and independent of the
 * feature network (test_gan_terms runs the method's default terms). */
static lumos__train_term *pixel_terms;
static int n_pixel_terms;

static void base_options(lumos__train_options *o, const char *const *src)
{
    lumos__train_options_init(o);
    o->terms = pixel_terms;
    o->n_terms = n_pixel_terms;
    o->sources = src;
    o->n_sources = 1;
    o->crop = 64;
    o->batch = 2;
    o->threads = 2;
    o->lr_g = 5e-3;
}

static double mean(const double *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    return s / n;
}

/* --lr-g-final: step k (from 0) of n runs at final + (lr - final) *
 * (1 + cos(pi k / n)) / 2, the rate the progress and the log report. */
static void record_lr(void *user, const lumos__train_report *r)
{
    double *lr = user;
    if (r->step >= 1 && r->step <= 6) lr[r->step - 1] = r->lr_g;
}

static void test_lr_schedule(lumos_ctx *ctx, const char *const *src)
{
    lumos__train_options o;
    base_options(&o, src);
    o.steps = 6;
    o.lr_g = 1e-2;
    o.lr_g_final = 1e-4;
    double lr[6] = {0};
    o.on_step = record_lr;
    o.user = lr;
    CHECK(lumos__train(ctx, &o, NULL) == LUMOS_OK, "schedule run: %s", lumos_last_error(ctx));
    for (int k = 0; k < 6; k++) {
        double want = 1e-4 + (1e-2 - 1e-4) * 0.5 * (1 + cos(3.14159265358979 * k / 6));
        CHECK(fabs(lr[k] - want) < 1e-12, "step %d: lr %g, not %g", k + 1, lr[k], want);
    }
    o.lr_g_final = -1;
    CHECK(lumos__train(ctx, &o, NULL) == LUMOS_E_ARG, "a negative final rate was taken");
}

static void test_loss_falls(lumos_ctx *ctx, const char *const *src)
{
    for (int paired = 0; paired < 2; paired++) {
        lumos__train_options o;
        base_options(&o, src);
        o.mode = paired ? LUMOS__TRAIN_PAIRED : LUMOS__TRAIN_UNPAIRED;
        if (paired) { /* the paired defaults: l1, tv */
            o.terms = NULL;
            o.n_terms = 0;
        }
        o.steps = 40;
        losses l = {0};
        o.on_step = record;
        o.user = &l;
        lumos__train_result res;
        int rc = lumos__train(ctx, &o, &res);
        CHECK(rc == LUMOS_OK && res.step == 40 && l.n == 40, "%s run: %s",
              paired ? "paired" : "unpaired", lumos_last_error(ctx));
        /* The first term (mse-classic, or l1), over the first and last 10. */
        double first = mean(l.v[0], 10), last = mean(l.v[0] + 30, 10);
        printf("%s: %s %.4f over the first 10 steps, %.4f over the last 10 (%.3f s/step)\n",
               paired ? "paired" : "unpaired", paired ? "l1" : "mse-classic", first, last,
               res.seconds_per_step);
        CHECK(last < 0.8 * first, "%s: the loss did not fall: %.4f -> %.4f",
              paired ? "paired" : "unpaired", first, last);
    }
}

/* The unpaired defaults (content, tv, texture, colour, on a random feature
 * network): a few steps with a discriminator step each, finite losses, and
 * discriminators that moved. */
typedef struct gan_seen {
    int steps, finite;
    double d_loss;
} gan_seen;

static void record_gan(void *user, const lumos__train_report *r)
{
    gan_seen *g = user;
    g->steps++;
    for (int i = 0; i < r->n_terms; i++)
        g->finite &= isfinite(r->value[i]) && isfinite(r->grad_norm[i]) && r->grad_norm[i] > 0;
    g->d_loss = r->d_loss[2] + r->d_loss[3];
}

static void test_gan_terms(lumos_ctx *ctx, const char *const *src)
{
    lumos__train_options o;
    base_options(&o, src);
    o.terms = NULL; /* the defaults */
    o.n_terms = 0;
    o.steps = 3;
    o.d_every = 1;
    o.crop = 48;
    gan_seen g = {0, 1, 0};
    o.on_step = record_gan;
    o.user = &g;
    lumos__train_result res;
    int rc = lumos__train(ctx, &o, &res);
    printf("unpaired defaults: %d steps, %.2f s/step, last discriminator losses %.4f\n", g.steps,
           res.seconds_per_step, g.d_loss);
    CHECK(rc == LUMOS_OK && g.steps == 3, "default unpaired terms: %s", lumos_last_error(ctx));
    CHECK(g.finite, "default unpaired terms: a loss or gradient norm is not finite or 0");
    CHECK(g.d_loss > 0 && isfinite(g.d_loss), "discriminator losses: %g", g.d_loss);
}

/* Every term's gradient norm at every step is finite and not 0. */
static void check_grads(void *user, const lumos__train_report *r)
{
    int *ok = user;
    for (int i = 0; i < r->n_terms; i++) *ok &= r->grad_norm[i] > 0 && isfinite(r->grad_norm[i]);
}

static void test_every_net(lumos_ctx *ctx, const char *const *src)
{
    for (int ki = 0; ki < 3; ki++) {
        const lumos__net_def *kind = net_named(ki == 0 ? "efficient" : ki == 1 ? "robust" : "rmfa-tiny");
        lumos__train_options o;
        base_options(&o, src);
        o.net = kind->name;
        o.crop = 32;
        o.steps = 2;
        o.out = tmp_path("net.safetensors");
        int grads_ok = 1;
        o.on_step = check_grads;
        o.user = &grads_ok;
        lumos__train_result res;
        int rc = lumos__train(ctx, &o, &res);
        CHECK(rc == LUMOS_OK && res.step == 2 && grads_ok, "%s: %s%s", kind->name,
              lumos_last_error(ctx), grads_ok ? "" : " (a gradient norm 0 or not finite)");
        lumos_net *net = NULL;
        rc = lumos_net_load(ctx, kind->name, o.out, &net);
        CHECK(rc == LUMOS_OK, "%s weights: %s", kind->name, lumos_last_error(ctx));
        lumos_net_free(net);
    }
}

/* A stand-in discriminator term: parameters of its own (an Adam group), a
 * d_step that depends on the batch, and a generator term that reads them,
 * so resume must restore both for the runs to agree. */
typedef struct toy_d {
    float p[4], g[4];
    int d_steps;
    double real_sum; /* of every real image it was shown */
    lumos__train_params group;
} toy_d;

static int toy_eval(void *state, lumos_ctx *ctx, const lumos__train_sample *s, const float *out,
                    float *value, float *grad)
{
    (void)ctx;
    const toy_d *d = state;
    size_t n = (size_t)s->width * s->height * 3;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += out[i];
        grad[i] = d->p[0] / (float)n;
    }
    *value = (float)(d->p[0] * sum / (double)n);
    return LUMOS_OK;
}

static int toy_d_step(void *state, lumos_ctx *ctx, const float *const *fake,
                      const float *const *real, int count, int width, int height, float *d_loss)
{
    (void)ctx;
    toy_d *d = state;
    double f = 0, r = 0;
    size_t n = (size_t)width * height * 3;
    for (int b = 0; b < count; b++)
        for (size_t i = 0; i < n; i++) {
            f += fake[b][i];
            r += real[b][i];
        }
    double gap = (f - r) / ((double)n * count);
    for (int k = 0; k < 4; k++) d->g[k] = (float)(gap * (k + 1) + 0.01 * d->p[k]);
    *d_loss = (float)gap;
    d->d_steps++;
    d->real_sum += r;
    return LUMOS_OK;
}

static void toy_terms(lumos_ctx *ctx, lumos__train_term terms[3], toy_d *d)
{
    memset(d, 0, sizeof *d);
    for (int k = 0; k < 4; k++) d->p[k] = 0.1f * (k + 1);
    d->group = (lumos__train_params){"D-toy", d->p, d->g, 4};
    lumos__train_term_builtin(ctx, "mse-classic", 1, &terms[0]);
    lumos__train_term_builtin(ctx, "tv", 0.1f, &terms[1]);
    memset(&terms[2], 0, sizeof terms[2]);
    snprintf(terms[2].name, sizeof terms[2].name, "toy-adv");
    terms[2].weight = 0.2f;
    terms[2].state = d;
    terms[2].eval = toy_eval;
    terms[2].d_step = toy_d_step;
    terms[2].groups = &d->group;
    terms[2].n_groups = 1;
}

/* Asks the run to stop (as Ctrl-C does) once `at` steps are done. */
typedef struct stopper {
    volatile sig_atomic_t flag;
    uint64_t at;
} stopper;

static void stop_at(void *user, const lumos__train_report *r)
{
    stopper *s = user;
    if (r->step == s->at) s->flag = 1;
}

/* One run of the resume test: to `steps`, stopped after `stop_after` steps
 * when that is nonzero, resuming when asked. The generator's rate follows
 * a schedule (which depends on `steps`). */
static int run(lumos_ctx *ctx, const char *const *src, uint64_t steps, uint64_t stop_after,
               int threads, int resume, const char *ckp, const char *out, const char *log,
               toy_d *d)
{
    lumos__train_term terms[3];
    toy_terms(ctx, terms, d); /* fresh, as in a new process: only the checkpoint carries D */
    lumos__train_options o;
    base_options(&o, src);
    o.steps = steps;
    o.threads = threads;
    o.terms = terms;
    o.n_terms = 3;
    o.d_every = 3;
    o.checkpoint = ckp;
    o.checkpoint_every = 3;
    o.lr_g_final = 1e-4;
    o.resume = resume;
    o.out = out;
    o.log = log;
    stopper stop = {0, stop_after};
    if (stop_after) {
        o.stop = &stop.flag;
        o.on_step = stop_at;
        o.user = &stop;
    }
    lumos__train_result res;
    int rc = lumos__train(ctx, &o, &res);
    const uint64_t reached = stop_after ? stop_after : steps;
    CHECK(rc == LUMOS_OK && res.step == reached, "run to %llu (resume %d): %s",
          (unsigned long long)reached, resume, lumos_last_error(ctx));
    return rc;
}

static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    uint8_t *x = read_all(a, &na), *y = read_all(b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

static void test_resume(lumos_ctx *ctx, const char *const *src)
{
    toy_d straight, straight2, resumed;
    run(ctx, src, 8, 0, 1, 0, tmp_path("a.ckp"), tmp_path("a.safetensors"), NULL, &straight);
    run(ctx, src, 8, 0, 2, 0, tmp_path("d.ckp"), tmp_path("d.safetensors"), NULL, &straight2);
    CHECK(same_file(tmp_path("a.safetensors"), tmp_path("d.safetensors")),
          "1 and 2 threads gave different weights");
    CHECK(straight.d_steps == 2, "%d discriminator steps in 8 steps, every 3rd: not 2",
          straight.d_steps);

    char log[256];
    snprintf(log, sizeof log, "%s", tmp_path("b.csv"));
    run(ctx, src, 8, 4, 2, 0, tmp_path("b.ckp"), tmp_path("b.safetensors"), log, &resumed);
    CHECK(!same_file(tmp_path("a.safetensors"), tmp_path("b.safetensors")),
          "4 steps gave the weights of 8");
    run(ctx, src, 8, 0, 2, 1, tmp_path("b.ckp"), tmp_path("b.safetensors"), log, &resumed);
    CHECK(same_file(tmp_path("a.safetensors"), tmp_path("b.safetensors")),
          "8 steps straight and 4 + resume + 4 gave different weights");
    CHECK(!memcmp(straight.p, resumed.p, sizeof straight.p),
          "the discriminator's parameters differ after resume (%g vs %g)", straight.p[0],
          resumed.p[0]);

    /* The log: one header, steps 1..8 in order. */
    size_t size;
    uint8_t *bytes = read_all(log, &size);
    char *text = calloc(size + 1, 1);
    if (bytes && text) memcpy(text, bytes, size);
    free(bytes);
    CHECK(text && !strncmp(text, "step,elapsed_s,mse-classic,mse-classic_gnorm,tv,tv_gnorm,"
                                 "toy-adv,toy-adv_gnorm,toy-adv_d_loss,lr_g\n", 99),
          "log header: %.120s", text ? text : "(none)");
    int headers = 0, rows = 0, in_order = 1;
    char *save = NULL;
    for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "step,", 5)) headers++;
        else if (atoi(line) != ++rows) in_order = 0;
    }
    CHECK(headers == 1 && rows == 8 && in_order, "log: %d headers, %d rows%s", headers, rows,
          in_order ? "" : ", out of order");
    free(text);
}

/* --------------------------------------------------- ranks in threads */

/* The collective of lumos__train_comm between threads: each rank's buffer
 * summed in rank order, so that every rank gets the same sums. */
enum { RANKS = 2 };

typedef struct rank_group {
    pthread_barrier_t barrier;
    const void *part[RANKS];
} rank_group;

typedef struct rank_run {
    rank_group *group;
    lumos__train_comm comm;
    lumos__train_options o;
    lumos__train_term terms[3];
    toy_d d;
    int rc;
    char error[512];
} rank_run;

#define RANK_SUM(NAME, T)                                                      \
    static int NAME(void *user, T *buf, size_t n)                              \
    {                                                                          \
        rank_run *r = user;                                                    \
        T *sum = malloc(n * sizeof *sum);                                      \
        r->group->part[r->comm.rank] = buf;                                    \
        pthread_barrier_wait(&r->group->barrier);                              \
        for (size_t i = 0; sum && i < n; i++) {                                \
            sum[i] = 0;                                                        \
            for (int k = 0; k < RANKS; k++) sum[i] += ((const T *)r->group->part[k])[i]; \
        }                                                                      \
        pthread_barrier_wait(&r->group->barrier); /* all read: buf is free */  \
        if (sum) memcpy(buf, sum, n * sizeof *sum);                            \
        free(sum);                                                             \
        return sum ? 0 : -1;                                                   \
    }
RANK_SUM(rank_sum_f64, double)
RANK_SUM(rank_sum_f32, float)

static void *rank_main(void *arg)
{
    rank_run *r = arg;
    lumos_ctx *ctx = lumos_ctx_new();
    lumos_ctx_set_threads(ctx, 1);
    r->rc = ctx ? lumos__train(ctx, &r->o, NULL) : LUMOS_E_NOMEM;
    snprintf(r->error, sizeof r->error, "%s", ctx ? lumos_last_error(ctx) : "no context");
    lumos_ctx_free(ctx);
    return NULL;
}

static void rank_options(lumos_ctx *ctx, rank_run *r, const char *const *src,
                         lumos__train_mode mode, const char *out)
{
    toy_terms(ctx, r->terms, &r->d);
    base_options(&r->o, src);
    r->o.mode = mode;
    r->o.crop = 32;
    r->o.batch = 4;
    r->o.steps = 4;
    r->o.threads = 1;
    r->o.terms = r->terms;
    r->o.n_terms = 3;
    r->o.d_every = 2;
    r->o.out = out;
}

/* max |a - b| over two weights files of the same network (-1: unreadable) */
static double weights_difference(lumos_ctx *ctx, const char *a, const char *b)
{
    lumos_net *x = NULL, *y = NULL;
    double worst = -1;
    if (!lumos_net_load(ctx, "efficient", a, &x) && !lumos_net_load(ctx, "efficient", b, &y)) {
        size_t n, m;
        const float *p = lumos__net_flat(x, &n), *q = lumos__net_flat(y, &m);
        worst = n == m ? 0 : -1;
        for (size_t i = 0; n == m && i < n; i++) worst = fmax(worst, fabs(p[i] - q[i]));
    }
    lumos_net_free(x);
    lumos_net_free(y);
    return worst;
}

static void test_ranks(lumos_ctx *ctx, const char *const *src)
{
    for (int paired = 0; paired < 2; paired++) {
        const lumos__train_mode mode = paired ? LUMOS__TRAIN_PAIRED : LUMOS__TRAIN_UNPAIRED;
        char one[256], two[256];
        snprintf(one, sizeof one, "%s", tmp_path("ranks1.safetensors"));
        snprintf(two, sizeof two, "%s", tmp_path("ranks2.safetensors"));
        rank_run single;
        memset(&single, 0, sizeof single);
        rank_options(ctx, &single, src, mode, one);
        rank_main(&single);
        CHECK(single.rc == LUMOS_OK, "one process: %s", single.error);

        rank_group group;
        rank_run *r = calloc(RANKS, sizeof *r);
        pthread_t th[RANKS];
        pthread_barrier_init(&group.barrier, NULL, RANKS);
        for (int k = 0; k < RANKS; k++) {
            rank_options(ctx, &r[k], src, mode, two); /* rank 0 alone writes */
            r[k].group = &group;
            r[k].comm = (lumos__train_comm){k, RANKS, rank_sum_f64, rank_sum_f32, &r[k]};
            r[k].o.comm = &r[k].comm;
        }
        for (int k = 0; k < RANKS; k++) pthread_create(&th[k], NULL, rank_main, &r[k]);
        for (int k = 0; k < RANKS; k++) pthread_join(th[k], NULL);
        pthread_barrier_destroy(&group.barrier);
        for (int k = 0; k < RANKS; k++) {
            CHECK(r[k].rc == LUMOS_OK, "%s, rank %d: %s", paired ? "paired" : "unpaired", k,
                  r[k].error);
            /* The real images are made alike, so their sums are equal. */
            CHECK(r[k].d.d_steps == 2 && r[k].d.real_sum == single.d.real_sum,
                  "%s, rank %d: %d discriminator steps, real images summing to %.17g (one "
                  "process: %d, %.17g)", paired ? "paired" : "unpaired", k, r[k].d.d_steps,
                  r[k].d.real_sum, single.d.d_steps, single.d.real_sum);
        }
        double worst = weights_difference(ctx, one, two);
        CHECK(worst >= 0 && worst <= 1e-5, "%s: 2 ranks vs one process: max |difference| %g",
              paired ? "paired" : "unpaired", worst);
        for (int k = 0; k < RANKS; k++)
            for (int i = 0; i < 3; i++) lumos__train_term_free(&r[k].terms[i]);
        for (int i = 0; i < 3; i++) lumos__train_term_free(&single.terms[i]);
        free(r);
    }
}

static void test_stop(lumos_ctx *ctx, const char *const *src)
{
    lumos__train_options o;
    base_options(&o, src);
    volatile sig_atomic_t stop = 1;
    o.stop = &stop;
    o.steps = 100;
    o.checkpoint = tmp_path("s.ckp");
    o.out = tmp_path("s.safetensors");
    lumos__train_result res;
    int rc = lumos__train(ctx, &o, &res);
    struct stat st;
    CHECK(rc == LUMOS_OK && res.interrupted && res.step == 1,
          "stop: rc %d, interrupted %d at step %llu: %s", rc, res.interrupted,
          (unsigned long long)res.step, lumos_last_error(ctx));
    CHECK(stat(o.checkpoint, &st) == 0 && stat(o.out, &st) == 0,
          "stopped without a checkpoint or weights");
    /* ... and goes on from there. */
    o.stop = NULL;
    o.resume = 1;
    o.steps = 2;
    rc = lumos__train(ctx, &o, &res);
    CHECK(rc == LUMOS_OK && res.first_step == 1 && res.step == 2, "resume after stop: %s",
          lumos_last_error(ctx));
}

typedef struct notices {
    char text[4096];
} notices;

static void on_notice(void *user, const char *msg)
{
    notices *n = user;
    size_t len = strlen(n->text);
    snprintf(n->text + len, sizeof n->text - len, "%s\n", msg);
}

static void test_bad_file(lumos_ctx *ctx)
{
    /* The photos plus a JPEG cut in half. */
    char dir[300], cmd[1200];
    snprintf(dir, sizeof dir, "%s/withbad", tmp);
    mkdir(dir, 0700);
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd, "ln -s %s/%s %s/", data_dir, photos[i], dir);
        CHECK(system(cmd) == 0, "%s", cmd);
    }
    lumos_image img;
    lumos_image_alloc(&img, 96, 96, 3, 8);
    for (size_t i = 0; i < img.stride * 96; i++) ((uint8_t *)img.data)[i] = (uint8_t)(i * 7);
    /* A name on the train side of the fixed split, where the trainer looks. */
    char jpg[400];
    for (int k = 0; k < 100; k++) {
        snprintf(jpg, sizeof jpg, "%s/truncated_%d.jpg", dir, k);
        if (lumos__split_of(jpg) == LUMOS__SPLIT_TRAIN) break;
    }
    lumos_write_options wo;
    lumos_write_options_init(&wo);
    CHECK(lumos_image_write(ctx, &img, jpg, &wo) == LUMOS_OK, "%s", lumos_last_error(ctx));
    lumos_image_free(&img);
    struct stat st;
    CHECK(stat(jpg, &st) == 0 && truncate(jpg, st.st_size / 2) == 0, "truncate %s", jpg);

    notices seen = {{0}};
    lumos_ctx_set_notice(ctx, on_notice, &seen);
    const char *src[] = {dir};
    lumos__train_options o;
    base_options(&o, src);
    o.steps = 3; /* 12 samples and targets: every file comes up */
    lumos__train_result res;
    int rc = lumos__train(ctx, &o, &res);
    lumos_ctx_set_notice(ctx, NULL, NULL);
    CHECK(rc == LUMOS_OK && res.step == 3, "training past a bad file: %s", lumos_last_error(ctx));
    CHECK(res.skipped_files == 1, "%zu files skipped, not 1", res.skipped_files);
    CHECK(strstr(seen.text, "skipped") && strstr(seen.text, jpg),
          "the truncated JPEG was not reported: %s", seen.text);
}

/* Weights whose outputs are all dead (the last bias far below 0): the
 * trainer says so once they have been 0 for 50 steps. */
static void test_dead_outputs_noticed(lumos_ctx *ctx, const char *const *src)
{
    const lumos__net_def *kind = net_named("efficient");
    size_t n = lumos__net_weight_count(kind);
    float *w = malloc(n * sizeof *w);
    uint64_t rng = 4;
    lumos__train_init_weights(ctx, kind, &rng, w);
    ptrdiff_t at = lumos__net_tensor_offset(kind, "conv3.bias");
    for (int k = 0; k < 12; k++) w[at + k] = -100;
    const char *path = tmp_path("dead.safetensors");
    CHECK(lumos__train_write_weights(ctx, kind, LUMOS_INPUT_SENSOR, w, 0, path) == LUMOS_OK, "%s",
          lumos_last_error(ctx));
    free(w);
    notices seen = {{0}};
    lumos_ctx_set_notice(ctx, on_notice, &seen);
    lumos__train_options o;
    base_options(&o, src);
    o.init = path;
    o.crop = 16;
    o.steps = 49;
    int rc = lumos__train(ctx, &o, NULL);
    CHECK(rc == LUMOS_OK && !strstr(seen.text, "dead ReLU"), "told too early: %s %s",
          lumos_last_error(ctx), seen.text);
    o.steps = 50;
    rc = lumos__train(ctx, &o, NULL);
    lumos_ctx_set_notice(ctx, NULL, NULL);
    CHECK(rc == LUMOS_OK && strstr(seen.text, "step 50: the red output at phase (0, 0)") &&
              strstr(seen.text, "dead ReLU"),
          "dead outputs not reported: %s %s", lumos_last_error(ctx), seen.text);
}

static void test_bad_checkpoints(lumos_ctx *ctx, const char *const *src)
{
    lumos__train_options o;
    base_options(&o, src);
    o.steps = 1;
    o.checkpoint = tmp_path("c.ckp");
    CHECK(lumos__train(ctx, &o, NULL) == LUMOS_OK, "%s", lumos_last_error(ctx));
    size_t size;
    uint8_t *good = read_all(o.checkpoint, &size);
    if (!good) {
        CHECK(0, "no checkpoint written");
        return;
    }
    o.steps = 2;
    o.resume = 1;
    /* One byte flipped in the weights, then a file cut short. */
    const char *damaged = tmp_path("damaged.ckp");
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(damaged, "wb");
        good[size - 100] ^= (uint8_t)(k == 0);
        fwrite(good, 1, k == 0 ? size : size / 2, f);
        good[size - 100] ^= (uint8_t)(k == 0);
        fclose(f);
        o.checkpoint = damaged;
        int rc = lumos__train(ctx, &o, NULL);
        const char *e = lumos_last_error(ctx);
        CHECK(rc == LUMOS_E_FORMAT && strstr(e, damaged) && strstr(e, k ? "truncated" : "CRC"),
              "%s checkpoint: rc %d: %s", k ? "truncated" : "damaged", rc, e);
    }
    free(good);
    /* Sound, but of another network or crop. */
    o.checkpoint = tmp_path("c.ckp");
    o.net = "robust";
    int rc = lumos__train(ctx, &o, NULL);
    CHECK(rc == LUMOS_E_ARG && strstr(lumos_last_error(ctx), "efficient network, not robust"),
          "another net: rc %d: %s", rc, lumos_last_error(ctx));
    o.net = "efficient";
    o.crop = 32;
    rc = lumos__train(ctx, &o, NULL);
    CHECK(rc == LUMOS_E_ARG && strstr(lumos_last_error(ctx), "the crop 64, this run has the crop 32"),
          "another crop: rc %d: %s", rc, lumos_last_error(ctx));
    o.crop = 64;
    o.checkpoint = tmp_path("missing.ckp");
    rc = lumos__train(ctx, &o, NULL);
    CHECK(rc == LUMOS_E_IO && strstr(lumos_last_error(ctx), "missing.ckp"),
          "a missing checkpoint: rc %d: %s", rc, lumos_last_error(ctx));
}

static void test_preview(lumos_ctx *ctx, const char *const *src)
{
    lumos__train_options o;
    base_options(&o, src);
    o.steps = 2;
    o.preview = tmp_path("p.png");
    o.preview_every = 1;
    CHECK(lumos__train(ctx, &o, NULL) == LUMOS_OK, "%s", lumos_last_error(ctx));
    lumos_image img = {0};
    int rc = lumos_image_read(ctx, o.preview, &img);
    /* Four 64-pixel rows and three panels, 2-pixel gaps. */
    CHECK(rc == LUMOS_OK && img.width == 3 * 64 + 4 && img.height == 4 * 64 + 6,
          "preview: %s %dx%d", lumos_last_error(ctx), img.width, img.height);
    lumos_image_free(&img);
}

static void test_raw_item(lumos_ctx *ctx, const char *cr2)
{
    if (!cr2 || access(cr2, R_OK)) {
        printf("raw item: %s not found, skipped\n", cr2 ? cr2 : "no CR2 given");
        return;
    }
    char dir[300], cmd[1200];
    snprintf(dir, sizeof dir, "%s/withraw", tmp);
    mkdir(dir, 0700);
    snprintf(cmd, sizeof cmd, "ln -s %s %s/%s %s/%s %s/", cr2, data_dir, photos[0], data_dir,
             photos[1], dir);
    CHECK(system(cmd) == 0, "%s", cmd);
    const char *src[] = {dir};
    for (int paired = 0; paired < 2; paired++) {
        lumos__train_options o;
        base_options(&o, src);
        o.mode = paired ? LUMOS__TRAIN_PAIRED : LUMOS__TRAIN_UNPAIRED;
        o.steps = 2; /* 4 samples of 3 files (2 in paired mode): each comes up */
        o.preview = paired ? NULL : tmp_path("raw.png");
        o.preview_every = 2;
        lumos__train_result res;
        int rc = lumos__train(ctx, &o, &res);
        CHECK(rc == LUMOS_OK && res.skipped_files == 0, "%s with a RAW file: %s",
              paired ? "paired" : "unpaired", lumos_last_error(ctx));
    }
    /* Its row (the first: "IMG_5952" sorts before the photos) has a
     * classical render and no target. */
    lumos_image img = {0};
    int rc = lumos_image_read(ctx, tmp_path("raw.png"), &img);
    CHECK(rc == LUMOS_OK && img.height == 3 * 64 + 4, "raw preview: %s", lumos_last_error(ctx));
    if (rc == LUMOS_OK) {
        long classic = 0, target = 0;
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64 * 3; x++) {
                const uint8_t *row = (const uint8_t *)img.data + (size_t)y * img.stride;
                classic += row[x];
                target += row[2 * (64 + 2) * 3 + x];
            }
        CHECK(classic > 0 && target == 0, "raw preview row: classical sum %ld, target sum %ld",
              classic, target);
    }
    lumos_image_free(&img);
}

int main(int argc, char **argv)
{
    const char *photo_dir = argc > 1 ? argv[1] : "/usr/lib/python3/dist-packages/skimage/data";
    python = argc > 2 ? argv[2] : NULL;
    const char *cr2 = argc > 3 ? argv[3] : NULL;
    for (int i = 0; i < 4; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", photo_dir, photos[i]);
        if (access(p, R_OK)) {
            printf("[SKIP] %s not found (install python3-skimage)\n", p);
            return 77;
        }
    }
    if (!mkdtemp(tmp)) return 1;
    snprintf(data_dir, sizeof data_dir, "%s/photos", tmp);
    mkdir(data_dir, 0700);
    char cmd[1024];
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd, "ln -s %s/%s %s/", photo_dir, photos[i], data_dir);
        CHECK(system(cmd) == 0, "%s", cmd);
    }
    const char *src[] = {data_dir};

    lumos_ctx *ctx = lumos_ctx_new();
    lumos_ctx_set_threads(ctx, 2);
    test_init(ctx);
    test_outputs_start_alive(ctx);
    test_weights_file(ctx);
    CHECK(lumos__train_terms_parse(ctx, "mse-classic:1,tv:0.1", NULL, &pixel_terms, &n_pixel_terms) == 0,
          "terms: %s", lumos_last_error(ctx));
    test_loss_falls(ctx, src);
    test_lr_schedule(ctx, src);
    test_gan_terms(ctx, src);
    test_every_net(ctx, src);
    test_resume(ctx, src);
    test_ranks(ctx, src);
    test_stop(ctx, src);
    test_bad_file(ctx);
    test_bad_checkpoints(ctx, src);
    test_dead_outputs_noticed(ctx, src);
    test_preview(ctx, src);
    test_raw_item(ctx, cr2);
    for (int i = 0; i < n_pixel_terms; i++) lumos__train_term_free(&pixel_terms[i]);
    free(pixel_terms);
    lumos_ctx_free(ctx);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
