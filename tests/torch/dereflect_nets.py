#!/usr/bin/python3
"""dereflect_nets.py — lumos's UHD reflection-removal network as a PyTorch
module: the reference its Halide generator is tested against, and the
definition of its state_dict names.

    dereflect_nets.py make OUTDIR --width W --height H --seed S
        Random weights (torch's initialisation, seeded; the frozen
        MobileNetV2's batch-norm statistics drawn too) in
        OUTDIR/weights.safetensors, a random photo-like image OUTDIR/image.f32
        (H × W × 3 float32) and the module's output in float64 on it, padded
        by reflection to the multiple and cropped back, as OUTDIR/out.f32
        (H × W × 6 float32: T, then R).
    dereflect_nets.py count
        Prints the parameters (trainable and frozen) and the multiply-adds
        a pixel at full resolution.

The design keeps RRFormer's structure (reference-methods.md §2: a
hypercolumn embedding from a frozen ImageNet network, shifted-window
self-attention, pyramid pooling, a reconstruction) and moves the heavy parts
to low resolution, so that an 8K photo is practical on a CPU:

  A = avg_pool(I, 4)                           analysis image, 1/4
  MobileNetV2 features[0..10] on A (ImageNet-normalised, frozen, the
    weights lumos already converts from npm nsfwjs): taps after blocks
    1, 3, 6, 10 (16, 24, 32, 64 channels at 1/8, 1/16, 1/32, 1/64 of I)
  a distributed hypercolumn: each tap 1×1 → 16, bilinear to 1/8,
    concatenated with avg_pool(I, 8) → 3×3 conv → width, ReLU
  a U of residual Swin groups at 1/8 and 1/16 (window 8, shifted by 4
    every second block, MLP ratio 2, relative position bias; a 3×3 conv
    closes each group): enc (1/8) → 3×3 stride-2 conv → mid (1/16) →
    2×2 stride-2 transposed conv + skip → dec (1/8)
  pyramid pooling: avg pool 4 and 8 → 1×1 → width/2, LeakyReLU 0.2,
    nearest up, concatenated → 1×1 → width
  a head: 3×3 → the reflection at 1/8 (3) and guide features (8)
  full resolution: both bilinear ×8; three 3×3 convs (16 wide, ReLU) on
    [I, reflection, guide] give the reflection's detail D;
    R = up(reflection) + D, T = I − R.

Only the last part runs at full resolution (~4.8 k multiply-adds a pixel,
reach 3 pixels), so it runs in tiles that equal the untiled result; the rest
sees the whole photo at 1/4 and below. The input's sides must be multiples
of 128 (lumos pads by reflection and crops).
"""
import argparse
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from layers import SwinBlock  # noqa: E402
from isp_nets import write_safetensors  # noqa: E402
from losses import IMAGENET_MEAN, IMAGENET_STD, tf_same  # noqa: E402

TAPS = (1, 3, 6, 10)              # MobileNetV2 features[i] outputs used
TAP_CHANNELS = (16, 24, 32, 64)
HYPER = 16                        # channels each tap is reduced to
MULTIPLE = 128                    # the input's sides


def frozen_mobilenet():
    """torchvision's mobilenet_v2().features[:11], TF "same" padding on its
    stride-2 convs and BN eps 1e-3 (the nsfwjs weights were trained in TF),
    frozen and in eval mode (as generators/losses/features.h)."""
    feats = torchvision.models.mobilenet_v2().features[:TAPS[-1] + 1]
    for m in feats.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 1e-3
        if isinstance(m, nn.Conv2d) and m.stride == (2, 2):
            m.padding = (0, 0)
            m.register_forward_pre_hook(tf_same)
    for p in feats.parameters():
        p.requires_grad_(False)
    return feats.eval()


class SwinGroup(nn.Module):
    """depth Swin blocks (shift 0, window/2, ...) and a closing 3×3 conv,
    residual over the group."""

    def __init__(self, dim, heads, window, depth):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, heads, window, 0 if i % 2 == 0 else window // 2, 2.0)
            for i in range(depth))
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x):
        y = x
        for b in self.blocks:
            y = b(y)
        return x + self.conv(y)


class UhdDereflect(nn.Module):
    def __init__(self, width=32, heads=2, window=8, depth=2, full=16, guide=8):
        super().__init__()
        self.guide = guide
        self.features = frozen_mobilenet()
        self.hyper = nn.ModuleList(nn.Conv2d(c, HYPER, 1) for c in TAP_CHANNELS)
        self.embed = nn.Conv2d(HYPER * len(TAPS) + 3, width, 3, padding=1)
        self.enc = SwinGroup(width, heads, window, depth)
        self.down = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.mid = SwinGroup(2 * width, 2 * heads, window, depth)
        self.up = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.dec = SwinGroup(width, heads, window, depth)
        self.pool = nn.ModuleList(nn.Conv2d(width, width // 2, 1) for _ in (4, 8))
        self.fuse = nn.Conv2d(2 * width, width, 1)
        self.head = nn.Conv2d(width, 3 + guide, 3, padding=1)
        self.refine = nn.Sequential(
            nn.Conv2d(6 + guide, full, 3, padding=1), nn.ReLU(),
            nn.Conv2d(full, full, 3, padding=1), nn.ReLU(),
            nn.Conv2d(full, 3, 3, padding=1))

    def train(self, mode=True):
        super().train(mode)
        self.features.eval()   # frozen: its BN keeps the ImageNet statistics
        return self

    def taps(self, a):
        mean = torch.tensor(IMAGENET_MEAN, dtype=a.dtype).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, dtype=a.dtype).view(1, 3, 1, 1)
        x, out = (a - mean) / std, []
        for i, m in enumerate(self.features):
            x = m(x)
            if i in TAPS:
                out.append(x)
        return out

    def low(self, image):
        """The 1/8-resolution reflection (3) and guide (guide) maps."""
        n, _, h, w = image.shape
        assert h % MULTIPLE == 0 and w % MULTIPLE == 0, (h, w)
        size = (h // 8, w // 8)
        a = F.avg_pool2d(image, 4)
        hyper = [F.interpolate(conv(t), size=size, mode="bilinear", align_corners=False)
                 for conv, t in zip(self.hyper, self.taps(a))]
        e = F.relu(self.embed(torch.cat(hyper + [F.avg_pool2d(image, 8)], 1)))
        e = self.enc(e)
        u = self.up(self.mid(F.relu(self.down(e)))) + e
        u = self.dec(u)
        pooled = [F.interpolate(F.leaky_relu(conv(F.avg_pool2d(u, k)), 0.2), size=size,
                                mode="nearest") for conv, k in zip(self.pool, (4, 8))]
        return self.head(self.fuse(torch.cat([u] + pooled, 1)))

    def forward(self, image):
        """image (N, 3, H, W), sRGB-encoded 0..1 -> (transmission, reflection)."""
        low = F.interpolate(self.low(image), scale_factor=8, mode="bilinear",
                            align_corners=False)
        reflection = low[:, :3]
        reflection = reflection + self.refine(torch.cat([image, low], 1))
        return image - reflection, reflection


def count():
    net = UhdDereflect()
    frozen = sum(p.numel() for p in net.features.parameters())
    total = sum(p.numel() for p in net.parameters())
    print(f"parameters: {total - frozen} trainable, {frozen} frozen (MobileNetV2)")
    full = sum(m.weight.numel() for m in net.refine if isinstance(m, nn.Conv2d))
    print(f"full resolution: {full} multiply-adds a pixel")


def state_tensors(net):
    """The weights file's tensors: the state_dict less its computed buffers."""
    return [(k, v) for k, v in net.state_dict().items()
            if not k.endswith(("relative_position_index", "num_batches_tracked"))]


def photo_like(width, height, gen):
    """Smooth colour fields plus edges and fine noise, in 0..1."""
    coarse = torch.rand(1, 3, height // 16 + 2, width // 16 + 2, generator=gen, dtype=torch.float64)
    img = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    img = img + 0.25 * ((xx // 13 + yy // 9) % 2).double()
    img = img + 0.05 * torch.randn(1, 3, height, width, generator=gen, dtype=torch.float64)
    return img.clamp(0, 1).float().double()


def make(args):
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    net = UhdDereflect()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("relative_position_bias_table"):
                p.normal_(0, 0.5, generator=gen)
        for m in net.features.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0, 0.1, generator=gen)
    tensors = state_tensors(net)
    os.makedirs(args.outdir, exist_ok=True)
    write_safetensors(os.path.join(args.outdir, "weights.safetensors"), tensors)
    # float64 on the float32-rounded weights, as lumos computes them
    net = net.double().eval()
    with torch.no_grad():
        for p in net.state_dict().values():
            if p.is_floating_point():
                p.copy_(p.float().double())
    img = photo_like(args.width, args.height, gen)
    w, h = args.width, args.height
    pw, ph = -(-w // MULTIPLE) * MULTIPLE, -(-h // MULTIPLE) * MULTIPLE
    assert pw - w < w and ph - h < h, "reflection padding needs the pad below the size"
    padded = F.pad(img, (0, pw - w, 0, ph - h), mode="reflect")
    with torch.no_grad():
        t, r = net(padded)
    out = torch.cat([t, r], 1)[:, :, :h, :w]
    img[0].permute(1, 2, 0).float().numpy().astype("<f4").tofile(os.path.join(args.outdir, "image.f32"))
    out[0].permute(1, 2, 0).float().numpy().astype("<f4").tofile(os.path.join(args.outdir, "out.f32"))
    print(f"T range {t.min().item():.3f}..{t.max().item():.3f}, "
          f"R std {r.std().item():.4f}")
    if args.grad:
        # dL/dθ of L = sum(g · T) for a random g, in the weights file's
        # order (0 for the frozen feature network and the buffers)
        assert (pw, ph) == (w, h), "the gradient is of an unpadded crop"
        g = torch.randn(t.shape, generator=gen, dtype=torch.float64)
        net.zero_grad()
        t, _ = net(padded)
        (t * g).sum().backward()
        params = dict(net.named_parameters())
        flat = [params[k].grad.reshape(-1) if k in params and params[k].grad is not None
                and not k.startswith("features.") else torch.zeros(v.numel(), dtype=torch.float64)
                for k, v in tensors]
        g[0].permute(1, 2, 0).float().numpy().astype("<f4").tofile(os.path.join(args.outdir, "grad_t.f32"))
        torch.cat(flat).float().numpy().astype("<f4").tofile(os.path.join(args.outdir, "grad_params.f32"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("outdir")
    m.add_argument("--width", type=int, required=True)
    m.add_argument("--height", type=int, required=True)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--grad", action="store_true", help="also dL/dθ (grad_t.f32, grad_params.f32)")
    sub.add_parser("count")
    args = ap.parse_args()
    if args.cmd == "make":
        torch.set_num_threads(2)
        make(args)
    else:
        count()


if __name__ == "__main__":
    main()
