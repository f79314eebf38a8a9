/* check.h — the one assertion the C tests share: CHECK(cond, fmt, ...)
 * reports the failed condition with file, line and detail, counts it, and
 * lets the test go on, so one run shows every failure. A test's main()
 * returns `failures ? 1 : 0` (or its own code). */
#ifndef LUMOS_TEST_CHECK_H
#define LUMOS_TEST_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            failures++;                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
        }                                                                   \
    } while (0)

#endif
