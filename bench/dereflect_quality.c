/* dereflect_quality.c — the reflection-removal quality table on held-out
 * synthetic pairs.
 *
 * Pair i of the test split (train/dereflect_task.h: T a view of held-out
 * photo i, R of the next one, mixed by a synthesis model drawn from the
 * seed and T's name, exactly as training draws its pairs) is given to every
 * METHOD through the public lumos_dereflect_image; each output is scored
 * against T (bench/quality.h), next to the mixture itself ("input"). The
 * training never sees these photos. Prints a Markdown table. Exit: 0 ok,
 * 1 failure, 2 usage. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/quality.h"
#include "lumos.h"
#include "train/data.h"
#include "train/dereflect_task.h"

enum { MAX_METHODS = 8, MAX_SOURCES = 16, PREVIEW_ROWS = 4, PREVIEW_GAP = 2, BORDER = 4 };

static const char usage_text[] =
    "usage: dereflect_quality --data LIST [--data LIST...] [--size S] [--limit N] [--seed K]\n"
    "                         [--csv FILE] [--preview FILE] [METHOD...]\n"
    "\n"
    "Scores reflection removal on held-out synthetic pairs of LIST's test split\n"
    "(the pairs training would make of photos it never sees): PSNR and SSIM of\n"
    "each METHOD's output against the transmission, next to the input itself.\n"
    "\n"
    "  METHOD         classic (the default), or NAME=NET:WEIGHTS (NET uhd; WEIGHTS\n"
    "                 '-' for the shipped default)\n"
    "  --data LIST    a list file, directory or photo (lumos train's --data)\n"
    "  --size S       side of the pairs, 64..4096 (default 512)\n"
    "  --limit N      at most N pairs (default: all)\n"
    "  --seed K       seeds each pair's view and synthesis (default 1)\n"
    "  --csv FILE     per-pair scores\n"
    "  --preview FILE the first 4 pairs, PNG: input, each METHOD, target\n";

static void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dereflect_quality: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage_text);
    exit(2);
}

typedef struct method {
    char label[64];
    lumos_dereflect_options opt;
    lumos_net *net;
    double psnr, ssim;
    int n;
} method;

/* in (size² × 3 floats) as a float image, through the method, back to floats. */
static int run_method(lumos_ctx *ctx, const method *m, const float *in, int size, float *out)
{
    lumos_image img = {0}, res = {0};
    int rc = lumos_image_alloc(&img, size, size, 3, 32);
    if (rc) return rc;
    for (int y = 0; y < size; y++)
        memcpy((char *)img.data + (size_t)y * img.stride, in + (size_t)y * size * 3,
               (size_t)size * 3 * sizeof(float));
    rc = lumos_dereflect_image(ctx, &img, &m->opt, &res);
    for (int y = 0; rc == LUMOS_OK && y < size; y++)
        memcpy(out + (size_t)y * size * 3, (const char *)res.data + (size_t)y * res.stride,
               (size_t)size * 3 * sizeof(float));
    lumos_image_free(&img);
    lumos_image_free(&res);
    return rc;
}

static void panel(lumos_image *grid, int x0, int y0, const float *src, int size)
{
    for (int y = 0; y < size; y++) {
        unsigned char *o = (unsigned char *)grid->data + (size_t)(y0 + y) * grid->stride + (size_t)x0 * 3;
        for (int i = 0; i < 3 * size; i++)
            o[i] = (unsigned char)lrintf(255.f * fminf(fmaxf(src[(size_t)y * size * 3 + i], 0.f), 1.f));
    }
}

int main(int argc, char **argv)
{
    const char *sources[MAX_SOURCES], *csv_path = NULL, *preview_path = NULL;
    int n_sources = 0, size = 512, limit = 0;
    unsigned long long seed = 1;
    method methods[MAX_METHODS];
    int n_methods = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(a, "--data") && i + 1 < argc) {
            if (n_sources == MAX_SOURCES) die_usage("too many --data");
            sources[n_sources++] = argv[++i];
        } else if (!strcmp(a, "--size") && i + 1 < argc) {
            size = atoi(argv[++i]);
            if (size < 64 || size > 4096) die_usage("--size: 64..4096");
        } else if (!strcmp(a, "--limit") && i + 1 < argc) {
            limit = atoi(argv[++i]);
        } else if (!strcmp(a, "--seed") && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(a, "--csv") && i + 1 < argc) {
            csv_path = argv[++i];
        } else if (!strcmp(a, "--preview") && i + 1 < argc) {
            preview_path = argv[++i];
        } else if (a[0] == '-') {
            die_usage("unknown option '%s'", a);
        } else {
            if (n_methods == MAX_METHODS) die_usage("too many methods");
            method *m = &methods[n_methods++];
            memset(m, 0, sizeof *m);
            lumos_dereflect_options_init(&m->opt);
            m->opt.bits = 32;
            const char *eq = strchr(a, '='), *colon = eq ? strchr(eq, ':') : NULL;
            if (!strcmp(a, "classic")) {
                snprintf(m->label, sizeof m->label, "classic");
                m->opt.net_name = "classic";
            } else if (eq && colon) {
                snprintf(m->label, sizeof m->label, "%.*s", (int)(eq - a), a);
                static char nets[MAX_METHODS][32];
                snprintf(nets[n_methods - 1], sizeof nets[0], "%.*s", (int)(colon - eq - 1), eq + 1);
                m->opt.net_name = nets[n_methods - 1];
                m->opt.weights = strcmp(colon + 1, "-") ? colon + 1 : NULL;
            } else {
                die_usage("method '%s': classic or NAME=NET:WEIGHTS", a);
            }
        }
    }
    if (!n_sources) die_usage("--data is required");
    if (!n_methods) {
        memset(&methods[0], 0, sizeof methods[0]);
        lumos_dereflect_options_init(&methods[0].opt);
        methods[0].opt.bits = 32;
        methods[0].opt.net_name = "classic";
        snprintf(methods[0].label, sizeof methods[0].label, "classic");
        n_methods = 1;
    }
    lumos_ctx *ctx = lumos_ctx_new();
    lumos__dataset *ds = NULL;
    int rc = lumos__dataset_open(ctx, sources, n_sources, &ds);
    for (int k = 0; rc == LUMOS_OK && k < n_methods; k++)
        if (strcmp(methods[k].opt.net_name, "classic")) {
            rc = lumos_net_load(ctx, methods[k].opt.net_name, methods[k].opt.weights, &methods[k].net);
            methods[k].opt.net = methods[k].net;
        }
    if (rc) {
        fprintf(stderr, "dereflect_quality: %s\n", lumos_last_error(ctx));
        return 1;
    }
    FILE *csv = csv_path ? fopen(csv_path, "w") : NULL;
    if (csv_path && !csv) {
        perror(csv_path);
        return 1;
    }
    if (csv) fprintf(csv, "pair,photo,method,psnr,ssim\n");
    const size_t n_test = lumos__dataset_count(ds, LUMOS__SPLIT_TEST), px = (size_t)size * size * 3;
    float *in = malloc(px * sizeof *in), *target = malloc(px * sizeof *target);
    /* the preview's rows (input, each method, target), and one output beyond them */
    float *out = malloc((size_t)(n_methods + 2) * PREVIEW_ROWS * px * sizeof *out);
    float *scratch = malloc(px * sizeof *scratch);
    double in_psnr = 0, in_ssim = 0;
    int scored = 0, skipped = 0;
    for (size_t i = 0; i < n_test && (!limit || scored < limit); i++) {
        if (lumos__dereflect_heldout_make(ctx, ds, i, size, seed, in, target)) {
            fprintf(stderr, "dereflect_quality: skipped pair %zu: %s\n", i, lumos_last_error(ctx));
            skipped++;
            continue;
        }
        const char *photo = lumos__dataset_name(ds, LUMOS__SPLIT_TEST, i);
        const int keep = scored < PREVIEW_ROWS;
        float *row = keep ? out + (size_t)scored * (n_methods + 2) * px : NULL;
        double p = quality_psnr(in, target, size, size, BORDER), s = quality_ssim(in, target, size, size, BORDER);
        in_psnr += p, in_ssim += s;
        if (csv) fprintf(csv, "%d,%s,input,%.4f,%.5f\n", scored, photo, p, s);
        if (keep) memcpy(row, in, px * sizeof *in), memcpy(row + (n_methods + 1) * px, target, px * sizeof *in);
        for (int k = 0; k < n_methods; k++) {
            float *res = keep ? row + (k + 1) * px : scratch;
            if (run_method(ctx, &methods[k], in, size, res)) {
                fprintf(stderr, "dereflect_quality: %s: %s\n", methods[k].label, lumos_last_error(ctx));
                return 1;
            }
            p = quality_psnr(res, target, size, size, BORDER);
            s = quality_ssim(res, target, size, size, BORDER);
            methods[k].psnr += p, methods[k].ssim += s, methods[k].n++;
            if (csv) fprintf(csv, "%d,%s,%s,%.4f,%.5f\n", scored, photo, methods[k].label, p, s);
        }
        scored++;
        fprintf(stderr, "\r%d pairs scored", scored);
    }
    fprintf(stderr, "\n");
    if (!scored) {
        fprintf(stderr, "dereflect_quality: no held-out pair could be made (%zu test photos)\n", n_test);
        return 1;
    }
    printf("%d held-out pairs of %dx%d (seed %llu; %d skipped)\n\n", scored, size, size, seed, skipped);
    printf("| method | PSNR (dB) | SSIM | PSNR gain over the input (dB) |\n|---|---|---|---|\n");
    printf("| input (the mixture) | %.2f | %.4f | 0 |\n", in_psnr / scored, in_ssim / scored);
    for (int k = 0; k < n_methods; k++)
        printf("| %s | %.2f | %.4f | %+.2f |\n", methods[k].label, methods[k].psnr / scored,
               methods[k].ssim / scored, (methods[k].psnr - in_psnr) / scored);
    if (preview_path) {
        const int rows = scored < PREVIEW_ROWS ? scored : PREVIEW_ROWS, cols = n_methods + 2;
        lumos_image grid;
        lumos_image_alloc(&grid, cols * size + (cols - 1) * PREVIEW_GAP,
                          rows * size + (rows - 1) * PREVIEW_GAP, 3, 8);
        memset(grid.data, 128, grid.stride * (size_t)grid.height);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                panel(&grid, c * (size + PREVIEW_GAP), r * (size + PREVIEW_GAP),
                      out + ((size_t)r * cols + c) * px, size);
        lumos_write_options wo;
        lumos_write_options_init(&wo);
        wo.overwrite = 1;
        if (lumos_image_write(ctx, &grid, preview_path, &wo))
            fprintf(stderr, "dereflect_quality: %s\n", lumos_last_error(ctx));
        lumos_image_free(&grid);
    }
    if (csv) fclose(csv);
    for (int k = 0; k < n_methods; k++) lumos_net_free(methods[k].net);
    free(in);
    free(target);
    free(out);
    free(scratch);
    lumos__dataset_free(ds);
    lumos_ctx_free(ctx);
    return 0;
}
