/* args.h — option parsing and string lists shared by the lumos commands. */
#ifndef LUMOS_CLI_ARGS_H
#define LUMOS_CLI_ARGS_H

#include <stddef.h>

#include "lumos.h"

/* Exit codes every command keeps, so scripts can trust them. */
enum { EXIT_ALL_OK = 0, EXIT_SOME_FAILED = 1, EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };

extern const char *const cli_prog; /* "lumos" */

/* Prints "lumos: <message>" and a pointer to --help, and exits with EXIT_USAGE. */
void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A number or integer in [lo, hi], or a usage error naming the option. */
double parse_number(const char *opt, const char *s, double lo, double hi);
int parse_int(const char *opt, const char *s, int lo, int hi);
/* --format's value: jpeg (jpg), png, tiff (tif), and exr where allowed;
 * anything else is a usage error. */
lumos_format parse_format(const char *s, int allow_exr);
/* The suffix an output of format f gets (".jpg" for AUTO). */
const char *format_suffix(lumos_format f);

/* Whether argv[*i] is option `name` (or `alias`, may be NULL) with a value,
 * as "--name value" or "--name=value"; *value is set and *i advanced past it. */
int is_option(int argc, char **argv, int *i, const char *name, const char *alias,
              const char **value);

/* A growable list of owned strings; allocation failure ends the process. */
typedef struct {
    char **items;
    size_t count, cap;
} strlist;

void strlist_add(strlist *l, const char *s);
void strlist_free(strlist *l);

/* Whether a file name has a camera RAW suffix (.CR2, .NEF, .DNG, ...). */
int has_raw_suffix(const char *name);

/* Whether this build has network `name` for `task` ("isp"), and their
 * names as "a, b or c" (for messages). */
int net_known(const char *task, const char *name);
void net_names(const char *task, char *dst, size_t n);

/* Seconds on a monotonic clock. */
double now_s(void);

#endif
