/* trainer.c — the training loop, for any task (train/task.h). See trainer.h.
 *
 * Each step runs in three parts. The loop's thread draws the batch (all the
 * randomness, in one fixed order, through the task); worker threads, one
 * context each, run every sample's forward, loss terms and backward passes
 * into that sample's own gradient buffers; the loop's thread then sums them
 * in sample order and steps Adam. No result depends on which thread did
 * what, so the parameters after N steps are the same for any thread count.
 * With two threads or more, the loop's thread draws the next batch while
 * the workers run (the data do not depend on the parameters); checkpoints
 * then hold the RNG and cursor state from before that prefetch. Across
 * ranks (o->comm), every rank draws the whole batch's randomness in that
 * order but makes only its own samples; of the others' it makes what the
 * loop reads (the task's draw_other), and the ranks check each step that
 * they drew alike. */
#include "train/trainer.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/context.h"
#include "train/checkpoint.h"
#include "train/task.h"
#include "train/unprocess.h" /* lumos__rng_next */

enum {
    MAX_TERMS = 16,
    MAX_BATCH = 1024,
    MAX_WORKERS = 64,
    N_RNG = LUMOS__TASK_MAX_RNG,
    N_CURSOR = LUMOS__TASK_MAX_CURSOR
};

static const double GRAD_NORM_EPS = 1e-12; /* the method's */

/* What travels with the sums of a step across ranks, after the terms' values
 * (sum_terms): a rank failed, a rank was asked to stop, and a 16-bit hash
 * of each rank's streams as drawn and its square (so that every rank can
 * tell, from sums alone, whether all of them drew the same batch). */
enum { FLAG_FAILED, FLAG_STOP, FLAG_DRAWN, FLAG_DRAWN2, N_FLAGS };

/* The training tasks, by name (lumos train --task). */
static const struct {
    const char *name;
    int (*open)(lumos_ctx *ctx, const lumos__train_options *o, lumos__train_task *task);
} tasks[] = {
    {"isp", lumos__isp_task_open},
    {"dereflect", lumos__dereflect_task_open},
};

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
    o->task = "isp";
    o->net = "efficient";
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

/* The opener of task `name`, or NULL. */
static int (*task_opener(const char *name))(lumos_ctx *, const lumos__train_options *,
                                             lumos__train_task *)
{
    for (size_t k = 0; name && k < sizeof tasks / sizeof *tasks; k++)
        if (!strcmp(tasks[k].name, name)) return tasks[k].open;
    return NULL;
}

static int check_options(lumos_ctx *ctx, const lumos__train_options *o)
{
    if (!task_opener(o->task))
        return lumos__fail(ctx, LUMOS_E_ARG, "train: unknown task '%s'", o->task ? o->task : "(null)");
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

/* ---------------------------------------------------------------- a step */

/* One sample's buffers: the task's, and what the step computes. */
typedef struct slot {
    void *sample;               /* the task's */
    lumos__train_sample *view;  /* what the terms see of it */
    float *out, *grad_out;
    float *grad_sum; /* plain_sum tasks: sum_i w_i dL_i/d(out) */
    float *grads; /* n_terms × n_params: dL_i/dθ of this sample (plain_sum: the sum's, in term 0's) */
    float values[MAX_TERMS];
} slot;

typedef struct trainer {
    lumos_ctx *ctx;
    const lumos__train_options *o;
    lumos__train_task task;
    uint64_t rng[N_RNG], cursor[N_CURSOR]; /* as drawn so far */
    /* As of the current batch (before a prefetch): what a checkpoint holds. */
    uint64_t drawn_rng[N_RNG], drawn_cursor[N_CURSOR];

    lumos__train_term *terms;
    int n_terms;
    lumos__train_term *owned_terms; /* the task's defaults, when o->terms is NULL */
    int term_group[MAX_TERMS + 1];  /* Adam groups of term i: [term_group[i], term_group[i+1]) */

    size_t n_params;
    float *weights, *grad;
    lumos__adam adam;

    slot *slots;       /* the batch */
    slot *next;        /* the prefetched batch (NULL: no prefetch) */
    slot *slot_pool;   /* both */
    int n_slots;

    int n_workers;
    lumos_ctx *worker_ctx[MAX_WORKERS];

    /* Across processes (o->comm): this rank's share of each batch, and the
     * buffers and cost of combining them. */
    int rank, ranks;
    double *sums;      /* n_terms × n_params gradient sums, n_terms values, N_FLAGS */
    int with_target;   /* some term has discriminators: every sample's target is needed */
    float *outs;       /* batch × crop² × 3 outputs */
    double comm_seconds, comm_bytes; /* in the collectives; bytes summed a step */

    FILE *log;
    uint64_t step;
    double elapsed_before; /* training time of the runs before a resume */
    double d_loss[MAX_TERMS];
} trainer;

static int slot_alloc(trainer *t, slot *sl)
{
    const size_t px = (size_t)t->o->crop * (size_t)t->o->crop;
    memset(sl, 0, sizeof *sl);
    int rc = t->task.sample_new(t->task.state, t->ctx, &sl->sample, &sl->view);
    if (rc) return rc;
    sl->out = malloc(px * 3 * sizeof(float));
    sl->grad_out = malloc(px * 3 * sizeof(float));
    sl->grads = malloc((size_t)t->n_terms * t->n_params * sizeof(float));
    sl->grad_sum = t->task.plain_sum ? malloc(px * 3 * sizeof(float)) : NULL;
    if (!sl->out || !sl->grad_out || !sl->grads || (t->task.plain_sum && !sl->grad_sum))
        return lumos__fail(t->ctx, LUMOS_E_NOMEM, "train: out of memory for the batch");
    return LUMOS_OK;
}

static void slot_free(trainer *t, slot *sl)
{
    if (sl->sample) t->task.sample_free(sl->sample);
    free(sl->out);
    free(sl->grad_out);
    free(sl->grad_sum);
    free(sl->grads);
    memset(sl, 0, sizeof *sl);
}

int lumos__train_fail_in(lumos_ctx *ctx, int rc, const char *path)
{
    char why[1024];
    snprintf(why, sizeof why, "%s", lumos_last_error(ctx));
    return !path || strstr(why, path) ? rc : lumos__fail(ctx, rc, "%s: %s", path, why);
}

/* Forward, every term's value and dL_i/d(out), and each term's backward
 * (plain_sum: one backward of the weighted sum). */
static int run_sample(const trainer *t, lumos_ctx *ctx, slot *sl)
{
    const lumos__train_task *task = &t->task;
    int rc = task->forward(task->state, ctx, t->weights, sl->sample, sl->out);
    const lumos__train_sample *s = sl->view;
    if (task->plain_sum) {
        const size_t n = (size_t)s->width * s->height * 3;
        memset(sl->grad_sum, 0, n * sizeof *sl->grad_sum);
        memset(sl->grads, 0, (size_t)t->n_terms * t->n_params * sizeof *sl->grads);
        for (int i = 0; rc == LUMOS_OK && i < t->n_terms; i++) {
            const lumos__train_term *term = &t->terms[i];
            rc = term->eval(term->state, ctx, s, sl->out, &sl->values[i], sl->grad_out);
            for (size_t k = 0; rc == LUMOS_OK && k < n; k++)
                sl->grad_sum[k] += term->weight * sl->grad_out[k];
        }
        if (rc == LUMOS_OK)
            rc = task->backward(task->state, ctx, t->weights, sl->sample, sl->grad_sum, sl->grads);
        return rc ? lumos__train_fail_in(ctx, rc, s->path) : LUMOS_OK;
    }
    for (int i = 0; rc == LUMOS_OK && i < t->n_terms; i++) {
        const lumos__train_term *term = &t->terms[i];
        float *grad = sl->grads + (size_t)i * t->n_params;
        rc = term->eval(term->state, ctx, s, sl->out, &sl->values[i], sl->grad_out);
        if (rc == LUMOS_OK && term->weight == 0) { /* logged, not followed */
            memset(grad, 0, t->n_params * sizeof *grad);
        } else if (rc == LUMOS_OK) {
            rc = task->backward(task->state, ctx, t->weights, sl->sample, sl->grad_out, grad);
        }
    }
    return rc ? lumos__train_fail_in(ctx, rc, s->path) : LUMOS_OK;
}

typedef struct work {
    const trainer *t;
    lumos_ctx *ctx;
    int first;
    int rc;
} work;

/* This rank's samples (b % ranks == rank) first, first + n_workers, ... of them. */
static void *work_main(void *arg)
{
    work *w = arg;
    const trainer *t = w->t;
    w->rc = LUMOS_OK;
    for (int j = w->first, b; (b = t->rank + j * t->ranks) < t->o->batch && w->rc == LUMOS_OK;
         j += t->n_workers)
        w->rc = run_sample(t, w->ctx, &t->slots[b]);
    return NULL;
}

/* The batch, drawn in one process's order; of the samples other ranks train
 * on, only what the loop reads of them (the task's draw_other). */
static int draw_batch(trainer *t, slot *batch)
{
    const lumos__train_task *task = &t->task;
    int rc = LUMOS_OK;
    for (int b = 0; b < t->o->batch && rc == LUMOS_OK; b++)
        rc = b % t->ranks == t->rank || !task->draw_other
                 ? task->draw(task->state, t->ctx, t->rng, t->cursor, batch[b].sample)
                 : task->draw_other(task->state, t->ctx, t->rng, t->cursor, t->with_target,
                                    batch[b].sample);
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

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A 16-bit hash of the streams as drawn for this step (the same on every
 * rank when all draw one process's sequence). */
static unsigned drawn_hash(const trainer *t)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int k = 0; k < t->task.n_rng; k++) h = (h ^ t->drawn_rng[k]) * 0x100000001b3ull;
    for (int k = 0; k < t->task.n_cursor; k++) h = (h ^ t->drawn_cursor[k]) * 0x100000001b3ull;
    return (unsigned)((h ^ h >> 16 ^ h >> 32 ^ h >> 48) & 0xffff);
}

/* The batch's gradient and value sums of every term, over this rank's
 * samples (in sample order), then over every rank: into t->sums. */
static int sum_terms(trainer *t, int failed, int *any_failed, int *stop)
{
    const size_t np = t->n_params, nt = (size_t)t->n_terms;
    const int batch = t->o->batch;
    double *sums = t->sums, *values = sums + nt * np, *flags = values + nt;
    if (failed) memset(sums, 0, (nt * np + nt) * sizeof *sums); /* the batch may be half drawn */
    for (size_t i = 0; i < nt && !failed; i++) {
        for (size_t k = 0; k < np; k++) {
            double sum = 0;
            for (int b = t->rank; b < batch; b += t->ranks) sum += t->slots[b].grads[i * np + k];
            sums[i * np + k] = sum;
        }
        double v = 0;
        for (int b = t->rank; b < batch; b += t->ranks) v += t->slots[b].values[i];
        values[i] = v;
    }
    *any_failed = failed;
    if (t->ranks == 1) return LUMOS_OK;
    /* failures and stop requests travel with the sums, so that no rank is
     * left waiting in a collective */
    const double drawn = drawn_hash(t);
    flags[FLAG_FAILED] = failed ? 1 : 0;
    flags[FLAG_STOP] = *stop ? 1 : 0;
    flags[FLAG_DRAWN] = drawn;
    flags[FLAG_DRAWN2] = drawn * drawn; /* < 2^32: the sums are exact */
    const lumos__train_comm *c = t->o->comm;
    double t0 = now_s();
    t->comm_bytes = (double)((nt * np + nt + N_FLAGS) * sizeof *sums +
                             (size_t)batch * t->o->crop * t->o->crop * 3 * sizeof *t->outs);
    int rc = c->sum_f64(c->user, sums, nt * np + nt + N_FLAGS);
    /* the outputs, for the discriminators and the task: each rank's own, zeros elsewhere */
    const size_t px = (size_t)t->o->crop * t->o->crop * 3;
    for (int b = 0; b < batch && rc == LUMOS_OK; b++) {
        if (b % t->ranks == t->rank) memcpy(t->outs + b * px, t->slots[b].out, px * sizeof(float));
        else memset(t->outs + b * px, 0, px * sizeof(float));
    }
    if (rc == LUMOS_OK) rc = c->sum_f32(c->user, t->outs, (size_t)batch * px);
    t->comm_seconds += now_s() - t0;
    if (rc) return lumos__fail(t->ctx, LUMOS_E_IO, "train: the collective across ranks failed");
    for (int b = 0; b < batch; b++)
        if (b % t->ranks != t->rank) memcpy(t->slots[b].out, t->outs + b * px, px * sizeof(float));
    *any_failed = failed || flags[FLAG_FAILED] > 0;
    *stop = *stop || flags[FLAG_STOP] > 0;
    /* The hashes' variance over the ranks, times ranks²: 0 when all agree. */
    if (!*any_failed && t->ranks * flags[FLAG_DRAWN2] != flags[FLAG_DRAWN] * flags[FLAG_DRAWN])
        return lumos__fail(t->ctx, LUMOS_E_ARG,
                           "train: the ranks drew different batches for step %" PRIu64
                           " (did a data file change during the run?)", t->step + 1);
    return LUMOS_OK;
}

/* g = sum_i w_i g_i / (||g_i|| + eps), g_i the batch mean of term i's
 * gradient (the sums of sum_terms); plain_sum: g is term 0's slot, the
 * batch mean of the weighted sum's gradient, and every term reports its
 * norm. Then the generator's Adam step. */
static int generator_step(trainer *t, double *acc, double *value, double *grad_norm)
{
    const size_t np = t->n_params;
    const int batch = t->o->batch;
    const double *sums = t->sums, *values = sums + (size_t)t->n_terms * np;
    double *mean = acc, *total = acc + np;
    memset(total, 0, np * sizeof *total);
    for (int i = 0; i < t->n_terms; i++) {
        double norm2 = 0;
        for (size_t k = 0; k < np; k++) {
            mean[k] = sums[(size_t)i * np + k] / batch;
            norm2 += mean[k] * mean[k];
        }
        value[i] = values[i] / batch;
        if (t->task.plain_sum) {
            grad_norm[i] = i ? grad_norm[0] : sqrt(norm2);
            if (i == 0) memcpy(total, mean, np * sizeof *total);
            continue;
        }
        grad_norm[i] = sqrt(norm2);
        const double f = t->terms[i].weight / (grad_norm[i] + GRAD_NORM_EPS);
        for (size_t k = 0; k < np; k++) total[k] += f * mean[k];
    }
    for (size_t k = 0; k < np; k++) t->grad[k] = (float)total[k];
    t->adam.groups[0].hp.lr = generator_lr(t->o, t->step);
    return lumos__adam_step(t->ctx, &t->adam, 0);
}

/* Every term's discriminator step on this batch, then its groups' Adam step. */
static int discriminator_steps(trainer *t)
{
    const float *fake[MAX_BATCH], *real[MAX_BATCH];
    for (int b = 0; b < t->o->batch; b++) {
        fake[b] = t->slots[b].out;
        real[b] = t->slots[b].view->target;
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

/* The task's look at the batch's outputs. */
static void after_step(trainer *t)
{
    const lumos__train_sample *views[MAX_BATCH];
    const float *outs[MAX_BATCH];
    if (!t->task.after_step) return;
    for (int b = 0; b < t->o->batch; b++) {
        views[b] = t->slots[b].view;
        outs[b] = t->slots[b].out;
    }
    t->task.after_step(t->task.state, t->ctx, t->step, views, outs, t->o->batch);
}

/* ------------------------------------------------------------- previews */

int lumos__train_write_grid(lumos_ctx *ctx, const char *path, const float *const *panels,
                            int rows, int cols, int crop)
{
    enum { GAP = 2 };
    if (rows < 1 || cols < 1) return LUMOS_OK;
    lumos_image grid;
    if (lumos_image_alloc(&grid, cols * crop + (cols - 1) * GAP, rows * crop + (rows - 1) * GAP, 3, 8))
        return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
    memset(grid.data, 128, grid.stride * (size_t)grid.height);
    for (int r = 0; r < rows; r++)
        for (int p = 0; p < cols; p++) {
            const float *src = panels[r * cols + p];
            for (int y = 0; y < crop; y++) {
                uint8_t *o = (uint8_t *)grid.data + (size_t)(r * (crop + GAP) + y) * grid.stride +
                             (size_t)p * (crop + GAP) * 3;
                for (int i = 0; i < 3 * crop; i++) {
                    float v = src ? src[(size_t)y * crop * 3 + i] : 0.f;
                    o[i] = (uint8_t)lrintf(255.f * fminf(fmaxf(v, 0.f), 1.f));
                }
            }
        }
    lumos_write_options wo;
    lumos_write_options_init(&wo);
    wo.format = LUMOS_FORMAT_PNG;
    wo.overwrite = 1;
    int rc = lumos_image_write(ctx, &grid, path, &wo);
    lumos_image_free(&grid);
    return rc;
}

void lumos__train_note_data_change(lumos_ctx *ctx, const char *path, const char *was,
                                   const char *now)
{
    char old[256], is[256];
    lumos__train_meta_value(was, "data", old, sizeof old);
    lumos__train_meta_value(now, "data", is, sizeof is);
    if (strcmp(old, is))
        lumos__notice(ctx, "%s: the train split has changed since the checkpoint (%s, now %s: "
                      "files:hash); the run will not repeat exactly", path, old, is);
}

static int write_preview(trainer *t)
{
    if (!t->task.write_preview) return LUMOS_OK;
    return t->task.write_preview(t->task.state, t->ctx, t->weights, t->o->preview);
}

/* -------------------------------------------------- checkpoints and meta */

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

/* The options a resumed run must share (the task's, then the loop's), and
 * the run's bookkeeping. */
static void meta_text(const trainer *t, double elapsed, char *buf, size_t n)
{
    char terms[1024], task[1024];
    terms_text(t, terms, sizeof terms, 1);
    t->task.meta(t->task.state, t->terms, t->n_terms, task, sizeof task);
    snprintf(buf, n,
             "lumos train 1\ntask=%s\n%scrop=%d\nbatch=%d\nseed=%" PRIu64
             "\nterms=%s\nelapsed=%.3f\n",
             t->o->task, task, t->o->crop, t->o->batch, t->o->seed, terms, elapsed);
}

const char *lumos__train_meta_value(const char *meta, const char *key, char *buf, size_t n)
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

int lumos__train_meta_agree(lumos_ctx *ctx, const char *path, const char *was, const char *now,
                            const char *key, const char *label, const char *was_default)
{
    char old[1024], is[1024];
    lumos__train_meta_value(was, key, old, sizeof old);
    lumos__train_meta_value(now, key, is, sizeof is);
    if (!old[0]) snprintf(old, sizeof old, "%s", was_default);
    if (!strcmp(old, is)) return LUMOS_OK;
    return lumos__fail(ctx, LUMOS_E_ARG, "%s: the checkpoint was made with %s %s, this run has %s %s",
                       path, label, old[0] ? old : "(none)", label, is);
}

static int save_checkpoint(trainer *t, double elapsed)
{
    char meta[2048];
    meta_text(t, elapsed, meta, sizeof meta);
    lumos__checkpoint ck = {t->o->net, t->step, &t->adam, t->drawn_rng, (size_t)t->task.n_rng,
                            t->drawn_cursor, (size_t)t->task.n_cursor, meta};
    return lumos__checkpoint_write(t->ctx, t->o->checkpoint, &ck);
}

static int resume(trainer *t)
{
    const char *path = t->o->checkpoint;
    lumos__checkpoint ck = {t->o->net, 0, &t->adam, t->rng, (size_t)t->task.n_rng, t->cursor,
                            (size_t)t->task.n_cursor, NULL};
    int rc = lumos__checkpoint_read(t->ctx, path, &ck);
    if (rc) return rc;
    char now[2048], was[1024], is[1024];
    meta_text(t, 0, now, sizeof now);
    /* The options that shape the state (and the data order) must agree. */
    rc = lumos__train_meta_agree(t->ctx, path, ck.meta, now, "task", "the task", "isp");
    if (rc == LUMOS_OK) rc = t->task.check_resume(t->task.state, t->ctx, path, ck.meta, now);
    static const char *const keys[][2] = {
        {"crop", "the crop"}, {"batch", "the batch"}, {"seed", "the seed"}};
    for (size_t k = 0; rc == LUMOS_OK && k < sizeof keys / sizeof *keys; k++)
        rc = lumos__train_meta_agree(t->ctx, path, ck.meta, now, keys[k][0], keys[k][1], "");
    if (rc == LUMOS_OK) {
        char names[1024];
        terms_text(t, names, sizeof names, 0);
        lumos__train_meta_value(ck.meta, "terms", was, sizeof was);
        /* Names must agree (they are the log's columns and the groups);
         * weights may be changed on purpose. */
        char was_names[1024];
        strip_weights(was, was_names, sizeof was_names);
        lumos__train_meta_value(now, "terms", is, sizeof is);
        if (strcmp(was_names, names))
            rc = lumos__fail(t->ctx, LUMOS_E_ARG,
                             "%s: the checkpoint was made with the loss terms %s, this run has %s",
                             path, was, is);
        else if (strcmp(was, is))
            lumos__notice(t->ctx, "%s: loss weights changed from %s to %s", path, was, is);
    }
    if (rc == LUMOS_OK) {
        t->elapsed_before = atof(lumos__train_meta_value(ck.meta, "elapsed", was, sizeof was));
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

/* ------------------------------------------------------------ set-up */

static int setup_terms(trainer *t)
{
    const lumos__train_options *o = t->o;
    if (o->n_terms) {
        t->terms = (lumos__train_term *)o->terms; /* read only */
        t->n_terms = o->n_terms;
    } else {
        int rc = t->task.default_terms(t->task.state, t->ctx, &t->owned_terms, &t->n_terms);
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
        int rc = t->task.check_term(t->task.state, t->ctx, term);
        if (rc) return rc;
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
    t->n_params = t->task.n_params;
    t->weights = malloc(t->n_params * sizeof *t->weights);
    t->grad = calloc(t->n_params, sizeof *t->grad);
    if (!t->weights || !t->grad) return lumos__fail(t->ctx, LUMOS_E_NOMEM, "train: out of memory");
    if (o->init && !o->resume) return t->task.load_params(t->task.state, t->ctx, o->init, t->weights);
    /* Its own stream, so the data draws do not depend on the init. */
    uint64_t r = o->seed ^ 0x696E6974ull; /* "init" */
    lumos__rng_next(&r);
    if (o->init) lumos__notice(t->ctx, "%s: not read: resuming from %s", o->init, o->checkpoint);
    return t->task.init_params(t->task.state, t->ctx, &r, t->weights);
}

static int setup(trainer *t)
{
    const lumos__train_options *o = t->o;
    int rc = task_opener(o->task)(t->ctx, o, &t->task); /* check_options found it */
    if (rc) return rc;
    if (t->task.n_rng > N_RNG || t->task.n_cursor > N_CURSOR)
        return lumos__fail(t->ctx, LUMOS_E_ARG, "train: the task has too many random streams");
    /* The data streams start from the seed; a checkpoint replaces them. */
    uint64_t r = o->seed;
    for (int k = 0; k < t->task.n_rng; k++) t->rng[k] = lumos__rng_next(&r);
    if ((rc = setup_terms(t)) || (rc = setup_weights(t)) || (rc = setup_optimizer(t))) return rc;
    if (o->resume && (rc = resume(t))) return rc;
    if (t->step >= o->steps)
        lumos__notice(t->ctx, "%s: already at step %" PRIu64 " of %" PRIu64 ": nothing to train",
                      o->checkpoint, t->step, o->steps);

    t->rank = o->comm ? o->comm->rank : 0;
    t->ranks = o->comm ? o->comm->size : 1;
    if (t->ranks < 1 || t->rank < 0 || t->rank >= t->ranks || t->ranks > o->batch)
        return lumos__fail(t->ctx, LUMOS_E_ARG, "train: rank %d of %d, for a batch of %d", t->rank,
                           t->ranks, o->batch);
    const int share = (o->batch + t->ranks - 1) / t->ranks; /* this rank's samples, at most */
    t->sums = malloc(((size_t)t->n_terms * t->n_params + (size_t)t->n_terms + N_FLAGS) *
                     sizeof *t->sums);
    for (int i = 0; i < t->n_terms; i++) t->with_target |= t->terms[i].d_step != NULL;
    t->outs = t->ranks > 1 ? malloc((size_t)o->batch * o->crop * o->crop * 3 * sizeof *t->outs) : NULL;
    if (!t->sums || (t->ranks > 1 && !t->outs))
        return lumos__fail(t->ctx, LUMOS_E_NOMEM, "train: out of memory");
    int threads = o->threads ? o->threads : lumos__cpu_count();
    t->n_workers = threads < share ? threads : share;
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
    for (int b = 0; b < pool && rc == LUMOS_OK; b++) rc = slot_alloc(t, &t->slot_pool[b]);
    if (rc == LUMOS_OK && o->preview && t->task.prepare_preview)
        rc = t->task.prepare_preview(t->task.state, t->ctx, o->preview);
    if (rc == LUMOS_OK && o->log) rc = open_log(t);
    return rc;
}

static void teardown(trainer *t)
{
    if (t->log) fclose(t->log);
    for (int b = 0; b < t->n_slots; b++) slot_free(t, &t->slot_pool[b]);
    free(t->slot_pool);
    for (int k = 0; k < t->n_workers; k++) lumos_ctx_free(t->worker_ctx[k]);
    for (int i = 0; t->owned_terms && i < t->n_terms; i++)
        lumos__train_term_free(&t->owned_terms[i]);
    free(t->owned_terms);
    lumos__adam_free(&t->adam);
    free(t->weights);
    free(t->grad);
    free(t->sums);
    free(t->outs);
    if (t->task.close) t->task.close(t->task.state);
}

/* ----------------------------------------------------------------- loop */


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

    const int writer = t.rank == 0; /* the one rank that reports and writes */
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
    /* A draw's failure waits for the step's collective, which tells every
     * rank (each rank makes only its own samples, so it may fail alone). */
    int draw_rc = LUMOS_OK;
    if (rc == LUMOS_OK && t.step < o->steps) draw_rc = draw_batch(&t, t.slots);
    while (rc == LUMOS_OK && t.step < o->steps) {
        /* The state a checkpoint of this step holds: the next batch is
         * drawn again on resume. */
        memcpy(t.drawn_rng, t.rng, sizeof t.rng);
        memcpy(t.drawn_cursor, t.cursor, sizeof t.cursor);
        int prefetch = !draw_rc && t.next && t.step + 1 < o->steps && !(o->stop && *o->stop);
        int batch_rc = draw_rc ? draw_rc : run_batch(&t, prefetch), failed = 0,
            agreed_stop = o->stop && *o->stop;
        rc = sum_terms(&t, batch_rc != LUMOS_OK, &failed, &agreed_stop);
        if (rc == LUMOS_OK && failed)
            rc = batch_rc ? batch_rc
                          : lumos__fail(ctx, LUMOS_E_ARG, "train: another rank failed at step %" PRIu64
                                        " (its own message says why)", t.step + 1);
        if (rc == LUMOS_OK) rc = generator_step(&t, acc, value, grad_norm);
        if (rc) break;
        t.step++;
        after_step(&t);
        if (t.step % (uint64_t)o->d_every == 0 && (rc = discriminator_steps(&t))) break;

        double now = now_s();
        r.step = t.step;
        r.lr_g = t.adam.groups[0].hp.lr;
        r.elapsed_s = t.elapsed_before + (now - start);
        r.steps_per_s = (double)(t.step - res->first_step) / (now - start);
        if (writer && o->on_step) o->on_step(o->user, &r);
        if (writer && t.log && (rc = log_row(&t, &r))) break;
        /* One process sees a stop request as soon as it comes (on_step's
         * included); ranks, as they agreed in the step's collective. */
        const int stopping = t.ranks > 1 ? agreed_stop : o->stop && *o->stop;
        int last = t.step == o->steps || stopping;
        if (writer && o->progress && (tty ? now - last_draw >= 0.25 || last
                                          : t.step % (uint64_t)o->report_every == 0 || last)) {
            progress_line(&r, tty);
            last_draw = now;
        }
        if (o->preview && t.step % (uint64_t)o->preview_every == 0) {
            if (writer && (rc = write_preview(&t))) break;
            previewed_at = t.step;
        }
        if (o->checkpoint && t.step % (uint64_t)o->checkpoint_every == 0) {
            if (writer && (rc = save_checkpoint(&t, r.elapsed_s))) break;
            saved_at = t.step;
        }
        if (stopping) {
            res->interrupted = t.step < o->steps;
            break;
        }
        if (prefetch) {
            slot *drawn = t.next;
            t.next = t.slots;
            t.slots = drawn;
        } else if (t.step < o->steps) {
            draw_rc = draw_batch(&t, t.slots);
        }
    }
    if (writer && tty && t.step > res->first_step) fputc('\n', stderr);
    const double elapsed = t.elapsed_before + (now_s() - start);
    /* The end (or a stop): the state as it is now, once. */
    if (writer && rc == LUMOS_OK && o->preview && previewed_at != t.step) rc = write_preview(&t);
    if (writer && rc == LUMOS_OK && o->checkpoint && saved_at != t.step)
        rc = save_checkpoint(&t, elapsed);
    if (writer && rc == LUMOS_OK && o->out)
        rc = t.task.write_params(t.task.state, ctx, t.weights, t.step, o->out);
    res->step = t.step;
    res->skipped_files = t.task.skipped ? t.task.skipped(t.task.state) : 0;
    res->seconds = now_s() - start;
    res->seconds_per_step =
        t.step > res->first_step ? res->seconds / (double)(t.step - res->first_step) : 0;
    res->comm_seconds = t.comm_seconds;
    res->comm_bytes = t.comm_bytes;
    free(acc);
    teardown(&t);
    return rc;
}

