/* weights.c — safetensors files -> float32 tensors (weights.h).
 *
 * The whole file is read, its JSON header parsed with Jansson and every entry
 * validated before anything is kept: a file either opens completely or not at
 * all. The tensors are then copied (F32) or converted (F16, BF16) into one
 * owned, 64-byte aligned float pool, each tensor starting on a 64-byte
 * boundary, so the file's own alignment does not matter. The file's bytes are
 * not kept. No global state: two contexts may open files at once.
 *
 * Byte order: the header length and the 16-bit values are assembled byte by
 * byte, but F32 data is copied as is, which assumes a little-endian host with
 * IEEE-754 floats (x86-64, AArch64); a big-endian build stops below. */
#include "io/weights.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic.h"
#include "core/context.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "io/weights.c copies F32 tensor data as is: it needs a little-endian host"
#endif

#define MAX_HEADER 100000000u /* bytes; the reference reader's limit ("100 MB") */
#define ALIGN_FLOATS 16       /* each tensor starts on a 64-byte boundary */

/* ----------------------------------------------------------------- dtypes */

enum kind { K_F32, K_F16, K_BF16, K_OTHER_FLOAT, K_NOT_FLOAT };

typedef struct dtype_info {
    const char *name;
    unsigned bits; /* per element; F4 and F6 pack below a byte */
    enum kind kind;
} dtype_info;

/* Every dtype safetensors defines: the unsupported ones are still needed to
 * validate a file's layout before saying that it cannot be used. */
static const dtype_info dtypes[] = {
    {"F32", 32, K_F32},           {"F16", 16, K_F16},           {"BF16", 16, K_BF16},
    {"F64", 64, K_OTHER_FLOAT},   {"F8_E5M2", 8, K_OTHER_FLOAT}, {"F8_E4M3", 8, K_OTHER_FLOAT},
    {"F8_E8M0", 8, K_OTHER_FLOAT}, {"F6_E2M3", 6, K_OTHER_FLOAT}, {"F6_E3M2", 6, K_OTHER_FLOAT},
    {"F4", 4, K_OTHER_FLOAT},     {"C64", 64, K_NOT_FLOAT},     {"BOOL", 8, K_NOT_FLOAT},
    {"U8", 8, K_NOT_FLOAT},       {"I8", 8, K_NOT_FLOAT},       {"U16", 16, K_NOT_FLOAT},
    {"I16", 16, K_NOT_FLOAT},     {"U32", 32, K_NOT_FLOAT},     {"I32", 32, K_NOT_FLOAT},
    {"U64", 64, K_NOT_FLOAT},     {"I64", 64, K_NOT_FLOAT},
};

static const dtype_info *find_dtype(const char *name)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dtypes[i].name, name) == 0) return &dtypes[i];
    return NULL;
}

/* IEEE half -> float, exactly (every half is a float): subnormals are
 * renormalised, infinities kept, NaN payloads kept. */
static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (man << 13); /* bias 15 -> 127 */
    } else if (man == 0) {
        bits = sign;
    } else { /* man·2^-24: shift the leading 1 up to the implicit bit */
        uint32_t shift = 0;
        while (!(man & 0x400u)) {
            man <<= 1;
            shift++;
        }
        bits = sign | ((113u - shift) << 23) | ((man & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* bfloat16 is the top half of a float32. */
static float bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ---------------------------------------------------------------- objects */

typedef struct tensor {
    char *name;
    int ndim;
    int64_t *shape; /* ndim dims (NULL for a scalar) */
    size_t count;   /* elements */
    size_t offset;  /* first float in the pool */
} tensor;

struct lumos__weights {
    char *file;  /* for messages */
    size_t n;
    tensor *t;   /* sorted by name (strcmp) */
    float *pool;
    json_t *meta; /* the __metadata__ object of strings, or NULL */
};

/* One header entry while the header is checked. */
typedef struct entry {
    const char *name; /* the JSON key, owned by the parsed header */
    const dtype_info *dtype;
    int ndim;
    int64_t *shape;
    uint64_t count, begin, end;
    size_t slot; /* its index in the name-sorted tensors */
} entry;

static char *copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c) memcpy(c, s, n);
    return c;
}

/* "[12,4,3,3]" (cut short with "...]" when it does not fit). */
static const char *format_shape(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t n = 0;
    buf[n++] = '[';
    for (int i = 0; i < ndim; i++) {
        char dim[24];
        int len = snprintf(dim, sizeof dim, "%s%" PRId64, i ? "," : "", shape[i]);
        if (len < 0 || n + (size_t)len + 5 > size) {
            memcpy(buf + n, "...", 3);
            n += 3;
            break;
        }
        memcpy(buf + n, dim, (size_t)len);
        n += (size_t)len;
    }
    buf[n++] = ']';
    buf[n] = '\0';
    return buf;
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}

static int is_count(const json_t *v) { return json_is_integer(v) && json_integer_value(v) >= 0; }

/* ------------------------------------------------------------- validation */

static int check_metadata(lumos_ctx *ctx, const char *file, json_t *meta)
{
    if (json_is_null(meta)) return LUMOS_OK; /* the reference reader takes null as "none" */
    if (!json_is_object(meta))
        return lumos__fail(ctx, LUMOS_E_FORMAT, "%s: __metadata__ is %s, not an object of strings",
                           file, json_type_name(meta));
    const char *key;
    json_t *value;
    json_object_foreach(meta, key, value) {
        if (!json_is_string(value))
            return lumos__fail(ctx, LUMOS_E_FORMAT,
                               "%s: __metadata__ value '%s' is %s, not a string", file, key,
                               json_type_name(value));
    }
    return LUMOS_OK;
}

/* Checks one tensor entry on its own: types, dtype, shape, offsets inside
 * the data section and a byte size that matches shape and dtype. */
static int check_entry(lumos_ctx *ctx, const char *file, const char *name, json_t *v,
                       uint64_t data_size, entry *e)
{
    e->name = name;
    if (!json_is_object(v))
        return lumos__fail(ctx, LUMOS_E_FORMAT, "%s: %s: the entry is %s, not an object", file,
                           name, json_type_name(v));
    json_t *jd = json_object_get(v, "dtype");
    json_t *js = json_object_get(v, "shape");
    json_t *jo = json_object_get(v, "data_offsets");
    if (!jd) return lumos__fail(ctx, LUMOS_E_FORMAT, "%s: %s: no \"dtype\"", file, name);
    if (!js) return lumos__fail(ctx, LUMOS_E_FORMAT, "%s: %s: no \"shape\"", file, name);
    if (!jo) return lumos__fail(ctx, LUMOS_E_FORMAT, "%s: %s: no \"data_offsets\"", file, name);

    if (!json_is_string(jd))
        return lumos__fail(ctx, LUMOS_E_FORMAT, "%s: %s: \"dtype\" is %s, not a string", file, name,
                           json_type_name(jd));
    e->dtype = find_dtype(json_string_value(jd));
    if (!e->dtype)
        return lumos__fail(ctx, LUMOS_E_FORMAT, "%s: %s: unknown dtype \"%s\"", file, name,
                           json_string_value(jd));

    if (!json_is_array(js))
        return lumos__fail(ctx, LUMOS_E_FORMAT, "%s: %s: \"shape\" is %s, not an array", file, name,
                           json_type_name(js));
    size_t ndim = json_array_size(js);
    if (ndim > 64)
        return lumos__fail(ctx, LUMOS_E_FORMAT, "%s: %s: shape has %zu dimensions (at most 64)",
                           file, name, ndim);
    e->ndim = (int)ndim;
    if (ndim) {
        e->shape = malloc(ndim * sizeof *e->shape);
        if (!e->shape) return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", file);
    }
    int zero = 0, overflow = 0;
    uint64_t count = 1;
    for (size_t i = 0; i < ndim; i++) {
        json_t *d = json_array_get(js, i);
        if (!is_count(d))
            return lumos__fail(ctx, LUMOS_E_FORMAT,
                               "%s: %s: shape[%zu] is %s, not a non-negative integer", file, name,
                               i, json_is_integer(d) ? "negative" : json_type_name(d));
        uint64_t dim = (uint64_t)json_integer_value(d);
        e->shape[i] = (int64_t)dim;
        if (dim == 0) zero = 1;
        else if (count > UINT64_MAX / dim) overflow = 1;
        else count *= dim;
    }
    if (zero) {
        count = 0;
        overflow = 0;
    }

    if (!json_is_array(jo) || json_array_size(jo) != 2 || !is_count(json_array_get(jo, 0)) ||
        !is_count(json_array_get(jo, 1)))
        return lumos__fail(ctx, LUMOS_E_FORMAT,
                           "%s: %s: \"data_offsets\" is not [begin, end] "
                           "(two non-negative integers)",
                           file, name);
    e->begin = (uint64_t)json_integer_value(json_array_get(jo, 0));
    e->end = (uint64_t)json_integer_value(json_array_get(jo, 1));
    if (e->begin > e->end)
        return lumos__fail(ctx, LUMOS_E_FORMAT,
                           "%s: %s: data_offsets [%" PRIu64 ", %" PRIu64 "]: begin is after end",
                           file, name, e->begin, e->end);
    if (e->end > data_size)
        return lumos__fail(ctx, LUMOS_E_FORMAT,
                           "%s: %s: data_offsets [%" PRIu64 ", %" PRIu64
                           "] run past the end of the data section (%" PRIu64 " bytes)",
                           file, name, e->begin, e->end, data_size);

    char sh[128];
    uint64_t bits = e->dtype->bits;
    if (overflow || count > UINT64_MAX / bits)
        return lumos__fail(ctx, LUMOS_E_FORMAT, "%s: %s: shape %s has too many elements", file,
                           name, format_shape(sh, sizeof sh, e->ndim, e->shape));
    uint64_t nbits = count * bits, held = e->end - e->begin;
    if (nbits % 8 != 0)
        return lumos__fail(ctx, LUMOS_E_FORMAT,
                           "%s: %s: shape %s of %s is not a whole number of bytes", file, name,
                           format_shape(sh, sizeof sh, e->ndim, e->shape), e->dtype->name);
    if (nbits / 8 != held)
        return lumos__fail(ctx, LUMOS_E_FORMAT,
                           "%s: %s: shape %s of %s takes %" PRIu64 " bytes, but data_offsets [%"
                           PRIu64 ", %" PRIu64 "] hold %" PRIu64,
                           file, name, format_shape(sh, sizeof sh, e->ndim, e->shape),
                           e->dtype->name, nbits / 8, e->begin, e->end, held);
    e->count = count;
    return LUMOS_OK;
}

static int by_offsets(const void *a, const void *b)
{
    const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* The tensors must tile the data section exactly: no overlap (two tensors
 * sharing bytes), no hole, nothing after the last one. The reference reader
 * insists on the same (it keeps files from being polyglots). */
static int check_layout(lumos_ctx *ctx, const char *file, entry *e, size_t n, uint64_t data_size)
{
    entry **order = malloc((n ? n : 1) * sizeof *order);
    if (!order) return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", file);
    for (size_t i = 0; i < n; i++) order[i] = &e[i];
    qsort(order, n, sizeof *order, by_offsets);
    int rc = LUMOS_OK;
    uint64_t at = 0;
    const entry *prev = NULL; /* the tensor that ends at `at` */
    for (size_t i = 0; i < n && rc == LUMOS_OK; i++) {
        const entry *t = order[i];
        if (t->begin < at)
            rc = lumos__fail(ctx, LUMOS_E_FORMAT,
                             "%s: tensors %s [%" PRIu64 ", %" PRIu64 "] and %s [%" PRIu64
                             ", %" PRIu64 "] overlap",
                             file, prev->name, prev->begin, prev->end, t->name, t->begin, t->end);
        else if (t->begin > at)
            rc = lumos__fail(ctx, LUMOS_E_FORMAT,
                             "%s: data bytes [%" PRIu64 ", %" PRIu64
                             ") before tensor %s are not part of any tensor",
                             file, at, t->begin, t->name);
        at = t->end;
        prev = t;
    }
    if (rc == LUMOS_OK && at != data_size)
        rc = lumos__fail(ctx, LUMOS_E_FORMAT,
                         "%s: the data section has %" PRIu64
                         " bytes after the last tensor, not part of any tensor",
                         file, data_size - at);
    free(order);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const tensor *)a)->name, ((const tensor *)b)->name);
}

/* --------------------------------------------------------------- building */

void lumos__weights_free(lumos__weights *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].shape);
    }
    free(w->t);
    free(w->pool);
    free(w->file);
    json_decref(w->meta);
    free(w);
}

const char *lumos__weights_metadata(const lumos__weights *w, const char *key)
{
    return w && w->meta ? json_string_value(json_object_get(w->meta, key)) : NULL;
}

/* Copies or converts the checked entries into a new lumos__weights. */
static int build(lumos_ctx *ctx, const char *file, entry *e, size_t n, const uint8_t *data,
                 lumos__weights **out)
{
    lumos__weights *w = calloc(1, sizeof *w);
    if (!w) return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", file);
    w->file = copy_string(file);
    w->t = calloc(n ? n : 1, sizeof *w->t);
    if (!w->file || !w->t) goto nomem;
    for (size_t i = 0; i < n; i++, w->n++) {
        tensor *t = &w->t[i];
        t->name = copy_string(e[i].name);
        if (!t->name) goto nomem;
        t->ndim = e[i].ndim;
        t->shape = e[i].shape; /* moved */
        e[i].shape = NULL;
        t->count = (size_t)e[i].count; /* <= the data section's size */
        t->offset = i;                 /* entry index until the pool is laid out */
    }
    qsort(w->t, n, sizeof *w->t, by_name);

    /* Each count is at most a half of the data section (2-byte elements),
     * which is held in memory; the padding is bounded by the header size. */
    size_t floats = 0;
    for (size_t i = 0; i < n; i++) {
        size_t c = w->t[i].count, padded = c + (ALIGN_FLOATS - c % ALIGN_FLOATS) % ALIGN_FLOATS;
        if (padded < c || floats > SIZE_MAX / sizeof(float) - padded) goto nomem;
        size_t src = w->t[i].offset;
        w->t[i].offset = floats;
        floats += padded;
        e[src].slot = i;
    }
    if (floats == 0) floats = ALIGN_FLOATS;
    if ((uint64_t)floats * sizeof(float) > lumos_ctx_max_alloc(ctx)) {
        lumos__weights_free(w);
        return lumos__fail(ctx, LUMOS_E_NOMEM,
                           "%s: the tensors take %llu bytes as float32, over the memory limit of "
                           "%llu bytes (lumos_ctx_set_max_alloc)",
                           file, (unsigned long long)floats * sizeof(float),
                           (unsigned long long)lumos_ctx_max_alloc(ctx));
    }
    w->pool = aligned_alloc(ALIGN_FLOATS * sizeof(float), floats * sizeof(float));
    if (!w->pool) goto nomem;
    memset(w->pool, 0, floats * sizeof(float)); /* the padding too */

    for (size_t i = 0; i < n; i++) {
        const tensor *t = &w->t[e[i].slot];
        const uint8_t *src = data + e[i].begin;
        float *dst = w->pool + t->offset;
        switch (e[i].dtype->kind) {
        case K_F32: memcpy(dst, src, t->count * sizeof(float)); break; /* little-endian host */
        case K_F16:
            for (size_t k = 0; k < t->count; k++)
                dst[k] = f16_to_f32((uint16_t)(src[2 * k] | src[2 * k + 1] << 8));
            break;
        case K_BF16:
            for (size_t k = 0; k < t->count; k++)
                dst[k] = bf16_to_f32((uint16_t)(src[2 * k] | src[2 * k + 1] << 8));
            break;
        default: break; /* rejected before */
        }
    }
    *out = w;
    return LUMOS_OK;
nomem:
    lumos__weights_free(w);
    return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", file);
}

static int parse(lumos_ctx *ctx, const char *file, const uint8_t *buf, size_t size,
                 lumos__weights **out)
{
    if (size < 8)
        return lumos__fail(ctx, LUMOS_E_FORMAT,
                           "%s: the file is %zu bytes, too short for a safetensors header "
                           "(8 bytes of header length, then the header)",
                           file, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i];
    if (hlen == 0)
        return lumos__fail(ctx, LUMOS_E_FORMAT,
                           "%s: the header length is 0: not a safetensors file", file);
    if (hlen > MAX_HEADER)
        return lumos__fail(ctx, LUMOS_E_FORMAT,
                           "%s: the header length %" PRIu64
                           " is larger than the 100 MB limit: not a safetensors file",
                           file, hlen);
    if (hlen > size - 8)
        return lumos__fail(ctx, LUMOS_E_FORMAT,
                           "%s: the header length %" PRIu64
                           " runs past the end of the file (%zu bytes): truncated?",
                           file, hlen, size);
    uint64_t data_size = size - 8 - hlen;
    const uint8_t *data = buf + 8 + hlen;

    json_error_t jerr;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return lumos__fail(ctx, LUMOS_E_FORMAT,
                           "%s: the header is not valid JSON: %s (line %d, column %d)", file,
                           jerr.text, jerr.line, jerr.column);
    if (!json_is_object(root)) {
        int rc = lumos__fail(ctx, LUMOS_E_FORMAT, "%s: the header is %s, not a JSON object", file,
                             json_type_name(root));
        json_decref(root);
        return rc;
    }

    size_t cap = json_object_size(root), n = 0;
    entry *e = calloc(cap ? cap : 1, sizeof *e);
    int rc = e ? LUMOS_OK : lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", file);
    const entry *unsupported = NULL; /* reported once the layout is known to be sound */
    const char *key;
    json_t *value;
    json_t *meta = NULL;
    json_object_foreach(root, key, value) {
        if (rc != LUMOS_OK) break;
        if (strcmp(key, "__metadata__") == 0) {
            rc = check_metadata(ctx, file, value);
            if (json_is_object(value)) meta = value;
            continue;
        }
        rc = check_entry(ctx, file, key, value, data_size, &e[n]);
        n++; /* even on failure: its shape is freed below */
        if (rc == LUMOS_OK && !unsupported && e[n - 1].dtype->kind > K_BF16)
            unsupported = &e[n - 1];
    }
    if (rc == LUMOS_OK) rc = check_layout(ctx, file, e, n, data_size);
    if (rc == LUMOS_OK && unsupported) {
        if (unsupported->dtype->kind == K_NOT_FLOAT)
            rc = lumos__fail(ctx, LUMOS_E_UNSUPPORTED, "%s: %s: dtype %s is not a float type", file,
                             unsupported->name, unsupported->dtype->name);
        else
            rc = lumos__fail(ctx, LUMOS_E_UNSUPPORTED,
                             "%s: %s: dtype %s is not supported (only F32, F16 and BF16 are)",
                             file, unsupported->name, unsupported->dtype->name);
    }
    if (rc == LUMOS_OK) rc = build(ctx, file, e, n, data, out);
    if (rc == LUMOS_OK && meta) (*out)->meta = json_incref(meta);
    for (size_t i = 0; i < n; i++) free(e[i].shape);
    free(e);
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------------- API */

int lumos__weights_open_memory(lumos_ctx *ctx, const void *buf, size_t size, const char *name,
                               lumos__weights **out)
{
    if (out) *out = NULL;
    if (!name) name = "<memory>";
    if (!out || (!buf && size))
        return lumos__fail(ctx, LUMOS_E_ARG, "%s: lumos__weights_open_memory: NULL argument", name);
    return parse(ctx, name, buf, size, out);
}

/* The whole of a regular file (or a pipe) into a new buffer. */
static int read_all(lumos_ctx *ctx, const char *path, uint8_t **out, size_t *out_size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s: cannot open", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return lumos__fail_errno(ctx, LUMOS_E_IO, err, "%s: cannot stat", path);
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return lumos__fail_errno(ctx, LUMOS_E_IO, EISDIR, "%s: cannot read", path);
    }
    if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) {
        close(fd);
        return lumos__fail(ctx, LUMOS_E_IO, "%s: cannot read: not a regular file", path);
    }
    if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > lumos_ctx_max_alloc(ctx)) {
        close(fd);
        return lumos__fail(ctx, LUMOS_E_NOMEM,
                           "%s: the file's %llu bytes are over the memory limit of %llu bytes "
                           "(lumos_ctx_set_max_alloc)",
                           path, (unsigned long long)st.st_size,
                           (unsigned long long)lumos_ctx_max_alloc(ctx));
    }
    /* One byte more than the size, so that the read that sees the end of a
     * file that did not change needs no second buffer. */
    size_t cap = 65536;
    if (S_ISREG(st.st_mode) && st.st_size > 0 && (uintmax_t)st.st_size < SIZE_MAX / 2)
        cap = (size_t)st.st_size + 1;
    uint8_t *buf = malloc(cap);
    size_t size = 0;
    int rc = buf ? LUMOS_OK : lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
    while (rc == LUMOS_OK) {
        if (size == cap) {
            uint8_t *bigger = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!bigger) {
                rc = lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + size, cap - size);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) rc = lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s: read failed", path);
        else if (got == 0) break;
        else size += (size_t)got;
    }
    close(fd);
    if (rc != LUMOS_OK) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_size = size;
    return LUMOS_OK;
}

int lumos__weights_open(lumos_ctx *ctx, const char *path, lumos__weights **out)
{
    if (out) *out = NULL;
    if (!path || !out)
        return lumos__fail(ctx, LUMOS_E_ARG, "lumos__weights_open: NULL argument");
    uint8_t *buf = NULL;
    size_t size = 0;
    int rc = read_all(ctx, path, &buf, &size);
    if (rc != LUMOS_OK) return rc;
    rc = parse(ctx, path, buf, size, out);
    free(buf);
    return rc;
}

int lumos__weights_get(lumos_ctx *ctx, const lumos__weights *w, const char *name, int ndim,
                       const int64_t *shape, const float **data)
{
    if (data) *data = NULL;
    if (!w || !name || !data || ndim < 0 || (ndim > 0 && !shape))
        return lumos__fail(ctx, LUMOS_E_ARG, "%s: lumos__weights_get: bad argument",
                           w ? w->file : "(no weights)");
    tensor key = {.name = (char *)name};
    const tensor *t = bsearch(&key, w->t, w->n, sizeof *w->t, by_name);
    if (!t) return lumos__fail(ctx, LUMOS_E_FORMAT, "%s: no tensor '%s'", w->file, name);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char has[256], want[256];
        return lumos__fail(ctx, LUMOS_E_FORMAT, "%s: tensor %s has shape %s, expected %s", w->file,
                           name, format_shape(has, sizeof has, t->ndim, t->shape),
                           format_shape(want, sizeof want, ndim, shape));
    }
    *data = w->pool + t->offset;
    return LUMOS_OK;
}

size_t lumos__weights_count(const lumos__weights *w) { return w ? w->n : 0; }

const char *lumos__weights_name(const lumos__weights *w, size_t i)
{
    return w && i < w->n ? w->t[i].name : NULL;
}

/* ----------------------------------------------------------------- writer */

static int write_full(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return errno;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* The JSON header for t (tensors laid out back to back in order) in *out
 * (malloc'ed by Jansson, free()). */
static int header_json(lumos_ctx *ctx, const char *path, const lumos__weights_entry *t, size_t n,
                       const char *const *metadata, char **out)
{
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        int bad = !t[i].name || !*t[i].name || !strcmp(t[i].name, "__metadata__") || !t[i].data ||
                  t[i].ndim < 0 || t[i].ndim > 4 || (t[i].ndim && !t[i].shape);
        for (int d = 0; !bad && d < t[i].ndim; d++) bad = t[i].shape[d] < 0;
        for (size_t k = 0; !bad && k < i; k++) bad = !strcmp(t[k].name, t[i].name);
        if (bad)
            return lumos__fail(ctx, LUMOS_E_ARG, "%s: tensor %zu (%s): bad or duplicate name, "
                               "shape or data", path, i, t[i].name ? t[i].name : "NULL");
    }
    for (size_t i = 0; metadata && metadata[i]; i += 2)
        if (!metadata[i + 1])
            return lumos__fail(ctx, LUMOS_E_ARG, "%s: metadata key %s has no value", path,
                               metadata[i]);
    /* The reference writer puts __metadata__ first. */
    json_t *root = json_object();
    int ok = root != NULL;
    if (ok && metadata && metadata[0]) {
        json_t *meta = json_object();
        for (size_t i = 0; meta && metadata[i]; i += 2)
            if (json_object_set_new(meta, metadata[i], json_string(metadata[i + 1]))) {
                json_decref(meta);
                meta = NULL;
            }
        ok = meta && !json_object_set_new(root, "__metadata__", meta);
    }
    json_int_t at = 0;
    for (size_t i = 0; ok && i < n; i++) {
        json_t *shape = json_array();
        json_int_t count = 1;
        for (int d = 0; shape && d < t[i].ndim; d++) {
            ok &= !json_array_append_new(shape, json_integer(t[i].shape[d]));
            count *= t[i].shape[d];
        }
        json_t *e = json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape", shape,
                              "data_offsets", at, at + 4 * count);
        at += 4 * count;
        ok &= e && !json_object_set_new(root, t[i].name, e);
    }
    *out = ok ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    return *out ? LUMOS_OK : lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
}

int lumos__weights_write(lumos_ctx *ctx, const char *path, const lumos__weights_entry *t,
                         size_t n, const char *const *metadata)
{
    if (!path || !*path || (n && !t))
        return lumos__fail(ctx, LUMOS_E_ARG, "lumos__weights_write: bad arguments");
    char *json;
    int rc = header_json(ctx, path, t, n, metadata, &json);
    if (rc) return rc;
    /* Spaces up to a multiple of 8, so every F32 tensor starts aligned. */
    size_t len = strlen(json), padded = (len + 7) / 8 * 8;
    char *header = malloc(8 + padded);
    if (!header) {
        free(json);
        return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < 8; i++) header[i] = (char)((uint64_t)padded >> (8 * i));
    memcpy(header + 8, json, len);
    memset(header + 8 + len, ' ', padded - len);
    free(json);

    lumos__atomic_file f;
    rc = lumos__atomic_open(ctx, path, &f);
    if (rc == LUMOS_OK) {
        int err = write_full(f.fd, header, 8 + padded);
        for (size_t i = 0; !err && i < n; i++) {
            size_t count = 1;
            for (int d = 0; d < t[i].ndim; d++) count *= (size_t)t[i].shape[d];
            err = write_full(f.fd, t[i].data, count * sizeof(float)); /* little-endian host */
        }
        if (err) rc = lumos__fail_errno(ctx, LUMOS_E_IO, err, "%s: cannot write the weights", path);
        rc = lumos__atomic_close(ctx, &f, rc, 1);
    }
    free(header);
    return rc;
}
