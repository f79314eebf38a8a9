/* test_demosaic — demosaic quality on real photos.
 *
 * Each colour photo is sampled as a Bayer mosaic in each of the 4 patterns
 * (camera space = linear sRGB, so an ideal ISP would give the photo back),
 * written as a DNG, opened through LibRaw (lumos_raw_open_file) and run
 * through lumos_isp_classic with neutral options. The colour PSNR against the
 * photo is compared with a plain bilinear demosaic of the same mosaic.
 *
 *   test_demosaic PHOTO_DIR
 *
 * Fails if a pattern is mishandled (PSNRs of one photo disagree), if lumos
 * does not beat bilinear by MIN_MARGIN_DB, or if sizes/levels are wrong.
 * Exits 77 when none of the photos is present. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lumos.h"
#include "tests/tools/dng_writer.h"

/* Thresholds. Measured with the 5 photos × 4 patterns (lumos 0.1.0,
 * LibRaw 0.20.2): lumos 31.7..37.1 dB, bilinear 28.4..34.0 dB, margin
 * +2.33 (rocket) .. +5.96 (motorcycle) dB; spread between patterns <= 0.08 dB
 * (bilinear <= 0.09); half-size 27.9..33.9 dB. (LibRaw's AHD on the same
 * mosaics: +1.3..+4.8 dB over bilinear.) */
#define BORDER 4               /* pixels left out at each edge */
#define MAX_PATTERN_SPREAD 0.5 /* dB between the best and worst pattern of a photo */
#define MIN_MARGIN_DB 2.0      /* lumos minus bilinear, worst photo/pattern */
#define MIN_HALF_PSNR 26.0     /* half-size vs the 2×2 box-averaged photo */

static const char *const photos[] = {"astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg",
                                     "motorcycle_left.png"};
static const char *const cfa_names[] = {"RGGB", "BGGR", "GRBG", "GBRG"};

/* Distinct per-site blacks check that levels are taken site by site. */
static const float black_levels[4] = {512.0f, 520.0f, 516.0f, 524.0f};
static const float white_level = 16383.0f;

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("FAIL: ");                                                                      \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* An RGB image as floats in [0, 1], sRGB-encoded, rows packed. */
typedef struct {
    int w, h;
    float *px;
} fimage;

static int fimage_from(const lumos_image *img, fimage *out)
{
    out->w = img->width;
    out->h = img->height;
    out->px = malloc((size_t)img->width * img->height * 3 * sizeof(float));
    if (!out->px)
        return -1;
    const float peak = img->bits == 8 ? 255.0f : 65535.0f;
    for (int y = 0; y < img->height; y++) {
        const uint8_t *row = (const uint8_t *)img->data + (size_t)y * img->stride;
        float *o = out->px + (size_t)y * img->width * 3;
        for (int i = 0; i < img->width * 3; i++)
            o[i] = (img->bits == 8 ? row[i] : ((const uint16_t *)row)[i]) / peak;
    }
    return 0;
}

/* Colour PSNR over R, G, B of the interior (peak 1). */
static double psnr(const fimage *a, const fimage *b, int border)
{
    double se = 0.0;
    long n = 0;
    for (int y = border; y < a->h - border; y++)
        for (int x = border; x < a->w - border; x++)
            for (int c = 0; c < 3; c++) {
                size_t i = ((size_t)y * a->w + x) * 3 + c;
                double d = (double)a->px[i] - b->px[i];
                se += d * d;
                n++;
            }
    if (n == 0)
        return 0.0;
    if (se == 0.0)
        return 99.0;
    return 10.0 * log10((double)n / se);
}

/* Mirror at the edges without repeating the edge sample, which keeps the
 * parity of the index and so the CFA colour. */
static int reflect(int i, int n)
{
    if (i < 0)
        return -i;
    if (i >= n)
        return 2 * n - 2 - i;
    return i;
}

/* The reference: at each site, each missing colour is the mean of that
 * colour's samples in the 3×3 neighbourhood (for a Bayer mosaic exactly
 * bilinear interpolation), done on linear values, then sRGB-encoded and
 * quantised to 16 bits like the ISP's output. */
static int bilinear(const uint16_t *m, int w, int h, lumos_cfa cfa, fimage *out)
{
    out->w = w;
    out->h = h;
    out->px = malloc((size_t)w * h * 3 * sizeof(float));
    float *lin = malloc((size_t)w * h * sizeof(float));
    if (!out->px || !lin) {
        free(lin);
        return -1;
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float b = black_levels[(y & 1) * 2 + (x & 1)];
            lin[(size_t)y * w + x] = (m[(size_t)y * w + x] - b) / (white_level - b);
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float sum[3] = {0, 0, 0};
            int cnt[3] = {0, 0, 0};
            int here = lumos_test_cfa_color(cfa, x, y);
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int yy = reflect(y + dy, h), xx = reflect(x + dx, w);
                    int c = lumos_test_cfa_color(cfa, xx, yy);
                    if (c == here && (dx || dy))
                        continue;
                    sum[c] += lin[(size_t)yy * w + xx];
                    cnt[c]++;
                }
            for (int c = 0; c < 3; c++) {
                float v = c == here ? lin[(size_t)y * w + x] : sum[c] / cnt[c];
                v = roundf(lumos_test_linear_to_srgb(v) * 65535.0f) / 65535.0f;
                out->px[((size_t)y * w + x) * 3 + c] = v;
            }
        }
    free(lin);
    return 0;
}

/* The photo averaged over 2×2 blocks in linear light, as a half-size ISP
 * output ideally is. */
static int box_half(const fimage *in, fimage *out)
{
    out->w = in->w / 2;
    out->h = in->h / 2;
    out->px = malloc((size_t)out->w * out->h * 3 * sizeof(float));
    if (!out->px)
        return -1;
    for (int y = 0; y < out->h; y++)
        for (int x = 0; x < out->w; x++)
            for (int c = 0; c < 3; c++) {
                float s = 0.0f;
                for (int k = 0; k < 4; k++) {
                    size_t i = ((size_t)(2 * y + k / 2) * in->w + 2 * x + k % 2) * 3 + c;
                    s += lumos_test_srgb_to_linear(in->px[i]);
                }
                out->px[((size_t)y * out->w + x) * 3 + c] = lumos_test_linear_to_srgb(s / 4);
            }
    return 0;
}

/* Opens the DNG, checks what LibRaw made of it, runs the ISP. Returns the
 * PSNR against ref, or -1 when it could not run. */
static double run_isp(lumos_ctx *ctx, const char *dng, const char *label, lumos_cfa cfa, int w,
                      int h, int half, const fimage *ref)
{
    lumos_raw *raw = NULL;
    int st = lumos_raw_open_file(ctx, dng, &raw);
    CHECK(st == LUMOS_OK, "%s: lumos_raw_open_file: %s: %s", label, lumos_strerror(st),
          lumos_last_error(ctx));
    if (st != LUMOS_OK)
        return -1;
    const lumos_raw_info *info = lumos_raw_get_info(raw);
    if (!half) {
        CHECK(info->width == w && info->height == h, "%s: raw size %dx%d, wrote %dx%d", label,
              info->width, info->height, w, h);
        CHECK(info->cfa == cfa && info->is_bayer, "%s: raw cfa %d (bayer %d), wrote %d", label,
              info->cfa, info->is_bayer, cfa);
        for (int i = 0; i < 4; i++)
            CHECK(fabsf(info->black[i] - black_levels[i]) < 0.5f, "%s: black[%d] %g, wrote %g",
                  label, i, info->black[i], black_levels[i]);
        CHECK(fabsf(info->white - white_level) < 0.5f, "%s: white %g, wrote %g", label,
              info->white, white_level);
        for (int i = 0; i < 3; i++) {
            CHECK(fabsf(info->wb_as_shot[i] - 1.0f) < 1e-3f, "%s: wb_as_shot[%d] = %g, not 1",
                  label, i, info->wb_as_shot[i]);
            for (int j = 0; j < 3; j++)
                CHECK(fabsf(info->cam_to_srgb[i][j] - (i == j)) < 1e-3f,
                      "%s: cam_to_srgb[%d][%d] = %g, camera space should be linear sRGB", label,
                      i, j, info->cam_to_srgb[i][j]);
        }
    }

    lumos_isp_options opt;
    lumos_isp_options_init(&opt);
    opt.wb = LUMOS_WB_CAMERA;
    opt.tone = 0.0f;
    opt.sharpen = 0.0f;
    opt.exposure_ev = 0.0f;
    opt.bits = 16;
    opt.linear = 0;
    opt.half = half;
    lumos_image out;
    memset(&out, 0, sizeof out);
    st = lumos_isp_classic(ctx, raw, &opt, &out);
    lumos_raw_free(raw);
    CHECK(st == LUMOS_OK, "%s: lumos_isp_classic%s: %s: %s", label, half ? " (half)" : "",
          lumos_strerror(st), lumos_last_error(ctx));
    if (st != LUMOS_OK)
        return -1;

    double p = -1;
    int ew = half ? w / 2 : w, eh = half ? h / 2 : h;
    CHECK(out.width == ew && out.height == eh && out.channels == 3 && out.bits == 16,
          "%s: ISP%s gave %dx%d×%d %d-bit, expected %dx%d×3 16-bit", label,
          half ? " (half)" : "", out.width, out.height, out.channels, out.bits, ew, eh);
    fimage got;
    if (out.width == ew && out.height == eh && out.channels == 3 && fimage_from(&out, &got) == 0) {
        p = psnr(&got, ref, BORDER);
        free(got.px);
    }
    lumos_image_free(&out);
    return p;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_demosaic PHOTO_DIR\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/lumos_demosaic_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    lumos_ctx *ctx = lumos_ctx_new();
    if (!ctx)
        return 1;

    int tested = 0;
    double worst_margin = 1e9, best_margin = -1e9, worst_half = 1e9;
    printf("| photo | CFA | lumos dB | bilinear dB | lumos - bilinear | half-size dB |\n"
           "|---|---|---|---|---|---|\n");
    for (size_t k = 0; k < sizeof photos / sizeof photos[0]; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], photos[k]);
        if (access(path, R_OK) != 0) {
            printf("notice: %s missing, skipped\n", path);
            continue;
        }
        lumos_image img;
        int st = lumos_image_read(ctx, path, &img);
        CHECK(st == LUMOS_OK, "lumos_image_read %s: %s: %s", path, lumos_strerror(st),
              lumos_last_error(ctx));
        if (st != LUMOS_OK)
            continue;
        if (img.channels != 3) {
            printf("notice: %s is not RGB, skipped\n", path);
            lumos_image_free(&img);
            continue;
        }
        fimage ref, ref_half;
        if (fimage_from(&img, &ref) || box_half(&ref, &ref_half)) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        tested++;
        double lo = 1e9, hi = -1e9, blo = 1e9, bhi = -1e9;
        for (int p = 0; p < 4; p++) {
            lumos_cfa cfa = (lumos_cfa)(LUMOS_CFA_RGGB + p);
            char dng[4200], label[256];
            snprintf(dng, sizeof dng, "%s/%d_%s.dng", dir, (int)k, cfa_names[p]);
            snprintf(label, sizeof label, "%s %s", photos[k], cfa_names[p]);
            uint16_t *m = lumos_test_mosaic_from_image(&img, cfa, black_levels, white_level);
            fimage bl;
            if (!m || bilinear(m, img.width, img.height, cfa, &bl)) {
                fprintf(stderr, "out of memory\n");
                return 1;
            }
            double pb = psnr(&bl, &ref, BORDER);
            free(bl.px);
            int wrote = lumos_test_write_bayer_dng(dng, m, img.width, img.height, cfa,
                                                   black_levels, white_level,
                                                   lumos_test_xyz_to_srgb,
                                                   (const float[3]){1, 1, 1}, 1);
            free(m);
            CHECK(wrote == 0, "%s: cannot write %s", label, dng);
            if (wrote != 0)
                continue;
            double pl = run_isp(ctx, dng, label, cfa, img.width, img.height, 0, &ref);
            double ph = run_isp(ctx, dng, label, cfa, img.width, img.height, 1, &ref_half);
            remove(dng);
            printf("| %s | %s | %.2f | %.2f | %+.2f | %.2f |\n", photos[k], cfa_names[p], pl, pb,
                   pl - pb, ph);
            if (pl < 0 || ph < 0)
                continue; /* already counted as a failure */
            lo = fmin(lo, pl), hi = fmax(hi, pl);
            blo = fmin(blo, pb), bhi = fmax(bhi, pb);
            worst_margin = fmin(worst_margin, pl - pb);
            best_margin = fmax(best_margin, pl - pb);
            worst_half = fmin(worst_half, ph);
            CHECK(ph >= MIN_HALF_PSNR, "%s: half-size PSNR %.2f dB < %.1f", label, ph,
                  MIN_HALF_PSNR);
        }
        /* The bilinear reference's own spread shows what sampling alone
         * moves between patterns. */
        if (hi >= lo)
            CHECK(hi - lo <= MAX_PATTERN_SPREAD,
                  "%s: PSNR differs by %.2f dB between patterns (bilinear: %.2f dB): "
                  "a Bayer pattern is mishandled",
                  photos[k], hi - lo, bhi - blo);
        free(ref.px);
        free(ref_half.px);
        lumos_image_free(&img);
    }
    lumos_ctx_free(ctx);
    rmdir(dir);
    if (!tested) {
        printf("SKIP: none of the photos is in %s\n", argv[1]);
        return 77;
    }
    if (worst_margin <= best_margin) {
        printf("lumos - bilinear: %+.2f .. %+.2f dB (require >= %+.1f); "
               "half-size worst %.2f dB (require >= %.1f)\n",
               worst_margin, best_margin, MIN_MARGIN_DB, worst_half, MIN_HALF_PSNR);
        CHECK(worst_margin >= MIN_MARGIN_DB, "lumos beats bilinear by only %+.2f dB (< %+.1f)",
              worst_margin, MIN_MARGIN_DB);
    }
    if (failures)
        printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
