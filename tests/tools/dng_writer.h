/* dng_writer.h — writes a synthetic Bayer mosaic as a minimal DNG 1.4 so that
 * tests and benchmarks can feed known images through LibRaw. Test-only code:
 * not part of liblumos. */
#ifndef LUMOS_TEST_DNG_WRITER_H
#define LUMOS_TEST_DNG_WRITER_H

#include <stdint.h>

#include "lumos.h"

/* XYZ (D65) -> linear sRGB: the exact inverse of LibRaw's xyz_rgb (sRGB ->
 * XYZ, D65). Given as ColorMatrix1 with AsShotNeutral 1,1,1 it makes the
 * camera space linear sRGB, so LibRaw's rgb_cam comes out as the identity. */
extern const float lumos_test_xyz_to_srgb[3][3];

/* Writes mosaic (width×height samples, rows packed: stride = width) as one
 * uncompressed 16-bit CFA IFD. black is per site of the 2×2 block row by row,
 * cam_from_xyz is ColorMatrix1 (XYZ -> camera, D65), as_shot_neutral the
 * camera's response to white, orientation EXIF 1..8.
 * Returns 0, or -1 with a message on stderr. */
int lumos_test_write_bayer_dng(const char *path, const uint16_t *mosaic, int width, int height,
                               lumos_cfa cfa, const float black[4], float white,
                               const float cam_from_xyz[3][3], const float as_shot_neutral[3],
                               int orientation);

/* The same tags for a LinearRaw DNG: rgb is width×height interleaved RGB
 * samples (a demosaiced, non-Bayer file: LibRaw then has no CFA). */
int lumos_test_write_linear_dng(const char *path, const uint16_t *rgb, int width, int height,
                                const float black[3], float white, const float cam_from_xyz[3][3],
                                const float as_shot_neutral[3], int orientation);

/* The colour (0 R, 1 G, 2 B) of site (x, y) for a Bayer pattern, or -1. */
int lumos_test_cfa_color(lumos_cfa cfa, int x, int y);

/* The sRGB transfer function and its inverse on [0, 1] (clamped). */
float lumos_test_srgb_to_linear(float v);
float lumos_test_linear_to_srgb(float v);

/* Samples an 8- or 16-bit RGB image as a Bayer mosaic the way a sensor whose
 * primaries are sRGB's would see it: the sRGB transfer undone, each site's
 * linear value scaled into [black[site], white] and rounded. Returns a
 * malloc'ed width×height buffer, or NULL (bad image or out of memory). */
uint16_t *lumos_test_mosaic_from_image(const lumos_image *img, lumos_cfa cfa,
                                       const float black[4], float white);

#endif
