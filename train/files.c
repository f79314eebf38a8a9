/* files.c — the train split's files as a task visits them (files.h). */
#include "train/files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "train/unprocess.h" /* lumos__rng_* */

int lumos__train_files_open(lumos_ctx *ctx, const char *const *sources, int n_sources,
                            size_t cache_mb, uint64_t seed, lumos__train_files *f)
{
    memset(f, 0, sizeof *f);
    f->ctx = ctx;
    f->seed = seed;
    int rc = lumos__dataset_open(ctx, sources, n_sources, &f->ds);
    if (rc) return rc;
    lumos__dataset_set_cache(f->ds, cache_mb << 20);
    f->n_train = lumos__dataset_count(f->ds, LUMOS__SPLIT_TRAIN);
    f->hash = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < f->n_train; i++) {
        f->hash ^= lumos__fnv1a64(lumos__dataset_name(f->ds, LUMOS__SPLIT_TRAIN, i));
        f->hash *= 0x100000001b3ull;
    }
    f->bad = calloc(f->n_train ? f->n_train : 1, 1);
    f->size = calloc(f->n_train ? f->n_train : 1, sizeof *f->size);
    if (!f->bad || !f->size) {
        lumos__train_files_close(f);
        return lumos__fail(ctx, LUMOS_E_NOMEM, "train: out of memory");
    }
    return LUMOS_OK;
}

void lumos__train_files_close(lumos__train_files *f)
{
    free(f->bad);
    free(f->size);
    lumos__dataset_free(f->ds);
    memset(f, 0, sizeof *f);
}

void lumos__train_files_mark_bad(lumos__train_files *f, size_t i, const char *why)
{
    if (f->bad[i]) return;
    f->bad[i] = 1;
    f->skipped++;
    lumos__notice(f->ctx, "skipped %s: %s", lumos__dataset_name(f->ds, LUMOS__SPLIT_TRAIN, i), why);
}

int lumos__train_stream_init(lumos__train_files *f, lumos__train_stream *s, uint64_t salt,
                             int photos_only)
{
    memset(s, 0, sizeof *s);
    s->items = malloc((f->n_train ? f->n_train : 1) * sizeof *s->items);
    s->order = malloc((f->n_train ? f->n_train : 1) * sizeof *s->order);
    if (!s->items || !s->order) {
        lumos__train_stream_free(s);
        return lumos__fail(f->ctx, LUMOS_E_NOMEM, "train: out of memory");
    }
    for (size_t i = 0; i < f->n_train; i++) {
        const char *path = lumos__dataset_name(f->ds, LUMOS__SPLIT_TRAIN, i);
        if (!photos_only || lumos__item_kind_of(path) == LUMOS__ITEM_PHOTO) s->items[s->n++] = i;
    }
    s->salt = salt;
    s->epoch = UINT64_MAX;
    return LUMOS_OK;
}

void lumos__train_stream_free(lumos__train_stream *s)
{
    free(s->items);
    free(s->order);
    memset(s, 0, sizeof *s);
}

/* The train-split index at stream position pos. */
static size_t stream_at(const lumos__train_files *f, lumos__train_stream *s, uint64_t pos)
{
    uint64_t epoch = pos / s->n;
    if (epoch != s->epoch) { /* Fisher-Yates from (seed, stream, epoch) */
        uint64_t r = f->seed ^ (s->salt * 0x9E3779B97F4A7C15ull);
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

void lumos__train_item_size(const lumos__item *it, int *w, int *h)
{
    if (it->kind == LUMOS__ITEM_PHOTO) {
        *w = it->photo.width;
        *h = it->photo.height;
    } else {
        *w = lumos_raw_get_info(it->raw)->width;
        *h = lumos_raw_get_info(it->raw)->height;
    }
}

/* The next readable item (see stream_next_fitting): within 2n positions
 * every item comes up at least once. */
static int next_readable(lumos__train_files *f, lumos__train_stream *s, uint64_t *pos,
                         size_t avoid, lumos__item *it, size_t *index)
{
    for (size_t tries = 0; s->n && tries < 2 * s->n; tries++) {
        size_t i = stream_at(f, s, (*pos)++);
        if (f->bad[i] || i == avoid) continue;
        if (!it && f->size[i][0]) {
            *index = i;
            return LUMOS_OK;
        }
        lumos__item loaded;
        int rc = lumos__dataset_load(f->ctx, f->ds, LUMOS__SPLIT_TRAIN, i, it ? it : &loaded);
        if (rc == LUMOS_E_NOMEM) return rc;
        if (rc == LUMOS_OK) {
            lumos__train_item_size(it ? it : &loaded, &f->size[i][0], &f->size[i][1]);
            if (!it) lumos__item_free(&loaded);
            *index = i;
            return LUMOS_OK;
        }
        lumos__train_files_mark_bad(f, i, lumos_last_error(f->ctx));
    }
    return lumos__fail(f->ctx, LUMOS_E_FORMAT,
                       "train: no readable %s in the train split (%zu candidates, %zu skipped)",
                       avoid == SIZE_MAX ? "file" : "second photo (the sample needs two)", s->n,
                       f->skipped);
}

int lumos__train_stream_next(lumos__train_files *f, lumos__train_stream *s, uint64_t *pos,
                             size_t avoid, int min_side, lumos__item *it, size_t *index, int *w,
                             int *h)
{
    for (;;) {
        int rc = next_readable(f, s, pos, avoid, it, index);
        if (rc) return rc;
        *w = f->size[*index][0];
        *h = f->size[*index][1];
        if (*w >= min_side && *h >= min_side) return LUMOS_OK;
        char why[96];
        snprintf(why, sizeof why, "%dx%d, smaller than the %dx%d crop", *w, *h, min_side, min_side);
        lumos__train_files_mark_bad(f, *index, why);
        if (it) lumos__item_free(it);
    }
}
