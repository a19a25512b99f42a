"""Cost of one exported-graph call against the number of requested times K.

    python -m benchmarks.times [OLD_MODEL.onnx]

B = 256 starts (the shipped example starts, repeated), K = 1, 20 and 200 times in [0, 10]
fs, onnxruntime CPU with one thread, each call repeated for 1.5 s; prints ms per call, the
200/20 ratio and predicted frames per second.  With OLD_MODEL.onnx (e.g. the previous
shipped time-head member from git history) that model is timed in the same process.
"""
import sys
import time

import numpy as np
import onnxruntime as ort
from ase.io import read

from gicnet_runtime.units import ase_velocities_to_a_per_fs

init = read("exported/ethanol/initial.extxyz", index=":")
pos = np.stack([a.positions for a in init]).astype(np.float32)
vel = ase_velocities_to_a_per_fs(np.stack([a.get_velocities() for a in init])).astype(np.float32)
B = 256
pos = np.repeat(pos, B // len(pos) + 1, 0)[:B]; vel = np.repeat(vel, B // len(vel) + 1, 0)[:B]
o = ort.SessionOptions(); o.intra_op_num_threads = 1
models = [("shipped", "exported/ethanol/member_0.onnx")]
models += [("other", path) for path in sys.argv[1:]]
for name, path in models:
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    res = {}
    for K in (1, 20, 200):
        t = np.tile(np.linspace(0, 10, K, dtype=np.float32), (B, 1))
        feed = {"positions": pos, "velocities": vel, "times": t}
        s.run(None, feed)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 1.5:
            s.run(None, feed); n += 1
        res[K] = (time.perf_counter() - t0) / n
    print(name, path, {K: f"{v*1e3:.1f} ms" for K, v in res.items()}, f"200/20 = {res[200]/res[20]:.2f}", f"frames/s at K=200: {B*200/res[200]:.0f}")
