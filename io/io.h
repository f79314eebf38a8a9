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

int lumos__read_jpeg(lumos_ctx *ctx, const char *path, lumos_image *out);
int lumos__read_png(lumos_ctx *ctx, const char *path, lumos_image *out);
int lumos__read_tiff(lumos_ctx *ctx, const char *path, lumos_image *out);
int lumos__read_exr(lumos_ctx *ctx, const char *path, lumos_image *out);

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
