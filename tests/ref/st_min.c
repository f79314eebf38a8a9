/* st_min.c — see st_min.h. A recursive-descent walk of just enough JSON. */
#include "ref/st_min.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *p, *end, *start;
    char *err;
    size_t errlen;
} jcur;

static int fail(jcur *j, const char *what) {
    snprintf(j->err, j->errlen, "header JSON: %s at byte %td", what, j->p - j->start);
    return -1;
}

static void ws(jcur *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static int expect(jcur *j, char c) {
    ws(j);
    if (j->p >= j->end || *j->p != c) return fail(j, "unexpected character");
    j->p++;
    return 0;
}

/* A string into out (truncation is an error); escapes \" \\ \/ kept literally. */
static int jstring(jcur *j, char *out, size_t cap) {
    if (expect(j, '"')) return -1;
    size_t n = 0;
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\') {
            if (j->p >= j->end) break;
            c = *j->p++;
            if (c != '"' && c != '\\' && c != '/') return fail(j, "unsupported escape");
        }
        if (n + 1 >= cap) return fail(j, "string too long");
        out[n++] = c;
    }
    if (j->p >= j->end) return fail(j, "unterminated string");
    j->p++;
    out[n] = 0;
    return 0;
}

static int jint(jcur *j, int64_t *v) {
    ws(j);
    char *e;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return fail(j, "expected an integer");
    long long x = strtoll(j->p, &e, 10);
    if (e > j->end) return fail(j, "number past the header");
    j->p = e;
    *v = x;
    return 0;
}

/* [int, int, ...] into v (at most cap); *n the count. */
static int jints(jcur *j, int64_t *v, int cap, int *n) {
    if (expect(j, '[')) return -1;
    *n = 0;
    ws(j);
    if (j->p < j->end && *j->p == ']') { j->p++; return 0; }
    for (;;) {
        if (*n >= cap) return fail(j, "array too long");
        if (jint(j, &v[(*n)++])) return -1;
        ws(j);
        if (j->p < j->end && *j->p == ',') { j->p++; continue; }
        return expect(j, ']');
    }
}

/* Skips any value (objects, arrays, strings, scalars). */
static int jskip(jcur *j, int depth) {
    char tmp[1024];
    ws(j);
    if (j->p >= j->end || depth > 16) return fail(j, "bad value");
    char c = *j->p;
    if (c == '"') return jstring(j, tmp, sizeof tmp);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        ws(j);
        if (j->p < j->end && *j->p == close) { j->p++; return 0; }
        for (;;) {
            if (c == '{') {
                if (jstring(j, tmp, sizeof tmp) || expect(j, ':')) return -1;
            }
            if (jskip(j, depth + 1)) return -1;
            ws(j);
            if (j->p < j->end && *j->p == ',') { j->p++; continue; }
            return expect(j, close);
        }
    }
    while (j->p < j->end && *j->p != ',' && *j->p != '}' && *j->p != ']') j->p++;
    return 0;
}

static int tensor_entry(jcur *j, st_tensor *t, int64_t off[2]) {
    char key[64], dtype[16] = "";
    int noff = 0, have_shape = 0;
    if (expect(j, '{')) return -1;
    for (;;) {
        if (jstring(j, key, sizeof key) || expect(j, ':')) return -1;
        if (!strcmp(key, "dtype")) {
            if (jstring(j, dtype, sizeof dtype)) return -1;
        } else if (!strcmp(key, "shape")) {
            if (jints(j, t->shape, 8, &t->ndim)) return -1;
            have_shape = 1;
        } else if (!strcmp(key, "data_offsets")) {
            if (jints(j, off, 2, &noff)) return -1;
        } else if (jskip(j, 0)) {
            return -1;
        }
        ws(j);
        if (j->p < j->end && *j->p == ',') { j->p++; continue; }
        if (expect(j, '}')) return -1;
        break;
    }
    if (strcmp(dtype, "F32")) return fail(j, "dtype is not F32");
    if (!have_shape || noff != 2) return fail(j, "shape or data_offsets missing");
    return 0;
}

int st_load(const char *path, st_file *f, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) { snprintf(err, errlen, "%s: cannot open", path); return -1; }
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->buf = size > 0 ? malloc((size_t)size) : NULL;
    if (!f->buf || fread(f->buf, 1, (size_t)size, fp) != (size_t)size) {
        fclose(fp);
        snprintf(err, errlen, "%s: cannot read", path);
        st_free(f);
        return -1;
    }
    fclose(fp);
    f->size = (size_t)size;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0 && f->size >= 8; i--) hlen = hlen << 8 | f->buf[i];
    if (f->size < 8 || hlen > f->size - 8 || (8 + hlen) % 4) {
        snprintf(err, errlen, "%s: bad header length", path);
        st_free(f);
        return -1;
    }
    const unsigned char *data = f->buf + 8 + hlen;
    size_t data_size = f->size - 8 - hlen;
    const char *hdr = (const char *)f->buf + 8;
    jcur j = {hdr, hdr + hlen, hdr, err, errlen};
    size_t cap = 0;
    if (expect(&j, '{')) goto bad;
    ws(&j);
    if (j.p < j.end && *j.p == '}') return 0;
    for (;;) {
        char name[128];
        if (jstring(&j, name, sizeof name) || expect(&j, ':')) goto bad;
        if (!strcmp(name, "__metadata__")) {
            if (jskip(&j, 0)) goto bad;
        } else {
            if (f->count == cap) {
                cap = cap ? 2 * cap : 32;
                st_tensor *t = realloc(f->tensors, cap * sizeof *t);
                if (!t) { snprintf(err, errlen, "out of memory"); goto bad; }
                f->tensors = t;
            }
            st_tensor *t = &f->tensors[f->count];
            memset(t, 0, sizeof *t);
            strcpy(t->name, name);
            int64_t off[2];
            if (tensor_entry(&j, t, off)) goto bad;
            size_t count = 1;
            for (int d = 0; d < t->ndim; d++) count *= (size_t)t->shape[d];
            if (off[0] > off[1] || (uint64_t)off[1] > data_size || off[0] % 4 ||
                (size_t)(off[1] - off[0]) != 4 * count) {
                snprintf(err, errlen, "%s: tensor %s: bad data_offsets", path, name);
                goto bad;
            }
            t->count = count;
            t->data = (const float *)(const void *)(data + off[0]);
            f->count++;
        }
        ws(&j);
        if (j.p < j.end && *j.p == ',') { j.p++; continue; }
        if (expect(&j, '}')) goto bad;
        break;
    }
    return 0;
bad:
    st_free(f);
    return -1;
}

void st_free(st_file *f) {
    free(f->buf);
    free(f->tensors);
    memset(f, 0, sizeof *f);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    for (size_t i = 0; i < f->count; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}
