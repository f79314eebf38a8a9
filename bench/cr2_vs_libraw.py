#!/usr/bin/python3
"""cr2_vs_libraw.py — the ISPs on the real CR2 (rawtran-doc's Canon EOS 30D)
against LibRaw's own rendering of it.

    /usr/bin/python3 bench/cr2_vs_libraw.py [--lumos build/lumos] [--keep DIR]
                                            [--preview FILE [--preview-scale 4]] [METHOD...]

METHOD: classic (lumos's classical ISP, tone 0), or NET[=WEIGHTS] for a
learned ISP (efficient, robust, rmfa-tiny; without WEIGHTS the shipped
data/weights/NET.safetensors; with, the row is named after the file).
--preview writes one image: LibRaw's rendering then each METHOD's, left to
right, each shrunk --preview-scale times (box filter), in the sensor's orientation. Default: classic and every network whose
shipped weights exist. The reference is `dcraw_emu -w -W -o 1 -g 2.4 12.92
-q 3 -T` (camera white balance, no auto-brightening, sRGB, AHD), which has no
tone curve: lumos's classical ISP runs with --tone 0 to match. Prints PSNR
(dB, 8-bit, sensor orientation) and SSIM (luma) of each against it, and
PSNR against LibRaw's rendering put through the tone curve the networks are
trained to give (the smoothstep 3v² − 2v³ of the sRGB value that training's
unprocessing inverts, train/unprocess.h): the networks' look, not a flaw,
makes most of the first column's gap.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import imageio
import numpy as np
from skimage.metrics import structural_similarity

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import CR2, ROOT, die, lumos_exe, need_exe  # noqa: E402

NETS = ("efficient", "robust", "rmfa-tiny")


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def luma(img):
    return img[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--lumos")
    p.add_argument("--keep", help="keep the renderings in DIR")
    p.add_argument("--preview", help="write LibRaw's and each method's rendering side by side "
                                     "(JPEG or PNG, by the name)")
    p.add_argument("--preview-scale", type=int, default=4, help="shrink factor of --preview (4)")
    p.add_argument("methods", nargs="*")
    a = p.parse_args()
    lumos = lumos_exe(a.lumos)
    dcraw = need_exe("dcraw_emu", "install libraw-bin (install-deps.sh)")
    if not os.path.exists(CR2):
        die(f"{CR2} not found: install rawtran-doc")
    methods = a.methods or ["classic"] + [n for n in NETS if os.path.exists(
        os.path.join(ROOT, "data", "weights", n + ".safetensors"))]
    out = a.keep or tempfile.mkdtemp(prefix="lumos-cr2-")
    os.makedirs(out, exist_ok=True)

    ref_path = os.path.join(out, "libraw.tiff")
    subprocess.run([dcraw, "-w", "-W", "-o", "1", "-g", "2.4", "12.92", "-q", "3", "-t", "0",
                    "-T", "-Z", ref_path, CR2], check=True)
    ref = imageio.imread(ref_path)[..., :3]
    v = ref.astype(np.float64) / 255
    ref_toned = np.clip((3 * v * v - 2 * v * v * v) * 255 + 0.5, 0, 255).astype(np.uint8)

    rows, shown = [], [ref]
    for m in methods:
        net, _, weights = m.partition("=")
        name = os.path.splitext(os.path.basename(weights))[0] if weights else net
        path = os.path.join(out, name + ".tiff")
        cmd = [lumos, "convert", CR2, "-o", path, "--format", "tiff", "--quiet"]
        cmd += ["--tone", "0"] if net == "classic" else ["--isp", net]
        if weights:
            cmd += ["--weights", weights]
        subprocess.run(cmd, check=True)
        img = imageio.imread(path)[..., :3]
        if img.shape != ref.shape:  # lumos writes upright; LibRaw with -t 0 does not
            img = np.rot90(img, k=1) if np.rot90(img, k=1).shape == ref.shape else img
        if img.shape != ref.shape:
            die(f"{name}: {img.shape} against LibRaw's {ref.shape}")
        # the orientation that fits best (lumos stores upright)
        best = max((np.rot90(img, k) for k in range(4) if np.rot90(img, k).shape == ref.shape),
                   key=lambda x: psnr(x, ref))
        rows.append((name, psnr(best, ref), structural_similarity(luma(best), luma(ref), data_range=255),
                     psnr(best, ref_toned)))
        shown.append(best)
    print("| ISP on IMG_5952.CR2 | PSNR vs LibRaw (dB) | SSIM | PSNR vs LibRaw + tone curve (dB) |")
    print("|---|---:|---:|---:|")
    for name, ps, ss, pt in rows:
        print(f"| {name} | {ps:.2f} | {ss:.4f} | {pt:.2f} |")
    if a.preview:
        write_preview(a.preview, shown, a.preview_scale)
    if not a.keep:
        subprocess.run(["rm", "-rf", out])


def write_preview(path, images, scale):
    """images (LibRaw's first; all in the sensor's orientation) side by side,
    shrunk by scale, 4 white pixels apart; written atomically."""
    small = []
    for img in images:
        h, w = (img.shape[0] // scale) * scale, (img.shape[1] // scale) * scale
        x = img[:h, :w].astype(np.float64).reshape(h // scale, scale, w // scale, scale, 3)
        small.append(x.mean(axis=(1, 3)))
    row = np.concatenate([np.pad(x, ((0, 0), (0, 4), (0, 0)), constant_values=255) for x in small],
                         axis=1)[:, :-4]
    row = np.clip(row + 0.5, 0, 255).astype(np.uint8)
    tmp = path + ".part" + os.path.splitext(path)[1]
    imageio.imwrite(tmp, row, **({"quality": 90} if path.lower().endswith((".jpg", ".jpeg")) else {}))
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
