#!/usr/bin/python3
"""layers.py — PyTorch references for the single-layer test pipelines of
tests/layer_test_generator.cpp (tests/test_layers_torch.c).

    layers.py make OUTDIR [--only NET] [--seed S]
        For every case (a layer configuration and input size): the module in
        float64 on float32-rounded inputs and parameters, L = Σ grad_out·out,
        autograd. Writes OUTDIR/CASE/{in,grad_out,weights,out,grad_in,grad_w}.f32
        (little-endian float32; maps height × width × channels, channels
        fastest; parameters flat in state_dict order) and OUTDIR/cases.txt,
        a line a case: "CASE NET CIN W H COUT OW OH NWEIGHTS". Checks each
        module's parameter names and shapes against tests/layer_tests.def.

The Swin block is written here from the Swin reference's semantics
(SwinTransformerBlock / WindowAttention, zero padding to whole windows as its
detection variant does): relative position bias table (2w−1)² × heads indexed
by a computed buffer, the shifted windows' −100 mask, q scaled by
head_dim^-0.5, MLP fc1 → GELU → fc2.
"""
import argparse
import math
import os
import re
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DEF = os.path.join(HERE, "..", "layer_tests.def")


# ------------------------------------------------------------------- Swin

class WindowAttention(nn.Module):
    def __init__(self, dim, window, heads):
        super().__init__()
        self.window, self.heads = window, heads
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        coords = torch.stack([ys.flatten(), xs.flatten()])  # (2, N), row-major tokens
        rel = coords[:, :, None] - coords[:, None, :]       # query minus key
        index = (rel[0] + window - 1) * (2 * window - 1) + (rel[1] + window - 1)
        self.register_buffer("relative_position_index", index)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask):
        """x: (windows, N, C); mask: (windows per image, N, N) or None."""
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = attn + bias.reshape(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.heads, n, n) + mask.to(attn.dtype).unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.heads, n, n)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def partition(t, w):
    """(B, H, W, C) -> (B·windows, w·w, C), windows row-major."""
    b, h, wd, c = t.shape
    return t.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, c)


def merge(t, w, b, h, wd):
    c = t.shape[-1]
    return t.view(b, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, wd, c)


class SwinBlock(nn.Module):
    def __init__(self, dim, heads, window, shift, mlp_ratio):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def mask(self, hp, wp):
        w, s = self.window, self.shift
        regions = torch.zeros(1, hp, wp, 1)
        label = 0
        for hs in (slice(0, -w), slice(-w, -s), slice(-s, None)):
            for ws in (slice(0, -w), slice(-w, -s), slice(-s, None)):
                regions[:, hs, ws, :] = label
                label += 1
        lw = partition(regions, w).squeeze(-1)          # (windows, N)
        diff = lw.unsqueeze(1) - lw.unsqueeze(2)
        return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0).double()

    def forward(self, x):
        b, c, h, wd = x.shape
        w, s = self.window, self.shift
        t = x.permute(0, 2, 3, 1)
        shortcut = t
        u = self.norm1(t)
        hp, wp = -(-h // w) * w, -(-wd // w) * w
        u = F.pad(u, (0, 0, 0, wp - wd, 0, hp - h))
        if s > 0:
            u = torch.roll(u, shifts=(-s, -s), dims=(1, 2))
        a = self.attn(partition(u, w), self.mask(hp, wp) if s > 0 else None)
        a = merge(a, w, b, hp, wp)
        if s > 0:
            a = torch.roll(a, shifts=(s, s), dims=(1, 2))
        t = shortcut + a[:, :h, :wd]
        t = t + self.mlp(self.norm2(t))
        return t.permute(0, 3, 1, 2)


# ------------------------------------------------------------- the layers

class Wrap(nn.Module):
    """One named layer (its state_dict names then start with `name.`)."""

    def __init__(self, name, layer, channels_last=False, fn=None):
        super().__init__()
        if layer is not None:
            setattr(self, name, layer)
        self.name, self.channels_last, self.fn = name, channels_last, fn

    def forward(self, x):
        if self.fn is not None:
            return self.fn(x)
        layer = getattr(self, self.name)
        if self.channels_last:
            return layer(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return layer(x)


def interp(scale=None, mode="nearest"):
    def fn(x, size=None):
        if mode == "bilinear":
            return F.interpolate(x, size=size, scale_factor=scale, mode=mode, align_corners=False)
        return F.interpolate(x, size=size, scale_factor=scale, mode=mode)
    return fn


# name: (cin, module factory); resizes to a size get it from the case
NETS = {
    "ln": (6, lambda: Wrap("norm", nn.LayerNorm(6), channels_last=True)),
    "gelu": (5, lambda: Wrap("act", nn.GELU())),
    "linear": (6, lambda: Wrap("fc", nn.Linear(6, 7), channels_last=True)),
    "swin_w4": (12, lambda: Wrap("blk", SwinBlock(12, 3, 4, 0, 2.0))),
    "swin_w4_s2": (12, lambda: Wrap("blk", SwinBlock(12, 3, 4, 2, 2.0))),
    "swin_w8_s4": (24, lambda: Wrap("blk", SwinBlock(24, 6, 8, 4, 2.0))),
    "convt_k4s2": (4, lambda: Wrap("up", nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1))),
    "convt_k3s2": (3, lambda: Wrap("up", nn.ConvTranspose2d(3, 5, 3, stride=2, padding=1, output_padding=1))),
    "convt_k3s1": (8, lambda: Wrap("up", nn.ConvTranspose2d(8, 16, 3, stride=1, padding=1))),
    "nearest": (3, None),
    "nearest_by_a": (3, lambda: Wrap("x", None, fn=interp((3.0, 1.5)))),
    "nearest_by_b": (3, lambda: Wrap("x", None, fn=interp((2.0, 0.5)))),
    "bilinear": (3, None),
    "bilinear_by_a": (3, lambda: Wrap("x", None, fn=interp((1.5, 2.5), "bilinear"))),
    "bilinear_by_b": (3, lambda: Wrap("x", None, fn=interp((2.0, 0.5), "bilinear"))),
    "avg_pool_k3s2p1": (4, lambda: Wrap("pool", nn.AvgPool2d(3, stride=2, padding=1))),
    "avg_pool_k4": (8, lambda: Wrap("pool", nn.AvgPool2d(4))),
    "avg_pool_k2s1": (3, lambda: Wrap("pool", nn.AvgPool2d(2, stride=1))),
    "global_mean": (5, lambda: Wrap("x", None, fn=lambda x: x.mean(dim=(2, 3), keepdim=True))),
    "global_max": (5, lambda: Wrap("pool", nn.AdaptiveMaxPool2d(1))),
    "group_norm": (6, lambda: Wrap("gn", nn.GroupNorm(2, 6))),
    "instance_norm": (5, lambda: Wrap("inorm", nn.InstanceNorm2d(5, affine=True))),
}

# (net, [(W, H) or (W, H, OW, OH)]): odd sizes, 1×1 where the layer allows it.
# The norms' groups hold at least 3 values: over 2, x̂ = ±1 whatever the input,
# and dL/dx is an ε-sized cancellation residue no float32 sum resolves.
CASES = [
    ("ln", [(5, 3), (1, 1), (8, 8)]),
    ("gelu", [(7, 5), (1, 1)]),
    ("linear", [(5, 3), (1, 1)]),
    ("swin_w4", [(8, 8), (8, 12), (5, 7), (1, 1)]),
    ("swin_w4_s2", [(8, 8), (12, 8), (6, 9), (1, 1)]),
    ("swin_w8_s4", [(16, 16), (13, 10)]),
    ("convt_k4s2", [(1, 1), (5, 7), (8, 8)]),
    ("convt_k3s2", [(1, 1), (5, 4)]),
    ("convt_k3s1", [(1, 1), (6, 5)]),
    ("nearest", [(5, 7, 11, 3), (1, 1, 4, 3), (8, 8, 16, 16), (9, 6, 4, 4)]),
    ("nearest_by_a", [(5, 7), (1, 1), (4, 3)]),
    ("nearest_by_b", [(5, 7), (8, 6)]),
    ("bilinear", [(5, 7, 11, 3), (1, 1, 4, 3), (8, 8, 16, 16), (9, 6, 4, 4)]),
    ("bilinear_by_a", [(5, 7), (1, 1), (4, 3)]),
    ("bilinear_by_b", [(5, 7), (8, 6)]),
    ("avg_pool_k3s2p1", [(1, 1), (7, 5), (8, 8)]),
    ("avg_pool_k4", [(4, 4), (9, 13), (16, 8)]),
    ("avg_pool_k2s1", [(2, 2), (7, 6)]),
    ("global_mean", [(1, 1), (7, 5)]),
    ("global_max", [(1, 1), (7, 5)]),
    ("group_norm", [(1, 1), (7, 5)]),
    ("instance_norm", [(3, 1), (1, 3), (7, 5)]),
]


def def_tensors():
    """{net: [(name, shape)]} from layer_tests.def."""
    out = {}
    pat = re.compile(r'LUMOS_TENSOR\((\w+),\s*"([^"]+)",\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+)\)')
    for m in pat.finditer(open(DEF).read()):
        dims = tuple(int(d) for d in m.group(3, 4, 5, 6) if int(d))
        out.setdefault(m.group(1), []).append((m.group(2), dims))
    return out


def randomise(model, gen):
    """Parameters away from their initial values (norms' γ around 1, the
    bias table at a scale that matters), float32-exact."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.rand(p.shape, generator=gen, dtype=torch.float64) * 2 - 1
            if "relative_position_bias_table" in name:
                p.copy_(r)
            elif re.search(r"(norm\d*|gn|inorm)\.weight$", name):
                p.copy_(1 + 0.5 * r)
            elif name.endswith(".bias"):
                p.copy_(0.5 * r)
            else:
                fan_in = p[0].numel() if p.dim() > 1 else 1
                p.copy_(r / math.sqrt(fan_in) * 1.5)
            p.copy_(p.to(torch.float32).to(torch.float64))


def hwc(t):
    return t[0].permute(1, 2, 0).contiguous()


def write(path, t):
    t.detach().to(torch.float32).numpy().astype("<f4").tofile(path)


def make(args):
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(args.seed)
    tensors = def_tensors()
    lines = []
    for net, sizes in CASES:
        if args.only and net != args.only:
            continue
        cin, factory = NETS[net]
        for size in sizes:
            w, h = size[0], size[1]
            model = (factory() if factory else Wrap("x", None, fn=None)).double()
            names = [(n, tuple(p.shape)) for n, p in model.named_parameters()]
            if names != tensors.get(net, []):
                sys.exit(f"{net}: state_dict {names} != layer_tests.def {tensors.get(net)}")
            randomise(model, gen)
            x = (torch.rand((1, cin, h, w), generator=gen, dtype=torch.float64) * 4 - 2)
            x = x.to(torch.float32).to(torch.float64).requires_grad_(True)
            if len(size) == 4:
                mode = "bilinear" if net == "bilinear" else "nearest"
                out = interp(None, mode)(x, size=(size[3], size[2]))
            else:
                out = model(x)
            g = (torch.rand(out.shape, generator=gen, dtype=torch.float64) * 2 - 1)
            g = g.to(torch.float32).to(torch.float64)
            (out * g).sum().backward()
            case = f"{net}_{'x'.join(str(s) for s in size)}"
            d = os.path.join(args.outdir, case)
            os.makedirs(d, exist_ok=True)
            params = list(model.parameters())
            flat = torch.cat([p.reshape(-1) for p in params]) if params else torch.zeros(1)
            gflat = torch.cat([p.grad.reshape(-1) for p in params]) if params else torch.zeros(1)
            write(os.path.join(d, "in.f32"), hwc(x))
            write(os.path.join(d, "grad_out.f32"), hwc(g))
            write(os.path.join(d, "weights.f32"), flat)
            write(os.path.join(d, "out.f32"), hwc(out))
            write(os.path.join(d, "grad_in.f32"), hwc(x.grad))
            write(os.path.join(d, "grad_w.f32"), gflat)
            lines.append(f"{case} {net} {cin} {w} {h} {out.shape[1]} {out.shape[3]} {out.shape[2]} {flat.numel()}")
    with open(os.path.join(args.outdir, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("outdir")
    mk.add_argument("--only")
    mk.add_argument("--seed", type=int, default=12)
    args = ap.parse_args()
    make(args)


if __name__ == "__main__":
    main()
