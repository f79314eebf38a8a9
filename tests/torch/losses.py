#!/usr/bin/python3
"""losses.py — a float64 PyTorch reference of the unpaired-training losses of
generators/losses/loss_generator.cpp, for tests/test_losses.c.

    losses.py DIR

DIR holds, per network NET in (mobilenet, disc_texture_early,
disc_texture_deep, disc_colour, vgg19), NET.f32 (the flat weight buffer, float32)
and NET.names (one "name ndim d0 .. d(ndim-1)" line per tensor, in flat
order), images as float32 (H, W, 3) interleaved (c fastest), feature maps as
float32 (fh, fw, C), and jobs.txt, one job a line:

    g ID W H OUT REF dr0 dr1 dr2 NW w00 w01 w02 w03 w10 ...
        -> losses[4], then for each of the NW term-weight vectors
           sum_i w_i dL_i/d(OUT)  (H, W, 3)
    dt ID W H IMG EPS PE PD      (PE, PD: perturbation files or -)
        -> scores[2], dDe/dθ, dDd/dθ, dDe/d(F1), dDd/d(F7)
    dc ID W H IMG EPS P
        -> score, dDc/dθ, dDc/d(F11)
    vgg ID W H OUT REF
        -> the content loss on VGG-19, mean((relu5_4(v(OUT)) - relu5_4(v(REF)))^2)
           with v = (L*/100 repeated to 3 channels - ImageNet mean) / std,
           then its gradient with respect to OUT (H, W, 3)
    pair ID texture|colour W H FAKE REAL GAMMA
        -> per discriminator: loss softplus(D(f) − D(r)) + γ/2 (‖∇D(r)‖² +
           ‖∇D(f)‖²), then per discriminator its parameter gradient, then
           per discriminator the gradient of the γ/2 (R1 + R2) part alone,
           by PyTorch's exact double backward

and writes DIR/ID.f64 (float64, the values above back to back).

The feature network is torchvision's mobilenet_v2().features[:12] (BN eps
1e-3, eval) with TF "same" padding on its stride-2 convs (computed per input
size: even sizes pad bottom/right only, odd ones both sides), so the tensor
names of generators/losses/tensors.def are checked against torchvision's module tree too; the
content network of the vgg jobs is torchvision's vgg19(weights=None)
.features[:36] (through relu5_4), loaded strictly. The discriminators and
the preprocessing are written out from the generator's header comment and
generators/losses/tensors.def.
"""
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

torch.set_default_dtype(torch.float64)
torch.set_num_threads(2)   # Debian's torch starts with 1 here

D3 = 216.0 / 24389.0                       # CIE: (6/29)^3
KLIN = 1.0 / (3.0 * (6.0 / 29.0) ** 2)     # slope of f below D3
LUMA = (0.2126, 0.7152, 0.0722)            # linear sRGB -> Y
TAP_EARLY, TAP_DEEP, TAP_LAST = 1, 7, 11
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def load_net(d, net):
    flat = np.fromfile(f"{d}/{net}.f32", "<f4").astype("f8")
    out, at = {}, 0
    for line in open(f"{d}/{net}.names"):
        name, ndim, *shape = line.split()
        shape = [int(s) for s in shape[: int(ndim)]]
        n = int(np.prod(shape))
        out[name] = torch.from_numpy(flat[at:at + n].copy()).view(shape)
        at += n
    assert at == flat.size, (net, at, flat.size)
    return out


def tf_same(mod, inp):
    """TF/Keras "same": total max((ceil(n/s) - 1) s + k - n, 0), the odd pixel after."""
    x = inp[0]
    k, s = mod.kernel_size[0], mod.stride[0]
    pads = []
    for n in (x.shape[-1], x.shape[-2]):   # F.pad order: last dim first
        o = -(-n // s)
        t = max((o - 1) * s + k - n, 0)
        pads += [t // 2, t - t // 2]
    return (F.pad(x, pads),)


def mobilenet(state):
    feats = torchvision.models.mobilenet_v2().features[:12].double()
    for m in feats.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps = 1e-3
        if isinstance(m, torch.nn.Conv2d):
            if m.stride == (2, 2):
                m.padding = (0, 0)
                m.register_forward_pre_hook(tf_same)
            else:   # stride 1: TF "same" is symmetric k//2, torchvision's own
                assert m.padding == (m.kernel_size[0] // 2,) * 2
    assert all(k.startswith("features.") for k in state)
    missing, unexpected = feats.load_state_dict(
        {k[len("features."):]: v for k, v in state.items()}, strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith("num_batches_tracked") for k in missing), missing
    for p in feats.parameters():
        p.requires_grad_(False)
    return feats.eval()


def vgg19(state):
    """torchvision's VGG-19 to relu5_4 (features[:36]) with these weights."""
    feats = torchvision.models.vgg19(weights=None).features[:36].double()
    assert all(k.startswith("features.") for k in state)
    feats.load_state_dict({k[len("features."):]: v for k, v in state.items()})
    for p in feats.parameters():
        p.requires_grad_(False)
    return feats.eval()


def taps(feats, x):
    out = []
    for m in feats:
        x = m(x)
        out.append(x)
    return out


def srgb_to_linear(v):
    return torch.where(v <= 0.04045, v / 12.92, ((v.clamp(min=0) + 0.055) / 1.055) ** 2.4)


def lstar(img):
    """CIE L* of the linear luminance, (N, 1, H, W)."""
    lin = srgb_to_linear(img)
    y = LUMA[0] * lin[:, 0] + LUMA[1] * lin[:, 1] + LUMA[2] * lin[:, 2]
    fy = torch.where(y > D3, y.clamp(min=D3) ** (1.0 / 3.0), y * KLIN + 4.0 / 29.0)
    return (116.0 * fy - 16.0).unsqueeze(1)


def lightness(img):
    """L*/50 - 1, repeated to 3 channels (MobileNetV2's input)."""
    return (lstar(img) / 50.0 - 1.0).expand(-1, 3, -1, -1)


def vgg_lightness(img):
    """L*/100 repeated to 3 channels, normalised as torchvision's ImageNet inputs."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((lstar(img) / 100.0).expand(-1, 3, -1, -1) - mean) / std


def blurred(img):
    """2 blur - 1, 21x21 Gaussian sigma 3 (normalised), zeros outside."""
    i = torch.arange(-10, 11, dtype=torch.float64)
    taps1 = torch.exp(-i * i / 18.0)
    taps1 = taps1 / taps1.sum()
    kx = taps1.view(1, 1, 1, 21).repeat(3, 1, 1, 1)
    ky = taps1.view(1, 1, 21, 1).repeat(3, 1, 1, 1)
    b = F.conv2d(img, kx, padding=(0, 10), groups=3)
    b = F.conv2d(b, ky, padding=(10, 0), groups=3)
    return 2.0 * b - 1.0


def disc_layers(p, x, colour, lr):
    """A discriminator (generators/losses/tensors.def disc_*) on feature map x with the
    activation lr: its mean score."""
    if colour:
        x = lr(F.conv2d(x, p["fc1.weight"], p["fc1.bias"]))
        x = lr(F.conv2d(x, p["fc2.weight"], p["fc2.bias"]))
        return F.conv2d(x, p["fc3.weight"], p["fc3.bias"]).mean()
    for name, s in (("conv1", 2), ("conv2", 2), ("conv3", 1), ("conv4", 1), ("conv5", 2)):
        w = p[name + ".weight"]
        x = lr(F.conv2d(x, w, p[name + ".bias"], stride=s, padding=w.shape[-1] // 2))
    x = lr(F.conv2d(x, p["fc1.weight"], p["fc1.bias"]))
    return F.conv2d(x, p["fc2.weight"], p["fc2.bias"]).mean()


def disc(p, x, colour, gate=None):
    """Mean score of a discriminator on x; with `gate`, linearised there:
    each LeakyReLU's slope from the sign of its input in D(gate) (the
    eps jobs of tests/test_losses.c: D linearised at the map)."""
    if gate is None:
        return disc_layers(p, x, colour, lambda v: F.leaky_relu(v, 0.2))
    pre = []
    with torch.no_grad():
        disc_layers(p, gate, colour, lambda v: (pre.append(v), F.leaky_relu(v, 0.2))[1])
    it = iter(pre)
    return disc_layers(p, x, colour, lambda v: torch.where(next(it) > 0, v, 0.2 * v))


def image(d, name, w, h):
    a = np.fromfile(f"{d}/{name}", "<f4").astype("f8").reshape(h, w, 3)
    return torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0).contiguous()


def fmap(d, name, like):
    """A (fh, fw, C) file as a map shaped like `like` (1, C, fh, fw); '-': zeros."""
    if name == "-":
        return torch.zeros_like(like)
    _, c, fh, fw = like.shape
    a = np.fromfile(f"{d}/{name}", "<f4").astype("f8").reshape(fh, fw, c)
    return torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0)


def flat_map(t):   # (1, C, h, w) -> (h, w, C) raveled, the C layout
    return t[0].permute(1, 2, 0).reshape(-1)


def flat_params(grads):
    return torch.cat([g.reshape(-1) for g in grads])


def main():
    d = sys.argv[1]
    feats = mobilenet(load_net(d, "mobilenet"))
    nets = {k: load_net(d, k) for k in ("disc_texture_early", "disc_texture_deep", "disc_colour")}
    for p in nets.values():
        for t in p.values():
            t.requires_grad_(True)
    de, dd, dc = nets["disc_texture_early"], nets["disc_texture_deep"], nets["disc_colour"]
    vgg = None   # built on the first vgg job

    for line in open(f"{d}/jobs.txt"):
        f = line.split()
        if not f:
            continue
        kind, jid = f[0], f[1]
        out = []
        if kind == "g":
            w, h = int(f[2]), int(f[3])
            x = image(d, f[4], w, h).requires_grad_(True)
            ref = image(d, f[5], w, h)
            d_real = [float(v) for v in f[6:9]]
            nw = int(f[9])
            tw = [[float(v) for v in f[10 + 4 * k: 14 + 4 * k]] for k in range(nw)]
            tl = taps(feats, lightness(x))
            with torch.no_grad():
                tr = taps(feats, lightness(ref))
            tb = taps(feats, blurred(x))
            losses = [((tl[TAP_LAST] - tr[TAP_LAST]) ** 2).mean(),
                      F.softplus(-(disc(de, tl[TAP_EARLY], False) - d_real[0])),
                      F.softplus(-(disc(dd, tl[TAP_DEEP], False) - d_real[1])),
                      F.softplus(-(disc(dc, tb[TAP_LAST], True) - d_real[2]))]
            grads = [torch.autograd.grad(l, x, retain_graph=True)[0] for l in losses]
            out.append(torch.stack([l.detach() for l in losses]))
            for wv in tw:
                out.append(flat_map(sum(wi * g for wi, g in zip(wv, grads))))
        elif kind == "vgg":
            w, h = int(f[2]), int(f[3])
            if vgg is None:
                vgg = vgg19(load_net(d, "vgg19"))
            x = image(d, f[4], w, h).requires_grad_(True)
            with torch.no_grad():
                target = vgg(vgg_lightness(image(d, f[5], w, h)))
            loss = ((vgg(vgg_lightness(x)) - target) ** 2).mean()
            out += [loss.detach().view(1), flat_map(torch.autograd.grad(loss, x)[0])]
        elif kind in ("dt", "dc"):
            w, h = int(f[2]), int(f[3])
            img = image(d, f[4], w, h)
            eps = float(f[5])
            with torch.no_grad():
                t = taps(feats, lightness(img) if kind == "dt" else blurred(img))
            sides = [(de, t[TAP_EARLY], False, f[6]), (dd, t[TAP_DEEP], False, f[7])] \
                if kind == "dt" else [(dc, t[TAP_LAST], True, f[6])]
            scores, pgrads, igrads = [], [], []
            for p, feat, colour, pert in sides:
                xin = (feat + eps * fmap(d, pert, feat)).requires_grad_(True)
                s = disc(p, xin, colour, gate=feat)
                g = torch.autograd.grad(s, list(p.values()) + [xin])
                scores.append(s.detach())
                pgrads.append(flat_params(g[:-1]))
                igrads.append(flat_map(g[-1]))
            out += [torch.stack(scores)] + pgrads + igrads
        elif kind == "pair":
            which, w, h = f[2], int(f[3]), int(f[4])
            fake, real = image(d, f[5], w, h), image(d, f[6], w, h)
            gamma = float(f[7])
            with torch.no_grad():
                pre = lightness if which == "texture" else blurred
                tf, tr = taps(feats, pre(fake)), taps(feats, pre(real))
            sides = [(de, TAP_EARLY, False), (dd, TAP_DEEP, False)] if which == "texture" \
                else [(dc, TAP_LAST, True)]
            losses, pgrads, rgrads = [], [], []
            for p, tap, colour in sides:
                xr = tr[tap].clone().requires_grad_(True)
                xf = tf[tap].clone().requires_grad_(True)
                sr, sf = disc(p, xr, colour), disc(p, xf, colour)
                gr = torch.autograd.grad(sr, xr, create_graph=True)[0]
                gf = torch.autograd.grad(sf, xf, create_graph=True)[0]
                penalty = 0.5 * gamma * ((gr ** 2).sum() + (gf ** 2).sum())
                loss = F.softplus(-(sr - sf)) + penalty
                params = list(p.values())
                losses.append(loss.detach())
                pgrads.append(flat_params(torch.autograd.grad(loss, params, retain_graph=True)))
                # the penalty's alone (the last bias does not reach ∇D: 0)
                g = torch.autograd.grad(penalty, params, allow_unused=True)
                rgrads.append(flat_params([torch.zeros_like(t) if gi is None else gi
                                           for gi, t in zip(g, params)]))
            out += [torch.stack(losses)] + pgrads + rgrads
        else:
            sys.exit(f"losses.py: unknown job {kind}")
        torch.cat([o.reshape(-1) for o in out]).numpy().astype("<f8").tofile(f"{d}/{jid}.f64")


if __name__ == "__main__":
    main()
