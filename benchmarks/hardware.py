"""Hardware efficiency: FLOPs of the exported graph, its throughput, the machine's matmul peak.

FLOPs count the MatMul/Gemm nodes only, two per multiply-add; element-wise nodes (GELU,
its derivative, the geometry) are not counted: they are the work that keeps the graph
below the matmul peak.  The count is done twice, from the ONNX graph (shape inference
with concrete B and K) and analytically from the layer widths, and the two must agree.

The peak is measured in the same process with the same thread count: a float32 MatMul of
the graph's largest layer shape (1024 frames x 1024 -> 512, weights as an initializer,
like the graph's) run by onnxruntime on the same provider, and numpy's matmul on the
CPU.  On CUDA, inputs and outputs stay on the GPU (I/O binding) so that only the kernel
is timed.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

#: The exported architecture (gicnet_train.model.ModelConfig.hidden and
#: gicnet_train.energy.EnergyModel's hidden widths); check_flops() catches any drift.
GICNET_HIDDEN = (1024, 512, 256, 128, 64)
ENERGY_HIDDEN = (256, 128, 64)
#: Network inputs per atom besides t: r, theta (scaled); sin, cos of phi; three rates.
FEATURES_PER_ATOM = 7
#: Rows of the peak-matmul probe: the CPU call size (gicnet_runtime.session.CPU_CHUNK_FRAMES).
PEAK_ROWS = 1024
#: Each timing repeats calls for at least this long, s.
MIN_TIMING_S = 1.0


def analytic_flops(n_atoms: int, n_batch: int, n_times: int) -> int:
    """MatMul FLOPs of one graph call on (B, N, 3) initial states and (B, K) times.

    Per initial condition: the first layer (features -> 1024, done once, the time enters
    linearly) and one (N, 3) x (3, 3) body-frame rotation each of positions and velocities.
    Per frame: the remaining layers for the value and for its time tangent, the energy
    MLP on the N(N-1)/2 inverse distances, and the rotations back to the lab frame.
    """
    widths = (*GICNET_HIDDEN, 3 * n_atoms)
    tangent_net = 2 * 2 * sum(a * b for a, b in itertools.pairwise(widths))
    pairs = n_atoms * (n_atoms - 1) // 2
    energy = 2 * sum(a * b for a, b in itertools.pairwise((pairs, *ENERGY_HIDDEN, 1)))
    rotations = 2 * 2 * n_atoms * 3 * 3
    per_ic = 2 * FEATURES_PER_ATOM * n_atoms * GICNET_HIDDEN[0] + rotations
    per_frame = tangent_net + energy + rotations
    return n_batch * per_ic + n_batch * n_times * per_frame


def graph_flops(model_path: str | Path, n_batch: int, n_times: int) -> int:
    """MatMul/Gemm FLOPs of one call of the ONNX graph, from onnx shape inference."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(model_path))
    for value in model.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_value = {"B": n_batch, "K": n_times}[dim.dim_param]
    model = shape_inference.infer_shapes(model, data_prop=True)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*model.graph.value_info, *model.graph.input, *model.graph.output]}
    shapes.update({t.name: list(t.dims) for t in model.graph.initializer})
    for node in model.graph.node:
        if node.op_type == "Constant":
            value = next(a for a in node.attribute if a.name == "value")
            shapes[node.output[0]] = list(value.t.dims)
    total = 0
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        a, out = shapes[node.input[0]], shapes[node.output[0]]
        if not all(a) or not all(out):
            raise ValueError(f"shape inference left {node.name} without a concrete shape")
        trans_a = any(x.name == "transA" and x.i for x in node.attribute)
        inner = a[0] if node.op_type == "Gemm" and trans_a else a[-1]
        total += 2 * int(np.prod(out)) * inner
    return total


def flops_per_frame(model_path: str | Path, n_atoms: int, n_times: int) -> dict:
    """FLOPs per predicted frame at K times per initial condition, counted both ways."""
    analytic = analytic_flops(n_atoms, 2, n_times)
    result = {"n_times": n_times, "analytic_flops_per_call_B2": analytic,
              "flops_per_frame": analytic / (2 * n_times)}
    try:
        graph = graph_flops(model_path, 2, n_times)
    except ImportError:
        result["graph_count"] = "skipped: the onnx package is not installed"
        return result
    result["graph_flops_per_call_B2"] = graph
    result["graph_and_analytic_agree"] = graph == analytic
    if graph != analytic:
        raise RuntimeError(f"FLOP counts disagree: graph {graph}, analytic {analytic}")
    return result


def best_seconds_per_call(call: Callable[[], object], rounds: int = 3) -> float:
    """Best (over ``rounds``) mean wall time of ``call``, each round >= MIN_TIMING_S / rounds."""
    call()
    best = np.inf
    for _ in range(rounds):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < MIN_TIMING_S / rounds or count == 0:
            call()
            count += 1
        best = min(best, elapsed / count)
    return best


def graph_throughput(session, initial, n_batch_list: list[int], n_times: int,
                     flops_frame: float) -> list[dict]:
    """Frames/s and FLOP/s of the bare graph (no unrolling) for several batch sizes.

    session: a gicnet_runtime Session (chunks as propagate does); initial: (pos, vel) (B0, N, 3).
    """
    rows = []
    for n_batch in n_batch_list:
        pos, vel = (np.resize(x, (n_batch, *x.shape[1:])) for x in initial)
        times = np.tile(np.linspace(0.5, 10.0, n_times), (n_batch, 1))
        seconds = best_seconds_per_call(lambda: session.run(pos, vel, times))
        frames_per_s = n_batch * n_times / seconds
        rows.append({"batch": n_batch, "n_times": n_times, "seconds_per_call": seconds,
                     "frames_per_s": frames_per_s, "flop_per_s": frames_per_s * flops_frame})
    return rows


def _matmul_model(rows: int, inner: int, cols: int) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(0).standard_normal((inner, cols)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "w"], ["c"])], "matmul",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [rows, inner])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [rows, cols])],
        [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def onnxruntime_matmul_peak(providers: list[str], threads: int, rows: int = PEAK_ROWS,
                            inner: int = GICNET_HIDDEN[0], cols: int = GICNET_HIDDEN[1]) -> dict:
    """FLOP/s of one float32 MatMul (rows x inner) @ (inner x cols) on onnxruntime."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(_matmul_model(rows, inner, cols), options, providers=providers)
    a = np.random.default_rng(1).standard_normal((rows, inner)).astype(np.float32)
    device = "cuda" if providers[0].startswith("CUDA") else "cpu"
    binding = session.io_binding()
    binding.bind_ortvalue_input("a", ort.OrtValue.ortvalue_from_numpy(a, device, 0))
    binding.bind_output("c", device)
    seconds = best_seconds_per_call(lambda: session.run_with_iobinding(binding))
    return {"engine": f"onnxruntime MatMul ({session.get_providers()[0]})",
            "shape": [rows, inner, cols], "flop_per_s": 2 * rows * inner * cols / seconds}


def numpy_matmul_peak(rows: int = PEAK_ROWS, inner: int = GICNET_HIDDEN[0],
                      cols: int = GICNET_HIDDEN[1]) -> dict:
    """FLOP/s of numpy's float32 matmul of the same shape (its BLAS, its thread setting)."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((rows, inner)).astype(np.float32)
    b = rng.standard_normal((inner, cols)).astype(np.float32)
    seconds = best_seconds_per_call(lambda: a @ b)
    return {"engine": "numpy matmul", "shape": [rows, inner, cols],
            "flop_per_s": 2 * rows * inner * cols / seconds}
