/* exif.c — the EXIF block written into JPEG output, and the check and
 * rewrite of a block read from a file (metadata passthrough, meta.c).
 *
 * Layout (little-endian TIFF): header "II*\0" + offset 8 | IFD0 | IFD0's
 * out-of-line values | Exif IFD | its values. Each IFD's tags ascend, and
 * every out-of-line value starts on an even offset, as TIFF 6.0 requires. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"

enum { T_SHORT = 3, T_ASCII = 2, T_LONG = 4, T_RATIONAL = 5, T_UNDEFINED = 7 };

typedef struct {
    uint16_t tag, type;
    uint32_t count;
    size_t len;       /* bytes of value */
    uint8_t val[72];  /* the value, already little-endian */
} entry;

typedef struct {
    entry e[12];
    int n;
} ifd;

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v & 0xffff);
    put16(p + 2, v >> 16);
}

static entry *add(ifd *d, uint16_t tag, uint16_t type, uint32_t count, size_t len)
{
    entry *e = &d->e[d->n++];
    e->tag = tag, e->type = type, e->count = count, e->len = len;
    memset(e->val, 0, sizeof e->val);
    return e;
}

/* Strings from lumos_exif need not be NUL-terminated within their arrays. */
static void add_ascii(ifd *d, uint16_t tag, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    while (n > 0 && s[n - 1] == ' ') n--; /* makers pad Make/Model with spaces */
    if (n == 0) return;
    entry *e = add(d, tag, T_ASCII, (uint32_t)n + 1, n + 1);
    memcpy(e->val, s, n);
}

static void add_short(ifd *d, uint16_t tag, uint32_t v)
{
    put16(add(d, tag, T_SHORT, 1, 2)->val, v);
}

static uint32_t gcd(uint32_t a, uint32_t b)
{
    while (b) {
        uint32_t t = a % b;
        a = b, b = t;
    }
    return a;
}

/* v as a reduced rational: shutter times below a second as 1/N when that is
 * what they are (1/250, not 4/1000); otherwise at a precision of 1e-4. */
static void add_rational(ifd *d, uint16_t tag, double v)
{
    if (!(v > 0) || v > 4e5) return; /* unknown (0, NaN) or beyond a LONG */
    uint32_t num, den;
    double inv = 1.0 / v;
    if (v < 1 && inv < 4e9 && fabs(round(inv) - inv) < 1e-3 * inv) {
        num = 1, den = (uint32_t)round(inv);
    } else {
        den = 10000;
        while (den > 1 && v * den > 4e9) den /= 10;
        num = (uint32_t)round(v * den);
        if (num == 0) return;
        uint32_t g = gcd(num, den);
        num /= g, den /= g;
    }
    uint8_t *p = add(d, tag, T_RATIONAL, 1, 8)->val;
    put32(p, num);
    put32(p + 4, den);
}

static size_t ifd_size(const ifd *d)
{
    size_t n = 2 + 12 * (size_t)d->n + 4;
    for (int i = 0; i < d->n; i++)
        if (d->e[i].len > 4) n += (d->e[i].len + 1) & ~(size_t)1;
    return n;
}

/* Writes d at offset off of buf (next-IFD link 0); its values follow it. */
static void write_ifd(uint8_t *buf, size_t off, const ifd *d)
{
    uint8_t *p = buf + off;
    size_t data = off + 2 + 12 * (size_t)d->n + 4;
    put16(p, (uint32_t)d->n);
    p += 2;
    for (int i = 0; i < d->n; i++, p += 12) {
        const entry *e = &d->e[i];
        put16(p, e->tag);
        put16(p + 2, e->type);
        put32(p + 4, e->count);
        if (e->len <= 4) {
            memcpy(p + 8, e->val, e->len); /* left-justified in the field */
        } else {
            put32(p + 8, (uint32_t)data);
            memcpy(buf + data, e->val, e->len);
            data += (e->len + 1) & ~(size_t)1;
        }
    }
    put32(p, 0);
}

uint8_t *lumos__exif_block(const lumos_exif *exif, size_t *size)
{
    *size = 0;
    if (!exif) return NULL;
    ifd d0 = {.n = 0}, dx = {.n = 0};

    /* IFD0, tags ascending. Pixels are written upright, hence Orientation 1. */
    add_ascii(&d0, 0x010F, exif->make, sizeof exif->make);
    add_ascii(&d0, 0x0110, exif->model, sizeof exif->model);
    add_short(&d0, 0x0112, 1);
    add_ascii(&d0, 0x0131, "lumos " LUMOS_VERSION_STRING, 32);
    /* EXIF dates are exactly "YYYY:MM:DD HH:MM:SS" (count 20); skip others. */
    int has_date = strnlen(exif->datetime, sizeof exif->datetime) == 19;
    if (has_date) add_ascii(&d0, 0x0132, exif->datetime, sizeof exif->datetime);
    entry *exif_ptr = add(&d0, 0x8769, T_LONG, 1, 4);

    /* Exif IFD, tags ascending. */
    add_rational(&dx, 0x829A, exif->exposure_s);
    add_rational(&dx, 0x829D, exif->aperture);
    if (exif->iso >= 0.5f)
        add_short(&dx, 0x8827, exif->iso > 65535.f ? 65535u : (uint32_t)lroundf(exif->iso));
    memcpy(add(&dx, 0x9000, T_UNDEFINED, 4, 4)->val, "0230", 4);
    if (has_date) add_ascii(&dx, 0x9003, exif->datetime, sizeof exif->datetime);
    add_rational(&dx, 0x920A, exif->focal_mm);

    size_t off0 = 8, offx = off0 + ifd_size(&d0), total = offx + ifd_size(&dx);
    put32(exif_ptr->val, (uint32_t)offx);
    uint8_t *buf = calloc(1, total);
    if (!buf) return NULL;
    memcpy(buf, "II*\0", 4);
    put32(buf + 4, (uint32_t)off0);
    write_ifd(buf, off0, &d0);
    write_ifd(buf, offx, &dx);
    *size = total;
    return buf;
}

/* ------------------------------------------- blocks read from files, rewritten */

/* A block of either byte order; offsets count from its TIFF header. */
typedef struct {
    uint8_t *b; /* const for reading; the copy being rewritten for writing */
    size_t n;
    int be;     /* "MM": big-endian */
} tiffbuf;

static uint32_t rd16(const tiffbuf *t, size_t off)
{
    const uint8_t *p = t->b + off;
    return t->be ? (uint32_t)p[0] << 8 | p[1] : (uint32_t)p[1] << 8 | p[0];
}

static uint32_t rd32(const tiffbuf *t, size_t off)
{
    return t->be ? rd16(t, off) << 16 | rd16(t, off + 2) : rd16(t, off + 2) << 16 | rd16(t, off);
}

static void wr16(const tiffbuf *t, size_t off, uint32_t v)
{
    uint8_t *p = t->b + off;
    if (t->be) p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v;
    else p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}

static void wr32(const tiffbuf *t, size_t off, uint32_t v)
{
    wr16(t, off + (t->be ? 0 : 2), v >> 16);
    wr16(t, off + (t->be ? 2 : 0), v & 0xffff);
}

/* Bytes a value of each TIFF type takes (0: a type TIFF 6.0 does not know,
 * whose size cannot be checked; 13 is the IFD type of TIFF tech note 1). */
static size_t type_size(uint32_t type)
{
    static const uint8_t sz[14] = {0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4};
    return type < 14 ? sz[type] : 0;
}

enum { IFD_0, IFD_EXIF, IFD_OTHER }; /* GPS and Interoperability IFDs: no sub-IFDs followed */

typedef struct {
    size_t ifd0, exif_ifd;  /* offsets (exif_ifd 0: none) */
    size_t orient_at;       /* IFD0's Orientation entry, 0 if none */
    int orientation;        /* its SHORT value, -1 for another type, 0 if none */
    uint32_t ifd1;          /* IFD0's link to the next IFD (the thumbnail's) */
    size_t end;             /* where the bytes of IFD0 and its sub-IFDs end */
} layout;

/* Checks the IFD at off and, for IFD0 and the Exif IFD, the IFDs they
 * point to: the nesting is at most IFD0 > Exif > Interoperability, so a
 * pointer back cannot loop. lay->end grows to cover what it finds. */
static const char *walk(const tiffbuf *t, size_t off, int kind, layout *lay)
{
    if (off < 8 || off > t->n || t->n - off < 6) return "an IFD lies outside the block";
    size_t count = rd16(t, off);
    if ((t->n - off - 6) / 12 < count) return "an IFD runs past the end of the block";
    size_t table_end = off + 2 + 12 * count + 4;
    if (table_end > lay->end) lay->end = table_end;
    for (size_t i = 0; i < count; i++) {
        size_t e = off + 2 + 12 * i;
        uint32_t tag = rd16(t, e), type = rd16(t, e + 2), n = rd32(t, e + 4);
        size_t sz = type_size(type);
        if (sz && n > t->n / sz) return "a value runs past the end of the block";
        size_t len = sz * n;
        if (len > 4) {
            size_t v = rd32(t, e + 8);
            if (v < 8 || v > t->n || t->n - v < len) return "a value lies outside the block";
            if (v + len > lay->end) lay->end = v + len;
        }
        if ((kind == IFD_0 && (tag == 0x8769 || tag == 0x8825)) ||
            (kind == IFD_EXIF && tag == 0xA005)) {
            if ((type != 4 && type != 13) || n != 1) return "a sub-IFD pointer of the wrong type";
            size_t sub = rd32(t, e + 8);
            const char *why = walk(t, sub, tag == 0x8769 ? IFD_EXIF : IFD_OTHER, lay);
            if (why) return why;
            if (tag == 0x8769) lay->exif_ifd = sub;
        }
        if (kind == IFD_0 && tag == 0x0112) {
            lay->orient_at = e;
            lay->orientation = type == 3 && n == 1 ? (int)rd16(t, e + 8) : -1;
        }
    }
    if (kind == IFD_0) lay->ifd1 = rd32(t, off + 2 + 12 * count);
    return NULL;
}

static const char *parse(const uint8_t *b, size_t n, tiffbuf *t, layout *lay)
{
    memset(lay, 0, sizeof *lay);
    if (!b || n < 8) return "shorter than a TIFF header";
    if (!memcmp(b, "II*\0", 4)) t->be = 0;
    else if (!memcmp(b, "MM\0*", 4)) t->be = 1;
    else return "no TIFF header";
    t->b = (uint8_t *)(uintptr_t)b; /* read only */
    t->n = n;
    lay->ifd0 = rd32(t, 4);
    lay->end = 8;
    return walk(t, lay->ifd0, IFD_0, lay);
}

const char *lumos__exif_check(const uint8_t *exif, size_t n, int *orientation)
{
    tiffbuf t;
    layout lay;
    const char *why = parse(exif, n, &t, &lay);
    *orientation = why ? 0 : lay.orientation;
    return why;
}

/* Where the thumbnail's bytes start, when IFD1 and its JPEG lie after
 * everything IFD0 uses: those bytes can go. 0 when they cannot. */
static size_t thumbnail_start(const tiffbuf *t, const layout *lay)
{
    size_t at = lay->ifd1;
    if (at < lay->end || at > t->n || t->n - at < 6) return 0;
    size_t count = rd16(t, at), start = at;
    if ((t->n - at - 6) / 12 < count) return 0;
    for (size_t i = 0; i < count; i++) {
        size_t e = at + 2 + 12 * i, v = rd32(t, e + 8);
        uint32_t tag = rd16(t, e), type = rd16(t, e + 2);
        size_t len = type_size(type) * rd32(t, e + 4);
        /* JPEGInterchangeFormat points at the JPEG; other values may lie
         * before the table. Anything before IFD0's end stays. */
        if (tag == 0x0201 || len > 4) {
            if (v < lay->end) return 0;
            if (v < start) start = v;
        }
    }
    return start;
}

int lumos__exif_rewrite(const uint8_t *exif, size_t n, int orientation, int width, int height,
                        uint8_t **out, size_t *out_size)
{
    *out = NULL;
    *out_size = 0;
    if (!exif) { /* just the orientation: header, IFD0 of one entry */
        if (orientation == 1) return LUMOS_OK;
        uint8_t *b = calloc(1, 26);
        if (!b) return LUMOS_E_NOMEM;
        memcpy(b, "II*\0", 4);
        put32(b + 4, 8);
        put16(b + 8, 1);
        put16(b + 10, 0x0112), put16(b + 12, T_SHORT), put32(b + 14, 1);
        put16(b + 18, (uint32_t)orientation);
        *out = b;
        *out_size = 26;
        return LUMOS_OK;
    }
    tiffbuf src;
    layout lay;
    if (parse(exif, n, &src, &lay)) return LUMOS_E_FORMAT;

    size_t len = n;
    if (lay.ifd1) {
        size_t cut = thumbnail_start(&src, &lay);
        if (cut) len = cut;
    }
    const size_t count0 = rd16(&src, lay.ifd0);
    const int add = !lay.orient_at && orientation != 1;
    const size_t at = (len + 1) & ~(size_t)1; /* a new IFD0 starts on a word */
    const size_t total = add ? at + 2 + 12 * (count0 + 1) + 4 : len;
    tiffbuf t = {.b = calloc(1, total), .n = total, .be = src.be};
    if (!t.b) return LUMOS_E_NOMEM;
    memcpy(t.b, exif, len);

    wr32(&t, lay.ifd0 + 2 + 12 * count0, 0); /* unlink IFD1 */
    if (lay.orient_at) {
        wr16(&t, lay.orient_at + 2, T_SHORT);
        wr32(&t, lay.orient_at + 4, 1);
        wr32(&t, lay.orient_at + 8, 0);
        wr16(&t, lay.orient_at + 8, (uint32_t)orientation);
    } else if (add) {
        /* IFD0 again at the end, with the tag in its place (tags ascend);
         * values keep their offsets, the old table is left unused. */
        wr16(&t, at, (uint32_t)count0 + 1);
        size_t d = at + 2;
        int done = 0;
        for (size_t i = 0; i <= count0; i++) {
            size_t s = lay.ifd0 + 2 + 12 * i;
            if (!done && (i == count0 || rd16(&src, s) > 0x0112)) {
                wr16(&t, d, 0x0112), wr16(&t, d + 2, T_SHORT), wr32(&t, d + 4, 1);
                wr32(&t, d + 8, 0);
                wr16(&t, d + 8, (uint32_t)orientation);
                d += 12;
                done = 1;
            }
            if (i < count0) {
                memcpy(t.b + d, exif + s, 12);
                d += 12;
            }
        }
        wr32(&t, d, 0);
        wr32(&t, 4, (uint32_t)at);
    }
    /* The Exif IFD's PixelXDimension and PixelYDimension: this image's. */
    if (lay.exif_ifd) {
        size_t count = rd16(&t, lay.exif_ifd);
        for (size_t i = 0; i < count; i++) {
            size_t e = lay.exif_ifd + 2 + 12 * i;
            uint32_t tag = rd16(&t, e), type = rd16(&t, e + 2);
            if ((tag != 0xA002 && tag != 0xA003) || (type != T_SHORT && type != T_LONG) ||
                rd32(&t, e + 4) != 1)
                continue;
            uint32_t v = (uint32_t)(tag == 0xA002 ? width : height);
            wr32(&t, e + 8, 0);
            if (type == T_SHORT && v <= 65535) {
                wr16(&t, e + 8, v);
            } else {
                wr16(&t, e + 2, T_LONG);
                wr32(&t, e + 8, v);
            }
        }
    }
    *out = t.b;
    *out_size = total;
    return LUMOS_OK;
}
