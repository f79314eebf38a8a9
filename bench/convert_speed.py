#!/usr/bin/python3
"""Conversion speed: lumos against other RAW converters on one real CR2.

Single file: each tool converts the CR2 --runs times (after one untimed
warm-up run); median and min wall time and peak RSS of the process.
Tools: `lumos convert` (JPEG), dcraw_emu (LibRaw, AHD, 8-bit TIFF),
unpack_floor (LibRaw open + unpack only: the decode floor), and
darktable-cli / rawtherapee-cli when installed.
Batch: 8 copies of the CR2 by one `lumos convert --jobs 2` against dcraw_emu
run two at a time (like xargs -P2); throughput in files per second.
Prints Markdown tables.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import CR2, die, lumos_exe, need_exe, run, run_many  # noqa: E402

BENCH = os.path.dirname(os.path.abspath(__file__))


def build_unpack_floor(work):
    """Compiles unpack_floor.c here rather than in the main build."""
    exe = os.path.join(work, "unpack_floor")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libraw_r"],
                           stdout=subprocess.PIPE, text=True)
    if flags.returncode != 0:
        die("pkg-config cannot find libraw_r (install libraw-dev)")
    cc = os.environ.get("CC", "cc")
    r = subprocess.run([cc, "-std=c11", "-O2", "-o", exe, os.path.join(BENCH, "unpack_floor.c")]
                       + flags.stdout.split(), stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        die(f"cannot build unpack_floor.c:\n{r.stderr}")
    return exe


class Tool:
    """name, a function giving the command for (input, output), and the
    output to delete before each run (darktable-cli never overwrites)."""

    def __init__(self, name, make_cmd, out, env=None):
        self.name, self.make_cmd, self.out, self.env = name, make_cmd, out, env

    def once(self, src):
        if self.out and os.path.exists(self.out):
            os.remove(self.out)
        return run(self.make_cmd(src, self.out), self.env)


def tools(args, work):
    lumos = lumos_exe(args.lumos)
    dcraw = need_exe(args.dcraw_emu, "install libraw-bin (./install-deps.sh)")
    floor = build_unpack_floor(work)
    out = lambda ext: os.path.join(work, "out." + ext)  # noqa: E731
    t = [
        Tool("lumos convert (JPEG)",
             lambda i, o: [lumos, "convert", i, "-o", o, "--quiet"], out("jpg")),
        Tool("dcraw_emu (AHD, 8-bit TIFF)",
             lambda i, o: [dcraw, "-w", "-T", "-Z", o, i], out("tiff")),
        Tool("LibRaw unpack only (floor)", lambda i, o: [floor, i], None),
    ]
    dt = shutil.which("darktable-cli")
    if dt:
        conf = os.path.join(work, "darktable")
        os.makedirs(conf, exist_ok=True)
        # --configdir alone still creates ~/.config and ~/.cache entries.
        env = dict(os.environ, XDG_CONFIG_HOME=conf, XDG_CACHE_HOME=conf + "/cache")
        t.append(Tool("darktable-cli (JPEG)",
                      lambda i, o: [dt, i, o, "--apply-custom-presets", "false", "--core",
                                    "--configdir", conf, "--cachedir", conf + "/cache",
                                    "--library", ":memory:"],
                      os.path.join(work, "dt.jpg"), env))
    else:
        print("note: darktable-cli not installed, skipped (./install-deps.sh --bench)",
              file=sys.stderr)
    rt = shutil.which("rawtherapee-cli")
    if rt:
        conf = os.path.join(work, "rawtherapee")
        os.makedirs(conf, exist_ok=True)
        # A throwaway settings/cache dir: nothing read from or left in ~.
        env = dict(os.environ, RT_SETTINGS=conf, RT_CACHE=conf + "/cache",
                   XDG_CONFIG_HOME=conf, XDG_CACHE_HOME=conf + "/cache")
        t.append(Tool("rawtherapee-cli (JPEG q92)",
                      lambda i, o: [rt, "-d", "-Y", "-j92", "-o", o, "-c", i],
                      os.path.join(work, "rt.jpg"), env))
    else:
        print("note: rawtherapee-cli not installed, skipped (./install-deps.sh --bench)",
              file=sys.stderr)
    return lumos, dcraw, t


def mib(v):
    return f"{v:.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lumos", help="lumos CLI (default build/lumos)")
    ap.add_argument("--dcraw-emu", default="dcraw_emu")
    ap.add_argument("--cr2", default=CR2, help="RAW file (default: %(default)s)")
    ap.add_argument("--runs", type=int, default=7, help="timed runs per tool (default 7)")
    ap.add_argument("--batch-files", type=int, default=8)
    ap.add_argument("--batch-runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2, help="parallelism of the batch (default 2)")
    args = ap.parse_args()
    if not os.path.exists(args.cr2):
        die(f"{args.cr2} missing (Debian rawtran-doc, ./install-deps.sh)")
    if args.runs < 1 or args.batch_runs < 1 or args.batch_files < 1 or args.jobs < 1:
        die("--runs, --batch-runs, --batch-files and --jobs must be >= 1")

    with tempfile.TemporaryDirectory(prefix="lumos_speed_") as work:
        lumos, dcraw, ts = tools(args, work)
        print(f"{os.path.basename(args.cr2)}, {args.runs} runs each after a warm-up, "
              f"{os.cpu_count()} CPUs.\n")
        rows = []
        for t in ts:
            print(f"timing {t.name} ...", file=sys.stderr)
            t.once(args.cr2)  # warm-up: page cache, first-run set-up
            res = [t.once(args.cr2) for _ in range(args.runs)]
            rows.append((t.name, statistics.median(w for w, _ in res), min(w for w, _ in res),
                         max(r for _, r in res)))
        base_t, base_r = rows[0][1], rows[0][3]
        print("| tool | median s | min s | peak RSS MiB | time / lumos | RSS / lumos |")
        print("|---|---|---|---|---|---|")
        for name, med, mn, rss in rows:
            print(f"| {name} | {med:.3f} | {mn:.3f} | {mib(rss)} | {med / base_t:.2f}x | "
                  f"{rss / base_r:.2f}x |")

        # Batch: separate copies so nothing is shared between the inputs.
        ext = os.path.splitext(args.cr2)[1]
        ins = []
        for k in range(args.batch_files):
            p = os.path.join(work, f"in{k}{ext}")
            shutil.copyfile(args.cr2, p)
            ins.append(p)
        outdir = os.path.join(work, "batch")
        os.makedirs(outdir)
        lumos_cmd = [lumos, "convert", *ins, "-o", outdir, "--format", "jpeg",
                     "--jobs", str(args.jobs), "--quiet"]
        dcraw_cmds = [[dcraw, "-w", "-T", "-Z", os.path.join(outdir, f"d{k}.tiff"), p]
                      for k, p in enumerate(ins)]
        print(f"timing batches of {args.batch_files} ...", file=sys.stderr)
        run(lumos_cmd)
        run_many(dcraw_cmds, args.jobs)  # warm-ups
        lb = [run(lumos_cmd) for _ in range(args.batch_runs)]
        db = [run_many(dcraw_cmds, args.jobs) for _ in range(args.batch_runs)]
        lt, dtm = statistics.median(w for w, _ in lb), statistics.median(w for w, _ in db)
        n = args.batch_files
        print(f"\nBatch: {n} copies, median of {args.batch_runs} runs.\n")
        print("| batch | median s | files/s | peak RSS MiB (one process) | throughput / lumos |")
        print("|---|---|---|---|---|")
        print(f"| lumos convert --jobs {args.jobs} | {lt:.3f} | {n / lt:.2f} | "
              f"{mib(max(r for _, r in lb))} | 1.00x |")
        print(f"| dcraw_emu, {args.jobs} at a time | {dtm:.3f} | {n / dtm:.2f} | "
              f"{mib(max(r for _, r in db))} | {lt / dtm:.2f}x |")


if __name__ == "__main__":
    main()
