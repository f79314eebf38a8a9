/* test_isp_quality — bench/isp_quality and its scores (bench/quality.h).
 *
 *   test_isp_quality ISP_QUALITY PHOTO_DIR
 *
 * - the scores: PSNR of identical images is +inf, of a known difference its
 *   dB, of a one-pixel shift finite and lower than of a faint change; SSIM
 *   1 for identical images and lower for the shift; CIEDE2000 against
 *   Sharma, Wu and Dalal's test pairs, Lab of white and black;
 * - the held-out sample (lumos__train_heldout_make): deterministic per
 *   (seed, photo name), another seed another noise, the crop the photo's
 *   centre; RAW items, odd sizes and photos smaller than the crop refused;
 * - the program on two skimage photos, named so that they fall in the test
 *   split (plus a photo of the train split, a small test photo and a second
 *   file of one of the two pictures, which do not count), with `classic`
 *   and a random-init EfficientISP written by
 *   lumos__train_write_weights: exit 0, a table row per method over 2
 *   photos, every per-photo number finite, the classical render far above
 *   the random net, the same CSV twice, the preview's grid size; --limit
 *   and --all-files;
 * - exit 2 for bad usage, 1 for a bad weights file (named) and for data
 *   without a held-out photo.
 * Without the photos the test exits 77 (skipped). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/quality.h"
#include "check.h"
#include "test_nets.h"
#include "lumos.h"
#include "pipeline/learned.h"
#include "stages/learned_isp.h"
#include "train/data.h"
#include "train/trainer.h"
#include "train/unprocess.h"

static char tmp[] = "/tmp/lumos_isp_quality_XXXXXX";
static const char *exe;

static const char *tmp_path(const char *name)
{
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", tmp, name);
    return p;
}

/* ------------------------------------------------------------ scores */

static void test_scores(void)
{
    enum { W = 48, H = 40 };
    static float a[W * H * 3], b[W * H * 3];
    uint64_t r = 3;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) /* a smooth picture plus some texture */
                a[(y * W + x) * 3 + c] = (float)(0.5 + 0.3 * sin(0.3 * x + c) * cos(0.2 * y) +
                                                 0.1 * (lumos__rng_uniform(&r) - 0.5));
    CHECK(isinf(quality_psnr(a, a, W, H, 4)) && quality_psnr(a, a, W, H, 4) > 0,
          "PSNR of identical images %g", quality_psnr(a, a, W, H, 4));
    CHECK(fabs(quality_ssim(a, a, W, H, 4) - 1) < 1e-9, "SSIM of identical images %.12f",
          quality_ssim(a, a, W, H, 4));
    CHECK(quality_delta_e(a, a, W, H, 0) == 0, "dE of identical images %g",
          quality_delta_e(a, a, W, H, 0));

    /* A uniform 0.1 offset: MSE 0.01, 20 dB. */
    for (int i = 0; i < W * H * 3; i++) b[i] = a[i] * 0.5f;
    float c[W * H * 3];
    for (int i = 0; i < W * H * 3; i++) c[i] = b[i] + 0.1f;
    CHECK(fabs(quality_psnr(b, c, W, H, 0) - 20) < 1e-4, "PSNR of a 0.1 offset %g (20 dB)",
          quality_psnr(b, c, W, H, 0));

    /* A faint change against a one-pixel shift (a broken render). */
    for (int i = 0; i < W * H * 3; i++) b[i] = a[i] + 0.004f * (float)((i % 7) - 3) / 3;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int k = 0; k < 3; k++)
                c[(y * W + x) * 3 + k] = a[(y * W + (x ? x - 1 : 0)) * 3 + k];
    double pf = quality_psnr(a, b, W, H, 4), ps = quality_psnr(a, c, W, H, 4);
    double sf = quality_ssim(a, b, W, H, 4), ss = quality_ssim(a, c, W, H, 4);
    double ef = quality_delta_e(a, b, W, H, 4), es = quality_delta_e(a, c, W, H, 4);
    CHECK(isfinite(ps) && ps < pf && pf > 45 && ps < 30, "PSNR faint %g, shifted %g", pf, ps);
    CHECK(ss < sf && sf > 0.99 && ss < 0.95 && ss > 0, "SSIM faint %g, shifted %g", sf, ss);
    CHECK(es > ef && ef > 0, "dE faint %g, shifted %g", ef, es);
    CHECK(isnan(quality_ssim(a, a, 20, 20, 5)), "SSIM of a 10x10 region is not NAN");

    /* Sharma, Wu and Dalal (2005), table 1: pairs 1, 2, 7, 17, 18, 19, 25,
     * 13 (hue wrap) and 34 (near black). */
    static const double pairs[][7] = {
        {50, 2.6772, -79.7751, 50, 0, -82.7485, 2.0425},
        {50, 3.1571, -77.2803, 50, 0, -82.7485, 2.8615},
        {50, 0, 0, 50, -1, 2, 2.3669},
        {50, 2.5, 0, 73, 25, -18, 27.1492},
        {50, 2.5, 0, 61, -5, 29, 22.8977},
        {50, 2.5, 0, 56, -27, -3, 31.9030},
        {60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644},
        {50, 2.49, -0.001, 50, -2.49, 0.0011, 7.2195},
        {2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        double d1 = quality_ciede2000(pairs[i], pairs[i] + 3);
        double d2 = quality_ciede2000(pairs[i] + 3, pairs[i]);
        CHECK(fabs(d1 - pairs[i][6]) < 1e-4 && fabs(d2 - pairs[i][6]) < 1e-4,
              "CIEDE2000 pair %zu: %.5f / %.5f, expected %.4f", i, d1, d2, pairs[i][6]);
    }
    const float white[3] = {1, 1, 1}, black[3] = {0, 0, 0}, red[3] = {1, 0, 0};
    double lab[3];
    quality_srgb_to_lab(white, lab);
    CHECK(fabs(lab[0] - 100) < 1e-3 && fabs(lab[1]) < 1e-2 && fabs(lab[2]) < 1e-2,
          "Lab of white %g %g %g", lab[0], lab[1], lab[2]);
    quality_srgb_to_lab(black, lab);
    CHECK(fabs(lab[0]) < 1e-9 && fabs(lab[1]) < 1e-9 && fabs(lab[2]) < 1e-9,
          "Lab of black %g %g %g", lab[0], lab[1], lab[2]);
    quality_srgb_to_lab(red, lab); /* the usual sRGB red: 53.24, 80.09, 67.20 */
    CHECK(fabs(lab[0] - 53.24) < 0.02 && fabs(lab[1] - 80.09) < 0.05 && fabs(lab[2] - 67.20) < 0.05,
          "Lab of red %g %g %g", lab[0], lab[1], lab[2]);
}

/* ------------------------------------------------- the held-out sample */

/* What training feeds the network (h's levels, the exposure in scale) is
 * what lumos_isp_learned feeds it at the sample's exposure: one output. */
static void same_input_as_inference(lumos_ctx *ctx, const lumos__train_heldout *h)
{
    const lumos__net_def *kind = net_named("efficient");
    const size_t n = lumos__net_weight_count(kind);
    float *flat = malloc(n * sizeof *flat);
    uint64_t rng = 9;
    lumos_net *net = NULL;
    lumos_raw *raw = NULL;
    float *trained = NULL, *inferred = NULL;
    size_t row_t = 0, row_i = 0;
    int rc = flat ? lumos__train_init_weights(ctx, kind, &rng, flat) : LUMOS_E_NOMEM;
    if (rc == LUMOS_OK) rc = lumos__net_from_flat(ctx, kind, flat, n, &net);
    if (rc == LUMOS_OK) {
        lumos__net_set_exposed(net, 1);
        rc = lumos__stage_learned(ctx, kind, flat, h->mosaic, h->size, h->size,
                                  (size_t)h->size * 2, h->cfa_x, h->cfa_y, h->black, h->scale, 32,
                                  (void **)&trained, &row_t);
    }
    if (rc == LUMOS_OK)
        rc = lumos_raw_from_mosaic(ctx, h->mosaic, h->size, h->size, (size_t)h->size * 2, &h->info,
                                   &raw);
    if (rc == LUMOS_OK) rc = lumos__isp_learned_f32(ctx, net, raw, log2f(h->rgb_gain), &inferred, &row_i);
    CHECK(rc == LUMOS_OK, "training vs inference input: %s", lumos_last_error(ctx));
    double worst = 0;
    for (int y = 0; rc == LUMOS_OK && y < h->size; y++)
        for (int x = 0; x < 3 * h->size; x++)
            worst = fmax(worst, fabs(trained[y * row_t / 4 + x] - inferred[y * row_i + x]));
    CHECK(worst <= 1e-6, "training's network input differs from inference's at the sample's "
                         "exposure (rgb gain %g): %.3g", h->rgb_gain, worst);
    free(trained);
    free(inferred);
    lumos_raw_free(raw);
    lumos_net_free(net);
    free(flat);
}

static void test_heldout(lumos_ctx *ctx, const char *photo)
{
    lumos__item it = {.kind = LUMOS__ITEM_PHOTO, .path = photo};
    if (lumos_image_read(ctx, photo, &it.photo)) {
        CHECK(0, "%s: %s", photo, lumos_last_error(ctx));
        return;
    }
    lumos__train_heldout h1, h2, h3;
    int rc1 = lumos__train_heldout_make(ctx, &it, 64, 5, &h1);
    int rc2 = lumos__train_heldout_make(ctx, &it, 64, 5, &h2);
    int rc3 = lumos__train_heldout_make(ctx, &it, 64, 6, &h3);
    CHECK(!rc1 && !rc2 && !rc3, "heldout: %s", lumos_last_error(ctx));
    if (!rc1 && !rc2 && !rc3) {
        const size_t px = 64 * 64;
        CHECK(!memcmp(h1.mosaic, h2.mosaic, px * 2) &&
                  !memcmp(h1.classic, h2.classic, px * 12) && h1.shot_noise == h2.shot_noise,
              "one seed, two samples");
        CHECK(memcmp(h1.mosaic, h3.mosaic, px * 2) && h1.shot_noise != h3.shot_noise,
              "seeds 5 and 6 give the same sample");
        CHECK(h1.shot_noise > 0 && h1.read_noise > 0 && h1.rgb_gain > 0,
              "no noise drawn: shot %g read %g", h1.shot_noise, h1.read_noise);
        /* The truth: the photo's centre (even offsets). */
        const int x0 = (it.photo.width - 64) / 2 & ~1, y0 = (it.photo.height - 64) / 2 & ~1;
        const uint8_t *row = (const uint8_t *)it.photo.data + (size_t)(y0 + 10) * it.photo.stride;
        CHECK(it.photo.bits == 8 && fabsf(h1.truth[(10 * 64 + 20) * 3 + 1] -
                                          row[(x0 + 20) * 3 + 1] / 255.f) < 1e-6,
              "the truth is not the centre crop");
        double p = quality_psnr(h1.classic, h1.truth, 64, 64, 4);
        CHECK(p > 20 && isfinite(p), "classical render vs truth: %g dB", p);
        same_input_as_inference(ctx, &h1);
    }
    lumos__train_heldout_free(&h1);
    lumos__train_heldout_free(&h2);
    lumos__train_heldout_free(&h3);
    lumos__train_heldout h;
    CHECK(lumos__train_heldout_make(ctx, &it, 63, 1, &h) == LUMOS_E_ARG, "odd size taken");
    CHECK(lumos__train_heldout_make(ctx, &it, 4096, 1, &h) == LUMOS_E_ARG &&
              strstr(lumos_last_error(ctx), "smaller"),
          "a crop larger than the photo: %s", lumos_last_error(ctx));
    lumos__item raw = {.kind = LUMOS__ITEM_RAW, .path = "x.dng"};
    CHECK(lumos__train_heldout_make(ctx, &raw, 64, 1, &h) == LUMOS_E_ARG, "a RAW item taken");
    lumos_image_free(&it.photo);
}

/* ------------------------------------------------------ the program */

/* Runs the program with `args` (a shell word list); stdout and stderr in
 * tmp/out.txt and tmp/err.txt. Its exit status, or -1. */
static int run(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s'", exe, args, tmp_path("out.txt"),
             tmp_path("err.txt"));
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path)
{
    size_t n;
    uint8_t *b = read_all(path, &n);
    if (!b) return NULL;
    char *s = realloc(b, n + 1);
    s[n] = 0;
    return s;
}

/* A symlink tmp/STEM-K.png to photo, K the first that falls in `split`. */
static void link_in_split(const char *photo, const char *stem, lumos__split split, char *out,
                          size_t n)
{
    for (int k = 0; k < 1000; k++) {
        snprintf(out, n, "%s/%s-%d.png", tmp, stem, k);
        if (lumos__split_of(out) == split) break;
    }
    CHECK(symlink(photo, out) == 0, "symlink %s", out);
}

static void test_program(lumos_ctx *ctx, const char *dir)
{
    char photo[512], p1[600], p2[600], p3[600], p4[600];
    /* Two held-out colour photos, a training one, a held-out 64x64. */
    snprintf(photo, sizeof photo, "%s/astronaut.png", dir);
    link_in_split(photo, "astronaut", LUMOS__SPLIT_TEST, p1, sizeof p1);
    snprintf(photo, sizeof photo, "%s/coffee.png", dir);
    link_in_split(photo, "coffee", LUMOS__SPLIT_TEST, p2, sizeof p2);
    snprintf(photo, sizeof photo, "%s/chelsea.png", dir);
    link_in_split(photo, "chelsea", LUMOS__SPLIT_TRAIN, p3, sizeof p3);
    lumos_image small;
    lumos_image_alloc(&small, 64, 64, 3, 8);
    memset(small.data, 90, small.stride * 64);
    for (int k = 0; k < 1000; k++) {
        snprintf(p4, sizeof p4, "%s/small-%d.png", tmp, k);
        if (lumos__split_of(p4) == LUMOS__SPLIT_TEST) break;
    }
    lumos_write_options wo;
    lumos_write_options_init(&wo);
    CHECK(lumos_image_write(ctx, &small, p4, &wo) == 0, "%s", lumos_last_error(ctx));
    lumos_image_free(&small);
    /* Another file of the first picture (the same split key): not scored again. */
    char p5[700];
    snprintf(p5, sizeof p5, "%s/copy", tmp);
    mkdir(p5, 0700);
    snprintf(p5, sizeof p5, "%s/copy/%s", tmp, strrchr(p1, '/') + 1);
    CHECK(symlink(p1, p5) == 0, "symlink %s", p5);
    FILE *f = fopen(tmp_path("photos.txt"), "w");
    fprintf(f, "# held-out: %s %s %s %s; training: %s\n%s\n%s\n%s\n%s\n%s\n", p1, p5, p2, p4, p3,
            p1, p2, p3, p4, p5);
    fclose(f);

    size_t n = lumos__net_weight_count(net_named("efficient"));
    float *w = malloc(n * sizeof *w);
    uint64_t rng = 11;
    CHECK(lumos__train_init_weights(ctx, net_named("efficient"), &rng, w) == 0 &&
              lumos__train_write_weights(ctx, net_named("efficient"), LUMOS_INPUT_SENSOR, w, 0, tmp_path("rand.st")) == 0,
          "weights: %s", lumos_last_error(ctx));
    free(w);

    char args[2048];
    snprintf(args, sizeof args,
             "--data '%s' --csv '%s' --preview '%s' classic rand=efficient:'%s'",
             tmp_path("photos.txt"), tmp_path("a.csv"), tmp_path("grid.png"), tmp_path("rand.st"));
    int rc = run(args);
    char *out = slurp(tmp_path("out.txt")), *err = slurp(tmp_path("err.txt"));
    CHECK(rc == 0, "exit %d: %s", rc, err ? err : "");
    CHECK(out && strstr(out, "| method | PSNR (dB) | SSIM | ΔE00 | photos |"), "no table: %s",
          out ? out : "");
    CHECK(out && strstr(out, "2 scored of 4 in the test split (1 smaller than 256x256, "
                             "1 more file of a picture "
                             "already scored)"),
          "the counts: %s", out ? out : "");
    const char *row = out ? strstr(out, "| classic |") : NULL;
    double tp = 0, ts = 0, te = 0;
    int tn = 0;
    CHECK(row && sscanf(row, "| classic | %lf | %lf | %lf | %d |", &tp, &ts, &te, &tn) == 4 &&
              tn == 2 && isfinite(tp) && tp > 20,
          "classic row: %.60s", row ? row : "(none)");
    row = out ? strstr(out, "| rand |") : NULL;
    CHECK(row && sscanf(row, "| rand | %lf | %lf | %lf | %d |", &tp, &ts, &te, &tn) == 4 &&
              tn == 2,
          "rand row: %.60s", row ? row : "(none)");

    /* The CSV: 2 photos x 2 methods, finite, classic far above the random net. */
    char *csv = slurp(tmp_path("a.csv"));
    int rows = 0;
    double classic_psnr[2] = {0}, rand_psnr[2] = {0};
    for (char *line = csv ? strchr(csv, '\n') : NULL; line && line[1];
         line = strchr(line + 1, '\n')) {
        char path[600], name[64];
        double p, s, e, g, rg, bg, sn, rn;
        int got = sscanf(line + 1, "%599[^,],%63[^,],%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf", path, name,
                         &p, &s, &e, &g, &rg, &bg, &sn, &rn);
        CHECK(got == 10, "CSV row: %.80s", line + 1);
        if (got != 10) break;
        CHECK(isfinite(p) && isfinite(s) && isfinite(e) && s > -1 && s <= 1 && e >= 0 && sn > 0,
              "CSV row not finite/in range: %.120s", line + 1);
        CHECK(!strcmp(path, p1) || !strcmp(path, p2), "CSV photo %s is not held out", path);
        int k = !strcmp(path, p2);
        if (!strcmp(name, "classic")) classic_psnr[k] = p;
        else rand_psnr[k] = p;
        rows++;
    }
    CHECK(rows == 4, "%d CSV rows, expected 4", rows);
    for (int k = 0; k < 2; k++)
        CHECK(classic_psnr[k] > 20 && classic_psnr[k] > rand_psnr[k] + 5,
              "photo %d: classic %g dB, random net %g dB", k, classic_psnr[k], rand_psnr[k]);

    lumos_image grid;
    CHECK(lumos_image_read(ctx, tmp_path("grid.png"), &grid) == 0 && grid.width == 3 * 256 + 4 &&
              grid.height == 2 * 256 + 2,
          "preview %dx%d: %s", grid.width, grid.height, lumos_last_error(ctx));
    lumos_image_free(&grid);

    /* Deterministic: the same CSV again. */
    snprintf(args, sizeof args, "--data '%s' --csv '%s' classic rand=efficient:'%s'",
             tmp_path("photos.txt"), tmp_path("b.csv"), tmp_path("rand.st"));
    CHECK(run(args) == 0, "second run");
    char *csv2 = slurp(tmp_path("b.csv"));
    CHECK(csv && csv2 && !strcmp(csv, csv2), "two runs, two CSVs");
    /* --limit 1 scores one photo. */
    snprintf(args, sizeof args, "--data '%s' --limit 1 --size 128", tmp_path("photos.txt"));
    free(out);
    rc = run(args);
    out = slurp(tmp_path("out.txt"));
    CHECK(rc == 0 && out && strstr(out, "| classic |") && strstr(out, " 1 |\n"),
          "--limit 1: exit %d: %s", rc, out ? out : "");
    /* --all-files scores the second file of the picture too. */
    snprintf(args, sizeof args, "--data '%s' --all-files --size 128", tmp_path("photos.txt"));
    free(out);
    rc = run(args);
    out = slurp(tmp_path("out.txt"));
    CHECK(rc == 0 && out && strstr(out, "3 scored of 4 in the test split (1 smaller than 128x128)"),
          "--all-files: exit %d: %s", rc, out ? out : "");
    free(csv);
    free(csv2);
    free(out);
    free(err);

    /* Usage: exit 2. */
    static const char *const bad_usage[] = {
        "",
        "classic",
        "--data",
        "--data x.txt --size 33",
        "--data x.txt --size 16",
        "--data x.txt --limit 0",
        "--data x.txt --seed -1",
        "--data x.txt --bogus",
        "--data x.txt foo",
        "--data x.txt n=vgg:w.st",
        "--data x.txt =efficient:w.st",
        "--data x.txt n=efficient:",
        "--data x.txt classic classic",
    };
    for (size_t i = 0; i < sizeof bad_usage / sizeof *bad_usage; i++) {
        rc = run(bad_usage[i]);
        err = slurp(tmp_path("err.txt"));
        CHECK(rc == 2 && err && strstr(err, "usage:"), "'%s': exit %d, %s", bad_usage[i], rc,
              err ? err : "");
        free(err);
    }
    CHECK(run("--help") == 0, "--help");

    /* Failures: exit 1, the weights file named. */
    f = fopen(tmp_path("junk.st"), "w");
    fputs("not a safetensors file", f);
    fclose(f);
    char bad_weights[2][600];
    snprintf(bad_weights[0], sizeof bad_weights[0], "%s", tmp_path("missing.st"));
    snprintf(bad_weights[1], sizeof bad_weights[1], "%s", tmp_path("junk.st"));
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof args, "--data '%s' classic n=efficient:'%s'",
                 tmp_path("photos.txt"), bad_weights[i]);
        rc = run(args);
        err = slurp(tmp_path("err.txt"));
        CHECK(rc == 1 && err && strstr(err, bad_weights[i]), "%s: exit %d, %s", bad_weights[i],
              rc, err ? err : "");
        free(err);
    }
    /* The random EfficientISP's file as RobustISP weights: wrong tensors. */
    snprintf(args, sizeof args, "--data '%s' n=robust:'%s'", tmp_path("photos.txt"),
             tmp_path("rand.st"));
    CHECK(run(args) == 1, "EfficientISP weights taken for RobustISP");
    /* Only the training photo: nothing held out. */
    f = fopen(tmp_path("train.txt"), "w");
    fprintf(f, "%s\n", p3);
    fclose(f);
    snprintf(args, sizeof args, "--data '%s'", tmp_path("train.txt"));
    rc = run(args);
    err = slurp(tmp_path("err.txt"));
    CHECK(rc == 1 && err && strstr(err, "no held-out photo"), "no test photo: exit %d, %s", rc,
          err ? err : "");
    free(err);
    snprintf(args, sizeof args, "--data '%s'", tmp_path("missing.txt"));
    CHECK(run(args) == 1, "a missing list");
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_isp_quality ISP_QUALITY PHOTO_DIR\n");
        return 2;
    }
    exe = argv[1];
    const char *dir = argv[2];
    char photo[512];
    static const char *const need[] = {"astronaut.png", "coffee.png", "chelsea.png"};
    for (int i = 0; i < 3; i++) {
        snprintf(photo, sizeof photo, "%s/%s", dir, need[i]);
        if (access(photo, R_OK)) {
            printf("[SKIP] %s not found (install python3-skimage)\n", photo);
            return 77;
        }
    }
    if (!mkdtemp(tmp)) return 1;
    lumos_ctx *ctx = lumos_ctx_new();
    test_scores();
    snprintf(photo, sizeof photo, "%s/astronaut.png", dir);
    test_heldout(ctx, photo);
    test_program(ctx, dir);
    lumos_ctx_free(ctx);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
