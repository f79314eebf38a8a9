/* dereflect.c — lumos_dereflect_image and lumos_dereflect_file: an image of
 * any layout to the methods' float RGB and back, and the file round trip
 * that keeps the input's format, depth and metadata. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/context.h"
#include "pipeline/learned.h"
#include "stages/dereflect_classic.h"
#include "stages/dereflect_net.h"

/* The methods' limits (stages/dereflect_*.c check them too, tersely). */
#define CLASSIC_MAX_PIXELS ((size_t)(1u << 31) / 3)
#define NET_MAX_SIDE 65536

void lumos_dereflect_options_init(lumos_dereflect_options *opt)
{
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->net_name = LUMOS_DEREFLECT_DEFAULT;
    lumos_write_options_init(&opt->write);
}

static int is_classic_name(const char *name) { return !name || !strcmp(name, "classic"); }

/* The machine's physical memory in bytes (0: unknown). */
static double physical_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (double)pages * (double)size : 0;
}

/* Sample (x, y, c) of img as a float, integers scaled to 0..1. */
static inline float sample_at(const lumos_image *img, const unsigned char *row, int x, int c)
{
    size_t i = (size_t)x * (size_t)img->channels + (size_t)c;
    if (img->bits == 8) return row[i] / 255.f;
    if (img->bits == 16) return ((const uint16_t *)row)[i] / 65535.f;
    return ((const float *)row)[i];
}

static inline void store_at(lumos_image *img, unsigned char *row, int x, int c, float v)
{
    size_t i = (size_t)x * (size_t)img->channels + (size_t)c;
    if (img->bits == 32) {
        ((float *)row)[i] = v;
        return;
    }
    v = v > 0 ? (v < 1 ? v : 1) : 0; /* also NaN -> 0 */
    if (img->bits == 8) row[i] = (unsigned char)lrintf(v * 255.f);
    else ((uint16_t *)row)[i] = (uint16_t)lrintf(v * 65535.f);
}

/* The method on rgb (w×h×3, 0..1); the result in rgb. */
static int run_method(lumos_ctx *ctx, const lumos_dereflect_options *opt, const lumos_net *net,
                      float *rgb, int w, int h)
{
    if (!net) {
        float th = opt->h > 0 ? opt->h : LUMOS__DEREFLECT_CLASSIC_H;
        float eps = opt->eps > 0 ? opt->eps : LUMOS__DEREFLECT_CLASSIC_EPS;
        return lumos__dereflect_classic(ctx, rgb, w, h, th, eps, rgb);
    }
    size_t count = 0;
    const float *flat = lumos__net_flat(net, &count);
    float *t = malloc((size_t)w * (size_t)h * 3 * sizeof *t);
    if (!t) return lumos__fail(ctx, LUMOS_E_NOMEM, "dereflect: out of memory");
    int rc = lumos__dereflect_net(ctx, lumos__net_def_of(net), flat, rgb, w, h, opt->tile, 0, t);
    if (rc == LUMOS_OK) {
        /* the network's transmission, in the images' range */
        size_t n = (size_t)w * (size_t)h * 3;
        for (size_t i = 0; i < n; i++) rgb[i] = t[i] > 0 ? (t[i] < 1 ? t[i] : 1) : 0;
    }
    free(t);
    return rc;
}

lumos_status lumos_dereflect_image(lumos_ctx *ctx, const lumos_image *in,
                                   const lumos_dereflect_options *opt, lumos_image *out)
{
    if (out) memset(out, 0, sizeof *out);
    if (!in || !opt || !out)
        return lumos__fail(ctx, LUMOS_E_ARG, "lumos_dereflect_image: NULL argument");
    lumos__clear_error(ctx);
    if (!in->data || in->width <= 0 || in->height <= 0 || in->channels < 1 ||
        (in->bits != 8 && in->bits != 16 && in->bits != 32) ||
        in->stride / ((size_t)in->channels * (size_t)(in->bits / 8)) < (size_t)in->width)
        return lumos__fail(ctx, LUMOS_E_ARG, "dereflect: invalid image");
    const int bits = opt->bits ? opt->bits : in->bits;
    if (bits != 8 && bits != 16 && bits != 32)
        return lumos__fail(ctx, LUMOS_E_ARG, "dereflect: %d bits (8, 16 or 32)", opt->bits);
    if (!(opt->h >= 0) || !(opt->eps >= 0) || isinf(opt->h) || isinf(opt->eps) || opt->tile < 0 ||
        opt->tile % 8)
        return lumos__fail(ctx, LUMOS_E_ARG,
                           "dereflect: bad options (h and eps >= 0, tile a multiple of 8)");
    if (in->space == LUMOS_SPACE_LINEAR_SRGB)
        return lumos__fail(ctx, LUMOS_E_UNSUPPORTED,
                           "dereflect works on sRGB-encoded images, not linear light");

    /* The method: a given network, one loaded by name, or the classical one. */
    lumos_net *loaded = NULL;
    const lumos_net *net = opt->net;
    if (!net && !is_classic_name(opt->net_name)) {
        int rc = lumos_net_load(ctx, opt->net_name, opt->weights, &loaded);
        if (rc) return rc;
        net = loaded;
    }
    int rc = LUMOS_OK;
    const int w = in->width, h = in->height;
    const size_t px = (size_t)w * (size_t)h;
    if (net && strcmp(lumos_net_task(net), "dereflect"))
        rc = lumos__fail(ctx, LUMOS_E_ARG, "%s is a network of task %s, not dereflect",
                         lumos_net_name(net), lumos_net_task(net));
    else if (!net && px > CLASSIC_MAX_PIXELS)
        rc = lumos__fail(ctx, LUMOS_E_UNSUPPORTED,
                         "a %dx%d image is beyond the classical method's %zu megapixels", w, h,
                         CLASSIC_MAX_PIXELS / 1000000);
    else if (net && (w > NET_MAX_SIDE || h > NET_MAX_SIDE))
        rc = lumos__fail(ctx, LUMOS_E_UNSUPPORTED,
                         "a %dx%d image is beyond the %s network's %d pixels a side", w, h,
                         lumos_net_name(net), NET_MAX_SIDE);
    if (rc) {
        lumos_net_free(loaded);
        return rc;
    }
    /* Refused before anything is allocated when it cannot fit: the float
     * image, the method's own (classic: a plane; a network: its output and
     * low-resolution maps) and the result. */
    const double need = (double)px * ((net ? 25.5 : 16.0) + (double)in->channels * bits / 8);
    const double have = physical_bytes();
    if (have > 0 && need > have) {
        lumos_net_free(loaded);
        return lumos__fail(ctx, LUMOS_E_NOMEM,
                           "a %dx%d image needs about %.1f GiB to dereflect, more than this "
                           "machine's %.1f GiB of memory",
                           w, h, need / 1073741824.0, have / 1073741824.0);
    }

    float *rgb = malloc(px * 3 * sizeof *rgb);
    if (!rgb) {
        lumos_net_free(loaded);
        return lumos__fail(ctx, LUMOS_E_NOMEM, "dereflect: out of memory (a %dx%d image)", w, h);
    }
    /* Gray becomes three equal channels; floats are clamped (NaN to 0). */
    const int gray = in->channels < 3;
    for (int y = 0; y < h; y++) {
        const unsigned char *row = (const unsigned char *)in->data + (size_t)y * in->stride;
        float *dst = rgb + (size_t)y * w * 3;
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                float v = sample_at(in, row, x, gray ? 0 : c);
                dst[3 * x + c] = v > 0 ? (v < 1 ? v : 1) : 0;
            }
    }
    rc = run_method(ctx, opt, net, rgb, w, h);
    if (rc == LUMOS_OK && (rc = lumos_image_alloc(out, w, h, in->channels, bits)))
        rc = lumos__fail(ctx, rc, "dereflect: cannot allocate a %dx%d image", w, h);
    if (rc == LUMOS_OK) {
        out->space = in->space;
        const int colours = gray ? 1 : 3;
        for (int y = 0; y < h; y++) {
            const unsigned char *src = (const unsigned char *)in->data + (size_t)y * in->stride;
            unsigned char *row = (unsigned char *)out->data + (size_t)y * out->stride;
            const float *t = rgb + (size_t)y * w * 3;
            for (int x = 0; x < w; x++) {
                if (gray) store_at(out, row, x, 0, (t[3 * x] + t[3 * x + 1] + t[3 * x + 2]) / 3.f);
                else
                    for (int c = 0; c < 3; c++) store_at(out, row, x, c, t[3 * x + c]);
                /* alpha and other planes: as they were */
                for (int c = colours; c < in->channels; c++)
                    store_at(out, row, x, c, sample_at(in, src, x, c));
            }
        }
    }
    free(rgb);
    lumos_net_free(loaded);
    if (rc) lumos_image_free(out);
    return rc;
}

/* The depth written: asked for, or the input's where fmt holds it. */
static int output_bits(lumos_format fmt, int asked, int input)
{
    if (asked) return asked;
    if (fmt == LUMOS_FORMAT_JPEG) return 8;
    if (fmt == LUMOS_FORMAT_PNG) return input == 32 ? 16 : input;
    return input;
}

static const char *format_name(lumos_format f)
{
    return f == LUMOS_FORMAT_JPEG ? "JPEG" : f == LUMOS_FORMAT_PNG ? "PNG" : "TIFF";
}

/* LUMOS_OK when dereflect may write fmt at `bits` (0: any), else the error. */
static int check_output(lumos_ctx *ctx, const char *out_path, lumos_format fmt, int bits)
{
    if (fmt == LUMOS_FORMAT_EXR)
        return lumos__fail(ctx, LUMOS_E_UNSUPPORTED,
                           "%s: dereflect writes JPEG, PNG or TIFF (OpenEXR holds linear light)",
                           out_path);
    if (fmt != LUMOS_FORMAT_JPEG && fmt != LUMOS_FORMAT_PNG && fmt != LUMOS_FORMAT_TIFF)
        return lumos__fail(ctx, LUMOS_E_ARG, "%s: unknown output format", out_path);
    if (bits && bits != 8 && bits != 16 && bits != 32)
        return lumos__fail(ctx, LUMOS_E_ARG, "%s: %d bits (8, 16 or 32)", out_path, bits);
    if ((fmt == LUMOS_FORMAT_JPEG && bits > 8) || (fmt == LUMOS_FORMAT_PNG && bits > 16))
        return lumos__fail(ctx, LUMOS_E_ARG, "%s: %s holds %s, not %d-bit samples", out_path,
                           format_name(fmt), fmt == LUMOS_FORMAT_JPEG ? "8 bits" : "8 or 16 bits",
                           bits);
    return LUMOS_OK;
}

lumos_status lumos_dereflect_file(lumos_ctx *ctx, const char *in_path, const char *out_path,
                                  const lumos_dereflect_options *opt)
{
    if (!in_path || !out_path || !opt)
        return lumos__fail(ctx, LUMOS_E_ARG, "lumos_dereflect_file: NULL argument");
    lumos__clear_error(ctx);
    /* What can be checked before reading is checked first. */
    lumos_format fmt = opt->write.format != LUMOS_FORMAT_AUTO ? opt->write.format
                                                               : lumos_format_from_path(out_path);
    int rc = fmt != LUMOS_FORMAT_AUTO ? check_output(ctx, out_path, fmt, opt->bits) : LUMOS_OK;
    if (rc) return rc;

    lumos_image in = {0}, out = {0};
    lumos_meta *meta = NULL;
    rc = lumos_image_read_meta(ctx, in_path, &in, &meta);
    if (rc) return rc; /* the readers name the file */
    if (fmt == LUMOS_FORMAT_AUTO) fmt = lumos_meta_format(meta);
    if (lumos_meta_format(meta) == LUMOS_FORMAT_EXR)
        rc = lumos__fail(ctx, LUMOS_E_UNSUPPORTED,
                         "%s: OpenEXR holds linear light; dereflect takes JPEG, PNG or TIFF",
                         in_path);
    if (rc == LUMOS_OK) rc = check_output(ctx, out_path, fmt, opt->bits);
    if (rc == LUMOS_OK) {
        lumos_dereflect_options o = *opt;
        o.bits = output_bits(fmt, opt->bits, in.bits);
        rc = lumos_dereflect_image(ctx, &in, &o, &out);
        if (rc && ctx && strncmp(ctx->error, in_path, strlen(in_path)) != 0) {
            /* Name the file in errors from stages that do not know it. */
            char detail[sizeof ctx->error];
            memcpy(detail, ctx->error, sizeof detail);
            lumos__fail(ctx, rc, "%s: %s", in_path, detail);
        }
    }
    lumos_image_free(&in);
    if (rc == LUMOS_OK) {
        lumos_write_options wo = opt->write;
        wo.format = fmt;
        wo.meta = meta;
        rc = lumos_image_write(ctx, &out, out_path, &wo);
    }
    lumos_image_free(&out);
    lumos_meta_free(meta);
    return rc;
}
