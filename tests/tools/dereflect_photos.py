"""Inputs and checks for tests/test_dereflect_cli.sh (numpy and PIL; tifffile
for 16-bit TIFF).

  dereflect_photos.py make DIR PHOTO_DIR   write the inputs into DIR
  dereflect_photos.py info FILE...         one line a file: key=value facts
  dereflect_photos.py psnr A B REF         PSNR of A and of B against REF (dB)

The synthetic photo through glass is skimage's astronaut (the transmission)
plus 0.4 times a blurred crop of coffee (the reflection), clipped: the
classical method's own test pair (tests/test_dereflect_classic.c), here at
512x512 with an ICC profile and EXIF (Make, Model, Orientation 6).
"""
import hashlib
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageCms, ImageFilter

MAKE, MODEL, ORIENTATION = "LumosTest", "Glass 1", 6


def png_bytes(a, color_type, complete=True):
    """A PNG of uint8/uint16 array a (gray: color_type 0, RGB: 2), no filter;
    complete=False cuts it inside IDAT (no IEND)."""
    h, w = a.shape[:2]
    depth = 16 if a.dtype == np.uint16 else 8
    rows = a.astype(">u2" if depth == 16 else "u1").reshape(h, -1).tobytes()
    stride = len(rows) // h
    raw = b"".join(b"\0" + rows[y * stride:(y + 1) * stride] for y in range(h))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    data = zlib.compress(raw)
    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0))
    if not complete:
        return head + chunk(b"IDAT", data)[:len(data) // 2]
    return head + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def huge_png_header(w, h):
    """A PNG whose IHDR claims w x h RGB pixels, cut short in its first IDAT."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    body = zlib.compress(b"\0" * 65536)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            struct.pack(">I", 1 << 30) + b"IDAT" + body)


def make(out, photos):
    t = np.asarray(Image.open(f"{photos}/astronaut.png").convert("RGB"), np.float64) / 255
    r_img = Image.open(f"{photos}/coffee.png").convert("RGB").crop((0, 0, 512, 400)).resize((512, 512))
    r = np.asarray(r_img.filter(ImageFilter.GaussianBlur(4)), np.float64) / 255
    i = np.clip(t + 0.4 * r, 0, 1)
    rgb8 = (i * 255 + 0.5).astype(np.uint8)
    rgb16 = (i * 65535 + 0.5).astype(np.uint16)
    Image.fromarray((t * 255 + 0.5).astype(np.uint8)).save(f"{out}/truth.png")

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = MAKE, MODEL, ORIENTATION
    im = Image.fromarray(rgb8)
    im.save(f"{out}/refl.jpg", quality=95, icc_profile=icc, exif=exif.tobytes())
    im.save(f"{out}/refl8.tif", icc_profile=icc)
    im.convert("CMYK").save(f"{out}/cmyk.jpg", quality=90)
    with open(f"{out}/refl16.png", "wb") as f:
        f.write(png_bytes(rgb16, 2))
    with open(f"{out}/gray16.png", "wb") as f:
        f.write(png_bytes(rgb16[..., 1], 0))
    with open(f"{out}/one.png", "wb") as f:
        f.write(png_bytes(np.array([[[200, 100, 50]]], np.uint8), 2))
    with open(f"{out}/huge.png", "wb") as f:
        f.write(huge_png_header(100000, 100000))
    import tifffile
    tifffile.imwrite(f"{out}/refl16.tif", rgb16, photometric="rgb")
    jpeg = open(f"{out}/refl.jpg", "rb").read()
    with open(f"{out}/truncated.jpg", "wb") as f:
        f.write(jpeg[:len(jpeg) // 2])
    with open(f"{out}/notimage.jpg", "w") as f:
        f.write("this is a text file, not a photo\n" * 40)


def png_ihdr(path):
    b = open(path, "rb").read(33)
    if b[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    w, h, depth, color = struct.unpack(">IIBB", b[16:26])
    return depth, color


def info(path):
    facts = {}
    im = Image.open(path)
    im.load()
    facts["format"] = im.format
    facts["size"] = f"{im.width}x{im.height}"
    facts["mode"] = im.mode
    icc = im.info.get("icc_profile")
    facts["icc"] = hashlib.sha256(icc).hexdigest()[:16] if icc else "none"
    ex = im.getexif()
    facts["make"] = str(ex.get(0x010F, "none")).replace(" ", "_")
    facts["orientation"] = ex.get(0x0112, "none")
    if im.format == "PNG":
        depth, color = png_ihdr(path)
        facts["bits"] = depth
        facts["color"] = color
    if im.format == "TIFF":
        import tifffile
        with tifffile.TiffFile(path) as t:
            a = t.asarray()
        facts["dtype"] = a.dtype.name
        facts["shape"] = "x".join(map(str, a.shape))
    return " ".join(f"{k}={v}" for k, v in facts.items())


def psnr(a, ref):
    a = np.asarray(Image.open(a).convert("RGB"), np.float64)
    ref = np.asarray(Image.open(ref).convert("RGB"), np.float64)
    return 10 * np.log10(255.0 ** 2 / np.mean((a - ref) ** 2))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "info":
        for p in sys.argv[2:]:
            print(p, info(p))
    elif sys.argv[1] == "psnr":
        print(f"{psnr(sys.argv[2], sys.argv[4]):.2f} {psnr(sys.argv[3], sys.argv[4]):.2f}")
