/* adam.h — Adam over flat float arrays, as torch.optim.Adam computes it.
 *
 * Parameters live in groups (a network's weights, say: the generator in one
 * group, each discriminator in another), each with its own hyper-parameters
 * and step count, so the trainer can step the discriminators every k
 * generator steps. Params and grads belong to the caller; the moments m and
 * v belong to the optimizer and are allocated on a group's first step (one
 * block per group), so an optimizer that never steps a group costs nothing.
 *
 * One step of a group, step count t (after increment), in float as PyTorch:
 *   g  = grad + weight_decay * p          (L2, as torch's Adam, not AdamW)
 *   m  = beta1 * m + (1 - beta1) * g
 *   v  = beta2 * v + (1 - beta2) * g * g
 *   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * The bias corrections are computed in double, as Python floats are. */
#ifndef LUMOS_TRAIN_ADAM_H
#define LUMOS_TRAIN_ADAM_H

#include <stddef.h>
#include <stdint.h>

#include "lumos.h"

/* Longest group name, without the NUL; names end up in checkpoint section
 * names ("adam.<name>.params"). */
enum { LUMOS__ADAM_NAME_MAX = 40 };

/* Doubles, like the Python floats torch takes, so that (1 - beta1) etc.
 * round to float the way torch's do. */
typedef struct lumos__adam_hparams {
    double lr;
    double beta1, beta2; /* in [0, 1) */
    double eps;          /* >= 0, added to sqrt(v_hat) */
    double weight_decay; /* >= 0; 0 = none */
} lumos__adam_hparams;

typedef struct lumos__adam_group {
    char name[LUMOS__ADAM_NAME_MAX + 1];
    lumos__adam_hparams hp; /* may be changed between steps (schedules) */
    float *params;          /* n, caller-owned */
    float *grads;           /* n, caller-owned; read by a step */
    size_t n;
    float *m, *v;           /* n each, one allocation; NULL before the first step */
    uint64_t step;          /* steps taken by this group */
} lumos__adam_group;

typedef struct lumos__adam {
    lumos__adam_group *groups;
    size_t count;
} lumos__adam;

/* torch.optim.Adam's defaults with the given lr: betas (0.9, 0.999),
 * eps 1e-8, no weight decay. */
lumos__adam_hparams lumos__adam_hparams_default(double lr);

/* An empty optimizer (no allocation). */
void lumos__adam_init(lumos__adam *opt);
/* Adds a group; its index is opt->count - 1 after the call. The name must
 * be 1..LUMOS__ADAM_NAME_MAX printable ASCII characters without spaces,
 * unique in opt. LUMOS_E_ARG on a bad name or hyper-parameter. */
int lumos__adam_add_group(lumos_ctx *ctx, lumos__adam *opt, const char *name,
                          const lumos__adam_hparams *hp, float *params, float *grads, size_t n);
/* The index of the group called name, or -1. */
int lumos__adam_find(const lumos__adam *opt, const char *name);
/* Allocates a group's zeroed moments now if it has none (a first step, or
 * a checkpoint being read into it). */
int lumos__adam_alloc_state(lumos_ctx *ctx, lumos__adam_group *g);
/* One step of group `group`, or of every group when group < 0. */
int lumos__adam_step(lumos_ctx *ctx, lumos__adam *opt, int group);
/* Frees the moments and the group table (not params or grads); *opt is
 * left empty. */
void lumos__adam_free(lumos__adam *opt);

#endif
