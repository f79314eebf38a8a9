/* io.h — format workers behind lumos_image_write()/lumos_image_read().
 *
 * Each writer writes a complete file at tmp_path (created by the caller in
 * the destination's directory) and reports errors naming shown_path, the
 * name the user asked for. The caller renames tmp_path into place on success
 * and removes it on failure. */
#ifndef LUMOS_IO_H
#define LUMOS_IO_H

#include <stddef.h>
#include <stdint.h>

#include "lumos.h"

int lumos__write_jpeg(lumos_ctx *ctx, const lumos_image *img, const char *tmp_path,
                      const char *shown_path, const lumos_write_options *opt);
int lumos__write_png(lumos_ctx *ctx, const lumos_image *img, const char *tmp_path,
                     const char *shown_path, const lumos_write_options *opt);
int lumos__write_tiff(lumos_ctx *ctx, const lumos_image *img, const char *tmp_path,
                      const char *shown_path, const lumos_write_options *opt);
int lumos__write_exr(lumos_ctx *ctx, const lumos_image *img, const char *tmp_path,
                     const char *shown_path, const lumos_write_options *opt);

/* The readers; meta (may be NULL: not wanted) gets the file's profile, EXIF
 * and orientation through the lumos__meta_found_* calls below. */
int lumos__read_jpeg(lumos_ctx *ctx, const char *path, lumos_image *out, lumos_meta *meta);
int lumos__read_png(lumos_ctx *ctx, const char *path, lumos_image *out, lumos_meta *meta);
int lumos__read_tiff(lumos_ctx *ctx, const char *path, lumos_image *out, lumos_meta *meta);
int lumos__read_exr(lumos_ctx *ctx, const char *path, lumos_image *out);

/* ---- limits on what a file may make a reader allocate (image.c) */

/* What a file's header claims, for lumos__check_claim. */
typedef struct lumos__claim {
    const char *format;  /* "TIFF", "PNG", ...: for messages */
    uint64_t width, height;
    uint64_t decoded;    /* bytes the file's pixel data must decode to */
    uint64_t held;       /* bytes of the file that hold that data */
    uint64_t ratio;      /* the most bytes one byte of it can decode to (1: stored) */
    const char *codec;   /* its compression, for messages */
    uint64_t alloc;      /* bytes the reader would allocate: image and scratch */
} lumos__claim;

/* Checks a claim before anything is allocated for it: width x height
 * against ctx's pixel limit and alloc against its memory limit
 * (LUMOS_E_NOMEM), decoded against held x ratio (LUMOS_E_FORMAT: the file
 * cannot hold what its header says). Reported, naming path, the claimed size
 * and the limit. Products saturate, so any claim may be passed. */
int lumos__check_claim(lumos_ctx *ctx, const char *path, const lumos__claim *claim);

/* a x b, or UINT64_MAX when that overflows. */
uint64_t lumos__mul_sat(uint64_t a, uint64_t b);

/* ---- metadata passthrough (meta.c) */

/* A reader found a profile, an EXIF block (its orientation comes with it)
 * or a TIFF Orientation tag in path: it is checked and copied into meta, or
 * dropped with a notice naming path. Only running out of memory fails
 * (LUMOS_E_NOMEM, reported). */
int lumos__meta_found_icc(lumos_ctx *ctx, lumos_meta *meta, const char *path, const uint8_t *icc,
                          size_t size);
int lumos__meta_found_exif(lumos_ctx *ctx, lumos_meta *meta, const char *path,
                           const uint8_t *exif, size_t size);
void lumos__meta_found_orientation(lumos_ctx *ctx, lumos_meta *meta, const char *path,
                                   int orientation);

/* Records the format of the file meta was read from. */
void lumos__meta_set_format(lumos_meta *meta, lumos_format format);

/* The ICC profile a writer embeds for img, whose first `colours` (1 or 3)
 * samples it describes: opt->meta's by the rule in lumos.h, else lumos's
 * own for img->space. *icc is malloc'ed, or NULL (none). A meta profile over
 * max bytes (the format's limit) is left out with a notice. LUMOS_OK or
 * LUMOS_E_NOMEM (reported). */
int lumos__write_icc(lumos_ctx *ctx, const lumos_image *img, int colours,
                     const lumos_write_options *opt, size_t max, const char *shown_path,
                     uint8_t **icc, size_t *size);
/* The EXIF block a JPEG or PNG writer embeds (see lumos.h), malloc'ed, or
 * NULL (none). LUMOS_OK or LUMOS_E_NOMEM (reported). */
int lumos__write_exif(lumos_ctx *ctx, const lumos_image *img, const lumos_write_options *opt,
                      lumos_format fmt, const char *shown_path, uint8_t **exif, size_t *size);

/* NULL if icc (n bytes) is a sound ICC profile: its header's size at most n
 * (*used gets it; bytes beyond are padding), signature "acsp", its tag table
 * and tags inside it, and lcms2 opens it. Else why not. (icc.c) */
const char *lumos__icc_check(const uint8_t *icc, size_t n, size_t *used);
/* A sound profile's colour space signature ('RGB ', 'GRAY', 'CMYK', ...). */
uint32_t lumos__icc_space(const uint8_t *icc);

/* NULL if exif (n bytes) is a sound TIFF-structured EXIF block: its header,
 * IFD0, the Exif, GPS and Interoperability IFDs, their entries and
 * out-of-line values all inside it (IFD1, the thumbnail, is not checked).
 * Else why not. *orientation: IFD0's Orientation (any SHORT value; -1 for
 * a tag of another type), 0 when it has none. (exif.c) */
const char *lumos__exif_check(const uint8_t *exif, size_t n, int *orientation);
/* A copy of the checked block exif (or, exif NULL, a new one) for a file of
 * width x height pixels: Orientation set to `orientation` (added when
 * missing, unless 1: with exif NULL and orientation 1 *out is NULL),
 * PixelXDimension/PixelYDimension set where present, IFD1 unlinked and its
 * bytes cut when they end the block. LUMOS_OK, LUMOS_E_FORMAT (not sound)
 * or LUMOS_E_NOMEM. */
int lumos__exif_rewrite(const uint8_t *exif, size_t n, int orientation, int width, int height,
                        uint8_t **out, size_t *out_size);

/* An ICC profile for the space (malloc'ed; *size bytes), or NULL with *size 0
 * for LUMOS_SPACE_CAMERA. Built with lcms2. */
uint8_t *lumos__icc_profile(lumos_space space, size_t *size);

/* The same for an image with 1 (gray profile) or 3 (RGB profile) channels:
 * PNG and JPEG readers reject an RGB profile on a grayscale image. */
uint8_t *lumos__icc_profile_for(lumos_space space, int channels, size_t *size);

/* Rebuilds a baseline JPEG stream (as TurboJPEG writes it) as SOI, an APP1
 * "Exif" segment (if exif), APP2 "ICC_PROFILE" chunks (if icc), then the
 * original segments less a JFIF APP0. *out is malloc'ed. Returns LUMOS_OK,
 * LUMOS_E_ARG (not a JPEG stream, EXIF or ICC too large) or LUMOS_E_NOMEM. */
int lumos__jpeg_splice(const uint8_t *jpeg, size_t size, const uint8_t *exif, size_t exif_size,
                       const uint8_t *icc, size_t icc_size, uint8_t **out, size_t *out_size);

/* An IEEE 754 half (binary16) as a float, exactly (exr.c). */
float lumos__half_to_float(uint16_t h);

/* A TIFF-structured EXIF block (without the "Exif\0\0" prefix), malloc'ed. */
uint8_t *lumos__exif_block(const lumos_exif *exif, size_t *size);

#endif
