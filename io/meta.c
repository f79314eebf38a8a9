/* meta.c — lumos_meta: a file's ICC profile, EXIF block and orientation,
 * carried from lumos_image_read_meta() to lumos_image_write().
 *
 * The bytes are kept as the file holds them; only what a reader could not
 * trust (see lumos__icc_check, lumos__exif_check) is dropped, with a
 * notice, and the picture is read all the same. On writing, the EXIF block
 * is rewritten for the new file (orientation, size, no thumbnail) by
 * lumos__exif_rewrite; everything else in it stays byte for byte. */
#include <stdlib.h>
#include <string.h>

#include "io/io.h"
#include "core/context.h"

struct lumos_meta {
    lumos_format format; /* of the file read; AUTO when built by the caller */
    int orientation;     /* 1..8 */
    uint8_t *icc;
    size_t icc_size;
    uint8_t *exif;
    size_t exif_size;
};

#define ICC_RGB 0x52474220u  /* 'RGB ' */
#define ICC_GRAY 0x47524159u /* 'GRAY' */

lumos_meta *lumos_meta_new(void)
{
    lumos_meta *m = calloc(1, sizeof *m);
    if (m) m->orientation = 1;
    return m;
}

void lumos_meta_free(lumos_meta *meta)
{
    if (!meta) return;
    free(meta->icc);
    free(meta->exif);
    free(meta);
}

lumos_format lumos_meta_format(const lumos_meta *meta)
{
    return meta ? meta->format : LUMOS_FORMAT_AUTO;
}

void lumos__meta_set_format(lumos_meta *meta, lumos_format format)
{
    if (meta) meta->format = format;
}

int lumos_meta_orientation(const lumos_meta *meta) { return meta ? meta->orientation : 1; }

lumos_status lumos_meta_set_orientation(lumos_meta *meta, int orientation)
{
    if (!meta || orientation < 1 || orientation > 8) return LUMOS_E_ARG;
    meta->orientation = orientation;
    return LUMOS_OK;
}

const uint8_t *lumos_meta_icc(const lumos_meta *meta, size_t *size)
{
    if (size) *size = meta && meta->icc ? meta->icc_size : 0;
    return meta ? meta->icc : NULL;
}

const uint8_t *lumos_meta_exif(const lumos_meta *meta, size_t *size)
{
    if (size) *size = meta && meta->exif ? meta->exif_size : 0;
    return meta ? meta->exif : NULL;
}

/* Replaces *dst with a copy of n bytes of src (NULL/0: none). */
static int store(uint8_t **dst, size_t *dst_size, const void *src, size_t n)
{
    uint8_t *copy = NULL;
    if (src && n) {
        if (!(copy = malloc(n))) return LUMOS_E_NOMEM;
        memcpy(copy, src, n);
    }
    free(*dst);
    *dst = copy;
    *dst_size = copy ? n : 0;
    return LUMOS_OK;
}

lumos_status lumos_meta_set_icc(lumos_ctx *ctx, lumos_meta *meta, const void *icc, size_t size)
{
    if (!meta) return lumos__fail(ctx, LUMOS_E_ARG, "lumos_meta_set_icc: no meta");
    size_t used = 0;
    const char *why = icc && size ? lumos__icc_check(icc, size, &used) : NULL;
    if (why) return lumos__fail(ctx, LUMOS_E_FORMAT, "ICC profile refused: %s", why);
    if (store(&meta->icc, &meta->icc_size, icc, used))
        return lumos__fail(ctx, LUMOS_E_NOMEM, "ICC profile: out of memory");
    return LUMOS_OK;
}

lumos_status lumos_meta_set_exif(lumos_ctx *ctx, lumos_meta *meta, const void *exif, size_t size)
{
    if (!meta) return lumos__fail(ctx, LUMOS_E_ARG, "lumos_meta_set_exif: no meta");
    int o = 0;
    const char *why = exif && size ? lumos__exif_check(exif, size, &o) : NULL;
    if (why) return lumos__fail(ctx, LUMOS_E_FORMAT, "EXIF block refused: %s", why);
    if (store(&meta->exif, &meta->exif_size, exif, size))
        return lumos__fail(ctx, LUMOS_E_NOMEM, "EXIF block: out of memory");
    meta->orientation = o >= 1 && o <= 8 ? o : 1;
    return LUMOS_OK;
}

/* ------------------------------------------------------------- readers */

int lumos__meta_found_icc(lumos_ctx *ctx, lumos_meta *meta, const char *path, const uint8_t *icc,
                          size_t size)
{
    if (!meta) return LUMOS_OK;
    size_t used;
    const char *why = lumos__icc_check(icc, size, &used);
    if (why) {
        lumos__notice(ctx, "%s: ICC profile dropped (%zu bytes): %s", path, size, why);
        return LUMOS_OK;
    }
    if (store(&meta->icc, &meta->icc_size, icc, used))
        return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
    return LUMOS_OK;
}

int lumos__meta_found_exif(lumos_ctx *ctx, lumos_meta *meta, const char *path,
                           const uint8_t *exif, size_t size)
{
    if (!meta) return LUMOS_OK;
    int o;
    const char *why = lumos__exif_check(exif, size, &o);
    if (why) {
        lumos__notice(ctx, "%s: EXIF block dropped (%zu bytes): %s", path, size, why);
        return LUMOS_OK;
    }
    if (store(&meta->exif, &meta->exif_size, exif, size))
        return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
    lumos__meta_found_orientation(ctx, meta, path, o ? o : 1);
    return LUMOS_OK;
}

void lumos__meta_found_orientation(lumos_ctx *ctx, lumos_meta *meta, const char *path,
                                   int orientation)
{
    if (!meta) return;
    if (orientation < 1 || orientation > 8) {
        lumos__notice(ctx, "%s: orientation %d is not 1..8: taken as 1 (as stored)", path,
                      orientation);
        orientation = 1;
    }
    meta->orientation = orientation;
}

/* ------------------------------------------------------------- writers */

int lumos__write_icc(lumos_ctx *ctx, const lumos_image *img, int colours,
                     const lumos_write_options *opt, size_t max, const char *shown_path,
                     uint8_t **icc, size_t *size)
{
    *icc = NULL;
    *size = 0;
    const lumos_meta *m = opt->meta;
    if (m && m->icc) {
        uint32_t want = colours == 1 ? ICC_GRAY : ICC_RGB;
        const char *why = img->space != LUMOS_SPACE_SRGB      ? "the image is not in the file's encoding"
                          : lumos__icc_space(m->icc) != want ? "its colour space does not fit the image"
                          : m->icc_size > max                 ? "too large for this format"
                                                              : NULL;
        if (!why) {
            if (store(icc, size, m->icc, m->icc_size))
                return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", shown_path);
            return LUMOS_OK;
        }
        lumos__notice(ctx, "%s: the input's ICC profile is not written (%s)", shown_path, why);
    }
    *icc = lumos__icc_profile_for(img->space, colours, size);
    if (img->space != LUMOS_SPACE_CAMERA && !*icc)
        return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: cannot build the ICC profile", shown_path);
    return LUMOS_OK;
}

int lumos__write_exif(lumos_ctx *ctx, const lumos_image *img, const lumos_write_options *opt,
                      lumos_format fmt, const char *shown_path, uint8_t **exif, size_t *size)
{
    *exif = NULL;
    *size = 0;
    const lumos_meta *m = opt->meta;
    uint8_t *own = NULL;
    size_t own_size = 0;
    const uint8_t *base = m ? m->exif : NULL;
    size_t base_size = m ? m->exif_size : 0;
    if (!base && fmt == LUMOS_FORMAT_JPEG && opt->exif) { /* lumos's own, from a RAW file */
        if (!(own = lumos__exif_block(opt->exif, &own_size)))
            return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: cannot build the EXIF block", shown_path);
        if (!m) { /* as before there was meta: written as built */
            *exif = own;
            *size = own_size;
            return LUMOS_OK;
        }
        base = own, base_size = own_size;
    }
    if (!m) return LUMOS_OK;
    int st = lumos__exif_rewrite(base, base_size, m->orientation, img->width, img->height, exif,
                                 size);
    free(own);
    if (st == LUMOS_E_NOMEM) return lumos__fail(ctx, st, "%s: out of memory", shown_path);
    if (st) { /* cannot happen: blocks are checked when they enter a meta */
        lumos__notice(ctx, "%s: the input's EXIF block is not written (damaged)", shown_path);
        return LUMOS_OK;
    }
    /* APP1's length field counts itself and "Exif\0\0". */
    if (fmt == LUMOS_FORMAT_JPEG && *size > 65535 - 2 - 6) {
        lumos__notice(ctx, "%s: the EXIF block (%zu bytes) is too large for JPEG: not written",
                      shown_path, *size);
        free(*exif);
        *exif = NULL;
        *size = 0;
    }
    return LUMOS_OK;
}
