/* checkpoint.c — lumos__checkpoint_write/read: the layout is in checkpoint.h.
 *
 * Values are packed byte by byte into little-endian, so the file is the same
 * on any host and no struct padding reaches it. The writer streams sections
 * through one buffer; the reader loads the file whole, checks every byte of
 * it, and only then copies into the caller's buffers. */
#include "train/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic.h"
#include "core/context.h"

static const char magic[8] = {'L', 'U', 'M', 'O', 'S', 'C', 'K', 'P'};

/* ---------------------------------------------------------------- CRC-32 */

uint32_t lumos__crc32(uint32_t crc, const void *data, size_t size)
{
    /* Reflected polynomial 0xEDB88320, four bits at a time: a 16-entry
     * constant table instead of a 256-entry one built at run time. */
    static const uint32_t t[16] = {
        0x00000000, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4,
        0x4DB26158, 0x5005713C, 0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C,
        0x9B64C2B0, 0x86D3D2D4, 0xA00AE278, 0xBDBDF21C};
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < size; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ t[crc & 15];
        crc = (crc >> 4) ^ t[crc & 15];
    }
    return ~crc;
}

/* ------------------------------------------------------ little-endian I/O */

static void put32(unsigned char *b, uint32_t v)
{
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *b, uint64_t v)
{
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *b)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = v << 8 | b[i];
    return v;
}
static uint64_t get64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

/* --------------------------------------------------------------- sections */

enum { T_BYTES = 1, T_U64 = 8, T_F32 = 4 }; /* the value is the element size */
enum { F_NET, F_META, F_RNG, F_CURSOR, F_STEP, F_PARAMS, F_M, F_V };

typedef struct section {
    char name[LUMOS__CKP_NAME_SIZE];
    int type, field;
    lumos__adam_group *g; /* F_STEP..F_V */
    size_t count;         /* elements expected (meta: its length) */
    /* read side */
    const unsigned char *payload;
    uint64_t size;
} section;

typedef struct layout {
    section *s;
    size_t n;
} layout;

/* The sections ck calls for, in file order. */
static int build_layout(lumos_ctx *ctx, const char *path, const lumos__checkpoint *ck, layout *L)
{
    size_t groups = ck->adam ? ck->adam->count : 0;
    L->n = 4 + 4 * groups;
    L->s = calloc(L->n, sizeof *L->s);
    if (!L->s) return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
    section *s = L->s;
    strcpy(s[0].name, "net");
    s[0].type = T_BYTES, s[0].field = F_NET, s[0].count = strlen(ck->net);
    strcpy(s[1].name, "meta");
    s[1].type = T_BYTES, s[1].field = F_META, s[1].count = ck->meta ? strlen(ck->meta) : 0;
    strcpy(s[2].name, "rng");
    s[2].type = T_U64, s[2].field = F_RNG, s[2].count = ck->n_rng;
    strcpy(s[3].name, "cursor");
    s[3].type = T_U64, s[3].field = F_CURSOR, s[3].count = ck->n_cursor;
    static const char *const suffix[4] = {"step", "params", "m", "v"};
    for (size_t i = 0; i < groups; i++) {
        lumos__adam_group *g = &ck->adam->groups[i];
        for (int k = 0; k < 4; k++) {
            section *x = &s[4 + 4 * i + (size_t)k];
            snprintf(x->name, sizeof x->name, "adam.%s.%s", g->name, suffix[k]);
            x->type = k == 0 ? T_U64 : T_F32;
            x->field = F_STEP + k;
            x->g = g;
            x->count = k == 0 ? 1 : g->n;
        }
    }
    return LUMOS_OK;
}

/* The caller's data behind a section (NULL: moments not allocated = zeros). */
static const void *section_data(const section *x, const lumos__checkpoint *ck)
{
    switch (x->field) {
    case F_NET: return ck->net;
    case F_META: return ck->meta;
    case F_RNG: return ck->rng;
    case F_CURSOR: return ck->cursor;
    case F_STEP: return &x->g->step;
    case F_PARAMS: return x->g->params;
    case F_M: return x->g->m;
    default: return x->g->v;
    }
}

/* Encodes elements [first, first + k) of x into buf (k * element size). */
static void encode(const section *x, const void *data, size_t first, size_t k, unsigned char *buf)
{
    if (!data) {
        memset(buf, 0, k * (size_t)x->type);
        return;
    }
    if (x->type == T_BYTES) {
        memcpy(buf, (const char *)data + first, k);
    } else if (x->type == T_U64) {
        const uint64_t *u = (const uint64_t *)data + first;
        for (size_t i = 0; i < k; i++) put64(buf + 8 * i, u[i]);
    } else {
        const float *f = (const float *)data + first;
        for (size_t i = 0; i < k; i++) {
            uint32_t bits;
            memcpy(&bits, &f[i], 4);
            put32(buf + 4 * i, bits);
        }
    }
}

/* ------------------------------------------------------------------ write */

enum { WBUF = 1 << 16 };

typedef struct writer {
    int fd;
    unsigned char *buf; /* WBUF bytes */
    int err;            /* first errno, 0 if none */
} writer;

static void write_all(writer *w, const unsigned char *p, size_t n)
{
    while (n && !w->err) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            w->err = k < 0 ? errno : ENOSPC;
            return;
        }
        p += k;
        n -= (size_t)k;
    }
}

/* A section: its CRC in a first pass over the data, then header and
 * payload, so nothing needs patching afterwards. */
static void write_section(writer *w, const section *x, const lumos__checkpoint *ck)
{
    const void *data = section_data(x, ck);
    size_t per = WBUF / (size_t)x->type;
    uint32_t crc = 0;
    for (size_t i = 0; i < x->count; i += per) {
        size_t k = x->count - i < per ? x->count - i : per;
        encode(x, data, i, k, w->buf);
        crc = lumos__crc32(crc, w->buf, k * (size_t)x->type);
    }
    unsigned char h[LUMOS__CKP_SECTION_HEADER_SIZE] = {0};
    memcpy(h, x->name, strlen(x->name));
    put64(h + 64, (uint64_t)x->count * (uint64_t)x->type);
    put32(h + 72, crc);
    put32(h + 76, lumos__crc32(0, h, 76));
    write_all(w, h, sizeof h);
    for (size_t i = 0; i < x->count && !w->err; i += per) {
        size_t k = x->count - i < per ? x->count - i : per;
        encode(x, data, i, k, w->buf);
        write_all(w, w->buf, k * (size_t)x->type);
    }
}

static int check_args(lumos_ctx *ctx, const char *path, const lumos__checkpoint *ck)
{
    if (!path || !*path || !ck || !ck->net || !*ck->net)
        return lumos__fail(ctx, LUMOS_E_ARG, "checkpoint: no path, checkpoint or network name");
    if (strlen(ck->net) >= LUMOS__CKP_NAME_SIZE)
        return lumos__fail(ctx, LUMOS_E_ARG, "%s: network name '%s' too long", path, ck->net);
    if ((ck->n_rng && !ck->rng) || (ck->n_cursor && !ck->cursor))
        return lumos__fail(ctx, LUMOS_E_ARG, "%s: RNG or cursor words without a buffer", path);
    if (ck->n_rng > UINT32_MAX || ck->n_cursor > UINT32_MAX ||
        (ck->adam && ck->adam->count > (UINT32_MAX - 4) / 4))
        return lumos__fail(ctx, LUMOS_E_ARG, "%s: too many RNG/cursor words or groups", path);
    return LUMOS_OK;
}

int lumos__checkpoint_write(lumos_ctx *ctx, const char *path, const lumos__checkpoint *ck)
{
    int st = check_args(ctx, path, ck);
    if (st) return st;
    if (ck->meta && strlen(ck->meta) > LUMOS__CKP_META_MAX)
        return lumos__fail(ctx, LUMOS_E_ARG, "%s: metadata longer than %d bytes", path,
                           LUMOS__CKP_META_MAX);
    layout L = {0};
    writer w = {-1, NULL, 0};
    lumos__atomic_file f = {.fd = -1};
    w.buf = malloc(WBUF);
    if (!w.buf) {
        st = lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
        goto out;
    }
    if ((st = build_layout(ctx, path, ck, &L))) goto out;
    if ((st = lumos__atomic_open(ctx, path, &f))) goto out;
    w.fd = f.fd;

    /* A zero header now; the real one once every section is down. */
    unsigned char h[LUMOS__CKP_HEADER_SIZE] = {0};
    write_all(&w, h, sizeof h);
    uint64_t size = sizeof h;
    for (size_t i = 0; i < L.n && !w.err; i++) {
        write_section(&w, &L.s[i], ck);
        size += LUMOS__CKP_SECTION_HEADER_SIZE + (uint64_t)L.s[i].count * (uint64_t)L.s[i].type;
    }
    memcpy(h, magic, 8);
    put32(h + 8, LUMOS__CKP_VERSION);
    put64(h + 16, ck->step);
    put64(h + 24, size);
    put32(h + 32, (uint32_t)L.n);
    put32(h + 36, (uint32_t)(ck->adam ? ck->adam->count : 0));
    put32(h + 40, (uint32_t)ck->n_rng);
    put32(h + 44, (uint32_t)ck->n_cursor);
    put32(h + 48, LUMOS__CKP_HEADER_SIZE);
    put32(h + 60, lumos__crc32(0, h, 60));
    if (!w.err && lseek(w.fd, 0, SEEK_SET) != 0) w.err = errno;
    write_all(&w, h, sizeof h);
    if (w.err) st = lumos__fail_errno(ctx, LUMOS_E_IO, w.err, "%s: cannot write the checkpoint", path);
    /* fsync, close, and rename over the previous checkpoint (or discard). */
    st = lumos__atomic_close(ctx, &f, st, 1);
out:
    free(L.s);
    free(w.buf);
    return st;
}

/* ------------------------------------------------------------------- read */

#define BAD(...) (st = lumos__fail(ctx, LUMOS_E_FORMAT, __VA_ARGS__))

/* Reads the whole of fd (at most limit + 1 bytes, so a larger file shows as
 * larger), into *out, *n bytes. */
static int slurp(lumos_ctx *ctx, const char *path, int fd, uint64_t limit, unsigned char **out,
                 size_t *n)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0) return lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", path);
    if (S_ISDIR(sb.st_mode)) return lumos__fail_errno(ctx, LUMOS_E_IO, EISDIR, "%s", path);
    uint64_t want = sb.st_size > 0 && (uint64_t)sb.st_size <= limit ? (uint64_t)sb.st_size
                                                                     : limit + 1;
    if (want > SIZE_MAX - 1) want = SIZE_MAX - 1;
    if (sb.st_size > 0 && (uint64_t)sb.st_size > limit)
        return lumos__fail(ctx, LUMOS_E_FORMAT,
                           "%s: %" PRIu64 " bytes, more than a checkpoint of this trainer can "
                           "hold (%" PRIu64 ")",
                           path, (uint64_t)sb.st_size, limit);
    unsigned char *b = malloc((size_t)want + 1);
    if (!b) return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
    size_t got = 0;
    while (got < want) {
        ssize_t k = read(fd, b + got, (size_t)want - got);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            int err = errno;
            free(b);
            return lumos__fail_errno(ctx, LUMOS_E_IO, err, "%s", path);
        }
        if (k == 0) break;
        got += (size_t)k;
    }
    *out = b;
    *n = got;
    return LUMOS_OK;
}

static void decode(const section *x, void *dst)
{
    const unsigned char *p = x->payload;
    if (x->type == T_U64) {
        uint64_t *u = dst;
        for (size_t i = 0; i < x->count; i++) u[i] = get64(p + 8 * i);
    } else {
        float *f = dst;
        for (size_t i = 0; i < x->count; i++) {
            uint32_t bits = get32(p + 4 * i);
            memcpy(&f[i], &bits, 4);
        }
    }
}

/* Every check on the loaded file b (n bytes) against the layout L. */
static int validate(lumos_ctx *ctx, const char *path, const lumos__checkpoint *ck,
                    const unsigned char *b, size_t n, layout *L, uint64_t *step)
{
    int st = LUMOS_OK;
    if (n == 0) return BAD("%s: empty file, not a lumos checkpoint", path);
    if (memcmp(b, magic, n < 8 ? n : 8))
        return BAD("%s: not a lumos checkpoint (no \"LUMOSCKP\" magic)", path);
    /* The version before the rest: another version may lay the header out
     * differently. */
    if (n >= 12 && get32(b + 8) != LUMOS__CKP_VERSION)
        return BAD("%s: checkpoint format version %" PRIu32 ", this build reads version %d", path,
                   get32(b + 8), LUMOS__CKP_VERSION);
    if (n < LUMOS__CKP_HEADER_SIZE)
        return BAD("%s: truncated: %zu bytes, less than the %d-byte header", path, n,
                   LUMOS__CKP_HEADER_SIZE);
    if (get32(b + 60) != lumos__crc32(0, b, 60))
        return BAD("%s: header CRC mismatch: the header is damaged", path);
    if (get32(b + 48) != LUMOS__CKP_HEADER_SIZE)
        return BAD("%s: header size %" PRIu32 ", expected %d", path, get32(b + 48),
                   LUMOS__CKP_HEADER_SIZE);
    uint64_t size = get64(b + 24);
    if (size > n)
        return BAD("%s: truncated: %zu of %" PRIu64 " bytes", path, n, size);
    if (size < n)
        return BAD("%s: %zu bytes, %zu more than the checkpoint's %" PRIu64 " (trailing data)",
                   path, n, n - (size_t)size, size);
    uint32_t sections = get32(b + 32), groups = get32(b + 36), nrng = get32(b + 40),
             ncur = get32(b + 44);
    size_t want_groups = ck->adam ? ck->adam->count : 0;
    /* The network first: another one's checkpoint differs in every size. */
    const unsigned char *first = b + LUMOS__CKP_HEADER_SIZE;
    if (sections && n - LUMOS__CKP_HEADER_SIZE >= LUMOS__CKP_SECTION_HEADER_SIZE &&
        get32(first + 76) == lumos__crc32(0, first, 76) && !strcmp((const char *)first, "net")) {
        uint64_t len = get64(first + 64);
        const char *name = (const char *)first + LUMOS__CKP_SECTION_HEADER_SIZE;
        /* a damaged name is the section loop's to report */
        if (len < LUMOS__CKP_NAME_SIZE &&
            len <= n - LUMOS__CKP_HEADER_SIZE - LUMOS__CKP_SECTION_HEADER_SIZE &&
            get32(first + 72) == lumos__crc32(0, name, (size_t)len) &&
            (len != strlen(ck->net) || memcmp(name, ck->net, (size_t)len)))
            return lumos__fail(ctx, LUMOS_E_ARG, "%s: a checkpoint of the %.*s network, not %s",
                               path, (int)len, name, ck->net);
    }
    if (groups != want_groups)
        return BAD("%s: %" PRIu32 " Adam groups, this trainer has %zu", path, groups,
                   want_groups);
    if (nrng != ck->n_rng || ncur != ck->n_cursor)
        return BAD("%s: %" PRIu32 " RNG and %" PRIu32 " cursor words, this trainer has %zu and "
                   "%zu",
                   path, nrng, ncur, ck->n_rng, ck->n_cursor);

    size_t off = LUMOS__CKP_HEADER_SIZE;
    for (uint32_t i = 0; i < sections; i++) {
        if (n - off < LUMOS__CKP_SECTION_HEADER_SIZE)
            return BAD("%s: section %" PRIu32 " of %" PRIu32 " runs past the end of the file",
                       path, i + 1, sections);
        const unsigned char *h = b + off;
        if (get32(h + 76) != lumos__crc32(0, h, 76))
            return BAD("%s: section %" PRIu32 ": header CRC mismatch (damaged)", path, i + 1);
        if (!memchr(h, 0, LUMOS__CKP_NAME_SIZE) || !h[0])
            return BAD("%s: section %" PRIu32 ": no name", path, i + 1);
        const char *name = (const char *)h;
        uint64_t psize = get64(h + 64);
        off += LUMOS__CKP_SECTION_HEADER_SIZE;
        if (psize > n - off)
            return BAD("%s: section \"%s\": %" PRIu64 " bytes, past the end of the file", path,
                       name, psize);
        if (get32(h + 72) != lumos__crc32(0, b + off, (size_t)psize))
            return BAD("%s: section \"%s\": CRC mismatch: the data is damaged", path, name);
        section *x = NULL;
        for (size_t k = 0; k < L->n && !x; k++)
            if (!strcmp(L->s[k].name, name)) x = &L->s[k];
        if (!x) return BAD("%s: unexpected section \"%s\" (not part of this trainer)", path, name);
        if (x->payload) return BAD("%s: section \"%s\" appears twice", path, name);
        if (x->field == F_NET) {
            if (psize != x->count || memcmp(b + off, ck->net, x->count))
                return BAD("%s: section \"net\": not this trainer's network (%s)", path, ck->net);
        } else if (x->field == F_META) {
            if (psize > LUMOS__CKP_META_MAX || memchr(b + off, 0, (size_t)psize))
                return BAD("%s: section \"meta\": %" PRIu64 " bytes, not a text of at most %d",
                           path, psize, LUMOS__CKP_META_MAX);
            x->count = (size_t)psize;
        } else if (psize != (uint64_t)x->count * (uint64_t)x->type) {
            return BAD("%s: section \"%s\": %" PRIu64 " bytes, this trainer expects %" PRIu64
                       " (%zu %s)",
                       path, name, psize, (uint64_t)x->count * (uint64_t)x->type, x->count,
                       x->type == T_U64 ? "u64s" : "floats");
        }
        x->payload = b + off;
        x->size = psize;
        off += (size_t)psize;
    }
    if (off != n)
        return BAD("%s: %zu bytes after the last of %" PRIu32 " sections", path, n - off,
                   sections);
    for (size_t k = 0; k < L->n; k++)
        if (!L->s[k].payload) return BAD("%s: missing section \"%s\"", path, L->s[k].name);
    *step = get64(b + 16);
    return st;
}

int lumos__checkpoint_read(lumos_ctx *ctx, const char *path, lumos__checkpoint *ck)
{
    int st = check_args(ctx, path, ck);
    if (st) return st;
    layout L = {0};
    if ((st = build_layout(ctx, path, ck, &L))) return st;
    /* The largest file this trainer can read, so a huge stray file is
     * refused before it is loaded. */
    uint64_t limit = LUMOS__CKP_HEADER_SIZE + LUMOS__CKP_META_MAX;
    for (size_t k = 0; k < L.n; k++)
        limit += LUMOS__CKP_SECTION_HEADER_SIZE + (uint64_t)L.s[k].count * (uint64_t)L.s[k].type;

    unsigned char *b = NULL;
    size_t n = 0;
    char *meta = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", path);
        goto out;
    }
    st = slurp(ctx, path, fd, limit, &b, &n);
    close(fd);
    uint64_t step = 0;
    if (!st) st = validate(ctx, path, ck, b, n, &L, &step);
    if (st) goto out;

    /* Everything that can fail before anything of the caller's changes. */
    meta = malloc(L.s[1].count + 1);
    if (!meta) {
        st = lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
        goto out;
    }
    memcpy(meta, L.s[1].payload, L.s[1].count);
    meta[L.s[1].count] = '\0';
    for (size_t i = 0; ck->adam && i < ck->adam->count; i++)
        if ((st = lumos__adam_alloc_state(ctx, &ck->adam->groups[i]))) goto out;

    for (size_t k = 2; k < L.n; k++) {
        section *x = &L.s[k];
        switch (x->field) {
        case F_RNG: decode(x, ck->rng); break;
        case F_CURSOR: decode(x, ck->cursor); break;
        case F_STEP: decode(x, &x->g->step); break;
        case F_PARAMS: decode(x, x->g->params); break;
        case F_M: decode(x, x->g->m); break;
        default: decode(x, x->g->v); break;
        }
    }
    ck->step = step;
    ck->meta = meta;
    meta = NULL;
out:
    free(meta);
    free(b);
    free(L.s);
    return st;
}
