/* trainer.h — the training loop (`lumos train`), for any task (train/task.h;
 * the learned ISP, train/isp_task.c, is the one so far).
 *
 * One step: a batch of B samples is drawn by the task, each is run through
 * the network, every loss term is evaluated on the output and
 * back-propagated separately, and the network takes one Adam step on
 *
 *     g = sum_i w_i * g_i / (||g_i|| + 1e-12),   g_i = mean over the batch of dL_i/dθ
 *
 * (the method normalises each term by the norm of its own gradient, so a
 * term's weight is its share of the direction, whatever its scale). Terms
 * with a discriminator take their own step every `d_every` generator steps.
 *
 * Reproducibility. All randomness comes from splitmix64 states derived from
 * the seed (weights, the task's data streams), so one seed gives one run,
 * bit for bit, whatever the thread count. A checkpoint holds the Adam
 * groups (weights and moments), the task's RNG states and data cursors; a
 * run resumed from it continues exactly as the uninterrupted run would
 * have. */
#ifndef LUMOS_TRAIN_TRAINER_H
#define LUMOS_TRAIN_TRAINER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "lumos.h"
#include "stages/nets.h"
#include "train/adam.h"

typedef enum lumos__train_mode {
    LUMOS__TRAIN_UNPAIRED = 0, /* RAW side and target photo are unrelated */
    LUMOS__TRAIN_PAIRED = 1    /* the target is the photo the mosaic was made from */
} lumos__train_mode;

/* One training sample, as the loss terms see it (the ISP task's fields; a
 * task embeds it in its own sample). Images are width×height×3 floats,
 * rows packed, sRGB-encoded values in [0, 1]; the network's output has the
 * same shape. */
typedef struct lumos__train_sample {
    int width, height;
    const uint16_t *mosaic;   /* width×height, rows packed */
    lumos_raw_info info;      /* its CFA, levels, white balance, matrix */
    const float *classic;     /* the classical render of the mosaic */
    const float *target;      /* paired: aligned; unpaired: another photo's crop */
    const float *input;       /* an image-to-image task's network input (dereflect: the
                                 photo with the reflection), or NULL */
    int aligned;              /* 1: target shows the mosaic's scene, pixel for pixel */
    const char *path;         /* the file the mosaic came from */
    const char *target_path;
} lumos__train_sample;

/* A named parameter block of a term (a discriminator's weights): added to
 * the trainer's Adam (lr_d, the generator's betas), saved in checkpoints and
 * stepped after each d_step, which fills `grads`. */
typedef struct lumos__train_params {
    const char *name; /* unique among the trainer's groups ("G" is the generator) */
    float *params, *grads;
    size_t n;
} lumos__train_params;

/* A loss term. eval may run on several threads at once (one sample each,
 * with that thread's context): it must not change shared state. */
typedef struct lumos__train_term {
    char name[32];
    float weight;
    int needs_aligned_target; /* paired mode only (l1) */
    void *state;
    /* The term's value on one sample's network output `out` and
     * dL/d(out) in grad_out (both width×height×3, overwritten). */
    int (*eval)(void *state, lumos_ctx *ctx, const lumos__train_sample *s, const float *out,
                float *value, float *grad_out);
    /* Optional: one discriminator step on a batch of `count` network
     * outputs (fakes) and targets (reals); fills the grads of `groups` and
     * the discriminator's loss. Called on the trainer's thread. */
    int (*d_step)(void *state, lumos_ctx *ctx, const float *const *fake, const float *const *real,
                  int count, int width, int height, float *d_loss);
    const lumos__train_params *groups;
    size_t n_groups;
    void (*free)(void *state); /* optional; called by lumos__train_term_free */
} lumos__train_term;

/* A built-in term: "l1" (paired: mean |out - target|), "tv" (total
 * variation of out), "mse-classic" (mean squared distance to the classical
 * render: a stand-in for the method's content term). LUMOS_E_ARG names the
 * known ones when `name` is none of them. */
int lumos__train_term_builtin(lumos_ctx *ctx, const char *name, float weight,
                              lumos__train_term *out);
void lumos__train_term_free(lumos__train_term *t);

/* What each step reports (to on_step, the progress line and the log). */
typedef struct lumos__train_report {
    uint64_t step, steps;     /* steps done (resumed ones included), the goal */
    double elapsed_s;         /* training time, resumed runs' included */
    double steps_per_s;       /* this run's rate */
    int n_terms;
    const lumos__train_term *terms;
    const double *value;      /* batch mean of each term */
    const double *grad_norm;  /* ||g_i|| of each term (before normalising) */
    const double *d_loss;     /* last discriminator loss of each term (0 without) */
    double lr_g;
} lumos__train_report;

/* Training across processes (e.g. MPI ranks; the library itself links no
 * MPI: the caller gives the collective). Every rank draws the whole batch's
 * randomness (one data stream, as one process would draw it) but makes the
 * samples (decoding, unprocessing, rendering) and runs the network forward
 * and backward only for its share (samples b with b % size == rank); the
 * loop then sums the terms' gradients and values over the ranks and
 * gathers the outputs, so every rank takes the same Adam and discriminator
 * steps. Rank 0 alone reports and writes (log, previews, checkpoints,
 * weights); every rank reads a checkpoint to resume. */
typedef struct lumos__train_comm {
    int rank, size;
    /* In place, over n elements: their sum over every rank. All ranks call
     * it in the same order; nonzero on failure. */
    int (*sum_f64)(void *user, double *buf, size_t n);
    int (*sum_f32)(void *user, float *buf, size_t n);
    void *user;
} lumos__train_comm;

typedef struct lumos__train_options {
    const char *task;              /* "isp" (default): train/task.h */
    const char *net;               /* the network: a learned ISP's name, "efficient" (default) */
    lumos__train_mode mode;        /* the ISP task's (and its input and feature networks) */
    lumos_net_input input;         /* SENSOR (default): the mosaic as is; AGNOSTIC: the
                                      canonical mosaic of pipeline/agnostic.h */
    const char *const *sources;    /* lumos__dataset_open's sources */
    int n_sources;
    const char *out;               /* final weights (safetensors), NULL: none */
    const char *init;              /* initial weights (safetensors), NULL: PyTorch's init */
    const char *features;          /* MobileNetV2 safetensors for the default unpaired
                                      terms (train/fetch-mobilenet.sh); NULL: a random
                                      network of its shape (tests only) */
    const char *content_features;  /* VGG-19 safetensors (torchvision) for the default
                                      terms' content term; NULL: MobileNetV2 */
    uint64_t steps;                /* total steps (a resumed run continues to it) */
    int batch, crop;               /* B (8), crop side (128, even) */
    double lr_g, lr_d;             /* 5e-4, 1e-5 */
    double lr_g_final;             /* 0: lr_g throughout; else the generator's rate
                                      falls from lr_g at step 0 to this at `steps`
                                      along a half cosine */
    double beta1, beta2;           /* 0.5, 0.9: the method's */
    int d_every;                   /* discriminator steps every K generator steps (10) */
    uint64_t seed;                 /* 1 */
    int threads;                   /* samples processed at once (0: every core) */
    size_t cache_mb;               /* decoded photos kept for their next visit (0: none;
                                      default lumos__train_default_cache_mb()) */
    const lumos__train_term *terms;/* NULL: lumos__train_default_terms(mode) */
    int n_terms;
    const char *log;               /* CSV log, appended on resume; NULL: none */
    const char *preview;           /* PNG grid of held-out crops; NULL: none */
    int preview_every;             /* steps (500) */
    const char *checkpoint;        /* NULL: none */
    int checkpoint_every;          /* steps (500); also written at the end and on stop */
    int resume;                    /* continue from `checkpoint` */
    int progress;                  /* 1: progress lines on stderr */
    int report_every;              /* steps between progress lines off a terminal (10) */
    volatile sig_atomic_t *stop;   /* when set (a signal handler): end after this step
                                      (with `comm`: when any rank's is set) */
    const lumos__train_comm *comm; /* NULL: one process */
    void (*on_step)(void *user, const lumos__train_report *r);
    void *user;
} lumos__train_options;

/* The defaults above; task "isp", net "efficient", mode UNPAIRED, no sources. */
void lumos__train_options_init(lumos__train_options *o);

/* The default terms of a mode: unpaired, the method's "content:1,tv:1,
 * texture:1,colour:1" (train/adversarial.h; every term normalised by its
 * own gradient norm, then weighted 1); paired "l1:1,perceptual:1" (L1 and
 * features against the aligned photo). */
const char *lumos__train_default_terms(lumos__train_mode mode);

/* Parses "name[:weight],..." into terms (*out malloc'ed, *n terms; free
 * each with lumos__train_term_free, then free(*out)): the built-in ones and
 * the feature-space "content", "texture", "colour", which need `gan` (the
 * feature network and the discriminators' seed; NULL: they are refused). */
struct lumos__gan_options;
int lumos__train_terms_parse(lumos_ctx *ctx, const char *spec, const struct lumos__gan_options *gan,
                             lumos__train_term **out, int *n);

typedef struct lumos__train_result {
    uint64_t step;            /* steps done in total */
    uint64_t first_step;      /* the step this run started from (0, or the checkpoint's) */
    int interrupted;          /* stopped by opts->stop before the goal */
    size_t skipped_files;     /* bad data files met (each counted once) */
    double seconds;           /* this run's training time */
    double seconds_per_step;  /* its mean */
    double comm_seconds;      /* with comm: time in the collectives, this run */
    double comm_bytes;        /* with comm: bytes summed over the ranks per step */
} lumos__train_result;

/* Trains per o. Errors (bad options, unreadable data, a damaged or
 * mismatched checkpoint, a failed write) return their status with the file
 * and reason in lumos_last_error; bad data files are skipped, reported
 * through the context's notice and counted. On success, or when stopped
 * (res->interrupted), the checkpoint and the weights have been written. */
int lumos__train(lumos_ctx *ctx, const lumos__train_options *o, lumos__train_result *res);

/* A quarter of this machine's memory in MB (2048 when unknown): the photo
 * cache's default. The 335 photos of train/fetch-data.sh take ~4 GB; a
 * photo not cached is decoded again at each visit, which can cost more
 * than the step's losses. */
size_t lumos__train_default_cache_mb(void);

/* PyTorch's default Conv2d init (kaiming_uniform_(a=sqrt(5)): weight and
 * bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))) of network `net` into flat
 * (lumos__net_weight_count floats), from *rng (which advances). */
int lumos__train_init_weights(lumos_ctx *ctx, const lumos__net_def *net, uint64_t *rng, float *flat);

/* The same for every conv weight (4-D) and its bias; every other tensor
 * is set to 0 for the caller to initialise. */
int lumos__train_init_weights_conv_default(lumos_ctx *ctx, const lumos__net_def *net,
                                           uint64_t *rng, float *flat);

/* EfficientISP and RobustISP emit the image through a ReLU: an output unit
 * whose input is negative for every pixel stays black for good, one phase
 * of one colour (a 2×2 pattern and a cast); PyTorch's init starts some so.
 * Their last bias is set to 0.5 (mid-grey) so every output starts alive; a
 * no-op for the other networks. */
void lumos__train_start_outputs_alive(const lumos__net_def *net, float *flat);

/* Network net's weights `flat` as safetensors, state_dict names (atomic
 * write), with the metadata format "pt", lumos_net (its name), lumos_step
 * and the key/value pairs of meta (NULL-terminated; NULL: none). */
int lumos__train_write_net(lumos_ctx *ctx, const lumos__net_def *net, const float *flat,
                           uint64_t step, const char *const *meta, const char *path);

/* A learned ISP's weights (lumos__train_write_net);
 * the metadata say what the network sees (lumos_input; lumos_exposure
 * "input": the mosaic brightened by the exposure, lumos_isp_learned) and
 * the step. */
int lumos__train_write_weights(lumos_ctx *ctx, const lumos__net_def *net, lumos_net_input input,
                               const float *flat, uint64_t step, const char *path);

/* ---- held-out samples (bench/isp_quality): the test split as the
 * training sees a photo, for scoring the networks against ground truth */

struct lumos__item; /* train/data.h */

/* A photo's held-out sample: the same sample-making code path as training
 * (make_side: unprocessing with gains and noise drawn by
 * lumos__unprocess_sample, the classical render of trainer.h), on a fixed
 * crop with fixed parameters. */
typedef struct lumos__train_heldout {
    int size;                 /* side of the square crop */
    uint16_t *mosaic;         /* size×size, rows packed (stride size * 2 bytes) */
    lumos_raw_info info;      /* its CFA, levels, white balance, matrix */
    float black[4], scale[4]; /* the levels as lumos__stage_learned takes them,
                               * scale with the exposure (rgb_gain) in it */
    int cfa_x, cfa_y;
    float *classic;           /* the classical render (unpaired content target), size×size×3 */
    float *truth;             /* the photo crop itself (sRGB, [0, 1]), size×size×3 */
    /* What the unprocessing drew: gains and noise (variance shot * x + read). */
    float rgb_gain, red_gain, blue_gain, shot_noise, read_noise;
} lumos__train_heldout;

/* The held-out sample of photo `it` (a LUMOS__ITEM_PHOTO): the centre crop
 * of size × size (even offsets, no flips: the training preview's crop),
 * unprocessed with parameters drawn from the RNG state seed ^ FNV-1a of the
 * photo's split key (lumos__split_key: its name, not its folder), so one
 * (seed, photo) gives one sample wherever the file lies. LUMOS_E_ARG for a
 * RAW item, an odd size or a photo smaller than the crop. Free with
 * lumos__train_heldout_free. */
int lumos__train_heldout_make(lumos_ctx *ctx, const struct lumos__item *it, int size,
                              uint64_t seed, lumos__train_heldout *out);
void lumos__train_heldout_free(lumos__train_heldout *h);

#endif
