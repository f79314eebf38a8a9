/* exr.c — OpenEXR through OpenEXRCore, the C library of OpenEXR 3.
 *
 * EXR holds scene-linear light: images are written as 32-bit float
 * channels (ZIP-compressed scanlines), with Rec.709/sRGB chromaticities for
 * linear sRGB; any stored channel (FLOAT, HALF or UINT; scanline or tiled,
 * the first level) is read as float32.
 *
 * The file goes through our own pread/pwrite callbacks on a descriptor we
 * own, so that a failed read or write keeps its errno and a cut file is told
 * apart from a damaged one; the library's error callback records its first
 * message in the job instead of printing it to stderr.
 *
 * Reading unpacks the decompressed chunks itself: OpenEXRCore 3.1's
 * specialised unpackers misplace channels (HALF RGBA read into float comes
 * out as ABGR), and the storage layout is simple — per line, each channel's
 * samples in channel-list order, little-endian. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <openexr.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io.h"
#include "core/context.h"

typedef struct {
    int fd;
    int err;       /* errno of the first failed read/write */
    int eof;       /* a read asked for bytes past the end: a cut file */
    char msg[256]; /* the library's first error message */
} exr_job;

static void on_error(exr_const_context_t f, exr_result_t code, const char *msg)
{
    void *user = NULL;
    exr_get_user_data(f, &user);
    exr_job *job = user;
    if (job && !job->msg[0])
        snprintf(job->msg, sizeof job->msg, "%s", msg ? msg : exr_get_default_error_message(code));
}

static int64_t io_read(exr_const_context_t f, void *user, void *buf, uint64_t n, uint64_t off,
                       exr_stream_error_func_ptr_t error_cb)
{
    (void)f, (void)error_cb;
    exr_job *job = user;
    uint64_t done = 0;
    while (done < n) {
        ssize_t r = pread(job->fd, (char *)buf + done, (size_t)(n - done), (off_t)(off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            if (!job->err) job->err = errno;
            return -1;
        }
        if (r == 0) {
            job->eof = 1;
            break;
        }
        done += (uint64_t)r;
    }
    return (int64_t)done;
}

static int64_t io_size(exr_const_context_t f, void *user)
{
    (void)f;
    struct stat sb;
    return fstat(((exr_job *)user)->fd, &sb) == 0 ? (int64_t)sb.st_size : -1;
}

static int64_t io_write(exr_const_context_t f, void *user, const void *buf, uint64_t n,
                        uint64_t off, exr_stream_error_func_ptr_t error_cb)
{
    (void)f, (void)error_cb;
    exr_job *job = user;
    uint64_t done = 0;
    while (done < n) {
        ssize_t r = pwrite(job->fd, (const char *)buf + done, (size_t)(n - done),
                           (off_t)(off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (!job->err) job->err = r < 0 ? errno : EIO;
            return -1;
        }
        done += (uint64_t)r;
    }
    return (int64_t)done;
}

static exr_context_initializer_t initializer(exr_job *job)
{
    exr_context_initializer_t init = EXR_DEFAULT_CONTEXT_INITIALIZER;
    init.error_handler_fn = on_error;
    init.user_data = job;
    init.read_fn = io_read;
    init.size_fn = io_size;
    init.write_fn = io_write;
    return init;
}

/* The failure of a library call: the I/O error or the cut file if there
 * was one, else the library's message. */
static int exr_fail(lumos_ctx *ctx, const exr_job *job, exr_result_t rv, int status,
                    const char *path, const char *what)
{
    if (job->err) return lumos__fail_errno(ctx, LUMOS_E_IO, job->err, "%s", path);
    if (rv == EXR_ERR_OUT_OF_MEMORY)
        return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
    if (status == LUMOS_E_FORMAT && job->eof)
        return lumos__fail(ctx, status, "%s: damaged OpenEXR file: the file is truncated", path);
    return lumos__fail(ctx, status, "%s: %s: %s", path, what,
                       job->msg[0] ? job->msg : exr_get_default_error_message(rv));
}

/* ---------------------------------------------------------------- write */

/* Channel names: Y (gray), Y A, R G B, R G B A; other counts are planes
 * named by their index. */
static void channel_name(char *buf, size_t cap, int channels, int c)
{
    static const char *const gray[] = {"Y", "A"}, *const rgb[] = {"R", "G", "B", "A"};
    if (channels <= 2) snprintf(buf, cap, "%s", gray[c]);
    else if (channels <= 4) snprintf(buf, cap, "%s", rgb[c]);
    else snprintf(buf, cap, "%d", c);
}

/* ITU-R BT.709 primaries, D65 white: those of sRGB. */
static const exr_attr_chromaticities_t rec709 = {0.64f, 0.33f, 0.30f, 0.60f,
                                                 0.15f, 0.06f, 0.3127f, 0.3290f};

/* EXIF fields that OpenEXR has standard attributes for. */
static exr_result_t set_exif(exr_context_t f, int part, const lumos_exif *ex)
{
    exr_result_t rv = EXR_ERR_SUCCESS;
    char date[sizeof ex->datetime + 1];
    snprintf(date, sizeof date, "%.*s", (int)sizeof ex->datetime, ex->datetime);
    if (!rv && strlen(date) == 19) rv = exr_attr_set_string(f, part, "capDate", date);
    if (!rv && ex->exposure_s > 0) rv = exr_attr_set_float(f, part, "expTime", ex->exposure_s);
    if (!rv && ex->aperture > 0) rv = exr_attr_set_float(f, part, "aperture", ex->aperture);
    if (!rv && ex->iso > 0) rv = exr_attr_set_float(f, part, "isoSpeed", ex->iso);
    return rv;
}

/* Integer samples as floats 0..1, for one chunk of rows. */
static void rows_to_float(float *dst, const lumos_image *img, int y0, int rows)
{
    const size_t n = (size_t)img->width * (size_t)img->channels;
    for (int y = 0; y < rows; y++) {
        const uint8_t *row = (const uint8_t *)img->data + (size_t)(y0 + y) * img->stride;
        float *d = dst + (size_t)y * n;
        const uint16_t *row16 = (const uint16_t *)(const void *)row;
        if (img->bits == 8)
            for (size_t i = 0; i < n; i++) d[i] = row[i] / 255.f;
        else
            for (size_t i = 0; i < n; i++) d[i] = row16[i] / 65535.f;
    }
}

int lumos__write_exr(lumos_ctx *ctx, const lumos_image *img, const char *tmp_path,
                     const char *shown_path, const lumos_write_options *opt)
{
    exr_job job = {.fd = open(tmp_path, O_WRONLY | O_TRUNC | O_CLOEXEC)};
    if (job.fd < 0) return lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", shown_path);
    const int w = img->width, h = img->height, nch = img->channels;
    exr_context_initializer_t init = initializer(&job);
    exr_context_t f = NULL;
    exr_encode_pipeline_t enc = EXR_ENCODE_PIPELINE_INITIALIZER;
    int part = 0, lines = 1, started = 0;
    int *index = malloc((size_t)nch * sizeof *index); /* pipeline channel -> image channel */
    float *conv = NULL;                                /* one chunk as floats (8/16-bit images) */
    exr_result_t rv = index ? exr_start_write(&f, shown_path, EXR_WRITE_FILE_DIRECTLY, &init)
                            : EXR_ERR_OUT_OF_MEMORY;
    if (!rv) rv = exr_add_part(f, NULL, EXR_STORAGE_SCANLINE, &part);
    if (!rv) rv = exr_initialize_required_attr_simple(f, part, w, h, EXR_COMPRESSION_ZIP);
    char name[16];
    for (int c = 0; !rv && c < nch; c++) {
        channel_name(name, sizeof name, nch, c);
        rv = exr_add_channel(f, part, name, EXR_PIXEL_FLOAT, EXR_PERCEPTUALLY_LOGARITHMIC, 1, 1);
    }
    /* Camera RGB has no primaries to state: EXR's readers then assume Rec.709. */
    if (!rv && img->space == LUMOS_SPACE_LINEAR_SRGB)
        rv = exr_attr_set_chromaticities(f, part, "chromaticities", &rec709);
    if (!rv && opt->exif) rv = set_exif(f, part, opt->exif);
    if (!rv) rv = exr_write_header(f);
    if (!rv) rv = exr_get_scanlines_per_chunk(f, part, &lines);
    if (!rv && img->bits != 32 &&
        !(conv = malloc((size_t)lines * (size_t)w * (size_t)nch * sizeof *conv)))
        rv = EXR_ERR_OUT_OF_MEMORY;

    for (int y = 0; !rv && y < h; y += lines) {
        exr_chunk_info_t ci;
        rv = exr_write_scanline_chunk_info(f, part, y, &ci);
        if (!rv) rv = started ? exr_encoding_update(f, part, &ci, &enc)
                              : exr_encoding_initialize(f, part, &ci, &enc);
        if (rv) break;
        if (!started) { /* the library keeps channels sorted by name */
            for (int i = 0; i < enc.channel_count; i++) {
                index[i] = 0;
                for (int c = 0; c < nch; c++) {
                    channel_name(name, sizeof name, nch, c);
                    if (!strcmp(name, enc.channels[i].channel_name)) index[i] = c;
                }
            }
        }
        const uint8_t *base;
        size_t line_stride;
        if (conv) {
            rows_to_float(conv, img, y, ci.height);
            base = (const uint8_t *)conv;
            line_stride = (size_t)w * (size_t)nch * sizeof *conv;
        } else {
            base = (const uint8_t *)img->data + (size_t)y * img->stride;
            line_stride = img->stride;
        }
        for (int i = 0; i < enc.channel_count; i++) {
            exr_coding_channel_info_t *ch = &enc.channels[i];
            ch->user_data_type = EXR_PIXEL_FLOAT;
            ch->user_bytes_per_element = 4;
            ch->user_pixel_stride = nch * 4;
            ch->user_line_stride = (int32_t)line_stride;
            ch->encode_from_ptr = base + (size_t)index[i] * 4;
        }
        if (!started) {
            rv = exr_encoding_choose_default_routines(f, part, &enc);
            started = 1;
        }
        if (!rv) rv = exr_encoding_run(f, part, &enc);
    }
    if (started) exr_encoding_destroy(f, &enc);
    /* exr_finish writes the chunk offset table: its failure fails the file. */
    exr_result_t fin = f ? exr_finish(&f) : EXR_ERR_SUCCESS;
    if (!rv) rv = fin;
    int st = rv ? exr_fail(ctx, &job, rv, LUMOS_E_IO, shown_path, "cannot write OpenEXR")
                : LUMOS_OK;
    if (close(job.fd) != 0 && !st) st = lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", shown_path);
    free(conv);
    free(index);
    return st;
}

/* ----------------------------------------------------------------- read */

float lumos__half_to_float(uint16_t h)
{
    int sign = h >> 15, exp = (h >> 10) & 31, man = h & 1023;
    float v;
    if (exp == 0) v = ldexpf((float)man, -24); /* zero, subnormal */
    else if (exp == 31) v = man ? NAN : INFINITY;
    else v = ldexpf((float)(man | 1024), exp - 25);
    return sign ? -v : v;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

typedef struct {
    lumos_image *img;
    const int *slot;            /* file channel -> image channel */
    const exr_attr_box2i_t *dw; /* the data window: image (0, 0) is its min */
    int32_t tile_w, tile_h;     /* tiled files (0: scanlines) */
    int status;                 /* LUMOS_E_FORMAT when a chunk's size is wrong */
} unpack_job;

/* Our unpack_and_convert_fn: the decompressed chunk holds, per line, each
 * channel's samples in channel-list order, little-endian. */
static exr_result_t unpack_chunk(exr_decode_pipeline_t *dec)
{
    unpack_job *u = dec->decoding_user_data;
    const exr_chunk_info_t *ci = &dec->chunk;
    const uint8_t *src = dec->unpacked_buffer;
    const int nch = u->img->channels;
    /* A tile's start is its tile index; a scanline chunk's, its first line. */
    const int64_t x0 = u->tile_w ? (int64_t)ci->start_x * u->tile_w : 0;
    const int64_t y0 = u->tile_w ? (int64_t)ci->start_y * u->tile_h
                                 : (int64_t)ci->start_y - u->dw->min.y;
    uint64_t need = 0;
    for (int i = 0; i < dec->channel_count; i++)
        need += (uint64_t)ci->width * (uint64_t)ci->height *
                (uint64_t)dec->channels[i].bytes_per_element;
    if (!src || ci->unpacked_size != need || x0 < 0 || y0 < 0 || ci->width < 0 || ci->height < 0 ||
        x0 + ci->width > u->img->width || y0 + ci->height > u->img->height ||
        (!u->tile_w && ci->width != u->img->width)) {
        u->status = LUMOS_E_FORMAT;
        return EXR_ERR_CORRUPT_CHUNK;
    }
    for (int y = 0; y < ci->height; y++) {
        uint8_t *line = (uint8_t *)u->img->data + (size_t)(y0 + y) * u->img->stride;
        float *row = (float *)(void *)line + (size_t)x0 * nch;
        for (int i = 0; i < dec->channel_count; i++) {
            float *d = row + u->slot[i];
            switch (dec->channels[i].data_type) {
            case EXR_PIXEL_HALF:
                for (int x = 0; x < ci->width; x++, src += 2)
                    d[(size_t)x * nch] = lumos__half_to_float((uint16_t)(src[0] | src[1] << 8));
                break;
            case EXR_PIXEL_FLOAT:
                for (int x = 0; x < ci->width; x++, src += 4) {
                    uint32_t bits = le32(src);
                    memcpy(&d[(size_t)x * nch], &bits, 4);
                }
                break;
            default: /* EXR_PIXEL_UINT */
                for (int x = 0; x < ci->width; x++, src += 4) d[(size_t)x * nch] = (float)le32(src);
                break;
            }
        }
    }
    return EXR_ERR_SUCCESS;
}

/* Where each file channel goes: R, G, B, A (and Y) first in that order,
 * then channels named by an index by that index, then the rest in the
 * file's (alphabetical) order. So lumos's own names read back in place. */
static void order_channels(const exr_attr_chlist_t *list, int *slot)
{
    const int n = list->num_channels;
    long *key = malloc((size_t)n * sizeof *key);
    if (!key) { /* file order */
        for (int i = 0; i < n; i++) slot[i] = i;
        return;
    }
    for (int i = 0; i < n; i++) {
        const char *s = list->entries[i].name.str;
        char *end;
        long v = strtol(s, &end, 10);
        if (!strcmp(s, "R") || !strcmp(s, "Y")) key[i] = 0;
        else if (!strcmp(s, "G")) key[i] = 1;
        else if (!strcmp(s, "B")) key[i] = 2;
        else if (!strcmp(s, "A")) key[i] = 3;
        else if (*s >= '0' && *s <= '9' && !*end && v < 100000) key[i] = 4 + v;
        else key[i] = 200000 + i;
    }
    /* slot = rank of the key, ties in file order */
    for (int i = 0; i < n; i++) {
        int r = 0;
        for (int j = 0; j < n; j++) r += key[j] < key[i] || (key[j] == key[i] && j < i);
        slot[i] = r;
    }
    free(key);
}

/* Other primaries than sRGB's (ACES, camera): no profile can be implied. */
static lumos_space space_of(exr_context_t f)
{
    exr_attr_chromaticities_t chr;
    if (exr_attr_get_chromaticities(f, 0, "chromaticities", &chr) != EXR_ERR_SUCCESS)
        return LUMOS_SPACE_LINEAR_SRGB; /* EXR's default: Rec.709 */
    const float *a = &chr.red_x, *b = &rec709.red_x;
    for (int i = 0; i < 8; i++)
        if (fabsf(a[i] - b[i]) > 0.002f) return LUMOS_SPACE_CAMERA;
    return LUMOS_SPACE_LINEAR_SRGB;
}

/* The most bytes one byte of a compression's data decodes to: stored (1),
 * RLE (a 2-byte run gives at most 128), zlib (1032; PXR24 also widens 24
 * bits to 32), B44/B44A (3 bytes for a flat 4x4 block of 32); a generous
 * bound for PIZ's and DWA's long-run codes. */
static uint64_t exr_ratio(exr_compression_t c, const char **name)
{
    static const char *const names[] = {"uncompressed", "RLE",   "ZIPS", "ZIP",  "PIZ",
                                        "PXR24",        "B44",   "B44A", "DWAA", "DWAB"};
    static const uint64_t ratios[] = {1, 128, 1032, 1032, 32768, 2048, 32, 32, 32768, 32768};
    if ((int)c < 0 || (int)c >= (int)(sizeof ratios / sizeof ratios[0])) {
        *name = "unknown";
        return 32768;
    }
    *name = names[c];
    return ratios[c];
}

/* What the header claims, checked before anything is allocated for it: the
 * data window against the context's limits and against what the file's
 * bytes can decode to; its chunk offset table (which the library reads
 * whole) against the file's size. */
static int check_exr(lumos_ctx *ctx, exr_context_t f, exr_job *job, const char *path, int64_t w,
                     int64_t h, const exr_attr_chlist_t *list)
{
    struct stat sb;
    if (fstat(job->fd, &sb) != 0) return lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", path);
    const uint64_t fsize = sb.st_size > 0 ? (uint64_t)sb.st_size : 0;
    exr_compression_t comp = EXR_COMPRESSION_NONE;
    uint64_t chunk = 0;
    int32_t chunks = 0;
    exr_result_t rv = exr_get_compression(f, 0, &comp);
    if (!rv) rv = exr_get_chunk_count(f, 0, &chunks);
    if (!rv) rv = exr_get_chunk_unpacked_size(f, 0, &chunk);
    if (rv) return exr_fail(ctx, job, rv, LUMOS_E_FORMAT, path, "damaged OpenEXR file");
    uint64_t sample_bytes = 0; /* a pixel's, as stored */
    for (int i = 0; i < list->num_channels; i++)
        sample_bytes += list->entries[i].pixel_type == EXR_PIXEL_HALF ? 2 : 4;
    const uint64_t px = lumos__mul_sat((uint64_t)w, (uint64_t)h);
    lumos__claim c = {.format = "OpenEXR", .width = (uint64_t)w, .height = (uint64_t)h,
                      .decoded = lumos__mul_sat(px, sample_bytes), .held = fsize};
    c.ratio = exr_ratio(comp, &c.codec);
    /* beside the image: a chunk, packed and unpacked */
    c.alloc = lumos__mul_sat(px, (uint64_t)list->num_channels * 4);
    const uint64_t scratch = lumos__mul_sat(chunk, 2);
    c.alloc = c.alloc > UINT64_MAX - scratch ? UINT64_MAX : c.alloc + scratch;
    int st = lumos__check_claim(ctx, path, &c);
    if (!st && (chunks < 1 || (uint64_t)chunks > fsize / 8))
        st = lumos__fail(ctx, LUMOS_E_FORMAT,
                         "%s: damaged OpenEXR file: the header claims %d chunks, more than the "
                         "file's %llu bytes can list",
                         path, (int)chunks, (unsigned long long)fsize);
    return st;
}

/* Checks the part lumos reads and allocates *out for its data window. */
static int prepare(lumos_ctx *ctx, exr_context_t f, exr_job *job, const char *path,
                   exr_attr_box2i_t *dw, const exr_attr_chlist_t **list, lumos_image *out)
{
    exr_storage_t storage;
    exr_result_t rv = exr_get_storage(f, 0, &storage);
    if (!rv) rv = exr_get_data_window(f, 0, dw);
    if (!rv) rv = exr_get_channels(f, 0, list);
    if (rv) return exr_fail(ctx, job, rv, LUMOS_E_FORMAT, path, "damaged OpenEXR file");
    if (storage != EXR_STORAGE_SCANLINE && storage != EXR_STORAGE_TILED)
        return lumos__fail(ctx, LUMOS_E_UNSUPPORTED, "%s: deep OpenEXR images are not supported",
                           path);
    const int64_t w = (int64_t)dw->max.x - dw->min.x + 1, h = (int64_t)dw->max.y - dw->min.y + 1;
    if (w < 1 || h < 1 || w > INT32_MAX || h > INT32_MAX)
        return lumos__fail(ctx, LUMOS_E_FORMAT, "%s: damaged OpenEXR file: bad data window", path);
    if (!*list || (*list)->num_channels < 1)
        return lumos__fail(ctx, LUMOS_E_FORMAT, "%s: damaged OpenEXR file: no channels", path);
    for (int i = 0; i < (*list)->num_channels; i++) {
        const exr_attr_chlist_entry_t *e = &(*list)->entries[i];
        if (e->x_sampling != 1 || e->y_sampling != 1)
            return lumos__fail(ctx, LUMOS_E_UNSUPPORTED,
                               "%s: OpenEXR channel %s is subsampled (%dx%d): not supported", path,
                               e->name.str, e->x_sampling, e->y_sampling);
        if (e->pixel_type != EXR_PIXEL_HALF && e->pixel_type != EXR_PIXEL_FLOAT &&
            e->pixel_type != EXR_PIXEL_UINT)
            return lumos__fail(ctx, LUMOS_E_FORMAT, "%s: damaged OpenEXR file: channel %s type %d",
                               path, e->name.str, (int)e->pixel_type);
    }
    int st = check_exr(ctx, f, job, path, w, h, *list);
    if (st) return st;
    st = lumos_image_alloc(out, (int)w, (int)h, (*list)->num_channels, 32);
    if (st)
        return lumos__fail(ctx, st, "%s: cannot allocate a %lldx%lld image of %d channels", path,
                           (long long)w, (long long)h, (*list)->num_channels);
    out->space = space_of(f);
    return LUMOS_OK;
}

/* Decodes one chunk (started: the pipeline was initialised by an earlier one). */
static exr_result_t decode_chunk(exr_context_t f, const exr_chunk_info_t *ci,
                                 exr_decode_pipeline_t *dec, int *started, unpack_job *u)
{
    if (*started) {
        exr_result_t rv = exr_decoding_update(f, 0, ci, dec);
        return rv ? rv : exr_decoding_run(f, 0, dec);
    }
    exr_result_t rv = exr_decoding_initialize(f, 0, ci, dec);
    if (rv) return rv;
    *started = 1; /* from here on the pipeline holds memory to release */
    /* The default routines need somewhere to write; ours replaces their
     * unpacker (and ignores these pointers). */
    for (int i = 0; i < dec->channel_count; i++) {
        exr_coding_channel_info_t *ch = &dec->channels[i];
        ch->user_data_type = EXR_PIXEL_FLOAT;
        ch->user_bytes_per_element = 4;
        ch->user_pixel_stride = u->img->channels * 4;
        ch->user_line_stride = (int32_t)u->img->stride;
        ch->decode_to_ptr = (uint8_t *)u->img->data + (size_t)u->slot[i] * 4;
    }
    rv = exr_decoding_choose_default_routines(f, 0, dec);
    if (rv) return rv;
    dec->unpack_and_convert_fn = unpack_chunk;
    dec->decoding_user_data = u;
    return exr_decoding_run(f, 0, dec);
}

static int read_pixels(lumos_ctx *ctx, exr_context_t f, exr_job *job, const char *path,
                       lumos_image *out, const exr_attr_box2i_t *dw,
                       const exr_attr_chlist_t *list)
{
    int *slot = malloc((size_t)list->num_channels * sizeof *slot);
    if (!slot) return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
    order_channels(list, slot);
    unpack_job u = {.img = out, .slot = slot, .dw = dw, .status = LUMOS_OK};
    exr_decode_pipeline_t dec = EXR_DECODE_PIPELINE_INITIALIZER;
    int started = 0;
    exr_storage_t storage = EXR_STORAGE_SCANLINE;
    exr_result_t rv = exr_get_storage(f, 0, &storage);
    exr_chunk_info_t ci;
    if (!rv && storage == EXR_STORAGE_SCANLINE) {
        for (int64_t y = dw->min.y; !rv && y <= dw->max.y;) {
            rv = exr_read_scanline_chunk_info(f, 0, (int)y, &ci);
            if (!rv && (ci.height < 1 || ci.start_y + (int64_t)ci.height <= y))
                rv = EXR_ERR_CORRUPT_CHUNK; /* would not advance */
            if (!rv) rv = decode_chunk(f, &ci, &dec, &started, &u);
            y = (int64_t)ci.start_y + ci.height;
        }
    } else if (!rv) { /* tiled: the full-resolution level */
        int32_t level_w = 0, level_h = 0;
        rv = exr_get_tile_sizes(f, 0, 0, 0, &u.tile_w, &u.tile_h);
        if (!rv) rv = exr_get_level_sizes(f, 0, 0, 0, &level_w, &level_h);
        if (!rv && (u.tile_w < 1 || u.tile_h < 1 || level_w != out->width ||
                    level_h != out->height))
            rv = EXR_ERR_INVALID_ATTR;
        const int64_t tx_count = rv ? 0 : ((int64_t)level_w + u.tile_w - 1) / u.tile_w;
        const int64_t ty_count = rv ? 0 : ((int64_t)level_h + u.tile_h - 1) / u.tile_h;
        for (int ty = 0; !rv && ty < ty_count; ty++)
            for (int tx = 0; !rv && tx < tx_count; tx++) {
                rv = exr_read_tile_chunk_info(f, 0, tx, ty, 0, 0, &ci);
                if (!rv) rv = decode_chunk(f, &ci, &dec, &started, &u);
            }
    }
    if (started) exr_decoding_destroy(f, &dec);
    free(slot);
    if (!rv) return LUMOS_OK;
    if (u.status)
        return lumos__fail(ctx, u.status, "%s: damaged OpenEXR file: a chunk has the wrong size",
                           path);
    if (rv == EXR_ERR_FEATURE_NOT_IMPLEMENTED)
        return exr_fail(ctx, job, rv, LUMOS_E_UNSUPPORTED, path, "unsupported OpenEXR file");
    return exr_fail(ctx, job, rv, LUMOS_E_FORMAT, path, "damaged OpenEXR file");
}

int lumos__read_exr(lumos_ctx *ctx, const char *path, lumos_image *out)
{
    memset(out, 0, sizeof *out);
    exr_job job = {.fd = open(path, O_RDONLY | O_CLOEXEC)};
    if (job.fd < 0) return lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", path);
    exr_context_initializer_t init = initializer(&job);
    /* A damaged chunk table is an error, not something to search the file for. */
    init.flags = EXR_CONTEXT_FLAG_DISABLE_CHUNK_RECONSTRUCTION;
    exr_context_t f = NULL;
    exr_result_t rv = exr_start_read(&f, path, &init);
    int st;
    if (rv) {
        st = exr_fail(ctx, &job, rv, LUMOS_E_FORMAT, path, "damaged OpenEXR file");
    } else {
        exr_attr_box2i_t dw;
        const exr_attr_chlist_t *list = NULL;
        st = prepare(ctx, f, &job, path, &dw, &list, out);
        if (!st) st = read_pixels(ctx, f, &job, path, out, &dw, list);
    }
    if (f) exr_finish(&f);
    close(job.fd);
    if (st) lumos_image_free(out);
    return st;
}
