"""Cost of one exported-graph call against the number of requested times K.

    python -m benchmarks.times [OLD_MODEL.onnx]

B = 256 starts (the shipped example starts, repeated), K = 1, 20 and 200 times in [0, 10]
fs, onnxruntime CPU with one thread, each call repeated for 1.5 s; prints ms per call, the
200/20 ratio and predicted frames per second.  With OLD_MODEL.onnx (e.g. the previous
shipped time-head member from git history) that model is timed in the same process.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import onnxruntime as ort
from ase.io import read

from gicnet_runtime.units import ase_velocities_to_a_per_fs

#: Starts per call, times per call, and how long each call is repeated, s.
N_STARTS = 256
TIME_COUNTS = (1, 20, 200)
REPEAT_S = 1.5
SHIPPED_MEMBER = "exported/ethanol/members/member_0.onnx"


def example_starts(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The shipped example starts repeated to n: positions Å and velocities Å/fs, float32."""
    init = read("exported/ethanol/initial.extxyz", index=":")
    pos = np.stack([a.positions for a in init])
    vel = ase_velocities_to_a_per_fs(np.stack([a.get_velocities() for a in init]))
    reps = n // len(init) + 1
    return (np.repeat(pos, reps, 0)[:n].astype(np.float32),
            np.repeat(vel, reps, 0)[:n].astype(np.float32))


def seconds_per_call(session: ort.InferenceSession, pos, vel, n_times: int) -> float:
    """Mean wall time of one call with ``n_times`` times per start, after a warm-up, s."""
    times = np.tile(np.linspace(0, 10, n_times, dtype=np.float32), (len(pos), 1))
    feed = {"positions": pos, "velocities": vel, "times": times}
    session.run(None, feed)  # warm-up
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < REPEAT_S:
        session.run(None, feed)
        calls += 1
    return (time.perf_counter() - start) / calls


def main(paths: list[str]) -> int:
    pos, vel = example_starts(N_STARTS)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    for path in [SHIPPED_MEMBER, *paths]:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        cost = {k: seconds_per_call(session, pos, vel, k) for k in TIME_COUNTS}
        ms = ", ".join(f"K={k}: {v * 1e3:.1f} ms" for k, v in cost.items())
        print(f"{path}: {ms}; 200/20 = {cost[200] / cost[20]:.2f}; "
              f"frames/s at K=200: {N_STARTS * 200 / cost[200]:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
