"""The runtime on its own, in a fresh process: import time, peak memory, README's command.

``python -m benchmarks.probe import`` times ``import gicnet_runtime`` (no onnxruntime),
then ``from gicnet_runtime import load_model`` (pulls in onnxruntime), then opening the
model.  ``python -m benchmarks.probe memory --batch 256 --duration-fs 1000`` unrolls
trajectories and reports the process's peak resident memory (``VmHWM``: numpy,
onnxruntime's arena, the interpreter) and tracemalloc's peak (numpy and Python objects
only).  ``python -m benchmarks.probe readme`` runs README's first command as a user does,
``gicnet propagate --duration-fs 10000 --out DIR/traj.xyz`` (the installed console
script), as a child process: its wall time, its peak resident memory (``wait4``'s
``ru_maxrss``, and ``VmHWM`` polled while it runs) and the machine's load average before
and after.  Each prints one JSON object.  This module imports nothing outside the runtime.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: README's first command after the install: ``gicnet propagate --duration-fs 10000``.
README_DURATION_FS = 10000.0
#: How often VmHWM of the child is read while it runs, s.
POLL_S = 0.02


def _maxrss_mib() -> float:
    """Peak resident memory of this process, MiB.

    Linux's ``ru_maxrss`` survives ``exec``: a probe started by a big parent would report
    the parent's peak.  ``VmHWM`` belongs to this process's own address space."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    scale = 1.0 if sys.platform == "darwin" else 1024.0  # Linux reports KiB, macOS bytes
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def import_times(device: str, threads: int, model: str | None = None) -> dict:
    start = time.perf_counter()
    import gicnet_runtime  # noqa: F401

    package = time.perf_counter()
    from gicnet_runtime import load_model

    runtime = time.perf_counter()
    load_model(model, device=device, threads=threads)
    opened = time.perf_counter()
    return {"import_gicnet_runtime_s": package - start,
            "import_load_model_with_onnxruntime_s": runtime - start,
            "open_shipped_model_s": opened - runtime, "maxrss_after_open_MiB": _maxrss_mib()}


def peak_memory(device: str, threads: int, batch: int, duration_fs: float, dt_fs: float,
                model: str | None = None) -> dict:
    import tracemalloc

    import numpy as np

    from benchmarks.initial import batch_of, load_initial
    from gicnet_runtime import load_model
    from gicnet_runtime.core.model import DEFAULT_MODEL_DIR

    folder = DEFAULT_MODEL_DIR if model is None else Path(model)
    model = load_model(model, device=device, threads=threads)
    _, pos, vel = load_initial(folder / "initial.extxyz")
    pos, vel = batch_of(pos, vel, batch)
    before = _maxrss_mib()
    tracemalloc.start()
    trajectories = model.propagate(pos, vel, duration_fs, dt_fs)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    kept = sum(t.positions.nbytes + t.velocities.nbytes for t in trajectories)
    return {"batch": batch, "duration_fs": duration_fs, "dt_fs": dt_fs,
            "members": model.n_members, "maxrss_before_propagate_MiB": before,
            "maxrss_peak_MiB": _maxrss_mib(), "tracemalloc_peak_MiB": traced_peak / 2**20,
            "result_positions_velocities_MiB": kept / 2**20,
            "frames": int(sum(len(t.time_fs) for t in trajectories)),
            "numpy": np.__version__}


def gicnet_command() -> tuple[list[str], str]:
    """How a user runs ``gicnet``: the console script pip installed beside this Python,
    else the one on PATH, else ``python cli.py`` from the repository (and which it was)."""
    beside = Path(sys.executable).with_name("gicnet")
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)], "console script beside the interpreter"
    found = shutil.which("gicnet")
    if found:
        return [found], "console script on PATH"
    return [sys.executable, str(REPO / "cli.py")], "python cli.py (no console script installed)"


def _vmhwm_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def readme_command(duration_fs: float = README_DURATION_FS, env: dict | None = None,
                   extra_args: tuple[str, ...] = ()) -> dict:
    """README's first command (``gicnet propagate --duration-fs 10000 --out DIR/traj.xyz``)
    in a child process, from the repository root, writing into a temporary folder that is
    removed afterwards.  ``env``: the child's environment (default: this one).

    Call it from a small process (``python -m benchmarks.probe readme``): Linux carries a
    process's peak RSS across fork and exec, so ``ru_maxrss`` of a child of a big process
    is at least the parent's size (``launcher_rss_MiB`` says what it was here); the polled
    ``VmHWM`` belongs to the child's own address space but may miss a last-moment peak;
    ``peak_rss`` is the larger of the two."""
    command, how = gicnet_command()
    folder = Path(tempfile.mkdtemp(prefix="gicnet_readme_"))
    cmd = [*command, "propagate", "--duration-fs", f"{duration_fs:g}", *extra_args,
           "--out", str(folder / "traj.xyz")]
    load_before = os.getloadavg()
    peak_polled = [0]
    try:
        with open(folder / "stdout.txt", "w") as out, open(folder / "stderr.txt", "w") as err:
            start = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=err)
            done = threading.Event()

            def poll() -> None:
                while not done.is_set():
                    value = _vmhwm_kib(proc.pid)
                    if value:
                        peak_polled[0] = max(peak_polled[0], value)
                    done.wait(POLL_S)

            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            done.set()
            poller.join()
            proc.returncode = os.waitstatus_to_exitcode(status)
        stdout = (folder / "stdout.txt").read_text()
        stderr = (folder / "stderr.txt").read_text()
        written = sorted(p for p in folder.glob("traj*.xyz"))
        size = sum(p.stat().st_size for p in written)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    load_after = os.getloadavg()
    scale = 1.0 if sys.platform == "darwin" else 1024.0  # ru_maxrss: KiB on Linux
    rusage_peak = usage.ru_maxrss * scale
    peak = max(rusage_peak, peak_polled[0] * 1024.0)  # the two differ by accounting noise
    match = re.search(r"(\d+) trajectories, ([\d.]+) ps in all, in ([\d.]+) s", stdout)
    result = {"command": " ".join(["gicnet", *cmd[len(command):]]), "how": how,
              "executable": command, "returncode": proc.returncode, "wall_s": wall,
              "peak_rss_MiB": peak / 2**20, "peak_rss_MB": peak / 1e6,
              "rusage_maxrss_MiB": rusage_peak / 2**20,
              "launcher_rss_MiB": _maxrss_mib(),
              "vmhwm_polled_MiB": peak_polled[0] / 1024.0 if peak_polled[0] else None,
              "user_cpu_s": usage.ru_utime, "system_cpu_s": usage.ru_stime,
              "cpu_utilisation": (usage.ru_utime + usage.ru_stime) / wall,
              "load_average_before": load_before, "load_average_after": load_after,
              "files_written": len(written), "bytes_written": size,
              "thread_env": {k: (env or os.environ).get(k) for k in
                             ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
              "stdout_tail": stdout.strip().splitlines()[-3:],
              "stderr_tail": stderr.strip().splitlines()[-3:]}
    if match:
        result.update({"trajectories": int(match[1]), "simulated_ps": float(match[2]),
                       "propagate_s_printed": float(match[3])})
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("import", "memory", "readme"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--duration-fs", type=float, default=None,
                        help="memory: 1000; readme: 10000 (README's)")
    parser.add_argument("--dt-fs", type=float, default=0.5)
    parser.add_argument("--model", default=None, help="a model folder with initial.extxyz "
                        "(default: the shipped one)")
    args = parser.parse_args(argv)
    if args.what == "import":
        result = import_times(args.device, args.threads, args.model)
    elif args.what == "readme":
        result = readme_command(README_DURATION_FS if args.duration_fs is None
                                else args.duration_fs,
                                extra_args=() if args.model is None else ("--model", args.model))
    else:
        args.duration_fs = 1000.0 if args.duration_fs is None else args.duration_fs
        result = peak_memory(args.device, args.threads, args.batch, args.duration_fs, args.dt_fs,
                             args.model)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
