/* batch.c — the batch runner shared by the file-processing commands. */
#include "batch.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"

const char batch_usage_output[] =
    "  -o, --output FILE|DIR  output file (one input) or directory (created if\n"
    "                         needed); default: beside each input\n"
    "  --skip-existing        leave inputs whose output exists alone\n";

const char batch_usage_batch[] =
    "  -j, --jobs N           files processed at once; default: one per core\n"
    "  --shard K/N            process only the K-th of N deterministic slices of\n"
    "                         the sorted input list (for job arrays), 1 <= K <= N\n"
    "  --quiet                no progress bar or summary\n";

void batch_options_init(batch_options *o)
{
    memset(o, 0, sizeof *o);
    o->shard_k = o->shard_n = 1;
}

int batch_parse_option(batch_options *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v;
    if (is_option(argc, argv, i, "--output", "-o", &v)) {
        o->output = v;
    } else if (is_option(argc, argv, i, "--jobs", "-j", &v)) {
        o->jobs = parse_int("--jobs", v, 1, 256);
    } else if (is_option(argc, argv, i, "--shard", NULL, &v)) {
        char tail;
        if (sscanf(v, "%d/%d%c", &o->shard_k, &o->shard_n, &tail) != 2 || o->shard_n < 1 ||
            o->shard_k < 1 || o->shard_k > o->shard_n)
            die_usage("--shard: K/N with 1 <= K <= N, e.g. --shard 2/8");
    } else if (!strcmp(a, "--skip-existing")) {
        o->skip_existing = 1;
    } else if (!strcmp(a, "--quiet")) {
        o->quiet = 1;
    } else {
        return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- inputs */

typedef enum { JOB_PENDING, JOB_OK, JOB_SKIPPED, JOB_FAILED } job_state;

typedef struct {
    const char *in;
    char out[PATH_MAX];
    job_state state;
    char error[2 * PATH_MAX + 1100];
} job;

struct batch {
    batch_options opt;
    strlist args, inputs, rejected;
    const char *accept_what; /* "RAW files": what a directory gives */
    /* while running */
    const batch_spec *spec;
    job *jobs;
    size_t count, next, done, ok, skipped, failed;
    int threads_per_job;
    int progress; /* draw a progress bar (stderr is a terminal) */
    double start;
    pthread_mutex_t lock;
};

static int compare_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void reject(strlist *rejected, const char *arg, const char *why)
{
    char msg[PATH_MAX + 64];
    snprintf(msg, sizeof msg, "%s: %s", arg, why);
    strlist_add(rejected, msg);
}

/* Files as given; directories contribute the files `accept` takes; an
 * argument that names nothing but holds wildcards is expanded as a glob. */
static void expand_inputs(batch *b, int (*accept)(const char *), const char *accept_what)
{
    for (size_t i = 0; i < b->args.count; i++) {
        const char *a = b->args.items[i];
        struct stat st;
        if (stat(a, &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(a);
            if (!d) { reject(&b->rejected, a, strerror(errno)); continue; }
            size_t before = b->inputs.count;
            struct dirent *e;
            while ((e = readdir(d))) {
                if (e->d_name[0] == '.' || !accept(e->d_name)) continue;
                char path[PATH_MAX];
                size_t len = strlen(a);
                snprintf(path, sizeof path, "%s%s%s", a, len && a[len - 1] == '/' ? "" : "/",
                         e->d_name);
                strlist_add(&b->inputs, path);
            }
            closedir(d);
            if (b->inputs.count == before) {
                char why[128];
                snprintf(why, sizeof why, "no %s in this directory", accept_what);
                reject(&b->rejected, a, why);
            }
            continue;
        }
        if (strpbrk(a, "*?[") && access(a, F_OK) != 0) {
            glob_t g;
            if (glob(a, 0, NULL, &g) == 0) {
                for (size_t k = 0; k < g.gl_pathc; k++) strlist_add(&b->inputs, g.gl_pathv[k]);
                globfree(&g);
            } else {
                reject(&b->rejected, a, "no file matches");
            }
            continue;
        }
        strlist_add(&b->inputs, a); /* may not exist: reported as a failed input */
    }
    if (b->inputs.count > 1)
        qsort(b->inputs.items, b->inputs.count, sizeof *b->inputs.items, compare_str);
}

batch *batch_open(const batch_options *o, int n_args, char **args, int (*accept)(const char *name),
                  const char *accept_what)
{
    batch *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->opt = *o;
    b->accept_what = accept_what;
    for (int i = 0; i < n_args; i++) strlist_add(&b->args, args[i]);
    expand_inputs(b, accept, accept_what);
    for (size_t i = 0; i < b->rejected.count; i++)
        fprintf(stderr, "%s: error: %s\n", cli_prog, b->rejected.items[i]);
    return b;
}

void batch_free(batch *b)
{
    if (!b) return;
    strlist_free(&b->args);
    strlist_free(&b->inputs);
    strlist_free(&b->rejected);
    free(b->jobs);
    free(b);
}

const char *batch_single_output(const batch *b)
{
    const char *output = b->opt.output;
    if (!output) return NULL;
    struct stat st;
    size_t len = strlen(output);
    /* One named file in, one file out; anything that may expand is a batch. */
    int many = b->args.count > 1 || b->inputs.count != 1 ||
               strcmp(b->inputs.items[0], b->args.items[0]);
    int is_dir = (stat(output, &st) == 0 && S_ISDIR(st.st_mode)) || (len && output[len - 1] == '/');
    return many || is_dir ? NULL : output;
}

/* OUT_DIR/<input name without suffix><suffix>; "" out_dir: beside the input,
 * with `tag` (may be NULL) after the stem; "" suffix: the input's own.
 * Returns 0, or -1 when the name does not fit. */
static int output_name(char *dst, size_t n, const char *in, const char *out_dir, const char *suffix,
                       const char *tag)
{
    const char *base = strrchr(in, '/');
    base = base ? base + 1 : in;
    const char *dot = strrchr(base, '.');
    int stem = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
    if (!suffix[0]) suffix = base + stem;
    if (out_dir[0]) {
        size_t len = strlen(out_dir);
        int w = snprintf(dst, n, "%s%s%.*s%s", out_dir, out_dir[len - 1] == '/' ? "" : "/",
                         stem, base, suffix);
        return w < 0 || (size_t)w >= n ? -1 : 0;
    }
    int w = snprintf(dst, n, "%.*s%.*s%s%s", (int)(base - in), in, stem, base, tag ? tag : "",
                     suffix);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

/* ------------------------------------------------------------------- run */

static void draw_progress(batch *b)
{
    if (!b->progress) return;
    const int width = 30;
    int filled = (int)((double)b->done / (double)b->count * width);
    double el = now_s() - b->start;
    double eta = b->done ? el / (double)b->done * (double)(b->count - b->done) : 0;
    fprintf(stderr, "\r[");
    for (int i = 0; i < width; i++) fputc(i < filled ? '#' : '.', stderr);
    fprintf(stderr, "] %zu/%zu  %zu failed  %.1f s", b->done, b->count, b->failed, el);
    if (b->done && b->done < b->count) fprintf(stderr, "  ETA %.0f s", eta);
    fprintf(stderr, "\033[K");
    fflush(stderr);
}

/* Notices (e.g. the LibRaw fallback for non-Bayer sensors) name the file. */
static void print_notice(void *user, const char *message)
{
    fprintf(stderr, "%s: note: %s: %s\n", cli_prog, ((const job *)user)->in, message);
}

static void *worker(void *arg)
{
    batch *b = arg;
    lumos_ctx *ctx = lumos_ctx_new();
    if (ctx) lumos_ctx_set_threads(ctx, b->threads_per_job);
    for (;;) {
        pthread_mutex_lock(&b->lock);
        size_t i = b->next < b->count ? b->next++ : b->count;
        pthread_mutex_unlock(&b->lock);
        if (i >= b->count) break;
        job *j = &b->jobs[i];
        const char *out = b->spec->out_suffix ? j->out : NULL;
        if (j->state == JOB_PENDING) {
            struct stat st;
            if (out && b->opt.skip_existing && stat(out, &st) == 0) {
                j->state = JOB_SKIPPED;
            } else if (!ctx) {
                j->state = JOB_FAILED;
                snprintf(j->error, sizeof j->error, "%s: out of memory", j->in);
            } else {
                lumos_ctx_set_notice(ctx, print_notice, j);
                if (b->spec->process(b->spec->user, ctx, j->in, out) == 0) {
                    j->state = JOB_OK;
                } else {
                    j->state = JOB_FAILED;
                    snprintf(j->error, sizeof j->error, "%s", lumos_last_error(ctx));
                }
            }
        }
        pthread_mutex_lock(&b->lock);
        b->done++;
        if (j->state == JOB_OK) b->ok++;
        else if (j->state == JOB_SKIPPED) b->skipped++;
        else b->failed++;
        if (j->state == JOB_FAILED) {
            if (b->progress) fprintf(stderr, "\r\033[K");
            fprintf(stderr, "%s: error: %s\n", cli_prog, j->error);
        }
        draw_progress(b);
        pthread_mutex_unlock(&b->lock);
    }
    lumos_ctx_free(ctx);
    return NULL;
}

/* This shard's jobs, outputs named and checked. */
static int plan_jobs(batch *b, char *out_dir, size_t out_dir_size)
{
    const char *single = batch_single_output(b);
    if (b->spec->out_suffix && b->opt.output && !single)
        snprintf(out_dir, out_dir_size, "%s", b->opt.output);
    b->jobs = calloc(b->inputs.count ? b->inputs.count : 1, sizeof *b->jobs);
    if (!b->jobs) return -1;
    /* every N-th input from K-1 */
    for (size_t i = 0; i < b->inputs.count; i++) {
        if ((int)(i % (size_t)b->opt.shard_n) != b->opt.shard_k - 1) continue;
        job *j = &b->jobs[b->count++];
        j->in = b->inputs.items[i];
        if (!b->spec->out_suffix) continue;
        if (single) snprintf(j->out, sizeof j->out, "%s", single);
        else if (output_name(j->out, sizeof j->out, j->in, out_dir, b->spec->out_suffix,
                             b->spec->beside_tag)) {
            j->state = JOB_FAILED;
            snprintf(j->error, sizeof j->error, "%s: output path too long", j->in);
        }
        /* Never write over an input, nor two inputs into one output. */
        struct stat si, so;
        if (stat(j->in, &si) == 0 && stat(j->out, &so) == 0 && si.st_ino == so.st_ino &&
            si.st_dev == so.st_dev) {
            j->state = JOB_FAILED;
            snprintf(j->error, sizeof j->error, "%s: the output would overwrite the input", j->in);
        }
        for (size_t k = 0; k + 1 < b->count && j->state == JOB_PENDING; k++)
            if (!strcmp(b->jobs[k].out, j->out)) {
                j->state = JOB_FAILED;
                snprintf(j->error, sizeof j->error, "%s: output %s is also the output of %s",
                         j->in, j->out, b->jobs[k].in);
            }
    }
    return 0;
}

int batch_run(batch *b, const batch_spec *spec)
{
    b->spec = spec;
    char out_dir[PATH_MAX] = "";
    if (plan_jobs(b, out_dir, sizeof out_dir)) {
        perror(cli_prog);
        return EXIT_SOME_FAILED;
    }
    /* Made only when there is something to put in it. */
    if (out_dir[0] && b->count && mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: error: %s: cannot create the output directory: %s\n", cli_prog,
                out_dir, strerror(errno));
        return EXIT_SOME_FAILED;
    }

    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    int jobs = spec->serial ? 1 : b->opt.jobs ? b->opt.jobs : cores;
    if ((size_t)jobs > b->count) jobs = b->count ? (int)b->count : 1;
    b->threads_per_job = cores / jobs > 0 ? cores / jobs : 1;
    b->progress = !b->opt.quiet && !spec->serial && b->count > 1 && isatty(STDERR_FILENO);
    b->start = now_s();
    pthread_mutex_init(&b->lock, NULL);
    pthread_t *threads = calloc((size_t)jobs, sizeof *threads);
    int started = 0;
    for (int t = 1; threads && t < jobs; t++)
        if (pthread_create(&threads[started], NULL, worker, b) == 0) started++;
    worker(b);
    for (int t = 0; t < started; t++) pthread_join(threads[t], NULL);
    free(threads);
    pthread_mutex_destroy(&b->lock);

    size_t failed = b->failed + b->rejected.count, total = b->count + b->rejected.count;
    if (b->progress) fprintf(stderr, "\r\033[K");
    if (!b->opt.quiet && (total > 1 || failed)) {
        fprintf(stderr, "%s: %s %zu of %zu files in %.2f s", cli_prog, spec->verb, b->ok, total,
                now_s() - b->start);
        if (b->skipped) fprintf(stderr, ", %zu skipped (output exists)", b->skipped);
        if (failed) fprintf(stderr, ", %zu failed:", failed);
        fputc('\n', stderr);
        for (size_t i = 0; i < b->rejected.count; i++) fprintf(stderr, "  %s\n", b->rejected.items[i]);
        for (size_t i = 0; i < b->count; i++)
            if (b->jobs[i].state == JOB_FAILED) fprintf(stderr, "  %s\n", b->jobs[i].error);
    }
    if (total == 0 && !b->opt.quiet)
        fprintf(stderr, "%s: no %s in the inputs (shard %d/%d)\n", cli_prog, b->accept_what,
                b->opt.shard_k, b->opt.shard_n);
    return failed ? EXIT_SOME_FAILED : EXIT_ALL_OK;
}
