/* check.h — the one assertion the C tests share: CHECK(cond, fmt, ...)
 * reports the failed condition with file, line and detail, counts it, and
 * lets the test go on, so one run shows every failure. A test's main()
 * returns `failures ? 1 : 0` (or its own code). */
#ifndef LUMOS_TEST_CHECK_H
#define LUMOS_TEST_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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

/* A whole file in a malloc'ed buffer (*size bytes), or NULL. */
static inline uint8_t *read_all(const char *path, size_t *size)
{
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = n >= 0 ? malloc(n > 0 ? (size_t)n : 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) *size = (size_t)n;
    return b;
}

/* Whether `python` imports torch (Debian's python3-torch); says so when not
 * (the caller then skips: exit 77). */
static inline int torch_importable(const char *python)
{
    char probe[1024];
    snprintf(probe, sizeof probe, "%s -c 'import torch' 2>/dev/null", python);
    if (system(probe) == 0) return 1;
    printf("[SKIP] %s cannot import torch (install python3-torch)\n", python);
    return 0;
}

#endif
