/* test_weights.c — the safetensors reader (io/weights.h) on files written byte
 * by byte here: exact F32 round trips, exact F16/BF16 conversion (every bit
 * pattern), a file laid out exactly as safetensors.torch.save_file writes
 * one, and every kind of damaged or unsupported file, each through memory and
 * through a file, with the status and the message (file name and reason). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "io/weights.h"
#include "lumos.h"

static lumos_ctx *ctx;
static char tmpdir[512];

/* ------------------------------------------------------------ file builder */

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *src, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
    b->p[b->n] = 0; /* so that a header under construction reads as a string */
}

static void putf(bytes *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    put(b, tmp, (size_t)n);
}

static void put_le(bytes *b, uint64_t v, int nbytes)
{
    for (int i = 0; i < nbytes; i++) {
        uint8_t c = (uint8_t)(v >> (8 * i));
        put(b, &c, 1);
    }
}

static void put_f32(bytes *b, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put_le(b, u, 4);
}

/* One tensor to write: its header fields and its raw (little-endian) bytes. */
typedef struct tspec {
    const char *name, *dtype;
    int ndim;
    int64_t shape[6];
    const bytes *data; /* NULL: no bytes */
} tspec;

/* The JSON header listing ts in order with consecutive data_offsets, an
 * optional "__metadata__" value first. */
static bytes header_json(const tspec *ts, size_t n, const char *metadata)
{
    bytes h = {0};
    put(&h, "{", 1);
    int first = 1;
    if (metadata) {
        putf(&h, "\"__metadata__\":%s", metadata);
        first = 0;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++, first = 0) {
        size_t len = ts[i].data ? ts[i].data->n : 0;
        putf(&h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", first ? "" : ",", ts[i].name,
             ts[i].dtype);
        for (int d = 0; d < ts[i].ndim; d++)
            putf(&h, "%s%lld", d ? "," : "", (long long)ts[i].shape[d]);
        putf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + len);
        off += len;
    }
    put(&h, "}", 1);
    return h;
}

/* A file: the header length, `header` padded with spaces to a multiple of
 * pad (1: no padding), then the bytes of ts in order. */
static bytes assemble(const char *header, size_t header_len, size_t pad, const tspec *ts, size_t n)
{
    size_t padded = header_len + (pad - header_len % pad) % pad;
    bytes f = {0};
    put_le(&f, padded, 8);
    put(&f, header, header_len);
    while (f.n < 8 + padded) put(&f, " ", 1);
    for (size_t i = 0; i < n; i++)
        if (ts[i].data) put(&f, ts[i].data->p, ts[i].data->n);
    return f;
}

static bytes make_file(const tspec *ts, size_t n, const char *metadata, size_t pad)
{
    bytes h = header_json(ts, n, metadata);
    bytes f = assemble((const char *)h.p, h.n, pad, ts, n);
    free(h.p);
    return f;
}

/* A file with a hand-written header and raw data bytes. */
static bytes raw_file(const char *header, const void *data, size_t data_len)
{
    bytes f = {0};
    put_le(&f, strlen(header), 8);
    put(&f, header, strlen(header));
    put(&f, data, data_len);
    return f;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(2);
    }
}

/* ------------------------------------------------------------- expectations */

static void check_message(int line, const char *how, const char *shown, const char *r1,
                          const char *r2)
{
    const char *msg = lumos_last_error(ctx);
    size_t len = strlen(shown);
    CHECK(strncmp(msg, shown, len) == 0 && msg[len] == ':',
          "line %d (%s): message does not start with '%s:': %s", line, how, shown, msg);
    CHECK(!r1 || strstr(msg, r1), "line %d (%s): no '%s' in: %s", line, how, r1, msg);
    CHECK(!r2 || strstr(msg, r2), "line %d (%s): no '%s' in: %s", line, how, r2, msg);
}

/* Opening the bytes from memory and from a file both fail with `code`, leave
 * *out NULL, and give a message that starts with the name and holds r1, r2. */
static void expect_fail_(int line, const uint8_t *p, size_t n, int code, const char *tag,
                         const char *r1, const char *r2)
{
    char name[128], path[700];
    snprintf(name, sizeof name, "%s.safetensors", tag);
    lumos__weights *w = (lumos__weights *)&w;
    int rc = lumos__weights_open_memory(ctx, p, n, name, &w);
    CHECK(rc == code, "line %d %s (memory): status %d (%s), expected %d (%s); %s", line, tag, rc,
          lumos_strerror(rc), code, lumos_strerror(code), lumos_last_error(ctx));
    CHECK(w == NULL, "line %d %s (memory): *out not NULL", line, tag);
    if (rc == LUMOS_OK) lumos__weights_free(w);
    check_message(line, "memory", name, r1, r2);

    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    write_file(path, p, n);
    w = (lumos__weights *)&w;
    rc = lumos__weights_open(ctx, path, &w);
    CHECK(rc == code, "line %d %s (file): status %d (%s), expected %d; %s", line, tag, rc,
          lumos_strerror(rc), code, lumos_last_error(ctx));
    CHECK(w == NULL, "line %d %s (file): *out not NULL", line, tag);
    if (rc == LUMOS_OK) lumos__weights_free(w);
    check_message(line, "file", path, r1, r2);
    unlink(path);
}
#define EXPECT_FAIL(b, code, tag, r1, r2) expect_fail_(__LINE__, (b).p, (b).n, code, tag, r1, r2)

/* A hand-written header (and data) that must be rejected; frees the file. */
static void bad_header_(int line, const char *header, size_t data_len, int code, const char *tag,
                        const char *r1, const char *r2)
{
    uint8_t zeros[256] = {0};
    bytes f = raw_file(header, zeros, data_len);
    expect_fail_(line, f.p, f.n, code, tag, r1, r2);
    free(f.p);
}
#define BAD_HEADER(h, data_len, code, tag, r1, r2) \
    bad_header_(__LINE__, h, data_len, code, tag, r1, r2)

static lumos__weights *open_ok_(int line, const bytes *f, const char *name)
{
    lumos__weights *w = NULL;
    int rc = lumos__weights_open_memory(ctx, f->p, f->n, name, &w);
    CHECK(rc == LUMOS_OK && w, "line %d: %s does not open: %s", line, name, lumos_last_error(ctx));
    return rc == LUMOS_OK ? w : NULL;
}
#define OPEN_OK(f, name) open_ok_(__LINE__, f, name)

/* Tensor `name` has `shape` and exactly the float bits `want`. */
static void expect_tensor_(int line, const lumos__weights *w, const char *name, int ndim,
                           const int64_t *shape, const float *want, size_t count)
{
    const float *data = NULL;
    int rc = lumos__weights_get(ctx, w, name, ndim, shape, &data);
    CHECK(rc == LUMOS_OK && data, "line %d: get %s: %s", line, name, lumos_last_error(ctx));
    if (rc != LUMOS_OK || !data) return;
    CHECK((uintptr_t)data % 64 == 0, "line %d: %s: data at %p is not 64-byte aligned", line, name,
          (const void *)data);
    for (size_t i = 0; i < count; i++) {
        uint32_t a, b;
        memcpy(&a, &data[i], 4);
        memcpy(&b, &want[i], 4);
        if (a != b) {
            CHECK(a == b, "line %d: %s[%zu] = %a (0x%08x), expected %a (0x%08x)", line, name, i,
                  (double)data[i], a, (double)want[i], b);
            break;
        }
    }
}
#define EXPECT_TENSOR(w, name, ndim, shape, want, count) \
    expect_tensor_(__LINE__, w, name, ndim, shape, want, count)

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Independent references: the value formulas, not bit surgery. */
static float ref_f16(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    if (e == 31) return u2f((uint32_t)s << 31 | 0x7f800000u | (uint32_t)m << 13);
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return (float)(s ? -v : v);
}

static float ref_bf16(uint16_t h)
{
    int s = h >> 15, e = (h >> 7) & 255, m = h & 127;
    if (e == 255) return u2f((uint32_t)s << 31 | 0x7f800000u | (uint32_t)m << 16);
    double v = e == 0 ? ldexp(m, -133) : ldexp(128 + m, e - 134);
    return (float)(s ? -v : v);
}

/* ------------------------------------------------------------------ tests */

static void test_good_f32(void)
{
    /* Specials first: -0, the smallest subnormal, the largest float, inf, a
     * NaN with a payload; then ordinary values. */
    enum { NW = 12 * 4 * 3 * 3 };
    float wv[NW], bv[12], sv = 0.75f;
    wv[0] = -0.0f;
    wv[1] = u2f(1);
    wv[2] = u2f(0x7f7fffffu);
    wv[3] = INFINITY;
    wv[4] = u2f(0x7fc12345u);
    for (int i = 5; i < NW; i++) wv[i] = (float)(i - 200) * 0.1f;
    for (int i = 0; i < 12; i++) bv[i] = 1.0f / (float)(i + 1);
    bytes dw = {0}, db = {0}, ds = {0}, dodd = {0};
    for (int i = 0; i < NW; i++) put_f32(&dw, wv[i]);
    for (int i = 0; i < 12; i++) put_f32(&db, bv[i]);
    put_f32(&ds, sv);
    put_le(&dodd, 0x3c00, 2); /* an F16 1.0 first: the F32 data after it is misaligned */
    tspec ts[] = {
        {"odd", "F16", 1, {1}, &dodd},
        {"conv1.weight", "F32", 4, {12, 4, 3, 3}, &dw},
        {"conv1.bias", "F32", 1, {12}, &db},
        {"scale", "F32", 0, {0}, &ds},
        {"empty", "F32", 2, {0, 3}, NULL},
    };
    /* An unpadded header of odd length: the data lies at odd file offsets. */
    bytes h = header_json(ts, 5, NULL);
    if (h.n % 2 == 0) put(&h, " ", 1);
    bytes f = assemble((const char *)h.p, h.n, 1, ts, 5);
    CHECK((8 + h.n + 2) % 4 != 0, "the F32 data should be misaligned in the file");
    free(h.p);

    char path[700];
    snprintf(path, sizeof path, "%s/good.safetensors", tmpdir);
    write_file(path, f.p, f.n);

    for (int via_file = 0; via_file < 2; via_file++) {
        lumos__weights *w = NULL;
        const char *shown = via_file ? path : "good.safetensors";
        /* From memory, from a copy that is wiped afterwards: the bytes are copied. */
        uint8_t *copy = malloc(f.n);
        memcpy(copy, f.p, f.n);
        int rc = via_file ? lumos__weights_open(ctx, path, &w)
                          : lumos__weights_open_memory(ctx, copy, f.n, shown, &w);
        memset(copy, 0xa5, f.n);
        free(copy);
        CHECK(rc == LUMOS_OK && w, "good file: %s", lumos_last_error(ctx));
        if (!w) continue;

        static const char *names[] = {"conv1.bias", "conv1.weight", "empty", "odd", "scale"};
        CHECK(lumos__weights_count(w) == 5, "count %zu", lumos__weights_count(w));
        for (size_t i = 0; i < 5; i++) {
            const char *n = lumos__weights_name(w, i);
            CHECK(n && strcmp(n, names[i]) == 0, "name %zu: %s, expected %s", i, n ? n : "NULL",
                  names[i]);
        }
        CHECK(lumos__weights_name(w, 5) == NULL, "a name past the end");

        static const int64_t sw[] = {12, 4, 3, 3}, sb[] = {12}, se[] = {0, 3}, so[] = {1};
        const float one = 1.0f;
        EXPECT_TENSOR(w, "conv1.weight", 4, sw, wv, NW);
        EXPECT_TENSOR(w, "conv1.bias", 1, sb, bv, 12);
        EXPECT_TENSOR(w, "scale", 0, NULL, &sv, 1);
        EXPECT_TENSOR(w, "empty", 2, se, NULL, 0);
        EXPECT_TENSOR(w, "odd", 1, so, &one, 1);

        /* Wrong shapes and names: exact messages. */
        char want[900];
        const float *data = &one;
        static const int64_t s1[] = {12, 4, 3, 1};
        rc = lumos__weights_get(ctx, w, "conv1.weight", 4, s1, &data);
        snprintf(want, sizeof want,
                 "%s: tensor conv1.weight has shape [12,4,3,3], expected [12,4,3,1]", shown);
        CHECK(rc == LUMOS_E_FORMAT && data == NULL, "wrong shape: %d", rc);
        CHECK(strcmp(lumos_last_error(ctx), want) == 0, "message '%s', expected '%s'",
              lumos_last_error(ctx), want);

        rc = lumos__weights_get(ctx, w, "conv1.weight", 3, sw, &data);
        CHECK(rc == LUMOS_E_FORMAT && strstr(lumos_last_error(ctx), "expected [12,4,3]"),
              "fewer dims: %d %s", rc, lumos_last_error(ctx));
        rc = lumos__weights_get(ctx, w, "scale", 1, so, &data);
        CHECK(rc == LUMOS_E_FORMAT && strstr(lumos_last_error(ctx), "has shape [], expected [1]"),
              "scalar as [1]: %d %s", rc, lumos_last_error(ctx));
        rc = lumos__weights_get(ctx, w, "conv1.bias", 0, NULL, &data);
        CHECK(rc == LUMOS_E_FORMAT && strstr(lumos_last_error(ctx), "has shape [12], expected []"),
              "vector as scalar: %d %s", rc, lumos_last_error(ctx));

        rc = lumos__weights_get(ctx, w, "conv1.weights", 4, sw, &data);
        snprintf(want, sizeof want, "%s: no tensor 'conv1.weights'", shown);
        CHECK(rc == LUMOS_E_FORMAT && data == NULL, "missing tensor: %d", rc);
        CHECK(strcmp(lumos_last_error(ctx), want) == 0, "message '%s', expected '%s'",
              lumos_last_error(ctx), want);
        rc = lumos__weights_get(ctx, w, "", 0, NULL, &data);
        CHECK(rc == LUMOS_E_FORMAT, "empty name: %d", rc);

        CHECK(lumos__weights_get(ctx, w, "conv1.bias", -1, sb, &data) == LUMOS_E_ARG, "ndim -1");
        CHECK(lumos__weights_get(ctx, w, "conv1.bias", 1, NULL, &data) == LUMOS_E_ARG,
              "NULL shape");
        CHECK(lumos__weights_get(ctx, w, NULL, 1, sb, &data) == LUMOS_E_ARG, "NULL name");
        CHECK(lumos__weights_get(ctx, w, "conv1.bias", 1, sb, NULL) == LUMOS_E_ARG, "NULL out");
        CHECK(lumos__weights_get(ctx, NULL, "conv1.bias", 1, sb, &data) == LUMOS_E_ARG,
              "NULL weights");
        lumos__weights_free(w);
    }
    unlink(path);
    free(f.p);
    free(dw.p);
    free(db.p);
    free(ds.p);
    free(dodd.p);
}

static void test_half_types(void)
{
    /* Chosen values, exactly representable. */
    static const struct { uint16_t bits; float value; } f16[] = {
        {0x0000, 0.0f},          {0x8000, -0.0f},         {0x3c00, 1.0f},
        {0xc000, -2.0f},         {0x3e00, 1.5f},          {0x3555, 0.333251953125f},
        {0x7bff, 65504.0f},      {0xfbff, -65504.0f},     {0x0400, 0x1p-14f},
        {0x0001, 0x1p-24f},      {0x03ff, 0x1.ff8p-15f},  {0x8001, -0x1p-24f},
        {0x7c00, INFINITY},      {0xfc00, -INFINITY},
    };
    static const struct { uint16_t bits; float value; } bf16[] = {
        {0x3f80, 1.0f},          {0xc040, -3.0f},         {0x3eaa, 0.33203125f},
        {0x7f7f, 0x1.fep127f},   {0x0080, 0x1p-126f},     {0x0001, 0x1p-133f},
        {0x8000, -0.0f},         {0xff80, -INFINITY},     {0x4049, 3.140625f},
    };
    enum { N16 = sizeof f16 / sizeof f16[0], NB = sizeof bf16 / sizeof bf16[0] };
    bytes a = {0}, b = {0}, all16 = {0}, allb = {0};
    float wa[N16], wb[NB];
    for (int i = 0; i < N16; i++) put_le(&a, f16[i].bits, 2), wa[i] = f16[i].value;
    for (int i = 0; i < NB; i++) put_le(&b, bf16[i].bits, 2), wb[i] = bf16[i].value;
    /* Every bit pattern, against the value formulas (NaN payloads kept). */
    static float want16[65536], wantb[65536];
    for (uint32_t h = 0; h < 65536; h++) {
        put_le(&all16, h, 2);
        put_le(&allb, h, 2);
        want16[h] = ref_f16((uint16_t)h);
        wantb[h] = ref_bf16((uint16_t)h);
    }
    CHECK(f2u(ref_f16(0x7e00)) == 0x7fc00000u && isnan(ref_f16(0x7c01)), "reference NaNs");
    tspec ts[] = {
        {"a.f16", "F16", 1, {N16}, &a},
        {"b.bf16", "BF16", 2, {1, NB}, &b},
        {"all.f16", "F16", 1, {65536}, &all16},
        {"all.bf16", "BF16", 2, {256, 256}, &allb},
    };
    bytes f = make_file(ts, 4, NULL, 8);
    lumos__weights *w = OPEN_OK(&f, "halves.safetensors");
    if (w) {
        int64_t s1[] = {N16}, s2[] = {1, NB}, s3[] = {65536}, s4[] = {256, 256};
        EXPECT_TENSOR(w, "a.f16", 1, s1, wa, N16);
        EXPECT_TENSOR(w, "b.bf16", 2, s2, wb, NB);
        EXPECT_TENSOR(w, "all.f16", 1, s3, want16, 65536);
        EXPECT_TENSOR(w, "all.bf16", 2, s4, wantb, 65536);
        const float *d = NULL;
        if (lumos__weights_get(ctx, w, "all.f16", 1, s3, &d) == LUMOS_OK) {
            CHECK(isnan(d[0x7e00]) && isnan(d[0xfc01]) && f2u(d[0x7c01]) == 0x7f802000u,
                  "F16 NaNs: 0x%08x", f2u(d[0x7c01]));
            CHECK(d[0x3c00] == 1.0f && d[0x0001] == 0x1p-24f, "F16 spot values");
        }
        lumos__weights_free(w);
    }
    free(f.p);
    free(a.p);
    free(b.p);
    free(all16.p);
    free(allb.p);
}

static void test_metadata_and_names(void)
{
    bytes d = {0};
    put_f32(&d, 2.5f);
    float v = 2.5f;
    int64_t s[] = {1};
    static const char *good_meta[] = {"{\"format\":\"pt\",\"note\":\"lumos \\u00e9\"}", "{}",
                                      "null"};
    for (int i = 0; i < 3; i++) {
        tspec ts[] = {{"x", "F32", 1, {1}, &d}};
        bytes f = make_file(ts, 1, good_meta[i], 8);
        lumos__weights *w = OPEN_OK(&f, "meta.safetensors");
        if (w) {
            CHECK(lumos__weights_count(w) == 1, "metadata counted as a tensor (%s)", good_meta[i]);
            EXPECT_TENSOR(w, "x", 1, s, &v, 1);
            lumos__weights_free(w);
        }
        free(f.p);
    }
    /* Metadata after the tensors is the same. */
    bytes f = raw_file("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                       "\"__metadata__\":{\"format\":\"pt\"}}",
                       d.p, 4);
    lumos__weights *w = OPEN_OK(&f, "meta-last.safetensors");
    CHECK(w && lumos__weights_count(w) == 1, "metadata last");
    lumos__weights_free(w);
    free(f.p);

    static const struct { const char *meta, *tag, *reason; } bad[] = {
        {"[]", "meta-array", "__metadata__ is an array"},
        {"\"pt\"", "meta-string", "__metadata__ is a string"},
        {"{\"format\":1}", "meta-int", "'format' is an integer"},
        {"{\"a\":\"b\",\"c\":{}}", "meta-object", "'c' is an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tspec ts[] = {{"x", "F32", 1, {1}, &d}};
        bytes b = make_file(ts, 1, bad[i].meta, 1);
        EXPECT_FAIL(b, LUMOS_E_FORMAT, bad[i].tag, bad[i].reason, NULL);
        free(b.p);
    }

    /* Escapes in a name are decoded. */
    f = raw_file("{\"caf\\u00e9.\\\"w\\\"\":"
                 "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                 d.p, 4);
    w = OPEN_OK(&f, "escapes.safetensors");
    if (w) {
        const char *n = lumos__weights_name(w, 0);
        CHECK(n && strcmp(n, "caf\xc3\xa9.\"w\"") == 0, "decoded name: %s", n ? n : "NULL");
        EXPECT_TENSOR(w, "caf\xc3\xa9.\"w\"", 1, s, &v, 1);
        lumos__weights_free(w);
    }
    free(f.p);
    free(d.p);
}

/* Byte for byte what safetensors.torch.save_file writes for
 *   {"conv1.weight": float32 [2,1,1,1], "conv1.bias": float32 [2],
 *    "enc.norm": bfloat16 [2], "head.weight": float16 [3]}
 * with metadata {"format": "pt"}: "__metadata__" first, then the tensors by
 * descending dtype alignment (F32, BF16, F16) and by name, compact JSON,
 * padded with 3 spaces to 296 bytes (a multiple of 8), then the data in that
 * order. */
static void test_torch_layout(void)
{
    static const char header[] =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"conv1.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[2,1,1,1],\"data_offsets\":[8,16]},"
        "\"enc.norm\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[16,20]},"
        "\"head.weight\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[20,26]}}"
        "   ";
    static const uint8_t prefix[8] = {0x28, 0x01, 0, 0, 0, 0, 0, 0}; /* 296 */
    static const uint8_t data[26] = {
        0x00, 0x00, 0x40, 0x40, 0x00, 0x00, 0x80, 0xbd, /* conv1.bias: 3, -0.0625 */
        0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0xa0, 0xbf, /* conv1.weight: 0.5, -1.25 */
        0x80, 0x3f, 0x40, 0xc0,                         /* enc.norm: 1, -3 */
        0x00, 0x3c, 0x55, 0x35, 0xff, 0xfb,             /* head.weight: 1, 0.33325195, -65504 */
    };
    CHECK(sizeof header - 1 == 296, "header literal is %zu bytes", sizeof header - 1);
    bytes f = {0};
    put(&f, prefix, 8);
    put(&f, header, sizeof header - 1);
    put(&f, data, sizeof data);

    lumos__weights *w = OPEN_OK(&f, "torch.safetensors");
    if (w) {
        CHECK(lumos__weights_count(w) == 4, "count %zu", lumos__weights_count(w));
        static const int64_t sb[] = {2}, sw[] = {2, 1, 1, 1}, sh[] = {3};
        static const float b[] = {3.0f, -0.0625f}, wt[] = {0.5f, -1.25f}, n[] = {1.0f, -3.0f},
                           h[] = {1.0f, 0.333251953125f, -65504.0f};
        EXPECT_TENSOR(w, "conv1.bias", 1, sb, b, 2);
        EXPECT_TENSOR(w, "conv1.weight", 4, sw, wt, 2);
        EXPECT_TENSOR(w, "enc.norm", 1, sb, n, 2);
        EXPECT_TENSOR(w, "head.weight", 1, sh, h, 3);
        lumos__weights_free(w);
    }
    free(f.p);

    /* The reference library's own serialisation of one F32 tensor "attn0"
     * [1,1,2,3] = 0..5 without metadata: a 65-byte header padded with 7 spaces. */
    bytes g = {0};
    static const char h2[] =
        "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       ";
    put_le(&g, 72, 8);
    put(&g, h2, sizeof h2 - 1);
    float v[6];
    for (int i = 0; i < 6; i++) put_f32(&g, v[i] = (float)i);
    CHECK(g.n == 8 + 72 + 24, "attn0 file is %zu bytes", g.n);
    w = OPEN_OK(&g, "attn0.safetensors");
    if (w) {
        static const int64_t s[] = {1, 1, 2, 3};
        EXPECT_TENSOR(w, "attn0", 4, s, v, 6);
        lumos__weights_free(w);
    }
    free(g.p);

    /* And its empty files: "{}" padded to 8, and metadata alone. */
    static const uint8_t empty[] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    bytes e = {0};
    put(&e, empty, sizeof empty);
    w = OPEN_OK(&e, "empty-dict.safetensors");
    CHECK(w && lumos__weights_count(w) == 0 && lumos__weights_name(w, 0) == NULL, "empty dict");
    lumos__weights_free(w);
    free(e.p);
    e = (bytes){0};
    put_le(&e, 40, 8);
    put(&e, "{\"__metadata__\":{\"framework\":\"pt\"}}     ", 40);
    w = OPEN_OK(&e, "metadata-only.safetensors");
    CHECK(w && lumos__weights_count(w) == 0, "metadata only");
    lumos__weights_free(w);
    free(e.p);
}

static void test_bad_lengths(void)
{
    bytes f = {0};
    EXPECT_FAIL(f, LUMOS_E_FORMAT, "empty", "0 bytes", "too short");
    put(&f, "\x05\0\0\0\0", 5);
    EXPECT_FAIL(f, LUMOS_E_FORMAT, "short5", "5 bytes", "too short");
    free(f.p);

    f = (bytes){0};
    put_le(&f, 0, 8);
    EXPECT_FAIL(f, LUMOS_E_FORMAT, "hlen0", "header length is 0", NULL);
    put(&f, "{}", 2);
    EXPECT_FAIL(f, LUMOS_E_FORMAT, "hlen0-data", "header length is 0", NULL);
    free(f.p);

    static const uint64_t too_big[] = {100000001u, 0x100000000ull, UINT64_MAX, 1ull << 63};
    for (int i = 0; i < 4; i++) {
        f = (bytes){0};
        put_le(&f, too_big[i], 8);
        put(&f, "{}      ", 8);
        EXPECT_FAIL(f, LUMOS_E_FORMAT, "hlen-big", "larger than the 100 MB limit", NULL);
        free(f.p);
    }
    /* At the limit it is the file that is too short. */
    f = (bytes){0};
    put_le(&f, 100000000u, 8);
    put(&f, "{}      ", 8);
    EXPECT_FAIL(f, LUMOS_E_FORMAT, "hlen-limit", "header length 100000000 runs past the end",
                "16 bytes");
    free(f.p);
    f = raw_file("{}", "", 0);
    f.p[0] = 3; /* one more than there is */
    EXPECT_FAIL(f, LUMOS_E_FORMAT, "hlen-past", "header length 3 runs past the end", NULL);
    free(f.p);
}

static void test_bad_json(void)
{
    BAD_HEADER("{\"a\":", 0, LUMOS_E_FORMAT, "json-truncated", "not valid JSON", "line 1");
    BAD_HEADER("{\n\"a\":\n}", 0, LUMOS_E_FORMAT, "json-line3", "not valid JSON", "line 3");
    BAD_HEADER("{} x", 0, LUMOS_E_FORMAT, "json-trailing", "not valid JSON", "column");
    BAD_HEADER("{\"\xff\":1}", 0, LUMOS_E_FORMAT, "json-utf8", "not valid JSON", NULL);
    BAD_HEADER("{\"a\\u0000b\":1}", 0, LUMOS_E_FORMAT, "json-nul-key", "not valid JSON", NULL);
    BAD_HEADER("{'a':1}", 0, LUMOS_E_FORMAT, "json-quotes", "not valid JSON", NULL);
    BAD_HEADER("\"abc\"", 0, LUMOS_E_FORMAT, "json-string", NULL, NULL);
    BAD_HEADER("5", 0, LUMOS_E_FORMAT, "json-number", NULL, NULL);
    BAD_HEADER("[1,2]", 0, LUMOS_E_FORMAT, "json-array", "header is an array, not a JSON object",
               NULL);
    BAD_HEADER("        ", 0, LUMOS_E_FORMAT, "json-blank", "not valid JSON", NULL);
    /* NUL padding instead of spaces. */
    bytes f = {0};
    put_le(&f, 8, 8);
    put(&f, "{}\0\0\0\0\0\0", 8);
    EXPECT_FAIL(f, LUMOS_E_FORMAT, "json-nul-padding", "not valid JSON", NULL);
    free(f.p);
    /* Duplicate names. */
    BAD_HEADER("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, LUMOS_E_FORMAT, "duplicate", "not valid JSON", "duplicate");
}

#define E(fields) "{\"conv1.weight\":{" fields "}}"
#define DT "\"dtype\":\"F32\""
#define SH "\"shape\":[1]"
#define OF "\"data_offsets\":[0,4]"

static void test_bad_entries(void)
{
    BAD_HEADER("{\"conv1.weight\":5}", 0, LUMOS_E_FORMAT, "entry-int",
               "conv1.weight: the entry is an integer, not an object", NULL);
    BAD_HEADER("{\"conv1.weight\":[]}", 0, LUMOS_E_FORMAT, "entry-array", "an array", NULL);
    BAD_HEADER(E(SH "," OF), 4, LUMOS_E_FORMAT, "no-dtype", "conv1.weight: no \"dtype\"", NULL);
    BAD_HEADER(E(DT "," OF), 4, LUMOS_E_FORMAT, "no-shape", "conv1.weight: no \"shape\"", NULL);
    BAD_HEADER(E(DT "," SH), 4, LUMOS_E_FORMAT, "no-offsets", "no \"data_offsets\"", NULL);
    BAD_HEADER(E("\"dtype\":32," SH "," OF), 4, LUMOS_E_FORMAT, "dtype-int",
               "\"dtype\" is an integer, not a string", NULL);
    BAD_HEADER(E("\"dtype\":null," SH "," OF), 4, LUMOS_E_FORMAT, "dtype-null", "is null", NULL);
    BAD_HEADER(E(DT ",\"shape\":\"1\"," OF), 4, LUMOS_E_FORMAT, "shape-string",
               "\"shape\" is a string, not an array", NULL);
    BAD_HEADER(E(DT ",\"shape\":{}," OF), 4, LUMOS_E_FORMAT, "shape-object", "an object", NULL);
    BAD_HEADER(E(DT ",\"shape\":[-1]," OF), 4, LUMOS_E_FORMAT, "shape-negative",
               "shape[0] is negative, not a non-negative integer", NULL);
    BAD_HEADER(E(DT ",\"shape\":[2.5]," OF), 4, LUMOS_E_FORMAT, "shape-real",
               "shape[0] is a real number", NULL);
    BAD_HEADER(E(DT ",\"shape\":[1.0]," OF), 4, LUMOS_E_FORMAT, "shape-real-whole",
               "shape[0] is a real number", NULL);
    BAD_HEADER(E(DT ",\"shape\":[1,\"1\"]," OF), 4, LUMOS_E_FORMAT, "shape-dim-string",
               "shape[1] is a string", NULL);
    BAD_HEADER(E(DT ",\"shape\":[1,true]," OF), 4, LUMOS_E_FORMAT, "shape-dim-bool",
               "shape[1] is a boolean", NULL);
    static const char *bad_offsets[] = {
        "[0]", "[0,4,8]", "[-4,0]", "[0,-4]", "[0,4.0]", "[0,\"4\"]", "{}", "\"0,4\"", "[]",
    };
    for (size_t i = 0; i < sizeof bad_offsets / sizeof bad_offsets[0]; i++) {
        char h[256], tag[32];
        snprintf(h, sizeof h, E(DT "," SH ",\"data_offsets\":%s"), bad_offsets[i]);
        snprintf(tag, sizeof tag, "offsets-%zu", i);
        BAD_HEADER(h, 4, LUMOS_E_FORMAT, tag, "\"data_offsets\" is not [begin, end]", NULL);
    }
    BAD_HEADER(E("\"dtype\":\"F31\"," SH "," OF), 4, LUMOS_E_FORMAT, "dtype-unknown",
               "conv1.weight: unknown dtype \"F31\"", NULL);
    BAD_HEADER(E("\"dtype\":\"f32\"," SH "," OF), 4, LUMOS_E_FORMAT, "dtype-lowercase",
               "unknown dtype \"f32\"", NULL);
    BAD_HEADER(E("\"dtype\":\"\"," SH "," OF), 4, LUMOS_E_FORMAT, "dtype-empty",
               "unknown dtype \"\"", NULL);

    /* Offsets and sizes. */
    BAD_HEADER(E(DT "," SH ",\"data_offsets\":[8,4]"), 8, LUMOS_E_FORMAT, "offsets-reversed",
               "data_offsets [8, 4]: begin is after end", NULL);
    BAD_HEADER(E(DT "," SH "," OF), 3, LUMOS_E_FORMAT, "offsets-past",
               "data_offsets [0, 4] run past the end of the data section (3 bytes)", NULL);
    BAD_HEADER(E(DT "," SH ",\"data_offsets\":[12,16]"), 4, LUMOS_E_FORMAT, "offsets-far",
               "run past the end", NULL);
    BAD_HEADER(E(DT ",\"shape\":[2,3],\"data_offsets\":[0,20]"), 20, LUMOS_E_FORMAT,
               "size-f32", "conv1.weight: shape [2,3] of F32 takes 24 bytes",
               "data_offsets [0, 20] hold 20");
    BAD_HEADER(E("\"dtype\":\"F16\",\"shape\":[3]," OF), 4, LUMOS_E_FORMAT, "size-f16",
               "shape [3] of F16 takes 6 bytes", NULL);
    BAD_HEADER(E("\"dtype\":\"BF16\",\"shape\":[1]," OF), 4, LUMOS_E_FORMAT, "size-bf16",
               "takes 2 bytes", NULL);
    BAD_HEADER(E(DT ",\"shape\":[]," "\"data_offsets\":[0,8]"), 8, LUMOS_E_FORMAT,
               "size-scalar", "shape [] of F32 takes 4 bytes", NULL);
    BAD_HEADER(E(DT ",\"shape\":[4294967296,4294967296,4294967296]," OF), 4, LUMOS_E_FORMAT,
               "shape-overflow", "has too many elements", NULL);
    BAD_HEADER(E(DT ",\"shape\":[4611686018427387904,4]," OF), 4, LUMOS_E_FORMAT,
               "shape-overflow2", "too many elements", NULL);
    BAD_HEADER(E(DT ",\"shape\":[2305843009213693952]," OF), 4, LUMOS_E_FORMAT,
               "shape-overflow-bytes", "too many elements", NULL);
    BAD_HEADER(E(DT ",\"shape\":[9223372036854775808]," OF), 4, LUMOS_E_FORMAT,
               "shape-too-big-integer", "not valid JSON", NULL);
    BAD_HEADER(E("\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]"), 2, LUMOS_E_FORMAT,
               "size-f4", "shape [3] of F4 is not a whole number of bytes", NULL);

    /* A zero dimension makes the tensor empty, however large the others. */
    uint8_t none[1];
    bytes f = raw_file(E(DT ",\"shape\":[0,4611686018427387904,4611686018427387904],"
                            "\"data_offsets\":[0,0]"),
                       none, 0);
    lumos__weights *w = OPEN_OK(&f, "zero-dim.safetensors");
    if (w) {
        const float *d = NULL;
        static const int64_t s[] = {0, 4611686018427387904, 4611686018427387904};
        CHECK(lumos__weights_get(ctx, w, "conv1.weight", 3, s, &d) == LUMOS_OK && d,
              "empty tensor: %s", lumos_last_error(ctx));
        lumos__weights_free(w);
    }
    free(f.p);

    /* Extra keys in an entry are ignored, as the reference reader does. */
    f = raw_file(E(DT "," SH "," OF ",\"comment\":\"x\""), "\0\0\x80\x3f", 4);
    w = OPEN_OK(&f, "extra-key.safetensors");
    lumos__weights_free(w);
    free(f.p);
}

static void test_unsupported(void)
{
    static const struct { const char *dtype; int bytes; const char *reason; } u[] = {
        {"I64", 16, "conv1.weight: dtype I64 is not a float type"},
        {"I32", 8, "dtype I32 is not a float type"},
        {"U8", 2, "dtype U8 is not a float type"},
        {"BOOL", 2, "dtype BOOL is not a float type"},
        {"C64", 16, "dtype C64 is not a float type"},
        {"F64", 16, "conv1.weight: dtype F64 is not supported"},
        {"F8_E4M3", 2, "dtype F8_E4M3 is not supported"},
        {"F8_E5M2", 2, "dtype F8_E5M2 is not supported"},
        {"F4", 1, "dtype F4 is not supported"},
    };
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        char h[256], tag[32];
        snprintf(h, sizeof h, E("\"dtype\":\"%s\",\"shape\":[2],\"data_offsets\":[0,%d]"),
                 u[i].dtype, u[i].bytes);
        snprintf(tag, sizeof tag, "unsupported-%s", u[i].dtype);
        BAD_HEADER(h, (size_t)u[i].bytes, LUMOS_E_UNSUPPORTED, tag, u[i].reason, NULL);
    }
    /* Beside good tensors. */
    BAD_HEADER("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[4,8]}}",
               8, LUMOS_E_UNSUPPORTED, "unsupported-beside", "b: dtype I8 is not a float type",
               NULL);
    /* A damaged file is damaged first: the I64 entry is fine, the F32 one is not. */
    BAD_HEADER("{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,12]}}",
               12, LUMOS_E_FORMAT, "unsupported-and-damaged", "b: shape [2] of F32 takes 8", NULL);
    BAD_HEADER("{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 12,
               LUMOS_E_FORMAT, "unsupported-and-trailing", "after the last tensor", NULL);
    /* The size of an unsupported tensor is checked too. */
    BAD_HEADER(E("\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,8]"), 8, LUMOS_E_FORMAT,
               "unsupported-size", "shape [2] of I64 takes 16 bytes", NULL);
}

static void test_layout(void)
{
#define T(name, b, e, n) \
    "\"" name "\":{\"dtype\":\"F32\",\"shape\":[" #n "],\"data_offsets\":[" #b "," #e "]}"
    BAD_HEADER("{" T("a", 0, 16, 4) "," T("b", 8, 24, 4) "}", 24, LUMOS_E_FORMAT, "overlap",
               "tensors a [0, 16] and b [8, 24] overlap", NULL);
    BAD_HEADER("{" T("b", 8, 24, 4) "," T("a", 0, 16, 4) "}", 24, LUMOS_E_FORMAT,
               "overlap-order", "tensors a [0, 16] and b [8, 24] overlap", NULL);
    BAD_HEADER("{" T("a", 0, 8, 2) "," T("b", 0, 8, 2) "}", 8, LUMOS_E_FORMAT, "overlap-same",
               "overlap", NULL);
    BAD_HEADER("{" T("a", 0, 16, 4) "," T("b", 4, 8, 1) "}", 16, LUMOS_E_FORMAT,
               "overlap-inside", "overlap", NULL);
    BAD_HEADER("{" T("a", 0, 8, 2) "," T("z", 4, 4, 0) "}", 8, LUMOS_E_FORMAT, "overlap-empty",
               "tensors a [0, 8] and z [4, 4] overlap", NULL);
    BAD_HEADER("{" T("a", 0, 8, 2) "," T("b", 12, 20, 2) "}", 20, LUMOS_E_FORMAT, "hole",
               "data bytes [8, 12) before tensor b are not part of any tensor", NULL);
    BAD_HEADER("{" T("a", 4, 12, 2) "}", 12, LUMOS_E_FORMAT, "hole-start",
               "data bytes [0, 4) before tensor a", NULL);
    BAD_HEADER("{" T("a", 0, 8, 2) "}", 12, LUMOS_E_FORMAT, "trailing",
               "4 bytes after the last tensor", NULL);
    BAD_HEADER("{}", 1, LUMOS_E_FORMAT, "trailing-empty", "1 bytes after the last tensor", NULL);

    /* Any order in the header, empty tensors between and after others. */
    uint8_t d[16] = {0};
    bytes f = raw_file("{" T("b", 8, 16, 2) "," T("z", 8, 8, 0) "," T("a", 0, 8, 2) ","
                       T("end", 16, 16, 0) "}", d, 16);
    lumos__weights *w = OPEN_OK(&f, "any-order.safetensors");
    CHECK(w && lumos__weights_count(w) == 4, "any order");
    lumos__weights_free(w);
    free(f.p);
#undef T
}

/* The prefixes of a good file are all rejected as damaged. */
static void test_truncated(void)
{
    bytes d1 = {0}, d2 = {0};
    for (int i = 0; i < 8; i++) put_f32(&d1, (float)i);
    for (int i = 0; i < 3; i++) put_le(&d2, 0x3c00 + i, 2);
    tspec ts[] = {{"w", "F32", 2, {2, 4}, &d1}, {"h", "F16", 1, {3}, &d2}};
    bytes f = make_file(ts, 2, "{\"format\":\"pt\"}", 8);
    size_t hlen = (size_t)f.p[0] | (size_t)f.p[1] << 8;
    size_t cuts[] = {0, 1, 7, 8, 9, 8 + hlen / 2, 8 + hlen - 1, 8 + hlen, 8 + hlen + 1,
                     8 + hlen + 16, 8 + hlen + 32, 8 + hlen + 33, f.n - 1};
    lumos__weights *w = OPEN_OK(&f, "whole.safetensors");
    lumos__weights_free(w);
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        bytes t = {f.p, cuts[i], cuts[i]};
        char tag[32];
        snprintf(tag, sizeof tag, "truncated-%zu", cuts[i]);
        const char *why = cuts[i] < 8 ? "too short"
                          : cuts[i] < 8 + hlen ? "runs past the end of the file"
                                               : "run past the end of the data section";
        EXPECT_FAIL(t, LUMOS_E_FORMAT, tag, why, NULL);
    }
    /* Every prefix, from memory only. */
    for (size_t n = 0; n < f.n; n++) {
        lumos__weights *x = NULL;
        int rc = lumos__weights_open_memory(ctx, f.p, n, "prefix", &x);
        if (rc != LUMOS_E_FORMAT || x) {
            CHECK(rc == LUMOS_E_FORMAT && !x, "prefix of %zu bytes: %d", n, rc);
            break;
        }
    }
    free(f.p);
    free(d1.p);
    free(d2.p);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_random(void)
{
    /* Random bytes. */
    for (int i = 0; i < 300; i++) {
        bytes f = {0};
        size_t n = (size_t)(rnd() % 300);
        for (size_t k = 0; k < n; k++) put_le(&f, rnd(), 1);
        lumos__weights *w = NULL;
        int rc = lumos__weights_open_memory(ctx, f.p, f.n, "random", &w);
        CHECK(rc == LUMOS_E_FORMAT && !w && strncmp(lumos_last_error(ctx), "random: ", 8) == 0,
              "random %d (%zu bytes): %d %s", i, n, rc, lumos_last_error(ctx));
        lumos__weights_free(w);
        free(f.p);
    }
    /* A plausible length and JSON-ish noise. */
    static const char alphabet[] = "{}[]\":, 0123456789-.eEtrufalsn\\F3216BIdtypeshaofs_";
    for (int i = 0; i < 2000; i++) {
        bytes f = {0};
        size_t n = 1 + (size_t)(rnd() % 120);
        put_le(&f, n, 8);
        put(&f, "{", 1);
        size_t len = n + (size_t)(rnd() % 8); /* sometimes data after the header */
        for (size_t k = 1; k < len; k++) put(&f, &alphabet[rnd() % (sizeof alphabet - 1)], 1);
        lumos__weights *w = NULL;
        int rc = lumos__weights_open_memory(ctx, f.p, f.n, "noise", &w);
        CHECK(rc == LUMOS_OK || rc == LUMOS_E_FORMAT || rc == LUMOS_E_UNSUPPORTED,
              "noise %d: %d %s", i, rc, lumos_last_error(ctx));
        CHECK(rc == LUMOS_OK || strncmp(lumos_last_error(ctx), "noise: ", 7) == 0, "noise %d: %s",
              i, lumos_last_error(ctx));
        lumos__weights_free(w);
        free(f.p);
    }
    /* One byte of a good file changed at a time. */
    bytes d1 = {0}, d2 = {0};
    for (int i = 0; i < 6; i++) put_f32(&d1, (float)i);
    for (int i = 0; i < 4; i++) put_le(&d2, 0x3f80 + i, 2);
    tspec ts[] = {{"a", "F32", 2, {2, 3}, &d1}, {"b", "BF16", 1, {4}, &d2}};
    bytes good = make_file(ts, 2, "{\"k\":\"v\"}", 8);
    int opened = 0;
    for (int i = 0; i < 3000; i++) {
        bytes f = {0};
        put(&f, good.p, good.n);
        f.p[rnd() % f.n] = (uint8_t)rnd();
        lumos__weights *w = NULL;
        int rc = lumos__weights_open_memory(ctx, f.p, f.n, "mutant", &w);
        CHECK(rc == LUMOS_OK || rc == LUMOS_E_FORMAT || rc == LUMOS_E_UNSUPPORTED,
              "mutant %d: %d %s", i, rc, lumos_last_error(ctx));
        CHECK((rc == LUMOS_OK) == (w != NULL), "mutant %d: status %d, weights %p", i, rc,
              (void *)w);
        if (w) {
            opened++;
            for (size_t k = 0; k < lumos__weights_count(w); k++)
                CHECK(lumos__weights_name(w, k) != NULL, "mutant %d: name %zu", i, k);
        }
        lumos__weights_free(w);
        free(f.p);
    }
    CHECK(opened > 0, "no mutant opened (the data bytes are free to change)");
    free(good.p);
    free(d1.p);
    free(d2.p);
}

static void test_os_errors(void)
{
    lumos__weights *w = (lumos__weights *)&w;
    int rc = lumos__weights_open(ctx, tmpdir, &w);
    CHECK(rc == LUMOS_E_IO && !w, "directory: %d", rc);
    CHECK(strncmp(lumos_last_error(ctx), tmpdir, strlen(tmpdir)) == 0 &&
              strstr(lumos_last_error(ctx), strerror(EISDIR)),
          "directory message: %s", lumos_last_error(ctx));

    char path[700];
    snprintf(path, sizeof path, "%s/missing.safetensors", tmpdir);
    w = (lumos__weights *)&w;
    rc = lumos__weights_open(ctx, path, &w);
    CHECK(rc == LUMOS_E_IO && !w, "missing file: %d", rc);
    CHECK(strncmp(lumos_last_error(ctx), path, strlen(path)) == 0 &&
              strstr(lumos_last_error(ctx), strerror(ENOENT)),
          "missing file message: %s", lumos_last_error(ctx));

    snprintf(path, sizeof path, "%s/missing/x.safetensors", tmpdir);
    rc = lumos__weights_open(ctx, path, &w);
    CHECK(rc == LUMOS_E_IO && strstr(lumos_last_error(ctx), strerror(ENOENT)),
          "missing directory: %d %s", rc, lumos_last_error(ctx));

    /* Arguments. */
    CHECK(lumos__weights_open(ctx, NULL, &w) == LUMOS_E_ARG && !w, "NULL path");
    CHECK(lumos__weights_open(ctx, path, NULL) == LUMOS_E_ARG, "NULL out");
    CHECK(lumos__weights_open_memory(ctx, NULL, 8, "x", &w) == LUMOS_E_ARG && !w, "NULL buffer");
    CHECK(lumos__weights_open_memory(ctx, NULL, 0, NULL, &w) == LUMOS_E_FORMAT &&
              strncmp(lumos_last_error(ctx), "<memory>: ", 10) == 0,
          "no name: %s", lumos_last_error(ctx));
    CHECK(lumos__weights_count(NULL) == 0 && lumos__weights_name(NULL, 0) == NULL, "NULL weights");
    lumos__weights_free(NULL);
    /* A NULL context is allowed, as everywhere in lumos. */
    CHECK(lumos__weights_open(NULL, path, &w) == LUMOS_E_IO, "NULL context");
}

int main(void)
{
    ctx = lumos_ctx_new();
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/lumos-weights-XXXXXX", base && *base ? base : "/tmp");
    if (!ctx || !mkdtemp(tmpdir)) {
        fprintf(stderr, "set-up failed: %s\n", strerror(errno));
        return 2;
    }
    test_good_f32();
    test_half_types();
    test_metadata_and_names();
    test_torch_layout();
    test_bad_lengths();
    test_bad_json();
    test_bad_entries();
    test_unsupported();
    test_layout();
    test_truncated();
    test_random();
    test_os_errors();
    rmdir(tmpdir);
    lumos_ctx_free(ctx);
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    else printf("test_weights: all checks passed\n");
    return failures ? 1 : 0;
}
