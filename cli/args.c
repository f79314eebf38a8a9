/* args.c — option parsing and string lists shared by the lumos commands. */
#include "args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lumos.h"

const char *const cli_prog = "lumos";

void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", cli_prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see '%s --help')\n", cli_prog);
    va_end(ap);
    exit(EXIT_USAGE);
}

double parse_number(const char *opt, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        die_usage("%s: '%s' is not a number in %g..%g", opt, s, lo, hi);
    return v;
}

int parse_int(const char *opt, const char *s, int lo, int hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        die_usage("%s: '%s' is not an integer in %d..%d", opt, s, lo, hi);
    return (int)v;
}

/* "--name value" or "--name=value"; advances *i past what it used. */
static const char *option_value(int argc, char **argv, int *i, const char *name)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) == 0 && a[n] == '=') return a + n + 1;
    if (strcmp(a, name) == 0) {
        if (*i + 1 >= argc) die_usage("%s needs a value", name);
        return argv[++*i];
    }
    return NULL;
}

int is_option(int argc, char **argv, int *i, const char *name, const char *alias,
              const char **value)
{
    *value = option_value(argc, argv, i, name);
    if (!*value && alias) *value = option_value(argc, argv, i, alias);
    return *value != NULL;
}

void strlist_add(strlist *l, const char *s)
{
    if (l->count == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->items = realloc(l->items, l->cap * sizeof *l->items);
        if (!l->items) { perror(cli_prog); exit(EXIT_SOME_FAILED); }
    }
    l->items[l->count] = strdup(s);
    if (!l->items[l->count]) { perror(cli_prog); exit(EXIT_SOME_FAILED); }
    l->count++;
}

void strlist_free(strlist *l)
{
    for (size_t i = 0; i < l->count; i++) free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int has_raw_suffix(const char *name)
{
    static const char *const suffixes[] = {
        "cr2", "cr3", "crw", "nef", "nrw", "arw", "srf", "sr2", "raf", "orf", "rw2", "rwl",
        "pef", "ptx", "dng", "srw", "x3f", "3fr", "fff", "iiq", "mos", "mrw", "erf", "kdc",
        "dcr", "mef", "raw", "gpr"};
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return 0;
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
        if (strcasecmp(dot + 1, suffixes[i]) == 0) return 1;
    return 0;
}

int net_known(const char *task, const char *name)
{
    const char *known;
    for (int i = 0; (known = lumos_net_list(task, i)); i++)
        if (!strcmp(known, name)) return 1;
    return 0;
}

void net_names(const char *task, char *dst, size_t n)
{
    dst[0] = 0;
    const char *name;
    for (int i = 0; (name = lumos_net_list(task, i)); i++) {
        size_t len = strlen(dst);
        const char *sep = !i ? "" : lumos_net_list(task, i + 1) ? ", " : " or ";
        snprintf(dst + len, n - len, "%s%s", sep, name);
    }
}

lumos_format parse_format(const char *s, int allow_exr)
{
    if (!strcmp(s, "jpeg") || !strcmp(s, "jpg")) return LUMOS_FORMAT_JPEG;
    if (!strcmp(s, "png")) return LUMOS_FORMAT_PNG;
    if (!strcmp(s, "tiff") || !strcmp(s, "tif")) return LUMOS_FORMAT_TIFF;
    if (allow_exr && !strcmp(s, "exr")) return LUMOS_FORMAT_EXR;
    die_usage("--format: '%s' is not jpeg, png, tiff%s", s, allow_exr ? " or exr" : "");
}

const char *format_suffix(lumos_format f)
{
    return f == LUMOS_FORMAT_PNG    ? ".png"
           : f == LUMOS_FORMAT_TIFF ? ".tif"
           : f == LUMOS_FORMAT_EXR  ? ".exr"
                                    : ".jpg";
}
