/* exif.c — the EXIF block written into JPEG output.
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
