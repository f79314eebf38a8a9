/* data.c — the training data list and its fixed train/test split. See data.h. */
#include "train/data.h"

#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/context.h"

/* Deeper than any photo tree; stops a symlink loop. */
enum { MAX_DEPTH = 16 };

/* A decoded photo kept for the next visit (decoding a 16 MP JPEG costs more
 * than a training sample's whole loss): per item, least recently used out
 * first, within a byte budget. */
typedef struct cached_photo {
    lumos_image img; /* data NULL: not cached */
    size_t bytes;
    uint64_t last_use;
    int refs;        /* items lent out */
} cached_photo;

struct lumos__dataset {
    char **paths[2]; /* per split, sorted */
    size_t count[2];
    pthread_mutex_t lock; /* the cache */
    cached_photo *cache[2];
    size_t cache_budget, cache_bytes;
    uint64_t clock;
};

uint64_t lumos__fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

static const char *basename_of(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

void lumos__split_key(const char *path, char *key, size_t n)
{
    if (!n) return;
    const char *base = basename_of(path);
    /* NAME/contents/images/FILE or .../images_dark/FILE: the key is NAME.
     * sub is the start of the folder holding the file. */
    const char *sub = base > path ? base - 1 : path;
    while (sub > path && sub[-1] != '/') sub--;
    static const char contents[] = "/contents/";
    size_t cl = sizeof contents - 1;
    if (base > path && !strncmp(sub, "images", 6) && (size_t)(sub - path) >= cl &&
        !strncmp(sub - cl, contents, cl)) {
        const char *end = sub - cl, *start = end;
        while (start > path && start[-1] != '/') start--;
        if (end > start) {
            snprintf(key, n, "%.*s", (int)(end - start), start);
            return;
        }
    }
    /* Without the suffix, so that a.jpg and a.png (one picture) agree. */
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot > base ? (size_t)(dot - base) : strlen(base);
    snprintf(key, n, "%.*s", (int)len, base);
}

lumos__split lumos__split_of(const char *path)
{
    char key[1024];
    lumos__split_key(path, key, sizeof key);
    return lumos__fnv1a64(key) % 100 < LUMOS__TEST_PERCENT ? LUMOS__SPLIT_TEST
                                                           : LUMOS__SPLIT_TRAIN;
}

int lumos__item_kind_of(const char *path)
{
    static const char *const photo[] = {"jpg", "jpeg", "png"};
    static const char *const raw[] = {"3fr", "arw", "cr2", "cr3", "crw", "dcr", "dng", "erf",
                                      "iiq", "k25", "kdc", "mef", "mos", "mrw", "nef", "nrw",
                                      "orf", "pef", "raf", "raw", "rw2", "rwl", "sr2", "srf",
                                      "srw", "x3f"};
    const char *dot = strrchr(basename_of(path), '.');
    if (!dot) return 0;
    for (size_t i = 0; i < sizeof photo / sizeof *photo; i++)
        if (!strcasecmp(dot + 1, photo[i])) return LUMOS__ITEM_PHOTO;
    for (size_t i = 0; i < sizeof raw / sizeof *raw; i++)
        if (!strcasecmp(dot + 1, raw[i])) return LUMOS__ITEM_RAW;
    return 0;
}

/* ---------------------------------------------------------- the scan */

typedef struct {
    char **v;
    size_t n, cap;
} strvec;

static int push(lumos_ctx *ctx, strvec *s, const char *path)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) return lumos__fail(ctx, LUMOS_E_NOMEM, "dataset: out of memory");
        s->v = v;
        s->cap = cap;
    }
    if (!(s->v[s->n] = strdup(path))) return lumos__fail(ctx, LUMOS_E_NOMEM, "dataset: out of memory");
    s->n++;
    return LUMOS_OK;
}

static int scan_dir(lumos_ctx *ctx, const char *dir, int depth, strvec *out)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (depth == 0) return lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", dir);
        lumos__notice(ctx, "skipped directory %s: %s", dir, strerror(errno));
        return LUMOS_OK;
    }
    int rc = LUMOS_OK;
    struct dirent *e;
    while (rc == LUMOS_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* ., .., hidden */
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *path = malloc(len);
        if (!path) {
            rc = lumos__fail(ctx, LUMOS_E_NOMEM, "dataset: out of memory");
            break;
        }
        snprintf(path, len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", e->d_name);
        struct stat st;
        if (stat(path, &st) == 0) { /* follows links; a dangling one is left out */
            if (S_ISDIR(st.st_mode)) {
                if (depth + 1 < MAX_DEPTH) rc = scan_dir(ctx, path, depth + 1, out);
            } else if (S_ISREG(st.st_mode) && lumos__item_kind_of(path)) {
                rc = push(ctx, out, path);
            }
        }
        free(path);
    }
    closedir(d);
    return rc;
}

static int is_list_file(const char *path)
{
    const char *dot = strrchr(basename_of(path), '.');
    return dot && (!strcasecmp(dot, ".txt") || !strcasecmp(dot, ".list"));
}

/* Every line a path (leading/trailing blanks dropped); the files themselves
 * are checked when loaded, so a missing one is a skipped item, not a failed
 * list. */
static int read_list(lumos_ctx *ctx, const char *list, strvec *out)
{
    FILE *f = fopen(list, "r");
    if (!f) return lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", list);
    char line[4096];
    int rc = LUMOS_OK;
    while (rc == LUMOS_OK && fgets(line, sizeof line, f)) {
        char *s = line, *end = line + strlen(line);
        while (*s == ' ' || *s == '\t') s++;
        while (end > s && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
            *--end = 0;
        if (*s && *s != '#') rc = push(ctx, out, s);
    }
    if (rc == LUMOS_OK && ferror(f)) rc = lumos__fail(ctx, LUMOS_E_IO, "%s: read error", list);
    fclose(f);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int lumos__dataset_open(lumos_ctx *ctx, const char *const sources[], int n,
                        lumos__dataset **out)
{
    if (!out || (n > 0 && !sources) || n < 0)
        return lumos__fail(ctx, LUMOS_E_ARG, "dataset: bad arguments");
    *out = NULL;
    strvec all = {0};
    int rc = LUMOS_OK;
    for (int i = 0; i < n && rc == LUMOS_OK; i++) {
        const char *src = sources[i];
        struct stat st;
        if (!src || !*src) rc = lumos__fail(ctx, LUMOS_E_ARG, "dataset: empty source");
        else if (stat(src, &st) != 0) rc = lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", src);
        else if (S_ISDIR(st.st_mode)) rc = scan_dir(ctx, src, 0, &all);
        else if (is_list_file(src)) rc = read_list(ctx, src, &all);
        else if (lumos__item_kind_of(src)) rc = push(ctx, &all, src);
        else rc = lumos__fail(ctx, LUMOS_E_ARG, "%s: not a directory, list, photo or RAW file", src);
    }
    lumos__dataset *ds = rc == LUMOS_OK ? calloc(1, sizeof *ds) : NULL;
    if (rc == LUMOS_OK && !ds) rc = lumos__fail(ctx, LUMOS_E_NOMEM, "dataset: out of memory");
    if (ds) pthread_mutex_init(&ds->lock, NULL);
    if (rc == LUMOS_OK) {
        for (int s = 0; s < 2 && rc == LUMOS_OK; s++)
            if (all.n && !(ds->paths[s] = malloc(all.n * sizeof(char *))))
                rc = lumos__fail(ctx, LUMOS_E_NOMEM, "dataset: out of memory");
    }
    if (rc == LUMOS_OK) {
        if (all.n) qsort(all.v, all.n, sizeof *all.v, cmp_str);
        const char *last = NULL; /* the last path kept */
        for (size_t i = 0; i < all.n; i++) {
            if (last && !strcmp(all.v[i], last)) { /* a duplicate */
                free(all.v[i]);
                continue;
            }
            last = all.v[i];
            int s = lumos__split_of(all.v[i]);
            ds->paths[s][ds->count[s]++] = all.v[i];
        }
        free(all.v);
        *out = ds;
        return LUMOS_OK;
    }
    for (size_t i = 0; i < all.n; i++) free(all.v[i]);
    free(all.v);
    if (ds) {
        free(ds->paths[0]);
        free(ds->paths[1]);
        free(ds);
    }
    return rc;
}

void lumos__dataset_free(lumos__dataset *ds)
{
    if (!ds) return;
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < ds->count[s]; i++) {
            free(ds->paths[s][i]);
            if (ds->cache[s]) lumos_image_free(&ds->cache[s][i].img);
        }
        free(ds->paths[s]);
        free(ds->cache[s]);
    }
    pthread_mutex_destroy(&ds->lock);
    free(ds);
}

static int split_ok(lumos__split s) { return s == LUMOS__SPLIT_TRAIN || s == LUMOS__SPLIT_TEST; }

size_t lumos__dataset_count(const lumos__dataset *ds, lumos__split split)
{
    return ds && split_ok(split) ? ds->count[split] : 0;
}

const char *lumos__dataset_name(const lumos__dataset *ds, lumos__split split, size_t i)
{
    return i < lumos__dataset_count(ds, split) ? ds->paths[split][i] : NULL;
}

/* ------------------------------------------------------------ loading */

/* Gray -> RGB, so that every photo reaches the unprocessing as RGB. */
static int to_rgb(lumos_ctx *ctx, const char *path, lumos_image *img)
{
    if (img->channels == 3) return LUMOS_OK;
    lumos_image rgb;
    if (lumos_image_alloc(&rgb, img->width, img->height, 3, img->bits))
        return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
    size_t b = (size_t)img->bits / 8;
    for (int y = 0; y < img->height; y++) {
        const uint8_t *in = (const uint8_t *)img->data + (size_t)y * img->stride;
        uint8_t *o = (uint8_t *)rgb.data + (size_t)y * rgb.stride;
        for (int x = 0; x < img->width; x++)
            for (int c = 0; c < 3; c++) memcpy(o + ((size_t)x * 3 + c) * b, in + (size_t)x * b, b);
    }
    rgb.space = img->space;
    lumos_image_free(img);
    *img = rgb;
    return LUMOS_OK;
}

/* ------------------------------------------------------------ the cache */

void lumos__dataset_set_cache(lumos__dataset *ds, size_t bytes) { ds->cache_budget = bytes; }

/* Lends item i's cached photo to out; 0 if it is not cached. */
static int cache_lend(lumos__dataset *ds, lumos__split split, size_t i, lumos__item *out)
{
    pthread_mutex_lock(&ds->lock);
    cached_photo *c = ds->cache[split] ? &ds->cache[split][i] : NULL;
    int hit = c && c->img.data;
    if (hit) {
        c->refs++;
        c->last_use = ++ds->clock;
        out->photo = c->img;
        out->cached = ds;
        out->split = split;
        out->index = i;
    }
    pthread_mutex_unlock(&ds->lock);
    return hit;
}

/* Keeps out's freshly decoded photo, if the budget allows after evicting
 * the least recently used photos nobody holds; out then borrows it. */
static void cache_keep(lumos__dataset *ds, lumos__split split, size_t i, lumos__item *out)
{
    const size_t bytes = out->photo.stride * (size_t)out->photo.height;
    pthread_mutex_lock(&ds->lock);
    if (!ds->cache[split] && bytes <= ds->cache_budget)
        ds->cache[split] = calloc(ds->count[split], sizeof *ds->cache[split]);
    while (ds->cache[split] && ds->cache_bytes + bytes > ds->cache_budget) {
        cached_photo *oldest = NULL;
        for (int s = 0; s < 2; s++)
            for (size_t k = 0; ds->cache[s] && k < ds->count[s]; k++) {
                cached_photo *c = &ds->cache[s][k];
                if (c->img.data && c->refs == 0 && (!oldest || c->last_use < oldest->last_use))
                    oldest = c;
            }
        if (!oldest) break;
        ds->cache_bytes -= oldest->bytes;
        lumos_image_free(&oldest->img);
    }
    if (ds->cache[split] && ds->cache_bytes + bytes <= ds->cache_budget) {
        cached_photo *c = &ds->cache[split][i];
        *c = (cached_photo){out->photo, bytes, ++ds->clock, 1};
        ds->cache_bytes += bytes;
        out->cached = ds;
        out->split = split;
        out->index = i;
    }
    pthread_mutex_unlock(&ds->lock);
}

int lumos__dataset_load(lumos_ctx *ctx, const lumos__dataset *ds, lumos__split split, size_t i,
                        lumos__item *out)
{
    if (!out) return lumos__fail(ctx, LUMOS_E_ARG, "dataset: no output item");
    memset(out, 0, sizeof *out);
    const char *path = lumos__dataset_name(ds, split, i);
    if (!path) return lumos__fail(ctx, LUMOS_E_ARG, "dataset: no item %zu in that split", i);
    int kind = lumos__item_kind_of(path);
    int rc;
    if (kind == LUMOS__ITEM_RAW) {
        rc = lumos_raw_open_file(ctx, path, &out->raw);
        if (rc == LUMOS_OK && !lumos_raw_get_info(out->raw)->is_bayer) {
            lumos_raw_free(out->raw);
            out->raw = NULL;
            rc = lumos__fail(ctx, LUMOS_E_UNSUPPORTED, "%s: not a Bayer mosaic", path);
        }
    } else if (cache_lend((lumos__dataset *)ds, split, i, out)) {
        rc = LUMOS_OK;
    } else {
        rc = lumos_image_read(ctx, path, &out->photo);
        if (rc == LUMOS_OK) rc = to_rgb(ctx, path, &out->photo);
        if (rc != LUMOS_OK) lumos_image_free(&out->photo);
        if (rc == LUMOS_OK) cache_keep((lumos__dataset *)ds, split, i, out);
    }
    if (rc != LUMOS_OK) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->kind = (lumos__item_kind)kind;
    out->path = path;
    return LUMOS_OK;
}

void lumos__item_free(lumos__item *item)
{
    if (!item) return;
    if (item->cached) {
        lumos__dataset *ds = item->cached;
        pthread_mutex_lock(&ds->lock);
        ds->cache[item->split][item->index].refs--;
        pthread_mutex_unlock(&ds->lock);
        item->photo.data = NULL; /* the cache's */
    }
    lumos_image_free(&item->photo);
    lumos_raw_free(item->raw);
    memset(item, 0, sizeof *item);
}

int lumos__dataset_next(lumos_ctx *ctx, const lumos__dataset *ds, lumos__split split,
                        size_t *cursor, lumos__item *out, size_t *skipped)
{
    size_t n = lumos__dataset_count(ds, split);
    if (!cursor || !out) return lumos__fail(ctx, LUMOS_E_ARG, "dataset: bad arguments");
    memset(out, 0, sizeof *out);
    if (n == 0) return lumos__fail(ctx, LUMOS_E_ARG, "dataset: the split is empty");
    for (size_t k = 0; k < n; k++) {
        size_t i = (*cursor + k) % n;
        int rc = lumos__dataset_load(ctx, ds, split, i, out);
        if (rc == LUMOS_OK) {
            *cursor = i + 1;
            return LUMOS_OK;
        }
        lumos__notice(ctx, "skipped %s: %s", ds->paths[split][i], lumos_last_error(ctx));
        if (skipped) (*skipped)++;
    }
    return lumos__fail(ctx, LUMOS_E_FORMAT, "dataset: none of the %zu files could be read", n);
}
