/* preview.c — the input | output contact sheet of `--preview FILE`. */
#include "preview.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { GAP = 8, BACKGROUND = 40 };

typedef struct {
    char *name;          /* the input's path: the rows' order */
    lumos_image in, out; /* 8-bit RGB thumbnails of one size */
} row;

struct preview {
    pthread_mutex_t lock;
    row rows[PREVIEW_MAX_ROWS];
    int count;
};

preview *preview_new(void)
{
    preview *p = calloc(1, sizeof *p);
    if (p) pthread_mutex_init(&p->lock, NULL);
    return p;
}

static void row_free(row *r)
{
    free(r->name);
    lumos_image_free(&r->in);
    lumos_image_free(&r->out);
    memset(r, 0, sizeof *r);
}

void preview_free(preview *p)
{
    if (!p) return;
    for (int i = 0; i < p->count; i++) row_free(&p->rows[i]);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* The slot a row for `name` would take: a free one, that of the last name
 * when `name` comes before it, or -1 (not among the first). Under the lock. */
static int slot_for(const preview *p, const char *name)
{
    if (p->count < PREVIEW_MAX_ROWS) return p->count;
    int last = 0;
    for (int i = 1; i < p->count; i++)
        if (strcmp(p->rows[i].name, p->rows[last].name) > 0) last = i;
    return strcmp(name, p->rows[last].name) < 0 ? last : -1;
}

/* Sample c (gray repeated) of pixel x of a row, as 0..1. */
static float sample(const lumos_image *img, const unsigned char *row, int x, int c)
{
    size_t i = (size_t)x * (size_t)img->channels + (size_t)(img->channels < 3 ? 0 : c);
    float v = img->bits == 8    ? row[i] / 255.f
              : img->bits == 16 ? ((const uint16_t *)row)[i] / 65535.f
                                : ((const float *)row)[i];
    return v > 0 ? (v < 1 ? v : 1) : 0;
}

/* img scaled to tw × th 8-bit RGB by area averaging (each source pixel in
 * one bin). */
static int thumbnail(const lumos_image *img, int tw, int th, lumos_image *t)
{
    int rc = lumos_image_alloc(t, tw, th, 3, 8);
    if (rc) return rc;
    const int w = img->width, h = img->height;
    for (int ty = 0; ty < th; ty++) {
        int y0 = (int)((int64_t)ty * h / th), y1 = (int)((int64_t)(ty + 1) * h / th);
        if (y1 <= y0) y1 = y0 + 1;
        unsigned char *dst = (unsigned char *)t->data + (size_t)ty * t->stride;
        for (int tx = 0; tx < tw; tx++) {
            int x0 = (int)((int64_t)tx * w / tw), x1 = (int)((int64_t)(tx + 1) * w / tw);
            if (x1 <= x0) x1 = x0 + 1;
            double sum[3] = {0, 0, 0};
            for (int y = y0; y < y1; y++) {
                const unsigned char *src = (const unsigned char *)img->data + (size_t)y * img->stride;
                for (int x = x0; x < x1; x++)
                    for (int c = 0; c < 3; c++) sum[c] += sample(img, src, x, c);
            }
            double n = (double)(y1 - y0) * (x1 - x0);
            for (int c = 0; c < 3; c++) dst[3 * tx + c] = (unsigned char)(sum[c] / n * 255.0 + 0.5);
        }
    }
    return LUMOS_OK;
}

/* A file read, made upright and scaled to fit the row. */
static int upright_thumbnail(lumos_ctx *ctx, const char *path, lumos_image *t)
{
    lumos_image img;
    lumos_meta *meta = NULL;
    int rc = lumos_image_read_meta(ctx, path, &img, &meta);
    if (rc) return rc;
    rc = lumos_image_orient(ctx, &img, lumos_meta_orientation(meta));
    lumos_meta_free(meta);
    if (rc == LUMOS_OK) {
        double s = 1.0;
        if (img.height > PREVIEW_ROW_HEIGHT) s = (double)PREVIEW_ROW_HEIGHT / img.height;
        if (img.width * s > 2.0 * PREVIEW_ROW_HEIGHT) s = 2.0 * PREVIEW_ROW_HEIGHT / img.width;
        int tw = (int)(img.width * s + 0.5), th = (int)(img.height * s + 0.5);
        rc = thumbnail(&img, tw > 0 ? tw : 1, th > 0 ? th : 1, t);
    }
    lumos_image_free(&img);
    return rc;
}

int preview_add(preview *p, lumos_ctx *ctx, const char *in, const char *out)
{
    pthread_mutex_lock(&p->lock);
    int wanted = slot_for(p, in) >= 0;
    pthread_mutex_unlock(&p->lock);
    if (!wanted) return LUMOS_OK;

    row r = {0};
    int rc = upright_thumbnail(ctx, in, &r.in);
    if (rc == LUMOS_OK) rc = upright_thumbnail(ctx, out, &r.out);
    if (rc == LUMOS_OK && !(r.name = strdup(in))) rc = LUMOS_E_NOMEM;
    if (rc) {
        row_free(&r);
        return rc;
    }
    pthread_mutex_lock(&p->lock);
    int slot = slot_for(p, in); /* again: others may have come in meanwhile */
    if (slot >= 0) {
        if (slot < p->count) row_free(&p->rows[slot]);
        else p->count++;
        p->rows[slot] = r;
    }
    pthread_mutex_unlock(&p->lock);
    if (slot < 0) row_free(&r);
    return LUMOS_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const row *)a)->name, ((const row *)b)->name);
}

static void paste(lumos_image *sheet, const lumos_image *t, int x0, int y0)
{
    for (int y = 0; y < t->height; y++)
        memcpy((unsigned char *)sheet->data + (size_t)(y0 + y) * sheet->stride + (size_t)x0 * 3,
               (const unsigned char *)t->data + (size_t)y * t->stride, (size_t)t->width * 3);
}

int preview_write(preview *p, lumos_ctx *ctx, const char *path, int *rows)
{
    *rows = p->count;
    if (!p->count) return LUMOS_OK;
    qsort(p->rows, (size_t)p->count, sizeof *p->rows, by_name);
    int width = 0, height = GAP;
    for (int i = 0; i < p->count; i++) {
        int w = GAP + p->rows[i].in.width + GAP + p->rows[i].out.width + GAP;
        if (w > width) width = w;
        int h = p->rows[i].in.height > p->rows[i].out.height ? p->rows[i].in.height
                                                              : p->rows[i].out.height;
        height += h + GAP;
    }
    lumos_image sheet;
    int rc = lumos_image_alloc(&sheet, width, height, 3, 8);
    if (rc) return rc;
    memset(sheet.data, BACKGROUND, sheet.stride * (size_t)height);
    for (int i = 0, y = GAP; i < p->count; i++) {
        const row *r = &p->rows[i];
        paste(&sheet, &r->in, GAP, y);
        paste(&sheet, &r->out, GAP + r->in.width + GAP, y);
        y += (r->in.height > r->out.height ? r->in.height : r->out.height) + GAP;
    }
    lumos_write_options wo;
    lumos_write_options_init(&wo);
    wo.overwrite = 1;
    rc = lumos_image_write(ctx, &sheet, path, &wo);
    lumos_image_free(&sheet);
    return rc;
}
