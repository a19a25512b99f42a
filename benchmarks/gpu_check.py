"""Final device call: CUDA provider parity with CPU and GPU throughput of the runtime."""
import contextlib, io, json, os, sys, time
import numpy as np
W = os.environ.get("GICNET_W", "/tmp/w"); sys.path.insert(0, W)
out_dir = sys.argv[1]
from gicnet_runtime.model import load_model
import onnxruntime as ort
res = {"ort_version": ort.__version__, "available": ort.get_available_providers()}
models = W + "/trained" if os.path.isdir(W + "/trained") else W + "/exported/ethanol"
res["models"] = models
err = io.StringIO()
with contextlib.redirect_stderr(err):
    auto = load_model(models, device="auto")
res["auto_providers"] = auto.members[0].providers
res["auto_stderr_chars"] = len(err.getvalue())
cuda = load_model(models, device=os.environ.get("GICNET_DEV", "cuda"))
cpu = load_model(models, device="cpu")
res["cuda_providers"] = cuda.members[0].providers
rng = np.random.default_rng(0)
try:
    from gicnet_runtime.initial import initial_conditions_for
    ic = initial_conditions_for(cpu.description, None, None, __import__("pathlib").Path(W + "/exported/ethanol"))
    pos, vel = ic.positions, ic.velocities
except Exception as e:  # noqa
    res["init_error"] = repr(e)
    raise
times = np.linspace(0, 10, 21)
a = cpu.predict(pos, vel, times); b = cuda.predict(pos, vel, times)
res["parity_max_abs_pos_A"] = float(np.abs(a.positions - b.positions).max())
res["parity_max_abs_vel_A_per_fs"] = float(np.abs(a.velocities - b.velocities).max())
res["parity_same_member"] = bool(np.array_equal(a.member, b.member))
def rate(model, B, duration):
    p = np.repeat(pos, int(np.ceil(B / len(pos))), 0)[:B]; v = np.repeat(vel, int(np.ceil(B / len(vel))), 0)[:B]
    model.propagate(p[:1], v[:1], 20.0, 0.5)  # warm-up
    t0 = time.perf_counter(); trajs = model.propagate(p, v, duration, 0.5); dt = time.perf_counter() - t0
    return {"B": B, "duration_fs": duration, "wall_s": dt, "fs_per_s_per_traj": duration / dt,
            "aggregate_fs_per_s": B * duration / dt, "backtracks": int(sum(t.info["backtracks"] for t in trajs))}
res["throughput"] = {"cuda": [], "cpu16": []}
for B, d in ((1, 1000.0), (16, 1000.0), (256, 1000.0), (1024, 500.0)):
    res["throughput"]["cuda"].append(rate(cuda, B, d)); print(res["throughput"]["cuda"][-1], flush=True)
for B, d in ((1, 500.0), (256, 200.0)):
    res["throughput"]["cpu16"].append(rate(cpu, B, d)); print(res["throughput"]["cpu16"][-1], flush=True)
json.dump(res, open(os.path.join(out_dir, "gpu_check.json"), "w"), indent=1)
print(json.dumps({k: v for k, v in res.items() if k != "throughput"}, indent=1))
