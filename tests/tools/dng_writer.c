/* dng_writer.c — see dng_writer.h. The tag types and counts follow what
 * libtiff 4.5's built-in field table expects (rationals are passed as float
 * arrays, fixed-count arrays without a count, variable ones with a uint16
 * count). */
#include "tests/tools/dng_writer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

const float lumos_test_xyz_to_srgb[3][3] = {
    {3.2404813f, -1.5371515f, -0.4985363f},
    {-0.9692550f, 1.8759900f, 0.0415559f},
    {0.0556466f, -0.2040413f, 1.0573111f},
};

/* CFAPattern codes (0 R, 1 G, 2 B) of the 2×2 block, row by row. */
static int cfa_codes(lumos_cfa cfa, uint8_t out[4])
{
    static const uint8_t codes[4][4] = {
        {0, 1, 1, 2}, /* RGGB */
        {2, 1, 1, 0}, /* BGGR */
        {1, 0, 2, 1}, /* GRBG */
        {1, 2, 0, 1}, /* GBRG */
    };
    if (cfa < LUMOS_CFA_RGGB || cfa > LUMOS_CFA_GBRG)
        return -1;
    memcpy(out, codes[cfa - LUMOS_CFA_RGGB], 4);
    return 0;
}

int lumos_test_cfa_color(lumos_cfa cfa, int x, int y)
{
    uint8_t c[4];
    if (cfa_codes(cfa, c) != 0)
        return -1;
    return c[(y & 1) * 2 + (x & 1)];
}

float lumos_test_srgb_to_linear(float v)
{
    v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    return v <= 0.04045f ? v / 12.92f : powf((v + 0.055f) / 1.055f, 2.4f);
}

float lumos_test_linear_to_srgb(float v)
{
    v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    return v <= 0.0031308f ? v * 12.92f : 1.055f * powf(v, 1.0f / 2.4f) - 0.055f;
}

uint16_t *lumos_test_mosaic_from_image(const lumos_image *img, lumos_cfa cfa,
                                       const float black[4], float white)
{
    if (!img || !img->data || img->channels != 3 || (img->bits != 8 && img->bits != 16) ||
        img->width < 2 || img->height < 2 || lumos_test_cfa_color(cfa, 0, 0) < 0)
        return NULL;
    uint16_t *out = malloc((size_t)img->width * img->height * sizeof *out);
    if (!out)
        return NULL;
    const float peak = img->bits == 8 ? 255.0f : 65535.0f;
    for (int y = 0; y < img->height; y++) {
        const uint8_t *row = (const uint8_t *)img->data + (size_t)y * img->stride;
        for (int x = 0; x < img->width; x++) {
            int c = lumos_test_cfa_color(cfa, x, y);
            float v = img->bits == 8 ? row[x * 3 + c] : ((const uint16_t *)row)[x * 3 + c];
            float b = black[(y & 1) * 2 + (x & 1)];
            float s = b + lumos_test_srgb_to_linear(v / peak) * (white - b);
            out[(size_t)y * img->width + x] = (uint16_t)(s < 0.0f ? 0.0f : s + 0.5f);
        }
    }
    return out;
}

/* libtiff reports through global handlers; keep its warnings but make each
 * failure name the file. */
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "dng_writer: %s: ", path);                                                 \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        goto fail;                                                                                 \
    } while (0)

/* One IFD: a CFA mosaic (cfa given, 1 sample) or, for LUMOS_CFA_NONE, a
 * LinearRaw RGB image (3 samples, one black level per sample). */
static int write_dng(const char *path, const uint16_t *mosaic, int width, int height,
                     lumos_cfa cfa, const float black[4], float white,
                     const float cam_from_xyz[3][3], const float as_shot_neutral[3],
                     int orientation)
{
    TIFF *tif = NULL;
    uint8_t pattern[4] = {0, 0, 0, 0};
    int linear = cfa == LUMOS_CFA_NONE, spp = linear ? 3 : 1;
    if (!path || !mosaic || width < 2 || height < 2 || !black || !cam_from_xyz ||
        !as_shot_neutral || orientation < 1 || orientation > 8 || white <= 0.0f ||
        white > 65535.0f || (!linear && cfa_codes(cfa, pattern) != 0)) {
        fprintf(stderr, "dng_writer: bad arguments for %s\n", path ? path : "(null)");
        return -1;
    }
    tif = TIFFOpen(path, "w");
    if (!tif)
        FAIL("cannot create");

    static const uint8_t dng_version[4] = {1, 4, 0, 0};
    static const uint8_t dng_backward[4] = {1, 1, 0, 0};
    static const uint16_t repeat_dim[2] = {2, 2}, repeat_one[2] = {1, 1};
    static const uint8_t plane_colors[3] = {0, 1, 2};
    float matrix[9], neutral[3] = {as_shot_neutral[0], as_shot_neutral[1], as_shot_neutral[2]};
    float blk[4] = {black[0], black[1], black[2], black[3]};
    uint32_t wl = (uint32_t)(white + 0.5f);
    for (int i = 0; i < 9; i++)
        matrix[i] = cam_from_xyz[i / 3][i % 3];

    int ok = TIFFSetField(tif, TIFFTAG_SUBFILETYPE, 0) &&
             TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)width) &&
             TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t)height) &&
             TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 16) &&
             TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, spp) &&
             TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_NONE) &&
             TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, linear ? 34892 /* LinearRaw (DNG) */ : PHOTOMETRIC_CFA) &&
             TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) &&
             TIFFSetField(tif, TIFFTAG_ORIENTATION, (uint16_t)orientation) &&
             /* One strip: the simplest layout every DNG reader handles. */
             TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, (uint32_t)height) &&
             TIFFSetField(tif, TIFFTAG_MAKE, "lumos") &&
             TIFFSetField(tif, TIFFTAG_MODEL, "synthetic") &&
             TIFFSetField(tif, TIFFTAG_SOFTWARE, "lumos test dng_writer") &&
             (linear || (TIFFSetField(tif, TIFFTAG_CFAREPEATPATTERNDIM, repeat_dim) &&
                         TIFFSetField(tif, TIFFTAG_CFAPATTERN, 4, pattern) &&
                         TIFFSetField(tif, TIFFTAG_CFAPLANECOLOR, 3, plane_colors) &&
                         TIFFSetField(tif, TIFFTAG_CFALAYOUT, 1))) &&
             TIFFSetField(tif, TIFFTAG_DNGVERSION, dng_version) &&
             TIFFSetField(tif, TIFFTAG_DNGBACKWARDVERSION, dng_backward) &&
             TIFFSetField(tif, TIFFTAG_UNIQUECAMERAMODEL, "lumos synthetic") &&
             TIFFSetField(tif, TIFFTAG_BLACKLEVELREPEATDIM, linear ? repeat_one : repeat_dim) &&
             TIFFSetField(tif, TIFFTAG_BLACKLEVEL, linear ? 3 : 4, blk) &&
             TIFFSetField(tif, TIFFTAG_WHITELEVEL, 1, &wl) &&
             TIFFSetField(tif, TIFFTAG_COLORMATRIX1, 9, matrix) &&
             TIFFSetField(tif, TIFFTAG_CALIBRATIONILLUMINANT1, 21 /* D65 */) &&
             TIFFSetField(tif, TIFFTAG_ASSHOTNEUTRAL, 3, neutral);
    if (!ok)
        FAIL("TIFFSetField failed");

    tmsize_t bytes = (tmsize_t)width * height * spp * 2;
    /* TIFFWriteEncodedStrip may byte-swap in place on big-endian hosts, so it
     * gets a copy rather than the caller's const buffer. */
    void *buf = _TIFFmalloc(bytes);
    if (!buf)
        FAIL("out of memory");
    memcpy(buf, mosaic, (size_t)bytes);
    tmsize_t wrote = TIFFWriteEncodedStrip(tif, 0, buf, bytes);
    _TIFFfree(buf);
    if (wrote != bytes)
        FAIL("writing the mosaic failed");
    if (!TIFFWriteDirectory(tif))
        FAIL("writing the directory failed");
    TIFFClose(tif);
    return 0;

fail:
    if (tif) {
        TIFFClose(tif);
        remove(path);
    }
    return -1;
}

int lumos_test_write_bayer_dng(const char *path, const uint16_t *mosaic, int width, int height,
                               lumos_cfa cfa, const float black[4], float white,
                               const float cam_from_xyz[3][3], const float as_shot_neutral[3],
                               int orientation)
{
    if (cfa == LUMOS_CFA_NONE) {
        fprintf(stderr, "dng_writer: %s: no CFA pattern given\n", path ? path : "(null)");
        return -1;
    }
    return write_dng(path, mosaic, width, height, cfa, black, white, cam_from_xyz,
                     as_shot_neutral, orientation);
}

int lumos_test_write_linear_dng(const char *path, const uint16_t *rgb, int width, int height,
                                const float black[3], float white, const float cam_from_xyz[3][3],
                                const float as_shot_neutral[3], int orientation)
{
    const float blk[4] = {black[0], black[1], black[2], 0};
    return write_dng(path, rgb, width, height, LUMOS_CFA_NONE, blk, white, cam_from_xyz,
                     as_shot_neutral, orientation);
}
