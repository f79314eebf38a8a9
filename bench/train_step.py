#!/usr/bin/python3
"""One training step of lumos (`lumos train`) against the same step in PyTorch.

For each network (EfficientISP, RobustISP, RMFA-Net tiny), batch --batch (8)
crops of --crop (128) pixels, the unpaired method's full loss
(content:1, tv:1, texture:1, colour:1), on --threads (2) threads:

  lumos    `build/lumos train --net NET --data LIST --steps N --d-every 2
           --log CSV --quiet ...`, its CSV log's elapsed seconds per step:
           odd steps are generator (G) steps, even steps a G step plus the
           discriminators' (D) step; steps 1-4 are warm-ups. G = median of
           the odd steps' deltas, D = median of (even delta - the odd delta
           before it). LIST is --photos (16) photos spread over --data, so
           that by the timed steps every photo sits decoded in the trainer's
           cache, as in a long run (where each photo is decoded once): the
           step then draws its next batch (cropping, unprocessing, classical
           render) on the trainer's thread while the two workers compute; a
           --terms tv run (forward + tv + backward only) shows that floor.
  PyTorch  Debian's torch 1.13 (this /usr/bin/python3), float32,
           set_num_threads(--threads), the modules of tests/torch/isp_nets.py
           and the loss pieces of tests/torch/losses.py (MobileNetV2
           features[:12] with TF padding, lightness, blur, discriminators), on
           random data of the same shapes (no data loading). G step: the ISP
           forward on the packed batch, the four terms each back-propagated on
           its own to the ISP's parameters (autograd.grad, retain_graph),
           g = sum_i w_i g_i / (||g_i|| + 1e-12), Adam (5e-4, betas 0.5, 0.9).
           D step: the relativistic loss of the three discriminators plus
           gamma/2 (R1 + R2), gamma 10, by double backward (create_graph),
           Adam (1e-5). --warmup (2) untimed steps, then --runs (5) timed.
           --omp-passive sets OMP_WAIT_POLICY=PASSIVE for it: with other work on
           the cores, its spinning OpenMP threads otherwise lose several-fold.

Prints a Markdown table: per network and step kind, lumos s, PyTorch s and
PyTorch / lumos (> 1: lumos faster). The parent imports neither torch nor
numpy; PyTorch runs in a child process.
"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
from common import ROOT, die, lumos_exe  # noqa: E402

NETS = {"efficient": ("efficient", "efficient"), "robust": ("robust", "robust"),
        "rmfa": ("rmfa-tiny", "rmfa_tiny")}  # ours -> (lumos --net, isp_nets)
TITLE = {"efficient": "EfficientISP", "robust": "RobustISP", "rmfa": "RMFA-Net tiny"}
FEATURES = os.path.expanduser("~/.cache/lumos/mobilenet_v2_block10.safetensors")
PHOTOS = os.path.expanduser("~/.cache/lumos/photos.txt")
GAMMA = 10.0
WARM = 4  # lumos's untimed steps: each of the --photos photos decoded and cached


# ------------------------------------------------------------------- torch side

def torch_worker(a):
    """Child process: times PyTorch's G and D steps. argv: _torch NET BATCH
    CROP WARMUP RUNS THREADS SEED FEATURES CHANNELS_LAST(0|1). Prints a JSON line."""
    import math
    import resource
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, os.path.join(ROOT, "tests", "torch"))
    import isp_nets
    import losses  # sets the default dtype to float64 on import: set back below
    from learned_speed import read_safetensors
    torch.set_default_dtype(torch.float32)

    net, batch, crop, warmup, runs, threads, seed, features, cl = a
    batch, crop, warmup, runs, threads, seed = (int(v) for v in (batch, crop, warmup, runs,
                                                                 threads, seed))
    cl = cl == "1"
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(seed)
    fmt = torch.channels_last if cl else torch.contiguous_format

    model = isp_nets.NETS[net][0]().train()  # torch's default init, float32
    params = list(model.parameters())
    feats = losses.mobilenet(read_safetensors(features)).float().to(memory_format=fmt)
    feats7 = feats[:8]  # up to features[7]: what the texture discriminators need

    def disc_params(colour, cin):
        """A discriminator of isp_nets.def with torch's default init, as the
        {name: leaf tensor} dict losses.disc_layers takes."""
        if colour:
            layers = [("fc1", cin, 512, 1), ("fc2", 512, 512, 1), ("fc3", 512, 1, 1)]
        else:
            layers = [("conv1", cin, 48, 5), ("conv2", 48, 128, 3), ("conv3", 128, 192, 3),
                      ("conv4", 192, 192, 3), ("conv5", 192, 128, 3), ("fc1", 128, 1024, 1),
                      ("fc2", 1024, 1, 1)]
        p = {}
        for name, ci, co, k in layers:
            conv = torch.nn.Conv2d(ci, co, k)
            p[name + ".weight"] = conv.weight.detach().clone().requires_grad_(True)
            p[name + ".bias"] = conv.bias.detach().clone().requires_grad_(True)
        return p

    d_early, d_deep, d_colour = disc_params(False, 16), disc_params(False, 64), \
        disc_params(True, 96)
    d_all = [t for p in (d_early, d_deep, d_colour) for t in p.values()]

    def disc_scores(p, x, colour=False):
        """losses.disc_layers with LeakyReLU 0.2, but one mean score per sample
        (B,) instead of one over the batch: the per-sample pairs of lumos."""
        lr = lambda v: F.leaky_relu(v, 0.2)  # noqa: E731
        if colour:
            x = lr(F.conv2d(x, p["fc1.weight"], p["fc1.bias"]))
            x = lr(F.conv2d(x, p["fc2.weight"], p["fc2.bias"]))
            return F.conv2d(x, p["fc3.weight"], p["fc3.bias"]).mean(dim=(1, 2, 3))
        for name, s in (("conv1", 2), ("conv2", 2), ("conv3", 1), ("conv4", 1), ("conv5", 2)):
            w = p[name + ".weight"]
            x = lr(F.conv2d(x, w, p[name + ".bias"], stride=s, padding=w.shape[-1] // 2))
        x = lr(F.conv2d(x, p["fc1.weight"], p["fc1.bias"]))
        return F.conv2d(x, p["fc2.weight"], p["fc2.bias"]).mean(dim=(1, 2, 3))

    # losses.blurred in float32, its separable 21x21 Gaussian (sigma 3) made once
    i = torch.arange(-10, 11, dtype=torch.float32)
    taps1 = torch.exp(-i * i / 18.0)
    taps1 = taps1 / taps1.sum()
    kx = taps1.view(1, 1, 1, 21).repeat(3, 1, 1, 1)
    ky = taps1.view(1, 1, 21, 1).repeat(3, 1, 1, 1)

    def blurred(img):
        b = F.conv2d(img, kx, padding=(0, 10), groups=3)
        return 2.0 * F.conv2d(b, ky, padding=(10, 0), groups=3) - 1.0

    def lightness(img):
        return losses.lightness(img).contiguous(memory_format=fmt)

    def tv(img):  # train/losses.c: mean over each direction's pairs, summed
        return ((img[..., :, 1:] - img[..., :, :-1]) ** 2).mean() + \
            ((img[..., 1:, :] - img[..., :-1, :]) ** 2).mean()

    taps = losses.taps
    last = losses.TAP_LAST

    # Self-check of the float32 pieces against losses.py (float64) on one sample.
    with torch.no_grad():
        img = torch.rand(1, 3, 32, 32)
        ref = losses.blurred(img.double())
        assert (blurred(img).double() - ref).abs().max() < 1e-5
        x = torch.randn(2, 16, 16, 16)
        assert abs(float(disc_scores(d_early, x)[1]) -
                   float(losses.disc(d_early, x[1:2], False))) < 1e-4
        x = torch.randn(2, 96, 4, 4)
        assert abs(float(disc_scores(d_colour, x, True)[0]) -
                   float(losses.disc(d_colour, x[0:1], True))) < 1e-4

    # Random data of the training shapes: the packed (or split) mosaic, the
    # classical render (content target) and the target photo crops.
    if net == "rmfa_tiny":
        x_in = torch.rand(batch, 3, crop, crop)
    else:
        x_in = torch.rand(batch, 4, crop // 2, crop // 2)
    x_in = x_in.contiguous(memory_format=fmt)
    classic = torch.rand(batch, 3, crop, crop).contiguous(memory_format=fmt)
    target = torch.rand(batch, 3, crop, crop).contiguous(memory_format=fmt)
    model = model.to(memory_format=fmt)
    opt_g = torch.optim.Adam(params, lr=5e-4, betas=(0.5, 0.9), eps=1e-8)
    opt_d = torch.optim.Adam(d_all, lr=1e-5, betas=(0.5, 0.9), eps=1e-8)
    weights = [1.0, 1.0, 1.0, 1.0]  # content, tv, texture, colour

    def g_step():
        out = model(x_in)
        with torch.no_grad():  # the fixed sides: content reference and D(real)
            ref = taps(feats, lightness(classic))[last]
            rt = taps(feats7, lightness(target))
            r_early, r_deep = disc_scores(d_early, rt[1]), disc_scores(d_deep, rt[7])
            r_colour = disc_scores(d_colour, taps(feats, blurred(target))[last], True)
        tl = taps(feats, lightness(out))
        tb = taps(feats, blurred(out))[last]
        terms = [((tl[last] - ref) ** 2).mean(),
                 tv(out),
                 (F.softplus(-(disc_scores(d_early, tl[1]) - r_early)) +
                  F.softplus(-(disc_scores(d_deep, tl[7]) - r_deep))).mean(),
                 F.softplus(-(disc_scores(d_colour, tb, True) - r_colour)).mean()]
        total = [torch.zeros_like(p) for p in params]
        for k, term in enumerate(terms):
            g = torch.autograd.grad(term, params, retain_graph=k + 1 < len(terms))
            norm = math.sqrt(sum(float((gi.double() ** 2).sum()) for gi in g))
            f = weights[k] / (norm + 1e-12)
            for t, gi in zip(total, g):
                t.add_(gi, alpha=f)
        for p, t in zip(params, total):
            p.grad = t
        opt_g.step()
        return out.detach()

    def d_step(fake):
        with torch.no_grad():
            ft, rt = taps(feats7, lightness(fake)), taps(feats7, lightness(target))
            fb = taps(feats, blurred(fake))[last]
            rb = taps(feats, blurred(target))[last]
        for p, xr, xf, colour in ((d_early, rt[1], ft[1], False), (d_deep, rt[7], ft[7], False),
                                  (d_colour, rb, fb, True)):
            xr = xr.detach().requires_grad_(True)
            xf = xf.detach().requires_grad_(True)
            sr, sf = disc_scores(p, xr, colour), disc_scores(p, xf, colour)
            gr = torch.autograd.grad(sr.sum(), xr, create_graph=True)[0]  # per sample: ∇D(r_b)
            gf = torch.autograd.grad(sf.sum(), xf, create_graph=True)[0]
            loss = F.softplus(-(sr - sf)).mean() + \
                0.5 * GAMMA * ((gr ** 2).sum() + (gf ** 2).sum()) / batch
            ps = list(p.values())
            for t, g in zip(ps, torch.autograd.grad(loss, ps)):
                t.grad = g
        opt_d.step()

    g_times, d_times = [], []
    for k in range(warmup + runs):
        t0 = time.perf_counter()
        fake = g_step()
        t1 = time.perf_counter()
        d_step(fake)
        t2 = time.perf_counter()
        if k >= warmup:
            g_times.append(t1 - t0)
            d_times.append(t2 - t1)
        print(f"{net} PyTorch step {k + 1}/{warmup + runs}: G {t1 - t0:.2f} s, "
              f"D {t2 - t1:.2f} s{'' if k >= warmup else ' (warm-up)'}", file=sys.stderr,
              flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"g": g_times, "d": d_times, "rss": rss,
                      "torch": torch.__version__.split("+")[0]}))


# ------------------------------------------------------------------ parent side

def run_child(cmd, env=None):
    """Runs cmd; returns (exit code, stdout, stderr, peak RSS MiB of that
    process alone: os.wait4's rusage)."""
    err = tempfile.TemporaryFile()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env)
    try:
        out = p.stdout.read()
        p.stdout.close()
        _, status, ru = os.wait4(p.pid, 0)
    except BaseException:  # Ctrl-C: do not leave the child running
        p.kill()
        p.wait()
        raise
    p.returncode = os.waitstatus_to_exitcode(status)
    err.seek(0)
    text = err.read().decode(errors="replace")
    err.close()
    return p.returncode, out.decode(errors="replace"), text, ru.ru_maxrss / 1024.0


def tail(text, n=15):
    return "\n".join(text.strip().splitlines()[-n:])


def lumos_run(exe, net, args, work, steps, terms=None, d_every=2):
    """One `lumos train` run; returns (per-step deltas in s, by step 1..N;
    peak RSS MiB; wall s)."""
    log = os.path.join(work, f"{net}-{terms or 'full'}.csv")
    cmd = [exe, "train", "--net", NETS[net][0], "--data", args.data,
           "--out", os.path.join(work, "out.safetensors"), "--steps", str(steps),
           "--batch", str(args.batch), "--crop", str(args.crop), "--threads", str(args.threads),
           "--d-every", str(d_every), "--features", args.features, "--log", log, "--quiet"]
    if terms:
        cmd += ["--terms", terms]
    t0 = time.perf_counter()
    rc, _, err, rss = run_child(cmd)
    wall = time.perf_counter() - t0
    if rc != 0:
        die(f"`{' '.join(cmd)}` failed (exit {rc}):\n{tail(err)}")
    with open(log, newline="") as f:
        elapsed = [float(r["elapsed_s"]) for r in csv.DictReader(f)]
    if len(elapsed) != steps:
        die(f"{log}: {len(elapsed)} rows, expected {steps}")
    deltas = [b - a for a, b in zip([0.0] + elapsed[:-1], elapsed)]
    return deltas, rss, wall


def fmt_list(v):
    return ", ".join(f"{t:.2f}" for t in v)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_torch":
        return torch_worker(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", default="efficient,robust,rmfa",
                    help="comma-separated: efficient, robust, rmfa (default all three)")
    ap.add_argument("--batch", type=int, default=8, help="samples per step (default 8)")
    ap.add_argument("--crop", type=int, default=128, help="crop side (default 128)")
    ap.add_argument("--threads", type=int, default=2, help="threads per engine (default 2)")
    ap.add_argument("--lumos-pairs", type=int, default=3,
                    help="lumos: timed (G, G+D) step pairs per net after the 4 warm-up steps "
                         "(default 3: 10 steps)")
    ap.add_argument("--rmfa-pairs", type=int, default=2,
                    help="the same for RMFA-Net tiny (default 2: 8 steps)")
    ap.add_argument("--photos", type=int, default=16,
                    help="lumos: train on N photos spread over --data (default 16; each is "
                         "decoded once, during the warm-up steps)")
    ap.add_argument("--runs", type=int, default=5, help="PyTorch: timed steps (default 5)")
    ap.add_argument("--warmup", type=int, default=2, help="PyTorch: untimed steps (default 2)")
    ap.add_argument("--floor-steps", type=int, default=10,
                    help="steps of the --terms tv run of EfficientISP that shows the data "
                         "drawing floor (default 8; 0: skip it)")
    ap.add_argument("--channels-last", action="store_true",
                    help="PyTorch: channels_last tensors and modules (default NCHW)")
    ap.add_argument("--omp-passive", action="store_true",
                    help="PyTorch: OMP_WAIT_POLICY=PASSIVE (OpenMP threads sleep instead of "
                         "spinning between parallel regions; much steadier when other work "
                         "shares the cores, see README.md)")
    ap.add_argument("--data", default=PHOTOS, help=f"lumos train --data (default {PHOTOS})")
    ap.add_argument("--features", default=FEATURES,
                    help=f"MobileNetV2 weights for both sides (default {FEATURES})")
    ap.add_argument("--lumos", help="the lumos executable (default build/lumos)")
    ap.add_argument("--seed", type=int, default=0, help="PyTorch's seed (default 0)")
    args = ap.parse_args()
    nets = [n.strip() for n in args.nets.split(",") if n.strip()]
    for n in nets:
        if n not in NETS:
            die(f"unknown net {n!r} (efficient, robust, rmfa)")
    if (args.lumos_pairs < 1 or args.rmfa_pairs < 1 or args.runs < 1 or args.warmup < 0
            or args.photos < 2):
        die("--lumos-pairs, --rmfa-pairs and --runs must be >= 1, --warmup >= 0, --photos >= 2")
    if args.crop < 8 or args.crop % 4:
        die("--crop must be a multiple of 4 and >= 8 (RMFA-Net's pyramid)")
    for path, what in ((args.features, "--features (train/fetch-mobilenet.sh)"),
                       (args.data, "--data")):
        if not os.path.exists(path):
            die(f"{path} not found: {what}")
    exe = lumos_exe(args.lumos)
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        print(f"note: running under {sys.executable}, not /usr/bin/python3 "
              "(Debian's python3-torch lives there)", file=sys.stderr)
    r = run_child([sys.executable, "-c", "import numpy, torch, torchvision"])
    if r[0] != 0:
        die(f"{tail(r[2], 1)}: run with Debian's /usr/bin/python3 "
            "(python3-torch, python3-torchvision)")

    torch_env = dict(os.environ)
    if args.omp_passive:
        torch_env["OMP_WAIT_POLICY"] = "PASSIVE"
    omp = torch_env.get("OMP_WAIT_POLICY", "unset")
    start = time.perf_counter()
    load0 = os.getloadavg()[0]
    rows, lines = [], []
    torch_version = "?"
    if load0 > 0.5 and not args.omp_passive and omp == "unset":
        note = (f"load average {load0:.1f} with OMP_WAIT_POLICY unset: PyTorch's spinning "
                "OpenMP threads can be slowed several-fold by the other work (--omp-passive)")
        print(f"note: {note}", file=sys.stderr)
        lines.append(note)
    with tempfile.TemporaryDirectory(prefix="lumos_train_step_") as work:
        with open(args.data) as f:
            every = [p.strip() for p in f if p.strip()]
        photos = every[::max(1, len(every) // args.photos)][:args.photos]  # across the list
        args.data = os.path.join(work, "photos.txt")
        with open(args.data, "w") as f:
            f.write("".join(p + "\n" for p in photos))
        floor = None
        if args.floor_steps > WARM:
            print(f"lumos: --terms tv run of EfficientISP ({args.floor_steps} steps) ...",
                  file=sys.stderr, flush=True)
            deltas, _, _ = lumos_run(exe, "efficient", args, work, args.floor_steps,
                                     terms="tv:1", d_every=1 << 30)
            floor = statistics.median(deltas[WARM:])
            lines.append(f"lumos floor (EfficientISP, --terms tv: forward + tv + backward, "
                         f"the next batch drawn meanwhile on the trainer's thread): steps "
                         f"{WARM + 1}-{args.floor_steps} {fmt_list(deltas[WARM:])} s, median "
                         f"{floor:.2f} s")
        for net in nets:
            pairs = args.rmfa_pairs if net == "rmfa" else args.lumos_pairs
            steps = WARM + 2 * pairs
            print(f"{net}: lumos train, {steps} steps (D every 2nd) ...", file=sys.stderr,
                  flush=True)
            deltas, l_rss, l_wall = lumos_run(exe, net, args, work, steps)
            g = [deltas[k] for k in range(WARM, steps, 2)]        # steps 5, 7, ...: G only
            gd = [deltas[k] for k in range(WARM + 1, steps, 2)]   # steps 6, 8, ...: G + D
            d = [b - a for a, b in zip(g, gd)]
            print(f"{net}: PyTorch, {args.warmup} + {args.runs} steps ...", file=sys.stderr,
                  flush=True)
            rc, out, err, t_rss = run_child([sys.executable, os.path.abspath(__file__), "_torch",
                                             *(str(v) for v in (
                                                 NETS[net][1], args.batch, args.crop, args.warmup,
                                                 args.runs, args.threads, args.seed,
                                                 args.features,
                                                 1 if args.channels_last else 0))],
                                            env=torch_env)
            if rc != 0:
                die(f"PyTorch ({net}) failed (exit {rc}):\n{tail(err)}")
            t = json.loads(out.strip().splitlines()[-1])
            torch_version = t["torch"]
            lg, ld = statistics.median(g), statistics.median(d)
            tg, td = statistics.median(t["g"]), statistics.median(t["d"])
            rows.append((net, "G", lg, tg))
            rows.append((net, "D", ld, td))
            lines.append(f"{TITLE[net]}, lumos: step deltas {fmt_list(deltas)} s (steps 1-{WARM} "
                         f"warm-up; G = odd steps {fmt_list(g)}; D = even - odd before "
                         f"{fmt_list(d)}); peak RSS {l_rss:.0f} MiB, {l_wall:.0f} s wall "
                         "with setup")
            lines.append(f"{TITLE[net]}, PyTorch: G {fmt_list(t['g'])} s; D {fmt_list(t['d'])} s "
                         f"(after {args.warmup} warm-ups); peak RSS {t_rss:.0f} MiB")

    print(f"One training step: batch {args.batch} x {args.crop}x{args.crop}, unpaired "
          f"content + tv + texture + colour, {args.threads} threads per engine, one engine at a "
          f"time; PyTorch {torch_version} float32 "
          f"{'channels_last' if args.channels_last else 'NCHW'} (OMP_WAIT_POLICY {omp}) on random "
          f"data, median of "
          f"{args.runs} after {args.warmup} warm-ups; lumos median of its CSV log's step deltas "
          f"({args.lumos_pairs} G and G+D pairs, {args.rmfa_pairs} for RMFA-Net, after {WARM} "
          f"warm-ups, on {len(photos)} photos decoded once; its G steps include drawing the "
          f"next batch). {os.cpu_count()} CPUs, 1-min load average "
          f"{load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (other work skews "
          f"the times); {time.perf_counter() - start:.0f} s in all.\n")
    print("| net | step | lumos s | PyTorch s | PyTorch / lumos |")
    print("|---|---|---:|---:|---:|")
    for net, kind, lt, tt in rows:
        what = "G (generator)" if kind == "G" else "D (discriminators)"
        print(f"| {TITLE[net]} | {what} | {lt:.2f} | {tt:.2f} | {tt / lt:.2f}x |")
    print()
    for line in lines:
        print(f"- {line}")


if __name__ == "__main__":
    main()
