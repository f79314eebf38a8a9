/* files.h — the train split's files as a task visits them: each in a
 * shuffled order epoch by epoch (a stream, whose position is all a
 * checkpoint keeps), bad files reported once and passed over from then on,
 * each file's size noted once it has been read. The ISP task
 * (train/isp_task.c) and the dereflect task (train/dereflect_task.c) draw
 * their photos through it. */
#ifndef LUMOS_TRAIN_FILES_H
#define LUMOS_TRAIN_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "lumos.h"
#include "train/data.h"

typedef struct lumos__train_files {
    lumos_ctx *ctx;     /* the loop's: errors and notices */
    lumos__dataset *ds;
    uint64_t seed;      /* the streams' orders derive from it */
    size_t n_train;
    unsigned char *bad; /* per train item: known unreadable (reported once) */
    int (*size)[2];     /* per train item: its width and height once loaded ({0, 0} before) */
    size_t skipped;     /* bad files met */
    uint64_t hash;      /* of the train split's names: a resume notes a change */
} lumos__train_files;

/* The sources' dataset (lumos__dataset_open), with a photo cache of
 * cache_mb. */
int lumos__train_files_open(lumos_ctx *ctx, const char *const *sources, int n_sources,
                            size_t cache_mb, uint64_t seed, lumos__train_files *f);
void lumos__train_files_close(lumos__train_files *f);

/* A loaded item's width and height (a RAW file's: its mosaic's). */
void lumos__train_item_size(const lumos__item *it, int *w, int *h);

/* Reports train item i as skipped (once) for the reason why. */
void lumos__train_files_mark_bad(lumos__train_files *f, size_t i, const char *why);

/* A cursor through a list of the train split's items, visited epoch by
 * epoch, each epoch in its own shuffled order (from the seed and the
 * stream's salt, so the order is not part of a checkpoint). */
typedef struct lumos__train_stream {
    size_t *items; /* indices into the train split */
    size_t n;
    uint64_t salt;
    size_t *order;  /* the permutation of `epoch` */
    uint64_t epoch; /* UINT64_MAX: none computed yet */
} lumos__train_stream;

/* The train split's items (its photos only, when photos_only) as a stream. */
int lumos__train_stream_init(lumos__train_files *f, lumos__train_stream *s, uint64_t salt,
                             int photos_only);
void lumos__train_stream_free(lumos__train_stream *s);

/* The next item of stream s at *pos (which advances past it), other than
 * train item `avoid` (SIZE_MAX: none), whose sides are both at least
 * min_side; its index and size. Bad files and smaller ones are reported
 * once, then passed over. it NULL (only the size is wanted): an item whose
 * size is known is not loaded again. Fails when no item of the stream is
 * fit (LUMOS_E_FORMAT) or on LUMOS_E_NOMEM. */
int lumos__train_stream_next(lumos__train_files *f, lumos__train_stream *s, uint64_t *pos,
                             size_t avoid, int min_side, lumos__item *it, size_t *index, int *w,
                             int *h);

#endif
