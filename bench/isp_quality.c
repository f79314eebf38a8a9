/* isp_quality.c — the quality table of the ISPs on the held-out photos.
 *
 * Every photo of the test split (train/data.h) becomes the held-out sample
 * training would make of it (lumos__train_heldout_make: a centre crop,
 * unprocessed into a noisy mosaic with gains and noise drawn per photo from
 * the seed and its name); the classical render and each network's output
 * are scored against the photo crop (bench/quality.h). Prints a Markdown
 * table; see bench/README.md. Exit: 0 ok, 1 failure, 2 usage. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/quality.h"
#include "lumos.h"
#include "pipeline/learned.h"
#include "train/data.h"
#include "train/trainer.h"

enum { MAX_METHODS = 16, MAX_SOURCES = 64, PREVIEW_ROWS = 4, PREVIEW_GAP = 2, BORDER = 4 };

static const char *prog = "isp_quality";

static const char usage_text[] =
    "usage: isp_quality --data LIST [--data LIST...] [--limit N] [--size S] [--seed K]\n"
    "                   [--all-files] [--csv FILE] [--preview FILE] [METHOD...]\n"
    "\n"
    "Scores ISPs on the held-out (test split) photos of LIST: each photo's centre\n"
    "crop is unprocessed into a noisy mosaic as training does, developed by every\n"
    "METHOD and compared with the crop. Prints a Markdown table.\n"
    "\n"
    "  METHOD              classic (the classical ISP, the default), or\n"
    "                      NAME=NET:WEIGHTS: network NET (efficient, robust,\n"
    "                      rmfa-tiny) with a safetensors file, shown as NAME\n"
    "  --data LIST         a list file, directory or photo (lumos train's --data)\n"
    "  --limit N           stop after N photos scored (default: all)\n"
    "  --size S            side of the centre crop, even, 32..4096 (default 256);\n"
    "                      smaller photos are skipped and counted\n"
    "  --seed K            seeds the unprocessing of each photo (default 1)\n"
    "  --all-files         score every file: by default the sizes and variants of\n"
    "                      one picture (one split key, e.g. a KDE wallpaper's\n"
    "                      images/*.jpg) count once, from the first that fits\n"
    "  --csv FILE          per-photo scores (one row per photo and method)\n"
    "  --preview FILE      grid of the first 4 photos (PNG, or JPEG/TIFF by the\n"
    "                      name): ground truth, then each METHOD, left to right\n"
    "\n"
    "Exit status: 0 ok, 1 failure (a bad weights file, unreadable data, no photo\n"
    "scored), 2 usage.\n";

static void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n%s", usage_text);
    exit(2);
}

static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

static void on_notice(void *user, const char *msg)
{
    (void)user;
    fprintf(stderr, "%s: %s\n", prog, msg);
}

typedef struct method {
    char name[64];
    char net_name[32];     /* "classic" or a learned ISP's name */
    const char *weights;
    lumos_net *net;
    double psnr, ssim, de; /* sums over the photos */
    int n;
    double seconds;        /* rendering time */
} method;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static long parse_long(const char *opt, const char *v, long lo, long hi)
{
    char *end;
    errno = 0;
    long n = v ? strtol(v, &end, 10) : 0;
    if (!v || end == v || *end || errno || n < lo || n > hi)
        die_usage("%s: '%s' is not a number in %ld..%ld", opt, v ? v : "", lo, hi);
    return n;
}

static void parse_method(const char *arg, method *m)
{
    memset(m, 0, sizeof *m);
    if (!strcmp(arg, "classic")) {
        snprintf(m->name, sizeof m->name, "classic");
        snprintf(m->net_name, sizeof m->net_name, "classic");
        return;
    }
    const char *eq = strchr(arg, '='), *colon = eq ? strchr(eq + 1, ':') : NULL;
    if (!eq || !colon || eq == arg || !colon[1])
        die_usage("'%s': a method is classic or NAME=NET:WEIGHTS", arg);
    size_t len = (size_t)(eq - arg);
    if (len >= sizeof m->name) die_usage("'%s': the name is longer than 63 characters", arg);
    for (size_t i = 0; i < len; i++)
        if (arg[i] == ',' || arg[i] == '"' || arg[i] == '|' || (unsigned char)arg[i] <= ' ')
            die_usage("'%s': a name without spaces, commas, quotes or '|'", arg);
    memcpy(m->name, arg, len);
    m->name[len] = 0;
    size_t nl = (size_t)(colon - eq - 1);
    const char *net = eq + 1;
    snprintf(m->net_name, sizeof m->net_name, "%.*s", (int)(nl < sizeof m->net_name ? nl : 0), net);
    int known = 0;
    const char *name;
    for (int i = 0; !known && (name = lumos_net_list("isp", i)); i++) known = !strcmp(name, m->net_name);
    if (!known) die_usage("'%s': NET is a learned ISP (lumos convert --help lists them)", arg);
    m->weights = colon + 1;
}

/* One method's render of sample h into out (size×size×3, [0, 1]). */
static int render(lumos_ctx *ctx, const method *m, const lumos__train_heldout *h, float *out)
{
    const int s = h->size;
    if (!strcmp(m->net_name, "classic")) {
        memcpy(out, h->classic, (size_t)s * s * 3 * sizeof *out);
        return LUMOS_OK;
    }
    /* through the library's own path, which prepares a camera-agnostic
     * network's input (pipeline/agnostic.h) */
    lumos_raw *raw = NULL;
    float *data = NULL;
    size_t row = 0;
    int rc = lumos_raw_from_mosaic(ctx, h->mosaic, s, s, (size_t)s * 2, &h->info, &raw);
    /* the sample's exposure, as the classical render gets it, to a network
     * trained to take it (older weights were trained to guess it) */
    const float ev = lumos_net_takes_exposure(m->net) ? log2f(h->rgb_gain) : 0.f;
    if (rc == LUMOS_OK) rc = lumos__isp_learned_f32(ctx, m->net, raw, ev, &data, &row);
    lumos_raw_free(raw);
    if (rc) return rc;
    for (int y = 0; y < s; y++) {
        const float *src = data + (size_t)y * row;
        float *o = out + (size_t)y * s * 3;
        for (int i = 0; i < 3 * s; i++) o[i] = fminf(fmaxf(src[i], 0.f), 1.f); /* NaN -> 0 */
    }
    free(data);
    return LUMOS_OK;
}

static void panel(lumos_image *img, int x0, int y0, const float *src, int s)
{
    for (int y = 0; y < s; y++) {
        uint8_t *o = (uint8_t *)img->data + (size_t)(y0 + y) * img->stride + (size_t)x0 * 3;
        for (int i = 0; i < 3 * s; i++) {
            float v = src[(size_t)y * s * 3 + i];
            o[i] = (uint8_t)lrintf(255.f * fminf(fmaxf(v, 0.f), 1.f));
        }
    }
}

/* A CSV field: quoted when it holds a comma, quote or line break. */
static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void print_score(double v, const char *fmt)
{
    if (isinf(v)) printf(" %s |", v > 0 ? "inf" : "-inf");
    else if (isnan(v)) printf(" n/a |");
    else {
        printf(" ");
        printf(fmt, v);
        printf(" |");
    }
}

int main(int argc, char **argv)
{
    const char *sources[MAX_SOURCES];
    int n_sources = 0;
    long limit = 0, size = 256;
    uint64_t seed = 1;
    const char *csv_path = NULL, *preview_path = NULL;
    method methods[MAX_METHODS];
    int n_methods = 0, all_files = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(a, "--data")) {
            if (!v) die_usage("--data needs a list file, directory or photo");
            if (n_sources == MAX_SOURCES) die_usage("at most %d --data sources", MAX_SOURCES);
            sources[n_sources++] = v;
            i++;
        } else if (!strcmp(a, "--limit")) {
            limit = parse_long(a, v, 1, 1000000000L);
            i++;
        } else if (!strcmp(a, "--size")) {
            size = parse_long(a, v, 32, 4096);
            if (size % 2) die_usage("--size %ld: must be even (the CFA's 2x2 phase)", size);
            i++;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long k = v ? strtoull(v, &end, 0) : 0;
            if (!v || end == v || *end || errno || v[0] == '-')
                die_usage("--seed: '%s' is not a non-negative integer", v ? v : "");
            seed = (uint64_t)k;
            i++;
        } else if (!strcmp(a, "--all-files")) {
            all_files = 1;
        } else if (!strcmp(a, "--csv")) {
            if (!v) die_usage("--csv needs a file");
            csv_path = v;
            i++;
        } else if (!strcmp(a, "--preview")) {
            if (!v) die_usage("--preview needs a file");
            preview_path = v;
            i++;
        } else if (a[0] == '-') {
            die_usage("unknown option %s", a);
        } else {
            if (n_methods == MAX_METHODS) die_usage("at most %d methods", MAX_METHODS);
            parse_method(a, &methods[n_methods]);
            for (int k = 0; k < n_methods; k++)
                if (!strcmp(methods[k].name, methods[n_methods].name))
                    die_usage("method %s given twice", methods[k].name);
            n_methods++;
        }
    }
    if (!n_sources) die_usage("--data is required");
    if (!n_methods) parse_method("classic", &methods[n_methods++]);

    lumos_ctx *ctx = lumos_ctx_new();
    if (!ctx) return fail("out of memory");
    lumos_ctx_set_notice(ctx, on_notice, NULL);
    int status = 0;
    for (int k = 0; k < n_methods && !status; k++) {
        method *m = &methods[k];
        if (!strcmp(m->net_name, "classic")) continue;
        if (lumos_net_load(ctx, m->net_name, m->weights, &m->net)) {
            const char *why = lumos_last_error(ctx);
            status = strstr(why, m->weights) ? fail("%s: %s", m->name, why)
                                             : fail("%s: %s: %s", m->name, m->weights, why);
        }
    }

    lumos__dataset *ds = NULL;
    if (!status && lumos__dataset_open(ctx, sources, n_sources, &ds))
        status = fail("%s", lumos_last_error(ctx));
    FILE *csv = NULL;
    char csv_tmp[4096];
    if (!status && csv_path) {
        snprintf(csv_tmp, sizeof csv_tmp, "%s.tmp", csv_path);
        if (!(csv = fopen(csv_tmp, "w")))
            status = fail("%s: cannot write: %s", csv_tmp, strerror(errno));
        else
            fprintf(csv, "photo,method,psnr_db,ssim,delta_e00,rgb_gain,red_gain,blue_gain,"
                         "shot_noise,read_noise\n");
    }

    const int s = (int)size, cols = 1 + n_methods;
    lumos_image grid = {0};
    if (!status && preview_path &&
        lumos_image_alloc(&grid, cols * s + (cols - 1) * PREVIEW_GAP,
                          PREVIEW_ROWS * s + (PREVIEW_ROWS - 1) * PREVIEW_GAP, 3, 8))
        status = fail("%s: out of memory", preview_path);
    if (grid.data) memset(grid.data, 128, grid.stride * (size_t)grid.height);
    float *out = status ? NULL : malloc((size_t)s * s * 3 * sizeof *out);
    if (!status && !out) status = fail("out of memory");

    size_t n_test = ds ? lumos__dataset_count(ds, LUMOS__SPLIT_TEST) : 0;
    size_t used = 0, small = 0, unreadable = 0, raws = 0, dups = 0, seen = 0;
    /* The split keys scored: the sizes and variants of one wallpaper are one
     * picture (lumos__split_key), scored once, from its first file that fits. */
    char **keys = status ? NULL : calloc(n_test ? n_test : 1, sizeof *keys);
    if (!status && !keys) status = fail("out of memory");
    double load_s = 0, sample_s = 0, score_s = 0, start = now_s();
    for (size_t i = 0; !status && i < n_test && (!limit || used < (size_t)limit); i++) {
        seen++;
        char key[1024];
        lumos__split_key(lumos__dataset_name(ds, LUMOS__SPLIT_TEST, i), key, sizeof key);
        int dup = 0;
        for (size_t k = 0; k < used && !dup && !all_files; k++) dup = !strcmp(keys[k], key);
        if (dup) {
            dups++;
            continue;
        }
        if (lumos__item_kind_of(lumos__dataset_name(ds, LUMOS__SPLIT_TEST, i)) == LUMOS__ITEM_RAW) {
            raws++; /* no ground truth: not even decoded */
            continue;
        }
        lumos__item it;
        double t0 = now_s();
        int rc = lumos__dataset_load(ctx, ds, LUMOS__SPLIT_TEST, i, &it);
        load_s += now_s() - t0;
        if (rc) {
            fprintf(stderr, "%s: skipped %s\n", prog, lumos_last_error(ctx));
            unreadable++;
            continue;
        }
        if (it.kind != LUMOS__ITEM_PHOTO) {
            raws++;
            lumos__item_free(&it);
            continue;
        }
        if (it.photo.width < s || it.photo.height < s) {
            small++;
            lumos__item_free(&it);
            continue;
        }
        lumos__train_heldout h;
        t0 = now_s();
        rc = lumos__train_heldout_make(ctx, &it, s, seed, &h);
        sample_s += now_s() - t0;
        lumos__item_free(&it);
        if (rc) {
            status = fail("%s", lumos_last_error(ctx));
            break;
        }
        const char *path = lumos__dataset_name(ds, LUMOS__SPLIT_TEST, i);
        if (grid.data && used < PREVIEW_ROWS)
            panel(&grid, 0, (int)used * (s + PREVIEW_GAP), h.truth, s);
        for (int k = 0; k < n_methods && !status; k++) {
            method *m = &methods[k];
            t0 = now_s();
            if (render(ctx, m, &h, out)) {
                status = fail("%s on %s: %s", m->name, path, lumos_last_error(ctx));
                break;
            }
            m->seconds += now_s() - t0;
            t0 = now_s();
            double p = quality_psnr(out, h.truth, s, s, BORDER);
            double q = quality_ssim(out, h.truth, s, s, BORDER);
            double e = quality_delta_e(out, h.truth, s, s, BORDER);
            m->psnr += p;
            m->ssim += q;
            m->de += e;
            m->n++;
            score_s += now_s() - t0;
            if (csv) {
                csv_field(csv, path);
                fputc(',', csv);
                csv_field(csv, m->name);
                fprintf(csv, ",%.6f,%.6f,%.6f,%.6g,%.6g,%.6g,%.6g,%.6g\n", p, q, e, h.rgb_gain,
                        h.red_gain, h.blue_gain, h.shot_noise, h.read_noise);
            }
            if (grid.data && used < PREVIEW_ROWS)
                panel(&grid, (k + 1) * (s + PREVIEW_GAP), (int)used * (s + PREVIEW_GAP), out, s);
        }
        lumos__train_heldout_free(&h);
        if (!(keys[used++] = strdup(key))) status = fail("out of memory");
    }
    const double total_s = now_s() - start;
    if (!status && !used)
        status = fail("no held-out photo of at least %dx%d in the test split of the data "
                      "(%zu test files: %zu smaller, %zu unreadable, %zu RAW)",
                      s, s, n_test, small, unreadable, raws);

    if (csv) {
        int bad = ferror(csv);
        bad |= fclose(csv) != 0;
        if (!status && bad) status = fail("%s: cannot write: %s", csv_tmp, strerror(errno));
        if (!status && rename(csv_tmp, csv_path))
            status = fail("%s: cannot write: %s", csv_path, strerror(errno));
        if (status) remove(csv_tmp);
    }
    if (!status && grid.data) {
        int rows = used < PREVIEW_ROWS ? (int)used : PREVIEW_ROWS;
        grid.height = rows * s + (rows - 1) * PREVIEW_GAP; /* the unused rows left out */
        lumos_write_options wo;
        lumos_write_options_init(&wo);
        /* by the name (a .jpg is smaller to ship), PNG when it says nothing */
        wo.format = lumos_format_from_path(preview_path) ? LUMOS_FORMAT_AUTO : LUMOS_FORMAT_PNG;
        wo.overwrite = 1;
        if (lumos_image_write(ctx, &grid, preview_path, &wo))
            status = fail("%s", lumos_last_error(ctx));
    }

    if (!status) {
        printf("Held-out photos: %zu scored of %zu in the test split", used, n_test);
        if (small || unreadable || raws || dups || seen < n_test) {
            const char *sep = " (";
            if (small) printf("%s%zu smaller than %dx%d", sep, small, s, s), sep = ", ";
            if (unreadable) printf("%s%zu unreadable", sep, unreadable), sep = ", ";
            if (raws) printf("%s%zu RAW, no ground truth", sep, raws), sep = ", ";
            if (dups) printf("%s%zu more file%s of a picture already scored", sep, dups,
                             dups == 1 ? "" : "s"), sep = ", ";
            if (seen < n_test) printf("%s%zu not reached (--limit)", sep, n_test - seen);
            printf(")");
        }
        printf("; centre crop %dx%d, seed %" PRIu64 ", unprocessed with training's gains and "
               "noise.\n\n", s, s, seed);
        printf("| method | PSNR (dB) | SSIM | ΔE00 | photos |\n|---|---:|---:|---:|---:|\n");
        for (int k = 0; k < n_methods; k++) {
            const method *m = &methods[k];
            printf("| %s |", m->name);
            print_score(m->psnr / m->n, "%.2f");
            print_score(m->ssim / m->n, "%.4f");
            print_score(m->de / m->n, "%.2f");
            printf(" %d |\n", m->n);
        }
        printf("\nMeans over the photos, against the photo crop, %d-pixel border left out: "
               "PSNR over R, G, B (peak 1); SSIM on luma (Gaussian 11x11, sigma 1.5); "
               "CIEDE2000 (sRGB D65 -> Lab).\n", BORDER);
        printf("Time: %.2f s in all; per photo %.0f ms to load it, %.0f ms to make the sample "
               "(unprocess + classical render), %.0f ms to score", total_s,
               1e3 * load_s / (double)used, 1e3 * sample_s / (double)used,
               1e3 * score_s / (double)used);
        for (int k = 0; k < n_methods; k++)
            if (strcmp(methods[k].net_name, "classic"))
                printf(", %.0f ms %s", 1e3 * methods[k].seconds / (double)used, methods[k].name);
        printf(".\n");
    }

    for (size_t k = 0; keys && k < used; k++) free(keys[k]);
    free(keys);
    free(out);
    lumos_image_free(&grid);
    lumos__dataset_free(ds);
    for (int k = 0; k < n_methods; k++) lumos_net_free(methods[k].net);
    lumos_ctx_free(ctx);
    return status;
}
