#!/usr/bin/python3
"""reflect_synth.py — the reflection synthesis models of train/reflect_synth.h
recomputed in float64 with numpy and PyTorch, for tests/test_reflect_synth.c.

    reflect_synth.py DIR

DIR/jobs.txt has one job a line:

    ID MODEL W H BORDER KSIZE SIGMA GAMMA ALPHA BETA ATT TSCALE VIGSIZE VIGX VIGY GDX GDY GC

MODEL ceilnet|zhang|screen|ghost, BORDER 0 (mirror: OpenCV's BORDER_REFLECT_101,
numpy's 'reflect') or 1 (zero, scipy.signal.convolve2d's 'same'), the other
fields those of lumos__reflect_params. DIR/ID.t.f32 and DIR/ID.r.f32 are the
crops T and R, float32 (H, W, 3). Writes DIR/ID.out.f64: I, the target T and
R' (each (H, W, 3)), then 1.0 if Zhang's training loop would drop the pair
else 0.0, float64.

The models follow their public code line by line (variable names kept):
ERRNet's data/transforms.py ReflectionSythesis_1 (CEILNet), Zhang et al.'s
main.py syn_data, gkern and the checks of its training loop, DSRNet's
data/sirs_dataset.py ReflectionSynthesis (screen); the ghost is lumos's own
(Shih et al.'s kernel δ(x) + c·δ(x − d)). Where that code calls OpenCV or
scipy, this uses: cv2.getGaussianKernel's formula, a 2-D convolution with the
kernel's outer product in PyTorch (F.conv2d) on a numpy-padded image
(np.pad 'reflect' = cv2's default BORDER_REFLECT_101; zeros = convolve2d), and
math.erfc for scipy.stats.norm.cdf.
"""
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)


def get_gaussian_kernel(ksize, sigma):
    """cv2.getGaussianKernel(ksize, sigma) (sigma > 0), as a float64 vector."""
    x = np.arange(ksize) - (ksize - 1) / 2.0
    g = np.exp(-x * x / (2.0 * sigma * sigma))
    return g / g.sum()


def blur(img, ksize, sigma, border):
    """img (H, W, 3) convolved band by band with outer(g, g)."""
    g = get_gaussian_kernel(ksize, sigma)
    k2 = torch.from_numpy(np.outer(g, g))[None, None]
    r = ksize // 2
    mode = "reflect" if border == 0 else "constant"
    padded = np.pad(img, ((r, r), (r, r), (0, 0)), mode=mode)
    x = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1)))[:, None]
    return F.conv2d(x, k2)[:, 0].numpy().transpose(1, 2, 0)


def ceilnet(B_, R_, ksize, sigma, gamma, border):
    """ERRNet's ReflectionSythesis_1 after its random draws."""
    R_blur = blur(R_, ksize, sigma, border)
    M_ = B_ + R_blur
    if np.max(M_) > 1:
        m = M_[M_ > 1]
        m = (np.mean(m) - 1) * gamma
        R_blur = np.clip(R_blur - m, 0, 1)
        M_ = np.clip(R_blur + B_, 0, 1)
    return M_, B_, R_blur


def norm_cdf(x):
    return np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in x])


def gkern(kernlen=100, nsig=1):
    """Returns a 2D Gaussian kernel array (Zhang et al.'s main.py)."""
    interval = (2 * nsig + 1.) / (kernlen)
    x = np.linspace(-nsig - interval / 2., nsig + interval / 2., kernlen + 1)
    kern1d = np.diff(norm_cdf(x))
    kernel_raw = np.sqrt(np.outer(kern1d, kern1d))
    kernel = kernel_raw / kernel_raw.sum()
    kernel = kernel / kernel.max()
    return kernel


def zhang(T, R, ksize, sigma, att, t_scale, vig_size, neww, newh, border):
    """syn_data(t, r, sigma) with its draws given, and the training loop's
    rejection of the pair."""
    g_mask = gkern(vig_size, 3)
    g_mask = np.dstack((g_mask, g_mask, g_mask))
    t = np.power(T, 2.2)
    r = np.power(R, 2.2)
    sz = int(2 * np.ceil(2 * sigma) + 1)
    assert sz == ksize, (sz, ksize, sigma)
    r_blur = blur(r, sz, sigma, border)
    blend = r_blur + t
    for i in range(3):
        maski = blend[:, :, i] > 1
        mean_i = max(1., np.sum(blend[:, :, i] * maski) / (maski.sum() + 1e-6))
        r_blur[:, :, i] = r_blur[:, :, i] - (mean_i - 1) * att
    r_blur[r_blur >= 1] = 1
    r_blur[r_blur <= 0] = 0
    h, w = r_blur.shape[0:2]
    alpha1 = g_mask[newh:newh + h, neww:neww + w, :]
    alpha2 = t_scale
    r_blur_mask = np.multiply(r_blur, alpha1)
    blend = r_blur_mask + t * alpha2
    r_blur_mask = np.power(r_blur_mask, 1 / 2.2)
    blend = np.power(blend, 1 / 2.2)
    blend[blend >= 1] = 1
    blend[blend <= 0] = 0
    # main.py: the mean rule before syn_data, the max rules after it
    reject = (np.mean(T) * 1 / 2 > np.mean(R) or r_blur_mask.max() < 0.15 or T.max() < 0.15
              or blend.max() < 0.1)
    return blend, T, r_blur_mask, reject


def screen(T_, R_, ksize, sigma, a, b, border):
    """DSRNet's ReflectionSynthesis after its draws; R' is b·R_blur."""
    R_ = blur(R_, ksize, sigma, border)
    T, R = a * T_, b * R_
    I = T + R - T * R
    return I, T_, R


def ghost(T, R, ksize, sigma, dx, dy, c, gamma, border):
    """R blurred, plus a copy shifted by d attenuated by c, normalised by
    1 + c, then CEILNet's addition."""
    R_b = blur(R, ksize, sigma, border)
    P = max(abs(dx), abs(dy))
    padded = np.pad(R_b, ((P, P), (P, P), (0, 0)), mode="reflect" if border == 0 else "constant")
    h, w = R_b.shape[:2]
    shifted = padded[P - dy:P - dy + h, P - dx:P - dx + w]  # R_b(x − d)
    G = (R_b + c * shifted) / (1 + c)
    return ceilnet_add(T, G, gamma)


def ceilnet_add(B_, R_blur, gamma):
    M_ = B_ + R_blur
    if np.max(M_) > 1:
        m = M_[M_ > 1]
        m = (np.mean(m) - 1) * gamma
        R_blur = np.clip(R_blur - m, 0, 1)
        M_ = np.clip(R_blur + B_, 0, 1)
    return M_, B_, R_blur


def main():
    d = sys.argv[1]
    for line in open(f"{d}/jobs.txt"):
        f = line.split()
        if not f:
            continue
        jid, model, w, h, border, ksize = f[0], f[1], int(f[2]), int(f[3]), int(f[4]), int(f[5])
        sigma, gamma, alpha, beta, att, t_scale = (float(v) for v in f[6:12])
        vig_size, vig_x, vig_y, gdx, gdy = (int(v) for v in f[12:17])
        gc = float(f[17])
        T = np.fromfile(f"{d}/{jid}.t.f32", "<f4").astype("f8").reshape(h, w, 3)
        R = np.fromfile(f"{d}/{jid}.r.f32", "<f4").astype("f8").reshape(h, w, 3)
        reject = False
        if model == "ceilnet":
            I, Tt, Rl = ceilnet(T, R, ksize, sigma, gamma, border)
        elif model == "zhang":
            I, Tt, Rl, reject = zhang(T, R, ksize, sigma, att, t_scale, vig_size, vig_x, vig_y,
                                      border)
        elif model == "screen":
            I, Tt, Rl = screen(T, R, ksize, sigma, alpha, beta, border)
        elif model == "ghost":
            I, Tt, Rl = ghost(T, R, ksize, sigma, gdx, gdy, gc, gamma, border)
        else:
            raise SystemExit(f"unknown model {model}")
        out = np.concatenate([I.ravel(), Tt.ravel(), Rl.ravel(), [1.0 if reject else 0.0]])
        out.astype("<f8").tofile(f"{d}/{jid}.out.f64")


if __name__ == "__main__":
    main()
