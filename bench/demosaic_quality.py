#!/usr/bin/python3
"""Demosaic quality: lumos against LibRaw's demosaickers on mosaicked photos.

Each colour photo is sampled as a Bayer mosaic by mkdng (camera space =
linear sRGB), converted back by `lumos convert` and by `dcraw_emu -q N` for
each of LibRaw's interpolations, and compared with the photo: colour PSNR
over R, G, B of the sRGB-encoded values, 4-pixel border left out. Prints a
Markdown table (rows: methods; columns: photos and the mean).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PHOTOS, ROOT, die, lumos_exe, need_exe  # noqa: E402

try:
    import imageio  # pulled in by python3-skimage; reads 16-bit TIFF
except ImportError:  # pragma: no cover
    imageio = None

DEFAULT_PHOTOS = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg",
                  "motorcycle_left.png"]
# LibRaw 0.20's interpolations (dcraw_emu usage; the GPL demosaic packs that
# held -q 5..10 are gone from 0.20).
DCRAW_METHODS = [(0, "bilinear"), (1, "VNG"), (2, "PPG"), (3, "AHD"), (4, "DCB"),
                 (11, "DHT"), (12, "AAHD")]
BORDER = 4


def read_rgb(path, want16=False):
    """An image as float RGB in [0, 1] (alpha dropped), or None if gray."""
    if imageio is None:
        die("needs imageio (Debian python3-imageio, pulled in by python3-skimage)")
    a = np.asarray(imageio.imread(path))
    # imageio's Pillow plugin would quietly cut a 16-bit RGB PNG to 8 bits;
    # TIFF goes through its tifffile plugin, which keeps 16 bits.
    if want16 and a.dtype != np.uint16:
        die(f"{path}: read as {a.dtype}, expected 16-bit samples")
    if a.ndim != 3 or a.shape[2] < 3:
        return None
    peak = 65535.0 if a.dtype == np.uint16 else 255.0
    return a[:, :, :3].astype(np.float64) / peak


def psnr(a, b):
    if a.shape != b.shape:
        die(f"size mismatch: {a.shape} vs {b.shape}")
    d = a[BORDER:-BORDER, BORDER:-BORDER] - b[BORDER:-BORDER, BORDER:-BORDER]
    mse = float(np.mean(d * d))
    return 99.0 if mse == 0 else 10 * np.log10(1.0 / mse)


def call(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        die(f"`{' '.join(cmd)}` failed (exit {r.returncode}):\n{r.stdout.decode(errors='replace')}")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lumos", help="lumos CLI (default build/lumos)")
    ap.add_argument("--mkdng", help="mkdng (default build/tests/mkdng)")
    ap.add_argument("--dcraw-emu", default="dcraw_emu")
    ap.add_argument("--photos", default=PHOTOS, help="folder of the photos")
    ap.add_argument("--cfa", default="rggb", choices=["rggb", "bggr", "grbg", "gbrg"])
    ap.add_argument("--black", default="512")
    ap.add_argument("--white", default="16383")
    ap.add_argument("--keep", metavar="DIR", help="write the DNGs and TIFFs here and keep them")
    ap.add_argument("images", nargs="*", default=DEFAULT_PHOTOS,
                    help="photo file names in --photos (default: %(default)s)")
    args = ap.parse_args()

    lumos = lumos_exe(args.lumos)
    mkdng = need_exe(args.mkdng or os.path.join(ROOT, "build", "tests", "mkdng"),
                     "build the tests (cmake --build build --target mkdng) or pass --mkdng")
    dcraw = need_exe(args.dcraw_emu, "install libraw-bin (./install-deps.sh)")

    work_ctx = None
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        work = args.keep
    else:
        work_ctx = tempfile.TemporaryDirectory(prefix="lumos_dmq_")
        work = work_ctx.name

    methods = ["lumos"] + [name for _, name in DCRAW_METHODS]
    scores = {m: [] for m in methods}
    names = []
    for name in args.images:
        src = os.path.join(args.photos, name)
        if not os.path.exists(src):
            print(f"notice: {src} missing, skipped", file=sys.stderr)
            continue
        ref = read_rgb(src)
        if ref is None:
            print(f"notice: {src} is not RGB, skipped", file=sys.stderr)
            continue
        stem = os.path.splitext(name)[0]
        dng = os.path.join(work, stem + ".dng")
        call([mkdng, src, dng, "--cfa", args.cfa, "--black", args.black, "--white", args.white])

        # Neutral settings on both sides: camera WB (1,1,1 here), no tone
        # curve, no sharpening, no brightening, sRGB out, 16 bits.
        out = os.path.join(work, stem + ".lumos.tiff")
        call([lumos, "convert", dng, "-o", out, "--bits", "16", "--tone", "0", "--sharpen", "0",
              "--wb", "camera", "--exposure", "0", "--format", "tiff", "--quiet"])
        scores["lumos"].append(psnr(read_rgb(out, True), ref))
        for q, label in DCRAW_METHODS:
            out = os.path.join(work, f"{stem}.q{q}.tiff")
            # -c 0: keep the DNG's WhiteLevel (LibRaw otherwise lowers the
            # white point to the data maximum when that is < 75% of it,
            # brightening photos without highlights).
            call([dcraw, "-w", "-W", "-c", "0", "-o", "1", "-g", "2.4", "12.92", "-6", "-T",
                  "-q", str(q), "-Z", out, dng])
            scores[label].append(psnr(read_rgb(out, True), ref))
        names.append(name)
    if not names:
        die(f"none of the photos found in {args.photos}")

    print(f"Colour PSNR (dB) vs the original, {args.cfa.upper()} mosaic, black {args.black}, "
          f"white {args.white}, {BORDER}-px border excluded.\n")
    print("| method | " + " | ".join(names) + " | mean |")
    print("|---" * (len(names) + 2) + "|")
    for m in methods:
        s = scores[m]
        print(f"| {m} | " + " | ".join(f"{v:.2f}" for v in s) + f" | **{np.mean(s):.2f}** |")
    if work_ctx:
        work_ctx.cleanup()


if __name__ == "__main__":
    main()
