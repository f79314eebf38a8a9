/* task.h — a training task: what the training loop (train/trainer.c) asks
 * of the network, the data and the samples it trains on.
 *
 * The loop knows no network: it runs batches on worker threads, normalises
 * each loss term's gradient, steps Adam (the network's group and the terms'
 * own), runs the discriminators every d_every steps, follows the rate
 * schedule, and keeps the progress line, the CSV log, the previews'
 * schedule, checkpoints and resuming, and Ctrl-C. A task draws samples from
 * its own random streams and data cursors (the loop seeds and checkpoints
 * them), runs its network forward and backward, and initialises, loads and
 * writes its parameters. The learned ISP is one (train/isp_task.c). */
#ifndef LUMOS_TRAIN_TASK_H
#define LUMOS_TRAIN_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "train/trainer.h"

enum { LUMOS__TASK_MAX_RNG = 8, LUMOS__TASK_MAX_CURSOR = 8 };

typedef struct lumos__train_task {
    void *state;
    size_t n_params;
    int n_rng, n_cursor; /* its random streams and data cursors, <= LUMOS__TASK_MAX_* */
    /* 0: the unpaired method's step, each term's gradient normalised by its
     * own norm (trainer.h); 1: the usual weighted sum of the terms, whose
     * output gradients are summed for one backward per sample. */
    int plain_sum;

    /* Its default loss terms (when the options give none), and whether a
     * given term suits it. */
    int (*default_terms)(void *state, lumos_ctx *ctx, lumos__train_term **terms, int *n);
    int (*check_term)(void *state, lumos_ctx *ctx, const lumos__train_term *term);

    /* Parameters: a fresh start from *rng, or a weights file (--init); and
     * the weights file written at the end. */
    int (*init_params)(void *state, lumos_ctx *ctx, uint64_t *rng, float *params);
    int (*load_params)(void *state, lumos_ctx *ctx, const char *path, float *params);
    int (*write_params)(void *state, lumos_ctx *ctx, const float *params, uint64_t step,
                        const char *path);

    /* A sample's buffers; *view is what the loss terms see of it, and its
     * network output has view->width × view->height × 3 floats. */
    int (*sample_new)(void *state, lumos_ctx *ctx, void **sample, lumos__train_sample **view);
    void (*sample_free)(void *sample);
    /* The next training sample, from the random streams and cursors (which
     * advance); on the loop's thread, in one fixed order. */
    int (*draw)(void *state, lumos_ctx *ctx, uint64_t *rng, uint64_t *cursor, void *sample);
    /* Optional (NULL: draw): the next sample when another rank trains on it
     * (the loop's comm). The streams and cursors must advance exactly as
     * draw advances them, so that every rank draws one process's sequence;
     * of the sample, only the view's size, and its target when with_target
     * (the discriminators' real images), need be made: the expensive rest
     * (decoding, rendering) may be left out. */
    int (*draw_other)(void *state, lumos_ctx *ctx, uint64_t *rng, uint64_t *cursor,
                      int with_target, void *sample);
    /* On worker threads (a context each): the network's output, and dL/dθ
     * from dL/d(output) (overwriting grad_params). */
    int (*forward)(void *state, lumos_ctx *ctx, const float *params, void *sample, float *out);
    int (*backward)(void *state, lumos_ctx *ctx, const float *params, void *sample,
                    const float *grad_out, float *grad_params);

    /* After each step, on the batch's outputs (e.g. a dead-output watch). */
    void (*after_step)(void *state, lumos_ctx *ctx, uint64_t step,
                       const lumos__train_sample *const *views, const float *const *outs,
                       int count);

    /* "key=value\n" lines of what a checkpoint must agree on, and the check
     * of a checkpoint's meta against them (resume). */
    void (*meta)(void *state, const lumos__train_term *terms, int n_terms, char *buf, size_t n);
    int (*check_resume)(void *state, lumos_ctx *ctx, const char *path, const char *was,
                        const char *now);

    /* The preview image (optional): made ready once, written with the
     * current parameters. */
    int (*prepare_preview)(void *state, lumos_ctx *ctx, const char *path);
    int (*write_preview)(void *state, lumos_ctx *ctx, const float *params, const char *path);

    size_t (*skipped)(void *state); /* bad data files met */
    void (*close)(void *state);
} lumos__train_task;

/* The learned-ISP task (train/isp_task.c) for the options' network, mode,
 * input and data. */
int lumos__isp_task_open(lumos_ctx *ctx, const lumos__train_options *o, lumos__train_task *task);

/* The reflection-removal task (train/dereflect_task.c): pairs synthesised
 * from the options' photos (train/reflect_synth.h) for a dereflect network. */
int lumos__dereflect_task_open(lumos_ctx *ctx, const lumos__train_options *o,
                               lumos__train_task *task);

/* Fails with rc, the context's error prefixed with the file it concerns
 * (unless it names it already; path NULL: as it is). */
int lumos__train_fail_in(lumos_ctx *ctx, int rc, const char *path);

/* lumos__train_terms_parse of spec with the options' feature networks and
 * seed (a task's default terms). */
int lumos__train_terms_of_options(lumos_ctx *ctx, const lumos__train_options *o, const char *spec,
                                  lumos__train_term **terms, int *n);

/* A preview: rows × cols panels of crop × crop float RGB (0..1, row-major
 * panels, NULL a black one) with grey gaps, written as PNG atomically. */
int lumos__train_write_grid(lumos_ctx *ctx, const char *path, const float *const *panels,
                            int rows, int cols, int crop);

/* Says through the notice when the "data" key (files:hash of the train
 * split) of a checkpoint's meta differs from this run's. */
void lumos__train_note_data_change(lumos_ctx *ctx, const char *path, const char *was,
                                   const char *now);

/* The value of "key=" in meta into buf ("" if absent); returns buf. */
const char *lumos__train_meta_value(const char *meta, const char *key, char *buf, size_t n);

/* LUMOS_E_ARG naming path when key's value in `was` (or was_default when
 * absent) differs from its value in `now`: "made with LABEL X, this run
 * has LABEL Y". */
int lumos__train_meta_agree(lumos_ctx *ctx, const char *path, const char *was, const char *now,
                            const char *key, const char *label, const char *was_default);

#endif
