#!/usr/bin/python3
"""UHD reflection removal speed: lumos's uhd network against the same network
in PyTorch, at 4K (3840x2160) and 8K (7680x4320).

  lumos    bench/dereflect_runner (built with the benchmarks: cmake --build
           build --target dereflect_runner): lumos_dereflect_image, float
           output, --threads threads;
  PyTorch  Debian's torch (this /usr/bin/python3), UhdDereflect of
           tests/torch/dereflect_nets.py, float32, torch.inference_mode(),
           torch.set_num_threads(--threads), on the photo padded by
           reflection to a multiple of 128 as lumos pads it (the padding is
           not timed).

Both get the same weights (--weights, default the shipped
data/weights/uhd.safetensors, else random ones made here) and the same
photo-like image. Each engine runs in its own process: --warmup untimed
runs, then --runs timed ones; median and the process's peak RSS (os.wait4).
Agreement: max |lumos T - torch T| over the image must be <= 1e-3, else
MISMATCH and exit 1 (after the table).
"""
import argparse
import os
import statistics
import sys
import tempfile

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
from common import ROOT, die  # noqa: E402
from learned_speed import run_child, tail, times_of, read_safetensors  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tests", "torch"))

SIZES = {"4k": (3840, 2160), "8k": (7680, 4320)}


def torch_child(weights, image, w, h, warmup, runs, threads, out):
    """The PyTorch side, in its own process (its peak RSS is its own)."""
    import time
    import numpy as np
    import torch
    import torch.nn.functional as F
    import dereflect_nets
    torch.set_default_dtype(torch.float32)  # tests/torch/losses.py sets float64 on import
    torch.set_num_threads(threads)
    net = dereflect_nets.UhdDereflect().float().eval()
    missing, unexpected = net.load_state_dict(read_safetensors(weights), strict=False)
    bad = [k for k in missing if not k.endswith(("relative_position_index", "num_batches_tracked"))]
    if bad or unexpected:
        die(f"{weights}: missing {bad[:3]}, unexpected {unexpected[:3]}")
    img = torch.from_numpy(np.fromfile(image, dtype="<f4").reshape(1, h, w, 3)).permute(0, 3, 1, 2)
    m = dereflect_nets.MULTIPLE
    pw, ph = -(-w // m) * m, -(-h // m) * m
    x = F.pad(img, (0, pw - w, 0, ph - h), mode="reflect").contiguous()
    with torch.inference_mode():
        for i in range(warmup + runs):
            t0 = time.monotonic()
            t, _ = net(x)
            if i >= warmup:
                print(f"time_s {time.monotonic() - t0:.4f}", flush=True)
    # lumos_dereflect_image gives an image: T clamped to 0..1
    t[0, :, :h, :w].clamp(0, 1).permute(1, 2, 0).contiguous().numpy().astype("<f4").tofile(out)


def make_inputs(work, w, h, weights, seed):
    import torch
    import dereflect_nets
    torch.set_default_dtype(torch.float32)
    gen = torch.Generator().manual_seed(seed)
    image = os.path.join(work, f"image_{w}x{h}.f32")
    img = dereflect_nets.photo_like(w, h, gen)
    img[0].permute(1, 2, 0).float().numpy().astype("<f4").tofile(image)
    if weights:
        return image, weights
    torch.manual_seed(seed)
    path = os.path.join(work, "uhd_random.safetensors")
    dereflect_nets.write_safetensors(path, dereflect_nets.state_tensors(dereflect_nets.UhdDereflect().float()))
    return image, path


def max_diff(a_path, b_path, chunk=1 << 24):
    import numpy as np
    a = np.memmap(a_path, dtype="<f4", mode="r")
    b = np.memmap(b_path, dtype="<f4", mode="r")
    if a.size != b.size:
        return float("inf")
    return max(float(np.abs(a[i:i + chunk] - b[i:i + chunk]).max()) for i in range(0, a.size, chunk))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="4k,8k", help="4k, 8k or WxH, comma-separated")
    ap.add_argument("--weights", help="uhd safetensors (default: data/weights/uhd.safetensors, "
                    "else random)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--no-torch", action="store_true", help="lumos alone")
    ap.add_argument("--torch-child", nargs=8, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.torch_child:
        wts, image, w, h, warmup, runs, threads, out = a.torch_child
        torch_child(wts, image, int(w), int(h), int(warmup), int(runs), int(threads), out)
        return 0
    runner = os.path.join(a.build, "bench", "dereflect_runner")
    if not os.access(runner, os.X_OK):
        die(f"{runner} missing: cmake --build {a.build} --target dereflect_runner")
    shipped = os.path.join(ROOT, "data", "weights", "uhd.safetensors")
    weights = a.weights or (shipped if os.path.isfile(shipped) else None)
    rows, mismatch = [], False
    with tempfile.TemporaryDirectory(prefix="lumos-dereflect-speed-") as work:
        for size in a.sizes.split(","):
            w, h = SIZES[size] if size in SIZES else map(int, size.split("x"))
            image, wts = make_inputs(work, w, h, weights, a.seed)
            out_l, out_t = os.path.join(work, "lumos.f32"), os.path.join(work, "torch.f32")
            rc, out, err, rss_l = run_child([runner, "uhd", wts, image, str(w), str(h),
                                             str(a.warmup), str(a.runs), str(a.threads), out_l])
            if rc:
                die(f"dereflect_runner failed (exit {rc}):\n{tail(err)}")
            t_l = statistics.median(times_of(out))
            row = [f"{w}x{h}", f"{t_l:.2f}", f"{rss_l:.0f}"]
            if not a.no_torch:
                rc, out, err, rss_t = run_child([sys.executable, os.path.abspath(__file__),
                                                 "--torch-child", wts, image, str(w), str(h),
                                                 str(a.warmup), str(a.runs), str(a.threads), out_t])
                if rc:
                    die(f"PyTorch failed (exit {rc}):\n{tail(err)}")
                t_t = statistics.median(times_of(out))
                d = max_diff(out_l, out_t)
                mismatch |= not d <= 1e-3
                row += [f"{t_t:.2f}", f"{rss_t:.0f}", f"{t_t / t_l:.2f}x", f"{d:.1e}"]
            rows.append(row)
            print(" | ".join(row), file=sys.stderr, flush=True)
    head = ["size", "lumos s", "lumos peak MiB"]
    if not a.no_torch:
        head += ["PyTorch s", "PyTorch peak MiB", "lumos speed-up", "max |diff|"]
    print(f"uhd, {a.threads} threads, median of {a.runs} (weights: "
          f"{os.path.relpath(weights, ROOT) if weights else 'random'})\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    if mismatch:
        print("MISMATCH: lumos and PyTorch disagree by more than 1e-3")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
