/* main.c — the `lumos` command: a thin client of include/lumos.h.
 *
 *   lumos convert IN... [options]   RAW -> JPEG/PNG/TIFF, in parallel
 *   lumos info IN...                metadata
 *   lumos train --net NET ...       train a learned ISP (train/trainer.h)
 *
 * Exit codes: 0 every input converted (or skipped), 1 some failed, 2 usage;
 * train: 130 when interrupted. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <glob.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lumos.h"
#include "train/adversarial.h"
#include "train/trainer.h"

enum { EXIT_ALL_OK = 0, EXIT_SOME_FAILED = 1, EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };

static const char *prog = "lumos";

static const char usage_main[] =
    "usage: lumos <command> [options]\n"
    "\n"
    "commands:\n"
    "  convert IN...   develop camera RAW files into JPEG, PNG or TIFF\n"
    "  info IN...      print RAW metadata (camera, CFA, levels, white balance, EXIF)\n"
    "  train ...       train a learned ISP on photos and RAW files\n"
    "\n"
    "  lumos <command> --help   options of a command\n"
    "  lumos --version\n";

static const char usage_convert[] =
    "usage: lumos convert IN... [options]\n"
    "\n"
    "IN is a RAW file, a directory (its RAW files, sorted) or a quoted glob.\n"
    "\n"
    "output:\n"
    "  -o, --output FILE|DIR  output file (one input) or directory (created if\n"
    "                         needed); default: beside each input\n"
    "  --format jpeg|png|tiff default: from -o's suffix, else jpeg\n"
    "  --bits 8|16            sample depth (JPEG: 8 only); default 8\n"
    "  -q, --quality N        JPEG quality 1..100; default 92\n"
    "  --subsampling 444|420  JPEG chroma subsampling; default 444\n"
    "  --skip-existing        leave inputs whose output exists alone\n"
    "  --no-overwrite         fail instead of replacing an existing output\n"
    "\n"
    "development:\n"
    "  --isp classic|efficient|robust|rmfa-tiny\n"
    "                         the classical ISP (default) or a learned one\n"
    "  --weights FILE         a learned ISP's weights (safetensors, PyTorch state_dict\n"
    "                         names)\n"
    "  --exposure EV          exposure change in stops; default 0 (no auto-brightening);\n"
    "                         a learned ISP takes it when its weights were trained to\n"
    "  the options below apply to --isp classic only:\n"
    "  --wb camera|auto|R,G,B white balance: as shot, gray world, or multipliers\n"
    "  --tone T               tone-curve strength 0..1; default 0.5\n"
    "  --sharpen A            unsharp-mask amount 0..10; default 0\n"
    "  --half                 half size: one pixel per 2x2 block, no demosaic\n"
    "  --linear               scene-linear output: no tone curve, no transfer (as dcraw -4)\n"
    "  --space srgb|camera    camera: skip the colour matrix (as dcraw -o 0)\n"
    "\n"
    "batch:\n"
    "  -j, --jobs N           files converted at once; default: one per core\n"
    "  --shard K/N            convert only the K-th of N deterministic slices of\n"
    "                         the sorted input list (for job arrays), 1 <= K <= N\n"
    "  --quiet                no progress bar or summary\n"
    "\n"
    "Outputs are written to a temporary name and renamed when complete, tagged\n"
    "with an ICC profile (sRGB, or linear sRGB with --linear; none with --space\n"
    "camera) and stored upright. Exit: 0 all converted, 1 some failed, 2 usage.\n";

static const char usage_info[] =
    "usage: lumos info IN... [--json]\n"
    "\n"
    "Prints each RAW file's camera, size, CFA pattern, black and white levels,\n"
    "as-shot white balance, colour matrix, orientation and basic EXIF.\n"
    "  --json   one JSON object per line\n";

static const char usage_train[] =
    "usage: lumos train --net efficient|robust|rmfa-tiny --data SRC... --out FILE [options]\n"
    "\n"
    "Trains a learned ISP on photos (unprocessed into noisy mosaics after Brooks\n"
    "et al. 2019) and RAW files, and writes its weights as safetensors with the\n"
    "PyTorch state_dict names, for 'lumos convert --isp NET --weights FILE'.\n"
    "\n"
    "model and data:\n"
    "  --net NET              efficient, robust or rmfa-tiny\n"
    "  --data SRC...          directories, list files (*.txt, *.list: one path a\n"
    "                         line) or photo/RAW files; 10% of the names are held\n"
    "                         out for good (previews), whatever else is added\n"
    "  --out FILE             the trained weights (.safetensors), written at the end\n"
    "  --init FILE            start from these weights (default: PyTorch's Conv2d\n"
    "                         init from --seed)\n"
    "  --input sensor|agnostic what the network sees: sensor (default), the\n"
    "                         mosaic as is (weights for the unprocessing's sensor,\n"
    "                         the Canon EOS 30D); agnostic, the mosaic white-\n"
    "                         balanced and mapped by the camera matrix first (any\n"
    "                         camera). Saved in the weights; convert follows it\n"
    "  --mode unpaired|paired unpaired (default): the targets are other photos;\n"
    "                         paired: the photo each mosaic was made from (RAW\n"
    "                         files have none and are left out)\n"
    "  --terms NAME[:W],...   loss terms and their weights, each normalised by its\n"
    "                         own gradient norm: content (MobileNetV2 features of\n"
    "                         the lightness, or VGG-19's with --content-features,\n"
    "                         against the classical render), texture and colour\n"
    "                         (relativistic GANs with R1 + R2), tv (total\n"
    "                         variation), l1 and perceptual (paired only: against\n"
    "                         the aligned photo), mse-classic. Default: unpaired\n"
    "                         content,tv,texture,colour; paired l1,perceptual\n"
    "  --features FILE        the MobileNetV2 of the texture and colour terms, and of\n"
    "                         content and perceptual without --content-features\n"
    "                         (default ~/.cache/lumos/mobilenet_v2_block10.safetensors,\n"
    "                         made by train/fetch-mobilenet.sh)\n"
    "  --content-features FILE VGG-19 in torchvision's layout (safetensors) for the\n"
    "                         content and perceptual terms, relu5_4 as in the\n"
    "                         method; default: the MobileNetV2 of --features\n"
    "\n"
    "optimisation:\n"
    "  --steps N              generator steps in all (default 10000)\n"
    "  --batch B              samples per step (default 8)\n"
    "  --crop S               crop side in pixels, even, 8..4096 (default 128)\n"
    "  --lr-g X               generator learning rate (default 5e-4; Adam betas\n"
    "                         0.5, 0.9, the method's)\n"
    "  --lr-g-final X         let the generator's rate fall from --lr-g to X by the\n"
    "                         last step, along a half cosine (default: constant)\n"
    "  --lr-d X               discriminators' learning rate (default 1e-5)\n"
    "  --d-every K            a discriminator step every K generator steps (default 10)\n"
    "  --seed S               the seed of every random choice (default 1)\n"
    "  --threads N            samples processed at once (default: one per core)\n"
    "  --cache-mb N           decoded photos kept in memory for their next visit\n"
    "                         (default: a quarter of this machine's memory; 0:\n"
    "                         decode every time)\n"
    "\n"
    "progress and resuming:\n"
    "  --log FILE             CSV log: step, seconds, each term's value and gradient\n"
    "                         norm, lr (appended to on --resume)\n"
    "  --preview FILE         PNG, rows of held-out crops: classical render |\n"
    "                         network output | target\n"
    "  --preview-every N      steps between previews (default 500; also at the end)\n"
    "  --checkpoint FILE      the resumable state, written atomically\n"
    "  --checkpoint-every N   steps between checkpoints (default 500; also at the end)\n"
    "  --resume               continue from --checkpoint (which must exist and match\n"
    "                         --net, --input, --mode, --crop, --batch and --seed)\n"
    "                         exactly as the run would have gone on\n"
    "  --quiet                no progress lines or summary\n"
    "\n"
    "Ctrl-C (SIGINT or SIGTERM) ends the run after the current step and writes the\n"
    "checkpoint and the weights; a second Ctrl-C quits at once. Unreadable data\n"
    "files are skipped, reported and counted.\n"
    "Exit: 0 done, 1 failure, 2 usage error, 130 interrupted.\n";

static void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see '%s --help')\n", prog);
    va_end(ap);
    exit(EXIT_USAGE);
}

/* ------------------------------------------------------------- arguments */

static double parse_number(const char *opt, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        die_usage("%s: '%s' is not a number in %g..%g", opt, s, lo, hi);
    return v;
}

static int parse_int(const char *opt, const char *s, int lo, int hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        die_usage("%s: '%s' is not an integer in %d..%d", opt, s, lo, hi);
    return (int)v;
}

/* "--name value" or "--name=value"; advances *i past what it used. */
static const char *option_value(int argc, char **argv, int *i, const char *name)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) == 0 && a[n] == '=') return a + n + 1;
    if (strcmp(a, name) == 0) {
        if (*i + 1 >= argc) die_usage("%s needs a value", name);
        return argv[++*i];
    }
    return NULL;
}

static int is_option(int argc, char **argv, int *i, const char *name, const char *alias,
                     const char **value)
{
    *value = option_value(argc, argv, i, name);
    if (!*value && alias) *value = option_value(argc, argv, i, alias);
    return *value != NULL;
}

/* ---------------------------------------------------------------- inputs */

typedef struct {
    char **items;
    size_t count, cap;
} strlist;

static void strlist_add(strlist *l, const char *s)
{
    if (l->count == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->items = realloc(l->items, l->cap * sizeof *l->items);
        if (!l->items) { perror(prog); exit(EXIT_SOME_FAILED); }
    }
    l->items[l->count] = strdup(s);
    if (!l->items[l->count]) { perror(prog); exit(EXIT_SOME_FAILED); }
    l->count++;
}

static void strlist_free(strlist *l)
{
    for (size_t i = 0; i < l->count; i++) free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

static int compare_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_raw_suffix(const char *name)
{
    static const char *const suffixes[] = {
        "cr2", "cr3", "crw", "nef", "nrw", "arw", "srf", "sr2", "raf", "orf", "rw2", "rwl",
        "pef", "ptx", "dng", "srw", "x3f", "3fr", "fff", "iiq", "mos", "mrw", "erf", "kdc",
        "dcr", "mef", "raw", "gpr"};
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return 0;
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
        if (strcasecmp(dot + 1, suffixes[i]) == 0) return 1;
    return 0;
}

/* Files as given; directories contribute their RAW files; an argument that
 * names nothing but holds wildcards is expanded as a glob. Arguments that
 * give no input land in `rejected` as "ARG: reason". */
static void reject(strlist *rejected, const char *arg, const char *why)
{
    char msg[PATH_MAX + 64];
    snprintf(msg, sizeof msg, "%s: %s", arg, why);
    strlist_add(rejected, msg);
}

static void expand_inputs(int n, char **args, strlist *out, strlist *rejected)
{
    for (int i = 0; i < n; i++) {
        const char *a = args[i];
        struct stat st;
        if (stat(a, &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(a);
            if (!d) { reject(rejected, a, strerror(errno)); continue; }
            strlist found = {0};
            struct dirent *e;
            while ((e = readdir(d))) {
                if (e->d_name[0] == '.' || !has_raw_suffix(e->d_name)) continue;
                char path[PATH_MAX];
                size_t len = strlen(a);
                snprintf(path, sizeof path, "%s%s%s", a, len && a[len - 1] == '/' ? "" : "/",
                         e->d_name);
                strlist_add(&found, path);
            }
            closedir(d);
            if (!found.count) reject(rejected, a, "no RAW files in this directory");
            for (size_t k = 0; k < found.count; k++) {
                strlist_add(out, found.items[k]);
                free(found.items[k]);
            }
            free(found.items);
            continue;
        }
        if (strpbrk(a, "*?[") && access(a, F_OK) != 0) {
            glob_t g;
            if (glob(a, 0, NULL, &g) == 0) {
                for (size_t k = 0; k < g.gl_pathc; k++) strlist_add(out, g.gl_pathv[k]);
                globfree(&g);
            } else {
                reject(rejected, a, "no file matches");
            }
            continue;
        }
        strlist_add(out, a); /* may not exist: reported as a failed input */
    }
    if (out->count > 1) qsort(out->items, out->count, sizeof *out->items, compare_str);
}

/* ------------------------------------------------------------------ info */

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

static const char *cfa_name(lumos_cfa c)
{
    switch (c) {
    case LUMOS_CFA_RGGB: return "RGGB";
    case LUMOS_CFA_BGGR: return "BGGR";
    case LUMOS_CFA_GRBG: return "GRBG";
    case LUMOS_CFA_GBRG: return "GBRG";
    default: return "none";
    }
}

static void print_info(const char *path, const lumos_raw_info *in, int json)
{
    const lumos_exif *e = &in->exif;
    if (json) {
        printf("{\"file\":");
        json_string(path);
        printf(",\"make\":");
        json_string(e->make);
        printf(",\"model\":");
        json_string(e->model);
        printf(",\"width\":%d,\"height\":%d,\"cfa\":\"%s\",\"bayer\":%s", in->width, in->height,
               cfa_name(in->cfa), in->is_bayer ? "true" : "false");
        printf(",\"black\":[%g,%g,%g,%g],\"white\":%g", in->black[0], in->black[1],
               in->black[2], in->black[3], in->white);
        printf(",\"wb_as_shot\":[%g,%g,%g]", in->wb_as_shot[0], in->wb_as_shot[1],
               in->wb_as_shot[2]);
        printf(",\"cam_to_srgb\":[");
        for (int i = 0; i < 3; i++)
            printf("%s[%g,%g,%g]", i ? "," : "", in->cam_to_srgb[i][0], in->cam_to_srgb[i][1],
                   in->cam_to_srgb[i][2]);
        printf("],\"orientation\":%d,\"iso\":%g,\"exposure_s\":%g,\"aperture\":%g,"
               "\"focal_mm\":%g,\"datetime\":",
               in->orientation, e->iso, e->exposure_s, e->aperture, e->focal_mm);
        json_string(e->datetime);
        printf("}\n");
        return;
    }
    printf("%s\n", path);
    printf("  camera       %s %s\n", e->make, e->model);
    printf("  size         %d x %d (active area)\n", in->width, in->height);
    printf("  mosaic       %s%s\n", cfa_name(in->cfa),
           in->is_bayer ? "" : " (not Bayer: LibRaw's own processing is used)");
    printf("  black        %g %g %g %g   white %g\n", in->black[0], in->black[1], in->black[2],
           in->black[3], in->white);
    printf("  wb as shot   R %.4f  G %.4f  B %.4f\n", in->wb_as_shot[0], in->wb_as_shot[1],
           in->wb_as_shot[2]);
    for (int i = 0; i < 3; i++)
        printf("  %s [% .4f % .4f % .4f]\n", i == 0 ? "cam->sRGB " : "          ",
               in->cam_to_srgb[i][0], in->cam_to_srgb[i][1], in->cam_to_srgb[i][2]);
    printf("  orientation  %d\n", in->orientation);
    if (e->exposure_s > 0) {
        if (e->exposure_s < 1) printf("  exposure     1/%.0f s", 1 / e->exposure_s);
        else printf("  exposure     %g s", e->exposure_s);
        printf("  f/%.1f  ISO %g  %g mm\n", e->aperture, e->iso, e->focal_mm);
    }
    if (e->datetime[0]) printf("  taken        %s\n", e->datetime);
}

static int cmd_info(int argc, char **argv)
{
    int json = 0;
    strlist args = {0};
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_info, stdout);
            return EXIT_ALL_OK;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            die_usage("info: unknown option '%s'", argv[i]);
        } else {
            strlist_add(&args, argv[i]);
        }
    }
    if (!args.count) die_usage("info: no input files");
    strlist inputs = {0}, rejected = {0};
    expand_inputs((int)args.count, args.items, &inputs, &rejected);
    int failed = (int)rejected.count;
    for (size_t i = 0; i < rejected.count; i++) fprintf(stderr, "%s: %s\n", prog, rejected.items[i]);
    lumos_ctx *ctx = lumos_ctx_new();
    if (!ctx) { fprintf(stderr, "%s: out of memory\n", prog); return EXIT_SOME_FAILED; }
    for (size_t i = 0; i < inputs.count; i++) {
        lumos_raw *raw = NULL;
        if (lumos_raw_open_file(ctx, inputs.items[i], &raw) != LUMOS_OK) {
            fprintf(stderr, "%s: %s\n", prog, lumos_last_error(ctx));
            failed++;
            continue;
        }
        print_info(inputs.items[i], lumos_raw_get_info(raw), json);
        lumos_raw_free(raw);
    }
    lumos_ctx_free(ctx);
    strlist_free(&args);
    strlist_free(&inputs);
    strlist_free(&rejected);
    return failed ? EXIT_SOME_FAILED : EXIT_ALL_OK;
}

/* --------------------------------------------------------------- convert */

typedef enum { JOB_PENDING, JOB_OK, JOB_SKIPPED, JOB_FAILED } job_state;

typedef struct {
    const char *in;
    char out[PATH_MAX];
    job_state state;
    char error[2 * PATH_MAX + 1100];
} job;

typedef struct {
    job *jobs;
    size_t count;
    size_t next;          /* next job to take */
    size_t done, ok, skipped, failed;
    const lumos_convert_options *opt;
    int skip_existing;
    int threads_per_job;
    int progress;         /* draw a progress bar (stderr is a terminal) */
    double start;
    pthread_mutex_t lock;
} batch;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

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
    fprintf(stderr, "%s: note: %s: %s\n", prog, ((const job *)user)->in, message);
}

static void *convert_worker(void *arg)
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
        if (j->state == JOB_PENDING) {
            struct stat st;
            if (b->skip_existing && stat(j->out, &st) == 0) {
                j->state = JOB_SKIPPED;
            } else if (!ctx) {
                j->state = JOB_FAILED;
                snprintf(j->error, sizeof j->error, "%s: out of memory", j->in);
            } else {
                lumos_ctx_set_notice(ctx, print_notice, j);
                if (lumos_convert_file(ctx, j->in, j->out, b->opt) == LUMOS_OK) {
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
            fprintf(stderr, "%s: error: %s\n", prog, j->error);
        }
        draw_progress(b);
        pthread_mutex_unlock(&b->lock);
    }
    lumos_ctx_free(ctx);
    return NULL;
}

static const char *format_suffix(lumos_format f)
{
    return f == LUMOS_FORMAT_PNG ? ".png" : f == LUMOS_FORMAT_TIFF ? ".tif" : ".jpg";
}

/* OUT_DIR/<input name without suffix><suffix>; "" out_dir: beside the input.
 * Returns 0, or -1 when the name does not fit. */
static int output_name(char *dst, size_t n, const char *in, const char *out_dir, const char *suffix)
{
    const char *base = strrchr(in, '/');
    base = base ? base + 1 : in;
    const char *dot = strrchr(base, '.');
    int stem = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
    if (out_dir[0]) {
        size_t len = strlen(out_dir);
        int w = snprintf(dst, n, "%s%s%.*s%s", out_dir, out_dir[len - 1] == '/' ? "" : "/",
                         stem, base, suffix);
        return w < 0 || (size_t)w >= n ? -1 : 0;
    }
    int w = snprintf(dst, n, "%.*s%.*s%s", (int)(base - in), in, stem, base, suffix);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

static int cmd_convert(int argc, char **argv)
{
    lumos_convert_options opt;
    lumos_convert_options_init(&opt);
    opt.write.overwrite = 1;
    const char *output = NULL;
    lumos_format format = LUMOS_FORMAT_AUTO;
    int jobs = 0, skip_existing = 0, quiet = 0, shard_k = 1, shard_n = 1;
    strlist args = {0};

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_convert, stdout);
            return EXIT_ALL_OK;
        } else if (is_option(argc, argv, &i, "--output", "-o", &v)) {
            output = v;
        } else if (is_option(argc, argv, &i, "--format", NULL, &v)) {
            if (!strcmp(v, "jpeg") || !strcmp(v, "jpg")) format = LUMOS_FORMAT_JPEG;
            else if (!strcmp(v, "png")) format = LUMOS_FORMAT_PNG;
            else if (!strcmp(v, "tiff") || !strcmp(v, "tif")) format = LUMOS_FORMAT_TIFF;
            else die_usage("--format: '%s' is not jpeg, png or tiff", v);
        } else if (is_option(argc, argv, &i, "--bits", NULL, &v)) {
            opt.isp.bits = parse_int("--bits", v, 8, 16);
            if (opt.isp.bits != 8 && opt.isp.bits != 16) die_usage("--bits: 8 or 16");
        } else if (is_option(argc, argv, &i, "--quality", "-q", &v)) {
            opt.write.quality = parse_int("--quality", v, 1, 100);
        } else if (is_option(argc, argv, &i, "--subsampling", NULL, &v)) {
            opt.write.subsampling = parse_int("--subsampling", v, 420, 444);
            if (opt.write.subsampling != 420 && opt.write.subsampling != 444)
                die_usage("--subsampling: 444 or 420");
        } else if (is_option(argc, argv, &i, "--wb", NULL, &v)) {
            if (!strcmp(v, "camera")) {
                opt.isp.wb = LUMOS_WB_CAMERA;
            } else if (!strcmp(v, "auto")) {
                opt.isp.wb = LUMOS_WB_AUTO;
            } else {
                float m[3];
                char tail;
                if (sscanf(v, "%f,%f,%f%c", &m[0], &m[1], &m[2], &tail) != 3 || !(m[0] > 0) ||
                    !(m[1] > 0) || !(m[2] > 0))
                    die_usage("--wb: 'camera', 'auto' or three positive multipliers R,G,B");
                opt.isp.wb = LUMOS_WB_USER;
                memcpy(opt.isp.wb_user, m, sizeof m);
            }
        } else if (is_option(argc, argv, &i, "--exposure", NULL, &v)) {
            opt.isp.exposure_ev = (float)parse_number("--exposure", v, -16, 16);
        } else if (is_option(argc, argv, &i, "--tone", NULL, &v)) {
            opt.isp.tone = (float)parse_number("--tone", v, 0, 1);
        } else if (is_option(argc, argv, &i, "--sharpen", NULL, &v)) {
            opt.isp.sharpen = (float)parse_number("--sharpen", v, 0, 10);
        } else if (!strcmp(a, "--half")) {
            opt.isp.half = 1;
        } else if (!strcmp(a, "--linear")) {
            opt.isp.linear = 1;
        } else if (is_option(argc, argv, &i, "--space", NULL, &v)) {
            if (!strcmp(v, "srgb")) opt.isp.camera_space = 0;
            else if (!strcmp(v, "camera")) opt.isp.camera_space = 1;
            else die_usage("--space: 'srgb' or 'camera'");
        } else if (is_option(argc, argv, &i, "--isp", NULL, &v)) {
            if (!strcmp(v, "classic")) opt.kind = LUMOS_ISP_CLASSIC;
            else if (!strcmp(v, "efficient")) opt.kind = LUMOS_ISP_EFFICIENT;
            else if (!strcmp(v, "robust")) opt.kind = LUMOS_ISP_ROBUST;
            else if (!strcmp(v, "rmfa-tiny")) opt.kind = LUMOS_ISP_RMFA_TINY;
            else die_usage("--isp: classic, efficient, robust or rmfa-tiny");
        } else if (is_option(argc, argv, &i, "--weights", NULL, &v)) {
            opt.weights = v;
        } else if (is_option(argc, argv, &i, "--jobs", "-j", &v)) {
            jobs = parse_int("--jobs", v, 1, 256);
        } else if (is_option(argc, argv, &i, "--shard", NULL, &v)) {
            char tail;
            if (sscanf(v, "%d/%d%c", &shard_k, &shard_n, &tail) != 2 || shard_n < 1 ||
                shard_k < 1 || shard_k > shard_n)
                die_usage("--shard: K/N with 1 <= K <= N, e.g. --shard 2/8");
        } else if (!strcmp(a, "--skip-existing")) {
            skip_existing = 1;
        } else if (!strcmp(a, "--no-overwrite")) {
            opt.write.overwrite = 0;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            die_usage("convert: unknown option '%s'", a);
        } else {
            strlist_add(&args, a);
        }
    }
    if (!args.count) die_usage("convert: no input files");
    if (opt.kind == LUMOS_ISP_CLASSIC && opt.weights)
        die_usage("--weights needs a learned ISP (--isp efficient|robust|rmfa-tiny)");
    lumos_isp_options defaults;
    lumos_isp_options_init(&defaults);
    defaults.bits = opt.isp.bits;
    defaults.exposure_ev = opt.isp.exposure_ev; /* a learned ISP takes it too */
    if (opt.kind != LUMOS_ISP_CLASSIC && memcmp(&defaults, &opt.isp, sizeof defaults))
        die_usage("--wb, --tone, --sharpen, --half, --linear and --space apply to "
                  "--isp classic only");
    /* A learned ISP's weights are read once, before any input. */
    lumos_net *net = NULL;
    if (opt.kind != LUMOS_ISP_CLASSIC) {
        lumos_ctx *ctx = lumos_ctx_new();
        if (!ctx || lumos_net_load(ctx, opt.kind, opt.weights, &net) != LUMOS_OK) {
            fprintf(stderr, "%s: error: %s\n", prog, ctx ? lumos_last_error(ctx) : "out of memory");
            lumos_ctx_free(ctx);
            strlist_free(&args);
            return EXIT_SOME_FAILED;
        }
        lumos_ctx_free(ctx);
        opt.net = net;
    }

    strlist inputs = {0}, rejected = {0};
    expand_inputs((int)args.count, args.items, &inputs, &rejected);
    for (size_t i = 0; i < rejected.count; i++)
        fprintf(stderr, "%s: error: %s\n", prog, rejected.items[i]);

    /* The output: a file for one input, else a directory. */
    char out_dir[PATH_MAX] = "";
    const char *out_file = NULL;
    if (output) {
        struct stat st;
        size_t len = strlen(output);
        /* One named file in, one file out; anything that may expand is a batch. */
        int batch_in = args.count > 1 || inputs.count != 1 || strcmp(inputs.items[0], args.items[0]);
        int is_dir = (stat(output, &st) == 0 && S_ISDIR(st.st_mode)) ||
                     (len && output[len - 1] == '/') || batch_in;
        if (is_dir) {
            snprintf(out_dir, sizeof out_dir, "%s", output);
        } else {
            out_file = output;
            if (format == LUMOS_FORMAT_AUTO) format = lumos_format_from_path(output);
            if (format == LUMOS_FORMAT_AUTO)
                die_usage("%s: unknown output suffix; use .jpg, .png, .tif or --format", output);
        }
    }
    if (format == LUMOS_FORMAT_AUTO) format = LUMOS_FORMAT_JPEG;
    if (format == LUMOS_FORMAT_JPEG && opt.isp.bits != 8)
        die_usage("JPEG holds 8 bits only; use --format png or tiff with --bits 16");
    opt.write.format = format;

    /* This shard's slice of the sorted list: every N-th input from K-1. */
    size_t count = 0, failed = 0;
    job *jobs_list = calloc(inputs.count ? inputs.count : 1, sizeof *jobs_list);
    if (!jobs_list) { perror(prog); return EXIT_SOME_FAILED; }
    for (size_t i = 0; i < inputs.count; i++) {
        if ((int)(i % (size_t)shard_n) != shard_k - 1) continue;
        job *j = &jobs_list[count++];
        j->in = inputs.items[i];
        if (out_file) snprintf(j->out, sizeof j->out, "%s", out_file);
        else if (output_name(j->out, sizeof j->out, j->in, out_dir, format_suffix(format))) {
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
        for (size_t k = 0; k + 1 < count && j->state == JOB_PENDING; k++)
            if (!strcmp(jobs_list[k].out, j->out)) {
                j->state = JOB_FAILED;
                snprintf(j->error, sizeof j->error, "%s: output %s is also the output of %s",
                         j->in, j->out, jobs_list[k].in);
            }
    }

    /* Made only when there is something to put in it. */
    if (out_dir[0] && count && mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: error: %s: cannot create the output directory: %s\n", prog, out_dir,
                strerror(errno));
        failed = 1;
        goto done;
    }

    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    if (!jobs) jobs = cores;
    if ((size_t)jobs > count) jobs = count ? (int)count : 1;
    batch b = {.jobs = jobs_list, .count = count, .opt = &opt, .skip_existing = skip_existing,
               .threads_per_job = cores / jobs > 0 ? cores / jobs : 1,
               .progress = !quiet && count > 1 && isatty(STDERR_FILENO), .start = now_s()};
    pthread_mutex_init(&b.lock, NULL);
    pthread_t *threads = calloc((size_t)jobs, sizeof *threads);
    int started = 0;
    for (int t = 1; threads && t < jobs; t++)
        if (pthread_create(&threads[started], NULL, convert_worker, &b) == 0) started++;
    convert_worker(&b);
    for (int t = 0; t < started; t++) pthread_join(threads[t], NULL);
    free(threads);
    pthread_mutex_destroy(&b.lock);

    failed = b.failed + rejected.count;
    if (b.progress) fprintf(stderr, "\r\033[K");
    if (!quiet && (count + rejected.count > 1 || failed)) {
        fprintf(stderr, "%s: converted %zu of %zu files in %.2f s", prog, b.ok,
                count + rejected.count, now_s() - b.start);
        if (b.skipped) fprintf(stderr, ", %zu skipped (output exists)", b.skipped);
        if (failed) fprintf(stderr, ", %zu failed:", failed);
        fputc('\n', stderr);
        for (size_t i = 0; i < rejected.count; i++) fprintf(stderr, "  %s\n", rejected.items[i]);
        for (size_t i = 0; i < count; i++)
            if (jobs_list[i].state == JOB_FAILED) fprintf(stderr, "  %s\n", jobs_list[i].error);
    }
    if (count == 0 && rejected.count == 0 && !quiet)
        fprintf(stderr, "%s: no RAW files in the inputs (shard %d/%d)\n", prog, shard_k, shard_n);
done:
    free(jobs_list);
    lumos_net_free(net);
    strlist_free(&args);
    strlist_free(&inputs);
    strlist_free(&rejected);
    return failed ? EXIT_SOME_FAILED : EXIT_ALL_OK;
}

/* ----------------------------------------------------------------- train */

static volatile sig_atomic_t stop_requested;

/* The first signal asks the trainer to stop after its step; a second one
 * ends the process as the signal would have. */
static void on_stop_signal(int sig)
{
    if (stop_requested) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_requested = 1;
    static const char msg[] = "\nlumos: stopping after this step (again to quit at once)\n";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
}

/* Notices (skipped files) on their own line, clearing a progress line. */
static void print_train_notice(void *user, const char *message)
{
    (void)user;
    fprintf(stderr, "%s%s: note: %s\n", isatty(STDERR_FILENO) ? "\r\033[K" : "", prog, message);
}

static int cmd_train(int argc, char **argv)
{
    lumos__train_options o;
    lumos__train_options_init(&o);
    int have_net = 0, quiet = 0;
    const char *terms_spec = NULL, *content_features = NULL;
    strlist data = {0};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_train, stdout);
            return EXIT_ALL_OK;
        } else if (is_option(argc, argv, &i, "--net", NULL, &v)) {
            if (!strcmp(v, "efficient")) o.net = LUMOS_ISP_EFFICIENT;
            else if (!strcmp(v, "robust")) o.net = LUMOS_ISP_ROBUST;
            else if (!strcmp(v, "rmfa-tiny")) o.net = LUMOS_ISP_RMFA_TINY;
            else die_usage("--net: efficient, robust or rmfa-tiny");
            have_net = 1;
        } else if (!strncmp(a, "--data=", 7)) {
            strlist_add(&data, a + 7);
        } else if (!strcmp(a, "--data")) {
            if (i + 1 >= argc || argv[i + 1][0] == '-')
                die_usage("--data needs at least one source");
            while (i + 1 < argc && argv[i + 1][0] != '-') strlist_add(&data, argv[++i]);
        } else if (is_option(argc, argv, &i, "--out", "-o", &v)) {
            o.out = v;
        } else if (is_option(argc, argv, &i, "--init", NULL, &v)) {
            o.init = v;
        } else if (is_option(argc, argv, &i, "--input", NULL, &v)) {
            if (!strcmp(v, "sensor")) o.input = LUMOS_INPUT_SENSOR;
            else if (!strcmp(v, "agnostic")) o.input = LUMOS_INPUT_AGNOSTIC;
            else die_usage("--input: sensor or agnostic");
        } else if (is_option(argc, argv, &i, "--mode", NULL, &v)) {
            if (!strcmp(v, "unpaired")) o.mode = LUMOS__TRAIN_UNPAIRED;
            else if (!strcmp(v, "paired")) o.mode = LUMOS__TRAIN_PAIRED;
            else die_usage("--mode: unpaired or paired");
        } else if (is_option(argc, argv, &i, "--terms", NULL, &v)) {
            terms_spec = v;
        } else if (is_option(argc, argv, &i, "--features", NULL, &v)) {
            o.features = v;
        } else if (is_option(argc, argv, &i, "--content-features", NULL, &v)) {
            content_features = o.content_features = v;
        } else if (is_option(argc, argv, &i, "--steps", NULL, &v)) {
            o.steps = (uint64_t)parse_int("--steps", v, 1, INT_MAX);
        } else if (is_option(argc, argv, &i, "--batch", NULL, &v)) {
            o.batch = parse_int("--batch", v, 1, 1024);
        } else if (is_option(argc, argv, &i, "--crop", NULL, &v)) {
            o.crop = parse_int("--crop", v, 8, 4096);
            if (o.crop % 2) die_usage("--crop: an even size (the mosaic's 2x2 blocks)");
        } else if (is_option(argc, argv, &i, "--lr-g", NULL, &v)) {
            o.lr_g = parse_number("--lr-g", v, 1e-9, 0.5);
        } else if (is_option(argc, argv, &i, "--lr-g-final", NULL, &v)) {
            o.lr_g_final = parse_number("--lr-g-final", v, 1e-12, 0.5);
        } else if (is_option(argc, argv, &i, "--lr-d", NULL, &v)) {
            o.lr_d = parse_number("--lr-d", v, 1e-9, 0.5);
        } else if (is_option(argc, argv, &i, "--d-every", NULL, &v)) {
            o.d_every = parse_int("--d-every", v, 1, INT_MAX);
        } else if (is_option(argc, argv, &i, "--seed", NULL, &v)) {
            char *end;
            errno = 0;
            unsigned long long seed = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-')
                die_usage("--seed: '%s' is not a non-negative integer", v);
            o.seed = seed;
        } else if (is_option(argc, argv, &i, "--threads", "-j", &v)) {
            o.threads = parse_int("--threads", v, 1, 256);
        } else if (is_option(argc, argv, &i, "--cache-mb", NULL, &v)) {
            o.cache_mb = (size_t)parse_int("--cache-mb", v, 0, 1 << 24);
        } else if (is_option(argc, argv, &i, "--log", NULL, &v)) {
            o.log = v;
        } else if (is_option(argc, argv, &i, "--preview", NULL, &v)) {
            o.preview = v;
        } else if (is_option(argc, argv, &i, "--preview-every", NULL, &v)) {
            o.preview_every = parse_int("--preview-every", v, 1, INT_MAX);
        } else if (is_option(argc, argv, &i, "--checkpoint", NULL, &v)) {
            o.checkpoint = v;
        } else if (is_option(argc, argv, &i, "--checkpoint-every", NULL, &v)) {
            o.checkpoint_every = parse_int("--checkpoint-every", v, 1, INT_MAX);
        } else if (!strcmp(a, "--resume")) {
            o.resume = 1;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            die_usage("train: unknown option '%s'", a);
        } else {
            die_usage("train: unexpected argument '%s' (data sources follow --data)", a);
        }
    }
    if (!have_net) die_usage("train: --net is required (efficient, robust or rmfa-tiny)");
    if (!data.count) die_usage("train: --data is required (directories, lists or files)");
    if (!o.out) die_usage("train: --out FILE is required (the trained weights)");
    if (o.resume && !o.checkpoint) die_usage("--resume needs --checkpoint FILE");
    if (o.preview && lumos_format_from_path(o.preview) != LUMOS_FORMAT_PNG)
        die_usage("--preview: a .png file name");

    lumos_ctx *ctx = lumos_ctx_new();
    if (!ctx) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return EXIT_SOME_FAILED;
    }
    /* The feature networks the terms use: real ones always (a random one is
     * for tests). The MobileNetV2 serves texture and colour, and content and
     * perceptual unless --content-features gives them a VGG-19. */
    char default_features[PATH_MAX];
    if (!o.features) {
        const char *home = getenv("HOME");
        snprintf(default_features, sizeof default_features,
                 "%s/.cache/lumos/mobilenet_v2_block10.safetensors", home ? home : "");
        o.features = default_features;
    }
    const char *spec = terms_spec ? terms_spec : lumos__train_default_terms(o.mode);
    const int wants_content = strstr(spec, "content") || strstr(spec, "perceptual");
    const int wants_mobilenet = strstr(spec, "texture") || strstr(spec, "colour") ||
                                (wants_content && !content_features);
    int missing = 1;
    if (wants_mobilenet && access(o.features, R_OK) != 0)
        fprintf(stderr, "%s: error: %s: %s (the feature network: run train/fetch-mobilenet.sh %s, "
                "or give --features FILE)\n", prog, o.features, strerror(errno), o.features);
    else if (wants_content && content_features && access(content_features, R_OK) != 0)
        fprintf(stderr, "%s: error: %s: %s (--content-features: a VGG-19 state_dict in "
                "torchvision's layout, saved with safetensors)\n", prog, content_features,
                strerror(errno));
    else
        missing = 0;
    if (missing) {
        lumos_ctx_free(ctx);
        strlist_free(&data);
        return EXIT_SOME_FAILED;
    }
    lumos__gan_options gan;
    lumos__gan_options_init(&gan);
    gan.features = wants_mobilenet ? o.features : NULL; /* NULL: a random one, unused */
    gan.content_features = wants_content ? content_features : NULL;
    gan.seed = o.seed;
    lumos__train_term *terms = NULL;
    int n_terms = 0;
    int terms_rc = lumos__train_terms_parse(ctx, spec, &gan, &terms, &n_terms);
    if (terms_rc != LUMOS_OK) {
        /* a bad spec is a usage error; a feature network that fails to load is not */
        if (terms_spec && terms_rc == LUMOS_E_ARG) die_usage("--terms: %s", lumos_last_error(ctx));
        fprintf(stderr, "%s: error: %s\n", prog, lumos_last_error(ctx));
        lumos_ctx_free(ctx);
        strlist_free(&data);
        return EXIT_SOME_FAILED;
    }
    for (int i = 0; i < n_terms; i++)
        if (terms[i].needs_aligned_target && o.mode != LUMOS__TRAIN_PAIRED)
            die_usage("--terms: %s needs --mode paired", terms[i].name);
    o.terms = terms;
    o.n_terms = n_terms;
    o.sources = (const char *const *)data.items;
    o.n_sources = (int)data.count;
    o.progress = !quiet;
    o.stop = &stop_requested;
    if (o.threads) lumos_ctx_set_threads(ctx, o.threads);
    lumos_ctx_set_notice(ctx, print_train_notice, NULL);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* A step allocates and frees the same few MB of maps and pipeline
     * intermediates again and again; glibc would hand those to mmap and
     * back, and the kernel zero every page anew (8 % of a discriminator
     * step here). Keep them in the heap instead. */
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);

    lumos__train_result res;
    int rc = lumos__train(ctx, &o, &res);
    int code = rc != LUMOS_OK ? EXIT_SOME_FAILED : res.interrupted ? EXIT_INTERRUPTED : EXIT_ALL_OK;
    if (rc != LUMOS_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, lumos_last_error(ctx));
    } else if (!quiet) {
        fprintf(stderr, "%s: %s %s at step %" PRIu64 " of %" PRIu64 " (%" PRIu64 " this run, "
                "%.1f s, %.3f s/step); weights: %s", prog, lumos_isp_name(o.net),
                res.interrupted ? "interrupted" : "trained", res.step, o.steps,
                res.step - res.first_step, res.seconds, res.seconds_per_step, o.out);
        if (o.checkpoint) fprintf(stderr, "; checkpoint: %s", o.checkpoint);
        if (res.skipped_files) fprintf(stderr, "; %zu bad data files skipped", res.skipped_files);
        fputc('\n', stderr);
    }
    for (int i = 0; i < n_terms; i++) lumos__train_term_free(&terms[i]);
    free(terms);
    lumos_ctx_free(ctx);
    strlist_free(&data);
    return code;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage_main, stdout);
        return EXIT_ALL_OK;
    }
    if (!strcmp(cmd, "--version")) {
        printf("lumos %s\n", lumos_version());
        return EXIT_ALL_OK;
    }
    if (!strcmp(cmd, "convert")) return cmd_convert(argc - 2, argv + 2);
    if (!strcmp(cmd, "info")) return cmd_info(argc - 2, argv + 2);
    if (!strcmp(cmd, "train")) return cmd_train(argc - 2, argv + 2);
    die_usage("unknown command '%s'", cmd);
    return EXIT_USAGE;
}
