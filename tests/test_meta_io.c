/* test_meta_io.c — metadata passthrough: lumos_image_read_meta and
 * lumos_write_options.meta. The inputs are written here with libjpeg-turbo
 * (markers spliced by hand), libpng and libtiff, and read back with this
 * file's own JPEG marker walker, libpng and libtiff, so that neither end
 * trusts lumos's own code: ICC bytes and EXIF blocks must survive JPEG, PNG
 * and TIFF round trips exactly (the orientation value apart, when reset),
 * big profiles must span several APP2 chunks, damaged metadata must be
 * dropped with a notice while the pixels still read.
 *
 *   test_meta_io                   the synthetic cases
 *   test_meta_io --photos DIR...   real JPEGs with EXIF found in DIRs
 *                                  (exit 77 when there are none) */
#include <dirent.h>
#include <lcms2.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <turbojpeg.h>

#include "check.h"
#include "lumos.h"
#include "test_tmp.h"

/* ------------------------------------------------------------- notices */

static char notices[8192];
static int notice_count;

static void on_notice(void *user, const char *msg)
{
    (void)user;
    notice_count++;
    size_t n = strlen(notices);
    snprintf(notices + n, sizeof notices - n, "%s\n", msg);
}

static void clear_notices(void)
{
    notices[0] = '\0';
    notice_count = 0;
}

static lumos_ctx *new_ctx(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    if (!ctx) exit(1);
    lumos_ctx_set_notice(ctx, on_notice, NULL);
    return ctx;
}

/* ------------------------------------------------------------- pixels */

static lumos_image gradient(int w, int h, int ch, int bits)
{
    lumos_image im;
    if (lumos_image_alloc(&im, w, h, ch, bits)) exit(1);
    uint32_t s = 7;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++) {
                double v = 0.1 + 0.6 * x / w + 0.2 * y / h + 0.05 * c + (rng(&s) % 5) / 1000.0;
                uint8_t *row = (uint8_t *)im.data + (size_t)y * im.stride;
                if (bits == 8) row[x * ch + c] = (uint8_t)lround(v * 255);
                else ((uint16_t *)row)[x * ch + c] = (uint16_t)lround(v * 65535);
            }
    return im;
}

static int same_pixels(const lumos_image *a, const lumos_image *b)
{
    if (a->width != b->width || a->height != b->height || a->channels != b->channels ||
        a->bits != b->bits)
        return 0;
    size_t row = (size_t)a->width * a->channels * (a->bits / 8);
    for (int y = 0; y < a->height; y++)
        if (memcmp((uint8_t *)a->data + y * a->stride, (uint8_t *)b->data + y * b->stride, row))
            return 0;
    return 1;
}

/* Mean absolute difference of two 8-bit images of one shape (JPEG's loss). */
static double mean_diff(const lumos_image *a, const lumos_image *b)
{
    if (a->width != b->width || a->height != b->height || a->channels != b->channels) return 1e9;
    double s = 0;
    for (int y = 0; y < a->height; y++)
        for (int i = 0; i < a->width * a->channels; i++)
            s += fabs((double)((uint8_t *)a->data)[y * a->stride + i] -
                      ((uint8_t *)b->data)[y * b->stride + i]);
    return s / ((double)a->width * a->height * a->channels);
}

/* ------------------------------------------------------------- profiles */

static uint8_t *save_profile(cmsHPROFILE h, const char *desc, size_t *size)
{
    cmsMLU *mlu = cmsMLUalloc(NULL, 1);
    cmsMLUsetASCII(mlu, "en", "US", desc);
    cmsWriteTag(h, cmsSigProfileDescriptionTag, mlu);
    cmsMLUfree(mlu);
    cmsMD5computeID(h);
    cmsUInt32Number n = 0;
    cmsSaveProfileToMem(h, NULL, &n);
    uint8_t *b = malloc(n);
    if (!b || !cmsSaveProfileToMem(h, b, &n)) exit(1);
    cmsCloseProfile(h);
    *size = n;
    return b;
}

/* Adobe RGB (1998) primaries, D65, gamma 563/256: not lumos's sRGB. With
 * `entries` > 0 the curves are tables of that many entries (a big profile). */
static uint8_t *adobe_profile(int entries, size_t *size)
{
    cmsCIExyY d65 = {0.3127, 0.3290, 1.0};
    cmsCIExyYTRIPLE prim = {{0.64, 0.33, 1.0}, {0.21, 0.71, 1.0}, {0.15, 0.06, 1.0}};
    cmsToneCurve *curves[3];
    for (int k = 0; k < 3; k++) {
        if (entries > 0) { /* three different tables: lcms2 would store one shared */
            uint16_t *t = malloc(sizeof *t * (size_t)entries);
            for (int i = 0; i < entries; i++)
                t[i] = (uint16_t)lround(65535 * pow(i / (double)(entries - 1), 2.1 + 0.05 * k));
            curves[k] = cmsBuildTabulatedToneCurve16(NULL, (cmsUInt32Number)entries, t);
            free(t);
        } else {
            curves[k] = cmsBuildGamma(NULL, 563 / 256.0);
        }
    }
    cmsHPROFILE h = cmsCreateRGBProfile(&d65, &prim, curves);
    for (int k = 0; k < 3; k++) cmsFreeToneCurve(curves[k]);
    return save_profile(h, entries ? "test Adobe RGB, tabulated" : "test Adobe RGB", size);
}

static uint8_t *gray_profile(size_t *size)
{
    cmsCIExyY d65 = {0.3127, 0.3290, 1.0};
    cmsToneCurve *c = cmsBuildGamma(NULL, 1.8);
    cmsHPROFILE h = cmsCreateGrayProfile(&d65, c);
    cmsFreeToneCurve(c);
    return save_profile(h, "test gray 1.8", size);
}

/* ------------------------------------------------- EXIF blocks, by hand */

typedef struct {
    uint8_t b[16384];
    size_t n;
    int be;
} tbuf;

static void p16(tbuf *t, size_t o, uint32_t v)
{
    if (t->be) t->b[o] = (uint8_t)(v >> 8), t->b[o + 1] = (uint8_t)v;
    else t->b[o] = (uint8_t)v, t->b[o + 1] = (uint8_t)(v >> 8);
}

static void p32(tbuf *t, size_t o, uint32_t v)
{
    p16(t, o + (t->be ? 0 : 2), v >> 16);
    p16(t, o + (t->be ? 2 : 0), v & 0xffff);
}

static uint32_t g16(const uint8_t *b, int be, size_t o)
{
    return be ? (uint32_t)b[o] << 8 | b[o + 1] : (uint32_t)b[o + 1] << 8 | b[o];
}

static uint32_t g32(const uint8_t *b, int be, size_t o)
{
    return be ? g16(b, be, o) << 16 | g16(b, be, o + 2) : g16(b, be, o + 2) << 16 | g16(b, be, o);
}

typedef struct {
    uint16_t tag, type;
    uint32_t count;
    uint32_t v[2];     /* SHORT/LONG value, or a RATIONAL */
    const char *bytes; /* ASCII/UNDEFINED: count bytes */
} tent;

/* An IFD at the (even) end of t: table, link 0, values. Returns its offset. */
static size_t put_ifd(tbuf *t, const tent *e, int n)
{
    t->n = (t->n + 1) & ~(size_t)1;
    size_t off = t->n, vals = off + 2 + 12 * (size_t)n + 4;
    p16(t, off, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        size_t f = off + 2 + 12 * (size_t)i;
        size_t len = e[i].type == 3 ? 2 * e[i].count : e[i].type == 4 ? 4 * e[i].count
                     : e[i].type == 5                ? 8 * e[i].count
                                                     : e[i].count;
        p16(t, f, e[i].tag), p16(t, f + 2, e[i].type), p32(t, f + 4, e[i].count);
        size_t at = len <= 4 ? f + 8 : vals;
        if (len > 4) p32(t, f + 8, (uint32_t)vals), vals = (vals + len + 1) & ~(size_t)1;
        if (e[i].type == 3) p16(t, at, e[i].v[0]);
        else if (e[i].type == 4) p32(t, at, e[i].v[0]);
        else if (e[i].type == 5) p32(t, at, e[i].v[0]), p32(t, at + 4, e[i].v[1]);
        else memcpy(t->b + at, e[i].bytes, len);
    }
    p32(t, off + 2 + 12 * (size_t)n, 0);
    t->n = vals;
    return off;
}

/* The entry of `tag` in the IFD at off (its offset), or 0. */
static size_t find_tag(const uint8_t *b, size_t n, int be, size_t off, uint32_t tag)
{
    if (off < 8 || off + 2 > n) return 0;
    size_t count = g16(b, be, off);
    for (size_t i = 0; i < count && off + 2 + 12 * i + 12 <= n; i++)
        if (g16(b, be, off + 2 + 12 * i) == tag) return off + 2 + 12 * i;
    return 0;
}

typedef struct {
    int orientation; /* 0: no tag */
    int dims;        /* with PixelXDimension/PixelYDimension */
    int thumbnail;   /* with IFD1 and a JPEG thumbnail at the end */
    int be;
    uint32_t width, height;
} exif_spec;

/* An EXIF block: IFD0 (Make, Model, Orientation, DateTime, Exif pointer),
 * the Exif IFD (exposure, ISO, dates, a maker note, dimensions) and maybe
 * IFD1 with a thumbnail, in either byte order. */
static uint8_t *make_exif(const exif_spec *s, size_t *size)
{
    static tbuf t;
    memset(&t, 0, sizeof t);
    t.be = s->be;
    memcpy(t.b, s->be ? "MM\0*" : "II*\0", 4);
    p32(&t, 4, 8);
    t.n = 8;
    tent ifd0[6];
    int n0 = 0;
    ifd0[n0++] = (tent){0x010F, 2, 8, {0}, "TestCam"};
    ifd0[n0++] = (tent){0x0110, 2, 11, {0}, "Meta Model"};
    if (s->orientation) ifd0[n0++] = (tent){0x0112, 3, 1, {(uint32_t)s->orientation}, NULL};
    ifd0[n0++] = (tent){0x0132, 2, 20, {0}, "2024:05:06 07:08:09"};
    ifd0[n0++] = (tent){0x8769, 4, 1, {0}, NULL};
    size_t i0 = put_ifd(&t, ifd0, n0);
    tent ex[8];
    int nx = 0;
    ex[nx++] = (tent){0x829A, 5, 1, {1, 125}, NULL};
    ex[nx++] = (tent){0x8827, 3, 1, {200}, NULL};
    ex[nx++] = (tent){0x9003, 2, 20, {0}, "2024:05:06 07:08:09"};
    ex[nx++] = (tent){0x927C, 7, 32, {0}, "MAKERNOTE\0\1\2\3\4\5\6\7 opaque bytes!"};
    if (s->dims) {
        ex[nx++] = (tent){0xA002, 3, 1, {s->width}, NULL};
        ex[nx++] = (tent){0xA003, 4, 1, {s->height}, NULL};
    }
    size_t ix = put_ifd(&t, ex, nx);
    p32(&t, find_tag(t.b, t.n, t.be, i0, 0x8769) + 8, (uint32_t)ix);
    if (s->thumbnail) {
        tent th[3] = {{0x0103, 3, 1, {6}, NULL}, {0x0201, 4, 1, {0}, NULL},
                      {0x0202, 4, 1, {300}, NULL}};
        size_t i1 = put_ifd(&t, th, 3);
        p32(&t, i0 + 2 + 12 * (size_t)n0, (uint32_t)i1); /* IFD0's link */
        t.n = (t.n + 1) & ~(size_t)1;
        p32(&t, find_tag(t.b, t.n, t.be, i1, 0x0201) + 8, (uint32_t)t.n);
        t.b[t.n] = 0xFF, t.b[t.n + 1] = 0xD8;
        for (int i = 2; i < 298; i++) t.b[t.n + i] = (uint8_t)(i * 7);
        t.b[t.n + 298] = 0xFF, t.b[t.n + 299] = 0xD9;
        t.n += 300;
    }
    uint8_t *b = malloc(t.n);
    memcpy(b, t.b, t.n);
    *size = t.n;
    return b;
}

/* IFD0's orientation in a block (0 without the tag, -1 without a block). */
static int exif_orientation(const uint8_t *b, size_t n)
{
    if (!b || n < 8) return -1;
    int be = b[0] == 'M';
    size_t e = find_tag(b, n, be, g32(b, be, 4), 0x0112);
    return e ? (int)g16(b, be, e + 8) : 0;
}

/* Whether a and b are equal but for the orientation's value (at the same
 * place in both). */
static int equal_but_orientation(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    if (!a || !b || an != bn || an < 8) return 0;
    int be = a[0] == 'M';
    size_t e = find_tag(a, an, be, g32(a, be, 4), 0x0112);
    for (size_t i = 0; i < an; i++)
        if (a[i] != b[i] && !(e && i >= e + 8 && i < e + 10)) return 0;
    return 1;
}

/* The value bytes of the entry at e (inline or at its offset). */
static const uint8_t *entry_value(const uint8_t *b, size_t n, int be, size_t e, size_t *len)
{
    static const uint8_t sz[14] = {0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4};
    uint32_t type = g16(b, be, e + 2);
    *len = (type < 14 ? sz[type] : 0) * (size_t)g32(b, be, e + 4);
    if (*len <= 4) return b + e + 8;
    size_t v = g32(b, be, e + 8);
    return v + *len <= n ? b + v : NULL;
}

/* Every entry of IFD0 and of the Exif IFD of a is in b with the same type,
 * count and value bytes (pointers, orientation and dimensions apart). */
static int same_entries(const uint8_t *a, size_t an, const uint8_t *b, size_t bn, const char *where)
{
    int abe = a[0] == 'M', bbe = b[0] == 'M', ok = 1;
    size_t aifd[2] = {g32(a, abe, 4), 0}, bifd[2] = {g32(b, bbe, 4), 0};
    size_t ae = find_tag(a, an, abe, aifd[0], 0x8769), be_ = find_tag(b, bn, bbe, bifd[0], 0x8769);
    if (ae) aifd[1] = g32(a, abe, ae + 8);
    if (be_) bifd[1] = g32(b, bbe, be_ + 8);
    if (!ae != !be_) return 0;
    for (int k = 0; k < 2 && aifd[k]; k++) {
        size_t count = g16(a, abe, aifd[k]);
        for (size_t i = 0; i < count; i++) {
            size_t e = aifd[k] + 2 + 12 * i;
            uint32_t tag = g16(a, abe, e);
            if (tag == 0x8769 || tag == 0x8825 || tag == 0xA005 || tag == 0x0112 ||
                tag == 0xA002 || tag == 0xA003)
                continue;
            size_t f = find_tag(b, bn, bbe, bifd[k], tag), la, lb;
            const uint8_t *va = entry_value(a, an, abe, e, &la);
            const uint8_t *vb = f ? entry_value(b, bn, bbe, f, &lb) : NULL;
            if (!f || g16(a, abe, e + 2) != g16(b, bbe, f + 2) || la != lb || !va || !vb ||
                (abe == bbe && memcmp(va, vb, la))) {
                fprintf(stderr, "%s: tag 0x%04x differs\n", where, tag);
                ok = 0;
            }
        }
    }
    return ok;
}

/* IFD0's link to IFD1 (the thumbnail), 0 if none. */
static uint32_t exif_ifd1(const uint8_t *b, size_t n)
{
    int be = b[0] == 'M';
    size_t i0 = g32(b, be, 4);
    if (i0 + 2 > n) return 0;
    return g32(b, be, i0 + 2 + 12 * (size_t)g16(b, be, i0));
}

/* --------------------------------------------- JPEG files, by hand */

/* A baseline JPEG of img from TurboJPEG, its JFIF APP0 kept, then an APP1
 * Exif segment and the ICC profile in APP2 chunks of `chunk` bytes (their
 * order reversed when `reverse`: readers must go by the sequence numbers). */
static void write_jpeg(const char *path, const lumos_image *img, const uint8_t *exif,
                       size_t exif_n, const uint8_t *icc, size_t icc_n, size_t chunk, int reverse)
{
    tjhandle tj = tjInitCompress();
    unsigned char *j = NULL;
    unsigned long jn = 0;
    if (tjCompress2(tj, img->data, img->width, (int)img->stride, img->height,
                    img->channels == 1 ? TJPF_GRAY : TJPF_RGB, &j, &jn,
                    img->channels == 1 ? TJSAMP_GRAY : TJSAMP_444, 90, 0))
        exit(1);
    tjDestroy(tj);
    size_t app0 = 2 + 2 + ((size_t)j[4] << 8 | j[5]); /* SOI + JFIF APP0 */
    FILE *f = fopen(path, "wb");
    fwrite(j, 1, app0, f);
    if (exif) {
        size_t len = 2 + 6 + exif_n;
        uint8_t h[10] = {0xFF, 0xE1, (uint8_t)(len >> 8), (uint8_t)len, 'E', 'x', 'i', 'f', 0, 0};
        fwrite(h, 1, 10, f);
        fwrite(exif, 1, exif_n, f);
    }
    size_t count = icc ? (icc_n + chunk - 1) / chunk : 0;
    for (size_t k = 0; k < count; k++) {
        size_t i = reverse ? count - 1 - k : k;
        size_t n = i + 1 < count ? chunk : icc_n - i * chunk, len = 2 + 14 + n;
        uint8_t h[4] = {0xFF, 0xE2, (uint8_t)(len >> 8), (uint8_t)len};
        fwrite(h, 1, 4, f);
        fwrite("ICC_PROFILE", 1, 12, f);
        uint8_t seq[2] = {(uint8_t)(i + 1), (uint8_t)count};
        fwrite(seq, 1, 2, f);
        fwrite(icc + i * chunk, 1, n, f);
    }
    fwrite(j + app0, 1, jn - app0, f);
    fclose(f);
    tjFree(j);
}

typedef struct {
    uint8_t *icc, *exif;
    size_t icc_n, exif_n;
    int chunks, bad;
} jpeg_found;

/* The EXIF block and the reassembled profile of a JPEG file. */
static jpeg_found scan_jpeg(const char *path)
{
    jpeg_found r = {0};
    size_t n;
    uint8_t *b = read_all(path, &n);
    const uint8_t *chunk[256] = {0};
    size_t clen[256] = {0};
    int count = 0;
    for (size_t p = 2; b && p + 4 <= n && b[p] == 0xFF && b[p + 1] != 0xDA;) {
        size_t len = (size_t)b[p + 2] << 8 | b[p + 3];
        const uint8_t *d = b + p + 4;
        if (b[p + 1] == 0xE1 && !r.exif && len >= 8 && !memcmp(d, "Exif\0\0", 6)) {
            r.exif_n = len - 8;
            r.exif = malloc(r.exif_n + 1);
            memcpy(r.exif, d + 6, r.exif_n);
        }
        if (b[p + 1] == 0xE2 && len >= 16 && !memcmp(d, "ICC_PROFILE", 12)) {
            if (chunk[d[12]] || (count && count != d[13])) r.bad = 1;
            count = d[13];
            chunk[d[12]] = d + 14;
            clen[d[12]] = len - 16;
            r.chunks++;
        }
        p += 2 + len;
    }
    if (r.chunks && r.chunks == count && !r.bad) {
        for (int i = 1; i <= count; i++) r.icc_n += clen[i];
        r.icc = malloc(r.icc_n);
        for (int i = 1, o = 0; i <= count; o += (int)clen[i], i++) memcpy(r.icc + o, chunk[i], clen[i]);
    }
    free(b);
    return r;
}

/* --------------------------------------------- PNG and TIFF files, by hand */

static void write_png(const char *path, const lumos_image *img, const uint8_t *exif,
                      size_t exif_n, const uint8_t *icc, size_t icc_n)
{
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) exit(1);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, img->bits,
                 img->channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_BASE, PNG_FILTER_TYPE_BASE);
    if (icc) png_set_iCCP(png, info, "test profile", 0, icc, (png_uint_32)icc_n);
    if (exif) png_set_eXIf_1(png, info, (png_uint_32)exif_n, (png_bytep)exif);
    png_write_info(png, info);
    if (img->bits == 16) png_set_swap(png);
    for (int y = 0; y < img->height; y++)
        png_write_row(png, (png_const_bytep)img->data + (size_t)y * img->stride);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

static uint32_t crc32_of(const uint8_t *p, size_t n, uint32_t c)
{
    c = ~c;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* A PNG with an iCCP chunk holding `junk` (in a stored zlib stream, which
 * libpng's own writer would refuse to make), inserted after IHDR. */
static void write_png_junk_iccp(const char *path, const lumos_image *img, const uint8_t *junk,
                                size_t junk_n)
{
    write_png(path, img, NULL, 0, NULL, 0);
    size_t n;
    uint8_t *b = read_all(path, &n);
    size_t z = 2 + 5 + junk_n + 4, len = 5 + 1 + z;
    uint8_t *c = malloc(12 + len);
    be32(c, (uint32_t)len);
    memcpy(c + 4, "iCCPjunk\0\0", 10); /* name "junk", compression 0 */
    uint8_t *d = c + 14;
    d[0] = 0x78, d[1] = 0x01;                         /* zlib header */
    d[2] = 1, d[3] = (uint8_t)junk_n, d[4] = (uint8_t)(junk_n >> 8); /* final stored block */
    d[5] = (uint8_t)~junk_n, d[6] = (uint8_t)(~junk_n >> 8);
    memcpy(d + 7, junk, junk_n);
    uint32_t s1 = 1, s2 = 0;
    for (size_t i = 0; i < junk_n; i++) s1 = (s1 + junk[i]) % 65521, s2 = (s2 + s1) % 65521;
    be32(d + 7 + junk_n, s2 << 16 | s1);
    be32(c + 8 + len, crc32_of(c + 4, 4 + len, 0));
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, 33, f); /* signature + IHDR */
    fwrite(c, 1, 12 + len, f);
    fwrite(b + 33, 1, n - 33, f);
    fclose(f);
    free(b);
    free(c);
}

typedef struct {
    uint8_t *icc, *exif;
    size_t icc_n, exif_n;
} png_found;

static void quiet(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static png_found scan_png(const char *path)
{
    png_found r = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return r;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, quiet);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png)) == 0) {
        png_init_io(png, f);
        png_read_info(png, info);
        png_charp name;
        int comp;
        png_bytep p;
        png_uint_32 pn;
        if (png_get_iCCP(png, info, &name, &comp, &p, &pn)) {
            r.icc = malloc(pn);
            memcpy(r.icc, p, pn);
            r.icc_n = pn;
        }
        if (png_get_eXIf_1(png, info, &pn, &p)) {
            r.exif = malloc(pn);
            memcpy(r.exif, p, pn);
            r.exif_n = pn;
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return r;
}

/* A TIFF through libtiff; bilevel (1-bit) when img is NULL: w x h stripes. */
static void write_tiff(const char *path, const lumos_image *img, int orientation,
                       const uint8_t *icc, size_t icc_n)
{
    TIFF *t = TIFFOpen(path, "w");
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, img->width);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, img->height);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, img->bits);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, img->channels);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, img->channels == 1 ? PHOTOMETRIC_MINISBLACK : PHOTOMETRIC_RGB);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, img->height);
    if (orientation) TIFFSetField(t, TIFFTAG_ORIENTATION, orientation);
    if (icc) TIFFSetField(t, TIFFTAG_ICCPROFILE, (uint32_t)icc_n, icc);
    for (int y = 0; y < img->height; y++)
        TIFFWriteScanline(t, (uint8_t *)img->data + (size_t)y * img->stride, (uint32_t)y, 0);
    TIFFClose(t);
}

static uint8_t *scan_tiff(const char *path, size_t *icc_n, int *orientation)
{
    *icc_n = 0;
    *orientation = 0;
    TIFF *t = TIFFOpen(path, "r");
    if (!t) return NULL;
    uint32_t n = 0;
    void *p = NULL;
    uint16_t o = 0;
    uint8_t *icc = NULL;
    if (TIFFGetField(t, TIFFTAG_ICCPROFILE, &n, &p) && p) {
        icc = malloc(n);
        memcpy(icc, p, n);
        *icc_n = n;
    }
    if (TIFFGetField(t, TIFFTAG_ORIENTATION, &o)) *orientation = o;
    TIFFClose(t);
    return icc;
}

/* The profile and EXIF block a file holds, by format (the file's, not lumos's view). */
typedef struct {
    uint8_t *icc, *exif;
    size_t icc_n, exif_n;
    int orientation; /* EXIF's (JPEG, PNG) or the tag's (TIFF); 0 if none */
} found;

static found scan_file(lumos_format fmt, const char *path)
{
    found r = {0};
    if (fmt == LUMOS_FORMAT_JPEG) {
        jpeg_found j = scan_jpeg(path);
        r.icc = j.icc, r.icc_n = j.icc_n, r.exif = j.exif, r.exif_n = j.exif_n;
    } else if (fmt == LUMOS_FORMAT_PNG) {
        png_found p = scan_png(path);
        r.icc = p.icc, r.icc_n = p.icc_n, r.exif = p.exif, r.exif_n = p.exif_n;
    } else {
        r.icc = scan_tiff(path, &r.icc_n, &r.orientation);
        return r;
    }
    r.orientation = r.exif ? exif_orientation(r.exif, r.exif_n) : 0;
    return r;
}

static void free_found(found *f)
{
    free(f->icc);
    free(f->exif);
}

static const char *ext(lumos_format f)
{
    return f == LUMOS_FORMAT_JPEG ? "jpg" : f == LUMOS_FORMAT_PNG ? "png" : "tif";
}

/* ------------------------------------------------------------- tests */

/* A JPEG as cameras and editors write it: JFIF, then EXIF, then a profile in
 * two chunks stored in reverse order; big-endian EXIF with orientation 6. */
static void test_jpeg_read(void)
{
    lumos_ctx *ctx = new_ctx();
    lumos_image img = gradient(40, 24, 3, 8);
    size_t icc_n, exif_n;
    uint8_t *icc = adobe_profile(0, &icc_n);
    exif_spec es = {.orientation = 6, .be = 1};
    uint8_t *exif = make_exif(&es, &exif_n);
    const char *path = tpath("in.jpg");
    write_jpeg(path, &img, exif, exif_n, icc, icc_n, icc_n / 2 + 1, 1);

    clear_notices();
    lumos_image got, plain;
    lumos_meta *meta = NULL;
    int st = lumos_image_read_meta(ctx, path, &got, &meta);
    CHECK(st == LUMOS_OK && meta, "read_meta: %s", lumos_last_error(ctx));
    size_t n;
    const uint8_t *m = lumos_meta_icc(meta, &n);
    CHECK(m && n == icc_n && !memcmp(m, icc, n), "JPEG: ICC differs (%zu vs %zu bytes)", n, icc_n);
    m = lumos_meta_exif(meta, &n);
    CHECK(m && n == exif_n && !memcmp(m, exif, n), "JPEG: EXIF differs (%zu vs %zu bytes)", n, exif_n);
    CHECK(lumos_meta_orientation(meta) == 6, "JPEG orientation %d", lumos_meta_orientation(meta));
    CHECK(lumos_meta_format(meta) == LUMOS_FORMAT_JPEG, "format %d", (int)lumos_meta_format(meta));
    CHECK(notice_count == 0, "notices on a sound file: %s", notices);
    /* The pixels are lumos_image_read's, unrotated. */
    CHECK(lumos_image_read(ctx, path, &plain) == LUMOS_OK && same_pixels(&got, &plain) &&
              got.width == 40 && got.space == LUMOS_SPACE_SRGB,
          "read_meta pixels differ from lumos_image_read's");
    lumos_image_free(&plain);
    lumos_image_free(&got);
    lumos_meta_free(meta);

    /* Accessors on NULL and the setters' checks. */
    CHECK(lumos_meta_icc(NULL, &n) == NULL && n == 0 && lumos_meta_orientation(NULL) == 1 &&
              lumos_meta_format(NULL) == LUMOS_FORMAT_AUTO,
          "NULL meta accessors");
    meta = lumos_meta_new();
    CHECK(meta && lumos_meta_orientation(meta) == 1 && !lumos_meta_exif(meta, &n) && n == 0,
          "new meta");
    CHECK(lumos_meta_set_orientation(meta, 0) == LUMOS_E_ARG &&
              lumos_meta_set_orientation(meta, 9) == LUMOS_E_ARG &&
              lumos_meta_set_orientation(meta, 8) == LUMOS_OK && lumos_meta_orientation(meta) == 8,
          "set_orientation range");
    CHECK(lumos_meta_set_exif(ctx, meta, exif, exif_n) == LUMOS_OK &&
              lumos_meta_orientation(meta) == 6,
          "set_exif takes the block's orientation: %s", lumos_last_error(ctx));
    CHECK(lumos_meta_set_exif(ctx, meta, exif, exif_n - 20) == LUMOS_E_FORMAT &&
              lumos_meta_exif(meta, &n) && n == exif_n,
          "a truncated block refused, the old one kept");
    uint8_t junk[600];
    uint32_t s = 3;
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)rng(&s);
    CHECK(lumos_meta_set_icc(ctx, meta, junk, sizeof junk) == LUMOS_E_FORMAT, "junk ICC refused");
    CHECK(lumos_meta_set_icc(ctx, meta, icc, icc_n - 1) == LUMOS_E_FORMAT, "cut ICC refused");
    CHECK(lumos_meta_set_icc(ctx, meta, icc, icc_n) == LUMOS_OK &&
              lumos_meta_set_icc(ctx, meta, NULL, 0) == LUMOS_OK && !lumos_meta_icc(meta, &n),
          "set and remove ICC");
    lumos_meta_free(meta);
    lumos_meta_free(NULL);
    CHECK(lumos_image_read_meta(ctx, path, &got, NULL) == LUMOS_E_ARG, "NULL meta pointer");
    meta = (lumos_meta *)&s;
    CHECK(lumos_image_read_meta(ctx, tpath("none.jpg"), &got, &meta) == LUMOS_E_IO && !meta,
          "a missing file: meta NULL");
    free(icc);
    free(exif);
    lumos_image_free(&img);
    lumos_ctx_free(ctx);
}

/* Writes an input of format `in` with the Adobe profile (gray profile for
 * gray) and, for JPEG/PNG, an EXIF block with orientation 3 (TIFF: the tag),
 * then runs it through lumos to `out`: first as is, then made upright with
 * the orientation reset to 1. */
static void round_trip(lumos_format in, lumos_format out, int channels, int bits)
{
    char where[64];
    snprintf(where, sizeof where, "%s->%s %dch %db", ext(in), ext(out), channels, bits);
    lumos_ctx *ctx = new_ctx();
    lumos_image img = gradient(36, 20, channels, bits);
    size_t icc_n, exif_n = 0;
    uint8_t *icc = channels == 1 ? gray_profile(&icc_n) : adobe_profile(0, &icc_n);
    exif_spec es = {.orientation = 3, .be = in == LUMOS_FORMAT_PNG, .dims = 1, .width = 36,
                    .height = 20};
    uint8_t *exif = in == LUMOS_FORMAT_TIFF ? NULL : make_exif(&es, &exif_n);
    const char *src = tpath("rt-in-%s.%s", where, ext(in));
    if (in == LUMOS_FORMAT_JPEG) write_jpeg(src, &img, exif, exif_n, icc, icc_n, 65519, 0);
    else if (in == LUMOS_FORMAT_PNG) write_png(src, &img, exif, exif_n, icc, icc_n);
    else write_tiff(src, &img, 3, icc, icc_n);

    clear_notices();
    lumos_image got;
    lumos_meta *meta = NULL;
    if (lumos_image_read_meta(ctx, src, &got, &meta) != LUMOS_OK) {
        CHECK(0, "%s: read_meta: %s", where, lumos_last_error(ctx));
        goto done;
    }
    CHECK(lumos_meta_orientation(meta) == 3, "%s: read orientation %d", where,
          lumos_meta_orientation(meta));
    CHECK(lumos_meta_format(meta) == in, "%s: format", where);
    CHECK(got.bits == bits && got.channels == channels, "%s: read %d ch %d bits", where,
          got.channels, got.bits);

    lumos_write_options wo;
    lumos_write_options_init(&wo);
    wo.meta = meta;
    wo.overwrite = 1;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) { /* upright, and say so */
            CHECK(lumos_image_orient(ctx, &got, lumos_meta_orientation(meta)) == LUMOS_OK, "orient");
            CHECK(lumos_meta_set_orientation(meta, 1) == LUMOS_OK, "reset");
        }
        const char *dst = tpath("rt-out%d-%s.%s", pass, where, ext(out));
        CHECK(lumos_image_write(ctx, &got, dst, &wo) == LUMOS_OK, "%s: write: %s", where,
              lumos_last_error(ctx));
        found f = scan_file(out, dst);
        int want_o = pass ? 1 : 3;
        CHECK(f.icc && f.icc_n == icc_n && !memcmp(f.icc, icc, icc_n),
              "%s pass %d: the file's ICC differs (%zu vs %zu bytes)", where, pass, f.icc_n, icc_n);
        if (out == LUMOS_FORMAT_TIFF) {
            CHECK(f.orientation == want_o, "%s pass %d: TIFF orientation %d", where, pass,
                  f.orientation);
        } else if (exif) {
            CHECK(f.exif && (pass == 0 ? f.exif_n == exif_n && !memcmp(f.exif, exif, exif_n)
                                       : equal_but_orientation(exif, exif_n, f.exif, f.exif_n)),
                  "%s pass %d: the file's EXIF block differs (%zu vs %zu bytes)", where, pass,
                  f.exif_n, exif_n);
            CHECK(f.orientation == want_o, "%s pass %d: EXIF orientation %d", where, pass,
                  f.orientation);
        } else { /* TIFF in: a block of the orientation alone, none once upright */
            CHECK(pass ? !f.exif : f.exif && f.orientation == 3,
                  "%s pass %d: orientation-only block (%zu bytes, orientation %d)", where, pass,
                  f.exif_n, f.orientation);
        }
        /* And lumos reads back what it wrote. */
        lumos_image back;
        lumos_meta *m2 = NULL;
        if (lumos_image_read_meta(ctx, dst, &back, &m2) == LUMOS_OK) {
            size_t n;
            const uint8_t *p = lumos_meta_icc(m2, &n);
            CHECK(p && n == icc_n && !memcmp(p, icc, n), "%s pass %d: ICC read back", where, pass);
            CHECK(lumos_meta_orientation(m2) == want_o, "%s pass %d: orientation read back %d",
                  where, pass, lumos_meta_orientation(m2));
            if (out != LUMOS_FORMAT_JPEG && in != LUMOS_FORMAT_JPEG)
                CHECK(same_pixels(&back, &got), "%s pass %d: pixels differ", where, pass);
            else if (bits == 8)
                CHECK(mean_diff(&back, &got) < 3, "%s pass %d: pixels differ by %.2f", where,
                      pass, mean_diff(&back, &got));
            lumos_image_free(&back);
            lumos_meta_free(m2);
        } else {
            CHECK(0, "%s: read back: %s", where, lumos_last_error(ctx));
        }
        free_found(&f);
    }
    CHECK(notice_count == 0, "%s: notices: %s", where, notices);
    lumos_image_free(&got);
    lumos_meta_free(meta);
done:
    free(icc);
    free(exif);
    lumos_image_free(&img);
    lumos_ctx_free(ctx);
}

static void test_round_trips(void)
{
    const lumos_format f[3] = {LUMOS_FORMAT_JPEG, LUMOS_FORMAT_PNG, LUMOS_FORMAT_TIFF};
    for (int i = 0; i < 3; i++)
        for (int o = 0; o < 3; o++) round_trip(f[i], f[o], 3, 8);
    round_trip(LUMOS_FORMAT_JPEG, LUMOS_FORMAT_JPEG, 1, 8);
    round_trip(LUMOS_FORMAT_PNG, LUMOS_FORMAT_PNG, 1, 16);
    round_trip(LUMOS_FORMAT_PNG, LUMOS_FORMAT_TIFF, 3, 16);
    round_trip(LUMOS_FORMAT_TIFF, LUMOS_FORMAT_PNG, 1, 16);
}

/* A profile of ~180 KB: four APP2 chunks of 60000 bytes in, three of
 * lumos's 65519 out. */
static void test_big_icc(void)
{
    lumos_ctx *ctx = new_ctx();
    size_t icc_n;
    uint8_t *icc = adobe_profile(30000, &icc_n);
    CHECK(icc_n > 2 * 65519, "the big profile is only %zu bytes", icc_n);
    lumos_image img = gradient(32, 16, 3, 8);
    /* Read: chunks of 60000 bytes, stored last first. */
    const char *in = tpath("big-in.jpg");
    write_jpeg(in, &img, NULL, 0, icc, icc_n, 60000, 1);
    lumos_image got;
    lumos_meta *meta = NULL;
    clear_notices();
    CHECK(lumos_image_read_meta(ctx, in, &got, &meta) == LUMOS_OK, "%s", lumos_last_error(ctx));
    size_t n;
    const uint8_t *p = lumos_meta_icc(meta, &n);
    CHECK(p && n == icc_n && !memcmp(p, icc, n), "big ICC read: %zu of %zu bytes", n, icc_n);
    CHECK(notice_count == 0, "notices: %s", notices);
    /* Write: lumos's own chunking, read back by hand. */
    lumos_write_options wo;
    lumos_write_options_init(&wo);
    wo.meta = meta;
    const char *out = tpath("big-out.jpg");
    CHECK(lumos_image_write(ctx, &got, out, &wo) == LUMOS_OK, "%s", lumos_last_error(ctx));
    jpeg_found j = scan_jpeg(out);
    CHECK(j.chunks == (int)((icc_n + 65518) / 65519) && !j.bad && j.icc && j.icc_n == icc_n &&
              !memcmp(j.icc, icc, icc_n),
          "big ICC written: %d chunks, %zu bytes", j.chunks, j.icc_n);
    free(j.icc);
    free(j.exif);
    lumos_image_free(&got);
    lumos_meta_free(meta);
    free(icc);
    lumos_image_free(&img);
    lumos_ctx_free(ctx);
}

/* Reads path expecting the pixels of ref (JPEG: within its loss), a notice
 * naming `what`, and no profile/EXIF as `icc`/`exif` say. */
static void expect_dropped(lumos_ctx *ctx, const char *path, const lumos_image *ref,
                           const char *what, int icc_left, int exif_left, int orientation)
{
    clear_notices();
    lumos_image got;
    lumos_meta *meta = NULL;
    int st = lumos_image_read_meta(ctx, path, &got, &meta);
    CHECK(st == LUMOS_OK, "%s: damaged metadata failed the read: %s", path, lumos_last_error(ctx));
    if (st) return;
    CHECK(ref->bits != 8 || mean_diff(&got, ref) < 3, "%s: pixels", path);
    CHECK(notice_count >= 1 && strstr(notices, what), "%s: no notice about %s (%s)", path, what,
          notices);
    size_t n;
    CHECK(!lumos_meta_icc(meta, &n) == !icc_left, "%s: ICC %s", path, icc_left ? "lost" : "kept");
    CHECK(!lumos_meta_exif(meta, &n) == !exif_left, "%s: EXIF %s", path,
          exif_left ? "lost" : "kept");
    CHECK(lumos_meta_orientation(meta) == orientation, "%s: orientation %d", path,
          lumos_meta_orientation(meta));
    lumos_image_free(&got);
    lumos_meta_free(meta);
}

static void test_damaged(void)
{
    lumos_ctx *ctx = new_ctx();
    lumos_image img = gradient(30, 18, 3, 8);
    size_t icc_n, exif_n;
    uint8_t *icc = adobe_profile(0, &icc_n);
    exif_spec es = {.orientation = 6};
    uint8_t *exif = make_exif(&es, &exif_n);
    uint8_t junk[700];
    uint32_t s = 11;
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)rng(&s);
    uint8_t bad_icc[700];
    memcpy(bad_icc, icc, icc_n < sizeof bad_icc ? icc_n : sizeof bad_icc);
    bad_icc[0] = 0x7F; /* a header claiming more bytes than there are */

    /* EXIF cut 12 bytes short: the maker note's value runs past its end. */
    const char *p = tpath("cut-exif.jpg");
    write_jpeg(p, &img, exif, exif_n - 12, icc, icc_n, 65519, 0);
    expect_dropped(ctx, p, &img, "EXIF", 1, 0, 1);
    /* Cut inside IFD0, and a block of 5 bytes. */
    write_jpeg(p, &img, exif, 20, icc, icc_n, 65519, 0);
    expect_dropped(ctx, p, &img, "EXIF", 1, 0, 1);
    write_jpeg(p, &img, exif, 5, NULL, 0, 65519, 0);
    expect_dropped(ctx, p, &img, "EXIF", 0, 0, 1);
    /* Random bytes as the profile; a profile cut short; one of two chunks. */
    p = tpath("junk-icc.jpg");
    write_jpeg(p, &img, exif, exif_n, junk, sizeof junk, 65519, 0);
    expect_dropped(ctx, p, &img, "ICC", 0, 1, 6);
    write_jpeg(p, &img, exif, exif_n, icc, icc_n - 40, 65519, 0);
    expect_dropped(ctx, p, &img, "ICC", 0, 1, 6);
    {
        size_t half = icc_n / 2 + 1;
        write_jpeg(p, &img, NULL, 0, icc, half, half, 0); /* 1 chunk, then patch its count */
        size_t n;
        uint8_t *b = read_all(p, &n);
        for (size_t i = 0; i + 16 < n; i++)
            if (!memcmp(b + i, "ICC_PROFILE", 12)) b[i + 13] = 2;
        write_all(p, b, n);
        free(b);
        expect_dropped(ctx, p, &img, "ICC", 0, 0, 1);
    }
    /* An orientation of 9: taken as 1, the block kept. */
    {
        exif_spec e9 = {.orientation = 9};
        size_t n9;
        uint8_t *x9 = make_exif(&e9, &n9);
        p = tpath("orient9.jpg");
        write_jpeg(p, &img, x9, n9, NULL, 0, 65519, 0);
        expect_dropped(ctx, p, &img, "orientation", 0, 1, 1);
        free(x9);
    }
    /* PNG: a cut eXIf (libpng takes it, lumos drops it), a junk iCCP (libpng drops it). */
    p = tpath("cut-exif.png");
    write_png(p, &img, exif, exif_n - 12, icc, icc_n);
    expect_dropped(ctx, p, &img, "EXIF", 1, 0, 1);
    p = tpath("junk-icc.png");
    write_png_junk_iccp(p, &img, junk, sizeof junk);
    expect_dropped(ctx, p, &img, "libpng", 0, 0, 1);
    /* TIFF: junk and a lying header in the ICC tag. */
    p = tpath("junk-icc.tif");
    write_tiff(p, &img, 8, junk, sizeof junk);
    expect_dropped(ctx, p, &img, "ICC", 0, 0, 8);
    write_tiff(p, &img, 1, bad_icc, sizeof bad_icc < icc_n ? sizeof bad_icc : icc_n);
    expect_dropped(ctx, p, &img, "ICC", 0, 0, 1);

    /* lumos_image_read itself neither looks nor complains. */
    clear_notices();
    lumos_image got;
    CHECK(lumos_image_read(ctx, tpath("cut-exif.jpg"), &got) == LUMOS_OK && notice_count == 0,
          "plain read of damaged metadata: %s", notices);
    lumos_image_free(&got);
    free(icc);
    free(exif);
    lumos_image_free(&img);
    lumos_ctx_free(ctx);
}

/* Files with no metadata at all, and writes with an empty meta: as before. */
static void test_no_meta(void)
{
    lumos_ctx *ctx = new_ctx();
    lumos_image img = gradient(20, 12, 3, 8);
    const char *paths[3] = {tpath("bare.jpg"), tpath("bare.png"), tpath("bare.tif")};
    write_jpeg(paths[0], &img, NULL, 0, NULL, 0, 65519, 0);
    write_png(paths[1], &img, NULL, 0, NULL, 0);
    write_tiff(paths[2], &img, 0, NULL, 0);
    clear_notices();
    for (int i = 0; i < 3; i++) {
        lumos_image got;
        lumos_meta *meta = NULL;
        size_t a, b;
        CHECK(lumos_image_read_meta(ctx, paths[i], &got, &meta) == LUMOS_OK && meta &&
                  !lumos_meta_icc(meta, &a) && !lumos_meta_exif(meta, &b) && a == 0 && b == 0 &&
                  lumos_meta_orientation(meta) == 1 && got.width == 20,
              "%s: bare file", paths[i]);
        lumos_image_free(&got);
        lumos_meta_free(meta);
    }
    CHECK(notice_count == 0, "notices on bare files: %s", notices);

    /* An empty meta changes nothing: lumos's own profile, no EXIF, the same
     * pixels. (lcms2 stamps each profile it builds with the time, and its
     * MD5 ID with it, so those header fields may differ.) */
    lumos_meta *empty = lumos_meta_new();
    for (int f = 1; f <= 3; f++) {
        lumos_write_options wo;
        lumos_write_options_init(&wo);
        CHECK(wo.meta == NULL, "meta default");
        const char *a = tpath("plain.%s", ext((lumos_format)f));
        const char *b = tpath("empty-meta.%s", ext((lumos_format)f));
        CHECK(lumos_image_write(ctx, &img, a, &wo) == LUMOS_OK, "%s", lumos_last_error(ctx));
        wo.meta = empty;
        CHECK(lumos_image_write(ctx, &img, b, &wo) == LUMOS_OK, "%s", lumos_last_error(ctx));
        found fa = scan_file((lumos_format)f, a), fb = scan_file((lumos_format)f, b);
        int same = fa.icc && fb.icc && fa.icc_n == fb.icc_n && !fa.exif && !fb.exif &&
                   fa.orientation == fb.orientation;
        for (size_t i = 0; same && i < fa.icc_n; i++)
            if (fa.icc[i] != fb.icc[i] && !(i >= 24 && i < 36) && !(i >= 84 && i < 100)) same = 0;
        lumos_image pa, pb;
        CHECK(same && lumos_image_read(ctx, a, &pa) == LUMOS_OK &&
                  lumos_image_read(ctx, b, &pb) == LUMOS_OK && same_pixels(&pa, &pb),
              "%s: an empty meta changed the file", b);
        lumos_image_free(&pa);
        lumos_image_free(&pb);
        free_found(&fa);
        free_found(&fb);
    }
    /* An EXR has no metadata to give. */
    lumos_image lin = gradient(8, 8, 3, 16);
    lin.space = LUMOS_SPACE_LINEAR_SRGB;
    CHECK(lumos_image_write(ctx, &lin, tpath("x.exr"), NULL) == LUMOS_OK, "%s", lumos_last_error(ctx));
    lumos_image got;
    lumos_meta *meta = NULL;
    CHECK(lumos_image_read_meta(ctx, tpath("x.exr"), &got, &meta) == LUMOS_OK &&
              lumos_meta_format(meta) == LUMOS_FORMAT_EXR && !lumos_meta_icc(meta, NULL),
          "EXR read_meta: %s", lumos_last_error(ctx));
    lumos_image_free(&got);
    lumos_meta_free(meta);
    lumos_image_free(&lin);
    lumos_meta_free(empty);
    lumos_image_free(&img);
    lumos_ctx_free(ctx);
}

/* The rewrites: thumbnail dropped, orientation added, dimensions updated;
 * and the ICC rule (not for linear images, not across colour spaces). */
static void test_rewrites(void)
{
    lumos_ctx *ctx = new_ctx();
    lumos_image img = gradient(24, 16, 3, 8);
    size_t icc_n, exif_n;
    uint8_t *icc = adobe_profile(0, &icc_n);
    exif_spec es = {.orientation = 6, .thumbnail = 1, .dims = 1, .width = 24, .height = 16};
    uint8_t *exif = make_exif(&es, &exif_n);
    const char *in = tpath("thumb.jpg");
    write_jpeg(in, &img, exif, exif_n, icc, icc_n, 65519, 0);
    lumos_image got;
    lumos_meta *meta = NULL;
    clear_notices();
    CHECK(lumos_image_read_meta(ctx, in, &got, &meta) == LUMOS_OK, "%s", lumos_last_error(ctx));
    size_t n;
    const uint8_t *m = lumos_meta_exif(meta, &n);
    CHECK(m && n == exif_n && !memcmp(m, exif, n) && exif_ifd1(m, n),
          "the block with its thumbnail is read whole");
    /* Upright: 24x16 stored, 16x24 shown. */
    CHECK(lumos_image_orient(ctx, &got, 6) == LUMOS_OK && got.width == 16, "orient");
    lumos_meta_set_orientation(meta, 1);
    lumos_write_options wo;
    lumos_write_options_init(&wo);
    wo.meta = meta;
    const char *out = tpath("thumb-out.jpg");
    CHECK(lumos_image_write(ctx, &got, out, &wo) == LUMOS_OK, "%s", lumos_last_error(ctx));
    jpeg_found j = scan_jpeg(out);
    CHECK(j.exif && exif_ifd1(j.exif, j.exif_n) == 0 && j.exif_n < exif_n - 300,
          "thumbnail not dropped (%zu of %zu bytes)", j.exif_n, exif_n);
    CHECK(j.exif && exif_orientation(j.exif, j.exif_n) == 1 &&
              same_entries(exif, exif_n, j.exif, j.exif_n, "thumbnail"),
          "entries changed with the thumbnail dropped");
    if (j.exif) {
        size_t ex = g32(j.exif, 0, find_tag(j.exif, j.exif_n, 0, 8, 0x8769) + 8);
        size_t wx = find_tag(j.exif, j.exif_n, 0, ex, 0xA002), hx = find_tag(j.exif, j.exif_n, 0, ex, 0xA003);
        CHECK(wx && hx && g16(j.exif, 0, wx + 8) == 16 && g32(j.exif, 0, hx + 8) == 24,
              "PixelX/YDimension not the written image's");
    }
    free(j.exif);
    free(j.icc);

    /* No Orientation tag in the block, orientation 8 asked: the tag added
     * in its place among IFD0's ascending tags, the rest kept. */
    exif_spec e0 = {.orientation = 0, .be = 1};
    size_t n0;
    uint8_t *x0 = make_exif(&e0, &n0);
    lumos_meta *mm = lumos_meta_new();
    CHECK(lumos_meta_set_exif(ctx, mm, x0, n0) == LUMOS_OK && lumos_meta_orientation(mm) == 1,
          "set_exif without orientation");
    lumos_meta_set_orientation(mm, 8);
    wo.meta = mm;
    out = tpath("added.png");
    CHECK(lumos_image_write(ctx, &img, out, &wo) == LUMOS_OK, "%s", lumos_last_error(ctx));
    png_found pf = scan_png(out);
    CHECK(pf.exif && exif_orientation(pf.exif, pf.exif_n) == 8 &&
              same_entries(x0, n0, pf.exif, pf.exif_n, "added"),
          "orientation 8 not added as a tag");
    if (pf.exif) {
        int be = pf.exif[0] == 'M';
        size_t i0 = g32(pf.exif, be, 4), count = g16(pf.exif, be, i0);
        uint32_t last = 0;
        int ascending = 1;
        for (size_t i = 0; i < count; i++) {
            uint32_t tag = g16(pf.exif, be, i0 + 2 + 12 * i);
            if (tag <= last) ascending = 0;
            last = tag;
        }
        CHECK(ascending && count == 5, "IFD0 after the addition: %zu tags, ascending %d", count,
              ascending);
    }
    free(pf.exif);
    free(pf.icc);

    /* A meta with only an orientation, and a RAW's lumos_exif: the JPEG gets
     * lumos's block with that orientation. */
    lumos_meta *only = lumos_meta_new();
    lumos_meta_set_orientation(only, 5);
    lumos_exif le;
    memset(&le, 0, sizeof le);
    strcpy(le.make, "RawMaker");
    wo.meta = only;
    wo.exif = &le;
    out = tpath("raw-exif.jpg");
    CHECK(lumos_image_write(ctx, &img, out, &wo) == LUMOS_OK, "%s", lumos_last_error(ctx));
    j = scan_jpeg(out);
    CHECK(j.exif && exif_orientation(j.exif, j.exif_n) == 5 &&
              find_tag(j.exif, j.exif_n, 0, 8, 0x010F),
          "lumos_exif block with the meta's orientation");
    free(j.exif);
    free(j.icc);
    wo.exif = NULL;

    /* A 70 KB block (a PNG's eXIf may be that big): PNG takes it, JPEG's
     * APP1 cannot, and says so. */
    {
        size_t bn = 8 + 18 + 70000;
        uint8_t *big = calloc(1, bn);
        memcpy(big, "II*\0\x08\0\0\0\x01\0\x0e\x01\x02\0\x70\x11\x01\0\x1a\0\0\0", 22);
        memset(big + 26, 'x', 69999);
        lumos_meta *bm = lumos_meta_new();
        CHECK(lumos_meta_set_exif(ctx, bm, big, bn) == LUMOS_OK, "70 KB block: %s",
              lumos_last_error(ctx));
        wo.meta = bm;
        clear_notices();
        CHECK(lumos_image_write(ctx, &img, tpath("big-exif.png"), &wo) == LUMOS_OK, "%s",
              lumos_last_error(ctx));
        pf = scan_png(tpath("big-exif.png"));
        CHECK(pf.exif && pf.exif_n == bn && !memcmp(pf.exif, big, bn) && notice_count == 0,
              "70 KB block in PNG (%zu bytes)", pf.exif_n);
        free(pf.exif);
        free(pf.icc);
        CHECK(lumos_image_write(ctx, &img, tpath("big-exif.jpg"), &wo) == LUMOS_OK, "%s",
              lumos_last_error(ctx));
        j = scan_jpeg(tpath("big-exif.jpg"));
        CHECK(!j.exif && strstr(notices, "too large"), "70 KB block in JPEG: %s", notices);
        free(j.exif);
        free(j.icc);
        lumos_meta_free(bm);
        free(big);
    }

    /* The ICC rule: a linear image gets lumos's linear profile; a gray image
     * does not get an RGB profile. Both say so. */
    wo.meta = meta;
    lumos_image lin = gradient(8, 8, 3, 16);
    lin.space = LUMOS_SPACE_LINEAR_SRGB;
    clear_notices();
    out = tpath("linear.png");
    CHECK(lumos_image_write(ctx, &lin, out, &wo) == LUMOS_OK, "%s", lumos_last_error(ctx));
    pf = scan_png(out);
    CHECK(pf.icc && !(pf.icc_n == icc_n && !memcmp(pf.icc, icc, icc_n)) &&
              strstr(notices, "not written"),
          "linear image got the input's profile (notices: %s)", notices);
    free(pf.icc);
    free(pf.exif);
    lumos_image gray = gradient(8, 8, 1, 8);
    clear_notices();
    out = tpath("gray.jpg");
    CHECK(lumos_image_write(ctx, &gray, out, &wo) == LUMOS_OK, "%s", lumos_last_error(ctx));
    j = scan_jpeg(out);
    cmsHPROFILE h = j.icc ? cmsOpenProfileFromMem(j.icc, (cmsUInt32Number)j.icc_n) : NULL;
    CHECK(h && cmsGetColorSpace(h) == cmsSigGrayData && strstr(notices, "colour space"),
          "gray image: not a gray profile (notices: %s)", notices);
    if (h) cmsCloseProfile(h);
    free(j.exif);
    free(j.icc);

    lumos_image_free(&gray);
    lumos_image_free(&lin);
    lumos_meta_free(only);
    lumos_meta_free(mm);
    free(x0);
    lumos_image_free(&got);
    lumos_meta_free(meta);
    free(icc);
    free(exif);
    lumos_image_free(&img);
    lumos_ctx_free(ctx);
}

/* CMYK JPEGs are refused clearly; 16-bit gray PNG stays 16-bit gray; a
 * TIFF read through libtiff's RGBA path keeps its stored orientation. */
static void test_kinds(void)
{
    lumos_ctx *ctx = new_ctx();
    uint8_t cmyk[16 * 8 * 4];
    for (size_t i = 0; i < sizeof cmyk; i++) cmyk[i] = (uint8_t)(i * 5);
    tjhandle tj = tjInitCompress();
    unsigned char *j = NULL;
    unsigned long jn = 0;
    CHECK(tjCompress2(tj, cmyk, 16, 64, 8, TJPF_CMYK, &j, &jn, TJSAMP_444, 90, 0) == 0, "CMYK");
    tjDestroy(tj);
    const char *p = tpath("cmyk.jpg");
    write_all(p, j, jn);
    tjFree(j);
    lumos_image got;
    lumos_meta *meta = (lumos_meta *)&jn;
    CHECK(lumos_image_read(ctx, p, &got) == LUMOS_E_UNSUPPORTED &&
              strstr(lumos_last_error(ctx), "CMYK") && got.data == NULL,
          "CMYK JPEG: %s", lumos_last_error(ctx));
    CHECK(lumos_image_read_meta(ctx, p, &got, &meta) == LUMOS_E_UNSUPPORTED && !meta,
          "CMYK JPEG with meta");

    lumos_image g16 = gradient(17, 9, 1, 16);
    p = tpath("gray16.png");
    write_png(p, &g16, NULL, 0, NULL, 0);
    CHECK(lumos_image_read(ctx, p, &got) == LUMOS_OK && got.channels == 1 && got.bits == 16 &&
              same_pixels(&got, &g16),
          "16-bit gray PNG read as %d ch %d bits", got.channels, got.bits);
    lumos_image_free(&got);
    lumos_image_free(&g16);

    /* Bilevel TIFFs go through libtiff's RGBA interface. */
    for (int o = 1; o <= 8; o++) {
        p = tpath("bilevel%d.tif", o);
        TIFF *t = TIFFOpen(p, "w");
        TIFFSetField(t, TIFFTAG_IMAGEWIDTH, 16);
        TIFFSetField(t, TIFFTAG_IMAGELENGTH, 4);
        TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 1);
        TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
        TIFFSetField(t, TIFFTAG_ORIENTATION, o);
        TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 4);
        for (uint32_t y = 0; y < 4; y++) {
            uint8_t row[2] = {(uint8_t)(0x80 >> y), 0x01}; /* a diagonal, a right edge */
            TIFFWriteScanline(t, row, y, 0);
        }
        TIFFClose(t);
        clear_notices();
        if (lumos_image_read_meta(ctx, p, &got, &meta) != LUMOS_OK) {
            CHECK(0, "bilevel %d: %s", o, lumos_last_error(ctx));
            continue;
        }
        const uint8_t *d = got.data;
        int stored = got.width == 16 && got.height == 4 && got.channels == 1;
        for (int y = 0; stored && y < 4; y++)
            for (int x = 0; x < 16; x++)
                if ((d[y * got.stride + x] != 0) != (x == y || x == 15)) stored = 0;
        CHECK(stored && lumos_meta_orientation(meta) == o, "bilevel %d: not as stored (orientation %d)",
              o, lumos_meta_orientation(meta));
        lumos_image_free(&got);
        lumos_meta_free(meta);
    }
    lumos_ctx_free(ctx);
}

/* ------------------------------------------------------ real photos */

static int has_exif_app1(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint8_t b[65536];
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    for (size_t p = 2; p + 10 <= n && b[p] == 0xFF && b[p + 1] != 0xDA;) {
        size_t len = (size_t)b[p + 2] << 8 | b[p + 3];
        if (b[p + 1] == 0xE1 && len >= 8 && !memcmp(b + p + 4, "Exif\0\0", 6)) return 1;
        p += 2 + len;
    }
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* JPEGs with EXIF under dir (recursively, under 1 MB each), appended to list. */
static void find_photos(const char *dir, char **list, int *n, int cap)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) && *n < cap) {
        if (e->d_name[0] == '.') continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(path, &sb)) continue;
        size_t l = strlen(e->d_name);
        if (S_ISDIR(sb.st_mode)) find_photos(path, list, n, cap);
        else if (l > 4 && (!strcasecmp(e->d_name + l - 4, ".jpg") ||
                           (l > 5 && !strcasecmp(e->d_name + l - 5, ".jpeg"))) &&
                 sb.st_size < 1 << 20 && has_exif_app1(path))
            list[(*n)++] = strdup(path);
    }
    if (d) closedir(d);
}

static int test_photos(int argc, char **argv)
{
    char *list[4096];
    int n = 0;
    for (int i = 0; i < argc; i++) find_photos(argv[i], list, &n, 4096);
    if (n == 0) {
        printf("[SKIP] no JPEG with EXIF under the given directories\n");
        return 77;
    }
    qsort(list, (size_t)n, sizeof *list, by_name);
    lumos_ctx *ctx = new_ctx();
    /* Up to 4, spread over the (sorted) list. */
    int tried = 0, take = n < 4 ? n : 4;
    for (int k = 0; k < take; k++) {
        const char *path = list[(size_t)k * (size_t)n / (size_t)take];
        jpeg_found want = scan_jpeg(path);
        lumos_image img;
        lumos_meta *meta = NULL;
        clear_notices();
        if (lumos_image_read_meta(ctx, path, &img, &meta) != LUMOS_OK) {
            CHECK(0, "%s: %s", path, lumos_last_error(ctx));
            continue;
        }
        tried++;
        size_t en, in;
        const uint8_t *e = lumos_meta_exif(meta, &en), *c = lumos_meta_icc(meta, &in);
        CHECK(e && en == want.exif_n && !memcmp(e, want.exif, en), "%s: EXIF not read whole (%s)",
              path, notices);
        CHECK(!want.icc == !c && (!c || (in <= want.icc_n && !memcmp(c, want.icc, in))),
              "%s: ICC not read (%s)", path, notices);
        printf("%s: %dx%d, EXIF %zu bytes (thumbnail %s), ICC %zu bytes, orientation %d\n", path,
               img.width, img.height, en, e && exif_ifd1(e, en) ? "yes" : "no", in,
               lumos_meta_orientation(meta));
        lumos_write_options wo;
        lumos_write_options_init(&wo);
        wo.meta = meta;
        for (int f = 0; f < 2 && e; f++) {
            const char *out = tpath("photo%d.%s", k, f ? "png" : "jpg");
            CHECK(lumos_image_write(ctx, &img, out, &wo) == LUMOS_OK, "%s", lumos_last_error(ctx));
            found got = scan_file(f ? LUMOS_FORMAT_PNG : LUMOS_FORMAT_JPEG, out);
            /* Short of 64 KB once the thumbnail is gone; too big for JPEG: a notice. */
            if (got.exif) {
                CHECK(same_entries(e, en, got.exif, got.exif_n, path) &&
                          exif_ifd1(got.exif, got.exif_n) == 0 &&
                          got.orientation == exif_orientation(e, en),
                      "%s -> %s: EXIF entries differ", path, out);
            } else {
                CHECK(f == 0 && strstr(notices, "too large"), "%s -> %s: EXIF lost", path, out);
            }
            CHECK(!c || (got.icc && got.icc_n == in && !memcmp(got.icc, c, in)),
                  "%s -> %s: ICC differs", path, out);
            free_found(&got);
        }
        free(want.icc);
        free(want.exif);
        lumos_image_free(&img);
        lumos_meta_free(meta);
    }
    for (int i = 0; i < n; i++) free(list[i]);
    lumos_ctx_free(ctx);
    CHECK(tried > 0, "no photo could be read");
    return -1;
}

int main(int argc, char **argv)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/lumos-test-meta-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    if (argc > 1 && !strcmp(argv[1], "--photos")) {
        int st = test_photos(argc - 2, argv + 2);
        if (st == 77) {
            rm_rf(tmpdir);
            return 77;
        }
    } else {
        test_jpeg_read();
        test_round_trips();
        test_big_icc();
        test_damaged();
        test_no_meta();
        test_rewrites();
        test_kinds();
    }
    if (failures == 0) rm_rf(tmpdir);
    else fprintf(stderr, "files kept in %s\n", tmpdir);
    printf("%s: %d failure(s)\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}
