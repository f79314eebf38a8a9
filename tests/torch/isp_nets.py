#!/usr/bin/python3
"""isp_nets.py — the three lightweight ISP networks of reference-methods.md §1
as our own PyTorch modules (state_dict names and shapes as in the reference
code), the input packing, and a generator of test cases for the plain-C
reference (tests/ref/isp_nets_ref.c).

    isp_nets.py make NET OUTDIR --width W --height H --seed S [--black B0,B1,B2,B3] [--gain G]
        NET: efficient | robust | rmfa_tiny. Writes OUTDIR/weights.safetensors
        (random weights, torch's default init, seeded), OUTDIR/mosaic.u16 (an
        RGGB mosaic, little-endian uint16), OUTDIR/meta.txt ("width height
        black0 black1 black2 black3 white") and OUTDIR/output.f32 (the model's
        output, computed in float64, stored float32 planar C×H×W). The mosaic's
        samples lie in [min(black), white]; --gain scales the initial weights.
    isp_nets.py resize OUTDIR --seed S
        Writes bilinear resampling cases (resize.bin) for the C reference's
        resampler: nn.Upsample(×2) and F.interpolate(size=...), align_corners=False.
    isp_nets.py count
        Prints the parameter count of each net.
"""
import argparse
import json
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

BLACK_DEFAULT = 64.0
WHITE_DEFAULT = 1023.0


# ----------------------------------------------------------------- 4-channel nets

class EfficientISP(nn.Module):
    """(4, H/2, W/2) -> conv 4->12 tanh -> 12->12 relu -> 12->12 relu -> shuffle -> (3, H, W)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(4, 12, 3, padding=1)
        self.conv2 = nn.Conv2d(12, 12, 3, padding=1)
        self.conv3 = nn.Conv2d(12, 12, 3, padding=1)

    def forward(self, x):
        x = torch.tanh(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        return F.pixel_shuffle(x, 2)


class RobustISP(nn.Module):
    """(4, H/2, W/2) -> conv 4->16 tanh -> 16->4 relu -> 4->12 relu -> shuffle -> (3, H, W)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(4, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 4, 3, padding=1)
        self.conv3 = nn.Conv2d(4, 12, 3, padding=1)

    def forward(self, x):
        x = torch.tanh(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        return F.pixel_shuffle(x, 2)


# ----------------------------------------------------------------------- RMFA-Net

class TextureModule(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.high_freq = nn.Sequential(nn.Conv2d(c, c // 2, 1), nn.ReLU())
        self.low_freq = nn.Sequential(nn.Conv2d(c, c // 2, 3, padding=1), nn.ReLU())

    def forward(self, x):
        return torch.cat([self.high_freq(x), self.low_freq(x)], dim=1)


class ToneMappingModule(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.level1 = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c, c, 3, padding=1), nn.ReLU())
        self.level2 = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c, c, 3, padding=1), nn.ReLU())
        self.level3 = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU())
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x):
        x1 = self.level1(x)   # (c, H/2, W/2)
        x2 = self.level2(x1)  # (c, H/4, W/4)
        x3 = self.level3(x2)  # (c, H/4, W/4)
        illumination = self.up(x1 + self.up(x3))
        if illumination.shape[-2:] != x.shape[-2:]:
            illumination = F.interpolate(illumination, size=x.shape[-2:], mode="bilinear",
                                         align_corners=False)
        return x - illumination


class ChannelAttention(nn.Module):
    def __init__(self, c, reduction=16):
        super().__init__()
        self.fc = nn.Sequential(nn.Conv2d(c, c // reduction, 1, bias=False), nn.ReLU(),
                                nn.Conv2d(c // reduction, c, 1, bias=False))

    def forward(self, x):
        avg = self.fc(F.adaptive_avg_pool2d(x, 1))
        mx = self.fc(F.adaptive_max_pool2d(x, 1))
        return torch.sigmoid(avg + mx) * x


class SpatialAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3, bias=False)

    def forward(self, x):
        s = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(s)) * x


class RMFABlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.texture_module = TextureModule(c)
        self.tone_mapping = ToneMappingModule(c)
        self.fusion = nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=1), nn.ReLU())
        self.channel_attention = ChannelAttention(c)
        self.spatial_attention = SpatialAttention()

    def forward(self, x):
        fused = self.fusion(torch.cat([self.texture_module(x), self.tone_mapping(x)], dim=1))
        return self.spatial_attention(self.channel_attention(fused)) + x


class RMFANet(nn.Module):
    def __init__(self, num_blocks=2, width=16):
        super().__init__()
        self.input_module = nn.Sequential(nn.Conv2d(3, width, 3, padding=1),
                                          nn.Conv2d(width, width, 3, padding=1), nn.Tanh())
        self.rmfa_blocks = nn.ModuleList([RMFABlock(width) for _ in range(num_blocks)])
        self.output_module = nn.Sequential(nn.Conv2d(width, 3, 3, padding=1), nn.Sigmoid())

    def forward(self, x):
        x = self.input_module(x)
        for block in self.rmfa_blocks:
            x = block(x)
        return self.output_module(x)


NETS = {
    "efficient": (EfficientISP, 3060),
    "robust": (RobustISP, 1616),
    "rmfa_tiny": (lambda: RMFANet(num_blocks=2, width=16), 29223),
}


# ----------------------------------------------------------------------- packing

def _levels(raw, black, white):
    """raw: (H, W) tensor; black[4] per site of the 2×2 block row by row."""
    h, w = raw.shape
    b = torch.tensor(black, dtype=raw.dtype).view(2, 2)
    bmap = b.repeat((h + 1) // 2, (w + 1) // 2)[:h, :w]
    return raw - bmap, white - bmap


def pack_rggb4(raw, black, white):
    """(H, W) RGGB mosaic -> (1, 4, H/2, W/2): B, G(top right), R, G(bottom left)."""
    num, den = _levels(raw, black, white)
    x = num / den
    planes = [x[1::2, 1::2], x[0::2, 1::2], x[0::2, 0::2], x[1::2, 0::2]]
    return torch.stack(planes, dim=0).unsqueeze(0)


def split_rggb3(raw, black, white):
    """(H, W) RGGB mosaic -> (1, 3, H, W): each sample on its own plane, 1.0 elsewhere."""
    num, den = _levels(raw, black, white)
    x = num.clamp(min=0) / den
    out = torch.ones((3,) + raw.shape, dtype=raw.dtype)
    out[0, 0::2, 0::2] = x[0::2, 0::2]
    out[1, 0::2, 1::2] = x[0::2, 1::2]
    out[1, 1::2, 0::2] = x[1::2, 0::2]
    out[2, 1::2, 1::2] = x[1::2, 1::2]
    return out.unsqueeze(0)


def net_input(net, raw, black, white):
    return split_rggb3(raw, black, white) if net == "rmfa_tiny" else pack_rggb4(raw, black, white)


# ------------------------------------------------------------------------- files

def write_safetensors(path, tensors):
    """tensors: list of (name, float32 tensor). Format: u64 LE header size, JSON
    header padded with spaces to a multiple of 8, then the raw LE data."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors:
        data = t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((-len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def make_mosaic(width, height, gen, lo, hi):
    """A smooth field (upsampled coarse noise + a gradient) plus fine noise, scaled
    into [lo, hi] and rounded. Returns an (H, W) float64 tensor of integers."""
    coarse = torch.rand((1, 1, max(2, height // 6), max(2, width // 6)), generator=gen,
                        dtype=torch.float64)
    smooth = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0, 0]
    yy = torch.linspace(0, 1, height, dtype=torch.float64).view(-1, 1)
    xx = torch.linspace(0, 1, width, dtype=torch.float64).view(1, -1)
    field = 0.6 * smooth + 0.2 * (xx + yy) / 2
    field = field + 0.08 * torch.randn((height, width), generator=gen, dtype=torch.float64)
    field = (field - field.min()) / (field.max() - field.min() + 1e-12)
    return torch.round(lo + field * (hi - lo)).clamp(lo, hi)


def cmd_make(args):
    torch.set_num_threads(2)
    if args.net not in NETS:
        sys.exit(f"unknown net {args.net!r} (one of {', '.join(NETS)})")
    black = [float(v) for v in args.black.split(",")]
    if len(black) != 4:
        sys.exit("--black takes four comma-separated levels")
    white = float(args.white)
    ctor, expected = NETS[args.net]
    torch.manual_seed(args.seed)
    model = ctor().eval()  # float32, torch's default init
    if args.gain != 1.0:  # a stronger net: at the default init RMFA's attention barely shows
        with torch.no_grad():
            for prm in model.parameters():
                prm.mul_(args.gain)
    count = sum(p.numel() for p in model.parameters())
    print(f"{args.net}: {count} parameters")
    if count != expected:
        sys.exit(f"{args.net}: {count} parameters, expected {expected}")
    os.makedirs(args.outdir, exist_ok=True)
    write_safetensors(os.path.join(args.outdir, "weights.safetensors"),
                      list(model.state_dict().items()))

    gen = torch.Generator().manual_seed(args.seed + 1)
    raw = make_mosaic(args.width, args.height, gen, min(black), white)
    raw.to(torch.int32).numpy().astype("<u2").tofile(os.path.join(args.outdir, "mosaic.u16"))
    with open(os.path.join(args.outdir, "meta.txt"), "w") as f:
        f.write("%d %d %s %s\n" % (args.width, args.height, " ".join("%g" % b for b in black),
                                   "%g" % white))

    model = model.double()  # the float32 weights, exactly, computed in float64
    with torch.no_grad():
        out = model(net_input(args.net, raw, black, white))[0]
    assert out.shape == (3, args.height, args.width), out.shape
    out.to(torch.float32).numpy().astype("<f4").tofile(os.path.join(args.outdir, "output.f32"))


def cmd_resize(args):
    """resize.bin: u32 count, then per case u32 C, Hin, Win, Hout, Wout, u32 mode
    (0: Upsample scale_factor 2, 1: interpolate size=...), f32 input C×Hin×Win,
    f32 output C×Hout×Wout (computed in float64)."""
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(args.seed)
    cases = []
    up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
    for hin, win in [(1, 1), (1, 3), (2, 2), (3, 5), (4, 9), (5, 4), (9, 5), (10, 18)]:
        cases.append((2, hin, win, 2 * hin, 2 * win, 0))
    for hin, win, hout, wout in [(16, 12, 17, 13), (4, 8, 5, 9), (8, 4, 9, 5), (2, 2, 7, 3),
                                 (9, 5, 4, 3), (6, 6, 6, 6), (1, 4, 3, 2)]:
        cases.append((2, hin, win, hout, wout, 1))
    with open(os.path.join(args.outdir, "resize.bin"), "wb") as f:
        f.write(struct.pack("<I", len(cases)))
        for c, hin, win, hout, wout, mode in cases:
            x = torch.rand((1, c, hin, win), generator=gen, dtype=torch.float64) * 2 - 1
            x = x.to(torch.float32).to(torch.float64)
            if mode == 0:
                y = up(x)
            else:
                y = F.interpolate(x, size=(hout, wout), mode="bilinear", align_corners=False)
            assert y.shape[-2:] == (hout, wout)
            f.write(struct.pack("<6I", c, hin, win, hout, wout, mode))
            f.write(x.to(torch.float32).numpy().astype("<f4").tobytes())
            f.write(y.to(torch.float32).numpy().astype("<f4").tobytes())


def cmd_count(_args):
    for name, (ctor, expected) in NETS.items():
        n = sum(p.numel() for p in ctor().parameters())
        print(f"{name}: {n} parameters (expected {expected})")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("net")
    m.add_argument("outdir")
    m.add_argument("--width", type=int, required=True)
    m.add_argument("--height", type=int, required=True)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--black", default=",".join(["%g" % BLACK_DEFAULT] * 4))
    m.add_argument("--white", default="%g" % WHITE_DEFAULT)
    m.add_argument("--gain", type=float, default=1.0,
                   help="multiply every initial weight by this (default 1: torch's init)")
    r = sub.add_parser("resize")
    r.add_argument("outdir")
    r.add_argument("--seed", type=int, default=0)
    sub.add_parser("count")
    args = p.parse_args()
    {"make": cmd_make, "resize": cmd_resize, "count": cmd_count}[args.cmd](args)


if __name__ == "__main__":
    main()
