/* test_agnostic — the camera-agnostic input of the learned ISPs
 * (pipeline/agnostic.h) and the weights' "lumos_input" mode.
 *
 * - an already canonical mosaic (levels LUMOS__AGNOSTIC_BLACK..65535, neutral white balance,
 *   identity matrix) comes back sample for sample, in every CFA pattern;
 * - a flat colour photographed by a made-up sensor (a matrix with strong
 *   cross-talk, red and blue gains, per-site black levels) becomes that
 *   colour's linear sRGB at every site, as the inverse of the sensor model;
 * - the same in place (out = the input mosaic);
 * - a bright colour clips at 1; a dark one under noise keeps its mean
 *   (noise is not clipped at black);
 * - non-Bayer input is refused;
 * - weights written with lumos_input=agnostic load as such; the network
 *   then gives on a sensor mosaic exactly what the same weights as a
 *   sensor network give on its canonical mosaic; missing metadata means
 *   sensor, an unknown value is refused naming the file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "test_nets.h"
#include "io/raw_internal.h"
#include "io/weights.h"
#include "lumos.h"
#include "pipeline/agnostic.h"
#include "pipeline/learned.h"
#include "stages/learned_isp.h"
#include "train/trainer.h"
#include "train/unprocess.h"

enum { W = 37, H = 22 }; /* odd width: the borders' mirror is exercised */

static void canonical_info(lumos_raw_info *info, lumos_cfa cfa)
{
    memset(info, 0, sizeof *info);
    info->width = W;
    info->height = H;
    info->cfa = cfa;
    info->white = 65535;
    for (int k = 0; k < 4; k++) info->black[k] = LUMOS__AGNOSTIC_BLACK;
    info->is_bayer = 1;
    info->orientation = 1;
    for (int k = 0; k < 3; k++) {
        info->wb_as_shot[k] = 1;
        info->cam_to_srgb[k][k] = 1;
    }
}

static void identity_round_trip(lumos_ctx *ctx)
{
    static uint16_t in[W * H], out[W * H];
    uint64_t rng = 7;
    for (int i = 0; i < W * H; i++) in[i] = (uint16_t)(lumos__rng_next(&rng) & 0xffff);
    for (lumos_cfa cfa = LUMOS_CFA_RGGB; cfa <= LUMOS_CFA_GBRG; cfa++) {
        lumos_raw_info info, got;
        canonical_info(&info, cfa);
        CHECK(lumos__agnostic_mosaic(ctx, in, W, H, W * 2, &info, out, &got) == LUMOS_OK, "%s",
              lumos_last_error(ctx));
        int diff = 0;
        for (int i = 0; i < W * H; i++) diff += in[i] != out[i];
        CHECK(diff == 0, "cfa %d: %d samples changed", (int)cfa, diff);
        CHECK(got.cfa == cfa && got.white == 65535 && got.black[3] == LUMOS__AGNOSTIC_BLACK, "info");
    }
}

/* A flat linear-sRGB colour `rgb` as a sensor with matrix cam_to_srgb and
 * gains wb records it: raw = black + (M^-1 rgb)_site / wb_site · range. */
static void sensor_shot(const float rgb[3], const lumos_raw_info *info, uint16_t *mosaic)
{
    float inv[3][3], cam[3];
    lumos__mat3_inverse(info->cam_to_srgb, inv);
    for (int k = 0; k < 3; k++) cam[k] = inv[k][0] * rgb[0] + inv[k][1] * rgb[1] + inv[k][2] * rgb[2];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int s = (y & 1) * 2 + (x & 1), colour = lumos__cfa_color(info->cfa, x, y);
            float v = info->black[s] + cam[colour] / info->wb_as_shot[colour] * (info->white - info->black[s]);
            mosaic[y * W + x] = (uint16_t)lrintf(fminf(fmaxf(v, 0), 65535));
        }
}

static void made_up_sensor(lumos_raw_info *info, lumos_cfa cfa)
{
    canonical_info(info, cfa);
    const float m[3][3] = {{1.9f, -0.7f, -0.2f}, {-0.25f, 1.55f, -0.3f}, {0.05f, -0.6f, 1.55f}};
    memcpy(info->cam_to_srgb, m, sizeof m); /* rows sum to 1 */
    info->wb_as_shot[0] = 2.1f;
    info->wb_as_shot[2] = 1.6f;
    const float black[4] = {510, 512, 514, 509};
    memcpy(info->black, black, sizeof black);
    info->white = 16383;
}

static double canonical_value(uint16_t v)
{
    return (v - (double)LUMOS__AGNOSTIC_BLACK) / (65535.0 - LUMOS__AGNOSTIC_BLACK);
}

static void flat_colours(lumos_ctx *ctx)
{
    static uint16_t mosaic[W * H], out[W * H];
    const float colours[][3] = {{0.30f, 0.45f, 0.20f}, {0.05f, 0.10f, 0.60f}, {0.7f, 0.2f, 0.1f}};
    for (lumos_cfa cfa = LUMOS_CFA_RGGB; cfa <= LUMOS_CFA_GBRG; cfa++) {
        lumos_raw_info info, got;
        made_up_sensor(&info, cfa);
        for (size_t c = 0; c < sizeof colours / sizeof *colours; c++) {
            sensor_shot(colours[c], &info, mosaic);
            CHECK(lumos__agnostic_mosaic(ctx, mosaic, W, H, W * 2, &info, out, &got) == LUMOS_OK,
                  "%s", lumos_last_error(ctx));
            double worst = 0;
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    double want = colours[c][lumos__cfa_color(cfa, x, y)];
                    worst = fmax(worst, fabs(canonical_value(out[y * W + x]) - want));
                }
            /* 14-bit samples through a matrix of gain ~3: a few 1e-4 */
            CHECK(worst < 1e-3, "cfa %d colour %zu: off by %g", (int)cfa, c, worst);
            /* in place (as training does it): the same samples */
            static uint16_t same[W * H];
            memcpy(same, mosaic, sizeof same);
            lumos__agnostic_mosaic(ctx, same, W, H, W * 2, &info, same, &got);
            CHECK(!memcmp(same, out, sizeof same), "cfa %d colour %zu: in place differs", (int)cfa, c);
        }
        /* beyond white after the gains, and below black */
        const float bright[3] = {1.4f, 1.2f, 1.3f};
        sensor_shot(bright, &info, mosaic);
        lumos__agnostic_mosaic(ctx, mosaic, W, H, W * 2, &info, out, &got);
        int unclipped = 0;
        for (int i = 0; i < W * H; i++) unclipped += out[i] != 65535;
        CHECK(unclipped == 0, "cfa %d: %d bright samples not clipped at 1", (int)cfa, unclipped);
        info.white = 1023; /* black ~510: 0 is -1 and less after the gains */
        for (int i = 0; i < W * H; i++) mosaic[i] = 0;
        lumos__agnostic_mosaic(ctx, mosaic, W, H, W * 2, &info, out, &got);
        int nonzero = 0;
        for (int i = 0; i < W * H; i++) nonzero += out[i] != 0;
        CHECK(nonzero == 0, "cfa %d: %d samples below the canonical range not clipped at its "
              "floor", (int)cfa, nonzero);
    }
    lumos_raw_info info, got;
    made_up_sensor(&info, LUMOS_CFA_RGGB);
    info.is_bayer = 0;
    info.cfa = LUMOS_CFA_NONE;
    CHECK(lumos__agnostic_mosaic(ctx, mosaic, W, H, W * 2, &info, out, &got) == LUMOS_E_ARG,
          "non-Bayer input accepted");
}

static char dir[] = "/tmp/lumos_agnostic_XXXXXX";

/* A dark flat colour under zero-mean noise keeps its mean: the canonical
 * mosaic does not clip noise at black (which would lift each CFA colour by
 * its own matrix gain: a cast and a 2×2 pattern). */
static void dark_noise_unbiased(lumos_ctx *ctx)
{
    enum { N = 256 };
    uint16_t *mosaic = malloc(N * N * sizeof *mosaic), *out = malloc(N * N * sizeof *out);
    lumos_raw_info info, got;
    made_up_sensor(&info, LUMOS_CFA_RGGB);
    info.width = info.height = N;
    const float rgb[3] = {0.004f, 0.006f, 0.003f};
    float inv[3][3], cam[3];
    lumos__mat3_inverse(info.cam_to_srgb, inv);
    for (int k = 0; k < 3; k++) cam[k] = inv[k][0] * rgb[0] + inv[k][1] * rgb[1] + inv[k][2] * rgb[2];
    uint64_t rng = 11;
    for (int y = 0; y < N; y++)
        for (int x = 0; x < N; x++) {
            int s = (y & 1) * 2 + (x & 1), colour = lumos__cfa_color(info.cfa, x, y);
            float range = info.white - info.black[s];
            float v = cam[colour] / info.wb_as_shot[colour] + 0.01f * (float)lumos__rng_normal(&rng);
            mosaic[y * N + x] = (uint16_t)lrintf(info.black[s] + v * range);
        }
    CHECK(lumos__agnostic_mosaic(ctx, mosaic, N, N, N * 2, &info, out, &got) == LUMOS_OK, "%s",
          lumos_last_error(ctx));
    double sum[3] = {0}, count[3] = {0};
    for (int y = 0; y < N; y++)
        for (int x = 0; x < N; x++) {
            int colour = lumos__cfa_color(info.cfa, x, y);
            sum[colour] += canonical_value(out[y * N + x]);
            count[colour]++;
        }
    /* the noise is ~0.05 after the gains and matrix, so a mean over 16k
     * samples is good to ~5e-4; clipping at 0 would add ~0.02 */
    for (int k = 0; k < 3; k++)
        CHECK(fabs(sum[k] / count[k] - rgb[k]) < 0.002, "colour %d: mean %g, want %g", k,
              sum[k] / count[k], rgb[k]);
    free(mosaic);
    free(out);
}

static void weights_mode(lumos_ctx *ctx)
{
    const lumos__net_def *kind = net_named("efficient");
    const size_t n = lumos__net_weight_count(kind);
    float *flat = malloc(n * sizeof *flat);
    uint64_t rng = 3;
    lumos__train_init_weights(ctx, kind, &rng, flat);
    char agnostic[256], sensor[256], bogus[256];
    snprintf(agnostic, sizeof agnostic, "%s/agnostic.safetensors", dir);
    snprintf(sensor, sizeof sensor, "%s/sensor.safetensors", dir);
    snprintf(bogus, sizeof bogus, "%s/bogus.safetensors", dir);
    CHECK(lumos__train_write_weights(ctx, kind, LUMOS_INPUT_AGNOSTIC, flat, 1, agnostic) == 0, "%s",
          lumos_last_error(ctx));
    /* as older files: no lumos_input at all */
    lumos__weights_entry e[16];
    const lumos__tensor_spec *t;
    size_t count = 0, at = 0;
    for (; (t = lumos__net_tensor(kind, count)); count++) {
        e[count] = (lumos__weights_entry){t->name, t->ndim, t->shape, flat + at};
        at += lumos__tensor_elements(t);
    }
    CHECK(lumos__weights_write(ctx, sensor, e, count, NULL) == 0, "%s", lumos_last_error(ctx));
    const char *meta[] = {"lumos_input", "infrared", NULL};
    CHECK(lumos__weights_write(ctx, bogus, e, count, meta) == 0, "%s", lumos_last_error(ctx));

    lumos_net *a = NULL, *s = NULL, *b = NULL;
    CHECK(lumos_net_load(ctx, kind->name, agnostic, &a) == LUMOS_OK, "%s", lumos_last_error(ctx));
    CHECK(lumos_net_load(ctx, kind->name, sensor, &s) == LUMOS_OK, "%s", lumos_last_error(ctx));
    CHECK(a && lumos_net_get_input(a) == LUMOS_INPUT_AGNOSTIC, "agnostic weights load as sensor");
    CHECK(s && lumos_net_get_input(s) == LUMOS_INPUT_SENSOR, "no metadata is not sensor");
    CHECK(a && lumos_net_takes_exposure(a), "trained weights must say they take the exposure");
    CHECK(s && !lumos_net_takes_exposure(s), "no metadata: no exposure");
    CHECK(lumos_net_load(ctx, kind->name, bogus, &b) == LUMOS_E_FORMAT, "unknown lumos_input accepted");
    CHECK(strstr(lumos_last_error(ctx), bogus) && strstr(lumos_last_error(ctx), "infrared"),
          "message: %s", lumos_last_error(ctx));
    if (a && s) {
        static uint16_t mosaic[W * H], canon[W * H];
        lumos_raw_info info, cinfo;
        made_up_sensor(&info, LUMOS_CFA_GRBG);
        for (int i = 0; i < W * H; i++)
            mosaic[i] = (uint16_t)(520 + lumos__rng_next(&rng) % 15000);
        lumos__agnostic_mosaic(ctx, mosaic, W, H, W * 2, &info, canon, &cinfo);
        lumos_raw *raw = NULL, *craw = NULL;
        lumos_raw_from_mosaic(ctx, mosaic, W, H, W * 2, &info, &raw);
        lumos_raw_from_mosaic(ctx, canon, W, H, W * 2, &cinfo, &craw);
        float *got = NULL, *want = NULL;
        size_t row_got = 0, row_want = 0;
        CHECK(raw && lumos__isp_learned_f32(ctx, a, raw, 0, &got, &row_got) == LUMOS_OK, "%s",
              lumos_last_error(ctx));
        CHECK(craw && lumos__isp_learned_f32(ctx, s, craw, 0, &want, &row_want) == LUMOS_OK, "%s",
              lumos_last_error(ctx));
        int differ = !got || !want || row_got != row_want;
        for (int y = 0; !differ && y < H; y++)
            differ = memcmp(got + y * row_got, want + y * row_want, W * 3 * sizeof(float)) != 0;
        CHECK(!differ, "the agnostic network is not the sensor network on the canonical mosaic");
        /* and it is not a no-op: on the sensor mosaic as is, it differs */
        float *plain = NULL;
        size_t row_plain = 0;
        lumos__isp_learned_f32(ctx, s, raw, 0, &plain, &row_plain);
        CHECK(plain && got && memcmp(plain, got, W * 3 * sizeof(float)) != 0, "no transform");
        free(got);
        free(want);
        free(plain);
        lumos_raw_free(raw);
        lumos_raw_free(craw);
    }
    lumos_net_free(a);
    lumos_net_free(s);
    lumos_net_free(b);
    unlink(agnostic);
    unlink(sensor);
    unlink(bogus);
    free(flat);
}

int main(void)
{
    lumos_ctx *ctx = lumos_ctx_new();
    if (!mkdtemp(dir)) return 1;
    identity_round_trip(ctx);
    flat_colours(ctx);
    dark_noise_unbiased(ctx);
    weights_mode(ctx);
    rmdir(dir);
    lumos_ctx_free(ctx);
    if (failures) fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
