/* batch.c — the batch runner shared by the file-processing commands. */
#include "batch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
    "  --quiet                no progress bar or summary\n"
    "  --file-timeout S       seconds one file may take; a file that takes longer\n"
    "                         is stopped and fails; 0: no limit; default 600\n"
    "                         (each file is processed in a worker process, so that\n"
    "                         a crash or hang in a decoder fails only that file;\n"
    "                         LUMOS_NO_ISOLATION=1 runs all in this process, for\n"
    "                         debugging: no time limit, a crash ends the batch)\n";

void batch_options_init(batch_options *o)
{
    memset(o, 0, sizeof *o);
    o->shard_k = o->shard_n = 1;
    o->file_timeout = 600;
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
    } else if (is_option(argc, argv, i, "--file-timeout", NULL, &v)) {
        o->file_timeout = parse_number("--file-timeout", v, 0, 1e6);
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
    lumos_ctx *after_ctx; /* spec->after's, in this process (isolated runs) */
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

static const char *job_output(const batch *b, const job *j)
{
    return b->spec->out_suffix ? j->out : NULL;
}

/* Whether job j still has to be processed; decides --skip-existing. */
static int needs_work(const batch *b, job *j)
{
    if (j->state != JOB_PENDING) return 0;
    struct stat st;
    if (job_output(b, j) && b->opt.skip_existing && stat(j->out, &st) == 0) {
        j->state = JOB_SKIPPED;
        return 0;
    }
    return 1;
}

/* The process callback on job j, its outcome in j. */
static void process_job(const batch *b, lumos_ctx *ctx, job *j)
{
    if (!ctx) {
        j->state = JOB_FAILED;
        snprintf(j->error, sizeof j->error, "%s: out of memory", j->in);
        return;
    }
    lumos_ctx_set_notice(ctx, print_notice, j);
    if (b->spec->process(b->spec->user, ctx, j->in, job_output(b, j)) == 0) {
        j->state = JOB_OK;
    } else {
        j->state = JOB_FAILED;
        snprintf(j->error, sizeof j->error, "%s", lumos_last_error(ctx));
    }
}

/* Counts and reports job j's outcome (under b->lock on threads). */
static void account(batch *b, const job *j)
{
    b->done++;
    if (j->state == JOB_OK) b->ok++;
    else if (j->state == JOB_SKIPPED) b->skipped++;
    else b->failed++;
    if (j->state == JOB_FAILED) {
        if (b->progress) fprintf(stderr, "\r\033[K");
        fprintf(stderr, "%s: error: %s\n", cli_prog, j->error);
    }
    draw_progress(b);
}

/* ------------------------------------------- in this process, on threads */

static void *thread_worker(void *arg)
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
        if (needs_work(b, j)) {
            process_job(b, ctx, j);
            if (j->state == JOB_OK && b->spec->after)
                b->spec->after(b->spec->user, ctx, j->in, job_output(b, j));
        }
        pthread_mutex_lock(&b->lock);
        account(b, j);
        pthread_mutex_unlock(&b->lock);
    }
    lumos_ctx_free(ctx);
    return NULL;
}

static void run_threads(batch *b, int jobs)
{
    pthread_mutex_init(&b->lock, NULL);
    pthread_t *threads = calloc((size_t)jobs, sizeof *threads);
    int started = 0;
    for (int t = 1; threads && t < jobs; t++)
        if (pthread_create(&threads[started], NULL, thread_worker, b) == 0) started++;
    thread_worker(b);
    for (int t = 0; t < started; t++) pthread_join(threads[t], NULL);
    free(threads);
    pthread_mutex_destroy(&b->lock);
}

/* ------------------------------------------------- in worker processes
 *
 * One worker process per --jobs slot, forked when the slot gets its first
 * file and again after a worker died: a crash or a hang inside LibRaw,
 * libtiff or another dependency then costs that one file, not the batch.
 * Workers live across files, so that each keeps its lumos_ctx (thread pool,
 * scratch memory) warm; the cost is one fork per slot, not per file.
 * This process stays single-threaded (spec->after runs here on a one-thread
 * ctx), so that every fork starts from a clean state. */

typedef struct {
    int32_t state; /* JOB_OK or JOB_FAILED */
    uint32_t len;  /* bytes of the error message that follow */
} result_head;

typedef struct {
    pid_t pid;    /* 0: no worker */
    int cmd, res; /* pipes: job indices to the worker, results back */
    long job;     /* the job it runs; -1: idle */
    double deadline;
    size_t have; /* bytes of the result read so far */
    char buf[sizeof(result_head) + sizeof(((job *)0)->error)];
} slot;

static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};
enum { N_STOP = sizeof stop_signals / sizeof stop_signals[0] };
static volatile sig_atomic_t stop_signal;
static int wake_pipe[2] = {-1, -1}; /* a stop signal wakes poll() through it */

static void on_stop_signal(int sig)
{
    int saved = errno;
    stop_signal = sig;
    if (write(wake_pipe[1], "", 1) < 0) { /* full: poll wakes anyway */ }
    errno = saved;
}

static const char *signal_name(int sig)
{
    static const struct {
        int sig;
        const char *name;
    } names[] = {{SIGFPE, "SIGFPE"},   {SIGSEGV, "SIGSEGV"}, {SIGBUS, "SIGBUS"},
                 {SIGABRT, "SIGABRT"}, {SIGILL, "SIGILL"},   {SIGSYS, "SIGSYS"},
                 {SIGTRAP, "SIGTRAP"}, {SIGKILL, "SIGKILL"}, {SIGTERM, "SIGTERM"},
                 {SIGINT, "SIGINT"},   {SIGHUP, "SIGHUP"},   {SIGPIPE, "SIGPIPE"},
                 {SIGQUIT, "SIGQUIT"}, {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (names[i].sig == sig) return names[i].name;
    static char other[24]; /* this process is single-threaded */
    snprintf(other, sizeof other, "signal %d", sig);
    return other;
}

static int write_all(int fd, const void *p, size_t n)
{
    for (const char *c = p; n;) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n)
{
    for (char *c = p; n;) {
        ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

/* A worker: takes job indices until its pipe closes, answers each with a
 * result. Never returns. */
static _Noreturn void worker_main(const batch *b, int cmd, int res)
{
    lumos_ctx *ctx = lumos_ctx_new();
    if (ctx) lumos_ctx_set_threads(ctx, b->threads_per_job);
    uint64_t i;
    while (read_all(cmd, &i, sizeof i) == 0 && i < b->count) {
        job *j = &b->jobs[i];
        process_job(b, ctx, j);
        fflush(stdout); /* `info`'s record, before the next file's */
        result_head h = {j->state, j->state == JOB_OK ? 0 : (uint32_t)strlen(j->error)};
        if (write_all(res, &h, sizeof h) || write_all(res, j->error, h.len)) break;
    }
    lumos_ctx_free(ctx);
    fflush(stdout);
    _exit(0); /* not exit(): the atexit handlers and buffers are the parent's */
}

/* Forks slot k's worker. The child keeps only its own pipe ends and gets
 * the signal dispositions the command started with. */
static int start_worker(const batch *b, slot *slots, int n, int k, const struct sigaction *orig,
                        const struct sigaction *orig_pipe)
{
    int cmd[2], res[2];
    if (pipe(cmd)) return -1;
    if (pipe(res)) {
        close(cmd[0]);
        close(cmd[1]);
        return -1;
    }
    sigset_t stops, mask;
    sigemptyset(&stops);
    for (int s = 0; s < N_STOP; s++) sigaddset(&stops, stop_signals[s]);
    /* Blocked over the fork: the child must not run this process's handler. */
    sigprocmask(SIG_BLOCK, &stops, &mask);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        for (int s = 0; s < n; s++)
            if (s != k && slots[s].pid) {
                close(slots[s].cmd);
                close(slots[s].res);
            }
        close(wake_pipe[0]);
        close(wake_pipe[1]);
        close(cmd[1]);
        close(res[0]);
        for (int s = 0; s < N_STOP; s++) sigaction(stop_signals[s], &orig[s], NULL);
        sigaction(SIGPIPE, orig_pipe, NULL);
        sigprocmask(SIG_SETMASK, &mask, NULL);
        worker_main(b, cmd[0], res[1]);
    }
    int saved = errno;
    sigprocmask(SIG_SETMASK, &mask, NULL);
    close(cmd[0]);
    close(res[1]);
    if (pid < 0) {
        close(cmd[1]);
        close(res[0]);
        errno = saved;
        return -1;
    }
    slots[k].pid = pid;
    slots[k].cmd = cmd[1];
    slots[k].res = res[0];
    slots[k].have = 0;
    return 0;
}

/* Ends a slot's worker, killed first when `kill_it`; its wait status. */
static int stop_worker(slot *s, int kill_it)
{
    int status = 0;
    if (kill_it) kill(s->pid, SIGKILL);
    close(s->cmd);
    close(s->res);
    while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR) {
    }
    s->pid = 0;
    s->have = 0;
    return status;
}

/* A worker killed while writing leaves the writer's temporary beside the
 * output (".NAME.part-XXXXXX", see io/atomic.h; NAME cut at 200 bytes):
 * removed, so that only complete outputs remain. */
static void remove_temporaries(const char *out)
{
    const char *slash = strrchr(out, '/');
    const char *base = slash ? slash + 1 : out;
    int dirlen = slash ? (int)(slash - out) + 1 : 0;
    char dir[PATH_MAX], prefix[256], path[PATH_MAX + 256];
    snprintf(dir, sizeof dir, "%.*s", dirlen ? dirlen : 1, dirlen ? out : ".");
    snprintf(prefix, sizeof prefix, ".%.200s.part-", base);
    size_t plen = strlen(prefix);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, prefix, plen) && strlen(e->d_name) == plen + 6) {
            snprintf(path, sizeof path, "%.*s%s", dirlen, out, e->d_name);
            unlink(path);
        }
    closedir(d);
}

/* Job j's worker died (wait status) or ran out of time: j fails. */
static void worker_lost(const batch *b, job *j, int status, int timed_out)
{
    j->state = JOB_FAILED;
    if (timed_out) {
        snprintf(j->error, sizeof j->error, "%s: timed out after %g s (--file-timeout)", j->in,
                 b->opt.file_timeout);
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        int crash = sig == SIGFPE || sig == SIGSEGV || sig == SIGBUS || sig == SIGABRT ||
                    sig == SIGILL || sig == SIGSYS || sig == SIGTRAP;
        snprintf(j->error, sizeof j->error, "%s: %s (%s%s)", j->in,
                 crash ? "the decoder crashed" : "the worker process was killed", signal_name(sig),
                 sig == SIGKILL ? "; out of memory?" : "");
    } else {
        snprintf(j->error, sizeof j->error, "%s: the worker process exited (status %d) midway",
                 j->in, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    if (job_output(b, j)) remove_temporaries(j->out);
}

/* Job j done in its worker: spec->after here, then counted. */
static void finish_job(batch *b, job *j)
{
    if (j->state == JOB_OK && b->spec->after) {
        if (!b->after_ctx && (b->after_ctx = lumos_ctx_new()))
            lumos_ctx_set_threads(b->after_ctx, 1); /* no threads here: forks stay clean */
        if (b->after_ctx) b->spec->after(b->spec->user, b->after_ctx, j->in, job_output(b, j));
    }
    account(b, j);
}

/* Reads what slot s's worker sent; finishes its job on a whole result or
 * when it died. Returns the signal that killed it, else 0. */
static int read_result(batch *b, slot *s)
{
    ssize_t r = read(s->res, s->buf + s->have, sizeof s->buf - s->have);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) return 0;
    job *j = &b->jobs[s->job];
    if (r > 0) {
        s->have += (size_t)r;
        result_head h;
        if (s->have < sizeof h) return 0;
        memcpy(&h, s->buf, sizeof h);
        if (h.len >= sizeof j->error) h.len = sizeof j->error - 1;
        if (s->have < sizeof h + h.len) return 0;
        j->state = h.state == JOB_OK ? JOB_OK : JOB_FAILED;
        memcpy(j->error, s->buf + sizeof h, h.len);
        j->error[h.len] = '\0';
        s->have = 0;
        s->job = -1;
        finish_job(b, j);
        return 0;
    }
    int status = stop_worker(s, 0); /* end of file: the worker is gone */
    worker_lost(b, j, status, 0);
    s->job = -1;
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    if (sig != SIGPIPE) account(b, j); /* SIGPIPE: our output is gone, we follow */
    return sig;
}

/* Gives job i to slot k, starting its worker when it has none (again when
 * the one it had died idle). */
static int hand_out(batch *b, slot *slots, int n, int k, size_t i, const struct sigaction *orig,
                    const struct sigaction *orig_pipe)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!slots[k].pid && start_worker(b, slots, n, k, orig, orig_pipe)) return -1;
        uint64_t v = i;
        if (!write_all(slots[k].cmd, &v, sizeof v)) {
            slots[k].job = (long)i;
            slots[k].deadline = now_s() + b->opt.file_timeout;
            return 0;
        }
        stop_worker(&slots[k], 1);
    }
    errno = EPIPE;
    return -1;
}

/* Runs the batch on n worker processes. Returns 0; -1 when it could not set
 * up (nothing run yet); 128 + the signal when a stop signal whose
 * disposition was to ignore it came (else the process dies of it). */
static int run_isolated(batch *b, int n)
{
    slot *slots = calloc((size_t)n, sizeof *slots);
    struct pollfd *fds = calloc((size_t)n + 1, sizeof *fds);
    int *fd_slot = calloc((size_t)n + 1, sizeof *fd_slot);
    if (!slots || !fds || !fd_slot || pipe(wake_pipe)) {
        free(slots);
        free(fds);
        free(fd_slot);
        return -1;
    }
    for (int p = 0; p < 2; p++) {
        fcntl(wake_pipe[p], F_SETFL, O_NONBLOCK);
        fcntl(wake_pipe[p], F_SETFD, FD_CLOEXEC);
    }
    for (int k = 0; k < n; k++) slots[k].job = -1;
    struct sigaction orig[N_STOP], orig_pipe, sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop_signal;
    stop_signal = 0;
    for (int s = 0; s < N_STOP; s++) sigaction(stop_signals[s], &sa, &orig[s]);
    /* A worker that died idle must not kill this process through its pipe. */
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, &orig_pipe);

    const double limit = b->opt.file_timeout;
    int pipe_died = 0; /* a worker died of SIGPIPE: our own output is gone */
    while (!stop_signal && !pipe_died) {
        for (int k = 0; k < n && b->next < b->count; k++) {
            if (slots[k].job >= 0) continue;
            job *j = NULL;
            while (b->next < b->count && !j) {
                j = &b->jobs[b->next++];
                if (!needs_work(b, j)) {
                    account(b, j);
                    j = NULL;
                }
            }
            if (j && hand_out(b, slots, n, k, (size_t)(j - b->jobs), orig, &orig_pipe)) {
                j->state = JOB_FAILED;
                snprintf(j->error, sizeof j->error, "%s: cannot start a worker process: %s",
                         j->in, strerror(errno));
                account(b, j);
            }
        }
        int nfds = 0;
        double first = 0;
        fds[nfds++] = (struct pollfd){.fd = wake_pipe[0], .events = POLLIN};
        for (int k = 0; k < n; k++)
            if (slots[k].job >= 0) {
                if (nfds == 1 || slots[k].deadline < first) first = slots[k].deadline;
                fd_slot[nfds] = k;
                fds[nfds++] = (struct pollfd){.fd = slots[k].res, .events = POLLIN};
            }
        if (nfds == 1) {
            if (b->next >= b->count) break;
            continue;
        }
        int wait_ms = -1;
        if (limit > 0) {
            double ms = (first - now_s()) * 1000 + 1;
            wait_ms = ms < 0 ? 0 : ms > 1e9 ? 1000000000 : (int)ms;
        }
        if (poll(fds, (nfds_t)nfds, wait_ms) < 0 && errno != EINTR) {
            perror(cli_prog);
            break;
        }
        if (stop_signal) break;
        for (int f = 1; f < nfds; f++)
            if (fds[f].revents && read_result(b, &slots[fd_slot[f]]) == SIGPIPE) pipe_died = 1;
        for (int k = 0; limit > 0 && k < n; k++)
            if (slots[k].job >= 0 && now_s() >= slots[k].deadline) {
                /* Its answer may have come meanwhile (we were reaping another). */
                struct pollfd one = {.fd = slots[k].res, .events = POLLIN};
                if (poll(&one, 1, 0) > 0) {
                    if (read_result(b, &slots[k]) == SIGPIPE) pipe_died = 1;
                    continue;
                }
                job *j = &b->jobs[slots[k].job];
                worker_lost(b, j, stop_worker(&slots[k], 1), 1);
                slots[k].job = -1;
                account(b, j);
            }
    }

    /* Idle workers end at the end of their pipe; busy ones (a stop) are
     * killed, and their temporaries removed. */
    for (int k = 0; k < n; k++) {
        if (!slots[k].pid) continue;
        stop_worker(&slots[k], slots[k].job >= 0);
        if (slots[k].job >= 0 && job_output(b, &b->jobs[slots[k].job]))
            remove_temporaries(b->jobs[slots[k].job].out);
    }
    for (int s = 0; s < N_STOP; s++) sigaction(stop_signals[s], &orig[s], NULL);
    sigaction(SIGPIPE, &orig_pipe, NULL);
    close(wake_pipe[0]);
    close(wake_pipe[1]);
    wake_pipe[0] = wake_pipe[1] = -1;
    free(slots);
    free(fds);
    free(fd_slot);
    int sig = stop_signal ? stop_signal : pipe_died ? SIGPIPE : 0;
    if (!sig) return 0;
    if (b->progress) fprintf(stderr, "\r\033[K");
    if (sig != SIGPIPE) {
        fprintf(stderr, "%s: interrupted (%s): %s %zu of %zu files", cli_prog, signal_name(sig),
                b->spec->verb, b->ok, b->count);
        if (b->spec->out_suffix)
            fprintf(stderr, "; only complete outputs were kept: the same command with "
                            "--skip-existing does the rest");
        fputc('\n', stderr);
    }
    raise(sig); /* dies of it as the shell expects, unless it was ignored */
    return 128 + sig;
}

/* ---------------------------------------------------------------- batch */

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
    const char *inproc = getenv("LUMOS_NO_ISOLATION");
    int isolate = !(inproc && inproc[0] && strcmp(inproc, "0"));
    int rc = isolate ? run_isolated(b, jobs) : -1;
    if (rc > 0) return rc;
    if (rc < 0) run_threads(b, jobs);
    lumos_ctx_free(b->after_ctx);
    b->after_ctx = NULL;

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
