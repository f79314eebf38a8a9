/* train_losses.h — the feature-space loss pipelines of unpaired training
 * (generators/losses/loss_generator.cpp) bound to plain float images.
 *
 * Images are width×height×3 floats, interleaved, rows packed. Feature maps
 * are (channels, fw, fh) interleaved likewise, at the sizes of
 * lumos__feature_size. Weights are flat buffers in generators/losses/tensors.def order:
 * `features` the MobileNetV2 (LUMOS__NET_MOBILENET), `content_vgg` a VGG-19
 * (LUMOS__NET_VGG19), the discriminators LUMOS__NET_DISC_TEXTURE_EARLY,
 * _DEEP and _COLOUR. All need AVX2 + FMA (LUMOS_E_UNSUPPORTED otherwise). */
#ifndef LUMOS_STAGE_TRAIN_LOSSES_H
#define LUMOS_STAGE_TRAIN_LOSSES_H

#include "lumos.h"
#include "stages/nets.h"

/* The loss networks of training (generators/losses/): the frozen feature
 * networks and the discriminators. They are in no production table. */
enum {
    LUMOS__NET_MOBILENET,
    LUMOS__NET_VGG19,
    LUMOS__NET_DISC_TEXTURE_EARLY,
    LUMOS__NET_DISC_TEXTURE_DEEP,
    LUMOS__NET_DISC_COLOUR
};
const lumos__net_def *lumos__loss_net(int id);

enum {
    LUMOS__TAP_EARLY_CHANNELS = 16, /* features[1], 1/2 resolution */
    LUMOS__TAP_DEEP_CHANNELS = 64,  /* features[7], 1/16 */
    LUMOS__TAP_LAST_CHANNELS = 96   /* features[11], 1/16 */
};

/* Width (or height) of the early (1/2) or deep (1/16) feature maps of an
 * image side n: TF "same" stride-2 convs round up. */
int lumos__feature_size(int n, int deep);

/* The generator's side for one sample: losses[0] content (mean squared
 * distance of features of the luminance images, against `ref`: the
 * classical render, or the aligned photo for the perceptual term; with
 * content_vgg, VGG-19's relu5_4 of L* / 100 normalised as torchvision's
 * ImageNet inputs; without (NULL), MobileNetV2's features[11] of the
 * lightness images), [1] texture-early, [2] texture-deep, [3] colour (the
 * relativistic softplus(D(real) − D(fake)), d_real[3] the paired real
 * image's scores), and grad_out = Σ term_weight[i] · dL_i/d(out). Only the
 * terms of nonzero weight are computed; the others' losses are 0. out_maps
 * (may be NULL): the feature maps of `out` the discriminators scored, as
 * lumos__stage_d_maps gives them (malloc'ed; [0], [1] texture's, [2]
 * colour's; NULL where that term was not computed), for the D step. */
int lumos__stage_g_losses(lumos_ctx *ctx, int width, int height, const float *out,
                          const float *ref, const float *features, const float *content_vgg,
                          const float *d_early, const float *d_deep, const float *d_colour,
                          const float d_real[3], const float term_weight[4], float losses[4],
                          float *grad_out, float *out_maps[3]);

/* The feature maps a term's discriminators score, of one image: texture
 * (colour 0) maps[0] = features[1] (16 × early map) and maps[1] =
 * features[7] (64 × deep) of its lightness; colour (1) maps[0] =
 * features[11] (96 × deep) of it blurred, maps[1] NULL. malloc'ed. */
int lumos__stage_d_maps(lumos_ctx *ctx, int colour, int width, int height, const float *image,
                        const float *features, float *maps[2]);

/* The feature map discriminator `net` (LUMOS__NET_DISC_*) scores, for a
 * width×height image: its channels *c and size *w × *h. */
void lumos__disc_map_shape(int net, int width, int height, int *c, int *w, int *h);

/* Discriminator `net` (LUMOS__NET_DISC_*) on map + eps·perturb (perturb
 * NULL: map itself), linearised at map, map being that of a width×height
 * image: its score, dD/d(input) into input_grad (the map's size) and, when
 * grad is not NULL, dD/dθ (the cheaper score-and-input pipeline when it is). */
int lumos__stage_discriminate(lumos_ctx *ctx, int net, int width, int height,
                              const float *d_weights, const float *map, const float *perturb,
                              float eps, float *score, float *grad, float *input_grad);

/* The D step's two passes per image (train/adversarial.c). _at: D at the
 * map: its score, dD/d(input) and D's state there (each LeakyReLU's input
 * and its gradient: lumos__disc_state_size floats for the map's w × h).
 * _params, from that state: grad = α ∇θD(map) + β ∇θ(∇D(map) · dir), dir
 * shaped as the map and held fixed; with dir = ∇D, β = γ gives R1's (or
 * R2's) θ-gradient γ/2 ∂‖∇D‖²/∂θ exactly (D is piecewise linear). */
int lumos__stage_discriminate_at(lumos_ctx *ctx, int net, int width, int height,
                                 const float *d_weights, const float *map, float *score,
                                 float *input_grad, float *state);
int lumos__stage_discriminate_params(lumos_ctx *ctx, int net, int width, int height,
                                     const float *d_weights, const float *map, const float *state,
                                     const float *dir, float alpha, float beta, float *grad);
size_t lumos__disc_state_size(int net, int map_w, int map_h);

/* Both texture discriminators on one image (lumos__stage_d_maps, then
 * lumos__stage_discriminate): scores[2] of D(F + eps·perturb)
 * with each D linearised at F (its LeakyReLU slopes taken from D(F), as
 * R1/R2's tangent map is, train/adversarial.h),
 * their parameter gradients (grad_early, grad_deep: each discriminator's
 * count; both NULL: scores and input gradients only, by the cheaper
 * pipelines) and input gradients (input_early: 16 × early map, input_deep:
 * 64 × deep map). perturb_* may be NULL when eps is 0. */
int lumos__stage_d_texture(lumos_ctx *ctx, int width, int height, const float *image,
                           const float *features, const float *d_early, const float *d_deep,
                           const float *perturb_early, const float *perturb_deep, float eps,
                           float scores[2], float *grad_early, float *grad_deep,
                           float *input_early, float *input_deep);

/* The colour discriminator on one image (blurred): as above, 96 × deep map
 * (grad NULL: score and input gradient only). */
int lumos__stage_d_colour(lumos_ctx *ctx, int width, int height, const float *image,
                          const float *features, const float *d_colour, const float *perturb,
                          float eps, float *score, float *grad, float *input_grad);

#endif
