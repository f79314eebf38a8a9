/* atomic.c — write to a temporary beside the destination, then move it in. */
#include "io/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/context.h"

/* The process umask, without umask(2)'s set-and-restore race between
 * threads: Linux reports it in /proc/self/status (since 4.7). */
static mode_t current_umask(void)
{
    mode_t mask = 022;
    FILE *f = fopen("/proc/self/status", "re");
    if (!f) return mask;
    char line[128];
    while (fgets(line, sizeof line, f)) {
        unsigned m;
        if (sscanf(line, "Umask: %o", &m) == 1) {
            mask = (mode_t)(m & 0777);
            break;
        }
    }
    fclose(f);
    return mask;
}

static void release(lumos__atomic_file *f)
{
    free(f->tmp);
    free(f->dir);
    f->tmp = f->dir = NULL;
    f->fd = -1;
}

int lumos__atomic_open(lumos_ctx *ctx, const char *path, lumos__atomic_file *f)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->path = path;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
    size_t baselen = strlen(base);
    if (baselen == 0) return lumos__fail(ctx, LUMOS_E_ARG, "%s: the path names a directory", path);
    if (baselen > 200) baselen = 200; /* the temporary's name must fit NAME_MAX */
    f->tmp = malloc(dirlen + baselen + 16);
    f->dir = malloc(dirlen + 2);
    if (!f->tmp || !f->dir) {
        release(f);
        return lumos__fail(ctx, LUMOS_E_NOMEM, "%s: out of memory", path);
    }
    /* The directory as the user would name it: "a/b" for "a/b/x", "/" for
     * "/x", "." for "x". */
    size_t shown = dirlen > 1 ? dirlen - 1 : dirlen;
    memcpy(f->dir, path, shown);
    strcpy(f->dir + shown, shown ? "" : ".");
    sprintf(f->tmp, "%.*s.%.*s.part-XXXXXX", (int)dirlen, path, (int)baselen, base);
    f->fd = mkstemp(f->tmp);
    if (f->fd < 0) {
        int st = lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s: cannot create a file in %s", path,
                                   f->dir);
        release(f);
        return st;
    }
    /* mkstemp makes the file 0600; give it the mode open(2) would. */
    if (fchmod(f->fd, 0666 & ~current_umask()) != 0) {
        int st = lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", path);
        close(f->fd);
        unlink(f->tmp);
        release(f);
        return st;
    }
    return LUMOS_OK;
}

/* The move into place. Without overwrite, link(2) refuses an existing
 * destination atomically; file systems without hard links fall back to
 * rename. */
static int commit(lumos_ctx *ctx, const char *tmp, const char *path, int overwrite)
{
    if (!overwrite) {
        if (link(tmp, path) == 0) {
            unlink(tmp);
            return LUMOS_OK;
        }
        if (errno == EEXIST)
            return lumos__fail(ctx, LUMOS_E_EXISTS, "%s: the file exists (overwrite not asked for)",
                               path);
        if (errno != EPERM && errno != ENOTSUP && errno != EOPNOTSUPP && errno != EMLINK)
            return lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", path);
    }
    if (rename(tmp, path) != 0) return lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", path);
    return LUMOS_OK;
}

int lumos__atomic_close(lumos_ctx *ctx, lumos__atomic_file *f, int status, int overwrite)
{
    int st = status;
    if (!st && fsync(f->fd) != 0) st = lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", f->path);
    if (close(f->fd) != 0 && !st) st = lumos__fail_errno(ctx, LUMOS_E_IO, errno, "%s", f->path);
    if (!st) st = commit(ctx, f->tmp, f->path, overwrite);
    if (st) {
        unlink(f->tmp);
    } else {
        /* Makes the rename durable; best effort, as the data is already safe. */
        int fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
    }
    release(f);
    return st;
}
