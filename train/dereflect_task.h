/* dereflect_task.h — the reflection-removal training task's held-out pairs,
 * for the quality benchmark (bench/dereflect_quality.c) and the previews.
 * The task itself opens through train/task.h. */
#ifndef LUMOS_TRAIN_DEREFLECT_TASK_H
#define LUMOS_TRAIN_DEREFLECT_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "lumos.h"
#include "train/data.h"

/* The task's loss terms when --terms is not given. */
const char *lumos__dereflect_default_terms(void);

/* Held-out pair i of the dataset's test split, size × size: T a view of
 * test photo i, R of photo i + 1 (the next ones while Zhang's rules reject
 * the pair), the view and the synthesis drawn from seed ^ FNV-1a of T's
 * split key, so one (seed, photo) gives one pair wherever the files lie.
 * in: the mixture I the network sees; target: T. */
int lumos__dereflect_heldout_make(lumos_ctx *ctx, const lumos__dataset *ds, size_t i, int size,
                                  uint64_t seed, float *in, float *target);

#endif
