/* data.h — the training data list: photos (JPEG, PNG) and RAW files found in
 * directories or list files, split for good into train and test.
 *
 * The split depends on each file's own name only (a hash of its key, see
 * lumos__split_key), never on which other files are present, so the held-out
 * test files stay held out when photos are added, removed or moved. */
#ifndef LUMOS_TRAIN_DATA_H
#define LUMOS_TRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "lumos.h"

typedef enum lumos__split { LUMOS__SPLIT_TRAIN = 0, LUMOS__SPLIT_TEST = 1 } lumos__split;

enum { LUMOS__TEST_PERCENT = 10 };

typedef enum lumos__item_kind { LUMOS__ITEM_PHOTO = 1, LUMOS__ITEM_RAW = 2 } lumos__item_kind;

/* 64-bit FNV-1a of a string. */
uint64_t lumos__fnv1a64(const char *s);

/* What the split hashes: the basename without its suffix, except in the KDE
 * wallpaper layout (NAME/contents/images/1920x1080.jpg, also images_dark/),
 * where the file name is a resolution and NAME is the picture: every size
 * and variant of one wallpaper must fall on the same side, and not all
 * 1920x1080s on one. Written to key (size n, truncated). */
void lumos__split_key(const char *path, char *key, size_t n);

/* TEST for LUMOS__TEST_PERCENT % of keys, by FNV-1a of the key. */
lumos__split lumos__split_of(const char *path);

/* LUMOS__ITEM_PHOTO for .jpg/.jpeg/.png, LUMOS__ITEM_RAW for a RAW suffix
 * LibRaw reads (.cr2, .nef, .dng, ...), 0 otherwise (case-insensitive). */
int lumos__item_kind_of(const char *path);

typedef struct lumos__dataset lumos__dataset;

/* Each source is a directory (searched recursively, hidden entries left
 * out), a list file (*.txt or *.list: one path a line, '#' comments), or one
 * photo/RAW file. Paths are sorted and duplicates dropped. A source that
 * cannot be read fails (LUMOS_E_IO, named); unreadable subdirectories are
 * reported through the context's notice and skipped. */
int lumos__dataset_open(lumos_ctx *ctx, const char *const sources[], int n,
                        lumos__dataset **out);
void lumos__dataset_free(lumos__dataset *ds);

size_t lumos__dataset_count(const lumos__dataset *ds, lumos__split split);
/* The i-th path of the split (sorted), NULL if i is out of range. */
const char *lumos__dataset_name(const lumos__dataset *ds, lumos__split split, size_t i);

typedef struct lumos__item {
    lumos__item_kind kind;
    const char *path;   /* the dataset's string */
    lumos_image photo;  /* PHOTO: 8/16-bit RGB (gray expanded to RGB); read only */
    lumos_raw *raw;     /* RAW: a Bayer mosaic */
    lumos__dataset *cached; /* photo lent by this dataset's cache, or NULL */
    int split;
    size_t index;
} lumos__item;

/* Keeps up to `bytes` of decoded photos for the next loads of the same
 * items (0, the default: none). Loads then lend the cached image: items
 * must be freed (lumos__item_free) before the dataset. */
void lumos__dataset_set_cache(lumos__dataset *ds, size_t bytes);

/* Reads item i of the split. A file that cannot be read, is damaged, or is
 * a non-Bayer RAW returns its error (lumos_last_error names the file) and
 * leaves *out empty, so the caller can report it and go on. */
int lumos__dataset_load(lumos_ctx *ctx, const lumos__dataset *ds, lumos__split split, size_t i,
                        lumos__item *out);
void lumos__item_free(lumos__item *item);

/* Loads the first readable item at or after *cursor (wrapping around), and
 * sets *cursor past it. Each bad file on the way is reported through the
 * context's notice ("skipped FILE: reason") and counted in *skipped (may be
 * NULL). Fails only if no item of the split can be read. */
int lumos__dataset_next(lumos_ctx *ctx, const lumos__dataset *ds, lumos__split split,
                        size_t *cursor, lumos__item *out, size_t *skipped);

#endif
