/* test_threads.c — the C API from two threads at once.
 *
 * Two threads, each with its own context, open the same CR2, run the ISP and
 * write a PNG at the same time, several rounds; every result must be
 * byte-identical to a run made alone, and errors on one context must not show
 * on the other. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lumos.h"

typedef struct {
    const char *path;
    int id;
    lumos_image result;
    int status;
    char error[1024];
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    lumos_ctx *ctx = lumos_ctx_new();
    lumos_ctx_set_threads(ctx, 1 + a->id); /* different pool sizes at once */
    lumos_raw *raw = NULL;
    lumos_isp_options o;
    lumos_isp_options_init(&o);
    o.half = 1; /* keeps the test quick; the full path is the same code */
    a->status = lumos_raw_open_file(ctx, a->path, &raw);
    if (a->status == LUMOS_OK) a->status = lumos_isp_classic(ctx, raw, &o, &a->result);
    /* An error on this context: it must stay on this context. */
    lumos_raw *none = NULL;
    if (a->status == LUMOS_OK && lumos_raw_open_file(ctx, "/nonexistent/x.CR2", &none) == LUMOS_OK)
        a->status = -100;
    snprintf(a->error, sizeof a->error, "%s", lumos_last_error(ctx));
    lumos_raw_free(raw);
    lumos_ctx_free(ctx);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "/usr/share/doc/rawtran/IMG_5952.CR2";
    if (access(path, R_OK) != 0) {
        printf("[SKIP] %s not found (install rawtran-doc)\n", path);
        return 77;
    }
    worker_arg alone = {.path = path, .id = 0};
    worker(&alone);
    if (alone.status != LUMOS_OK) {
        fprintf(stderr, "FAIL: single run: %s\n", alone.error);
        return 1;
    }
    size_t bytes = alone.result.stride * (size_t)alone.result.height;
    int failures = 0;
    for (int round = 0; round < 3; round++) {
        worker_arg a[2] = {{.path = path, .id = 0}, {.path = path, .id = 1}};
        pthread_t t[2];
        for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, worker, &a[i]);
        for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
        for (int i = 0; i < 2; i++) {
            if (a[i].status != LUMOS_OK) {
                fprintf(stderr, "FAIL: round %d thread %d: status %d: %s\n", round, i,
                        a[i].status, a[i].error);
                failures++;
                continue;
            }
            if (memcmp(a[i].result.data, alone.result.data, bytes) != 0) {
                fprintf(stderr, "FAIL: round %d thread %d: result differs\n", round, i);
                failures++;
            }
            if (!strstr(a[i].error, "/nonexistent/x.CR2")) {
                fprintf(stderr, "FAIL: thread %d's error text is '%s'\n", i, a[i].error);
                failures++;
            }
            lumos_image_free(&a[i].result);
        }
    }
    lumos_image_free(&alone.result);
    printf("%s\n", failures ? "FAILED" : "Success!");
    return failures ? 1 : 0;
}
