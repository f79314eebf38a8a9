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

#endif
