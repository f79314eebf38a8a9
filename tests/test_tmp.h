/* test_tmp.h — a test's own temporary directory: paths in it, and checks
 * that nothing (no temporary of an atomic write) is left behind. */
#ifndef LUMOS_TEST_TMP_H
#define LUMOS_TEST_TMP_H

#include <dirent.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[PATH_MAX]; /* the test sets it (mkdtemp) */

static inline const char *tpath(const char *fmt, ...)
{
    static char buf[8][PATH_MAX * 2]; /* a ring: a few may be live at once */
    static int i;
    char *p = buf[i++ & 7];
    char name[PATH_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    snprintf(p, PATH_MAX * 2, "%s/%s", tmpdir, name);
    return p;
}

static inline int exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* Hidden entries in dir: a temporary left behind would be one. */
static inline int hidden_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static inline void rm_rf(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        chmod(path, 0700);
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[PATH_MAX];
            if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) < (int)sizeof sub) rm_rf(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Writes a whole file, or ends the test. */
static inline void write_all(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

/* A small LCG for test data: 24 bits a call. */
static inline uint32_t rng(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

#endif
