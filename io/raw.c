/* raw.c — the LibRaw adapter: a RAW file (or a caller's mosaic) -> lumos_raw.
 *
 * For a Bayer sensor we keep LibRaw's unpacked mosaic and point into its
 * active area (no copy). Other sensors keep the LibRaw handle so the ISP can
 * fall back to LibRaw's own processing (raw_internal.h). One LibRaw handle per
 * lumos_raw: libraw_r is reentrant per handle, so two threads may each open
 * their own files at once. */
#include "io/raw_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/context.h"

/* LibRaw's sizes.flip -> EXIF orientation (flip: bit 2 transpose, bit 1
 * flip rows, bit 0 flip columns; 3 = 180°, 5 = 90° CCW, 6 = 90° CW). */
static int orientation_from_flip(int flip)
{
    static const int exif[8] = {1, 2, 4, 3, 5, 8, 6, 7};
    return (flip >= 0 && flip < 8) ? exif[flip] : 1;
}

static lumos_cfa cfa_from_colors(const int col[2][2])
{
    /* col[y][x]: 0 red, 1 green, 2 blue (LibRaw's second green 3 folded to 1). */
    static const struct { lumos_cfa cfa; int c[4]; } names[] = {
        {LUMOS_CFA_RGGB, {0, 1, 1, 2}}, {LUMOS_CFA_BGGR, {2, 1, 1, 0}},
        {LUMOS_CFA_GRBG, {1, 0, 2, 1}}, {LUMOS_CFA_GBRG, {1, 2, 0, 1}},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (col[0][0] == names[i].c[0] && col[0][1] == names[i].c[1] &&
            col[1][0] == names[i].c[2] && col[1][1] == names[i].c[3])
            return names[i].cfa;
    return LUMOS_CFA_NONE;
}

void lumos__cfa_offsets(lumos_cfa cfa, int *cfa_x, int *cfa_y)
{
    /* Red sits where (x + cfa_x) and (y + cfa_y) are even. */
    *cfa_x = (cfa == LUMOS_CFA_GRBG || cfa == LUMOS_CFA_BGGR);
    *cfa_y = (cfa == LUMOS_CFA_GBRG || cfa == LUMOS_CFA_BGGR);
}

int lumos__cfa_color(lumos_cfa cfa, int x, int y)
{
    int cx, cy;
    lumos__cfa_offsets(cfa, &cx, &cy);
    int px = (x + cx) & 1, py = (y + cy) & 1;
    return px != py ? 1 : (px == 0 ? 0 : 2);
}

static void copy_string(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

/* Fills info from an opened, unpacked handle. */
static void read_info(libraw_data_t *lr, lumos_raw_info *info)
{
    memset(info, 0, sizeof *info);
    info->width = lr->sizes.width;
    info->height = lr->sizes.height;
    info->orientation = orientation_from_flip(lr->sizes.flip);

    int col[2][2];
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 2; x++) {
            int c = libraw_COLOR(lr, y, x);
            col[y][x] = c == 3 ? 1 : c;
        }
    int bayer = lr->idata.filters > 1000 && lr->idata.colors == 3 && lr->rawdata.raw_image;
    info->cfa = bayer ? cfa_from_colors(col) : LUMOS_CFA_NONE;
    info->is_bayer = info->cfa != LUMOS_CFA_NONE;

    /* Black: a global level, a per-colour offset, and an optional pattern. */
    const unsigned *cb = lr->color.cblack;
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 2; x++) {
            int c = libraw_COLOR(lr, y, x);
            float b = (float)lr->color.black + (float)cb[c >= 0 && c < 4 ? c : 1];
            if (cb[4] && cb[5]) b += (float)cb[6 + (y % cb[4]) * cb[5] + x % cb[5]];
            info->black[y * 2 + x] = b;
        }
    info->white = (float)lr->color.maximum;

    const float *mul = lr->color.cam_mul;
    if (!(mul[0] > 0 && mul[1] > 0 && mul[2] > 0)) mul = lr->color.pre_mul;
    if (mul[0] > 0 && mul[1] > 0 && mul[2] > 0) {
        info->wb_as_shot[0] = mul[0] / mul[1];
        info->wb_as_shot[1] = 1.f;
        info->wb_as_shot[2] = mul[2] / mul[1];
    } else {
        info->wb_as_shot[0] = info->wb_as_shot[1] = info->wb_as_shot[2] = 1.f;
    }

    float sum = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            info->cam_to_srgb[i][j] = lr->color.rgb_cam[i][j];
            sum += fabsf(lr->color.rgb_cam[i][j]);
        }
    if (!(sum > 0))
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) info->cam_to_srgb[i][j] = i == j;

    lumos_exif *e = &info->exif;
    copy_string(e->make, sizeof e->make, lr->idata.make);
    copy_string(e->model, sizeof e->model, lr->idata.model);
    e->iso = lr->other.iso_speed;
    e->exposure_s = lr->other.shutter;
    e->aperture = lr->other.aperture;
    e->focal_mm = lr->other.focal_len;
    if (lr->other.timestamp > 0) {
        struct tm tm;
        time_t t = lr->other.timestamp;
        /* LibRaw made the time_t with mktime from the camera's local time. */
        if (localtime_r(&t, &tm))
            strftime(e->datetime, sizeof e->datetime, "%Y:%m:%d %H:%M:%S", &tm);
    }
}

/* What LibRaw's codes mean for a user, and which lumos status they are. */
static int fail_libraw(lumos_ctx *ctx, const char *name, const char *step, int code)
{
    int status = LUMOS_E_FORMAT;
    const char *why = libraw_strerror(code);
    switch (code) {
    case LIBRAW_FILE_UNSUPPORTED: why = "not a RAW file LibRaw can read"; break;
    case LIBRAW_UNSUFFICIENT_MEMORY: status = LUMOS_E_NOMEM; break;
    case LIBRAW_IO_ERROR: why = "damaged or truncated RAW data"; break;
    case LIBRAW_DATA_ERROR: why = "damaged RAW data"; break;
    case LIBRAW_UNSUPPORTED_THUMBNAIL:
    case LIBRAW_NOT_IMPLEMENTED: status = LUMOS_E_UNSUPPORTED; break;
    default: break;
    }
    return lumos__fail(ctx, status, "%s: %s (LibRaw %s: %s)", name, why, step,
                       libraw_strerror(code));
}

/* Shared tail of open_file/open_memory: unpack and describe. */
static int finish_open(lumos_ctx *ctx, libraw_data_t *lr, const char *name, lumos_raw **out)
{
    int rc = libraw_unpack(lr);
    if (rc != LIBRAW_SUCCESS) {
        libraw_close(lr);
        return fail_libraw(ctx, name, "unpack", rc);
    }
    if (lr->rawdata.raw_image == NULL && lr->rawdata.color3_image == NULL &&
        lr->rawdata.color4_image == NULL && lr->rawdata.float_image == NULL) {
        libraw_close(lr);
        return lumos__fail(ctx, LUMOS_E_FORMAT, "%s: no image data in file", name);
    }
    lumos_raw *raw = calloc(1, sizeof *raw);
    if (!raw) {
        libraw_close(lr);
        return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", name);
    }
    raw->libraw = lr;
    read_info(lr, &raw->info);
    if (raw->info.width < 1 || raw->info.height < 1) {
        lumos_raw_free(raw);
        return lumos__fail(ctx, LUMOS_E_FORMAT, "%s: empty image area", name);
    }
    if (raw->info.is_bayer) {
        size_t pitch = lr->sizes.raw_pitch; /* bytes */
        raw->stride = pitch;
        raw->mosaic = (const uint16_t *)((const uint8_t *)lr->rawdata.raw_image +
                                         (size_t)lr->sizes.top_margin * pitch) +
                      lr->sizes.left_margin;
    }
    *out = raw;
    return LUMOS_OK;
}

lumos_status lumos_raw_open_file(lumos_ctx *ctx, const char *path, lumos_raw **out)
{
    if (!path || !out) return lumos__fail(ctx, LUMOS_E_ARG, "lumos_raw_open_file: NULL argument");
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", path);
    if (S_ISDIR(st.st_mode)) return lumos__fail(ctx, LUMOS_E_IO, "%s: is a directory", path);
    if (!S_ISREG(st.st_mode)) return lumos__fail(ctx, LUMOS_E_IO, "%s: not a regular file", path);
    if (st.st_size == 0) return lumos__fail(ctx, LUMOS_E_FORMAT, "%s: empty file", path);
    FILE *probe = fopen(path, "rb");
    if (!probe) return lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", path);
    fclose(probe);

    libraw_data_t *lr = libraw_init(0);
    if (!lr) return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: cannot create a LibRaw handle", path);
    int rc = libraw_open_file(lr, path);
    if (rc != LIBRAW_SUCCESS) {
        libraw_close(lr);
        return fail_libraw(ctx, path, "open", rc);
    }
    return (lumos_status)finish_open(ctx, lr, path, out);
}

lumos_status lumos_raw_open_memory(lumos_ctx *ctx, const void *buf, size_t size, lumos_raw **out)
{
    if (!buf || !out) return lumos__fail(ctx, LUMOS_E_ARG, "lumos_raw_open_memory: NULL argument");
    *out = NULL;
    if (size == 0) return lumos__fail(ctx, LUMOS_E_FORMAT, "<memory>: empty buffer");
    libraw_data_t *lr = libraw_init(0);
    if (!lr) return lumos__fail(ctx, LUMOS_E_NOMEM, "<memory>: cannot create a LibRaw handle");
    int rc = libraw_open_buffer(lr, (void *)buf, size);
    if (rc != LIBRAW_SUCCESS) {
        libraw_close(lr);
        return fail_libraw(ctx, "<memory>", "open", rc);
    }
    return (lumos_status)finish_open(ctx, lr, "<memory>", out);
}

lumos_status lumos_raw_from_mosaic(lumos_ctx *ctx, const uint16_t *samples, int width, int height,
                                   size_t stride, const lumos_raw_info *info, lumos_raw **out)
{
    if (!samples || !info || !out)
        return lumos__fail(ctx, LUMOS_E_ARG, "lumos_raw_from_mosaic: NULL argument");
    *out = NULL;
    if (width < 1 || height < 1 || stride < (size_t)width * 2)
        return lumos__fail(ctx, LUMOS_E_ARG, "lumos_raw_from_mosaic: bad size %dx%d stride %zu",
                           width, height, stride);
    if (info->cfa == LUMOS_CFA_NONE || info->cfa > LUMOS_CFA_GBRG)
        return lumos__fail(ctx, LUMOS_E_ARG, "lumos_raw_from_mosaic: not a Bayer CFA");
    for (int i = 0; i < 4; i++)
        if (!(info->black[i] >= 0 && info->black[i] < info->white))
            return lumos__fail(ctx, LUMOS_E_ARG,
                               "lumos_raw_from_mosaic: black %g not below white %g",
                               info->black[i], info->white);
    lumos_raw *raw = calloc(1, sizeof *raw);
    uint16_t *copy = malloc((size_t)width * height * sizeof *copy);
    if (!raw || !copy) {
        free(raw);
        free(copy);
        return lumos__fail(ctx, LUMOS_E_NOMEM, "lumos_raw_from_mosaic: out of memory");
    }
    for (int y = 0; y < height; y++)
        memcpy(copy + (size_t)y * width, (const uint8_t *)samples + (size_t)y * stride,
               (size_t)width * sizeof *copy);
    raw->info = *info;
    raw->info.width = width;
    raw->info.height = height;
    raw->info.is_bayer = 1;
    if (raw->info.orientation < 1 || raw->info.orientation > 8) raw->info.orientation = 1;
    raw->owned = copy;
    raw->mosaic = copy;
    raw->stride = (size_t)width * sizeof *copy;
    *out = raw;
    return LUMOS_OK;
}

void lumos_raw_free(lumos_raw *raw)
{
    if (!raw) return;
    if (raw->libraw) libraw_close(raw->libraw);
    free(raw->owned);
    free(raw);
}

const lumos_raw_info *lumos_raw_get_info(const lumos_raw *raw) { return raw ? &raw->info : NULL; }

const uint16_t *lumos_raw_mosaic(const lumos_raw *raw, size_t *stride)
{
    if (!raw || !raw->mosaic) return NULL;
    if (stride) *stride = raw->stride;
    return raw->mosaic;
}
