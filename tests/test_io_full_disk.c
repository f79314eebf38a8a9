/* test_io_full_disk.c — writes onto a full disk and into a read-only
 * directory fail with LUMOS_E_IO, name the path and the reason, and leave
 * neither a partial file nor a temporary; an existing file survives a
 * failed overwrite.
 *
 * It needs a small tmpfs: the mount is made in a private mount namespace
 * (unshare(CLONE_NEWNS) as root, else re-run under `unshare -rm`), so it
 * vanishes with the process even if the test crashes. Without either it
 * prints [SKIP] and returns 77. */
#define _GNU_SOURCE /* unshare(2) */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "lumos.h"

#define FAILED 3 /* distinct from unshare(1)'s own failure, 1 */
#define SKIP 77


/* Entries of dir other than keep ("" keeps nothing). */
static int other_entries(const char *dir, const char *keep)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, keep)) {
            fprintf(stderr, "  left in %s: %s\n", dir, e->d_name);
            n++;
        }
    closedir(d);
    return n;
}

static lumos_image noise(int w, int h, int bits)
{
    lumos_image im;
    if (lumos_image_alloc(&im, w, h, 3, bits)) exit(FAILED);
    uint32_t s = 12345;
    uint8_t *p = im.data;
    for (size_t i = 0; i < im.stride * (size_t)h; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (uint8_t)(s >> 24); /* incompressible */
    }
    return im;
}

static int run_cases(const char *dir)
{
    lumos_ctx *ctx = lumos_ctx_new();
    char small[PATH_MAX + 32], path[PATH_MAX + 32];
    snprintf(small, sizeof small, "%s/small.png", dir);

    /* The mount works and a small image fits. */
    lumos_image tiny = noise(8, 8, 8);
    int st = lumos_image_write(ctx, &tiny, small, NULL);
    CHECK(st == LUMOS_OK, "small write: %s", lumos_last_error(ctx));
    lumos_image back;
    CHECK(lumos_image_read(ctx, small, &back) == LUMOS_OK, "small read: %s", lumos_last_error(ctx));
    lumos_image_free(&back);

    /* ~1.5 MB of noise into 64 KiB, in each format. */
    lumos_image big8 = noise(512, 512, 8), big16 = noise(512, 512, 16);
    static const char *const names[] = {"big.jpg", "big.png", "big.tif", "big16.tif"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        st = lumos_image_write(ctx, i == 3 ? &big16 : &big8, path, NULL);
        const char *msg = lumos_last_error(ctx);
        CHECK(st == LUMOS_E_IO && strstr(msg, path) && strstr(msg, strerror(ENOSPC)),
              "%s on a full disk: %d \"%s\"", names[i], st, msg);
        CHECK(other_entries(dir, "small.png") == 0, "%s: partial or temporary file left", names[i]);
    }

    /* A failed overwrite leaves the old file as it was. */
    struct stat before, after;
    stat(small, &before);
    lumos_write_options o;
    lumos_write_options_init(&o);
    o.overwrite = 1;
    st = lumos_image_write(ctx, &big8, small, &o);
    CHECK(st == LUMOS_E_IO, "overwrite on a full disk: %d %s", st, lumos_last_error(ctx));
    CHECK(stat(small, &after) == 0 && after.st_size == before.st_size &&
              after.st_ino == before.st_ino,
          "old file changed by a failed overwrite");
    CHECK(lumos_image_read(ctx, small, &back) == LUMOS_OK && back.width == 8 &&
              !memcmp(back.data, tiny.data, tiny.stride * 8),
          "old file unreadable after a failed overwrite: %s", lumos_last_error(ctx));
    lumos_image_free(&back);
    CHECK(other_entries(dir, "small.png") == 0, "temporary left by failed overwrite");

    /* A read-only directory (root ignores permission bits; a read-only
     * mount it cannot ignore). */
    if (mount(NULL, dir, NULL, MS_REMOUNT | MS_RDONLY, NULL) != 0) {
        printf("[SKIP] read-only remount: %s\n", strerror(errno));
    } else {
        snprintf(path, sizeof path, "%s/ro.png", dir);
        st = lumos_image_write(ctx, &tiny, path, NULL);
        const char *msg = lumos_last_error(ctx);
        CHECK(st == LUMOS_E_IO && strstr(msg, path) && strstr(msg, strerror(EROFS)),
              "read-only dir: %d \"%s\"", st, msg);
        CHECK(other_entries(dir, "small.png") == 0, "read-only dir: file left");
    }

    lumos_image_free(&tiny);
    lumos_image_free(&big8);
    lumos_image_free(&big16);
    lumos_ctx_free(ctx);
    printf("%s: %d failure(s)\n", failures ? "FAILED" : "ok", failures);
    return failures ? FAILED : 0;
}

/* In a mount namespace of our own: mount a 64 KiB tmpfs and run. */
static int in_namespace(void)
{
    /* Keep our mounts from propagating back to the parent namespace. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        printf("[SKIP] full disk: cannot make mounts private: %s\n", strerror(errno));
        return SKIP;
    }
    const char *base = getenv("TMPDIR");
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/lumos-full-disk-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return FAILED;
    }
    int st;
    if (mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0755") != 0) {
        printf("[SKIP] full disk: cannot mount a tmpfs: %s\n", strerror(errno));
        st = SKIP;
    } else {
        st = run_cases(dir);
        umount2(dir, MNT_DETACH);
    }
    rmdir(dir);
    return st;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (getenv("LUMOS_TEST_IN_USERNS")) return in_namespace(); /* re-run by unshare -rm */
    if (unshare(CLONE_NEWNS) == 0) {
        int st = in_namespace();
        return st == FAILED ? 1 : st;
    }
    /* Not privileged: a user namespace maps us to root within it. */
    int unshare_errno = errno;
    char self[PATH_MAX]; /* resolved here: in the child, /proc/self is unshare */
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        printf("[SKIP] full disk: unshare(CLONE_NEWNS): %s\n", strerror(unshare_errno));
        return SKIP;
    }
    self[n] = '\0';
    pid_t pid = fork();
    if (pid == 0) {
        setenv("LUMOS_TEST_IN_USERNS", "1", 1);
        execlp("unshare", "unshare", "-rm", "--", self, (char *)NULL);
        _exit(127);
    }
    int ws = 0;
    if (pid < 0 || waitpid(pid, &ws, 0) < 0 || !WIFEXITED(ws)) {
        printf("[SKIP] full disk: unshare(CLONE_NEWNS): %s, and unshare -rm did not run\n",
               strerror(unshare_errno));
        return SKIP;
    }
    switch (WEXITSTATUS(ws)) {
    case 0: return 0;
    case FAILED: return 1;
    case SKIP: return SKIP;
    default:
        printf("[SKIP] full disk: unshare(CLONE_NEWNS): %s; unshare -rm failed too (exit %d)\n",
               strerror(unshare_errno), WEXITSTATUS(ws));
        return SKIP;
    }
}
