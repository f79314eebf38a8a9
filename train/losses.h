/* losses.h — pixel loss terms on interleaved RGB float images.
 *
 * Every image is width×height×3 floats, rows packed (as the learned ISPs'
 * float output, bits 32 of lumos__stage_learned, once its rows are packed).
 * Each function returns the loss, summed in double, and, when grad is not
 * NULL, overwrites grad (same layout) with dL/d(image), so the trainer can
 * hand it to the network's backward as it is. Means are over every element
 * (pixels × channels), as PyTorch's reduction='mean'. */
#ifndef LUMOS_TRAIN_LOSSES_H
#define LUMOS_TRAIN_LOSSES_H

/* mean |img - target|; its gradient sign(img - target) / N, 0 where equal
 * (torch.sign's subgradient). For paired training: target is aligned. */
double lumos__loss_l1(const float *img, const float *target, int width, int height, float *grad);

/* mean (img - target)^2; gradient 2 (img - target) / N. */
double lumos__loss_mse(const float *img, const float *target, int width, int height, float *grad);

/* Total variation: mean over horizontal neighbours of (right - left)^2 plus
 * mean over vertical neighbours of (below - above)^2, every channel. A side
 * of 1 pixel contributes nothing. */
double lumos__loss_tv(const float *img, int width, int height, float *grad);

/* L1 distance of the image gradients, for reflection removal (edges of the
 * transmission should match the target's): with forward differences
 * dx(I)[c,y,x] = I[c,y,x+1] - I[c,y,x] (width-1 columns) and dy likewise
 * (height-1 rows),
 *     mean |dx(img) - dx(target)| + mean |dy(img) - dy(target)|,
 * each mean over its own element count (channels x positions); a side of 1
 * pixel contributes nothing. Gradient by torch.sign's subgradient (0 where
 * the two differences are equal). */
double lumos__loss_gradient_l1(const float *img, const float *target, int width, int height, float *grad);

/* The exclusion loss of Zhang, Ng & Chen 2018 (compute_exclusion_loss,
 * level 3) between a transmission t and a reflection r: their edges should
 * not coincide. At levels l = 0, 1, 2 (level 0 the images, each next a 2x2
 * average pool, stride 2, of the one before, an odd last row/column dropped
 * as avg_pool2d does; levels stop, contributing nothing, once a side is
 * below 2), per direction (x, y) with d1, d2 the forward differences of t
 * and r:
 *     alpha = 2 mean|d1| / mean|d2|     (over every channel and position;
 *                                        1 where mean|d2| is 0: d2 is then
 *                                        0 and the term with it)
 *     s1 = 2 sigmoid(d1) - 1,  s2 = 2 sigmoid(alpha d2) - 1
 *     e[c] = (mean over positions of s1^2 s2^2)^(1/4)   per channel c
 * and the loss is (sum_c sum_l ex_l[c] / 3 + sum_c sum_l ey_l[c] / 3) / 2.
 * The gradients (grad_t, grad_r, either may be NULL; each overwritten, same
 * layout) treat alpha as a constant (detached, unlike the paper's TF
 * graph), and take the 1/4 power's slope as 0 where its mean is 0 (where it
 * is infinite; every s1^2 s2^2 is then 0 and so is its own slope).
 * Returns NaN, the gradients zeroed, when its scratch memory (about 42 bytes
 * an element with gradients, half without) cannot be allocated. */
double lumos__loss_exclusion(const float *t, const float *r, int width, int height, float *grad_t,
                             float *grad_r);

#endif
