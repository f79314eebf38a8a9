/* png.c — PNG through libpng.
 *
 * libpng reports errors by longjmp. The setjmp sits in a small function
 * (write_body/read_body) whose caller owns everything to release (the FILE,
 * libpng's structs, the output image, in png_job), so no local that is read
 * after a jump changes after setjmp (C11 7.13.2.1 would leave it
 * indeterminate). The file goes through our own read/write callbacks to keep
 * errno for the report. */
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"
#include "core/context.h"

typedef struct {
    FILE *f;
    int err;         /* errno of a failed read/write, 0 if none */
    int eof;         /* the file ended early */
    char msg[256];   /* libpng's message */
    lumos_image img; /* reader's output, freed on error */
} png_job;

static void on_error(png_structp png, png_const_charp msg)
{
    png_job *job = png_get_error_ptr(png);
    snprintf(job->msg, sizeof job->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Warnings (e.g. an unknown chunk) are not failures; libpng would print them. */
static void on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static void write_fn(png_structp png, png_bytep data, size_t len)
{
    png_job *job = png_get_io_ptr(png);
    if (fwrite(data, 1, len, job->f) != len) {
        job->err = errno ? errno : EIO;
        png_error(png, "write failed");
    }
}

static void flush_fn(png_structp png)
{
    png_job *job = png_get_io_ptr(png);
    if (fflush(job->f) != 0) {
        job->err = errno ? errno : EIO;
        png_error(png, "write failed");
    }
}

static void read_fn(png_structp png, png_bytep data, size_t len)
{
    png_job *job = png_get_io_ptr(png);
    if (fread(data, 1, len, job->f) != len) {
        if (ferror(job->f)) job->err = errno ? errno : EIO;
        else job->eof = 1;
        png_error(png, "read failed");
    }
}

static int is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* The part of the write that libpng may abort by longjmp. */
static int write_body(png_structp png, png_infop info, const lumos_image *img,
                      const uint8_t *icc, size_t icc_size)
{
    if (setjmp(png_jmpbuf(png))) return -1;
    /* libpng's default 1e6-pixel width/height limit guards readers; a
     * writer has its image in memory already. */
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, img->bits,
                 img->channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_BASE, PNG_FILTER_TYPE_BASE);
    /* iCCP rather than the sRGB chunk: the PNG spec says not to write both,
     * and only iCCP can describe the linear space. */
    if (icc)
        png_set_iCCP(png, info, img->space == LUMOS_SPACE_SRGB ? "lumos sRGB" : "lumos linear",
                     PNG_COMPRESSION_TYPE_BASE, icc, (png_uint_32)icc_size);
    png_write_info(png, info);
    if (img->bits == 16 && is_little_endian()) png_set_swap(png); /* PNG is big-endian */
    for (int y = 0; y < img->height; y++)
        png_write_row(png, (png_const_bytep)img->data + (size_t)y * img->stride);
    png_write_end(png, NULL);
    return 0;
}

int lumos__write_png(lumos_ctx *ctx, const lumos_image *img, const char *tmp_path,
                     const char *shown_path, const lumos_write_options *opt)
{
    (void)opt;
    size_t icc_size = 0;
    uint8_t *icc = lumos__icc_profile_for(img->space, img->channels, &icc_size);
    if (img->space != LUMOS_SPACE_CAMERA && !icc)
        return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: cannot build the ICC profile", shown_path);

    png_job job = {.f = fopen(tmp_path, "wb")};
    if (!job.f) {
        free(icc);
        return lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", shown_path);
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &job, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    int st = LUMOS_OK;
    if (!info) {
        st = lumos__fail(ctx, LUMOS_E_NOMEM, "%s: cannot start libpng", shown_path);
    } else {
        png_set_write_fn(png, &job, write_fn, flush_fn);
        if (write_body(png, info, img, icc, icc_size) != 0)
            st = job.err ? lumos__fail_errno(ctx, LUMOS_E_IO, job.err, "%s", shown_path)
                         : lumos__fail(ctx, LUMOS_E_IO, "%s: libpng: %s", shown_path, job.msg);
    }
    png_destroy_write_struct(&png, &info);
    free(icc);
    /* A full disk may show only here, when stdio flushes its buffer. */
    if (fclose(job.f) != 0 && st == LUMOS_OK)
        st = lumos__fail_errno(ctx, LUMOS_E_IO, errno ? errno : EIO, "%s", shown_path);
    return st;
}

/* The part of the read that libpng may abort by longjmp; the image goes to
 * job->img so that the caller can free it either way. */
static int read_body(png_structp png, png_infop info, png_job *job)
{
    if (setjmp(png_jmpbuf(png))) return -1;
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, type, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &type, &interlace, NULL, NULL);

    /* Everything becomes 8/16-bit gray or RGB: palettes expand to RGB, low
     * bit depths to 8, alpha (and tRNS, by not expanding it) is dropped. */
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    png_set_strip_alpha(png); /* also after palette_to_rgb, which expands tRNS */
    if (depth == 16 && is_little_endian()) png_set_swap(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info), bits = png_get_bit_depth(png, info);
    if ((channels != 1 && channels != 3) || (bits != 8 && bits != 16) || w > INT32_MAX ||
        h > INT32_MAX)
        png_error(png, "unexpected layout after conversion");
    int st = lumos_image_alloc(&job->img, (int)w, (int)h, channels, bits);
    if (st == LUMOS_E_NOMEM) png_error(png, "out of memory");
    if (st || png_get_rowbytes(png, info) != job->img.stride)
        png_error(png, "unexpected row size after conversion");
    /* With interlace handling, reading every row once per pass assembles
     * the full image in place. */
    for (int p = 0; p < passes; p++)
        for (png_uint_32 y = 0; y < h; y++)
            png_read_row(png, (png_bytep)job->img.data + (size_t)y * job->img.stride, NULL);
    png_read_end(png, NULL); /* a file cut before IEND is damaged too */
    return 0;
}

int lumos__read_png(lumos_ctx *ctx, const char *path, lumos_image *out)
{
    memset(out, 0, sizeof *out);
    png_job job = {.f = fopen(path, "rb")};
    if (!job.f) return lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", path);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    int st = LUMOS_OK;
    if (!info) {
        st = lumos__fail(ctx, LUMOS_E_NOMEM, "%s: cannot start libpng", path);
    } else {
        png_set_read_fn(png, &job, read_fn);
        if (read_body(png, info, &job) != 0) {
            if (job.err)
                st = lumos__fail_errno(ctx, LUMOS_E_IO, job.err, "%s", path);
            else if (job.eof)
                st = lumos__fail(ctx, LUMOS_E_FORMAT, "%s: damaged PNG: the file is truncated",
                                 path);
            else if (!strcmp(job.msg, "out of memory"))
                st = lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
            else
                st = lumos__fail(ctx, LUMOS_E_FORMAT, "%s: damaged PNG: %s", path, job.msg);
            lumos_image_free(&job.img);
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(job.f);
    if (st == LUMOS_OK) *out = job.img;
    return st;
}
