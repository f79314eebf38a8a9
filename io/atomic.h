/* atomic.h — files that appear whole or not at all.
 *
 * A file is written under a temporary name beside its destination
 * (".NAME.part-XXXXXX", hidden from listings, with the mode open(2) would
 * give), synced, and moved into place; on any failure the temporary is
 * removed and an existing destination is left as it was. Used by the image
 * writers and the training checkpoints. */
#ifndef LUMOS_ATOMIC_H
#define LUMOS_ATOMIC_H

#include "lumos.h"

typedef struct lumos__atomic_file {
    int fd;          /* open on the temporary */
    char *tmp;       /* the temporary's path */
    char *dir;       /* the destination's directory, as a user would name it */
    const char *path;
} lumos__atomic_file;

/* Creates the temporary for `path`. On failure nothing is left behind. */
int lumos__atomic_open(lumos_ctx *ctx, const char *path, lumos__atomic_file *f);

/* Finishes the file: with status 0, fsync (which reports write-back errors,
 * e.g. a full disk, that write(2) did not), close and move into place —
 * replacing an existing file when `overwrite`, else failing with
 * LUMOS_E_EXISTS without a window for a race. With a non-zero status, or if
 * any of that fails, the temporary is removed. Returns the final status and
 * releases f either way. */
int lumos__atomic_close(lumos_ctx *ctx, lumos__atomic_file *f, int status, int overwrite);

#endif
