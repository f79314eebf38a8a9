/* png.c — PNG through libpng, with the iCCP and eXIf chunks.
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
#include <sys/stat.h>

#include "io/io.h"
#include "core/context.h"

typedef struct {
    FILE *f;
    int err;         /* errno of a failed read/write, 0 if none */
    int eof;         /* the file ended early */
    char msg[256];   /* libpng's message */
    char note[256];  /* libpng's first warning about the iCCP or eXIf chunk */
    int icc_refused; /* the writer's libpng would not take the profile */
    lumos_image img; /* reader's output, freed on error */
    lumos_ctx *ctx;  /* reader: for the limits */
    const char *path;
    uint64_t fsize;  /* the file's size */
    int status;      /* reader: a limit refused the image (reported) */
} png_job;

static void on_error(png_structp png, png_const_charp msg)
{
    png_job *job = png_get_error_ptr(png);
    snprintf(job->msg, sizeof job->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Warnings (e.g. an unknown chunk) are not failures; libpng would print
 * them. Those about the metadata chunks are kept: with benign errors as
 * warnings, a profile or EXIF block libpng refuses is dropped with one. */
static void on_warning(png_structp png, png_const_charp msg)
{
    png_job *job = png_get_error_ptr(png);
    if (!job->note[0] && (strstr(msg, "iCCP") || strstr(msg, "eXIf") || strstr(msg, "profile")))
        snprintf(job->note, sizeof job->note, "%s", msg);
}

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
                      const uint8_t *icc, size_t icc_size, const char *icc_name,
                      const uint8_t *exif, size_t exif_size)
{
    if (setjmp(png_jmpbuf(png))) return -1;
    /* A profile libpng finds fault with is left out with a warning, not
     * the end of the write. */
    png_set_benign_errors(png, 1);
    /* libpng's default 1e6-pixel width/height limit guards readers; a
     * writer has its image in memory already. */
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, img->bits,
                 img->channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_BASE, PNG_FILTER_TYPE_BASE);
    /* iCCP rather than the sRGB chunk: the PNG spec says not to write both,
     * and only iCCP can describe the linear space. */
    if (icc) {
        png_set_iCCP(png, info, icc_name, PNG_COMPRESSION_TYPE_BASE, icc, (png_uint_32)icc_size);
        ((png_job *)png_get_error_ptr(png))->icc_refused = !png_get_valid(png, info, PNG_INFO_iCCP);
    }
    if (exif) png_set_eXIf_1(png, info, (png_uint_32)exif_size, (png_bytep)(uintptr_t)exif);
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
    size_t icc_size = 0, exif_size = 0;
    uint8_t *icc = NULL, *exif = NULL;
    int st = lumos__write_icc(ctx, img, img->channels, opt, PNG_UINT_31_MAX, shown_path, &icc,
                              &icc_size);
    if (!st) st = lumos__write_exif(ctx, img, opt, LUMOS_FORMAT_PNG, shown_path, &exif, &exif_size);
    if (!st && exif_size > PNG_UINT_31_MAX) {
        lumos__notice(ctx, "%s: the EXIF block is too large for PNG: not written", shown_path);
        free(exif);
        exif = NULL;
    }
    /* The chunk's name: lumos's own profile's, or a neutral one for the input's. */
    size_t mine_size;
    const uint8_t *mine = lumos_meta_icc(opt->meta, &mine_size);
    const char *icc_name = mine && icc && mine_size == icc_size && !memcmp(mine, icc, icc_size)
                               ? "ICC profile"
                           : img->space == LUMOS_SPACE_SRGB ? "lumos sRGB"
                                                            : "lumos linear";

    png_job job = {.f = st ? NULL : fopen(tmp_path, "wb")};
    if (!job.f) {
        free(icc);
        free(exif);
        return st ? st : lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", shown_path);
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &job, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        st = lumos__fail(ctx, LUMOS_E_NOMEM, "%s: cannot start libpng", shown_path);
    } else {
        png_set_write_fn(png, &job, write_fn, flush_fn);
        if (write_body(png, info, img, icc, icc_size, icc_name, exif, exif_size) != 0)
            st = job.err ? lumos__fail_errno(ctx, LUMOS_E_IO, job.err, "%s", shown_path)
                         : lumos__fail(ctx, LUMOS_E_IO, "%s: libpng: %s", shown_path, job.msg);
        else if (job.icc_refused)
            lumos__notice(ctx, "%s: the ICC profile is not written: libpng: %s", shown_path,
                          job.note[0] ? job.note : "refused");
    }
    png_destroy_write_struct(&png, &info);
    free(icc);
    free(exif);
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
    /* The header's claim, before allocating: IDAT is a zlib stream, which
     * inflates at most 1032 times, to at least the rows' bytes (their
     * filter bytes too when not interlaced). */
    const int in_ch = type == PNG_COLOR_TYPE_RGB         ? 3
                      : type == PNG_COLOR_TYPE_RGB_ALPHA  ? 4
                      : type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                                                          : 1;
    const uint64_t bpp = (uint64_t)in_ch * (uint64_t)depth;
    const uint64_t out_bytes =
        lumos__mul_sat(lumos__mul_sat(w, h), (uint64_t)channels * (bits / 8));
    lumos__claim c = {
        .format = "PNG", .width = w, .height = h,
        .decoded = interlace != PNG_INTERLACE_NONE
                       ? lumos__mul_sat(lumos__mul_sat(w, h), bpp) / 8
                       : lumos__mul_sat(h, 1 + (lumos__mul_sat(w, bpp) + 7) / 8),
        .held = job->fsize, .ratio = 1032, .codec = "zlib",
        /* beside the image, libpng keeps two rows (w, h <= 1e6: no overflow) */
        .alloc = out_bytes + 2 * ((uint64_t)w * (uint64_t)(channels * (bits / 8) + 8))};
    if ((job->status = lumos__check_claim(job->ctx, job->path, &c))) return -1;
    int st = lumos_image_alloc(&job->img, (int)w, (int)h, channels, bits);
    if (st == LUMOS_E_NOMEM) png_error(png, "out of memory");
    if (st || png_get_rowbytes(png, info) != job->img.stride)
        png_error(png, "unexpected row size after conversion");
    /* With interlace handling, reading every row once per pass assembles
     * the full image in place. */
    for (int p = 0; p < passes; p++)
        for (png_uint_32 y = 0; y < h; y++)
            png_read_row(png, (png_bytep)job->img.data + (size_t)y * job->img.stride, NULL);
    png_read_end(png, info); /* a file cut before IEND is damaged too; eXIf may follow IDAT */
    return 0;
}

/* The profile and EXIF block libpng kept (it checks them as it reads: one it
 * refused left a warning). */
static int read_meta(lumos_ctx *ctx, const char *path, png_structp png, png_infop info,
                     const png_job *job, lumos_meta *meta)
{
    png_charp name;
    int comp;
    png_bytep icc = NULL, exif = NULL;
    png_uint_32 icc_size = 0, exif_size = 0;
    int has_icc = png_get_iCCP(png, info, &name, &comp, &icc, &icc_size) && icc;
    int has_exif = png_get_eXIf_1(png, info, &exif_size, &exif) && exif;
    /* Only a chunk libpng dropped is news; some warnings keep the chunk. */
    if ((!has_icc && (strstr(job->note, "iCCP") || strstr(job->note, "profile"))) ||
        (!has_exif && strstr(job->note, "eXIf")))
        lumos__notice(ctx, "%s: metadata dropped: libpng: %s", path, job->note);
    int st = has_icc ? lumos__meta_found_icc(ctx, meta, path, icc, icc_size) : LUMOS_OK;
    if (!st && has_exif) st = lumos__meta_found_exif(ctx, meta, path, exif, exif_size);
    return st;
}

int lumos__read_png(lumos_ctx *ctx, const char *path, lumos_image *out, lumos_meta *meta)
{
    memset(out, 0, sizeof *out);
    png_job job = {.f = fopen(path, "rb"), .ctx = ctx, .path = path};
    if (!job.f) return lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", path);
    struct stat sb;
    /* Not a regular file (a pipe): no size to hold the data against. */
    job.fsize = fstat(fileno(job.f), &sb) != 0 || !S_ISREG(sb.st_mode) ? UINT64_MAX
                : sb.st_size > 0                                    ? (uint64_t)sb.st_size
                                                                    : 0;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    int st = LUMOS_OK;
    if (!info) {
        st = lumos__fail(ctx, LUMOS_E_NOMEM, "%s: cannot start libpng", path);
    } else {
        png_set_read_fn(png, &job, read_fn);
        if (read_body(png, info, &job) != 0) {
            if (job.status)
                st = job.status; /* reported */
            else if (job.err)
                st = lumos__fail_errno(ctx, LUMOS_E_IO, job.err, "%s", path);
            else if (job.eof)
                st = lumos__fail(ctx, LUMOS_E_FORMAT, "%s: damaged PNG: the file is truncated",
                                 path);
            else if (!strcmp(job.msg, "out of memory"))
                st = lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
            else
                st = lumos__fail(ctx, LUMOS_E_FORMAT, "%s: damaged PNG: %s", path, job.msg);
            lumos_image_free(&job.img);
        } else if (meta && (st = read_meta(ctx, path, png, info, &job, meta))) {
            lumos_image_free(&job.img);
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(job.f);
    if (st == LUMOS_OK) *out = job.img;
    return st;
}
