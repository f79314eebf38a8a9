/* train_losses.c — the feature-space losses, chained from the pieces of
 * generators/losses/loss_generator.cpp: preprocessing, the twelve MobileNetV2
 * blocks and the five VGG-19 stages (forward, and backward from each
 * piece's input and output gradient), the discriminators. Activations are
 * kept per piece, so a backward pass re-runs only each piece's own
 * forward. */
#include "stages/train_losses.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lumos_disc_colour_g.h"
#include "lumos_disc_colour_p.h"
#include "lumos_disc_colour_r.h"
#include "lumos_disc_texture_deep_g.h"
#include "lumos_disc_texture_deep_p.h"
#include "lumos_disc_texture_deep_r.h"
#include "lumos_disc_texture_early_g.h"
#include "lumos_disc_texture_early_p.h"
#include "lumos_disc_texture_early_r.h"
#include "lumos_mbv2_b0_bwd.h"
#include "lumos_mbv2_b0_fwd.h"
#include "lumos_mbv2_b10_bwd.h"
#include "lumos_mbv2_b10_fwd.h"
#include "lumos_mbv2_b11_bwd.h"
#include "lumos_mbv2_b11_fwd.h"
#include "lumos_mbv2_b1_bwd.h"
#include "lumos_mbv2_b1_fwd.h"
#include "lumos_mbv2_b2_bwd.h"
#include "lumos_mbv2_b2_fwd.h"
#include "lumos_mbv2_b3_bwd.h"
#include "lumos_mbv2_b3_fwd.h"
#include "lumos_mbv2_b4_bwd.h"
#include "lumos_mbv2_b4_fwd.h"
#include "lumos_mbv2_b5_bwd.h"
#include "lumos_mbv2_b5_fwd.h"
#include "lumos_mbv2_b6_bwd.h"
#include "lumos_mbv2_b6_fwd.h"
#include "lumos_mbv2_b7_bwd.h"
#include "lumos_mbv2_b7_fwd.h"
#include "lumos_mbv2_b8_bwd.h"
#include "lumos_mbv2_b8_fwd.h"
#include "lumos_mbv2_b9_bwd.h"
#include "lumos_mbv2_b9_fwd.h"
#include "lumos_pre_blur_bwd.h"
#include "lumos_pre_blur_fwd.h"
#include "lumos_pre_lightness_bwd.h"
#include "lumos_pre_lightness_fwd.h"
#include "lumos_pre_vgg_lightness_bwd.h"
#include "lumos_pre_vgg_lightness_fwd.h"
#include "lumos_vgg19_s0_bwd.h"
#include "lumos_vgg19_s0_fwd.h"
#include "lumos_vgg19_s1_bwd.h"
#include "lumos_vgg19_s1_fwd.h"
#include "lumos_vgg19_s2_bwd.h"
#include "lumos_vgg19_s2_fwd.h"
#include "lumos_vgg19_s3_bwd.h"
#include "lumos_vgg19_s3_fwd.h"
#include "lumos_vgg19_s4_bwd.h"
#include "lumos_vgg19_s4_fwd.h"
#include "core/context.h"
#include "stages/chain.h"
#include "stages/halide_glue.h"

enum { BLOCKS = 12, TAP_EARLY = 1, TAP_DEEP = 7, TAP_LAST = 11, VGG_STAGES = 5 };
enum { MAX_PIECES = BLOCKS }; /* of any feature network */

typedef int (*block_fn)(void const *, struct halide_buffer_t *, struct halide_buffer_t *,
                        struct halide_buffer_t *, struct halide_buffer_t *);
typedef int (*pre_fn)(void const *, struct halide_buffer_t *, struct halide_buffer_t *,
                      struct halide_buffer_t *);
typedef int (*disc_fn)(void const *, struct halide_buffer_t *, struct halide_buffer_t *,
                       struct halide_buffer_t *, struct halide_buffer_t *, float, float,
                       struct halide_buffer_t *, struct halide_buffer_t *, struct halide_buffer_t *,
                       struct halide_buffer_t *);

static const block_fn block_fwd[BLOCKS] = {
    lumos_mbv2_b0_fwd, lumos_mbv2_b1_fwd, lumos_mbv2_b2_fwd, lumos_mbv2_b3_fwd,
    lumos_mbv2_b4_fwd, lumos_mbv2_b5_fwd, lumos_mbv2_b6_fwd, lumos_mbv2_b7_fwd,
    lumos_mbv2_b8_fwd, lumos_mbv2_b9_fwd, lumos_mbv2_b10_fwd, lumos_mbv2_b11_fwd};
static const block_fn block_bwd[BLOCKS] = {
    lumos_mbv2_b0_bwd, lumos_mbv2_b1_bwd, lumos_mbv2_b2_bwd, lumos_mbv2_b3_bwd,
    lumos_mbv2_b4_bwd, lumos_mbv2_b5_bwd, lumos_mbv2_b6_bwd, lumos_mbv2_b7_bwd,
    lumos_mbv2_b8_bwd, lumos_mbv2_b9_bwd, lumos_mbv2_b10_bwd, lumos_mbv2_b11_bwd};
/* features[i]: output channels and stride (generators/features.h) */
static const int block_cout[BLOCKS] = {32, 16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96};
static const int block_stride[BLOCKS] = {2, 1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1};
static const block_fn stage_fwd[VGG_STAGES] = {lumos_vgg19_s0_fwd, lumos_vgg19_s1_fwd,
                                               lumos_vgg19_s2_fwd, lumos_vgg19_s3_fwd,
                                               lumos_vgg19_s4_fwd};
static const block_fn stage_bwd[VGG_STAGES] = {lumos_vgg19_s0_bwd, lumos_vgg19_s1_bwd,
                                               lumos_vgg19_s2_bwd, lumos_vgg19_s3_bwd,
                                               lumos_vgg19_s4_bwd};
/* VGG-19 stage s: its width, and its max pool first (s > 0) */
static const int stage_cout[VGG_STAGES] = {64, 128, 256, 512, 512};
static const int stage_stride[VGG_STAGES] = {1, 2, 2, 2, 2};

/* A frozen feature network as its pipelines, one per piece, and the
 * preprocessing its content term puts the images through. */
typedef struct feature_net {
    int net; /* LUMOS__NET_* */
    int pieces;
    const block_fn *fwd, *bwd;
    const int *cout, *stride;
    int round_up; /* a stride's output side: TF "same" convs round up, max pools down */
    pre_fn pre_fwd, pre_bwd;
    const char *what, *what_grad; /* for errors */
} feature_net;

static const feature_net mobilenet = {LUMOS__NET_MOBILENET, BLOCKS, block_fwd, block_bwd,
                                      block_cout, block_stride, 1, lumos_pre_lightness_fwd,
                                      lumos_pre_lightness_bwd, "feature network",
                                      "feature network gradient"};
static const feature_net vgg19 = {LUMOS__NET_VGG19, VGG_STAGES, stage_fwd, stage_bwd,
                                  stage_cout, stage_stride, 0, lumos_pre_vgg_lightness_fwd,
                                  lumos_pre_vgg_lightness_bwd, "VGG-19", "VGG-19 gradient"};

/* A feature map (c, w, h), interleaved: the chain runtime's activation. */
typedef lumos__act fmap;

static size_t fmap_size(const fmap *m) { return (size_t)m->c * m->w * m->h; }

int lumos__feature_size(int n, int deep)
{
    for (int i = 0; i < (deep ? 4 : 1); i++) n = (n + 1) / 2;
    return n;
}

static const lumos__tensor_entry loss_tensors[] = {
#define LUMOS_TENSOR LUMOS__TENSOR_ENTRY
#include "generators/losses/tensors.def"
#undef LUMOS_TENSOR
};

const lumos__net_def *lumos__loss_net(int id)
{
#define LOSS_NET(name) {name, "loss", name, loss_tensors, sizeof loss_tensors / sizeof *loss_tensors, NULL, NULL}
    static const lumos__net_def nets[] = {LOSS_NET("mobilenet"), LOSS_NET("vgg19"),
                                          LOSS_NET("disc_texture_early"),
                                          LOSS_NET("disc_texture_deep"), LOSS_NET("disc_colour")};
#undef LOSS_NET
    return id >= 0 && id < (int)(sizeof nets / sizeof nets[0]) ? &nets[id] : NULL;
}

static int count(int net) { return (int)lumos__net_weight_count(lumos__loss_net(net)); }

static int check(lumos_ctx *ctx, int width, int height, const char *what)
{
    lumos__halide_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return lumos__fail(ctx, LUMOS_E_UNSUPPORTED, "%s: training needs a CPU with AVX2 and FMA", what);
    if (width < 16 || height < 16)
        return lumos__fail(ctx, LUMOS_E_ARG, "%s: crops must be at least 16×16 (got %d×%d)", what,
                           width, height);
    lumos__clear_error(ctx);
    return LUMOS_OK;
}

/* ---------------------------------------------------------- pieces */

static int preprocess(lumos_ctx *ctx, pre_fn fn, const float *image, const float *grad, int w,
                      int h, float *result)
{
    halide_buffer_t bi, bg, br;
    halide_dimension_t di[3], dg[3], dr[3];
    lumos__hl_buffer_cxy(&bi, di, image, 3, w, h);
    lumos__hl_buffer_cxy(&bg, dg, grad ? grad : image, 3, w, h);
    lumos__hl_buffer_cxy(&br, dr, result, 3, w, h);
    return lumos__hl_status(ctx, fn(ctx, &bi, &bg, &br), "loss preprocessing");
}

/* The activations of one image through pieces 0..last of a network, on
 * the chain runtime (stages/chain.h): tape.act[0] the preprocessed image
 * (borrowed), tape.act[i + 1] piece i's output. */
typedef struct features_run {
    const feature_net *net;
    const float *weights;
    lumos__piece_chain chain;
    lumos__chain_tape tape;
} features_run;

static void features_free(features_run *r)
{
    if (r->net) lumos__chain_tape_free(&r->tape);
    memset(r, 0, sizeof *r);
}

static void piece_shape(void *user, int i, const lumos__act *in, lumos__act *out)
{
    const feature_net *net = ((const features_run *)user)->net;
    int s = net->stride[i], up = net->round_up ? s - 1 : 0;
    *out = (lumos__act){NULL, net->cout[i], (in->w + up) / s, (in->h + up) / s};
}

static int piece_forward(void *user, lumos_ctx *ctx, int i, const lumos__act *in, lumos__act *out)
{
    const features_run *r = user;
    halide_buffer_t bw, bi, bo;
    halide_dimension_t dw, di[3], dout[3];
    lumos__hl_buffer_1d(&bw, &dw, r->weights, count(r->net->net));
    lumos__hl_buffer_cxy(&bi, di, in->data, in->c, in->w, in->h);
    lumos__hl_buffer_cxy(&bo, dout, out->data, out->c, out->w, out->h);
    return lumos__hl_status(ctx, r->net->fwd[i](ctx, &bi, &bw, &bo, &bo), r->net->what);
}

static int piece_backward(void *user, lumos_ctx *ctx, int i, const lumos__act *in,
                          const lumos__act *grad_out, lumos__act *grad_in)
{
    const features_run *r = user;
    halide_buffer_t bw, bi, bg, bo;
    halide_dimension_t dw, di[3], dg[3], dout[3];
    lumos__hl_buffer_1d(&bw, &dw, r->weights, count(r->net->net));
    lumos__hl_buffer_cxy(&bi, di, in->data, in->c, in->w, in->h);
    lumos__hl_buffer_cxy(&bg, dg, grad_out->data, grad_out->c, grad_out->w, grad_out->h);
    lumos__hl_buffer_cxy(&bo, dout, grad_in->data, grad_in->c, grad_in->w, grad_in->h);
    return lumos__hl_status(ctx, r->net->bwd[i](ctx, &bi, &bw, &bg, &bo), r->net->what_grad);
}

static int features_forward(lumos_ctx *ctx, const feature_net *net, const float *weights,
                            float *pre, int w, int h, int last, features_run *r)
{
    memset(r, 0, sizeof *r);
    r->net = net;
    r->weights = weights;
    r->chain = (lumos__piece_chain){net->pieces, piece_shape, piece_forward, piece_backward, r};
    return lumos__chain_forward(ctx, &r->chain, (lumos__act){pre, 3, w, h}, last, &r->tape);
}

/* dL/d(preprocessed image) from dL/d(piece i's output) given for some
 * pieces (seed[i], NULL for none), into grad_pre (3 × w × h). */
static int features_backward(lumos_ctx *ctx, const features_run *r, float *const seed[MAX_PIECES],
                             float *grad_pre)
{
    return lumos__chain_backward(ctx, &r->tape, seed, grad_pre);
}

/* A discriminator's pipeline: g (score, dD/d(map)), p (also D's state
 * there: its LeakyReLUs' inputs and their gradients), r (α ∇θD + β ∇θ(∇D ·
 * dir) from that state), generators/loss_generator.cpp. */
enum disc_mode { DISC_G, DISC_P, DISC_R };

static disc_fn disc_pipeline(int net, enum disc_mode mode)
{
    static const disc_fn fns[3][3] = {
        {lumos_disc_texture_early_g, lumos_disc_texture_early_p, lumos_disc_texture_early_r},
        {lumos_disc_texture_deep_g, lumos_disc_texture_deep_p, lumos_disc_texture_deep_r},
        {lumos_disc_colour_g, lumos_disc_colour_p, lumos_disc_colour_r}};
    const int row = net == LUMOS__NET_DISC_TEXTURE_EARLY ? 0 : net == LUMOS__NET_DISC_TEXTURE_DEEP ? 1 : 2;
    return fns[row][mode];
}

size_t lumos__disc_state_size(int net, int map_w, int map_h)
{
    /* the LeakyReLUs' inputs, layer by layer (generators/loss_generator.cpp
     * disc_layers): texture conv1 5×5 s2, conv2 3×3 s2, conv3, conv4,
     * conv5 3×3 s2, fc1; colour fc1, fc2 at the map's size; then their
     * gradients, as many */
    if (net == LUMOS__NET_DISC_COLOUR) return (size_t)2 * 2 * 512 * map_w * map_h;
    static const int ch[6] = {48, 128, 192, 192, 128, 1024}, stride[6] = {2, 2, 1, 1, 2, 1};
    size_t n = 0;
    int w = map_w, h = map_h;
    for (int l = 0; l < 6; l++) {
        w = (w - 1) / stride[l] + 1; /* padding k/2: ceil(w / s) */
        h = (h - 1) / stride[l] + 1;
        n += (size_t)ch[l] * w * h;
    }
    return 2 * n;
}

/* One discriminator call on a feature map `in`, as the mode gives them:
 * score, dD/d(map) (grad_in), D's state (out for mode p, in for mode r;
 * lumos__disc_state_size floats) and mode r's gradient (params) along
 * dir (shaped as in). */
static int discriminate(lumos_ctx *ctx, int net, enum disc_mode mode, const float *weights,
                        const fmap *in, const float *dir, float *state, float alpha, float beta,
                        float *score, float *grad_in, float *params)
{
    float unused[1] = {0}, no_dir[LUMOS__TAP_LAST_CHANNELS] = {0},
          no_grad_in[LUMOS__TAP_LAST_CHANNELS] = {0};
    const int n_state = mode == DISC_G ? 1 : (int)lumos__disc_state_size(net, in->w, in->h);
    halide_buffer_t bi, bd, bsi, bw, bs, bg, bp, bso;
    halide_dimension_t di[3], dd[3], dsi, dw, ds, dg[3], dp[3], dso;
    lumos__hl_buffer_cxy(&bi, di, in->data, in->c, in->w, in->h);
    if (mode == DISC_R) lumos__hl_buffer_cxy(&bd, dd, dir, in->c, in->w, in->h);
    else lumos__hl_buffer_cxy(&bd, dd, no_dir, in->c, 1, 1);
    lumos__hl_buffer_1d(&bsi, &dsi, mode == DISC_R ? state : unused, mode == DISC_R ? n_state : 1);
    lumos__hl_buffer_1d(&bw, &dw, weights, count(net));
    lumos__hl_buffer_1d(&bs, &ds, mode == DISC_R ? unused : score, 1);
    if (mode == DISC_R) lumos__hl_buffer_cxy(&bg, dg, no_grad_in, in->c, 1, 1); /* no dD/d(map) */
    else lumos__hl_buffer_cxy(&bg, dg, grad_in, in->c, in->w, in->h);
    lumos__hl_buffer_cxy(&bp, dp, mode == DISC_R ? params : unused, mode == DISC_R ? count(net) : 1, 1, 1);
    lumos__hl_buffer_1d(&bso, &dso, mode == DISC_P ? state : unused, mode == DISC_P ? n_state : 1);
    return lumos__hl_status(ctx, disc_pipeline(net, mode)(ctx, &bi, &bd, &bsi, &bw, alpha, beta, &bs,
                                                          &bg, &bp, &bso),
                            "discriminator");
}

static float softplus(float z) { return fmaxf(z, 0.f) + log1pf(expf(-fabsf(z))); }
static float sigmoid(float z) { return 1.f / (1.f + expf(-z)); }

/* ---------------------------------------------------------- the stages */

/* The content term: mean squared distance of net's last features of out
 * and ref (each through net's preprocessing), into *loss, and weight · its
 * gradient added into grad_out. scratch: four images. */
static int content_term(lumos_ctx *ctx, const feature_net *net, const float *weights, int w, int h,
                        const float *out, const float *ref, float weight, float *const scratch[4],
                        float *loss, float *grad_out)
{
    const size_t n_img = (size_t)3 * w * h;
    const int tap = net->pieces - 1;
    float *pre = scratch[0], *pre_ref = scratch[1], *grad_pre = scratch[2], *grad_img = scratch[3];
    float *seed[MAX_PIECES] = {0};
    features_run run = {0}, run_ref = {0};
    int rc = preprocess(ctx, net->pre_fwd, out, NULL, w, h, pre);
    if (!rc) rc = features_forward(ctx, net, weights, pre, w, h, tap, &run);
    if (!rc) rc = preprocess(ctx, net->pre_fwd, ref, NULL, w, h, pre_ref);
    if (!rc) rc = features_forward(ctx, net, weights, pre_ref, w, h, tap, &run_ref);
    if (!rc) {
        const fmap *a = &run.tape.act[tap + 1], *b = &run_ref.tape.act[tap + 1];
        size_t n = fmap_size(a);
        seed[tap] = malloc(n * sizeof(float));
        if (!seed[tap]) rc = lumos__fail(ctx, LUMOS_E_NOMEM, "training losses: out of memory");
        double sum = 0;
        for (size_t k = 0; !rc && k < n; k++) {
            float d = a->data[k] - b->data[k];
            sum += (double)d * d;
            seed[tap][k] = weight * 2.f * d / (float)n;
        }
        *loss = (float)(sum / (double)n);
    }
    if (!rc) rc = features_backward(ctx, &run, seed, grad_pre);
    if (!rc) rc = preprocess(ctx, net->pre_bwd, out, grad_pre, w, h, grad_img);
    for (size_t i = 0; !rc && i < n_img; i++) grad_out[i] += grad_img[i];
    free(seed[tap]);
    features_free(&run);
    features_free(&run_ref);
    return rc;
}

int lumos__stage_g_losses(lumos_ctx *ctx, int width, int height, const float *out,
                          const float *ref, const float *features, const float *content_vgg,
                          const float *d_early, const float *d_deep, const float *d_colour,
                          const float d_real[3], const float term_weight[4], float losses[4],
                          float *grad_out, float *out_maps[3])
{
    if (out_maps) out_maps[0] = out_maps[1] = out_maps[2] = NULL;
    int rc = check(ctx, width, height, "training losses");
    if (rc) return rc;
    const size_t n_img = (size_t)3 * width * height;
    const int want_texture = term_weight[1] != 0 || term_weight[2] != 0;
    const int want_blur = term_weight[3] != 0;
    memset(losses, 0, 4 * sizeof *losses);
    memset(grad_out, 0, n_img * sizeof *grad_out);
    float *pre = malloc(n_img * sizeof *pre), *pre_ref = malloc(n_img * sizeof *pre),
          *grad_pre = malloc(n_img * sizeof *pre), *grad_img = malloc(n_img * sizeof *pre);
    float *seed[BLOCKS] = {0};
    features_run run = {0};
    if (!pre || !pre_ref || !grad_pre || !grad_img)
        rc = lumos__fail(ctx, LUMOS_E_NOMEM, "training losses: out of memory");

    if (rc == LUMOS_OK && term_weight[0] != 0) {
        float *const scratch[4] = {pre, pre_ref, grad_pre, grad_img};
        rc = content_term(ctx, content_vgg ? &vgg19 : &mobilenet, content_vgg ? content_vgg : features,
                          width, height, out, ref, term_weight[0], scratch, &losses[0], grad_out);
    }
    if (rc == LUMOS_OK && want_texture) {
        rc = preprocess(ctx, lumos_pre_lightness_fwd, out, NULL, width, height, pre);
        if (!rc) rc = features_forward(ctx, &mobilenet, features, pre, width, height, TAP_DEEP, &run);
        /* texture: each D's relativistic loss on the fake, seeded
         * w · dL/dD(fake) = −w · σ(D(real) − D(fake)) */
        const int taps[2] = {TAP_EARLY, TAP_DEEP};
        const int nets[2] = {LUMOS__NET_DISC_TEXTURE_EARLY, LUMOS__NET_DISC_TEXTURE_DEEP};
        const float *dw[2] = {d_early, d_deep};
        for (int k = 0; k < 2 && !rc; k++) {
            if (term_weight[1 + k] == 0) continue;
            const fmap *f = &run.tape.act[taps[k] + 1];
            float score = 0;
            seed[taps[k]] = malloc(fmap_size(f) * sizeof(float));
            if (!seed[taps[k]]) rc = lumos__fail(ctx, LUMOS_E_NOMEM, "training losses: out of memory");
            if (!rc) rc = discriminate(ctx, nets[k], DISC_G, dw[k], f, NULL, NULL, 0, 0, &score, seed[taps[k]], NULL);
            if (rc) break;
            losses[1 + k] = softplus(-(score - d_real[k]));
            float a = -term_weight[1 + k] * sigmoid(d_real[k] - score);
            for (size_t i = 0; i < fmap_size(f); i++) seed[taps[k]][i] *= a;
        }
        if (!rc) rc = features_backward(ctx, &run, seed, grad_pre);
        if (!rc) rc = preprocess(ctx, lumos_pre_lightness_bwd, out, grad_pre, width, height, grad_img);
        for (size_t i = 0; !rc && i < n_img; i++) grad_out[i] += grad_img[i];
        for (int k = 0; !rc && out_maps && k < 2; k++) { /* taken out of the run */
            out_maps[k] = run.tape.act[taps[k] + 1].data;
            run.tape.act[taps[k] + 1].data = NULL;
        }
    }
    if (rc == LUMOS_OK && want_blur) {
        features_free(&run);
        for (int i = 0; i < BLOCKS; i++) {
            free(seed[i]);
            seed[i] = NULL;
        }
        rc = preprocess(ctx, lumos_pre_blur_fwd, out, NULL, width, height, pre);
        if (!rc) rc = features_forward(ctx, &mobilenet, features, pre, width, height, TAP_LAST, &run);
        const fmap *f = &run.tape.act[TAP_LAST + 1];
        float score = 0;
        if (!rc) {
            seed[TAP_LAST] = malloc(fmap_size(f) * sizeof(float));
            if (!seed[TAP_LAST]) rc = lumos__fail(ctx, LUMOS_E_NOMEM, "training losses: out of memory");
        }
        if (!rc) rc = discriminate(ctx, LUMOS__NET_DISC_COLOUR, DISC_G, d_colour, f, NULL, NULL, 0, 0,
                                   &score, seed[TAP_LAST], NULL);
        if (!rc) {
            losses[3] = softplus(-(score - d_real[2]));
            float a = -term_weight[3] * sigmoid(d_real[2] - score);
            for (size_t i = 0; i < fmap_size(f); i++) seed[TAP_LAST][i] *= a;
            rc = features_backward(ctx, &run, seed, grad_pre);
        }
        if (!rc) rc = preprocess(ctx, lumos_pre_blur_bwd, out, grad_pre, width, height, grad_img);
        for (size_t i = 0; !rc && i < n_img; i++) grad_out[i] += grad_img[i];
        if (!rc && out_maps) {
            out_maps[2] = run.tape.act[TAP_LAST + 1].data;
            run.tape.act[TAP_LAST + 1].data = NULL;
        }
    }
    if (rc && out_maps)
        for (int k = 0; k < 3; k++) {
            free(out_maps[k]);
            out_maps[k] = NULL;
        }
    features_free(&run);
    for (int i = 0; i < BLOCKS; i++) free(seed[i]);
    free(pre);
    free(pre_ref);
    free(grad_pre);
    free(grad_img);
    return rc;
}

void lumos__disc_map_shape(int net, int width, int height, int *c, int *w, int *h)
{
    const int deep = net != LUMOS__NET_DISC_TEXTURE_EARLY;
    *c = net == LUMOS__NET_DISC_TEXTURE_EARLY  ? LUMOS__TAP_EARLY_CHANNELS
         : net == LUMOS__NET_DISC_TEXTURE_DEEP ? LUMOS__TAP_DEEP_CHANNELS
                                               : LUMOS__TAP_LAST_CHANNELS;
    *w = lumos__feature_size(width, deep);
    *h = lumos__feature_size(height, deep);
}

int lumos__stage_d_maps(lumos_ctx *ctx, int colour, int width, int height, const float *image,
                       const float *features, float *maps[2])
{
    maps[0] = maps[1] = NULL;
    int rc = check(ctx, width, height, colour ? "colour discriminator" : "texture discriminators");
    if (rc) return rc;
    float *pre = malloc((size_t)3 * width * height * sizeof *pre);
    if (!pre) return lumos__fail(ctx, LUMOS_E_NOMEM, "discriminators: out of memory");
    features_run run = {0};
    rc = preprocess(ctx, colour ? lumos_pre_blur_fwd : lumos_pre_lightness_fwd, image, NULL, width,
                    height, pre);
    if (!rc)
        rc = features_forward(ctx, &mobilenet, features, pre, width, height,
                              colour ? TAP_LAST : TAP_DEEP, &run);
    const int taps[2] = {colour ? TAP_LAST : TAP_EARLY, TAP_DEEP};
    for (int k = 0; !rc && k < (colour ? 1 : 2); k++) {
        /* keep the tap's activation: taken out of the run before it is freed */
        fmap *m = &run.tape.act[taps[k] + 1];
        maps[k] = m->data;
        m->data = NULL;
    }
    features_free(&run);
    free(pre);
    if (rc) {
        free(maps[0]);
        free(maps[1]);
        maps[0] = maps[1] = NULL;
    }
    return rc;
}

static fmap map_of(int net, int width, int height, const float *map)
{
    fmap m = {(float *)map, 0, 0, 0};
    lumos__disc_map_shape(net, width, height, &m.c, &m.w, &m.h);
    return m;
}

int lumos__stage_discriminate_at(lumos_ctx *ctx, int net, int width, int height,
                                 const float *d_weights, const float *map, float *score,
                                 float *input_grad, float *state)
{
    fmap at = map_of(net, width, height, map);
    return discriminate(ctx, net, DISC_P, d_weights, &at, NULL, state, 0, 0, score, input_grad, NULL);
}

int lumos__stage_discriminate_params(lumos_ctx *ctx, int net, int width, int height,
                                     const float *d_weights, const float *map, const float *state,
                                     const float *dir, float alpha, float beta, float *grad)
{
    fmap at = map_of(net, width, height, map);
    return discriminate(ctx, net, DISC_R, d_weights, &at, dir, (float *)state, alpha, beta, NULL,
                        NULL, grad);
}

int lumos__stage_discriminate(lumos_ctx *ctx, int net, int width, int height,
                              const float *d_weights, const float *map, const float *perturb,
                              float eps, float *score, float *grad, float *input_grad)
{
    fmap at = map_of(net, width, height, map);
    if (!grad && !perturb)
        return discriminate(ctx, net, DISC_G, d_weights, &at, NULL, NULL, 0, 0, score, input_grad, NULL);
    float *state = malloc(lumos__disc_state_size(net, at.w, at.h) * sizeof *state);
    int rc = state ? LUMOS_OK : lumos__fail(ctx, LUMOS_E_NOMEM, "discriminator: out of memory");
    if (!rc) rc = discriminate(ctx, net, DISC_P, d_weights, &at, NULL, state, 0, 0, score, input_grad, NULL);
    /* D linearised at the map is affine in its input: at map + eps·perturb
     * its score moves by eps ∇D · perturb and its θ-gradient by
     * eps ∇θ(∇D · perturb), its input gradient not at all */
    if (!rc && perturb) {
        double moved = 0;
        for (size_t i = 0; i < fmap_size(&at); i++) moved += (double)input_grad[i] * perturb[i];
        *score += (float)(eps * moved);
    }
    if (!rc && grad)
        rc = discriminate(ctx, net, DISC_R, d_weights, &at, perturb ? perturb : map, state, 1.f,
                          perturb ? eps : 0.f, NULL, NULL, grad);
    free(state);
    return rc;
}

int lumos__stage_d_texture(lumos_ctx *ctx, int width, int height, const float *image,
                           const float *features, const float *d_early, const float *d_deep,
                           const float *perturb_early, const float *perturb_deep, float eps,
                           float scores[2], float *grad_early, float *grad_deep,
                           float *input_early, float *input_deep)
{
    float *maps[2];
    int rc = lumos__stage_d_maps(ctx, 0, width, height, image, features, maps);
    if (!rc)
        rc = lumos__stage_discriminate(ctx, LUMOS__NET_DISC_TEXTURE_EARLY, width, height, d_early,
                                       maps[0], eps != 0 ? perturb_early : NULL, eps, &scores[0],
                                       grad_early, input_early);
    if (!rc)
        rc = lumos__stage_discriminate(ctx, LUMOS__NET_DISC_TEXTURE_DEEP, width, height, d_deep,
                                       maps[1], eps != 0 ? perturb_deep : NULL, eps, &scores[1],
                                       grad_deep, input_deep);
    free(maps[0]);
    free(maps[1]);
    return rc;
}

int lumos__stage_d_colour(lumos_ctx *ctx, int width, int height, const float *image,
                          const float *features, const float *d_colour, const float *perturb,
                          float eps, float *score, float *grad, float *input_grad)
{
    float *maps[2];
    int rc = lumos__stage_d_maps(ctx, 1, width, height, image, features, maps);
    if (!rc)
        rc = lumos__stage_discriminate(ctx, LUMOS__NET_DISC_COLOUR, width, height, d_colour, maps[0],
                                       eps != 0 ? perturb : NULL, eps, score, grad, input_grad);
    free(maps[0]);
    return rc;
}
