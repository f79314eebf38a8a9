/* test_float_io.c — images of any kind: 32-bit float samples and any channel
 * count through TIFF and OpenEXR (bit-exact round trips, HALF, UINT and tiled
 * EXRs written here with OpenEXRCore, damaged and truncated files), PNG/JPEG
 * refusing them without leaving a file, orientation, and on the real CR2
 * (argv[1]) the classical ISP's float output against its 16-bit output and
 * lumos_convert_file to .exr and 32-bit .tif. */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <openexr.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <unistd.h>

#include "check.h"
#include "lumos.h"
#include "test_tmp.h"

static int contains(const char *s, const char *part) { return strstr(s, part) != NULL; }



static float *fpx(const lumos_image *im, int x, int y)
{
    uint8_t *row = (uint8_t *)im->data + (size_t)y * im->stride;
    return (float *)(void *)row + (size_t)x * im->channels;
}

/* Random floats of every kind a float file must keep bit for bit: signed
 * values far outside 0..1, zeros of both signs, subnormals, infinities and
 * a NaN with a payload. */
static lumos_image float_image(int w, int h, int ch, uint32_t seed)
{
    lumos_image im;
    if (lumos_image_alloc(&im, w, h, ch, 32)) exit(1);
    im.space = LUMOS_SPACE_LINEAR_SRGB;
    static const uint32_t special[] = {0x00000000u, 0x80000000u, 0x00000001u, 0x007fffffu,
                                       0x7f800000u, 0xff800000u, 0x7fc01234u, 0x3f800000u};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++) {
                uint32_t r = rng(&seed), bits;
                if ((r & 15) == 0) {
                    bits = special[(r >> 4) & 7];
                    memcpy(&fpx(&im, x, y)[c], &bits, 4);
                } else {
                    fpx(&im, x, y)[c] = ((float)(r & 0xffff) / 4096.f - 4.f) *
                                        ldexpf(1.f, (int)((r >> 16) % 40) - 20);
                }
            }
    return im;
}

/* Bit-for-bit equality of two float images; the count of differing samples
 * (or -1 when the shapes differ). */
static long float_diff(const lumos_image *a, const lumos_image *b)
{
    if (a->width != b->width || a->height != b->height || a->channels != b->channels ||
        a->bits != 32 || b->bits != 32)
        return -1;
    long bad = 0;
    for (int y = 0; y < a->height; y++)
        bad += memcmp(fpx(a, 0, y), fpx(b, 0, y), (size_t)a->width * a->channels * 4) != 0
                   ? 1 : 0;
    return bad;
}

/* ------------------------------------------------------ round trips */

static void test_round_trips(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    static const int sizes[][2] = {{1, 1}, {37, 23}, {300, 70}};
    static const char *const suffix[] = {"tif", "exr"};
    for (int f = 0; f < 2; f++)
        for (int ch = 1; ch <= 5; ch++)
            for (int s = 0; s < 3; s++) {
                int w = sizes[s][0], h = sizes[s][1];
                lumos_image im = float_image(w, h, ch, (uint32_t)(100 * f + 10 * ch + s));
                const char *path = tpath("f32_%dx%d_c%d.%s", w, h, ch, suffix[f]);
                int st = lumos_image_write(ctx, &im, path, NULL);
                CHECK(st == LUMOS_OK, "write %s: %s", path, lumos_last_error(ctx));
                lumos_image back;
                st = lumos_image_read(ctx, path, &back);
                CHECK(st == LUMOS_OK, "read %s: %s", path, lumos_last_error(ctx));
                if (st) continue;
                long bad = float_diff(&im, &back);
                CHECK(bad == 0, "%s: %ld rows differ (read %dx%d c%d b%d)", path, bad,
                      back.width, back.height, back.channels, back.bits);
                if (f == 1)
                    CHECK(back.space == LUMOS_SPACE_LINEAR_SRGB, "%s: space %d", path, back.space);
                lumos_image_free(&back);
                lumos_image_free(&im);
            }

    /* 8/16-bit images with extra channels through TIFF keep every sample;
     * through EXR they become floats 0..1. */
    for (int bits = 8; bits <= 16; bits += 8)
        for (int ch = 2; ch <= 5; ch++) {
            lumos_image im;
            if (lumos_image_alloc(&im, 19, 7, ch, bits)) exit(1);
            im.space = LUMOS_SPACE_LINEAR_SRGB;
            uint32_t seed = (uint32_t)(bits * 7 + ch);
            for (size_t i = 0; i < im.stride * 7; i++)
                ((uint8_t *)im.data)[i] = (uint8_t)rng(&seed);
            const char *tif = tpath("int_c%d_b%d.tif", ch, bits);
            const char *exr = tpath("int_c%d_b%d.exr", ch, bits);
            CHECK(lumos_image_write(ctx, &im, tif, NULL) == LUMOS_OK, "%s: %s", tif,
                  lumos_last_error(ctx));
            CHECK(lumos_image_write(ctx, &im, exr, NULL) == LUMOS_OK, "%s: %s", exr,
                  lumos_last_error(ctx));
            lumos_image back;
            int st = lumos_image_read(ctx, tif, &back);
            CHECK(st == 0 && back.channels == ch && back.bits == bits &&
                      !memcmp(back.data, im.data, im.stride * 7),
                  "%s: %s (c%d b%d)", tif, lumos_last_error(ctx), back.channels, back.bits);
            if (!st) lumos_image_free(&back);
            st = lumos_image_read(ctx, exr, &back);
            int bad = st || back.channels != ch || back.bits != 32;
            for (int y = 0; !bad && y < 7; y++)
                for (int i = 0; i < 19 * ch; i++) {
                    const uint8_t *row = (const uint8_t *)im.data + (size_t)y * im.stride;
                    const uint16_t *row16 = (const uint16_t *)(const void *)row;
                    float want = bits == 8 ? row[i] / 255.f : row16[i] / 65535.f;
                    bad += fpx(&back, 0, y)[i] != want;
                }
            CHECK(bad == 0, "%s: %s (%d wrong)", exr, lumos_last_error(ctx), bad);
            if (!st) lumos_image_free(&back);
            lumos_image_free(&im);
        }

    /* The RGBA TIFF marks its alpha unassociated; 5 channels: RGB + 2 unspecified. */
    for (int ch = 4; ch <= 5; ch++) {
        TIFF *t = TIFFOpen(tpath("f32_37x23_c%d.tif", ch), "r");
        uint16_t n = 0, *kinds = NULL, fmt = 0, photo = 0;
        CHECK(t && TIFFGetField(t, TIFFTAG_EXTRASAMPLES, &n, &kinds) &&
                  TIFFGetField(t, TIFFTAG_SAMPLEFORMAT, &fmt) &&
                  TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &photo),
              "c%d TIFF tags", ch);
        CHECK(n == ch - 3 && kinds && fmt == SAMPLEFORMAT_IEEEFP && photo == PHOTOMETRIC_RGB &&
                  kinds[0] == (ch == 4 ? EXTRASAMPLE_UNASSALPHA : EXTRASAMPLE_UNSPECIFIED),
              "c%d TIFF: %u extra, kind %u, format %u, photometric %u", ch, n,
              kinds ? kinds[0] : 99, fmt, photo);
        if (t) TIFFClose(t);
    }
    lumos_ctx_free(ctx);
}

/* ------------------------------------------- EXRs written here */

/* binary16 -> float, as the definition reads (not as lumos computes it). */
static float half_value(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0    ? m * pow(2, -24)
               : e == 31 ? (m ? NAN : INFINITY)
                         : (1 + m / 1024.0) * pow(2, e - 15);
    return (float)(h & 0x8000 ? -v : v);
}

typedef struct {
    const char *name;
    exr_pixel_type_t type;
} chan;

/* Writes an EXR with OpenEXRCore: channel i of pixel (x, y) holds
 * value_bits(i, x, y) (the half's or the float's or the uint's bits), each
 * channel from its own plane. Scanline ZIP, or 16×16 tiles uncompressed. */
static uint32_t value_bits(int i, int x, int y, exr_pixel_type_t t)
{
    uint32_t v = (uint32_t)(x * 131 + y * 977 + i * 7919) * 2654435761u;
    if (t == EXR_PIXEL_HALF) {
        v &= 0xffff;
        if (((v >> 10) & 31) == 31) v &= ~0x7c00u; /* no inf/NaN: compared with != */
        return v;
    }
    if (t == EXR_PIXEL_FLOAT) return v & 0xbfffffffu; /* finite */
    return v;
}

static int write_exr(const char *path, int w, int h, const chan *ch, int n, int tiled,
                     const exr_attr_chromaticities_t *chr)
{
    exr_context_initializer_t init = EXR_DEFAULT_CONTEXT_INITIALIZER;
    exr_context_t f;
    int part, rv = exr_start_write(&f, path, EXR_WRITE_FILE_DIRECTLY, &init);
    if (rv) return rv;
    rv = exr_add_part(f, NULL, tiled ? EXR_STORAGE_TILED : EXR_STORAGE_SCANLINE, &part);
    if (!rv)
        rv = exr_initialize_required_attr_simple(f, part, w, h,
                                                 tiled ? EXR_COMPRESSION_NONE : EXR_COMPRESSION_ZIP);
    if (!rv && tiled)
        rv = exr_set_tile_descriptor(f, part, 16, 16, EXR_TILE_ONE_LEVEL, EXR_TILE_ROUND_DOWN);
    for (int i = 0; !rv && i < n; i++)
        rv = exr_add_channel(f, part, ch[i].name, ch[i].type, EXR_PERCEPTUALLY_LOGARITHMIC, 1, 1);
    if (!rv && chr) rv = exr_attr_set_chromaticities(f, part, "chromaticities", chr);
    if (!rv) rv = exr_write_header(f);
    /* Planes of 4-byte slots, each channel's values in its own type. */
    uint8_t *planes = calloc((size_t)n * w * h, 4);
    for (int i = 0; planes && i < n; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                uint32_t v = value_bits(i, x, y, ch[i].type);
                uint8_t *d = planes + (((size_t)i * h + y) * w + x) * 4;
                if (ch[i].type == EXR_PIXEL_HALF) {
                    uint16_t hv = (uint16_t)v;
                    memcpy(d, &hv, 2);
                } else {
                    memcpy(d, &v, 4);
                }
            }
    exr_encode_pipeline_t enc = EXR_ENCODE_PIPELINE_INITIALIZER;
    int started = 0, lines = 16;
    if (!rv && !tiled) rv = exr_get_scanlines_per_chunk(f, part, &lines);
    int nx = tiled ? (w + 15) / 16 : 1, ny = tiled ? (h + 15) / 16 : (h + lines - 1) / lines;
    for (int ty = 0; !rv && planes && ty < ny; ty++)
        for (int tx = 0; !rv && tx < nx; tx++) {
            exr_chunk_info_t ci;
            rv = tiled ? exr_write_tile_chunk_info(f, part, tx, ty, 0, 0, &ci)
                       : exr_write_scanline_chunk_info(f, part, ty * lines, &ci);
            if (!rv) rv = started ? exr_encoding_update(f, part, &ci, &enc)
                                  : exr_encoding_initialize(f, part, &ci, &enc);
            int x0 = tiled ? tx * 16 : 0, y0 = tiled ? ty * 16 : ty * lines;
            for (int k = 0; !rv && k < enc.channel_count; k++) {
                int i = 0;
                while (strcmp(ch[i].name, enc.channels[k].channel_name)) i++;
                exr_coding_channel_info_t *c = &enc.channels[k];
                int bytes = ch[i].type == EXR_PIXEL_HALF ? 2 : 4;
                c->user_data_type = (uint16_t)ch[i].type;
                c->user_bytes_per_element = (int16_t)bytes;
                c->user_pixel_stride = 4; /* 2-byte halves in 4-byte slots */
                c->user_line_stride = w * 4;
                c->encode_from_ptr = planes + (((size_t)i * h + y0) * w + x0) * 4;
            }
            if (!rv && !started) rv = exr_encoding_choose_default_routines(f, part, &enc);
            started = 1;
            if (!rv) rv = exr_encoding_run(f, part, &enc);
        }
    if (started) exr_encoding_destroy(f, &enc);
    int fin = exr_finish(&f);
    free(planes);
    return rv ? rv : fin;
}

static void test_foreign_exr(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    static const chan rgba[] = {{"R", EXR_PIXEL_HALF}, {"G", EXR_PIXEL_HALF},
                                {"B", EXR_PIXEL_HALF}, {"A", EXR_PIXEL_HALF}};
    static const chan gray[] = {{"Y", EXR_PIXEL_HALF}};
    static const chan rgbz[] = {{"Z", EXR_PIXEL_FLOAT}, {"B", EXR_PIXEL_HALF},
                                {"G", EXR_PIXEL_HALF},  {"R", EXR_PIXEL_HALF},
                                {"id", EXR_PIXEL_UINT}};
    static const struct {
        const char *name;
        const chan *ch;
        int n, tiled;
        int order[5]; /* image channel of each listed channel */
    } cases[] = {
        {"half_rgba.exr", rgba, 4, 0, {0, 1, 2, 3}},
        {"half_rgba_tiled.exr", rgba, 4, 1, {0, 1, 2, 3}},
        {"half_y.exr", gray, 1, 0, {0}},
        /* R G B first, then the rest by name: "Z" before "id" */
        {"mixed.exr", rgbz, 5, 0, {3, 2, 1, 0, 4}},
        {"mixed_tiled.exr", rgbz, 5, 1, {3, 2, 1, 0, 4}},
    };
    enum { W = 45, H = 37 };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const char *path = tpath("%s", cases[k].name);
        int rv = write_exr(path, W, H, cases[k].ch, cases[k].n, cases[k].tiled, NULL);
        CHECK(rv == 0, "%s: OpenEXRCore write: %s", path, exr_get_default_error_message(rv));
        lumos_image back;
        int st = lumos_image_read(ctx, path, &back);
        CHECK(st == 0 && back.width == W && back.height == H && back.channels == cases[k].n &&
                  back.bits == 32 && back.space == LUMOS_SPACE_LINEAR_SRGB,
              "%s: %s (%dx%d c%d b%d)", path, lumos_last_error(ctx), back.width, back.height,
              back.channels, back.bits);
        if (st) continue;
        long bad = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int i = 0; i < cases[k].n; i++) {
                    exr_pixel_type_t t = cases[k].ch[i].type;
                    uint32_t v = value_bits(i, x, y, t);
                    float want;
                    if (t == EXR_PIXEL_HALF) want = half_value((uint16_t)v);
                    else if (t == EXR_PIXEL_UINT) want = (float)v;
                    else memcpy(&want, &v, 4);
                    bad += fpx(&back, x, y)[cases[k].order[i]] != want;
                }
        CHECK(bad == 0, "%s: %ld samples wrong", path, bad);
        lumos_image_free(&back);
    }

    /* ACES primaries are not sRGB's: camera space, no profile implied. */
    static const exr_attr_chromaticities_t aces = {0.7347f, 0.2653f, 0.f,     1.f,
                                                   0.0001f, -0.077f, 0.32168f, 0.33767f};
    const char *path = tpath("aces.exr");
    CHECK(write_exr(path, 5, 4, gray, 1, 0, &aces) == 0, "aces.exr written");
    lumos_image back;
    int st = lumos_image_read(ctx, path, &back);
    CHECK(st == 0 && back.space == LUMOS_SPACE_CAMERA, "%s: %s, space %d", path,
          lumos_last_error(ctx), back.space);
    if (!st) lumos_image_free(&back);
    lumos_ctx_free(ctx);
}

/* Half and double float TIFFs (as other programs write them) read as
 * float32: contiguous half RGB, planar double gray + 1 extra. */
static void test_foreign_tiff(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    enum { W = 21, H = 13 };
    for (int kind = 0; kind < 2; kind++) {
        const char *path = tpath(kind ? "double_planar.tif" : "half_rgb.tif");
        const int spp = kind ? 2 : 3;
        TIFF *t = TIFFOpen(path, kind ? "wb" : "wl");
        TIFFSetField(t, TIFFTAG_IMAGEWIDTH, W);
        TIFFSetField(t, TIFFTAG_IMAGELENGTH, H);
        TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, kind ? 64 : 16);
        TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_IEEEFP);
        TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, spp);
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC, kind ? PHOTOMETRIC_MINISBLACK : PHOTOMETRIC_RGB);
        TIFFSetField(t, TIFFTAG_PLANARCONFIG, kind ? PLANARCONFIG_SEPARATE : PLANARCONFIG_CONTIG);
        TIFFSetField(t, TIFFTAG_COMPRESSION, kind ? COMPRESSION_LZW : COMPRESSION_NONE);
        TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 4);
        if (kind) {
            uint16_t extra = EXTRASAMPLE_UNSPECIFIED;
            TIFFSetField(t, TIFFTAG_EXTRASAMPLES, 1, &extra);
            double row[W];
            for (int c = 0; c < spp; c++)
                for (int y = 0; y < H; y++) {
                    for (int x = 0; x < W; x++) row[x] = (x - 10) * 1.000001 + y * 1e-3 + c * 100;
                    TIFFWriteScanline(t, row, (uint32_t)y, (uint16_t)c);
                }
        } else {
            uint16_t row[W * 3];
            for (int y = 0; y < H; y++) {
                for (int i = 0; i < W * 3; i++)
                    row[i] = (uint16_t)value_bits(i % 3, i / 3, y, EXR_PIXEL_HALF);
                TIFFWriteScanline(t, row, (uint32_t)y, 0);
            }
        }
        TIFFClose(t);
        lumos_image back;
        int st = lumos_image_read(ctx, path, &back);
        CHECK(st == 0 && back.bits == 32 && back.channels == spp && back.width == W,
              "%s: %s (c%d b%d)", path, lumos_last_error(ctx), back.channels, back.bits);
        if (st) continue;
        int bad = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < spp; c++) {
                    float want = kind ? (float)((x - 10) * 1.000001 + y * 1e-3 + c * 100)
                                      : half_value((uint16_t)value_bits(c, x, y, EXR_PIXEL_HALF));
                    bad += fpx(&back, x, y)[c] != want;
                }
        CHECK(bad == 0, "%s: %d samples wrong", path, bad);
        lumos_image_free(&back);
    }
    lumos_ctx_free(ctx);
}

/* ------------------------------------------------ damaged files */

static uint8_t *slurp(const char *path, size_t *size)
{
    return read_all(path, size);
}

/* Every cut of a file, and bytes overwritten at many places: an error
 * naming the file for each cut, and never a crash. */
static void damage(lumos_ctx *ctx, const char *good, const char *kind)
{
    size_t size;
    uint8_t *bytes = slurp(good, &size);
    CHECK(bytes && size > 64, "%s: cannot read", good);
    if (!bytes) return;
    const char *cut = tpath("cut_%s", kind);
    int wrong = 0;
    size_t step = size / 200 + 1;
    for (size_t keep = 0; keep < size; keep += keep < 64 ? 1 : step) {
        write_all(cut, bytes, keep);
        lumos_image out;
        memset(&out, 0x5a, sizeof out);
        int st = lumos_image_read(ctx, cut, &out);
        if (st == 0 || !contains(lumos_last_error(ctx), cut) || out.data) {
            if (wrong++ < 5)
                fprintf(stderr, "%s cut to %zu bytes: status %d, %s\n", kind, keep, st,
                        lumos_last_error(ctx));
            if (st == 0) lumos_image_free(&out);
        }
    }
    CHECK(wrong == 0, "%s: %d cut files not refused", kind, wrong);
    /* Overwritten bytes: any outcome but a crash; errors name the file. */
    const char *hit = tpath("hit_%s", kind);
    uint32_t seed = 5;
    int unnamed = 0;
    for (int k = 0; k < 300; k++) {
        uint8_t *copy = malloc(size);
        memcpy(copy, bytes, size);
        for (int j = 0; j < 4; j++) copy[8 + rng(&seed) % (size - 8)] = (uint8_t)rng(&seed);
        write_all(hit, copy, size);
        lumos_image out;
        int st = lumos_image_read(ctx, hit, &out);
        if (st == 0) lumos_image_free(&out);
        else unnamed += !contains(lumos_last_error(ctx), hit);
        free(copy);
    }
    CHECK(unnamed == 0, "%s: %d errors without the file name", kind, unnamed);
    free(bytes);
}

static void test_damaged(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    lumos_image im = float_image(150, 90, 4, 77);
    const char *exr = tpath("good.exr"), *tif = tpath("good.tif");
    CHECK(lumos_image_write(ctx, &im, exr, NULL) == 0, "good.exr: %s", lumos_last_error(ctx));
    CHECK(lumos_image_write(ctx, &im, tif, NULL) == 0, "good.tif: %s", lumos_last_error(ctx));
    damage(ctx, exr, "exr");
    damage(ctx, tif, "tif");
    damage(ctx, tpath("half_rgba_tiled.exr"), "tiled_exr");

    /* The magic number and nothing sensible after it. */
    uint8_t junk[300] = {0x76, 0x2f, 0x31, 0x01, 2, 0, 0, 0};
    uint32_t seed = 9;
    for (size_t i = 8; i < sizeof junk; i++) junk[i] = (uint8_t)rng(&seed);
    const char *path = tpath("junk.exr");
    write_all(path, junk, sizeof junk);
    lumos_image out;
    int st = lumos_image_read(ctx, path, &out);
    CHECK(st == LUMOS_E_FORMAT && contains(lumos_last_error(ctx), path) &&
              contains(lumos_last_error(ctx), "OpenEXR"),
          "junk.exr: %d %s", st, lumos_last_error(ctx));
    if (!st) lumos_image_free(&out);
    lumos_image_free(&im);
    lumos_ctx_free(ctx);
}

/* ------------------------------------- formats that refuse floats */

static void test_refusals(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    lumos_image f3 = float_image(8, 6, 3, 1), i5, i2, srgb = float_image(8, 6, 3, 2);
    if (lumos_image_alloc(&i5, 8, 6, 5, 16) || lumos_image_alloc(&i2, 8, 6, 2, 8)) exit(1);
    srgb.space = LUMOS_SPACE_SRGB;
    static const char *const names[] = {"f.png", "f.jpg", "c5.png", "c5.jpg", "c2.png", "c2.jpg",
                                        "srgb.exr"};
    const lumos_image *imgs[] = {&f3, &f3, &i5, &i5, &i2, &i2, &srgb};
    for (int k = 0; k < 7; k++) {
        const char *path = tpath("%s", names[k]);
        lumos_write_options o;
        lumos_write_options_init(&o);
        o.overwrite = 1;
        int st = lumos_image_write(ctx, imgs[k], path, &o);
        CHECK(st == LUMOS_E_ARG && contains(lumos_last_error(ctx), path) && !exists(path),
              "%s: %d %s", names[k], st, lumos_last_error(ctx));
    }
    CHECK(contains((lumos_image_write(ctx, &f3, tpath("f.png"), NULL), lumos_last_error(ctx)),
                   "float"),
          "message: %s", lumos_last_error(ctx));
    CHECK(hidden_entries(tmpdir) == 0, "temporaries left after refusals");
    /* A float PNG asked for by format, under another name: refused too. */
    lumos_write_options o;
    lumos_write_options_init(&o);
    o.format = LUMOS_FORMAT_PNG;
    CHECK(lumos_image_write(ctx, &f3, tpath("f.dat"), &o) == LUMOS_E_ARG && !exists(tpath("f.dat")),
          "float as PNG by format");
    lumos_image_free(&f3);
    lumos_image_free(&i5);
    lumos_image_free(&i2);
    lumos_image_free(&srgb);
    lumos_ctx_free(ctx);
}

/* ------------------------------------------------- orientation */

static void test_orient(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    enum { W = 7, H = 4, C = 5 };
    for (int o = 1; o <= 8; o++) {
        lumos_image im = float_image(W, H, C, 3), ref = float_image(W, H, C, 3);
        CHECK(lumos_image_orient(ctx, &im, o) == 0, "orient %d: %s", o, lumos_last_error(ctx));
        int swap = o >= 5;
        CHECK(im.width == (swap ? H : W) && im.height == (swap ? W : H) && im.bits == 32 &&
                  im.channels == C,
              "orient %d: %dx%d", o, im.width, im.height);
        int bad = 0;
        /* Naive: where does upright (x, y) come from in the stored image? */
        for (int y = 0; y < im.height; y++)
            for (int x = 0; x < im.width; x++) {
                int sx, sy;
                switch (o) {
                case 1: sx = x, sy = y; break;
                case 2: sx = W - 1 - x, sy = y; break;
                case 3: sx = W - 1 - x, sy = H - 1 - y; break;
                case 4: sx = x, sy = H - 1 - y; break;
                case 5: sx = y, sy = x; break;
                case 6: sx = y, sy = H - 1 - x; break;
                case 7: sx = W - 1 - y, sy = H - 1 - x; break;
                default: sx = W - 1 - y, sy = x; break;
                }
                bad += memcmp(fpx(&im, x, y), fpx(&ref, sx, sy), C * 4) != 0;
            }
        CHECK(bad == 0, "orient %d: %d pixels wrong", o, bad);
        lumos_image_free(&im);
        lumos_image_free(&ref);
    }
    lumos_ctx_free(ctx);
}

/* ------------------------------------------------- the real CR2 */

static void test_cr2(const char *cr2)
{
    lumos_ctx *ctx = lumos_ctx_new();
    lumos_ctx_set_threads(ctx, 2);
    lumos_raw *raw = NULL;
    if (lumos_raw_open_file(ctx, cr2, &raw) != LUMOS_OK) {
        CHECK(0, "%s: %s", cr2, lumos_last_error(ctx));
        lumos_ctx_free(ctx);
        return;
    }
    /* Float = the 16-bit output before quantisation: within half a step
     * (+ float rounding) of it, for sRGB with the tone curve and linear
     * output, full and half size. */
    for (int k = 0; k < 4; k++) {
        lumos_isp_options o;
        lumos_isp_options_init(&o);
        o.linear = k & 1;
        o.half = k >> 1;
        o.exposure_ev = 0.5f;
        lumos_image u16, f32;
        o.bits = 16;
        int st = lumos_isp_classic(ctx, raw, &o, &u16);
        o.bits = 32;
        st = st ? st : lumos_isp_classic(ctx, raw, &o, &f32);
        CHECK(st == 0, "ISP %d: %s", k, lumos_last_error(ctx));
        if (st) continue;
        CHECK(f32.bits == 32 && f32.channels == 3 && f32.width == u16.width &&
                  f32.height == u16.height && f32.space == u16.space,
              "ISP %d: float image %dx%d c%d b%d space %d", k, f32.width, f32.height,
              f32.channels, f32.bits, f32.space);
        double worst = 0;
        long outside = 0;
        for (int y = 0; y < u16.height; y++) {
            const uint8_t *line = (const uint8_t *)u16.data + (size_t)y * u16.stride;
            const uint16_t *a = (const uint16_t *)(const void *)line;
            const float *b = fpx(&f32, 0, y);
            for (int i = 0; i < u16.width * 3; i++) {
                double d = fabs(b[i] * 65535.0 - a[i]);
                if (d > worst) worst = d;
                outside += !(b[i] >= 0.f && b[i] <= 1.f);
            }
        }
        printf("ISP %s%s: float vs 16-bit: max %.4f steps of 1/65535\n",
               o.linear ? "linear" : "sRGB", o.half ? " half" : "", worst);
        CHECK(worst <= 0.5 + 0.01 && outside == 0,
              "ISP %d: float differs from 16-bit by %.4f/65535, %ld outside 0..1", k, worst,
              outside);
        lumos_image_free(&u16);
        lumos_image_free(&f32);
    }

    /* lumos_convert_file to .exr (linear) and to a 32-bit .tif: the files
     * hold exactly the ISP's upright float output. */
    lumos_convert_options co;
    lumos_convert_options_init(&co);
    co.isp.linear = 1;
    co.isp.bits = 32;
    co.write.overwrite = 1;
    lumos_image ref;
    int st = lumos_isp_classic(ctx, raw, &co.isp, &ref);
    if (!st) st = lumos_image_orient(ctx, &ref, lumos_raw_get_info(raw)->orientation);
    CHECK(st == 0, "reference: %s", lumos_last_error(ctx));
    static const char *const outs[] = {"cr2.exr", "cr2.tif"};
    for (int k = 0; !st && k < 2; k++) {
        const char *path = tpath("%s", outs[k]);
        int rc = lumos_convert_file(ctx, cr2, path, &co);
        CHECK(rc == 0, "convert to %s: %s", path, lumos_last_error(ctx));
        lumos_image back;
        if (rc || lumos_image_read(ctx, path, &back)) {
            CHECK(rc, "read %s: %s", path, lumos_last_error(ctx));
            continue;
        }
        long bad = float_diff(&ref, &back);
        CHECK(bad == 0, "%s: %ld rows differ from the ISP's output", path, bad);
        if (k == 0) {
            CHECK(back.space == LUMOS_SPACE_LINEAR_SRGB, "%s: space %d", path, back.space);
            /* The EXIF that EXR has standard attributes for. */
            exr_context_t f;
            const char *date = NULL;
            float exp_time = 0, iso = 0;
            int32_t len = 0;
            CHECK(exr_start_read(&f, path, NULL) == 0 &&
                      exr_attr_get_string(f, 0, "capDate", &len, &date) == 0 && len == 19 &&
                      !strncmp(date, lumos_raw_get_info(raw)->exif.datetime, 19) &&
                      exr_attr_get_float(f, 0, "expTime", &exp_time) == 0 &&
                      exp_time == lumos_raw_get_info(raw)->exif.exposure_s &&
                      exr_attr_get_float(f, 0, "isoSpeed", &iso) == 0 &&
                      iso == lumos_raw_get_info(raw)->exif.iso,
                  "%s: EXIF attributes: date %.19s, time %g, ISO %g", path, date ? date : "-",
                  exp_time, iso);
            exr_finish(&f);
        }
        lumos_image_free(&back);
    }
    /* EXR from a convert asking for 16 bits: developed as float all the same. */
    co.isp.bits = 16;
    const char *path = tpath("cr2_16.exr");
    CHECK(lumos_convert_file(ctx, cr2, path, &co) == 0, "%s: %s", path, lumos_last_error(ctx));
    lumos_image back;
    if (!st && lumos_image_read(ctx, path, &back) == 0) {
        CHECK(float_diff(&ref, &back) == 0, "%s: not the float development", path);
        lumos_image_free(&back);
    }
    /* EXR without linear output, PNG at 32 bits: refused before any work, no file. */
    co.isp.linear = 0;
    path = tpath("srgb.exr");
    int rc = lumos_convert_file(ctx, cr2, path, &co);
    CHECK(rc == LUMOS_E_ARG && !exists(path) && contains(lumos_last_error(ctx), "linear"),
          "sRGB EXR: %d %s", rc, lumos_last_error(ctx));
    co.isp.bits = 32;
    path = tpath("float.png");
    rc = lumos_convert_file(ctx, cr2, path, &co);
    CHECK(rc == LUMOS_E_ARG && !exists(path), "float PNG: %d %s", rc, lumos_last_error(ctx));
    CHECK(hidden_entries(tmpdir) == 0, "temporaries left by conversions");
    if (!st) lumos_image_free(&ref);
    lumos_raw_free(raw);
    lumos_ctx_free(ctx);
}

int main(int argc, char **argv)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/lumos-test-float-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trips();
    test_foreign_exr();
    test_foreign_tiff();
    test_damaged();
    test_refusals();
    test_orient();
    if (argc > 1 && access(argv[1], R_OK) == 0) test_cr2(argv[1]);
    else printf("no CR2 given (or unreadable): the ISP and convert checks are skipped\n");
    if (failures == 0) rm_rf(tmpdir);
    else fprintf(stderr, "files kept in %s\n", tmpdir);
    printf("%s: %d failure(s)\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}
