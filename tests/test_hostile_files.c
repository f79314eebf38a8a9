/* test_hostile_files.c — small files whose headers lie about their size.
 *
 * Each hostile file (a few hundred bytes to a few KB, written here at run
 * time) claims an image of gigabytes: TIFF strips and tiles, uncompressed,
 * Deflate, LZW and PackBits, through libtiff's direct and RGBA paths; a PNG
 * IHDR, a JPEG SOF, an OpenEXR data window; safetensors headers and tensor
 * offsets past the file. Each is read in a forked child whose address space
 * is capped at 256 MiB above what it had: the read must fail with an error
 * naming the file, in under a second, with its peak RSS grown by under 256
 * MiB, and not because an allocation failed. Valid images must still read,
 * pixel for pixel where the RGBA path is banded, and lowering the context's
 * limits must refuse them with an error naming the limit. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tiffio.h>

#include "check.h"
#include "io/weights.h"
#include "lumos.h"
#include "test_tmp.h"

static const uint64_t GROWTH_LIMIT = 256u << 20; /* bytes */

/* ------------------------------------------------------------ bytes */

typedef struct {
    uint8_t *b;
    size_t n, cap;
} bytes;

static void put(bytes *o, const void *p, size_t n)
{
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2 + 256;
        o->b = realloc(o->b, o->cap);
        if (!o->b) exit(1);
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}
static void put8(bytes *o, unsigned v)
{
    uint8_t b = (uint8_t)v;
    put(o, &b, 1);
}
static void le16(bytes *o, unsigned v) { put8(o, v), put8(o, v >> 8); }
static void le32(bytes *o, uint32_t v) { le16(o, v & 0xffff), le16(o, v >> 16); }
static void be32(bytes *o, uint32_t v)
{
    put8(o, v >> 24), put8(o, v >> 16), put8(o, v >> 8), put8(o, v);
}
static void set_le32(bytes *o, size_t at, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        o->b[at + i] = (uint8_t)(v >> (8 * i));
}

static uint32_t crc32_of(const uint8_t *p, size_t n, uint32_t crc)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = crc >> 1 ^ (0xEDB88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

/* A zlib stream holding data in stored (uncompressed) Deflate blocks. */
static void zlib_stored(bytes *o, const uint8_t *data, size_t n)
{
    put8(o, 0x78), put8(o, 0x01);
    size_t done = 0;
    do {
        size_t k = n - done < 65535 ? n - done : 65535;
        put8(o, done + k == n); /* BFINAL, BTYPE 00 */
        le16(o, (unsigned)k), le16(o, (unsigned)~k & 0xffff);
        put(o, data + done, k);
        done += k;
    } while (done < n);
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < n; i++)
        a = (a + data[i]) % 65521, b = (b + a) % 65521;
    be32(o, b << 16 | a);
}

/* --------------------------------------------------------- TIFF files */

enum { SHORT = 3, LONG = 4, UNDEFINED = 7 };

typedef struct {
    uint16_t tag, type;
    uint32_t count;
    const uint32_t *v; /* count values (type UNDEFINED: bytes in v8) */
    const uint8_t *v8;
    uint32_t one; /* when v is NULL and count is 1 */
} tiff_entry;

/* A little-endian classic TIFF: the header, data (at offset 8), the
 * entries' out-of-line values, then the IFD. Entries sorted by tag. */
static void tiff_file(const char *path, const uint8_t *data, size_t ndata, const tiff_entry *e,
                      int ne)
{
    bytes o = {0};
    put(&o, "II*\0", 4);
    le32(&o, 0); /* IFD offset, set below */
    put(&o, data, ndata);
    uint32_t at[64];
    for (int i = 0; i < ne; i++) {
        size_t size = e[i].type == SHORT ? 2 : e[i].type == LONG ? 4 : 1;
        at[i] = 0;
        if (size * e[i].count <= 4) continue;
        if (o.n & 1) put8(&o, 0);
        at[i] = (uint32_t)o.n;
        for (uint32_t k = 0; k < e[i].count; k++) {
            if (e[i].type == UNDEFINED)
                put8(&o, e[i].v8 ? e[i].v8[k % 64] : 0);
            else if (size == 2)
                le16(&o, e[i].v[k]);
            else
                le32(&o, e[i].v[k]);
        }
    }
    if (o.n & 1) put8(&o, 0);
    set_le32(&o, 4, (uint32_t)o.n);
    le16(&o, (unsigned)ne);
    for (int i = 0; i < ne; i++) {
        le16(&o, e[i].tag), le16(&o, e[i].type), le32(&o, e[i].count);
        size_t size = e[i].type == SHORT ? 2 : e[i].type == LONG ? 4 : 1;
        if (size * e[i].count > 4) {
            le32(&o, at[i]);
        } else {
            uint8_t val[4] = {0};
            for (uint32_t k = 0; k < e[i].count; k++) {
                uint32_t v = e[i].v ? e[i].v[k] : e[i].one;
                if (e[i].type == UNDEFINED)
                    val[k] = e[i].v8 ? e[i].v8[k] : 0;
                else if (size == 2)
                    val[2 * k] = (uint8_t)v, val[2 * k + 1] = (uint8_t)(v >> 8);
                else
                    for (int j = 0; j < 4; j++)
                        val[j] = (uint8_t)(v >> (8 * j));
            }
            put(&o, val, 4);
        }
    }
    le32(&o, 0);
    write_all(path, o.b, o.n);
    free(o.b);
}

typedef struct {
    const char *name;
    uint32_t w, h;
    int spp, bps, photometric, compression;
    int tiled;
    uint32_t block; /* rows a strip, or the tile side; 0: 8 strips or 4x4 tiles */
    int one_entry;  /* list one block only, whatever the layout needs */
} hostile_tiff;

/* Writes a few hundred bytes of TIFF claiming t's size: each block listed
 * holds a tiny valid stream for its compression (or a few stored bytes). */
static void write_hostile_tiff(const char *path, const hostile_tiff *t)
{
    uint32_t bw = t->w, bh = t->block;
    if (t->tiled) {
        bw = bh = t->block ? t->block : (t->w / 4 + 15) / 16 * 16;
    } else if (!bh) {
        bh = (t->h + 7) / 8;
    }
    uint32_t across = t->tiled ? (t->w + bw - 1) / bw : 1, down = (t->h + bh - 1) / bh;
    uint32_t n = t->one_entry ? 1 : across * down;
    if (n > 64) n = 64; /* more would not fit a small file */

    /* One small block, repeated in the data section. */
    bytes blk = {0};
    const uint8_t zeros[16] = {0};
    if (t->compression == 8)
        zlib_stored(&blk, zeros, sizeof zeros);
    else if (t->compression == 32773)
        put8(&blk, 0x81), put8(&blk, 0); /* 128 zeros */
    else if (t->compression == 5)
        put8(&blk, 0x80), put8(&blk, 0x00), put8(&blk, 0x40); /* clear */
    else
        put(&blk, zeros, sizeof zeros);
    bytes data = {0};
    uint32_t offsets[64], counts[64];
    for (uint32_t i = 0; i < n; i++) {
        offsets[i] = 8 + (uint32_t)data.n;
        counts[i] = (uint32_t)blk.n;
        put(&data, blk.b, blk.n);
    }
    uint32_t bps[4] = {t->bps, t->bps, t->bps, t->bps};
    tiff_entry e[16];
    int ne = 0;
    e[ne++] = (tiff_entry){256, LONG, 1, NULL, NULL, t->w};
    e[ne++] = (tiff_entry){257, LONG, 1, NULL, NULL, t->h};
    e[ne++] = (tiff_entry){258, SHORT, (uint32_t)t->spp, bps, NULL, 0};
    e[ne++] = (tiff_entry){259, SHORT, 1, NULL, NULL, (uint32_t)t->compression};
    e[ne++] = (tiff_entry){262, SHORT, 1, NULL, NULL, (uint32_t)t->photometric};
    if (!t->tiled) e[ne++] = (tiff_entry){273, LONG, n, offsets, NULL, 0};
    e[ne++] = (tiff_entry){277, SHORT, 1, NULL, NULL, (uint32_t)t->spp};
    if (!t->tiled) {
        e[ne++] = (tiff_entry){278, LONG, 1, NULL, NULL, bh};
        e[ne++] = (tiff_entry){279, LONG, n, counts, NULL, 0};
    }
    e[ne++] = (tiff_entry){284, SHORT, 1, NULL, NULL, 1};
    if (t->tiled) {
        e[ne++] = (tiff_entry){322, LONG, 1, NULL, NULL, bw};
        e[ne++] = (tiff_entry){323, LONG, 1, NULL, NULL, bh};
        e[ne++] = (tiff_entry){324, LONG, n, offsets, NULL, 0};
        e[ne++] = (tiff_entry){325, LONG, n, counts, NULL, 0};
    }
    if (t->spp == 4 && t->photometric == 2) e[ne++] = (tiff_entry){338, SHORT, 1, NULL, NULL, 2};
    tiff_file(path, data.b, data.n, e, ne);
    free(blk.b);
    free(data.b);
}

/* ---------------------------------------------------------- PNG files */

static void png_chunk(bytes *o, const char *type, const uint8_t *data, size_t n)
{
    be32(o, (uint32_t)n);
    size_t at = o->n;
    put(o, type, 4);
    if (n) put(o, data, n);
    be32(o, crc32_of(o->b + at, 4 + n, 0));
}

/* A PNG of w x h 8-bit RGB whose IDAT holds a few hundred zero bytes;
 * iccp_len > 0 adds an iCCP chunk whose length field claims that many
 * bytes (and holds 64). */
static void write_hostile_png(const char *path, uint32_t w, uint32_t h, int interlace,
                              uint32_t iccp_len)
{
    bytes o = {0};
    put(&o, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13] = {(uint8_t)(w >> 24),
                        (uint8_t)(w >> 16),
                        (uint8_t)(w >> 8),
                        (uint8_t)w,
                        (uint8_t)(h >> 24),
                        (uint8_t)(h >> 16),
                        (uint8_t)(h >> 8),
                        (uint8_t)h,
                        8,
                        2,
                        0,
                        0,
                        (uint8_t)interlace};
    png_chunk(&o, "IHDR", ihdr, sizeof ihdr);
    if (iccp_len) {
        be32(&o, iccp_len);
        put(&o, "iCCP", 4);
        uint8_t junk[64] = "x";
        put(&o, junk, sizeof junk);
    }
    uint8_t zeros[400] = {0};
    bytes z = {0};
    zlib_stored(&z, zeros, sizeof zeros);
    png_chunk(&o, "IDAT", z.b, z.n);
    png_chunk(&o, "IEND", NULL, 0);
    write_all(path, o.b, o.n);
    free(o.b);
    free(z.b);
}

/* ------------------------------------------------- patched real files */

static void write_or_die(lumos_ctx *ctx, const lumos_image *im, const char *path)
{
    lumos_write_options o;
    lumos_write_options_init(&o);
    o.overwrite = 1;
    if (lumos_image_write(ctx, im, path, &o) != LUMOS_OK) {
        fprintf(stderr, "cannot write %s: %s\n", path, lumos_last_error(ctx));
        exit(1);
    }
}

static size_t find(const uint8_t *b, size_t n, const void *what, size_t len)
{
    for (size_t i = 0; i + len <= n; i++)
        if (!memcmp(b + i, what, len)) return i;
    return (size_t)-1;
}

/* A 16x16 baseline JPEG (no profile) whose SOF0 then claims w x h. */
static void write_hostile_jpeg(lumos_ctx *ctx, const char *path, unsigned w, unsigned h)
{
    lumos_image im;
    if (lumos_image_alloc(&im, 16, 16, 3, 8)) exit(1);
    im.space = LUMOS_SPACE_CAMERA;
    write_or_die(ctx, &im, path);
    lumos_image_free(&im);
    size_t n;
    uint8_t *b = read_all(path, &n);
    size_t at = b ? find(b, n, "\xFF\xC0", 2) : (size_t)-1;
    CHECK(at != (size_t)-1, "%s: no SOF0", path);
    if (at == (size_t)-1) exit(1);
    b[at + 5] = (uint8_t)(h >> 8), b[at + 6] = (uint8_t)h;
    b[at + 7] = (uint8_t)(w >> 8), b[at + 8] = (uint8_t)w;
    write_all(path, b, n);
    free(b);
}

/* A 16x16 float RGB OpenEXR whose data window then claims w x h. */
static void write_hostile_exr(lumos_ctx *ctx, const char *path, int32_t w, int32_t h)
{
    lumos_image im;
    if (lumos_image_alloc(&im, 16, 16, 3, 32)) exit(1);
    im.space = LUMOS_SPACE_LINEAR_SRGB;
    write_or_die(ctx, &im, path);
    lumos_image_free(&im);
    size_t n;
    uint8_t *b = read_all(path, &n);
    const char key[] = "dataWindow\0box2i\0";
    size_t at = b ? find(b, n, key, sizeof key - 1) : (size_t)-1;
    CHECK(at != (size_t)-1, "%s: no dataWindow", path);
    if (at == (size_t)-1) exit(1);
    at += sizeof key - 1 + 4 + 8; /* size, then xmin, ymin: xmax, ymax follow */
    int32_t v[2] = {w - 1, h - 1};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 4; i++)
            b[at + 4 * k + i] = (uint8_t)((uint32_t)v[k] >> (8 * i));
    write_all(path, b, n);
    free(b);
}

/* A safetensors file: an 8-byte header length (hlen, or the JSON's own
 * length when 0), the JSON header, then ndata zero bytes. */
static void write_safetensors(const char *path, uint64_t hlen, const char *json, size_t ndata)
{
    bytes o = {0};
    size_t len = strlen(json);
    if (!hlen) hlen = len;
    for (int i = 0; i < 8; i++)
        put8(&o, (unsigned)(hlen >> (8 * i)));
    put(&o, json, len);
    for (size_t i = 0; i < ndata; i++)
        put8(&o, 0);
    write_all(path, o.b, o.n);
    free(o.b);
}

/* -------------------------------------------------- isolated reads */

typedef struct {
    int status; /* the read's; 999: the child died */
    double wall_s, cpu_s;
    long growth_kib; /* peak RSS growth over the read */
    int capped;      /* the child ran under the address-space cap */
    char msg[1024];
} outcome;

enum { READ_IMAGE, READ_WEIGHTS };

static double seconds(const struct timeval *t) { return (double)t->tv_sec + t->tv_usec / 1e6; }

/* Reads path in a forked child capped at GROWTH_LIMIT more address space:
 * an allocation past it fails there instead of succeeding lazily. */
static outcome isolated(const char *path, int what, uint64_t max_pixels, uint64_t max_alloc)
{
    outcome r;
    memset(&r, 0, sizeof r);
    r.status = 999;
    int fd[2];
    if (pipe(fd) != 0) {
        perror("pipe");
        exit(1);
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        close(fd[0]);
        outcome c;
        memset(&c, 0, sizeof c);
        lumos_ctx *ctx = lumos_ctx_new();
        lumos_ctx_set_max_pixels(ctx, max_pixels);
        lumos_ctx_set_max_alloc(ctx, max_alloc);
        long pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (f && fscanf(f, "%ld", &pages) != 1) pages = 0;
        if (f) fclose(f);
        if (pages > 0) {
            struct rlimit rl;
            rl.rlim_cur = rl.rlim_max =
                (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (rlim_t)GROWTH_LIMIT;
            c.capped = setrlimit(RLIMIT_AS, &rl) == 0;
        }
        struct rusage u0, u1;
        struct timespec t0, t1;
        getrusage(RUSAGE_SELF, &u0);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (what == READ_IMAGE) {
            lumos_image img;
            c.status = lumos_image_read(ctx, path, &img);
            if (c.status == LUMOS_OK) lumos_image_free(&img);
        } else {
            lumos__weights *w = NULL;
            c.status = lumos__weights_open(ctx, path, &w);
            lumos__weights_free(w);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        getrusage(RUSAGE_SELF, &u1);
        c.wall_s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
        c.cpu_s = seconds(&u1.ru_utime) + seconds(&u1.ru_stime) - seconds(&u0.ru_utime) -
                  seconds(&u0.ru_stime);
        c.growth_kib = u1.ru_maxrss - u0.ru_maxrss;
        snprintf(c.msg, sizeof c.msg, "%s", lumos_last_error(ctx));
        lumos_ctx_free(ctx);
        ssize_t wr = write(fd[1], &c, sizeof c);
        _exit(wr == (ssize_t)sizeof c ? 0 : 1);
    }
    close(fd[1]);
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t k = read(fd[0], (char *)&r + got, sizeof r - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(fd[0]);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    if (got != sizeof r || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
        memset(&r, 0, sizeof r);
        r.status = 999;
        snprintf(r.msg, sizeof r.msg, "the child died (%s %d)", WIFSIGNALED(ws) ? "signal" : "exit",
                 WIFSIGNALED(ws) ? WTERMSIG(ws) : WEXITSTATUS(ws));
    }
    return r;
}

static int contains(const char *s, const char *what) { return strstr(s, what) != NULL; }

static void report(const char *name, long size, const outcome *o)
{
    printf("%-28s %7ld B  %-26s %7.1f ms wall %7.1f ms cpu %8.1f MiB RSS  %s\n", name, size,
           o->status == 999 ? "crashed" : lumos_strerror(o->status), o->wall_s * 1e3,
           o->cpu_s * 1e3, o->growth_kib / 1024.0, o->msg);
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* A hostile file: refused, naming the file, fast and small, and not by a
 * failed allocation. metadata_only: a lie in a tag or chunk that the
 * reader may drop and still read the (small) image. */
static void expect_refused(const char *name, const char *path, int what, int metadata_only)
{
    outcome o = isolated(path, what, 0, 0);
    report(name, file_size(path), &o);
    CHECK(o.status != 999, "%s: %s", name, o.msg);
    CHECK(o.capped, "%s: the address-space cap was not set", name);
    if (!metadata_only || o.status != LUMOS_OK) {
        CHECK(o.status != LUMOS_OK, "%s: read", name);
        CHECK(contains(o.msg, path), "%s: the error does not name the file: %s", name, o.msg);
        CHECK(!contains(o.msg, "out of memory") && !contains(o.msg, "cannot allocate") &&
                  !contains(o.msg, "Memory allocation"),
              "%s: refused only when an allocation failed: %s", name, o.msg);
    }
    CHECK(o.wall_s < 1.0 && o.cpu_s < 1.0, "%s: %.3f s wall, %.3f s cpu", name, o.wall_s, o.cpu_s);
    CHECK((uint64_t)o.growth_kib * 1024 < GROWTH_LIMIT, "%s: RSS grew %.1f MiB", name,
          o.growth_kib / 1024.0);
}

/* ------------------------------------------------------------- tests */

static void test_hostile_tiffs(void)
{
    static const hostile_tiff cases[] = {
        /* over the pixel limit (2^30): refused by the limit */
        {"tiff-strips-none-60000", 60000, 60000, 4, 8, 2, 1, 0, 0, 0},
        {"tiff-strips-deflate-60000", 60000, 60000, 4, 8, 2, 8, 0, 0, 0},
        {"tiff-tiles-none-60000", 60000, 60000, 4, 8, 2, 1, 1, 0, 0},
        {"tiff-tiles-deflate-60000", 60000, 60000, 4, 8, 2, 8, 1, 0, 0},
        {"tiff-cmyk-strips-60000", 60000, 60000, 4, 8, 5, 8, 0, 0, 0},
        /* under it: refused because the file cannot hold the data */
        {"tiff-strips-none-20000", 20000, 20000, 4, 8, 2, 1, 0, 0, 0},
        {"tiff-strips-deflate-20000", 20000, 20000, 4, 8, 2, 8, 0, 0, 0},
        {"tiff-tiles-none-20000", 20000, 20000, 4, 8, 2, 1, 1, 0, 0},
        {"tiff-tiles-deflate-20000", 20000, 20000, 4, 8, 2, 8, 1, 0, 0},
        {"tiff-strips-lzw-20000", 20000, 20000, 3, 8, 2, 5, 0, 0, 0},
        {"tiff-strips-packbits-20000", 20000, 20000, 3, 8, 2, 32773, 0, 0, 0},
        {"tiff-strips-16bit-20000", 20000, 20000, 3, 16, 2, 8, 0, 0, 0},
        /* the RGBA path: CMYK and 1-bit */
        {"tiff-cmyk-strips-20000", 20000, 20000, 4, 8, 5, 8, 0, 0, 0},
        {"tiff-cmyk-tiles-20000", 20000, 20000, 4, 8, 5, 1, 1, 0, 0},
        {"tiff-bilevel-30000", 30000, 30000, 1, 1, 1, 1, 0, 0, 0},
        {"tiff-bilevel-deflate-30000", 30000, 30000, 1, 1, 1, 8, 0, 0, 0},
        /* strips of a row each, their tables not in the file */
        {"tiff-one-entry-rows", 20000, 20000, 4, 8, 2, 8, 0, 1, 1},
        {"tiff-one-entry-tiles", 20000, 20000, 4, 8, 2, 8, 1, 16, 1},
        {"tiff-tall-1x1e9", 1, 1000000000, 1, 8, 1, 8, 0, 1, 1},
        /* within what the data could hold, but it does not decode */
        {"tiff-cmyk-short-data-200", 200, 200, 4, 8, 5, 8, 0, 0, 0},
        {"tiff-rgba-short-data-200", 200, 200, 4, 8, 2, 8, 0, 0, 0},
        /* one tile as large as the image */
        {"tiff-one-tile-20000", 20000, 20000, 4, 8, 2, 8, 1, 20480, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = tpath("%s.tif", cases[i].name);
        write_hostile_tiff(path, &cases[i]);
        expect_refused(cases[i].name, path, READ_IMAGE, 0);
    }

    /* A valid 16x16 image whose ICC profile tag claims 1 GiB. */
    uint8_t pixels[16 * 16 * 3] = {0};
    tiff_entry e[] = {
        {256, LONG, 1, NULL, NULL, 16},
        {257, LONG, 1, NULL, NULL, 16},
        {258, SHORT, 1, NULL, NULL, 8},
        {259, SHORT, 1, NULL, NULL, 1},
        {262, SHORT, 1, NULL, NULL, 2},
        {273, LONG, 1, NULL, NULL, 8},
        {277, SHORT, 1, NULL, NULL, 3},
        {278, LONG, 1, NULL, NULL, 16},
        {279, LONG, 1, NULL, NULL, sizeof pixels},
        {34675, UNDEFINED, 1, NULL, NULL, 0},
    };
    /* count 1 GiB, the value's offset just past the pixels (in the file) */
    const char *path = tpath("tiff-icc-1gib.tif");
    tiff_file(path, pixels, sizeof pixels, e, (int)(sizeof e / sizeof e[0]));
    size_t n;
    uint8_t *b = read_all(path, &n);
    size_t at = b ? find(b, n, "\x73\x87\x07\x00", 4) : (size_t)-1; /* tag 34675, UNDEFINED */
    CHECK(at != (size_t)-1, "icc tag not found");
    if (at != (size_t)-1) {
        b[at + 4] = 0, b[at + 5] = 0, b[at + 6] = 0, b[at + 7] = 0x40; /* count 2^30 */
        for (int i = 0; i < 4; i++)
            b[at + 8 + i] = (uint8_t)(8 >> (8 * i));
        write_all(path, b, n);
        expect_refused("tiff-icc-1gib", path, READ_IMAGE, 1);
    }
    free(b);
}

static void test_hostile_pngs(void)
{
    struct {
        const char *name;
        uint32_t w, h;
        int interlace;
        uint32_t iccp;
    } cases[] = {
        {"png-100000", 100000, 100000, 0, 0},     {"png-100000-interlaced", 100000, 100000, 1, 0},
        {"png-30000", 30000, 30000, 0, 0},        {"png-1x1e6", 1, 1000000, 0, 0},
        {"png-iccp-2gib", 64, 64, 0, 0x7fffffff},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = tpath("%s.png", cases[i].name);
        write_hostile_png(path, cases[i].w, cases[i].h, cases[i].interlace, cases[i].iccp);
        expect_refused(cases[i].name, path, READ_IMAGE, 0);
    }
}

static void test_hostile_jpegs_exrs(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    struct {
        const char *name;
        unsigned w, h;
    } jpegs[] = {
        {"jpeg-65000", 65000, 65000}, {"jpeg-16000", 16000, 16000}, {"jpeg-65000x1", 65000, 1000}};
    for (size_t i = 0; i < sizeof jpegs / sizeof jpegs[0]; i++) {
        const char *path = tpath("%s.jpg", jpegs[i].name);
        write_hostile_jpeg(ctx, path, jpegs[i].w, jpegs[i].h);
        expect_refused(jpegs[i].name, path, READ_IMAGE, 0);
    }
    struct {
        const char *name;
        int32_t w, h;
    } exrs[] = {
        {"exr-60000", 60000, 60000}, {"exr-20000", 20000, 20000}, {"exr-1x1e8", 1, 100000000}};
    for (size_t i = 0; i < sizeof exrs / sizeof exrs[0]; i++) {
        const char *path = tpath("%s.exr", exrs[i].name);
        write_hostile_exr(ctx, path, exrs[i].w, exrs[i].h);
        expect_refused(exrs[i].name, path, READ_IMAGE, 0);
    }
    lumos_ctx_free(ctx);
}

static void test_hostile_safetensors(void)
{
    const char *path = tpath("st-hlen-1tib.safetensors");
    write_safetensors(path, (uint64_t)1 << 40, "{}", 600);
    expect_refused("st-hlen-1tib", path, READ_WEIGHTS, 0);
    path = tpath("st-hlen-past-end.safetensors");
    write_safetensors(path, 100000, "{}", 600);
    expect_refused("st-hlen-past-end", path, READ_WEIGHTS, 0);
    path = tpath("st-offsets-past-end.safetensors");
    write_safetensors(path, 0,
                      "{\"w\":{\"dtype\":\"F32\",\"shape\":[100000,100000],"
                      "\"data_offsets\":[0,40000000000]}}",
                      600);
    expect_refused("st-offsets-past-end", path, READ_WEIGHTS, 0);
    path = tpath("st-shape-huge.safetensors");
    write_safetensors(path, 0,
                      "{\"w\":{\"dtype\":\"F32\",\"shape\":[4000000000,4000000000,4000000000],"
                      "\"data_offsets\":[0,16]}}",
                      16);
    expect_refused("st-shape-huge", path, READ_WEIGHTS, 0);
    /* Many entries sharing the same bytes: the layout check refuses them. */
    bytes j = {0};
    put(&j, "{", 1);
    for (int i = 0; i < 20; i++) {
        char e[128];
        snprintf(e, sizeof e, "%s\"t%d\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}",
                 i ? "," : "", i);
        put(&j, e, strlen(e));
    }
    put(&j, "}", 2);
    path = tpath("st-overlap.safetensors");
    write_safetensors(path, 0, (const char *)j.b, 16);
    free(j.b);
    expect_refused("st-overlap", path, READ_WEIGHTS, 0);
}

/* ------------------------------------------------------ valid images */

/* PackBits rows: each byte as a run of 1 (a literal) or runs of equal bytes. */
static void packbits(bytes *o, const uint8_t *row, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t run = 1;
        while (i + run < n && run < 128 && row[i + run] == row[i])
            run++;
        if (run >= 2) {
            put8(o, (unsigned)(257 - run)), put8(o, row[i]);
            i += run;
        } else {
            size_t lit = 1;
            while (i + lit < n && lit < 128 &&
                   (i + lit + 1 >= n || row[i + lit] != row[i + lit + 1]))
                lit++;
            put8(o, (unsigned)(lit - 1));
            put(o, row + i, lit);
            i += lit;
        }
    }
}

/* A valid TIFF of w x h, spp samples of bps bits, photometric, written as
 * strips of rps rows (or tiles of tile x tile), PackBits or stored, from
 * the packed rows that sample(x, y, c) gives. */
typedef unsigned (*sample_fn)(uint32_t x, uint32_t y, int c);

static void write_valid_tiff(const char *path, uint32_t w, uint32_t h, int spp, int bps,
                             int photometric, uint32_t rps, uint32_t tile, int packbits_on,
                             sample_fn sample)
{
    const uint32_t bw = tile ? tile : w, bh = tile ? tile : rps;
    const uint32_t across = (w + bw - 1) / bw, down = (h + bh - 1) / bh, n = across * down;
    const size_t rowbytes = ((size_t)bw * spp * bps + 7) / 8;
    uint8_t *row = malloc(rowbytes);
    uint32_t *offsets = malloc(n * sizeof *offsets), *counts = malloc(n * sizeof *counts);
    bytes data = {0};
    for (uint32_t ty = 0; ty < down; ty++)
        for (uint32_t tx = 0; tx < across; tx++) {
            uint32_t k = ty * across + tx;
            offsets[k] = 8 + (uint32_t)data.n;
            size_t before = data.n;
            /* strips stop at the image's last row; tiles are whole */
            uint32_t rows = tile ? bh : (h - ty * bh < bh ? h - ty * bh : bh);
            for (uint32_t r = 0; r < rows; r++) {
                memset(row, 0, rowbytes);
                for (uint32_t c = 0; c < bw; c++) {
                    uint32_t x = tx * bw + c, y = ty * bh + r;
                    for (int s = 0; s < spp; s++) {
                        unsigned v = x < w && y < h ? sample(x, y, s) : 0;
                        size_t bit = ((size_t)c * spp + s) * bps;
                        if (bps == 8)
                            row[bit / 8] = (uint8_t)v;
                        else if (bps == 1)
                            row[bit / 8] |= (uint8_t)((v & 1) << (7 - bit % 8));
                    }
                }
                if (packbits_on)
                    packbits(&data, row, rowbytes);
                else
                    put(&data, row, rowbytes);
            }
            counts[k] = (uint32_t)(data.n - before);
        }
    uint32_t bpsv[4] = {(uint32_t)bps, (uint32_t)bps, (uint32_t)bps, (uint32_t)bps};
    tiff_entry e[16];
    int ne = 0;
    e[ne++] = (tiff_entry){256, LONG, 1, NULL, NULL, w};
    e[ne++] = (tiff_entry){257, LONG, 1, NULL, NULL, h};
    e[ne++] = (tiff_entry){258, SHORT, (uint32_t)spp, bpsv, NULL, 0};
    e[ne++] = (tiff_entry){259, SHORT, 1, NULL, NULL, packbits_on ? 32773u : 1u};
    e[ne++] = (tiff_entry){262, SHORT, 1, NULL, NULL, (uint32_t)photometric};
    if (!tile) e[ne++] = (tiff_entry){273, LONG, n, offsets, NULL, offsets[0]};
    e[ne++] = (tiff_entry){277, SHORT, 1, NULL, NULL, (uint32_t)spp};
    if (!tile) {
        e[ne++] = (tiff_entry){278, LONG, 1, NULL, NULL, rps};
        e[ne++] = (tiff_entry){279, LONG, n, counts, NULL, counts[0]};
    }
    e[ne++] = (tiff_entry){284, SHORT, 1, NULL, NULL, 1};
    if (tile) {
        e[ne++] = (tiff_entry){322, LONG, 1, NULL, NULL, tile};
        e[ne++] = (tiff_entry){323, LONG, 1, NULL, NULL, tile};
        e[ne++] = (tiff_entry){324, LONG, n, offsets, NULL, offsets[0]};
        e[ne++] = (tiff_entry){325, LONG, n, counts, NULL, counts[0]};
    }
    tiff_file(path, data.b, data.n, e, ne);
    free(data.b);
    free(row);
    free(offsets);
    free(counts);
}

static unsigned bilevel_px(uint32_t x, uint32_t y, int c)
{
    (void)c;
    return ((x / 8) ^ (y / 3) ^ (x * 7 + y) / 61) & 1;
}
static unsigned cmyk_px(uint32_t x, uint32_t y, int c)
{
    return (x * 37 + y * 11 + (unsigned)c * 71) & 255;
}
static unsigned rgb_px(uint32_t x, uint32_t y, int c)
{
    return ((x / 64 + y / 64 + (unsigned)c) & 1) ? (x + (unsigned)c * 50) & 255 : (y * 3) & 255;
}

/* What libtiff's RGBA interface makes of a CMYK sample (putRGBcontig8bitCMYKtile). */
static unsigned cmyk_to(uint32_t x, uint32_t y, int c)
{
    unsigned k = 255 - cmyk_px(x, y, 3);
    return k * (255 - cmyk_px(x, y, c)) / 255;
}

/* Reads path with lumos and compares it with what libtiff's whole-image
 * RGBA interface gives (what lumos's RGBA path did before it read in
 * bands), and, if want is given, with want(x, y, c). */
static void expect_pixels(lumos_ctx *ctx, const char *name, const char *path, uint32_t w,
                          uint32_t h, int channels, unsigned (*want)(uint32_t, uint32_t, int))
{
    lumos_image im;
    int st = lumos_image_read(ctx, path, &im);
    CHECK(st == LUMOS_OK, "%s: %s", name, lumos_last_error(ctx));
    if (st) return;
    CHECK(im.width == (int)w && im.height == (int)h && im.channels == channels && im.bits == 8,
          "%s: %dx%d, %d channels, %d bits", name, im.width, im.height, im.channels, im.bits);
    uint32_t *ref = malloc((size_t)w * h * 4);
    TIFF *t = TIFFOpen(path, "r");
    int ok = ref && t && TIFFReadRGBAImageOriented(t, w, h, ref, ORIENTATION_TOPLEFT, 0);
    CHECK(ok, "%s: libtiff cannot read it", name);
    if (t) TIFFClose(t);
    long wrong = 0, wrong_ref = 0;
    for (uint32_t y = 0; ok && y < h && im.width == (int)w; y++)
        for (uint32_t x = 0; x < w; x++)
            for (int c = 0; c < channels; c++) {
                unsigned got = ((const uint8_t *)im.data)[y * im.stride + (size_t)x * channels + c];
                uint32_t px = ref[(size_t)y * w + x];
                unsigned r = c == 0 ? TIFFGetR(px) : c == 1 ? TIFFGetG(px) : TIFFGetB(px);
                if (got != r && wrong_ref++ < 3)
                    fprintf(stderr, "%s: (%u, %u, %d) = %u, libtiff %u\n", name, x, y, c, got, r);
                if (want && got != want(x, y, c) && wrong++ < 3)
                    fprintf(stderr, "%s: (%u, %u, %d) = %u, want %u\n", name, x, y, c, got,
                            want(x, y, c));
            }
    CHECK(wrong_ref == 0 && wrong == 0,
          "%s: %ld samples differ from libtiff's, %ld from the "
          "expected",
          name, wrong_ref, wrong);
    printf("%-28s %7ld B  %ux%u read, every sample as expected\n", name, file_size(path), w, h);
    free(ref);
    lumos_image_free(&im);
}

static unsigned bilevel_white(uint32_t x, uint32_t y, int c)
{
    return bilevel_px(x, y, c) ? 255 : 0;
}

static void test_valid_images(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    /* The RGBA path, banded: strips of 5 rows, edge tiles, one strip
     * larger than a band (split in pieces), a tall one of small strips. */
    const char *p = tpath("bilevel-strips.tif");
    write_valid_tiff(p, 37, 29, 1, 1, 1, 5, 0, 0, bilevel_px);
    expect_pixels(ctx, "valid-bilevel-strips", p, 37, 29, 1, bilevel_white);
    p = tpath("cmyk-strips.tif");
    write_valid_tiff(p, 13, 11, 4, 8, 5, 4, 0, 1, cmyk_px);
    expect_pixels(ctx, "valid-cmyk-strips", p, 13, 11, 3, cmyk_to);
    p = tpath("cmyk-tiles.tif");
    write_valid_tiff(p, 40, 35, 4, 8, 5, 0, 16, 0, cmyk_px);
    expect_pixels(ctx, "valid-cmyk-tiles", p, 40, 35, 3, cmyk_to);
    p = tpath("bilevel-one-strip.tif");
    write_valid_tiff(p, 4100, 4500, 1, 1, 1, 4500, 0, 1, bilevel_px); /* 74 MB of RGBA */
    expect_pixels(ctx, "valid-bilevel-one-strip", p, 4100, 4500, 1, bilevel_white);
    p = tpath("bilevel-many-strips.tif");
    write_valid_tiff(p, 4100, 4500, 1, 1, 1, 7, 0, 1, bilevel_px);
    expect_pixels(ctx, "valid-bilevel-many-strips", p, 4100, 4500, 1, bilevel_white);
    /* The direct path: a PackBits strip of 18 MB, read row by row. */
    p = tpath("rgb-one-strip.tif");
    write_valid_tiff(p, 2500, 2400, 3, 8, 2, 2400, 0, 1, rgb_px);
    expect_pixels(ctx, "valid-rgb-one-strip", p, 2500, 2400, 3, rgb_px);

    /* Every format, written by lumos, reads back; lower limits refuse it. */
    lumos_image im;
    if (lumos_image_alloc(&im, 640, 480, 3, 8)) exit(1);
    for (size_t i = 0; i < (size_t)640 * 480 * 3; i++)
        ((uint8_t *)im.data)[i] = (uint8_t)(i * 7 / 5);
    lumos_image fl;
    if (lumos_image_alloc(&fl, 640, 480, 3, 32)) exit(1);
    fl.space = LUMOS_SPACE_LINEAR_SRGB;
    for (size_t i = 0; i < (size_t)640 * 480 * 3; i++)
        ((float *)fl.data)[i] = (float)(i % 977) / 977.f;
    static const char *const names[] = {"valid.tif", "valid.png", "valid.jpg", "valid.exr",
                                        "valid-cmyk.tif"};
    for (int k = 0; k < 5; k++) {
        const char *path = tpath("%s", names[k]);
        if (k < 4)
            write_or_die(ctx, k == 3 ? &fl : &im, path);
        else
            write_valid_tiff(path, 640, 480, 4, 8, 5, 16, 0, 1, cmyk_px);
        outcome o = isolated(path, READ_IMAGE, 0, 0);
        report(names[k], file_size(path), &o);
        CHECK(o.status == LUMOS_OK, "%s: %s", names[k], o.msg);
        /* 640 x 480 = 307200 pixels */
        o = isolated(path, READ_IMAGE, 307199, 0);
        report("  max_pixels 307199", file_size(path), &o);
        CHECK(o.status == LUMOS_E_NOMEM && contains(o.msg, path) && contains(o.msg, "307199") &&
                  contains(o.msg, "640x480") && contains(o.msg, "lumos_ctx_set_max_pixels"),
              "%s: pixel limit: %d %s", names[k], o.status, o.msg);
        o = isolated(path, READ_IMAGE, 307200, 0);
        CHECK(o.status == LUMOS_OK, "%s: at the pixel limit: %s", names[k], o.msg);
        o = isolated(path, READ_IMAGE, 0, 100000);
        report("  max_alloc 100000", file_size(path), &o);
        CHECK(o.status == LUMOS_E_NOMEM && contains(o.msg, path) && contains(o.msg, "100000") &&
                  contains(o.msg, "lumos_ctx_set_max_alloc"),
              "%s: memory limit: %d %s", names[k], o.status, o.msg);
    }
    lumos_image_free(&im);
    lumos_image_free(&fl);

    /* The setters and getters. */
    CHECK(lumos_ctx_max_pixels(ctx) == LUMOS_DEFAULT_MAX_PIXELS, "default pixels %llu",
          (unsigned long long)lumos_ctx_max_pixels(ctx));
    uint64_t mem = lumos_ctx_max_alloc(ctx);
    CHECK(mem > ((uint64_t)64 << 20), "default memory limit %llu", (unsigned long long)mem);
    lumos_ctx_set_max_pixels(ctx, 12345);
    lumos_ctx_set_max_alloc(ctx, 67890);
    CHECK(lumos_ctx_max_pixels(ctx) == 12345 && lumos_ctx_max_alloc(ctx) == 67890, "set: %llu %llu",
          (unsigned long long)lumos_ctx_max_pixels(ctx),
          (unsigned long long)lumos_ctx_max_alloc(ctx));
    lumos_ctx_set_max_pixels(ctx, 0);
    lumos_ctx_set_max_alloc(ctx, 0);
    CHECK(lumos_ctx_max_pixels(ctx) == LUMOS_DEFAULT_MAX_PIXELS && lumos_ctx_max_alloc(ctx) == mem,
          "reset");
    CHECK(lumos_ctx_max_pixels(NULL) == LUMOS_DEFAULT_MAX_PIXELS, "NULL context");

    /* Weights over the memory limit. */
    const char *st = tpath("valid.safetensors");
    write_safetensors(st, 0, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                      16);
    outcome o = isolated(st, READ_WEIGHTS, 0, 0);
    CHECK(o.status == LUMOS_OK, "valid.safetensors: %s", o.msg);
    o = isolated(st, READ_WEIGHTS, 0, 40);
    report("valid.safetensors max 40 B", file_size(st), &o);
    CHECK(o.status == LUMOS_E_NOMEM && contains(o.msg, st) &&
              contains(o.msg, "lumos_ctx_set_max_alloc"),
          "safetensors memory limit: %d %s", o.status, o.msg);
    lumos_ctx_free(ctx);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/lumos-hostile-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_hostile_tiffs();
    test_hostile_pngs();
    test_hostile_jpegs_exrs();
    test_hostile_safetensors();
    test_valid_images();
    rm_rf(tmpdir);
    if (failures) fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
