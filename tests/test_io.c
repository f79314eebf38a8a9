/* test_io.c — image I/O: allocation, orientation, JPEG/PNG/TIFF round trips,
 * embedded ICC profiles and EXIF, atomic-write failures, bad inputs.
 * (The full-disk and read-only cases need a mount: test_io_full_disk.c.) */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lcms2.h>
#include <limits.h>
#include <math.h>
#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "io/io.h"
#include "check.h"
#include "test_tmp.h"
#include "lumos.h"


/* ------------------------------------------------------------ images */


static int maxval(const lumos_image *im) { return im->bits == 8 ? 255 : 65535; }

static unsigned get(const lumos_image *im, int x, int y, int c)
{
    const uint8_t *row = (const uint8_t *)im->data + (size_t)y * im->stride;
    if (im->bits == 8) return row[x * im->channels + c];
    return ((const uint16_t *)row)[x * im->channels + c];
}

static void set(lumos_image *im, int x, int y, int c, unsigned v)
{
    uint8_t *row = (uint8_t *)im->data + (size_t)y * im->stride;
    if (im->bits == 8) row[x * im->channels + c] = (uint8_t)v;
    else ((uint16_t *)row)[x * im->channels + c] = (uint16_t)v;
}

/* Full-range random samples: lossless formats must keep every bit. */
static lumos_image random_image(int w, int h, int ch, int bits, uint32_t seed)
{
    lumos_image im;
    if (lumos_image_alloc(&im, w, h, ch, bits)) exit(1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++) set(&im, x, y, c, rng(&seed) % (unsigned)(maxval(&im) + 1));
    return im;
}

/* Smooth gradients and waves plus mild noise: a photograph-like JPEG input. */
static lumos_image photo_image(int w, int h, int ch, uint32_t seed)
{
    lumos_image im;
    if (lumos_image_alloc(&im, w, h, ch, 8)) exit(1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++) {
                double v = 0.15 + 0.5 * x / w + 0.2 * y / h +
                           0.12 * sin(x / (6.0 + c) + c) * cos(y / (5.0 + 2 * c)) +
                           ((int)(rng(&seed) % 7) - 3) / 255.0;
                int q = (int)lround(v * 255);
                set(&im, x, y, c, (unsigned)(q < 0 ? 0 : q > 255 ? 255 : q));
            }
    return im;
}

static int same_pixels(const lumos_image *a, const lumos_image *b)
{
    if (a->width != b->width || a->height != b->height || a->channels != b->channels ||
        a->bits != b->bits)
        return 0;
    for (int y = 0; y < a->height; y++)
        for (int x = 0; x < a->width; x++)
            for (int c = 0; c < a->channels; c++)
                if (get(a, x, y, c) != get(b, x, y, c)) return 0;
    return 1;
}

static double psnr(const lumos_image *a, const lumos_image *b)
{
    double se = 0;
    long n = 0;
    for (int y = 0; y < a->height; y++)
        for (int x = 0; x < a->width; x++)
            for (int c = 0; c < a->channels; c++, n++) {
                double d = (double)get(a, x, y, c) - get(b, x, y, c);
                se += d * d;
            }
    return se == 0 ? 99.0 : 10 * log10(255.0 * 255.0 * n / se);
}

/* ------------------------------------------------------- alloc, paths */

static void test_alloc(void)
{
    lumos_image im;
    CHECK(lumos_image_alloc(&im, 5, 3, 3, 16) == LUMOS_OK, "alloc");
    CHECK(im.width == 5 && im.height == 3 && im.channels == 3 && im.bits == 16 &&
              im.stride == 30 && im.data && im.space == LUMOS_SPACE_SRGB,
          "fields: %dx%d c%d b%d stride %zu", im.width, im.height, im.channels, im.bits,
          im.stride);
    int zero = 1;
    for (size_t i = 0; i < im.stride * 3; i++) zero &= ((uint8_t *)im.data)[i] == 0;
    CHECK(zero, "zeroed");
    lumos_image_free(&im);
    CHECK(im.data == NULL && im.width == 0, "free zeroes");
    lumos_image_free(&im); /* twice is harmless */

    /* Any channel count from 1, and float samples: 5 channels of 4 bytes. */
    CHECK(lumos_image_alloc(&im, 3, 2, 5, 32) == LUMOS_OK && im.stride == 60 && im.bits == 32 &&
              im.channels == 5,
          "5-channel float alloc: stride %zu", im.stride);
    lumos_image_free(&im);
    static const int bad[][4] = {{0, 3, 3, 8},  {3, 0, 3, 8},   {-1, 3, 1, 8}, {3, 3, -1, 8},
                                 {3, 3, 0, 8},  {3, 3, 3, 12},  {3, 3, 1, 24}, {3, 3, 3, 64},
                                 {3, 3, 3, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = lumos_image_alloc(&im, bad[i][0], bad[i][1], bad[i][2], bad[i][3]);
        CHECK(st == LUMOS_E_ARG && im.data == NULL, "bad alloc %d %d %d %d -> %d", bad[i][0],
              bad[i][1], bad[i][2], bad[i][3], st);
    }
    int st = lumos_image_alloc(&im, INT_MAX, INT_MAX, 3, 16);
    CHECK(st == LUMOS_E_NOMEM && im.data == NULL, "overflowing size -> %d", st);
    CHECK(lumos_image_alloc(NULL, 1, 1, 1, 8) == LUMOS_E_ARG, "NULL image");
}

static void test_paths(void)
{
    static const struct {
        const char *path;
        lumos_format f;
    } cases[] = {
        {"a.jpg", LUMOS_FORMAT_JPEG},      {"/x/y/A.JPG", LUMOS_FORMAT_JPEG},
        {"b.JpEg", LUMOS_FORMAT_JPEG},     {"c.png", LUMOS_FORMAT_PNG},
        {"C.PNG", LUMOS_FORMAT_PNG},       {"d.tif", LUMOS_FORMAT_TIFF},
        {"d.TIFF", LUMOS_FORMAT_TIFF},     {"e.gif", LUMOS_FORMAT_AUTO},
        {"f.exr", LUMOS_FORMAT_EXR},       {"/g/F.EXR", LUMOS_FORMAT_EXR},
        {"noext", LUMOS_FORMAT_AUTO},      {"dir.png/file", LUMOS_FORMAT_AUTO},
        {"x.png.bak", LUMOS_FORMAT_AUTO},  {"x.pngx", LUMOS_FORMAT_AUTO},
        {"x.", LUMOS_FORMAT_AUTO},         {"", LUMOS_FORMAT_AUTO},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK(lumos_format_from_path(cases[i].path) == cases[i].f, "format of \"%s\"",
              cases[i].path);
    CHECK(lumos_format_from_path(NULL) == LUMOS_FORMAT_AUTO, "NULL path");

    lumos_write_options o;
    memset(&o, 0x5a, sizeof o);
    lumos_write_options_init(&o);
    CHECK(o.format == LUMOS_FORMAT_AUTO && o.quality == 92 && o.subsampling == 444 &&
              o.exif == NULL && o.overwrite == 0,
          "write option defaults");
}

/* -------------------------------------------------------- orientation */

/* Where destination (x, y) reads the source, from the EXIF definitions. */
static void ref_source(int o, int W, int H, int x, int y, int *sx, int *sy)
{
    switch (o) {
    case 1: *sx = x, *sy = y; break;
    case 2: *sx = W - 1 - x, *sy = y; break;         /* mirror horizontal */
    case 3: *sx = W - 1 - x, *sy = H - 1 - y; break; /* rotate 180 */
    case 4: *sx = x, *sy = H - 1 - y; break;         /* mirror vertical */
    case 5: *sx = y, *sy = x; break;                 /* transpose */
    case 6: *sx = y, *sy = H - 1 - x; break;         /* rotate 90 CW */
    case 7: *sx = W - 1 - y, *sy = H - 1 - x; break; /* transverse */
    case 8: *sx = W - 1 - y, *sy = x; break;         /* rotate 90 CCW */
    }
}

static void test_orient(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    static const int layouts[][2] = {{3, 8}, {1, 16}, {3, 16}, {1, 8}};
    for (size_t l = 0; l < 4; l++) {
        const int W = 5, H = 3, ch = layouts[l][0], bits = layouts[l][1];
        lumos_image src = random_image(W, H, ch, bits, 77 + (uint32_t)l);
        for (int o = 1; o <= 8; o++) {
            lumos_image im = random_image(W, H, ch, bits, 77 + (uint32_t)l);
            im.space = LUMOS_SPACE_LINEAR_SRGB;
            int st = lumos_image_orient(ctx, &im, o);
            CHECK(st == LUMOS_OK, "orient %d: %s", o, lumos_last_error(ctx));
            if (st) continue;
            int dw = o >= 5 ? H : W, dh = o >= 5 ? W : H;
            CHECK(im.width == dw && im.height == dh && im.channels == ch && im.bits == bits &&
                      im.space == LUMOS_SPACE_LINEAR_SRGB,
                  "orient %d: %dx%d", o, im.width, im.height);
            int bad = 0;
            for (int y = 0; y < dh && im.width == dw; y++)
                for (int x = 0; x < dw; x++) {
                    int sx, sy;
                    ref_source(o, W, H, x, y, &sx, &sy);
                    for (int c = 0; c < ch; c++) bad += get(&im, x, y, c) != get(&src, sx, sy, c);
                }
            CHECK(bad == 0, "orient %d (c%d b%d): %d samples differ", o, ch, bits, bad);
            /* Where the source's top-left pixel must land, by meaning. */
            static const int corner[9][2] = {{0, 0}, {0, 0}, {1, 0}, {1, 1}, {0, 1},
                                             {0, 0}, {1, 0}, {1, 1}, {0, 1}};
            int cx = corner[o][0] ? dw - 1 : 0, cy = corner[o][1] ? dh - 1 : 0;
            CHECK(get(&im, cx, cy, 0) == get(&src, 0, 0, 0), "orient %d: top-left lands wrong", o);
            lumos_image_free(&im);
        }
        /* Inverses: 6 then 8, and each flip/180/transpose twice, restore. */
        static const int pairs[][2] = {{6, 8}, {8, 6}, {2, 2}, {3, 3}, {4, 4}, {5, 5}, {7, 7}};
        for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
            lumos_image im = random_image(W, H, ch, bits, 77 + (uint32_t)l);
            lumos_image_orient(ctx, &im, pairs[p][0]);
            lumos_image_orient(ctx, &im, pairs[p][1]);
            CHECK(same_pixels(&im, &src), "orient %d then %d is not identity", pairs[p][0],
                  pairs[p][1]);
            lumos_image_free(&im);
        }
        lumos_image_free(&src);
    }

    /* A padded stride in the input is honoured. */
    lumos_image src = random_image(4, 3, 3, 8, 5);
    lumos_image pad = {.width = 4, .height = 3, .channels = 3, .bits = 8, .stride = 4 * 3 + 7};
    pad.data = malloc(pad.stride * 3);
    for (int y = 0; y < 3; y++)
        memcpy((uint8_t *)pad.data + y * pad.stride, (uint8_t *)src.data + y * src.stride, 12);
    CHECK(lumos_image_orient(ctx, &pad, 6) == LUMOS_OK, "padded orient");
    lumos_image_orient(ctx, &src, 6);
    CHECK(same_pixels(&pad, &src) && pad.stride == 9, "padded stride orient");
    lumos_image_free(&pad);

    CHECK(lumos_image_orient(ctx, &src, 0) == LUMOS_E_ARG, "orientation 0");
    CHECK(lumos_image_orient(ctx, &src, 9) == LUMOS_E_ARG, "orientation 9");
    CHECK(src.width == 3 && src.height == 4 && src.data, "failed orient leaves image alone");
    lumos_image before = src;
    CHECK(lumos_image_orient(ctx, &src, 1) == LUMOS_OK && src.data == before.data, "1 = no-op");
    lumos_image_free(&src);
    lumos_image empty = {0};
    CHECK(lumos_image_orient(ctx, &empty, 6) == LUMOS_E_ARG, "empty image");
    lumos_ctx_free(ctx);
}

/* ------------------------------------------------- metadata extraction */

typedef struct {
    uint8_t *icc;
    size_t icc_size;
    uint8_t *exif;
    size_t exif_size;
    int first_is_app1, has_jfif, icc_chunks, icc_bad;
} jpeg_meta;

/* Walks the JPEG marker segments up to SOS, reassembling ICC chunks. */
static void scan_jpeg(const uint8_t *b, size_t n, jpeg_meta *m)
{
    memset(m, 0, sizeof *m);
    if (n < 4 || b[0] != 0xFF || b[1] != 0xD8) return;
    uint8_t *chunk[256] = {0};
    size_t chunk_len[256] = {0};
    int count = 0;
    size_t p = 2;
    int first = 1;
    while (p + 4 <= n && b[p] == 0xFF && b[p + 1] != 0xDA) {
        uint8_t mk = b[p + 1];
        size_t len = (size_t)b[p + 2] << 8 | b[p + 3];
        if (len < 2 || p + 2 + len > n) break;
        const uint8_t *d = b + p + 4;
        size_t dl = len - 2;
        if (first) m->first_is_app1 = mk == 0xE1;
        first = 0;
        if (mk == 0xE0 && dl >= 5 && !memcmp(d, "JFIF", 5)) m->has_jfif = 1;
        if (mk == 0xE1 && dl >= 6 && !memcmp(d, "Exif\0\0", 6)) {
            m->exif_size = dl - 6;
            m->exif = malloc(m->exif_size);
            memcpy(m->exif, d + 6, m->exif_size);
        }
        if (mk == 0xE2 && dl >= 14 && !memcmp(d, "ICC_PROFILE", 12)) {
            int seq = d[12];
            if (count && d[13] != count) m->icc_bad = 1;
            count = d[13];
            if (seq < 1 || seq > count || chunk[seq]) m->icc_bad = 1;
            else {
                chunk[seq] = malloc(dl - 14);
                memcpy(chunk[seq], d + 14, dl - 14);
                chunk_len[seq] = dl - 14;
                m->icc_chunks++;
            }
        }
        p += 2 + len;
    }
    if (m->icc_chunks && m->icc_chunks == count && !m->icc_bad) {
        for (int i = 1; i <= count; i++) m->icc_size += chunk_len[i];
        m->icc = malloc(m->icc_size);
        size_t o = 0;
        for (int i = 1; i <= count; i++) {
            memcpy(m->icc + o, chunk[i], chunk_len[i]);
            o += chunk_len[i];
        }
    } else if (m->icc_chunks) {
        m->icc_bad = 1;
    }
    for (int i = 0; i < 256; i++) free(chunk[i]);
}

static uint8_t *jpeg_icc(const char *path, size_t *size)
{
    size_t n;
    uint8_t *b = read_all(path, &n);
    jpeg_meta m;
    scan_jpeg(b, n, &m);
    free(b);
    free(m.exif);
    CHECK(!m.icc_bad, "%s: malformed ICC chunks", path);
    *size = m.icc_size;
    return m.icc;
}

static uint8_t *png_icc(const char *path, size_t *size)
{
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    uint8_t *volatile out = NULL;
    if (setjmp(png_jmpbuf(png)) == 0) {
        png_init_io(png, f);
        png_read_info(png, info);
        png_charp name;
        int comp;
        png_bytep prof;
        png_uint_32 len;
        if (png_get_iCCP(png, info, &name, &comp, &prof, &len) == PNG_INFO_iCCP) {
            out = malloc(len);
            memcpy(out, prof, len);
            *size = len;
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return out;
}

static uint8_t *tiff_icc(const char *path, size_t *size)
{
    *size = 0;
    TIFF *t = TIFFOpen(path, "r");
    if (!t) return NULL;
    uint32_t len;
    void *prof;
    uint8_t *out = NULL;
    if (TIFFGetField(t, TIFFTAG_ICCPROFILE, &len, &prof)) {
        out = malloc(len);
        memcpy(out, prof, len);
        *size = len;
    }
    TIFFClose(t);
    return out;
}

static uint8_t *file_icc(lumos_format f, const char *path, size_t *size)
{
    return f == LUMOS_FORMAT_JPEG ? jpeg_icc(path, size)
           : f == LUMOS_FORMAT_PNG ? png_icc(path, size)
                                   : tiff_icc(path, size);
}

static double srgb_decode(double v)
{
    return v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4);
}

/* The profile is what lumos says: RGB or gray, the right description, and
 * it maps values as sRGB (or linear sRGB) does. */
static void check_profile(const uint8_t *icc, size_t size, lumos_space space, int channels,
                          const char *where)
{
    CHECK(icc && size > 128, "%s: no ICC profile", where);
    if (!icc) return;
    cmsHPROFILE p = cmsOpenProfileFromMem(icc, (cmsUInt32Number)size);
    CHECK(p, "%s: lcms2 cannot open the profile", where);
    if (!p) return;
    CHECK(cmsGetColorSpace(p) == (channels == 3 ? cmsSigRgbData : cmsSigGrayData),
          "%s: profile colour space", where);
    CHECK(cmsGetDeviceClass(p) == cmsSigDisplayClass, "%s: profile class", where);
    char desc[128] = "";
    cmsGetProfileInfoASCII(p, cmsInfoDescription, "en", "US", desc, sizeof desc);
    const char *want = channels == 3 ? (space == LUMOS_SPACE_SRGB ? "lumos sRGB" : "lumos linear sRGB")
                                     : (space == LUMOS_SPACE_SRGB ? "lumos sRGB gray" : "lumos linear gray");
    CHECK(!strcmp(desc, want), "%s: description \"%s\", want \"%s\"", where, desc, want);

    cmsHPROFILE lab = cmsCreateLab4Profile(NULL);
    if (channels == 3) {
        /* Through XYZ against lcms2's own sRGB: encoded 0.5 (or linear
         * 0.214, its decoded value, in the linear profile) must agree. */
        cmsHPROFILE srgb = cmsCreate_sRGBProfile(), xyz = cmsCreateXYZProfile();
        cmsHTRANSFORM t = cmsCreateTransform(p, TYPE_RGB_DBL, xyz, TYPE_XYZ_DBL,
                                             INTENT_RELATIVE_COLORIMETRIC, 0);
        cmsHTRANSFORM r = cmsCreateTransform(srgb, TYPE_RGB_DBL, xyz, TYPE_XYZ_DBL,
                                             INTENT_RELATIVE_COLORIMETRIC, 0);
        CHECK(t && r, "%s: transform", where);
        static const double probes[][3] = {{0.5, 0.5, 0.5}, {0.2, 0.6, 0.9}, {1, 0, 0}, {0, 0, 1}};
        for (size_t i = 0; t && r && i < 4; i++) {
            double in[3], ref[3], got[3];
            for (int c = 0; c < 3; c++)
                in[c] = space == LUMOS_SPACE_SRGB ? probes[i][c] : srgb_decode(probes[i][c]);
            cmsDoTransform(t, in, got, 1);
            cmsDoTransform(r, probes[i], ref, 1);
            for (int c = 0; c < 3; c++)
                CHECK(fabs(got[c] - ref[c]) < 2e-3, "%s: probe %zu XYZ[%d] %f vs sRGB %f", where,
                      i, c, got[c], ref[c]);
        }
        if (t) cmsDeleteTransform(t);
        if (r) cmsDeleteTransform(r);
        cmsCloseProfile(srgb);
        cmsCloseProfile(xyz);
    } else {
        /* Gray 0.5 -> L*: sRGB-encoded 0.5 is Y 0.214 (L* 53.4); linear is Y 0.5. */
        cmsHTRANSFORM t = cmsCreateTransform(p, TYPE_GRAY_DBL, lab, TYPE_Lab_DBL,
                                             INTENT_RELATIVE_COLORIMETRIC, 0);
        CHECK(t, "%s: gray transform", where);
        if (t) {
            double g = 0.5;
            cmsCIELab L;
            cmsDoTransform(t, &g, &L, 1);
            double Y = space == LUMOS_SPACE_SRGB ? srgb_decode(0.5) : 0.5;
            double want_L = 116 * cbrt(Y) - 16;
            CHECK(fabs(L.L - want_L) < 0.3 && fabs(L.a) < 0.5 && fabs(L.b) < 0.5,
                  "%s: gray 0.5 -> L* %f a %f b %f, want L* %f", where, L.L, L.a, L.b, want_L);
            cmsDeleteTransform(t);
        }
    }
    cmsCloseProfile(lab);
    cmsCloseProfile(p);
}

/* -------------------------------------------------------- EXIF parsing */

typedef struct {
    const uint8_t *b;
    size_t n;
    int bad;
} tiffbuf;

static uint32_t rd16(const tiffbuf *t, size_t o) { return o + 2 <= t->n ? (uint32_t)t->b[o] | (uint32_t)t->b[o + 1] << 8 : 0; }
static uint32_t rd32(const tiffbuf *t, size_t o) { return rd16(t, o) | rd16(t, o + 2) << 16; }

typedef struct {
    uint16_t tag, type;
    uint32_t count;
    size_t off; /* where the value is */
} ifd_entry;

/* Reads an IFD, checking order, types and that every value is in bounds and
 * word-aligned. Returns the number of entries (up to max). */
static int read_ifd(tiffbuf *t, size_t at, ifd_entry *e, int max)
{
    static const int type_size[] = {0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8};
    if (at & 1 || at + 2 > t->n) return t->bad = 1, 0;
    int n = (int)rd16(t, at);
    if (n > max || at + 2 + 12 * (size_t)n + 4 > t->n) return t->bad = 1, 0;
    for (int i = 0; i < n; i++) {
        size_t p = at + 2 + 12 * (size_t)i;
        e[i].tag = (uint16_t)rd16(t, p);
        e[i].type = (uint16_t)rd16(t, p + 2);
        e[i].count = rd32(t, p + 4);
        if (i && e[i].tag <= e[i - 1].tag) t->bad = 1; /* ascending */
        if (e[i].type < 1 || e[i].type > 12) return t->bad = 1, 0;
        size_t len = (size_t)type_size[e[i].type] * e[i].count;
        e[i].off = len <= 4 ? p + 8 : rd32(t, p + 8);
        if (len > 4 && (e[i].off & 1)) t->bad = 1;
        if (e[i].off + len > t->n) t->bad = 1;
    }
    if (rd32(t, at + 2 + 12 * (size_t)n) != 0) t->bad = 1; /* one IFD each */
    return n;
}

static const ifd_entry *find(const ifd_entry *e, int n, uint16_t tag)
{
    for (int i = 0; i < n; i++)
        if (e[i].tag == tag) return &e[i];
    return NULL;
}

typedef struct {
    char make[80], model[80], datetime[24], datetime_orig[24], version[5];
    int orientation, iso, has_exif_ifd;
    double exposure, fnumber, focal;
    uint32_t exp_num, exp_den;
    int n0, nx;
} exif_info;

static void ascii(const tiffbuf *t, const ifd_entry *e, char *out, size_t cap, int *bad)
{
    out[0] = 0;
    if (!e) return;
    if (e->type != 2 || e->count == 0 || e->count > cap || t->b[e->off + e->count - 1] != 0) {
        *bad = 1;
        return;
    }
    memcpy(out, t->b + e->off, e->count);
}

static double rational(const tiffbuf *t, const ifd_entry *e, int *bad)
{
    if (!e) return 0;
    if (e->type != 5 || e->count != 1) return *bad = 1, 0;
    uint32_t d = rd32(t, e->off + 4);
    return d ? (double)rd32(t, e->off) / d : (*bad = 1, 0);
}

static int parse_exif(const uint8_t *b, size_t n, exif_info *x)
{
    memset(x, 0, sizeof *x);
    tiffbuf t = {b, n, 0};
    if (n < 8 || memcmp(b, "II*\0", 4)) return 0;
    ifd_entry e0[32], ex[32];
    x->n0 = read_ifd(&t, rd32(&t, 4), e0, 32);
    ascii(&t, find(e0, x->n0, 0x010F), x->make, sizeof x->make, &t.bad);
    ascii(&t, find(e0, x->n0, 0x0110), x->model, sizeof x->model, &t.bad);
    ascii(&t, find(e0, x->n0, 0x0132), x->datetime, sizeof x->datetime, &t.bad);
    const ifd_entry *o = find(e0, x->n0, 0x0112);
    if (o) x->orientation = o->type == 3 && o->count == 1 ? (int)rd16(&t, o->off) : (t.bad = 1, -1);
    const ifd_entry *p = find(e0, x->n0, 0x8769);
    if (p) {
        if (p->type != 4 || p->count != 1) t.bad = 1;
        x->has_exif_ifd = 1;
        x->nx = read_ifd(&t, rd32(&t, p->off), ex, 32);
        const ifd_entry *et = find(ex, x->nx, 0x829A);
        x->exposure = rational(&t, et, &t.bad);
        if (et) x->exp_num = rd32(&t, et->off), x->exp_den = rd32(&t, et->off + 4);
        x->fnumber = rational(&t, find(ex, x->nx, 0x829D), &t.bad);
        x->focal = rational(&t, find(ex, x->nx, 0x920A), &t.bad);
        const ifd_entry *i = find(ex, x->nx, 0x8827);
        if (i) x->iso = i->type == 3 && i->count == 1 ? (int)rd16(&t, i->off) : (t.bad = 1, -1);
        ascii(&t, find(ex, x->nx, 0x9003), x->datetime_orig, sizeof x->datetime_orig, &t.bad);
        const ifd_entry *v = find(ex, x->nx, 0x9000);
        if (v && v->type == 7 && v->count == 4) memcpy(x->version, t.b + v->off, 4);
        else t.bad = 1;
    }
    return !t.bad;
}

static lumos_exif sample_exif(void)
{
    lumos_exif e;
    memset(&e, 0, sizeof e);
    strcpy(e.make, "Canon");
    strcpy(e.model, "Canon EOS 30D");
    e.iso = 400;
    e.exposure_s = 1.0f / 250;
    e.aperture = 2.8f;
    e.focal_mm = 50;
    strcpy(e.datetime, "2024:05:06 07:08:09");
    return e;
}

static void check_sample_exif(const uint8_t *b, size_t n, const char *where)
{
    exif_info x;
    CHECK(parse_exif(b, n, &x), "%s: EXIF block does not parse", where);
    CHECK(!strcmp(x.make, "Canon") && !strcmp(x.model, "Canon EOS 30D"), "%s: make/model %s/%s",
          where, x.make, x.model);
    CHECK(x.orientation == 1, "%s: orientation %d", where, x.orientation);
    CHECK(!strcmp(x.datetime, "2024:05:06 07:08:09") &&
              !strcmp(x.datetime_orig, "2024:05:06 07:08:09"),
          "%s: dates %s / %s", where, x.datetime, x.datetime_orig);
    CHECK(x.has_exif_ifd && x.iso == 400, "%s: ISO %d", where, x.iso);
    CHECK(fabs(x.exposure - 1.0 / 250) < 1e-9, "%s: exposure %g", where, x.exposure);
    CHECK(fabs(x.fnumber - 2.8) < 1e-6, "%s: f-number %g", where, x.fnumber);
    CHECK(fabs(x.focal - 50) < 1e-9, "%s: focal %g", where, x.focal);
    CHECK(!strcmp(x.version, "0230"), "%s: ExifVersion %s", where, x.version);
}

static void test_exif_block(void)
{
    lumos_exif e = sample_exif();
    size_t n;
    uint8_t *b = lumos__exif_block(&e, &n);
    CHECK(b && n > 8, "exif block");
    if (b) check_sample_exif(b, n, "exif block");
    /* The shutter time as a photographer writes it: 1/250, not 40/10000. */
    exif_info x;
    parse_exif(b, n, &x);
    CHECK(x.exp_num == 1 && x.exp_den == 250, "ExposureTime %u/%u", x.exp_num, x.exp_den);
    free(b);

    /* Unknown fields are left out; Orientation and ExifVersion stay. */
    lumos_exif none;
    memset(&none, 0, sizeof none);
    b = lumos__exif_block(&none, &n);
    CHECK(b && parse_exif(b, n, &x), "empty exif parses");
    CHECK(!x.make[0] && !x.model[0] && !x.datetime[0] && x.iso == 0 && x.exposure == 0 &&
              x.fnumber == 0 && x.focal == 0 && x.orientation == 1 && !strcmp(x.version, "0230"),
          "empty exif fields");
    free(b);

    /* Long exposures, unterminated 64-char strings, padding blanks. */
    memset(&e, 0, sizeof e);
    memset(e.make, 'M', sizeof e.make);
    strcpy(e.model, "Model   ");
    e.exposure_s = 2.5f;
    e.iso = 100000;
    e.aperture = 11;
    b = lumos__exif_block(&e, &n);
    CHECK(b && parse_exif(b, n, &x), "odd exif parses");
    CHECK(strlen(x.make) == 64, "unterminated make: length %zu", strlen(x.make));
    CHECK(!strcmp(x.model, "Model"), "model trimmed: \"%s\"", x.model);
    CHECK(fabs(x.exposure - 2.5) < 1e-9 && x.iso == 65535 && fabs(x.fnumber - 11) < 1e-9,
          "exposure %g iso %d f %g", x.exposure, x.iso, x.fnumber);
    free(b);
    CHECK(lumos__exif_block(NULL, &n) == NULL && n == 0, "NULL exif");
}

/* ---------------------------------------------------------- round trips */

static const char *const fmt_name[] = {"auto", "jpg", "png", "tif"};

static void test_lossless(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    static const int sizes[][2] = {{1, 1}, {3, 5}, {5, 3}, {37, 23}, {300, 200}};
    for (int f = LUMOS_FORMAT_PNG; f <= LUMOS_FORMAT_TIFF; f++)
        for (int bits = 8; bits <= 16; bits += 8)
            for (int ch = 1; ch <= 3; ch += 2)
                for (size_t s = 0; s < 5; s++) {
                    int w = sizes[s][0], h = sizes[s][1];
                    lumos_image im = random_image(w, h, ch, bits, (uint32_t)(f * 1000 + bits * 10 + ch + s));
                    const char *path = tpath("rt_%dx%d_c%d_b%d.%s", w, h, ch, bits, fmt_name[f]);
                    int st = lumos_image_write(ctx, &im, path, NULL);
                    CHECK(st == LUMOS_OK, "write %s: %s", path, lumos_last_error(ctx));
                    lumos_image back;
                    st = lumos_image_read(ctx, path, &back);
                    CHECK(st == LUMOS_OK, "read %s: %s", path, lumos_last_error(ctx));
                    CHECK(st == 0 && same_pixels(&im, &back), "%s: pixels differ (%dx%d c%d b%d)",
                          path, back.width, back.height, back.channels, back.bits);
                    if (s == 3) {
                        size_t n;
                        uint8_t *icc = file_icc((lumos_format)f, path, &n);
                        check_profile(icc, n, LUMOS_SPACE_SRGB, ch, path);
                        free(icc);
                    }
                    lumos_image_free(&back);
                    lumos_image_free(&im);
                }

    /* A padded stride, explicit format over a misleading suffix, and the
     * linear and camera spaces. */
    for (int f = LUMOS_FORMAT_PNG; f <= LUMOS_FORMAT_TIFF; f++) {
        lumos_image src = random_image(7, 4, 3, 16, 99);
        lumos_image pad = src;
        pad.stride = src.stride + 10;
        pad.data = calloc(4, pad.stride);
        for (int y = 0; y < 4; y++)
            memcpy((uint8_t *)pad.data + y * pad.stride, (uint8_t *)src.data + y * src.stride,
                   src.stride);
        lumos_write_options o;
        lumos_write_options_init(&o);
        o.format = (lumos_format)f;
        const char *path = tpath("padded_%s.dat", fmt_name[f]);
        CHECK(lumos_image_write(ctx, &pad, path, &o) == LUMOS_OK, "padded %s: %s", path,
              lumos_last_error(ctx));
        lumos_image back;
        CHECK(lumos_image_read(ctx, path, &back) == LUMOS_OK && same_pixels(&back, &src),
              "padded %s round trip", path);
        lumos_image_free(&back);

        for (int space = LUMOS_SPACE_LINEAR_SRGB; space <= LUMOS_SPACE_CAMERA; space++)
            for (int ch = 1; ch <= 3; ch += 2) {
                lumos_image im = random_image(6, 5, ch, 16, 3);
                im.space = (lumos_space)space;
                path = tpath("space%d_c%d.%s", space, ch, fmt_name[f]);
                CHECK(lumos_image_write(ctx, &im, path, NULL) == LUMOS_OK, "%s: %s", path,
                      lumos_last_error(ctx));
                size_t n;
                uint8_t *icc = file_icc((lumos_format)f, path, &n);
                if (space == LUMOS_SPACE_CAMERA) CHECK(!icc, "%s: camera space has a profile", path);
                else check_profile(icc, n, (lumos_space)space, ch, path);
                free(icc);
                lumos_image_free(&im);
            }
        free(pad.data);
        lumos_image_free(&src);
    }
    lumos_ctx_free(ctx);
}

static void test_jpeg(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    static const struct {
        int ch, q, sub;
        double min_db;
    } cfg[] = {{3, 95, 444, 40}, {3, 92, 444, 38}, {3, 95, 420, 36}, {1, 95, 444, 40}};
    for (size_t i = 0; i < 4; i++) {
        lumos_image im = photo_image(256, 192, cfg[i].ch, 11);
        lumos_write_options o;
        lumos_write_options_init(&o);
        o.quality = cfg[i].q;
        o.subsampling = cfg[i].sub;
        const char *path = tpath("photo_c%d_q%d_%d.jpg", cfg[i].ch, cfg[i].q, cfg[i].sub);
        CHECK(lumos_image_write(ctx, &im, path, &o) == LUMOS_OK, "%s: %s", path,
              lumos_last_error(ctx));
        lumos_image back;
        int st = lumos_image_read(ctx, path, &back);
        CHECK(st == LUMOS_OK, "read %s: %s", path, lumos_last_error(ctx));
        if (!st) {
            CHECK(back.width == 256 && back.height == 192 && back.channels == cfg[i].ch &&
                      back.bits == 8,
                  "%s: read as %dx%d c%d b%d", path, back.width, back.height, back.channels,
                  back.bits);
            double db = back.channels == cfg[i].ch ? psnr(&im, &back) : 0;
            printf("JPEG %s q%d %d: PSNR %.2f dB (need %.0f)\n", cfg[i].ch == 3 ? "RGB" : "gray",
                   cfg[i].q, cfg[i].sub, db, cfg[i].min_db);
            CHECK(db >= cfg[i].min_db, "%s: PSNR %.2f < %.0f", path, db, cfg[i].min_db);
        }
        lumos_image_free(&back);
        size_t n;
        uint8_t *icc = jpeg_icc(path, &n);
        check_profile(icc, n, LUMOS_SPACE_SRGB, cfg[i].ch, path);
        free(icc);
        lumos_image_free(&im);
    }

    /* Odd sizes survive (flat content: near-exact). */
    static const int sizes[][2] = {{1, 1}, {3, 5}, {5, 3}, {17, 9}};
    for (size_t s = 0; s < 4; s++)
        for (int ch = 1; ch <= 3; ch += 2) {
            lumos_image im;
            lumos_image_alloc(&im, sizes[s][0], sizes[s][1], ch, 8);
            for (int y = 0; y < im.height; y++)
                for (int x = 0; x < im.width; x++)
                    for (int c = 0; c < ch; c++) set(&im, x, y, c, 60 + 50 * c);
            const char *path = tpath("small_%dx%d_c%d.jpeg", im.width, im.height, ch);
            CHECK(lumos_image_write(ctx, &im, path, NULL) == LUMOS_OK, "%s: %s", path,
                  lumos_last_error(ctx));
            lumos_image back;
            int st = lumos_image_read(ctx, path, &back);
            CHECK(st == 0 && back.width == im.width && back.height == im.height &&
                      back.channels == ch && psnr(&im, &back) > 40,
                  "%s: small round trip", path);
            lumos_image_free(&back);
            lumos_image_free(&im);
        }

    /* EXIF: APP1 right after SOI, no JFIF, fields parse back. */
    lumos_exif ex = sample_exif();
    lumos_write_options o;
    lumos_write_options_init(&o);
    o.exif = &ex;
    lumos_image im = photo_image(40, 30, 3, 2);
    const char *path = tpath("exif.jpg");
    CHECK(lumos_image_write(ctx, &im, path, &o) == LUMOS_OK, "%s: %s", path, lumos_last_error(ctx));
    size_t n;
    uint8_t *b = read_all(path, &n);
    jpeg_meta m;
    scan_jpeg(b, n, &m);
    CHECK(m.first_is_app1 && !m.has_jfif, "exif.jpg: APP1 first %d, JFIF %d", m.first_is_app1,
          m.has_jfif);
    CHECK(m.exif, "exif.jpg: no EXIF");
    if (m.exif) check_sample_exif(m.exif, m.exif_size, path);
    check_profile(m.icc, m.icc_size, LUMOS_SPACE_SRGB, 3, path);
    CHECK(m.icc_chunks == 1, "exif.jpg: %d ICC chunks", m.icc_chunks);
    free(m.exif);
    free(m.icc);
    free(b);

    /* Camera space: no profile; no EXIF unless asked. */
    im.space = LUMOS_SPACE_CAMERA;
    path = tpath("camera.jpg");
    CHECK(lumos_image_write(ctx, &im, path, NULL) == LUMOS_OK, "%s", lumos_last_error(ctx));
    b = read_all(path, &n);
    scan_jpeg(b, n, &m);
    CHECK(!m.icc_chunks && !m.exif && !m.has_jfif, "camera.jpg: ICC %d EXIF %p", m.icc_chunks,
          (void *)m.exif);
    free(b);
    lumos_image_free(&im);

    /* TIFF gets Make/Model/DateTime. */
    im = random_image(8, 8, 3, 16, 4);
    path = tpath("exif.tif");
    CHECK(lumos_image_write(ctx, &im, path, &o) == LUMOS_OK, "%s: %s", path, lumos_last_error(ctx));
    TIFF *t = TIFFOpen(path, "r");
    char *make = NULL, *model = NULL, *dt = NULL;
    CHECK(t && TIFFGetField(t, TIFFTAG_MAKE, &make) && TIFFGetField(t, TIFFTAG_MODEL, &model) &&
              TIFFGetField(t, TIFFTAG_DATETIME, &dt),
          "exif.tif: tags missing");
    CHECK(make && model && dt && !strcmp(make, "Canon") && !strcmp(model, "Canon EOS 30D") &&
              !strcmp(dt, "2024:05:06 07:08:09"),
          "exif.tif: tags %s / %s / %s", make, model, dt);
    if (t) TIFFClose(t);
    lumos_image_free(&im);

    /* Multi-chunk ICC: a 140 kB profile splits into 3 APP2 chunks that
     * reassemble exactly, and TurboJPEG still decodes the stream. */
    im = photo_image(16, 16, 3, 1);
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long jn = 0;
    CHECK(tjCompress2(tj, im.data, 16, (int)im.stride, 16, TJPF_RGB, &jpg, &jn, TJSAMP_444, 90, 0) == 0,
          "tjCompress2");
    tjDestroy(tj);
    size_t big_n = 140000;
    uint8_t *big = malloc(big_n);
    uint32_t seed = 9;
    for (size_t i = 0; i < big_n; i++) big[i] = (uint8_t)rng(&seed);
    uint8_t *out;
    size_t out_n;
    CHECK(lumos__jpeg_splice(jpg, jn, NULL, 0, big, big_n, &out, &out_n) == LUMOS_OK, "splice");
    scan_jpeg(out, out_n, &m);
    CHECK(m.icc_chunks == 3 && m.icc_size == big_n && !memcmp(m.icc, big, big_n),
          "3-chunk ICC: %d chunks, %zu bytes", m.icc_chunks, m.icc_size);
    CHECK(!m.has_jfif && !m.exif, "splice: JFIF dropped");
    free(m.icc);
    tj = tjInitDecompress();
    unsigned char pix[16 * 16 * 3];
    CHECK(tjDecompress2(tj, out, (unsigned long)out_n, pix, 16, 0, 16, TJPF_RGB, 0) == 0,
          "spliced stream decodes: %s", tjGetErrorStr2(tj));
    tjDestroy(tj);
    free(out);
    CHECK(lumos__jpeg_splice(jpg, jn, NULL, 0, big, 255 * 65519 + 1, &out, &out_n) == LUMOS_E_ARG,
          "ICC over 255 chunks refused");
    CHECK(lumos__jpeg_splice((const uint8_t *)"nope", 4, NULL, 0, NULL, 0, &out, &out_n) == LUMOS_E_ARG,
          "non-JPEG refused");
    free(big);
    tjFree(jpg);
    lumos_image_free(&im);
    lumos_ctx_free(ctx);
}

/* ------------------------------------------------- foreign files (read) */

/* A PNG written directly with libpng; rows already in PNG byte order. */
static void raw_png(const char *path, int w, int h, int depth, int type, int interlace,
                    const uint8_t *rows, size_t rowbytes, const png_color *pal, int npal,
                    const uint8_t *trns, int ntrns)
{
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "raw_png %s failed\n", path);
        exit(1);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, type, interlace,
                 PNG_COMPRESSION_TYPE_BASE, PNG_FILTER_TYPE_BASE);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trns) png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    int passes = png_set_interlace_handling(png);
    for (int p = 0; p < passes; p++)
        for (int y = 0; y < h; y++) png_write_row(png, rows + (size_t)y * rowbytes);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

static void test_foreign_png(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    enum { W = 13, H = 7 };
    uint8_t rows[H][W * 8];
    lumos_image back;
    uint32_t seed = 21;

    /* Palette with transparency -> RGB 8 from the palette. */
    png_color pal[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
    uint8_t trns[4] = {0, 128, 255, 255};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) rows[y][x] = (uint8_t)((x + y) % 4);
    const char *path = tpath("pal.png");
    raw_png(path, W, H, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, &rows[0][0], sizeof rows[0],
            pal, 4, trns, 4);
    int st = lumos_image_read(ctx, path, &back), bad = 0;
    CHECK(st == 0 && back.channels == 3 && back.bits == 8 && back.width == W, "pal.png: %s",
          lumos_last_error(ctx));
    for (int y = 0; !st && y < H; y++)
        for (int x = 0; x < W; x++) {
            png_color c = pal[(x + y) % 4];
            bad += get(&back, x, y, 0) != c.red || get(&back, x, y, 1) != c.green ||
                   get(&back, x, y, 2) != c.blue;
        }
    CHECK(bad == 0, "pal.png: %d pixels wrong", bad);
    lumos_image_free(&back);

    /* Gray 1-bit and 4-bit -> gray 8, scaled to full range. */
    for (int depth = 1; depth <= 4; depth *= 4) {
        int levels = (1 << depth) - 1;
        memset(rows, 0, sizeof rows);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int v = (x * 3 + y) % (levels + 1);
                int per = 8 / depth, shift = 8 - depth * (x % per + 1);
                rows[y][x / per] |= (uint8_t)(v << shift);
            }
        path = tpath("gray%d.png", depth);
        raw_png(path, W, H, depth, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, &rows[0][0],
                sizeof rows[0], NULL, 0, NULL, 0);
        st = lumos_image_read(ctx, path, &back);
        CHECK(st == 0 && back.channels == 1 && back.bits == 8, "%s: %s", path, lumos_last_error(ctx));
        bad = 0;
        for (int y = 0; !st && y < H; y++)
            for (int x = 0; x < W; x++)
                bad += get(&back, x, y, 0) != (unsigned)((x * 3 + y) % (levels + 1) * 255 / levels);
        CHECK(bad == 0, "%s: %d pixels wrong", path, bad);
        lumos_image_free(&back);
    }

    /* Gray+alpha 16 and RGBA 8, the latter Adam7-interlaced: alpha dropped. */
    uint16_t ref16[H][W];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            ref16[y][x] = (uint16_t)rng(&seed);
            rows[y][x * 4] = (uint8_t)(ref16[y][x] >> 8), rows[y][x * 4 + 1] = (uint8_t)ref16[y][x];
            rows[y][x * 4 + 2] = (uint8_t)rng(&seed), rows[y][x * 4 + 3] = (uint8_t)rng(&seed);
        }
    path = tpath("ga16.png");
    raw_png(path, W, H, 16, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE, &rows[0][0],
            sizeof rows[0], NULL, 0, NULL, 0);
    st = lumos_image_read(ctx, path, &back);
    CHECK(st == 0 && back.channels == 1 && back.bits == 16, "ga16.png: %s", lumos_last_error(ctx));
    bad = 0;
    for (int y = 0; !st && y < H; y++)
        for (int x = 0; x < W; x++) bad += get(&back, x, y, 0) != ref16[y][x];
    CHECK(bad == 0, "ga16.png: %d pixels wrong", bad);
    lumos_image_free(&back);

    for (int y = 0; y < H; y++)
        for (int x = 0; x < W * 4; x++) rows[y][x] = (uint8_t)rng(&seed);
    path = tpath("rgba_interlaced.png");
    raw_png(path, W, H, 8, PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_ADAM7, &rows[0][0],
            sizeof rows[0], NULL, 0, NULL, 0);
    st = lumos_image_read(ctx, path, &back);
    CHECK(st == 0 && back.channels == 3 && back.bits == 8, "%s: %s", path, lumos_last_error(ctx));
    bad = 0;
    for (int y = 0; !st && y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) bad += get(&back, x, y, c) != rows[y][x * 4 + c];
    CHECK(bad == 0, "%s: %d samples wrong", path, bad);
    lumos_image_free(&back);
    lumos_ctx_free(ctx);
}

static void test_foreign_tiff(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    enum { W = 37, H = 23 };
    lumos_image ref = random_image(W, H, 3, 16, 8), ref8 = random_image(W, H, 3, 8, 9), back;

    /* Planar 16-bit, big-endian, 5 rows a strip; tiled 8-bit RGBA; both
     * with LZW to go through a codec. */
    for (int kind = 0; kind < 2; kind++) {
        const char *path = tpath(kind ? "tiled_rgba.tif" : "planar_be.tif");
        TIFF *t = TIFFOpen(path, kind ? "wl" : "wb");
        TIFFSetField(t, TIFFTAG_IMAGEWIDTH, W);
        TIFFSetField(t, TIFFTAG_IMAGELENGTH, H);
        TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, kind ? 8 : 16);
        TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, kind ? 4 : 3);
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
        TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_LZW);
        TIFFSetField(t, TIFFTAG_PLANARCONFIG, kind ? PLANARCONFIG_CONTIG : PLANARCONFIG_SEPARATE);
        if (kind) {
            uint16_t extra = EXTRASAMPLE_UNASSALPHA;
            TIFFSetField(t, TIFFTAG_EXTRASAMPLES, 1, &extra);
            TIFFSetField(t, TIFFTAG_TILEWIDTH, 16);
            TIFFSetField(t, TIFFTAG_TILELENGTH, 16);
            uint8_t tile[16 * 16 * 4];
            for (int ty = 0; ty < H; ty += 16)
                for (int tx = 0; tx < W; tx += 16) {
                    memset(tile, 0xEE, sizeof tile);
                    for (int y = 0; y < 16 && ty + y < H; y++)
                        for (int x = 0; x < 16 && tx + x < W; x++)
                            for (int c = 0; c < 4; c++)
                                tile[(y * 16 + x) * 4 + c] =
                                    c < 3 ? (uint8_t)get(&ref8, tx + x, ty + y, c) : 0x33;
                    TIFFWriteTile(t, tile, (uint32_t)tx, (uint32_t)ty, 0, 0);
                }
        } else {
            TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 5);
            uint16_t row[W];
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < H; y++) {
                    for (int x = 0; x < W; x++) row[x] = (uint16_t)get(&ref, x, y, c);
                    TIFFWriteScanline(t, row, (uint32_t)y, (uint16_t)c);
                }
        }
        TIFFClose(t);
        int st = lumos_image_read(ctx, path, &back);
        CHECK(st == 0, "%s: %s", path, lumos_last_error(ctx));
        if (kind && st == 0) { /* every sample is kept: RGB, then the alpha */
            int bad = back.channels != 4 || back.bits != 8;
            for (int y = 0; !bad && y < H; y++)
                for (int x = 0; x < W; x++)
                    for (int c = 0; c < 4; c++)
                        bad += get(&back, x, y, c) != (c < 3 ? get(&ref8, x, y, c) : 0x33u);
            CHECK(bad == 0, "%s: pixels differ (c%d b%d)", path, back.channels, back.bits);
        } else {
            CHECK(st == 0 && same_pixels(&back, &ref), "%s: pixels differ (c%d b%d)", path,
                  back.channels, back.bits);
        }
        lumos_image_free(&back);
    }

    /* Palette and min-is-white: through libtiff's RGBA path, at 8 bits. */
    for (int kind = 0; kind < 2; kind++) {
        const char *path = tpath(kind ? "miniswhite.tif" : "palette.tif");
        TIFF *t = TIFFOpen(path, "w");
        TIFFSetField(t, TIFFTAG_IMAGEWIDTH, W);
        TIFFSetField(t, TIFFTAG_IMAGELENGTH, H);
        TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
        TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC, kind ? PHOTOMETRIC_MINISWHITE : PHOTOMETRIC_PALETTE);
        TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, H);
        uint16_t map[3][256];
        for (int i = 0; i < 256; i++)
            map[0][i] = (uint16_t)(i * 257), map[1][i] = (uint16_t)((255 - i) * 257),
            map[2][i] = (uint16_t)((i * 7 & 255) * 257);
        if (!kind) TIFFSetField(t, TIFFTAG_COLORMAP, map[0], map[1], map[2]);
        uint8_t row[W];
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) row[x] = (uint8_t)(x * 7 + y * 3);
            TIFFWriteScanline(t, row, (uint32_t)y, 0);
        }
        TIFFClose(t);
        int st = lumos_image_read(ctx, path, &back), bad = 0;
        CHECK(st == 0 && back.bits == 8 && back.channels == (kind ? 1 : 3), "%s: %s (c%d)", path,
              lumos_last_error(ctx), back.channels);
        for (int y = 0; !st && y < H; y++)
            for (int x = 0; x < W; x++) {
                int i = (x * 7 + y * 3) & 255;
                if (kind) bad += get(&back, x, y, 0) != (unsigned)(255 - i);
                else
                    bad += get(&back, x, y, 0) != (unsigned)i ||
                           get(&back, x, y, 1) != (unsigned)(255 - i) ||
                           get(&back, x, y, 2) != (unsigned)(i * 7 & 255);
            }
        CHECK(bad == 0, "%s: %d pixels wrong", path, bad);
        lumos_image_free(&back);
    }
    lumos_image_free(&ref);
    lumos_image_free(&ref8);
    lumos_ctx_free(ctx);
}

/* --------------------------------------------------------- write failures */

static int contains(const char *s, const char *part) { return strstr(s, part) != NULL; }

static void test_write_failures(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    lumos_image im = random_image(9, 7, 3, 8, 1), im16 = random_image(9, 7, 3, 16, 2);
    const char *path;
    int st;

    /* Unknown suffix, 16-bit JPEG, bad options: E_ARG, nothing written. */
    path = tpath("out.gif");
    st = lumos_image_write(ctx, &im, path, NULL);
    CHECK(st == LUMOS_E_ARG && contains(lumos_last_error(ctx), path) && !exists(path),
          "unknown suffix: %d %s", st, lumos_last_error(ctx));
    path = tpath("deep.jpg");
    st = lumos_image_write(ctx, &im16, path, NULL);
    CHECK(st == LUMOS_E_ARG && contains(lumos_last_error(ctx), path) && !exists(path),
          "16-bit JPEG: %d %s", st, lumos_last_error(ctx));
    lumos_write_options o;
    lumos_write_options_init(&o);
    o.quality = 0;
    CHECK(lumos_image_write(ctx, &im, tpath("q0.jpg"), &o) == LUMOS_E_ARG, "quality 0");
    o.quality = 90, o.subsampling = 422;
    CHECK(lumos_image_write(ctx, &im, tpath("s422.jpg"), &o) == LUMOS_E_ARG, "subsampling 422");
    lumos_image badim = im;
    badim.channels = 4;
    CHECK(lumos_image_write(ctx, &badim, tpath("c4.png"), NULL) == LUMOS_E_ARG, "4 channels");
    badim = im, badim.stride = 5;
    CHECK(lumos_image_write(ctx, &badim, tpath("stride.png"), NULL) == LUMOS_E_ARG, "short stride");
    CHECK(lumos_image_write(ctx, &im, NULL, NULL) == LUMOS_E_ARG, "NULL path");
    badim = im, badim.width = 70000, badim.stride = 70000 * 3; /* never read: refused first */
    CHECK(lumos_image_write(ctx, &badim, tpath("wide.jpg"), NULL) == LUMOS_E_UNSUPPORTED,
          "JPEG over 65535 wide");
    CHECK(hidden_entries(tmpdir) == 0, "temporaries left after argument errors");

    /* A missing directory, and a file where a directory should be: E_IO
     * naming the path and the reason, and nothing created. */
    path = tpath("no/such/dir/out.png");
    st = lumos_image_write(ctx, &im, path, NULL);
    CHECK(st == LUMOS_E_IO && contains(lumos_last_error(ctx), path) &&
              contains(lumos_last_error(ctx), strerror(ENOENT)),
          "missing dir: %d %s", st, lumos_last_error(ctx));
    write_all(tpath("plain"), "x", 1);
    path = tpath("plain/out.tif");
    st = lumos_image_write(ctx, &im, path, NULL);
    CHECK(st == LUMOS_E_IO && contains(lumos_last_error(ctx), path) &&
              contains(lumos_last_error(ctx), strerror(ENOTDIR)),
          "not a dir: %d %s", st, lumos_last_error(ctx));
    path = tpath("adir.png");
    mkdir(path, 0755);
    st = lumos_image_write(ctx, &im, path, &(lumos_write_options){.quality = 92, .subsampling = 444, .overwrite = 1});
    CHECK(st == LUMOS_E_IO && contains(lumos_last_error(ctx), path), "onto a directory: %d %s", st,
          lumos_last_error(ctx));

    /* An unwritable directory. Root ignores permission bits, so there the
     * case is covered by test_io_full_disk's read-only mount instead. */
    const char *ro = tpath("readonly");
    mkdir(ro, 0755);
    chmod(ro, 0555);
    char probe[PATH_MAX];
    snprintf(probe, sizeof probe, "%s/probe", ro);
    int pfd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (pfd >= 0) {
        close(pfd);
        unlink(probe);
        printf("[SKIP] unwritable directory by permissions: running as root "
               "(test_io_full_disk checks a read-only mount)\n");
    } else {
        path = tpath("readonly/out.png");
        st = lumos_image_write(ctx, &im, path, NULL);
        CHECK(st == LUMOS_E_IO && contains(lumos_last_error(ctx), path) &&
                  contains(lumos_last_error(ctx), strerror(EACCES)) && hidden_entries(ro) == 0 &&
                  !exists(path),
              "unwritable dir: %d %s", st, lumos_last_error(ctx));
    }
    chmod(ro, 0755);

    /* An existing file: E_EXISTS and untouched; with overwrite replaced. */
    for (int f = LUMOS_FORMAT_JPEG; f <= LUMOS_FORMAT_TIFF; f++) {
        path = tpath("exists.%s", fmt_name[f]);
        write_all(path, "old contents", 12);
        st = lumos_image_write(ctx, &im, path, NULL);
        size_t n;
        uint8_t *b = read_all(path, &n);
        CHECK(st == LUMOS_E_EXISTS && contains(lumos_last_error(ctx), path) && n == 12 &&
                  !memcmp(b, "old contents", 12),
              "existing %s: %d %s", path, st, lumos_last_error(ctx));
        free(b);
        lumos_write_options_init(&o);
        o.overwrite = 1;
        st = lumos_image_write(ctx, &im, path, &o);
        lumos_image back;
        CHECK(st == 0 && lumos_image_read(ctx, path, &back) == 0 && back.width == 9,
              "overwrite %s: %s", path, lumos_last_error(ctx));
        lumos_image_free(&back);
        /* The new file gets the usual mode, not mkstemp's 0600. */
        mode_t mask = umask(022);
        umask(mask);
        struct stat sb;
        CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == (0666 & ~mask),
              "%s: mode %o, want %o", path, (unsigned)(sb.st_mode & 0777), (unsigned)(0666 & ~mask));
    }
    CHECK(hidden_entries(tmpdir) == 0, "temporaries left behind");

    /* A relative path (no directory part) works and leaves no temporary. */
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) && chdir(tmpdir) == 0) {
        st = lumos_image_write(ctx, &im, "relative.png", NULL);
        CHECK(st == 0 && exists("relative.png") && hidden_entries(".") == 0, "relative path: %s",
              lumos_last_error(ctx));
        if (chdir(cwd) != 0) exit(1);
    }
    lumos_image_free(&im);
    lumos_image_free(&im16);
    lumos_ctx_free(ctx);
}

/* ---------------------------------------------------------- read failures */

static void expect_read(lumos_ctx *ctx, const char *path, int want, const char *what)
{
    lumos_image out;
    memset(&out, 0x5a, sizeof out);
    int st = lumos_image_read(ctx, path, &out);
    CHECK(st == want && contains(lumos_last_error(ctx), path), "%s: got %d (%s), want %d", what,
          st, lumos_last_error(ctx), want);
    CHECK(out.data == NULL && out.width == 0, "%s: output not cleared", what);
    if (st == 0) lumos_image_free(&out);
}

static void truncated_copy(const char *src, const char *dst, size_t keep)
{
    size_t n;
    uint8_t *b = read_all(src, &n);
    if (!b) {
        fprintf(stderr, "cannot read %s\n", src);
        exit(1);
    }
    write_all(dst, b, keep < n ? keep : n);
    free(b);
}

static void test_read_failures(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    uint8_t junk[1000];
    uint32_t seed = 3;
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)rng(&seed);
    junk[0] = 'J'; /* no magic by accident */
    write_all(tpath("random.bin"), junk, sizeof junk);
    expect_read(ctx, tpath("random.bin"), LUMOS_E_FORMAT, "random bytes");
    CHECK(contains(lumos_last_error(ctx), "not a JPEG, PNG, TIFF or OpenEXR file"), "message: %s",
          lumos_last_error(ctx));
    /* Random bytes with a suffix that lies: the magic decides. */
    write_all(tpath("liar.png"), junk, sizeof junk);
    expect_read(ctx, tpath("liar.png"), LUMOS_E_FORMAT, "random .png");
    write_all(tpath("empty.jpg"), "", 0);
    expect_read(ctx, tpath("empty.jpg"), LUMOS_E_FORMAT, "empty file");
    write_all(tpath("tiny"), "\xFF\xD8", 2);
    expect_read(ctx, tpath("tiny"), LUMOS_E_FORMAT, "2-byte file");

    /* Magic followed by garbage. */
    static const char *magic[] = {"\xFF\xD8\xFF", "\x89PNG\r\n\x1a\n", "II*\0", "MM\0*"};
    static const size_t magic_len[] = {3, 8, 4, 4};
    for (int i = 0; i < 4; i++) {
        memcpy(junk, magic[i], magic_len[i]);
        const char *path = tpath("garbage%d", i);
        write_all(path, junk, sizeof junk);
        expect_read(ctx, path, LUMOS_E_FORMAT, path);
    }

    /* Truncated files of each format, named without their suffix. */
    lumos_image im = photo_image(64, 48, 3, 5);
    for (int f = LUMOS_FORMAT_JPEG; f <= LUMOS_FORMAT_TIFF; f++) {
        char full[PATH_MAX * 2]; /* tpath's buffers rotate */
        snprintf(full, sizeof full, "%s", tpath("whole.%s", fmt_name[f]));
        CHECK(lumos_image_write(ctx, &im, full, NULL) == 0, "%s: %s", full, lumos_last_error(ctx));
        size_t n;
        free(read_all(full, &n));
        const size_t keeps[] = {n / 2, n - 20, n - 1, 40};
        for (int k = 0; k < 4; k++) {
            const char *cut = tpath("cut%d_%d", f, k);
            truncated_copy(full, cut, keeps[k]);
            char what[64];
            snprintf(what, sizeof what, "%s cut to %zu of %zu", fmt_name[f], keeps[k], n);
            expect_read(ctx, cut, LUMOS_E_FORMAT, what);
        }
    }
    lumos_image_free(&im);

    /* A TIFF whose directory is intact but whose Deflate data is damaged. */
    im = random_image(64, 48, 3, 8, 6);
    const char *path = tpath("damaged.tif");
    lumos_image_write(ctx, &im, path, NULL);
    TIFF *t = TIFFOpen(path, "r");
    uint64_t *offsets = NULL;
    uint64_t off = 0;
    if (t && TIFFGetField(t, TIFFTAG_STRIPOFFSETS, &offsets)) off = offsets[0];
    if (t) TIFFClose(t);
    CHECK(off > 0, "damaged.tif: no strip offset");
    int fd = open(path, O_WRONLY);
    if (fd >= 0) {
        CHECK(pwrite(fd, "\xff\xff\xff\xff\xff\xff\xff\xff", 8, (off_t)off) == 8, "pwrite");
        close(fd);
    }
    expect_read(ctx, path, LUMOS_E_FORMAT, "damaged TIFF strip");
    lumos_image_free(&im);

    /* A directory and a missing file: E_IO with the reason. */
    expect_read(ctx, tmpdir, LUMOS_E_IO, "directory");
    CHECK(contains(lumos_last_error(ctx), strerror(EISDIR)), "directory: %s", lumos_last_error(ctx));
    expect_read(ctx, tpath("missing.png"), LUMOS_E_IO, "missing file");
    CHECK(contains(lumos_last_error(ctx), strerror(ENOENT)), "missing: %s", lumos_last_error(ctx));
    lumos_ctx_free(ctx);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/lumos-test-io-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_alloc();
    test_paths();
    test_orient();
    test_exif_block();
    test_lossless();
    test_jpeg();
    test_foreign_png();
    test_foreign_tiff();
    test_write_failures();
    test_read_failures();
    if (failures == 0) rm_rf(tmpdir);
    else fprintf(stderr, "files kept in %s\n", tmpdir);
    printf("%s: %d failure(s)\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}
