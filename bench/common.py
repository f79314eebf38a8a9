"""Helpers shared by the lumos benchmarks (run by hand, see README.md)."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = "/usr/lib/python3/dist-packages/skimage/data"
CR2 = "/usr/share/doc/rawtran/IMG_5952.CR2"


def die(msg):
    sys.exit(f"{os.path.basename(sys.argv[0])}: {msg}")


def need_exe(path, hint):
    """The absolute path of an executable, or exit saying how to get it."""
    found = shutil.which(path) if os.sep not in path else (
        path if os.path.isfile(path) and os.access(path, os.X_OK) else None)
    if not found:
        die(f"{path} not found or not executable: {hint}")
    return os.path.abspath(found)


def lumos_exe(path):
    return need_exe(path or os.path.join(ROOT, "build", "lumos"),
                    "build lumos first (cmake -S . -B build && cmake --build build -j2) "
                    "or pass --lumos PATH")


def run_many(cmds, jobs=1, env=None):
    """Runs the commands, at most `jobs` at a time (like xargs -P). Returns
    (wall seconds for all, peak RSS in MiB of the largest single process).
    Exits naming the command if one fails.

    os.wait4 gives each child's own rusage, so a peak RSS is one process's,
    not the running maximum RUSAGE_CHILDREN would report."""
    pending = list(cmds)
    running = {}  # pid -> (cmd, stderr file)
    peak = 0.0
    start = time.perf_counter()
    while pending or running:
        while pending and len(running) < jobs:
            cmd = pending.pop(0)
            err = tempfile.TemporaryFile()
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
            running[p.pid] = (cmd, err, p)
        pid, status, ru = os.wait4(-1, 0)
        if pid not in running:
            continue
        cmd, err, p = running.pop(pid)
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        peak = max(peak, ru.ru_maxrss / 1024.0)
        if p.returncode != 0:
            err.seek(0)
            die(f"`{' '.join(cmd)}` failed (exit {p.returncode}):\n"
                f"{err.read().decode(errors='replace')}")
        err.close()
    return time.perf_counter() - start, peak


def run(cmd, env=None):
    return run_many([cmd], 1, env)
