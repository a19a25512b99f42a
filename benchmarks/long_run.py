"""Memory and checkpoint size of long `gicnet propagate` runs (issue: bounded unrolling).

Runs the installed command (``python cli.py propagate``) on the shipped model's 10 example
starts for a short and a long duration (default 10 x 100 ps and 10 x 1 ns, frames every
1 fs, H5MD output), each in its own process under ``/usr/bin/time -v``, and records the
peak resident memory, the wall time, the largest checkpoint seen while the run went on
(polled), the frame spool's and the outputs' sizes.  With frames streamed to the spool,
the peak memory should not grow with the duration, and the checkpoint only by a few bytes
per segment; what it would take to hold the frames in memory is given for comparison.

Usage: ``python -m benchmarks.long_run [--durations-fs 100000 1000000] [--out FILE]``
(or ``python benchmarks/long_run.py ...``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file: ``benchmarks`` must be importable
    sys.path.insert(0, str(ROOT))
#: How often the checkpoint's size is polled, s.
POLL_S = 1.0


def run_one(duration_fs: float, dt_fs: float, folder: Path, every_s: float) -> dict:
    """One `gicnet propagate` run into ``folder``; its measured costs."""
    out = folder / "long.h5"
    cmd = ["/usr/bin/time", "-v", sys.executable, str(ROOT / "cli.py"), "propagate",
           "--duration-fs", str(duration_fs), "--dt-fs", str(dt_fs), "--out", str(out),
           "--device", "cpu", "--threads", "1", "--checkpoint-every-s", str(every_s)]
    ckpt, spool = (out.with_name(out.name + s) for s in (".resume.npz", ".resume.frames"))
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, TQDM_DISABLE="1"))
    largest_ckpt = largest_spool = 0
    while proc.poll() is None:
        time.sleep(POLL_S)
        largest_ckpt = max(largest_ckpt, _size(ckpt))
        largest_spool = max(largest_spool, _size(spool))
    stdout, stderr = proc.communicate()
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"propagate failed: {stderr[-2000:]}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr).group(1))
    outputs = sorted(folder.glob("long_*.h5"))
    n_frames = int(duration_fs / dt_fs) + 1
    return {"trajectories": len(outputs), "duration_fs": duration_fs, "dt_fs": dt_fs,
            "frames_per_trajectory": n_frames, "wall_s": round(wall, 1),
            "peak_rss_MB": round(peak_kb / 1024, 1),
            "largest_checkpoint_MB": round(largest_ckpt / 2**20, 2),
            "largest_spool_MB": round(largest_spool / 2**20, 1),
            "outputs_MB": round(sum(_size(p) for p in outputs) / 2**20, 1),
            "frames_in_memory_would_be_MB": round(len(outputs) * n_frames * 9 * 6 * 4 / 2**20, 1),
            "left_behind": sorted(p.name for p in folder.iterdir()
                                  if not p.name.startswith("long_")),
            "last_lines": stdout.strip().splitlines()[-2:]}


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durations-fs", type=float, nargs="+", default=[100000.0, 1000000.0])
    parser.add_argument("--dt-fs", type=float, default=1.0)
    parser.add_argument("--checkpoint-every-s", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/long_run.json")
    args = parser.parse_args(argv)
    runs = []
    for duration in args.durations_fs:
        with tempfile.TemporaryDirectory(dir=ROOT / "runs" if (ROOT / "runs").is_dir()
                                         else None) as tmp:
            runs.append(run_one(duration, args.dt_fs, Path(tmp), args.checkpoint_every_s))
            print(json.dumps(runs[-1]), flush=True)
    from benchmarks.hardware import cpu_name

    result = {"machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "load": os.getloadavg()},
              "model": "exported/ethanol (shipped)", "runs": runs}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
