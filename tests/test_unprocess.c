/* test_unprocess — the training data: Brooks et al. unprocessing, crops and
 * the dataset list.
 *
 *   test_unprocess PHOTO_DIR
 *
 * - each step's inverse against its forward on random values (1e-5);
 * - photos unprocessed without noise, developed by lumos_isp_classic with
 *   the returned info, come back (colour PSNR >= MIN_PSNR_*);
 * - the noise on flat fields: variance = shot·x + read within NOISE_TOL;
 *   the sampler's distributions;
 * - highlights: white stays saturated, the ramp below stays unclipped;
 * - the same seed gives the same mosaic bit for bit;
 * - crops: even offsets, a flipped crop of a mosaic = the mosaic of the
 *   flipped crop, with the CFA and blacks it reports;
 * - the split: deterministic, disjoint, ~10 %, unmoved by added files;
 * - bad files are reported and skipped.
 * The rest needs no data and runs first; without the photos in PHOTO_DIR
 * the test exits 77 (skipped) unless something else failed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "lumos.h"
#include "train/data.h"
#include "train/unprocess.h"

/* Round trip, measured (lumos 0.1.0, skimage 0.19 photos, gains of seeds
 * 1/2, border 4), dB:    identity  camera  camera+tone  camera GBRG
 *   astronaut              35.43    34.17     35.04        34.18
 *   coffee                 31.74    30.63     31.84        30.58
 *   chelsea                37.03    36.45     37.91        36.43
 * Identity equals test_demosaic's plain demosaic (the unprocessing itself
 * loses ~nothing); the camera matrix costs ~1 dB where saturated colours
 * fall outside the 30D's gamut and clip at 0. Thresholds ~1 dB under the
 * worst photo. */
#define MIN_PSNR_IDENTITY 30.5 /* camera space = linear sRGB: 31.74 .. 37.03 */
#define MIN_PSNR_CAMERA 29.5   /* the 30D's matrix (out-of-gamut colours clip): 30.58 .. 37.91 */
#define BORDER 4
#define STEP_TOL 1e-5
#define NOISE_TOL 0.05 /* relative: 6 sigma of a 32768-sample variance (sd sqrt(2/n)) */

static const float identity[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};

/* ------------------------------------------------------------ steps */

static void test_steps(void)
{
    uint64_t rng = 12345;
    double worst[6] = {0};
    for (int i = 0; i < 100000; i++) {
        float v = (float)lumos__rng_uniform(&rng);
        worst[0] = fmax(worst[0], fabs(lumos__srgb_encode(lumos__srgb_decode(v)) - v));
        worst[1] = fmax(worst[1], fabs(lumos__srgb_decode(lumos__srgb_encode(v)) - v));
        worst[2] = fmax(worst[2], fabs(lumos__smoothstep(lumos__smoothstep_inverse(v)) - v));
        /* The curve is flat at its ends: a float y there cannot resolve x
         * (dx = dy / 6x(1-x)), so that direction is checked inside. */
        float x = 0.01f + 0.98f * v;
        worst[3] = fmax(worst[3], fabs(lumos__smoothstep_inverse(lumos__smoothstep(x)) - x));
    }
    CHECK(worst[0] <= STEP_TOL, "encode(decode(e)) off by %g", worst[0]);
    CHECK(worst[1] <= STEP_TOL, "decode(encode(v)) off by %g", worst[1]);
    CHECK(worst[2] <= STEP_TOL, "smoothstep(inverse(y)) off by %g", worst[2]);
    CHECK(worst[3] <= STEP_TOL, "inverse(smoothstep(x)) off by %g on [0.01, 0.99]", worst[3]);
    /* The ends and the midpoint are fixed points of the tone curve. */
    CHECK(fabsf(lumos__smoothstep_inverse(0.5f) - 0.5f) < 1e-6f, "inverse(0.5) != 0.5");
    CHECK(fabsf(lumos__smoothstep_inverse(1.f) - 1.f) < 1e-6f, "inverse(1) != 1");

    /* Matrices: the default camera's, then random well-conditioned ones. */
    lumos__unprocess_params p;
    lumos__unprocess_params_init(&p);
    double merr = 0;
    for (int t = 0; t < 200; t++) {
        float m[3][3], inv[3][3];
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
                m[i][j] = t == 0 ? p.cam_to_srgb[i][j]
                                 : (float)((i == j) + 0.8 * (lumos__rng_uniform(&rng) - 0.5));
        if (lumos__mat3_inverse(m, inv)) {
            CHECK(0, "matrix %d reported singular", t);
            continue;
        }
        for (int k = 0; k < 10; k++) {
            float v[3], cam[3];
            for (int i = 0; i < 3; i++) v[i] = (float)lumos__rng_uniform(&rng);
            for (int i = 0; i < 3; i++)
                cam[i] = inv[i][0] * v[0] + inv[i][1] * v[1] + inv[i][2] * v[2];
            for (int i = 0; i < 3; i++)
                merr = fmax(merr, fabs(m[i][0] * cam[0] + m[i][1] * cam[1] + m[i][2] * cam[2] - v[i]));
        }
    }
    CHECK(merr <= STEP_TOL, "matrix · inverse · v off by %g", merr);
    float sing[3][3] = {{1, 2, 3}, {2, 4, 6}, {0, 1, 1}}, dummy[3][3];
    CHECK(lumos__mat3_inverse(sing, dummy) != 0, "a singular matrix was inverted");

    /* White balance below the highlight knee: the ISP's gains undo it. */
    double werr = 0;
    for (int i = 0; i < 100000; i++) {
        float g[3] = {(float)(1.0 + 2 * lumos__rng_uniform(&rng)), 1.f,
                      (float)(1.0 + 2 * lumos__rng_uniform(&rng))};
        float bright = (float)(1.0 + lumos__rng_uniform(&rng)), inv[3], rgb[3], out[3];
        for (int c = 0; c < 3; c++) inv[c] = 1.f / (g[c] * bright);
        for (int c = 0; c < 3; c++) rgb[c] = (float)(0.9 * lumos__rng_uniform(&rng));
        lumos__safe_inverse_gains(rgb, inv, out);
        for (int c = 0; c < 3; c++) werr = fmax(werr, fabs(out[c] * g[c] * bright - rgb[c]));
    }
    CHECK(werr <= STEP_TOL, "gains · inverse gains off by %g", werr);
}

/* ------------------------------------------------------- highlights */

static void test_highlights(lumos_ctx *ctx)
{
    /* A gray ramp from 0.85 to white at column N-3 (the last 2x2 block is
     * white), tone and matrix neutral so the mosaic sees exactly the gray;
     * typical gains (all inverse gains < 1). */
    enum { N = 256 };
    lumos_image img;
    CHECK(lumos_image_alloc(&img, N, 2, 3, 16) == LUMOS_OK, "alloc");
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < N; x++)
            for (int c = 0; c < 3; c++)
                ((uint16_t *)((uint8_t *)img.data + y * img.stride))[x * 3 + c] =
                    (uint16_t)lrint(65535.0 * lumos__srgb_encode(fminf(0.85f + 0.15f * x / (N - 3), 1.f)));
    lumos__unprocess_params p;
    lumos__unprocess_params_init(&p);
    memcpy(p.cam_to_srgb, identity, sizeof identity);
    p.tone_curve = 0;
    p.red_gain = 2.2f;
    p.blue_gain = 1.7f;
    p.rgb_gain = 1.25f;
    uint16_t m[2 * N];
    CHECK(lumos__unprocess(ctx, &img, &p, m, NULL) == LUMOS_OK, "%s", lumos_last_error(ctx));
    int mono = 1, below = 1;
    for (int y = 0; y < 2; y++)
        for (int x = 2; x <= N - 3; x++) {
            mono &= m[y * N + x] > m[y * N + x - 2]; /* same CFA colour */
            if (x < N - 3) below &= m[y * N + x] < p.white;
        }
    CHECK(mono, "the mosaic of a highlight ramp is not strictly increasing");
    CHECK(below, "highlights below white clipped by the inverse gains");
    for (int k = 0; k < 4; k++)
        CHECK(m[(k >> 1) * N + N - 2 + (k & 1)] == (uint16_t)p.white,
              "white came out %u at site %d, not saturated %g (dimmed by the gains)",
              m[(k >> 1) * N + N - 2 + (k & 1)], k, p.white);
    /* Above the knee the gain eases towards 1: brighter than the plain
     * inverse, still below the input. */
    float g = 0.95f, out[3], inv[3] = {1 / 2.75f, 1 / 1.25f, 1 / 2.125f};
    lumos__safe_inverse_gains((float[3]){g, g, g}, inv, out);
    CHECK(out[0] > 1.2f * g * inv[0] && out[0] < g, "0.95 red -> %g", out[0]);
    lumos_image_free(&img);
}

/* ------------------------------------------------------------- noise */

static void test_noise(lumos_ctx *ctx)
{
    enum { W = 512, H = 256 };
    lumos_image img;
    CHECK(lumos_image_alloc(&img, W, H, 3, 16) == LUMOS_OK, "alloc");
    lumos__unprocess_params base;
    lumos__unprocess_params_init(&base);
    base.tone_curve = 0;
    base.red_gain = 2.0f;
    base.blue_gain = 1.6f;
    base.rgb_gain = 1.25f;
    uint64_t rng = 7;
    lumos__unprocess_params sampled = base;
    lumos__unprocess_sample(&rng, &sampled);
    const float noise[3][2] = {{0.004f, 1e-5f}, {0.012f, 2e-4f}, {sampled.shot_noise, sampled.read_noise}};
    const float levels[] = {0.15f, 0.35f, 0.6f, 0.85f};
    uint16_t *m = malloc((size_t)W * H * sizeof *m);
    int tested = 0;
    double worst = 0;
    for (int n = 0; n < 3; n++)
        for (size_t l = 0; l < sizeof levels / sizeof *levels; l++) {
            for (int y = 0; y < H; y++)
                for (int i = 0; i < W * 3; i++)
                    ((uint16_t *)((uint8_t *)img.data + y * img.stride))[i] =
                        (uint16_t)lrint(65535.0 * levels[l]);
            lumos__unprocess_params p = base;
            p.shot_noise = noise[n][0];
            p.read_noise = noise[n][1];
            p.noise_seed = 1000 + (uint64_t)(n * 10 + l);
            CHECK(lumos__unprocess(ctx, &img, &p, m, NULL) == LUMOS_OK, "%s", lumos_last_error(ctx));
            double range = p.white - p.black, lsb = 1.0 / range;
            for (int c = 0; c < 3; c++) {
                double s = 0, s2 = 0;
                long cnt = 0;
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++) {
                        int site = (y & 1) * 2 + (x & 1);
                        int col = site == 0 ? 0 : site == 3 ? 2 : 1; /* RGGB */
                        if (col != c) continue;
                        double v = (m[y * W + x] - p.black) / range;
                        s += v;
                        s2 += v * v;
                        cnt++;
                    }
                double mean = s / cnt, var = s2 / cnt - mean * mean;
                double expect = p.shot_noise * mean + p.read_noise + lsb * lsb / 12;
                double sd = sqrt(expect);
                /* Only where neither the floor (sample 0) nor white clips. */
                if (mean - 5 * sd < -p.black / range || mean + 5 * sd > 1) continue;
                tested++;
                double rel = fabs(var / expect - 1);
                worst = fmax(worst, rel);
                CHECK(rel <= NOISE_TOL, "noise %g/%g level %g colour %d: variance %g, expected %g",
                      p.shot_noise, p.read_noise, levels[l], c, var, expect);
            }
        }
    CHECK(tested >= 24, "only %d flat fields were unclipped", tested);
    printf("noise: %d flat fields, variance within %.2f %% of shot*x + read\n", tested, 100 * worst);

    /* Noise off: flat is flat (at most rounding). */
    lumos__unprocess_params p = base;
    CHECK(lumos__unprocess(ctx, &img, &p, m, NULL) == LUMOS_OK, "%s", lumos_last_error(ctx));
    int flat = 1;
    for (int i = 2; i < W * H; i++) flat &= abs((int)m[i] - (int)m[i % 2 + (i / W % 2) * W]) == 0;
    CHECK(flat, "noise off but the flat field varies");
    free(m);
    lumos_image_free(&img);
}

static void test_sampler(void)
{
    enum { N = 20000 };
    uint64_t rng = 99;
    double sb = 0, sb2 = 0, sr = 0, sr2 = 0, sls = 0;
    int in_range = 1;
    uint64_t prev_seed = 0;
    int seeds_differ = 1;
    double lo = log(0.0001), hi = log(0.012);
    for (int i = 0; i < N; i++) {
        lumos__unprocess_params p;
        lumos__unprocess_params_init(&p);
        lumos__unprocess_sample(&rng, &p);
        in_range &= p.red_gain >= 1.9f && p.red_gain <= 2.4f && p.blue_gain >= 1.5f &&
                    p.blue_gain <= 1.9f && p.rgb_gain > 0;
        double ls = log(p.shot_noise);
        in_range &= ls >= lo - 1e-5 && ls <= hi + 1e-5;
        double b = 1.0 / p.rgb_gain, r = log(p.read_noise) - (2.18 * ls + 1.20);
        sb += b, sb2 += b * b, sr += r, sr2 += r * r, sls += ls;
        seeds_differ &= p.noise_seed != prev_seed;
        prev_seed = p.noise_seed;
    }
    double mb = sb / N, db = sqrt(sb2 / N - mb * mb), mr = sr / N, dr = sqrt(sr2 / N - mr * mr);
    CHECK(in_range, "a sampled gain or noise level is out of the paper's range");
    CHECK(fabs(mb - 0.8) < 0.005 && fabs(db - 0.1) < 0.005, "1/rgb_gain mean %g sd %g", mb, db);
    CHECK(fabs(mr) < 0.01 && fabs(dr - 0.26) < 0.01, "log read residual mean %g sd %g", mr, dr);
    CHECK(fabs(sls / N - (lo + hi) / 2) < 0.05, "log shot mean %g", sls / N);
    CHECK(seeds_differ, "two draws gave the same noise seed");
    uint64_t a = 5, b = 5;
    lumos__unprocess_params pa, pb;
    lumos__unprocess_sample(&a, &pa);
    lumos__unprocess_sample(&b, &pb);
    CHECK(pa.rgb_gain == pb.rgb_gain && pa.noise_seed == pb.noise_seed && a == b,
          "the same seed drew different parameters");
}

/* ------------------------------------------------------- round trip */

static double psnr(const lumos_image *a, const lumos_image *b, int tone)
{
    double se = 0;
    long n = 0;
    double pa = a->bits == 8 ? 255 : 65535, pb = b->bits == 8 ? 255 : 65535;
    for (int y = BORDER; y < a->height - BORDER; y++) {
        const uint8_t *ra = (const uint8_t *)a->data + y * a->stride;
        const uint8_t *rb = (const uint8_t *)b->data + y * b->stride;
        for (int i = BORDER * 3; i < (a->width - BORDER) * 3; i++) {
            double va = (a->bits == 8 ? ra[i] : ((const uint16_t *)ra)[i]) / pa;
            double vb = (b->bits == 8 ? rb[i] : ((const uint16_t *)rb)[i]) / pb;
            if (tone) vb = lumos__smoothstep((float)vb); /* the tone curve the ISP left out */
            se += (va - vb) * (va - vb);
            n++;
        }
    }
    return se > 0 ? 10 * log10(n / se) : 99;
}

/* Unprocessed (no noise) and developed again; the PSNR against the photo. */
static double round_trip(lumos_ctx *ctx, const lumos_image *photo, const float m[3][3], int tone,
                         uint64_t seed, lumos_cfa cfa)
{
    lumos__unprocess_params p;
    lumos__unprocess_params_init(&p);
    memcpy(p.cam_to_srgb, m, sizeof p.cam_to_srgb);
    uint64_t rng = seed;
    lumos__unprocess_sample(&rng, &p);
    p.shot_noise = p.read_noise = 0;
    p.tone_curve = tone;
    p.cfa = cfa;
    uint16_t *mos = malloc((size_t)photo->width * photo->height * sizeof *mos);
    lumos_raw_info info;
    lumos_raw *raw = NULL;
    lumos_image out = {0};
    double r = -1;
    int rc = lumos__unprocess(ctx, photo, &p, mos, &info);
    CHECK(rc == LUMOS_OK, "unprocess: %s", lumos_last_error(ctx));
    if (rc == LUMOS_OK) {
        CHECK(info.cfa == cfa && info.white == p.white && info.black[3] == p.black &&
                  info.wb_as_shot[0] == p.red_gain && info.wb_as_shot[1] == 1 &&
                  info.wb_as_shot[2] == p.blue_gain && info.orientation == 1 &&
                  info.cam_to_srgb[0][1] == m[0][1] && info.width == photo->width,
              "info_out does not describe the mosaic");
        rc = lumos_raw_from_mosaic(ctx, mos, photo->width, photo->height,
                                   (size_t)photo->width * 2, &info, &raw);
        CHECK(rc == LUMOS_OK, "raw_from_mosaic: %s", lumos_last_error(ctx));
    }
    if (rc == LUMOS_OK) {
        lumos_isp_options o;
        lumos_isp_options_init(&o);
        o.tone = 0;
        o.bits = 16;
        o.exposure_ev = log2f(p.rgb_gain);
        rc = lumos_isp_classic(ctx, raw, &o, &out);
        CHECK(rc == LUMOS_OK, "isp: %s", lumos_last_error(ctx));
        if (rc == LUMOS_OK) r = psnr(photo, &out, tone);
    }
    lumos_image_free(&out);
    lumos_raw_free(raw);
    free(mos);
    return r;
}

static int test_round_trip(lumos_ctx *ctx, const char *dir)
{
    static const char *const names[] = {"astronaut.png", "coffee.png", "chelsea.png"};
    lumos__unprocess_params def;
    lumos__unprocess_params_init(&def);
    int ran = 0;
    printf("round trip PSNR (dB): photo, identity matrix, camera matrix, camera + tone curve, GBRG\n");
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        if (access(path, R_OK)) continue;
        lumos_image photo;
        if (lumos_image_read(ctx, path, &photo) != LUMOS_OK || photo.channels != 3) {
            CHECK(0, "%s: %s", path, lumos_last_error(ctx));
            lumos_image_free(&photo);
            continue;
        }
        ran++;
        double a = round_trip(ctx, &photo, identity, 0, 1, LUMOS_CFA_RGGB);
        double b = round_trip(ctx, &photo, (const float(*)[3])def.cam_to_srgb, 0, 1, LUMOS_CFA_RGGB);
        double c = round_trip(ctx, &photo, (const float(*)[3])def.cam_to_srgb, 1, 1, LUMOS_CFA_RGGB);
        double d = round_trip(ctx, &photo, (const float(*)[3])def.cam_to_srgb, 0, 2, LUMOS_CFA_GBRG);
        printf("  %-14s %6.2f %6.2f %6.2f %6.2f\n", names[k], a, b, c, d);
        CHECK(a >= MIN_PSNR_IDENTITY, "%s identity: %.2f dB", names[k], a);
        CHECK(b >= MIN_PSNR_CAMERA, "%s camera: %.2f dB", names[k], b);
        CHECK(c >= MIN_PSNR_CAMERA, "%s camera + tone: %.2f dB", names[k], c);
        CHECK(d >= MIN_PSNR_CAMERA, "%s camera GBRG: %.2f dB", names[k], d);
        lumos_image_free(&photo);
    }
    if (!ran) printf("round trip: no photos in %s, skipped\n", dir);
    return ran;
}

/* ------------------------------------------------- determinism, crops */

static void test_determinism_and_crops(lumos_ctx *ctx)
{
    enum { W = 64, H = 48 };
    lumos_image img;
    CHECK(lumos_image_alloc(&img, W, H, 3, 8) == LUMOS_OK, "alloc");
    uint64_t rng = 3;
    for (int y = 0; y < H; y++)
        for (int i = 0; i < W * 3; i++)
            ((uint8_t *)img.data)[y * img.stride + i] = (uint8_t)(lumos__rng_next(&rng) >> 56);
    lumos__unprocess_params p;
    lumos__unprocess_params_init(&p);
    uint64_t s1 = 42, s2 = 42;
    lumos__unprocess_sample(&s1, &p);
    uint16_t a[W * H], b[W * H];
    CHECK(lumos__unprocess(ctx, &img, &p, a, NULL) == LUMOS_OK, "%s", lumos_last_error(ctx));
    lumos__unprocess_params q;
    lumos__unprocess_params_init(&q);
    lumos__unprocess_sample(&s2, &q);
    CHECK(lumos__unprocess(ctx, &img, &q, b, NULL) == LUMOS_OK, "%s", lumos_last_error(ctx));
    CHECK(!memcmp(a, b, sizeof a), "the same seed gave different mosaics");
    q.noise_seed++;
    CHECK(lumos__unprocess(ctx, &img, &q, b, NULL) == LUMOS_OK, "%s", lumos_last_error(ctx));
    CHECK(memcmp(a, b, sizeof a), "another noise seed gave the same mosaic");

    /* Crops: even, inside, both flips seen, reproducible. */
    uint64_t r1 = 11, r2 = 11;
    int seen[2][2] = {{0}};
    int ok = 1;
    for (int i = 0; i < 200; i++) {
        lumos__crop c, d;
        CHECK(lumos__random_crop(ctx, &r1, 101, 77, 33, 20, &c) == LUMOS_OK, "crop");
        lumos__random_crop(ctx, &r2, 101, 77, 33, 20, &d);
        ok &= !memcmp(&c, &d, sizeof c);
        ok &= c.x % 2 == 0 && c.y % 2 == 0 && c.width == 32 && c.height == 20 &&
              c.x + c.width <= 101 && c.y + c.height <= 77;
        seen[0][c.flip_x] = seen[1][c.flip_y] = 1;
    }
    CHECK(ok, "random crops odd, outside, or not reproducible");
    CHECK(seen[0][0] && seen[0][1] && seen[1][0] && seen[1][1], "not every flip drawn");
    lumos__crop big;
    CHECK(lumos__random_crop(ctx, &r1, 30, 30, 40, 10, &big) == LUMOS_E_ARG, "oversized crop taken");

    /* A flipped crop of the mosaic is the mosaic (in the reported CFA) of
     * the same flipped crop of the photo; noise off, so pixel for pixel. */
    p.shot_noise = p.read_noise = 0;
    lumos_raw_info info;
    CHECK(lumos__unprocess(ctx, &img, &p, a, &info) == LUMOS_OK, "%s", lumos_last_error(ctx));
    info.black[0] = 1, info.black[1] = 2, info.black[2] = 3, info.black[3] = 4;
    for (int f = 0; f < 4; f++) {
        lumos__crop c = {.x = 6, .y = 4, .width = 20, .height = 16, .flip_x = f & 1, .flip_y = f >> 1};
        lumos_raw_info ci;
        uint16_t cm[20 * 16], ref[20 * 16];
        CHECK(lumos__crop_mosaic(ctx, a, W * 2, &info, &c, cm, &ci) == LUMOS_OK, "%s",
              lumos_last_error(ctx));
        lumos_image ic;
        CHECK(lumos__crop_image(ctx, &img, &c, &ic) == LUMOS_OK, "%s", lumos_last_error(ctx));
        lumos__unprocess_params pc = p;
        pc.cfa = ci.cfa;
        CHECK(lumos__unprocess(ctx, &ic, &pc, ref, NULL) == LUMOS_OK, "%s", lumos_last_error(ctx));
        CHECK(!memcmp(cm, ref, sizeof cm), "flips %d: cropped mosaic (cfa %d) != mosaic of the crop",
              f, ci.cfa);
        static const float blacks[4][4] = {{1, 2, 3, 4}, {2, 1, 4, 3}, {3, 4, 1, 2}, {4, 3, 2, 1}};
        static const lumos_cfa cfas[4] = {LUMOS_CFA_RGGB, LUMOS_CFA_GRBG, LUMOS_CFA_GBRG,
                                          LUMOS_CFA_BGGR};
        CHECK(ci.cfa == cfas[f] && !memcmp(ci.black, blacks[f], sizeof ci.black) &&
                  ci.width == 20 && ci.height == 16,
              "flips %d: cfa %d blacks %g %g %g %g", f, ci.cfa, ci.black[0], ci.black[1],
              ci.black[2], ci.black[3]);
        lumos_image_free(&ic);
    }
    lumos__crop odd = {.x = 1, .y = 0, .width = 4, .height = 4};
    uint16_t tmp[16];
    lumos_raw_info ti;
    CHECK(lumos__crop_mosaic(ctx, a, W * 2, &info, &odd, tmp, &ti) == LUMOS_E_ARG,
          "a mosaic was cropped at an odd offset");
    lumos_image_free(&img);
}

/* ------------------------------------------------------------ dataset */

static void touch(const char *path)
{
    FILE *f = fopen(path, "wb");
    if (f) fclose(f);
    CHECK(f != NULL, "cannot create %s", path);
}

/* Index of name in the split, or -1. */
static long find(const lumos__dataset *ds, lumos__split s, const char *name)
{
    for (size_t i = 0; i < lumos__dataset_count(ds, s); i++)
        if (!strcmp(lumos__dataset_name(ds, s, i), name)) return (long)i;
    return -1;
}

static void test_split(lumos_ctx *ctx, const char *tmp)
{
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/split", tmp);
    mkdir(dir, 0700);
    enum { N = 500, MORE = 200, KDE = 100 };
    for (int i = 0; i < N; i++) {
        snprintf(path, sizeof path, "%s/photo_%04d.%s", dir, i, i % 3 ? "jpg" : "png");
        touch(path);
    }
    snprintf(path, sizeof path, "%s/notes.svg", dir), touch(path);
    snprintf(path, sizeof path, "%s/.hidden.jpg", dir), touch(path);

    lumos__dataset *ds = NULL, *ds2 = NULL;
    const char *src[] = {dir};
    CHECK(lumos__dataset_open(ctx, src, 1, &ds) == LUMOS_OK, "%s", lumos_last_error(ctx));
    if (!ds) return;
    size_t ntr = lumos__dataset_count(ds, LUMOS__SPLIT_TRAIN), nte = lumos__dataset_count(ds, LUMOS__SPLIT_TEST);
    CHECK(ntr + nte == N, "%zu + %zu files, made %d", ntr, nte, N);
    CHECK(nte >= N * 6 / 100 && nte <= N * 14 / 100, "test split %zu of %d", nte, N);
    int consistent = 1, sorted = 1;
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < lumos__dataset_count(ds, s); i++) {
            const char *nm = lumos__dataset_name(ds, s, i);
            consistent &= (int)lumos__split_of(nm) == s && find(ds, !s, nm) < 0;
            if (i) sorted &= strcmp(lumos__dataset_name(ds, s, i - 1), nm) < 0;
        }
    CHECK(consistent, "a file is in both splits or not where its hash says");
    CHECK(sorted, "a split is not sorted");

    /* More files, a duplicate source and the KDE layout: nothing moves. */
    for (int i = 0; i < MORE; i++) {
        snprintf(path, sizeof path, "%s/added_%04d.jpg", dir, i);
        touch(path);
    }
    int kde_split[2] = {0, 0}, kde_same = 1;
    for (int i = 0; i < KDE; i++) {
        snprintf(path, sizeof path, "%s/Wall%03d", dir, i), mkdir(path, 0700);
        snprintf(path, sizeof path, "%s/Wall%03d/contents", dir, i), mkdir(path, 0700);
        snprintf(path, sizeof path, "%s/Wall%03d/contents/images", dir, i), mkdir(path, 0700);
        char a[4200], b[4200];
        snprintf(a, sizeof a, "%s/Wall%03d/contents/images/1920x1080.jpg", dir, i), touch(a);
        snprintf(b, sizeof b, "%s/Wall%03d/contents/images/5120x2880.png", dir, i), touch(b);
        kde_same &= lumos__split_of(a) == lumos__split_of(b);
        /* The dark variant: a path that only has to hash the same. */
        snprintf(b, sizeof b, "%s/Wall%03d/contents/images_dark/1920x1080.jpg", dir, i);
        kde_same &= lumos__split_of(a) == lumos__split_of(b);
        kde_split[lumos__split_of(a)]++;
    }
    CHECK(kde_same, "two sizes of one wallpaper fall in different splits");
    CHECK(kde_split[0] && kde_split[1], "all wallpapers of one file name in one split (%d/%d)",
          kde_split[0], kde_split[1]);
    const char *src2[] = {dir, dir};
    CHECK(lumos__dataset_open(ctx, src2, 2, &ds2) == LUMOS_OK, "%s", lumos_last_error(ctx));
    if (ds2) {
        size_t total = lumos__dataset_count(ds2, 0) + lumos__dataset_count(ds2, 1);
        CHECK(total == N + MORE + 2 * KDE, "%zu files after adding, expected %d", total,
              N + MORE + 2 * KDE);
        int unmoved = 1;
        for (int s = 0; s < 2; s++)
            for (size_t i = 0; i < lumos__dataset_count(ds, s); i++)
                unmoved &= find(ds2, s, lumos__dataset_name(ds, s, i)) >= 0;
        CHECK(unmoved, "adding files moved an existing file to the other split");
    }
    lumos__dataset_free(ds);
    lumos__dataset_free(ds2);

    const char *missing[] = {"/nonexistent/lumos/photos"};
    CHECK(lumos__dataset_open(ctx, missing, 1, &ds) == LUMOS_E_IO &&
              strstr(lumos_last_error(ctx), "/nonexistent/lumos/photos"),
          "a missing source was not reported: %s", lumos_last_error(ctx));
}

typedef struct {
    char text[4096];
    int count;
} notices;

static void on_notice(void *user, const char *msg)
{
    notices *n = user;
    size_t len = strlen(n->text);
    snprintf(n->text + len, sizeof n->text - len, "%s\n", msg);
    n->count++;
}

static void test_bad_files(lumos_ctx *ctx, const char *tmp)
{
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/bad", tmp);
    mkdir(dir, 0700);
    static const char *const good[] = {"good_a.png", "good_b.jpg", "good_gray.png"};
    lumos_image img;
    for (int k = 0; k < 3; k++) {
        CHECK(lumos_image_alloc(&img, 40 + k, 30, k == 2 ? 1 : 3, 8) == LUMOS_OK, "alloc");
        memset(img.data, 100 + k, img.stride * 30);
        lumos_write_options wo;
        lumos_write_options_init(&wo);
        wo.overwrite = 1;
        snprintf(path, sizeof path, "%s/%s", dir, good[k]);
        CHECK(lumos_image_write(ctx, &img, path, &wo) == LUMOS_OK, "%s", lumos_last_error(ctx));
        lumos_image_free(&img);
    }
    static const char *const bad[] = {"bad_random.png", "bad_empty.jpg", "bad_truncated.png",
                                      "bad_fake.cr2", "bad_missing.jpg"};
    uint64_t rng = 1;
    for (int k = 0; k < 4; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, bad[k]);
        FILE *f = fopen(path, "wb");
        if (!f) continue;
        if (k == 0 || k == 3)
            for (int i = 0; i < 5000; i++) fputc((int)(lumos__rng_next(&rng) >> 56), f);
        if (k == 2) { /* the first half of a good PNG */
            char gp[4200];
            snprintf(gp, sizeof gp, "%s/%s", dir, good[0]);
            size_t n;
            uint8_t *b = read_all(gp, &n);
            if (b) fwrite(b, 1, n / 2, f);
            free(b);
        }
        fclose(f);
    }
    /* The missing one comes from a list file, as photos.txt would name it. */
    char list[4200];
    snprintf(list, sizeof list, "%s/list.txt", tmp);
    FILE *lf = fopen(list, "w");
    if (lf) {
        fprintf(lf, "# photos\n%s/%s\n\n  %s/%s  \n", dir, bad[4], dir, good[0]);
        fclose(lf);
    }
    notices seen = {{0}, 0};
    lumos_ctx_set_notice(ctx, on_notice, &seen);
    const char *src[] = {dir, list};
    lumos__dataset *ds = NULL;
    CHECK(lumos__dataset_open(ctx, src, 2, &ds) == LUMOS_OK, "%s", lumos_last_error(ctx));
    if (!ds) return;
    size_t total = lumos__dataset_count(ds, 0) + lumos__dataset_count(ds, 1);
    CHECK(total == 8, "%zu files (the duplicate kept, or one lost)", total);
    int loaded = 0;
    size_t skipped = 0;
    for (int s = 0; s < 2; s++) {
        size_t n = lumos__dataset_count(ds, s);
        /* load(): every bad file fails, naming itself. */
        for (size_t i = 0; i < n; i++) {
            const char *nm = lumos__dataset_name(ds, s, i);
            lumos__item it;
            int rc = lumos__dataset_load(ctx, ds, s, i, &it);
            int is_bad = strstr(nm, "/bad_") != NULL;
            CHECK((rc != LUMOS_OK) == is_bad, "%s loaded with %d (%s)", nm, rc, lumos_last_error(ctx));
            if (rc != LUMOS_OK) CHECK(strstr(lumos_last_error(ctx), nm), "error does not name %s: %s",
                                      nm, lumos_last_error(ctx));
            if (rc == LUMOS_OK)
                CHECK(it.kind == LUMOS__ITEM_PHOTO && it.photo.channels == 3 && it.photo.height == 30,
                      "%s: kind %d, %d channels", nm, it.kind, it.photo.channels);
            lumos__item_free(&it);
        }
        /* next(): one pass goes past the bad files, reporting each. */
        size_t cursor = 0;
        while (n && cursor < n) {
            size_t before = cursor;
            lumos__item it;
            if (lumos__dataset_next(ctx, ds, s, &cursor, &it, &skipped) != LUMOS_OK) break;
            lumos__item_free(&it);
            if (cursor <= before) break; /* wrapped round */
            loaded++;
        }
    }
    CHECK(loaded == 3, "one pass loaded %d good files, not 3", loaded);
    CHECK(skipped >= 5, "%zu bad files skipped, not 5", skipped);
    for (int k = 0; k < 5; k++) CHECK(strstr(seen.text, bad[k]), "%s not reported:\n%s", bad[k], seen.text);
    lumos_ctx_set_notice(ctx, NULL, NULL);
    lumos__dataset_free(ds);
}

/* The decoded-photo cache: a hit lends the very image kept, a held image is
 * never evicted, least recently used ones are, and what is lent is what a
 * fresh decode gives. Three photos of ~3.7 KB, a budget for two. */
static void test_cache(lumos_ctx *ctx, const char *tmp)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/bad", tmp); /* test_bad_files' good_* photos */
    const char *src[] = {dir};
    lumos__dataset *ds = NULL, *plain = NULL;
    CHECK(lumos__dataset_open(ctx, src, 1, &ds) == LUMOS_OK, "%s", lumos_last_error(ctx));
    CHECK(lumos__dataset_open(ctx, src, 1, &plain) == LUMOS_OK, "%s", lumos_last_error(ctx));
    if (!ds || !plain) return;
    lumos__dataset_set_cache(ds, 8000);
    size_t good[3], n_good = 0;
    int split = -1;
    for (int s = 0; s < 2 && n_good < 3; s++) {
        n_good = 0;
        for (size_t i = 0; i < lumos__dataset_count(ds, s) && n_good < 3; i++)
            if (strstr(lumos__dataset_name(ds, s, i), "/good_")) good[n_good++] = i;
        split = s;
    }
    CHECK(n_good == 3, "the three good photos are not in one split");
    if (n_good != 3) goto done;
    lumos__item a[3], b[3];
    /* same pixels as a fresh decode */
    for (int k = 0; k < 3; k++) {
        lumos__item fresh;
        CHECK(lumos__dataset_load(ctx, ds, split, good[k], &a[k]) == LUMOS_OK, "%s", lumos_last_error(ctx));
        CHECK(lumos__dataset_load(ctx, plain, split, good[k], &fresh) == LUMOS_OK, "%s", lumos_last_error(ctx));
        CHECK(!fresh.cached, "a dataset without a budget cached");
        CHECK(a[k].photo.width == fresh.photo.width &&
                  !memcmp(a[k].photo.data, fresh.photo.data, fresh.photo.stride * fresh.photo.height),
              "photo %d differs from a fresh decode", k);
        lumos__item_free(&fresh);
        lumos__item_free(&a[k]);
    }
    /* now 1 and 2 are kept (0 was the least recently used): hits lend the same image */
    for (int k = 1; k < 3; k++) {
        lumos__dataset_load(ctx, ds, split, good[k], &a[k]);
        lumos__dataset_load(ctx, ds, split, good[k], &b[k]);
        CHECK(a[k].cached && a[k].photo.data == b[k].photo.data, "photo %d: no hit", k);
        lumos__item_free(&b[k]);
    }
    /* 1 and 2 held: 0 cannot be kept and is decoded on its own, twice */
    lumos__dataset_load(ctx, ds, split, good[0], &a[0]);
    lumos__dataset_load(ctx, ds, split, good[0], &b[0]);
    CHECK(!a[0].cached && a[0].photo.data != b[0].photo.data, "a held photo was evicted");
    lumos__item_free(&a[0]);
    lumos__item_free(&b[0]);
    lumos__item_free(&a[2]);
    /* 2 let go: 0 takes its place, 1 (held) stays */
    lumos__dataset_load(ctx, ds, split, good[0], &a[0]);
    lumos__dataset_load(ctx, ds, split, good[0], &b[0]);
    CHECK(a[0].cached && a[0].photo.data == b[0].photo.data, "photo 0 not kept after an eviction");
    lumos__dataset_load(ctx, ds, split, good[1], &b[1]);
    CHECK(b[1].photo.data == a[1].photo.data, "the held photo 1 was evicted");
    for (int k = 0; k < 2; k++) {
        lumos__item_free(&a[k]);
        lumos__item_free(&b[k]);
    }
done:
    lumos__dataset_free(ds);
    lumos__dataset_free(plain);
}

static void remove_tree(const char *tmp)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
}

int main(int argc, char **argv)
{
    const char *photos = argc > 1 ? argv[1] : "/usr/lib/python3/dist-packages/skimage/data";
    lumos_ctx *ctx = lumos_ctx_new();
    lumos_ctx_set_threads(ctx, 2);
    test_steps();
    test_sampler();
    test_highlights(ctx);
    test_noise(ctx);
    test_determinism_and_crops(ctx);
    int photos_ran = test_round_trip(ctx, photos);
    char tmp[] = "/tmp/lumos_unprocess_XXXXXX";
    if (mkdtemp(tmp)) {
        test_split(ctx, tmp);
        test_bad_files(ctx, tmp);
        test_cache(ctx, tmp);
        remove_tree(tmp);
    } else {
        CHECK(0, "mkdtemp failed");
    }
    lumos_ctx_free(ctx);
    printf("%s\n", failures ? "FAILED" : photos_ran ? "ok" : "ok, but no photos: skipped");
    return failures ? 1 : photos_ran ? 0 : 77;
}
