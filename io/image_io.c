/* image_io.c — lumos_image_write/read(_meta): format choice and atomic writes.
 *
 * A write goes to a temporary file in the destination's directory (so the
 * final rename cannot cross file systems), is fsync'ed, and is renamed into
 * place only when complete; on any failure the temporary is removed. So the
 * destination is either untouched or the complete new file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic.h"
#include "io/io.h"
#include "core/context.h"

void lumos_write_options_init(lumos_write_options *opt)
{
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->format = LUMOS_FORMAT_AUTO;
    opt->quality = 92;
    opt->subsampling = 444;
    opt->exif = NULL;
    opt->overwrite = 0;
    opt->meta = NULL;
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; }

/* ASCII-only, locale-independent (strcasecmp follows the locale). */
static int suffix_is(const char *s, const char *suffix)
{
    for (; *s && *suffix; s++, suffix++)
        if (lower((unsigned char)*s) != *suffix) return 0;
    return *s == *suffix;
}

lumos_format lumos_format_from_path(const char *path)
{
    if (!path) return LUMOS_FORMAT_AUTO;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base) return LUMOS_FORMAT_AUTO; /* ".png" alone is a hidden file */
    dot++;
    if (suffix_is(dot, "jpg") || suffix_is(dot, "jpeg")) return LUMOS_FORMAT_JPEG;
    if (suffix_is(dot, "png")) return LUMOS_FORMAT_PNG;
    if (suffix_is(dot, "tif") || suffix_is(dot, "tiff")) return LUMOS_FORMAT_TIFF;
    if (suffix_is(dot, "exr")) return LUMOS_FORMAT_EXR;
    return LUMOS_FORMAT_AUTO;
}

typedef int (*writer_fn)(lumos_ctx *, const lumos_image *, const char *, const char *,
                         const lumos_write_options *);

lumos_status lumos_image_write(lumos_ctx *ctx, const lumos_image *img, const char *path,
                               const lumos_write_options *opt)
{
    lumos_write_options defaults;
    if (!opt) {
        lumos_write_options_init(&defaults);
        opt = &defaults;
    }
    if (!path || !*path) return lumos__fail(ctx, LUMOS_E_ARG, "lumos_image_write: no path");
    if (!img || !img->data || img->width <= 0 || img->height <= 0 || img->channels < 1 ||
        (img->bits != 8 && img->bits != 16 && img->bits != 32) ||
        img->stride / ((size_t)img->channels * (size_t)(img->bits / 8)) < (size_t)img->width)
        return lumos__fail(ctx, LUMOS_E_ARG,
                           "%s: invalid image (8/16/32-bit samples, 1 or more channels, rows of "
                           "at least width x channels samples needed)",
                           path);
    if (img->space != LUMOS_SPACE_SRGB && img->space != LUMOS_SPACE_LINEAR_SRGB &&
        img->space != LUMOS_SPACE_CAMERA)
        return lumos__fail(ctx, LUMOS_E_ARG, "%s: invalid colour space %d", path, (int)img->space);

    lumos_format fmt = opt->format == LUMOS_FORMAT_AUTO ? lumos_format_from_path(path) : opt->format;
    writer_fn writer;
    switch (fmt) {
    case LUMOS_FORMAT_JPEG: writer = lumos__write_jpeg; break;
    case LUMOS_FORMAT_PNG: writer = lumos__write_png; break;
    case LUMOS_FORMAT_TIFF: writer = lumos__write_tiff; break;
    case LUMOS_FORMAT_EXR: writer = lumos__write_exr; break;
    default:
        return lumos__fail(ctx, LUMOS_E_ARG,
                           "%s: unknown image format (use a .jpg, .png, .tif or .exr name or set "
                           "the format)",
                           path);
    }
    /* PNG and JPEG hold integer gray or RGB only; TIFF and OpenEXR hold any image. */
    if (fmt == LUMOS_FORMAT_PNG || fmt == LUMOS_FORMAT_JPEG) {
        const char *name = fmt == LUMOS_FORMAT_PNG ? "PNG" : "JPEG";
        if (img->bits == 32)
            return lumos__fail(ctx, LUMOS_E_ARG,
                               "%s: %s cannot hold 32-bit float samples (write TIFF or OpenEXR)",
                               path, name);
        if (img->channels != 1 && img->channels != 3)
            return lumos__fail(ctx, LUMOS_E_ARG,
                               "%s: %s holds gray or RGB, not %d channels (write TIFF or OpenEXR)",
                               path, name, img->channels);
    }
    /* EXR's readers take its values as linear light: sRGB-encoded values
     * would be shown with the transfer applied twice. */
    if (fmt == LUMOS_FORMAT_EXR && img->space == LUMOS_SPACE_SRGB)
        return lumos__fail(ctx, LUMOS_E_ARG,
                           "%s: OpenEXR holds linear light, and this image is sRGB-encoded "
                           "(develop it with linear output, or write TIFF)",
                           path);
    if (fmt == LUMOS_FORMAT_JPEG) {
        if (img->bits != 8)
            return lumos__fail(ctx, LUMOS_E_ARG, "%s: JPEG needs an 8-bit image, not %d-bit", path,
                               img->bits);
        if (img->width > 65535 || img->height > 65535)
            return lumos__fail(ctx, LUMOS_E_UNSUPPORTED,
                               "%s: JPEG is limited to 65535 pixels a side (image is %dx%d)", path,
                               img->width, img->height);
        if (opt->quality < 1 || opt->quality > 100)
            return lumos__fail(ctx, LUMOS_E_ARG, "%s: JPEG quality %d is not in 1..100", path,
                               opt->quality);
        if (opt->subsampling != 444 && opt->subsampling != 420)
            return lumos__fail(ctx, LUMOS_E_ARG, "%s: JPEG subsampling %d is not 444 or 420", path,
                               opt->subsampling);
    }

    /* An early check, so nothing is encoded for nothing; lumos__atomic_close makes the
     * final, race-free one. */
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) return lumos__fail_errno(ctx, LUMOS_E_IO, EISDIR, "%s", path);
        if (!opt->overwrite)
            return lumos__fail(ctx, LUMOS_E_EXISTS, "%s: the file exists (overwrite not asked for)",
                               path);
    }

    lumos__atomic_file f;
    int st = lumos__atomic_open(ctx, path, &f);
    if (st) return st;
    /* The worker writes the temporary by name; our fd stays open so the
     * final fsync reports write-back errors the worker's close could not. */
    st = writer(ctx, img, f.tmp, path, opt);
    return lumos__atomic_close(ctx, &f, st, opt->overwrite);
}

/* Reads path by its magic bytes; meta (may be NULL) gets its metadata. */
static int read_any(lumos_ctx *ctx, const char *path, lumos_image *out, lumos_meta *meta)
{
    if (!out) return lumos__fail(ctx, LUMOS_E_ARG, "lumos_image_read: no output image");
    memset(out, 0, sizeof *out);
    if (!path || !*path) return lumos__fail(ctx, LUMOS_E_ARG, "lumos_image_read: no path");

    /* The magic bytes decide, not the suffix. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", path);
    unsigned char m[8] = {0};
    ssize_t n;
    do n = read(fd, m, sizeof m);
    while (n < 0 && errno == EINTR);
    int err = n < 0 ? errno : 0;
    close(fd);
    if (n < 0) return lumos__fail_errno(ctx, LUMOS_E_IO, err, "%s", path); /* EISDIR */

    lumos_format fmt = LUMOS_FORMAT_AUTO;
    if (n >= 3 && m[0] == 0xFF && m[1] == 0xD8 && m[2] == 0xFF) fmt = LUMOS_FORMAT_JPEG;
    else if (n >= 8 && !memcmp(m, "\x89PNG\r\n\x1a\n", 8)) fmt = LUMOS_FORMAT_PNG;
    else if (n >= 4 && !memcmp(m, "\x76\x2f\x31\x01", 4)) fmt = LUMOS_FORMAT_EXR;
    /* Classic TIFF (42) and BigTIFF (43), either byte order. */
    else if (n >= 4 && ((!memcmp(m, "II", 2) && (m[2] == 42 || m[2] == 43) && m[3] == 0) ||
                        (!memcmp(m, "MM", 2) && m[2] == 0 && (m[3] == 42 || m[3] == 43))))
        fmt = LUMOS_FORMAT_TIFF;
    lumos__meta_set_format(meta, fmt);
    switch (fmt) {
    case LUMOS_FORMAT_JPEG: return lumos__read_jpeg(ctx, path, out, meta);
    case LUMOS_FORMAT_PNG: return lumos__read_png(ctx, path, out, meta);
    case LUMOS_FORMAT_TIFF: return lumos__read_tiff(ctx, path, out, meta);
    case LUMOS_FORMAT_EXR: return lumos__read_exr(ctx, path, out);
    default:
        return lumos__fail(ctx, LUMOS_E_FORMAT, "%s: %snot a JPEG, PNG, TIFF or OpenEXR file",
                           path, n == 0 ? "empty file, " : "");
    }
}

lumos_status lumos_image_read(lumos_ctx *ctx, const char *path, lumos_image *out)
{
    return read_any(ctx, path, out, NULL);
}

lumos_status lumos_image_read_meta(lumos_ctx *ctx, const char *path, lumos_image *out,
                                   lumos_meta **meta)
{
    if (!meta) return lumos__fail(ctx, LUMOS_E_ARG, "lumos_image_read_meta: no meta");
    *meta = NULL;
    lumos_meta *m = lumos_meta_new();
    if (!m) {
        if (out) memset(out, 0, sizeof *out);
        return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path ? path : "");
    }
    int st = read_any(ctx, path, out, m);
    if (st) lumos_meta_free(m);
    else *meta = m;
    return st;
}
