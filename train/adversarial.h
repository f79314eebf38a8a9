/* adversarial.h — the unpaired method's feature-space loss terms for the
 * trainer (train/trainer.h), on the Halide pipelines of
 * stages/train_losses.h:
 *
 *   "content"  mean squared distance of MobileNetV2 features[11] between
 *              the lightness (CIE L*) of the output and of the classical
 *              render of the same mosaic; with content_features, of VGG-19
 *              relu5_4 (the method's) of L* / 100 in torchvision's input
 *              convention (ImageNet mean and std);
 *   "texture"  the relativistic pairing GAN loss of two discriminators on
 *              features[1] and features[7] of the lightness images;
 *   "colour"   the same with one discriminator on features[11] of images
 *              blurred by a 21×21 Gaussian (σ 3);
 *   "perceptual" (paired mode) as content (the same network), against the
 *              aligned target photo.
 *
 * The generator's loss of a discriminator D on a pair (real r, fake f) is
 * softplus(−(D(f) − D(r))); D's loss is softplus(−(D(r) − D(f))) +
 * γ/2 (R1 + R2), R1 = ‖∇D(r)‖², R2 = ‖∇D(f)‖² (gradients with respect to
 * D's input, the feature map), γ = 10. R1's parameter gradient is a
 * gradient of a gradient:
 *     ∂R1/∂θ = 2 ∂/∂θ (∇D(r) · v)|v fixed,   v = ∇D(r).
 * D is piecewise linear (convs and LeakyReLUs), so where its gates (each
 * LeakyReLU's side) hold, ∇D · v is D's tangent map of v: v carried forward
 * through the convs without their biases and the gates' slopes. Its
 * θ-gradient is then, per conv, the conv's output gradient (the same as
 * D's own) times the tangent map at its input, where D's own has the
 * activation: both are one weight gradient against α·activation + γ·tangent
 * (lumos__stage_discriminate_params), from one pass of D at the map — what
 * double backward gives (tests/test_losses.c checks against PyTorch's).
 * Each image's feature maps are computed once a pair.
 * Discriminators start from PyTorch's default init (seeded) and are
 * trainer parameter groups ("D_texture_early", "D_texture_deep",
 * "D_colour"), so checkpoints carry them. */
#ifndef LUMOS_TRAIN_ADVERSARIAL_H
#define LUMOS_TRAIN_ADVERSARIAL_H

#include <stdint.h>

#include "lumos.h"
#include "train/trainer.h"

typedef struct lumos__gan_options {
    const char *features;  /* MobileNetV2 safetensors (train/fetch-mobilenet.sh);
                              NULL: a random network of the same shape (tests) */
    const char *content_features; /* VGG-19 safetensors in torchvision's layout for
                                     content and perceptual; NULL: the MobileNetV2 */
    uint64_t seed;         /* discriminator (and random feature) init */
    float gamma;           /* R1 + R2 weight, 10 */
} lumos__gan_options;

void lumos__gan_options_init(lumos__gan_options *o);

/* The terms "content", "texture", "colour" and "perceptual" (weights 1),
 * sharing the feature networks: *out malloc'ed (*n terms); free each with
 * lumos__train_term_free, then free(*out). */
int lumos__gan_terms(lumos_ctx *ctx, const lumos__gan_options *o, lumos__train_term **out, int *n);

/* The feature network of a content or perceptual term made by
 * lumos__gan_terms ("vgg19" or "mobilenet"); NULL for any other term (the
 * trainer's checkpoints record it). */
const char *lumos__gan_content_net(const lumos__train_term *t);

/* For tests: one (fake, real) pair's discriminator loss through the
 * "texture" or "colour" term's state (term.state); its parameter gradient
 * is added into the term's groups[k].grads (texture: k = 0 early, 1 deep;
 * colour: k = 0) and each discriminator's loss into d_loss[k]. */
int lumos__gan_d_pair(lumos_ctx *ctx, void *term_state, const float *fake, const float *real,
                      int width, int height, float *d_loss);

#endif
