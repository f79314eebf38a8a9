#!/usr/bin/python3
"""Learned-ISP speed: lumos's Halide pipelines against PyTorch and ONNX Runtime.

For each network (EfficientISP, RobustISP, RMFA-Net tiny) at one size
(default 4000x3000 mosaic = 12 MP output), on --threads threads (default 2):

  lumos        bench/learned_runner.c (compiled here into a temp dir against
               build/liblumos.a): lumos_isp_learned, 8-bit output;
  PyTorch      Debian's torch (this /usr/bin/python3), the modules of
               tests/torch/isp_nets.py, float32, channels_last,
               torch.inference_mode(), on the packed (4-channel) or split
               (3-channel, RMFA) input tensor: the packing is timed apart and
               NOT included in the model time;
  ONNX Runtime onnxruntime-node (bench/ort_runner.js) on the model exported by
               torch.onnx.export (opset 13, dynamic H and W), the same input
               tensor (packed here, not timed), intraOpNumThreads = --threads,
               graph optimisations 'all'.

All three get the same random weights (torch's default init x --gain, --seed) through
one safetensors file and the same RGGB mosaic (isp_nets.make_mosaic). Each
runs in its own process: --warmup untimed runs (1), then --runs timed ones; median,
min, and the process's peak RSS (os.wait4). GFLOP counts 2 x the multiply-adds
of every convolution, from the layer shapes at this size:
FLOP = 2 * sum over convs of C_out * C_in * k_h * k_w * H_out * W_out
(bias adds, activations, pools, resizes, attention products not counted).

Agreement: over the whole image, max |lumos 8-bit - 255*clamp(torch, 0, 1)|
and the same against ONNX Runtime must be <= 1, else the script says MISMATCH
and exits 1 (after printing the table).
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
from common import ROOT, die  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tests", "torch"))

PEAK_GFLOPS = 156.0  # this machine's fp32 peak (2 cores)
NETS = {"efficient": "efficient", "robust": "robust", "rmfa": "rmfa_tiny"}  # ours -> isp_nets
TITLE = {"efficient": "EfficientISP", "robust": "RobustISP", "rmfa": "RMFA-Net tiny"}
BLACK = [62.0, 60.0, 58.0, 61.0]  # per site of the 2x2 block, row by row
WHITE = 1023.0
ORT_VERSION = "1.30.0"


# ----------------------------------------------------------- child processes

def run_child(cmd, env=None, cwd=None):
    """Runs cmd; returns (exit code, stdout, stderr, peak RSS MiB of that
    process alone: os.wait4's rusage)."""
    err = tempfile.TemporaryFile()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, cwd=cwd)
    try:
        out = p.stdout.read()
        p.stdout.close()
        _, status, ru = os.wait4(p.pid, 0)
    except BaseException:  # Ctrl-C or SIGTERM: do not leave the child running
        p.kill()
        p.wait()
        raise
    p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    err.seek(0)
    text = err.read().decode(errors="replace")
    err.close()
    return p.returncode, out.decode(errors="replace"), text, ru.ru_maxrss / 1024.0


def times_of(stdout):
    return [float(line.split()[1]) for line in stdout.splitlines() if line.startswith("time_s ")]


def tail(text, n=15):
    return "\n".join(text.strip().splitlines()[-n:])


# ------------------------------------------------------------------- torch side

def read_safetensors(path):
    """{name: float32 tensor} from a safetensors file of F32 tensors."""
    import numpy as np
    import torch
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        blob = f.read()
    out = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        if spec["dtype"] != "F32":
            die(f"{path}: {name} is {spec['dtype']}, only F32 is read here")
        a, b = spec["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(blob[a:b], dtype="<f4").copy()
                                     .reshape(spec["shape"]))
    return out


def load_model(net, weights):
    import isp_nets
    model = isp_nets.NETS[NETS[net]][0]().eval()
    model.load_state_dict(read_safetensors(weights), strict=True)
    return model


def load_input(net, mosaic, width, height):
    """The network's input tensor (1, C, h, w), float32, NCHW contiguous."""
    import numpy as np
    import torch
    import isp_nets
    raw = torch.from_numpy(np.fromfile(mosaic, dtype="<u2").astype(np.float32)
                           .reshape(height, width))
    return isp_nets.net_input(NETS[net], raw, BLACK, WHITE).contiguous()


def conv_macs(conv, h, w):
    kh, kw = conv.kernel_size
    return conv.out_channels * (conv.in_channels // conv.groups) * kh * kw * h * w


def count_macs(net, model, width, height):
    """Multiply-adds of every convolution, from the module's layer shapes and
    the resolution each layer runs at (stride-1 'same' convolutions)."""
    if net != "rmfa":  # packed nets: every conv at (H/2, W/2), then pixel_shuffle
        return sum(conv_macs(c, height // 2, width // 2)
                   for c in (model.conv1, model.conv2, model.conv3))
    full, half = (height, width), (height // 2, width // 2)
    quarter = (half[0] // 2, half[1] // 2)  # AvgPool2d(2) twice, floor
    m = sum(conv_macs(c, *full) for c in model.input_module if hasattr(c, "kernel_size"))
    for b in model.rmfa_blocks:
        m += conv_macs(b.texture_module.high_freq[0], *full)
        m += conv_macs(b.texture_module.low_freq[0], *full)
        m += conv_macs(b.tone_mapping.level1[1], *half)
        m += conv_macs(b.tone_mapping.level2[1], *quarter)
        m += conv_macs(b.tone_mapping.level3[0], *quarter)
        m += conv_macs(b.fusion[0], *full)
        # the shared 1x1 MLP on the pooled vector, once for avg and once for max
        m += 2 * sum(conv_macs(c, 1, 1) for c in b.channel_attention.fc
                     if hasattr(c, "kernel_size"))
        m += conv_macs(b.spatial_attention.conv, *full)
    m += conv_macs(model.output_module[0], *full)
    return m


def check_count(net, model):
    """The analytic count against forward hooks on a small input."""
    import torch
    w, h = 44, 36
    seen = []
    hooks = [mod.register_forward_hook(
        lambda mod, _i, o: seen.append(conv_macs(mod, o.shape[-2], o.shape[-1])))
        for mod in model.modules() if isinstance(mod, torch.nn.Conv2d)]
    c, s = (3, 1) if net == "rmfa" else (4, 2)
    with torch.no_grad():
        model(torch.rand(1, c, h // s, w // s))
    for hk in hooks:
        hk.remove()
    if sum(seen) != count_macs(net, model, w, h):
        die(f"{net}: MAC count {count_macs(net, model, w, h)} != hooked {sum(seen)}")


def torch_worker(a):
    """Child process: times the PyTorch model. argv: _torch NET WEIGHTS MOSAIC
    W H WARMUP RUNS THREADS OUT."""
    import torch
    net, weights, mosaic, w, h, warmup, runs, threads, out = a
    w, h, warmup, runs, threads = int(w), int(h), int(warmup), int(runs), int(threads)
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    model = load_model(net, weights).to(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    x = load_input(net, mosaic, w, h).contiguous(memory_format=torch.channels_last)
    print(f"pack_s {time.perf_counter() - t0:.6f}", flush=True)
    with torch.inference_mode():
        y = None
        for _ in range(warmup):
            y = None
            y = model(x)
        for _ in range(runs):
            y = None  # do not hold the previous output while computing the next
            t0 = time.perf_counter()
            y = model(x)
            t1 = time.perf_counter()
            print(f"time_s {t1 - t0:.6f}", flush=True)
    y.contiguous().numpy().tofile(out)  # float32 NCHW


# ------------------------------------------------------------------ parent side

def build_runner(build, work):
    """Compiles learned_runner.c here rather than in the main build."""
    lib = os.path.join(build, "liblumos.a")
    gen = os.path.join(build, "generators")
    # Every generated archive under it (the networks' live in generators/nets/);
    # of two with one name (one left behind by a moved target) the newer.
    newest = {}
    for d, _, files in os.walk(gen):
        for f in files:
            path = os.path.join(d, f)
            if f.endswith(".a") and (f not in newest or
                                     os.path.getmtime(path) > os.path.getmtime(newest[f])):
                newest[f] = path
    archives = sorted(newest.values())
    if not os.path.isfile(lib) or not archives:
        die(f"{lib} or {gen}/*.a missing: build lumos first "
            "(cmake -S . -B build && cmake --build build -j2) or pass --build DIR")
    flags = subprocess.run(["pkg-config", "--libs", "libraw_r", "libturbojpeg", "lcms2",
                            "libpng16", "libtiff-4", "jansson"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if flags.returncode != 0:
        die(f"pkg-config: {flags.stderr.strip()} (./install-deps.sh)")
    exe = os.path.join(work, "learned_runner")
    cc = os.environ.get("CC", "cc")
    r = subprocess.run([cc, "-std=c11", "-O2", "-o", exe, os.path.join(BENCH, "learned_runner.c"),
                        "-I" + os.path.join(ROOT, "include"), lib, "-Wl,--start-group", *archives,
                        "-Wl,--end-group", *flags.stdout.split(), "-lm", "-lpthread", "-ldl",
                        "-lstdc++"], stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        die(f"cannot build learned_runner.c:\n{r.stderr}")
    return exe


def ensure_ort(ort_dir):
    """node and onnxruntime-node (installed into ort_dir/node_modules on first
    use), or (None, reason)."""
    node = shutil.which("node")
    if not node:
        return None, "node not found (apt-get install nodejs npm)"
    if not os.path.isdir(os.path.join(ort_dir, "node_modules", "onnxruntime-node")):
        npm = shutil.which("npm")
        if not npm:
            return None, "npm not found (apt-get install npm)"
        print(f"installing onnxruntime-node@{ORT_VERSION} into {ort_dir}/node_modules ...",
              file=sys.stderr)
        os.makedirs(ort_dir, exist_ok=True)
        if not os.path.exists(os.path.join(ort_dir, "package.json")):
            shutil.copyfile(os.path.join(BENCH, "package.json"),
                            os.path.join(ort_dir, "package.json"))
        # Its post-install step downloads binaries (which fails here); the npm
        # package already ships the CPU ones for linux-x64.
        env = dict(os.environ, ONNXRUNTIME_NODE_INSTALL="skip")
        r = subprocess.run([npm, "install", "--no-package-lock", "--no-audit", "--no-fund"],
                           cwd=ort_dir, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            return None, f"npm install onnxruntime-node@{ORT_VERSION} failed:\n{tail(r.stdout)}"
    return node, None


def prep_worker(a):
    """Child process: weights, mosaic, MAC count; the ONNX model and its input
    file. argv: _prep NET DIR W H SEED GAIN ONNX(0|1). Prints a JSON line."""
    import torch
    import isp_nets
    net, d, width, height, seed, gain, want_onnx = a
    width, height, seed, gain = int(width), int(height), int(seed), float(gain)
    want_onnx = want_onnx == "1"
    torch.set_num_threads(2)
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(seed)
    model = isp_nets.NETS[NETS[net]][0]().eval()  # torch's default init, as `isp_nets.py make`
    with torch.no_grad():  # × --gain, as `isp_nets.py make --gain`
        for prm in model.parameters():
            prm.mul_(gain)
    weights = os.path.join(d, "weights.safetensors")
    isp_nets.write_safetensors(weights, list(model.state_dict().items()))
    gen = torch.Generator().manual_seed(seed + 1)
    raw = isp_nets.make_mosaic(width, height, gen, min(BLACK), WHITE)
    mosaic = os.path.join(d, "mosaic.u16")
    raw.to(torch.int32).numpy().astype("<u2").tofile(mosaic)
    del raw
    check_count(net, model)
    files = {"weights": weights, "mosaic": mosaic, "macs": count_macs(net, model, width, height)}
    if want_onnx:
        x = load_input(net, mosaic, width, height)
        files["input"] = os.path.join(d, "input.f32")
        files["input_shape"] = list(x.shape[1:])
        x.numpy().tofile(files["input"])
        del x
        # Dynamic H and W, traced on a small input: RMFA's one size-dependent
        # branch (the final resize when H or W is not a multiple of 4) is
        # taken at trace time, so the small input keeps the residues mod 4.
        c = 3 if net == "rmfa" else 4
        dummy = torch.rand(1, c, 64 + height % 4, 64 + width % 4) if net == "rmfa" \
            else torch.rand(1, c, 32, 32)
        files["onnx"] = os.path.join(d, "model.onnx")
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about that branch
            torch.onnx.export(model, dummy, files["onnx"], opset_version=13,
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {2: "h", 3: "w"},
                                            "output": {2: "H", 3: "W"}},
                              do_constant_folding=True)
    files["torch"] = torch.__version__.split("+")[0]
    print(json.dumps(files))


def max_diff(lumos_out, peer_out, width, height, rows=256):
    """max |lumos 8-bit - 255 * clamp(peer, 0, 1)| over the whole image."""
    import numpy as np
    a = np.memmap(lumos_out, dtype=np.uint8, mode="r", shape=(height, width, 3))
    b = np.memmap(peer_out, dtype="<f4", mode="r", shape=(3, height, width))
    worst = 0.0
    for y in range(0, height, rows):
        pa = a[y:y + rows].astype(np.float32)
        pb = np.clip(np.moveaxis(np.asarray(b[:, y:y + rows]), 0, -1), 0, 1) * 255
        worst = max(worst, float(np.abs(pa - pb).max()))
    return worst


def max_diff_float(p, q, n, chunk=1 << 22):
    import numpy as np
    a = np.memmap(p, dtype="<f4", mode="r", shape=(n,))
    b = np.memmap(q, dtype="<f4", mode="r", shape=(n,))
    return max(float(np.abs(a[i:i + chunk] - b[i:i + chunk]).max()) for i in range(0, n, chunk))


def check_worker(a):
    """Child process: the agreement check. argv: _check W H LUMOS TORCH|- ORT|-.
    Prints a JSON list of [what, max diff]."""
    import numpy as np
    w, h, lumos, torch_out, ort_out = a
    w, h = int(w), int(h)
    flat = np.memmap(lumos, dtype=np.uint8, mode="r", shape=(h * w * 3,))
    sample = np.asarray(flat[::max(1, flat.size // (1 << 22))]).astype(np.float32)
    out = [["lumos output spread", [float(sample.std()), float((sample == 0).mean()),
                                    float((sample == 255).mean())]]]
    if torch_out != "-":
        out.append(["lumos vs PyTorch", max_diff(lumos, torch_out, w, h)])
    if ort_out != "-":
        out.append(["lumos vs ONNX Runtime", max_diff(lumos, ort_out, w, h)])
    if torch_out != "-" and ort_out != "-":
        out.append(["PyTorch vs ONNX Runtime (float)",
                    max_diff_float(torch_out, ort_out, 3 * w * h)])
    print(json.dumps(out))


class Result:
    def __init__(self, engine, times, rss, extra=""):
        self.engine, self.times, self.rss, self.extra = engine, times, rss, extra
        self.median = statistics.median(times)


def worker(mode, *argv):
    """This script as a child process (see main): its JSON answer."""
    rc, out, err, _ = run_child([sys.executable, os.path.abspath(__file__), mode,
                                 *(str(v) for v in argv)])
    if rc != 0:
        die(f"{mode} {' '.join(str(v) for v in argv[:1])} failed (exit {rc}):\n{tail(err)}")
    return json.loads(out.strip().splitlines()[-1])


def bench_net(net, args, work, runner, node):
    w, h, th = args.width, args.height, args.threads
    reps = [str(args.warmup), str(args.runs), str(th)]  # every runner's WARMUP RUNS THREADS
    print(f"{net}: preparing weights, mosaic{', ONNX model' if node else ''} ...",
          file=sys.stderr)
    d = os.path.join(work, net)
    f = worker("_prep", net, d, w, h, args.seed, args.gain, 1 if node else 0)
    results, notes = [], []

    print(f"{net}: timing lumos ...", file=sys.stderr)
    lumos_out = os.path.join(d, "lumos.rgb8")
    rc, out, err, rss = run_child([runner, net, f["weights"], f["mosaic"], str(w), str(h),
                                   *("%g" % b for b in BLACK), "%g" % WHITE, *reps, lumos_out])
    if rc != 0:
        die(f"learned_runner ({net}) failed (exit {rc}):\n{tail(err)}")
    results.append(Result("lumos (Halide)", times_of(out), rss))

    print(f"{net}: timing PyTorch ...", file=sys.stderr)
    torch_out = os.path.join(d, "torch.f32")
    rc, out, err, rss = run_child([sys.executable, os.path.abspath(__file__), "_torch", net,
                                   f["weights"], f["mosaic"], str(w), str(h), *reps,
                                   torch_out])
    if rc == 0:
        pack = [float(line.split()[1]) for line in out.splitlines() if line.startswith("pack_s")]
        results.append(Result(f"PyTorch {f['torch']}", times_of(out), rss,
                              f"input packing {pack[0]:.3f} s, not included" if pack else ""))
    else:
        torch_out = "-"
        notes.append(f"PyTorch failed (exit {rc}{', killed' if rc < 0 else ''}): {tail(err, 5)}")

    ort_out = "-"
    if node:
        print(f"{net}: timing ONNX Runtime ...", file=sys.stderr)
        ort_out = os.path.join(d, "ort.f32")
        c, ih, iw = f["input_shape"]
        env = dict(os.environ, NODE_PATH=os.path.join(args.ort_dir, "node_modules"))
        rc, out, err, rss = run_child([node, os.path.join(BENCH, "ort_runner.js"), f["onnx"],
                                       f["input"], str(c), str(ih), str(iw), str(h), str(w),
                                       *reps, ort_out], env=env)
        if rc == 0:
            results.append(Result(f"ONNX Runtime {ORT_VERSION}", times_of(out), rss,
                                  "input packed outside the timing, output tensor "
                                  "preallocated"))
        else:
            ort_out = "-"
            notes.append(f"ONNX Runtime failed (exit {rc}): {tail(err, 5)}")
    print(f"{net}: checking agreement ...", file=sys.stderr)
    checks = worker("_check", w, h, lumos_out, torch_out, ort_out)
    if not args.keep:
        shutil.rmtree(d)  # hundreds of MB per net at 12 MP
    return f["macs"], results, notes, checks


def main():
    # Child modes. The parent imports neither torch nor numpy: Linux carries a
    # parent's RSS high-water mark into a child across fork + exec, so a big
    # parent would inflate every child's ru_maxrss.
    modes = {"_torch": torch_worker, "_prep": prep_worker, "_check": check_worker}
    if len(sys.argv) > 1 and sys.argv[1] in modes:
        return modes[sys.argv[1]](sys.argv[2:])
    # SIGTERM as an exception, so the temp dir (GBs at 12 MP) is removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", default="efficient,robust,rmfa",
                    help="comma-separated: efficient, robust, rmfa (default all three)")
    ap.add_argument("--width", type=int, default=4000, help="mosaic width (default 4000)")
    ap.add_argument("--height", type=int, default=3000, help="mosaic height (default 3000)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per engine (default 5)")
    ap.add_argument("--warmup", type=int, default=1,
                    help="untimed runs before the timed ones, per engine (default 1; ONNX "
                         "Runtime takes 2-4 runs to settle at 12 MP, see README.md)")
    ap.add_argument("--threads", type=int, default=2, help="threads per engine (default 2)")
    ap.add_argument("--seed", type=int, default=0, help="weights and mosaic seed (default 0)")
    ap.add_argument("--gain", type=float, default=2.0,
                    help="scale of the random weights: torch's default init times this "
                         "(default 2: at 1 the outputs are nearly flat, which would make "
                         "the agreement check weak; the speed does not depend on it)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="lumos build dir with liblumos.a (default build/)")
    ap.add_argument("--ort-dir", default=BENCH,
                    help="where onnxruntime-node is (or gets) installed: DIR/node_modules "
                         "(default bench/, git-ignored)")
    ap.add_argument("--no-ort", action="store_true", help="skip ONNX Runtime")
    ap.add_argument("--keep", metavar="DIR",
                    help="keep weights, mosaic, ONNX model and outputs in DIR")
    args = ap.parse_args()
    nets = [n.strip() for n in args.nets.split(",") if n.strip()]
    for n in nets:
        if n not in NETS:
            die(f"unknown net {n!r} (efficient, robust, rmfa)")
    if args.runs < 1 or args.threads < 1 or args.warmup < 0:
        die("--runs and --threads must be >= 1, --warmup >= 0")
    if args.width < 8 or args.height < 8 or args.width % 2 or args.height % 2:
        die("--width and --height must be even and >= 8 (the packed nets' 2x2 blocks)")
    if "rmfa" in nets and (args.width % 4 > 1 or args.height % 4 > 1):
        die(f"RMFA-Net in PyTorch cannot take {args.width}x{args.height}: a side = 2 or 3 "
            "mod 4 breaks its x1 + up(x3) add; use a multiple of 4 (e.g. 1000x752)")
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        print(f"note: running under {sys.executable}, not /usr/bin/python3 "
              "(Debian's python3-torch lives there)", file=sys.stderr)
    r = run_child([sys.executable, "-c", "import numpy, torch"])
    if r[0] != 0:
        die(f"{tail(r[2], 1)}: run with Debian's /usr/bin/python3 (python3-torch, python3-numpy)")
    args.ort_dir = os.path.abspath(args.ort_dir)
    with tempfile.TemporaryDirectory(prefix="lumos_learned_") as tmp:
        work = args.keep or tmp
        if args.keep:
            os.makedirs(work, exist_ok=True)
        runner = build_runner(args.build, tmp)
        node = None
        if not args.no_ort:
            node, why = ensure_ort(args.ort_dir)
            if not node:
                print(f"note: ONNX Runtime skipped: {why}", file=sys.stderr)

        mp = args.width * args.height / 1e6
        built = time.strftime("%Y-%m-%d %H:%M", time.localtime(
            os.path.getmtime(os.path.join(args.build, "liblumos.a"))))
        load0 = os.getloadavg()[0]
        table, all_notes, all_checks, bad = [], [], [], False
        for net in nets:
            macs, res, notes, checks = bench_net(net, args, work, runner, node)
            table.append((net, macs, res))
            all_notes += [f"{TITLE[net]}: {n}" for n in notes]
            for what, v in checks:
                if what == "lumos output spread":
                    all_checks.append(f"{TITLE[net]}: lumos 8-bit output std {v[0]:.1f}, "
                                      f"{100 * v[1]:.0f} % at 0, {100 * v[2]:.0f} % at 255")
                    continue
                ok = v <= 1.0 or "float" in what
                bad |= not ok
                all_checks.append(f"{TITLE[net]}: {what}: max |diff| = "
                                  f"{v:.3g}{'' if 'float' in what else ' (of 255)'}"
                                  f"{'' if ok else '  MISMATCH'}")

        print(f"{args.width}x{args.height} mosaic ({mp:.1f} MP output), {args.threads} threads "
              f"per engine, median of {args.runs} runs after {args.warmup} untimed; "
              f"{os.cpu_count()} CPUs "
              f"(1-min load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the "
              f"end: other work skews the times); fp32 peak taken as {PEAK_GFLOPS:.0f} GFLOP/s; "
              f"{args.build}/liblumos.a of {built}.\n")
        print("| net | engine | GFLOP | median s | min s | GFLOP/s | % of peak | "
              "time / lumos | peak RSS MiB | RSS / lumos |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for net, macs, res in table:
            gflop = 2 * macs / 1e9
            base = res[0]
            for r in res:
                rate = gflop / r.median
                print(f"| {TITLE[net]} | {r.engine} | {gflop:.1f} | {r.median:.3f} | "
                      f"{min(r.times):.3f} | {rate:.1f} | {100 * rate / PEAK_GFLOPS:.1f} | "
                      f"{r.median / base.median:.2f}x | {r.rss:.0f} | {r.rss / base.rss:.2f}x |")
        print()
        for net, _, res in table:
            for r in res:
                print(f"- {TITLE[net]}, {r.engine}: runs " +
                      ", ".join(f"{t:.3f}" for t in r.times) + (f"; {r.extra}" if r.extra else ""))
        for line in all_notes + all_checks:
            print(f"- {line}")
        if bad:
            print("\nMISMATCH: the engines do not compute the same network; "
                  "do not use these times.")
            sys.exit(1)


if __name__ == "__main__":
    main()
