#!/usr/bin/python3
"""pixel_losses.py — a float64 PyTorch reference of the reflection-removal
pixel losses of train/losses.c, for tests/test_pixel_losses_torch.c.

    pixel_losses.py DIR

DIR/cases.txt holds one case a line, "ID W H", with the images DIR/ID.a.f32
and DIR/ID.b.f32 (float32, H × W × 3, channels fastest). For each case it
writes DIR/ID.out.f32 (float32), back to back:

    gradient_l1(a, b), d/da (H × W × 3),
    exclusion(a, b) with a the transmission and b the reflection,
        d/da, d/db (each H × W × 3)

by autograd. The exclusion loss is Zhang, Ng & Chen's compute_exclusion_loss
(level 3) as its PyTorch ports write it, with what lumos documents:
alpha detached (a constant in the gradient), alpha 1 where the reflection's
mean |difference| is 0, levels that stop once a side is below 2, and the
1/4 power's gradient taken as 0 where its mean is 0.
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def grads(img):
    """Forward differences (N, C, H, W): along x (W - 1 columns), along y."""
    return img[:, :, :, 1:] - img[:, :, :, :-1], img[:, :, 1:, :] - img[:, :, :-1, :]


def gradient_l1(img, target):
    loss = img.sum() * 0   # keeps a graph where neither side has differences
    for d_img, d_target in zip(grads(img), grads(target)):
        if d_img.numel():
            loss = loss + (d_img - d_target).abs().mean()
    return loss


def quarter_power(m):
    """m ** 0.25, its gradient 0 where m is 0 (rather than inf * 0 = NaN)."""
    positive = m > 0
    return torch.where(positive, torch.where(positive, m, torch.ones_like(m)) ** 0.25,
                       torch.zeros_like(m))


def exclusion(t, r, level=3):
    loss_x, loss_y = [], []
    for _ in range(level):
        if min(t.shape[2], t.shape[3]) < 2:
            break
        (gx1, gy1), (gx2, gy2) = grads(t), grads(r)
        losses = []
        for g1, g2 in ((gx1, gx2), (gy1, gy2)):
            with torch.no_grad():
                m1, m2 = g1.abs().mean(), g2.abs().mean()
                alpha = 2.0 * m1 / m2 if m2 > 0 else torch.ones(())
            s1 = torch.sigmoid(g1) * 2 - 1
            s2 = torch.sigmoid(g2 * alpha) * 2 - 1
            losses.append(quarter_power((s1 ** 2 * s2 ** 2).mean(dim=(2, 3))))  # (N, C)
        loss_x.append(losses[0])
        loss_y.append(losses[1])
        t, r = F.avg_pool2d(t, 2), F.avg_pool2d(r, 2)
    if not loss_x:
        return t.sum() * 0 + r.sum() * 0
    return (sum(loss_x).sum() / 3 + sum(loss_y).sum() / 3) / 2


def read(path, w, h):
    a = np.fromfile(path, "<f4").astype("f8").reshape(h, w, 3)
    return torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0).contiguous().requires_grad_(True)


def flat(g):   # (1, 3, H, W) -> (H, W, 3) raveled
    return g[0].permute(1, 2, 0).reshape(-1)


def main():
    d = sys.argv[1]
    for line in open(f"{d}/cases.txt"):
        if not line.split():
            continue
        cid, w, h = line.split()
        w, h = int(w), int(h)
        a, b = read(f"{d}/{cid}.a.f32", w, h), read(f"{d}/{cid}.b.f32", w, h)
        out = []
        loss = gradient_l1(a, b)
        out += [loss.detach().view(1), flat(torch.autograd.grad(loss, a)[0])]
        loss = exclusion(a, b)
        ga, gb = torch.autograd.grad(loss, (a, b))
        out += [loss.detach().view(1), flat(ga), flat(gb)]
        torch.cat(out).numpy().astype("<f4").tofile(f"{d}/{cid}.out.f32")


if __name__ == "__main__":
    main()
