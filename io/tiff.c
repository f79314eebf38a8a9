/* tiff.c — TIFF through libtiff.
 *
 * Error reporting: libtiff's TIFFSetErrorHandler/TIFFSetWarningHandler are
 * process-wide and carry no context, and their default prints to stderr.
 * libtiff 4.5 added per-handle handlers (TIFFOpenOptions +
 * TIFFClientOpenExt): ours record the first message in the job and return 1,
 * which stops libtiff from also calling the global handlers. So nothing is
 * printed and no global state is touched — not even the application's own
 * libtiff handlers. The file goes through our own fd callbacks so that a
 * failed write keeps its errno (libtiff's TIFFClose returns nothing, and its
 * messages don't carry errno). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <unistd.h>

#include "io/io.h"
#include "core/context.h"

typedef struct {
    int fd;
    int err;       /* errno of the first failed read/write */
    int eof;       /* libtiff asked for bytes past the end: a cut file */
    char msg[256]; /* libtiff's first error */
} tiff_job;

static int on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif, (void)module;
    tiff_job *job = user;
    if (!job->msg[0]) vsnprintf(job->msg, sizeof job->msg, fmt, ap);
    return 1; /* handled: don't call the global handlers */
}

static int on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif, (void)user, (void)module, (void)fmt, (void)ap;
    return 1;
}

static tmsize_t io_read(thandle_t h, void *buf, tmsize_t n)
{
    tiff_job *job = (tiff_job *)h;
    tmsize_t done = 0;
    while (done < n) {
        ssize_t r = read(job->fd, (char *)buf + done, (size_t)(n - done));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            if (!job->err) job->err = errno;
            return -1;
        }
        if (r == 0) { /* libtiff reports most short reads, not all (see read) */
            job->eof = 1;
            break;
        }
        done += r;
    }
    return done;
}

static tmsize_t io_write(thandle_t h, void *buf, tmsize_t n)
{
    tiff_job *job = (tiff_job *)h;
    tmsize_t done = 0;
    while (done < n) {
        ssize_t r = write(job->fd, (const char *)buf + done, (size_t)(n - done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (!job->err) job->err = r < 0 ? errno : EIO;
            return -1;
        }
        done += r;
    }
    return done;
}

static toff_t io_seek(thandle_t h, toff_t off, int whence)
{
    off_t r = lseek(((tiff_job *)h)->fd, (off_t)off, whence);
    return r < 0 ? (toff_t)-1 : (toff_t)r;
}

static int io_close(thandle_t h) { (void)h; return 0; } /* the caller closes the fd */

static toff_t io_size(thandle_t h)
{
    struct stat sb;
    return fstat(((tiff_job *)h)->fd, &sb) == 0 ? (toff_t)sb.st_size : 0;
}

static int io_map(thandle_t h, void **base, toff_t *size) { (void)h, (void)base, (void)size; return 0; }
static void io_unmap(thandle_t h, void *base, toff_t size) { (void)h, (void)base, (void)size; }

/* max_single (0: none) caps each of libtiff's own allocations. */
static TIFF *open_tiff(tiff_job *job, const char *name, const char *mode, uint64_t max_single)
{
    TIFFOpenOptions *o = TIFFOpenOptionsAlloc();
    if (!o) return NULL;
    if (max_single)
        TIFFOpenOptionsSetMaxSingleMemAlloc(
            o, max_single > (uint64_t)INT64_MAX ? (tmsize_t)INT64_MAX : (tmsize_t)max_single);
    TIFFOpenOptionsSetErrorHandlerExtR(o, on_error, job);
    TIFFOpenOptionsSetWarningHandlerExtR(o, on_warning, job);
    TIFF *tif = TIFFClientOpenExt(name, mode, (thandle_t)job, io_read, io_write, io_seek,
                                  io_close, io_size, io_map, io_unmap, o);
    TIFFOpenOptionsFree(o);
    return tif;
}

/* The failure of a libtiff call: the I/O error if there was one. */
static int tiff_fail(lumos_ctx *ctx, const tiff_job *job, int status, const char *path,
                     const char *what)
{
    if (job->err) return lumos__fail_errno(ctx, LUMOS_E_IO, job->err, "%s", path);
    return lumos__fail(ctx, status, "%s: %s%s%s", path, what, job->msg[0] ? ": " : "", job->msg);
}

/* A bounded, NUL-terminated copy of a lumos_exif string, trailing blanks cut. */
static const char *tag_text(char *buf, size_t cap, const char *s, size_t n)
{
    n = strnlen(s, n < cap ? n : cap - 1);
    while (n > 0 && s[n - 1] == ' ') n--;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return buf;
}

int lumos__write_tiff(lumos_ctx *ctx, const lumos_image *img, const char *tmp_path,
                      const char *shown_path, const lumos_write_options *opt)
{
    if (img->channels > 65535) /* SamplesPerPixel is 16 bits */
        return lumos__fail(ctx, LUMOS_E_UNSUPPORTED, "%s: TIFF holds at most 65535 channels, not %d",
                           shown_path, img->channels);
    /* Gray (+ alpha) or RGB (+ alpha, + planes): the profile describes the
     * colour samples, the extra samples carry none. */
    const int colours = img->channels < 3 ? 1 : 3, extra = img->channels - colours;
    size_t icc_size = 0;
    uint8_t *icc = NULL;
    int st = lumos__write_icc(ctx, img, colours, opt, UINT32_MAX, shown_path, &icc, &icc_size);
    if (st) return st;
    const size_t rowbytes = (size_t)img->width * (size_t)img->channels * (size_t)(img->bits / 8);
    /* The alpha of gray+A and RGBA is a plain (unassociated) alpha; further
     * samples are planes without a stated meaning. */
    uint16_t *extra_kinds = malloc((size_t)(extra > 0 ? extra : 1) * sizeof *extra_kinds);
    for (int i = 0; extra_kinds && i < extra; i++)
        extra_kinds[i] = i == 0 && (img->channels == 2 || img->channels == 4)
                             ? EXTRASAMPLE_UNASSALPHA
                             : EXTRASAMPLE_UNSPECIFIED;
    uint8_t *row = extra_kinds ? malloc(rowbytes) : NULL;
    tiff_job job = {.fd = open(tmp_path, O_RDWR | O_TRUNC | O_CLOEXEC)};
    if (job.fd < 0) st = lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", shown_path);
    else if (!row) st = lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", shown_path);
    if (st) {
        if (job.fd >= 0) close(job.fd);
        free(row);
        free(extra_kinds);
        free(icc);
        return st;
    }

    /* Classic TIFF addresses 4 GiB; beyond (or near) that, BigTIFF. */
    int big = (double)rowbytes * img->height > 4.0e9;
    TIFF *tif = open_tiff(&job, shown_path, big ? "w8" : "w", 0);
    if (!tif) {
        st = tiff_fail(ctx, &job, LUMOS_E_IO, shown_path, "cannot create TIFF");
    } else {
        /* Deflate with horizontal differencing (floating-point differencing
         * for float samples): lossless, read by every TIFF reader that
         * matters, and typically a third to a half smaller on photographs.
         * Uncompressed if this libtiff lacks zlib. */
        int deflate = TIFFIsCODECConfigured(COMPRESSION_ADOBE_DEFLATE);
        const int is_float = img->bits == 32;
        /* ~256 KiB strips: big enough for Deflate to work well, small enough
         * for readers to decode a region without inflating the whole file. */
        uint32_t rps = (uint32_t)(256 * 1024 / rowbytes);
        if (rps < 1) rps = 1;
        if (rps > (uint32_t)img->height) rps = (uint32_t)img->height;
        int ok = TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)img->width) &&
                 TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t)img->height) &&
                 TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, img->bits) &&
                 TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, img->channels) &&
                 TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT,
                              is_float ? SAMPLEFORMAT_IEEEFP : SAMPLEFORMAT_UINT) &&
                 TIFFSetField(tif, TIFFTAG_PHOTOMETRIC,
                              colours == 1 ? PHOTOMETRIC_MINISBLACK : PHOTOMETRIC_RGB) &&
                 (!extra || TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, (uint16_t)extra, extra_kinds)) &&
                 TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) &&
                 TIFFSetField(tif, TIFFTAG_ORIENTATION, lumos_meta_orientation(opt->meta)) &&
                 TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, rps) &&
                 TIFFSetField(tif, TIFFTAG_XRESOLUTION, 72.0) &&
                 TIFFSetField(tif, TIFFTAG_YRESOLUTION, 72.0) &&
                 TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_INCH) &&
                 TIFFSetField(tif, TIFFTAG_SOFTWARE, "lumos " LUMOS_VERSION_STRING) &&
                 TIFFSetField(tif, TIFFTAG_COMPRESSION,
                              deflate ? COMPRESSION_ADOBE_DEFLATE : COMPRESSION_NONE) &&
                 (!deflate || TIFFSetField(tif, TIFFTAG_PREDICTOR,
                                           is_float ? PREDICTOR_FLOATINGPOINT
                                                    : PREDICTOR_HORIZONTAL)) &&
                 (!icc || TIFFSetField(tif, TIFFTAG_ICCPROFILE, (uint32_t)icc_size, icc));
        const lumos_exif *ex = opt->exif;
        char text[64];
        if (ok && ex && tag_text(text, sizeof text, ex->make, sizeof ex->make)[0])
            ok = TIFFSetField(tif, TIFFTAG_MAKE, text);
        if (ok && ex && tag_text(text, sizeof text, ex->model, sizeof ex->model)[0])
            ok = TIFFSetField(tif, TIFFTAG_MODEL, text);
        /* TIFF's DateTime is exactly "YYYY:MM:DD HH:MM:SS"; skip anything else. */
        if (ok && ex && strnlen(tag_text(text, sizeof text, ex->datetime, sizeof ex->datetime),
                                sizeof text) == 19)
            ok = TIFFSetField(tif, TIFFTAG_DATETIME, text);
        if (!ok) st = tiff_fail(ctx, &job, LUMOS_E_IO, shown_path, "cannot set TIFF tags");

        /* Copy each row: the predictor differences the buffer in place. */
        for (int y = 0; !st && y < img->height; y++) {
            memcpy(row, (const uint8_t *)img->data + (size_t)y * img->stride, rowbytes);
            if (TIFFWriteScanline(tif, row, (uint32_t)y, 0) < 0)
                st = tiff_fail(ctx, &job, LUMOS_E_IO, shown_path, "cannot write TIFF");
        }
        /* Write the directory now: TIFFClose would do it but cannot fail. */
        if (!st && !TIFFWriteDirectory(tif))
            st = tiff_fail(ctx, &job, LUMOS_E_IO, shown_path, "cannot write TIFF");
        TIFFClose(tif);
    }
    if (close(job.fd) != 0 && !st) st = lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", shown_path);
    free(row);
    free(extra_kinds);
    free(icc);
    return st;
}

/* Copies rows × cols pixels of ncopy samples from a decoded strip or tile
 * (sch samples a pixel) to channels dc0.. of the image (dch a pixel). */
static void copy_block(uint8_t *dst, size_t dstride, int dch, int dc0, const uint8_t *src,
                       size_t sstride, int sch, int ncopy, uint32_t rows, uint32_t cols, int B)
{
    for (uint32_t r = 0; r < rows; r++) {
        uint8_t *d = dst + r * dstride + (size_t)dc0 * B;
        const uint8_t *s = src + r * sstride;
        if (sch == dch && ncopy == dch) {
            memcpy(d, s, (size_t)cols * sch * B);
            continue;
        }
        for (uint32_t c = 0; c < cols; c++)
            memcpy(d + (size_t)c * dch * B, s + (size_t)c * sch * B, (size_t)ncopy * B);
    }
}

/* Float samples of 16 or 64 bits (as libtiff decodes them, native order)
 * to float32: rows x n samples, strides in bytes. */
static void widen_floats(float *dst, size_t dstride, const uint8_t *src, size_t sstride,
                         uint32_t rows, size_t n, int src_bytes)
{
    for (uint32_t r = 0; r < rows; r++) {
        const uint8_t *s = src + r * sstride;
        float *d = (float *)(void *)((uint8_t *)dst + r * dstride);
        for (size_t i = 0; i < n; i++) {
            if (src_bytes == 2) {
                uint16_t h;
                memcpy(&h, s + 2 * i, 2);
                d[i] = lumos__half_to_float(h);
            } else {
                double v;
                memcpy(&v, s + 8 * i, 8);
                d[i] = (float)v;
            }
        }
    }
}

/* ---- limits: what a file's header claims, checked before allocating */

/* A strip larger than this (a compressed image stored as one strip) is read
 * row by row, so that no scratch of the image's size is needed. */
#define STRIP_SCRATCH ((uint64_t)16 << 20)
/* Bytes of RGBA raster read_rgba decodes into at once. */
#define RGBA_BAND ((uint64_t)16 << 20)

static int by_rows(TIFF *tif)
{
    return !TIFFIsTiled(tif) && TIFFStripSize64(tif) > STRIP_SCRATCH;
}

/* The rows read_rgba decodes at once: whole strips or rows of tiles (each
 * decoded once), as many as fit in RGBA_BAND bytes of raster. One larger
 * than that is split into pieces of a multiple of 16 rows (whole YCbCr
 * blocks), at most 4 of them: libtiff decodes a strip from its start, and
 * a tile whole, for every piece, so more pieces would cost more time than
 * the memory they save. */
static uint32_t rgba_band(uint32_t w, uint32_t h, uint32_t block)
{
    if (block == 0 || block > h) block = h;
    uint64_t fit = RGBA_BAND / ((uint64_t)w * 4);
    if (fit >= block) {
        uint64_t rows = fit / block * block;
        return rows < h ? (uint32_t)rows : h;
    }
    uint64_t rows = fit > ((uint64_t)block + 3) / 4 ? fit : ((uint64_t)block + 3) / 4;
    rows = (rows + 15) / 16 * 16;
    return rows < block ? (uint32_t)rows : block;
}

/* The most bytes one byte of a codec's data decodes to. Proven bounds
 * where the format allows no more: stored (1), PackBits (a 2-byte run gives
 * 128), LZW (12-bit codes: about 1365), Deflate (1032). A generous one for
 * codecs with arithmetic or long-run modes (CCITT, JPEG, ZSTD, ...). */
static uint64_t codec_ratio(uint16_t compression, char *name, size_t cap)
{
    switch (compression) {
    case COMPRESSION_NONE: snprintf(name, cap, "uncompressed"); return 1;
    case COMPRESSION_PACKBITS: snprintf(name, cap, "PackBits"); return 64;
    case COMPRESSION_LZW: snprintf(name, cap, "LZW"); return 2048;
    case COMPRESSION_DEFLATE:
    case COMPRESSION_ADOBE_DEFLATE: snprintf(name, cap, "Deflate"); return 1032;
    default: snprintf(name, cap, "compression %u", (unsigned)compression); return 32768;
    }
}

typedef struct {
    uint64_t begin, end;
} span;

static int by_begin(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Block i's bytes, cut at the end of the file. */
static span block_span(TIFF *tif, uint32_t i, uint64_t fsize)
{
    uint64_t off = TIFFGetStrileOffset(tif, i), count = TIFFGetStrileByteCount(tif, i);
    span b = {off < fsize ? off : fsize, 0};
    b.end = b.begin + (count < fsize - b.begin ? count : fsize - b.begin);
    return b;
}

/* The bytes of the file the n strips or tiles cover, each counted once:
 * blocks that share bytes (or lie past the end) cannot decode to more than
 * the bytes themselves allow. Files list their blocks in file order, which
 * takes one pass; others are sorted first. -1: out of memory. */
static int64_t held_bytes(TIFF *tif, uint32_t n, uint64_t fsize)
{
    span *sp = NULL;
    for (;;) {
        uint64_t held = 0, end = 0, last = 0;
        uint32_t i = 0;
        for (; i < n; i++) {
            const span b = sp ? sp[i] : block_span(tif, i, fsize);
            if (b.begin < last) break; /* out of order */
            last = b.begin;
            if (b.end > end) {
                held += b.end - (b.begin > end ? b.begin : end);
                end = b.end;
            }
        }
        if (i == n) {
            free(sp);
            return (int64_t)held;
        }
        /* n <= fsize / 4 + 2 (checked): at most 4 bytes a byte of the file */
        sp = malloc((size_t)n * sizeof *sp);
        if (!sp) return -1;
        for (i = 0; i < n; i++) sp[i] = block_span(tif, i, fsize);
        qsort(sp, n, sizeof *sp, by_begin);
    }
}

/* Checks what the header claims (a w x h image read into channels x bits,
 * with scratch bytes beside it) against the context's limits and against
 * what the file's strips or tiles can hold, before anything is allocated. */
static int check_tiff(lumos_ctx *ctx, TIFF *tif, tiff_job *job, const char *path, uint32_t w,
                      uint32_t h, int channels, int bits, uint64_t scratch)
{
    struct stat sb;
    if (fstat(job->fd, &sb) != 0) return lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", path);
    const uint64_t fsize = sb.st_size > 0 ? (uint64_t)sb.st_size : 0;
    uint16_t compression = COMPRESSION_NONE, planar = PLANARCONFIG_CONTIG, spp = 1;
    TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &compression);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
    const int tiled = TIFFIsTiled(tif);
    lumos__claim c = {.format = "TIFF", .width = w, .height = h};
    /* The pixel limit first: the sizes below may overflow for a huge claim. */
    c.alloc = lumos__mul_sat(lumos__mul_sat(lumos__mul_sat(w, h), (uint64_t)channels), bits / 8);
    c.alloc = c.alloc > UINT64_MAX - scratch ? UINT64_MAX : c.alloc + scratch;
    if (lumos__mul_sat(w, h) > lumos_ctx_max_pixels(ctx)) return lumos__check_claim(ctx, path, &c);

    /* Every strip or tile has an offset and a byte count in the file (2
     * bytes each at least, in the entry itself for up to 2 blocks). */
    const uint32_t n = tiled ? TIFFNumberOfTiles(tif) : TIFFNumberOfStrips(tif);
    if (n == 0 || n > fsize / 4 + 2)
        return lumos__fail(ctx, LUMOS_E_FORMAT,
                           "%s: damaged TIFF: the header claims %ux%u pixels in %u %s, more than "
                           "the file's %llu bytes can list",
                           path, w, h, n, tiled ? "tiles" : "strips", (unsigned long long)fsize);
    const uint64_t block = tiled ? TIFFTileSize64(tif) : TIFFVStripSize64(tif, h);
    if (block == 0) return tiff_fail(ctx, job, LUMOS_E_FORMAT, path, "damaged TIFF: bad size");
    /* Tiles are whole, edges included; the strips of a plane hold h rows. */
    c.decoded = lumos__mul_sat(block, tiled ? n : planar == PLANARCONFIG_SEPARATE ? spp : 1);
    char codec[40];
    c.ratio = codec_ratio(compression, codec, sizeof codec);
    c.codec = codec;
    if (compression == COMPRESSION_OJPEG) {
        c.held = fsize; /* old JPEG may keep its stream outside the strips */
    } else {
        int64_t held = held_bytes(tif, n, fsize);
        if (held < 0) return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
        c.held = (uint64_t)held;
    }
    return lumos__check_claim(ctx, path, &c);
}

/* 8/16-bit unsigned or 16/32/64-bit float gray or RGB, with any extra
 * samples, strips or tiles, contiguous or planar: every sample kept, as
 * stored (floats as float32). Rows stay in stored order, as JPEG's do: the
 * Orientation tag is the caller's to apply. */
static int read_direct(lumos_ctx *ctx, TIFF *tif, tiff_job *job, const char *path,
                       lumos_image *out, int spp, int planar, int bps)
{
    const int B = out->bits / 8, dch = out->channels, SB = bps / 8;
    const int sep = planar == PLANARCONFIG_SEPARATE && spp > 1;
    const int sch = sep ? 1 : spp; /* samples a pixel in one strip/tile */
    const uint32_t w = (uint32_t)out->width, h = (uint32_t)out->height;
    const int tiled = TIFFIsTiled(tif), rows_only = by_rows(tif);
    uint32_t cw = w, chh = 0;
    tmsize_t size;
    if (tiled) {
        if (!TIFFGetField(tif, TIFFTAG_TILEWIDTH, &cw) || !TIFFGetField(tif, TIFFTAG_TILELENGTH, &chh))
            return tiff_fail(ctx, job, LUMOS_E_FORMAT, path, "damaged TIFF");
        size = TIFFTileSize(tif);
    } else if (rows_only) {
        chh = 1;
        size = TIFFScanlineSize(tif);
    } else {
        TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &chh);
        if (chh > h) chh = h;
        size = TIFFStripSize(tif);
    }
    const size_t sstride = (size_t)cw * sch * SB;
    if (cw == 0 || chh == 0 || size <= 0 || (uint64_t)size < (uint64_t)sstride * chh)
        return tiff_fail(ctx, job, LUMOS_E_FORMAT, path, "damaged TIFF: bad strip or tile size");
    uint8_t *buf = malloc((size_t)size);
    /* Half and double samples are widened to float32 first. */
    const int widen = SB != B;
    const size_t wstride = (size_t)cw * sch * B;
    float *wide = widen && buf ? malloc(wstride * chh) : NULL;
    if (!buf || (widen && !wide)) {
        free(buf);
        return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
    }

    int st = LUMOS_OK;
    for (int s = 0; !st && s < (sep ? dch : 1); s++) {
        for (uint32_t y0 = 0; !st && y0 < h; y0 += chh) {
            uint32_t rows = h - y0 < chh ? h - y0 : chh;
            for (uint32_t x0 = 0; !st && x0 < w; x0 += cw) {
                uint32_t cols = w - x0 < cw ? w - x0 : cw;
                tmsize_t n = tiled ? TIFFReadTile(tif, buf, x0, y0, 0, (uint16_t)s)
                             : rows_only
                                 ? (TIFFReadScanline(tif, buf, y0, (uint16_t)s) == 1 ? size : -1)
                                 : TIFFReadEncodedStrip(tif, TIFFComputeStrip(tif, y0, (uint16_t)s),
                                                        buf, size);
                /* A strip may be short only by the rows below the image. */
                if (n < 0 || (uint64_t)n < (uint64_t)sstride * (rows - 1) + (size_t)cols * sch * SB) {
                    st = tiff_fail(ctx, job, LUMOS_E_FORMAT, path, "damaged TIFF");
                    break;
                }
                const uint8_t *src = buf;
                if (widen) {
                    widen_floats(wide, wstride, buf, sstride, rows, (size_t)cols * sch, SB);
                    src = (const uint8_t *)wide;
                }
                copy_block((uint8_t *)out->data + y0 * out->stride + (size_t)x0 * dch * B,
                           out->stride, dch, sep ? s : 0, src, widen ? wstride : sstride, sch,
                           sep ? 1 : dch, rows, cols, B);
            }
        }
    }
    free(wide);
    free(buf);
    return st;
}

/* The scratch read_direct needs: one strip, tile or row, and its float32
 * copy when samples are widened. */
static uint64_t direct_scratch(TIFF *tif, int bps, int bits)
{
    uint64_t block = TIFFIsTiled(tif) ? TIFFTileSize64(tif)
                     : by_rows(tif)    ? TIFFScanlineSize64(tif)
                                       : TIFFStripSize64(tif);
    return bps == bits ? block : block + block / (uint64_t)(bps / 8) * 4;
}

/* The rows of one strip or tile. */
static uint32_t block_rows(TIFF *tif)
{
    uint32_t rows = 0;
    if (TIFFIsTiled(tif)) TIFFGetField(tif, TIFFTAG_TILELENGTH, &rows);
    else TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rows);
    return rows;
}

/* Everything else libtiff can decode (palette, bilevel, YCbCr, CMYK, Lab,
 * odd bit depths): through its RGBA interface, at 8 bits, a band of strips
 * or tiles at a time (see rgba_band) rather than into a raster of the
 * whole image. */
static int read_rgba(lumos_ctx *ctx, TIFF *tif, tiff_job *job, const char *path,
                     lumos_image *out, int gray, int orientation)
{
    char emsg[1024] = "";
    if (!TIFFRGBAImageOK(tif, emsg))
        return lumos__fail(ctx, LUMOS_E_UNSUPPORTED, "%s: unsupported TIFF: %s", path, emsg);
    const uint32_t w = (uint32_t)out->width, h = (uint32_t)out->height;
    const uint32_t band = rgba_band(w, h, block_rows(tif));
    /* Beside the band, libtiff holds a decoded strip or tile. */
    const uint64_t scratch = (uint64_t)band * w * 4 + (TIFFIsTiled(tif) ? TIFFTileSize64(tif)
                                                                        : TIFFStripSize64(tif));
    int st = check_tiff(ctx, tif, job, path, w, h, gray ? 1 : 3, 8, scratch);
    if (st) return st;
    st = lumos_image_alloc(out, (int)w, (int)h, gray ? 1 : 3, 8);
    if (st) return lumos__fail(ctx, st, "%s: cannot allocate a %ux%u image", path, w, h);
    uint32_t *raster = malloc((size_t)band * w * 4);
    if (!raster) {
        lumos_image_free(out);
        return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
    }
    TIFFRGBAImage img;
    /* Stopping at a strip or tile that does not decode, as read_direct
     * does: going on would fill the whole image from a file of junk. The
     * file's own orientation is asked for, which keeps the rows as stored,
     * as read_direct does (libtiff would apply the flips of orientations
     * 2..8 but not the transpose of 5..8). */
    if (!TIFFRGBAImageBegin(&img, tif, 1, emsg)) {
        if (!job->msg[0])
            snprintf(job->msg, sizeof job->msg, "%.*s", (int)sizeof job->msg - 1, emsg);
        st = tiff_fail(ctx, job, LUMOS_E_FORMAT, path, "damaged TIFF");
    } else {
        img.req_orientation = (uint16_t)orientation;
        for (uint32_t y0 = 0; !st && y0 < h; y0 += band) {
            const uint32_t rows = h - y0 < band ? h - y0 : band;
            img.row_offset = (int)y0;
            img.col_offset = 0;
            if (!TIFFRGBAImageGet(&img, raster, w, rows)) {
                st = tiff_fail(ctx, job, LUMOS_E_FORMAT, path, "damaged TIFF");
                break;
            }
            for (uint32_t y = 0; y < rows; y++) {
                uint8_t *d = (uint8_t *)out->data + (size_t)(y0 + y) * out->stride;
                const uint32_t *p = raster + (size_t)y * w;
                for (uint32_t x = 0; x < w; x++, p++) {
                    *d++ = (uint8_t)TIFFGetR(*p);
                    if (!gray) *d++ = (uint8_t)TIFFGetG(*p), *d++ = (uint8_t)TIFFGetB(*p);
                }
            }
        }
        TIFFRGBAImageEnd(&img);
    }
    free(raster);
    if (st) lumos_image_free(out);
    return st;
}

/* The profile and orientation of the current directory. */
static int read_meta(lumos_ctx *ctx, TIFF *tif, const char *path, lumos_meta *meta)
{
    uint32_t icc_size = 0;
    void *icc = NULL;
    uint16_t orientation = ORIENTATION_TOPLEFT;
    if (TIFFGetField(tif, TIFFTAG_ORIENTATION, &orientation))
        lumos__meta_found_orientation(ctx, meta, path, orientation);
    if (TIFFGetField(tif, TIFFTAG_ICCPROFILE, &icc_size, &icc) && icc)
        return lumos__meta_found_icc(ctx, meta, path, icc, icc_size);
    return LUMOS_OK;
}

int lumos__read_tiff(lumos_ctx *ctx, const char *path, lumos_image *out, lumos_meta *meta)
{
    memset(out, 0, sizeof *out);
    tiff_job job = {.fd = open(path, O_RDONLY | O_CLOEXEC)};
    if (job.fd < 0) return lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", path);
    TIFF *tif = open_tiff(&job, path, "r", lumos_ctx_max_alloc(ctx));
    int st = LUMOS_OK;
    if (!tif) {
        st = tiff_fail(ctx, &job, LUMOS_E_FORMAT, path, "damaged TIFF");
    } else {
        uint32_t w = 0, h = 0;
        uint16_t bps = 1, spp = 1, photo, planar = PLANARCONFIG_CONTIG, fmt = SAMPLEFORMAT_UINT,
                 orientation = ORIENTATION_TOPLEFT;
        TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
        TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
        TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bps);
        TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
        TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
        TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &fmt);
        TIFFGetFieldDefaulted(tif, TIFFTAG_ORIENTATION, &orientation);
        if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photo)) /* required, but often missing */
            photo = spp >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
        int gray = photo == PHOTOMETRIC_MINISBLACK || photo == PHOTOMETRIC_MINISWHITE;
        const int is_uint = fmt == SAMPLEFORMAT_UINT && (bps == 8 || bps == 16);
        const int is_float = fmt == SAMPLEFORMAT_IEEEFP && (bps == 16 || bps == 32 || bps == 64);
        if (w == 0 || h == 0 || w > INT32_MAX || h > INT32_MAX) {
            st = lumos__fail(ctx, LUMOS_E_FORMAT, "%s: damaged TIFF: bad size %ux%u", path, w, h);
        } else if (meta && (st = read_meta(ctx, tif, path, meta))) {
            /* out of memory, reported */
        } else if ((is_uint || is_float) && ((photo == PHOTOMETRIC_MINISBLACK && spp >= 1) ||
                                             (photo == PHOTOMETRIC_RGB && spp >= 3))) {
            const int bits = is_float ? 32 : bps;
            if ((st = check_tiff(ctx, tif, &job, path, w, h, spp, bits,
                                 direct_scratch(tif, bps, bits)))) {
                /* reported */
            } else if ((st = lumos_image_alloc(out, (int)w, (int)h, spp, bits))) {
                st = lumos__fail(ctx, st, "%s: cannot allocate a %ux%u image", path, w, h);
            } else if ((st = read_direct(ctx, tif, &job, path, out, spp, planar, bps))) {
                lumos_image_free(out);
            }
        } else if (fmt == SAMPLEFORMAT_IEEEFP) { /* libtiff's RGBA interface takes integers only */
            st = lumos__fail(ctx, LUMOS_E_UNSUPPORTED,
                             "%s: unsupported TIFF: %u-bit float samples, photometric %u, %u a pixel",
                             path, (unsigned)bps, (unsigned)photo, (unsigned)spp);
        } else {
            out->width = (int)w, out->height = (int)h;
            st = read_rgba(ctx, tif, &job, path, out, gray, orientation);
        }
        TIFFClose(tif);
        /* libtiff only warns when a tag's value lies past the end of the
         * file (the tag is dropped); a cut file is damaged all the same. */
        if (!st && job.eof) {
            lumos_image_free(out);
            st = lumos__fail(ctx, LUMOS_E_FORMAT, "%s: damaged TIFF: the file is truncated", path);
        }
    }
    close(job.fd);
    if (st) memset(out, 0, sizeof *out);
    return st;
}
